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

test('real refresher: reportInvalid → 200 with the refreshed record, used at once', { skip: NEEDS_BIN }, async (t) => {
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

  // The server runs the forced refresh and answers with its outcome.
  const result = await client.reportInvalid(t1);
  assert.equal(result.status, 200);
  assert.equal(result.replaced, true);
  const gets = proxy.requests.filter((r) => r.method === 'GET').length;
  const t2 = await client.getAccessToken();
  assert.ok(t2 !== t1, 'a different token after the refresh');
  assert.ok(feishu.issued.includes(t2), `new token ${fp(t2)} came from the Feishu double`);
  assert.equal(proxy.requests.filter((r) => r.method === 'GET').length, gets, 'used from the report answer');
  const post = proxy.requests.find((r) => r.method === 'POST');
  assert.equal(post.path, '/v1/tokens/default/invalid');

  // The old token reported again (another client): already replaced, 200 +
  // the current record, and no second fetch from Feishu.
  const fetches = feishu.issued.length;
  const late = createClient({ ENABLED: true, API_URL: `${proxy.url}/release/get-token` });
  const again = await late.reportInvalid(t1);
  assert.equal(again.status, 200);
  sameToken(assert, await late.getAccessToken(), t2);
  assert.equal(feishu.issued.length, fetches);
});

test('real refresher: Feishu still issues the reported token → 409, no waiting, no loop', { skip: NEEDS_BIN }, async (t) => {
  const feishu = await startFeishu({ sameToken: true });
  t.after(() => feishu.close());
  const srv = await startServer({ extraArgs: feishu.args });
  t.after(() => srv.stop());
  const t1 = await firstToken(srv.url);
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());
  const client = createClient({ ENABLED: true, API_URL: `${proxy.url}/release/get-token`, refreshWaitMs: 3000 });
  sameToken(assert, await client.getAccessToken(), t1);

  const result = await client.reportInvalid(t1);
  assert.equal(result.status, 409);
  assert.equal(result.replaced, false);
  assert.equal(result.error.code, 'ESAME');
  // Nothing newer will come: the token is handed out again without waiting
  // for refreshWaitMs.
  const t0 = Date.now();
  sameToken(assert, await client.getAccessToken(), t1);
  assert.ok(Date.now() - t0 < 2500, 'it did not wait for a replacement');
  const fetches = feishu.issued.length;
  assert.equal((await client.reportInvalid(t1)).status, 409);
  assert.equal(feishu.issued.length, fetches, 'the server answered from its last fetch');
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
