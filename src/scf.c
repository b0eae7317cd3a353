/* scf -- see scf.h. */
#define _GNU_SOURCE
#include "scf.h"
#include "clock.h"
#include "httpc.h"
#include "log.h"
#include "peer.h"
#include "record.h"
#include "tokendist.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define RUNTIME_TRIES 10        /* consecutive failed polls before we give up */

/* --- event -> request -------------------------------------------------- */

/* A string member of o, or NULL; strings with a NUL inside count as
 * absent, since C would silently cut them. */
static const char *str_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* Header lookup: API Gateway keeps the client's spelling, Function URLs
 * lower-case every name, and HTTP names are case-insensitive anyway.  Of
 * two spellings the last counts, as the HTTP front takes the last
 * X-Forwarded-For line. */
static const char *header(const json_t *headers, const char *name)
{
    const char *key, *found = NULL;
    json_t *v;

    json_object_foreach((json_t *)headers, key, v)
        if (!strcasecmp(key, name) && json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
            found = json_string_value(v);
    return found;
}

/* How many spellings of name the headers carry, whatever their values:
 * "Host" and "host" in one event are two Host lines to the Host check
 * (host.h), as two lines are on the HTTP front. */
static unsigned header_count(const json_t *headers, const char *name)
{
    const char *key;
    json_t *v;
    unsigned n = 0;

    json_object_foreach((json_t *)headers, key, v)
        if (!strcasecmp(key, name)) n++;
    return n;
}

/* The path as libmicrohttpd hands it to the HTTP front: query cut off,
 * escapes decoded by the same function. */
static char *decode_path(const char *p)
{
    char *out = strndup(p, strcspn(p, "?"));

    if (out) td_api_unescape(out);
    return out;
}

/* Strict base64 (RFC 4648, padding optional) into a new buffer. */
static int b64_decode(const char *s, size_t len, char **out, size_t *outlen)
{
    size_t padded = (len + 3) / 4 * 4, pad = 0;
    unsigned char *in = NULL, *buf = NULL;
    int n, rc = TD_EINVAL;

    if (len % 4 == 1) return TD_EINVAL;
    if (!(in = malloc(padded + 1)) || !(buf = malloc(padded / 4 * 3 + 1))) {
        rc = TD_ENOMEM;
        goto out;
    }
    memcpy(in, s, len);
    memset(in + len, '=', padded - len);
    for (size_t i = 0; i < padded; i++)
        if (in[i] <= ' ') goto out; /* EVP_DecodeBlock would skip blanks at the ends */
    while (pad < 2 && padded > pad && in[padded - 1 - pad] == '=') pad++;
    if ((n = EVP_DecodeBlock(buf, in, (int)padded)) < 0 || (size_t)n < pad) goto out;
    *outlen = (size_t)n - pad; /* EVP_DecodeBlock counts the padding as bytes */
    buf[*outlen] = '\0';
    *out = (char *)buf, buf = NULL;
    rc = TD_OK;
out:
    free(in);
    free(buf);
    return rc;
}

void td_scf_req_clear(td_scf_req *r)
{
    if (!r) return;
    json_decref(r->event);
    free(r->path);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int td_scf_parse_event(const char *json, size_t len, td_scf_req *r, char *err, size_t errlen)
{
    json_error_t je;
    const json_t *headers, *ctx, *body;
    const char *method, *path, *cl, *remote;
    int rc = TD_EINVAL;

    memset(r, 0, sizeof *r);
    if (len > TD_SCF_EVENT_MAX) {
        snprintf(err, errlen, "事件超过 %u 字节", TD_SCF_EVENT_MAX);
        return TD_ETOOBIG;
    }
    if (!(r->event = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je))) {
        char why[200];
        snprintf(err, errlen, "事件不是 JSON (%s)", td_record_json_error(&je, why, sizeof why));
        goto fail;
    }
    if (!json_is_object(r->event)) {
        snprintf(err, errlen, "事件不是 JSON 对象");
        goto fail;
    }
    method = str_member(r->event, "httpMethod");
    path = str_member(r->event, "path");
    if (!method || !*method || !path || path[0] != '/') {
        snprintf(err, errlen, "事件不是 HTTP 请求: %s (tokendist scf-runtime 只应答 API 网关和函数 URL "
                              "的事件)",
                 str_member(r->event, "Type") ? "它是定时器或其他触发器的事件"
                                               : "没有 httpMethod 字符串，或没有以 '/' 开头的 path");
        goto fail;
    }
    headers = json_object_get(r->event, "headers");
    if (headers && !json_is_object(headers) && !json_is_null(headers)) {
        snprintf(err, errlen, "事件的 headers 不是对象");
        goto fail;
    }
    if (!(r->path = decode_path(path))) goto nomem;

    body = json_object_get(r->event, "body");
    if (body && !json_is_null(body)) {
        const char *b = json_string_value(body);
        size_t blen = json_string_length(body);
        if (!b) {
            snprintf(err, errlen, "事件的 body 不是字符串");
            goto fail;
        }
        if (json_is_true(json_object_get(r->event, "isBase64Encoded"))) {
            if ((rc = b64_decode(b, blen, &r->body, &r->body_len)) == TD_ENOMEM) goto nomem;
            if (rc != TD_OK) {
                snprintf(err, errlen, "事件标明 isBase64Encoded，但 body 不是 base64");
                goto fail;
            }
        } else {
            if (!(r->body = malloc(blen + 1))) goto nomem;
            memcpy(r->body, b, blen + 1);
            r->body_len = blen;
        }
    }

    /* The client, only as the platform states it.  API Gateway: in
     * requestContext.sourceIp.  A Function URL: in the header
     * x-scf-remote-addr, which Tencent's event example marks "此字段为客户端
     * 的请求IP" (函数 URL 概述,
     * https://cloud.tencent.com/document/product/583/96099, 2025-08); the
     * platform owns that prefix: "部分 Header 字段将由 API 网关自动填入，不支持
     * 用户自定义配置" -- among them "X-SCF- 开头的自定义字段" (Web 函数,
     * https://www.tencentcloud.com/zh/document/product/583/40678).  Never
     * X-Forwarded-For: any client writes that; the handler reads it only
     * when this address is a --trusted-proxy, as for the HTTP front's
     * peer.  Neither there (or not an address): "?", one guard entry for
     * all such clients, which refuses no valid key. */
    ctx = json_object_get(r->event, "requestContext");
    remote = str_member(ctx, "sourceIp");
    if (!remote) remote = header(headers, "x-scf-remote-addr");
    {
        td_peer_addr a;
        if (remote && td_peer_parse(remote, strlen(remote), &a)) td_peer_format(&a, r->remote);
        else snprintf(r->remote, sizeof r->remote, "?");
    }

    r->head = !strcmp(method, "HEAD");
    r->req.method = method;
    r->req.path = r->path;
    r->req.authorization = header(headers, "authorization");
    r->req.x_api_key = header(headers, "x-api-key");
    r->req.content_type = header(headers, "content-type");
    r->req.host = header(headers, "host");
    r->req.host_count = header_count(headers, "host");
    r->req.x_forwarded_for = header(headers, "x-forwarded-for");
    r->req.x_real_ip = header(headers, "x-real-ip");
    r->req.content_length = -1;
    if ((cl = header(headers, "content-length"))) {
        char *end;
        long long v = strtoll(cl, &end, 10);
        r->req.content_length = (*end || end == cl || v < 0) ? -1 : v;
    }
    /* Like the HTTP front, only a POST carries a body to the handler. */
    if (!strcmp(method, "POST")) {
        r->req.body = r->body;
        r->req.body_len = r->body_len;
    }
    r->req.remote = r->remote;
    return TD_OK;
nomem:
    snprintf(err, errlen, "内存不足");
    rc = TD_ENOMEM;
fail:
    td_scf_req_clear(r);
    return rc == TD_ENOMEM ? rc : TD_EINVAL;
}

/* --- response -> integrated response ----------------------------------- */

char *td_scf_response(const td_api_resp *resp, int head, size_t *len)
{
    json_t *o = json_object(), *h = json_object(), *body = NULL;
    size_t blen = head ? 0 : resp->body_len;
    const char *b = blen ? resp->body : "";
    char date[64], *enc = NULL, *text = NULL;
    struct tm tm;
    time_t now = time(NULL);
    int b64 = 0;

    if (!o || !h) goto out;
    for (size_t i = 0; i < resp->nhdr; i++)
        json_object_set_new(h, resp->hdr[i].name, json_string(resp->hdr[i].value));
    /* The HTTP front's libmicrohttpd adds Date; so do we. */
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    json_object_set_new(h, "Date", json_string(date));
    /* A JSON string holds UTF-8 text only: anything else goes base64. */
    if (!(body = json_stringn(b, blen))) {
        if (!(enc = malloc((blen + 2) / 3 * 4 + 1))) goto out;
        EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)b, (int)blen);
        body = json_string(enc);
        b64 = 1;
    }
    json_object_set_new(o, "isBase64Encoded", json_boolean(b64));
    json_object_set_new(o, "statusCode", json_integer(resp->status));
    json_object_set(o, "headers", h);
    json_object_set(o, "body", body);
    if ((text = json_dumps(o, JSON_COMPACT)) && len) *len = strlen(text);
out:
    json_decref(body);
    json_decref(h);
    json_decref(o);
    free(enc);
    return text;
}

int td_scf_handle(td_api *api, const char *event, size_t len, int64_t deadline_ms, char **out,
                  size_t *outlen, char *err, size_t errlen)
{
    td_scf_req r;
    td_api_resp resp;
    int rc;

    if ((rc = td_scf_parse_event(event, len, &r, err, errlen)) != TD_OK) return rc;
    r.req.deadline_ms = deadline_ms;
    td_api_handle(api, &r.req, &resp);
    *out = td_scf_response(&resp, r.head, outlen);
    td_api_resp_clear(&resp);
    td_scf_req_clear(&r);
    if (!*out) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    return TD_OK;
}

/* --- the runtime API --------------------------------------------------- */

/* The margin left to post the answer: a tenth of the limit, at least half
 * a second (the answer is one local POST, but the instance may be slow
 * to get the CPU back) and at most two. */
td_scf_budget td_scf_budget_of(int64_t mono_ms, const char *limit)
{
    td_scf_budget b = {0, 0};
    char *end;
    long ms, margin;

    if (!limit) return b;
    errno = 0;
    ms = strtol(limit, &end, 10);
    if (errno || end == limit || *end || ms <= 0 || ms > 24L * 3600 * 1000) return b;
    margin = ms / 10 < 500 ? 500 : ms / 10 > 2000 ? 2000 : ms / 10;
    b.limit_ms = ms;
    b.deadline_ms = mono_ms + (ms > 2 * margin ? ms - margin : ms / 2);
    return b;
}

static int rt_post(const char *base, const char *path, const char *body, size_t len, char *err,
                   size_t errlen)
{
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    char url[512];
    td_httpc_req q = {.method = "POST", .url = url, .body = body, .body_len = len,
                      .headers = hdrs, .timeout_ms = 10000};
    td_httpc_resp r;
    int rc;

    snprintf(url, sizeof url, "%s%s", base, path);
    if ((rc = td_httpc_do(&q, &r, err, errlen)) != TD_OK) return rc;
    if (r.status < 200 || r.status > 299) {
        snprintf(err, errlen, "SCF 运行时 API %s 返回 HTTP %ld", path, r.status);
        rc = TD_EHTTP;
    }
    td_httpc_resp_clear(&r);
    return rc;
}

void td_scf_init_error(const char *base_url, const char *msg)
{
    char err[256];
    if (rt_post(base_url, "/runtime/init/error", msg, strlen(msg), err, sizeof err) != TD_OK)
        td_log("❌ 无法向 SCF 报告启动失败: %s", err);
}

int td_scf_is_timer(const char *json, size_t len)
{
    json_t *o = len <= TD_SCF_EVENT_MAX ? json_loadb(json, len, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(o, "Type"));
    int timer = type && !strcmp(type, "Timer") && !json_object_get(o, "httpMethod");

    json_decref(o);
    return timer;
}

int td_scf_run(td_api *api, const char *base, td_scf_timer_cb timer, void *ud, char *err, size_t errlen)
{
    char url[512], herr[1536];
    int failures = 0, rc;

    /* Ready with a body of one space, as Tencent's own sample does
     * (`curl -d " " -X POST .../runtime/init/ready` in "Custom Runtime 创建
     * Bash 示例函数", https://www.tencentcloud.com/zh/document/product/583/38130;
     * the API itself: https://cloud.tencent.com/document/product/583/47274)
     * and as the tencent_scf crate learnt the hard way ("A space must be
     * sent, otherwise the upstream cloud rejects the request", notify_ready
     * in https://docs.rs/tencent_scf/latest/src/tencent_scf/lib.rs.html):
     * an empty POST may never mark the instance ready, and SCF then fails
     * the cold start at the initialisation timeout. */
    if ((rc = rt_post(base, "/runtime/init/ready", " ", 1, err, errlen)) != TD_OK) return rc;
    snprintf(url, sizeof url, "%s/runtime/invocation/next", base);
    for (;;) {
        /* A long poll: SCF answers when an event comes, however late. */
        td_httpc_req q = {.url = url, .timeout_ms = -1, .max_body = TD_SCF_EVENT_MAX};
        td_httpc_resp r;
        td_scf_budget budget;
        char *out = NULL;
        size_t outlen = 0;

        rc = td_httpc_do(&q, &r, err, errlen);
        if (rc == TD_ETOOBIG) { /* the event is in flight: say why it gets no answer */
            snprintf(herr, sizeof herr, "事件超过 %u 字节", TD_SCF_EVENT_MAX);
            rt_post(base, "/runtime/invocation/error", herr, strlen(herr), err, errlen);
            continue;
        }
        if (rc == TD_OK && r.status != 200) {
            snprintf(err, errlen, "SCF 运行时 API /runtime/invocation/next 返回 HTTP %ld",
                     r.status);
            td_httpc_resp_clear(&r);
            rc = TD_EHTTP;
        }
        if (rc != TD_OK) {
            if (++failures >= RUNTIME_TRIES) return rc;
            td_log("⚠️ 取下一个事件失败 (%d/%d): %s", failures, RUNTIME_TRIES, err);
            usleep(100000u << (failures < 5 ? failures : 5)); /* 0.2 s .. 3.2 s */
            continue;
        }
        failures = 0;
        {
            char limit[32];
            budget = td_scf_budget_of(td_clock_mono_ms(), td_httpc_header(&r, "time_limit_in_ms", limit, sizeof limit));
        }
        if (td_scf_is_timer(r.body ? r.body : "", r.body_len)) {
            if (!timer) {
                snprintf(herr, sizeof herr, "定时触发器需要飞书凭证：本函数没有配置 FEISHU_APP_ID/FEISHU_APP_SECRET，"
                                            "无法刷新 token");
                rc = TD_EINVAL;
            } else if ((rc = timer(ud, &budget, &out, herr, sizeof herr)) == TD_OK) {
                outlen = strlen(out);
            }
        } else {
            rc = td_scf_handle(api, r.body ? r.body : "", r.body_len, budget.deadline_ms, &out, &outlen, herr,
                               sizeof herr);
        }
        td_httpc_resp_clear(&r);
        if (rc == TD_OK) {
            rc = rt_post(base, "/runtime/invocation/response", out, outlen, err, errlen);
        } else {
            td_log("❌ 无法处理的事件: %s", herr);
            rc = rt_post(base, "/runtime/invocation/error", herr, strlen(herr), err, errlen);
        }
        if (rc != TD_OK) td_log("❌ 无法把结果交给 SCF: %s", err);
        free(out);
    }
}
