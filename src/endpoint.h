/*
 * endpoint -- the address of a distribution endpoint (a tokendist server,
 * or the seed's Tencent SCF function): the one rule by which every command
 * turns what the user configured into the URL it reads or writes, how a
 * wrong path is told from "no token yet", and whether a URL is the very
 * server that asks.
 *
 * One rule for every reader and writer -- `get`, `files`, the client
 * library, `refresh`, `check` and the sinks of `serve` -- so a URL that
 * works for one works for all:
 *
 *   http(s)://host[:port][/]            → …/release/get-token for "default"
 *                                          (the seed's path), …/v1/tokens/NAME
 *                                          for another name
 *   …/release/get-token, …/get-token    → as given for "default"; for another
 *                                          name …/v1/tokens/NAME beside it
 *   …/v1/tokens/NAME                    → as given (a name other than the
 *                                          one asked for is an error)
 *   any other path                      → as given: an API gateway may map
 *                                          the seed's function anywhere
 *
 * The Node and Python clients read by the same table, except that they
 * complete a base URL with …/v1/tokens/NAME for "default" too: the same
 * token on a tokendist server (it serves /release/get-token as "default").
 */
#ifndef TD_ENDPOINT_H
#define TD_ENDPOINT_H

#include <stddef.h>

/* A configured URL may be 2047 bytes; the resolved one adds at most a
 * path and a token name. */
#define TD_ENDPOINT_URL_MAX (2048 + 128)

typedef struct td_endpoint {
    char token[TD_ENDPOINT_URL_MAX];    /* GET and POST the record here */
    /* The same token as …/v1/tokens/NAME on a tokendist server (its
     * /invalid and /jsapi_ticket hang off it); "" when the URL's path is
     * not one of tokendist's ("any other path" above). */
    char named[TD_ENDPOINT_URL_MAX];
} td_endpoint;

/* Resolves url for token `name` by the table above.  TD_OK, or TD_EINVAL
 * with err (Chinese, naming the URL) when it is not an http(s) URL, is too
 * long, or names another token. */
int td_endpoint_resolve(td_endpoint *e, const char *url, const char *name, char *err, size_t errlen);

/* Whether url can be requested at all: an http(s) URL with a host, a port
 * from 1 to 65535 if it names one, no blanks, a well-formed IPv6 address
 * in brackets -- by libcurl's own URL parser (what every request goes
 * through), plus "http:///path", which curl would read as the host
 * "path".  Checked when a setting is read, so a typo is a settings error
 * naming its source (exit 2), not a network error later.  TD_OK, or
 * TD_EINVAL with why (Chinese, a clause saying what is wrong and how to
 * write it; it shows url, without credentials, unless show is 0 -- a
 * webhook's address is itself a secret). */
int td_endpoint_check_url(const char *url, int show, char *why, size_t whylen);

/* Whether an answer is tokendist's "no such path" -- 404 with the body
 * {"error": "Not found"} -- as opposed to 404 "Token not found or expired",
 * which means the path is right and there is no valid token yet. */
int td_endpoint_wrong_path(long status, const char *body, size_t len);

/* Whether a tokendist server's answer refuses the key: 401, 403, or the
 * 429 it gives an address that failed too often (it carries
 * WWW-Authenticate; a service's own rate limit does not) -- the key is
 * what to check in each case.  Only the header's presence counts: a
 * gateway may rewrite its value to any length.  The Node and Python
 * clients' refusesKey / refuses_key are the same rule. */
struct td_httpc_resp;
int td_endpoint_refuses_key(const struct td_httpc_resp *resp);

/* The sentence for a wrong path at url, for the user: what is wrong and
 * what the path should look like.  Written into buf (cut to fit). */
const char *td_endpoint_wrong_path_why(const char *url, char *buf, size_t len);

/* Where this server is reached, for the checks below: its --listen value
 * ("HOST:PORT", "[V6]:PORT", ":PORT"), the port it bound (the listen value
 * may say 0), whether it serves HTTPS, and TOKENDIST_PUBLIC_URL (NULL:
 * unset). */
typedef struct td_endpoint_self {
    const char *listen;
    unsigned port;
    int tls;
    const char *public_url;
} td_endpoint_self;

/* Whether url is this very server: the same host and port as
 * TOKENDIST_PUBLIC_URL or as the listen address, a loopback address
 * (localhost, 127.0.0.0/8, ::1) on its port when it listens there or on
 * every interface, or -- listening on every interface -- this machine's
 * host name or one of its addresses on its port.  No name is looked up in
 * DNS.  1 with why saying which (Chinese, a clause), else 0. */
int td_endpoint_is_self(const char *url, const td_endpoint_self *me, char *why, size_t whylen);

/* The URL clients on other machines get token `name` from, as far as the
 * server itself can know it: the listen host (or, listening on every
 * interface, this machine's host name) with the bound port, resolved for
 * name by the table above.  Written into out; TD_OK or TD_ETOOBIG. */
int td_endpoint_own_url(const td_endpoint_self *me, const char *name, char *out, size_t len);

#endif
