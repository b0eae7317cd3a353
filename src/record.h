/*
 * record -- the token record: the seed's nine fields plus any extras.
 *
 * A record is parsed and validated once, normalised (the two *_time
 * strings and valid_duration_seconds are re-derived from the authoritative
 * timestamps) and serialised once; the server then hands the same bytes to
 * every reader.
 */
#ifndef TD_RECORD_H
#define TD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define TD_TOKEN_MAX 4096       /* Feishu's newer tokens are JWTs */
#define TD_TEXT_MAX 1024        /* source, usage, platform */

typedef struct td_record td_record;

struct td_record_fields {
    const char *access_token;
    const char *tenant_access_token;    /* optional */
    int64_t generated_ts;
    int64_t expire_ts;
    int64_t tenant_expire_ts;           /* 0: same as expire_ts */
    const char *source, *usage, *platform;
    const char *provider;               /* optional: "feishu", "wechat", ... */
    const char *derived_from;           /* optional: a ticket's token name ("wx") */
};

/* Token names: 1-64 lower-case letters, digits and '_' -- so that every
 * name maps to one environment-variable stem (TOKENDIST_<NAME>_...), one
 * URL path segment and one store key, with nothing to escape anywhere. */
#define TD_NAME_MAX 64
#define TD_NAME_RULE "1-64 个小写字母、数字或下划线 (a-z 0-9 _)"
int td_record_name_valid(const char *name, size_t len);

/* A store key: a token name, or the name of a ticket derived from a
 * token, "NAME.jsapi_ticket" (served at /v1/tokens/NAME/jsapi_ticket). */
#define TD_TICKET_SUFFIX ".jsapi_ticket"
int td_record_key_valid(const char *key, size_t len);
#define TD_RECORD_MAX_SKEW 300   /* default of --max-clock-skew */

/* A short id of a token for comparing tokens without passing them around
 * (fleet messages, forced-refresh bookkeeping): the first 8 bytes of its
 * SHA-256 in hex. */
#define TD_TOKEN_ID_LEN 17
const char *td_record_token_id(const char *token, char out[TD_TOKEN_ID_LEN]);

/* Skips a UTF-8 byte order mark at the start of *text.  Gitee's web editor
 * and Windows tools put one in front of a file they save, and the Node and
 * Python clients read such a file, so every reader of a record *file* -- the
 * Gitee file (seal.c, the sink's guard) and the client's cache file -- skips
 * it by this one rule.  td_record_parse itself does not: what is POSTed to
 * the server is held to strict JSON. */
void td_record_skip_bom(const char **text, size_t *len);

/* Parses and validates a record from JSON text.  `now` is the current Unix
 * time: a record already expired at `now` is refused, and so is one
 * generated more than max_skew seconds after `now` (negative max_skew: no
 * such limit) -- a producer with a clock years ahead would otherwise
 * store a record no correct one could replace (put-if-newer).  Pass now 0
 * to skip both checks, e.g. when reading back what is already stored.  On
 * failure err says what is wrong with which field. */
int td_record_parse(const char *json, size_t len, int64_t now, int64_t max_skew,
                    td_record **out, char *err, size_t errlen);

/* What jansson found wrong with JSON text, and where, in words that
 * never quote the text: jansson's own message ends in "near '<the input
 * so far>'", which for a record is part of a token, and a parse error
 * reaches logs and answers (/readyz answers anyone).  Writes "JSON 无效:
 * <what> (第 L 行第 C 列，第 B 字节)" to buf; returns buf. */
struct json_error_t;
const char *td_record_json_error(const struct json_error_t *je, char *buf, size_t len);

/* Builds a record from fields (the refresher's path). */
int td_record_new(const struct td_record_fields *f, td_record **out);

void td_record_free(td_record *r);

const char *td_record_token(const td_record *r);
/* The token named by field ("access_token" or "tenant_access_token");
 * NULL when the record has no such field. */
const char *td_record_field(const td_record *r, const char *field);
int64_t td_record_generated(const td_record *r);
int64_t td_record_expires(const td_record *r);

/* The record as compact JSON text, in the seed's field order, extras after.
 * The returned string belongs to the record (serialised once). */
const char *td_record_json(const td_record *r, size_t *len);

#endif
