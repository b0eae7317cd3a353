/* tokens -- see tokens.h. */
#include "tokens.h"
#include "endpoint.h"
#include "httpc.h"
#include "log.h"
#include "sink.h"
#include "tokendist.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* TOKENDIST_<NAME>_<what> for name, into buf. */
static const char *var(const char *name, const char *what, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "TOKENDIST_");
    for (const char *p = name; *p && o + 1 < len; p++) buf[o++] = (char)toupper((unsigned char)*p);
    snprintf(buf + o, len > o ? len - o : 0, "_%s", what);
    return buf;
}

const char *td_tokens_setup_hint(const char *name, const char *kind, char *buf, size_t len)
{
    const td_provider_ops *ops = td_provider_find(kind ? kind : "feishu");
    char pv[128], id[128], secret[128];

    if (!ops) { /* a platform this version does not know: name the choice */
        snprintf(buf, len, "未配置它的平台凭证：请在 TOKENDIST_TOKENS 中加上 %s，并设置 %s (可选: %s)、%s 和 %s", name,
                 var(name, "PROVIDER", pv, sizeof pv), td_provider_kinds(), var(name, "APP_ID", id, sizeof id),
                 var(name, "APP_SECRET", secret, sizeof secret));
    } else if (!strcmp(name, "default") && (!strcmp(ops->kind, "feishu") || !strcmp(ops->kind, "lark"))) {
        snprintf(buf, len, "未配置%s凭证：请设置 FEISHU_APP_ID 和 FEISHU_APP_SECRET", ops->label);
    } else {
        snprintf(buf, len, "未配置%s凭证：请在 TOKENDIST_TOKENS 中加上 %s，并设置 %s=%s、%s 和 %s", ops->label, name,
                 var(name, "PROVIDER", pv, sizeof pv), ops->kind, var(name, "APP_ID", id, sizeof id),
                 var(name, "APP_SECRET", secret, sizeof secret));
    }
    return buf;
}

const char *td_tokens_credentials(const td_token_conf *t, char *buf, size_t len)
{
    const char *label = t->provider.ops ? t->provider.ops->label : "平台";
    char id[128], secret[128];

    if (t->is_default)
        snprintf(buf, len, "%s应用凭证 (FEISHU_APP_ID / FEISHU_APP_SECRET)", label);
    else
        snprintf(buf, len, "%s应用凭证 (%s / %s)", label, var(t->name, "APP_ID", id, sizeof id),
                 var(t->name, "APP_SECRET", secret, sizeof secret));
    return buf;
}

static int parse_bool(const char *v, int *out)
{
    if (!v) return *out = 0, TD_OK;
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return *out = 1, TD_OK;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        return *out = 0, TD_OK;
    return TD_EINVAL;
}

/* A token's own URL setting k by the one rule (td_endpoint_check_url):
 * 1 with err when it is set and malformed. */
static int url_invalid(const char *v, const char *k, char *err, size_t errlen)
{
    char why[400];

    if (!v || td_endpoint_check_url(v, 1, why, sizeof why) == TD_OK) return 0;
    snprintf(err, errlen, "设置 %s 的值无效: %s", k, why);
    return 1;
}

static int named(const td_config *c, const char *name, td_token_conf *t, char *err, size_t errlen)
{
    char k[128];
    const char *kind, *v;
    char *end;

    snprintf(t->name, sizeof t->name, "%s", name);
    if (!(kind = td_config_env(c, var(name, "PROVIDER", k, sizeof k)))) {
        snprintf(err, errlen, "TOKENDIST_TOKENS 列出了 %s，但没有设置 %s (可选: %s)", name, k, td_provider_kinds());
        return TD_EINVAL;
    }
    if (!(t->provider.ops = td_provider_find(kind))) {
        snprintf(err, errlen, "%s=%s 不是已知的平台 (可选: %s)", k, kind, td_provider_kinds());
        return TD_EINVAL;
    }
    if (!(t->provider.app_id = td_config_env(c, var(name, "APP_ID", k, sizeof k)))) {
        snprintf(err, errlen, "token %s (%s) 缺少 %s：%s的 %s", name, kind, k, t->provider.ops->label,
                 t->provider.ops->id_name);
        return TD_EINVAL;
    }
    if (!(t->provider.app_secret = td_config_env(c, var(name, "APP_SECRET", k, sizeof k)))) {
        snprintf(err, errlen, "token %s (%s) 缺少 %s", name, kind, k);
        return TD_EINVAL;
    }
    t->provider.base_url = td_config_env(c, var(name, "BASE_URL", k, sizeof k));
    if (url_invalid(t->provider.base_url, k, err, errlen)) return TD_EINVAL;
    if (parse_bool(td_config_env(c, var(name, "JSAPI_TICKET", k, sizeof k)), &t->jsapi_ticket) != TD_OK) {
        snprintf(err, errlen, "%s 应为 true 或 false", k);
        return TD_EINVAL;
    }
    if (t->jsapi_ticket && !t->provider.ops->ticket) {
        snprintf(err, errlen, "%s=true: %s没有 jsapi_ticket (只有 wechat 和 wecom 有)", k, t->provider.ops->label);
        return TD_EINVAL;
    }
    t->renew_window = t->provider.ops->renew_window;
    if ((v = td_config_env(c, var(name, "RENEW_WINDOW", k, sizeof k)))) {
        errno = 0;
        t->renew_window = strtol(v, &end, 10);
        if (errno || *end || end == v || t->renew_window < 0 || t->renew_window > 86400) {
            snprintf(err, errlen, "%s=%s: 应为 0 到 86400 的整数 (秒)", k, v);
            return TD_EINVAL;
        }
    }
    t->api_url = td_config_env(c, var(name, "API_URL", k, sizeof k));
    if (url_invalid(t->api_url, k, err, errlen)) return TD_EINVAL;
    t->api_key = td_config_env(c, var(name, "API_KEY", k, sizeof k));
    if (!t->api_key) t->api_key = c->tencent_cloud_api_key;
    t->gitee_path = td_config_env(c, var(name, "GITEE_FILE_PATH", k, sizeof k));
    if (t->gitee_path && !c->gitee_enabled) {
        snprintf(err, errlen, "设置了 %s，但 ENABLE_GITEE_TOKEN_SHARE 没有开启", k);
        return TD_EINVAL;
    }
    t->provider.timeout_ms = c->http_timeout * 1000;
    return TD_OK;
}

/* The variable that set t's endpoint or Gitee file, into buf. */
static const char *sink_var(const td_token_conf *t, int gitee, char *buf, size_t len)
{
    if (t->is_default) return gitee ? "GITEE_FILE_PATH" : "TENCENT_CLOUD_API_URL";
    return var(t->name, gitee ? "GITEE_FILE_PATH" : "API_URL", buf, len);
}

/* A Gitee file path as the repository sees it: no leading '/', no empty
 * folder ("a//b" is "a/b"). */
static void gitee_key(const char *path, char *buf, size_t len)
{
    size_t o = 0;

    while (*path == '/') path++;
    for (; *path && o + 1 < len; path++)
        if (*path != '/' || path[1] != '/') buf[o++] = *path;
    buf[o] = '\0';
}

/* Sinks are per name (tokens.h): two names whose endpoint URLs land in one
 * record (one base URL for several names does not: each gets its name's
 * path), or whose Gitee files are one file of the one GITEE_* repository,
 * would overwrite each other's token there -- put-if-newer lets the newer
 * record win, whichever platform's it is.  So that is a settings error,
 * naming both variables. */
static int shared_sink(const td_token_conf *v, size_t n, char *err, size_t errlen)
{
    char a[1200], b[1200], ka[128], kb[128];

    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (v[i].api_url && v[j].api_url) {
                td_sink_endpoint_key(v[i].api_url, v[i].name, a, sizeof a);
                td_sink_endpoint_key(v[j].api_url, v[j].name, b, sizeof b);
                if (!strcmp(a, b)) {
                    snprintf(err, errlen,
                             "%s 和 %s 指向同一个接收地址：token %s 和 %s 的记录会互相覆盖；"
                             "每个 token 需要自己的地址 (如 …/v1/tokens/%s)，或不设置 %s",
                             sink_var(&v[i], 0, ka, sizeof ka), sink_var(&v[j], 0, kb, sizeof kb), v[i].name,
                             v[j].name, v[j].name, kb);
                    return TD_EINVAL;
                }
            }
            if (v[i].gitee_path && v[j].gitee_path) {
                gitee_key(v[i].gitee_path, a, sizeof a);
                gitee_key(v[j].gitee_path, b, sizeof b);
                if (!strcmp(a, b)) {
                    snprintf(err, errlen,
                             "%s 和 %s 是 Gitee 仓库里的同一个文件 (%s)：token %s 和 %s 的记录会互相覆盖；"
                             "每个 token 需要自己的文件，或不设置 %s",
                             sink_var(&v[i], 1, ka, sizeof ka), sink_var(&v[j], 1, kb, sizeof kb), a, v[i].name,
                             v[j].name, kb);
                    return TD_EINVAL;
                }
            }
        }
    return TD_OK;
}

int td_tokens_from_config(const td_config *c, td_token_conf **out, size_t *nout, char *err, size_t errlen)
{
    td_token_conf *v = calloc(c->tokens.n + 1, sizeof *v);
    size_t n = 0;
    int have_id = c->feishu_app_id && *c->feishu_app_id, have_secret = c->feishu_app_secret && *c->feishu_app_secret;

    *out = NULL, *nout = 0;
    if (!v) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    if (have_id != have_secret) {
        snprintf(err, errlen, "飞书凭证只配置了一半：设置了 %s，缺少 %s", have_id ? "FEISHU_APP_ID" : "FEISHU_APP_SECRET",
                 have_id ? "FEISHU_APP_SECRET" : "FEISHU_APP_ID");
        goto bad;
    }
    if (have_id) {
        td_token_conf *t = &v[n++];
        snprintf(t->name, sizeof t->name, "%s", c->name);
        t->is_default = 1;
        t->provider = (td_provider){.ops = &td_provider_feishu, .base_url = c->feishu_base_url,
                                    .app_id = c->feishu_app_id, .app_secret = c->feishu_app_secret,
                                    .timeout_ms = c->http_timeout * 1000};
        if (c->feishu_base_url && strstr(c->feishu_base_url, "larksuite")) t->provider.ops = &td_provider_lark;
        t->renew_window = c->renew_window;
        t->api_url = c->tencent_cloud_enabled ? c->tencent_cloud_api_url : NULL;
        t->api_key = c->tencent_cloud_api_key;
        t->gitee_path = c->gitee_enabled ? c->gitee_file_path : NULL;
    }
    for (size_t i = 0; i < c->tokens.n; i++) {
        const char *name = c->tokens.v[i];
        if (!td_record_name_valid(name, strlen(name))) {
            snprintf(err, errlen, "TOKENDIST_TOKENS 中的名称 '%.64s' 无效: 应为 " TD_NAME_RULE, name);
            goto bad;
        }
        for (size_t j = 0; j < n; j++)
            if (!strcmp(v[j].name, name)) {
                snprintf(err, errlen, "TOKENDIST_TOKENS 中的 %s 重复了%s", name,
                         v[j].is_default ? " (它是默认 token 的名称，由 FEISHU_APP_ID/FEISHU_APP_SECRET 配置)" : "");
                goto bad;
            }
        if (n == TD_TOKENS_MAX) {
            snprintf(err, errlen, "TOKENDIST_TOKENS 最多 %d 个名称", TD_TOKENS_MAX);
            goto bad;
        }
        if (named(c, name, &v[n], err, errlen) != TD_OK) goto bad;
        n++;
    }
    if (shared_sink(v, n, err, errlen) != TD_OK) goto bad;
    *out = v, *nout = n;
    return TD_OK;
bad:
    free(v);
    return TD_EINVAL;
}

void td_tokens_print(const td_config *c, FILE *f)
{
    const char *const *what = td_config_token_vars;
    char k[128], fp[TD_FP_LEN], url[1024];

    /* As td_config_print shows the default token's settings: a secret as
     * its hash, a URL without the credentials it may carry. */
    for (size_t i = 0; i < c->tokens.n; i++)
        for (size_t j = 0; what[j]; j++) {
            const char *v = td_config_env(c, var(c->tokens.v[i], what[j], k, sizeof k));
            int secret = !strcmp(what[j], "APP_SECRET") || !strcmp(what[j], "API_KEY");
            int is_url = !strcmp(what[j], "BASE_URL") || !strcmp(what[j], "API_URL");
            if (!v) continue;
            fprintf(f, "%s=%s\n", k, secret ? td_log_secret_fp(v, fp)
                                      : is_url ? td_httpc_redact_url(v, 0, url, sizeof url) : v);
        }
}
