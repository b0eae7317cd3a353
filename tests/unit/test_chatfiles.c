/* Unit tests for chatfiles: one listing page (td_chatfiles_parse_page) and
 * the local file names (td_chatfile_local_name), where Feishu's text
 * meets the file system. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "chatfiles.h"
#include "strbuf.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

static td_chatfile file(const char *mid, const char *key, const char *name)
{
    td_chatfile f = {0};
    snprintf(f.message_id, sizeof f.message_id, "%s", mid);
    snprintf(f.file_key, sizeof f.file_key, "%s", key);
    snprintf(f.name, sizeof f.name, "%s", name);
    return f;
}

static const char *local(const td_chatfile *f, int with_id)
{
    static char out[TD_CHATFILE_LOCAL_MAX + 1];
    td_chatfile_local_name(f, with_id, out, sizeof out);
    return out;
}

static void local_names(void **state)
{
    char big[1024];
    td_chatfile f;
    (void)state;

    f = file("om_1234567890abcdef", "file_v3_k", "财联社电报_2024-01-15.pdf");
    assert_string_equal(local(&f, 0), "财联社电报_2024-01-15.pdf");
    assert_string_equal(local(&f, 1), "财联社电报_2024-01-15_90abcdef.pdf");
    f = file("om_1", "k", "a/../b\\c\x07.txt");
    assert_string_equal(local(&f, 0), "a_.._b_c_.txt");
    f = file("om_1", "k", ".bashrc");
    assert_string_equal(local(&f, 0), "_bashrc");
    /* A name ending in a multi-byte character keeps it whole. */
    f = file("om_1", "k", "报告");
    assert_string_equal(local(&f, 0), "报告");
    /* Found while writing fuzz_chatfiles: the fallback for an empty, "."
     * or ".." name took file_key as it was, and a second file of a name
     * took the message id's end as it was: either could hold a '/'. */
    f = file("om_1", "../../../tmp/x", "..");
    assert_string_equal(local(&f, 0), "file_.._.._.._tmp_x");
    f = file("om_1", "k", "");
    assert_string_equal(local(&f, 0), "file_k");
    f = file("om_x/../../a", "k", "r.pdf");
    assert_string_equal(local(&f, 1), "r__.._.._a.pdf");
    /* Bidi controls and C1 controls hide what a name says: '_' too. */
    f = file("om_1", "k", "evil\xe2\x80\xae" "fdp.exe\xc2\x9b");
    assert_string_equal(local(&f, 0), "evil_fdp.exe_");
    /* Over 255 bytes: cut on a character boundary, "~" and 8 hex digits
     * of the whole name's SHA-256 in place of what was cut. */
    memset(big, 0, sizeof big);
    for (int i = 0; i < 100; i++) memcpy(big + 3 * i, "报", 3);
    f = file("om_1", "k", big);
    assert_int_equal(strlen(local(&f, 0)), 255);      /* 82 characters and the mark */
    assert_memory_equal(local(&f, 0), big, 246);
    assert_int_equal(local(&f, 0)[246], '~');
    assert_int_equal(strlen(local(&f, 1)), 254);      /* 80 characters, the mark, "_om_1" */
    assert_string_equal(local(&f, 1) + 240 + 9, "_om_1");
    /* The extension survives the cut; names that differ past it stay apart. */
    memcpy(big + 300, ".pdf", 5);
    f = file("om_1", "k", big);
    assert_int_equal(strlen(local(&f, 0)), 253);      /* 80 characters, the mark, ".pdf" */
    assert_string_equal(local(&f, 0) + 249, ".pdf");
    {
        char first[TD_CHATFILE_LOCAL_MAX + 1];
        snprintf(first, sizeof first, "%s", local(&f, 0));
        memcpy(big + 297, "告.pdf", 8);
        f = file("om_1", "k", big);
        assert_int_equal(strlen(local(&f, 0)), 253);
        assert_memory_equal(local(&f, 0), first, 240);
        assert_string_not_equal(local(&f, 0), first);
    }
    /* 255 bytes fit as they are. */
    memset(big, 'a', 251);
    memcpy(big + 251, ".txt", 5);
    f = file("om_1", "k", big);
    assert_string_equal(local(&f, 0), big);
}

static int count(void *ud, const td_chatfile *f)
{
    (void)f;
    (*(int *)ud)++;
    return TD_OK;
}

static void pages(void **state)
{
    char err[256], next[TD_CHATFILES_PAGE_TOKEN_MAX];
    int n = 0;
    json_t *d;
    (void)state;

    d = json_loads("{\"has_more\":true,\"page_token\":\"p2\",\"items\":[{\"message_id\":\"om_1\","
                   "\"msg_type\":\"file\",\"create_time\":\"1705294200000\",\"body\":{\"content\":"
                   "\"{\\\"file_key\\\":\\\"k\\\",\\\"file_name\\\":\\\"a.pdf\\\"}\"}},"
                   "{\"message_id\":\"om_2\",\"msg_type\":\"text\",\"body\":{\"content\":\"{}\"}}]}", 0, NULL);
    assert_int_equal(td_chatfiles_parse_page(d, "", next, count, &n, err, sizeof err), TD_OK);
    assert_int_equal(n, 1);
    assert_string_equal(next, "p2");
    /* The same token again would page forever. */
    assert_int_equal(td_chatfiles_parse_page(d, "p2", next, count, &n, err, sizeof err), TD_EUPSTREAM);
    assert_string_equal(next, "");
    json_decref(d);
    d = json_loads("{\"has_more\":false,\"items\":[]}", 0, NULL);
    assert_int_equal(td_chatfiles_parse_page(d, "p2", next, count, &n, err, sizeof err), TD_OK);
    assert_string_equal(next, "");
    json_decref(d);
}

static int keep(void *ud, const td_chatfile *f)
{
    td_chatfile *all = ud;
    while (all->message_id[0]) all++;
    *all = *f;
    return TD_OK;
}

/* A file message that cannot be read is passed on with its problem, the
 * others as they are: one bad message used to end the whole listing. */
static void unreadable_messages(void **state)
{
    static td_chatfile got[8];
    char err[256], next[TD_CHATFILES_PAGE_TOKEN_MAX], long_id[400];
    json_t *d;
    (void)state;

#define FILE_MSG(mid, content) "{\"message_id\":\"" mid "\",\"msg_type\":\"file\",\"create_time\":\"1705294200000\"," \
                               "\"body\":{\"content\":\"" content "\"}}"
    d = json_loads("{\"has_more\":false,\"items\":["
                   FILE_MSG("om_nul", "{\\\"file_key\\\":\\\"k1\\\",\\\"file_name\\\":\\\"a\\\\u0000b\\\"}") ","
                   FILE_MSG("om_nokey", "{\\\"file_name\\\":\\\"x.pdf\\\"}") ","
                   FILE_MSG("om_notjson", "{not json") ","
                   "{\"message_id\":\"om_notime\",\"msg_type\":\"file\",\"create_time\":\"soon\",\"body\":{}},"
                   FILE_MSG("om_ok", "{\\\"file_key\\\":\\\"k2\\\",\\\"file_name\\\":\\\"ok.pdf\\\"}") "]}",
                   0, NULL);
    assert_non_null(d);
    memset(got, 0, sizeof got);
    assert_int_equal(td_chatfiles_parse_page(d, "", next, keep, got, err, sizeof err), TD_OK);
    assert_string_equal(got[0].message_id, "om_nul");
    assert_string_equal(got[0].problem, "file_name 含 U+0000");
    assert_string_equal(got[0].file_key, "k1");
    assert_string_equal(got[1].problem, "file_key 缺失");
    assert_string_equal(got[1].name, "x.pdf");
    assert_string_equal(got[2].problem, "body.content 不是 JSON 对象");
    assert_string_equal(got[3].problem, "create_time 不是毫秒时间戳");
    assert_string_equal(got[4].message_id, "om_ok");
    assert_string_equal(got[4].problem, "");
    assert_string_equal(got[4].name, "ok.pdf");
    json_decref(d);
    /* A message id too long to use still names the message by its head. */
    memset(long_id, 'm', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    d = json_pack("{s:b, s:[{s:s, s:s, s:s, s:{s:s}}]}", "has_more", 0, "items", "message_id", long_id,
                  "msg_type", "file", "create_time", "1", "body", "content", "{\"file_key\":\"k\",\"file_name\":\"n\"}");
    memset(got, 0, sizeof got);
    assert_int_equal(td_chatfiles_parse_page(d, "", next, keep, got, err, sizeof err), TD_OK);
    assert_string_equal(got[0].problem, "message_id 过长");
    assert_int_equal(strlen(got[0].message_id), 64);
    json_decref(d);
}

static const char *shown(const char *s)
{
    static char out[TD_CHATFILE_NAME_MAX * 4 + 1];
    td_strbuf b;
    td_strbuf_fixed(&b, out, sizeof out);
    assert_int_equal(td_chatfile_printable(&b, s), TD_OK);
    return out;
}

/* What `files list` shows of Feishu's text: nothing a terminal acts on,
 * and every escape reads back to one input. */
static void printable_names(void **state)
{
    char worst[TD_CHATFILE_NAME_MAX];
    (void)state;

    assert_string_equal(shown("财联社电报_2024-01-15.pdf"), "财联社电报_2024-01-15.pdf");
    assert_string_equal(shown("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
    assert_string_equal(shown("a\tb\nc\rd\x7f\x01"), "a\\tb\\nc\\rd\\x7f\\x01");
    assert_string_equal(shown("back\\slash"), "back\\\\slash");
    assert_string_equal(shown("c1\xc2\x9b" "2J"), "c1\\u009b2J");             /* U+009B, CSI */
    assert_string_equal(shown("evil\xe2\x80\xae" "fdp.exe"), "evil\\u202efdp.exe");
    assert_string_equal(shown("\xc2\xa0nbsp"), "\xc2\xa0nbsp");                /* U+00A0 is text */
    /* Not UTF-8: stray continuation, overlong, surrogate, cut at the end. */
    assert_string_equal(shown("\x80x"), "\\x80x");
    assert_string_equal(shown("\xc0\xaf"), "\\xc0\\xaf");
    assert_string_equal(shown("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    assert_string_equal(shown("ok\xe6\x8a"), "ok\\xe6\\x8a");
    assert_string_equal(shown("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");           /* > U+10FFFF */
    assert_string_equal(shown("\xf0\x9f\x93\x84.pdf"), "\xf0\x9f\x93\x84.pdf");          /* 📄 */
    /* The bound: 4 bytes out per byte in ("\\x01") fits the longest name. */
    memset(worst, 1, sizeof worst - 1);
    worst[sizeof worst - 1] = '\0';
    assert_int_equal(strlen(shown(worst)), (sizeof worst - 1) * 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_names),
        cmocka_unit_test(printable_names),
        cmocka_unit_test(pages),
        cmocka_unit_test(unreadable_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
