/* auth -- see auth.h. */
#include "auth.h"

#include "tokendist.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *td_auth_presented(const char *authorization, const char *x_api_key)
{
    if (authorization) {
        while (*authorization == ' ') authorization++;
        if (!strncasecmp(authorization, "Bearer ", 7)) {
            authorization += 7;
            while (*authorization == ' ') authorization++;
            if (*authorization) return authorization;
        }
    }
    return x_api_key && *x_api_key ? x_api_key : NULL;
}

int td_auth_keys_init(td_auth_keys *k, const td_strlist *keys)
{
    k->n = 0;
    k->digest = NULL;
    if (keys->n == 0) return TD_OK;
    if (!(k->digest = calloc(keys->n, sizeof *k->digest))) return TD_ENOMEM;
    for (size_t i = 0; i < keys->n; i++)
        SHA256((const unsigned char *)keys->v[i], strlen(keys->v[i]), k->digest[i]);
    k->n = keys->n;
    return TD_OK;
}

void td_auth_keys_free(td_auth_keys *k)
{
    if (k->digest) OPENSSL_cleanse(k->digest, k->n * sizeof *k->digest);
    free(k->digest);
    k->digest = NULL;
    k->n = 0;
}

td_auth_result td_auth_check(const td_auth_keys *k, const char *presented)
{
    unsigned char got[SHA256_DIGEST_LENGTH];
    int match = 0;

    if (!presented || !*presented) return TD_AUTH_MISSING;
    SHA256((const unsigned char *)presented, strlen(presented), got);
    for (size_t i = 0; i < k->n; i++)
        match |= CRYPTO_memcmp(k->digest[i], got, sizeof got) == 0;
    return match ? TD_AUTH_OK : TD_AUTH_WRONG;
}
