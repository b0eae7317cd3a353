/* log -- see log.h. */
#include "log.h"
#include "clock.h"
#include "strbuf.h"
#include "tokendist.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int log_quiet;
static const char *const *route_messages;
static int route_fd = STDERR_FILENO;

void td_log_set_quiet(int quiet) { log_quiet = quiet; }

void td_log_route(const char *const *messages, int fd)
{
    route_messages = messages;
    route_fd = messages ? fd : STDERR_FILENO;
}

/* Where the line "[when] message\n" of len bytes goes: route_fd when its
 * message is one of route_messages, else stderr. */
static int line_fd(const char *line, size_t len, const char *when)
{
    size_t skip = strlen(when) + 3; /* "[" when "] " */

    if (!route_messages || len < skip + 1) return STDERR_FILENO;
    for (const char *const *m = route_messages; *m; m++)
        if (strlen(*m) == len - skip - 1 && !memcmp(line + skip, *m, len - skip - 1)) return route_fd;
    return STDERR_FILENO;
}

#define LINE_MAX_STACK 2048
#define LINE_MAX_HEAP (64u << 10)

/* Builds "[time] message\n" in b; TD_OK or b's error. */
__attribute__((format(printf, 3, 0)))
static int build_line(td_strbuf *b, const char *when, const char *fmt, va_list ap)
{
    va_list aq;

    va_copy(aq, ap);
    td_strbuf_printf(b, "[%s] ", when);
    td_strbuf_vprintf(b, fmt, aq);
    va_end(aq);
    return td_strbuf_puts(b, "\n");
}

/* A line's pieces may have been cut by bounded buffers anywhere in it:
 * the line is mended (td_utf8_mend) so that no reader of the log -- a
 * terminal, journald, a log shipper -- sees half a character.
 * Most lines fit the stack buffer; a longer one (a client's error list)
 * is built on the heap up to 64 KB; beyond that, or without memory, the
 * line says so instead of showing a silently cut message. */
void td_logv(const char *fmt, va_list ap)
{
    char line[LINE_MAX_STACK];
    char when[TD_TIME_LEN];
    td_strbuf b, big;

    if (log_quiet) return;
    td_clock_format(td_clock_now(), when);
    td_strbuf_fixed(&b, line, sizeof line);
    if (build_line(&b, when, fmt, ap) == TD_OK) {
        b.len = td_utf8_mend(line, b.len);
        (void)!write(line_fd(line, b.len, when), line, b.len);
        return;
    }
    td_strbuf_heap(&big, LINE_MAX_HEAP);
    if (build_line(&big, when, fmt, ap) == TD_OK) {
        big.len = td_utf8_mend(big.buf, big.len);
        (void)!write(line_fd(td_strbuf_str(&big), big.len, when), td_strbuf_str(&big), big.len);
    } else {
        td_strbuf_fixed(&b, line, sizeof line);
        td_strbuf_printf(&b, "[%s] (日志行超过 %u 字节，未写出: %.200s…)\n", when, LINE_MAX_HEAP, fmt);
        (void)!write(STDERR_FILENO, line, b.len);
    }
    td_strbuf_free(&big);
}

void td_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_logv(fmt, ap);
    va_end(ap);
}

const char *td_log_fp(const char *token, char buf[TD_FP_LEN])
{
    size_t len = token ? strlen(token) : 0;

    if (len == 0)
        snprintf(buf, TD_FP_LEN, "(无)");
    else if (len < 16)  /* too short to show any of it safely */
        snprintf(buf, TD_FP_LEN, "(%zu 个字符)", len);
    else
        snprintf(buf, TD_FP_LEN, "%.5s…%s", token, token + len - 2);
    return buf;
}

const char *td_log_secret_fp(const char *secret, char buf[TD_FP_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!secret || !*secret) {
        snprintf(buf, TD_FP_LEN, "(无)");
        return buf;
    }
    if (!EVP_Digest(secret, strlen(secret), md, &mdlen, EVP_sha256(), NULL) || mdlen < 4) {
        snprintf(buf, TD_FP_LEN, "sha256:?");
        return buf;
    }
    memcpy(buf, "sha256:", 7);
    for (int i = 0; i < 4; i++) buf[7 + 2 * i] = hex[md[i] >> 4], buf[8 + 2 * i] = hex[md[i] & 15];
    buf[15] = '\0';
    OPENSSL_cleanse(md, sizeof md);
    return buf;
}
