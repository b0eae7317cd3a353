"""`cmake --install` into a DESTDIR: every file a Debian user expects is
there, the installed binary runs and serves, a program builds against the
installed libtokendist with pkg-config and gets a token through it, and the
installed systemd units pass `systemd-analyze verify` with no complaint."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import ROOT, TestCase, make_record

BUILD = os.path.dirname(os.path.abspath(harness.BIN))
PUSH = "pk-install-test-4b1d2c3e4f5a6b7c"
TENANT = "t-tenantInstallTest0000000001"


def cache_value(name):
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split("=", 1)[1].strip()
    return None


@unittest.skipUnless(os.path.exists(os.path.join(BUILD, "CMakeCache.txt")),
                     "TOKENDIST_BIN is not in a CMake build tree: nothing to install")
class InstallTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.destdir = tempfile.mkdtemp(prefix="tokendist-install-")
        cls.prefix = cache_value("CMAKE_INSTALL_PREFIX")
        p = subprocess.run(["cmake", "--install", BUILD], env=dict(os.environ, DESTDIR=cls.destdir),
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + p.stdout + p.stderr)
        cls.root = cls.destdir + cls.prefix
        cls.unitdir = cls.destdir + cache_value("TD_SYSTEMD_UNIT_DIR")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def test_files(self):
        libdir = cache_value("CMAKE_INSTALL_LIBDIR") or "lib"
        for rel in ["bin/tokendist", "include/tokendist.h",
                    libdir + "/libtokendist.so", libdir + "/libtokendist.so.1", libdir + "/libtokendist.a",
                    libdir + "/pkgconfig/tokendist.pc",
                    "share/man/man1/tokendist.1", "share/man/man5/tokendist.env.5",
                    "share/bash-completion/completions/tokendist",
                    "share/doc/tokendist/examples/tokendist.env", "share/doc/tokendist/protocol.md",
                    "share/doc/tokendist/openapi.json", "share/doc/tokendist/architecture.md",
                    "share/doc/tokendist/deploy.md"]:
            self.assertTrue(os.path.exists(self.path(rel)), rel)
        for unit in ("tokendist.service", "tokendist-refresh.service"):
            self.assertTrue(os.path.exists(os.path.join(self.unitdir, unit)), unit)
        self.assertEqual(os.readlink(self.path(libdir + "/libtokendist.so.1")), "libtokendist.so.1.0.0")

    def test_installed_binary_runs(self):
        r = subprocess.run([self.path("bin/tokendist"), "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^tokendist \d+\.\d+\.\d+\n$")

    def test_program_builds_against_installed_library(self):
        """examples/get_token.c, built as its comment says (pkg-config), gets
        the tenant token from a running server through the installed .so."""
        libdir = os.path.join(self.root, cache_value("CMAKE_INSTALL_LIBDIR") or "lib")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.destdir)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tokendist"], env=env,
                               capture_output=True, text=True, check=True).stdout.split()
        self.assertIn("-I" + os.path.join(self.root, "include"), flags)
        if cache_value("TD_SANITIZE") == "ON":  # a sanitized library wants its runtime first
            flags += ["-fsanitize=address,undefined"]
        exe = os.path.join(self.tmp, "get_token")
        cc = subprocess.run(["cc", os.path.join(ROOT, "examples", "get_token.c")] + flags + ["-o", exe],
                            capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        ldd = subprocess.run(["ldd", exe], env=dict(os.environ, LD_LIBRARY_PATH=libdir),
                             capture_output=True, text=True).stdout
        self.assertIn(os.path.join(libdir, "libtokendist.so.1"), ldd)

        self.secrets += [PUSH, TENANT]
        srv = self.server(["--push-key", PUSH]).start()
        self.assertEqual(srv.post("/release/get-token", make_record(tenant_access_token=TENANT),
                                  key=PUSH).status, 200)
        r = subprocess.run([exe, "http://127.0.0.1:%d/release/get-token" % srv.port],
                           env=dict(os.environ, LD_LIBRARY_PATH=libdir), capture_output=True, text=True)
        self.outputs.append(r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"got a tenant token from \S+: \d+ seconds left")

    def unit(self, name):
        with open(os.path.join(self.unitdir, name)) as f:
            return f.read()

    def test_units_say_what_the_issue_asks(self):
        etc = cache_value("CMAKE_INSTALL_PREFIX")
        etc = "/etc" if etc == "/usr" else etc + "/etc"
        for name, cmd in (("tokendist.service", "serve"), ("tokendist-refresh.service", "refresh")):
            u = self.unit(name)
            self.assertIn("\nExecStart=%s/bin/tokendist %s\n" % (self.prefix, cmd), u)
            self.assertIn("\nEnvironmentFile=-%s/tokendist/tokendist.env\n" % etc, u)
            for line in ("Type=notify", "WatchdogSec=30s", "DynamicUser=yes", "NoNewPrivileges=yes",
                         "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                         "PrivateDevices=yes", "RestrictNamespaces=yes", "SystemCallFilter=@system-service"):
                self.assertIn("\n" + line + "\n", u, (name, line))
        serve = self.unit("tokendist.service")
        self.assertIn("\nStateDirectory=tokendist\n", serve)
        self.assertIn("\nEnvironment=TOKENDIST_STORE=sqlite:/var/lib/tokendist/tokendist.db\n", serve)

    def systemd_analyze(self, *units):
        """systemd-analyze verify on copies of the units whose ExecStart
        points into DESTDIR, with the installed man pages on MANPATH (so the
        Documentation= lines are checked too).  Returns (rc, output)."""
        env = dict(os.environ, MANPATH=os.path.join(self.root, "share", "man"), SYSTEMD_LOG_COLOR="0")
        r = subprocess.run(["systemd-analyze", "verify"] + list(units), env=env,
                           capture_output=True, text=True, timeout=60)
        return r.returncode, (r.stdout + r.stderr).strip()

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (apt-get install systemd)")
        work = os.path.join(self.tmp, "units")
        os.mkdir(work)
        # First a unit that cannot be wrong: if even that does not verify
        # cleanly, this machine cannot run the check, and the skip says why.
        probe = os.path.join(work, "tokendist-probe.service")
        with open(probe, "w") as f:
            f.write("[Unit]\nDescription=probe\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
        rc, out = self.systemd_analyze(probe)
        if rc != 0 or out:
            self.skipTest("systemd-analyze verify cannot run here (a trivial unit gives rc %d: %s)"
                          % (rc, out[:300]))
        copies = []
        for name in ("tokendist.service", "tokendist-refresh.service"):
            text = re.sub(r"(?m)^ExecStart=", "ExecStart=" + self.destdir, self.unit(name))
            copies.append(os.path.join(work, name))
            with open(copies[-1], "w") as f:
                f.write(text)
        rc, out = self.systemd_analyze(*copies)
        self.assertEqual((rc, out), (0, ""))
        # The check can fail: a misspelt directive is reported.
        with open(copies[0], "a") as f:
            f.write("ProtectSystm=strict\n")
        rc, out = self.systemd_analyze(copies[0])
        self.assertIn("ProtectSystm", out)


if __name__ == "__main__":
    unittest.main()
