/* seal -- see seal.h; the rules are docs/protocol.md's "The sealed Gitee
 * copy", and tests/vectors/sealed-v1.json pins them down byte for byte. */
#include "seal.h"
#include "record.h"
#include "strbuf.h"
#include "tokendist.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_VERSION 1
#define SEAL_ALG "A256GCM"
#define SEAL_AAD_PREFIX "tokendist-sealed"
/* The largest record a Gitee file holds is 1 MiB (gitee.h); a record is a
 * few KB.  64 KiB of plaintext is the cache file's bound too. */
#define SEAL_PLAIN_MAX (64u << 10)
/* Integers every reader represents exactly (JavaScript's safe range). */
#define SEAL_TS_MAX INT64_C(9007199254740991)

/* ---- base64: standard alphabet, '=' padding, nothing else ---------------- */

/* Decodes s (n characters) into out (room for n / 4 * 3 bytes) when s is
 * canonical: a multiple of 4 characters from the standard alphabet,
 * padded, and exactly what encoding the result gives back (so no two
 * texts mean the same bytes, and no line breaks, blanks or URL-safe
 * letters slip through).  Returns the length, or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    size_t pad = 0;
    char *again = NULL;
    int len;
    long rc = -1;

    if (n == 0 || n % 4 || n > (1u << 22)) return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                 c == '/';
        if (c == '=' && i >= n - 2) {
            if (i == n - 2 && s[n - 1] != '=') return -1;
            pad++;
            continue;
        }
        if (!ok) return -1;
    }
    if ((len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n)) < 0) return -1;
    len -= (int)pad;
    if (!(again = malloc(n + 1))) return -1;
    EVP_EncodeBlock((unsigned char *)again, out, len);
    if (!memcmp(again, s, n)) rc = len;
    free(again);
    return rc;
}

static char *b64_encode(const unsigned char *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

/* ---- keys ----------------------------------------------------------------- */

static void kid_of(const unsigned char key[TD_SEAL_KEY_LEN], char kid[TD_SEAL_KID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(key, TD_SEAL_KEY_LEN, md);
    for (int i = 0; i < 8; i++) kid[2 * i] = hex[md[i] >> 4], kid[2 * i + 1] = hex[md[i] & 15];
    kid[16] = '\0';
}

/* One key's text into k; the message never shows the text. */
static int key_parse(td_seal_key *k, const char *s, size_t n, char *err, size_t errlen)
{
    unsigned char buf[(TD_SEAL_KEY_B64 + 3) / 4 * 3];
    long got = n == TD_SEAL_KEY_B64 - 1 ? b64_decode(s, n, buf) : -1;
    int rc = TD_EINVAL;

    if (got != TD_SEAL_KEY_LEN) {
        snprintf(err, errlen, "应为 32 字节随机数的 base64 (44 个字符，标准字母表，以 = 结尾)，"
                              "请用 tokendist keygen 生成");
        goto out;
    }
    memcpy(k->key, buf, TD_SEAL_KEY_LEN);
    kid_of(k->key, k->kid);
    rc = TD_OK;
out:
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int td_seal_key_check(const char *b64, char *err, size_t errlen)
{
    td_seal_key k;
    int rc = key_parse(&k, b64 ? b64 : "", b64 ? strlen(b64) : 0, err, errlen);
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

int td_seal_keys_add(td_seal_keys *k, const char *b64, char *err, size_t errlen)
{
    if (k->n == TD_SEAL_KEYS_MAX) {
        snprintf(err, errlen, "共享密钥超过 %d 个", TD_SEAL_KEYS_MAX);
        return TD_EINVAL;
    }
    if (key_parse(&k->v[k->n], b64, strlen(b64), err, errlen) != TD_OK) return TD_EINVAL;
    k->n++;
    return TD_OK;
}

int td_seal_keys_parse(td_seal_keys *k, const char *list, char *err, size_t errlen)
{
    const char *s = list ? list : "";
    char why[256];

    memset(k, 0, sizeof *k);
    while (*s) {
        const char *end = strchr(s, ','), *a = s, *b;
        b = end ? end : s + strlen(s);
        s = end ? end + 1 : b;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (a == b) continue;
        if (k->n == TD_SEAL_KEYS_MAX) {
            snprintf(err, errlen, "TOKENDIST_SHARE_KEY 列出的密钥超过 %d 个", TD_SEAL_KEYS_MAX);
            goto fail;
        }
        if (key_parse(&k->v[k->n], a, (size_t)(b - a), why, sizeof why) != TD_OK) {
            snprintf(err, errlen, "TOKENDIST_SHARE_KEY 的第 %zu 个密钥无效: %s", k->n + 1, why);
            goto fail;
        }
        k->n++;
    }
    return TD_OK;
fail:
    td_seal_keys_wipe(k);
    return TD_EINVAL;
}

void td_seal_keys_wipe(td_seal_keys *k)
{
    if (k) OPENSSL_cleanse(k, sizeof *k);
}

int td_seal_keygen(char out[TD_SEAL_KEY_B64], char *err, size_t errlen)
{
    unsigned char key[TD_SEAL_KEY_LEN];

    if (RAND_bytes(key, sizeof key) != 1) {
        snprintf(err, errlen, "无法取得随机数 (OpenSSL RAND_bytes 失败)");
        return TD_ERR;
    }
    EVP_EncodeBlock((unsigned char *)out, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return TD_OK;
}

/* ---- the cipher ----------------------------------------------------------- */

/* The associated data: what the envelope says in clear, bound to the
 * ciphertext.  Lines, because every field is a fixed alphabet without
 * '\n' (a name is [a-z0-9_], a kid hex, a time decimal). */
static int make_aad(char *buf, size_t len, const char *kid, const char *name, int64_t generated)
{
    td_strbuf b;
    td_strbuf_fixed(&b, buf, len);
    td_strbuf_printf(&b, SEAL_AAD_PREFIX "\n%d\n" SEAL_ALG "\n%s\n%s\n%lld", SEAL_VERSION, kid, name,
                     (long long)generated);
    return td_strbuf_error(&b) == TD_OK ? (int)b.len : -1;
}

/* AES-256-GCM over in with aad; encrypting appends the tag to out,
 * decrypting takes it from the end of in.  Returns the output length, or
 * -1 (decrypting: the tag did not match). */
static long gcm(int enc, const unsigned char *key, const unsigned char *nonce, const char *aad, int aadlen,
                const unsigned char *in, size_t inlen, unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    size_t body = enc ? inlen : inlen - TD_SEAL_TAG_LEN;
    long rc = -1;

    if (!ctx || (!enc && inlen < TD_SEAL_TAG_LEN)) goto out;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TD_SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad, aadlen) != 1 ||
        EVP_CipherUpdate(ctx, out, &n, in, (int)body) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TD_SEAL_TAG_LEN, (void *)(in + body)) != 1)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + n, &m) != 1) goto out;
    n += m;
    if (enc) {
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TD_SEAL_TAG_LEN, out + n) != 1) goto out;
        n += TD_SEAL_TAG_LEN;
    }
    rc = n;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int td__seal_wrap_nonce(const td_seal_keys *k, const char *name, int64_t generated, const char *json,
                        size_t len, const unsigned char nonce[TD_SEAL_NONCE_LEN], char **out,
                        size_t *outlen, char *err, size_t errlen)
{
    char aad[256];
    unsigned char *ct = NULL;
    char *nonce64 = NULL, *ct64 = NULL;
    json_t *o = NULL;
    long ctlen;
    int aadlen, rc = TD_EINVAL;

    *out = NULL;
    if (!k || !k->n) {
        snprintf(err, errlen, "没有共享密钥，无法加密");
        goto out;
    }
    if (!name || !td_record_name_valid(name, strlen(name)) || generated < 0 || generated > SEAL_TS_MAX ||
        len > SEAL_PLAIN_MAX) {
        snprintf(err, errlen, "无法加密: token 名称、generated_timestamp 或记录长度无效");
        goto out;
    }
    aadlen = make_aad(aad, sizeof aad, k->v[0].kid, name, generated);
    rc = TD_ENOMEM;
    if (!(ct = malloc(len + TD_SEAL_TAG_LEN))) goto out;
    if ((ctlen = gcm(1, k->v[0].key, nonce, aad, aadlen, (const unsigned char *)json, len, ct)) < 0) {
        snprintf(err, errlen, "AES-256-GCM 加密失败 (OpenSSL)");
        rc = TD_ERR;
        goto out;
    }
    if (!(nonce64 = b64_encode(nonce, TD_SEAL_NONCE_LEN)) || !(ct64 = b64_encode(ct, (size_t)ctlen))) goto out;
    o = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s}", "v", SEAL_VERSION, "alg", SEAL_ALG, "kid",
                  k->v[0].kid, "name", name, "generated_timestamp", (json_int_t)generated, "nonce", nonce64,
                  "ct", ct64);
    if (!o || !(*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER))) goto out;
    *outlen = strlen(*out);
    rc = TD_OK;
out:
    if (rc == TD_ENOMEM) snprintf(err, errlen, "内存不足");
    free(ct);
    free(nonce64);
    free(ct64);
    json_decref(o);
    return rc;
}

int td_seal_wrap(const td_seal_keys *k, const char *name, int64_t generated, const char *json, size_t len,
                 char **out, size_t *outlen, char *err, size_t errlen)
{
    unsigned char nonce[TD_SEAL_NONCE_LEN];

    *out = NULL;
    /* A fresh random nonce per seal: 2^-32 collision odds are reached only
     * after ~2^32 seals with one key, and a refresher seals a few times a
     * day. */
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        snprintf(err, errlen, "无法取得随机数 (OpenSSL RAND_bytes 失败)");
        return TD_ERR;
    }
    return td__seal_wrap_nonce(k, name, generated, json, len, nonce, out, outlen, err, errlen);
}

/* ---- opening -------------------------------------------------------------- */

/* An envelope's fields, checked for form (not yet for key or name). */
typedef struct envelope {
    const char *kid, *name, *nonce64, *ct64;
    int64_t generated;
} envelope;

static int is_envelope(const json_t *o)
{
    return json_is_object(o) && json_object_get(o, "v") && !json_object_get(o, "access_token");
}

static int hex16(const char *s)
{
    if (!s || strlen(s) != 16) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

static int envelope_fields(const json_t *o, envelope *e, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, "v"), *g = json_object_get(o, "generated_timestamp");
    const char *alg = json_string_value(json_object_get(o, "alg")), *bad = NULL;

    if (!json_is_integer(v) || json_integer_value(v) != SEAL_VERSION) {
        if (json_is_integer(v))
            snprintf(err, errlen, "加密记录的格式版本 v=%lld 不受支持 (此版本只认识 v=1)，请升级客户端",
                     (long long)json_integer_value(v));
        else
            snprintf(err, errlen, "加密记录的字段 v 无效 (应为 1)");
        return TD_EINVAL;
    }
    if (!alg || strcmp(alg, SEAL_ALG) != 0) {
        snprintf(err, errlen, "加密记录的算法 %.40s 不受支持 (只支持 " SEAL_ALG ")", alg ? alg : "(无)");
        return TD_EINVAL;
    }
    e->kid = json_string_value(json_object_get(o, "kid"));
    e->name = json_string_value(json_object_get(o, "name"));
    e->nonce64 = json_string_value(json_object_get(o, "nonce"));
    e->ct64 = json_string_value(json_object_get(o, "ct"));
    if (!hex16(e->kid)) bad = "kid";
    else if (!e->name || !td_record_name_valid(e->name, strlen(e->name))) bad = "name";
    else if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > SEAL_TS_MAX)
        bad = "generated_timestamp";
    else if (!e->nonce64 || strlen(e->nonce64) != (TD_SEAL_NONCE_LEN + 2) / 3 * 4) bad = "nonce";
    else if (!e->ct64 || strlen(e->ct64) > (SEAL_PLAIN_MAX + TD_SEAL_TAG_LEN + 2) / 3 * 4) bad = "ct";
    if (bad) {
        snprintf(err, errlen, "加密记录的字段 %s 无效", bad);
        return TD_EINVAL;
    }
    e->generated = (int64_t)json_integer_value(g);
    return TD_OK;
}

int td_seal_peek(const char *text, size_t len, int64_t *generated, char kid[TD_SEAL_KID_LEN], char *err,
                 size_t errlen)
{
    json_t *o;
    envelope e;
    int rc = TD_ENOTFOUND;

    td_record_skip_bom(&text, &len);
    o = json_loadb(text ? text : "", len, 0, NULL);

    if (is_envelope(o) && (rc = envelope_fields(o, &e, err, errlen)) == TD_OK) {
        if (generated) *generated = e.generated;
        if (kid) memcpy(kid, e.kid, TD_SEAL_KID_LEN);
    }
    json_decref(o);
    return rc;
}

/* The kids of k, for a message: "1a2b…, 3c4d…". */
static const char *kid_list(const td_seal_keys *k, char *buf, size_t len)
{
    td_strbuf b;
    td_strbuf_fixed(&b, buf, len);
    for (size_t i = 0; i < k->n; i++) td_strbuf_printf(&b, "%s%s", i ? ", " : "", k->v[i].kid);
    return buf;
}

/* The plaintext's own generated_timestamp must be the clear one: the AAD
 * binds the clear field to the ciphertext, this binds it to the record. */
static int same_generated(const unsigned char *plain, size_t len, int64_t generated)
{
    json_t *o = json_loadb((const char *)plain, len, 0, NULL);
    json_t *g = json_object_get(o, "generated_timestamp");
    int same = (json_is_integer(g) && json_integer_value(g) == generated) ||
               (json_is_real(g) && json_real_value(g) == (double)generated);
    json_decref(o);
    return same;
}

static int open_envelope(const td_seal_keys *k, const char *name, const json_t *o, char **plain, size_t *plen,
                         char *err, size_t errlen)
{
    envelope e;
    const td_seal_key *key = NULL;
    unsigned char nonce[(TD_SEAL_NONCE_LEN + 2) / 3 * 3], *ct = NULL, *pt = NULL;
    char aad[256], kids[TD_SEAL_KEYS_MAX * (TD_SEAL_KID_LEN + 2)];
    long ctlen, ptlen;
    int rc;

    if ((rc = envelope_fields(o, &e, err, errlen)) != TD_OK) return rc;
    if (strcmp(e.name, name) != 0) {
        snprintf(err, errlen, "加密记录属于 token '%s'，不是 '%s'", e.name, name);
        return TD_EINVAL;
    }
    if (!k || !k->n) {
        snprintf(err, errlen, "记录已加密 (kid %s)，但没有设置共享密钥: 请设置 TOKENDIST_SHARE_KEY (与刷新器的相同)",
                 e.kid);
        return TD_ESHAREKEY;
    }
    for (size_t i = 0; i < k->n && !key; i++)
        if (!strcmp(k->v[i].kid, e.kid)) key = &k->v[i];
    if (!key) {
        snprintf(err, errlen, "记录是用另一把共享密钥加密的 (kid %s)，已设置的密钥是 kid %s: 请检查 TOKENDIST_SHARE_KEY",
                 e.kid, kid_list(k, kids, sizeof kids));
        return TD_ESHAREKEY;
    }
    rc = TD_EINVAL;
    if (b64_decode(e.nonce64, strlen(e.nonce64), nonce) != TD_SEAL_NONCE_LEN) {
        snprintf(err, errlen, "加密记录的字段 nonce 无效 (应为 12 字节的 base64)");
        goto out;
    }
    if (!(ct = malloc(strlen(e.ct64) / 4 * 3 + 3)) || !(pt = malloc(strlen(e.ct64) / 4 * 3 + 1))) {
        snprintf(err, errlen, "内存不足");
        rc = TD_ENOMEM;
        goto out;
    }
    if ((ctlen = b64_decode(e.ct64, strlen(e.ct64), ct)) < TD_SEAL_TAG_LEN) {
        snprintf(err, errlen, "加密记录的字段 ct 无效 (应为密文和 16 字节标签的 base64)");
        goto out;
    }
    ptlen = gcm(0, key->key, nonce, aad, make_aad(aad, sizeof aad, e.kid, e.name, e.generated), ct,
                (size_t)ctlen, pt);
    if (ptlen < 0) {
        snprintf(err, errlen, "加密记录未通过校验 (kid %s): 内容被改动过或已损坏", e.kid);
        goto out;
    }
    if (!same_generated(pt, (size_t)ptlen, e.generated)) {
        snprintf(err, errlen, "加密记录的 generated_timestamp 与其中的记录不一致");
        goto out;
    }
    pt[ptlen] = '\0';
    *plain = (char *)pt, pt = NULL;
    *plen = (size_t)ptlen;
    rc = TD_OK;
out:
    free(ct);
    if (pt) OPENSSL_cleanse(pt, strlen(e.ct64) / 4 * 3 + 1);
    free(pt);
    return rc;
}

int td_seal_unwrap(const td_seal_keys *k, const char *name, const char *text, size_t len, char **plain,
                   size_t *plen, char *err, size_t errlen)
{
    json_t *o;
    int rc;

    td_record_skip_bom(&text, &len);
    o = json_loadb(text ? text : "", len, 0, NULL);
    *plain = NULL;
    if (is_envelope(o)) {
        rc = open_envelope(k, name, o, plain, plen, err, errlen);
    } else if (k && k->n) {
        if (o) snprintf(err, errlen, "记录未加密，但设置了共享密钥 (TOKENDIST_SHARE_KEY): 不接受未加密的记录 "
                                     "(刷新器也要设置同一密钥)");
        else snprintf(err, errlen, "文件内容不是JSON");
        rc = o ? TD_ESHAREKEY : TD_EINVAL;
    } else if (!(*plain = malloc(len + 1))) {
        snprintf(err, errlen, "内存不足");
        rc = TD_ENOMEM;
    } else {
        memcpy(*plain, text, len);
        (*plain)[len] = '\0';
        *plen = len;
        rc = TD_OK;
    }
    json_decref(o);
    return rc;
}
