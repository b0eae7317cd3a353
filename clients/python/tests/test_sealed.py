"""The sealed Gitee copy (share_key): the test vector, the real refresher's
sealed file, every way a file can be wrong refused with its code and a clear
message (then the cache file), key rotation, and the optional dependency."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from typing import Any

from harness import PACKAGE_DIR, CaptureLog, TestCase, feishu_args, make_record, needs_bin, same_token
from gitee import DEFAULT_TOKEN as GITEE_TOKEN
import sealer
from tokendist_client import create_client
from tokendist_client import sealed

VECTOR = sealer.vector()
NOWHERE = "https://x.invalid/release/get-token"


def flip_b64(text: str, field: str, index: int) -> str:
    env = json.loads(text)
    raw = bytearray(base64.b64decode(env[field]))
    raw[index] ^= 1
    env[field] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(env)


def with_field(text: str, field: str, value: Any) -> str:
    env = json.loads(text)
    env[field] = value
    return json.dumps(env)


class Vector(TestCase):
    def test_kid_and_associated_data(self) -> None:
        key = base64.b64decode(VECTOR["key"])
        self.assertEqual(sealed.kid_of(key), VECTOR["kid"])
        self.assertEqual(sealed.aad(VECTOR["kid"], VECTOR["name"], VECTOR["generated_timestamp"]).decode(),
                         VECTOR["aad"])
        self.assertEqual(sealed.parse_keys(VECTOR["key"])[0].kid, VECTOR["kid"])

    def test_opens_the_vector_through_the_client(self) -> None:
        """The vector's file in the Gitee double, whose Date header says the
        vector's time, so the client judges the record fresh."""
        gitee = self.gitee()
        gitee.set_raw(VECTOR["file"])
        gitee.double.control({"clock_offset": VECTOR["generated_timestamp"] + 1800 - time.time()})
        record = json.loads(VECTOR["plaintext"])
        for field in ("access_token", "tenant_access_token"):
            client = create_client(gitee=gitee.options, share_key=VECTOR["key"], field=field)  # type: ignore[arg-type]
            info = client.get_record_info()
            self.assertEqual(info.source, "gitee")
            self.assertEqual(info.record, record)
            same_token(self, client.get_access_token(), record[field])
            self.assertTrue(5000 < info.remaining_seconds <= 5400, info.remaining_seconds)

    def test_opens_exactly_what_the_vector_says(self) -> None:
        keys = sealed.parse_keys(VECTOR["key"])
        self.assertEqual(sealed.open_file(VECTOR["file"].encode(), keys, "default"),
                         json.loads(VECTOR["plaintext"]))
        self.assertEqual(sealer.check(), [])


class Refusals(TestCase):
    """A file the client cannot trust: refused with its code and a sentence that
    says what to do, and the next source (the cache file) is used."""

    def setUp(self) -> None:
        self.key = sealer.new_key()
        self.rec = make_record()
        self.file = sealer.seal(self.key, self.rec)
        self.gitee_ = self.gitee()

    def read(self, text: str, key: str | None, **kw: Any) -> Any:
        self.gitee_.set_raw(text)
        client = create_client({"TENCENT_CLOUD_ENABLED": False, "TENCENT_CLOUD_API_URL": NOWHERE},
                               gitee=self.gitee_.options, share_key=key, **kw)  # type: ignore[arg-type]
        return client

    def test_opens_a_sealed_file(self) -> None:
        same_token(self, self.read(self.file, self.key).get_access_token(), self.rec["access_token"])
        # the key from the seed-style CONFIG / environment
        client = create_client({"GITEE_OWNER": "tokendist", "GITEE_REPO": "tokens",
                                "GITEE_ACCESS_TOKEN": GITEE_TOKEN,
                                "GITEE_BASE_URL": self.gitee_.double.url + "/api/v5",
                                "TOKENDIST_SHARE_KEY": self.key})
        same_token(self, client.get_access_token(), self.rec["access_token"])

    def test_each_refusal(self) -> None:
        kid = sealer.kid(self.key)
        other = sealer.new_key()
        n = len(base64.b64decode(json.loads(self.file)["ct"]))
        gen = json.loads(self.file)["generated_timestamp"]
        cases = [
            ("no key", self.file, None, "ESHAREKEY",
             f"记录已加密 (kid {kid})，但没有设置共享密钥: 请设置 TOKENDIST_SHARE_KEY"),
            ("wrong key", self.file, other, "ESHAREKEY",
             f"记录是用另一把共享密钥加密的 (kid {kid})，已设置的密钥是 kid {sealer.kid(other)}"),
            ("unknown kid", with_field(self.file, "kid", "0123456789abcdef"), self.key, "ESHAREKEY",
             "另一把共享密钥加密的 (kid 0123456789abcdef)"),
            ("flipped ct", flip_b64(self.file, "ct", 7), self.key, "EINVALID",
             f"加密记录未通过校验 (kid {kid}): 内容被改动过或已损坏"),
            ("flipped tag", flip_b64(self.file, "ct", n - 1), self.key, "EINVALID", "未通过校验"),
            ("flipped nonce", flip_b64(self.file, "nonce", 11), self.key, "EINVALID", "未通过校验"),
            ("changed time", with_field(self.file, "generated_timestamp", gen - 1), self.key, "EINVALID",
             "未通过校验"),
            ("another name", with_field(self.file, "name", "wx"), self.key, "EINVALID",
             "加密记录属于 token 'wx'，不是 'default'"),
            ("another version", with_field(self.file, "v", 2), self.key, "EINVALID", "v=2 不受支持"),
            ("another alg", with_field(self.file, "alg", "A128GCM"), self.key, "EINVALID",
             "算法 A128GCM 不受支持"),
            ("url-safe nonce", with_field(self.file, "nonce", json.loads(self.file)["nonce"][:-1] + "-"),
             self.key, "EINVALID", "nonce 无效"),
            ("plaintext while keyed", json.dumps(self.rec), self.key, "ESHAREKEY", "记录未加密，但设置了共享密钥"),
        ]
        for what, text, key, code, says in cases:
            with self.subTest(what):
                cap = CaptureLog()
                err = self.assertError(self.read(text, key, logger=cap.logger).get_access_token, code)
                self.assertTrue(str(err).startswith("❌ Gitee token获取失败: "), str(err))
                self.assertIn(says, str(err))
                self.assertEqual(err.source, "gitee")
                self.assertEqual(cap.leaks(self.rec["access_token"], self.key, other), [])

    def test_refused_file_falls_through_to_the_cache(self) -> None:
        cache = os.path.join(self.tempdir(), "cache.json")
        cached = make_record()
        with open(cache, "w", encoding="utf-8") as f:
            json.dump(cached, f)
        for key in (None, sealer.new_key()):
            info = self.read(self.file, key, cache_file=cache).get_record_info()
            self.assertEqual(info.source, "cache")
            same_token(self, info.record["access_token"], cached["access_token"])
        os.unlink(cache)
        err = self.assertError(self.read(self.file, None, cache_file=cache).get_access_token, "EALLFAILED")
        self.assertEqual([e.code for e in err.errors], ["ESHAREKEY", "ENOTFOUND_TOKEN"])

    def test_rotation_reads_old_and_new_files(self) -> None:
        new = sealer.new_key()
        new_rec = make_record()
        new_file = sealer.seal(new, new_rec)
        for keys in (f"{new},{self.key}", [self.key, new], f" {self.key} , {new} "):
            with self.subTest(keys=type(keys).__name__):
                same_token(self, self.read(self.file, keys).get_access_token(), self.rec["access_token"])
                same_token(self, self.read(new_file, keys).get_access_token(), new_rec["access_token"])
        self.assertError(self.read(new_file, self.key).get_access_token, "ESHAREKEY", "另一把共享密钥")

    def test_bad_keys_are_configuration_errors_that_never_show_the_key(self) -> None:
        good = sealer.new_key()
        for value, place in ((good[:-2] + "-=", 1), (f"{good},{good[:-1]}", 2), (good + "==", 1)):
            with self.subTest(place=place):
                err = self.assertError(lambda: self.read(self.file, value), "ECONFIG",
                                       f"第 {place} 个密钥无效: 应为 32 字节随机数的 base64")
                self.assertNotIn(good[:20], str(err))
        self.assertError(lambda: self.read(self.file, ",".join([good] * 9)), "ECONFIG", "最多 8 个密钥")
        self.assertNotIn(good, repr(create_client(gitee=self.gitee_.options, share_key=good)._o))

    def test_without_cryptography_a_key_is_a_clear_configuration_error(self) -> None:
        code = ("import sys; sys.modules['cryptography'] = None\n"
                "from tokendist_client import create_client, TokendistError\n"
                "g = {'owner': 'o', 'repo': 'r', 'path': 'p'}\n"
                "create_client(gitee=g).get_record  # no key: no cryptography needed\n"
                f"try:\n    create_client(gitee=g, share_key={sealer.new_key()!r})\n"
                "except TokendistError as e:\n    print(e.code, e)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": PACKAGE_DIR})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ECONFIG ❌ tokendist 配置错误: share_key 需要 cryptography 包", r.stdout)
        self.assertIn("tokendist-client[sealed]", r.stdout)


@needs_bin
class RealRefresher(TestCase):
    def test_reads_the_file_the_refresher_sealed(self) -> None:
        feishu = self.feishu()
        gitee = self.gitee()
        key = sealer.new_key()
        g = gitee.options
        srv = self.server(extra_args=feishu_args(feishu) + (
            "--gitee", "--gitee-owner", g["owner"], "--gitee-repo", g["repo"], "--gitee-file-path", g["path"],
            "--gitee-access-token", g["access_token"], "--gitee-base-url", g["base_url"], "--share-key", key))
        end = time.monotonic() + 10
        while gitee.double.file_text("token.json", repo="tokendist/tokens") is None and time.monotonic() < end:
            time.sleep(0.05)
        text = gitee.double.file_text("token.json", repo="tokendist/tokens")
        self.assertIsNotNone(text, "the refresher wrote no Gitee file: " + srv.output()[-2000:])
        token = feishu.state()["tokens"][-1]["token"]
        self.assertNotIn(token, text)
        self.assertEqual(json.loads(text)["kid"], sealer.kid(key))

        client = create_client(api_url=NOWHERE, gitee=g, share_key=key, timeout=2)  # type: ignore[arg-type]
        info = client.get_record_info()
        self.assertEqual(info.source, "gitee")
        same_token(self, info.record["access_token"], token)
        self.assertError(create_client(api_url=NOWHERE, gitee=g, timeout=2).get_access_token,  # type: ignore[arg-type]
                         "EALLFAILED", "Gitee token获取失败: 记录已加密")
