/*
 * lease -- one holder across the fleet: of all instances sharing a store,
 * at most one holds a named lease at a time (e.g. "refresh:default", so
 * that exactly one instance fetches from Feishu).
 *
 * The lease lives in the store (td_store_lease): in Redis a key set with
 * SET NX PX ttl, renewed by its owner, deleted with compare-and-delete; in
 * an SQLite file (which several processes may open) a row with its owner
 * and wall-clock expiry, changed in one BEGIN IMMEDIATE; in S3 an object.
 * A store that one process owns (memory:) has no lease op, and every lease
 * is held.  When the holder dies, its key expires and another instance
 * takes over within about ttl_ms.  Leases live in real time, never the
 * test clock (clock.h).
 *
 * A lease is a hint that avoids duplicate work, not a lock that makes
 * writes safe: a holder paused past its ttl may still write once, and
 * put-if-newer makes such a stale write harmless.
 *
 * Typical use (the refresher):
 *
 *     td_lease *l;
 *     td_lease_new(&l, store, "refresh:default", NULL, 30000, err, sizeof err);
 *     td_lease_keep(l, err, sizeof err);      // renew/acquire in the background
 *     ...
 *     if (td_lease_hold(l, ...) == 1) refresh_now(); // before each cycle: one round trip
 *     if (td_lease_held(l)) ...               // the last outcome, without asking
 *     ...
 *     td_lease_free(l);                       // stops, and releases if held
 *
 * Threads: every call may come from any thread.
 */
#ifndef TD_LEASE_H
#define TD_LEASE_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct td_lease td_lease;

#define TD_LEASE_TTL_MS 30000   /* a sensible default ttl */

/* A new owner id, "host:pid:random" (no blanks), unique per call. */
#define TD_LEASE_OWNER_MAX 160
void td_lease_new_owner(char *buf, size_t len);

/* A lease named name (1-128 chars) in store, held for ttl_ms (>= 300) per
 * acquisition or renewal, by owner (NULL: a new id of its own; a process
 * with several leases gives them one id, its name in the fleet).
 * Acquires nothing yet. */
int td_lease_new(td_lease **out, td_store *store, const char *name, const char *owner, int64_t ttl_ms,
                 char *err, size_t errlen);

/* Stops the keeper, releases the lease if held, frees.  NULL-safe. */
void td_lease_free(td_lease *l);

/* Acquires the lease, or renews it when we hold it, now (one store round
 * trip).  Returns 1 when we hold it, 0 when another instance does, or a
 * negative TD_E* code (err filled) when the store could not be asked and
 * our last hold has lapsed.  While the store is unreachable, a hold
 * acquired earlier still counts until its ttl runs out: no other instance
 * can have it before then. */
int td_lease_hold(td_lease *l, char *err, size_t errlen);

/* Starts a thread that calls td_lease_hold every ttl/3 while we hold the
 * lease and every ttl/10 while another does, so that a holder stays holder
 * between cycles and a waiter takes over within about 1.1 * ttl of the
 * holder's death.  Logs when this instance gains or loses the lease. */
int td_lease_keep(td_lease *l, char *err, size_t errlen);

/* 1 when we hold the lease now, from the last td_lease_hold (by the keeper
 * or a caller), without asking the store; else 0. */
int td_lease_held(td_lease *l);

/* What the last td_lease_hold learned, however old (a freeze may have
 * outlived it: td_lease_view then says TD_LEASE_UNKNOWN), without asking
 * the store: 1 ours, 0 another's, -1 the store did not answer and our
 * hold had run out, 2 nothing yet (or given back). */
int td_lease_last(td_lease *l);

/* How long we surely go on holding the lease, in real ms: -1 while the
 * store answers (the keeper renews the hold before it runs out); while it
 * does not, what is left of the last hold it granted, 0 when that has run
 * out or we hold none -- a refresh due later than that will not run here
 * unless the store comes back first. */
int64_t td_lease_sure_ms(td_lease *l);

/* What the last td_lease_hold said, as far as it still stands, without
 * asking the store: TD_LEASE_OURS (td_lease_held); TD_LEASE_THEIRS
 * another instance held it, and the process was not frozen since
 * (freeze.h: the keeper looks every ttl/10 otherwise); TD_LEASE_UNKNOWN
 * nobody knows -- no answer yet, the store failed, or a freeze outlived
 * our hold or the look that found another's (SCF thaws an instance whose
 * view is half a minute old).  Only the store can say then: the caller
 * takes the lease (td_lease_hold) before it treats the lease as another's. */
enum { TD_LEASE_UNKNOWN = -1, TD_LEASE_THEIRS = 0, TD_LEASE_OURS = 1 };
int td_lease_view(td_lease *l);

/* Stops the keeper and gives the lease back now, when held, so that
 * another instance takes over at its next look rather than at the
 * expiry; from then on td_lease_hold says 0 without asking, so that a
 * refresher still running does not take it again.  For a clean stop,
 * while the store can still be written (before td_httpc_abort_all).
 * Idempotent; td_lease_free then has nothing left to give back. */
void td_lease_release(td_lease *l);


#endif
