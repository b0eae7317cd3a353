"""One URL rule for every command (src/endpoint.h): a base URL
(http://host:port, no path) works for `refresh`, `check`, the sinks of
`serve`, `get` and `files` alike, and a wrong path is reported as a wrong
path -- not as "no valid token yet" -- by readers and writers."""
import os
import unittest

import harness
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from feishu_env import PUSH_KEY, FeishuEnv

# No setting may come from the machine running the tests.
CLEAN = {k: "" for k in ("TOKENDIST_URLS", "TOKENDIST_READ_KEY", "GITEE_OWNER", "GITEE_REPO",
                         "TOKENDIST_CACHE_FILE", "TOKENDIST_ENV_FILE")}
EXIT_NOTOKEN, EXIT_NETWORK = 3, 5


class BaseUrlEverywhere(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.start_feishu()
        self.start_endpoint()
        self.base = "http://127.0.0.1:%d" % self.endpoint.port

    def test_refresh_pushes_to_a_base_url(self):
        r = self.cli("refresh", "--once", "--api-url", self.base, env=self.feishu_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())
        # The log names the URL the record went to.
        self.assertIn("API地址: %s/release/get-token" % self.base, r.stderr)

    def test_check_passes_with_a_base_url(self):
        r = self.cli("check", env=self.feishu_env(TENCENT_CLOUD_API_URL=self.base + "/"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("✅ 腾讯云函数API连接成功", r.stdout)
        self.assertIn("✅ 腾讯云函数token上传测试成功", r.stdout)

    def test_serve_sink_and_get_and_files_take_the_base_url(self):
        # A store of its own: what the endpoint serves came over HTTP.
        s = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env(TENCENT_CLOUD_API_URL=self.base)},
                        store="sqlite:" + os.path.join(self.tmp, "refresher.db")).start()
        rec = self.wait_for(lambda: self.served(), what="the record pushed to the base URL")
        self.assertEqual(rec["access_token"], self.feishu.current_token())
        self.assertEqual(self.served(s)["access_token"], rec["access_token"])
        r = self.cli("get", "--url", self.base, env=CLEAN)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout.strip(), rec["access_token"])
        r = self.cli("files", "list", "--chat", "oc_refresh_test_chat", "--url", self.base,
                     "--feishu-base-url", self.feishu.url, env=CLEAN)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.outputs = [o.replace(rec["access_token"], "") for o in self.outputs]

    def test_named_token_sink_takes_the_base_url(self):
        """A token of TOKENDIST_TOKENS pushed to a base URL lands under its
        own name, not over the seed's token."""
        env = self.feishu_env(FEISHU_APP_ID="", FEISHU_APP_SECRET="", TOKENDIST_TOKENS="second",
                              TOKENDIST_SECOND_PROVIDER="feishu", TOKENDIST_SECOND_APP_ID=DEFAULT_APP_ID,
                              TOKENDIST_SECOND_APP_SECRET=DEFAULT_APP_SECRET,
                              TOKENDIST_SECOND_BASE_URL=self.feishu.url,
                              TOKENDIST_SECOND_API_URL=self.base, TOKENDIST_SECOND_API_KEY=PUSH_KEY)
        r = self.cli("refresh", "--once", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.endpoint.get("/v1/tokens/second").status, 200)
        self.assertIsNone(self.served())          # the seed's token is untouched


class WrongPath(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.start_feishu()
        self.start_endpoint()
        self.wrong = self.endpoint_url("/release/get-tokn")

    def test_get_says_wrong_path_not_no_token(self):
        r = self.cli("get", "--url", self.wrong, env=CLEAN)
        self.assertEqual(r.returncode, EXIT_NETWORK, r.stderr)
        self.assertIn("路径不对: 服务端没有 /release/get-tokn 这个地址", r.stderr)
        self.assertIn("/release/get-token", r.stderr)
        self.assertNotIn("还没有有效的 token", r.stderr)
        self.assertIn("💡 检查API地址", r.stderr)
        # The right path with nothing stored yet is still "no token yet".
        r = self.cli("get", "--url", self.endpoint_url(), env=CLEAN)
        self.assertEqual(r.returncode, EXIT_NOTOKEN, r.stderr)
        self.assertIn("Token not found or expired", r.stderr)
        self.assertIn("还没有有效的 token", r.stderr)

    def test_refresh_says_wrong_path(self):
        r = self.cli("refresh", "--once", env=self.feishu_env(TENCENT_CLOUD_API_URL=self.wrong))
        self.assertEqual(r.returncode, 1)
        self.assertIn("❌ 腾讯云函数HTTP错误: 404 (路径不对: 服务端没有 /release/get-tokn 这个地址", r.stderr)
        self.assertIsNone(self.served())


if __name__ == "__main__":
    unittest.main()
