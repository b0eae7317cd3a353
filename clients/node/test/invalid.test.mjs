// Feishu said "invalid token": reportInvalid(), withToken(), isFeishuInvalidTokenError().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  createClient, withToken, isFeishuInvalidTokenError, invalidUrlFor, FEISHU_INVALID_TOKEN_CODES,
} from '../index.mjs';
import {
  NEEDS_BIN, DEADLINE_MS, startServer, startProxy, startGitee, makeRecord, sameToken, deadUrl, captureLogger,
} from '../testlib/harness.mjs';

test('invalidUrlFor: derivation of the report URL', () => {
  const cases = [
    ['https://h.example/release/get-token', 'https://h.example/v1/tokens/default/invalid'],
    ['https://h.example/get-token', 'https://h.example/v1/tokens/default/invalid'],
    ['https://h.example/prefix/release/get-token?x=1#f', 'https://h.example/prefix/v1/tokens/default/invalid'],
    ['http://127.0.0.1:8080/v1/tokens/default', 'http://127.0.0.1:8080/v1/tokens/default/invalid'],
    ['http://127.0.0.1:8080/v1/tokens/feishu_app_2/', 'http://127.0.0.1:8080/v1/tokens/feishu_app_2/invalid'],
    ['https://h.example/gw/v1/tokens/x', 'https://h.example/gw/v1/tokens/x/invalid'],
  ];
  for (const [from, to] of cases) assert.equal(invalidUrlFor(from), to, from);
  assert.equal(invalidUrlFor('https://h.example/something-else'), null);
  assert.equal(invalidUrlFor('https://h.example/v1/tokens/'), null);
  assert.equal(invalidUrlFor('https://h.example/v1/tokens/Feishu-App'), null); // not a token name
  assert.equal(invalidUrlFor('not a url'), null);
});

test('isFeishuInvalidTokenError recognises 99991663/99991664/99991668/99991671 only', () => {
  assert.deepEqual([...FEISHU_INVALID_TOKEN_CODES], [99991663, 99991664, 99991668, 99991671]);
  for (const code of FEISHU_INVALID_TOKEN_CODES) {
    assert.equal(isFeishuInvalidTokenError({ code, msg: 'Invalid access token for authorization.' }), true, String(code));
    assert.equal(isFeishuInvalidTokenError(JSON.stringify({ code, msg: 'x' })), true);
    assert.equal(isFeishuInvalidTokenError({ code: String(code) }), true);
  }
  const axiosLike = Object.assign(new Error('Request failed with status code 400'), {
    response: { status: 400, data: { code: 99991663, msg: 'Invalid access token' } },
  });
  assert.equal(isFeishuInvalidTokenError(axiosLike), true);
  assert.equal(isFeishuInvalidTokenError(new Error('feishu error 99991671: token expired')), true);
  assert.equal(isFeishuInvalidTokenError('{"code":99991668,"msg":"Invalid access token for authorization."}'), true);
  assert.equal(isFeishuInvalidTokenError(new Error('feishu error 99991668')), true);
  for (const no of [{ code: 0, msg: 'success' }, { code: 99991400 }, { code: 999916630 }, '{"code":0}', null, undefined,
    42, 'ok', new Error('ECONNRESET'), { data: { code: 1254302 } }]) {
    assert.equal(isFeishuInvalidTokenError(no), false, JSON.stringify(no));
  }
});

let srv;
before(async () => {
  if (!NEEDS_BIN) srv = await startServer();
});
after(async () => {
  if (srv) await srv.stop();
});

let n = 0;
const uniqueName = () => `inv_${process.pid}_${++n}`;
const postsTo = (suffix) => (r) => r.method === 'POST' && r.path.endsWith(suffix);

test('reportInvalid: the server already has another token → 200 + that record, used at once', { skip: NEEDS_BIN }, async (t) => {
  const name = uniqueName();
  const a = makeRecord();
  await srv.push(a, name);
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/${name}` });
  sameToken(assert, await client.getAccessToken(), a.access_token);

  const b = makeRecord();
  await srv.push(b, name);
  const result = await client.reportInvalid(a.access_token);
  assert.equal(result.status, 200);
  assert.equal(result.reported, true);
  assert.equal(result.replaced, true);
  assert.equal(result.url, `${proxy.url}/v1/tokens/${name}/invalid`);
  const post = proxy.requests.find(postsTo('/invalid'));
  assert.deepEqual(JSON.parse(post.body), { access_token: a.access_token });
  assert.match(post.headers['content-type'], /application\/json/);

  const getsBefore = proxy.count((r) => r.method === 'GET');
  const info = await client.getRecordInfo();
  sameToken(assert, info.record.access_token, b.access_token);
  assert.equal(info.from, 'memory');
  assert.equal(proxy.count((r) => r.method === 'GET'), getsBefore, 'the 200 body was used; no extra GET');
});

test('reportInvalid with the seed URL posts to /v1/tokens/default/invalid with the read key', { skip: NEEDS_BIN }, async (t) => {
  const a = makeRecord();
  await srv.push(a);
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());
  const client = createClient({ ENABLED: true, API_URL: `${proxy.url}/release/get-token`, readKey: 'rk-1', refreshWaitMs: 200 });
  sameToken(assert, await client.getAccessToken(), a.access_token);
  const b = makeRecord();
  await srv.push(b);
  const result = await client.reportInvalid(a.access_token);
  assert.equal(result.url, `${proxy.url}/v1/tokens/default/invalid`);
  const post = proxy.requests.find(postsTo('/invalid'));
  assert.equal(post.path, '/v1/tokens/default/invalid');
  assert.equal(post.headers.authorization, 'Bearer rk-1');
  assert.equal(result.status, 200);
  sameToken(assert, await client.getAccessToken(), b.access_token);
});

test('reportInvalid → 202: the next get polls until the server has a different token', { skip: NEEDS_BIN }, async (t) => {
  // The real 202 (server with its Feishu refresher) is covered in
  // refresher.test.mjs. Here the proxy answers the one /invalid call with 202
  // and the new token arrives by a push 700 ms later, to check the polling;
  // everything else goes to the real server.
  const name = uniqueName();
  const a = makeRecord();
  await srv.push(a, name);
  const proxy = await startProxy(srv.url, {
    intercept: (req, res) => {
      if (req.method !== 'POST' || !req.url.endsWith('/invalid')) return false;
      res.writeHead(202, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ success: true, message: '已开始刷新，请稍后再取 token' }));
      return true;
    },
  });
  t.after(() => proxy.close());
  // refreshWaitMs generous: the push below may come late on a busy machine
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/${name}`, refreshWaitMs: DEADLINE_MS });
  sameToken(assert, await client.getAccessToken(), a.access_token);

  const result = await client.reportInvalid(a.access_token);
  assert.deepEqual({ reported: result.reported, status: result.status, refreshing: result.refreshing },
    { reported: true, status: 202, refreshing: true });

  const b = makeRecord();
  const t0 = Date.now();
  const pushLater = new Promise((r) => setTimeout(r, 700)).then(() => srv.push(b, name));
  const tok = await client.getAccessToken();
  const waited = Date.now() - t0;
  await pushLater;
  sameToken(assert, tok, b.access_token, 'the refreshed token');
  assert.ok(waited >= 500, `waited ${waited} ms`);
  assert.ok(proxy.count((r) => r.method === 'GET') >= 3, 'it polled');
});

test('reportInvalid → 202 but nothing new within refreshWaitMs: the old token is served again with a warning', { skip: NEEDS_BIN }, async (t) => {
  const name = uniqueName();
  const a = makeRecord();
  await srv.push(a, name);
  const proxy = await startProxy(srv.url, {
    intercept: (req, res) => {
      if (req.method !== 'POST') return false;
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"success":true,"message":"已开始刷新，请稍后再取 token"}');
      return true;
    },
  });
  t.after(() => proxy.close());
  const cap = captureLogger();
  // The wait starts at the report, before its POST: 2 s, so that a busy
  // machine still gets the POST and the first fetch inside it (at 600 ms
  // the window had sometimes passed unseen, and with it the warning).
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/${name}`, refreshWaitMs: 2000, logger: cap.logger });
  await client.getAccessToken();
  // timed from before the report, where the wait starts: a busy machine can only lengthen it
  const t0 = Date.now();
  await client.reportInvalid(a.access_token);
  sameToken(assert, await client.getAccessToken(), a.access_token);
  assert.ok(Date.now() - t0 >= 300, 'it waited for a new token first');
  assert.ok(cap.lines.some((l) => l.startsWith('warn:') && l.includes('仍只拿到已报告无效的token')));
  assert.deepEqual(cap.leaks([a.access_token]), []);
});

test('reportInvalid → 409 for another platform\'s token: the error names no platform of its own, the server\'s words say which', { skip: NEEDS_BIN }, async (t) => {
  // A WeChat token: the server's 409 speaks for WeChat (src/api.c); the
  // client once said "飞书仍在发放此token" whatever the token's platform.
  const name = uniqueName();
  const a = makeRecord({ extra: { provider: 'wechat' } });
  await srv.push(a, name);
  const said = '微信仍在发放此 token，没有新的可换 (微信确认此 token 仍然有效)；请检查调用失败的其他原因：接口权限';
  const proxy = await startProxy(srv.url, {
    intercept: (req, res) => {
      if (req.method !== 'POST' || !req.url.endsWith('/invalid')) return false;
      res.writeHead(409, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ success: false, message: said }));
      return true;
    },
  });
  t.after(() => proxy.close());
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/${name}`, logger: captureLogger().logger });
  await client.getAccessToken();
  const result = await client.reportInvalid(a.access_token);
  assert.equal(result.status, 409);
  assert.equal(result.error.code, 'ESAME');
  assert.match(result.error.message, /^❌ 腾讯云函数 无效token上报: 平台仍在发放此token t-\w{4}…\w\w，没有新的可换 \(/);
  assert.ok(result.error.message.includes(said), result.error.message);
  assert.ok(!result.error.message.includes('飞书'), result.error.message);
});

test('reportInvalid for the current token on a server without a refresher is not fatal', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const a = makeRecord();
  await srv.push(a, name);
  const cap = captureLogger();
  const quiet = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}`, refreshWaitMs: 300, logger: cap.logger });
  await quiet.getAccessToken();
  // tokendist without Feishu credentials cannot refresh: it refuses (501 today); the
  // report must resolve, not throw
  const result = await quiet.reportInvalid(a.access_token);
  assert.equal(result.reported, false);
  assert.equal(result.replaced, false);
  assert.ok(result.status >= 400, `status ${result.status}`);
  assert.equal(result.error.code, 'EHTTP');
  assert.match(result.error.message, /^❌ 腾讯云函数 无效token上报失败: HTTP \d{3}: /);
  assert.ok(cap.lines.some((l) => l.includes('无效token上报失败')));
  assert.deepEqual(cap.leaks([a.access_token]), []);
  // the next get still works (after waiting refreshWaitMs for a different token)
  sameToken(assert, await quiet.getAccessToken(), a.access_token);
});

test('reporting to a dead endpoint is not fatal; the next fetch goes on to Gitee', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  const a = makeRecord();
  const b = makeRecord();
  gitee.state.record = a;
  const url = await deadUrl();
  // Gitee is asked at most once a minute (GITEE_INTERVAL_MS): b can only
  // arrive a minute after a was fetched, so the wait is that minute plus
  // the usual deadline -- with DEADLINE_MS alone two 60 s timers raced.
  const client = createClient({ apiUrl: url, gitee: gitee.options, refreshWaitMs: 60000 + DEADLINE_MS });
  sameToken(assert, await client.getAccessToken(), a.access_token);

  const result = await client.reportInvalid(a.access_token);
  assert.equal(result.reported, false);
  assert.equal(result.error.code, 'ENETWORK');
  assert.equal(result.url, url.replace('/release/get-token', '/v1/tokens/default/invalid'));

  setTimeout(() => { gitee.state.record = b; }, 300);
  const info = await client.getRecordInfo();
  assert.equal(info.from, 'gitee');
  sameToken(assert, info.record.access_token, b.access_token);
});

test('many concurrent reports of one token → one POST', { skip: NEEDS_BIN }, async (t) => {
  const name = uniqueName();
  const a = makeRecord();
  await srv.push(a, name);
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());
  const client = createClient({ apiUrl: `${proxy.url}/v1/tokens/${name}` });
  await client.getAccessToken();
  await srv.push(makeRecord(), name);
  const results = await Promise.all(Array.from({ length: 10 }, () => client.reportInvalid(a.access_token)));
  assert.ok(results.every((r) => r === results[0]));
  assert.equal(proxy.count(postsTo('/invalid')), 1);
});

test('withToken: a Feishu invalid answer → report, fresh token, one more call', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const a = makeRecord();
  await srv.push(a, name);
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}` });
  await client.getAccessToken(); // a is in memory now
  const b = makeRecord();
  await srv.push(b, name); // …and the server already has b

  const seen = [];
  // returns the parsed body, as a caller using fetch(...).then(r => r.json()) would
  const callFeishu = async (token) => {
    seen.push(token);
    return token === b.access_token ? { code: 0, msg: 'success', data: {} }
      : { code: 99991663, msg: 'Invalid access token for authorization. Please make a request with token attached.' };
  };
  const out = await withToken(client, callFeishu);
  assert.equal(out.code, 0);
  assert.equal(seen.length, 2);
  sameToken(assert, seen[0], a.access_token, 'first call');
  sameToken(assert, seen[1], b.access_token, 'second call');
});

test('withToken: thrown axios-like errors and fetch Responses are recognised too', { skip: NEEDS_BIN }, async () => {
  for (const style of ['throw', 'response']) {
    const name = uniqueName();
    const a = makeRecord();
    await srv.push(a, name);
    const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}` });
    await client.getAccessToken();
    const b = makeRecord();
    await srv.push(b, name);
    let calls = 0;
    const out = await withToken(client, async (token) => {
      calls += 1;
      const bad = token !== b.access_token;
      if (style === 'throw') {
        if (bad) throw Object.assign(new Error('Request failed with status code 400'), { response: { status: 400, data: { code: 99991671, msg: 'x' } } });
        return 'ok';
      }
      return new Response(JSON.stringify(bad ? { code: 99991664, msg: 'x' } : { code: 0 }), {
        status: bad ? 400 : 200, headers: { 'content-type': 'application/json' },
      });
    });
    assert.equal(calls, 2, style);
    if (style === 'response') assert.deepEqual(await out.json(), { code: 0 });
    else assert.equal(out, 'ok');
  }
});

test('withToken: a non-JSON Response (a file download) is not read', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.record = makeRecord();
  const client = createClient({ ENABLED: false, API_URL: 'https://x.invalid/release/get-token', gitee: gitee.options });
  let calls = 0;
  const res = await withToken(client, () => {
    calls += 1;
    return new Response('{"code": 99991663} looks like JSON but is a file', {
      status: 200, headers: { 'content-type': 'application/octet-stream' },
    });
  });
  assert.equal(calls, 1);
  assert.equal(res.bodyUsed, false);
  assert.match(await res.text(), /is a file/);
});

test('withToken: other errors pass through untouched and nothing is reported', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.record = makeRecord();
  const client = createClient({ ENABLED: false, API_URL: 'https://x.invalid/release/get-token', gitee: gitee.options, refreshWaitMs: 300 });
  let calls = 0;
  const boom = new Error('feishu 500');
  await assert.rejects(withToken(client, () => { calls += 1; throw boom; }), (err) => err === boom);
  assert.equal(calls, 1);
  assert.deepEqual(await withToken(client, () => ({ code: 0 })), { code: 0 });
  // an invalid answer but no different token to be had → the first outcome, fn called once
  calls = 0;
  const r = await withToken(client, () => { calls += 1; return { code: 99991663 }; });
  assert.deepEqual(r, { code: 99991663 });
  assert.equal(calls, 1);
});

test('isInvalidTokenError: WeChat/WeCom errcodes and DingTalk InvalidAuthentication in JSON; not a bare number in text', async () => {
  const { isInvalidTokenError } = await import('../index.mjs');
  for (const yes of [{ errcode: 40001, errmsg: 'invalid credential' }, '{"errcode":42001,"errmsg":"access_token expired"}',
    { errcode: 40014 }, { response: { data: { errcode: 40001 } } }, { code: 'InvalidAuthentication', message: '不合法的access_token' },
    { code: 99991663 }]) {
    assert.equal(isInvalidTokenError(yes), true, JSON.stringify(yes));
  }
  for (const no of [{ errcode: 0, errmsg: 'ok' }, { errcode: 45009 }, 'error 40001 somewhere', { code: 'Forbidden' }, null]) {
    assert.equal(isInvalidTokenError(no), false, JSON.stringify(no));
  }
});

test('withToken: a WeChat errcode 40001 answer → report, fresh token, one more call', { skip: NEEDS_BIN }, async () => {
  const name = uniqueName();
  const a = makeRecord({ extra: { provider: 'wechat' } });
  await srv.push(a, name);
  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/${name}` });
  await client.getAccessToken(); // a is in memory now
  const b = makeRecord({ extra: { provider: 'wechat' } });
  await srv.push(b, name); // …and the server already has b
  const seen = [];
  const out = await withToken(client, async (token) => {
    seen.push(token);
    return token === b.access_token ? { errcode: 0, errmsg: 'ok' } : { errcode: 40001, errmsg: 'invalid credential' };
  });
  assert.equal(out.errcode, 0);
  assert.equal(seen.length, 2);
  sameToken(assert, seen[1], b.access_token, 'second call');
});
