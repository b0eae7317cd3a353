/* notify -- see notify.h.
 *
 * The sd_notify protocol is written out here instead of linking libsystemd:
 * systemd documents it as a stable interface meant to be reimplemented
 * (one datagram per state to the AF_UNIX socket named by NOTIFY_SOCKET,
 * '@' meaning the abstract namespace), and libsystemd would load six more
 * shared libraries (libgcrypt, liblzma, liblz4, libcap, …) into every
 * tokendist process for these few lines — measurably more memory per
 * server. */
#define _GNU_SOURCE
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    int fd;

    if (!path || (path[0] != '/' && path[0] != '@') || (len = strlen(path)) < 2 ||
        len >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) return;
    (void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}

long td_notify_watchdog_interval_ms(void)
{
    const char *usec_s = getenv("WATCHDOG_USEC"), *pid_s = getenv("WATCHDOG_PID");
    unsigned long long usec;
    char *end;

    if (!usec_s) return 0;
    /* WATCHDOG_PID, when set, names the process the watchdog is for. */
    if (pid_s && (strtol(pid_s, &end, 10) != (long)getpid() || *end)) return 0;
    errno = 0;
    usec = strtoull(usec_s, &end, 10);
    if (errno || *end || usec == 0) return 0;
    return usec / 2000 > 0 ? (long)(usec / 2000) : 1;
}

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
