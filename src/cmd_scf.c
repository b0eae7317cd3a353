/*
 * cmd_scf -- `tokendist scf-runtime`: the Tencent SCF event-function
 * custom runtime.  SCF starts it (through deploy/scf/bootstrap) with the
 * runtime API in SCF_RUNTIME_API / SCF_RUNTIME_API_PORT; every HTTP
 * request then arrives as an event and is answered by the same handler as
 * `tokendist serve`.
 *
 * With Feishu credentials the refresher runs here as in serve.  SCF
 * freezes an event function between invocations, so its thread runs only
 * while an event is answered: two things make up for that.  A GET that
 * finds the token inside its renewal window with the refresh overdue
 * waits for the refresh (fresh on read, api.c), and a Timer trigger
 * (every few minutes) runs the refresh when it is due, so that the token
 * is renewed even when nobody asks for it.
 */
#include "api.h"
#include "clock.h"
#include "fleet.h"
#include "cmd.h"
#include "log.h"
#include "refresher.h"
#include "scf.h"
#include "store.h"
#include "strbuf.h"
#include "tokendist.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_ASK_MS 6000       /* left of the invocation for one more store request (S3 waits 5 s at most) */

typedef struct timer_ctx {
    td_cmd_refresher *rs;
    td_api *api;
    td_store *store;
    long http_timeout_ms;       /* the wait when SCF did not state the function's limit */
} timer_ctx;

/* The expiry of the token we serve as name (0: none). */
static int64_t served(timer_ctx *t, const char *name)
{
    td_snap *s = td_api_snapshot(t->api, name);
    int64_t exp = s ? s->expire_ts : 0;

    td_snap_release(s);
    return exp;
}

/* The expiry of name's record in the store now, else (the store does not
 * answer) exp: another instance's renewal reaches what we serve a moment
 * after the store (SQLite is looked at once a second, S3 revalidated).
 * One round trip: asked only before the timer calls something a failure,
 * never on its healthy path, which a stalled store must not slow down,
 * and only while the invocation has time for it (ask). */
static int64_t stored(timer_ctx *t, const char *name, int64_t exp, int ask)
{
    td_store_entry se = {0};
    char err[256];

    if (ask && td_store_get(t->store, name, &se, err, sizeof err) == TD_OK && !se.problem) exp = se.expire_ts;
    td_store_entry_clear(&se);
    return exp;
}

/* What the token in service (expiring at exp; 0: none) is, for a report
 * that it was not renewed. */
static void describe(int64_t exp, td_strbuf *b)
{
    int64_t now = td_clock_now();

    if (exp <= 0) td_strbuf_printf(b, "还没有 token");
    else if (exp <= now) td_strbuf_printf(b, "token 已过期 %lld 秒", (long long)(now - exp));
    else td_strbuf_printf(b, "token 剩余 %lld 分钟", (long long)((exp - now) / 60));
}

/* A token whose renewal is not due, while its refresher backs off after
 * failures: no "未到刷新时间" -- the timer says the refresh is failing
 * (1, appended to failed): when the retry is ours, when it is; that none
 * comes while the store cannot say whose the lease is (or stops
 * answering before the retry, which takes the lease first); and when
 * another instance took the lease over, as long as no good token is in
 * service (valid, not yet in its window) -- it may be failing too, and
 * the refresher ends our failures by that same test
 * (td_refresher_superseded).  -1 when a good token ends them, 0 when
 * nothing is failing.  ask: the invocation has time for store requests;
 * without, what we know decides. */
static int backing_off(timer_ctx *t, size_t i, int ask, td_strbuf *failed)
{
    const char *name = t->rs->tokens[i].name;
    char last[300];
    int64_t retry_ms = 0, exp = 0;
    int n, who;

    if ((n = td_refresher_failing(t->rs->r[i], last, sizeof last, &retry_ms)) == 0) return 0;
    if ((who = td_fleet_refreshes(t->rs->fleet, name, retry_ms, ask)) == 0) {
        if (!td_refresher_superseded(t->rs->r[i], exp = served(t, name))) exp = stored(t, name, exp, ask);
        if (td_refresher_superseded(t->rs->r[i], exp)) return -1;
    }
    td_strbuf_printf(failed, "%s%s: 连续 %d 次刷新失败", failed->len ? "；" : "", name, n);
    if (who > 0) {
        td_strbuf_printf(failed, "，%lld 秒后重试 (%s)", (long long)((retry_ms + 999) / 1000), last);
    } else if (who < 0) {
        td_strbuf_printf(failed, " (%s)；现在存储无法确认刷新租约，存储恢复之前不会重试", last);
    } else {
        td_strbuf_printf(failed, " (%s)；刷新租约现由其他实例持有，它还没有换新分发中的 token (", last);
        describe(exp, failed);
        td_strbuf_printf(failed, ")");
    }
    return 1;
}

/* After the round, a token of ours with nothing valid in service is a
 * failing refresh whoever holds the lease: a holder that fails where the
 * store cannot carry our ask (SQLite), or refreshes no more -- unless it
 * ran out a moment ago (a renewal right after the expiry: WeCom's).  1
 * (appended to failed) when it is. */
static int nothing_served(timer_ctx *t, const char *name, int ask, td_strbuf *failed)
{
    int64_t exp = served(t, name), now = td_clock_now();

    if (exp <= now) exp = stored(t, name, exp, ask);
    if (exp > now || (exp > 0 && now - exp < TD_FLEET_BRIDGE_S)) return 0;
    td_strbuf_printf(failed, "%s%s: 分发中没有有效的 token (", failed->len ? "；" : "", name);
    describe(exp, failed);
    td_strbuf_printf(failed, ")，%s", td_fleet_held_elsewhere(t->rs->fleet, name)
                                         ? "刷新租约由其他实例持有，它没有刷新成功"
                                         : "本实例的刷新没有成功");
    return 1;
}

/* A Timer event: each token this function refreshes (the default one and
 * TOKENDIST_TOKENS') whose refresh is due is refreshed -- here, or by the
 * fleet's lease holder -- before the answer, which says what happened.
 * SCF freezes the instance right after it: a token left for the
 * background thread would wait for the next event.  SCF also ends the
 * invocation at the function's execution timeout (3 s by default), and
 * then nobody learns why: so the waits end at the budget's deadline, and
 * a renewal still running then is an invocation error that says to raise
 * the timeout.  The renewal itself goes on, and ends at the next thaw. */
static int on_timer(void *ud, const td_scf_budget *b, char **out, char *err, size_t errlen)
{
    timer_ctx *t = ud;
    const td_api_hooks *h = t->rs->fleet ? td_fleet_hooks(t->rs->fleet) : NULL;
    int64_t start = td_clock_mono_ms(), deadline = b->deadline_ms ? b->deadline_ms : start + t->http_timeout_ms;
    td_strbuf failed, late;
    char why[700], fails[2048], lates[512];
    int refreshed = 0, elsewhere = 0, rc = TD_OK;

    if (!t->rs->n || !h) {
        snprintf(err, errlen, "定时触发器需要飞书凭证：本函数没有配置 FEISHU_APP_ID/FEISHU_APP_SECRET "
                              "(也没有 TOKENDIST_TOKENS 的平台凭证)，无法刷新 token");
        return TD_EINVAL;
    }
    td_strbuf_fixed(&failed, fails, sizeof fails);
    td_strbuf_fixed(&late, lates, sizeof lates);
    for (size_t i = 0; i < t->rs->n; i++) {
        const char *name = t->rs->tokens[i].name;
        td_snap *s = td_api_snapshot(t->api, name);
        int64_t exp = s ? s->expire_ts : 0, left;
        int one;

        td_snap_release(s);
        if (!t->rs->r[i]) continue;
        if (!h->stale(h->ud, name, exp)) {
            /* Store requests only while they fit the invocation: a
             * stalled store makes each wait its timeout, token after
             * token, and SCF cuts off a timer that overruns without a
             * word of why. */
            int ask = deadline - td_clock_mono_ms() > STORE_ASK_MS;
            int off = backing_off(t, i, ask, &failed);
            /* Nothing failing: who renews, when it is not us. */
            if (off == 0 && td_fleet_held_elsewhere(t->rs->fleet, name)) off = -1;
            if (off < 0) elsewhere = 1;
            if (off <= 0 && nothing_served(t, name, ask, &failed)) off = 1;
            if (off > 0 && rc == TD_OK) rc = TD_EUPSTREAM;
            continue;
        }
        left = deadline - td_clock_mono_ms();
        one = left > 0 ? h->freshen(h->ud, name, (long)left, why, sizeof why) : TD_ETIMEOUT;
        if (one == TD_OK) { /* the new record may reach this instance a moment later (a reload) */
            refreshed = 1;
            continue;
        }
        if (one == TD_ECONFLICT) { /* another instance holds the lease: it renews -- if it does */
            elsewhere = 1;
            if (nothing_served(t, name, deadline - td_clock_mono_ms() > STORE_ASK_MS, &failed) && rc == TD_OK)
                rc = TD_EUPSTREAM;
            continue;
        }
        if (rc == TD_OK) rc = one;
        if (one == TD_ETIMEOUT) td_strbuf_printf(&late, "%s%s", late.len ? "、" : "", name);
        else td_strbuf_printf(&failed, "%s%s: %s", failed.len ? "；" : "", name, why);
    }
    if (late.len) {
        td_strbuf msg;
        double waited = (double)(td_clock_mono_ms() - start) / 1000;
        /* One fetch may take TOKENDIST_HTTP_TIMEOUT; the rest of a cycle
         * (the store, the answer) a few seconds more. */
        long want_s = t->http_timeout_ms / 1000 + 5 > 30 ? t->http_timeout_ms / 1000 + 5 : 30;

        td_strbuf_fixed(&msg, err, errlen);
        if (b->limit_ms)
            td_strbuf_printf(&msg, "定时刷新未能在函数的执行超时 (%g 秒) 之内完成：%s 的刷新仍在进行 (等了 %.1f 秒，"
                             "留出作答的时间，以免 SCF 先结束这次调用)；请把函数的执行超时调大到 %ld 秒以上 "
                             "(一次取 token 最多等 TOKENDIST_HTTP_TIMEOUT，现为 %ld 秒)，刷新会在实例下次被调用时继续",
                             (double)b->limit_ms / 1000, lates, waited, want_s, t->http_timeout_ms / 1000);
        else
            td_strbuf_printf(&msg, "定时刷新未能在 %.1f 秒 (TOKENDIST_HTTP_TIMEOUT) 之内完成：%s 的刷新仍在进行，"
                             "会在实例下次被调用时继续；SCF 没有告知函数的执行超时，请确认它在 %ld 秒以上",
                             waited, lates, want_s);
        if (failed.len) td_strbuf_printf(&msg, "；另有刷新失败: %s", fails);
        return rc;
    }
    if (rc != TD_OK) {
        snprintf(err, errlen, "定时刷新失败: %s", fails);
        return rc;
    }
    *out = strdup(refreshed ? "{\"refreshed\": true, \"message\": \"已刷新\"}"
                  : elsewhere ? "{\"refreshed\": false, \"message\": \"刷新租约由其他实例持有，由它按时刷新\"}"
                              : "{\"refreshed\": false, \"message\": \"未到刷新时间\"}");
    return *out ? TD_OK : TD_ENOMEM;
}

int td_cmd_scf(int argc, char **argv)
{
    td_cmd_refresher refresher = {0};
    timer_ctx tc;
    td_config c;
    td_store *store = NULL;
    td_api *api = NULL;
    const char *host = getenv("SCF_RUNTIME_API"), *port = getenv("SCF_RUNTIME_API_PORT");
    char base[300], err[512], shown[512];
    int ex;

    if ((ex = td_cmd_config(&c, TD_CMD_SCF, argc, argv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    if (!host || !*host || !port || !*port || strlen(host) > 255 || strlen(port) > 5 ||
        strspn(port, "0123456789") != strlen(port)) {
        td_log("❌ SCF_RUNTIME_API / SCF_RUNTIME_API_PORT 未设置或无效：scf-runtime 只在腾讯云 SCF "
               "事件函数 (自定义运行时) 中运行；普通服务器请用 tokendist serve");
        goto out;
    }
    snprintf(base, sizeof base, "http://%s:%s", host, port);
    if (td_cmd_check_front_settings(&c, err, sizeof err) != TD_OK) {
        td_log("❌ %s", err);
        td_scf_init_error(base, err);
        goto out;
    }
    ex = TD_EXIT_FAIL;
    signal(SIGPIPE, SIG_IGN);

    if (td_cmd_open_api(&c, NULL, &store, &api, err, sizeof err) != TD_OK) {
        td_log("❌ %s", err);
        td_scf_init_error(base, err);
        goto out;
    }
    td_log("tokendist %s scf-runtime 已启动 (运行时 API %s, 存储: %s, 写入密钥 %zu 个, 读取密钥 %zu 个)",
           TD_VERSION, base, td_store_redact(c.store, shown, sizeof shown), c.push_keys.n,
           c.read_keys.n);
    if (c.push_keys.n == 0)
        td_log("⚠️ 未配置写入密钥 (TOKENDIST_PUSH_KEYS)：所有 POST 都会被拒绝");
    if (td_cmd_refresher_start(&refresher, &c, store, api, NULL) != TD_OK) {
        td_scf_init_error(base, "无法启动 token 刷新 (见日志)");
        goto out;
    }
    tc = (timer_ctx){.rs = &refresher, .api = api, .store = store, .http_timeout_ms = c.http_timeout * 1000};
    td_scf_run(api, base, on_timer, &tc, err, sizeof err); /* returns only when the runtime API is gone */
    td_log("❌ SCF 运行时 API 不可用，退出: %s", err);
out:
    if (api) td_api_set_hooks(api, NULL);
    td_cmd_refresher_stop(&refresher);
    td_cmd_close_api(store, api);
    td_config_free(&c);
    return ex;
}
