/*
 * libFuzzer: SCF events, as the scf-runtime gets them from
 * /runtime/invocation/next: td_scf_handle (td_scf_parse_event -- API
 * Gateway and Function URL shapes, base64 bodies, headers in any case --
 * then td_api_handle over an in-memory SQLite store with a push key and
 * a read key, then the integrated response).
 *
 * Invariant: an event we answer gets a well-formed integrated response,
 * whose base64 body (when flagged) decodes.
 */
#include "api_fixture.h"
#include "clock.h"
#include "log.h"
#include "scf.h"
#include "store.h"
#include "tokendist.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


static void check_response(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *st = json_object_get(o, "statusCode"), *b64 = json_object_get(o, "isBase64Encoded");
    json_t *body = json_object_get(o, "body");

    if (!json_is_object(o) || !json_is_integer(st) || json_integer_value(st) < 200 ||
        json_integer_value(st) > 599 || !json_is_boolean(b64) ||
        !json_is_object(json_object_get(o, "headers")) || !json_is_string(body))
        __builtin_trap();
    if (json_is_true(b64)) {
        size_t n = json_string_length(body);
        unsigned char *out = malloc(n / 4 * 3 + 1);
        if (!out) abort();
        if (n % 4 || EVP_DecodeBlock(out, (const unsigned char *)json_string_value(body), (int)n) < 0)
            __builtin_trap();
        free(out);
    }
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512], *out = NULL;
    size_t outlen = 0;
    td_scf_req r;
    td_api *api = fixture_api();

    if (td_scf_parse_event((const char *)data, size, &r, err, sizeof err) == TD_OK) {
        if (!r.req.method || !*r.req.method || !r.req.path || !r.req.remote ||
            (r.req.body_len && !r.req.body))
            __builtin_trap();
        td_scf_req_clear(&r);
    }
    if (td_scf_handle(api, (const char *)data, size, 0, &out, &outlen, err, sizeof err) == TD_OK) {
        if (!out || strlen(out) != outlen) __builtin_trap();
        check_response(out, outlen);
    } else if (out || !err[0]) {
        __builtin_trap();
    }
    free(out);
    return 0;
}
