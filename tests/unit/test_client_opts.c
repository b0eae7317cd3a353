/* Unit tests for libtokendist's options (td_client_opts_*: the table of
 * types and bounds, remembered failures, TD_ENOTSUP) and for what it hands
 * out (td_token, the record JSON, td_free), with a cache file as the only
 * source so no request is made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int new_client(td_client_opts *o, td_client **c, char *err, size_t errlen)
{
    int rc = td_client_new(c, o, err, errlen);
    td_client_opts_free(o);
    return rc;
}

static void bounds_and_types(void **state)
{
    td_client_opts *o = td_client_opts_new();
    td_client *c = NULL;
    char err[512];
    (void)state;

    assert_int_equal(td_client_opts_set_long(o, TD_OPT_MIN_REMAINING, 0), TD_OK);
    assert_int_equal(td_client_opts_set_long(o, TD_OPT_REFRESH_WAIT_MS, 0), TD_OK);
    assert_int_equal(td_client_opts_set_long(o, TD_OPT_TIMEOUT_MS, 600000), TD_OK);
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_URL, "http://127.0.0.1:1/release/get-token"), TD_OK);
    assert_int_equal(td_client_opts_set_long(o, TD_OPT_TIMEOUT_MS, 600001), TD_EINVAL);
    /* Only the first failure is reported, and the option kept its value. */
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_TIMEOUT_MS, "5"), TD_EINVAL);
    assert_int_equal(new_client(o, &c, err, sizeof err), TD_EINVAL);
    assert_null(c);
    assert_string_equal(err, "选项 TD_OPT_TIMEOUT_MS 的值 600001 不在 1..600000 之间");

    o = td_client_opts_new();
    assert_int_equal(td_client_opts_set_long(o, TD_OPT_URL, 1), TD_EINVAL);
    assert_int_equal(new_client(o, &c, err, sizeof err), TD_EINVAL);
    assert_string_equal(err, "选项 TD_OPT_URL 的值应为字符串，请用 td_client_opts_set_str");

    o = td_client_opts_new();
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_NAME, "Bad-Name"), TD_EINVAL);
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_READ_KEY, "a\r\nb"), TD_EINVAL);
    assert_int_equal(new_client(o, &c, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "token 名称 'Bad-Name' 无效"));

    /* A refused URL is named without its password. */
    o = td_client_opts_new();
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_URL, "ftp://u:s3cr/et@h/release/get-token"), TD_EINVAL);
    assert_int_equal(new_client(o, &c, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "'ftp://***@h/release/get-token' 无效"));
    assert_null(strstr(err, "s3cr"));
}

/* An option this library does not know (a program built against a later
 * header): the setter says TD_ENOTSUP, and the options stay usable -- the
 * header tells programs to handle that code at run time, which is only
 * possible if td_client_new still makes the client.  A bad value set
 * after it is still remembered. */
static void unknown_option(void **state)
{
    td_client_opts *o = td_client_opts_new();
    td_client *c = NULL;
    char err[512] = "";
    (void)state;

    assert_int_equal(td_client_opts_set_str(o, TD_OPT_URL, "http://127.0.0.1:1/release/get-token"), TD_OK);
    assert_int_equal(td_client_opts_set_long(o, (td_option)0, 1), TD_ENOTSUP);
    assert_int_equal(td_client_opts_set_str(o, (td_option)1000, "x"), TD_ENOTSUP);
    assert_int_equal(td_client_opts_set_long(o, (td_option)17, 1), TD_ENOTSUP);
    assert_int_equal(td_client_new(&c, o, err, sizeof err), TD_OK);
    assert_non_null(c);
    td_client_free(c);
    c = NULL;
    assert_int_equal(td_client_opts_set_long(o, TD_OPT_TIMEOUT_MS, 0), TD_EINVAL);
    assert_int_equal(td_client_opts_set_long(o, (td_option)17, 1), TD_ENOTSUP);
    assert_int_equal(new_client(o, &c, err, sizeof err), TD_EINVAL);
    assert_null(c);
    assert_string_equal(err, "选项 TD_OPT_TIMEOUT_MS 的值 0 不在 1..600000 之间");
    assert_string_equal(td_strerror(TD_ENOTSUP), "此版本的 libtokendist 不支持");
    assert_string_equal(td_strerror(TD__ELAST), "未知错误");
    assert_string_equal(td_strerror(TD_OK), "成功");
}

static void null_options_are_out_of_memory(void **state)
{
    td_client *c = NULL;
    char err[512];
    (void)state;

    assert_int_equal(td_client_opts_set_str(NULL, TD_OPT_URL, "http://x"), TD_ENOMEM);
    assert_int_equal(td_client_opts_set_long(NULL, TD_OPT_TIMEOUT_MS, 5), TD_ENOMEM);
    assert_int_equal(td_client_new(&c, NULL, err, sizeof err), TD_ENOMEM);
    td_client_opts_free(NULL);
    td_free(NULL);
}

static void url_list_and_reset(void **state)
{
    td_client_opts *o = td_client_opts_new();
    td_client *c = NULL;
    char err[512];
    (void)state;

    for (int i = 0; i < 64; i++)
        assert_int_equal(td_client_opts_set_str(o, TD_OPT_URL, "http://127.0.0.1:1"), TD_OK);
    /* NULL forgets them all: no source is left. */
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_URL, NULL), TD_OK);
    assert_int_equal(td_client_new(&c, o, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "没有 token 来源"));
    for (int i = 0; i < 64; i++) td_client_opts_set_str(o, TD_OPT_URL, "http://127.0.0.1:1");
    assert_int_equal(td_client_opts_set_str(o, TD_OPT_URL, "http://127.0.0.1:1"), TD_EINVAL);
    td_client_opts_free(o);
}

/* A cache file with a long token: the whole token comes back, in memory
 * the library allocated and td_free releases. */
static void handouts_from_the_cache_file(void **state)
{
    char path[] = "/tmp/td-client-opts-XXXXXX", err[1024], token[4097], *json = NULL;
    td_client_opts *o = td_client_opts_new();
    td_client *c = NULL;
    td_token *t = NULL, *t2 = NULL;
    size_t len = 0;
    long now = (long)time(NULL);
    FILE *f;
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    memset(token, 'j', 4096);
    token[4096] = '\0';
    assert_non_null(f = fdopen(fd, "w"));
    fprintf(f, "{\"access_token\": \"%s\", \"expire_time\": \"\", \"expire_timestamp\": %ld, "
               "\"valid_duration_seconds\": 7200, \"generated_time\": \"\", \"generated_timestamp\": %ld, "
               "\"source\": \"s\", \"usage\": \"u\", \"platform\": \"p\"}", token, now + 7200, now);
    fclose(f);
    td_client_opts_set_str(o, TD_OPT_CACHE_FILE, path);
    assert_int_equal(new_client(o, &c, err, sizeof err), TD_OK);
    assert_int_equal(td_client_get(c, TD_TOKEN_APP, &t, err, sizeof err), TD_OK);
    assert_int_equal(t->token_len, 4096);
    assert_string_equal(t->token, token);
    assert_int_equal(t->source, TD_SOURCE_CACHE);
    assert_true(t->remaining > 7100 && t->expires == now + 7200);
    assert_int_equal(td_client_get_record(c, TD_TOKEN_TENANT, &json, &len, &t2, err, sizeof err), TD_OK);
    assert_int_equal(len, strlen(json));
    assert_non_null(strstr(json, token));
    assert_int_equal(t2->source, TD_SOURCE_MEMORY);
    assert_int_equal(t2->origin, TD_SOURCE_CACHE);
    td_client_free(c);      /* handouts outlive their client */
    assert_string_equal(t2->token, token);
    td_free(t);
    td_free(t2);
    td_free(json);
    unlink(path);
}

static void version(void **state)
{
    (void)state;
    assert_string_equal(td_version(), TD_VERSION);
    assert_int_equal(TD_VERSION_NUM, (TD_VERSION_MAJOR << 16) | (TD_VERSION_MINOR << 8) | TD_VERSION_PATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounds_and_types),
        cmocka_unit_test(unknown_option),
        cmocka_unit_test(null_options_are_out_of_memory),
        cmocka_unit_test(url_list_and_reset),
        cmocka_unit_test(handouts_from_the_cache_file),
        cmocka_unit_test(version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
