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
    /* Cut at 255 bytes on a character boundary: 85 three-byte characters. */
    memset(big, 0, sizeof big);
    for (int i = 0; i < 100; i++) memcpy(big + 3 * i, "报", 3);
    f = file("om_1", "k", big);
    assert_int_equal(strlen(local(&f, 0)), 255);
    assert_int_equal(strlen(local(&f, 1)), 254);   /* 83 characters, "_", "om_1" */
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
