/*
 * freeze -- noticing that this whole process was stopped for a while.
 *
 * SCF freezes an idle instance between invocations, for seconds or hours;
 * SIGSTOP and a paused VM do the same.  Nothing runs meanwhile, but the
 * clocks go on, so after the thaw every wait that was under way looks as
 * if it had run out: a refresher cycle "due" long ago, a request to the
 * store "timed out" although the service answered at once.  A thread that
 * wakes up after a freeze cannot tell from its own clock reading whether
 * it was held up by a freeze or by a slow peer; this module can, and is
 * the one place that says so:
 *
 *     int64_t mark = td_freeze_mark();
 *     rc = ask_the_store(...);                  // 5 s timeout
 *     if (rc == TD_ETIMEOUT && td_freeze_since(mark))
 *         rc = ask_the_store(...);              // the timeout was the freeze's
 *
 * A watcher thread (started on first use) looks at td_clock_mono_ms every
 * quarter second, and so does every call here; a look that comes
 * TD_FREEZE_MIN_MS later than the one before means the process was
 * stopped in between, until now.  So the first thread to run after a thaw
 * tells it, whichever it is, and a mark taken after that is not inside
 * the freeze.  With the test clock on (clock.h) a
 * jump ahead is a freeze too -- it is how the tests make one without
 * sleeping through it -- and a jump back is none.
 *
 * Threads: any.
 */
#ifndef TD_FREEZE_H
#define TD_FREEZE_H

#include <stdint.h>

/* A stop shorter than this is not told from a busy machine. */
#define TD_FREEZE_MIN_MS 2000

/* td_clock_mono_ms() now: the start of an interval that td_freeze_since
 * asks about.  Starts the watcher on first use. */
int64_t td_freeze_mark(void);

/* 1 when the process was frozen at some moment after mark (a
 * td_clock_mono_ms reading: td_freeze_mark, or a due time), else 0.  0 as
 * well when the watcher could not be started: then nothing counts as a
 * freeze. */
int td_freeze_since(int64_t mark);

#endif
