"""Test harness of tokendist-client: the REAL ``tokendist serve`` and the
project's doubles of Gitee and Feishu (tests/doubles), in front of which a
small reverse proxy counts requests, shifts the Date header or answers in
the server's place.

Nothing here prints a token: assertions compare tokens through
:func:`same_token`, which shows fingerprints only.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(HERE)                      # clients/python
REPO = os.path.dirname(os.path.dirname(PACKAGE_DIR))
DOUBLES = os.path.join(REPO, "tests", "doubles")
BIN = os.path.abspath(os.environ.get("TOKENDIST_BIN") or os.path.join(REPO, "build", "tokendist"))

sys.path.insert(0, PACKAGE_DIR)
sys.path.insert(0, DOUBLES)

from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble  # noqa: E402
from gitee import DEFAULT_TOKEN as GITEE_TOKEN, GiteeDouble  # noqa: E402
from common import free_port  # noqa: E402

# The client must not go through a proxy of the machine to reach 127.0.0.1.
for _v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
    os.environ.pop(_v, None)

NEEDS_BIN = None if os.path.exists(BIN) or os.environ.get("CI") == "true" \
    or os.environ.get("TOKENDIST_REQUIRE_BIN") == "1" \
    else f"tokendist binary not found at {BIN} (build it, or set TOKENDIST_BIN)"
needs_bin = unittest.skipIf(NEEDS_BIN is not None, NEEDS_BIN or "")


def fp(token: object) -> str:
    if not isinstance(token, str):
        return repr(token)
    return f"…({len(token)})" if len(token) < 12 else f"{token[:6]}…{token[-2:]}"


def same_token(tc: unittest.TestCase, actual: object, expected: object, what: str = "token") -> None:
    """Token equality that never prints a token on failure."""
    if actual != expected:
        tc.fail(f"{what}: got {fp(actual)}, expected {fp(expected)}")


def new_token(prefix: str = "t-test") -> str:
    return prefix + secrets.token_hex(12)


_seq = [0]
_seq_lock = threading.Lock()


def make_record(expire_in: int = 7200, token: str | None = None, **extra: Any) -> dict[str, Any]:
    """A seed-shaped record expiring ``expire_in`` seconds from now (local clock)."""
    now = int(time.time())
    with _seq_lock:                 # strictly increasing: a re-push is never "older" (409)
        _seq[0] += 1
        generated = now - 3000 + _seq[0]
    expire = now + expire_in
    return {
        "access_token": token or new_token(),
        "expire_time": "2024-01-15 16:30:00", "expire_timestamp": expire,
        "valid_duration_seconds": expire - generated,
        "generated_time": "2024-01-15 14:30:00", "generated_timestamp": generated,
        "source": "财联社自动化系统", "usage": "用于客户端从飞书群获取财联社电报文件",
        "platform": "腾讯云函数", **extra,
    }


def dead_url(path: str = "/release/get-token") -> str:
    """A URL on which nothing listens."""
    return f"http://127.0.0.1:{free_port()}{path}"


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# -- the real server ---------------------------------------------------------
_CONFIG_ENV = ("TOKENDIST_", "FEISHU_", "GITEE_", "TENCENT_", "ENABLE_GITEE")


class Server:
    """``tokendist serve`` on a free port with a SQLite store in a temp dir."""

    def __init__(self, read_key: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.read_key = read_key
        self.extra_args = extra_args
        self.push_key = "push-" + secrets.token_hex(8)
        self.dir = tempfile.mkdtemp(prefix="tokendist-py-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = os.path.join(self.dir, "server.log")

    def start(self) -> "Server":
        if not os.path.exists(BIN):
            raise RuntimeError(f"tokendist binary not found at {BIN}")
        # settings of the machine's environment must not reach the server
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_ENV)}
        for attempt in range(3):
            port = free_port()
            args = [BIN, "serve", "--listen", f"127.0.0.1:{port}",
                    "--store", f"sqlite:{os.path.join(self.dir, 't.db')}", "--push-key", self.push_key]
            if self.read_key:
                args += ["--read-key", self.read_key]
            args += list(self.extra_args)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_healthy(10):
                return self
            self.proc.kill()
            self.proc.wait()
            if "in use" not in self.output():
                break
        raise RuntimeError("tokendist serve did not become healthy; its output:\n" +
                           "\n".join(self.output().splitlines()[-20:]))

    def _wait_healthy(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                if request("GET", self.url + "/healthz", timeout=0.5)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def output(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def push(self, record: dict[str, Any], name: str = "default", path: str | None = None,
             expect: int = 200) -> None:
        p = path or f"/v1/tokens/{name}"
        status, text = request("POST", self.url + p, record,
                            {"Authorization": f"Bearer {self.push_key}",
                             "Content-Type": "application/json"})
        if status != expect:     # the body is the server's message: never the token
            raise AssertionError(f"push to {p}: HTTP {status}, expected {expect}: {text[:200]}")

    def served(self, route: str = "token_get") -> int:
        """Requests the server itself counted on /metrics for ``route``."""
        _, text = request("GET", self.url + "/metrics")
        total = 0
        for line in text.splitlines():
            if line.startswith("tokendist_requests_total{") and f'route="{route}"' in line:
                total += int(line.rsplit(" ", 1)[1])
        return total


def feishu_args(feishu: FeishuDouble) -> tuple[str, ...]:
    return ("--app-id", DEFAULT_APP_ID, "--app-secret", DEFAULT_APP_SECRET,
            "--feishu-base-url", feishu.url)


# -- a reverse proxy ----------------------------------------------------------
Intercept = Callable[[BaseHTTPRequestHandler, str, str, bytes], bool]
_HOP = {"connection", "keep-alive", "transfer-encoding", "date", "server", "content-length", "host"}


class Proxy:
    """In front of ``target``: counts requests (``requests``: dicts with method, path,
    headers, body), can shift the Date header by ``skew`` seconds, and answer some
    requests itself through ``intercept(handler, method, path, body) -> handled``."""

    def __init__(self, target: str, skew: float = 0, intercept: Intercept | None = None) -> None:
        self.target = target.split("://", 1)[1]
        self.skew = skew
        self.intercept = intercept
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with proxy.lock:
                    proxy.requests.append({"method": self.command, "path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body.decode("utf-8", "replace")})
                if proxy.intercept and proxy.intercept(self, self.command, self.path, body):
                    return
                conn = http.client.HTTPConnection(proxy.target, timeout=30)
                try:
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    conn.request(self.command, self.path, body=body or None, headers=hdrs)
                    r = conn.getresponse()
                    out = r.read()
                except OSError:
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                finally:
                    conn.close()
                self.send_response_only(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Date", formatdate(time.time() + proxy.skew, usegmt=True))
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_HEAD = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def count(self, method: str | None = None, path: str | None = None,
              suffix: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if (method is None or r["method"] == method)
                       and (path is None or r["path"] == path)
                       and (suffix is None or r["path"].endswith(suffix)))

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(handler: BaseHTTPRequestHandler, status: int, body: Any,
           ctype: str = "application/json; charset=utf-8", reason: str | None = None) -> bool:
    """Answer from an intercept; returns True (handled)."""
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    handler.send_response(status, reason)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    return True


# -- Gitee ---------------------------------------------------------------------
class Gitee:
    """The Gitee double with one file: ``record`` (or ``raw`` text) in
    tokendist/tokens:token.json, read with the double's access token."""

    def __init__(self, **control: Any) -> None:
        self.double = GiteeDouble().start()
        if control:
            self.double.control(control)
        self.path = "token.json"

    @property
    def options(self) -> dict[str, Any]:
        return {"owner": "tokendist", "repo": "tokens", "path": self.path,
                "access_token": GITEE_TOKEN, "base_url": self.double.url + "/api/v5"}

    def set_record(self, record: dict[str, Any] | None) -> None:
        if record is None:
            self.double.control({"repo": "tokendist/tokens", "remove": [self.path]})
        else:
            self.set_raw(json.dumps(record, ensure_ascii=False, indent=2))

    def set_raw(self, text: str) -> None:
        self.double.put_file(self.path, text)

    def gets(self) -> list[dict[str, Any]]:
        return self.double.requests_to("/api/v5/repos/", "GET")

    def close(self) -> None:
        self.double.stop()


# -- logs ----------------------------------------------------------------------
class CaptureLog(logging.Handler):
    """A logger whose lines are kept: ``lines`` as "LEVEL: message"."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"tokendist_client.test.{secrets.token_hex(4)}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")

    def leaks(self, *tokens: str) -> list[str]:
        return [line for line in self.lines if any(t and t in line for t in tokens)]


class TestCase(unittest.TestCase):
    """Helpers for starting things that are stopped after the test."""

    def server(self, **kw: Any) -> Server:
        s = Server(**kw).start()
        self.addCleanup(s.stop)
        return s

    def proxy(self, target: str, **kw: Any) -> Proxy:
        p = Proxy(target, **kw)
        self.addCleanup(p.close)
        return p

    def gitee(self, **control: Any) -> Gitee:
        g = Gitee(**control)
        self.addCleanup(g.close)
        return g

    def feishu(self, **control: Any) -> FeishuDouble:
        f = FeishuDouble().start()
        if control:
            f.control(control)
        self.addCleanup(f.stop)
        return f

    def tempdir(self) -> str:
        d = tempfile.mkdtemp(prefix="tokendist-py-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def assertError(self, fn: Callable[[], Any], code: str, pattern: str | None = None) -> Any:
        from tokendist_client import TokendistError
        with self.assertRaises(TokendistError) as cm:
            fn()
        err = cm.exception
        self.assertEqual(err.code, code, str(err))
        if pattern is not None:
            self.assertRegex(str(err), pattern)
        return err
