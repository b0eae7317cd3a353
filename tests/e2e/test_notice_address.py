"""`tokendist serve` with Feishu credentials knows its own address: the
group notice always shows where to get the token (TOKENDIST_PUBLIC_URL,
else TENCENT_CLOUD_API_URL, else the listen address), and a
TENCENT_CLOUD_API_URL that points at the server itself is not pushed to
over HTTP (the record is stored locally already) -- said once at start,
never a loop of 401s."""
import unittest

import harness
from feishu_env import PUSH_KEY, FeishuEnv, assert_updated_notice

SELF_LINE = "指向本服务自己"


class NoticeAddress(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.start_feishu()

    def start_serve(self, port=None, **env):
        return self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **self.feishu_env(**env)}, port=port).start()

    def test_notice_shows_the_listen_address_without_any_url_set(self):
        s = self.start_serve()
        self.wait_for(lambda: self.feishu.sent, what="the group notice")
        url = "http://127.0.0.1:%d/release/get-token" % s.port
        assert_updated_notice(self, self.feishu.sent_texts[0], url)
        self.assertIn("💡 群通知里的取 token 地址: %s" % url, s.log())
        self.assertIn("TOKENDIST_PUBLIC_URL", s.log())
        # And clients get the token there.
        self.assertEqual(harness.request(s.port, "GET", "/release/get-token").status, 200)

    def test_public_url_wins(self):
        self.start_serve(TOKENDIST_PUBLIC_URL="https://tokens.example/release/get-token")
        self.wait_for(lambda: self.feishu.sent, what="the group notice")
        assert_updated_notice(self, self.feishu.sent_texts[0], "https://tokens.example/release/get-token")

    def test_endpoint_that_is_this_server_is_not_pushed_to(self):
        for form in ("http://127.0.0.1:%d/release/get-token", "http://localhost:%d"):
            with self.subTest(url=form):
                port = harness.free_port()
                url = form % port
                # No TENCENT_CLOUD_API_KEY: a push to ourselves would get 401, and retry.
                s = self.start_serve(port=port, TENCENT_CLOUD_API_URL=url)
                log = self.wait_log(s, "下次刷新")
                self.assertEqual(log.count(SELF_LINE), 1, log)
                self.assertIn("不通过 HTTP 推送给自己", log)
                self.assertNotIn("正在上传token到腾讯云函数", log)
                self.assertNotIn("分发目标失败", log)
                self.assertEqual(self.token_posts(s), 0)
                self.assertEqual(self.served(s)["access_token"], self.feishu.current_token())
                s.stop()
                self.servers.remove(s)
                self.outputs.append(s.log())


if __name__ == "__main__":
    unittest.main()
