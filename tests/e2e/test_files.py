"""`tokendist files list|download` against the Feishu double, with the
tenant token served by the real `tokendist serve`."""
import base64
import fcntl
import os
import pty
import subprocess
import time
import unittest

import harness
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble

PUSH_KEY = "push-key-for-files-tests-0001"
EXIT_FEISHU = 6     # files: the token came, Feishu's open platform failed
CHAT = "oc_files_test_chat"
MANIFEST = ".tokendist-files"
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

    def listing(self):
        """The --out folder, sorted, without the download manifest (whose
        leading dot keeps it out of globs); anything else hidden would be a
        temporary left behind."""
        return sorted(n for n in os.listdir(self.out) if n != MANIFEST)

    def manifest(self):
        with open(os.path.join(self.out, MANIFEST), encoding="utf-8") as f:
            return [tuple(l.split("\t")) for l in f.read().splitlines() if "\t" in l and l[0] != "#"]

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
        self.assertIn("选项 --since 的值无效: 'yesterday' 不是时间", r.stderr)

    def test_download_then_rerun_downloads_nothing(self):
        self.seed(["one.txt", "two.txt", "../escape.txt", ".hidden"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = self.listing()
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
        self.assertEqual(self.listing(), sorted(["report.pdf", "report_%s.pdf" % b["message_id"][-8:]]))

    def test_same_name_later_out_of_the_window_is_still_fetched(self):
        # cron runs with --since: the second run does not list the first
        # report.pdf, and used to take the one on disk for the new file.
        base = int(time.time()) - 3 * 86400
        a, = self.seed(["report.pdf"], create_time=base * 1000)
        r = self.files("download", "--out", self.out, "--since", str(base - 60))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.listing(), ["report.pdf"])
        b, = self.feishu.control({"chat": CHAT, "files": [
            {"name": "report.pdf", "data": "the second report\n", "create_time": (base + 86400) * 1000}]})["seeded"]
        r = self.files("download", "--out", self.out, "--since", str(base + 86400 - 60))
        self.assertEqual(r.returncode, 0, r.stderr)
        second = "report_%s.pdf" % b["message_id"][-8:]
        self.assertEqual(r.stdout.strip(), os.path.join(self.out, second))
        self.assertEqual(self.listing(), sorted(["report.pdf", second]))
        with open(os.path.join(self.out, second)) as f:
            self.assertEqual(f.read(), "the second report\n")
        with open(os.path.join(self.out, "report.pdf"), "rb") as f:
            self.assertEqual(f.read(), self.content("report.pdf"))
        self.assertEqual(self.manifest(), [(a["file_key"], "report.pdf"), (b["file_key"], second)])
        # Whatever the window, nothing is fetched twice.
        downloads = dict(self.feishu.state()["downloads"])
        for args in ([], ["--since", str(base + 86400 - 60)]):
            again = self.files("download", "--out", self.out, *args)
            self.assertEqual((again.returncode, again.stdout), (0, ""), again.stderr)
        self.assertEqual(self.feishu.state()["downloads"], downloads)
        self.assertIn("新文件 0 个, 已存在 2 个", self.files("download", "--out", self.out).stderr)

    def test_a_file_of_someone_else_is_not_taken_for_the_download(self):
        # The manifest knows what tokendist fetched: a same-named file that
        # someone else put in the folder does not count.
        self.assertEqual(self.files("download", "--out", self.out).returncode, 0)   # makes the manifest
        with open(os.path.join(self.out, "notes.txt"), "w") as f:
            f.write("mine\n")
        n, = self.seed(["notes.txt"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        ours = "notes_%s.txt" % n["message_id"][-8:]
        self.assertEqual(self.listing(), sorted(["notes.txt", ours]))
        with open(os.path.join(self.out, "notes.txt")) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_folder_of_an_older_version_is_adopted_by_name(self):
        # No manifest yet: what is there under the name this version would
        # choose was downloaded by the older one, which went by name.
        a, b = self.seed(["a.txt", "a.txt"])
        os.makedirs(self.out)
        for name in ("a.txt", "a_%s.txt" % b["message_id"][-8:]):
            with open(os.path.join(self.out, name), "w") as f:
                f.write("old\n")
        r = self.files("download", "--out", self.out)
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        self.assertIn("新文件 0 个, 已存在 2 个", r.stderr)
        self.assertEqual(sorted(k for k, _ in self.manifest()), sorted([a["file_key"], b["file_key"]]))

    def test_removed_file_is_fetched_again_under_its_name(self):
        self.seed(["gone.txt"])
        self.assertEqual(self.files("download", "--out", self.out).returncode, 0)
        os.unlink(os.path.join(self.out, "gone.txt"))
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), os.path.join(self.out, "gone.txt"))
        self.assertEqual(len(self.manifest()), 1)

    def test_torn_manifest_line_is_ignored_and_ended(self):
        a, = self.seed(["one.txt"])
        self.assertEqual(self.files("download", "--out", self.out).returncode, 0)
        with open(os.path.join(self.out, MANIFEST), "a") as f:
            f.write("file_v2_half-written-by-a-cr")        # a crash mid-append
        self.seed(["two.txt"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.listing(), ["one.txt", "two.txt"])
        self.assertEqual([n for _, n in self.manifest()], ["one.txt", "two.txt"])
        with open(os.path.join(self.out, MANIFEST), encoding="utf-8") as f:
            self.assertIn("\nfile_v2_half-written-by-a-cr\n", f.read())

    def test_overlapping_runs_do_not_both_download(self):
        self.seed(["x.txt"])
        os.makedirs(self.out)
        with open(os.path.join(self.out, MANIFEST), "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)                  # a slow earlier run
            r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("另一个 tokendist files download 正在使用", r.stderr)
        self.assertEqual(self.listing(), [])

    def test_list_escapes_control_characters(self):
        names = ["\x1b]0;pwned\x07\x1b[31mred\x1b[0m.txt", "tab\there\nnewline.txt", "c1\u009b2J.txt",
                 "back\\slash.txt", "evil\u202efdp.exe", "财联社 电报.pdf"]
        self.seed(names)
        r = self.files("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = self.lines(r)
        self.assertEqual([row[1] for row in rows], [
            "\\x1b]0;pwned\\x07\\x1b[31mred\\x1b[0m.txt", "tab\\there\\nnewline.txt", "c1\\u009b2J.txt",
            "back\\\\slash.txt", "evil\\u202efdp.exe", "财联社 电报.pdf"])
        # Nothing a terminal acts on: no C0 but the separators, no DEL, no C1.
        self.assertEqual([c for c in r.stdout if (ord(c) < 0x20 and c not in "\t\n") or 0x7f <= ord(c) <= 0x9f], [])
        # A download of the first shows it escaped too (and names it safely).
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\x1b", r.stderr + r.stdout)

    def test_download_log_escapes_names(self):
        # "✅ 已下载 NAME" carried the name as it was: a bidi override made
        # "evil\u202efdp.exe" read as "evilexe.pdf" in the log.  Local names
        # no longer carry one, and a log line escapes what a name holds
        # anyway (here: a name an older version recorded in the manifest).
        evil, = self.seed(["evil\u202efdp.exe"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.listing(), ["evil_fdp.exe"])
        self.assertIn("✅ 已下载 evil_fdp.exe", r.stderr)
        old, = self.seed(["old\u202etxt.exe"])
        with open(os.path.join(self.out, MANIFEST), "a", encoding="utf-8") as f:
            f.write("%s\told\u202etxt.exe\n" % old["file_key"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("✅ 已下载 old\\u202etxt.exe", r.stderr)
        # stdout lists the paths for scripts, as they are; on a terminal
        # it shows them escaped too.
        self.assertEqual(r.stdout, os.path.join(self.out, "old\u202etxt.exe") + "\n")
        os.unlink(os.path.join(self.out, "old\u202etxt.exe"))
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        p = subprocess.run([harness.BIN, "files", "download", "--chat", CHAT, "--url", self.url,
                            "--feishu-base-url", self.feishu.url, "--out", self.out],
                           env={**os.environ, **CLEAN}, stdout=slave, stderr=subprocess.PIPE, timeout=60)
        os.close(slave)
        tty = os.read(master, 65536).decode()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("old\\u202etxt.exe", tty)
        hidden = lambda text: [c for c in text if ord(c) < 0x20 and c not in "\r\n" or 0x7f <= ord(c) <= 0x9f or
                               0x202a <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069]
        self.assertEqual(hidden(tty + p.stderr.decode() + self.outputs[0] + r.stderr), [])

    def test_long_names_fit_one_path_component(self):
        # NAME_MAX is 255 bytes: a 90-character Chinese name (274 bytes)
        # never downloaded ("File name too long"), nor did one of 244-255
        # bytes, whose temporary ".NAME.part-XXXXXX" is 13 bytes longer.
        # Each is cut on a character boundary, keeps its extension, and two
        # names that differ only past the cut stay two names.
        names = ["财联社电报" * 18 + ".pdf", "财联社电报" * 18 + "（二）.pdf", "x" * 300 + ".txt",
                 "a" * 251 + ".txt", "报" * 81 + "a.pdf"]
        self.seed(names)
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("新文件 5 个, 已存在 0 个, 失败 0 个", r.stderr)
        got = self.listing()
        self.assertEqual(len(got), 5, got)
        self.assertIn("a" * 251 + ".txt", got)            # exactly 255 bytes: kept as it is
        self.assertIn("报" * 81 + "a.pdf", got)
        for name in got:
            self.assertLessEqual(len(name.encode()), 255, name)
            self.assertTrue(name.endswith((".pdf", ".txt")), name)
        cut = sorted(n for n in got if n.startswith("财联社"))
        self.assertEqual(len(cut), 2)
        contents = []
        for n in cut:
            with open(os.path.join(self.out, n), "rb") as f:
                contents.append(f.read())
        contents.sort()
        self.assertEqual(contents, sorted(self.content(n) for n in names[:2]))
        self.assertEqual(sorted(n for _, n in self.manifest()), got)
        again = self.files("download", "--out", self.out)
        self.assertEqual((again.returncode, again.stdout), (0, ""), again.stderr)
        self.assertIn("新文件 0 个, 已存在 5 个, 失败 0 个", again.stderr)

    def test_unreadable_file_message_is_skipped_not_the_rest(self):
        # One file message that could not be read (a name with U+0000,
        # which jansson refuses; no file_key) ended the listing: every later
        # file was neither listed nor downloaded, and the summary said
        # "失败 0 个".  Now each is named, counted as failed, and skipped.
        _, nul = self.seed(["first.txt", "nul\x00byte.txt"])
        bad = self.feishu.control({"chat": CHAT, "files": [
            {"name": "nokey.txt", "content": {"file_name": "nokey.txt"}},
            {"name": "notjson.txt", "content": "{not json"}]})["seeded"]
        self.seed(["after1.txt", "after2.txt", "after3.txt", "after4.txt"])
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(self.listing(), ["after1.txt", "after2.txt", "after3.txt", "after4.txt", "first.txt"])
        for m in (nul, bad[0], bad[1]):
            self.assertRegex(r.stderr, r"⚠️ 跳过无法读取的文件消息 %s: " % m["message_id"])
        self.assertIn("file_name 含 U+0000", r.stderr)
        self.assertIn("file_key 缺失", r.stderr)
        self.assertIn("下载完成: 新文件 5 个, 已存在 0 个, 失败 3 个 (其中无法读取的文件消息 3 个)", r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 5)
        again = self.files("download", "--out", self.out)
        self.assertEqual((again.returncode, again.stdout), (1, ""), again.stderr)
        self.assertIn("新文件 0 个, 已存在 5 个, 失败 3 个", again.stderr)
        # The listing, across pages, shows every readable one and names the rest.
        self.seed(["page_%02d.txt" % i for i in range(50)])
        r = self.files("list")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(self.lines(r)), 55)
        self.assertEqual(self.lines(r)[-1][1], "page_49.txt")
        self.assertIn("3 个文件消息无法读取，已跳过", r.stderr)
        # --match skips what it can tell does not match, and reports what it cannot.
        r = self.files("list", "--match", "after*")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual([row[1] for row in self.lines(r)], ["after%d.txt" % i for i in range(1, 5)])
        self.assertNotIn(bad[0]["message_id"], r.stderr)
        self.assertIn(nul["message_id"], r.stderr)

    def test_failure_midway_leaves_no_half_file_and_rerun_finishes(self):
        seeded = self.seed(["f1.bin", "f2.bin", "f3.bin", "f4.bin"])
        third = seeded[2]
        self.feishu.control({"fail": "cut", "times": 1,
                             "path": "/open-apis/im/v1/messages/%s/resources/" % third["message_id"]})
        r = self.files("download", "--out", self.out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("❌ 下载失败 f3.bin", r.stderr)
        self.assertEqual(self.listing(), ["f1.bin", "f2.bin", "f4.bin"])   # no temporaries
        again = self.files("download", "--out", self.out)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.strip(), os.path.join(self.out, "f3.bin"))
        self.assertEqual(self.listing(), ["f1.bin", "f2.bin", "f3.bin", "f4.bin"])
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
        self.assertIn("❌ 飞书返回错误: 错误码 230002: Bot/User can NOT be out of the chat.", r.stderr)
        self.assertIn("💡 飞书开放平台 %s 返回了错误: 检查机器人是否在群里" % self.feishu.url, r.stderr)

    def test_feishu_unreachable_blames_feishu_not_the_token_endpoint(self):
        """The token came; Feishu's open platform did not answer: the hint
        names Feishu's address, not the token endpoint that worked."""
        down = "http://127.0.0.1:%d" % harness.free_port()
        r = self.cli("files", "list", "--chat", CHAT, "--url", self.url, "--feishu-base-url", down, env=CLEAN)
        self.assertEqual(r.returncode, EXIT_FEISHU, r.stderr)   # not 5: the token source answered
        self.assertIn("❌ 飞书开放平台请求失败: ", r.stderr)
        self.assertIn("💡 连不上飞书开放平台 %s: token 已取到" % down, r.stderr)
        self.assertNotIn("检查API地址", r.stderr)

    def test_exit_codes_name_the_side_that_failed(self):
        """The man page's 退出状态: 5 for the token source, 6 for Feishu's
        open platform (whatever it said), 1 for this machine's disk; and a
        download that could not list the chat never ends in "下载完成"."""
        self.seed(["x.txt"])
        down_feishu = "http://127.0.0.1:%d" % harness.free_port()
        down_source = "http://127.0.0.1:%d/release/get-token" % harness.free_port()
        for action in ("list", "download"):
            out = ["--out", self.out] if action == "download" else []
            for url, base, code in ((down_source, self.feishu.url, 5), (self.url, down_feishu, EXIT_FEISHU)):
                r = self.cli("files", action, "--chat", CHAT, "--url", url, "--feishu-base-url", base, *out,
                             env=CLEAN)
                self.assertEqual(r.returncode, code, r.stderr)
                if action == "download":
                    self.assertNotIn("下载完成", r.stderr)
                    self.assertIn("❌ 未能列出群消息，未下载任何文件", r.stderr.splitlines()[-1])
        # Feishu's own error (the bot is not in the chat): 6.
        r = self.cli("files", "list", "--chat", "oc_not_a_member", "--url", self.url,
                     "--feishu-base-url", self.feishu.url, env=CLEAN)
        self.assertEqual(r.returncode, EXIT_FEISHU, r.stderr)
        # files --help and the man page say what 6 means.
        h = self.cli("files", "--help", env=CLEAN)
        self.assertIn("  6  token 已取到，但飞书开放平台连不上", h.stdout)
        with open(os.path.join(harness.ROOT, "man", "tokendist.1"), encoding="utf-8") as f:
            self.assertIn(".B 6\n（\\fBfiles\\fR）\\:token 已取到，但飞书开放平台连不上", f.read())
        # Feishu refuses the tenant token (the read key was accepted): 6, not
        # 4 -- when no refresher replaces it (with one, the retry succeeds).
        if not self.refresher:
            self.feishu.control({"invalidate": "all", "invalid_code": 99991663})
            r = self.files("list")
            self.assertEqual(r.returncode, EXIT_FEISHU, r.stderr)

    def test_token_endpoint_unreachable_blames_the_endpoint(self):
        down = "http://127.0.0.1:%d/release/get-token" % harness.free_port()
        r = self.cli("files", "list", "--chat", CHAT, "--url", down, "--feishu-base-url", self.feishu.url,
                     env=CLEAN)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn("❌ 腾讯云函数 token获取失败: 网络错误", r.stderr)
        self.assertIn("💡 检查API地址 (--url / TENCENT_CLOUD_API_URL)", r.stderr)
        self.assertNotIn("飞书开放平台", r.stderr)
        self.assertEqual(self.feishu.requests_to("/open-apis/im/v1/messages"), [])

    def test_invalid_token_without_refresher_fails_clearly(self):
        self.seed(["x.txt"])
        self.feishu.control({"invalidate": "all", "invalid_code": 99991663})
        r = self.files("list")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("错误码 99991663", r.stderr)
        # Feishu refused the token: no advice about read keys, which worked.
        self.assertIn("💡 飞书开放平台 %s 拒绝了取到的 tenant_access_token" % self.feishu.url, r.stderr)
        self.assertNotIn("读取密钥", r.stderr)
        # It told the server once, then tried once more with what it got.
        self.assertEqual(len(self.feishu.requests_to("/open-apis/im/v1/messages", "GET")), 2)

    def test_overlong_feishu_base_url_is_a_clear_error(self):
        # The listing URL used to be built with `n += snprintf(...)`: with a
        # base URL over the 4 KB buffer and a time window, the appends wrote
        # past the stack buffer (a crash, or ASan's report, depending on
        # where they land: hence several lengths).
        window = ["--since", "2024-01-01", "--until", "2024-01-02"]
        runs = [("list", n, window) for n in (4100, 4300, 4500, 5000, 6000, 9000)]
        runs += [("list", 6000, []), ("download", 4100, window), ("download", 6000, [])]
        for action, n, extra in runs:
            long_base = self.feishu.url + "/" + "x" * (n - len(self.feishu.url) - 1)
            with self.subTest(action=action, length=n, window=bool(extra)):
                r = self.cli("files", action, "--chat", CHAT, "--url", self.url, "--out", self.out,
                             *extra, env={**CLEAN, "FEISHU_BASE_URL": long_base})
                self.assertEqual(r.returncode, 1, r.stderr[-3000:])
                self.assertIn("FEISHU_BASE_URL 太长 (%d 字节)" % n, r.stderr)
                self.assertIn("超过 4096 字节的上限", r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertNotIn("x" * 100, r.stderr)          # the URL itself is not echoed
        self.assertEqual(self.feishu.requests_to("/open-apis/im/v1/messages"), [])

    def test_missing_chat_is_a_usage_error(self):
        r = self.cli("files", "list", "--url", self.url, env=CLEAN)
        self.assertEqual(r.returncode, 2)
        self.assertIn("缺少 --chat", r.stderr)
        r = self.cli("files", "upload", env=CLEAN)
        self.assertEqual(r.returncode, 2)
        self.assertIn("应为 list 或 download", r.stderr)


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
        self.assertEqual(self.listing(), ["x.txt"])
        self.assertEqual(self.feishu.state()["token_fetches"], fetches + 1)   # exactly one forced refresh
        self.assertIn("收到 token 无效的报告", self.srv.log())

    def test_99991668_is_an_invalid_token_too(self):
        """Feishu's gateway answers 99991668 ("Invalid access token for
        authorization") for a token it cannot use: files reports it and
        retries with the new one, as for 99991663/4/71."""
        self.seed(["x.txt"])
        fetches = self.feishu.state()["token_fetches"]
        self.feishu.control({"invalidate": "all", "invalid_code": 99991668})
        r = self.files("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.lines(r)), 1)
        self.assertEqual(self.feishu.state()["token_fetches"], fetches + 1)
        self.assertIn("收到 token 无效的报告", self.srv.log())

    # The other tests run against the refresher-fed server as well, except
    # the one that needs a server without a refresher.
    test_invalid_token_without_refresher_fails_clearly = None


if __name__ == "__main__":
    unittest.main()
