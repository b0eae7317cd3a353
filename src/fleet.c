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
#define FLIGHTS_MAX 64          /* forwards under way or remembered at once (few tokens x 2 ids) */
#define SETTLE_KEEP_MS 2000     /* any report answer stands this long: the parked reports it wakes get it too */
#define INBOX_THREADS 4         /* forwarded requests here; asks and kicked reports of ours */
#define INBOX_QUEUE 64
#define REPLY_MARGIN_MS 1000    /* the holder answers this much before the reporter gives up */
#define REQ_ID_LEN 17
#define REMOTE_SLACK_S 60       /* a holder this late with a renewal is asked to hurry */
                                /* (a quarter of the window, when that is less) */
#define REMOTE_ASK_MS 5000      /* and asked at most this often per token */
#define HOLDER_GRACE_S 3        /* for the holder's own renewal right after the expiry (WeCom's
                                   rule: expiry + up to 2 s), before it is asked to hurry */

typedef struct entry {
    char name[TD_NAME_MAX + 1];
    char lease_key[TD_NAME_MAX + 16];
    td_lease *lease;
    td_refresher *r;            /* set by td_fleet_attach; NULL before */
    int64_t last_ask_ms;        /* atomic: monotonic ms we last asked the holder to freshen */
    int asking;                 /* atomic: an ask of the holder is under way (kick) */
    int64_t seen_exp;           /* atomic: the expiry the last stale() judged, for kick */
    int64_t renewed_exp;        /* atomic: the stored expiry after the last ask of the holder */
} entry;

/* One request forwarded to the holder ("invalid" or "due", for a token
 * id of a name), shared by every caller that asks the same while it is
 * under way (single flight: a flood of reports is one message), and for
 * an invalid report its final answer is kept as long as the holder keeps
 * its own (TD_REFRESHER_FORCE_INTERVAL_MS), so the holder hears of a token
 * once, not once per report.  Guarded by td_fleet.lock. */
typedef struct flight {
    int used;
    char verb[8], name[TD_NAME_MAX + 1], id[TD_TOKEN_ID_LEN];
    char holder[TD_LEASE_OWNER_MAX];
    char req[REQ_ID_LEN];       /* the message's id, to match "ack" and "result" */
    int users;                  /* callers waiting on it */
    int acked, done, rc;        /* acked: the holder took it ("ack", or its "result") */
    int64_t keep_until_ms;      /* done: its answer stands for later callers until then */
    char why[600];
} flight;

struct td_fleet {
    td_store *store;
    char me[TD_LEASE_OWNER_MAX];    /* our owner id: the leases' value, our inbox */
    entry *v;
    size_t n;
    td_workq *inbox;            /* forced refreshes other servers asked for */
    int listening;
    pthread_t releaser;         /* td_fleet_release's thread, joined by td_fleet_free */
    int releasing;
    int released;               /* the releaser is done (under lock; signals answered) */

    pthread_mutex_t lock;       /* guards the flights */
    pthread_cond_t answered;    /* a flight was acknowledged or answered */
    flight fl[FLIGHTS_MAX];
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
        snprintf(err, errlen, "内存不足");
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
        snprintf(err, errlen, "集群: token '%s' 重复，或超过 %d 个 token", name, NAMES_MAX);
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

    /* A failure is logged by the lease when it begins (无法获取租约), not
     * at every round of the outage. */
    return rc < 0 ? -1 : rc == 1;
}

int td_fleet_refreshes(td_fleet *f, const char *name, int64_t within_ms, int ask)
{
    entry *e = find(f, name);
    int64_t sure;
    int view;

    if (!e || !__atomic_load_n(&e->r, __ATOMIC_ACQUIRE)) return 0;
    if ((view = td_lease_view(e->lease)) == TD_LEASE_THEIRS) return 0;
    /* Ours, or nobody knows (a freeze): the store says, and whether it
     * still answers -- one that stopped a moment ago (the keeper's next
     * look is seconds away) leaves us our last hold, and the round at
     * within_ms, which takes the lease first, gets it only while that
     * lasts. */
    if (!ask && view == TD_LEASE_UNKNOWN) { /* the last answer: our round asks again when it is due */
        int last = td_lease_last(e->lease);
        return last == 0 ? 0 : last < 0 ? -1 : 1;
    }
    if (ask && (view = td_fleet_may_refresh(e->lease)) != TD_LEASE_OURS) return view;
    sure = td_lease_sure_ms(e->lease);
    return sure < 0 || sure > within_ms ? 1 : -1;
}

int td_fleet_held_elsewhere(td_fleet *f, const char *name)
{
    entry *e = find(f, name);

    return e && __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) && td_lease_last(e->lease) == 0;
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

/* Tells the reporter its request was taken (queued here): from then on a
 * silence is a refresh under way, not a lost report. */
static void acknowledge(td_fleet *f, const char *to, const char *req)
{
    char msg[64 + REQ_ID_LEN], err[300];

    snprintf(msg, sizeof msg, "ack %s", req);
    if (td_store_send(f->store, to, msg, err, sizeof err) != TD_OK)
        td_log("⚠️ 无法告诉 %s 已收到它转交的报告: %s", to, err);
}

static void run_job(void *ud)
{
    job *j = ud;
    entry *e = find(j->f, j->name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char why[700], err[256];
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
        char last[300];
        int64_t retry_ms;
        int failures;

        /* Only when our own schedule agrees: a reader's view is no reason
         * to ask Feishu more often than the renewal needs.  Backing off
         * after failures, the renewal is not overdue until the retry, but
         * nothing was renewed either: the asker (its readers, its SCF
         * timer) hears that, not 已刷新. */
        if (td_refresher_overdue(r, -1)) {
            rc = td_refresher_freshen(r, j->wait_ms, why, sizeof why);
        } else if ((failures = td_refresher_failing(r, last, sizeof last, &retry_ms)) > 0) {
            snprintf(why, sizeof why, "持有刷新租约的实例 %s 连续 %d 次刷新失败，%lld 秒后重试 (%s)", j->f->me,
                     failures, (long long)((retry_ms + 999) / 1000), last);
            rc = TD_EUPSTREAM;
        } else {
            rc = TD_OK;
        }
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

/* How long a report's answer stands for later reports of its token (0
 * for a "due": the asker paces those).  A final one -- the refresh's
 * outcome -- as long as the holder keeps it; one that says "try again"
 * (not taken, still running, the holder stopping) only while the reports
 * parked for it (api.c) come back for it, so a flood is answered alike. */
static int64_t keep_ms(const flight *fl)
{
    if (strcmp(fl->verb, "invalid") != 0) return 0;
    return fl->rc == TD_ETIMEOUT || fl->rc == TD_EUNAVAIL || fl->rc == TD_ECANCELED || fl->rc == TD_ENOMEM
               ? SETTLE_KEEP_MS
               : TD_REFRESHER_FORCE_INTERVAL_MS;
}

/* Ends a flight with its answer (lock held). */
static void land(td_fleet *f, flight *fl, int rc, const char *why)
{
    fl->done = 1;
    fl->rc = rc;
    snprintf(fl->why, sizeof fl->why, "%s", why);
    fl->keep_until_ms = td_clock_mono_ms() + keep_ms(fl);
    pthread_cond_broadcast(&f->answered);
}

/* The holder's "ack" (took the request) or "result" for message req. */
static void answered(td_fleet *f, const char *req, int ack, int rc, const char *why)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < FLIGHTS_MAX; i++) {
        flight *fl = &f->fl[i];
        if (!fl->used || fl->done || strcmp(fl->req, req) != 0) continue;
        if (ack) fl->acked = 1, pthread_cond_broadcast(&f->answered);
        else land(f, fl, rc, why);
    }
    pthread_mutex_unlock(&f->lock);
}

/* td_store_msg_cb, on the store's thread: never waits for a refresh (at
 * most one PUBLISH: an acknowledgement or a refusal). */
static void on_message(void *ud, const char *msg)
{
    td_fleet *f = ud;
    const char *p = msg;
    char kind[16], req[REQ_ID_LEN], num[24], from[TD_LEASE_OWNER_MAX];

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
        memcpy(from, j->from, sizeof from); /* j is the worker's once submitted */
        if (!f->inbox || td_workq_submit(f->inbox, run_job, j) != TD_OK) {
            reply(f, j->from, j->req, TD_EUNAVAIL, "持有租约的实例正忙，请稍后重试");
            free(j);
            return;
        }
        /* Taken: the reporter may now say "refresh started".  Said from
         * here, not by the worker, so a report queued behind a slow one
         * is not taken for lost; one PUBLISH, like the refusal above. */
        acknowledge(f, from, req);
    } else if (!strcmp(kind, "result") && field(&p, num, sizeof num)) {
        answered(f, req, 0, (int)strtol(num, NULL, 10), p);
    } else if (!strcmp(kind, "ack")) {
        answered(f, req, 1, 0, "");
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

/* The flight for verb, name and id (lock held): a kept answer or one
 * under way to holder (*lead 0), or a new one this caller sends (*lead
 * 1).  holder "" is one not known yet, on either side: a report kicked
 * from the HTTP thread (report_kick) finds its holder on a worker.  NULL
 * when every slot is taken. */
static flight *flight_for(td_fleet *f, const char *verb, const char *holder, const char *name,
                          const char *id, int64_t now, int *lead)
{
    flight *fl = NULL;
    unsigned char rnd[8];

    *lead = 0;
    for (size_t i = 0; i < FLIGHTS_MAX; i++) {
        flight *x = &f->fl[i];
        if (x->used && x->done && x->users == 0 && now >= x->keep_until_ms) x->used = 0; /* stale */
        if (!x->used) {
            if (!fl) fl = x;
            continue;
        }
        if (strcmp(x->verb, verb) != 0 || strcmp(x->name, name) != 0 || strcmp(x->id, id) != 0) continue;
        /* A kept answer stands whoever holds the lease now; one under way
         * is joined only while it goes to the holder we would ask. */
        if (x->done ? now < x->keep_until_ms : !holder[0] || !x->holder[0] || !strcmp(x->holder, holder))
            return x;
    }
    if (!fl) return NULL;
    memset(fl, 0, sizeof *fl);
    fl->used = 1;
    snprintf(fl->verb, sizeof fl->verb, "%s", verb);
    snprintf(fl->name, sizeof fl->name, "%s", name);
    snprintf(fl->id, sizeof fl->id, "%s", id);
    snprintf(fl->holder, sizeof fl->holder, "%s", holder);
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) { /* unique enough: never reused */
        int64_t t = td_clock_mono_ms() ^ (int64_t)(uintptr_t)fl;
        memcpy(rnd, &t, sizeof rnd);
    }
    for (int i = 0; i < 8; i++) snprintf(fl->req + 2 * i, 3, "%02x", rnd[i]);
    *lead = 1;
    return fl;
}

/* A caller of fl leaves it (lock held): the last one out frees a flight
 * without an answer to keep, so a later one asks afresh (the holder's
 * answer, if it comes, is then matched to nobody). */
static void leave(flight *fl)
{
    if (--fl->users == 0 && !(fl->done && td_clock_mono_ms() < fl->keep_until_ms)) fl->used = 0;
}

/* The flight fl (this caller counted in its users; lead: it sends) to
 * holder, waited for until deadline; see forward. */
static int fly(td_fleet *f, flight *fl, int lead, const char *holder, int64_t deadline, long wait_ms, char *why,
               size_t whylen)
{
    char msg[TD_STORE_MSG_MAX], err[300];
    int rc;

    pthread_mutex_lock(&f->lock);
    if (lead)
        snprintf(msg, sizeof msg, "%s %s %s %s %s %ld", fl->verb, fl->req, fl->name, fl->id, f->me,
                 wait_ms > REPLY_MARGIN_MS ? wait_ms - REPLY_MARGIN_MS : 0);
    pthread_mutex_unlock(&f->lock);
    if (lead && td_store_send(f->store, holder, msg, err, sizeof err) != TD_OK) {
        char w[sizeof err + TD_LEASE_OWNER_MAX + 64];
        snprintf(w, sizeof w, "无法把报告转交给持有刷新租约的实例 %s: %s", holder, err);
        pthread_mutex_lock(&f->lock);
        land(f, fl, TD_EUNAVAIL, w);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_lock(&f->lock);
    while (!fl->done && td_clock_mono_ms() < deadline) {
        struct timespec ts;
        td_clock_mono_deadline(deadline, &ts);
        pthread_cond_timedwait(&f->answered, &f->lock, &ts);
    }
    if (!fl->done) {
        char w[sizeof fl->why];
        if (fl->acked)
            snprintf(w, sizeof w, "已转交给持有刷新租约的实例 %s，刷新进行中", holder);
        else
            snprintf(w, sizeof w,
                     "持有刷新租约的实例 %s 没有在 %.*f 秒内确认收到转交的报告 (它可能已停止响应或刚刚退出)："
                     "报告没有被处理，请稍后重试", holder, wait_ms < 1000 ? 1 : 0, (double)wait_ms / 1000);
        /* The first caller's wait is the flight's: the others, and the
         * reports parked for it, get the same answer. */
        if (lead) land(f, fl, fl->acked ? TD_ETIMEOUT : TD_EUNAVAIL, w);
        rc = fl->acked ? TD_ETIMEOUT : TD_EUNAVAIL;
        snprintf(why, whylen, "%s", w);
    } else {
        rc = fl->rc;
        snprintf(why, whylen, "%s", fl->why);
    }
    leave(fl);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* Asks holder to do verb ("invalid": a forced refresh for token id;
 * "due": the overdue renewal) for name, and waits up to wait_ms for its
 * answer.  Callers asking the same at once share one message and its
 * answer; a report's answer also serves later ones for a while (see
 * flight, keep_ms).  The holder acknowledges a request as soon as it has
 * queued it, so a wait that ends without an answer says which it was: not
 * even acknowledged, the request was not taken (the holder is frozen,
 * gone or full) and nothing runs -- TD_EUNAVAIL; taken, TD_ETIMEOUT: the
 * refresh runs there.  A holder thawed within the wait still answers in
 * time. */
static int forward(td_fleet *f, const char *verb, const char *holder, const char *name, const char *id,
                   long wait_ms, char *why, size_t whylen)
{
    int64_t now = td_clock_mono_ms();
    flight *fl;
    int lead, rc;

    pthread_mutex_lock(&f->lock);
    if (!(fl = flight_for(f, verb, holder, name, id, now, &lead))) {
        pthread_mutex_unlock(&f->lock);
        snprintf(why, whylen, "正在转交的报告过多，请稍后重试");
        return TD_EUNAVAIL;
    }
    fl->users++;
    if (fl->done) { /* a kept answer */
        rc = fl->rc;
        snprintf(why, whylen, "%s", fl->why);
        leave(fl);
        pthread_mutex_unlock(&f->lock);
        return rc;
    }
    pthread_mutex_unlock(&f->lock);
    return fly(f, fl, lead, holder, now + wait_ms, wait_ms, why, whylen);
}

#define ROUTE_FORWARD 1         /* route_report: send it to the holder */
_Static_assert(TD_API_REPORT_UNKNOWN == TD_REFRESHER_UNKNOWN, "report_now passes the refresher's on");

/* Where a report of name (token id) that this process does not answer
 * from its own held lease goes: ROUTE_FORWARD with holder filled, or the
 * answer decided here (refreshed here after all, or nobody to ask). */
static int route_report(td_fleet *f, td_refresher *r, const char *name, const char *id, long wait_ms,
                        char holder[TD_LEASE_OWNER_MAX], char *why, size_t whylen)
{
    char key[TD_NAME_MAX + 16], err[300];
    int rc;

    /* A store one process owns (memory:) has no lease: nobody else refreshes. */
    if (!f->store->ops->lease) {
        snprintf(why, whylen, "本服务器不刷新 token '%s'", name);
        return TD_ENOTFOUND;
    }
    snprintf(key, sizeof key, "refresh:%s", name);
    rc = td_store_lease_owner(f->store, key, holder, TD_LEASE_OWNER_MAX, err, sizeof err);
    if (rc == TD_OK && !strcmp(holder, f->me)) { /* ours, though the keeper has not said so yet */
        if (r) return td_refresher_force(r, name, id, wait_ms, why, whylen);
        snprintf(why, whylen, "本实例持有租约但没有刷新器");
        return TD_EUNAVAIL;
    }
    if (!td_store_has_messages(f->store)) {
        /* A shared store without messages (SQLite, S3): the holder
         * refreshes on its schedule, but the report cannot reach it from
         * here.  Nobody holding the lease and no refresher here: as on a
         * store of one's own, nobody refreshes. */
        if (rc == TD_ENOTFOUND && !r) {
            snprintf(why, whylen, "本服务器不刷新 token '%s'，也没有其他实例持有它的刷新租约", name);
            return TD_ENOTFOUND;
        }
        if (rc != TD_OK) snprintf(holder, TD_LEASE_OWNER_MAX, "(暂无)");
        snprintf(why, whylen,
                 "本实例%s不持有 token '%s' 的刷新租约 (持有者: %s)，而存储 %s 不能在服务器之间转交报告："
                 "请稍后重试，或向持有租约的实例报告", r ? "" : "不刷新 token 也", name, holder,
                 f->store->ops->scheme);
        return TD_EUNAVAIL;
    }
    if (rc == TD_ENOTFOUND) {
        snprintf(why, whylen,
                 "没有实例持有 token '%s' 的刷新租约：配置了飞书凭证的实例会在 %d 秒内接管；"
                 "若没有实例配置凭证，就没有实例能刷新它", name, TD_LEASE_TTL_MS / 1000);
        return TD_EUNAVAIL;
    }
    if (rc != TD_OK) {
        snprintf(why, whylen, "无法查询刷新租约: %s", err);
        return TD_EUNAVAIL;
    }
    return ROUTE_FORWARD;
}

int td_fleet_report(void *fleet, const char *name, const char *token, long wait_ms, char *why,
                    size_t whylen)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char id[TD_TOKEN_ID_LEN], holder[TD_LEASE_OWNER_MAX];
    int rc;

    td_record_token_id(token, id);
    if (r && td_lease_held(e->lease)) return td_refresher_force(r, name, id, wait_ms, why, whylen);
    if ((rc = route_report(f, r, name, id, wait_ms, holder, why, whylen)) != ROUTE_FORWARD) return rc;
    return forward(f, "invalid", holder, name, id, wait_ms, why, whylen);
}

/* --- reports without a worker (td_api_hooks.report_*) --------------------- */

/* A report kicked from the HTTP thread, routed and sent on one of the
 * fleet's own threads; fl is its flight, counted for it in users. */
typedef struct report_job {
    td_fleet *f;
    flight *fl;
    int64_t deadline;
    char name[TD_NAME_MAX + 1], id[TD_TOKEN_ID_LEN];
} report_job;

static void run_report(void *ud)
{
    report_job *j = ud;
    td_fleet *f = j->f;
    entry *e = find(f, j->name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    long left = (long)(j->deadline - td_clock_mono_ms());
    char holder[TD_LEASE_OWNER_MAX], why[sizeof j->fl->why];
    int rc;

    if (left < 0) left = 0;
    if ((rc = route_report(f, r, j->name, j->id, left, holder, why, sizeof why)) == ROUTE_FORWARD) {
        pthread_mutex_lock(&f->lock);
        snprintf(j->fl->holder, sizeof j->fl->holder, "%s", holder);
        pthread_mutex_unlock(&f->lock);
        fly(f, j->fl, 1, holder, j->deadline, left, why, sizeof why); /* lands fl, leaves it */
    } else { /* answered here: every report parked for it gets that */
        pthread_mutex_lock(&f->lock);
        land(f, j->fl, rc, why);
        leave(j->fl);
        pthread_mutex_unlock(&f->lock);
    }
    free(j);
}

/* td_api_hooks.report_now: the answer a report of token gets now without
 * waiting -- from this process's refresher while it holds the lease, or
 * from a flight (kept, or under way: *pending) -- else
 * TD_API_REPORT_UNKNOWN.  HTTP thread: short locks only. */
static int report_now(void *fleet, const char *name, const char *token, int *pending, char *why, size_t whylen)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char id[TD_TOKEN_ID_LEN];
    int64_t now = td_clock_mono_ms();
    int rc = TD_API_REPORT_UNKNOWN;

    *pending = 0;
    td_record_token_id(token, id);
    if (r && td_lease_held(e->lease)) return td_refresher_force_now(r, name, id, 0, pending, why, whylen);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < FLIGHTS_MAX && rc == TD_API_REPORT_UNKNOWN; i++) {
        const flight *fl = &f->fl[i];
        if (!fl->used || strcmp(fl->verb, "invalid") != 0 || strcmp(fl->name, name) != 0 || strcmp(fl->id, id) != 0)
            continue;
        if (fl->done && now < fl->keep_until_ms) {
            rc = fl->rc;
            snprintf(why, whylen, "%s", fl->why);
        } else if (!fl->done) {
            *pending = 1;
            rc = fl->acked ? TD_ETIMEOUT : TD_EUNAVAIL;
            snprintf(why, whylen, fl->acked ? "已转交给持有刷新租约的实例 %s，刷新进行中"
                                            : "报告尚未被持有刷新租约的实例%s确认收到，请稍后重试",
                     fl->holder);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* td_api_hooks.report_kick: starts what a report of token waits for --
 * this process's forced refresh, or a flight routed and sent by one of
 * the fleet's threads -- without waiting.  TD_OK when one now runs (the
 * report parks until reporting says no more); else the report needs a
 * worker.  HTTP thread: short locks only. */
static int report_kick(void *fleet, const char *name, const char *token)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char id[TD_TOKEN_ID_LEN], why[300];
    report_job *j;
    flight *fl;
    int lead, pending;

    td_record_token_id(token, id);
    if (r && td_lease_held(e->lease)) {
        td_refresher_force_now(r, name, id, 1, &pending, why, sizeof why);
        return TD_OK;
    }
    if (!f->inbox || !(j = calloc(1, sizeof *j))) return TD_EUNAVAIL;
    pthread_mutex_lock(&f->lock);
    if (!(fl = flight_for(f, "invalid", "", name, id, td_clock_mono_ms(), &lead)) || !lead) {
        pthread_mutex_unlock(&f->lock);
        free(j);
        return fl ? TD_OK : TD_EUNAVAIL; /* one runs or was kept: answered from it */
    }
    fl->users++;
    pthread_mutex_unlock(&f->lock);
    j->f = f, j->fl = fl, j->deadline = td_clock_mono_ms() + TD_API_REPORT_WAIT_MS;
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->id, sizeof j->id, "%s", id);
    if (td_workq_submit(f->inbox, run_report, j) != TD_OK) {
        pthread_mutex_lock(&f->lock);
        leave(fl);
        pthread_mutex_unlock(&f->lock);
        free(j);
        return TD_EUNAVAIL;
    }
    return TD_OK;
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

/* td_api_hooks.reporting: a report of name now would wait for a forced
 * refresh under way -- this process's, or one forwarded to the holder. */
static int reporting(void *fleet, const char *name)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    int pending = 0;

    if (r && td_lease_held(e->lease)) return td_refresher_forcing(r);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < FLIGHTS_MAX && !pending; i++) {
        const flight *fl = &f->fl[i];
        pending = fl->used && !fl->done && !strcmp(fl->verb, "invalid") && !strcmp(fl->name, name);
    }
    pthread_mutex_unlock(&f->lock);
    return pending;
}

/* td_api_hooks.stale: this process refreshes name and its refresh is
 * overdue (the holder's own rule), or another server holds the lease and
 * its renewal is due: the token ran out within the last TD_FLEET_BRIDGE_S seconds
 * (WeCom renews only after the expiry, so every server's readers meet that
 * moment: they wait for the holder's new record, which reaches this server
 * over the store's change channel and ends the wait -- a park, bounded by
 * TD_API_FRESHEN_WAIT_MS), or the holder is REMOTE_SLACK_S late with a
 * renewal inside the window (asked at most every REMOTE_ASK_MS). */
static int stale(void *fleet, const char *name, int64_t expire_ts)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    int64_t now = td_clock_now();
    long window, slack;
    int view;

    if (!r) return 0;
    if ((view = td_lease_view(e->lease)) == TD_LEASE_OURS) return td_refresher_overdue(r, expire_ts);
    if (!f->store->ops->lease) return 0;
    __atomic_store_n(&e->seen_exp, expire_ts, __ATOMIC_RELAXED);
    /* Nobody knows whose the lease is: a freeze outlived our view of it
     * (SCF thaws an instance whose last look is half a minute old).
     * Judged as ours -- our refresher's next round takes the lease first
     * (kick, may_refresh) -- until the store says otherwise; an ask of
     * the holder the store names runs meanwhile (kick).  Judged as
     * another's, a thawed holder alone on a bucket would serve the token
     * from before the freeze until it ran out. */
    if (view == TD_LEASE_UNKNOWN)
        return __atomic_load_n(&e->asking, __ATOMIC_ACQUIRE) || td_refresher_overdue(r, expire_ts);
    if (expire_ts > 0 && expire_ts <= now && now - expire_ts < TD_FLEET_BRIDGE_S) return 1;
    if (!td_store_has_messages(f->store)) return 0;
    window = td_refresher_window(r), slack = window / 4 < REMOTE_SLACK_S ? window / 4 : REMOTE_SLACK_S;
    if (expire_ts - now >= window - slack && expire_ts > now) return 0;
    /* While an ask is under way, readers wait for its answer; after it,
     * for REMOTE_ASK_MS, for the record it brought, if it brought one
     * this server does not serve yet (the reload follows the answer), and
     * else they get what is served. */
    if (__atomic_load_n(&e->asking, __ATOMIC_ACQUIRE)) return 1;
    if (td_clock_mono_ms() - __atomic_load_n(&e->last_ask_ms, __ATOMIC_RELAXED) >= REMOTE_ASK_MS) return 1;
    return expire_ts < __atomic_load_n(&e->renewed_exp, __ATOMIC_RELAXED);
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
        /* The holder's answer may overtake its record, which comes over
         * the change channel and a reload: what it stored now tells the
         * parked readers what to wait for (stale). */
        if (forward(j->f, "due", holder, j->e->name, "-", TD_API_FRESHEN_WAIT_MS, why, sizeof why) == TD_OK) {
            td_store_entry se;
            if (td_store_get(j->f->store, j->e->name, &se, why, sizeof why) == TD_OK) {
                __atomic_store_n(&j->e->renewed_exp, se.expire_ts, __ATOMIC_RELAXED);
                td_store_entry_clear(&se);
            }
        }
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
    int64_t exp;
    int view;

    if (!r) return;
    if ((view = td_lease_view(e->lease)) != TD_LEASE_THEIRS) {
        /* Ours, or to be taken if nobody holds it: the round's
         * may_refresh asks the store first. */
        td_refresher_kick(r);
        if (view == TD_LEASE_OURS) return;
        /* Not known (a freeze): should the store name another holder,
         * it is asked as below; run_ask asks only one that is not us. */
    }
    /* Right after the expiry the holder renews on its own schedule:
     * asking it then would only say it is late when it is not. */
    exp = __atomic_load_n(&e->seen_exp, __ATOMIC_RELAXED);
    if (exp > 0 && exp <= td_clock_now()) {
        if (td_clock_now() - exp < HOLDER_GRACE_S) return;
        /* Readers wait all through the bridge (stale): ask as seldom as ever. */
        if (td_clock_mono_ms() - __atomic_load_n(&e->last_ask_ms, __ATOMIC_RELAXED) < REMOTE_ASK_MS) return;
    }
    if (!f->inbox || __atomic_exchange_n(&e->asking, 1, __ATOMIC_ACQ_REL)) return;
    __atomic_store_n(&e->last_ask_ms, td_clock_mono_ms(), __ATOMIC_RELAXED);
    if (!(j = malloc(sizeof *j)) || (j->f = f, j->e = e, td_workq_submit(f->inbox, run_ask, j) != TD_OK)) {
        free(j);
        __atomic_store_n(&e->asking, 0, __ATOMIC_RELEASE);
    }
}

/* td_api_hooks.freshen: run the overdue refresh here, or ask the holder.
 * TD_ECONFLICT: another instance holds the lease and the store cannot
 * carry the ask (no messages); it renews on its own schedule. */
static int freshen(void *fleet, const char *name, long wait_ms, char *why, size_t whylen)
{
    td_fleet *f = fleet;
    entry *e = find(f, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;
    char holder[TD_LEASE_OWNER_MAX], err[256];
    int view;

    if (!r) return TD_ENOTFOUND;
    /* Not known since a freeze: the store decides, now (one round trip;
     * this runs on a worker) -- the lease is ours, or taken, and the
     * renewal ours to run; only one the store says is another's sends us
     * on to its holder. */
    if ((view = td_lease_view(e->lease)) == TD_LEASE_UNKNOWN) {
        int held = td_lease_hold(e->lease, err, sizeof err);
        if (held < 0) {
            snprintf(why, whylen, "无法确认刷新租约: %s", err);
            return TD_EUNAVAIL;
        }
        view = held ? TD_LEASE_OURS : TD_LEASE_THEIRS;
    }
    if (view == TD_LEASE_OURS) return td_refresher_freshen(r, wait_ms, why, whylen);
    __atomic_store_n(&e->last_ask_ms, td_clock_mono_ms(), __ATOMIC_RELAXED);
    if (holder_of(f, name, holder, why, whylen) != TD_OK) return TD_EUNAVAIL;
    if (!strcmp(holder, f->me)) return td_refresher_freshen(r, wait_ms, why, whylen);
    if (!td_store_has_messages(f->store)) {
        snprintf(why, whylen, "token %s 的刷新租约由实例 %s 持有，由它按时刷新 (存储 %s 不能在实例之间转交请求)", name,
                 holder, f->store->ops->scheme);
        return TD_ECONFLICT;
    }
    td_log("token %s 已进入换发窗口但持有租约的实例 %s 尚未换新：请它立即刷新", name, holder);
    return forward(f, "due", holder, name, "-", wait_ms, why, whylen);
}

/* td_api_hooks.provider: the platform this server's refresher of name
 * fetches from, whether or not it holds the lease now. */
static const char *provider(void *fleet, const char *name)
{
    entry *e = find(fleet, name);
    td_refresher *r = e ? __atomic_load_n(&e->r, __ATOMIC_ACQUIRE) : NULL;

    return r ? td_refresher_provider(r) : NULL;
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
        if (so && k->last_fail)
            json_object_set_new(so, "last_error", td_json_text(k->last_err));
        json_array_append_new(sinks, so);
    }
    for (size_t i = 0; i < st->nevents; i++) {
        const td_refresher_event *e = &st->events[i];
        json_array_append_new(events, json_pack("{s:s, s:I, s:I, s:I, s:o}", "kind", event_kind(e->kind),
                                                "first_timestamp", (json_int_t)e->first, "timestamp",
                                                (json_int_t)e->last, "count", (json_int_t)e->count, "text",
                                                td_json_text(e->text)));
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
        {"refresh_lease_held", "本服务器持有该 token 的刷新租约 (由它获取) 时为 1，否则为 0。"},
        {"refresh_failures_in_a_row", "按 token 统计的连续刷新失败次数 (本服务器的)。"},
        {"refresh_last_success_timestamp_seconds", "上次刷新让 token 投入使用的时间 (Unix 秒；0 表示从未)。"},
        {"sink_failures_in_a_row", "按 token 和下游 (sink) 统计的连续投递失败次数。"},
        {"sink_last_success_timestamp_seconds", "上次有记录送达下游 (sink) 的时间 (Unix 秒；0 表示从未)。"},
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
                              .report_now = report_now, .report_kick = report_kick, .reporting = reporting,
                              .status = td_fleet_status, .window = window, .metrics = metrics,
                              .provider = provider};
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
            if (st.last_fail)
                json_object_set_new(o, "last_error", td_json_text(st.last_err));
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

static void *release_all(void *ud)
{
    td_fleet *f = ud;

    for (size_t i = 0; i < f->n; i++) td_lease_release(f->v[i].lease);
    pthread_mutex_lock(&f->lock);
    f->released = 1;
    pthread_cond_broadcast(&f->answered);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

void td_fleet_release(td_fleet *f, long wait_ms)
{
    int64_t deadline = td_clock_mono_ms() + wait_ms;

    if (!f || !f->n || f->releasing) return;
    /* On a thread of its own: a store that does not answer holds up the
     * stop only wait_ms; its request then ends as the others do once
     * outgoing requests are cut (a lease change's within httpc's grace). */
    if (pthread_create(&f->releaser, NULL, release_all, f) != 0) {
        release_all(f);
        return;
    }
    f->releasing = 1;
    pthread_mutex_lock(&f->lock);
    while (!f->released && td_clock_mono_ms() < deadline) {
        struct timespec ts;
        td_clock_mono_deadline(deadline, &ts);
        pthread_cond_timedwait(&f->answered, &f->lock, &ts);
    }
    pthread_mutex_unlock(&f->lock);
}

void td_fleet_free(td_fleet *f)
{
    if (!f) return;
    if (f->releasing) pthread_join(f->releaser, NULL);
    td_fleet_stop(f);
    for (size_t i = 0; i < f->n; i++) td_lease_free(f->v[i].lease);
    pthread_cond_destroy(&f->answered);
    pthread_mutex_destroy(&f->lock);
    free(f->v);
    free(f);
}
