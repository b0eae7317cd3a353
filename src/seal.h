/*
 * seal -- the sealed Gitee copy: a token record encrypted and authenticated
 * with a share key (AES-256-GCM), in a versioned JSON envelope that names
 * the key by a fingerprint so keys can be rotated.
 *
 *   {"v":1,"alg":"A256GCM","kid":"…","name":"default",
 *    "generated_timestamp":1700000000,"nonce":"…","ct":"…"}
 *
 * The exact rules (kid, nonce, associated data, base64) are in
 * docs/protocol.md, "The sealed Gitee copy"; tests/vectors/sealed-v1.json
 * is the test vector every implementation (this one, the Node and the
 * Python client) reproduces.  name and generated_timestamp are in clear so
 * that put-if-newer compares without the key, and bound into the
 * associated data so that a sealed record cannot be replayed under another
 * name or time.
 *
 * A share key is 32 random bytes in standard base64 with padding
 * (`tokendist keygen`); TOKENDIST_SHARE_KEY lists one or more, comma-
 * separated: the first seals, every one opens.  Keys never reach an error
 * text or a log line: only their kid does, which is in the file anyway.
 */
#ifndef TD_SEAL_H
#define TD_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define TD_SEAL_KEY_LEN 32      /* AES-256 */
#define TD_SEAL_KEY_B64 45      /* its base64 text, with the NUL */
#define TD_SEAL_KID_LEN 17      /* 16 hex digits and the NUL */
#define TD_SEAL_KEYS_MAX 8
#define TD_SEAL_NONCE_LEN 12    /* GCM's 96-bit nonce */
#define TD_SEAL_TAG_LEN 16

typedef struct td_seal_key {
    unsigned char key[TD_SEAL_KEY_LEN];
    char kid[TD_SEAL_KID_LEN];
} td_seal_key;

/* The share keys in the order given; n == 0: none (the seed's plaintext
 * copy).  Plain data: copy it by value, wipe it with td_seal_keys_wipe. */
typedef struct td_seal_keys {
    size_t n;
    td_seal_key v[TD_SEAL_KEYS_MAX];
} td_seal_keys;

/* Checks one key's text (32 bytes in standard base64 with padding): TD_OK,
 * or TD_EINVAL with err saying what is wrong (never showing the text). */
int td_seal_key_check(const char *b64, char *err, size_t errlen);

/* Adds the key b64 to *k (TD_EINVAL with err, never showing the text,
 * when it is malformed or k is full). */
int td_seal_keys_add(td_seal_keys *k, const char *b64, char *err, size_t errlen);

/* Parses a comma-separated list of keys (blanks around each ignored; NULL
 * or "" gives none) into *k.  TD_EINVAL with err naming the key by its
 * position when one is malformed or there are more than TD_SEAL_KEYS_MAX;
 * *k is then empty. */
int td_seal_keys_parse(td_seal_keys *k, const char *list, char *err, size_t errlen);

void td_seal_keys_wipe(td_seal_keys *k);

/* A new random key, as `tokendist keygen` prints it. */
int td_seal_keygen(char out[TD_SEAL_KEY_B64], char *err, size_t errlen);

/* Seals the record text json (len bytes) of token `name`, generated at
 * `generated`, with the first key of k and a random nonce.  *out is the
 * envelope's JSON text, NUL-terminated, malloc'd (caller frees), *outlen
 * its length.  TD_EINVAL when k is empty or name invalid; TD_ENOMEM. */
int td_seal_wrap(const td_seal_keys *k, const char *name, int64_t generated, const char *json,
                 size_t len, char **out, size_t *outlen, char *err, size_t errlen);

/* td_seal_wrap with a given nonce: for the test vector only. */
int td__seal_wrap_nonce(const td_seal_keys *k, const char *name, int64_t generated, const char *json,
                        size_t len, const unsigned char nonce[TD_SEAL_NONCE_LEN], char **out,
                        size_t *outlen, char *err, size_t errlen);

/* What a Gitee file's clear part says.  td_seal_peek returns TD_OK when
 * text is an envelope (a JSON object with "v" and without "access_token")
 * whose clear fields are well formed, filling the outputs (each may be
 * NULL); TD_ENOTFOUND when text is not an envelope at all (a plaintext
 * record, or not JSON); TD_EINVAL with err when it is a malformed one.
 * Both functions here skip a leading UTF-8 BOM (td_record_skip_bom): the
 * plaintext td_seal_unwrap hands out is without it. */
int td_seal_peek(const char *text, size_t len, int64_t *generated, char kid[TD_SEAL_KID_LEN],
                 char *err, size_t errlen);

/* The record text inside a Gitee file, by one rule for every reader (the
 * client library, the refresher reading its own file back):
 *   - an envelope is opened with the key its kid names (k may list several);
 *     its name must be `name` and it must authenticate;
 *   - a plaintext record is taken as is when k is NULL or empty, and refused
 *     when a share key is set: a file anyone with write access to the
 *     repository could have put there is not trusted by a sealed setup.
 * *plain is malloc'd and NUL-terminated (caller wipes and frees it), *plen
 * its length.  err is a phrase for "Gitee …: <err>".  Codes:
 *   TD_ESHAREKEY  sealed and no share key set, or none with its kid; or
 *                 plaintext while a share key is set
 *   TD_EINVAL     not JSON, a malformed envelope or one of another version,
 *                 another token's name, or one that does not authenticate
 *                 (changed, corrupted)
 *   TD_ENOMEM */
int td_seal_unwrap(const td_seal_keys *k, const char *name, const char *text, size_t len, char **plain,
                   size_t *plen, char *err, size_t errlen);

#endif
