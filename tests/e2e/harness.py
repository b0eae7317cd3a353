"""Shared pieces of the black-box tests: run the real tokendist binary on
127.0.0.1, talk HTTP to it, and check its logs for leaked secrets.

Every test starts its own server on a free port in its own temp folder, so
tests never share state and can run in parallel (ctest -j).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("TOKENDIST_BIN") or os.path.join(ROOT, "build", "tokendist")
sys.path.insert(0, os.path.join(ROOT, "tests", "doubles"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_record(token="t-g1044ghEGNOJ5OSQF5OYATETPB", generated=None, ttl=7200, **extra):
    """A record in the seed's format; the *_time strings are deliberately
    not in the server's zone, since the server re-derives them."""
    now = int(time.time()) if generated is None else generated
    rec = {
        "access_token": token,
        "expire_time": "2024-01-15 16:30:00",
        "expire_timestamp": now + ttl,
        "valid_duration_seconds": ttl,
        "generated_time": "2024-01-15 14:30:00",
        "generated_timestamp": now,
        "source": "财联社自动化系统",
        "usage": "用于客户端从飞书群获取财联社电报文件",
        "platform": "腾讯云函数",
    }
    rec.update(extra)
    return rec


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)


def request(port, method, path, body=None, headers=None, host="127.0.0.1", timeout=10):
    """One HTTP request on its own connection; body may be bytes, str or a
    JSON-able object."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


class Server:
    """A `tokendist serve` process.  Logs (stderr) are kept in a file so a
    test can read them and scan them for secrets."""

    count = 0

    def __init__(self, workdir, args=(), env=None, port=None, store=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.store = store or "sqlite:" + os.path.join(workdir, "var", "tokendist.db")
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        Server.count += 1  # two servers may try one port: one log each
        self.log_path = os.path.join(workdir, "serve-%d-%d.log" % (self.port, Server.count))
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        cmd = [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--store", self.store] + self.args
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env,
                                     stdout=self.logf, stderr=self.logf)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("tokendist serve exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                if request(self.port, "GET", "/healthz", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("tokendist serve did not become ready:\n" + self.log())

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def get(self, path, **kw):
        return request(self.port, "GET", path, **kw)

    def post(self, path, body, key=None, headers=None, **kw):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        return request(self.port, "POST", path, body=body, headers=h, **kw)


def run_cli(*args, env=None, input=None, timeout=60, cwd=None):
    """Runs `tokendist ARGS...`; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), env=e, input=input, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


class TestCase(unittest.TestCase):
    """Gives each test a temp folder and a list of secrets that must never
    appear in any log or output the test collected (checked at tearDown)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tokendist-test-")
        self.servers = []
        self.secrets = []
        self.outputs = []

    def server(self, *args, **kw):
        s = Server(self.tmp, *args, **kw)
        self.servers.append(s)
        return s

    def cli(self, *args, **kw):
        r = run_cli(*args, **kw)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def tearDown(self):
        for s in self.servers:
            s.stop()
        texts = [s.log() for s in self.servers] + self.outputs
        try:
            # Under the sanitizer build a report in any log fails the test.
            for t in texts:
                for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                    if marker in t:
                        self.fail("sanitizer report in a log:\n" + t[t.index(marker) - 200:][:3000])
            for secret in self.secrets:
                for t in texts:
                    # A secret may appear only as its fingerprint; the
                    # failure names the fingerprint, never the secret.
                    if secret in t:
                        self.fail("secret %s…%s leaked into a log or output" % (secret[:3], secret[-2:]))
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
