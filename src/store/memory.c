/*
 * store/memory -- no persistence: the records live as long as the process.
 *
 * URL: memory: (anything after the colon is refused).  For an instance
 * that fetches its own token (a Tencent SCF Web function with the Feishu
 * app's secret in its environment): at a cold start it asks Feishu, which
 * hands every instance the same token until the last 30 minutes, so a
 * fleet of such instances agrees without sharing anything -- each is its
 * own fleet (no lease, no messages).  Put-if-newer and a bounded history
 * behave as in the other stores, so the API cannot tell the difference
 * except across a restart.
 */
#include "store.h"
#include "snap.h"
#include "tokendist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_rec {
    td_store_entry cur;
    td_store_entry *hist;       /* ring of history_max, newest at hist_head - 1 */
    size_t hist_head, hist_n;
} mem_rec;

typedef struct mem_store {
    pthread_mutex_t lock;
    mem_rec *v;
    size_t n;
    size_t history_max;
} mem_store;

static int copy_entry(td_store_entry *dst, const td_store_entry *src)
{
    memset(dst, 0, sizeof *dst);
    if (!(dst->name = strdup(src->name)) || !(dst->json = malloc(src->json_len + 1))) {
        td_store_entry_clear(dst);
        return TD_ENOMEM;
    }
    memcpy(dst->json, src->json, src->json_len);
    dst->json[src->json_len] = '\0';
    dst->json_len = src->json_len;
    dst->generated_ts = src->generated_ts;
    dst->expire_ts = src->expire_ts;
    return TD_OK;
}

static mem_rec *find(mem_store *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->v[i].cur.name, name)) return &m->v[i];
    return NULL;
}

static void mem_close(td_store *s)
{
    mem_store *m = s->impl;

    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        td_store_entry_clear(&m->v[i].cur);
        for (size_t j = 0; j < m->v[i].hist_n; j++) td_store_entry_clear(&m->v[i].hist[j]);
        free(m->v[i].hist);
    }
    free(m->v);
    pthread_mutex_destroy(&m->lock);
    free(m);
    s->impl = NULL;
}

static int mem_open(td_store *s, const char *spec, char *err, size_t errlen)
{
    mem_store *m;

    if (spec && *spec) {
        snprintf(err, errlen, "内存存储不需要路径: 写作 memory: (不是 memory:%s)", spec);
        return TD_EINVAL;
    }
    if (!(m = calloc(1, sizeof *m))) {
        snprintf(err, errlen, "内存不足");
        return TD_ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->history_max = s->history_max ? s->history_max : 1;
    s->impl = m;
    return TD_OK;
}

static int mem_get(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen)
{
    mem_store *m = s->impl;
    mem_rec *r;
    int rc = TD_ENOTFOUND;

    (void)err, (void)errlen;
    pthread_mutex_lock(&m->lock);
    if ((r = find(m, name))) rc = copy_entry(e, &r->cur);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Keeps e in name's history ring (lock held). */
static int remember(mem_store *m, mem_rec *r, const td_store_entry *e)
{
    td_store_entry *slot;

    if (!r->hist && !(r->hist = calloc(m->history_max, sizeof *r->hist))) return TD_ENOMEM;
    slot = &r->hist[r->hist_head];
    td_store_entry_clear(slot);
    if (copy_entry(slot, e) != TD_OK) return TD_ENOMEM;
    r->hist_head = (r->hist_head + 1) % m->history_max;
    if (r->hist_n < m->history_max) r->hist_n++;
    return TD_OK;
}

static int mem_put(td_store *s, const td_store_entry *e, char *err, size_t errlen)
{
    mem_store *m = s->impl;
    mem_rec *r;
    td_store_entry fresh;
    int rc = TD_OK;

    pthread_mutex_lock(&m->lock);
    if ((r = find(m, e->name))) {
        if (e->generated_ts == r->cur.generated_ts && e->json_len == r->cur.json_len &&
            !memcmp(e->json, r->cur.json, e->json_len))
            goto out; /* an exact re-send: already stored */
        if (e->generated_ts <= r->cur.generated_ts) {
            snprintf(err, errlen, "记录不比已存储的新 (generated_timestamp %lld，已存储的是 %lld)：保留已存储的 token",
                     (long long)e->generated_ts, (long long)r->cur.generated_ts);
            rc = TD_ECONFLICT;
            goto out;
        }
    } else if (m->n >= TD_SNAP_NAMES_MAX) {
        snprintf(err, errlen, "内存存储中已有 %zu 个 token 名称 (最多 %d 个)", m->n,
                 TD_SNAP_NAMES_MAX);
        rc = TD_ETOOBIG;
        goto out;
    } else {
        mem_rec *v = realloc(m->v, (m->n + 1) * sizeof *v);
        if (!v) { rc = TD_ENOMEM; goto out; }
        m->v = v;
        r = &m->v[m->n];
        memset(r, 0, sizeof *r);
    }
    if ((rc = copy_entry(&fresh, e)) != TD_OK) goto out;
    if ((rc = remember(m, r, e)) != TD_OK) {
        td_store_entry_clear(&fresh);
        if (!r->cur.name) free(r->hist), r->hist = NULL; /* the new name is not kept */
        goto out;
    }
    if (!r->cur.name) m->n++;         /* a new name: now counted */
    td_store_entry_clear(&r->cur);
    r->cur = fresh;
out:
    pthread_mutex_unlock(&m->lock);
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足");
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const mem_rec *const *)a)->cur.name, (*(const mem_rec *const *)b)->cur.name);
}

static int mem_list(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                    char *err, size_t errlen)
{
    mem_store *m = s->impl;
    td_store_entry *arr = NULL;
    mem_rec **order = NULL;
    size_t cnt = 0, end = 0;
    int rc = TD_OK;

    pthread_mutex_lock(&m->lock);
    if (from < m->n) {
        end = m->n - from > max ? from + max : m->n;
        *more = end < m->n;
        /* The page is copied, not the whole store. */
        if (!(order = malloc(m->n * sizeof *order)) || !(arr = calloc(end - from, sizeof *arr))) rc = TD_ENOMEM;
        for (size_t i = 0; rc == TD_OK && i < m->n; i++) order[i] = &m->v[i];
        if (rc == TD_OK) qsort(order, m->n, sizeof *order, by_name);
        for (size_t i = from; i < end && rc == TD_OK; i++)
            if ((rc = copy_entry(&arr[cnt], &order[i]->cur)) == TD_OK) cnt++;
    }
    pthread_mutex_unlock(&m->lock);
    free(order);
    if (rc != TD_OK) {
        td_store_list_free(arr, cnt);
        snprintf(err, errlen, "内存不足");
        return rc;
    }
    *v = arr;
    *n = cnt;
    return TD_OK;
}

static int mem_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n, char *err,
                       size_t errlen)
{
    mem_store *m = s->impl;
    mem_rec *r;
    td_store_entry *arr = NULL;
    size_t cnt = 0;
    int rc = TD_OK;

    *v = NULL, *n = 0;
    pthread_mutex_lock(&m->lock);
    if ((r = find(m, name)) && r->hist_n) {
        size_t want = max && max < r->hist_n ? max : r->hist_n;
        if (!(arr = calloc(want, sizeof *arr))) rc = TD_ENOMEM;
        for (size_t i = 0; i < want && rc == TD_OK; i++) { /* newest first */
            size_t k = (r->hist_head + m->history_max - 1 - i) % m->history_max;
            if ((rc = copy_entry(&arr[cnt], &r->hist[k])) == TD_OK) cnt++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (rc != TD_OK) {
        td_store_list_free(arr, cnt);
        snprintf(err, errlen, "内存不足");
        return rc;
    }
    *v = arr;
    *n = cnt;
    return TD_OK;
}

static void mem_where(td_store *s, const char *name, char *buf, size_t len)
{
    (void)s;
    snprintf(buf, len, "内存存储中的 %s", name);
}

const td_store_ops td_store_memory_ops = {
    .scheme = "memory",
    .open = mem_open,
    .get = mem_get,
    .put = mem_put,
    .list = mem_list,
    .history = mem_history,
    .where = mem_where,
    .close = mem_close,
};
