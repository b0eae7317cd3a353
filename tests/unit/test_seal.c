/* Unit tests for the sealed Gitee copy (seal.c): the test vector
 * tests/vectors/sealed-v1.json reproduced byte for byte and opened; keys
 * parsed strictly and never shown; every way an envelope can be wrong
 * (a flipped byte in ct, nonce, tag and each clear field, an unknown kid,
 * no key, another name, another version) refused with its code; key
 * rotation; plaintext taken only without a key. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "seal.h"
#include "tokendist.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *vec;     /* the vector */

static const char *vs(const char *k) { return json_string_value(json_object_get(vec, k)); }

static int load_vector(void **state)
{
    json_error_t e;
    (void)state;
    vec = json_load_file(TD_SOURCE_DIR "/tests/vectors/sealed-v1.json", 0, &e);
    if (!vec) fprintf(stderr, "sealed-v1.json: %s (line %d)\n", e.text, e.line);
    return vec ? 0 : -1;
}

static int free_vector(void **state)
{
    (void)state;
    json_decref(vec);
    return 0;
}

static td_seal_keys keys_of(const char *list)
{
    td_seal_keys k;
    char err[256];
    assert_int_equal(td_seal_keys_parse(&k, list, err, sizeof err), TD_OK);
    return k;
}

/* The envelope text with field f replaced by the JSON value v (text). */
static char *with_field(const char *text, const char *f, json_t *v)
{
    json_t *o = json_loads(text, 0, NULL);
    char *out;
    json_object_set_new(o, f, v);
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return out;
}

static int unwrap(const td_seal_keys *k, const char *name, const char *text, char *err, size_t errlen)
{
    char *plain = NULL;
    size_t len = 0;
    int rc = td_seal_unwrap(k, name, text, strlen(text), &plain, &len, err, errlen);
    free(plain);
    return rc;
}

static void vector_sealed_byte_for_byte(void **state)
{
    td_seal_keys k = keys_of(vs("key"));
    unsigned char nonce[TD_SEAL_NONCE_LEN];
    char *out = NULL, err[256];
    size_t len = 0;
    const char *plain = vs("plaintext");

    (void)state;
    assert_int_equal(k.n, 1);
    assert_string_equal(k.v[0].kid, vs("kid"));
    for (int i = 0; i < TD_SEAL_NONCE_LEN; i++) nonce[i] = (unsigned char)(0xf0 + i);  /* the vector's */
    assert_int_equal(td__seal_wrap_nonce(&k, vs("name"), json_integer_value(json_object_get(vec, "generated_timestamp")),
                                         plain, strlen(plain), nonce, &out, &len, err, sizeof err),
                     TD_OK);
    assert_string_equal(out, vs("file"));
    assert_int_equal(len, strlen(vs("file")));
    free(out);
}

static void vector_opens(void **state)
{
    td_seal_keys k = keys_of(vs("key"));
    char *plain = NULL, err[256];
    size_t len = 0;
    int64_t gen = 0;
    char kid[TD_SEAL_KID_LEN];

    (void)state;
    assert_int_equal(td_seal_unwrap(&k, "default", vs("file"), strlen(vs("file")), &plain, &len, err, sizeof err),
                     TD_OK);
    assert_string_equal(plain, vs("plaintext"));
    assert_int_equal(len, strlen(vs("plaintext")));
    free(plain);
    assert_int_equal(td_seal_peek(vs("file"), strlen(vs("file")), &gen, kid, err, sizeof err), TD_OK);
    assert_int_equal(gen, 1700000000);
    assert_string_equal(kid, vs("kid"));
    {
        /* Saved again by an editor that puts a UTF-8 BOM in front: the same
         * envelope, as the Node and Python clients read it. */
        char *bom = malloc(strlen(vs("file")) + 4);
        memcpy(bom, "\xef\xbb\xbf", 3);
        strcpy(bom + 3, vs("file"));
        gen = 0;
        assert_int_equal(td_seal_peek(bom, strlen(bom), &gen, kid, err, sizeof err), TD_OK);
        assert_int_equal(gen, 1700000000);
        assert_int_equal(td_seal_unwrap(&k, "default", bom, strlen(bom), &plain, &len, err, sizeof err), TD_OK);
        assert_string_equal(plain, vs("plaintext"));
        free(plain);
        free(bom);
    }
}

static void random_nonce_each_time(void **state)
{
    td_seal_keys k = keys_of(vs("key"));
    char *a = NULL, *b = NULL, err[256];
    size_t la, lb;

    (void)state;
    assert_int_equal(td_seal_wrap(&k, "default", 5, "{}", 2, &a, &la, err, sizeof err), TD_OK);
    assert_int_equal(td_seal_wrap(&k, "default", 5, "{}", 2, &b, &lb, err, sizeof err), TD_OK);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void keys_parsed_strictly_and_never_shown(void **state)
{
    static const char *bad[] = {
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",          /* no padding */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",        /* too long */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-=",         /* URL-safe letter */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",         /* not canonical: stray low bits */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",         /* 31 bytes */
        "AAECAwQFBgcICQoLDA0O DxAREhMUFRYXGBkaGxwdHh8=",        /* a blank inside */
        "not-a-key",
    };
    td_seal_keys k;
    char err[256], list[256];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(list, sizeof list, "%s, %s", vs("key"), bad[i]);
        assert_int_equal(td_seal_keys_parse(&k, list, err, sizeof err), TD_EINVAL);
        assert_non_null(strstr(err, "第 2 个密钥无效"));
        assert_null(strstr(err, bad[i]));
        assert_null(strstr(err, vs("key")));
        assert_int_equal(k.n, 0);
        assert_int_equal(td_seal_key_check(bad[i], err, sizeof err), TD_EINVAL);
    }
    assert_int_equal(td_seal_key_check(vs("key"), err, sizeof err), TD_OK);
    /* blanks around, empty items and none at all */
    snprintf(list, sizeof list, " %s ,, \t", vs("key"));
    assert_int_equal(td_seal_keys_parse(&k, list, err, sizeof err), TD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(td_seal_keys_parse(&k, "", err, sizeof err), TD_OK);
    assert_int_equal(k.n, 0);
    assert_int_equal(td_seal_keys_parse(&k, NULL, err, sizeof err), TD_OK);
    assert_int_equal(k.n, 0);
}

static void keygen_gives_a_valid_new_key(void **state)
{
    char a[TD_SEAL_KEY_B64], b[TD_SEAL_KEY_B64], err[256];

    (void)state;
    assert_int_equal(td_seal_keygen(a, err, sizeof err), TD_OK);
    assert_int_equal(td_seal_keygen(b, err, sizeof err), TD_OK);
    assert_int_equal(strlen(a), 44);
    assert_string_not_equal(a, b);
    assert_int_equal(td_seal_key_check(a, err, sizeof err), TD_OK);
}

/* Standard base64 with padding into buf; the decoded length. */
static int b64d(unsigned char *buf, const char *s)
{
    size_t n = strlen(s);
    int len = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    return len - (n && s[n - 1] == '=') - (n > 1 && s[n - 2] == '=');
}

/* Flips one bit of byte i of the base64 field f's decoded value. */
static char *flip(const char *text, const char *f, size_t i)
{
    json_t *o = json_loads(text, 0, NULL);
    const char *s = json_string_value(json_object_get(o, f));
    unsigned char buf[4096];
    char enc[6000], *out;
    int n = b64d(buf, s);

    buf[i] ^= 0x01;
    EVP_EncodeBlock((unsigned char *)enc, buf, n);
    json_object_set_new(o, f, json_string(enc));
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return out;
}

static void every_change_refused(void **state)
{
    td_seal_keys k = keys_of(vs("key"));
    const char *file = vs("file");
    unsigned char raw[4096];
    size_t ctlen = (size_t)b64d(raw, json_string_value(json_object_get(json_object_get(vec, "envelope"), "ct")));
    char err[512];
    struct { const char *what; char *text; int rc; const char *says; } cases[] = {
        {"ct first byte", flip(file, "ct", 0), TD_EINVAL, "未通过校验"},
        {"ct middle", flip(file, "ct", 100), TD_EINVAL, "未通过校验"},
        {"tag last byte", flip(file, "ct", ctlen - 1), TD_EINVAL, "未通过校验"},
        {"tag first byte", flip(file, "ct", ctlen - 16), TD_EINVAL, "未通过校验"},
        {"nonce", flip(file, "nonce", 5), TD_EINVAL, "未通过校验"},
        {"generated_timestamp", with_field(file, "generated_timestamp", json_integer(1700000001)), TD_EINVAL, "未通过校验"},
        {"name", with_field(file, "name", json_string("defaulu")), TD_EINVAL, "属于 token 'defaulu'，不是 'default'"},
        {"kid", with_field(file, "kid", json_string("630dcd2966c43367")), TD_ESHAREKEY, "另一把共享密钥"},
        {"alg", with_field(file, "alg", json_string("A128GCM")), TD_EINVAL, "算法 A128GCM 不受支持"},
        {"v", with_field(file, "v", json_integer(2)), TD_EINVAL, "v=2 不受支持"},
        {"nonce not base64", with_field(file, "nonce", json_string("8PHy8/T19vf4+fr-")), TD_EINVAL, "nonce 无效"},
        {"nonce short", with_field(file, "nonce", json_string("8PHy8/T19vf4")), TD_EINVAL, "nonce 无效"},
        {"ct missing", with_field(file, "ct", json_null()), TD_EINVAL, "字段 ct 无效"},
        {"ct only a tag's worth", with_field(file, "ct", json_string("AAAAAAAAAAAAAAAAAAAA")), TD_EINVAL, "ct 无效"},
        {"kid not hex", with_field(file, "kid", json_string("630DCD2966C43366")), TD_EINVAL, "字段 kid 无效"},
        {"time negative", with_field(file, "generated_timestamp", json_integer(-1)), TD_EINVAL, "generated_timestamp 无效"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        err[0] = '\0';
        assert_non_null(cases[i].text);
        if (unwrap(&k, "default", cases[i].text, err, sizeof err) != cases[i].rc || !strstr(err, cases[i].says)) {
            fail_msg("%s: %s", cases[i].what, err);
        }
        assert_null(strstr(err, "t-g1044vector"));
        free(cases[i].text);
    }
    /* the untouched file opens (the cases changed copies) */
    assert_int_equal(unwrap(&k, "default", file, err, sizeof err), TD_OK);
}

static void no_key_wrong_key_other_name(void **state)
{
    td_seal_keys none = {0}, other = keys_of("ZGlmZmVyZW50IGtleSBmb3IgdGhlIHRlc3QgMDAwMDA=");
    const char *file = vs("file");
    char err[512];

    (void)state;
    assert_int_equal(unwrap(&none, "default", file, err, sizeof err), TD_ESHAREKEY);
    assert_non_null(strstr(err, "没有设置共享密钥"));
    assert_non_null(strstr(err, "630dcd2966c43366"));
    assert_int_equal(unwrap(NULL, "default", file, err, sizeof err), TD_ESHAREKEY);
    assert_int_equal(unwrap(&other, "default", file, err, sizeof err), TD_ESHAREKEY);
    assert_non_null(strstr(err, "kid 630dcd2966c43366"));
    assert_non_null(strstr(err, other.v[0].kid));
    /* the right key, but the client is another token's */
    {
        td_seal_keys k = keys_of(vs("key"));
        assert_int_equal(unwrap(&k, "wx", file, err, sizeof err), TD_EINVAL);
        assert_non_null(strstr(err, "属于 token 'default'，不是 'wx'"));
    }
}

static void rotation_new_first_old_second(void **state)
{
    char list[200], *old_file = NULL, *new_file = NULL, err[256];
    const char *newkey = "ZGlmZmVyZW50IGtleSBmb3IgdGhlIHRlc3QgMDAwMDA=";
    td_seal_keys oldk = keys_of(vs("key")), newk = keys_of(newkey), both;
    size_t len;
    char *plain = NULL;

    (void)state;
    snprintf(list, sizeof list, "%s,%s", newkey, vs("key"));
    both = keys_of(list);
    assert_int_equal(both.n, 2);
    assert_int_equal(td_seal_wrap(&oldk, "default", 10, "{\"generated_timestamp\":10}", 26, &old_file, &len, err,
                                  sizeof err), TD_OK);
    assert_int_equal(td_seal_wrap(&both, "default", 11, "{\"generated_timestamp\":11}", 26, &new_file, &len, err,
                                  sizeof err), TD_OK);
    /* the first key seals */
    assert_non_null(strstr(new_file, newk.v[0].kid));
    assert_int_equal(td_seal_unwrap(&both, "default", old_file, strlen(old_file), &plain, &len, err, sizeof err), TD_OK);
    assert_string_equal(plain, "{\"generated_timestamp\":10}");
    free(plain);
    assert_int_equal(td_seal_unwrap(&both, "default", new_file, strlen(new_file), &plain, &len, err, sizeof err), TD_OK);
    assert_string_equal(plain, "{\"generated_timestamp\":11}");
    free(plain);
    /* the old key alone cannot read the new file */
    assert_int_equal(unwrap(&oldk, "default", new_file, err, sizeof err), TD_ESHAREKEY);
    free(old_file);
    free(new_file);
}

static void sealed_time_must_match_the_record(void **state)
{
    td_seal_keys k = keys_of(vs("key"));
    char *file = NULL, err[256];
    size_t len;

    (void)state;
    assert_int_equal(td_seal_wrap(&k, "default", 10, "{\"generated_timestamp\":9}", 25, &file, &len, err, sizeof err),
                     TD_OK);
    assert_int_equal(unwrap(&k, "default", file, err, sizeof err), TD_EINVAL);
    assert_non_null(strstr(err, "不一致"));
    free(file);
}

static void plaintext_only_without_a_key(void **state)
{
    td_seal_keys k = keys_of(vs("key")), none = {0};
    const char *rec = vs("plaintext");
    char *plain = NULL, err[512];
    size_t len;
    int64_t gen;

    (void)state;
    assert_int_equal(td_seal_unwrap(&none, "default", rec, strlen(rec), &plain, &len, err, sizeof err), TD_OK);
    assert_string_equal(plain, rec);
    free(plain);
    assert_int_equal(unwrap(&k, "default", rec, err, sizeof err), TD_ESHAREKEY);
    assert_non_null(strstr(err, "记录未加密"));
    assert_int_equal(unwrap(&k, "default", "not json", err, sizeof err), TD_EINVAL);
    /* not JSON and no key: handed on for the record validator to judge */
    assert_int_equal(unwrap(&none, "default", "not json", err, sizeof err), TD_OK);
    assert_int_equal(td_seal_peek(rec, strlen(rec), &gen, NULL, err, sizeof err), TD_ENOTFOUND);
    assert_int_equal(td_seal_peek("[]", 2, &gen, NULL, err, sizeof err), TD_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vector_sealed_byte_for_byte),
        cmocka_unit_test(vector_opens),
        cmocka_unit_test(random_nonce_each_time),
        cmocka_unit_test(keys_parsed_strictly_and_never_shown),
        cmocka_unit_test(keygen_gives_a_valid_new_key),
        cmocka_unit_test(every_change_refused),
        cmocka_unit_test(no_key_wrong_key_other_name),
        cmocka_unit_test(rotation_new_first_old_second),
        cmocka_unit_test(sealed_time_must_match_the_record),
        cmocka_unit_test(plaintext_only_without_a_key),
    };
    return cmocka_run_group_tests(tests, load_vector, free_vector);
}
