/*
 * guard -- limits how often one client address may fail authentication.
 *
 * After GUARD_FAILS failures within a minute an address is "blocked" for
 * a minute: the API then answers its wrong or missing keys with 429
 * instead of 401/403, and logs once.  A fixed table of slots keyed by a
 * hash of the address: an attacker cycling addresses only evicts other
 * entries, it cannot grow memory.
 *
 * Threads: every call may come from any thread (one short lock).
 */
#ifndef TD_GUARD_H
#define TD_GUARD_H

#include <pthread.h>
#include <stdint.h>

#define TD_GUARD_SLOTS 256
#define TD_GUARD_FAILS 10       /* failures within TD_GUARD_WINDOW s ... */
#define TD_GUARD_WINDOW 60
#define TD_GUARD_BLOCK 60       /* ... block the address this long */

typedef struct td_guard_slot {
    char addr[48];
    int64_t window_start;
    int64_t blocked_until;
    unsigned fails;
} td_guard_slot;

typedef struct td_guard {
    pthread_mutex_t lock;
    td_guard_slot slot[TD_GUARD_SLOTS];
} td_guard;

void td_guard_init(td_guard *g);
void td_guard_free(td_guard *g);

/* Seconds addr must still wait, or 0 (also for addr NULL: unknown). */
int64_t td_guard_blocked(td_guard *g, const char *addr);

/* Counts one authentication failure of addr (NULL: ignored). */
void td_guard_fail(td_guard *g, const char *addr);

#endif
