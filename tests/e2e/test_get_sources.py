"""`tokendist get` and its fallback sources beyond the server: the Gitee
file and the local cache file, read as the Node and Python clients read
them (issue #13's findings: a file saved with a UTF-8 BOM, a cache file
written for another token name or kind, the seed's Gitee switch)."""
import json
import os
import unittest

import harness
from gitee import DEFAULT_TOKEN as GITEE_TOKEN, GiteeDouble

PUSH_KEY = "push-key-for-get-sources-0001"
TOKEN = "t-getsrcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
TOKEN_G = "t-getsrcGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"
BOM = b"\xef\xbb\xbf"
# No setting may come from the machine running the tests.
CLEAN = {k: "" for k in ("TENCENT_CLOUD_API_URL", "TOKENDIST_URLS", "TOKENDIST_READ_KEY", "GITEE_OWNER",
                         "GITEE_REPO", "TOKENDIST_CACHE_FILE", "TOKENDIST_ENV_FILE", "TOKENDIST_SHARE_KEY")}


class GetSourcesTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH_KEY, TOKEN, TOKEN_G, GITEE_TOKEN]

    def get(self, *args, env=None):
        r = self.cli("get", *args, env={**CLEAN, **(env or {})})
        # Stdout is the token here: compared, never kept for the leak scan.
        self.outputs = [o.replace(TOKEN, "").replace(TOKEN_G, "") for o in self.outputs]
        return r

    def assertPrints(self, r, token):
        """r exited 0 and printed token (compared, never shown in a failure)."""
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip() == token, "printed another token than expected")

    def assertRefused(self, r, code):
        self.assertEqual(r.returncode, code, r.stderr)
        self.assertTrue(r.stdout == "", "printed a token")

    def gitee(self, content):
        g = GiteeDouble().start()
        self.addCleanup(g.stop)
        g.put_file("token.json", content)
        return g

    def gitee_env(self, g, **extra):
        return {"GITEE_OWNER": "tokendist", "GITEE_REPO": "tokens", "GITEE_FILE_PATH": "token.json",
                "GITEE_ACCESS_TOKEN": GITEE_TOKEN, "GITEE_BASE_URL": g.url + "/api/v5", **extra}

    # ---- a record file saved with a UTF-8 BOM ----

    def test_gitee_file_with_a_bom_is_read(self):
        """Gitee's web editor (or a Windows tool) saved the plaintext file
        with a BOM: the Node and Python clients read it, and so does C."""
        g = self.gitee(BOM + json.dumps(harness.make_record(TOKEN_G)).encode())
        r = self.get(env=self.gitee_env(g))
        self.assertPrints(r, TOKEN_G)

    def test_cache_file_with_a_bom_is_read(self):
        cache = os.path.join(self.tmp, "token.json")
        with open(cache, "wb") as f:
            f.write(BOM + json.dumps(harness.make_record(TOKEN)).encode())
        r = self.get("--cache", cache)
        self.assertPrints(r, TOKEN)

    # ---- the cache file knows what it holds ----

    def start(self):
        self.srv = self.server(["--push-key", PUSH_KEY]).start()
        r = self.srv.post("/release/get-token", harness.make_record(TOKEN), key=PUSH_KEY)
        self.assertEqual(r.status, 200, r.body)
        return "http://127.0.0.1:%d" % self.srv.port

    def test_cache_file_names_its_token_and_kind(self):
        base = self.start()
        cache = os.path.join(self.tmp, "token.json")
        r = self.get("--url", base + "/release/get-token", "--cache", cache)
        self.assertPrints(r, TOKEN)
        with open(cache) as f:
            written = json.load(f)
        self.assertEqual((written["tokendist_name"], written["tokendist_kind"]), ("default", "token"))
        # Read back (server down), the record comes without the two members.
        self.srv.stop()
        r = self.get("--url", base + "/release/get-token", "--cache", cache, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = json.loads(r.stdout)
        self.assertEqual(rec["access_token"], TOKEN)
        self.assertNotIn("tokendist_name", rec)
        self.assertNotIn("tokendist_kind", rec)

    def test_cache_file_of_another_name_or_kind_is_refused(self):
        """Two scripts share one TOKENDIST_CACHE_FILE (set once in a profile):
        the one asking for 'wechat', or for the jsapi_ticket, must not be
        handed the default token from it."""
        base = self.start()
        cache = os.path.join(self.tmp, "token.json")
        self.assertEqual(self.get("--url", base, "--cache", cache).returncode, 0)
        r = self.get("--url", base, "--name", "wechat", "--cache", cache)
        self.assertRefused(r, 3)
        self.assertIn("本地缓存 token获取失败: 缓存文件属于 token 'default'，不是 'wechat'", r.stderr)
        r = self.get("--url", base, "--ticket", "jsapi_ticket", "--cache", cache)
        self.assertRefused(r, 3)
        self.assertIn("缓存文件存的是 token 'default' 的 access token，不是 jsapi_ticket", r.stderr)

    def test_cache_file_without_the_members_is_the_default_token_only(self):
        """A cache file written before the two members existed: the seed's
        token, and nothing else."""
        cache = os.path.join(self.tmp, "token.json")
        with open(cache, "w") as f:
            json.dump(harness.make_record(TOKEN), f)
        r = self.get("--cache", cache)
        self.assertPrints(r, TOKEN)
        r = self.get("--cache", cache, "--name", "wechat")
        self.assertRefused(r, 3)
        self.assertIn("缓存文件没有标明属于哪个 token (旧格式)，只当作 token 'default' 的 access token", r.stderr)
        self.assertEqual(self.get("--cache", cache, "--ticket", "jsapi_ticket").returncode, 3)

    # ---- the seed's Gitee switch ----

    def test_gitee_switch_false_means_no_gitee_unless_asked(self):
        """ENABLE_GITEE_TOKEN_SHARE=false: the producer of this environment
        does not share through Gitee, so `get` does not read it there either
        (as the Node and Python clients read the same settings) -- unless
        --gitee asks for it.  Unset, a named repository is read."""
        g = self.gitee(json.dumps(harness.make_record(TOKEN_G)))
        dead = "http://127.0.0.1:%d/release/get-token" % harness.free_port()
        asked = lambda: len(g.requests_to("/api/v5/repos/", "GET"))  # noqa: E731
        r = self.get("--url", dead, env=self.gitee_env(g, ENABLE_GITEE_TOKEN_SHARE="false"))
        self.assertRefused(r, 5)
        self.assertNotIn("Gitee", r.stderr)
        self.assertEqual(asked(), 0)
        r = self.get("--url", dead, "--gitee", env=self.gitee_env(g, ENABLE_GITEE_TOKEN_SHARE="false"))
        self.assertPrints(r, TOKEN_G)
        r = self.get("--url", dead, env=self.gitee_env(g))
        self.assertPrints(r, TOKEN_G)
        r = self.get("--url", dead, env=self.gitee_env(g, ENABLE_GITEE_TOKEN_SHARE="true"))
        self.assertPrints(r, TOKEN_G)
        self.assertEqual(asked(), 3)

    # ---- Gitee's HTTP errors: exit codes as for any source ----

    def test_gitee_http_errors_exit_as_any_source(self):
        """Gitee alone: a 500 or a rate limit (429, even with a challenge)
        is an HTTP error of a source, exit 5 -- the Node and Python clients'
        EHTTP; a refused Gitee token is exit 4, their EAUTH."""
        g = self.gitee(json.dumps(harness.make_record(TOKEN_G)))
        env = self.gitee_env(g)
        g.control({"fail": "500", "times": 1})
        r = self.get("--gitee", env=env)
        self.assertRefused(r, 5)
        self.assertIn("Gitee HTTP错误: 500", r.stderr)
        # The hint names Gitee's settings, not the API address nobody set.
        self.assertIn("💡 检查 Gitee 的设置 (GITEE_OWNER、GITEE_REPO、GITEE_BASE_URL)", r.stderr)
        self.assertNotIn("检查API地址", r.stderr)
        g.control({"fail": "status", "status": 429, "json": {"message": "Too Many Requests"}, "times": 1})
        r = self.get("--gitee", env=env)
        self.assertRefused(r, 5)
        self.assertIn("Gitee HTTP错误: 429", r.stderr)
        r = self.get("--gitee", env={**env, "GITEE_ACCESS_TOKEN": "not-the-gitee-token-0001"})
        self.assertRefused(r, 4)
        self.assertIn("💡 检查 Gitee 私人令牌 (GITEE_ACCESS_TOKEN)", r.stderr)
        self.assertNotIn("读取密钥", r.stderr)
        # With an address set that has no token yet, Gitee's failure is
        # still the one the hint is about.
        srv = self.server(["--push-key", PUSH_KEY]).start()
        g.control({"fail": "500", "times": 1})
        r = self.get("--url", "http://127.0.0.1:%d" % srv.port, "--gitee", env=env)
        self.assertRefused(r, 5)
        self.assertIn("💡 检查 Gitee 的设置", r.stderr)
        self.assertNotIn("not-the-gitee-token-0001", r.stderr)
        r = self.get("--gitee", env={**env, "GITEE_FILE_PATH": "no-such.json"})
        self.assertRefused(r, 3)
        self.assertIn("💡 Gitee 上没有这个文件: 检查 GITEE_FILE_PATH 和 GITEE_BRANCH", r.stderr)
        r = self.get("--gitee", env=env)
        self.assertPrints(r, TOKEN_G)


if __name__ == "__main__":
    unittest.main()
