"""Self-tests of the local doubles, so that a broken double is caught before it
misleads a black-box test of tokendist.  ctest runs them as
``doubles.test_doubles``; by hand:

    python3 -m unittest discover -s tests/doubles
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import dingtalk
import feishu
import gitee
import scf_runtime
import wechat
import wecom
from dingtalk import DingTalkDouble
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble
from gitee import DEFAULT_TOKEN, GiteeDouble
from scf_runtime import InvocationError, ScfRuntimeDouble
from wechat import WeChatDouble
from wecom import WeComDouble

HERE = os.path.dirname(os.path.abspath(__file__))


def call(method, url, body=None, headers=None, timeout=5):
    """One request; returns (status, headers, raw body), HTTP errors included."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json; charset=utf-8",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def jcall(*args, **kwargs):
    status, _, raw = call(*args, **kwargs)
    return status, json.loads(raw)


class FeishuTest(unittest.TestCase):
    TOKEN = "/open-apis/auth/v3/app_access_token/internal"
    MESSAGES = "/open-apis/im/v1/messages"

    def setUp(self):
        self.d = FeishuDouble().start()
        self.addCleanup(self.d.stop)

    def fetch(self, secret=DEFAULT_APP_SECRET):
        return jcall("POST", self.d.url + self.TOKEN,
                     {"app_id": DEFAULT_APP_ID, "app_secret": secret})

    def api(self, method, path, token, body=None):
        return call(method, self.d.url + path, body, {"Authorization": f"Bearer {token}"})

    def test_token_renewal_window_and_expiry(self):
        self.d.control({"ttl": 100, "renew_window": 30})
        status, first = self.fetch()
        self.assertEqual((status, first["code"], first["msg"], first["expire"]),
                         (200, 0, "ok", 100))
        self.assertRegex(first["app_access_token"], r"^t-[A-Za-z0-9]{40}$")
        self.assertEqual(first["app_access_token"], first["tenant_access_token"])
        self.d.control({"advance": 60})             # 40 s left: outside the window
        _, same = self.fetch()
        self.assertEqual((same["tenant_access_token"], same["expire"]),
                         (first["tenant_access_token"], 40))
        self.d.control({"advance": 15})             # 25 s left: inside the window
        _, new = self.fetch()
        self.assertNotEqual(new["tenant_access_token"], first["tenant_access_token"])
        self.assertEqual(new["expire"], 100)
        self.assertTrue(self.d.token_valid(first["tenant_access_token"]))  # both valid
        self.d.control({"advance": 30})             # the first one expired
        status, _, raw = self.api("GET", self.MESSAGES + "?container_id_type=chat&container_id=x",
                                  first["tenant_access_token"])
        self.assertEqual((status, json.loads(raw)["code"]), (400, 99991663))
        self.assertEqual((self.d.token_fetches, self.d.tokens_minted), (3, 2))

    def test_clock_file_moves_the_double_with_tokendist(self):
        path = os.path.join(tempfile.mkdtemp(prefix="clock-"), "clock")
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        self.d.control({"ttl": 100, "renew_window": 30, "clock_file": path})
        _, first = self.fetch()                     # no file yet: offset 0
        with open(path + ".tmp", "w") as f:
            f.write("75000\n")                      # 75 s, in ms: 25 s left
        os.replace(path + ".tmp", path)
        _, new = self.fetch()
        self.assertNotEqual(new["tenant_access_token"], first["tenant_access_token"])
        logged = self.d.requests_to(self.TOKEN)
        self.assertAlmostEqual(logged[1]["now"] - logged[1]["time"], 75, delta=1)
        self.d.control({"clock_file": None})
        self.assertLess(abs(self.d.now() - time.time()), 1)

    def test_token_errors(self):
        self.assertEqual(self.fetch("wrong")[1], {"code": 10014, "msg": "app secret invalid"})
        self.assertEqual(jcall("POST", self.d.url + self.TOKEN, {"app_id": DEFAULT_APP_ID})[1],
                         {"code": 10003, "msg": "invalid param"})
        self.assertEqual(self.d.tokens_minted, 0)

    def test_faults_then_recovery(self):
        self.d.control({"faults": [{"fail": "500", "times": 1},
                                   {"fail": "502", "times": 1, "body": "html"},
                                   {"fail": "429", "times": 1, "reset_after": 7},
                                   {"fail": "garbage", "times": 1},
                                   {"fail": "code", "times": 1, "code": 99991400, "msg": "busy"}]})
        self.assertEqual(call("POST", self.d.url + self.TOKEN, {})[0], 500)
        status, headers, raw = call("POST", self.d.url + self.TOKEN, {})
        self.assertEqual((status, headers["Content-Type"]), (502, "text/html"))
        status, headers, raw = call("POST", self.d.url + self.TOKEN, {})
        self.assertEqual((status, headers["x-ogw-ratelimit-reset"]), (429, "7"))
        self.assertEqual(json.loads(raw)["code"], 99991400)
        self.assertRaises(ValueError, json.loads, call("POST", self.d.url + self.TOKEN, {})[2])
        self.assertEqual(self.fetch()[1], {"code": 99991400, "msg": "busy"})
        self.assertEqual(self.fetch()[1]["code"], 0)
        self.assertEqual([r["fault"] for r in self.d.requests],
                         ["500", "502", "429", "garbage", "code", None])

    def test_slow_and_close(self):
        self.d.control({"fail": "slow", "delay": 0.3, "times": 1})
        started = time.monotonic()
        self.assertEqual(self.fetch()[1]["code"], 0)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.d.control({"fail": "close", "times": 1, "path": "/open-apis/auth/"})
        with self.assertRaises((http.client.RemoteDisconnected, urllib.error.URLError,
                                ConnectionError)):
            self.fetch()
        self.assertEqual(self.fetch()[1]["code"], 0)

    def test_send_message(self):
        token = self.fetch()[1]["tenant_access_token"]
        self.d.control({"chats": ["oc_group"]})
        path = self.MESSAGES + "?receive_id_type=chat_id"
        ok = {"receive_id": "oc_group", "msg_type": "text",
              "content": json.dumps({"text": "你好"})}
        status, _, raw = self.api("POST", path, token, ok)
        body = json.loads(raw)
        self.assertEqual((status, body["code"]), (200, 0))
        self.assertTrue(body["data"]["message_id"].startswith("om_"))
        self.assertEqual(self.d.sent_texts, ["你好"])
        as_object = dict(ok, content={"text": "x"})  # content must be a JSON string
        self.assertEqual(self.api("POST", path, token, as_object)[0], 400)
        status, _, raw = self.api("POST", path, token, dict(ok, receive_id="oc_other"))
        self.assertEqual((status, json.loads(raw)["code"]), (400, 230002))
        status, raw = jcall("POST", self.d.url + path, ok)   # no Authorization
        self.assertEqual((status, raw["code"]), (400, 99991661))
        self.d.control({"invalidate": [token], "invalid_code": 99991664})
        self.assertEqual(json.loads(self.api("POST", path, token, ok)[2])["code"], 99991664)
        self.assertEqual(len(self.d.sent), 1)

    def test_list_pagination_and_time_filter(self):
        token = self.fetch()[1]["tenant_access_token"]
        base = 1705300000000
        files = [{"name": f"财联社电报_2024-01-{10 + i}.txt", "data": f"day {i}",
                  "create_time": base + i * 1000} for i in range(5)]
        seeded = self.d.control({"chat": "oc_news", "files": files,
                                 "texts": [{"text": "note", "create_time": base + 500}]})["seeded"]
        self.assertEqual(len(seeded), 6)
        got, token_q = [], ""
        for _ in range(5):
            status, _, raw = self.api("GET", self.MESSAGES + "?container_id_type=chat&container_id"
                                      f"=oc_news&page_size=2&start_time={base // 1000 + 1}"
                                      f"&end_time={base // 1000 + 3}{token_q}", token)
            data = json.loads(raw)["data"]
            got += data["items"]
            if not data["has_more"]:
                self.assertNotIn("page_token", data)
                break
            token_q = "&page_token=" + data["page_token"]
        self.assertEqual([json.loads(m["body"]["content"])["file_name"] for m in got],
                         [f["name"] for f in files[1:4]])
        self.assertEqual(got[0]["create_time"], str(base + 1000))
        self.assertEqual(self.api("GET", self.MESSAGES + "?container_id_type=chat&container_id="
                                  "oc_news&page_size=51", token)[0], 400)

    def test_download(self):
        token = self.fetch()[1]["tenant_access_token"]
        data = bytes(range(256)) * 10
        seeded = self.d.control({"chat": "oc_news", "files": [
            {"name": "财联社电报_2024-01-15.txt",
             "data_b64": base64.b64encode(data).decode()}]})
        mid, key = seeded["seeded"][0]["message_id"], seeded["seeded"][0]["file_key"]
        path = f"{self.MESSAGES}/{mid}/resources/{key}?type=file"
        status, headers, raw = self.api("GET", path, token)
        self.assertEqual((status, raw, headers["Content-Type"]),
                         (200, data, "application/octet-stream"))
        self.assertIn("filename*=UTF-8''%E8%B4%A2", headers["Content-Disposition"])
        self.d.control({"fail": "cut", "times": 1, "path": self.MESSAGES + "/"})
        with self.assertRaises(http.client.IncompleteRead):
            self.api("GET", path, token)
        self.assertEqual(self.d.downloads, {key: 2})
        self.assertEqual(json.loads(self.api("GET", path.replace(key, "file_v2_x"), token)[2])
                         ["code"], 234003)

    def test_webhook_signature(self):
        self.d.control({"hooks": {"signed": "hook-secret"}})
        url = self.d.url + "/open-apis/bot/v2/hook/signed"
        ts = str(int(time.time()))
        msg = {"timestamp": ts, "sign": feishu.webhook_sign(ts, "hook-secret"),
               "msg_type": "text", "content": {"text": "token renewed"}}
        self.assertEqual(jcall("POST", url, msg)[1]["code"], 0)
        self.assertEqual(jcall("POST", url, dict(msg, sign="AAAA"))[1]["code"], 19021)
        old = str(int(time.time()) - 7200)
        stale = dict(msg, timestamp=old, sign=feishu.webhook_sign(old, "hook-secret"))
        self.assertEqual(jcall("POST", url, stale)[1]["code"], 19021)
        unsigned = {"msg_type": "text", "content": {"text": "plain"}}
        self.assertEqual(jcall("POST", self.d.url + "/open-apis/bot/v2/hook/test-hook",
                               unsigned)[1]["code"], 0)
        self.assertEqual(self.d.hook_texts, ["token renewed", "plain"])

    def test_control_over_http_rejects_unknown_keys(self):
        status, body = jcall("POST", self.d.url + "/_control", {"fial": "500"})
        self.assertEqual((status, body["ok"]), (400, False))
        self.fetch()
        status, log = jcall("GET", self.d.url + "/_requests?path=/open-apis/auth")
        self.assertEqual((status, len(log), log[0]["json"]["app_id"]), (200, 1, DEFAULT_APP_ID))
        self.assertEqual(jcall("GET", self.d.url + "/_state")[1]["tokens_minted"], 1)

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=5)
        self.addCleanup(conn.close)
        for _ in range(3):
            conn.request("POST", self.TOKEN, json.dumps(
                {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET}),
                {"Content-Type": "application/json"})
            resp = conn.getresponse()
            self.assertEqual(json.loads(resp.read())["code"], 0)
            self.assertFalse(resp.will_close)


class GiteeTest(unittest.TestCase):
    def setUp(self):
        self.d = GiteeDouble().start()
        self.addCleanup(self.d.stop)
        self.path = self.d.url + "/api/v5/repos/tokendist/tokens/contents/token.json"

    def get(self, token=DEFAULT_TOKEN, suffix=""):
        return jcall("GET", f"{self.path}?access_token={token}{suffix}")

    def write(self, method, data, **extra):
        body = {"access_token": DEFAULT_TOKEN, "message": "update token",
                "content": base64.b64encode(data).decode(), "branch": "master", **extra}
        return jcall(method, self.path, body)

    def test_blob_sha_and_wrapping(self):
        self.assertEqual(gitee.blob_sha(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")
        self.assertEqual(gitee.blob_sha(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a")
        lines = gitee.gitee_base64(b"x" * 100).split("\n")
        self.assertEqual([len(s) for s in lines], [60, 60, 16, 0])

    def test_get_file_and_missing(self):
        self.d.put_file("token.json", '{"access_token": "t-1"}')
        status, body = self.get()
        self.assertEqual((status, body["type"], body["encoding"], body["name"]),
                         (200, "file", "base64", "token.json"))
        self.assertEqual(base64.b64decode(body["content"]), b'{"access_token": "t-1"}')
        self.assertEqual(body["sha"], gitee.blob_sha(b'{"access_token": "t-1"}'))
        self.assertEqual(self.get(suffix="&ref=nope")[0], 404)
        self.d.control({"repo": "tokendist/tokens", "remove": ["token.json"]})
        self.assertEqual(self.get(), (200, []))
        self.d.control({"missing_file": "404"})
        self.assertEqual(self.get(), (404, {"message": "Not Found"}))

    def test_auth_and_repo_errors(self):
        self.assertEqual(self.get("wrong")[0], 401)
        self.assertEqual(jcall("GET", self.path)[0], 401)
        self.assertEqual(jcall("GET", self.path.replace("/tokens/", "/other/") +
                               "?access_token=" + DEFAULT_TOKEN),
                         (404, {"message": "Not Found Project"}))
        self.d.control({"forbidden": True})
        self.assertEqual(self.get(), (403, {"message": "Forbidden"}))

    def test_create_update_conflict(self):
        status, body = self.write("POST", b"v1")
        self.assertEqual((status, body["content"]["sha"]), (201, gitee.blob_sha(b"v1")))
        self.assertEqual(self.write("POST", b"v1"), (400, {"message": "文件名已存在"}))
        self.assertEqual(self.write("PUT", b"v2"), (400, {"message": "sha is missing"}))
        self.assertEqual(self.write("PUT", b"v2", sha="0" * 40)[0], 400)
        status, body = self.write("PUT", b"v2", sha=gitee.blob_sha(b"v1"))
        self.assertEqual((status, self.d.file_text("token.json")), (200, "v2"))
        self.assertIn("sha", body["commit"])

    def test_stale_sha_from_concurrent_writer(self):
        self.d.put_file("token.json", "v1")
        sha = self.get()[1]["sha"]
        self.d.control({"stale_sha": 1, "concurrent_content": "theirs",
                        "sha_conflict_status": 409})
        status, body = self.write("PUT", b"mine", sha=sha)
        self.assertEqual((status, self.d.file_text("token.json")), (409, "theirs"))
        status, _ = self.write("PUT", b"mine", sha=self.get()[1]["sha"])
        self.assertEqual((status, self.d.file_text("token.json")), (200, "mine"))
        self.assertEqual([c["method"] for c in self.d.commits], ["CONCURRENT", "PUT"])

    def test_fault_on_writes_only(self):
        self.d.put_file("token.json", "v1")
        self.d.control({"fail": "503", "method": "PUT", "times": 1})
        self.assertEqual(self.get()[0], 200)
        self.assertEqual(self.write("PUT", b"v2", sha=gitee.blob_sha(b"v1"))[0], 503)
        self.assertEqual(self.write("PUT", b"v2", sha=gitee.blob_sha(b"v1"))[0], 200)


class WeChatTest(unittest.TestCase):
    TOKEN = "/cgi-bin/stable_token"

    def setUp(self):
        self.d = WeChatDouble().start()
        self.addCleanup(self.d.stop)
        self.d.control({"freeze": True})   # exact seconds left in the assertions

    def fetch(self, force=None, secret=wechat.DEFAULT_SECRET, appid=wechat.DEFAULT_APPID):
        body = {"grant_type": "client_credential", "appid": appid, "secret": secret}
        if force is not None:
            body["force_refresh"] = force
        status, headers, raw = call("POST", self.d.url + self.TOKEN, body)
        self.assertEqual((status, headers["Content-Type"]), (200, wechat.WX_JSON))
        return json.loads(raw)

    def check(self, token, path="/cgi-bin/get_api_domain_ip"):
        return jcall("GET", f"{self.d.url}{path}?access_token={token}")[1]

    def test_normal_mode_same_token_then_new_in_last_five_minutes(self):
        first = self.fetch()
        self.assertEqual(set(first), {"access_token", "expires_in"})   # no errcode on success
        self.assertEqual(first["expires_in"], 7200)
        self.assertRegex(first["access_token"], r"^\d+_[A-Za-z0-9_-]{136}$")
        self.d.control({"advance": 6899})                               # 301 s left
        same = self.fetch(False)
        self.assertEqual((same["access_token"], same["expires_in"]), (first["access_token"], 301))
        self.d.control({"advance": 2})                                  # 299 s left: renewal
        new = self.fetch()
        self.assertNotEqual(new["access_token"], first["access_token"])
        self.assertEqual(new["expires_in"], 7200)
        self.assertEqual(self.check(first["access_token"]), {"ip_list": wechat.IP_LIST})
        self.d.control({"advance": 299})                                # the old one expired
        self.assertEqual(self.check(first["access_token"])["errcode"], 42001)
        self.assertIn("ip_list", self.check(new["access_token"], "/cgi-bin/getcallbackip"))
        self.assertEqual((self.d.fetches(), self.d.tokens_minted), (3, 2))

    def test_forced_mode_invalidates_at_once_and_is_limited(self):
        # Start 100 s into a Beijing day, so the daily limit counts every call below.
        self.d.control({"advance": 100 - (self.d.now() + 8 * 3600) % 86400})
        old = self.fetch()["access_token"]
        forced = self.fetch(True)
        self.assertEqual(forced["expires_in"], 7200)
        self.assertNotEqual(forced["access_token"], old)
        problem = self.check(old)
        self.assertEqual(problem["errcode"], 40001)
        self.assertIn("not latest rid: ", problem["errmsg"])
        again = self.fetch(True)                      # 30 s have not passed: 不会刷新
        self.assertEqual(again["access_token"], forced["access_token"])
        self.assertLess(again["expires_in"], 7201)
        self.d.control({"advance": 30})
        third = self.fetch(True)["access_token"]
        self.assertNotIn(third, (old, forced["access_token"]))
        self.assertFalse(self.d.token_valid(forced["access_token"]))
        for _ in range(17):                           # 20 forced calls a day in all
            self.d.control({"advance": 30})
            self.assertIn("access_token", self.fetch(True))
        self.assertEqual(self.fetch(True)["errcode"], 45009)
        self.assertEqual(self.fetch(False)["access_token"], self.d.current_token())
        self.assertEqual((self.d.forced_fetches(), self.d.fetches()), (21, 23))
        self.d.control({"advance": 86400})            # a new day
        self.assertIn("access_token", self.fetch(True))

    def test_forced_grace_keeps_the_old_token_a_while(self):
        self.d.control({"forced_grace": 300})
        old = self.fetch()["access_token"]
        self.fetch(True)
        self.assertIn("ip_list", self.check(old))
        self.d.control({"advance": 300})
        self.assertEqual(self.check(old)["errcode"], 40001)

    def test_invalidated_token_is_still_handed_out_until_forced(self):
        token = self.fetch()["access_token"]
        self.d.control({"invalidate": [token], "invalid_code": 42001})
        self.assertEqual(self.check(token)["errcode"], 42001)
        self.assertEqual(self.fetch()["access_token"], token)
        self.assertTrue(self.d.token_valid(self.fetch(True)["access_token"]))

    def test_external_force_replaces_the_current_token(self):
        token = self.fetch()["access_token"]
        self.d.control({"external_force": wechat.DEFAULT_APPID})
        self.assertEqual(self.check(token)["errcode"], 40001)
        self.assertNotEqual(self.fetch()["access_token"], token)
        self.assertEqual((self.d.fetches(), self.d.forced_fetches()), (2, 0))

    def test_errors(self):
        url = self.d.url + self.TOKEN
        self.assertEqual(self.fetch(secret="wrong")["errcode"], 40125)
        self.assertEqual(self.fetch(appid="wx0000000000000000")["errcode"], 40013)
        self.assertEqual(jcall("POST", url, {"grant_type": "password"})[1]["errcode"], 40002)
        self.assertEqual(jcall("POST", url, {"grant_type": "client_credential"})[1]["errcode"],
                         41002)
        self.assertEqual(jcall("GET", url)[1]["errcode"], 43002)
        self.assertEqual(jcall("POST", url, b"appid=x")[1]["errcode"], 47001)
        self.d.control({"ip_denied": True})
        denied = self.fetch()
        self.assertEqual(denied["errcode"], 40164)
        self.assertIn("not in whitelist", denied["errmsg"])
        self.d.control({"ip_denied": False, "daily_quota": 1})
        self.assertIn("access_token", self.fetch())
        self.assertEqual(self.fetch()["errcode"], 45009)
        self.assertEqual(self.check("")["errcode"], 41001)
        self.assertEqual(self.check("61_nope")["errcode"], 40001)
        self.assertEqual(self.d.tokens_minted, 1)

    def test_errcode_faults(self):
        self.d.control({"faults": [{"fail": "errcode", "times": 1, "code": -1, "msg": "system error"},
                                   {"fail": "502", "times": 1, "body": "html"}]})
        self.assertEqual(self.fetch()["errcode"], -1)
        self.assertEqual(call("POST", self.d.url + self.TOKEN, {})[0], 502)
        self.assertIn("access_token", self.fetch())
        self.assertEqual(self.d.fetches(), 1)         # faults never reach the token logic

    def test_getticket_modes(self):
        token = self.fetch()["access_token"]
        url = f"{self.d.url}/cgi-bin/ticket/getticket?access_token={token}&type=jsapi"
        status, first = jcall("GET", url)
        self.assertEqual((status, first["errcode"], first["errmsg"], first["expires_in"]),
                         (200, 0, "ok", 7200))
        self.d.control({"advance": 100})
        second = jcall("GET", url)[1]                 # "new": another ticket, both valid
        self.assertNotEqual(second["ticket"], first["ticket"])
        self.assertTrue(self.d.ticket_valid(first["ticket"]))
        self.d.control({"ticket_mode": "same", "advance": 100})
        same = jcall("GET", url)[1]
        self.assertEqual((same["ticket"], same["expires_in"]), (second["ticket"], 7100))
        self.d.control({"ticket_mode": "same_fixed"})
        self.assertEqual(jcall("GET", url)[1]["expires_in"], 7200)
        self.assertEqual(jcall("GET", url.replace("jsapi", "nope"))[1]["errcode"], 40097)
        self.d.control({"advance": 7100})             # the token expired
        self.assertEqual(jcall("GET", url)[1]["errcode"], 42001)
        self.assertEqual(self.d.ticket_fetches, {wechat.DEFAULT_APPID: 4})


class WeComTest(unittest.TestCase):
    def setUp(self):
        self.d = WeComDouble().start()
        self.addCleanup(self.d.stop)
        self.d.control({"freeze": True})   # exact seconds left in the assertions

    def fetch(self, corpid=wecom.DEFAULT_CORPID, secret=wecom.DEFAULT_SECRET):
        q = urllib.parse.urlencode({"corpid": corpid, "corpsecret": secret})
        status, body = jcall("GET", f"{self.d.url}/cgi-bin/gettoken?{q}")
        self.assertEqual(status, 200)
        return body

    def get(self, path, token):
        return jcall("GET", f"{self.d.url}{path}?access_token={token}")[1]

    def test_same_token_until_expiry(self):
        first = self.fetch()
        self.assertEqual((first["errcode"], first["errmsg"], first["expires_in"]), (0, "ok", 7200))
        self.d.control({"advance": 7199})
        same = self.fetch()
        self.assertEqual((same["access_token"], same["expires_in"]), (first["access_token"], 1))
        self.d.control({"advance": 1})
        new = self.fetch()
        self.assertNotEqual(new["access_token"], first["access_token"])
        expired = self.get("/cgi-bin/get_api_domain_ip", first["access_token"])
        self.assertEqual(expired["errcode"], 42001)
        self.assertIn("more info at https://open.work.weixin.qq.com/devtool/query?e=42001",
                      expired["errmsg"])
        self.assertEqual(self.get("/cgi-bin/get_api_domain_ip", new["access_token"])["errcode"], 0)
        self.d.control({"expires_in_mode": "fixed", "advance": 100})
        self.assertEqual(self.fetch()["expires_in"], 7200)
        self.assertEqual((self.d.fetches(), self.d.tokens_minted), (4, 2))

    def test_one_token_per_app_secret(self):
        self.d.control({"apps": {wecom.DEFAULT_CORPID: [wecom.DEFAULT_SECRET, "other-app-secret"]}})
        a, b = self.fetch()["access_token"], self.fetch(secret="other-app-secret")["access_token"]
        self.assertNotEqual(a, b)
        self.assertEqual((self.d.fetches(), self.d.fetches(secret="other-app-secret")), (1, 1))
        self.assertNotIn("other-app-secret", json.dumps(self.d.state()))

    def test_early_invalidation(self):
        token = self.fetch()["access_token"]
        self.d.control({"invalidate": "all"})
        self.assertEqual(self.get("/cgi-bin/get_api_domain_ip", token)["errcode"], 40014)
        fresh = self.fetch()["access_token"]
        self.assertNotEqual(fresh, token)
        self.assertTrue(self.d.token_valid(fresh))

    def test_errors(self):
        self.assertEqual(self.fetch(secret="wrong")["errcode"], 40001)
        self.assertEqual(self.fetch(corpid="ww_unknown")["errcode"], 40013)
        self.assertEqual(jcall("GET", self.d.url + "/cgi-bin/gettoken?corpid=x")[1]["errcode"], 41004)
        self.assertEqual(jcall("GET", self.d.url + "/cgi-bin/gettoken")[1]["errcode"], 41002)
        self.assertEqual(self.get("/cgi-bin/get_api_domain_ip", "")["errcode"], 41001)
        token = self.fetch()["access_token"]
        self.d.control({"ip_denied": "api"})
        self.assertEqual(self.get("/cgi-bin/get_jsapi_ticket", token)["errcode"], 60020)
        self.assertEqual(self.fetch()["access_token"], token)
        self.d.control({"ip_denied": "all"})
        self.assertEqual(self.fetch()["errcode"], 60020)
        self.d.control({"ip_denied": False, "fail": "errcode", "times": 1, "code": 45009,
                        "msg": "api freq out of limit"})
        self.assertEqual(self.fetch()["errcode"], 45009)
        self.assertEqual(self.d.tokens_minted, 1)

    def test_tickets(self):
        # Start 100 s into a clock hour, so that the hourly ticket limit below
        # counts all four fetches in one hour whatever the wall clock says.
        self.d.control({"advance": 100 - self.d.now() % 3600})
        token = self.fetch()["access_token"]
        corp = self.get("/cgi-bin/get_jsapi_ticket", token)
        self.assertEqual((corp["errcode"], corp["expires_in"]), (0, 7200))
        self.d.control({"advance": 60})
        again = self.get("/cgi-bin/get_jsapi_ticket", token)
        self.assertEqual((again["ticket"], again["expires_in"]), (corp["ticket"], 7140))
        agent = jcall("GET", f"{self.d.url}/cgi-bin/ticket/get?access_token={token}"
                             "&type=agent_config")[1]
        self.assertEqual(agent["errcode"], 0)
        self.assertNotEqual(agent["ticket"], corp["ticket"])
        self.d.control({"ticket_hourly_app": 3})
        self.assertEqual(self.get("/cgi-bin/get_jsapi_ticket", token)["errcode"], 45009)


class DingTalkTest(unittest.TestCase):
    TOKEN = "/v1.0/oauth2/accessToken"

    def setUp(self):
        self.d = DingTalkDouble().start()
        self.addCleanup(self.d.stop)
        self.d.control({"freeze": True})   # exact seconds left in the assertions

    def fetch(self, secret=dingtalk.DEFAULT_APP_SECRET):
        return jcall("POST", self.d.url + self.TOKEN,
                     {"appKey": dingtalk.DEFAULT_APP_KEY, "appSecret": secret})

    def judge(self, token):
        return jcall("GET", self.d.url + "/v1.0/microApp/allInnerApps",
                     headers={"x-acs-dingtalk-access-token": token})

    def test_fetch_inside_lifetime_extends_it(self):
        status, first = self.fetch()
        self.assertEqual((status, set(first), first["expireIn"]),
                         (200, {"accessToken", "expireIn"}, 7200))
        self.d.control({"advance": 7000})
        status, same = self.fetch()
        self.assertEqual((same["accessToken"], same["expireIn"]), (first["accessToken"], 7200))
        self.d.control({"advance": 7000})             # alive thanks to the extension
        self.assertEqual(self.judge(first["accessToken"]), (200, {"appList": []}))
        self.d.control({"extend": False, "advance": 100})
        self.assertEqual(self.fetch()[1]["expireIn"], 100)
        self.d.control({"advance": 100})
        status, body = self.judge(first["accessToken"])
        self.assertEqual((status, body["code"], body["message"]),
                         (400, "InvalidAuthentication", "不合法的access_token"))
        self.assertNotEqual(self.fetch()[1]["accessToken"], first["accessToken"])
        self.assertEqual((self.d.fetches(), self.d.tokens_minted), (4, 2))

    def test_errors(self):
        status, body = self.fetch("wrong")
        self.assertEqual((status, body["code"], body["message"]),
                         (400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret"))
        self.assertRegex(body["requestid"], r"^[0-9A-F-]{36}$")
        self.assertEqual(jcall("POST", self.d.url + self.TOKEN, b"appKey=x")[1]["code"],
                         "Missingbody")
        self.assertEqual(jcall("POST", self.d.url + self.TOKEN, {"appKey": "x"})[1]["code"],
                         "MissingappSecret")
        self.d.control({"fail": "code", "times": 1, "status": 403,
                        "code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"})
        status, body = self.fetch()
        self.assertEqual((status, body["code"]),
                         (403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"))
        self.d.control({"fail": "503", "times": 1})
        self.assertEqual(self.fetch()[1]["code"], "ServiceUnavailable")
        token = self.fetch()[1]["accessToken"]
        self.d.control({"invalidate": [token]})
        self.assertEqual(self.judge(token)[0], 400)
        self.assertNotEqual(self.fetch()[1]["accessToken"], token)
        self.assertEqual(self.d.fetches(), 3)


class FakeRuntime(threading.Thread):
    """A minimal Custom Runtime bootstrap speaking to the double, for the self-test."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base, self.seen_ids = base, []

    def run(self):
        call("POST", self.base + "/runtime/init/ready", b" ")
        while True:
            try:
                status, headers, raw = call("GET", self.base + "/runtime/invocation/next",
                                            timeout=30)
            except OSError:
                return
            if status != 200:
                return
            self.seen_ids.append(headers["request_id"])
            event = json.loads(raw)
            if event.get("httpMethod") == "DELETE":
                call("POST", self.base + "/runtime/invocation/error", b"boom")
                continue
            result = {"isBase64Encoded": False, "statusCode": 200,
                      "headers": {"Content-Type": "application/json"},
                      "body": json.dumps({"path": event["path"], "q": event["queryString"]})}
            call("POST", self.base + "/runtime/invocation/response", result)


class ScfRuntimeTest(unittest.TestCase):
    def setUp(self):
        self.d = ScfRuntimeDouble().start()
        self.addCleanup(self.d.stop)

    def test_invoke_roundtrip(self):
        env = self.d.runtime_env()
        FakeRuntime(f"http://{env['SCF_RUNTIME_API']}:{env['SCF_RUNTIME_API_PORT']}").start()
        self.assertTrue(self.d.wait_ready(5))
        result = self.d.invoke(scf_runtime.apigw_event("GET", "/get-token", query={"a": "1"}))
        status, headers, body = scf_runtime.http_response(result)
        self.assertEqual((status, json.loads(body)), (200, {"path": "/get-token", "q": {"a": "1"}}))
        with self.assertRaises(InvocationError) as err:
            self.d.invoke(scf_runtime.function_url_event("DELETE", "/"))
        self.assertEqual(err.exception.body, "boom")
        status, body = jcall("POST", self.d.url + "/_invoke?timeout=5",
                             scf_runtime.function_url_event("GET", "/x"))
        self.assertEqual((status, json.loads(body["response"]["body"])["path"]), (200, "/x"))
        self.assertEqual(len(self.d.invocations), 3)

    def test_next_repeats_event_until_answered(self):
        results = []
        worker = threading.Thread(target=lambda: results.append(self.d.invoke({"k": 1})))
        worker.start()
        first = call("GET", self.d.url + "/runtime/invocation/next")
        again = call("GET", self.d.url + "/runtime/invocation/next")
        self.assertEqual(first[1]["request_id"], again[1]["request_id"])
        self.assertEqual((json.loads(again[2]), first[1]["time_limit_in_ms"]), ({"k": 1}, "3000"))
        self.assertEqual(call("POST", self.d.url + "/runtime/invocation/response", b"ok")[0], 200)
        worker.join(5)
        self.assertEqual(results, ["ok"])
        self.assertEqual(call("POST", self.d.url + "/runtime/invocation/response", b"x")[0], 400)

    def test_empty_ready_is_not_ready(self):
        """SCF may ignore an empty ready: the double refuses it (see its docstring)."""
        self.assertEqual(call("POST", self.d.url + "/runtime/init/ready", b"")[0], 400)
        self.assertFalse(self.d.wait_ready(0.2))
        self.assertEqual(self.d.state()["empty_ready"], 1)
        self.assertEqual(call("POST", self.d.url + "/runtime/init/ready", b" ")[0], 200)
        self.assertTrue(self.d.wait_ready(1))

    def test_time_limit_ends_an_invocation_when_enforced(self):
        """Like SCF at the function's execution timeout: the invocation
        fails, and the runtime's late answer finds nothing in flight."""
        self.d.control({"time_limit_ms": 300, "enforce_time_limit": True})
        results = []
        worker = threading.Thread(target=lambda: self.assertRaises(InvocationError, self.d.invoke, {"k": 1}, 5))
        worker.start()
        first = call("GET", self.d.url + "/runtime/invocation/next")
        self.assertEqual(first[1]["time_limit_in_ms"], "300")
        worker.join(5)
        self.assertFalse(worker.is_alive())
        self.assertEqual(call("POST", self.d.url + "/runtime/invocation/response", b"late")[0], 400)
        inv = self.d.state()["invocations"][-1]
        self.assertEqual((inv["error"], inv["timed_out"]), (scf_runtime.TIMED_OUT, True))
        self.assertGreaterEqual(inv["elapsed_ms"], 300)
        # Not enforced (the default): an answer after the limit still counts.
        self.d.control({"enforce_time_limit": False})
        worker = threading.Thread(target=lambda: results.append(self.d.invoke({"k": 2}, 5)))
        worker.start()
        call("GET", self.d.url + "/runtime/invocation/next")
        time.sleep(0.4)
        self.assertEqual(call("POST", self.d.url + "/runtime/invocation/response", b"ok")[0], 200)
        worker.join(5)
        self.assertEqual(results, ["ok"])

    def test_invoke_timeout(self):
        with self.assertRaises(TimeoutError):
            self.d.invoke({"k": 1}, timeout=0.2)
        self.assertEqual(len(self.d.pending), 0)

    def test_event_shapes(self):
        ev = scf_runtime.apigw_event("POST", "/v1/tokens/default", headers={"X-Api-Key": "k"},
                                     body=b"\xff\x00")
        self.assertEqual(set(ev["requestContext"]), {"serviceId", "path", "httpMethod",
                                                     "requestId", "identity", "sourceIp", "stage"})
        self.assertTrue(ev["isBase64Encoded"])
        self.assertEqual(base64.b64decode(ev["body"]), b"\xff\x00")
        fu = scf_runtime.function_url_event("GET", "/get-token", headers={"X-Api-Key": "k"})
        self.assertNotIn("requestContext", fu)
        self.assertEqual(fu["headers"]["x-api-key"], "k")
        with self.assertRaises(ValueError):
            scf_runtime.http_response({"statusCode": "200", "body": ""})
        self.assertEqual(scf_runtime.http_response({"a": 1}, function_url=True)[0], 200)


class ProcessModeTest(unittest.TestCase):
    """Each double runs as a process, reports its port, and keeps secrets off stderr."""

    def run_double(self, script, config=None):
        tmp = tempfile.mkdtemp()
        port_file = os.path.join(tmp, "port")
        args = [sys.executable, os.path.join(HERE, script), "--port", "0",
                "--port-file", port_file]
        if config:
            args += ["--config", json.dumps(config)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            self.assertIsNone(proc.poll(), "double exited early")
            self.assertLess(time.monotonic(), deadline, "no port file")
            time.sleep(0.02)
        with open(port_file, encoding="ascii") as f:
            return proc, f"http://127.0.0.1:{int(f.read())}"

    def stop(self, proc):
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0)
        return out.decode() + err.decode()

    def test_feishu_process(self):
        proc, url = self.run_double("feishu.py", {"apps": {"cli_p": "proc-secret"}})
        status, body = jcall("POST", url + "/open-apis/auth/v3/app_access_token/internal",
                             {"app_id": "cli_p", "app_secret": "proc-secret"})
        self.assertEqual((status, body["code"]), (200, 0))
        output = self.stop(proc)
        self.assertNotIn("proc-secret", output)
        self.assertNotIn(body["app_access_token"], output)

    def test_gitee_process(self):
        proc, url = self.run_double("gitee.py", {"tokens": ["gitee-secret"]})
        status, _ = jcall("GET", url + "/api/v5/repos/tokendist/tokens/contents/a.json"
                          "?access_token=gitee-secret")
        self.assertEqual(status, 200)
        self.assertNotIn("gitee-secret", self.stop(proc))

    def test_scf_process(self):
        proc, url = self.run_double("scf_runtime.py")
        FakeRuntime(url).start()
        status, body = jcall("POST", url + "/_invoke?timeout=5",
                             scf_runtime.apigw_event("GET", "/get-token"))
        self.assertEqual((status, body["response"]["statusCode"]), (200, 200))
        self.assertTrue(jcall("GET", url + "/_state")[1]["init_ready"])
        self.stop(proc)

    def test_provider_processes(self):
        """The platform doubles run as processes and keep secrets off stderr."""
        cases = [("wechat.py", {"apps": {"wxproc": "wx-proc-secret"}}, "POST",
                  "/cgi-bin/stable_token", {"grant_type": "client_credential",
                                            "appid": "wxproc", "secret": "wx-proc-secret"},
                  "access_token"),
                 ("wecom.py", {"apps": {"wwproc": ["wc-proc-secret"]}}, "GET",
                  "/cgi-bin/gettoken?corpid=wwproc&corpsecret=wc-proc-secret", None,
                  "access_token"),
                 ("dingtalk.py", {"apps": {"dingproc": "dd-proc-secret"}}, "POST",
                  "/v1.0/oauth2/accessToken", {"appKey": "dingproc", "appSecret": "dd-proc-secret"},
                  "accessToken")]
        for script, config, method, path, body, field in cases:
            with self.subTest(script=script):
                proc, url = self.run_double(script, config)
                status, answer = jcall(method, url + path, body)
                self.assertEqual(status, 200)
                output = self.stop(proc)
                self.assertNotIn("proc-secret", output)
                self.assertNotIn(answer[field], output)


if __name__ == "__main__":
    unittest.main()
