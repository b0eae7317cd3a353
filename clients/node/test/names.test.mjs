// Token names: a name other than `default` never gets the default token silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, invalidUrlFor, TokendistError } from '../index.mjs';
import { NEEDS_BIN, startServer, startProxy, makeRecord, sameToken } from '../testlib/harness.mjs';

const configError = (fn, re) => assert.throws(fn, (err) => {
  assert.ok(err instanceof TokendistError);
  assert.equal(err.code, 'ECONFIG');
  assert.match(err.message, re);
  return true;
});

test('names the URL contradicts, cannot express, or that break the rule are ECONFIG', () => {
  configError(() => createClient({ apiUrl: 'https://h/v1/tokens/other', name: 'app2' }),
    /apiUrl 指向名称 'other'，与 name='app2' 不一致/);
  configError(() => createClient({ apiUrl: 'https://h/some/proxy/path', name: 'app2' }),
    /无法从 apiUrl 推导名称 'app2' 的地址/);
  configError(() => createClient({ apiUrl: 'https://h/get-token', name: 'Feishu-App' }),
    /token 名称 'Feishu-App' 无效: 应为 1-64 个小写字母、数字或下划线/);
  configError(() => createClient({ apiUrl: 'https://h/get-token', name: '' }), /token 名称 '' 无效/);
  // the same URL without a name, or with the URL's own name, is fine
  assert.ok(createClient({ apiUrl: 'https://h/v1/tokens/other' }));
  assert.ok(createClient({ apiUrl: 'https://h/v1/tokens/other', name: 'other' }));
  assert.ok(createClient({ apiUrl: 'https://h/some/proxy/path' }));
  // a bare host:port names the token by path
  assert.equal(invalidUrlFor('http://127.0.0.1:8080'), 'http://127.0.0.1:8080/v1/tokens/default/invalid');
});

test('the seed URL with a name reads and reports that name', { skip: NEEDS_BIN }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const def = makeRecord();
  const app2 = makeRecord();
  await srv.push(def);
  await srv.push(app2, 'app2');
  const proxy = await startProxy(srv.url);
  t.after(() => proxy.close());

  const client = createClient({ ENABLED: true, API_URL: `${proxy.url}/release/get-token`, name: 'app2' });
  sameToken(assert, await client.getAccessToken(), app2.access_token);
  assert.equal(proxy.requests[0].path, '/v1/tokens/app2');
  await client.reportInvalid(app2.access_token);
  assert.equal(proxy.requests[1].path, '/v1/tokens/app2/invalid');

  // host:port only
  const bare = createClient({ apiUrl: proxy.url, name: 'app2', refreshWaitMs: 0 });
  sameToken(assert, await bare.getAccessToken(), app2.access_token);
  assert.equal(proxy.requests.at(-1).path, '/v1/tokens/app2');

  // a name the server has no token for: 404, never the default token
  const none = createClient({ apiUrl: `${srv.url}/release/get-token`, name: 'app3' });
  await assert.rejects(none.getAccessToken(), (err) => {
    assert.equal(err.code, 'ENOTFOUND_TOKEN');
    assert.match(err.url, /\/v1\/tokens\/app3$/);
    return true;
  });
});

test('a URL is shown without its userinfo, whatever the password holds (the server\'s rule)', () => {
  // No URL parser accepts these (a '/' ends the host for it): the ECONFIG
  // message names each without any part of the password.
  for (const [url, shown] of [
    ['http://reader:Ab/cD@127.0.0.1:9/v1/tokens/x', 'http://***@127.0.0.1:9/v1/tokens/x'],
    ['http://:p?w#x@h:9/get-token', 'http://***@h:9/get-token'],
  ]) {
    configError(() => createClient({ apiUrl: url, name: 'other' }), new RegExp(`: ${shown.replace(/[.*?]/g, '\\$&')}$`));
  }
});
