/* Unit tests for feishu: td_feishu_result's mapping of Feishu's {code,msg}
 * envelope, including bodies that are not Feishu's at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "feishu.h"
#include "tokendist.h"

#include <string.h>

static int result(long status, const char *body, json_t **out, char *err, size_t errlen)
{
    td_httpc_resp r = {.status = status, .body = (char *)body, .body_len = body ? strlen(body) : 0};
    err[0] = '\0';
    return td_feishu_result(&r, out, err, errlen);
}

static void ok_returns_data_or_root(void **state)
{
    json_t *o = NULL;
    char err[256];
    (void)state;
    assert_int_equal(result(200, "{\"code\":0,\"msg\":\"success\",\"data\":{\"has_more\":false}}", &o, err, sizeof err), TD_OK);
    assert_true(json_is_false(json_object_get(o, "has_more")));
    json_decref(o);
    assert_int_equal(result(200, "{\"code\":0,\"msg\":\"ok\",\"app_access_token\":\"t-x\",\"expire\":7200}", &o, err, sizeof err),
                     TD_OK);
    assert_string_equal(json_string_value(json_object_get(o, "app_access_token")), "t-x");
    json_decref(o);
    assert_int_equal(result(200, "{\"code\":0}", NULL, err, sizeof err), TD_OK);
    /* Older custom-bot webhooks. */
    assert_int_equal(result(200, "{\"StatusCode\":0,\"StatusMessage\":\"success\"}", NULL, err, sizeof err), TD_OK);
}

static void codes_map(void **state)
{
    json_t *o = (json_t *)1;
    char err[256];
    (void)state;
    assert_int_equal(result(200, "{\"code\":10014,\"msg\":\"app secret invalid\"}", &o, err, sizeof err), TD_EUPSTREAM);
    assert_null(o);
    assert_string_equal(err, "错误码 10014: app secret invalid");
    assert_int_equal(result(200, "{\"code\":10003,\"msg\":\"invalid param\"}", NULL, err, sizeof err), TD_EUPSTREAM);
    assert_string_equal(err, "错误码 10003: invalid param");
    long auth[] = {99991663, 99991664, 99991668, 99991671};
    for (int i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"code\":%ld,\"msg\":\"Invalid access token\"}", auth[i]);
        assert_int_equal(result(400, body, NULL, err, sizeof err), TD_EAUTH);
        assert_non_null(strstr(err, "Invalid access token"));
    }
    assert_int_equal(result(429, "{\"code\":99991400,\"msg\":\"request trigger frequency limit\"}", NULL, err, sizeof err),
                     TD_ERATELIMIT);
    assert_string_equal(err, "错误码 99991400: request trigger frequency limit");
    assert_int_equal(result(200, "{\"code\":99991400,\"msg\":\"limit\"}", NULL, err, sizeof err), TD_ERATELIMIT);
    assert_int_equal(result(429, "<html>Too Many Requests</html>", NULL, err, sizeof err), TD_ERATELIMIT);
    /* A custom bot's rate limit. */
    assert_int_equal(result(200, "{\"code\":11232,\"msg\":\"frequency limited\"}", NULL, err, sizeof err),
                     TD_ERATELIMIT);
    /* The free plan's monthly quota is spent: no limit to wait out. */
    assert_int_equal(result(200, "{\"code\":99991403,\"msg\":\"quota exceeded\"}", NULL, err, sizeof err),
                     TD_EUPSTREAM);
    /* code 0 with an error status is not success. */
    assert_int_equal(result(500, "{\"code\":0,\"msg\":\"ok\"}", NULL, err, sizeof err), TD_EUPSTREAM);
    assert_string_equal(err, "错误码 500: ok");
    /* msg missing */
    assert_int_equal(result(200, "{\"code\":1500}", NULL, err, sizeof err), TD_EUPSTREAM);
    assert_string_equal(err, "错误码 1500: ");
}

static void garbage_is_upstream_error(void **state)
{
    const char *bodies[] = {
        NULL, "", "<html><body>502 Bad Gateway</body></html>", "[]", "null", "42",
        "{\"code\":\"0\"}", "{\"code\":0.5}", "{\"msg\":\"no code\"}", "{\"code\":0,", "\xff\xfe{}",
        "{\"code\":0}{\"code\":1}",
    };
    char err[256];
    json_t *o;
    (void)state;
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        o = (json_t *)1;
        assert_int_equal(result(200, bodies[i], &o, err, sizeof err), TD_EUPSTREAM);
        assert_null(o);
        assert_string_equal(err, "HTTP 200: 回答不是飞书的 JSON 结果 (请检查 FEISHU_BASE_URL，以及中间的代理或网关)");
    }
    assert_int_equal(result(502, "<html/>", NULL, err, sizeof err), TD_EUPSTREAM);
    assert_string_equal(err, "HTTP 502: 回答不是飞书的 JSON 结果 (请检查 FEISHU_BASE_URL，以及中间的代理或网关)");
}

static void err_is_bounded(void **state)
{
    char body[8192], err[32];
    (void)state;
    snprintf(body, sizeof body, "{\"code\":1,\"msg\":\"%0*d\"}", 4000, 0);
    assert_int_equal(result(200, body, NULL, err, sizeof err), TD_EUPSTREAM);
    assert_int_equal(strlen(err), sizeof err - 1);
}

static void fetch_needs_credentials(void **state)
{
    td_feishu f = {.app_id = "cli_x"};
    static td_feishu_token t;
    char err[256];
    (void)state;
    assert_int_equal(td_feishu_fetch_token(&f, &t, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "FEISHU_APP_SECRET"));
}

static int parse_token(long status, const char *headers, const char *body, td_feishu_token *t,
                       char *err, size_t errlen)
{
    td_httpc_resp r = {.status = status, .body = (char *)body, .body_len = strlen(body),
                       .headers = (char *)headers, .headers_len = headers ? strlen(headers) : 0};
    return td_feishu_parse_token(&r, t, err, errlen);
}

/* fuzz_feishu's first find (fuzz/corpus/feishu/crash_token_non_ascii): a
 * token with bytes that are not visible ASCII was accepted, and would have
 * gone into an Authorization header as it was. */
static void parse_token_refuses_unsafe_tokens(void **state)
{
    static td_feishu_token t;
    static char big[5000];
    const char *bad[] = {
        "{\"code\":0,\"msg\":\"ok\",\"app_access_token\":\"ezI1NiJ9.eyJhcHAiOiJjbGlfYTEifQ.c2lnbmF\xd0\xa0XJl\",\"expire\":7200}",
        "{\"code\":0,\"app_access_token\":\"t-a\\r\\nX-Evil: 1\",\"expire\":7200}",
        "{\"code\":0,\"app_access_token\":\"t-a\",\"tenant_access_token\":\"t b\",\"expire\":7200}",
        "{\"code\":0,\"app_access_token\":\"t-\\u007f\",\"expire\":7200}",
    };
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse_token(200, NULL, bad[i], &t, err, sizeof err), TD_EUPSTREAM);
        assert_string_equal(t.app_access_token, "");
        assert_string_equal(t.tenant_access_token, "");
        assert_non_null(strstr(err, "不可见字符"));
    }
    snprintf(big, sizeof big, "{\"code\":0,\"app_access_token\":\"%04097d\",\"expire\":7200}", 0);
    assert_int_equal(parse_token(200, NULL, big, &t, err, sizeof err), TD_ETOOBIG);
    snprintf(big, sizeof big, "{\"code\":0,\"app_access_token\":\"%04096d\",\"expire\":7200}", 0);
    assert_int_equal(parse_token(200, NULL, big, &t, err, sizeof err), TD_OK);
    assert_int_equal(strlen(t.app_access_token), 4096);

    assert_int_equal(parse_token(200, NULL, "{\"code\":0,\"msg\":\"ok\",\"app_access_token\":\"t-g1044ghJ\","
                                            "\"tenant_access_token\":\"t-g1044ghK\",\"expire\":7140}",
                                 &t, err, sizeof err), TD_OK);
    assert_string_equal(t.app_access_token, "t-g1044ghJ");
    assert_string_equal(t.tenant_access_token, "t-g1044ghK");
    assert_int_equal(t.expire, 7140);
    assert_int_equal(t.retry_after, -1);
    assert_int_equal(parse_token(429, "x-ogw-ratelimit-reset: 3\r\n",
                                 "{\"code\":99991400,\"msg\":\"request trigger frequency limit\"}",
                                 &t, err, sizeof err), TD_ERATELIMIT);
    assert_int_equal(t.retry_after, 3);
    assert_int_equal(parse_token(200, NULL, "{\"code\":0,\"app_access_token\":\"t-a\",\"expire\":86401}",
                                 &t, err, sizeof err), TD_EUPSTREAM);
    assert_string_equal(t.app_access_token, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ok_returns_data_or_root),
        cmocka_unit_test(codes_map),
        cmocka_unit_test(garbage_is_upstream_error),
        cmocka_unit_test(err_is_bounded),
        cmocka_unit_test(fetch_needs_credentials),
        cmocka_unit_test(parse_token_refuses_unsafe_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
