/*
 * tokendist.h -- public face of libtokendist.
 *
 * One return convention everywhere in tokendist: 0 (TD_OK) on success, a
 * negative TD_E* code on failure, and td_strerror() for a short text.  Calls
 * that can fail for a reason worth telling a person also fill a caller
 * supplied `err` buffer with a full sentence (what failed, where, what next).
 */
#ifndef TOKENDIST_H
#define TOKENDIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TD_VERSION "0.1.0"

enum {
    TD_OK = 0,
    TD_ERR = -1,          /* unspecified failure */
    TD_ENOMEM = -2,       /* out of memory */
    TD_EINVAL = -3,       /* bad input: argument, record, request, setting */
    TD_ENOTFOUND = -4,    /* no such token (or it has expired) */
    TD_ECONFLICT = -5,    /* record older than the stored one */
    TD_EUNAVAIL = -6,     /* temporarily unavailable: try again later */
    TD_EIO = -7,          /* storage or file I/O failed */
    TD_EAUTH = -8,        /* missing or wrong credentials */
    TD_EHTTP = -9,        /* HTTP transport failed or unexpected status */
    TD_EUPSTREAM = -10,   /* upstream answered with an error (Feishu code != 0) */
    TD_ETOOBIG = -11,     /* input over its bound */
    TD_EEXPIRED = -12,    /* token expired or expiring within the minimum */
    TD_ETIMEOUT = -13,    /* timed out */
    TD_ERATELIMIT = -14,  /* upstream rate limit */
    TD_ECANCELED = -15,   /* stopped: the process is shutting down */
    TD__ELAST = -16
};

/* Short, static English text for a TD_E* code; never NULL. */
const char *td_strerror(int code);

/* ======================================================================
 * Client API: get the token from tokendist (or its fallbacks) and report
 * a token Feishu rejected.
 *
 * A td_client fetches the token record from, in order, the endpoint URLs,
 * a Gitee repository file (the refresher's fallback sink) and a local
 * cache file, and keeps the record in memory while it has more than
 * `min_remaining` seconds left.  Remaining time is measured against the
 * clock of the server that answered (its Date header), so a client whose
 * clock is off neither uses an expired token nor throws away a good one.
 *
 * Threads: every td_client_* call may be made from any thread at once.
 * Callers that find no usable token in memory share one fetch; a failed
 * fetch is shared by the callers that waited for it and not remembered.
 * The library keeps no global state: every client is independent.
 * ====================================================================== */

#define TD_CLIENT_TOKEN_MAX 4096    /* Feishu's newer tokens are JWTs */

typedef struct td_client td_client;

/* Where a token came from. */
typedef enum td_source {
    TD_SOURCE_NONE = 0,
    TD_SOURCE_MEMORY,       /* the client's memory: no request was made */
    TD_SOURCE_ENDPOINT,     /* a tokendist server (or the seed's SCF URL) */
    TD_SOURCE_GITEE,        /* the record file in the Gitee repository */
    TD_SOURCE_CACHE,        /* the local cache file */
} td_source;

/* Which of the record's tokens to return. */
typedef enum td_token_kind {
    TD_TOKEN_APP = 0,       /* access_token (app_access_token) */
    TD_TOKEN_TENANT = 1,    /* tenant_access_token, for the im/v1 APIs */
} td_token_kind;

/* Options of td_client_new.  Strings are copied: the caller may free them
 * once td_client_new returns.  Zero means "default" for every number. */
typedef struct td_client_opts {
    const char *const *urls;    /* endpoints, tried in order: …/release/get-token,
                                 * …/get-token, …/v1/tokens/NAME, or a bare
                                 * http(s)://host[:port] (then /v1/tokens/NAME) */
    size_t nurls;
    const char *read_key;       /* sent to the endpoints as Authorization: Bearer */
    const char *name;           /* token name for bare URLs; NULL: "default" */
    struct {                    /* Gitee fallback; off while owner is NULL */
        const char *base_url;   /* NULL: https://gitee.com/api/v5 */
        const char *owner, *repo;
        const char *path;       /* NULL: token.json */
        const char *branch;     /* NULL: the repository's default branch */
        const char *access_token;
    } gitee;
    const char *cache_file;     /* NULL: no cache file */
    long min_remaining;         /* seconds a token must still have; 0: 300; <0: none */
    long timeout_ms;            /* each HTTP request; 0: 10000 */
    long connect_timeout_ms;    /* 0: 5000 */
    long refresh_wait_ms;       /* after report_invalid, how long a fetch waits for a
                                 * token other than the reported one; 0: 5000 */
} td_client_opts;

/* One answer of td_client_get.  Everything is inside the struct (the token
 * is copied into it): the caller owns it and nothing needs freeing. */
typedef struct td_token {
    char token[TD_CLIENT_TOKEN_MAX + 1];
    int64_t expires;            /* Unix seconds, as the record says */
    int64_t remaining;          /* seconds left by the server's clock */
    td_source source;           /* where this call got it (MEMORY when cached) */
    td_source origin;           /* where the record was fetched from */
} td_token;

/* Creates a client.  Fails with TD_EINVAL (err says which option) when no
 * source is configured or an option is malformed.  *out is set only on
 * success; free it with td_client_free. */
int td_client_new(td_client **out, const td_client_opts *opts, char *err, size_t errlen);

/* Frees a client (NULL is fine).  No other call on it may be running. */
void td_client_free(td_client *c);

/* Fills *out with a token of `kind` that has more than min_remaining
 * seconds left: from memory when possible, else endpoints → Gitee → cache
 * file (the first valid, fresh-enough record wins; it is then kept in
 * memory and written to the cache file).  On failure, err says which
 * source failed and why (one line per source when several were tried);
 * codes: TD_ENOTFOUND (no source has a token), TD_EEXPIRED (only tokens
 * expired or expiring within the minimum), TD_EAUTH, TD_EHTTP,
 * TD_ETIMEOUT, TD_EINVAL (a source sent a malformed record). */
int td_client_get(td_client *c, td_token_kind kind, td_token *out, char *err, size_t errlen);

/* Like td_client_get, but gives the whole record as JSON text.  On
 * success *json is a NUL-terminated copy owned by the caller: release it
 * with free(); *len (may be NULL) is its length. */
int td_client_get_record(td_client *c, td_token_kind kind, char **json, size_t *len,
                         td_token *out, char *err, size_t errlen);

/* Reports that Feishu answered 99991663/99991664/99991668/99991671 for `token`.
 * The client drops the token (the next td_client_get fetches and, for up
 * to refresh_wait_ms, waits for a different token) and tells the first
 * endpoint that answers: POST …/v1/tokens/NAME/invalid.  Many reports of
 * one token send one request.  Returns TD_OK when the server has a token
 * other than the reported one (200: kept, when neither of its tokens is
 * the reported one) or started a refresh whose outcome it could not wait
 * for (202).  TD_ECONFLICT (409): Feishu still issues the reported token,
 * so there is nothing newer to wait for -- the next get returns it again
 * at once, and further reports of it get the same answer without a
 * request.  Other codes: TD_EUNAVAIL (no refresher reachable: 501/503),
 * TD_EAUTH, TD_EHTTP (502: the forced refresh failed), TD_ENOTFOUND (404),
 * TD_EINVAL (no endpoint URL to report to). */
int td_client_report_invalid(td_client *c, const char *token, char *err, size_t errlen);

/* "endpoint", "gitee", … for messages; never NULL. */
const char *td_source_name(td_source s);

#ifdef __cplusplus
}
#endif
#endif /* TOKENDIST_H */
