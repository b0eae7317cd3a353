"""Feishu said "invalid token": report_invalid(), with_token(),
is_feishu_invalid_token_error()."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from typing import Any

from harness import (CaptureLog, Server, TestCase, answer, dead_url, make_record, needs_bin,
                     same_token)
from tokendist_client import (FEISHU_INVALID_TOKEN_CODES, create_client, invalid_url_for,
                              is_feishu_invalid_token_error)

_names = itertools.count(1)


def unique() -> str:
    return f"inv_{os.getpid()}_{next(_names)}"


class FakeResponse:
    """What requests/httpx hand back: headers, status_code, json()."""

    def __init__(self, body: Any, ctype: str = "application/json", status: int = 400) -> None:
        self.headers = {"content-type": ctype}
        self.status_code = status
        self._body = body
        self.read = False

    def json(self) -> Any:
        self.read = True
        return json.loads(self._body) if isinstance(self._body, str) else self._body


class HTTPError(Exception):
    """requests.HTTPError: the response rides along."""

    def __init__(self, msg: str, response: FakeResponse) -> None:
        super().__init__(msg)
        self.response = response


class SdkResponse:
    """lark_oapi's answer object: code and msg attributes."""

    def __init__(self, code: int) -> None:
        self.code, self.msg = code, "x"


class Recognise(TestCase):
    def test_invalid_url_for(self) -> None:
        cases = [
            ("https://h.example/release/get-token", "https://h.example/v1/tokens/default/invalid"),
            ("https://h.example/get-token", "https://h.example/v1/tokens/default/invalid"),
            ("https://h.example/prefix/release/get-token?x=1#f",
             "https://h.example/prefix/v1/tokens/default/invalid"),
            ("http://127.0.0.1:8080/v1/tokens/default", "http://127.0.0.1:8080/v1/tokens/default/invalid"),
            ("http://127.0.0.1:8080/v1/tokens/feishu_app_2/",
             "http://127.0.0.1:8080/v1/tokens/feishu_app_2/invalid"),
            ("https://h.example/gw/v1/tokens/x", "https://h.example/gw/v1/tokens/x/invalid"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/tokens/default/invalid"),
        ]
        for src, want in cases:
            self.assertEqual(invalid_url_for(src), want, src)
        for none in ("https://h.example/something-else", "https://h.example/v1/tokens/",
                     "https://h.example/v1/tokens/Feishu-App", "not a url", "ftp://h/get-token"):
            self.assertIsNone(invalid_url_for(none), none)

    def test_is_feishu_invalid_token_error(self) -> None:
        self.assertEqual(FEISHU_INVALID_TOKEN_CODES, (99991663, 99991664, 99991671))
        for code in FEISHU_INVALID_TOKEN_CODES:
            for yes in ({"code": code, "msg": "Invalid access token for authorization."},
                        json.dumps({"code": code, "msg": "x"}), json.dumps({"code": code}).encode(),
                        {"code": str(code)}, SdkResponse(code), FakeResponse({"code": code}),
                        HTTPError("400 Client Error", FakeResponse({"code": code})),
                        {"data": {"code": code}}):
                self.assertTrue(is_feishu_invalid_token_error(yes), repr(yes))
        self.assertTrue(is_feishu_invalid_token_error(RuntimeError("feishu error 99991671: token expired")))
        chained = RuntimeError("call failed")
        chained.__cause__ = HTTPError("x", FakeResponse('{"code": 99991663}'))
        self.assertTrue(is_feishu_invalid_token_error(chained))
        for no in ({"code": 0, "msg": "success"}, {"code": 99991400}, {"code": 999916630}, '{"code":0}',
                   None, 42, True, "ok", ConnectionResetError("ECONNRESET"), {"data": {"code": 1254302}},
                   SdkResponse(0), [99991663]):
            self.assertFalse(is_feishu_invalid_token_error(no), repr(no))

    def test_a_body_that_is_not_json_is_never_read(self) -> None:
        download = FakeResponse('{"code": 99991663} looks like JSON but is a file',
                                "application/octet-stream", 200)
        self.assertFalse(is_feishu_invalid_token_error(download))
        self.assertFalse(download.read)


@needs_bin
class Reports(TestCase):
    srv: Server

    @classmethod
    def setUpClass(cls) -> None:
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.srv.stop()

    def test_server_has_another_token_200_used_at_once(self) -> None:
        name = unique()
        a = make_record()
        self.srv.push(a, name)
        proxy = self.proxy(self.srv.url)
        client = create_client(api_url=f"{proxy.url}/v1/tokens/{name}")
        same_token(self, client.get_access_token(), a["access_token"])
        b = make_record()
        self.srv.push(b, name)
        result = client.report_invalid(a["access_token"])
        self.assertEqual((result.status, result.reported, result.replaced), (200, True, True))
        self.assertEqual(result.url, f"{proxy.url}/v1/tokens/{name}/invalid")
        post = next(r for r in proxy.requests if r["method"] == "POST")
        self.assertEqual(json.loads(post["body"]), {"access_token": a["access_token"]})
        self.assertIn("application/json", post["headers"]["content-type"])
        gets = proxy.count("GET")
        info = client.get_record_info()
        same_token(self, info.record["access_token"], b["access_token"])
        self.assertEqual(info.source, "memory")
        self.assertEqual(proxy.count("GET"), gets, "the 200 body was used; no extra GET")

    def test_seed_url_reports_to_default_with_the_read_key(self) -> None:
        a = make_record()
        self.srv.push(a)
        proxy = self.proxy(self.srv.url)
        client = create_client({"TENCENT_CLOUD_ENABLED": True,
                                "TENCENT_CLOUD_API_URL": f"{proxy.url}/release/get-token"},
                               read_key="rk-1", refresh_wait=0.2)
        same_token(self, client.get_access_token(), a["access_token"])
        b = make_record()
        self.srv.push(b)
        result = client.report_invalid(a["access_token"])
        self.assertEqual(result.url, f"{proxy.url}/v1/tokens/default/invalid")
        post = next(r for r in proxy.requests if r["method"] == "POST")
        self.assertEqual(post["path"], "/v1/tokens/default/invalid")
        self.assertEqual(post["headers"]["authorization"], "Bearer rk-1")
        self.assertEqual(result.status, 200)
        same_token(self, client.get_access_token(), b["access_token"])

    def test_202_next_get_waits_for_a_different_token(self) -> None:
        # The real 202 (a server running its refresher) is in test_refresher.py; here
        # the proxy answers the report with 202 and the new token is pushed 700 ms later.
        name = unique()
        a = make_record()
        self.srv.push(a, name)
        proxy = self.proxy(self.srv.url, intercept=lambda h, m, p, b: m == "POST" and p.endswith(
            "/invalid") and answer(h, 202, {"success": True, "message": "已开始刷新，请稍后再取 token"}))
        client = create_client(api_url=f"{proxy.url}/v1/tokens/{name}")
        same_token(self, client.get_access_token(), a["access_token"])
        result = client.report_invalid(a["access_token"])
        self.assertEqual((result.reported, result.status, result.refreshing), (True, 202, True))
        b = make_record()
        later = threading.Timer(0.7, self.srv.push, (b, name))
        later.start()
        t0 = time.monotonic()
        tok = client.get_access_token()
        waited = time.monotonic() - t0
        later.join()
        same_token(self, tok, b["access_token"], "the refreshed token")
        self.assertTrue(0.5 <= waited < 5, f"waited {waited:.2f} s")
        self.assertGreaterEqual(proxy.count("GET"), 3, "it asked again")

    def test_202_but_nothing_new_serves_the_old_token_with_a_warning(self) -> None:
        name = unique()
        a = make_record()
        self.srv.push(a, name)
        proxy = self.proxy(self.srv.url, intercept=lambda h, m, p, b: m == "POST" and answer(
            h, 202, {"success": True, "message": "已开始刷新，请稍后再取 token"}))
        cap = CaptureLog()
        client = create_client(api_url=f"{proxy.url}/v1/tokens/{name}", refresh_wait=0.6,
                               logger=cap.logger)
        client.get_access_token()
        client.report_invalid(a["access_token"])
        t0 = time.monotonic()
        same_token(self, client.get_access_token(), a["access_token"])
        self.assertGreaterEqual(time.monotonic() - t0, 0.3, "it waited for a new token first")
        self.assertTrue(any(l.startswith("warning:") and "仍只拿到已报告无效的token" in l for l in cap.lines), cap.lines)
        self.assertEqual(cap.leaks(a["access_token"]), [])

    def test_409_for_another_platform_s_token_names_no_platform_of_its_own(self) -> None:
        # A WeChat token: the server's 409 speaks for WeChat (src/api.c); the
        # client once said "飞书仍在发放此token" whatever the token's platform.
        name = unique()
        a = make_record(provider="wechat")
        self.srv.push(a, name)
        said = "微信仍在发放此 token，没有新的可换 (微信确认此 token 仍然有效)；请检查调用失败的其他原因：接口权限"
        proxy = self.proxy(self.srv.url, intercept=lambda h, m, p, b: m == "POST" and p.endswith(
            "/invalid") and answer(h, 409, {"success": False, "message": said}))
        client = create_client(api_url=f"{proxy.url}/v1/tokens/{name}", logger=CaptureLog().logger)
        client.get_access_token()
        result = client.report_invalid(a["access_token"])
        self.assertEqual(result.status, 409)
        assert result.error is not None
        self.assertEqual(result.error.code, "ESAME")
        self.assertRegex(str(result.error), r"^❌ 腾讯云函数 无效token上报: 平台仍在发放此token t-\w{4}…\w\w，没有新的可换 \(")
        self.assertIn(said, str(result.error))
        self.assertNotIn("飞书", str(result.error))

    def test_server_without_refresher_is_not_fatal(self) -> None:
        name = unique()
        a = make_record()
        self.srv.push(a, name)
        cap = CaptureLog()
        quiet = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}", refresh_wait=0.3,
                              logger=cap.logger)
        quiet.get_access_token()
        result = quiet.report_invalid(a["access_token"])       # 501: nobody here can refresh
        self.assertEqual((result.reported, result.replaced), (False, False))
        self.assertEqual(result.status, 501)
        assert result.error is not None
        self.assertEqual(result.error.code, "EHTTP")
        self.assertRegex(str(result.error), r"^❌ 腾讯云函数 无效token上报失败: HTTP 501: ")
        self.assertTrue(any("无效token上报失败" in line for line in cap.lines))
        self.assertEqual(cap.leaks(a["access_token"]), [])
        same_token(self, quiet.get_access_token(), a["access_token"])

    def test_concurrent_reports_of_one_token_make_one_post(self) -> None:
        name = unique()
        a = make_record()
        self.srv.push(a, name)
        hold = threading.Event()
        proxy = self.proxy(self.srv.url)
        proxy.intercept = lambda h, m, p, b: m == "POST" and bool(hold.wait(10)) and False
        client = create_client(api_url=f"{proxy.url}/v1/tokens/{name}")
        client.get_access_token()
        self.srv.push(make_record(), name)
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(client.report_invalid(a["access_token"])))
                   for _ in range(10)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        hold.set()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 10)
        self.assertTrue(all(r is results[0] for r in results))
        self.assertEqual(proxy.count("POST", suffix="/invalid"), 1)

    def test_with_token_invalid_answer_report_fresh_token_one_more_call(self) -> None:
        name = unique()
        a = make_record()
        self.srv.push(a, name)
        client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}")
        client.get_access_token()
        b = make_record()
        self.srv.push(b, name)
        seen: list[str] = []

        def call_feishu(token: str) -> dict[str, Any]:
            seen.append(token)
            return {"code": 0, "msg": "success", "data": {}} if token == b["access_token"] else \
                {"code": 99991663, "msg": "Invalid access token for authorization."}

        self.assertEqual(client.with_token(call_feishu)["code"], 0)
        self.assertEqual(len(seen), 2)
        same_token(self, seen[0], a["access_token"], "first call")
        same_token(self, seen[1], b["access_token"], "second call")

    def test_with_token_wechat_errcode_report_fresh_token_one_more_call(self) -> None:
        name = unique()
        a = make_record(provider="wechat")
        self.srv.push(a, name)
        client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}")
        client.get_access_token()
        b = make_record(provider="wechat")
        self.srv.push(b, name)
        seen: list[str] = []

        def call_wechat(token: str) -> dict[str, Any]:
            seen.append(token)
            return {"errcode": 0, "errmsg": "ok"} if token == b["access_token"] else \
                {"errcode": 40001, "errmsg": "invalid credential"}

        self.assertEqual(client.with_token(call_wechat)["errcode"], 0)
        self.assertEqual(len(seen), 2)
        same_token(self, seen[1], b["access_token"], "second call")

    def test_is_invalid_token_error_other_platforms_in_json_only(self) -> None:
        from tokendist_client import is_invalid_token_error
        for yes in ({"errcode": 40001}, '{"errcode": 42001, "errmsg": "access_token expired"}', {"errcode": 40014},
                    {"response": {"errcode": 40001}}, {"code": "InvalidAuthentication"}, {"code": 99991663}):
            self.assertTrue(is_invalid_token_error(yes), yes)
        for no in ({"errcode": 0}, {"errcode": 45009}, "error 40001 somewhere", {"code": "Forbidden"}, None,
                   {"errcode": True}):
            self.assertFalse(is_invalid_token_error(no), no)

    def test_with_token_recognises_raised_errors_and_responses(self) -> None:
        for style in ("raise", "response", "sdk"):
            name = unique()
            a = make_record()
            self.srv.push(a, name)
            client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}")
            client.get_access_token()
            b = make_record()
            self.srv.push(b, name)
            calls = [0]

            def fn(token: str) -> Any:
                calls[0] += 1
                bad = token != b["access_token"]
                if style == "raise":
                    if bad:
                        raise HTTPError("400 Client Error", FakeResponse({"code": 99991671, "msg": "x"}))
                    return "ok"
                if style == "sdk":
                    return SdkResponse(99991664 if bad else 0)
                return FakeResponse({"code": 99991664} if bad else {"code": 0}, status=400 if bad else 200)

            out = client.with_token(fn)
            self.assertEqual(calls[0], 2, style)
            if style == "raise":
                self.assertEqual(out, "ok")


class WithTokenAlone(TestCase):
    """with_token against the Gitee double only: no server needed."""

    def client(self, **kw: Any) -> Any:
        gitee = self.gitee()
        gitee.set_record(make_record())
        return create_client({"TENCENT_CLOUD_ENABLED": False,
                              "TENCENT_CLOUD_API_URL": "https://x.invalid/release/get-token"},
                             gitee=gitee.options, **kw)

    def test_non_json_response_is_not_read(self) -> None:
        client = self.client()
        calls = [0]

        def download(token: str) -> FakeResponse:
            calls[0] += 1
            return FakeResponse('{"code": 99991663} but a file', "application/octet-stream", 200)

        res = client.with_token(download)
        self.assertEqual(calls[0], 1)
        self.assertFalse(res.read)

    def test_other_errors_pass_through_and_nothing_is_reported(self) -> None:
        client = self.client(refresh_wait=0.3)
        calls = [0]
        boom = RuntimeError("feishu 500")

        def fail(token: str) -> None:
            calls[0] += 1
            raise boom

        with self.assertRaises(RuntimeError) as cm:
            client.with_token(fail)
        self.assertIs(cm.exception, boom)
        self.assertEqual(calls[0], 1)
        self.assertEqual(client.with_token(lambda t: {"code": 0}), {"code": 0})
        # an invalid answer but no different token to be had: the first outcome, fn called once
        calls[0] = 0

        def invalid(token: str) -> dict[str, int]:
            calls[0] += 1
            return {"code": 99991663}

        self.assertEqual(client.with_token(invalid), {"code": 99991663})
        self.assertEqual(calls[0], 1)

    def test_reporting_to_a_dead_endpoint_is_not_fatal_then_gitee(self) -> None:
        gitee = self.gitee()
        a, b = make_record(), make_record()
        gitee.set_record(a)
        url = dead_url()
        client = create_client(api_url=url, gitee=gitee.options, refresh_wait=2)
        same_token(self, client.get_access_token(), a["access_token"])
        result = client.report_invalid(a["access_token"])
        self.assertFalse(result.reported)
        assert result.error is not None
        self.assertEqual(result.error.code, "ENETWORK")
        self.assertRegex(str(result.error), r"^❌ 腾讯云函数 无效token上报失败: 网络错误: 无法连接 127\.0\.0\.1:\d+，.* \(ECONNREFUSED\)$")
        self.assertEqual(result.url, url.replace("/release/get-token", "/v1/tokens/default/invalid"))
        # Gitee has a newer record now, but it was asked less than a minute ago:
        # its last answer stands (the C library's rule), so after the wait the
        # reported token is used again, from Gitee's answer.
        gitee.set_record(b)
        info = client.get_record_info()
        self.assertEqual(info.source, "gitee")
        same_token(self, info.record["access_token"], a["access_token"])
        self.assertEqual(len(gitee.gets()), 1)


