/*
 * host -- which names this server answers to: the Host-header rule that
 * keeps DNS-rebinding web pages away from a server on the loopback.
 *
 * A page at http://evil.example:9000/ whose name the attacker then points
 * at 127.0.0.1 is, to the browser, still same-origin with itself, so it
 * may read whatever the local server answers.  Its requests still say
 * "Host: evil.example:9000", though.  So a loopback listener answers only
 * a Host naming the loopback (localhost, 127.0.0.0/8, ::1; any port) or a
 * name the operator allowed (--allowed-host).  A listener on any other
 * address applies the same rule only once names are allowed: its public
 * names are not ours to guess.  A request without Host (HTTP/1.0; no
 * browser sends one) passes.
 */
#ifndef TD_HOST_H
#define TD_HOST_H

#include "config.h"

#include <stddef.h>

typedef struct td_host_rule {
    char **names;               /* allowed names, lower case, no trailing dot */
    size_t n;
    int on;                     /* the rule applies (loopback listener, or names) */
} td_host_rule;

/* allowed: --allowed-host values (may be NULL); loopback_listener: the
 * server listens on 127.0.0.0/8 or ::1.  TD_OK or TD_ENOMEM. */
int td_host_rule_init(td_host_rule *h, const td_strlist *allowed, int loopback_listener);
void td_host_rule_free(td_host_rule *h);

/* Whether a request with this Host header value (NULL: none) is answered. */
int td_host_allowed(const td_host_rule *h, const char *host);

/* Is a request's Host header well formed, whatever name it gives?  RFC
 * 9112 3.2: a server MUST answer 400 to more than one Host line, or to a
 * Host value that is not one (here: a control byte or a space in it, or
 * a port beyond 65535).  Of two lines a front door takes one, and the
 * rule would judge a name the client did not send alone.  count: the
 * Host lines the request carried; value: the one taken (NULL: none).
 * TD_OK, or TD_EINVAL with err (a sentence for the 400 body) saying what
 * is wrong, never echoing the value.  A NUL never gets here: the front
 * doors pass C strings (libmicrohttpd 1.0 answers 400 to it itself, 0.9.x
 * ends the value there; an SCF event with U+0000 is not taken). */
int td_host_header_check(const char *value, unsigned count, char *err, size_t errlen);

/* A setting check for --allowed-host in the form config.c's table takes:
 * a host name or an IP address, without scheme, port or path. */
int td_host_name_check(const char *name, char *err, size_t errlen);

#endif
