/*
 * store/redis -- the store shared by many instances (hiredis).
 *
 * URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=NS]
 *
 * Layout, every key under the prefix NS (default "tokendist:"):
 *     NS token:NAME     hash {json, gen, exp}: the current record
 *     NS history:NAME   list of "GEN EXP JSON", newest first, trimmed
 *     NS names          set of the names that have a record
 *     NS lease:KEY      the owner of a fleet lease (lease.h), with a PX ttl
 *     NS changed@DB     the channel a put publishes NAME on
 * Pub/Sub is not scoped by database, so the channel carries the DB number.
 *
 * Put-if-newer is one Lua script: the compare, the write, the history trim
 * and the PUBLISH happen atomically in Redis, so a slow or paused writer
 * can never replace a newer token with an older one.
 *
 * Durability: a put that returned TD_OK is in Redis's memory; what it
 * survives after that is Redis's appendonly/appendfsync setting (see
 * docs/redis.md): "appendfsync always" survives power loss.
 *
 * Two connections.  The command connection serves get/put/list/ping/lease
 * for the HTTP, refresher and watch threads, one call at a time under a
 * mutex.  The keeper thread owns the subscription, and it is also the only
 * one that (re)connects: a caller never waits for a connect, so a Redis
 * that is down answers TD_EUNAVAIL at once (the API turns that into 503 +
 * Retry-After) while GETs go on from the in-memory snapshots.
 *
 * Everything read from Redis is bounded: counts by the commands
 * themselves (SORT … LIMIT for a page of names, LRANGE 0 n-1) and record
 * sizes by the Lua scripts, which refuse a value over JSON_MAX before it
 * is sent.
 */
#define _GNU_SOURCE
#include "store.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "snap.h"
#include "tokendist.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_MS 1000         /* a Redis that takes longer is down for us */
#define COMMAND_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SUB_PING_MS 5000        /* a subscription silent this long is probed */
#define RESYNC_MS 5000          /* everything is reloaded this often: another tool's writes
                                   are seen without a PUBLISH */
#define JSON_MAX (1u << 20)     /* the API's largest body */
#define NAME_MAX_LEN 80        /* a token name (64) or NAME.jsapi_ticket */
#define PREFIX_MAX 64
#define KEY_MAX (PREFIX_MAX + 16 + 128)

typedef struct rd_store {
    /* from the URL; the password is never logged or put in a message */
    char host[256];
    int port, db;
    char *user, *password;
    char prefix[PREFIX_MAX + 1];
    char where[300];            /* "HOST:PORT/DB", for messages */
    char channel[PREFIX_MAX + 32];
    size_t history_max;

    pthread_mutex_t lock;       /* guards the fields below it */
    redisContext *cmd;          /* NULL while down */
    char down_why[256];         /* the failure that took it down */
    int64_t down_since;         /* Unix seconds; 0 while up */
    int resync;                 /* tell cb "everything" when next connected */
    int64_t last_sync;          /* keeper only: monotonic ms of the last full reload */
    int stopping;

    /* Held by the keeper while it calls cb, so that watch(NULL) returns
     * only when no call is running (the caller may free ud next). */
    pthread_mutex_t cb_lock;
    td_store_change_cb cb;
    void *ud;
    td_store_msg_cb msg_cb;     /* messages to our inbox (td_store_listen) */
    void *msg_ud;
    char inbox[KEY_MAX + 16];   /* our inbox channel, "" none; under lock */
    char subscribed[KEY_MAX + 16]; /* keeper only: the inbox the subscription has */

    pthread_t keeper;
    int keeper_started;
    int wake[2];                /* pipe: a byte wakes the keeper */
} rd_store;

/* --- scripts ----------------------------------------------------------- */

/* KEYS: token hash, history list, names set.
 * ARGV: json, gen, exp, history to keep, name, channel, most names.
 * Returns {1, gen} stored, {0, gen} identical to the stored one,
 * {-1, stored gen} not newer, {-2, names} a new name and the names set
 * full: the fleet's name limit, decided in the script that adds a name. */
static const char PUT_LUA[] =
    "local cur = redis.call('HMGET', KEYS[1], 'gen', 'json')\n"
    "local gen = tonumber(ARGV[2])\n"
    "if cur[1] then\n"
    "  local stored = tonumber(cur[1])\n"
    "  if gen == stored and cur[2] == ARGV[1] then return {0, cur[1]} end\n"
    "  if gen <= stored then return {-1, cur[1]} end\n"
    "end\n"
    "if redis.call('SISMEMBER', KEYS[3], ARGV[5]) == 0 then\n"
    "  local n = redis.call('SCARD', KEYS[3])\n"
    "  if n >= tonumber(ARGV[7]) then return {-2, tostring(n)} end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'json', ARGV[1], 'gen', ARGV[2], 'exp', ARGV[3])\n"
    "redis.call('LPUSH', KEYS[2], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])\n"
    "redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)\n"
    "redis.call('SADD', KEYS[3], ARGV[5])\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[5])\n"
    "return {1, ARGV[2]}\n";

/* KEYS: token hash.  ARGV: largest json.  Returns {json, gen, exp} or nil. */
static const char GET_LUA[] =
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t == 'none' then return false end\n"
    "if t ~= 'hash' then return 'WRONGTYPE' end\n"
    "local v = redis.call('HMGET', KEYS[1], 'json', 'gen', 'exp')\n"
    "if not v[1] and not v[2] and not v[3] then return false end\n"
    "if not v[1] then return {false, v[2] or false, v[3] or false} end\n"
    "if string.len(v[1]) > tonumber(ARGV[1]) then\n"
    "  return 'TOOBIG'\n"
    "end\n"
    "return v\n";

/* KEYS: history list.  ARGV: how many, largest entry.  Oversized entries
 * are skipped rather than sent. */
static const char HISTORY_LUA[] =
    "local out = {}\n"
    "for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do\n"
    "  if string.len(e) <= tonumber(ARGV[2]) then out[#out + 1] = e end\n"
    "end\n"
    "return out\n";

/* KEYS: lease.  ARGV: owner, ttl ms.  Renews our own lease, else takes a
 * free one with SET NX PX.  Returns 1 held, 0 another owner holds it. */
static const char LEASE_TAKE_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "return 0\n";

/* KEYS: lease.  ARGV: owner.  Compare-and-delete: never drops a lease
 * another instance took over after ours lapsed. */
static const char LEASE_DROP_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* --- the URL ----------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+len) into a new string (passwords may carry '@'
 * or ':' that way). */
static char *pct_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;

    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Parses "//[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=NS]".  Messages
 * never repeat the URL, which may hold the password. */
static int parse_url(rd_store *q, const char *spec, char *err, size_t errlen)
{
    const char *p, *at, *end, *host_end, *query;
    char *e;
    size_t hl;
    long v;

    if (strncmp(spec, "//", 2) != 0) goto bad;
    p = spec + 2;
    end = p + strcspn(p, "/?");
    query = strchr(p, '?');
    /* The last '@' before the path ends the credentials. */
    at = NULL;
    for (const char *c = p; c < end; c++)
        if (*c == '@') at = c;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            snprintf(err, errlen, "Redis 存储 URL 的凭证应写成 ':PASSWORD@' 或 'USER:PASSWORD@' "
                                  "('@' 前只有一个名字是不行的)");
            return TD_EINVAL;
        }
        if (colon > p && !(q->user = pct_decode(p, (size_t)(colon - p)))) return TD_ENOMEM;
        if (!(q->password = pct_decode(colon + 1, (size_t)(at - colon - 1)))) return TD_ENOMEM;
        p = at + 1;
    }
    q->port = 6379;
    if (*p == '[') { /* [v6]:port */
        if (!(host_end = memchr(p, ']', (size_t)(end - p)))) goto bad;
        hl = (size_t)(host_end - p - 1);
        if (hl == 0 || hl >= sizeof q->host) goto bad;
        memcpy(q->host, p + 1, hl);
        host_end++;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (!host_end) host_end = end;
        hl = (size_t)(host_end - p);
        if (hl == 0 || hl >= sizeof q->host) goto bad;
        memcpy(q->host, p, hl);
    }
    if (host_end < end) {
        if (*host_end != ':') goto bad;
        errno = 0;
        v = strtol(host_end + 1, &e, 10);
        if (errno || e != end || v < 1 || v > 65535) goto bad;
        q->port = (int)v;
    }
    p = end;
    if (*p == '/' && p[1] && p[1] != '?') {
        errno = 0;
        v = strtol(p + 1, &e, 10);
        if (errno || (*e && *e != '?') || v < 0 || v > 100000) goto bad;
        q->db = (int)v;
    }
    snprintf(q->prefix, sizeof q->prefix, "tokendist:");
    if (query) {
        static const char key[] = "prefix=";
        const char *val = query + 1;
        size_t vl = strlen(val);
        if (strncmp(val, key, sizeof key - 1) != 0 || strchr(val, '&')) {
            snprintf(err, errlen, "Redis 存储 URL 只有一个参数: ?prefix=NAMESPACE");
            return TD_EINVAL;
        }
        val += sizeof key - 1;
        vl -= sizeof key - 1;
        if (vl == 0 || vl > PREFIX_MAX) {
            snprintf(err, errlen, "Redis 存储 URL 的 prefix 应为 1 到 %d 个字符", PREFIX_MAX);
            return TD_EINVAL;
        }
        for (size_t i = 0; i < vl; i++)
            if ((unsigned char)val[i] <= ' ' || val[i] == 0x7f) {
                snprintf(err, errlen, "Redis 存储 URL 的 prefix 不能含空白字符");
                return TD_EINVAL;
            }
        memcpy(q->prefix, val, vl);
        q->prefix[vl] = '\0';
    }
    snprintf(q->where, sizeof q->where, "%s%s%s:%d/%d", strchr(q->host, ':') ? "[" : "", q->host,
             strchr(q->host, ':') ? "]" : "", q->port, q->db);
    snprintf(q->channel, sizeof q->channel, "%schanged@%d", q->prefix, q->db);
    return TD_OK;
bad:
    snprintf(err, errlen, "Redis 存储 URL 应写成 redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=NS]，"
                          "例如 redis://127.0.0.1:6379/0 (密码里的 / ? # @ : 要写成 %%2F %%3F %%23 %%40 %%3A)");
    return TD_EINVAL;
}

/* --- connections ------------------------------------------------------- */

static struct timeval ms_tv(long ms) { return (struct timeval){ms / 1000, (ms % 1000) * 1000}; }

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Redis errors that mean "not now" rather than "never". */
static int transient_error(const char *msg)
{
    static const char *const codes[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                                        "READONLY", "NOREPLICAS", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (!strncmp(msg, codes[i], strlen(codes[i]))) return 1;
    return 0;
}

/* Opens one connection: connect, AUTH, and for the command connection
 * SELECT.  Returns NULL with err filled and *rc set: TD_EUNAVAIL when
 * Redis cannot be reached, TD_EAUTH / TD_EIO when it refused us. */
static redisContext *rd_connect(rd_store *q, int select_db, int *rc, char *err, size_t errlen)
{
    redisContext *c = redisConnectWithTimeout(q->host, q->port, ms_tv(CONNECT_MS));
    redisReply *r = NULL;

    *rc = TD_EUNAVAIL;
    if (!c || c->err) {
        snprintf(err, errlen, "无法连接 Redis %s: %s (redis-server 在那里运行吗？请检查存储 URL 的地址和端口)",
                 q->where, c ? c->errstr : "内存不足");
        goto fail;
    }
    redisSetTimeout(c, ms_tv(COMMAND_MS));
    redisEnableKeepAlive(c);
    if (q->password) {
        r = q->user ? redisCommand(c, "AUTH %s %s", q->user, q->password)
                    : redisCommand(c, "AUTH %s", q->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis %s 拒绝了存储 URL 中的凭据: %s (请检查 URL 中的用户名和密码)",
                     q->where, r ? r->str : c->errstr);
            if (r) *rc = TD_EAUTH;
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (select_db && q->db) {
        r = redisCommand(c, "SELECT %d", q->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis %s: 无法选择数据库 %d: %s (请检查存储 URL 末尾的 /DB)", q->where, q->db,
                     r ? r->str : c->errstr);
            if (r) *rc = TD_EIO;
            goto fail;
        }
        freeReplyObject(r);
    }
    /* A connect that succeeded says only that the kernel took it: a
     * stopped (SIGSTOP) or wedged Redis accepts connections it never
     * answers.  Connected means Redis answered, within the command
     * timeout; until then it stays down, and POSTs get their 503 at once. */
    r = redisCommand(c, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r && !strncmp(r->str, "NOAUTH", 6)) {
            snprintf(err, errlen, "Redis %s 需要密码: 请把密码写进存储 URL "
                                  "(redis://:PASSWORD@HOST:PORT/DB)", q->where);
            *rc = TD_EAUTH;
        } else {
            snprintf(err, errlen, "Redis %s 接受连接但不回答: %s (进程是否被暂停或过载？)", q->where,
                     r ? r->str : c->errstr);
        }
        goto fail;
    }
    freeReplyObject(r);
    return c;
fail:
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
    return NULL;
}

static void wake_keeper(rd_store *q)
{
    char b = 1;
    (void)!write(q->wake[1], &b, 1);
}

/* Marks the command connection down (lock held), once per outage.  why
 * may point into q->cmd, so it is copied before the context goes. */
static void mark_down(rd_store *q, const char *why)
{
    if (!q->down_since) {
        q->down_since = (int64_t)time(NULL);
        snprintf(q->down_why, sizeof q->down_why, "%.250s", why);
        td_log("❌ Redis 连接断开 (%s): %s；GET 继续由内存中的 token 应答，POST 返回 503，正在重连",
               q->where, why);
        wake_keeper(q);
    }
    if (q->cmd) {
        redisFree(q->cmd);
        q->cmd = NULL;
    }
}

static int unavailable(rd_store *q, char *err, size_t errlen)
{
    snprintf(err, errlen, "Redis %s 暂不可用 (%s)，正在重连", q->where,
             q->down_why[0] ? q->down_why : "未连接");
    return TD_EUNAVAIL;
}

/* Runs one command on the command connection (lock held); hiredis
 * formats take %s %b %d %u %lld %llu, not %zu.  Returns the
 * reply (caller frees), or NULL with rc set: TD_EUNAVAIL when Redis is
 * down or answered a transient error, TD_EIO for any other error reply. */
static redisReply *rd_vcall(rd_store *q, int *rc, char *err, size_t errlen, const char *fmt,
                            va_list ap)
{
    redisReply *r;

    if (!q->cmd) {
        *rc = unavailable(q, err, errlen);
        return NULL;
    }
    if (!(r = redisvCommand(q->cmd, fmt, ap))) {
        mark_down(q, q->cmd->errstr[0] ? q->cmd->errstr : "连接已断开");
        *rc = unavailable(q, err, errlen);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        *rc = transient_error(r->str) ? TD_EUNAVAIL : TD_EIO;
        snprintf(err, errlen, "Redis %s 返回错误: %.200s", q->where, r->str);
        freeReplyObject(r);
        return NULL;
    }
    *rc = TD_OK;
    return r;
}

static redisReply *rd_call(rd_store *q, int *rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    va_start(ap, fmt);
    r = rd_vcall(q, rc, err, errlen, fmt, ap);
    va_end(ap);
    return r;
}

static int bad_reply(rd_store *q, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "Redis %s 对%s的回答不符合预期 (是否有其他程序在前缀 '%s' 下写入？)", q->where, what,
             q->prefix);
    return TD_EIO;
}

/* --- the keeper thread ------------------------------------------------- */

/* Waits up to ms for a wake byte; returns 1 when woken. */
static int wait_wake(rd_store *q, int ms)
{
    struct pollfd p = {q->wake[0], POLLIN, 0};
    char buf[64];
    if (poll(&p, 1, ms) <= 0) return 0;
    while (read(q->wake[0], buf, sizeof buf) == (ssize_t)sizeof buf)
        ;
    return 1;
}

static int stopping(rd_store *q)
{
    int s;
    pthread_mutex_lock(&q->lock);
    s = q->stopping;
    pthread_mutex_unlock(&q->lock);
    return s;
}

static int sub_connect(rd_store *q, redisContext **out, char *err, size_t errlen)
{
    int rc;
    redisContext *c = rd_connect(q, 0, &rc, err, errlen);
    redisReply *r = NULL;

    if (!c) return rc;
    pthread_mutex_lock(&q->lock);
    snprintf(q->subscribed, sizeof q->subscribed, "%s", q->inbox);
    pthread_mutex_unlock(&q->lock);
    if (!(r = redisCommand(c, "SUBSCRIBE %s", q->channel)) || r->type != REDIS_REPLY_ARRAY) goto fail;
    freeReplyObject(r);
    if (q->subscribed[0]) {
        if (!(r = redisCommand(c, "SUBSCRIBE %s", q->subscribed)) || r->type != REDIS_REPLY_ARRAY) goto fail;
        freeReplyObject(r);
    }
    *out = c;
    return TD_OK;
fail:
    snprintf(err, errlen, "Redis %s: 无法订阅变更通知: %.150s", q->where,
             r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    if (r) freeReplyObject(r);
    redisFree(c);
    return TD_EUNAVAIL;
}

/* Hands one pub/sub message to its callback: ["message", channel, text],
 * a change (text: a token name) or a message to our inbox. */
static void on_message(rd_store *q, redisReply *r, int *pong)
{
    const redisReply *ch, *text;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcasecmp(r->element[0]->str, "pong")) {
        *pong = 1;
        return;
    }
    if (strcmp(r->element[0]->str, "message") != 0 || r->elements != 3 ||
        (ch = r->element[1])->type != REDIS_REPLY_STRING || (text = r->element[2])->type != REDIS_REPLY_STRING ||
        text->len == 0 || memchr(text->str, '\0', text->len))
        return;
    pthread_mutex_lock(&q->cb_lock);
    if (!strcmp(ch->str, q->channel)) {
        if (q->cb && text->len <= NAME_MAX_LEN) q->cb(q->ud, text->str);
    } else if (!strcmp(ch->str, q->subscribed)) {
        if (q->msg_cb && text->len <= TD_STORE_MSG_MAX) q->msg_cb(q->msg_ud, text->str);
    }
    pthread_mutex_unlock(&q->cb_lock);
}

/* Reads the subscription until it breaks (returns TD_EUNAVAIL) or the
 * keeper is woken (TD_OK).  A subscription silent for SUB_PING_MS is
 * probed with PING, so a half-open TCP connection is noticed. */
static int sub_pump(rd_store *q, redisContext *sub, char *err, size_t errlen)
{
    int64_t last = mono_ms(), ping_sent = 0;

    for (;;) {
        struct pollfd p[2] = {{sub->fd, POLLIN, 0}, {q->wake[0], POLLIN, 0}};
        void *reply = NULL;
        int n, pong = 0, done = 0;
        int64_t due;

        while (redisGetReplyFromReader(sub, &reply) == REDIS_OK && reply) {
            on_message(q, reply, &pong);
            freeReplyObject(reply);
            reply = NULL;
            last = mono_ms();
            if (pong) ping_sent = 0;
        }
        if (sub->err) break;
        /* The full reload is due however busy the channel is: checked
         * before every wait, not only when a wait timed out. */
        if ((due = RESYNC_MS - (mono_ms() - q->last_sync)) <= 0) {
            pthread_mutex_lock(&q->lock);
            q->resync = 1;
            pthread_mutex_unlock(&q->lock);
            return TD_OK;
        }
        n = poll(p, 2, due < 1000 ? (int)due : 1000);
        if (n < 0 && errno != EINTR) break;
        if (p[1].revents & POLLIN) {
            wait_wake(q, 0);
            return TD_OK;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (redisBufferRead(sub) != REDIS_OK) break;
            continue;
        }
        if (ping_sent && mono_ms() - ping_sent > SUB_PING_MS) {
            snprintf(err, errlen, "PING 在 %d 毫秒内没有回答", SUB_PING_MS);
            return TD_EUNAVAIL;
        }
        if (!ping_sent && mono_ms() - last > SUB_PING_MS) {
            if (redisAppendCommand(sub, "PING") != REDIS_OK) break;
            while (!done)
                if (redisBufferWrite(sub, &done) != REDIS_OK) break;
            if (sub->err) break;
            ping_sent = mono_ms();
        }
    }
    snprintf(err, errlen, "%s", sub->errstr[0] ? sub->errstr : "连接已断开");
    return TD_EUNAVAIL;
}

/* Keeps both connections up: (re)connects with backoff, resyncs the
 * watcher after every reconnect (changes made meanwhile were never
 * published to us), and feeds it the published changes. */
static void *keeper_main(void *arg)
{
    rd_store *q = arg;
    redisContext *sub = NULL;
    int backoff = 0;
    char err[512];

    while (!stopping(q)) {
        int lost = 0, resync, failed = 0;

        if (!sub && sub_connect(q, &sub, err, sizeof err) != TD_OK) goto retry;
        pthread_mutex_lock(&q->lock);
        lost = q->cmd == NULL;
        pthread_mutex_unlock(&q->lock);
        if (lost) {
            int rc;
            redisContext *c = rd_connect(q, 1, &rc, err, sizeof err);
            if (!c) goto retry;
            pthread_mutex_lock(&q->lock);
            if (q->cmd) redisFree(q->cmd);
            q->cmd = c;
            if (q->down_since) {
                td_log("✅ Redis 已重新连接 (%s)，断开 %" PRId64 " 秒；重新加载全部 token", q->where,
                       (int64_t)time(NULL) - q->down_since);
                td_metrics_inc(TD_M_STORE_RECONNECTS);
            }
            q->down_since = 0;
            q->down_why[0] = '\0';
            q->resync = 1;
            pthread_mutex_unlock(&q->lock);
        }
        pthread_mutex_lock(&q->lock);
        resync = q->resync;
        pthread_mutex_unlock(&q->lock);
        if (resync) {
            pthread_mutex_lock(&q->cb_lock);
            if (q->cb && (failed = q->cb(q->ud, NULL) != TD_OK))
                snprintf(err, sizeof err, "重新加载 token 失败");
            else if (q->cb)
                resync = 0;
            pthread_mutex_unlock(&q->cb_lock);
            if (failed) goto retry;
            if (!resync) {
                pthread_mutex_lock(&q->lock);
                q->resync = 0;
                pthread_mutex_unlock(&q->lock);
            }
            /* The next one is due RESYNC_MS after this one (or after a
             * pass without a watcher, which has nothing to reload) --
             * not after a wake-up that reloaded nothing. */
            q->last_sync = mono_ms();
        } else if (!q->last_sync) {
            q->last_sync = mono_ms();
        }
        backoff = 0;
        {
            int moved;
            pthread_mutex_lock(&q->lock);
            moved = strcmp(q->inbox, q->subscribed) != 0;
            pthread_mutex_unlock(&q->lock);
            if (moved) { /* subscribe anew, with the inbox; a reload covers the gap */
                redisFree(sub);
                sub = NULL;
                pthread_mutex_lock(&q->lock);
                q->resync = 1;
                pthread_mutex_unlock(&q->lock);
                continue;
            }
        }
        if (sub_pump(q, sub, err, sizeof err) != TD_OK) {
            redisFree(sub);
            sub = NULL;
            pthread_mutex_lock(&q->lock);
            mark_down(q, err);  /* the command connection broke too, or soon will */
            q->resync = 1;
            pthread_mutex_unlock(&q->lock);
        }
        continue;
    retry:
        backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                          : BACKOFF_MIN_MS;
        pthread_mutex_lock(&q->lock);
        if (q->down_since) snprintf(q->down_why, sizeof q->down_why, "%.250s", err);
        pthread_mutex_unlock(&q->lock);
        wait_wake(q, backoff);
    }
    if (sub) redisFree(sub);
    return NULL;
}

/* --- the store --------------------------------------------------------- */

static void rd_close(td_store *s)
{
    rd_store *q = s->impl;

    if (!q) return;
    if (q->keeper_started) {
        pthread_mutex_lock(&q->lock);
        q->stopping = 1;
        pthread_mutex_unlock(&q->lock);
        wake_keeper(q);
        pthread_join(q->keeper, NULL);
    }
    if (q->cmd) redisFree(q->cmd);
    if (q->wake[0] >= 0) close(q->wake[0]);
    if (q->wake[1] >= 0) close(q->wake[1]);
    pthread_mutex_destroy(&q->lock);
    pthread_mutex_destroy(&q->cb_lock);
    if (q->password) explicit_bzero(q->password, strlen(q->password));
    free(q->password);
    free(q->user);
    free(q);
    s->impl = NULL;
}

static int rd_check(const char *spec, char *err, size_t errlen)
{
    rd_store *q = calloc(1, sizeof *q);
    int rc = q ? parse_url(q, spec, err, errlen) : TD_ENOMEM;

    if (q) {
        if (q->password) explicit_bzero(q->password, strlen(q->password));
        free(q->user);
        free(q->password);
        free(q);
    }
    return rc;
}

static int rd_open(td_store *s, const char *spec, char *err, size_t errlen)
{
    rd_store *q = calloc(1, sizeof *q);
    int rc = TD_ENOMEM;

    if (!q) goto fail;
    q->wake[0] = q->wake[1] = -1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_mutex_init(&q->cb_lock, NULL);
    s->impl = q;
    q->history_max = s->history_max ? s->history_max : 1;
    if ((rc = parse_url(q, spec, err, errlen)) != TD_OK) goto fail;
    if (pipe2(q->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "Redis 存储无法创建管道: %s", strerror(errno));
        rc = TD_ERR;
        goto fail;
    }
    /* The first connection is made here, so a wrong URL or password stops
     * the start with a clear message instead of a 503 later. */
    if (!(q->cmd = rd_connect(q, 1, &rc, err, errlen))) goto fail;
    if (pthread_create(&q->keeper, NULL, keeper_main, q) != 0) {
        snprintf(err, errlen, "Redis 存储无法启动后台线程");
        rc = TD_ERR;
        goto fail;
    }
    q->keeper_started = 1;
    return TD_OK;
fail:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足");
    rd_close(s);
    return rc;
}

static void key_of(const rd_store *q, const char *kind, const char *name, char key[KEY_MAX])
{
    snprintf(key, KEY_MAX, "%s%s%s", q->prefix, kind, name);
}

static int valid_name(const char *name) { return name && td_record_key_valid(name, strlen(name)); }

/* Fills e from a GET_LUA answer {json, gen, exp}.  A hash that another
 * tool wrote without the fields we need is not a failure of the store:
 * the entry comes back with its problem said, and the others still load. */
static int entry_from(rd_store *q, const char *name, const redisReply *r, td_store_entry *e,
                      char *err, size_t errlen)
{
    const char *problem = NULL;
    char *end;

    (void)err, (void)errlen;
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return TD_ENOMEM;
    if (r->type == REDIS_REPLY_STRING && !strcmp(r->str, "TOOBIG")) {
        problem = "json 字段大于 1 MiB";
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        problem = "值不是 tokendist 写入的哈希 (应有 json、gen、exp 三个字段)";
    } else if (r->element[0]->type != REDIS_REPLY_STRING) {
        problem = "哈希缺少 json 字段";
    } else if (r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING) {
        problem = "哈希缺少 gen 或 exp 字段";
    } else if ((e->generated_ts = strtoll(r->element[1]->str, &end, 10), *end || end == r->element[1]->str) ||
               (e->expire_ts = strtoll(r->element[2]->str, &end, 10), *end || end == r->element[2]->str)) {
        problem = "gen 或 exp 不是整数";
    }
    if (problem) return (e->problem = strdup(problem)) ? TD_OK : (td_store_entry_clear(e), TD_ENOMEM);
    e->json_len = r->element[0]->len;
    if (!(e->json = malloc(e->json_len + 1))) {
        td_store_entry_clear(e);
        return TD_ENOMEM;
    }
    memcpy(e->json, r->element[0]->str, e->json_len);
    e->json[e->json_len] = '\0';
    return TD_OK;
}

/* get without the lock (rd_list calls it per name). */
static int get_locked(rd_store *q, const char *name, td_store_entry *e, char *err, size_t errlen)
{
    char key[KEY_MAX];
    redisReply *r;
    int rc;

    if (!valid_name(name)) return TD_ENOTFOUND;
    key_of(q, "token:", name, key);
    if (!(r = rd_call(q, &rc, err, errlen, "EVAL %s 1 %s %u", GET_LUA, key, JSON_MAX))) return rc;
    if (r->type == REDIS_REPLY_NIL) rc = TD_ENOTFOUND;
    else rc = entry_from(q, name, r, e, err, errlen);
    freeReplyObject(r);
    return rc;
}

static int rd_get(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen)
{
    rd_store *q = s->impl;
    int rc;

    pthread_mutex_lock(&q->lock);
    rc = get_locked(q, name, e, err, errlen);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static int rd_put(td_store *s, const td_store_entry *e, char *err, size_t errlen)
{
    rd_store *q = s->impl;
    char tok[KEY_MAX], hist[KEY_MAX], names[KEY_MAX];
    redisReply *r;
    int rc, sent;

    if (!valid_name(e->name) || e->json_len > JSON_MAX) {
        snprintf(err, errlen, "Redis 存储: token 名称无效，或记录超过 %u 字节", JSON_MAX);
        return TD_EINVAL;
    }
    key_of(q, "token:", e->name, tok);
    key_of(q, "history:", e->name, hist);
    key_of(q, "names", "", names);
    pthread_mutex_lock(&q->lock);
    sent = q->cmd != NULL;
    r = rd_call(q, &rc, err, errlen, "EVAL %s 3 %s %s %s %b %lld %lld %llu %s %s %d", PUT_LUA, tok,
                hist, names, e->json, e->json_len, (long long)e->generated_ts,
                (long long)e->expire_ts, (unsigned long long)q->history_max, e->name, q->channel,
                TD_SNAP_NAMES_MAX);
    pthread_mutex_unlock(&q->lock);
    if (!r && rc == TD_EUNAVAIL && sent) {
        /* Sent, then no answer: Redis may run it when it comes back. */
        char why[300];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s；Redis 没有回答这次写入，它可能稍后仍会生效，重试是安全的 (同一条记录重发得到 200)", why);
    }
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        rc = bad_reply(q, "写入 token", err, errlen);
    } else if (r->element[0]->integer == -2) {
        snprintf(err, errlen, "Redis %s 的 %snames 中已有 %.20s 个 token 名称 (最多 %d 个)", q->where,
                 q->prefix, r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "?", TD_SNAP_NAMES_MAX);
        rc = TD_ETOOBIG;
    } else if (r->element[0]->integer < 0) {
        snprintf(err, errlen,
                 "记录不比已存储的新 (generated_timestamp %lld，已存储的是 %.20s)：保留已存储的 token",
                 (long long)e->generated_ts,
                 r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "?");
        rc = TD_ECONFLICT;
    }
    freeReplyObject(r);
    return rc;
}

static int rd_list(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                   char *err, size_t errlen)
{
    rd_store *q = s->impl;
    char names[KEY_MAX];
    redisReply *r = NULL;
    td_store_entry *arr = NULL;
    size_t cnt = 0, nel;
    int rc;

    key_of(q, "names", "", names);
    pthread_mutex_lock(&q->lock);
    /* Pages of the names in order (one more: does the walk go on?), so a
     * set that another tool filled is read a bounded part at a time. */
    if (!(r = rd_call(q, &rc, err, errlen, "SORT %s ALPHA LIMIT %llu %llu", names, (unsigned long long)from,
                      (unsigned long long)max + 1)))
        goto out;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = bad_reply(q, "SORT", err, errlen);
        goto out;
    }
    *more = r->elements > max;
    nel = r->elements > max ? max : r->elements;
    if (nel && !(arr = calloc(nel, sizeof *arr))) {
        rc = TD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nel; i++) {
        const redisReply *m = r->element[i];
        if (m->type != REDIS_REPLY_STRING || m->len == 0 || strlen(m->str) != m->len) continue;
        if (!valid_name(m->str)) { /* e.g. written by another tool, or by a tokendist before 0.2 */
            memset(&arr[cnt], 0, sizeof arr[cnt]);
            if (!(arr[cnt].name = strndup(m->str, NAME_MAX_LEN * 4)) ||
                !(arr[cnt].problem = strdup("名称不符合规则 (" TD_NAME_RULE ")"))) {
                td_store_entry_clear(&arr[cnt]);
                rc = TD_ENOMEM;
                goto out;
            }
            cnt++;
            continue;
        }
        rc = get_locked(q, m->str, &arr[cnt], err, errlen);
        if (rc == TD_ENOTFOUND) continue; /* a name without its record: skip */
        if (rc != TD_OK) goto out;
        cnt++;
    }
    rc = TD_OK;
out:
    pthread_mutex_unlock(&q->lock);
    if (r) freeReplyObject(r);
    if (rc != TD_OK) {
        td_store_list_free(arr, cnt);
        return rc;
    }
    *v = arr;
    *n = cnt;
    return TD_OK;
}

static int rd_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                      char *err, size_t errlen)
{
    rd_store *q = s->impl;
    char key[KEY_MAX];
    redisReply *r;
    td_store_entry *arr = NULL;
    size_t cnt = 0;
    int rc;

    *v = NULL, *n = 0;
    if (!valid_name(name)) return TD_OK;
    if (!max || max > q->history_max) max = q->history_max;
    key_of(q, "history:", name, key);
    pthread_mutex_lock(&q->lock);
    r = rd_call(q, &rc, err, errlen, "EVAL %s 1 %s %llu %u", HISTORY_LUA, key,
                (unsigned long long)max, JSON_MAX + 64);
    pthread_mutex_unlock(&q->lock);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements > max) {
        rc = bad_reply(q, "读取历史", err, errlen);
        goto out;
    }
    if (r->elements && !(arr = calloc(r->elements, sizeof *arr))) {
        rc = TD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        td_store_entry *e = &arr[cnt];
        long long gen, exp;
        int off = 0;

        /* "GEN EXP JSON" */
        if (m->type != REDIS_REPLY_STRING || sscanf(m->str, "%lld %lld %n", &gen, &exp, &off) != 2 ||
            off <= 0 || (size_t)off > m->len)
            continue;
        e->generated_ts = gen;
        e->expire_ts = exp;
        e->json_len = m->len - (size_t)off;
        if (!(e->name = strdup(name)) || !(e->json = malloc(e->json_len + 1))) {
            td_store_entry_clear(e);
            rc = TD_ENOMEM;
            goto out;
        }
        memcpy(e->json, m->str + off, e->json_len);
        e->json[e->json_len] = '\0';
        cnt++;
    }
    rc = TD_OK;
out:
    freeReplyObject(r);
    if (rc != TD_OK) {
        td_store_list_free(arr, cnt);
        return rc;
    }
    *v = arr;
    *n = cnt;
    return TD_OK;
}

/* cb NULL unregisters, and returns once no call is running. */
static int rd_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen)
{
    rd_store *q = s->impl;

    pthread_mutex_lock(&q->cb_lock);
    q->cb = cb;
    q->ud = ud;
    pthread_mutex_unlock(&q->cb_lock);
    if (cb) {
        pthread_mutex_lock(&q->lock);
        q->resync = 1; /* whatever changed before we listened */
        pthread_mutex_unlock(&q->lock);
        wake_keeper(q);
    }
    return TD_OK;
}

/* Never waits for a connect: while the keeper reconnects, /readyz says
 * at once that we are degraded. */
static int rd_ping(td_store *s, char *err, size_t errlen)
{
    rd_store *q = s->impl;
    redisReply *r;
    int rc;

    pthread_mutex_lock(&q->lock);
    if (!q->cmd) {
        snprintf(err, errlen,
                 "degraded: Redis %s 已 %" PRId64 " 秒无法连接 (%s)；token 过期前由内存中的副本应答读取，"
                 "拒绝写入",
                 q->where, (int64_t)time(NULL) - q->down_since, q->down_why);
        pthread_mutex_unlock(&q->lock);
        return TD_EUNAVAIL;
    }
    r = rd_call(q, &rc, err, errlen, "PING");
    pthread_mutex_unlock(&q->lock);
    if (r) freeReplyObject(r);
    return rc;
}

static int rd_lease(td_store *s, const char *name, const char *owner, int64_t ttl_ms, int op,
                    char *err, size_t errlen)
{
    rd_store *q = s->impl;
    char key[KEY_MAX];
    redisReply *r;
    int rc;

    if (!name || strlen(name) > 128 || !owner || ttl_ms <= 0) return TD_EINVAL;
    key_of(q, "lease:", name, key);
    pthread_mutex_lock(&q->lock);
    r = op == TD_LEASE_DROP
            ? rd_call(q, &rc, err, errlen, "EVAL %s 1 %s %s", LEASE_DROP_LUA, key, owner)
            : rd_call(q, &rc, err, errlen, "EVAL %s 1 %s %s %lld", LEASE_TAKE_LUA, key, owner,
                      (long long)ttl_ms);
    pthread_mutex_unlock(&q->lock);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_INTEGER) rc = bad_reply(q, "租约操作", err, errlen);
    else if (op == TD_LEASE_TAKE && r->integer != 1) rc = TD_ECONFLICT;
    freeReplyObject(r);
    return rc;
}

static int rd_listen(td_store *s, const char *me, td_store_msg_cb cb, void *ud, char *err, size_t errlen)
{
    rd_store *q = s->impl;

    if (cb && (!me || !*me || strlen(me) > 160)) {
        snprintf(err, errlen, "Redis 存储: 收件箱名称无效");
        return TD_EINVAL;
    }
    pthread_mutex_lock(&q->cb_lock);
    q->msg_cb = cb;
    q->msg_ud = ud;
    pthread_mutex_unlock(&q->cb_lock);
    pthread_mutex_lock(&q->lock);
    if (cb) snprintf(q->inbox, sizeof q->inbox, "%sinbox:%s@%d", q->prefix, me, q->db);
    else q->inbox[0] = '\0';
    pthread_mutex_unlock(&q->lock);
    wake_keeper(q);
    return TD_OK;
}

static int rd_send(td_store *s, const char *to, const char *msg, char *err, size_t errlen)
{
    rd_store *q = s->impl;
    char ch[KEY_MAX + 16];
    redisReply *r;
    int rc;

    if (!to || !*to || strlen(to) > 160 || strlen(msg) > TD_STORE_MSG_MAX) {
        snprintf(err, errlen, "Redis 存储: 消息无效 (接收方为空或消息太长)");
        return TD_EINVAL;
    }
    snprintf(ch, sizeof ch, "%sinbox:%s@%d", q->prefix, to, q->db);
    pthread_mutex_lock(&q->lock);
    r = rd_call(q, &rc, err, errlen, "PUBLISH %s %s", ch, msg);
    pthread_mutex_unlock(&q->lock);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_INTEGER) rc = bad_reply(q, "PUBLISH", err, errlen);
    else if (r->integer < 1) {
        snprintf(err, errlen, "没有进程在 Redis %s 上以 %s 的身份接收消息 (它可能刚刚退出)", q->where, to);
        rc = TD_ENOTFOUND;
    }
    freeReplyObject(r);
    return rc;
}

static int rd_lease_owner(td_store *s, const char *name, char *owner, size_t len, char *err, size_t errlen)
{
    rd_store *q = s->impl;
    char key[KEY_MAX];
    redisReply *r;
    int rc;

    if (!name || strlen(name) > 128) return TD_EINVAL;
    key_of(q, "lease:", name, key);
    pthread_mutex_lock(&q->lock);
    r = rd_call(q, &rc, err, errlen, "GET %s", key);
    pthread_mutex_unlock(&q->lock);
    if (!r) return rc;
    if (r->type == REDIS_REPLY_NIL) {
        snprintf(err, errlen, "Redis %s 中没有租约 %s", q->where, name);
        rc = TD_ENOTFOUND;
    } else if (r->type != REDIS_REPLY_STRING || r->len >= len) {
        rc = bad_reply(q, "读取租约", err, errlen);
    } else {
        memcpy(owner, r->str, r->len + 1);
    }
    freeReplyObject(r);
    return rc;
}

static void rd_where(td_store *s, const char *name, char *buf, size_t len)
{
    rd_store *q = s->impl;
    snprintf(buf, len, "redis %s 键 %stoken:%s", q->where, q->prefix, name);
}

const td_store_ops td_store_redis_ops = {
    .scheme = "redis",
    .check = rd_check,
    .open = rd_open,
    .get = rd_get,
    .put = rd_put,
    .list = rd_list,
    .history = rd_history,
    .watch = rd_watch,
    .ping = rd_ping,
    .lease = rd_lease,
    .send = rd_send,
    .listen = rd_listen,
    .lease_owner = rd_lease_owner,
    .where = rd_where,
    .close = rd_close,
};
