/*
 * api -- the endpoint semantics, independent of how a request arrives.
 *
 * The HTTP server (http.c) and the Tencent SCF event runtime (scf.c) are two
 * front doors to this one handler, so both answer every request the same
 * way.  A front door fills a td_api_req, calls td_api_handle, and turns the
 * td_api_resp into its own wire form.
 *
 * GETs are served from an in-memory snapshot per token name (the record's
 * JSON, serialised once), which a successful store replaces atomically;
 * the GET path never touches the store.
 */
#ifndef TD_API_H
#define TD_API_H

#include "config.h"
#include "metrics.h"
#include "record.h"
#include "snap.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct td_api td_api;

typedef struct td_api_req {
    const char *method;
    const char *path;           /* without the query string */
    const char *body;
    size_t body_len;
    long long content_length;   /* -1 when the request did not say */
    const char *authorization;  /* header values, NULL when absent */
    const char *x_api_key;
    const char *content_type;
    const char *host;           /* for the Host rule (host.h) */
    unsigned host_count;        /* Host lines the request carried: two is a bad request */
    /* The address the front door saw: the TCP peer, or the address the
     * SCF platform reports.  The handler takes the client from it and,
     * only when it is a trusted proxy, from these two (peer.h).  NULL
     * when the front door did not look (a plain GET needs no address). */
    const char *remote;
    const char *x_forwarded_for;
    const char *x_real_ip;
    int settled;                /* a parked request back: answer from what is served now */
    /* td_clock_mono_ms by which the answer must be out, for a front door
     * whose platform ends a request at a time limit (SCF's execution
     * timeout): a wait for a refresh then ends in time to answer.  0: no
     * such limit. */
    int64_t deadline_ms;
} td_api_req;

#define TD_API_MAXHDR 8

typedef struct td_api_resp {
    int status;
    td_route route;
    const char *body;           /* into owned or snap */
    size_t body_len;
    char *owned;                /* malloc'd body, or NULL */
    td_snap *snap;              /* retained snapshot, or NULL */
    size_t nhdr;
    struct { const char *name, *value; } hdr[TD_API_MAXHDR];
} td_api_resp;

/* What the refreshers of this process (or of its fleet: fleet.c) do for
 * the API.  Each member may be NULL.
 *
 * invalid: POST /v1/tokens/NAME/invalid -- a forced refresh of the
 *   reported token, waited for up to wait_ms; answers like
 *   td_refresher_force: TD_OK a token other than the reported one is in
 *   service, TD_ECONFLICT Feishu still issues it, TD_ETIMEOUT still
 *   running, TD_ENOTFOUND nobody refreshes name, TD_EUNAVAIL no refresher
 *   reachable now, other codes: the refresh failed; why says it.
 * stale: fresh on read -- 1 when a GET of name, whose served token expires
 *   at expire_ts (0: none), should wait for a refresh (the refresh is
 *   overdue: td_refresher_overdue).  Called on the HTTP thread: must not
 *   block.
 * freshen: that wait, up to wait_ms, for a front door that may block (SCF).
 * kick: start that refresh without waiting (HTTP thread: must not block);
 *   the HTTP front parks the request until stale says no more.
 * report_now, report_kick, reporting: invalid without a worker, for the
 *   HTTP thread (must not block).  report_now: the answer a report of
 *   token gets now -- a token already replaced, the outcome of the forced
 *   refresh that judged it, or while one runs "still running" with
 *   *pending 1 -- or TD_API_REPORT_UNKNOWN.  report_kick: start that
 *   forced refresh (here, or forwarded to the lease holder from a thread
 *   of the hooks' own); TD_OK when one now runs.  reporting: 1 while one
 *   runs for name.  The HTTP front parks a report while it runs and then
 *   answers it from report_now, so a flood of reports under a slow Feishu
 *   takes no worker and is answered alike.
 * status: adds what the refreshers do to a JSON object, as "refresh":
 *   {NAME: {...}} -- for /readyz (detail 0), and with the details of the
 *   status page (detail 1: next refresh, each sink's last delivery, recent
 *   failures and alerts).  On a worker: may block (the lease holder is
 *   asked of the store).
 * window: the renewal window (s) by which this server schedules name, or
 *   -1 when it does not refresh name.  Must not block (/metrics).
 * provider: the platform this server refreshes name from (its provider
 *   kind, "wechat"), or NULL when it does not refresh name: a record
 *   POSTed under name must not say another platform.  Must not block.
 * metrics: appends the refreshers' series by name (and sink) to /metrics.
 *   Must not block. */
struct json_t;
struct td_strbuf;
typedef struct td_api_hooks {
    void *ud;
    int (*invalid)(void *ud, const char *name, const char *token, long wait_ms, char *why, size_t whylen);
    int (*stale)(void *ud, const char *name, int64_t expire_ts);
    int (*freshen)(void *ud, const char *name, long wait_ms, char *why, size_t whylen);
    void (*kick)(void *ud, const char *name);
#define TD_API_REPORT_UNKNOWN 1 /* report_now: nothing to answer from (a TD_E* code is never positive) */
    int (*report_now)(void *ud, const char *name, const char *token, int *pending, char *why, size_t whylen);
    int (*report_kick)(void *ud, const char *name, const char *token);
    int (*reporting)(void *ud, const char *name);
    void (*status)(void *ud, struct json_t *out, int detail);
    long (*window)(void *ud, const char *name);
    const char *(*provider)(void *ud, const char *name);
    void (*metrics)(void *ud, struct td_strbuf *b);
} td_api_hooks;

#define TD_API_REPORT_WAIT_MS 4000   /* a report waits this long for its refresh (clients time out at 5 s) */
#define TD_API_SETTLED_REPORT_WAIT_MS 500 /* a report back from its park with nothing to answer from: on a worker */
#define TD_API_FRESHEN_WAIT_MS 4000  /* a GET waits this long for an overdue refresh */

typedef struct td_api_opts {
    td_store *store;            /* not owned */
    const td_strlist *push_keys;
    const td_strlist *read_keys;
    const char *cors_origin;
    size_t body_limit;
    const td_strlist *trusted_proxies;  /* CIDRs (--trusted-proxy) */
    const char *real_ip_header;         /* the header they name the client in (NULL: X-Forwarded-For) */
    const td_strlist *allowed_hosts;    /* --allowed-host */
    int loopback_listener;      /* the HTTP front listens on the loopback: Host rule on */
    long max_clock_skew;        /* seconds a record may be generated ahead of now */
} td_api_opts;

/* Fails with TD_EINVAL (err names the value) for a bad trusted proxy. */
int td_api_new(td_api **out, const td_api_opts *o, char *err, size_t errlen);
void td_api_free(td_api *api);

/* Sets (h NULL: clears) the hooks, also while the server answers.  *h is
 * not copied: keep it alive until cleared or td_api_free. */
void td_api_set_hooks(td_api *api, const td_api_hooks *h);

/* Answers a request.  The response holds references until
 * td_api_resp_clear.  Never fails: a failure is a 5xx response.  May
 * block (store I/O): for front doors whose thread may wait (SCF). */
void td_api_handle(td_api *api, const td_api_req *req, td_api_resp *resp);

/* The same in parts, for a front door whose thread must never wait (the
 * HTTP event thread).  td_api_fast answers what needs no store and no
 * other thread -- GETs from the snapshots, refusals, /healthz, /metrics --
 * and returns TD_API_DONE.  TD_API_READ, _WRITE, _REPORT: the request
 * needs td_api_slow (which fills its own resp), which the front door runs
 * on a thread that may block (see workq.h), one lane per kind so that a
 * stuck write never holds up /readyz, nor a report waiting for its
 * refresh a write; req and the strings it points to must stay valid until
 * td_api_slow returns.  TD_API_PARK: a GET whose token's refresh is
 * overdue (fresh on read; the refresh has been kicked), a report whose
 * forced refresh runs (report_kick), or one while another report of its
 * name runs on a worker (so one slow platform's reports hold one report
 * worker, not all): the front door
 * holds the request, without a thread, until td_api_parked_ready says so
 * or TD_API_FRESHEN_WAIT_MS passes, then calls td_api_fast again with
 * req->settled set (a settled report does not wait for its refresh
 * again: 202 while it still runs).  A TD_API_REPORT request must reach
 * td_api_slow or td_api_busy: td_api_fast marked its name running. */
enum { TD_API_DONE, TD_API_PARK, TD_API_READ, TD_API_WRITE, TD_API_REPORT };
int td_api_fast(td_api *api, const td_api_req *req, td_api_resp *resp);

/* 1 when a parked request may go on (a GET: its refresh is done, failed,
 * or no longer due; a report: its forced refresh ended and no other of
 * its name runs on a worker).  Non-blocking; any thread. */
int td_api_parked_ready(td_api *api, const td_api_req *req);
void td_api_slow(td_api *api, const td_api_req *req, td_api_resp *resp);

/* The answer to a request that td_api_fast deferred but that no worker
 * ran: 503 + Retry-After, saying why -- the queue was full, the request
 * waited longer than TD_API_QUEUE_WAIT_S for a worker (the store is
 * stuck: better a prompt 503 the client retries than an answer after the
 * client gave up), or the server is stopping. */
enum { TD_API_BUSY_FULL, TD_API_BUSY_WAITED, TD_API_BUSY_STOPPING };
#define TD_API_QUEUE_WAIT_S 2
void td_api_busy(td_api *api, const td_api_req *req, int why, td_api_resp *resp);

/* Answers what can be decided from the request line and headers alone
 * (unknown path or method, credentials, a Content-Length over the limit),
 * so a front door can refuse a body before reading it.  Returns 1 with
 * resp filled when it did, 0 when the body is needed. */
int td_api_precheck(td_api *api, const td_api_req *req, td_api_resp *resp);

void td_api_resp_clear(td_api_resp *resp);

/* Stores a validated record under name (put-if-newer) and, on success,
 * replaces the served snapshot.  The refresher writes through this too. */
int td_api_store_record(td_api *api, const char *name, const td_record *r, char *err,
                        size_t errlen);

/* Reloads name (all names when NULL) from the store into the snapshots:
 * at start and when another instance changed the shared store. */
int td_api_reload(td_api *api, const char *name, char *err, size_t errlen);

/* The current snapshot of name, retained (caller releases), or NULL. */
td_snap *td_api_snapshot(td_api *api, const char *name);

/* Decodes %XX escapes of a request path in place, as both front doors
 * must (libmicrohttpd's callback and the SCF event path), and returns the
 * new length.  %00 stays as it is: a NUL would cut the path short and make
 * "/v1/tokens/default%00junk" name the token "default". */
size_t td_api_unescape(char *s);

#endif
