"""The one exception type of the client, with a stable ``code``.

The codes and the Chinese messages are the Node client's (``TokendistError``
in clients/node/index.cjs), which in turn speak the seed's words
("❌ 腾讯云函数 token获取失败: …"), so a log line reads the same whichever
client wrote it.  A message never contains a token, a read key or a Gitee
access token: tokens appear only as fingerprints (``t-g104…PB``), URLs only
with their credentials replaced by ``***``.
"""

from __future__ import annotations

from typing import Literal, Sequence

ErrorCode = Literal[
    "ESAME",            # a report: the platform still issues this token, there is no other
    "ENOTFOUND_TOKEN",  # no token: 404 from the server, no Gitee file, no cache file
    "EHTTP",            # any other HTTP error status
    "EAUTH",            # 401/403 (or the server's lockout 429): missing or wrong read key (or Gitee access token)
    "ENETWORK",         # could not connect, connection reset, …
    "ETIMEOUT",         # no answer within the timeout
    "EEXPIRED",         # the token is expired or has min_remaining_seconds or less left
    "EINVALID",         # the record is malformed, or the answer is not JSON; a sealed
                        # Gitee copy that does not open (changed, another token's)
    "ESHAREKEY",        # the Gitee copy is sealed and no share_key opens it (none set,
                        # none with its kid), or it is plaintext while one is set
    "ESTALE",           # still the token reported invalid; waiting for the server
    "EALLFAILED",       # several sources, all failed (errors lists each)
    "ECONFIG",          # the configuration is wrong
]

SourceName = Literal["endpoint", "gitee", "cache"]

#: How the seed names each source in its messages.
LABEL: dict[str, str] = {"endpoint": "腾讯云函数", "gitee": "Gitee", "cache": "本地缓存"}


class TokendistError(Exception):
    """Every failure of the client.

    ``code`` is one of :data:`ErrorCode` and never changes meaning;
    ``str(err)`` is the Chinese message.  Depending on the failure the error
    also carries ``source`` (which source failed), ``url`` (credentials
    redacted), ``status`` (HTTP status), ``remaining_seconds`` (EEXPIRED),
    ``errors`` and ``reason`` (EALLFAILED: each source's error in the order
    tried; ``"expired"`` when every source only had expiring tokens, else
    ``"failed"``).
    """

    code: ErrorCode
    message: str
    source: SourceName | None
    url: str | None
    status: int | None
    remaining_seconds: int | None
    errors: tuple[TokendistError, ...]
    reason: Literal["expired", "failed"] | None

    def __init__(self, code: ErrorCode, message: str, *, source: SourceName | None = None,
                 url: str | None = None, status: int | None = None,
                 remaining_seconds: int | None = None,
                 errors: Sequence[TokendistError] = (),
                 reason: Literal["expired", "failed"] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.source = source
        self.url = url
        self.status = status
        self.remaining_seconds = remaining_seconds
        self.errors = tuple(errors)
        self.reason = reason

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"TokendistError({self.code!r}, {self.message!r})"


def config_error(what: str) -> TokendistError:
    return TokendistError("ECONFIG", f"❌ tokendist 配置错误: {what}")
