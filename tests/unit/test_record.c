/* Unit tests for record: parsing, validation, normalisation, building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "clock.h"
#include "record.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The seed's example timestamp.  Its text says "2024-01-15 14:30:00", but
 * 1705301400 is 14:50:00 in Asia/Shanghai: the timestamps are
 * authoritative and the strings are re-derived from them. */
#define NOW 1705301400

static char *seed_json(const char *token, long long gen, long long exp, const char *extra)
{
    char *buf = malloc(16384);
    snprintf(buf, 16384,
             "{\"access_token\": \"%s\", \"expire_time\": \"x\", \"expire_timestamp\": %lld, "
             "\"valid_duration_seconds\": 1, \"generated_time\": \"y\", \"generated_timestamp\": %lld, "
             "\"source\": \"财联社自动化系统\", \"usage\": \"u\", \"platform\": \"腾讯云函数\"%s}",
             token, exp, gen, extra ? extra : "");
    return buf;
}

static int setup(void **state)
{
    char err[128];
    (void)state;
    return td_clock_set_zone("Asia/Shanghai", err, sizeof err);
}

static void test_seed_example_normalised(void **state)
{
    char err[256];
    td_record *r = NULL;
    char *in = seed_json("t-g1044ghEGNOJ5OSQF5OYATETPB", NOW, NOW + 7200, ", \"tenant_access_token\": \"t-x\"");
    const char *want =
        "{\"access_token\": \"t-g1044ghEGNOJ5OSQF5OYATETPB\", \"expire_time\": \"2024-01-15 16:50:00\", "
        "\"expire_timestamp\": 1705308600, \"valid_duration_seconds\": 7200, "
        "\"generated_time\": \"2024-01-15 14:50:00\", \"generated_timestamp\": 1705301400, "
        "\"source\": \"财联社自动化系统\", \"usage\": \"u\", \"platform\": \"腾讯云函数\", "
        "\"tenant_access_token\": \"t-x\"}";
    size_t len;
    (void)state;

    assert_int_equal(td_record_parse(in, strlen(in), NOW, TD_RECORD_MAX_SKEW, &r, err, sizeof err), TD_OK);
    assert_string_equal(td_record_json(r, &len), want);
    assert_int_equal(len, strlen(want));
    assert_string_equal(td_record_token(r), "t-g1044ghEGNOJ5OSQF5OYATETPB");
    assert_string_equal(td_record_field(r, "tenant_access_token"), "t-x");
    assert_null(td_record_field(r, "nope"));
    assert_int_equal(td_record_generated(r), NOW);
    assert_int_equal(td_record_expires(r), NOW + 7200);
    td_record_free(r);
    free(in);
}

static void expect_error(const char *json, int64_t now, int code, const char *needle)
{
    char err[256] = "";
    td_record *r = NULL;
    int rc = td_record_parse(json, strlen(json), now, TD_RECORD_MAX_SKEW, &r, err, sizeof err);
    if (rc != code || !strstr(err, needle)) fail_msg("input %.80s: rc %d err '%s', want %d '%s'", json, rc, err, code, needle);
    assert_null(r);
}

static void test_validation(void **state)
{
    char *s, big[5000];
    (void)state;

    expect_error("", NOW, TD_EINVAL, "JSON 无效");
    expect_error("[]", NOW, TD_EINVAL, "应为 JSON 对象");
    expect_error("{\"access_token\": 1}", NOW, TD_EINVAL, "'access_token' 应为字符串");
    expect_error("{}", NOW, TD_EINVAL, "缺少字段 'access_token'");
    s = seed_json("", NOW, NOW + 10, NULL);
    expect_error(s, NOW, TD_EINVAL, "为空");
    free(s);
    memset(big, 'a', 4097);
    big[4097] = '\0';
    s = seed_json(big, NOW, NOW + 10, NULL);
    expect_error(s, NOW, TD_ETOOBIG, "超过上限 4096 字节");
    free(s);
    big[4096] = '\0'; /* exactly 4096 is fine */
    s = seed_json(big, NOW, NOW + 10, NULL);
    {
        char err[64];
        td_record *r = NULL;
        assert_int_equal(td_record_parse(s, strlen(s), NOW, TD_RECORD_MAX_SKEW, &r, err, sizeof err), TD_OK);
        td_record_free(r);
    }
    free(s);
    s = seed_json("t-a\\nb", NOW, NOW + 10, NULL);
    expect_error(s, NOW, TD_EINVAL, "可见的 ASCII");
    free(s);
    s = seed_json("t-abc", NOW, NOW, NULL);
    expect_error(s, NOW - 10, TD_EINVAL, "应晚于");
    free(s);
    s = seed_json("t-abc", NOW - 7200, NOW - 1, NULL);
    expect_error(s, NOW, TD_EEXPIRED, "已过期");
    free(s);
    s = seed_json("t-abc", -5, NOW + 10, NULL);
    expect_error(s, NOW, TD_EINVAL, "超出范围");
    free(s);
    s = seed_json("t-abc", NOW, 99999999999999LL, NULL);
    expect_error(s, NOW, TD_EINVAL, "超出范围");
    free(s);
    s = seed_json("t-abc", NOW, NOW + 10, ", \"access_token\": \"dup\"");
    expect_error(s, NOW, TD_EINVAL, "重复的键");
    free(s);
    s = seed_json("t-abc", NOW, NOW + 10, ", \"tenant_access_token\": 5");
    expect_error(s, NOW, TD_EINVAL, "'tenant_access_token' 应为字符串");
    free(s);
    expect_error("{\"access_token\": \"t-a\", \"expire_timestamp\": 1e400}", NOW, TD_EINVAL, "JSON 无效");
}

/* A parse error says what is wrong and where, and never quotes the text:
 * jansson's own message ends in "near '<the input so far>'", which for a
 * damaged record is the start of its token (issue 10, adversary finding 8). */
static void test_parse_errors_quote_no_input(void **state)
{
    static const struct {
        const char *json, *what;
    } cases[] = {
        {"{\"access_token\": \"t-g1044ghEGNO\x01JSQF5O\", \"x\": 1}", "控制字符"},
        {"{\"access_token\": \"t-g1044ghEGNOJ\\q5OSQF5O\", \"x\": 1}", "无效的转义"},
        {"{\"access_token\": \"t-g1044ghEGNOJ5OSQF5O", "提前结束"},
        {"{\"access_token\": \"t-g1044gh\xff\xfe" "EGNOJ\"}", "UTF-8"},
        {"{\"access_token\": \"t-g1044ghEGNOJ5\\u0000OSQF5O\"}", "不允许 \\u0000"},
        {"{\"access_token\": \"t-g1044ghEGNOJ5\\uDc00OSQF5O\"}", "无效的 \\u 转义"},
        {"{\"t-g1044ghEGNOJ5OSQF5O\": 1, \"t-g1044ghEGNOJ5OSQF5O\": 2}", "重复的键"},
        {"{\"access_token\": \"t-g1044ghEGNOJ5OSQF5O\"} t-g1044ghEGNOJ5", "多余的内容"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        td_record *r = NULL;
        int rc = td_record_parse(cases[i].json, strlen(cases[i].json), NOW, TD_RECORD_MAX_SKEW, &r, err, sizeof err);
        if (rc != TD_EINVAL || !strstr(err, "JSON 无效") || !strstr(err, cases[i].what) || !strstr(err, "(第 1 行第 ") ||
            strstr(err, "g1044") || strstr(err, "near"))
            fail_msg("case %zu: rc %d err '%s'", i, rc, err);
        assert_null(r);
    }
}

/* A producer whose clock runs ahead: a record generated more than the
 * allowed skew after now is refused with both times, one within it is
 * taken, and reading back (now 0) takes any. */
static void test_future_generated_refused(void **state)
{
    char err[512] = "";
    td_record *r = NULL;
    char *s = seed_json("t-abc", NOW + 100LL * 365 * 86400, NOW + 100LL * 365 * 86400 + 7200, NULL);
    (void)state;

    assert_int_equal(td_record_parse(s, strlen(s), NOW, 300, &r, err, sizeof err), TD_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err, "写入方的时钟"));
    {
        char gen[TD_TIME_LEN];
        assert_non_null(strstr(err, td_clock_format(NOW + 100LL * 365 * 86400, gen))); /* theirs */
    }
    assert_non_null(strstr(err, "2024-01-15 14:50:00")); /* ours */
    assert_int_equal(td_record_parse(s, strlen(s), 0, 300, &r, err, sizeof err), TD_OK);
    td_record_free(r);
    assert_int_equal(td_record_parse(s, strlen(s), NOW, -1, &r, err, sizeof err), TD_OK);
    td_record_free(r);
    free(s);

    s = seed_json("t-abc", NOW + 300, NOW + 7500, NULL);  /* exactly the skew */
    assert_int_equal(td_record_parse(s, strlen(s), NOW, 300, &r, err, sizeof err), TD_OK);
    td_record_free(r);
    assert_int_equal(td_record_parse(s, strlen(s), NOW, 299, &r, err, sizeof err), TD_EINVAL);
    free(s);
    s = seed_json("t-abc", NOW + 1, NOW + 7200, NULL);    /* skew 0: not even a second */
    assert_int_equal(td_record_parse(s, strlen(s), NOW, 0, &r, err, sizeof err), TD_EINVAL);
    assert_int_equal(td_record_parse(s, strlen(s), NOW + 1, 0, &r, err, sizeof err), TD_OK);
    td_record_free(r);
    free(s);
}

static void test_float_timestamps_accepted(void **state)
{
    char err[256];
    td_record *r = NULL;
    const char *in =
        "{\"access_token\": \"t-abc\", \"expire_time\": \"\", \"expire_timestamp\": 1705308600.9, "
        "\"valid_duration_seconds\": 7200.0, \"generated_time\": \"\", \"generated_timestamp\": 1705301400.2, "
        "\"source\": \"\", \"usage\": \"\", \"platform\": \"\"}";
    (void)state;
    assert_int_equal(td_record_parse(in, strlen(in), NOW, TD_RECORD_MAX_SKEW, &r, err, sizeof err), TD_OK);
    assert_int_equal(td_record_expires(r), 1705308600);
    assert_int_equal(td_record_generated(r), 1705301400);
    td_record_free(r);
}

static void test_new_builds_same_as_parse(void **state)
{
    struct td_record_fields f = {
        .access_token = "t-app", .tenant_access_token = "t-tenant", .generated_ts = NOW,
        .expire_ts = NOW + 7200, .source = "s", .usage = "u", .platform = "p",
    };
    td_record *r = NULL, *back = NULL;
    char err[256];
    size_t len;
    const char *json;
    (void)state;

    assert_int_equal(td_record_new(&f, &r), TD_OK);
    json = td_record_json(r, &len);
    assert_non_null(strstr(json, "\"tenant_expire_timestamp\": 1705308600"));
    assert_int_equal(td_record_parse(json, len, NOW, TD_RECORD_MAX_SKEW, &back, err, sizeof err), TD_OK);
    assert_string_equal(td_record_json(back, NULL), json);
    td_record_free(r);
    td_record_free(back);
    f.access_token = NULL;
    assert_int_not_equal(td_record_new(&f, &r), TD_OK);
}

/* A record file saved by Gitee's web editor or a Windows tool starts with
 * a UTF-8 BOM: td_record_skip_bom takes it off, and the rest is the same
 * record (the Node and Python clients read such files too).  The parser
 * itself stays strict JSON: a POSTed body with a BOM is refused. */
static void test_leading_bom_skipped(void **state)
{
    char err[256], *plain = seed_json("t-bom", NOW, NOW + 7200, NULL), *bom = malloc(strlen(plain) + 4);
    const char *text;
    size_t len;
    td_record *r = NULL, *want = NULL;
    (void)state;

    memcpy(bom, "\xef\xbb\xbf", 3);
    strcpy(bom + 3, plain);
    assert_int_equal(td_record_parse(plain, strlen(plain), NOW, TD_RECORD_MAX_SKEW, &want, err, sizeof err), TD_OK);
    assert_int_equal(td_record_parse(bom, strlen(bom), NOW, TD_RECORD_MAX_SKEW, &r, err, sizeof err), TD_EINVAL);
    assert_null(r);
    text = bom, len = strlen(bom);
    td_record_skip_bom(&text, &len);
    assert_ptr_equal(text, bom + 3);
    assert_int_equal(td_record_parse(text, len, NOW, TD_RECORD_MAX_SKEW, &r, err, sizeof err), TD_OK);
    assert_string_equal(td_record_json(r, NULL), td_record_json(want, NULL));
    td_record_free(r);
    text = plain, len = strlen(plain);           /* nothing to skip */
    td_record_skip_bom(&text, &len);
    assert_ptr_equal(text, plain);
    bom[0] = ' ';                                /* a broken BOM is not one */
    text = bom, len = strlen(bom);
    td_record_skip_bom(&text, &len);
    assert_ptr_equal(text, bom);
    td_record_free(want);
    free(plain);
    free(bom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_example_normalised),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_parse_errors_quote_no_input),
        cmocka_unit_test(test_future_generated_refused),
        cmocka_unit_test(test_float_timestamps_accepted),
        cmocka_unit_test(test_new_builds_same_as_parse),
        cmocka_unit_test(test_leading_bom_skipped),
    };
    return cmocka_run_group_tests_name("record", tests, setup, NULL);
}
