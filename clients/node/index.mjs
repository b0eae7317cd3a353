// ESM entry of tokendist-client. The implementation lives in index.cjs (one
// copy only, so `instanceof TokendistError` holds whether callers use import
// or require).
import cjs from './index.cjs';

export const {
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
} = cjs;

export default cjs;
