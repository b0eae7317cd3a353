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

/* Feishu codes with a meaning of their own. */
#define TD_FEISHU_CODE_RATELIMIT 99991400L
#define TD_FEISHU_CODE_TOKEN_INVALID 99991663L   /* invalid access token */
#define TD_FEISHU_CODE_TOKEN_EXPIRED 99991664L   /* invalid (e.g. expired) app access token */
#define TD_FEISHU_CODE_TOKEN_MISSING 99991671L   /* invalid token format */

/* Maps a Feishu Open API answer onto the tokendist return convention:
 *   code 0                                  -> TD_OK
 *   code 99991663 / 99991664 / 99991671     -> TD_EAUTH
 *   HTTP 429 or code 99991400               -> TD_ERATELIMIT
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
