/* tests/abi/tokendist-1.h: include/tokendist.h of release 0.2.0, the first
 * of ABI 1 (libtokendist.so.1), frozen: programs built against it must
 * keep running against every later libtokendist.so.1 (tests/abi/test_abi.py).
 * Never edit it; a later ABI gets a file of its own. */
/*
 * tokendist.h -- public face of libtokendist.
 *
 * One return convention everywhere in tokendist: 0 (TD_OK) on success, a
 * negative TD_E* code on failure, and td_strerror() for a short text.  Calls
 * that can fail for a reason worth telling a person also fill a caller
 * supplied `err` buffer with a full sentence (what failed, where, what next).
 *
 * Language: td_strerror() and every sentence the library writes into `err`
 * are Chinese (UTF-8), like everything else tokendist shows a person.  The
 * codes are the stable part: test codes, never the text, which may be
 * reworded in any release.  An `err` buffer of 1024 bytes holds any single
 * sentence; a failed fetch lists one line per source, so give 4096.
 *
 * ABI
 * ---
 * libtokendist.so.1 keeps its ABI for as long as its soname is 1: a program
 * built against this header runs against every later libtokendist.so.1.
 * That is why:
 *   - the client's options live in an opaque td_client_opts, set one at a
 *     time (libcurl's model): a new option is a new TD_OPT_* number, never
 *     a new field in a struct the program allocated.  A size-first struct
 *     was the alternative; it freezes every field's type and place, cannot
 *     say which option was wrong, and breaks the day a nested struct grows.
 *   - a td_token is allocated by the library (td_client_get) and freed by it
 *     (td_free): a program never declares one, never copies one by value,
 *     and never depends on sizeof(td_token), so later versions append
 *     fields to it.  The token has no length limit in the ABI: the library
 *     takes any token its validator accepts (the server's limit).
 *   - every exported function carries a symbol version (TOKENDIST_1, later
 *     TOKENDIST_1.1 …); a program that needs a later function fails to
 *     load with a message naming the version instead of crashing.
 *   - TD_OPT_* and TD_E* numbers are never reused or renumbered; new codes
 *     may appear, so treat an unknown negative code as a failure.
 * TD_VERSION is the header's release, td_version() the library's at run
 * time; a program written for a later release checks TD_VERSION_NUM at
 * compile time and handles TD_ENOTSUP from a setter at run time (the
 * option is then not set, and td_client_new still makes the client).
 *
 * libcurl
 * -------
 * The library uses libcurl.  The first td_client_new calls
 * curl_global_init(CURL_GLOBAL_DEFAULT) once (under pthread_once) and the
 * library never calls curl_global_cleanup.  A program that uses libcurl
 * itself should call curl_global_init in main() before it starts threads
 * and before its first td_client_new (libcurl before 7.84 does not allow
 * curl_global_init to run in two threads at once); the library's call is
 * then a counted no-op.  curl_global_cleanup, if the program calls it at
 * all, comes after the last td_client_free.
 */
#ifndef TOKENDIST_H
#define TOKENDIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release this header belongs to.  TD_VERSION_NUM is 0xMMmmpp, for
 * #if TD_VERSION_NUM >= 0x000300 around use of a later option. */
#define TD_VERSION "0.2.0"
#define TD_VERSION_MAJOR 0
#define TD_VERSION_MINOR 2
#define TD_VERSION_PATCH 0
#define TD_VERSION_NUM ((TD_VERSION_MAJOR << 16) | (TD_VERSION_MINOR << 8) | TD_VERSION_PATCH)

/* What the library exports; everything else in it is hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define TD_API __attribute__((visibility("default")))
#else
#define TD_API
#endif

enum {
    TD_OK = 0,
    TD_ERR = -1,          /* unspecified failure */
    TD_ENOMEM = -2,       /* out of memory */
    TD_EINVAL = -3,       /* bad input: argument, record, request, setting */
    TD_ENOTFOUND = -4,    /* no such token (or it has expired) */
    TD_ECONFLICT = -5,    /* record not newer than the stored one; a reported
                           * token that Feishu still issues */
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
    TD_ENOTSUP = -16,     /* this library does not know the option (it is
                           * older than the header the program was built with) */
    TD_ESHAREKEY = -17,   /* the Gitee copy is sealed and no share key set
                           * opens it (none, or none with its kid); or it is
                           * plaintext while a share key is set */
    TD__ELAST = -18       /* not a code: one past the last (may move) */
};

/* A short, static Chinese text for a TD_E* code ("未知错误" for a code this
 * library does not know); never NULL.  Thread-safe. */
TD_API const char *td_strerror(int code);

/* The library's release at run time, e.g. "0.2.0": static, never NULL.
 * May be later than the TD_VERSION the program was built with.
 * Thread-safe. */
TD_API const char *td_version(void);

/* Frees memory the library handed to the caller (a td_token, a record's
 * JSON text), wiping it first: it holds a token.  NULL is fine.  Only for
 * memory the library returned, once; callable from any thread. */
TD_API void td_free(void *p);

/* ======================================================================
 * Client API: get the token from tokendist (or its fallbacks) and report
 * a token Feishu rejected.
 *
 * A td_client fetches the token record from, in order, the endpoint URLs,
 * a Gitee repository file (the refresher's fallback sink) and a local
 * cache file, and keeps the record in memory while it has more than the
 * minimum remaining time left.  Remaining time is measured against the
 * clock of the server that answered (its Date header), so a client whose
 * clock is off neither uses an expired token nor throws away a good one.
 *
 * Connections: each client keeps its connections open between requests
 * (HTTP keep-alive, TLS session reuse), so a fetch after the first costs a
 * round trip, not a handshake.  A connection idle for about two minutes
 * is not reused but replaced; td_client_free closes them all.
 *
 * Gitee: the Gitee API is asked at most once a minute per client; within
 * the minute the client uses what Gitee answered last (Gitee publishes no
 * rate limit, and one token repository serves many clients).
 *
 * Threads: a client is used from any number of threads at once (every
 * td_client_get / td_client_get_record / td_client_report_invalid call).
 * Callers that find no usable token in memory share one fetch; a failed
 * fetch is shared by the callers that waited for it and not remembered.
 * Clients are independent: the only state shared between them is
 * libcurl's global initialisation (see "libcurl" above).
 * ====================================================================== */

typedef struct td_client td_client;
typedef struct td_client_opts td_client_opts;

/* Where a token came from. */
typedef enum td_source {
    TD_SOURCE_NONE = 0,
    TD_SOURCE_MEMORY = 1,   /* the client's memory: no request was made */
    TD_SOURCE_ENDPOINT = 2, /* a tokendist server (or the seed's SCF URL) */
    TD_SOURCE_GITEE = 3,    /* the record file in the Gitee repository */
    TD_SOURCE_CACHE = 4,    /* the local cache file */
} td_source;

/* Which of the record's tokens to return. */
typedef enum td_token_kind {
    TD_TOKEN_APP = 0,       /* access_token (app_access_token) */
    TD_TOKEN_TENANT = 1,    /* tenant_access_token, for the im/v1 APIs */
} td_token_kind;

/* The options of a client.  The numbers are part of the ABI.  String
 * options are copied when set (the caller may free its string at once);
 * a NULL or "" string unsets the option.  Each option says its type: set
 * it with td_client_opts_set_str or td_client_opts_set_long. */
typedef enum td_option {
    /* str, repeatable: one more endpoint URL, tried in the order added
     * (NULL forgets all added so far):  …/release/get-token, …/get-token,
     * …/v1/tokens/NAME, or a bare http(s)://host[:port] (then
     * /release/get-token for the token "default", /v1/tokens/NAME for
     * another TD_OPT_NAME -- the same rule `tokendist refresh` pushes by). */
    TD_OPT_URL = 1,
    TD_OPT_READ_KEY = 2,            /* str: sent to the endpoints as Authorization: Bearer */
    TD_OPT_NAME = 3,                /* str: token name for bare URLs; default "default" */
    /* Gitee fallback: on when TD_OPT_GITEE_OWNER is set (then
     * TD_OPT_GITEE_REPO is required). */
    TD_OPT_GITEE_BASE_URL = 4,      /* str; default https://gitee.com/api/v5 */
    TD_OPT_GITEE_OWNER = 5,         /* str */
    TD_OPT_GITEE_REPO = 6,          /* str */
    TD_OPT_GITEE_PATH = 7,          /* str; default token.json */
    TD_OPT_GITEE_BRANCH = 8,        /* str; default: the repository's default branch */
    TD_OPT_GITEE_ACCESS_TOKEN = 9,  /* str; unset: anonymous (public repositories) */
    /* str: local cache file (0600; missing folders made 0700); unset:
     * none.  It names the token it holds (TD_OPT_NAME, token or
     * TD_OPT_TICKET's ticket): a file written for another name or kind
     * fails that source with TD_ENOTFOUND (docs/protocol.md, "The client
     * cache file"). */
    TD_OPT_CACHE_FILE = 10,
    /* long, seconds a token must still have, 0..86400.  0 takes any
     * token that has not expired.  Unset: the platform's own need, from
     * the record's "provider" -- 300 for Feishu/Lark/DingTalk (and records
     * without one), 60 for WeChat (its token is renewed in its last 5
     * minutes), 0 for WeCom (renewed only after its expiry). */
    TD_OPT_MIN_REMAINING = 11,
    TD_OPT_TIMEOUT_MS = 12,         /* long, each HTTP request, 1..600000; default 10000 */
    TD_OPT_CONNECT_TIMEOUT_MS = 13, /* long, 1..600000; default 5000 */
    /* long, 0..600000; default 5000: after td_client_report_invalid, how
     * long a fetch waits for a token other than the reported one (0: does
     * not wait). */
    TD_OPT_REFRESH_WAIT_MS = 14,
    /* str, secret: the share key(s) of a sealed Gitee copy, as
     * TOKENDIST_SHARE_KEY takes them: 32 random bytes in standard base64
     * (`tokendist keygen`), several comma-separated (every one opens; the
     * refresher seals with the first).  Set: the Gitee file must be sealed
     * (AES-256-GCM, docs/protocol.md) with one of them for this client's
     * TD_OPT_NAME, else that source fails with TD_ESHAREKEY or TD_EINVAL and
     * the next one is tried.  Unset: the seed's plaintext file is read, a
     * sealed one fails with TD_ESHAREKEY. */
    TD_OPT_SHARE_KEY = 15,
    /* str: "jsapi_ticket" gets the ticket derived from token NAME
     * (…/v1/tokens/NAME/jsapi_ticket; the Gitee copy holds no tickets). */
    TD_OPT_TICKET = 16,
} td_option;

/* A new set of options, all at their defaults; NULL when out of memory
 * (then every setter returns TD_ENOMEM and td_client_new fails with it,
 * so a program may check once, at td_client_new).  Free it with
 * td_client_opts_free; it can be freed as soon as the clients it is used
 * for are created.  A td_client_opts is used by one thread at a time. */
TD_API td_client_opts *td_client_opts_new(void);

/* Frees the options (NULL is fine), wiping the secrets in them; clients
 * created from them are not affected. */
TD_API void td_client_opts_free(td_client_opts *o);

/* Set one option.  TD_OK; TD_EINVAL when the value is not valid for the
 * option or the option is of the other type; TD_ENOMEM; TD_ENOTSUP when
 * this library does not know the option (it is older than the header the
 * program was built with).  A failed setter leaves the option as it was.
 * TD_EINVAL and TD_ENOMEM are remembered: td_client_new then fails with
 * the first such failure's code and sentence, so a bad value is never
 * dropped silently and a program may check the setters' codes or only
 * td_client_new's.  TD_ENOTSUP is not remembered: the options stay usable
 * without that option, so a program that can do without it goes on, and
 * one that cannot checks the setter's code.  Not thread-safe for one
 * td_client_opts (different ones: any threads). */
TD_API int td_client_opts_set_str(td_client_opts *o, td_option opt, const char *value);
TD_API int td_client_opts_set_long(td_client_opts *o, td_option opt, long value);

/* One answer of td_client_get.  Allocated by the library, owned by the
 * caller, released with td_free (which wipes the token).  Later versions
 * append fields: never declare or copy a td_token yourself. */
typedef struct td_token {
    const char *token;          /* NUL-terminated, inside this allocation */
    size_t token_len;           /* strlen(token) */
    int64_t expires;            /* Unix seconds, as the record says */
    int64_t remaining;          /* seconds left by the server's clock */
    td_source source;           /* where this call got it (MEMORY when cached) */
    td_source origin;           /* where the record was fetched from */
} td_token;

/* Creates a client from o (which it copies: o may be changed or freed
 * afterwards).  Fails with TD_EINVAL (err says which option) when no
 * source is configured, an option is malformed or a setter failed
 * (its code then: TD_EINVAL or TD_ENOMEM; never TD_ENOTSUP, which a
 * setter does not leave behind).  *out is set only on
 * success; free it with td_client_free.  Thread-safe (see "libcurl" above
 * for the first call). */
TD_API int td_client_new(td_client **out, const td_client_opts *o, char *err, size_t errlen);

/* Frees a client and closes its connections (NULL is fine).  No other
 * call on it may be running or start; tokens it returned stay valid. */
TD_API void td_client_free(td_client *c);

/* Sets *out to a new td_token of `kind` that has more than the minimum
 * remaining time left: from memory when possible, else endpoints → Gitee
 * → cache file (the first valid, fresh-enough record wins; it is then
 * kept in memory and written to the cache file).  *out is set only on
 * TD_OK; release it with td_free.  On failure, err says which source
 * failed and why (one line per source when several were tried); codes:
 * TD_ENOTFOUND (no source has a token), TD_EEXPIRED (only tokens expired
 * or expiring within the minimum), TD_EAUTH, TD_EHTTP, TD_ETIMEOUT,
 * TD_EINVAL (a source sent a malformed record, or a sealed Gitee copy that
 * does not authenticate), TD_ESHAREKEY (the Gitee copy is sealed and no
 * TD_OPT_SHARE_KEY opens it, or plaintext while one is set), TD_ENOMEM.
 * Any thread, any number at once. */
TD_API int td_client_get(td_client *c, td_token_kind kind, td_token **out, char *err, size_t errlen);

/* Like td_client_get, and gives the whole record as JSON text: *json is a
 * NUL-terminated copy, *len (may be NULL) its length; release it with
 * td_free.  out may be NULL when only the record is wanted.  Nothing is
 * set unless TD_OK.  Any thread, any number at once. */
TD_API int td_client_get_record(td_client *c, td_token_kind kind, char **json, size_t *len,
                                td_token **out, char *err, size_t errlen);

/* Reports that Feishu answered 99991663/99991664/99991668/99991671 for `token`
 * (the caller's string, read during the call only).  The client drops
 * the token (the next td_client_get fetches and, for up to
 * TD_OPT_REFRESH_WAIT_MS, waits for a different token, asking again with
 * growing pauses) and tells the first endpoint that answers: POST
 * …/v1/tokens/NAME/invalid.  Reports of one token made while its report
 * runs, or within TD_OPT_REFRESH_WAIT_MS of its start, share that
 * report's request and answer; a later report of it (the token is still
 * handed out, so it was not replaced) is sent again.  Returns TD_OK when
 * the server has a token other than the reported one (200: kept, when
 * neither of its tokens is the reported one) or started a refresh whose
 * outcome it could not wait for (202).  TD_ECONFLICT (409): Feishu still
 * issues the reported token, so there is nothing newer to wait for --
 * the next get returns it again at once, and reports of it within the
 * wait get the same answer without a request.  Other codes: TD_EUNAVAIL
 * (no refresher reachable: 501/503), TD_EAUTH, TD_EHTTP (502: the forced
 * refresh failed), TD_ENOTFOUND (404), TD_EINVAL (no endpoint URL to
 * report to).  Any thread, any number at once, alongside td_client_get. */
TD_API int td_client_report_invalid(td_client *c, const char *token, char *err, size_t errlen);

/* "endpoint", "gitee", "cache", "memory", "none": fixed ASCII names for
 * programs and logs; static, never NULL.  Thread-safe. */
TD_API const char *td_source_name(td_source s);

#ifdef __cplusplus
}
#endif
#endif /* TOKENDIST_H */
