"""`tokendist get` against the real server: stdout is only the token (or
the record), failures print the seed's message and exit with a code that
says what kind of failure it was."""
import json
import os
import socket
import threading
import time
import unittest

import harness
from proxy import Proxy

PUSH_KEY = "push-key-for-get-tests-00001"
READ_KEY = "read-key-for-get-tests-00001"
TOKEN = "t-getcliAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
TENANT = "t-getcliTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
EXIT_NOTOKEN, EXIT_AUTH, EXIT_NETWORK = 3, 4, 5
# No setting may come from the machine running the tests.
CLEAN = {k: "" for k in ("TENCENT_CLOUD_API_URL", "TOKENDIST_URLS", "TOKENDIST_READ_KEY", "GITEE_OWNER",
                         "GITEE_REPO", "TOKENDIST_CACHE_FILE", "TOKENDIST_ENV_FILE")}


class LongChallenge(Proxy):
    """A gateway that answers with a long WWW-Authenticate (a realm and
    error description of its own), as proxies in front of an API may."""
    rewritten = 0

    def rewrite(self, status, headers):
        out = []
        for k, v in headers:
            if k.lower() == "www-authenticate":
                v = 'Bearer realm="%s", error="invalid_token", error_description="%s"' % ("gw" * 40, "x" * 200)
                self.rewritten += 1
            out.append((k, v))
        return out


class RawAnswer:
    """A server that answers every request with the same bytes, as written:
    header blocks and trailers no framework would produce on purpose."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.answer)

    def url(self):
        return "http://127.0.0.1:%d/release/get-token" % self.sock.getsockname()[1]

    def stop(self):
        self.sock.close()


class GetTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH_KEY, READ_KEY, TOKEN, TENANT]

    def start(self, *args):
        self.srv = self.server(["--push-key", PUSH_KEY, *args]).start()
        self.url = "http://127.0.0.1:%d/release/get-token" % self.srv.port
        return self.srv

    def push(self, ttl=7200, **extra):
        r = self.srv.post("/release/get-token", harness.make_record(TOKEN, None, ttl, **extra), key=PUSH_KEY)
        self.assertEqual(r.status, 200, r.body)

    def get(self, *args, env=None, clean=CLEAN):
        return self.cli("get", *args, env={**clean, **(env or {})})

    def test_prints_only_the_token(self):
        self.start()
        self.push(tenant_access_token=TENANT)
        r = self.get("--url", self.url)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, TOKEN + "\n", ""))
        r = self.get("--url", self.url, "--field", "tenant_access_token")
        self.assertEqual(r.stdout, TENANT + "\n")
        # Stdout is a secret here: keep it out of the scanned outputs.
        self.outputs = [o.replace(TOKEN, "").replace(TENANT, "") for o in self.outputs]

    def test_json_prints_the_record(self):
        self.start()
        self.push()
        r = self.get("--url", self.url, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = json.loads(r.stdout)
        self.assertEqual(rec["access_token"], TOKEN)
        self.assertEqual(rec["platform"], "腾讯云函数")
        self.outputs = []

    def test_seed_environment_variable(self):
        self.start()
        self.push()
        # TOKENDIST_URLS, even empty, would win over the seed's name.
        clean = {k: v for k, v in CLEAN.items() if k != "TOKENDIST_URLS"}
        if "TOKENDIST_URLS" in os.environ:
            self.skipTest("TOKENDIST_URLS is set in this environment")
        r = self.get(env={"TENCENT_CLOUD_API_URL": self.url}, clean=clean)
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"))
        self.outputs = []

    def test_not_found_seed_message(self):
        self.start()
        r = self.get("--url", self.url)
        self.assertEqual(r.returncode, EXIT_NOTOKEN)
        self.assertEqual(r.stdout, "")
        self.assertIn("❌ 腾讯云函数 token获取失败: Token not found or expired\n", r.stderr)

    def test_http_500_seed_message(self):
        self.start()
        proxy = Proxy(self.srv.port).start()
        self.addCleanup(proxy.stop)
        proxy.fail_status = 500
        r = self.get("--url", proxy.url())
        self.assertEqual(r.returncode, EXIT_NETWORK)
        self.assertIn("❌ 腾讯云函数 token获取失败: HTTP 500: Internal Server Error\n", r.stderr)
        self.assertIn("TENCENT_CLOUD_API_URL", r.stderr)   # what to check next

    def test_unreachable(self):
        r = self.get("--url", "http://127.0.0.1:%d/release/get-token" % harness.free_port())
        self.assertEqual(r.returncode, EXIT_NETWORK)
        self.assertIn("❌ 腾讯云函数 token获取失败: 网络错误: ", r.stderr)

    def test_read_key(self):
        self.start("--read-key", READ_KEY)
        self.push()
        r = self.get("--url", self.url)
        self.assertEqual(r.returncode, EXIT_AUTH)
        self.assertIn("❌ 腾讯云函数 token获取失败: HTTP 401", r.stderr)
        self.assertIn("--key", r.stderr)
        r = self.get("--url", self.url, "--key", "wrong-key-0000000000000")
        self.assertEqual(r.returncode, EXIT_AUTH)
        r = self.get("--url", self.url, env={"TOKENDIST_READ_KEY": READ_KEY})
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"))
        self.outputs = [o.replace(TOKEN, "") for o in self.outputs]

    def test_auth_lockout_is_still_a_key_problem(self):
        """After ten failures the server answers 429 (认证失败次数过多): still
        exit 4 and the key hint, not "check the address" and exit 5."""
        self.start("--read-key", READ_KEY)
        for _ in range(30):     # ten failures block; a retry may count twice
            r = self.get("--url", self.url, "--key", "wrong-key-0000000000000")
            if "429" in r.stderr:
                break
            self.assertEqual(r.returncode, EXIT_AUTH, r.stderr)
        self.assertIn("认证失败次数过多", r.stderr)
        self.assertEqual(r.returncode, EXIT_AUTH, r.stderr)
        self.assertIn("💡 检查读取密钥 (--key / TOKENDIST_READ_KEY)", r.stderr)
        self.assertNotIn("检查API地址", r.stderr)
        # A gateway in front may rewrite the challenge to any length: its
        # presence is what marks the lockout, not its value.
        prx = LongChallenge(self.srv.port).start()
        self.addCleanup(prx.stop)
        r = self.get("--url", prx.url(), "--key", "wrong-key-0000000000000")
        self.assertIn("认证失败次数过多", r.stderr)
        self.assertEqual(r.returncode, EXIT_AUTH, r.stderr)
        self.assertEqual(prx.rewritten, 1)

    def raw(self, answer):
        srv = RawAnswer(answer)
        self.addCleanup(srv.stop)
        return self.get("--url", srv.url())

    def test_only_the_final_header_block_counts(self):
        """The answer's headers are those of its last block: a challenge in
        a chunked answer's trailer is not the lockout's (exit 5, as Node and
        Python say), a header whose name starts with HTTP/ does not start a
        new block, and a 1xx block before the answer is left behind."""
        body = b'{"error":"Too Many Requests"}'
        chunked = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\nTrailer: WWW-Authenticate\r\nConnection: close\r\n\r\n"
                   + b"%x\r\n" % len(body) + body + b"\r\n0\r\nWWW-Authenticate: Bearer\r\n\r\n")
        r = self.raw(chunked)
        self.assertEqual(r.returncode, EXIT_NETWORK, r.stderr)
        self.assertIn("HTTP 429: Too Many Requests", r.stderr)
        fixed = (b"HTTP/1.1 429 Too Many Requests\r\nHTTP/9: odd\r\nWWW-Authenticate: Bearer\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        r = self.raw(fixed)
        self.assertEqual(r.returncode, EXIT_AUTH, r.stderr)
        self.assertIn("HTTP 429: Too Many Requests", r.stderr)
        trailer_named_http = chunked.replace(b"0\r\nWWW-Authenticate", b"0\r\nHTTP/1.1: x\r\nWWW-Authenticate")
        r = self.raw(trailer_named_http)
        self.assertEqual(r.returncode, EXIT_NETWORK, r.stderr)
        self.assertIn("HTTP 429: Too Many Requests", r.stderr)
        # A trailer shaped like a status line does not start a block either.
        r = self.raw(chunked.replace(b"0\r\nWWW-Authenticate", b"0\r\nHTTP/1.1 401 Forged: x\r\nWWW-Authenticate"))
        self.assertEqual(r.returncode, EXIT_NETWORK, r.stderr)
        self.assertIn("HTTP 429: Too Many Requests", r.stderr)
        self.assertNotIn("Forged", r.stderr)
        for line in (b"HTTP/1.1 429", b"HTTP/1.1 429  "):    # no reason phrase: the stock one
            r = self.raw(fixed.replace(b"HTTP/1.1 429 Too Many Requests", line))
            self.assertEqual(r.returncode, EXIT_AUTH, r.stderr)
            self.assertIn("HTTP 429: Too Many Requests\n", r.stderr)
        r = self.raw(b"HTTP/1.1 103 Early Hints\r\nWWW-Authenticate: Bearer\r\n\r\n"
                     b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body) + body)
        self.assertEqual(r.returncode, EXIT_NETWORK, r.stderr)

    def test_a_trailer_does_not_move_the_clock(self):
        """A Date three hours ahead in a chunked answer's trailers (after a
        line shaped like a status line) is not the answer's Date: the token
        is served, not judged expired by a clock offset the trailer set."""
        rec = json.dumps(harness.make_record(TOKEN)).encode()
        ahead = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3 * 3600))
        # Status lines as libcurl reads them, odd ones included; trailers
        # shaped like headers and like status lines.
        for status in (b"HTTP/1.1 200 OK", b"HTTP/1.1 \t200 OK", b"HTTP/2 +200"):
            for forged in (b"HTTP/1.1 x: y", b"HTTP/1.1 200 x: y"):
                answer = (status + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                          b"Connection: close\r\n\r\n" + b"%x\r\n" % len(rec) + rec +
                          b"\r\n0\r\n" + forged + b"\r\nDate: " + ahead.encode() + b"\r\n\r\n")
                r = self.raw(answer)
                self.outputs = [o.replace(TOKEN, "") for o in self.outputs]
                self.assertEqual((r.returncode, r.stdout == TOKEN + "\n"), (0, True), (status, forged, r.stderr))

    def test_headers_over_the_limit_are_named_as_such(self):
        r = self.raw(b"HTTP/1.1 429 Too Many Requests\r\nWWW-Authenticate: Bearer realm=\"%s\"\r\n"
                     b"Content-Length: 0\r\nConnection: close\r\n\r\n" % (b"x" * 17000))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("回答的头部超过 16384 字节的上限", r.stderr)
        self.assertNotIn("回答超过", r.stderr)

    def test_min_remaining(self):
        self.start()
        self.push(ttl=600)
        r = self.get("--url", self.url, "--min-remaining", "900")
        self.assertEqual(r.returncode, EXIT_NOTOKEN)
        self.assertRegex(r.stderr, r"❌ 腾讯云函数 token获取失败: token即将过期 \(剩余 \d+ 秒，要求至少 900 秒\)")
        r = self.get("--url", self.url)
        self.assertEqual(r.returncode, 0)
        self.outputs = [o.replace(TOKEN, "") for o in self.outputs]

    def test_cache_file_when_server_down(self):
        self.start()
        self.push()
        cache = os.path.join(self.tmp, "cache.json")
        self.assertEqual(self.get("--url", self.url, "--cache", cache).returncode, 0)
        self.srv.stop()
        r = self.get("--url", self.url, "--cache", cache)
        self.assertEqual((r.returncode, r.stdout), (0, TOKEN + "\n"))
        self.outputs = [o.replace(TOKEN, "") for o in self.outputs]

    def test_usage_errors(self):
        r = self.get()
        self.assertEqual(r.returncode, 2)
        self.assertIn("没有 token 来源", r.stderr)
        self.assertIn("--url", r.stderr)
        r = self.get("--url", "http://127.0.0.1:1/x", "--field", "refresh_token")
        self.assertEqual(r.returncode, 2)
        self.assertIn("选项 --field 的值无效: 'refresh_token' 不是 access_token 或 tenant_access_token", r.stderr)
        r = self.get("--url", "ftp://example.com/token")
        self.assertEqual(r.returncode, 2)
        self.assertIn("应以 http:// 或 https:// 开头", r.stderr)

    def test_help_lists_exit_codes(self):
        r = self.get("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--min-remaining", r.stdout)
        self.assertIn("退出码:", r.stdout)


if __name__ == "__main__":
    unittest.main()
