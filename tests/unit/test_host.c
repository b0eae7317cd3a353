/* Unit tests for host: the Host rule against DNS rebinding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "host.h"
#include "tokendist.h"

#include <string.h>

static void test_loopback_listener(void **state)
{
    td_host_rule h;
    const char *ok[] = {NULL, "localhost", "LocalHost:9000", "localhost.", "localhost.:9000", "127.0.0.1",
                        "127.0.0.1:9000", "127.1.2.3:1", "[::1]", "[::1]:9000", "[0:0::1]:9000",
                        "[::ffff:127.0.0.1]:9000", "localhost:"};
    const char *no[] = {"evil.example", "evil.example:9000", "localhost.evil.example", "127.0.0.1.nip.io",
                        "0.0.0.0:9000", "10.0.0.1", "[::2]:9000", "::1", "[::1", "[::1]x", "", ":9000",
                        "localhost:9000x", "localhost:-1", "[::1]:x"};
    (void)state;

    assert_int_equal(td_host_rule_init(&h, NULL, 1), TD_OK);
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!td_host_allowed(&h, ok[i])) fail_msg("Host '%s' refused", ok[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (td_host_allowed(&h, no[i])) fail_msg("Host '%s' answered", no[i]);
    td_host_rule_free(&h);
}

static void test_allowed_names(void **state)
{
    char *names[] = {"Tokens.Example.com.", "192.0.2.7", "[2001:db8::7]"};
    td_strlist l = {names, 3};
    td_host_rule h;
    (void)state;

    /* Not on the loopback and nothing allowed: the rule is off. */
    assert_int_equal(td_host_rule_init(&h, NULL, 0), TD_OK);
    assert_true(td_host_allowed(&h, "evil.example"));
    td_host_rule_free(&h);

    /* Names allowed: on, also away from the loopback, loopback names too. */
    assert_int_equal(td_host_rule_init(&h, &l, 0), TD_OK);
    assert_true(td_host_allowed(&h, "tokens.example.com"));
    assert_true(td_host_allowed(&h, "TOKENS.example.COM:443"));
    assert_true(td_host_allowed(&h, "192.0.2.7:9000"));
    assert_true(td_host_allowed(&h, "[2001:db8:0::7]:9000"));
    assert_true(td_host_allowed(&h, "localhost:9000"));
    assert_true(td_host_allowed(&h, NULL));
    assert_false(td_host_allowed(&h, "evil.example"));
    assert_false(td_host_allowed(&h, "tokens.example.com.evil.example"));
    assert_false(td_host_allowed(&h, "192.0.2.8"));
    td_host_rule_free(&h);
}

static void test_name_check(void **state)
{
    const char *ok[] = {"tokens.example.com", "localhost", "my_host-1", "192.0.2.7", "2001:db8::7",
                        "[2001:db8::7]", "example.com."};
    const char *no[] = {"", "http://x", "x:80", "192.0.2.7:80", "[::1]:80", "a/b", "a b", ".", "*.example.com"};
    char err[256];
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (td_host_name_check(ok[i], err, sizeof err) != TD_OK) fail_msg("'%s' refused: %s", ok[i], err);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        if (td_host_name_check(no[i], err, sizeof err) != TD_EINVAL) fail_msg("'%s' accepted", no[i]);
        assert_non_null(strstr(err, no[i]));
    }
}

/* Malformed whatever the name: two lines, a control byte or space, a
 * port no TCP has; what is merely not HOST[:PORT] is the rule's (421). */
static void test_header_check(void **state)
{
    const char *ok[] = {"localhost", "localhost:9000", "localhost:", "[::1]:65535", "evil.example",
                        "localhost:9000x", "[::1]x", "\xe4\xbe\x8b.example", ":"};
    const char *no[] = {"local\x01host", "localhost\t", "a b", "localhost\x7f", "localhost:65536",
                        "localhost:99999999999999999999", "[::1]:123456", "127.0.0.1:000001"};
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (td_host_header_check(ok[i], 1, err, sizeof err) != TD_OK) fail_msg("'%s' refused: %s", ok[i], err);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (td_host_header_check(no[i], 1, err, sizeof err) != TD_EINVAL) fail_msg("'%s' accepted", no[i]);
    assert_int_equal(td_host_header_check(NULL, 0, err, sizeof err), TD_OK);           /* HTTP/1.0 */
    assert_int_equal(td_host_header_check("localhost", 2, err, sizeof err), TD_EINVAL);
    assert_string_equal(err, "请求有 2 个 Host 头: 只能有一个 (RFC 9112)");
    assert_int_equal(td_host_header_check(NULL, 1, err, sizeof err), TD_EINVAL);        /* not text */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_listener),
        cmocka_unit_test(test_allowed_names),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_header_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
