/* freeze -- see freeze.h. */
#include "freeze.h"
#include "clock.h"

#include <pthread.h>
#include <time.h>

#define TICK_MS 250

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int watching;            /* the watcher runs (set once, before it starts) */
static int64_t last_look;       /* atomic: td_clock_mono_ms of the last look at the clock */
static int64_t thawed_at;       /* atomic: the look that found a freeze behind it; 0 none yet */

static void raise_to(int64_t *v, int64_t to)
{
    int64_t cur = __atomic_load_n(v, __ATOMIC_ACQUIRE);
    while (cur < to && !__atomic_compare_exchange_n(v, &cur, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
}

/* A look at the clock at now, by the watcher or by any caller: a look
 * that comes that much after the one before finds a freeze behind it,
 * ending now.  Every thread wakes at the thaw and the first to look tells
 * it, so a caller never waits for the watcher's turn -- and a mark taken
 * after the thaw is after it, not inside it. */
static void look(int64_t now)
{
    if (now - __atomic_load_n(&last_look, __ATOMIC_ACQUIRE) > TICK_MS + TD_FREEZE_MIN_MS)
        raise_to(&thawed_at, now);
    raise_to(&last_look, now);
}

static void *watch(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {0, TICK_MS * 1000000L};
        int64_t now;

        /* Real time: a stop is what it measures.  Interrupted or not, the
         * next reading says how long it really was. */
        nanosleep(&ts, NULL);
        now = td_clock_mono_ms();
        if (now < __atomic_load_n(&last_look, __ATOMIC_ACQUIRE)) { /* the test clock went back */
            __atomic_store_n(&last_look, now, __ATOMIC_RELEASE);
            if (now < __atomic_load_n(&thawed_at, __ATOMIC_ACQUIRE)) __atomic_store_n(&thawed_at, 0, __ATOMIC_RELEASE);
        }
        look(now);
    }
    return NULL;
}

static void start(void)
{
    pthread_attr_t a;
    pthread_t t;

    __atomic_store_n(&last_look, td_clock_mono_ms(), __ATOMIC_RELEASE);
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    /* A process that cannot start it sees no freezes, as before there was one. */
    watching = pthread_create(&t, &a, watch, NULL) == 0;
    pthread_attr_destroy(&a);
}

int64_t td_freeze_mark(void)
{
    int64_t now;

    pthread_once(&once, start);
    now = td_clock_mono_ms();
    if (watching) look(now);
    return now;
}

int td_freeze_since(int64_t mark)
{
    pthread_once(&once, start);
    if (!watching) return 0;
    look(td_clock_mono_ms());
    return __atomic_load_n(&thawed_at, __ATOMIC_ACQUIRE) > mark;
}
