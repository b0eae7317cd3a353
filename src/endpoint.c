/* endpoint -- see endpoint.h. */
#define _GNU_SOURCE
#include "endpoint.h"
#include "httpc.h"
#include "record.h"
#include "strbuf.h"
#include "tokendist.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SEED_PATH "/release/get-token"
#define HOST_MAX 256

static int http_url(const char *s)
{
    return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

/* url's scheme and authority ("https://host:9000") and its path without
 * query, fragment and trailing slashes, as lengths into url. */
static void split(const char *url, size_t *base_len, const char **path, size_t *path_len)
{
    const char *a = strstr(url, "://") + 3, *p = a + strcspn(a, "/?#");
    size_t n = strcspn(p, "?#");

    while (n > 0 && p[n - 1] == '/') n--;
    *base_len = (size_t)(p - url);
    *path = p;
    *path_len = n;
}

int td_endpoint_check_url(const char *url, int show, char *why, size_t whylen)
{
    char shown[204], v[230];
    const char *problem = NULL, *hint = "应写成 https://host[:端口][/路径] 这样";
    CURLU *h = NULL;
    CURLUcode uc;

    td_httpc_redact_url(url, 0, shown, sizeof shown);
    if (show) snprintf(v, sizeof v, " '%s' ", shown);
    else v[0] = '\0';
    if (strpbrk(url, " \t")) {
        /* The likeliest one: VAR=URL  # comment on an env-file line, where
         * everything after '=' is the value (tokendist.env(5)). */
        problem = "含有空白";
        if (strchr(url, '#')) hint = "env-file 的值没有行尾注释: '=' 之后整行都是值，请把 # 注释写在单独一行";
        else hint = "去掉空格，或把空格写成 %20";
    } else if (!http_url(url)) {
        problem = "无效";
        hint = "应以 http:// 或 https:// 开头，写成 https://host[:端口][/路径] 这样";
    } else if (strchr("/?#", *(strstr(url, "://") + 3))) {
        problem = "没有主机名 (:// 后面直接是路径)";
    } else if (!(h = curl_url())) {
        snprintf(why, whylen, "内存不足");
        return TD_ENOMEM;
    } else if ((uc = curl_url_set(h, CURLUPART_URL, url, 0)) != CURLUE_OK) {
        problem = uc == CURLUE_BAD_PORT_NUMBER ? "端口不对 (应为 1 到 65535 的数字)"
                : uc == CURLUE_BAD_IPV6 ? "IPv6 地址不对 (应写在方括号里，如 http://[::1]:9000/)"
                : uc == CURLUE_BAD_HOSTNAME ? "主机名不对"
                : "格式不对";
    } else {
        char *port = NULL;
        if (curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK && port && !strcmp(port, "0"))
            problem = "端口不对 (应为 1 到 65535 的数字)";
        curl_free(port);
    }
    curl_url_cleanup(h);
    if (!problem) return TD_OK;
    snprintf(why, whylen, "地址%s%s: %s", v, problem, hint);
    return TD_EINVAL;
}

int td_endpoint_resolve(td_endpoint *e, const char *url, const char *name, char *err, size_t errlen)
{
    const char *path, *slash = NULL;
    size_t blen, plen, keep;
    int deflt = !strcmp(name, "default");
    td_strbuf t, nb;
    char shown[204]; /* url for the messages: its password never (httpc's rule) */

    e->token[0] = e->named[0] = '\0';
    td_httpc_redact_url(url ? url : "", 0, shown, sizeof shown);
    if (!url || !http_url(url)) {
        snprintf(err, errlen, "端点地址 '%s' 无效: 应以 http:// 或 https:// 开头", shown);
        return TD_EINVAL;
    }
    if (strlen(url) >= TD_ENDPOINT_URL_MAX - 128) {
        snprintf(err, errlen, "端点地址 '%s…' 太长 (上限 %d 字节)", shown, TD_ENDPOINT_URL_MAX - 129);
        return TD_EINVAL;
    }
    split(url, &blen, &path, &plen);
    for (size_t i = plen; i > 0; i--)
        if (path[i - 1] == '/') {
            slash = path + i - 1;
            break;
        }
    td_strbuf_fixed(&t, e->token, sizeof e->token);
    td_strbuf_fixed(&nb, e->named, sizeof e->named);
    if (plen == 0) {
        td_strbuf_printf(&nb, "%.*s/v1/tokens/%s", (int)blen, url, name);
        if (deflt) td_strbuf_printf(&t, "%.*s" SEED_PATH, (int)blen, url);
        else td_strbuf_puts(&t, e->named);
    } else if (ends_with(path, plen, SEED_PATH) || ends_with(path, plen, "/get-token")) {
        keep = plen - (ends_with(path, plen, SEED_PATH) ? strlen(SEED_PATH) : strlen("/get-token"));
        td_strbuf_printf(&nb, "%.*s%.*s/v1/tokens/%s", (int)blen, url, (int)keep, path, name);
        td_strbuf_puts(&t, deflt ? url : e->named);   /* the seed's URL is fetched as it is */
    } else if (slash && slash - path >= 10 && !strncmp(slash - 10, "/v1/tokens", 10) &&
               td_record_name_valid(slash + 1, plen - (size_t)(slash + 1 - path))) {
        size_t nl = plen - (size_t)(slash + 1 - path);
        if (!deflt && (strlen(name) != nl || strncmp(slash + 1, name, nl) != 0)) {
            snprintf(err, errlen, "端点地址 '%s' 指向 token '%.*s'，但这里要的是 '%s': "
                                  "请去掉地址里的名称或改用同一个名称", shown, (int)nl, slash + 1, name);
            return TD_EINVAL;
        }
        td_strbuf_printf(&nb, "%.*s", (int)(blen + plen), url);
        td_strbuf_puts(&t, e->named);
    } else {
        td_strbuf_puts(&t, url);   /* an API gateway's own path: nothing to derive */
    }
    /* The length check above leaves room for a path and a name. */
    if (td_strbuf_error(&t) != TD_OK || td_strbuf_error(&nb) != TD_OK) {
        snprintf(err, errlen, "端点地址 '%s…' 加上 token 名称 '%.64s' 后太长", shown, name);
        return TD_ETOOBIG;
    }
    return TD_OK;
}

int td_endpoint_wrong_path(long status, const char *body, size_t len)
{
    json_t *o = status == 404 && body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(o, "error"));
    int yes = e && !strcmp(e, "Not found");

    json_decref(o);
    return yes;
}

int td_endpoint_refuses_key(const td_httpc_resp *resp)
{
    return resp->status == 401 || resp->status == 403 ||
           (resp->status == 429 && td_httpc_has_header(resp, "WWW-Authenticate"));
}

const char *td_endpoint_wrong_path_why(const char *url, char *buf, size_t len)
{
    const char *path;
    size_t blen, plen;
    td_strbuf b;

    td_strbuf_fixed(&b, buf, len);
    if (url && http_url(url)) {
        split(url, &blen, &path, &plen);
        td_strbuf_printf(&b, "路径不对: 服务端没有 %.*s 这个地址 (HTTP 404 Not found)", (int)(plen ? plen : 1),
                         plen ? path : "/");
    } else {
        td_strbuf_puts(&b, "路径不对: 服务端没有这个地址 (HTTP 404 Not found)");
    }
    td_strbuf_append_cut(&b, "；tokendist 的地址以 /release/get-token 或 /v1/tokens/名称 结尾，"
                             "也可以只写 http(s)://主机:端口", 0);
    return buf;
}

/* ---- this server --------------------------------------------------------- */

/* An address as bytes: v4 in the last four of an IPv4-mapped v6 address,
 * so 127.0.0.1 and ::ffff:127.0.0.1 compare equal. */
typedef struct addr {
    int ok;
    unsigned char b[16];
} addr;

static addr parse_addr(const char *host)
{
    addr a = {0};
    struct in_addr v4;

    if (inet_pton(AF_INET6, host, a.b) == 1) {
        a.ok = 1;
    } else if (inet_pton(AF_INET, host, &v4) == 1) {
        a.b[10] = a.b[11] = 0xff;
        memcpy(a.b + 12, &v4, 4);
        a.ok = 1;
    }
    return a;
}

static int v4_mapped(const addr *a)
{
    static const unsigned char pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return !memcmp(a->b, pre, 12);
}

static int is_loopback_host(const char *host)
{
    addr a = parse_addr(host);
    static const unsigned char one[16] = {[15] = 1};

    if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.")) return 1;
    return a.ok && ((v4_mapped(&a) && a.b[12] == 127) || !memcmp(a.b, one, 16));
}

static int is_wildcard_host(const char *host)
{
    addr a = parse_addr(host);
    static const unsigned char zero[16] = {0};

    return !host[0] || !strcmp(host, "*") || (a.ok && (!memcmp(a.b, zero, 16) ||
                                                       (v4_mapped(&a) && !memcmp(a.b + 12, zero, 4))));
}

/* The host (lower case, without brackets) and port of url's authority;
 * 0 when url is not an http(s) URL or its port is not a number. */
static int url_host_port(const char *url, char host[HOST_MAX], unsigned *port)
{
    const char *a, *end, *at, *h, *colon = NULL;
    size_t hl;

    if (!url || !http_url(url)) return 0;
    a = strstr(url, "://") + 3;
    end = a + strcspn(a, "/?#");
    for (at = end; at > a && at[-1] != '@'; at--)
        ;
    h = at;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (!close) return 0;
        hl = (size_t)(close - h - 1), h++;
        if (close + 1 < end && close[1] == ':') colon = close + 1;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        hl = (size_t)((colon ? colon : end) - h);
    }
    if (hl == 0 || hl >= HOST_MAX) return 0;
    for (size_t i = 0; i < hl; i++) host[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    host[hl] = '\0';
    if (colon && colon + 1 < end) {
        char *e;
        unsigned long p = strtoul(colon + 1, &e, 10);
        if (e != end || p == 0 || p > 65535) return 0;
        *port = (unsigned)p;
    } else {
        *port = !strncasecmp(url, "https", 5) ? 443 : 80;
    }
    return 1;
}

/* The host of a --listen value ("HOST:PORT", "[V6]:PORT", ":PORT"), lower
 * case, without brackets. */
static int listen_host(const char *listen, char host[HOST_MAX])
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    size_t n;

    if (!colon) return 0;
    n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') listen++, n -= 2;
    if (n >= HOST_MAX) return 0;
    for (size_t i = 0; i < n; i++) host[i] = (char)(listen[i] >= 'A' && listen[i] <= 'Z' ? listen[i] + 32 : listen[i]);
    host[n] = '\0';
    return 1;
}

static int same_host(const char *x, const char *y)
{
    addr a = parse_addr(x), b = parse_addr(y);

    if (a.ok && b.ok) return !memcmp(a.b, b.b, 16);
    if (is_loopback_host(x) && is_loopback_host(y)) return 1;
    return !strcasecmp(x, y);
}

/* Whether host is this machine's name or an address of one of its
 * interfaces (getifaddrs: no DNS). */
static int this_machine(const char *host)
{
    char me[HOST_MAX] = "";
    struct ifaddrs *ifs = NULL;
    addr a = parse_addr(host);
    int yes = 0;

    if (!a.ok) return gethostname(me, sizeof me - 1) == 0 && me[0] && !strcasecmp(me, host);
    if (getifaddrs(&ifs) != 0) return 0;
    for (struct ifaddrs *i = ifs; i && !yes; i = i->ifa_next) {
        char text[INET6_ADDRSTRLEN];
        const void *bytes;
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) continue;
        bytes = i->ifa_addr->sa_family == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                                                  : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        if (inet_ntop(i->ifa_addr->sa_family, bytes, text, sizeof text)) {
            addr b = parse_addr(text);
            yes = b.ok && !memcmp(a.b, b.b, 16);
        }
    }
    freeifaddrs(ifs);
    return yes;
}

int td_endpoint_is_self(const char *url, const td_endpoint_self *me, char *why, size_t whylen)
{
    char host[HOST_MAX], pub[HOST_MAX], lhost[HOST_MAX];
    unsigned port = 0, pport = 0;
    int any;

    if (!me || !url_host_port(url, host, &port)) return 0;
    if (me->public_url && url_host_port(me->public_url, pub, &pport) && pport == port && same_host(host, pub)) {
        snprintf(why, whylen, "与 TOKENDIST_PUBLIC_URL (%.200s) 是同一主机和端口", me->public_url);
        return 1;
    }
    if (!me->listen || !listen_host(me->listen, lhost) || port != me->port) return 0;
    any = is_wildcard_host(lhost);
    if (!any && same_host(host, lhost)) {
        snprintf(why, whylen, "与监听地址 %.200s 是同一主机和端口", me->listen);
        return 1;
    }
    if (is_loopback_host(host) && (any || is_loopback_host(lhost))) {
        snprintf(why, whylen, "是本机回环地址上本服务的端口 %u", me->port);
        return 1;
    }
    if (any && this_machine(host)) {
        snprintf(why, whylen, "是本机 (%s) 上本服务的端口 %u (本服务监听所有网卡)", host, me->port);
        return 1;
    }
    return 0;
}

int td_endpoint_own_url(const td_endpoint_self *me, const char *name, char *out, size_t len)
{
    char host[HOST_MAX] = "", base[HOST_MAX + 32], err[256];
    td_endpoint e;
    td_strbuf b;

    if (!me->listen || !listen_host(me->listen, host) || is_wildcard_host(host)) {
        if (gethostname(host, sizeof host - 1) != 0 || !host[0]) snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
    }
    snprintf(base, sizeof base, "%s://%s%s%s:%u", me->tls ? "https" : "http", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", me->port);
    if (td_endpoint_resolve(&e, base, name, err, sizeof err) != TD_OK) return TD_EINVAL;
    td_strbuf_fixed(&b, out, len);
    return td_strbuf_puts(&b, e.token);
}
