/* Unit tests for status, the renderer of GET /status: what comes from
 * elsewhere (an upstream's error message, another tool's record) is text,
 * never markup; the page's Content-Security-Policy allows exactly the
 * script and style the page carries; a page with read keys carries no
 * facts; the badge follows the platform's renewal rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "status.h"
#include "tokendist.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1705301400LL

/* One token whose record has `left` seconds, on a platform renewing
 * `window` seconds before the expiry, and whose refresher saw `error`. */
static json_t *facts(long long left, long long window, const char *error)
{
    json_t *f = json_pack("{s:I, s:s, s:s, s:s, s:[], s:i, s:[]}", "now", (json_int_t)NOW, "time",
                          "2024-01-15 14:50:00", "version", TD_VERSION, "store", "ok", "tokens",
                          "unreadable_records", 0, "unreadable");
    json_t *tok = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "name", "default", "kind", "token", "provider",
                            "feishu", "provider_label", "飞书", "renewal", "in_window", "renew_window",
                            (json_int_t)window);
    json_object_set_new(tok, "record",
                        json_pack("{s:I, s:s, s:I, s:s, s:s}", "generated_timestamp", (json_int_t)(NOW + left - 7200),
                                  "generated_time", "2024-01-15 12:30:00", "expire_timestamp",
                                  (json_int_t)(NOW + left), "expire_time", "2024-01-15 14:30:00",
                                  "access_token_fingerprint", "t-g10…PB"));
    json_object_set_new(tok, "refresh",
                        json_pack("{s:b, s:s, s:i, s:i, s:i, s:I, s:s, s:[], s:[{s:s, s:I, s:I, s:i, s:s}]}",
                                  "lease_held", 1, "lease_holder", "web1:1:<b>x</b>", "cycles", 3, "forced", 0,
                                  "failures_in_a_row", 2, "last_failure_timestamp", (json_int_t)(NOW - 5),
                                  "last_error", error, "sinks", "events", "kind", "failure", "first_timestamp",
                                  (json_int_t)(NOW - 60), "timestamp", (json_int_t)(NOW - 5), "count", 2, "text",
                                  error));
    json_object_set_new(tok, "history", json_array());
    json_array_append_new(json_object_get(f, "tokens"), tok);
    return f;
}

static void outside_text_is_escaped(void **state)
{
    json_t *f = facts(4000, 1800, "<script>alert(1)</script> & \"x\" 'y'");
    size_t len;
    char *html = td_status_fragment(f, &len);
    (void)state;

    assert_non_null(html);
    assert_int_equal(strlen(html), len);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<b>x</b>"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;"));
    assert_non_null(strstr(html, "web1:1:&lt;b&gt;x&lt;/b&gt;"));
    assert_non_null(strstr(html, "t-g10…PB"));
    free(html);
    json_decref(f);
}

/* The text between open and close in page, hashed as CSP does. */
static void hash_between(const char *page, const char *open, const char *close, char out[64])
{
    const char *a = strstr(page, open), *b;
    unsigned char d[SHA256_DIGEST_LENGTH];

    assert_non_null(a);
    a += strlen(open);
    assert_non_null(b = strstr(a, close));
    SHA256((const unsigned char *)a, (size_t)(b - a), d);
    EVP_EncodeBlock((unsigned char *)out, d, sizeof d);
}

static void csp_allows_exactly_the_page_script_and_style(void **state)
{
    json_t *f = facts(4000, 1800, "boom");
    size_t len;
    char *page = td_status_page(f, 0, &len), h[64], want[120];
    const char *csp = td_status_csp();
    (void)state;

    assert_non_null(page);
    hash_between(page, "<script>", "</script>", h);
    snprintf(want, sizeof want, "script-src 'sha256-%s';", h);
    assert_non_null(strstr(csp, want));
    hash_between(page, "<style>", "</style>", h);
    snprintf(want, sizeof want, "style-src 'sha256-%s';", h);
    assert_non_null(strstr(csp, want));
    assert_null(strstr(csp, "unsafe"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    /* Without JavaScript it reloads itself. */
    assert_non_null(strstr(page, "<noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>"));
    free(page);
    json_decref(f);
}

static void keyed_page_has_no_facts(void **state)
{
    size_t len;
    char *page = td_status_page(NULL, 1, &len);
    (void)state;

    assert_non_null(page);
    assert_non_null(strstr(page, "data-keyed=\"1\""));
    assert_non_null(strstr(page, "需要启用 JavaScript"));
    assert_null(strstr(page, "http-equiv=\"refresh\""));   /* a reload would drop the typed key */
    assert_null(strstr(page, "class=\"card\""));
    /* The key field has no name: a form sent without the script carries no key. */
    assert_non_null(strstr(page, "<input id=\"key\" type=\"password\""));
    assert_null(strstr(page, "name=\"key\""));
    free(page);
}

static char *badge_of(long long left, long long window)
{
    json_t *f = facts(left, window, "e");
    size_t len;
    char *html;

    json_object_set_new(json_object_get(json_array_get(json_object_get(f, "tokens"), 0), "refresh"), "failures_in_a_row",
                        json_integer(0));
    html = td_status_fragment(f, &len);
    json_decref(f);
    return html;
}

/* "About to expire" under ten minutes, once the renewal is a minute late
 * by the platform's own rule. */
static void badge_follows_the_renewal_rule(void **state)
{
    char *a = badge_of(500, 1800), *b = badge_of(500, 300), *c = badge_of(200, 300), *d = badge_of(1000, 1800),
         *e = badge_of(5000, 1800), *g = badge_of(-5, 1800);
    (void)state;

    assert_non_null(strstr(a, "⏰ 即将过期"));     /* Feishu, 500 s: twenty minutes late */
    assert_non_null(strstr(b, "✅ 正常"));          /* WeChat, 500 s: renewed at 300 */
    assert_non_null(strstr(c, "⏰ 即将过期"));     /* WeChat, 200 s: late */
    assert_non_null(strstr(d, "🔄 换发窗口内"));
    assert_non_null(strstr(e, "✅ 正常"));
    assert_non_null(strstr(g, "⛔ 已过期"));
    free(a), free(b), free(c), free(d), free(e), free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outside_text_is_escaped),
        cmocka_unit_test(csp_allows_exactly_the_page_script_and_style),
        cmocka_unit_test(keyed_page_has_no_facts),
        cmocka_unit_test(badge_follows_the_renewal_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
