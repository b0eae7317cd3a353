/* store -- dispatch to a backend by URL scheme.  See store.h. */
#include "store.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const td_store_ops *const backends[] = {
    &td_store_sqlite_ops,
#ifdef TD_HAVE_REDIS
    &td_store_redis_ops,
#endif
};

int td_store_open(td_store **out, const char *url, size_t history_max, char *err, size_t errlen)
{
    td_store *s = NULL;
    const td_store_ops *ops = NULL;
    const char *colon = url ? strchr(url, ':') : NULL;
    int rc = TD_EINVAL;

    if (!colon) {
        snprintf(err, errlen, "store '%s' has no scheme: use sqlite:PATH or redis://HOST:PORT/DB",
                 url ? url : "");
        goto out;
    }
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
        if (strlen(backends[i]->scheme) == (size_t)(colon - url) &&
            !strncmp(backends[i]->scheme, url, (size_t)(colon - url)))
            ops = backends[i];
    if (!ops) {
        snprintf(err, errlen, "store '%.*s:' is not known: use sqlite:PATH or redis://HOST:PORT/DB",
                 (int)(colon - url), url);
        goto out;
    }
    if (!(s = calloc(1, sizeof *s))) { rc = TD_ENOMEM; goto out; }
    s->ops = ops;
    s->history_max = history_max;
    if ((rc = ops->open(s, colon + 1, err, errlen)) != TD_OK) {
        free(s); /* a failed open leaves nothing to close */
        s = NULL;
        goto out;
    }
    *out = s;
out:
    return rc;
}

void td_store_close(td_store *s)
{
    if (!s) return;
    s->ops->close(s);
    free(s);
}

int td_store_get(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen)
{
    return s->ops->get(s, name, e, err, errlen);
}

int td_store_put(td_store *s, const td_store_entry *e, char *err, size_t errlen)
{
    return s->ops->put(s, e, err, errlen);
}

int td_store_list(td_store *s, td_store_entry **v, size_t *n, char *err, size_t errlen)
{
    return s->ops->list(s, v, n, err, errlen);
}

int td_store_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                     char *err, size_t errlen)
{
    return s->ops->history(s, name, max, v, n, err, errlen);
}

int td_store_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen)
{
    return s->ops->watch ? s->ops->watch(s, cb, ud, err, errlen) : TD_OK;
}

int td_store_ping(td_store *s, char *err, size_t errlen)
{
    return s->ops->ping ? s->ops->ping(s, err, errlen) : TD_OK;
}

int td_store_lease(td_store *s, const char *key, const char *owner, int64_t ttl_ms, int op,
                   char *err, size_t errlen)
{
    return s->ops->lease ? s->ops->lease(s, key, owner, ttl_ms, op, err, errlen) : TD_OK;
}

const char *td_store_redact(const char *url, char *buf, size_t len)
{
    const char *auth = url ? strstr(url, "://") : NULL, *at = NULL;

    /* The userinfo is everything up to the authority's last '@' (RFC 3986:
     * the authority ends at the first '/', '?' or '#'); it goes whole,
     * whatever its form -- ":pw", "user:pw", a bare "pw" or
     * percent-encoded -- so no reading of it can leave part behind. */
    if (auth) {
        auth += 3;
        for (const char *c = auth; *c && *c != '/' && *c != '?' && *c != '#'; c++)
            if (*c == '@') at = c;
    }
    if (!at) snprintf(buf, len, "%s", url ? url : "");
    else snprintf(buf, len, "%.*s***%s", (int)(auth - url), url, at);
    return buf;
}

void td_store_entry_clear(td_store_entry *e)
{
    if (!e) return;
    free(e->name);
    free(e->json);
    memset(e, 0, sizeof *e);
}

void td_store_list_free(td_store_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) td_store_entry_clear(&v[i]);
    free(v);
}
