/* Unit tests for the S3 store's own pieces (store/s3.h): the store URL and
 * its parameters, the object URLs in both addressing styles, the payload
 * hash sent as x-amz-content-sha256, S3 error documents, lease bodies, and
 * index bodies with their records' versions.
 * The signature itself is libcurl's; the black-box test_s3.py has it
 * checked by AWS's signer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store/s3.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

static int parse(const char *spec, td__s3_url *u, char *err, size_t errlen)
{
    err[0] = '\0';
    return td__s3_parse_url(spec, u, err, errlen);
}

static void url_cos_defaults(void **state)
{
    td__s3_url u;
    char err[512];
    (void)state;
    assert_int_equal(parse("//tokens-1250000000/prod/a?endpoint=https://cos.ap-guangzhou.myqcloud.com", &u, err,
                           sizeof err), TD_OK);
    assert_string_equal(u.bucket, "tokens-1250000000");
    assert_string_equal(u.prefix, "prod/a");
    assert_string_equal(u.scheme, "https");
    assert_string_equal(u.host, "cos.ap-guangzhou.myqcloud.com");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.region, "ap-guangzhou"); /* from the endpoint's name */
    assert_int_equal(u.path_style, 0);              /* COS buckets since 2024: virtual-hosted only */
    assert_int_equal(u.revalidate_s, 1);
}

static void url_parameters(void **state)
{
    td__s3_url u;
    char err[512];
    (void)state;
    assert_int_equal(parse("//b-1/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1&path_style=1&revalidate=7",
                           &u, err, sizeof err), TD_OK);
    assert_string_equal(u.prefix, "");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 9000);
    assert_string_equal(u.region, "us-east-1");
    assert_int_equal(u.path_style, 1);
    assert_int_equal(u.revalidate_s, 7);
    /* AWS's own names give the region too. */
    assert_int_equal(parse("//bkt?endpoint=https://s3.eu-west-1.amazonaws.com/", &u, err, sizeof err), TD_OK);
    assert_string_equal(u.region, "eu-west-1");
    assert_int_equal(parse("//bkt?endpoint=https://s3.amazonaws.com", &u, err, sizeof err), TD_OK);
    assert_string_equal(u.region, "us-east-1");
    /* A credentials file: an absolute path, "" when none. */
    assert_string_equal(u.creds_file, "");
    assert_int_equal(parse("//bkt?endpoint=https://s3.amazonaws.com&credentials_file=%2Fetc%2Ftd%2Fs3.env", &u, err,
                           sizeof err), TD_OK);
    assert_string_equal(u.creds_file, "/etc/td/s3.env");
    assert_int_equal(parse("//bkt?endpoint=https://s3.amazonaws.com&credentials_file=s3.env", &u, err, sizeof err),
                     TD_EINVAL);
    assert_non_null(strstr(err, "TOKENDIST_S3_CREDENTIALS_FILE"));
    /* A trailing slash of the prefix is no part of it. */
    assert_int_equal(parse("//bkt/p/?endpoint=https://minio.local:9000&region=x1", &u, err, sizeof err), TD_OK);
    assert_string_equal(u.prefix, "p");
}

static void url_refused(void **state)
{
    td__s3_url u;
    char err[512];
    (void)state;
    static const char *const bad[] = {
        "bucket",                                                  /* no // */
        "//Bucket?endpoint=https://cos.ap-guangzhou.myqcloud.com", /* uppercase bucket */
        "//ab?endpoint=https://cos.ap-guangzhou.myqcloud.com",     /* too short */
        "//bkt/a//b?endpoint=https://cos.ap-guangzhou.myqcloud.com",
        "//bkt/a/../b?endpoint=https://cos.ap-guangzhou.myqcloud.com",
        "//bkt/./b?endpoint=https://cos.ap-guangzhou.myqcloud.com",
        "//bkt/a b?endpoint=https://cos.ap-guangzhou.myqcloud.com",
        "//bkt/a%2Fb?endpoint=https://cos.ap-guangzhou.myqcloud.com",
        "//bkt?endpoint=ftp://x.example&region=r",
        "//bkt?endpoint=https://u:p@x.example&region=r",             /* no credentials in the endpoint */
        "//bkt?endpoint=https://x.example/path&region=r",
        "//bkt?endpoint=https://x.example:0&region=r",
        "//bkt?endpoint=https://x.example&region=AP_X",
        "//bkt?endpoint=https://x.example&region=r&path_style=yes",
        "//bkt?endpoint=https://x.example&region=r&revalidate=0",
        "//bkt?endpoint=https://x.example&region=r&revalidate=3601",
        "//bkt?endpoint=https://x.example&region=r&prefix=p",       /* unknown parameter */
        "//bkt?endpoint=https://x.example&region",                  /* no value */
        "//bkt?endpoint=https://x.example&region=a%00b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (parse(bad[i], &u, err, sizeof err) != TD_EINVAL) fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* What to set is named. */
    assert_int_equal(parse("//bkt/p", &u, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "TOKENDIST_S3_ENDPOINT"));
    assert_int_equal(parse("//bkt/p?endpoint=https://storage.example", &u, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "TOKENDIST_S3_REGION"));
}

static void object_urls(void **state)
{
    td__s3_url u;
    char err[512], url[256];
    (void)state;
    assert_int_equal(parse("//tokens-1250000000/prod?endpoint=https://cos.ap-guangzhou.myqcloud.com", &u, err,
                           sizeof err), TD_OK);
    assert_int_equal(td__s3_object_url(&u, "tokens/default.json", url, sizeof url), TD_OK);
    assert_string_equal(url, "https://tokens-1250000000.cos.ap-guangzhou.myqcloud.com/prod/tokens/default.json");
    u.path_style = 1;
    u.port = 8443;
    assert_int_equal(td__s3_object_url(&u, "index.json", url, sizeof url), TD_OK);
    assert_string_equal(url, "https://cos.ap-guangzhou.myqcloud.com:8443/tokens-1250000000/prod/index.json");
    u.prefix[0] = '\0';
    assert_int_equal(td__s3_object_url(&u, "index.json", url, sizeof url), TD_OK);
    assert_string_equal(url, "https://cos.ap-guangzhou.myqcloud.com:8443/tokens-1250000000/index.json");
    assert_int_equal(td__s3_object_url(&u, "index.json", url, 20), TD_ETOOBIG);
}

/* x-amz-content-sha256 is the hex SHA-256 of the body; of nothing for a
 * GET, the value AWS's documentation gives for an empty payload. */
static void payload_hash(void **state)
{
    char hex[65];
    (void)state;
    td__s3_sha256_hex(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    td__s3_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void error_documents(void **state)
{
    char code[64], msg[128];
    static const char doc[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>"
        "<Message>The request signature we calculated does not match\x01</Message><RequestId>x</RequestId></Error>";
    (void)state;
    td__s3_error_of(doc, strlen(doc), code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "SignatureDoesNotMatch");
    assert_string_equal(msg, "The request signature we calculated does not match"); /* control bytes dropped */
    td__s3_error_of(doc, 60, code, sizeof code, msg, sizeof msg);                       /* cut: no </Code> */
    assert_string_equal(code, "");
    td__s3_error_of(NULL, 0, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "");
    td__s3_error_of(doc, strlen(doc), code, 8, msg, sizeof msg); /* bounded */
    assert_string_equal(code, "Signatu");
}

static void lease_bodies(void **state)
{
    char owner[64];
    int64_t exp = 0;
    (void)state;
    static const char good[] = "{\"owner\": \"h:1:ab\", \"expires\": 1700000000123}";
    assert_int_equal(td__s3_lease_parse(good, strlen(good), owner, sizeof owner, &exp), TD_OK);
    assert_string_equal(owner, "h:1:ab");
    assert_true(exp == 1700000000123LL);
    static const char *const bad[] = {"", "{", "[]", "{\"owner\": \"\", \"expires\": 1}", "{\"owner\": \"x\"}",
                                      "{\"owner\": 5, \"expires\": 1}", "{\"owner\": \"x\", \"expires\": \"1\"}",
                                      "{\"owner\": \"x\", \"owner\": \"y\", \"expires\": 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(td__s3_lease_parse(bad[i], strlen(bad[i]), owner, sizeof owner, &exp), TD_EINVAL);
    static const char longer[] = "{\"owner\": \"a-long-owner-id\", \"expires\": 1}";
    assert_int_equal(td__s3_lease_parse(longer, strlen(longer), owner, 8, &exp), TD_EINVAL);
}

/* An index's names with their records' versions: sorted, each once,
 * versions only where well-formed; an index without versions (an older
 * tokendist's) is still an index; anything else is spoiled. */
static void index_bodies(void **state)
{
    td__s3_index_entry *v;
    size_t n;
    int bad;
    (void)state;
    static const char good[] = "{\"names\": [\"b\", \"a\", \"c\", \"a\", 7, \"\"],"
                               " \"versions\": {\"a\": \"0123456789abcdef\", \"b\": \"XYZ\", \"c\": 5,"
                               " \"z\": \"00\"}}";
    assert_int_equal(td__s3_index_parse(good, strlen(good), &v, &n, &bad), TD_OK);
    assert_false(bad);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].name, "a");
    assert_string_equal(v[0].version, "0123456789abcdef");
    assert_string_equal(v[1].name, "b");
    assert_string_equal(v[1].version, ""); /* not hex */
    assert_string_equal(v[2].name, "c");
    assert_string_equal(v[2].version, ""); /* not a string */
    td__s3_index_free(v, n);

    static const char old[] = "{\"names\": [\"default\"]}";
    assert_int_equal(td__s3_index_parse(old, strlen(old), &v, &n, &bad), TD_OK);
    assert_false(bad);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].version, "");
    td__s3_index_free(v, n);

    static const char longer[] = "{\"names\": [\"a\"], \"versions\": {\"a\": \"0123456789abcdef0\"}}";
    assert_int_equal(td__s3_index_parse(longer, strlen(longer), &v, &n, &bad), TD_OK);
    assert_string_equal(v[0].version, "");
    td__s3_index_free(v, n);

    static const char *const spoiled[] = {"", "[1, 2", "[]", "{\"names\": \"a\"}", "{\"versions\": {}}"};
    for (size_t i = 0; i < sizeof spoiled / sizeof *spoiled; i++) {
        assert_int_equal(td__s3_index_parse(spoiled[i], strlen(spoiled[i]), &v, &n, &bad), TD_OK);
        assert_true(bad);
        assert_int_equal(n, 0);
        td__s3_index_free(v, n);
    }
}

/* A version is 16 hex digits of the ETag's hash: the same ETag, the same
 * version whoever computes it; no ETag, no version. */
static void record_versions(void **state)
{
    char a[TD_S3_VERSION_LEN], b[TD_S3_VERSION_LEN], c[TD_S3_VERSION_LEN];
    (void)state;
    td__s3_version_of("\"9b2cf535f27731c974343645a3985328\"", a);
    td__s3_version_of("\"9b2cf535f27731c974343645a3985328\"", b);
    td__s3_version_of("\"0b2cf535f27731c974343645a3985328\"", c);
    assert_int_equal(strlen(a), 16);
    assert_int_equal(strspn(a, "0123456789abcdef"), 16);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    td__s3_version_of("", a);
    assert_string_equal(a, "");
    td__s3_version_of(NULL, a);
    assert_string_equal(a, "");
}

/* A lookup over NAME=VALUE pairs, as getenv or a credentials file is. */
static const char *pairs_get(void *ud, const char *name)
{
    for (const char *const *p = ud; *p; p += 2)
        if (!strcmp(p[0], name)) return p[1];
    return NULL;
}

/* One family whole: AWS_* first, else TENCENTCLOUD_*; never an id of one
 * with the secret or token of the other. */
static void credentials_pick(void **state)
{
    td__s3_creds_ref c;
    char err[256];
    (void)state;
    const char *aws[] = {"AWS_ACCESS_KEY_ID", "AKID1", "AWS_SECRET_ACCESS_KEY", "s1",
                         "TENCENTCLOUD_SESSIONTOKEN", "scf-token", NULL};
    const char *scf[] = {"TENCENTCLOUD_SECRETID", "AKID2", "TENCENTCLOUD_SECRETKEY", "s2",
                         "TENCENTCLOUD_SESSIONTOKEN", "scf-token", "AWS_SESSION_TOKEN", "aws-token", NULL};
    const char *half[] = {"AWS_ACCESS_KEY_ID", "AKID1", "TENCENTCLOUD_SECRETKEY", "s2", NULL};
    const char *none[] = {"AWS_SESSION_TOKEN", "aws-token", "AWS_ACCESS_KEY_ID", "", NULL};

    assert_int_equal(td__s3_creds_pick(pairs_get, aws, &c, err, sizeof err), TD_OK);
    assert_string_equal(c.id, "AKID1");
    assert_string_equal(c.secret, "s1");
    assert_null(c.token); /* SCF's token is not AWS_*'s */
    assert_string_equal(c.vars[2], "AWS_SESSION_TOKEN");
    assert_int_equal(td__s3_creds_pick(pairs_get, scf, &c, err, sizeof err), TD_OK);
    assert_string_equal(c.id, "AKID2");
    assert_string_equal(c.token, "scf-token");
    assert_string_equal(c.vars[0], "TENCENTCLOUD_SECRETID");
    assert_int_equal(td__s3_creds_pick(pairs_get, half, &c, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    assert_int_equal(td__s3_creds_pick(pairs_get, none, &c, err, sizeof err), TD_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_cos_defaults),
        cmocka_unit_test(url_parameters),
        cmocka_unit_test(url_refused),
        cmocka_unit_test(object_urls),
        cmocka_unit_test(payload_hash),
        cmocka_unit_test(error_documents),
        cmocka_unit_test(lease_bodies),
        cmocka_unit_test(index_bodies),
        cmocka_unit_test(record_versions),
        cmocka_unit_test(credentials_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
