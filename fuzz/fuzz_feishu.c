/*
 * libFuzzer: Feishu's answers.  The token request's answer goes through
 * td_feishu_parse_token (what td_feishu_fetch_token does with it), and
 * the same bytes through td_feishu_result, the {code,msg,data} mapping
 * every other Feishu call uses.  Input: see resp.h.
 */
#include "feishu.h"
#include "resp.h"
#include "tokendist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_httpc_resp r;
    char *buf = fuzz_resp(data, size, &r), err[512];
    static td_feishu_token tok;     /* 8 KB: kept off the stack */
    json_t *o = (json_t *)1;
    int rc;

    rc = td_feishu_parse_token(&r, &tok, err, sizeof err);
    if (rc == TD_OK) {
        /* Whatever Feishu sends, a token we accept can go into a header. */
        if (!fuzz_token_ok(tok.app_access_token, 4096) ||
            (tok.tenant_access_token[0] && !fuzz_token_ok(tok.tenant_access_token, 4096)) ||
            tok.expire < 1 || tok.expire > 86400 || tok.retry_after != -1)
            __builtin_trap();
    } else if (tok.app_access_token[0] || tok.tenant_access_token[0] || !err[0] ||
               (rc != TD_ERATELIMIT && tok.retry_after != -1)) {
        __builtin_trap();
    }

    rc = td_feishu_result(&r, &o, err, sizeof err);
    if (rc == TD_OK ? !json_is_object(o) : (o != NULL || !err[0])) __builtin_trap();
    json_decref(o);
    free(buf);
    return 0;
}
