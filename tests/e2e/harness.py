"""Shared pieces of the black-box tests: run the real tokendist binary on
127.0.0.1, talk HTTP to it, and check its logs for leaked secrets.

Every test starts its own server on a free port in its own temp folder, so
tests never share state and can run in parallel (ctest -j).

Time.  The suite runs on whatever machine CI has, often a busy one, so a
test never counts events inside a fixed window or sleeps "long enough":

* it waits for the event it needs -- a log line (``wait_log``), a request
  recorded at a double, a counter in /metrics -- with ``wait_for``, whose
  deadline (``DEADLINE``) is generous because it only ends a test that has
  already failed; a passing test waits only as long as the event takes;
* where time itself is the subject (refresh schedule, backoff, expiry,
  Feishu's renewal window) it moves the clock instead of sleeping:
  ``TestCase.clock()`` gives a ``TestClock`` whose file every tokendist
  process the test starts afterwards reads (``TOKENDIST_TEST_CLOCK_FILE``,
  src/clock.h, test builds only) and that the doubles can follow
  (``TestClock.attach``).
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

from common import free_port  # noqa: E402,F401  (the tests take it from here)

# How long a test waits for something that must happen: ample for an ASan
# build on a machine running two suites and stress-ng at once.
DEADLINE = float(os.environ.get("TOKENDIST_TEST_DEADLINE", "60"))
CLOCK_LINE = "[测试时钟]"   # what a process with the test clock prints first (src/clock.c)


def wait_for(predicate, timeout=DEADLINE, what="condition", interval=0.05):
    """Polls predicate() until it returns something true, and returns that.
    Raises AssertionError naming `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_log(proc, text, count=1, timeout=DEADLINE):
    """Waits until the log of proc (anything with .log()) holds text at least
    count times; returns the log."""
    def enough():
        log = proc.log()
        return log if log.count(text) >= count else None
    try:
        return wait_for(enough, timeout, "%d× %r in the log" % (count, text))
    except AssertionError as e:
        raise AssertionError("%s; the log:\n%s" % (e, proc.log()[-3000:])) from None


class TestClock:
    """The clock of what a test starts.  Every tokendist process started with
    env() adds the offset this file holds (milliseconds) to its wall and
    monotonic clocks, from its first clock reading after advance(); a double
    attached with attach() does the same.  So advance(5431) makes an hour and
    a half pass for all of them at once, and a refresher asleep until then
    wakes within 20 ms (src/clock.h)."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "test-clock")
        self.offset_ms = 0
        self._write()

    def env(self):
        return {"TOKENDIST_TEST_CLOCK_FILE": self.path}

    def attach(self, double):
        double.control({"clock_file": self.path})
        return double

    def advance(self, seconds):
        self.offset_ms += int(round(seconds * 1000))
        self._write()
        # A process looks at the file at most once a millisecond (src/clock.h):
        # from here on, its every reading has the new offset.
        time.sleep(0.005)

    def now(self):
        """The moved time, Unix seconds."""
        return time.time() + self.offset_ms / 1000.0

    def _write(self):
        # A new file renamed over the old: a reader never sees half a number.
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d\n" % self.offset_ms)
        os.replace(tmp, self.path)


def require_test_clock(proc):
    """Fails clearly when proc, started with a TestClock, cannot follow it:
    a binary built without the hook (TD_TESTS=OFF) never prints CLOCK_LINE."""
    try:
        wait_log(proc, CLOCK_LINE)
    except AssertionError:
        raise AssertionError("%s has no test clock: build it with scripts/test "
                             "(CMake -DTD_TESTS=ON)" % BIN) from None


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


def request(port, method, path, body=None, headers=None, host="127.0.0.1", timeout=DEADLINE):
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


class Process:
    """A long-running `tokendist ARGS...` (e.g. `refresh`).  Its output
    (logs go to stderr) is kept in a file so a test can read it and scan it
    for secrets."""

    def __init__(self, workdir, args=(), env=None, log_name=None):
        self.workdir = workdir
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.log_path = os.path.join(workdir, "%s.log" % (log_name or "%s-%x" % (self.args[0], id(self))))
        self.proc = None

    def command(self):
        return [BIN] + self.args

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, env=self.env,
                                     stdout=self.logf, stderr=self.logf)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=DEADLINE):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and not self.logf.closed:
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


class Server(Process):
    """A `tokendist serve` process on 127.0.0.1:port."""

    def __init__(self, workdir, args=(), env=None, port=None, store=None):
        self.port = port or free_port()
        self.store = store or "sqlite:" + os.path.join(workdir, "var", "tokendist.db")
        # two servers may try one port (test_lifecycle): one log each
        super().__init__(workdir, args, env, log_name="serve-%d-%x" % (self.port, id(self)))

    def command(self):
        return [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--store", self.store] + self.args

    def start(self, wait=True):
        super().start()
        if wait:
            self.wait_ready()
            if self.env.get("TOKENDIST_TEST_CLOCK_FILE"):
                require_test_clock(self)
        return self

    def wait_ready(self, timeout=DEADLINE):
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
        self.test_clock = None

    def clock(self):
        """This test's TestClock (made on first use): the processes started
        after this call follow it."""
        if self.test_clock is None:
            self.test_clock = TestClock(self.tmp)
        return self.test_clock

    def _env(self, env):
        return {**(self.test_clock.env() if self.test_clock else {}), **(env or {})}

    def server(self, *args, env=None, **kw):
        s = Server(self.tmp, *args, env=self._env(env), **kw)
        self.servers.append(s)
        return s

    def process(self, *args, env=None, name=None):
        """A started `tokendist ARGS...` (see Process); stopped at tearDown."""
        p = Process(self.tmp, args, env=self._env(env), log_name=name).start()
        self.servers.append(p)
        if self.test_clock:
            require_test_clock(p)
        return p

    def cli(self, *args, env=None, **kw):
        r = run_cli(*args, env=self._env(env), **kw)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def wait_for(self, predicate, timeout=DEADLINE, what="condition"):
        return wait_for(predicate, timeout, what)

    def wait_log(self, proc, text, count=1, timeout=DEADLINE):
        return wait_log(proc, text, count, timeout)

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
