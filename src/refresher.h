/*
 * refresher -- keeps a Feishu app_access_token in service on every sink.
 *
 * Feishu's rule drives the schedule: while at least 30 minutes of a token
 * remain, Feishu hands out the same token; inside the last 30 minutes it
 * mints a new 2-hour token and the old one stays valid until its own
 * expiry.  So the next fetch is due at (expire - renew_window + jitter),
 * computed from the seconds remaining that Feishu reports ("expire"), never
 * from our own guess of when the token was made.  Earlier would only get
 * the same token back; the served token therefore always has about
 * renew_window left.
 *
 * On failure (Feishu said no, or no sink took the token) the refresher
 * retries with exponential backoff and jitter between retry_min and
 * retry_max seconds (longer when the platform's rate limit says so, but
 * never beyond retry_max, nor, while a token is in service, later than a
 * minute before its expiry), keeps the
 * previous record in service and never pushes an expired one.  When the
 * served token has less than alert_below seconds left the group is told
 * once, and again when refreshing recovers.  A new token (not a re-fetch of
 * the same one) is announced with the seed's message.
 *
 * Other platforms renew by their own rule (provider.h): WeCom's token is
 * renewed right after its expiry; DingTalk's is fetched inside the window
 * to extend it, and renewed like WeCom's once a fetch did not move its
 * expiry (the extension docs/providers.md reads into DingTalk's docs).
 *
 * Forced refresh: a client that saw the platform reject the current token
 * reports it (POST /v1/tokens/NAME/invalid).  td_refresher_force starts
 * one fetch for all reports of that token and tells each reporter its
 * outcome.  Feishu has no "revoke and reissue" for app_access_token: inside
 * its 30-minute rule the fetch returns the SAME token.  The refresher then
 * says so in the log, in the platform's own words (provider.h
 * reissue_rule), and keeps serving it -- there is nothing more honest to
 * do; the client's failure had another cause (wrong app, missing scope, a
 * token revoked by an app secret reset, which Feishu answers with a new
 * token).  WeChat first judges the reported token (a check call, at most
 * once per token per 30 s) and spends a forced fetch, which revokes the
 * token for everyone, only on one it found invalid.
 *
 * Threads: td_refresher_start runs the loop on its own thread (inside
 * serve, or for `tokendist refresh`); td_refresher_cycle runs one cycle on
 * the caller's (`refresh --once`, `check`).  Never both at once.
 */
#ifndef TD_REFRESHER_H
#define TD_REFRESHER_H

#include "feishu.h"
#include "notice.h"
#include "config.h"
#include "provider.h"
#include "sink.h"
#include "tokens.h"

#include <stddef.h>

typedef struct td_refresher td_refresher;

/* Asked before each cycle when several servers share one store: 1 when
 * this process may refresh now (it holds the lease), 0 when another does,
 * -1 when the store could not say (no cycle either, but no other holder
 * known: the failures so far stay ours). */
typedef int (*td_refresher_lease_cb)(void *ud);

/* How long one forced fetch answers every report of the tokens it judged
 * (td_refresher_force); a fleet's reporters keep its answer as long. */
#define TD_REFRESHER_FORCE_INTERVAL_MS 30000L

typedef struct td_refresher_opts {
    td_provider provider;           /* where the token comes from */
    td_feishu feishu;               /* the notices' Feishu (base URL, timeout) */
    const td_sinks *sinks;          /* not owned; at least one */
    td_notice notice;               /* may enable nothing */
    int announce;                   /* tell the group about new tokens (alerts go anyway) */
    int ticket;                     /* also keep the jsapi_ticket (NAME.jsapi_ticket) */
    const char *notice_url;         /* the 🔗 line; NULL: left out (copied by td_refresher_new) */
    const char *name;               /* the token name served */
    char credentials[200];          /* what an alert asks to check: "微信应用凭证 (TOKENDIST_WX_APP_ID /
                                       TOKENDIST_WX_APP_SECRET)"; "": Feishu's FEISHU_* */
    const char *source, *usage, *platform;
    long renew_window;              /* s */
    long retry_min, retry_max;      /* s */
    long alert_below;               /* s; 0: never alert */
    long force_interval_ms;         /* 0: TD_REFRESHER_FORCE_INTERVAL_MS */
    int quiet_start;                /* the first token after the start is taken as already
                                       announced: local sink only, no notice */
    td_refresher_lease_cb may_refresh;  /* NULL: always */
    void *lease_ud;
} td_refresher_opts;

/* Fills o from the settings (the token t's platform and app, notice,
 * record fields, timing) for the sinks s.  o borrows c's and t's strings. */
void td_refresher_opts_from_config(td_refresher_opts *o, const td_config *c, const td_token_conf *t,
                                   const td_sinks *s);

/* The strings in o are borrowed: keep them alive. */
int td_refresher_new(td_refresher **out, const td_refresher_opts *o, char *err, size_t errlen);
void td_refresher_free(td_refresher *r);      /* stops the thread; NULL-safe */

/* One cycle now: fetch, push to every sink, notice.  TD_OK when at least
 * one sink holds the fetched token; err says what failed otherwise. */
int td_refresher_cycle(td_refresher *r, char *err, size_t errlen);

int td_refresher_start(td_refresher *r, char *err, size_t errlen);
void td_refresher_stop(td_refresher *r);      /* joins; idempotent */

/* A forced refresh because a client reported that Feishu rejected the
 * token whose id (td_record_token_id) is id; waits up to wait_ms for the
 * outcome.  Returns TD_OK when a token other than the reported one is in
 * service (now, or already before), TD_ECONFLICT when Feishu handed back
 * the same token, TD_ETIMEOUT when the fetch is still running, TD_ENOTFOUND
 * when this refresher does not serve name, TD_EUNAVAIL when it lost the
 * fleet lease, TD_ECANCELED when stopping, or the failure of the refresh;
 * why says it in a sentence.  Every report of one token shares one fetch;
 * for force_interval after it, reports of the tokens it judged get its
 * answer without another fetch (TD_ECONFLICT for a token it brought). */
int td_refresher_force(td_refresher *r, const char *name, const char *id, long wait_ms, char *why,
                       size_t whylen);

/* The same without waiting, for a thread that must not (the HTTP event
 * thread: a short lock only).  The answer td_refresher_force would give
 * now: a token already replaced, the last forced fetch's judgement, or,
 * while a forced fetch runs, TD_ETIMEOUT with *pending 1.  With nothing to
 * answer from, TD_REFRESHER_UNKNOWN -- or, with start, the forced fetch
 * starts here (TD_ETIMEOUT, *pending 1). */
#define TD_REFRESHER_UNKNOWN 1
int td_refresher_force_now(td_refresher *r, const char *name, const char *id, int start, int *pending,
                           char *why, size_t whylen);

/* Fresh on read: 1 when the token in service (expiring at expire_ts; 0:
 * none) is inside the renewal window and its refresh is overdue or under
 * way -- the background thread was frozen (SCF between invocations, a
 * SIGSTOP) or is fetching now -- so that a reader should rather wait for
 * td_refresher_freshen than get a token about to be replaced.  Lock-free:
 * the HTTP thread asks it for every GET.  expire_ts < 0: the refresher's
 * own record in service. */
int td_refresher_overdue(td_refresher *r, int64_t expire_ts);

/* Runs the due cycle now (or joins the one running) and waits up to
 * wait_ms for it to finish: every waiting reader shares one fetch.
 * TD_OK when it delivered a token, TD_ETIMEOUT when it still runs, else
 * the cycle's failure (the old token is then still served while valid).
 * When the refresh is no longer overdue (td_refresher_overdue: the cycle
 * the caller saw has ended since), answers at once with the last cycle's
 * outcome rather than wait for the next, due hours later. */
int td_refresher_freshen(td_refresher *r, long wait_ms, char *why, size_t whylen);

/* The overdue cycle now, without waiting for it (a no-op when a cycle
 * runs or none is due): for a reader parked until the refresh is done.
 * Never blocks beyond a short lock. */
void td_refresher_kick(td_refresher *r);

/* 1 while a forced refresh runs (td_refresher_force): a report now would
 * wait for it.  Never blocks. */
int td_refresher_forcing(td_refresher *r);

/* 1 when a token in service that expires at expire_ts ends our failures
 * after a handover (the refresher's own test): it is valid and not yet in
 * its renewal window. */
int td_refresher_superseded(const td_refresher *r, int64_t expire_ts);

/* While r backs off after failed cycles: how many failed in a row
 * (returned), the last one's words in err and the ms until the retry in
 * *retry_ms; 0 (err and *retry_ms untouched) when the last did not fail. */
int td_refresher_failing(td_refresher *r, char *err, size_t errlen, int64_t *retry_ms);

/* The renewal window in effect, in seconds: the settings', or 0 once an
 * extending platform did not extend (renewed after the expiry then). */
long td_refresher_window(const td_refresher *r);

/* The platform the token comes from: its provider kind ("wechat"; static). */
const char *td_refresher_provider(const td_refresher *r);

/* What the last deliveries to one sink did. */
typedef struct td_refresher_sink_state {
    const char *kind;           /* "local", "endpoint", "gitee" (static) */
    const char *label;          /* the sink's label for people (static) */
    int64_t last_ok, last_fail; /* Unix seconds; 0: never */
    int failures;               /* failed deliveries in a row */
    char last_err[300];
} td_refresher_sink_state;

/* Something an operator should see afterwards: a failed cycle, the alert
 * told to the group (or not: the text says), a recovery, another notice
 * (a new token, the recovery) told to the group.  Repeats of the newest
 * event (the same failure at every retry) are counted, not added. */
typedef enum { TD_EVENT_FAILURE, TD_EVENT_ALERT, TD_EVENT_RECOVERED, TD_EVENT_NOTICE } td_event_kind;

typedef struct td_refresher_event {
    td_event_kind kind;
    int64_t first, last;        /* Unix seconds of the first and the last repeat */
    long count;                 /* repeats, >= 1 */
    char text[400];             /* room for a Chinese message with a URL in it */
} td_refresher_event;

#define TD_REFRESHER_EVENTS 8       /* kept, newest first */

/* What the refresher has done so far, for /readyz, /metrics and /status. */
typedef struct td_refresher_state {
    long cycles, forced;
    int failures;               /* failed cycles in a row */
    int64_t last_ok, last_fail; /* Unix seconds; 0: never */
    char last_err[300];
    const char *provider;       /* the platform's kind ("feishu"; static) */
    int64_t next_due;           /* Unix seconds of the next cycle; 0: no thread runs */
    int cycling;                /* a cycle runs now */
    size_t nsinks;
    td_refresher_sink_state sinks[TD_SINKS_MAX];
    size_t nevents;
    td_refresher_event events[TD_REFRESHER_EVENTS]; /* newest first */
} td_refresher_state;

void td_refresher_status(td_refresher *r, td_refresher_state *st);

#endif
