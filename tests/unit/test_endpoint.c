/* Unit tests for endpoint: the one URL rule every reader and writer
 * follows, the wrong path told from "no token yet", and a URL that is the
 * server itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "endpoint.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void resolve_table(void **state)
{
    static const struct {
        const char *url, *name, *token, *named;
    } rows[] = {
        /* A base URL gets the seed's path for the seed's token, the
         * named path for another. */
        {"http://host:9000", "default", "http://host:9000/release/get-token", "http://host:9000/v1/tokens/default"},
        {"http://host:9000/", "default", "http://host:9000/release/get-token", "http://host:9000/v1/tokens/default"},
        {"https://h.example", "wx", "https://h.example/v1/tokens/wx", "https://h.example/v1/tokens/wx"},
        {"http://host:9000?x=1", "default", "http://host:9000/release/get-token", "http://host:9000/v1/tokens/default"},
        /* The seed's URL: as given for "default", the named one beside it otherwise. */
        {"https://gw.example/release/get-token", "default", "https://gw.example/release/get-token",
         "https://gw.example/v1/tokens/default"},
        {"https://gw.example/p/get-token/", "wx", "https://gw.example/p/v1/tokens/wx", "https://gw.example/p/v1/tokens/wx"},
        /* A named URL is taken as it is. */
        {"http://h/v1/tokens/wx", "wx", "http://h/v1/tokens/wx", "http://h/v1/tokens/wx"},
        {"http://h/v1/tokens/wx", "default", "http://h/v1/tokens/wx", "http://h/v1/tokens/wx"},
        /* Any other path: as given, nothing derived. */
        {"https://gw.example/release/my-fn", "default", "https://gw.example/release/my-fn", ""},
        {"http://h:9000/release/get-tokn", "wx", "http://h:9000/release/get-tokn", ""},
    };
    td_endpoint e;
    char err[512];
    (void)state;

    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        if (td_endpoint_resolve(&e, rows[i].url, rows[i].name, err, sizeof err) != TD_OK)
            fail_msg("%s for %s: %s", rows[i].url, rows[i].name, err);
        if (strcmp(e.token, rows[i].token) || strcmp(e.named, rows[i].named))
            fail_msg("%s for %s: token %s, named %s", rows[i].url, rows[i].name, e.token, e.named);
    }
    assert_int_equal(td_endpoint_resolve(&e, "http://h/v1/tokens/other", "wx", err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "'other'"));
    assert_int_equal(td_endpoint_resolve(&e, "ftp://h/x", "default", err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "http://"));
}

static void wrong_path_is_not_no_token(void **state)
{
    const char *nopath = "{\"error\": \"Not found\"}", *notoken = "{\"error\": \"Token not found or expired\"}";
    char why[512];
    (void)state;

    assert_true(td_endpoint_wrong_path(404, nopath, strlen(nopath)));
    assert_false(td_endpoint_wrong_path(404, notoken, strlen(notoken)));
    assert_false(td_endpoint_wrong_path(200, nopath, strlen(nopath)));
    assert_false(td_endpoint_wrong_path(404, "<html>", 6));
    assert_false(td_endpoint_wrong_path(404, NULL, 0));
    td_endpoint_wrong_path_why("http://h:9000/release/get-tokn?x", why, sizeof why);
    assert_non_null(strstr(why, "路径不对"));
    assert_non_null(strstr(why, "/release/get-tokn "));
    assert_non_null(strstr(why, "/release/get-token"));
    /* Cut to fit, never past the buffer. */
    td_endpoint_wrong_path_why("http://h/x", why, 20);
    assert_true(strlen(why) < 20);
}

static void self_by_listen_loopback_and_public_url(void **state)
{
    td_endpoint_self lo = {.listen = "127.0.0.1:9000", .port = 9000};
    td_endpoint_self any = {.listen = "0.0.0.0:0", .port = 9100};
    td_endpoint_self pub = {.listen = "127.0.0.1:9000", .port = 9000,
                            .public_url = "https://Tokens.Example.com/release/get-token"};
    td_endpoint_self other = {.listen = "192.0.2.5:9000", .port = 9000};
    char why[512], host[256];
    (void)state;

    assert_true(td_endpoint_is_self("http://127.0.0.1:9000/release/get-token", &lo, why, sizeof why));
    assert_true(td_endpoint_is_self("http://localhost:9000", &lo, why, sizeof why));
    assert_true(td_endpoint_is_self("http://[::1]:9000/x", &lo, why, sizeof why));
    assert_false(td_endpoint_is_self("http://127.0.0.1:9001/release/get-token", &lo, why, sizeof why));
    assert_false(td_endpoint_is_self("http://tokens.example.com:9000/", &lo, why, sizeof why));
    /* Every interface: the loopback and this machine's name count, with the port bound. */
    assert_true(td_endpoint_is_self("http://127.0.0.1:9100/", &any, why, sizeof why));
    assert_false(td_endpoint_is_self("http://127.0.0.1:0/", &any, why, sizeof why));
    if (gethostname(host, sizeof host) == 0 && host[0]) {
        char url[400];
        snprintf(url, sizeof url, "http://%s:9100/release/get-token", host);
        assert_true(td_endpoint_is_self(url, &any, why, sizeof why));
    }
    /* The public address (behind a proxy): the same host and port, whatever the path. */
    assert_true(td_endpoint_is_self("https://tokens.example.com/get-token", &pub, why, sizeof why));
    assert_non_null(strstr(why, "TOKENDIST_PUBLIC_URL"));
    assert_false(td_endpoint_is_self("https://tokens.example.com:8443/get-token", &pub, why, sizeof why));
    assert_false(td_endpoint_is_self("http://tokens.example.com/get-token", &pub, why, sizeof why));
    /* A specific address: the loopback on that port is somebody else. */
    assert_false(td_endpoint_is_self("http://127.0.0.1:9000/", &other, why, sizeof why));
    assert_true(td_endpoint_is_self("http://192.0.2.5:9000/", &other, why, sizeof why));
    assert_false(td_endpoint_is_self("not a url", &lo, why, sizeof why));
}

static void own_url(void **state)
{
    td_endpoint_self lo = {.listen = "127.0.0.1:0", .port = 9200};
    td_endpoint_self v6 = {.listen = "[::1]:9000", .port = 9000, .tls = 1};
    td_endpoint_self any = {.listen = ":9000", .port = 9000};
    char out[512], host[256], want[400];
    (void)state;

    assert_int_equal(td_endpoint_own_url(&lo, "default", out, sizeof out), TD_OK);
    assert_string_equal(out, "http://127.0.0.1:9200/release/get-token");
    assert_int_equal(td_endpoint_own_url(&lo, "wx", out, sizeof out), TD_OK);
    assert_string_equal(out, "http://127.0.0.1:9200/v1/tokens/wx");
    assert_int_equal(td_endpoint_own_url(&v6, "default", out, sizeof out), TD_OK);
    assert_string_equal(out, "https://[::1]:9000/release/get-token");
    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(want, sizeof want, "http://%s:9000/release/get-token", host);
    assert_int_equal(td_endpoint_own_url(&any, "default", out, sizeof out), TD_OK);
    assert_string_equal(out, want);
    assert_int_equal(td_endpoint_own_url(&lo, "default", out, 10), TD_ETOOBIG);
}

/* A URL's password never reaches an error message (the user reads it,
 * logs keep it): userinfo is shown as "***", by httpc's one rule. */
static void errors_hide_credentials(void **state)
{
    static const struct {
        const char *url, *name;
    } rows[] = {
        {"ftp://user:s3cr/et@h/release/get-token", "default"},          /* not http(s) */
        {"http://user:s3cr/et@h/v1/tokens/wx", "abc"},                  /* another name */
    };
    td_endpoint e;
    char err[512];
    (void)state;

    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        err[0] = '\0';
        assert_int_not_equal(td_endpoint_resolve(&e, rows[i].url, rows[i].name, err, sizeof err), TD_OK);
        assert_null(strstr(err, "s3cr"));
        assert_non_null(strstr(err, "***@h"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resolve_table),
        cmocka_unit_test(wrong_path_is_not_no_token),
        cmocka_unit_test(self_by_listen_loopback_and_public_url),
        cmocka_unit_test(own_url),
        cmocka_unit_test(errors_hide_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
