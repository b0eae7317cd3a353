/* provider -- see provider.h: the table of providers and what they share. */
#include "provider.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

static const td_provider_ops *const all[] = {
    &td_provider_feishu, &td_provider_lark, &td_provider_wechat, &td_provider_wecom, &td_provider_dingtalk,
};

const td_provider_ops *td_provider_find(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof all / sizeof *all; i++)
        if (!strcmp(all[i]->kind, kind)) return all[i];
    return NULL;
}

const char *td_provider_kinds(void) { return "feishu, lark, wechat, wecom, dingtalk"; }

const char *td_provider_base(const td_provider *p, char *buf, size_t len)
{
    const char *b = p->base_url && *p->base_url ? p->base_url : p->ops->default_base;
    size_t n = strlen(b);

    while (n > 0 && b[n - 1] == '/') n--; /* a slash left on *_BASE_URL is not doubled */
    snprintf(buf, len, "%.*s", (int)n, b);
    return buf;
}

int td_provider_take_token(const char *label, const char *what, const char *s, char *dst, size_t dlen,
                           char *err, size_t errlen)
{
    size_t n = s ? strlen(s) : 0;

    dst[0] = '\0';
    if (!n) {
        snprintf(err, errlen, "%s 的回答里没有 %s", label, what);
        return TD_EUPSTREAM;
    }
    if (n >= dlen) {
        snprintf(err, errlen, "%s 的 %s 长 %zu 字节，超过上限 %zu", label, what, n, dlen - 1);
        return TD_ETOOBIG;
    }
    /* A token goes into headers and records (visible ASCII only): a CR LF
     * would add a header of its own. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            snprintf(err, errlen, "%s 的 %s 含有不可见字符 0x%02x", label, what, (unsigned char)s[i]);
            return TD_EUPSTREAM;
        }
    memcpy(dst, s, n + 1);
    return TD_OK;
}
