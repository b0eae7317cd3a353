/* httpc -- see httpc.h. */
#include "httpc.h"
#include "strbuf.h"
#include "tokendist.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct xfer {
    const td_httpc_req *req;
    td_httpc_resp *resp;
    size_t cap, hcap, max;
    int rc;                 /* why a callback stopped the transfer */
    int headers_over;       /* rc is TD_ETOOBIG because of the headers */
    enum { AWAIT_STATUS, IN_BLOCK, FINAL_ENDED } hstate;   /* where on_header is */
    CURL *curl;             /* the transfer's handle, for on_header's status */
} xfer;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void td_httpc_global_init(void) { pthread_once(&global_once, global_init); }

/* ---- pools of kept connections ------------------------------------------ */

#define POOL_IDLE_MAX 4     /* handles kept; more only while that many run at once */

struct td_httpc_pool {
    pthread_mutex_t mu;                 /* guards idle, nidle */
    CURL *idle[POOL_IDLE_MAX];          /* most recently used last: its connection is warmest */
    int nidle;
    CURLSH *share;                      /* TLS sessions and DNS answers */
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
    td_httpc_pool *p = ud;
    (void)h, (void)a;
    pthread_mutex_lock(&p->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
    td_httpc_pool *p = ud;
    (void)h;
    pthread_mutex_unlock(&p->share_mu[d]);
}

int td_httpc_pool_new(td_httpc_pool **out)
{
    td_httpc_pool *p;

    td_httpc_global_init();
    if (!(p = calloc(1, sizeof *p))) return TD_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&p->share_mu[i], NULL);
    if (!(p->share = curl_share_init())) {
        td_httpc_pool_free(p);
        return TD_ENOMEM;
    }
    curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    *out = p;
    return TD_OK;
}

void td_httpc_pool_free(td_httpc_pool *p)
{
    if (!p) return;
    /* Handles first: a share still in use by a handle cannot be freed. */
    for (int i = 0; i < p->nidle; i++) curl_easy_cleanup(p->idle[i]);
    if (p->share) curl_share_cleanup(p->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&p->share_mu[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A handle for one request: the pool's most recently used idle one (its
 * connection is the likeliest to be still open), or a new one. */
static CURL *handle_take(td_httpc_pool *p)
{
    CURL *h = NULL;

    if (!p) return curl_easy_init();
    pthread_mutex_lock(&p->mu);
    if (p->nidle > 0) h = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    if (!h && (h = curl_easy_init())) curl_easy_setopt(h, CURLOPT_SHARE, p->share);
    return h;
}

/* Gives the handle back with its connections open.  The reset drops every
 * option (they point into the finished request's stack) but keeps live
 * connections, TLS sessions and the share. */
static void handle_give(td_httpc_pool *p, CURL *h)
{
    if (!h) return;
    if (p) {
        curl_easy_reset(h);
        pthread_mutex_lock(&p->mu);
        if (p->nidle < POOL_IDLE_MAX) p->idle[p->nidle++] = h, h = NULL;
        pthread_mutex_unlock(&p->mu);
    }
    if (h) curl_easy_cleanup(h);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    td_httpc_resp *r = x->resp;
    size_t n = size * nmemb;

    if (x->req->on_data) {
        int rc = x->req->on_data(x->req->ud, p, n);
        if (rc != TD_OK) {
            x->rc = rc;
            return 0;
        }
        r->body_len += n;
        return n;
    }
    if (r->body_len + n > x->max) {
        x->rc = TD_ETOOBIG;
        return 0;
    }
    if (r->body_len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        char *nb;
        while (cap < r->body_len + n + 1) cap *= 2;
        if (!(nb = realloc(r->body, cap))) {
            x->rc = TD_ENOMEM;
            return 0;
        }
        r->body = nb;
        x->cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    td_httpc_resp *r = x->resp;
    size_t n = size * nmemb;

    /* The answer's headers are its final block's.  Another block follows
     * only an informational (1xx) one: redirects are not followed and a
     * proxy's CONNECT answer never reaches us (SUPPRESS_CONNECT_HEADERS).
     * What comes after the final block is a chunked answer's trailers,
     * whatever they look like: dropped, they are not the answer's. */
    switch (x->hstate) {
    case AWAIT_STATUS:  /* a block's first line is its status line: libcurl parsed it */
        r->headers_len = 0;
        x->hstate = IN_BLOCK;
        break;
    case IN_BLOCK:
        if (p[0] == '\r' || p[0] == '\n') {
            /* libcurl's own reading of the block's status decides, not
             * ours: it accepts forms ("HTTP/1.1 \t200") a parser of our
             * own would read otherwise. */
            long code = 0;
            curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
            x->hstate = code >= 100 && code < 200 ? AWAIT_STATUS : FINAL_ENDED;
        }
        break;
    case FINAL_ENDED:
        return n;
    }
    if (r->headers_len + n + 1 > TD_HTTPC_HEADERS_MAX) {
        x->rc = TD_ETOOBIG;
        x->headers_over = 1;
        return 0;
    }
    if (r->headers_len + n + 1 > x->hcap) {
        size_t cap = x->hcap ? x->hcap : 1024;
        char *nb;
        while (cap < r->headers_len + n + 1) cap *= 2;
        if (!(nb = realloc(r->headers, cap))) {
            x->rc = TD_ENOMEM;
            return 0;
        }
        r->headers = nb;
        x->hcap = cap;
    }
    memcpy(r->headers + r->headers_len, p, n);
    r->headers_len += n;
    r->headers[r->headers_len] = '\0';
    return n;
}

/* Set once when the process shuts down: every transfer stops, those
 * that finish a write after a grace counted from abort_at (real time:
 * the stop is). */
static int aborting;
static int64_t abort_at;

static int64_t real_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void td_httpc_abort_all(void)
{
    __atomic_store_n(&abort_at, real_mono_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&aborting, 1, __ATOMIC_RELEASE);
}

int td_httpc_stopping(void) { return __atomic_load_n(&aborting, __ATOMIC_ACQUIRE); }

/* Whether req must stop (or not be sent) now: shutting down, and not a
 * write's step within its grace. */
static int cut_short(const td_httpc_req *req)
{
    if (!__atomic_load_n(&aborting, __ATOMIC_ACQUIRE)) return 0;
    return !req->finish_on_stop ||
           real_mono_ms() - __atomic_load_n(&abort_at, __ATOMIC_RELAXED) > TD_HTTPC_STOP_GRACE_MS;
}

int td_httpc_pause(long ms)
{
    /* In slices of 100 ms: shutting down is noticed that soon. */
    for (;;) {
        long slice = ms < 100 ? ms : 100;
        struct timespec ts = {0, slice * 1000000L};
        if (__atomic_load_n(&aborting, __ATOMIC_ACQUIRE)) return TD_ECANCELED;
        if (ms <= 0) return TD_OK;
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        ms -= slice;
    }
}

/* libcurl calls this at least once a second during a transfer, also while
 * it waits for a slow server; non-zero aborts the transfer. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const xfer *x = ud;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return cut_short(x->req);
}

/* What went wrong, in our words, for the failures an operator meets;
 * libcurl's own text follows it, as it is (it is what a search finds). */
static const char *curl_what(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST: return "无法解析主机名，请检查地址和 DNS";
    case CURLE_COULDNT_RESOLVE_PROXY: return "无法解析代理的主机名";
    case CURLE_COULDNT_CONNECT: return "无法连接，请检查地址、端口和防火墙，以及服务是否在运行";
    case CURLE_OPERATION_TIMEDOUT: return "超时";
    case CURLE_PEER_FAILED_VERIFICATION: return "TLS 证书校验失败 (CA 证书见 CURL_CA_BUNDLE)";
    case CURLE_SSL_CACERT_BADFILE: return "无法读取 CA 证书 (CURL_CA_BUNDLE)";
    case CURLE_SSL_CONNECT_ERROR: return "TLS 握手失败";
    case CURLE_GOT_NOTHING: return "对方未应答即关闭了连接";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR: return "连接中断";
    case CURLE_UNSUPPORTED_PROTOCOL: return "协议或 HTTP 版本不受支持 (地址只能是 http 或 https)";
    case CURLE_URL_MALFORMAT: return "地址格式不对";
    default: return "请求失败";
    }
}

/* The URL as td_httpc_do's errors name it. */
#define SHOWN_MAX 512

int td_httpc_do(const td_httpc_req *req, td_httpc_resp *resp, char *err, size_t errlen)
{
    char shown[SHOWN_MAX];
    CURL *c = NULL;
    struct curl_slist *hl = NULL;
    xfer x = {.req = req, .resp = resp, .max = req->max_body ? req->max_body : TD_HTTPC_BODY_MAX, .rc = TD_OK};
    char cerr[CURL_ERROR_SIZE] = "";
    const char *ca;
    CURLcode cc;
    int rc = TD_EHTTP;

    memset(resp, 0, sizeof *resp);
    /* Errors reach logs and answers: never with the URL's credentials. */
    td_httpc_redact_url(req->url, TD_HTTPC_HIDE_QUERY, shown, sizeof shown);
    if (cut_short(req)) {
        snprintf(err, errlen, "%s: 未发送: 进程正在退出", shown);
        return TD_ECANCELED;
    }
    td_httpc_global_init();
    if (!(c = handle_take(req->pool))) {
        rc = TD_ENOMEM;
        goto out;
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(hl, *h);
        if (!n) {
            rc = TD_ENOMEM;
            goto out;
        }
        hl = n;
    }
    /* libcurl adds "Expect: 100-continue" to larger POSTs, costing a round
     * trip against servers that do not answer it.  Not to signed requests:
     * libcurl 7.88 would sign this empty header that it never sends (and
     * adds Expect only to bodies over 1 MiB, more than a signed caller
     * sends). */
    if (!req->aws_sigv4) hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A self-contained deployment (the SCF zip on CentOS 7) ships its own
     * CA bundle; libcurl itself only reads this variable in the curl tool. */
    if ((ca = getenv("CURL_CA_BUNDLE")) && *ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000L);
    if (req->timeout_ms >= 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    x.curl = c;
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tokendist/" TD_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (req->method && strcmp(req->method, "GET") != 0) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->aws_sigv4) {
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, req->aws_sigv4);
        curl_easy_setopt(c, CURLOPT_USERNAME, req->username ? req->username : "");
        curl_easy_setopt(c, CURLOPT_PASSWORD, req->password ? req->password : "");
    }
    if (req->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        rc = TD_OK;
    } else if (x.rc != TD_OK) {
        rc = x.rc;
        if (rc == TD_ETOOBIG && x.headers_over)
            snprintf(err, errlen, "%s: 回答的头部超过 %u 字节的上限", shown, TD_HTTPC_HEADERS_MAX);
        else if (rc == TD_ETOOBIG)
            snprintf(err, errlen, "%s: 回答超过 %zu 字节的上限", shown, x.max);
        else
            snprintf(err, errlen, "%s: 传输中止: %s", shown, td_strerror(rc));
    } else if (cc == CURLE_ABORTED_BY_CALLBACK) {
        rc = TD_ECANCELED;
        snprintf(err, errlen, "%s: 已中止: 进程正在退出", shown);
    } else {
        rc = cc == CURLE_OPERATION_TIMEDOUT ? TD_ETIMEOUT : TD_EHTTP;
        snprintf(err, errlen, "%s: %s (%s)", shown, curl_what(cc), cerr[0] ? cerr : curl_easy_strerror(cc));
    }
out:
    handle_give(req->pool, c);
    curl_slist_free_all(hl);
    if (rc != TD_OK) td_httpc_resp_clear(resp);
    return rc;
}

void td_httpc_resp_clear(td_httpc_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

/* The value of the last header `name`, trimmed, and its length; NULL when
 * absent. */
static const char *header_find(const td_httpc_resp *r, const char *name, size_t *flen)
{
    const char *p = r->headers, *found = NULL;
    size_t nlen = strlen(name);

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nlen && p[nlen] == ':' && !strncasecmp(p, name, nlen)) {
            const char *v = p + nlen + 1, *e = p + ll;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ')) e--;
            found = v, *flen = (size_t)(e - v);
        }
        p = eol ? eol + 1 : p + ll;
    }
    return found;
}

const char *td_httpc_header(const td_httpc_resp *r, const char *name, char *buf, size_t len)
{
    size_t flen = 0;
    const char *found = header_find(r, name, &flen);

    if (!found || flen >= len) return NULL;
    memcpy(buf, found, flen);
    buf[flen] = '\0';
    return buf;
}

int td_httpc_has_header(const td_httpc_resp *r, const char *name)
{
    size_t flen;
    return header_find(r, name, &flen) != NULL;
}

int64_t td_httpc_date(const td_httpc_resp *r)
{
    char buf[64];
    time_t t;
    if (!td_httpc_header(r, "Date", buf, sizeof buf)) return 0;
    t = curl_getdate(buf, NULL);
    return t > 0 ? (int64_t)t : 0;
}

/* One header value as a wait in seconds, 0..TD_HTTPC_RETRY_AFTER_MAX, or
 * -1 when it is neither form.  Digits are summed only while the value is
 * within the bound, so no length of digits can overflow: beyond it the
 * answer is the bound.  An HTTP-date (it starts with the day's name) is
 * measured from the answer's own Date when it has one, so a skewed local
 * clock does not stretch the wait. */
static long parse_wait(const td_httpc_resp *r, const char *s)
{
    long v = 0;
    time_t when, now;

    if (*s >= '0' && *s <= '9') {
        for (; *s >= '0' && *s <= '9'; s++)
            if (v <= TD_HTTPC_RETRY_AFTER_MAX) v = v * 10 + (*s - '0');
        if (*s) return -1;
        return v > TD_HTTPC_RETRY_AFTER_MAX ? TD_HTTPC_RETRY_AFTER_MAX : v;
    }
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) || (when = curl_getdate(s, NULL)) <= 0)
        return -1;
    if (!(now = (time_t)td_httpc_date(r))) now = time(NULL);
    if (when <= now) return 0;
    return when - now > TD_HTTPC_RETRY_AFTER_MAX ? TD_HTTPC_RETRY_AFTER_MAX : (long)(when - now);
}

long td_httpc_retry_after(const td_httpc_resp *r)
{
    const char *names[] = {"x-ogw-ratelimit-reset", "Retry-After"};
    char buf[128];

    for (int i = 0; i < 2; i++) {
        long v;
        if (td_httpc_header(r, names[i], buf, sizeof buf) && (v = parse_wait(r, buf)) >= 0) return v;
    }
    return -1;
}

const char *td_httpc_redact_url(const char *url, int flags, char *buf, size_t len)
{
    const char *auth = url ? strstr(url, "://") : NULL, *at = NULL, *host, *q;
    td_strbuf b;

    td_strbuf_fixed(&b, buf, len);
    if (!auth) {
        td_strbuf_append_cut(&b, url ? url : "", 0);
        return buf;
    }
    auth += 3;
    if ((at = strchr(auth, '@'))) {
        const char *end = at + strcspn(at, "/?#");
        for (const char *c = at; c < end; c++)
            if (*c == '@') at = c;
    }
    host = at ? at + 1 : auth;
    /* Cut pieces, so a short buf still shows what fits of the rest. */
    td_strbuf_append_cut(&b, url, (size_t)(auth - url));
    if (at) td_strbuf_append_cut(&b, "***@", 0);
    q = flags & TD_HTTPC_HIDE_QUERY ? host + strcspn(host, "?#") : host + strlen(host);
    if (q > host) td_strbuf_append_cut(&b, host, (size_t)(q - host));
    if (*q) td_strbuf_append_cut(&b, "?…", 0);
    return buf;
}

const char *td_httpc_err_detail(const char *err, const char *url)
{
    char shown[SHOWN_MAX];
    size_t n = strlen(td_httpc_redact_url(url, TD_HTTPC_HIDE_QUERY, shown, sizeof shown));

    return !strncmp(err, shown, n) && !strncmp(err + n, ": ", 2) ? err + n + 2 : NULL;
}

int td_httpc_escape_append(td_strbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '-' || ch == '_' || ch == '.' || ch == '~';
        char pct[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        if ((keep ? td_strbuf_append(b, (const char *)&s[i], 1) : td_strbuf_append(b, pct, 3)) != TD_OK)
            break;
    }
    return td_strbuf_error(b);
}

char *td_httpc_escape(const char *s, char *buf, size_t len)
{
    td_strbuf b;

    td_strbuf_fixed(&b, buf, len);
    return td_httpc_escape_append(&b, s, strlen(s)) == TD_OK ? buf : NULL;
}
