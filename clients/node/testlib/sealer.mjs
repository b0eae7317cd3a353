// The refresher's sealing of the Gitee copy, in JavaScript, for tests that
// need sealed files the refresher would not write on its own: sealed with a
// chosen key (rotation), for another name (replay), with a fixed nonce (the
// test vector, tests/vectors/sealed-v1.json, which sealed.test.mjs checks
// this reproduces byte for byte -- as the C unit test checks the refresher's
// own code does).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const VECTOR_FILE = path.resolve(here, '../../../tests/vectors/sealed-v1.json');
export const vector = () => JSON.parse(fs.readFileSync(VECTOR_FILE, 'utf8'));

export const newKey = () => crypto.randomBytes(32).toString('base64');
export const kid = (keyB64) => crypto.createHash('sha256').update(Buffer.from(keyB64, 'base64')).digest('hex').slice(0, 16);
export const aad = (k, name, generated) => `tokendist-sealed\n1\nA256GCM\n${k}\n${name}\n${generated}`;

/** The envelope's JSON text (the refresher's compact layout) sealing the record text `plaintext`. */
export function sealText(keyB64, name, generated, plaintext, nonce = crypto.randomBytes(12)) {
  const id = kid(keyB64);
  const c = crypto.createCipheriv('aes-256-gcm', Buffer.from(keyB64, 'base64'), nonce);
  c.setAAD(Buffer.from(aad(id, name, generated), 'ascii'));
  const ct = Buffer.concat([c.update(Buffer.from(plaintext, 'utf8')), c.final(), c.getAuthTag()]);
  return JSON.stringify({ v: 1, alg: 'A256GCM', kid: id, name, generated_timestamp: generated,
    nonce: nonce.toString('base64'), ct: ct.toString('base64') });
}

/** Seals a record (an object) the way the refresher does. */
export const seal = (keyB64, record, name = 'default') => sealText(keyB64, name, record.generated_timestamp, JSON.stringify(record));

/** The envelope text with one bit of byte `index` of a base64 field changed. */
export function flipB64(text, field, index) {
  const env = JSON.parse(text);
  const raw = Buffer.from(env[field], 'base64');
  raw[index] ^= 1;
  env[field] = raw.toString('base64');
  return JSON.stringify(env);
}

export function withField(text, field, value) {
  return JSON.stringify({ ...JSON.parse(text), [field]: value });
}
