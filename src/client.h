/*
 * client -- internals of libtokendist's client (its API is in
 * tokendist.h): how the answer of one source is judged.  Pure functions,
 * declared so the fuzzer runs exactly what td_client_get runs on what a
 * server, the Gitee file or the cache file hands it.
 */
#ifndef TD_CLIENT_H
#define TD_CLIENT_H

#include "httpc.h"
#include "record.h"
#include "tokendist.h"

#include <stddef.h>
#include <stdint.h>

/* min_remaining meaning "what the record's platform needs" (the default). */
#define TD__MIN_BY_PROVIDER (-2)

/* A record text (a 200 body, the Gitee file, the cache file) as a record
 * whose token of `kind` has more than min_remaining seconds (0 or less: any
 * time at all) left at `now`, the server's clock.  TD_EINVAL (malformed
 * record) or TD_EEXPIRED otherwise, with why saying which; *out is set
 * only on TD_OK. */
int td__client_judge(const char *text, size_t len, td_token_kind kind, long min_remaining,
                     int64_t now, td_record **out, char *why, size_t whylen);

/* An endpoint's answer to a GET of url: 200 goes to td__client_judge;
 * our server's 404 "Not found" is a wrong path (TD_EHTTP, why saying so:
 * endpoint.h), any other 404 TD_ENOTFOUND, 401/403 TD_EAUTH, anything else
 * TD_EHTTP, with why holding the reason phrase and the body's "error" or
 * "message".  url (may be NULL) only names the path in why. */
int td__client_endpoint_answer(const td_httpc_resp *resp, const char *url, td_token_kind kind,
                               long min_remaining, int64_t now, td_record **out, char *why, size_t whylen);

/* The cache file is the record plus two members naming what it holds
 * (docs/protocol.md, "The client cache file"): the token name, and the kind
 * -- the token record, or the jsapi_ticket derived from it. */
#define TD_CACHE_NAME_FIELD "tokendist_name"
#define TD_CACHE_KIND_FIELD "tokendist_kind"
#define TD_CACHE_KIND_TOKEN "token"
#define TD_CACHE_KIND_TICKET "jsapi_ticket"

/* The record text in a cache file (a leading BOM skipped), for a client of
 * token `name` and `kind`: TD_OK with *record (malloc'd, NUL-terminated,
 * the two members removed; the caller wipes and frees it) and *rlen.  A
 * file written for another name or kind is TD_ENOTFOUND (it holds no token
 * for this client); a file without the members, written before they
 * existed, counts as "default"'s token.  TD_EINVAL: not a JSON object, or
 * members of the wrong form.  why says which, in Chinese. */
int td__client_cache_open(const char *text, size_t len, const char *name, const char *kind, char **record,
                          size_t *rlen, char *why, size_t whylen);

/* Writes the cache file: json goes to a temporary file next to path
 * (0600), synced, closed and renamed onto path, so a reader sees the old
 * record or the new one, never half of one.  Missing folders of path are
 * created 0700.  Every descriptor is closed exactly once on every path,
 * and a failure leaves no temporary behind.  TD_OK, TD_EIO, or
 * TD_ETOOBIG when path is too long, with why saying what failed where. */
int td__client_write_cache(const char *path, const char *json, size_t len, char *why, size_t whylen);

/* What a command tells its user about the record c holds, besides the
 * token (Chinese, one line each, "" when there is nothing to say; never
 * a token): in fallback, which source served it when it was not the
 * first one asked and why the ones before failed; in cache, why the cache
 * file could not be written.  Not part of the public API: the tokendist
 * binary's commands print these. */
void td__client_notes(td_client *c, char *fallback, size_t flen, char *cache, size_t clen);

/* The source whose failure the last failed fetch returned (its code is
 * that source's, or it was the only source asked), TD_SOURCE_NONE when no
 * single source decided it (several had no token) or the last fetch
 * succeeded.  For the binary's hints: "check the API address" is wrong
 * advice when Gitee failed. */
td_source td__client_failed_source(td_client *c);

#endif
