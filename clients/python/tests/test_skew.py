"""Remaining time is measured against the server's Date header: a proxy in
front of the real server shifts Date to play a server whose clock is ahead
of or behind ours."""

from __future__ import annotations

from harness import Server, TestCase, make_record, needs_bin, same_token
from tokendist_client import create_client


@needs_bin
class Skew(TestCase):
    srv: Server

    @classmethod
    def setUpClass(cls) -> None:
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.srv.stop()

    def test_server_clock_ahead_makes_a_30_min_token_expired(self) -> None:
        self.srv.push(make_record(expire_in=1800), "ahead")
        proxy = self.proxy(self.srv.url, skew=3600)
        err = self.assertError(create_client(api_url=f"{proxy.url}/v1/tokens/ahead").get_access_token,
                               "EEXPIRED", r"^❌ 腾讯云函数 token获取失败: token已过期 \(已过期 1[78]\d\d 秒\)$")
        assert err.remaining_seconds is not None
        self.assertTrue(-1810 <= err.remaining_seconds <= -1790, err.remaining_seconds)
        info = create_client(api_url=f"{self.srv.url}/v1/tokens/ahead").get_record_info()
        self.assertTrue(1790 < info.remaining_seconds <= 1800, "the Date header made the difference")

    def test_server_clock_behind_gives_an_hour_and_memory_hits_use_the_offset(self) -> None:
        rec = make_record(expire_in=200)
        self.srv.push(rec, "behind")
        proxy = self.proxy(self.srv.url, skew=-3600)
        client = create_client(api_url=f"{proxy.url}/v1/tokens/behind")
        info = client.get_record_info()
        same_token(self, info.record["access_token"], rec["access_token"])
        self.assertTrue(3790 < info.remaining_seconds <= 3800, info.remaining_seconds)
        again = client.get_record_info()
        self.assertEqual(again.source, "memory")
        self.assertGreater(again.remaining_seconds, 3790)
        self.assertEqual(proxy.count("GET"), 1)
        self.assertError(create_client(api_url=f"{self.srv.url}/v1/tokens/behind").get_access_token,
                         "EEXPIRED")
