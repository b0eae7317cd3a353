/* feishu -- see feishu.h. */
#include "feishu.h"
#include "strbuf.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Feishu's answers are small JSON objects; anything bigger is not Feishu. */
#define FEISHU_BODY_MAX (256u << 10)

static const char *base_of(const td_feishu *f)
{
    return f->base_url && *f->base_url ? f->base_url : TD_FEISHU_DEFAULT_BASE;
}

/* Joins base and path without doubling the slash a user may have left on
 * FEISHU_BASE_URL. */
static int make_url(char *buf, size_t len, const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') bl--;
    int n = snprintf(buf, len, "%.*s%s", (int)bl, base, path);
    return n < 0 || (size_t)n >= len ? TD_ETOOBIG : TD_OK;
}

int td_feishu_result(const td_httpc_resp *r, json_t **data_or_root, char *err, size_t errlen)
{
    json_t *root = NULL, *code, *data;
    const char *msg;
    json_int_t c;
    int rc = TD_EUPSTREAM;

    if (data_or_root) *data_or_root = NULL;
    if (r->body && r->body_len) root = json_loadb(r->body, r->body_len, 0, NULL);
    code = json_object_get(root, "code");
    if (!code) /* custom-bot webhooks of older tenants answer {"StatusCode": 0, ...} */
        code = json_object_get(root, "StatusCode");
    if (!json_is_object(root) || !json_is_integer(code)) {
        /* Not Feishu's envelope: a proxy's HTML page, garbage, nothing. */
        if (r->status == 429) {
            rc = TD_ERATELIMIT;
            snprintf(err, errlen, "HTTP 429: 请求过于频繁，被飞书限流");
        } else {
            snprintf(err, errlen, "HTTP %ld: 回答不是飞书的 JSON 结果 (请检查 FEISHU_BASE_URL，以及中间的代理或网关)", r->status);
        }
        goto out;
    }
    c = json_integer_value(code);
    msg = json_string_value(json_object_get(root, "msg"));
    if (!msg) msg = "";
    if (c == 0 && r->status >= 200 && r->status < 300) {
        data = json_object_get(root, "data");
        if (data_or_root) *data_or_root = json_incref(json_is_object(data) ? data : root);
        rc = TD_OK;
        goto out;
    }
    if (c == 0) /* code 0 with an error status: trust the status */
        c = r->status;
    if (r->status == 429 || c == TD_FEISHU_CODE_RATELIMIT || c == TD_FEISHU_CODE_BOT_RATELIMIT)
        rc = TD_ERATELIMIT;
    else if (c == TD_FEISHU_CODE_TOKEN_INVALID || c == TD_FEISHU_CODE_TOKEN_EXPIRED ||
             c == TD_FEISHU_CODE_TOKEN_REJECTED || c == TD_FEISHU_CODE_TOKEN_MISSING)
        rc = TD_EAUTH;
    snprintf(err, errlen, "错误码 %lld: %s", (long long)c, msg);
out:
    json_decref(root);
    return rc;
}

/* Copies a token field into dst, refusing an absurd one.  The token goes
 * into Authorization headers and into the record (which allows visible
 * ASCII only), so anything else, e.g. a CR LF that would add a header of
 * its own, is Feishu misbehaving and refused here, where it is clear. */
static int take_token(json_t *o, const char *key, char *dst, size_t dlen, int required,
                      char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(o, key));
    size_t n = s ? strlen(s) : 0;

    dst[0] = '\0';
    if (!n) {
        if (!required) return TD_OK;
        snprintf(err, errlen, "飞书的回答 (code 0) 里没有 %s", key);
        return TD_EUPSTREAM;
    }
    if (n >= dlen) {
        snprintf(err, errlen, "飞书的 %s 长 %zu 字节，超过上限 %zu", key, n, dlen - 1);
        return TD_ETOOBIG;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            snprintf(err, errlen, "飞书的 %s 含有不可见字符 0x%02x (只允许可见的 ASCII)", key,
                     (unsigned char)s[i]);
            return TD_EUPSTREAM;
        }
    memcpy(dst, s, n + 1);
    return TD_OK;
}

/* The code of a Feishu answer that is a {code, ...} object, else 0. */
static json_int_t answer_code(const td_httpc_resp *r)
{
    json_t *root = r->body && r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_int_t c = json_integer_value(json_object_get(root, "code"));

    json_decref(root);
    return c;
}

int td_feishu_parse_token(const td_httpc_resp *resp, td_feishu_token *out, char *err, size_t errlen)
{
    json_t *root = NULL;
    char why[512];
    int rc;

    out->app_access_token[0] = out->tenant_access_token[0] = '\0';
    out->expire = 0;
    out->retry_after = -1;
    out->quota_spent = 0;
    if ((rc = td_feishu_result(resp, &root, why, sizeof why)) != TD_OK) {
        if (rc == TD_ERATELIMIT) out->retry_after = td_httpc_retry_after(resp);
        if (rc == TD_EUPSTREAM && answer_code(resp) == TD_FEISHU_CODE_QUOTA) {
            out->quota_spent = 1;
            snprintf(err, errlen, "飞书 app_access_token 获取失败: %s (飞书免费版本月的 API 调用额度已用完："
                                  "下月 1 日恢复，或升级飞书版本)", why);
            goto out;
        }
        snprintf(err, errlen, "飞书 app_access_token 获取失败: %s", why);
        goto out;
    }
    if ((rc = take_token(root, "app_access_token", out->app_access_token,
                         sizeof out->app_access_token, 1, err, errlen)) != TD_OK)
        goto out;
    if ((rc = take_token(root, "tenant_access_token", out->tenant_access_token,
                         sizeof out->tenant_access_token, 0, err, errlen)) != TD_OK)
        goto out;
    {
        json_t *e = json_object_get(root, "expire");
        /* Feishu's tokens live 2 h; a day is a generous sanity ceiling. */
        if (!json_is_integer(e) || json_integer_value(e) <= 0 || json_integer_value(e) > 86400) {
            snprintf(err, errlen, "飞书的回答 (code 0) 里 \"expire\" 缺失或无效");
            rc = TD_EUPSTREAM;
            goto out;
        }
        out->expire = (long)json_integer_value(e);
    }
    rc = TD_OK;
out:
    if (rc != TD_OK) out->app_access_token[0] = out->tenant_access_token[0] = '\0';
    json_decref(root);
    return rc;
}

int td_feishu_fetch_token(const td_feishu *f, td_feishu_token *out, char *err, size_t errlen)
{
    char url[1024], why[512];
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", NULL};
    json_t *req = NULL;
    char *body = NULL;
    td_httpc_resp resp = {0};
    int rc;

    out->app_access_token[0] = out->tenant_access_token[0] = '\0';
    out->expire = 0;
    out->retry_after = -1;
    out->quota_spent = 0;
    if (!f->app_id || !*f->app_id || !f->app_secret || !*f->app_secret) {
        snprintf(err, errlen, "FEISHU_APP_ID 和 FEISHU_APP_SECRET 都要设置");
        return TD_EINVAL;
    }
    if ((rc = make_url(url, sizeof url, base_of(f), "/open-apis/auth/v3/app_access_token/internal")) != TD_OK) {
        snprintf(err, errlen, "FEISHU_BASE_URL 太长");
        return rc;
    }
    rc = TD_ENOMEM;
    if (!(req = json_pack("{s:s, s:s}", "app_id", f->app_id, "app_secret", f->app_secret))) goto out;
    if (!(body = json_dumps(req, JSON_COMPACT))) goto out;
    {
        td_httpc_req hr = {.method = "POST", .url = url, .body = body, .body_len = strlen(body),
                           .headers = hdrs, .timeout_ms = f->timeout_ms,
                           .max_body = FEISHU_BODY_MAX};
        if ((rc = td_httpc_do(&hr, &resp, why, sizeof why)) != TD_OK) {
            snprintf(err, errlen, "飞书 app_access_token 请求失败: %s", why);
            goto out;
        }
    }
    rc = td_feishu_parse_token(&resp, out, err, errlen);
out:
    if (body) {
        /* The request carried the app secret. */
        memset(body, 0, strlen(body));
        free(body);
    }
    json_decref(req);
    td_httpc_resp_clear(&resp);
    return rc;
}

int td_feishu_send_text(const td_feishu *f, const char *tenant_token, const char *chat_id,
                        const char *text, char *err, size_t errlen)
{
    char url[1024], auth[4200], why[512];
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", auth, NULL};
    json_t *content = NULL, *req = NULL;
    char *ctext = NULL, *body = NULL;
    td_httpc_resp resp = {0};
    int rc;

    if (!tenant_token || !*tenant_token || !chat_id || !*chat_id) {
        snprintf(err, errlen, "发送飞书群消息需要 tenant_access_token 和群 ID (FEISHU_CHAT_ID)");
        return TD_EINVAL;
    }
    if (make_url(url, sizeof url, base_of(f), "/open-apis/im/v1/messages?receive_id_type=chat_id") != TD_OK ||
        (size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", tenant_token) >= sizeof auth) {
        snprintf(err, errlen, "FEISHU_BASE_URL 或 tenant_access_token 太长");
        return TD_ETOOBIG;
    }
    rc = TD_ENOMEM;
    /* Feishu wants "content" as a JSON *string* holding the object. */
    if (!(content = json_pack("{s:o}", "text", td_json_text(text))) ||
        !(ctext = json_dumps(content, JSON_COMPACT)) ||
        !(req = json_pack("{s:s, s:s, s:s}", "receive_id", chat_id, "msg_type", "text", "content", ctext)) ||
        !(body = json_dumps(req, JSON_COMPACT))) {
        snprintf(err, errlen, "飞书消息发送失败: 无法把消息编码为 JSON (%s)", td_strerror(rc));
        goto out;
    }
    {
        td_httpc_req hr = {.method = "POST", .url = url, .body = body, .body_len = strlen(body),
                           .headers = hdrs, .timeout_ms = f->timeout_ms,
                           .max_body = FEISHU_BODY_MAX};
        if ((rc = td_httpc_do(&hr, &resp, why, sizeof why)) != TD_OK) {
            snprintf(err, errlen, "飞书消息发送失败: %s", why);
            goto out;
        }
    }
    if ((rc = td_feishu_result(&resp, NULL, why, sizeof why)) != TD_OK)
        snprintf(err, errlen, "飞书消息发送失败 (群 %s): %s", chat_id, why);
out:
    memset(auth, 0, sizeof auth);
    json_decref(content);
    json_decref(req);
    free(ctext);
    free(body);
    td_httpc_resp_clear(&resp);
    return rc;
}
