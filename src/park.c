/* park -- see park.h. */
#include "park.h"
#include "clock.h"
#include "tokendist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct td_park {
    pthread_mutex_t lock;
    pthread_cond_t more;        /* an item was parked, or stopping */
    td_park_item *head;
    size_t count;
    long tick_ms;
    int stopping, started;
    pthread_t thread;
};

/* Unlinks the items to wake (all of them when stopping) into *out. */
static void sweep(td_park *p, int stopping, td_park_item **out)
{
    int64_t now = td_clock_mono_ms();
    td_park_item **pp = &p->head, *it;

    while ((it = *pp)) {
        int why = stopping ? TD_PARK_STOPPING
                  : it->ready(it->ud) ? TD_PARK_READY
                  : now >= it->deadline_ms ? TD_PARK_DEADLINE
                                           : -1;
        if (why < 0) {
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        p->count--;
        it->why = why;
        it->next = *out;
        *out = it;
    }
}

static void *parker(void *arg)
{
    td_park *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        td_park_item *wake = NULL;
        int stopping;

        while (!p->head && !p->stopping) pthread_cond_wait(&p->more, &p->lock);
        stopping = p->stopping;
        sweep(p, stopping, &wake);
        pthread_mutex_unlock(&p->lock);
        while (wake) { /* outside the lock: wake may take other locks */
            td_park_item *it = wake;
            wake = it->next;
            it->wake(it->ud, it->why);
        }
        if (stopping) return NULL;
        {
            struct timespec ts = {p->tick_ms / 1000, (p->tick_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&p->lock);
    }
}

int td_park_new(td_park **out, long tick_ms, char *err, size_t errlen)
{
    td_park *p = calloc(1, sizeof *p);
    int e;

    if (!p) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    p->tick_ms = tick_ms > 0 ? tick_ms : 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->more, NULL);
    if ((e = pthread_create(&p->thread, NULL, parker, p)) != 0) {
        snprintf(err, errlen, "无法启动等待请求的线程: %s", strerror(e));
        td_park_free(p);
        return TD_ERR;
    }
    p->started = 1;
    *out = p;
    return TD_OK;
}

int td_park_add(td_park *p, td_park_item *it)
{
    int rc = TD_EUNAVAIL;

    pthread_mutex_lock(&p->lock);
    if (!p->stopping) {
        it->next = p->head;
        p->head = it;
        p->count++;
        pthread_cond_signal(&p->more);
        rc = TD_OK;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

size_t td_park_count(td_park *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->count;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void td_park_stop(td_park *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->lock);
    if (p->started) pthread_join(p->thread, NULL);
    p->started = 0;
}

void td_park_free(td_park *p)
{
    if (!p) return;
    td_park_stop(p);
    pthread_cond_destroy(&p->more);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
