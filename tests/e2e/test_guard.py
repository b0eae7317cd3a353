"""Black-box tests of the auth-failure guard and of who the client is.

A valid key is never refused: failures are limited per client address
(wrong and missing keys of a blocked address get 429 + Retry-After) without
touching the producer or the readers that share the address.  Behind a
--trusted-proxy the client is the address that proxy forwarded for, read
from the one header it sets (--real-ip-header), or without that setting
from whichever header the other does not contradict; without a trusted
proxy, X-Forwarded-For / X-Real-IP are whatever a client wrote and change
nothing."""
import time
import unittest

from harness import TestCase, make_record, request

PUSH = "pk-guard-3b9d7e1f0a2c4d6e8f"
READ = "rk-guard-5a7c9e1b3d5f7a9c"
TOKEN = "t-g1044guardTokenAAAAAAAAAAAA"
CLIENT_A = "198.51.100.7"
CLIENT_B = "203.0.113.9"
FORGED = "192.0.2.66"


class GuardTest(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, READ, TOKEN]

    def start(self, *args):
        store = "sqlite:%s/guard-%d.db" % (self.tmp, len(self.servers))
        srv = self.server(["--push-key", PUSH, "--read-key", READ] + list(args), store=store).start()
        self.assertEqual(self.post(srv, PUSH, gen_offset=-5).status, 200)
        return srv

    def post(self, srv, key, headers=None, gen_offset=0):
        """A record newer than the last one each time (so a right key gets
        200 unless it is refused)."""
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        self._gen = getattr(self, "_gen", int(time.time()) - 100) + 1
        return request(srv.port, "POST", "/release/get-token",
                       body=make_record(TOKEN, generated=self._gen + gen_offset), headers=h)

    def get(self, srv, key, headers=None):
        h = dict(headers or {})
        if key:
            h["X-Api-Key"] = key
        return request(srv.port, "GET", "/release/get-token", headers=h)

    def assertBlocked(self, r, what):
        self.assertEqual(r.status, 429, what)
        self.assertEqual(r.headers.get("retry-after"), "60", what)
        body = r.json()
        self.assertIn("认证失败次数过多", body.get("message", body.get("error")), what)

    def test_valid_keys_pass_a_blocked_address(self):
        srv = self.start()
        statuses = []
        for i in range(20):   # wrong push keys, wrong read keys, missing keys
            if i % 3 == 0:
                statuses.append(self.post(srv, "pk-guess-%04d" % i).status)
            elif i % 3 == 1:
                statuses.append(self.get(srv, "rk-guess-%04d" % i).status)
            else:
                statuses.append(self.get(srv, None).status)
        self.assertTrue(all(s in (401, 403) for s in statuses[:10]), statuses)
        self.assertEqual(statuses[10:], [429] * 10)

        # The same address: its right keys pass, its wrong ones wait.
        self.assertEqual(self.post(srv, PUSH).status, 200)
        r = self.get(srv, READ)
        self.assertEqual((r.status, r.json()["access_token"]), (200, TOKEN))
        r = request(srv.port, "POST", "/v1/tokens/default/invalid", body={"access_token": TOKEN},
                    headers={"Authorization": "Bearer " + READ})
        self.assertEqual(r.status, 501)                 # past the guard: nobody here refreshes
        self.assertBlocked(self.post(srv, "pk-guess-late"), "wrong push key")
        self.assertBlocked(self.post(srv, None), "missing push key")
        self.assertBlocked(self.get(srv, "rk-guess-late"), "wrong read key")
        self.assertBlocked(self.get(srv, None), "missing read key")
        self.assertEqual(self.get(srv, READ).status, 200)

        metrics = request(srv.port, "GET", "/metrics").body.decode()
        self.assertIn("tokendist_auth_blocked_total 14", metrics)
        self.assertIn("tokendist_auth_failures_total 24", metrics)
        self.assertIn("127.0.0.1 认证失败 10 次", srv.log())

    def test_behind_a_trusted_proxy_each_forwarded_client_is_limited_alone(self):
        # The proxy is 127.0.0.1; it appends the client it saw, so whatever
        # the client sent itself (FORGED) stands to the left.
        srv = self.start("--trusted-proxy", "127.0.0.1/32", "--real-ip-header", "X-Forwarded-For")
        via_a = {"X-Forwarded-For": "%s, %s" % (FORGED, CLIENT_A)}
        for i in range(10):
            self.assertEqual(self.post(srv, "pk-guess-%04d" % i, via_a).status, 403)
        self.assertBlocked(self.post(srv, "pk-guess-x", via_a), "client A")
        self.assertBlocked(self.get(srv, None, {"X-Forwarded-For": CLIENT_A}), "client A, read")
        # Nobody else is: not B, not the proxy's own address, not the
        # forged address A's requests carried -- and an X-Real-IP, which a
        # proxy that appends to X-Forwarded-For passes through as the
        # client wrote it, is never read (--real-ip-header X-Forwarded-For).
        self.assertEqual(self.post(srv, "pk-guess-b", {"X-Forwarded-For": CLIENT_B}).status, 403)
        self.assertEqual(self.post(srv, "pk-guess-r", {"X-Forwarded-For": CLIENT_B, "X-Real-IP": CLIENT_A}).status,
                         403)
        self.assertEqual(self.post(srv, "pk-guess-s", {"X-Real-IP": CLIENT_A}).status, 403)   # the proxy's, not A's
        self.assertEqual(self.post(srv, "pk-guess-p").status, 403)
        self.assertEqual(self.post(srv, "pk-guess-f", {"X-Forwarded-For": FORGED}).status, 403)
        # And A's right keys still pass.
        self.assertEqual(self.post(srv, PUSH, via_a).status, 200)
        self.assertEqual(self.get(srv, READ, via_a).status, 200)

        log = srv.log()
        self.assertIn("%s 认证失败 10 次" % CLIENT_A, log)
        self.assertIn("拒绝写入 /release/get-token (来自 %s)" % CLIENT_A, log)
        self.assertIn("(来自 %s)" % CLIENT_B, log)
        self.assertNotIn(FORGED + " 认证失败", log)

    def test_behind_a_proxy_that_sets_x_real_ip_a_client_xff_chooses_nothing(self):
        # nginx with `proxy_set_header X-Real-IP $remote_addr;` only: it
        # replaces X-Real-IP and passes the client's own X-Forwarded-For
        # through.  With --real-ip-header X-Real-IP that one is never read.
        srv = self.start("--trusted-proxy", "127.0.0.1/32", "--real-ip-header", "X-Real-IP")
        for i in range(10):
            forged = {"X-Real-IP": CLIENT_A, "X-Forwarded-For": "192.0.2.%d" % i}
            self.assertEqual(self.post(srv, "pk-guess-%04d" % i, forged).status, 403)
        self.assertBlocked(self.post(srv, "pk-guess-x", {"X-Real-IP": CLIENT_A, "X-Forwarded-For": FORGED}),
                           "client A, a new forgery")
        self.assertEqual(self.post(srv, "pk-guess-b", {"X-Real-IP": CLIENT_B, "X-Forwarded-For": CLIENT_A}).status,
                         403)
        self.assertEqual(self.post(srv, PUSH, {"X-Real-IP": CLIENT_A}).status, 200)
        log = srv.log()
        self.assertIn("%s 认证失败 10 次" % CLIENT_A, log)
        self.assertIn("(来自 %s)" % CLIENT_B, log)
        self.assertNotIn("192.0.2.", log)

    def test_without_a_header_setting_neither_kind_of_proxy_lets_a_client_choose(self):
        # No --real-ip-header: the server cannot tell which kind of proxy it
        # sits behind, so a header counts only when the other does not name
        # another address.  Behind nginx's `proxy_set_header X-Real-IP` (the
        # client's own X-Forwarded-For passed through) ...
        srv = self.start("--trusted-proxy", "127.0.0.1/32")
        for i in range(10):
            forged = {"X-Real-IP": CLIENT_A, "X-Forwarded-For": "192.0.2.%d" % i}
            self.assertEqual(self.post(srv, "pk-guess-%04d" % i, forged).status, 403)
        # ... those ten were the proxy's address, whatever they claimed: it
        # is blocked, A alone (no second header) is not, and neither is B.
        self.assertBlocked(self.post(srv, "pk-guess-x", {"X-Real-IP": CLIENT_A, "X-Forwarded-For": FORGED}),
                           "a new forgery")
        self.assertEqual(self.post(srv, "pk-guess-a", {"X-Real-IP": CLIENT_A}).status, 403)
        self.assertEqual(self.post(srv, "pk-guess-b", {"X-Real-IP": CLIENT_B}).status, 403)
        # Behind an appending proxy (its entry right-most) a forged X-Real-IP
        # chooses nothing either; the two agreeing name the client.
        srv = self.start("--trusted-proxy", "127.0.0.1/32")
        for i in range(10):
            forged = {"X-Forwarded-For": "%s, %s" % (FORGED, CLIENT_B), "X-Real-IP": "192.0.2.%d" % (100 + i)}
            self.assertEqual(self.post(srv, "pk-guess-%04d" % i, forged).status, 403)
        self.assertBlocked(self.post(srv, "pk-guess-y", {"X-Forwarded-For": CLIENT_B, "X-Real-IP": "192.0.2.99"}),
                           "the proxy's address again")
        self.assertEqual(self.post(srv, "pk-guess-z", {"X-Forwarded-For": "%s, %s" % (FORGED, CLIENT_B),
                                                      "X-Real-IP": CLIENT_B}).status, 403)
        self.assertEqual(self.post(srv, PUSH, {"X-Real-IP": CLIENT_A, "X-Forwarded-For": FORGED}).status, 200)
        log = "".join(s.log() for s in self.servers)
        self.assertIn("127.0.0.1 认证失败 10 次", log)
        self.assertIn("(来自 %s)" % CLIENT_A, log)
        self.assertIn("(来自 %s)" % CLIENT_B, log)
        self.assertNotIn("192.0.2.", log)

    def test_forged_forwarding_headers_change_nothing_without_a_trusted_proxy(self):
        for args in ([], ["--trusted-proxy", "10.0.0.0/8"]):   # none, or one that is not the peer
            srv = self.start(*args)
            for i in range(10):
                forged = {"X-Forwarded-For": "192.0.2.%d" % i, "X-Real-IP": "192.0.2.%d" % (100 + i)}
                self.assertEqual(self.post(srv, "pk-guess-%04d" % i, forged).status, 403)
            # The address blocked is the real one, 127.0.0.1, whatever the
            # next request claims ...
            self.assertBlocked(self.post(srv, "pk-guess-x"), "no header")
            self.assertBlocked(self.post(srv, "pk-guess-y", {"X-Forwarded-For": "192.0.2.200"}), "new forgery")
            # ... and its right key is not.
            self.assertEqual(self.post(srv, PUSH).status, 200)
            log = srv.log()
            self.assertIn("127.0.0.1 认证失败 10 次", log, args)
            self.assertNotIn("192.0.2.", log, args)

    def test_trusted_proxy_setting(self):
        cases = [(["--trusted-proxy", "10.0.0.0/33"], {}, "选项 --trusted-proxy 的值无效: '10.0.0.0/33'"),
                 (["--trusted-proxy", "proxy.internal"], {}, "选项 --trusted-proxy 的值无效: 'proxy.internal'"),
                 ([], {"TOKENDIST_TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.1/8"},
                  "环境变量 TOKENDIST_TRUSTED_PROXIES 的值无效: '10.0.0.1/8'")]
        for args, env, says in cases:
            r = self.cli("serve", "--store", "sqlite:" + self.tmp + "/x.db", "--listen", "127.0.0.1:0", *args,
                         env=env)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(says, r.stderr)
        for args, env in ((["--real-ip-header", "Forwarded"], {}), ([], {"TOKENDIST_REAL_IP_HEADER": "X-Client-IP"})):
            r = self.cli("serve", "--store", "sqlite:" + self.tmp + "/x.db", "--listen", "127.0.0.1:0", *args,
                         env=env)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("X-Forwarded-For", r.stderr)
            self.assertIn("X-Real-IP", r.stderr)
        r = self.cli("serve", "--trusted-proxy", "::1/128", "--trusted-proxy", "127.0.0.1",
                     "--print-config", env={"TOKENDIST_TRUSTED_PROXIES": "10.0.0.0/8"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("TOKENDIST_TRUSTED_PROXIES=::1/128,127.0.0.1\n", r.stdout)
        self.assertIn("TOKENDIST_REAL_IP_HEADER=\n", r.stdout)

if __name__ == "__main__":
    unittest.main()
