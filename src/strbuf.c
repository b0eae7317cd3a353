/* strbuf -- see strbuf.h. */
#include "strbuf.h"
#include "tokendist.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void td_strbuf_fixed(td_strbuf *b, char *buf, size_t size)
{
    memset(b, 0, sizeof *b);
    b->buf = buf;
    b->cap = b->max = size;
    b->fixed = 1;
    if (size) buf[0] = '\0';
    else b->error = TD_ETOOBIG;
}

void td_strbuf_heap(td_strbuf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

/* Makes room for need more bytes of text plus the NUL. */
static int reserve(td_strbuf *b, size_t need)
{
    size_t avail = b->cap ? b->cap - b->len - 1 : 0, want, cap;
    char *nb;

    if (b->error) return b->error;
    if (need <= avail) return TD_OK;
    if (b->fixed || b->max == 0 || need > b->max - b->len - 1) return b->error = TD_ETOOBIG;
    want = b->len + need + 1;
    cap = b->cap ? b->cap : 64;
    while (cap < want) cap = cap > b->max / 2 ? b->max : cap * 2;
    if (!(nb = realloc(b->buf, cap))) return b->error = TD_ENOMEM;
    b->buf = nb;
    b->cap = cap;
    return TD_OK;
}

int td_strbuf_append(td_strbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) != TD_OK) return b->error;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return TD_OK;
}

int td_strbuf_puts(td_strbuf *b, const char *s) { return td_strbuf_append(b, s, strlen(s)); }

int td_strbuf_vprintf(td_strbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    if (b->error) return b->error;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return b->error = TD_EINVAL;
    if (reserve(b, (size_t)n) != TD_OK) return b->error;
    vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)n;
    return TD_OK;
}

int td_strbuf_printf(td_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = td_strbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int td_strbuf_append_cut(td_strbuf *b, const char *s, size_t max)
{
    size_t n = strlen(s), room;

    if (b->error) return b->error;
    room = b->cap ? b->cap - b->len - 1 : 0;
    if (!b->fixed && b->max > b->len + 1) room = b->max - b->len - 1;
    if (max && n > max) n = max;
    if (n > room) n = room;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;    /* s[n] continues a character */
    return td_strbuf_append(b, s, n);
}

size_t td_utf8_whole(const char *s, size_t n)
{
    size_t start = n, need;
    unsigned char lead;

    /* Back over at most three continuation bytes to the last lead byte. */
    while (start > 0 && n - start < 3 && ((unsigned char)s[start - 1] & 0xC0) == 0x80) start--;
    if (start == 0) return n;
    lead = (unsigned char)s[start - 1];
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (start - 1) < need ? start - 1 : n;
}

/* The length of the valid UTF-8 character at s (at most n bytes), or 0:
 * no overlong forms, no surrogates, nothing past U+10FFFF -- what
 * jansson checks. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned cp;
    size_t need, i;

    if (s[0] < 0x80) return 1;
    if (s[0] < 0xC2) return 0;
    need = s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : s[0] < 0xF5 ? 4 : 0;
    if (!need || n < need) return 0;
    cp = s[0] & (0x7F >> need);
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

size_t td_utf8_mend(char *s, size_t n)
{
    size_t r = 0, w = 0, k;

    while (r < n) {
        if (!(k = utf8_char((const unsigned char *)s + r, n - r))) {
            r++;            /* a stray byte: dropped */
            continue;
        }
        memmove(s + w, s + r, k);
        r += k, w += k;
    }
    s[w] = '\0';
    return w;
}

json_t *td_json_text(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *copy;
    json_t *j;

    if (!s) return json_string("");
    if (!(copy = malloc(n + 1))) return NULL;
    memcpy(copy, s, n + 1);
    j = json_stringn(copy, td_utf8_mend(copy, n));
    free(copy);
    return j;
}

int td_strbuf_error(const td_strbuf *b) { return b->error; }

const char *td_strbuf_str(const td_strbuf *b) { return b->buf && b->cap ? b->buf : ""; }

char *td_strbuf_take(td_strbuf *b, size_t *len)
{
    char *p = NULL;

    if (!b->fixed && !b->error && b->buf) {
        p = b->buf;
        if (len) *len = b->len;
        b->buf = NULL;
    }
    if (!b->fixed) {
        free(b->buf);
        td_strbuf_heap(b, b->max);
    }
    return p;
}

void td_strbuf_free(td_strbuf *b)
{
    if (!b || b->fixed) return;
    free(b->buf);
    td_strbuf_heap(b, b->max);
}
