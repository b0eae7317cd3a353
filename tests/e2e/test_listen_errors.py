"""`tokendist serve` that cannot listen says why, with the port it tried:
a port that needs privileges (EACCES: below the system's
ip_unprivileged_port_start) and an address this machine does not have
(EADDRNOTAVAIL) are named as such -- not as "another process" -- and the
server exits 1 before it fetches or pushes anything.  (A port in use:
test_lifecycle.)"""
import os
import shutil
import subprocess
import unittest

import harness

UNPRIV = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


def unprivileged_port_start():
    try:
        with open(UNPRIV) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024


class ListenErrors(harness.TestCase):
    def serve(self, listen, prefix=()):
        r = subprocess.run(list(prefix) + [harness.BIN, "serve", "--listen", listen, "--store", "memory:"],
                           capture_output=True, text=True, timeout=harness.DEADLINE, cwd="/")
        self.outputs.append(r.stdout + r.stderr)
        return r

    def test_privileged_port_says_it_needs_privileges(self):
        start = unprivileged_port_start()
        if start <= 1:
            self.skipTest("every port is unprivileged here (%s = %d)" % (UNPRIV, start))
        prefix = []
        if os.geteuid() == 0:
            # Root may bind anything: run as nobody, without capabilities.
            if not shutil.which("setpriv"):
                self.skipTest("running as root without setpriv")
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
        r = self.serve("127.0.0.1:1", prefix)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("没有权限监听端口 1 (--listen 127.0.0.1:1, permission denied)", r.stderr)
        self.assertIn("%d 以下的端口只有 root 或有 CAP_NET_BIND_SERVICE" % start, r.stderr)
        self.assertNotIn("另一个", r.stderr)
        self.assertNotIn("已启动", r.stderr)

    def test_address_not_on_this_machine_is_named(self):
        port = harness.free_port()
        r = self.serve("192.0.2.1:%d" % port)          # TEST-NET-1: never a local address
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("本机没有地址 192.0.2.1 (--listen 192.0.2.1:%d, address not available)" % port, r.stderr)
        self.assertIn("ip addr", r.stderr)
        self.assertNotIn("另一个", r.stderr)


if __name__ == "__main__":
    unittest.main()
