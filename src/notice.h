/*
 * notice -- what the group is told, and how it gets there.
 *
 * The texts are the seed's, line for line ("🔑 客户端 Access Token 已更新" …),
 * plus an alert when refreshing has failed long enough that the served
 * token is about to run out, and a note when it recovers.  Delivery is a
 * message from the app to FEISHU_CHAT_ID (tenant token) and/or a post to a
 * custom-bot FEISHU_WEBHOOK_URL (signed when FEISHU_WEBHOOK_SECRET is set).
 * A notice is best effort: callers log a failure and carry on.
 */
#ifndef TD_NOTICE_H
#define TD_NOTICE_H

#include "feishu.h"

#include <stddef.h>
#include <stdint.h>

#define TD_NOTICE_TEXT_MAX 2048

typedef struct td_notice {
    const td_feishu *feishu;        /* base URL and timeout for the chat message */
    const char *chat_id;            /* NULL/"": no chat message */
    const char *webhook_url;        /* NULL/"": no webhook post (the URL is a secret) */
    const char *webhook_secret;     /* NULL/"": unsigned webhook */
    long timeout_ms;
} td_notice;

/* The seed's "token updated" message.  api_url NULL or "" leaves out the
 * 🔗 line (a server that knows no public address).  Minutes left are
 * rounded to the nearest minute, so a fresh 7200 s token says 120. */
int td_notice_updated_text(char *buf, size_t len, int64_t generated, int64_t expires, int64_t now,
                           const char *api_url);

/* Refreshing token `name` has failed `failures` times in a row and the
 * served token expires at `expires` (0: no token in service).  The title
 * names the token unless it is "default" (or NULL): the seed's token keeps
 * the seed's words.  `credentials` says what to check, "飞书应用凭证
 * (FEISHU_APP_ID / FEISHU_APP_SECRET)" when NULL or "" -- another
 * platform's token must not send the reader to Feishu's. */
int td_notice_alert_text(char *buf, size_t len, const char *name, int failures, int64_t expires, int64_t now,
                         const char *last_error, const char *credentials);

/* Refreshing token `name` works again after `failures` failed attempts;
 * the title as in the alert.  handover: this instance did not renew it --
 * another took the refresh lease over and a good token is in service
 * (whether that instance renewed it, or a producer POSTed it, it cannot
 * tell). */
int td_notice_recovered_text(char *buf, size_t len, const char *name, int failures, int64_t generated,
                             int64_t expires, int64_t now, int handover);

/* Feishu's custom-bot signature: base64(HMAC-SHA256(key = "<ts>\n<secret>",
 * message = "")), ts in seconds.  out needs 45 bytes. */
int td_notice_webhook_sign(int64_t ts, const char *secret, char *out, size_t outlen);

/* 1 when at least one way of delivery is configured. */
int td_notice_enabled(const td_notice *n);

/* Sends text every configured way.  Returns TD_OK when all of them took
 * it, else the first failure with err saying which way and why (never the
 * webhook URL). */
int td_notice_send(const td_notice *n, const char *tenant_token, const char *text, char *err,
                   size_t errlen);

#endif
