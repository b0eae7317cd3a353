/* peer -- see peer.h. */
#include "peer.h"
#include "tokendist.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const unsigned char V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_port(const char *s, size_t len)
{
    if (len == 0 || len > 5) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* inet_pton on a counted string; v6 folds IPv4-mapped addresses to IPv4. */
static int pton(int v6, const char *s, size_t len, td_peer_addr *a)
{
    char buf[TD_PEER_ADDR_LEN];

    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(a, 0, sizeof *a);
    if (!v6) return inet_pton(AF_INET, buf, a->b) == 1;
    if (inet_pton(AF_INET6, buf, a->b) != 1) return 0;
    a->v6 = 1;
    if (!memcmp(a->b, V4_MAPPED, sizeof V4_MAPPED)) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->v6 = 0;
    }
    return 1;
}

int td_peer_parse(const char *s, size_t len, td_peer_addr *a)
{
    const char *colon;

    if (!s) return 0;
    if (len && s[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(s, ']', len);
        size_t rest;
        if (!close) return 0;
        rest = len - (size_t)(close + 1 - s);
        if (rest && !(close[1] == ':' && is_port(close + 2, rest - 1))) return 0;
        return pton(1, s + 1, (size_t)(close - s - 1), a);
    }
    colon = memchr(s, ':', len);
    if (!colon) return pton(0, s, len, a);
    if (memchr(colon + 1, ':', len - (size_t)(colon + 1 - s))) return pton(1, s, len, a); /* bare v6 */
    if (!is_port(colon + 1, len - (size_t)(colon + 1 - s))) return 0;                  /* v4:port */
    return pton(0, s, (size_t)(colon - s), a);
}

const char *td_peer_format(const td_peer_addr *a, char buf[TD_PEER_ADDR_LEN])
{
    if (!inet_ntop(a->v6 ? AF_INET6 : AF_INET, a->b, buf, TD_PEER_ADDR_LEN)) snprintf(buf, TD_PEER_ADDR_LEN, "?");
    return buf;
}

int td_peer_is_loopback(const td_peer_addr *a)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};
    return a->v6 ? !memcmp(a->b, v6_loopback, 16) : a->b[0] == 127;
}

static int cidr_has(const td_peer_cidr *c, const td_peer_addr *a)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;

    if (c->net.v6 != a->v6) return 0;
    if (memcmp(c->net.b, a->b, full) != 0) return 0;
    return !rest || ((c->net.b[full] ^ a->b[full]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

int td_peer_cidr_parse(const char *s, td_peer_cidr *c, char *err, size_t errlen)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    int v6_text = alen && memchr(s, ':', alen) != NULL;
    unsigned max = v6_text ? 128 : 32, host;

    memset(c, 0, sizeof *c);
    /* No brackets and no port: a CIDR names addresses, not a listener. */
    if (!alen || s[0] == '[' || !pton(v6_text, s, alen, &c->net)) goto bad;
    c->bits = max;
    if (slash) {
        char *end;
        long bits;
        if (slash[1] < '0' || slash[1] > '9') goto bad;
        bits = strtol(slash + 1, &end, 10);
        if (*end || bits > (long)max) goto bad;
        c->bits = (unsigned)bits;
    }
    if (v6_text && !c->net.v6) { /* ::ffff:10.0.0.0/104 is 10.0.0.0/8 */
        if (c->bits < 96) goto bad;
        c->bits -= 96;
    }
    host = c->net.v6 ? 128 : 32;
    for (unsigned i = c->bits; i < host; i++)
        if (c->net.b[i / 8] & (0x80u >> (i % 8))) {
            char net[TD_PEER_ADDR_LEN];
            td_peer_addr z = c->net;
            for (unsigned j = c->bits; j < host; j++) z.b[j / 8] &= (unsigned char)~(0x80u >> (j % 8));
            snprintf(err, errlen, "'%s' 的主机位不为 0：是不是想写 %s/%u？", s, td_peer_format(&z, net),
                     c->bits);
            return TD_EINVAL;
        }
    return TD_OK;
bad:
    snprintf(err, errlen, "'%s' 不是 IP 地址或 CIDR (例如 127.0.0.1/32、10.0.0.0/8、::1/128)", s);
    return TD_EINVAL;
}

int td_peer_cidr_check(const char *s, char *err, size_t errlen)
{
    td_peer_cidr c;
    return td_peer_cidr_parse(s, &c, err, errlen);
}

int td_peer_header_check(const char *s, char *err, size_t errlen)
{
    if (!strcasecmp(s, "X-Forwarded-For") || !strcasecmp(s, "X-Real-IP")) return TD_OK;
    snprintf(err, errlen, "'%.64s' 不是可用的客户端地址头: 应为 X-Forwarded-For (代理追加，取最右边不属于可信代理的地址) "
                          "或 X-Real-IP (代理设置，例如 nginx 的 proxy_set_header X-Real-IP $remote_addr)", s);
    return TD_EINVAL;
}

int td_peer_trust_init(td_peer_trust *t, const td_strlist *cidrs, const char *header, char *err,
                       size_t errlen)
{
    t->v = NULL;
    t->n = 0;
    t->header = TD_PEER_HDR_AGREE;
    if (header && *header) {
        int rc = td_peer_header_check(header, err, errlen);
        if (rc != TD_OK) return rc;
        t->header = !strcasecmp(header, "X-Real-IP") ? TD_PEER_HDR_REAL_IP : TD_PEER_HDR_XFF;
    }
    if (!cidrs || cidrs->n == 0) return TD_OK;
    if (!(t->v = calloc(cidrs->n, sizeof *t->v))) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    for (size_t i = 0; i < cidrs->n; i++) {
        int rc = td_peer_cidr_parse(cidrs->v[i], &t->v[i], err, errlen);
        if (rc != TD_OK) {
            td_peer_trust_free(t);
            return rc;
        }
    }
    t->n = cidrs->n;
    return TD_OK;
}

void td_peer_trust_free(td_peer_trust *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

int td_peer_trusted(const td_peer_trust *t, const td_peer_addr *a)
{
    for (size_t i = 0; i < t->n; i++)
        if (cidr_has(&t->v[i], a)) return 1;
    return 0;
}

/* The items of a comma-separated header from the right: the last item
 * before *end (blanks trimmed) as [*s, *e), and *end moved past it.
 * Returns 0 when there is none left. */
static int prev_item(const char *list, const char **end, const char **s, const char **e)
{
    const char *p = *end;

    if (p <= list) return 0;
    *e = p;
    while (p > list && p[-1] != ',') p--;
    *s = p;
    *end = p > list ? p - 1 : list;
    while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
    return 1;
}

/* The client X-Forwarded-For names behind the trusted hop *hop: from the
 * proxy nearest us outwards, the first hop that is not a trusted proxy,
 * or the last trusted one when anything that is not an address comes
 * first.  0 when the header says nothing (absent or empty). */
static int xff_client(const td_peer_trust *t, const char *xff, td_peer_addr *hop)
{
    const char *end, *s, *e;
    td_peer_addr a;

    if (!xff || !*xff) return 0;
    end = xff + strlen(xff);
    while (prev_item(xff, &end, &s, &e)) {
        if (!td_peer_parse(s, (size_t)(e - s), &a)) break;
        *hop = a;
        if (!td_peer_trusted(t, hop)) break;
    }
    return 1;
}

const char *td_peer_client(const td_peer_trust *t, const char *peer, const char *xff,
                           const char *xri, char out[TD_PEER_ADDR_LEN])
{
    td_peer_addr hop, fwd, real;
    int has_fwd, has_real;

    if (!peer || !t || t->n == 0) return peer;
    if (!td_peer_parse(peer, strlen(peer), &hop) || !td_peer_trusted(t, &hop)) return peer;
    fwd = hop;
    has_fwd = t->header != TD_PEER_HDR_REAL_IP && xff_client(t, xff, &fwd);
    /* An X-Real-IP naming a trusted proxy tells nothing about the client. */
    has_real = t->header != TD_PEER_HDR_XFF && xri && td_peer_parse(xri, strlen(xri), &real) &&
               (t->header == TD_PEER_HDR_REAL_IP || !td_peer_trusted(t, &real));
    /* Every hop of X-Forwarded-For a trusted proxy: no claim about the
     * client either, next to an X-Real-IP that makes one. */
    if (has_fwd && has_real && t->header == TD_PEER_HDR_AGREE && td_peer_trusted(t, &fwd)) has_fwd = 0;
    if (has_fwd && has_real) /* two claims: only when they agree (header unset) */
        return fwd.v6 == real.v6 && !memcmp(fwd.b, real.b, sizeof fwd.b) ? td_peer_format(&fwd, out) : peer;
    if (has_fwd) return td_peer_format(&fwd, out);
    if (has_real) return td_peer_format(&real, out);
    return peer;
}
