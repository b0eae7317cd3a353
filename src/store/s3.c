/*
 * store/s3 -- records in an S3-compatible object store: Tencent COS, AWS
 * S3, or anything else that speaks the S3 API with Signature V4.  For
 * serverless instances without a VPC: every SCF instance on one bucket
 * serves what any of them stored.
 *
 * URL: s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=1&revalidate=S]
 * (the TOKENDIST_S3_* settings arrive as these parameters, config.c).
 * Credentials come from the environment, as every S3 client takes them:
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the
 * TENCENTCLOUD_SECRETID / _SECRETKEY / _SESSIONTOKEN that SCF injects into
 * a function that has a role -- one family whole, never mixed -- or, with
 * credentials_file=PATH, from a file of the same lines, which is read
 * again when it changes, so that temporary credentials can be renewed
 * under a running server (see "credentials" below).
 *
 * Objects under PREFIX/:
 *     index.json          {"names": [...], "versions": {NAME: VERSION}}: every
 *                         name with a record, sorted, and the version of
 *                         each record (td__s3_version_of its PUT's ETag)
 *     index.backup.json   {"names": [...]}: written before the index when
 *                         the names grow, and again when the sweep finds it
 *                         gone, so a spoiled index is rebuilt whole
 *     tokens/NAME.json    the newest record, exactly as the API stored it
 *     history/NAME.json   [record, ...]: the last --history records, newest first
 *     leases/KEY.json     {"owner": ID, "expires": UNIX_MS}: a fleet lease
 *     probe.json          rewritten at each start to learn whether the service
 *                         honours conditional writes
 * Only single-object requests without a query string: libcurl 7.88's
 * CURLOPT_AWS_SIGV4 signs the query as it is, unsorted and unencoded
 * (fixed in 8.3), so a listing is our own index object, not ListObjects.
 *
 * Signing is libcurl's CURLOPT_AWS_SIGV4 ("aws:amz:REGION:s3").  It signs
 * every header we hand it and adds x-amz-date, but neither the
 * x-amz-content-sha256 that S3 and COS require of every SigV4 request nor
 * the x-amz-security-token of temporary credentials: both are added here,
 * so both are signed.  See
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 * ("You also specify the same value as the x-amz-content-sha256 header
 * value") and Tencent's "Accessing COS with AWS S3 SDK"
 * (https://cloud.tencent.com/document/practice/436/37421: the AWS SDKs,
 * which send both headers, work against cos.REGION.myqcloud.com with
 * temporary keys too).  COS buckets made after 2024-01-01 answer
 * virtual-hosted names only
 * (https://www.tencentcloud.com/document/product/436/57456), hence
 * path_style off by default.
 *
 * Put-if-newer is a compare-and-swap on the object's ETag: read the
 * record, compare generated_timestamp, write with `If-Match: ETAG` (or
 * `If-None-Match: *` plus COS's `x-cos-forbid-overwrite: true`, PUT Object
 * at https://www.tencentcloud.com/document/product/436/7749, when there
 * is none yet); a 412 (409 on COS) means another writer came between, so
 * read and compare again.  S3 has honoured both headers on PutObject
 * since 2024 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
 * A service that ignores them is found out at open (a write to probe.json
 * with a wrong If-Match that succeeds), logged, and shown by /readyz: there
 * two writers racing may let the older record win, so docs/deploy-scf.md
 * says to run one writer.  Within this process, puts are serialised.
 *
 * Durability: a put returns TD_OK only after the service acknowledged the
 * PUT of the record (and the index already names it), so it survives
 * this process being killed; what it survives beyond is the service's.
 * The record's version in the index and its history are written after
 * that, best effort; an exact re-send of the record writes whichever of
 * the two is missing (a kill -9 in between, a PUT acknowledged after our
 * timeout), so a client's retry completes them.
 *
 * Readers serve from the API's memory.  A watcher thread revalidates every
 * `revalidate` seconds with conditional GETs (If-None-Match: ETAG, 304 when
 * nothing changed): the index, then the records whose version in it moved
 * and a few more in turn (revalidate()), and tells the API what changed --
 * the data_version poll of store/sqlite.c, over HTTP.  While the service
 * cannot be reached, GETs go on from memory, puts fail with TD_EUNAVAIL
 * (503 + Retry-After), and the first success reloads all.
 *
 * No messages between servers (send/listen): an /invalid report is
 * answered by the local refresher when this server holds the lease.
 */
#define _GNU_SOURCE
#include "store.h"
#include "store/s3.h"
#include "clock.h"
#include "freeze.h"
#include "config.h"
#include "httpc.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "snap.h"
#include "strbuf.h"
#include "tokendist.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CONNECT_MS 2000
#define REQUEST_MS 5000
#define READBACK_MS 2500        /* the read after a PUT whose answer never came: the client waits */
#define TRIES 5                 /* compare-and-swap rounds before "contended, try later" */
#define JSON_MAX (1u << 20)     /* a record: the API's largest body */
#define INDEX_MAX (256u << 10)
#define HISTORY_BYTES_MAX (1u << 20)
#define LEASE_MAX 4096
#define TAG_MAX 160             /* an ETag, quotes included */
#define URL_MAX 1024
#define NAMES_MAX TD_SNAP_NAMES_MAX
#define NAMES_KEPT_MAX (4 * NAMES_MAX) /* names of another tool's index kept (the API reads as many rows) */
#define SWEEP_PER_ROUND 4       /* records read again each round whatever the index says */
#define BACKUP_ROUNDS 10        /* the backup is read again at most once in so many rounds */
#define MSG_MAX 1024            /* a message for a person: what /readyz and a POST's answer show */
#define BACKUP_REL "index.backup.json"

/* A name this instance knows, from the index, its backup or its own
 * writes.  What one index lost (spoiled by another tool, or overwritten
 * by a writer on a service that ignores If-Match) the next write of this
 * instance puts back -- but only a name with a record (rec): a name that
 * neither the index nor the backup names any more and that has no record
 * is forgotten (names_tidy), so an operator's cleanup of another tool's
 * names sticks while instances run. */
typedef struct s3_name {
    char *name;
    char version[TD_S3_VERSION_LEN]; /* its record's version in the index as last read, "" none */
    char seen[TD_S3_VERSION_LEN];    /* the version when this instance last read the record */
    unsigned read : 1;          /* the record was read (found or not) since the name was learnt */
    unsigned in_index : 1;      /* index.json names it, as last read or written */
    unsigned in_backup : 1;     /* index.backup.json names it, as last read or written */
    unsigned rec : 1;           /* this instance read tokens/NAME.json (it exists) or wrote it */
    unsigned carried : 1;       /* in the index or backup body being written (under wlock) */
} s3_name;

/* One record as last read, with the ETag it had. */
typedef struct cached {
    char etag[TAG_MAX];
    char told[TAG_MAX];         /* the ETag of what the API last got from us: a put's
                                   read may cache a newer one the API must still be told of */
    td_store_entry e;           /* e.name is the key */
    int64_t checked_ms;         /* monotonic: when the service last confirmed it */
} cached;

typedef struct s3_store {
    td__s3_url u;
    char base[URL_MAX];         /* for messages: "s3 BUCKET (ENDPOINT)" */
    char sigv4[96];             /* "aws:amz:REGION:s3" */
    /* The credentials requests are signed with (never logged), and where
     * they are read again from: the file u.creds_file, when set. */
    pthread_mutex_t cred_lock;  /* guards the four below */
    struct s3_creds *creds;
    int64_t cred_checked_ms;    /* monotonic: when the file was last looked at */
    struct stat cred_st;        /* the file as last read */
    char cred_file_err[MSG_MAX];    /* the last reason it could not be read, said once */
    size_t history_max;
    int64_t revalidate_ms;
    int if_match, if_none_match; /* 1 honoured, 0 ignored, -1 refused (not sent), 2 unknown */
    int opened;                 /* open succeeded: failures are news from now on */

    pthread_mutex_t wlock;      /* one put at a time in this process */

    /* Connections kept between requests (httpc's pool: one handle per
     * request in flight): a request to COS then costs a round trip, not a
     * TLS handshake too. */
    td_httpc_pool *pool;

    pthread_mutex_t lock;       /* guards everything below */
    cached *v;
    size_t n, cap;
    s3_name *names;             /* every name known, sorted */
    size_t nnames, names_cap;
    size_t sweep;               /* where the next round's sweep starts in names */
    char index_etag[TAG_MAX];   /* "" when there is no index object */
    unsigned long index_gen;    /* our index writes: a read begun before one is stale */
    int index_bad;              /* index.json is not ours (spoiled, too big): the next write rebuilds it */
    int backup_looked;          /* read the backup since the index was last good */
    char backup_etag[TAG_MAX];  /* of index.backup.json as last read or written, "" none */
    int backup_due;             /* the sweep came to the backup: names_tidy checks it */
    unsigned backup_rounds;     /* rounds since the sweep last came to the backup */
    int backup_failed;          /* the watcher's last write of the backup failed (said once) */
    int fail_rc;                /* TD_OK, or the last request's TD_EUNAVAIL / TD_EAUTH */
    char fail_why[MSG_MAX];
    char caveat[MSG_MAX];       /* what the service does not do that we rely on ("": all), for /readyz */
    int64_t fail_since;         /* Unix seconds */
    int64_t last_ok_ms;         /* monotonic, of the last answer from the service */

    /* The watcher (stop and wcond under lock). */
    pthread_t watcher;
    int watching, stop;
    pthread_cond_t wcond;
    pthread_mutex_t cb_lock;    /* held while cb runs: watch(NULL) waits for it */
    td_store_change_cb cb;
    void *ud;
} s3_store;

/* --- messages --------------------------------------------------------------- */

/* Formats a message for a person into err, cut on a character when it
 * is longer: messages carry endpoints, keys and file paths of any length,
 * and half a UTF-8 character at the end would make /readyz drop the whole
 * string (jansson refuses it).  err may be one of the arguments. */
__attribute__((format(printf, 3, 4))) static void say(char *err, size_t errlen, const char *fmt, ...)
{
    td_strbuf h, b;
    va_list ap;

    td_strbuf_heap(&h, 64u << 10);
    va_start(ap, fmt);
    td_strbuf_vprintf(&h, fmt, ap);
    va_end(ap);
    td_strbuf_fixed(&b, err, errlen);
    td_strbuf_append_cut(&b, td_strbuf_error(&h) ? "内存不足" : td_strbuf_str(&h), 0);
    td_strbuf_free(&h);
}

/* Object rel as the service's console shows it, PREFIX/rel: the one way
 * a message names an object (without the prefix it would point at an
 * object that does not exist, or at another deployment's).  Returns buf. */
static const char *key_of(const s3_store *q, const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", q->u.prefix, *q->u.prefix ? "/" : "", rel); /* ASCII: a cut is whole */
    return buf;
}
#define KEY_MAX (TD_S3_PREFIX_MAX + 300) /* prefix, "/", a rel of at most 272 */

/* --- the URL ------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (size len); 0 when it does not fit
 * or decodes to a NUL. */
static int decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || o + 1 >= len) return 0;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 1;
}

static int key_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* "https://HOST[:PORT][/]" into u. */
static int parse_endpoint(const char *ep, td__s3_url *u, char *err, size_t errlen)
{
    const char *h, *end, *colon;
    size_t hl;

    if (!strncmp(ep, "https://", 8)) snprintf(u->scheme, sizeof u->scheme, "https"), h = ep + 8;
    else if (!strncmp(ep, "http://", 7)) snprintf(u->scheme, sizeof u->scheme, "http"), h = ep + 7;
    else goto bad;
    end = h + strcspn(h, "/");
    if (*end && strcmp(end, "/") != 0) goto bad; /* no path, query or fragment */
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) goto bad;
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != end) goto bad;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
    }
    hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= sizeof u->host || memchr(h, '@', (size_t)(end - h))) goto bad;
    for (size_t i = 0; i < hl; i++)
        if (!key_char((unsigned char)h[i]) && !strchr("[]:", h[i])) goto bad;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    if (colon) {
        char *e;
        long port;
        errno = 0;
        port = strtol(colon + 1, &e, 10);
        if (errno || e != end || port < 1 || port > 65535) goto bad;
        u->port = (int)port;
    }
    return TD_OK;
bad:
    say(err, errlen,
             "S3 存储的 endpoint '%.200s' 无效：应为 https://HOST[:PORT]，例如 "
             "https://cos.ap-guangzhou.myqcloud.com (TOKENDIST_S3_ENDPOINT 或 ?endpoint=)", ep);
    return TD_EINVAL;
}

/* The region in a COS or AWS endpoint's name, "" when there is none. */
static void region_of_host(const char *host, char *out, size_t len)
{
    static const struct { const char *pre, *post; } known[] = {
        {"cos.", ".myqcloud.com"}, {"s3.", ".amazonaws.com"}, {"s3-", ".amazonaws.com"},
    };
    size_t hl = strlen(host);

    out[0] = '\0';
    if (!strcmp(host, "s3.amazonaws.com")) {
        snprintf(out, len, "us-east-1");
        return;
    }
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        size_t pl = strlen(known[i].pre), sl = strlen(known[i].post);
        if (hl > pl + sl && !strncmp(host, known[i].pre, pl) && !strcmp(host + hl - sl, known[i].post) &&
            hl - pl - sl < len && !memchr(host + pl, '.', hl - pl - sl)) {
            memcpy(out, host + pl, hl - pl - sl);
            out[hl - pl - sl] = '\0';
            return;
        }
    }
}

int td__s3_parse_url(const char *spec, td__s3_url *u, char *err, size_t errlen)
{
    const char *p, *end, *query;
    char endpoint[512] = "";
    size_t bl, pl;

    memset(u, 0, sizeof *u);
    u->revalidate_s = 1;
    if (strncmp(spec, "//", 2) != 0) goto bad;
    p = spec + 2;
    query = strchr(p, '?');
    end = p + strcspn(p, "/?");
    bl = (size_t)(end - p);
    if (bl < 3 || bl > TD_S3_BUCKET_MAX) goto badbucket;
    for (size_t i = 0; i < bl; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '.'))
            goto badbucket;
    memcpy(u->bucket, p, bl);
    if (*end == '/') {
        const char *ps = end + 1, *pe = query ? query : ps + strlen(ps);
        while (pe > ps && pe[-1] == '/') pe--;
        pl = (size_t)(pe - ps);
        if (pl > TD_S3_PREFIX_MAX) goto badprefix;
        /* Segments of key characters, none empty, "." or "..": every
         * writer must name the same object, and no path may be rewritten
         * on its way. */
        for (const char *seg = ps; seg < pe;) {
            const char *se = memchr(seg, '/', (size_t)(pe - seg));
            size_t sl = (size_t)((se ? se : pe) - seg);
            if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && !strncmp(seg, "..", 2))) goto badprefix;
            for (size_t i = 0; i < sl; i++)
                if (!key_char((unsigned char)seg[i])) goto badprefix;
            seg += sl + 1;
        }
        memcpy(u->prefix, ps, pl);
    }
    for (const char *q = query; q && *q;) {
        const char *k = q + 1, *amp = k + strcspn(k, "&"), *eq = memchr(k, '=', (size_t)(amp - k));
        char val[512];
        size_t kl = (size_t)((eq ? eq : amp) - k);
        if (!eq || !decode(eq + 1, (size_t)(amp - eq - 1), val, sizeof val)) {
            say(err, errlen, "S3 存储 URL 的参数 '%.*s' 无效 (应为 KEY=VALUE，值最长 511 字节)",
                     (int)((amp - k) > 80 ? 80 : (amp - k)), k);
            return TD_EINVAL;
        }
        if (kl == 8 && !strncmp(k, "endpoint", 8)) {
            snprintf(endpoint, sizeof endpoint, "%s", val);
        } else if (kl == 6 && !strncmp(k, "region", 6)) {
            if (!*val || strlen(val) > TD_S3_REGION_MAX || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(val)) {
                say(err, errlen, "S3 存储的 region '%.80s' 无效：应为小写字母、数字和 '-'，例如 ap-guangzhou", val);
                return TD_EINVAL;
            }
            memcpy(u->region, val, strlen(val) + 1);
        } else if (kl == 10 && !strncmp(k, "path_style", 10)) {
            if (!strcmp(val, "1") || !strcmp(val, "true")) u->path_style = 1;
            else if (!strcmp(val, "0") || !strcmp(val, "false")) u->path_style = 0;
            else {
                say(err, errlen, "S3 存储的 path_style '%.20s' 无效：应为 1 或 0", val);
                return TD_EINVAL;
            }
        } else if (kl == 16 && !strncmp(k, "credentials_file", 16)) {
            if (val[0] != '/') {
                say(err, errlen, "S3 存储的 credentials_file '%.200s' 无效：应为绝对路径 (TOKENDIST_S3_CREDENTIALS_FILE)", val);
                return TD_EINVAL;
            }
            memcpy(u->creds_file, val, strlen(val) + 1); /* val < 512 bytes: decode() bounds it */
        } else if (kl == 10 && !strncmp(k, "revalidate", 10)) {
            char *e;
            errno = 0;
            u->revalidate_s = strtol(val, &e, 10);
            if (errno || e == val || *e || u->revalidate_s < 1 || u->revalidate_s > 3600) {
                say(err, errlen, "S3 存储的 revalidate '%.20s' 无效：应为 1 到 3600 秒", val);
                return TD_EINVAL;
            }
        } else {
            say(err, errlen, "S3 存储 URL 的参数 '%.*s' 未知：可用 endpoint、region、path_style、revalidate、credentials_file",
                     (int)(kl > 40 ? 40 : kl), k);
            return TD_EINVAL;
        }
        q = amp;
    }
    if (!*endpoint) {
        say(err, errlen, "S3 存储需要 endpoint：设置 TOKENDIST_S3_ENDPOINT (或 URL 的 ?endpoint=)，"
                              "例如 https://cos.ap-guangzhou.myqcloud.com");
        return TD_EINVAL;
    }
    if (parse_endpoint(endpoint, u, err, errlen) != TD_OK) return TD_EINVAL;
    if (!*u->region) region_of_host(u->host, u->region, sizeof u->region);
    if (!*u->region) {
        say(err, errlen, "S3 存储需要签名用的地域：设置 TOKENDIST_S3_REGION (或 URL 的 ?region=)，例如 ap-guangzhou");
        return TD_EINVAL;
    }
    /* A bucket name with dots is not a valid TLS host label under a
     * wildcard certificate: such buckets need path style over https. */
    return TD_OK;
bad:
    say(err, errlen, "S3 存储 URL 应为 s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=1]");
    return TD_EINVAL;
badbucket:
    say(err, errlen, "S3 存储桶名 '%.*s' 无效：应为 3-63 个小写字母、数字、'-' 或 '.' (COS 的桶名形如 name-1250000000)",
             (int)(bl > 70 ? 70 : bl), p);
    return TD_EINVAL;
badprefix:
    say(err, errlen, "S3 存储的前缀无效：只能由字母、数字、'.'、'_'、'-' 和 '/' 组成 (不含空段、'.' 或 '..' 段)，最长 %d 字节",
             TD_S3_PREFIX_MAX);
    return TD_EINVAL;
}

int td__s3_object_url(const td__s3_url *u, const char *rel, char *buf, size_t len)
{
    td_strbuf b;
    char port[16] = "";

    if (u->port) snprintf(port, sizeof port, ":%d", u->port);
    td_strbuf_fixed(&b, buf, len);
    if (u->path_style) td_strbuf_printf(&b, "%s://%s%s/%s/", u->scheme, u->host, port, u->bucket);
    else td_strbuf_printf(&b, "%s://%s.%s%s/", u->scheme, u->bucket, u->host, port);
    if (*u->prefix) td_strbuf_printf(&b, "%s/", u->prefix);
    td_strbuf_puts(&b, rel);
    return td_strbuf_error(&b);
}

void td__s3_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";

    EVP_Digest(p ? p : "", n, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* The text between <tag> and </tag>, printable ASCII only. */
static void xml_field(const char *body, size_t len, const char *tag, char *out, size_t outlen)
{
    char open[32], close[32];
    const char *s, *e;
    size_t o = 0;

    out[0] = '\0';
    if (!body || !outlen) return;
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    if (!(s = memmem(body, len, open, strlen(open)))) return;
    s += strlen(open);
    if (!(e = memmem(s, len - (size_t)(s - body), close, strlen(close)))) return;
    for (; s < e && o + 1 < outlen; s++)
        if (*s >= ' ' && *s < 0x7f) out[o++] = *s;
    out[o] = '\0';
}

void td__s3_error_of(const char *body, size_t len, char *code, size_t codelen, char *msg, size_t msglen)
{
    xml_field(body, len, "Code", code, codelen);
    xml_field(body, len, "Message", msg, msglen);
}

int td__s3_lease_parse(const char *body, size_t len, char *owner, size_t ownerlen, int64_t *expires_ms)
{
    json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
    const char *ow = json_string_value(json_object_get(o, "owner"));
    json_t *ex = json_object_get(o, "expires");
    int rc = TD_EINVAL;

    if (ow && *ow && strlen(ow) < ownerlen && json_is_integer(ex)) {
        memcpy(owner, ow, strlen(ow) + 1);
        *expires_ms = (int64_t)json_integer_value(ex);
        rc = TD_OK;
    }
    json_decref(o);
    return rc;
}

/* --- credentials ----------------------------------------------------------- */

/* Temporary credentials expire: an STS session at the end of its
 * duration, and the role credentials SCF hands a function too.  Where they
 * are renewed decides what a long-lived process can do about it:
 *
 *   - SCF puts a function role's credentials in the environment of the
 *     instance it starts (TENCENTCLOUD_SECRETID/SECRETKEY/SESSIONTOKEN,
 *     "已内置环境变量", https://cloud.tencent.com/document/product/583/32748).
 *     Its built-in runtimes hand every invocation its environment anew,
 *     which is why Tencent's samples read process.env in the handler; a
 *     custom runtime is told nothing per invocation beyond request_id,
 *     memory_limit_in_mb and time_limit_in_ms (scf.h), and no process's
 *     environment changes under it.  So an instance keeps the credentials
 *     it started with, and fresh ones come with a fresh instance: SCF
 *     destroys idle ones after a few minutes
 *     (https://www.tencentcloud.com/document/product/583/69578), and a new
 *     release replaces them all.
 *   - Elsewhere (a VM, a container) whatever renews them -- a sidecar
 *     calling STS, a cron job -- writes a file (credentials_file, the
 *     TOKENDIST_S3_CREDENTIALS_FILE setting), and the file is read again:
 *     when it changed (a stat at most once a second), and at once when the
 *     service refuses the credentials in use, the request then retried
 *     once with the new ones.
 *
 * Either way a refusal is said in words that name what renews them
 * (auth_error), once (note_health), and /readyz shows it. */
#define CREDS_FILE_MAX (64u << 10)
#define CREDS_CHECK_MS 1000

typedef struct s3_creds {
    int refs;                   /* atomic: the store's, and one per request in flight */
    char *key_id, *secret;
    char *token_hdr;            /* "x-amz-security-token: …", or NULL */
    const char *vars[3];        /* the names they came under, for messages */
} s3_creds;

static const char *const CRED_NAMES[2][3] = {
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
    {"TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN"},
};

int td__s3_creds_pick(const char *(*get)(void *ud, const char *name), void *ud, td__s3_creds_ref *out,
                      char *err, size_t errlen)
{
    for (int f = 0; f < 2; f++) {
        const char *id = get(ud, CRED_NAMES[f][0]), *key, *tok;
        if (!id || !*id) continue;
        if (!(key = get(ud, CRED_NAMES[f][1])) || !*key) {
            say(err, errlen, "设置了 %s 却没有 %s", CRED_NAMES[f][0], CRED_NAMES[f][1]);
            return TD_EINVAL;
        }
        tok = get(ud, CRED_NAMES[f][2]);
        *out = (td__s3_creds_ref){id, key, tok && *tok ? tok : NULL, {CRED_NAMES[f][0], CRED_NAMES[f][1], CRED_NAMES[f][2]}};
        return TD_OK;
    }
    return TD_ENOTFOUND;
}

static void wipe_free(char *p)
{
    if (p) explicit_bzero(p, strlen(p));
    free(p);
}

static void creds_release(s3_creds *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    wipe_free(c->secret);
    wipe_free(c->token_hdr);
    free(c->key_id);
    free(c);
}

static int creds_same(const s3_creds *a, const s3_creds *b)
{
    return a && b && !strcmp(a->key_id, b->key_id) && !strcmp(a->secret, b->secret) &&
           !strcmp(a->token_hdr ? a->token_hdr : "", b->token_hdr ? b->token_hdr : "");
}

static const char *env_get(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

/* A credentials file's lines: the six names, nothing else. */
typedef struct file_vals {
    char *v[2][3];
    char *err;
    size_t errlen;
} file_vals;

static int file_kv(void *ud, int lineno, const char *key, const char *val)
{
    file_vals *f = ud;

    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            if (!strcmp(key, CRED_NAMES[i][j])) {
                wipe_free(f->v[i][j]);
                if (!(f->v[i][j] = strdup(val))) {
                    snprintf(f->err, f->errlen, "内存不足");
                    return TD_ENOMEM;
                }
                return TD_OK;
            }
    snprintf(f->err, f->errlen, "第 %d 行的 %.60s 不是凭证的名称 (应为 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/"
             "AWS_SESSION_TOKEN 或 TENCENTCLOUD_SECRETID/SECRETKEY/SESSIONTOKEN)", lineno, key);
    return TD_EINVAL;
}

static const char *file_get(void *ud, const char *name)
{
    file_vals *f = ud;

    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            if (!strcmp(name, CRED_NAMES[i][j])) return f->v[i][j];
    return NULL;
}

/* The credentials as they are now -- the file's, else the environment's
 * -- as a new set with one reference; st gets the file's state as read. */
static int creds_read(const s3_store *q, s3_creds **out, struct stat *st, char *err, size_t errlen)
{
    const char *path = q->u.creds_file;
    file_vals f = {.err = err, .errlen = errlen};
    td__s3_creds_ref ref;
    s3_creds *c = NULL;
    FILE *fp = NULL;
    char *buf = NULL, sub[400] = "";
    size_t n = 0;
    int rc = TD_EINVAL;

    *out = NULL;
    err[0] = '\0';
    if (*path) {
        if (!(fp = fopen(path, "re")) || fstat(fileno(fp), st) != 0) {
            say(err, errlen, "无法读取凭证文件 %s (TOKENDIST_S3_CREDENTIALS_FILE): %s", path, strerror(errno));
            goto out;
        }
        if (!S_ISREG(st->st_mode) || st->st_size > (off_t)CREDS_FILE_MAX) {
            say(err, errlen, "凭证文件 %s (TOKENDIST_S3_CREDENTIALS_FILE) %s", path,
                     S_ISREG(st->st_mode) ? "大于 64 KiB" : "不是普通文件");
            goto out;
        }
        if (!(buf = malloc(CREDS_FILE_MAX + 1))) {
            rc = TD_ENOMEM;
            goto out;
        }
        setvbuf(fp, NULL, _IONBF, 0); /* no copy of the secrets in stdio's buffer: buf is wiped */
        n = fread(buf, 1, CREDS_FILE_MAX + 1, fp);
        if (ferror(fp) || n > CREDS_FILE_MAX) {
            say(err, errlen, "无法读取凭证文件 %s: %s", path, ferror(fp) ? strerror(errno) : "大于 64 KiB");
            goto out;
        }
        if ((rc = td_config_parse_envfile(buf, n, file_kv, &f, sub, sizeof sub)) != TD_OK) {
            if (err[0]) snprintf(sub, sizeof sub, "%s", err); /* file_kv's words, else the parser's */
            say(err, errlen, "凭证文件 %s %s", path, sub);
            goto out;
        }
        rc = td__s3_creds_pick(file_get, &f, &ref, sub, sizeof sub);
        if (rc == TD_ENOTFOUND)
            say(err, errlen, "凭证文件 %s 中没有 AWS_ACCESS_KEY_ID 或 TENCENTCLOUD_SECRETID", path);
        else if (rc != TD_OK)
            say(err, errlen, "凭证文件 %s: %s", path, sub);
    } else {
        rc = td__s3_creds_pick(env_get, NULL, &ref, sub, sizeof sub);
        if (rc == TD_ENOTFOUND)
            say(err, errlen, "S3 存储需要凭证：在环境变量中设置 AWS_ACCESS_KEY_ID 和 AWS_SECRET_ACCESS_KEY "
                                  "(临时密钥另加 AWS_SESSION_TOKEN)，或用 TOKENDIST_S3_CREDENTIALS_FILE 指定凭证文件；"
                                  "在腾讯云 SCF 中为函数绑定有 COS 权限的角色即可 "
                                  "(SCF 注入 TENCENTCLOUD_SECRETID/SECRETKEY/SESSIONTOKEN)");
        else if (rc != TD_OK)
            say(err, errlen, "S3 存储：%s", sub);
    }
    if (rc != TD_OK) {
        rc = rc == TD_ENOMEM ? TD_ENOMEM : TD_EINVAL;
        goto out;
    }
    rc = TD_ENOMEM;
    if (!(c = calloc(1, sizeof *c))) goto out;
    c->refs = 1;
    memcpy(c->vars, ref.vars, sizeof c->vars);
    if (!(c->key_id = strdup(ref.id)) || !(c->secret = strdup(ref.secret))) goto out;
    if (ref.token) {
        size_t len = strlen(ref.token) + 32;
        if (!(c->token_hdr = malloc(len))) goto out;
        snprintf(c->token_hdr, len, "x-amz-security-token: %s", ref.token);
    }
    *out = c, c = NULL;
    rc = TD_OK;
out:
    if (rc == TD_ENOMEM && !err[0]) say(err, errlen, "内存不足");
    creds_release(c);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) wipe_free(f.v[i][j]);
    if (buf) explicit_bzero(buf, n < CREDS_FILE_MAX + 1 ? n : CREDS_FILE_MAX + 1);
    free(buf);
    if (fp) fclose(fp);
    return rc;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The credentials for a request, held: creds_release after.  With a file,
 * it is looked at first -- at most once a second unless force -- and
 * read when it changed (force: read in any case, the service having
 * refused what it held).  A set that differs from the one in use replaces
 * it for every request from now on. */
static s3_creds *creds_hold(s3_store *q, int force)
{
    s3_creds *c, *fresh = NULL;
    struct stat st;
    char err[MSG_MAX], fp[TD_FP_LEN];
    int64_t now = td_clock_mono_ms();
    int look, changed = 0;

    pthread_mutex_lock(&q->cred_lock);
    look = *q->u.creds_file && (force || now - q->cred_checked_ms >= CREDS_CHECK_MS);
    if (look) {
        q->cred_checked_ms = now;
        changed = force || stat(q->u.creds_file, &st) != 0 || !same_file(&st, &q->cred_st);
    }
    pthread_mutex_unlock(&q->cred_lock);
    if (changed && creds_read(q, &fresh, &st, err, sizeof err) != TD_OK) {
        pthread_mutex_lock(&q->cred_lock);
        if (strcmp(err, q->cred_file_err) != 0) /* each reason once */
            td_log("⚠️ S3 存储 %s: %s；仍用原来的凭证", q->base, err);
        snprintf(q->cred_file_err, sizeof q->cred_file_err, "%s", err);
        pthread_mutex_unlock(&q->cred_lock);
    }
    pthread_mutex_lock(&q->cred_lock);
    if (fresh) {
        q->cred_st = st;
        q->cred_file_err[0] = '\0';
        if (!creds_same(fresh, q->creds)) {
            s3_creds *old = q->creds;
            q->creds = fresh, fresh = old;
            td_log("S3 存储 %s：凭证已更新，取自凭证文件 %s (%s %s%s)", q->base, q->u.creds_file, q->creds->vars[0],
                   td_log_secret_fp(q->creds->key_id, fp), q->creds->token_hdr ? "，带临时会话令牌" : "");
        }
    }
    c = q->creds;
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&q->cred_lock);
    creds_release(fresh);
    return c;
}

/* Refusals that fresh credentials may cure. */
static int refused_credentials(const char *code)
{
    static const char *const codes[] = {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "TokenExpired",
                                        "InvalidAccessKeyId", "SignatureDoesNotMatch"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (!strcmp(code, codes[i])) return 1;
    return 0;
}

/* What renews the credentials c came from, for the words of a refusal. */
static const char *renewal_hint(const s3_store *q, const s3_creds *c, char *buf, size_t len)
{
    if (*q->u.creds_file)
        say(buf, len, "tokendist 每秒检查凭证文件 %s，写入新的密钥后自动恢复，不用重启", q->u.creds_file);
    else if (!strncmp(c->vars[0], "TENCENTCLOUD_", 13))
        say(buf, len, "SCF 只在启动实例时把运行角色的临时密钥放进环境变量，运行中的实例拿不到新的："
                           "等 SCF 换上新实例 (空闲的实例几分钟后回收)，或重新发布函数让新实例接替");
    else
        say(buf, len, "环境变量在进程运行期间不会更新：换上新的密钥后重启 tokendist，"
                           "或改用 TOKENDIST_S3_CREDENTIALS_FILE，让它自动读取新的");
    return buf;
}

/* --- requests -------------------------------------------------------------- */

/* An answer, as the callers need it. */
typedef struct s3_resp {
    long status;
    char *body;                 /* NUL-terminated; owned */
    size_t len;
    char etag[TAG_MAX];
    int64_t date_ms;            /* the service's Date, else our clock */
    int64_t total;              /* a 206's whole size (Content-Range), else -1 */
    char code[64];              /* S3 error code, "" */
} s3_resp;

static void resp_clear(s3_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Records how the last request went; logs when that changes, so an outage
 * is one line and its end another. */
static void note_health(s3_store *q, int rc, const char *why)
{
    if (!q->opened) return; /* a failing open says why itself */
    pthread_mutex_lock(&q->lock);
    if (rc == TD_OK) {
        q->last_ok_ms = td_clock_mono_ms();
        if (q->fail_rc != TD_OK) {
            td_log("✅ S3 存储 %s 已恢复，中断 %" PRId64 " 秒", q->base, td_clock_now() - q->fail_since);
            if (q->fail_rc == TD_EUNAVAIL) td_metrics_inc(TD_M_STORE_RECONNECTS);
        }
        q->fail_rc = TD_OK;
    } else if (rc == TD_EUNAVAIL || rc == TD_EAUTH) {
        if (q->fail_rc != rc) {
            /* why names the store (bucket and endpoint) itself */
            td_log("❌ S3 存储%s：%s；GET 继续由内存中的 token 应答，POST 返回 %s",
                   rc == TD_EAUTH ? "拒绝了请求" : "暂不可用", why, rc == TD_EAUTH ? "500" : "503");
            q->fail_since = td_clock_now();
        }
        td_strbuf b;
        q->fail_rc = rc;
        td_strbuf_fixed(&b, q->fail_why, sizeof q->fail_why); /* cut on a character: /readyz shows it */
        td_strbuf_append_cut(&b, why, 0);
    }
    pthread_mutex_unlock(&q->lock);
}

/* What a refusal of credentials c means, and which setting to fix. */
static int auth_error(s3_store *q, const s3_creds *c, long status, const char *code, const char *msg, char *err,
                      size_t errlen)
{
    const char *id = c->vars[0], *key = c->vars[1], *tok = c->vars[2];
    char hint[MSG_MAX];

    if (!strcmp(code, "SignatureDoesNotMatch"))
        say(err, errlen, "S3 存储 %s 拒绝了签名 (SignatureDoesNotMatch)：%s 与 %s 不是一对，"
                 "请检查 %s；若密钥无误，检查签名用的地域 TOKENDIST_S3_REGION (现为 %s)",
                 q->base, key, id, key, q->u.region);
    else if (!strcmp(code, "InvalidAccessKeyId"))
        say(err, errlen, "S3 存储 %s 不认识访问密钥 (InvalidAccessKeyId)：请检查 %s%s%s", q->base, id,
                 c->token_hdr ? "；临时密钥过期后也会这样，" : "",
                 c->token_hdr ? renewal_hint(q, c, hint, sizeof hint) : "");
    else if (!strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken") ||
             !strcmp(code, "TokenRefreshRequired") || !strcmp(code, "TokenExpired"))
        say(err, errlen, "S3 存储 %s 拒绝了临时密钥 (%s)：%s 已过期或无效；%s", q->base, code, tok,
                 renewal_hint(q, c, hint, sizeof hint));
    else if (!strcmp(code, "RequestTimeTooSkewed"))
        say(err, errlen, "S3 存储 %s 拒绝了请求 (RequestTimeTooSkewed)：本机时钟与服务相差过大，请校准时间 (NTP)",
                 q->base);
    else if (!strcmp(code, "AuthorizationHeaderMalformed") || !strcmp(code, "AuthorizationQueryParametersError"))
        say(err, errlen, "S3 存储 %s 拒绝了签名 (%s: %.120s)：检查签名用的地域 TOKENDIST_S3_REGION (现为 %s)",
                 q->base, code, msg, q->u.region);
    else if (!strcmp(code, "AccessDenied"))
        say(err, errlen, "S3 存储 %s 拒绝访问 (AccessDenied)：%s 的用户或角色没有这个存储桶的 "
                 "GetObject/PutObject 权限，请检查存储桶策略或角色的权限", q->base, id);
    else
        say(err, errlen, "S3 存储 %s 拒绝了请求 (HTTP %ld %s)：检查 %s/%s 与存储桶策略", q->base, status,
                 *code ? code : "", id, key);
    return TD_EAUTH;
}

/* Set while this thread runs a put or a lease change: its requests are
 * let finish by a stop (httpc.h, finish_on_stop), so that the write is
 * done whole or, started after the stop, not at all (s3_put). */
static __thread int writing;

/* One signed request on object rel.  extra: more header lines (NULL
 * ended).  Answers a caller handles itself -- 2xx, 304, 404 NoSuchKey,
 * 409 and 412 -- are TD_OK with r filled; anything else is an error with
 * err saying what happened and, where it can, what to fix:
 * TD_EUNAVAIL (unreachable, 5xx, throttled), TD_EAUTH (refused), TD_EIO,
 * and TD_ETOOBIG for a body over max_body (an object that is not ours:
 * the service itself answered, so that is no failure of the service). */
static int s3_call_t(s3_store *q, long timeout_ms, const char *method, const char *rel, const char *body,
                     size_t len, const char *const *extra, size_t max_body, s3_resp *r, char *err, size_t errlen)
{
    char url[URL_MAX], sha[65], sha_hdr[100], sub[512], msg[200], key[KEY_MAX];
    const char *hdrs[12];
    size_t nh = 0;
    td_httpc_req req = {0};
    td_httpc_resp resp;
    int64_t mark;
    s3_creds *c;
    int rc;

    memset(r, 0, sizeof *r);
    if (td__s3_object_url(&q->u, rel, url, sizeof url) != TD_OK) {
        say(err, errlen, "S3 对象 URL 过长");
        return TD_EINVAL;
    }
    td__s3_sha256_hex(body, body ? len : 0, sha);
    snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: %s", sha);
    c = creds_hold(q, 0);
    for (int attempt = 0;; attempt++) {
        nh = 0;
        hdrs[nh++] = sha_hdr;
        if (c->token_hdr) hdrs[nh++] = c->token_hdr;
        if (body) hdrs[nh++] = "Content-Type: application/json";
        for (const char *const *h = extra; h && *h && nh + 1 < sizeof hdrs / sizeof *hdrs; h++) hdrs[nh++] = *h;
        hdrs[nh] = NULL;
        req.method = method;
        req.url = url;
        req.body = body;
        req.body_len = len;
        req.headers = hdrs;
        req.timeout_ms = timeout_ms;
        req.connect_timeout_ms = CONNECT_MS;
        req.max_body = max_body;
        req.aws_sigv4 = q->sigv4;
        req.username = c->key_id;
        req.password = c->secret;
        req.pool = q->pool;
        req.finish_on_stop = writing;
        mark = td_freeze_mark();
        rc = td_httpc_do(&req, &resp, sub, sizeof sub);
        /* The process was frozen while the request was out (SCF between
         * invocations): libcurl counted the frozen time against its
         * timeout and gave up on an answer that may well be waiting.  That
         * is no outage of the service: asked again, once, at once.  A
         * write sent twice is safe -- conditional, it finds its own first
         * copy (412) and the caller reads again. */
        if ((rc == TD_ETIMEOUT || rc == TD_EHTTP) && td_freeze_since(mark))
            rc = td_httpc_do(&req, &resp, sub, sizeof sub);
        if (rc != TD_OK) {
            creds_release(c);
            if (rc == TD_ETOOBIG) {
                say(err, errlen, "S3 存储 %s 中的对象 %s 大于 %zu 字节 (不是 tokendist 写入的?)", q->base,
                    key_of(q, rel, key, sizeof key), max_body);
                note_health(q, TD_OK, NULL);
                return TD_ETOOBIG;
            }
            /* The URL names only the bucket and key: no secret in it. */
            say(err, errlen, "S3 存储 %s 无法访问: %s", q->base, sub);
            note_health(q, TD_EUNAVAIL, err);
            return TD_EUNAVAIL;
        }
        r->status = resp.status;
        r->body = resp.body, resp.body = NULL;
        r->len = resp.body_len;
        if (!td_httpc_header(&resp, "ETag", r->etag, sizeof r->etag)) r->etag[0] = '\0';
        r->date_ms = td_httpc_date(&resp) * 1000;
        if (!r->date_ms) r->date_ms = td_clock_now_ms();
        {
            char cr[100];
            const char *slash;
            r->total = -1;
            if (td_httpc_header(&resp, "Content-Range", cr, sizeof cr) && (slash = strchr(cr, '/')))
                r->total = strtoll(slash + 1, NULL, 10);
        }
        td__s3_error_of(r->body, r->len, r->code, sizeof r->code, msg, sizeof msg);
        td_httpc_resp_clear(&resp);

        if ((r->status >= 200 && r->status < 300) || r->status == 304 || r->status == 409 || r->status == 412 ||
            (r->status == 404 && strcmp(r->code, "NoSuchBucket") != 0)) {
            creds_release(c);
            note_health(q, TD_OK, NULL);
            return TD_OK;
        }
        /* Refused credentials: the file may hold newer ones by now. */
        if (attempt == 0 && (r->status == 400 || r->status == 401 || r->status == 403) &&
            refused_credentials(r->code)) {
            s3_creds *fresh = creds_hold(q, 1);
            if (fresh != c) {
                creds_release(c);
                c = fresh;
                resp_clear(r);
                continue;
            }
            creds_release(fresh);
        }
        break;
    }
    if (r->status >= 500 || r->status == 429 || !strcmp(r->code, "SlowDown")) {
        say(err, errlen, "S3 存储 %s 暂时无法处理请求 (HTTP %ld %s)", q->base, r->status, r->code);
        rc = TD_EUNAVAIL;
    } else if (r->status == 401 || r->status == 403 ||
               (r->status == 400 && (!strcmp(r->code, "AuthorizationHeaderMalformed") ||
                                     !strcmp(r->code, "InvalidToken") || !strcmp(r->code, "ExpiredToken") ||
                                     !strcmp(r->code, "TokenExpired") || !strcmp(r->code, "RequestTimeTooSkewed")))) {
        rc = auth_error(q, c, r->status, r->code, msg, err, errlen);
    } else if (r->status == 404) {
        say(err, errlen, "S3 存储桶 %s 不存在 (NoSuchBucket)：请先创建它，或检查存储 URL 与 TOKENDIST_S3_ENDPOINT",
                 q->u.bucket);
        rc = TD_EIO;
    } else {
        say(err, errlen, "S3 存储 %s 对 %s %s 的应答是 HTTP %ld %s%s%.150s", q->base, method,
            key_of(q, rel, key, sizeof key), r->status, r->code, *msg ? ": " : "", msg);
        rc = TD_EIO;
    }
    creds_release(c);
    note_health(q, rc, err);
    resp_clear(r);
    return rc;
}

static int s3_call(s3_store *q, const char *method, const char *rel, const char *body, size_t len,
                   const char *const *extra, size_t max_body, s3_resp *r, char *err, size_t errlen)
{
    return s3_call_t(q, REQUEST_MS, method, rel, body, len, extra, max_body, r, err, errlen);
}

/* A GET of rel, conditional on the ETag inm when there is one ("" or
 * NULL: none), with a body of at most max.  An object over max is
 * TD_ETOOBIG with its ETag in r->etag, learnt by a second read of its
 * first bytes (a range read: GetObject, the only read permission the
 * store asks for): the next read, conditional on it, is then a 304 instead of
 * another megabyte cut off -- every round, for as long as the object
 * stays there. */
static int get_object(s3_store *q, const char *rel, const char *inm, size_t max, s3_resp *r, char *err,
                      size_t errlen)
{
    /* Two bytes, not one: s3rver (the tests' S3) reads an end of 0 as none. */
    static const char *const two_bytes[] = {"Range: bytes=0-1", NULL};
    char hdr[TAG_MAX + 20];
    const char *cond[2] = {NULL, NULL};
    int rc;

    if (inm && *inm) {
        snprintf(hdr, sizeof hdr, "If-None-Match: %s", inm);
        cond[0] = hdr;
    }
    if ((rc = s3_call(q, "GET", rel, NULL, 0, cond, max, r, err, errlen)) != TD_ETOOBIG) return rc;
    {
        s3_resp probe;
        char sub[MSG_MAX];
        if (s3_call(q, "GET", rel, NULL, 0, two_bytes, 4096, &probe, sub, sizeof sub) == TD_OK) {
            /* Replaced between the two reads by an object that fits:
             * no ETag, so that the next read gets it whole. */
            if (probe.status == 206 && probe.total > (int64_t)max)
                snprintf(r->etag, sizeof r->etag, "%s", probe.etag);
            resp_clear(&probe);
        }
    }
    return TD_ETOOBIG;
}

/* Whether a conditional write lost: another writer came between our read
 * and our write (412; 409 on COS for x-cos-forbid-overwrite and on S3 for
 * two conditional writes at once; 404 when If-Match met a deleted object). */
static int lost_race(const s3_resp *r) { return r->status == 412 || r->status == 409 || r->status == 404; }

/* The header lines that make a write conditional on what was read: the
 * ETag it had, or that there was none.  Headers the service refused are
 * left out (then the write is last-writer-wins, as logged at open). */
static void cond_headers(const s3_store *q, const char *etag, char buf[TAG_MAX + 16], const char *out[3])
{
    size_t n = 0;

    if (etag && *etag) {
        if (q->if_match >= 0) {
            snprintf(buf, TAG_MAX + 16, "If-Match: %s", etag);
            out[n++] = buf;
        }
    } else {
        if (q->if_none_match >= 0) out[n++] = "If-None-Match: *";
        out[n++] = "x-cos-forbid-overwrite: true";
    }
    out[n] = NULL;
}

/* --- records, index and cache ------------------------------------------- */

static int valid_name(const char *name) { return name && td_record_name_valid(name, strlen(name)); }

static void rel_of(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s.json", dir, name);
}

/* An entry from a record object's body.  What another tool wrote there is
 * not a failure of the store: the entry comes back with its problem said. */
static int entry_from(const char *name, const char *body, size_t len, td_store_entry *e)
{
    json_error_t je;
    json_t *o = NULL, *g, *x;
    char problem[300] = "", why[200];

    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return TD_ENOMEM;
    if (memchr(body, '\0', len)) snprintf(problem, sizeof problem, "对象中有 NUL 字节");
    else if (!(o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)))
        snprintf(problem, sizeof problem, "不是 JSON (%s)", td_record_json_error(&je, why, sizeof why));
    else if (!json_is_object(o)) snprintf(problem, sizeof problem, "不是 JSON 对象");
    else if (g = json_object_get(o, "generated_timestamp"), x = json_object_get(o, "expire_timestamp"),
             !json_is_integer(g) || !json_is_integer(x))
        snprintf(problem, sizeof problem, "缺少整数字段 generated_timestamp 或 expire_timestamp");
    else {
        e->generated_ts = (int64_t)json_integer_value(g);
        e->expire_ts = (int64_t)json_integer_value(x);
    }
    json_decref(o);
    if (*problem) return (e->problem = strdup(problem)) ? TD_OK : (td_store_entry_clear(e), TD_ENOMEM);
    if (!(e->json = malloc(len + 1))) {
        td_store_entry_clear(e);
        return TD_ENOMEM;
    }
    memcpy(e->json, body, len);
    e->json[len] = '\0';
    e->json_len = len;
    return TD_OK;
}

static int entry_copy(td_store_entry *dst, const td_store_entry *src)
{
    memset(dst, 0, sizeof *dst);
    dst->generated_ts = src->generated_ts;
    dst->expire_ts = src->expire_ts;
    dst->json_len = src->json_len;
    if (!(dst->name = strdup(src->name)) || (src->problem && !(dst->problem = strdup(src->problem))) ||
        (src->json && !(dst->json = malloc(src->json_len + 1)))) {
        td_store_entry_clear(dst);
        return TD_ENOMEM;
    }
    if (src->json) memcpy(dst->json, src->json, src->json_len + 1);
    return TD_OK;
}

/* lock held */
static cached *cache_find(s3_store *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++)
        if (!strcmp(q->v[i].e.name, name)) return &q->v[i];
    return NULL;
}

/* Replaces name's cached record with a copy of e (lock held). */
static int cache_put(s3_store *q, const td_store_entry *e, const char *etag)
{
    cached *c = cache_find(q, e->name), fresh;

    if (entry_copy(&fresh.e, e) != TD_OK) return TD_ENOMEM;
    snprintf(fresh.etag, sizeof fresh.etag, "%s", etag);
    snprintf(fresh.told, sizeof fresh.told, "%s", c ? c->told : "");
    fresh.checked_ms = td_clock_mono_ms();
    if (!c) {
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 8;
            cached *nv = realloc(q->v, cap * sizeof *nv);
            if (!nv) {
                td_store_entry_clear(&fresh.e);
                return TD_ENOMEM;
            }
            q->v = nv, q->cap = cap;
        }
        c = &q->v[q->n++];
    } else {
        td_store_entry_clear(&c->e);
    }
    *c = fresh;
    return TD_OK;
}

/* lock held */
static void cache_drop(s3_store *q, const char *name)
{
    cached *c = cache_find(q, name);
    if (!c) return;
    td_store_entry_clear(&c->e);
    *c = q->v[--q->n];
}

static s3_name *name_find(s3_store *q, const char *name);

/* Notes whether name has a record in the bucket: has 1 after a read
 * found one or a write stored one, 0 after a read found none (lock
 * held).  Only a name with a record is written back into an index that
 * lost it (names_tidy). */
static void rec_note(s3_store *q, const char *name, int has)
{
    s3_name *s = name_find(q, name);
    if (s) s->rec = has != 0;
}

/* name's record: from the cache when the service confirmed it within
 * max_age_ms, else by a GET conditional on the cached ETag (304: the
 * cached one stands).  etag (optional) receives its ETag.  tell: the
 * record goes to the API (get, list), which is remembered; *changed
 * (optional) says whether the record differs from what the API last got
 * (a record gone counts).  An object too big to be a record is one
 * unreadable record, as one that is not JSON: TD_OK with the problem set,
 * never an error that would stop the reading of the others. */
static int read_record(s3_store *q, const char *name, int64_t max_age_ms, int tell, td_store_entry *out,
                       char etag[TAG_MAX], int *changed, char *err, size_t errlen)
{
    char rel[TD_NAME_MAX + 16], prev[TAG_MAX] = "";
    cached *c;
    s3_resp r;
    td_store_entry fresh;
    int rc = TD_OK, had;

    if (changed) *changed = 0;
    pthread_mutex_lock(&q->lock);
    if ((c = cache_find(q, name))) {
        snprintf(prev, sizeof prev, "%s", c->etag);
        if (max_age_ms > 0 && td_clock_mono_ms() - c->checked_ms < max_age_ms) {
            if (etag) snprintf(etag, TAG_MAX, "%s", c->etag);
            if ((rc = entry_copy(out, &c->e)) == TD_OK && tell) snprintf(c->told, sizeof c->told, "%s", c->etag);
            pthread_mutex_unlock(&q->lock);
            return rc;
        }
    }
    had = c != NULL;
    pthread_mutex_unlock(&q->lock);

    rel_of(rel, sizeof rel, "tokens", name);
    for (int pass = 0, again = 1; again && pass < 2; pass++) {
        int toobig;
        again = 0;
        rc = get_object(q, rel, prev, JSON_MAX, &r, err, errlen);
        if (rc != TD_OK && rc != TD_ETOOBIG) return rc;
        toobig = rc == TD_ETOOBIG;
        rc = TD_OK;
        pthread_mutex_lock(&q->lock);
        if (toobig) {
            memset(&fresh, 0, sizeof fresh);
            if (!(fresh.name = strdup(name)) || asprintf(&fresh.problem, "对象大于 %u 字节 (不是 tokendist 写入的?)", JSON_MAX) < 0) {
                fresh.problem = NULL;
                td_store_entry_clear(&fresh);
                rc = TD_ENOMEM;
            } else {
                if (etag) snprintf(etag, TAG_MAX, "%s", r.etag);
                if ((rc = cache_put(q, &fresh, r.etag)) == TD_OK) *out = fresh;
                else td_store_entry_clear(&fresh);
            }
        } else if (r.status == 304 && (c = cache_find(q, name))) {
            c->checked_ms = td_clock_mono_ms();
            if (etag) snprintf(etag, TAG_MAX, "%s", c->etag);
            rc = entry_copy(out, &c->e);
        } else if (r.status == 304 && pass == 0) { /* a put dropped it from the cache meanwhile */
            prev[0] = '\0', again = 1;
        } else if (r.status == 200) {
            if ((rc = entry_from(name, r.body ? r.body : "", r.len, &fresh)) == TD_OK) {
                if (etag) snprintf(etag, TAG_MAX, "%s", r.etag);
                if ((rc = cache_put(q, &fresh, r.etag)) == TD_OK) *out = fresh;
                else td_store_entry_clear(&fresh);
            }
        } else if (r.status == 404) {
            cache_drop(q, name);
            rec_note(q, name, 0);
            if (changed) *changed = had;
            rc = TD_ENOTFOUND;
        } else {
            char key[KEY_MAX];
            say(err, errlen, "S3 存储 %s 对 GET %s 的应答是 HTTP %ld", q->base, key_of(q, rel, key, sizeof key), r.status);
            rc = TD_EIO;
        }
        if (rc == TD_OK && (c = cache_find(q, name))) {
            rec_note(q, name, 1);
            if (tell) snprintf(c->told, sizeof c->told, "%s", c->etag);
            if (changed) *changed = strcmp(c->told, c->etag) != 0;
        }
        pthread_mutex_unlock(&q->lock);
        resp_clear(&r);
    }
    if (rc == TD_ENOMEM) say(err, errlen, "内存不足");
    return rc;
}

/* --- the index ------------------------------------------------------------ */

void td__s3_version_of(const char *etag, char out[TD_S3_VERSION_LEN])
{
    char hex[65];

    out[0] = '\0';
    if (!etag || !*etag) return; /* a service that gives no ETag: no version, the sweep finds changes */
    td__s3_sha256_hex(etag, strlen(etag), hex);
    memcpy(out, hex, TD_S3_VERSION_LEN - 1);
    out[TD_S3_VERSION_LEN - 1] = '\0';
}

void td__s3_index_free(td__s3_index_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i].name);
    free(v);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const td__s3_index_entry *)a)->name, ((const td__s3_index_entry *)b)->name);
}

static int version_valid(const char *v)
{
    size_t n = strlen(v);
    return n >= 1 && n < TD_S3_VERSION_LEN && strspn(v, "0123456789abcdef") == n;
}

int td__s3_index_parse(const char *body, size_t len, td__s3_index_entry **out, size_t *n, int *bad)
{
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *arr = json_object_get(o, "names");
    json_t *vers = json_object_get(o, "versions"), *it;
    td__s3_index_entry *v = NULL;
    size_t cnt = 0, w = 0, i;

    *out = NULL, *n = 0, *bad = !json_is_array(arr);
    if (!json_is_object(vers)) vers = NULL; /* names without versions: still an index */
    if (!*bad && json_array_size(arr) && !(v = calloc(json_array_size(arr), sizeof *v))) goto nomem;
    json_array_foreach(arr, i, it) {
        const char *s = json_string_value(it), *ver;
        if (!s || !*s || json_string_length(it) != strlen(s)) continue;
        if (!(v[cnt].name = strndup(s, TD_NAME_MAX * 4))) goto nomem;
        ver = json_string_value(json_object_get(vers, s));
        if (ver && version_valid(ver)) memcpy(v[cnt].version, ver, strlen(ver) + 1);
        cnt++;
    }
    json_decref(o);
    if (cnt) qsort(v, cnt, sizeof *v, cmp_entry);
    for (i = 0; i < cnt; i++) { /* a name twice: once */
        if (w && !strcmp(v[w - 1].name, v[i].name)) free(v[i].name);
        else v[w++] = v[i];
    }
    *out = v, *n = w;
    return TD_OK;
nomem:
    td__s3_index_free(v, cnt);
    json_decref(o);
    return TD_ENOMEM;
}

/* Where name is, or would go, in q->names (lock held). */
static size_t name_at(const s3_store *q, const char *name, int *found)
{
    size_t lo = 0, hi = q->nnames;

    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(q->names[mid].name, name);
        if (!c) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* lock held */
static s3_name *name_find(s3_store *q, const char *name)
{
    int found;
    size_t i = name_at(q, name, &found);
    return found ? &q->names[i] : NULL;
}

/* name's entry, learnt now when it is new (lock held).  NULL: out of
 * memory, or NAMES_KEPT_MAX names known already (another tool's index:
 * the rest is not kept). */
static s3_name *name_learn(s3_store *q, const char *name)
{
    int found;
    size_t i = name_at(q, name, &found);
    s3_name fresh = {0};

    if (found) return &q->names[i];
    if (q->nnames >= NAMES_KEPT_MAX) return NULL;
    if (q->nnames == q->names_cap) {
        size_t cap = q->names_cap ? q->names_cap * 2 : 16;
        s3_name *nv = realloc(q->names, cap * sizeof *nv);
        if (!nv) return NULL;
        q->names = nv, q->names_cap = cap;
    }
    if (!(fresh.name = strdup(name))) return NULL;
    memmove(&q->names[i + 1], &q->names[i], (q->nnames - i) * sizeof *q->names);
    q->names[i] = fresh;
    q->nnames++;
    return &q->names[i];
}

/* Learns the names of an index (backup 0: with their versions) or of its
 * backup: only these are in it now (lock held). */
static int names_learn(s3_store *q, const td__s3_index_entry *v, size_t n, int backup)
{
    for (size_t i = 0; i < q->nnames; i++) {
        if (backup) q->names[i].in_backup = 0;
        else q->names[i].in_index = 0;
    }
    for (size_t i = 0; i < n; i++) {
        s3_name *s = name_learn(q, v[i].name);
        if (!s) {
            if (q->nnames >= NAMES_KEPT_MAX) break;
            return TD_ENOMEM;
        }
        if (backup) {
            s->in_backup = 1;
        } else {
            s->in_index = 1;
            memcpy(s->version, v[i].version, sizeof s->version);
        }
    }
    return TD_OK;
}

/* Whether s goes into the index (backup 0) or its backup when this
 * instance writes it, name being the one written now (lock held).  A
 * name with a record always does: that is what a rebuild is for.  A
 * good index keeps every name it gives (its record may be under way: the
 * index is written first), and the backup every name it has.  Rebuilding
 * an index that is spoiled or gone, the names it or the backup gave go
 * back unless this instance read their record and found none.  What is
 * left -- names another tool added, that the operator removed, without a
 * record -- is not written back. */
static int name_kept(const s3_store *q, const s3_name *s, const char *name, int backup)
{
    if (s->rec || (name && !strcmp(s->name, name))) return 1;
    if (backup && s->in_backup) return 1;
    if (!q->index_bad && q->index_etag[0]) return s->in_index;
    return (s->in_index || s->in_backup) && !s->read;
}

/* The body of index.json -- or, versions 0, of its backup: every name
 * kept (name_kept), sorted, with name's version ver (NULL: as known);
 * marks them carried (lock and wlock held).  NULL: out of memory. */
static char *index_body(s3_store *q, const char *name, const char *ver, int versions)
{
    json_t *o = json_object(), *names = json_array(), *vs = versions ? json_object() : NULL;
    char *body = NULL;

    if (!o || !names || (versions && !vs)) goto out;
    for (size_t i = 0; i < q->nnames; i++) {
        s3_name *s = &q->names[i];
        const char *v = ver && name && !strcmp(s->name, name) ? ver : s->version;
        if (!(s->carried = name_kept(q, s, name, !versions))) continue;
        if (json_array_append_new(names, json_string(s->name)) != 0) goto out;
        if (vs && *v && json_object_set_new(vs, s->name, json_string(v)) != 0) goto out;
    }
    if (json_object_set(o, "names", names) != 0 || (vs && json_object_set(o, "versions", vs) != 0)) goto out;
    body = json_dumps(o, JSON_COMPACT);
out:
    json_decref(vs);
    json_decref(names);
    json_decref(o);
    return body;
}

/* Reads index.backup.json again (conditional on its ETag: a 304 leaves
 * the names as they are) into the names known, which it names now and
 * only these; etag (optional) gets its ETag, "" when there is none.  A
 * backup that is not ours, or gone, names nothing (and is written again
 * by the next sync). */
static int backup_read(s3_store *q, char etag[TAG_MAX], char *err, size_t errlen)
{
    td__s3_index_entry *v = NULL;
    size_t n = 0;
    char prev[TAG_MAX];
    s3_resp r;
    int rc, bad = 0, toobig;

    pthread_mutex_lock(&q->lock);
    snprintf(prev, sizeof prev, "%s", q->backup_etag);
    pthread_mutex_unlock(&q->lock);
    if (etag) etag[0] = '\0';
    rc = get_object(q, BACKUP_REL, prev, INDEX_MAX, &r, err, errlen);
    if (rc != TD_OK && rc != TD_ETOOBIG) return rc;
    toobig = rc == TD_ETOOBIG;
    if (rc == TD_OK && r.status == 304) {
        if (etag) snprintf(etag, TAG_MAX, "%s", prev);
        resp_clear(&r);
        return TD_OK;
    }
    if (rc == TD_OK && r.status != 200 && r.status != 404) {
        char key[KEY_MAX];
        say(err, errlen, "S3 存储 %s 对 GET %s 的应答是 HTTP %ld", q->base, key_of(q, BACKUP_REL, key, sizeof key),
            r.status);
        resp_clear(&r);
        return TD_EIO;
    }
    if (rc == TD_OK && r.status == 200)
        rc = td__s3_index_parse(r.body ? r.body : "", r.len, &v, &n, &bad);
    else
        rc = TD_OK; /* too big or gone: names nothing */
    if (rc == TD_OK) {
        pthread_mutex_lock(&q->lock);
        rc = names_learn(q, v, n, 1);
        snprintf(q->backup_etag, sizeof q->backup_etag, "%s", toobig || r.status == 200 ? r.etag : "");
        pthread_mutex_unlock(&q->lock);
        if (etag) snprintf(etag, TAG_MAX, "%s", toobig || r.status == 200 ? r.etag : "");
    }
    td__s3_index_free(v, n);
    resp_clear(&r);
    if (rc == TD_ENOMEM) say(err, errlen, "内存不足");
    return rc;
}

/* Reads index.json again (conditional on its ETag) into the names known.
 * One that is not ours -- spoiled by another tool, or too big to be ours
 * -- or that is gone is said once, and its backup gives the names
 * meanwhile: a cold start serves them all, and the next write rebuilds
 * the index whole. */
static int index_refresh(s3_store *q, char *err, size_t errlen)
{
    char prev[TAG_MAX], key[KEY_MAX], sub[MSG_MAX];
    td__s3_index_entry *v = NULL;
    size_t n = 0;
    s3_resp r;
    int rc, bad = 0, toobig, look;
    unsigned long gen;

    pthread_mutex_lock(&q->lock);
    snprintf(prev, sizeof prev, "%s", q->index_etag);
    gen = q->index_gen;
    pthread_mutex_unlock(&q->lock);
    rc = get_object(q, "index.json", prev, INDEX_MAX, &r, err, errlen);
    if (rc != TD_OK && rc != TD_ETOOBIG) return rc;
    if (!(toobig = rc == TD_ETOOBIG) && r.status == 304) {
        resp_clear(&r);
        return TD_OK;
    }
    if (!toobig && r.status != 200 && r.status != 404) {
        say(err, errlen, "S3 存储 %s 对 GET %s 的应答是 HTTP %ld", q->base, key_of(q, "index.json", key, sizeof key),
            r.status);
        resp_clear(&r);
        return TD_EIO;
    }
    if (toobig) bad = 1;
    else if (r.status == 200 && (rc = td__s3_index_parse(r.body ? r.body : "", r.len, &v, &n, &bad)) != TD_OK) {
        resp_clear(&r);
        say(err, errlen, "内存不足");
        return rc;
    }
    pthread_mutex_lock(&q->lock);
    if (gen != q->index_gen) { /* our own write came after this read began: it knows better */
        pthread_mutex_unlock(&q->lock);
        td__s3_index_free(v, n);
        resp_clear(&r);
        return TD_OK;
    }
    if (bad && !q->index_bad)
        td_log("❌ S3 存储 %s 中的索引 %s %s：先用备份 %s 中的名称，下一次写入会重建索引", q->base,
               key_of(q, "index.json", key, sizeof key),
               toobig ? "大于 256 KiB，不是 tokendist 写入的" : "不是 tokendist 写入的 {\"names\": [...]}",
               key_of(q, BACKUP_REL, sub, sizeof sub));
    look = (bad || r.status == 404) && !q->backup_looked;
    q->backup_looked = bad || r.status == 404;
    q->index_bad = bad;
    rc = bad ? TD_OK : names_learn(q, v, n, 0);
    snprintf(q->index_etag, sizeof q->index_etag, "%s", toobig || r.status == 200 ? r.etag : "");
    pthread_mutex_unlock(&q->lock);
    td__s3_index_free(v, n);
    resp_clear(&r);
    if (rc != TD_OK) {
        say(err, errlen, "内存不足");
        return rc;
    }
    /* No index we can read (a start on a spoiled or lost one, a spoil):
     * the backup's names, once until the index is good again. */
    return look ? backup_read(q, NULL, err, errlen) : TD_OK;
}

/* Whether the backup lacks a name it should have (lock held). */
static int backup_lacking(const s3_store *q, const char *name)
{
    for (size_t i = 0; i < q->nnames; i++)
        if (!q->names[i].in_backup && name_kept(q, &q->names[i], name, 1)) return 1;
    return 0;
}

/* Makes index.backup.json name every name kept (name_kept), name -- the
 * one being written, or NULL -- among them: read (conditional), merge,
 * and write when it lacks any (a compare-and-swap like the index's).  It
 * is brought up before the index whenever the names grow, and by the
 * watcher when it finds the backup gone (names_tidy), so it names every
 * name with a record that an index ever named: a spoiled index is rebuilt
 * whole from it.  wlock held. */
static int backup_sync(s3_store *q, const char *name, char *err, size_t errlen)
{
    for (int t = 0; t < TRIES; t++) {
        char etag[TAG_MAX], cbuf[TAG_MAX + 16], *body = NULL;
        const char *cond[3];
        int lacking = 0, rc, lost;
        s3_resp r;

        if ((rc = backup_read(q, etag, err, errlen)) != TD_OK) return rc;
        pthread_mutex_lock(&q->lock);
        if ((lacking = backup_lacking(q, name))) body = index_body(q, name, NULL, 0);
        pthread_mutex_unlock(&q->lock);
        if (!lacking) return TD_OK;
        if (!body) {
            say(err, errlen, "内存不足");
            return TD_ENOMEM;
        }
        cond_headers(q, etag, cbuf, cond);
        rc = s3_call(q, "PUT", BACKUP_REL, body, strlen(body), cond, 4096, &r, err, errlen);
        free(body);
        if (rc != TD_OK) return rc;
        lost = lost_race(&r);
        if (!lost) { /* it names what we wrote, under the ETag it got */
            pthread_mutex_lock(&q->lock);
            for (size_t i = 0; i < q->nnames; i++) q->names[i].in_backup = q->names[i].carried;
            snprintf(q->backup_etag, sizeof q->backup_etag, "%s", r.etag);
            pthread_mutex_unlock(&q->lock);
            resp_clear(&r);
            return TD_OK;
        }
        resp_clear(&r);
    }
    say(err, errlen, "S3 存储 %s 的索引备份被其他写入者反复改动，请稍后重试", q->base);
    return TD_EUNAVAIL;
}

/* Makes index.json name name -- with its record's version ver, unless
 * NULL -- and every other name kept (name_kept): a compare-and-swap on
 * its ETag, like a record's.  An index that lost names with a record
 * (spoiled, or overwritten on a service that ignores If-Match) is
 * rebuilt whole by the next write; names without one that it no longer
 * gives are not put back.  When the names grow, the backup is brought up
 * first.  TD_ETOOBIG: a new name while NAMES_MAX are known.  wlock held. */
static int index_put(s3_store *q, const char *name, const char *ver, char *err, size_t errlen)
{
    char key[KEY_MAX], sub[KEY_MAX];
    s3_name *n;
    int rc;

    pthread_mutex_lock(&q->lock);
    n = name_find(q, name);
    rc = !ver && n && n->in_index && !q->index_bad; /* a cached yes stands: the watcher reads the index */
    pthread_mutex_unlock(&q->lock);
    if (rc) return TD_OK;
    for (int t = 0; t < TRIES; t++) {
        char etag[TAG_MAX], cbuf[TAG_MAX + 16], *body = NULL;
        const char *cond[3];
        int need = 0, grow = 0, lost, known;
        s3_resp r;

        /* A version after our own write is likely to follow the index as
         * this instance last had it: written at once, conditional on that
         * (a 412 costs the read it saved).  Anything else reads first. */
        pthread_mutex_lock(&q->lock);
        known = ver && t == 0 && q->if_match == 1 && q->index_etag[0] && !q->index_bad && name_find(q, name);
        pthread_mutex_unlock(&q->lock);
        if (!known && (rc = index_refresh(q, err, errlen)) != TD_OK) return rc;
        pthread_mutex_lock(&q->lock);
        if (!(n = name_find(q, name))) {
            if (q->nnames >= NAMES_MAX) {
                pthread_mutex_unlock(&q->lock);
                say(err, errlen, "S3 存储 %s 的索引已有 %d 个名称：其中不是 tokendist 写入的 (没有记录的) 名称，"
                    "请从 %s 中删掉，并删掉 %s：运行中的实例在一轮轮检后忘掉它们", q->base, NAMES_MAX,
                    key_of(q, "index.json", key, sizeof key), key_of(q, BACKUP_REL, sub, sizeof sub));
                return TD_ETOOBIG;
            }
            if (!(n = name_learn(q, name))) {
                pthread_mutex_unlock(&q->lock);
                say(err, errlen, "内存不足");
                return TD_ENOMEM;
            }
        }
        need = q->index_bad || !n->in_index || (ver && strcmp(n->version, ver) != 0);
        for (size_t i = 0; i < q->nnames && !need; i++)
            need = !q->names[i].in_index && name_kept(q, &q->names[i], name, 0);
        grow = backup_lacking(q, name);
        snprintf(etag, sizeof etag, "%s", q->index_etag);
        pthread_mutex_unlock(&q->lock);
        if (!need) return TD_OK;
        if (grow && (rc = backup_sync(q, name, err, errlen)) != TD_OK) return rc;
        pthread_mutex_lock(&q->lock);
        body = index_body(q, name, ver, 1);
        pthread_mutex_unlock(&q->lock);
        if (!body) {
            say(err, errlen, "内存不足");
            return TD_ENOMEM;
        }
        if (strlen(body) > INDEX_MAX) { /* only with another tool's names */
            free(body);
            say(err, errlen, "S3 存储 %s 的索引 %s 将大于 %u 字节：其中有太多不是 tokendist 写入的名称。"
                "请把它改写为只含有记录的名称 (或删掉它)，并删掉 %s：运行中的实例在一轮轮检后忘掉没有记录的名称，"
                "只把有记录的写回", q->base, key_of(q, "index.json", key, sizeof key), INDEX_MAX,
                key_of(q, BACKUP_REL, sub, sizeof sub));
            return TD_ETOOBIG;
        }
        cond_headers(q, etag, cbuf, cond);
        rc = s3_call(q, "PUT", "index.json", body, strlen(body), cond, 4096, &r, err, errlen);
        free(body);
        if (rc != TD_OK) return rc;
        lost = lost_race(&r);
        if (!lost) { /* ours now: what we wrote, under the ETag it got */
            pthread_mutex_lock(&q->lock);
            for (size_t i = 0; i < q->nnames; i++) q->names[i].in_index = q->names[i].carried;
            if (ver && (n = name_find(q, name))) memcpy(n->version, ver, sizeof n->version);
            if (q->index_bad) td_log("✅ S3 存储 %s 的索引已重建", q->base);
            q->index_bad = 0;
            q->index_gen++;
            snprintf(q->index_etag, sizeof q->index_etag, "%s", r.etag);
            pthread_mutex_unlock(&q->lock);
        }
        resp_clear(&r);
        if (!lost) return TD_OK;
    }
    say(err, errlen, "S3 存储 %s 的索引被其他写入者反复改动，请稍后重试", q->base);
    return TD_EUNAVAIL;
}

/* The sweep came to the backup: reads it again (conditional) and, while
 * the index is good, forgets the names that neither it nor the backup
 * gives and that have no record -- another tool's names an operator
 * removed, which would otherwise go back into every index this instance
 * writes -- then writes the backup again when it lacks a name (gone: a
 * lifecycle rule, a migration that copied index.json and tokens/ only):
 * the promise that a spoiled index loses no name needs it.  Skipped while
 * a put holds wlock (it would wait for the put), and tried again the
 * next round. */
static void names_tidy(s3_store *q)
{
    char err[MSG_MAX];
    int rc;

    if (pthread_mutex_trylock(&q->wlock) != 0) return;
    if ((rc = backup_read(q, NULL, err, sizeof err)) == TD_OK) {
        size_t w = 0;
        pthread_mutex_lock(&q->lock);
        for (size_t i = 0; i < q->nnames; i++) {
            s3_name *s = &q->names[i];
            if (!q->index_bad && q->index_etag[0] && !s->rec && !s->in_index && !s->in_backup) {
                cache_drop(q, s->name);
                free(s->name);
                continue;
            }
            q->names[w++] = *s;
        }
        q->nnames = w;
        pthread_mutex_unlock(&q->lock);
        rc = backup_sync(q, NULL, err, sizeof err);
    }
    pthread_mutex_lock(&q->lock);
    if (rc == TD_OK) q->backup_due = 0;
    if (rc != TD_OK && rc != TD_EUNAVAIL && !q->backup_failed) /* an outage is said by note_health */
        td_log("⚠️ S3 存储 %s: 无法重写索引备份 (%s)：下一轮再试", q->base, err);
    q->backup_failed = rc != TD_OK && rc != TD_EUNAVAIL;
    pthread_mutex_unlock(&q->lock);
    pthread_mutex_unlock(&q->wlock);
}

/* --- the store ------------------------------------------------------------- */

static int s3_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen);

static void s3_close(td_store *s)
{
    s3_store *q = s->impl;
    char err[64];

    if (!q) return;
    s3_watch(s, NULL, NULL, err, sizeof err);
    for (size_t i = 0; i < q->n; i++) td_store_entry_clear(&q->v[i].e);
    free(q->v);
    for (size_t i = 0; i < q->nnames; i++) free(q->names[i].name);
    free(q->names);
    td_httpc_pool_free(q->pool);
    creds_release(q->creds);
    pthread_mutex_destroy(&q->cred_lock);
    pthread_mutex_destroy(&q->wlock);
    pthread_mutex_destroy(&q->lock);
    pthread_mutex_destroy(&q->cb_lock);
    pthread_cond_destroy(&q->wcond);
    free(q);
    s->impl = NULL;
}

/* Whether the service honours the conditions of our writes: probe.json is
 * written plainly, then with a wrong If-Match, then as a create
 * (If-None-Match: * and COS's x-cos-forbid-overwrite, as every create is
 * sent).  Honoured: 412 (409 on COS).  Ignored: 200 -- then the lost races
 * that the conditions exist for cannot be seen, and we say so: in the log
 * once, and as the caveat /readyz shows for as long as the process runs
 * (an SCF instance's log line is read by nobody).  Refused as not
 * implemented (400/501): If-Match / If-None-Match is not sent again. */
static void probe_conditions(s3_store *q)
{
    static const char *const wrong_match[] = {"If-Match: \"tokendist-probe-never-an-etag\"", NULL};
    static const char *const create[] = {"If-None-Match: *", "x-cos-forbid-overwrite: true", NULL};
    const char *const *conds[2] = {wrong_match, create};
    int *flags[2] = {&q->if_match, &q->if_none_match};
    const char *said[2];
    char body[128], err[MSG_MAX];
    s3_resp r;

    snprintf(body, sizeof body, "{\"probe\": \"tokendist\", \"time\": %" PRId64 "}", td_clock_now());
    q->if_match = q->if_none_match = 2;
    if (s3_call(q, "PUT", "probe.json", body, strlen(body), NULL, 4096, &r, err, sizeof err) != TD_OK) {
        say(q->caveat, sizeof q->caveat, "S3 存储 %s 启动时不接受写入 (%s)：POST 与刷新租约都会失败，只能读取",
            q->base, err);
        td_log("⚠️ %s", q->caveat);
        return;
    }
    resp_clear(&r);
    for (int i = 0; i < 2; i++) {
        int rc = s3_call(q, "PUT", "probe.json", body, strlen(body), conds[i], 4096, &r, err, sizeof err);
        if (rc == TD_OK) *flags[i] = lost_race(&r) ? 1 : 0;
        else if (rc == TD_EIO) *flags[i] = -1; /* 400/501 NotImplemented */
        resp_clear(&r);
        said[i] = *flags[i] == 1 ? "遵守" : *flags[i] == 0 ? "被忽略" : *flags[i] < 0 ? "被拒绝" : "未知";
    }
    if (q->if_match != 1 || q->if_none_match != 1) {
        say(q->caveat, sizeof q->caveat,
            "S3 存储 %s 不遵守条件写入 (更新的 If-Match %s，创建的 If-None-Match/x-cos-forbid-overwrite %s)："
            "两个写入者同时写入时，较旧的记录可能覆盖较新的，租约也可能同时被两个实例持有；"
            "请只让一个实例写入 (一个刷新者，见 docs/deploy-scf.md)", q->base, said[0], said[1]);
        td_log("⚠️ %s", q->caveat);
    }
}

/* What /readyz shows beside "store": "ok" (store.h). */
static int s3_warning(td_store *s, char *buf, size_t len)
{
    s3_store *q = s->impl;
    td_strbuf b;

    if (!q->caveat[0]) return 0; /* written once at open, before anyone asks */
    td_strbuf_fixed(&b, buf, len);
    td_strbuf_append_cut(&b, q->caveat, 0);
    return 1;
}

static int s3_check(const char *spec, char *err, size_t errlen)
{
    td__s3_url u;
    return td__s3_parse_url(spec, &u, err, errlen);
}

static int s3_open(td_store *s, const char *spec, char *err, size_t errlen)
{
    s3_store *q = calloc(1, sizeof *q);
    char fp[TD_FP_LEN], sub[MSG_MAX];
    pthread_condattr_t ca;
    int rc = TD_ENOMEM;

    if (!q) goto fail;
    pthread_mutex_init(&q->wlock, NULL);
    pthread_mutex_init(&q->cred_lock, NULL);
    pthread_mutex_init(&q->lock, NULL);
    pthread_mutex_init(&q->cb_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wcond, &ca);
    pthread_condattr_destroy(&ca);
    s->impl = q;
    q->history_max = s->history_max ? s->history_max : 1;
    if (td_httpc_pool_new(&q->pool) != TD_OK) goto fail; /* rc: TD_ENOMEM */
    if ((rc = td__s3_parse_url(spec, &q->u, err, errlen)) != TD_OK) goto fail;
    q->revalidate_ms = q->u.revalidate_s * 1000;
    snprintf(q->sigv4, sizeof q->sigv4, "aws:amz:%s:s3", q->u.region);
    {
        char port[16] = "";
        if (q->u.port) snprintf(port, sizeof port, ":%d", q->u.port);
        snprintf(q->base, sizeof q->base, "%s (%s://%s%s)", q->u.bucket, q->u.scheme, q->u.host, port);
    }
    if ((rc = creds_read(q, &q->creds, &q->cred_st, err, errlen)) != TD_OK) goto fail;
    q->cred_checked_ms = td_clock_mono_ms();
    if (*q->u.creds_file && (q->cred_st.st_mode & 077))
        td_log("⚠️ 凭证文件 %s 的权限是 %03o：别的用户也能读到密钥，请 chmod 600", q->u.creds_file,
               (unsigned)(q->cred_st.st_mode & 0777));
    /* The first request decides the start: a wrong secret, region or
     * bucket stops it here with the setting to fix, not as 500s later. */
    if ((rc = index_refresh(q, sub, sizeof sub)) != TD_OK) {
        say(err, errlen, "%s", sub);
        goto fail;
    }
    probe_conditions(q);
    q->opened = 1;
    td_log("S3 存储: 存储桶 %s，前缀 '%s'，地域 %s，%s寻址，每 %ld 秒检查其他实例的写入；凭证 %s (%s)%s%s%s",
           q->base, q->u.prefix, q->u.region, q->u.path_style ? "路径式" : "虚拟主机式", q->u.revalidate_s,
           q->creds->vars[0], td_log_secret_fp(q->creds->key_id, fp), q->creds->token_hdr ? "，带临时会话令牌" : "",
           *q->u.creds_file ? "，取自凭证文件 " : "", q->u.creds_file);
    return TD_OK;
fail:
    if (rc == TD_ENOMEM) say(err, errlen, "内存不足");
    s3_close(s);
    return rc;
}

static int s3_get(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen)
{
    s3_store *q = s->impl;

    if (!valid_name(name)) return TD_ENOTFOUND;
    /* A reload right after the watcher saw the change finds it cached. */
    return read_record(q, name, q->revalidate_ms, 1, e, NULL, NULL, err, errlen);
}

/* Makes name's history hold e, newest first (best effort: the record is
 * stored).  Nothing is written when it holds e already, so every put of
 * e -- an exact re-send too -- calls it: a record whose history write was
 * lost (a kill -9 between the record's PUT and the history's, or a record
 * PUT acknowledged only after our timeout, so that the POST was a 503)
 * gets its place from the client's retry. */
static void history_add(s3_store *q, const td_store_entry *e)
{
    char rel[TD_NAME_MAX + 16], err[MSG_MAX], cbuf[TAG_MAX + 16], key[KEY_MAX];
    int rc = TD_OK;

    rel_of(rel, sizeof rel, "history", e->name);
    for (int t = 0; t < TRIES; t++) {
        json_t *arr = NULL, *rec = json_loadb(e->json, e->json_len, 0, NULL), *it;
        const char *cond[3];
        char *body = NULL;
        s3_resp r;
        size_t i;
        int lost, held = 0, theirs;

        rc = get_object(q, rel, NULL, HISTORY_BYTES_MAX + 4096, &r, err, sizeof err);
        if (rc != TD_OK && rc != TD_ETOOBIG) {
            json_decref(rec);
            break;
        }
        theirs = rc == TD_ETOOBIG || r.status == 200; /* an object is there, ours or not */
        if (r.status == 200) arr = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        if (!json_is_array(arr)) { /* none yet, or another tool's: start again */
            json_decref(arr);
            arr = json_array();
        }
        json_array_foreach(arr, i, it) if (rec && json_equal(it, rec)) held = 1;
        if (held) {
            json_decref(rec);
            json_decref(arr);
            resp_clear(&r);
            return;
        }
        if (rec) json_array_insert_new(arr, 0, rec);
        while (json_array_size(arr) > q->history_max) json_array_remove(arr, json_array_size(arr) - 1);
        while ((body = json_dumps(arr, JSON_COMPACT)) && strlen(body) > HISTORY_BYTES_MAX &&
               json_array_size(arr) > 1) {
            free(body);
            json_array_remove(arr, json_array_size(arr) - 1);
        }
        json_decref(arr);
        cond_headers(q, theirs ? r.etag : NULL, cbuf, cond);
        resp_clear(&r);
        if (!body) {
            rc = TD_ENOMEM;
            say(err, sizeof err, "内存不足");
            break;
        }
        rc = s3_call(q, "PUT", rel, body, strlen(body), cond, 4096, &r, err, sizeof err);
        free(body);
        if (rc != TD_OK) break;
        lost = lost_race(&r);
        resp_clear(&r);
        if (!lost) return;
        rc = TD_EUNAVAIL;
        say(err, sizeof err, "被其他写入者反复改动");
    }
    td_log("⚠️ S3 存储 %s: %s 的记录已存储，但历史 %s 未能更新: %s；重发同一条记录会补上", q->base, e->name,
           key_of(q, rel, key, sizeof key), err);
}

/* After a PUT of e whose answer never came (a timeout, a connection cut,
 * a 5xx): whether it was applied all the same.  S3 and COS apply a PUT
 * they received whatever becomes of its answer, so a POST answered 503
 * may have stored its record -- and the client would be told otherwise.
 * One read, conditional on the ETag the PUT was written against (a 304:
 * nothing landed), tells: 1 the record stored now is e (cached as ours,
 * its ETag in etag), 0 it is not, or not yet (a PUT still on its way
 * lands later; a retry of the same record is then 200 either way), <0
 * the service could not say.  Short: the client is waiting. */
static int put_landed(s3_store *q, const td_store_entry *e, const char *rel, const char *before,
                      char etag[TAG_MAX], char *err, size_t errlen)
{
    char inm[TAG_MAX + 20];
    const char *hdr[2] = {NULL, NULL};
    s3_resp r;
    cached *c;
    int rc, landed;

    if (*before) {
        snprintf(inm, sizeof inm, "If-None-Match: %s", before);
        hdr[0] = inm;
    }
    if ((rc = s3_call_t(q, READBACK_MS, "GET", rel, NULL, 0, hdr, JSON_MAX, &r, err, errlen)) != TD_OK)
        return rc == TD_ETOOBIG ? 0 : rc;
    landed = r.status == 200 && r.len == e->json_len && !memcmp(r.body, e->json, r.len);
    if (landed) {
        snprintf(etag, TAG_MAX, "%s", r.etag);
        pthread_mutex_lock(&q->lock);
        if (*r.etag && cache_put(q, e, r.etag) == TD_OK && (c = cache_find(q, e->name)))
            snprintf(c->told, sizeof c->told, "%s", c->etag);
        else
            cache_drop(q, e->name);
        pthread_mutex_unlock(&q->lock);
    }
    resp_clear(&r);
    return landed;
}

/* What follows the write of a record stored under etag -- or the finding
 * that it is stored already (an exact re-send): its version in the
 * index, so that the other instances read it within a round, and its
 * place in the history.  Both best effort: the record is stored, a
 * failure here is said, the other instances' sweeps find the record
 * within a few rounds all the same, and a re-send of it does both
 * again. */
static void after_write(s3_store *q, const td_store_entry *e, const char *etag)
{
    char ver[TD_S3_VERSION_LEN], err[MSG_MAX], key[KEY_MAX];
    s3_name *n;
    size_t rounds;

    td__s3_version_of(etag, ver);
    if (*ver && index_put(q, e->name, ver, err, sizeof err) != TD_OK) {
        pthread_mutex_lock(&q->lock);
        rounds = (q->nnames + SWEEP_PER_ROUND - 1) / SWEEP_PER_ROUND;
        pthread_mutex_unlock(&q->lock);
        td_log("⚠️ S3 存储 %s: %s 的记录已存储，但索引 %s 中它的版本未能更新 (%s)：其他实例在轮检中看到它 "
               "(最多约 %zu 秒)；重发同一条记录会补上", q->base, e->name, key_of(q, "index.json", key, sizeof key),
               err, rounds * (size_t)q->u.revalidate_s);
    }
    pthread_mutex_lock(&q->lock);
    if ((n = name_find(q, e->name))) { /* this instance has the record: its watcher need not read it */
        n->read = 1;
        n->rec = 1;
        memcpy(n->seen, n->version, sizeof n->seen);
    }
    pthread_mutex_unlock(&q->lock);
    history_add(q, e);
}

static int s3_put(td_store *s, const td_store_entry *e, char *err, size_t errlen)
{
    s3_store *q = s->impl;
    char rel[TD_NAME_MAX + 16], key[KEY_MAX], stored[TAG_MAX] = "";
    int rc;

    if (!valid_name(e->name) || !e->json || e->json_len > JSON_MAX) {
        say(err, errlen, "S3 存储: 名称无效或记录大于 %u 字节", JSON_MAX);
        return TD_EINVAL;
    }
    rel_of(rel, sizeof rel, "tokens", e->name);
    pthread_mutex_lock(&q->wlock);
    /* A put is several requests: one a stop catches under way finishes
     * (writing), one that would start after the stop does not start. */
    if (td_httpc_stopping()) {
        say(err, errlen, "S3 存储 %s: 正在停止，未写入", q->base);
        rc = TD_ECANCELED;
        goto out;
    }
    writing = 1;
    /* The index first: a name without its record is skipped by readers, a
     * record without its name would never be seen. */
    if ((rc = index_put(q, e->name, NULL, err, errlen)) != TD_OK) goto out;
    for (int t = 0;; t++) {
        td_store_entry cur = {0};
        char etag[TAG_MAX] = "", cbuf[TAG_MAX + 16];
        const char *cond[3];
        s3_resp r;

        if (t == TRIES) {
            say(err, errlen, "S3 存储 %s 中 %s 被其他写入者反复改动，请稍后重试", q->base,
                key_of(q, rel, key, sizeof key));
            rc = TD_EUNAVAIL;
            goto out;
        }
        rc = read_record(q, e->name, 0, 0, &cur, etag, NULL, err, errlen);
        if (rc != TD_OK && rc != TD_ENOTFOUND) goto out;
        if (rc == TD_OK && !cur.problem) {
            int same = cur.generated_ts == e->generated_ts && cur.json_len == e->json_len &&
                       !memcmp(cur.json, e->json, e->json_len);
            int64_t had = cur.generated_ts;
            td_store_entry_clear(&cur);
            if (same) { /* an exact re-send: stored already */
                snprintf(stored, sizeof stored, "%s", etag);
                break;
            }
            if (e->generated_ts <= had) {
                say(err, errlen, "记录不比已存储的新 (generated_timestamp %lld，已存储的是 %lld)：保留已存储的 token",
                    (long long)e->generated_ts, (long long)had);
                rc = TD_ECONFLICT;
                goto out;
            }
        }
        /* An unreadable object (another tool's) is replaced, like a missing one. */
        td_store_entry_clear(&cur);
        if (rc != TD_OK) etag[0] = '\0';
        cond_headers(q, etag, cbuf, cond);
        if ((rc = s3_call(q, "PUT", rel, e->json, e->json_len, cond, 4096, &r, err, errlen)) == TD_EUNAVAIL) {
            char sub[MSG_MAX], first[MSG_MAX];
            int landed = put_landed(q, e, rel, etag, stored, sub, sizeof sub);
            if (landed == 1) break; /* applied, its answer lost: stored */
            snprintf(first, sizeof first, "%s", err);
            say(err, errlen, "%s；%s：它可能稍后仍会生效，重发同一条记录是安全的 (已存储时得到 200)", first,
                landed == 0 ? "写入的应答没有收到，读回时存储里还不是这条记录" : "写入的应答没有收到，也无法读回确认");
            goto out;
        }
        if (rc != TD_OK) goto out;
        if (!lost_race(&r)) {
            pthread_mutex_lock(&q->lock);
            /* The API serves e now.  Not an error if caching fails: the
             * next read fetches it. */
            cached *c;
            if (*r.etag && cache_put(q, e, r.etag) == TD_OK && (c = cache_find(q, e->name)))
                snprintf(c->told, sizeof c->told, "%s", c->etag);
            else
                cache_drop(q, e->name);
            pthread_mutex_unlock(&q->lock);
            snprintf(stored, sizeof stored, "%s", r.etag);
            resp_clear(&r);
            break;
        }
        resp_clear(&r);
    }
    after_write(q, e, stored);
    rc = TD_OK;
out:
    writing = 0;
    pthread_mutex_unlock(&q->wlock);
    return rc;
}

/* Names to read, each with the version the index gave it then. */
typedef struct due {
    char *name;
    char ver[TD_S3_VERSION_LEN];
} due;

static void dues_free(due *d, size_t n)
{
    for (size_t i = 0; i < n; i++) free(d[i].name);
    free(d);
}

/* lock held */
static int due_add(due *d, size_t *n, const s3_name *s)
{
    if (!(d[*n].name = strdup(s->name))) return TD_ENOMEM;
    memcpy(d[*n].ver, s->version, sizeof d[*n].ver);
    ++*n;
    return TD_OK;
}

/* After a read of name's record (found or not) when the index gave it
 * version ver: the watcher reads it again when the index gives another
 * (or the sweep comes by), not every round. */
static void note_read(s3_store *q, const char *name, const char *ver)
{
    s3_name *s;

    pthread_mutex_lock(&q->lock);
    if ((s = name_find(q, name))) {
        s->read = 1;
        memcpy(s->seen, ver, sizeof s->seen);
    }
    pthread_mutex_unlock(&q->lock);
}

static int s3_list(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                   char *err, size_t errlen)
{
    s3_store *q = s->impl;
    due *d = NULL;
    size_t nn = 0, nd = 0, cnt = 0;
    td_store_entry *arr = NULL;
    int rc;

    *v = NULL, *n = 0;
    if ((rc = index_refresh(q, err, errlen)) != TD_OK) return rc;
    pthread_mutex_lock(&q->lock);
    /* The names are sorted: a page of them (another tool may have written
     * more names than tokendist adds). */
    if (from < q->nnames) {
        nn = q->nnames - from > max ? max : q->nnames - from;
        *more = from + nn < q->nnames;
    }
    if (nn && !(d = calloc(nn, sizeof *d))) rc = TD_ENOMEM;
    for (size_t i = 0; i < nn && rc == TD_OK; i++) rc = due_add(d, &nd, &q->names[from + i]);
    pthread_mutex_unlock(&q->lock);
    if (rc == TD_OK && nd && !(arr = calloc(nd, sizeof *arr))) rc = TD_ENOMEM;
    for (size_t i = 0; i < nd && rc == TD_OK; i++) {
        if (!valid_name(d[i].name)) { /* another tool's name */
            if (!(arr[cnt].name = strdup(d[i].name)) ||
                !(arr[cnt].problem = strdup("名称不符合规则 (" TD_NAME_RULE ")")))
                rc = TD_ENOMEM;
            cnt++;
            continue;
        }
        rc = read_record(q, d[i].name, 0, 1, &arr[cnt], NULL, NULL, err, errlen);
        if (rc == TD_OK || rc == TD_ENOTFOUND) note_read(q, d[i].name, d[i].ver);
        if (rc == TD_OK) cnt++;
        else if (rc == TD_ENOTFOUND) rc = TD_OK; /* a name whose record was never written */
    }
    dues_free(d, nd);
    if (rc != TD_OK) {
        if (rc == TD_ENOMEM) say(err, errlen, "内存不足");
        td_store_list_free(arr, cnt);
        return rc;
    }
    *v = arr, *n = cnt;
    return TD_OK;
}

static int s3_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                      char *err, size_t errlen)
{
    s3_store *q = s->impl;
    char rel[TD_NAME_MAX + 16], key[KEY_MAX];
    td_store_entry *arr = NULL;
    size_t cnt = 0, i;
    json_t *a = NULL, *it;
    s3_resp r;
    int rc;

    *v = NULL, *n = 0;
    if (!valid_name(name)) return TD_OK;
    if (!max || max > q->history_max) max = q->history_max;
    rel_of(rel, sizeof rel, "history", name);
    rc = s3_call(q, "GET", rel, NULL, 0, NULL, HISTORY_BYTES_MAX + 4096, &r, err, errlen);
    if (rc == TD_ETOOBIG) return TD_EIO; /* err says which object */
    if (rc != TD_OK) return rc;
    if (r.status == 404) goto done;
    if (r.status == 200) a = json_loadb(r.body ? r.body : "", r.len, 0, NULL); /* not inside json_is_array(): a macro */
    if (!json_is_array(a)) {
        say(err, errlen, "S3 存储 %s 中的历史 %s 不是 tokendist 写入的 JSON 数组 (下一次写入会重建它)", q->base,
            key_of(q, rel, key, sizeof key));
        rc = TD_EIO;
        goto done;
    }
    if (json_array_size(a) && !(arr = calloc(json_array_size(a) < max ? json_array_size(a) : max, sizeof *arr))) {
        rc = TD_ENOMEM;
        goto done;
    }
    json_array_foreach(a, i, it) {
        char *text;
        if (cnt == max) break;
        if (!json_is_object(it)) continue;
        if (!(text = json_dumps(it, JSON_COMPACT))) {
            rc = TD_ENOMEM;
            goto done;
        }
        rc = entry_from(name, text, strlen(text), &arr[cnt]);
        free(text);
        if (rc != TD_OK) goto done;
        if (arr[cnt].problem) td_store_entry_clear(&arr[cnt]); /* not a record: left out */
        else cnt++;
    }
done:
    json_decref(a);
    resp_clear(&r);
    if (rc != TD_OK) {
        td_store_list_free(arr, cnt);
        return rc;
    }
    *v = arr, *n = cnt;
    return TD_OK;
}

/* --- the watcher ---------------------------------------------------------- */

/* One round of revalidation; names that changed are appended to *out.
 * The index first: every write gives its record's version there, so one
 * conditional GET -- a 304 when nothing changed -- tells which records to
 * read: those whose version moved since this instance read them.  A round
 * costs the same request however many names there are, and a change is
 * seen one interval and two round trips after it was written.  Then
 * SWEEP_PER_ROUND records more, in turn, whatever the index says: what it
 * cannot tell (a record written by an older tokendist or another tool,
 * a writer killed between its record and the index) is seen within
 * (names + 1) / SWEEP_PER_ROUND rounds -- the one more place being the
 * backup (names_tidy), read at most every BACKUP_ROUNDS rounds.  A name without a record is so read
 * again only when the index or the sweep says, not every round. */
static int revalidate(s3_store *q, char ***out, size_t *nout, char *err, size_t errlen)
{
    due *d = NULL;
    size_t nd = 0;
    int rc, tidy = 0;

    *out = NULL, *nout = 0;
    if ((rc = index_refresh(q, err, errlen)) != TD_OK) return rc;
    pthread_mutex_lock(&q->lock);
    if (q->nnames && !(d = calloc(q->nnames, sizeof *d))) rc = TD_ENOMEM;
    for (size_t i = 0; i < q->nnames && rc == TD_OK; i++) {
        const s3_name *s = &q->names[i];
        if (valid_name(s->name) && (!s->read || strcmp(s->version, s->seen) != 0)) rc = due_add(d, &nd, s);
    }
    /* The sweep goes round the names and the backup, one more place that
     * it passes by when it came there fewer than BACKUP_ROUNDS rounds ago
     * (a few names would have it read every round). */
    q->backup_rounds++;
    for (size_t k = 0, swept = 0, start = q->sweep, places = q->nnames + 1;
         k < places && swept < SWEEP_PER_ROUND && rc == TD_OK; k++) {
        size_t at = (start + k) % places;
        const s3_name *s = at < q->nnames ? &q->names[at] : NULL;
        if (s ? !valid_name(s->name) : q->backup_rounds < BACKUP_ROUNDS) continue;
        swept++;
        q->sweep = (at + 1) % places;
        if (!s) {
            tidy = q->nnames > 0;
            q->backup_rounds = 0;
        } else if (s->read && !strcmp(s->version, s->seen)) {
            rc = due_add(d, &nd, s); /* else read above */
        }
    }
    tidy |= q->backup_due;
    q->backup_due = tidy;
    pthread_mutex_unlock(&q->lock);
    if (rc == TD_OK && nd && !(*out = calloc(nd, sizeof **out))) rc = TD_ENOMEM;
    for (size_t i = 0; i < nd && rc == TD_OK; i++) {
        td_store_entry e;
        int changed = 0;
        rc = read_record(q, d[i].name, 0, 0, &e, NULL, &changed, err, errlen);
        if (rc == TD_OK) td_store_entry_clear(&e);
        if (rc == TD_ENOTFOUND) rc = TD_OK;
        if (rc != TD_OK) break;
        note_read(q, d[i].name, d[i].ver);
        if (changed) (*out)[(*nout)++] = d[i].name, d[i].name = NULL;
    }
    dues_free(d, nd);
    if (rc == TD_OK && tidy) names_tidy(q);
    if (rc != TD_OK) {
        for (size_t i = 0; i < *nout; i++) free((*out)[i]);
        free(*out);
        *out = NULL, *nout = 0;
    }
    return rc;
}

static void *watch_main(void *arg)
{
    s3_store *q = arg;
    int pending_all = 0;
    char err[MSG_MAX];

    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        struct timespec ts;
        char **changed = NULL;
        size_t n = 0;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(q->revalidate_ms / 1000);
        while (!q->stop && pthread_cond_timedwait(&q->wcond, &q->lock, &ts) == 0)
            ;
        if (q->stop) break;
        pthread_mutex_unlock(&q->lock);
        /* After a failure nothing that happened meanwhile is known: the
         * first round that works tells the API "everything". */
        if (revalidate(q, &changed, &n, err, sizeof err) != TD_OK) {
            pending_all = 1;
        } else {
            pthread_mutex_lock(&q->cb_lock);
            if (q->cb && pending_all) pending_all = q->cb(q->ud, NULL) != TD_OK;
            else if (q->cb)
                for (size_t i = 0; i < n; i++) q->cb(q->ud, changed[i]);
            pthread_mutex_unlock(&q->cb_lock);
        }
        for (size_t i = 0; i < n; i++) free(changed[i]);
        free(changed);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* cb NULL stops the watcher and returns once no call is running. */
static int s3_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen)
{
    s3_store *q = s->impl;
    int e;

    if (q->watching) {
        pthread_mutex_lock(&q->lock);
        q->stop = 1;
        pthread_cond_signal(&q->wcond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->watcher, NULL);
        q->watching = 0;
    }
    pthread_mutex_lock(&q->cb_lock);
    q->cb = cb, q->ud = ud;
    pthread_mutex_unlock(&q->cb_lock);
    q->stop = 0;
    if (!cb) return TD_OK;
    if ((e = pthread_create(&q->watcher, NULL, watch_main, q)) != 0) {
        say(err, errlen, "S3 存储: 无法启动检查线程: %s", strerror(e));
        return TD_ERR;
    }
    q->watching = 1;
    return TD_OK;
}

/* Degraded while the last request failed; otherwise the watcher's last
 * answer stands when it is recent, so /readyz costs no request.  The
 * reason is the failure's own sentence, which names the store and the
 * setting to fix: said once, and whole when err has room for it (the
 * closing words are kept: cut, if at all, is the middle). */
static int s3_ping(td_store *s, char *err, size_t errlen)
{
    static const char tail[] = "；内存中的 token 照常分发直到过期，写入被拒绝";
    s3_store *q = s->impl;
    int rc = TD_OK, fresh;

    pthread_mutex_lock(&q->lock);
    if (q->fail_rc != TD_OK) {
        td_strbuf b;
        td_strbuf_fixed(&b, err, errlen);
        td_strbuf_printf(&b, "degraded (%s已 %" PRId64 " 秒): ", q->fail_rc == TD_EAUTH ? "拒绝请求" : "不可用",
                         td_clock_now() - q->fail_since);
        if (b.len + sizeof tail < errlen) {
            td_strbuf_append_cut(&b, q->fail_why, errlen - b.len - sizeof tail);
            td_strbuf_puts(&b, tail);
        } else {
            td_strbuf_append_cut(&b, q->fail_why, 0); /* whole characters: /readyz shows it */
        }
        rc = q->fail_rc == TD_EAUTH ? TD_EAUTH : TD_EUNAVAIL;
    }
    fresh = q->watching && q->last_ok_ms && td_clock_mono_ms() - q->last_ok_ms < 3 * q->revalidate_ms;
    pthread_mutex_unlock(&q->lock);
    if (rc != TD_OK || fresh) return rc;
    return index_refresh(q, err, errlen);
}

/* --- leases ---------------------------------------------------------------- */

/* leases/KEY.json, the key's characters outside [A-Za-z0-9._-] as '-'
 * (a lease is "refresh:NAME"; ':' would need percent-encoding in the
 * signed path). */
static void lease_rel(const char *name, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "leases/");
    for (const char *p = name; *p && o + 6 < len; p++) buf[o++] = key_char((unsigned char)*p) ? *p : '-';
    snprintf(buf + o, len - o, ".json");
}

/* The lease's holder and expiry as stored (owner "" when none or
 * unreadable), with the ETag to write against and the service's clock. */
static int lease_read(s3_store *q, const char *rel, char *owner, size_t ownerlen, int64_t *expires,
                      char etag[TAG_MAX], int64_t *now_ms, char *err, size_t errlen)
{
    s3_resp r;
    int rc;

    owner[0] = '\0', etag[0] = '\0', *expires = 0;
    if ((rc = s3_call(q, "GET", rel, NULL, 0, NULL, LEASE_MAX, &r, err, errlen)) != TD_OK)
        return rc == TD_ETOOBIG ? TD_EIO : rc; /* err names the object */
    *now_ms = r.date_ms;
    if (r.status == 200) {
        snprintf(etag, TAG_MAX, "%s", r.etag);
        if (td__s3_lease_parse(r.body, r.len, owner, ownerlen, expires) != TD_OK) owner[0] = '\0', *expires = 0;
    } else if (r.status != 404) {
        char key[KEY_MAX];
        say(err, errlen, "S3 存储 %s 对 GET %s 的应答是 HTTP %ld", q->base, key_of(q, rel, key, sizeof key), r.status);
        rc = TD_EIO;
    }
    resp_clear(&r);
    return rc;
}

/* Expiry is judged by the service's clock (the Date of its answers), so
 * the instances' own clocks need not agree: the holder writes "expires" as
 * the Date it read plus ttl, a rival compares it with the Date it reads.
 * Date has whole seconds, which only makes a lease look held longer, and
 * lease.c counts a hold for 0.9 ttl from before the request. */
static int lease_change(td_store *s, const char *name, const char *owner, int64_t ttl_ms, int op, char *err,
                        size_t errlen)
{
    s3_store *q = s->impl;
    char rel[200], cur[TD_LEASE_OWNER_MAX], etag[TAG_MAX], cbuf[TAG_MAX + 16], *body;
    const char *cond[3];
    int64_t expires, now;
    int rc;

    if (!name || strlen(name) > 128 || !owner || strlen(owner) >= sizeof cur || ttl_ms <= 0) return TD_EINVAL;
    lease_rel(name, rel, sizeof rel);
    for (int t = 0; t < TRIES; t++) {
        json_t *o;
        s3_resp r;
        int lost;

        if ((rc = lease_read(q, rel, cur, sizeof cur, &expires, etag, &now, err, errlen)) != TD_OK) return rc;
        if (op == TD_LEASE_DROP && strcmp(cur, owner) != 0) return TD_OK; /* never someone else's */
        if (op == TD_LEASE_TAKE && *cur && strcmp(cur, owner) != 0 && expires > now) return TD_ECONFLICT;
        /* Dropping writes an expired lease rather than deleting: a delete
         * cannot be made conditional everywhere, a write can. */
        o = json_pack("{s:s, s:I}", "owner", owner, "expires", (json_int_t)(op == TD_LEASE_DROP ? 0 : now + ttl_ms));
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!body) return TD_ENOMEM;
        cond_headers(q, etag, cbuf, cond);
        rc = s3_call(q, "PUT", rel, body, strlen(body), cond, 4096, &r, err, errlen);
        free(body);
        if (rc != TD_OK) return rc;
        lost = lost_race(&r);
        resp_clear(&r);
        if (!lost) return TD_OK;
        /* someone wrote between: read again (a rival holds it now, mostly) */
    }
    return op == TD_LEASE_DROP ? TD_OK : TD_ECONFLICT;
}

/* A lease change is a write: a release that a stop overtakes still goes
 * out (writing). */
static int s3_lease(td_store *s, const char *name, const char *owner, int64_t ttl_ms, int op, char *err,
                    size_t errlen)
{
    int rc;

    writing = 1;
    rc = lease_change(s, name, owner, ttl_ms, op, err, errlen);
    writing = 0;
    return rc;
}

static int s3_lease_owner(td_store *s, const char *name, char *owner, size_t len, char *err, size_t errlen)
{
    s3_store *q = s->impl;
    char rel[200], cur[TD_LEASE_OWNER_MAX], etag[TAG_MAX];
    int64_t expires, now;
    int rc;

    if (!name || strlen(name) > 128) return TD_EINVAL;
    lease_rel(name, rel, sizeof rel);
    if ((rc = lease_read(q, rel, cur, sizeof cur, &expires, etag, &now, err, errlen)) != TD_OK) return rc;
    if (!*cur || expires <= now) {
        say(err, errlen, "S3 存储 %s 中没有有效的租约 %s", q->base, name);
        return TD_ENOTFOUND;
    }
    if (strlen(cur) >= len) return TD_EINVAL;
    memcpy(owner, cur, strlen(cur) + 1);
    return TD_OK;
}

static void s3_where(td_store *s, const char *name, char *buf, size_t len)
{
    s3_store *q = s->impl;
    char rel[TD_NAME_MAX * 4 + 16], key[KEY_MAX];

    rel_of(rel, sizeof rel, "tokens", name);
    say(buf, len, "s3 存储桶 %s 对象 %s", q->u.bucket, key_of(q, rel, key, sizeof key));
}

const td_store_ops td_store_s3_ops = {
    .scheme = "s3",
    .check = s3_check,
    .open = s3_open,
    .get = s3_get,
    .put = s3_put,
    .list = s3_list,
    .history = s3_history,
    .watch = s3_watch,
    .ping = s3_ping,
    .lease = s3_lease,
    .lease_owner = s3_lease_owner,
    .where = s3_where,
    .warning = s3_warning,
    .close = s3_close,
};
