/*
 * guard -- limits how often one client address may fail authentication.
 *
 * After TD_GUARD_FAILS failures within TD_GUARD_WINDOW seconds an address
 * is "blocked" for TD_GUARD_BLOCK seconds: the API then answers its wrong
 * or missing keys with 429 instead of 401/403, and logs once.  A valid
 * key is never refused: the guard sits behind the key check, not in
 * front of it.  An address is often shared -- every client of a reverse
 * proxy, a NAT, an office -- and a limit in front of the key check let
 * any anonymous client of that address lock the producer and every
 * reader out with a few wrong keys.
 *
 * So the guard does not slow down guessing (a guess still learns 200 or
 * not); the keys' length does that (`openssl rand -hex 24`: 192 bits).
 * It marks, counts (tokendist_auth_blocked_total) and logs who is
 * guessing, and answers them cheaply.
 *
 * A fixed table of slots keyed by a hash of the address: an attacker
 * cycling addresses cannot grow memory.  A slot holding a block keeps it
 * until it ends, whichever other address hashes there; that other
 * address goes uncounted meanwhile.
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
#define TD__GUARD_STR(x) #x
#define TD__GUARD_XSTR(x) TD__GUARD_STR(x)
#define TD_GUARD_BLOCK_TEXT TD__GUARD_XSTR(TD_GUARD_BLOCK) /* "60", for Retry-After */

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

/* Counts one authentication failure of addr (NULL: unknown, ignored).
 * Returns the seconds addr is still blocked when it already was (this
 * failure is then not counted), else 0 -- also for the failure that
 * starts a block: the TD_GUARD_FAILS failures themselves get their
 * 401/403, the ones after them 429. */
int64_t td_guard_fail(td_guard *g, const char *addr);

#endif
