/*
 * cmd_get -- `tokendist get`: print the current token for scripts
 * (TOKEN=$(tokendist get)), through the client library, so it follows the
 * same source order, freshness rule and clock-skew handling as every
 * other client.
 *
 * stdout carries only the token (or the record with --json); messages go
 * to stderr in the seed's words ("❌ 腾讯云函数 token获取失败: …").
 */
#include "client.h"
#include "cmd.h"
#include "strbuf.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit codes of `get` (and `files`), so a cron script can tell a missing
 * token from a wrong key from a server that is down. */
enum {
    GET_EXIT_NOTOKEN = 3,   /* no source has a token that is valid long enough */
    GET_EXIT_AUTH = 4,      /* the read key (or Gitee token) was refused; the share key does not open the Gitee copy */
    GET_EXIT_NETWORK = 5,   /* a source could not be reached or answered an error */
};

int td__client_from_config(const td_config *c, td_client **out, char *err, size_t errlen)
{
    td_client_opts *o = td_client_opts_new();
    td_strbuf keys;
    char *list;
    size_t len = 0;
    int rc;

    for (size_t i = 0; i < c->urls.n; i++) td_client_opts_set_str(o, TD_OPT_URL, c->urls.v[i]);
    td_client_opts_set_str(o, TD_OPT_READ_KEY, c->read_key);
    td_client_opts_set_str(o, TD_OPT_NAME, c->name);
    td_client_opts_set_str(o, TD_OPT_TICKET, c->ticket);
    /* The Gitee fallback is on when a repository is named, unless the
     * seed's ENABLE_GITEE_TOKEN_SHARE says false: then the producer of this
     * environment does not share there, and only --gitee reads it (as the
     * Node and Python clients do with the same settings). */
    if (c->gitee_read != 0 && c->gitee_owner && *c->gitee_owner && c->gitee_repo && *c->gitee_repo) {
        td_client_opts_set_str(o, TD_OPT_GITEE_BASE_URL, c->gitee_base_url);
        td_client_opts_set_str(o, TD_OPT_GITEE_OWNER, c->gitee_owner);
        td_client_opts_set_str(o, TD_OPT_GITEE_REPO, c->gitee_repo);
        td_client_opts_set_str(o, TD_OPT_GITEE_PATH, c->gitee_file_path);
        td_client_opts_set_str(o, TD_OPT_GITEE_BRANCH, c->gitee_branch);
        td_client_opts_set_str(o, TD_OPT_GITEE_ACCESS_TOKEN, c->gitee_access_token);
    }
    /* The share keys as TOKENDIST_SHARE_KEY has them: comma-separated. */
    td_strbuf_heap(&keys, 8192);
    for (size_t i = 0; i < c->share_keys.n; i++) td_strbuf_printf(&keys, "%s%s", i ? "," : "", c->share_keys.v[i]);
    if ((list = td_strbuf_take(&keys, &len))) {
        td_client_opts_set_str(o, TD_OPT_SHARE_KEY, list);
        explicit_bzero(list, len);
        free(list);
    }
    td_strbuf_free(&keys);
    td_client_opts_set_str(o, TD_OPT_CACHE_FILE, c->cache_file);
    if (c->min_remaining >= 0) td_client_opts_set_long(o, TD_OPT_MIN_REMAINING, c->min_remaining);
    td_client_opts_set_long(o, TD_OPT_TIMEOUT_MS, c->http_timeout * 1000);
    /* The setters' failures are remembered: td_client_new reports the first. */
    rc = td_client_new(out, o, err, errlen);
    td_client_opts_free(o);
    return rc;
}

int td__client_exit_code(int rc)
{
    switch (rc) {
    case TD_OK: return TD_EXIT_OK;
    case TD_ENOTFOUND:
    case TD_EEXPIRED: return GET_EXIT_NOTOKEN;
    case TD_EAUTH:
    case TD_ESHAREKEY: return GET_EXIT_AUTH;
    case TD_EHTTP:
    case TD_ETIMEOUT:
    case TD_EUNAVAIL: return GET_EXIT_NETWORK;
    default: return TD_EXIT_FAIL;
    }
}

void td__client_tell(td_client *cl, FILE *f)
{
    char fallback[2048], cache[1024];

    td__client_notes(cl, fallback, sizeof fallback, cache, sizeof cache);
    if (fallback[0]) fprintf(f, "⚠️ %s\n", fallback);
    if (cache[0]) fprintf(f, "⚠️ 缓存文件 (--cache / TOKENDIST_CACHE_FILE) 没有写入: %s\n", cache);
}

/* The seed's troubleshooting advice, one line, for the failure at hand
 * and the source it came from (td__client_failed_source). */
void td__client_explain(int rc, td_source failed, FILE *f)
{
    if (failed == TD_SOURCE_GITEE && rc == TD_EAUTH) {
        fputs("💡 检查 Gitee 私人令牌 (GITEE_ACCESS_TOKEN) 是否有效、有没有读这个仓库的权限\n", f);
        return;
    }
    if (failed == TD_SOURCE_GITEE && rc == TD_ENOTFOUND) {
        fputs("💡 Gitee 上没有这个文件: 检查 GITEE_FILE_PATH 和 GITEE_BRANCH，以及刷新器是否向 Gitee 分享 "
              "(ENABLE_GITEE_TOKEN_SHARE)\n", f);
        return;
    }
    if (failed == TD_SOURCE_GITEE && (rc == TD_EHTTP || rc == TD_ETIMEOUT)) {
        fputs("💡 检查 Gitee 的设置 (GITEE_OWNER、GITEE_REPO、GITEE_BASE_URL) 和本机到 Gitee 的网络\n", f);
        return;
    }
    switch (rc) {
    case TD_ENOTFOUND:
    case TD_EEXPIRED:
        fputs("💡 服务端还没有有效的 token: 检查刷新服务 (tokendist serve 的 FEISHU_APP_ID/FEISHU_APP_SECRET) "
              "是否在运行；或用 --min-remaining 放宽剩余时间要求\n", f);
        break;
    case TD_EAUTH:
        fputs("💡 检查读取密钥 (--key / TOKENDIST_READ_KEY) 或 GITEE_ACCESS_TOKEN\n", f);
        break;
    case TD_ESHAREKEY:
        fputs("💡 检查共享密钥 (--share-key / TOKENDIST_SHARE_KEY): 应与刷新器的相同\n", f);
        break;
    case TD_EHTTP:
    case TD_ETIMEOUT:
        fputs("💡 检查API地址 (--url / TENCENT_CLOUD_API_URL) 是否正确、服务是否在运行\n", f);
        break;
    default:
        break;
    }
}

int td_cmd_get(int argc, char **argv)
{
    td_config c;
    td_client *cl = NULL;
    td_token *tok = NULL;
    td_token_kind kind;
    char err[4096], *json = NULL;
    int ex, rc;

    if ((ex = td_cmd_config(&c, TD_CMD_GET, argc, argv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    if (!strcmp(c.field, "access_token")) {
        kind = TD_TOKEN_APP;
    } else if (!strcmp(c.field, "tenant_access_token")) {
        kind = TD_TOKEN_TENANT;
    } else {
        fprintf(stderr, "tokendist get: --field 只能是 access_token 或 tenant_access_token，不是 '%s'\n",
                c.field);
        goto out;
    }
    if ((rc = td__client_from_config(&c, &cl, err, sizeof err)) != TD_OK) {
        fprintf(stderr, "tokendist get: %s\n", err);
        goto out;
    }
    rc = c.json ? td_client_get_record(cl, kind, &json, NULL, &tok, err, sizeof err)
                : td_client_get(cl, kind, &tok, err, sizeof err);
    if (rc != TD_OK) {
        fprintf(stderr, "❌ %s\n", err);
        td__client_explain(rc, td__client_failed_source(cl), stderr);
        ex = td__client_exit_code(rc);
        goto out;
    }
    td__client_tell(cl, stderr);
    if (c.json) printf("%s\n", json);
    else printf("%s\n", tok->token);
    ex = fflush(stdout) == 0 ? TD_EXIT_OK : TD_EXIT_FAIL;
out:
    td_free(json);
    td_free(tok);
    td_client_free(cl);
    td_config_free(&c);
    return ex;
}
