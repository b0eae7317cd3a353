"""`tokendist check`: the seed's 测试方法 report, line for line, against a
real `tokendist serve` and the Feishu double; ❌ lines and a non-zero exit
when a step fails.

The report on stdout is compared with the seed's 预期输出 (SEED_EXPECTED,
copied verbatim from the seed's document) after one normalisation: every
leading "[YYYY-MM-DD HH:MM:SS] " timestamp becomes "[时间] " on both sides --
the seed's are from 2024, ours from the run (and must be real times of the
run, in order).  Every other log line is on stderr."""
import re
import time
import unittest

import harness
from feishu_env import PUSH_KEY, FeishuEnv

# The seed's 测试方法 → 预期输出, verbatim.
SEED_EXPECTED = """\
🚀 腾讯云函数Token分发功能测试

1. 测试腾讯云函数API连接
✅ 腾讯云函数API连接成功

2. 测试腾讯云函数token上传功能
[2024-01-15 14:30:01] 正在上传token到腾讯云函数...
[2024-01-15 14:30:02] Token已成功分发到腾讯云函数
✅ 腾讯云函数token上传测试成功

🎉 所有测试通过！腾讯云函数token分发功能正常
"""
STAMP = re.compile(r"(?m)^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] ")
HEAD = ["🚀 腾讯云函数Token分发功能测试", "", "1. 测试腾讯云函数API连接"]


def normalise(text):
    return STAMP.sub("[时间] ", text)


class Check(FeishuEnv, harness.TestCase):
    def setUp(self):
        super().setUp()
        self.start_feishu()
        self.start_endpoint()

    def check(self, **env):
        return self.cli("check", env=self.feishu_env(**env))

    def test_all_pass_seed_report(self):
        utc = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        start = utc(time.time() - 1)
        r = self.check(TOKENDIST_TZ="UTC")
        end = utc(time.time() + 1)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Line for line the seed's, with no blank line before or after it.
        self.assertEqual(normalise(r.stdout).split("\n"), normalise(SEED_EXPECTED).split("\n"))
        stamps = STAMP.findall(r.stdout)
        self.assertEqual(len(stamps), 2)
        self.assertTrue(start <= stamps[0] <= stamps[1] <= end, (start, stamps, end))
        # Every other log line is on stderr, and nothing else is.
        msgs = self.log_messages(r.stderr)
        self.assertEqual(len(msgs), len(r.stderr.splitlines()), r.stderr)
        self.assertEqual(msgs[:2], ["腾讯云函数 Token分发功能已启用", "API地址: " + self.endpoint_url()])
        self.assertIn("app_access_token已成功分发到腾讯云函数", msgs)
        self.assertNotIn("正在上传token到腾讯云函数...", msgs)
        self.assertNotIn("Token已成功分发到腾讯云函数", msgs)
        self.assertEqual(self.served()["access_token"], self.feishu.current_token())
        self.assertEqual(self.feishu.sent, [])          # a check does not post to the group
        # Again, now that a token is stored (200 instead of our 404).
        self.assertEqual(self.check().returncode, 0)

    def test_wrong_path_is_seed_404(self):
        """The seed's 404 line, and what it means here: the path is wrong."""
        r = self.check(TENCENT_CLOUD_API_URL=self.endpoint_url("/release/nope"))
        self.assertEqual(r.returncode, 1)
        out = r.stdout.split("\n")
        self.assertEqual(out[:3], HEAD)
        self.assertTrue(out[3].startswith("❌ 腾讯云函数HTTP错误: 404 (路径不对: 服务端没有 /release/nope 这个地址"), out[3])
        self.assertTrue(any(l.startswith("❌ 腾讯云函数token上传测试失败: 腾讯云函数HTTP错误: 404 (路径不对")
                            for l in out), out)
        self.assertNotIn("🎉", r.stdout)

    def test_wrong_key_seed_message(self):
        r = self.check(TENCENT_CLOUD_API_KEY="wrong-key-for-check-001")
        self.secrets.append("wrong-key-for-check-001")
        self.assertEqual(r.returncode, 1)
        self.assertIn("✅ 腾讯云函数API连接成功", r.stdout)
        self.assertIn("❌ 腾讯云函数token上传测试失败: 腾讯云函数返回错误: 权限不足: 写入密钥无效",
                      r.stdout)
        # The settings to fix, on both sides (the report itself stays the seed's).
        self.assertIn("💡 检查写入密钥 (--api-key / TENCENT_CLOUD_API_KEY，须是服务端 TOKENDIST_PUSH_KEYS 之一)",
                      r.stderr)

    def test_missing_key_names_the_setting(self):
        r = self.check(TENCENT_CLOUD_API_KEY="")
        self.assertEqual(r.returncode, 1)
        self.assertIn("缺少写入密钥", r.stdout)
        self.assertIn("💡 没有设置写入密钥: 请设置 --api-key / TENCENT_CLOUD_API_KEY 为服务端 TOKENDIST_PUSH_KEYS 之一",
                      r.stderr)

    def test_unreachable_and_no_credentials(self):
        port = harness.free_port()
        r = self.check(TENCENT_CLOUD_API_URL="http://127.0.0.1:%d/release/get-token" % port,
                       FEISHU_APP_ID="")
        self.assertEqual(r.returncode, 1)
        self.assertIn("❌ 腾讯云函数API连接失败", r.stdout)
        self.assertIn("❌ 未配置飞书应用凭证: 请设置 FEISHU_APP_ID 和 FEISHU_APP_SECRET", r.stdout)

    def test_not_configured(self):
        r = self.check(TENCENT_CLOUD_API_URL="")
        self.assertEqual(r.returncode, 2)
        self.assertIn("TENCENT_CLOUD_API_URL", r.stdout)
        r = self.check(TENCENT_CLOUD_ENABLED="false")
        self.assertEqual(r.returncode, 2)
        self.assertIn("未启用", r.stdout)


if __name__ == "__main__":
    unittest.main()
