/*
 * httpc -- the outgoing HTTP client (libcurl), bounded.
 *
 * Every request has a connect and a total timeout, TLS verification on,
 * and a ceiling on the response body: a body over the ceiling is an error
 * (TD_ETOOBIG), never a truncation.  Any HTTP status is TD_OK with
 * resp->status set; transport failures are TD_EHTTP / TD_ETIMEOUT with err
 * saying what happened where.  Response headers are kept (bounded) for
 * td_httpc_header.
 */
#ifndef TD_HTTPC_H
#define TD_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#define TD_HTTPC_BODY_MAX (1u << 20)     /* default response ceiling */
#define TD_HTTPC_HEADERS_MAX (16u << 10)

/* The connections of one owner (a td_client), kept between its
 * requests: HTTP keep-alive and TLS session reuse.  A pool holds easy
 * handles that are not in use (a handle keeps its own connections; a
 * libcurl share object lets all of them resume each other's TLS sessions
 * and DNS answers).  A request takes a handle, or makes one when all are
 * busy, and puts it back when done, so requests of one pool may run in
 * many threads at once.  Connections are not shared between threads
 * through the share object: libcurl documents that as unsafe. */
typedef struct td_httpc_pool td_httpc_pool;

/* TD_OK or TD_ENOMEM.  Calls td_httpc_global_init. */
int td_httpc_pool_new(td_httpc_pool **out);

/* Closes the pool's connections; no request of it may be running.  NULL
 * is fine. */
void td_httpc_pool_free(td_httpc_pool *p);

/* curl_global_init, once per process (pthread_once).  td_httpc_do calls
 * it too; the client calls it from td_client_new so that it runs at a
 * point its header can name. */
void td_httpc_global_init(void);

/* Streams the body instead of buffering it (downloads); return TD_OK to
 * go on, anything else aborts the transfer with that code. */
typedef int (*td_httpc_data_cb)(void *ud, const char *p, size_t n);

typedef struct td_httpc_req {
    const char *method;             /* "GET" when NULL */
    const char *url;
    const char *body;               /* NULL: no body */
    size_t body_len;
    const char *const *headers;     /* "Name: value", NULL-terminated; may be NULL */
    long timeout_ms;                /* total; 0: 10 s; -1: none (long polls) */
    long connect_timeout_ms;        /* 0: 5 s */
    size_t max_body;                /* 0: TD_HTTPC_BODY_MAX */
    td_httpc_data_cb on_data;       /* optional streaming sink */
    void *ud;
    td_httpc_pool *pool;            /* NULL: a connection of its own, closed after */
    /* AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4), e.g.
     * "aws:amz:ap-guangzhou:s3", with the key id and secret.  libcurl signs
     * every header in `headers` (so nothing unsigned is added to them) but
     * adds no x-amz-content-sha256 or x-amz-security-token: the caller
     * does (store/s3.c). */
    const char *aws_sigv4;
    const char *username, *password;
    /* A step of a store write whose other steps may be done already (an
     * S3 put is an index PUT, then the record's): td_httpc_abort_all lets
     * it be sent and run for TD_HTTPC_STOP_GRACE_MS more, so that a stop
     * finishes the write rather than cut it in half.  The caller starts
     * no new write once td_httpc_stopping says so. */
    int finish_on_stop;
} td_httpc_req;

typedef struct td_httpc_resp {
    long status;
    char *body;                     /* NUL-terminated; NULL when streamed */
    size_t body_len;
    char *headers;                  /* raw header block, for td_httpc_header */
    size_t headers_len;
} td_httpc_resp;

int td_httpc_do(const td_httpc_req *req, td_httpc_resp *resp, char *err, size_t errlen);

/* Process shutdown: every transfer in flight stops within about a second
 * and every later one fails at once, with TD_ECANCELED -- those with
 * finish_on_stop only TD_HTTPC_STOP_GRACE_MS later.  One way only: for a
 * process that is about to exit (serve, refresh), never for a library
 * user's process. */
#define TD_HTTPC_STOP_GRACE_MS 5000L
void td_httpc_abort_all(void);

/* 1 once td_httpc_abort_all was called: a write not started yet is not
 * started. */
int td_httpc_stopping(void);

/* Waits ms before a request is tried again: TD_OK after the wait, or
 * TD_ECANCELED at once when td_httpc_abort_all was called (also during
 * the wait), since the retry would fail anyway. */
int td_httpc_pause(long ms);

void td_httpc_resp_clear(td_httpc_resp *resp);

/* The value of the last header `name` (case-insensitive) copied into buf,
 * or NULL when absent. */
const char *td_httpc_header(const td_httpc_resp *resp, const char *name, char *buf, size_t len);

/* Whether the answer carries header `name` at all, whatever its length. */
int td_httpc_has_header(const td_httpc_resp *resp, const char *name);

/* The server's Date header as Unix seconds, or 0. */
int64_t td_httpc_date(const td_httpc_resp *resp);

/* Seconds the server asks us to wait: Feishu's x-ogw-ratelimit-reset, or
 * else Retry-After, as delay-seconds or an HTTP-date.  Clamped to
 * 0..TD_HTTPC_RETRY_AFTER_MAX, so a caller that waits what it is told
 * waits at most an hour, however large (or overflowing) the number the
 * server sent; -1 when neither header holds a valid value ("-5", "abc"),
 * and the caller keeps its own backoff. */
#define TD_HTTPC_RETRY_AFTER_MAX 3600L
long td_httpc_retry_after(const td_httpc_resp *resp);

/* url for a person (a log line, an error message, --print-config): the
 * userinfo replaced by "***", and with TD_HTTPC_HIDE_QUERY also the query
 * and fragment by "?…" (a request's query may carry a credential: Gitee's
 * access_token, WeCom's corpsecret).  The userinfo runs from "://" to the
 * last '@' before the first '/', '?' or '#' that follows the first '@':
 * a password may hold '/', '?', '#' (openssl rand -base64 gives '/') and
 * even '@' unencoded, so the authority cannot end at the first '/'.  An
 * '@' only in a path or query is read the same way and hides more than
 * needed -- never less.  Without "://" url is shown as it is.  Returns
 * buf, cut to len (the hidden part is never in it). */
#define TD_HTTPC_HIDE_QUERY 1
const char *td_httpc_redact_url(const char *url, int flags, char *buf, size_t len);

/* td_httpc_do's transport errors name the request's URL so redacted
 * (userinfo and query hidden): "URL: what happened".  For a caller that
 * names the request its own way (or whose URL is itself a credential, a
 * webhook's), what happened alone: the part of err after that prefix, or
 * NULL when err does not start with it. */
const char *td_httpc_err_detail(const char *err, const char *url);

/* Percent-encodes s (RFC 3986 unreserved kept) into buf; returns buf, or
 * NULL when it does not fit. */
char *td_httpc_escape(const char *s, char *buf, size_t len);

/* The same encoding of the n bytes at s, appended to a URL being built;
 * returns b's error state (sticky, see strbuf.h). */
struct td_strbuf;
int td_httpc_escape_append(struct td_strbuf *b, const char *s, size_t n);

#endif
