/*
 * libFuzzer: a page of Feishu's im/v1/messages listing, as
 * td_chatfiles_list reads it: td_feishu_result, then
 * td_chatfiles_parse_page (items whose body.content is a JSON *string*
 * holding file_key and file_name, has_more, page_token).  Every file's
 * local name goes through td_chatfile_local_name, where Feishu's text
 * meets the file system, and through td_chatfile_printable, where it
 * meets the terminal.  Input: see resp.h.
 */
#include "chatfiles.h"
#include "feishu.h"
#include "resp.h"
#include "strbuf.h"
#include "tokendist.h"

/* The page token this page was asked with (the double's shape). */
#define PREV "cHQtNTA="

/* Valid UTF-8 (no overlongs or surrogates needed here: JSON strings are
 * already valid; this checks that a cut split no character). */
static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0) return 0;
        p++;
        while (n--)
            if ((*p++ & 0xC0) != 0x80) return 0;
    }
    return 1;
}

/* A name that stays inside --out: one component, not hidden, not empty,
 * without controls (C0, DEL, C1) or bidi overrides. */
static void check_local(const char *name)
{
    const unsigned char *p = (const unsigned char *)name;
    size_t n = strlen(name);
    if (n < 1 || n > TD_CHATFILE_LOCAL_MAX || name[0] == '.' || !utf8_ok(name)) __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/' || p[i] == '\\' || (p[i] == 0xC2 && p[i + 1] <= 0x9F) ||
            (p[i] == 0xE2 && p[i + 1] == 0x80 && p[i + 2] >= 0xAA && p[i + 2] <= 0xAE) ||
            (p[i] == 0xE2 && p[i + 1] == 0x81 && p[i + 2] >= 0xA6 && p[i + 2] <= 0xA9))
            __builtin_trap();
}

/* What `files list` prints: valid UTF-8 without C0, DEL or C1 controls,
 * within the documented 4 bytes per byte. */
static void check_printable(const char *s)
{
    static char out[TD_CHATFILE_NAME_MAX * 4 + 1];
    const unsigned char *p = (const unsigned char *)out;
    td_strbuf b;

    td_strbuf_fixed(&b, out, sizeof out);
    if (td_chatfile_printable(&b, s) != TD_OK || b.len > strlen(s) * 4 || !utf8_ok(out)) __builtin_trap();
    for (; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)) __builtin_trap();
}

static int on_file(void *ud, const td_chatfile *f)
{
    char name[TD_CHATFILE_LOCAL_MAX + 1];
    (*(int *)ud)++;
    if (strlen(f->message_id) >= TD_CHATFILE_ID_MAX || strlen(f->file_key) >= TD_CHATFILE_ID_MAX ||
        strlen(f->name) >= TD_CHATFILE_NAME_MAX || strlen(f->problem) >= TD_CHATFILE_PROBLEM_MAX)
        __builtin_trap();
    if (f->problem[0]) {       /* unreadable: only named by its message id */
        check_printable(f->message_id);
        return *(int *)ud >= 1000 ? 1 : TD_OK;
    }
    td_chatfile_local_name(f, 0, name, sizeof name);
    check_local(name);
    td_chatfile_local_name(f, 1, name, sizeof name);
    check_local(name);
    check_printable(f->name);
    check_printable(f->message_id);
    check_printable(f->file_key);
    return *(int *)ud >= 1000 ? 1 : TD_OK;    /* a non-zero return stops the page */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_httpc_resp r;
    char *buf = fuzz_resp(data, size, &r), err[1024], next[TD_CHATFILES_PAGE_TOKEN_MAX];
    json_t *d = NULL;
    int files = 0, rc;

    if (td_feishu_result(&r, &d, err, sizeof err) == TD_OK) {
        rc = td_chatfiles_parse_page(d, PREV, next, on_file, &files, err, sizeof err);
        if (rc == TD_OK && (strlen(next) >= TD_CHATFILES_PAGE_TOKEN_MAX || !strcmp(next, PREV)))
            __builtin_trap();
        if (rc != TD_OK && rc != 1 && (next[0] || !err[0])) __builtin_trap();
    }
    json_decref(d);
    free(buf);
    return 0;
}
