/* sink -- see sink.h. */
#include "sink.h"
#include "tokens.h"
#include "clock.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "tokendist.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The seed's POST answer and our own are small JSON objects. */
#define ENDPOINT_ANSWER_MAX (64u << 10)

const char *td_sink_kind_name(td_sink_kind kind)
{
    switch (kind) {
    case TD_SINK_ENDPOINT: return "endpoint";
    case TD_SINK_GITEE: return "gitee";
    case TD_SINK_LOCAL: return "local";
    }
    return "?";
}

int td_sinks_from_config(td_sinks *s, const td_config *c, const td_token_conf *t, td_api *api, char *err,
                         size_t errlen)
{
    long tmo = c->http_timeout * 1000;

    memset(s, 0, sizeof *s);
    if (api) {
        td_sink *k = &s->v[s->n++];
        k->kind = TD_SINK_LOCAL, k->label = "本地存储", k->api = api, k->name = t->name;
    }
    if (t->api_url) {
        char why[512];
        if (td_sink_endpoint(&s->v[s->n++], t->api_url, t->api_key, t->name, tmo, why, sizeof why) != TD_OK) {
            /* The setting's name, as the user wrote it. */
            if (t->is_default) {
                snprintf(err, errlen, "TENCENT_CLOUD_API_URL: %s", why);
            } else {
                char up[TD_NAME_MAX + 1];
                size_t i;
                for (i = 0; t->name[i] && i < TD_NAME_MAX; i++)
                    up[i] = (char)(t->name[i] >= 'a' && t->name[i] <= 'z' ? t->name[i] - 32 : t->name[i]);
                up[i] = '\0';
                snprintf(err, errlen, "TOKENDIST_%s_API_URL: %s", up, why);
            }
            return TD_EINVAL;
        }
    }
    if (t->gitee_path) {
        td_sink *k = &s->v[s->n++];
        if (!c->gitee_owner || !c->gitee_repo || !c->gitee_access_token) {
            snprintf(err, errlen, "开启了 ENABLE_GITEE_TOKEN_SHARE，但没有设置%s%s%s: 请设置它们 (或 --gitee-owner、"
                                  "--gitee-repo、--gitee-access-token)，或关闭 Gitee 共享",
                     c->gitee_owner ? "" : " GITEE_OWNER", c->gitee_repo ? "" : " GITEE_REPO",
                     c->gitee_access_token ? "" : " GITEE_ACCESS_TOKEN");
            return TD_EINVAL;
        }
        k->kind = TD_SINK_GITEE, k->label = "Gitee", k->timeout_ms = tmo, k->name = t->name;
        k->max_skew = c->max_clock_skew;
        k->gitee = (td_gitee){.base_url = c->gitee_base_url, .owner = c->gitee_owner,
                              .repo = c->gitee_repo, .path = t->gitee_path,
                              .branch = c->gitee_branch, .access_token = c->gitee_access_token,
                              .timeout_ms = tmo};
        for (size_t i = 0; i < c->share_keys.n; i++) {
            char why[256];
            if (td_seal_keys_add(&k->seal, c->share_keys.v[i], why, sizeof why) != TD_OK) {
                snprintf(err, errlen, "TOKENDIST_SHARE_KEY 的第 %zu 个密钥无效: %s", i + 1, why);
                td_seal_keys_wipe(&k->seal);
                return TD_EINVAL;
            }
        }
    }
    return TD_OK;
}

int td_sink_endpoint(td_sink *k, const char *url, const char *key, const char *name, long timeout_ms, char *err,
                     size_t errlen)
{
    td_endpoint *e = malloc(sizeof *e);
    int rc = TD_ENOMEM;

    memset(k, 0, sizeof *k);
    k->kind = TD_SINK_ENDPOINT, k->label = "腾讯云函数", k->key = key, k->name = name, k->timeout_ms = timeout_ms;
    if (!e) {
        snprintf(err, errlen, "内存不足");
        return rc;
    }
    if ((rc = td_endpoint_resolve(e, url, name, err, errlen)) == TD_OK)
        snprintf(k->url, sizeof k->url, "%s", e->token);
    free(e);
    return rc;
}

int td_sinks_drop_self(td_sinks *s, const td_endpoint_self *me)
{
    char why[512], shown[TD_ENDPOINT_URL_MAX];
    size_t kept = 0;
    int dropped = 0;

    for (size_t i = 0; i < s->n; i++) {
        td_sink *k = &s->v[i];
        if (k->kind == TD_SINK_ENDPOINT && td_endpoint_is_self(k->url, me, why, sizeof why)) {
            td_log("⚠️ TENCENT_CLOUD_API_URL (%s) 指向本服务自己 (%s)：不通过 HTTP 推送给自己，"
                   "token 直接写入本地存储；要分发到别处，请把它设为另一个服务的地址",
                   td_httpc_redact_url(k->url, TD_HTTPC_HIDE_QUERY, shown, sizeof shown), why);
            dropped++;
            continue;
        }
        if (kept != i) s->v[kept] = *k;
        kept++;
    }
    s->n = kept;
    return dropped;
}

int td_sink_endpoint_key(const char *url, const char *name, char *buf, size_t len)
{
    td_endpoint *e = malloc(sizeof *e);
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, why[300];
    size_t n;
    int rc = TD_EINVAL;

    snprintf(buf, len, "%s", url);
    if (!e || td_endpoint_resolve(e, url, name, why, sizeof why) != TD_OK || !u ||
        curl_url_set(u, CURLUPART_URL, e->token, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK) query = NULL;
    for (char *p = scheme; *p; p++) *p = (char)tolower((unsigned char)*p);
    for (char *p = host; *p; p++) *p = (char)tolower((unsigned char)*p);
    n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
    snprintf(buf, len, "%s://%s:%s%s%s%s", scheme, host, port,
             !strcmp(path, "/release/get-token") || !strcmp(path, "/get-token") ? "/v1/tokens/default" : path,
             query ? "?" : "", query ? query : "");
    rc = TD_OK;
out:
    curl_free(scheme), curl_free(host), curl_free(port), curl_free(path), curl_free(query);
    curl_url_cleanup(u);
    free(e);
    return rc;
}

void td_sinks_log_enabled(const td_sinks *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const td_sink *k = &s->v[i];
        if (k->kind == TD_SINK_ENDPOINT) {
            td_log("腾讯云函数 Token分发功能已启用");
            char shown[512];
            td_log("API地址: %s", td_httpc_redact_url(k->url, TD_HTTPC_HIDE_QUERY, shown, sizeof shown));
        } else if (k->kind == TD_SINK_GITEE) {
            td_log("Gitee Token共享功能已启用: %s/%s:%s", k->gitee.owner, k->gitee.repo, k->gitee.path);
            if (k->seal.n)
                td_log("Gitee 上的 token 记录以共享密钥加密 (AES-256-GCM，kid %s%s)", k->seal.v[0].kid,
                       k->seal.n > 1 ? "；其余密钥只用于读取" : "");
            else
                td_log("⚠️ Gitee 上的 token 记录未加密: 能读取仓库 %s/%s 的人 (包括它的提交历史) 都能拿到 token；"
                       "设置 TOKENDIST_SHARE_KEY (tokendist keygen 生成) 以加密", k->gitee.owner, k->gitee.repo);
        }
    }
}

/* After a refused push (401/403), the settings to fix, on both sides: the
 * server's words ("写入密钥无效") are for any HTTP client, and the seed's
 * error line above them stays as it was.  The key is the one change a
 * seed producer must make, so this line names where it is set. */
static void push_key_hint(const td_sink *s)
{
    char own[TD_NAME_MAX + 32] = "";

    if (s->name && *s->name && strcmp(s->name, "default"))
        snprintf(own, sizeof own, "token %s 的 TOKENDIST_<名称>_API_KEY 或 ", s->name);
    if (s->key && *s->key)
        td_log("💡 检查写入密钥 (%s--api-key / TENCENT_CLOUD_API_KEY，须是服务端 TOKENDIST_PUSH_KEYS 之一)", own);
    else
        td_log("💡 没有设置写入密钥: 请设置 %s--api-key / TENCENT_CLOUD_API_KEY 为服务端 TOKENDIST_PUSH_KEYS 之一",
               own);
}

/* The seed's upload: POST the record, expect {"success": true}. */
static int push_endpoint(const td_sink *s, const td_record *r, char *err, size_t errlen)
{
    char auth[1200], why[512];
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", s->key ? auth : NULL, NULL};
    size_t len;
    const char *json = td_record_json(r, &len);
    td_httpc_resp resp = {0};
    json_t *o = NULL;
    const char *msg;
    int rc;

    if (s->key && (size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->key) >= sizeof auth) {
        snprintf(err, errlen, "TENCENT_CLOUD_API_KEY 太长 (上限 %zu 字节)", sizeof auth - sizeof "Authorization: Bearer ");
        rc = TD_ETOOBIG;
        goto out;
    }
    td_log("正在上传token到腾讯云函数...");
    {
        td_httpc_req hr = {.method = "POST", .url = s->url, .body = json, .body_len = len,
                           .headers = hdrs, .timeout_ms = s->timeout_ms,
                           .max_body = ENDPOINT_ANSWER_MAX};
        if ((rc = td_httpc_do(&hr, &resp, why, sizeof why)) != TD_OK) {
            snprintf(err, errlen, "腾讯云函数连接失败: %s", why);
            goto out;
        }
    }
    o = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
    msg = json_string_value(json_object_get(o, "message"));
    if (resp.status >= 200 && resp.status < 300 && json_is_true(json_object_get(o, "success"))) {
        td_log("Token已成功分发到腾讯云函数");
        rc = TD_OK;
        goto out;
    }
    rc = td_endpoint_refuses_key(&resp) ? TD_EAUTH
       : resp.status == 409             ? TD_ECONFLICT
                                        : TD_EUPSTREAM;
    /* The seed's two wordings: the function said why, or only a status --
     * and for our own server's "no such path", that the path is wrong. */
    if (td_endpoint_wrong_path(resp.status, resp.body, resp.body_len))
        snprintf(err, errlen, "腾讯云函数HTTP错误: %ld (%s)", resp.status,
                 td_endpoint_wrong_path_why(s->url, why, sizeof why));
    else if (msg && json_is_false(json_object_get(o, "success")))
        snprintf(err, errlen, "腾讯云函数返回错误: %s", msg);
    else if (resp.status < 200 || resp.status >= 300)
        snprintf(err, errlen, "腾讯云函数HTTP错误: %ld", resp.status);
    else
        snprintf(err, errlen, "腾讯云函数返回错误: 回答不是 {\"success\": true}");
out:
    if (rc != TD_OK) td_log("❌ %s", err);
    if (rc == TD_EAUTH) push_key_hint(s);
    memset(auth, 0, sizeof auth);
    json_decref(o);
    td_httpc_resp_clear(&resp);
    return rc;
}

/* A Gitee write: the sink and the record it delivers. */
typedef struct gitee_push {
    const td_sink *sink;
    const td_record *r;
    int warned;                 /* the distrusted time was logged (the guard may run twice) */
} gitee_push;

/* What the Gitee file holds now, as the guard of a write sees it. */
typedef struct gitee_file {
    int sealed;                 /* an envelope (else plaintext, or not a record) */
    int64_t generated;          /* the record's, or the envelope's clear one */
    int known;                  /* generated is known: a valid record, or a well-formed envelope */
    int ours;                   /* sealed with our first key (the form we write) */
    int unverified;             /* with share keys: plaintext, or sealed with a key we lack */
    char kid[TD_SEAL_KID_LEN];  /* sealed: its kid */
    td_record *rec;             /* the record, when we can read it (plaintext, or opened) */
} gitee_file;

/* Reads the file's content without trusting more than it proves: an
 * envelope's clear generated_timestamp counts only when its kid is not
 * one of ours or it opens (one of ours that does not open was forged or
 * corrupted, and is replaced).  With share keys, what does not open with
 * one of them (plaintext, another key's envelope) is marked unverified:
 * anyone with write access to the repository could have dated it. */
static void gitee_file_read(const td_sink *s, const char *cur, size_t len, gitee_file *f)
{
    char why[512], *plain = NULL;
    size_t plen = 0;
    int ours = 0, rc;

    memset(f, 0, sizeof *f);
    td_record_skip_bom(&cur, &len);
    if (td_seal_peek(cur, len, &f->generated, f->kid, why, sizeof why) != TD_OK) {
        if (td_record_parse(cur, len, 0, -1, &f->rec, why, sizeof why) == TD_OK)
            f->known = 1, f->generated = td_record_generated(f->rec), f->unverified = s->seal.n > 0;
        return;
    }
    f->sealed = 1;
    for (size_t i = 0; i < s->seal.n; i++)
        if (!strcmp(s->seal.v[i].kid, f->kid)) ours = 1;
    rc = td_seal_unwrap(&s->seal, s->name, cur, len, &plain, &plen, why, sizeof why);
    if (rc == TD_OK && td_record_parse(plain, plen, 0, -1, &f->rec, why, sizeof why) == TD_OK) {
        f->known = 1;
        f->ours = !strcmp(s->seal.v[0].kid, f->kid);
    } else if (!ours) {
        f->known = 1;   /* another key's (or no key of ours): its clear time is all we have */
        f->unverified = s->seal.n > 0;
    } else {
        td_log("⚠️ Gitee 上的加密记录打不开 (%s)，将被替换", why);
    }
    if (plain) explicit_bzero(plain, plen);
    free(plain);
}

/* An unverified file's time is believed up to the store's clock-skew
 * bound (--max-clock-skew) and no further: a plaintext record, or an
 * envelope of a key we lack, dated ahead would otherwise win every
 * put-if-newer and keep the sealed copy from ever being written -- the
 * store refuses such a POST for the same reason.  Logged once per push. */
static int gitee_time_untrusted(gitee_push *p, const gitee_file *f)
{
    int64_t ahead = f->generated - td_clock_now();
    char gen[TD_TIME_LEN];

    if (!f->known || !f->unverified || ahead <= p->sink->max_skew) return 0;
    if (p->warned++) return 1;
    if (f->sealed)
        td_log("⚠️ Gitee 上的记录是用另一把共享密钥加密的 (kid %s)，无法验证；它的 generated_timestamp %lld (%s) "
               "比现在超前 %lld 秒，超过允许的 %ld 秒 (--max-clock-skew)：不信任这个时间，将被替换",
               f->kid, (long long)f->generated, td_clock_format(f->generated, gen), (long long)ahead,
               p->sink->max_skew);
    else
        td_log("⚠️ Gitee 上的记录未加密，无法验证；它的 generated_timestamp %lld (%s) 比现在超前 %lld 秒，"
               "超过允许的 %ld 秒 (--max-clock-skew)：不信任这个时间，将被替换为加密记录",
               (long long)f->generated, td_clock_format(f->generated, gen), (long long)ahead, p->sink->max_skew);
    return 1;
}

/* Put-if-newer for the Gitee file, as the server's store does it: a file
 * holding a record whose generated_timestamp is not older than the pushed
 * one is not replaced (a stale refresher must not roll the file back); a
 * sealed file is judged by its clear generated_timestamp, so no key is
 * needed for that.  The same record in the form we write (plaintext, or
 * sealed with our first key) is already there, however formatted; in the
 * other form (sealing just turned on, a key rotated) it is rewritten.
 * With share keys, a file that cannot be verified is believed only up to
 * the clock-skew bound (gitee_time_untrusted).  Anything else (an empty
 * "{}", another format) is ours to replace. */
static int gitee_guard(void *ud, const char *cur, size_t len, char *err, size_t errlen)
{
    gitee_push *p = ud;
    gitee_file f;
    int rc = TD_OK;

    gitee_file_read(p->sink, cur, len, &f);
    if (f.rec) {
        const char *a, *b;
        size_t alen, blen;
        a = td_record_json(f.rec, &alen);
        b = td_record_json(p->r, &blen);
        if (alen == blen && !memcmp(a, b, alen)) {
            int same_form = f.sealed == (p->sink->seal.n > 0) && (!f.sealed || f.ours);
            rc = same_form ? 1 : TD_OK;
            goto out;
        }
    }
    if (f.known && f.generated >= td_record_generated(p->r) && !gitee_time_untrusted(p, &f)) {
        snprintf(err, errlen, "Gitee 上已有更新的 token 记录 (generated_timestamp %lld，本次 %lld)，未覆盖",
                 (long long)f.generated, (long long)td_record_generated(p->r));
        rc = TD_ECONFLICT;
    }
out:
    td_record_free(f.rec);
    return rc;
}

static int push_gitee(const td_sink *s, const td_record *r, char *err, size_t errlen)
{
    char msg[128], e[TD_TIME_LEN], why[512];
    size_t len;
    const char *json = td_record_json(r, &len);
    char *sealed = NULL;
    gitee_push p = {s, r, 0};
    int rc;

    snprintf(msg, sizeof msg, "tokendist: 更新 token (过期时间 %s)", td_clock_format(td_record_expires(r), e));
    td_log("正在上传token到Gitee (%s/%s:%s)...", s->gitee.owner, s->gitee.repo, s->gitee.path);
    if (s->seal.n) {
        if ((rc = td_seal_wrap(&s->seal, s->name, td_record_generated(r), json, len, &sealed, &len, why,
                               sizeof why)) != TD_OK) {
            snprintf(err, errlen, "Gitee上传失败: %s", why);
            td_log("❌ %s", err);
            return rc;
        }
        json = sealed;
    }
    rc = td_gitee_write(&s->gitee, json, len, msg, gitee_guard, &p, why, sizeof why);
    free(sealed);
    if (rc == TD_ECONFLICT) {
        /* The server's 409: a conflict, not a delivery failure to retry. */
        snprintf(err, errlen, "%s", why);
        td_log("⚠️ %s", err);
        return rc;
    }
    if (rc != TD_OK) {
        snprintf(err, errlen, "Gitee上传失败: %s", why);
        td_log("❌ %s", err);
        return rc;
    }
    td_log("Token已成功分发到Gitee%s", s->seal.n ? " (已加密)" : "");
    return TD_OK;
}

static int push_local(const td_sink *s, const td_record *r, char *err, size_t errlen)
{
    char why[512];
    int rc = td_api_store_record(s->api, s->name, r, why, sizeof why);

    if (rc != TD_OK) {
        snprintf(err, errlen, "写入本地存储失败: %s", why);
        td_log("❌ %s", err);
        return rc;
    }
    td_log("Token已写入本地存储 (%s)", s->name);
    return TD_OK;
}

int td_sink_push(const td_sink *s, const td_record *r, char *err, size_t errlen)
{
    int rc;

    /* Never hand out a token that is already dead: clients would fail on
     * it while a fetch retry may still rescue the situation. */
    if (td_record_expires(r) <= td_clock_now()) {
        snprintf(err, errlen, "%s: token 已过期，未上传", s->label);
        td_log("❌ %s", err);
        td_metrics_inc(TD_M_SINK_FAILED);
        return TD_EEXPIRED;
    }
    switch (s->kind) {
    case TD_SINK_ENDPOINT: rc = push_endpoint(s, r, err, errlen); break;
    case TD_SINK_GITEE: rc = push_gitee(s, r, err, errlen); break;
    case TD_SINK_LOCAL: rc = push_local(s, r, err, errlen); break;
    default: rc = TD_EINVAL; break;
    }
    /* A conflict (the sink holds a newer record) is neither: the token
     * did not go there, and nothing failed that a retry would mend. */
    if (rc != TD_ECONFLICT) td_metrics_inc(rc == TD_OK ? TD_M_SINK_OK : TD_M_SINK_FAILED);
    return rc;
}

/* GETs the endpoint; a reader key is not ours to know, so none is sent. */
static int endpoint_get(const td_sink *s, td_httpc_resp *resp, char *err, size_t errlen)
{
    char why[512];
    td_httpc_req hr = {.method = "GET", .url = s->url, .timeout_ms = s->timeout_ms,
                       .max_body = 64u << 10};
    int rc = td_httpc_do(&hr, resp, why, sizeof why);
    if (rc != TD_OK) snprintf(err, errlen, "腾讯云函数API连接失败: %s", why);
    return rc;
}

/* The seed's "腾讯云函数HTTP错误: N", and for our own server's "no such
 * path" what is wrong with the URL. */
static void endpoint_status_error(const td_sink *s, const td_httpc_resp *resp, char *err, size_t errlen)
{
    char why[512];

    if (td_endpoint_wrong_path(resp->status, resp->body, resp->body_len))
        snprintf(err, errlen, "腾讯云函数HTTP错误: %ld (%s)", resp->status,
                 td_endpoint_wrong_path_why(s->url, why, sizeof why));
    else
        snprintf(err, errlen, "腾讯云函数HTTP错误: %ld", resp->status);
}

/* Our own answer when nothing is stored yet. */
static int is_no_token_yet(const td_httpc_resp *resp)
{
    json_t *o = resp->status == 404 && resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(o, "error"));
    int yes = e && !strcmp(e, "Token not found or expired");
    json_decref(o);
    return yes;
}

int td_sink_current(const td_sink *s, td_record **out, char *err, size_t errlen)
{
    td_httpc_resp resp = {0};
    char *text = NULL;
    const char *json = NULL;
    size_t len = 0;
    td_snap *snap = NULL;
    int rc;

    *out = NULL;
    switch (s->kind) {
    case TD_SINK_ENDPOINT:
        if ((rc = endpoint_get(s, &resp, err, errlen)) != TD_OK) goto out;
        if (resp.status != 200) {
            endpoint_status_error(s, &resp, err, errlen);
            rc = resp.status == 404 && !td_endpoint_wrong_path(resp.status, resp.body, resp.body_len)
                     ? TD_ENOTFOUND : TD_EUPSTREAM;
            goto out;
        }
        json = resp.body, len = resp.body_len;
        break;
    case TD_SINK_GITEE: {
        char *raw = NULL, why[512];
        size_t rawlen = 0;
        if ((rc = td_gitee_read(&s->gitee, &raw, &rawlen, NULL, err, errlen)) != TD_OK) goto out;
        /* Sealed or not, by the clients' own rule (seal.h). */
        rc = td_seal_unwrap(&s->seal, s->name, raw, rawlen, &text, &len, why, sizeof why);
        if (raw) explicit_bzero(raw, rawlen);
        free(raw);
        if (rc != TD_OK) {
            snprintf(err, errlen, "Gitee 文件 %s/%s:%s: %s", s->gitee.owner, s->gitee.repo, s->gitee.path, why);
            goto out;
        }
        json = text;
        break;
    }
    case TD_SINK_LOCAL:
        if (!(snap = td_api_snapshot(s->api, s->name))) {
            snprintf(err, errlen, "本地存储中没有 %s", s->name);
            rc = TD_ENOTFOUND;
            goto out;
        }
        json = snap->json, len = snap->json_len;
        break;
    default:
        rc = TD_EINVAL;
        goto out;
    }
    /* What a sink already distributes is read back to learn it, not
     * written: its clock is not ours to judge (no skew limit). */
    rc = td_record_parse(json ? json : "", len, td_clock_now(), -1, out, err, errlen);
    if (rc == TD_EEXPIRED) rc = TD_ENOTFOUND;
out:
    td_snap_release(snap);
    if (text) explicit_bzero(text, len);
    free(text);
    td_httpc_resp_clear(&resp);
    return rc;
}

int td_sink_probe(const td_sink *s, char *err, size_t errlen)
{
    td_httpc_resp resp = {0};
    int rc;

    if (s->kind != TD_SINK_ENDPOINT) return TD_EINVAL;
    if ((rc = endpoint_get(s, &resp, err, errlen)) != TD_OK) goto out;
    if (resp.status == 200 || is_no_token_yet(&resp)) {
        rc = TD_OK;
        goto out;
    }
    endpoint_status_error(s, &resp, err, errlen);
    rc = TD_EUPSTREAM;
out:
    td_httpc_resp_clear(&resp);
    return rc;
}
