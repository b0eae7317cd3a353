/*
 * provider/feishu -- Feishu and Lark on the provider interface (the API
 * itself is feishu.c): app_access_token from auth/v3, a new token in the
 * last 30 minutes while the old one stays valid, no way to revoke one
 * early (a forced fetch is an ordinary fetch).
 */
#include "feishu.h"
#include "provider.h"
#include "tokendist.h"

#include <stdlib.h>
#include <string.h>

static int fetch(const td_provider *p, int forced, td_grant *out, char *err, size_t errlen)
{
    td_feishu f = {.base_url = p->base_url && *p->base_url ? p->base_url : p->ops->default_base,
                   .app_id = p->app_id, .app_secret = p->app_secret, .timeout_ms = p->timeout_ms};
    td_feishu_token *t = malloc(sizeof *t);
    int rc;

    (void)forced;
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if (!t) return TD_ENOMEM;
    if ((rc = td_feishu_fetch_token(&f, t, err, errlen)) == TD_OK) {
        memcpy(out->token, t->app_access_token, sizeof out->token);
        memcpy(out->tenant, t->tenant_access_token, sizeof out->tenant);
        out->expire = t->expire;
    }
    out->retry_after = t->retry_after;
    out->quota_spent = t->quota_spent;
    memset(t, 0, sizeof *t); /* tokens are secrets */
    free(t);
    return rc;
}

const td_provider_ops td_provider_feishu = {
    .kind = "feishu", .label = "飞书", .default_base = TD_FEISHU_DEFAULT_BASE,
    .renewal = TD_RENEW_IN_WINDOW, .renew_window = 1800, .min_remaining = 300, .id_name = "App ID",
    .reissue_rule = "飞书只在过期前 30 分钟内换发新 token，app_access_token 无法提前作废",
    .report_hint = "应用权限、应用凭证是否被重置、token 类型",
    .fetch = fetch,
};

const td_provider_ops td_provider_lark = {
    .kind = "lark", .label = "Lark", .default_base = "https://open.larksuite.com",
    .renewal = TD_RENEW_IN_WINDOW, .renew_window = 1800, .min_remaining = 300, .id_name = "App ID",
    .reissue_rule = "Lark 只在过期前 30 分钟内换发新 token，app_access_token 无法提前作废",
    .report_hint = "应用权限、应用凭证是否被重置、token 类型",
    .fetch = fetch,
};
