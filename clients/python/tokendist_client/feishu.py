"""Recognising Feishu's "this access token is invalid" answer.

Feishu says a token is no good with ``code`` 99991663, 99991664 or
99991671 in its JSON body.  Programs reach that body in many shapes: the
parsed dict, its text, a ``requests``/``httpx`` response, an exception that
carries one (``requests.HTTPError.response``), an SDK response object with
a ``code`` attribute (``lark_oapi``).  :func:`is_feishu_invalid_token_error`
looks through all of them, a few levels deep, and never consumes a body
that is not JSON (a file download stays unread).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

FEISHU_INVALID_TOKEN_CODES: tuple[int, ...] = (99991663, 99991664, 99991671)

_IN_TEXT = re.compile(r"(?:^|[^0-9])(?:99991663|99991664|99991671)(?![0-9])")
_NESTED = ("body", "data", "response", "error", "cause")
_MAX_DEPTH = 4


def _code_is_invalid(code: Any) -> bool:
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return isinstance(code, int) and not isinstance(code, bool) \
        and code in FEISHU_INVALID_TOKEN_CODES


def _json_of_response(obj: Any) -> Any:
    """The parsed body of a requests/httpx-style response, only when it says it
    is JSON; ``None`` otherwise (nothing is read)."""
    headers = getattr(obj, "headers", None)
    get = getattr(headers, "get", None)
    if not callable(get) or not callable(getattr(obj, "json", None)):
        return None
    status = getattr(obj, "status_code", getattr(obj, "status", None))
    if not isinstance(status, int):
        return None
    ctype = get("content-type") or get("Content-Type") or ""
    if "json" not in str(ctype).lower():
        return None
    try:
        return obj.json()
    except Exception:       # a body that lies about its type, a stream already read …
        return None


def is_feishu_invalid_token_error(value: object, _depth: int = 0) -> bool:
    """True when ``value`` is (or carries) Feishu's invalid-token answer."""
    if value is None or _depth > _MAX_DEPTH:
        return False
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("{"):
            try:
                return is_feishu_invalid_token_error(json.loads(s), _depth + 1)
            except ValueError:
                pass
        return bool(_IN_TEXT.search(s))
    if isinstance(value, (int, float)):
        return _code_is_invalid(value)
    if isinstance(value, Mapping):
        if _code_is_invalid(value.get("code")):
            return True
        return any(is_feishu_invalid_token_error(value.get(k), _depth + 1)
                   for k in _NESTED if isinstance(value.get(k), (Mapping, str, bytes)))
    if isinstance(value, (list, tuple, set)):
        return False
    # an object: an SDK response (.code), an HTTP response, an exception
    if _code_is_invalid(getattr(value, "code", None)):
        return True
    body = _json_of_response(value)
    if body is not None and is_feishu_invalid_token_error(body, _depth + 1):
        return True
    for k in ("body", "data", "response", "error"):
        nested = getattr(value, k, None)
        if nested is not None and nested is not value and not callable(nested) \
                and is_feishu_invalid_token_error(nested, _depth + 1):
            return True
    if isinstance(value, BaseException):
        cause = value.__cause__
        if cause is not None and cause is not value and is_feishu_invalid_token_error(cause, _depth + 1):
            return True
        return bool(_IN_TEXT.search(str(value)))
    return False


# "This token is invalid" on the other platforms (docs/providers.md): WeChat
# errcode 40001/40014/42001, WeCom 40014/42001, DingTalk's new API HTTP 400
# {"code": "InvalidAuthentication"}.  Matched in JSON only: a bare 40001 in
# some text is too common to mean it.
PLATFORM_INVALID_ERRCODES = (40001, 40014, 42001)


def _platform_invalid(value: object, depth: int) -> bool:
    if value is None or depth > _MAX_DEPTH:
        return False
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        s = value.strip()
        if not s.startswith("{"):
            return False
        try:
            return _platform_invalid(json.loads(s), depth + 1)
        except ValueError:
            return False
    if isinstance(value, Mapping):
        e = value.get("errcode")
        if isinstance(e, int) and not isinstance(e, bool) and e in PLATFORM_INVALID_ERRCODES:
            return True
        if value.get("code") == "InvalidAuthentication":
            return True
        return any(_platform_invalid(value.get(k), depth + 1)
                   for k in _NESTED if isinstance(value.get(k), (Mapping, str, bytes)))
    if isinstance(value, (list, tuple, set, int, float)):
        return False
    body = _json_of_response(value)
    if body is not None and _platform_invalid(body, depth + 1):
        return True
    for k in ("body", "data", "response", "error"):
        nested = getattr(value, k, None)
        if nested is not None and nested is not value and not callable(nested) \
                and _platform_invalid(nested, depth + 1):
            return True
    if isinstance(value, BaseException):
        cause = value.__cause__
        return cause is not None and cause is not value and _platform_invalid(cause, depth + 1)
    return False


def is_invalid_token_error(value: object) -> bool:
    """Feishu's invalid-token answer, or WeChat's, WeCom's or DingTalk's."""
    return is_feishu_invalid_token_error(value) or _platform_invalid(value, 0)
