"""`tokendist get` and its fallback sources beyond the server: the Gitee
file and the local cache file, read as the Node and Python clients read
them (issue #13's findings: a file saved with a UTF-8 BOM, a cache file
written for another token name or kind, the seed's Gitee switch)."""
import json
import os
import unittest

import harness
from gitee import DEFAULT_TOKEN as GITEE_TOKEN, GiteeDouble

PUSH_KEY = "push-key-for-get-sources-0001"
TOKEN = "t-getsrcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
TOKEN_G = "t-getsrcGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"
BOM = b"\xef\xbb\xbf"
# No setting may come from the machine running the tests.
CLEAN = {k: "" for k in ("TENCENT_CLOUD_API_URL", "TOKENDIST_URLS", "TOKENDIST_READ_KEY", "GITEE_OWNER",
                         "GITEE_REPO", "TOKENDIST_CACHE_FILE", "TOKENDIST_ENV_FILE", "TOKENDIST_SHARE_KEY")}


class GetSourcesTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH_KEY, TOKEN, TOKEN_G, GITEE_TOKEN]

    def get(self, *args, env=None):
        r = self.cli("get", *args, env={**CLEAN, **(env or {})})
        # Stdout is the token here: compared, never kept for the leak scan.
        self.outputs = [o.replace(TOKEN, "").replace(TOKEN_G, "") for o in self.outputs]
        return r

    def gitee(self, content):
        g = GiteeDouble().start()
        self.addCleanup(g.stop)
        g.put_file("token.json", content)
        return g

    def gitee_env(self, g, **extra):
        return {"GITEE_OWNER": "tokendist", "GITEE_REPO": "tokens", "GITEE_FILE_PATH": "token.json",
                "GITEE_ACCESS_TOKEN": GITEE_TOKEN, "GITEE_BASE_URL": g.url + "/api/v5", **extra}

    # ---- a record file saved with a UTF-8 BOM ----

    def test_gitee_file_with_a_bom_is_read(self):
        """Gitee's web editor (or a Windows tool) saved the plaintext file
        with a BOM: the Node and Python clients read it, and so does C."""
        g = self.gitee(BOM + json.dumps(harness.make_record(TOKEN_G)).encode())
        r = self.get(env=self.gitee_env(g))
        self.assertEqual((r.returncode, r.stdout.strip()), (0, TOKEN_G), r.stderr)

    def test_cache_file_with_a_bom_is_read(self):
        cache = os.path.join(self.tmp, "token.json")
        with open(cache, "wb") as f:
            f.write(BOM + json.dumps(harness.make_record(TOKEN)).encode())
        r = self.get("--cache", cache)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, TOKEN), r.stderr)


if __name__ == "__main__":
    unittest.main()
