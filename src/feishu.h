/*
 * feishu -- the Feishu / Lark Open Platform, as much as tokendist needs:
 * the app access token, a text message to a chat, and the {code,msg}
 * envelope every Open API answer carries.
 *
 * Feishu reports most failures as HTTP 200 with code != 0, so the HTTP
 * status alone never decides success: td_feishu_result() does.
 */
#ifndef TD_FEISHU_H
#define TD_FEISHU_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "httpc.h"

#define TD_FEISHU_DEFAULT_BASE "https://open.feishu.cn"

/* Feishu codes with a meaning of their own (服务端错误码说明,
 * https://open.feishu.cn/document/server-docs/api-call-guide/generic-error-code). */
#define TD_FEISHU_CODE_RATELIMIT 99991400L
#define TD_FEISHU_CODE_TOKEN_INVALID 99991663L   /* invalid access token */
#define TD_FEISHU_CODE_TOKEN_EXPIRED 99991664L   /* invalid (e.g. expired) app access token */
#define TD_FEISHU_CODE_TOKEN_REJECTED 99991668L  /* "Invalid access token for authorization":
                                                   * the gateway's answer for a token it cannot
                                                   * use, seen for JWT-shaped tokens */
#define TD_FEISHU_CODE_TOKEN_MISSING 99991671L   /* invalid token format */
/* The Basic (free) plan's monthly quota of API calls for custom apps is
 * spent ("Custom app API call limit",
 * https://open.feishu.cn/document/platform-notices/platform-updates-/custom-app-api-call-limit):
 * nothing helps before the month turns or the tenant upgrades, so this is
 * no rate limit to wait out but a failure to report and retry seldom. */
#define TD_FEISHU_CODE_QUOTA 99991403L
/* A custom bot's rate limit (5 a second, 100 a minute per bot, 自定义机器人
 * 使用指南, https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot). */
#define TD_FEISHU_CODE_BOT_RATELIMIT 11232L

/* Maps a Feishu Open API answer onto the tokendist return convention:
 *   code 0                                  -> TD_OK
 *   code 99991663 / 99991664 / 99991668 / 99991671
 *                                           -> TD_EAUTH
 *   HTTP 429 or code 99991400 or 11232      -> TD_ERATELIMIT
 *   anything else (incl. a body that is not a Feishu JSON object)
 *                                           -> TD_EUPSTREAM, err "code N: msg"
 * On TD_OK, *data_or_root (when not NULL) receives a new reference to the
 * answer's "data" object when it has one, else to the whole root object;
 * the caller json_decref()s it.  On failure it is set to NULL. */
int td_feishu_result(const td_httpc_resp *r, json_t **data_or_root, char *err, size_t errlen);

typedef struct td_feishu {
    const char *base_url;       /* NULL: TD_FEISHU_DEFAULT_BASE */
    const char *app_id;
    const char *app_secret;
    long timeout_ms;            /* 0: 10 s */
} td_feishu;

/* One answer of /open-apis/auth/v3/app_access_token/internal. */
typedef struct td_feishu_token {
    char app_access_token[4096 + 1];
    char tenant_access_token[4096 + 1];     /* "" when Feishu sent none */
    long expire;                /* seconds remaining, as Feishu reports them */
    long retry_after;           /* on TD_ERATELIMIT: seconds to wait, else -1 */
    int quota_spent;            /* Feishu answered TD_FEISHU_CODE_QUOTA */
} td_feishu_token;

/* Fetches the app (and tenant) access token.  Returns TD_OK, or TD_EAUTH /
 * TD_ERATELIMIT / TD_EUPSTREAM (Feishu said no: err has "code N: msg"),
 * TD_EHTTP / TD_ETIMEOUT (transport), TD_ETOOBIG (token over its bound). */
int td_feishu_fetch_token(const td_feishu *f, td_feishu_token *out, char *err, size_t errlen);

/* The answer of the token request, as td_feishu_fetch_token judges it:
 * td_feishu_result's mapping, then both tokens (bounded) and a sane
 * "expire".  Pure (no I/O), so the fuzzer runs exactly this code; out is
 * always reset, and on failure holds no token. */
int td_feishu_parse_token(const td_httpc_resp *resp, td_feishu_token *out, char *err, size_t errlen);

/* Sends a plain text message to chat_id with the tenant token
 * (POST /open-apis/im/v1/messages?receive_id_type=chat_id). */
int td_feishu_send_text(const td_feishu *f, const char *tenant_token, const char *chat_id,
                        const char *text, char *err, size_t errlen);

#endif
