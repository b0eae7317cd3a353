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
    /* AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4), e.g.
     * "aws:amz:ap-guangzhou:s3", with the key id and secret.  libcurl signs
     * every header in `headers` (so nothing unsigned is added to them) but
     * adds no x-amz-content-sha256 or x-amz-security-token: the caller
     * does (store/s3.c). */
    const char *aws_sigv4;
    const char *username, *password;
    struct td_httpc_handle *handle; /* optional: reuse its connection (td_httpc_handle_new) */
} td_httpc_req;

/* A libcurl handle kept between requests, so that they share a connection
 * (keep-alive, TLS session) instead of opening one each: for a caller that
 * talks to one service often (store/s3.c).  One request at a time per
 * handle; a connection the service closed meanwhile is opened again. */
typedef struct td_httpc_handle td_httpc_handle;
td_httpc_handle *td_httpc_handle_new(void);
void td_httpc_handle_free(td_httpc_handle *h); /* NULL-safe */

typedef struct td_httpc_resp {
    long status;
    char *body;                     /* NUL-terminated; NULL when streamed */
    size_t body_len;
    char *headers;                  /* raw header block, for td_httpc_header */
    size_t headers_len;
} td_httpc_resp;

int td_httpc_do(const td_httpc_req *req, td_httpc_resp *resp, char *err, size_t errlen);

/* Process shutdown: every transfer in flight stops within about a second
 * and every later one fails at once, with TD_ECANCELED.  One way only:
 * for a process that is about to exit (serve, refresh), never for a
 * library user's process. */
void td_httpc_abort_all(void);
void td_httpc_resp_clear(td_httpc_resp *resp);

/* The value of the last header `name` (case-insensitive) copied into buf,
 * or NULL when absent. */
const char *td_httpc_header(const td_httpc_resp *resp, const char *name, char *buf, size_t len);

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

/* Percent-encodes s (RFC 3986 unreserved kept) into buf; returns buf, or
 * NULL when it does not fit. */
char *td_httpc_escape(const char *s, char *buf, size_t len);

/* The same encoding of the n bytes at s, appended to a URL being built;
 * returns b's error state (sticky, see strbuf.h). */
struct td_strbuf;
int td_httpc_escape_append(struct td_strbuf *b, const char *s, size_t n);

#endif
