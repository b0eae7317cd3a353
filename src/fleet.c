/* fleet -- see fleet.h. */
#define _GNU_SOURCE
#include "fleet.h"
#include "clock.h"
#include "log.h"
#include "record.h"
#include "strbuf.h"
#include "tokendist.h"
#include "workq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define NAMES_MAX 64            /* tokens this process refreshes */
#define WAITERS_MAX 256         /* reports forwarded and not answered yet */
#define INBOX_THREADS 2
#define INBOX_QUEUE 64
#define REPLY_MARGIN_MS 1000    /* the holder answers this much before the reporter gives up */
#define REQ_ID_LEN 17
#define REMOTE_SLACK_S 60       /* a holder this late with a renewal is asked to hurry */
                                /* (a quarter of the window, when that is less) */
#define REMOTE_ASK_MS 5000      /* and asked at most this often per token */

typedef struct entry {
    char name[TD_NAME_MAX + 1];
    char lease_key[TD_NAME_MAX + 16];
    td_lease *lease;
    td_refresher *r;            /* set by td_fleet_attach; NULL before */
    int64_t last_ask_ms;        /* atomic: monotonic ms we last asked the holder to freshen */
    int asking;                 /* atomic: an ask of the holder is under way (kick) */
} entry;

/* A report forwarded to the holder, waiting for its answer. */
typedef struct waiter {
    char req[REQ_ID_LEN];
    int done, rc;
    char why[300];
} waiter;

struct td_fleet {
    td_store *store;
    char me[TD_LEASE_OWNER_MAX];    /* our owner id: the leases' value, our inbox */
    entry *v;
    size_t n;
    td_workq *inbox;            /* forced refreshes other servers asked for */
    int listening;

    pthread_mutex_t lock;       /* guards the waiters */
    pthread_cond_t answered;
    waiter *w[WAITERS_MAX];
    td_api_hooks hooks;         /* what the API calls (td_fleet_hooks) */
};

/* A request another server forwarded to us, for an inbox worker: an
 * invalid report, or a reader's "your renewal is overdue". */
typedef struct job {
    td_fleet *f;
    int due;
    char req[REQ_ID_LEN], name[TD_NAME_MAX + 1], id[TD_TOKEN_ID_LEN], from[TD_LEASE_OWNER_MAX];
    long wait_ms;
} job;

int td_fleet_new(td_fleet **out, td_store *store, char *err, size_t errlen)
{
    td_fleet *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f || !(f->v = calloc(NAMES_MAX, sizeof *f->v))) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return TD_ENOMEM;
    }
    f->store = store;
    td_lease_new_owner(f->me, sizeof f->me);
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->answered, &ca);
    pthread_condattr_destroy(&ca);
    *out = f;
    return TD_OK;
}

static entry *find(td_fleet *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->v[i].name, name)) return &f->v[i];
    return NULL;
}

int td_fleet_add(td_fleet *f, const char *name, td_lease **lease, char *err, size_t errlen)
{
    entry *e;

    if (find(f, name) || f->n == NAMES_MAX) {
        snprintf(err, errlen, "fleet: token '%s' twice, or more than %d tokens", name, NAMES_MAX);
        return TD_EINVAL;
    }
    e = &f->v[f->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->lease_key, sizeof e->lease_key, "refresh:%s", name);
    if (td_lease_new(&e->lease, f->store, e->lease_key, f->me, TD_LEASE_TTL_MS, err, errlen) != TD_OK)
        return TD_ERR;
    if (td_lease_keep(e->lease, err, errlen) != TD_OK) {
        td_lease_free(e->lease);
        e->lease = NULL;
        return TD_ERR;
    }
    f->n++;
    *lease = e->lease;
    return TD_OK;
}

int td_fleet_may_refresh(void *lease)
{
    char err[256];
    int rc = td_lease_hold(lease, err, sizeof err);

    if (rc < 0) td_log("⚠️ 无法确认刷新租约，本轮不刷新: %s", err);
    return rc == 1;
}

void td_fleet_attach(td_fleet *f, const char *name, td_refresher *r)
{
    entry *e = find(f, name);
    if (e) __atomic_store_n(&e->r, r, __ATOMIC_RELEASE);
}

/* --- the holder's side ---------------------------------------------------- */

/* Reports a forwarded report's outcome to whoever sent it. */
static void reply(td_fleet *f, const char *to, const char *req, int rc, const char *why)
{
    char msg[TD_STORE_MSG_MAX], err[300];

    snprintf(msg, sizeof msg, "result %s %d %.900s", req, rc, why);
    if (td_store_send(f->store, to, msg, err, sizeof err) != TD_OK)
        td_log("⚠️ 无法把强制刷新的结果告诉 %s: %s", to, err);
}

static void run_job(void *ud)
{
    job *j = ud;
    entry *e = find(j->f, j->name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char why[300], err[256];
    int rc;

    /* td_lease_held is the keeper's last outcome, which a freeze outlives:
     * a holder thawed after one (SCF) may read the ask before its keeper
     * has renewed, while the store still names it the holder.  One round
     * trip settles that (an inbox worker may block) instead of refusing
     * the ask the store routed here, and the asker's readers with it. */
    if (!r) {
        snprintf(why, sizeof why, "收到报告的实例不刷新 token '%s'", j->name);
        rc = TD_ENOTFOUND;
    } else if (!td_lease_held(e->lease) && td_lease_hold(e->lease, err, sizeof err) != 1) {
        /* Our own view of the lease lapses before the key does: a holder
         * paused past that margin (SCF freezes it) is asked by a server
         * that found it holding the key, and the store decides, not the
         * view -- answering "not the holder" would send the asker's
         * readers off with the old token while we renew it. */
        snprintf(why, sizeof why, "本实例已不持有 %s 的刷新租约", j->name);
        rc = TD_EUNAVAIL;
    } else if (j->due) {
        /* Only when our own schedule agrees: a reader's view is no reason
         * to ask Feishu more often than the renewal needs. */
        rc = td_refresher_overdue(r, -1) ? td_refresher_freshen(r, j->wait_ms, why, sizeof why) : TD_OK;
        if (rc == TD_OK) snprintf(why, sizeof why, "已刷新");
    } else {
        td_log("转交来的 token 无效报告 (来自 %s)", j->from);
        rc = td_refresher_force(r, j->name, j->id, j->wait_ms, why, sizeof why);
    }
    reply(j->f, j->from, j->req, rc, why);
    free(j);
}

static int field(const char **p, char *out, size_t len)
{
    size_t n = strcspn(*p, " ");
    if (n == 0 || n >= len) return 0;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    if (**p == ' ') (*p)++;
    return 1;
}

static void answered(td_fleet *f, const char *req, int rc, const char *why)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < WAITERS_MAX; i++)
        if (f->w[i] && !strcmp(f->w[i]->req, req)) {
            f->w[i]->done = 1;
            f->w[i]->rc = rc;
            snprintf(f->w[i]->why, sizeof f->w[i]->why, "%s", why);
            pthread_cond_broadcast(&f->answered);
        }
    pthread_mutex_unlock(&f->lock);
}

/* td_store_msg_cb, on the store's thread: never waits. */
static void on_message(void *ud, const char *msg)
{
    td_fleet *f = ud;
    const char *p = msg;
    char kind[16], req[REQ_ID_LEN], num[24];

    if (!field(&p, kind, sizeof kind) || !field(&p, req, sizeof req)) return;
    if (!strcmp(kind, "invalid") || !strcmp(kind, "due")) {
        job *j = calloc(1, sizeof *j);
        if (!j) return;
        j->f = f;
        j->due = kind[0] == 'd';
        memcpy(j->req, req, sizeof req);
        if (!field(&p, j->name, sizeof j->name) || !field(&p, j->id, sizeof j->id) ||
            !field(&p, j->from, sizeof j->from) || !field(&p, num, sizeof num) ||
            !td_record_name_valid(j->name, strlen(j->name))) {
            free(j);
            return;
        }
        j->wait_ms = strtol(num, NULL, 10);
        if (j->wait_ms < 0 || j->wait_ms > 60000) j->wait_ms = 0;
        if (!f->inbox || td_workq_submit(f->inbox, run_job, j) != TD_OK) {
            reply(f, j->from, j->req, TD_EUNAVAIL, "持有租约的实例正忙，请稍后重试");
            free(j);
        }
    } else if (!strcmp(kind, "result") && field(&p, num, sizeof num)) {
        answered(f, req, (int)strtol(num, NULL, 10), p);
    }
}

int td_fleet_listen(td_fleet *f, char *err, size_t errlen)
{
    if (f->listening || !td_store_has_messages(f->store)) return TD_OK;
    if (td_workq_new(&f->inbox, INBOX_THREADS, INBOX_QUEUE, err, errlen) != TD_OK) return TD_ERR;
    if (td_store_listen(f->store, f->me, on_message, f, err, errlen) != TD_OK) return TD_ERR;
    f->listening = 1;
    return TD_OK;
}

/* --- the reporter's side -------------------------------------------------- */

static int add_waiter(td_fleet *f, waiter *w)
{
    int ok = 0;

    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < WAITERS_MAX && !ok; i++)
        if (!f->w[i]) f->w[i] = w, ok = 1;
    pthread_mutex_unlock(&f->lock);
    return ok;
}

static void drop_waiter(td_fleet *f, waiter *w)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < WAITERS_MAX; i++)
        if (f->w[i] == w) f->w[i] = NULL;
    pthread_mutex_unlock(&f->lock);
}

/* Sends the report to holder and waits for its answer. */
static int forward(td_fleet *f, const char *verb, const char *holder, const char *name, const char *id,
                   long wait_ms, char *why, size_t whylen)
{
    waiter w = {0};
    unsigned char rnd[8];
    char msg[TD_STORE_MSG_MAX], err[300];
    int64_t deadline = td_clock_mono_ms() + wait_ms;
    int rc;

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 0, sizeof rnd);
    for (int i = 0; i < 8; i++) snprintf(w.req + 2 * i, 3, "%02x", rnd[i]);
    if (!add_waiter(f, &w)) {
        snprintf(why, whylen, "正在转交的报告过多，请稍后重试");
        return TD_EUNAVAIL;
    }
    snprintf(msg, sizeof msg, "%s %s %s %s %s %ld", verb, w.req, name, id, f->me,
             wait_ms > REPLY_MARGIN_MS ? wait_ms - REPLY_MARGIN_MS : 0);
    if ((rc = td_store_send(f->store, holder, msg, err, sizeof err)) != TD_OK) {
        drop_waiter(f, &w);
        snprintf(why, whylen, "无法把报告转交给持有刷新租约的实例 %s: %s", holder, err);
        return rc == TD_ENOTFOUND ? TD_EUNAVAIL : rc;
    }
    pthread_mutex_lock(&f->lock);
    while (!w.done && td_clock_mono_ms() < deadline) {
        struct timespec ts;
        td_clock_mono_deadline(deadline, &ts);
        pthread_cond_timedwait(&f->answered, &f->lock, &ts);
    }
    pthread_mutex_unlock(&f->lock);
    drop_waiter(f, &w);
    if (!w.done) {
        snprintf(why, whylen, "已转交给持有刷新租约的实例 %s，刷新进行中", holder);
        return TD_ETIMEOUT;
    }
    snprintf(why, whylen, "%s", w.why);
    return w.rc;
}

int td_fleet_report(void *fleet, const char *name, const char *token, long wait_ms, char *why,
                    size_t whylen)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char id[TD_TOKEN_ID_LEN], key[TD_NAME_MAX + 16], holder[TD_LEASE_OWNER_MAX], err[300];
    int rc;

    td_record_token_id(token, id);
    if (r && td_lease_held(e->lease)) return td_refresher_force(r, name, id, wait_ms, why, whylen);
    snprintf(key, sizeof key, "refresh:%s", name);
    if (!td_store_has_messages(f->store)) {
        /* A store one process owns has no lease: nobody else refreshes. */
        if (!f->store->ops->lease) {
            snprintf(why, whylen, "本服务器不刷新 token '%s' (未配置飞书凭证 FEISHU_APP_ID/FEISHU_APP_SECRET)", name);
            return TD_ENOTFOUND;
        }
        /* A shared store without messages (S3): the holder refreshes on
         * its schedule, but the report cannot reach it from here. */
        if (td_store_lease_owner(f->store, key, holder, sizeof holder, err, sizeof err) != TD_OK)
            snprintf(holder, sizeof holder, "(暂无)");
        snprintf(why, whylen,
                 "本实例%s不持有 token '%s' 的刷新租约 (持有者: %s)，而存储 %s 不能在服务器之间转交报告："
                 "请稍后重试，或向持有租约的实例报告", r ? "" : "不刷新 token 也", name, holder,
                 f->store->ops->scheme);
        return TD_EUNAVAIL;
    }
    if ((rc = td_store_lease_owner(f->store, key, holder, sizeof holder, err, sizeof err)) == TD_ENOTFOUND) {
        snprintf(why, whylen,
                 "没有实例持有 token '%s' 的刷新租约：配置了飞书凭证的实例会在 %d 秒内接管；"
                 "若没有实例配置凭证，就没有实例能刷新它", name, TD_LEASE_TTL_MS / 1000);
        return TD_EUNAVAIL;
    }
    if (rc != TD_OK) {
        snprintf(why, whylen, "无法查询刷新租约: %s", err);
        return TD_EUNAVAIL;
    }
    if (!strcmp(holder, f->me)) { /* ours, though the keeper has not said so yet */
        if (r) return td_refresher_force(r, name, id, wait_ms, why, whylen);
        snprintf(why, whylen, "本实例持有租约但没有刷新器");
        return TD_EUNAVAIL;
    }
    return forward(f, "invalid", holder, name, id, wait_ms, why, whylen);
}

/* The holder of name's lease, or TD_EUNAVAIL with why said. */
static int holder_of(td_fleet *f, const char *name, char holder[TD_LEASE_OWNER_MAX], char *why, size_t whylen)
{
    char key[TD_NAME_MAX + 16], err[300];
    int rc;

    snprintf(key, sizeof key, "refresh:%s", name);
    if ((rc = td_store_lease_owner(f->store, key, holder, TD_LEASE_OWNER_MAX, err, sizeof err)) == TD_OK) return TD_OK;
    snprintf(why, whylen, "%s", rc == TD_ENOTFOUND ? "没有实例持有刷新租约" : err);
    return TD_EUNAVAIL;
}

/* td_api_hooks.stale: this process refreshes name and its refresh is
 * overdue (the holder's own rule), or another server holds the lease and
 * is REMOTE_SLACK_S late with the renewal (asked at most every
 * REMOTE_ASK_MS). */
static int stale(void *fleet, const char *name, int64_t expire_ts)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    long window, slack;

    if (!r) return 0;
    if (td_lease_held(e->lease)) return td_refresher_overdue(r, expire_ts);
    if (!td_store_has_messages(f->store)) return 0;
    window = td_refresher_window(r), slack = window / 4 < REMOTE_SLACK_S ? window / 4 : REMOTE_SLACK_S;
    if (expire_ts - td_clock_now() >= window - slack) return 0;
    /* While an ask is under way, readers wait for its answer (the new
     * record comes first, over the store); after it, for REMOTE_ASK_MS,
     * they get what is served. */
    return __atomic_load_n(&e->asking, __ATOMIC_ACQUIRE) ||
           td_clock_mono_ms() - __atomic_load_n(&e->last_ask_ms, __ATOMIC_RELAXED) >= REMOTE_ASK_MS;
}

/* An inbox worker's ask of the holder on behalf of parked readers. */
typedef struct ask_job {
    td_fleet *f;
    entry *e;
} ask_job;

static void run_ask(void *ud)
{
    ask_job *j = ud;
    char why[300], holder[TD_LEASE_OWNER_MAX];

    if (holder_of(j->f, j->e->name, holder, why, sizeof why) == TD_OK && strcmp(holder, j->f->me) != 0) {
        td_log("token %s 已进入换发窗口但持有租约的实例 %s 尚未换新：请它立即刷新", j->e->name, holder);
        forward(j->f, "due", holder, j->e->name, "-", TD_API_FRESHEN_WAIT_MS, why, sizeof why);
    }
    __atomic_store_n(&j->e->asking, 0, __ATOMIC_RELEASE);
    free(j);
}

/* td_api_hooks.kick: start the overdue refresh, never waiting -- here, or
 * by asking the holder from one of the fleet's own threads. */
static void kick(void *fleet, const char *name)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    ask_job *j;

    if (!r) return;
    if (td_lease_held(e->lease)) {
        td_refresher_kick(r);
        return;
    }
    if (!f->inbox || __atomic_exchange_n(&e->asking, 1, __ATOMIC_ACQ_REL)) return;
    __atomic_store_n(&e->last_ask_ms, td_clock_mono_ms(), __ATOMIC_RELAXED);
    if (!(j = malloc(sizeof *j)) || (j->f = f, j->e = e, td_workq_submit(f->inbox, run_ask, j) != TD_OK)) {
        free(j);
        __atomic_store_n(&e->asking, 0, __ATOMIC_RELEASE);
    }
}

/* td_api_hooks.freshen: run the overdue refresh here, or ask the holder. */
static int freshen(void *fleet, const char *name, long wait_ms, char *why, size_t whylen)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char holder[TD_LEASE_OWNER_MAX];

    if (!r) return TD_ENOTFOUND;
    if (td_lease_held(e->lease)) return td_refresher_freshen(r, wait_ms, why, whylen);
    __atomic_store_n(&e->last_ask_ms, td_clock_mono_ms(), __ATOMIC_RELAXED);
    if (holder_of(f, name, holder, why, whylen) != TD_OK) return TD_EUNAVAIL;
    if (!strcmp(holder, f->me)) return td_refresher_freshen(r, wait_ms, why, whylen);
    td_log("token %s 已进入换发窗口但持有租约的实例 %s 尚未换新：请它立即刷新", name, holder);
    return forward(f, "due", holder, name, "-", wait_ms, why, whylen);
}

/* td_api_hooks.window: the window this server's refresher of name uses. */
static long window(void *fleet, const char *name)
{
    entry *e = find(fleet, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;

    return r ? td_refresher_window(r) : -1;
}

static json_t *ts_or_null(int64_t ts) { return ts ? json_integer((json_int_t)ts) : json_null(); }

static const char *event_kind(td_event_kind k)
{
    switch (k) {
    case TD_EVENT_FAILURE: return "failure";
    case TD_EVENT_RECOVERED: return "recovered";
    case TD_EVENT_ALERT: return "alert";
    case TD_EVENT_NOTICE: return "notice";
    }
    return "?";
}

/* The status page's part of a refresher's state (td_fleet_status). */
static void status_detail(json_t *o, const td_refresher_state *st, long win, int held)
{
    json_t *sinks = json_array(), *events = json_array();

    json_object_set_new(o, "provider", json_string(st->provider));
    json_object_set_new(o, "renew_window", json_integer(win));
    json_object_set_new(o, "refreshing", json_boolean(st->cycling));
    /* Another server's schedule is not ours to know: ours is only when
     * we look at the lease again. */
    json_object_set_new(o, "next_refresh_timestamp", held ? ts_or_null(st->next_due) : json_null());
    json_object_set_new(o, "last_success_timestamp", ts_or_null(st->last_ok));
    json_object_set_new(o, "last_failure_timestamp", ts_or_null(st->last_fail));
    for (size_t i = 0; i < st->nsinks; i++) {
        const td_refresher_sink_state *k = &st->sinks[i];
        json_t *so = json_pack("{s:s, s:s, s:i, s:o, s:o}", "sink", k->kind, "label", k->label,
                               "failures_in_a_row", k->failures, "last_success_timestamp",
                               ts_or_null(k->last_ok), "last_failure_timestamp", ts_or_null(k->last_fail));
        if (so && k->last_fail) json_object_set_new(so, "last_error", json_string(k->last_err));
        json_array_append_new(sinks, so);
    }
    for (size_t i = 0; i < st->nevents; i++) {
        const td_refresher_event *e = &st->events[i];
        json_array_append_new(events, json_pack("{s:s, s:I, s:I, s:I, s:s}", "kind", event_kind(e->kind),
                                                "first_timestamp", (json_int_t)e->first, "timestamp",
                                                (json_int_t)e->last, "count", (json_int_t)e->count, "text",
                                                e->text));
    }
    json_object_set_new(o, "sinks", sinks);
    json_object_set_new(o, "events", events);
}

/* td_api_hooks.metrics: the series an alert needs by name (and sink), from
 * what this server's refreshers saw.  Counters under their lock only: the
 * HTTP thread renders /metrics. */
static void metrics(void *fleet, td_strbuf *b)
{
    td_fleet *f = fleet;
    static const struct { const char *name, *help; } m[] = {
        {"refresh_lease_held", "1 when this server holds the token's refresh lease (it fetches), else 0."},
        {"refresh_failures_in_a_row", "Failed refresh cycles in a row, by token (this server's)."},
        {"refresh_last_success_timestamp_seconds", "When a refresh cycle last put the token in service (Unix seconds; 0: never)."},
        {"sink_failures_in_a_row", "Failed deliveries in a row, by token and sink."},
        {"sink_last_success_timestamp_seconds", "When a record last reached the sink (Unix seconds; 0: never)."},
    };
    td_refresher_state *st = calloc(f->n ? f->n : 1, sizeof *st);
    int *held = calloc(f->n ? f->n : 1, sizeof *held);

    if (!st || !held) goto out;
    for (size_t i = 0; i < f->n; i++) {
        td_refresher *r = __atomic_load_n(&f->v[i].r, __ATOMIC_ACQUIRE);
        if (r) td_refresher_status(r, &st[i]);
        held[i] = td_lease_held(f->v[i].lease);
    }
    for (size_t k = 0; k < sizeof m / sizeof *m; k++) {
        td_strbuf_printf(b, "# HELP tokendist_%s %s\n# TYPE tokendist_%s gauge\n", m[k].name, m[k].help, m[k].name);
        for (size_t i = 0; i < f->n; i++) {
            const char *name = f->v[i].name;
            const td_refresher_state *s = &st[i];
            switch (k) {
            case 0: td_strbuf_printf(b, "tokendist_%s{name=\"%s\"} %d\n", m[k].name, name, held[i]); break;
            case 1: td_strbuf_printf(b, "tokendist_%s{name=\"%s\"} %d\n", m[k].name, name, s->failures); break;
            case 2: td_strbuf_printf(b, "tokendist_%s{name=\"%s\"} %lld\n", m[k].name, name, (long long)s->last_ok); break;
            default:
                for (size_t j = 0; j < s->nsinks; j++)
                    td_strbuf_printf(b, "tokendist_%s{name=\"%s\",sink=\"%s\"} %lld\n", m[k].name, name,
                                     s->sinks[j].kind,
                                     k == 3 ? (long long)s->sinks[j].failures : (long long)s->sinks[j].last_ok);
                break;
            }
        }
    }
out:
    free(st);
    free(held);
}

const td_api_hooks *td_fleet_hooks(td_fleet *f)
{
    f->hooks = (td_api_hooks){.ud = f, .invalid = td_fleet_report, .stale = stale, .freshen = freshen, .kick = kick,
                              .status = td_fleet_status, .window = window, .metrics = metrics};
    return &f->hooks;
}

void td_fleet_status(void *fleet, json_t *out, int detail)
{
    td_fleet *f = fleet;
    json_t *all = json_object();

    for (size_t i = 0; i < f->n; i++) {
        entry *e = &f->v[i];
        td_refresher *r = __atomic_load_n(&e->r, __ATOMIC_ACQUIRE);
        char holder[TD_LEASE_OWNER_MAX], err[300], t1[TD_TIME_LEN], t2[TD_TIME_LEN];
        json_t *o = json_object();
        int held = td_lease_held(e->lease);

        json_object_set_new(o, "lease_held", json_boolean(held));
        if (held) json_object_set_new(o, "lease_holder", json_string(f->me));
        else if (td_store_lease_owner(f->store, e->lease_key, holder, sizeof holder, err, sizeof err) == TD_OK)
            json_object_set_new(o, "lease_holder", json_string(holder));
        else
            json_object_set_new(o, "lease_holder", json_null());
        if (r) {
            td_refresher_state st;
            td_refresher_status(r, &st);
            json_object_set_new(o, "cycles", json_integer(st.cycles));
            json_object_set_new(o, "forced", json_integer(st.forced));
            json_object_set_new(o, "failures_in_a_row", json_integer(st.failures));
            json_object_set_new(o, "last_success", st.last_ok ? json_string(td_clock_format(st.last_ok, t1)) : json_null());
            json_object_set_new(o, "last_failure", st.last_fail ? json_string(td_clock_format(st.last_fail, t2)) : json_null());
            if (st.last_fail) json_object_set_new(o, "last_error", json_string(st.last_err));
            if (detail) status_detail(o, &st, td_refresher_window(r), held);
        }
        json_object_set_new(all, e->name, o);
    }
    json_object_set_new(out, "refresh", all);
}

void td_fleet_stop(td_fleet *f)
{
    char err[64];

    if (!f) return;
    if (f->listening) td_store_listen(f->store, NULL, NULL, NULL, err, sizeof err);
    f->listening = 0;
    td_workq_free(f->inbox); /* runs what is queued: each answers its reporter */
    f->inbox = NULL;
}

void td_fleet_free(td_fleet *f)
{
    if (!f) return;
    td_fleet_stop(f);
    for (size_t i = 0; i < f->n; i++) td_lease_free(f->v[i].lease);
    pthread_cond_destroy(&f->answered);
    pthread_mutex_destroy(&f->lock);
    free(f->v);
    free(f);
}
