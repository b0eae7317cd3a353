/*
 * log -- one line per event on stderr, in the seed's form
 *     [YYYY-MM-DD HH:MM:SS] message
 *
 * Secrets never reach a log: callers print tokens through td_log_fp()
 * ("t-g104…PB") and secrets and keys through td_log_secret_fp()
 * ("sha256:1a2b3c4d").
 */
#ifndef TD_LOG_H
#define TD_LOG_H

#include <stddef.h>
#include <stdarg.h>

/* Writes one whole line with a single write(2), so lines from several
 * threads never interleave. */
void td_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void td_logv(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Silences td_log (for commands whose stdout is the result and whose
 * stderr a script may not want). */
void td_log_set_quiet(int quiet);

/* Sends the lines whose message is exactly one of `messages` (a
 * NULL-terminated array the caller keeps alive) to fd instead of stderr;
 * NULL sends every line to stderr again.  For `tokendist check`, whose
 * report on stdout is the seed's 预期输出 -- and that shows two of the
 * upload's timestamped log lines inside step 2 -- while every other log
 * line stays on stderr.  Set it before any thread logs. */
void td_log_route(const char *const *messages, int fd);

/* A token's fingerprint, safe to log: the first 5 and the last 2
 * characters around an ellipsis ("t-g10…PB") for long values, only the
 * length for short ones.  For tokens only, which expire within two hours
 * and are easier to match up by eye this way.  Returns buf. */
#define TD_FP_LEN 32
const char *td_log_fp(const char *token, char buf[TD_FP_LEN]);

/* A secret's fingerprint: "sha256:" and the first 8 hex digits of its
 * SHA-256 ("sha256:1a2b3c4d"), none of its characters; "(无)" when
 * unset.  For everything that does not expire by itself -- the app
 * secret, push and read keys, the Gitee access token, the webhook URL and
 * its secret, the Tencent API key -- in logs and --print-config.  Two
 * hosts configured alike print the same fingerprint, so an operator can
 * compare settings without showing them (`printf %s KEY | sha256sum`).
 * Returns buf. */
const char *td_log_secret_fp(const char *secret, char buf[TD_FP_LEN]);

#endif
