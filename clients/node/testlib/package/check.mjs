// The package as people get it: `npm pack` of clients/node, installed offline
// from the tarball into an empty project, compiles with TypeScript in three
// project setups (tsc --noEmit) and runs on each given Node binary.
//
//   node check.mjs --tools DIR --types-node VERSION --node BIN [--node BIN ...]
//
// DIR holds typescript (DIR/node_modules/typescript) and the npm cache
// (DIR/npm-cache) that scripts/test-clients filled; nothing is downloaded here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startServer, makeRecord } from '../harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const clientDir = path.resolve(here, '../..');
const { values } = parseArgs({
  options: { tools: { type: 'string' }, 'types-node': { type: 'string' }, node: { type: 'string', multiple: true } },
});
const tools = path.resolve(values.tools);
const cache = path.join(tools, 'npm-cache');
const tsc = path.join(tools, 'node_modules', 'typescript', 'bin', 'tsc');
const EXPECTED_FILES = ['README.md', 'index.cjs', 'index.d.ts', 'index.mjs', 'package.json'];

let failed = 0;
function check(what, ok, detail = '') {
  console.log(`${ok ? 'ok' : 'FAILED'}: ${what}${!ok && detail ? `\n${detail}` : ''}`);
  if (!ok) failed += 1;
  return ok;
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  return { ok: r.status === 0, out: `${r.stdout || ''}${r.stderr || ''}${r.error ? r.error.message : ''}`.trim() };
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tokendist-npm-'));
const srv = { stop: async () => {} };
try {
  // 1. npm pack: exactly the files "files" names
  const pack = run('npm', ['pack', '--json', '--pack-destination', work, '--cache', cache], clientDir);
  if (!check('npm pack', pack.ok, pack.ok ? '' : pack.out)) process.exit(1);
  const [info] = JSON.parse(pack.out.slice(pack.out.indexOf('[')));
  const files = info.files.map((f) => f.path).sort();
  check(`the tarball holds ${EXPECTED_FILES.join(', ')}`, JSON.stringify(files) === JSON.stringify(EXPECTED_FILES),
    files.join(', '));

  // 2. an empty project installs it from the tarball, offline
  const app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{"name": "app", "version": "1.0.0", "private": true}\n');
  const inst = run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--cache', cache,
    path.join(work, info.filename), `@types/node@${values['types-node']}`], app);
  if (!check(`npm install --offline ./${info.filename} into an empty project`, inst.ok, inst.ok ? '' : inst.out)) {
    process.exit(1);
  }
  const installed = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
  check('it is a dependency of the project', Boolean(installed.dependencies && installed.dependencies['tokendist-client']));

  // 3. its types compile in three setups
  for (const f of fs.readdirSync(here)) {
    if (/\.(mts|cts|ts|json)$/.test(f) || f === 'smoke.mjs') fs.copyFileSync(path.join(here, f), path.join(app, f));
  }
  const version = run(process.execPath, [tsc, '--version'], app).out;
  for (const cfg of ['dom', 'node', 'classic']) {
    const r = run(process.execPath, [tsc, '-p', `tsconfig.${cfg}.json`], app);
    check(`tsc --noEmit -p tsconfig.${cfg}.json (${version})`, r.ok, r.out);
  }

  // 4. it runs on each Node binary, against the real server
  Object.assign(srv, await startServer());
  const rec = makeRecord();
  await srv.push(rec);
  for (const node of values.node || []) {
    const r = run(node, ['smoke.mjs', srv.url, rec.access_token], app);
    const line = r.out.split('\n').find((l) => l.startsWith('ok node ')) || '';
    check(`the installed package runs on ${line.slice(3) || node}`, r.ok && line !== '', r.ok ? '' : r.out);
  }
} finally {
  await srv.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
