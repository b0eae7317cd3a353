/*
 * provider/dingtalk -- DingTalk (钉钉) on the provider interface, with the
 * current API (docs/providers.md has the sources):
 *
 *   POST https://api.dingtalk.com/v1.0/oauth2/accessToken {"appKey", "appSecret"}
 *        -> {"accessToken", "expireIn"}
 *
 * Errors come as HTTP 4xx with {"code", "message", "requestid"}.  A fetch
 * inside the lifetime returns the same token with its life extended:
 * EXTENDS -- the refresher fetches when renew_window seconds are left and
 * the record is rebuilt with the new expiry, so the token in service never
 * runs out.  No forced mode: a forced fetch is an ordinary one.
 */
#include "httpc.h"
#include "provider.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DT_BODY_MAX (64u << 10)

static int fetch(const td_provider *p, int forced, td_grant *out, char *err, size_t errlen)
{
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", NULL};
    char base[512], url[700], why[512];
    json_t *req = NULL, *root = NULL, *e;
    char *body = NULL;
    td_httpc_resp resp = {0};
    int rc = TD_ENOMEM;

    (void)forced;
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if ((size_t)snprintf(url, sizeof url, "%s/v1.0/oauth2/accessToken", td_provider_base(p, base, sizeof base)) >=
        sizeof url) {
        snprintf(err, errlen, "钉钉的接口地址过长 (检查 BASE_URL 设置)");
        return TD_ETOOBIG;
    }
    if (!(req = json_pack("{s:s, s:s}", "appKey", p->app_id, "appSecret", p->app_secret)) ||
        !(body = json_dumps(req, JSON_COMPACT)))
        goto out;
    {
        td_httpc_req q = {.method = "POST", .url = url, .body = body, .body_len = strlen(body),
                          .headers = hdrs, .timeout_ms = p->timeout_ms, .max_body = DT_BODY_MAX};
        if ((rc = td_httpc_do(&q, &resp, why, sizeof why)) != TD_OK) {
            snprintf(err, errlen, "钉钉 accessToken 请求失败: %s", why);
            goto out;
        }
    }
    root = resp.body ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (resp.status < 200 || resp.status > 299 || !json_is_object(root)) {
        const char *code = json_string_value(json_object_get(root, "code"));
        const char *msg = json_string_value(json_object_get(root, "message"));
        snprintf(err, errlen, "钉钉返回 HTTP %ld: %s %s", resp.status, code ? code : "", msg ? msg : "");
        rc = resp.status == 429 ? TD_ERATELIMIT
             : resp.status == 400 || resp.status == 401 || resp.status == 403 ? TD_EAUTH
                                                                             : TD_EUPSTREAM;
        if (rc == TD_ERATELIMIT) out->retry_after = td_httpc_retry_after(&resp);
        goto out;
    }
    if ((rc = td_provider_take_token("钉钉", "accessToken", json_string_value(json_object_get(root, "accessToken")),
                                     out->token, sizeof out->token, err, errlen)) != TD_OK)
        goto out;
    e = json_object_get(root, "expireIn");
    if (!json_is_integer(e) || json_integer_value(e) <= 0 || json_integer_value(e) > 86400) {
        out->token[0] = '\0';
        snprintf(err, errlen, "钉钉的回答里 expireIn 缺失或无效");
        rc = TD_EUPSTREAM;
        goto out;
    }
    out->expire = (long)json_integer_value(e);
    rc = TD_OK;
out:
    if (body) {
        memset(body, 0, strlen(body)); /* it carried the app secret */
        free(body);
    }
    json_decref(req);
    json_decref(root);
    td_httpc_resp_clear(&resp);
    return rc;
}

const td_provider_ops td_provider_dingtalk = {
    .kind = "dingtalk", .label = "钉钉", .default_base = "https://api.dingtalk.com",
    .renewal = TD_RENEW_EXTENDS, .renew_window = 1800, .min_remaining = 300, .id_name = "AppKey",
    .reissue_rule = "钉钉在有效期内重复获取只会给同一个 token 续期，过期后才换发新的，没有强制换发",
    .report_hint = "应用的接口权限、token 是否放在 x-acs-dingtalk-access-token 请求头里",
    .fetch = fetch,
};
