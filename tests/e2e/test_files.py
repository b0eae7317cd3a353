"""`tokendist files list|download` against the Feishu double, with the
tenant token served by the real `tokendist serve`."""
import base64
import os
import time
import unittest

import harness
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble

PUSH_KEY = "push-key-for-files-tests-0001"
CHAT = "oc_files_test_chat"
CLEAN = {k: "" for k in ("TOKENDIST_URLS", "TOKENDIST_READ_KEY", "GITEE_OWNER", "GITEE_REPO",
                         "TOKENDIST_CACHE_FILE", "TOKENDIST_ENV_FILE", "FEISHU_CHAT_ID")}


class FilesTest(harness.TestCase):
    refresher = False

    def setUp(self):
        super().setUp()
        self.feishu = FeishuDouble().start()
        self.addCleanup(self.feishu.stop)
        self.feishu.control({"chats": [CHAT]})
        self.secrets += [PUSH_KEY, DEFAULT_APP_SECRET]
        if self.refresher:
            # Feishu mints a new token on every request, so a forced refresh
            # is visible as a new token.
            self.feishu.control({"renew_window": 7300})
            self.srv = self.server(env={
                "TOKENDIST_PUSH_KEYS": PUSH_KEY, "FEISHU_APP_ID": DEFAULT_APP_ID,
                "FEISHU_APP_SECRET": DEFAULT_APP_SECRET, "FEISHU_BASE_URL": self.feishu.url,
                "TOKENDIST_RETRY_MIN": "1", "TOKENDIST_RETRY_MAX": "2", "TENCENT_CLOUD_ENABLED": "false",
            }).start()
            self.wait_for(lambda: self.srv.get("/release/get-token").status == 200,
                          what="the refresher's first token")
        else:
            self.srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
            r = harness.request(self.feishu.port, "POST", "/open-apis/auth/v3/tenant_access_token/internal",
                                {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET})
            tok = r.json()["tenant_access_token"]
            r = self.srv.post("/release/get-token",
                              harness.make_record(tok, tenant_access_token=tok), key=PUSH_KEY)
            self.assertEqual(r.status, 200, r.body)
        self.url = "http://127.0.0.1:%d/release/get-token" % self.srv.port
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        self.secrets += [t["token"] for t in self.feishu.state()["tokens"]]
        super().tearDown()

    def files(self, action, *args, env=None):
        return self.cli("files", action, "--chat", CHAT, "--url", self.url,
                        "--feishu-base-url", self.feishu.url, *args, env={**CLEAN, **(env or {})})

    def seed(self, names, **kw):
        files = [{"name": n, "data_b64": base64.b64encode(self.content(n)).decode(), **kw} for n in names]
        return self.feishu.control({"chat": CHAT, "files": files})["seeded"]

    @staticmethod
    def content(name):
        return ("%s\n" % name).encode() * 500 + os.urandom(0)

    def lines(self, r):
        return [l.split("\t") for l in r.stdout.splitlines()]

    def test_list_across_pages(self):
        seeded = self.seed(["电报_%03d.txt" % i for i in range(120)])
        self.feishu.control({"chat": CHAT, "texts": ["not a file", "also not"]})
        r = self.files("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = self.lines(r)
        self.assertEqual([row[1] for row in rows], ["电报_%03d.txt" % i for i in range(120)])
        self.assertEqual([(row[2], row[3]) for row in rows], [(s["message_id"], s["file_key"]) for s in seeded])
        self.assertRegex(rows[0][0], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        pages = self.feishu.requests_to("/open-apis/im/v1/messages", "GET")
        self.assertEqual(len(pages), 3)                     # 122 messages, 50 a page
        self.assertNotIn("page_token", pages[0]["query"])
        self.assertTrue(all("page_token" in p["query"] for p in pages[1:]))
        self.assertTrue(all(p["headers"]["authorization"].startswith("Bearer t-") for p in pages))

    def test_list_filters(self):
        base = int(time.time()) - 3 * 86400
        for i, name in enumerate(["a.pdf", "b.txt", "c.pdf", "d.pdf"]):
            self.seed([name], create_time=(base + i * 86400) * 1000)
        r = self.files("list", "--match", "*.pdf", "--since", str(base + 1), "--until", str(base + 3 * 86400))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row[1] for row in self.lines(r)], ["c.pdf"])
        q = self.feishu.requests_to("/open-apis/im/v1/messages", "GET")[-1]["query"]
        self.assertEqual((q["start_time"], q["end_time"]), (str(base + 1), str(base + 3 * 86400 - 1)))
        r = self.files("list", "--since", "yesterday")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--since 'yesterday' is not a time", r.stderr)

    def test_download_then_rerun_downloads_nothing(self):
        self.seed(["one.txt", "two.txt", "../escape.txt", ".hidden"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = sorted(os.listdir(self.out))
        # "/" and a leading dot never reach the file system as such.
        self.assertEqual(names, ["_._escape.txt", "_hidden", "one.txt", "two.txt"])
        with open(os.path.join(self.out, "one.txt"), "rb") as f:
            self.assertEqual(f.read(), self.content("one.txt"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "escape.txt")))
        self.assertTrue(all(not n.startswith(".") for n in names), names)
        self.assertEqual(len(r.stdout.splitlines()), 4)
        self.assertIn("下载完成: 新文件 4 个, 已存在 0 个, 失败 0 个", r.stderr)
        downloads = dict(self.feishu.state()["downloads"])

        again = self.files("download", "--out", self.out)
        self.assertEqual((again.returncode, again.stdout), (0, ""))
        self.assertIn("新文件 0 个, 已存在 4 个", again.stderr)
        self.assertEqual(self.feishu.state()["downloads"], downloads)
        dl = self.feishu.requests_to("/open-apis/im/v1/messages/")
        self.assertTrue(all(r["query"].get("type") == "file" for r in dl))

    def test_same_name_twice_keeps_both(self):
        _, b = self.seed(["report.pdf", "report.pdf"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.out)), sorted(["report.pdf", "report_%s.pdf" % b["message_id"][-8:]]))

    def test_failure_midway_leaves_no_half_file_and_rerun_finishes(self):
        seeded = self.seed(["f1.bin", "f2.bin", "f3.bin", "f4.bin"])
        third = seeded[2]
        self.feishu.control({"fail": "cut", "times": 1,
                             "path": "/open-apis/im/v1/messages/%s/resources/" % third["message_id"]})
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("❌ 下载失败 f3.bin", r.stderr)
        self.assertEqual(sorted(os.listdir(self.out)), ["f1.bin", "f2.bin", "f4.bin"])   # no temporaries
        again = self.files("download", "--out", self.out)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.strip(), os.path.join(self.out, "f3.bin"))
        self.assertEqual(sorted(os.listdir(self.out)), ["f1.bin", "f2.bin", "f3.bin", "f4.bin"])
        with open(os.path.join(self.out, "f3.bin"), "rb") as f:
            self.assertEqual(f.read(), self.content("f3.bin"))

    def test_rate_limit_waits_the_reset(self):
        self.seed(["x.txt"])
        self.feishu.control({"fail": "429", "times": 1, "reset_after": 2, "path": "/open-apis/im/v1/messages"})
        t0 = time.time()
        r = self.files("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(time.time() - t0, 2)
        self.assertEqual(len(self.lines(r)), 1)

    def test_feishu_error_reaches_the_user(self):
        r = self.cli("files", "list", "--chat", "oc_not_a_member", "--url", self.url,
                     "--feishu-base-url", self.feishu.url, env=CLEAN)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("❌ 飞书返回错误: code 230002: Bot/User can NOT be out of the chat.", r.stderr)

    def test_invalid_token_without_refresher_fails_clearly(self):
        self.seed(["x.txt"])
        self.feishu.control({"invalidate": "all", "invalid_code": 99991663})
        r = self.files("list")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("code 99991663", r.stderr)
        # It told the server once, then tried once more with what it got.
        self.assertEqual(len(self.feishu.requests_to("/open-apis/im/v1/messages", "GET")), 2)

    def test_missing_chat_is_a_usage_error(self):
        r = self.cli("files", "list", "--url", self.url, env=CLEAN)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--chat is required", r.stderr)
        r = self.cli("files", "upload", env=CLEAN)
        self.assertEqual(r.returncode, 2)
        self.assertIn("use list or download", r.stderr)


class FilesWithRefresherTest(FilesTest):
    """The whole loop: Feishu rejects the token, files reports it, the
    server's refresher fetches a new one (once), files retries and works."""
    refresher = True

    def test_invalid_token_report_refresh_retry(self):
        self.seed(["x.txt"])
        fetches = self.feishu.state()["token_fetches"]
        self.feishu.control({"invalidate": "all", "invalid_code": 99991663})
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(self.out), ["x.txt"])
        self.assertEqual(self.feishu.state()["token_fetches"], fetches + 1)   # exactly one forced refresh
        self.assertIn("客户端报告 token 无效", self.srv.log())

    # The other tests run against the refresher-fed server as well, except
    # the one that needs a server without a refresher.
    test_invalid_token_without_refresher_fails_clearly = None


if __name__ == "__main__":
    unittest.main()
