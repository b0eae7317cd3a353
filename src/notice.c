/* notice -- see notice.h. */
#include "notice.h"
#include "record.h"
#include "clock.h"
#include "httpc.h"
#include "strbuf.h"
#include "tokendist.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long minutes_left(int64_t expires, int64_t now)
{
    int64_t s = expires - now;
    return s <= 0 ? 0 : (long)((s + 30) / 60);
}

/* The texts are built in the caller's buffer; one that does not fit is
 * TD_ETOOBIG (see strbuf.h), never a cut message. */
int td_notice_updated_text(char *buf, size_t len, int64_t generated, int64_t expires, int64_t now,
                           const char *api_url)
{
    char g[TD_TIME_LEN], e[TD_TIME_LEN], shown[1024];
    td_strbuf b;

    td_clock_format(generated, g);
    td_clock_format(expires, e);
    td_strbuf_fixed(&b, buf, len);
    td_strbuf_printf(&b, "🔑 客户端 Access Token 已更新\n\n📅 生成时间: %s\n⏰ 过期时间: %s (剩余 %ld 分钟)\n",
                     g, e, minutes_left(expires, now));
    /* The group reads the address, never the credentials it may carry. */
    if (api_url && *api_url)
        td_strbuf_printf(&b, "🔗 腾讯云函数API: %s\n", td_httpc_redact_url(api_url, 0, shown, sizeof shown));
    return td_strbuf_puts(&b, "\n请客户端使用此API地址获取最新的access_token");
}

/* " (token NAME)" after a title, except for the seed's token. */
static const char *which(const char *name, char *buf, size_t len)
{
    if (!name || !*name || !strcmp(name, "default")) return "";
    snprintf(buf, len, " (token %s)", name);
    return buf;
}

int td_notice_alert_text(char *buf, size_t len, const char *name, int failures, int64_t expires, int64_t now,
                         const char *last_error, const char *credentials)
{
    char e[TD_TIME_LEN], w[TD_NAME_MAX + 16];
    td_strbuf b;

    td_strbuf_fixed(&b, buf, len);
    td_strbuf_printf(&b, "⚠️ 客户端 Access Token 刷新失败%s\n\n❌ 已连续失败 %d 次，最近一次: %s\n",
                     which(name, w, sizeof w), failures, last_error && *last_error ? last_error : "未知错误");
    if (expires <= 0)
        td_strbuf_puts(&b, "⏰ 目前没有可分发的 token\n");
    else if (expires <= now)
        td_strbuf_printf(&b, "⏰ 当前 token 已于 %s 过期，客户端将无法获取 token\n", td_clock_format(expires, e));
    else
        td_strbuf_printf(&b, "⏰ 当前 token 过期时间: %s (剩余 %ld 分钟)\n", td_clock_format(expires, e),
                         minutes_left(expires, now));
    return td_strbuf_printf(&b, "\n请检查%s 与网络，tokendist 会继续重试",
                            credentials && *credentials ? credentials : "飞书应用凭证 (FEISHU_APP_ID / FEISHU_APP_SECRET)");
}

int td_notice_recovered_text(char *buf, size_t len, const char *name, int failures, int64_t generated,
                             int64_t expires, int64_t now, int handover)
{
    char g[TD_TIME_LEN], e[TD_TIME_LEN], w[TD_NAME_MAX + 16];
    td_strbuf b;

    td_clock_format(generated, g);
    td_clock_format(expires, e);
    td_strbuf_fixed(&b, buf, len);
    if (handover)
        td_strbuf_printf(&b,
                         "✅ 客户端 Access Token 已恢复%s\n\n本实例连续刷新失败 %d 次后，刷新租约已由另一实例接管，"
                         "分发中的 token 有效\n",
                         which(name, w, sizeof w), failures);
    else
        td_strbuf_printf(&b, "✅ 客户端 Access Token 刷新已恢复%s\n\n连续失败 %d 次后已重新获取 token\n",
                         which(name, w, sizeof w), failures);
    return td_strbuf_printf(&b, "📅 生成时间: %s\n⏰ 过期时间: %s (剩余 %ld 分钟)", g, e, minutes_left(expires, now));
}

int td_notice_webhook_sign(int64_t ts, const char *secret, char *out, size_t outlen)
{
    char key[1200];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n = snprintf(key, sizeof key, "%lld\n%s", (long long)ts, secret ? secret : "");

    if (n < 0 || (size_t)n >= sizeof key || outlen < 45) return TD_ETOOBIG;
    /* Feishu signs nothing with the secret as part of the key. */
    if (!HMAC(EVP_sha256(), key, n, (const unsigned char *)"", 0, mac, &maclen)) {
        memset(key, 0, sizeof key);
        return TD_ERR;
    }
    memset(key, 0, sizeof key);
    EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
    return TD_OK;
}

int td_notice_enabled(const td_notice *n)
{
    return (n->chat_id && *n->chat_id) || (n->webhook_url && *n->webhook_url);
}

/* One post of text to the custom bot; on TD_ERATELIMIT, *wait_s is the
 * server's Retry-After (-1 when it sent none). */
static int post_webhook(const td_notice *n, const char *text, long *wait_s, char *err, size_t errlen)
{
    const char *hdrs[] = {"Content-Type: application/json; charset=utf-8", NULL};
    char why[512], sign[64], ts[24];
    json_t *req = NULL;
    char *body = NULL;
    td_httpc_resp resp = {0};
    int rc = TD_ENOMEM;

    if (!(req = json_pack("{s:s, s:{s:o}}", "msg_type", "text", "content", "text", td_json_text(text)))) {
        snprintf(err, errlen, "飞书机器人 webhook 发送失败: 无法把消息编码为 JSON (%s)", td_strerror(rc));
        goto out;
    }
    if (n->webhook_secret && *n->webhook_secret) {
        int64_t now = td_clock_now();
        if ((rc = td_notice_webhook_sign(now, n->webhook_secret, sign, sizeof sign)) != TD_OK) {
            snprintf(err, errlen, "飞书机器人签名失败 (FEISHU_WEBHOOK_SECRET 过长?)");
            goto out;
        }
        snprintf(ts, sizeof ts, "%lld", (long long)now);
        json_object_set_new(req, "timestamp", json_string(ts));
        json_object_set_new(req, "sign", json_string(sign));
    }
    rc = TD_ENOMEM;
    if (!(body = json_dumps(req, JSON_COMPACT))) goto out;
    {
        td_httpc_req hr = {.method = "POST", .url = n->webhook_url, .body = body,
                           .body_len = strlen(body), .headers = hdrs, .timeout_ms = n->timeout_ms,
                           .max_body = 64u << 10};
        if ((rc = td_httpc_do(&hr, &resp, why, sizeof why)) != TD_OK) {
            /* Not the URL: a webhook's path is itself a credential. */
            const char *what = td_httpc_err_detail(why, n->webhook_url);
            snprintf(err, errlen, "飞书机器人 webhook 发送失败: %.400s", what ? what : "请求失败");
            goto out;
        }
    }
    if ((rc = td_feishu_result(&resp, NULL, why, sizeof why)) != TD_OK)
        snprintf(err, errlen, "飞书机器人 webhook 发送失败: %.400s", why);
    if (rc == TD_ERATELIMIT) *wait_s = td_httpc_retry_after(&resp);
out:
    json_decref(req);
    free(body);
    td_httpc_resp_clear(&resp);
    return rc;
}

/* A custom bot allows 5 messages a second and 100 a minute, and answers
 * 11232 over that -- also, Feishu warns, at busy times such as the full
 * and half hour (自定义机器人使用指南,
 * https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot).
 * So a rate-limited post is tried again after the limit: what the server
 * asks (at most WEBHOOK_WAIT_MAX s), else 1 s (the per-second window) and
 * then 5 s.  The waits are short because the refresher thread sends
 * notices, and stop when the process shuts down. */
#define WEBHOOK_TRIES 3
#define WEBHOOK_WAIT_MAX 10L

static int send_webhook(const td_notice *n, const char *text, char *err, size_t errlen)
{
    static const long backoff_s[WEBHOOK_TRIES - 1] = {1, 5};
    int rc = TD_ERR;

    for (int i = 0; i < WEBHOOK_TRIES; i++) {
        long wait_s = -1;
        if ((rc = post_webhook(n, text, &wait_s, err, errlen)) != TD_ERATELIMIT || i == WEBHOOK_TRIES - 1)
            break;
        if (wait_s < 0) wait_s = backoff_s[i];
        if (wait_s > WEBHOOK_WAIT_MAX) wait_s = WEBHOOK_WAIT_MAX;
        if (td_httpc_pause(wait_s * 1000) != TD_OK) break;  /* shutting down: err says why it failed */
    }
    return rc;
}

int td_notice_send(const td_notice *n, const char *tenant_token, const char *text, char *err,
                   size_t errlen)
{
    int rc = TD_OK, r;
    char why[512] = "";

    if (n->chat_id && *n->chat_id) {
        td_feishu f = *n->feishu;
        if (n->timeout_ms) f.timeout_ms = n->timeout_ms;
        if ((r = td_feishu_send_text(&f, tenant_token, n->chat_id, text, why, sizeof why)) != TD_OK) {
            snprintf(err, errlen, "%s", why);
            rc = r;
        }
    }
    if (n->webhook_url && *n->webhook_url) {
        if ((r = send_webhook(n, text, why, sizeof why)) != TD_OK && rc == TD_OK) {
            snprintf(err, errlen, "%s", why);
            rc = r;
        }
    }
    return rc;
}
