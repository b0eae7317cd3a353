/* workq -- see workq.h. */
#include "workq.h"
#include "tokendist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    td_work_fn fn;
    void *ud;
} job;

struct td_workq {
    pthread_mutex_t lock;
    pthread_cond_t more;        /* a job was queued, or stopping */
    job *ring;                  /* queue_max slots */
    unsigned cap, head, count;
    unsigned running;
    int stopping;
    pthread_t *threads;
    unsigned nthreads;
};

static void *worker(void *arg)
{
    td_workq *q = arg;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        job j;
        while (!q->count && !q->stopping) pthread_cond_wait(&q->more, &q->lock);
        if (!q->count) break; /* stopping, and nothing left to run */
        j = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->running++;
        pthread_mutex_unlock(&q->lock);
        j.fn(j.ud);
        pthread_mutex_lock(&q->lock);
        q->running--;
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int td_workq_new(td_workq **out, unsigned threads, unsigned queue_max, char *err, size_t errlen)
{
    td_workq *q = calloc(1, sizeof *q);
    int e;

    if (!q || !(q->ring = calloc(queue_max ? queue_max : 1, sizeof *q->ring)) ||
        !(q->threads = calloc(threads ? threads : 1, sizeof *q->threads))) {
        if (q) free(q->ring);
        free(q);
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    q->cap = queue_max ? queue_max : 1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->more, NULL);
    for (unsigned i = 0; i < (threads ? threads : 1); i++) {
        if ((e = pthread_create(&q->threads[i], NULL, worker, q)) != 0) {
            snprintf(err, errlen, "无法启动工作线程: %s", strerror(e));
            td_workq_free(q);
            return TD_ERR;
        }
        q->nthreads++;
    }
    *out = q;
    return TD_OK;
}

int td_workq_submit(td_workq *q, td_work_fn fn, void *ud)
{
    int rc = TD_EUNAVAIL;

    pthread_mutex_lock(&q->lock);
    if (!q->stopping && q->count < q->cap) {
        q->ring[(q->head + q->count) % q->cap] = (job){fn, ud};
        q->count++;
        pthread_cond_signal(&q->more);
        rc = TD_OK;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void td_workq_stop(td_workq *q, td_work_fn cancel)
{
    if (!q) return;
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    while (cancel && q->count) {
        job j = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_mutex_unlock(&q->lock);
        cancel(j.ud);
        pthread_mutex_lock(&q->lock);
    }
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->lock);
}

void td_workq_join(td_workq *q)
{
    if (!q) return;
    for (unsigned i = 0; i < q->nthreads; i++) pthread_join(q->threads[i], NULL);
    q->nthreads = 0;
}

void td_workq_free(td_workq *q)
{
    if (!q) return;
    td_workq_stop(q, NULL);
    td_workq_join(q);
    pthread_cond_destroy(&q->more);
    pthread_mutex_destroy(&q->lock);
    free(q->threads);
    free(q->ring);
    free(q);
}
