/* gitee -- see gitee.h.
 *
 * The access token travels as the access_token parameter (query for GET,
 * JSON body for POST/PUT), which is what Gitee documents.  Because it sits
 * in the GET URL, no URL we requested ever reaches an error text: errors
 * name the file as owner/repo:path instead. */
#include "gitee.h"
#include "httpc.h"
#include "strbuf.h"
#include "tokendist.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GITEE_ANSWER_MAX (TD_GITEE_FILE_MAX * 2 + (64u << 10)) /* base64 + JSON around it */

static const char *base_of(const td_gitee *g)
{
    return g->base_url && *g->base_url ? g->base_url : TD_GITEE_DEFAULT_BASE;
}

/* Appends s percent-encoded, keeping its '/' (a file path's folders). */
static int append_path(td_strbuf *b, const char *s)
{
    for (;;) {
        size_t n = strcspn(s, "/");
        td_httpc_escape_append(b, s, n);
        if (!s[n]) break;
        td_strbuf_puts(b, "/");
        s += n + 1;
    }
    return td_strbuf_error(b);
}

/* {base}/repos/{owner}/{repo}/contents/{path}, plus the query for reads.
 * A URL that does not fit is TD_ETOOBIG with err naming the setting that
 * made it overflow; the access token is named, never shown. */
static int make_url(const td_gitee *g, int with_query, char *buf, size_t len, char *err, size_t errlen)
{
    const char *base = base_of(g), *culprit;
    size_t bl = strlen(base);
    td_strbuf b;

    while (bl > 0 && base[bl - 1] == '/') bl--;
    td_strbuf_fixed(&b, buf, len);
    culprit = "GITEE_BASE_URL";
    td_strbuf_append(&b, base, bl);
    td_strbuf_puts(&b, "/repos/");
    if (td_strbuf_error(&b) != TD_OK) goto toobig;
    culprit = "GITEE_OWNER";
    td_httpc_escape_append(&b, g->owner, strlen(g->owner));
    if (td_strbuf_puts(&b, "/") != TD_OK) goto toobig;
    culprit = "GITEE_REPO";
    td_httpc_escape_append(&b, g->repo, strlen(g->repo));
    if (td_strbuf_puts(&b, "/contents/") != TD_OK) goto toobig;
    culprit = "GITEE_FILE_PATH";
    if (append_path(&b, g->path[0] == '/' ? g->path + 1 : g->path) != TD_OK) goto toobig;
    if (!with_query) return TD_OK;
    if (g->access_token && *g->access_token) {
        culprit = "GITEE_ACCESS_TOKEN";
        td_strbuf_puts(&b, "?access_token=");
        if (td_httpc_escape_append(&b, g->access_token, strlen(g->access_token)) != TD_OK) goto toobig;
    }
    if (g->branch && *g->branch) {
        culprit = "GITEE_BRANCH";
        td_strbuf_puts(&b, g->access_token && *g->access_token ? "&ref=" : "?ref=");
        if (td_httpc_escape_append(&b, g->branch, strlen(g->branch)) != TD_OK) goto toobig;
    }
    return TD_OK;
toobig:
    memset(buf, 0, len);    /* it may hold part of the access token */
    snprintf(err, errlen, "%s 太长：Gitee 请求地址超过 %zu 字节的上限 (%.80s/%.80s:%.200s)，请缩短它", culprit, len - 1,
             g->owner, g->repo, g->path);
    return TD_ETOOBIG;
}

/* Gitee's error bodies are {"message": "..."}. */
static const char *gitee_message(const json_t *o)
{
    const char *m = json_string_value(json_object_get(o, "message"));
    return m ? m : "";
}

/* Maps a non-2xx answer to a code and a sentence naming the file. */
static int status_error(const td_gitee *g, long status, const json_t *o, char *err, size_t errlen)
{
    const char *m = gitee_message(o);

    switch (status) {
    case 401:
        snprintf(err, errlen, "Gitee 访问令牌无效 (401: %s)，请检查 GITEE_ACCESS_TOKEN", m);
        return TD_EAUTH;
    case 403:
        /* Gitee answers some refusals with a web page instead of the
         * API's {"message"}: as far as the project knows, when the token
         * lacks the projects scope or the repository has online editing
         * (仓库在线编辑) switched off, which the contents API needs to
         * write.  A bare "403" would leave the user guessing. */
        if (!json_is_object(o))
            snprintf(err, errlen, "Gitee 拒绝访问 %s/%s (403，回答是网页而不是 API 的 JSON)：常见原因是私人令牌"
                                  "缺少 projects 权限 (GITEE_ACCESS_TOKEN)，或仓库关闭了「仓库在线编辑」"
                                  "(仓库 → 管理 → 功能设置)；请检查这两项",
                     g->owner, g->repo);
        else
            snprintf(err, errlen, "Gitee 拒绝访问 %s/%s (403: %s)，请检查令牌权限 (需要 projects) 和仓库设置",
                     g->owner, g->repo, m);
        return TD_EAUTH;
    case 404:
        snprintf(err, errlen, "Gitee 上找不到 %s/%s:%s (404: %s)，请检查 GITEE_OWNER、GITEE_REPO、GITEE_BRANCH 和 GITEE_FILE_PATH",
                 g->owner, g->repo, g->path, m);
        return TD_ENOTFOUND;
    default:
        /* An HTTP error like any source's (tokendist get: exit 5, as the
         * Node and Python clients' EHTTP); a 200 that is no file is
         * TD_EUPSTREAM below. */
        snprintf(err, errlen, "Gitee HTTP错误: %ld (%s/%s:%s) %s", status, g->owner, g->repo, g->path, m);
        return TD_EHTTP;
    }
}

/* Gitee wraps base64 every 60 characters; EVP_Decode* skips the newlines. */
static int b64_decode(const char *in, size_t inlen, char **out, size_t *outlen)
{
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    unsigned char *buf = malloc(inlen / 4 * 3 + 4);
    int n = 0, m = 0, rc = TD_EINVAL;

    if (!ctx || !buf) {
        rc = TD_ENOMEM;
        goto out;
    }
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, buf, &n, (const unsigned char *)in, (int)inlen) < 0) goto out;
    if (EVP_DecodeFinal(ctx, buf + n, &m) < 0) goto out;
    buf[n + m] = '\0';
    *out = (char *)buf, buf = NULL;
    *outlen = (size_t)(n + m);
    rc = TD_OK;
out:
    free(buf);
    EVP_ENCODE_CTX_free(ctx);
    return rc;
}

static char *b64_encode(const char *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    return out;
}

int td_gitee_parse_contents(const td_gitee *g, long status, const char *body, size_t body_len,
                            char **content, size_t *len, char sha[41], char *err, size_t errlen)
{
    json_t *o = NULL;
    const char *b64, *s;
    char *data = NULL;
    size_t dlen = 0;
    int rc;

    if (content) *content = NULL;
    o = json_loadb(body ? body : "", body_len, 0, NULL);
    if (status < 200 || status >= 300) {
        rc = status_error(g, status, o, err, errlen);
        goto out;
    }
    if (json_is_array(o)) {
        /* [] is Gitee's "no such file"; a non-empty list means a folder. */
        rc = json_array_size(o) ? TD_EINVAL : TD_ENOTFOUND;
        snprintf(err, errlen, json_array_size(o) ? "Gitee: %s/%s:%s 是一个目录，不是文件"
                                                 : "Gitee 上还没有 %s/%s:%s",
                 g->owner, g->repo, g->path);
        goto out;
    }
    b64 = json_string_value(json_object_get(o, "content"));
    s = json_string_value(json_object_get(o, "sha"));
    if (!json_is_object(o) || !b64 || !s || strlen(s) != 40) {
        snprintf(err, errlen, "Gitee 的回答不是文件内容 (%s/%s:%s)", g->owner, g->repo, g->path);
        rc = TD_EUPSTREAM;
        goto out;
    }
    if ((rc = b64_decode(b64, strlen(b64), &data, &dlen)) != TD_OK) {
        snprintf(err, errlen, "Gitee 文件内容不是有效的 base64 (%s/%s:%s)", g->owner, g->repo, g->path);
        if (rc == TD_EINVAL) rc = TD_EUPSTREAM;
        goto out;
    }
    if (dlen > TD_GITEE_FILE_MAX) {
        snprintf(err, errlen, "Gitee 文件 %s/%s:%s 超过 %u 字节", g->owner, g->repo, g->path, TD_GITEE_FILE_MAX);
        rc = TD_ETOOBIG;
        goto out;
    }
    if (sha) memcpy(sha, s, 41);
    if (len) *len = dlen;
    if (content) *content = data, data = NULL;
    rc = TD_OK;
out:
    free(data);
    json_decref(o);
    return rc;
}

int td_gitee_read(const td_gitee *g, char **content, size_t *len, char sha[41], char *err, size_t errlen)
{
    char url[2048], why[512];
    td_httpc_resp resp = {0};
    int rc;

    if (content) *content = NULL;
    if (!g->owner || !*g->owner || !g->repo || !*g->repo || !g->path || !*g->path) {
        snprintf(err, errlen, "GITEE_OWNER、GITEE_REPO 和 GITEE_FILE_PATH 都要设置");
        return TD_EINVAL;
    }
    if ((rc = make_url(g, 1, url, sizeof url, err, errlen)) != TD_OK) return rc;
    {
        td_httpc_req hr = {.method = "GET", .url = url, .timeout_ms = g->timeout_ms,
                           .max_body = GITEE_ANSWER_MAX, .pool = g->pool};
        if ((rc = td_httpc_do(&hr, &resp, why, sizeof why)) != TD_OK) {
            const char *what = td_httpc_err_detail(why, url);
            snprintf(err, errlen, "Gitee 请求失败 (%s/%s:%s): %s", g->owner, g->repo, g->path,
                     what ? what : "请求失败");
            goto out;
        }
    }
    rc = td_gitee_parse_contents(g, resp.status, resp.body, resp.body_len, content, len, sha,
                                 err, errlen);
out:
    memset(url, 0, sizeof url);
    td_httpc_resp_clear(&resp);
    return rc;
}

/* Gitee answers a stale sha with 400 "<path> does not match <sha>" (GitHub
 * would say 409), and a create racing another create with 400 "文件名已存在";
 * both mean "re-read and try again". */
static int is_stale(const char *method, long status, const json_t *o)
{
    const char *m = gitee_message(o);
    if (!strcmp(method, "PUT"))
        return status == 409 || (status == 400 && strstr(m, "does not match"));
    return status == 400 && (strstr(m, "已存在") || strstr(m, "already exists"));
}

int td_gitee_write(const td_gitee *g, const char *content, size_t len, const char *message,
                   td_gitee_guard guard, void *ud, char *err, size_t errlen)
{
    char url[2048], why[512], sha[41];
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", NULL};
    char *b64 = NULL, *cur = NULL, *body = NULL;
    size_t curlen = 0;
    json_t *o = NULL, *req = NULL;
    td_httpc_resp resp = {0};
    int rc = TD_ETOOBIG;

    if (len > TD_GITEE_FILE_MAX) {
        snprintf(err, errlen, "Gitee 文件内容超过 %u 字节", TD_GITEE_FILE_MAX);
        goto out;
    }
    if ((rc = make_url(g, 0, url, sizeof url, err, errlen)) != TD_OK) goto out;
    rc = TD_ENOMEM;
    if (!(b64 = b64_encode(content, len))) goto out;

    for (int attempt = 0; attempt < 2; attempt++) {
        const char *method;

        free(cur), cur = NULL;
        rc = td_gitee_read(g, &cur, &curlen, sha, err, errlen);
        if (rc == TD_OK && curlen == len && !memcmp(cur, content, len))
            goto out;       /* already there: an empty commit helps no one */
        if (rc != TD_OK && rc != TD_ENOTFOUND) goto out;
        method = rc == TD_OK ? "PUT" : "POST";
        if (rc == TD_OK && guard && (rc = guard(ud, cur, curlen, err, errlen)) != TD_OK) {
            if (rc > 0) rc = TD_OK;
            goto out;
        }

        rc = TD_ENOMEM;
        json_decref(req);
        if (!(req = json_pack("{s:s, s:s}", "content", b64, "message", message ? message : "update token")))
            goto out;
        if (g->access_token && *g->access_token)
            json_object_set_new(req, "access_token", json_string(g->access_token));
        if (g->branch && *g->branch) json_object_set_new(req, "branch", json_string(g->branch));
        if (!strcmp(method, "PUT")) json_object_set_new(req, "sha", json_string(sha));
        if (body) memset(body, 0, strlen(body));
        free(body);
        if (!(body = json_dumps(req, JSON_COMPACT))) goto out;

        td_httpc_resp_clear(&resp);
        {
            td_httpc_req hr = {.method = method, .url = url, .body = body, .body_len = strlen(body),
                               .headers = hdrs, .timeout_ms = g->timeout_ms,
                               .max_body = 256u << 10, .pool = g->pool};
            if ((rc = td_httpc_do(&hr, &resp, why, sizeof why)) != TD_OK) {
                snprintf(err, errlen, "Gitee 写入失败 (%s/%s:%s): %s", g->owner, g->repo, g->path, why);
                goto out;
            }
        }
        json_decref(o);
        o = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
        if (resp.status >= 200 && resp.status < 300) {
            rc = TD_OK;
            goto out;
        }
        if (attempt == 0 && is_stale(method, resp.status, o)) continue;
        rc = status_error(g, resp.status, o, err, errlen);
        if (is_stale(method, resp.status, o)) {
            snprintf(err, errlen, "Gitee 文件 %s/%s:%s 在写入时被他人修改 (%s)，重试后仍冲突",
                     g->owner, g->repo, g->path, gitee_message(o));
            rc = TD_EUNAVAIL;   /* busy, not older: worth another try later */
        }
        goto out;
    }
out:
    if (body) memset(body, 0, strlen(body));
    free(body);
    free(b64);
    free(cur);
    json_decref(o);
    json_decref(req);
    td_httpc_resp_clear(&resp);
    return rc;
}
