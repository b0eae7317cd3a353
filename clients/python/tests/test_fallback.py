"""endpoint → Gitee → cache file, and the errors when everything fails."""

from __future__ import annotations

import json
import os
import stat
import time

from harness import (GITEE_TOKEN, CaptureLog, TestCase, dead_url, make_record, needs_bin,
                     same_token)
from tokendist_client import create_client

NOWHERE = "https://x.invalid/release/get-token"


class Fallback(TestCase):
    @needs_bin
    def test_server_down_then_gitee(self) -> None:
        srv = self.server()
        rec = make_record()
        srv.push(rec, path="/release/get-token")
        api_url = f"{srv.url}/release/get-token"
        self.assertEqual(create_client(api_url=api_url).get_record_info().source, "endpoint")
        srv.stop()

        gitee = self.gitee(repo="tokendist/tokens", branches=["master", "main"])
        gitee_rec = make_record()
        gitee.double.put_file("token.json", json.dumps(gitee_rec), branch="main")
        cap = CaptureLog()
        client = create_client(api_url=api_url, gitee={**gitee.options, "branch": "main"},
                               logger=cap.logger, timeout=1)
        info = client.get_record_info()
        self.assertEqual(info.source, "gitee")
        same_token(self, info.record["access_token"], gitee_rec["access_token"])
        gets = gitee.gets()
        self.assertEqual(len(gets), 1)
        self.assertEqual(gets[0]["query"], {"ref": "main", "access_token": GITEE_TOKEN})
        self.assertEqual(gets[0]["path"], "/api/v5/repos/tokendist/tokens/contents/token.json")
        self.assertTrue(any("腾讯云函数 token获取失败: 网络错误" in line for line in cap.lines))
        self.assertEqual(cap.leaks(GITEE_TOKEN, gitee_rec["access_token"]), [])
        self.assertEqual(client.get_record_info().source, "memory")
        self.assertEqual(len(gitee.gets()), 1)

    def test_gitee_missing_file_wrong_token_and_bad_content(self) -> None:
        gitee = self.gitee(missing_file="404")

        def only(**over: str) -> object:
            return create_client({"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": NOWHERE},
                                 gitee={**gitee.options, **over})

        self.assertError(only().get_access_token, "ENOTFOUND_TOKEN",
                         r"^❌ Gitee token获取失败: 文件不存在 \(token\.json\)$")
        gitee.double.control({"missing_file": "empty_list"})
        err = self.assertError(only().get_access_token, "ENOTFOUND_TOKEN")
        self.assertEqual(err.source, "gitee")

        gitee.set_record(make_record())
        err = self.assertError(only(access_token="wrong-gitee-pat").get_access_token,
                               "EAUTH")
        self.assertEqual(err.status, 401)
        self.assertNotIn("wrong-gitee-pat", str(err) + (err.url or ""))
        self.assertIn("access_token=***", err.url)
        gitee.set_raw("not json")
        self.assertError(only().get_access_token, "EINVALID", "文件内容不是JSON")
        gitee.set_raw(json.dumps({"access_token": "x"}))
        self.assertError(only().get_access_token, "EINVALID", "缺少字段 expire_time")

    @needs_bin
    def test_server_and_gitee_down_then_cache_written_earlier(self) -> None:
        folder = os.path.join(self.tempdir(), "sub")
        cache = os.path.join(folder, "token-cache.json")
        srv = self.server()
        rec = make_record(tenant_access_token="t-tenant-abcdefghijkl")
        srv.push(rec)
        api_url = f"{srv.url}/v1/tokens/default"
        same_token(self, create_client(api_url=api_url, cache_file=cache).get_access_token(),
                   rec["access_token"])
        self.assertEqual(stat.S_IMODE(os.stat(cache).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode), 0o700, "the folder is created 0700")
        with open(cache, encoding="utf-8") as f:
            on_disk = json.load(f)
        same_token(self, on_disk["access_token"], rec["access_token"], "cached access_token")
        self.assertEqual(on_disk["tenant_access_token"], rec["tenant_access_token"])
        self.assertEqual(os.listdir(folder), ["token-cache.json"], "no temp files left behind")

        srv.stop()
        gitee = self.gitee()
        gitee.double.control({"fail": "500"})
        client = create_client(api_url=api_url, gitee=gitee.options, cache_file=cache, timeout=1)
        info = client.get_record_info()
        self.assertEqual(info.source, "cache")
        same_token(self, info.record["access_token"], rec["access_token"])
        self.assertGreater(info.remaining_seconds, 7000)
        self.assertEqual(len(gitee.gets()), 1, "Gitee was tried before the cache")

    @needs_bin
    def test_newer_token_replaces_the_cache_file(self) -> None:
        d = self.tempdir()
        cache = os.path.join(d, "c.json")
        srv = self.server()
        a, b = make_record(), make_record()
        srv.push(a)
        create_client(api_url=f"{srv.url}/v1/tokens/default", cache_file=cache).get_access_token()
        srv.push(b)
        create_client(api_url=f"{srv.url}/v1/tokens/default", cache_file=cache).get_access_token()
        with open(cache, encoding="utf-8") as f:
            same_token(self, json.load(f)["access_token"], b["access_token"])
        self.assertEqual(stat.S_IMODE(os.stat(cache).st_mode), 0o600)
        self.assertEqual(os.listdir(d), ["c.json"])

    @needs_bin
    def test_cache_file_names_its_token_and_another_name_is_refused(self) -> None:
        """Two scripts share one cache file (TOKENDIST_CACHE_FILE set once in a
        profile): a client of 'wechat' is never handed the default token from
        it, and the default client gets the record without the two members."""
        cache = os.path.join(self.tempdir(), "token.json")
        srv = self.server()
        rec = make_record()
        srv.push(rec)
        base = srv.url
        create_client(api_url=base, cache_file=cache).get_access_token()
        with open(cache, encoding="utf-8") as f:
            on_disk = json.load(f)
        self.assertEqual((on_disk["tokendist_name"], on_disk["tokendist_kind"]), ("default", "token"))
        srv.stop()
        err = self.assertError(create_client(api_url=base, name="wechat", cache_file=cache, timeout=1)
                               .get_access_token, "EALLFAILED")
        self.assertEqual(err.errors[-1].code, "ENOTFOUND_TOKEN")
        self.assertEqual(err.errors[-1].message, "❌ 本地缓存 token获取失败: 缓存文件属于 token 'default'，"
                         "不是 'wechat': 每个 token 名称请用自己的缓存文件")
        info = create_client(api_url=base, cache_file=cache, timeout=1).get_record_info()
        self.assertEqual(info.source, "cache")
        same_token(self, info.record["access_token"], rec["access_token"])
        self.assertNotIn("tokendist_name", info.record)
        self.assertNotIn("tokendist_kind", info.record)

    def test_cache_file_of_a_ticket_or_from_before_the_members(self) -> None:
        cache = os.path.join(self.tempdir(), "token.json")
        rec = make_record()
        only = {"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": NOWHERE}
        # What `tokendist get --ticket jsapi_ticket --cache F` writes: not a token.
        with open(cache, "w", encoding="utf-8") as f:
            json.dump({**rec, "tokendist_name": "default", "tokendist_kind": "jsapi_ticket"}, f)
        self.assertError(create_client(only, cache_file=cache).get_access_token, "ENOTFOUND_TOKEN",
                         r"^❌ 本地缓存 token获取失败: 缓存文件存的是 token 'default' 的 jsapi_ticket，"
                         r"不是 access token: ")
        # Written before the members existed (and saved with a BOM): the
        # default token, and no other name's.
        with open(cache, "w", encoding="utf-8-sig") as f:
            json.dump(rec, f)
        same_token(self, create_client(only, cache_file=cache).get_access_token(), rec["access_token"])
        self.assertError(create_client(only, name="wechat", cache_file=cache).get_access_token,
                         "ENOTFOUND_TOKEN", r"缓存文件没有标明属于哪个 token \(旧格式\)，只当作 token 'default' "
                         r"的 access token，不是 'wechat' 的 access token")
        with open(cache, "w", encoding="utf-8") as f:
            json.dump({**rec, "tokendist_name": "Bad Name"}, f)
        self.assertError(create_client(only, cache_file=cache).get_access_token, "EINVALID",
                         "缓存文件的 tokendist_name 或 tokendist_kind 无效")

    def test_gitee_asked_at_most_once_a_minute(self) -> None:
        """With the endpoint down every get falls back to Gitee; within a minute
        a client uses Gitee's last answer (a record or a failure) instead of
        asking again, as the C library does, and waiting after a report asks it
        no more (Gitee publishes no limit; one repository serves many clients)."""
        gitee = self.gitee()
        gitee.set_record(make_record(expire_in=200))   # below the 300 s minimum: every get falls through
        client = create_client(api_url=dead_url(), gitee=gitee.options, timeout=2)
        for _ in range(20):
            err = self.assertError(client.get_access_token, "EALLFAILED")
            self.assertEqual(err.errors[-1].code, "EEXPIRED")
        self.assertEqual(len(gitee.gets()), 1)

        gitee.set_record(make_record())
        n = len(gitee.gets())
        waiting = create_client(api_url=dead_url(), gitee=gitee.options, timeout=2, refresh_wait=3)
        token = waiting.get_access_token()
        waiting.report_invalid(token)
        # Nothing else turns up during the wait: the reported token again, and
        # Gitee was asked once for both gets.
        same_token(self, waiting.get_access_token(), token)
        self.assertEqual(len(gitee.gets()), n + 1)

        gitee.double.control({"fail": "500"})
        failing = create_client(api_url=dead_url(), gitee=gitee.options, timeout=2)
        n = len(gitee.gets())
        for _ in range(3):
            self.assertError(failing.get_access_token, "EALLFAILED", "Gitee token获取失败: HTTP 500")
        self.assertEqual(len(gitee.gets()), n + 1)

    def test_only_the_cache_file_and_it_is_missing(self) -> None:
        client = create_client({"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": NOWHERE},
                               cache_file=os.path.join(self.tempdir(), "none.json"))
        err = self.assertError(client.get_access_token, "ENOTFOUND_TOKEN")
        self.assertEqual(str(err), "❌ 本地缓存 token获取失败: 缓存文件不存在")

    @needs_bin
    def test_expired_everywhere_names_each_source(self) -> None:
        cache = os.path.join(self.tempdir(), "c.json")
        with open(cache, "w", encoding="utf-8") as f:
            json.dump(make_record(expire_in=-600), f)
        srv = self.server()
        srv.push(make_record(expire_in=120))        # served, but the client wants ≥ 300 s
        gitee = self.gitee()
        gitee.set_record(make_record(expire_in=-30))
        client = create_client(api_url=f"{srv.url}/v1/tokens/default", gitee=gitee.options,
                               cache_file=cache)
        err = self.assertError(client.get_access_token, "EALLFAILED")
        self.assertEqual(err.reason, "expired")
        self.assertEqual([(e.source, e.code) for e in err.errors],
                         [("endpoint", "EEXPIRED"), ("gitee", "EEXPIRED"), ("cache", "EEXPIRED")])
        lines = str(err).split("\n")
        self.assertEqual(lines[0], "❌ token获取失败: 所有来源的token均已过期或即将过期")
        self.assertRegex(lines[1], r"^  - 腾讯云函数 token获取失败: token即将过期 \(剩余 1[01]\d 秒，"
                                   r"要求至少 300 秒\) \[http://127\.0\.0\.1:\d+/v1/tokens/default\]$")
        self.assertRegex(lines[2], r"^  - Gitee token获取失败: token已过期 \(已过期 (29|3\d) 秒\) "
                                   r"\[tokendist/tokens/token\.json\]$")
        self.assertRegex(lines[3], r"^  - 本地缓存 token获取失败: token已过期 \(已过期 \d+ 秒\) \[.*c\.json\]$")
        with open(cache, encoding="utf-8") as f:
            self.assertLess(json.load(f)["expire_timestamp"], time.time(), "the cache file is left alone")

    def test_all_sources_down_lists_each_failure(self) -> None:
        gitee = self.gitee()
        gitee.double.control({"fail": "503"})
        client = create_client(api_url=dead_url(), gitee=gitee.options,
                               cache_file=os.path.join(self.tempdir(), "missing.json"))
        err = self.assertError(client.get_access_token, "EALLFAILED")
        self.assertEqual(err.reason, "failed")
        self.assertEqual([e.code for e in err.errors], ["ENETWORK", "EHTTP", "ENOTFOUND_TOKEN"])
        self.assertRegex(str(err), r"^❌ token获取失败: 所有来源均失败\n  - 腾讯云函数 token获取失败: "
                                   r"网络错误: 无法连接 127\.0\.0\.1:\d+，请检查地址、端口和防火墙，以及服务是否在运行 \(ECONNREFUSED\) \[")
        self.assertRegex(str(err), r"\n  - Gitee token获取失败: HTTP 503: Service Unavailable")
        self.assertRegex(str(err), r"\n  - 本地缓存 token获取失败: 缓存文件不存在")

    @needs_bin
    def test_tencent_cloud_disabled_skips_the_endpoint(self) -> None:
        srv = self.server()
        srv.push(make_record(), path="/release/get-token")
        proxy = self.proxy(srv.url)
        gitee = self.gitee()
        gitee_rec = make_record()
        gitee.set_record(gitee_rec)
        CONFIG = {"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": f"{proxy.url}/release/get-token"}
        info = create_client(CONFIG, gitee=gitee.options).get_record_info()
        self.assertEqual(info.source, "gitee")
        same_token(self, info.record["access_token"], gitee_rec["access_token"])
        self.assertEqual(proxy.requests, [])
