"""`tokendist get` tells its user where the token came from when it was
not the first source, and why the sources before it failed -- one line on
stderr, never the token -- and its cache file works in a folder that does
not exist yet (made 0700, as the Node and Python clients do), or says why
it could not be written."""
import os
import stat
import unittest

import harness

PUSH_KEY = "push-key-for-fallback-tests-1"
TOKEN = "t-fallbackAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
CLEAN = {k: "" for k in ("TENCENT_CLOUD_API_URL", "TOKENDIST_URLS", "TOKENDIST_READ_KEY", "GITEE_OWNER",
                         "GITEE_REPO", "TOKENDIST_CACHE_FILE", "TOKENDIST_ENV_FILE")}


class GetFallback(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH_KEY, TOKEN]
        self.srv = self.server(["--push-key", PUSH_KEY]).start()
        r = self.srv.post("/release/get-token", harness.make_record(TOKEN), key=PUSH_KEY)
        self.assertEqual(r.status, 200, r.body)
        self.url = "http://127.0.0.1:%d/release/get-token" % self.srv.port
        self.down = "http://127.0.0.1:%d/release/get-token" % harness.free_port()

    def get(self, *args):
        r = self.cli("get", *args, env=CLEAN)
        # stdout is the token: keep it out of the outputs scanned for secrets.
        self.outputs[-1] = r.stderr
        return r

    def test_second_url_is_named_with_why_the_first_failed(self):
        r = self.get("--url", self.down, "--url", self.url)
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"), r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("⚠️ token 取自第 2 个API地址 %s" % self.url), lines[0])
        self.assertIn(self.down, lines[0])
        self.assertIn("网络错误", lines[0])
        self.assertNotIn(TOKEN, r.stderr)

    def test_cache_is_named_with_why_the_server_failed(self):
        cache = os.path.join(self.tmp, "cache.json")
        r = self.get("--url", self.url, "--cache", cache)
        self.assertEqual((r.returncode, r.stderr), (0, ""))       # the first source: nothing to say
        self.srv.stop()
        r = self.get("--url", self.url, "--cache", cache)
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"), r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("⚠️ token 取自本地缓存 %s" % cache), lines[0])
        self.assertIn("腾讯云函数 %s: 网络错误" % self.url, lines[0])

    def test_cache_in_a_missing_folder_is_made_private(self):
        folder = os.path.join(self.tmp, "home", ".cache", "app")
        cache = os.path.join(folder, "token.json")
        r = self.get("--url", self.url, "--cache", cache)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertTrue(os.path.exists(cache))
        self.assertEqual(stat.S_IMODE(os.stat(cache).st_mode), 0o600)
        for d in (folder, os.path.dirname(folder)):
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700, d)
        # And it serves when the server is gone.
        self.srv.stop()
        r = self.get("--url", self.url, "--cache", cache)
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"), r.stderr)

    def test_cache_that_cannot_be_written_is_said(self):
        blocker = os.path.join(self.tmp, "not-a-folder")
        with open(blocker, "w") as f:
            f.write("x")
        cache = os.path.join(blocker, "token.json")
        r = self.get("--url", self.url, "--cache", cache)
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"), r.stderr)
        self.assertIn("⚠️ 缓存文件 (--cache / TOKENDIST_CACHE_FILE) 没有写入: 无法创建文件夹 %s" % blocker,
                      r.stderr)


if __name__ == "__main__":
    unittest.main()
