#!/usr/bin/env node
/*
 * s3d -- a third-party S3 implementation (s3rver, from the npm registry)
 * behind a small proxy that makes it as strict as S3 and Tencent COS are
 * where tokendist relies on them:
 *
 *   - every request must carry a SigV4 Authorization header whose
 *     signature AWS's own signer (@smithy/signature-v4) computes the same
 *     from the request as received: else 403 SignatureDoesNotMatch, as S3
 *     answers (s3rver alone only checks that the key id exists);
 *   - x-amz-content-sha256 must be there and be the body's SHA-256 (400
 *     InvalidRequest / XAmzContentSHA256Mismatch), every x-amz-* header
 *     must be signed, the credential scope must name our region
 *     (AuthorizationHeaderMalformed) and x-amz-date be within 15 minutes;
 *   - with --token, x-amz-security-token must be that token (403 InvalidToken);
 *   - credentials expire as temporary ones do: POST /__s3d/rotate with
 *     {"key", "secret", "token"} makes that set the valid one and the one
 *     before it expired -- a request signed with an expired set is refused
 *     400 ExpiredToken ("The provided token has expired."), as S3 refuses
 *     an STS session past its expiry;
 *   - PUT honours If-Match / If-None-Match: * (412 PreconditionFailed) and
 *     COS's x-cos-forbid-overwrite: true (409 FileAlreadyExists), atomically
 *     per key (s3rver alone ignores them).  --no-conditional turns that off,
 *     to play a service that ignores conditional writes; --cos-conditional
 *     honours only x-cos-forbid-overwrite, the one COS's PUT Object
 *     documents.
 *
 * /__s3d/raw/BUCKET/KEY is a back door for the tests: GET, PUT or DELETE the
 * object without signature or conditions ("another tool wrote this");
 * /__s3d/rotate (above) is the STS service's side of temporary credentials.
 *
 * Usage: node s3d.js --dir DIR --bucket B --key ID --secret S [--token T]
 *          [--region R] [--port P] [--no-conditional|--cos-conditional] [--put-delay-ms N]
 *          [--log FILE]
 * Prints one JSON line {"port": P} on stdout once it listens; SIGTERM stops
 * it.  The objects stay in DIR, so a restart on the same DIR finds them.
 * Modules come from NODE_PATH (scripts/test installs them under the build
 * folder from tests/s3/package.json).
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const S3rver = require('s3rver');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');

function parseArgs(argv) {
  const o = { port: 0, region: 'ap-guangzhou', conditional: true, putDelayMs: 0 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--dir') o.dir = next();
    else if (a === '--bucket') o.bucket = next();
    else if (a === '--key') o.key = next();
    else if (a === '--secret') o.secret = next();
    else if (a === '--token') o.token = next();
    else if (a === '--region') o.region = next();
    else if (a === '--port') o.port = Number(next());
    else if (a === '--no-conditional') o.conditional = false;
    else if (a === '--cos-conditional') o.conditional = 'cos';
    else if (a === '--put-delay-ms') o.putDelayMs = Number(next());
    else if (a === '--log') o.log = next();
    else throw new Error('unknown argument ' + a);
  }
  for (const k of ['dir', 'bucket', 'key', 'secret'])
    if (!o[k]) throw new Error('--' + k + ' is required');
  return o;
}

const opts = parseArgs(process.argv);
/* The valid credentials, and the sets they replaced (expired). */
let creds = { key: opts.key, secret: opts.secret, token: opts.token };
const expired = [];
const logStream = opts.log ? fs.createWriteStream(opts.log, { flags: 'a' }) : null;

function xmlEscape(s) {
  return String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);
}

function fail(res, status, code, message) {
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + '</Code><Message>' +
    xmlEscape(message) + '</Message><RequestId>s3d-' + crypto.randomBytes(6).toString('hex') +
    '</RequestId></Error>';
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
  return status;
}

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

function amzDate(s) {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s || '');
  return m ? new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : null;
}

/* Checks req as S3 would; returns null when it passes, else sends the
 * refusal and returns its status. */
async function verify(req, res, body) {
  const auth = req.headers.authorization;
  if (!auth) return fail(res, 403, 'AccessDenied', 'Anonymous access is forbidden for this operation');
  const m = AUTH_RE.exec(auth);
  if (!m) return fail(res, 400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed');
  const [, keyId, , region, service, signedList, signature] = m;
  const tokenSent = req.headers['x-amz-security-token'];
  if (expired.some((c) => c.key === keyId && (!c.token || c.token === tokenSent) &&
                          !(keyId === creds.key && tokenSent === creds.token)))
    return fail(res, 400, 'ExpiredToken', 'The provided token has expired.');
  if (keyId !== creds.key)
    return fail(res, 403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  if (region !== opts.region)
    return fail(res, 400, 'AuthorizationHeaderMalformed',
      "The authorization header is malformed; the region '" + region + "' is wrong; expecting '" + opts.region + "'");
  if (service !== 's3') return fail(res, 400, 'AuthorizationHeaderMalformed', 'service must be s3');
  const signed = signedList.split(';');
  if (!signed.includes('host')) return fail(res, 403, 'AccessDenied', 'host must be signed');
  for (const h of Object.keys(req.headers))
    if (h.startsWith('x-amz-') && !signed.includes(h))
      return fail(res, 403, 'AccessDenied', 'There were headers present in the request which were not signed: ' + h);
  const sha = req.headers['x-amz-content-sha256'];
  if (!sha) return fail(res, 400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  if (sha !== 'UNSIGNED-PAYLOAD' && sha !== crypto.createHash('sha256').update(body).digest('hex'))
    return fail(res, 400, 'XAmzContentSHA256Mismatch',
      "The provided 'x-amz-content-sha256' header does not match what was computed.");
  const when = amzDate(req.headers['x-amz-date']);
  if (!when) return fail(res, 403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  if (Math.abs(Date.now() - when.getTime()) > 15 * 60 * 1000)
    return fail(res, 403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  if (creds.token && tokenSent !== creds.token)
    return fail(res, 403, 'InvalidToken', 'The provided token is malformed or otherwise invalid.');

  const headers = {};
  for (const h of signed) {
    if (req.headers[h] === undefined)
      return fail(res, 403, 'SignatureDoesNotMatch', 'signed header ' + h + ' is not in the request');
    headers[h] = req.headers[h];
  }
  const url = new URL(req.url, 'http://placeholder');
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? [].concat(query[k], v) : v;
  const signer = new SignatureV4({
    credentials: { accessKeyId: creds.key, secretAccessKey: creds.secret },
    region: opts.region, service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  const out = await signer.sign({
    method: req.method, protocol: 'http:', hostname: (req.headers.host || '').split(':')[0],
    path: req.url.split('?')[0], query, headers, body,
  }, { signingDate: when, signableHeaders: new Set(signed) });
  const expected = /Signature=([0-9a-f]{64})/.exec(out.headers.authorization)[1];
  const expectedList = /SignedHeaders=([^,]+)/.exec(out.headers.authorization)[1];
  if (expected !== signature || expectedList !== signedList)
    return fail(res, 403, 'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  return null;
}

/* One request at a time per key: the check of a precondition and the
 * write are one step, and no read sees half a write, as in S3. */
const keyLocks = new Map();
async function withKeyLock(key, fn) {
  const prev = keyLocks.get(key) || Promise.resolve();
  let release;
  const mine = new Promise((r) => { release = r; });
  const chained = prev.then(() => mine);
  keyLocks.set(key, chained);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (keyLocks.get(key) === chained) keyLocks.delete(key);
  }
}

function forward(port, req, body, headers) {
  return new Promise((resolve, reject) => {
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks) }));
    });
    up.on('error', reject);
    up.end(body);
  });
}

function upstreamHeaders(req, body) {
  const h = {};
  for (const [k, v] of Object.entries(req.headers)) {
    /* s3rver gets an anonymous request: we did the authentication. */
    if (['authorization', 'if-match', 'x-cos-forbid-overwrite', 'host', 'connection', 'expect'].includes(k)) continue;
    if (k === 'if-none-match' && req.method === 'PUT') continue;
    h[k] = v;
  }
  h['content-length'] = String(body.length);
  return h;
}

function sendBack(res, r) {
  const h = {};
  for (const [k, v] of Object.entries(r.headers)) if (!['connection', 'transfer-encoding'].includes(k)) h[k] = v;
  h['content-length'] = String(r.body.length);
  res.writeHead(r.status, h);
  res.end(r.body);
  return r.status;
}

function stripQuotes(s) { return String(s || '').replace(/"/g, ''); }

async function main() {
  fs.mkdirSync(opts.dir, { recursive: true });
  const s3rver = new S3rver({
    address: '127.0.0.1', port: 0, directory: opts.dir, silent: true,
    configureBuckets: [{ name: opts.bucket }],
  });
  const { port: upPort } = await s3rver.run();

  let sockets = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    const t0 = Date.now();
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      let status;
      try {
        if (req.url === '/__s3d/rotate' && req.method === 'POST') {
          const next = JSON.parse(body.toString('utf8'));
          if (!next.key || !next.secret) throw new Error('rotate needs key and secret');
          expired.push(creds);
          creds = { key: next.key, secret: next.secret, token: next.token || undefined };
          res.writeHead(204);
          res.end();
          status = 204;
        } else if (req.url.startsWith('/__s3d/raw/')) {
          const r = { method: req.method, url: req.url.slice('/__s3d/raw'.length), headers: req.headers };
          const h = upstreamHeaders(r, body);
          h['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
          status = await withKeyLock(r.url.split('?')[0], async () => sendBack(res, await forward(upPort, r, body, h)));
        } else if ((status = await verify(req, res, body)) === null) {
          status = await handle(req, res, body, upPort);
        }
        if (status === null) status = await handle(req, res, body, upPort);
      } catch (e) {
        status = fail(res, 500, 'InternalError', String(e && e.stack || e));
      }
      if (logStream)
        logStream.write(JSON.stringify({ method: req.method, path: req.url, status, ms: Date.now() - t0,
          conn: req.socket.s3dId,
          if_none_match: req.headers['if-none-match'] || null, if_match: req.headers['if-match'] || null }) + '\n');
    });
  });

  async function handle(req, res, body, port) {
    const send = (r) => sendBack(res, r);
    const key = req.url.split('?')[0];
    /* s3rver writes an object's content and metadata one after the other:
     * a read in between would see neither or half.  S3 is atomic per
     * object, so the proxy makes s3rver so. */
    if (req.method !== 'PUT')
      return withKeyLock(key, async () => send(await forward(port, req, body, upstreamHeaders(req, body))));
    if (opts.putDelayMs) await new Promise((r) => setTimeout(r, opts.putDelayMs));
    return withKeyLock(key, async () => {
      if (opts.conditional) {
        const cosOnly = opts.conditional === 'cos';
        const ifMatch = cosOnly ? undefined : req.headers['if-match'];
        const ifNoneMatch = cosOnly ? undefined : req.headers['if-none-match'];
        const forbid = String(req.headers['x-cos-forbid-overwrite'] || '').toLowerCase() === 'true';
        if (ifMatch || ifNoneMatch || forbid) {
          const head = await forward(port, { method: 'HEAD', url: key, headers: {} }, Buffer.alloc(0),
            { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' });
          const exists = head.status === 200;
          const etag = head.headers.etag;
          if (ifNoneMatch !== undefined && ifNoneMatch !== '*')
            return fail(res, 400, 'InvalidRequest', 'If-None-Match on PUT accepts only *');
          if (ifNoneMatch === '*' && exists)
            return fail(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
          if (ifMatch !== undefined && !exists)
            return fail(res, 404, 'NoSuchKey', 'The specified key does not exist.');
          if (ifMatch !== undefined && stripQuotes(ifMatch) !== stripQuotes(etag))
            return fail(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
          if (forbid && exists)
            return fail(res, 409, 'FileAlreadyExists', 'The object already exists and x-cos-forbid-overwrite is true');
        }
      }
      return send(await forward(port, req, body, upstreamHeaders(req, body)));
    });
  }

  server.on('connection', (sock) => { sock.s3dId = ++sockets; });
  server.keepAliveTimeout = 5000;
  server.listen(opts.port, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
  });
  const stop = () => {
    server.close();
    s3rver.close().catch(() => {}).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write('s3d: ' + (e && e.stack || e) + '\n');
  process.exit(1);
});
