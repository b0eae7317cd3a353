/*
 * park -- requests held without a thread until a condition holds.
 *
 * A GET whose token's refresh is overdue waits for the refresh (fresh on
 * read).  Waiting on a worker thread would let a slow renewal take every
 * worker, so that writes and /readyz queue behind GETs of a token that is
 * still valid; parked requests take no thread at all: one parker thread
 * looks at every parked item each tick (a cheap, non-blocking check) and
 * wakes those whose condition holds or whose deadline passed.
 *
 * Items are the caller's memory (intrusive, no allocation); an item is the
 * caller's again once its wake function has been called.
 *
 * Threads: td_park_add from any thread; ready and wake run on the parker
 * thread (ready under the park's lock: it must not block nor park).
 */
#ifndef TD_PARK_H
#define TD_PARK_H

#include <stdint.h>
#include <stddef.h>

typedef struct td_park td_park;

/* Why an item was woken. */
enum { TD_PARK_READY, TD_PARK_DEADLINE, TD_PARK_STOPPING };

typedef struct td_park_item {
    struct td_park_item *next;
    int64_t deadline_ms;        /* td_clock_mono_ms */
    int (*ready)(void *ud);
    void (*wake)(void *ud, int why);
    void *ud;
    int why;                    /* TD_PARK_*: set by the park before wake */
} td_park_item;

/* Starts the parker thread, looking at parked items every tick_ms. */
int td_park_new(td_park **out, long tick_ms, char *err, size_t errlen);

/* Parks it until it->ready(it->ud) or it->deadline_ms; it->wake is then
 * called once.  TD_EUNAVAIL when the park is stopping (wake is never
 * called: the caller answers at once). */
int td_park_add(td_park *p, td_park_item *it);

/* Items parked now. */
size_t td_park_count(td_park *p);

/* Wakes every item (TD_PARK_STOPPING), refuses new ones and joins the
 * thread; td_park_add stays safe to call.  NULL-safe. */
void td_park_stop(td_park *p);

/* Stops, then frees.  NULL-safe. */
void td_park_free(td_park *p);

#endif
