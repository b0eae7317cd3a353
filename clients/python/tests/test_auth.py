"""Read keys: the server started with --read-key."""

from __future__ import annotations

from harness import Proxy, Server, TestCase, make_record, needs_bin, same_token
from tokendist_client import create_client

READ_KEY = "read-key-for-tests-0123"


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
