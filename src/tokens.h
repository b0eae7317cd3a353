/*
 * tokens -- the tokens this process keeps: which platform, which app, which
 * sinks, for each name.
 *
 * Settings are environment-first (SCF functions and systemd units are set
 * up that way).  The default token keeps the seed's FEISHU_APP_ID /
 * FEISHU_APP_SECRET / FEISHU_BASE_URL and its sinks (TENCENT_CLOUD_API_URL,
 * GITEE_FILE_PATH).  More tokens: TOKENDIST_TOKENS=wx,corp,ding and, per
 * name (upper-cased in the variable):
 *
 *   TOKENDIST_<NAME>_PROVIDER      feishu, lark, wechat, wecom, dingtalk (required)
 *   TOKENDIST_<NAME>_APP_ID        the app's id: appid, corpid, AppKey (required)
 *   TOKENDIST_<NAME>_APP_SECRET    its secret (required; redacted everywhere)
 *   TOKENDIST_<NAME>_BASE_URL      the platform's API base (tests, private deployments)
 *   TOKENDIST_<NAME>_JSAPI_TICKET  true: also keep its jsapi_ticket (wechat, wecom)
 *   TOKENDIST_<NAME>_RENEW_WINDOW  seconds; default: the platform's rule
 *   TOKENDIST_<NAME>_API_URL       push this token's records to this endpoint too
 *   TOKENDIST_<NAME>_API_KEY       its push key (default: TENCENT_CLOUD_API_KEY)
 *   TOKENDIST_<NAME>_GITEE_FILE_PATH  share it through this file of the GITEE_* repository
 *
 * Sinks are per name: a WeChat record never lands in the Feishu token's
 * endpoint or Gitee file -- a name without its own API_URL / GITEE_FILE_PATH
 * has none, and two names whose endpoint URLs land in one record
 * (td_sink_endpoint_key) or that name one Gitee file are a settings error.
 * Names follow the one rule (lower-case letters, digits, '_'),
 * so TOKENDIST_<NAME>_… is unambiguous.  These variables are read from the
 * environment and the env-file alike (td_config_env).
 */
#ifndef TD_TOKENS_H
#define TD_TOKENS_H

#include "config.h"
#include "provider.h"

#include <stddef.h>

#define TD_TOKENS_MAX 64

typedef struct td_token_conf {
    char name[TD_NAME_MAX + 1];
    td_provider provider;           /* strings point into the config */
    long renew_window;              /* s */
    int jsapi_ticket;
    int is_default;                 /* the seed's FEISHU_* token */
    const char *api_url, *api_key;  /* endpoint sink, or NULL */
    const char *gitee_path;         /* Gitee sink (the GITEE_* repository), or NULL */
} td_token_conf;

/* The tokens c configures: the default one when FEISHU_APP_ID and
 * FEISHU_APP_SECRET are set, then those TOKENDIST_TOKENS names.  *v is an
 * array of *n (free()).  TD_EINVAL with err naming the variable to fix
 * (both, for two names sharing a sink).  Half-configured Feishu (one of
 * the two set) is an error too. */
int td_tokens_from_config(const td_config *c, td_token_conf **v, size_t *n, char *err, size_t errlen);

/* What to set so that this process refreshes token name, whose records
 * say they come from platform kind (a record's "provider"; NULL: the
 * seed's, Feishu), as a clause for a message: the seed's FEISHU_APP_ID /
 * FEISHU_APP_SECRET for the default name of a Feishu token, else the
 * TOKENDIST_TOKENS entry and its TOKENDIST_<NAME>_* variables.  For the
 * 501 a report gets where nobody refreshes the name.  Returns buf. */
const char *td_tokens_setup_hint(const char *name, const char *kind, char *buf, size_t len);

/* The credentials of token t as an alert names them to check: "飞书应用凭证
 * (FEISHU_APP_ID / FEISHU_APP_SECRET)" for the default token, "微信应用凭证
 * (TOKENDIST_WX_APP_ID / TOKENDIST_WX_APP_SECRET)" for one of
 * TOKENDIST_TOKENS.  Returns buf. */
const char *td_tokens_credentials(const td_token_conf *t, char *buf, size_t len);

/* Prints the per-token settings (secrets as fingerprints), for
 * --print-config. */
void td_tokens_print(const td_config *c, FILE *f);

#endif
