/* notify -- see notify.h.  sd_notify(3) is used rather than writing to
 * NOTIFY_SOCKET by hand: it knows abstract sockets, WATCHDOG_PID and the
 * other details of the protocol. */
#include "notify.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

#ifdef TD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify(const char *state) { (void)sd_notify(0, state); }

long td_notify_watchdog_interval_ms(void)
{
    uint64_t usec = 0;

    /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us. */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return 0;
    return usec / 2000 > 0 ? (long)(usec / 2000) : 1;
}
#else
static void notify(const char *state) { (void)state; }

long td_notify_watchdog_interval_ms(void) { return 0; }
#endif

void td_notify_ready(void) { notify("READY=1"); }
void td_notify_watchdog(void) { notify("WATCHDOG=1"); }
void td_notify_stopping(void) { notify("STOPPING=1"); }

int td_notify_sigwait(const sigset_t *set)
{
    long ms = td_notify_watchdog_interval_ms();
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    for (;;) {
        int sig = ms ? sigtimedwait(set, NULL, &ts) : sigwaitinfo(set, NULL);
        if (sig > 0) return sig;
        if (errno == EAGAIN) td_notify_watchdog();  /* the timeout: still alive */
        else if (errno != EINTR) return 0;
    }
}
