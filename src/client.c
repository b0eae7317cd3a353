/*
 * client -- the client side of tokendist (public API in tokendist.h):
 * get the token record from the endpoints, the Gitee file or the cache
 * file, keep it in memory while it is fresh, and report tokens Feishu
 * rejected.
 *
 * Locking: one mutex guards the memory record, the clock offset and the
 * single-flight state; no lock is held during network or file I/O.  The
 * fast path (a fresh token in memory) is a lock, a clock read and a copy
 * into one allocation handed to the caller.
 */
#define _GNU_SOURCE
#include "tokendist.h"
#include "clock.h"
#include "client.h"
#include "endpoint.h"
#include "gitee.h"
#include "httpc.h"
#include "record.h"
#include "seal.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MIN_REMAINING 300   /* Feishu's, and a record's without "provider" */
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_REFRESH_WAIT_MS 5000
#define WAIT_FIRST_MS 250               /* first pause while waiting for a refresh */
#define WAIT_MAX_MS 2000                /* pauses double up to this */
#define GITEE_INTERVAL_MS 60000         /* Gitee is asked at most this often */
#define CACHE_FILE_MAX (64u << 10)      /* a record is a few KB at most */
#define RECORD_BODY_MAX (64u << 10)     /* the server refuses larger records too */
#define SKEW_IGNORE_S 2                 /* Date has 1 s precision, plus latency */
#define WHY_LEN 512
#define NOTE_LEN 1536                   /* the fallback note: a few sources' reasons */
#define URL_MAX 2048
#define OPTS_URLS_MAX 64

/* ---- options ------------------------------------------------------------- */

/* Every option, in one table: what type it takes and its bounds.  The
 * numbers of tokendist.h index the table, so a number this library does
 * not know (a program built against a later header) finds no row. */
typedef enum opt_type { OPT_NONE = 0, OPT_STR, OPT_LONG } opt_type;

typedef struct opt_spec {
    const char *name;
    opt_type type;
    long min, max, def;         /* OPT_LONG */
    int secret;                 /* OPT_STR: wiped when replaced or freed */
} opt_spec;

/* A new option is a new TD_OPT_* number in tokendist.h and a row here (a
 * string option also a use in td_client_new); nothing else changes. */
static const opt_spec opt_table[] = {
    [TD_OPT_URL] = {"TD_OPT_URL", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_READ_KEY] = {"TD_OPT_READ_KEY", OPT_STR, 0, 0, 0, 1},
    [TD_OPT_NAME] = {"TD_OPT_NAME", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_GITEE_BASE_URL] = {"TD_OPT_GITEE_BASE_URL", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_GITEE_OWNER] = {"TD_OPT_GITEE_OWNER", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_GITEE_REPO] = {"TD_OPT_GITEE_REPO", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_GITEE_PATH] = {"TD_OPT_GITEE_PATH", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_GITEE_BRANCH] = {"TD_OPT_GITEE_BRANCH", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_GITEE_ACCESS_TOKEN] = {"TD_OPT_GITEE_ACCESS_TOKEN", OPT_STR, 0, 0, 0, 1},
    [TD_OPT_CACHE_FILE] = {"TD_OPT_CACHE_FILE", OPT_STR, 0, 0, 0, 0},
    [TD_OPT_MIN_REMAINING] = {"TD_OPT_MIN_REMAINING", OPT_LONG, 0, 86400, TD__MIN_BY_PROVIDER, 0},
    [TD_OPT_TIMEOUT_MS] = {"TD_OPT_TIMEOUT_MS", OPT_LONG, 1, 600000, DEFAULT_TIMEOUT_MS, 0},
    [TD_OPT_CONNECT_TIMEOUT_MS] = {"TD_OPT_CONNECT_TIMEOUT_MS", OPT_LONG, 1, 600000, DEFAULT_CONNECT_MS, 0},
    [TD_OPT_REFRESH_WAIT_MS] = {"TD_OPT_REFRESH_WAIT_MS", OPT_LONG, 0, 600000, DEFAULT_REFRESH_WAIT_MS, 0},
    [TD_OPT_SHARE_KEY] = {"TD_OPT_SHARE_KEY", OPT_STR, 0, 0, 0, 1},
    [TD_OPT_TICKET] = {"TD_OPT_TICKET", OPT_STR, 0, 0, 0, 0},
};

#define OPT_N ((int)(sizeof opt_table / sizeof *opt_table))

struct td_client_opts {
    char *urls[OPTS_URLS_MAX];  /* TD_OPT_URL, in the order added */
    size_t nurls;
    char *str[OPT_N];           /* the other string options (NULL: unset) */
    long num[OPT_N];
    int rc;                     /* the first failed setter's code, else TD_OK */
    char err[512];              /* and its sentence */
};

static void wipe_free(char *s)
{
    if (s) explicit_bzero(s, strlen(s));
    free(s);
}

td_client_opts *td_client_opts_new(void)
{
    td_client_opts *o = calloc(1, sizeof *o);

    if (!o) return NULL;
    for (int i = 0; i < OPT_N; i++)
        if (opt_table[i].type == OPT_LONG) o->num[i] = opt_table[i].def;
    return o;
}

void td_client_opts_free(td_client_opts *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->nurls; i++) free(o->urls[i]);
    for (int i = 0; i < OPT_N; i++) wipe_free(o->str[i]);
    free(o);
}

/* Remembers the first failure for td_client_new; returns rc. */
static int opt_fail(td_client_opts *o, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int opt_fail(td_client_opts *o, int rc, const char *fmt, ...)
{
    va_list ap;

    if (o->rc != TD_OK) return rc;
    o->rc = rc;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    return rc;
}

/* The row of opt in *out; TD_EINVAL (noted for td_client_new) when it
 * takes the other type.  TD_ENOTSUP when this library does not know the
 * option, and not noted: tokendist.h tells a program built against a later
 * header to handle that code at run time, and one that goes on without the
 * option must still get its client. */
static int opt_row(td_client_opts *o, td_option opt, opt_type type, const opt_spec **out)
{
    const opt_spec *sp = (int)opt > 0 && (int)opt < OPT_N && opt_table[opt].type != OPT_NONE
                         ? &opt_table[opt] : NULL;
    if (!sp) return TD_ENOTSUP;
    if (sp->type != type)
        return opt_fail(o, TD_EINVAL, "选项 %s 的值应为%s，请用 %s", sp->name,
                        sp->type == OPT_STR ? "字符串" : "整数",
                        sp->type == OPT_STR ? "td_client_opts_set_str" : "td_client_opts_set_long");
    *out = sp;
    return TD_OK;
}

static int valid_name(const char *s) { return td_record_name_valid(s, strlen(s)); }

static int http_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

int td_client_opts_set_str(td_client_opts *o, td_option opt, const char *v)
{
    const opt_spec *sp = NULL;
    char *copy = NULL, shown[204]; /* a URL in a message: its password never */
    int rc;

    if (!o) return TD_ENOMEM;
    if ((rc = opt_row(o, opt, OPT_STR, &sp)) != TD_OK) return rc;
    if (v && !*v) v = NULL;
    if (v && strpbrk(v, "\r\n"))
        return opt_fail(o, TD_EINVAL, "选项 %s 含有换行符", sp->name);
    if (v && opt == TD_OPT_NAME && !valid_name(v))
        return opt_fail(o, TD_EINVAL, "token 名称 '%.80s' 无效: 应为 " TD_NAME_RULE, v);
    if (v && opt == TD_OPT_URL && !http_url(v))
        return opt_fail(o, TD_EINVAL, "端点地址 '%s' 无效: 应以 http:// 或 https:// 开头",
                        td_httpc_redact_url(v, 0, shown, sizeof shown));
    if (v && opt == TD_OPT_URL && strlen(v) >= URL_MAX)
        return opt_fail(o, TD_EINVAL, "端点地址 '%s…' 太长 (上限 %d 字节)", td_httpc_redact_url(v, 0, shown, sizeof shown),
                        URL_MAX - 1);
    if (v && opt == TD_OPT_URL && o->nurls == OPTS_URLS_MAX)
        return opt_fail(o, TD_EINVAL, "端点地址太多 (上限 %d 个)", OPTS_URLS_MAX);
    if (v && opt == TD_OPT_SHARE_KEY) {
        td_seal_keys k;
        char why[256];
        rc = td_seal_keys_parse(&k, v, why, sizeof why);
        td_seal_keys_wipe(&k);
        if (rc != TD_OK) return opt_fail(o, TD_EINVAL, "选项 TD_OPT_SHARE_KEY: %s", why);
    }
    if (v && !(copy = strdup(v))) return opt_fail(o, TD_ENOMEM, "内存不足: 无法保存选项 %s", sp->name);
    if (opt == TD_OPT_URL) {
        if (copy) {
            o->urls[o->nurls++] = copy;
        } else {
            for (size_t i = 0; i < o->nurls; i++) free(o->urls[i]);
            o->nurls = 0;
        }
        return TD_OK;
    }
    sp->secret ? wipe_free(o->str[opt]) : free(o->str[opt]);
    o->str[opt] = copy;
    return TD_OK;
}

int td_client_opts_set_long(td_client_opts *o, td_option opt, long v)
{
    const opt_spec *sp = NULL;
    int rc;

    if (!o) return TD_ENOMEM;
    if ((rc = opt_row(o, opt, OPT_LONG, &sp)) != TD_OK) return rc;
    if (v < sp->min || v > sp->max)
        return opt_fail(o, TD_EINVAL, "选项 %s 的值 %ld 不在 %ld..%ld 之间", sp->name, v, sp->min, sp->max);
    o->num[opt] = v;
    return TD_OK;
}

/* ---- the client ------------------------------------------------------------ */

struct td_client {
    char **urls;                /* GET URLs, in order */
    char **invalid_urls;        /* the matching report URLs; an entry may be NULL */
    size_t nurls;
    char *auth_header;          /* "Authorization: Bearer KEY" or NULL */
    td_gitee gitee;             /* gitee.owner == NULL: no Gitee fallback */
    char *gitee_strings[6];     /* owned copies behind the gitee fields */
    td_seal_keys seal;          /* share keys of a sealed Gitee copy (n == 0: plaintext) */
    char name[TD_NAME_MAX + 1]; /* the token name a sealed copy (and the cache file) must carry */
    const char *kind;           /* TD_CACHE_KIND_TOKEN or _TICKET: what the cache file must hold */
    char *cache_file;
    long min_remaining;         /* >= 0; 0: only "not expired" */
    long timeout_ms, connect_ms, refresh_wait_ms;
    td_httpc_pool *pool;        /* this client's kept connections */

    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* The record in memory (NULL: none), and what the fast path needs of it. */
    td_record *rec;
    const char *tok[2];         /* by td_token_kind; point into rec */
    size_t tok_len[2];
    int64_t exp[2];
    td_source origin;
    char note[NOTE_LEN];        /* how rec was found, when not at the first source (td__client_notes) */
    char cache_why[WHY_LEN];    /* why the cache file was not written last time; "" when it was */
    int64_t offset;             /* server clock - local clock, seconds */

    /* Single flight: one fetch at a time; waiters share its outcome. */
    int fetching;
    unsigned long gen;
    int last_rc;
    char last_err[2048];
    td_source last_src;         /* the source whose failure last_rc is (td__client_failed_source) */

    /* The token last reported invalid, and that report's outcome. */
    char *rejected;
    int64_t rejected_until_ms;  /* monotonic: fetches avoid it until then */
    int reporting;
    int report_rc;
    int64_t report_until_ms;    /* monotonic: later reports of it get report_rc until then */
    char report_err[1024];

    /* What Gitee answered last: the file's text or why not.  Used again
     * for GITEE_INTERVAL_MS.  Only the fetch that holds the single flight
     * touches it, so it needs no lock of its own. */
    int gitee_asked;
    int64_t gitee_at_ms;        /* monotonic */
    int gitee_rc;
    char *gitee_text;
    size_t gitee_len;
    char gitee_why[WHY_LEN];
};

/* What one source gave: a usable record or the reason it is not. */
typedef struct attempt {
    td_source src;
    size_t url;                 /* an endpoint's index in c->urls */
    const char *where;          /* URL, owner/repo/path@branch or file path */
    char shown[512];            /* an endpoint's URL without its credentials (where) */
    int rc;
    char why[WHY_LEN];
} attempt;

const char *td_version(void) { return TD_VERSION; }

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

/* ---- memory handed to the caller -------------------------------------------- */

/* Everything the library hands out carries its size in front, so that
 * td_free can wipe it (it holds a token) without the caller saying how
 * big it is.  The union keeps what follows aligned for any type. */
typedef union handout {
    size_t size;
    max_align_t align;
} handout;

static void *handout_alloc(size_t n)
{
    handout *h = calloc(1, sizeof *h + n);
    if (!h) return NULL;
    h->size = n;
    return h + 1;
}

void td_free(void *p)
{
    handout *h;

    if (!p) return;
    h = (handout *)p - 1;
    explicit_bzero(h, sizeof *h + h->size);
    free(h);
}

/* ---- URLs ---------------------------------------------------------------- */

/* The GET URL and the report URL of one configured endpoint for token
 * `name` (and, with ticket, its derived ticket: GET only, nothing to
 * report), by the one rule of endpoint.h that the sinks, the Node and the
 * Python clients follow too.  A path that is not tokendist's is fetched as
 * given (only for "default", and never for a ticket) and cannot be
 * reported to (NULL).  Never the default token for another name. */
static int endpoint_urls(const char *url, const char *name, const char *ticket, char **get, char **report,
                         char *err, size_t errlen)
{
    td_endpoint *e = malloc(sizeof *e);
    td_strbuf b;
    int rc;

    *get = *report = NULL;
    if (!e) return TD_ENOMEM;
    if ((rc = td_endpoint_resolve(e, url, name, err, errlen)) != TD_OK) goto out;
    rc = TD_EINVAL;
    if (!e->named[0] && (strcmp(name, "default") != 0 || ticket)) {
        char shown[204];
        snprintf(err, errlen, "端点地址 '%s' 不是 tokendist 的地址 (…/release/get-token 或 …/v1/tokens/NAME)，"
                              "无法从中找到 token '%s'%s", td_httpc_redact_url(url, 0, shown, sizeof shown), name,
                 ticket ? " 的 jsapi_ticket" : "");
        goto out;
    }
    rc = TD_ENOMEM;
    if (ticket) {
        /* The resolved URLs are bounded: the builder only adds a suffix. */
        td_strbuf_heap(&b, TD_ENDPOINT_URL_MAX + 64);
        td_strbuf_printf(&b, "%s/%s", e->named, ticket);
        if ((*get = td_strbuf_take(&b, NULL))) rc = TD_OK;
        td_strbuf_free(&b);
        goto out;
    }
    if (!(*get = strdup(e->token))) goto out;
    rc = TD_OK;
    if (e->named[0]) {
        td_strbuf_heap(&b, TD_ENDPOINT_URL_MAX + 64);
        td_strbuf_printf(&b, "%s/invalid", e->named);
        if (!(*report = td_strbuf_take(&b, NULL))) rc = TD_ENOMEM;
        td_strbuf_free(&b);
    }
out:
    free(e);
    return rc;
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
    wipe_free(c->auth_header);
    for (size_t i = 0; i < sizeof c->gitee_strings / sizeof *c->gitee_strings; i++)
        wipe_free(c->gitee_strings[i]);
    free(c->cache_file);
    wipe_free(c->rejected);
    td_seal_keys_wipe(&c->seal);
    if (c->gitee_text) explicit_bzero(c->gitee_text, c->gitee_len);
    free(c->gitee_text);
    td_record_free(c->rec);
    td_httpc_pool_free(c->pool);
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
    const char *name, *const *s;
    int rc = TD_ENOMEM, ok = 1;
    char **gs;

    if (!out) {
        snprintf(err, errlen, "td_client_new: out 不能为 NULL");
        return TD_EINVAL;
    }
    if (!o) {
        snprintf(err, errlen, "内存不足: 无法创建客户端选项 (td_client_opts_new 返回了 NULL)");
        return TD_ENOMEM;
    }
    if (o->rc != TD_OK) {
        snprintf(err, errlen, "%s", o->err);
        return o->rc;
    }
    s = (const char *const *)o->str;
    name = s[TD_OPT_NAME] ? s[TD_OPT_NAME] : "default";
    if (o->nurls == 0 && !s[TD_OPT_GITEE_OWNER] && !s[TD_OPT_CACHE_FILE]) {
        snprintf(err, errlen, "没有 token 来源: 请给出端点地址 (--url 或 TENCENT_CLOUD_API_URL)、"
                              "Gitee 仓库 (GITEE_OWNER/GITEE_REPO) 或缓存文件");
        return TD_EINVAL;
    }
    if (s[TD_OPT_TICKET] && strcmp(s[TD_OPT_TICKET], "jsapi_ticket") != 0) {
        snprintf(err, errlen, "TD_OPT_TICKET '%.40s' 无效: 只有 jsapi_ticket", s[TD_OPT_TICKET]);
        return TD_EINVAL;
    }
    if (s[TD_OPT_GITEE_OWNER] && !s[TD_OPT_GITEE_REPO]) {
        snprintf(err, errlen, "Gitee 回退: 设置了 GITEE_OWNER 却没有设置 GITEE_REPO");
        return TD_EINVAL;
    }
    if (!(c = calloc(1, sizeof *c))) goto fail;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (td_httpc_pool_new(&c->pool) != TD_OK) goto fail;
    if (o->nurls) {
        if (!(c->urls = calloc(o->nurls, sizeof *c->urls)) ||
            !(c->invalid_urls = calloc(o->nurls, sizeof *c->invalid_urls)))
            goto fail;
    }
    for (size_t i = 0; i < o->nurls; i++) {
        rc = endpoint_urls(o->urls[i], name, s[TD_OPT_TICKET], &c->urls[i], &c->invalid_urls[i], err, errlen);
        c->nurls = i + 1;
        if (rc != TD_OK) goto fail;
    }
    rc = TD_ENOMEM;
    if (s[TD_OPT_READ_KEY]) {
        size_t n = strlen(s[TD_OPT_READ_KEY]) + sizeof "Authorization: Bearer ";
        if (!(c->auth_header = malloc(n))) goto fail;
        snprintf(c->auth_header, n, "Authorization: Bearer %s", s[TD_OPT_READ_KEY]);
    }
    if (s[TD_OPT_GITEE_OWNER] && !s[TD_OPT_TICKET]) { /* the Gitee copy holds tokens, not tickets */
        gs = c->gitee_strings;
        c->gitee.base_url = gs[0] = dup_opt(s[TD_OPT_GITEE_BASE_URL], &ok);
        c->gitee.owner = gs[1] = dup_opt(s[TD_OPT_GITEE_OWNER], &ok);
        c->gitee.repo = gs[2] = dup_opt(s[TD_OPT_GITEE_REPO], &ok);
        c->gitee.path = gs[3] = dup_opt(s[TD_OPT_GITEE_PATH] ? s[TD_OPT_GITEE_PATH] : "token.json", &ok);
        c->gitee.branch = gs[4] = dup_opt(s[TD_OPT_GITEE_BRANCH], &ok);
        c->gitee.access_token = gs[5] = dup_opt(s[TD_OPT_GITEE_ACCESS_TOKEN], &ok);
    }
    c->cache_file = dup_opt(s[TD_OPT_CACHE_FILE], &ok);
    if (!ok) goto fail;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->kind = s[TD_OPT_TICKET] ? TD_CACHE_KIND_TICKET : TD_CACHE_KIND_TOKEN;
    /* Checked by the setter already: it parses here. */
    if ((rc = td_seal_keys_parse(&c->seal, s[TD_OPT_SHARE_KEY], err, errlen)) != TD_OK) goto fail;
    c->min_remaining = o->num[TD_OPT_MIN_REMAINING];
    c->timeout_ms = o->num[TD_OPT_TIMEOUT_MS];
    c->connect_ms = o->num[TD_OPT_CONNECT_TIMEOUT_MS];
    c->refresh_wait_ms = o->num[TD_OPT_REFRESH_WAIT_MS];
    c->gitee.timeout_ms = c->timeout_ms;
    c->gitee.pool = c->pool;
    *out = c;
    return TD_OK;
fail:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足: 无法创建客户端");
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

/* The minimum a token of rec's platform should still have (docs/providers.md):
 * what the platform's renewal rule leaves a reader of a token in service. */
static long provider_min(const td_record *rec)
{
    const char *p = rec ? td_record_field(rec, "provider") : NULL;

    if (p && !strcmp(p, "wechat")) return 60;  /* renewed in its last 5 minutes */
    if (p && !strcmp(p, "wecom")) return 0;    /* renewed only after its expiry */
    return DEFAULT_MIN_REMAINING;
}

/* min_remaining TD__MIN_BY_PROVIDER: rec's platform's; other negatives
 * (the fuzzer's "any") count as 0: not expired. */
static int fresh_for(long min_remaining, const td_record *rec, int64_t remaining)
{
    if (min_remaining == TD__MIN_BY_PROVIDER) min_remaining = provider_min(rec);
    return remaining > (min_remaining < 0 ? 0 : min_remaining);
}

static int fresh_enough(const td_client *c, const td_record *rec, int64_t remaining)
{
    return fresh_for(c->min_remaining, rec, remaining);
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
    if (!fresh_for(min_remaining, rec, remaining)) {
        if (min_remaining == TD__MIN_BY_PROVIDER) min_remaining = provider_min(rec);
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

    /* Within the status line only: "HTTP/1.1 429" may have no reason,
     * or only spaces. */
    if (h && !strncasecmp(h, "HTTP/", 5) && (eol = strpbrk(h, "\r\n")) &&
        (sp = memchr(h, ' ', (size_t)(eol - h))) && (sp = memchr(sp + 1, ' ', (size_t)(eol - sp - 1)))) {
        while (sp < eol && *sp == ' ') sp++;
        while (eol > sp && eol[-1] == ' ') eol--;
        if (eol > sp) {
            snprintf(buf, len, "%.*s", (int)(eol - sp), sp);
            return buf;
        }
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

int td__client_endpoint_answer(const td_httpc_resp *resp, const char *url, td_token_kind kind,
                               long min_remaining, int64_t now, td_record **out, char *why, size_t whylen)
{
    char reason[128], msg[256];
    const char *m, *rp;

    if (resp->status == 200)
        return td__client_judge(resp->body ? resp->body : "", resp->body_len, kind, min_remaining,
                                now, out, why, whylen);
    /* Our server's "no such path" is a wrong URL, not a missing token:
     * telling the user to wait for the refresher would send them the
     * wrong way. */
    if (td_endpoint_wrong_path(resp->status, resp->body, resp->body_len)) {
        td_endpoint_wrong_path_why(url, why, whylen);
        return TD_EHTTP;
    }
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
    return td_endpoint_refuses_key(resp) ? TD_EAUTH : TD_EHTTP;
}

static int from_endpoint(td_client *c, size_t i, td_token_kind kind, attempt *a, td_record **out)
{
    const char *hdrs[] = {c->auth_header, NULL};
    td_httpc_req req = {.url = c->urls[i], .headers = c->auth_header ? hdrs : NULL,
                        .timeout_ms = c->timeout_ms, .connect_timeout_ms = c->connect_ms,
                        .max_body = RECORD_BODY_MAX, .pool = c->pool};
    td_httpc_resp resp = {0};
    char herr[400];
    int rc;

    a->src = TD_SOURCE_ENDPOINT;
    a->url = i;
    a->where = td_httpc_redact_url(c->urls[i], TD_HTTPC_HIDE_QUERY, a->shown, sizeof a->shown);
    if ((rc = td_httpc_do(&req, &resp, herr, sizeof herr)) != TD_OK) {
        const char *h = td_httpc_err_detail(herr, req.url); /* the URL is named in a->where */
        if (!h) h = herr;
        snprintf(a->why, sizeof a->why, "%s: %s", rc == TD_ETIMEOUT ? "请求超时" : "网络错误", h);
        return a->rc = rc;
    }
    note_date(c, &resp);
    rc = a->rc = td__client_endpoint_answer(&resp, req.url, kind, c->min_remaining, server_now(get_offset(c)),
                                            out, a->why, sizeof a->why);
    td_httpc_resp_clear(&resp);
    return rc;
}

/* Asks Gitee unless it was asked less than GITEE_INTERVAL_MS ago; then
 * its last answer is judged again (by the clock of now).  A failure
 * counts as an answer too: a client that keeps failing must not turn
 * into a stream of Gitee requests. */
static int from_gitee(td_client *c, td_token_kind kind, attempt *a, char *where, size_t wlen,
                      td_record **out)
{
    int64_t now = td_clock_mono_ms();
    char gerr[512];

    snprintf(where, wlen, "%s/%s/%s@%s", c->gitee.owner, c->gitee.repo, c->gitee.path,
             c->gitee.branch ? c->gitee.branch : "默认分支");
    a->src = TD_SOURCE_GITEE;
    a->where = where;
    if (!c->gitee_asked || now - c->gitee_at_ms >= GITEE_INTERVAL_MS) {
        if (c->gitee_text) explicit_bzero(c->gitee_text, c->gitee_len);
        free(c->gitee_text);
        c->gitee_text = NULL, c->gitee_len = 0;
        c->gitee_asked = 1;
        c->gitee_at_ms = now;
        c->gitee_rc = td_gitee_read(&c->gitee, &c->gitee_text, &c->gitee_len, NULL, gerr, sizeof gerr);
        if (c->gitee_rc == TD_ENOTFOUND) snprintf(c->gitee_why, sizeof c->gitee_why, "文件不存在");
        else if (c->gitee_rc != TD_OK) snprintf(c->gitee_why, sizeof c->gitee_why, "%s", gerr);
    }
    if (c->gitee_rc != TD_OK) {
        snprintf(a->why, sizeof a->why, "%s", c->gitee_why);
        return a->rc = c->gitee_rc;
    }
    {
        /* Sealed or plaintext, by the one rule of seal.h: a file this
         * client's keys do not open fails here, and the next source is
         * tried. */
        char *plain = NULL;
        size_t plen = 0;
        int rc = td_seal_unwrap(&c->seal, c->name, c->gitee_text, c->gitee_len, &plain, &plen, a->why,
                                sizeof a->why);
        if (rc == TD_OK) rc = judge(c, a, plain, plen, kind, get_offset(c), out);
        if (plain) explicit_bzero(plain, plen);
        free(plain);
        return a->rc = rc;
    }
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
        snprintf(a->why, sizeof a->why, "内存不足");
        goto out;
    }
    n = fread(buf, 1, CACHE_FILE_MAX + 1, f);
    if (ferror(f) || n > CACHE_FILE_MAX) {
        snprintf(a->why, sizeof a->why, ferror(f) ? "无法读取缓存文件" : "缓存文件大于 %u 字节",
                 CACHE_FILE_MAX);
        rc = a->rc = ferror(f) ? TD_EIO : TD_ETOOBIG;
        goto out;
    }
    {
        char *plain = NULL;
        size_t plen = 0;
        if ((rc = a->rc = td__client_cache_open(buf, n, c->name, c->kind, &plain, &plen, a->why,
                                                sizeof a->why)) == TD_OK)
            rc = judge(c, a, plain, plen, kind, get_offset(c), out);
        if (plain) explicit_bzero(plain, plen);
        free(plain);
    }
out:
    if (buf) explicit_bzero(buf, CACHE_FILE_MAX + 1);
    free(buf);
    if (f) fclose(f);
    return rc;
}

/* The words of the two kinds in a message. */
static const char *kind_label(const char *kind)
{
    return !strcmp(kind, TD_CACHE_KIND_TICKET) ? "jsapi_ticket" : "access token";
}

int td__client_cache_open(const char *text, size_t len, const char *name, const char *kind, char **record,
                          size_t *rlen, char *why, size_t whylen)
{
    json_t *o, *n, *k;
    const char *wn, *wk;
    int rc = TD_EINVAL;

    *record = NULL;
    td_record_skip_bom(&text, &len);
    if (!(o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) || !json_is_object(o)) {
        snprintf(why, whylen, o ? "缓存文件不是JSON对象" : "缓存文件不是JSON");
        goto out;
    }
    n = json_object_get(o, TD_CACHE_NAME_FIELD);
    k = json_object_get(o, TD_CACHE_KIND_FIELD);
    if ((n && (!json_is_string(n) || !valid_name(json_string_value(n)))) ||
        (k && (!json_is_string(k) || (strcmp(json_string_value(k), TD_CACHE_KIND_TOKEN) != 0 &&
                                      strcmp(json_string_value(k), TD_CACHE_KIND_TICKET) != 0)))) {
        snprintf(why, whylen, "缓存文件的 %s 或 %s 无效", TD_CACHE_NAME_FIELD, TD_CACHE_KIND_FIELD);
        goto out;
    }
    /* A file from before the two fields was written by a client of the
     * seed's token (the only one then): it counts as that, and nothing else. */
    wn = n ? json_string_value(n) : "default";
    wk = k ? json_string_value(k) : TD_CACHE_KIND_TOKEN;
    rc = TD_ENOTFOUND;
    if (!n && !k && (strcmp(wn, name) != 0 || strcmp(wk, kind) != 0)) {
        snprintf(why, whylen, "缓存文件没有标明属于哪个 token (旧格式)，只当作 token 'default' 的 access token，"
                              "不是 '%s' 的 %s: 请换一个缓存文件", name, kind_label(kind));
        goto out;
    }
    if (strcmp(wn, name) != 0) {
        snprintf(why, whylen, "缓存文件属于 token '%s'，不是 '%s': 每个 token 名称请用自己的缓存文件", wn, name);
        goto out;
    }
    if (strcmp(wk, kind) != 0) {
        snprintf(why, whylen, "缓存文件存的是 token '%s' 的 %s，不是 %s: access token 和 jsapi_ticket 请用不同的缓存文件",
                 wn, kind_label(wk), kind_label(kind));
        goto out;
    }
    json_object_del(o, TD_CACHE_NAME_FIELD);
    json_object_del(o, TD_CACHE_KIND_FIELD);
    if (!(*record = json_dumps(o, 0))) {
        snprintf(why, whylen, "内存不足");
        rc = TD_ENOMEM;
        goto out;
    }
    *rlen = strlen(*record);
    rc = TD_OK;
out:
    json_decref(o);
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

/* Keeps the record for the next process (td__client_write_cache).  The
 * file names the token it holds (td__client_cache_open), so a client of
 * another name or kind sharing the path does not take it for its own.
 * Best effort: a cache that cannot be written must not fail a get that
 * has a good token -- but the reason is kept, so a command can tell its
 * user that the fallback it asked for is not there (td__client_notes). */
static void write_cache(td_client *c, const td_record *rec)
{
    char why[sizeof c->cache_why] = "";
    size_t len;
    const char *js = td_record_json(rec, &len);
    json_t *o;
    char *text = NULL;

    if (!c->cache_file) return;
    o = json_loadb(js, len, 0, NULL);
    if (o && !json_object_set_new(o, TD_CACHE_NAME_FIELD, json_string(c->name)) &&
        !json_object_set_new(o, TD_CACHE_KIND_FIELD, json_string(c->kind)) && (text = json_dumps(o, 0))) {
        (void)td__client_write_cache(c->cache_file, text, strlen(text), why, sizeof why);
        explicit_bzero(text, strlen(text));
    } else {
        snprintf(why, sizeof why, "内存不足");
    }
    free(text);
    json_decref(o);
    pthread_mutex_lock(&c->mu);
    memcpy(c->cache_why, why, sizeof why);
    pthread_mutex_unlock(&c->mu);
}

/* Creates the folders of path that are missing (mode 0700: the file holds
 * a token), like `mkdir -p` and the Node and Python clients' cache: a
 * cache in ~/.cache/app/ works on the first run. */
static int make_parents(const char *path, char *why, size_t whylen)
{
    char dir[4096];
    size_t n = strlen(path);

    while (n > 0 && path[n - 1] != '/') n--;        /* the folder part, with its slash */
    if (n == 0) return TD_OK;                       /* the current folder */
    if (n >= sizeof dir) {
        snprintf(why, whylen, "路径太长");
        return TD_ETOOBIG;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    for (size_t i = 1; i <= n; i++) {
        struct stat st;
        if (dir[i] != '/' && dir[i] != '\0') continue;
        if (dir[i - 1] == '/') continue;            /* "//" or the root */
        dir[i] = '\0';
        if (mkdir(dir, 0700) != 0 && !(errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
            snprintf(why, whylen, "无法创建文件夹 %.300s: %s", dir, errno == EEXIST ? "同名的文件已存在" : strerror(errno));
            return TD_EIO;
        }
        dir[i] = i < n ? '/' : '\0';
    }
    return TD_OK;
}

int td__client_write_cache(const char *path, const char *json, size_t len, char *why, size_t whylen)
{
    char tmp[4096];
    int fd, rc = TD_EIO;

    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) {
        snprintf(why, whylen, "路径太长 (上限 %zu 字节)", sizeof tmp - sizeof ".tmp-XXXXXX");
        return TD_ETOOBIG;
    }
    if ((rc = make_parents(path, why, whylen)) != TD_OK) return rc;
    rc = TD_EIO;
    if ((fd = mkstemp(tmp)) < 0) {
        snprintf(why, whylen, "无法在 %.300s 旁创建临时文件: %s", path, strerror(errno));
        return TD_EIO;
    }
    if (fchmod(fd, 0600) != 0 || fsync_write(fd, json, len) != 0) {
        snprintf(why, whylen, "无法写入 %.300s: %s", tmp, strerror(errno));
        goto out;
    }
    /* Linux releases the descriptor even when close() fails (a write-back
     * error on NFS): it is gone either way, and a second close() could
     * hit a number another thread has opened since. */
    rc = close(fd) == 0 ? TD_OK : TD_EIO;
    fd = -1;
    if (rc != TD_OK) snprintf(why, whylen, "无法写入 %.300s: %s", tmp, strerror(errno));
    if (rc == TD_OK && rename(tmp, path) != 0) {
        snprintf(why, whylen, "无法把临时文件改名为 %.300s: %s", path, strerror(errno));
        rc = TD_EIO;
    }
out:
    if (fd >= 0) close(fd);
    if (rc != TD_OK) unlink(tmp);
    return rc;
}

/* The combined error of a fetch where every source failed.  With one
 * source its own message; with several, one line per source.  Lines that
 * do not fit in err are left out whole, and a last line says how many. */
static int fetch_failure(const attempt *at, size_t n, td_source *failed, char *err, size_t errlen)
{
    enum { TAIL = 80 };     /* room kept for the "left out" line */
    int all_expired_or_missing = 1, any_expired = 0, rc = TD_OK;
    td_strbuf b, tail;
    size_t shown = 0;

    *failed = TD_SOURCE_NONE;
    for (size_t i = 0; i < n; i++) {
        if (at[i].rc == TD_EEXPIRED) any_expired = 1;
        else if (at[i].rc != TD_ENOTFOUND) {
            all_expired_or_missing = 0;
            if (rc == TD_OK) rc = at[i].rc, *failed = at[i].src;
        }
    }
    if (all_expired_or_missing) rc = any_expired ? TD_EEXPIRED : TD_ENOTFOUND;
    if (n == 1) {
        *failed = at[0].src;    /* the one source decided, whatever it said */
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

/* Appends text from a source (a server's message) on one line: line
 * breaks become spaces, so a note stays the one line it promises. */
static void append_one_line(td_strbuf *b, const char *s)
{
    char buf[WHY_LEN];
    size_t i;

    for (i = 0; s[i] && i < sizeof buf - 1; i++) buf[i] = s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
    buf[i] = '\0';
    td_strbuf_append_cut(b, buf, 0);
}

/* The note of a fetch whose record came from at[n - 1] after the sources
 * before it failed: which source served, and why each earlier one did
 * not.  Nothing when the first source served. */
static void fallback_note(const td_client *c, const attempt *at, size_t n, char *note, size_t len)
{
    const attempt *won = &at[n - 1];
    td_strbuf b;

    note[0] = '\0';
    if (n < 2) return;
    td_strbuf_fixed(&b, note, len);
    if (won->src == TD_SOURCE_ENDPOINT) {
        td_strbuf_printf(&b, "token 取自第 %zu 个API地址 %s", won->url + 1, won->where);
    } else {
        td_strbuf_printf(&b, "token 取自%s %s", source_label(won->src), won->where);
    }
    td_strbuf_puts(&b, "，前面的来源失败: ");
    for (size_t i = 0; i + 1 < n; i++) {
        td_strbuf_printf(&b, "%s%s %s: ", i ? "；" : "", source_label(at[i].src), at[i].where);
        append_one_line(&b, at[i].why);
    }
}

/* One pass over the sources in order; the first usable record wins (and
 * note says how it was found: fallback_note).  A record carrying the
 * rejected token is not usable but kept in *stale. */
static int fetch_chain(td_client *c, td_token_kind kind, const char *rejected, td_record **out,
                       td_source *origin, td_record **stale, td_source *stale_origin,
                       char *note, size_t notelen, td_source *failed, char *err, size_t errlen)
{
    size_t n = c->nurls + (c->gitee.owner ? 1 : 0) + (c->cache_file ? 1 : 0), k = 0;
    attempt *at = calloc(n, sizeof *at);
    char gwhere[1024];
    int rc = TD_ERR;

    if (!at) {
        snprintf(err, errlen, "内存不足");
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
        fallback_note(c, at, k, note, notelen);
        free(at);
        return TD_OK;
    }
    rc = fetch_failure(at, k, failed, err, errlen);
    free(at);
    return rc;
}

/* Hands out the memory record: a td_token of kind in *out and the
 * record's JSON in *json (each when asked for), both or neither.  Called
 * with the lock held: one allocation and a copy, no I/O. */
static int fill(td_client *c, td_token_kind kind, td_source source, td_token **out, char **json,
                size_t *jlen)
{
    size_t n = c->tok_len[kind], len = 0;
    const char *js = json ? td_record_json(c->rec, &len) : NULL;
    td_token *t = NULL;
    char *j = NULL;

    if ((json && !(j = handout_alloc(len + 1))) || (out && !(t = handout_alloc(sizeof *t + n + 1)))) {
        td_free(j);
        return TD_ENOMEM;
    }
    if (j) {
        memcpy(j, js, len + 1);
        *json = j;
        if (jlen) *jlen = len;
    }
    if (t) {
        char *text = (char *)(t + 1);
        memcpy(text, c->tok[kind], n + 1);
        t->token = text;
        t->token_len = n;
        t->expires = c->exp[kind];
        t->remaining = c->exp[kind] - server_now(c->offset);
        t->source = source;
        t->origin = c->origin;
        *out = t;
    }
    return TD_OK;
}

/* Replaces the memory record (note: how it was found, NULL: at the first
 * source); called with the lock held. */
static void install(td_client *c, td_record *rec, td_source origin, const char *note)
{
    td_record_free(c->rec);
    c->rec = rec;
    c->origin = origin;
    snprintf(c->note, sizeof c->note, "%s", note ? note : "");
    for (int k = 0; k < 2; k++) {
        c->tok[k] = record_token(rec, (td_token_kind)k, &c->exp[k]);
        c->tok_len[k] = strlen(c->tok[k]);
    }
}

static int memory_usable(const td_client *c, td_token_kind kind)
{
    return c->rec && fresh_enough(c, c->rec, c->exp[kind] - server_now(c->offset));
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The fetch of one single flight.  Returns with the lock held and, on
 * success, the new record installed.  While a reported token's wait runs,
 * the sources are asked again after pauses that double from
 * WAIT_FIRST_MS up to WAIT_MAX_MS, the last one ending at the deadline
 * (Gitee only once a minute: from_gitee); if they still hand out the
 * reported token then, it is used (the server may be unable to refresh,
 * and a token Feishu may accept again beats no token). */
static int fetch_locked(td_client *c, td_token_kind kind, td_source *failed, char *err, size_t errlen)
{
    int64_t pause = WAIT_FIRST_MS;

    for (;;) {
        td_record *rec = NULL, *stale = NULL;
        td_source origin = TD_SOURCE_NONE, stale_origin = TD_SOURCE_NONE;
        char *rejected = NULL, note[NOTE_LEN] = "";
        int64_t until = c->rejected_until_ms;
        int rc, took_stale = 0;

        if (c->rejected && td_clock_mono_ms() < until && !(rejected = strdup(c->rejected))) {
            snprintf(err, errlen, "内存不足");
            return TD_ENOMEM;
        }
        pthread_mutex_unlock(&c->mu);
        rc = fetch_chain(c, kind, rejected, &rec, &origin, &stale, &stale_origin, note, sizeof note, failed,
                         err, errlen);
        wipe_free(rejected);
        if (rc != TD_OK && stale && td_clock_mono_ms() >= until) {
            rec = stale, origin = stale_origin, stale = NULL, rc = TD_OK, took_stale = 1;
        }
        if (rc == TD_OK && origin != TD_SOURCE_CACHE) write_cache(c, rec);
        pthread_mutex_lock(&c->mu);
        if (rc == TD_OK) {
            /* A report of this very token may have arrived while we fetched. */
            if (took_stale || !c->rejected || td_clock_mono_ms() >= c->rejected_until_ms ||
                !is_rejected(c->rejected, rec, kind)) {
                install(c, rec, origin, took_stale ? NULL : note);
                return TD_OK;
            }
            td_record_free(rec);
        } else if (!stale) {
            return rc;
        }
        td_record_free(stale);
        pthread_mutex_unlock(&c->mu);
        {
            int64_t left = until - td_clock_mono_ms();
            sleep_ms(left < pause ? (left > 0 ? left : 0) : pause);
        }
        pause = pause * 2 > WAIT_MAX_MS ? WAIT_MAX_MS : pause * 2;
        pthread_mutex_lock(&c->mu);
    }
}

static int client_get(td_client *c, td_token_kind kind, td_token **out, char **json, size_t *jlen,
                      char *err, size_t errlen)
{
    char ferr[sizeof c->last_err];
    td_source failed = TD_SOURCE_NONE;
    int rc;

    if (!c || (kind != TD_TOKEN_APP && kind != TD_TOKEN_TENANT)) {
        snprintf(err, errlen, "td_client_get: 参数无效 (客户端为 NULL 或 token 种类未知)");
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
        rc = fetch_locked(c, kind, &failed, ferr, sizeof ferr);
        c->fetching = 0;
        c->last_rc = rc;
        c->last_src = rc == TD_OK ? TD_SOURCE_NONE : failed;
        snprintf(c->last_err, sizeof c->last_err, "%s", rc == TD_OK ? "" : ferr);
        c->gen++;
        pthread_cond_broadcast(&c->cv);
        if (rc == TD_OK) rc = fill(c, kind, c->origin, out, json, jlen);
        else snprintf(err, errlen, "%s", c->last_err);
        break;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足");
    return rc;
}

td_source td__client_failed_source(td_client *c)
{
    td_source s;

    pthread_mutex_lock(&c->mu);
    s = c->last_src;
    pthread_mutex_unlock(&c->mu);
    return s;
}

void td__client_notes(td_client *c, char *fallback, size_t flen, char *cache, size_t clen)
{
    pthread_mutex_lock(&c->mu);
    snprintf(fallback, flen, "%s", c->rec ? c->note : "");
    snprintf(cache, clen, "%s", c->cache_why);
    pthread_mutex_unlock(&c->mu);
}

int td_client_get(td_client *c, td_token_kind kind, td_token **out, char *err, size_t errlen)
{
    if (!out) {
        snprintf(err, errlen, "td_client_get: out 不能为 NULL");
        return TD_EINVAL;
    }
    return client_get(c, kind, out, NULL, NULL, err, errlen);
}

int td_client_get_record(td_client *c, td_token_kind kind, char **json, size_t *len, td_token **out,
                         char *err, size_t errlen)
{
    if (!json) {
        snprintf(err, errlen, "td_client_get_record: json 不能为 NULL");
        return TD_EINVAL;
    }
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
    char herr[400], reason[128], msg[256], shown[512];
    int rc = TD_EINVAL, tried = 0;

    json_decref(o);
    if (!body) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    snprintf(err, errlen, "没有可报告无效 token 的端点地址 (需要 …/get-token 或 …/v1/tokens/NAME 形式的地址)");
    for (size_t i = 0; i < c->nurls; i++) {
        td_httpc_req req = {.method = "POST", .url = c->invalid_urls[i], .body = body,
                            .body_len = strlen(body), .headers = hdrs,
                            .timeout_ms = c->timeout_ms, .connect_timeout_ms = c->connect_ms,
                            .max_body = RECORD_BODY_MAX, .pool = c->pool};
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
            /* The platform still issues this token: nothing newer to wait
             * for.  Which platform is the server's to say (its message
             * speaks for the token's record); ours stays neutral. */
            rc = TD_ECONFLICT;
            snprintf(err, errlen, "报告token无效: 平台仍在发放此token，没有新的可换%s%s%s", m ? " (" : "",
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
                 : td_endpoint_refuses_key(&resp) ? TD_EAUTH : TD_EHTTP;
            snprintf(err, errlen, "报告token无效失败: HTTP %ld: %s%s%s%s [%s]", resp.status,
                     reason_phrase(&resp, reason, sizeof reason), m ? " (" : "", m ? m : "",
                     m ? ")" : "", td_httpc_redact_url(req.url, TD_HTTPC_HIDE_QUERY, shown, sizeof shown));
        }
        td_httpc_resp_clear(&resp);
        /* Only a transport failure or a 5xx other than 501 tries the next endpoint. */
        if (rc == TD_OK || (rc != TD_EHTTP && rc != TD_ETIMEOUT)) break;
    }
    if (!tried) rc = TD_EINVAL;
    wipe_free(body);
    return rc;
}

int td_client_report_invalid(td_client *c, const char *token, char *err, size_t errlen)
{
    td_record *newer = NULL;
    char rerr[sizeof c->report_err] = "";
    int64_t until;
    int rc;

    if (!c || !token || !*token) {
        snprintf(err, errlen, "td_client_report_invalid: 没有给出 token");
        return TD_EINVAL;
    }
    if (strnlen(token, TD_TOKEN_MAX + 1) > TD_TOKEN_MAX) {
        snprintf(err, errlen, "td_client_report_invalid: token 超过 %d 字节，不是 tokendist 给出的 token",
                 TD_TOKEN_MAX);
        return TD_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    if (c->rec && (!strcmp(c->tok[0], token) || !strcmp(c->tok[1], token))) {
        td_record_free(c->rec);
        c->rec = NULL;
    }
    /* Many callers hit by the same bad token at once: one report, whose
     * answer stands for reports of that token while it may still bring
     * another token (report_until_ms, below).  After a 202 that is the
     * refresh wait: a token still handed out then was not replaced, and
     * the server, which merges repeated reports itself, must hear of it. */
    if (c->rejected && !strcmp(c->rejected, token) &&
        (c->reporting || ((c->report_rc == TD_OK || c->report_rc == TD_ECONFLICT) &&
                          td_clock_mono_ms() < c->report_until_ms))) {
        while (c->reporting) pthread_cond_wait(&c->cv, &c->mu);
        rc = c->report_rc;
        snprintf(err, errlen, "%s", c->report_err);
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    wipe_free(c->rejected);
    if (!(c->rejected = strdup(token))) {
        pthread_mutex_unlock(&c->mu);
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    c->rejected_until_ms = td_clock_mono_ms() + c->refresh_wait_ms;
    c->reporting = 1;
    pthread_mutex_unlock(&c->mu);

    /* Written to a local buffer: another token's report may run meanwhile. */
    rc = post_invalid(c, token, &newer, rerr, sizeof rerr);
    /* A 202 (TD_OK without a record) is a refresh the server took, not its
     * outcome: it answers this token's reports only while that refresh may
     * still bring another token (the fetch's wait), so a refresh that then
     * failed or never ran is reported again.  200 and 409 are final. */
    until = rc == TD_OK && !newer ? td_clock_mono_ms() + c->refresh_wait_ms : INT64_MAX;
    if (rc == TD_OK) rerr[0] = '\0';
    if (newer) {
        /* Fresh only when neither of its tokens is the one reported: a
         * record that still carries it (as app or as tenant token) is the
         * rejected one again, whatever else changed. */
        int64_t exp;
        const char *tenant = td_record_field(newer, "tenant_access_token");
        int fresh = strcmp(record_token(newer, TD_TOKEN_APP, &exp), token) != 0 &&
                    (!tenant || strcmp(tenant, token) != 0) &&
                    fresh_enough(c, newer, exp - server_now(get_offset(c)));
        if (fresh) write_cache(c, newer);
        else td_record_free(newer), newer = NULL;
    }

    pthread_mutex_lock(&c->mu);
    if (rc == TD_ECONFLICT) c->rejected_until_ms = 0; /* stop waiting: it stays the token */
    /* After a 202 the next fetch waits out the refresh wait for another
     * token from now, when the refresh was taken, not from the report's
     * start: the server's own wait has used it up by then. */
    if (rc == TD_OK && !newer && until != INT64_MAX) c->rejected_until_ms = until;
    if (newer && !c->fetching) install(c, newer, TD_SOURCE_ENDPOINT, NULL), newer = NULL;
    c->reporting = 0;
    c->report_rc = rc;
    c->report_until_ms = until;
    snprintf(c->report_err, sizeof c->report_err, "%s", rerr);
    snprintf(err, errlen, "%s", rerr);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    td_record_free(newer);
    return rc;
}
