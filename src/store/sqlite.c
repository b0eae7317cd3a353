/*
 * store/sqlite -- the embedded default store.
 *
 * Durability: WAL mode with synchronous=FULL, so a put that returned TD_OK
 * has its commit record fsync()ed in the WAL before the caller answers 200:
 * it survives the process being killed and the machine losing power.
 * Two connections.  Writes go through one, guarded by a mutex: workers
 * and the refresher both write, and a put is a read-compare-write that
 * must be whole.  Reads (get, list, history, ping) go through the other,
 * with a mutex of its own: in WAL mode a reader never waits for a writer,
 * so /readyz and reloads answer at once while a put waits for a write
 * lock that another process holds.
 *
 * Several processes may open one file (two servers started from one
 * folder share ./var/tokendist.db), so the file holds a real fleet lease
 * (lease.h): table leases, one row per lease with its owner and its expiry
 * in wall-clock ms, taken, renewed and dropped each in one BEGIN
 * IMMEDIATE -- Redis's lease semantics (store/redis.c), so exactly one
 * server refreshes.  The expiry is the real wall clock of this machine,
 * which every process on one file shares (not the test clock: leases
 * live in real time, as Redis's do).
 */
#include "store.h"
#include "snap.h"
#include "tokendist.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_MS 5000            /* a write waits this long for another writer, in all */

typedef struct sq_store {
    sqlite3 *db;                /* writes */
    pthread_mutex_t lock;
    sqlite3 *rdb;               /* reads: db itself for ":memory:" (one database per connection) */
    pthread_mutex_t rlock;
    pthread_mutex_t *rmu;       /* &rlock, or &lock when rdb is db */
    char *path;

    /* The watcher: another process (a second server on the same file, a
     * repair with the sqlite3 tool) may change the file; PRAGMA
     * data_version says so without reading any row. */
    pthread_t watcher;
    int watching, stop;
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    td_store_change_cb cb;
    void *ud;
} sq_store;

#define WATCH_MS 1000

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS tokens ("
    "  name TEXT PRIMARY KEY, json TEXT NOT NULL,"
    "  generated_ts INTEGER NOT NULL, expire_ts INTEGER NOT NULL, stored_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS history ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, json TEXT NOT NULL,"
    "  generated_ts INTEGER NOT NULL, expire_ts INTEGER NOT NULL, stored_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS history_by_name ON history(name, id);"
    "CREATE TABLE IF NOT EXISTS leases ("
    "  key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL);"
    /* Every change of a token row, by whatever writer (another server, the
     * sqlite3 tool), counts up tokens_version: the watcher reloads on that,
     * not on a lease renewal, which changes the file too. */
    "CREATE TABLE IF NOT EXISTS tokens_version (id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO tokens_version VALUES (1, 0);"
    "CREATE TRIGGER IF NOT EXISTS tokens_ins AFTER INSERT ON tokens "
    "  BEGIN UPDATE tokens_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER IF NOT EXISTS tokens_upd AFTER UPDATE ON tokens "
    "  BEGIN UPDATE tokens_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER IF NOT EXISTS tokens_del AFTER DELETE ON tokens "
    "  BEGIN UPDATE tokens_version SET v = v + 1 WHERE id = 1; END;";

/* Maps an SQLite failure to our codes: contention is "try again", a full
 * disk or I/O error is an I/O failure.  SQLite's own message (English, the
 * library's) is quoted as it is -- it is what its documentation and a
 * search find -- after ours, which says what to do where we know. */
static int sq_fail_db(sq_store *q, sqlite3 *db, int src, const char *what, char *err, size_t errlen)
{
    const char *hint = "";
    int rc = TD_EIO;

    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: hint = "：另一个进程正占用它，请稍后重试", rc = TD_EUNAVAIL; break;
    case SQLITE_NOMEM: rc = TD_ENOMEM; break;
    case SQLITE_FULL: hint = "：磁盘已满"; break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN: hint = "：请检查文件和所在目录的权限"; break;
    }
    snprintf(err, errlen, "SQLite 数据库 %s %s失败 (%s)%s", q->path, what,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(src), hint);
    return rc;
}

static int sq_fail(sq_store *q, int src, const char *what, char *err, size_t errlen)
{
    return sq_fail_db(q, q->db, src, what, err, errlen);
}

/* mkdir -p with 0700 for the folders we create; existing ones are left as
 * they are (the operator chose them). */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len >= sizeof buf) {
        snprintf(err, errlen, "存储路径太长 (超过 4095 字节)");
        return TD_EINVAL;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "无法为存储创建目录 %s: %s", buf, strerror(errno));
            return TD_EIO;
        }
        *p = '/';
    }
    return TD_OK;
}

static int sq_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen);

static void sq_close(td_store *s)
{
    sq_store *q = s->impl;
    char err[64];
    if (!q) return;
    sq_watch(s, NULL, NULL, err, sizeof err);
    pthread_mutex_destroy(&q->wlock);
    pthread_cond_destroy(&q->wcond);
    if (q->rdb != q->db) sqlite3_close(q->rdb);
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->lock);
    pthread_mutex_destroy(&q->rlock);
    free(q->path);
    free(q);
    s->impl = NULL;
}

static int sq_check(const char *spec, char *err, size_t errlen)
{
    if (!spec || !*spec || !strcmp(spec, "//")) {
        snprintf(err, errlen, "sqlite: 后面要写数据库文件的路径，例如 sqlite:./var/tokendist.db");
        return TD_EINVAL;
    }
    return TD_OK;
}

static int sq_open(td_store *s, const char *spec, char *err, size_t errlen)
{
    sq_store *q = NULL;
    sqlite3_stmt *st = NULL;
    int fd, src, rc = TD_EINVAL;

    if ((rc = sq_check(spec, err, errlen)) != TD_OK) return rc;
    if (!strncmp(spec, "//", 2)) spec += 2; /* accept sqlite://PATH too */
    if (!(q = calloc(1, sizeof *q)) || !(q->path = strdup(spec))) { rc = TD_ENOMEM; goto fail; }
    pthread_mutex_init(&q->lock, NULL);
    pthread_mutex_init(&q->rlock, NULL);
    pthread_mutex_init(&q->wlock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&q->wcond, &ca);
        pthread_condattr_destroy(&ca);
    }
    s->impl = q;
    /* ":memory:" keeps nothing across restarts: for tests and fuzzing. */
    if (strcmp(spec, ":memory:") != 0) {
        if ((rc = make_parent_dirs(spec, err, errlen)) != TD_OK) goto fail;
        /* Create the file ourselves so it is 0600 from its first byte;
         * SQLite gives the -wal and -shm files the same mode. */
        if ((fd = open(spec, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
            snprintf(err, errlen, "无法打开存储文件 %s: %s", spec, strerror(errno));
            rc = TD_EIO;
            goto fail;
        }
        close(fd);
    }
    if ((src = sqlite3_open_v2(spec, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL))) {
        rc = sq_fail(q, src, "打开", err, errlen);
        goto fail;
    }
    sqlite3_busy_timeout(q->db, BUSY_MS);
    if ((src = sqlite3_exec(q->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", 0, 0, 0)) ||
        (src = sqlite3_prepare_v2(q->db, "PRAGMA quick_check", -1, &st, NULL)) ||
        (src = sqlite3_step(st)) != SQLITE_ROW) {
        rc = sq_fail(q, src, "打开", err, errlen);
        if (src == SQLITE_NOTADB || src == SQLITE_CORRUPT)
            snprintf(err, errlen,
                     "存储文件 %s 不是可读的 tokendist 数据库 (%s)：请把它移走 (下次推送时会存入新 token) "
                     "或用备份恢复",
                     spec, sqlite3_errstr(src));
        goto fail;
    }
    if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        snprintf(err, errlen,
                 "存储文件 %s 已损坏 (%s)：请把它移走或用备份恢复",
                 spec, sqlite3_column_text(st, 0));
        rc = TD_EIO;
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((src = sqlite3_exec(q->db, schema, 0, 0, 0))) {
        rc = sq_fail(q, src, "建表", err, errlen);
        goto fail;
    }
    if (!strcmp(spec, ":memory:")) {
        q->rdb = q->db;
        q->rmu = &q->lock;
    } else {
        q->rmu = &q->rlock;
        if ((src = sqlite3_open_v2(spec, &q->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL))) {
            rc = sq_fail_db(q, q->rdb, src, "打开", err, errlen);
            goto fail;
        }
        sqlite3_busy_timeout(q->rdb, 5000); /* WAL recovery after a crash, only */
    }
    return TD_OK;
fail:
    sqlite3_finalize(st);
    sq_close(s);
    return rc;
}

static int fill_entry(sqlite3_stmt *st, int col, td_store_entry *e)
{
    const char *name = (const char *)sqlite3_column_text(st, col);
    const char *json = (const char *)sqlite3_column_text(st, col + 1);

    memset(e, 0, sizeof *e);
    e->json_len = (size_t)sqlite3_column_bytes(st, col + 1);
    if (!(e->name = strdup(name ? name : "")) || !(e->json = malloc(e->json_len + 1)) ||
        (!json && !(e->problem = strdup("json 列为 NULL")))) {
        td_store_entry_clear(e);
        return TD_ENOMEM;
    }
    if (json) memcpy(e->json, json, e->json_len);
    e->json[e->json_len] = '\0';
    e->generated_ts = sqlite3_column_int64(st, col + 2);
    e->expire_ts = sqlite3_column_int64(st, col + 3);
    return TD_OK;
}

/* Runs a query returning (name, json, generated_ts, expire_ts) rows.
 * bind_name: optional ?1; limit: optional ?2 (0: none); offset: ?3 when
 * the query has it. */
static int query_rows(sq_store *q, const char *sql, const char *bind_name, size_t limit, size_t offset,
                      td_store_entry **v, size_t *n, char *err, size_t errlen)
{
    sqlite3 *db = q->rdb;
    sqlite3_stmt *st = NULL;
    td_store_entry *arr = NULL;
    size_t cnt = 0, cap = 0;
    int src, rc = TD_OK;

    if ((src = sqlite3_prepare_v2(db, sql, -1, &st, NULL))) {
        rc = sq_fail_db(q, db, src, "读取", err, errlen);
        goto out;
    }
    if (bind_name) sqlite3_bind_text(st, 1, bind_name, -1, SQLITE_STATIC);
    if (limit) sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    if (sqlite3_bind_parameter_count(st) >= 3) sqlite3_bind_int64(st, 3, (sqlite3_int64)offset);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            td_store_entry *na = realloc(arr, (cap = cap ? cap * 2 : 4) * sizeof *na);
            if (!na) { rc = TD_ENOMEM; goto out; }
            arr = na;
        }
        if ((rc = fill_entry(st, 0, &arr[cnt])) != TD_OK) goto out;
        cnt++;
    }
    if (src != SQLITE_DONE) rc = sq_fail_db(q, db, src, "读取", err, errlen);
out:
    sqlite3_finalize(st);
    if (rc != TD_OK) {
        td_store_list_free(arr, cnt);
        return rc;
    }
    *v = arr;
    *n = cnt;
    return TD_OK;
}

static int sq_get(td_store *s, const char *name, td_store_entry *e, char *err, size_t errlen)
{
    sq_store *q = s->impl;
    td_store_entry *v = NULL;
    size_t n = 0;
    int rc;

    pthread_mutex_lock(q->rmu);
    rc = query_rows(q, "SELECT name, json, generated_ts, expire_ts FROM tokens WHERE name = ?1",
                    name, 0, 0, &v, &n, err, errlen);
    pthread_mutex_unlock(q->rmu);
    if (rc != TD_OK) return rc;
    if (n == 0) {
        free(v);
        return TD_ENOTFOUND;
    }
    *e = v[0];
    free(v);
    return TD_OK;
}

static int sq_list(td_store *s, size_t from, size_t max, td_store_entry **v, size_t *n, int *more,
                   char *err, size_t errlen)
{
    sq_store *q = s->impl;
    int rc;

    pthread_mutex_lock(q->rmu);
    rc = query_rows(q, "SELECT name, json, generated_ts, expire_ts FROM tokens ORDER BY name LIMIT ?2 OFFSET ?3",
                    NULL, max + 1, from, v, n, err, errlen); /* one more: does the walk go on? */
    pthread_mutex_unlock(q->rmu);
    if (rc == TD_OK && *n > max) {
        td_store_entry_clear(&(*v)[max]);
        *n = max;
        *more = 1;
    }
    return rc;
}

static int sq_history(td_store *s, const char *name, size_t max, td_store_entry **v, size_t *n,
                      char *err, size_t errlen)
{
    sq_store *q = s->impl;
    int rc;

    pthread_mutex_lock(q->rmu);
    rc = query_rows(q,
                    "SELECT name, json, generated_ts, expire_ts FROM history WHERE name = ?1 "
                    "ORDER BY id DESC LIMIT ?2",
                    name, max ? max : (s->history_max ? s->history_max : 1), 0, v, n, err, errlen);
    pthread_mutex_unlock(q->rmu);
    return rc;
}

static int exec_bound(sq_store *q, const char *sql, const td_store_entry *e, int64_t now,
                      size_t keep)
{
    sqlite3_stmt *st = NULL;
    int src;

    if ((src = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL)) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) >= 5) {
            sqlite3_bind_text(st, 2, e->json, (int)e->json_len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, e->generated_ts);
            sqlite3_bind_int64(st, 4, e->expire_ts);
            sqlite3_bind_int64(st, 5, now);
        } else {
            sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
        }
        src = sqlite3_step(st);
        if (src == SQLITE_DONE) src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return src;
}

/* Takes the write connection within the put's whole budget (BUSY_MS) and
 * gives SQLite what is left of it: writers queued on the mutex behind one
 * that waits for another process's lock would otherwise each wait
 * BUSY_MS in turn (a fourth POST answered after 20 s). */
static int write_begin(sq_store *q, char *err, size_t errlen)
{
    struct timespec dl, now;
    long left;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += BUSY_MS / 1000;
    if (pthread_mutex_timedlock(&q->lock, &dl) != 0) {
        snprintf(err, errlen, "sqlite (%s): 数据库正被占用，写入排队 %d 秒后放弃 (database is locked)", q->path,
                 BUSY_MS / 1000);
        return TD_EUNAVAIL;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    left = (long)(dl.tv_sec - now.tv_sec) * 1000 + (dl.tv_nsec - now.tv_nsec) / 1000000;
    sqlite3_busy_timeout(q->db, left > 1 ? (int)left : 1);
    return TD_OK;
}

static int sq_put(td_store *s, const td_store_entry *e, char *err, size_t errlen)
{
    sq_store *q = s->impl;
    sqlite3_stmt *st = NULL;
    int src, rc = TD_OK, in_tx = 0;
    int64_t now = (int64_t)time(NULL);

    if ((rc = write_begin(q, err, errlen)) != TD_OK) return rc;
    /* IMMEDIATE takes the write lock now, so the compare below and the
     * write after it are one atomic step even against another process. */
    if ((src = sqlite3_exec(q->db, "BEGIN IMMEDIATE", 0, 0, 0))) {
        rc = sq_fail(q, src, "开始事务", err, errlen);
        goto out;
    }
    in_tx = 1;
    if ((src = sqlite3_prepare_v2(q->db, "SELECT generated_ts, json FROM tokens WHERE name = ?1",
                                  -1, &st, NULL))) {
        rc = sq_fail(q, src, "读取", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
    if ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t cur = sqlite3_column_int64(st, 0);
        const char *cur_json = (const char *)sqlite3_column_text(st, 1);
        if (e->generated_ts == cur && cur_json && strlen(cur_json) == e->json_len &&
            !memcmp(cur_json, e->json, e->json_len))
            goto out; /* an exact re-send: already stored */
        if (e->generated_ts <= cur) {
            snprintf(err, errlen,
                     "记录不比已存储的新 (generated_timestamp %lld，已存储的是 %lld)：保留已存储的 token",
                     (long long)e->generated_ts, (long long)cur);
            rc = TD_ECONFLICT;
            goto out;
        }
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(q, src, "读取", err, errlen);
        goto out;
    } else { /* a new name: counted in the transaction that adds it */
        sqlite3_finalize(st);
        st = NULL;
        if ((src = sqlite3_prepare_v2(q->db, "SELECT count(*) FROM tokens", -1, &st, NULL)) ||
            (src = sqlite3_step(st)) != SQLITE_ROW) {
            rc = sq_fail(q, src, "读取", err, errlen);
            goto out;
        }
        if (sqlite3_column_int64(st, 0) >= TD_SNAP_NAMES_MAX) {
            snprintf(err, errlen, "存储 %s 中已有 %lld 个 token 名称 (最多 %d 个)", q->path,
                     (long long)sqlite3_column_int64(st, 0), TD_SNAP_NAMES_MAX);
            rc = TD_ETOOBIG;
            goto out;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((src = exec_bound(q, "INSERT OR REPLACE INTO tokens(name, json, generated_ts, expire_ts, "
                             "stored_at) VALUES (?1, ?2, ?3, ?4, ?5)", e, now, 0)) ||
        (src = exec_bound(q, "INSERT INTO history(name, json, generated_ts, expire_ts, stored_at) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)", e, now, 0)) ||
        (src = exec_bound(q, "DELETE FROM history WHERE name = ?1 AND id NOT IN (SELECT id FROM "
                             "history WHERE name = ?1 ORDER BY id DESC LIMIT ?2)",
                          e, now, s->history_max ? s->history_max : 1))) {
        rc = sq_fail(q, src, "写入", err, errlen);
        goto out;
    }
    if ((src = sqlite3_exec(q->db, "COMMIT", 0, 0, 0))) {
        rc = sq_fail(q, src, "提交", err, errlen);
        goto out;
    }
    in_tx = 0;
out:
    sqlite3_finalize(st);
    if (in_tx) sqlite3_exec(q->db, "ROLLBACK", 0, 0, 0);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static int sq_ping(td_store *s, char *err, size_t errlen)
{
    sq_store *q = s->impl;
    int src;

    pthread_mutex_lock(q->rmu);
    src = sqlite3_exec(q->rdb, "SELECT 1 FROM tokens LIMIT 1", 0, 0, 0);
    pthread_mutex_unlock(q->rmu);
    return src ? sq_fail_db(q, q->rdb, src, "检查", err, errlen) : TD_OK;
}

/* One integer the read connection answers (-1: none). */
static int64_t read_int(sq_store *q, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    pthread_mutex_lock(q->rmu);
    if (sqlite3_prepare_v2(q->rdb, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    pthread_mutex_unlock(q->rmu);
    return v;
}

/* The file changed (any write, a lease renewal too), cheap to ask. */
static int64_t data_version(sq_store *q) { return read_int(q, "PRAGMA data_version"); }

/* A token row changed (the triggers of the schema). */
static int64_t tokens_version(sq_store *q) { return read_int(q, "SELECT v FROM tokens_version WHERE id = 1"); }

static void *watch_main(void *arg)
{
    sq_store *q = arg;
    int64_t seen = data_version(q), tv = tokens_version(q), now;
    int pending = 0;

    pthread_mutex_lock(&q->wlock);
    while (!q->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += WATCH_MS / 1000;
        pthread_cond_timedwait(&q->wcond, &q->wlock, &ts);
        if (q->stop) break;
        pthread_mutex_unlock(&q->wlock);
        /* A changed version, or a reload that failed last time, reloads
         * everything (the callback is told "anything may have changed"). */
        if ((now = data_version(q)) != seen && now >= 0) {
            int64_t v = tokens_version(q);
            seen = now;
            if (v != tv || v < 0) tv = v, pending = 1;
        }
        pthread_mutex_lock(&q->wlock);
        if (pending && q->cb && !q->stop) pending = q->cb(q->ud, NULL) != TD_OK;
    }
    pthread_mutex_unlock(&q->wlock);
    return NULL;
}

/* cb NULL stops the watcher and returns once no call is running. */
static int sq_watch(td_store *s, td_store_change_cb cb, void *ud, char *err, size_t errlen)
{
    sq_store *q = s->impl;
    int e;

    if (q->watching) {
        pthread_mutex_lock(&q->wlock);
        q->stop = 1;
        pthread_cond_signal(&q->wcond);
        pthread_mutex_unlock(&q->wlock);
        pthread_join(q->watcher, NULL);
        q->watching = 0;
    }
    q->cb = cb, q->ud = ud, q->stop = 0;
    if (!cb || q->rdb == q->db) return TD_OK; /* ":memory:" is ours alone */
    if ((e = pthread_create(&q->watcher, NULL, watch_main, q)) != 0) {
        snprintf(err, errlen, "SQLite 存储无法启动监视线程: %s", strerror(e));
        return TD_ERR;
    }
    q->watching = 1;
    return TD_OK;
}

/* The real wall clock in ms: a lease's expiry is compared across
 * processes, like Redis's PX (never the test clock, see the top). */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* TD_LEASE_TAKE: ours when nobody holds key, its holder's expiry has
 * passed, or we hold it (renewed); TD_ECONFLICT while another owner's
 * expiry lies ahead.  TD_LEASE_DROP: deleted only when ours.  Each one
 * BEGIN IMMEDIATE, so two processes never both take it. */
static int sq_lease(td_store *s, const char *key, const char *owner, int64_t ttl_ms, int op, char *err,
                    size_t errlen)
{
    sq_store *q = s->impl;
    sqlite3_stmt *st = NULL;
    int src, rc, in_tx = 0;
    int64_t now;

    if (!key || strlen(key) > 128 || !owner || ttl_ms <= 0) return TD_EINVAL;
    /* The writes' one lock budget (write_begin): a renewal stuck behind
     * another process's lock gives up like a put, and the keeper's hold
     * counts until its ttl runs out. */
    if ((rc = write_begin(q, err, errlen)) != TD_OK) return rc;
    if ((src = sqlite3_exec(q->db, "BEGIN IMMEDIATE", 0, 0, 0))) {
        rc = sq_fail(q, src, "更新租约", err, errlen);
        goto out;
    }
    in_tx = 1;
    now = wall_ms(); /* the lock is ours: the expiry counts from now */
    /* The write when the row is free, expired or ours (a plain statement
     * each, no UPSERT: the transaction makes the pair atomic). */
    src = sqlite3_prepare_v2(q->db,
                             op == TD_LEASE_DROP
                                 ? "DELETE FROM leases WHERE key = ?1 AND owner = ?2"
                                 : "INSERT OR REPLACE INTO leases(key, owner, expires_ms) SELECT ?1, ?2, ?3 "
                                   "WHERE NOT EXISTS (SELECT 1 FROM leases WHERE key = ?1 AND owner != ?2 "
                                   "AND expires_ms > ?4)",
                             -1, &st, NULL);
    if (src) {
        rc = sq_fail(q, src, "更新租约", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    if (op != TD_LEASE_DROP) {
        sqlite3_bind_int64(st, 3, now + ttl_ms);
        sqlite3_bind_int64(st, 4, now);
    }
    if ((src = sqlite3_step(st)) != SQLITE_DONE) {
        rc = sq_fail(q, src, "更新租约", err, errlen);
        goto out;
    }
    if (op != TD_LEASE_DROP && sqlite3_changes(q->db) == 0) {
        snprintf(err, errlen, "sqlite %s: 租约 %s 由其他进程持有", q->path, key);
        rc = TD_ECONFLICT;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((src = sqlite3_exec(q->db, "COMMIT", 0, 0, 0))) {
        rc = sq_fail(q, src, "更新租约", err, errlen);
        goto out;
    }
    in_tx = 0;
out:
    sqlite3_finalize(st);
    if (in_tx) sqlite3_exec(q->db, "ROLLBACK", 0, 0, 0);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Who holds key now (an expired row is nobody's), or TD_ENOTFOUND. */
static int sq_lease_owner(td_store *s, const char *key, char *owner, size_t len, char *err, size_t errlen)
{
    sq_store *q = s->impl;
    sqlite3_stmt *st = NULL;
    int src, rc = TD_OK;

    if (!key || strlen(key) > 128) return TD_EINVAL;
    pthread_mutex_lock(q->rmu);
    if ((src = sqlite3_prepare_v2(q->rdb, "SELECT owner FROM leases WHERE key = ?1 AND expires_ms > ?2", -1,
                                  &st, NULL))) {
        rc = sq_fail_db(q, q->rdb, src, "读取租约", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, wall_ms());
    if ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(st, 0);
        if (!o || strlen(o) >= len) {
            snprintf(err, errlen, "sqlite %s: 租约 %s 的持有者无效", q->path, key);
            rc = TD_EIO;
        } else {
            memcpy(owner, o, strlen(o) + 1);
        }
    } else if (src == SQLITE_DONE) {
        snprintf(err, errlen, "sqlite %s 中没有租约 %s", q->path, key);
        rc = TD_ENOTFOUND;
    } else {
        rc = sq_fail_db(q, q->rdb, src, "读取租约", err, errlen);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(q->rmu);
    return rc;
}

static void sq_where(td_store *s, const char *name, char *buf, size_t len)
{
    sq_store *q = s->impl;
    snprintf(buf, len, "sqlite:%s 表 tokens 中 name='%s' 的行", q->path, name);
}

const td_store_ops td_store_sqlite_ops = {
    .scheme = "sqlite",
    .check = sq_check,
    .open = sq_open,
    .get = sq_get,
    .put = sq_put,
    .list = sq_list,
    .history = sq_history,
    .watch = sq_watch,
    .ping = sq_ping,
    .lease = sq_lease,
    .lease_owner = sq_lease_owner,
    .where = sq_where,
    .close = sq_close,
};
