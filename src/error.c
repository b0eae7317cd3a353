/* error -- td_strerror, the text of the one error convention (tokendist.h). */
#include "tokendist.h"

const char *td_strerror(int code)
{
    static const char *const text[] = {
        [0] = "ok",
        [-TD_ERR] = "failed",
        [-TD_ENOMEM] = "out of memory",
        [-TD_EINVAL] = "invalid input",
        [-TD_ENOTFOUND] = "token not found or expired",
        [-TD_ECONFLICT] = "older than the stored token",
        [-TD_EUNAVAIL] = "temporarily unavailable",
        [-TD_EIO] = "storage or file I/O failed",
        [-TD_EAUTH] = "missing or wrong credentials",
        [-TD_EHTTP] = "HTTP request failed",
        [-TD_EUPSTREAM] = "upstream answered with an error",
        [-TD_ETOOBIG] = "input too large",
        [-TD_EEXPIRED] = "token expired or expiring too soon",
        [-TD_ETIMEOUT] = "timed out",
        [-TD_ERATELIMIT] = "rate limited by upstream",
        [-TD_ECANCELED] = "canceled: shutting down",
    };
    if (code > 0 || code <= TD__ELAST) return "unknown error";
    return text[-code];
}
