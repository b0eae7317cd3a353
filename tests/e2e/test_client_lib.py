"""libtokendist against the real `tokendist serve` (behind a small proxy
that counts requests and can skew Date), the Gitee double and a cache
file, driven through tests/client_driver.c."""
import json
import os
import subprocess
import time
import unittest

import harness
from gitee import DEFAULT_TOKEN as GITEE_TOKEN, GiteeDouble
from proxy import Proxy

DRIVER = os.environ.get("TOKENDIST_CLIENT_DRIVER") or os.path.join(
    harness.ROOT, "build", "tests", "td_client_driver")
PUSH_KEY = "push-key-for-client-tests-0001"
TOKEN_A = "t-clientlibAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
TOKEN_B = "t-clientlibBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
TOKEN_G = "t-clientlibGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"
TOKEN_C = "t-clientlibCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
TD_EINVAL, TD_ENOTFOUND, TD_EHTTP, TD_EEXPIRED, TD_ENOTSUP = -3, -4, -9, -12, -16


def fnv(s):
    h = 1469598103934665603
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


class Driver:
    """One client_driver process: one td_client, commands over stdin."""

    def __init__(self, test, *args):
        self.test = test
        env = dict(os.environ, **test.test_clock.env()) if test.test_clock else None
        self.proc = subprocess.Popen([DRIVER] + list(args), stdin=subprocess.PIPE, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.addCleanup(self.close)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        self.test.outputs.append(out)
        if not out:
            self.test.fail("client_driver died: " + self.proc.stderr.read())
        return json.loads(out)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)
        self.test.outputs.append(self.proc.stderr.read())
        self.proc.stderr.close()
        self.proc.stdout.close()


@unittest.skipUnless(os.path.exists(DRIVER), "client_driver not built")
class ClientLibTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH_KEY, TOKEN_A, TOKEN_B, TOKEN_G, TOKEN_C, GITEE_TOKEN]
        self.srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.proxy = Proxy(self.srv.port).start()
        self.addCleanup(self.proxy.stop)
        self.cache = os.path.join(self.tmp, "token-cache.json")

    def push(self, token, ttl=7200, generated=None, **extra):
        r = self.srv.post("/release/get-token", harness.make_record(token, generated, ttl, **extra),
                          key=PUSH_KEY)
        self.assertEqual(r.status, 200, r.body)

    def gitee(self, record=None):
        g = GiteeDouble().start()
        self.addCleanup(g.stop)
        if record is not None:
            g.put_file("token.json", json.dumps(record))
        return g

    def gitee_args(self, g):
        return ["--gitee-base", g.url + "/api/v5", "--gitee-owner", "tokendist", "--gitee-repo", "tokens",
                "--gitee-path", "token.json", "--gitee-token", GITEE_TOKEN]

    def test_fetch_then_memory_makes_no_request(self):
        self.push(TOKEN_A)
        d = Driver(self, "--url", self.proxy.url())
        first = d.cmd("get app")
        self.assertEqual(first["rc"], 0, first)
        self.assertEqual((first["source"], first["token_hash"]), ("endpoint", fnv(TOKEN_A)))
        self.assertGreater(first["remaining"], 7100)
        for _ in range(5):
            again = d.cmd("get app")
            self.assertEqual((again["rc"], again["source"], again["origin"]), (0, "memory", "endpoint"))
        self.assertEqual(self.proxy.count("GET"), 1)

    def test_tenant_token_and_its_own_expiry(self):
        now = int(time.time())
        self.push(TOKEN_A, tenant_access_token=TOKEN_B, tenant_expire_timestamp=now + 3600)
        d = Driver(self, "--url", self.proxy.url())
        t = d.cmd("get tenant")
        self.assertEqual((t["rc"], t["token_hash"], t["expires"]), (0, fnv(TOKEN_B), now + 3600))
        a = d.cmd("get app")
        self.assertEqual((a["token_hash"], a["source"]), (fnv(TOKEN_A), "memory"))

    def test_near_expiry_refetches(self):
        # The client's clock moves (the server keeps real time): no 3-second
        # margin that a busy machine could eat before the first get.
        clock = self.clock()
        self.push(TOKEN_A, ttl=900)
        d = Driver(self, "--url", self.proxy.url())
        self.assertEqual(d.cmd("get app")["token_hash"], fnv(TOKEN_A))
        self.push(TOKEN_B, generated=int(time.time()) + 1)
        clock.advance(540)                      # 360 s left: more than the 300 s minimum
        self.assertEqual(d.cmd("get app")["source"], "memory")
        clock.advance(120)                      # 240 s left
        again = d.cmd("get app")
        self.assertEqual((again["rc"], again["source"], again["token_hash"]), (0, "endpoint", fnv(TOKEN_B)))
        self.assertEqual(self.proxy.count("GET"), 2)

    def test_server_down_gitee_answers_then_cache_file(self):
        g = self.gitee(harness.make_record(TOKEN_G))
        direct = "http://127.0.0.1:%d/release/get-token" % self.srv.port
        self.srv.stop()         # connection refused, not a gateway error
        d = Driver(self, "--url", direct, "--cache", self.cache, *self.gitee_args(g))
        r = d.cmd("get app")
        self.assertEqual((r["rc"], r["source"], r["token_hash"]), (0, "gitee", fnv(TOKEN_G)))
        # The good record was kept in the cache file, readable by the owner only.
        self.assertEqual(os.stat(self.cache).st_mode & 0o777, 0o600)
        with open(self.cache) as f:
            self.assertEqual(json.load(f)["access_token"], TOKEN_G)

        # Both down: a new process finds the cache file.
        g.control({"fail": "503"})
        d2 = Driver(self, "--url", direct, "--cache", self.cache, *self.gitee_args(g))
        r = d2.cmd("get app")
        self.assertEqual((r["rc"], r["source"], r["token_hash"]), (0, "cache", fnv(TOKEN_G)))

    def test_endpoint_order_first_failure_falls_through(self):
        self.push(TOKEN_A)
        dead = "http://127.0.0.1:%d/release/get-token" % harness.free_port()
        d = Driver(self, "--url", dead, "--url", self.proxy.url())
        r = d.cmd("get app")
        self.assertEqual((r["rc"], r["source"], r["token_hash"]), (0, "endpoint", fnv(TOKEN_A)))

    def test_expired_everywhere_clear_error(self):
        now = int(time.time())
        self.push(TOKEN_A, ttl=100)                                   # under the minimum
        g = self.gitee(harness.make_record(TOKEN_G, generated=now - 8000))   # expired
        with open(self.cache, "w") as f:
            json.dump(harness.make_record(TOKEN_C, generated=now - 7800), f)   # expired
        d = Driver(self, "--url", self.proxy.url(), "--cache", self.cache, *self.gitee_args(g))
        r = d.cmd("get app")
        self.assertEqual(r["rc"], TD_EEXPIRED, r)
        err = r["err"]
        self.assertIn("所有来源的token均已过期或即将过期", err)
        self.assertRegex(err, r"腾讯云函数 token获取失败: token即将过期 \(剩余 \d+ 秒，要求至少 300 秒\)")
        self.assertRegex(err, r"Gitee token获取失败: token已过期 \(已过期 \d+ 秒\) \[tokendist/tokens/token.json")
        self.assertRegex(err, r"本地缓存 token获取失败: token已过期 \(已过期 \d+ 秒\) \[" + self.cache)

    def test_nothing_anywhere(self):
        g = self.gitee()
        d = Driver(self, "--url", self.proxy.url(), "--cache", self.cache, *self.gitee_args(g))
        r = d.cmd("get app")
        self.assertEqual(r["rc"], TD_ENOTFOUND, r)
        self.assertIn("腾讯云函数 token获取失败: Token not found or expired", r["err"])
        self.assertIn("Gitee token获取失败: 文件不存在", r["err"])
        self.assertIn("本地缓存 token获取失败: 缓存文件不存在", r["err"])

    def test_server_clock_ahead(self):
        # Our clock says 1200 s are left; the server's says 200: refuse.
        self.push(TOKEN_A, ttl=1200)
        self.proxy.date_offset = 1000
        d = Driver(self, "--url", self.proxy.url())
        r = d.cmd("get app")
        self.assertEqual(r["rc"], TD_EEXPIRED, r)
        self.assertRegex(r["err"], r"剩余 (19\d|200) 秒")

    def test_server_clock_behind(self):
        # Our clock says 200 s are left (under the minimum); the server's
        # clock is 1000 s behind, so 1200 s are really left: use it, and keep
        # judging the memory copy by the server's clock.
        self.push(TOKEN_A, ttl=200)
        self.proxy.date_offset = -1000
        d = Driver(self, "--url", self.proxy.url())
        r = d.cmd("get app")
        self.assertEqual(r["rc"], 0, r)
        self.assertTrue(1190 <= r["remaining"] <= 1200, r)
        self.assertEqual(d.cmd("get app")["source"], "memory")
        self.assertEqual(self.proxy.count("GET"), 1)

    def test_32_threads_one_fetch(self):
        self.push(TOKEN_A)
        self.proxy.delay = 0.5      # the fetch is still running when all 32 ask
        d = Driver(self, "--url", self.proxy.url())
        results = d.cmd("burst 32 app")
        self.assertEqual(len(results), 32)
        self.assertTrue(all(r["rc"] == 0 and r["token_hash"] == fnv(TOKEN_A) for r in results), results)
        self.assertEqual(self.proxy.count("GET"), 1)
        # One of them did the fetch; the others shared it.
        self.assertEqual(sum(r["source"] == "endpoint" for r in results), 32)

    def test_32_threads_share_a_failure(self):
        self.proxy.delay = 0.5
        d = Driver(self, "--url", self.proxy.url())
        results = d.cmd("burst 32 app")
        self.assertTrue(all(r["rc"] == TD_ENOTFOUND for r in results), results)
        self.assertEqual(self.proxy.count("GET"), 1)
        # A failure is not remembered: the next call asks again.
        d.cmd("get app")
        self.assertEqual(self.proxy.count("GET"), 2)

    def test_http_500_seed_message(self):
        self.proxy.fail_status = 500
        d = Driver(self, "--url", self.proxy.url())
        r = d.cmd("get app")
        self.assertEqual(r["rc"], TD_EHTTP)
        self.assertEqual(r["err"], "腾讯云函数 token获取失败: HTTP 500: Internal Server Error")

    def test_report_without_refresher(self):
        """Without a refresher the server answers 501: the client still drops
        the token, and says the server cannot refresh."""
        self.push(TOKEN_A)
        d = Driver(self, "--url", self.proxy.url(), "--refresh-wait-ms", "600")
        self.assertEqual(d.cmd("get app")["rc"], 0)
        # The wait runs from the report; timed from before it, a busy
        # machine can only make it look longer.
        t0 = time.monotonic()
        r = d.cmd("report")
        self.assertEqual(r["rc"], -6, r)                  # TD_EUNAVAIL
        self.assertIn("HTTP 501", r["err"])
        self.assertEqual(self.proxy.count("POST", "/v1/tokens/default/invalid"), 1)
        # Dropped: the next get fetches; only the reported token exists, so it
        # waits (refresh_wait_ms, less the last 250 ms poll) for another, then
        # uses it after all.
        again = d.cmd("get app")
        self.assertEqual((again["rc"], again["source"], again["token_hash"]), (0, "endpoint", fnv(TOKEN_A)))
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertGreaterEqual(self.proxy.count("GET"), 2)

    def test_report_when_server_has_newer(self):
        """The server already holds another token: its 200 answer is the new
        record, used without another GET."""
        self.push(TOKEN_A)
        d = Driver(self, "--url", self.proxy.url())
        self.assertEqual(d.cmd("get app")["token_hash"], fnv(TOKEN_A))
        self.push(TOKEN_B, generated=int(time.time()) + 1)
        self.assertEqual(d.cmd("report")["rc"], 0)
        r = d.cmd("get app")
        self.assertEqual((r["source"], r["token_hash"]), ("memory", fnv(TOKEN_B)))
        self.assertEqual(self.proxy.count("GET"), 1)

    def test_many_reports_one_request(self):
        self.push(TOKEN_A)
        self.proxy.delay = 0.3
        d = Driver(self, "--url", self.proxy.url())
        d.cmd("get app")
        self.push(TOKEN_B, generated=int(time.time()) + 1)
        results = d.cmd("report_burst 16")
        self.assertTrue(all(r["rc"] == 0 for r in results), results)
        self.assertEqual(self.proxy.count("POST", "/v1/tokens/default/invalid"), 1)


    # ---- the ABI of release 1: options, tokens, versions ----

    def test_min_remaining_zero_takes_any_unexpired_token(self):
        """0 is a value, not "default": a token with 100 s left is refused by
        the default minimum (300 s) and taken with TD_OPT_MIN_REMAINING 0."""
        self.push(TOKEN_A, ttl=100)
        r = Driver(self, "--url", self.proxy.url()).cmd("get app")
        self.assertEqual(r["rc"], TD_EEXPIRED, r)
        r = Driver(self, "--url", self.proxy.url(), "--min-remaining", "0").cmd("get app")
        self.assertEqual((r["rc"], r["token_hash"]), (0, fnv(TOKEN_A)), r)
        self.assertTrue(0 < r["remaining"] <= 100, r)

    def test_token_as_long_as_the_server_takes(self):
        """A 4096-byte token (the record validator's limit, a JWT's size)
        comes back whole; its length is in the td_token."""
        jwt = "eyJ" + "x" * 4093
        self.secrets.append(jwt)
        self.push(jwt)
        r = Driver(self, "--url", self.proxy.url()).cmd("get app")
        self.assertEqual((r["rc"], r["token_len"], r["token_hash"]), (0, 4096, fnv(jwt)), r)

    def test_record_json_and_version(self):
        self.push(TOKEN_A, tenant_access_token=TOKEN_B)
        d = Driver(self, "--url", self.proxy.url())
        r = d.cmd("record tenant")
        self.assertEqual((r["rc"], r["token_hash"]), (0, fnv(TOKEN_B)), r)
        self.assertEqual((r["json_len"], r["json_has_token"], r["json_starts"]), (r["strlen"], True, "{"))
        v = d.cmd("version")
        self.assertRegex(v["runtime"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(v["runtime"], v["header"])

    def test_bad_option_named_by_td_client_new(self):
        r = Driver(self, "--url", self.proxy.url(), "--timeout-ms", "0").cmd("get app")
        self.assertEqual(r["rc"], TD_EINVAL, r)
        self.assertEqual(r["err"], "选项 TD_OPT_TIMEOUT_MS 的值 0 不在 1..600000 之间")
        r = Driver(self, "--url", "ftp://example.com/token").cmd("get app")
        self.assertEqual(r["rc"], TD_EINVAL, r)
        self.assertIn("应以 http:// 或 https:// 开头", r["err"])
        r = Driver(self).cmd("get app")
        self.assertEqual(r["rc"], TD_EINVAL, r)
        self.assertIn("没有 token 来源", r["err"])

    def test_unknown_option_does_not_poison_the_options(self):
        """A program built against a later header sets an option this library
        does not know: the setter says TD_ENOTSUP (the program handles it at
        run time, as tokendist.h tells it to) and the client is still made
        and works; a bad value is still refused by td_client_new."""
        self.push(TOKEN_A)
        d = Driver(self, "--url", self.proxy.url(), "--raw-long", "99", "5", "--raw-long", "17", "1")
        self.assertEqual(d.cmd("setters")["setters"], [[99, TD_ENOTSUP], [17, TD_ENOTSUP]])
        r = d.cmd("get app")
        self.assertEqual((r["rc"], r["token_hash"]), (0, fnv(TOKEN_A)), r)
        r = Driver(self, "--url", self.proxy.url(), "--raw-long", "17", "1", "--timeout-ms", "0").cmd("get app")
        self.assertEqual(r["rc"], TD_EINVAL, r)
        self.assertEqual(r["err"], "选项 TD_OPT_TIMEOUT_MS 的值 0 不在 1..600000 之间")

    # ---- connections ----

    def test_keep_alive_one_connection_for_many_requests(self):
        """Every request of a client (fetches, the report, the fetch after
        it) goes over one kept TCP connection."""
        self.push(TOKEN_A)
        d = Driver(self, "--url", self.proxy.url(), "--refresh-wait-ms", "0")
        self.assertEqual(d.cmd("get app")["rc"], 0)
        self.assertEqual(d.cmd("report")["rc"], -6)         # 501: no refresher
        self.assertEqual(d.cmd("get app")["source"], "endpoint")
        # A client that refuses every record (minimum above its lifetime)
        # fetches on every call: five fetches, still one connection.
        d2 = Driver(self, "--url", self.proxy.url(), "--min-remaining", "86400")
        for _ in range(5):
            self.assertEqual(d2.cmd("get app")["rc"], TD_EEXPIRED)
        self.assertEqual((self.proxy.count("GET"), self.proxy.count("POST")), (7, 1))
        self.assertEqual(self.proxy.connections, 2)

    def test_server_restart_between_requests(self):
        """A kept connection the server closed (it restarted) is noticed and
        replaced: the next fetch is answered, not a transport error."""
        self.push(TOKEN_A)
        direct = "http://127.0.0.1:%d/release/get-token" % self.srv.port
        d = Driver(self, "--url", direct, "--min-remaining", "86400")
        self.assertEqual(d.cmd("get app")["rc"], TD_EEXPIRED)
        self.srv.stop()
        self.srv.start()
        r = d.cmd("get app")
        self.assertEqual(r["rc"], TD_EEXPIRED, r)
        self.srv.stop()
        r = d.cmd("get app")
        self.assertEqual(r["rc"], TD_EHTTP, r)              # down: a clear failure
        self.assertIn("网络错误", r["err"])

    # ---- waiting for a refresh ----

    def test_wait_backs_off_and_asks_gitee_once(self):
        """After a report that the server cannot act on (501), the next get
        waits for another token: it asks the endpoint again with growing
        pauses, not every 250 ms, and Gitee (which has the reported token
        too) once, not on every round."""
        self.push(TOKEN_A)
        g = self.gitee(harness.make_record(TOKEN_A))
        d = Driver(self, "--url", self.proxy.url(), "--refresh-wait-ms", "3000", *self.gitee_args(g))
        self.assertEqual(d.cmd("get app")["source"], "endpoint")
        self.assertEqual(d.cmd("report")["rc"], -6)
        gets = self.proxy.count("GET")
        t0 = time.time()
        r = d.cmd("get app")
        waited = time.time() - t0
        # Nothing newer came: after the wait the reported token is used.
        self.assertEqual((r["rc"], r["token_hash"]), (0, fnv(TOKEN_A)), r)
        self.assertGreaterEqual(waited, 2.9)
        polls = self.proxy.count("GET") - gets
        # Pauses of 0.25, 0.5, 1 and the 1.25 s left: 5 asks; every 250 ms
        # would be 12 or 13.
        self.assertTrue(2 <= polls <= 6, polls)
        self.assertEqual(len(g.requests_to("/api/v5/repos/tokendist/tokens/contents")), 1)

    def test_gitee_asked_at_most_once_a_minute(self):
        """With the server down, each get falls back to Gitee; within a minute
        a client uses Gitee's last answer instead of asking again."""
        g = self.gitee(harness.make_record(TOKEN_G))
        direct = "http://127.0.0.1:%d/release/get-token" % self.srv.port
        self.srv.stop()
        d = Driver(self, "--url", direct, "--min-remaining", "86400", *self.gitee_args(g))
        for _ in range(4):
            r = d.cmd("get app")
            self.assertEqual(r["rc"], TD_EHTTP, r)
            self.assertRegex(r["err"], r"Gitee token获取失败: token即将过期 \(剩余 \d+ 秒")
        self.assertEqual(len(g.requests_to("/api/v5/repos/tokendist/tokens/contents")), 1)


class ReportWithRefresherTest(harness.TestCase):
    """Against a server that runs the refresher (Feishu double): many
    clients report the same token, the server refreshes exactly once, and
    the clients move to the new token."""

    def test_many_reporters_one_forced_refresh(self):
        from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble
        feishu = FeishuDouble().start()
        self.addCleanup(feishu.stop)
        feishu.control({"renew_window": 7300})      # every fetch mints a new token
        self.secrets += [PUSH_KEY, DEFAULT_APP_SECRET]
        srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, "FEISHU_APP_ID": DEFAULT_APP_ID,
                               "FEISHU_APP_SECRET": DEFAULT_APP_SECRET, "FEISHU_BASE_URL": feishu.url,
                               "TENCENT_CLOUD_ENABLED": "false"}).start()
        url = "http://127.0.0.1:%d/v1/tokens/default" % srv.port
        try:
            self.wait_for(lambda: srv.get("/release/get-token").status == 200, what="the first token")
            # However long the forced refresh takes here, the clients wait for it.
            drivers = [Driver(self, "--url", url, "--refresh-wait-ms", "%d" % (harness.DEADLINE * 1000))
                       for _ in range(3)]
            first = [d.cmd("get tenant") for d in drivers]
            self.assertEqual(len({f["token_hash"] for f in first}), 1, first)
            fetches = feishu.state()["token_fetches"]
            reports = [d.cmd("report_burst 8") for d in drivers]
            self.assertTrue(all(r["rc"] == 0 for rs in reports for r in rs), reports)
            after = [d.cmd("get tenant") for d in drivers]
            self.assertTrue(all(a["rc"] == 0 and a["token_hash"] != first[0]["token_hash"] for a in after), after)
            self.assertEqual(feishu.state()["token_fetches"], fetches + 1)
        finally:
            self.secrets += [t["token"] for t in feishu.state()["tokens"]]


if __name__ == "__main__":
    unittest.main()
