/*
 * strbuf -- a bounded string builder: the one way tokendist assembles text
 * piece by piece (URLs, metrics, messages).
 *
 * A builder either writes into a caller's fixed buffer or grows on the
 * heap up to a declared ceiling (curl's dynbuf "toobig" idea).  It never
 * writes past its buffer and keeps the text NUL-terminated after every
 * call.  A failure is sticky: the first append that does not fit (or
 * cannot allocate) marks the builder, every later append is a no-op, and
 * the caller checks once at the end -- so `n += snprintf(...)` with a
 * length check after the fact is never needed.
 *
 *     td_strbuf b;
 *     char url[512];
 *     td_strbuf_fixed(&b, url, sizeof url);
 *     td_strbuf_printf(&b, "%s/open-apis/im/v1/messages?container_id=%s", base, chat);
 *     if (td_strbuf_error(&b)) ... // TD_ETOOBIG: the URL did not fit
 */
#ifndef TD_STRBUF_H
#define TD_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct td_strbuf {
    char *buf;
    size_t len;             /* bytes of text, without the NUL */
    size_t cap;             /* bytes of buf */
    size_t max;             /* ceiling on cap (heap builders) */
    int fixed;              /* buf belongs to the caller */
    int error;              /* TD_OK, or the first failure: TD_ETOOBIG / TD_ENOMEM */
} td_strbuf;

/* A builder over the caller's buf of size bytes (size >= 1). */
void td_strbuf_fixed(td_strbuf *b, char *buf, size_t size);

/* A heap builder that may grow to max bytes (text + NUL). */
void td_strbuf_heap(td_strbuf *b, size_t max);

/* Append; each returns the builder's error state after the call. */
int td_strbuf_append(td_strbuf *b, const char *s, size_t n);
int td_strbuf_puts(td_strbuf *b, const char *s);
int td_strbuf_printf(td_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int td_strbuf_vprintf(td_strbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Appends as much of s as fits in the room left (at most max bytes, 0:
 * no limit beyond the room), cut on a UTF-8 character boundary: for text
 * from elsewhere (a server's error message) whose tail may be dropped but
 * must never end in half a character.  Never fails for length. */
int td_strbuf_append_cut(td_strbuf *b, const char *s, size_t max);

/* How many of the first n bytes of s end on a whole UTF-8 character: n,
 * or less when a bounded snprintf cut the last character in half.  Most
 * messages are Chinese (three bytes a character) and pass through fixed
 * buffers; a JSON encoder refuses a cut one, and would drop it whole. */
size_t td_utf8_whole(const char *s, size_t n);

/* Drops, in place, every byte of the first n bytes of s that is not part
 * of a whole, valid UTF-8 character, and NUL-terminates what is left;
 * returns its length.  A message is often assembled from pieces that
 * bounded buffers cut (an upstream's long error inside our own words), so
 * half a character may sit anywhere in it, not only at its end; the log
 * and every JSON text go through this once, at the point of writing. */
size_t td_utf8_mend(char *s, size_t n);

/* s as a JSON string (new reference, NULL without memory), mended first
 * (td_utf8_mend): jansson refuses invalid UTF-8, and with it the whole
 * object the text belongs to -- a group notice, an error answer.  The
 * one way a message a person reads enters JSON. */
struct json_t;
struct json_t *td_json_text(const char *s);

/* TD_OK, or the first failure. */
int td_strbuf_error(const td_strbuf *b);

/* The text so far ("" for an empty builder); belongs to the builder. */
const char *td_strbuf_str(const td_strbuf *b);

/* A heap builder's buffer, handed to the caller (who frees it), with
 * *len set; the builder is reset.  NULL when empty or failed. */
char *td_strbuf_take(td_strbuf *b, size_t *len);

/* Frees a heap builder's buffer (not a fixed one's); NULL-safe. */
void td_strbuf_free(td_strbuf *b);

#endif
