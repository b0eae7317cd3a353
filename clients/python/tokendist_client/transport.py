"""One HTTP exchange with a deadline, a size limit and the server's clock.

The client talks HTTP through :func:`exchange` only, so the limits hold
for every source: the answer is read within ``timeout`` seconds (each wait
for data is bounded by it and the whole exchange is abandoned once it has
passed), a body larger than 1 MiB is refused before it is buffered, and
the ``Date`` header is handed back so the client can judge expiry by the
server's clock instead of its own.

urllib is used (not http.client) because it brings what Python programs
expect of an HTTP client: proxies from ``https_proxy``/``no_proxy``, the
system's CA certificates, and redirects.  Redirects are followed for GET
only, and the ``Authorization`` header (the read key) never follows one to
another origin.
"""

from __future__ import annotations

import email.utils
import errno
import http.client
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import LABEL, SourceName, TokendistError

MAX_BODY_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_SECRET_PARAM = ("token", "key", "secret", "sign", "sig", "auth", "password")


def redact_url(url: str) -> str:
    """``url`` with credentials hidden: the whole userinfo becomes ``***``
    (by the server's rule, src/httpc.h: from ``://`` to the last ``@`` before
    the first ``/``, ``?`` or ``#`` after the first ``@`` -- a password may
    hold ``/``, which a URL parser takes for the end of the host), and query
    parameters whose names look like secrets (``access_token``, ``key`` …)
    too.  Safe to put into messages and logs."""
    s = str(url)
    i = s.find("://")
    first = s.find("@", i + 3) if i >= 0 else -1
    if first >= 0:
        m = re.search(r"[/?#]", s[first:])
        at = s.rfind("@", 0, first + m.start() if m else len(s))
        s = s[:i + 3] + "***" + s[at:]
    try:
        parts = urlsplit(s)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if not any(any(w in k.lower() for w in _SECRET_PARAM) for k, _ in pairs):
            return s
        query = [(k, "***" if any(w in k.lower() for w in _SECRET_PARAM) else v) for k, v in pairs]
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="*"), parts.fragment))
    except ValueError:
        return "(无法解析的URL)"


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    text: str
    server_time: float | None   # Unix seconds from the Date header, when it has one
    challenge: bool = False     # it carries WWW-Authenticate: the key is what it refuses


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects of GET requests only; keep the read key on its origin."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                         msg: str, headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if req.get_method() != "GET":
            return None     # a report is never re-sent elsewhere (or turned into a GET)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            old, nxt = urlsplit(req.full_url), urlsplit(new.full_url)
            if (old.scheme, old.hostname, old.port) != (nxt.scheme, nxt.hostname, nxt.port):
                new.remove_header("Authorization")
        return new


_opener = urllib.request.build_opener(_Redirects())


def host_of(url: str) -> str:
    """Where a request went, for a message: ``host:port`` only, so neither
    the userinfo nor a query (a Gitee ``access_token``) can reach it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{parts.port}" if parts.port is not None else host or "(无法解析的地址)"
    except ValueError:
        return "(无法解析的地址)"


def _network_detail(exc: BaseException, url: str) -> str:
    """A failed request in our words, naming the address and what to check
    (the C client's words, src/httpc.c curl_what); the errno name Node would
    print (``ECONNREFUSED``) or Python's own text follows in parentheses."""
    host = host_of(url)
    if isinstance(exc, socket.gaierror):
        name = urlsplit(url).hostname or host
        return f"无法解析主机名 {name}，请检查地址和 DNS (ENOTFOUND" + (f": {exc.strerror})" if exc.strerror else ")")
    code = errno.errorcode.get(exc.errno, "") if isinstance(exc, OSError) and exc.errno else ""
    if code == "ECONNREFUSED":
        return f"无法连接 {host}，请检查地址、端口和防火墙，以及服务是否在运行 (ECONNREFUSED)"
    if code in ("ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"):
        return f"连不上 {host}，请检查地址、端口、防火墙和网络 ({code})"
    if isinstance(exc, http.client.RemoteDisconnected):
        return f"{host} 未应答即关闭了连接，请检查服务是否在运行 (ECONNRESET)"
    if isinstance(exc, http.client.IncompleteRead):
        return f"{host} 的响应不完整，连接中断 (ECONNRESET)"
    if code in ("ECONNRESET", "EPIPE"):
        return f"与 {host} 的连接中断，请检查服务是否在运行、中间的代理是否断开了连接 ({code})"
    return f"请求 {host} 失败，请检查地址和网络 ({code or str(exc) or type(exc).__name__})"


def _server_time(headers: Message) -> float | None:
    value = headers.get("Date")
    if not isinstance(value, str):
        return None
    parsed = email.utils.parsedate_tz(value)
    return None if parsed is None else float(email.utils.mktime_tz(parsed))


def exchange(source: SourceName, method: str, url: str, *, headers: dict[str, str],
             body: bytes | None = None, timeout: float) -> Answer:
    """Send one request and read the whole answer (any status).

    Raises TokendistError ``ETIMEOUT``, ``ENETWORK`` or ``EINVALID`` (body
    too large); an HTTP error status is an :class:`Answer` like any other.
    """
    label = LABEL[source]
    shown = redact_url(url)

    def fail(code: Any, what: str) -> TokendistError:
        return TokendistError(code, f"❌ {label} token获取失败: {what}", source=source, url=shown)

    timed_out = fail("ETIMEOUT", f"请求超时 ({timeout:g} 秒): {host_of(url)} 没有及时应答，请检查服务是否在运行、网络是否通畅")
    deadline = time.monotonic() + timeout
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    resp: Any
    try:
        resp = _opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        resp = e                            # an error status: still an answer
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise timed_out from None
        reason = e.reason if isinstance(e.reason, BaseException) else e
        raise fail("ENETWORK", f"网络错误: {_network_detail(reason, url)}") from None
    except (TimeoutError, socket.timeout):
        raise timed_out from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise fail("ENETWORK", f"网络错误: {_network_detail(e, url)}") from None
    try:
        status = int(resp.status if resp.status is not None else resp.code)
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise fail("EINVALID", f"响应过大 ({length} 字节)")
        chunks: list[bytes] = []
        total = 0
        while True:
            if time.monotonic() > deadline:
                raise timed_out
            chunk = resp.read(_CHUNK) if resp.fp is not None else b""
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise fail("EINVALID", f"响应过大 (超过 {MAX_BODY_BYTES} 字节)")
            chunks.append(chunk)
    except (TimeoutError, socket.timeout):
        raise timed_out from None
    except (OSError, http.client.HTTPException) as e:
        raise fail("ENETWORK", f"网络错误: {_network_detail(e, url)}") from None
    finally:
        resp.close()
    phrase = resp.reason if isinstance(resp.reason, str) else ""
    if not phrase:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
    return Answer(status, phrase, b"".join(chunks).decode("utf-8-sig", "replace"),
                  _server_time(resp.headers), resp.headers.get("WWW-Authenticate") is not None)
