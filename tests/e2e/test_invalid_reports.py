"""Reports that Feishu rejected a token (POST /v1/tokens/NAME/invalid), where
they meet the rest: a fleet whose lease holder is another server, a report
of the record's *tenant* token (what `tokendist files` reports), and Feishu
answering with the token already in service.  Every report's answer says
what really happened: 200 with a record that holds neither reported token,
409 when Feishu still issues it, 202 only when the refresh runs and has not
finished, 503 when no refresher can be reached."""
import os
import signal
import threading
import re
import time
import unittest

import harness
from feishu_env import PUSH_KEY, FeishuEnv
from harness import make_record
from redisd import SharedRedis
from test_client_lib import DRIVER, Driver, fnv

TD_ECONFLICT = -5


class Common(FeishuEnv):
    def report(self, srv, token, name="default"):
        return srv.post("/v1/tokens/%s/invalid" % name, {"access_token": token})

    def token_fetches(self):
        return len(self.feishu.requests_to("/open-apis/auth/v3/"))


class TenantTokenTest(Common, harness.TestCase):
    def start(self):
        # Distinct app and tenant tokens, as for store apps (internal apps
        # get one string for both).
        self.start_feishu(same_tokens=False)
        srv = self.server(env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false")).start()
        rec = self.wait_for(lambda: self.served(srv), what="first token")
        self.assertTrue(rec["tenant_access_token"] != rec["access_token"], "one token for both")
        return srv, rec

    def test_a_report_of_the_tenant_token_forces_the_refresh(self):
        srv, rec = self.start()
        self.feishu.control({"advance": 6000})      # inside Feishu's window: it renews
        n = self.token_fetches()
        r = self.report(srv, rec["tenant_access_token"])
        self.assertEqual(r.status, 200, r.body)
        new = r.json()
        # (tokens are compared, never printed: they are secrets)
        self.assertTrue(new["tenant_access_token"] != rec["tenant_access_token"], "the tenant token stayed")
        self.assertTrue(new["access_token"] != rec["access_token"], "the app token stayed")
        self.assertEqual(self.token_fetches(), n + 1)
        # The old tenant token again: already replaced, the current record.
        r = self.report(srv, rec["tenant_access_token"])
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json() == new, "not the current record")
        # A token that fetch brought, reported right after: Feishu issues it
        # now, so 409 without asking again -- not a 202 for a refresh that
        # never runs.
        for tok in (new["tenant_access_token"], new["access_token"]):
            r = self.report(srv, tok)
            self.assertEqual(r.status, 409, r.body)
        self.assertEqual(self.token_fetches(), n + 1)

    def test_feishu_handing_back_the_same_token_is_said_plainly(self):
        srv, rec = self.start()
        n = self.token_fetches()
        for tok in (rec["tenant_access_token"], rec["access_token"], rec["tenant_access_token"]):
            r = self.report(srv, tok)
            self.assertEqual(r.status, 409, r.body)
            self.assertIn("飞书仍在发放此 token", r.json()["message"])
        self.assertEqual(self.token_fetches(), n + 1)   # one fetch answered all three
        self.assertTrue(self.served(srv) == rec, "the served record changed")

    @unittest.skipUnless(os.path.exists(DRIVER), "client_driver not built")
    def test_the_c_client_takes_409_as_final_and_judges_by_the_reported_token(self):
        srv, rec = self.start()
        d = Driver(self, "--url", "http://127.0.0.1:%d/v1/tokens/default" % srv.port)
        got = d.cmd("get tenant")
        self.assertEqual(got["token_hash"], fnv(rec["tenant_access_token"]))
        n = self.token_fetches()
        r = d.cmd("report")
        self.assertEqual(r["rc"], TD_ECONFLICT, r)
        self.assertIn("平台仍在发放此token，没有新的可换 (飞书仍在发放此 token", r["err"])
        # Nothing newer to wait for: the next get has the token at once,
        # and reporting it again asks nobody.
        t0 = time.monotonic()
        self.assertEqual(d.cmd("get tenant")["token_hash"], fnv(rec["tenant_access_token"]))
        self.assertLess(time.monotonic() - t0, 4)  # the client's refresh wait is 5 s
        self.assertEqual(d.cmd("report")["rc"], TD_ECONFLICT)
        self.assertEqual(self.token_fetches(), n + 1)
        # Inside Feishu's window the report brings a record that holds
        # neither old token, and the client uses it.  (A new server: the
        # first one answers this token's reports from its last fetch for
        # 30 s, so that reports cannot make it hammer Feishu.)
        self.feishu.control({"renew_window": 7300})   # every fetch mints a new token
        srv2 = self.server(store="sqlite:" + os.path.join(self.tmp, "second.db"),
                           env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false")).start()
        self.wait_for(lambda: self.served(srv2), what="the second server's token")
        d2 = Driver(self, "--url", "http://127.0.0.1:%d/v1/tokens/default" % srv2.port)
        before = d2.cmd("get tenant")
        self.assertEqual(d2.cmd("report")["rc"], 0)
        after = d2.cmd("get tenant")
        self.assertNotEqual(after["token_hash"], before["token_hash"])
        self.remember_tokens()


class FailedForcedRefreshTest(Common, harness.TestCase):
    def test_a_forced_fetch_that_timed_out_is_a_502_not_a_refresh_in_progress(self):
        # Feishu answers the forced fetch after the refresher's HTTP timeout
        # (1 s) but well inside the report's wait (4 s): the refresh is over
        # and failed when the report is answered, and stays so for the
        # reports the same fetch answers afterwards.
        self.start_feishu()
        srv = self.server(env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                                              TOKENDIST_HTTP_TIMEOUT="1")).start()
        rec = self.wait_for(lambda: self.served(srv), what="first token")
        self.feishu.control({"fail": "slow", "delay": 3, "times": 1, "path": "/open-apis/auth/v3/"})
        for _ in range(2):
            r = self.report(srv, rec["access_token"])
            self.assertEqual(r.status, 502, r.body)
            self.assertIn("强制刷新失败", r.json()["message"])
        self.assertIn('tokendist_requests_total{route="invalid",status="502"} 2',
                      srv.get("/metrics").body.decode())


    @unittest.skipUnless(os.path.exists(DRIVER), "client_driver not built")
    def test_the_c_client_reports_again_once_the_wait_after_a_202_is_over(self):
        """A 202 is a refresh the server took, not its outcome.  The client
        answers further reports of the token from it only during its
        refresh wait; after it, with the token still the one reported, a
        report goes out again and gets what became of the refresh (here
        409: Feishu handed back the same token) -- not the old 202 from the
        client's memory for ever."""
        self.start_feishu()
        srv = self.server(env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false")).start()
        rec = self.wait_for(lambda: self.served(srv), what="first token")
        self.wait_log(srv, "下次刷新")
        d = Driver(self, "--url", "http://127.0.0.1:%d/v1/tokens/default" % srv.port, "--refresh-wait-ms", "300")
        self.assertEqual(d.cmd("get app")["token_hash"], fnv(rec["access_token"]))
        # The forced fetch outlasts the report's 4 s wait, inside the
        # refresher's 10 s HTTP timeout.
        self.feishu.control({"fail": "slow", "delay": 6, "times": 1, "path": "/open-apis/auth/v3/"})
        self.assertEqual(d.cmd("report")["rc"], 0)                      # 202
        self.assertEqual(d.cmd("report")["rc"], 0)                      # the same, from memory
        self.wait_log(srv, "下次刷新", 2)                                # the forced fetch is over
        r = d.cmd("report")
        self.assertEqual(r["rc"], TD_ECONFLICT, r)
        metrics = srv.get("/metrics").body.decode()
        self.assertIn('tokendist_requests_total{route="invalid",status="202"} 1', metrics)
        self.assertIn('tokendist_requests_total{route="invalid",status="409"} 1', metrics)

class ReportAgainAfter202Test(Common, harness.TestCase):
    @unittest.skipUnless(os.path.exists(DRIVER), "client_driver not built")
    def test_a_token_still_served_after_a_202_is_reported_again(self):
        """libtokendist: a report answered 202 (the forced fetch still runs
        after the server's 4 s wait) stands for the client's refresh wait,
        not for the life of the process.  When the wait is over and the same
        token is handed out again, the next report of it reaches the server."""
        self.start_feishu()
        srv = self.server(env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false")).start()
        rec = self.wait_for(lambda: self.served(srv), what="first token")
        # The forced fetch answers after the server's wait: 202.  Feishu then
        # hands back the same token (it renews only in its last 30 minutes).
        self.feishu.control({"fail": "slow", "delay": 8, "times": 1, "path": "/open-apis/auth/v3/"})
        url = "http://127.0.0.1:%d/v1/tokens/default" % srv.port
        d = Driver(self, "--url", url, "--refresh-wait-ms", "500")
        self.assertEqual(d.cmd("get app")["token_hash"], fnv(rec["access_token"]))
        self.assertEqual(d.cmd("report")["rc"], 0)              # 202
        self.assertEqual(self.invalid_posts(srv), 1)
        again = d.cmd("get app")                                # the wait is over: the same token
        self.assertEqual((again["rc"], again["token_hash"]), (0, fnv(rec["access_token"])), again)
        r = d.cmd("report")                                     # Feishu rejected it again
        self.assertIn(r["rc"], (0, TD_ECONFLICT), r)
        self.assertEqual(self.invalid_posts(srv), 2)
        self.remember_tokens()

    def invalid_posts(self, srv):
        text = srv.get("/metrics").body.decode()
        return sum(int(m) for m in re.findall(r'route="invalid",status="[^"]+"\} (\d+)', text))


class SameTokenStaleExpiryTest(Common, harness.TestCase):
    def test_the_record_is_rebuilt_from_feishus_expire(self):
        self.start_feishu()
        # Another producer stored the token Feishu issues now, with an
        # expiry 20 minutes later than the real one.
        srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        fetch = self.feishu_fetch()
        wrong = make_record(fetch["app_access_token"], generated=int(time.time()) - 60,
                            ttl=fetch["expire"] + 60 + 1200)
        self.assertEqual(srv.post("/release/get-token", wrong, key=PUSH_KEY).status, 200)
        srv.stop()
        srv = self.server(env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false")).start()
        true_expiry = int(time.time()) + fetch["expire"]
        rec = self.wait_for(lambda: (self.served(srv) or {}).get("expire_timestamp", 0) < wrong["expire_timestamp"]
                            and self.served(srv), what="the record rebuilt from Feishu's expire")
        self.assertTrue(rec["access_token"] == fetch["app_access_token"], "another token")
        self.assertLessEqual(abs(rec["expire_timestamp"] - true_expiry), 3)
        self.assertEqual(len(self.feishu.sent), 0)   # the same token: no news for the group

    def feishu_fetch(self):
        """What Feishu answers now (the double counts it as a fetch)."""
        import json
        import urllib.request
        req = urllib.request.Request(self.feishu.url + "/open-apis/auth/v3/app_access_token/internal",
                                     data=json.dumps({"app_id": self.feishu_env()["FEISHU_APP_ID"],
                                                      "app_secret": self.feishu_env()["FEISHU_APP_SECRET"]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


class FleetTest(Common, harness.TestCase):
    """Two servers with Feishu credentials and one without share Redis; a
    report to any of them reaches the lease holder."""

    def setUp(self):
        super().setUp()
        self.redis = SharedRedis(self.tmp)
        self.addCleanup(self.redis.close)
        self.start_feishu()
        env = self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false")
        self.pair = [self.server(store=self.redis.url(), env=env).start() for _ in range(2)]
        self.plain = self.server(store=self.redis.url(), env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.rec = self.wait_for(lambda: all(self.served(s) for s in self.pair + [self.plain]) and
                                 self.served(self.plain), what="the first token everywhere")
        self.holder, self.other = self.wait_for(self.split, what="one lease holder")

    def split(self):
        held = [s for s in self.pair if "本实例持有租约 refresh:default" in s.log()]
        return (held[0], [s for s in self.pair if s is not held[0]][0]) if len(held) == 1 else None

    def test_a_report_to_a_server_without_the_lease_reaches_the_holder(self):
        self.feishu.control({"advance": 6000})      # Feishu would renew now
        n = self.token_fetches()
        r = self.report(self.other, self.rec["access_token"])
        self.assertEqual(r.status, 200, r.body)
        new = r.json()
        self.assertTrue(new["access_token"] != self.rec["access_token"], "the same token")
        self.assertEqual(self.token_fetches(), n + 1)          # once, by the holder
        self.assertIn("转交来的 token 无效报告", self.holder.log())
        self.assertNotIn("立即强制刷新一次", self.other.log())
        # Every server serves it; a report of the old token anywhere: 200 + new.
        self.wait_for(lambda: all((self.served(s) or {}).get("access_token") == new["access_token"]
                                  for s in self.pair + [self.plain]), what="the new token everywhere")
        for s in self.pair + [self.plain]:
            self.assertTrue(self.report(s, self.rec["access_token"]).json()["access_token"] == new["access_token"],
                            "not the new token")

    def test_a_server_without_credentials_forwards_too_and_409_travels_back(self):
        n = self.token_fetches()
        r = self.report(self.plain, self.rec["access_token"])
        self.assertEqual(r.status, 409, r.body)
        self.assertIn("飞书仍在发放此 token", r.json()["message"])
        self.assertEqual(self.token_fetches(), n + 1)
        # Reports of the same token from everywhere: no second fetch.
        for s in (self.plain, self.other, self.holder):
            self.assertEqual(self.report(s, self.rec["access_token"]).status, 409)
        self.assertEqual(self.token_fetches(), n + 1)

    def test_a_frozen_holder_is_a_503_not_a_promise(self):
        """The holder still listens on Redis but runs nothing (SIGSTOP): the
        report reaches its inbox and nobody takes it.  Without the holder's
        acknowledgement the answer is 503 + Retry-After -- not 202 "refresh
        started" for a refresh that never runs."""
        n = self.token_fetches()
        self.holder.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(self.holder.proc.send_signal, signal.SIGCONT)
        t0 = time.monotonic()
        r = self.report(self.other, self.rec["access_token"])
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("retry-after", r.headers)
        # Either the report sat unacknowledged in the frozen holder's inbox,
        # or (a busy machine: the holder's subscriber was between
        # connections when it froze) nobody received it: both are the 503.
        msg = r.json()["message"]
        self.assertTrue("没有在 4 秒内确认收到" in msg or "接收消息" in msg, msg)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(self.token_fetches(), n)

    def test_a_flood_of_reports_to_another_server_is_one_forward(self):
        """100 reports of the token in service at once, all to a server
        without the lease: one message to the holder (single flight), one
        forced fetch, every report the same 409, one line in the holder's
        log -- and later reports answered from that answer."""
        n = self.token_fetches()
        results = []

        def report():
            r = self.report(self.other, self.rec["access_token"])
            results.append((r.status, r.json().get("message", "")[:20]))

        threads = [threading.Thread(target=report) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual({s for s, _ in results}, {409}, results[:3])
        self.assertEqual(len(set(results)), 1, set(results))
        self.assertEqual(self.token_fetches(), n + 1)
        self.assertEqual(self.holder.log().count("转交来的 token 无效报告"), 1)
        self.assertEqual(self.report(self.other, self.rec["access_token"]).status, 409)
        self.assertEqual(self.holder.log().count("转交来的 token 无效报告"), 1)

    def test_a_flood_under_a_slow_feishu_waits_parked_and_is_answered_alike(self):
        """Feishu takes 2.5 s to answer the forced fetch.  200 reports to the
        server without the lease and 50 to the holder, at once: the first
        on each starts the refresh (here, or forwarded to the holder), the
        others wait for it parked -- not on a report worker each, which
        left 4 working and the rest queued past the queue's 2 s into 503
        "存储繁忙" -- and all get the same 409, from one fetch.  (Fewer than
        --conn-per-ip's 256 connections from one address.)"""
        n = self.token_fetches()
        self.feishu.control({"fail": "slow", "delay": 2.5, "times": 1, "path": "/open-apis/auth/v3/"})
        results = []

        def report(srv):
            try:
                r = self.report(srv, self.rec["access_token"])
                results.append((r.status, r.json().get("message", "")[:20]))
            except Exception as e:  # noqa: BLE001 -- a refused connection counts as an answer
                results.append((type(e).__name__, ""))

        threads = [threading.Thread(target=report, args=(s,)) for s in [self.other] * 200 + [self.holder] * 50]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 250)
        self.assertEqual(set(results), {(409, "飞书仍在发放此 token，没有新的可换")}, {r: results.count(r) for r in set(results)})
        self.assertEqual(self.token_fetches(), n + 1)

    def test_a_dead_holder_is_a_503_not_a_promise(self):
        self.holder.kill9()
        r = self.report(self.other, self.rec["access_token"])
        # Its lease outlives it for up to 30 s; nobody takes the report then.
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("retry-after", r.headers)
        self.assertIn("无法把报告转交", r.json()["message"])


if __name__ == "__main__":
    unittest.main()
