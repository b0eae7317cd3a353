// An ES module using the installed package the way its README does; tsc must
// accept it, and must reject each line marked @ts-expect-error (proof that the
// types are real, not any).
import { createClient, withToken, TokendistError, fingerprint } from 'tokendist-client';
import type { ClientOptions, RecordInfo, ReportResult, TokenRecord } from 'tokendist-client';
import tokendist from 'tokendist-client';

const TENCENT_CLOUD_CONFIG: ClientOptions = { ENABLED: true, API_URL: 'https://h/release/get-token' };
const client = createClient({ ...TENCENT_CLOUD_CONFIG, name: 'default', minRemainingSeconds: 60, cacheFile: './c.json' });
const other = tokendist.createClient({ apiUrl: ['https://a/v1/tokens/x', 'https://b:8443'], field: 'tenant_access_token' });

export async function main(): Promise<number> {
  const token: string = await client.getAccessToken();
  const info: RecordInfo = await other.getRecordInfo();
  const record: TokenRecord = info.record;
  const left: number = info.remainingSeconds + record.expire_timestamp;
  const report: ReportResult = await client.reportInvalid(token);
  if (report.error) console.log(report.error.code, fingerprint(token));
  const n: number = await withToken(client, async (t: string) => t.length);
  try {
    await client.getRecord();
  } catch (e) {
    if (e instanceof TokendistError && e.code === 'EALLFAILED') console.log(e.errors?.length, e.reason);
  }
  // @ts-expect-error apiUrl is a string or string[]
  createClient({ apiUrl: 42 });
  // @ts-expect-error field is access_token or tenant_access_token
  createClient({ apiUrl: 'https://h/get-token', field: 'app_token' });
  // @ts-expect-error no such method
  client.getToken();
  return left + n;
}
