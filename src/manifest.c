/* manifest -- see manifest.h. */
#define _GNU_SOURCE
#include "manifest.h"
#include "httpc.h"
#include "strbuf.h"
#include "tokendist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "# tokendist files download: Feishu file_key (percent-encoded) <TAB> local name\n"
#define KEY_MAX 1024                /* a percent-encoded file_key (Feishu's are < 100 bytes) */

struct td_manifest {
    int fd;
    char *path;
    int existed;
    int torn;                       /* the file does not end in '\n' (a crash mid-append) */
    char **keys, **names;           /* keys percent-encoded; later lines win */
    size_t n, cap;
};

static int push(td_manifest *m, const char *key, size_t klen, const char *name, size_t nlen)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        char **k = realloc(m->keys, cap * sizeof *k), **v;
        if (!k) return TD_ENOMEM;
        m->keys = k;
        if (!(v = realloc(m->names, cap * sizeof *v))) return TD_ENOMEM;
        m->names = v;
        m->cap = cap;
    }
    if (!(m->keys[m->n] = strndup(key, klen))) return TD_ENOMEM;
    if (!(m->names[m->n] = strndup(name, nlen))) {
        free(m->keys[m->n]);
        return TD_ENOMEM;
    }
    m->n++;
    return TD_OK;
}

/* Is name (len bytes) one plain file name in the folder, short enough
 * for the file system?  A hand-edited line must not lead a download out
 * of it, nor pin a file to a name no download can create. */
static int safe_name(const char *name, size_t len)
{
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.') || len > NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '/' || (unsigned char)name[i] < 0x20 || name[i] == 0x7f) return 0;
    return len > 0;
}

/* Whole lines only: a last line without its '\n' is a torn append. */
static int parse(td_manifest *m, const char *p, size_t len)
{
    const char *end = p + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *tab;
        int rc;
        if (!eol) {
            m->torn = 1;
            break;
        }
        tab = memchr(p, '\t', (size_t)(eol - p));
        if (*p != '#' && tab && tab > p && safe_name(tab + 1, (size_t)(eol - tab - 1)) &&
            (rc = push(m, p, (size_t)(tab - p), tab + 1, (size_t)(eol - tab - 1))) != TD_OK)
            return rc;
        p = eol + 1;
    }
    return TD_OK;
}

static int read_all(int fd, char *buf, size_t len)
{
    size_t o = 0;
    while (o < len) {
        ssize_t r = pread(fd, buf + o, len - o, (off_t)o);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return TD_EIO;
        o += (size_t)r;
    }
    return TD_OK;
}

int td_manifest_open(td_manifest **out, const char *dir, char *err, size_t errlen)
{
    td_manifest *m = NULL;
    td_strbuf b;
    struct stat st;
    char *text = NULL;
    int rc = TD_ENOMEM;

    *out = NULL;
    if (!(m = calloc(1, sizeof *m))) goto fail;
    m->fd = -1;
    td_strbuf_heap(&b, 4096);
    td_strbuf_printf(&b, "%s/%s", dir, TD_MANIFEST_NAME);
    if (!(m->path = td_strbuf_take(&b, NULL))) {
        rc = TD_ETOOBIG;
        snprintf(err, errlen, "--out 路径太长: %.200s", dir);
        goto fail;
    }
    rc = TD_EIO;
    if ((m->fd = open(m->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "无法打开下载记录 %s: %s", m->path, strerror(errno));
        goto fail;
    }
    if (flock(m->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? TD_EUNAVAIL : TD_EIO;
        snprintf(err, errlen, rc == TD_EUNAVAIL ? "另一个 tokendist files download 正在使用 %s，本次不下载"
                                                 : "无法锁定下载记录 %s: %s",
                 m->path, strerror(errno));
        goto fail;
    }
    if (fstat(m->fd, &st) != 0) {
        snprintf(err, errlen, "无法读取下载记录 %s: %s", m->path, strerror(errno));
        goto fail;
    }
    if ((uint64_t)st.st_size > TD_MANIFEST_MAX) {
        rc = TD_ETOOBIG;
        snprintf(err, errlen, "下载记录 %s 超过 %u 字节", m->path, TD_MANIFEST_MAX);
        goto fail;
    }
    /* The header marks the folder as kept by file_key from now on, even
     * when this run downloads nothing. */
    if (!(m->existed = st.st_size > 0) &&
        (write(m->fd, HEADER, sizeof HEADER - 1) != (ssize_t)(sizeof HEADER - 1) || fsync(m->fd) != 0)) {
        snprintf(err, errlen, "无法写入下载记录 %s: %s", m->path, strerror(errno));
        goto fail;
    }
    if (st.st_size > 0) {
        if (!(text = malloc((size_t)st.st_size))) {
            rc = TD_ENOMEM;
            goto fail;
        }
        if (read_all(m->fd, text, (size_t)st.st_size) != TD_OK) {
            snprintf(err, errlen, "无法读取下载记录 %s: %s", m->path, strerror(errno));
            goto fail;
        }
        if ((rc = parse(m, text, (size_t)st.st_size)) != TD_OK) goto fail;
    }
    free(text);
    *out = m;
    return TD_OK;
fail:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "读取下载记录时内存不足");
    free(text);
    td_manifest_close(m);
    return rc;
}

int td_manifest_existed(const td_manifest *m) { return m->existed; }

const char *td_manifest_name_of(const td_manifest *m, const char *file_key)
{
    char key[KEY_MAX];

    if (!td_httpc_escape(file_key, key, sizeof key)) return NULL;
    for (size_t i = m->n; i-- > 0;)
        if (!strcmp(m->keys[i], key)) return m->names[i];
    return NULL;
}

int td_manifest_claimed(const td_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name)) return 1;
    return 0;
}

int td_manifest_add(td_manifest *m, const char *file_key, const char *name, char *err, size_t errlen)
{
    char key[KEY_MAX];
    td_strbuf b;
    ssize_t w;
    int rc = TD_EINVAL;

    td_strbuf_heap(&b, KEY_MAX + 4096);
    if (!safe_name(name, strlen(name)) || !td_httpc_escape(file_key, key, sizeof key)) {
        snprintf(err, errlen, "无法记录文件 %.100s: file_key 或本地文件名不能写入下载记录", name);
        goto out;
    }
    /* A torn line from a crash is ended first, so this one stays whole. */
    if (m->torn) td_strbuf_puts(&b, "\n");
    td_strbuf_printf(&b, "%s\t%s\n", key, name);
    if ((rc = td_strbuf_error(&b)) != TD_OK) {
        snprintf(err, errlen, "无法记录文件 %.100s: %s", name, td_strerror(rc));
        goto out;
    }
    do w = write(m->fd, td_strbuf_str(&b), b.len);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)b.len || fsync(m->fd) != 0) {
        if (w > 0 && w != (ssize_t)b.len) m->torn = 1;
        rc = TD_EIO;
        snprintf(err, errlen, "无法写入下载记录 %s: %s", m->path, w < 0 || w == (ssize_t)b.len
                                                                   ? strerror(errno) : "写入不完整");
        goto out;
    }
    m->torn = 0;
    rc = push(m, key, strlen(key), name, strlen(name));
    if (rc != TD_OK) snprintf(err, errlen, "内存不足");
out:
    td_strbuf_free(&b);
    return rc;
}

void td_manifest_close(td_manifest *m)
{
    if (!m) return;
    if (m->fd >= 0) close(m->fd);     /* also drops the lock */
    for (size_t i = 0; i < m->n; i++) free(m->keys[i]), free(m->names[i]);
    free(m->keys);
    free(m->names);
    free(m->path);
    free(m);
}
