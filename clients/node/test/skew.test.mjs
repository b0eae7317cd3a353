// Remaining time is measured against the server's Date header, not only the
// local clock. A reverse proxy in front of the real server rewrites Date to
// simulate a server whose clock is ahead of / behind ours.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { createClient } from '../index.mjs';
import { NEEDS_BIN, startServer, startProxy, makeRecord, sameToken } from '../testlib/harness.mjs';

let srv;
before(async () => {
  if (!NEEDS_BIN) srv = await startServer();
});
after(async () => {
  if (srv) await srv.stop();
});

test('server clock 1 h ahead: a token our clock calls fresh for 30 min is expired', { skip: NEEDS_BIN }, async (t) => {
  await srv.push(makeRecord({ expireIn: 1800 }), 'ahead');
  const proxy = await startProxy(srv.url, { skewSeconds: 3600 });
  t.after(() => proxy.close());
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/ahead` });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'EEXPIRED');
    assert.ok(err.remainingSeconds <= -1790 && err.remainingSeconds >= -1810, `remaining ${err.remainingSeconds}`);
    assert.match(err.message, /^❌ 腾讯云函数 token获取失败: token已过期 \(已过期 1[78]\d\d 秒\)$/);
    return true;
  });

  // the same token through an unskewed path is fine: the Date header made the difference
  const direct = createClient({ apiUrl: `${srv.url}/v1/tokens/ahead` });
  const info = await direct.getRecordInfo();
  assert.ok(info.remainingSeconds > 1790 && info.remainingSeconds <= 1800);
});

test('server clock 1 h behind: a token our clock calls nearly expired has ~1 h left; memory hits use the offset', { skip: NEEDS_BIN }, async (t) => {
  const rec = makeRecord({ expireIn: 200 });
  await srv.push(rec, 'behind');
  const proxy = await startProxy(srv.url, { skewSeconds: -3600 });
  t.after(() => proxy.close());
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/behind` });
  const info = await client.getRecordInfo();
  sameToken(assert, info.record.access_token, rec.access_token);
  assert.ok(info.remainingSeconds > 3790 && info.remainingSeconds <= 3800, `remaining ${info.remainingSeconds}`);

  // by the local clock this token is within the 300 s minimum; by the server's it is not,
  // so the next calls are memory hits
  const again = await client.getRecordInfo();
  assert.equal(again.from, 'memory');
  assert.ok(again.remainingSeconds > 3790, `remaining ${again.remainingSeconds}`);
  assert.equal(proxy.count((r) => r.method === 'GET'), 1);

  // without the skew the client refuses the same token
  const direct = createClient({ apiUrl: `${srv.url}/v1/tokens/behind` });
  await assert.rejects(direct.getAccessToken(), (err) => err.code === 'EEXPIRED');
});
