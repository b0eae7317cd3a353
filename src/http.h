/*
 * http -- the HTTP front door: libmicrohttpd with one internal epoll
 * thread, translating requests to td_api_handle and back.
 */
#ifndef TD_HTTP_H
#define TD_HTTP_H

#include "api.h"

typedef struct td_http td_http;

typedef struct td_http_opts {
    const char *listen;         /* "HOST:PORT", "[V6]:PORT", ":PORT" */
    unsigned conn_limit;
    unsigned conn_per_ip;       /* 0: no limit */
    unsigned conn_timeout;      /* seconds */
    const char *tls_cert;       /* PEM files; both or neither */
    const char *tls_key;
} td_http_opts;

int td_http_start(td_http **out, td_api *api, const td_http_opts *o, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
unsigned td_http_port(const td_http *h);
/* Stops accepting connections now: connects are refused at once, so
 * clients fail over; requests already in flight go on.  Idempotent. */
void td_http_quiesce(td_http *h);
/* Quiesces, lets the store jobs and the requests in flight finish (a few
 * seconds at most), stops the thread, frees.  NULL-safe. */
void td_http_stop(td_http *h);

/* Whether listen ("HOST:PORT") is on the loopback (127.0.0.0/8, ::1,
 * localhost), where the API applies its Host rule (host.h); 0.0.0.0 and
 * [::] are not: they listen on every interface. */
int td_http_listen_loopback(const char *listen);

/* Splits "HOST:PORT" into a socket address; exposed for tests. */
struct sockaddr_storage;
int td_http_parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen);

#endif
