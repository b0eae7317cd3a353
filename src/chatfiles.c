/* chatfiles -- see chatfiles.h. */
#define _GNU_SOURCE
#include "chatfiles.h"
#include "feishu.h"
#include "httpc.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 50                        /* Feishu's largest page */
#define PAGE_BODY_MAX (16u << 20)           /* 50 messages of up to ~150 KB of text each */
#define PAGES_MAX 100000                    /* 5 million messages: a loop, not a chat */
#define ERROR_BODY_MAX (64u << 10)          /* a Feishu error answer is tiny */
#define DOWNLOAD_TIMEOUT_MS (3600L * 1000)  /* a stalled download must not hang cron forever */
#define RATELIMIT_WAIT_MAX 60               /* seconds; Feishu's windows are shorter */
#define URL_MAX 4096
#define TMP_SUFFIX ".part-XXXXXX"
#define TMP_EXTRA (sizeof "." + sizeof TMP_SUFFIX - 2)   /* what a temporary adds to a name */
#define BAD_PAGE_TOKEN "飞书返回 has_more 但 page_token 缺失、重复或过长: 已停止翻页"

/* One GET to Feishu.  A download streams into a sink that can start over
 * (rewind) and give back what it holds when the answer was an error. */
typedef struct call {
    const char *url;
    long timeout_ms;
    size_t max_body;
    td_httpc_data_cb on_data;               /* NULL: buffer the answer */
    int (*rewind)(void *ud);
    int (*error_body)(void *ud, td_httpc_resp *resp);
    void *ud;
} call;

static void sleep_s(long s)
{
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Does one Feishu GET with the tenant token.  A 429 waits the reset
 * header (up to max_ratelimit_waits times); an invalid-token answer
 * reports the token, takes a new one and tries once more.  On TD_OK a
 * buffered call gives the answer's data object in *data (json_decref it);
 * a streamed call's TD_OK means the whole body went to the sink. */
static int feishu_get(td_chatfiles *cf, const call *k, json_t **data, char *err, size_t errlen)
{
    char *auth = NULL, why[1024], herr[512];
    int reauthed = 0, waits = 0, max_waits = cf->max_ratelimit_waits > 0 ? cf->max_ratelimit_waits : 5;
    int rc;

    for (;;) {
        const char *hdrs[] = {auth, NULL};
        td_httpc_req req = {.url = k->url, .headers = hdrs, .timeout_ms = k->timeout_ms,
                            .max_body = k->max_body, .on_data = k->on_data, .ud = k->ud};
        td_httpc_resp resp = {0};
        td_token *tok = NULL;
        td_strbuf ab;

        if ((rc = td_client_get(cf->client, TD_TOKEN_TENANT, &tok, why, sizeof why)) != TD_OK) {
            snprintf(err, errlen, "%s", why);
            cf->failed_at = TD_CHATFILES_TOKEN;
            return rc;
        }
        /* Sized by the token, which has no fixed limit in the client's API. */
        td_strbuf_heap(&ab, tok->token_len + sizeof "Authorization: Bearer ");
        td_strbuf_printf(&ab, "Authorization: Bearer %s", tok->token);
        if (!(auth = td_strbuf_take(&ab, NULL))) {
            snprintf(err, errlen, "内存不足");
            rc = TD_ENOMEM;
            goto done;
        }
        hdrs[0] = auth;
        if (k->rewind && (rc = k->rewind(k->ud)) != TD_OK) {
            snprintf(err, errlen, "无法清空临时文件: %s", strerror(errno));
            cf->failed_at = TD_CHATFILES_LOCAL;
            goto done;
        }
        rc = td_httpc_do(&req, &resp, herr, sizeof herr);
        explicit_bzero(auth, strlen(auth));
        free(auth);
        auth = NULL;
        cf->failed_at = TD_CHATFILES_FEISHU;    /* from here on, any failure is Feishu's answer */
        if (rc != TD_OK) {
            snprintf(err, errlen, "飞书开放平台请求失败: %s", herr);
            if (rc == TD_EIO) cf->failed_at = TD_CHATFILES_LOCAL;     /* the download's disk, not Feishu */
            goto done;
        }
        if (k->on_data && resp.status == 200) goto done;
        if (k->on_data && (rc = k->error_body(k->ud, &resp)) != TD_OK) {
            snprintf(err, errlen, "飞书请求失败: HTTP %ld，且无法读回它的回答", resp.status);
            goto done;
        }
        rc = td_feishu_result(&resp, k->on_data ? NULL : data, why, sizeof why);
        if (rc == TD_OK && k->on_data) { /* code 0 with a non-200 status: not a file */
            snprintf(why, sizeof why, "HTTP %ld，回答里没有文件", resp.status);
            rc = TD_EUPSTREAM;
        }
        if (rc == TD_ERATELIMIT && waits < max_waits) {
            long s = td_httpc_retry_after(&resp);
            s = s < 1 ? 1 : s > RATELIMIT_WAIT_MAX ? RATELIMIT_WAIT_MAX : s;
            td_httpc_resp_clear(&resp);
            td_free(tok);
            waits++;
            sleep_s(s);
            continue;
        }
        if (rc == TD_EAUTH && !reauthed) {
            char rerr[512];
            td_httpc_resp_clear(&resp);
            reauthed = 1;
            /* Whatever the server says, the client has dropped the token;
             * the next get fetches (and waits briefly for a new one). */
            (void)td_client_report_invalid(cf->client, tok->token, rerr, sizeof rerr);
            td_free(tok);
            continue;
        }
        if (rc != TD_OK) snprintf(err, errlen, "飞书返回错误: %s", why);
    done:
        if (auth) explicit_bzero(auth, strlen(auth));
        free(auth);
        td_free(tok);
        td_httpc_resp_clear(&resp);
        return rc;
    }
}

static const char *base_url(const td_chatfiles *cf)
{
    return cf->base_url && *cf->base_url ? cf->base_url : TD_FEISHU_DEFAULT_BASE;
}

/* Copies a string field into a bounded buffer; TD_ETOOBIG when it does not fit. */
static int take(char *dst, size_t len, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (!src || n >= len) return src ? TD_ETOOBIG : TD_EINVAL;
    memcpy(dst, src, n + 1);
    return TD_OK;
}

/* Copies obj's string `key` into dst (len bytes); when it is missing, too
 * long or holds U+0000 (JSON allows it, a C string cannot), dst is left as
 * it was and f->problem says so, unless an earlier field already did. */
static void take_field(td_chatfile *f, char *dst, size_t len, const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v), *why;
    size_t n = json_string_length(v);

    why = !s ? "缺失" : memchr(s, '\0', n) ? "含 U+0000" : n >= len ? "过长" : NULL;
    if (!why) {
        memcpy(dst, s, n + 1);
        return;
    }
    if (!f->problem[0]) snprintf(f->problem, sizeof f->problem, "%s %s", key, why);
}

/* A file message of one listing page as a td_chatfile (problem set when
 * it cannot be read whole); 1 when the item is not a (live) file message. */
static int parse_item(const json_t *it, td_chatfile *f)
{
    const char *type = json_string_value(json_object_get(it, "msg_type"));
    const char *mid = json_string_value(json_object_get(it, "message_id"));
    json_t *content = json_object_get(json_object_get(it, "body"), "content"), *c = NULL;
    td_chatfile empty = {0};
    char when[32] = "", *end;

    if (!type || strcmp(type, "file") != 0 || json_is_true(json_object_get(it, "deleted"))) return 1;
    *f = empty;
    if (mid && strlen(mid) >= sizeof f->message_id) {
        /* Its head names it in the warning; it is never used for a request. */
        td_strbuf b;
        td_strbuf_fixed(&b, f->message_id, sizeof f->message_id);
        td_strbuf_append_cut(&b, mid, 64);
    }
    take_field(f, f->message_id, sizeof f->message_id, it, "message_id");
    take_field(f, when, sizeof when, it, "create_time");
    f->create_ms = strtoll(when, &end, 10);
    if (when[0] && (*end || f->create_ms < 0)) {
        f->create_ms = 0;
        if (!f->problem[0]) snprintf(f->problem, sizeof f->problem, "create_time 不是毫秒时间戳");
    }
    if (json_is_string(content))
        c = json_loadb(json_string_value(content), json_string_length(content), JSON_ALLOW_NUL, NULL);
    if (!json_is_object(c)) {
        if (!f->problem[0]) snprintf(f->problem, sizeof f->problem, "body.content 不是 JSON 对象");
    } else {
        take_field(f, f->file_key, sizeof f->file_key, c, "file_key");
        take_field(f, f->name, sizeof f->name, c, "file_name");
    }
    json_decref(c);
    return TD_OK;
}

int td_chatfiles_parse_page(const json_t *data, const char *prev, char next[TD_CHATFILES_PAGE_TOKEN_MAX],
                            td_chatfile_cb cb, void *ud, char *err, size_t errlen)
{
    json_t *items, *it, *pt;
    size_t i;
    int rc;

    next[0] = '\0';
    items = json_object_get(data, "items");
    json_array_foreach(items, i, it) {
        td_chatfile f;
        if (parse_item(it, &f) == 1) continue;
        if ((rc = cb(ud, &f)) != TD_OK) return rc;
    }
    if (!json_is_true(json_object_get(data, "has_more"))) return TD_OK;
    /* A missing or repeated token would page forever (or from the start). */
    pt = json_object_get(data, "page_token");
    if (!json_is_string(pt) || !json_string_length(pt) || !strcmp(json_string_value(pt), prev) ||
        take(next, TD_CHATFILES_PAGE_TOKEN_MAX, json_string_value(pt)) != TD_OK) {
        next[0] = '\0';
        snprintf(err, errlen, BAD_PAGE_TOKEN);
        return TD_EUPSTREAM;
    }
    return TD_OK;
}

/* The listing's time window and name filter in front of the caller's cb. */
typedef struct filter {
    td_chatfiles *cf;
    int64_t since, until;
    const char *match;
    td_chatfile_cb cb;
    void *ud;
    int cb_failed;              /* the page stopped on cb's failure, not Feishu's data */
} filter;

/* An unreadable message is judged by what could be read of it: without
 * a time or a name it is passed on, to be reported rather than lost. */
static int filter_file(void *ud, const td_chatfile *f)
{
    filter *w = ud;
    int timed = !f->problem[0] || f->create_ms > 0, named = !f->problem[0] || f->name[0];
    int rc;

    if (timed && w->since > 0 && f->create_ms < w->since * 1000) return TD_OK;
    if (timed && w->until > 0 && f->create_ms >= w->until * 1000) return TD_OK;
    if (named && w->match && *w->match && fnmatch(w->match, f->name, 0) != 0) return TD_OK;
    /* Whatever the callback does with cf (a download) sets its own side. */
    w->cf->failed_at = TD_CHATFILES_NONE;
    if ((rc = w->cb(w->ud, f)) != TD_OK) w->cb_failed = 1;
    return rc;
}

/* Says which setting made a Feishu URL longer than URL_MAX: the base URL
 * is the only piece without a bound of its own (the chat id, the page
 * token and Feishu's ids are bounded before they get here). */
static int url_too_long(const td_chatfiles *cf, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "FEISHU_BASE_URL 太长 (%zu 字节)：%s的请求地址超过 %d 字节的上限，请检查 FEISHU_BASE_URL / --feishu-base-url",
             strlen(base_url(cf)), what, URL_MAX);
    return TD_ETOOBIG;
}

int td_chatfiles_list(td_chatfiles *cf, const char *chat, int64_t since, int64_t until,
                      const char *match, td_chatfile_cb cb, void *ud, char *err, size_t errlen)
{
    char url[URL_MAX], esc_chat[512], esc_pt[1024], page_token[TD_CHATFILES_PAGE_TOKEN_MAX] = "";
    char next[TD_CHATFILES_PAGE_TOKEN_MAX];
    filter w = {cf, since, until, match, cb, ud, 0};
    json_t *data = NULL;
    int rc = TD_EINVAL;

    cf->failed_at = TD_CHATFILES_NONE;
    if (!chat || !*chat || !td_httpc_escape(chat, esc_chat, sizeof esc_chat)) {
        snprintf(err, errlen, "群 ID 缺失或太长 (--chat oc_…)");
        return TD_EINVAL;
    }
    for (long page = 0; page < PAGES_MAX; page++) {
        call k = {.url = url, .timeout_ms = cf->timeout_ms, .max_body = PAGE_BODY_MAX};
        td_strbuf b;

        /* Feishu's end_time is inclusive whole seconds; `until` is exclusive. */
        td_strbuf_fixed(&b, url, sizeof url);
        td_strbuf_printf(&b, "%s/open-apis/im/v1/messages?container_id_type=chat&container_id=%s"
                             "&sort_type=ByCreateTimeAsc&page_size=%d",
                         base_url(cf), esc_chat, PAGE_SIZE);
        if (since > 0) td_strbuf_printf(&b, "&start_time=%lld", (long long)since);
        if (until > 0) td_strbuf_printf(&b, "&end_time=%lld", (long long)until - 1);
        if (page_token[0]) {
            if (!td_httpc_escape(page_token, esc_pt, sizeof esc_pt)) {
                snprintf(err, errlen, BAD_PAGE_TOKEN);
                rc = TD_EUPSTREAM;
                goto out;
            }
            td_strbuf_printf(&b, "&page_token=%s", esc_pt);
        }
        if (td_strbuf_error(&b) != TD_OK) {
            rc = url_too_long(cf, "消息列表", err, errlen);
            goto out;
        }
        if ((rc = feishu_get(cf, &k, &data, err, errlen)) != TD_OK) goto out;
        rc = td_chatfiles_parse_page(data, page_token, next, filter_file, &w, err, errlen);
        if (rc != TD_OK && !w.cb_failed) cf->failed_at = TD_CHATFILES_FEISHU;   /* a page we cannot read */
        if (rc != TD_OK || !next[0]) goto out;
        memcpy(page_token, next, sizeof page_token);
        json_decref(data);
        data = NULL;
    }
    snprintf(err, errlen, "消息超过 %d 页: 已停止翻页", PAGES_MAX);
    cf->failed_at = TD_CHATFILES_FEISHU;
    rc = TD_ETOOBIG;
out:
    json_decref(data);
    return rc;
}

/* ---- local names ---------------------------------------------------------------- */

#define EXT_MAX 16      /* ".pdf", ".docx"; a longer tail after the last dot is no extension */
#define MARK_LEN 9      /* "~" and 8 hex digits of SHA-256: stands for what a cut dropped */

/* The length of the well-formed UTF-8 character at p (1-4), and its code
 * point in *cp; 0 when p does not start one (a stray continuation byte,
 * an overlong form, a surrogate, past U+10FFFF, a cut sequence). */
static int utf8_char(const unsigned char *p, uint32_t *cp)
{
    int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    uint32_t c = n == 1 ? *p : n == 2 ? *p & 0x1Fu : n == 3 ? *p & 0x0Fu : *p & 0x07u;
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};

    if (!n) return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (p[i] & 0x3Fu);
    }
    if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

/* Does c act on a terminal or hide what a name says: C0 and C1 controls,
 * DEL, and the bidi overrides and isolates that make "evil\u202efdp.exe"
 * read as "evilexe.pdf"? */
static int hidden(uint32_t c)
{
    return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) ||
           (c >= 0x2066 && c <= 0x2069);
}

/* Appends src to out[*o] (room up to lim bytes; out has lim + 1) with
 * '/', '\\', hidden characters and bytes that are not UTF-8 made '_', so
 * nothing Feishu sends can leave the folder or hide in a terminal.  Stops
 * before a character that does not fit whole. */
static void put_clean(char *out, size_t *o, size_t lim, const char *src)
{
    const unsigned char *p = (const unsigned char *)src;

    while (*p) {
        uint32_t c = 0;
        int n = utf8_char(p, &c), bad = !n || hidden(c) || c == '/' || c == '\\';
        size_t w = bad ? 1 : (size_t)n;

        if (*o + w > lim) break;
        if (bad)
            out[(*o)++] = '_';
        else
            memcpy(out + *o, p, w), *o += w;
        p += n ? n : 1;
    }
    out[*o] = '\0';
}

void td_chatfile_local_name(const td_chatfile *f, int with_id, char *out, size_t len)
{
    char base[TD_CHATFILE_NAME_MAX + 8], tail[16] = "", mark[MARK_LEN + 1] = "";
    const char *whole = f->name, *dot, *mid = f->message_id;
    size_t lim, bl = 0, tl = 0, el = 0, sl, ml = strlen(mid);
    td_strbuf b;

    if (!len) return;
    lim = len - 1 < TD_CHATFILE_LOCAL_MAX ? len - 1 : TD_CHATFILE_LOCAL_MAX;
    /* Cleaning never lengthens a name: base holds any name whole. */
    put_clean(base, &bl, sizeof base - 1, f->name);
    if (!bl || !strcmp(base, ".") || !strcmp(base, "..")) {
        bl = 0;
        put_clean(base, &bl, sizeof base - 1, "file_");
        put_clean(base, &bl, sizeof base - 1, f->file_key);
        whole = f->file_key;
    } else if (base[0] == '.') {
        base[0] = '_';
    }
    if (with_id) {
        mid += ml > 8 ? ml - 8 : 0;
        while (((unsigned char)*mid & 0xC0) == 0x80) mid++;   /* start on a character */
        tail[tl++] = '_';
        put_clean(tail, &tl, 9, mid);
    }
    dot = strrchr(base, '.');
    if (dot && dot != base && strlen(dot) <= EXT_MAX) el = strlen(dot);
    sl = bl - el;
    if (bl + tl > lim) {
        unsigned char md[SHA256_DIGEST_LENGTH];

        SHA256((const unsigned char *)whole, strlen(whole), md);
        snprintf(mark, sizeof mark, "~%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
        sl = lim > tl + MARK_LEN + el ? lim - tl - MARK_LEN - el : 0;
        while (sl > 0 && ((unsigned char)base[sl] & 0xC0) == 0x80) sl--;   /* base[sl] continues one */
    }
    td_strbuf_fixed(&b, out, len);
    td_strbuf_append(&b, base, sl);
    td_strbuf_puts(&b, mark);
    td_strbuf_puts(&b, tail);
    td_strbuf_append(&b, base + bl - el, el);
}

int td_chatfile_printable(td_strbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        uint32_t c = 0;
        int n = utf8_char(p, &c);

        if (!n) {
            td_strbuf_printf(b, "\\x%02x", *p);
            n = 1;
        } else if (c == '\\') {
            td_strbuf_puts(b, "\\\\");
        } else if (c == '\t' || c == '\n' || c == '\r') {
            td_strbuf_puts(b, c == '\t' ? "\\t" : c == '\n' ? "\\n" : "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            td_strbuf_printf(b, "\\x%02x", (unsigned)c);
        } else if (hidden(c)) {
            /* C1 controls (U+009B is a CSI to many terminals), bidi controls. */
            td_strbuf_printf(b, "\\u%04x", (unsigned)c);
        } else {
            td_strbuf_append(b, (const char *)p, (size_t)n);
        }
        p += n;
    }
    return td_strbuf_error(b);
}

/* ---- downloads ------------------------------------------------------------------ */

typedef struct sink {
    int fd;
    uint64_t done;
    const td_chatfile *f;
    td_chatfile_progress progress;
    void *pud;
} sink;

static int sink_data(void *ud, const char *p, size_t n)
{
    sink *s = ud;
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return TD_EIO;
        p += w, n -= (size_t)w, s->done += (uint64_t)w;
    }
    if (s->progress) s->progress(s->pud, s->f, s->done);
    return TD_OK;
}

static int sink_rewind(void *ud)
{
    sink *s = ud;
    s->done = 0;
    return ftruncate(s->fd, 0) == 0 && lseek(s->fd, 0, SEEK_SET) == 0 ? TD_OK : TD_EIO;
}

/* An error answer was streamed into the file: read it back (bounded). */
static int sink_error_body(void *ud, td_httpc_resp *resp)
{
    sink *s = ud;
    size_t n = s->done < ERROR_BODY_MAX ? (size_t)s->done : ERROR_BODY_MAX;
    ssize_t r;

    if (!(resp->body = malloc(n + 1))) return TD_ENOMEM;
    r = pread(s->fd, resp->body, n, 0);
    if (r < 0) return TD_EIO;
    resp->body[r] = '\0';
    resp->body_len = (size_t)r;
    return TD_OK;
}

int td_chatfiles_download(td_chatfiles *cf, const td_chatfile *f, const char *path,
                          td_chatfile_progress progress, void *ud, char *err, size_t errlen)
{
    char url[URL_MAX], tmp[4096], emid[TD_CHATFILE_ID_MAX * 3], ekey[TD_CHATFILE_ID_MAX * 3];
    const char *slash = strrchr(path, '/');
    sink s = {.fd = -1, .f = f, .progress = progress, .pud = ud};
    td_strbuf b;
    int closed = -1;
    call k = {.url = url, .timeout_ms = DOWNLOAD_TIMEOUT_MS, .on_data = sink_data,
              .rewind = sink_rewind, .error_body = sink_error_body, .ud = &s};
    int rc = TD_EINVAL;

    cf->failed_at = TD_CHATFILES_NONE;
    if (!td_httpc_escape(f->message_id, emid, sizeof emid) || !td_httpc_escape(f->file_key, ekey, sizeof ekey)) {
        snprintf(err, errlen, "文件消息 %.64s 的 message_id 或 file_key 太长", f->message_id);
        return TD_EINVAL;
    }
    td_strbuf_fixed(&b, url, sizeof url);
    if (td_strbuf_printf(&b, "%s/open-apis/im/v1/messages/%s/resources/%s?type=file", base_url(cf), emid,
                         ekey) != TD_OK)
        return url_too_long(cf, "文件下载", err, errlen);
    /* The temporary file sits in the target folder, so the rename is atomic;
     * its leading dot keeps it out of globs like *.pdf.  The name in it is
     * cut so that it fits one path component: mkstemp makes it unique. */
    td_strbuf_fixed(&b, tmp, sizeof tmp);
    td_strbuf_append(&b, path, slash ? (size_t)(slash - path + 1) : 0);
    td_strbuf_puts(&b, ".");
    td_strbuf_append_cut(&b, slash ? slash + 1 : path, TD_CHATFILE_LOCAL_MAX - TMP_EXTRA);
    if (td_strbuf_puts(&b, TMP_SUFFIX) != TD_OK) {
        snprintf(err, errlen, "路径太长: %s", path);
        return TD_EINVAL;
    }
    if ((s.fd = mkstemp(tmp)) < 0) {
        snprintf(err, errlen, "无法在 %s 旁创建临时文件: %s", path, strerror(errno));
        cf->failed_at = TD_CHATFILES_LOCAL;
        return TD_EIO;
    }
    if ((rc = feishu_get(cf, &k, NULL, err, errlen)) != TD_OK) goto out;
    cf->failed_at = TD_CHATFILES_LOCAL;     /* what can fail from here is this machine's disk */
    /* A failed fchmod or fsync leaves the descriptor to out; close()
     * releases it even when it fails, so it is never called twice. */
    if (fchmod(s.fd, 0644) == 0 && fsync(s.fd) == 0) {
        closed = close(s.fd);
        s.fd = -1;
    }
    if (closed != 0) {
        snprintf(err, errlen, "无法写入 %s: %s", tmp, strerror(errno));
        rc = TD_EIO;
        goto out;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "无法把下载的文件改名为 %s: %s", path, strerror(errno));
        rc = TD_EIO;
        goto out;
    }
    return TD_OK;
out:
    if (s.fd >= 0) close(s.fd);
    unlink(tmp);
    return rc;
}
