"""Black-box tests of `tokendist serve`: the seed-compatible endpoint, keys,
conflicts, limits, CORS, health/metrics, durability and log hygiene."""
import hashlib
import json
import os
import re
import socket
import sqlite3
import threading
import time
import unittest

import harness
from harness import DEADLINE, TestCase, make_record, request, run_cli

PUSH = "pk-2f1c9a7e55d04b0c8e1a3f6b"
PUSH2 = "pk-second-key-77aa01bb"
READ = "rk-6d1f0b3c2e9a48c7a1"
TOKEN = "t-g1044ghEGNOJ5OSQF5OYATETPB"


class ServeTest(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, PUSH2, READ, TOKEN]
        self.srv = self.server(["--push-key", PUSH, "--push-key", PUSH2]).start()

    def store(self, rec, path="/release/get-token", key=PUSH):
        return self.srv.post(path, rec, key=key)

    def test_seed_roundtrip(self):
        self.assertEqual(self.srv.get("/release/get-token").status, 404)
        rec = make_record(TOKEN, tenant_access_token="t-tenant0000000000000000001")
        r = self.store(rec)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"success": True, "message": "Token stored successfully"})
        for path in ("/release/get-token", "/get-token", "/v1/tokens/default"):
            g = self.srv.get(path)
            self.assertEqual(g.status, 200, path)
            body = g.json()
            self.assertEqual(body["access_token"], TOKEN)
            self.assertEqual(body["tenant_access_token"], "t-tenant0000000000000000001")
            self.assertEqual(list(body)[:9], [
                "access_token", "expire_time", "expire_timestamp", "valid_duration_seconds",
                "generated_time", "generated_timestamp", "source", "usage", "platform"])
            self.assertEqual(body["valid_duration_seconds"], 7200)
            # *_time re-derived from the timestamps in Asia/Shanghai (UTC+8).
            want = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec["expire_timestamp"] + 8 * 3600))
            self.assertEqual(body["expire_time"], want)
            self.assertEqual(body["source"], "财联社自动化系统")
            self.assertEqual(g.headers["content-type"], "application/json; charset=utf-8")
            self.assertNotIn("access-control-allow-origin", g.headers)  # a bare loopback listener
            self.assertEqual(g.headers["cache-control"], "no-store")
            self.assertIn("date", g.headers)

    def test_short_token_fingerprint_is_chinese(self):
        """The README's quick-start record ("t-xxx") is too short to show
        any of it: the log and /status.json say so in Chinese."""
        self.assertEqual(self.store(make_record("t-xxx")).status, 200)
        self.wait_log(self.srv, "Token已存储: default (5 个字符) ")
        self.assertNotIn("chars)", self.srv.log())
        self.assertNotIn("chars)", self.srv.get("/status.json").body.decode())

    def test_named_tokens_are_separate(self):
        self.assertEqual(self.store(make_record("t-aaaaaaaaaaaaaaaaaaaa"), "/v1/tokens/feishu_a").status, 200)
        self.assertEqual(self.srv.get("/v1/tokens/feishu_a").json()["access_token"], "t-aaaaaaaaaaaaaaaaaaaa")
        self.assertEqual(self.srv.get("/v1/tokens/other").status, 404)
        self.assertEqual(self.srv.get("/release/get-token").status, 404)
        for bad in ("/v1/tokens/a/b", "/v1/tokens/default/other"):
            self.assertEqual(self.srv.get(bad).status, 404, bad)

    def test_token_names_are_lower_case_letters_digits_underscore(self):
        # Names map to TOKENDIST_<NAME>_… variables, URL segments and store
        # keys: anything else is refused with the rule, before any store.
        for bad in ("..", "x" * 65, "Feishu", "feishu-a", "a.b", "a%20b", "default%00x"):
            for method, want_key in (("GET", "error"), ("POST", "message")):
                r = (self.srv.get("/v1/tokens/" + bad) if method == "GET" else
                     self.store(make_record(TOKEN), "/v1/tokens/" + bad))
                self.assertEqual(r.status, 400, (method, bad))
                self.assertIn("小写字母", r.json()[want_key])
        self.assertEqual(self.store(make_record(TOKEN), "/v1/tokens/" + "x" * 64).status, 200)
        r = self.cli("serve", "--name", "my token", "--listen", "127.0.0.1:1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("小写字母", r.stderr)
        r = self.cli("get", "--name", "Feishu-App", "--url", "http://127.0.0.1:1/release/get-token")
        self.assertEqual(r.returncode, 2)
        self.assertIn("小写字母", r.stderr)

    def test_post_credentials(self):
        rec = make_record(TOKEN)
        r = self.srv.post("/release/get-token", rec)
        self.assertEqual(r.status, 401)
        self.assertIn("Bearer", r.headers["www-authenticate"])
        self.assertFalse(r.json()["success"])
        self.assertIn("权限不足", r.json()["message"])
        r = self.srv.post("/release/get-token", rec, key="wrong-key-xxxxxxxx")
        self.assertEqual(r.status, 403)
        self.assertIn("权限不足", r.json()["message"])
        r = self.srv.post("/release/get-token", rec, headers={"X-Api-Key": PUSH2})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], TOKEN)

    def test_no_push_key_configured_refuses_every_post(self):
        bare = self.server().start()
        r = bare.post("/release/get-token", make_record(TOKEN), key="anything-at-all")
        self.assertEqual(r.status, 403)
        self.assertIn("TOKENDIST_PUSH_KEYS", r.json()["message"])
        self.assertIn("未配置写入密钥", bare.log())

    def test_read_keys(self):
        srv = self.server(["--push-key", PUSH, "--read-key", READ]).start()
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN), key=PUSH).status, 200)
        r = srv.get("/release/get-token")
        self.assertEqual(r.status, 401)
        self.assertIn("权限不足", r.json()["error"])
        self.assertEqual(srv.get("/release/get-token", headers={"Authorization": "Bearer nope-nope"}).status, 403)
        self.assertEqual(srv.get("/release/get-token", headers={"Authorization": "Bearer " + READ}).status, 200)
        self.assertEqual(srv.get("/release/get-token", headers={"X-Api-Key": READ}).status, 200)
        # A push key is not a read key.
        self.assertEqual(srv.get("/release/get-token", headers={"X-Api-Key": PUSH}).status, 403)
        self.assertEqual(srv.get("/healthz").status, 200)

    def test_bad_records(self):
        now = int(time.time())
        cases = [
            ("{not json", "JSON 无效"),
            ("[1, 2]", "应为 JSON 对象"),
            (json.dumps({k: v for k, v in make_record(TOKEN).items() if k != "usage"}), "缺少字段 'usage'"),
            (json.dumps(make_record(TOKEN, expire_timestamp="soon")), "expire_timestamp"),
            (json.dumps(make_record("")), "为空"),
            (json.dumps(make_record("t-" + "a" * 4095)), "超过上限 4096 字节"),
            (json.dumps(make_record("t-has space")), "可见的 ASCII"),
            (json.dumps(make_record(TOKEN, generated=now, expire_timestamp=now - 1)), "应晚于"),
            (json.dumps(make_record(TOKEN, generated=now - 7300, ttl=7200)), "已过期"),
            ('{"access_token": "a", "access_token": "b"}', "重复的键"),
            (json.dumps(make_record(TOKEN, source=5)), "'source' 应为字符串"),
        ]
        self.assertEqual(self.store(make_record(TOKEN)).status, 200)
        for body, needle in cases:
            r = self.srv.post("/release/get-token", body, key=PUSH,
                              headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, body[:60])
            self.assertFalse(r.json()["success"])
            self.assertIn(needle, r.json()["message"], body[:60])
        r = self.srv.post("/release/get-token", b"", key=PUSH)
        self.assertEqual(r.status, 400)
        # None of it touched the stored token.
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], TOKEN)

    def test_record_from_the_future_is_refused(self):
        # A producer whose clock is a century ahead must not poison the
        # store: put-if-newer would refuse every correct record after it.
        now = int(time.time())
        self.assertEqual(self.store(make_record(TOKEN, generated=now - 10)).status, 200)
        ahead = now + 100 * 365 * 86400
        r = self.store(make_record("t-fromTheFuture0000000000", generated=ahead))
        self.assertEqual(r.status, 400)
        msg = r.json()["message"]
        self.assertIn("写入方的时钟不对", msg)
        self.assertIn(time.strftime("%Y-%m-%d %H:%M", time.gmtime(ahead + 8 * 3600)), msg)   # theirs
        self.assertIn(time.strftime("%Y-%m-%d", time.gmtime(now + 8 * 3600)), msg)           # ours
        self.assertIn("--max-clock-skew", msg)
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], TOKEN)
        self.assertIn("拒绝写入 default (来自 127.0.0.1): 400 generated_timestamp", self.srv.log())
        # A clock a little ahead is within the default skew (300 s); the
        # next correct record still goes in.
        self.assertEqual(self.store(make_record("t-slightlyAhead000000000", generated=now + 200)).status, 200)
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], "t-slightlyAhead000000000")
        # --max-clock-skew 0: not a second ahead.
        strict = self.server(["--push-key", PUSH, "--max-clock-skew", "0"],
                             store="sqlite:" + os.path.join(self.tmp, "strict.db")).start()
        r = strict.post("/v1/tokens/strict", make_record(TOKEN, generated=now + 5), key=PUSH)
        self.assertEqual(r.status, 400, r.body)
        self.assertIn("允许的 0 秒", r.json()["message"])
        self.assertEqual(strict.post("/v1/tokens/strict", make_record(TOKEN, generated=now - 1), key=PUSH).status, 200)
        r = self.cli("serve", "--max-clock-skew", "-5", "--print-config")
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_older_record_conflicts_and_resend_is_idempotent(self):
        now = int(time.time())
        new = make_record("t-newer000000000000000", generated=now)
        old = make_record("t-older000000000000000", generated=now - 60)
        self.assertEqual(self.store(new).status, 200)
        self.assertEqual(self.store(new).status, 200)   # a retry of the same push
        r = self.store(old)
        self.assertEqual(r.status, 409)
        self.assertIn("记录不比已存储的新", r.json()["message"])
        same_ts = make_record("t-other000000000000000", generated=now)
        self.assertEqual(self.store(same_ts).status, 409)
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], "t-newer000000000000000")
        newer = make_record("t-newest00000000000000", generated=now + 1)
        self.assertEqual(self.store(newer).status, 200)
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], "t-newest00000000000000")

    def test_body_limit_decided_from_content_length(self):
        # Announce a large body but send none: the 413 must come from the
        # header alone, before any body is read.
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=DEADLINE)
        s.sendall(("POST /release/get-token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" % PUSH).encode())
        head = s.recv(4096).decode()
        s.close()
        self.assertTrue(head.startswith("HTTP/1.1 413"), head[:40])
        big = json.dumps(make_record(TOKEN, padding="x" * 70000))
        r = self.srv.post("/release/get-token", big, key=PUSH, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 413)

    def test_content_type(self):
        body = json.dumps(make_record(TOKEN))
        r = self.srv.post("/release/get-token", body, key=PUSH, headers={"Content-Type": "multipart/form-data; boundary=x"})
        self.assertEqual(r.status, 415)
        r = self.srv.post("/release/get-token", body, key=PUSH, headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 200)

    def test_cors_and_methods(self):
        r = request(self.srv.port, "OPTIONS", "/release/get-token",
                    headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers["access-control-allow-methods"], "GET, POST, OPTIONS")
        for h in ("Authorization", "Content-Type", "X-Api-Key"):
            self.assertIn(h, r.headers["access-control-allow-headers"])
        self.assertNotIn("access-control-allow-origin", r.headers)
        for m in ("PUT", "DELETE", "PATCH"):
            r = request(self.srv.port, m, "/release/get-token")
            self.assertEqual(r.status, 405, m)
            self.assertEqual(r.json(), {"error": "Method not allowed"})
            self.assertEqual(r.headers["allow"], "GET, POST, OPTIONS")
        self.assertEqual(request(self.srv.port, "POST", "/healthz").status, 405)
        self.assertEqual(self.srv.get("/nope").status, 404)
        self.assertEqual(request(self.srv.port, "HEAD", "/release/get-token").status, 404)

    def test_cors_origin_setting(self):
        srv = self.server(["--cors-origin", "https://app.example.cn"]).start()
        self.assertEqual(srv.get("/release/get-token").headers["access-control-allow-origin"],
                         "https://app.example.cn")

    def test_no_cors_on_a_bare_loopback_listener(self):
        # Any web page the operator opens could otherwise read the token
        # from 127.0.0.1 (no rebinding needed): the seed's "*" only where
        # the server is meant to be reached from elsewhere.
        self.assertEqual(self.store(make_record(TOKEN)).status, 200)
        self.assertNotIn("access-control-allow-origin", self.srv.get("/release/get-token").headers)
        proxied = self.server(["--allowed-host", "token.example.cn"]).start()
        self.assertEqual(proxied.get("/healthz").headers["access-control-allow-origin"], "*")
        port = harness.free_port()
        public = self.server(["--listen", "0.0.0.0:%d" % port], port=port).start()
        self.assertEqual(public.get("/healthz").headers["access-control-allow-origin"], "*")
        star = self.server(["--cors-origin", "*"]).start()
        self.assertEqual(star.get("/healthz").headers["access-control-allow-origin"], "*")

    def test_expiry_is_checked_at_request_time(self):
        # Time moved, not slept through: a 2-second token had to be read
        # back within those 2 s, which a busy machine does not promise.
        clock = self.clock()
        srv = self.server(["--push-key", PUSH]).start()
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN, ttl=600), key=PUSH).status, 200)
        clock.advance(540)
        self.assertEqual(srv.get("/release/get-token").status, 200)
        clock.advance(60)
        r = srv.get("/release/get-token")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"error": "Token not found or expired"})

    def test_health_ready_metrics(self):
        self.assertEqual(self.srv.get("/healthz").json(), {"status": "ok"})
        self.store(make_record(TOKEN))
        self.srv.get("/release/get-token")
        self.srv.post("/release/get-token", make_record(TOKEN), key="bad-key-123456")
        ready = self.srv.get("/readyz")
        self.assertEqual(ready.status, 200)
        self.assertTrue(ready.json()["ready"])
        self.assertTrue(ready.json()["tokens"]["default"]["fresh"])
        m = self.srv.get("/metrics")
        self.assertEqual(m.status, 200)
        self.assertTrue(m.headers["content-type"].startswith("text/plain"))
        text = m.body.decode()
        self.assertIn('tokendist_requests_total{route="token_get",status="200"} 1', text)
        self.assertIn('tokendist_requests_total{route="token_post",status="403"} 1', text)
        self.assertIn("tokendist_auth_failures_total 1", text)
        line = [l for l in text.splitlines() if l.startswith('tokendist_token_expiry_seconds{name="default"}')][0]
        self.assertGreater(int(line.split()[-1]), 7000)

    def test_store_busy_answers_503_and_keeps_token(self):
        self.assertEqual(self.store(make_record(TOKEN)).status, 200)
        db = sqlite3.connect(os.path.join(self.tmp, "var", "tokendist.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            r = self.store(make_record("t-blocked00000000000000", generated=int(time.time()) + 5))
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers["retry-after"], "5")
        self.assertEqual(self.srv.get("/release/get-token").json()["access_token"], TOKEN)
        self.assertEqual(self.store(make_record("t-after000000000000000", generated=int(time.time()) + 6)).status, 200)

    def test_garbage_requests_do_not_hurt(self):
        for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                     b"POST /release/get-token HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                     b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
                     b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=2)
            try:
                s.sendall(junk)
                data = s.recv(100)
                if data:
                    self.assertRegex(data.decode("latin1"), r"^HTTP/1\.1 (4\d\d|505)")
            except (ConnectionResetError, BrokenPipeError, TimeoutError):
                pass    # closed, or still waiting for a request line: both fine
            finally:
                s.close()
        self.assertEqual(self.srv.get("/healthz").status, 200)

    def test_kill9_keeps_acknowledged_tokens(self):
        base = int(time.time())
        last = None
        for i in range(20):
            rec = make_record("t-seq%017d" % i, generated=base + i)
            self.assertEqual(self.store(rec).status, 200)
            last = rec["access_token"]
        self.srv.kill9()
        again = self.server(["--push-key", PUSH], port=self.srv.port).start()
        self.assertEqual(again.get("/release/get-token").json()["access_token"], last)
        db = sqlite3.connect(os.path.join(self.tmp, "var", "tokendist.db"))
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        hist = db.execute("SELECT COUNT(*) FROM history WHERE name='default'").fetchone()[0]
        db.close()
        self.assertEqual(hist, 20)   # default --history keeps 20

    def test_store_file_permissions(self):
        var = os.path.join(self.tmp, "var")
        self.assertEqual(os.stat(var).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(os.path.join(var, "tokendist.db")).st_mode & 0o777, 0o600)

    def test_logs_show_fingerprints_only(self):
        self.store(make_record(TOKEN))
        self.srv.post("/release/get-token", make_record(TOKEN), key="wrong-key-abcdefgh")
        log = self.srv.log()
        self.assertIn("已启动", log)
        self.assertIn("t-g10…PB", log)
        self.assertRegex(log, r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ")
        self.secrets.append("wrong-key-abcdefgh")
        self.srv.stop()
        self.assertIn("已停止", self.srv.log())
        self.assertEqual(self.srv.proc.returncode, 0)

    def test_concurrent_clients(self):
        self.store(make_record(TOKEN))
        errors = []

        def worker():
            try:
                for _ in range(50):
                    if self.srv.get("/release/get-token").status != 200:
                        errors.append("status")
            except Exception as e:   # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


class ServeCliTest(TestCase):
    def test_help_and_version(self):
        r = self.cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^tokendist \d+\.\d+\.\d+")
        r = self.cli("serve", "--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--listen", "--store", "--push-key", "--read-key", "--cors-origin", "--env-file",
                     "TOKENDIST_PUSH_KEYS"):
            self.assertIn(flag, r.stdout)
        self.assertEqual(self.cli("--help").returncode, 0)

    def test_bad_settings_say_what_to_fix(self):
        cases = [
            (["serve", "--bogus"], "未知选项 --bogus"),
            (["serve", "--listen"], "选项 --listen 缺少值"),
            (["serve", "--body-limit", "12abc"], "选项 --body-limit 的值无效: '12abc' 不是 1024 到 1048576 之间的整数"),
            (["serve", "--env-file", "/nonexistent/x.env"], "无法读取 env-file /nonexistent/x.env"),
            (["serve", "stray"], "多余的参数 'stray'"),
            (["nosuchcommand"], "未知命令 'nosuchcommand'"),
            # A bad address or store is a bad setting too: exit 2, found
            # before the store is opened or anything listens.
            (["serve", "--listen", "999.1.1.1:80", "--store", "sqlite:" + self.tmp + "/a.db"], "'999.1.1.1:80' 不是 HOST:PORT"),
            (["serve", "--store", "mysql://x"], "不认识存储类型 'mysql:'"),
        ]
        for args, needle in cases:
            r = self.cli(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(needle, r.stderr, args)
        self.assertFalse(os.path.exists(self.tmp + "/a.db"))

    def test_a_store_kind_without_its_colon_is_suggested_with_it(self):
        """`--store memory` as issue #11 writes it: the hint must name the
        memory store, not a SQLite file called ./memory."""
        for bare, want in (("memory", "请写 memory:"), ("redis", "请写 redis://HOST:PORT/DB"),
                           ("s3", "请写 s3://BUCKET/PREFIX")):
            r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", bare, "--print-config", cwd=self.tmp)
            self.assertEqual(r.returncode, 2, bare)
            self.assertIn(want, r.stderr, bare)
            self.assertNotIn("sqlite:" + bare, r.stderr, bare)
        # A bare file name still gets the SQLite hint.
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", "tokens.db", "--print-config", cwd=self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn("sqlite:tokens.db", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "memory")))

    def test_runtime_failures_exit_1_with_reason(self):
        bad = os.path.join(self.tmp, "junk.db")
        with open(bad, "wb") as f:
            f.write(b"this is not a database" * 100)
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", "sqlite:" + bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn(bad, r.stderr)
        self.assertIn("请把它移走", r.stderr)

    def test_settings_precedence_and_redaction(self):
        envfile = os.path.join(self.tmp, "t.env")
        with open(envfile, "w") as f:
            f.write("# comment\nexport TOKENDIST_LISTEN=127.0.0.1:7001\nTOKENDIST_CORS_ORIGIN='from-file'\n"
                    "TOKENDIST_PUSH_KEYS=\"%s, %s\"\nUNRELATED=1\n" % (PUSH, PUSH2))
        self.secrets += [PUSH, PUSH2]
        r = self.cli("serve", "--env-file", envfile, "--print-config",
                     env={"TOKENDIST_CORS_ORIGIN": "from-env"})
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = dict(l.split("=", 1) for l in r.stdout.splitlines())
        self.assertEqual(cfg["TOKENDIST_LISTEN"], "127.0.0.1:7001")
        self.assertEqual(cfg["TOKENDIST_CORS_ORIGIN"], "from-env")
        self.assertEqual(cfg["TOKENDIST_PUSH_KEYS"].count(","), 1)
        r = self.cli("serve", "--env-file", envfile, "--print-config", "--listen", "127.0.0.1:7002")
        self.assertIn("TOKENDIST_LISTEN=127.0.0.1:7002", r.stdout)
        with open(envfile, "w") as f:
            f.write("TOKENDIST_LISTEN\n")
        r = self.cli("serve", "--env-file", envfile)
        self.assertEqual(r.returncode, 2)
        self.assertIn("env-file %s 第 1 行: 应为 KEY=VALUE" % envfile, r.stderr)


class PrintConfigTest(TestCase):
    """--print-config shows secrets only as "sha256:" and 8 hex digits of
    their SHA-256, and URLs without their credentials, whatever their form."""

    SECRETS = {
        "TOKENDIST_PUSH_KEYS": ["pushkey-AAAA-0123456789", "pushkey-BBBB-9876543210"],
        "TOKENDIST_READ_KEYS": ["readkey-CCCC-0123456789"],
        "FEISHU_APP_SECRET": ["appsecret-DDDD-01234567"],
        "FEISHU_WEBHOOK_URL": ["https://open.feishu.cn/open-apis/bot/v2/hook/EEEE-0123-4567"],
        "FEISHU_WEBHOOK_SECRET": ["hooksecret-FFFF-0123456"],
        "TENCENT_CLOUD_API_KEY": ["apikey-GGGG-0123456789"],
        "GITEE_ACCESS_TOKEN": ["giteetoken-HHHH-012345"],
        "TOKENDIST_READ_KEY": ["clientkey-IIII-0123456"],
    }

    @staticmethod
    def fp(secret):
        return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]

    def test_every_secret_only_as_its_hash(self):
        env = {k: ",".join(v) for k, v in self.SECRETS.items()}
        for v in self.SECRETS.values():
            self.secrets += v
        seen = set()
        for cmd in (["serve"], ["refresh"], ["check"], ["get"], ["files", "list"], ["scf-runtime"]):
            r = self.cli(*cmd, "--print-config", env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            cfg = dict(l.split("=", 1) for l in r.stdout.splitlines())
            for name, values in self.SECRETS.items():
                if name in cfg:
                    seen.add(name)
                    self.assertEqual(cfg[name], ",".join(map(self.fp, values)), (cmd, name))
            for values in self.SECRETS.values():
                for v in values:
                    # Not even a part of one: each carries a marker (AAAA…)
                    # that no other output has.
                    self.assertNotIn(re.search(r"[A-Z]{4}", v).group(), r.stdout, (cmd, v))
        self.assertEqual(seen, set(self.SECRETS))

    def test_empty_secret_stays_empty(self):
        r = self.cli("serve", "--print-config", env={"TOKENDIST_PUSH_KEYS": "", "FEISHU_APP_SECRET": ""})
        cfg = dict(l.split("=", 1) for l in r.stdout.splitlines())
        self.assertEqual((cfg["TOKENDIST_PUSH_KEYS"], cfg["FEISHU_APP_SECRET"]), ("", ""))

    def test_store_url_credentials_redacted_in_every_form(self):
        forms = {
            "redis://:S3cret@h": "redis://***@h",
            "redis://user:S3cret@h": "redis://***@h",
            "redis://u%40x:p%40ss@h:6380/2": "redis://***@h:6380/2",
            "redis://a@b:S3cret@h/0?prefix=ns@x": "redis://***@h/0?prefix=ns@x",
            "redis://h:6379/0": "redis://h:6379/0",
            "sqlite:./var/a@b.db": "sqlite:./var/a@b.db",
        }
        self.secrets += ["S3cret", "p%40ss", "u%40x", "Ab/cD", "p?w#x"]
        for url, want in forms.items():
            r = self.cli("serve", "--store", url, "--print-config", env={"TOKENDIST_STORE": ""})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("TOKENDIST_STORE=%s\n" % want, r.stdout, url)
            self.assertNotIn("user", r.stdout)
        # A form the store refuses is refused at once, without showing it --
        # also a password from openssl rand -base64 that holds '/' (the
        # authority does not end there) or one with '?' or '#': the message
        # says how to write them.
        for url in ("redis://S3cret@h", "redis://:Ab/cD+eF=@10.0.0.5:6379/0", "redis://u:p?w#x@h/1"):
            r = self.cli("serve", "--store", url, "--print-config", env={"TOKENDIST_STORE": ""})
            self.assertEqual(r.returncode, 2, url)
            self.assertIn("选项 --store 的值无效", r.stderr)
        self.assertIn("%2F", r.stderr)
        # Any URL setting may carry credentials: the client's endpoints too.
        r = self.cli("get", "--url", "http://reader:S3cret@127.0.0.1:9/v1/tokens/x", "--url",
                     "http://127.0.0.1:9/get-token", "--print-config")
        self.assertIn("TOKENDIST_URLS=http://***@127.0.0.1:9/v1/tokens/x,http://127.0.0.1:9/get-token\n",
                      r.stdout)

    def test_per_token_urls_redacted(self):
        env = {"TOKENDIST_TOKENS": "wx", "TOKENDIST_WX_PROVIDER": "wechat", "TOKENDIST_WX_APP_ID": "wx1",
               "TOKENDIST_WX_APP_SECRET": "wx-secret-JJJJ-0123",
               "TOKENDIST_WX_API_URL": "https://u:WxApiPw8@h/x",
               "TOKENDIST_WX_BASE_URL": "https://u:Wx/BasePw9@api.weixin.qq.com"}
        self.secrets += ["wx-secret-JJJJ-0123", "WxApiPw8", "Wx/BasePw9"]
        r = self.cli("serve", "--print-config", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("TOKENDIST_WX_API_URL=https://***@h/x\n", r.stdout)
        self.assertIn("TOKENDIST_WX_BASE_URL=https://***@api.weixin.qq.com\n", r.stdout)


class UrlCredentialsInLogsTest(TestCase):
    """A URL's userinfo, and a request's query (WeCom's corpsecret), never
    reach a log: not the sink's "API地址" line, not a failed fetch's or
    push's error (tearDown scans the log for every secret)."""

    def test_failed_fetch_and_push_name_urls_without_credentials(self):
        dead = harness.free_port()
        env = {"FEISHU_APP_ID": "cli_a1b2c3d4e5f6a7b8", "FEISHU_APP_SECRET": "app-secret-KKKK-0123",
               "FEISHU_BASE_URL": "http://u:FeishuPw1@127.0.0.1:%d" % dead,
               "TENCENT_CLOUD_API_URL": "http://u:ApiPw2@127.0.0.1:%d/release/get-token" % dead,
               "TENCENT_CLOUD_API_KEY": "api-key-LLLL-0123",
               "TOKENDIST_TOKENS": "corp", "TOKENDIST_CORP_PROVIDER": "wecom",
               "TOKENDIST_CORP_APP_ID": "ww0123", "TOKENDIST_CORP_APP_SECRET": "corp-secret-MMMM-0123",
               "TOKENDIST_CORP_BASE_URL": "http://127.0.0.1:%d" % dead,
               "TOKENDIST_CORP_API_URL": "http://u:CorpPw3@127.0.0.1:%d/v1/tokens/corp" % dead,
               "TOKENDIST_RETRY_MIN": "1", "TOKENDIST_RETRY_MAX": "2"}
        self.secrets += ["FeishuPw1", "ApiPw2", "CorpPw3", "app-secret-KKKK-0123", "api-key-LLLL-0123",
                         "corp-secret-MMMM-0123"]
        s = self.server(env=env, store="memory:").start()
        self.wait_log(s, "刷新失败", count=2)     # both tokens failed at least once
        log = s.log()
        self.assertIn("API地址: http://***@127.0.0.1:%d/release/get-token" % dead, log)
        self.assertIn("http://***@127.0.0.1:%d/open-apis/auth/v3/" % dead, log)


if __name__ == "__main__":
    unittest.main()
