// The sealed Gitee copy (shareKey): the test vector, the real refresher's
// sealed file, every way a file can be wrong refused with its code and a
// clear message (then the cache file), key rotation, bad keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { createClient } from '../index.mjs';
import {
  NEEDS_BIN, DEADLINE_MS, startServer, startFeishu, startGitee, startProjectGitee, makeRecord, sameToken,
  captureLogger, tempDir,
} from '../testlib/harness.mjs';
import { vector, newKey, kid, aad, sealText, seal, flipB64, withField } from '../testlib/sealer.mjs';

const V = vector();
const onlyGitee = (gitee, extra = {}) => createClient({ ENABLED: false, gitee: gitee.options, ...extra });

test('vector: kid, associated data and the envelope reproduced byte for byte', () => {
  assert.equal(kid(V.key), V.kid);
  assert.equal(aad(V.kid, V.name, V.generated_timestamp), V.aad);
  const text = sealText(V.key, V.name, V.generated_timestamp, V.plaintext, Buffer.from(V.nonce, 'base64'));
  assert.equal(text, V.file);
  assert.deepEqual(JSON.parse(text), V.envelope);
});

test('vector: the client opens it (Gitee\'s Date says the vector\'s time)', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  gitee.state.raw = V.file;
  gitee.state.date = new Date((V.generated_timestamp + 1800) * 1000).toUTCString();
  const record = JSON.parse(V.plaintext);
  for (const field of ['access_token', 'tenant_access_token']) {
    const client = onlyGitee(gitee, { shareKey: V.key, field });
    const info = await client.getRecordInfo();
    assert.equal(info.from, 'gitee');
    assert.deepEqual(info.record, record);
    sameToken(assert, await client.getAccessToken(), record[field]);
    assert.ok(info.remainingSeconds > 5000 && info.remainingSeconds <= 5400, `${info.remainingSeconds}`);
  }
});

test('a sealed file opens with the key (shareKey, or TOKENDIST_SHARE_KEY)', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  const key = newKey();
  const rec = makeRecord();
  gitee.state.raw = seal(key, rec);
  sameToken(assert, await onlyGitee(gitee, { shareKey: key }).getAccessToken(), rec.access_token);
  // the environment's name for it, as in a seed-style options object
  const seedStyle = onlyGitee(gitee, { TOKENDIST_SHARE_KEY: key });
  sameToken(assert, await seedStyle.getAccessToken(), rec.access_token);
});

test('each refusal: its code, a sentence that says what to do, no token in it', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  const key = newKey();
  const other = newKey();
  const rec = makeRecord();
  const file = seal(key, rec);
  const env = JSON.parse(file);
  const n = Buffer.from(env.ct, 'base64').length;
  const cases = [
    ['no key', file, undefined, 'ESHAREKEY', `记录已加密 (kid ${kid(key)})，但没有设置共享密钥: 请设置 TOKENDIST_SHARE_KEY`],
    ['wrong key', file, other, 'ESHAREKEY', `记录是用另一把共享密钥加密的 (kid ${kid(key)})，已设置的密钥是 kid ${kid(other)}`],
    ['unknown kid', withField(file, 'kid', '0123456789abcdef'), key, 'ESHAREKEY', '另一把共享密钥加密的 (kid 0123456789abcdef)'],
    ['flipped ct', flipB64(file, 'ct', 7), key, 'EINVALID', `加密记录未通过校验 (kid ${kid(key)}): 内容被改动过或已损坏`],
    ['flipped tag', flipB64(file, 'ct', n - 1), key, 'EINVALID', '未通过校验'],
    ['flipped nonce', flipB64(file, 'nonce', 4), key, 'EINVALID', '未通过校验'],
    ['changed time', withField(file, 'generated_timestamp', env.generated_timestamp + 1), key, 'EINVALID', '未通过校验'],
    ['another name', withField(file, 'name', 'wx'), key, 'EINVALID', "加密记录属于 token 'wx'，不是 'default'"],
    ['another version', withField(file, 'v', 2), key, 'EINVALID', 'v=2 不受支持'],
    ['another alg', withField(file, 'alg', 'A128GCM'), key, 'EINVALID', '算法 A128GCM 不受支持'],
    ['url-safe nonce', withField(file, 'nonce', `${env.nonce.slice(0, -1)}-`), key, 'EINVALID', 'nonce 无效'],
    ['plaintext while keyed', JSON.stringify(rec), key, 'ESHAREKEY', '记录未加密，但设置了共享密钥'],
  ];
  for (const [what, text, shareKey, code, says] of cases) {
    gitee.state.raw = text;
    const cap = captureLogger();
    const client = onlyGitee(gitee, { shareKey, logger: cap.logger });
    await assert.rejects(client.getAccessToken(), (err) => {
      assert.equal(err.code, code, `${what}: ${err.message}`);
      assert.equal(err.source, 'gitee', what);
      assert.ok(err.message.startsWith('❌ Gitee token获取失败: '), what);
      assert.ok(err.message.includes(says), `${what}: ${err.message}`);
      return true;
    }, what);
    assert.deepEqual(cap.leaks([rec.access_token, key, other]), [], what);
  }
});

test('a refused file: the cache file is used next', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  const { dir } = tempDir(t);
  const cacheFile = path.join(dir, 'cache.json');
  const cached = makeRecord();
  fs.writeFileSync(cacheFile, JSON.stringify(cached));
  gitee.state.raw = seal(newKey(), makeRecord());
  for (const shareKey of [undefined, newKey()]) {
    const info = await onlyGitee(gitee, { shareKey, cacheFile }).getRecordInfo();
    assert.equal(info.from, 'cache');
    sameToken(assert, info.record.access_token, cached.access_token);
  }
  fs.unlinkSync(cacheFile);
  await assert.rejects(onlyGitee(gitee, { cacheFile }).getAccessToken(), (err) => {
    assert.equal(err.code, 'EALLFAILED');
    assert.deepEqual(err.errors.map((e) => e.code), ['ESHAREKEY', 'ENOTFOUND_TOKEN']);
    return true;
  });
});

test('key rotation: new first and old second read old and new files', async (t) => {
  const gitee = await startGitee();
  t.after(() => gitee.close());
  const oldKey = newKey();
  const newKey_ = newKey();
  const oldRec = makeRecord();
  const newRec = makeRecord();
  for (const shareKey of [`${newKey_},${oldKey}`, [oldKey, newKey_], ` ${oldKey} , ${newKey_} `]) {
    gitee.state.raw = seal(oldKey, oldRec);
    sameToken(assert, await onlyGitee(gitee, { shareKey }).getAccessToken(), oldRec.access_token);
    gitee.state.raw = seal(newKey_, newRec);
    sameToken(assert, await onlyGitee(gitee, { shareKey }).getAccessToken(), newRec.access_token);
  }
  await assert.rejects(onlyGitee(gitee, { shareKey: oldKey }).getAccessToken(), { code: 'ESHAREKEY' });
});

test('bad keys are ECONFIG at creation and are never shown', () => {
  const good = newKey();
  const gitee = { owner: 'o', repo: 'r', path: 'p' };
  for (const [shareKey, place] of [[`${good.slice(0, -2)}-=`, 1], [`${good},${good.slice(0, -1)}`, 2], [`${good}==`, 1]]) {
    assert.throws(() => createClient({ gitee, shareKey }), (err) => {
      assert.equal(err.code, 'ECONFIG');
      assert.ok(err.message.includes(`第 ${place} 个密钥无效: 应为 32 字节随机数的 base64`), err.message);
      assert.ok(!err.message.includes(good.slice(0, 20)));
      return true;
    });
  }
  assert.throws(() => createClient({ gitee, shareKey: Array(9).fill(good) }), /最多 8 个密钥/);
  assert.throws(() => createClient({ gitee, shareKey: 42 }), { code: 'ECONFIG' });
});

test('the real refresher seals the file (no token in it, nor in any commit); the client opens it', { skip: NEEDS_BIN }, async (t) => {
  const feishu = await startFeishu();
  t.after(() => feishu.close());
  const gitee = await startProjectGitee();
  t.after(() => gitee.stop());
  const key = newKey();
  const srv = await startServer({ extraArgs: [...feishu.args, '--gitee', '--gitee-owner', 'tokendist', '--gitee-repo', 'tokens',
    '--gitee-file-path', 'token.json', '--gitee-access-token', gitee.accessToken, '--gitee-base-url', gitee.baseUrl,
    '--share-key', key] });
  t.after(() => srv.stop());
  const end = Date.now() + DEADLINE_MS;
  let state = await gitee.state();
  while (!state.commits.length && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    state = await gitee.state();
  }
  assert.ok(state.commits.length, `the refresher wrote no Gitee file: ${srv.output().slice(-1500)}`);
  const text = state.files['tokendist/tokens@master:token.json'].text;
  for (const tok of feishu.issued) {
    assert.ok(!text.includes(tok), 'the file holds no token');
    assert.ok(state.commits.every((c) => !c.text.includes(tok)), 'no commit holds a token');
  }
  assert.equal(JSON.parse(text).kid, kid(key));

  const options = { owner: 'tokendist', repo: 'tokens', path: 'token.json', accessToken: gitee.accessToken, baseUrl: gitee.baseUrl };
  const client = createClient({ ENABLED: false, gitee: options, shareKey: key });
  const info = await client.getRecordInfo();
  assert.equal(info.from, 'gitee');
  assert.ok(feishu.issued.includes(info.record.access_token), 'the token the refresher got from Feishu');
  await assert.rejects(createClient({ ENABLED: false, gitee: options }).getAccessToken(), { code: 'ESHAREKEY' });
});
