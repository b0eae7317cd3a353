// endpoint → Gitee → cache file, and the errors when everything fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { createClient } from '../index.mjs';
import {
  NEEDS_BIN, startServer, startProxy, startGitee, makeRecord, sameToken, tempDir, deadUrl, captureLogger,
} from '../testlib/harness.mjs';

test('server down (stopped with SIGTERM) → Gitee', { skip: NEEDS_BIN }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop()); // stop() is idempotent; this covers an early failure
  const rec = makeRecord();
  await srv.push(rec, 'default', { pathOverride: '/release/get-token' });
  const apiUrl = `${srv.url}/release/get-token`;
  // while it is up, the endpoint wins
  const before = createClient({ apiUrl });
  assert.equal((await before.getRecordInfo()).from, 'endpoint');
  await srv.stop();

  const gitee = await startGitee({ branch: 'main', accessToken: 'gitee-pat-123' });
  t.after(() => gitee.close());
  const giteeRec = makeRecord();
  gitee.state.record = giteeRec;
  const cap = captureLogger();
  const client = createClient({ apiUrl, gitee: gitee.options, logger: cap.logger, timeoutMs: 1000 });
  const info = await client.getRecordInfo();
  assert.equal(info.from, 'gitee');
  sameToken(assert, info.record.access_token, giteeRec.access_token);
  assert.equal(gitee.requests.length, 1);
  assert.deepEqual(gitee.requests[0].query, { ref: 'main', access_token: 'gitee-pat-123' });
  assert.equal(gitee.requests[0].path, '/api/v5/repos/alice/tokens/contents/token.json');
  assert.ok(cap.lines.some((l) => l.includes('腾讯云函数 token获取失败: 网络错误')), 'the endpoint failure is logged');
  assert.deepEqual(cap.leaks(['gitee-pat-123', giteeRec.access_token]), []);
  // then from memory
  assert.equal((await client.getRecordInfo()).from, 'memory');
  assert.equal(gitee.requests.length, 1);
});

test('Gitee: missing file as 404 or [] and a wrong access token are clear errors', async (t) => {
  const gitee = await startGitee({ accessToken: 'right' });
  t.after(() => gitee.close());
  const only = (opts) => createClient({ ENABLED: false, API_URL: 'http://127.0.0.1:9/release/get-token', gitee: { ...gitee.options, ...opts } });

  await assert.rejects(only().getAccessToken(), (err) => {
    assert.equal(err.code, 'ENOTFOUND_TOKEN');
    assert.equal(err.message, '❌ Gitee token获取失败: 文件不存在 (token.json)');
    return true;
  });
  gitee.state.missing = 'empty-array';
  await assert.rejects(only().getAccessToken(), (err) => err.code === 'ENOTFOUND_TOKEN' && err.source === 'gitee');

  gitee.state.record = makeRecord();
  await assert.rejects(only({ accessToken: 'wrong' }).getAccessToken(), (err) => {
    assert.equal(err.code, 'EAUTH');
    assert.equal(err.status, 401);
    assert.ok(!err.message.includes('wrong') && !err.url.includes('wrong'), 'the Gitee token is redacted');
    return true;
  });
  gitee.state.raw = 'not json';
  await assert.rejects(only().getAccessToken(), (err) => err.code === 'EINVALID' && /不是JSON/.test(err.message));
  gitee.state.raw = JSON.stringify({ access_token: 'x' });
  await assert.rejects(only().getAccessToken(), (err) => err.code === 'EINVALID' && /缺少字段 expire_time/.test(err.message));
});

test('server and Gitee down → cache file written by an earlier run (atomic, mode 0600)', { skip: NEEDS_BIN }, async (t) => {
  const { dir } = tempDir(t);
  const cacheFile = path.join(dir, 'sub', 'token-cache.json');
  const srv = await startServer();
  t.after(() => srv.stop());
  const rec = makeRecord({ extra: { tenant_access_token: 't-tenant-abcdefghijkl' } });
  await srv.push(rec);
  const apiUrl = `${srv.url}/v1/tokens/default`;

  const first = createClient({ apiUrl, cacheFile });
  sameToken(assert, await first.getAccessToken(), rec.access_token);
  const st = fs.statSync(cacheFile);
  assert.equal(st.mode & 0o777, 0o600, `cache file mode ${(st.mode & 0o777).toString(8)}`);
  const onDisk = JSON.parse(fs.readFileSync(cacheFile, 'utf8'));
  sameToken(assert, onDisk.access_token, rec.access_token, 'cached access_token');
  assert.equal(onDisk.tenant_access_token, rec.tenant_access_token, 'extras are cached too');
  assert.deepEqual(fs.readdirSync(path.dirname(cacheFile)), ['token-cache.json'], 'no temp files left behind');

  await srv.stop();
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.status = 500;

  const second = createClient({ apiUrl, gitee: gitee.options, cacheFile, timeoutMs: 1000 });
  const info = await second.getRecordInfo();
  assert.equal(info.from, 'cache');
  sameToken(assert, info.record.access_token, rec.access_token);
  assert.ok(info.remainingSeconds > 7000);
  assert.equal(gitee.requests.length, 1, 'Gitee was tried before the cache');
});

test('a newer token replaces the cache file', { skip: NEEDS_BIN }, async (t) => {
  const { dir } = tempDir(t);
  const cacheFile = path.join(dir, 'c.json');
  const srv = await startServer();
  t.after(() => srv.stop());
  const a = makeRecord();
  await srv.push(a);
  await createClient({ apiUrl: `${srv.url}/v1/tokens/default`, cacheFile }).getAccessToken();
  const b = makeRecord();
  await srv.push(b);
  await createClient({ apiUrl: `${srv.url}/v1/tokens/default`, cacheFile }).getAccessToken();
  sameToken(assert, JSON.parse(fs.readFileSync(cacheFile, 'utf8')).access_token, b.access_token);
  assert.equal(fs.statSync(cacheFile).mode & 0o777, 0o600);
  assert.deepEqual(fs.readdirSync(dir), ['c.json']);
});

test('the cache file names its token: another name is refused, the default gets the record without the members', { skip: NEEDS_BIN }, async (t) => {
  // Two scripts share one cache file (TOKENDIST_CACHE_FILE set once in a profile).
  const { dir } = tempDir(t);
  const cacheFile = path.join(dir, 'token.json');
  const srv = await startServer();
  t.after(() => srv.stop());
  const rec = makeRecord();
  await srv.push(rec);
  const apiUrl = srv.url;
  await createClient({ apiUrl, cacheFile }).getAccessToken();
  const onDisk = JSON.parse(fs.readFileSync(cacheFile, 'utf8'));
  assert.deepEqual([onDisk.tokendist_name, onDisk.tokendist_kind], ['default', 'token']);
  await srv.stop();
  await assert.rejects(createClient({ apiUrl, name: 'wechat', cacheFile, timeoutMs: 1000 }).getAccessToken(), (err) => {
    assert.equal(err.code, 'EALLFAILED');
    const last = err.errors[err.errors.length - 1];
    assert.equal(last.code, 'ENOTFOUND_TOKEN');
    assert.equal(last.message, "❌ 本地缓存 token获取失败: 缓存文件属于 token 'default'，不是 'wechat': 每个 token 名称请用自己的缓存文件");
    return true;
  });
  const info = await createClient({ apiUrl, cacheFile, timeoutMs: 1000 }).getRecordInfo();
  assert.equal(info.from, 'cache');
  sameToken(assert, info.record.access_token, rec.access_token);
  assert.equal('tokendist_name' in info.record || 'tokendist_kind' in info.record, false);
});

test('a cache file of a jsapi_ticket, or from before the members (with a BOM)', async (t) => {
  const { dir } = tempDir(t);
  const cacheFile = path.join(dir, 'token.json');
  const only = { ENABLED: false, API_URL: 'https://example.invalid/release/get-token', cacheFile };
  const rec = makeRecord();
  fs.writeFileSync(cacheFile, JSON.stringify({ ...rec, tokendist_name: 'default', tokendist_kind: 'jsapi_ticket' }));
  await assert.rejects(createClient(only).getAccessToken(), (err) => {
    assert.equal(err.code, 'ENOTFOUND_TOKEN');
    assert.match(err.message, /^❌ 本地缓存 token获取失败: 缓存文件存的是 token 'default' 的 jsapi_ticket，不是 access token: /);
    return true;
  });
  fs.writeFileSync(cacheFile, `\uFEFF${JSON.stringify(rec)}`);
  sameToken(assert, await createClient(only).getAccessToken(), rec.access_token);
  await assert.rejects(createClient({ ...only, name: 'wechat' }).getAccessToken(), (err) => {
    assert.equal(err.code, 'ENOTFOUND_TOKEN');
    assert.match(err.message, /缓存文件没有标明属于哪个 token \(旧格式\)，只当作 token 'default' 的 access token，不是 'wechat' 的 access token/);
    return true;
  });
  fs.writeFileSync(cacheFile, JSON.stringify({ ...rec, tokendist_name: 'Bad Name' }));
  await assert.rejects(createClient(only).getAccessToken(), (err) => {
    assert.equal(err.code, 'EINVALID');
    assert.match(err.message, /缓存文件的 tokendist_name 或 tokendist_kind 无效/);
    return true;
  });
});

test('Gitee is asked at most once a minute per client, waiting after a report included', async (t) => {
  // The C library's rule: Gitee publishes no limit and one repository serves many
  // clients, so within a minute a client uses Gitee's last answer (record or failure).
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.record = makeRecord({ expireIn: 200 }); // below the 300 s minimum: every get falls through
  const client = createClient({ apiUrl: await deadUrl(), gitee: gitee.options, timeoutMs: 2000 });
  for (let i = 0; i < 20; i += 1) {
    await assert.rejects(client.getAccessToken(), (err) => err.code === 'EALLFAILED' && err.errors[1].code === 'EEXPIRED');
  }
  assert.equal(gitee.requests.length, 1);

  const rec = makeRecord();
  gitee.state.record = rec;
  const waiting = createClient({ apiUrl: await deadUrl(), gitee: gitee.options, timeoutMs: 2000, refreshWaitMs: 3000 });
  const token = await waiting.getAccessToken();
  await waiting.reportInvalid(token);
  // Nothing else turns up during the wait: the reported token again, Gitee asked once for both gets.
  sameToken(assert, await waiting.getAccessToken(), token);
  assert.equal(gitee.requests.length, 2);

  gitee.state.status = 500;
  const failing = createClient({ apiUrl: await deadUrl(), gitee: gitee.options, timeoutMs: 2000 });
  for (let i = 0; i < 3; i += 1) {
    await assert.rejects(failing.getAccessToken(), (err) => /Gitee token获取失败: HTTP 500/.test(err.message));
  }
  assert.equal(gitee.requests.length, 3);
});

test('only the cache file configured, and it is missing → clear error', async (t) => {
  const { dir } = tempDir(t);
  const client = createClient({ ENABLED: false, API_URL: 'https://example.invalid/release/get-token', cacheFile: path.join(dir, 'none.json') });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'ENOTFOUND_TOKEN');
    assert.equal(err.message, '❌ 本地缓存 token获取失败: 缓存文件不存在');
    return true;
  });
});

test('expired everywhere → EALLFAILED naming each source and why', { skip: NEEDS_BIN }, async (t) => {
  const { dir } = tempDir(t);
  const cacheFile = path.join(dir, 'c.json');
  fs.writeFileSync(cacheFile, JSON.stringify(makeRecord({ expireIn: -600 })), { mode: 0o600 });
  const srv = await startServer();
  t.after(() => srv.stop());
  await srv.push(makeRecord({ expireIn: 120 })); // the server serves it; the client wants ≥ 300 s
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.record = makeRecord({ expireIn: -30 });

  const client = createClient({ apiUrl: `${srv.url}/v1/tokens/default`, gitee: gitee.options, cacheFile });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'EALLFAILED');
    assert.equal(err.reason, 'expired');
    assert.deepEqual(err.errors.map((e) => [e.source, e.code]),
      [['endpoint', 'EEXPIRED'], ['gitee', 'EEXPIRED'], ['cache', 'EEXPIRED']]);
    const lines = err.message.split('\n');
    assert.equal(lines[0], '❌ token获取失败: 所有来源的token均已过期或即将过期');
    assert.match(lines[1], /^ {2}- 腾讯云函数 token获取失败: token即将过期 \(剩余 1[01]\d 秒，要求至少 300 秒\) \[http:\/\/127\.0\.0\.1:\d+\/v1\/tokens\/default\]$/);
    assert.match(lines[2], /^ {2}- Gitee token获取失败: token已过期 \(已过期 (29|3\d) 秒\) \[alice\/tokens\/token\.json\]$/);
    assert.match(lines[3], /^ {2}- 本地缓存 token获取失败: token已过期 \(已过期 \d+ 秒\) \[.*c\.json\]$/);
    return true;
  });
  // the expired cache file is left as it was (not overwritten by refused records)
  assert.ok(JSON.parse(fs.readFileSync(cacheFile, 'utf8')).expire_timestamp < Date.now() / 1000);
});

test('all sources down → EALLFAILED listing each failure', async (t) => {
  const { dir } = tempDir(t);
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.status = 503;
  const url = await deadUrl();
  const client = createClient({ apiUrl: url, gitee: gitee.options, cacheFile: path.join(dir, 'missing.json') });
  await assert.rejects(client.getAccessToken(), (err) => {
    assert.equal(err.code, 'EALLFAILED');
    assert.equal(err.reason, 'failed');
    assert.deepEqual(err.errors.map((e) => e.code), ['ENETWORK', 'EHTTP', 'ENOTFOUND_TOKEN']);
    assert.match(err.message, /^❌ token获取失败: 所有来源均失败\n {2}- 腾讯云函数 token获取失败: 网络错误: 无法连接 127\.0\.0\.1:\d+，请检查地址、端口和防火墙，以及服务是否在运行 \(ECONNREFUSED\) \[/);
    assert.match(err.message, /\n {2}- Gitee token获取失败: HTTP 503: Service Unavailable/);
    assert.match(err.message, /\n {2}- 本地缓存 token获取失败: 缓存文件不存在/);
    return true;
  });
});

test('ENABLED: false skips the endpoint entirely (no request reaches it)', { skip: NEEDS_BIN }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  await srv.push(makeRecord(), 'default', { pathOverride: '/release/get-token' });
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());
  const gitee = await startGitee();
  t.after(() => gitee.close());
  const giteeRec = makeRecord();
  gitee.state.record = giteeRec;

  const TENCENT_CLOUD_CONFIG = { ENABLED: false, API_URL: `${proxy.url}/release/get-token` };
  const client = createClient({ ...TENCENT_CLOUD_CONFIG, gitee: gitee.options });
  const info = await client.getRecordInfo();
  assert.equal(info.from, 'gitee');
  sameToken(assert, info.record.access_token, giteeRec.access_token);
  assert.equal(proxy.requests.length, 0);
});
