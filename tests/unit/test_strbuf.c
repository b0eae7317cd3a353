/* Unit tests for strbuf, the one bounded string builder: fixed and heap
 * builders, the exact-fit and one-byte-over edges, the sticky error, and
 * handing the heap buffer over (take) or dropping it (free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "strbuf.h"
#include "tokendist.h"

#include <stdlib.h>
#include <jansson.h>
#include <string.h>

/* A fixed builder over 8 bytes holds 7 characters and the NUL, no more. */
static void fixed_exact_fit(void **state)
{
    char buf[8];
    td_strbuf b;
    (void)state;

    td_strbuf_fixed(&b, buf, sizeof buf);
    assert_string_equal(td_strbuf_str(&b), "");
    assert_int_equal(td_strbuf_puts(&b, "abc"), TD_OK);
    assert_int_equal(td_strbuf_printf(&b, "%d", 1234), TD_OK);
    assert_int_equal(td_strbuf_error(&b), TD_OK);
    assert_string_equal(buf, "abc1234");
    assert_int_equal(b.len, 7);
}

/* One byte over: the append fails as a whole (no half-written piece), the
 * text before it stays intact and NUL-terminated. */
static void fixed_one_byte_over(void **state)
{
    char buf[9];
    td_strbuf b;
    (void)state;

    memset(buf, 'x', sizeof buf);
    td_strbuf_fixed(&b, buf, 8);
    assert_int_equal(td_strbuf_puts(&b, "abcd"), TD_OK);
    assert_int_equal(td_strbuf_printf(&b, "%s", "efgh"), TD_ETOOBIG);
    assert_int_equal(td_strbuf_error(&b), TD_ETOOBIG);
    assert_string_equal(td_strbuf_str(&b), "abcd");
    assert_int_equal(buf[8], 'x');          /* nothing written past the builder */

    td_strbuf_fixed(&b, buf, 8);
    assert_int_equal(td_strbuf_append(&b, "12345678", 8), TD_ETOOBIG);
    assert_string_equal(buf, "");
}

/* After the first failure every append is a no-op, even one that would
 * fit, so the caller checks once at the end. */
static void error_is_sticky(void **state)
{
    char buf[16];
    td_strbuf b;
    (void)state;

    td_strbuf_fixed(&b, buf, sizeof buf);
    assert_int_equal(td_strbuf_puts(&b, "0123456789"), TD_OK);
    assert_int_equal(td_strbuf_puts(&b, "0123456789"), TD_ETOOBIG);
    assert_int_equal(td_strbuf_puts(&b, "x"), TD_ETOOBIG);
    assert_int_equal(td_strbuf_printf(&b, "%c", 'y'), TD_ETOOBIG);
    assert_int_equal(td_strbuf_append(&b, "z", 1), TD_ETOOBIG);
    assert_string_equal(td_strbuf_str(&b), "0123456789");
}

/* A zero-sized fixed builder is an error from the start, never a write. */
static void fixed_zero_size(void **state)
{
    char c = 'x';
    td_strbuf b;
    (void)state;

    td_strbuf_fixed(&b, &c, 0);
    assert_int_equal(td_strbuf_error(&b), TD_ETOOBIG);
    assert_int_equal(td_strbuf_puts(&b, ""), TD_ETOOBIG);
    assert_int_equal(c, 'x');
}

/* A heap builder grows (across several reallocations) up to its ceiling
 * exactly: max bytes hold max - 1 characters and the NUL. */
static void heap_grows_to_exact_ceiling(void **state)
{
    td_strbuf b;
    size_t len = 0;
    (void)state;

    td_strbuf_heap(&b, 1000);
    assert_string_equal(td_strbuf_str(&b), "");
    for (int i = 0; i < 999; i++) assert_int_equal(td_strbuf_append(&b, "a", 1), TD_OK);
    assert_int_equal(b.len, 999);
    assert_true(b.cap <= 1000);
    assert_int_equal(td_strbuf_append(&b, "a", 1), TD_ETOOBIG);   /* one byte over */
    assert_int_equal(b.len, 999);
    assert_int_equal(strlen(td_strbuf_str(&b)), 999);
    /* A failed builder hands nothing over, and frees what it had. */
    assert_null(td_strbuf_take(&b, &len));
    assert_int_equal(len, 0);
    td_strbuf_free(&b);
}

/* printf of a piece longer than the doubling step: 5001 bytes hold the
 * 5000 characters of "<" + 4999 'q', not one more. */
static void heap_printf_big_piece(void **state)
{
    td_strbuf b;
    char big[5000];
    (void)state;

    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    td_strbuf_heap(&b, sizeof big + 1);
    assert_int_equal(td_strbuf_printf(&b, "<%s>", big), TD_ETOOBIG);
    assert_string_equal(td_strbuf_str(&b), "");
    td_strbuf_free(&b);

    td_strbuf_heap(&b, sizeof big + 1);
    assert_int_equal(td_strbuf_printf(&b, "<%s", big), TD_OK);
    assert_int_equal(b.len, sizeof big);
    assert_int_equal(td_strbuf_puts(&b, ">"), TD_ETOOBIG);
    assert_int_equal(strlen(td_strbuf_str(&b)), sizeof big);
    td_strbuf_free(&b);
}

/* take hands the buffer to the caller and resets the builder for reuse. */
static void heap_take_and_reuse(void **state)
{
    td_strbuf b;
    char *p;
    size_t len = 0;
    (void)state;

    td_strbuf_heap(&b, 64);
    assert_null(td_strbuf_take(&b, &len));          /* nothing built yet */
    td_strbuf_printf(&b, "%s=%d", "n", 42);
    p = td_strbuf_take(&b, &len);
    assert_non_null(p);
    assert_string_equal(p, "n=42");
    assert_int_equal(len, 4);
    assert_string_equal(td_strbuf_str(&b), "");
    assert_int_equal(b.len, 0);
    free(p);

    assert_int_equal(td_strbuf_puts(&b, "again"), TD_OK);
    assert_string_equal(td_strbuf_str(&b), "again");
    td_strbuf_free(&b);
    td_strbuf_free(&b);                             /* twice is harmless */
    td_strbuf_free(NULL);
}

/* take and free leave a fixed builder's buffer alone: it is the caller's. */
static void fixed_take_and_free(void **state)
{
    char buf[16];
    td_strbuf b;
    size_t len = 7;
    (void)state;

    td_strbuf_fixed(&b, buf, sizeof buf);
    td_strbuf_puts(&b, "keep");
    assert_null(td_strbuf_take(&b, &len));
    assert_int_equal(len, 7);
    td_strbuf_free(&b);
    assert_string_equal(buf, "keep");
}

/* A heap builder without a ceiling refuses everything, rather than growing
 * without bound. */
static void heap_zero_max(void **state)
{
    td_strbuf b;
    (void)state;

    td_strbuf_heap(&b, 0);
    assert_int_equal(td_strbuf_puts(&b, "x"), TD_ETOOBIG);
    td_strbuf_free(&b);
}

/* A cut by max, like a cut by the room left, never ends in half a
 * character. */
static void append_cut_on_a_character(void **state)
{
    char buf[16];
    td_strbuf b;
    (void)state;

    td_strbuf_fixed(&b, buf, sizeof buf);
    assert_int_equal(td_strbuf_append_cut(&b, "报告报告", 4), TD_OK);      /* 3-byte characters */
    assert_string_equal(buf, "报");
    assert_int_equal(td_strbuf_append_cut(&b, "ab报告报告", 0), TD_OK);     /* room: 12 bytes */
    assert_string_equal(buf, "报ab报告报");
    assert_int_equal(b.len, 14);
}

/* A Chinese message that snprintf cut: the half character at its end
 * goes, whole ones and ASCII stay (issue #14: jansson refused such text
 * and /readyz lost its "store_writes", /status.json the failure event). */
static void utf8_whole_drops_half_a_character(void **state)
{
    const char *s = "失败: x\xe5\xa4\xb1";      /* "失败: x失" */
    char cut[64];
    (void)state;
    assert_int_equal(td_utf8_whole(s, strlen(s)), strlen(s));           /* whole */
    assert_int_equal(td_utf8_whole(s, strlen(s) - 1), strlen(s) - 3);   /* 2 of 3 bytes of 失 */
    assert_int_equal(td_utf8_whole(s, strlen(s) - 2), strlen(s) - 3);   /* its lead byte alone */
    assert_int_equal(td_utf8_whole(s, strlen(s) - 3), strlen(s) - 3);   /* ends on "x" */
    assert_int_equal(td_utf8_whole("", 0), 0);
    assert_int_equal(td_utf8_whole("ab", 2), 2);
    assert_int_equal(td_utf8_whole("\xf0\x9f\x92", 3), 0);              /* 3 of a 4-byte emoji */
    assert_int_equal(td_utf8_whole("\xf0\x9f\x92\xa1", 4), 4);          /* 💡 whole */
    /* As a bounded snprintf leaves it: 6 bytes of room for "失败" + NUL. */
    memcpy(cut, "失败", 5);
    cut[5] = '\0';
    assert_int_equal(td_utf8_whole(cut, strlen(cut)), 3);
}

/* A cut character anywhere in a message (a cut piece inside our own
 * words) is dropped, the rest kept; JSON takes the mended text. */
static void utf8_mend_anywhere(void **state)
{
    char s[64];
    json_t *j;
    (void)state;
    /* "应" cut to two bytes in the middle, a stray continuation, an
     * overlong '/', a surrogate, then a whole 4-byte character. */
    snprintf(s, sizeof s, "a\xE5\xBA: \x80x\xC0\xAFy\xED\xA0\x80z\xF0\x9F\x94\x91\xE7");
    assert_int_equal(td_utf8_mend(s, strlen(s)), strlen("a: xyz\xF0\x9F\x94\x91"));
    assert_string_equal(s, "a: xyz\xF0\x9F\x94\x91");
    snprintf(s, sizeof s, "应用\xE5\xBA");
    assert_non_null(j = td_json_text(s));
    assert_string_equal(json_string_value(j), "应用");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_exact_fit),
        cmocka_unit_test(fixed_one_byte_over),
        cmocka_unit_test(error_is_sticky),
        cmocka_unit_test(fixed_zero_size),
        cmocka_unit_test(heap_grows_to_exact_ceiling),
        cmocka_unit_test(heap_printf_big_piece),
        cmocka_unit_test(heap_take_and_reuse),
        cmocka_unit_test(fixed_take_and_free),
        cmocka_unit_test(heap_zero_max),
        cmocka_unit_test(append_cut_on_a_character),
        cmocka_unit_test(utf8_whole_drops_half_a_character),
        cmocka_unit_test(utf8_mend_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
