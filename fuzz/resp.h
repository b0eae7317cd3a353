/*
 * Shared by the harnesses that fuzz an upstream's HTTP answer.  The input
 * is split at its first two NUL bytes into the status (decimal text), the
 * raw header block (as libcurl keeps it, "Name: value\r\n" lines) and the
 * body, so seeds stay readable and the dictionary's words apply to all
 * three.  Missing parts are status 200, no headers, empty body.
 */
#ifndef TD_FUZZ_RESP_H
#define TD_FUZZ_RESP_H

#include "httpc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fills r from data; the returned buffer owns r's strings (free it). */
static inline char *fuzz_resp(const uint8_t *data, size_t size, td_httpc_resp *r)
{
    char *copy = malloc(size + 1), *parts[3] = {NULL, NULL, NULL};
    size_t start = 0;
    int n = 0;

    if (!copy) abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t i = 0; i < size && n < 2; i++)
        if (copy[i] == '\0') {
            parts[n++] = copy + start;
            start = i + 1;
        }
    memset(r, 0, sizeof *r);
    r->status = n >= 1 ? strtol(parts[0], NULL, 10) : 200;
    r->headers = n >= 2 ? parts[1] : NULL;
    r->headers_len = r->headers ? strlen(r->headers) : 0;
    /* The body is NUL-terminated like libcurl's buffer but may hold NULs. */
    r->body = copy + start;
    r->body_len = size - start;
    return copy;
}

/* A token as it may travel in an Authorization header: 1..max bytes of
 * visible ASCII (no space, no control character). */
static inline int fuzz_token_ok(const char *t, size_t max)
{
    size_t n = strlen(t);
    if (n < 1 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) return 0;
    return 1;
}

#endif
