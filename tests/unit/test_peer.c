/* Unit tests for peer: addresses, CIDRs, and the client behind trusted
 * proxies -- never an address a client wrote itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "peer.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

static const char *canon(const char *s, char buf[TD_PEER_ADDR_LEN])
{
    td_peer_addr a;
    return td_peer_parse(s, strlen(s), &a) ? td_peer_format(&a, buf) : NULL;
}

static void test_parse_forms(void **state)
{
    char buf[TD_PEER_ADDR_LEN];
    const char *bad[] = {"", "localhost", "1.2.3", "1.2.3.4.5", "1.2.3.4:", "1.2.3.4:x", "1.2.3.4:123456",
                         "[::1", "[::1]x", "[::1]:", "[1.2.3.4]", "fe80::1%eth0", " 1.2.3.4", "unknown",
                         "::1::2", "2001:db8::1:80:", "[::1]:9000:1"};
    (void)state;

    assert_string_equal(canon("192.0.2.1", buf), "192.0.2.1");
    assert_string_equal(canon("192.0.2.1:443", buf), "192.0.2.1");
    assert_string_equal(canon("2001:DB8:0::1", buf), "2001:db8::1");
    assert_string_equal(canon("[2001:db8::1]", buf), "2001:db8::1");
    assert_string_equal(canon("[::1]:9000", buf), "::1");
    assert_string_equal(canon("::ffff:192.0.2.1", buf), "192.0.2.1"); /* mapped: the IPv4 address */
    assert_string_equal(canon("[::ffff:127.0.0.1]:80", buf), "127.0.0.1");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (canon(bad[i], buf)) fail_msg("'%s' parsed as %s", bad[i], buf);
}

static void test_loopback(void **state)
{
    td_peer_addr a;
    (void)state;
    assert_true(td_peer_parse("127.0.0.1", 9, &a) && td_peer_is_loopback(&a));
    assert_true(td_peer_parse("127.255.0.9", 11, &a) && td_peer_is_loopback(&a));
    assert_true(td_peer_parse("::1", 3, &a) && td_peer_is_loopback(&a));
    assert_true(td_peer_parse("::ffff:127.0.0.1", 16, &a) && td_peer_is_loopback(&a));
    assert_true(td_peer_parse("0.0.0.0", 7, &a) && !td_peer_is_loopback(&a));
    assert_true(td_peer_parse("::", 2, &a) && !td_peer_is_loopback(&a));
    assert_true(td_peer_parse("128.0.0.1", 9, &a) && !td_peer_is_loopback(&a));
}

static int has(const char *cidr, const char *addr)
{
    td_peer_cidr c;
    td_peer_trust t = {&c, 1, 0};
    td_peer_addr a;
    char err[256];
    assert_int_equal(td_peer_cidr_parse(cidr, &c, err, sizeof err), TD_OK);
    assert_true(td_peer_parse(addr, strlen(addr), &a));
    return td_peer_trusted(&t, &a);
}

static void test_cidrs(void **state)
{
    td_peer_cidr c;
    char err[256];
    const char *bad[] = {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8x",
                         "::1/129", "[::1]", "[::1]/128", "10.0.0.0:80/8", "example.com/8", "::ffff:10.0.0.0/95"};
    (void)state;

    assert_true(has("127.0.0.1/32", "127.0.0.1"));
    assert_false(has("127.0.0.1/32", "127.0.0.2"));
    assert_true(has("127.0.0.1", "127.0.0.1"));             /* bare = /32 */
    assert_true(has("10.0.0.0/8", "10.255.1.2"));
    assert_false(has("10.0.0.0/8", "11.0.0.0"));
    assert_true(has("172.16.0.0/12", "172.31.255.255"));
    assert_false(has("172.16.0.0/12", "172.32.0.0"));
    assert_true(has("0.0.0.0/0", "203.0.113.9"));
    assert_false(has("0.0.0.0/0", "2001:db8::1"));           /* families never mix */
    assert_true(has("::1/128", "::1"));
    assert_true(has("::1", "::1"));                          /* bare = /128 */
    assert_false(has("::1/128", "::2"));
    assert_true(has("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(has("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(has("127.0.0.1/32", "::ffff:127.0.0.1"));    /* a dual-stack listener's view */
    assert_true(has("::ffff:10.0.0.0/104", "10.9.8.7"));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (td_peer_cidr_parse(bad[i], &c, err, sizeof err) != TD_EINVAL) fail_msg("'%s' accepted", bad[i]);
        if (!strstr(err, bad[i])) fail_msg("'%s': message does not name it: %s", bad[i], err);
    }
    assert_int_equal(td_peer_cidr_parse("10.0.0.1/8", &c, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "10.0.0.0/8"));              /* what was probably meant */
    assert_int_equal(td_peer_cidr_parse("2001:db8::1/64", &c, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "2001:db8::/64"));
}

static const char *client_via(const char *header, const char *cidrs, const char *peer, const char *xff,
                              const char *xri)
{
    static char out[TD_PEER_ADDR_LEN];
    char list[256], *v[8], err[256];
    td_strlist l = {v, 0};
    td_peer_trust t;
    const char *r;

    snprintf(list, sizeof list, "%s", cidrs);
    for (char *p = strtok(list, ","); p && l.n < 8; p = strtok(NULL, ",")) v[l.n++] = p;
    assert_int_equal(td_peer_trust_init(&t, &l, header, err, sizeof err), TD_OK);
    r = td_peer_client(&t, peer, xff, xri, out);
    td_peer_trust_free(&t);
    return r;
}

static const char *client(const char *cidrs, const char *peer, const char *xff, const char *xri)
{
    return client_via(NULL, cidrs, peer, xff, xri);
}

static void test_client_behind_proxies(void **state)
{
    (void)state;
    /* No trusted proxy, or a peer that is not one: the peer, whatever the headers say. */
    assert_string_equal(client("", "192.0.2.1", "6.6.6.6", "7.7.7.7"), "192.0.2.1");
    assert_string_equal(client("10.0.0.0/8", "192.0.2.1", "6.6.6.6", "7.7.7.7"), "192.0.2.1");
    assert_null(client("127.0.0.1", NULL, "6.6.6.6", NULL));
    /* The right-most address that is not a trusted proxy; what the client
     * wrote to its left is never reached. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "198.51.100.7", NULL), "198.51.100.7");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.7", NULL), "198.51.100.7");
    assert_string_equal(client("127.0.0.1,10.0.0.0/8", "127.0.0.1", "6.6.6.6,198.51.100.7 , 10.1.1.1,10.2.2.2",
                               NULL), "198.51.100.7");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "[2001:db8::7]:4711", NULL), "2001:db8::7");
    assert_string_equal(client("127.0.0.1", "::ffff:127.0.0.1", "198.51.100.7:80", NULL), "198.51.100.7");
    /* All hops trusted: the outermost of them.  Garbage stops the walk at
     * the last trusted hop, never taken as an address. */
    assert_string_equal(client("10.0.0.0/8", "10.0.0.1", "10.0.0.9, 10.0.0.5", NULL), "10.0.0.9");
    assert_string_equal(client("10.0.0.0/8", "10.0.0.1", "<script>, 10.0.0.5", NULL), "10.0.0.5");
    assert_string_equal(client("10.0.0.0/8", "10.0.0.1", "unknown", NULL), "10.0.0.1");
    assert_string_equal(client("10.0.0.0/8", "10.0.0.1", " , ,", NULL), "10.0.0.1");
    /* Without --real-ip-header one header alone names the client; two
     * that differ -- one the client's forgery, passed through by a proxy
     * that sets the other -- name nobody: the proxy is the client. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, "198.51.100.9"), "198.51.100.9");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "198.51.100.7", "198.51.100.9"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.9", "198.51.100.9"), "198.51.100.9");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "198.51.100.9", "[::ffff:198.51.100.9]:80"),
                        "198.51.100.9");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "198.51.100.7", "bogus"), "198.51.100.7");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "", "bogus"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, NULL), "127.0.0.1");
    /* An X-Real-IP naming a trusted proxy, or an X-Forwarded-For of
     * trusted hops only, says nothing about the client next to the other. */
    assert_string_equal(client("127.0.0.1,10.0.0.0/8", "127.0.0.1", "198.51.100.7", "10.0.0.5"), "198.51.100.7");
    assert_string_equal(client("127.0.0.1,10.0.0.0/8", "127.0.0.1", "10.0.0.5", "198.51.100.9"), "198.51.100.9");
    /* The forgeries of the two kinds of proxy, each alike whatever the
     * client writes: behind an appending one (its entry right-most) ... */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.7", "7.7.7.7"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
                        "198.51.100.7");
    /* ... and behind one that sets X-Real-IP and passes X-Forwarded-For on. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "192.0.2.222", "198.51.100.9"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "198.51.100.9", "198.51.100.9"), "198.51.100.9");
}

/* --real-ip-header X-Forwarded-For: the only header read (a proxy that
 * appends to it passes a client's X-Real-IP through untouched). */
static void test_client_behind_appending_proxy(void **state)
{
    (void)state;
    assert_string_equal(client_via("X-Forwarded-For", "127.0.0.1", "127.0.0.1", NULL, "198.51.100.9"),
                        "127.0.0.1");
    assert_string_equal(client_via("X-Forwarded-For", "127.0.0.1", "127.0.0.1", "198.51.100.7", "198.51.100.9"),
                        "198.51.100.7");
    assert_string_equal(client_via("X-Forwarded-For", "127.0.0.1", "127.0.0.1", "", "bogus"), "127.0.0.1");
    assert_string_equal(client_via("X-Forwarded-For", "10.0.0.0/8", "10.0.0.1", "10.0.0.9, 10.0.0.5",
                                   "198.51.100.9"), "10.0.0.9");
}

/* Behind nginx with `proxy_set_header X-Real-IP $remote_addr` (and no
 * X-Forwarded-For of its own), a client's X-Forwarded-For passes through:
 * with --real-ip-header X-Real-IP it is never read. */
static void test_client_behind_real_ip_proxy(void **state)
{
    (void)state;
    assert_string_equal(client_via("X-Real-IP", "127.0.0.1", "127.0.0.1", "192.0.2.222", "198.51.100.9"),
                        "198.51.100.9");
    assert_string_equal(client_via("x-real-ip", "127.0.0.1", "127.0.0.1", "192.0.2.222", NULL), "127.0.0.1");
    assert_string_equal(client_via("X-Real-IP", "127.0.0.1", "127.0.0.1", NULL, "[2001:db8::9]:80"), "2001:db8::9");
    assert_string_equal(client_via("X-Real-IP", "127.0.0.1", "127.0.0.1", NULL, "bogus"), "127.0.0.1");
    /* not from a trusted proxy: neither header */
    assert_string_equal(client_via("X-Real-IP", "127.0.0.1", "192.0.2.1", NULL, "198.51.100.9"), "192.0.2.1");
    assert_string_equal(client_via("X-Forwarded-For", "127.0.0.1", "127.0.0.1", "198.51.100.7", "198.51.100.9"),
                        "198.51.100.7");
}

static void test_header_setting(void **state)
{
    char err[512];
    td_peer_trust t;
    (void)state;

    assert_int_equal(td_peer_header_check("X-Forwarded-For", err, sizeof err), TD_OK);
    assert_int_equal(td_peer_header_check("x-real-ip", err, sizeof err), TD_OK);
    assert_int_equal(td_peer_header_check("Forwarded", err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "'Forwarded'"));
    assert_int_equal(td_peer_trust_init(&t, NULL, "X-Client-IP", err, sizeof err), TD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_cidrs),
        cmocka_unit_test(test_client_behind_proxies),
        cmocka_unit_test(test_client_behind_appending_proxy),
        cmocka_unit_test(test_client_behind_real_ip_proxy),
        cmocka_unit_test(test_header_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
