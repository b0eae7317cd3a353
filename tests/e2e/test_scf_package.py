"""The SCF package (scripts/scf-package -> tokendist-scf.zip) is
self-contained: unpacked into an empty folder and chroot'ed into, with
nothing else there, it answers HTTP; its launcher loads only the bundled
libraries; both SCF entry points (scf_bootstrap, bootstrap) start."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from harness import DEADLINE, ROOT, TestCase, free_port, make_record, request
from scf_runtime import ScfRuntimeDouble, apigw_event, http_response

PUSH = "pk-package-9a8b7c6d5e4f3a2b"
TOKEN = "t-g1044packageTokenBBBBBBBBBB"


class ScfPackageTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pkgdir = tempfile.mkdtemp(prefix="tokendist-scf-pkg-")
        cls.zip = os.path.join(cls.pkgdir, "tokendist-scf.zip")
        p = subprocess.run([os.path.join(ROOT, "scripts", "scf-package"), cls.zip], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise AssertionError("scripts/scf-package failed:\n" + p.stdout + p.stderr)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.pkgdir])

    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, TOKEN]
        self.procs = []
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)  # empty: only what the zip brings
        subprocess.run(["unzip", "-q", self.zip, "-d", self.root], check=True)

    def tearDown(self):
        for p, logf in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            logf.close()
            with open(logf.name, encoding="utf-8", errors="replace") as f:
                self.outputs.append(f.read())
        super().tearDown()

    def spawn(self, cmd, env=None):
        logf = open(os.path.join(self.tmp, "proc-%d.log" % len(self.procs)), "ab")
        p = subprocess.Popen(cmd, env=env, stdout=logf, stderr=logf, cwd=self.tmp)
        self.procs.append((p, logf))
        return p

    def wait_healthy(self, port, proc):
        deadline = time.time() + DEADLINE
        while time.time() < deadline:
            self.assertIsNone(proc.poll(), "exited: " + "".join(self.log_of(proc)))
            try:
                if request(port, "GET", "/healthz", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.fail("no answer on port %d" % port)

    def log_of(self, proc):
        for p, logf in self.procs:
            if p is proc:
                logf.flush()
                with open(logf.name, encoding="utf-8", errors="replace") as f:
                    return f.read()
        return ""

    def loader(self):
        found = glob.glob(os.path.join(self.root, "lib", "ld-linux*.so*"))
        self.assertEqual(len(found), 1, found)
        return os.path.basename(found[0])

    def test_layout(self):
        self.assertEqual(sorted(os.listdir(self.root)),
                         ["bin", "bootstrap", "etc", "lib", "scf_bootstrap", "tokendist"])
        for f in ("bootstrap", "scf_bootstrap", "tokendist", "bin/tokendist"):
            self.assertTrue(os.access(os.path.join(self.root, f), os.X_OK), f)
        libs = os.listdir(os.path.join(self.root, "lib"))
        for want in ("libc.so.6", "libmicrohttpd.so.12", "libcurl.so.4", "libsqlite3.so.0",
                     "libhiredis.so.0.14", "libjansson.so.4"):
            self.assertIn(want, libs)
        with open(os.path.join(self.root, "scf_bootstrap")) as f:
            self.assertIn("serve --listen 0.0.0.0:9000", f.read())
        with open(os.path.join(self.root, "bootstrap")) as f:
            self.assertIn("scf-runtime", f.read())
        # SCF's rule for entry scripts (启动文件说明, cloud.tencent.com/document/
        # product/583/56126): "#!/bin/bash" on the first line, LF line ends.
        for f in ("bootstrap", "scf_bootstrap", "tokendist"):
            with open(os.path.join(self.root, f), "rb") as fh:
                text = fh.read()
            self.assertEqual(text.split(b"\n", 1)[0], b"#!/bin/bash", f)
            self.assertNotIn(b"\r", text, f)
        # A release build: the test clock (src/clock.h) is not compiled in.
        with open(os.path.join(self.root, "bin", "tokendist"), "rb") as f:
            self.assertNotIn(b"TOKENDIST_TEST_CLOCK_FILE", f.read())

    def test_chroot_with_nothing_else_answers(self):
        """The proof of self-containment: no /usr, /lib, /etc of the host,
        no /dev or /proc, yet the binary runs and stores under /tmp."""
        port = free_port()
        p = self.spawn(["chroot", self.root, "/lib/" + self.loader(), "--library-path", "/lib",
                        "/bin/tokendist", "serve", "--listen", "127.0.0.1:%d" % port,
                        "--store", "sqlite:/tmp/tokendist.db", "--push-key", PUSH])
        self.wait_healthy(port, p)
        self.assertEqual(request(port, "GET", "/get-token").status, 404)
        r = request(port, "POST", "/get-token", body=make_record(TOKEN),
                    headers={"Authorization": "Bearer " + PUSH})
        self.assertEqual(r.status, 200, r.body)
        g = request(port, "GET", "/release/get-token")
        self.assertEqual((g.status, g.json()["access_token"]), (200, TOKEN))
        # The *_time strings are in UTC+8 even without tzdata in the chroot.
        want = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(g.json()["expire_timestamp"] + 8 * 3600))
        self.assertEqual(g.json()["expire_time"], want)
        self.assertTrue(os.path.isfile(os.path.join(self.root, "tmp", "tokendist.db")))

    def test_launcher_loads_only_bundled_libraries(self):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
        p = self.spawn([os.path.join(self.root, "tokendist"), "serve", "--listen",
                        "127.0.0.1:%d" % port, "--store",
                        "sqlite:" + os.path.join(self.tmp, "l.db")], env=env)
        self.wait_healthy(port, p)
        with open("/proc/%d/maps" % p.pid) as f:
            mapped = {line.split()[-1] for line in f if ".so" in line}
        self.assertTrue(mapped)
        outside = [m for m in mapped if not m.startswith(os.path.join(self.root, "lib") + "/")]
        self.assertEqual(outside, [])

    def test_event_function_bootstrap(self):
        d = ScfRuntimeDouble().start()
        self.addCleanup(d.stop)
        env = dict(os.environ, **d.runtime_env())
        env.update(TOKENDIST_STORE="sqlite:" + os.path.join(self.tmp, "e.db"),
                   TOKENDIST_PUSH_KEYS=PUSH)
        self.spawn([os.path.join(self.root, "bootstrap")], env=env)
        self.assertTrue(d.wait_ready(DEADLINE), "bootstrap never reported ready")
        ev = apigw_event("POST", "/get-token", headers={"X-Api-Key": PUSH}, body=make_record(TOKEN))
        self.assertEqual(http_response(d.invoke(ev, DEADLINE))[0], 200)
        status, _, body = http_response(d.invoke(apigw_event("GET", "/get-token"), DEADLINE))
        self.assertEqual((status, json.loads(body)["access_token"]), (200, TOKEN))

    def test_web_function_bootstrap_listens_on_9000(self):
        """scf_bootstrap binds SCF's fixed port 9000; in a network namespace
        of its own, so the test never collides with anything on the host."""
        probe = r"""
import json, os, subprocess, sys, time, urllib.request
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
p = subprocess.Popen([sys.argv[1]], stdout=open(sys.argv[2], "ab"), stderr=subprocess.STDOUT)
res = {"status": None}
try:
    for _ in range(1200):    # 60 s or more: a busy machine starts it late
        try:
            with urllib.request.urlopen("http://127.0.0.1:9000/healthz", timeout=1) as r:
                res = {"status": r.status, "body": json.loads(r.read())}
                break
        except OSError:
            time.sleep(0.05)
finally:
    p.terminate()
    res["exit"] = p.wait(10)
print(json.dumps(res))
"""
        # No TOKENDIST_STORE: the Web function's default, memory:.
        env = {k: v for k, v in os.environ.items() if k != "TOKENDIST_STORE"}
        logpath = os.path.join(self.tmp, "scf_bootstrap.log")
        r = subprocess.run(["unshare", "--net", sys.executable, "-c", probe,
                            os.path.join(self.root, "scf_bootstrap"), logpath],
                           env=env, capture_output=True, text=True, timeout=60)
        with open(logpath, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.outputs.append(log + r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr + log)
        res = json.loads(r.stdout)
        self.assertEqual((res["status"], res["body"]), (200, {"status": "ok"}), log)
        self.assertEqual(res["exit"], 0, log)
        self.assertIn("http://0.0.0.0:9000 (存储: memory:,", log)


if __name__ == "__main__":
    unittest.main()
