/*
 * sink -- the places a new token record is delivered to, as a tagged list:
 *
 *   endpoint  POST to TENCENT_CLOUD_API_URL with the seed's semantics (our
 *             own `tokendist serve`, or a Tencent SCF function), the push
 *             key as Authorization: Bearer;
 *   gitee     the record as a file in a Gitee repository: plaintext (the
 *             seed's format), or sealed with the share key (seal.h);
 *   local     the api store of the `tokendist serve` we run inside.
 *
 * Every enabled sink gets every new token; one failing sink never stops the
 * others, and a sink that failed keeps whatever it held before.
 */
#ifndef TD_SINK_H
#define TD_SINK_H

#include "api.h"
#include "config.h"
#include "endpoint.h"
#include "gitee.h"
#include "record.h"
#include "seal.h"

#include <stddef.h>

typedef enum { TD_SINK_ENDPOINT, TD_SINK_GITEE, TD_SINK_LOCAL } td_sink_kind;

typedef struct td_sink {
    td_sink_kind kind;
    const char *label;          /* for log lines: "腾讯云函数", "Gitee", "本地存储" */
    /* endpoint: the URL the record goes to, resolved from the setting by
     * endpoint.h's one rule (a base URL gets the path appended); a copy,
     * so a td_sink may be copied by value */
    char url[TD_ENDPOINT_URL_MAX];
    const char *key;            /* endpoint; may be NULL */
    td_gitee gitee;             /* gitee */
    td_seal_keys seal;          /* gitee: share keys (n == 0: plaintext); the first seals */
    td_api *api;                /* local */
    const char *name;           /* token name (endpoint, local, gitee) */
    long max_skew;              /* gitee with a share key: how far ahead an unverifiable file's time is believed */
    long timeout_ms;
} td_sink;

#define TD_SINKS_MAX 3

/* "endpoint", "gitee", "local": the kind as /metrics and /status name it. */
const char *td_sink_kind_name(td_sink_kind kind);

typedef struct td_sinks {
    td_sink v[TD_SINKS_MAX];
    size_t n;
} td_sinks;

/* Lists the sinks of token t (tokens.h: its endpoint, its Gitee file); api
 * (may be NULL) adds the local one first.  The sinks borrow c's and t's
 * strings: keep them alive while they are used.  Returns TD_OK, or
 * TD_EINVAL with err naming the missing setting (e.g. Gitee enabled
 * without GITEE_OWNER) or the URL that is not one. */
struct td_token_conf;
int td_sinks_from_config(td_sinks *s, const td_config *c, const struct td_token_conf *t, td_api *api, char *err,
                         size_t errlen);

/* The endpoint sink of a `tokendist serve` that is this server itself
 * (td_endpoint_is_self: the same address as its listen address or
 * TOKENDIST_PUBLIC_URL, or a loopback address on its port) is dropped:
 * the local sink already stores every record, and pushing it over HTTP
 * would only knock on our own door -- in a loop of 401s when the push key
 * is not ours.  Says so in the log, once.  Returns how many were dropped. */
int td_sinks_drop_self(td_sinks *s, const td_endpoint_self *me);

/* The endpoint sink of a command that tests or feeds only the endpoint
 * (check): url resolved for token name, key may be NULL.  TD_OK, or
 * TD_EINVAL with err naming the URL. */
int td_sink_endpoint(td_sink *k, const char *url, const char *key, const char *name, long timeout_ms, char *err,
                     size_t errlen);

/* Where token name's records go when its endpoint setting is url, as one
 * string that is equal for two settings exactly when they land in the same
 * record of the same server: url resolved for name (endpoint.h: a base URL
 * gets the name's path), then scheme and host in lower case, the port
 * spelled out, no user info, the path decoded without a trailing '/', and
 * the seed's paths (/release/get-token, /get-token) as /v1/tokens/default
 * -- where a tokendist server stores them.  TD_OK, or TD_EINVAL for a URL
 * that does not resolve or parse (buf then holds url itself). */
int td_sink_endpoint_key(const char *url, const char *name, char *buf, size_t len);

/* Logs which sinks are on, the seed's way ("腾讯云函数 Token分发功能已启用",
 * "API地址: …"); for the Gitee file whether it is sealed (the key's kid),
 * or a warning that anyone who can read the repository can read the token. */
void td_sinks_log_enabled(const td_sinks *s);

/* Delivers r.  Logs the seed's lines for the endpoint ("正在上传token到腾讯云函数...",
 * "Token已成功分发到腾讯云函数", "❌ 腾讯云函数HTTP错误: 404", "❌ 腾讯云函数返回错误: …")
 * and one line per outcome for the others; err repeats the failure.
 * TD_ECONFLICT means the sink holds a record at least as new as r (the
 * server's 409, the store's put-if-newer, the Gitee file's own check):
 * r did not go there, and retrying would not change that. */
int td_sink_push(const td_sink *s, const td_record *r, char *err, size_t errlen);

/* The record the sink serves now (a valid, unexpired one), so a restarted
 * refresher knows what is in service: TD_OK with *out (caller frees),
 * TD_ENOTFOUND, or another failure. */
int td_sink_current(const td_sink *s, td_record **out, char *err, size_t errlen);

/* `tokendist check`'s connection test of an endpoint: TD_OK when it
 * answers as a distribution endpoint does (200 with a record, or our own
 * 404 "Token not found or expired"); else err is the seed's
 * "腾讯云函数HTTP错误: N" or the transport failure. */
int td_sink_probe(const td_sink *s, char *err, size_t errlen);

#endif
