"""systemd's notify protocol, black-box: `tokendist serve` and the
`tokendist refresh` daemon send READY=1 once they do their job, WATCHDOG=1
at half of WATCHDOG_USEC, and STOPPING=1 on SIGTERM, to the datagram socket
named by NOTIFY_SOCKET (here a socket this test listens on, as systemd's
would)."""
import os
import signal
import socket
import subprocess
import time
import unittest

import harness
from feishu_env import FeishuEnv


class NotifyTest(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.sock_path = os.path.join(self.tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.addCleanup(self.sock.close)

    def notify_env(self, watchdog_usec=None, **extra):
        env = {"NOTIFY_SOCKET": self.sock_path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra)
        return env

    def messages(self, seconds):
        """Every datagram that arrives within the next `seconds`."""
        got, deadline = [], time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return got
            self.sock.settimeout(left)
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return got

    def pings(self, n, since):
        """Waits for the next n WATCHDOG=1; checks their pace against
        WATCHDOG_USEC (self.usec) without timing a window: never more than
        one per half of it since `since` (before the process started), which
        a busy machine cannot break, and a median spacing under WATCHDOG_USEC
        itself, systemd's deadline."""
        times = []
        while len(times) < n:
            self.first("WATCHDOG=1")
            times.append(time.monotonic())
        half = self.usec / 2e6
        self.assertLessEqual(n, (times[-1] - since) / half + 1, "pinged faster than every %.2f s" % half)
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        self.assertLess(gaps[len(gaps) // 2], self.usec / 1e6, "gaps between pings: %s" % gaps)

    def first(self, want, timeout=harness.DEADLINE):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            if want in msg.split("\n"):
                return msg
        self.fail("no %s on NOTIFY_SOCKET within %d s" % (want, timeout))

    def test_serve_ready_after_listening_watchdog_and_stopping(self):
        # 4 s: pings every 2 s leave a starved CI machine 2 s of slack before
        # the median gap reaches systemd's deadline, while a pinger that
        # waited the whole WATCHDOG_USEC would still fail.
        self.usec = 4000000
        since = time.monotonic()
        srv = self.server(env=self.notify_env(watchdog_usec=self.usec)).start(wait=False)
        self.first("READY=1")
        # READY means the socket listens: no retry needed.
        self.assertEqual(srv.get("/healthz").status, 200)
        self.pings(4, since)                # every 2 s, half of WATCHDOG_USEC
        srv.proc.send_signal(signal.SIGTERM)
        self.first("STOPPING=1")
        self.assertEqual(srv.stop(), 0)

    def test_no_watchdog_when_not_asked_or_meant_for_another_pid(self):
        srv = self.server(env=self.notify_env(watchdog_usec=200000, WATCHDOG_PID="1")).start(wait=False)
        self.first("READY=1")
        self.assertEqual(self.messages(0.6), [])
        self.assertEqual(srv.stop(), 0)
        srv2 = self.server(env=self.notify_env()).start(wait=False)
        self.first("READY=1")
        self.assertEqual(self.messages(0.5), [])
        self.assertEqual(srv2.stop(), 0)

    def test_serve_that_cannot_listen_never_says_ready(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        self.addCleanup(blocker.close)
        srv = self.server(env=self.notify_env(), port=blocker.getsockname()[1]).start(wait=False)
        self.assertNotEqual(srv.proc.wait(harness.DEADLINE), 0)
        self.assertEqual(self.messages(0.2), [])

    def test_refresh_daemon(self):
        self.start_feishu()
        self.start_endpoint()
        # 4 s: pings every 2 s leave a starved CI machine 2 s of slack before
        # the median gap reaches systemd's deadline, while a pinger that
        # waited the whole WATCHDOG_USEC would still fail.
        self.usec = 4000000
        since = time.monotonic()
        env = dict(os.environ, **self.feishu_env(), **self.notify_env(watchdog_usec=self.usec))
        log = open(os.path.join(self.tmp, "refresh.log"), "w")
        p = subprocess.Popen([harness.BIN, "refresh"], env=env, stdout=log, stderr=log)
        try:
            self.first("READY=1")
            self.pings(3, since)
            p.send_signal(signal.SIGTERM)
            self.first("STOPPING=1")
            self.assertEqual(p.wait(harness.DEADLINE), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
            with open(log.name, encoding="utf-8") as f:
                self.outputs.append(f.read())


if __name__ == "__main__":
    unittest.main()
