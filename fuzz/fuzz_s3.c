/*
 * libFuzzer: what the S3 store reads that someone else wrote -- the store
 * URL an operator types, and a service's answers: error documents, lease
 * objects, the index object.  The input is split at NUL bytes into those
 * four parts.  Checked beyond "no crash": an accepted URL yields object
 * URLs of key characters only (what libcurl 7.88 signs as it is must be
 * the canonical path), a refusal says why, error codes are printable,
 * index names come back sorted without duplicates, and their versions
 * are lowercase hex or empty.
 */
#include "store/s3.h"
#include "tokendist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *field[4] = {"//bkt-1/p?endpoint=https://cos.ap-guangzhou.myqcloud.com", "", "", ""};
    size_t flen[4] = {0, 0, 0, 0};
    char *copy = malloc(size + 1), err[600], url[1024], code[64], msg[200], owner[160];
    td__s3_index_entry *names = NULL;
    size_t start = 0, n = 0;
    int k = 0, bad = 0;
    int64_t exp;
    td__s3_url u;

    memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t i = 0; i <= size && k < 4; i++)
        if (i == size || copy[i] == '\0') {
            field[k] = copy + start;
            flen[k++] = i - start;
            start = i + 1;
        }

    err[0] = '\0';
    if (td__s3_parse_url(field[0], &u, err, sizeof err) == TD_OK) {
        if (td__s3_object_url(&u, "tokens/default.json", url, sizeof url) == TD_OK) {
            const char *path = strstr(url, "://") + 3;
            path += strcspn(path, "/");
            for (const char *p = path; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/", *p))
                    __builtin_trap();
        }
        if (!u.region[0] || u.revalidate_s < 1 || u.revalidate_s > 3600) __builtin_trap();
    } else if (!err[0]) {
        __builtin_trap();
    }

    td__s3_error_of(field[1], flen[1], code, sizeof code, msg, sizeof msg);
    for (const char *p = code; *p; p++)
        if (*p < ' ' || *p >= 0x7f) __builtin_trap();

    if (td__s3_lease_parse(field[2], flen[2], owner, sizeof owner, &exp) == TD_OK && !owner[0]) __builtin_trap();

    if (td__s3_index_parse(field[3], flen[3], &names, &n, &bad) == TD_OK) {
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && strcmp(names[i - 1].name, names[i].name) >= 0) __builtin_trap();
            size_t vl = strlen(names[i].version);
            if (vl >= TD_S3_VERSION_LEN || strspn(names[i].version, "0123456789abcdef") != vl) __builtin_trap();
        }
        td__s3_index_free(names, n);
    }
    free(copy);
    return 0;
}
