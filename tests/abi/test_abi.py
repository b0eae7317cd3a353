"""libtokendist's ABI promise, checked on the built libraries.

* Exports: the .so (nm -D, with symbol versions) and the .a (nm -g) export
  exactly tests/abi/symbols.txt, and a program that defines internal names
  of its own (td_record_parse, td_httpc_do) links against the .a.
* Old programs: examples/get_token.c and tests/client_driver.c, compiled
  with `cc` against tests/abi/tokendist-1.h (the header of the first
  release of ABI 1) and linked to the current .so, run against a real
  server and behave as written.  When the example starts to use something
  newer than release 1, freeze today's copy here and compile that.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import harness  # noqa: E402
from harness import make_record  # noqa: E402

SHARED = os.environ.get("TOKENDIST_LIB_SHARED") or os.path.join(ROOT, "build", "libtokendist.so")
STATIC = os.environ.get("TOKENDIST_LIB_STATIC") or os.path.join(ROOT, "build", "libtokendist.a")
SANITIZE = os.environ.get("TOKENDIST_SANITIZE") == "ON"
PUSH = "pk-abi-test-0123456789abcdef"
APP = "t-abiAppToken000000000000000001"
TENANT = "t-abiTenantToken000000000000001"


def expected():
    with open(os.path.join(HERE, "symbols.txt")) as f:
        return sorted(tuple(line.split()) for line in f if line.strip() and not line.startswith("#"))


def nm(*args):
    out = subprocess.run(["nm", "--defined-only"] + list(args), capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines() if line.strip() and not line.endswith(":")]


def cflags():
    return ["-fsanitize=address,undefined"] if SANITIZE else []


def fnv(s):
    h = 1469598103934665603
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


@unittest.skipUnless(os.path.exists(SHARED) and os.path.exists(STATIC), "libtokendist not built")
class ExportsTest(unittest.TestCase):
    def test_shared_exports_exactly_the_list(self):
        syms = []
        for f in nm("-D", SHARED):
            addr_type_name = f[-2:]
            if addr_type_name[0] == "A":        # the version node itself
                continue
            name, _, version = addr_type_name[1].partition("@@")
            syms.append((name, version))
        self.assertEqual(sorted(syms), expected())

    def test_static_exports_exactly_the_list(self):
        names = sorted(f[-1] for f in nm("-g", STATIC))
        self.assertEqual(names, sorted(n for n, _ in expected()))

    def test_static_internals_do_not_clash(self):
        """A program with functions named like the library's internals links
        against libtokendist.a and calls both."""
        tmp = tempfile.mkdtemp(prefix="tokendist-abi-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = os.path.join(tmp, "clash.c")
        with open(src, "w") as f:
            f.write('#include <stdio.h>\n#include <tokendist.h>\n'
                    'int td_record_parse(void) { return 42; }\n'
                    'int td_httpc_do(void) { return 7; }\n'
                    'int td__client_judge(void) { return 1; }\n'
                    'int main(void) { printf("%d %d %d %s\\n", td_record_parse(), td_httpc_do(),'
                    ' td__client_judge(), td_version()); return 0; }\n')
        libs = subprocess.run(["pkg-config", "--libs", "jansson", "libcurl", "libcrypto"], capture_output=True,
                              text=True, check=True).stdout.split()
        exe = os.path.join(tmp, "clash")
        cc = subprocess.run(["cc", src, "-I", os.path.join(ROOT, "include"), STATIC] + libs +
                            ["-lpthread", "-lm", "-o", exe] + cflags(), capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        r = subprocess.run([exe], capture_output=True, text=True)
        self.assertEqual(r.stdout, "42 7 1 %s\n" % version_of_header(os.path.join(ROOT, "include", "tokendist.h")))


def version_of_header(path):
    with open(path) as f:
        return re.search(r'#define TD_VERSION "([^"]+)"', f.read()).group(1)


@unittest.skipUnless(os.path.exists(SHARED), "libtokendist.so not built")
class Release1ProgramsTest(harness.TestCase):
    """Programs compiled against the release-1 header, run on today's .so."""

    def setUp(self):
        super().setUp()
        inc = os.path.join(self.tmp, "include")
        lib = os.path.join(self.tmp, "lib")
        os.mkdir(inc)
        os.mkdir(lib)
        shutil.copy(os.path.join(HERE, "tokendist-1.h"), os.path.join(inc, "tokendist.h"))
        # -ltokendist finds the development symlink; the binary then asks
        # for the soname, found on LD_LIBRARY_PATH next to it.
        real = os.path.realpath(SHARED)
        soname = re.search(r"SONAME\s+(\S+)", subprocess.run(["objdump", "-p", real], capture_output=True,
                                                               text=True, check=True).stdout).group(1)
        self.assertEqual(soname, "libtokendist.so.1")
        os.symlink(real, os.path.join(lib, soname))
        os.symlink(soname, os.path.join(lib, "libtokendist.so"))
        self.inc, self.lib = inc, lib
        self.env = dict(os.environ, LD_LIBRARY_PATH=lib)
        self.secrets += [PUSH, APP, TENANT]

    def build(self, src, *extra):
        exe = os.path.join(self.tmp, os.path.splitext(os.path.basename(src))[0])
        cc = subprocess.run(["cc", src, "-I", self.inc, "-L", self.lib, "-ltokendist", "-o", exe] +
                            list(extra) + cflags(), capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        return exe

    def run_exe(self, *args, input=None):
        r = subprocess.run(list(args), env=self.env, capture_output=True, text=True, input=input, timeout=60)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def test_get_token_example(self):
        exe = self.build(os.path.join(ROOT, "examples", "get_token.c"))
        srv = self.server(["--push-key", PUSH]).start()
        url = "http://127.0.0.1:%d/release/get-token" % srv.port
        # Nothing stored yet: exit 1, the library's sentence and td_strerror's text.
        r = self.run_exe(exe, url)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("❌ 腾讯云函数 token获取失败: Token not found or expired (没有找到 token (或已过期))", r.stderr)
        self.assertEqual(srv.post("/release/get-token", make_record(APP, tenant_access_token=TENANT),
                                  key=PUSH).status, 200)
        r = self.run_exe(exe, url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^got a tenant token from endpoint: (7199|7200) seconds left "
                                   r"\(libtokendist \d+\.\d+\.\d+\)\n$")
        # The report path (third argument): the server has no refresher, 501.
        r = self.run_exe(exe, url, "", "report")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("report: 报告token无效失败: HTTP 501", r.stderr)

    def test_driver_every_option_and_field(self):
        exe = self.build(os.path.join(ROOT, "tests", "client_driver.c"), "-lpthread")
        srv = self.server(["--push-key", PUSH]).start()
        self.assertEqual(srv.post("/release/get-token", make_record(APP, tenant_access_token=TENANT, ttl=250),
                                  key=PUSH).status, 200)
        cache = os.path.join(self.tmp, "cache.json")
        args = [exe, "--url", "http://127.0.0.1:%d" % srv.port, "--name", "default", "--key", "unused",
                "--cache", cache, "--min-remaining", "0", "--timeout-ms", "3000", "--connect-timeout-ms", "2000",
                "--refresh-wait-ms", "0", "--gitee-base", "http://127.0.0.1:1/api/v5", "--gitee-owner", "o",
                "--gitee-repo", "r", "--gitee-path", "token.json", "--gitee-branch", "main",
                "--gitee-token", "unused"]
        r = self.run_exe(*args, input="get tenant\nget app\nrecord app\nversion\nreport\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        t, a, rec, ver, rep = lines
        self.assertEqual((t["rc"], t["source"], t["origin"], t["token_hash"], t["token_len"]),
                         (0, "endpoint", "endpoint", fnv(TENANT), len(TENANT)), t)
        self.assertTrue(0 < t["remaining"] <= 250 and t["expires"] > 0, t)
        self.assertEqual((a["rc"], a["source"], a["token_hash"]), (0, "memory", fnv(APP)), a)
        self.assertEqual((rec["rc"], rec["json_has_token"], rec["token_hash"]), (0, True, fnv(APP)), rec)
        self.assertEqual(ver["header"], "0.2.0")
        self.assertRegex(ver["runtime"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(rep["rc"], -6, rep)
        self.assertTrue(os.path.exists(cache))
        # An option set wrongly is still refused with the option's name.
        r = self.run_exe(exe, "--url", "http://127.0.0.1:1", "--refresh-wait-ms", "-1", input="get app\n")
        self.assertIn("TD_OPT_REFRESH_WAIT_MS", json.loads(r.stdout)["err"])


if __name__ == "__main__":
    unittest.main()
