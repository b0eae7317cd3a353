// The errors name the cause where `tokendist get` does (issue #14): a wrong
// path on our server is "路径不对", a network failure names the address
// and what to check, and Node's own English follows our words.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { createClient } from '../index.mjs';
import { NEEDS_BIN, startServer, makeRecord, deadUrl } from '../testlib/harness.mjs';

let srv;
before(async () => {
  if (!NEEDS_BIN) srv = await startServer();
});
after(async () => {
  if (srv) await srv.stop();
});

test('a wrong path on our server is 路径不对, not an HTTP error or "no token yet"', { skip: NEEDS_BIN }, async () => {
  await srv.push(makeRecord());
  const client = createClient({ apiUrl: `${srv.url}/release/get-tokn?key=s3cret-in-query` });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'EHTTP');
    assert.equal(err.status, 404);
    assert.ok(!err.message.includes('s3cret'), 'no query secret in the message');
    assert.equal(err.message, '❌ 腾讯云函数 token获取失败: 路径不对: 服务端没有 /release/get-tokn 这个地址 '
      + '(HTTP 404 Not found)；tokendist 的地址以 /release/get-token 或 /v1/tokens/名称 结尾，也可以只写 http(s)://主机:端口');
    return true;
  });
});

test('a refused connection names the address and what to check', async () => {
  const url = await deadUrl('/release/get-token?key=s3cret-in-query');
  const { host } = new URL(url);
  await assert.rejects(createClient({ apiUrl: url }).getAccessToken(), (err) => {
    assert.equal(err.code, 'ENETWORK');
    assert.ok(!err.message.includes('s3cret'), 'no query secret in the message');
    assert.equal(err.message, `❌ 腾讯云函数 token获取失败: 网络错误: 无法连接 ${host}，`
      + '请检查地址、端口和防火墙，以及服务是否在运行 (ECONNREFUSED)');
    return true;
  });
});

test('a name that does not resolve names the host and DNS', async () => {
  await assert.rejects(createClient({ apiUrl: 'http://nosuchhost.invalid:9000/release/get-token', timeoutMs: 20000 })
    .getAccessToken(), (err) => {
    assert.equal(err.code, 'ENETWORK');
    assert.match(err.message, /^❌ 腾讯云函数 token获取失败: 网络错误: 无法解析主机名 nosuchhost\.invalid，请检查地址和 DNS \((ENOTFOUND|EAI_AGAIN)\)$/);
    return true;
  });
});

test('a timeout names the address and what to check', async (t) => {
  const quiet = net.createServer(() => {}); // accepts, never answers
  await new Promise((r) => quiet.listen(0, '127.0.0.1', r));
  t.after(() => { quiet.close(); for (const s of sockets) s.destroy(); });
  const sockets = new Set();
  quiet.on('connection', (s) => sockets.add(s));
  const host = `127.0.0.1:${quiet.address().port}`;
  await assert.rejects(createClient({ apiUrl: `http://${host}/release/get-token`, timeoutMs: 300 }).getAccessToken(), (err) => {
    assert.equal(err.code, 'ETIMEOUT');
    assert.equal(err.message, `❌ 腾讯云函数 token获取失败: 请求超时 (300ms): ${host} 没有及时应答，请检查服务是否在运行、网络是否通畅`);
    return true;
  });
});

test("Node's own English (bad port, fetch failed) comes after our words", async () => {
  // fetch() refuses the ports browsers block; port 1 is one of them.
  await assert.rejects(createClient({ apiUrl: 'http://127.0.0.1:1/release/get-token' }).getAccessToken(), (err) => {
    assert.equal(err.code, 'ENETWORK');
    assert.equal(err.message, '❌ 腾讯云函数 token获取失败: 网络错误: 端口不可用: Node 的 fetch 拒绝连接 127.0.0.1:1 这个端口 '
      + '(浏览器禁用的端口)，请换一个端口 (bad port)');
    return true;
  });
  const odd = async () => { throw new TypeError('fetch failed', { cause: new Error('something odd') }); };
  await assert.rejects(createClient({ apiUrl: 'http://127.0.0.1:9/x', fetch: odd }).getAccessToken(), (err) => {
    assert.equal(err.message, '❌ 腾讯云函数 token获取失败: 网络错误: 请求 127.0.0.1:9 失败，请检查地址和网络 '
      + '(something odd; fetch failed)');
    return true;
  });
});
