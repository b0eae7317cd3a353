"""Black-box tests of `tokendist scf-runtime`, the Tencent SCF event-function
custom runtime, driven by the SCF runtime API double.

Every request goes to a `tokendist serve` (HTTP) and, as an API Gateway event
and as a Function URL event, to a `tokendist scf-runtime` with the same
settings and its own store; the answers must be the same: one handler, two
front doors."""
import base64
import json
import os
import subprocess
import time
import unittest

from feishu_env import FeishuEnv
from harness import BIN, DEADLINE, TestCase, make_record, request
from redisd import RedisServer
from scf_runtime import InvocationError, ScfRuntimeDouble, apigw_event, function_url_event, http_response

PUSH = "pk-scf-7c1d2e3f4a5b6c7d8e9f"
TOKEN = "t-g1044scfRuntimeTokenAAAAAAAA"
REDIS_PW = "redis-pw-5e6f7a8b9c0d"

# The headers the handler decides; the transport's own (Date, Content-Length,
# Connection) differ by nature.
API_HEADERS = ("content-type", "access-control-allow-origin", "cache-control", "allow",
               "www-authenticate", "retry-after", "access-control-allow-methods",
               "access-control-allow-headers", "access-control-max-age")


class Runtime:
    """A `tokendist scf-runtime` process attached to a runtime API double."""

    def __init__(self, test, store, args=(), env=None):
        self.double = ScfRuntimeDouble().start()
        self.log_path = os.path.join(test.tmp, "scf-runtime-%d.log" % self.double.port)
        e = dict(os.environ)
        e.update(self.double.runtime_env())
        e.update(env or {})
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "scf-runtime", "--store", store] + list(args),
                                     cwd=test.tmp, env=e, stdout=self.logf, stderr=self.logf)
        if not self.double.wait_ready(DEADLINE):
            raise AssertionError("scf-runtime never posted /runtime/init/ready:\n" + self.log())

    def invoke(self, event, timeout=DEADLINE):
        return self.double.invoke(event, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.double.stop()

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


class ScfTestCase(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, TOKEN, REDIS_PW]
        self.runtimes = []

    def runtime(self, store, args=(), env=None):
        rt = Runtime(self, store, args, env)
        self.runtimes.append(rt)
        return rt

    def tearDown(self):
        for rt in self.runtimes:
            rt.stop()
            self.outputs.append(rt.log())
        super().tearDown()


class ScfParityTest(ScfTestCase):
    """The HTTP server and both event shapes answer alike, for every status
    the server has."""

    def start_pair(self, http_store, scf_store):
        args = ["--push-key", PUSH]
        # SCF is reached from elsewhere, a loopback serve is not: the latter
        # sends no CORS header unless asked (test_serve), so ask here.
        self.http = self.server(args + ["--cors-origin", "*"], store=http_store).start()
        self.rt = self.runtime(scf_store, args)

    def both(self, method, path, body=None, headers=None, base64_body=False, query=None,
             compare_body=True):
        """Sends one request to the HTTP server and as both event shapes to
        the runtime; asserts the three answers agree; returns the HTTP one."""
        raw = body
        if body is not None and not isinstance(body, (bytes, str)):
            raw = json.dumps(body)
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        h = dict(headers or {})
        qs = "?" + "&".join("%s=%s" % kv for kv in query.items()) if query else ""
        want = request(self.http.port, method, path + qs, body=raw, headers=h)
        what = "%s %s %s" % (method, path, h)

        events = [
            ("apigw", apigw_event(method, path, headers=h, query=query, body=raw,
                                  is_base64=base64_body), False),
            ("function-url", function_url_event(method, path, headers=h, query=query,
                                                body=raw.decode("utf-8") if raw else None), True),
        ]
        for kind, event, fu in events:
            status, got_headers, got_body = http_response(self.rt.invoke(event), function_url=fu)
            got_headers = {k.lower(): v for k, v in got_headers.items()}
            self.assertEqual(status, want.status, "%s: %s" % (kind, what))
            self.assertEqual({k: got_headers.get(k) for k in API_HEADERS},
                             {k: want.headers.get(k) for k in API_HEADERS}, "%s: %s" % (kind, what))
            self.assertIn("date", got_headers)
            if compare_body:
                self.assertEqual(got_body, want.body, "%s: %s" % (kind, what))
        return want

    def test_every_status_alike(self):
        tmp = self.tmp
        self.start_pair("sqlite:" + os.path.join(tmp, "http.db"),
                        "sqlite:" + os.path.join(tmp, "scf.db"))
        key = {"Authorization": "Bearer " + PUSH}
        rec = make_record(TOKEN)
        seen = set()

        def both(*a, **kw):
            r = self.both(*a, **kw)
            seen.add(r.status)
            return r

        self.assertEqual(both("GET", "/get-token").status, 404)                 # nothing stored
        self.assertEqual(both("GET", "/nowhere").status, 404)
        self.assertEqual(both("POST", "/get-token", rec).status, 401)           # no key
        self.assertEqual(both("POST", "/get-token", rec,
                              {"X-Api-Key": "wrong-key-123456"}).status, 403)
        self.assertEqual(both("POST", "/get-token", "{not json", key).status, 400)
        self.assertEqual(both("POST", "/get-token", {"access_token": TOKEN}, key).status, 400)
        self.assertEqual(both("POST", "/get-token", "", key).status, 400)
        self.assertEqual(both("POST", "/get-token", rec,
                              dict(key, **{"Content-Type": "multipart/form-data"})).status, 415)
        self.assertEqual(both("POST", "/get-token", "x" * 70000, key).status, 413)
        self.assertEqual(both("POST", "/get-token", rec, key).status, 200)      # stored
        self.assertEqual(both("POST", "/get-token", rec, key).status, 200)      # exact re-send
        older = make_record("t-older00000000000000000000", generated=rec["generated_timestamp"] - 60)
        self.assertEqual(both("POST", "/get-token", older, key).status, 409)
        r = both("GET", "/get-token", query={"a": "1"})
        self.assertEqual((r.status, r.json()["access_token"]), (200, TOKEN))
        self.assertEqual(both("GET", "/release/get-token").status, 200)
        self.assertEqual(both("GET", "/v1/tokens/default").status, 200)
        self.assertEqual(both("GET", "/v1/tokens/defaul%74").status, 200)      # %-decoded alike
        self.assertEqual(both("HEAD", "/get-token").status, 200)
        self.assertEqual(both("OPTIONS", "/get-token").status, 204)
        self.assertEqual(both("DELETE", "/get-token").status, 405)
        self.assertEqual(both("POST", "/healthz", "{}", key).status, 405)
        self.assertEqual(both("GET", "/healthz").status, 200)
        self.assertEqual(both("GET", "/readyz", compare_body=False).status, 200)
        self.assertEqual(both("GET", "/metrics", compare_body=False).status, 200)
        # Feishu rejected the current token, but nobody here refreshes.
        self.assertEqual(both("POST", "/v1/tokens/default/invalid", {"access_token": TOKEN}).status, 501)
        # A base64 body (API Gateway may deliver one) is the same record.
        newer = make_record("t-newer00000000000000000000", generated=rec["generated_timestamp"] + 1)
        self.assertEqual(both("POST", "/v1/tokens/b64", newer, key, base64_body=True).status, 200)
        r = both("GET", "/v1/tokens/b64")
        self.assertEqual(r.json()["access_token"], "t-newer00000000000000000000")
        # Repeated wrong keys from one address: 429 from every front door.
        for _ in range(12):
            r = both("POST", "/get-token", rec, {"Authorization": "Bearer guess-000000000"})
        self.assertEqual(r.status, 429)
        self.assertTrue({200, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429, 501} <= seen, seen)

    def test_store_errors_alike(self):
        """503 (store down) and 500 (store refuses the write), on Redis."""
        redis = RedisServer(self.tmp, password=REDIS_PW).start()
        self.addCleanup(redis.stop)
        self.start_pair(redis.url(db=0, prefix="http:"), redis.url(db=0, prefix="scf:"))
        key = {"Authorization": "Bearer " + PUSH}
        rec = make_record(TOKEN)
        self.assertEqual(self.both("POST", "/get-token", rec, key).status, 200)

        # Out of memory: Redis refuses the write, not for a moment.
        redis.cmd("CONFIG", "SET", "maxmemory", "1")
        newer = make_record(TOKEN + "2", generated=rec["generated_timestamp"] + 1)
        self.assertEqual(self.both("POST", "/get-token", newer, key).status, 500)
        redis.cmd("CONFIG", "SET", "maxmemory", "0")

        redis.kill9()
        # The cause in the text is the Redis client's own and depends on
        # timing (the connection closed under it, or refused anew): the
        # status and Retry-After must agree, the words may not.
        r = self.both("POST", "/get-token", newer, key, compare_body=False)
        self.assertEqual((r.status, r.headers.get("retry-after")), (503, "5"))
        r = self.both("GET", "/readyz", compare_body=False)
        self.assertEqual(r.status, 503)
        self.assertIn("degraded", r.json()["store"])
        r = self.both("GET", "/get-token")                                      # from memory
        self.assertEqual((r.status, r.json()["access_token"]), (200, TOKEN))


class ScfClientAddressTest(ScfTestCase):
    """The client of an event is what the platform states (API Gateway's
    requestContext.sourceIp, a Function URL's x-scf-remote-addr), never an
    X-Forwarded-For a client wrote -- unless the platform's address is a
    --trusted-proxy, the same rule as the HTTP front's."""

    def setUp(self):
        super().setUp()
        self.n = 0

    def send(self, rt, event):
        status, _, _ = http_response(rt.invoke(event), function_url="requestContext" not in event)
        return status

    def event(self, kind, key, xff, remote=None):
        rec = make_record(TOKEN, generated=int(time.time()) - 30 + self.n)
        self.n += 1
        headers = {"Authorization": "Bearer " + key, "X-Forwarded-For": xff}
        if kind == "apigw":
            return apigw_event("POST", "/get-token", headers=headers, body=json.dumps(rec).encode(),
                               source_ip=remote or "10.0.2.14")
        event = function_url_event("POST", "/get-token", headers=headers, body=json.dumps(rec))
        if remote:
            event["headers"]["x-scf-remote-addr"] = remote
        else:
            del event["headers"]["x-scf-remote-addr"]
        return event

    def test_forged_forwarded_for_is_not_the_client(self):
        rt = self.runtime("sqlite:" + os.path.join(self.tmp, "scf.db"), ["--push-key", PUSH])
        # A Function URL event without the platform's address: the forged
        # X-Forwarded-For (a new one each time) does not make a new client.
        for i in range(10):
            self.assertEqual(self.send(rt, self.event("url", "pk-guess-%d" % i, "192.0.2.%d" % i)), 403)
        self.assertEqual(self.send(rt, self.event("url", "pk-guess-x", "192.0.2.99")), 429)
        self.assertEqual(self.send(rt, self.event("url", PUSH, "192.0.2.98")), 200)
        # API Gateway and a Function URL that name the client: that one.
        for i in range(10):
            self.send(rt, self.event("apigw", "pk-guess-%d" % i, "192.0.2.%d" % (100 + i)))
            self.send(rt, self.event("url", "pk-guess-%d" % i, "192.0.2.%d" % (150 + i), "111.206.96.145"))
        self.assertEqual(self.send(rt, self.event("apigw", "pk-guess-y", "192.0.2.200")), 429)
        self.assertEqual(self.send(rt, self.event("url", "pk-guess-y", "192.0.2.201", "111.206.96.145")), 429)
        self.assertEqual(self.send(rt, self.event("apigw", "pk-guess-z", "192.0.2.200", "10.0.2.15")), 403)
        log = rt.log()
        self.assertIn("10.0.2.14 认证失败 10 次", log)
        self.assertIn("111.206.96.145 认证失败 10 次", log)
        self.assertIn("(来自 ?)", log)
        self.assertNotIn("192.0.2.", log)

    def test_trusted_proxy_applies_to_events_too(self):
        # The platform's address is a proxy the operator trusts (say, a CDN
        # in front of the gateway): its X-Forwarded-For names the client.
        rt = self.runtime("sqlite:" + os.path.join(self.tmp, "scf.db"),
                          ["--push-key", PUSH, "--trusted-proxy", "10.0.2.0/24"])
        self.assertEqual(self.send(rt, self.event("apigw", "pk-guess-1", "192.0.2.66, 198.51.100.7")), 403)
        self.assertIn("(来自 198.51.100.7)", rt.log())


class ScfRuntimeTest(ScfTestCase):
    def test_ready_has_a_body(self):
        """POST /runtime/init/ready carries " " as Tencent's sample bootstrap
        does: an empty one may never mark the instance ready (the double,
        like SCF, then never hands out an event)."""
        rt = self.runtime("memory:")
        ready = rt.double.requests_to("/runtime/init/ready")
        self.assertEqual([(r["method"], r["body"]) for r in ready], [("POST", " ")])
        self.assertEqual(rt.double.state()["empty_ready"], 0)

    def test_bad_events_are_invocation_errors(self):
        rt = self.runtime("sqlite:" + os.path.join(self.tmp, "scf.db"), ["--push-key", PUSH])
        cases = [
            ("this is not json", "不是 JSON"),
            ([1, 2, 3], "不是 JSON 对象"),
            ({"Type": "Timer", "TriggerName": "every-5m", "Time": "2024-01-15T14:30:00Z",
              "Message": ""}, "定时触发器需要飞书凭证"),
            ({"httpMethod": "GET"}, "不是 HTTP 请求"),
            (dict(apigw_event("POST", "/get-token"), body="%%%%", isBase64Encoded=True),
             "不是 base64"),
        ]
        for event, says in cases:
            with self.assertRaises(InvocationError) as cm:
                rt.invoke(event)
            self.assertIn(says, cm.exception.body)
        # Still serving after them.
        status, _, body = http_response(rt.invoke(apigw_event("GET", "/healthz")))
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))

    def test_malformed_host_is_a_bad_request(self):
        # One header map, two spellings of Host: two Host lines, 400 as on
        # the HTTP front (not the last spelling taken by the Host rule).
        rt = self.runtime("sqlite:" + os.path.join(self.tmp, "scf.db"),
                          ["--push-key", PUSH, "--allowed-host", "tokens.example.com"])
        for headers in ({"Host": "tokens.example.com", "host": "evil.example"},
                        {"Host": "evil.example", "HOST": "tokens.example.com"}):
            status, _, body = http_response(rt.invoke(apigw_event("GET", "/get-token", headers=headers)))
            self.assertEqual((status, json.loads(body)),
                             (400, {"error": "请求有 2 个 Host 头: 只能有一个 (RFC 9112)"}), headers)
        for event in (apigw_event("GET", "/get-token", headers={"Host": "tokens.example.com\x01"}),
                      function_url_event("GET", "/get-token", headers={"host": "tokens.example.com:70000"}),
                      apigw_event("GET", "/get-token", headers={"Host": 7})):
            status, _, body = http_response(rt.invoke(event), function_url="x-scf-remote-addr" in event["headers"])
            self.assertEqual(status, 400, event["headers"])
            self.assertIn("Host 头", json.loads(body)["error"])
        # U+0000 in Host: the event is not taken (jansson refuses it).
        with self.assertRaises(InvocationError):
            rt.invoke(apigw_event("GET", "/get-token", headers={"Host": "evil.example\x00tokens.example.com"}))
        status, _, _ = http_response(rt.invoke(apigw_event("GET", "/get-token", headers={"Host": "tokens.example.com"})))
        self.assertEqual(status, 404)           # answered: nothing stored

    def test_integrated_response_shape(self):
        rt = self.runtime("sqlite:" + os.path.join(self.tmp, "scf.db"), ["--push-key", PUSH])
        result = rt.invoke(apigw_event("GET", "/get-token"))
        self.assertEqual(set(result), {"isBase64Encoded", "statusCode", "headers", "body"})
        self.assertIs(result["isBase64Encoded"], False)
        self.assertEqual(result["statusCode"], 404)
        self.assertEqual(json.loads(result["body"]), {"error": "Token not found or expired"})
        self.assertEqual(result["headers"]["Content-Type"], "application/json; charset=utf-8")
        # The runtime waits for events however long SCF takes (no client timeout).
        time.sleep(3)
        self.assertEqual(rt.invoke(apigw_event("GET", "/healthz"))["statusCode"], 200)
        self.assertIsNone(rt.proc.poll())

    def test_start_failure_is_reported_to_scf(self):
        d = ScfRuntimeDouble().start()
        self.addCleanup(d.stop)
        env = dict(os.environ, **d.runtime_env())
        p = subprocess.run([BIN, "scf-runtime", "--store", "redis://127.0.0.1:1/0"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.outputs.append(p.stdout + p.stderr)
        self.assertEqual(p.returncode, 1)
        self.assertIn("无法连接 Redis", d.init_error or "")
        self.assertFalse(d.init_ready)

    def test_outside_scf_says_so(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCF_RUNTIME_API")}
        p = subprocess.run([BIN, "scf-runtime"], env=env, capture_output=True, text=True, timeout=30)
        self.outputs.append(p.stdout + p.stderr)
        self.assertEqual(p.returncode, 2)
        self.assertIn("SCF_RUNTIME_API", p.stderr)
        self.assertIn("tokendist serve", p.stderr)

    def test_runtime_api_gone_exits(self):
        rt = self.runtime("sqlite:" + os.path.join(self.tmp, "scf.db"))
        rt.double.stop()
        self.assertEqual(rt.proc.wait(60), 1)
        self.assertIn("SCF 运行时 API 不可用", rt.log())


class ScfEventShapesTest(FeishuEnv, ScfTestCase):
    """Every event shape SCF delivers to a function that holds the Feishu
    secret itself (the simplest deployment, --store memory:): API Gateway
    with and without the stage in `path`, a Function URL, a Timer trigger,
    and what is none of them.  Every answer is an integrated response whose
    text body travels as text (isBase64Encoded false): the handler's bodies
    are UTF-8 JSON; a body that is not UTF-8 would go base64 (unit test
    test_scf.c, test_response)."""

    def answer(self, rt, event, function_url=False):
        result = rt.invoke(event)
        self.assertIsInstance(result, dict)
        self.assertIs(result["isBase64Encoded"], False)
        status, headers, body = http_response(result, function_url=function_url)
        return status, json.loads(body)

    def test_each_shape(self):
        self.start_feishu()
        env = self.feishu_env(FEISHU_CHAT_ID="")
        rt = self.runtime("memory:", env=env)
        # A cold start fetches its own token; wait until it is served.
        self.wait_for(lambda: self.answer(rt, apigw_event("GET", "/get-token"))[0] == 200,
                      what="the first token")
        token = self.feishu.current_token()
        # API Gateway: the docs' example strips the stage ("/get-token"),
        # a gateway path mapped without that keeps it ("/release/get-token").
        for path in ("/release/get-token", "/get-token"):
            status, body = self.answer(rt, apigw_event("GET", path, stage="release"))
            self.assertEqual((status, body["access_token"]), (200, token), path)
        # A Function URL: lower-case headers, no requestContext.
        status, body = self.answer(rt, function_url_event("GET", "/get-token"), function_url=True)
        self.assertEqual((status, body["access_token"]), (200, token))
        # A Timer trigger right after the cold start's fetch: nothing due.
        timer = {"Type": "Timer", "TriggerName": "every-5m", "Time": "2024-01-15T14:30:00Z",
                 "Message": ""}
        self.assertEqual(rt.invoke(timer), {"refreshed": False, "message": "未到刷新时间"})
        # Garbage: an invocation error each, and the runtime goes on.
        for event, says in ((b"\xff\xfe\x00garbage", "不是 JSON"), (b"", "不是 JSON"),
                            ("null", "不是 JSON"), ("[]", "不是 JSON 对象"), ({}, "不是 HTTP 请求"),
                            ({"Type": "COS", "Records": []}, "不是 HTTP 请求")):
            with self.assertRaises(InvocationError, msg=repr(event)) as cm:
                rt.invoke(event)
            self.assertIn(says, cm.exception.body, repr(event))
        status, body = self.answer(rt, apigw_event("GET", "/get-token"))
        self.assertEqual((status, body["access_token"]), (200, token))
        self.assertEqual(len(self.feishu.requests_to("/open-apis/auth/v3/")), 1)


if __name__ == "__main__":
    unittest.main()
