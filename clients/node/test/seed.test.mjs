// The seed's news.js object works as the options, unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, TokendistError } from '../index.mjs';
import { NEEDS_BIN, startServer, makeRecord, sameToken, tempDir } from '../testlib/harness.mjs';

test('createClient(TENCENT_CLOUD_CONFIG) against /release/get-token', { skip: NEEDS_BIN }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const rec = makeRecord();
  await srv.push(rec, 'default', { pathOverride: '/release/get-token' });

  // as in the seed's news.js
  const TENCENT_CLOUD_CONFIG = {
    ENABLED: true,
    API_URL: `${srv.url}/release/get-token`,
  };
  const client = createClient(TENCENT_CLOUD_CONFIG);
  sameToken(assert, await client.getAccessToken(), rec.access_token);
  const r = await client.getRecord();
  assert.equal(r.platform, '腾讯云函数');
  assert.equal(r.expire_timestamp, rec.expire_timestamp);

  // seed keys and new options mix
  const { dir } = tempDir(t);
  const mixed = createClient({ ...TENCENT_CLOUD_CONFIG, minRemainingSeconds: 60, cacheFile: `${dir}/c.json` });
  sameToken(assert, await mixed.getAccessToken(), rec.access_token);
});

test('configuration errors are ECONFIG and say what is wrong', () => {
  const bad = (opts, re) => assert.throws(() => createClient(opts), (err) => {
    assert.ok(err instanceof TokendistError);
    assert.equal(err.code, 'ECONFIG');
    assert.match(err.message, re);
    return true;
  });
  bad({ ENABLED: false, API_URL: 'https://x/release/get-token' }, /没有任何token来源/);
  bad({}, /没有任何token来源/);
  bad({ apiUrl: 'not a url' }, /apiUrl 不是合法URL/);
  bad({ apiUrl: 'ftp://x/get-token' }, /只支持 http/);
  bad({ apiUrl: 'https://x/get-token', field: 'app_token' }, /field/);
  bad({ apiUrl: 'https://x/get-token', timeoutMs: 0 }, /timeoutMs/);
  bad({ apiUrl: 'https://x/get-token', gitee: { owner: 'a', repo: 'b' } }, /gitee\.path/);
  bad(null, /需要一个对象/);
});

test('the seed\'s Python-style Gitee keys are understood', () => {
  const c = createClient({
    ENABLED: false,
    ENABLE_GITEE_TOKEN_SHARE: true,
    GITEE_ACCESS_TOKEN: 'pat',
    GITEE_OWNER: 'me',
    GITEE_REPO: 'r',
    GITEE_FILE_PATH: 'token.json',
  });
  assert.ok(c);
});
