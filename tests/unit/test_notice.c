/* Unit tests for notice: the seed's message line for line, the alert and
 * recovery texts, and the custom-bot signature against vectors computed
 * here independently (a fixed one from Python's hmac, and OpenSSL's EVP_MAC
 * API rather than the HMAC() one notice.c uses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "clock.h"
#include "notice.h"
#include "tokendist.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* 2024-01-15 14:30:00 in Asia/Shanghai (06:30:00 UTC): the seed's example. */
#define GEN 1705300200
#define EXP (GEN + 7200)

static int setup(void **state)
{
    char err[128];
    (void)state;
    return td_clock_set_zone("Asia/Shanghai", err, sizeof err);
}

static void updated_is_the_seeds_message(void **state)
{
    char buf[TD_NOTICE_TEXT_MAX];
    (void)state;
    assert_int_equal(td_notice_updated_text(buf, sizeof buf, GEN, EXP, GEN,
                                            "https://your-api-gateway-url.tencentcloudapi.com/release/get-token"),
                     TD_OK);
    assert_string_equal(buf,
                        "🔑 客户端 Access Token 已更新\n"
                        "\n"
                        "📅 生成时间: 2024-01-15 14:30:00\n"
                        "⏰ 过期时间: 2024-01-15 16:30:00 (剩余 120 分钟)\n"
                        "🔗 腾讯云函数API: https://your-api-gateway-url.tencentcloudapi.com/release/get-token\n"
                        "\n"
                        "请客户端使用此API地址获取最新的access_token");
}

static void updated_without_url_and_rounding(void **state)
{
    char buf[TD_NOTICE_TEXT_MAX];
    (void)state;
    /* 7199 s (Feishu's "expire" a second later) still reads 120 minutes. */
    assert_int_equal(td_notice_updated_text(buf, sizeof buf, GEN, EXP, GEN + 1, NULL), TD_OK);
    assert_string_equal(buf,
                        "🔑 客户端 Access Token 已更新\n\n📅 生成时间: 2024-01-15 14:30:00\n"
                        "⏰ 过期时间: 2024-01-15 16:30:00 (剩余 120 分钟)\n\n"
                        "请客户端使用此API地址获取最新的access_token");
    assert_int_equal(td_notice_updated_text(buf, sizeof buf, GEN, EXP, EXP - 89, ""), TD_OK);
    assert_non_null(strstr(buf, "(剩余 1 分钟)"));
    assert_int_equal(td_notice_updated_text(buf, sizeof buf, GEN, EXP, EXP + 5, ""), TD_OK);
    assert_non_null(strstr(buf, "(剩余 0 分钟)"));
}

static void too_small_buffer_is_an_error(void **state)
{
    char buf[64];
    (void)state;
    assert_int_equal(td_notice_updated_text(buf, sizeof buf, GEN, EXP, GEN, "https://x"), TD_ETOOBIG);
    assert_int_equal(td_notice_alert_text(buf, sizeof buf, "default", 3, EXP, GEN, "boom", NULL), TD_ETOOBIG);
}

static void alert_and_recovery(void **state)
{
    char buf[TD_NOTICE_TEXT_MAX];
    (void)state;
    assert_int_equal(td_notice_alert_text(buf, sizeof buf, "default", 4, EXP, EXP - 540,
                                          "飞书 app_access_token 获取失败: 错误码 10014: app secret invalid", NULL),
                     TD_OK);
    assert_string_equal(buf,
                        "⚠️ 客户端 Access Token 刷新失败\n\n"
                        "❌ 已连续失败 4 次，最近一次: 飞书 app_access_token 获取失败: 错误码 10014: app secret invalid\n"
                        "⏰ 当前 token 过期时间: 2024-01-15 16:30:00 (剩余 9 分钟)\n\n"
                        "请检查飞书应用凭证 (FEISHU_APP_ID / FEISHU_APP_SECRET) 与网络，tokendist 会继续重试");
    assert_int_equal(td_notice_alert_text(buf, sizeof buf, NULL, 1, EXP, EXP + 1, NULL, ""), TD_OK);
    assert_non_null(strstr(buf, "已于 2024-01-15 16:30:00 过期"));
    assert_non_null(strstr(buf, "未知错误"));
    assert_int_equal(td_notice_alert_text(buf, sizeof buf, "default", 1, 0, GEN, "x", NULL), TD_OK);
    assert_non_null(strstr(buf, "目前没有可分发的 token"));
    /* Another platform's token: named, and its own credentials to check. */
    assert_int_equal(td_notice_alert_text(buf, sizeof buf, "wx", 1, 0, GEN, "微信返回错误 40125: invalid appsecret",
                                          "微信应用凭证 (TOKENDIST_WX_APP_ID / TOKENDIST_WX_APP_SECRET)"),
                     TD_OK);
    assert_non_null(strstr(buf, "⚠️ 客户端 Access Token 刷新失败 (token wx)\n"));
    assert_non_null(strstr(buf, "请检查微信应用凭证 (TOKENDIST_WX_APP_ID / TOKENDIST_WX_APP_SECRET) 与网络"));
    assert_null(strstr(buf, "飞书"));
    assert_int_equal(td_notice_recovered_text(buf, sizeof buf, "default", 5, GEN, EXP, GEN, 0), TD_OK);
    assert_string_equal(buf,
                        "✅ 客户端 Access Token 刷新已恢复\n\n连续失败 5 次后已重新获取 token\n"
                        "📅 生成时间: 2024-01-15 14:30:00\n⏰ 过期时间: 2024-01-15 16:30:00 (剩余 120 分钟)");
    assert_int_equal(td_notice_recovered_text(buf, sizeof buf, "wx", 5, GEN, EXP, GEN, 0), TD_OK);
    assert_non_null(strstr(buf, "✅ 客户端 Access Token 刷新已恢复 (token wx)\n"));
    /* After a handover it says what this instance knows: not that it
     * fetched a token again. */
    assert_int_equal(td_notice_recovered_text(buf, sizeof buf, "default", 2, GEN, EXP, GEN, 1), TD_OK);
    assert_string_equal(buf,
                        "✅ 客户端 Access Token 已恢复\n\n本实例连续刷新失败 2 次后，刷新租约已由另一实例接管，"
                        "分发中的 token 有效\n"
                        "📅 生成时间: 2024-01-15 14:30:00\n⏰ 过期时间: 2024-01-15 16:30:00 (剩余 120 分钟)");
}

/* base64(HMAC-SHA256(key "<ts>\n<secret>", "")) through EVP_MAC. */
static void evp_mac_sign(long long ts, const char *secret, char out[64])
{
    char key[256];
    unsigned char mac[64];
    size_t maclen = 0;
    int n = snprintf(key, sizeof key, "%lld\n%s", ts, secret);
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(m);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_construct_end()};

    assert_int_equal(EVP_MAC_init(c, (unsigned char *)key, (size_t)n, p), 1);
    assert_int_equal(EVP_MAC_update(c, (const unsigned char *)"", 0), 1);
    assert_int_equal(EVP_MAC_final(c, mac, &maclen, sizeof mac), 1);
    EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
}

static void webhook_sign_vectors(void **state)
{
    char got[64], want[64];
    (void)state;
    /* python3: base64(hmac.new(b"1599360473\nSECc0ffee", b"", sha256).digest()) */
    assert_int_equal(td_notice_webhook_sign(1599360473, "SECc0ffee", got, sizeof got), TD_OK);
    assert_string_equal(got, "8r2ekYcTDYqWNeIfdVtNTBPNRX7wzUeScn5+qNoUJEk=");
    for (long long ts = 1700000000; ts < 1700000000 + 5; ts++) {
        assert_int_equal(td_notice_webhook_sign(ts, "another secret ✓", got, sizeof got), TD_OK);
        evp_mac_sign(ts, "another secret ✓", want);
        assert_string_equal(got, want);
    }
    assert_int_equal(td_notice_webhook_sign(1, "s", got, 10), TD_ETOOBIG);
}

static void nothing_configured(void **state)
{
    td_notice n = {0};
    (void)state;
    assert_false(td_notice_enabled(&n));
    n.chat_id = "";
    assert_false(td_notice_enabled(&n));
    n.webhook_url = "https://open.feishu.cn/open-apis/bot/v2/hook/x";
    assert_true(td_notice_enabled(&n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(updated_is_the_seeds_message),
        cmocka_unit_test(updated_without_url_and_rounding),
        cmocka_unit_test(too_small_buffer_is_an_error),
        cmocka_unit_test(alert_and_recovery),
        cmocka_unit_test(webhook_sign_vectors),
        cmocka_unit_test(nothing_configured),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
