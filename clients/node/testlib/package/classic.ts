// An older CommonJS project (moduleResolution node10, esModuleInterop).
import { createClient, TokendistError } from 'tokendist-client';
import tokendist from 'tokendist-client';

const client = createClient({ apiUrl: 'https://h/get-token' });
export const token: Promise<string> = client.getAccessToken();
export const error = new TokendistError('ECONFIG', '❌ tokendist 配置错误: x');
export const fp: string = tokendist.fingerprint('t-g1044ghEGNOJ5OSQF5OYATETPB');
// @ts-expect-error not an error code
export const bad = new TokendistError('ENOPE', 'x');
