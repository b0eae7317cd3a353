/*
 * store -- where token records live, behind one small vtable.
 *
 * Implementations: store/sqlite.c (embedded, the default), store/memory.c
 * (nothing kept across restarts: serverless instances that fetch their own
 * token), store/redis.c (shared by many instances) and store/s3.c (shared
 * through an S3-compatible object store such as Tencent COS).  A store keeps the JSON text
 * of the newest record per name plus a bounded history.  The one write,
 * put-if-newer, is atomic in each backend: an older record (smaller
 * generated_timestamp) can never replace a newer one, however writers race.
 * A write that returned TD_OK is durable (see docs/durability in each
 * backend's comment).
 */
#ifndef TD_STORE_H
#define TD_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct td_store td_store;

typedef struct td_store_entry {
    char *name;
    char *json;
    size_t json_len;
    int64_t generated_ts;
    int64_t expire_ts;
    char *problem;          /* non-NULL: the stored value is unreadable (why); json may be NULL */
} td_store_entry;

/* Called (from a store thread) when a writer changed a record; only stores
 * shared between processes call it.  name NULL means "anything may have
 * changed" (the first call after watch, and after every reconnect: changes
 * made while disconnected were not seen).  For name NULL a failure (not
 * TD_OK) makes the store call again later. */
typedef int (*td_store_change_cb)(void *ud, const char *name);

/* Called (from a store thread) with a message another process sent to
 * this one (td_store_send); msg is NUL-terminated text of at most
 * TD_STORE_MSG_MAX bytes.  Must not block: hand work to another thread. */
typedef void (*td_store_msg_cb)(void *ud, const char *msg);
#define TD_STORE_MSG_MAX 1024

/* Lease operations (see lease.h). */
enum { TD_LEASE_TAKE, TD_LEASE_DROP };

typedef struct td_store_ops {
    const char *scheme;     /* "sqlite", "redis" */
    /* Optional: whether spec (the URL after "scheme:") is well-formed,
     * touching nothing -- so a bad URL stops a start before anything is
     * opened.  err never repeats a password the URL may hold. */
    int (*check)(const char *spec, char *err, size_t errlen);
    int (*open)(td_store *s, const char *spec, char *err, size_t errlen);
    /* TD_OK with *e filled (caller frees with td_store_entry_clear), or
     * TD_ENOTFOUND.  A value that is there but cannot be read (another
     * tool wrote it) is TD_OK with e->problem set: one bad record never
     * hides the others. */
    int (*get)(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen);
    /* TD_OK stored (or identical to the stored one), TD_ECONFLICT older
     * than the stored one, TD_ETOOBIG a new name while the store holds
     * TD_SNAP_NAMES_MAX names already (decided in the same atomic step as
     * the write, so the processes sharing a store never go past it
     * together), TD_EUNAVAIL try later, TD_EIO failed. */
    int (*put)(td_store *s, const td_store_entry *e, char *err, size_t errlen);
    /* The current records of the names in name order from the from-th
     * on, at most max names: one page of a walk through the store, which
     * may hold more names than the API serves (other writers).  *v is an
     * array of *n entries (td_store_list_free); a name without a record is
     * left out; unreadable ones have their problem set, as with get.
     * *more is 1 when names follow the page. */
    int (*list)(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                char *err, size_t errlen);
    /* Past records of name, newest first, at most max. */
    int (*history)(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                   char *err, size_t errlen);
    /* Optional: start telling cb about changes (see td_store_change_cb);
     * cb NULL stops, returning once no call is running. */
    int (*watch)(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen);
    /* Optional: TD_OK when the backend answers now. */
    int (*ping)(td_store *s, char *err, size_t errlen);
    /* Optional: a lease shared by every process using the store.
     * TD_LEASE_TAKE acquires key for owner, or renews it when owner holds
     * it, for ttl_ms: TD_OK held, TD_ECONFLICT another owner holds it.
     * TD_LEASE_DROP deletes key only if owner holds it (TD_OK either way).
     * NULL: one process owns the store, so every lease is held. */
    int (*lease)(td_store *s, const char *key, const char *owner, int64_t ttl_ms, int op,
                 char *err, size_t errlen);
    /* Optional, for a store shared by processes: messages between them.
     * send: to the process listening as `to`; TD_OK when it got it,
     * TD_ENOTFOUND when nobody listens under that id.  listen: deliver
     * messages for `me` to cb (cb NULL: stop, returning once no call runs).
     * lease_owner: who holds lease key now, or TD_ENOTFOUND. */
    int (*send)(td_store *s, const char *to, const char *msg, char *err, size_t errlen);
    int (*listen)(td_store *s, const char *me, td_store_msg_cb cb, void *ud, char *err, size_t errlen);
    int (*lease_owner)(td_store *s, const char *key, char *owner, size_t len, char *err, size_t errlen);
    /* Where name's record lives, for a person: "redis 127.0.0.1:6379/0 键 tokendist:token:NAME". */
    void (*where)(td_store *s, const char *name, char *buf, size_t len);
    /* Optional: what a person must know about the store that does not
     * stop it from working -- an S3 service that ignores conditional
     * writes, so that two writers may race -- as a sentence in buf: 1,
     * else 0.  Reads memory only (/readyz asks at every call). */
    int (*warning)(td_store *s, char *buf, size_t len);
    void (*close)(td_store *s);
} td_store_ops;

struct td_store {
    const td_store_ops *ops;
    void *impl;             /* the backend's own state */
    size_t history_max;
};

/* Opens the store named by url ("sqlite:PATH", "redis://…", "s3://…").  history_max
 * bounds the kept past records per name. */
int td_store_open(td_store **out, const char *url, size_t history_max, char *err, size_t errlen);
void td_store_close(td_store *s); /* NULL-safe */

/* Whether url names a known backend and is well-formed for it, without
 * opening anything (for checking settings before a start).  TD_EINVAL
 * with err saying what to write instead; err never holds a password. */
int td_store_check_url(const char *url, char *err, size_t errlen);

int td_store_get(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen);
int td_store_put(td_store *s, const td_store_entry *e, char *err, size_t errlen);
int td_store_list(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                  char *err, size_t errlen);
int td_store_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                     char *err, size_t errlen);
int td_store_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen);
int td_store_ping(td_store *s, char *err, size_t errlen);
int td_store_lease(td_store *s, const char *key, const char *owner, int64_t ttl_ms, int op,
                   char *err, size_t errlen);

/* Messages between the processes of a fleet (see the ops above); a store
 * without them answers TD_ENOTFOUND (send, lease_owner) and TD_OK (listen:
 * nobody can send to us anyway). */
int td_store_send(td_store *s, const char *to, const char *msg, char *err, size_t errlen);
int td_store_listen(td_store *s, const char *me, td_store_msg_cb cb, void *ud, char *err, size_t errlen);
int td_store_lease_owner(td_store *s, const char *key, char *owner, size_t len, char *err, size_t errlen);
int td_store_has_messages(const td_store *s);

/* Where name's record lives, for messages; returns buf. */
const char *td_store_where(td_store *s, const char *name, char *buf, size_t len);

/* The store's standing caveat (see the op), 1 with buf filled, else 0. */
int td_store_warning(td_store *s, char *buf, size_t len);

/* Room for td_store_ping's reason, which /readyz shows whole: a store's
 * message for a person, with what the store adds around it. */
#define TD_STORE_ERR_MAX 2048

/* Marks the calling thread as one that must never wait for a store (the
 * HTTP event thread): in debug builds every td_store_* call from it
 * aborts. */
void td_store_forbid_thread(void);

/* A store URL with its userinfo (user and password, found as
 * td_httpc_redact_url finds it: a password may hold '/') replaced by
 * "***", for logs and --print-config.  Returns buf. */
const char *td_store_redact(const char *url, char *buf, size_t len);

void td_store_entry_clear(td_store_entry *e);
void td_store_list_free(td_store_entry *v, size_t n);

/* Backends. */
extern const td_store_ops td_store_sqlite_ops;
extern const td_store_ops td_store_memory_ops;
#ifdef TD_HAVE_REDIS
extern const td_store_ops td_store_redis_ops;
#endif
extern const td_store_ops td_store_s3_ops;

#endif
