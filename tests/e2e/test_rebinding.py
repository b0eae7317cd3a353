"""Black-box tests of the Host rule against DNS rebinding.

A web page whose name was re-pointed at 127.0.0.1 reaches a local server
as same-origin, but its requests still carry its own name in Host.  A
loopback listener answers only Hosts naming the loopback (localhost, a
loopback IP, any port) or an --allowed-host, with 421 otherwise; /healthz
stays open for local health checks.  A listener on another address
(0.0.0.0 here, reached through 127.0.0.1) applies the rule only when
--allowed-host is set."""
import json
import socket
import time
import unittest

from harness import TestCase, free_port, make_record, request

PUSH = "pk-rebind-4c6e8a0b2d4f6a8c0e"
TOKEN = "t-g1044rebindTokenAAAAAAAAAAA"


def raw(port, data):
    """Sends raw request bytes; returns (status, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class HostRuleTest(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, TOKEN]

    def start(self, *args, listen=None):
        port = free_port()
        extra = ["--listen", "%s:%d" % (listen, port)] if listen else []
        store = "sqlite:%s/host-%d.db" % (self.tmp, len(self.servers))
        srv = self.server(["--push-key", PUSH] + list(args) + extra, port=port, store=store).start()
        self.assertEqual(srv.post("/get-token", make_record(TOKEN), key=PUSH).status, 200)
        return srv

    def call(self, srv, host, method="GET", path="/get-token", body=None, key=None):
        h = {"Host": host}
        if key:
            h["Authorization"] = "Bearer " + key
        return request(srv.port, method, path, body=body, headers=h)

    def assertRefused(self, r, what):
        self.assertEqual(r.status, 421, what)
        msg = r.json()["error"]
        self.assertIn("--allowed-host", msg, what)
        self.assertIn("DNS 重绑定", msg, what)

    def test_loopback_listener_answers_only_loopback_names(self):
        srv = self.start("--allowed-host", "tokens.example.com")
        p = srv.port
        for host in ("evil.example", "evil.example:%d" % p, "localhost.evil.example", "127.0.0.1.nip.io:%d" % p,
                     "0.0.0.0:%d" % p):
            self.assertRefused(self.call(srv, host), host)
        r = self.call(srv, "evil.example:%d" % p)
        self.assertIn("evil.example", r.json()["error"])
        self.assertEqual(r.headers["content-type"], "application/json; charset=utf-8")
        # Every path and method but /healthz: a rebinding page learns nothing,
        # writes nothing.
        newer = make_record("t-g1044rebindWriteBBBBBBBBBB", generated=int(time.time()) + 5)
        self.assertRefused(self.call(srv, "evil.example", "POST", body=newer, key=PUSH), "POST")
        for path in ("/readyz", "/metrics", "/v1/tokens/default", "/nowhere"):
            self.assertRefused(self.call(srv, "evil.example", path=path), path)
        self.assertRefused(self.call(srv, "evil.example", "OPTIONS"), "OPTIONS")
        self.assertEqual(self.call(srv, "evil.example", path="/healthz").status, 200)

        for host in ("localhost", "localhost:%d" % p, "LOCALHOST:%d" % p, "127.0.0.1:%d" % p, "127.0.0.2",
                     "[::1]:%d" % p, "[::1]", "tokens.example.com", "Tokens.Example.COM:443"):
            r = self.call(srv, host)
            self.assertEqual((r.status, r.json().get("access_token")), (200, TOKEN), host)
        # HTTP/1.0 without Host is no browser's.
        status, body = raw(p, b"GET /get-token HTTP/1.0\r\n\r\n")
        self.assertEqual((status, json.loads(body)["access_token"]), (200, TOKEN))
        status, _ = raw(p, b"GET /get-token HTTP/1.0\r\nHost: evil.example\r\n\r\n")
        self.assertEqual(status, 421)
        # A name that is not ASCII is echoed as '?', the answer still JSON.
        status, body = raw(p, b"GET /get-token HTTP/1.1\r\nHost: \xe4\xbe\x8b" + b"x" * 200 +
                           b"\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 421)
        self.assertIn("'???" + "x" * 97 + "'", json.loads(body)["error"])
        # The refused write changed nothing.
        self.assertEqual(srv.get("/get-token").json()["access_token"], TOKEN)
        self.assertIn('status="421"', srv.get("/metrics").body.decode())

    def test_default_loopback_listener_and_environment(self):
        srv = self.start(listen="localhost")
        self.assertRefused(self.call(srv, "tokens.example.com"), "no names allowed yet")
        self.assertEqual(self.call(srv, "localhost:%d" % srv.port).status, 200)
        srv = self.server(["--push-key", PUSH], store="sqlite:%s/env.db" % self.tmp,
                          env={"TOKENDIST_ALLOWED_HOSTS": "a.example, b.example"}).start()
        for host in ("a.example", "b.example:8443"):
            self.assertEqual(self.call(srv, host).status, 404, host)   # answered: nothing stored
        self.assertRefused(self.call(srv, "c.example"), "c.example")

    def test_non_loopback_listener(self):
        # 0.0.0.0 listens on every interface: not a loopback listener, so
        # Host is not looked at ...
        srv = self.start(listen="0.0.0.0")
        for host in ("evil.example", "tokens.example.com:%d" % srv.port, "203.0.113.5"):
            self.assertEqual(self.call(srv, host).status, 200, host)
        # ... until names are allowed: then the same rule as on the loopback.
        srv = self.start("--allowed-host", "tokens.example.com", listen="0.0.0.0")
        self.assertRefused(self.call(srv, "evil.example"), "evil.example")
        self.assertRefused(self.call(srv, "203.0.113.5:%d" % srv.port), "an address not allowed")
        for host in ("tokens.example.com", "localhost:%d" % srv.port, "127.0.0.1"):
            self.assertEqual(self.call(srv, host).status, 200, host)
        self.assertEqual(self.call(srv, "evil.example", path="/healthz").status, 200)

    def test_malformed_host_is_a_bad_request(self):
        # Two Host lines: the rule judged the first (MHD's lookup), so
        # "localhost" then "evil.example" was answered.  A control byte or
        # a port no TCP has is no Host either.  400 on every listener and
        # path (RFC 9112 3.2), /healthz too, before the rule and the keys.
        for srv in (self.start("--allowed-host", "tokens.example.com"), self.start(listen="0.0.0.0")):
            p = srv.port
            for hosts in ((b"localhost", b"evil.example"), (b"evil.example", b"localhost"),
                          (b"localhost", b"localhost")):
                for path in (b"/get-token", b"/healthz", b"/v1/tokens/default"):
                    status, body = raw(p, b"GET " + path + b" HTTP/1.1\r\nHost: " + hosts[0] + b"\r\nhost: " +
                                       hosts[1] + b"\r\nConnection: close\r\n\r\n")
                    self.assertEqual((status, json.loads(body)),
                                     (400, {"error": "请求有 2 个 Host 头: 只能有一个 (RFC 9112)"}), (hosts, path))
            status, body = raw(p, b"POST /get-token HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n"
                                  b"Authorization: Bearer " + PUSH.encode() + b"\r\nContent-Length: 2\r\n"
                                  b"Connection: close\r\n\r\n{}")
            self.assertEqual((status, json.loads(body)["success"]), (400, False))
            self.assertIn("2 个 Host 头", json.loads(body)["message"])
            for host, says in ((b"local\x01host", "控制字符"), (b"localhost\x1b[2J", "控制字符"),
                               (b"local host", "控制字符或空格"), (b"localhost:99999999999999999999", "端口"),
                               (b"127.0.0.1:65536", "端口")):
                status, body = raw(p, b"GET /get-token HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
                self.assertEqual(status, 400, host)
                self.assertIn(says, json.loads(body)["error"], host)
        # A NUL: libmicrohttpd 1.0 answers 400 itself; 0.9.x (Debian 12)
        # ends the value there, so the rule judges what precedes it, and
        # never a loopback name hidden behind it.
        loopback = self.servers[0].port
        status, _ = raw(loopback, b"GET /get-token HTTP/1.1\r\nHost: evil.example\x00localhost\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertIn(status, (400, 421))
        # The token is still served to one good Host.
        self.assertEqual(self.call(self.servers[0], "localhost").json()["access_token"], TOKEN)

    def test_bad_allowed_host_is_a_startup_error(self):
        for bad in ("http://tokens.example.com", "tokens.example.com:443", "a/b"):
            r = self.cli("serve", "--store", "sqlite:%s/x.db" % self.tmp, "--listen", "127.0.0.1:0",
                         "--allowed-host", bad)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("选项 --allowed-host 的值无效: '%s'" % bad, r.stderr)


if __name__ == "__main__":
    unittest.main()
