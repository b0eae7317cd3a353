/* api -- see api.h. */
#include "api.h"
#include "auth.h"
#include "guard.h"
#include "host.h"
#include "peer.h"
#include "provider.h"
#include "sink.h"
#include "snap.h"
#include "status.h"
#include "strbuf.h"
#include "tokens.h"
#include "clock.h"
#include "log.h"
#include "tokendist.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* /metrics is bounded, and sized for the name limit: no series line is
 * longer than METRICS_LINE_MAX (the longest series name, 48 bytes, a name
 * label of 77 -- a ticket's key --, a sink label and a 20-digit value,
 * with margin).  Each served name has two series (expiry, renewal
 * window); each name refreshed here (a token and its ticket, at most
 * 2 * TD_TOKENS_MAX) three plus two per sink; what does not depend on
 * names (requests by route and status, counters, help text) fits in
 * 64 KiB.  About 690 KiB. */
#define METRICS_LINE_MAX 200
#define METRICS_CAP \
    (65536 + (2 * TD_SNAP_NAMES_MAX + 2 * TD_TOKENS_MAX * (3 + 2 * TD_SINKS_MAX)) * METRICS_LINE_MAX)
#define UNREADABLE_MAX 16       /* unreadable stored records remembered for /readyz */
#define REPORTS_MAX 16          /* names with a report running, tracked at once (4 report workers: ample) */
#define STATUS_TOKENS_MAX 64    /* tokens the status page shows */
#define STATUS_HISTORY 10       /* records per token it shows */
#define STR_(x) #x
#define STR(x) STR_(x)

/* Loading.  A full reload walks the store in pages and reads at most
 * LOAD_ROWS_MAX rows: a few times the names served, so that rows it
 * cannot serve (another tool's, corrupt ones) never push acknowledged
 * names out, and bounded, so that a store another tool filled costs a
 * bounded time and memory at each reload. */
#define LOAD_PAGE 128
#define LOAD_ROWS_MAX (4 * TD_SNAP_NAMES_MAX)
#define KNOWN_BAD_MAX (LOAD_ROWS_MAX + 256)

/* A stored record that could not be served, as /readyz reports it. */
typedef struct unreadable {
    char name[TD_NAME_MAX + 1];
    char problem[200];
} unreadable;

/* An unreadable record already logged: fingerprints of its name and of
 * its problem, and the full reload that last met it. */
typedef struct known_bad {
    uint64_t name_fp, problem_fp;
    unsigned gen;
} known_bad;

struct td_api {
    td_store *store;
    td_auth_keys push, read;
    char *cors_origin;
    size_t body_limit;
    int64_t max_skew;
    td_peer_trust trust;
    td_host_rule hosts;
    const td_api_hooks *hooks;  /* atomic: set while serving */

    td_guard guard;
    td_snaps snaps;

    pthread_mutex_t bad_lock;   /* guards the fields below */
    unreadable bad[UNREADABLE_MAX];
    size_t nbad;                /* remembered for /readyz */
    /* Every unreadable record (up to KNOWN_BAD_MAX), sorted by name_fp:
     * each is logged once, not at every reload, and counted. */
    known_bad *known;
    size_t nknown, known_cap;
    unsigned gen;               /* of the full reload under way or last run */
    size_t left_out;            /* valid names the last full reload could not serve */
    int truncated;              /* it stopped at LOAD_ROWS_MAX rows */
    int64_t write_failing_since; /* unix s of the first of the failing writes in a row, 0: ok */
    char write_err[1024];       /* the last failed write's reason */

    /* Names with a report running on a worker: a second report of the
     * same name parks until it ends, so one slow platform's reports hold
     * one worker of the report lane, not all of them. */
    pthread_mutex_t rep_lock;
    struct { char name[TD_NAME_MAX + 1]; int n; } rep[REPORTS_MAX];
};

static const char JSON_CT[] = "application/json; charset=utf-8";
static const char TEXT_CT[] = "text/plain; version=0.0.4; charset=utf-8";
static const char HTML_CT[] = "text/html; charset=utf-8";
static const char ALLOW_TOKEN[] = "GET, POST, OPTIONS";
static const char ALLOW_READ[] = "GET, OPTIONS";
static const char ALLOW_REPORT[] = "POST, OPTIONS";

/* The seed's exact bodies. */
static const char B_NOTFOUND[] = "{\"error\": \"Token not found or expired\"}";
static const char B_STORED[] = "{\"success\": true, \"message\": \"Token stored successfully\"}";
static const char B_STOREFAIL[] = "{\"success\": false, \"message\": \"Failed to store token\"}";
static const char B_METHOD[] = "{\"error\": \"Method not allowed\"}";
static const char B_NOPATH[] = "{\"error\": \"Not found\"}";
static const char B_HEALTHY[] = "{\"status\": \"ok\"}";

td_snap *td_api_snapshot(td_api *api, const char *name) { return td_snaps_get(&api->snaps, name); }

/* --- construction ---------------------------------------------------- */

int td_api_new(td_api **out, const td_api_opts *o, char *err, size_t errlen)
{
    td_api *api = calloc(1, sizeof *api);
    static const td_strlist none = {0};
    const char *cors = "*";
    char sub[300];
    int rc = TD_ENOMEM;

    if (!api) goto fail;
    td_guard_init(&api->guard);
    td_snaps_init(&api->snaps);
    pthread_mutex_init(&api->bad_lock, NULL);
    pthread_mutex_init(&api->rep_lock, NULL);
    api->store = o->store;
    api->body_limit = o->body_limit ? o->body_limit : 65536;
    api->max_skew = o->max_clock_skew;
    if ((rc = td_peer_trust_init(&api->trust, o->trusted_proxies, o->real_ip_header, sub, sizeof sub)) != TD_OK) {
        snprintf(err, errlen, "--trusted-proxy: %s", sub);
        goto fail;
    }
    rc = TD_ENOMEM;
    if (td_host_rule_init(&api->hosts, o->allowed_hosts, o->loopback_listener) != TD_OK) goto fail;
    /* The seed answers every origin, which suits a public endpoint.  On a
     * loopback listener that nobody proxies to (no --allowed-host), any web
     * page the operator opens could read the token that way: no CORS
     * header there unless asked for. */
    if (o->cors_origin && *o->cors_origin) cors = o->cors_origin;
    else if (o->loopback_listener && (!o->allowed_hosts || o->allowed_hosts->n == 0)) cors = NULL;
    if (cors && !(api->cors_origin = strdup(cors))) goto fail;
    if (td_auth_keys_init(&api->push, o->push_keys ? o->push_keys : &none) != TD_OK ||
        td_auth_keys_init(&api->read, o->read_keys ? o->read_keys : &none) != TD_OK)
        goto fail;
    if (api->store && (rc = td_api_reload(api, NULL, err, errlen)) != TD_OK) goto fail;
    *out = api;
    return TD_OK;
fail:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足");
    td_api_free(api);
    return rc;
}

void td_api_free(td_api *api)
{
    if (!api) return;
    td_snaps_free(&api->snaps);
    td_guard_free(&api->guard);
    pthread_mutex_destroy(&api->bad_lock);
    pthread_mutex_destroy(&api->rep_lock);
    free(api->known);
    td_peer_trust_free(&api->trust);
    td_host_rule_free(&api->hosts);
    td_auth_keys_free(&api->push);
    td_auth_keys_free(&api->read);
    free(api->cors_origin);
    free(api);
}

/* Set while the server already answers: the refresher starts after the
 * socket is bound. */
void td_api_set_hooks(td_api *api, const td_api_hooks *h)
{
    __atomic_store_n(&api->hooks, h, __ATOMIC_RELEASE);
}

static const td_api_hooks *hooks_of(td_api *api) { return __atomic_load_n(&api->hooks, __ATOMIC_ACQUIRE); }

/* A stored entry as the API serves it: a valid name, a record that the
 * one validator accepts (expiry aside: an expired record is still the
 * newest one), and the store's index columns agreeing with the JSON (a
 * record another tool wrote may disagree, and then neither is trusted).
 * The JSON served is the record's normalised form. */
static int entry_snap(const td_store_entry *e, td_snap **out, char *why, size_t whylen)
{
    td_record *rec = NULL;
    const char *json;
    size_t len;
    char sub[300];
    int rc;

    *out = NULL;
    if (e->problem) {
        snprintf(why, whylen, "%s", e->problem);
        return TD_EINVAL;
    }
    if (!td_record_key_valid(e->name, strlen(e->name))) {
        snprintf(why, whylen, "名称不符合规则 (%s)", TD_NAME_RULE);
        return TD_EINVAL;
    }
    if ((rc = td_record_parse(e->json, e->json_len, 0, -1, &rec, sub, sizeof sub)) != TD_OK) {
        if (rc == TD_ENOMEM) return rc;
        snprintf(why, whylen, "不是有效的 token 记录: %s", sub);
        return TD_EINVAL;
    }
    if (td_record_generated(rec) != e->generated_ts || td_record_expires(rec) != e->expire_ts) {
        snprintf(why, whylen, "记录的 generated_timestamp/expire_timestamp (%lld/%lld) 与存储的索引 (%lld/%lld) 不一致",
                 (long long)td_record_generated(rec), (long long)td_record_expires(rec),
                 (long long)e->generated_ts, (long long)e->expire_ts);
        td_record_free(rec);
        return TD_EINVAL;
    }
    json = td_record_json(rec, &len);
    *out = td_snap_new(e->name, json, len, e->generated_ts, e->expire_ts);
    td_record_free(rec);
    return *out ? TD_OK : TD_ENOMEM;
}

/* FNV-1a: enough to tell records apart in a set that only decides
 * whether a line was logged already. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The index of name_fp in api->known, or where it would go (lock held). */
static size_t known_at(const td_api *api, uint64_t name_fp)
{
    size_t lo = 0, hi = api->nknown;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (api->known[mid].name_fp < name_fp) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Remembers (or, with problem NULL, forgets) that name's stored record is
 * unreadable, and counts it; logs it, naming where it is stored, when it
 * was not known with this problem.  Beyond KNOWN_BAD_MAX records neither
 * logged nor counted (/readyz says how many were). */
static void note_unreadable(td_api *api, const char *name, const char *problem)
{
    char shown[TD_NAME_MAX + 1], where[400];
    uint64_t nfp, pfp = problem ? fnv1a(problem) : 0;
    size_t i, k, n = 0;
    int fresh = 0;

    for (const char *p = name; *p && n < TD_NAME_MAX; p++) /* another tool's name: printable only */
        shown[n++] = (*p > ' ' && *p < 0x7f) ? *p : '?';
    shown[n] = '\0';
    nfp = fnv1a(shown);
    pthread_mutex_lock(&api->bad_lock);
    for (i = 0; i < api->nbad && strcmp(api->bad[i].name, shown) != 0; i++)
        ;
    k = known_at(api, nfp);
    if (!problem) {
        if (i < api->nbad) api->bad[i] = api->bad[--api->nbad];
        if (k < api->nknown && api->known[k].name_fp == nfp)
            memmove(&api->known[k], &api->known[k + 1], (--api->nknown - k) * sizeof *api->known);
    } else {
        if (k < api->nknown && api->known[k].name_fp == nfp) {
            fresh = api->known[k].problem_fp != pfp;
            api->known[k].problem_fp = pfp;
            api->known[k].gen = api->gen;
        } else if (api->nknown < KNOWN_BAD_MAX) {
            if (api->nknown == api->known_cap) {
                size_t cap = api->known_cap ? api->known_cap * 2 : 64;
                known_bad *v = realloc(api->known, (cap > KNOWN_BAD_MAX ? KNOWN_BAD_MAX : cap) * sizeof *v);
                if (v) api->known = v, api->known_cap = cap > KNOWN_BAD_MAX ? KNOWN_BAD_MAX : cap;
            }
            if (api->nknown < api->known_cap) {
                memmove(&api->known[k + 1], &api->known[k], (api->nknown - k) * sizeof *api->known);
                api->known[k] = (known_bad){nfp, pfp, api->gen};
                api->nknown++;
                fresh = 1;
            }
        }
        if (i < api->nbad) {
            snprintf(api->bad[i].problem, sizeof api->bad[i].problem, "%s", problem);
        } else if (api->nbad < UNREADABLE_MAX) {
            snprintf(api->bad[api->nbad].name, sizeof api->bad[0].name, "%s", shown);
            snprintf(api->bad[api->nbad].problem, sizeof api->bad[0].problem, "%s", problem);
            api->nbad++;
        }
    }
    td_metrics_gauge_set(TD_G_UNREADABLE_RECORDS, (long)api->nknown);
    pthread_mutex_unlock(&api->bad_lock);
    if (fresh)
        td_log("❌ 存储中的记录无法读取，已跳过 (其他 token 照常分发): %s: %s",
               td_store_where(api->store, shown, where, sizeof where), problem);
}

/* After a full reload that read the whole store (up to LOAD_ROWS_MAX
 * rows): the unreadable records it did not meet again are gone. */
static void sweep_unreadable(td_api *api)
{
    size_t w = 0;

    pthread_mutex_lock(&api->bad_lock);
    for (size_t r = 0; r < api->nknown; r++)
        if (api->known[r].gen == api->gen) api->known[w++] = api->known[r];
    api->nknown = w;
    for (size_t i = 0; i < api->nbad;) {
        size_t k = known_at(api, fnv1a(api->bad[i].name));
        if (k < api->nknown && api->known[k].name_fp == fnv1a(api->bad[i].name)) i++;
        else api->bad[i] = api->bad[--api->nbad];
    }
    td_metrics_gauge_set(TD_G_UNREADABLE_RECORDS, (long)api->nknown);
    pthread_mutex_unlock(&api->bad_lock);
}

/* Installs what one page of the store holds: valid records as far as the
 * table has room; counts the valid names left out. */
static int load_page(td_api *api, td_store_entry *v, size_t n, size_t *left_out)
{
    char why[300];
    int rc = TD_OK;

    for (size_t i = 0; i < n; i++) {
        td_snap *s = NULL;
        if ((rc = entry_snap(&v[i], &s, why, sizeof why)) == TD_ENOMEM) return rc;
        if (rc != TD_OK) { /* the token served from memory (if any) stays */
            note_unreadable(api, v[i].name, why);
            continue;
        }
        note_unreadable(api, v[i].name, NULL);
        if ((rc = td_snaps_install(&api->snaps, s)) == TD_ETOOBIG) ++*left_out;
        else if (rc != TD_OK) return rc;
    }
    return TD_OK;
}

/* Says, when it changed, how many valid stored names are not served and
 * by which rule the served ones were chosen. */
static void log_left_out(td_api *api, size_t left, int truncated)
{
    int changed;

    pthread_mutex_lock(&api->bad_lock);
    changed = left != api->left_out || truncated != api->truncated;
    api->left_out = left, api->truncated = truncated;
    pthread_mutex_unlock(&api->bad_lock);
    if (!changed) return;
    if (left)
        td_log("⚠️ 存储中有效的 token 名称超过 %d 个：%zu 个未加载。分发的是已在分发的名称，空位按名称排序依次补上 "
               "(启动时即按名称排序的前 %d 个)；未加载的名称写入时返回 400",
               TD_SNAP_NAMES_MAX, left, TD_SNAP_NAMES_MAX);
    if (truncated)
        td_log("⚠️ 存储中超过 %d 行：每次加载只读按名称排序的前 %d 行，其后的名称不分发%s", LOAD_ROWS_MAX,
               LOAD_ROWS_MAX, left ? "，也未计入上面的数目" : "");
    if (!left && !truncated) td_log("✅ 存储中有效的 token 名称都已加载");
}

int td_api_reload(td_api *api, const char *name, char *err, size_t errlen)
{
    td_store_entry *v = NULL, one;
    size_t n = 0, left = 0, from = 0;
    int rc, more = 0;

    if (name) {
        if ((rc = td_store_get(api->store, name, &one, err, errlen)) == TD_ENOTFOUND) {
            note_unreadable(api, name, NULL);
            return TD_OK;
        }
        if (rc != TD_OK) return rc;
        rc = load_page(api, &one, 1, &left);
        td_store_entry_clear(&one);
        goto out;
    }
    /* Mark and sweep: a problem met again is not news (no second log
     * line); one not met again is gone. */
    pthread_mutex_lock(&api->bad_lock);
    api->gen++;
    pthread_mutex_unlock(&api->bad_lock);
    do {
        size_t page = LOAD_ROWS_MAX - from < LOAD_PAGE ? LOAD_ROWS_MAX - from : LOAD_PAGE;
        if ((rc = td_store_list(api->store, from, page, &v, &n, &more, err, errlen)) != TD_OK) return rc;
        rc = load_page(api, v, n, &left);
        td_store_list_free(v, n);
        from += page;
    } while (rc == TD_OK && more && from < LOAD_ROWS_MAX);
    if (rc == TD_OK) {
        sweep_unreadable(api);
        log_left_out(api, left, more);
    }
out:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足");
    else if (rc != TD_OK) snprintf(err, errlen, "%s", td_strerror(rc));
    return rc;
}

/* The answer for a name the limit refuses. */
static void names_full(char *err, size_t errlen, const char *name, const char *detail)
{
    snprintf(err, errlen, "token 名称已达上限 (%d 个)：不能再新建名称 '%s'，请复用已有的名称%s%s%s",
             TD_SNAP_NAMES_MAX, name, detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
}

/* Writes can fail while reads still work (another process holds the
 * SQLite write lock, a full disk): /readyz says so beside the ping. */
static void note_write(td_api *api, int rc, const char *err)
{
    pthread_mutex_lock(&api->bad_lock);
    if (rc == TD_OK) {
        api->write_failing_since = 0;
    } else {
        td_strbuf b;
        if (!api->write_failing_since) api->write_failing_since = td_clock_now();
        /* Cut on a character, not a byte: /readyz shows it as a JSON string. */
        td_strbuf_fixed(&b, api->write_err, sizeof api->write_err);
        td_strbuf_append_cut(&b, err, 0);
    }
    pthread_mutex_unlock(&api->bad_lock);
}

int td_api_store_record(td_api *api, const char *name, const td_record *r, char *err,
                        size_t errlen)
{
    td_store_entry e = {0};
    td_snap *s;
    char sub[1024];
    int rc;

    /* The limit is decided before anything is written (snap.h): a name
     * refused is never stored, and one acknowledged has its place.  The
     * store decides it again for the processes that share it. */
    if ((rc = td_snaps_claim(&api->snaps, name)) != TD_OK) {
        if (rc == TD_ETOOBIG) names_full(err, errlen, name, NULL);
        else snprintf(err, errlen, "%s", rc == TD_ENOMEM ? "内存不足" : "token 名称无效");
        return rc;
    }
    e.name = (char *)name;
    e.json = (char *)td_record_json(r, &e.json_len);
    e.generated_ts = td_record_generated(r);
    e.expire_ts = td_record_expires(r);
    rc = td_store_put(api->store, &e, sub, sizeof sub);
    /* A refusal (an older record, the store's name limit) is the store
     * working, not a failing write. */
    note_write(api, rc == TD_ECONFLICT || rc == TD_ETOOBIG ? TD_OK : rc, sub);
    if (rc != TD_OK) {
        if (rc == TD_ETOOBIG) names_full(err, errlen, name, sub);
        else snprintf(err, errlen, "%s", sub);
        if (rc != TD_ECONFLICT && rc != TD_ETOOBIG) td_metrics_inc(TD_M_STORE_ERRORS);
        goto out;
    }
    note_unreadable(api, name, NULL);
    if (!(s = td_snap_new(name, e.json, e.json_len, e.generated_ts, e.expire_ts))) {
        snprintf(err, errlen, "内存不足");
        rc = TD_ENOMEM;
        goto out;
    }
    if ((rc = td_snaps_install(&api->snaps, s)) != TD_OK) /* claimed: only memory can fail */
        snprintf(err, errlen, "%s", td_strerror(rc));
out:
    td_snaps_unclaim(&api->snaps, name);
    return rc;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t td_api_unescape(char *s)
{
    char *w = s;

    for (const char *r = s; *r;) {
        int hi = r[0] == '%' ? hexval(r[1]) : -1, lo = hi >= 0 ? hexval(r[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++; /* not an escape, a bad one, or %00: kept */
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* --- responses ------------------------------------------------------- */

static void add_hdr(td_api_resp *r, const char *name, const char *value)
{
    if (r->nhdr < TD_API_MAXHDR) {
        r->hdr[r->nhdr].name = name;
        r->hdr[r->nhdr].value = value;
        r->nhdr++;
    }
}

static void resp_start(td_api *api, td_api_resp *r, int status, const char *ct)
{
    r->status = status;
    add_hdr(r, "Content-Type", ct);
    if (api->cors_origin) add_hdr(r, "Access-Control-Allow-Origin", api->cors_origin);
    add_hdr(r, "Cache-Control", "no-store");
}

static void resp_static(td_api *api, td_api_resp *r, int status, const char *body)
{
    resp_start(api, r, status, JSON_CT);
    r->body = body;
    r->body_len = strlen(body);
}

/* {"success": false, "message": msg} or {"error": msg}, escaped by jansson. */
static void resp_msg(td_api *api, td_api_resp *r, int status, const char *key, const char *msg)
{
    json_t *o = !strcmp(key, "error") ? json_pack("{s:o}", "error", td_json_text(msg))
                                      : json_pack("{s:b, s:o}", "success", 0, "message", td_json_text(msg));

    resp_start(api, r, status, JSON_CT);
    if (o && (r->owned = json_dumps(o, 0))) {
        r->body = r->owned;
        r->body_len = strlen(r->owned);
    } else {
        r->body = B_STOREFAIL;
        r->body_len = sizeof B_STOREFAIL - 1;
    }
    json_decref(o);
}

void td_api_resp_clear(td_api_resp *r)
{
    free(r->owned);
    td_snap_release(r->snap);
    memset(r, 0, sizeof *r);
}

/* --- routing --------------------------------------------------------- */

typedef enum {
    P_NONE, P_BADNAME, P_TOKEN, P_INVALID, P_HISTORY, P_TICKET, P_HEALTHZ, P_READYZ, P_METRICS, P_STATUS,
    P_STATUS_JSON
} path_kind;

static path_kind route(const char *path, char name[65])
{
    static const char prefix[] = "/v1/tokens/";
    const char *p, *slash;
    size_t len;

    if (!strcmp(path, "/release/get-token") || !strcmp(path, "/get-token")) {
        strcpy(name, "default");
        return P_TOKEN;
    }
    if (!strcmp(path, "/healthz")) return P_HEALTHZ;
    if (!strcmp(path, "/readyz")) return P_READYZ;
    if (!strcmp(path, "/metrics")) return P_METRICS;
    if (!strcmp(path, "/status")) return P_STATUS;
    if (!strcmp(path, "/status.json")) return P_STATUS_JSON;
    if (strncmp(path, prefix, sizeof prefix - 1) != 0) return P_NONE;
    p = path + sizeof prefix - 1;
    slash = strchr(p, '/');
    len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || (slash && strcmp(slash, "/invalid") != 0 && strcmp(slash, "/history") != 0 &&
                     strcmp(slash, "/jsapi_ticket") != 0))
        return P_NONE;
    if (!td_record_name_valid(p, len)) return P_BADNAME;
    memcpy(name, p, len);
    name[len] = '\0';
    if (!slash) return P_TOKEN;
    if (!strcmp(slash, "/jsapi_ticket")) return P_TICKET;
    return !strcmp(slash, "/invalid") ? P_INVALID : P_HISTORY;
}

static td_route metric_route(path_kind k, const char *method)
{
    if (!strcmp(method, "OPTIONS")) return TD_ROUTE_OPTIONS;
    switch (k) {
    case P_TOKEN: return !strcmp(method, "POST") ? TD_ROUTE_TOKEN_POST : TD_ROUTE_TOKEN_GET;
    case P_TICKET: return TD_ROUTE_TOKEN_GET;
    case P_INVALID: return TD_ROUTE_INVALID;
    case P_HISTORY: return TD_ROUTE_HISTORY;
    case P_HEALTHZ: return TD_ROUTE_HEALTHZ;
    case P_READYZ: return TD_ROUTE_READYZ;
    case P_METRICS: return TD_ROUTE_METRICS;
    case P_STATUS:
    case P_STATUS_JSON: return TD_ROUTE_STATUS;
    default: return TD_ROUTE_OTHER;
    }
}

static int is_get(const char *m) { return !strcmp(m, "GET") || !strcmp(m, "HEAD"); }

/* A JSON body is what we take, whatever the client called it: no
 * Content-Type (Python's data=json.dumps), text/plain, and curl -d's
 * default form type are accepted; multipart and binary types are a client
 * mistake worth naming. */
static int json_content_type(const char *ct)
{
    size_t n;
    if (!ct || !*ct) return 1;
    n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ') n--;
    return (n == 16 && !strncasecmp(ct, "application/json", n)) ||
           (n == 9 && !strncasecmp(ct, "text/json", n)) ||
           (n == 10 && !strncasecmp(ct, "text/plain", n)) ||
           (n == 33 && !strncasecmp(ct, "application/x-www-form-urlencoded", n)) ||
           (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

/* Credentials for a route: 0 when the request may go on, else resp filled.
 * The key is judged first: a valid one always passes (guard.h says why).
 * A failure from an address the guard has blocked gets 429 instead of
 * 401/403, and no log line of its own (the guard logged the block). */
static int check_keys(td_api *api, const td_api_req *req, td_api_resp *r, int write)
{
    const td_auth_keys *keys = write ? &api->push : &api->read;
    /* Only a token POST answers {"success", "message"}: the history is a
     * GET that takes the push key, and answers {"error"} like every GET. */
    const char *key = write && req->method && !strcmp(req->method, "POST") ? "message" : "error";
    td_auth_result a = TD_AUTH_WRONG;

    if (!write && keys->n == 0) return 0;
    if (keys->n) {
        a = td_auth_check(keys, td_auth_presented(req->authorization, req->x_api_key));
        if (a == TD_AUTH_OK) return 0;
    }
    td_metrics_inc(TD_M_AUTH_FAILURES);
    if (td_guard_fail(&api->guard, req->remote) > 0) {
        td_metrics_inc(TD_M_AUTH_BLOCKED);
        resp_msg(api, r, 429, key, "权限不足: 认证失败次数过多，请稍后再试 (正确的密钥不受影响)");
        add_hdr(r, "Retry-After", TD_GUARD_BLOCK_TEXT);
        /* Still a refusal of the key, not a rate limit of the service: a
         * client tells the two apart by this header (the key is the fix). */
        add_hdr(r, "WWW-Authenticate", "Bearer realm=\"tokendist\"");
        return 1;
    }
    if (write && keys->n == 0) {
        resp_msg(api, r, 403, key,
                 "权限不足: 服务器未配置写入密钥 (TOKENDIST_PUSH_KEYS / --push-key)，拒绝写入");
    } else if (a == TD_AUTH_MISSING) {
        resp_msg(api, r, 401, key,
                 write ? "权限不足: 缺少写入密钥 (Authorization: Bearer KEY 或 X-Api-Key)"
                       : "权限不足: 缺少读取密钥 (Authorization: Bearer KEY 或 X-Api-Key)");
        add_hdr(r, "WWW-Authenticate", "Bearer realm=\"tokendist\"");
    } else {
        resp_msg(api, r, 403, key, write ? "权限不足: 写入密钥无效" : "权限不足: 读取密钥无效");
    }
    if (write) td_log("拒绝%s %s (来自 %s): %d %s", strcmp(req->method, "POST") ? "请求" : "写入", req->path,
                      req->remote ? req->remote : "?", r->status,
                      a == TD_AUTH_MISSING ? "缺少写入密钥" : "密钥无效或未配置");
    return 1;
}

/* 421 for a Host this server does not answer to (host.h).  The name is
 * echoed so an operator sees what to allow: at most 100 bytes, anything
 * but visible ASCII as '?' (a cut or foreign byte is not UTF-8, and the
 * JSON body must be). */
static void host_refused(td_api *api, const td_api_req *req, td_api_resp *r)
{
    char msg[400], shown[101];
    size_t i = 0;

    for (; req->host[i] && i < sizeof shown - 1; i++)
        shown[i] = req->host[i] > ' ' && req->host[i] < 0x7f ? req->host[i] : '?';
    shown[i] = '\0';
    snprintf(msg, sizeof msg,
             "拒绝请求: 本服务器不以 '%s' 这个名字提供服务 (防 DNS 重绑定)。"
             "请用 localhost 或 127.0.0.1 访问；要通过这个域名访问，请用 --allowed-host "
             "(TOKENDIST_ALLOWED_HOSTS) 加上它",
             shown);
    resp_msg(api, r, 421, "error", msg);
}

/* The request as the handler judges it: `remote` is the client, found
 * behind trusted proxies (peer.h); the copy lives in *copy and buf. */
static const td_api_req *with_client(td_api *api, const td_api_req *req, td_api_req *copy,
                                     char buf[TD_PEER_ADDR_LEN])
{
    if (!req->remote || api->trust.n == 0) return req;
    *copy = *req;
    copy->remote = td_peer_client(&api->trust, req->remote, req->x_forwarded_for, req->x_real_ip, buf);
    return copy;
}

static int precheck(td_api *api, const td_api_req *req, td_api_resp *r)
{
    char name[65], why[128];
    path_kind k = route(req->path ? req->path : "", name);
    const char *m = req->method ? req->method : "";
    int write;

    memset(r, 0, sizeof *r);
    r->route = metric_route(k, m);
    /* A malformed Host (two lines, a control byte) on every path: the
     * Host rule below must not judge the one line a front door took. */
    if (td_host_header_check(req->host, req->host_count, why, sizeof why) != TD_OK) {
        resp_msg(api, r, 400, !strcmp(m, "POST") ? "message" : "error", why);
        return 1;
    }
    /* Every path but /healthz, which says nothing and which local health
     * checks call by whatever name they were given. */
    if (k != P_HEALTHZ && !td_host_allowed(&api->hosts, req->host)) {
        host_refused(api, req, r);
        return 1;
    }
    if (!strcmp(m, "OPTIONS")) {
        resp_start(api, r, 204, JSON_CT);
        add_hdr(r, "Access-Control-Allow-Methods", ALLOW_TOKEN);
        add_hdr(r, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
        add_hdr(r, "Access-Control-Max-Age", "86400");
        r->body = "";
        return 1;
    }
    if (k == P_NONE) {
        resp_static(api, r, 404, B_NOPATH);
        return 1;
    }
    write = !strcmp(m, "POST");
    if (k == P_BADNAME) {
        resp_msg(api, r, 400, write ? "message" : "error", "token 名称无效: 应为 " TD_NAME_RULE);
        return 1;
    }
    if (!(is_get(m) && k != P_INVALID) && !(write && (k == P_TOKEN || k == P_INVALID))) {
        resp_static(api, r, 405, B_METHOD);
        add_hdr(r, "Allow", k == P_TOKEN ? ALLOW_TOKEN : k == P_INVALID ? ALLOW_REPORT : ALLOW_READ);
        return 1;
    }
    /* The history names past tokens (as fingerprints): the writers' key.
     * The status page's facts are read like a token; the page itself
     * holds no facts when a read key is set (its script asks for one). */
    if (k == P_TOKEN || k == P_TICKET || k == P_INVALID || k == P_HISTORY || k == P_STATUS_JSON) {
        if (check_keys(api, req, r, (write && k == P_TOKEN) || k == P_HISTORY)) return 1;
    }
    if (write) {
        if (req->content_length > (long long)api->body_limit || req->body_len > api->body_limit) {
            char msg[256];
            snprintf(msg, sizeof msg, "请求体超过 %zu 字节的上限 (--body-limit / TOKENDIST_BODY_LIMIT)", api->body_limit);
            resp_msg(api, r, 413, "message", msg);
            return 1;
        }
        if (!json_content_type(req->content_type)) {
            resp_msg(api, r, 415, "message", "Content-Type 应为 application/json：请以 JSON 发送 token 记录");
            return 1;
        }
    }
    return 0;
}

int td_api_precheck(td_api *api, const td_api_req *req, td_api_resp *r)
{
    td_api_req copy;
    char client[TD_PEER_ADDR_LEN];

    if (!precheck(api, with_client(api, req, &copy, client), r)) return 0;
    td_metrics_request(r->route, r->status);
    return 1;
}

/* --- handlers -------------------------------------------------------- */

static void get_token(td_api *api, const char *name, td_api_resp *r)
{
    td_snap *s = td_api_snapshot(api, name);

    if (!s || s->expire_ts <= td_clock_now()) { /* expiry is judged now, not at store time */
        td_snap_release(s);
        resp_static(api, r, 404, B_NOTFOUND);
        return;
    }
    resp_start(api, r, 200, JSON_CT);
    r->snap = s;
    r->body = s->json;
    r->body_len = s->json_len;
}

static int stale(td_api *api, const char *name);

/* The GET that td_api_fast found stale: wait (bounded) for the refresh,
 * then answer from the snapshot -- the new token, or the old one while it
 * is valid when the refresh failed, 404 only after its expiry.  The bound
 * is the request's own deadline when that comes first: an answer with the
 * old token beats one the platform cuts off. */
static void freshen_then_get(td_api *api, const td_api_req *req, const char *name, td_api_resp *r)
{
    const td_api_hooks *h = hooks_of(api);
    int64_t deadline = td_clock_mono_ms() + TD_API_FRESHEN_WAIT_MS, left;
    char why[300];

    if (req->deadline_ms && req->deadline_ms < deadline) deadline = req->deadline_ms;

    /* A cycle may end without the renewal (the platform handed back the
     * same token a moment early): wait for the next, within the bound. */
    while (h && h->freshen && (left = deadline - td_clock_mono_ms()) > 0) {
        int rc = h->freshen(h->ud, name, (long)left, why, sizeof why);
        if (rc == TD_ETIMEOUT || rc == TD_ECANCELED || rc == TD_ENOTFOUND || !stale(api, name)) break;
    }
    get_token(api, name, r);
}

/* Feishu and Lark are one platform in two regions, and a record without
 * "provider" is the seed's: a Feishu one. */
static const char *platform_family(const char *kind)
{
    return !kind || !strcmp(kind, "lark") ? "feishu" : kind;
}

/* A record POSTed under a name this server refreshes must come from that
 * name's platform: one that says another is a pusher's mix-up (two names
 * sharing one endpoint URL), and taking it would hand readers of name a
 * token of another platform until the next renewal.  0 when it may be
 * stored, else resp filled (409: retrying does not help). */
static int wrong_platform(td_api *api, const char *name, const td_record *rec, td_api_resp *r, char *msg,
                          size_t msglen)
{
    const td_api_hooks *h = hooks_of(api);
    const char *want = h && h->provider ? h->provider(h->ud, name) : NULL;
    const char *got = td_record_field(rec, "provider");
    const td_provider_ops *w, *g;

    if (!want || !strcmp(platform_family(want), platform_family(got))) return 0;
    w = td_provider_find(want), g = got ? td_provider_find(got) : NULL;
    /* The record's value is the writer's: echoed only when it is a known
     * platform. */
    snprintf(msg, msglen,
             "记录的平台 (%s) 与本服务器为 token '%s' 配置的平台 (%s) 不符：拒绝写入，"
             "一个 token 的记录不能落到另一个 token 的名称下；请检查推送方的接收地址 "
             "(TENCENT_CLOUD_API_URL 或 TOKENDIST_<NAME>_API_URL) 是否指向了别的 token",
             g ? g->label : got ? "未知的平台" : "未写明 provider，即飞书", name, w ? w->label : want);
    resp_msg(api, r, 409, "message", msg);
    return 1;
}

static void post_token(td_api *api, const td_api_req *req, const char *name, td_api_resp *r)
{
    char err[1024], fp[TD_FP_LEN], when[TD_TIME_LEN];
    const char *from = req->remote ? req->remote : "?";
    td_record *rec = NULL;
    int rc;

    if (req->body_len == 0) {
        resp_msg(api, r, 400, "message", "请求体为空: 请以 JSON 发送 token 记录");
        td_log("拒绝写入 %s (来自 %s): 400 请求体为空", name, from);
        return;
    }
    if ((rc = td_record_parse(req->body, req->body_len, td_clock_now(), api->max_skew, &rec, err,
                              sizeof err))) {
        resp_msg(api, r, rc == TD_ENOMEM ? 500 : 400, "message", err);
        td_log("拒绝写入 %s (来自 %s): %d %s", name, from, r->status, err);
        return;
    }
    if (wrong_platform(api, name, rec, r, err, sizeof err)) {
        td_log("拒绝写入 %s (来自 %s): 409 %s", name, from, err);
        td_record_free(rec);
        return;
    }
    rc = td_api_store_record(api, name, rec, err, sizeof err);
    switch (rc) {
    case TD_OK:
        resp_static(api, r, 200, B_STORED);
        td_log("Token已存储: %s %s 过期时间 %s (来自 %s)", name,
               td_log_fp(td_record_token(rec), fp), td_clock_format(td_record_expires(rec), when),
               from);
        break;
    case TD_ECONFLICT:
        resp_msg(api, r, 409, "message", err);
        td_log("拒绝写入 %s (来自 %s): 409 %s", name, from, err);
        break;
    case TD_ETOOBIG: /* the name limit: a request this server can never take */
        resp_msg(api, r, 400, "message", err);
        td_log("拒绝写入 %s (来自 %s): 400 %s", name, from, err);
        break;
    case TD_EUNAVAIL: {
        /* Why, and what to do: the store may even have taken the record
         * (a timeout after sending it), which a retry settles. */
        char msg[1200];
        snprintf(msg, sizeof msg, "存储暂时不可用，请稍后重试: %s", err);
        resp_msg(api, r, 503, "message", msg);
        add_hdr(r, "Retry-After", "5");
        td_log("❌ 存储暂不可用 %s: %s", name, err);
    }
        break;
    default: {
        /* The seed's message (clients may match it), then why, in our
         * words: the writer is authenticated and an operator needs to know
         * it is, say, a full disk. */
        char msg[1200];
        snprintf(msg, sizeof msg, "Failed to store token: %s", err);
        resp_msg(api, r, 500, "message", msg);
        td_log("❌ 存储失败 %s: %s", name, err);
    }
        break;
    }
    td_record_free(rec);
}

static int has_token(const td_snap *s, const char *tok)
{
    return !strcmp(s->token, tok) || (s->tenant && !strcmp(s->tenant, tok));
}

static void answer_snap(td_api *api, td_api_resp *r, td_snap *s)
{
    resp_start(api, r, 200, JSON_CT);
    r->snap = s; /* the response's reference now */
    r->body = s->json;
    r->body_len = s->json_len;
}

static void answer_report(td_api *api, td_api_resp *r, const char *name, const char *tok, int rc,
                          const char *why);

/* --- reports running, by name ----------------------------------------- */

/* Marks a report of name running, from td_api_fast's handing it to a
 * worker to post_invalid's end (or td_api_busy's answer when no worker
 * ran it).  A full table leaves it unmarked: the reports after it only
 * lose their parking. */
static void report_begin(td_api *api, const char *name)
{
    int slot = -1;

    pthread_mutex_lock(&api->rep_lock);
    for (int i = 0; i < REPORTS_MAX; i++) {
        if (api->rep[i].n && !strcmp(api->rep[i].name, name)) { slot = i; break; }
        if (!api->rep[i].n && slot < 0) slot = i;
    }
    if (slot >= 0) {
        if (!api->rep[slot].n) snprintf(api->rep[slot].name, sizeof api->rep[slot].name, "%s", name);
        api->rep[slot].n++;
    }
    pthread_mutex_unlock(&api->rep_lock);
}

static void report_end(td_api *api, const char *name)
{
    pthread_mutex_lock(&api->rep_lock);
    for (int i = 0; i < REPORTS_MAX; i++)
        if (api->rep[i].n && !strcmp(api->rep[i].name, name)) { api->rep[i].n--; break; }
    pthread_mutex_unlock(&api->rep_lock);
}

static int report_running(td_api *api, const char *name)
{
    int running = 0;

    pthread_mutex_lock(&api->rep_lock);
    for (int i = 0; i < REPORTS_MAX && !running; i++)
        running = api->rep[i].n && !strcmp(api->rep[i].name, name);
    pthread_mutex_unlock(&api->rep_lock);
    return running;
}

/* 501: nobody refreshes name (why says where it was found out), and what
 * to set so that somebody does -- for the platform its record names
 * (s, or NULL), so a WeChat token is not sent to FEISHU_APP_ID. */
static void not_refreshed(td_api *api, td_api_resp *r, const char *name, const td_snap *s, const char *why)
{
    char hint[400], msg[800];

    snprintf(msg, sizeof msg, "%s：%s", why,
             td_tokens_setup_hint(name, s && s->provider ? s->provider : NULL, hint, sizeof hint));
    resp_msg(api, r, 501, "message", msg);
}

/* A client saw Feishu reject tok (either token of the record: `files`
 * uses the tenant one).  The answer says what became of it, so a client
 * neither loops re-reporting nor installs a rejected token as new: 200
 * with a record that holds another token, 409 when Feishu still issues
 * this one, 202 while the refresh is still running. */
static void post_invalid(td_api *api, const td_api_req *req, const char *name, td_api_resp *r)
{
    json_t *o = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *tok = json_string_value(json_object_get(o, "access_token"));
    td_snap *s = NULL;
    const td_api_hooks *h = hooks_of(api);
    char why[400];
    long wait;
    int rc;

    if (!tok || !*tok) {
        resp_msg(api, r, 400, "message",
                 "请求体应为 {\"access_token\": \"<被平台拒绝的 token>\"}");
        goto out;
    }
    if (!(s = td_api_snapshot(api, name)) || s->expire_ts <= td_clock_now()) {
        resp_static(api, r, 404, B_NOTFOUND);
        goto out;
    }
    if (!has_token(s, tok)) { /* already replaced: hand out the new one */
        answer_snap(api, r, s), s = NULL;
        goto out;
    }
    if (!h || !h->invalid) {
        snprintf(why, sizeof why, "本服务器不刷新 token '%s'", name);
        not_refreshed(api, r, name, s, why);
        goto out;
    }
    /* A report that parked while the refresh it waited for ran comes
     * back when that one ended, and is mostly answered on the HTTP thread
     * from its outcome; one that is not (nothing to answer from) waits a
     * moment here, not the whole wait again on a worker. */
    wait = req->settled ? TD_API_SETTLED_REPORT_WAIT_MS : TD_API_REPORT_WAIT_MS;
    if (req->deadline_ms && req->deadline_ms - td_clock_mono_ms() < wait) /* see freshen_then_get */
        wait = req->deadline_ms > td_clock_mono_ms() ? (long)(req->deadline_ms - td_clock_mono_ms()) : 0;
    rc = h->invalid(h->ud, name, tok, wait, why, sizeof why);
    answer_report(api, r, name, tok, rc, why);
out:
    report_end(api, name); /* td_api_fast marked it */
    td_snap_release(s);
    json_decref(o);
}

/* A report's answer from its refresh's outcome rc (td_refresher_force's
 * codes); never blocks (the HTTP thread answers known outcomes too). */
static void answer_report(td_api *api, td_api_resp *r, const char *name, const char *tok, int rc,
                          const char *why)
{
    td_snap *s;
    char msg[700];

    switch (rc) {
    case TD_OK:
        if ((s = td_api_snapshot(api, name)) && !has_token(s, tok)) {
            answer_snap(api, r, s);
            break;
        }
        td_snap_release(s);
        /* fall through: the new token is not here yet (a fleet's reload) */
        __attribute__((fallthrough));
    case TD_ETIMEOUT:
        resp_start(api, r, 202, JSON_CT);
        r->body = "{\"success\": true, \"message\": \"已开始刷新，请稍后再取 token\"}";
        r->body_len = strlen(r->body);
        break;
    case TD_ECONFLICT: { /* in the words of the token's own platform: its record's */
        const td_provider_ops *ops;
        s = td_api_snapshot(api, name);
        if (!(ops = td_provider_find(s && s->provider ? s->provider : "feishu"))) ops = &td_provider_feishu;
        td_snap_release(s);
        snprintf(msg, sizeof msg, "%s仍在发放此 token，没有新的可换 (%s)；请检查调用失败的其他原因：%s", ops->label,
                 why, ops->report_hint);
        resp_msg(api, r, 409, "message", msg);
    }
        break;
    case TD_ENOTFOUND:
        s = td_api_snapshot(api, name);
        not_refreshed(api, r, name, s, why);
        td_snap_release(s);
        break;
    case TD_EUNAVAIL:
    case TD_ECANCELED:
        resp_msg(api, r, 503, "message", why);
        add_hdr(r, "Retry-After", rc == TD_ECANCELED ? "1" : "5");
        break;
    default:
        snprintf(msg, sizeof msg, "强制刷新失败: %s", why);
        resp_msg(api, r, 502, "message", msg);
        break;
    }
}

/* One stored record of name's history as /history shows it: times and
 * fingerprints; `current` when it is the record served now (cur). */
static json_t *history_entry(const td_store_entry *e, const td_snap *cur)
{
    td_record *rec = NULL;
    json_t *h;
    char sub[200], fp[TD_FP_LEN], fp2[TD_FP_LEN], when[TD_TIME_LEN], when2[TD_TIME_LEN];
    const char *ten;

    if (td_record_parse(e->json, e->json_len, 0, -1, &rec, sub, sizeof sub) != TD_OK)
        return json_pack("{s:I, s:o}", "generated_timestamp", (json_int_t)e->generated_ts, "problem", td_json_text(sub));
    ten = td_record_field(rec, "tenant_access_token");
    h = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s*, s:b}",
                  "generated_timestamp", (json_int_t)td_record_generated(rec), "generated_time",
                  td_clock_format(td_record_generated(rec), when), "expire_timestamp",
                  (json_int_t)td_record_expires(rec), "expire_time",
                  td_clock_format(td_record_expires(rec), when2), "access_token_fingerprint",
                  td_log_fp(td_record_token(rec), fp), "tenant_access_token_fingerprint",
                  ten ? td_log_fp(ten, fp2) : NULL, "current",
                  cur && cur->generated_ts == td_record_generated(rec) && !strcmp(cur->token, td_record_token(rec)));
    td_record_free(rec);
    return h;
}

/* The past records of name, newest first, with fingerprints instead of
 * tokens: a previous token may still be valid, so even this key's holders
 * see only enough to match log lines. */
static void history(td_api *api, const char *name, td_api_resp *r)
{
    td_store_entry *v = NULL;
    size_t n = 0;
    char err[300];
    json_t *o = NULL, *arr = NULL;
    td_snap *cur = td_snaps_get(&api->snaps, name);
    int rc = td_store_history(api->store, name, 0, &v, &n, err, sizeof err);

    if (rc != TD_OK) {
        resp_msg(api, r, rc == TD_EUNAVAIL ? 503 : 500, "error", err);
        if (rc == TD_EUNAVAIL) add_hdr(r, "Retry-After", "5");
        goto out;
    }
    if (!(arr = json_array()) || !(o = json_pack("{s:s}", "name", name))) goto nomem;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arr, history_entry(&v[i], cur))) goto nomem;
    json_object_set(o, "history", arr);
    resp_start(api, r, 200, JSON_CT);
    if (!(r->owned = json_dumps(o, 0))) goto nomem;
    r->body = r->owned;
    r->body_len = strlen(r->owned);
    goto out;
nomem:
    td_api_resp_clear(r);
    r->route = TD_ROUTE_HISTORY;
    resp_static(api, r, 500, "{\"error\": \"内存不足\"}");
out:
    json_decref(arr);
    json_decref(o);
    td_snap_release(cur);
    td_store_list_free(v, n);
}

static void readyz_token(void *toks, const td_snap *s)
{
    int64_t now = td_clock_now();
    json_object_set_new(toks, s->name,
                        json_pack("{s:b, s:I}", "fresh", s->expire_ts > now, "expires_in",
                                  (json_int_t)(s->expire_ts - now)));
}

static void readyz(td_api *api, td_api_resp *r)
{
    char err[TD_STORE_ERR_MAX], warn[TD_STORE_ERR_MAX];
    int store_ok = td_store_ping(api->store, err, sizeof err) == TD_OK;
    json_t *o = json_object(), *toks = json_object();

    json_t *bad = json_array();

    td_snaps_each(&api->snaps, readyz_token, toks);
    pthread_mutex_lock(&api->bad_lock);
    for (size_t i = 0; i < api->nbad; i++)
        json_array_append_new(bad, json_pack("{s:s, s:o}", "name", api->bad[i].name, "problem",
                                             td_json_text(api->bad[i].problem)));
    json_object_set_new(o, "unreadable_records", json_integer((json_int_t)api->nknown));
    if (api->write_failing_since) {
        json_object_set_new(o, "store_writes", td_json_text(api->write_err));
        json_object_set_new(o, "store_writes_failing_since", json_integer((json_int_t)api->write_failing_since));
    } else {
        json_object_set_new(o, "store_writes", json_string("ok"));
    }
    pthread_mutex_unlock(&api->bad_lock);
    json_object_set_new(o, "ready", json_boolean(store_ok));
    json_object_set_new(o, "store", td_json_text(store_ok ? "ok" : err));
    /* Working, but with a caveat an operator must hear of (an S3 service
     * that ignores conditional writes): ready all the same. */
    if (td_store_warning(api->store, warn, sizeof warn)) json_object_set_new(o, "store_warning", td_json_text(warn));
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "unreadable", bad);
    {
        const td_api_hooks *h = hooks_of(api);
        if (h && h->status) h->status(h->ud, o, 0);
    }
    resp_start(api, r, store_ok ? 200 : 503, JSON_CT);
    if ((r->owned = json_dumps(o, 0))) r->body = r->owned, r->body_len = strlen(r->owned);
    else r->status = 500;
    json_decref(o);
}

/* --- the status page (status.h draws it) ------------------------------ */

typedef struct name_list {
    char (*v)[TD_NAME_MAX + sizeof TD_TICKET_SUFFIX];
    size_t n, cap;
} name_list;

static void add_name(name_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], name)) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *v = cap <= TD_SNAP_NAMES_MAX * 2 ? realloc(l->v, cap * sizeof *l->v) : NULL;
        if (!v) return; /* the page shows fewer names */
        l->v = v, l->cap = cap;
    }
    snprintf(l->v[l->n++], sizeof *l->v, "%s", name);
}

static void add_snap_name(void *l, const td_snap *s) { add_name(l, s->name); }

/* The page's order: "default" first, then by name, a ticket right after
 * its token. */
static int name_order(const void *a, const void *b)
{
    const char *x = a, *y = b;
    size_t bx = strcspn(x, "."), by = strcspn(y, ".");
    int dx = bx == 7 && !strncmp(x, "default", 7), dy = by == 7 && !strncmp(y, "default", 7);
    int c;

    if (dx != dy) return dy - dx;
    if ((c = strncmp(x, y, bx < by ? bx : by)) != 0) return c;
    if (bx != by) return bx < by ? -1 : 1;
    return strcmp(x, y);
}

static const char *renewal_name(td_renewal r)
{
    return r == TD_RENEW_AFTER_EXPIRY ? "after_expiry" : r == TD_RENEW_EXTENDS ? "extends" : "in_window";
}

/* What the page shows of one name: platform and renewal rule, the record
 * in service (times and fingerprints), its refresher (rf, or NULL) and
 * the recent records. */
static json_t *status_token(td_api *api, const char *name, const json_t *rf)
{
    const td_api_hooks *h = hooks_of(api);
    td_snap *s = td_snaps_get(&api->snaps, name);
    size_t nl = strlen(name), sl = sizeof TD_TICKET_SUFFIX - 1;
    int ticket = nl > sl && !strcmp(name + nl - sl, TD_TICKET_SUFFIX);
    const char *prov = json_string_value(json_object_get(rf, "provider"));
    const td_provider_ops *ops;
    td_store_entry *v = NULL;
    size_t n = 0;
    long win = -1;
    char err[300], fp[TD_FP_LEN], fp2[TD_FP_LEN], t1[TD_TIME_LEN], t2[TD_TIME_LEN];
    json_t *o = json_pack("{s:s, s:s}", "name", name, "kind", ticket ? "jsapi_ticket" : "token"), *hist;

    if (!o) goto out;
    /* A record without "provider" is the seed's: a Feishu token. */
    if (!prov) prov = s && s->provider ? s->provider : ticket ? NULL : "feishu";
    ops = prov ? td_provider_find(prov) : NULL;
    if (ticket) win = TD_TICKET_RENEW_WINDOW;
    else if (h && h->window) win = h->window(h->ud, name);
    if (win < 0 && ops) win = ops->renew_window;
    json_object_set_new(o, "provider", prov ? json_string(prov) : json_null());
    json_object_set_new(o, "provider_label", ops ? json_string(ops->label) : json_null());
    json_object_set_new(o, "renewal", ops ? json_string(ticket ? "in_window" : renewal_name(ops->renewal)) : json_null());
    json_object_set_new(o, "renew_window", win >= 0 ? json_integer(win) : json_null());
    if (ticket) json_object_set_new(o, "derived_from", json_stringn(name, nl - sl));
    if (s)
        json_object_set_new(o, "record",
                            json_pack("{s:I, s:s, s:I, s:s, s:I, s:s, s:s*}", "generated_timestamp",
                                      (json_int_t)s->generated_ts, "generated_time",
                                      td_clock_format(s->generated_ts, t1), "expire_timestamp",
                                      (json_int_t)s->expire_ts, "expire_time", td_clock_format(s->expire_ts, t2),
                                      "expires_in", (json_int_t)(s->expire_ts - td_clock_now()),
                                      "access_token_fingerprint", td_log_fp(s->token, fp),
                                      "tenant_access_token_fingerprint", s->tenant ? td_log_fp(s->tenant, fp2) : NULL));
    else
        json_object_set_new(o, "record", json_null());
    json_object_set_new(o, "refresh", rf ? json_deep_copy(rf) : json_null());
    if (td_store_history(api->store, name, STATUS_HISTORY, &v, &n, err, sizeof err) != TD_OK) {
        json_object_set_new(o, "history_error", td_json_text(err));
        n = 0;
    }
    json_object_set_new(o, "history", hist = json_array());
    for (size_t i = 0; i < n; i++) json_array_append_new(hist, history_entry(&v[i], s));
out:
    td_store_list_free(v, n);
    td_snap_release(s);
    return o;
}

/* The facts of GET /status.json (and of the page): every name served or
 * refreshed here, at most STATUS_TOKENS_MAX.  On a worker: asks the store. */
static json_t *status_facts(td_api *api)
{
    const td_api_hooks *h = hooks_of(api);
    name_list names = {0};
    json_t *o = json_object(), *toks = json_array(), *bad = json_array(), *rs = json_object(), *refresh;
    const char *key;
    json_t *val;
    char err[TD_STORE_ERR_MAX], now_s[TD_TIME_LEN];
    int64_t now = td_clock_now();
    int store_ok = td_store_ping(api->store, err, sizeof err) == TD_OK;

    if (h && h->status) h->status(h->ud, rs, 1);
    refresh = json_object_get(rs, "refresh");
    td_snaps_each(&api->snaps, add_snap_name, &names);
    json_object_foreach(refresh, key, val) add_name(&names, key);
    if (names.n) qsort(names.v, names.n, sizeof *names.v, name_order);
    for (size_t i = 0; i < names.n && i < STATUS_TOKENS_MAX; i++)
        json_array_append_new(toks, status_token(api, names.v[i], json_object_get(refresh, names.v[i])));
    pthread_mutex_lock(&api->bad_lock);
    for (size_t i = 0; i < api->nbad; i++)
        json_array_append_new(bad, json_pack("{s:s, s:o}", "name", api->bad[i].name, "problem", td_json_text(api->bad[i].problem)));
    json_object_set_new(o, "unreadable_records", json_integer((json_int_t)api->nknown));
    pthread_mutex_unlock(&api->bad_lock);
    json_object_set_new(o, "now", json_integer((json_int_t)now));
    json_object_set_new(o, "time", json_string(td_clock_format(now, now_s)));
    json_object_set_new(o, "version", json_string(TD_VERSION));
    json_object_set_new(o, "store", td_json_text(store_ok ? "ok" : err));
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "tokens_not_shown",
                        json_integer(names.n > STATUS_TOKENS_MAX ? (json_int_t)(names.n - STATUS_TOKENS_MAX) : 0));
    json_object_set_new(o, "unreadable", bad);
    json_decref(rs);
    free(names.v);
    return o;
}

/* The headers of the page: its own script and style only, no framing,
 * and no Referer to wherever a link leads. */
static void page_headers(td_api_resp *r)
{
    add_hdr(r, "Content-Security-Policy", td_status_csp());
    add_hdr(r, "Referrer-Policy", "no-referrer");
    add_hdr(r, "X-Content-Type-Options", "nosniff");
}

/* GET /status: with read keys, the page without facts (its script asks
 * for the key and fetches /status.json with it); else drawn with them. */
static void status_page(td_api *api, td_api_resp *r)
{
    int keyed = api->read.n > 0;
    json_t *facts = keyed ? NULL : status_facts(api);

    resp_start(api, r, 200, HTML_CT);
    page_headers(r);
    if ((r->owned = td_status_page(facts, keyed, &r->body_len))) r->body = r->owned;
    else r->status = 500, r->body = "", r->body_len = 0;
    json_decref(facts);
}

/* GET /status.json: the facts, and the part of the page drawn from them
 * ("html"), which the page's script swaps in. */
static void status_json(td_api *api, td_api_resp *r)
{
    json_t *facts = status_facts(api);
    size_t len;
    char *html = td_status_fragment(facts, &len);

    if (html) json_object_set_new(facts, "html", json_stringn(html, len));
    free(html);
    resp_start(api, r, html ? 200 : 500, JSON_CT);
    if (html && (r->owned = json_dumps(facts, JSON_COMPACT))) r->body = r->owned, r->body_len = strlen(r->owned);
    else r->status = 500, r->body = "{\"error\": \"内存不足\"}", r->body_len = strlen(r->body);
    json_decref(facts);
}

static void metrics_token(void *b, const td_snap *s)
{
    td_strbuf_printf(b, "tokendist_token_expiry_seconds{name=\"%s\"} %lld\n", s->name,
                     (long long)(s->expire_ts - td_clock_now()));
}

typedef struct window_ctx {
    td_strbuf *b;
    const td_api_hooks *h;
} window_ctx;

/* The renewal window of each served token: what this server's refresher
 * uses, else the rule of the record's platform (a ticket's own); so an
 * alert can tell a token about to be renewed from one whose renewal is
 * late.  No series for a platform this build does not know. */
static void metrics_window(void *ud, const td_snap *s)
{
    window_ctx *c = ud;
    size_t nl = strlen(s->name), sl = sizeof TD_TICKET_SUFFIX - 1;
    const td_provider_ops *ops = td_provider_find(s->provider ? s->provider : "feishu");
    long win = nl > sl && !strcmp(s->name + nl - sl, TD_TICKET_SUFFIX) ? TD_TICKET_RENEW_WINDOW
             : c->h && c->h->window ? c->h->window(c->h->ud, s->name) : -1;

    if (win < 0 && ops) win = ops->renew_window;
    if (win >= 0) td_strbuf_printf(c->b, "tokendist_token_renew_window_seconds{name=\"%s\"} %ld\n", s->name, win);
}

static void metrics(td_api *api, td_api_resp *r)
{
    td_strbuf b;

    td_strbuf_heap(&b, METRICS_CAP);
    td_metrics_render(&b);
    td_strbuf_puts(&b, "# HELP tokendist_token_expiry_seconds 每个 token 距过期的秒数 (负数表示已过期)。\n"
                       "# TYPE tokendist_token_expiry_seconds gauge\n");
    td_snaps_each(&api->snaps, metrics_token, &b);
    {
        window_ctx c = {&b, hooks_of(api)};
        td_strbuf_puts(&b, "# HELP tokendist_token_renew_window_seconds 每个 token 在过期前多少秒换新 "
                           "(0 表示过期后)。\n"
                           "# TYPE tokendist_token_renew_window_seconds gauge\n");
        td_snaps_each(&api->snaps, metrics_window, &c);
        if (c.h && c.h->metrics) c.h->metrics(c.h->ud, &b);
    }
    resp_start(api, r, 200, TEXT_CT);
    if (!(r->owned = td_strbuf_take(&b, &r->body_len))) {
        r->status = 500;
        r->body = "";
        r->body_len = 0;
        return;
    }
    r->body = r->owned;
}

/* Requests whose answer needs the store or waits for another thread. */
/* The worker lane of a request that needs the store, TD_API_DONE for one
 * that does not. */
static int lane(path_kind k, const char *method)
{
    if (k == P_TOKEN) return strcmp(method, "POST") ? TD_API_DONE : TD_API_WRITE;
    if (k == P_INVALID) return TD_API_REPORT;
    return k == P_READYZ || k == P_HISTORY || k == P_STATUS || k == P_STATUS_JSON ? TD_API_READ : TD_API_DONE;
}

/* Fresh on read: the served token of name is inside its renewal window
 * and its refresh is overdue (a frozen refresher thread): the GET waits
 * for it on a worker instead of answering with a token about to go. */
static int stale(td_api *api, const char *name)
{
    const td_api_hooks *h = hooks_of(api);
    td_snap *s;
    int st;

    if (!h || !h->stale) return 0;
    s = td_snaps_get(&api->snaps, name);
    st = h->stale(h->ud, name, s ? s->expire_ts : 0);
    td_snap_release(s);
    return st;
}

/* A forced refresh for a report of name runs (the hooks' reporting). */
static int reporting(td_api *api, const char *name)
{
    const td_api_hooks *h = hooks_of(api);
    return h && h->reporting && h->reporting(h->ud, name);
}

/* A report of the token in service, on the HTTP thread: answered here
 * when its outcome is known (TD_API_DONE), parked while its forced
 * refresh runs -- started here (report_kick) when none does yet -- or
 * left to a report worker (TD_API_REPORT: a bad body, another token, no
 * hooks, nothing to answer from after the park).  Waiting on workers, a
 * flood of reports under a slow Feishu took every one of them and queued
 * the rest into 503s. */
static int report_fast(td_api *api, const td_api_req *req, const char *name, td_api_resp *r)
{
    const td_api_hooks *h = hooks_of(api);
    json_t *o;
    td_snap *s = NULL;
    const char *tok;
    char why[400];
    int rc = TD_API_REPORT_UNKNOWN, pending = 0, kind = TD_API_REPORT;

    if (!h || !h->report_now || !h->report_kick || !req->body || req->body_len > 4 * TD_TOKEN_MAX)
        return TD_API_REPORT;
    o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    tok = json_string_value(json_object_get(o, "access_token"));
    if (!tok || !*tok || !(s = td_api_snapshot(api, name)) || s->expire_ts <= td_clock_now() || !has_token(s, tok))
        goto out;
    rc = h->report_now(h->ud, name, tok, &pending, why, sizeof why);
    if (rc != TD_API_REPORT_UNKNOWN && (!pending || req->settled)) {
        answer_report(api, r, name, tok, rc, why);
        kind = TD_API_DONE;
    } else if (!req->settled && (pending || h->report_kick(h->ud, name, tok) == TD_OK)) {
        kind = TD_API_PARK;
    }
out:
    td_snap_release(s);
    json_decref(o);
    return kind;
}

int td_api_fast(td_api *api, const td_api_req *req, td_api_resp *r)
{
    td_api_req copy;
    char name[65], client[TD_PEER_ADDR_LEN];
    path_kind k;
    int l;

    req = with_client(api, req, &copy, client);

    if (precheck(api, req, r)) goto done;
    k = route(req->path, name);
    /* A report of the token in service: answered here from its refresh's
     * outcome, or parked while that refresh runs (report_fast).  The rest
     * go to a report worker, one per name at a time: a second report of
     * a name whose report runs parks until it ends. */
    if (k == P_INVALID && (l = report_fast(api, req, name, r)) != TD_API_REPORT) {
        if (l == TD_API_DONE) goto done;
        return l;
    }
    if ((l = lane(k, req->method)) == TD_API_REPORT) {
        if (!req->settled && report_running(api, name)) return TD_API_PARK;
        report_begin(api, name);
    }
    if (l != TD_API_DONE) return l;
    if (k == P_TOKEN && !req->settled && stale(api, name)) {
        const td_api_hooks *h = hooks_of(api);
        if (h->kick) h->kick(h->ud, name);
        return TD_API_PARK;
    }
    switch (k) {
    case P_TOKEN: get_token(api, name, r); break;
    case P_TICKET: {
        char key[TD_NAME_MAX + sizeof TD_TICKET_SUFFIX];
        snprintf(key, sizeof key, "%s%s", name, TD_TICKET_SUFFIX);
        get_token(api, key, r);
    }
        break;
    case P_HEALTHZ: resp_static(api, r, 200, B_HEALTHY); break;
    case P_METRICS: metrics(api, r); break;
    default: resp_static(api, r, 404, B_NOPATH); break;
    }
done:
    td_metrics_request(r->route, r->status);
    return TD_API_DONE;
}

void td_api_slow(td_api *api, const td_api_req *req, td_api_resp *r)
{
    td_api_req copy;
    char name[65], client[TD_PEER_ADDR_LEN];
    path_kind k = route(req->path, name);

    req = with_client(api, req, &copy, client); /* for the log lines */
    memset(r, 0, sizeof *r);
    r->route = metric_route(k, req->method);
    switch (k) {
    case P_TOKEN:
        if (is_get(req->method)) freshen_then_get(api, req, name, r);
        else post_token(api, req, name, r);
        break;
    case P_INVALID: post_invalid(api, req, name, r); break;
    case P_HISTORY: history(api, name, r); break;
    case P_READYZ: readyz(api, r); break;
    case P_STATUS: status_page(api, r); break;
    case P_STATUS_JSON: status_json(api, r); break;
    default: resp_static(api, r, 500, B_STOREFAIL); break; /* td_api_fast answers the rest */
    }
    td_metrics_request(r->route, r->status);
}

int td_api_parked_ready(td_api *api, const td_api_req *req)
{
    char name[65];
    path_kind k = route(req->path, name);

    if (k == P_INVALID) return !reporting(api, name) && !report_running(api, name);
    return k != P_TOKEN || !stale(api, name);
}

void td_api_handle(td_api *api, const td_api_req *req, td_api_resp *r)
{
    /* This front door may block: a parked GET waits in td_api_slow, a
     * parked report runs at once (marked, as td_api_fast marks the rest). */
    char name[65];
    int l = td_api_fast(api, req, r);

    if (l == TD_API_DONE) return;
    if (l == TD_API_PARK && route(req->path, name) == P_INVALID) report_begin(api, name);
    td_api_slow(api, req, r);
}

void td_api_busy(td_api *api, const td_api_req *req, int why, td_api_resp *r)
{
    static const char *const text[] = {
        [TD_API_BUSY_FULL] = "服务器繁忙: 待处理的请求过多，请稍后重试",
        [TD_API_BUSY_WAITED] = "存储繁忙: 请求排队等待存储超过 " STR(TD_API_QUEUE_WAIT_S) " 秒，未执行，请稍后重试",
        [TD_API_BUSY_STOPPING] = "服务器正在停止: 请求未执行，请稍后重试或改用其他实例",
    };
    char name[65];
    path_kind k;

    memset(r, 0, sizeof *r);
    k = route(req->path ? req->path : "", name);
    if (k == P_INVALID) report_end(api, name); /* td_api_fast marked it; no worker ran it */
    r->route = metric_route(k, req->method ? req->method : "");
    resp_msg(api, r, 503, !strcmp(req->method ? req->method : "", "POST") ? "message" : "error", text[why]);
    if (why == TD_API_BUSY_WAITED && r->route == TD_ROUTE_TOKEN_POST) note_write(api, TD_EUNAVAIL, text[why]);
    add_hdr(r, "Retry-After", "1");
    td_metrics_request(r->route, r->status);
}
