/* Unit tests for httpc's answer helpers: the wait a rate-limited answer
 * asks for (Retry-After / x-ogw-ratelimit-reset), which every caller
 * sleeps on, must be bounded whatever the server sends; and the
 * percent-encoding URLs are built with; and URLs shown to people never
 * carry their credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "feishu.h"
#include "httpc.h"
#include "strbuf.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static long wait_of(const char *headers)
{
    td_httpc_resp r = {.status = 429, .headers = (char *)headers, .headers_len = strlen(headers)};
    return td_httpc_retry_after(&r);
}

static void retry_after_seconds(void **state)
{
    (void)state;
    assert_int_equal(wait_of("HTTP/1.1 429 Too Many Requests\r\n"), -1);
    assert_int_equal(wait_of("Retry-After: 120\r\n"), 120);
    assert_int_equal(wait_of("retry-after:0\r\n"), 0);
    assert_int_equal(wait_of("x-ogw-ratelimit-reset: 7\r\n"), 7);
    assert_int_equal(wait_of("Retry-After: 3600\r\n"), 3600);
    assert_int_equal(wait_of("Retry-After: 00000000000000000000000000000042\r\n"), 42);
}

/* Huge values: strtol saturated at LONG_MAX, and callers multiplying by
 * 1000 overflowed (or slept for decades).  Now they are the bound. */
static void retry_after_huge_is_clamped(void **state)
{
    (void)state;
    assert_int_equal(wait_of("Retry-After: 3601\r\n"), TD_HTTPC_RETRY_AFTER_MAX);
    assert_int_equal(wait_of("Retry-After: 99999999999999999999\r\n"), TD_HTTPC_RETRY_AFTER_MAX);
    assert_int_equal(wait_of("x-ogw-ratelimit-reset: 9223372036854775808\r\n"), TD_HTTPC_RETRY_AFTER_MAX);
    assert_int_equal(wait_of("x-ogw-ratelimit-reset: "
                             "999999999999999999999999999999999999999999999999999999999999\r\n"),
                     TD_HTTPC_RETRY_AFTER_MAX);
}

static void retry_after_garbage_is_no_advice(void **state)
{
    (void)state;
    assert_int_equal(wait_of("Retry-After: -5\r\n"), -1);
    assert_int_equal(wait_of("Retry-After: abc\r\n"), -1);
    assert_int_equal(wait_of("Retry-After: 5s\r\n"), -1);
    assert_int_equal(wait_of("Retry-After: +5\r\n"), -1);
    assert_int_equal(wait_of("Retry-After: 1.5\r\n"), -1);
    assert_int_equal(wait_of("Retry-After: \r\n"), -1);
    /* A bad first header does not hide a good second one. */
    assert_int_equal(wait_of("x-ogw-ratelimit-reset: -1\r\nRetry-After: 9\r\n"), 9);
    assert_int_equal(wait_of("x-ogw-ratelimit-reset: 4\r\nRetry-After: 9\r\n"), 4);
}

/* The HTTP-date form, measured against the answer's Date. */
static void retry_after_http_date(void **state)
{
    (void)state;
    assert_int_equal(wait_of("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                             "Retry-After: Sun, 06 Nov 1994 08:51:37 GMT\r\n"), 120);
    assert_int_equal(wait_of("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                             "Retry-After: Sunday, 06-Nov-94 08:50:37 GMT\r\n"), 60);
    assert_int_equal(wait_of("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                             "Retry-After: Sun, 06 Nov 1994 08:00:00 GMT\r\n"), 0);     /* past */
    assert_int_equal(wait_of("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                             "Retry-After: Fri, 31 Dec 2100 23:59:59 GMT\r\n"), TD_HTTPC_RETRY_AFTER_MAX);
    assert_int_equal(wait_of("Retry-After: Sun, 99 Foo 1994 99:99:99 GMT\r\n"), -1);
    {   /* Without a Date: against the local clock. */
        char h[128], when[64];
        time_t t = time(NULL) + 300;
        struct tm tm;
        long w;
        strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
        snprintf(h, sizeof h, "Retry-After: %s\r\n", when);
        w = wait_of(h);
        assert_true(w >= 298 && w <= 300);
    }
}

/* What the refresher schedules on: a 429 from Feishu's token endpoint. */
static void feishu_token_429_wait_is_bounded(void **state)
{
    static const char body[] = "{\"code\":99991400,\"msg\":\"request trigger frequency limit\"}";
    td_httpc_resp r = {.status = 429, .body = (char *)body, .body_len = sizeof body - 1,
                       .headers = "x-ogw-ratelimit-reset: 99999999999999999999\r\n"};
    td_feishu_token t;
    char err[256];
    (void)state;

    r.headers_len = strlen(r.headers);
    assert_int_equal(td_feishu_parse_token(&r, &t, err, sizeof err), TD_ERATELIMIT);
    assert_int_equal(t.retry_after, TD_HTTPC_RETRY_AFTER_MAX);
}

static void escape(void **state)
{
    char buf[16];
    td_strbuf b;
    (void)state;

    assert_string_equal(td_httpc_escape("a b/ü~", buf, sizeof buf), "a%20b%2F%C3%BC~");
    assert_null(td_httpc_escape("a b/ü~", buf, 15));       /* one byte short */
    assert_null(td_httpc_escape("x", buf, 0));
    td_strbuf_fixed(&b, buf, 8);
    assert_int_equal(td_httpc_escape_append(&b, "ab", 2), TD_OK);
    assert_int_equal(td_httpc_escape_append(&b, "  ", 2), TD_ETOOBIG);     /* the second %20 does not fit */
    assert_string_equal(buf, "ab%20");
}

/* The userinfo goes whole, whatever it holds; the host and path stay. */
static void redact_url_odd_forms(void **state)
{
    static const struct { const char *url, *shown, *no_query; } v[] = {
        {"redis://:Ab/cD+eF=@10.0.0.5:6379/0", "redis://***@10.0.0.5:6379/0", NULL},  /* base64 '/' */
        {"redis://S3cret@h", "redis://***@h", NULL},                                  /* bare password */
        {"redis://a@b:S3cret@h/0?prefix=ns@x", "redis://***@h/0?prefix=ns@x", "redis://***@h/0?…"},
        {"https://u:p#w?d@h/x?y=1", "https://***@h/x?y=1", "https://***@h/x?…"},      /* '#', '?' in it */
        {"https://u:p/w@h:8443", "https://***@h:8443", NULL},
        {"https://@h/", "https://***@h/", NULL},
        {"https://h/x@y", "https://***@y", NULL},             /* a path's '@': more hidden, not less */
        {"https://h:1/p?corpid=a&corpsecret=S", NULL, "https://h:1/p?…"},
        {"https://open.feishu.cn", "https://open.feishu.cn", "https://open.feishu.cn"},
        {"sqlite:./var/a@b.db", "sqlite:./var/a@b.db", "sqlite:./var/a@b.db"},        /* no authority */
        {"", "", ""},
    };
    char buf[128];
    (void)state;

    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        if (v[i].shown) assert_string_equal(td_httpc_redact_url(v[i].url, 0, buf, sizeof buf), v[i].shown);
        if (v[i].no_query)
            assert_string_equal(td_httpc_redact_url(v[i].url, TD_HTTPC_HIDE_QUERY, buf, sizeof buf), v[i].no_query);
    }
    /* Cut to the buffer, never past the hidden part. */
    assert_string_equal(td_httpc_redact_url("https://u:pw@host/path", 0, buf, 12), "https://***");
    assert_string_equal(td_httpc_redact_url(NULL, 0, buf, sizeof buf), "");
}

/* A failed request's error names its URL without userinfo or query. */
static void error_names_url_without_credentials(void **state)
{
    td_httpc_req req = {.url = "http://u:UrlPw1@127.0.0.1:1/cgi-bin/gettoken?corpsecret=QuerySecret2",
                        .connect_timeout_ms = 2000, .timeout_ms = 2000};
    td_httpc_resp resp;
    char err[512];
    (void)state;

    assert_int_not_equal(td_httpc_do(&req, &resp, err, sizeof err), TD_OK);
    assert_null(strstr(err, "UrlPw1"));
    assert_null(strstr(err, "QuerySecret2"));
    assert_non_null(strstr(err, "http://***@127.0.0.1:1/cgi-bin/gettoken?…: "));
    assert_non_null(td_httpc_err_detail(err, req.url));
    assert_null(strstr(td_httpc_err_detail(err, req.url), "127.0.0.1:1/"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_after_seconds),
        cmocka_unit_test(retry_after_huge_is_clamped),
        cmocka_unit_test(retry_after_garbage_is_no_advice),
        cmocka_unit_test(retry_after_http_date),
        cmocka_unit_test(feishu_token_429_wait_is_bounded),
        cmocka_unit_test(escape),
        cmocka_unit_test(redact_url_odd_forms),
        cmocka_unit_test(error_names_url_without_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
