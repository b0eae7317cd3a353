/*
 * tokendist.h -- public face of libtokendist.
 *
 * One return convention everywhere in tokendist: 0 (TD_OK) on success, a
 * negative TD_E* code on failure, and td_strerror() for a short text.  Calls
 * that can fail for a reason worth telling a person also fill a caller
 * supplied `err` buffer with a full sentence (what failed, where, what next).
 */
#ifndef TOKENDIST_H
#define TOKENDIST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TD_VERSION "0.1.0"

enum {
    TD_OK = 0,
    TD_ERR = -1,          /* unspecified failure */
    TD_ENOMEM = -2,       /* out of memory */
    TD_EINVAL = -3,       /* bad input: argument, record, request, setting */
    TD_ENOTFOUND = -4,    /* no such token (or it has expired) */
    TD_ECONFLICT = -5,    /* record older than the stored one */
    TD_EUNAVAIL = -6,     /* temporarily unavailable: try again later */
    TD_EIO = -7,          /* storage or file I/O failed */
    TD_EAUTH = -8,        /* missing or wrong credentials */
    TD_EHTTP = -9,        /* HTTP transport failed or unexpected status */
    TD_EUPSTREAM = -10,   /* upstream answered with an error (Feishu code != 0) */
    TD_ETOOBIG = -11,     /* input over its bound */
    TD_EEXPIRED = -12,    /* token expired or expiring within the minimum */
    TD_ETIMEOUT = -13,    /* timed out */
    TD_ERATELIMIT = -14,  /* upstream rate limit */
    TD__ELAST = -15
};

/* Short, static English text for a TD_E* code; never NULL. */
const char *td_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif /* TOKENDIST_H */
