'use strict';
/*
 * tokendist-client — dependency-free Node.js (>= 18) client for tokendist,
 * the drop-in replacement of the seed's "腾讯云函数" token distribution.
 *
 * This single file is the whole implementation (index.mjs re-exports it), so
 * it can also be copied next to a seed-era news.js and required directly.
 *
 * Never logs or throws a token: only fingerprints such as `t-g104…PB`.
 */

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { STATUS_CODES } = require('node:http');

/* ------------------------------------------------------------------ */
/* constants                                                          */
/* ------------------------------------------------------------------ */

/** Feishu answers meaning "this access token is invalid / expired". */
// 99991668: the gateway's "Invalid access token for authorization" for a token it
// cannot use (seen for JWT-shaped tokens); the others: Feishu's generic error codes.
const FEISHU_INVALID_TOKEN_CODES = Object.freeze([99991663, 99991664, 99991668, 99991671]);

/** The seed's nine fields and their JSON types. */
const RECORD_FIELDS = Object.freeze({
  access_token: 'string',
  expire_time: 'string',
  expire_timestamp: 'number',
  valid_duration_seconds: 'number',
  generated_time: 'string',
  generated_timestamp: 'number',
  source: 'string',
  usage: 'string',
  platform: 'string',
});

const FIELDS = Object.freeze(['access_token', 'tenant_access_token']);

const LABEL = Object.freeze({
  endpoint: '腾讯云函数',
  gitee: 'Gitee',
  cache: '本地缓存',
});

/** |Date header − local clock| below this is within the header's 1 s precision plus latency: ignored. */
const SKEW_IGNORE_MS = 2000;
/** The first pause while waiting for a token other than the reported one; it doubles up to 2 s. */
const WAIT_FIRST_MS = 250;
const WAIT_MAX_MS = 2000;
/**
 * Gitee is asked at most this often per client (it publishes no rate limit, and
 * one token repository serves many clients); meanwhile its last answer stands.
 * The C library's and the Python client's rule.
 */
const GITEE_INTERVAL_MS = 60000;
const MAX_BODY_BYTES = 1024 * 1024;

/* ------------------------------------------------------------------ */
/* errors and small helpers                                           */
/* ------------------------------------------------------------------ */

class TokendistError extends Error {
  /**
   * @param {string} code  ENOTFOUND_TOKEN | EHTTP | EAUTH | ENETWORK | ETIMEOUT |
   *                       EEXPIRED | EINVALID | ESTALE | EALLFAILED | ECONFIG | ESHAREKEY
   * @param {string} message
   * @param {object} [extra] source, url, status, errors, cause
   */
  constructor(code, message, extra) {
    super(message, extra && extra.cause ? { cause: extra.cause } : undefined);
    this.name = 'TokendistError';
    this.code = code;
    if (extra) {
      for (const k of ['source', 'url', 'status', 'errors', 'remainingSeconds', 'reason']) {
        if (extra[k] !== undefined) this[k] = extra[k];
      }
    }
  }
}

/** `t-g1044ghEGNOJ5OSQF5OYATETPB` → `t-g104…PB`. Safe to log. */
function fingerprint(token) {
  if (typeof token !== 'string' || token.length === 0) return '(无)';
  if (token.length < 12) return `…(${token.length}字符)`;
  return `${token.slice(0, 6)}…${token.slice(-2)}`;
}

/**
 * Hide the credentials a URL may carry: the whole userinfo becomes `***`
 * (by the server's rule, src/httpc.h: from `://` to the last `@` before the
 * first `/`, `?` or `#` after the first `@` -- a password may hold `/`,
 * which a URL parser takes for the end of the host), and query parameters
 * whose names look like secrets. Works on text, so a URL no parser accepts
 * is hidden too.
 */
function redactUrl(url) {
  let s = String(url);
  const i = s.indexOf('://');
  const first = i < 0 ? -1 : s.indexOf('@', i + 3);
  if (first >= 0) {
    const m = s.slice(first).search(/[/?#]/);
    const at = s.lastIndexOf('@', m < 0 ? s.length : first + m);
    s = `${s.slice(0, i + 3)}***${s.slice(at)}`;
  }
  try {
    const u = new URL(s);
    let hidden = false;
    for (const k of [...u.searchParams.keys()]) {
      if (/token|key|secret|sign|sig|auth|password/i.test(k)) u.searchParams.set(k, '***'), hidden = true;
    }
    return hidden ? u.toString() : s;
  } catch {
    return s;
  }
}

/**
 * Where a request went, for a message: `host:port` only, so neither the
 * userinfo nor a query (a Gitee access_token) can reach it.
 */
function hostOf(url) {
  try {
    return new URL(url).host || String(url);
  } catch {
    return '(无法解析的地址)';
  }
}

/*
 * A failed fetch() in our words, naming the address and what to check (the
 * C client's words, src/httpc.c curl_what); Node's own text (`fetch failed`,
 * `bad port`, the errno name) follows in parentheses, as it is what a search
 * finds.
 */
function networkWhy(err, url) {
  const host = hostOf(url);
  const c = err && err.cause;
  const code = (c && c.code) || (err && err.code) || '';
  const text = (c && c.message) || (err && err.message) || String(err);
  // Every piece of the original once: "ECONNRESET; other side closed; fetch failed".
  const said = [code, c && c.message, err && err.message].filter((x, i, a) => x && a.indexOf(x) === i
    && !a.slice(0, i).some((y) => y && y.includes(x)));
  const orig = said.join('; ') || String(err);
  switch (code) {
    case 'ECONNREFUSED':
      return `无法连接 ${host}，请检查地址、端口和防火墙，以及服务是否在运行 (${code})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `无法解析主机名 ${host.replace(/:\d+$/, '')}，请检查地址和 DNS (${code})`;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `连接 ${host} 超时，请检查地址、端口和防火墙 (${code})`;
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return `与 ${host} 的连接中断，请检查服务是否在运行、中间的代理是否断开了连接 (${orig})`;
    default:
      break;
  }
  if (/^bad port$/i.test(text)) {
    // fetch() refuses the ports browsers block (1, 6000, ...): the address
    // may be right, the port cannot be used from Node.
    return `端口不可用: Node 的 fetch 拒绝连接 ${host} 这个端口 (浏览器禁用的端口)，请换一个端口 (bad port)`;
  }
  return `请求 ${host} 失败，请检查地址和网络 (${orig})`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const SILENT = Object.freeze({ debug() {}, info() {}, warn() {}, error() {} });

function makeLogger(logger) {
  if (!logger) return SILENT;
  const pick = (name, ...fallbacks) => {
    for (const n of [name, ...fallbacks]) {
      if (typeof logger[n] === 'function') return (...a) => logger[n](...a);
    }
    return () => {};
  };
  return {
    debug: pick('debug'),
    info: pick('info', 'log'),
    warn: pick('warn', 'log'),
    error: pick('error', 'warn', 'log'),
  };
}

/**
 * Check a record: the seed's nine fields with the right JSON types, a non-empty
 * token in `field`, timestamps that make sense. Returns null when valid, else a
 * Chinese description of the first problem (never containing a token).  A
 * record without `tenant_access_token` is valid for that field too: its
 * `access_token` stands in (see tokenOf).
 */
function validateRecord(record, field = 'access_token') {
  if (!isPlainObject(record)) return '数据不是JSON对象';
  for (const [name, type] of Object.entries(RECORD_FIELDS)) {
    if (!(name in record)) return `缺少字段 ${name}`;
    const v = record[name];
    if (type === 'number' ? typeof v !== 'number' || !Number.isFinite(v) : typeof v !== type) {
      return `字段 ${name} 类型错误 (应为 ${type})`;
    }
  }
  if (record.access_token.length === 0) return '字段 access_token 为空';
  if (field !== 'access_token' && field in record) {
    if (typeof record[field] !== 'string') return `字段 ${field} 类型错误 (应为 string)`;
    if (record[field].length === 0) return `字段 ${field} 为空`;
  }
  if (record.expire_timestamp <= record.generated_timestamp) {
    return 'expire_timestamp 不大于 generated_timestamp';
  }
  return null;
}

/**
 * The token of `field` in a valid record.  A record without
 * `tenant_access_token` (the seed's own producer writes none) gives its
 * `access_token` for it: for Feishu's internal apps both are the same string.
 * The C and Python clients do the same.
 */
function tokenOf(record, field) {
  return field !== 'access_token' && typeof record[field] === 'string' ? record[field] : record.access_token;
}

/** The expiry (Unix seconds) that applies to `field`'s token. */
function expiryOf(record, field) {
  if (field === 'tenant_access_token' && typeof record[field] === 'string'
      && typeof record.tenant_expire_timestamp === 'number'
      && Number.isFinite(record.tenant_expire_timestamp) && record.tenant_expire_timestamp > 0) {
    return record.tenant_expire_timestamp;
  }
  return record.expire_timestamp;
}

const NAME_RE = /^[a-z0-9_]{1,64}$/;
const NAME_RULE = '1-64 个小写字母、数字或下划线 (a-z 0-9 _)';
const DEFAULT_NAME = 'default';

/**
 * Where to read and where to report, for one configured URL and token name
 * (the rules of the Python and C clients):
 *  - `http(s)://host[:port]`           → GET `…/v1/tokens/NAME`, report `…/v1/tokens/NAME/invalid`
 *  - `…/v1/tokens/X`                   → GET as given, report `…/v1/tokens/X/invalid`
 *  - `…/release/get-token`, `…/get-token` → as given for `default` (report
 *    `…/v1/tokens/default/invalid`); for another NAME the server's
 *    `…/v1/tokens/NAME` beside it, since the seed's path only knows `default`
 *  - any other path                    → GET as given, no report URL; `default` only
 * A name the URL contradicts or cannot express throws ECONFIG: serving the
 * `default` token to a client that asked for another would be silently wrong.
 */
function endpointUrls(apiUrl, name = DEFAULT_NAME, nameGiven = false) {
  let u;
  try {
    u = new URL(apiUrl);
  } catch {
    throw configError(`apiUrl 不是合法URL: ${redactUrl(apiUrl)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw configError(`apiUrl 只支持 http/https: ${redactUrl(apiUrl)}`);
  }
  const base = `${u.protocol}//${u.host}`;
  const p = u.pathname.replace(/\/+$/, '');
  const named = (n) => ({ url: `${base}${n}`, reportUrl: `${base}${n}/invalid` });
  if (p === '') return named(`/v1/tokens/${name}`);
  let m;
  if ((m = /^(.*)\/v1\/tokens\/([^/]*)$/.exec(p)) && NAME_RE.test(m[2])) {
    if (nameGiven && m[2] !== name) {
      throw configError(`apiUrl 指向名称 '${m[2]}'，与 name='${name}' 不一致: ${redactUrl(apiUrl)}`);
    }
    return { url: String(apiUrl), reportUrl: `${base}${p}/invalid` };
  }
  if ((m = /^(.*?)\/(?:release\/)?get-token$/.exec(p))) {
    if (name === DEFAULT_NAME) return { url: String(apiUrl), reportUrl: `${base}${m[1]}/v1/tokens/default/invalid` };
    return named(`${m[1]}/v1/tokens/${name}`);
  }
  if (name !== DEFAULT_NAME) {
    throw configError(`无法从 apiUrl 推导名称 '${name}' 的地址 (应以 /release/get-token、/get-token 或 `
      + `/v1/tokens/名称 结尾，或只写到端口): ${redactUrl(apiUrl)}`);
  }
  return { url: String(apiUrl), reportUrl: null };
}

/**
 * 401, 403, or -- from our own server only -- the 429 it answers an address
 * that failed too often (it carries WWW-Authenticate; a service's own rate
 * limit, Gitee's included, does not count): the key is what to check in each
 * case (the C client's rule, src/endpoint.c td_endpoint_refuses_key).
 */
function refusesKey(from, res) {
  if (res.status === 401 || res.status === 403) return true;
  const h = from === 'endpoint' && res.status === 429 && res.headers && typeof res.headers.get === 'function'
    ? res.headers.get('www-authenticate') : null;
  return h != null;
}

/** Why our server answered 404 `Not found`: the URL's path is not one of its addresses. */
function wrongPathWhy(url) {
  let p = '/';
  try {
    p = new URL(url).pathname || '/';
  } catch { /* keep '/' */ }
  return `路径不对: 服务端没有 ${p} 这个地址 (HTTP 404 Not found)；tokendist 的地址以 /release/get-token 或 `
    + '/v1/tokens/名称 结尾，也可以只写 http(s)://主机:端口';
}

/**
 * The report URL derived from a GET URL for the `default` name (see
 * endpointUrls), without query string or fragment; null when there is none.
 */
function invalidUrlFor(apiUrl) {
  try {
    return endpointUrls(apiUrl).reportUrl;
  } catch {
    return null;
  }
}

/* ------------------------------------------------------------------ */
/* the cache file                                                     */
/* ------------------------------------------------------------------ */

/*
 * The cache file is the record plus two members naming what it holds, so
 * that a client of another name (or `tokendist get --ticket`) sharing the
 * path does not take it for its own: the rule of the C and Python clients
 * (docs/protocol.md, "The client cache file").
 */
const CACHE_NAME = 'tokendist_name';
const CACHE_KIND = 'tokendist_kind';
const KIND_TOKEN = 'token';
const KIND_LABEL = Object.freeze({ token: 'access token', jsapi_ticket: 'jsapi_ticket' });

function cacheRefused(code, why) {
  return new TokendistError(code, `❌ 本地缓存 token获取失败: ${why}`, { source: 'cache' });
}

/**
 * The record in a parsed cache file, for a client of token `name` and `kind`
 * (this client only knows 'token'), without the two members. A file written
 * for another name or kind holds no token for this client (ENOTFOUND_TOKEN);
 * one without the members, from before them, counts as `default`'s token.
 */
function openCache(doc, name, kind = KIND_TOKEN) {
  if (!isPlainObject(doc)) throw cacheRefused('EINVALID', '缓存文件不是JSON对象');
  const hasN = Object.prototype.hasOwnProperty.call(doc, CACHE_NAME);
  const hasK = Object.prototype.hasOwnProperty.call(doc, CACHE_KIND);
  const n = doc[CACHE_NAME];
  const k = doc[CACHE_KIND];
  if ((hasN && !(typeof n === 'string' && NAME_RE.test(n)))
      || (hasK && !(typeof k === 'string' && Object.prototype.hasOwnProperty.call(KIND_LABEL, k)))) {
    throw cacheRefused('EINVALID', `缓存文件的 ${CACHE_NAME} 或 ${CACHE_KIND} 无效`);
  }
  const writtenName = hasN ? n : DEFAULT_NAME;
  const writtenKind = hasK ? k : KIND_TOKEN;
  if (!hasN && !hasK && (writtenName !== name || writtenKind !== kind)) {
    throw cacheRefused('ENOTFOUND_TOKEN', '缓存文件没有标明属于哪个 token (旧格式)，只当作 token \'default\' 的 access token，'
      + `不是 '${name}' 的 ${KIND_LABEL[kind]}: 请换一个缓存文件`);
  }
  if (writtenName !== name) {
    throw cacheRefused('ENOTFOUND_TOKEN', `缓存文件属于 token '${writtenName}'，不是 '${name}': 每个 token 名称请用自己的缓存文件`);
  }
  if (writtenKind !== kind) {
    throw cacheRefused('ENOTFOUND_TOKEN', `缓存文件存的是 token '${writtenName}' 的 ${KIND_LABEL[writtenKind]}，`
      + `不是 ${KIND_LABEL[kind]}: access token 和 jsapi_ticket 请用不同的缓存文件`);
  }
  const record = { ...doc };
  delete record[CACHE_NAME];
  delete record[CACHE_KIND];
  return record;
}

/* ------------------------------------------------------------------ */
/* the sealed Gitee copy                                              */
/* ------------------------------------------------------------------ */

/*
 * With a share key the refresher writes the Gitee file sealed: the record
 * encrypted and authenticated with AES-256-GCM in a versioned envelope
 *   {"v":1,"alg":"A256GCM","kid":…,"name":…,"generated_timestamp":…,"nonce":…,"ct":…}
 * The rules are docs/protocol.md's ("The sealed Gitee copy"), pinned down by
 * tests/vectors/sealed-v1.json; the C library and the Python client follow
 * the same ones, with the same Chinese messages.
 */

const SHARE_KEYS_MAX = 8;
const SHARE_KEY_RULE = '应为 32 字节随机数的 base64 (44 个字符，标准字母表，以 = 结尾)，请用 tokendist keygen 生成';
const SEALED_PLAIN_MAX = 64 * 1024;

/** Why a Gitee file was refused: `code` and a phrase for "❌ Gitee token获取失败: <phrase>". */
class SealError extends Error {
  constructor(code, phrase) {
    super(phrase);
    this.code = code;
  }
}

/**
 * Standard base64 with padding, in its one spelling: the text must be exactly
 * what encoding the bytes gives (no blanks, URL-safe letters, missing padding
 * or stray low bits). Null when it is not.
 */
function b64Strict(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const raw = Buffer.from(text, 'base64');
  return raw.toString('base64') === text ? raw : null;
}

/** The key's id: the first 8 bytes of SHA-256 of the raw key, in hex. */
function kidOf(key) {
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** The keys of shareKey / TOKENDIST_SHARE_KEY (a comma-separated string or a list); a bad one never shown. */
function parseShareKeys(value) {
  const items = Array.isArray(value) ? value : [value];
  if (!items.every((i) => typeof i === 'string')) throw configError('shareKey 必须是字符串或字符串数组');
  const keys = [];
  for (const text of items.flatMap((i) => i.split(',')).map((t) => t.replace(/^[ \t]+|[ \t]+$/g, ''))) {
    if (!text) continue;
    const raw = b64Strict(text);
    if (!raw || raw.length !== 32) {
      throw configError(`shareKey / TOKENDIST_SHARE_KEY 的第 ${keys.length + 1} 个密钥无效: ${SHARE_KEY_RULE}`);
    }
    if (keys.length === SHARE_KEYS_MAX) throw configError(`shareKey / TOKENDIST_SHARE_KEY 最多 ${SHARE_KEYS_MAX} 个密钥`);
    keys.push(Object.freeze({ kid: kidOf(raw), key: raw }));
  }
  return keys;
}

/** The associated data: every clear field, one per line. */
function sealedAad(kid, name, generated) {
  return Buffer.from(`tokendist-sealed\n1\nA256GCM\n${kid}\n${name}\n${generated}`, 'ascii');
}

function openEnvelope(keys, name, env) {
  const { v, alg, kid, generated_timestamp: gen, nonce: nonce64, ct: ct64 } = env;
  if (v !== 1) {
    throw new SealError('EINVALID', Number.isInteger(v)
      ? `加密记录的格式版本 v=${v} 不受支持 (此版本只认识 v=1)，请升级客户端` : '加密记录的字段 v 无效 (应为 1)');
  }
  if (alg !== 'A256GCM') {
    throw new SealError('EINVALID', `加密记录的算法 ${typeof alg === 'string' ? alg.slice(0, 40) : '(无)'} 不受支持 (只支持 A256GCM)`);
  }
  const bad = !(typeof kid === 'string' && /^[0-9a-f]{16}$/.test(kid)) ? 'kid'
    : !(typeof env.name === 'string' && NAME_RE.test(env.name)) ? 'name'
      : !(Number.isSafeInteger(gen) && gen >= 0) ? 'generated_timestamp'
        : !(typeof nonce64 === 'string' && nonce64.length === 16) ? 'nonce'
          : !(typeof ct64 === 'string' && ct64.length <= Math.floor((SEALED_PLAIN_MAX + 16 + 2) / 3) * 4) ? 'ct'
            : null;
  if (bad) throw new SealError('EINVALID', `加密记录的字段 ${bad} 无效`);
  if (env.name !== name) throw new SealError('EINVALID', `加密记录属于 token '${env.name}'，不是 '${name}'`);
  if (keys.length === 0) {
    throw new SealError('ESHAREKEY', `记录已加密 (kid ${kid})，但没有设置共享密钥: 请设置 TOKENDIST_SHARE_KEY (与刷新器的相同)`);
  }
  const key = keys.find((k) => k.kid === kid);
  if (!key) {
    throw new SealError('ESHAREKEY', `记录是用另一把共享密钥加密的 (kid ${kid})，已设置的密钥是 kid `
      + `${keys.map((k) => k.kid).join(', ')}: 请检查 TOKENDIST_SHARE_KEY`);
  }
  const nonce = b64Strict(nonce64);
  if (!nonce || nonce.length !== 12) throw new SealError('EINVALID', '加密记录的字段 nonce 无效 (应为 12 字节的 base64)');
  const ct = b64Strict(ct64);
  if (!ct || ct.length < 16) throw new SealError('EINVALID', '加密记录的字段 ct 无效 (应为密文和 16 字节标签的 base64)');
  let plain;
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key.key, nonce, { authTagLength: 16 });
    d.setAAD(sealedAad(kid, env.name, gen));
    d.setAuthTag(ct.subarray(ct.length - 16));
    plain = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
  } catch {
    throw new SealError('EINVALID', `加密记录未通过校验 (kid ${kid}): 内容被改动过或已损坏`);
  }
  let record;
  try {
    record = JSON.parse(plain.toString('utf8'));
  } catch {
    record = undefined;
  } finally {
    plain.fill(0);
  }
  if (!isPlainObject(record) || record.generated_timestamp !== gen) {
    throw new SealError('EINVALID', '加密记录的 generated_timestamp 与其中的记录不一致');
  }
  return record;
}

/**
 * The record inside the Gitee file's bytes, by the rule every client
 * follows: an envelope is opened with the key its kid names, for this token
 * name; a plaintext record (the seed's format) is taken as is without a
 * share key and refused with one (anyone with write access to the
 * repository could have put it there). Throws SealError.
 */
function openGiteeFile(bytes, keys = [], name = DEFAULT_NAME) {
  let doc;
  try {
    doc = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
  } catch {
    throw new SealError('EINVALID', '文件内容不是JSON');
  }
  if (isPlainObject(doc) && 'v' in doc && !('access_token' in doc)) return openEnvelope(keys, name, doc);
  if (keys.length) {
    throw new SealError('ESHAREKEY', '记录未加密，但设置了共享密钥 (TOKENDIST_SHARE_KEY): 不接受未加密的记录 (刷新器也要设置同一密钥)');
  }
  return doc;
}

/* ------------------------------------------------------------------ */
/* Feishu helpers                                                     */
/* ------------------------------------------------------------------ */

function codeIsInvalid(code) {
  if (typeof code === 'string' && /^\d+$/.test(code)) code = Number(code);
  return typeof code === 'number' && FEISHU_INVALID_TOKEN_CODES.includes(code);
}

/**
 * True when `body` is Feishu's "invalid access token" answer. Accepts the
 * parsed JSON (`{code: 99991663, msg}`), its text, an Error carrying it
 * (`err.code`, `err.body`, `err.data`, `err.response.data` as axios does).
 */
function isFeishuInvalidTokenError(body, depth = 0) {
  if (body == null || depth > 4) return false;
  if (typeof body === 'string') {
    const s = body.trim();
    if (s.startsWith('{')) {
      try {
        return isFeishuInvalidTokenError(JSON.parse(s), depth + 1);
      } catch {
        /* fall through to the text search */
      }
    }
    return /(?:^|[^0-9])(?:99991663|99991664|99991668|99991671)(?![0-9])/.test(s);
  }
  if (typeof body === 'number') return codeIsInvalid(body);
  if (typeof body !== 'object') return false;
  if (codeIsInvalid(body.code)) return true;
  for (const k of ['body', 'data', 'response', 'error', 'cause']) {
    const v = body[k];
    if (v != null && v !== body && (typeof v === 'object' || typeof v === 'string')) {
      if (isFeishuInvalidTokenError(v, depth + 1)) return true;
    }
  }
  if (body instanceof Error && typeof body.message === 'string') {
    return /(?:^|[^0-9])(?:99991663|99991664|99991668|99991671)(?![0-9])/.test(body.message);
  }
  return false;
}

// "This token is invalid" on the other platforms (docs/providers.md):
// WeChat errcode 40001/40014/42001, WeCom 40014/42001, DingTalk's new API
// HTTP 400 {"code": "InvalidAuthentication"}.  Matched in JSON only: a
// bare 40001 in some text is too common to mean it.
const PLATFORM_INVALID_ERRCODES = [40001, 40014, 42001];

function platformInvalid(body, depth) {
  if (body == null || depth > 4) return false;
  if (typeof body === 'string') {
    const s = body.trim();
    if (!s.startsWith('{')) return false;
    try {
      return platformInvalid(JSON.parse(s), depth + 1);
    } catch {
      return false;
    }
  }
  if (typeof body !== 'object') return false;
  if (typeof body.errcode === 'number' && PLATFORM_INVALID_ERRCODES.includes(body.errcode)) return true;
  if (body.code === 'InvalidAuthentication') return true;
  for (const k of ['body', 'data', 'response', 'error', 'cause']) {
    const v = body[k];
    if (v != null && v !== body && (typeof v === 'object' || typeof v === 'string')) {
      if (platformInvalid(v, depth + 1)) return true;
    }
  }
  return false;
}

/** Feishu's invalid-token answer, or WeChat's, WeCom's or DingTalk's. */
function isInvalidTokenError(body) {
  return isFeishuInvalidTokenError(body) || platformInvalid(body, 0);
}

function isResponseLike(v) {
  return v != null && typeof v === 'object' && typeof v.clone === 'function'
    && v.headers != null && typeof v.status === 'number';
}

async function outcomeIsInvalid(outcome) {
  const v = outcome.ok ? outcome.value : outcome.error;
  if (isResponseLike(v)) {
    // Only JSON answers can carry the platform's code; never buffer a file download.
    const type = typeof v.headers.get === 'function' ? v.headers.get('content-type') || '' : '';
    if (!/json/i.test(type) || v.bodyUsed) return false;
    try {
      const text = await v.clone().text();
      return isInvalidTokenError(text);
    } catch {
      return false;
    }
  }
  return isInvalidTokenError(v);
}

async function settle(fn, token, attempt) {
  try {
    return { ok: true, value: await fn(token, attempt) };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Call `fn(token)`; when its result (or thrown error) is Feishu's invalid-token
 * answer, report the token, get a fresh one and call `fn` once more. If no
 * different token can be had, the first outcome is returned / rethrown.
 */
async function withToken(client, fn) {
  if (!client || typeof client.getAccessToken !== 'function') {
    throw new TypeError('withToken(client, fn): client 必须由 createClient() 创建');
  }
  if (typeof fn !== 'function') throw new TypeError('withToken(client, fn): fn 必须是函数');
  const token = await client.getAccessToken();
  const first = await settle(fn, token, 1);
  if (!(await outcomeIsInvalid(first))) {
    if (first.ok) return first.value;
    throw first.error;
  }
  await client.reportInvalid(token);
  let fresh;
  try {
    fresh = await client.getAccessToken();
  } catch {
    fresh = undefined;
  }
  if (fresh === undefined || fresh === token) {
    if (first.ok) return first.value;
    throw first.error;
  }
  return fn(fresh, 2);
}

/* ------------------------------------------------------------------ */
/* options                                                            */
/* ------------------------------------------------------------------ */

function configError(msg) {
  return new TokendistError('ECONFIG', `❌ tokendist 配置错误: ${msg}`);
}


/** true/false, 1/0, or their words in text ("false", "0", "no", "off"), as Python's client reads them. */
function asBool(value, what) {
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1) return value === 1;
  const v = typeof value === 'string' ? value.trim().toLowerCase() : undefined;
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw configError(`${what} 应为 true 或 false: ${JSON.stringify(value)}`);
}

// What a reader of each platform's token in service should still have
// (docs/providers.md; the C client's provider_min): WeChat renews in its
// last 5 minutes, WeCom only after expiry, the rest in their last 30 minutes.
const PROVIDER_MIN = { wechat: 60, wecom: 0 };
const DEFAULT_MIN = 300;

/** Seconds a record must still have: the option, or its platform's need. */
function needOf(minRemaining, record) {
  if (minRemaining !== null) return minRemaining;
  const p = record && typeof record === 'object' ? record.provider : undefined;
  return typeof p === 'string' && Object.prototype.hasOwnProperty.call(PROVIDER_MIN, p)
    ? PROVIDER_MIN[p] : DEFAULT_MIN;
}

function normalizeOptions(raw) {
  if (!isPlainObject(raw)) throw configError('createClient(options) 需要一个对象');
  const o = { ...raw };

  const nameGiven = o.name !== undefined && o.name !== null;
  const name = nameGiven ? o.name : DEFAULT_NAME;
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw configError(`token 名称 '${String(name).slice(0, 80)}' 无效: 应为 ${NAME_RULE}`);
  }

  // The seed's news.js object: { ENABLED, API_URL }.
  const enabled = o.ENABLED !== false && o.enabled !== false;
  let urls = o.apiUrl !== undefined ? o.apiUrl : o.API_URL;
  if (urls === undefined || urls === null || urls === '') urls = [];
  if (!Array.isArray(urls)) urls = [urls];
  const all = urls.map((u) => endpointUrls(u, name, nameGiven));
  const endpoints = enabled ? all : [];

  const readKey = o.readKey !== undefined ? o.readKey : o.READ_KEY;
  if (readKey !== undefined && readKey !== null && typeof readKey !== 'string') {
    throw configError('readKey 必须是字符串');
  }

  // undefined or -1 (as TOKENDIST_MIN_REMAINING=-1 for the CLI): the record's platform's need.
  const minRemainingSeconds = o.minRemainingSeconds === undefined || o.minRemainingSeconds === -1
    ? null : o.minRemainingSeconds;
  if (minRemainingSeconds !== null && (typeof minRemainingSeconds !== 'number' || !(minRemainingSeconds >= 0))) {
    throw configError('minRemainingSeconds 必须是非负数 (-1 或不设: 按平台)');
  }
  const timeoutMs = o.timeoutMs === undefined ? 5000 : o.timeoutMs;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) throw configError('timeoutMs 必须是正数');
  const field = o.field === undefined ? 'access_token' : o.field;
  if (!FIELDS.includes(field)) throw configError(`field 只能是 ${FIELDS.join(' 或 ')}`);
  const refreshWaitMs = o.refreshWaitMs === undefined ? 5000 : o.refreshWaitMs;
  if (typeof refreshWaitMs !== 'number' || !(refreshWaitMs >= 0)) {
    throw configError('refreshWaitMs 必须是非负数');
  }

  // Gitee: { gitee: {...} } or the seed's Python-style keys, unless the seed's
  // switch says false (the producer does not share there): the rule of the
  // Python client and `tokendist get`, whose environment says "false" in text.
  let gitee = o.gitee;
  const share = o.ENABLE_GITEE_TOKEN_SHARE;
  if (gitee === undefined && o.GITEE_OWNER
      && (share === undefined || share === null || share === '' || asBool(share, 'ENABLE_GITEE_TOKEN_SHARE'))) {
    gitee = {
      owner: o.GITEE_OWNER,
      repo: o.GITEE_REPO,
      path: o.GITEE_FILE_PATH,
      branch: o.GITEE_BRANCH,
      accessToken: o.GITEE_ACCESS_TOKEN,
      baseUrl: o.GITEE_BASE_URL,
    };
  }
  if (gitee) {
    if (!isPlainObject(gitee)) throw configError('gitee 必须是对象');
    for (const k of ['owner', 'repo', 'path']) {
      if (typeof gitee[k] !== 'string' || gitee[k] === '') throw configError(`gitee.${k} 必须是非空字符串`);
    }
    gitee = {
      owner: gitee.owner,
      repo: gitee.repo,
      path: gitee.path.replace(/^\/+/, ''),
      branch: gitee.branch || undefined,
      accessToken: gitee.accessToken || undefined,
      baseUrl: String(gitee.baseUrl || 'https://gitee.com/api/v5').replace(/\/+$/, ''),
    };
  } else {
    gitee = undefined;
  }

  const cacheFile = o.cacheFile ? path.resolve(String(o.cacheFile)) : undefined;

  const shareKey = o.shareKey !== undefined ? o.shareKey : o.TOKENDIST_SHARE_KEY;
  const shareKeys = shareKey === undefined || shareKey === null || shareKey === '' ? [] : parseShareKeys(shareKey);

  const fetchImpl = o.fetch || globalThis.fetch;
  if (typeof fetchImpl !== 'function') {
    throw configError('没有可用的 fetch (需要 Node.js >= 18，或传入 options.fetch)');
  }

  if (endpoints.length === 0 && !gitee && !cacheFile) {
    throw configError('没有任何token来源: 请配置 apiUrl / API_URL (且 ENABLED 不为 false)、gitee 或 cacheFile');
  }

  return {
    endpoints,
    name,
    readKey: readKey || undefined,
    minRemainingSeconds,
    timeoutMs,
    field,
    gitee,
    cacheFile,
    fetch: fetchImpl,
    log: makeLogger(o.logger),
    refreshWaitMs,
    shareKeys,
  };
}

/* ------------------------------------------------------------------ */
/* the client                                                         */
/* ------------------------------------------------------------------ */

class TokendistClient {
  constructor(options) {
    const opts = normalizeOptions(options);
    Object.defineProperty(this, '_o', { value: opts });
    this._memory = null; // { record, origin, url, offsetMs }
    this._offsetMs = 0; // server clock − local clock, from the last Date header
    this._inflight = null;
    this._rejected = null; // { token, until }
    this._epoch = 0;
    this._reports = new Map(); // token → promise (single-flight per token)
    this._lastCacheWrite = null;
    this._giteeAt = null; // performance.now() of the last Gitee request
    this._giteeAnswer = null; // { record } or { err }: what it answered
  }

  /** Seconds left for `record` by the server's clock (as last seen). */
  _remaining(record, offsetMs = this._offsetMs) {
    const serverNow = (Date.now() + offsetMs) / 1000;
    return expiryOf(record, this._o.field) - serverNow;
  }

  _info(mem, from) {
    return {
      record: { ...mem.record },
      from,
      origin: mem.origin,
      url: mem.url,
      remainingSeconds: Math.floor(this._remaining(mem.record)),
    };
  }

  /** `{record, from, origin, url, remainingSeconds}` */
  async getRecordInfo() {
    const mem = this._memory;
    if (mem && this._remaining(mem.record) > needOf(this._o.minRemainingSeconds, mem.record)) {
      return this._info(mem, 'memory');
    }
    if (!this._inflight) {
      const p = this._refresh();
      this._inflight = p;
      const clear = () => {
        if (this._inflight === p) this._inflight = null;
      };
      p.then(clear, clear);
    }
    const mem2 = await this._inflight;
    return this._info(mem2, mem2.origin);
  }

  /** The plain record (the seed's nine fields and any extras). */
  async getRecord() {
    return (await this.getRecordInfo()).record;
  }

  /** The token string of `field`. */
  async getAccessToken() {
    return tokenOf((await this.getRecordInfo()).record, this._o.field);
  }

  /** Drops the in-memory record (the next call fetches). */
  clear() {
    this._memory = null;
  }

  /* ---------------- fetching ---------------- */

  async _refresh() {
    const epoch = this._epoch;
    const { log } = this._o;
    let stale = null; // a usable record that only repeats the reported token
    let pause = WAIT_FIRST_MS;
    // An old report whose wait is over does not count.
    let rejected = this._rejected && Date.now() < this._rejected.until ? this._rejected : null;
    for (;;) {
      const failures = [];
      const got = await this._chain(rejected, failures);
      if (got) return this._accept(got, epoch);
      const staleFailure = failures.find((f) => f.err.code === 'ESTALE');
      if (staleFailure && !stale) stale = staleFailure.candidate;
      if (!rejected || !stale) throw this._failure(failures);
      const left = rejected.until - Date.now();
      if (left <= 0) {
        // Waited long enough: the sources still hand out the reported token.
        log.warn(`⚠️ 等待 ${this._o.refreshWaitMs}ms 后仍只拿到已报告无效的token ${fingerprint(tokenOf(stale.record, this._o.field))}，暂时继续使用`);
        return this._accept(stale, epoch, true);
      }
      // Ask again after pauses that double, the last one ending at the deadline.
      await sleep(Math.min(pause, left));
      pause = Math.min(pause * 2, WAIT_MAX_MS);
      rejected = this._rejected; // a 409 meanwhile ends the wait (null)
    }
  }

  _accept(got, epoch, staleOk = false) {
    const mem = { record: got.record, origin: got.from, url: got.url, offsetMs: this._offsetMs };
    const tok = tokenOf(got.record, this._o.field);
    // A report of this very token arrived while we were fetching: hand it to the
    // callers that were already waiting, but do not keep it.
    const reportedMeanwhile = !staleOk && epoch !== this._epoch
      && this._rejected !== null && this._rejected.token === tok;
    if (!reportedMeanwhile) {
      this._memory = mem;
      if (epoch === this._epoch) this._rejected = null;
    }
    this._o.log.info(`✅ 从${LABEL[got.from]}获取token成功 ${fingerprint(tok)} (剩余 ${Math.floor(this._remaining(got.record))} 秒)`);
    return mem;
  }

  _failure(failures) {
    if (failures.length === 1) return failures[0].err;
    const lines = failures.map((f) => `  - ${f.err.message.replace(/^❌ /, '')}${f.where ? ` [${f.where}]` : ''}`);
    const expiredEverywhere = failures.length > 0 && failures.every((f) => f.err.code === 'EEXPIRED');
    const head = expiredEverywhere
      ? '❌ token获取失败: 所有来源的token均已过期或即将过期'
      : '❌ token获取失败: 所有来源均失败';
    return new TokendistError('EALLFAILED', `${head}\n${lines.join('\n')}`, {
      errors: failures.map((f) => f.err),
      reason: expiredEverywhere ? 'expired' : 'failed',
    });
  }

  /**
   * endpoints → Gitee → cache file; the first valid, fresh-enough record wins.
   * Returns { record, from, url } or null, pushing each failure to `failures`.
   */
  async _chain(rejected, failures) {
    const o = this._o;
    const consider = async (from, where, url, load) => {
      let got;
      try {
        got = await load();
      } catch (err) {
        if (!(err instanceof TokendistError)) throw err;
        failures.push({ err, where });
        o.log.warn(err.message);
        return null;
      }
      const candidate = { record: got.record, from, url };
      const err = this._judge(from, got.record, rejected, url);
      if (err) {
        failures.push({ err, where, candidate: err.code === 'ESTALE' ? candidate : undefined });
        o.log.warn(err.message);
        return null;
      }
      if (from !== 'cache') await this._writeCache(got.record);
      return candidate;
    };

    for (const { url } of o.endpoints) {
      const r = await consider('endpoint', redactUrl(url), url, () => this._fromEndpoint(url));
      if (r) return r;
    }
    if (o.gitee) {
      const g = o.gitee;
      const r = await consider('gitee', `${g.owner}/${g.repo}/${g.path}${g.branch ? `@${g.branch}` : ''}`,
        undefined, () => this._fromGitee());
      if (r) return r;
    }
    if (o.cacheFile) {
      const r = await consider('cache', o.cacheFile, undefined, () => this._fromCache());
      if (r) return r;
    }
    return null;
  }

  _judge(from, record, rejected, url) {
    const o = this._o;
    const label = LABEL[from];
    const extra = { source: from, url: url && redactUrl(url) };
    const problem = validateRecord(record, o.field);
    if (problem) {
      return new TokendistError('EINVALID', `❌ ${label} token获取失败: token数据无效 (${problem})`, extra);
    }
    const remaining = Math.floor(this._remaining(record));
    const need = needOf(o.minRemainingSeconds, record);
    if (remaining <= need) {
      const why = remaining <= 0
        ? `token已过期 (已过期 ${-remaining} 秒)`
        : `token即将过期 (剩余 ${remaining} 秒，要求至少 ${need} 秒)`;
      return new TokendistError('EEXPIRED', `❌ ${label} token获取失败: ${why}`, { ...extra, remainingSeconds: remaining });
    }
    if (rejected && tokenOf(record, o.field) === rejected.token) {
      return new TokendistError('ESTALE',
        `❌ ${label} token获取失败: 仍是已报告无效的token ${fingerprint(rejected.token)}，等待服务端刷新`, extra);
    }
    return null;
  }

  /** One HTTP exchange with timeout; returns { res, text }. Updates the clock offset. */
  async _http(from, url, init) {
    const o = this._o;
    const label = LABEL[from];
    const extra = { source: from, url: redactUrl(url) };
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), o.timeoutMs);
    let res;
    let text;
    try {
      res = await o.fetch(url, { ...init, signal: ac.signal });
      const len = res.headers && typeof res.headers.get === 'function' ? Number(res.headers.get('content-length')) : NaN;
      if (len > MAX_BODY_BYTES) {
        throw new TokendistError('EINVALID', `❌ ${label} token获取失败: 响应过大 (${len} 字节)`, extra);
      }
      text = await res.text();
    } catch (err) {
      if (err instanceof TokendistError) throw err;
      if (ac.signal.aborted) {
        throw new TokendistError('ETIMEOUT', `❌ ${label} token获取失败: 请求超时 (${o.timeoutMs}ms): ${hostOf(url)} `
          + '没有及时应答，请检查服务是否在运行、网络是否通畅', { ...extra, cause: err });
      }
      throw new TokendistError('ENETWORK', `❌ ${label} token获取失败: 网络错误: ${networkWhy(err, url)}`,
        { ...extra, cause: err });
    } finally {
      clearTimeout(timer);
    }
    this._noteDate(res);
    return { res, text };
  }

  _noteDate(res) {
    const h = res && res.headers && typeof res.headers.get === 'function' ? res.headers.get('date') : null;
    if (!h) return;
    const serverMs = Date.parse(h);
    if (!Number.isFinite(serverMs)) return;
    const off = serverMs - Date.now();
    const next = Math.abs(off) < SKEW_IGNORE_MS ? 0 : off;
    if (next !== this._offsetMs && (next !== 0 || this._offsetMs !== 0)) {
      this._o.log.debug(`服务器时钟偏差: ${Math.round(next / 1000)} 秒`);
    }
    this._offsetMs = next;
  }

  _httpError(from, url, res, text) {
    const label = LABEL[from];
    const extra = { source: from, url: redactUrl(url), status: res.status };
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const detail = isPlainObject(body)
      ? (typeof body.error === 'string' && body.error) || (typeof body.message === 'string' && body.message) || ''
      : '';
    if (from === 'endpoint' && res.status === 404 && detail === 'Token not found or expired') {
      return new TokendistError('ENOTFOUND_TOKEN', `❌ ${label} token获取失败: ${detail}`, extra);
    }
    // Our server's "no such path" is a wrong URL, not a missing token (the
    // C client's words, src/endpoint.c td_endpoint_wrong_path_why).
    if (from === 'endpoint' && res.status === 404 && detail === 'Not found') {
      return new TokendistError('EHTTP', `❌ ${label} token获取失败: ${wrongPathWhy(url)}`, extra);
    }
    const statusText = res.statusText || STATUS_CODES[res.status] || '';
    let msg = `HTTP ${res.status}: ${statusText}`;
    if (detail && detail !== statusText) msg += ` (${detail.slice(0, 200)})`;
    return new TokendistError(refusesKey(from, res) ? 'EAUTH' : 'EHTTP', `❌ ${label} token获取失败: ${msg}`, extra);
  }

  _parseRecord(from, url, text) {
    try {
      return JSON.parse(text);
    } catch {
      throw new TokendistError('EINVALID', `❌ ${LABEL[from]} token获取失败: 响应不是JSON`, {
        source: from, url: url && redactUrl(url),
      });
    }
  }

  _endpointHeaders(extra) {
    const h = { Accept: 'application/json', ...extra };
    if (this._o.readKey) h.Authorization = `Bearer ${this._o.readKey}`;
    return h;
  }

  async _fromEndpoint(url) {
    const { res, text } = await this._http('endpoint', url, {
      method: 'GET',
      headers: this._endpointHeaders(),
    });
    if (res.status !== 200) throw this._httpError('endpoint', url, res, text);
    return { record: this._parseRecord('endpoint', url, text) };
  }

  /**
   * Gitee's record, asked for unless it was asked less than GITEE_INTERVAL_MS
   * ago; then its last answer stands. A failure counts as an answer too: a client
   * that keeps failing must not turn into a stream of Gitee requests. Only the
   * one fetch in flight (_inflight) calls this.
   */
  async _fromGitee() {
    const now = performance.now(); // monotonic: a clock set back does not stretch the minute
    if (this._giteeAt === null || now - this._giteeAt >= GITEE_INTERVAL_MS) {
      this._giteeAt = now;
      try {
        this._giteeAnswer = { record: (await this._askGitee()).record };
      } catch (err) {
        if (!(err instanceof TokendistError)) throw err;
        this._giteeAnswer = { err };
      }
    }
    if (this._giteeAnswer.err) throw this._giteeAnswer.err;
    return { record: this._giteeAnswer.record };
  }

  async _askGitee() {
    const g = this._o.gitee;
    const enc = (s) => s.split('/').map(encodeURIComponent).join('/');
    const qs = new URLSearchParams();
    if (g.branch) qs.set('ref', g.branch);
    if (g.accessToken) qs.set('access_token', g.accessToken);
    const q = qs.toString();
    const url = `${g.baseUrl}/repos/${enc(g.owner)}/${enc(g.repo)}/contents/${enc(g.path)}${q ? `?${q}` : ''}`;
    const { res, text } = await this._http('gitee', url, { method: 'GET', headers: { Accept: 'application/json' } });
    const extra = { source: 'gitee', url: redactUrl(url), status: res.status };
    if (res.status === 404) {
      throw new TokendistError('ENOTFOUND_TOKEN', `❌ Gitee token获取失败: 文件不存在 (${g.path})`, extra);
    }
    if (res.status !== 200) throw this._httpError('gitee', url, res, text);
    const body = this._parseRecord('gitee', url, text);
    if (Array.isArray(body)) {
      // Gitee answers [] for a missing file (and a listing for a directory).
      throw new TokendistError('ENOTFOUND_TOKEN', `❌ Gitee token获取失败: 文件不存在 (${g.path})`, extra);
    }
    if (!isPlainObject(body) || typeof body.content !== 'string') {
      throw new TokendistError('EINVALID', '❌ Gitee token获取失败: 响应中没有文件内容 (content)', extra);
    }
    // Sealed or plaintext, by the rule every client follows (openGiteeFile).
    try {
      return { record: openGiteeFile(Buffer.from(body.content.replace(/\s+/g, ''), 'base64'), this._o.shareKeys, this._o.name) };
    } catch (err) {
      if (!(err instanceof SealError)) throw err;
      throw new TokendistError(err.code, `❌ Gitee token获取失败: ${err.message}`, extra);
    }
  }

  async _fromCache() {
    const file = this._o.cacheFile;
    let text;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (err) {
      const why = err && err.code === 'ENOENT' ? '缓存文件不存在' : `无法读取缓存文件 (${err && err.code})`;
      throw new TokendistError('ENOTFOUND_TOKEN', `❌ 本地缓存 token获取失败: ${why}`, { source: 'cache', cause: err });
    }
    let doc;
    try {
      // A file an editor saved with a BOM reads as the same record.
      doc = JSON.parse(text.replace(/^\uFEFF/, ''));
    } catch {
      throw new TokendistError('EINVALID', '❌ 本地缓存 token获取失败: 缓存文件不是JSON', { source: 'cache' });
    }
    return { record: openCache(doc, this._o.name) };
  }

  /**
   * Atomic write: temp file (mode 0600) in the same directory, fsync, rename. Never throws.
   * The file names the token it holds (openCache).
   */
  async _writeCache(record) {
    const file = this._o.cacheFile;
    if (!file) return;
    const key = `${tokenOf(record, this._o.field)}\u0000${record.generated_timestamp}`;
    if (this._lastCacheWrite === key) return;
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    let fh;
    try {
      await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      fh = await fs.promises.open(tmp, 'wx', 0o600);
      const doc = { ...record, [CACHE_NAME]: this._o.name, [CACHE_KIND]: KIND_TOKEN };
      await fh.writeFile(`${JSON.stringify(doc, null, 2)}\n`, 'utf8');
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fs.promises.rename(tmp, file);
      this._lastCacheWrite = key;
    } catch (err) {
      if (fh) await fh.close().catch(() => {});
      await fs.promises.unlink(tmp).catch(() => {});
      this._o.log.warn(`⚠️ 写入本地缓存失败: ${err && (err.code || err.message)}`);
    }
  }

  /* ---------------- invalid tokens ---------------- */

  /**
   * Tell the client (and the server) that Feishu rejected `token`. Never rejects:
   * resolves to { reported, status?, refreshing, replaced, url?, error? }.
   */
  reportInvalid(token) {
    if (typeof token !== 'string' || token === '') {
      return Promise.reject(new TypeError('reportInvalid(token): token 必须是非空字符串'));
    }
    const existing = this._reports.get(token);
    if (existing) return existing;
    const p = this._report(token).finally(() => this._reports.delete(token));
    this._reports.set(token, p);
    return p;
  }

  async _report(token) {
    const o = this._o;
    const mem = this._memory;
    if (mem && (mem.record.access_token === token || mem.record.tenant_access_token === token
        || tokenOf(mem.record, o.field) === token)) {
      this._memory = null;
    }
    this._epoch += 1;
    this._rejected = { token, until: Date.now() + o.refreshWaitMs };
    o.log.info(`飞书判定token无效，已丢弃 ${fingerprint(token)}`);

    let lastError;
    let lastStatus;
    let lastUrl;
    for (const { url, reportUrl: target } of o.endpoints) {
      if (!target) {
        lastError = new TokendistError('ECONFIG',
          `❌ 腾讯云函数 无效token上报失败: 无法从 ${redactUrl(url)} 推导上报地址`, { source: 'endpoint', url: redactUrl(url) });
        o.log.warn(lastError.message);
        continue;
      }
      lastUrl = redactUrl(target);
      let res;
      let text;
      try {
        ({ res, text } = await this._http('endpoint', target, {
          method: 'POST',
          headers: this._endpointHeaders({ 'Content-Type': 'application/json' }),
          body: JSON.stringify({ access_token: token }),
        }));
      } catch (err) {
        if (!(err instanceof TokendistError)) throw err;
        lastError = err;
        o.log.warn(err.message.replace('token获取失败', '无效token上报失败'));
        continue;
      }
      lastStatus = res.status;
      if (res.status === 409) {
        // The platform still issues this token: there is no other to wait
        // for. Stop waiting for a replacement (gets return it again) and say
        // why -- neutrally: the server's message names the token's platform.
        this._rejected = null;
        let msg = '';
        try { msg = JSON.parse(text).message || ''; } catch { /* keep '' */ }
        const error = new TokendistError('ESAME',
          `❌ 腾讯云函数 无效token上报: 平台仍在发放此token ${fingerprint(token)}，没有新的可换${msg ? ` (${msg})` : ''}`,
          { source: 'endpoint', url: lastUrl });
        o.log.warn(error.message);
        return { reported: true, status: 409, refreshing: false, replaced: false, url: lastUrl, error };
      }
      if (res.status === 202) {
        o.log.info(`已上报无效token ${fingerprint(token)}，服务端正在刷新`);
        return { reported: true, status: 202, refreshing: true, replaced: false, url: lastUrl };
      }
      if (res.status === 200) {
        let record;
        try {
          record = JSON.parse(text);
        } catch {
          record = undefined;
        }
        // Fresh means: neither of its tokens is the one reported (files
        // report the tenant token, others the app token).
        const err = record === undefined
          ? new TokendistError('EINVALID', '❌ 腾讯云函数 无效token上报失败: 响应不是JSON')
          : (isPlainObject(record) && (record.access_token === token || record.tenant_access_token === token))
            ? new TokendistError('EINVALID', `❌ 腾讯云函数 无效token上报: 服务端仍返回已报告无效的token ${fingerprint(token)}`)
            : this._judge('endpoint', record, { token }, target);
        if (!err) {
          this._rejected = null;
          await this._writeCache(record);
          this._memory = { record, origin: 'endpoint', url, offsetMs: this._offsetMs };
          o.log.info(`已上报无效token ${fingerprint(token)}，服务端返回新token ${fingerprint(tokenOf(record, o.field))}`);
          return { reported: true, status: 200, refreshing: false, replaced: true, url: lastUrl };
        }
        o.log.warn(`已上报无效token，但服务端返回的记录不可用: ${err.message}`);
        return { reported: true, status: 200, refreshing: false, replaced: false, url: lastUrl, error: err };
      }
      lastError = this._httpError('endpoint', target, res, text);
      lastError.message = lastError.message.replace('token获取失败', '无效token上报失败');
      o.log.warn(lastError.message);
    }
    return {
      reported: false, status: lastStatus, refreshing: false, replaced: false, url: lastUrl, error: lastError,
    };
  }
}

/** Create a client. Accepts the options documented in README.md or the seed's TENCENT_CLOUD_CONFIG. */
function createClient(options) {
  return new TokendistClient(options);
}

module.exports = {
  createClient,
  TokendistClient,
  TokendistError,
  withToken,
  isFeishuInvalidTokenError,
  isInvalidTokenError,
  invalidUrlFor,
  validateRecord,
  fingerprint,
  FEISHU_INVALID_TOKEN_CODES,
};
// `import x from` / `require(...).default` give the same object.
module.exports.default = module.exports;
