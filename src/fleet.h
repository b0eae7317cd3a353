/*
 * fleet -- the servers that share one store, as one service.
 *
 * Of the servers on one shared store, each token is refreshed by the one
 * holding its lease ("refresh:NAME", lease.h).  A client may report an
 * invalid token (POST /v1/tokens/NAME/invalid) to any of them, though:
 * this module carries such a report to the lease holder and its outcome
 * back, so that every server answers a report the same way -- 200 with the
 * new record, 409 when Feishu still issues the reported token, 202 when
 * the holder took it but has no answer yet -- and the deduplicated forced
 * refresh really runs, once, where the token is refreshed.
 *
 * Messages travel through the store (td_store_send / td_store_listen:
 * Redis pub/sub, each server listening on an inbox named by its owner id,
 * the id its leases carry).  A store one process owns (memory:) has no
 * messages and no lease: the local refresher is always the holder.  A
 * shared store without messages (an SQLite file several servers open,
 * S3) has leases only: a report to the holder is answered by its
 * refresher, one to any other server is 503.
 *
 *   reporter                                 lease holder
 *   td_fleet_report ── "invalid R NAME ID ME WAIT" ──▶ inbox: queued
 *        (waits for R)  ◀── "ack R" ──              → worker:
 *                                              td_refresher_force(...)
 *                       ◀── "result R RC WHY" ──
 *
 * The "ack" is what makes a 202 honest: a wait that ends without an
 * answer and without it means the report was not taken -- the holder is
 * frozen or exiting -- and the reporter answers 503, not 202.  Reports of one token id arriving at
 * once share one message (a single flight per name, id and verb), and an
 * invalid report's final answer is kept for TD_REFRESHER_FORCE_INTERVAL_MS
 * as the holder keeps it, so a flood is one forward, one line in the
 * holder's log.
 *
 * Threads: td_fleet_report runs on an API worker and may wait; inbox
 * messages arrive on the store's thread and are handed to a small pool of
 * the fleet's own, so the store's thread never waits for a refresh.
 */
#ifndef TD_FLEET_H
#define TD_FLEET_H

#include "api.h"
#include "lease.h"
#include "refresher.h"
#include "store.h"

#include <jansson.h>
#include <stddef.h>

typedef struct td_fleet td_fleet;

int td_fleet_new(td_fleet **out, td_store *store, char *err, size_t errlen);

/* This process refreshes name: its lease is taken and kept in the
 * background.  Call before td_fleet_attach; *lease is for the refresher's
 * may_refresh (td_fleet_may_refresh). */
int td_fleet_add(td_fleet *f, const char *name, td_lease **lease, char *err, size_t errlen);

/* td_refresher_lease_cb: 1 when this process holds the lease, 0 when
 * another does, -1 when the store could not say (logged) (ud: the
 * td_lease from td_fleet_add). */
int td_fleet_may_refresh(void *lease);

/* A token expired this recently is being renewed (WeCom renews right after
 * the expiry): readers wait for it, and it is no outage yet. */
#define TD_FLEET_BRIDGE_S 10

/* Whether this process runs name's refresh that is due in within_ms: 1
 * when its lease is ours (or the store has no leases: every instance
 * refreshes itself) and stays ours until then as far as we know, 0 when
 * another instance holds it or name has no refresher here, -1 when the
 * store cannot say (no other holder known; no round of ours runs
 * meanwhile) or does not answer and our hold runs out before then.
 * ask: unless another instance held it at our last look, the store is
 * asked (td_lease_hold): one round trip, so not on the HTTP thread;
 * without, only what we know is used -- the last answer, however old,
 * and our hold as it stands. */
int td_fleet_refreshes(td_fleet *f, const char *name, int64_t within_ms, int ask);

/* 1 when the store's last answer about name's refresh lease named another
 * holder -- also when a freeze has made it old (SCF thaws an instance for
 * each timer event); never asks the store.  0 otherwise, and when name
 * has no refresher here. */
int td_fleet_held_elsewhere(td_fleet *f, const char *name);

/* The refresher of name (added before); reports for name go to it while
 * this process holds the lease. */
void td_fleet_attach(td_fleet *f, const char *name, td_refresher *r);

/* Starts taking reports from the other servers (the inbox). */
int td_fleet_listen(td_fleet *f, char *err, size_t errlen);

/* td_api_hooks.invalid: a report that Feishu rejected token, handled here or
 * by the lease holder; same answers as td_refresher_force, plus
 * TD_EUNAVAIL when no server holds the lease, the holder cannot be
 * reached or did not acknowledge the report (it was not taken), and
 * TD_ENOTFOUND when no server refreshes name at all. */
int td_fleet_report(void *fleet, const char *name, const char *token, long wait_ms, char *why,
                    size_t whylen);

/* td_api_hooks.status: adds {"refresh": {NAME: {...}}} to out -- this
 * server's refresher counters, and who holds each lease; with detail, also
 * the renewal window, the next refresh, each sink's last delivery and the
 * recent events (the status page). */
void td_fleet_status(void *fleet, json_t *out, int detail);

/* The hooks the API calls (invalid reports, fresh on read, /readyz),
 * valid while f is. */
const td_api_hooks *td_fleet_hooks(td_fleet *f);

/* Stops taking reports and finishes the ones under way (before the
 * refreshers stop).  Idempotent. */
void td_fleet_stop(td_fleet *f);

/* A clean stop: gives every lease back now (td_lease_release), waiting
 * for that at most wait_ms, so that another server takes over at its next
 * look (3 s) instead of at the leases' expiry (30 s).  Call before
 * td_httpc_abort_all, which would refuse the store's requests (S3).  A
 * release still under way then ends by td_fleet_free.  Idempotent. */
void td_fleet_release(td_fleet *f, long wait_ms);

/* Stops, releases the leases, frees.  The refreshers must be stopped
 * first (their may_refresh uses the leases).  NULL-safe. */
void td_fleet_free(td_fleet *f);

#endif
