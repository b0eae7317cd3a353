/* lease -- see lease.h. */
#define _GNU_SOURCE
#include "lease.h"
#include "clock.h"
#include "freeze.h"
#include "log.h"
#include "tokendist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct td_lease {
    td_store *store;
    char name[129];
    char owner[160];
    int64_t ttl_ms;
    int always;                 /* the store has no lease op: always held */

    pthread_mutex_t ask;        /* one round trip at a time: a release is never overtaken
                                   by a take that was already on its way */
    pthread_mutex_t lock;       /* guards the fields below */
    pthread_cond_t cond;        /* wakes the keeper to stop */
    int64_t held_until;         /* real monotonic ms (real_mono_ms); 0: not held */
    int64_t seen_ms;            /* td_freeze_mark of the last look the store answered */
    int state;                  /* last outcome logged: 1 ours, 0 another's, <0 error, 2 none */
    int unanswered;             /* the store's last answer to td_lease_hold was an error */
    int released;               /* given back for good (td_lease_release) */
    int stop;
    pthread_t keeper;
    int keeper_started;
};

void td_lease_new_owner(char *buf, size_t len)
{
    unsigned char rnd[6];
    char host[64] = "host";

    /* Unique per call even for two in one process: a restarted instance
     * must not mistake its predecessor's lease for its own. */
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        int64_t t = td_clock_mono_ms() ^ ((int64_t)getpid() << 20) ^ (int64_t)(uintptr_t)buf;
        memcpy(rnd, &t, sizeof rnd);
    }
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++) /* the id travels in space-separated messages */
        if (*p <= ' ' || *p >= 0x7f) *p = '_';
    snprintf(buf, len, "%s:%d:%02x%02x%02x%02x%02x%02x", host, (int)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5]);
}

int td_lease_new(td_lease **out, td_store *store, const char *name, const char *owner, int64_t ttl_ms,
                 char *err, size_t errlen)
{
    td_lease *l = NULL;

    if (!store || !name || !*name || strlen(name) >= sizeof l->name || ttl_ms < 300 ||
        (owner && strlen(owner) >= sizeof l->owner)) {
        snprintf(err, errlen, "租约参数无效: 需要存储、1-128 个字符的名称和不小于 300 毫秒的有效期");
        return TD_EINVAL;
    }
    if (!(l = calloc(1, sizeof *l))) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    l->store = store;
    l->ttl_ms = ttl_ms;
    l->always = store->ops->lease == NULL;
    l->state = 2;
    snprintf(l->name, sizeof l->name, "%s", name);
    if (owner) snprintf(l->owner, sizeof l->owner, "%s", owner);
    else td_lease_new_owner(l->owner, sizeof l->owner);
    pthread_mutex_init(&l->ask, NULL);
    pthread_mutex_init(&l->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&l->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    *out = l;
    return TD_OK;
}

/* Logs an outcome of td_lease_hold (lock held) when it differs from the
 * last one: who holds the lease is worth a line, every renewal is not. */
static void note(td_lease *l, int outcome, const char *why)
{
    if (outcome < 0) outcome = -1;
    if (outcome == l->state) return;
    if (outcome == 1)
        td_log("本实例持有租约 %s (%s)", l->name, l->owner);
    else if (outcome == 0)
        td_log("租约 %s 由其他实例持有：本实例待命，持有者停止续约后接管", l->name);
    else
        td_log("⚠️ 无法获取租约 %s: %s", l->name, why);
    l->state = outcome;
}

/* A lease lives in real time -- Redis's PX, SQLite's wall-clock expiry
 * -- so our view of it does too: never the test clock (clock.h), which a
 * test moves by hours while the lease's holder stays the holder. */
static int64_t real_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int td_lease_hold(td_lease *l, char *err, size_t errlen)
{
    int64_t t0 = real_mono_ms(), mark = td_freeze_mark();
    int rc, held;

    if (l->always) return 1;
    pthread_mutex_lock(&l->ask);
    if (__atomic_load_n(&l->released, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&l->ask);
        return 0;
    }
    rc = td_store_lease(l->store, l->name, l->owner, l->ttl_ms, TD_LEASE_TAKE, err, errlen);
    pthread_mutex_unlock(&l->ask);
    pthread_mutex_lock(&l->lock);
    l->unanswered = rc != TD_OK && rc != TD_ECONFLICT;
    if (rc == TD_OK) {
        /* Redis starts the ttl after t0, so t0 + ttl is on the safe side;
         * the tenth off covers clock-rate differences and the round trip. */
        l->held_until = t0 + l->ttl_ms - l->ttl_ms / 10;
        l->seen_ms = mark;
        held = 1;
    } else if (rc == TD_ECONFLICT) {
        l->held_until = 0;
        l->seen_ms = mark;
        held = 0;
    } else {
        held = t0 < l->held_until ? 1 : rc;
    }
    note(l, held, err);
    pthread_mutex_unlock(&l->lock);
    return held;
}

int td_lease_last(td_lease *l)
{
    int last;

    if (l->always) return 1;
    pthread_mutex_lock(&l->lock);
    last = l->state;
    pthread_mutex_unlock(&l->lock);
    return last;
}

int64_t td_lease_sure_ms(td_lease *l)
{
    int64_t left;

    if (l->always) return -1;
    pthread_mutex_lock(&l->lock);
    left = l->held_until - real_mono_ms();
    if (left < 0) left = 0;
    else if (!l->unanswered) left = -1;
    pthread_mutex_unlock(&l->lock);
    return left;
}

int td_lease_held(td_lease *l)
{
    int held;

    if (l->always) return 1;
    pthread_mutex_lock(&l->lock);
    held = real_mono_ms() < l->held_until;
    pthread_mutex_unlock(&l->lock);
    return held;
}

int td_lease_view(td_lease *l)
{
    int v;

    if (l->always) return TD_LEASE_OURS;
    pthread_mutex_lock(&l->lock);
    if (real_mono_ms() < l->held_until) v = TD_LEASE_OURS;
    /* Another's at our last look: it stands while the keeper goes on
     * looking (every ttl/10), that is unless the process was frozen
     * since -- then the holder may be long gone. */
    else if (l->state == 0 && !td_freeze_since(l->seen_ms)) v = TD_LEASE_THEIRS;
    else v = TD_LEASE_UNKNOWN;
    pthread_mutex_unlock(&l->lock);
    return v;
}

static void *keeper_main(void *arg)
{
    td_lease *l = arg;
    char err[256];

    pthread_mutex_lock(&l->lock);
    while (!l->stop) {
        int64_t wait_ms;
        struct timespec ts;

        pthread_mutex_unlock(&l->lock);
        wait_ms = td_lease_hold(l, err, sizeof err) == 1 ? l->ttl_ms / 3 : l->ttl_ms / 10;
        pthread_mutex_lock(&l->lock);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        while (!l->stop && pthread_cond_timedwait(&l->cond, &l->lock, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int td_lease_keep(td_lease *l, char *err, size_t errlen)
{
    if (l->always || l->keeper_started) return TD_OK;
    if (pthread_create(&l->keeper, NULL, keeper_main, l) != 0) {
        snprintf(err, errlen, "租约 %s: 无法启动后台线程", l->name);
        return TD_ERR;
    }
    l->keeper_started = 1;
    return TD_OK;
}

void td_lease_release(td_lease *l)
{
    char err[256];
    int held, rc;

    if (!l || l->always || __atomic_load_n(&l->released, __ATOMIC_ACQUIRE)) return;
    if (l->keeper_started) {
        pthread_mutex_lock(&l->lock);
        l->stop = 1;
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->keeper, NULL);
        l->keeper_started = 0;
    }
    pthread_mutex_lock(&l->ask); /* after a take under way: it must not undo the drop */
    __atomic_store_n(&l->released, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&l->lock);
    held = l->held_until != 0;
    l->held_until = 0;
    l->state = 2;
    pthread_mutex_unlock(&l->lock);
    /* Even when our hold looks lapsed the key may still be ours; the
     * compare-and-delete removes it only then. */
    rc = td_store_lease(l->store, l->name, l->owner, l->ttl_ms, TD_LEASE_DROP, err, sizeof err);
    pthread_mutex_unlock(&l->ask);
    if (rc != TD_OK) {
        if (held)
            td_log("⚠️ 释放租约 %s 失败 (%s)：其他实例将在 %lld ms 内接管", l->name, err,
                   (long long)l->ttl_ms);
    } else if (held) {
        td_log("已释放租约 %s：其他实例可以立即接管", l->name);
    }
}

void td_lease_free(td_lease *l)
{
    if (!l) return;
    td_lease_release(l);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->ask);
    free(l);
}

