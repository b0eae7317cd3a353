#!/usr/bin/env python3
"""Tencent SCF Custom Runtime API double, plus builders for the events tokendist receives.

On Tencent Cloud, tokendist runs as a Custom Runtime ``bootstrap``: it reads
``SCF_RUNTIME_API`` (host) and ``SCF_RUNTIME_API_PORT`` from the environment,
reports ``POST /runtime/init/ready`` (or ``POST /runtime/init/error``), then
loops ``GET /runtime/invocation/next`` -> handle -> ``POST
/runtime/invocation/response`` (or ``/runtime/invocation/error``).  This double
plays SCF's side so tests can drive the real binary in that mode:

  d = ScfRuntimeDouble().start()
  proc = subprocess.Popen([tokendist, ...], env={**os.environ, **d.runtime_env()})
  assert d.wait_ready(5)
  status, headers, body = http_response(d.invoke(apigw_event("GET", "/release/get-token")))

Protocol details (Tencent's Custom Runtime docs and public runtimes built on
them): ``/next`` long-polls until an event is queued and answers the event
JSON as the body, with headers ``request_id``, ``memory_limit_in_mb`` and
``time_limit_in_ms``; calling ``/next`` again before the result is posted
returns the same event.  ``/response`` and ``/error`` carry no request id in
the path; they complete the invocation in flight.  What SCF answers to the
runtime's POSTs is not documented; the double answers 200 with an empty body,
or 400 when no invocation is in flight.

``/runtime/init/ready`` must carry a body: Tencent's sample bootstrap sends
one space (``curl -d " " -X POST .../runtime/init/ready``, "Custom Runtime
创建 Bash 示例函数", https://www.tencentcloud.com/zh/document/product/583/38130),
its .NET and Deno samples send a short text, and the tencent_scf crate notes
"A space must be sent, otherwise the upstream cloud rejects the request"
(notify_ready, https://docs.rs/tencent_scf/latest/src/tencent_scf/lib.rs.html).
So the double refuses an empty ready (400) and does not mark the runtime
ready: a runtime that sends one waits for its first event forever, as it may
on SCF.  ``empty_ready`` counts such refused POSTs.

``time_limit_in_ms`` is the function's execution timeout (SCF's default is
3 s; the console sets 1-900 s).  SCF ends an invocation that outlives it; the
double does so too when ``enforce_time_limit`` is on: the invocation then
fails with ``TIMED_OUT`` (as the caller sees it: SCF's "Invoking task timed
out"), counted from when ``/next`` handed the event out, and whatever the
runtime posts for it later is refused (400, nothing in flight).  Off by
default, so that a test on a loaded machine is not cut at 3 s by accident;
each finished invocation records ``elapsed_ms`` either way.

Process mode: ``POST /_invoke?timeout=S`` with the event as body blocks until
the runtime answers and returns ``{"request_id", "response"}`` or
``{"request_id", "error"}`` (504 on timeout).  Control keys, besides the
common ones: ``{"memory_limit_mb": N, "time_limit_ms": N,
"enforce_time_limit": BOOL}``.

Event builders: ``apigw_event`` follows the "API Gateway trigger integration
request" structure of Tencent's trigger-event summary; ``function_url_event``
follows the Function URL docs, which describe it as the API Gateway event
without ``headerParameters``, ``isBase64Encoded``, ``pathParameters``,
``queryStringParameters`` and ``requestContext``, with lower-case headers and
the client address in ``x-scf-remote-addr``.
"""

import base64
import collections
import json
import threading
import time
import uuid

from common import JSON_TYPE, DoubleServer, Response, json_response, main

TIMED_OUT = "Invoking task timed out (the function's execution timeout ended the invocation)"

RUNTIME_PATHS = ("/runtime/init/ready", "/runtime/init/error",
                 "/runtime/invocation/next", "/runtime/invocation/response",
                 "/runtime/invocation/error")


class InvocationError(Exception):
    """The runtime reported an invocation error; ``body`` is what it posted."""

    def __init__(self, body):
        super().__init__(body)
        self.body = body


class _Invocation:
    def __init__(self, event_bytes):
        self.request_id = str(uuid.uuid4())
        self.event_bytes = event_bytes
        self.done = threading.Event()
        self.response = self.error = None
        self.started = None          # monotonic, when /next handed it out
        self.timer = None


class ScfRuntimeDouble(DoubleServer):
    """Tencent SCF Custom Runtime API double (init/ready, invocation/next|response|error)."""

    name = "scf-runtime"

    def reset_state(self):
        super().reset_state()
        self.cond = threading.Condition(self.lock)
        self.ready = threading.Event()
        self.init_error = None       # body of POST /runtime/init/error
        self.empty_ready = 0         # POST /runtime/init/ready without a body: refused
        self.pending = collections.deque()
        self.in_flight = None
        self.invocations = []        # finished: {"request_id", "event", "response"|"error"}
        self.memory_limit_mb, self.time_limit_ms = 128, 3000
        self.enforce_time_limit = False

    # -- Python-side API ---------------------------------------------------
    def runtime_env(self):
        """The environment SCF gives a Custom Runtime bootstrap."""
        return {"SCF_RUNTIME_API": self.host, "SCF_RUNTIME_API_PORT": str(self.port)}

    def wait_ready(self, timeout=5):
        """True once the runtime posted /runtime/init/ready."""
        return self.ready.wait(timeout)

    @property
    def init_ready(self):
        return self.ready.is_set()

    def invoke(self, event, timeout=5):
        """Queue ``event`` (a dict, str or bytes) and wait for the runtime's result.

        Returns the posted response, parsed as JSON when it is JSON (else the
        text); raises InvocationError with the posted error, or TimeoutError.
        """
        inv = self._submit(event)
        if not inv.done.wait(timeout):
            self._abandon(inv)
            raise TimeoutError(f"no answer from the runtime within {timeout}s")
        if inv.error is not None:
            raise InvocationError(inv.error)
        return _maybe_json(inv.response)

    def _submit(self, event):
        if isinstance(event, (dict, list)):
            event = json.dumps(event, ensure_ascii=False)
        inv = _Invocation(event.encode("utf-8") if isinstance(event, str) else event)
        with self.cond:
            self.pending.append(inv)
            self.cond.notify_all()
        return inv

    def _abandon(self, inv):
        with self.cond:
            if inv.timer:
                inv.timer.cancel()
            if inv in self.pending:
                self.pending.remove(inv)
            if self.in_flight is inv:
                self.in_flight = None

    def state(self):
        return {**super().state(), "init_ready": self.ready.is_set(),
                "empty_ready": self.empty_ready,
                "init_error": self.init_error, "pending": len(self.pending),
                "in_flight": self.in_flight.request_id if self.in_flight else None,
                "invocations": self.invocations}

    def apply_control(self, cfg):
        if "memory_limit_mb" in cfg:
            self.memory_limit_mb = int(cfg.pop("memory_limit_mb"))
        if "time_limit_ms" in cfg:
            self.time_limit_ms = int(cfg.pop("time_limit_ms"))
        if "enforce_time_limit" in cfg:
            self.enforce_time_limit = bool(cfg.pop("enforce_time_limit"))
        return {}

    # -- the runtime API -----------------------------------------------------
    def route(self, req):
        if req.path not in RUNTIME_PATHS:
            return json_response({"error": "not found"}, 404)
        want = "GET" if req.path.endswith("/next") else "POST"
        if req.method != want:
            return json_response({"error": "method not allowed"}, 405)
        text = req.body.decode("utf-8", "replace")
        if req.path == "/runtime/init/ready":
            if not req.body:
                with self.lock:
                    self.empty_ready += 1
                return json_response({"error": "empty body: send a non-empty body, e.g. \" \""}, 400)
            self.ready.set()
            return Response(200, b"", content_type=None)
        if req.path == "/runtime/init/error":
            self.init_error = text
            return Response(200, b"", content_type=None)
        if req.path == "/runtime/invocation/next":
            return self._next()
        with self.cond:
            inv = self.in_flight
            if inv is None:
                return json_response({"error": "no invocation in flight"}, 400)
            self._finish(inv, text, req.path.endswith("/error"))
        return Response(200, b"", content_type=None)

    def _finish(self, inv, text, is_error):
        """Ends the invocation in flight (lock held)."""
        if inv.timer:
            inv.timer.cancel()
        if is_error:
            inv.error = text
        else:
            inv.response = text
        self.in_flight = None
        elapsed = int((time.monotonic() - inv.started) * 1000) if inv.started else None
        self.invocations.append({"request_id": inv.request_id,
                                 "event": _maybe_json(inv.event_bytes.decode("utf-8", "replace")),
                                 ("error" if is_error else "response"): text,
                                 "elapsed_ms": elapsed, "timed_out": text == TIMED_OUT})
        inv.done.set()
        self.cond.notify_all()

    def _time_out(self, inv):
        with self.cond:
            if self.in_flight is inv:
                self._finish(inv, TIMED_OUT, True)

    def _next(self):
        with self.cond:
            while self.in_flight is None and not self.pending:
                if self.stopping.is_set():
                    return json_response({"error": "shutting down"}, 503)
                self.cond.wait(0.2)
            if self.in_flight is None:
                self.in_flight = self.pending.popleft()
            inv = self.in_flight
            if inv.started is None:
                inv.started = time.monotonic()
                if self.enforce_time_limit:
                    inv.timer = threading.Timer(self.time_limit_ms / 1000.0, self._time_out, (inv,))
                    inv.timer.daemon = True
                    inv.timer.start()
        headers = [("request_id", inv.request_id),
                   ("memory_limit_in_mb", str(self.memory_limit_mb)),
                   ("time_limit_in_ms", str(self.time_limit_ms))]
        return Response(200, inv.event_bytes, JSON_TYPE, headers)

    def internal(self, req):
        if req.path != "/_invoke" or req.method != "POST":
            return super().internal(req)
        inv = self._submit(req.body)
        if not inv.done.wait(float(req.query.get("timeout", 5))):
            self._abandon(inv)
            return json_response({"request_id": inv.request_id, "error": "timeout"}, 504)
        key, value = ("error", inv.error) if inv.error is not None else ("response", inv.response)
        return json_response({"request_id": inv.request_id, key: _maybe_json(value)})


def _maybe_json(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


# -- events --------------------------------------------------------------------
def _body_fields(body, is_base64):
    if body is None:
        return "", False
    if isinstance(body, (dict, list)):
        body = json.dumps(body, ensure_ascii=False)
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            is_base64 = True
    if is_base64:
        raw = body if isinstance(body, bytes) else body.encode("utf-8")
        return base64.b64encode(raw).decode("ascii"), True
    return body, False


def apigw_event(method, path, headers=None, query=None, body=None, is_base64=False,
                stage="release", service_id="service-f94sy04v", api_path=None,
                source_ip="10.0.2.14", path_parameters=None, header_parameters=None,
                query_string_parameters=None, secret_id=None, request_id=None):
    """An API Gateway trigger event ("integration request") as SCF delivers it.

    ``queryString`` carries the actual query; ``queryStringParameters``,
    ``headerParameters`` and ``pathParameters`` carry only the parameters
    declared in the API's definition, so they default to empty: a runtime
    must read ``queryString`` and ``headers``.  ``path`` is the request path
    after the stage, as in the docs' example (".../release/get-token" arrives
    as "/get-token"); ``requestContext.path`` is the API's declared path.
    """
    text, b64 = _body_fields(body, is_base64)
    identity = {"secretId": secret_id} if secret_id else {}
    return {
        "requestContext": {"serviceId": service_id, "path": api_path or path,
                           "httpMethod": method, "requestId": request_id or str(uuid.uuid4()),
                           "identity": identity, "sourceIp": source_ip, "stage": stage},
        "headers": dict(headers or {}),
        "body": text,
        "isBase64Encoded": b64,
        "pathParameters": dict(path_parameters or {}),
        "queryStringParameters": dict(query_string_parameters or {}),
        "headerParameters": dict(header_parameters or {}),
        "stageVariables": {"stage": stage},
        "path": path,
        "queryString": dict(query or {}),
        "httpMethod": method,
    }


def function_url_event(method, path, headers=None, query=None, body=None,
                       remote_addr="111.206.96.145"):
    """A Function URL event for an event function (lower-case headers, no context)."""
    text, _ = _body_fields(body, False)
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs.setdefault("x-scf-remote-addr", remote_addr)
    if text:
        hdrs.setdefault("content-length", str(len(text.encode("utf-8"))))
    return {"body": text, "headers": hdrs, "httpMethod": method, "path": path,
            "queryString": dict(query or {})}


def http_response(result, function_url=False):
    """Turn a runtime's result into ``(status, headers, body_bytes)`` like the gateway.

    API Gateway's integrated response needs ``statusCode`` (int), ``headers``
    (object of strings), ``body`` (string) and ``isBase64Encoded`` (bool); a
    result that is not of that shape raises ValueError, as the gateway would
    answer an error instead.  A Function URL also accepts a bare JSON value:
    then the status is 200, the type application/json and the value the body.
    """
    if function_url and not (isinstance(result, dict) and "statusCode" in result):
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode("utf-8")
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise ValueError(f"not an integrated response: {result!r:.200}")
    headers = result.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("integrated response headers must be an object of strings")
    body = result.get("body", "")
    if not isinstance(body, str) or not isinstance(result.get("isBase64Encoded", False), bool):
        raise ValueError("integrated response body must be a string")
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return result["statusCode"], headers, raw


if __name__ == "__main__":
    raise SystemExit(main(ScfRuntimeDouble))
