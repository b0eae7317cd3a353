// reportInvalid → 202 against the real server running its Feishu refresher
// (Feishu itself is a local double of the token endpoint).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, withToken } from '../index.mjs';
import { NEEDS_BIN, DEADLINE_MS, startServer, startFeishu, startProxy, sameToken, fp } from '../testlib/harness.mjs';

async function firstToken(url) {
  const end = Date.now() + DEADLINE_MS;
  while (Date.now() < end) {
    const res = await fetch(`${url}/release/get-token`);
    const text = await res.text();
    if (res.status === 200) return JSON.parse(text).access_token;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the refresher stored no token within ${DEADLINE_MS} ms`);
}

test('real refresher: reportInvalid → 202, the next get waits for the new token', { skip: NEEDS_BIN }, async (t) => {
  const feishu = await startFeishu();
  t.after(() => feishu.close());
  const srv = await startServer({ extraArgs: feishu.args });
  t.after(() => srv.stop());
  const t1 = await firstToken(srv.url);
  assert.ok(feishu.issued.includes(t1), `stored token ${fp(t1)} came from the Feishu double`);
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());

  // However long the refresh takes on a busy machine, the client waits for it.
  const client = createClient({ ENABLED: true, API_URL: `${proxy.url}/release/get-token`, refreshWaitMs: DEADLINE_MS });
  sameToken(assert, await client.getAccessToken(), t1);

  const result = await client.reportInvalid(t1);
  assert.equal(result.status, 202);
  assert.equal(result.refreshing, true);
  const t2 = await client.getAccessToken();
  assert.ok(t2 !== t1, 'a different token after the refresh');
  assert.ok(feishu.issued.includes(t2), `new token ${fp(t2)} came from the Feishu double`);
  const post = proxy.requests.find((r) => r.method === 'POST');
  assert.equal(post.path, '/v1/tokens/default/invalid');


  // A second report right after: the server answers 202 again but refreshes at
  // most once per 30 s, so no new token comes; the client waits refreshWaitMs,
  // then keeps serving t2 with a warning instead of failing.
  const impatient = createClient({ ENABLED: true, API_URL: `${proxy.url}/release/get-token`, refreshWaitMs: 600 });
  sameToken(assert, await impatient.getAccessToken(), t2);
  // timed from before the report, where the wait starts: a busy machine can only lengthen it
  const t3 = Date.now();
  const again = await impatient.reportInvalid(t2);
  assert.equal(again.status, 202);
  sameToken(assert, await impatient.getAccessToken(), t2, 'no refresh within the interval');
  assert.ok(Date.now() - t3 >= 300, 'it waited for a different token first');
});

test('real refresher: withToken recovers from a Feishu "invalid token" answer', { skip: NEEDS_BIN }, async (t) => {
  const feishu = await startFeishu();
  t.after(() => feishu.close());
  const srv = await startServer({ extraArgs: feishu.args });
  t.after(() => srv.stop());
  const t1 = await firstToken(srv.url);
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/default` });

  const seen = [];
  const out = await withToken(client, async (token) => {
    seen.push(token);
    return token === t1 ? { code: 99991663, msg: 'Invalid access token for authorization.' } : { code: 0, data: 'ok' };
  });
  assert.deepEqual(out, { code: 0, data: 'ok' });
  assert.equal(seen.length, 2);
  sameToken(assert, seen[0], t1, 'first call');
  assert.ok(seen[1] !== t1 && feishu.issued.includes(seen[1]), `second call with a fresh token ${fp(seen[1])}`);
});
