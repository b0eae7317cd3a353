/*
 * notify -- telling systemd how the service is doing (Type=notify units).
 *
 * READY=1 once the service does its job (serve: the HTTP server listens;
 * refresh: the refresher thread runs), WATCHDOG=1 at half of the
 * WatchdogSec= that systemd passes in WATCHDOG_USEC, and STOPPING=1 when a
 * signal to stop arrives.  Everything here is a no-op outside systemd (no
 * NOTIFY_SOCKET), so commands call it unconditionally.
 */
#ifndef TD_NOTIFY_H
#define TD_NOTIFY_H

#include <signal.h>

void td_notify_ready(void);
void td_notify_watchdog(void);
void td_notify_stopping(void);

/* Milliseconds between watchdog pings (half of WATCHDOG_USEC), or 0 when
 * the service manager asked for none. */
long td_notify_watchdog_interval_ms(void);

/* sigwait(3) for a main thread that has nothing else to do: waits for one
 * of the (blocked) signals in set and returns it, feeding the watchdog
 * meanwhile.  Returns 0 if waiting failed. */
int td_notify_sigwait(const sigset_t *set);

#endif
