// Read keys: the server started with --read-key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { createClient } from '../index.mjs';
import {
  NEEDS_BIN, startServer, startProxy, startGitee, makeRecord, sameToken,
} from '../testlib/harness.mjs';

const READ_KEY = 'read-key-for-tests-0123';
let srv;
let proxy;
before(async () => {
  if (NEEDS_BIN) return;
  srv = await startServer({ readKey: READ_KEY });
  proxy = await startProxy(srv.url);
});
after(async () => {
  if (proxy) await proxy.close();
  if (srv) await srv.stop();
});

test('no read key → EAUTH 401 with the server\'s 权限不足 message', { skip: NEEDS_BIN }, async () => {
  await srv.push(makeRecord());
  const client = createClient({ apiUrl: `${srv.url}/release/get-token` });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'EAUTH');
    assert.equal(err.status, 401);
    assert.match(err.message, /^❌ 腾讯云函数 token获取失败: HTTP 401: .*权限不足/);
    return true;
  });
});

test('wrong read key → EAUTH 403, and the key is not in the message', { skip: NEEDS_BIN }, async () => {
  const client = createClient({ apiUrl: `${srv.url}/release/get-token`, readKey: 'wrong-key-zzz' });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'EAUTH');
    assert.equal(err.status, 403);
    assert.match(err.message, /^❌ 腾讯云函数 token获取失败: HTTP 403: .*权限不足/);
    assert.ok(!err.message.includes('wrong-key-zzz'));
    return true;
  });
});

test('right read key → token; it is sent as Authorization: Bearer', { skip: NEEDS_BIN }, async () => {
  const rec = makeRecord();
  await srv.push(rec);
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/default`, readKey: READ_KEY });
  sameToken(assert, await client.getAccessToken(), rec.access_token);
  const last = proxy.requests.at(-1);
  assert.equal(last.headers.authorization, `Bearer ${READ_KEY}`);
});

test('after ten wrong keys the server\'s lockout 429 is still EAUTH; a 429 without WWW-Authenticate is EHTTP', { skip: NEEDS_BIN }, async () => {
  // Its own server: the lockout is per address and would lock out the tests above.
  const own = await startServer({ readKey: READ_KEY });
  const plain = await startProxy(own.url, {
    intercept: (req, res) => {
      if (!req.url.startsWith('/plain-429')) return false;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end('{"error":"Too Many Requests"}');
      return true;
    },
  });
  try {
    const client = createClient({ apiUrl: `${own.url}/release/get-token`, readKey: 'wrong-key-zzz' });
    let err;
    for (let i = 0; i < 30; i += 1) {        // ten failures block the address
      err = await client.getAccessToken().then(() => null, (e) => e);
      assert.ok(err, 'a wrong key never gets a token');
      assert.equal(err.code, 'EAUTH', err.message);
      if (err.status === 429) break;
    }
    assert.equal(err.status, 429);
    assert.match(err.message, /认证失败次数过多/);
    assert.ok(!err.message.includes('wrong-key-zzz'));
    const other = createClient({ apiUrl: `${plain.url}/plain-429/release/get-token`, readKey: READ_KEY });
    await assert.rejects(other.getAccessToken(), (e) => {
      assert.equal(e.code, 'EHTTP', e.message);
      assert.equal(e.status, 429);
      return true;
    });
  } finally {
    await plain.close();
    await own.stop();
  }
});

test('a Gitee 429 is EHTTP even with WWW-Authenticate: the lockout rule is our server\'s own', async (t) => {
  const gitee = await startGitee({ accessToken: 'gitee-pat-123' });
  t.after(() => gitee.close());
  gitee.state.record = makeRecord();
  const gate = await startProxy(gitee.baseUrl, {
    intercept: (req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="gitee"' });
      res.end('{"message":"Too Many Requests"}');
      return true;
    },
  });
  t.after(() => gate.close());
  const client = createClient({
    ENABLED: false, API_URL: 'http://127.0.0.1:9/release/get-token',
    gitee: { ...gitee.options, baseUrl: `${gate.url}/api/v5` },
  });
  await assert.rejects(client.getAccessToken(), (e) => {
    assert.equal(e.source, 'gitee');
    assert.equal(e.status, 429);
    assert.equal(e.code, 'EHTTP', e.message);
    return true;
  });
  assert.equal(gate.requests.length, 1);
});
