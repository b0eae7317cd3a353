/* record -- see record.h. */
#include "record.h"
#include "clock.h"
#include "tokendist.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct td_record {
    json_t *obj;          /* normalised object, seed field order first */
    char *json;           /* its serialisation, made once */
    size_t json_len;
    int64_t generated_ts, expire_ts;
};

/* Timestamps beyond this are not times but mistakes (year ~2500). */
#define TS_MAX INT64_C(16725225600)

static const char *const seed_fields[] = {
    "access_token", "expire_time", "expire_timestamp", "valid_duration_seconds",
    "generated_time", "generated_timestamp", "source", "usage", "platform",
};

static int is_seed_field(const char *k)
{
    for (size_t i = 0; i < sizeof seed_fields / sizeof *seed_fields; i++)
        if (!strcmp(k, seed_fields[i])) return 1;
    return 0;
}

int td_record_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > TD_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
            return 0;
    return 1;
}

const char *td_record_token_id(const char *token, char out[TD_TOKEN_ID_LEN])
{
    unsigned char md[32];
    static const char hex[] = "0123456789abcdef";

    SHA256((const unsigned char *)token, strlen(token), md);
    for (int i = 0; i < 8; i++) out[2 * i] = hex[md[i] >> 4], out[2 * i + 1] = hex[md[i] & 15];
    out[16] = '\0';
    return out;
}

int td_record_key_valid(const char *key, size_t len)
{
    size_t sl = sizeof TD_TICKET_SUFFIX - 1;
    if (len > sl && !memcmp(key + len - sl, TD_TICKET_SUFFIX, sl)) len -= sl;
    return td_record_name_valid(key, len);
}

/* A token travels in HTTP headers: only visible ASCII, no spaces, so a
 * stored token can never smuggle a header into a client's request. */
static int check_token(const char *name, const json_t *v, char *err, size_t errlen)
{
    const char *s;
    size_t len;

    if (!json_is_string(v)) {
        snprintf(err, errlen, "字段 '%s' 应为字符串", name);
        return TD_EINVAL;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0) {
        snprintf(err, errlen, "字段 '%s' 为空", name);
        return TD_EINVAL;
    }
    if (len > TD_TOKEN_MAX) {
        snprintf(err, errlen, "字段 '%s' 有 %zu 字节，超过上限 %d 字节", name, len, TD_TOKEN_MAX);
        return TD_ETOOBIG;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            snprintf(err, errlen, "字段 '%s' 只能含可见的 ASCII 字符 (不能有空格、换行或中文)", name);
            return TD_EINVAL;
        }
    return TD_OK;
}

/* Accepts JSON integers and, for producers that send time.time() floats,
 * finite reals (rounded down). */
static int get_ts(const json_t *o, const char *name, int64_t *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, name);
    double d;

    if (!v) {
        snprintf(err, errlen, "缺少字段 '%s'", name);
        return TD_EINVAL;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && isfinite(d = json_real_value(v)) && d > 0 && d < (double)TS_MAX) {
        *out = (int64_t)floor(d);
    } else {
        snprintf(err, errlen, "字段 '%s' 应为以秒计的 Unix 时间戳 (数字)", name);
        return TD_EINVAL;
    }
    if (*out <= 0 || *out > TS_MAX) {
        snprintf(err, errlen, "字段 '%s' 超出范围 (%lld)：应为以秒计的 Unix 时间戳，不是毫秒", name, (long long)*out);
        return TD_EINVAL;
    }
    return TD_OK;
}

static int check_text(const json_t *o, const char *name, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, name);
    if (!v) {
        snprintf(err, errlen, "缺少字段 '%s'", name);
        return TD_EINVAL;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "字段 '%s' 应为字符串", name);
        return TD_EINVAL;
    }
    if (json_string_length(v) > TD_TEXT_MAX) {
        snprintf(err, errlen, "字段 '%s' 超过 %d 字节", name, TD_TEXT_MAX);
        return TD_ETOOBIG;
    }
    return TD_OK;
}

/* Makes r->obj in canonical form from a validated source object and
 * serialises it. */
static int normalise(td_record *r, const json_t *src)
{
    char tbuf[TD_TIME_LEN];
    const char *k;
    json_t *v, *o = json_object();
    int ok = o != NULL;

    ok = ok && !json_object_set(o, "access_token", json_object_get(src, "access_token"));
    ok = ok && !json_object_set_new(o, "expire_time",
                                    json_string(td_clock_format(r->expire_ts, tbuf)));
    ok = ok && !json_object_set_new(o, "expire_timestamp", json_integer(r->expire_ts));
    ok = ok && !json_object_set_new(o, "valid_duration_seconds",
                                    json_integer(r->expire_ts - r->generated_ts));
    ok = ok && !json_object_set_new(o, "generated_time",
                                    json_string(td_clock_format(r->generated_ts, tbuf)));
    ok = ok && !json_object_set_new(o, "generated_timestamp", json_integer(r->generated_ts));
    ok = ok && !json_object_set(o, "source", json_object_get(src, "source"));
    ok = ok && !json_object_set(o, "usage", json_object_get(src, "usage"));
    ok = ok && !json_object_set(o, "platform", json_object_get(src, "platform"));
    json_object_foreach((json_t *)src, k, v)
        if (ok && !is_seed_field(k)) ok = !json_object_set(o, k, v);
    if (!ok) goto fail;
    /* Like Python's json.dumps: ", " and ": " separators, one line; UTF-8
     * kept as is. */
    if (!(r->json = json_dumps(o, 0))) goto fail;
    r->json_len = strlen(r->json);
    r->obj = o;
    return TD_OK;
fail:
    json_decref(o);
    return TD_ENOMEM;
}

void td_record_skip_bom(const char **text, size_t *len)
{
    if (*text && *len >= 3 && !memcmp(*text, "\xef\xbb\xbf", 3)) *text += 3, *len -= 3;
}

/* jansson's messages that are fixed text, in our words (jansson has no
 * catalogue of its own).  The rest carry a piece of the input ("control
 * character 0x1", "invalid Unicode '\uD800'") and are told by their start
 * or their code; nothing of the input is ever copied. */
static const struct {
    const char *jansson, *ours;
} json_fixed_messages[] = {
    {"premature end of input", "内容提前结束 (不完整)"},
    {"unexpected newline", "字符串中有换行"},
    {"invalid escape", "无效的转义序列"},
    {"too big negative integer", "负整数太大"},
    {"too big integer", "整数太大"},
    {"real number overflow", "数值溢出"},
    {"string or '}' expected", "此处应为字符串或 '}'"},
    {"duplicate object key", "对象中有重复的键"},
    {"':' expected", "此处应为 ':'"},
    {"invalid token", "无法识别的内容"},
    {"unexpected token", "此处不该有这个内容"},
    {"']' expected", "此处应为 ']'"},
    {"'[' or '{' expected", "此处应为 '[' 或 '{'"},
    {"end of file expected", "JSON 之后还有多余的内容"},
    {"\\u0000 is not allowed without JSON_ALLOW_NUL", "不允许 \\u0000"},
    {"NUL byte in object key not supported", "键中不允许 NUL 字节"},
    {"maximum parsing depth reached", "嵌套太深"},
};

const char *td_record_json_error(const json_error_t *je, char *buf, size_t len)
{
    char msg[JSON_ERROR_TEXT_LENGTH], *near;
    const char *what = NULL;

    /* Only the part before " near '<input>'". */
    snprintf(msg, sizeof msg, "%s", je->text);
    if ((near = strstr(msg, " near "))) *near = '\0';
    for (size_t i = 0; !what && i < sizeof json_fixed_messages / sizeof *json_fixed_messages; i++)
        if (!strcmp(msg, json_fixed_messages[i].jansson)) what = json_fixed_messages[i].ours;
    if (!what) {
        if (!strncmp(msg, "control character", 17)) what = "字符串中有控制字符";
        else if (!strncmp(msg, "invalid Unicode", 15)) what = "无效的 \\u 转义";
        else if (json_error_code(je) == json_error_invalid_utf8) what = "不是有效的 UTF-8 文本";
        else if (json_error_code(je) == json_error_out_of_memory) what = "解析时内存不足";
        else what = "不是有效的 JSON";
    }
    snprintf(buf, len, "JSON 无效: %s (第 %d 行第 %d 列，第 %d 字节)", what, je->line, je->column, je->position);
    return buf;
}

int td_record_parse(const char *text, size_t len, int64_t now, int64_t max_skew, td_record **out,
                    char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *src = NULL, *v;
    td_record *r = NULL;
    int rc = TD_EINVAL;

    if (!(src = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr))) {
        /* Windows editors and PowerShell 5 write one; jansson would only
         * say "invalid token" at byte 0. */
        if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
            snprintf(err, errlen, "JSON 无效: 开头有 UTF-8 BOM (EF BB BF)，请去掉它再发送");
        else
            td_record_json_error(&jerr, err, errlen);
        goto out;
    }
    if (!json_is_object(src)) {
        snprintf(err, errlen, "记录应为 JSON 对象 ({...})");
        goto out;
    }
    if (!(r = calloc(1, sizeof *r))) { rc = TD_ENOMEM; goto out; }
    if (!(v = json_object_get(src, "access_token"))) {
        snprintf(err, errlen, "缺少字段 'access_token'");
        goto out;
    }
    if ((rc = check_token("access_token", v, err, errlen)) != TD_OK) goto out;
    rc = TD_EINVAL;
    if ((v = json_object_get(src, "tenant_access_token")) &&
        (rc = check_token("tenant_access_token", v, err, errlen)) != TD_OK)
        goto out;
    rc = TD_EINVAL;
    if (get_ts(src, "expire_timestamp", &r->expire_ts, err, errlen) != TD_OK) goto out;
    if (get_ts(src, "generated_timestamp", &r->generated_ts, err, errlen) != TD_OK) goto out;
    {
        int64_t dur;
        if (get_ts(src, "valid_duration_seconds", &dur, err, errlen) != TD_OK) goto out;
    }
    for (int i = 0; i < 2; i++) {
        const char *f = i ? "generated_time" : "expire_time";
        if (!(v = json_object_get(src, f))) {
            snprintf(err, errlen, "缺少字段 '%s'", f);
            goto out;
        }
        if (!json_is_string(v) || json_string_length(v) > 64) {
            snprintf(err, errlen, "字段 '%s' 应为 \"YYYY-MM-DD HH:MM:SS\" 格式的字符串", f);
            goto out;
        }
    }
    if ((rc = check_text(src, "source", err, errlen)) != TD_OK ||
        (rc = check_text(src, "usage", err, errlen)) != TD_OK ||
        (rc = check_text(src, "platform", err, errlen)) != TD_OK)
        goto out;
    rc = TD_EINVAL;
    if (r->expire_ts <= r->generated_ts) {
        snprintf(err, errlen, "expire_timestamp (%lld) 应晚于 generated_timestamp (%lld)",
                 (long long)r->expire_ts, (long long)r->generated_ts);
        goto out;
    }
    if (now && max_skew >= 0 && r->generated_ts - now > max_skew) {
        char gen[TD_TIME_LEN], at[TD_TIME_LEN];
        snprintf(err, errlen,
                 "generated_timestamp %lld (%s) 比服务器时间 %s 超前 %lld 秒，超过允许的 %lld 秒 "
                 "(--max-clock-skew)：写入方的时钟不对，请校准它的时间 (NTP) 后再写入",
                 (long long)r->generated_ts, td_clock_format(r->generated_ts, gen),
                 td_clock_format(now, at), (long long)(r->generated_ts - now), (long long)max_skew);
        goto out;
    }
    if (now && r->expire_ts <= now) {
        snprintf(err, errlen, "token 已过期 (expire_timestamp %lld 已过去 %lld 秒)：请推送刚获取的 token",
                 (long long)r->expire_ts, (long long)(now - r->expire_ts));
        rc = TD_EEXPIRED;
        goto out;
    }
    if ((rc = normalise(r, src)) != TD_OK) goto out;
    *out = r, r = NULL;
out:
    json_decref(src);
    td_record_free(r);
    return rc;
}

int td_record_new(const struct td_record_fields *f, td_record **out)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:s}",
                          "access_token", f->access_token, "expire_time", "",
                          "expire_timestamp", (json_int_t)f->expire_ts,
                          "valid_duration_seconds", (json_int_t)(f->expire_ts - f->generated_ts),
                          "generated_time", "",
                          "generated_timestamp", (json_int_t)f->generated_ts,
                          "source", f->source ? f->source : "",
                          "usage", f->usage ? f->usage : "",
                          "platform", f->platform ? f->platform : "");
    char *text = NULL, err[256];
    int rc = TD_ENOMEM;

    if (!o) return TD_EINVAL;
    if (f->provider) json_object_set_new(o, "provider", json_string(f->provider));
    if (f->derived_from) json_object_set_new(o, "derived_from", json_string(f->derived_from));
    if (f->tenant_access_token) {
        json_object_set_new(o, "tenant_access_token", json_string(f->tenant_access_token));
        json_object_set_new(o, "tenant_expire_timestamp",
                            json_integer(f->tenant_expire_ts ? f->tenant_expire_ts : f->expire_ts));
    }
    /* Going through the parser means a built record obeys exactly the
     * rules a POSTed one does. */
    if ((text = json_dumps(o, 0)))
        rc = td_record_parse(text, strlen(text), 0, -1, out, err, sizeof err);
    free(text);
    json_decref(o);
    return rc;
}

void td_record_free(td_record *r)
{
    if (!r) return;
    json_decref(r->obj);
    free(r->json);
    free(r);
}

const char *td_record_token(const td_record *r)
{
    return json_string_value(json_object_get(r->obj, "access_token"));
}

const char *td_record_field(const td_record *r, const char *field)
{
    return json_string_value(json_object_get(r->obj, field));
}

int64_t td_record_generated(const td_record *r) { return r->generated_ts; }
int64_t td_record_expires(const td_record *r) { return r->expire_ts; }

const char *td_record_json(const td_record *r, size_t *len)
{
    if (len) *len = r->json_len;
    return r->json;
}
