// The seed's news.js object works as the options, unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, TokendistError } from '../index.mjs';
import {
  NEEDS_BIN, startServer, startGitee, makeRecord, sameToken, tempDir, deadUrl,
} from '../testlib/harness.mjs';

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

test('ENABLE_GITEE_TOKEN_SHARE false (also as the environment\'s text) turns the Gitee keys off, as in Python and C', async (t) => {
  const gitee = await startGitee({ owner: 'me', repo: 'r' });
  t.after(() => gitee.close());
  gitee.state.record = makeRecord();
  const keys = {
    GITEE_OWNER: 'me', GITEE_REPO: 'r', GITEE_FILE_PATH: 'token.json', GITEE_BASE_URL: gitee.baseUrl, apiUrl: await deadUrl(),
  };
  for (const off of [false, 'false', 'False', '0', 'no', 'off']) {
    await assert.rejects(createClient({ ...keys, ENABLE_GITEE_TOKEN_SHARE: off }).getAccessToken(),
      (err) => err.code === 'ENETWORK', `ENABLE_GITEE_TOKEN_SHARE=${JSON.stringify(off)}`);
  }
  assert.equal(gitee.requests.length, 0);
  for (const on of [undefined, true, 'true', '1', 'on']) {
    sameToken(assert, await createClient({ ...keys, ENABLE_GITEE_TOKEN_SHARE: on }).getAccessToken(), gitee.state.record.access_token);
  }
  assert.equal(gitee.requests.length, 5);
  assert.throws(() => createClient({ ...keys, ENABLE_GITEE_TOKEN_SHARE: 'maybe' }), /ENABLE_GITEE_TOKEN_SHARE 应为 true 或 false/);
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
