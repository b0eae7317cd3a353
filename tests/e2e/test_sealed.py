"""The sealed Gitee copy end to end, on the C side: `tokendist keygen`, the
TOKENDIST_SHARE_KEY setting, the refresher sealing the file (put-if-newer
on sealed files, key rotation, a file never holding the token in any
commit), and the readers -- `tokendist get` and libtokendist through
tests/client_driver.c -- opening it or refusing it clearly and going on to
the cache file.  Sealed files the refresher would not write on its own
come from tests/doubles/sealer.py, which reproduces the test vector."""
import base64
import json
import os
import re
import time
import unittest

import harness
import sealer
from feishu_env import PUSH_KEY, FeishuEnv
from gitee import DEFAULT_TOKEN as GITEE_TOKEN, GiteeDouble
from test_client_lib import DRIVER, Driver, fnv

TD_EINVAL, TD_ESHAREKEY = -3, -17
REPO = "tokendist/tokens"
TOKEN_S = "t-sealedSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"
TOKEN_C = "t-sealedCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
TOKEN_N = "t-sealedNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN"


def open_file(key, text, name="default"):
    """The record inside a sealed file (the test's own, independent opener)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    env = json.loads(text)
    pt = AESGCM(base64.b64decode(key)).decrypt(base64.b64decode(env["nonce"]), base64.b64decode(env["ct"]),
                                              sealer.aad(env["kid"], name, env["generated_timestamp"]))
    return json.loads(pt)


def flip_b64(text, field, index):
    """The envelope with one bit of byte `index` of a base64 field changed."""
    env = json.loads(text)
    raw = bytearray(base64.b64decode(env[field]))
    raw[index] ^= 1
    env[field] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(env, separators=(",", ":"))


def with_field(text, field, value):
    env = json.loads(text)
    env[field] = value
    return json.dumps(env, separators=(",", ":"))


class TestSealer(unittest.TestCase):
    def test_reproduces_the_vector(self):
        self.assertEqual(sealer.check(), [])


class Keygen(harness.TestCase):
    def test_prints_a_new_key_and_only_that(self):
        keys = set()
        for _ in range(2):
            r = self.cli("keygen")
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            self.assertRegex(r.stdout, r"^[A-Za-z0-9+/]{43}=\n$")
            self.assertEqual(len(base64.b64decode(r.stdout.strip(), validate=True)), 32)
            keys.add(r.stdout)
        self.assertEqual(len(keys), 2)
        r = self.cli("keygen", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("TOKENDIST_SHARE_KEY", r.stdout)
        self.assertEqual(self.cli("keygen", "--bits").returncode, 2)

    def test_bad_keys_are_named_by_place_never_shown(self):
        good = sealer.new_key()
        bad = good[:-2] + "-="            # a URL-safe letter
        self.secrets += [good, bad, good[:-1]]
        for value, place in ((bad, 1), (good + "," + good[:-1], 2)):
            for cmd in ("refresh", "get", "serve"):
                r = self.cli(cmd, "--print-config", env={"TOKENDIST_SHARE_KEY": value})
                self.assertEqual(r.returncode, 2, cmd)
                self.assertIn("TOKENDIST_SHARE_KEY 的第 %d 个密钥无效" % place, r.stderr)
                self.assertIn("tokendist keygen", r.stderr)
        r = self.cli("get", "--print-config", env={"TOKENDIST_SHARE_KEY": ",".join([good] * 9)})
        self.assertEqual(r.returncode, 2)
        self.assertIn("最多 8 个密钥", r.stderr)
        # --print-config: a fingerprint per key
        other = sealer.new_key()
        self.secrets.append(other)
        r = self.cli("refresh", "--print-config", env={"TOKENDIST_SHARE_KEY": good + ", " + other})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^TOKENDIST_SHARE_KEY=sha256:[0-9a-f]{8},sha256:[0-9a-f]{8}$")


class SealedRefresh(FeishuEnv, harness.TestCase):
    """The refresher writes the Gitee copy sealed; `tokendist get` reads it."""

    def setUp(self):
        super().setUp()
        self.start_feishu()
        self.start_gitee()
        self.key = sealer.new_key()
        self.secrets.append(self.key)

    def once(self, key=None, **env):
        if key is not None:
            env["TOKENDIST_SHARE_KEY"] = key
        r = self.cli("refresh", "--once", env=self.feishu_env(**env))
        self.remember_tokens()
        return r

    def text(self):
        return self.gitee.file_text("token.json", repo=REPO)

    def put(self, text):
        self.gitee.put_file("token.json", text, repo=REPO)

    def get(self, key=None, *args):
        env = {"GITEE_OWNER": "tokendist", "GITEE_REPO": "tokens", "GITEE_FILE_PATH": "token.json",
               "GITEE_ACCESS_TOKEN": GITEE_TOKEN, "GITEE_BASE_URL": self.gitee.url + "/api/v5",
               "TOKENDIST_SHARE_KEY": key or ""}
        # stdout is the token: only stderr goes to the outputs searched for secrets
        r = harness.run_cli("get", *args, env=env)
        self.outputs.append(r.stderr)
        return r

    def assert_history_holds_no_token(self):
        tokens = [t["token"] for t in self.feishu.state()["tokens"]]
        self.assertTrue(tokens)
        for c in self.gitee.commits:
            for t in tokens:
                self.assertNotIn(t, c["text"], "a commit holds a token")
            self.assertNotIn("access_token", c["text"])
        for f in self.gitee.state()["files"].values():
            for t in tokens:
                self.assertNotIn(t, f["text"])

    def test_sealed_file_never_holds_the_token_and_get_opens_it(self):
        r = self.once(self.key)
        self.assertEqual(r.returncode, 0, r.stderr)
        kid = sealer.kid(self.key)
        msgs = self.log_messages(r.stderr)
        self.assertIn("Gitee 上的 token 记录以共享密钥加密 (AES-256-GCM，kid %s)" % kid, msgs)
        self.assertIn("Token已成功分发到Gitee (已加密)", msgs)
        self.assertFalse([m for m in msgs if "未加密" in m], msgs)
        env = json.loads(self.text())
        self.assertEqual(list(env), ["v", "alg", "kid", "name", "generated_timestamp", "nonce", "ct"])
        self.assertEqual((env["v"], env["alg"], env["kid"], env["name"]), (1, "A256GCM", kid, "default"))
        rec = open_file(self.key, self.text())
        self.assertEqual(rec["access_token"], self.feishu.current_token())
        self.assertEqual(env["generated_timestamp"], rec["generated_timestamp"])
        # a second token: the history (every commit) holds none of them
        self.feishu.control({"advance": 5500})
        self.assertEqual(self.once(self.key).returncode, 0)
        self.assertEqual([c["method"] for c in self.gitee.commits], ["POST", "PUT"])
        self.assert_history_holds_no_token()

        g = self.get(self.key)
        self.assertEqual(g.returncode, 0, g.stderr)
        self.assertEqual(g.stdout.strip(), self.feishu.current_token())
        g = self.get(self.key, "--json")
        self.assertEqual(json.loads(g.stdout)["access_token"], self.feishu.current_token())

    def test_get_without_the_key_or_with_another_is_refused_clearly(self):
        self.assertEqual(self.once(self.key).returncode, 0)
        kid = sealer.kid(self.key)
        g = self.get(None)
        self.assertEqual(g.returncode, 4, g.stderr)
        self.assertIn("❌ Gitee token获取失败: 记录已加密 (kid %s)，但没有设置共享密钥" % kid, g.stderr)
        self.assertIn("💡 检查共享密钥", g.stderr)
        other = sealer.new_key()
        self.secrets.append(other)
        g = self.get(other)
        self.assertEqual(g.returncode, 4)
        self.assertIn("记录是用另一把共享密钥加密的 (kid %s)，已设置的密钥是 kid %s" % (kid, sealer.kid(other)),
                      g.stderr)
        self.assertEqual(g.stdout, "")

    def test_plaintext_warns_once_at_start_and_a_keyed_reader_refuses_it(self):
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [m for m in self.log_messages(r.stderr) if "Gitee 上的 token 记录未加密" in m]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertIn("能读取仓库 tokendist/tokens 的人", warnings[0])
        self.assertIn("TOKENDIST_SHARE_KEY", warnings[0])
        self.assertEqual(json.loads(self.text())["access_token"], self.feishu.current_token())  # the seed's
        g = self.get(self.key)
        self.assertEqual(g.returncode, 4)
        self.assertIn("记录未加密，但设置了共享密钥", g.stderr)
        self.assertEqual(self.get(None).stdout.strip(), self.feishu.current_token())

    def test_turning_sealing_on_reseals_the_same_record(self):
        self.assertEqual(self.once().returncode, 0)
        self.assertEqual(self.once(self.key).returncode, 0)      # same Feishu token, now sealed
        self.assertEqual([c["method"] for c in self.gitee.commits], ["POST", "PUT"])
        self.assertEqual(open_file(self.key, self.text())["access_token"], self.feishu.current_token())
        r = self.once(self.key)                                  # sealed already: no new commit
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Token已成功分发到Gitee (已加密)", self.log_messages(r.stderr))
        self.assertEqual(len(self.gitee.commits), 2)

    def test_newer_sealed_file_is_not_rolled_back(self):
        # Another refresher wrote a newer sealed record; this one knows only
        # what the endpoint serves (older) and pushes a token generated now.
        self.start_endpoint()
        now = int(time.time())
        self.secrets += [TOKEN_N, TOKEN_C]
        old = harness.make_record(TOKEN_C, generated=now - 600)
        self.assertEqual(self.endpoint.post("/release/get-token", old, key=PUSH_KEY).status, 200)
        # Ours opens, so its time is believed however far ahead; a key we do
        # not have is believed within the clock-skew bound (300 s).
        for key, ahead in ((self.key, 600), (sealer.new_key(), 120)):
            with self.subTest(ours=key == self.key):
                if key != self.key:
                    self.secrets.append(key)
                newer = sealer.seal(key, harness.make_record(TOKEN_N, generated=now + ahead))
                self.put(newer)
                commits = len(self.gitee.commits)
                r = self.once(self.key)
                self.assertEqual(r.returncode, 0, r.stderr)     # the endpoint took it
                self.assertEqual(self.text(), newer)            # untouched
                self.assertEqual(len(self.gitee.commits), commits)
                self.assertIn("⚠️ Gitee 上已有更新的 token 记录 (generated_timestamp %d，本次 " % (now + ahead),
                              r.stderr)
                self.assertNotIn("Gitee上传失败", r.stderr)
        # a keyless refresher judges a sealed file by its clear time too
        r = self.once()
        self.assertIn("已有更新的 token 记录 (generated_timestamp %d" % (now + 120), r.stderr)
        # an older sealed file is replaced
        self.put(sealer.seal(self.key, harness.make_record(TOKEN_N, generated=now - 300)))
        r = self.once(self.key)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open_file(self.key, self.text())["access_token"], self.feishu.current_token())

    def test_forged_file_with_our_kid_does_not_block_the_refresher(self):
        """Someone with write access puts an envelope naming our key and a time
        far ahead: it does not open, so its clear time is not believed."""
        now = int(time.time())
        self.secrets.append(TOKEN_N)
        forged = flip_b64(sealer.seal(self.key, harness.make_record(TOKEN_N, generated=now + 10 ** 8)), "ct", 3)
        self.put(forged)
        r = self.once(self.key)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Gitee 上的加密记录打不开", r.stderr)
        self.assertEqual(open_file(self.key, self.text())["access_token"], self.feishu.current_token())

    def test_unverifiable_file_dated_ahead_does_not_block_a_keyed_refresher(self):
        """A plaintext record, or an envelope of a key we lack, dated further
        ahead than --max-clock-skew: anyone with write access (a seed producer,
        a refresher whose clock is ahead) could have put it there, and a keyed
        reader would refuse it anyway.  The keyed refresher does not believe
        its time: it seals over it and says why, once.  Within the bound
        put-if-newer stands."""
        now = int(time.time())
        other = sealer.new_key()
        self.secrets += [TOKEN_N, other]
        files = {
            "plaintext": (json.dumps(harness.make_record(TOKEN_N, generated=now + 86400)),
                          "Gitee 上的记录未加密，无法验证；它的 generated_timestamp %d" % (now + 86400)),
            "another key": (sealer.seal(other, harness.make_record(TOKEN_N, generated=now + 86400)),
                            "Gitee 上的记录是用另一把共享密钥加密的 (kid %s)，无法验证；它的 generated_timestamp %d"
                            % (sealer.kid(other), now + 86400)),
        }
        for what, (text, why) in files.items():
            with self.subTest(what):
                self.put(text)
                r = self.once(self.key)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("Token已成功分发到Gitee (已加密)", self.log_messages(r.stderr))
                self.assertEqual(open_file(self.key, self.text())["access_token"], self.feishu.current_token())
                said = [m for m in self.log_messages(r.stderr) if "无法验证" in m]
                self.assertEqual(len(said), 1, r.stderr)
                self.assertIn(why, said[0])
                self.assertIn("超过允许的 300 秒 (--max-clock-skew)", said[0])
                # a keyed reader opens what the refresher wrote
                g = self.get(self.key)
                self.assertEqual(g.returncode, 0, g.stderr)
                self.assertEqual(g.stdout.strip(), self.feishu.current_token())
        # within the bound the time stands: 120 s ahead is not overwritten
        text = json.dumps(harness.make_record(TOKEN_N, generated=now + 120))
        self.put(text)
        r = self.once(self.key)
        self.assertIn("⚠️ Gitee 上已有更新的 token 记录 (generated_timestamp %d" % (now + 120), r.stderr)
        self.assertNotIn("无法验证", r.stderr)
        self.assertEqual(self.text(), text)
        # and the bound is --max-clock-skew's: with 60 s, 120 s ahead is too far
        r = self.once(self.key, TOKENDIST_MAX_CLOCK_SKEW="60")
        self.assertIn("超过允许的 60 秒 (--max-clock-skew)", r.stderr)
        self.assertEqual(open_file(self.key, self.text())["access_token"], self.feishu.current_token())

    def test_key_rotation(self):
        old, new = self.key, sealer.new_key()
        self.secrets.append(new)
        self.assertEqual(self.once(old).returncode, 0)
        old_file = self.text()
        self.assertEqual(json.loads(old_file)["kid"], sealer.kid(old))
        # readers first: NEW,OLD reads the old file
        self.assertEqual(self.get(new + "," + old).stdout.strip(), self.feishu.current_token())
        # then the refresher: NEW first seals
        self.feishu.control({"advance": 5500})
        self.assertEqual(self.once(new + "," + old).returncode, 0)
        self.assertEqual(json.loads(self.text())["kid"], sealer.kid(new))
        for keys in (new + "," + old, old + "," + new, new):
            self.assertEqual(self.get(keys).stdout.strip(), self.feishu.current_token(), keys)
        g = self.get(old)
        self.assertEqual(g.returncode, 4)
        self.assertIn("另一把共享密钥", g.stderr)
        self.assert_history_holds_no_token()


@unittest.skipUnless(os.path.exists(DRIVER), "client_driver not built")
class SealedClientLib(harness.TestCase):
    """libtokendist (TD_OPT_SHARE_KEY) reading a sealed Gitee copy: each way a
    file can be wrong is refused with its code and sentence, and the client
    goes on to the cache file."""

    def setUp(self):
        super().setUp()
        self.key = sealer.new_key()
        self.secrets += [self.key, TOKEN_S, TOKEN_C, GITEE_TOKEN]
        self.g = GiteeDouble().start()
        self.addCleanup(self.g.stop)
        self.cache = os.path.join(self.tmp, "cache.json")
        self.file = sealer.seal(self.key, harness.make_record(TOKEN_S))

    def driver(self, key, *extra):
        args = ["--gitee-base", self.g.url + "/api/v5", "--gitee-owner", "tokendist", "--gitee-repo", "tokens",
                "--gitee-path", "token.json", "--gitee-token", GITEE_TOKEN] + list(extra)
        if key:
            args += ["--share-key", key]
        return Driver(self, *args)

    def read(self, text, key, *extra):
        self.g.put_file("token.json", text)
        return self.driver(key, *extra).cmd("get app")

    def test_opens_the_sealed_file(self):
        r = self.read(self.file, self.key)
        self.assertEqual((r["rc"], r["source"], r["token_hash"]), (0, "gitee", fnv(TOKEN_S)))
        # the tenant token of a record without one: the access token (the seed's records)
        t = self.driver(self.key).cmd("get tenant")
        self.assertEqual((t["rc"], t["token_hash"]), (0, fnv(TOKEN_S)))

    def test_every_refusal_has_its_code_and_sentence(self):
        kid = sealer.kid(self.key)
        other = sealer.new_key()
        self.secrets.append(other)
        n = len(base64.b64decode(json.loads(self.file)["ct"]))
        cases = [
            ("no key", self.file, None, TD_ESHAREKEY, "记录已加密 (kid %s)，但没有设置共享密钥" % kid),
            ("wrong key", self.file, other, TD_ESHAREKEY,
             "记录是用另一把共享密钥加密的 (kid %s)，已设置的密钥是 kid %s" % (kid, sealer.kid(other))),
            ("unknown kid", with_field(self.file, "kid", "0123456789abcdef"), self.key, TD_ESHAREKEY,
             "另一把共享密钥加密的 (kid 0123456789abcdef)"),
            ("flipped ct", flip_b64(self.file, "ct", 7), self.key, TD_EINVAL, "加密记录未通过校验 (kid %s)" % kid),
            ("flipped tag", flip_b64(self.file, "ct", n - 1), self.key, TD_EINVAL, "未通过校验"),
            ("flipped nonce", flip_b64(self.file, "nonce", 0), self.key, TD_EINVAL, "未通过校验"),
            ("changed time", with_field(self.file, "generated_timestamp", json.loads(self.file)["generated_timestamp"] + 1),
             self.key, TD_EINVAL, "未通过校验"),
            ("another name", with_field(self.file, "name", "wx"), self.key, TD_EINVAL, "加密记录属于 token 'wx'，不是 'default'"),
            ("another version", with_field(self.file, "v", 2), self.key, TD_EINVAL, "v=2 不受支持"),
            ("plaintext while keyed", json.dumps(harness.make_record(TOKEN_S)), self.key, TD_ESHAREKEY, "记录未加密"),
        ]
        for what, text, key, rc, says in cases:
            with self.subTest(what):
                r = self.read(text, key)
                self.assertEqual(r["rc"], rc, r)
                self.assertRegex(r["err"], "^Gitee token获取失败: .*" + re.escape(says))
                self.assertNotIn(TOKEN_S, r["err"])

    def test_a_refused_file_falls_through_to_the_cache(self):
        with open(self.cache, "w") as f:
            json.dump(harness.make_record(TOKEN_C), f)
        for key in (None, sealer.new_key()):
            if key:
                self.secrets.append(key)
            r = self.read(self.file, key, "--cache", self.cache)
            self.assertEqual((r["rc"], r["source"], r["token_hash"]), (0, "cache", fnv(TOKEN_C)))
        os.unlink(self.cache)
        r = self.read(self.file, None, "--cache", self.cache)
        self.assertEqual(r["rc"], TD_ESHAREKEY)
        self.assertRegex(r["err"], r"Gitee token获取失败: 记录已加密 .*\n  - 本地缓存 token获取失败: 缓存文件不存在")

    def test_rotation_reads_old_and_new_files(self):
        new = sealer.new_key()
        self.secrets.append(new)
        old_file = self.file
        new_file = sealer.seal(new, harness.make_record(TOKEN_C))
        for keys in (new + "," + self.key, self.key + ", " + new):
            self.assertEqual(self.read(old_file, keys)["token_hash"], fnv(TOKEN_S), keys)
            self.assertEqual(self.read(new_file, keys)["token_hash"], fnv(TOKEN_C), keys)

    def test_bad_share_key_option_fails_td_client_new(self):
        r = Driver(self, "--gitee-owner", "o", "--gitee-repo", "r", "--share-key", "AAAA,").cmd("get app")
        self.assertEqual(r["rc"], TD_EINVAL)
        self.assertIn("选项 TD_OPT_SHARE_KEY: TOKENDIST_SHARE_KEY 的第 1 个密钥无效", r["err"])
        self.assertNotIn("AAAA", r["err"])

if __name__ == "__main__":
    unittest.main()
