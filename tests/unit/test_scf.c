/* Unit tests for scf: SCF events (API Gateway, Function URL) into requests,
 * responses into integrated responses, and bad events refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "api.h"
#include "scf.h"
#include "store.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *json, td_scf_req *r, char *err, size_t errlen)
{
    return td_scf_parse_event(json, strlen(json), r, err, errlen);
}

static void test_apigw_get(void **state)
{
    /* Header names as the client spelled them; an unused body is dropped,
     * as the HTTP front drops it for anything but POST. */
    const char *ev =
        "{\"requestContext\": {\"serviceId\": \"service-f94sy04v\", \"path\": \"/get-token\","
        " \"httpMethod\": \"GET\", \"sourceIp\": \"10.0.2.14\", \"stage\": \"release\"},"
        " \"headers\": {\"Authorization\": \"Bearer rk\", \"X-API-KEY\": \"xk\"},"
        " \"body\": \"ignored\", \"isBase64Encoded\": false, \"path\": \"/get-token\","
        " \"queryString\": {\"a\": \"1\"}, \"httpMethod\": \"GET\"}";
    td_scf_req r;
    char err[256];
    (void)state;

    assert_int_equal(parse(ev, &r, err, sizeof err), TD_OK);
    assert_string_equal(r.req.method, "GET");
    assert_string_equal(r.req.path, "/get-token");
    assert_string_equal(r.req.authorization, "Bearer rk");
    assert_string_equal(r.req.x_api_key, "xk");
    assert_null(r.req.content_type);
    assert_int_equal(r.req.content_length, -1);
    assert_null(r.req.body);
    assert_int_equal(r.req.body_len, 0);
    assert_string_equal(r.req.remote, "10.0.2.14");
    assert_false(r.head);
    td_scf_req_clear(&r);
    td_scf_req_clear(&r); /* idempotent */
}

static void test_function_url_post(void **state)
{
    /* No requestContext; lower-case headers; the client in a header. */
    const char *ev =
        "{\"body\": \"{\\\"a\\\": 1}\", \"headers\": {\"content-type\": \"application/json\","
        " \"content-length\": \"8\", \"x-scf-remote-addr\": \"111.206.96.145\","
        " \"authorization\": \"Bearer pk\"}, \"httpMethod\": \"POST\","
        " \"path\": \"/v1/tokens/default\", \"queryString\": {}}";
    td_scf_req r;
    char err[256];
    (void)state;

    assert_int_equal(parse(ev, &r, err, sizeof err), TD_OK);
    assert_string_equal(r.req.method, "POST");
    assert_string_equal(r.req.path, "/v1/tokens/default");
    assert_string_equal(r.req.content_type, "application/json");
    assert_int_equal(r.req.content_length, 8);
    assert_int_equal(r.req.body_len, 8);
    assert_memory_equal(r.req.body, "{\"a\": 1}", 8);
    assert_string_equal(r.req.remote, "111.206.96.145");
    assert_string_equal(r.req.authorization, "Bearer pk");
    td_scf_req_clear(&r);
}

/* The client is only what the platform states; X-Forwarded-For is handed
 * on as a header (for the trusted-proxy rule), never taken as the client. */
static void test_client_address_from_platform_only(void **state)
{
    td_scf_req r;
    char err[256];
    (void)state;

    assert_int_equal(parse("{\"requestContext\": {\"sourceIp\": \"10.0.2.14\"}, \"httpMethod\": \"GET\","
                           " \"path\": \"/x\", \"headers\": {\"X-Forwarded-For\": \"6.6.6.6\","
                           " \"X-Real-IP\": \"7.7.7.7\", \"Host\": \"svc.apigw.example\"}}", &r, err, sizeof err), TD_OK);
    assert_string_equal(r.req.remote, "10.0.2.14");
    assert_string_equal(r.req.x_forwarded_for, "6.6.6.6");
    assert_string_equal(r.req.x_real_ip, "7.7.7.7");
    assert_string_equal(r.req.host, "svc.apigw.example");
    assert_int_equal(r.req.host_count, 1);
    td_scf_req_clear(&r);
    /* Two spellings of Host in one map: two Host lines (a 400). */
    assert_int_equal(parse("{\"httpMethod\": \"GET\", \"path\": \"/x\", \"headers\": {\"Host\": \"localhost\","
                           " \"host\": \"evil.example\"}}", &r, err, sizeof err), TD_OK);
    assert_int_equal(r.req.host_count, 2);
    td_scf_req_clear(&r);
    /* A Function URL event without the platform's header: unknown. */
    assert_int_equal(parse("{\"httpMethod\": \"GET\", \"path\": \"/x\","
                           " \"headers\": {\"x-forwarded-for\": \"6.6.6.6\"}}", &r, err, sizeof err), TD_OK);
    assert_string_equal(r.req.remote, "?");
    td_scf_req_clear(&r);
    /* What is not an address is not one ("?"); an address is canonical. */
    assert_int_equal(parse("{\"httpMethod\": \"GET\", \"path\": \"/x\","
                           " \"headers\": {\"x-scf-remote-addr\": \"evil, 1.2.3.4\"}}", &r, err, sizeof err), TD_OK);
    assert_string_equal(r.req.remote, "?");
    td_scf_req_clear(&r);
    assert_int_equal(parse("{\"httpMethod\": \"GET\", \"path\": \"/x\","
                           " \"headers\": {\"x-scf-remote-addr\": \"[2001:DB8::1]:443\"}}", &r, err, sizeof err), TD_OK);
    assert_string_equal(r.req.remote, "2001:db8::1");
    td_scf_req_clear(&r);
}

static void test_base64_body(void **state)
{
    td_scf_req r;
    char err[256];
    (void)state;

    /* Padded, unpadded, and bytes that are not UTF-8 (kept as bytes). */
    assert_int_equal(parse("{\"httpMethod\": \"POST\", \"path\": \"/x\", \"isBase64Encoded\": true,"
                           " \"body\": \"eyJhIjoxfQ==\"}", &r, err, sizeof err), TD_OK);
    assert_int_equal(r.req.body_len, 7);
    assert_memory_equal(r.req.body, "{\"a\":1}", 7);
    td_scf_req_clear(&r);
    assert_int_equal(parse("{\"httpMethod\": \"POST\", \"path\": \"/x\", \"isBase64Encoded\": true,"
                           " \"body\": \"eyJhIjoxfQ\"}", &r, err, sizeof err), TD_OK);
    assert_int_equal(r.req.body_len, 7);
    td_scf_req_clear(&r);
    assert_int_equal(parse("{\"httpMethod\": \"POST\", \"path\": \"/x\", \"isBase64Encoded\": true,"
                           " \"body\": \"/w==\"}", &r, err, sizeof err), TD_OK);
    assert_int_equal(r.req.body_len, 1);
    assert_int_equal((unsigned char)r.req.body[0], 0xff);
    td_scf_req_clear(&r);
    assert_int_equal(parse("{\"httpMethod\": \"POST\", \"path\": \"/x\", \"isBase64Encoded\": true,"
                           " \"body\": \"\"}", &r, err, sizeof err), TD_OK);
    assert_int_equal(r.req.body_len, 0);
    td_scf_req_clear(&r);
}

static void test_path(void **state)
{
    td_scf_req r;
    char err[256];
    (void)state;

    /* Decoded and cut at '?' like libmicrohttpd does for the HTTP front. */
    assert_int_equal(parse("{\"httpMethod\": \"GET\", \"path\": \"/v1/tokens/a%2Db?x=1\"}", &r, err,
                           sizeof err), TD_OK);
    assert_string_equal(r.req.path, "/v1/tokens/a-b");
    td_scf_req_clear(&r);
    assert_int_equal(parse("{\"httpMethod\": \"HEAD\", \"path\": \"/%zz%4\"}", &r, err, sizeof err),
                     TD_OK);
    assert_string_equal(r.req.path, "/%zz%4");
    assert_true(r.head);
    td_scf_req_clear(&r);
}

static void test_bad_events(void **state)
{
    static const struct {
        const char *event, *says;
    } bad[] = {
        {"not json", "不是 JSON"},
        {"[1, 2]", "不是 JSON 对象"},
        {"{\"path\": \"/get-token\"}", "不是 HTTP 请求"},
        {"{\"httpMethod\": \"GET\"}", "不是 HTTP 请求"},
        {"{\"httpMethod\": \"GET\", \"path\": \"get-token\"}", "不是 HTTP 请求"},
        {"{\"httpMethod\": 1, \"path\": \"/\"}", "不是 HTTP 请求"},
        {"{\"Type\": \"Timer\", \"TriggerName\": \"t\", \"Time\": \"2024-01-15T14:30:00Z\"}", "定时器"},
        {"{\"httpMethod\": \"GET\", \"path\": \"/\", \"headers\": []}", "headers"},
        {"{\"httpMethod\": \"POST\", \"path\": \"/\", \"body\": 5}", "body 不是字符串"},
        {"{\"httpMethod\": \"POST\", \"path\": \"/\", \"isBase64Encoded\": true, \"body\": \"@@@@\"}",
         "不是 base64"},
        {"{\"httpMethod\": \"POST\", \"path\": \"/\", \"isBase64Encoded\": true, \"body\": \"eyJhI\"}",
         "不是 base64"}, /* 5 chars: no base64 has that length */
        {"{\"httpMethod\": \"GET\", \"path\": \"/\\u0000x\"}", "不是 JSON"}, /* NUL refused */
        {"{\"httpMethod\": \"GET\", \"path\": \"/\", \"path\": \"/x\"}", "不是 JSON"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        td_scf_req r;
        char err[256] = "";
        int rc = parse(bad[i].event, &r, err, sizeof err);
        if (rc != TD_EINVAL || !strstr(err, bad[i].says))
            fail_msg("event %zu: rc %d, err '%s', wanted '%s'", i, rc, err, bad[i].says);
        assert_null(r.event);
        assert_null(r.body);
    }
}

static void test_response(void **state)
{
    td_api_resp resp = {.status = 404, .body = "{\"error\": \"Not found\"}", .nhdr = 2};
    json_t *o;
    char *text;
    size_t len;
    (void)state;

    resp.body_len = strlen(resp.body);
    resp.hdr[0].name = "Content-Type", resp.hdr[0].value = "application/json; charset=utf-8";
    resp.hdr[1].name = "Retry-After", resp.hdr[1].value = "5";
    assert_non_null(text = td_scf_response(&resp, 0, &len));
    assert_int_equal(strlen(text), len);
    assert_non_null(o = json_loads(text, 0, NULL));
    assert_int_equal(json_integer_value(json_object_get(o, "statusCode")), 404);
    assert_true(json_is_false(json_object_get(o, "isBase64Encoded")));
    assert_string_equal(json_string_value(json_object_get(o, "body")), "{\"error\": \"Not found\"}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "headers"), "Retry-After")),
                        "5");
    assert_non_null(json_string_value(json_object_get(json_object_get(o, "headers"), "Date")));
    json_decref(o);
    free(text);

    /* HEAD: no body.  A body that is not UTF-8: base64. */
    assert_non_null(text = td_scf_response(&resp, 1, NULL));
    assert_non_null(o = json_loads(text, 0, NULL));
    assert_string_equal(json_string_value(json_object_get(o, "body")), "");
    json_decref(o);
    free(text);
    resp.body = "\xff\xfe";
    resp.body_len = 2;
    assert_non_null(text = td_scf_response(&resp, 0, NULL));
    assert_non_null(o = json_loads(text, 0, NULL));
    assert_true(json_is_true(json_object_get(o, "isBase64Encoded")));
    assert_string_equal(json_string_value(json_object_get(o, "body")), "//4=");
    json_decref(o);
    free(text);

    /* What decides is whether the bytes are UTF-8, not whether they are
     * printable: a NUL stays text (JSON escapes it), while a lone
     * surrogate half (CESU-8), a cut sequence, an overlong '/' and a
     * byte above 0xF4 go base64 -- and come back byte for byte. */
    {
        static const struct { const char *b; size_t n; int b64; } cases[] = {
            {"a\0b", 3, 0},
            {"\xe4\xb8\xad\xe6\x96\x87", 6, 0},        /* 中文 */
            {"\xed\xa0\x80", 3, 1},
            {"abc\xe4\xb8", 5, 1},
            {"\xc0\xaf", 2, 1},
            {"\xf5\x80\x80\x80", 4, 1},
        };
        unsigned char bin[256], back[400];
        for (size_t i = 0; i < sizeof bin; i++) bin[i] = (unsigned char)i;
        for (size_t i = 0; i <= sizeof cases / sizeof cases[0]; i++) {
            const char *b = i < sizeof cases / sizeof cases[0] ? cases[i].b : (const char *)bin;
            size_t n = i < sizeof cases / sizeof cases[0] ? cases[i].n : sizeof bin;
            int want_b64 = i < sizeof cases / sizeof cases[0] ? cases[i].b64 : 1;
            const json_t *body;
            resp.body = b;
            resp.body_len = n;
            assert_non_null(text = td_scf_response(&resp, 0, NULL));
            assert_non_null(o = json_loads(text, JSON_ALLOW_NUL, NULL)); /* "\u0000" */
            body = json_object_get(o, "body");
            if (json_is_true(json_object_get(o, "isBase64Encoded")) != want_b64)
                fail_msg("case %zu: isBase64Encoded should be %d", i, want_b64);
            if (want_b64) {
                int m = EVP_DecodeBlock(back, (const unsigned char *)json_string_value(body),
                                        (int)json_string_length(body));
                assert_true(m >= (int)n);     /* EVP_DecodeBlock counts padding as bytes */
                assert_memory_equal(back, b, n);
            } else {
                assert_int_equal(json_string_length(body), n);
                assert_memory_equal(json_string_value(body), b, n);
            }
            json_decref(o);
            free(text);
        }
    }
}

/* The whole path through the shared handler, on an in-memory store. */
static void test_handle(void **state)
{
    td_store *store = NULL;
    td_api *api = NULL;
    td_api_opts o = {0};
    char err[256], *out = NULL;
    size_t len = 0;
    json_t *r;
    (void)state;

    assert_int_equal(td_store_open(&store, "sqlite::memory:", 5, err, sizeof err), TD_OK);
    o.store = store;
    assert_int_equal(td_api_new(&api, &o, err, sizeof err), TD_OK);

    const char *get = "{\"httpMethod\": \"GET\", \"path\": \"/get-token\", \"headers\": {}}";
    assert_int_equal(td_scf_handle(api, get, strlen(get), 0, &out, &len, err, sizeof err), TD_OK);
    assert_non_null(r = json_loads(out, 0, NULL));
    assert_int_equal(json_integer_value(json_object_get(r, "statusCode")), 404);
    assert_string_equal(json_string_value(json_object_get(r, "body")),
                        "{\"error\": \"Token not found or expired\"}");
    json_decref(r);
    free(out);

    const char *post = "{\"httpMethod\": \"POST\", \"path\": \"/get-token\", \"body\": \"{}\"}";
    assert_int_equal(td_scf_handle(api, post, strlen(post), 0, &out, &len, err, sizeof err), TD_OK);
    assert_non_null(r = json_loads(out, 0, NULL));
    assert_int_equal(json_integer_value(json_object_get(r, "statusCode")), 403); /* no push key */
    json_decref(r);
    free(out);

    out = NULL;
    assert_int_equal(td_scf_handle(api, "{}", 2, 0, &out, &len, err, sizeof err), TD_EINVAL);
    assert_null(out);

    td_api_free(api);
    td_store_close(store);
}

/* The function's time limit from /next's time_limit_in_ms: the answer is
 * due a margin before it (a tenth, 0.5 s to 2 s); no usable limit, no
 * deadline. */
static void test_budget(void **state)
{
    td_scf_budget b;
    (void)state;

    b = td_scf_budget_of(1000, "3000");
    assert_int_equal(b.limit_ms, 3000);
    assert_int_equal(b.deadline_ms, 1000 + 2500);
    b = td_scf_budget_of(0, "900000");
    assert_int_equal(b.deadline_ms, 900000 - 2000);
    b = td_scf_budget_of(0, "30000");
    assert_int_equal(b.deadline_ms, 28000);
    b = td_scf_budget_of(0, "600");     /* shorter than two margins: half of it */
    assert_int_equal(b.deadline_ms, 300);
    for (const char *bad[] = {NULL, "", "abc", "-5", "0", "12x", "99999999999999999999"}, **p = bad;
         p < bad + sizeof bad / sizeof *bad; p++) {
        b = td_scf_budget_of(5, *p);
        assert_int_equal(b.deadline_ms, 0);
        assert_int_equal(b.limit_ms, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apigw_get),
        cmocka_unit_test(test_function_url_post),
        cmocka_unit_test(test_client_address_from_platform_only),
        cmocka_unit_test(test_base64_body),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_handle),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
