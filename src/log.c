/* log -- see log.h. */
#include "log.h"
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_quiet;

void td_log_set_quiet(int quiet) { log_quiet = quiet; }

void td_logv(const char *fmt, va_list ap)
{
    char line[2048];
    char when[TD_TIME_LEN];
    int n, m;

    if (log_quiet) return;
    td_clock_format(td_clock_now(), when);
    n = snprintf(line, sizeof line, "[%s] ", when);
    m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    n += m;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2; /* truncated */
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

void td_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_logv(fmt, ap);
    va_end(ap);
}

const char *td_log_fp(const char *secret, char buf[TD_FP_LEN])
{
    size_t len = secret ? strlen(secret) : 0;

    if (len == 0)
        snprintf(buf, TD_FP_LEN, "(none)");
    else if (len < 16)  /* too short to show any of it safely */
        snprintf(buf, TD_FP_LEN, "(%zu chars)", len);
    else
        snprintf(buf, TD_FP_LEN, "%.5s…%s", secret, secret + len - 2);
    return buf;
}
