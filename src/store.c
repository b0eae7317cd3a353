/* store -- dispatch to a backend by URL scheme.  See store.h. */
#include "store.h"
#include "httpc.h"
#include "tokendist.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set on threads that must never wait for a store (the HTTP event
 * thread).  Debug builds abort on a store call from such a thread, so a
 * blocking call sneaking back onto it fails every test instead of passing
 * for "fast enough" while the store is quick. */
static __thread int forbidden;

void td_store_forbid_thread(void) { forbidden = 1; }

#define MAY_BLOCK() assert(!forbidden && "store call on a thread that must not block")

static const td_store_ops *const backends[] = {
    &td_store_sqlite_ops,
    &td_store_memory_ops,
#ifdef TD_HAVE_REDIS
    &td_store_redis_ops,
#endif
    &td_store_s3_ops,
};

#define TD_STORE_KINDS "sqlite:PATH、memory:、redis://HOST:PORT/DB 或 s3://BUCKET/PREFIX"

/* How each kind of TD_STORE_KINDS is written, for a kind named without
 * its colon. */
static const struct { const char *kind, *form; } forms[] = {
    {"sqlite", "sqlite:PATH"}, {"memory", "memory:"}, {"redis", "redis://HOST:PORT/DB"}, {"s3", "s3://BUCKET/PREFIX"},
};

/* The backend of url's scheme, or NULL with err saying what to write. */
static const td_store_ops *backend(const char *url, char *err, size_t errlen)
{
    const char *colon = url ? strchr(url, ':') : NULL;

    if (!colon) {
        /* A kind without its colon ("--store memory", as issue #11 and
         * people write it) means that kind: a SQLite file of that name
         * is the last thing they want.  Any other bare word is a file
         * name, meant for SQLite. */
        for (size_t i = 0; url && i < sizeof forms / sizeof *forms; i++)
            if (!strcmp(url, forms[i].kind)) {
                snprintf(err, errlen, "没有写明存储类型 (类型后面要加冒号): 要用 %s 存储请写 %s；可用的有 " TD_STORE_KINDS,
                         forms[i].kind, forms[i].form);
                return NULL;
            }
        snprintf(err, errlen, "没有写明存储类型: 要用 SQLite 文件请写 sqlite:%.200s；可用的有 " TD_STORE_KINDS,
                 url ? url : "");
        return NULL;
    }
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
        if (strlen(backends[i]->scheme) == (size_t)(colon - url) &&
            !strncmp(backends[i]->scheme, url, (size_t)(colon - url)))
            return backends[i];
    snprintf(err, errlen, "不认识存储类型 '%.*s:'%s；可用的有 " TD_STORE_KINDS, (int)(colon - url > 40 ? 40 : colon - url),
             url,
#ifdef TD_HAVE_REDIS
             ""
#else
             !strncmp(url, "redis:", 6) ? " (这个版本编译时没有 Redis 支持)" : ""
#endif
    );
    return NULL;
}

int td_store_check_url(const char *url, char *err, size_t errlen)
{
    const td_store_ops *ops = backend(url, err, errlen);

    if (!ops) return TD_EINVAL;
    return ops->check ? ops->check(strchr(url, ':') + 1, err, errlen) : TD_OK;
}

int td_store_open(td_store **out, const char *url, size_t history_max, char *err, size_t errlen)
{
    td_store *s = NULL;
    const td_store_ops *ops = NULL;
    int rc = TD_EINVAL;

    if (td_store_check_url(url, err, errlen) != TD_OK) goto out;
    ops = backend(url, err, errlen);
    if (!(s = calloc(1, sizeof *s))) { rc = TD_ENOMEM; goto out; }
    s->ops = ops;
    s->history_max = history_max;
    if ((rc = ops->open(s, strchr(url, ':') + 1, err, errlen)) != TD_OK) {
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
    MAY_BLOCK();
    return s->ops->get(s, name, e, err, errlen);
}

int td_store_put(td_store *s, const td_store_entry *e, char *err, size_t errlen)
{
    MAY_BLOCK();
    return s->ops->put(s, e, err, errlen);
}

int td_store_list(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                  char *err, size_t errlen)
{
    MAY_BLOCK();
    *v = NULL, *n = 0, *more = 0;
    return s->ops->list(s, from, max, v, n, more, err, errlen);
}

int td_store_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                     char *err, size_t errlen)
{
    MAY_BLOCK();
    return s->ops->history(s, name, max, v, n, err, errlen);
}

int td_store_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen)
{
    MAY_BLOCK();
    return s->ops->watch ? s->ops->watch(s, cb, ud, err, errlen) : TD_OK;
}

int td_store_ping(td_store *s, char *err, size_t errlen)
{
    MAY_BLOCK();
    return s->ops->ping ? s->ops->ping(s, err, errlen) : TD_OK;
}

int td_store_lease(td_store *s, const char *key, const char *owner, int64_t ttl_ms, int op,
                   char *err, size_t errlen)
{
    MAY_BLOCK();
    return s->ops->lease ? s->ops->lease(s, key, owner, ttl_ms, op, err, errlen) : TD_OK;
}

const char *td_store_redact(const char *url, char *buf, size_t len)
{
    return td_httpc_redact_url(url, 0, buf, len);
}

int td_store_send(td_store *s, const char *to, const char *msg, char *err, size_t errlen)
{
    MAY_BLOCK();
    if (!s->ops->send) {
        snprintf(err, errlen, "存储 '%s' 不能在服务器之间传递消息", s->ops->scheme);
        return TD_ENOTFOUND;
    }
    return s->ops->send(s, to, msg, err, errlen);
}

int td_store_listen(td_store *s, const char *me, td_store_msg_cb cb, void *ud, char *err, size_t errlen)
{
    return s->ops->listen ? s->ops->listen(s, me, cb, ud, err, errlen) : TD_OK;
}

int td_store_lease_owner(td_store *s, const char *key, char *owner, size_t len, char *err, size_t errlen)
{
    MAY_BLOCK();
    if (!s->ops->lease_owner) {
        snprintf(err, errlen, "存储 '%s' 没有集群租约", s->ops->scheme);
        return TD_ENOTFOUND;
    }
    return s->ops->lease_owner(s, key, owner, len, err, errlen);
}

int td_store_has_messages(const td_store *s) { return s->ops->send != NULL; }

const char *td_store_where(td_store *s, const char *name, char *buf, size_t len)
{
    s->ops->where(s, name, buf, len);
    return buf;
}

int td_store_warning(td_store *s, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    return s->ops->warning && len ? s->ops->warning(s, buf, len) : 0;
}

void td_store_entry_clear(td_store_entry *e)
{
    if (!e) return;
    free(e->name);
    free(e->json);
    free(e->problem);
    memset(e, 0, sizeof *e);
}

void td_store_list_free(td_store_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) td_store_entry_clear(&v[i]);
    free(v);
}
