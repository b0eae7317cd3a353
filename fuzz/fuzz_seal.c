/*
 * libFuzzer: a Gitee file's bytes through td_seal_unwrap, the one rule by
 * which every reader takes the file (sealed or plaintext), with the test
 * vector's key and with none.  Input: the file's content.
 *
 * Invariants: a refusal is TD_ESHAREKEY or TD_EINVAL with a sentence and no
 * output; an opened record is NUL-terminated, and sealing it again (a new
 * nonce) under the same name and time opens to the same bytes; without a
 * key a file is handed on byte for byte or refused, never opened.
 */
#include "seal.h"
#include "tokendist.h"

#include <stdlib.h>
#include <string.h>

/* tests/vectors/sealed-v1.json's key: the seed corpus holds its file. */
static const char *const KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static void refused(int rc, const char *plain, const char *err)
{
    if ((rc != TD_ESHAREKEY && rc != TD_EINVAL && rc != TD_ENOMEM) || plain || !err[0]) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static td_seal_keys keys, none;
    static int ready;
    char *plain = NULL, *again = NULL, *back = NULL, err[1024] = "";
    size_t plen = 0, alen = 0, blen = 0;
    int64_t gen = 0;
    int rc;

    if (!ready && td_seal_keys_parse(&keys, KEY, err, sizeof err) != TD_OK) __builtin_trap();
    ready = 1;

    rc = td_seal_unwrap(&keys, "default", (const char *)data, size, &plain, &plen, err, sizeof err);
    if (rc != TD_OK) {
        refused(rc, plain, err);
    } else {
        /* only an envelope opens with a key */
        if (!plain || plain[plen] != '\0' || td_seal_peek((const char *)data, size, &gen, NULL, err, sizeof err) != TD_OK)
            __builtin_trap();
        if (td_seal_wrap(&keys, "default", gen, plain, plen, &again, &alen, err, sizeof err) != TD_OK ||
            td_seal_unwrap(&keys, "default", again, alen, &back, &blen, err, sizeof err) != TD_OK ||
            blen != plen || memcmp(back, plain, plen) != 0)
            __builtin_trap();
    }
    free(plain), plain = NULL;
    free(again);
    free(back);

    err[0] = '\0';
    rc = td_seal_unwrap(&none, "default", (const char *)data, size, &plain, &plen, err, sizeof err);
    if (rc != TD_OK) refused(rc, plain, err);
    else {
        /* A plaintext comes back as it is, less a leading UTF-8 BOM
         * (td_record_skip_bom: another tool's editor may have added it). */
        size_t bom = size >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) ? 3 : 0;
        if (plen != size - bom || memcmp(plain, data + bom, plen) != 0) __builtin_trap();
    }
    free(plain);
    return 0;
}
