/*
 * client -- the client side of tokendist (public API in tokendist.h):
 * get the token record from the endpoints, the Gitee file or the cache
 * file, keep it in memory while it is fresh, and report tokens Feishu
 * rejected.
 *
 * Locking: one mutex guards the memory record, the clock offset and the
 * single-flight state; no lock is held during network or file I/O.  The
 * fast path (a fresh token in memory) is a lock, a clock read and a copy.
 */
#define _GNU_SOURCE
#include "tokendist.h"
#include "clock.h"
#include "client.h"
#include "strbuf.h"
#include "gitee.h"
#include "httpc.h"
#include "record.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MIN_REMAINING 300
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_REFRESH_WAIT_MS 5000
#define STALE_POLL_MS 250
#define CACHE_FILE_MAX (64u << 10)      /* a record is a few KB at most */
#define RECORD_BODY_MAX (64u << 10)     /* the server refuses larger records too */
#define SKEW_IGNORE_S 2                 /* Date has 1 s precision, plus latency */
#define WHY_LEN 512
#define URL_MAX 2048

struct td_client {
    char **urls;                /* GET URLs, in order */
    char **invalid_urls;        /* the matching report URLs; an entry may be NULL */
    size_t nurls;
    char *auth_header;          /* "Authorization: Bearer KEY" or NULL */
    td_gitee gitee;             /* gitee.owner == NULL: no Gitee fallback */
    char *gitee_strings[6];     /* owned copies behind the gitee fields */
    char *cache_file;
    long min_remaining;         /* < 0: only "not expired" */
    long timeout_ms, connect_ms, refresh_wait_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* The record in memory (NULL: none), and what the fast path needs of it. */
    td_record *rec;
    const char *tok[2];         /* by td_token_kind; point into rec */
    size_t tok_len[2];
    int64_t exp[2];
    td_source origin;
    int64_t offset;             /* server clock - local clock, seconds */

    /* Single flight: one fetch at a time; waiters share its outcome. */
    int fetching;
    unsigned long gen;
    int last_rc;
    char last_err[2048];

    /* The token last reported invalid, and that report's outcome. */
    char *rejected;
    int64_t rejected_until_ms;  /* monotonic: fetches avoid it until then */
    int reporting;
    int report_rc;
    char report_err[1024];
};

/* What one source gave: a usable record or the reason it is not. */
typedef struct attempt {
    td_source src;
    const char *where;          /* URL, owner/repo/path@branch or file path */
    int rc;
    char why[WHY_LEN];
} attempt;

const char *td_source_name(td_source s)
{
    switch (s) {
    case TD_SOURCE_MEMORY: return "memory";
    case TD_SOURCE_ENDPOINT: return "endpoint";
    case TD_SOURCE_GITEE: return "gitee";
    case TD_SOURCE_CACHE: return "cache";
    default: return "none";
    }
}

/* The seed's names for the sources, as its messages print them. */
static const char *source_label(td_source s)
{
    switch (s) {
    case TD_SOURCE_ENDPOINT: return "腾讯云函数";
    case TD_SOURCE_GITEE: return "Gitee";
    case TD_SOURCE_CACHE: return "本地缓存";
    default: return "内存";
    }
}

/* ---- URLs ---------------------------------------------------------------- */

/* Splits url into the part before its path and its path (query and
 * fragment dropped, trailing slashes removed). */
static int split_url(const char *url, char *base, size_t blen, char *path, size_t plen)
{
    const char *s = strstr(url, "://"), *p, *q;
    size_t n;

    if (!s || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) return TD_EINVAL;
    p = s + 3 + strcspn(s + 3, "/?#");
    if ((size_t)(p - url) >= blen) return TD_ETOOBIG;
    memcpy(base, url, (size_t)(p - url));
    base[p - url] = '\0';
    q = p + strcspn(p, "?#");
    n = (size_t)(q - p);
    while (n > 0 && p[n - 1] == '/') n--;
    if (n >= plen) return TD_ETOOBIG;
    memcpy(path, p, n);
    path[n] = '\0';
    return TD_OK;
}

static int valid_name(const char *s) { return td_record_name_valid(s, strlen(s)); }

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The GET URL and the report URL of one configured endpoint (the same
 * rules as the Node client's invalidUrlFor):
 *   …/v1/tokens/NAME          → GET as is, report …/v1/tokens/NAME/invalid
 *   …/release/get-token, …/get-token → report …/v1/tokens/default/invalid
 *   http(s)://host[:port]     → GET …/v1/tokens/NAME (opts.name)
 * Other paths are fetched as given and cannot be reported to (NULL). */
static int endpoint_urls(const char *url, const char *name, char **get, char **report,
                         char *err, size_t errlen)
{
    char base[URL_MAX], path[URL_MAX], buf[URL_MAX * 2 + 64];
    const char *slash;
    int rc = split_url(url, base, sizeof base, path, sizeof path);

    *get = *report = NULL;
    if (rc != TD_OK) {
        snprintf(err, errlen, "endpoint URL '%.200s' %s", url,
                 rc == TD_ETOOBIG ? "is too long" : "must start with http:// or https://");
        return TD_EINVAL;
    }
    if (!path[0]) {
        snprintf(buf, sizeof buf, "%s/v1/tokens/%s", base, name);
        if (!(*get = strdup(buf))) return TD_ENOMEM;
        snprintf(buf, sizeof buf, "%s/v1/tokens/%s/invalid", base, name);
    } else {
        if (!(*get = strdup(url))) return TD_ENOMEM;
        slash = strrchr(path, '/');
        if (ends_with(path, "/release/get-token") || ends_with(path, "/get-token")) {
            size_t keep = strlen(path) - (ends_with(path, "/release/get-token") ? 18 : 10);
            snprintf(buf, sizeof buf, "%s%.*s/v1/tokens/default/invalid", base, (int)keep, path);
        } else if (slash && valid_name(slash + 1) && slash - path >= 10 &&
                   !strncmp(slash - 10, "/v1/tokens", 10)) {
            snprintf(buf, sizeof buf, "%s%s/invalid", base, path);
        } else {
            return TD_OK;
        }
    }
    return (*report = strdup(buf)) ? TD_OK : TD_ENOMEM;
}

/* ---- creating and freeing -------------------------------------------------- */

void td_client_free(td_client *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nurls; i++) {
        free(c->urls[i]);
        free(c->invalid_urls[i]);
    }
    free(c->urls);
    free(c->invalid_urls);
    if (c->auth_header) {
        explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
    }
    for (size_t i = 0; i < sizeof c->gitee_strings / sizeof *c->gitee_strings; i++) {
        if (c->gitee_strings[i]) explicit_bzero(c->gitee_strings[i], strlen(c->gitee_strings[i]));
        free(c->gitee_strings[i]);
    }
    free(c->cache_file);
    free(c->rejected);
    td_record_free(c->rec);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Copies an optional string; *ok turns 0 when memory runs out. */
static char *dup_opt(const char *s, int *ok)
{
    char *d;
    if (!s || !*s) return NULL;
    if (!(d = strdup(s))) *ok = 0;
    return d;
}

int td_client_new(td_client **out, const td_client_opts *o, char *err, size_t errlen)
{
    td_client *c = NULL;
    const char *name = o->name && *o->name ? o->name : "default";
    int rc = TD_ENOMEM, ok = 1;
    char **gs;

    if (!valid_name(name)) {
        snprintf(err, errlen, "token 名称 '%.80s' 无效: 应为 " TD_NAME_RULE, name);
        return TD_EINVAL;
    }
    if (o->nurls == 0 && !(o->gitee.owner && *o->gitee.owner) && !(o->cache_file && *o->cache_file)) {
        snprintf(err, errlen, "no token source: give an endpoint URL (--url or TENCENT_CLOUD_API_URL), "
                              "a Gitee repository (GITEE_OWNER/GITEE_REPO) or a cache file");
        return TD_EINVAL;
    }
    if (o->gitee.owner && *o->gitee.owner && !(o->gitee.repo && *o->gitee.repo)) {
        snprintf(err, errlen, "Gitee fallback: GITEE_OWNER is set but GITEE_REPO is not");
        return TD_EINVAL;
    }
    if (!(c = calloc(1, sizeof *c))) goto fail;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (o->nurls) {
        if (!(c->urls = calloc(o->nurls, sizeof *c->urls)) ||
            !(c->invalid_urls = calloc(o->nurls, sizeof *c->invalid_urls)))
            goto fail;
    }
    for (size_t i = 0; i < o->nurls; i++) {
        if ((rc = endpoint_urls(o->urls[i], name, &c->urls[i], &c->invalid_urls[i], err, errlen)) != TD_OK) {
            c->nurls = i + 1;
            goto fail;
        }
        c->nurls = i + 1;
    }
    rc = TD_ENOMEM;
    if (o->read_key && *o->read_key) {
        size_t n = strlen(o->read_key) + sizeof "Authorization: Bearer ";
        if (strpbrk(o->read_key, "\r\n")) {
            snprintf(err, errlen, "the read key contains a line break");
            rc = TD_EINVAL;
            goto fail;
        }
        if (!(c->auth_header = malloc(n))) goto fail;
        snprintf(c->auth_header, n, "Authorization: Bearer %s", o->read_key);
    }
    if (o->gitee.owner && *o->gitee.owner) {
        gs = c->gitee_strings;
        c->gitee.base_url = gs[0] = dup_opt(o->gitee.base_url, &ok);
        c->gitee.owner = gs[1] = dup_opt(o->gitee.owner, &ok);
        c->gitee.repo = gs[2] = dup_opt(o->gitee.repo, &ok);
        c->gitee.path = gs[3] = dup_opt(o->gitee.path ? o->gitee.path : "token.json", &ok);
        c->gitee.branch = gs[4] = dup_opt(o->gitee.branch, &ok);
        c->gitee.access_token = gs[5] = dup_opt(o->gitee.access_token, &ok);
    }
    c->cache_file = dup_opt(o->cache_file, &ok);
    if (!ok) goto fail;
    c->min_remaining = o->min_remaining == 0 ? DEFAULT_MIN_REMAINING : o->min_remaining < 0 ? -1 : o->min_remaining;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    c->refresh_wait_ms = o->refresh_wait_ms > 0 ? o->refresh_wait_ms : DEFAULT_REFRESH_WAIT_MS;
    c->gitee.timeout_ms = c->timeout_ms;
    *out = c;
    return TD_OK;
fail:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "out of memory creating the client");
    td_client_free(c);
    return rc;
}

/* ---- judging records ---------------------------------------------------------- */

static int64_t server_now(int64_t offset) { return td_clock_now() + offset; }

/* The token of `kind` in rec and its expiry.  A record without a tenant
 * token (the seed's records) gives its access_token for both kinds: for
 * Feishu's internal apps they are the same string. */
static const char *record_token(const td_record *rec, td_token_kind kind, int64_t *exp)
{
    const char *t = kind == TD_TOKEN_TENANT ? td_record_field(rec, "tenant_access_token") : NULL;
    *exp = td_record_expires(rec);
    if (!t) return td_record_token(rec);
    {
        size_t len;
        const char *js = td_record_json(rec, &len);
        json_t *o = json_loadb(js, len, 0, NULL);
        json_t *v = json_object_get(o, "tenant_expire_timestamp");
        if (json_is_integer(v) && json_integer_value(v) > 0) *exp = (int64_t)json_integer_value(v);
        json_decref(o);
    }
    return t;
}

static int fresh_for(long min_remaining, int64_t remaining)
{
    return remaining > (min_remaining < 0 ? 0 : min_remaining);
}

static int fresh_enough(const td_client *c, int64_t remaining)
{
    return fresh_for(c->min_remaining, remaining);
}

int td__client_judge(const char *text, size_t len, td_token_kind kind, long min_remaining,
                     int64_t now, td_record **out, char *why, size_t whylen)
{
    td_record *rec = NULL;
    char perr[256];
    int64_t exp, remaining;

    if (td_record_parse(text, len, 0, -1, &rec, perr, sizeof perr) != TD_OK) {
        snprintf(why, whylen, "token数据无效 (%s)", perr);
        return TD_EINVAL;
    }
    record_token(rec, kind, &exp);
    remaining = exp - now;
    if (!fresh_for(min_remaining, remaining)) {
        if (remaining <= 0)
            snprintf(why, whylen, "token已过期 (已过期 %lld 秒)", (long long)-remaining);
        else
            snprintf(why, whylen, "token即将过期 (剩余 %lld 秒，要求至少 %ld 秒)",
                     (long long)remaining, min_remaining);
        td_record_free(rec);
        return TD_EEXPIRED;
    }
    *out = rec;
    return TD_OK;
}

/* A record from one source, judged by the server's clock; a->why says why not. */
static int judge(td_client *c, attempt *a, const char *text, size_t len, td_token_kind kind,
                 int64_t offset, td_record **out)
{
    return a->rc = td__client_judge(text, len, kind, c->min_remaining, server_now(offset), out,
                                    a->why, sizeof a->why);
}

/* ---- the sources -------------------------------------------------------------- */

/* The reason phrase of the status line ("HTTP/1.1 500 Internal Server
 * Error"), or a stock one when the server sent none (HTTP/2). */
static const char *reason_phrase(const td_httpc_resp *r, char *buf, size_t len)
{
    const char *h = r->headers, *sp, *eol;
    if (h && !strncmp(h, "HTTP/", 5) && (sp = strchr(h, ' ')) && (sp = strchr(sp + 1, ' ')) &&
        (eol = strpbrk(sp, "\r\n")) && eol > sp + 1) {
        snprintf(buf, len, "%.*s", (int)(eol - sp - 1), sp + 1);
        return buf;
    }
    switch (r->status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "error";
    }
}

/* The "error" or "message" text of a JSON error body, or NULL.  An empty
 * one counts as none, so the caller's stock reason is shown instead of
 * nothing. */
static const char *body_error(const td_httpc_resp *r, char *buf, size_t len)
{
    json_t *o = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(o, "error"));
    if (!s || !*s) s = json_string_value(json_object_get(o, "message"));
    if (s && !*s) s = NULL;
    if (s) {
        td_strbuf b;
        td_strbuf_fixed(&b, buf, len);
        td_strbuf_append_cut(&b, s, 0);
    }
    json_decref(o);
    return s ? buf : NULL;
}

static void note_date(td_client *c, const td_httpc_resp *r)
{
    int64_t date = td_httpc_date(r), off;
    if (!date) return;
    off = date - td_clock_now();
    if (off > -SKEW_IGNORE_S && off < SKEW_IGNORE_S) off = 0;
    pthread_mutex_lock(&c->mu);
    c->offset = off;
    pthread_mutex_unlock(&c->mu);
}

static int64_t get_offset(td_client *c)
{
    int64_t off;
    pthread_mutex_lock(&c->mu);
    off = c->offset;
    pthread_mutex_unlock(&c->mu);
    return off;
}

int td__client_endpoint_answer(const td_httpc_resp *resp, td_token_kind kind, long min_remaining,
                               int64_t now, td_record **out, char *why, size_t whylen)
{
    char reason[128], msg[256];
    const char *m, *rp;

    if (resp->status == 200)
        return td__client_judge(resp->body ? resp->body : "", resp->body_len, kind, min_remaining,
                                now, out, why, whylen);
    m = body_error(resp, msg, sizeof msg);
    if (resp->status == 404) {
        snprintf(why, whylen, "%s", m ? m : "Token not found or expired");
        return TD_ENOTFOUND;
    }
    rp = reason_phrase(resp, reason, sizeof reason);
    if (m && strcmp(m, rp) != 0)
        snprintf(why, whylen, "HTTP %ld: %s (%s)", resp->status, rp, m);
    else
        snprintf(why, whylen, "HTTP %ld: %s", resp->status, rp);
    return resp->status == 401 || resp->status == 403 ? TD_EAUTH : TD_EHTTP;
}

static int from_endpoint(td_client *c, size_t i, td_token_kind kind, attempt *a, td_record **out)
{
    const char *hdrs[] = {c->auth_header, NULL};
    td_httpc_req req = {.url = c->urls[i], .headers = c->auth_header ? hdrs : NULL,
                        .timeout_ms = c->timeout_ms, .connect_timeout_ms = c->connect_ms,
                        .max_body = RECORD_BODY_MAX};
    td_httpc_resp resp = {0};
    char herr[400];
    int rc;

    a->src = TD_SOURCE_ENDPOINT;
    a->where = c->urls[i];
    if ((rc = td_httpc_do(&req, &resp, herr, sizeof herr)) != TD_OK) {
        size_t ul = strlen(req.url);
        const char *h = !strncmp(herr, req.url, ul) && !strncmp(herr + ul, ": ", 2) ? herr + ul + 2 : herr;
        snprintf(a->why, sizeof a->why, "%s: %s", rc == TD_ETIMEOUT ? "请求超时" : "网络错误", h);
        return a->rc = rc;
    }
    note_date(c, &resp);
    rc = a->rc = td__client_endpoint_answer(&resp, kind, c->min_remaining, server_now(get_offset(c)),
                                            out, a->why, sizeof a->why);
    td_httpc_resp_clear(&resp);
    return rc;
}

static int from_gitee(td_client *c, td_token_kind kind, attempt *a, char *where, size_t wlen,
                      td_record **out)
{
    char *text = NULL, gerr[512];
    size_t len = 0;
    int rc;

    snprintf(where, wlen, "%s/%s/%s@%s", c->gitee.owner, c->gitee.repo, c->gitee.path,
             c->gitee.branch ? c->gitee.branch : "默认分支");
    a->src = TD_SOURCE_GITEE;
    a->where = where;
    if ((rc = td_gitee_read(&c->gitee, &text, &len, NULL, gerr, sizeof gerr)) != TD_OK) {
        if (rc == TD_ENOTFOUND) snprintf(a->why, sizeof a->why, "文件不存在");
        else snprintf(a->why, sizeof a->why, "%s", gerr);
        return a->rc = rc;
    }
    rc = judge(c, a, text, len, kind, get_offset(c), out);
    free(text);
    return rc;
}

static int from_cache(td_client *c, td_token_kind kind, attempt *a, td_record **out)
{
    char *buf = NULL;
    FILE *f = NULL;
    size_t n;
    int rc;

    a->src = TD_SOURCE_CACHE;
    a->where = c->cache_file;
    if (!(f = fopen(c->cache_file, "rb"))) {
        snprintf(a->why, sizeof a->why, errno == ENOENT ? "缓存文件不存在" : "无法读取缓存文件: %s",
                 strerror(errno));
        rc = a->rc = errno == ENOENT ? TD_ENOTFOUND : TD_EIO;
        goto out;
    }
    if (!(buf = malloc(CACHE_FILE_MAX + 1))) {
        rc = a->rc = TD_ENOMEM;
        snprintf(a->why, sizeof a->why, "out of memory");
        goto out;
    }
    n = fread(buf, 1, CACHE_FILE_MAX + 1, f);
    if (ferror(f) || n > CACHE_FILE_MAX) {
        snprintf(a->why, sizeof a->why, ferror(f) ? "无法读取缓存文件" : "缓存文件大于 %u 字节",
                 CACHE_FILE_MAX);
        rc = a->rc = ferror(f) ? TD_EIO : TD_ETOOBIG;
        goto out;
    }
    rc = judge(c, a, buf, n, kind, get_offset(c), out);
out:
    free(buf);
    if (f) fclose(f);
    return rc;
}

/* Writes all of buf (a short write is retried) and syncs it; 0 or -1. */
static int fsync_write(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w, len -= (size_t)w;
    }
    return fsync(fd);
}

/* Keeps the record for the next process: written to a temporary file in
 * the same folder and renamed, so a reader never sees half a record; 0600
 * because it holds a token.  Best effort: a cache that cannot be written
 * must not fail a get that has a good token. */
static void write_cache(const td_client *c, const td_record *rec)
{
    size_t len;
    const char *js = td_record_json(rec, &len);

    if (c->cache_file) (void)td__client_write_cache(c->cache_file, js, len);
}

int td__client_write_cache(const char *path, const char *json, size_t len)
{
    char tmp[4096];
    int fd, rc = TD_EIO;

    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) return TD_ETOOBIG;
    if ((fd = mkstemp(tmp)) < 0) return TD_EIO;
    if (fchmod(fd, 0600) != 0 || fsync_write(fd, json, len) != 0) goto out;
    /* Linux releases the descriptor even when close() fails (a write-back
     * error on NFS): it is gone either way, and a second close() could
     * hit a number another thread has opened since. */
    rc = close(fd) == 0 ? TD_OK : TD_EIO;
    fd = -1;
    if (rc == TD_OK && rename(tmp, path) != 0) rc = TD_EIO;
out:
    if (fd >= 0) close(fd);
    if (rc != TD_OK) unlink(tmp);
    return rc;
}

/* The combined error of a fetch where every source failed.  With one
 * source its own message; with several, one line per source.  Lines that
 * do not fit in err are left out whole, and a last line says how many. */
static int fetch_failure(const attempt *at, size_t n, char *err, size_t errlen)
{
    enum { TAIL = 80 };     /* room kept for the "left out" line */
    int all_expired_or_missing = 1, any_expired = 0, rc = TD_OK;
    td_strbuf b, tail;
    size_t shown = 0;

    for (size_t i = 0; i < n; i++) {
        if (at[i].rc == TD_EEXPIRED) any_expired = 1;
        else if (at[i].rc != TD_ENOTFOUND) {
            all_expired_or_missing = 0;
            if (rc == TD_OK) rc = at[i].rc;
        }
    }
    if (all_expired_or_missing) rc = any_expired ? TD_EEXPIRED : TD_ENOTFOUND;
    if (n == 1) {
        snprintf(err, errlen, "%s token获取失败: %s", source_label(at[0].src), at[0].why);
        return rc;
    }
    td_strbuf_fixed(&b, err, errlen > 2 * TAIL ? errlen - TAIL : errlen);
    td_strbuf_printf(&b, "token获取失败: %s",
                     rc == TD_EEXPIRED ? "所有来源的token均已过期或即将过期" : "所有来源均失败");
    for (; shown < n; shown++)
        if (td_strbuf_printf(&b, "\n  - %s token获取失败: %s [%s]", source_label(at[shown].src),
                             at[shown].why, at[shown].where) != TD_OK)
            break;
    if (shown < n && errlen > 2 * TAIL) {
        td_strbuf_fixed(&tail, err + b.len, errlen - b.len);
        td_strbuf_printf(&tail, "\n  - (另有 %zu 个来源的错误未显示)", n - shown);
    }
    return rc;
}

/* Is rec's token of `kind` the one reported invalid? */
static int is_rejected(const char *rejected, const td_record *rec, td_token_kind kind)
{
    int64_t exp;
    return rejected && !strcmp(record_token(rec, kind, &exp), rejected);
}

/* One pass over the sources in order; the first usable record wins.  A
 * record carrying the rejected token is not usable but kept in *stale. */
static int fetch_chain(td_client *c, td_token_kind kind, const char *rejected, td_record **out,
                       td_source *origin, td_record **stale, td_source *stale_origin,
                       char *err, size_t errlen)
{
    size_t n = c->nurls + (c->gitee.owner ? 1 : 0) + (c->cache_file ? 1 : 0), k = 0;
    attempt *at = calloc(n, sizeof *at);
    char gwhere[1024];
    int rc = TD_ERR;

    if (!at) {
        snprintf(err, errlen, "out of memory");
        return TD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        td_record *rec = NULL;
        attempt *a = &at[k++];
        if (i < c->nurls) rc = from_endpoint(c, i, kind, a, &rec);
        else if (i == c->nurls && c->gitee.owner) rc = from_gitee(c, kind, a, gwhere, sizeof gwhere, &rec);
        else rc = from_cache(c, kind, a, &rec);
        if (rc != TD_OK) continue;
        if (is_rejected(rejected, rec, kind)) {
            snprintf(a->why, sizeof a->why, "只有已报告无效的token，等待服务端刷新");
            a->rc = TD_EEXPIRED;
            if (!*stale) *stale = rec, *stale_origin = a->src;
            else td_record_free(rec);
            continue;
        }
        *out = rec;
        *origin = a->src;
        free(at);
        return TD_OK;
    }
    rc = fetch_failure(at, k, err, errlen);
    free(at);
    return rc;
}

/* Fills out from the memory record; called with the lock held. */
static int fill(td_client *c, td_token_kind kind, td_source source, td_token *out, char **json,
                size_t *jlen)
{
    size_t n = c->tok_len[kind];
    if (json) {
        size_t len;
        const char *js = td_record_json(c->rec, &len);
        if (!(*json = malloc(len + 1))) return TD_ENOMEM;
        memcpy(*json, js, len + 1);
        if (jlen) *jlen = len;
    }
    if (out) {
        memcpy(out->token, c->tok[kind], n + 1);
        out->expires = c->exp[kind];
        out->remaining = c->exp[kind] - server_now(c->offset);
        out->source = source;
        out->origin = c->origin;
    }
    return TD_OK;
}

/* Replaces the memory record; called with the lock held. */
static void install(td_client *c, td_record *rec, td_source origin)
{
    td_record_free(c->rec);
    c->rec = rec;
    c->origin = origin;
    for (int k = 0; k < 2; k++) {
        c->tok[k] = record_token(rec, (td_token_kind)k, &c->exp[k]);
        c->tok_len[k] = strlen(c->tok[k]);
    }
}

static int memory_usable(const td_client *c, td_token_kind kind)
{
    return c->rec && fresh_enough(c, c->exp[kind] - server_now(c->offset));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The fetch of one single flight.  Returns with the lock held and, on
 * success, the new record installed.  While a reported token's wait runs,
 * a source that still hands it out is polled again, up to the deadline;
 * after that the reported token is used (the server may be unable to
 * refresh, and a token Feishu may accept again beats no token). */
static int fetch_locked(td_client *c, td_token_kind kind, char *err, size_t errlen)
{
    for (;;) {
        td_record *rec = NULL, *stale = NULL;
        td_source origin = TD_SOURCE_NONE, stale_origin = TD_SOURCE_NONE;
        char *rejected = NULL;
        int64_t until = c->rejected_until_ms;
        int rc, took_stale = 0;

        if (c->rejected && td_clock_mono_ms() < until && !(rejected = strdup(c->rejected))) {
            snprintf(err, errlen, "out of memory");
            return TD_ENOMEM;
        }
        pthread_mutex_unlock(&c->mu);
        rc = fetch_chain(c, kind, rejected, &rec, &origin, &stale, &stale_origin, err, errlen);
        free(rejected);
        if (rc != TD_OK && stale && td_clock_mono_ms() + STALE_POLL_MS >= until) {
            rec = stale, origin = stale_origin, stale = NULL, rc = TD_OK, took_stale = 1;
        }
        if (rc == TD_OK && origin != TD_SOURCE_CACHE) write_cache(c, rec);
        pthread_mutex_lock(&c->mu);
        if (rc == TD_OK) {
            /* A report of this very token may have arrived while we fetched. */
            if (took_stale || !c->rejected || td_clock_mono_ms() >= c->rejected_until_ms ||
                !is_rejected(c->rejected, rec, kind)) {
                install(c, rec, origin);
                return TD_OK;
            }
            td_record_free(rec);
        } else if (!stale) {
            return rc;
        }
        td_record_free(stale);
        pthread_mutex_unlock(&c->mu);
        sleep_ms(STALE_POLL_MS);
        pthread_mutex_lock(&c->mu);
    }
}

static int client_get(td_client *c, td_token_kind kind, td_token *out, char **json, size_t *jlen,
                      char *err, size_t errlen)
{
    char ferr[sizeof c->last_err];
    int rc;

    if (!c || (kind != TD_TOKEN_APP && kind != TD_TOKEN_TENANT)) {
        snprintf(err, errlen, "td_client_get: bad arguments");
        return TD_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (memory_usable(c, kind)) {
            rc = fill(c, kind, TD_SOURCE_MEMORY, out, json, jlen);
            break;
        }
        if (c->fetching) {
            unsigned long gen = c->gen;
            while (c->fetching && c->gen == gen) pthread_cond_wait(&c->cv, &c->mu);
            if (c->last_rc != TD_OK) {
                rc = c->last_rc;
                snprintf(err, errlen, "%s", c->last_err);
                break;
            }
            if (memory_usable(c, kind)) {
                rc = fill(c, kind, c->origin, out, json, jlen);
                break;
            }
            continue;   /* that fetch was for the other kind of token */
        }
        c->fetching = 1;
        /* The fetch writes its error unlocked, so into a buffer of its own:
         * waiters of an earlier flight may still be reading last_err. */
        rc = fetch_locked(c, kind, ferr, sizeof ferr);
        c->fetching = 0;
        c->last_rc = rc;
        snprintf(c->last_err, sizeof c->last_err, "%s", rc == TD_OK ? "" : ferr);
        c->gen++;
        pthread_cond_broadcast(&c->cv);
        if (rc == TD_OK) rc = fill(c, kind, c->origin, out, json, jlen);
        else snprintf(err, errlen, "%s", c->last_err);
        break;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == TD_ENOMEM) snprintf(err, errlen, "out of memory");
    return rc;
}

int td_client_get(td_client *c, td_token_kind kind, td_token *out, char *err, size_t errlen)
{
    return client_get(c, kind, out, NULL, NULL, err, errlen);
}

int td_client_get_record(td_client *c, td_token_kind kind, char **json, size_t *len, td_token *out,
                         char *err, size_t errlen)
{
    if (!json) {
        snprintf(err, errlen, "td_client_get_record: json must not be NULL");
        return TD_EINVAL;
    }
    *json = NULL;
    return client_get(c, kind, out, json, len, err, errlen);
}

/* ---- reporting an invalid token --------------------------------------------------- */

/* POSTs the report to the first endpoint that answers.  A 200 carries the
 * server's newer record, handed back in *newer. */
static int post_invalid(td_client *c, const char *token, td_record **newer, char *err, size_t errlen)
{
    const char *hdrs[] = {"Content-Type: application/json", c->auth_header, NULL};
    json_t *o = json_pack("{s:s}", "access_token", token);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char herr[400], reason[128], msg[256];
    int rc = TD_EINVAL, tried = 0;

    json_decref(o);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return TD_ENOMEM;
    }
    snprintf(err, errlen, "no endpoint URL to report the invalid token to "
                          "(report needs …/get-token or …/v1/tokens/NAME)");
    for (size_t i = 0; i < c->nurls; i++) {
        td_httpc_req req = {.method = "POST", .url = c->invalid_urls[i], .body = body,
                            .body_len = strlen(body), .headers = hdrs,
                            .timeout_ms = c->timeout_ms, .connect_timeout_ms = c->connect_ms,
                            .max_body = RECORD_BODY_MAX};
        td_httpc_resp resp = {0};
        const char *m;

        if (!c->invalid_urls[i]) continue;
        tried = 1;
        if ((rc = td_httpc_do(&req, &resp, herr, sizeof herr)) != TD_OK) {
            snprintf(err, errlen, "报告token无效失败: %s", herr);
            continue;
        }
        note_date(c, &resp);
        m = body_error(&resp, msg, sizeof msg);
        if (resp.status == 202) {
            rc = TD_OK;
        } else if (resp.status == 409) {
            /* Feishu still issues this token: nothing newer to wait for. */
            rc = TD_ECONFLICT;
            snprintf(err, errlen, "报告token无效: 飞书仍在发放此token，没有新的可换%s%s%s", m ? " (" : "",
                     m ? m : "", m ? ")" : "");
        } else if (resp.status == 200) {
            char perr[256];
            rc = td_record_parse(resp.body ? resp.body : "", resp.body_len, 0, -1, newer, perr, sizeof perr);
            if (rc != TD_OK) {
                *newer = NULL;
                snprintf(err, errlen, "报告token无效: 服务端回答的记录无效 (%s)", perr);
            }
        } else {
            rc = resp.status == 501 || resp.status == 503 ? TD_EUNAVAIL
                 : resp.status == 404 ? TD_ENOTFOUND
                 : resp.status == 401 || resp.status == 403 ? TD_EAUTH : TD_EHTTP;
            snprintf(err, errlen, "报告token无效失败: HTTP %ld: %s%s%s%s [%s]", resp.status,
                     reason_phrase(&resp, reason, sizeof reason), m ? " (" : "", m ? m : "",
                     m ? ")" : "", req.url);
        }
        td_httpc_resp_clear(&resp);
        /* Only a transport failure or a 5xx other than 501 tries the next endpoint. */
        if (rc == TD_OK || (rc != TD_EHTTP && rc != TD_ETIMEOUT)) break;
    }
    if (!tried) rc = TD_EINVAL;
    free(body);
    return rc;
}

int td_client_report_invalid(td_client *c, const char *token, char *err, size_t errlen)
{
    td_record *newer = NULL;
    char rerr[sizeof c->report_err] = "";
    int rc;

    if (!c || !token || !*token || strlen(token) > TD_CLIENT_TOKEN_MAX) {
        snprintf(err, errlen, "td_client_report_invalid: no token given");
        return TD_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    if (c->rec && (!strcmp(c->tok[0], token) || !strcmp(c->tok[1], token))) {
        td_record_free(c->rec);
        c->rec = NULL;
    }
    /* Many callers hit by the same bad token: one report (and after a
     * 409, the same answer: no loop of reports Feishu cannot change). */
    if (c->rejected && !strcmp(c->rejected, token) &&
        (c->reporting || c->report_rc == TD_OK || c->report_rc == TD_ECONFLICT)) {
        while (c->reporting) pthread_cond_wait(&c->cv, &c->mu);
        rc = c->report_rc;
        snprintf(err, errlen, "%s", c->report_err);
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    free(c->rejected);
    if (!(c->rejected = strdup(token))) {
        pthread_mutex_unlock(&c->mu);
        snprintf(err, errlen, "out of memory");
        return TD_ENOMEM;
    }
    c->rejected_until_ms = td_clock_mono_ms() + c->refresh_wait_ms;
    c->reporting = 1;
    pthread_mutex_unlock(&c->mu);

    /* Written to a local buffer: another token's report may run meanwhile. */
    rc = post_invalid(c, token, &newer, rerr, sizeof rerr);
    if (rc == TD_OK) rerr[0] = '\0';
    if (newer) {
        /* Fresh only when neither of its tokens is the one reported: a
         * record that still carries it (as app or as tenant token) is the
         * rejected one again, whatever else changed. */
        int64_t exp;
        const char *tenant = td_record_field(newer, "tenant_access_token");
        int fresh = strcmp(record_token(newer, TD_TOKEN_APP, &exp), token) != 0 &&
                    (!tenant || strcmp(tenant, token) != 0) &&
                    fresh_enough(c, exp - server_now(get_offset(c)));
        if (fresh) write_cache(c, newer);
        else td_record_free(newer), newer = NULL;
    }

    pthread_mutex_lock(&c->mu);
    if (rc == TD_ECONFLICT) c->rejected_until_ms = 0; /* stop waiting: it stays the token */
    if (newer && !c->fetching) install(c, newer, TD_SOURCE_ENDPOINT), newer = NULL;
    c->reporting = 0;
    c->report_rc = rc;
    snprintf(c->report_err, sizeof c->report_err, "%s", rerr);
    snprintf(err, errlen, "%s", rerr);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    td_record_free(newer);
    return rc;
}
