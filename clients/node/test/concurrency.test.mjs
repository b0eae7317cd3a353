// Single-flight: concurrent callers share one fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient } from '../index.mjs';
import { NEEDS_BIN, startServer, startProxy, makeRecord, deadUrl } from '../testlib/harness.mjs';

test('50 concurrent getAccessToken() → one HTTP request', { skip: NEEDS_BIN }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const rec = makeRecord();
  await srv.push(rec);
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/default` });

  const tokens = await Promise.all(Array.from({ length: 50 }, () => client.getAccessToken()));
  assert.equal(tokens.length, 50);
  assert.ok(tokens.every((tk) => tk === rec.access_token), 'every caller got the stored token');
  assert.equal(proxy.count((r) => r.method === 'GET' && r.path === '/v1/tokens/default'), 1);
  assert.equal(await srv.served('token_get'), 1, 'the server counted one token GET (/metrics)');

  // and a mix of getRecord/getRecordInfo/getAccessToken after a clear() → one more
  client.clear();
  await Promise.all(Array.from({ length: 30 }, (_, i) => [client.getAccessToken, client.getRecord, client.getRecordInfo][i % 3].call(client)));
  assert.equal(proxy.count((r) => r.method === 'GET'), 2);
  assert.equal(await srv.served('token_get'), 2);
});

test('concurrent callers share one failure too, and the next call tries again', async () => {
  let calls = 0;
  const url = await deadUrl();
  const countingFetch = (...a) => {
    calls += 1;
    return fetch(...a);
  };
  const client = createClient({ apiUrl: url, fetch: countingFetch });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => client.getAccessToken()));
  assert.ok(results.every((r) => r.status === 'rejected' && r.reason.code === 'ENETWORK'));
  assert.equal(calls, 1);
  await assert.rejects(client.getAccessToken(), (err) => err.code === 'ENETWORK');
  assert.equal(calls, 2, 'a failure is not cached');
});
