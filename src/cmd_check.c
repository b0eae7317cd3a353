/*
 * cmd_check -- `tokendist check`: the seed's 测试方法, as a command.  It
 * tests the distribution endpoint (TENCENT_CLOUD_API_URL) the way the
 * seed's script did and prints the seed's report line for line:
 *
 *   🚀 腾讯云函数Token分发功能测试
 *   1. 测试腾讯云函数API连接          GET: 200, or our "no token yet" 404
 *   2. 测试腾讯云函数token上传功能    a real Feishu token, POSTed
 *   🎉 所有测试通过！腾讯云函数token分发功能正常
 *
 * A failed step prints a ❌ line in the seed's wording and the command
 * exits non-zero.  The report goes to stdout and is the seed's 预期输出
 * line for line, so it includes the two [time] lines the seed shows in
 * step 2 (UPLOAD_LINES, routed there by td_log_route); every other log
 * line goes to stderr, as everywhere.
 */
#include "cmd.h"
#include "log.h"
#include "refresher.h"
#include "tokens.h"
#include "sink.h"
#include "tokendist.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* The upload's log lines (src/sink.c) that the seed's report shows. */
static const char *const UPLOAD_LINES[] = {"正在上传token到腾讯云函数...", "Token已成功分发到腾讯云函数", NULL};

int td_cmd_check(int argc, char **argv)
{
    td_config c;
    td_sinks sinks = {0};
    td_sink ep = {0};
    td_refresher_opts o;
    td_refresher *r = NULL;
    char err[512];
    int ex, failed = 0;

    if ((ex = td_cmd_config(&c, TD_CMD_CHECK, argc, argv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* interleave with the upload's lines */
    if (!c.tencent_cloud_enabled) {
        printf("❌ 腾讯云函数 Token分发功能未启用 (TENCENT_CLOUD_ENABLED=false)，无可测试的内容\n");
        goto out;
    }
    if (!c.tencent_cloud_api_url) {
        printf("❌ 未配置腾讯云函数API地址: 请设置 TENCENT_CLOUD_API_URL (或 --api-url)\n");
        goto out;
    }
    /* Only the endpoint is under test: Gitee is left alone.  Its URL by
     * the rule every command follows (a base URL is completed). */
    if (td_sink_endpoint(&ep, c.tencent_cloud_api_url, c.tencent_cloud_api_key, c.name, c.http_timeout * 1000, err,
                         sizeof err) != TD_OK) {
        printf("❌ TENCENT_CLOUD_API_URL: %s\n", err);
        goto out;
    }
    ex = TD_EXIT_FAIL;
    sinks.v[0] = ep, sinks.n = 1;
    td_sinks_log_enabled(&sinks);

    printf("🚀 腾讯云函数Token分发功能测试\n\n1. 测试腾讯云函数API连接\n");
    if (td_sink_probe(&ep, err, sizeof err) == TD_OK) {
        printf("✅ 腾讯云函数API连接成功\n");
    } else {
        printf("❌ %s\n", err);
        failed++;
    }

    printf("\n2. 测试腾讯云函数token上传功能\n");
    if (!c.feishu_app_id || !c.feishu_app_secret) {
        printf("❌ 未配置飞书应用凭证: 请设置 FEISHU_APP_ID 和 FEISHU_APP_SECRET\n");
        failed++;
    } else {
        /* The seed's token: FEISHU_APP_ID/FEISHU_APP_SECRET, whatever else
         * TOKENDIST_TOKENS lists. */
        td_token_conf t = {.is_default = 1, .renew_window = c.renew_window,
                           .provider = {.ops = &td_provider_feishu, .base_url = c.feishu_base_url,
                                        .app_id = c.feishu_app_id, .app_secret = c.feishu_app_secret,
                                        .timeout_ms = c.http_timeout * 1000}};
        snprintf(t.name, sizeof t.name, "%s", c.name);
        td_refresher_opts_from_config(&o, &c, &t, &sinks);
        td_log_route(UPLOAD_LINES, STDOUT_FILENO);
        o.notice = (td_notice){0}; /* a check does not talk to the group */
        o.alert_below = 0;
        if (td_refresher_new(&r, &o, err, sizeof err) != TD_OK ||
            td_refresher_cycle(r, err, sizeof err) != TD_OK) {
            printf("❌ 腾讯云函数token上传测试失败: %s\n", err);
            failed++;
        } else {
            printf("✅ 腾讯云函数token上传测试成功\n");
        }
        td_log_route(NULL, 0);
    }

    if (failed) {
        printf("\n❌ %d 项测试未通过，请按上面的错误检查配置 (见 tokendist check --help)\n", failed);
    } else {
        printf("\n🎉 所有测试通过！腾讯云函数token分发功能正常\n");
        ex = TD_EXIT_OK;
    }
out:
    td_refresher_free(r);
    td_config_free(&c);
    return ex;
}
