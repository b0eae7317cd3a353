// Test harness for tokendist-client: starts the REAL tokendist binary, plus
// small local doubles that speak real protocols (Gitee contents API, a reverse
// proxy that counts requests / rewrites the Date header / injects faults).
//
// Lives outside test/ so that `node --test test/` does not run it as a test file.
// Nothing here prints a token: assertions go through sameToken(), which only
// shows fingerprints.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CLIENT_DIR = path.resolve(here, '..');
export const BIN = process.env.TOKENDIST_BIN
  ? path.resolve(CLIENT_DIR, process.env.TOKENDIST_BIN)
  : path.resolve(CLIENT_DIR, '../../build/tokendist');

/**
 * `skip` option for tests that need the server: a reason while the binary does
 * not exist yet; false when it exists. Under CI (CI=true) or with
 * TOKENDIST_REQUIRE_BIN=1 a missing binary is not skipped: the test runs and fails.
 */
export const NEEDS_BIN = fs.existsSync(BIN) || process.env.CI === 'true' || process.env.TOKENDIST_REQUIRE_BIN === '1'
  ? false
  : `tokendist binary not found at ${BIN} (build it: cmake -B build && cmake --build build, or set TOKENDIST_BIN)`;

/**
 * How long a test waits for something that must happen (ms): ample for a busy
 * machine; it only ends a test that has already failed. Tests wait for events
 * with it instead of timing fixed windows.
 */
export const DEADLINE_MS = Number(process.env.TOKENDIST_TEST_DEADLINE || 60) * 1000;

/**
 * Moves this process's clock -- Date.now, which the client reads -- instead of
 * sleeping when time is what a test is about (a token nearing its expiry). The
 * server keeps real time. Restored when the test ends.
 * Returns { advance(seconds) }.
 */
export function movableClock(t) {
  const real = Date.now;
  let offsetMs = 0;
  Date.now = () => real() + offsetMs;
  t.after(() => { Date.now = real; });
  return { advance: (seconds) => { offsetMs += seconds * 1000; } };
}

export function fp(token) {
  if (typeof token !== 'string') return String(token);
  return token.length < 12 ? `…(${token.length})` : `${token.slice(0, 6)}…${token.slice(-2)}`;
}

/** Token equality that never prints tokens on failure. */
export function sameToken(assert, actual, expected, what = 'token') {
  assert.ok(actual === expected, `${what}: got ${fp(actual)}, expected ${fp(expected)}`);
}

export function newToken(prefix = 't-test') {
  return `${prefix}${crypto.randomBytes(12).toString('hex')}`;
}

let seq = 0;
/** A seed-shaped record expiring `expireIn` seconds from now (local clock). */
export function makeRecord({ expireIn = 7200, token = newToken(), extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  // strictly increasing generated_timestamp, so a re-push is never "older" (409)
  seq += 1;
  const generated = now - 3000 + seq;
  const expire = now + expireIn;
  return {
    access_token: token,
    expire_time: '2024-01-15 16:30:00',
    expire_timestamp: expire,
    valid_duration_seconds: expire - generated,
    generated_time: '2024-01-15 14:30:00',
    generated_timestamp: generated,
    source: '财联社自动化系统',
    usage: '用于客户端从飞书群获取财联社电报文件',
    platform: '腾讯云函数',
    ...extra,
  };
}

/** A temp dir removed by the returned cleanup(). */
export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokendist-node-'));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  if (t && typeof t.after === 'function') t.after(cleanup);
  return { dir, cleanup };
}

export async function freePort() {
  const srv = http.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** A URL on which nothing listens. */
export async function deadUrl(p = '/release/get-token') {
  return `http://127.0.0.1:${await freePort()}${p}`;
}

// Servers still running when this test process exits (a failed test that never
// reached its cleanup) are killed, so none outlives the run.
const live = new Set();
process.on('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

async function waitHealthy(url, proc, deadlineMs) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return false;
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/**
 * Start `tokendist serve` on a free port with a sqlite store in a temp dir.
 * Returns { url, pushKey, readKey, push(record, name), stop(), output() }.
 */
export async function startServer({ readKey, extraArgs = [] } = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`tokendist binary not found at ${BIN}`);
  const { dir, cleanup } = tempDir();
  const pushKey = `push-${crypto.randomBytes(8).toString('hex')}`;
  let lastOutput = '';
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--store', `sqlite:${path.join(dir, 't.db')}`,
      '--push-key', pushKey];
    if (readKey) args.push('--read-key', readKey);
    args.push(...extraArgs);
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    live.add(proc);
    let spawnError = null;
    const exited = new Promise((r) => {
      proc.once('exit', (code, signal) => {
        live.delete(proc);
        r({ code, signal });
      });
      proc.once('error', (e) => { // could not start (e.g. the binary is being rebuilt)
        spawnError = e;
        live.delete(proc);
        r({ code: null, signal: null, error: e });
      });
    });
    const url = `http://127.0.0.1:${port}`;
    if (await Promise.race([waitHealthy(url, proc, DEADLINE_MS), exited.then(() => false)])) {
      let stopped = null;
      const stop = async () => {
        if (!stopped) {
          stopped = (async () => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
            const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
            const r = await exited;
            clearTimeout(timer);
            cleanup();
            return r;
          })();
        }
        return stopped;
      };
      const push = async (record, name = 'default', { pathOverride, expectStatus = 200 } = {}) => {
        const p = pathOverride || `/v1/tokens/${name}`;
        let res;
        try {
          res = await fetch(`${url}${p}`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${pushKey}`, 'Content-Type': 'application/json' },
            body: JSON.stringify(record),
          });
        } catch (e) {
          const state = proc.exitCode !== null || proc.signalCode !== null
            ? `the server exited (code ${proc.exitCode}, signal ${proc.signalCode})` : 'the server is still running';
          throw new Error(`push to ${p} failed: ${e.cause?.code || e.message}; ${state}`);
        }
        const text = await res.text();
        if (expectStatus !== undefined && res.status !== expectStatus) {
          // the body is the server's message, which never echoes the token
          throw new Error(`push to ${p}: HTTP ${res.status}, expected ${expectStatus}: ${text.slice(0, 200)}`);
        }
        return { status: res.status, text };
      };
      // Requests the server itself counted (Prometheus text on /metrics), summed over
      // statuses: tokendist_requests_total{route="ROUTE",status="…"} N
      const served = async (route = 'token_get') => {
        const text = await (await fetch(`${url}/metrics`)).text();
        let sum = 0;
        let seen = false;
        for (const line of text.split('\n')) {
          const m = /^tokendist_requests_total\{([^}]*)\}\s+(\d+)/.exec(line);
          if (m && m[1].includes(`route="${route}"`)) {
            sum += Number(m[2]);
            seen = true;
          }
        }
        if (!seen && !/tokendist_requests_total/.test(text)) throw new Error('no tokendist_requests_total in /metrics');
        return sum;
      };
      return { url, port, pushKey, readKey, push, served, stop, output: () => out, proc };
    }
    proc.kill('SIGKILL');
    await exited;
    lastOutput = spawnError ? `spawn failed: ${spawnError.code || spawnError.message}\n${out}` : out;
    if (spawnError) {
      await new Promise((r) => setTimeout(r, 1000)); // e.g. EACCES/ETXTBSY while it is being rebuilt
      continue;
    }
    if (!/in use|EADDRINUSE/i.test(out)) break;
  }
  cleanup();
  throw new Error(`tokendist serve did not become healthy; its output:\n${lastOutput.split('\n').slice(-20).join('\n')}`);
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function closeServer(server) {
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

/**
 * A reverse proxy in front of `target` (e.g. the real server): counts requests,
 * can rewrite the Date header (clock-skewed server) and can answer some
 * requests itself via `intercept(req, res, body) → true when handled`.
 */
export async function startProxy(target, { skewSeconds = 0, intercept } = {}) {
  const t = new URL(target);
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, path: req.url, headers: req.headers, body: body.toString('utf8') });
      const ic = proxy.intercept || intercept;
      if (ic && ic(req, res, body)) return;
      const up = http.request({
        host: t.hostname, port: t.port, method: req.method, path: req.url,
        headers: { ...req.headers, host: t.host },
      }, (ures) => {
        const headers = { ...ures.headers };
        if (skewSeconds) headers.date = new Date(Date.now() + skewSeconds * 1000).toUTCString();
        res.writeHead(ures.statusCode, ures.statusMessage, headers);
        ures.pipe(res);
      });
      up.on('error', (e) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy: ${e.code || e.message}`);
      });
      up.end(body);
    });
  });
  const port = await listen(server);
  const proxy = {
    url: `http://127.0.0.1:${port}`,
    requests,
    intercept: undefined,
    count: (pred = () => true) => requests.filter(pred).length,
    close: () => closeServer(server),
  };
  return proxy;
}

/**
 * A double of Gitee's contents API:
 *   GET /api/v5/repos/{owner}/{repo}/contents/{path}?ref=…&access_token=…
 * 200 → JSON with base64 `content` (wrapped with newlines, as Gitee does);
 * missing file → 404 {"message":"Not Found"} or [] (mode 'empty-array').
 */
export async function startGitee({ owner = 'alice', repo = 'tokens', file = 'token.json', branch, accessToken } = {}) {
  // state.date: a Date header to send instead of the real time (a Gitee whose clock says another time)
  const state = { record: undefined, missing: '404', status: 200, raw: undefined, date: undefined };
  const requests = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    requests.push({ path: u.pathname, query: Object.fromEntries(u.searchParams) });
    const send = (status, obj) => {
      if (state.date) res.setHeader('Date', state.date);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(obj));
    };
    const want = `/api/v5/repos/${owner}/${repo}/contents/${file}`;
    if (req.method !== 'GET') return send(405, { message: 'Method Not Allowed' });
    if (accessToken && u.searchParams.get('access_token') !== accessToken) {
      return send(401, { message: '401 Unauthorized: Access token does not exist' });
    }
    if (state.status !== 200) return send(state.status, { message: 'Internal Server Error' });
    if (decodeURIComponent(u.pathname) !== want) return send(404, { message: 'Not Found Project' });
    if (branch && u.searchParams.get('ref') !== branch) return send(404, { message: 'Not Found' });
    const text = state.raw !== undefined ? state.raw
      : state.record !== undefined ? JSON.stringify(state.record, null, 2) : undefined;
    if (text === undefined) return state.missing === 'empty-array' ? send(200, []) : send(404, { message: 'Not Found' });
    const b64 = Buffer.from(text, 'utf8').toString('base64').replace(/(.{60})/g, '$1\n');
    return send(200, {
      type: 'file',
      encoding: 'base64',
      size: Buffer.byteLength(text),
      name: path.basename(file),
      path: file,
      content: b64,
      sha: crypto.createHash('sha1').update(text).digest('hex'),
      url: `https://gitee.com/api/v5/repos/${owner}/${repo}/contents/${file}`,
      html_url: `https://gitee.com/${owner}/${repo}/blob/${branch || 'master'}/${file}`,
      download_url: `https://gitee.com/${owner}/${repo}/raw/${branch || 'master'}/${file}`,
      _links: {},
    });
  });
  const port = await listen(server);
  return {
    baseUrl: `http://127.0.0.1:${port}/api/v5`,
    options: { owner, repo, path: file, branch, accessToken, baseUrl: `http://127.0.0.1:${port}/api/v5` },
    state,
    requests,
    close: () => closeServer(server),
  };
}

/**
 * The project's own Gitee double (tests/doubles/gitee.py, the one the C tests
 * use, with POST/PUT) as a process, for the real refresher to write to.
 * Returns { url, baseUrl, accessToken, state(), control(cfg), stop() }.
 */
export async function startProjectGitee() {
  const { dir, cleanup } = tempDir();
  const portFile = path.join(dir, 'port');
  const script = path.resolve(CLIENT_DIR, '../../tests/doubles/gitee.py');
  const proc = spawn('python3', [script, '--port', '0', '--port-file', portFile],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  live.add(proc);
  const exited = new Promise((r) => proc.once('exit', () => { live.delete(proc); r(); }));
  const end = Date.now() + DEADLINE_MS;
  while (!fs.existsSync(portFile)) {
    if (Date.now() > end || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      cleanup();
      throw new Error(`the Gitee double did not start: ${err.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = `http://127.0.0.1:${fs.readFileSync(portFile, 'utf8').trim()}`;
  return {
    url,
    baseUrl: `${url}/api/v5`,
    accessToken: '0123456789abcdef0123456789abcdef',   // gitee.py's DEFAULT_TOKEN
    state: async () => (await fetch(`${url}/_state`)).json(),
    control: async (cfg) => (await fetch(`${url}/_control`, { method: 'POST', body: JSON.stringify(cfg) })).json(),
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
      cleanup();
    },
  };
}

/** A logger that keeps every line; `leaks(tokens)` lists lines containing any token. */
export function captureLogger() {
  const lines = [];
  const rec = (level) => (...a) => lines.push(`${level}: ${a.join(' ')}`);
  return {
    lines,
    logger: { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') },
    leaks: (tokens) => lines.filter((l) => tokens.some((tk) => tk && l.includes(tk))),
  };
}

/**
 * A double of Feishu's token endpoint
 *   POST /open-apis/auth/v3/app_access_token/internal  {app_id, app_secret}
 * → {code: 0, msg: "ok", app_access_token, tenant_access_token, expire}.
 * Every call mints a new token (as Feishu does inside its renewal window), so a
 * forced refresh yields a different one. `issued` lists the tokens handed out.
 */
// sameToken: answer every fetch with the first token (Feishu outside its
// 30-minute window); otherwise every fetch mints a new one.
export async function startFeishu({ appId = 'cli_tokendist_test', appSecret = 'feishu-secret-for-tests',
  sameToken: keep = false } = {}) {
  const issued = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const send = (obj) => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(obj));
      };
      if (req.method !== 'POST' || !/^\/open-apis\/auth\/v3\/(app|tenant)_access_token\/internal\/?$/.test(req.url)) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{"code":404,"msg":"404 page not found"}');
      }
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send({ code: 9499, msg: 'Bad Request' });
      }
      if (body.app_id !== appId || body.app_secret !== appSecret) {
        return send({ code: 10014, msg: 'app secret invalid' });
      }
      const token = keep && issued.length ? issued[0] : newToken('t-fs');
      issued.push(token);
      return send({ code: 0, msg: 'ok', app_access_token: token, tenant_access_token: token, expire: 7200 });
    });
  });
  const port = await listen(server);
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    appId,
    appSecret,
    issued,
    args: ['--app-id', appId, '--app-secret', appSecret, '--feishu-base-url', `http://127.0.0.1:${port}`],
    close: () => closeServer(server),
  };
}
