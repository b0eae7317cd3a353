/*
 * store/s3 -- the pieces of the S3 store that are pure functions of their
 * input, for store/s3.c and its unit test (tests/unit/test_s3.c).  The
 * store itself is reached through store.h like every backend.
 */
#ifndef TD_STORE_S3_H
#define TD_STORE_S3_H

#include <stddef.h>
#include <stdint.h>

#define TD_S3_BUCKET_MAX 63
#define TD_S3_PREFIX_MAX 200
#define TD_S3_REGION_MAX 64     /* libcurl's bound on each part of CURLOPT_AWS_SIGV4 */

/* What an s3:// URL says. */
typedef struct td__s3_url {
    char bucket[TD_S3_BUCKET_MAX + 1];
    char prefix[TD_S3_PREFIX_MAX + 1];  /* "" or "a/b", no slash at either end */
    char scheme[6];                     /* "http" or "https" */
    char host[256];                     /* the endpoint's, without the bucket */
    int port;                           /* 0: the scheme's */
    char region[TD_S3_REGION_MAX + 1];
    int path_style;
    long revalidate_s;
    char creds_file[512];               /* credentials_file=: "" for the environment */
} td__s3_url;

/* The credentials of one family, whole: AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else TENCENTCLOUD_SECRETID /
 * _SECRETKEY / _SESSIONTOKEN (what SCF sets for a function with a role),
 * as get(ud, NAME) hands them out -- getenv, or a credentials file's
 * lines.  A key id of one family with the token of the other is always
 * refused, so the families are never mixed.  The pointers are get's;
 * token NULL without one; vars the names the three came under. */
typedef struct td__s3_creds_ref {
    const char *id, *secret, *token;
    const char *vars[3];
} td__s3_creds_ref;

/* TD_OK; TD_ENOTFOUND when neither family's key id is there; TD_EINVAL
 * with err naming the missing secret when an id is there without it. */
int td__s3_creds_pick(const char *(*get)(void *ud, const char *name), void *ud, td__s3_creds_ref *out,
                      char *err, size_t errlen);

/* Parses the part of an s3 store URL after "s3:", i.e.
 * "//BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=1&revalidate=S&credentials_file=PATH]".
 * The region defaults to the one in a COS or AWS endpoint's name
 * (cos.REGION.myqcloud.com, s3.REGION.amazonaws.com).  Returns TD_OK or
 * TD_EINVAL with err saying which part to fix. */
int td__s3_parse_url(const char *spec, td__s3_url *u, char *err, size_t errlen);

/* The URL of object PREFIX/rel: virtual-hosted (https://BUCKET.HOST/KEY)
 * or path style (https://HOST/BUCKET/KEY).  Keys are built only from
 * [A-Za-z0-9._/-], which need no percent-encoding: the path libcurl 7.88
 * signs as it is is then the canonical one.  TD_OK or TD_ETOOBIG. */
int td__s3_object_url(const td__s3_url *u, const char *rel, char *buf, size_t len);

/* Lowercase hex SHA-256 of n bytes (x-amz-content-sha256). */
void td__s3_sha256_hex(const void *p, size_t n, char out[65]);

/* The <Code> and <Message> of an S3 error document, printable ASCII
 * only, "" when absent. */
void td__s3_error_of(const char *body, size_t len, char *code, size_t codelen, char *msg, size_t msglen);

/* A lease object's body, {"owner": ID, "expires": UNIX_MS}: TD_OK, or
 * TD_EINVAL for anything else (another tool's object: treated as free). */
int td__s3_lease_parse(const char *body, size_t len, char *owner, size_t ownerlen, int64_t *expires_ms);

/* A record's version as the index carries it: the first 16 hex digits
 * of the SHA-256 of the ETag the service gave the record's PUT -- short,
 * so that TD_SNAP_NAMES_MAX names with their versions stay far below the
 * index's size bound, and the same for the same object whoever writes it. */
#define TD_S3_VERSION_LEN 17
void td__s3_version_of(const char *etag, char out[TD_S3_VERSION_LEN]);

/* One name of an index object, with its record's version ("" when the
 * index gives none: written by an older tokendist, or another tool). */
typedef struct td__s3_index_entry {
    char *name;
    char version[TD_S3_VERSION_LEN];
} td__s3_index_entry;

/* The names in an index object's body, {"names": [...], "versions":
 * {NAME: VERSION, ...}} ("versions" optional), sorted and without
 * duplicates; strings only (whether each is a valid token name is the
 * caller's question), versions only when they are 1-16 lowercase hex
 * digits.  Anything else reads as no names with *bad set (another tool
 * spoiled it: the next write rebuilds it).  TD_OK or TD_ENOMEM; free with
 * td__s3_index_free. */
int td__s3_index_parse(const char *body, size_t len, td__s3_index_entry **out, size_t *n, int *bad);
void td__s3_index_free(td__s3_index_entry *v, size_t n);

#endif
