"""S3 for the black-box tests: s3rver (from the npm registry) behind
tests/s3/s3d.js, a proxy that verifies each request's SigV4 signature with
AWS's own signer and enforces conditional writes as S3 and COS do, on a free
loopback port; one per test, started and stopped by the test itself.

The Node modules live under the build folder (TOKENDIST_S3_DEPS, else
build/s3-deps), installed from tests/s3/package-lock.json by scripts/test or,
when a test runs by hand, by the first test that needs them.

    python3 s3d.py install DIR     installs the modules into DIR (scripts/test)
"""
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

from harness import BIN, ROOT

S3D = os.path.join(ROOT, "tests", "s3", "s3d.js")
LOCK = os.path.join(ROOT, "tests", "s3", "package-lock.json")
BUCKET = "tokendist-1250000000"      # COS names buckets NAME-APPID
REGION = "ap-guangzhou"
KEY_ID = "AKIDtokendistTEST0000001"


def deps_dir():
    return os.environ.get("TOKENDIST_S3_DEPS") or os.path.join(os.path.dirname(os.path.abspath(BIN)), "s3-deps")


def install(target=None):
    """npm ci of tests/s3 into target, unless its lock file is current
    already; one process at a time."""
    target = target or deps_dir()
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, ".install-lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        done = os.path.join(target, "package-lock.json")
        if os.path.isdir(os.path.join(target, "node_modules")) and os.path.exists(done):
            with open(done, "rb") as a, open(LOCK, "rb") as b:
                if a.read() == b.read():
                    return os.path.join(target, "node_modules")
        shutil.rmtree(os.path.join(target, "node_modules"), ignore_errors=True)
        shutil.copy(os.path.join(ROOT, "tests", "s3", "package.json"), target)
        shutil.copy(LOCK, os.path.join(target, "lock.tmp"))
        os.replace(os.path.join(target, "lock.tmp"), os.path.join(target, "package-lock.json"))
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=target,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            os.unlink(done)
            raise RuntimeError("npm ci of tests/s3 failed:\n" + r.stdout + r.stderr)
    return os.path.join(target, "node_modules")


class S3Service:
    """One s3d.js process: a bucket in its own folder, a key pair, and
    switches for how strict it is.  stop() and start() again keep the
    objects (the folder stays) and the port."""

    def __init__(self, workdir, token=None, conditional=True, put_delay_ms=0):
        """conditional: True (as S3), False (ignored, as s3rver alone) or
        "cos" (only x-cos-forbid-overwrite, as COS documents)."""
        self.dir = os.path.join(workdir, "s3-%s" % secrets.token_hex(3))
        self.key_id = KEY_ID
        self.secret = "s3secret-" + secrets.token_hex(16)
        self.token = token
        self.conditional = conditional
        self.put_delay_ms = put_delay_ms
        self.port = 0
        self.proc = None
        self.log_path = os.path.join(self.dir, "requests.log")
        self.err_path = os.path.join(self.dir, "s3d.err")
        self.modules = install()

    def start(self, timeout=30):
        os.makedirs(self.dir, exist_ok=True)
        cmd = ["node", S3D, "--dir", os.path.join(self.dir, "data"), "--bucket", BUCKET, "--key", self.key_id,
               "--secret", self.secret, "--region", REGION, "--port", str(self.port), "--log", self.log_path]
        if self.token:
            cmd += ["--token", self.token]
        if self.conditional == "cos":
            cmd.append("--cos-conditional")
        elif not self.conditional:
            cmd.append("--no-conditional")
        if self.put_delay_ms:
            cmd += ["--put-delay-ms", str(self.put_delay_ms)]
        env = dict(os.environ, NODE_PATH=self.modules)
        self.errf = open(self.err_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, env=env)
        deadline = time.time() + timeout
        line = self.proc.stdout.readline()  # {"port": P} once it listens
        if not line or time.time() > deadline:
            raise AssertionError("s3d did not start:\n" + self.errors())
        self.port = json.loads(line)["port"]
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self.errf.close()

    def errors(self):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def requests(self):
        """The requests served so far, as logged: method, path, status, ms."""
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def url(self, prefix="tokendist"):
        return "s3://%s/%s?endpoint=http://127.0.0.1:%d&path_style=1" % (BUCKET, prefix, self.port)

    def env(self, secret=None):
        e = {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": secret or self.secret,
             "TOKENDIST_S3_REGION": REGION}
        if self.token:
            e["AWS_SESSION_TOKEN"] = self.token
        return e

    def rotate(self, key_id, secret, token=None):
        """New temporary credentials, as STS hands them out: these are
        valid from now, the ones before expired (400 ExpiredToken)."""
        body = json.dumps({"key": key_id, "secret": secret, "token": token}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/__s3d/rotate" % self.port, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204, r.status
        self.key_id, self.secret, self.token = key_id, secret, token

    def raw(self, method, key, body=None):
        """An object read or written past signature and conditions, as
        another tool would (s3d's back door); returns (status, bytes)."""
        req = urllib.request.Request("http://127.0.0.1:%d/__s3d/raw/%s/%s" % (self.port, BUCKET, key),
                                     data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "install":
        print(install(sys.argv[2]))
    else:
        sys.exit(__doc__)
