/*
 * clock -- wall-clock time and the one time zone the process speaks.
 *
 * Token timestamps are Unix seconds; people read "YYYY-MM-DD HH:MM:SS" in
 * the configured zone (Asia/Shanghai by default, as the seed's users).
 */
#ifndef TD_CLOCK_H
#define TD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define TD_TIME_LEN 20 /* "YYYY-MM-DD HH:MM:SS" + NUL */

/* Sets the zone for the whole process (TZ); call once at start, before
 * threads.  An IANA name missing from this system's tzdata falls back to a
 * fixed offset for the zones we know (Asia/Shanghai → UTC+8). */
int td_clock_set_zone(const char *name, char *err, size_t errlen);

int64_t td_clock_now(void);       /* Unix seconds */
int64_t td_clock_now_ms(void);    /* Unix milliseconds */
int64_t td_clock_mono_ms(void);   /* monotonic milliseconds, for intervals */

/* Formats ts in the configured zone; returns buf. */
const char *td_clock_format(int64_t ts, char buf[TD_TIME_LEN]);

/* Parses "YYYY-MM-DD HH:MM:SS", "YYYY-MM-DD", an ISO "YYYY-MM-DDTHH:MM:SS"
 * (local zone) or plain Unix seconds. */
int td_clock_parse(const char *s, int64_t *out);

#endif
