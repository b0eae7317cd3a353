/*
 * chatfiles -- what the token is for: the file messages of a Feishu group
 * chat (the seed's "财联社电报文件"), listed through im/v1/messages and
 * downloaded through im/v1/messages/{id}/resources/{key}.
 *
 * Every call takes the tenant token from a td_client.  Feishu's answers
 * are handled in one place: 429 waits for the reset header and retries;
 * an invalid-token answer (99991663/4/8/71) reports the token, fetches a
 * new one and retries once; any other {code, msg} reaches the caller's
 * err as "code N: msg".
 */
#ifndef TD_CHATFILES_H
#define TD_CHATFILES_H

#include "tokendist.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TD_CHATFILE_NAME_MAX 1024
#define TD_CHATFILE_ID_MAX 256
#define TD_CHATFILES_PAGE_TOKEN_MAX 512
#define TD_CHATFILE_LOCAL_MAX 255     /* one path component on Linux file systems */
#define TD_CHATFILE_PROBLEM_MAX 128

/* One file message.  A file message that cannot be read (its content is
 * not JSON, a field is missing, too long or holds U+0000) is one too:
 * problem says what is wrong, the fields hold what could be read ("" and
 * 0 for the rest), so that a caller can name it and go on. */
typedef struct td_chatfile {
    char message_id[TD_CHATFILE_ID_MAX];
    char file_key[TD_CHATFILE_ID_MAX];
    char name[TD_CHATFILE_NAME_MAX];    /* as Feishu sent it: not a safe path */
    int64_t create_ms;                  /* Unix milliseconds */
    char problem[TD_CHATFILE_PROBLEM_MAX];  /* "" when the message was read whole */
} td_chatfile;

/* Which side a failed call failed on: getting the tenant token (the
 * td_client's sources: the distribution endpoint, Gitee, the cache) or
 * Feishu's open platform itself -- two different things to fix, so a
 * command's hint must not blame one for the other. */
typedef enum td_chatfiles_side {
    TD_CHATFILES_NONE = 0,
    TD_CHATFILES_TOKEN,         /* td_client_get failed */
    TD_CHATFILES_FEISHU,        /* Feishu could not be reached, or said no */
    TD_CHATFILES_LOCAL,         /* this machine: a file could not be written */
} td_chatfiles_side;

typedef struct td_chatfiles {
    td_client *client;          /* gives the tenant token; not owned */
    const char *base_url;       /* NULL: https://open.feishu.cn */
    long timeout_ms;            /* list requests; 0: 10 s (downloads: no total limit) */
    int max_ratelimit_waits;    /* 429s in a row before giving up; 0: 5 */
    td_chatfiles_side failed_at;    /* out: set by a call that fails */
} td_chatfiles;

/* Called once per file message, oldest first, unreadable ones included
 * (f->problem set); a non-zero return stops the listing and is returned. */
typedef int (*td_chatfile_cb)(void *ud, const td_chatfile *f);

/* Lists the file messages of chat with since <= time < until (Unix
 * seconds; 0: unbounded) whose name matches the glob `match` (NULL: all),
 * following has_more/page_token to the end.  An unreadable message is
 * passed on unless what could be read of it (its time, its name) shows
 * that it is outside the window or does not match.  On failure
 * cf->failed_at says which side failed (a failure of cb's: none). */
int td_chatfiles_list(td_chatfiles *cf, const char *chat, int64_t since, int64_t until,
                      const char *match, td_chatfile_cb cb, void *ud, char *err, size_t errlen);

/* One page of the listing, without the I/O (so the fuzzer runs exactly
 * this code): `data` is the data object of Feishu's answer (what
 * td_feishu_result gives).  Calls cb for each live file message in it, in
 * order; its body.content is a JSON *string* holding file_key and
 * file_name.  A malformed file message is passed to cb with its problem
 * set: one message Feishu (or a client that sent it) got wrong does not
 * hide the rest of the chat.  next gets the page token to ask for next,
 * "" after the last page; a has_more without a new page token (missing,
 * too long, or equal to prev, the one this page was asked with) is
 * TD_EUPSTREAM rather than a loop.  cb's non-zero return stops the page
 * and is returned. */
int td_chatfiles_parse_page(const json_t *data, const char *prev, char next[TD_CHATFILES_PAGE_TOKEN_MAX],
                            td_chatfile_cb cb, void *ud, char *err, size_t errlen);

/* f's name on the local disk (out has len bytes, at most
 * TD_CHATFILE_LOCAL_MAX + 1 used): Feishu's file name made one safe path
 * component -- no '/', '\\', control characters or bidi controls (each
 * becomes '_'), not "." or "..", no leading dot (hidden files and our
 * ".NAME.part-" temporaries), not empty ("file_KEY" then).  A name longer
 * than TD_CHATFILE_LOCAL_MAX bytes is cut on a UTF-8 character boundary
 * before its extension, and "~" and 8 hex digits of the SHA-256 of the
 * whole name go in its place, so that two names that differ only past the
 * cut stay two names.  with_id puts the end of the message id before the
 * extension: the name of a second file with the same name. */
void td_chatfile_local_name(const td_chatfile *f, int with_id, char *out, size_t len);

/* Appends s (a file name, an id: text from Feishu) to b so that it is
 * safe to show on a terminal and reads back unambiguously: a backslash is
 * doubled; tab, newline and CR become \t \n \r; other C0 controls and DEL
 * become \x1b-style hex, as do bytes that are not well-formed UTF-8; C1
 * controls and bidi overrides become \u009b-style escapes; everything
 * else stays as it is.  Returns b's error state (at most 4 bytes out per
 * byte in). */
struct td_strbuf;
int td_chatfile_printable(struct td_strbuf *b, const char *s);

/* Progress of a download: bytes received so far of this attempt. */
typedef void (*td_chatfile_progress)(void *ud, const td_chatfile *f, uint64_t done);

/* Downloads f to `path`.  The bytes go to a temporary file next to it
 * (".NAME.part-XXXXXX", NAME cut so that it, too, is one path component
 * of at most TD_CHATFILE_LOCAL_MAX bytes), which is synced and renamed
 * onto path only when the whole body arrived: path either does not exist
 * or is complete.  A failed download leaves nothing behind, and
 * cf->failed_at says which side failed. */
int td_chatfiles_download(td_chatfiles *cf, const td_chatfile *f, const char *path,
                          td_chatfile_progress progress, void *ud, char *err, size_t errlen);

#endif
