"""Hardening of `tokendist serve`: a full disk, HTTPS, connection limits,
idle timeouts and slow (slowloris) clients."""
import http.client
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import time
import unittest

from harness import DEADLINE, TestCase, make_record, request

PUSH = "pk-limits-4b7e0d2c91"
TOKEN = "t-limits000000000000000001"


def connect_from(src_ip, port, timeout=DEADLINE):
    """A TCP connection to the server from a chosen loopback address, so
    'attackers' and a well-behaved client have different source IPs."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src_ip, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(s, wait):
    """True when the server closes s within `wait` seconds."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class DiskFullTest(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, TOKEN]
        self.mnt = os.path.join(self.tmp, "small")
        os.mkdir(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here (%s): needs root" % r.stderr.strip())

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)

    def test_full_disk_keeps_serving_and_recovers(self):
        srv = self.server(["--push-key", PUSH], store="sqlite:" + os.path.join(self.mnt, "t.db")).start()
        now = int(time.time())
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN, generated=now), key=PUSH).status, 200)
        filler = os.path.join(self.mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass            # ENOSPC: the disk is full now
        finally:
            os.close(fd)
        big = make_record("t-wontfit00000000000000", generated=now + 1, padding="p" * 60000)
        r = srv.post("/release/get-token", big, key=PUSH)
        self.assertIn(r.status, (500, 503))
        self.assertFalse(r.json()["success"])
        self.assertIn("Failed to store token", r.json()["message"])
        self.assertIn("full", r.json()["message"])
        self.assertEqual(srv.get("/release/get-token").json()["access_token"], TOKEN)
        self.assertIn("存储失败", srv.log())
        os.unlink(filler)
        r = srv.post("/release/get-token", make_record("t-afterspace000000000", generated=now + 2), key=PUSH)
        self.assertEqual(r.status, 200)
        self.assertEqual(srv.get("/release/get-token").json()["access_token"], "t-afterspace000000000")


class TlsTest(TestCase):
    def test_https_with_a_self_signed_certificate(self):
        self.secrets += [PUSH, TOKEN]
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        srv = self.server(["--push-key", PUSH, "--tls-cert", cert, "--tls-key", key]).start(wait=False)
        ctx = ssl.create_default_context(cafile=cert)

        def call(method, path, body=None, headers=None):
            c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()

        deadline = time.time() + DEADLINE
        while True:
            try:
                status, _ = call("GET", "/healthz")
                break
            except OSError:
                if time.time() > deadline:
                    self.fail("https server did not come up:\n" + srv.log())
                time.sleep(0.1)
        self.assertEqual(status, 200)
        status, body = call("POST", "/release/get-token", json.dumps(make_record(TOKEN)),
                            {"Authorization": "Bearer " + PUSH, "Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        status, body = call("GET", "/release/get-token")
        self.assertEqual(json.loads(body)["access_token"], TOKEN)
        self.assertIn("https://127.0.0.1", srv.log())
        # Plain HTTP to the TLS port gets no token.
        with self.assertRaises((http.client.HTTPException, OSError)):
            r = request(srv.port, "GET", "/release/get-token", timeout=3)
            if r.status == 200:
                raise AssertionError("served over plain HTTP")
            raise http.client.HTTPException("refused")
        # A wrong certificate authority is refused by the client, as it should.
        with self.assertRaises(ssl.SSLError):
            c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ssl.create_default_context(), timeout=5)
            c.request("GET", "/healthz")

    def test_clients_trust_curl_ca_bundle(self):
        """CURL_CA_BUNDLE names the CA certificates every outgoing HTTPS
        request trusts (src/httpc.c), as for curl: what the SCF package's
        launcher and the container image set to the bundled certificates
        (docs/deploy-scf.md), since CentOS 7 and an empty image keep theirs
        elsewhere or nowhere."""
        self.secrets.append(PUSH)       # the token is get's output
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        srv = self.server(["--push-key", PUSH, "--tls-cert", cert, "--tls-key", key]).start(wait=False)
        self.wait_log(srv, "https://127.0.0.1")
        url = "https://127.0.0.1:%d/release/get-token" % srv.port
        # The server's own certificate authority: the record is pushed and read.
        now = int(time.time())
        push = subprocess.run(["curl", "-sS", "--cacert", cert, "-H", "Authorization: Bearer " + PUSH,
                               "-H", "Content-Type: application/json", "--data-binary",
                               json.dumps(make_record(TOKEN, generated=now)), url],
                              capture_output=True, text=True, timeout=DEADLINE)
        self.assertIn("Token stored successfully", push.stdout, push.stderr)
        r = self.cli("get", "--url", url, env={"CURL_CA_BUNDLE": cert})
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"), r.stderr)
        # The system's authorities do not know it: refused, and said why.
        r = self.cli("get", "--url", url, env={"CURL_CA_BUNDLE": ""})
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")

    def test_tls_flags_go_together(self):
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", "sqlite:" + self.tmp + "/t.db",
                     "--tls-cert", "/nonexistent.pem")
        self.assertEqual(r.returncode, 2)     # a bad setting, refused before the store is opened
        self.assertIn("设置了 --tls-cert (TOKENDIST_TLS_CERT)，却没有 --tls-key", r.stderr)
        self.assertFalse(os.path.exists(self.tmp + "/t.db"))


class ConnectionLimitTest(TestCase):
    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 8192)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        super().tearDown()

    def test_per_ip_limit(self):
        srv = self.server(["--conn-per-ip", "5"]).start()
        for _ in range(5):
            self.socks.append(connect_from("127.0.0.2", srv.port))
        extra = connect_from("127.0.0.2", srv.port)
        self.socks.append(extra)
        self.assertTrue(closed_by_peer(extra, DEADLINE), "a sixth connection from one address was kept")
        # Other addresses are not affected.
        self.assertEqual(srv.get("/healthz").status, 200)

    def test_idle_connections_time_out(self):
        # Closed after about 1 s; waited for up to 20 s, which a busy machine
        # never needs and the default (30 s) would not meet.
        srv = self.server(["--conn-timeout", "1"]).start()
        s = connect_from("127.0.0.1", srv.port)
        self.socks.append(s)
        self.assertTrue(closed_by_peer(s, 20))

    def test_idle_and_slowloris_clients_do_not_starve_others(self):
        timeout = 10
        srv = self.server(["--push-key", PUSH, "--conn-per-ip", "0", "--conn-timeout", str(timeout)]).start()
        self.secrets += [PUSH, TOKEN]
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN), key=PUSH).status, 200)
        for i in range(1000):   # idle: connected, never a byte
            self.socks.append(connect_from("127.0.0.3", srv.port))
        slow = []
        for i in range(100):    # slowloris: a request line, then headers a byte at a time
            s = connect_from("127.0.0.4", srv.port)
            s.sendall(b"GET /release/get-token HTTP/1.1\r\nHost: localhost\r\n")
            slow.append(s)
        self.socks += slow
        worst = 0.0
        for round_ in range(20):
            for s in slow:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            t0 = time.time()
            r = request(srv.port, "GET", "/release/get-token", timeout=DEADLINE)
            worst = max(worst, time.time() - t0)
            self.assertEqual(r.status, 200)
        # A server stuck behind them would answer only as they time out.
        self.assertLess(worst, timeout / 2, "a normal client waited %.3f s behind idle/slow clients" % worst)
        # The idle ones are dropped after --conn-timeout.
        self.assertTrue(closed_by_peer(self.socks[0], timeout + DEADLINE))


if __name__ == "__main__":
    unittest.main()
