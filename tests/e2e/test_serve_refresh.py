"""`tokendist serve` with Feishu credentials: the refresher inside the
server writes straight into its own store, renews on Feishu's schedule, and
POST /v1/tokens/NAME/invalid makes exactly one forced refresh for many
reports of the current token."""
import re
import threading
import unittest

import harness
from feishu_env import CHAT, PUSH_KEY, FeishuEnv, assert_updated_notice


class ServeRefresh(FeishuEnv, harness.TestCase):
    def start_serve(self, **env):
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env(**env)})
        return s.start()

    def test_serves_own_token_and_renews(self):
        clock = self.clock()
        clock.attach(self.start_feishu())
        s = self.start_serve(TOKENDIST_PUBLIC_URL="https://tokens.example/get-token")
        self.wait_log(s, "下次刷新")
        first = self.served(s)
        self.assertEqual(first["access_token"], self.feishu.current_token())
        self.assertEqual(first["platform"], "腾讯云函数")
        # Into Feishu's renewal window (2-hour tokens, the last 30 minutes):
        # moved, not waited for.
        delay = float(re.findall(r"下次刷新: ([\d.]+) 秒后", s.log())[0])
        self.assertTrue(7200 - 1800 < delay <= 7200 - 1800 + 31, delay)
        clock.advance(delay + 0.1)
        self.wait_log(s, "下次刷新", 2)          # logged after the store and the notice
        second = self.served(s)
        self.assertNotEqual(second["access_token"], first["access_token"])
        self.assertEqual(second["access_token"], self.feishu.current_token())
        self.assertEqual(self.feishu.tokens_minted, len(self.fetch_times()))  # never too early
        self.assertEqual(len(self.feishu.sent), 2)
        assert_updated_notice(self, self.feishu.sent_texts[0], "https://tokens.example/get-token")
        log = s.log()
        self.assertIn("飞书 token 刷新已启用", log)
        self.assertIn("Token已写入本地存储 (default)", log)

    def test_invalid_reports_force_exactly_one_refresh(self):
        clock = self.clock()
        clock.attach(self.start_feishu())
        s = self.start_serve()
        self.wait_log(s, "下次刷新")
        rec = self.served(s)
        self.assertEqual(len(self.fetch_times()), 1)
        results = []

        def report():
            r = s.post("/v1/tokens/default/invalid", {"access_token": rec["access_token"]})
            results.append((r.status, r.json()))

        threads = [threading.Thread(target=report) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Feishu hands back the same token (>= 30 min left): every reporter
        # is told so plainly, so no client loops re-reporting or takes the
        # rejected token for a new one.
        self.assertEqual({st for st, _ in results}, {409}, results)
        self.assertTrue(all("飞书仍在发放此 token" in b["message"] for _, b in results), results)
        self.assertEqual(len(self.fetch_times()), 2)       # one forced fetch for all eight
        # Reported again at once: the same answer, without another fetch.
        r = s.post("/v1/tokens/default/invalid", {"access_token": rec["access_token"]})
        self.assertEqual(r.status, 409)
        self.assertEqual(len(self.fetch_times()), 2)
        self.assertEqual(s.log().count("立即强制刷新一次"), 1)
        # Feishu answered with the same token (>= 30 min left): kept, said so.
        self.assertEqual(self.served(s), rec)
        self.assertIn("飞书返回了同一个 token", s.log())
        self.assertIn("app_access_token 无法提前作废", s.log())
        self.assertEqual(len(self.feishu.sent), 1)        # no news, no notice
        # Once the interval (30 s) has passed, a report forces one again.
        clock.advance(30)
        r = s.post("/v1/tokens/default/invalid", {"access_token": rec["access_token"]})
        self.assertEqual(r.status, 409)
        self.assertEqual(s.log().count("立即强制刷新一次"), 2)
        self.assertEqual(len(self.fetch_times()), 3)

    def test_two_servers_on_one_sqlite_file_refresh_once(self):
        """Two servers started from one folder share ./var/tokendist.db: the
        file's lease lets exactly one of them refresh -- one fetch and one
        group notice per renewal -- and the other serves what it writes."""
        clock = self.clock()
        clock.attach(self.start_feishu())
        a = self.start_serve()
        self.wait_log(a, "下次刷新")
        b = self.start_serve()
        self.assertEqual(b.store, a.store)
        self.wait_log(b, "租约 refresh:default 由其他实例持有")
        self.assertEqual(self.served(b)["access_token"], self.feishu.current_token())
        ready = b.get("/readyz").json()["refresh"]["default"]
        self.assertFalse(ready["lease_held"])
        self.assertTrue(a.get("/readyz").json()["refresh"]["default"]["lease_held"])
        self.assertEqual(ready["lease_holder"], a.get("/readyz").json()["refresh"]["default"]["lease_holder"])
        # A report to the other server names the holder; the holder acts.
        tok = self.served(b)["access_token"]
        r = b.post("/v1/tokens/default/invalid", {"access_token": tok})
        self.assertEqual(r.status, 503, r.body)
        self.assertIn(ready["lease_holder"], r.json()["message"])
        self.assertEqual(a.post("/v1/tokens/default/invalid", {"access_token": tok}).status, 409)
        fetches = len(self.fetch_times())
        for n in (1, 2):
            cycles = a.log().count("下次刷新")
            delay = float(re.findall(r"下次刷新: ([\d.]+) 秒后", a.log())[-1])
            clock.advance(delay + 0.1)
            self.wait_log(a, "下次刷新", cycles + 1)
            new = self.feishu.current_token()
            self.wait_for(lambda: self.served(b)["access_token"] == new, what="the other server serving it")
            self.assertEqual(len(self.fetch_times()), fetches + n)      # one fetch per renewal
            self.assertEqual(len(self.feishu.sent), 1 + n)              # one notice per renewal
        self.assertNotIn("下次刷新", b.log())
        self.assertNotIn("刷新失败", a.log() + b.log())
        # The holder stops (and gives the lease up): the other takes over.
        a.stop()
        self.wait_log(b, "本实例持有租约 refresh:default")
        self.wait_log(b, "下次刷新")
        self.assertEqual(len(self.feishu.sent), 3)   # the token it found was announced already

    def test_forced_refresh_inside_window_gets_new_token(self):
        self.start_feishu()
        s = self.start_serve()
        rec = self.wait_for(lambda: self.served(s), what="first token")
        self.feishu.control({"advance": 6000})           # Feishu would now renew
        r = s.post("/v1/tokens/default/invalid", {"access_token": rec["access_token"]})
        self.assertEqual(r.status, 200, r.body)   # the refresh ran: its new record, at once
        new = r.json()
        self.assertEqual(self.served(s), new)
        self.assertEqual(new["access_token"], self.feishu.current_token())
        self.assertGreater(new["generated_timestamp"], rec["generated_timestamp"])
        # A report of the old token now gets the current record back.
        r = s.post("/v1/tokens/default/invalid", {"access_token": rec["access_token"]})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["access_token"], new["access_token"])

    def test_also_pushes_to_other_sinks_and_survives_feishu_down(self):
        self.start_feishu()
        self.start_endpoint()
        s = self.start_serve()
        rec = self.wait_for(lambda: self.served(s), what="own token")
        self.wait_for(lambda: self.served(), what="endpoint token")
        self.assertEqual(self.served()["access_token"], rec["access_token"])
        # The group is told after the sinks took the token: wait for it
        # before the stop, or a stop in between leaves it untold.
        self.wait_for(lambda: len(self.feishu.sent) == 1, what="the announcement")
        s.stop()
        # A restart with Feishu refusing: the stored token is still served.
        self.feishu.control({"fail": "503"})
        s2 = self.start_serve()
        self.wait_log(s2, "❌ token 刷新失败")
        self.assertEqual(self.served(s2), rec)
        self.assertEqual(len(self.feishu.sent), 1)        # restarts do not re-announce

    def test_a_failure_cut_inside_a_character_still_shows_on_the_status_page(self):
        """An event keeps the first bytes of a failure, as many as it holds.
        Most messages are Chinese now (issue #14), three bytes a character:
        a cut inside one made jansson refuse the event, and /status.json
        (the status page) showed no failure at all.  The cut is placed one
        byte into the first Chinese character after the URL, found from the
        log (which has the whole message)."""
        self.start_feishu()

        def fail_with(pad):
            base = "http://127.0.0.1:9/" + "b" * pad              # nothing listens: a connect error
            s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env(FEISHU_BASE_URL=base)}).start()
            self.wait_log(s, "token 刷新失败")
            err = re.search(r"token 刷新失败 \(连续第 1 次\): (.*?)；目前没有可用的 token", s.log()).group(1)
            toks = s.get("/status.json").json()["tokens"]
            events = next(t for t in toks if t["name"] == "default")["refresh"]["events"]
            s.stop()
            return err.encode(), [e["text"] for e in events if e["kind"] == "failure"]

        raw, failures = fail_with(600)                             # cut inside the URL: what an event holds
        held = len(failures[0].encode())
        raw, _ = fail_with(100)
        after_url = raw.index(b"/internal") + len(b"/internal")
        lead = next(i for i in range(after_url, len(raw)) if raw[i] >= 0xC0)
        pad = 100 + (held - 1 - lead)                               # that lead byte last: cut after it
        raw, failures = fail_with(pad)
        self.assertGreaterEqual(raw[held - 1], 0xC0, "the cut is not inside a character")
        self.assertEqual(len(failures), 1, "the failure is missing from /status.json")
        self.assertEqual(failures[0].encode(), raw[:held - 1])      # the half character dropped

    def test_without_credentials_invalid_is_501(self):
        self.start_feishu()
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.assertEqual(s.post("/release/get-token", harness.make_record(), key=PUSH_KEY).status, 200)
        r = s.post("/v1/tokens/default/invalid", {"access_token": harness.make_record()["access_token"]})
        self.assertEqual(r.status, 501)
        default_msg = r.json()["message"]
        # Another platform's token: its answer names that platform and the
        # variables that configure it, never FEISHU_* (issue #14).
        for name, provider, label in (("wx", "wechat", "微信"), ("ding", "dingtalk", "钉钉")):
            rec = harness.make_record(token="t-" + name + "0123456789", provider=provider)
            self.assertEqual(s.post(f"/v1/tokens/{name}", rec, key=PUSH_KEY).status, 200)
            r = s.post(f"/v1/tokens/{name}/invalid", {"access_token": rec["access_token"]})
            self.assertEqual(r.status, 501)
            msg = r.json()["message"]
            self.assertIn(f"未配置{label}凭证", msg)
            self.assertIn(f"TOKENDIST_TOKENS 中加上 {name}", msg)
            self.assertIn(f"TOKENDIST_{name.upper()}_PROVIDER={provider}、TOKENDIST_{name.upper()}_APP_ID", msg)
            self.assertNotIn("FEISHU", msg)
            self.assertNotIn("飞书", msg)
        self.assertIn("未配置飞书凭证：请设置 FEISHU_APP_ID 和 FEISHU_APP_SECRET", default_msg)


if __name__ == "__main__":
    unittest.main()
