"""Read keys: the server started with --read-key."""

from __future__ import annotations

from typing import Any

from harness import Proxy, Server, TestCase, answer, make_record, needs_bin, same_token
from tokendist_client import create_client

READ_KEY = "read-key-for-tests-0123"
NOWHERE = "https://x.invalid/release/get-token"


@needs_bin
class ReadKeys(TestCase):
    srv: Server
    prx: Proxy

    @classmethod
    def setUpClass(cls) -> None:
        cls.srv = Server(read_key=READ_KEY).start()
        cls.prx = Proxy(cls.srv.url)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.prx.close()
        cls.srv.stop()

    def test_no_read_key_is_eauth_401(self) -> None:
        self.srv.push(make_record())
        err = self.assertError(create_client(api_url=f"{self.srv.url}/release/get-token").get_access_token,
                               "EAUTH", r"^❌ 腾讯云函数 token获取失败: HTTP 401: .*权限不足")
        self.assertEqual(err.status, 401)

    def test_wrong_read_key_is_eauth_403_and_not_shown(self) -> None:
        client = create_client(api_url=f"{self.srv.url}/release/get-token", read_key="wrong-key-zzz")
        err = self.assertError(client.get_access_token, "EAUTH",
                               r"^❌ 腾讯云函数 token获取失败: HTTP 403: .*权限不足")
        self.assertEqual(err.status, 403)
        self.assertNotIn("wrong-key-zzz", str(err))
        self.assertNotIn("wrong-key-zzz", repr(client) + repr(err))

    def test_right_read_key_is_sent_as_bearer(self) -> None:
        rec = make_record()
        self.srv.push(rec)
        client = create_client(api_url=f"{self.prx.url}/v1/tokens/default", read_key=READ_KEY)
        same_token(self, client.get_access_token(), rec["access_token"])
        self.assertEqual(self.prx.requests[-1]["headers"]["authorization"], f"Bearer {READ_KEY}")

    def test_read_key_from_the_config_dict(self) -> None:
        rec = make_record()
        self.srv.push(rec)
        client = create_client({"TENCENT_CLOUD_API_URL": f"{self.srv.url}/release/get-token",
                                "TOKENDIST_READ_KEY": READ_KEY})
        same_token(self, client.get_access_token(), rec["access_token"])


@needs_bin
class Lockout(TestCase):
    """Its own server: the lockout is per address and would lock out ReadKeys."""

    def setUp(self) -> None:
        self.srv = Server(read_key=READ_KEY).start()
        self.addCleanup(self.srv.stop)

    def test_lockout_429_is_still_eauth_and_a_plain_429_is_ehttp(self) -> None:
        from tokendist_client import TokendistError
        client = create_client(api_url=f"{self.srv.url}/release/get-token", read_key="wrong-key-zzz")
        err: TokendistError | None = None
        for _ in range(30):                 # ten failures block the address
            with self.assertRaises(TokendistError) as cm:
                client.get_access_token()
            err = cm.exception
            self.assertEqual(err.code, "EAUTH", str(err))
            if err.status == 429:
                break
        assert err is not None
        self.assertEqual(err.status, 429)
        self.assertIn("认证失败次数过多", str(err))
        self.assertNotIn("wrong-key-zzz", str(err))

        def plain(h: Any, method: str, path: str, body: bytes) -> bool:
            return path.startswith("/plain-429") and answer(h, 429, {"error": "Too Many Requests"})
        prx = Proxy(self.srv.url, intercept=plain)
        self.addCleanup(prx.close)
        other = create_client(api_url=f"{prx.url}/plain-429/release/get-token", read_key=READ_KEY)
        err2 = self.assertError(other.get_access_token, "EHTTP")
        self.assertEqual(err2.status, 429)


class GiteeRateLimit(TestCase):
    def test_a_gitee_429_is_ehttp_even_with_www_authenticate(self) -> None:
        """The lockout rule (429 + WWW-Authenticate = the key) is our server's own."""
        gitee = self.gitee()
        gitee.set_record(make_record())

        def limit(h: Any, method: str, path: str, body: bytes) -> bool:
            data = b'{"message":"Too Many Requests"}'
            h.send_response(429)
            h.send_header("Content-Type", "application/json")
            h.send_header("WWW-Authenticate", 'Bearer realm="gitee"')
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return True
        gate = Proxy(gitee.double.url, intercept=limit)
        self.addCleanup(gate.close)
        client = create_client({"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": NOWHERE},
                               gitee={**gitee.options, "base_url": gate.url + "/api/v5"})
        err = self.assertError(client.get_access_token, "EHTTP")
        self.assertEqual((err.source, err.status), ("gitee", 429))
        self.assertEqual(len(gate.requests), 1)
