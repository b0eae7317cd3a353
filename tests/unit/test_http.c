/* Unit tests for http's start-up helpers: the listen address and whether
 * it is on the loopback (where the Host rule is on). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http.h"
#include "tokendist.h"

#include <sys/socket.h>

static void test_listen_loopback(void **state)
{
    const char *yes[] = {"127.0.0.1:9000", "127.8.0.1:1", "localhost:9000", "[::1]:9000",
                         "[::ffff:127.0.0.1]:9000"};
    const char *no[] = {"0.0.0.0:9000", ":9000", "*:9000", "[::]:9000", "192.0.2.1:9000",
                        "[2001:db8::1]:9000", "not an address", ""};
    (void)state;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!td_http_listen_loopback(yes[i])) fail_msg("%s: not loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (td_http_listen_loopback(no[i])) fail_msg("%s: loopback", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
