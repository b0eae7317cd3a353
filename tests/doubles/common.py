"""Shared machinery for tokendist's local doubles of Feishu, WeChat, WeCom, DingTalk,
Gitee and the SCF runtime.

The black-box tests run the real ``tokendist`` binary against doubles that speak
the services' real HTTP protocols on 127.0.0.1, because the test machines cannot
reach the real services and because faults (timeouts, 5xx, cut downloads) must be
reproducible.  Everything the doubles share lives here, so that each double
file holds only what is specific to its service:

* an HTTP/1.1 server (keep-alive, Content-Length, chunked request bodies) on an
  ephemeral port, served from a background thread;
* a request log: ``double.requests`` / ``GET /_requests[?path=PREFIX]``;
* a control API: ``double.control({...})`` / ``POST /_control`` and a state view
  ``double.state()`` / ``GET /_state``;
* fault injection common to all doubles, each optionally for ``times`` requests;
* a clock tests can shift (``clock_offset``, ``advance``, ``clock_file``), which the
  ``Date`` header of every answer follows;
* a command line, so shell and node tests can run a double as a process:
  ``python3 DOUBLE.py --port 0 --port-file F [--config JSON|@FILE]``.

Common control keys (one JSON object; unknown keys are an error, so typos in a
test fail loudly instead of silently testing nothing):

``{"fail": MODE, "times": N, "path": PREFIX, "method": M, ...}``
    queue a fault; without ``times`` it lasts until cleared.  Faults apply in
    the order queued; only the first matching one fires per request.  MODE is
    ``"500"``/``"502"``/``"503"``/``"504"`` (``"body": "html"`` for an HTML page
    instead of the service's JSON error), ``"slow"`` (sleep ``delay`` seconds,
    then answer normally), ``"garbage"`` (200, non-JSON body), ``"close"``
    (close without answering), ``"reset"`` (TCP RST without answering),
    ``"cut"`` (send the headers and half the body, then close), ``"status"``
    (``"status": N`` with ``"json": {...}``), or a mode the double adds.
``{"faults": [{...}, ...]}``   queue several faults in order.
``{"clear_faults": true}``, ``{"clear_requests": true}``, ``{"reset": true}``
``{"clock_offset": S}`` (absolute) / ``{"advance": S}`` (relative), in seconds.
``{"clock_file": PATH}``   also add the offset in milliseconds that PATH holds
    (read on every use; no file: 0): the file a test hands tokendist in
    ``TOKENDIST_TEST_CLOCK_FILE`` (src/clock.h), so that one write moves the
    tokendist processes and the double together (tests/e2e/harness.py,
    ``TestClock``).  ``null`` detaches.  Each logged request carries ``now``,
    the double's clock when it arrived, besides the real ``time``.
``{"freeze": true}`` stops the double's clock where it is (``advance`` still
    moves it), so that a test can assert exact seconds left; ``false`` lets it
    run on from the real time.

The doubles never print requests, bodies, tokens or secrets: the default
request logging is silenced and handler crashes print only a traceback without
the exception's message.
"""

import argparse
import email.utils
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_BODY = 16 * 1024 * 1024      # a double refuses larger request bodies (413)
LOGGED_BODY = 64 * 1024          # at most this much of a body is kept in the log
JSON_TYPE = "application/json; charset=utf-8"

BASE_FAULTS = {"500", "502", "503", "504", "slow", "garbage", "close", "reset",
               "cut", "status"}
FAULT_KEYS = {"fail", "times", "path", "method", "delay", "body", "status",
              "json", "code", "msg", "reset_after", "limit", "text"}
HTML_ERROR = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")


def free_port() -> int:
    """A port nothing listens on, taken below the kernel's ephemeral range.

    bind(("127.0.0.1", 0)) hands out a port from that range, the same range
    the outgoing connections of every test running in parallel draw their
    local ports from: by the time a server binds the port, a client socket
    may hold it (CI saw EADDRINUSE for a server on 0.0.0.0). Below the range
    only listeners compete; the check binds the wildcard address, which
    conflicts with a listener on any local address."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 2048)
    for _ in range(200):
        port = random.randrange(1024 if low <= 10000 else 10000, low)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below %d" % low)


class ControlError(ValueError):
    """A control request the double does not understand (answered with 400)."""


class Request:
    """One parsed HTTP request as the handlers of a double see it."""

    def __init__(self, method, target, headers, body):
        parts = urlsplit(target)
        self.method = method
        self.raw_path = parts.path
        self.path = unquote(parts.path)
        self.query = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            self.query.setdefault(k, v)           # the first value wins
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def record(self):
        """The JSON-able form kept in the request log."""
        return {"method": self.method, "path": self.path, "query": dict(self.query),
                "headers": dict(self.headers), "json": self.json,
                "body": self.body[:LOGGED_BODY].decode("utf-8", "replace"),
                "time": time.time(), "status": None, "fault": None}


class Response:
    """An answer; ``action`` is None, "close", "reset" or "cut" (see the faults)."""

    def __init__(self, status=200, body=b"", content_type=JSON_TYPE, headers=(),
                 action=None):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = list(headers)
        self.action = action


def json_response(obj, status=200, headers=()):
    """A JSON answer encoded the way the services do (UTF-8, not \\u-escaped)."""
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return Response(status, body, JSON_TYPE, headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass  # quiet: request lines can carry tokens (Gitee's access_token query)

    def date_time_string(self, timestamp=None):
        """The Date header by the double's clock, so a shifted clock shows in
        what clients read of it (they judge expiry by the server's Date)."""
        return email.utils.formatdate(self.server.double.now() if timestamp is None else timestamp,
                                      usegmt=True)

    def setup(self):
        super().setup()
        self.server.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.conns.discard(self.connection)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return self._send(json_response({"error": "body too large"}, 413))
        req = Request(self.command, self.path, self.headers, body)
        self._send(self.server.double._serve(req))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _send(self, resp):
        if resp.action in ("close", "reset"):
            if resp.action == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(resp.status)
        for name, value in resp.headers:
            self.send_header(name, value)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.action == "cut":
            self.wfile.write(resp.body[:len(resp.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(resp.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, double):
        self.double = double
        self.conns = set()
        super().__init__(addr, _Handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            return  # the client went away; expected in fault tests
        sys.stderr.write(f"{self.double.name} double: {type(exc).__name__} while serving\n")


class DoubleServer:
    """Base of the doubles: server lifecycle, request log, faults, clock, control.

    A subclass sets ``name``, extends ``reset_state`` (calling super), answers
    requests in ``route(req)``, consumes its control keys in
    ``apply_control(cfg)`` (pop what you use; leftovers are an error) and may
    add fault modes in ``extra_faults`` answered by ``fault_response``.
    """

    name = "double"
    extra_faults = frozenset()

    def __init__(self, port=0, host="127.0.0.1"):
        self.host, self._want_port = host, port
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self._httpd = self._thread = None
        self.reset_state()

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        """Bind 127.0.0.1 (port 0 = ephemeral) and serve from a daemon thread."""
        self.stopping.clear()
        self._httpd = _Server((self.host, self._want_port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-double", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and drop kept-alive and long-polling connections."""
        self.stopping.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        for conn in list(self._httpd.conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(5)
        self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    # -- state and control -------------------------------------------------
    def reset_state(self):
        """Forget everything: requests, faults, clock and the service's state."""
        self.requests = []
        self.faults = []
        self.clock_offset = 0.0
        self.clock_file = None
        self.frozen = None         # the real time the clock stopped at, or None

    def now(self):
        """The double's notion of the current Unix time (tests may shift it)."""
        return (time.time() if self.frozen is None else self.frozen) + self.clock_offset + self._file_offset()

    def _file_offset(self):
        """Seconds from ``clock_file``; the writer replaces the file by rename."""
        if not self.clock_file:
            return 0.0
        try:
            with open(self.clock_file, encoding="ascii") as f:
                return int(f.read().strip() or 0) / 1000.0
        except FileNotFoundError:
            return 0.0

    def state(self):
        """What ``GET /_state`` shows; subclasses add their counters."""
        return {"clock_offset": self.clock_offset, "clock_file": self.clock_file, "frozen": self.frozen is not None,
                "now": self.now(), "faults": list(self.faults),
                "requests": len(self.requests)}

    def requests_to(self, path_prefix="", method=None):
        """The logged requests whose path starts with ``path_prefix``."""
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(path_prefix)
                    and (method is None or r["method"] == method)]

    def control(self, cfg):
        """Apply one control object (see the module docstring); returns extras."""
        if not isinstance(cfg, dict):
            raise ControlError("control body must be a JSON object")
        cfg = dict(cfg)
        with self.lock:
            if cfg.pop("reset", False):
                self.reset_state()
            if cfg.pop("clear_requests", False):
                self.requests.clear()
            if cfg.pop("clear_faults", False):
                self.faults.clear()
            if "clock_offset" in cfg:
                self.clock_offset = float(cfg.pop("clock_offset"))
            if "advance" in cfg:
                self.clock_offset += float(cfg.pop("advance"))
            if "clock_file" in cfg:
                self.clock_file = cfg.pop("clock_file") or None
            if "freeze" in cfg:
                self.frozen = time.time() if cfg.pop("freeze") else None
            for spec in cfg.pop("faults", []):
                self._add_fault(dict(spec))
            if "fail" in cfg:
                self._add_fault({k: cfg.pop(k) for k in list(cfg) if k in FAULT_KEYS})
            extras = self.apply_control(cfg) or {}
            if cfg:
                raise ControlError(f"unknown control keys: {sorted(cfg)}")
            return extras

    def apply_control(self, cfg):
        """Consume (pop) the service's own control keys from ``cfg``."""
        return {}

    def _add_fault(self, spec):
        mode = str(spec.get("fail"))
        if mode not in BASE_FAULTS | set(self.extra_faults):
            raise ControlError(f"unknown fault mode {mode!r}")
        unknown = set(spec) - FAULT_KEYS
        if unknown:
            raise ControlError(f"unknown fault keys: {sorted(unknown)}")
        spec["fail"] = mode
        if spec.get("times") is not None:
            spec["times"] = int(spec["times"])
        self.faults.append(spec)

    def _take_fault(self, req):
        with self.lock:
            for fault in self.faults:
                if req.path.startswith(fault.get("path", "")) and \
                        fault.get("method", req.method) == req.method:
                    if fault.get("times") is not None:
                        fault["times"] -= 1
                        if fault["times"] <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # -- serving -----------------------------------------------------------
    def route(self, req):
        """Answer one service request; subclasses implement the protocol."""
        return json_response({"error": "not found"}, 404)

    def internal(self, req):
        """Extra ``/_...`` endpoints of a double (the SCF double adds /_invoke)."""
        return json_response({"error": "unknown control endpoint"}, 404)

    def error_json(self, status):
        """The JSON body the service sends with an HTTP 5xx."""
        return {"message": "Internal Server Error"}

    def fault_response(self, fault, req):
        """Answer a fault mode from ``extra_faults``."""
        raise NotImplementedError(fault["fail"])

    def _serve(self, req):
        if req.path.startswith("/_"):
            return self._serve_internal(req)
        rec = req.record()
        rec["now"] = self.now()
        with self.lock:
            self.requests.append(rec)
        fault = self._take_fault(req)
        resp = self._fault(fault, req) if fault else None
        if resp is None:
            try:
                resp = self.route(req)
            except Exception:
                sys.stderr.write(f"{self.name} double: handler crashed on {req.method} "
                                 f"{req.path}\n" + "".join(traceback.format_tb(
                                     sys.exc_info()[2])) + f"{sys.exc_info()[0].__name__}\n")
                resp = json_response(self.error_json(500), 500)
        if fault is not None:
            rec["fault"] = fault["fail"]
            if fault["fail"] == "cut":
                resp.action = "cut"
        rec["status"] = resp.status
        return resp

    def _fault(self, fault, req):
        mode = fault["fail"]
        if mode == "slow":
            self.stopping.wait(float(fault.get("delay", 2.0)))
            return None
        if mode == "cut":
            return None  # answered normally, then truncated by the sender
        if mode in ("close", "reset"):
            return Response(action=mode)
        if mode == "garbage":
            return Response(200, fault.get("text", "<html><body>upstream hiccup</body>"),
                            "text/html; charset=utf-8")
        if mode == "status":
            return json_response(fault.get("json", {}), int(fault.get("status", 500)))
        if mode in ("500", "502", "503", "504"):
            status = int(mode)
            if fault.get("body") == "html":
                reason = _Handler.responses.get(status, ("Error",))[0]
                return Response(status, HTML_ERROR.format(code=status, reason=reason),
                                "text/html")
            return json_response(self.error_json(status), status)
        return self.fault_response(fault, req)

    def _serve_internal(self, req):
        if req.path == "/_requests" and req.method == "GET":
            return json_response(self.requests_to(req.query.get("path", "")))
        if req.path == "/_state" and req.method == "GET":
            with self.lock:
                return json_response(self.state())
        if req.path == "/_control" and req.method == "POST":
            try:
                return json_response({"ok": True, **self.control(req.json)})
            except (ControlError, ValueError, TypeError, KeyError) as exc:
                return json_response({"ok": False, "error": str(exc)}, 400)
        return self.internal(req)


def main(double_cls, argv=None):
    """Run ``double_cls`` as a process until SIGTERM/SIGINT.

    The port is written to ``--port-file`` (atomically, via rename) only once
    the double listens and ``--config`` has been applied, so a waiting test
    can poll for the file and then talk to the double at once.
    """
    parser = argparse.ArgumentParser(description=(double_cls.__doc__ or "").split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = ephemeral)")
    parser.add_argument("--port-file", help="write the bound port here when ready")
    parser.add_argument("--config", help="control JSON applied at start, or @FILE")
    args = parser.parse_args(argv)

    double = double_cls(port=args.port)
    if args.config:
        text = args.config
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        double.control(json.loads(text))
    double.start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{double.port}\n")
        os.replace(tmp, args.port_file)
    sys.stderr.write(f"{double.name} double listening on {double.url}\n")

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    double.stop()
    return 0
