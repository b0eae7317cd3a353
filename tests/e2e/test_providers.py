"""tokendist as the access-token 中控 of several platforms: one server (or a
fleet on Redis) keeps a Feishu, a WeChat (with its jsapi_ticket), a WeCom and
a DingTalk token at once, each by its platform's rules, against local
doubles of the four platforms (tests/doubles/, sources in docs/providers.md).
Tokens are compared, never printed: they are secrets."""
import os
import threading
import time
import unittest

import harness
from dingtalk import DEFAULT_APP_KEY, DEFAULT_APP_SECRET as DT_SECRET, DingTalkDouble
from feishu_env import PUSH_KEY, FeishuEnv
from redisd import SharedRedis
from test_client_lib import DRIVER, Driver
from wechat import DEFAULT_APPID, DEFAULT_SECRET as WX_SECRET, WeChatDouble
from wecom import DEFAULT_CORPID, DEFAULT_SECRET as WW_SECRET, WeComDouble

TTL = 40


class Platforms(FeishuEnv):
    def start_platforms(self, ttl=TTL, wechat_window=10):
        self.start_feishu(ttl=7200)
        self.wx = WeChatDouble().start()
        self.ww = WeComDouble().start()
        self.dt = DingTalkDouble().start()
        for d in (self.wx, self.ww, self.dt):
            self.addCleanup(d.stop)
        self.wx.control({"ttl": ttl, "renew_window": wechat_window})
        self.ww.control({"ttl": ttl})
        self.dt.control({"ttl": ttl})
        self.secrets += [WX_SECRET, WW_SECRET, DT_SECRET]

    def env(self, **extra):
        e = self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false", FEISHU_CHAT_ID="",
                            TOKENDIST_TOKENS="wx,corp,ding",
                            TOKENDIST_WX_PROVIDER="wechat", TOKENDIST_WX_APP_ID=DEFAULT_APPID,
                            TOKENDIST_WX_APP_SECRET=WX_SECRET, TOKENDIST_WX_BASE_URL=self.wx.url,
                            TOKENDIST_WX_JSAPI_TICKET="true", TOKENDIST_WX_RENEW_WINDOW=10,
                            TOKENDIST_CORP_PROVIDER="wecom", TOKENDIST_CORP_APP_ID=DEFAULT_CORPID,
                            TOKENDIST_CORP_APP_SECRET=WW_SECRET, TOKENDIST_CORP_BASE_URL=self.ww.url,
                            TOKENDIST_DING_PROVIDER="dingtalk", TOKENDIST_DING_APP_ID=DEFAULT_APP_KEY,
                            TOKENDIST_DING_APP_SECRET=DT_SECRET, TOKENDIST_DING_BASE_URL=self.dt.url,
                            TOKENDIST_DING_RENEW_WINDOW=10)
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def token(self, srv, path):
        r = srv.get(path)
        return r.json() if r.status == 200 else None

    def remember(self):
        for d in (self.wx, self.ww, self.dt):
            for t in getattr(d, "tokens", {}) or {}:
                self.secrets.append(t)

    def tearDown(self):
        if getattr(self, "wx", None):
            self.remember()
        super().tearDown()


class OneServerTest(Platforms, harness.TestCase):
    def test_one_server_keeps_four_tokens_and_a_ticket(self):
        self.start_platforms()
        srv = self.server(env=self.env()).start()
        rec = {}
        for name in ("default", "wx", "corp", "ding"):
            rec[name] = self.wait_for(lambda n=name: self.token(srv, "/v1/tokens/" + n), what=name)
        self.assertEqual({n: r.get("provider") for n, r in rec.items()},
                         {"default": "feishu", "wx": "wechat", "corp": "wecom", "ding": "dingtalk"})
        self.assertTrue(rec["wx"]["access_token"] == self.wx.current_token(), "not WeChat's token")
        self.assertTrue(rec["corp"]["access_token"] == self.ww.current_token(), "not WeCom's token")
        self.assertTrue(rec["ding"]["access_token"] == self.dt.current_token(), "not DingTalk's token")
        ticket = self.wait_for(lambda: self.token(srv, "/v1/tokens/wx/jsapi_ticket"), what="the jsapi_ticket")
        self.assertEqual(ticket["derived_from"], "wx")
        self.assertEqual(ticket["provider"], "wechat")
        self.assertTrue(ticket["access_token"] != rec["wx"]["access_token"], "the ticket is the token")
        self.assertEqual(srv.get("/v1/tokens/corp/jsapi_ticket").status, 404)  # not asked for
        self.assertEqual(srv.post("/v1/tokens/wx/jsapi_ticket", {}, key=PUSH_KEY).status, 405)
        # The seed's URL still serves the Feishu token, and only it.
        self.assertEqual(srv.get("/release/get-token").json()["provider"], "feishu")
        ready = srv.get("/readyz").json()
        self.assertEqual(set(ready["refresh"]), {"default", "wx", "corp", "ding"})

    def test_a_record_of_another_platform_is_refused_under_a_name_it_refreshes(self):
        """A pusher whose endpoint URL points at another name's record (two
        names sharing one endpoint) must not hand that name's readers a token
        of another platform: a server that refreshes the name refuses it."""
        self.start_platforms(ttl=7200, wechat_window=300)
        srv = self.server(env=self.env(TOKENDIST_WX_RENEW_WINDOW=300)).start()
        for n in ("default", "wx"):
            self.wait_for(lambda n=n: self.token(srv, "/v1/tokens/" + n), what=n)
        gen = int(time.time()) + 5  # newer than what the refreshers stored
        refused = [("/release/get-token", "wechat", "微信"), ("/v1/tokens/wx", "feishu", "飞书"),
                   ("/v1/tokens/wx", None, "飞书"), ("/v1/tokens/corp", "dingtalk", "钉钉")]
        for path, provider, label in refused:
            extra = {"provider": provider} if provider else {}
            r = srv.post(path, harness.make_record("t-mixup%020d" % gen, generated=gen, **extra), key=PUSH_KEY)
            self.assertEqual(r.status, 409, (path, provider, r.body))
            self.assertRegex(r.json()["message"], r"^记录的平台 \([^)]*%s\)" % label)
        self.assertTrue(self.token(srv, "/v1/tokens/wx")["access_token"] == self.wx.current_token())
        # The same platform (Feishu and Lark are one), and a name nobody here refreshes, take any.
        for path, provider in (("/release/get-token", "lark"), ("/v1/tokens/wx", "wechat"),
                               ("/v1/tokens/other", "wechat")):
            r = srv.post(path, harness.make_record("t-fine%020d" % gen, generated=gen, provider=provider),
                         key=PUSH_KEY)
            self.assertEqual(r.status, 200, (path, provider, r.body))

    def test_each_platform_renews_by_its_own_rule(self):
        self.start_platforms()
        srv = self.server(env=self.env()).start()
        first = {n: self.wait_for(lambda n=n: self.token(srv, "/v1/tokens/" + n), what=n)
                 for n in ("wx", "corp", "ding")}
        # WeChat renews in its last 10 s (a new token), WeCom only after the
        # expiry (a new token), DingTalk extends the same token.
        self.wait_for(lambda: (self.token(srv, "/v1/tokens/wx") or {}).get("access_token") !=
                      first["wx"]["access_token"], timeout=TTL + 20, what="WeChat's renewal")
        # WeCom's renewal: read it all the way through; no GET may come back
        # empty (fresh on read waits the moment between expiry and renewal).
        seen_gap = []

        def corp_renewed():
            t = self.token(srv, "/v1/tokens/corp")
            if t is None:
                seen_gap.append(time.time())
                return False
            return t["access_token"] != first["corp"]["access_token"]

        self.wait_for(corp_renewed, timeout=TTL + 20, what="WeCom's renewal")
        self.assertEqual(seen_gap, [], "a GET found no WeCom token at its renewal")
        ding = self.wait_for(lambda: (self.token(srv, "/v1/tokens/ding") or {}).get("expire_timestamp", 0) >
                             first["ding"]["expire_timestamp"] and self.token(srv, "/v1/tokens/ding"),
                             timeout=TTL + 20, what="DingTalk's extension")
        self.assertTrue(ding["access_token"] == first["ding"]["access_token"], "DingTalk's token changed")
        # Reads never failed at the boundary: every GET of WeCom's token
        # during its renewal gets a token (fresh on read bridges the gap).
        self.assertEqual(self.ww.fetches(), 2)

    def test_a_report_of_the_wechat_token_forces_exactly_one_refresh(self):
        self.start_platforms(ttl=7200, wechat_window=300)
        srv = self.server(env=self.env(TOKENDIST_WX_RENEW_WINDOW=300)).start()
        wx = self.wait_for(lambda: self.token(srv, "/v1/tokens/wx"), what="WeChat's token")
        # A valid token reported: WeChat says it is fine -- no forced fetch.
        r = srv.post("/v1/tokens/wx/invalid", {"access_token": wx["access_token"]})
        self.assertEqual(r.status, 409, r.body)
        self.assertEqual(self.wx.forced_fetches(), 0)
        self.assertIn("仍然有效", srv.log())
        # Now the token really is invalid (WeChat still hands it out in
        # normal mode): one confirmed, forced fetch, the new token at once.
        self.wx.control({"invalidate": "all"})
        time.sleep(0)  # (the 30 s dedup applies to the last answer of this token: a new server)
        srv2 = self.server(store="sqlite:" + os.path.join(self.tmp, "two.db"), env=self.env(
            TOKENDIST_WX_RENEW_WINDOW=300)).start()
        wx2 = self.wait_for(lambda: self.token(srv2, "/v1/tokens/wx"), what="WeChat's token at the second server")
        reports = [srv2.post("/v1/tokens/wx/invalid", {"access_token": wx2["access_token"]}) for _ in range(5)]
        self.assertEqual(reports[0].status, 200, reports[0].body)
        self.assertTrue(all(r.status == 200 for r in reports), [r.status for r in reports])
        self.assertTrue(reports[0].json()["access_token"] != wx2["access_token"], "the same token again")
        self.assertEqual(self.wx.forced_fetches(), 1)


class DingTalkFallbackTest(Platforms, harness.TestCase):
    def test_a_dingtalk_fetch_that_does_not_extend_falls_back_to_renewal_at_expiry(self):
        """docs/providers.md reads "a fetch extends the token" into DingTalk's
        documentation and promises the WeCom rule when a fetch does not move
        the expiry: no gap at the expiry, a few fetches, said once."""
        clock = self.clock()
        self.start_platforms(ttl=7200)
        clock.attach(self.dt)
        self.dt.control({"extend": False})
        env = self.env(TOKENDIST_TOKENS="ding", TOKENDIST_RETRY_MIN="2", TOKENDIST_RETRY_MAX="300")
        env.pop("TOKENDIST_DING_RENEW_WINDOW")  # DingTalk's own: 1800 s
        srv = self.server(env=env).start()
        first = self.wait_for(lambda: self.token(srv, "/v1/tokens/ding"), what="DingTalk's token")
        exp = first["expire_timestamp"]
        self.wait_log(srv, "下次刷新")
        clock.advance(7200 - 1800 + 40)  # into the window: the fetch that should extend
        self.wait_for(lambda: self.dt.fetches() >= 2, what="the fetch inside the window")
        self.wait_log(srv, "下次刷新", count=2)
        clock.advance(exp - 5 - clock.now())
        gaps = []
        while clock.now() < exp + 20:  # across the expiry, a read each second
            r = srv.get("/v1/tokens/ding")
            if r.status != 200 or r.json()["expire_timestamp"] <= clock.now():
                gaps.append((round(clock.now() - exp, 1), r.status))
            clock.advance(1)
        self.assertEqual(gaps, [], "reads failed at DingTalk's expiry")
        renewed = self.token(srv, "/v1/tokens/ding")
        self.assertTrue(renewed["access_token"] != first["access_token"], "not renewed")
        self.assertLessEqual(self.dt.fetches(), 3)
        self.assertEqual(srv.log().count("没有延长它的有效期"), 1)


class ReportsTest(Platforms, harness.TestCase):
    """What POST /v1/tokens/NAME/invalid does and says for each platform."""

    def report(self, srv, name, token):
        r = srv.post("/v1/tokens/%s/invalid" % name, {"access_token": token})
        return r.status, (r.json().get("message", "") if r.status != 200 else "")

    def test_a_409_speaks_for_the_token_s_own_platform(self):
        self.start_platforms(ttl=7200, wechat_window=300)
        srv = self.server(env=self.env(TOKENDIST_WX_RENEW_WINDOW=300, TOKENDIST_DING_RENEW_WINDOW=1800)).start()
        words = {"wx": ("微信", "微信确认此 token 仍然有效"),
                 "corp": ("企业微信", "企业微信只在过期后换发"),
                 "ding": ("钉钉", "钉钉在有效期内重复获取只会给同一个 token 续期")}
        for name, (label, rule) in words.items():
            rec = self.wait_for(lambda n=name: self.token(srv, "/v1/tokens/" + n), what=name)
            status, msg = self.report(srv, name, rec["access_token"])
            self.assertEqual(status, 409, (name, msg))
            self.assertTrue(msg.startswith(label + "仍在发放此 token"), (name, msg))
            self.assertIn(rule, msg, name)
            self.assertNotIn("飞书", msg, name)
            if os.path.exists(DRIVER):   # nor does the C client's text (it said 飞书 for all)
                d = Driver(self, "--url", "http://127.0.0.1:%d/v1/tokens/%s" % (srv.port, name))
                self.assertEqual(d.cmd("get")["rc"], 0)
                r = d.cmd("report")
                self.assertIn("报告token无效: 平台仍在发放此token，没有新的可换 (%s仍在发放此 token" % label, r["err"])
                self.assertNotIn("飞书", r["err"], name)
        # Nor does the log blame Feishu for another platform's token.
        self.assertNotIn("飞书只在", srv.log())
        self.assertIn("企业微信返回了同一个 token", srv.log())

    def test_a_wechat_token_is_judged_again_after_the_report_window(self):
        clock = self.clock()
        self.start_platforms(ttl=7200, wechat_window=300)
        clock.attach(self.wx)
        srv = self.server(env=self.env(TOKENDIST_TOKENS="wx", TOKENDIST_WX_RENEW_WINDOW=300)).start()
        wx = self.wait_for(lambda: self.token(srv, "/v1/tokens/wx"), what="WeChat's token")["access_token"]
        # 1. Reported while valid: WeChat says so, no forced fetch.
        status, msg = self.report(srv, "wx", wx)
        self.assertEqual(status, 409, msg)
        self.assertIn("微信确认此 token 仍然有效", msg)
        # 2. Again at once: the same answer, and the log says why WeChat was not asked.
        self.assertEqual(self.report(srv, "wx", wx)[0], 409)
        self.wait_log(srv, "刚处理过它")
        # 3. WeChat now rejects the token (normal mode still hands it out),
        # but the one check cannot tell (-1 busy): that costs no check.
        self.wx.control({"invalidate": "all"})
        self.wx.control({"fail": "errcode", "code": -1, "path": "/cgi-bin/get_api_domain_ip", "times": 1})
        clock.advance(40)
        status, msg = self.report(srv, "wx", wx)
        self.assertEqual(status, 409, msg)
        self.assertIn("微信无法确认此 token 是否有效", msg)
        self.assertIn("不计入确认次数", srv.log())
        # 4. The next report window: judged again, invalid, one forced fetch.
        clock.advance(40)
        r = srv.post("/v1/tokens/wx/invalid", {"access_token": wx})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["access_token"] != wx, "the rejected token again")
        self.assertEqual(self.wx.forced_fetches(), 1)
        self.assertEqual(srv.log().count("微信确认 token"), 2, "judged once per report window")


class ClientsTest(Platforms, harness.TestCase):
    def get(self, *args):
        """`tokendist get ARGS`: its stdout is the token by design, so only
        its stderr joins the outputs scanned for secrets."""
        r = harness.run_cli("get", *args)
        self.outputs.append(r.stderr)
        return r

    def test_get_by_name_ticket_and_the_platforms_minimum(self):
        self.start_platforms(ttl=7200, wechat_window=300)
        srv = self.server(env=self.env(TOKENDIST_WX_RENEW_WINDOW=300)).start()
        wx = self.wait_for(lambda: self.token(srv, "/v1/tokens/wx"), what="WeChat's token")
        ticket = self.wait_for(lambda: self.token(srv, "/v1/tokens/wx/jsapi_ticket"), what="the ticket")
        seed_url = "http://127.0.0.1:%d/release/get-token" % srv.port
        # The seed's URL with another name: that token, from beside it --
        # never the default token.
        r = self.get("--url", seed_url, "--name", "wx")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip() == wx["access_token"], "not WeChat's token")
        r = self.get("--url", seed_url, "--name", "wx", "--ticket", "jsapi_ticket")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip() == ticket["access_token"], "not the ticket")
        r = self.get("--url", "http://127.0.0.1:%d/v1/tokens/corp" % srv.port, "--name", "wx")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("corp", r.stderr)
        # A WeChat token with 4 minutes left is its platform's normal case:
        # taken by default; a Feishu one that close to its end is not.
        now = int(time.time())
        for name, provider, want in (("wx_late", "wechat", 0), ("fs_late", "feishu", 3)):
            rec = harness.make_record("t-late%020d" % len(name), generated=now - 7200 + 240, ttl=7200,
                                      provider=provider)
            self.assertEqual(srv.post("/v1/tokens/" + name, rec, key=PUSH_KEY).status, 200)
            r = self.get("--url", "http://127.0.0.1:%d" % srv.port, "--name", name)
            self.assertEqual(r.returncode, want, (name, r.stderr))
        r = self.get("--url", "http://127.0.0.1:%d" % srv.port, "--name", "wx_late", "--min-remaining", "300")
        self.assertEqual(r.returncode, 3, r.stderr)


class FleetTest(Platforms, harness.TestCase):
    def test_three_servers_fetch_each_token_once_per_renewal(self):
        redis = SharedRedis(self.tmp)
        self.addCleanup(redis.close)
        self.start_platforms()
        fleet = [self.server(store=redis.url(), env=self.env()).start() for _ in range(3)]
        for name in ("wx", "corp", "ding"):
            for s in fleet:
                self.wait_for(lambda s=s, n=name: self.token(s, "/v1/tokens/" + n), what=name)
        self.assertEqual((self.wx.fetches(), self.ww.fetches(), self.dt.fetches()), (1, 1, 1))
        # Through a renewal of each: still one fetch per renewal (WeChat:
        # a second fetcher is an outage for everybody else).
        first_wx = self.token(fleet[0], "/v1/tokens/wx")["access_token"]
        self.wait_for(lambda: all((self.token(s, "/v1/tokens/wx") or {}).get("access_token") != first_wx
                                  for s in fleet), timeout=TTL + 20, what="WeChat renewed everywhere")
        self.assertEqual(self.wx.fetches(), 2)


    def test_no_server_of_the_fleet_has_a_gap_at_wecom_s_renewal(self):
        """WeCom renews only after the expiry: the lease holder fetches then,
        and readers of every server -- not only the holder's -- wait that
        moment for the new record instead of getting 404."""
        redis = SharedRedis(self.tmp)
        self.addCleanup(redis.close)
        self.start_platforms(ttl=20)
        env = self.env(TOKENDIST_TOKENS="corp")
        fleet = [self.server(store=redis.url(), env=env).start() for _ in range(3)]
        first = [self.wait_for(lambda s=s: self.token(s, "/v1/tokens/corp"), what="corp") for s in fleet][0]
        stop, bad = threading.Event(), []

        def reader(i, s):
            while not stop.is_set():
                r = s.get("/v1/tokens/corp")
                if r.status != 200:
                    bad.append((i, r.status, round(time.time() - first["expire_timestamp"], 1)))
                time.sleep(0.05)
        readers = [threading.Thread(target=reader, args=(i, s)) for i, s in enumerate(fleet)]
        for t in readers:
            t.start()
        try:
            self.wait_for(lambda: all((self.token(s, "/v1/tokens/corp") or {}).get("access_token") !=
                                      first["access_token"] for s in fleet), timeout=60, what="WeCom renewed")
        finally:
            stop.set()
            for t in readers:
                t.join()
        self.assertEqual(bad, [], "(server, status, seconds after the expiry)")
        self.assertEqual(self.ww.fetches(), 2)
        self.assertFalse(any("尚未换新" in s.log() for s in fleet), "a server asked the holder to hurry")


class OneDownTest(Platforms, harness.TestCase):
    def test_one_platform_down_leaves_the_others_fresh(self):
        self.start_platforms()
        self.dt.control({"fail": "500"})
        srv = self.server(env=self.env()).start()
        first = {n: self.wait_for(lambda n=n: self.token(srv, "/v1/tokens/" + n), what=n) for n in ("wx", "corp")}
        # A whole lifetime of the others passes while DingTalk stays down.
        self.wait_for(lambda: (self.token(srv, "/v1/tokens/corp") or {}).get("access_token") !=
                      first["corp"]["access_token"], timeout=TTL + 20, what="WeCom renewed")
        self.assertTrue(self.token(srv, "/v1/tokens/wx")["access_token"] != first["wx"]["access_token"],
                        "WeChat not renewed")
        self.assertIsNone(self.token(srv, "/v1/tokens/ding"))
        self.assertIn("钉钉", srv.log())
        ready = srv.get("/readyz").json()["refresh"]
        self.assertGreater(ready["ding"]["failures_in_a_row"], 0)
        self.assertEqual(ready["wx"]["failures_in_a_row"], 0)

    def test_another_platform_s_alert_names_its_token_and_its_own_credentials(self):
        """The webhook alert for a WeChat token that cannot be fetched: it
        said "请检查飞书应用凭证 (FEISHU_APP_ID / FEISHU_APP_SECRET)" and not
        which token (issue #14: a message names the right platform)."""
        self.start_platforms()
        env = self.env(TOKENDIST_TOKENS="wx", TOKENDIST_WX_APP_SECRET="not-the-wechat-secret-01",
                       FEISHU_WEBHOOK_URL=self.feishu.url + "/open-apis/bot/v2/hook/test-hook")
        del env["FEISHU_APP_ID"], env["FEISHU_APP_SECRET"]          # the WeChat token alone
        self.secrets.append("not-the-wechat-secret-01")
        srv = self.server(env=env).start()
        # No token in service: the first failure alerts at once.
        alert = self.wait_for(lambda: next((t for t in self.feishu.hook_texts if "刷新失败" in t), None),
                              what="the alert on the webhook")
        self.assertTrue(alert.startswith("⚠️ 客户端 Access Token 刷新失败 (token wx)\n"), alert)
        self.assertIn("微信", alert)
        self.assertIn("请检查微信应用凭证 (TOKENDIST_WX_APP_ID / TOKENDIST_WX_APP_SECRET)", alert)
        self.assertNotIn("FEISHU_APP", alert)
        self.assertNotIn("飞书", alert)
        self.assertIsNone(self.token(srv, "/v1/tokens/wx"))


class SettingsTest(harness.TestCase):
    def test_wechat_and_wecom_outage_names_the_cause_and_address_not_the_secret(self):
        """As the Feishu provider does: the cause (curl's, in our words), the
        address with its query hidden (WeCom's corpsecret rides in it)."""
        port = harness.free_port()      # nothing listens there
        for provider, label in (("wechat", "微信"), ("wecom", "企业微信")):
            secret = "s3cret-%s-outage-0001" % provider
            self.secrets.append(secret)
            r = self.cli("refresh", "--once", env={
                "FEISHU_APP_ID": "", "FEISHU_APP_SECRET": "", "TOKENDIST_TOKENS": "wx",
                "TOKENDIST_WX_PROVIDER": provider, "TOKENDIST_WX_APP_ID": "wx1",
                "TOKENDIST_WX_APP_SECRET": secret, "TOKENDIST_WX_BASE_URL": "http://127.0.0.1:%d" % port,
                "TOKENDIST_WX_API_URL": "http://127.0.0.1:%d/v1/tokens/wx" % port})
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("%s 请求失败: http://127.0.0.1:%d/cgi-bin/" % (label, port), r.stderr)
            self.assertIn("无法连接", r.stderr)
            self.assertNotIn("%s 请求失败: HTTP 请求失败" % label, r.stderr)

    def test_a_mistake_in_one_token_is_a_start_up_error_naming_the_variable(self):
        base = {"TOKENDIST_TOKENS": "wx", "TOKENDIST_WX_PROVIDER": "wechat", "TOKENDIST_WX_APP_ID": "wx1",
                "TOKENDIST_WX_APP_SECRET": "s3cret-wx-0001"}
        self.secrets.append("s3cret-wx-0001")
        cases = [({"TOKENDIST_WX_PROVIDER": ""}, "TOKENDIST_WX_PROVIDER"),
                 ({"TOKENDIST_WX_PROVIDER": "weixin"}, "TOKENDIST_WX_PROVIDER=weixin"),
                 ({"TOKENDIST_WX_APP_SECRET": ""}, "TOKENDIST_WX_APP_SECRET"),
                 ({"TOKENDIST_WX_PROVIDER": "dingtalk", "TOKENDIST_WX_JSAPI_TICKET": "true"},
                  "TOKENDIST_WX_JSAPI_TICKET"),
                 ({"TOKENDIST_WX_RENEW_WINDOW": "soon"}, "TOKENDIST_WX_RENEW_WINDOW"),
                 ({"TOKENDIST_TOKENS": "Wx"}, "TOKENDIST_TOKENS"),
                 ({"FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": ""}, "FEISHU_APP_SECRET")]
        for change, names in cases:
            env = dict(base, **change)
            r = self.cli("refresh", "--once", env=env)
            self.assertEqual(r.returncode, 2, (change, r.stderr))
            self.assertIn(names, r.stderr, change)
        # Two names sharing one sink: the same record of the same endpoint
        # (the seed's path is the default name's), or the same Gitee file.
        feishu = {"FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": "s3cret-fs-0001"}
        self.secrets.append("s3cret-fs-0001")
        shared = [({"TENCENT_CLOUD_API_URL": "https://gw.example/prod/token",  # an API gateway's own path
                    "TOKENDIST_WX_API_URL": "https://user:pw@GW.example:443/prod/token/"},
                   ("TENCENT_CLOUD_API_URL", "TOKENDIST_WX_API_URL")),
                  ({"TENCENT_CLOUD_ENABLED": "false", "ENABLE_GITEE_TOKEN_SHARE": "true",
                    "GITEE_FILE_PATH": "tokens/token.json", "TOKENDIST_WX_GITEE_FILE_PATH": "/tokens//token.json"},
                   ("GITEE_FILE_PATH", "TOKENDIST_WX_GITEE_FILE_PATH"))]
        for change, names in shared:
            for cmd in (("serve", "--listen", "127.0.0.1:0", "--store", "memory:"), ("refresh", "--once")):
                r = self.cli(*cmd, env=dict(base, **feishu, **change))
                self.assertEqual(r.returncode, 2, (cmd, change, r.stderr))
                for n in names:
                    self.assertIn(n, r.stderr, change)
                self.assertNotIn("pw@", r.stderr)
        # One base URL for two names is two records (each gets its name's
        # path): it starts; a password in a URL is never logged ("API地址:
        # …"; tearDown looks for it in every output).
        self.secrets.append("pw-wx-api-0001")
        srv = self.server(env=dict(base, **feishu, TENCENT_CLOUD_API_URL="http://127.0.0.1:9",
                                   TOKENDIST_WX_API_URL="http://u:pw-wx-api-0001@127.0.0.1:9")).start()
        self.wait_log(srv, "API地址: http://***@127.0.0.1:9/v1/tokens/wx")
        self.wait_log(srv, "API地址: http://127.0.0.1:9/release/get-token")
        # The per-token settings come from the env-file too, secrets shown as fingerprints.
        # URLs without the user:password they may carry.
        path = os.path.join(self.tmp, "t.env")
        self.secrets += ["pw-wx-base-0001", "pw-wx-api-0002"]
        with open(path, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in base.items()))
            f.write("TOKENDIST_WX_BASE_URL=https://u:pw-wx-base-0001@proxy.example/\n"
                    "TOKENDIST_WX_API_URL=https://u:pw-wx-api-0002@ep.example/v1/tokens/wx\n")
        r = self.cli("serve", "--env-file", path, "--print-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("TOKENDIST_WX_APP_ID=wx1", r.stdout)
        self.assertIn("TOKENDIST_WX_APP_SECRET=sha256:", r.stdout)
        self.assertIn("TOKENDIST_WX_BASE_URL=https://***@proxy.example/", r.stdout)
        self.assertIn("TOKENDIST_WX_API_URL=https://***@ep.example/v1/tokens/wx", r.stdout)


if __name__ == "__main__":
    unittest.main()
