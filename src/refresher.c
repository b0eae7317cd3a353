/* refresher -- see refresher.h. */
#include "refresher.h"
#include "api.h"
#include "lease.h"
#include "clock.h"
#include "freeze.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "strbuf.h"
#include "tokendist.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A retry after a failure is due this long before the token in service
 * expires at the latest: time for a fetch and the pushes. */
#define EXPIRY_MARGIN_S 60
#define FORCED_PER_DAY 5        /* forced fetches (revoking ones) reports may cause a day */
#define CHECK_INTERVAL_MS 30000L /* the platform judges one token at most this often */
#define CHECKS_PER_DAY 48       /* judgements (check calls) reports may cause a day */
#define DAY_MS 86400000LL
/* A fetch this long after the record it renews was made must have moved
 * an extending platform's expiry visibly (DingTalk: to a full lifetime
 * from the fetch); a sooner one (a retry) cannot tell. */
#define EXTEND_SEEN_S 10
#define TICKET_WINDOW TD_TICKET_RENEW_WINDOW
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
    int served;                 /* a token of ours was delivered since the start */
    char checked_id[TD_TOKEN_ID_LEN]; /* the last token the platform judged */
    int checked_invalid;        /* its verdict */
    int64_t checked_ms;         /* and when (monotonic ms) */
    int64_t check_at[CHECKS_PER_DAY]; /* monotonic ms of the judgements of the last day */
    int check_n;
    int64_t forced_at[FORCED_PER_DAY]; /* monotonic ms of the forced fetches of the last day */
    int forced_n;
    char same_why[300];         /* a forced cycle: why the platform may hand back the same token */
    int64_t ticket_exp;         /* expiry of the jsapi_ticket in service; 0 unknown */
    int64_t ticket_gen;
    uint64_t rng;

    /* Under lock: td_refresher_force and td_refresher_status read them. */
    char cur_id[2][TD_TOKEN_ID_LEN]; /* ids of the tokens in service (app, tenant); "" none */
    struct {
        char id[TD_TOKEN_ID_LEN];   /* the reported token */
        char covered[2][TD_TOKEN_ID_LEN]; /* when done: the tokens in service it judged (app, tenant) */
        int state;                  /* FORCE_NONE, FORCE_PENDING, FORCE_DONE */
        int rc;                     /* when done: td_refresher_force's answer */
        char why[300];
        int64_t asked_ms, done_ms;  /* monotonic */
        long reports;               /* reports this one fetch answered */
        long repeats;               /* reports answered after it from its outcome */
    } fz;
    int forcing;                /* atomic mirror of fz.state == FORCE_PENDING (td_refresher_forcing) */
    pthread_cond_t done;        /* a cycle (forced or not) finished */
    int run_now;                /* td_refresher_freshen asks for a cycle now */
    int cycling;                /* a cycle runs (atomic: td_refresher_overdue reads it) */
    int64_t due_ms;             /* monotonic ms of the next cycle (atomic, likewise) */
    int rule;                   /* the renewal rule in effect, a td_renewal (atomic): the
                                 * provider's, until an extending one did not extend */
    long window;                /* the renewal window in effect, s (atomic, likewise) */
    int64_t cur_exp;            /* expiry of the record in service, 0 none (atomic) */
    int failing;                /* the last cycle failed: backing off (atomic) */
    int late;                   /* the running cycle started late or for a reader (atomic) */
    int64_t cycle_mark;         /* td_freeze_mark when the running cycle started (atomic) */
    unsigned long gen;          /* cycles finished */
    int last_rc;                /* of the last cycle */
    long cycles, forced;
    int failures_seen;
    int64_t last_ok, last_fail; /* Unix seconds of the last cycles that did and did not deliver */
    char last_err[300];
    td_refresher_sink_state sink_st[TD_SINKS_MAX]; /* by the index of o.sinks */
    td_refresher_event events[TD_REFRESHER_EVENTS]; /* newest first */
    size_t nevents;
    char notice_url[TD_ENDPOINT_URL_MAX]; /* o.notice_url points here: a copy, the caller's may be gone */
};

enum { FORCE_NONE, FORCE_PENDING, FORCE_DONE };

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

/* The renewal rule and window in effect: the provider's and the
 * settings', unless an extending platform did not extend (fall_back). */
static td_renewal rule_of(const td_refresher *r) { return (td_renewal)__atomic_load_n(&r->rule, __ATOMIC_RELAXED); }
static long window_of(const td_refresher *r) { return __atomic_load_n(&r->window, __ATOMIC_RELAXED); }

/* A token that expires at expire_ts is valid and not yet in its renewal
 * window: nothing to renew, nothing for readers to wait for. */
static int outside_window(const td_refresher *r, int64_t expire_ts)
{
    int64_t now = td_clock_now();
    return expire_ts - now >= window_of(r) && expire_ts > now;
}

/* A ration over the last day (forced fetches, checks): drops what is older
 * than a day from at[0..*n) and returns how many are left. */
static int ration_left(int64_t *at, int *n, int64_t now)
{
    int k = 0;
    while (k < *n && now - at[k] > DAY_MS) k++;
    memmove(at, at + k, (size_t)(*n - k) * sizeof *at);
    return *n -= k;
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
    int64_t spread = window_of(r) * 1000 / 20;
    if (spread > 30000) spread = 30000;
    /* A platform that renews only after the expiry (WeCom): right after
     * it, readers waiting meanwhile (fresh on read). */
    if (rule_of(r) == TD_RENEW_AFTER_EXPIRY)
        return (int64_t)expire * 1000 + 200 + rnd_range(r, 0, 800);
    return (int64_t)(expire - window_of(r)) * 1000 + 1000 + rnd_range(r, 0, spread);
}

void td_refresher_opts_from_config(td_refresher_opts *o, const td_config *c, const td_token_conf *t,
                                   const td_sinks *s)
{
    long tmo = c->http_timeout * 1000;

    memset(o, 0, sizeof *o);
    o->provider = t->provider;
    o->feishu = (td_feishu){.base_url = c->feishu_base_url, .timeout_ms = tmo};
    o->sinks = s;
    /* notice.feishu points into o: fixed up by td_refresher_new.  The
     * group hears about the seed's token (the default one); another
     * token's alerts go to the custom-bot webhook only, since a chat
     * message needs a Feishu tenant token of its own. */
    o->notice = (td_notice){.chat_id = t->is_default ? c->feishu_chat_id : NULL,
                            .webhook_url = c->feishu_webhook_url,
                            .webhook_secret = c->feishu_webhook_secret, .timeout_ms = tmo};
    o->announce = t->is_default;
    o->notice_url = t->is_default ? (c->public_url ? c->public_url
                                     : c->tencent_cloud_enabled ? c->tencent_cloud_api_url : NULL)
                                  : NULL;
    o->name = t->name;
    td_tokens_credentials(t, o->credentials, sizeof o->credentials);
    o->ticket = t->jsapi_ticket;
    o->source = c->record_source, o->usage = c->record_usage, o->platform = c->record_platform;
    o->renew_window = t->renew_window;
    o->retry_min = c->retry_min, o->retry_max = c->retry_max;
    o->alert_below = c->alert_below;
}

int td_refresher_new(td_refresher **out, const td_refresher_opts *o, char *err, size_t errlen)
{
    td_refresher *r;
    pthread_condattr_t ca;

    if (!o->sinks || o->sinks->n == 0) {
        if (o->name && strcmp(o->name, "default") != 0 && o->notice_url == NULL && !o->announce) {
            char up[TD_NAME_MAX + 1];
            size_t i;
            for (i = 0; o->name[i] && i < TD_NAME_MAX; i++) up[i] = (char)(o->name[i] >= 'a' && o->name[i] <= 'z' ? o->name[i] - 32 : o->name[i]);
            up[i] = '\0';
            snprintf(err, errlen, "token %s 没有可分发的目标: 请设置 TOKENDIST_%s_API_URL (或 TOKENDIST_%s_GITEE_FILE_PATH)",
                     o->name, up, up);
        } else {
            snprintf(err, errlen, "没有可分发的目标: 请设置 TENCENT_CLOUD_API_URL (或 ENABLE_GITEE_TOKEN_SHARE)");
        }
        return TD_EINVAL;
    }
    if (!o->provider.ops || !o->provider.app_id || !o->provider.app_secret) {
        snprintf(err, errlen, "token %s: 平台、应用 ID 和密钥都必须设置", o->name ? o->name : "?");
        return TD_EINVAL;
    }
    if (!(r = calloc(1, sizeof *r))) return TD_ENOMEM;
    r->o = *o;
    r->o.notice.feishu = &r->o.feishu;
    if (o->notice_url) {
        snprintf(r->notice_url, sizeof r->notice_url, "%s", o->notice_url);
        r->o.notice_url = r->notice_url;
    }
    if (r->o.retry_max < r->o.retry_min) r->o.retry_max = r->o.retry_min;
    if (r->o.force_interval_ms <= 0) r->o.force_interval_ms = TD_REFRESHER_FORCE_INTERVAL_MS;
    r->rule = (int)o->provider.ops->renewal;
    r->window = o->renew_window;
    for (size_t i = 0; i < o->sinks->n && i < TD_SINKS_MAX; i++) {
        r->sink_st[i].kind = td_sink_kind_name(o->sinks->v[i].kind);
        r->sink_st[i].label = o->sinks->v[i].label;
    }
    r->rng = (uint64_t)td_clock_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
    if (!r->rng) r->rng = 1;
    pthread_mutex_init(&r->lock, NULL);
    /* Timed waits on the monotonic clock: a wall-clock jump must not make
     * the refresher sleep through a renewal. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_cond_init(&r->done, &ca);
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
    pthread_cond_destroy(&r->done);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static const char *tenant_of(const td_record *rec)
{
    const char *t = rec ? td_record_field(rec, "tenant_access_token") : NULL;
    return t ? t : rec ? td_record_token(rec) : NULL;
}

/* Publishes which tokens are in service, for td_refresher_force. */
static void note_current(td_refresher *r)
{
    const char *app = r->cur ? td_record_token(r->cur) : NULL;
    const char *ten = r->cur ? td_record_field(r->cur, "tenant_access_token") : NULL;
    char a[TD_TOKEN_ID_LEN] = "", t[TD_TOKEN_ID_LEN] = "";

    if (app) td_record_token_id(app, a);
    if (ten) td_record_token_id(ten, t);
    __atomic_store_n(&r->cur_exp, r->cur ? td_record_expires(r->cur) : 0, __ATOMIC_RELAXED);
    pthread_mutex_lock(&r->lock);
    memcpy(r->cur_id[0], a, sizeof a);
    memcpy(r->cur_id[1], t, sizeof t);
    pthread_mutex_unlock(&r->lock);
}

/* Remembers an event for the status page (td_refresher_status).  An event
 * already seen since the last recovery (a failure repeated by every retry
 * of an outage, an alert that cannot be sent) counts up and moves to the
 * front instead of taking another place: an outage does not push what it
 * caused out of the list, and each incident keeps its own lines. */
static void note_event(td_refresher *r, td_event_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_event(td_refresher *r, td_event_kind kind, const char *fmt, ...)
{
    td_refresher_event e = {.kind = kind, .count = 1};
    va_list ap;
    size_t i;

    va_start(ap, fmt);
    vsnprintf(e.text, sizeof e.text, fmt, ap);
    td_utf8_mend(e.text, strlen(e.text));  /* not half a character at a cut (also compared below) */
    va_end(ap);
    e.first = e.last = td_clock_now();
    pthread_mutex_lock(&r->lock);
    for (i = 0; i < r->nevents && r->events[i].kind != TD_EVENT_RECOVERED; i++)
        if (r->events[i].kind == kind && !strcmp(r->events[i].text, e.text)) break;
    if (i < r->nevents && r->events[i].kind == kind && !strcmp(r->events[i].text, e.text)) {
        e.first = r->events[i].first;
        e.count = r->events[i].count + 1;
    } else if ((i = r->nevents) < TD_REFRESHER_EVENTS) {
        r->nevents++;
    } else {
        i = TD_REFRESHER_EVENTS - 1; /* the oldest goes */
    }
    memmove(r->events + 1, r->events, i * sizeof *r->events);
    r->events[0] = e;
    pthread_mutex_unlock(&r->lock);
}

/* Remembers what a delivery to sink i did (a conflict is neither). */
static void note_sink(td_refresher *r, size_t i, int rc, const char *err)
{
    td_refresher_sink_state *k = &r->sink_st[i];

    if (rc == TD_ECONFLICT || i >= TD_SINKS_MAX) return;
    pthread_mutex_lock(&r->lock);
    if (rc == TD_OK) {
        k->last_ok = td_clock_now();
        k->failures = 0;
    } else {
        k->last_fail = td_clock_now();
        k->failures++;
        snprintf(k->last_err, sizeof k->last_err, "%s", err);
    }
    pthread_mutex_unlock(&r->lock);
}

/* Tells the group; a notice failure is logged and otherwise ignored.
 * Either way the status page hears of it as an event of that kind. */
static int notify(td_refresher *r, const char *tenant, const char *text, const char *what,
                  td_event_kind kind)
{
    char err[512];
    int rc;

    if (!td_notice_enabled(&r->o.notice)) return TD_OK;
    err[0] = '\0';
    if ((rc = td_notice_send(&r->o.notice, tenant, text, err, sizeof err)) != TD_OK) {
        if (!err[0]) snprintf(err, sizeof err, "%s", td_strerror(rc));   /* never an empty reason */
        td_metrics_inc(TD_M_NOTICE_FAILED);
        td_log("⚠️ 群通知 (%s) 发送失败: %s", what, err);
        note_event(r, kind, "群通知「%s」发送失败: %s", what, err);
    } else {
        td_log("已发送群通知: %s", what);
        note_event(r, kind, "已发送群通知「%s」", what);
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
    note_current(r);
}

static int has_endpoint(const td_sinks *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].kind == TD_SINK_ENDPOINT) return 1;
    return 0;
}

/* An extending platform (DingTalk) handed back the token in service
 * without moving its expiry: the extension docs/providers.md reads into
 * its documentation does not happen.  From now on the token is renewed
 * by the rule that fits -- right after its expiry, readers bridged by
 * fresh on read, as WeCom's -- instead of retrying in a window that never
 * brings anything.  Said once: it is the platform's behaviour, not an
 * incident. */
static void fall_back(td_refresher *r, const char *token)
{
    char fp[TD_FP_LEN], e[TD_TIME_LEN];

    __atomic_store_n(&r->window, 0L, __ATOMIC_RELAXED);
    __atomic_store_n(&r->rule, (int)TD_RENEW_AFTER_EXPIRY, __ATOMIC_RELAXED);
    td_log("⚠️ %s返回了同一个 token %s，但没有延长它的有效期 (仍在 %s 过期)：%s 改为过期后立即换新 "
           "(同企业微信的规则)，过期那一刻的读取等待新 token",
           r->o.provider.ops->label, td_log_fp(token, fp), td_clock_format(td_record_expires(r->cur), e), r->o.name);
}

/* The record to deliver for the platform's answer t: the one in service
 * when the platform handed back the same token (*same set), else a new
 * one.  A new token must carry a newer generated_timestamp than the one
 * it replaces, or put-if-newer refuses it: two tokens within one second
 * happen (a forced refresh right after a renewal). */
static int record_for(td_refresher *r, const td_grant *t, int forced, int64_t now,
                      td_record **out, int *same, char *err, size_t errlen)
{
    const td_provider_ops *ops = r->o.provider.ops;
    char fp[TD_FP_LEN], e[TD_TIME_LEN];
    int64_t gen;
    int rc;

    *same = r->cur && !strcmp(td_record_token(r->cur), t->token);
    if (*same && rule_of(r) == TD_RENEW_EXTENDS && now - td_record_generated(r->cur) > EXTEND_SEEN_S &&
        now + t->expire <= td_record_expires(r->cur) + 2)
        fall_back(r, t->token);
    /* The same token with another expiry than the record in service (one
     * written by another producer, or a token whose life the platform
     * extended): the record is rebuilt from what the platform says now.
     * "expire" is whole seconds, so two seconds apart is the same. */
    /* A platform that renews only after the expiry (WeCom) may answer a
     * full lifetime again for a token that runs out sooner: there, only an
     * earlier expiry is believed. */
    if (*same && llabs((long long)(now + t->expire - td_record_expires(r->cur))) > 2 &&
        (rule_of(r) != TD_RENEW_AFTER_EXPIRY || now + t->expire < td_record_expires(r->cur))) {
        td_log("⚠️ %s返回的是在用的 token %s，但过期时间与分发中的记录相差 %lld 秒：按平台给的剩余时间重新生成记录",
               ops->label, td_log_fp(t->token, fp), (long long)(td_record_expires(r->cur) - (now + t->expire)));
        goto build;
    }
    if (*same) {
        /* The record of a token never changes: re-sending it is a no-op for
         * every sink (the server answers an exact re-send with 200, Gitee
         * skips an identical file). */
        *out = r->cur, r->cur = NULL;
        if (forced)
            td_log("⚠️ %s返回了同一个 token %s (剩余 %ld 分钟)：%s；继续分发该 token", ops->label,
                   td_log_fp(t->token, fp), (t->expire + 30) / 60, r->same_why[0] ? r->same_why : ops->reissue_rule);
        else if (t->expire <= window_of(r))
            td_log("⚠️ %s返回了同一个 token %s (剩余 %ld 分钟)：还未进入平台的换发窗口，稍后再试", ops->label,
                   td_log_fp(t->token, fp), (t->expire + 30) / 60);
        return TD_OK;
    }
build:
    gen = r->cur && td_record_generated(r->cur) >= now ? td_record_generated(r->cur) + 1 : now;
    {
        struct td_record_fields f = {
            .access_token = t->token,
            .tenant_access_token = t->tenant[0] ? t->tenant : NULL,
            .generated_ts = gen, .expire_ts = now + t->expire,
            .source = r->o.source, .usage = r->o.usage, .platform = r->o.platform,
            .provider = ops->kind,
        };
        if ((rc = td_record_new(&f, out)) != TD_OK) {
            snprintf(err, errlen, "%s返回的 token 无法组成记录: %s", ops->label, td_strerror(rc));
            return rc;
        }
    }
    if (!*same)
        td_log("已获取新的 %s %s (剩余 %ld 分钟，过期时间 %s)",
               ops->renewal == TD_RENEW_IN_WINDOW && !strcmp(ops->kind, "feishu") ? "app_access_token" : r->o.name,
               td_log_fp(t->token, fp), (t->expire + 30) / 60, td_clock_format(td_record_expires(*out), e));
    return TD_OK;
}

/* Pushes rec to every sink; one failing never stops the others.  Returns
 * how many took it; *failed counts the others, err the last failure (or,
 * when none took it, a sentence saying so). */
static int deliver(td_refresher *r, const td_record *rec, int local_only, int *failed, char *err,
                   size_t errlen)
{
    char why[512];
    int ok = 0;

    *failed = 0;
    if (has_endpoint(r->o.sinks) && !local_only) td_log("开始分发token到腾讯云函数...");
    for (size_t i = 0; i < r->o.sinks->n; i++) {
        const td_sink *s = &r->o.sinks->v[i];
        if (local_only && s->kind != TD_SINK_LOCAL) continue;
        int src = td_sink_push(s, rec, why, sizeof why);
        note_sink(r, i, src, why);
        if (src == TD_OK) {
            ok++;
            if (s->kind == TD_SINK_ENDPOINT) td_log("app_access_token已成功分发到腾讯云函数");
        } else {
            /* A conflict (the sink holds a newer record) is no failure to
             * retry; what the sinks serve is learned again next cycle. */
            if (src == TD_ECONFLICT) r->learned = 0;
            else (*failed)++;
            snprintf(err, errlen, "%s", why);
        }
    }
    /* One sink: its own (the seed's) words; several: say none took it. */
    if (!ok && *failed > 1) {
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "token 未能分发到任何目标 (%s)", why);
    }
    return ok;
}

/* The outage is over (r->cur is a good token in service): the recovery
 * is noted, and told to the group when it was told of the failure.
 * handover: not by a renewal of ours -- another instance took the lease
 * over (td_refresher_superseded), and the words say only that. */
static void recovered(td_refresher *r, int64_t now, int handover)
{
    char text[TD_NOTICE_TEXT_MAX];

    if (r->failures)
        note_event(r, TD_EVENT_RECOVERED,
                   handover ? "刷新租约已由其他实例接管，分发中的 token 有效 (本实例此前连续失败 %d 次)"
                            : "刷新已恢复 (此前连续失败 %d 次)",
                   r->failures);
    if (r->failures && r->alerted) {
        td_notice_recovered_text(text, sizeof text, r->o.name, r->failures, td_record_generated(r->cur),
                                 td_record_expires(r->cur), now, handover);
        notify(r, tenant_of(r->cur), text, handover ? "已由其他实例接管" : "刷新已恢复", TD_EVENT_NOTICE);
    }
    if (r->failures)
        td_log(handover ? "✅ 刷新租约已由其他实例接管，分发中的 token 有效：本实例不再重试 (此前连续失败 %d 次)"
                        : "✅ token 刷新已恢复 (此前连续失败 %d 次)",
               r->failures);
    r->failures = 0, r->alerted = 0;
    __atomic_store_n(&r->failing, 0, __ATOMIC_RELAXED);
}

/* A token is in service on at least one sink: tell the group what is new
 * (a recovery, a new token) and plan the next cycle. */
static void succeeded(td_refresher *r, const td_grant *t, int changed, int failed, int64_t now,
                      int64_t *next_ms)
{
    char text[TD_NOTICE_TEXT_MAX];
    long left;

    td_metrics_inc(TD_M_REFRESH_OK);
    recovered(r, now, 0);
    if (changed && r->o.announce) {
        td_notice_updated_text(text, sizeof text, td_record_generated(r->cur), td_record_expires(r->cur),
                               now, r->o.notice_url);
        notify(r, tenant_of(r->cur), text, "Access Token 已更新", TD_EVENT_NOTICE);
    }

    /* The seconds left are the platform's -- but for a token renewed only
     * after its expiry the record's when that is sooner: a repeated fetch
     * may report a full lifetime again (record_for keeps the earlier). */
    left = t->expire;
    if (rule_of(r) == TD_RENEW_AFTER_EXPIRY && td_record_expires(r->cur) - now < left)
        left = (long)(td_record_expires(r->cur) - now);
    if (left > window_of(r)) {
        r->same_in_window = 0;
        *next_ms = renew_delay_ms(r, left);
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
}

/* The wait before the retry of a failed cycle: the backoff, or longer
 * when the platform's rate limit says so (Retry-After,
 * x-ogw-ratelimit-reset) -- but never longer than retry_max, the
 * operator's "longest retry delay", whatever the platform asks; and,
 * while a token is in service, never past its expiry less
 * EXPIRY_MARGIN_S, since a retry then still finds readers served (a
 * platform's reset may be wrong or long, the token's end is not).  Each
 * cut is logged. */
static int64_t retry_delay_ms(td_refresher *r, int rc, const td_grant *t, int64_t now)
{
    int64_t wait = backoff_ms(r, r->failures), cap = r->o.retry_max * 1000, last;

    if (rc == TD_ERATELIMIT && t && t->retry_after >= 0 && t->retry_after * 1000 > wait) {
        wait = t->retry_after * 1000 + rnd_range(r, 0, 1000);
        if (wait > cap + 1000) {
            td_log("⚠️ %s要求 %ld 秒后再试 (限流)，超过最长重试间隔 %ld 秒 (--retry-max)：按 %ld 秒",
                   r->o.provider.ops->label, t->retry_after, r->o.retry_max, r->o.retry_max);
            wait = cap + rnd_range(r, 0, 1000);
        }
    }
    if (t && t->quota_spent) wait = cap + rnd_range(r, 0, 1000);
    if (r->cur && (last = (td_record_expires(r->cur) - EXPIRY_MARGIN_S - now) * 1000) > 0 && wait > last) {
        td_log("⚠️ 在用的 token 还剩 %lld 秒：重试提前到它过期前 %d 秒 (%.1f 秒后，而非 %.1f 秒后)",
               (long long)(td_record_expires(r->cur) - now), EXPIRY_MARGIN_S, (double)last / 1000,
               (double)wait / 1000);
        wait = last;
    }
    return wait;
}

/* No token reached a sink: back off (longer when Feishu's rate limit
 * says so), keep the previous record in service, and alert the group once
 * when the served token is about to run out.
 *
 * A spent monthly quota (t->quota_spent: Feishu's free plan, 99991403) is
 * different: no backoff short of the month's turn helps, and every retry
 * spends a call the tenant no longer has.  So retry only every retry_max,
 * and alert at once -- the tenant must act (upgrade, or do without until
 * the 1st) -- and only once: the alert is not repeated even when it did
 * not arrive, since a chat message spends the same quota (a custom-bot
 * webhook still gets through). */
static void failed_cycle(td_refresher *r, int rc, const td_grant *t, int64_t *next_ms,
                         const char *err)
{
    char text[TD_NOTICE_TEXT_MAX];
    int64_t now = td_clock_now();
    int quota = t && t->quota_spent;

    r->failures++;
    __atomic_store_n(&r->failing, 1, __ATOMIC_RELAXED);
    td_metrics_inc(TD_M_REFRESH_FAILED);
    *next_ms = retry_delay_ms(r, rc, t, now);
    if (r->cur && td_record_expires(r->cur) > now)
        td_log("❌ token 刷新失败 (连续第 %d 次): %s；继续分发当前 token (剩余 %lld 秒)",
               r->failures, err, (long long)(td_record_expires(r->cur) - now));
    else
        td_log("❌ token 刷新失败 (连续第 %d 次): %s；目前没有可用的 token", r->failures, err);
    note_event(r, TD_EVENT_FAILURE, "%s", err);
    if (!r->alerted && r->o.alert_below > 0 &&
        (quota || !r->cur || td_record_expires(r->cur) - now < r->o.alert_below)) {
        td_notice_alert_text(text, sizeof text, r->o.name, r->failures, r->cur ? td_record_expires(r->cur) : 0, now,
                             err, r->o.credentials);
        if ((notify(r, tenant_of(r->cur), text, "刷新失败告警", TD_EVENT_ALERT) == TD_OK || quota) &&
            td_notice_enabled(&r->o.notice))
            r->alerted = 1;
    }
}

/* The platform's verdict on the token in service for a forced cycle, on
 * a platform that can judge one (check): 1 invalid, 0 valid, -1 not
 * known.  A verdict stands for CHECK_INTERVAL_MS -- a report after that
 * asks again, since a token the platform found valid may be rejected
 * later (a forced fetch elsewhere, an early invalidation) -- and reports
 * may cause at most CHECKS_PER_DAY judgements a day, as anyone may report
 * when no read key is set.  An answer that decides nothing (busy, the
 * network) costs nothing.  The log says why a check was not made. */
static int judge(td_refresher *r, const char *tok, int64_t now)
{
    const td_provider *p = &r->o.provider;
    char id[TD_TOKEN_ID_LEN], why[300], fp[TD_FP_LEN];
    int rc;

    td_record_token_id(tok, id);
    td_log_fp(tok, fp);
    if (!strcmp(id, r->checked_id) && now - r->checked_ms < CHECK_INTERVAL_MS) {
        td_log("%s在 %lld 秒前刚确认过 token %s %s：%ld 秒内不再确认", p->ops->label,
               (long long)(now - r->checked_ms) / 1000, fp, r->checked_invalid ? "已失效" : "仍然有效",
               CHECK_INTERVAL_MS / 1000);
        return r->checked_invalid;
    }
    if (ration_left(r->check_at, &r->check_n, now) >= CHECKS_PER_DAY) {
        td_log("⚠️ 今天由报告触发的 token 有效性确认已用 %d 次 (上限 %d)：不再向%s确认 token %s，按普通方式获取",
               r->check_n, CHECKS_PER_DAY, p->ops->label, fp);
        return -1;
    }
    rc = p->ops->check(p, tok, why, sizeof why);
    if (rc != TD_OK && rc != TD_EAUTH) {
        td_log("⚠️ %s无法确认 token %s 是否有效 (%s)：不计入确认次数，按普通方式获取", p->ops->label, fp, why);
        return -1;
    }
    memcpy(r->checked_id, id, sizeof id);
    r->checked_invalid = rc == TD_EAUTH;
    r->checked_ms = now;
    r->check_at[r->check_n++] = now;
    td_log("%s确认 token %s %s", p->ops->label, fp,
           rc == TD_OK ? "仍然有效：不强制换发" : "确已失效：先按普通方式获取，仍是它才强制换发");
    return r->checked_invalid;
}

/* The platform's answer for this cycle.  A forced cycle on a platform
 * whose forced mode revokes the token in service (WeChat) first has the
 * platform judge the token (judge) and spends a forced fetch only on one
 * it found invalid, within a ration: WeChat allows a few a day, and
 * reports may come from anyone without a read key, so they may spend at
 * most FORCED_PER_DAY of them, 30 s apart.  r->same_why says why a forced
 * cycle may get the same token back. */
static int fetch(td_refresher *r, int forced, td_grant *t, char *err, size_t errlen)
{
    const td_provider *p = &r->o.provider;
    int64_t now = td_clock_mono_ms();
    int hard = 0, verdict;

    r->same_why[0] = '\0';
    if (forced && p->ops->check && r->cur) {
        const char *tok = td_record_token(r->cur);
        if ((verdict = judge(r, tok, now)) == 0)
            snprintf(r->same_why, sizeof r->same_why, "%s确认此 token 仍然有效；%s", p->ops->label,
                     p->ops->reissue_rule);
        else if (verdict < 0)
            snprintf(r->same_why, sizeof r->same_why, "%s无法确认此 token 是否有效，没有强制换发；%s", p->ops->label,
                     p->ops->reissue_rule);
        if (verdict == 1) {
            /* A normal fetch first: when someone else already forced a new
             * token, it brings that one, and no forced fetch is spent. */
            int rc = p->ops->fetch(p, 0, t, err, errlen);
            if (rc != TD_OK || strcmp(t->token, tok) != 0) return rc;
            if (ration_left(r->forced_at, &r->forced_n, now) < FORCED_PER_DAY &&
                (!r->forced_n || now - r->forced_at[r->forced_n - 1] >= 30000)) {
                r->forced_at[r->forced_n++] = now;
                hard = 1;
            } else {
                td_log("⚠️ 今天由报告触发的强制换发已用 %d 次 (上限 %d，间隔 30 秒)：按普通方式获取", r->forced_n,
                       FORCED_PER_DAY);
                snprintf(r->same_why, sizeof r->same_why,
                         "%s确认此 token 已失效，但由报告触发的强制换发已用 %d 次 (每天上限 %d 次，间隔 30 秒)，稍后再报告",
                         p->ops->label, r->forced_n, FORCED_PER_DAY);
                return rc;
            }
        }
    }
    return p->ops->fetch(p, hard, t, err, errlen);
}

/* The jsapi_ticket derived from the token in service, kept beside it
 * under NAME.jsapi_ticket (served at /v1/tokens/NAME/jsapi_ticket): fetched
 * right after each new token and again before the ticket's own expiry,
 * only by the refresher that holds the token's lease, so never by two
 * instances.  Only in serve (the local store holds it). */
static void ticket_step(td_refresher *r, int changed, int64_t *next_ms)
{
    const td_provider *p = &r->o.provider;
    const td_sink *local = NULL;
    char key[TD_NAME_MAX + sizeof TD_TICKET_SUFFIX], err[512], fp[TD_FP_LEN], e[TD_TIME_LEN];
    td_grant g;
    td_record *rec = NULL;
    int64_t now = td_clock_now(), gen, wait;
    int rc;

    if (!r->o.ticket || !p->ops->ticket || !r->cur) return;
    for (size_t i = 0; i < r->o.sinks->n; i++)
        if (r->o.sinks->v[i].kind == TD_SINK_LOCAL) local = &r->o.sinks->v[i];
    if (!local) return;
    snprintf(key, sizeof key, "%s%s", r->o.name, TD_TICKET_SUFFIX);
    if (!r->ticket_exp) { /* after a start: what is served already */
        td_snap *s = td_api_snapshot(local->api, key);
        if (s) r->ticket_exp = s->expire_ts, r->ticket_gen = s->generated_ts;
        td_snap_release(s);
    }
    if (changed || r->ticket_exp - now < TICKET_WINDOW) {
        if ((rc = p->ops->ticket(p, td_record_token(r->cur), &g, err, sizeof err)) == TD_OK) {
            struct td_record_fields f = {.access_token = g.token, .expire_ts = now + g.expire,
                                         .source = r->o.source, .usage = r->o.usage, .platform = r->o.platform,
                                         .provider = p->ops->kind, .derived_from = r->o.name};
            f.generated_ts = gen = r->ticket_gen >= now ? r->ticket_gen + 1 : now;
            if ((rc = td_record_new(&f, &rec)) == TD_OK &&
                (rc = td_api_store_record(local->api, key, rec, err, sizeof err)) == TD_OK) {
                r->ticket_exp = f.expire_ts, r->ticket_gen = gen;
                td_log("已获取新的 jsapi_ticket %s (%s，过期时间 %s)", td_log_fp(g.token, fp), r->o.name,
                       td_clock_format(f.expire_ts, e));
            }
            td_record_free(rec);
        }
        memset(&g, 0, sizeof g);
        if (rc != TD_OK) {
            td_log("❌ jsapi_ticket 获取失败 (%s): %s；%.1f 秒后重试", r->o.name, err, (double)backoff_ms(r, 1) / 1000);
            if (backoff_ms(r, 1) < *next_ms) *next_ms = backoff_ms(r, 1);
            return;
        }
    }
    wait = (r->ticket_exp - TICKET_WINDOW - now) * 1000 + 1000;
    if (wait > 0 && wait < *next_ms) *next_ms = wait;
}

/* One fetch-and-push.  Sets *next_ms (delay until the next cycle).
 * Returns TD_OK when at least one sink holds the fetched token. */
static int cycle(td_refresher *r, int forced, int64_t *next_ms, int *changed, char *err, size_t errlen)
{
    td_grant *t = NULL;
    td_record *rec = NULL;
    int64_t now;
    int rc, failed = 0, same = 0, cold;

    learn_current(r);
    /* A quiet start (--store memory: every instance fetches for itself)
     * takes the token Feishu hands out now as the one already in service:
     * announced by whoever saw it replace another, not by every instance
     * that scales out. */
    cold = r->o.quiet_start && !r->served && !r->cur;
    if (!(t = malloc(sizeof *t))) {
        rc = TD_ENOMEM;
        snprintf(err, errlen, "内存不足");
        goto fail;
    }
    if ((rc = fetch(r, forced, t, err, errlen)) != TD_OK) goto fail;
    now = td_clock_now();
    if ((rc = record_for(r, t, forced, now, &rec, &same, err, errlen)) != TD_OK) goto fail;
    if (!deliver(r, rec, cold, &failed, err, errlen)) {
        rc = TD_EUNAVAIL;
        if (same) r->cur = rec, rec = NULL; /* it is still what the sinks had */
        goto fail;
    }
    td_record_free(r->cur); /* in service now */
    r->cur = rec, rec = NULL;
    note_current(r);
    if (cold)
        td_log("冷启动: %s返回的是在用的 token，只在本实例分发 (不发群通知，不推送其他目标)",
               r->o.provider.ops->label);
    succeeded(r, t, !same && !cold, failed, now, next_ms);
    ticket_step(r, !same, next_ms);
    r->served = 1;
    *changed = !same;
    rc = TD_OK;
    goto out;
fail:
    if (rc == TD_ECANCELED) { /* shutting down: not a failure of Feishu or a sink */
        td_log("刷新已中止: 正在停止");
        *next_ms = LEASE_RETRY_MS;
        goto out;
    }
    /* err quotes the platform's or a sink's words through bounded
     * buffers: made whole once here, for the log, the alert, the status
     * page and the command's last line alike. */
    td_utf8_mend(err, strlen(err));
    failed_cycle(r, rc, t, next_ms, err);
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
    if (rc == TD_OK) r->last_ok = td_clock_now();
    else if (rc != TD_ECANCELED) r->last_fail = td_clock_now(), snprintf(r->last_err, sizeof r->last_err, "%s", err),
             td_utf8_mend(r->last_err, strlen(r->last_err));
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int td_refresher_cycle(td_refresher *r, char *err, size_t errlen)
{
    int64_t next;
    int changed = 0;
    return cycle(r, 0, &next, &changed, err, errlen);
}

/* Ends the forced refresh under way (lock held) with its answer. */
static void force_done(td_refresher *r, int rc, const char *why)
{
    if (r->fz.state != FORCE_PENDING) return;
    r->fz.state = FORCE_DONE;
    __atomic_store_n(&r->forcing, 0, __ATOMIC_RELEASE);
    r->fz.rc = rc;
    memcpy(r->fz.covered, r->cur_id, sizeof r->fz.covered);
    r->fz.done_ms = td_clock_mono_ms();
    snprintf(r->fz.why, sizeof r->fz.why, "%s", why ? why : "");
    if (r->fz.reports > 1)
        td_log("这次强制刷新回答了 %ld 个无效报告 (token id %s)", r->fz.reports, r->fz.id);
    pthread_cond_broadcast(&r->done);
}

static void *loop(void *ud)
{
    td_refresher *r = ud;
    int64_t due = td_clock_mono_ms(); /* first cycle right away */
    char err[512];

    pthread_mutex_lock(&r->lock);
    __atomic_store_n(&r->due_ms, due, __ATOMIC_RELAXED);
    for (;;) {
        int forced, rc = TD_OK, hold = 1;
        int64_t next = LEASE_RETRY_MS;

        while (!r->stop && !r->force && !r->run_now && td_clock_mono_ms() < due) {
            struct timespec ts;
            td_clock_mono_deadline(due, &ts);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        if (r->stop) break;
        forced = r->force;
        /* Late: the process was frozen past the due time (SCF between
         * invocations), so readers wait for this cycle (td_refresher_overdue). */
        __atomic_store_n(&r->late, r->run_now || td_freeze_since(due), __ATOMIC_RELAXED);
        __atomic_store_n(&r->cycle_mark, td_freeze_mark(), __ATOMIC_RELAXED);
        r->force = r->run_now = 0;
        __atomic_store_n(&r->cycling, 1, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&r->lock);

        if (r->o.may_refresh && (hold = r->o.may_refresh(r->o.lease_ud)) != 1) {
            learn_current(r); /* another instance refreshes; keep our view current */
            /* Our failures end when, since the holder took over, the
             * token in service is valid and not yet in its window --
             * whether the holder renewed it, got the same one back
             * (Feishu hands out the token in service until its last 30
             * minutes: a healthy holder leaves the record as it was), or
             * a producer POSTed it: nothing is at risk, and a holder
             * failing too alerts on its own when that comes again.  The
             * recovery is told where the failure was.  A store that
             * could not say (-1) leaves them: one outage, one alert, one
             * recovery. */
            if (hold == 0 && r->failures && r->cur && outside_window(r, td_record_expires(r->cur)))
                recovered(r, td_clock_now(), 1);
            pthread_mutex_lock(&r->lock);
            r->failures_seen = r->failures;
            if (forced) force_done(r, TD_EUNAVAIL, "本实例已不持有刷新租约，未刷新");
            rc = TD_EUNAVAIL;
        } else {
            int changed = 0;
            rc = cycle(r, forced, &next, &changed, err, sizeof err);
            td_log("%s: %.1f 秒后", rc == TD_OK ? "下次刷新" : "重试", (double)next / 1000);
            /* TD_ETIMEOUT is td_refresher_force's "still running" (202): a
             * fetch that timed out is a refresh that failed (502). */
            if (rc == TD_ETIMEOUT) rc = TD_EHTTP;
            pthread_mutex_lock(&r->lock);
            if (forced)
                force_done(r, rc != TD_OK ? rc : changed ? TD_OK : TD_ECONFLICT,
                           rc != TD_OK ? err
                           : changed   ? "已换发新 token"
                           : r->same_why[0] ? r->same_why
                                            : r->o.provider.ops->reissue_rule);
        }
        due = td_clock_mono_ms() + next;
        __atomic_store_n(&r->due_ms, due, __ATOMIC_RELAXED);
        __atomic_store_n(&r->cycling, 0, __ATOMIC_RELEASE);
        r->last_rc = rc;
        r->gen++;
        pthread_cond_broadcast(&r->done);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int td_refresher_overdue(td_refresher *r, int64_t expire_ts)
{
    int64_t due = __atomic_load_n(&r->due_ms, __ATOMIC_RELAXED), now = td_clock_mono_ms();

    if (expire_ts < 0) expire_ts = __atomic_load_n(&r->cur_exp, __ATOMIC_RELAXED);
    /* Inside the window, or expired (what GET judges as expired: a window
     * of 0 must not leave the last second out). */
    if (outside_window(r, expire_ts)) return 0;
    /* Backing off after a failure, the schedule is the retry's: until the
     * retry is due, readers get the old token while it is valid rather
     * than wait, and are no reason to ask the platform sooner.  Once it is
     * due and has not run (the thread was frozen: SCF), it is overdue like
     * any cycle -- else one failure before a freeze would turn fresh on
     * read, and the SCF timer, off until a cycle succeeds. */
    if (__atomic_load_n(&r->failing, __ATOMIC_RELAXED) && now < due) return 0;
    /* A cycle that started on schedule is the normal path at work: the
     * token in service still has most of the window, and readers get it
     * at once however slow the platform is.  One that started late (the
     * thread was frozen: SCF) or for a reader is what readers wait for,
     * as they do when less than half the window is left anyway, or the
     * token has run out (a window of 0: WeCom's renewal at its expiry).
     * So is one that a freeze overlapped: it began on time, but its
     * requests are as old as the freeze (a thawed non-holder's look at
     * the lease, a fetch SCF stopped), and the window went on meanwhile. */
    if (__atomic_load_n(&r->cycling, __ATOMIC_ACQUIRE))
        return __atomic_load_n(&r->late, __ATOMIC_RELAXED) ||
               td_freeze_since(__atomic_load_n(&r->cycle_mark, __ATOMIC_RELAXED)) ||
               expire_ts - td_clock_now() < window_of(r) / 2 ||
               expire_ts <= td_clock_now(); /* nothing to serve meanwhile: a window of 0 (WeCom) ends here */
    if (now >= due) return 1;
    /* A platform that renews only after the expiry (WeCom): the renewal is
     * due a moment after it, so a reader of the expired token waits those
     * few seconds for the new one instead of getting nothing. */
    return rule_of(r) == TD_RENEW_AFTER_EXPIRY && expire_ts <= td_clock_now() && due - now <= 3000;
}

long td_refresher_window(const td_refresher *r) { return window_of(r); }

int td_refresher_superseded(const td_refresher *r, int64_t expire_ts) { return outside_window(r, expire_ts); }

int td_refresher_failing(td_refresher *r, char *err, size_t errlen, int64_t *retry_ms)
{
    int n;

    pthread_mutex_lock(&r->lock);
    if ((n = r->failures_seen) > 0) {
        int64_t in_ms = __atomic_load_n(&r->due_ms, __ATOMIC_RELAXED) - td_clock_mono_ms();
        snprintf(err, errlen, "%s", r->last_err);
        *retry_ms = in_ms > 0 ? in_ms : 0;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

const char *td_refresher_provider(const td_refresher *r) { return r->o.provider.ops->kind; }

int td_refresher_forcing(td_refresher *r) { return __atomic_load_n(&r->forcing, __ATOMIC_ACQUIRE); }

void td_refresher_kick(td_refresher *r)
{
    pthread_mutex_lock(&r->lock);
    if (r->running && !__atomic_load_n(&r->cycling, __ATOMIC_ACQUIRE) && !r->run_now &&
        td_clock_mono_ms() >= __atomic_load_n(&r->due_ms, __ATOMIC_RELAXED)) {
        r->run_now = 1;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
}

int td_refresher_freshen(td_refresher *r, long wait_ms, char *why, size_t whylen)
{
    int64_t deadline = td_clock_mono_ms() + wait_ms;
    unsigned long gen;
    int rc;

    pthread_mutex_lock(&r->lock);
    if (!r->running) {
        pthread_mutex_unlock(&r->lock);
        snprintf(why, whylen, "刷新线程未运行");
        return TD_EUNAVAIL;
    }
    /* The caller judged the refresh overdue a moment ago, maybe on
     * another thread before its request reached a worker: the cycle it
     * saw running or due may have ended since.  Then the next one is
     * hours away, and waiting for it would only hold the reader up to
     * wait_ms for nothing: that cycle's outcome is the answer. */
    gen = r->gen;
    if (!td_refresher_overdue(r, -1)) {
        rc = r->last_rc;
        snprintf(why, whylen, "%s", rc == TD_OK ? "已刷新" : r->last_err);
        pthread_mutex_unlock(&r->lock);
        return rc;
    }
    /* One cycle for every waiting request: the one running, or one now. */
    if (!__atomic_load_n(&r->cycling, __ATOMIC_ACQUIRE) && !r->run_now &&
        td_clock_mono_ms() >= __atomic_load_n(&r->due_ms, __ATOMIC_RELAXED)) {
        r->run_now = 1;
        pthread_cond_signal(&r->cond);
    }
    while (r->gen == gen && !r->stop && td_clock_mono_ms() < deadline) {
        struct timespec ts;
        td_clock_mono_deadline(deadline, &ts);
        pthread_cond_timedwait(&r->done, &r->lock, &ts);
    }
    if (r->gen != gen) {
        rc = r->last_rc;
        snprintf(why, whylen, "%s", rc == TD_OK ? "已刷新" : r->last_err);
    } else {
        rc = r->stop ? TD_ECANCELED : TD_ETIMEOUT;
        snprintf(why, whylen, "%s", r->stop ? "正在停止" : "刷新进行中");
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int td_refresher_start(td_refresher *r, char *err, size_t errlen)
{
    int e;

    if (r->running) return TD_OK;
    r->stop = 0;
    if ((e = pthread_create(&r->thread, NULL, loop, r)) != 0) {
        snprintf(err, errlen, "无法启动刷新线程: %s", strerror(e));
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
    pthread_cond_broadcast(&r->done); /* reporters waiting for a forced cycle */
    pthread_mutex_unlock(&r->lock);
    /* A cycle in flight finishes first: its HTTP calls are bounded by
     * their timeouts, so this wait is too. */
    pthread_join(r->thread, NULL);
    r->running = 0;
}

/* A report of id, under r->lock: answered without a fetch (1, *rc and
 * why set), or left to the forced fetch under way (0; with start, one is
 * started when none runs), or -1: none runs and start is 0. */
static int force_join(td_refresher *r, const char *id, int64_t now, int start, int *rc, char *why,
                      size_t whylen)
{
    if (r->cur_id[0][0] && strcmp(id, r->cur_id[0]) != 0 && strcmp(id, r->cur_id[1]) != 0) {
        snprintf(why, whylen, "该 token 已被换新");
        *rc = TD_OK;
        return 1;
    }
    /* One fetch answers every report of one token: while it runs, and for
     * force_interval after it, every report of the tokens it judged
     * (Feishu's rate limit stays far, and reports without a read key
     * cannot make us hammer Feishu).  A token that fetch brought is one
     * Feishu issues now: asking again would hand it back. */
    if (r->fz.state == FORCE_DONE && now - r->fz.done_ms < r->o.force_interval_ms &&
        (!strcmp(r->fz.id, id) || !strcmp(r->fz.covered[0], id) || !strcmp(r->fz.covered[1], id))) {
        int brought = r->fz.rc == TD_OK && strcmp(r->fz.id, id) != 0;
        snprintf(why, whylen, "%s", brought ? "该 token 刚由强制刷新换发" : r->fz.why);
        *rc = brought ? TD_ECONFLICT : r->fz.rc;
        /* Said once per outcome: a flood of reports is one line. */
        if (!r->fz.repeats++)
            td_log("收到 token 无效的报告 (token id %s)：%lld 秒前刚处理过它，%ld 秒内不再向平台确认或刷新，"
                   "按那次的结果回答 (%s)", id, (long long)(now - r->fz.done_ms) / 1000,
                   r->o.force_interval_ms / 1000, why);
        return 1;
    }
    if (!start) return r->fz.state == FORCE_PENDING ? 0 : -1;
    if (r->fz.state == FORCE_PENDING) {
        r->fz.reports++;
    } else {
        snprintf(r->fz.id, sizeof r->fz.id, "%s", id);
        r->fz.state = FORCE_PENDING;
        __atomic_store_n(&r->forcing, 1, __ATOMIC_RELEASE);
        r->fz.reports = 1;
        r->fz.repeats = 0;
        r->fz.asked_ms = now;
        r->force = 1;
        pthread_cond_signal(&r->cond);
        td_log("收到 token 无效的报告 (token id %s)，立即强制刷新一次", id);
    }
    return 0;
}

int td_refresher_force_now(td_refresher *r, const char *name, const char *id, int start, int *pending,
                           char *why, size_t whylen)
{
    int rc = TD_OK, j;

    *pending = 0;
    if (!r || !name || strcmp(name, r->o.name) != 0) {
        snprintf(why, whylen, "本实例不刷新 token '%s'", name ? name : "");
        return TD_ENOTFOUND;
    }
    pthread_mutex_lock(&r->lock);
    if (r->stop) {
        snprintf(why, whylen, "正在停止");
        rc = TD_ECANCELED;
    } else if ((j = force_join(r, id, td_clock_mono_ms(), start, &rc, why, whylen)) == 0) {
        snprintf(why, whylen, "强制刷新进行中");
        rc = TD_ETIMEOUT;
        *pending = 1;
    } else if (j < 0) {
        rc = TD_REFRESHER_UNKNOWN;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int td_refresher_force(td_refresher *r, const char *name, const char *id, long wait_ms, char *why,
                       size_t whylen)
{
    int64_t now = td_clock_mono_ms(), deadline = now + wait_ms;
    int rc;

    if (!r || !name || strcmp(name, r->o.name) != 0) {
        snprintf(why, whylen, "本实例不刷新 token '%s'", name ? name : "");
        return TD_ENOTFOUND;
    }
    pthread_mutex_lock(&r->lock);
    if (force_join(r, id, now, 1, &rc, why, whylen) == 1) goto out;
    while (r->fz.state == FORCE_PENDING && !r->stop && td_clock_mono_ms() < deadline) {
        struct timespec ts;
        td_clock_mono_deadline(deadline, &ts);
        pthread_cond_timedwait(&r->done, &r->lock, &ts);
    }
    if (r->stop) {
        snprintf(why, whylen, "正在停止");
        rc = TD_ECANCELED;
    } else if (r->fz.state == FORCE_PENDING) {
        snprintf(why, whylen, "强制刷新进行中");
        rc = TD_ETIMEOUT;
    } else if (!strcmp(r->fz.id, id)) {
        snprintf(why, whylen, "%s", r->fz.why);
        rc = r->fz.rc;
    } else { /* the fetch under way was for another report: judge by what is in service now */
        int replaced = strcmp(id, r->cur_id[0]) != 0 && strcmp(id, r->cur_id[1]) != 0;
        snprintf(why, whylen, "%s", replaced ? "该 token 已被换新" : r->fz.why);
        rc = replaced ? TD_OK : r->fz.rc;
    }
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void td_refresher_status(td_refresher *r, td_refresher_state *st)
{
    pthread_mutex_lock(&r->lock);
    st->cycles = r->cycles;
    st->forced = r->forced;
    st->failures = r->failures_seen;
    st->last_ok = r->last_ok;
    st->last_fail = r->last_fail;
    snprintf(st->last_err, sizeof st->last_err, "%s", r->last_err);
    st->provider = r->o.provider.ops->kind;
    st->cycling = __atomic_load_n(&r->cycling, __ATOMIC_ACQUIRE);
    st->next_due = 0;
    if (r->running && !r->stop) { /* the thread's monotonic due time, as wall time */
        int64_t in_ms = __atomic_load_n(&r->due_ms, __ATOMIC_RELAXED) - td_clock_mono_ms();
        st->next_due = td_clock_now() + (in_ms > 0 ? (in_ms + 999) / 1000 : 0);
    }
    st->nsinks = r->o.sinks->n < TD_SINKS_MAX ? r->o.sinks->n : TD_SINKS_MAX;
    memcpy(st->sinks, r->sink_st, sizeof st->sinks);
    st->nevents = r->nevents;
    memcpy(st->events, r->events, sizeof st->events);
    pthread_mutex_unlock(&r->lock);
}
