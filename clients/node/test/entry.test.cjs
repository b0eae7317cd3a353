// The package entries: require() and import give one implementation; the
// package name resolves through package.json "exports"; types file exists.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

test('require("tokendist-client") and import() share one implementation', async () => {
  const cjs = require('tokendist-client'); // self-reference through "exports"
  assert.equal(cjs, require(path.join(root, 'index.cjs')));
  const esm = await import('tokendist-client');
  for (const k of ['createClient', 'TokendistError', 'withToken', 'isFeishuInvalidTokenError', 'invalidUrlFor', 'fingerprint']) {
    assert.equal(typeof cjs[k], 'function', k);
    assert.equal(esm[k], cjs[k], k);
  }
  assert.equal(esm.default, cjs);
  assert.equal(cjs.default, cjs);
  const err = new esm.TokendistError('EHTTP', 'x');
  assert.ok(err instanceof cjs.TokendistError);
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'TokendistError');
});

test('package.json: name, engines, exports, zero dependencies', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'tokendist-client');
  assert.equal(pkg.engines.node, '>=18');
  assert.equal(pkg.scripts.test, 'node --test test/');
  assert.deepEqual(pkg.exports['.'], { types: './index.d.ts', import: './index.mjs', require: './index.cjs' });
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.devDependencies, undefined);
  for (const f of pkg.files) assert.ok(fs.existsSync(path.join(root, f)), f);
});

test('the implementation imports nothing but node: built-ins', () => {
  const src = fs.readFileSync(path.join(root, 'index.cjs'), 'utf8');
  const reqs = [...src.matchAll(/require\(['"]([^'"]+)['"]\)/g)].map((m) => m[1]);
  assert.ok(reqs.length > 0);
  for (const r of reqs) assert.match(r, /^node:/, r);
});

test('fingerprint never shows more than 8 characters of a token', () => {
  const { fingerprint } = require('tokendist-client');
  assert.equal(fingerprint('t-g1044ghEGNOJ5OSQF5OYATETPB'), 't-g104…PB');
  assert.equal(fingerprint('short'), '…(5字符)');
  assert.equal(fingerprint(''), '(无)');
});
