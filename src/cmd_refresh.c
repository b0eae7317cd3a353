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
#include "sink.h"
#include "tokendist.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

int td_cmd_refresh(int argc, char **argv)
{
    td_config c;
    td_sinks sinks;
    td_refresher_opts o;
    td_refresher *r = NULL;
    sigset_t sigs;
    char err[512];
    int ex, sig = 0;

    if ((ex = td_cmd_config(&c, TD_CMD_REFRESH, argc, argv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    if (td_sinks_from_config(&sinks, &c, NULL, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist refresh: %s\n", err);
        goto out;
    }
    td_refresher_opts_from_config(&o, &c, &sinks);
    if (td_refresher_new(&r, &o, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist refresh: %s\n", err);
        goto out;
    }
    td_sinks_log_enabled(&sinks);
    ex = TD_EXIT_FAIL;

    if (c.once) {
        if (td_refresher_cycle(r, err, sizeof err) == TD_OK) ex = TD_EXIT_OK;
        else fprintf(stderr, "tokendist refresh: %s\n", err);
        goto out;
    }

    /* The refresher thread inherits the blocked set; the main thread only
     * waits for the signal to stop. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (td_refresher_start(r, err, sizeof err) != TD_OK) {
        td_log("❌ %s", err);
        goto out;
    }
    td_notify_ready();
    sig = td_notify_sigwait(&sigs);
    td_notify_stopping();
    td_log("收到信号 %s，正在停止…", sig == SIGINT ? "SIGINT" : "SIGTERM");
    td_httpc_abort_all(); /* a cycle in flight stops within a second */
    td_refresher_stop(r);
    td_log("已停止");
    ex = TD_EXIT_OK;
out:
    td_refresher_free(r);
    td_config_free(&c);
    return ex;
}
