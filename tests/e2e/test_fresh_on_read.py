"""Serverless as it really runs: a process whose refresher thread was frozen
(SCF between invocations, here SIGSTOP) must not hand out a token inside its
renewal window once the renewal is overdue -- the first GET after the thaw
waits for the refresh (fresh on read).  Also `--store memory` (every
instance its own fleet, quiet at a cold start) and the SCF Timer trigger.

Tokens live 40 s here and Feishu renews in their last 20 s, so a stop of 24 s
after the first token lands inside the window, past the refresher's due
time (20 s + at most 2 s of jitter), and well before the expiry."""
import json
import os
import signal
import threading
import time
import unittest

import harness
from feishu_env import CHAT, PUSH_KEY, FeishuEnv
from scf_runtime import InvocationError, apigw_event, http_response
from test_scf import Runtime

TTL, WINDOW, FREEZE = 40, 20, 24


class FreshOnReadTest(FeishuEnv, harness.TestCase):
    def env(self, **extra):
        return self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                               FEISHU_RENEW_WINDOW=WINDOW, FEISHU_CHAT_ID="", **extra)

    def freeze(self, proc):
        """SIGSTOP for FREEZE seconds: the refresher sleeps through its due time."""
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(FREEZE)
        finally:
            proc.send_signal(signal.SIGCONT)

    def test_serve_answers_the_first_get_after_a_freeze_with_the_token_feishu_issues_now(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        srv = self.server(store="memory:", env=self.env()).start()
        first = self.wait_for(lambda: self.served(srv), what="first token")["access_token"]
        self.freeze(srv.proc)
        r = srv.get("/release/get-token", timeout=30)   # the very first request after SIGCONT
        self.assertEqual(r.status, 200, r.body)
        # (tokens are compared, never printed: they are secrets)
        self.assertTrue(r.json()["access_token"] != first, "a token inside its window after the freeze")
        self.assertTrue(r.json()["access_token"] == self.feishu.current_token(), "not the token Feishu issues now")

    def test_scf_runtime_does_the_same(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        rt = Runtime(self, "memory:", ["--push-key", PUSH_KEY], env=self.env())
        self.addCleanup(rt.stop)

        def token():
            status, _, body = http_response(rt.invoke(apigw_event("GET", "/get-token"), timeout=30))
            return json.loads(body)["access_token"] if status == 200 else None

        first = self.wait_for(token, what="first token over SCF events")
        self.freeze(rt.proc)
        self.assertTrue(token() == self.feishu.current_token(), "not the token Feishu issues now")
        self.assertTrue(self.feishu.current_token() != first, "Feishu issued no new token")
        self.outputs.append(rt.log())

    def test_a_failed_refresh_serves_the_old_token_until_it_expires(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        srv = self.server(store="memory:", env=self.env()).start()
        first = self.wait_for(lambda: self.served(srv), what="first token")
        self.feishu.control({"fail": "503", "path": "/open-apis/auth/v3/"})
        self.freeze(srv.proc)
        r = srv.get("/release/get-token", timeout=30)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json()["access_token"] == first["access_token"], "not the old token")
        self.wait_for(lambda: time.time() >= first["expire_timestamp"] + 1, timeout=TTL, what="expiry")
        self.assertEqual(srv.get("/release/get-token", timeout=30).status, 404)


class SlowRenewalTest(FeishuEnv, harness.TestCase):
    """A renewal whose fetch is slow: readers of the token in service are
    not the refresh's hostages, and parked readers take no worker."""

    def env(self):
        return self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                               FEISHU_RENEW_WINDOW=WINDOW, FEISHU_CHAT_ID="", TOKENDIST_HTTP_TIMEOUT="30")

    def gets(self, srv, n, timeout):
        answers = []

        def get():
            try:
                r = srv.get("/release/get-token", timeout=timeout)
                answers.append((r.status, r.json().get("access_token")))
            except Exception as e:  # noqa: BLE001 -- counted below
                answers.append((type(e).__name__, None))

        threads = [threading.Thread(target=get) for _ in range(n)]
        for t in threads:
            t.start()
        return threads, answers

    def test_a_renewal_on_schedule_keeps_serving_the_token_in_service_at_once(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        srv = self.server(store="memory:", env=self.env()).start()
        first = self.wait_for(lambda: self.served(srv), what="first token")["access_token"]
        self.feishu.control({"fail": "slow", "delay": 10, "path": "/open-apis/auth/v3/"})
        # The refresher's own renewal, on its schedule, now hangs at Feishu.
        self.wait_for(lambda: len(self.feishu.requests_to("/open-apis/auth/v3/")) >= 2, timeout=TTL,
                      what="the scheduled renewal's fetch")
        threads, answers = self.gets(srv, 50, timeout=3)  # before: each waited 4 s for the renewal
        for t in threads:
            t.join(30)
        self.assertEqual({a[0] for a in answers}, {200}, answers[:3])
        self.assertTrue(all(a[1] == first for a in answers), "not the token in service")
        self.assertEqual(len(self.feishu.requests_to("/open-apis/auth/v3/")), 2, "readers caused fetches")

    def test_readers_parked_for_a_late_renewal_leave_the_workers_to_writes(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        srv = self.server(store="memory:", env=self.env()).start()
        self.wait_for(lambda: self.served(srv), what="first token")
        self.feishu.control({"fail": "slow", "delay": 6, "path": "/open-apis/auth/v3/"})
        FreshOnReadTest.freeze(self, srv.proc)   # the renewal is now late: readers wait for it
        threads, answers = self.gets(srv, 200, timeout=30)  # (256 connections per address)
        self.wait_for(lambda: self.metric(srv, "tokendist_requests_waiting") >= 200, timeout=20,
                      what="200 readers parked")
        # More than the 4 workers' worth of readers wait, yet a write and
        # /readyz are answered at once (before: queued behind the readers).
        w = srv.post("/v1/tokens/other", harness.make_record("t-other00000000000000000"), key=PUSH_KEY,
                     timeout=3)
        self.assertEqual(w.status, 200, w.body)
        self.assertEqual(srv.get("/readyz", timeout=3).status, 200)
        for t in threads:
            t.join(60)
        self.assertEqual({a[0] for a in answers}, {200}, [a[0] for a in answers if a[0] != 200][:3])
        self.assertLessEqual(len(self.feishu.requests_to("/open-apis/auth/v3/")), 3,
                             "readers caused a fetch each")

    @staticmethod
    def metric(srv, name):
        for line in srv.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError("no %s in /metrics" % name)


class FleetFreshOnReadTest(FeishuEnv, harness.TestCase):
    def test_a_server_without_the_lease_asks_the_holder_and_waits(self):
        from redisd import SharedRedis
        redis = SharedRedis(self.tmp)
        self.addCleanup(redis.close)
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        env = self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                              FEISHU_RENEW_WINDOW=WINDOW, FEISHU_CHAT_ID="")
        pair = [self.server(store=redis.url(), env=env).start() for _ in range(2)]
        held = self.wait_for(lambda: [s for s in pair if "本实例持有租约 refresh:default" in s.log()],
                             what="a lease holder")
        other = [s for s in pair if s is not held[0]][0]
        first = self.wait_for(lambda: self.served(other), what="first token")["access_token"]
        # Both frozen past the renewal (SCF freezes every instance between
        # invocations); then the first GET goes to the one without the lease,
        # thawed first so that it must ask the holder (thawed on the ask).
        for s in pair:
            s.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(FREEZE + 4)  # past the holder's due time and the other's slack (a quarter window)
        finally:
            other.proc.send_signal(signal.SIGCONT)
        try:
            get = threading.Thread(target=lambda: answers.append(other.get("/release/get-token", timeout=30)))
            answers = []
            get.start()
            self.wait_for(lambda: "请它立即刷新" in other.log(), what="the ask of the holder")
        finally:
            held[0].proc.send_signal(signal.SIGCONT)
        get.join(30)
        r = answers[0]
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json()["access_token"] != first, "the first GET got the token from before the freeze")
        self.assertTrue(r.json()["access_token"] == self.feishu.current_token(), "not the token Feishu issues now")
        self.assertEqual(len(self.feishu.requests_to("/open-apis/auth/v3/")), 2)  # only the holder fetched


class MemoryStoreTest(FeishuEnv, harness.TestCase):
    def test_a_cold_start_announces_nothing_a_renewal_does(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        env = self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                              FEISHU_RENEW_WINDOW=WINDOW, FEISHU_CHAT_ID=CHAT)
        a = self.server(store="memory:", env=env).start()
        tok = self.wait_for(lambda: self.served(a), what="A's token")["access_token"]
        b = self.server(store="memory:", env=env).start()
        self.assertTrue(self.wait_for(lambda: self.served(b), what="B's token")["access_token"] == tok,
                        "B serves another token than A")
        self.assertEqual(self.feishu.sent_texts, [], "a cold start announced a token already in service")
        self.assertIn("冷启动", a.log())
        # The renewal replaces a token each served itself: that is news.
        self.wait_for(lambda: self.feishu.sent_texts, timeout=TTL, what="a notice of the renewal")
        self.assertIn("🔑 客户端 Access Token 已更新", self.feishu.sent_texts[0])
        # Nothing survives a restart.
        a.stop()
        a2 = self.server(store="memory:", env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.assertEqual(a2.get("/release/get-token").status, 404)

    def test_memory_store_takes_writes_put_if_newer(self):
        srv = self.server(["--push-key", PUSH_KEY], store="memory:").start()
        now = int(time.time())
        self.assertEqual(srv.post("/release/get-token", harness.make_record("t-memA0000000000000000", generated=now),
                                  key=PUSH_KEY).status, 200)
        self.assertEqual(srv.post("/release/get-token", harness.make_record("t-memB0000000000000000", generated=now - 5),
                                  key=PUSH_KEY).status, 409)
        self.assertEqual(srv.get("/release/get-token").json()["access_token"], "t-memA0000000000000000")
        r = srv.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + PUSH_KEY})
        self.assertEqual(len(r.json()["history"]), 1)
        r = self.cli("serve", "--store", "memory:/tmp/x", "--listen", "127.0.0.1:1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("memory:", r.stderr)


class TimerTriggerTest(FeishuEnv, harness.TestCase):
    TIMER = {"Type": "Timer", "TriggerName": "every-5m", "Time": "2024-01-15T14:30:00Z", "Message": ""}

    def test_a_timer_refreshes_when_due_and_only_then(self):
        self.start_feishu(ttl=TTL, renew_window=WINDOW)
        env = self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                              FEISHU_RENEW_WINDOW=WINDOW, FEISHU_CHAT_ID="")
        rt = Runtime(self, "memory:", ["--push-key", PUSH_KEY], env=env)
        self.addCleanup(rt.stop)
        self.wait_for(lambda: self.feishu.requests_to("/open-apis/auth/v3/"), what="the first fetch")
        time.sleep(1)  # the first cycle delivers; a timer now is early
        n = len(self.feishu.requests_to("/open-apis/auth/v3/"))
        self.assertEqual(rt.invoke(self.TIMER), {"refreshed": False, "message": "未到刷新时间"})
        self.assertEqual(len(self.feishu.requests_to("/open-apis/auth/v3/")), n)
        rt.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(FREEZE)
        finally:
            rt.proc.send_signal(signal.SIGCONT)
        self.assertEqual(rt.invoke(self.TIMER, timeout=30), {"refreshed": True, "message": "已刷新"})
        status, _, body = http_response(rt.invoke(apigw_event("GET", "/get-token")))
        self.assertTrue(json.loads(body)["access_token"] == self.feishu.current_token(), "not the renewed token")
        self.outputs.append(rt.log())

    def test_a_timer_without_credentials_is_an_invocation_error(self):
        rt = Runtime(self, "memory:", ["--push-key", PUSH_KEY])
        self.addCleanup(rt.stop)
        with self.assertRaises(InvocationError) as cm:
            rt.invoke(self.TIMER)
        self.assertIn("定时触发器需要飞书凭证", cm.exception.body)
        self.assertIn("FEISHU_APP_ID", cm.exception.body)


if __name__ == "__main__":
    unittest.main()
