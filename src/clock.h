/*
 * clock -- wall-clock time and the one time zone the process speaks.
 *
 * Token timestamps are Unix seconds; people read "YYYY-MM-DD HH:MM:SS" in
 * the configured zone (Asia/Shanghai by default, as the seed's users).
 *
 * Test clock (test builds only).  Refresh schedules, backoff, expiry and
 * Feishu's renewal window are hours long; the black-box tests move time
 * instead of sleeping through it.  It exists only where TD_TEST_HOOKS is
 * defined, which CMake does for this file when TD_TESTS is ON (scripts/test
 * builds); scripts/run's first configure, the .deb and the SCF zip set
 * TD_TESTS=OFF and contain none of it (tests/e2e/test_scf_package.py and
 * tests/package/test_deb.py check).  Even there it stays off unless the
 * environment names a file:
 *
 *     TOKENDIST_TEST_CLOCK_FILE=/tmp/x/clock   holding e.g. "5430000\n"
 *
 * Every reading -- td_clock_now, td_clock_now_ms and td_clock_mono_ms --
 * then adds that offset in milliseconds (a decimal integer, negative
 * allowed; no file yet means 0).  Wall and monotonic move together, so
 * token expiry and the refresher's schedule agree.  Why a file: a test
 * moves several processes at once (the refresher, the server it pushes to,
 * a client) and the Feishu double reads the same file (tests/doubles/
 * common.py, "clock_file"); a signal would need a handler in every process
 * and could not carry the amount.  The writer replaces the file with
 * rename(2); a reader stat(2)s the path at most once a millisecond (a stat
 * costs microseconds on a VM; a reading between stats, a vDSO clock read
 * and an uncontended lock) and re-reads it when its inode or mtime
 * changed.  So the new offset is in force in every process from its first
 * reading 1 ms or more after the rename, however busy the machine: the
 * writer waits a few ms before relying on it (tests/e2e/harness.py,
 * TestClock.advance).  Without the variable a reading costs one branch.
 *
 * A sleeper must notice a jump: td_clock_mono_deadline turns a deadline on
 * td_clock_mono_ms into the CLOCK_MONOTONIC time a pthread_cond_timedwait
 * (on a condition variable set to CLOCK_MONOTONIC) should give up at; with
 * the test clock on, it is at most 20 ms away (TEST_SLICE_MS), so a caller
 * that re-checks its deadline in a loop wakes within 20 ms of a jump past
 * it.  Moving time back is allowed too but is no wake-up: a sleeper then
 * sleeps longer, as it would on the real clock.
 *
 * Not moved: libmicrohttpd's and libcurl's timeouts, nor leases (lease.c
 * judges them on the real monotonic clock, the SQLite store on the real
 * wall clock, S3 on the service's Date, Redis on its own key expiry): a
 * jump takes no real time, so a lease's holder stays the holder across
 * it.  So a test may move time over a fleet on any store, as long as it
 * does not rely on a lease expiring.
 */
#ifndef TD_CLOCK_H
#define TD_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TD_TIME_LEN 20 /* "YYYY-MM-DD HH:MM:SS" + NUL */

/* Sets the zone for the whole process (TZ); call once at start, before
 * threads.  An IANA name missing from this system's tzdata falls back to a
 * fixed offset for the zones we know (Asia/Shanghai → UTC+8). */
int td_clock_set_zone(const char *name, char *err, size_t errlen);

int64_t td_clock_now(void);       /* Unix seconds */
int64_t td_clock_now_ms(void);    /* Unix milliseconds */
int64_t td_clock_mono_ms(void);   /* monotonic milliseconds, for intervals */

/* Sets *ts to the absolute CLOCK_MONOTONIC time at which a timed wait for
 * td_clock_mono_ms() to reach due_ms gives up (see above: sliced with the
 * test clock on).  The waiter must re-check td_clock_mono_ms() < due_ms
 * after every wake-up. */
void td_clock_mono_deadline(int64_t due_ms, struct timespec *ts);

/* Formats ts in the configured zone; returns buf. */
const char *td_clock_format(int64_t ts, char buf[TD_TIME_LEN]);

/* Parses "YYYY-MM-DD HH:MM:SS", "YYYY-MM-DD", an ISO "YYYY-MM-DDTHH:MM:SS"
 * (local zone) or plain Unix seconds. */
int td_clock_parse(const char *s, int64_t *out);

#endif
