"""`tokendist refresh` against the Feishu and Gitee doubles and a real
`tokendist serve` as the distribution endpoint: the full cycle, the seed's
log lines and group notice, every failure mode (previous token kept,
retries, no expired record pushed), the schedule, and no secret in any
output."""
import json
import signal
import subprocess
import time
import re
import unittest

import harness
from feishu_env import CHAT, HOOK_SECRET, PUSH_KEY, FeishuEnv, assert_updated_notice


class RefreshOnce(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.start_feishu()
        self.start_endpoint()

    def once(self, **env):
        return self.cli("refresh", "--once", env=self.feishu_env(**env))

    def test_full_cycle(self):
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = self.served()
        tok = self.feishu.current_token()
        self.assertEqual(rec["access_token"], tok)
        self.assertEqual(rec["tenant_access_token"], tok)
        self.assertEqual(rec["valid_duration_seconds"], 7200)
        self.assertEqual((rec["source"], rec["usage"], rec["platform"]),
                         ("财联社自动化系统", "用于客户端从飞书群获取财联社电报文件", "腾讯云函数"))
        msgs = self.log_messages(r.stderr)
        # The seed's 运行日志示例, in its order.
        want = ["腾讯云函数 Token分发功能已启用", "API地址: " + self.endpoint_url(),
                "开始分发token到腾讯云函数...", "正在上传token到腾讯云函数...",
                "Token已成功分发到腾讯云函数", "app_access_token已成功分发到腾讯云函数"]
        self.assertEqual([m for m in msgs if m in want], want)
        self.assertEqual(len(self.feishu.sent), 1)
        self.assertEqual(self.feishu.sent[0]["chat_id"], CHAT)
        assert_updated_notice(self, self.feishu.sent_texts[0], self.endpoint_url(), minutes=120)

    def test_record_fields_configurable(self):
        r = self.once(TOKEN_SOURCE="src-x", TOKEN_USAGE="use-y", TOKEN_PLATFORM="自建服务器")
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = self.served()
        self.assertEqual((rec["source"], rec["usage"], rec["platform"]), ("src-x", "use-y", "自建服务器"))

    def test_same_token_again_is_no_news(self):
        self.assertEqual(self.once().returncode, 0)
        first = self.served()
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stderr)
        # Same token, same record (a byte-identical re-send), no second notice.
        self.assertEqual(self.served(), first)
        self.assertEqual(len(self.feishu.sent), 1)
        self.assertEqual(self.feishu.tokens_minted, 1)

    def test_wrong_secret_reports_code_and_keeps_previous(self):
        self.assertEqual(self.once().returncode, 0)
        before = self.served()
        posts = self.token_posts()
        r = self.once(FEISHU_APP_SECRET="WrongSecretWrongSecret0001")
        self.secrets.append("WrongSecretWrongSecret0001")
        self.assertEqual(r.returncode, 1)
        self.assertIn("错误码 10014: app secret invalid", r.stderr)
        self.assertEqual(self.served(), before)
        self.assertEqual(self.token_posts(), posts)   # nothing pushed

    def test_feishu_error_code_with_http_200(self):
        self.feishu.control({"fail": "code", "code": 10003, "msg": "invalid param"})
        r = self.once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("错误码 10003: invalid param", r.stderr)
        self.assertIsNone(self.served())

    def test_feishu_garbage_and_5xx(self):
        for fault in ({"fail": "garbage"}, {"fail": "503", "body": "html"}):
            self.feishu.control({"clear_faults": True, **fault})
            r = self.once()
            self.assertEqual(r.returncode, 1, fault)
            self.assertIn("回答不是飞书的 JSON 结果", r.stderr)

    def test_feishu_unreachable(self):
        env = self.feishu_env()
        self.feishu.stop()
        r = self.cli("refresh", "--once", env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("飞书 app_access_token 请求失败", r.stderr)

    def test_endpoint_404_seed_wording(self):
        r = self.once(TENCENT_CLOUD_API_URL=self.endpoint_url("/no/such/path"))
        self.assertEqual(r.returncode, 1)
        # The seed's line, and what our server's 404 means: the path is wrong.
        self.assertTrue(any(m.startswith("❌ 腾讯云函数HTTP错误: 404 (路径不对: 服务端没有 /no/such/path 这个地址")
                            for m in self.log_messages(r.stderr)), r.stderr)
        self.assertIsNone(self.served())

    def test_endpoint_wrong_key_seed_wording(self):
        r = self.once(TENCENT_CLOUD_API_KEY="not-the-push-key-000001")
        self.secrets.append("not-the-push-key-000001")
        self.assertEqual(r.returncode, 1)
        self.assertIn("❌ 腾讯云函数返回错误: 权限不足: 写入密钥无效", self.log_messages(r.stderr))
        self.assertIn("💡 检查写入密钥 (--api-key / TENCENT_CLOUD_API_KEY，须是服务端 TOKENDIST_PUSH_KEYS 之一)",
                      self.log_messages(r.stderr))
        self.assertEqual(self.feishu.sent, [])      # no token in service: nothing announced

    def test_endpoint_lockout_is_still_a_push_key_problem(self):
        """Ten wrong keys from this address: the server's 429 (认证失败次数过多,
        with WWW-Authenticate) still points at the push key."""
        bad = "not-the-push-key-000002"
        self.secrets.append(bad)
        for _ in range(30):     # ten failures block the address
            if self.endpoint.post("/release/get-token", {"x": 1}, key=bad).status == 429:
                break
        r = self.once(TENCENT_CLOUD_API_KEY=bad)
        self.assertEqual(r.returncode, 1)
        msgs = self.log_messages(r.stderr)
        self.assertTrue(any("认证失败次数过多" in m for m in msgs), r.stderr)
        self.assertIn("💡 检查写入密钥 (--api-key / TENCENT_CLOUD_API_KEY，须是服务端 TOKENDIST_PUSH_KEYS 之一)", msgs)
        self.assertIsNone(self.served())

    def test_notice_failure_does_not_block_push(self):
        r = self.once(FEISHU_CHAT_ID="oc_not_a_member")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())
        self.assertIn("群通知 (Access Token 已更新) 发送失败", r.stderr)
        self.assertIn("230002", r.stderr)

    def test_signed_webhook(self):
        self.feishu.control({"hooks": {"hook-1": HOOK_SECRET}})
        url = self.feishu.url + "/open-apis/bot/v2/hook/hook-1"
        self.secrets += [HOOK_SECRET, "hook-1"]
        r = self.once(FEISHU_CHAT_ID="", FEISHU_WEBHOOK_URL=url, FEISHU_WEBHOOK_SECRET=HOOK_SECRET)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.feishu.hook_texts), 1)   # the double checked the sign
        assert_updated_notice(self, self.feishu.hook_texts[0], self.endpoint_url())
        # A wrong secret: the double refuses the sign (19021), the push still counts.
        self.feishu.control({"hooks": {"hook-1": "another-secret-0000001"}, "ttl": 7200})
        self.feishu.control({"advance": 6000})    # into the window: a new token
        r = self.once(FEISHU_CHAT_ID="", FEISHU_WEBHOOK_URL=url, FEISHU_WEBHOOK_SECRET=HOOK_SECRET)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("19021", r.stderr)

    def test_webhook_rate_limit_is_retried_after_the_limit(self):
        """A custom bot answers 11232 over its 5-a-second / 100-a-minute limit
        (and at busy times): the notice is posted again after the limit."""
        self.feishu.control({"hooks": {"hook-2": None}})
        url = self.feishu.url + "/open-apis/bot/v2/hook/hook-2"
        self.secrets.append("hook-2")
        hook = "/open-apis/bot/v2/hook/"
        limited = {"fail": "code", "code": 11232, "path": hook,
                   "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}
        self.feishu.control(dict(limited, times=1))
        r = self.once(FEISHU_CHAT_ID="", FEISHU_WEBHOOK_URL=url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.feishu.hook_texts), 1, r.stderr)
        assert_updated_notice(self, self.feishu.hook_texts[0], self.endpoint_url())
        self.assertNotIn("发送失败", r.stderr)
        posts = [q["now"] for q in self.feishu.requests_to(hook)]
        self.assertEqual(len(posts), 2)
        self.assertGreaterEqual(posts[1] - posts[0], 1)        # after the per-second window
        # Limited for good: three posts, then the notice is given up (logged).
        self.feishu.control({"clear_requests": True, **limited})
        self.feishu.control({"advance": 6000})                 # into the window: a new token
        r = self.once(FEISHU_CHAT_ID="", FEISHU_WEBHOOK_URL=url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.feishu.requests_to(hook)), 3)
        self.assertIn("群通知 (Access Token 已更新) 发送失败", r.stderr)
        self.assertIn("错误码 11232", r.stderr)

    def test_long_error_cut_on_a_character_boundary_still_alerts(self):
        """A Feishu msg longer than the error buffers is cut: never in the
        middle of a character (a JSON encoder refuses half of one and the
        alert would be dropped, leaving an empty reason), in the log or in
        the alert, at each of the three byte alignments of a Chinese text."""
        self.feishu.control({"hooks": {"hook-3": None}})
        url = self.feishu.url + "/open-apis/bot/v2/hook/hook-3"
        self.secrets.append("hook-3")
        for pad in ("", "x", "xx"):
            before = len(self.feishu.hook_texts)
            self.feishu.control({"clear_faults": True, "fail": "code", "code": 10003,
                                 "msg": pad + "应用" * 400, "path": "/open-apis/auth/"})
            env = dict(harness.os.environ, **self._env(self.feishu_env(FEISHU_CHAT_ID="", FEISHU_WEBHOOK_URL=url)))
            r = subprocess.run([harness.BIN, "refresh", "--once"], env=env, capture_output=True, timeout=60)
            err = r.stderr.decode("utf-8")      # raises on half a character
            self.outputs.append(err)
            self.assertEqual(r.returncode, 1, err)
            self.assertNotIn("发送失败", err)
            alerts = [t for t in self.feishu.hook_texts[before:] if "刷新失败" in t]
            self.assertEqual(len(alerts), 1, err)
            self.assertIn("错误码 10003: " + pad + "应用", alerts[0])

    def test_no_sink_configured_is_usage_error(self):
        r = self.once(TENCENT_CLOUD_API_URL="")
        self.assertEqual(r.returncode, 2)
        self.assertIn("TENCENT_CLOUD_API_URL", r.stderr)


class RefreshGitee(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.start_feishu()
        self.start_gitee()

    def once(self, **env):
        return self.cli("refresh", "--once", env=self.feishu_env(**env))

    def file_record(self):
        import json
        text = self.gitee.file_text("token.json", repo="tokendist/tokens")
        return text and json.loads(text)

    def test_every_request_says_who_sends_it(self):
        """Every outgoing request carries User-Agent: tokendist/VERSION, so
        the people behind Feishu, Gitee or a proxy can tell what calls."""
        version = harness.run_cli("--version").stdout.split()[1]
        self.feishu.control({"hooks": {"hook-3": None}})
        self.secrets.append("hook-3")
        r = self.once(FEISHU_WEBHOOK_URL=self.feishu.url + "/open-apis/bot/v2/hook/hook-3")
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = {}
        for double in (self.feishu, self.gitee):
            for q in double.requests_to("/"):
                if not q["path"].startswith("/_"):
                    seen.setdefault(q["path"].rsplit("/", 1)[0], set()).add(q["headers"].get("user-agent"))
        # The token, the chat message, the webhook, Gitee's read and write.
        self.assertGreaterEqual(len(seen), 4, seen)
        self.assertEqual({ua for uas in seen.values() for ua in uas}, {"tokendist/" + version}, seen)

    def test_create_then_update(self):
        for mode in ("empty_list", "404"):
            with self.subTest(missing=mode):
                self.gitee.control({"reset": True})
                self.gitee.control({"repo": "tokendist/tokens", "missing_file": mode})
                self.feishu.control({"reset": True})
                self.feishu.control({"chats": [CHAT]})
                r = self.once()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("Gitee Token共享功能已启用: tokendist/tokens:token.json", r.stderr)
                self.assertEqual(self.file_record()["access_token"], self.feishu.current_token())
                self.assertEqual([c["method"] for c in self.gitee.commits], ["POST"])
                self.remember_tokens()
        # Same token again: an identical file, so no empty commit.
        self.assertEqual(self.once().returncode, 0)
        self.assertEqual(len(self.gitee.commits), 1)
        # A new token: PUT with the sha.
        self.feishu.control({"advance": 5500})
        self.assertEqual(self.once().returncode, 0)
        self.assertEqual([c["method"] for c in self.gitee.commits], ["POST", "PUT"])
        self.assertEqual(self.file_record()["access_token"], self.feishu.current_token())

    def test_stale_sha_reread_once(self):
        self.gitee.control({"repo": "tokendist/tokens", "files": {"token.json": "{}"}})
        for status in (400, 409):
            self.gitee.control({"stale_sha": 1, "sha_conflict_status": status})
            self.feishu.control({"advance": 5500})
            r = self.once()
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.file_record()["access_token"], self.feishu.current_token())
        # Stale twice in a row: give up with a clear error.
        self.gitee.control({"stale_sha": 2})
        self.feishu.control({"advance": 5500})
        r = self.once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("在写入时被他人修改", r.stderr)

    def test_auth_errors(self):
        self.gitee.control({"tokens": ["some-other-token"]})
        r = self.once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("❌ Gitee上传失败: Gitee 访问令牌无效 (401", r.stderr)
        self.gitee.control({"tokens": [harness_gitee_token()], "forbidden": True})
        r = self.once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("Gitee 拒绝访问 tokendist/tokens (403: Forbidden)，请检查令牌权限 (需要 projects)", r.stderr)
        r = self.once(GITEE_REPO="nope")
        self.assertEqual(r.returncode, 1)
        # A write refused with Gitee's web page instead of the API's JSON:
        # the error names the likely causes instead of a bare 403.
        self.gitee.control({"forbidden": "writes_html"})
        r = self.once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("Gitee 拒绝访问 tokendist/tokens (403，回答是网页而不是 API 的 JSON)", r.stderr)
        self.assertIn("projects 权限", r.stderr)
        self.assertIn("仓库在线编辑", r.stderr)
        self.assertNotIn("<html", r.stderr)
        self.gitee.control({"forbidden": False})
        r = self.once(GITEE_REPO="nope")
        self.assertIn("Gitee 上找不到 tokendist/nope:token.json (404", r.stderr)

    def test_one_sink_down_other_gets_it(self):
        self.start_endpoint()
        self.gitee.control({"forbidden": True})
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stderr)       # the endpoint got it
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())
        self.assertIn("❌ Gitee上传失败", r.stderr)

    def test_no_sink_reached(self):
        self.start_endpoint()
        self.gitee.control({"forbidden": True})
        r = self.once(TENCENT_CLOUD_API_KEY="wrong-push-key-0000001")
        self.secrets.append("wrong-push-key-0000001")
        self.assertEqual(r.returncode, 1)
        errors = [m for m in self.log_messages(r.stderr) if m.startswith("❌")]
        self.assertTrue(any("腾讯云函数返回错误" in m for m in errors), errors)
        self.assertTrue(any("Gitee上传失败" in m for m in errors), errors)
        self.assertIn("token 未能分发到任何目标", r.stderr)
        self.assertIsNone(self.served())
        self.assertIsNone(self.gitee.file_text("token.json", repo="tokendist/tokens"))

    # -- put-if-newer: the Gitee file is never rolled back -------------------
    def put_record(self, rec, indent=None):
        text = json.dumps(rec, ensure_ascii=False, indent=indent)
        self.gitee.put_file("token.json", text, repo="tokendist/tokens")
        return text

    def gitee_text(self):
        return self.gitee.file_text("token.json", repo="tokendist/tokens")

    def test_newer_record_on_gitee_is_not_rolled_back(self):
        # Another refresher (later, or with its clock ahead) wrote a newer
        # record; this one knows only what the endpoint serves (older) and
        # pushes a token generated now.
        self.start_endpoint()
        now = int(time.time())
        old = harness.make_record("t-older00000000000000000000000001", generated=now - 600)
        self.assertEqual(self.endpoint.post("/release/get-token", old, key=PUSH_KEY).status, 200)
        newer = self.put_record(harness.make_record("t-newer00000000000000000000000001", generated=now + 600))
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stderr)          # the endpoint took it
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())
        self.assertEqual(self.gitee_text(), newer)           # untouched
        self.assertEqual(self.gitee.commits, [])
        self.assertIn("⚠️ Gitee 上已有更新的 token 记录 (generated_timestamp %d，本次 " % (now + 600),
                      r.stderr)
        # A conflict, not a delivery failure that is retried.
        self.assertNotIn("Gitee上传失败", r.stderr)
        self.assertNotIn("个分发目标失败", r.stderr)

    def test_newer_record_written_during_the_push_is_kept(self):
        # The read finds an older record; between it and the PUT another
        # writer stores a newer one, so Gitee calls the sha stale: the file
        # is read again, judged again, and left alone.
        self.start_endpoint()
        now = int(time.time())
        self.put_record(harness.make_record("t-older00000000000000000000000002", generated=now - 600))
        newer = json.dumps(harness.make_record("t-newer00000000000000000000000002", generated=now + 600))
        self.gitee.control({"stale_sha": 1, "concurrent_content": newer})
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.gitee_text(), newer)
        self.assertEqual([c["method"] for c in self.gitee.commits], ["CONCURRENT"])
        self.assertIn("Gitee 上已有更新的 token 记录", r.stderr)
        self.assertNotIn("个分发目标失败", r.stderr)

    def test_same_record_in_another_layout_is_left_alone(self):
        self.assertEqual(self.once().returncode, 0)
        pretty = self.put_record(self.file_record(), indent=2)
        commits = len(self.gitee.commits)
        r = self.once()             # Feishu hands out the same token: the same record
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.gitee_text(), pretty)
        self.assertEqual(len(self.gitee.commits), commits)
        self.assertIn("Token已成功分发到Gitee", r.stderr)


def harness_gitee_token():
    from gitee import DEFAULT_TOKEN
    return DEFAULT_TOKEN


class RefreshDaemon(FeishuEnv, harness.TestCase):
    """The schedule on Feishu's own numbers (2-hour tokens, renewed in the
    last 30 minutes), with time moved instead of waited for: the daemon,
    the endpoint it pushes to and the Feishu double share one TestClock, so
    each step waits for an event (a log line, a fetch at the double), never
    for a window of wall time."""

    TTL, WINDOW = 7200, 1800

    def setUp(self):
        super().setUp()
        self.clk = self.clock()
        self.start_feishu()
        self.clk.attach(self.feishu)
        self.start_endpoint()

    def daemon(self, **env):
        return self.process("refresh", env=self.feishu_env(**env), name="refresh")

    @staticmethod
    def planned(p, what):
        """The delays (s) the daemon logged after each cycle: what is
        "下次刷新" (after a success) or "重试" (after a failure)."""
        return [float(d) for d in re.findall(r"\] %s: ([\d.]+) 秒后" % what, p.log())]

    def fetch_nows(self):
        """When each token request reached the double, on the shared clock."""
        return [r["now"] for r in self.feishu.requests_to("/open-apis/auth/v3/")]

    def test_fetches_only_inside_window(self):
        p = self.daemon()
        for n in range(1, 4):
            self.wait_log(p, "下次刷新", n)
            delay = self.planned(p, "下次刷新")[-1]
            # Just inside Feishu's window: expire - window + 1 s, plus a
            # jitter of at most a 20th of the window (30 s).
            self.assertGreaterEqual(delay, self.TTL - self.WINDOW + 1)
            self.assertLessEqual(delay, self.TTL - self.WINDOW + 1 + 30)
            self.clk.advance(delay + 0.1)
            self.wait_for(lambda: len(self.fetch_times()) > n, what="fetch %d" % (n + 1))
        self.wait_log(p, "下次刷新", 4)         # logged after the push and the notice
        self.assertEqual(p.stop(), 0)
        self.assertIn("收到信号 SIGTERM", p.log())
        # Every fetch landed inside the window (the double minted a new
        # token for each), none before it.
        nows = self.fetch_nows()
        self.assertEqual(len(nows), 4)
        self.assertEqual(self.feishu.tokens_minted, 4)
        for a, b in zip(nows, nows[1:]):
            self.assertGreaterEqual(b - a, self.TTL - self.WINDOW)
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())
        self.assertEqual(len(self.feishu.sent), 4)

    def test_retries_keep_previous_and_alert(self):
        p = self.daemon(TOKENDIST_RETRY_MIN=60, TOKENDIST_RETRY_MAX=600, TOKENDIST_ALERT_BELOW=600)
        self.wait_log(p, "下次刷新")
        first = self.served()
        posts = self.token_posts()
        # Feishu fails from now on; into the window, the first fetch fails.
        self.feishu.control({"fail": "500", "path": "/open-apis/auth/"})
        self.clk.advance(self.planned(p, "下次刷新")[-1] + 0.1)
        alerts = lambda: [t for t in self.feishu.sent_texts if "刷新失败" in t]
        n = 0
        while True:
            n += 1
            self.wait_log(p, "重试:", n)
            delay = self.planned(p, "重试")[-1]
            left = first["expire_timestamp"] - self.clk.now()
            # Backoff: retry_min doubling up to retry_max, half of it jitter;
            # never past a minute before the served token's expiry.
            base = min(60 * 2 ** (n - 1), 600)
            self.assertTrue(base / 2 <= delay <= base or (delay < base and abs(delay - (left - 60)) <= 2),
                            "retry %d after %.1f s, %d s left" % (n, delay, left))
            self.assertIn("❌ token 刷新失败 (连续第 %d 次)" % n, p.log())
            if left > self.WINDOW // 3:
                self.assertEqual(alerts(), [], "alerted with %d s left" % left)
            # Clear of the expiry (the GET reads the clock a moment later):
            if left > 10:       # until it expires, the previous one is still served
                self.assertEqual(self.served()["access_token"], first["access_token"])
            elif left < -10:    # expired: nothing (never an expired push)
                self.assertIsNone(self.served())
                break
            self.clk.advance(delay + 0.1)
        self.assertGreaterEqual(n, 3)
        self.assertEqual(self.token_posts(), posts)     # no push at all while failing
        alert = alerts()
        self.assertEqual(len(alert), 1)                 # once per incident
        self.assertTrue(alert[0].startswith("⚠️ 客户端 Access Token 刷新失败\n\n❌ 已连续失败 "))
        self.assertIn("错误码 1500: internal error", alert[0])
        # Recovery: a new token, the recovered note, the seed's notice.
        self.feishu.control({"clear_faults": True})
        self.clk.advance(delay + 0.1)
        self.wait_log(p, "✅ token 刷新已恢复")
        self.wait_log(p, "下次刷新", 2)
        self.assertTrue(any("刷新已恢复" in t for t in self.feishu.sent_texts), self.feishu.sent_texts)
        self.assertNotEqual(self.served()["access_token"], first["access_token"])
        self.assertEqual(p.stop(), 0)

    def test_monthly_quota_alerts_once_and_retries_seldom(self):
        """99991403, the free plan's monthly quota of API calls: no backoff
        short of the month's turn helps, so the daemon alerts at once
        (long before the token runs low) and only once, and retries only
        every TOKENDIST_RETRY_MAX instead of hammering Feishu."""
        p = self.daemon(TOKENDIST_RETRY_MIN=60, TOKENDIST_RETRY_MAX=700, TOKENDIST_ALERT_BELOW=600)
        self.wait_log(p, "下次刷新")
        first = self.served()
        self.feishu.control({"fail": "code", "code": 99991403, "path": "/open-apis/auth/",
                             "msg": "request trigger monthly api call limit"})
        self.clk.advance(self.planned(p, "下次刷新")[-1] + 0.1)
        alerts = lambda: [t for t in self.feishu.sent_texts if "刷新失败" in t]
        for n in (1, 2):
            self.wait_log(p, "重试:", n)
            delay = self.planned(p, "重试")[-1]
            self.assertTrue(700 <= delay <= 701, "retry %d after %.1f s" % (n, delay))
            self.assertEqual(len(alerts()), 1, "retry %d" % n)
            self.clk.advance(delay + 0.1)
        self.wait_log(p, "重试:", 3)
        alert = alerts()
        self.assertEqual(len(alert), 1)
        self.assertIn("错误码 99991403", alert[0])
        self.assertIn("本月的 API 调用额度已用完", alert[0])
        # The first alert came with the token's whole window still left.
        left = re.search(r"剩余 (\d+) 分钟", alert[0])
        self.assertGreaterEqual(int(left.group(1)), 25, alert[0])
        self.assertEqual(len(self.fetch_nows()), 4)           # 1 + 3, no more
        self.assertEqual(self.served()["access_token"], first["access_token"])

    def test_rate_limit_waits_reset(self):
        self.feishu.control({"fail": "429", "reset_after": 300, "times": 1})
        p = self.daemon(TOKENDIST_RETRY_MIN=1, TOKENDIST_RETRY_MAX=600)
        self.wait_log(p, "重试:")
        self.assertIn("错误码 99991400", p.log())
        delay = self.planned(p, "重试")[0]
        self.assertGreaterEqual(delay, 300)             # x-ogw-ratelimit-reset honoured,
        self.assertLessEqual(delay, 301)                # not the 1 s backoff
        self.clk.advance(delay + 0.1)
        self.wait_log(p, "下次刷新")
        nows = self.fetch_nows()
        self.assertGreaterEqual(nows[1] - nows[0], 300)
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())

    def test_rate_limit_wait_is_at_most_retry_max(self):
        """--retry-max is the longest retry delay, whatever reset Feishu
        names (an hour, or digits without end)."""
        for n, reset in enumerate(("3000", "99999999999999999999999"), 1):
            self.feishu.control({"fail": "429", "reset_after": reset, "times": 1})
            p = self.daemon(TOKENDIST_RETRY_MIN=1, TOKENDIST_RETRY_MAX=600)
            self.wait_log(p, "重试:")
            delay = self.planned(p, "重试")[0]
            self.assertTrue(600 <= delay <= 601, "reset %s: retry after %.1f s" % (reset, delay))
            self.assertIn("超过最长重试间隔 600 秒 (--retry-max)", p.log())
            p.stop()

    def test_rate_limit_wait_ends_before_the_served_token_expires(self):
        """A reset longer than the served token's life left: the retry comes
        a minute before its expiry, and readers never see it expire."""
        p = self.daemon(TOKENDIST_RETRY_MIN=1, TOKENDIST_RETRY_MAX=3600)
        self.wait_log(p, "下次刷新")
        first = self.served()
        self.feishu.control({"fail": "429", "reset_after": 3000, "path": "/open-apis/auth/"})
        self.clk.advance(self.planned(p, "下次刷新")[-1] + 0.1)
        self.wait_log(p, "重试:")
        delay = self.planned(p, "重试")[-1]
        left = first["expire_timestamp"] - self.clk.now()
        self.assertLess(left, 3000)
        self.assertTrue(left - 62 <= delay <= left - 58, "retry after %.1f s, %d s left" % (delay, left))
        self.assertIn("重试提前到它过期前 60 秒", p.log())
        self.feishu.control({"clear_faults": True})
        self.clk.advance(delay + 0.1)
        self.wait_log(p, "下次刷新", 2)
        self.assertNotEqual(self.served()["access_token"], first["access_token"])
        self.assertLess(self.clk.now(), first["expire_timestamp"])


if __name__ == "__main__":
    unittest.main()
