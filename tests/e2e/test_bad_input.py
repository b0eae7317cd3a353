"""A table of bad input over HTTP and the command line.  Each row names the
input and the answer it must get; after every HTTP row the stored token is
checked unchanged.  Rows are data: add one when a new kind of bad input
turns up."""
import json
import os
import socket
import time
import unittest

from harness import DEADLINE, TestCase, make_record

PUSH = "pk-bad-input-5e2a61c07d"
TOKEN = "t-badinput0000000000000001"
NOW = int(time.time())


def rec(**kw):
    return json.dumps(make_record(TOKEN if "token" not in kw else kw.pop("token"), generated=NOW + 10, **kw))


def raw_post(body, headers=None, path="/release/get-token", key=PUSH):
    h = {"Host": "localhost", "Authorization": "Bearer " + key, "Content-Type": "application/json"}
    h.update(headers or {})
    if "Content-Length" not in h and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    head = "POST %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1] is not None)
    return head.encode() + b"\r\n" + body


def chunked(body):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


B = lambda s: s.encode() if isinstance(s, str) else s   # noqa: E731

# (name, raw request bytes, expected status, text the answer must contain)
HTTP_ROWS = [
    ("invalid JSON", raw_post(b"{nope"), 400, "JSON 无效"),
    ("JSON array", raw_post(b"[1]"), 400, "应为 JSON 对象"),
    ("JSON string", raw_post(b'"abc"'), 400, "应为 '[' 或 '{'"),
    ("JSON null", raw_post(b"null"), 400, ""),
    ("trailing garbage", raw_post(B(rec()) + b" x"), 400, "多余的内容"),
    ("invalid UTF-8", raw_post(B(rec(source="ok")).replace(b'"ok"', b'"\xff\xfe"')), 400, "不是有效的 UTF-8"),
    ("UTF-8 BOM", raw_post(b"\xef\xbb\xbf" + B(rec())), 400, "开头有 UTF-8 BOM"),
    ("deep nesting", raw_post(b'{"access_token": ' + b"[" * 5000 + b"]" * 5000 + b"}"), 400, ""),
    ("integer over 64 bits", raw_post(B(rec()).replace(b'"expire_timestamp": %d' % (NOW + 7210),
                                                           b'"expire_timestamp": 99999999999999999999999')), 400, ""),
    ("timestamp far future", raw_post(B(rec(expire_timestamp=10 ** 15))), 400, "超出范围"),
    ("real overflow", raw_post(B(rec()).replace(b'"expire_timestamp": %d' % (NOW + 7210),
                                                    b'"expire_timestamp": 1e400')), 400, "JSON 无效"),
    ("negative timestamp", raw_post(B(json.dumps(make_record(TOKEN, generated=-5)))), 400, "超出范围"),
    ("timestamp as string", raw_post(B(rec(generated_timestamp="1705301400"))), 400, "generated_timestamp"),
    ("expire equals generated", raw_post(B(rec(expire_timestamp=NOW + 10))), 400, "应晚于"),
    ("already expired", raw_post(B(json.dumps(make_record(TOKEN, generated=NOW - 8000)))), 400, "已过期"),
    ("NUL in token", raw_post(B(rec(token="t-a\u0000b"))), 400, "不允许"),
    ("non-ASCII token", raw_post(B(rec(token="t-令牌"))), 400, "可见的 ASCII"),
    ("token too long", raw_post(B(rec(token="t" * 5000))), 400, "超过上限 4096 字节"),
    ("tenant token wrong type", raw_post(B(rec(tenant_access_token=["x"]))), 400, "tenant_access_token"),
    ("source too long", raw_post(B(rec(source="s" * 2000))), 400, "超过 1024 字节"),
    ("duplicate key", raw_post(b'{"access_token": "a", "access_token": "b"}'), 400, "重复的键"),
    ("empty body", raw_post(b""), 400, "请求体为空"),
    ("form content type", raw_post(B(rec()), {"Content-Type": "multipart/form-data; boundary=z"}), 415, "Content-Type"),
    ("octet-stream content type", raw_post(B(rec()), {"Content-Type": "application/octet-stream"}), 415, "Content-Type"),
    ("empty bearer", raw_post(B(rec()), {"Authorization": "Bearer "}), 401, "权限不足"),
    ("basic auth", raw_post(B(rec()), {"Authorization": "Basic dXNlcjpwYXNz"}), 401, "权限不足"),
    ("empty X-Api-Key", raw_post(B(rec()), {"Authorization": None, "X-Api-Key": ""}), 401, "权限不足"),
    ("conflicting Content-Length", raw_post(B(rec()), {"Content-Length": "5, 9"}), 400, ""),
    ("negative Content-Length", raw_post(b"{}", {"Content-Length": "-1"}), 400, ""),
    ("Content-Length over the limit", raw_post(b"", {"Content-Length": "100000000"}), 413, "字节的上限"),
    ("chunked body over the limit", raw_post(chunked(B(rec(padding="z" * 70000))), {"Transfer-Encoding": "chunked"}), 413, "字节的上限"),
    ("%00 in the path", b"GET /v1/tokens/default%00x HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "token 名称无效"),
    ("escaped slash in a name", b"GET /v1/tokens/de%2Ffault HTTP/1.1\r\nHost: localhost\r\n\r\n", 404, "Not found"),
    (".. in the path", b"GET /v1/tokens/../release/get-token HTTP/1.1\r\nHost: localhost\r\n\r\n", 404, "Not found"),
    ("bad token name", b"GET /v1/tokens/a%20b HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "token 名称无效"),
    ("lower-case method", b"get /release/get-token HTTP/1.1\r\nHost: localhost\r\n\r\n", 405, "Method not allowed"),
    ("URL too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414, ""),
    # The two answers libmicrohttpd writes itself, in English HTML: a known
    # limit (docs/protocol.md, "Answers libmicrohttpd gives itself"); the
    # needles pin it, so a libmicrohttpd that lets us answer shows up here.
    ("header too large", b"GET /release/get-token HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
     "Your HTTP header was too big"),
    ("bad chunked encoding", raw_post(b"zz\r\n{}\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}), 400,
     "Your HTTP chunked encoding was syntactically incorrect"),
    ("invalid report without token", raw_post(b"{}", path="/v1/tokens/default/invalid"), 400, "access_token"),
]


class BadInputHttpTest(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, TOKEN]
        self.srv = self.server(["--push-key", PUSH]).start()
        self.assertEqual(self.srv.post("/release/get-token", make_record(TOKEN, generated=NOW), key=PUSH).status, 200)
        self.stored = self.srv.get("/release/get-token").body

    def send(self, raw):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=DEADLINE)
        try:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + self.content_length(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data
        finally:
            s.close()

    @staticmethod
    def content_length(data):
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin1").lower()
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                return int(line.split(":")[1])
        return 0

    def test_table(self):
        self.assertGreaterEqual(len(HTTP_ROWS), 30)
        for name, raw, status, needle in HTTP_ROWS:
            with self.subTest(name):
                data = self.send(raw)
                self.assertTrue(data.startswith(b"HTTP/1.1 %d " % status),
                                "%s: got %r" % (name, data[:60]))
                body = data.split(b"\r\n\r\n", 1)[1].decode("utf-8", "replace")
                self.assertIn(needle, body, name)
                self.assertEqual(self.srv.get("/release/get-token").body, self.stored,
                                 "%s changed the stored token" % name)

    def test_chunked_body_is_accepted(self):
        body = B(rec(token="t-chunked00000000000000"))
        data = self.send(raw_post(chunked(body), {"Transfer-Encoding": "chunked"}))
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:60])
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], "t-chunked00000000000000")


# (name, argv, exit code, text stderr must contain).  Every bad option or
# setting exits 2 (tokendist(1) 退出状态), before anything starts.
CLI_ROWS = [
    ("unknown flag", ["serve", "--frobnicate"], 2, "未知选项 --frobnicate"),
    ("misspelt flag", ["serve", "--lisen", "127.0.0.1:1"], 2, "未知选项 --lisen，你是不是想写 --listen？"),
    ("flag of another command", ["get", "--listen", "127.0.0.1:1"], 2, "--listen 不是 get 的选项"),
    ("flag without value", ["serve", "--store"], 2, "选项 --store 缺少值"),
    ("number out of range", ["serve", "--conn-limit", "0"], 2, "'0' 不是 16 到 1000000 之间的整数"),
    ("number with junk", ["serve", "--history", "5x"], 2, "选项 --history 的值无效: '5x'"),
    ("bad bool", ["refresh", "--tencent-cloud-enabled=perhaps"], 2, "'perhaps' 不是 true 或 false"),
    ("stray argument", ["get", "oops"], 2, "多余的参数 'oops'"),
    ("env-file is a folder", ["serve", "--env-file", "/"], 2, "无法读取 env-file / (选项 --env-file): 这是一个文件夹"),
    ("env-file missing", ["get", "--env-file", "/no/such.env"], 2, "无法读取 env-file /no/such.env (选项 --env-file): 文件不存在"),
    ("unknown time zone", ["serve", "--tz", "Mars/Olympus"], 2, "'Mars/Olympus' 不是已知的时区"),
    ("time zone path trick", ["serve", "--tz", "../../etc/passwd"], 2, "不是已知的时区"),
    ("store without scheme", ["serve", "--listen", "127.0.0.1:0", "--store", "tokens.db"], 2, "请写 sqlite:tokens.db"),
    ("unknown store scheme", ["serve", "--listen", "127.0.0.1:0", "--store", "mysql://h/db"], 2, "不认识存储类型 'mysql:'"),
    ("sqlite store without path", ["serve", "--listen", "127.0.0.1:0", "--store", "sqlite:"], 2, "sqlite:./var/tokendist.db"),
    ("listen without port", ["serve", "--listen", "127.0.0.1", "--store", "sqlite::memory:"], 2, "不是 HOST:PORT"),
    ("listen port out of range", ["serve", "--listen", "127.0.0.1:70000", "--store", "sqlite::memory:"], 2, "不是 HOST:PORT"),
    ("unknown command", ["serv"], 2, "未知命令 'serv'，你是不是想写 serve？"),
]


class BadInputCliTest(TestCase):
    def test_table(self):
        srv = self.server(["--push-key", PUSH]).start()
        self.secrets += [PUSH, TOKEN]
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN, generated=NOW), key=PUSH).status, 200)
        before = srv.get("/release/get-token").body
        for name, argv, code, needle in CLI_ROWS:
            with self.subTest(name):
                r = self.cli(*argv, env={"TOKENDIST_STORE": srv.store, "TOKENDIST_ENV_FILE": ""}, cwd=self.tmp)
                self.assertEqual(r.returncode, code, "%s: %s" % (name, r.stderr))
                self.assertIn(needle, r.stderr, name)
        self.assertEqual(srv.get("/release/get-token").body, before)


if __name__ == "__main__":
    unittest.main()
