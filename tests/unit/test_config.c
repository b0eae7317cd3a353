/* Unit tests for config: the table, precedence, env-file syntax, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "tokendist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(td_config *c, unsigned cmd, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    argv[argc++] = "serve";
    for (char *a; (a = va_arg(ap, char *));) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return td_config_load(c, cmd, argc, argv, err, errlen);
}

static void test_defaults(void **state)
{
    td_config c;
    char err[256];
    (void)state;
    unsetenv("TOKENDIST_LISTEN");
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, NULL), TD_OK);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_string_equal(c.store, "sqlite:./var/tokendist.db");
    assert_null(c.cors_origin); /* "*" or none, decided by the listener (api.c) */
    assert_int_equal(c.body_limit, 65536);
    assert_int_equal(c.push_keys.n, 0);
    assert_int_equal(c.tencent_cloud_enabled, 1);
    assert_string_equal(c.record_source, "财联社自动化系统");
    td_config_free(&c);
}

static void test_precedence_and_lists(void **state)
{
    td_config c;
    char err[256];
    (void)state;
    setenv("TOKENDIST_LISTEN", "127.0.0.1:1", 1);
    setenv("TOKENDIST_PUSH_KEYS", " a , b,,c ", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, NULL), TD_OK);
    assert_string_equal(c.listen, "127.0.0.1:1");
    assert_int_equal(c.push_keys.n, 3);
    assert_string_equal(c.push_keys.v[0], "a");
    assert_string_equal(c.push_keys.v[2], "c");
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--listen=127.0.0.1:2", "--push-key", "x",
                          "--push-key", "y", NULL), TD_OK);
    assert_string_equal(c.listen, "127.0.0.1:2");
    assert_int_equal(c.push_keys.n, 2); /* flags replace the environment, then append */
    assert_string_equal(c.push_keys.v[1], "y");
    td_config_free(&c);
    unsetenv("TOKENDIST_LISTEN");
    unsetenv("TOKENDIST_PUSH_KEYS");
}

static void test_second_env_name(void **state)
{
    td_config c;
    char err[256];
    const char *argv[] = {"get", NULL};
    (void)state;
    setenv("TENCENT_CLOUD_API_URL", "http://seed/release/get-token", 1);
    setenv("TOKENDIST_URLS", "", 1); /* set but empty: the seed's name still counts */
    assert_int_equal(td_config_load(&c, TD_CMD_GET, 1, (char **)argv, err, sizeof err), TD_OK);
    assert_int_equal(c.urls.n, 1);
    assert_string_equal(c.urls.v[0], "http://seed/release/get-token");
    td_config_free(&c);
    setenv("TOKENDIST_URLS", "http://a,http://b", 1);
    assert_int_equal(td_config_load(&c, TD_CMD_GET, 1, (char **)argv, err, sizeof err), TD_OK);
    assert_int_equal(c.urls.n, 2);
    td_config_free(&c);
    unsetenv("TOKENDIST_URLS");
    unsetenv("TENCENT_CLOUD_API_URL");
}

static void test_bools_ints_and_errors(void **state)
{
    td_config c;
    char err[256];
    (void)state;
    setenv("TENCENT_CLOUD_ENABLED", "False", 1); /* Python's spelling, as in the seed */
    assert_int_equal(load(&c, TD_CMD_REFRESH, err, sizeof err, "--once", NULL), TD_OK);
    assert_int_equal(c.tencent_cloud_enabled, 0);
    assert_int_equal(c.once, 1);
    td_config_free(&c);
    setenv("TENCENT_CLOUD_ENABLED", "maybe", 1);
    assert_int_equal(load(&c, TD_CMD_REFRESH, err, sizeof err, NULL), TD_EINVAL);
    assert_non_null(strstr(err, "环境变量 TENCENT_CLOUD_ENABLED 的值无效: 'maybe' 不是 true 或 false"));
    td_config_free(&c);
    unsetenv("TENCENT_CLOUD_ENABLED");
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--body-limit", "10", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "选项 --body-limit 的值无效: '10' 不是 1024 到 1048576 之间的整数"));
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--once", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "--once 不是 serve 的选项，它属于 tokendist refresh")); /* not a serve setting */
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_REFRESH, err, sizeof err, "--no-once", NULL), TD_OK);
    assert_int_equal(c.once, 0);
    td_config_free(&c);
}

static int collect(void *ud, int lineno, const char *k, const char *v)
{
    (void)lineno;
    char *out = ud;
    strcat(out, k);
    strcat(out, "=");
    strcat(out, v);
    strcat(out, ";");
    return TD_OK;
}

static void test_envfile_syntax(void **state)
{
    char out[1024] = "", err[128];
    const char *text = "# c\n; c2\n\n  export A=1\nB = two words  \r\nC=\"q \\\" \\n x\"\nD='lit \\n'\nE=\n";
    (void)state;
    assert_int_equal(td_config_parse_envfile(text, strlen(text), collect, out, err, sizeof err), TD_OK);
    assert_string_equal(out, "A=1;B=two words;C=q \" \n x;D=lit \\n;E=;");
    out[0] = '\0';
    assert_int_equal(td_config_parse_envfile("X=\"open\n", 8, collect, out, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "第 1 行: X 的值缺少结尾的 \""));
    assert_int_equal(td_config_parse_envfile("ok=1\n9bad=2\n", 12, collect, out, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "第 2 行"));
}

static void test_envfile_below_environment(void **state)
{
    char path[] = "/tmp/td-config-test-XXXXXX", err[256];
    int fd = mkstemp(path);
    td_config c;
    const char *text = "TOKENDIST_LISTEN=127.0.0.1:5\nTOKENDIST_CORS_ORIGIN=file\n";
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("TOKENDIST_CORS_ORIGIN", "env", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--env-file", path, NULL), TD_OK);
    assert_string_equal(c.listen, "127.0.0.1:5");
    assert_string_equal(c.cors_origin, "env");
    td_config_free(&c);
    unsetenv("TOKENDIST_CORS_ORIGIN");
    unlink(path);
}

static void test_print_redacts_secrets(void **state)
{
    td_config c;
    char err[256], *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--push-key", "super-secret-push-key-123",
                          "--store", "redis://:redis-pass-xyz@127.0.0.1:6379/0", NULL), TD_OK);
    td_config_print(&c, TD_CMD_SERVE, f);
    fclose(f);
    assert_null(strstr(buf, "super-secret-push-key-123"));
    /* sha256("super-secret-push-key-123"), first 8 hex digits */
    assert_non_null(strstr(buf, "TOKENDIST_PUSH_KEYS=sha256:594a6ec9\n"));
    assert_null(strstr(buf, "super"));
    assert_null(strstr(buf, "redis-pass-xyz"));
    assert_non_null(strstr(buf, "TOKENDIST_STORE=redis://***@127.0.0.1:6379/0\n"));
    free(buf);
    td_config_free(&c);
}

static void test_checked_lists(void **state)
{
    td_config c;
    char err[256];
    (void)state;
    setenv("TOKENDIST_TRUSTED_PROXIES", "127.0.0.1/32, ::1", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--allowed-host", "tokens.example.com", NULL),
                     TD_OK);
    assert_int_equal(c.trusted_proxies.n, 2);
    assert_string_equal(c.trusted_proxies.v[1], "::1");
    assert_int_equal(c.allowed_hosts.n, 1);
    assert_int_equal(c.max_clock_skew, 300);
    td_config_free(&c);
    /* A bad value stops the load, named with where it came from. */
    setenv("TOKENDIST_TRUSTED_PROXIES", "127.0.0.1/32,10.0.0.0/33", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, NULL), TD_EINVAL);
    assert_non_null(strstr(err, "环境变量 TOKENDIST_TRUSTED_PROXIES 的值无效: '10.0.0.0/33'"));
    td_config_free(&c);
    unsetenv("TOKENDIST_TRUSTED_PROXIES");
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--trusted-proxy", "proxy.lan", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "选项 --trusted-proxy 的值无效: 'proxy.lan'"));
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--allowed-host", "tokens.example.com:443", NULL),
                     TD_EINVAL);
    assert_non_null(strstr(err, "选项 --allowed-host 的值无效: 'tokens.example.com:443'"));
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--max-clock-skew", "-1", NULL), TD_EINVAL);
    td_config_free(&c);
}

/* The S3 settings reach the store as parameters of its URL; the URL's own
 * win, defaults add nothing, other stores are left alone. */
static void test_s3_settings_in_store_url(void **state)
{
    td_config c;
    char err[256];
    (void)state;
    setenv("TOKENDIST_STORE", "s3://tokens-1250000000/prod", 1);
    setenv("TOKENDIST_S3_ENDPOINT", "https://cos.ap-guangzhou.myqcloud.com", 1);
    setenv("TOKENDIST_S3_REGION", "ap-guangzhou", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, NULL), TD_OK);
    assert_string_equal(c.store, "s3://tokens-1250000000/prod?endpoint=https://cos.ap-guangzhou.myqcloud.com"
                                 "&region=ap-guangzhou");
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--s3-path-style", "--s3-revalidate", "5",
                          "--store", "s3://b-1/p?region=eu-west-1", NULL), TD_OK);
    assert_string_equal(c.store, "s3://b-1/p?region=eu-west-1&endpoint=https://cos.ap-guangzhou.myqcloud.com"
                                 "&path_style=1&revalidate=5");
    td_config_free(&c);
    /* Escaped, not a new parameter -- and then refused at load, as an
     * endpoint with a path. */
    setenv("TOKENDIST_S3_ENDPOINT", "http://h:1/?&#", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--store", "s3://b-1", NULL), TD_EINVAL);
    assert_string_equal(c.store, "s3://b-1?endpoint=http://h:1/%3F%26%23&region=ap-guangzhou");
    assert_non_null(strstr(err, "TOKENDIST_S3_"));
    td_config_free(&c);
    unsetenv("TOKENDIST_S3_ENDPOINT");
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--store", "s3://b-1", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "TOKENDIST_S3_ENDPOINT"));
    td_config_free(&c);
    setenv("TOKENDIST_S3_ENDPOINT", "https://cos.ap-guangzhou.myqcloud.com", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--store", "sqlite:/tmp/x.db", NULL), TD_OK);
    assert_string_equal(c.store, "sqlite:/tmp/x.db");
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--s3-revalidate", "0", NULL), TD_EINVAL);
    td_config_free(&c);
    unsetenv("TOKENDIST_STORE");
    unsetenv("TOKENDIST_S3_ENDPOINT");
    unsetenv("TOKENDIST_S3_REGION");
}

/* A byte-order mark (Notepad's UTF-8) is not part of the first key; CRLF
 * line ends are not part of the values. */
static void test_envfile_bom_and_crlf(void **state)
{
    char out[256] = "", err[256];
    const char text[] = "\xEF\xBB\xBF" "A=1\r\nB=\"two\"\r\n# c\r\nC=3";
    (void)state;
    assert_int_equal(td_config_parse_envfile(text, sizeof text - 1, collect, out, err, sizeof err), TD_OK);
    assert_string_equal(out, "A=1;B=two;C=3;");
}

/* One rule for every source: an empty value is as if it were not given. */
static void test_empty_is_unset(void **state)
{
    td_config c;
    char err[256];
    (void)state;
    setenv("TOKENDIST_LISTEN", "", 1);
    setenv("TENCENT_CLOUD_ENABLED", "", 1);
    setenv("TOKENDIST_HISTORY", "", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--cors-origin=", NULL), TD_OK);
    assert_string_equal(c.listen, "127.0.0.1:9000");
    assert_int_equal(c.tencent_cloud_enabled, 1);
    assert_int_equal(c.history, 20);
    assert_null(c.cors_origin);
    td_config_free(&c);
    unsetenv("TOKENDIST_LISTEN");
    unsetenv("TENCENT_CLOUD_ENABLED");
    unsetenv("TOKENDIST_HISTORY");
}

/* Values whose form is known are checked at load, named by their source. */
static void test_checked_values(void **state)
{
    td_config c;
    char err[512];
    (void)state;
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--listen", "abc", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "选项 --listen 的值无效: 'abc' 不是 HOST:PORT"));
    td_config_free(&c);
    setenv("TOKENDIST_LISTEN", "127.0.0.1:65536", 1);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, NULL), TD_EINVAL);
    assert_non_null(strstr(err, "环境变量 TOKENDIST_LISTEN"));
    td_config_free(&c);
    unsetenv("TOKENDIST_LISTEN");
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--store", "/tmp/x.db", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "sqlite:/tmp/x.db"));
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--store", "redis://:pw-secret-1@h:port/0", NULL),
                     TD_EINVAL);
    assert_non_null(strstr(err, "选项 --store"));
    assert_null(strstr(err, "pw-secret-1"));
    td_config_free(&c);
    assert_int_equal(load(&c, TD_CMD_GET, err, sizeof err, "--field", "refresh_token", NULL), TD_EINVAL);
    td_config_free(&c);
    /* --help is answered whatever else is wrong. */
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--listen", "abc", "--help", NULL), 1);
    td_config_free(&c);
}

static void test_near_misses(void **state)
{
    td_config c;
    char err[512];
    (void)state;
    assert_int_equal(td_config_distance("FEISHU_APP_SECERT", 17, "FEISHU_APP_SECRET", 17), 1);
    assert_int_equal(td_config_distance("lisen", 5, "listen", 6), 1);
    assert_int_equal(td_config_distance("abc", 3, "xyz", 3), 3);
    assert_int_equal(load(&c, TD_CMD_SERVE, err, sizeof err, "--lisen", "x", NULL), TD_EINVAL);
    assert_non_null(strstr(err, "未知选项 --lisen，你是不是想写 --listen？"));
    td_config_free(&c);
    setenv("FEISHU_APP_SECERT", "value-never-shown", 1);
    setenv("GITEE_OWNR", "x", 1);
    setenv("FEISHU_SOMETHING_ELSE_ENTIRELY", "x", 1);
    assert_int_equal(load(&c, TD_CMD_REFRESH, err, sizeof err, NULL), TD_OK);
    assert_int_equal(c.warnings.n, 2);
    for (size_t i = 0; i < c.warnings.n; i++) assert_null(strstr(c.warnings.v[i], "value-never-shown"));
    assert_non_null(strstr(c.warnings.v[0], "你是不是想写"));
    td_config_free(&c);
    unsetenv("FEISHU_APP_SECERT");
    unsetenv("GITEE_OWNR");
    unsetenv("FEISHU_SOMETHING_ELSE_ENTIRELY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence_and_lists),
        cmocka_unit_test(test_second_env_name),
        cmocka_unit_test(test_bools_ints_and_errors),
        cmocka_unit_test(test_envfile_syntax),
        cmocka_unit_test(test_envfile_below_environment),
        cmocka_unit_test(test_print_redacts_secrets),
        cmocka_unit_test(test_checked_lists),
        cmocka_unit_test(test_s3_settings_in_store_url),
        cmocka_unit_test(test_envfile_bom_and_crlf),
        cmocka_unit_test(test_empty_is_unset),
        cmocka_unit_test(test_checked_values),
        cmocka_unit_test(test_near_misses),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
