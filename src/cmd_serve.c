/*
 * cmd_serve -- `tokendist serve`: the distribution server (the seed's
 * "腾讯云函数"), with the refresher inside when Feishu credentials are set.
 */
#include "api.h"
#include "clock.h"
#include "cmd.h"
#include "http.h"
#include "httpc.h"
#include "fleet.h"
#include "lease.h"
#include "log.h"
#include "notify.h"
#include "refresher.h"
#include "sink.h"
#include "store.h"
#include "tokens.h"
#include "tokendist.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELEASE_WAIT_MS 2000     /* a clean stop waits this long for the leases' release */

int td_cmd_check_front_settings(td_config *c, char *err, size_t errlen)
{
    td_token_conf *tokens = NULL;
    size_t n = 0;
    int rc = TD_OK, half = !c->feishu_app_id != !c->feishu_app_secret;

    /* One half of the seed's credentials (or one misspelt: the warnings
     * above name it): say which is missing, and serve what writers push. */
    if (half) {
        td_log("⚠️ 飞书凭证只配置了一半: 设置了 %s，缺少 %s，所以不自行刷新 token，只分发写入的 token。"
               "💡 在环境变量或 env-file 中设置 %s (或 --%s)",
               c->feishu_app_id ? "FEISHU_APP_ID" : "FEISHU_APP_SECRET",
               c->feishu_app_id ? "FEISHU_APP_SECRET" : "FEISHU_APP_ID",
               c->feishu_app_id ? "FEISHU_APP_SECRET" : "FEISHU_APP_ID",
               c->feishu_app_id ? "app-secret" : "app-id");
        free(c->feishu_app_id), c->feishu_app_id = NULL;
        free(c->feishu_app_secret), c->feishu_app_secret = NULL;
    }
    /* The tokens and their sinks are made again when the refresher starts;
     * made here, a mistake in them stops the start before the store is
     * opened or the port taken. */
    if ((rc = td_tokens_from_config(c, &tokens, &n, err, errlen)) != TD_OK) goto out;
    for (size_t i = 0; i < n && rc == TD_OK; i++) {
        td_sinks s;
        rc = td_sinks_from_config(&s, c, &tokens[i], NULL, err, errlen);
        for (size_t j = 0; rc == TD_OK && j < s.n; j++) td_seal_keys_wipe(&s.v[j].seal);
    }
    if (rc == TD_OK && !c->tls_cert != !c->tls_key) {
        snprintf(err, errlen, "设置了 %s，却没有 %s: HTTPS 要两个都设置 (证书和它的私钥)",
                 c->tls_cert ? "--tls-cert (TOKENDIST_TLS_CERT)" : "--tls-key (TOKENDIST_TLS_KEY)",
                 c->tls_cert ? "--tls-key (TOKENDIST_TLS_KEY)" : "--tls-cert (TOKENDIST_TLS_CERT)");
        rc = TD_EINVAL;
    }
    if (rc == TD_OK && n == 0 && !half)
        td_log("未配置 FEISHU_APP_ID/FEISHU_APP_SECRET (也没有 TOKENDIST_TOKENS)：只分发写入的 token，不自行刷新");
out:
    free(tokens);
    return rc;
}

/* A shared store saw a change (another instance's put, or everything
 * after a reconnect): serve it from memory too. */
static int on_store_change(void *api, const char *name)
{
    char err[256];
    int rc = td_api_reload(api, name, err, sizeof err);

    if (rc != TD_OK) td_log("❌ 重新加载 token 失败: %s", err);
    return rc;
}

int td_cmd_open_api(const td_config *c, const char *listen, td_store **store, td_api **api,
                    char *err, size_t errlen)
{
    td_api_opts o = {
        .push_keys = &c->push_keys, .read_keys = &c->read_keys,
        .cors_origin = c->cors_origin, .body_limit = (size_t)c->body_limit,
        .trusted_proxies = &c->trusted_proxies, .real_ip_header = c->real_ip_header,
        .allowed_hosts = &c->allowed_hosts,
        .loopback_listener = listen && td_http_listen_loopback(listen),
        .max_clock_skew = c->max_clock_skew,
    };
    char sub[400];

    *store = NULL, *api = NULL;
    if (td_store_open(store, c->store, (size_t)c->history, sub, sizeof sub) != TD_OK) {
        snprintf(err, errlen, "无法打开存储: %s", sub);
        goto fail;
    }
    o.store = *store;
    if (td_api_new(api, &o, sub, sizeof sub) != TD_OK) {
        snprintf(err, errlen, "无法加载已存储的 token: %s", sub);
        goto fail;
    }
    if (td_store_watch(*store, on_store_change, *api, sub, sizeof sub) != TD_OK) {
        snprintf(err, errlen, "无法订阅存储的变更: %s", sub);
        goto fail;
    }
    return TD_OK;
fail:
    td_cmd_close_api(*store, *api);
    *store = NULL, *api = NULL;
    return TD_ERR;
}

void td_cmd_close_api(td_store *store, td_api *api)
{
    char err[256];

    if (store) td_store_watch(store, NULL, NULL, err, sizeof err); /* no callbacks into a freed api */
    td_api_free(api);
    td_store_close(store);
}

int td_cmd_refresher_start(td_cmd_refresher *s, const td_config *c, td_store *store, td_api *api,
                           const td_endpoint_self *me)
{
    td_refresher_opts o;
    td_lease *lease;
    char err[512], own[TD_ENDPOINT_URL_MAX];

    memset(s, 0, sizeof *s);
    if (td_fleet_new(&s->fleet, store, err, sizeof err) != TD_OK) goto fail;
    if (td_tokens_from_config(c, &s->tokens, &s->n, err, sizeof err) != TD_OK) goto fail;
    if (s->n && (!(s->sinks = calloc(s->n, sizeof *s->sinks)) || !(s->r = calloc(s->n, sizeof *s->r)))) {
        snprintf(err, sizeof err, "内存不足");
        goto fail;
    }
    for (size_t i = 0; i < s->n; i++) {
        const td_token_conf *t = &s->tokens[i];
        if (td_sinks_from_config(&s->sinks[i], c, t, api, err, sizeof err) != TD_OK ||
            td_fleet_add(s->fleet, t->name, &lease, err, sizeof err) != TD_OK)
            goto fail;
        if (me) td_sinks_drop_self(&s->sinks[i], me);
        td_refresher_opts_from_config(&o, c, t, &s->sinks[i]);
        /* The notice names an address: without TOKENDIST_PUBLIC_URL and an
         * endpoint, this server's own, as well as it knows it. */
        if (me && o.announce && !o.notice_url && td_endpoint_own_url(me, t->name, own, sizeof own) == TD_OK) {
            o.notice_url = own;
            if (td_notice_enabled(&o.notice))
                td_log("💡 群通知里的取 token 地址: %s (由监听地址得出)；客户端在其他机器上或经反向代理访问时，"
                       "请用 TOKENDIST_PUBLIC_URL 设为它们能访问的地址", own);
        }
        o.may_refresh = td_fleet_may_refresh, o.lease_ud = lease;
        o.quiet_start = !strncmp(c->store, "memory:", 7);
        if (td_refresher_new(&s->r[i], &o, err, sizeof err) != TD_OK) goto fail;
        td_sinks_log_enabled(&s->sinks[i]);
        td_fleet_attach(s->fleet, t->name, s->r[i]);
        if (td_refresher_start(s->r[i], err, sizeof err) != TD_OK) goto fail;
        td_log("%s token 刷新已启用: %s (应用 %s)", t->provider.ops->label, t->name, t->provider.app_id);
    }
    if (td_fleet_listen(s->fleet, err, sizeof err) != TD_OK) goto fail;
    td_api_set_hooks(api, td_fleet_hooks(s->fleet));
    return TD_OK;
fail:
    td_log("❌ 无法启动 token 刷新: %s", err);
    return TD_ERR;
}

void td_cmd_refresher_stop(td_cmd_refresher *s)
{
    td_fleet_stop(s->fleet);
    for (size_t i = 0; s->r && i < s->n; i++) td_refresher_stop(s->r[i]);
    td_fleet_free(s->fleet);
    for (size_t i = 0; s->r && i < s->n; i++) td_refresher_free(s->r[i]);
    free(s->r);
    free(s->sinks);
    free(s->tokens);
    memset(s, 0, sizeof *s);
}

int td_cmd_serve(int argc, char **argv)
{
    td_cmd_refresher refresher = {0};
    td_config c;
    td_store *store = NULL;
    td_api *api = NULL;
    td_http *http = NULL;
    sigset_t sigs;
    char err[512], shown[512];
    int sig = 0, ex;

    if ((ex = td_cmd_config(&c, TD_CMD_SERVE, argc, argv)) >= 0) goto out;
    if (td_cmd_check_front_settings(&c, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist serve: %s\n", err);
        ex = TD_EXIT_USAGE;
        goto out;
    }
    ex = TD_EXIT_FAIL;

    /* Every thread started below inherits this mask; only the main thread
     * takes the signals, in sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (td_cmd_open_api(&c, c.listen, &store, &api, err, sizeof err) != TD_OK) {
        td_log("❌ %s", err);
        goto out;
    }
    /* Listen first: a process that cannot serve (the port is taken) must
     * not fetch from Feishu or push to sinks -- under Restart=on-failure
     * every failed start would fetch again. */
    {
        td_http_opts o = {
            .listen = c.listen, .conn_limit = (unsigned)c.conn_limit,
            .conn_per_ip = (unsigned)c.conn_per_ip, .conn_timeout = (unsigned)c.conn_timeout,
            .tls_cert = c.tls_cert, .tls_key = c.tls_key,
        };
        if (td_http_start(&http, api, &o, err, sizeof err) != TD_OK) {
            td_log("❌ 无法启动 HTTP 服务: %s", err);
            goto out;
        }
    }
    {
        td_endpoint_self me = {.listen = c.listen, .port = td_http_port(http), .tls = c.tls_cert != NULL,
                               .public_url = c.public_url};
        if (td_cmd_refresher_start(&refresher, &c, store, api, &me) != TD_OK) goto out;
    }
    td_log("tokendist %s 已启动: %s://%.*s:%u (存储: %s, 写入密钥 %zu 个, 读取密钥 %zu 个)",
           TD_VERSION, c.tls_cert ? "https" : "http", (int)(strrchr(c.listen, ':') - c.listen),
           c.listen, td_http_port(http), td_store_redact(c.store, shown, sizeof shown),
           c.push_keys.n, c.read_keys.n);
    if (c.push_keys.n == 0)
        td_log("⚠️ 未配置写入密钥 (TOKENDIST_PUSH_KEYS)：所有 POST 都会被拒绝");

    td_notify_ready(); /* systemd: the socket listens */
    while ((sig = td_notify_sigwait(&sigs)) == SIGHUP)
        ; /* HUP: nothing to reload yet; keep serving */
    td_notify_stopping();
    td_log("收到信号 %s，正在停止…", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ex = TD_EXIT_OK;
out:
    /* Stop in the order clients notice least: refuse new connections now
     * (they fail over), give the leases back while the store can still be
     * written (another server takes over within seconds, not at their
     * expiry), cut outgoing requests short (a refresh cycle must not
     * outlast systemd's TimeoutStopSec; a store write under way is let
     * finish, bounded: httpc.h), let requests in flight finish, and only
     * then stop the refresher that their /invalid hook calls. */
    td_http_quiesce(http);
    td_fleet_release(refresher.fleet, RELEASE_WAIT_MS);
    td_httpc_abort_all();
    td_http_stop(http);
    td_cmd_refresher_stop(&refresher); /* after HTTP: the API hooks point into it */
    td_cmd_close_api(store, api);
    if (ex == TD_EXIT_OK && sig) td_log("已停止");
    td_config_free(&c);
    return ex;
}
