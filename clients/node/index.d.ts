// Type declarations for tokendist-client (hand-written; the package has no build step).

/** The seed's nine fields, plus whatever extras the server keeps (e.g. tenant_access_token). */
export interface TokenRecord {
  access_token: string;
  /** `YYYY-MM-DD HH:MM:SS` in the server's zone; informational. */
  expire_time: string;
  /** Unix seconds; authoritative. */
  expire_timestamp: number;
  valid_duration_seconds: number;
  generated_time: string;
  generated_timestamp: number;
  source: string;
  usage: string;
  platform: string;
  tenant_access_token?: string;
  tenant_expire_timestamp?: number;
  [extra: string]: unknown;
}

export type TokenField = 'access_token' | 'tenant_access_token';

/** Where a record was read from; `memory` means no request was made. */
export type RecordSource = 'endpoint' | 'gitee' | 'cache' | 'memory';

export interface GiteeOptions {
  owner: string;
  repo: string;
  /** Path of the JSON file in the repository, e.g. `token.json`. */
  path: string;
  /** Branch/tag/commit (`ref`); the repository's default branch when omitted. */
  branch?: string;
  /** Gitee personal access token (needed for private repositories). */
  accessToken?: string;
  /** Default `https://gitee.com/api/v5`. */
  baseUrl?: string;
}

export interface Logger {
  debug?(message: string): void;
  info?(message: string): void;
  warn?(message: string): void;
  error?(message: string): void;
  log?(message: string): void;
}

export type FetchLike = (input: string, init?: {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}) => Promise<Response>;

export interface ClientOptions {
  /** tokendist URL(s), tried in order: `https://host/release/get-token`, `https://host/v1/tokens/NAME` or `https://host:port`. */
  apiUrl?: string | string[];
  /**
   * Token name, `[a-z0-9_]{1,64}`; default `default`. With a `…/release/get-token`
   * URL another name is read from `…/v1/tokens/NAME` beside it; a URL naming
   * another token, or one the name cannot be derived for, throws ECONFIG.
   */
  name?: string;
  /** Sent as `Authorization: Bearer <readKey>` to the endpoints (not to Gitee). */
  readKey?: string;
  /**
   * A token with this many seconds left or fewer is not served. Default (or -1): the
   * record's platform's need -- 300 for Feishu/Lark/DingTalk, 60 for WeChat, 0 for WeCom.
   */
  minRemainingSeconds?: number;
  /** Per-request timeout. Default 5000. */
  timeoutMs?: number;
  /**
   * Which token `getAccessToken()` returns. Default `access_token`. A record without
   * `tenant_access_token` (the seed's producer writes none) gives its `access_token` for it.
   */
  field?: TokenField;
  /** Fallback after the endpoints: a JSON file in a Gitee repository. */
  gitee?: GiteeOptions;
  /** Last good record is written here (atomically, mode 0600) and read as the last fallback. */
  cacheFile?: string;
  /** A fetch implementation (proxies, tests). Default the global fetch. */
  fetch?: FetchLike;
  /** Default silent. Tokens are only ever logged as fingerprints (`t-g104…PB`). */
  logger?: Logger | Console;
  /** After reportInvalid(), how long the next fetch waits for a token other than the reported one. Default 5000. */
  refreshWaitMs?: number;
  /**
   * Share key(s) of a sealed Gitee copy (`tokendist keygen`: 32 random bytes in base64), the
   * same as the refresher's `TOKENDIST_SHARE_KEY`; several comma-separated or as an array, any
   * of them opens (rotation). Set: the Gitee file must be sealed with one of them for this
   * `name`, a plaintext file is refused (ESHAREKEY). Unset: the seed's plaintext file is read,
   * a sealed one refused (ESHAREKEY). Either way the next source (the cache file) is tried.
   */
  shareKey?: string | string[];

  /** The seed's TENCENT_CLOUD_CONFIG: `ENABLED: false` skips the endpoint. */
  ENABLED?: boolean;
  /** The seed's TENCENT_CLOUD_CONFIG.API_URL (same as apiUrl). */
  API_URL?: string | string[];
  READ_KEY?: string;
  /**
   * The seed's Python-style Gitee keys (used when `gitee` is not given); false
   * (or "false", "0", "no", "off", as an environment has it) turns them off.
   */
  ENABLE_GITEE_TOKEN_SHARE?: boolean | string;
  GITEE_ACCESS_TOKEN?: string;
  GITEE_OWNER?: string;
  GITEE_REPO?: string;
  GITEE_FILE_PATH?: string;
  GITEE_BRANCH?: string;
  GITEE_BASE_URL?: string;
  /** Same as shareKey (the environment's name). */
  TOKENDIST_SHARE_KEY?: string;
}

export interface RecordInfo {
  /** A copy of the record. */
  record: TokenRecord;
  /** Where this call got it: `memory` when no request was made. */
  from: RecordSource;
  /** Where the record originally came from. */
  origin: Exclude<RecordSource, 'memory'>;
  /** The endpoint URL, when origin is `endpoint`. */
  url?: string;
  /** Seconds left, measured against the server's clock (Date header). */
  remainingSeconds: number;
}

export interface ReportResult {
  /** An endpoint took the report (200, 202, or 409: the platform still issues this token). */
  reported: boolean;
  status?: number;
  /** 202: the server started a refresh; the next get waits for a different token. */
  refreshing: boolean;
  /** 200: the server answered with a different, usable record, now in memory. */
  replaced: boolean;
  /** The /invalid URL used (credentials redacted). */
  url?: string;
  error?: TokendistError;
}

export type TokendistErrorCode =
  | 'ESAME'
  | 'ENOTFOUND_TOKEN'
  | 'EHTTP'
  | 'EAUTH'
  | 'ENETWORK'
  | 'ETIMEOUT'
  | 'EEXPIRED'
  | 'EINVALID'
  | 'ESTALE'
  | 'EALLFAILED'
  | 'ECONFIG'
  /** The Gitee copy is sealed and no shareKey opens it (none set, none with its kid), or it is plaintext while one is set. */
  | 'ESHAREKEY';

export class TokendistError extends Error {
  name: 'TokendistError';
  code: TokendistErrorCode;
  /** The source that failed (absent for EALLFAILED / ECONFIG). */
  source?: 'endpoint' | 'gitee' | 'cache';
  /** Request URL, credentials redacted. */
  url?: string;
  /** HTTP status, for HTTP failures. */
  status?: number;
  /** EEXPIRED: seconds left (≤ 0 when already expired). */
  remainingSeconds?: number;
  /** EALLFAILED: each source's failure, in the order tried. */
  errors?: TokendistError[];
  /** EALLFAILED: `expired` when every source only had expiring tokens, else `failed`. */
  reason?: 'expired' | 'failed';
  constructor(code: TokendistErrorCode, message: string, extra?: Record<string, unknown>);
}

export class TokendistClient {
  constructor(options: ClientOptions);
  /** The record and where it came from. */
  getRecordInfo(): Promise<RecordInfo>;
  /** The plain record. */
  getRecord(): Promise<TokenRecord>;
  /** The token of `field`. */
  getAccessToken(): Promise<string>;
  /** Feishu rejected `token` (99991663/99991664/99991668/99991671). Never rejects for network/HTTP failures. */
  reportInvalid(token: string): Promise<ReportResult>;
  /** Forget the in-memory record. */
  clear(): void;
}

export function createClient(options: ClientOptions): TokendistClient;

/**
 * Calls `fn(token)`; if the result or thrown error is Feishu's invalid-token
 * answer, reports the token, gets a fresh one and calls `fn` once more.
 */
export function withToken<T>(
  client: TokendistClient,
  fn: (token: string, attempt: 1 | 2) => T | Promise<T>,
): Promise<T>;

/** Recognises Feishu's invalid-token codes in a body (object or text) or an error carrying one. */
export function isFeishuInvalidTokenError(body: unknown): boolean;

/**
 * Feishu's invalid-token answer, or WeChat's / WeCom's (`errcode` 40001, 40014, 42001)
 * or DingTalk's (`code: "InvalidAuthentication"`), in JSON. `withToken` uses this.
 */
export function isInvalidTokenError(body: unknown): boolean;

/** The `/invalid` report URL derived from a GET URL (the `default` name), or null. */
export function invalidUrlFor(apiUrl: string): string | null;

/** null when valid, else a description of the first problem. */
export function validateRecord(record: unknown, field?: TokenField): string | null;

/** `t-g1044ghEGNOJ5OSQF5OYATETPB` → `t-g104…PB`. */
export function fingerprint(token: string): string;

export const FEISHU_INVALID_TOKEN_CODES: readonly number[];

declare const _default: {
  createClient: typeof createClient;
  TokendistClient: typeof TokendistClient;
  TokendistError: typeof TokendistError;
  withToken: typeof withToken;
  isFeishuInvalidTokenError: typeof isFeishuInvalidTokenError;
  isInvalidTokenError: typeof isInvalidTokenError;
  invalidUrlFor: typeof invalidUrlFor;
  validateRecord: typeof validateRecord;
  fingerprint: typeof fingerprint;
  FEISHU_INVALID_TOKEN_CODES: typeof FEISHU_INVALID_TOKEN_CODES;
};
export default _default;
