"""report_invalid against the real server running its Feishu refresher (Feishu
itself is the project's double)."""

from __future__ import annotations

import json
import time

from harness import Server, TestCase, fp, feishu_args, needs_bin, request, same_token
from tokendist_client import create_client


def first_token(srv: Server) -> str:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        status, text = request("GET", srv.url + "/release/get-token")
        if status == 200:
            token: str = json.loads(text)["access_token"]
            return token
        time.sleep(0.1)
    raise AssertionError("the refresher stored no token within 10 s")


def issued(feishu: object) -> list[str]:
    return [t["token"] for t in feishu.state()["tokens"]]  # type: ignore[attr-defined]


@needs_bin
class Refresher(TestCase):
    def test_report_gets_200_with_the_refreshed_record_used_at_once(self) -> None:
        feishu = self.feishu(renew_window=7300)          # every fetch mints a new token
        srv = self.server(extra_args=feishu_args(feishu))
        t1 = first_token(srv)
        self.assertIn(t1, issued(feishu), f"stored token {fp(t1)} came from the Feishu double")
        proxy = self.proxy(srv.url)
        client = create_client({"TENCENT_CLOUD_ENABLED": True,
                                "TENCENT_CLOUD_API_URL": f"{proxy.url}/release/get-token"})
        same_token(self, client.get_access_token(), t1)

        result = client.report_invalid(t1)
        self.assertEqual((result.status, result.replaced), (200, True))
        gets = proxy.count("GET")
        t2 = client.get_access_token()
        self.assertNotEqual(t2, t1, "a different token after the refresh")
        self.assertIn(t2, issued(feishu), f"new token {fp(t2)} came from the Feishu double")
        self.assertEqual(proxy.count("GET"), gets, "used from the report's answer")
        self.assertEqual(proxy.count("POST", "/v1/tokens/default/invalid"), 1)

        # the old token reported again (another client): 200 + the current record, no new fetch
        fetches = feishu.state()["token_fetches"]
        late = create_client(api_url=f"{proxy.url}/release/get-token")
        self.assertEqual(late.report_invalid(t1).status, 200)
        same_token(self, late.get_access_token(), t2)
        self.assertEqual(feishu.state()["token_fetches"], fetches)

    def test_feishu_still_issues_the_token_409_no_waiting_no_loop(self) -> None:
        feishu = self.feishu()                          # the same token for 30 minutes
        srv = self.server(extra_args=feishu_args(feishu))
        t1 = first_token(srv)
        proxy = self.proxy(srv.url)
        client = create_client(api_url=f"{proxy.url}/release/get-token", refresh_wait=3)
        same_token(self, client.get_access_token(), t1)

        result = client.report_invalid(t1)
        self.assertEqual((result.status, result.replaced), (409, False))
        assert result.error is not None
        self.assertEqual(result.error.code, "ESAME")
        self.assertRegex(str(result.error), r"^❌ 腾讯云函数 无效token上报: 平台仍在发放此token t-\w{4}…\w\w，没有新的可换 \(飞书仍在发放此 token")
        t0 = time.monotonic()
        same_token(self, client.get_access_token(), t1)
        self.assertLess(time.monotonic() - t0, 2.5, "it did not wait for a replacement")
        fetches = feishu.state()["token_fetches"]
        self.assertEqual(client.report_invalid(t1).status, 409)
        self.assertEqual(feishu.state()["token_fetches"], fetches, "the server answered from its last fetch")

    def test_with_token_recovers_from_feishu_invalid_answer(self) -> None:
        feishu = self.feishu(renew_window=7300)
        srv = self.server(extra_args=feishu_args(feishu))
        t1 = first_token(srv)
        client = create_client(api_url=f"{srv.url}/v1/tokens/default")
        seen: list[str] = []

        def call(token: str) -> dict[str, object]:
            seen.append(token)
            return {"code": 99991663, "msg": "Invalid access token for authorization."} \
                if token == t1 else {"code": 0, "data": "ok"}

        self.assertEqual(client.with_token(call), {"code": 0, "data": "ok"})
        self.assertEqual(len(seen), 2)
        same_token(self, seen[0], t1, "first call")
        self.assertTrue(seen[1] != t1 and seen[1] in issued(feishu), f"fresh token {fp(seen[1])}")
