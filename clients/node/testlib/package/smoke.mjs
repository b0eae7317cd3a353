// Run by each Node binary in the project the packed tarball was installed
// into: both entries load one implementation, a token comes from the real
// server, a report and withToken work.  Prints "ok node vX" on success.
import { createRequire } from 'node:module';
import { createClient, withToken, TokendistError } from 'tokendist-client';

const require = createRequire(import.meta.url);
const cjs = require('tokendist-client');
if (cjs.createClient !== createClient || cjs.TokendistError !== TokendistError) {
  throw new Error('require() and import give different implementations');
}
if (!require.resolve('tokendist-client').includes('node_modules')) {
  throw new Error('tokendist-client did not resolve to the installed copy');
}
const [url, expected] = process.argv.slice(2);
const client = createClient({ ENABLED: true, API_URL: `${url}/release/get-token`, refreshWaitMs: 0 });
if (await client.getAccessToken() !== expected) throw new Error('not the token the server has');
// no refresher on this server: the report is refused (501), never thrown
const report = await client.reportInvalid(expected);
if (report.reported || !(report.error instanceof TokendistError)) throw new Error(`report: ${report.status}`);
const out = await withToken(client, async (token) => ({ code: 0, same: token === expected }));
if (out.code !== 0 || !out.same) throw new Error('withToken');
console.log(`ok node ${process.version}`);
