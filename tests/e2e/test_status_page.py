"""GET /status in a real browser (Debian's headless Chromium, browser.py):
a real `tokendist serve` refreshing from the Feishu double, the page read
as a person reads it -- with JavaScript on (the script redraws from
/status.json) and off (what the server drew) -- while Feishu is down from
the start, once the first token is in, during an outage that brings the
token near its expiry, and after the recovery; a server with a read key
(the form, the key in sessionStorage and a header, never in the URL); a
sink that fails.  Never a token on the page, only fingerprints.

Screenshots go to build/status-screenshots/ (TOKENDIST_SCREENSHOTS to
choose), never into the source tree; scripts/status-screenshots copies
them to docs/.

Label `browser` (tests/CMakeLists.txt): left out of the sanitizer pass,
which would run the same C code again behind a slow browser.
"""
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

import browser
import harness
from feishu_env import PUSH_KEY, FeishuEnv
from harness import BIN, TestCase, make_record
from redisd import SharedRedis

SHOTS = os.environ.get("TOKENDIST_SCREENSHOTS") or os.path.join(os.path.dirname(os.path.abspath(BIN)),
                                                                 "status-screenshots")
READ = "rk-status-page-5e6f7a8b9c0d1e2f"
TOKEN_PATH = "/open-apis/auth/v3/"


def fingerprint(token):
    """What src/log.c shows of a token: its first five and last two characters."""
    return "%s…%s" % (token[:5], token[-2:]) if len(token) >= 16 else "(%d 个字符)" % len(token)


class StatusPageTest(FeishuEnv, TestCase):
    @classmethod
    def setUpClass(cls):
        # One browser per setting for the class (each starts in seconds);
        # every test opens tabs of its own.
        cls.browsers = {}
        if not os.path.exists(browser.CHROMIUM):
            return
        cls.browser_dir = tempfile.mkdtemp(prefix="tokendist-browser-")
        cls.browsers = {js: browser.Browser(cls.browser_dir, scripts=js) for js in (True, False)}

    @classmethod
    def tearDownClass(cls):
        for b in cls.browsers.values():
            b.close()
        if cls.browsers:
            shutil.rmtree(cls.browser_dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        if not self.browsers:
            self.fail("chromium is not installed: scripts/bootstrap --test installs it")
        self.tabs = []
        self.secrets.append(READ)

    def tearDown(self):
        for t in self.tabs:
            t.close()
        super().tearDown()

    def browser(self, scripts=True):
        """A new tab (its own sessionStorage) with JavaScript on or off."""
        t = self.browsers[scripts].tab()
        self.tabs.append(t)
        return t

    def shot(self, b, name):
        return b.screenshot(os.path.join(SHOTS, "status-%s.png" % name))

    def assert_no_tokens(self, *texts):
        """Neither the page nor its JSON ever holds a token the double minted."""
        self.remember_tokens()
        for t in self.feishu.state()["tokens"]:
            for text in texts:
                self.assertNotIn(t["token"], text)

    def url(self, server, path="/status"):
        return "http://127.0.0.1:%d%s" % (server.port, path)

    def test_feishu_down_from_the_start(self):
        self.start_feishu()
        self.feishu.control({"fail": "503", "path": TOKEN_PATH})
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env()}).start()
        on, off = self.browser(), self.browser(scripts=False)
        self.wait_log(s, "❌ token 刷新失败 (连续第 2 次)")
        on.open(self.url(s))
        text = on.wait_text("🔑 default", "⏳ 尚无 token", "还没有可分发的 token", "❌ 失败", "飞书 app_access_token",
                            "本实例持有", "🟢 实时更新")
        self.assertRegex(text, r"连续 \d+ 次")
        off.open(self.url(s))
        off.wait_text("⏳ 尚无 token", "❌ 失败", "未启用 JavaScript")
        # Feishu back: the page shows the first token -- redrawn by its
        # script, or, without JavaScript, once it reloads itself (30 s).
        self.feishu.control({"clear_faults": True})
        self.wait_log(s, "下次刷新")
        fp = fingerprint(self.served(s)["access_token"])
        on.wait_text("✅ 正常", fp, "刷新已恢复 (此前连续失败", absent=("⏳ 尚无 token",))
        off.wait_event("Page.loadEventFired", timeout=harness.DEADLINE + 30)
        off.wait_text("✅ 正常", fp, "刷新已恢复 (此前连续失败", absent=("⏳ 尚无 token",))

    def test_outage_and_recovery(self):
        clock = self.clock()
        clock.attach(self.start_feishu())
        self.start_endpoint()
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env()}).start()
        on, off = self.browser(), self.browser(scripts=False)

        # The first token, delivered to both sinks.
        self.wait_log(s, "下次刷新")
        self.wait_log(self.endpoint, "Token已存储")
        tok = self.served(s)["access_token"]
        # A token of another platform, pushed by its producer: drawn with
        # its own renewal window (WeChat's stable token: 5 minutes).
        now = int(clock.now())
        self.assertEqual(s.post("/v1/tokens/wx", make_record("wx-token-status-page-0123456789", generated=now,
                                                             provider="wechat"), key=PUSH_KEY).status, 200)
        on.open(self.url(s))
        text = on.wait_text("✅ 正常", fingerprint(tok), "换发窗口 30 分钟", "本地存储: ✅ 已送达",
                            "腾讯云函数: ✅ 已送达", "已发送群通知「Access Token 已更新」", "🔑 wx", "微信",
                            "换发窗口 5 分钟", "由生产者推送", "最近 1 条记录", "⏭️ 下次刷新", "🟢 实时更新")
        # Whole seconds: a page drawn in the second the token was issued
        # shows all of its 7200 s left.
        self.assertRegex(text, r"剩余 (1 小时 5\d 分|2 小时) / 寿命 2 小时")
        self.assertRegex(text, r"下次刷新 \d\d:\d\d:\d\d \(1 小时 [23]\d 分后\)")
        self.assertNotIn("❌", text)
        self.shot(on, "fresh")
        off.open(self.url(s))
        off.wait_text("✅ 正常", fingerprint(tok), "本地存储: ✅ 已送达", "🔑 wx", "未启用 JavaScript")
        self.assertTrue(off.has('meta[http-equiv="refresh"]'), "without JavaScript the page reloads itself")
        self.assertFalse(on.has('meta[http-equiv="refresh"]'), "with JavaScript the script redraws instead")
        self.shot(off, "no-javascript")

        # An outage inside the renewal window: 500 s left, under the alert
        # threshold (600 s); the group is alerted once, the token served on.
        self.feishu.control({"fail": "503", "path": TOKEN_PATH})
        clock.advance(7200 - 500)
        self.wait_log(s, "已发送群通知: 刷新失败告警")
        self.wait_log(s, "❌ token 刷新失败 (连续第 3 次)")
        on.open(self.url(s))        # (the script's redraw is test_feishu_down_from_the_start's)
        text = on.wait_text("⏰ 即将过期", fingerprint(tok), "🚨 失败与告警", "已发送群通知「刷新失败告警」",
                            "❌ 失败", "失败后退避重试")
        self.assertRegex(text, r"剩余 [5-8] 分")
        self.assertRegex(text, r"❌ \d\d:\d\d:\d\d–\d\d:\d\d:\d\d .*×\d+ 飞书 app_access_token")
        self.shot(on, "outage")
        off.open(self.url(s))
        off.wait_text("⏰ 即将过期", "已发送群通知「刷新失败告警」", "❌ 失败")

        # Recovery: a new token beside the old one (the timeline shows both).
        self.feishu.control({"clear_faults": True})
        self.wait_log(s, "✅ token 刷新已恢复")
        self.wait_log(s, "下次刷新", 2)
        new = self.served(s)["access_token"]
        self.assertNotEqual(new, tok)
        on.open(self.url(s))
        text = on.wait_text("✅ 正常", fingerprint(new), "刷新已恢复 (此前连续失败", "已发送群通知「刷新已恢复」",
                            "最近 2 条记录", "● 分发中", "仍有效", absent=("⏰ 即将过期",))
        self.assertRegex(text, r"✅ \d\d:\d\d:\d\d \([^)]*\) 刷新已恢复 \(此前连续失败 \d+ 次\)")
        self.shot(on, "recovered")
        off.open(self.url(s))
        off.wait_text("✅ 正常", fingerprint(new), "刷新已恢复 (此前连续失败", "最近 2 条记录")

        # The same facts as JSON, and never a token anywhere.
        facts = s.get("/status.json").json()
        default = facts["tokens"][0]
        self.assertEqual((default["name"], default["provider"], default["renew_window"]), ("default", "feishu", 1800))
        self.assertEqual(default["record"]["access_token_fingerprint"], fingerprint(new))
        self.assertEqual([h["current"] for h in default["history"]], [True, False])
        self.assertEqual([k["sink"] for k in default["refresh"]["sinks"]], ["local", "endpoint"])
        self.assertEqual(facts["tokens"][1]["renew_window"], 300)
        self.assert_no_tokens(on.dom(), off.dom(), json.dumps(facts, ensure_ascii=False),
                              s.get("/status").body.decode())

    def test_read_key(self):
        s = self.server(["--push-key", PUSH_KEY, "--read-key", READ]).start()
        rec = make_record("t-g1044statusPageReadKeyTokenPB")
        self.secrets.append(rec["access_token"])
        self.assertEqual(s.post("/v1/tokens/default", rec, key=PUSH_KEY).status, 200)
        fp = fingerprint(rec["access_token"])
        # The page itself holds no facts; /status.json needs the key.
        page = s.get("/status")
        self.assertEqual(page.status, 200)
        self.assertNotIn(fp, page.body.decode())
        self.assertEqual(s.get("/status.json").status, 401)
        self.assertEqual(s.get("/status.json", headers={"Authorization": "Bearer rk-wrong"}).status, 403)
        self.assertIn(fp, s.get("/status.json", headers={"Authorization": "Bearer " + READ}).json()["html"])

        off = self.browser(scripts=False)
        off.open(self.url(s))
        off.wait_text("本服务器设置了读取密钥", "需要启用 JavaScript")
        self.assertNotIn(fp, off.dom())

        on = self.browser()
        on.open(self.url(s))
        on.wait_text("🔐 请输入读取密钥", "sessionStorage", absent=(fp,))
        self.shot(on, "read-key")
        enter = ("document.getElementById('key').value=%s;"
                 "document.getElementById('keyform').requestSubmit();")
        on.run(enter % json.dumps("rk-wrong"))
        on.wait_text("❌ 读取密钥无效，请重新输入", absent=(fp,))
        on.run(enter % json.dumps(READ))
        on.wait_text(fp, "🔑 default", "🔒 清除读取密钥", absent=("请输入读取密钥",))
        # The key stays in this tab's sessionStorage and out of the URL and the DOM.
        self.assertEqual(on.run("sessionStorage.getItem('tokendist.read_key')"), READ)
        self.assertEqual(on.run("location.href"), self.url(s))
        self.assertNotIn(READ, on.dom())
        # A reload in the same tab asks no more; "清除" forgets the key.
        on.open(self.url(s))
        on.wait_text(fp, "🟢 实时更新")
        on.run("document.getElementById('forget').click()")
        on.wait_text("🔐 请输入读取密钥", "已清除", absent=(fp,))
        self.assertIsNone(on.run("sessionStorage.getItem('tokendist.read_key')"))

    def test_every_name_in_order_with_its_renewal_rule(self):
        """`default` first, then by name, a jsapi_ticket right after its
        token with the ticket's own window (5 min before its expiry), a
        record without `provider` taken as Feishu's."""
        s = self.server(["--push-key", PUSH_KEY]).start()
        now = int(time.time())
        for name, rec in (("zz", make_record("t-zzTokenStatusOrder000001")),
                          ("wx", make_record("wx-token-status-order-0000001", provider="wechat")),
                          ("default", make_record("t-defaultStatusOrder0000001", ttl=900))):
            self.assertEqual(s.post("/v1/tokens/" + name, rec, key=PUSH_KEY).status, 200)
        s.stop()
        # The refresher writes a ticket beside its token (NAME.jsapi_ticket,
        # a key no POST can name): here written into the store directly.
        ticket = make_record("ticket-status-order-000000001", provider="wechat", derived_from="wx")
        db = sqlite3.connect(s.store[len("sqlite:"):])
        db.execute("INSERT INTO tokens (name, json, generated_ts, expire_ts, stored_at) VALUES (?, ?, ?, ?, ?)",
                   ("wx.jsapi_ticket", json.dumps(ticket), ticket["generated_timestamp"], ticket["expire_timestamp"],
                    now))
        db.commit()
        db.close()
        s.start()
        off = self.browser(scripts=False)
        off.open(self.url(s))
        text = off.wait_text("🎫 wx.jsapi_ticket", "随 token wx 一起换新")
        order = [text.index(n) for n in ("🔑 default", "🔑 wx", "🎫 wx.jsapi_ticket", "🔑 zz")]
        self.assertEqual(order, sorted(order), text)
        self.assertRegex(text, r"🔑 default 飞书 access token · 换发窗口 30 分钟 🔄 换发窗口内")
        self.assertRegex(text, r"🔑 wx 微信 access token · 换发窗口 5 分钟 ✅ 正常")
        self.assertRegex(text, r"🎫 wx.jsapi_ticket 微信 jsapi_ticket · 换发窗口 5 分钟 ✅ 正常")
        facts = s.get("/status.json").json()["tokens"]
        self.assertEqual([(t["name"], t["kind"], t["renew_window"]) for t in facts],
                         [("default", "token", 1800), ("wx", "token", 300), ("wx.jsapi_ticket", "jsapi_ticket", 300),
                          ("zz", "token", 1800)])
        self.assertEqual(facts[2]["derived_from"], "wx")

    def test_fleet_names_the_lease_holder(self):
        """Two servers on Redis: the one holding the lease says so and shows
        its schedule; the other names the holder and stands by."""
        redis = SharedRedis(self.tmp)
        self.addCleanup(redis.close)
        self.start_feishu()
        env = {"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env()}
        pair = [self.server(store=redis.url(), env=env).start() for _ in range(2)]
        holder = self.wait_for(lambda: [p for p in pair if "本实例持有租约 refresh:default" in p.log()],
                               what="a lease holder")[0]
        other = pair[1] if holder is pair[0] else pair[0]
        self.wait_for(lambda: self.served(other), what="the token on the other server")
        owner = holder.get("/readyz").json()["refresh"]["default"]["lease_holder"]
        off = self.browser(scripts=False)
        off.open(self.url(holder))
        off.wait_text("本实例持有", owner, "⏭️ 下次刷新", "本地存储: ✅ 已送达")
        off.open(self.url(other))
        text = off.wait_text("由 %s 持有并刷新；本实例待命" % owner, "✅ 正常")
        self.assertNotIn("⏭️ 下次刷新", text)     # the holder's schedule is its own

    def test_failing_sink(self):
        self.start_feishu()
        down = "http://127.0.0.1:%d/release/get-token" % harness.free_port()
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY,
                             **self.feishu_env(TENCENT_CLOUD_API_URL=down, TENCENT_CLOUD_API_KEY=PUSH_KEY)}).start()
        self.wait_log(s, "腾讯云函数连接失败", 2)
        on = self.browser()
        on.open(self.url(s))
        text = on.wait_text("本地存储: ✅ 已送达", "腾讯云函数: ❌ 连续失败", "腾讯云函数连接失败", "⚠️ 分发失败")
        self.assertRegex(text, r"腾讯云函数: ❌ 连续失败 \d+ 次")


if __name__ == "__main__":
    unittest.main()
