"""Normal fetch, memory hits, near-expiry refetch, field selection, error
wording: against the real tokendist binary."""

from __future__ import annotations

import itertools
import json
import os
import time

from harness import (CaptureLog, Server, TestCase, answer, dead_url, make_record,
                     needs_bin, new_token, same_token)
from tokendist_client import TokendistError, create_client
from tokendist_client.transport import redact_url

_names = itertools.count(1)


def unique() -> str:
    return f"basic_{os.getpid()}_{next(_names)}"


@needs_bin
class Basic(TestCase):
    srv: Server

    @classmethod
    def setUpClass(cls) -> None:
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.srv.stop()

    def test_url_shown_without_userinfo_whatever_the_password_holds(self) -> None:
        """The server's rule (src/httpc.h): a password may hold '/'."""
        forms = {
            "redis://:Ab/cD+eF=@10.0.0.5:6379/0": "redis://***@10.0.0.5:6379/0",
            "https://u:p#w?d@h/x?y=1": "https://***@h/x?y=1",
            "https://a@b:S3cret@h/0?prefix=ns@x": "https://***@h/0?prefix=ns@x",
            "https://h/x@y": "https://***@y",
            "https://h/v1/tokens/x": "https://h/v1/tokens/x",
            "https://h/p?access_token=T0k3n&a=1": "https://h/p?access_token=***&a=1",
        }
        for url, shown in forms.items():
            self.assertEqual(redact_url(url), shown, url)

    def test_fetch_named_record_keeps_nine_fields_and_extras(self) -> None:
        name = unique()
        rec = make_record(tenant_access_token=new_token("t-tenant"))
        self.srv.push(rec, name)
        client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}")
        info = client.get_record_info()
        self.assertEqual((info.source, info.origin), ("endpoint", "endpoint"))
        same_token(self, info.record["access_token"], rec["access_token"])
        same_token(self, info.record["tenant_access_token"], rec["tenant_access_token"], "tenant")
        for k in ("expire_timestamp", "generated_timestamp", "source", "usage", "platform"):
            self.assertEqual(info.record[k], rec[k], k)
        self.assertIsInstance(info.record["expire_time"], str)
        self.assertTrue(7100 < info.remaining_seconds <= 7200, info.remaining_seconds)
        same_token(self, client.get_access_token(), rec["access_token"])
        self.assertNotIn("source_of_record", client.get_record())

    def test_seed_path_serves_default(self) -> None:
        rec = make_record()
        self.srv.push(rec, path="/release/get-token")
        same_token(self, create_client(api_url=f"{self.srv.url}/release/get-token").get_access_token(),
                   rec["access_token"])

    def test_memory_hit_makes_no_request_and_record_is_a_copy(self) -> None:
        name = unique()
        p = f"/v1/tokens/{name}"
        rec = make_record()
        self.srv.push(rec, name)
        proxy = self.proxy(self.srv.url)
        client = create_client(api_url=proxy.url + p)
        before = self.srv.served()
        same_token(self, client.get_access_token(), rec["access_token"])
        for _ in range(5):
            same_token(self, client.get_access_token(), rec["access_token"])
        info = client.get_record_info()
        self.assertEqual((info.source, info.origin), ("memory", "endpoint"))
        info.record["access_token"] = "mutated"
        client.get_record()["access_token"] = "mutated"
        same_token(self, client.get_access_token(), rec["access_token"])
        self.assertEqual(proxy.count("GET", p), 1, "memory hits must not reach the server")
        self.assertEqual(self.srv.served() - before, 1, "the server counted one GET (/metrics)")
        # a newer token pushed meanwhile is not seen while the old one is fresh enough
        self.srv.push(make_record(), name)
        same_token(self, client.get_access_token(), rec["access_token"])
        self.assertEqual(proxy.count("GET", p), 1)

    def test_refetch_when_crossing_min_remaining(self) -> None:
        name = unique()
        p = f"/v1/tokens/{name}"
        first = make_record(expire_in=305)   # 5 s over the minimum: accepted now, refused soon
        self.srv.push(first, name)
        proxy = self.proxy(self.srv.url)
        client = create_client(api_url=proxy.url + p, min_remaining_seconds=300)
        same_token(self, client.get_access_token(), first["access_token"])
        second = make_record()
        self.srv.push(second, name)
        same_token(self, client.get_access_token(), first["access_token"], "still fresh enough")
        self.assertEqual(proxy.count("GET", p), 1)
        time.sleep(max(0.0, first["expire_timestamp"] - 300 + 1.2 - time.time()))
        same_token(self, client.get_access_token(), second["access_token"], "after the minimum")
        self.assertEqual(proxy.count("GET", p), 2)

    def test_expiring_token_refused_in_seed_wording(self) -> None:
        name = unique()
        self.srv.push(make_record(expire_in=100), name)
        err = self.assertError(create_client(api_url=f"{self.srv.url}/v1/tokens/{name}").get_access_token,
                               "EEXPIRED",
                               r"^❌ 腾讯云函数 token获取失败: token即将过期 \(剩余 \d+ 秒，要求至少 300 秒\)$")
        self.assertEqual(err.source, "endpoint")
        lenient = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}", min_remaining_seconds=10)
        self.assertTrue(90 < lenient.get_record_info().remaining_seconds <= 100)

    def test_default_minimum_is_the_platforms(self) -> None:
        """WeChat 60 s, WeCom 0, the others 300 -- the C client's rule; -1 says the same."""
        cases = [("wechat", 100, None), ("wechat", 50, 60), ("wecom", 30, None), ("dingtalk", 100, 300)]
        for provider, expire_in, need in cases:
            name = unique()
            rec = make_record(expire_in=expire_in, provider=provider)
            self.srv.push(rec, name)
            for mins in (None, -1):
                client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}",
                                       min_remaining_seconds=mins)
                if need is None:
                    same_token(self, client.get_access_token(), rec["access_token"])
                else:
                    self.assertError(client.get_access_token, "EEXPIRED", rf"要求至少 {need} 秒")

    def test_field_tenant_access_token(self) -> None:
        name = unique()
        rec = make_record(tenant_access_token=new_token("t-tenant"))
        self.srv.push(rec, name)
        client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}", field="tenant_access_token")
        same_token(self, client.get_access_token(), rec["tenant_access_token"])

    def test_tenant_field_falls_back_to_access_token(self) -> None:
        """A record without tenant_access_token (the seed's own producer writes
        none): the tenant field gives access_token, as the C client does (for
        Feishu's internal apps both are the same string), with its expiry."""
        name = unique()
        rec = make_record(expire_in=3600)
        self.srv.push(rec, name)
        no_tenant = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}", field="tenant_access_token")
        same_token(self, no_tenant.get_access_token(), rec["access_token"])
        self.assertTrue(3500 < no_tenant.get_record_info().remaining_seconds <= 3600)
        self.assertNotIn("tenant_access_token", no_tenant.get_record())
        # a tenant token that is there but empty is still a broken record (the
        # server refuses to store one; a cache file may hold anything)
        cache = os.path.join(self.tempdir(), "cache.json")
        with open(cache, "w", encoding="utf-8") as f:
            json.dump(make_record(tenant_access_token=""), f)
        broken = create_client(cache_file=cache, field="tenant_access_token")
        self.assertError(broken.get_access_token, "EINVALID", "字段 tenant_access_token 为空")

    def test_no_stored_token_is_enotfound_with_server_words(self) -> None:
        err = self.assertError(create_client(api_url=f"{self.srv.url}/v1/tokens/{unique()}").get_access_token,
                               "ENOTFOUND_TOKEN")
        self.assertEqual(err.status, 404)
        self.assertEqual(str(err), "❌ 腾讯云函数 token获取失败: Token not found or expired")

    def test_http_500_is_reported_as_in_the_seed(self) -> None:
        name = unique()
        self.srv.push(make_record(), name)
        faulty = self.proxy(self.srv.url,
                            intercept=lambda h, m, p, b: answer(h, 500, "boom", "text/plain"))
        err = self.assertError(create_client(api_url=f"{faulty.url}/v1/tokens/{name}").get_access_token,
                               "EHTTP")
        self.assertEqual(err.status, 500)
        self.assertEqual(str(err), "❌ 腾讯云函数 token获取失败: HTTP 500: Internal Server Error")

    def test_server_that_never_answers_times_out(self) -> None:
        stuck = self.proxy(self.srv.url)
        stuck.intercept = lambda h, m, p, b: stuck.closing.wait(30) or True
        client = create_client(api_url=f"{stuck.url}/release/get-token", timeout=0.3)
        t0 = time.monotonic()
        self.assertError(client.get_access_token, "ETIMEOUT",
                         r"^❌ 腾讯云函数 token获取失败: 请求超时 \(0\.3 秒\): 127\.0\.0\.1:\d+ 没有及时应答，请检查服务是否在运行、网络是否通畅$")
        self.assertLess(time.monotonic() - t0, 3)

    def test_api_url_list_dead_first_falls_through(self) -> None:
        name = unique()
        rec = make_record()
        self.srv.push(rec, name)
        client = create_client(api_url=[dead_url(), f"{self.srv.url}/v1/tokens/{name}"])
        info = client.get_record_info()
        same_token(self, info.record["access_token"], rec["access_token"])
        self.assertEqual(info.url, f"{self.srv.url}/v1/tokens/{name}")

    def test_logs_carry_fingerprints_only(self) -> None:
        name = unique()
        rec = make_record()
        self.srv.push(rec, name)
        cap = CaptureLog()
        client = create_client(api_url=f"{self.srv.url}/v1/tokens/{name}", logger=cap.logger,
                               refresh_wait=0.3)
        client.get_access_token()
        client.report_invalid(rec["access_token"])
        try:
            client.get_access_token()
        except TokendistError:
            pass
        self.assertTrue(cap.lines, "something was logged")
        tok = rec["access_token"]
        self.assertTrue(any(f"{tok[:6]}…{tok[-2:]}" in line for line in cap.lines),
                        "the fingerprint is logged")
        self.assertEqual(cap.leaks(tok), [], "no log line contains the token")

    def test_silent_by_default(self) -> None:
        """The package logger has a NullHandler: nothing reaches stderr unasked."""
        import logging
        lg = logging.getLogger("tokendist_client")
        self.assertTrue(any(isinstance(h, logging.NullHandler) for h in lg.handlers))
