/* host -- see host.h. */
#include "host.h"
#include "peer.h"
#include "tokendist.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_MAX_LEN 253        /* the longest DNS name */

/* The name part of a Host value, [*s, *e): port cut off, brackets of an
 * IPv6 literal kept (td_peer_parse takes them), one trailing dot dropped
 * ("localhost." is localhost).  Returns 0 for what is not HOST[:PORT]. */
static int split_host(const char *v, const char **s, const char **e)
{
    const char *end = v + strlen(v), *port = NULL;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || (close[1] && close[1] != ':')) return 0;
        end = close + 1;
        if (close[1]) port = close + 2;
    } else if ((port = strchr(v, ':'))) {
        end = port++;
    }
    if (port && strspn(port, "0123456789") != strlen(port)) return 0;
    if (end > v && v[0] != '[' && end[-1] == '.') end--;
    *s = v, *e = end;
    return end > v;
}

static int is_localhost(const char *s, size_t len)
{
    return len == 9 && !strncasecmp(s, "localhost", 9);
}

int td_host_rule_init(td_host_rule *h, const td_strlist *allowed, int loopback_listener)
{
    size_t n = allowed ? allowed->n : 0;

    memset(h, 0, sizeof *h);
    h->on = loopback_listener || n > 0;
    if (!n) return TD_OK;
    if (!(h->names = calloc(n, sizeof *h->names))) return TD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *v = allowed->v[i];
        size_t len = strlen(v);
        if (len && v[len - 1] == '.') len--;
        if (!(h->names[i] = strndup(v, len))) {
            td_host_rule_free(h);
            return TD_ENOMEM;
        }
        for (char *p = h->names[i]; *p; p++) *p = (char)tolower((unsigned char)*p);
        h->n++;
    }
    return TD_OK;
}

void td_host_rule_free(td_host_rule *h)
{
    for (size_t i = 0; i < h->n; i++) free(h->names[i]);
    free(h->names);
    memset(h, 0, sizeof *h);
}

int td_host_allowed(const td_host_rule *h, const char *host)
{
    const char *s, *e;
    td_peer_addr a, b;
    int is_ip;

    if (!h->on || !host) return 1;
    if (!split_host(host, &s, &e)) return 0;
    is_ip = td_peer_parse(s, (size_t)(e - s), &a);
    if (is_ip ? td_peer_is_loopback(&a) : is_localhost(s, (size_t)(e - s))) return 1;
    for (size_t i = 0; i < h->n; i++) {
        const char *name = h->names[i];
        size_t len = strlen(name);
        /* Addresses compare as addresses ("::1" is "0:0::1"), names as names. */
        if (is_ip ? td_peer_parse(name, len, &b) && a.v6 == b.v6 && !memcmp(a.b, b.b, 16)
                  : len == (size_t)(e - s) && !strncasecmp(name, s, len))
            return 1;
    }
    return 0;
}

int td_host_header_check(const char *value, unsigned count, char *err, size_t errlen)
{
    const char *port = NULL;
    size_t n = value ? strlen(value) : 0;

    if (count > 1) {
        snprintf(err, errlen, "请求有 %u 个 Host 头: 只能有一个 (RFC 9112)", count);
        return TD_EINVAL;
    }
    if (!value) {
        if (!count) return TD_OK;
        snprintf(err, errlen, "Host 头无法读取: 不是文本");   /* an SCF event's {"host": 1} */
        return TD_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] <= ' ' || value[i] == 0x7f) {
            snprintf(err, errlen, "Host 头含控制字符或空格: 不是主机名");
            return TD_EINVAL;
        }
    /* The port, when there is one made of digits: what is not HOST[:PORT]
     * at all is the Host rule's to refuse (421), by name. */
    if ((port = value[0] == '[' ? strstr(value, "]:") : strchr(value, ':')))
        port += value[0] == '[' ? 2 : 1;
    if (port && *port && strspn(port, "0123456789") == strlen(port) &&
        (strlen(port) > 5 || strtol(port, NULL, 10) > 65535)) {
        snprintf(err, errlen, "Host 头的端口无效: 应为 0-65535");
        return TD_EINVAL;
    }
    return TD_OK;
}

int td_host_name_check(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name), i;
    const char *colon = strchr(name, ':');
    td_peer_addr a;

    /* An IP address (IPv6 bare or in brackets), never with a port. */
    if (name[0] == '[' ? name[len - 1] == ']' && td_peer_parse(name, len, &a)
                       : (!colon || strchr(colon + 1, ':')) && td_peer_parse(name, len, &a))
        return TD_OK;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_')) break;
    }
    if (len && i == len && len <= NAME_MAX_LEN + 1 && name[0] != '.') return TD_OK;
    snprintf(err, errlen,
             "'%s' 不是主机名或 IP 地址 (只写名字，不带 http://、端口或路径，例如 tokens.example.com)",
             name);
    return TD_EINVAL;
}
