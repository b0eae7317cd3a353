/*
 * cmd_get -- `tokendist get`: print the current token for scripts
 * (TOKEN=$(tokendist get)), through the client library, so it follows the
 * same source order, freshness rule and clock-skew handling as every
 * other client.
 *
 * stdout carries only the token (or the record with --json); messages go
 * to stderr in the seed's words ("❌ 腾讯云函数 token获取失败: …").
 */
#include "cmd.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit codes of `get` (and `files`), so a cron script can tell a missing
 * token from a wrong key from a server that is down. */
enum {
    GET_EXIT_NOTOKEN = 3,   /* no source has a token that is valid long enough */
    GET_EXIT_AUTH = 4,      /* the read key (or Gitee token) was refused */
    GET_EXIT_NETWORK = 5,   /* a source could not be reached or answered an error */
};

/* Fills client options from the settings; the strings stay owned by c. */
int td__client_opts_from_config(const td_config *c, td_client_opts *o)
{
    memset(o, 0, sizeof *o);
    o->urls = (const char *const *)c->urls.v;
    o->nurls = c->urls.n;
    o->read_key = c->read_key;
    o->name = c->name;
    /* The Gitee fallback is on when a repository is named: the seed's
     * ENABLE_GITEE_TOKEN_SHARE switches the refresher's upload, not reads. */
    if (c->gitee_owner && *c->gitee_owner && c->gitee_repo && *c->gitee_repo) {
        o->gitee.base_url = c->gitee_base_url;
        o->gitee.owner = c->gitee_owner;
        o->gitee.repo = c->gitee_repo;
        o->gitee.path = c->gitee_file_path;
        o->gitee.branch = c->gitee_branch;
        o->gitee.access_token = c->gitee_access_token;
    }
    o->cache_file = c->cache_file;
    o->min_remaining = c->min_remaining > 0 ? c->min_remaining : -1;
    o->timeout_ms = c->http_timeout * 1000;
    return TD_OK;
}

int td__client_exit_code(int rc)
{
    switch (rc) {
    case TD_OK: return TD_EXIT_OK;
    case TD_ENOTFOUND:
    case TD_EEXPIRED: return GET_EXIT_NOTOKEN;
    case TD_EAUTH: return GET_EXIT_AUTH;
    case TD_EHTTP:
    case TD_ETIMEOUT:
    case TD_EUNAVAIL: return GET_EXIT_NETWORK;
    default: return TD_EXIT_FAIL;
    }
}

/* The seed's troubleshooting advice, one line, for the failure at hand. */
void td__client_explain(int rc, FILE *f)
{
    switch (rc) {
    case TD_ENOTFOUND:
    case TD_EEXPIRED:
        fputs("💡 服务端还没有有效的 token: 检查刷新服务 (tokendist serve 的 FEISHU_APP_ID/FEISHU_APP_SECRET) "
              "是否在运行；或用 --min-remaining 放宽剩余时间要求\n", f);
        break;
    case TD_EAUTH:
        fputs("💡 检查读取密钥 (--key / TOKENDIST_READ_KEY) 或 GITEE_ACCESS_TOKEN\n", f);
        break;
    case TD_EHTTP:
    case TD_ETIMEOUT:
        fputs("💡 检查API地址 (--url / TENCENT_CLOUD_API_URL) 是否正确、服务是否在运行\n", f);
        break;
    default:
        break;
    }
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int td_cmd_get(int argc, char **argv)
{
    td_config c;
    td_client_opts o;
    td_client *cl = NULL;
    td_token tok;
    td_token_kind kind;
    char err[4096], *json = NULL;
    int ex, rc;

    if ((ex = td_cmd_config(&c, TD_CMD_GET, argc, argv)) >= 0) {
        if (ex == TD_EXIT_OK && wants_help(argc, argv))
            printf("\nExit codes: 0 token printed; 2 bad options; %d no valid token at any source; "
                   "%d key refused; %d endpoint unreachable or HTTP error; 1 other failure\n",
                   GET_EXIT_NOTOKEN, GET_EXIT_AUTH, GET_EXIT_NETWORK);
        goto out;
    }
    ex = TD_EXIT_USAGE;
    if (!strcmp(c.field, "access_token")) {
        kind = TD_TOKEN_APP;
    } else if (!strcmp(c.field, "tenant_access_token")) {
        kind = TD_TOKEN_TENANT;
    } else {
        fprintf(stderr, "tokendist get: --field must be access_token or tenant_access_token, not '%s'\n",
                c.field);
        goto out;
    }
    td__client_opts_from_config(&c, &o);
    if ((rc = td_client_new(&cl, &o, err, sizeof err)) != TD_OK) {
        fprintf(stderr, "tokendist get: %s\n", err);
        goto out;
    }
    rc = c.json ? td_client_get_record(cl, kind, &json, NULL, &tok, err, sizeof err)
                : td_client_get(cl, kind, &tok, err, sizeof err);
    if (rc != TD_OK) {
        fprintf(stderr, "❌ %s\n", err);
        td__client_explain(rc, stderr);
        ex = td__client_exit_code(rc);
        goto out;
    }
    if (c.json) printf("%s\n", json);
    else printf("%s\n", tok.token);
    ex = fflush(stdout) == 0 ? TD_EXIT_OK : TD_EXIT_FAIL;
out:
    free(json);
    td_client_free(cl);
    td_config_free(&c);
    return ex;
}
