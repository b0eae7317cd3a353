// Normal fetch, memory hits, near-expiry refetch, field selection, error
// wording — against the real tokendist binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { createClient, TokendistError } from '../index.mjs';
import {
  NEEDS_BIN, startServer, startProxy, makeRecord, newToken, sameToken, captureLogger, deadUrl, movableClock,
  tempDir,
} from '../testlib/harness.mjs';

let srv;
let proxy;
let n = 0;
const uniqueName = () => `basic_${process.pid}_${++n}`;

before(async () => {
  if (NEEDS_BIN) return;
  srv = await startServer();
  proxy = await startProxy(srv.url);
});
after(async () => {
  if (proxy) await proxy.close();
  if (srv) await srv.stop();
});

const gets = (p) => (r) => r.method === 'GET' && r.path === p;

test('fetches the record from /v1/tokens/NAME; the record keeps the nine fields and extras', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const rec = makeRecord({ extra: { tenant_access_token: newToken('t-tenant') } });
  await srv.push(rec, name);
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}` });

  const info = await client.getRecordInfo();
  assert.equal(info.from, 'endpoint');
  assert.equal(info.origin, 'endpoint');
  sameToken(assert, info.record.access_token, rec.access_token);
  sameToken(assert, info.record.tenant_access_token, rec.tenant_access_token, 'tenant_access_token');
  for (const k of ['expire_timestamp', 'generated_timestamp', 'source', 'usage', 'platform']) {
    assert.equal(info.record[k], rec[k], k);
  }
  assert.equal(typeof info.record.expire_time, 'string');
  assert.ok(info.remainingSeconds > 7100 && info.remainingSeconds <= 7200, `remaining ${info.remainingSeconds}`);

  sameToken(assert, await client.getAccessToken(), rec.access_token);
  const plain = await client.getRecord();
  assert.equal(Object.keys(plain).includes('from'), false, 'the plain record carries no client bookkeeping');
});

test('the seed path /release/get-token serves the default token', { skip: NEEDS_BIN }, async () => {
  const rec = makeRecord();
  await srv.push(rec, 'default', { pathOverride: '/release/get-token' });
  const client = createClient({ apiUrl: `${srv.url}/release/get-token` });
  sameToken(assert, await client.getAccessToken(), rec.access_token);
});

test('a memory hit makes no request; getRecord returns a copy', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const p = `/v1/tokens/${name}`;
  const rec = makeRecord();
  await srv.push(rec, name);
  const client = createClient({ apiUrl: `${proxy.url}${p}` });
  const servedBefore = await srv.served('token_get');

  sameToken(assert, await client.getAccessToken(), rec.access_token);
  assert.equal(proxy.count(gets(p)), 1);
  for (let i = 0; i < 5; i += 1) sameToken(assert, await client.getAccessToken(), rec.access_token);
  const info = await client.getRecordInfo();
  assert.equal(info.from, 'memory');
  assert.equal(info.origin, 'endpoint');
  info.record.access_token = 'mutated';
  sameToken(assert, await client.getAccessToken(), rec.access_token);
  assert.equal(proxy.count(gets(p)), 1, 'memory hits must not reach the server');
  assert.equal(await srv.served('token_get') - servedBefore, 1, 'the server counted one GET (/metrics)');

  // a newer token pushed meanwhile is not seen while the old one is fresh enough
  await srv.push(makeRecord(), name);
  sameToken(assert, await client.getAccessToken(), rec.access_token);
  assert.equal(proxy.count(gets(p)), 1);
});

test('refetches when the token gets within minRemainingSeconds of expiry', { skip: NEEDS_BIN }, async (t) => {
  const name = uniqueName();
  const p = `/v1/tokens/${name}`;
  const min = 300;
  const first = makeRecord({ expireIn: 900 });
  await srv.push(first, name);
  const second = makeRecord({ expireIn: 7200 });
  // the client's clock is moved, not slept through (the server keeps real time)
  const clock = movableClock(t);
  const client = createClient({ apiUrl: `${proxy.url}${p}`, minRemainingSeconds: min });
  sameToken(assert, await client.getAccessToken(), first.access_token);
  await srv.push(second, name);
  clock.advance(540); // 360 s left
  sameToken(assert, await client.getAccessToken(), first.access_token, 'still fresh enough');
  assert.equal(proxy.count(gets(p)), 1);

  clock.advance(120); // 240 s left
  sameToken(assert, await client.getAccessToken(), second.access_token, 'after crossing the minimum');
  assert.equal(proxy.count(gets(p)), 2);
});

test('a token already within the minimum is refused with EEXPIRED in the seed wording', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  await srv.push(makeRecord({ expireIn: 100 }), name);
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}` });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.ok(err instanceof TokendistError);
    assert.equal(err.code, 'EEXPIRED');
    assert.equal(err.source, 'endpoint');
    assert.match(err.message, /^❌ 腾讯云函数 token获取失败: token即将过期 \(剩余 \d+ 秒，要求至少 300 秒\)$/);
    return true;
  });
  // with a lower minimum the same token is fine
  const lenient = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}`, minRemainingSeconds: 10 });
  const info = await lenient.getRecordInfo();
  assert.ok(info.remainingSeconds <= 100 && info.remainingSeconds > 90);
});

test('field: tenant_access_token', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const rec = makeRecord({ extra: { tenant_access_token: newToken('t-tenant') } });
  await srv.push(rec, name);
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}`, field: 'tenant_access_token' });
  sameToken(assert, await client.getAccessToken(), rec.tenant_access_token);

});

test('field: tenant_access_token of a record without one falls back to access_token', { skip: NEEDS_BIN }, async () => {
  // The seed's own producer writes no tenant_access_token; for Feishu's
  // internal apps both are the same string, and the C client falls back too.
  const name = uniqueName();
  const rec = makeRecord({ expireIn: 3600 });
  await srv.push(rec, name);
  const noTenant = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}`, field: 'tenant_access_token' });
  sameToken(assert, await noTenant.getAccessToken(), rec.access_token);
  const info = await noTenant.getRecordInfo();
  assert.ok(info.remainingSeconds > 3500 && info.remainingSeconds <= 3600, `${info.remainingSeconds}`);
  assert.equal('tenant_access_token' in info.record, false);

  // a tenant token that is there but empty is still a broken record (the
  // server refuses to store one; a cache file may hold anything)
  const { dir, cleanup } = tempDir();
  try {
    const cacheFile = path.join(dir, 'cache.json');
    fs.writeFileSync(cacheFile, JSON.stringify(makeRecord({ extra: { tenant_access_token: '' } })));
    const broken = createClient({ cacheFile, field: 'tenant_access_token' });
    await assert.rejects(broken.getAccessToken(), (err) => {
      assert.equal(err.code, 'EINVALID');
      assert.match(err.message, /字段 tenant_access_token 为空/);
      return true;
    });
  } finally {
    cleanup();
  }
});

test('no stored token → ENOTFOUND_TOKEN with the server\'s words', { skip: NEEDS_BIN }, async () => {
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${uniqueName()}` });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'ENOTFOUND_TOKEN');
    assert.equal(err.status, 404);
    assert.equal(err.message, '❌ 腾讯云函数 token获取失败: Token not found or expired');
    return true;
  });
});

test('an HTTP 500 answer is reported as in the seed', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  await srv.push(makeRecord(), name);
  const faulty = await startProxy(srv.url, {
    intercept: (req, res) => {
      res.writeHead(500, 'Internal Server Error', { 'content-type': 'text/plain' });
      res.end('boom');
      return true;
    },
  });
  try {
    const client = createClient({ apiUrl: `${faulty.url}/v1/tokens/${name}` });
    await assert.rejects(client.getAccessToken(), (err) => {
      assert.equal(err.code, 'EHTTP');
      assert.equal(err.status, 500);
      assert.equal(err.message, '❌ 腾讯云函数 token获取失败: HTTP 500: Internal Server Error');
      return true;
    });
  } finally {
    await faulty.close();
  }
});

test('a server that never answers → ETIMEOUT after timeoutMs', { skip: NEEDS_BIN }, async () => {
  const stuck = await startProxy(srv.url, { intercept: () => true }); // swallow requests
  try {
    const client = createClient({ apiUrl: `${stuck.url}/release/get-token`, timeoutMs: 300 });
    const t0 = Date.now();
    await assert.rejects(client.getAccessToken(), (err) => {
      assert.equal(err.code, 'ETIMEOUT');
      assert.match(err.message, /^❌ 腾讯云函数 token获取失败: 请求超时 \(300ms\): 127\.0\.0\.1:\d+ 没有及时应答，请检查服务是否在运行、网络是否通畅$/);
      return true;
    });
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    await stuck.close();
  }
});

test('apiUrl array: a dead first URL falls through to the second', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const rec = makeRecord();
  await srv.push(rec, name);
  const client = createClient({ apiUrl: [await deadUrl(), `${srv.url}/v1/tokens/${name}`] });
  const info = await client.getRecordInfo();
  sameToken(assert, info.record.access_token, rec.access_token);
  assert.equal(info.url, `${srv.url}/v1/tokens/${name}`);
});

test('logs carry fingerprints only, never the token', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const rec = makeRecord();
  await srv.push(rec, name);
  const cap = captureLogger();
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}`, logger: cap.logger, refreshWaitMs: 300 });
  await client.getAccessToken();
  await client.reportInvalid(rec.access_token);
  await client.getAccessToken().catch(() => {});
  assert.ok(cap.lines.length > 0, 'something was logged');
  assert.ok(cap.lines.some((l) => l.includes(`${rec.access_token.slice(0, 6)}…${rec.access_token.slice(-2)}`)),
    'the fingerprint is logged');
  assert.deepEqual(cap.leaks([rec.access_token]), [], 'no log line contains the token');
});

test('by default the minimum is the platform\'s: WeChat 60 s, WeCom 0, others 300 (the C client\'s rule)', { skip: NEEDS_BIN }, async () => {
  const cases = [
    { provider: 'wechat', expireIn: 100, served: true },
    { provider: 'wechat', expireIn: 50, served: false, need: 60 },
    { provider: 'wecom', expireIn: 30, served: true },
    { provider: 'dingtalk', expireIn: 100, served: false, need: 300 },
  ];
  for (const c of cases) {
    const name = uniqueName();
    const rec = makeRecord({ expireIn: c.expireIn, extra: { provider: c.provider } });
    await srv.push(rec, name);
    for (const minRemainingSeconds of [undefined, -1]) {
      const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}`, minRemainingSeconds });
      if (c.served) {
        sameToken(assert, await client.getAccessToken(), rec.access_token, `${c.provider} ${c.expireIn} s`);
      } else {
        await assert.rejects(client.getAccessToken(), (err) => {
          assert.equal(err.code, 'EEXPIRED');
          assert.match(err.message, new RegExp(`要求至少 ${c.need} 秒`));
          return true;
        });
      }
    }
  }
  assert.throws(() => createClient({ apiUrl: `${srv.url}/v1/tokens/x`, minRemainingSeconds: -2 }), /minRemainingSeconds/);
});
