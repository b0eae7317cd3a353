"""docs/openapi.json against the running server: every documented
operation is called, and each answer's status, headers, content type and
body must be documented for that operation and match its schema; every
documented (path, method, status) must be seen here or be named below as
not provokable; and every path the server answers is documented.

The spec is JSON rather than YAML so that this test (Python standard
library only) reads it with json, not with a home-made YAML subset parser.
"""
import json
import os
import re
import sqlite3
import time
import unittest
from urllib.parse import unquote

import harness
from feishu_env import FeishuEnv
from harness import ROOT, TestCase, make_record, request
from redisd import SharedRedis

SPEC_PATH = os.path.join(ROOT, "docs", "openapi.json")
PUSH = "pk-openapi-7c1e2d3f4a5b6c7d8e"
READ = "rk-openapi-0a9b8c7d6e5f"
TOKEN = "t-g1044openapiTokenAAAAAAAAAA"
TENANT = "t-tenantOpenapi000000000000001"
METHODS = ("get", "post", "options")
# A loopback listener sends Access-Control-Allow-Origin only when asked
# (the spec marks the header optional): the servers here ask, so that it is
# checked; the refresher's server does not, and call() checks it sends none.
CORS = ["--cors-origin", "*"]

# Documented answers this test cannot provoke without breaking the store
# under a running server; each is covered elsewhere as named.
NOT_PROVOKED = {
    ("/release/get-token", "post", "500"): "a store failing for good: the full disk of test_limits.py",
    ("/get-token", "post", "500"): "a store failing for good: test_limits.py",
    ("/v1/tokens/{name}", "post", "500"): "a store failing for good: test_limits.py",
    ("/readyz", "get", "503"): "a store that does not answer: Redis down in test_redis.py",
    ("/v1/tokens/{name}/history", "get", "503"): "a store that does not answer: Redis down in test_redis.py",
    ("/status", "get", "503"): "every store worker busy (256 requests waiting): td_api_busy, as for /readyz",
    ("/status.json", "get", "503"): "every store worker busy (256 requests waiting): td_api_busy, as for /readyz",
}


def load_spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        return json.load(f)


SPEC = load_spec()


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        assert node["$ref"].startswith("#/"), node["$ref"]
        target = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def schema_errors(value, schema, where="$"):
    """The ways value breaks schema (the OpenAPI 3.0 subset the spec uses)."""
    s = resolve(schema)
    errs = []
    if value is None and s.get("nullable"):
        return []
    if "oneOf" in s:
        fits = [sub for sub in s["oneOf"] if not schema_errors(value, sub, where)]
        return [] if len(fits) == 1 else ["%s: %r fits %d of the oneOf schemas" % (where, value, len(fits))]
    t = s.get("type")
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t == "integer":
        if not (isinstance(value, int) and not isinstance(value, bool)):
            return ["%s: %r is not an integer" % (where, value)]
    elif t == "number":
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return ["%s: %r is not a number" % (where, value)]
    elif t in kinds and not isinstance(value, kinds[t]):
        return ["%s: %r is not a %s" % (where, value, t)]
    if "enum" in s and value not in s["enum"]:
        errs.append("%s: %r not one of %r" % (where, value, s["enum"]))
    if isinstance(value, str):
        if "pattern" in s and not re.search(s["pattern"], value):
            errs.append("%s: %r does not match %s" % (where, value, s["pattern"]))
        if len(value) < s.get("minLength", 0) or len(value) > s.get("maxLength", len(value)):
            errs.append("%s: length %d out of bounds" % (where, len(value)))
    if isinstance(value, dict):
        props = s.get("properties", {})
        for k in s.get("required", []):
            if k not in value:
                errs.append("%s: required field %r missing" % (where, k))
        extra = s.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errs += schema_errors(v, props[k], "%s.%s" % (where, k))
            elif extra is False:
                errs.append("%s: field %r is not documented" % (where, k))
            elif isinstance(extra, dict):
                errs += schema_errors(v, extra, "%s.%s" % (where, k))
    if isinstance(value, list) and "items" in s:
        for i, v in enumerate(value):
            errs += schema_errors(v, s["items"], "%s[%d]" % (where, i))
    return errs


def match(path):
    """(template, parameters fit their schemas) for the documented path
    template that path falls under as the server decodes it, or (None, None).
    A parameter outside its schema gets 400 (info.description)."""
    path = unquote(path.split("?", 1)[0])
    for tpl, item in SPEC["paths"].items():
        params = {p["name"]: resolve(p)["schema"] for p in map(resolve, resolve(item).get("parameters", []))}
        rx = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(tpl))
        m = re.fullmatch(rx, path)
        if m:
            return tpl, all(not schema_errors(v, params[k]) for k, v in m.groupdict().items())
    return None, None


def template_of(path):
    return match(path)[0]


def operations():
    for tpl, item in SPEC["paths"].items():
        for method in METHODS:
            if method in resolve(item):
                yield tpl, method, resolve(item)[method]


class OpenApiTest(FeishuEnv, TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, READ, TOKEN, TENANT]
        self.seen = set()

    def db(self, name):
        return "sqlite:" + os.path.join(self.tmp, name + ".db")

    def call(self, srv, method, path, body=None, key=None, headers=None, want=None):
        """One request, checked against the spec; returns the response."""
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        r = request(srv.port, method, path, body=body, headers=h)
        tpl = template_of(path)
        self.assertIsNotNone(tpl, "%s %s answered %d but the path is not documented" % (method, path, r.status))
        op_method = "get" if method == "HEAD" else method.lower()
        item = resolve(SPEC["paths"][tpl])
        if op_method not in item:
            self.assertEqual(r.status, 405, "%s %s" % (method, path))
            op_method = next(m for m in METHODS if m in item and "405" in item[m]["responses"])
        op = item[op_method]
        status = str(r.status)
        ctx = "%s %s -> %s" % (method, path, status)
        self.assertTrue(status in op["responses"], "%s: status not documented (documented: %s)"
                        % (ctx, ", ".join(op["responses"])))
        if want is not None:
            self.assertEqual(r.status, want, ctx + ": " + r.body.decode(errors="replace"))
        doc = resolve(op["responses"][status])
        for name, hspec in doc.get("headers", {}).items():
            hspec = resolve(hspec)
            value = r.headers.get(name.lower())
            if hspec.get("required"):
                self.assertIsNotNone(value, ctx + ": header %s missing" % name)
            if name == "Access-Control-Allow-Origin":   # optional: sent when asked for (CORS above)
                self.assertEqual(value is not None, "--cors-origin" in srv.args, ctx + ": " + name)
            if value is not None:
                self.assertEqual(schema_errors(value, hspec["schema"]), [], ctx + " header " + name)
        content = doc.get("content")
        if method == "HEAD":
            self.assertEqual(r.body, b"", ctx)
        elif content is None:
            self.assertEqual(r.body, b"", ctx + ": body where none is documented")
        else:
            ct = r.headers.get("content-type")
            self.assertIn(ct, content, ctx + ": content type")
            body = r.body.decode("utf-8")
            value = json.loads(body) if ct.startswith("application/json") else body
            self.assertEqual(schema_errors(value, content[ct]["schema"]), [], ctx + ": " + body[:300])
        self.seen.add((tpl, op_method, status))
        return r

    def test_every_documented_response(self):
        self.assertTrue(SPEC["openapi"].startswith("3.0."))
        a = self.server(["--push-key", PUSH] + CORS, store=self.db("a")).start()
        b = self.server(["--push-key", PUSH, "--read-key", READ] + CORS, store=self.db("b")).start()
        now = int(time.time())
        # /get-token and /release/get-token are one token ("default"): the
        # second gets a newer record and no first 404.
        for i, path in enumerate(("/v1/tokens/openapi", "/release/get-token", "/get-token")):
            rec = make_record(TOKEN, generated=now - 10 + i, tenant_access_token=TENANT)
            if path != "/get-token":
                self.call(a, "GET", path, want=404)
            self.call(a, "POST", path, rec, want=401)
            self.call(a, "POST", path, rec, key="pk-wrong", want=403)
            self.call(a, "POST", path, "", key=PUSH, want=400)
            self.call(a, "POST", path, "[1, 2]", key=PUSH, want=400)
            self.call(a, "POST", path, json.dumps(rec), key=PUSH,
                      headers={"Content-Type": "multipart/form-data; boundary=x"}, want=415)
            self.call(a, "POST", path, "x" * 70000, key=PUSH, want=413)
            self.call(a, "POST", path, rec, key=PUSH, want=200)
            self.call(a, "POST", path, make_record(TOKEN + "old", generated=now - 60), key=PUSH, want=409)
            db = sqlite3.connect(os.path.join(self.tmp, "a.db"), timeout=1, isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")   # the store is busy: 503, retry
            try:
                self.call(a, "POST", path, make_record(TOKEN, generated=now + 30), key=PUSH, want=503)
            finally:
                db.execute("ROLLBACK")
                db.close()
            self.call(a, "GET", path, want=200)
            self.call(a, "HEAD", path, want=200)
            self.call(a, "PUT", path, want=405)
            self.call(a, "OPTIONS", path, want=204)
            self.call(b, "GET", path, want=401)
            self.call(b, "GET", path, key="rk-wrong", want=403)
            self.call(b, "GET", path, key=READ, want=404)

        # A name outside [a-z0-9_]{1,64}: 400 before the method and keys.
        for bad in ("/v1/tokens/Open.API", "/v1/tokens/" + "x" * 65, "/v1/tokens/%2e%2e"):
            self.call(a, "GET", bad, want=400)
            self.call(a, "HEAD", bad, want=400)
            self.call(b, "GET", bad, want=400)
            self.call(a, "POST", bad, rec, key=PUSH, want=400)
            self.call(a, "GET", bad + "/history", key=PUSH, want=400)
            self.call(a, "POST", bad + "/invalid", {"access_token": TOKEN}, want=400)

        hist = "/v1/tokens/openapi/history"
        self.call(a, "GET", hist, want=401)
        self.call(a, "GET", hist, key="pk-wrong", want=403)
        self.call(b, "GET", hist, key=READ, want=403)      # the push key, not the read key
        h = self.call(a, "GET", hist, key=PUSH, want=200).json()
        self.assertEqual([e["current"] for e in h["history"]], [True])   # the 409's record was not stored
        self.call(a, "HEAD", hist, key=PUSH, want=200)
        self.call(a, "GET", "/v1/tokens/never_stored/history", key=PUSH, want=200)
        self.call(a, "POST", hist, "{}", key=PUSH, want=405)
        self.call(a, "OPTIONS", hist, want=204)

        inv = "/v1/tokens/openapi/invalid"
        self.call(a, "POST", inv, {}, want=400)
        self.call(a, "POST", inv, {"access_token": TOKEN}, want=501)
        self.call(a, "POST", inv, {"access_token": TENANT}, want=501)   # the record's tenant token counts too
        self.call(a, "POST", inv, {"access_token": "t-someOlderToken000000"}, want=200)
        self.call(a, "POST", "/v1/tokens/nothing_here/invalid", {"access_token": TOKEN}, want=404)
        self.call(a, "POST", inv, "x" * 70000, want=413)
        self.call(a, "POST", inv, "{}", headers={"Content-Type": "application/octet-stream"}, want=415)
        self.call(a, "GET", inv, want=405)
        self.call(a, "OPTIONS", inv, want=204)
        self.call(b, "POST", inv, {"access_token": TOKEN}, want=401)
        self.call(b, "POST", inv, {"access_token": TOKEN}, key="rk-wrong", want=403)

        for path in ("/healthz", "/readyz", "/metrics", "/status", "/status.json"):
            self.call(a, "GET", path, want=200)
            self.call(a, "HEAD", path, want=200)
            self.call(a, "POST", path, "{}", want=405)
            self.call(a, "OPTIONS", path, want=204)
        # With a read key the page comes without facts; its JSON needs the
        # key (a server of its own: b's failures feed the guard below).
        k = self.server(["--read-key", READ] + CORS, store=self.db("k")).start()
        self.assertNotIn("class=\"card\"", self.call(k, "GET", "/status", want=200).body.decode())
        self.call(k, "GET", "/status.json", want=401)
        self.call(k, "GET", "/status.json", key="rk-wrong", want=403)
        self.call(k, "GET", "/status.json", key=READ, want=200)

        # The failure guard: ten wrong keys from one address, then 429 for
        # that address's wrong keys on every keyed route of that server;
        # its right keys still pass.
        for _ in range(10):
            request(a.port, "POST", "/get-token", body="{}", headers={"Authorization": "Bearer pk-wrong"})
            request(b.port, "GET", "/get-token", headers={"Authorization": "Bearer rk-wrong"})
        for path in ("/release/get-token", "/get-token", "/v1/tokens/openapi"):
            self.call(a, "POST", path, rec, key="pk-wrong", want=429)
            self.assertIn(self.call(a, "POST", path, rec, key=PUSH).status, (200, 409))
            self.call(b, "GET", path, key="rk-wrong", want=429)
            self.call(b, "GET", path, key=READ, want=404)
        self.call(b, "POST", inv, {"access_token": TOKEN}, key="rk-wrong", want=429)
        self.call(b, "GET", "/status.json", key="rk-wrong", want=429)
        self.call(b, "GET", "/status.json", key=READ, want=200)
        self.call(b, "POST", inv, {"access_token": TOKEN}, key=READ, want=404)
        self.call(a, "GET", hist, key="pk-wrong", want=429)
        self.call(a, "GET", hist, key=PUSH, want=200)

        # A Host that is not the loopback's (DNS rebinding): 421 on every
        # operation but /healthz.
        for tpl, method, _ in operations():
            if tpl == "/healthz":
                continue
            path = tpl.replace("{name}", "openapi")
            self.call(a, method.upper(), path, "{}" if method == "post" else None, key=PUSH,
                      headers={"Host": "rebind.example:%d" % a.port}, want=421)
        self.call(a, "GET", "/healthz", headers={"Host": "rebind.example"}, want=200)
        # Two Host lines (here both the loopback's): 400 on every operation,
        # /healthz too, before the rule and the keys.
        for tpl, method, _ in operations():
            path = tpl.replace("{name}", "openapi")
            self.call(a, method.upper(), path, "{}" if method == "post" else None, key=PUSH,
                      headers={"Host": "localhost:%d" % a.port, "host": "127.0.0.1:%d" % a.port}, want=400)

        # What another tool left in the store: a history entry that is no
        # record, a row that cannot be served (/readyz lists it); then a
        # store that fails to read the history (500).
        d = self.server(["--push-key", PUSH] + CORS, store=self.db("d")).start()
        self.call(d, "POST", "/v1/tokens/openapi", make_record(TOKEN, generated=now), key=PUSH, want=200)
        db = sqlite3.connect(os.path.join(self.tmp, "d.db"), timeout=10, isolation_level=None)
        try:
            db.execute("INSERT INTO history (name, json, generated_ts, expire_ts, stored_at) "
                       "VALUES ('openapi', '{\"not\": \"a record\"}', ?, ?, ?)", (now + 1, now + 100, now))
            db.execute("INSERT INTO tokens (name, json, generated_ts, expire_ts, stored_at) "
                       "VALUES ('broken', 'not json', ?, ?, ?)", (now, now + 100, now))
            h = self.call(d, "GET", hist, key=PUSH, want=200).json()["history"]
            self.assertEqual(["problem" in e for e in h], [True, False], h)
            self.wait_for(lambda: d.get("/readyz").json()["unreadable_records"] == 1, what="the unreadable row")
            self.assertEqual([u["name"] for u in self.call(d, "GET", "/readyz", want=200).json()["unreadable"]],
                             ["broken"])
            db.execute("DROP TABLE history")
            self.call(d, "GET", hist, key=PUSH, want=500)
        finally:
            db.close()

        # A server that runs the refresher: the report's outcomes.  No
        # --cors-origin here: a bare loopback listener sends no
        # Access-Control-Allow-Origin (call() checks).
        self.start_feishu()
        env = self.feishu_env(TENCENT_CLOUD_ENABLED="false", TOKENDIST_HTTP_TIMEOUT="10")
        report = "/v1/tokens/default/invalid"
        c = self.server(env=env, store=self.db("c")).start()
        tok = self.wait_for(lambda: (c.get("/v1/tokens/default").json() or {}).get("access_token"),
                            what="the refresher's first token")
        # Feishu answers the forced fetch after 5 s: it still runs when the
        # report's wait (4 s) ends, 202; a second report shares that fetch
        # and gets its outcome, Feishu's same token, 409.
        self.feishu.control({"fail": "slow", "delay": 5, "times": 1, "path": "/open-apis/auth/v3/"})
        self.call(c, "POST", report, {"access_token": tok}, want=202)
        self.call(c, "POST", report, {"access_token": tok}, want=409)
        state = self.call(c, "GET", "/readyz", want=200).json()["refresh"]["default"]
        self.assertEqual((state["lease_held"], state["forced"]), (True, 1), state)
        # Feishu fails the forced fetch of a second such server: 502.
        c2 = self.server(env=env, store=self.db("c2")).start()
        self.wait_for(lambda: c2.get("/v1/tokens/default").status == 200, what="the second refresher's token")
        self.feishu.control({"fail": "500", "times": 1, "path": "/open-apis/auth/v3/"})
        self.call(c2, "POST", report, {"access_token": tok}, want=502)
        # A fleet on Redis where no server holds the refresh lease: 503.
        redis = SharedRedis(self.tmp)
        self.addCleanup(redis.close)
        r = self.server(["--push-key", PUSH] + CORS, store=redis.url()).start()
        self.call(r, "POST", "/v1/tokens/default", make_record(TOKEN), key=PUSH, want=200)
        self.call(r, "POST", report, {"access_token": TOKEN}, want=503)

        # The facts of a server that refreshes: its refresher's part as
        # documented (StatusRefresh: sinks, events, next refresh).
        facts = self.call(c, "GET", "/status.json", want=200).json()
        self.assertEqual([k["sink"] for k in facts["tokens"][0]["refresh"]["sinks"]], ["local"])
        # /metrics has every series its description names.
        text = self.call(c, "GET", "/metrics", want=200).body.decode()
        named = set(re.findall(r"tokendist_\w+", resolve(SPEC["paths"]["/metrics"])["get"]["description"]))
        self.assertEqual(sorted(n for n in named if not re.search(r"(?m)^%s[{ ]" % n, text)), [])
        self.assertIn('route="history"', a.get("/metrics").body.decode())

        documented = {(tpl, m, s) for tpl, m, op in operations() for s in op["responses"]}
        self.assertEqual(sorted(set(NOT_PROVOKED) - documented), [], "NOT_PROVOKED names undocumented answers")
        self.assertEqual(sorted(documented - self.seen - set(NOT_PROVOKED)), [],
                         "documented answers this test never saw")

    def test_every_answered_path_is_documented(self):
        a = self.server(["--push-key", PUSH]).start()
        self.assertEqual(a.post("/release/get-token", make_record(TOKEN), key=PUSH).status, 200)
        probes = ["/", "/release", "/release/", "/release/get-token", "/release/get-token/",
                  "/release/get-token/x", "/get-token", "/get-token/x", "/v1", "/v1/tokens", "/v1/tokens/",
                  "/v1/tokens/default", "/v1/tokens/a.b_c-D9", "/v1/tokens/..", "/v1/tokens/.",
                  "/v1/tokens/" + "x" * 64, "/v1/tokens/" + "x" * 65, "/v1/tokens/a%2Fb",
                  "/v1/tokens/default/invalid", "/v1/tokens/default/invalid/", "/v1/tokens/default/other",
                  "/v1/tokens/default/history", "/v1/tokens/default/history/", "/v1/tokens/Default",
                  "/v1/tokens/a.b/invalid", "/v1/tokens/a-b/history", "/v1/tokens/A/other", "/v1/tokens/%2e%2e",
                  "/healthz", "/healthz/", "/readyz", "/metrics", "/metrics/x", "/favicon.ico",
                  "/status", "/status/", "/status.json", "/status.html", "/status.json/x", "/STATUS",
                  "/index.html", "/release/get-token?x=1", "/RELEASE/GET-TOKEN"]
        for path in probes:
            for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                r = request(a.port, method, path, body="{}" if method == "POST" else None,
                            headers={"Authorization": "Bearer " + PUSH})
                tpl, params_fit = match(path)
                ctx = "%s %s -> %d" % (method, path, r.status)
                if method == "OPTIONS":
                    self.assertEqual(r.status, 204, ctx)   # on any path, as info.description says
                elif tpl is None:
                    self.assertEqual(r.status, 404, ctx + ": an undocumented path answers")
                    if method != "HEAD":
                        self.assertEqual(r.json(), {"error": "Not found"}, ctx)
                elif not params_fit:
                    # A name outside the rule: 400 whatever the method (info.description).
                    self.assertEqual(r.status, 400, ctx)
                    if method != "HEAD":
                        msg = r.json()["message" if method == "POST" else "error"]
                        self.assertTrue(msg.startswith("token 名称无效: 应为 "), ctx)
                else:
                    item = resolve(SPEC["paths"][tpl])
                    op = "get" if method == "HEAD" else method.lower()
                    if op in item:
                        self.assertIn(str(r.status), item[op]["responses"], ctx)
                    else:
                        self.assertEqual(r.status, 405, ctx + ": an undocumented method answers")
                        allowed = ", ".join(m.upper() for m in METHODS if m in item)
                        self.assertEqual(r.headers.get("allow"), allowed, ctx)


if __name__ == "__main__":
    unittest.main()
