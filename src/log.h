/*
 * log -- one line per event on stderr, in the seed's form
 *     [YYYY-MM-DD HH:MM:SS] message
 *
 * Secrets never reach a log: callers print tokens and keys through
 * td_log_fp(), which keeps only a short fingerprint ("t-g104…PB").
 */
#ifndef TD_LOG_H
#define TD_LOG_H

#include <stddef.h>
#include <stdarg.h>

/* Writes one whole line with a single write(2), so lines from several
 * threads never interleave. */
void td_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void td_logv(const char *fmt, va_list ap);

/* Silences td_log (for commands whose stdout is the result and whose
 * stderr a script may not want). */
void td_log_set_quiet(int quiet);

/* A fingerprint of a secret that is safe to log: the first 5 and the last 2
 * characters around an ellipsis for long values, only the length for short
 * ones.  Returns buf. */
#define TD_FP_LEN 32
const char *td_log_fp(const char *secret, char buf[TD_FP_LEN]);

#endif
