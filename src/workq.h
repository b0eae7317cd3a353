/*
 * workq -- a small pool of threads that run blocking jobs for a thread
 * that must not block (libuv's uv_queue_work, in miniature).
 *
 * The HTTP front door runs on one event thread that must answer GETs
 * whatever the store is doing, so a request that needs the store (a POST,
 * /readyz, ...) is suspended there and handed to this pool; the job
 * resumes the connection when its answer is ready.
 *
 * The queue is bounded: a full queue refuses the job (the caller answers
 * 503 at once) instead of growing without limit behind a stuck store.
 *
 * Threads: td_workq_submit may be called from any thread.
 */
#ifndef TD_WORKQ_H
#define TD_WORKQ_H

#include <stddef.h>

typedef struct td_workq td_workq;

typedef void (*td_work_fn)(void *ud);

/* Starts `threads` workers sharing a queue of at most `queue_max` waiting
 * jobs. */
int td_workq_new(td_workq **out, unsigned threads, unsigned queue_max, char *err, size_t errlen);

/* Queues fn(ud).  TD_OK, or TD_EUNAVAIL when the queue is full or the pool
 * is stopping (fn is then never called: the caller still owns ud). */
int td_workq_submit(td_workq *q, td_work_fn fn, void *ud);

/* Refuses new jobs and hands every job still queued to cancel(ud) on
 * this thread (NULL: the workers run them as usual); does not wait for
 * running jobs.  td_workq_submit stays safe to call (and refuses).
 * NULL-safe. */
void td_workq_stop(td_workq *q, td_work_fn cancel);

/* Waits for the workers to finish what they run (and, after a stop
 * without cancel, what is queued).  Only after td_workq_stop.  NULL-safe. */
void td_workq_join(td_workq *q);

/* Stops (running what is queued), joins and frees the pool.  NULL-safe. */
void td_workq_free(td_workq *q);

#endif
