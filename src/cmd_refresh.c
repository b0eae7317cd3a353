/*
 * cmd_refresh -- `tokendist refresh [--once]`: fetch the Feishu token and
 * deliver it to every enabled sink, once or as a daemon on Feishu's
 * schedule (see refresher.h).  This is the seed's Python script, minus the
 * script.
 */
#include "cmd.h"
#include "httpc.h"
#include "log.h"
#include "notify.h"
#include "refresher.h"
#include "tokens.h"
#include "sink.h"
#include "tokendist.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int td_cmd_refresh(int argc, char **argv)
{
    td_config c;
    td_token_conf *tokens = NULL;
    td_sinks *sinks = NULL;
    td_refresher **r = NULL;
    td_refresher_opts o;
    size_t n = 0;
    sigset_t sigs;
    char err[512];
    int ex, sig = 0;

    if ((ex = td_cmd_config(&c, TD_CMD_REFRESH, argc, argv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    if (td_tokens_from_config(&c, &tokens, &n, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist refresh: %s\n", err);
        goto out;
    }
    if (!n) {
        fprintf(stderr, "tokendist refresh: 没有要刷新的 token: 请设置 FEISHU_APP_ID 和 FEISHU_APP_SECRET "
                        "(或 TOKENDIST_TOKENS)\n");
        goto out;
    }
    if (!(sinks = calloc(n, sizeof *sinks)) || !(r = calloc(n, sizeof *r))) {
        fprintf(stderr, "tokendist refresh: 内存不足\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (td_sinks_from_config(&sinks[i], &c, &tokens[i], NULL, err, sizeof err) != TD_OK) {
            fprintf(stderr, "tokendist refresh: %s\n", err);
            goto out;
        }
        td_refresher_opts_from_config(&o, &c, &tokens[i], &sinks[i]);
        if (td_refresher_new(&r[i], &o, err, sizeof err) != TD_OK) {
            fprintf(stderr, "tokendist refresh: %s\n", err);
            goto out;
        }
        td_sinks_log_enabled(&sinks[i]);
    }
    ex = TD_EXIT_FAIL;

    if (c.once) { /* every token once; the exit code says whether all were delivered */
        int failed = 0;
        for (size_t i = 0; i < n; i++)
            if (td_refresher_cycle(r[i], err, sizeof err) != TD_OK) {
                fprintf(stderr, "tokendist refresh: %s%s%s\n", n > 1 ? tokens[i].name : "", n > 1 ? ": " : "", err);
                failed++;
            }
        if (!failed) ex = TD_EXIT_OK;
        goto out;
    }

    /* The refresher threads inherit the blocked set; the main thread only
     * waits for the signal to stop. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < n; i++)
        if (td_refresher_start(r[i], err, sizeof err) != TD_OK) {
            td_log("❌ %s", err);
            goto out;
        }
    td_notify_ready();
    sig = td_notify_sigwait(&sigs);
    td_notify_stopping();
    td_log("收到信号 %s，正在停止…", sig == SIGINT ? "SIGINT" : "SIGTERM");
    td_httpc_abort_all(); /* a cycle in flight stops within a second */
    for (size_t i = 0; i < n; i++) td_refresher_stop(r[i]);
    td_log("已停止");
    ex = TD_EXIT_OK;
out:
    for (size_t i = 0; r && i < n; i++) td_refresher_free(r[i]);
    free(r);
    free(sinks);
    free(tokens);
    td_config_free(&c);
    return ex;
}
