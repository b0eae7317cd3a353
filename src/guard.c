/* guard -- see guard.h. */
#include "guard.h"
#include "clock.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

void td_guard_init(td_guard *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
}

void td_guard_free(td_guard *g) { pthread_mutex_destroy(&g->lock); }

static td_guard_slot *find(td_guard *g, const char *addr)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = addr; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return &g->slot[h % TD_GUARD_SLOTS];
}

int64_t td_guard_fail(td_guard *g, const char *addr)
{
    int64_t now = td_clock_now(), left = 0;
    td_guard_slot *s;

    if (!addr) return 0;
    pthread_mutex_lock(&g->lock);
    s = find(g, addr);
    if (strcmp(s->addr, addr) != 0) {
        if (s->blocked_until > now) goto out; /* failing elsewhere lifts no block */
        memset(s, 0, sizeof *s);
        snprintf(s->addr, sizeof s->addr, "%s", addr);
    }
    if (s->blocked_until > now) {
        left = s->blocked_until - now;
        goto out;
    }
    if (now - s->window_start >= TD_GUARD_WINDOW) {
        s->window_start = now;
        s->fails = 0;
    }
    if (++s->fails >= TD_GUARD_FAILS) {
        s->blocked_until = now + TD_GUARD_BLOCK;
        td_log("⚠️ %s 认证失败 %u 次：%d 秒内它的错误或缺失的密钥一律答 429 (正确的密钥照常通过)",
               addr, s->fails, TD_GUARD_BLOCK);
        s->fails = 0;
    }
out:
    pthread_mutex_unlock(&g->lock);
    return left;
}
