"""The container image (Containerfile): built with buildah from the bundle
that `scripts/scf-package --dir` stages, in a network namespace of its own
(so it provably pulls nothing), into a private vfs store; then run the way a
container would run, from the image's root filesystem and its config --
chroot into the mounted root, as the image's user, with only the image's
environment plus what `docker run -e` would add -- because this machine's
sandbox refuses to start containers.  The image has no shell, so what runs
is the image's ENTRYPOINT + CMD exactly.

Slow (a Release build and an image): ctest label `package`, left out of the
--sanitize pass."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import harness  # noqa: E402  (after the path)
from harness import DEADLINE, free_port, request  # noqa: E402
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble  # noqa: E402

IMAGE = "localhost/tokendist:test"


def why_not():
    if not shutil.which("buildah"):
        return "needs buildah (apt-get install buildah; scripts/bootstrap --test installs it)"
    if os.geteuid() != 0:
        return "needs root: the image's root filesystem is run with chroot"
    return None


@unittest.skipIf(why_not(), why_not())
class ContainerImageTest(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="tokendist-image-")
        cls.buildah = ["buildah", "--root", os.path.join(cls.work, "storage"),
                       "--runroot", os.path.join(cls.work, "run"), "--storage-driver", "vfs"]
        cls.container = None
        context = os.path.join(cls.work, "rootfs")
        # A build folder of its own: test_scf_package may build build-scf
        # at the same time (ctest -j).
        env = dict(os.environ, BUILD_DIR=os.path.join(ROOT, "build-container"))
        cls.run_or_fail([os.path.join(ROOT, "scripts", "scf-package"), "--dir", context], env=env,
                        timeout=900)
        # Offline: in a network namespace with nothing but a loopback that
        # is down, so a pull of anything would fail the build.
        cls.build_log = cls.run_or_fail(
            ["unshare", "--net"] + cls.buildah + ["bud", "--pull=never", "--isolation", "chroot",
                                                  "-f", os.path.join(ROOT, "Containerfile"),
                                                  "-t", IMAGE, context], timeout=600)
        info = json.loads(cls.run_or_fail(cls.buildah + ["inspect", "--type", "image", IMAGE]))
        cls.config = info["OCIv1"]["config"]
        cls.container = cls.run_or_fail(cls.buildah + ["from", "--pull=never", IMAGE]).strip()
        cls.rootfs = cls.run_or_fail(cls.buildah + ["mount", cls.container]).strip()

    @classmethod
    def tearDownClass(cls):
        if cls.container:
            subprocess.run(cls.buildah + ["umount", cls.container], capture_output=True)
            subprocess.run(cls.buildah + ["rm", cls.container], capture_output=True)
        subprocess.run(cls.buildah + ["rmi", "--all", "--force"], capture_output=True)
        shutil.rmtree(cls.work, ignore_errors=True)

    @staticmethod
    def run_or_fail(cmd, env=None, timeout=120):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(cmd[:4]), p.returncode,
                                                           p.stdout[-4000:], p.stderr[-4000:]))
        return p.stdout

    def setUp(self):
        super().setUp()
        self.secrets.append(DEFAULT_APP_SECRET)
        self.procs = []

    def tearDown(self):
        for p, logf in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            logf.close()
            with open(logf.name, encoding="utf-8", errors="replace") as f:
                self.outputs.append(f.read())
        super().tearDown()

    # -- the image as a container runtime would run it ------------------------
    def image_env(self, **run_e):
        """The image's Env, then `docker run -e` on top; nothing of the host."""
        env = dict(kv.split("=", 1) for kv in self.config.get("Env", []))
        env.update(run_e)
        return env

    def command(self):
        """chroot into the image's root as its USER, then ENTRYPOINT + CMD.
        chroot(1) starts in / rather than the image's WORKDIR (/data), which
        only a relative path in a setting would notice."""
        user = self.config["User"]
        return (["chroot", "--userspec=" + user, self.rootfs] + self.config["Entrypoint"]
                + self.config["Cmd"])

    def start(self, env):
        logf = open(os.path.join(self.tmp, "container-%d.log" % len(self.procs)), "ab")
        p = subprocess.Popen(self.command(), env=env, stdout=logf, stderr=logf, cwd=self.tmp)
        self.procs.append((p, logf))
        return p

    def log(self, n=-1):
        logf = self.procs[n][1]
        logf.flush()
        with open(logf.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_healthy(self, port, proc):
        def up():
            self.assertIsNone(proc.poll(), "exited: " + self.log())
            try:
                return request(port, "GET", "/healthz", timeout=1).status == 200
            except OSError:
                return False
        self.wait_for(up, what="the container's answer on port %d" % port)

    # -- tests ---------------------------------------------------------------
    def test_image_holds_the_bundle_and_nothing_else(self):
        self.assertEqual(sorted(os.listdir(self.rootfs)), ["bin", "data", "etc", "lib"])
        self.assertEqual(os.listdir(os.path.join(self.rootfs, "bin")), ["tokendist"])
        self.assertFalse(os.path.lexists(os.path.join(self.rootfs, "bin", "sh")))  # no shell
        lib = os.path.join(self.rootfs, "lib")
        self.assertTrue(os.readlink(os.path.join(lib, "ld.so")).startswith("ld-linux"))
        for want in ("libc.so.6", "libcurl.so.4", "libmicrohttpd.so.12", "libsqlite3.so.0"):
            self.assertIn(want, os.listdir(lib))
        self.assertTrue(os.path.isfile(os.path.join(self.rootfs, "etc/ssl/certs/ca-certificates.crt")))
        st = os.stat(os.path.join(self.rootfs, "data"))
        self.assertEqual((st.st_uid, st.st_gid), (65534, 65534))
        self.assertEqual(self.config["Entrypoint"],
                         ["/lib/ld.so", "--library-path", "/lib", "--argv0", "tokendist", "/bin/tokendist"])
        self.assertEqual(self.config["Cmd"], ["serve"])
        self.assertEqual(self.config["User"], "65534:65534")
        self.assertEqual(self.config["WorkingDir"], "/data")
        self.assertIn("9000/tcp", self.config["ExposedPorts"])
        env = self.image_env()
        self.assertEqual((env["TOKENDIST_LISTEN"], env["TOKENDIST_STORE"]), ("0.0.0.0:9000", "memory:"))

    def test_docker_run_p_9000_serves_the_feishu_token(self):
        """`docker run -p 9000:9000 -e FEISHU_APP_ID=... tokendist`: the image's
        own listener (0.0.0.0:9000) and store (memory:), in a network
        namespace of its own so that port 9000 is ours; the Feishu double
        runs in there too, since nothing else is reachable from it."""
        probe = r"""
import json, os, subprocess, sys, time, urllib.request
sys.path.insert(0, sys.argv[1])
from feishu import FeishuDouble
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
feishu = FeishuDouble().start()
cmd, env, logpath = json.loads(sys.argv[2])
env["FEISHU_BASE_URL"] = feishu.url
p = subprocess.Popen(cmd, env=env, stdout=open(logpath, "ab"), stderr=subprocess.STDOUT)
res = {"status": None}
try:
    for _ in range(1200):
        try:
            with urllib.request.urlopen("http://127.0.0.1:9000/get-token", timeout=1) as r:
                res = {"status": r.status, "same": json.loads(r.read())["access_token"] == feishu.current_token()}
                break
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.05)
finally:
    p.terminate()
    res["exit"] = p.wait(10)
    res["fetches"] = len(feishu.requests_to("/open-apis/auth/v3/"))
    res["agents"] = sorted({q["headers"].get("user-agent", "") for q in feishu.requests_to("/open-apis/")})
    feishu.stop()
print(json.dumps(res))
"""
        logpath = os.path.join(self.tmp, "docker-run.log")
        env = self.image_env(FEISHU_APP_ID=DEFAULT_APP_ID, FEISHU_APP_SECRET=DEFAULT_APP_SECRET)
        r = subprocess.run(["unshare", "--net", sys.executable, "-c", probe,
                            os.path.join(ROOT, "tests", "doubles"),
                            json.dumps([self.command(), env, logpath])],
                           capture_output=True, text=True, timeout=DEADLINE + 30)
        with open(logpath, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.outputs.append(log + r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr + log)
        res = json.loads(r.stdout)
        self.assertEqual((res["status"], res["same"]), (200, True), log)
        self.assertEqual(res["exit"], 0, log)
        self.assertEqual(res["fetches"], 1)
        self.assertEqual(len(res["agents"]), 1)
        self.assertTrue(res["agents"][0].startswith("tokendist/"), res["agents"])
        self.assertIn("http://0.0.0.0:9000 (存储: memory:,", log)

    def test_sqlite_volume_keeps_the_token(self):
        """-v tokendist-data:/data -e TOKENDIST_STORE=sqlite:/data/tokendist.db:
        the image's user writes the volume, and a restarted container
        serves the stored token even while Feishu is unreachable."""
        feishu = FeishuDouble().start()
        self.addCleanup(feishu.stop)
        port = free_port()
        env = self.image_env(FEISHU_APP_ID=DEFAULT_APP_ID, FEISHU_APP_SECRET=DEFAULT_APP_SECRET,
                             FEISHU_BASE_URL=feishu.url, TOKENDIST_LISTEN="127.0.0.1:%d" % port,
                             TOKENDIST_STORE="sqlite:/data/tokendist.db")
        p = self.start(env)
        self.wait_healthy(port, p)
        token = self.wait_for(lambda: feishu.current_token(), what="the first fetch")
        self.secrets.append(token)
        got = self.wait_for(lambda: request(port, "GET", "/get-token").status == 200
                            and request(port, "GET", "/get-token").json(), what="the token served")
        self.assertEqual(got["access_token"], token)
        db = os.path.join(self.rootfs, "data", "tokendist.db")
        self.assertEqual(os.stat(db).st_uid, 65534)
        p.terminate()
        self.assertEqual(p.wait(DEADLINE), 0, self.log())
        # Restart with Feishu gone: the volume still holds the token.
        feishu.stop()
        p = self.start(env)
        self.wait_healthy(port, p)
        r = request(port, "GET", "/get-token")
        self.assertEqual((r.status, r.json()["access_token"]), (200, token), self.log())


if __name__ == "__main__":
    unittest.main()
