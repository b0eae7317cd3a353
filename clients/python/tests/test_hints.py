"""The errors name the cause where ``tokendist get`` does (issue #14): a
wrong path on our server is "路径不对", a network failure names the address
(never a query's secrets) and what to check."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from harness import TestCase, dead_url, make_record, needs_bin
from tokendist_client import create_client

PREFIX = "❌ 腾讯云函数 token获取失败: "


class Hints(TestCase):
    @needs_bin
    def test_wrong_path_is_wrong_path(self) -> None:
        srv = self.server()
        srv.push(make_record())
        client = create_client(api_url=f"{srv.url}/release/get-tokn?key=s3cret-in-query")
        err = self.assertError(client.get_access_token, "EHTTP")
        self.assertEqual(err.status, 404)
        self.assertNotIn("s3cret", str(err))
        self.assertEqual(str(err), PREFIX + "路径不对: 服务端没有 /release/get-tokn 这个地址 (HTTP 404 Not found)；"
                         "tokendist 的地址以 /release/get-token 或 /v1/tokens/名称 结尾，也可以只写 http(s)://主机:端口")

    def test_refused_names_the_address(self) -> None:
        url = dead_url("/release/get-token?key=s3cret-in-query")
        err = self.assertError(create_client(api_url=url).get_access_token, "ENETWORK")
        self.assertNotIn("s3cret", str(err))
        self.assertEqual(str(err), PREFIX + f"网络错误: 无法连接 {urlsplit(url).netloc}，"
                         "请检查地址、端口和防火墙，以及服务是否在运行 (ECONNREFUSED)")

    def test_dns_failure_names_the_host(self) -> None:
        client = create_client(api_url="http://nosuchhost.invalid:9000/release/get-token", timeout=20)
        err = self.assertError(client.get_access_token, "ENETWORK")
        self.assertRegex(str(err), "^" + PREFIX + r"网络错误: 无法解析主机名 nosuchhost\.invalid，请检查地址和 DNS \(ENOTFOUND")

    def test_timeout_names_the_address(self) -> None:
        quiet = socket.socket()         # listens, never answers
        self.addCleanup(quiet.close)
        quiet.bind(("127.0.0.1", 0))
        quiet.listen(8)
        host = f"127.0.0.1:{quiet.getsockname()[1]}"
        client = create_client(api_url=f"http://{host}/release/get-token", timeout=0.3)
        err = self.assertError(client.get_access_token, "ETIMEOUT")
        self.assertEqual(str(err), PREFIX + f"请求超时 (0.3 秒): {host} 没有及时应答，请检查服务是否在运行、网络是否通畅")
