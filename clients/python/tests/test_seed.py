"""The seed's CONFIG dict works as the configuration, unchanged; token names;
configuration errors."""

from __future__ import annotations

import os
from typing import Any

from harness import GITEE_TOKEN, TestCase, dead_url, make_record, needs_bin, same_token
from tokendist_client import TokendistError, create_client


class SeedConfig(TestCase):
    @needs_bin
    def test_create_client_with_the_seeds_config(self) -> None:
        srv = self.server()
        rec = make_record()
        srv.push(rec, path="/release/get-token")
        proxy = self.proxy(srv.url)
        # the seed's Python CONFIG: the producer's keys sit next to the ones a reader needs
        CONFIG = {
            "TENCENT_CLOUD_ENABLED": True,
            "TENCENT_CLOUD_API_URL": f"{proxy.url}/release/get-token",
            "TENCENT_CLOUD_API_KEY": "push-key-of-the-producer",
            "FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": "secret-of-the-producer",
            "ENABLE_GITEE_TOKEN_SHARE": False, "GITEE_OWNER": "someone",
        }
        client = create_client(CONFIG)
        same_token(self, client.get_access_token(), rec["access_token"])
        r = client.get_record()
        self.assertEqual(r["platform"], "腾讯云函数")
        self.assertEqual(r["expire_timestamp"], rec["expire_timestamp"])
        self.assertNotIn("authorization", proxy.requests[0]["headers"], "the push key is not a read key")
        mixed = create_client(CONFIG, min_remaining_seconds=60,
                              cache_file=os.path.join(self.tempdir(), "c.json"))
        same_token(self, mixed.get_access_token(), rec["access_token"])

    def test_the_seeds_gitee_backup_config(self) -> None:
        gitee = self.gitee()
        rec = make_record()
        gitee.set_record(rec)
        CONFIG = {
            "TENCENT_CLOUD_ENABLED": False,
            "ENABLE_GITEE_TOKEN_SHARE": True,
            "GITEE_ACCESS_TOKEN": GITEE_TOKEN,
            "GITEE_OWNER": "tokendist",
            "GITEE_REPO": "tokens",
            "GITEE_FILE_PATH": "token.json",
            "GITEE_BASE_URL": gitee.double.url + "/api/v5",
        }
        info = create_client(CONFIG).get_record_info()
        self.assertEqual(info.source, "gitee")
        same_token(self, info.record["access_token"], rec["access_token"])
        # the Gitee keys without ENABLE_GITEE_TOKEN_SHARE: read all the same
        del CONFIG["ENABLE_GITEE_TOKEN_SHARE"]
        self.assertEqual(create_client(CONFIG).get_record_info().source, "gitee")
        # the file path defaults to token.json, as in tokendist's settings
        del CONFIG["GITEE_FILE_PATH"]
        self.assertEqual(create_client(CONFIG).get_record_info().source, "gitee")

    @needs_bin
    def test_environment_style_strings(self) -> None:
        srv = self.server()
        rec = make_record(expire_in=200)
        srv.push(rec)
        env = {"TENCENT_CLOUD_ENABLED": "True", "TOKENDIST_URLS": f"{dead_url()}, {srv.url}/release/get-token",
               "TOKENDIST_MIN_REMAINING": "60", "TOKENDIST_HTTP_TIMEOUT": "2", "ENABLE_GITEE_TOKEN_SHARE": "false",
               "GITEE_OWNER": "x", "GITEE_REPO": "y", "TOKENDIST_FIELD": "access_token"}
        same_token(self, create_client(env).get_access_token(), rec["access_token"])
        env["TENCENT_CLOUD_ENABLED"] = "off"
        self.assertError(lambda: create_client(env), "ECONFIG", "没有任何token来源")

    def test_configuration_errors_say_what_is_wrong(self) -> None:
        def bad(pattern: str, config: Any = None, **kw: Any) -> None:
            err = self.assertError(lambda: create_client(config, **kw), "ECONFIG", pattern)
            self.assertTrue(str(err).startswith("❌ tokendist 配置错误: "), str(err))

        bad("没有任何token来源", {"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": "https://x/release/get-token"})
        bad("没有任何token来源")
        bad("没有任何token来源", {"ENABLE_GITEE_TOKEN_SHARE": False, "GITEE_OWNER": "a", "GITEE_REPO": "b"})
        bad("只支持 http/https", api_url="not a url")
        bad("只支持 http/https", api_url="ftp://x/get-token")
        bad("field 只能是", api_url="https://x/get-token", field="app_token")
        bad("timeout 必须是正数", api_url="https://x/get-token", timeout=0)
        bad("min_remaining_seconds", api_url="https://x/get-token", min_remaining_seconds=-2)
        bad(r"gitee\['path'\]", api_url="https://x/get-token", gitee={"owner": "a", "repo": "b"})
        bad("GITEE_REPO|gitee\\['repo'\\]", {"GITEE_OWNER": "a"})
        bad("config 必须是 dict", ["https://x/get-token"])
        bad("TENCENT_CLOUD_ENABLED 应为 true 或 false", {"TENCENT_CLOUD_ENABLED": "maybe",
                                                      "TENCENT_CLOUD_API_URL": "https://x/get-token"})
        bad("read_key 含有换行符", api_url="https://x/get-token", read_key="k\r\nX-Evil: 1")
        bad(r"token 名称 'Feishu-App' 无效: 应为 1-64 个小写字母", api_url="https://x/get-token", name="Feishu-App")
        bad("token 名称 '' 无效", api_url="https://x/get-token", name="")
        self.assertIsInstance(create_client(api_url="https://x/get-token"), object)
        with self.assertRaises(TypeError):
            create_client(api_url="https://x/get-token", apiUrl="x")  # type: ignore[call-arg]


class TokenNames(TestCase):
    """A name other than ``default`` never gets the default token silently."""

    def test_derived_urls(self) -> None:
        from tokendist_client.options import endpoint_urls
        e = endpoint_urls("https://h/release/get-token", "app2", name_given=True)
        self.assertEqual((e.url, e.report_url), ("https://h/v1/tokens/app2", "https://h/v1/tokens/app2/invalid"))
        e = endpoint_urls("https://h/gw/get-token?x=1", "app2", name_given=True)
        self.assertEqual(e.url, "https://h/gw/v1/tokens/app2")
        e = endpoint_urls("https://h:8443/", "app2", name_given=True)
        self.assertEqual(e.url, "https://h:8443/v1/tokens/app2")
        e = endpoint_urls("https://h/v1/tokens/app2", "app2", name_given=True)
        self.assertEqual(e.report_url, "https://h/v1/tokens/app2/invalid")
        e = endpoint_urls("https://h/v1/tokens/other")          # no name asked: the URL's
        self.assertEqual(e.report_url, "https://h/v1/tokens/other/invalid")
        e = endpoint_urls("https://h/some/proxy/path")
        self.assertEqual((e.url, e.report_url), ("https://h/some/proxy/path", None))

    def test_names_the_url_contradicts_or_cannot_express(self) -> None:
        self.assertError(lambda: create_client(api_url="https://h/v1/tokens/other", name="app2"),
                         "ECONFIG", "api_url 指向名称 'other'，与 name='app2' 不一致")
        self.assertError(lambda: create_client(api_url="https://h/some/proxy/path", name="app2"),
                         "ECONFIG", "无法从 api_url 推导名称 'app2' 的地址")
        self.assertError(lambda: create_client({"TENCENT_CLOUD_API_URL": "https://h/v1/tokens/x",
                                                "TOKENDIST_TOKEN_NAME": "y"}), "ECONFIG", "不一致")

    @needs_bin
    def test_seed_url_with_a_name_reads_that_name(self) -> None:
        srv = self.server()
        default, app2 = make_record(), make_record()
        srv.push(default)
        srv.push(app2, "app2")
        proxy = self.proxy(srv.url)
        client = create_client({"TENCENT_CLOUD_API_URL": f"{proxy.url}/release/get-token",
                                "TOKENDIST_TOKEN_NAME": "app2"})
        same_token(self, client.get_access_token(), app2["access_token"])
        self.assertEqual(proxy.requests[0]["path"], "/v1/tokens/app2")
        client.report_invalid(app2["access_token"])
        self.assertEqual(proxy.requests[1]["path"], "/v1/tokens/app2/invalid")
        # a name the server has no token for: 404, never the default token
        none = create_client(api_url=f"{srv.url}/release/get-token", name="app3")
        err = self.assertError(none.get_access_token, "ENOTFOUND_TOKEN")
        self.assertIn("/v1/tokens/app3", err.url or "")

    def test_errors_are_tokendist_errors(self) -> None:
        self.assertTrue(issubclass(TokendistError, Exception))
