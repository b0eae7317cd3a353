/*
 * provider -- a platform that issues short-lived access tokens, behind one
 * small vtable, so that one refresher, one store, one fleet lease and the
 * same clients serve every such token.
 *
 * Implementations in src/provider/: feishu.c (Feishu and Lark),
 * wechat.c (公众号/小程序 stable token), wecom.c (企业微信),
 * dingtalk.c (钉钉).  The facts each follows, with their sources, are in
 * docs/providers.md.
 *
 * What differs is how a platform renews, and the refresher schedules by
 * it so that a reader never sees a gap:
 *   IN_WINDOW      the same token until its last renew_window seconds, then
 *                  a new one while the old stays valid (Feishu: 30 min,
 *                  WeChat's stable token: 5 min) -- fetch just inside the
 *                  window;
 *   AFTER_EXPIRY   the same token until it expires, then a new one (WeCom)
 *                  -- fetch right after the expiry; clients take the old
 *                  one to its last second (min_remaining near 0);
 *   EXTENDS        a fetch during the lifetime extends it (DingTalk) --
 *                  fetch when renew_window seconds are left, the record
 *                  is rebuilt with the new expiry; a fetch that does not
 *                  move the expiry turns the refresher to AFTER_EXPIRY for
 *                  that token (docs/providers.md: the extension is read
 *                  into DingTalk's documentation, not stated).
 */
#ifndef TD_PROVIDER_H
#define TD_PROVIDER_H

#include "record.h"

#include <stddef.h>

typedef struct td_provider td_provider;

/* What a platform answered for a token. */
typedef struct td_grant {
    char token[TD_TOKEN_MAX + 1];
    char tenant[TD_TOKEN_MAX + 1];  /* Feishu's tenant_access_token; "" elsewhere */
    long expire;                    /* seconds left, as the platform says */
    long retry_after;               /* on TD_ERATELIMIT: seconds to wait, else -1 */
    int quota_spent;                /* on failure: the platform's monthly quota of calls is
                                     * used up (Feishu 99991403) -- no wait short of the
                                     * month's turn helps, so retry seldom */
} td_grant;

typedef enum { TD_RENEW_IN_WINDOW, TD_RENEW_AFTER_EXPIRY, TD_RENEW_EXTENDS } td_renewal;

typedef struct td_provider_ops {
    const char *kind;               /* "feishu", "lark", "wechat", "wecom", "dingtalk" */
    const char *label;              /* for people: "飞书" */
    const char *default_base;       /* the platform's API base URL */
    td_renewal renewal;
    long renew_window;              /* s, see above (0 for AFTER_EXPIRY) */
    long min_remaining;             /* the least a client should accept by default, s */
    const char *id_name;            /* how the platform calls the app id ("App ID", "corpid", ...) */
    /* What a reporter is told when the platform still issues the token it
     * reported (409, and the log): why no new token comes -- the
     * platform's own renewal rule, as one clause without a full stop --
     * and what else to check, since the call failed for another reason. */
    const char *reissue_rule;       /* "飞书只在过期前 30 分钟内换发新 token，…" */
    const char *report_hint;        /* "应用权限、应用凭证是否被重置、token 类型" */

    /* Fetches the token.  forced: a client confirmed the token invalid --
     * platforms with a forced mode use it (WeChat), the others fetch as
     * usual.  TD_OK, or TD_EAUTH (the credentials were refused),
     * TD_ERATELIMIT (with retry_after), TD_EUPSTREAM (the platform said no:
     * err has its code and message), TD_EHTTP / TD_ETIMEOUT (transport),
     * TD_ECANCELED (shutting down). */
    int (*fetch)(const td_provider *p, int forced, td_grant *out, char *err, size_t errlen);

    /* Optional: one cheap call that asks the platform whether token is
     * still valid: TD_OK valid, TD_EAUTH invalid, else could not tell. */
    int (*check)(const td_provider *p, const char *token, char *err, size_t errlen);

    /* Optional: the jsapi_ticket derived from token, in out->token.  The
     * refresher renews a ticket TD_TICKET_RENEW_WINDOW seconds before its
     * expiry (and after every new token). */
    int (*ticket)(const td_provider *p, const char *token, td_grant *out, char *err, size_t errlen);
} td_provider_ops;

#define TD_TICKET_RENEW_WINDOW 300

struct td_provider {
    const td_provider_ops *ops;
    const char *base_url;           /* NULL or "": ops->default_base */
    const char *app_id;
    const char *app_secret;
    long timeout_ms;                /* 0: 10 s */
};

/* The provider of that kind, or NULL. */
const td_provider_ops *td_provider_find(const char *kind);

/* "feishu, lark, wechat, wecom, dingtalk", for messages. */
const char *td_provider_kinds(void);

/* p's API base, without a trailing slash, into buf; returns buf. */
const char *td_provider_base(const td_provider *p, char *buf, size_t len);

/* Copies a token from a platform's answer into dst (size dlen), refusing
 * one that could not travel in a header or a record (empty, too long, not
 * visible ASCII): the one check every provider needs. */
int td_provider_take_token(const char *label, const char *what, const char *s, char *dst, size_t dlen,
                           char *err, size_t errlen);

extern const td_provider_ops td_provider_feishu, td_provider_lark, td_provider_wechat, td_provider_wecom,
    td_provider_dingtalk;

#endif
