/*
 * peer -- who the client is: the address the connection came from or,
 * when that address is a reverse proxy the operator trusts
 * (--trusted-proxy CIDR), the address that proxy says it forwarded for.
 *
 * X-Forwarded-For and X-Real-IP are written by whoever sends the request,
 * so they are believed only when the TCP peer is inside a trusted CIDR.
 * A proxy rewrites its own header and passes the other one through as the
 * client wrote it:
 *  - X-Forwarded-For (Caddy, nginx's $proxy_add_x_forwarded_for, HAProxy,
 *    Traefik append to it) is read from the right, skipping addresses that
 *    are themselves trusted proxies, and the first one that is not is the
 *    client.  Whatever lies to its left came from the client and is never
 *    looked at.
 *  - X-Real-IP (nginx's `proxy_set_header X-Real-IP $remote_addr`, which
 *    replaces what the client sent) is the client.
 * With --real-ip-header (like nginx's real_ip_header) only the header
 * named is read.  Without it neither kind of proxy can be told from the
 * request, so a header is believed only when the other does not
 * contradict it: one present alone names the client, both naming the same
 * address name it, and two different addresses -- one of them the
 * client's forgery -- name nobody, leaving the proxy itself as the client.
 * Behind either kind of proxy a client can then neither choose another
 * address nor leave its own: it gets its own or the proxy's.
 *
 * Addresses are compared as bytes; an IPv4-mapped IPv6 address
 * (::ffff:192.0.2.1, a dual-stack listener's view of an IPv4 client) is
 * the IPv4 address, so 127.0.0.1/32 matches it too.
 */
#ifndef TD_PEER_H
#define TD_PEER_H

#include "config.h"

#include <stddef.h>

#define TD_PEER_ADDR_LEN 46     /* INET6_ADDRSTRLEN: the longest text of an address */

typedef struct td_peer_addr {
    int v6;                     /* 0: IPv4 in b[0..3]; 1: IPv6 in b[0..15] */
    unsigned char b[16];
} td_peer_addr;

typedef struct td_peer_cidr {
    td_peer_addr net;
    unsigned bits;
} td_peer_cidr;

/* Which header names the client (--real-ip-header). */
enum { TD_PEER_HDR_AGREE, TD_PEER_HDR_XFF, TD_PEER_HDR_REAL_IP };

/* The trusted proxies and the header they name the client in: parsed
 * once at start. */
typedef struct td_peer_trust {
    td_peer_cidr *v;
    size_t n;
    int header;                 /* TD_PEER_HDR_* */
} td_peer_trust;

/* Parses the len bytes at s as an address the way headers and platforms
 * write one: "192.0.2.1", "2001:db8::1", "[2001:db8::1]", each optionally
 * with ":PORT" ("192.0.2.1:443", "[::1]:9000").  Returns 1, or 0 when it
 * is not an address (a name, garbage, a zone index). */
int td_peer_parse(const char *s, size_t len, td_peer_addr *a);

/* The canonical text of a ("192.0.2.1", "2001:db8::1"), in buf. */
const char *td_peer_format(const td_peer_addr *a, char buf[TD_PEER_ADDR_LEN]);

/* 127.0.0.0/8 or ::1. */
int td_peer_is_loopback(const td_peer_addr *a);

/* "10.0.0.0/8", "::1/128", or a bare address (/32, /128).  Host bits must
 * be zero ("10.0.0.1/8" is a typo more often than a meaning).  Returns
 * TD_OK, or TD_EINVAL with err (Chinese, naming the value) for the user. */
int td_peer_cidr_parse(const char *s, td_peer_cidr *c, char *err, size_t errlen);

/* A setting check in the form config.c's table takes. */
int td_peer_cidr_check(const char *s, char *err, size_t errlen);

/* "X-Forwarded-For" or "X-Real-IP" (any case): TD_OK, else TD_EINVAL
 * with err naming both (config.c's check of --real-ip-header). */
int td_peer_header_check(const char *s, char *err, size_t errlen);

/* header: the --real-ip-header value (NULL or "": whichever of the two
 * headers the other does not contradict, see above). */
int td_peer_trust_init(td_peer_trust *t, const td_strlist *cidrs, const char *header, char *err,
                       size_t errlen);
void td_peer_trust_free(td_peer_trust *t);

/* Whether a lies in one of the trusted CIDRs. */
int td_peer_trusted(const td_peer_trust *t, const td_peer_addr *a);

/* The client of a request whose TCP peer is `peer` (text, as the front
 * door saw it; NULL: unknown) and whose X-Forwarded-For / X-Real-IP
 * values are xff / xri (NULL when absent).  Returns peer itself when it
 * is not a trusted proxy (or none are configured), else the forwarded
 * client's canonical text in out, by t's header rule.  Never fails: a
 * header that is missing or says nothing usable leaves the last trusted
 * hop as the client. */
const char *td_peer_client(const td_peer_trust *t, const char *peer, const char *xff,
                           const char *xri, char out[TD_PEER_ADDR_LEN]);

#endif
