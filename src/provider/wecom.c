/*
 * provider/wecom -- WeCom (企业微信) on the provider interface
 * (docs/providers.md has the sources):
 *
 *   GET /cgi-bin/gettoken?corpid=&corpsecret= -> {"errcode": 0, "access_token", "expires_in"}
 *
 * One token per (corp, app secret).  Fetched again while valid it is the
 * same token; a new one comes only after the expiry: AFTER_EXPIRY, so the
 * refresher fetches right after it and clients use the old token to its
 * last seconds.  WeCom has no forced mode: a forced fetch is an ordinary
 * one, which brings a new token only when WeCom itself dropped the old one
 * (it may, "出于运营需要").  Errors use WeChat's {"errcode", "errmsg"}.
 */
#include "httpc.h"
#include "provider.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int td__wx_call(const td_provider *p, const char *method, const char *path, const char *body, json_t **root,
                td_grant *g, char *err, size_t errlen);
int td__wx_grant(const char *label, json_t *root, const char *field, td_grant *out, char *err, size_t errlen);
int td__wx_check(const td_provider *p, const char *token, char *err, size_t errlen);

static int fetch(const td_provider *p, int forced, td_grant *out, char *err, size_t errlen)
{
    char path[1200], id[400], secret[400];
    json_t *root = NULL;
    int rc;

    (void)forced;
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if (!td_httpc_escape(p->app_id, id, sizeof id) || !td_httpc_escape(p->app_secret, secret, sizeof secret)) {
        snprintf(err, errlen, "企业微信的 corpid 或 corpsecret 过长");
        return TD_EINVAL;
    }
    snprintf(path, sizeof path, "/cgi-bin/gettoken?corpid=%s&corpsecret=%s", id, secret);
    if ((rc = td__wx_call(p, "GET", path, NULL, &root, out, err, errlen)) == TD_OK)
        rc = td__wx_grant(p->ops->label, root, "access_token", out, err, errlen);
    memset(path, 0, sizeof path); /* it carried the secret */
    memset(secret, 0, sizeof secret);
    json_decref(root);
    return rc;
}

static int ticket(const td_provider *p, const char *token, td_grant *out, char *err, size_t errlen)
{
    char path[3 * TD_TOKEN_MAX + 64], esc[3 * TD_TOKEN_MAX + 1];
    json_t *root = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if (!td_httpc_escape(token, esc, sizeof esc)) return TD_ETOOBIG;
    snprintf(path, sizeof path, "/cgi-bin/get_jsapi_ticket?access_token=%s", esc);
    if ((rc = td__wx_call(p, "GET", path, NULL, &root, out, err, errlen)) == TD_OK)
        rc = td__wx_grant(p->ops->label, root, "ticket", out, err, errlen);
    json_decref(root);
    return rc;
}

const td_provider_ops td_provider_wecom = {
    .kind = "wecom", .label = "企业微信", .default_base = "https://qyapi.weixin.qq.com",
    .renewal = TD_RENEW_AFTER_EXPIRY, .renew_window = 0, .min_remaining = 5, .id_name = "corpid",
    .reissue_rule = "企业微信只在过期后换发新 token，没有强制换发",
    .report_hint = "应用的接口权限、企业可信 IP (60020)、token 是否属于这个应用 (corpid 和 corpsecret)",
    .fetch = fetch, .check = td__wx_check, .ticket = ticket,
};
