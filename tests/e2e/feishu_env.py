"""Shared fixture of the refresher's black-box tests (test_refresh, test_check,
test_serve_refresh): a Feishu double, optionally a Gitee double, a real
`tokendist serve` as the distribution endpoint, and the environment that
points `tokendist refresh|check|serve` at them.  Every secret used here is
registered in the TestCase's `secrets`, so tearDown proves none leaked."""
import re

import harness
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble
from gitee import DEFAULT_TOKEN as GITEE_TOKEN, GiteeDouble

PUSH_KEY = "push-key-for-refresh-tests-0001"
CHAT = "oc_refresh_test_chat"
HOOK_SECRET = "hook-signing-secret-0001"
LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] (.*)$")


class FeishuEnv:
    """Mixin for harness.TestCase."""

    def start_feishu(self, **control):
        self.feishu = FeishuDouble().start()
        self.addCleanup(self.feishu.stop)
        self.feishu.control({"chats": [CHAT], **control})
        self.secrets += [DEFAULT_APP_SECRET, PUSH_KEY]
        return self.feishu

    def start_gitee(self, **control):
        self.gitee = GiteeDouble().start()
        self.addCleanup(self.gitee.stop)
        if control:
            self.gitee.control(control)
        self.secrets.append(GITEE_TOKEN)
        return self.gitee

    def start_endpoint(self, *args, env=None):
        """A plain `tokendist serve` (no Feishu credentials) taking pushes."""
        self.endpoint = self.server(*args, env={"TOKENDIST_PUSH_KEYS": PUSH_KEY, **(env or {})})
        return self.endpoint.start()

    def endpoint_url(self, path="/release/get-token"):
        return "http://127.0.0.1:%d%s" % (self.endpoint.port, path)

    def feishu_env(self, **extra):
        env = {
            "FEISHU_APP_ID": DEFAULT_APP_ID, "FEISHU_APP_SECRET": DEFAULT_APP_SECRET,
            "FEISHU_BASE_URL": self.feishu.url, "FEISHU_CHAT_ID": CHAT,
            "TOKENDIST_RETRY_MIN": "1", "TOKENDIST_RETRY_MAX": "2",
            # A double that answers late on a busy machine is slow, not down: a
            # timed-out fetch or push would add a retry the test did not plan.
            "TOKENDIST_HTTP_TIMEOUT": "%d" % harness.DEADLINE,
        }
        if getattr(self, "endpoint", None):
            env.update(TENCENT_CLOUD_API_URL=self.endpoint_url(), TENCENT_CLOUD_API_KEY=PUSH_KEY)
        if getattr(self, "gitee", None):
            env.update(ENABLE_GITEE_TOKEN_SHARE="true", GITEE_ACCESS_TOKEN=GITEE_TOKEN,
                       GITEE_OWNER="tokendist", GITEE_REPO="tokens", GITEE_FILE_PATH="token.json",
                       GITEE_BASE_URL=self.gitee.url + "/api/v5")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def served(self, server=None):
        """The record the endpoint serves now, or None (404)."""
        r = (server or self.endpoint).get("/release/get-token")
        return r.json() if r.status == 200 else None

    def token_posts(self, server=None):
        """POSTs of a token the endpoint has answered, from its /metrics."""
        text = (server or self.endpoint).get("/metrics").body.decode()
        return sum(int(m) for m in re.findall(r'route="token_post",status="[^"]+"\} (\d+)', text))

    def fetch_times(self):
        return [r["time"] for r in self.feishu.requests_to("/open-apis/auth/v3/")]

    def remember_tokens(self):
        """Every token the double minted is a secret too: logs show fingerprints only."""
        for t in self.feishu.state()["tokens"]:
            self.secrets.append(t["token"])

    def tearDown(self):
        if getattr(self, "feishu", None):
            self.remember_tokens()
        super().tearDown()

    @staticmethod
    def log_messages(text):
        """The messages of the [time]-prefixed log lines, in order."""
        return [m.group(1) for m in map(LOG_LINE.match, text.splitlines()) if m]


def notice_lines(text):
    return text.split("\n")


def assert_updated_notice(tc, text, api_url, minutes=None):
    """The seed's message, line for line."""
    lines = text.split("\n")
    tc.assertEqual(lines[0], "🔑 客户端 Access Token 已更新")
    tc.assertEqual(lines[1], "")
    tc.assertRegex(lines[2], r"^📅 生成时间: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    m = re.match(r"^⏰ 过期时间: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(剩余 (\d+) 分钟\)$", lines[3])
    tc.assertTrue(m, lines[3])
    if minutes is not None:
        tc.assertEqual(int(m.group(1)), minutes)
    if api_url:
        tc.assertEqual(lines[4], "🔗 腾讯云函数API: " + api_url)
        rest = lines[5:]
    else:
        rest = lines[4:]
    tc.assertEqual(rest, ["", "请客户端使用此API地址获取最新的access_token"])
