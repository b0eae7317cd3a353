/*
 * libFuzzer: Gitee's answer to a contents read, through
 * td_gitee_parse_contents (what td_gitee_read does with it).  Input: see
 * resp.h (the headers part is unused: Gitee's answer is status and body).
 *
 * Invariant: decoded content re-encoded the way Gitee sends it (base64
 * wrapped every 60 characters) decodes to the same bytes and sha.
 */
#include "gitee.h"
#include "resp.h"
#include "tokendist.h"

#include <jansson.h>
#include <openssl/evp.h>

static const td_gitee g = {.owner = "owner", .repo = "repo", .path = "token.json"};

/* Base64 with a newline after every 60 characters, as Ruby's encode64. */
static char *gitee_b64(const char *in, size_t len)
{
    size_t full = (len + 2) / 3 * 4;
    char *flat = malloc(full + 1), *out = malloc(full + full / 60 + 2), *o = out;

    if (!flat || !out) abort();
    EVP_EncodeBlock((unsigned char *)flat, (const unsigned char *)in, (int)len);
    for (size_t i = 0; i < full; i += 60) {
        size_t n = full - i < 60 ? full - i : 60;
        memcpy(o, flat + i, n);
        o += n;
        *o++ = '\n';
    }
    *o = '\0';
    free(flat);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_httpc_resp r;
    char *buf = fuzz_resp(data, size, &r), err[1024], sha[41], sha2[41];
    char *content = (char *)1, *again = NULL;
    size_t len = 0, len2 = 0;
    int rc;

    rc = td_gitee_parse_contents(&g, r.status, r.body, r.body_len, &content, &len, sha, err, sizeof err);
    if (rc != TD_OK) {
        if (content || !err[0]) __builtin_trap();
    } else {
        json_t *o;
        char *b64 = gitee_b64(content, len), *text;

        if (!content || content[len] != '\0' || len > TD_GITEE_FILE_MAX || strlen(sha) != 40)
            __builtin_trap();
        if (!(o = json_pack("{s:s, s:s, s:s}", "type", "file", "sha", sha, "content", b64)) ||
            !(text = json_dumps(o, 0)))
            abort();
        if (td_gitee_parse_contents(&g, 200, text, strlen(text), &again, &len2, sha2, err, sizeof err) != TD_OK ||
            len2 != len || memcmp(again, content, len) != 0 || strcmp(sha, sha2) != 0)
            __builtin_trap();
        free(text);
        json_decref(o);
        free(b64);
        free(again);
        free(content);
    }
    free(buf);
    return 0;
}
