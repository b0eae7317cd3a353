/*
 * auth -- push and read keys.
 *
 * A request presents a key as "Authorization: Bearer KEY" or
 * "X-Api-Key: KEY".  Keys are compared in constant time: both sides are
 * hashed with SHA-256 and the digests compared with CRYPTO_memcmp, against
 * every configured key, so neither the length nor the position of a
 * matching key shows in the timing.
 */
#ifndef TD_AUTH_H
#define TD_AUTH_H

#include "config.h"

typedef enum { TD_AUTH_OK = 0, TD_AUTH_MISSING, TD_AUTH_WRONG } td_auth_result;

/* The key a request presents, or NULL: the Bearer credential of
 * authorization, else x_api_key. */
const char *td_auth_presented(const char *authorization, const char *x_api_key);

/* The configured keys, kept only as SHA-256 digests. */
typedef struct td_auth_keys {
    size_t n;
    unsigned char (*digest)[32];
} td_auth_keys;

int td_auth_keys_init(td_auth_keys *k, const td_strlist *keys);
void td_auth_keys_free(td_auth_keys *k);

/* k->n == 0 means "no key can pass" for writers; callers decide what an
 * empty set means for readers. */
td_auth_result td_auth_check(const td_auth_keys *k, const char *presented);

#endif
