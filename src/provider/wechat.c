/*
 * provider/wechat -- WeChat (公众号 / 小程序) on the provider interface,
 * with the stable-token API (docs/providers.md has the sources):
 *
 *   POST /cgi-bin/stable_token {"grant_type": "client_credential", "appid",
 *        "secret", "force_refresh": false} -> {"access_token", "expires_in"}
 *
 * Normal mode hands out the same token while it is valid and a new one in
 * its last 5 minutes, the old one still valid: IN_WINDOW with a 300 s
 * window, so a token with 4 minutes left is this platform's normal case and
 * clients accept down to 60 s.  Forced mode (force_refresh true) revokes
 * the previous token at once and is rationed by WeChat (a few a day, 30 s
 * apart); the refresher uses it only for a report the platform itself
 * confirmed (check: get_api_domain_ip, 40001/40014/42001 = invalid).
 * Every answer is {"errcode", "errmsg"} on failure -- the envelope WeCom
 * shares (td__wx_result).
 */
#include "httpc.h"
#include "provider.h"
#include "strbuf.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WX_BODY_MAX (64u << 10)

int td__wx_result(const char *label, const td_httpc_resp *r, json_t **root, char *err, size_t errlen)
{
    json_t *o = r->body && r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *code = json_object_get(o, "errcode");
    const char *msg = json_string_value(json_object_get(o, "errmsg"));
    json_int_t c = json_is_integer(code) ? json_integer_value(code) : 0;
    int rc;

    *root = NULL;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s 返回了 HTTP %ld，内容不是 JSON", label, r->status);
        rc = r->status == 429 ? TD_ERATELIMIT : TD_EUPSTREAM;
        goto out;
    }
    if (r->status >= 200 && r->status < 300 && c == 0) {
        *root = json_incref(o);
        rc = TD_OK;
        goto out;
    }
    if (!c) c = r->status;
    snprintf(err, errlen, "%s 返回错误 %lld: %s", label, (long long)c, msg ? msg : "");
    switch (c) {
    case 40001: case 40014: case 42001: rc = TD_EAUTH; break;        /* token invalid or expired */
    case 40013: case 40125: case 40164: case 41002: case 41004: case 40243:
        rc = TD_EAUTH;                                               /* the app's credentials or caller IP */
        if (c == 40164)
            snprintf(err, errlen, "%s 返回错误 40164: 调用方 IP 不在白名单 (%s)；SCF 等出口 IP 不固定的环境需要固定出口 IP",
                     label, msg ? msg : "");
        break;
    case 45009: case 45011: case -1: rc = TD_ERATELIMIT; break;      /* quota, minute quota, busy */
    default: rc = TD_EUPSTREAM;
    }
out:
    json_decref(o);
    return rc;
}

/* GET/POST base+path; the answer's envelope judged by td__wx_result. */
int td__wx_call(const td_provider *p, const char *method, const char *path, const char *body, json_t **root,
                td_grant *g, char *err, size_t errlen)
{
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", NULL};
    char base[512], url[2048], why[512];
    td_strbuf u;
    td_httpc_resp resp = {0};
    int rc;

    td_strbuf_fixed(&u, url, sizeof url);
    td_strbuf_puts(&u, td_provider_base(p, base, sizeof base));
    td_strbuf_puts(&u, path);
    if (td_strbuf_error(&u)) {
        snprintf(err, errlen, "%s 的接口地址过长 (检查 BASE_URL 设置)", p->ops->label);
        return TD_ETOOBIG;
    }
    {
        td_httpc_req q = {.method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0,
                          .headers = hdrs, .timeout_ms = p->timeout_ms, .max_body = WX_BODY_MAX};
        if ((rc = td_httpc_do(&q, &resp, why, sizeof why)) != TD_OK) {
            /* why names the URL as httpc shows it: its query -- where
             * WeCom's corpsecret and the tickets' access_token go -- is
             * hidden ("…?…"), so the cause and the address may be said,
             * as the Feishu provider says them. */
            snprintf(err, errlen, "%s 请求失败: %s", p->ops->label, why);
            return rc;
        }
    }
    if ((rc = td__wx_result(p->ops->label, &resp, root, err, errlen)) == TD_ERATELIMIT && g)
        g->retry_after = td_httpc_retry_after(&resp);
    td_httpc_resp_clear(&resp);
    return rc;
}

/* "access_token"/"ticket" and "expires_in" of a successful answer. */
int td__wx_grant(const char *label, json_t *root, const char *field, td_grant *out, char *err, size_t errlen)
{
    json_t *e = json_object_get(root, "expires_in");
    int rc;

    if ((rc = td_provider_take_token(label, field, json_string_value(json_object_get(root, field)), out->token,
                                     sizeof out->token, err, errlen)) != TD_OK)
        return rc;
    if (!json_is_integer(e) || json_integer_value(e) <= 0 || json_integer_value(e) > 86400) {
        out->token[0] = '\0';
        snprintf(err, errlen, "%s 的回答里 expires_in 缺失或无效", label);
        return TD_EUPSTREAM;
    }
    out->expire = (long)json_integer_value(e);
    return TD_OK;
}

static int fetch(const td_provider *p, int forced, td_grant *out, char *err, size_t errlen)
{
    json_t *req, *root = NULL;
    char *body = NULL;
    int rc = TD_ENOMEM;

    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if (!(req = json_pack("{s:s, s:s, s:s, s:b}", "grant_type", "client_credential", "appid", p->app_id,
                          "secret", p->app_secret, "force_refresh", forced)))
        return TD_ENOMEM;
    if ((body = json_dumps(req, JSON_COMPACT)) &&
        (rc = td__wx_call(p, "POST", "/cgi-bin/stable_token", body, &root, out, err, errlen)) == TD_OK)
        rc = td__wx_grant(p->ops->label, root, "access_token", out, err, errlen);
    if (body) {
        memset(body, 0, strlen(body)); /* it carried the app secret */
        free(body);
    }
    json_decref(req);
    json_decref(root);
    return rc;
}

/* Asks the platform about token with the cheapest call that needs one. */
int td__wx_check(const td_provider *p, const char *token, char *err, size_t errlen)
{
    char path[3 * TD_TOKEN_MAX + 96], esc[3 * TD_TOKEN_MAX + 1];
    json_t *root = NULL;
    int rc;

    if (!td_httpc_escape(token, esc, sizeof esc)) return TD_ETOOBIG;
    snprintf(path, sizeof path, "/cgi-bin/get_api_domain_ip?access_token=%s", esc);
    rc = td__wx_call(p, "GET", path, NULL, &root, NULL, err, errlen);
    json_decref(root);
    return rc;
}

static int ticket(const td_provider *p, const char *token, td_grant *out, char *err, size_t errlen)
{
    char path[3 * TD_TOKEN_MAX + 96], esc[3 * TD_TOKEN_MAX + 1];
    json_t *root = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if (!td_httpc_escape(token, esc, sizeof esc)) return TD_ETOOBIG;
    snprintf(path, sizeof path, "/cgi-bin/ticket/getticket?access_token=%s&type=jsapi", esc);
    if ((rc = td__wx_call(p, "GET", path, NULL, &root, out, err, errlen)) == TD_OK)
        rc = td__wx_grant(p->ops->label, root, "ticket", out, err, errlen);
    json_decref(root);
    return rc;
}

const td_provider_ops td_provider_wechat = {
    .kind = "wechat", .label = "微信", .default_base = "https://api.weixin.qq.com",
    .renewal = TD_RENEW_IN_WINDOW, .renew_window = 300, .min_remaining = 60, .id_name = "appid",
    .reissue_rule = "微信只在过期前 5 分钟内换发新 token；强制换发会立即作废在用的 token，只用于微信确认已失效的 token",
    .report_hint = "接口权限、调用方 IP 是否在 IP 白名单里 (40164)、token 是否属于这个 appid",
    .fetch = fetch, .check = td__wx_check, .ticket = ticket,
};
