/* Unit tests for the client's judgement of a source's answer
 * (td__client_endpoint_answer, td__client_judge). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "client.h"
#include "tokendist.h"

#include <string.h>

#define NOW 1705294200

static int answer(long status, const char *headers, const char *body, char *why, size_t wlen)
{
    td_httpc_resp r = {.status = status, .body = (char *)body, .body_len = strlen(body),
                       .headers = (char *)headers, .headers_len = headers ? strlen(headers) : 0};
    td_record *rec = NULL;
    int rc = td__client_endpoint_answer(&r, NULL, TD_TOKEN_APP, 300, NOW, &rec, why, wlen);
    td_record_free(rec);
    return rc;
}

/* fuzz_client's find (fuzz/corpus/client/crash_empty_message): an error
 * body with an empty "error" or "message" left the reason empty. */
static void empty_error_text_keeps_a_reason(void **state)
{
    char why[512];
    (void)state;
    assert_int_equal(answer(404, "{\"error\": \"x\"}", "{\"message\": \"\"}", why, sizeof why), TD_ENOTFOUND);
    assert_string_equal(why, "Token not found or expired");
    assert_int_equal(answer(404, NULL, "{\"error\": \"\", \"message\": \"gone\"}", why, sizeof why), TD_ENOTFOUND);
    assert_string_equal(why, "gone");
    assert_int_equal(answer(500, "HTTP/1.1 500 Internal Server Error\r\n", "{\"error\": \"\"}", why, sizeof why),
                     TD_EHTTP);
    assert_string_equal(why, "HTTP 500: Internal Server Error");
    assert_int_equal(answer(403, NULL, "{\"error\": \"Forbidden\"}", why, sizeof why), TD_EAUTH);
    assert_string_equal(why, "HTTP 403: Forbidden");
}

static void judge_by_the_servers_clock(void **state)
{
    const char *rec = "{\"access_token\": \"t-a\", \"expire_time\": \"\", \"expire_timestamp\": 1705301400,"
                      " \"valid_duration_seconds\": 7200, \"generated_time\": \"\", \"generated_timestamp\": 1705294200,"
                      " \"source\": \"s\", \"usage\": \"u\", \"platform\": \"p\"}";
    td_record *r = NULL;
    char why[512];
    (void)state;
    assert_int_equal(td__client_judge(rec, strlen(rec), TD_TOKEN_APP, 300, NOW, &r, why, sizeof why), TD_OK);
    assert_string_equal(td_record_token(r), "t-a");
    td_record_free(r);
    r = NULL;
    assert_int_equal(td__client_judge(rec, strlen(rec), TD_TOKEN_APP, 300, 1705301200, &r, why, sizeof why),
                     TD_EEXPIRED);
    assert_null(r);
    assert_int_equal(td__client_judge("{", 1, TD_TOKEN_APP, 300, NOW, &r, why, sizeof why), TD_EINVAL);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_error_text_keeps_a_reason),
        cmocka_unit_test(judge_by_the_servers_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
