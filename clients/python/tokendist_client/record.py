"""The token record: the seed's nine fields, their check, and token fingerprints.

One validator (:func:`validate_record`) judges every record, whichever
source it came from (the server, the Gitee file, the cache file, the body
of a report's answer), with the rules of the Node client's
``validateRecord`` and the server's: the nine fields with their JSON types,
a non-empty token in the field asked for, and an expiry after the
generation time.  Freshness is the client's business, not the record's.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, Mapping

TokenField = Literal["access_token", "tenant_access_token"]
FIELDS: tuple[TokenField, ...] = ("access_token", "tenant_access_token")

#: The seed's nine fields and their JSON types.
RECORD_FIELDS: dict[str, type] = {
    "access_token": str,
    "expire_time": str,
    "expire_timestamp": float,
    "valid_duration_seconds": float,
    "generated_time": str,
    "generated_timestamp": float,
    "source": str,
    "usage": str,
    "platform": str,
}

#: The server's rule for token names (``/v1/tokens/NAME``).
NAME_RE = re.compile(r"[a-z0-9_]{1,64}")
NAME_RULE = "1-64 个小写字母、数字或下划线 (a-z 0-9 _)"


def is_number(v: object) -> bool:
    """A JSON number: int or float, finite, and not a bool (bool is an int in Python)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return math.isfinite(v)


def validate_record(record: object, field: TokenField = "access_token") -> str | None:
    """``None`` when ``record`` is a usable record, else the first problem in
    Chinese (the Node client's words).  The description never contains a token.

    A record without ``tenant_access_token`` is usable for that field too: its
    ``access_token`` stands in (see :func:`token_of`)."""
    if not isinstance(record, dict):
        return "数据不是JSON对象"
    for name, kind in RECORD_FIELDS.items():
        if name not in record:
            return f"缺少字段 {name}"
        v = record[name]
        if kind is float:
            if not is_number(v):
                return f"字段 {name} 类型错误 (应为 number)"
        elif not isinstance(v, str):
            return f"字段 {name} 类型错误 (应为 string)"
    if record["access_token"] == "":
        return "字段 access_token 为空"
    if field != "access_token" and field in record:
        if not isinstance(record[field], str):
            return f"字段 {field} 类型错误 (应为 string)"
        if record[field] == "":
            return f"字段 {field} 为空"
    if record["expire_timestamp"] <= record["generated_timestamp"]:
        return "expire_timestamp 不大于 generated_timestamp"
    return None


def token_of(record: Mapping[str, Any], field: TokenField) -> str:
    """The token of ``field`` in a valid record.  A record without
    ``tenant_access_token`` (the seed's own producer writes none) gives its
    ``access_token`` for it: for Feishu's internal apps both are the same
    string.  The C and Node clients do the same."""
    token = record.get(field) if field != "access_token" else None
    return str(token) if isinstance(token, str) else str(record["access_token"])


def expiry_of(record: Mapping[str, Any], field: TokenField) -> float:
    """The expiry (Unix seconds) that applies to the token of ``field``: the
    tenant token may carry its own (``tenant_expire_timestamp``); a record
    without a tenant token gives the access token's."""
    if field == "tenant_access_token" and isinstance(record.get(field), str) \
            and is_number(record.get("tenant_expire_timestamp")) and record["tenant_expire_timestamp"] > 0:
        return float(record["tenant_expire_timestamp"])
    return float(record["expire_timestamp"])


def holds_token(record: Mapping[str, Any], token: str) -> bool:
    """True when either token of the record is ``token`` (a report names the
    tenant token when the caller used that one, the app token otherwise)."""
    return record.get("access_token") == token or record.get("tenant_access_token") == token


def fingerprint(token: object) -> str:
    """``t-g1044ghEGNOJ5OSQF5OYATETPB`` → ``t-g104…PB``: safe to log."""
    if not isinstance(token, str) or token == "":
        return "(无)"
    if len(token) < 12:
        return f"…({len(token)}字符)"
    return f"{token[:6]}…{token[-2:]}"
