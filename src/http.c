/*
 * http -- see http.h.
 *
 * libmicrohttpd calls the access handler at least twice per request: once
 * when the headers are in, then with body chunks, then once with no data.
 * The response is queued on the last call, never the first: queueing on
 * the first call makes MHD close every keep-alive connection.
 *
 * The one MHD thread runs all handlers, so the small response cache below
 * needs no lock: a 200 for a token reuses the MHD_Response built for that
 * snapshot (MHD reference-counts it) until a newer snapshot replaces it.
 *
 * That thread never waits: a GET is answered from memory whatever the
 * store is doing.  A request that needs the store (td_api_fast says so) is
 * suspended, handed to a worker pool (workq.h) that runs td_api_slow, and
 * resumed by the worker once its answer is ready; MHD then calls the
 * handler once more and the answer is queued from this thread.  In debug
 * builds the store asserts that no call comes from this thread
 * (td_store_forbid_thread).
 *
 * Three pools, one per lane -- token writes, invalid-token reports (which
 * wait for their refresh), reads such as /readyz -- so that one stuck
 * write holds up neither /readyz nor a report.  A job that waited longer
 * than TD_API_QUEUE_WAIT_S for a worker is answered 503 without running:
 * behind a stuck store a prompt 503 that the client retries beats an
 * answer after the client gave up.
 *
 * A GET that must wait for an overdue refresh (fresh on read) is parked
 * (park.h): suspended without a thread, resumed when the refresh is done
 * or after TD_API_FRESHEN_WAIT_MS, then answered from what is served.
 *
 * Shutdown (td_http_stop): the listening socket stops accepting at once
 * (clients fail over to another instance), parked GETs are answered, the
 * workers finish the store calls they are in while queued jobs get 503
 * "正在停止" instead of a store call each, requests in flight get their
 * answers within a grace period, and only then does the daemon stop.
 */
#define _GNU_SOURCE
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "workq.h"
#include "park.h"
#include "clock.h"
#include "peer.h"
#include "tokendist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CACHE_SLOTS 8
#define CONN_MEMORY (8 * 1024)   /* enough for our requests; bounds RSS per connection */
#define WORKERS 4                /* store jobs at once per lane: a stuck write leaves the others going */
#define READ_WORKERS 2           /* /readyz, /status, history */
#define WORK_QUEUE 256           /* waiting store jobs per lane; beyond: 503 at once */
#define PARK_TICK_MS 10          /* how often parked GETs look at their refresh */
#define STOP_GRACE_MS 5000       /* in-flight requests get this long to finish at shutdown */

typedef struct cached {
    td_snap *snap;
    struct MHD_Response *resp;
} cached;

struct td_http {
    struct MHD_Daemon *d;
    td_api *api;
    td_workq *lane[3];          /* LANE_*: writes, reports, reads */
    td_park *park;
    int stopping;               /* atomic: queued jobs are answered 503 */
    cached cache[CACHE_SLOTS];
    unsigned next_slot;
    char *cert, *key;
    int listen_fd;              /* after quiesce: ours to close, after MHD_stop_daemon */
    int active;                 /* requests between their first call and completion (atomic) */
};

enum { JOB_NONE, JOB_RUNNING, JOB_DONE, JOB_PARKED, JOB_UNPARKED };
enum { LANE_WRITE, LANE_REPORT, LANE_READ };

/* Per-request state for requests that carry a body or wait for a worker. */
typedef struct req_ctx {
    td_http *h;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int too_big;
    int answered;               /* a precheck already queued its answer */
    int job;                    /* JOB_*: written by the worker, read after resume */
    int64_t queued_ms;          /* when the job was handed to its lane */
    td_park_item park;          /* while JOB_PARKED */
    td_api_req q;               /* the request the worker answers */
    char remote[64];
    td_api_resp resp;           /* the worker's answer */
} req_ctx;

/* Marks "headers seen" for requests without a body, saving a malloc. */
static int no_body_marker;

static void snap_free_cb(void *cls) { td_snap_release(cls); }

static struct MHD_Response *build_response(td_api_resp *r)
{
    struct MHD_Response *m;

    if (r->snap) {
        m = MHD_create_response_from_buffer_with_free_callback_cls(r->body_len, (void *)r->body,
                                                                   snap_free_cb, r->snap);
        if (m) r->snap = NULL; /* the response owns the reference now */
    } else if (r->owned) {
        m = MHD_create_response_from_buffer(r->body_len, r->owned, MHD_RESPMEM_MUST_FREE);
        if (m) r->owned = NULL;
    } else {
        m = MHD_create_response_from_buffer(r->body_len, (void *)r->body, MHD_RESPMEM_PERSISTENT);
    }
    if (!m) return NULL;
    for (size_t i = 0; i < r->nhdr; i++) MHD_add_response_header(m, r->hdr[i].name, r->hdr[i].value);
    return m;
}

/* The response for a 200 of r->snap: the cached one, or a new one that
 * replaces the cache slot of that token name (or the oldest slot). */
static struct MHD_Response *cached_response(td_http *h, td_api_resp *r)
{
    td_snap *key = r->snap;
    struct MHD_Response *m;
    cached *slot = NULL;

    for (unsigned i = 0; i < CACHE_SLOTS; i++) {
        if (h->cache[i].snap == key) return h->cache[i].resp;
        if (h->cache[i].snap && !strcmp(h->cache[i].snap->name, key->name)) slot = &h->cache[i];
    }
    if (!slot) slot = &h->cache[h->next_slot++ % CACHE_SLOTS];
    td_snap_retain(key); /* the cache's own reference, for the key */
    if (!(m = build_response(r))) {
        td_snap_release(key);
        return NULL;
    }
    if (slot->resp) MHD_destroy_response(slot->resp); /* in-flight sends keep theirs */
    td_snap_release(slot->snap);
    slot->snap = key;
    slot->resp = m;
    return m;
}

static enum MHD_Result queue(td_http *h, struct MHD_Connection *c, td_api_resp *r)
{
    int from_cache = r->snap && r->status == 200;
    struct MHD_Response *m = from_cache ? cached_response(h, r) : build_response(r);
    enum MHD_Result ok = MHD_NO;

    if (m) {
        ok = MHD_queue_response(c, (unsigned)r->status, m);
        if (!from_cache) MHD_destroy_response(m);
    }
    td_api_resp_clear(r);
    return ok;
}

static void remote_addr(struct MHD_Connection *c, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(buf, len, "?");
    if (!sa) return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
}

/* The number of Host lines: the Host check (host.h) refuses two rather
 * than judge the one MHD_lookup_connection_value gives (the first). */
static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind, (void)value;
    if (!strcasecmp(key, MHD_HTTP_HEADER_HOST)) (*(unsigned *)cls)++;
    return MHD_YES;
}

/* The last X-Forwarded-For and X-Real-IP lines: a proxy that adds its own
 * line rather than appending to the client's puts it last, and the first
 * line may be the client's forgery. */
typedef struct fwd_headers {
    const char *xff, *xri;
} fwd_headers;

static enum MHD_Result last_fwd(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    fwd_headers *f = cls;
    (void)kind;
    if (!strcasecmp(key, "X-Forwarded-For")) f->xff = value;
    else if (!strcasecmp(key, "X-Real-IP")) f->xri = value;
    return MHD_YES;
}

static void fill_req(struct MHD_Connection *c, const char *url, const char *method,
                     td_api_req *q, char *remote, size_t rlen)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end;

    memset(q, 0, sizeof *q);
    q->method = method;
    q->path = url;
    q->authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    q->x_api_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    q->content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    q->host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    q->content_length = -1;
    if (cl) {
        long long v = strtoll(cl, &end, 10);
        q->content_length = (*end || v < 0) ? -1 : v;
    }
    /* The client matters to logs (writes) and to the auth-failure guard,
     * which counts a GET without a key as a failure too when read keys
     * are set: every request carries it.  Both lookups read what MHD
     * already holds (no system call). */
    {
        fwd_headers f = {NULL, NULL};
        remote_addr(c, remote, rlen);
        q->remote = remote;
        MHD_get_connection_values(c, MHD_HEADER_KIND, last_fwd, &f);
        q->x_forwarded_for = f.xff;
        q->x_real_ip = f.xri;
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_host, &q->host_count);
}

/* The worker's half of a suspended request: the store call, then resume;
 * MHD calls on_request again on its own thread, which queues resp. */
static void run_job(void *ud)
{
    req_ctx *x = ud;

    if (__atomic_load_n(&x->h->stopping, __ATOMIC_ACQUIRE))
        td_api_busy(x->h->api, &x->q, TD_API_BUSY_STOPPING, &x->resp);
    else if (td_clock_mono_ms() - x->queued_ms > TD_API_QUEUE_WAIT_S * 1000L)
        td_api_busy(x->h->api, &x->q, TD_API_BUSY_WAITED, &x->resp);
    else
        td_api_slow(x->h->api, &x->q, &x->resp);
    td_metrics_gauge_add(TD_G_REQUESTS_WAITING, -1);
    __atomic_store_n(&x->job, JOB_DONE, __ATOMIC_RELEASE);
    MHD_resume_connection(x->conn);
}

/* A job still queued at shutdown: answered without its store call. */
static void cancel_job(void *ud)
{
    req_ctx *x = ud;

    td_api_busy(x->h->api, &x->q, TD_API_BUSY_STOPPING, &x->resp);
    td_metrics_gauge_add(TD_G_REQUESTS_WAITING, -1);
    __atomic_store_n(&x->job, JOB_DONE, __ATOMIC_RELEASE);
    MHD_resume_connection(x->conn);
}

/* Hands x->q to the worker lane td_api_fast named and suspends the
 * connection until it is answered.  Suspend comes first: a worker may
 * finish and resume before this returns.  When no worker can take it, the
 * answer is 503 now. */
static enum MHD_Result defer(td_http *h, struct MHD_Connection *c, req_ctx *x, int kind)
{
    td_workq *q = h->lane[kind == TD_API_WRITE ? LANE_WRITE : kind == TD_API_REPORT ? LANE_REPORT : LANE_READ];

    x->h = h;
    x->conn = c;
    x->job = JOB_RUNNING;
    x->queued_ms = td_clock_mono_ms();
    MHD_suspend_connection(c);
    td_metrics_gauge_add(TD_G_REQUESTS_WAITING, 1);
    if (td_workq_submit(q, run_job, x) != TD_OK) {
        td_metrics_gauge_add(TD_G_REQUESTS_WAITING, -1);
        td_api_busy(h->api, &x->q,
                    __atomic_load_n(&h->stopping, __ATOMIC_ACQUIRE) ? TD_API_BUSY_STOPPING : TD_API_BUSY_FULL,
                    &x->resp);
        x->job = JOB_DONE;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

static int parked_ready(void *ud)
{
    req_ctx *x = ud;
    return td_api_parked_ready(x->h->api, &x->q);
}

static void parked_wake(void *ud, int why)
{
    req_ctx *x = ud;
    (void)why; /* whatever the reason, the answer is what is served now */
    td_metrics_gauge_add(TD_G_REQUESTS_WAITING, -1);
    __atomic_store_n(&x->job, JOB_UNPARKED, __ATOMIC_RELEASE);
    MHD_resume_connection(x->conn);
}

/* Answers a request that td_api_fast did not: queues the answer, hands
 * it to a lane, or parks it. */
static enum MHD_Result dispatch(td_http *h, struct MHD_Connection *c, req_ctx *x, int kind)
{
    if (kind != TD_API_PARK) return defer(h, c, x, kind);
    x->h = h;
    x->conn = c;
    x->job = JOB_PARKED;
    x->park = (td_park_item){.deadline_ms = td_clock_mono_ms() + TD_API_FRESHEN_WAIT_MS,
                             .ready = parked_ready, .wake = parked_wake, .ud = x};
    MHD_suspend_connection(c);
    td_metrics_gauge_add(TD_G_REQUESTS_WAITING, 1);
    if (td_park_add(h->park, &x->park) == TD_OK) return MHD_YES;
    /* Stopping: answer with what is served, as a worker would. */
    td_metrics_gauge_add(TD_G_REQUESTS_WAITING, -1);
    x->q.settled = 1;
    if (td_api_fast(h->api, &x->q, &x->resp) != TD_API_DONE) {
        td_api_resp_clear(&x->resp);
        td_api_busy(h->api, &x->q, TD_API_BUSY_STOPPING, &x->resp);
    }
    x->job = JOB_DONE;
    MHD_resume_connection(c);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    td_http *h = cls;
    req_ctx *x = *con_cls;
    td_api_req q;
    td_api_resp r;
    char remote[64] = "?";
    int kind;
    (void)version;

    if (!x) { /* headers are in */
        td_store_forbid_thread();
        __atomic_fetch_add(&h->active, 1, __ATOMIC_RELAXED);
        if (strcmp(method, "POST") != 0) {
            *con_cls = &no_body_marker;
            return MHD_YES;
        }
        fill_req(c, url, method, &q, remote, sizeof remote);
        if (!(x = calloc(1, sizeof *x))) return MHD_NO;
        *con_cls = x;
        /* Refuse what the headers already decide (credentials, size),
         * before a byte of the body is read. */
        if (td_api_precheck(h->api, &q, &r)) {
            x->answered = 1;
            return queue(h, c, &r);
        }
        return MHD_YES;
    }
    if (x == (req_ctx *)&no_body_marker) {
        if (*upload_data_size) { /* a body nobody asked for: drop it */
            *upload_data_size = 0;
            return MHD_YES;
        }
        fill_req(c, url, method, &q, remote, sizeof remote);
        if ((kind = td_api_fast(h->api, &q, &r)) == TD_API_DONE) return queue(h, c, &r);
        if (!(x = calloc(1, sizeof *x))) return MHD_NO;
        *con_cls = x;
        fill_req(c, url, method, &x->q, x->remote, sizeof x->remote);
        return dispatch(h, c, x, kind);
    }
    if (x->job != JOB_NONE) { /* resumed: the worker's answer is ready, or the parked GET's time */
        switch (__atomic_load_n(&x->job, __ATOMIC_ACQUIRE)) {
        case JOB_DONE: return queue(h, c, &x->resp);
        case JOB_UNPARKED:
            x->job = JOB_NONE;
            x->q.settled = 1;
            if ((kind = td_api_fast(h->api, &x->q, &r)) == TD_API_DONE) return queue(h, c, &r);
            return defer(h, c, x, kind);
        default: return MHD_YES;
        }
    }
    if (x->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (x->too_big) return MHD_YES;
        if (x->len + n > 1u << 20) { /* hard ceiling, whatever the limit says */
            x->too_big = 1;
            return MHD_YES;
        }
        if (x->len + n > x->cap) {
            size_t cap = x->cap ? x->cap : 1024;
            char *nb;
            while (cap < x->len + n) cap *= 2;
            if (!(nb = realloc(x->body, cap))) return MHD_NO;
            x->body = nb;
            x->cap = cap;
        }
        memcpy(x->body + x->len, upload_data, n);
        x->len += n;
        return MHD_YES;
    }
    fill_req(c, url, method, &x->q, x->remote, sizeof x->remote);
    x->q.body = x->body;
    x->q.body_len = x->too_big ? (size_t)-1 / 2 : x->len;
    if ((kind = td_api_fast(h->api, &x->q, &r)) == TD_API_DONE) return queue(h, c, &r);
    return dispatch(h, c, x, kind);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    td_http *h = cls;
    req_ctx *x = *con_cls;
    (void)c, (void)toe;
    if (!x) return;
    __atomic_fetch_sub(&h->active, 1, __ATOMIC_RELAXED);
    if (x != (req_ctx *)&no_body_marker) {
        td_api_resp_clear(&x->resp);
        free(x->body);
        free(x);
    }
    *con_cls = NULL;
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return td_api_unescape(s);
}

/* libmicrohttpd's own messages: its format strings, checked as such. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    td_log("HTTP 服务 (libmicrohttpd): %s", line);
}

int td_http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon, *port_s;
    char *end;
    long port;

    memset(ss, 0, sizeof *ss);
    if (!listen || !(colon = strrchr(listen, ':'))) goto bad;
    port_s = colon + 1;
    port = strtol(port_s, &end, 10);
    if (!*port_s || *end || port < 0 || port > 65535) goto bad;
    if ((size_t)(colon - listen) >= sizeof host) goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (host[0] == '[') { /* [v6]:port */
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        size_t hl = strlen(host);
        if (hl < 2 || host[hl - 1] != ']') goto bad;
        host[hl - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) goto bad;
        return TD_OK;
    }
    {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (!host[0] || !strcmp(host, "*")) a->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (!strcmp(host, "localhost")) a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad;
    }
    return TD_OK;
bad:
    snprintf(err, errlen, "监听地址 '%s' 不是 HOST:PORT (例如 127.0.0.1:9000、[::1]:9000、0.0.0.0:9000)",
             listen ? listen : "");
    return TD_EINVAL;
}

int td_http_listen_loopback(const char *listen)
{
    struct sockaddr_storage ss;
    char err[256], text[TD_PEER_ADDR_LEN];
    const void *bytes;
    td_peer_addr a;

    if (td_http_parse_listen(listen, &ss, err, sizeof err) != TD_OK) return 0;
    bytes = ss.ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)&ss)->sin6_addr
                                     : (const void *)&((const struct sockaddr_in *)&ss)->sin_addr;
    /* Through text, so that [::ffff:127.0.0.1] counts as the IPv4 loopback. */
    return inet_ntop(ss.ss_family, bytes, text, sizeof text) &&
           td_peer_parse(text, strlen(text), &a) && td_peer_is_loopback(&a);
}

static char *read_pem(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t n;

    if (!f) {
        snprintf(err, errlen, "无法读取 %s: %s", path, strerror(errno));
        return NULL;
    }
    if ((buf = malloc(256 * 1024)) && (n = fread(buf, 1, 256 * 1024 - 1, f)) > 0 && n < 256 * 1024 - 1) {
        buf[n] = '\0';
    } else {
        snprintf(err, errlen, "无法读取 %s: 文件为空或超过 256 KiB", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* The lowest port a process without CAP_NET_BIND_SERVICE may bind:
 * Linux's net.ipv4.ip_unprivileged_port_start (1024 unless changed; some
 * container runtimes set 0). */
static unsigned unprivileged_port_start(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "r");
    unsigned v = 1024;

    if (f) {
        if (fscanf(f, "%u", &v) != 1) v = 1024;
        fclose(f);
    }
    return v;
}

/* The listening socket, made here rather than by libmicrohttpd: the
 * failure to bind is then known exactly and said for what it is -- a
 * port in use, a port that needs privileges, an address this machine does
 * not have -- with the port as the socket had it.  SO_REUSEPORT is never
 * set: with it a second server on the same port would start and share the
 * traffic with the first. */
static int listen_socket(const struct sockaddr_storage *ss, const char *listen_s, char *err,
                         size_t errlen)
{
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    unsigned port = ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                                    : ((const struct sockaddr_in *)ss)->sin_port);
    const void *bytes = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                                  : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned start;
    int fd, one = 1, e;

    inet_ntop(ss->ss_family, bytes, host, sizeof host);
    if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        snprintf(err, errlen, "无法创建监听套接字: %s", strerror(errno));
        return -1;
    }
    /* SO_REUSEADDR only lets a restart bind while old connections sit in
     * TIME_WAIT; it never lets two listeners share a port on Linux. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) == 0 && listen(fd, SOMAXCONN) == 0) return fd;
    e = errno;
    close(fd);
    switch (e) {
    case EADDRINUSE:
        snprintf(err, errlen, "地址 %s 已被占用 (address already in use)：另一个 tokendist 或其他程序正在监听端口 %u，"
                 "先停止它，或用 --listen 换一个端口", listen_s, port);
        break;
    case EACCES:
        start = unprivileged_port_start();
        if (port > 0 && port < start)
            snprintf(err, errlen, "没有权限监听端口 %u (--listen %s, permission denied)：%u 以下的端口只有 root 或有 "
                     "CAP_NET_BIND_SERVICE 权限的进程才能监听 (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)，"
                     "或用 --listen 换一个 %u 以上的端口", port, listen_s, start, start);
        else
            snprintf(err, errlen, "没有权限监听端口 %u (--listen %s, permission denied)：它不是需要特权的端口 "
                     "(本机 %u 以下才是)，是系统的安全策略 (SELinux、AppArmor 或容器的限制) 拒绝了它", port, listen_s,
                     start);
        break;
    case EADDRNOTAVAIL:
        snprintf(err, errlen, "本机没有地址 %s (--listen %s, address not available)：--listen 的主机部分应是本机网卡上的"
                 "一个地址 (ip addr 可以列出)，如 127.0.0.1；0.0.0.0 则监听所有网卡", host, listen_s);
        break;
    default:
        snprintf(err, errlen, "无法监听 %s (端口 %u): %s", listen_s, port, strerror(e));
    }
    return -1;
}

int td_http_start(td_http **out, td_api *api, const td_http_opts *o, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME;
    td_http *h = NULL;
    int rc, fd = -1;

    if ((rc = td_http_parse_listen(o->listen, &ss, err, errlen)) != TD_OK) return rc;
    if (!(h = calloc(1, sizeof *h))) return TD_ENOMEM;
    h->api = api;
    h->listen_fd = -1;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
        snprintf(err, errlen, "--tls-cert 和 --tls-key 要一起设置 (证书和它的私钥)");
        rc = TD_EINVAL;
        goto fail;
    }
    if (o->tls_cert) {
        if (!(h->cert = read_pem(o->tls_cert, err, errlen)) || !(h->key = read_pem(o->tls_key, err, errlen))) {
            rc = TD_EINVAL;
            goto fail;
        }
        flags |= MHD_USE_TLS;
    }
    if ((rc = td_workq_new(&h->lane[LANE_WRITE], WORKERS, WORK_QUEUE, err, errlen)) != TD_OK ||
        (rc = td_workq_new(&h->lane[LANE_REPORT], WORKERS, WORK_QUEUE, err, errlen)) != TD_OK ||
        (rc = td_workq_new(&h->lane[LANE_READ], READ_WORKERS, WORK_QUEUE, err, errlen)) != TD_OK ||
        (rc = td_park_new(&h->park, PARK_TICK_MS, err, errlen)) != TD_OK)
        goto fail;
    if ((fd = listen_socket(&ss, o->listen, err, errlen)) < 0) {
        rc = TD_EIO;
        goto fail;
    }
    {
        struct MHD_OptionItem opts[] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL}, /* first, or MHD warns */
            {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
            {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY, NULL},
            {MHD_OPTION_CONNECTION_LIMIT, o->conn_limit ? o->conn_limit : 4096, NULL},
            {MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->conn_per_ip, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, o->conn_timeout ? o->conn_timeout : 30, NULL},
            {h->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->cert},
            {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key},
            {MHD_OPTION_END, 0, NULL},
        };
        h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    }
    if (!h->d) { /* MHD closes the listening socket on its failure paths */
        snprintf(err, errlen, "无法在 %s 上启动 HTTP 服务 (libmicrohttpd 拒绝启动，见上一行日志)", o->listen);
        rc = TD_EIO;
        goto fail;
    }
    *out = h;
    return TD_OK;
fail:
    td_http_stop(h);
    return rc;
}

unsigned td_http_port(const td_http *h)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void td_http_quiesce(td_http *h)
{
    int fd;

    if (!h || !h->d || h->listen_fd >= 0) return;
    if ((fd = MHD_quiesce_daemon(h->d)) == MHD_INVALID_SOCKET) return;
    /* MHD's thread may still hold the descriptor, so it is closed only after
     * MHD_stop_daemon; shutdown() already makes the kernel refuse new
     * connections (and reset queued ones) instead of letting them hang. */
    shutdown(fd, SHUT_RDWR);
    h->listen_fd = fd;
}

void td_http_stop(td_http *h)
{
    if (!h) return;
    if (h->d) {
        td_http_quiesce(h);
        /* Every suspended request is resumed -- parked GETs by the park,
         * the others by their worker -- before MHD stops: MHD must not
         * stop with suspended connections.  Pools and park only refuse
         * after stopping, so the MHD thread may still call them. */
        __atomic_store_n(&h->stopping, 1, __ATOMIC_RELEASE);
        td_park_stop(h->park);
        for (int i = 0; i < 3; i++) td_workq_stop(h->lane[i], cancel_job);
        for (int i = 0; i < 3; i++) td_workq_join(h->lane[i]);
        for (long waited = 0; __atomic_load_n(&h->active, __ATOMIC_RELAXED) > 0 && waited < STOP_GRACE_MS;
             waited += 10)
            sleep_ms(10);
        MHD_stop_daemon(h->d);
    }
    td_park_free(h->park);
    for (int i = 0; i < 3; i++) td_workq_free(h->lane[i]);
    if (h->listen_fd >= 0) close(h->listen_fd);
    for (unsigned i = 0; i < CACHE_SLOTS; i++) {
        if (h->cache[i].resp) MHD_destroy_response(h->cache[i].resp);
        td_snap_release(h->cache[i].snap);
    }
    free(h->cert);
    free(h->key);
    free(h);
}
