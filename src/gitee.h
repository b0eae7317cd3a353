/*
 * gitee -- one file in a Gitee repository through the API v5 contents
 * endpoint: read it (decoded) and write it (create or update).
 *
 * Gitee answers a missing file either with 404 or with 200 and "[]"; both
 * are TD_ENOTFOUND here.  Writes read the file's sha first and, when Gitee
 * says the sha is stale (someone wrote in between), re-read it once and
 * retry once.
 */
#ifndef TD_GITEE_H
#define TD_GITEE_H

#include <stddef.h>

#define TD_GITEE_DEFAULT_BASE "https://gitee.com/api/v5"
#define TD_GITEE_FILE_MAX (1u << 20)    /* a token file is a few KB */

typedef struct td_gitee {
    const char *base_url;       /* NULL: TD_GITEE_DEFAULT_BASE */
    const char *owner, *repo, *path;
    const char *branch;         /* NULL or "": the repository's default */
    const char *access_token;   /* NULL: anonymous (public repository reads) */
    long timeout_ms;            /* 0: 10 s */
    struct td_httpc_pool *pool; /* NULL: a new connection per request */
} td_gitee;

/* Reads the file: *content is malloc'd, decoded and NUL-terminated (the
 * caller frees it), *len its length, sha its blob sha.  TD_ENOTFOUND when
 * the file does not exist, TD_EAUTH for 401/403, TD_EHTTP / TD_ETIMEOUT /
 * TD_EUPSTREAM otherwise, with err saying which. content, len and sha may be
 * NULL when unwanted. */
int td_gitee_read(const td_gitee *g, char **content, size_t *len, char sha[41],
                  char *err, size_t errlen);

/* What td_gitee_read makes of Gitee's answer (status and body), without
 * the I/O, so the fuzzer runs exactly this code: the object's base64
 * "content" (wrapped with newlines) decoded, its 40-character "sha", "[]"
 * or 404 as TD_ENOTFOUND, {"message"} errors by status.  g names the file
 * in err.  Same outputs as td_gitee_read. */
int td_gitee_parse_contents(const td_gitee *g, long status, const char *body, size_t body_len,
                            char **content, size_t *len, char sha[41], char *err, size_t errlen);

/* Judges the file's current content before a write replaces it: TD_OK
 * to write; > 0 when it already says what the write would (the write is
 * then a success without a commit); a negative code refuses the write,
 * which returns that code with err set (e.g. TD_ECONFLICT: it holds a
 * newer record). */
typedef int (*td_gitee_guard)(void *ud, const char *cur, size_t len, char *err, size_t errlen);

/* Writes the file: PUT with the current sha when it exists, POST when it
 * does not; message is the commit message.  The read before the write
 * goes through guard (NULL: any content may be replaced); its sha makes
 * the PUT a compare-and-swap, so when Gitee says the sha is stale the
 * file is read and judged again (once); stale twice is TD_EUNAVAIL.  A
 * file already byte-identical to content is left alone. */
int td_gitee_write(const td_gitee *g, const char *content, size_t len, const char *message,
                   td_gitee_guard guard, void *ud, char *err, size_t errlen);

#endif
