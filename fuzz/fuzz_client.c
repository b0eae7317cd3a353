/*
 * libFuzzer: what libtokendist's client reads from outside.  An endpoint's
 * answer (status, headers with Date and the status line's reason phrase,
 * body) goes through td_httpc_date and td__client_endpoint_answer, as in
 * td_client_get; the body alone through td__client_judge, as a Gitee file
 * would, and through td__client_cache_open and then td__client_judge, as a
 * cache file would.  Input: see resp.h.  The local clock is fixed so a
 * run is reproducible.
 *
 * Invariant: an accepted record's tokens are within the validator's bound and can go into an
 * Authorization header, and the token asked for is not expired.
 */
#include "client.h"
#include "resp.h"
#include "tokendist.h"

#include <stdlib.h>
#include <string.h>

#define NOW 1705294200      /* 2024-01-15 12:50:00 +08:00 */

static void check(int rc, td_record *rec, td_token_kind kind, long min, int64_t now, const char *why)
{
    const char *tenant;

    if (rc != TD_OK) {
        if (rec || !why[0] || (rc != TD_EINVAL && rc != TD_EEXPIRED && rc != TD_ENOTFOUND &&
                               rc != TD_EAUTH && rc != TD_EHTTP && rc != TD_ETOOBIG))
            __builtin_trap();
        return;
    }
    tenant = td_record_field(rec, "tenant_access_token");
    if (!rec || !fuzz_token_ok(td_record_token(rec), TD_TOKEN_MAX) ||
        (tenant && !fuzz_token_ok(tenant, TD_TOKEN_MAX)) ||
        (kind == TD_TOKEN_APP && td_record_expires(rec) - now <= (min < 0 ? 0 : min)))
        __builtin_trap();
    td_record_free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_httpc_resp r;
    char *buf = fuzz_resp(data, size, &r), why[512];
    int64_t date = td_httpc_date(&r), now = NOW;
    td_record *rec;
    int rc;

    /* note_date's rule: the server's Date wins unless within 2 s of ours. */
    if (date && (date - NOW >= 2 || date - NOW <= -2)) now = date;
    for (int k = 0; k < 2; k++) {
        rec = NULL, why[0] = '\0';
        rc = td__client_endpoint_answer(&r, NULL, (td_token_kind)k, 300, now, &rec, why, sizeof why);
        check(rc, rec, (td_token_kind)k, 300, now, why);
    }
    rec = NULL, why[0] = '\0';
    rc = td__client_judge(r.body, r.body_len, TD_TOKEN_TENANT, 0, NOW, &rec, why, sizeof why);
    check(rc, rec, TD_TOKEN_TENANT, 0, NOW, why);
    /* The same body as a cache file: its name and kind checked, then judged. */
    {
        char *plain = NULL;
        size_t plen = 0;
        rec = NULL, why[0] = '\0';
        rc = td__client_cache_open(r.body, r.body_len, "default", TD_CACHE_KIND_TOKEN, &plain, &plen, why,
                                   sizeof why);
        if ((rc == TD_OK) != (plain != NULL) || (rc == TD_OK && strlen(plain) != plen)) __builtin_trap();
        if (rc == TD_OK) rc = td__client_judge(plain, plen, TD_TOKEN_APP, 0, NOW, &rec, why, sizeof why);
        check(rc, rec, TD_TOKEN_APP, 0, NOW, why);
        free(plain);
    }
    free(buf);
    return 0;
}
