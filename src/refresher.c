/* refresher -- see refresher.h. */
#include "refresher.h"
#include "lease.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "tokendist.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FORCE_INTERVAL_MS 30000L
/* How often a server that does not hold the lease looks again: a tenth of
 * the lease time, so a dead holder is replaced within the lease time. */
#define LEASE_RETRY_MS (TD_LEASE_TTL_MS / 10)

struct td_refresher {
    td_refresher_opts o;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    int running, stop, force;

    /* Owned by whoever runs cycles (the thread, or the --once caller). */
    td_record *cur;             /* the record in service, or NULL */
    int learned;                /* asked the sinks what they serve */
    int failures;               /* failed cycles in a row */
    int alerted;                /* the group was told about them */
    int same_in_window;         /* fetches inside our window that got the old token */
    uint64_t rng;

    /* Under lock: the invalid hook reads them. */
    int64_t last_force_ms;      /* monotonic, when the last forced cycle was asked */
    long cycles, forced;
    int failures_seen;
};

static uint64_t rnd(td_refresher *r)
{
    /* xorshift64*: jitter only needs to spread instances apart. */
    uint64_t x = r->rng;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int64_t rnd_range(td_refresher *r, int64_t lo, int64_t hi)
{
    return hi <= lo ? lo : lo + (int64_t)(rnd(r) % (uint64_t)(hi - lo + 1));
}

/* The n-th retry delay in ms: retry_min doubling up to retry_max, with
 * "equal jitter" (half fixed, half random) so a fleet does not retry in
 * step, yet never much sooner than planned. */
static int64_t backoff_ms(td_refresher *r, int n)
{
    int64_t base = r->o.retry_min * 1000;
    for (int i = 1; i < n && base < r->o.retry_max * 1000; i++) base *= 2;
    if (base > r->o.retry_max * 1000) base = r->o.retry_max * 1000;
    return base / 2 + rnd_range(r, 0, base / 2);
}

/* Delay after Feishu reported `expire` seconds left: the fetch lands just
 * inside Feishu's renew window.  The jitter is always positive (never
 * early: that would only return the same token) and small against the
 * window: 1 s -- "expire" is whole seconds, so the true remainder may be
 * up to a second less than reported -- plus up to a 20th of the window,
 * at most 30 s. */
static int64_t renew_delay_ms(td_refresher *r, long expire)
{
    int64_t spread = r->o.renew_window * 1000 / 20;
    if (spread > 30000) spread = 30000;
    return (int64_t)(expire - r->o.renew_window) * 1000 + 1000 + rnd_range(r, 0, spread);
}

void td_refresher_opts_from_config(td_refresher_opts *o, const td_config *c, const td_sinks *s)
{
    long tmo = c->http_timeout * 1000;

    memset(o, 0, sizeof *o);
    o->feishu = (td_feishu){.base_url = c->feishu_base_url, .app_id = c->feishu_app_id,
                            .app_secret = c->feishu_app_secret, .timeout_ms = tmo};
    o->sinks = s;
    /* notice.feishu points into o: fixed up by td_refresher_new. */
    o->notice = (td_notice){.chat_id = c->feishu_chat_id, .webhook_url = c->feishu_webhook_url,
                            .webhook_secret = c->feishu_webhook_secret, .timeout_ms = tmo};
    o->notice_url = c->public_url ? c->public_url
                  : c->tencent_cloud_enabled ? c->tencent_cloud_api_url : NULL;
    o->name = c->name;
    o->source = c->record_source, o->usage = c->record_usage, o->platform = c->record_platform;
    o->renew_window = c->renew_window;
    o->retry_min = c->retry_min, o->retry_max = c->retry_max;
    o->alert_below = c->alert_below;
}

int td_refresher_new(td_refresher **out, const td_refresher_opts *o, char *err, size_t errlen)
{
    td_refresher *r;
    pthread_condattr_t ca;

    if (!o->sinks || o->sinks->n == 0) {
        snprintf(err, errlen, "没有可分发的目标: 请设置 TENCENT_CLOUD_API_URL (或 ENABLE_GITEE_TOKEN_SHARE)");
        return TD_EINVAL;
    }
    if (!o->feishu.app_id || !o->feishu.app_secret) {
        snprintf(err, errlen, "FEISHU_APP_ID and FEISHU_APP_SECRET must both be set");
        return TD_EINVAL;
    }
    if (!(r = calloc(1, sizeof *r))) return TD_ENOMEM;
    r->o = *o;
    r->o.notice.feishu = &r->o.feishu;
    if (r->o.retry_max < r->o.retry_min) r->o.retry_max = r->o.retry_min;
    if (r->o.force_interval_ms <= 0) r->o.force_interval_ms = FORCE_INTERVAL_MS;
    r->rng = (uint64_t)td_clock_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
    if (!r->rng) r->rng = 1;
    r->last_force_ms = INT64_MIN / 2;
    pthread_mutex_init(&r->lock, NULL);
    /* Timed waits on the monotonic clock: a wall-clock jump must not make
     * the refresher sleep through a renewal. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = r;
    return TD_OK;
}

void td_refresher_free(td_refresher *r)
{
    if (!r) return;
    td_refresher_stop(r);
    td_record_free(r->cur);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static const char *tenant_of(const td_record *rec)
{
    const char *t = rec ? td_record_field(rec, "tenant_access_token") : NULL;
    return t ? t : rec ? td_record_token(rec) : NULL;
}

/* Tells the group; a notice failure is logged and otherwise ignored. */
static int notify(td_refresher *r, const char *tenant, const char *text, const char *what)
{
    char err[512];
    int rc;

    if (!td_notice_enabled(&r->o.notice)) return TD_OK;
    if ((rc = td_notice_send(&r->o.notice, tenant, text, err, sizeof err)) != TD_OK) {
        td_metrics_inc(TD_M_NOTICE_FAILED);
        td_log("⚠️ 群通知 (%s) 发送失败: %s", what, err);
    } else {
        td_log("已发送群通知: %s", what);
    }
    return rc;
}

/* What do the sinks serve now?  Asked once, so a restarted refresher
 * neither announces a token the group already knows nor re-times it; and,
 * inside serve, before every cycle, since other instances sharing the
 * store may have written a newer record. */
static void learn_current(td_refresher *r)
{
    char err[512], fp[TD_FP_LEN], e[TD_TIME_LEN];

    for (size_t i = 0; i < r->o.sinks->n; i++) {
        const td_sink *s = &r->o.sinks->v[i];
        td_record *rec = NULL;
        if (r->learned && s->kind != TD_SINK_LOCAL) continue;
        if (td_sink_current(s, &rec, err, sizeof err) != TD_OK) continue;
        if (!r->cur || td_record_generated(rec) > td_record_generated(r->cur)) {
            if (!r->learned)
                td_log("%s 当前分发中的 token: %s (过期时间 %s)", s->label,
                       td_log_fp(td_record_token(rec), fp), td_clock_format(td_record_expires(rec), e));
            td_record_free(r->cur);
            r->cur = rec, rec = NULL;
        }
        td_record_free(rec);
        if (!r->learned) break;
    }
    r->learned = 1;
}

static int has_endpoint(const td_sinks *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].kind == TD_SINK_ENDPOINT) return 1;
    return 0;
}

/* One fetch-and-push.  Sets *next_ms (delay until the next cycle) and
 * *retry (the cycle failed or was partial).  Returns TD_OK when at least
 * one sink holds the fetched token. */
static int cycle(td_refresher *r, int forced, int64_t *next_ms, char *err, size_t errlen)
{
    td_feishu_token *t = NULL;
    td_record *rec = NULL;
    char why[512], fp[TD_FP_LEN], text[TD_NOTICE_TEXT_MAX], e[TD_TIME_LEN];
    int64_t now;
    int rc, ok = 0, failed = 0, same, changed;

    learn_current(r);
    if (!(t = malloc(sizeof *t))) {
        rc = TD_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((rc = td_feishu_fetch_token(&r->o.feishu, t, err, errlen)) != TD_OK) goto fail;
    now = td_clock_now();

    same = r->cur && !strcmp(td_record_token(r->cur), t->app_access_token);
    if (same) {
        /* The record of a token never changes: re-sending it is a no-op for
         * every sink (the server answers an exact re-send with 200, Gitee
         * skips an identical file). */
        rec = r->cur, r->cur = NULL;
        if (forced || t->expire <= r->o.renew_window)
            td_log("⚠️ 飞书返回了同一个 token %s (剩余 %ld 分钟)%s", td_log_fp(t->app_access_token, fp),
                   (t->expire + 30) / 60,
                   forced ? "：飞书只在过期前 30 分钟内换发新 token，app_access_token 无法提前作废，继续分发该 token"
                          : "：还未进入飞书的换发窗口，稍后再试");
    } else {
        /* A new token must carry a newer generated_timestamp than the one
         * it replaces, or put-if-newer refuses it: two tokens within one
         * second happen (a forced refresh right after a renewal). */
        int64_t gen = r->cur && td_record_generated(r->cur) >= now ? td_record_generated(r->cur) + 1 : now;
        struct td_record_fields f = {
            .access_token = t->app_access_token,
            .tenant_access_token = t->tenant_access_token[0] ? t->tenant_access_token : NULL,
            .generated_ts = gen, .expire_ts = now + t->expire,
            .source = r->o.source, .usage = r->o.usage, .platform = r->o.platform,
        };
        if ((rc = td_record_new(&f, &rec)) != TD_OK) {
            snprintf(err, errlen, "飞书返回的 token 无法组成记录: %s", td_strerror(rc));
            goto fail;
        }
        td_log("已获取新的 app_access_token %s (剩余 %ld 分钟，过期时间 %s)",
               td_log_fp(t->app_access_token, fp), (t->expire + 30) / 60,
               td_clock_format(td_record_expires(rec), e));
    }

    if (has_endpoint(r->o.sinks)) td_log("开始分发token到腾讯云函数...");
    for (size_t i = 0; i < r->o.sinks->n; i++) {
        const td_sink *s = &r->o.sinks->v[i];
        if (td_sink_push(s, rec, why, sizeof why) == TD_OK) {
            ok++;
            if (s->kind == TD_SINK_ENDPOINT) td_log("app_access_token已成功分发到腾讯云函数");
        } else {
            failed++;
            snprintf(err, errlen, "%s", why);
        }
    }
    if (!ok) {
        rc = TD_EUNAVAIL;
        /* One sink: its own (the seed's) words; several: say none took it. */
        if (failed > 1) {
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "token 未能分发到任何目标 (%s)", why);
        }
        if (same) r->cur = rec, rec = NULL; /* it is still what the sinks had */
        goto fail;
    }

    /* In service now. */
    changed = !same;
    td_record_free(r->cur);
    r->cur = rec, rec = NULL;
    td_metrics_inc(TD_M_REFRESH_OK);
    if (r->failures && r->alerted) {
        td_notice_recovered_text(text, sizeof text, r->failures, td_record_generated(r->cur),
                                 td_record_expires(r->cur), now);
        notify(r, tenant_of(r->cur), text, "刷新已恢复");
    }
    if (r->failures) td_log("✅ token 刷新已恢复 (此前连续失败 %d 次)", r->failures);
    r->failures = 0, r->alerted = 0;
    if (changed) {
        td_notice_updated_text(text, sizeof text, td_record_generated(r->cur), td_record_expires(r->cur),
                               now, r->o.notice_url);
        notify(r, tenant_of(r->cur), text, "Access Token 已更新");
    }

    if (t->expire > r->o.renew_window) {
        r->same_in_window = 0;
        *next_ms = renew_delay_ms(r, t->expire);
    } else {
        /* Our window is wider than Feishu's (or the clocks disagree): ask
         * again soon, but back off instead of hammering Feishu. */
        *next_ms = backoff_ms(r, ++r->same_in_window);
    }
    if (failed) {
        int64_t retry = backoff_ms(r, 1);
        td_log("⚠️ %d 个分发目标失败，%.1f 秒后重试", failed, (double)retry / 1000);
        if (retry < *next_ms) *next_ms = retry;
    }
    rc = TD_OK;
    goto out;

fail:
    now = td_clock_now();
    r->failures++;
    td_metrics_inc(TD_M_REFRESH_FAILED);
    *next_ms = backoff_ms(r, r->failures);
    if (rc == TD_ERATELIMIT && t && t->retry_after >= 0 && t->retry_after * 1000 > *next_ms)
        *next_ms = t->retry_after * 1000 + rnd_range(r, 0, 1000);
    if (r->cur && td_record_expires(r->cur) > now)
        td_log("❌ token 刷新失败 (连续第 %d 次): %s；继续分发当前 token (剩余 %lld 秒)",
               r->failures, err, (long long)(td_record_expires(r->cur) - now));
    else
        td_log("❌ token 刷新失败 (连续第 %d 次): %s；目前没有可用的 token", r->failures, err);
    if (!r->alerted && r->o.alert_below > 0 &&
        (!r->cur || td_record_expires(r->cur) - now < r->o.alert_below)) {
        td_notice_alert_text(text, sizeof text, r->failures, r->cur ? td_record_expires(r->cur) : 0, now, err);
        if (notify(r, tenant_of(r->cur), text, "刷新失败告警") == TD_OK && td_notice_enabled(&r->o.notice))
            r->alerted = 1;
    }
out:
    td_record_free(rec);
    if (t) {
        memset(t, 0, sizeof *t);
        free(t);
    }
    pthread_mutex_lock(&r->lock);
    r->cycles++;
    r->forced += forced;
    r->failures_seen = r->failures;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int td_refresher_cycle(td_refresher *r, char *err, size_t errlen)
{
    int64_t next;
    return cycle(r, 0, &next, err, errlen);
}

static void *loop(void *ud)
{
    td_refresher *r = ud;
    int64_t due = td_clock_mono_ms(); /* first cycle right away */
    char err[512];

    pthread_mutex_lock(&r->lock);
    for (;;) {
        int forced;
        int64_t next = LEASE_RETRY_MS;

        while (!r->stop && !r->force && td_clock_mono_ms() < due) {
            struct timespec ts;
            td_clock_mono_deadline(due, &ts);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        if (r->stop) break;
        forced = r->force;
        r->force = 0;
        pthread_mutex_unlock(&r->lock);

        if (r->o.may_refresh && !r->o.may_refresh(r->o.lease_ud)) {
            learn_current(r); /* another instance refreshes; keep our view current */
        } else {
            int ok = cycle(r, forced, &next, err, sizeof err) == TD_OK;
            td_log("%s: %.1f 秒后", ok ? "下次刷新" : "重试", (double)next / 1000);
        }

        pthread_mutex_lock(&r->lock);
        due = td_clock_mono_ms() + next;
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int td_refresher_start(td_refresher *r, char *err, size_t errlen)
{
    int e;

    if (r->running) return TD_OK;
    r->stop = 0;
    if ((e = pthread_create(&r->thread, NULL, loop, r)) != 0) {
        snprintf(err, errlen, "cannot start the refresher thread: %s", strerror(e));
        return TD_ERR;
    }
    r->running = 1;
    return TD_OK;
}

void td_refresher_stop(td_refresher *r)
{
    if (!r || !r->running) return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    /* A cycle in flight finishes first: its HTTP calls are bounded by
     * their timeouts, so this wait is too. */
    pthread_join(r->thread, NULL);
    r->running = 0;
}

int td_refresher_invalid_hook(void *ud, const char *name, const char *token)
{
    td_refresher *r = ud;
    int64_t now = td_clock_mono_ms();
    char fp[TD_FP_LEN];

    if (!r || !name || strcmp(name, r->o.name) != 0) return TD_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    /* Every report of one token within the interval is the same incident:
     * one fetch answers them all (and Feishu's rate limit stays far). */
    if (!r->force && now - r->last_force_ms >= r->o.force_interval_ms) {
        r->force = 1;
        r->last_force_ms = now;
        pthread_cond_signal(&r->cond);
        td_log("收到 token %s 无效的报告，立即刷新一次", td_log_fp(token, fp));
    }
    pthread_mutex_unlock(&r->lock);
    return TD_OK;
}

void td_refresher_stats(td_refresher *r, long *cycles, long *forced, int *failures)
{
    pthread_mutex_lock(&r->lock);
    if (cycles) *cycles = r->cycles;
    if (forced) *forced = r->forced;
    if (failures) *failures = r->failures_seen;
    pthread_mutex_unlock(&r->lock);
}
