"""What a client is told: keywords, the seed's ``CONFIG`` dict, or both.

:func:`build_options` is the one way in.  It reads the seed's Python names
(``TENCENT_CLOUD_ENABLED``, ``TENCENT_CLOUD_API_URL``,
``ENABLE_GITEE_TOKEN_SHARE``, ``GITEE_*``) and the names ``tokendist get``
reads from its environment (``TOKENDIST_URLS``, ``TOKENDIST_READ_KEY``,
``TOKENDIST_TOKEN_NAME`` …), so ``create_client(CONFIG)`` and
``create_client(os.environ)`` both work; keywords win over the dict.  Every
mistake is an ``ECONFIG`` error at creation, never a surprise at the first
fetch.

It also derives, once, where each endpoint is read and where an invalid
token is reported (:func:`endpoint_urls`), with the rules of the Node and C
clients.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, TypedDict
from urllib.parse import urlsplit, urlunsplit

from .errors import TokendistError, config_error
from .record import FIELDS, NAME_RE, NAME_RULE, TokenField
from .sealed import ShareKey, parse_keys
from .transport import redact_url

DEFAULT_NAME = "default"


class Logger(Protocol):
    """What the client logs through: a ``logging.Logger`` or anything alike."""

    def debug(self, msg: str, /) -> None: ...
    def info(self, msg: str, /) -> None: ...
    def warning(self, msg: str, /) -> None: ...

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_SEED_PATH = re.compile(r"(.*?)/(?:release/)?get-token")
_NAMED_PATH = re.compile(r"(.*)/v1/tokens/([^/]*)")


class GiteeOptions(TypedDict, total=False):
    """The Gitee fallback: a JSON file in a repository, read through the contents API."""
    owner: str
    repo: str
    path: str               # e.g. "token.json"
    branch: str             # the repository's default branch when omitted
    access_token: str       # Gitee personal access token (private repositories)
    base_url: str           # default "https://gitee.com/api/v5"


@dataclass(frozen=True)
class Endpoint:
    url: str                            # GET here
    report_url: str | None              # POST invalid tokens here (None: cannot be derived)


@dataclass(frozen=True)
class Gitee:
    owner: str
    repo: str
    path: str
    branch: str | None
    access_token: str | None = field(repr=False)
    base_url: str

    def where(self) -> str:
        return f"{self.owner}/{self.repo}/{self.path}" + (f"@{self.branch}" if self.branch else "")


@dataclass(frozen=True)
class Options:
    endpoints: tuple[Endpoint, ...]
    read_key: str | None = field(repr=False)
    share_keys: tuple[ShareKey, ...] = field(repr=False)    # sealed Gitee copy; () for plaintext
    name: str
    field: TokenField
    min_remaining_seconds: float | None    # None: the record's platform's need (need_of)
    timeout: float
    refresh_wait: float
    gitee: Gitee | None
    cache_file: str | None
    logger: Logger


def _split_url(url: str) -> tuple[str, str, str] | None:
    """(scheme://netloc, path without trailing slashes, query) of an http(s) URL."""
    try:
        p = urlsplit(url)
    except ValueError:
        return None
    if p.scheme not in ("http", "https") or not p.netloc:
        return None
    return f"{p.scheme}://{p.netloc}", p.path.rstrip("/"), p.query


def endpoint_urls(url: str, name: str = DEFAULT_NAME, *, name_given: bool = False) -> Endpoint:
    """Where to read and where to report, for one configured URL:

    * ``http(s)://host[:port]``           → ``…/v1/tokens/NAME`` (and ``…/invalid``)
    * ``…/v1/tokens/X``                   → as given; reports to ``…/v1/tokens/X/invalid``
    * ``…/release/get-token``, ``…/get-token`` → as given for ``default``, reports to
      ``…/v1/tokens/default/invalid``; for another NAME the server's
      ``…/v1/tokens/NAME`` beside it (the seed's path only knows ``default``)
    * any other path                      → as given, no reports; only for ``default``

    A name the URL contradicts, or cannot express, is an ``ECONFIG`` error:
    serving the ``default`` token to a client that asked for another would be
    silently wrong.
    """
    parts = _split_url(url)
    if parts is None:
        raise config_error(f"api_url 只支持 http/https 的合法URL: {redact_url(url)}")
    base, path, _ = parts
    if path == "":
        get = f"{base}/v1/tokens/{name}"
        return Endpoint(get, get + "/invalid")
    m = _NAMED_PATH.fullmatch(path)
    if m and NAME_RE.fullmatch(m.group(2)):
        if name_given and m.group(2) != name:
            raise config_error(f"api_url 指向名称 '{m.group(2)}'，与 name='{name}' 不一致: {redact_url(url)}")
        return Endpoint(url, f"{base}{path}/invalid")
    m = _SEED_PATH.fullmatch(path)
    if m:
        if name == DEFAULT_NAME:
            return Endpoint(url, f"{base}{m.group(1)}/v1/tokens/default/invalid")
        get = f"{base}{m.group(1)}/v1/tokens/{name}"
        return Endpoint(get, get + "/invalid")
    if name != DEFAULT_NAME:
        raise config_error(
            f"无法从 api_url 推导名称 '{name}' 的地址 (应以 /release/get-token、/get-token 或 "
            f"/v1/tokens/名称 结尾，或只写到端口): {redact_url(url)}")
    return Endpoint(url, None)


def invalid_url_for(api_url: str) -> str | None:
    """The report URL derived from a GET URL (the ``default`` name), or None."""
    try:
        ep = endpoint_urls(api_url)
    except TokendistError:
        return None
    if ep.report_url is None:
        return None
    p = urlsplit(ep.report_url)
    return urlunsplit((p.scheme, p.netloc, p.path, "", ""))


def _pick(config: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = config.get(n)
        if v is not None and v != "":
            return v
    return None


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise config_error(f"{what} 应为 true 或 false: {value!r}")


def _as_number(value: Any, what: str, *, positive: bool) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value < 0 or (positive and value == 0) or value == float("inf"):
        raise config_error(f"{what} 必须是{'正数' if positive else '非负数'}")
    return float(value)


# What a reader of each platform's token in service should still have
# (docs/providers.md; the C client's provider_min): WeChat renews in its last
# 5 minutes, WeCom only after expiry, the rest in their last 30 minutes.
PROVIDER_MIN = {"wechat": 60.0, "wecom": 0.0}
DEFAULT_MIN = 300.0


def need_of(min_remaining: float | None, record: Any) -> float:
    """Seconds a record must still have: the option, or its platform's need."""
    if min_remaining is not None:
        return min_remaining
    p = record.get("provider") if isinstance(record, dict) else None
    return PROVIDER_MIN.get(p, DEFAULT_MIN) if isinstance(p, str) else DEFAULT_MIN


def _min_remaining(value: Any) -> float | None:
    """None or -1 (as TOKENDIST_MIN_REMAINING=-1 for the CLI): the platform's need."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() == "-1" or \
            not isinstance(value, bool) and isinstance(value, (int, float)) and value == -1:
        return None
    return _as_number(value, "min_remaining_seconds (-1: 按平台)", positive=False)


def _as_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or value == "":
        raise config_error(f"{what} 必须是非空字符串")
    return value


def _urls(value: Any, from_config: bool) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # in a CONFIG dict or the environment, several URLs are comma-separated
        items = [u.strip() for u in value.split(",")] if from_config else [value]
        return [u for u in items if u]
    if isinstance(value, Sequence) and all(isinstance(u, str) for u in value):
        return [u for u in value if u]
    raise config_error("api_url 必须是字符串或字符串列表")


def _gitee(g: Mapping[str, Any]) -> Gitee:
    for k in ("owner", "repo", "path"):
        _as_str(g.get(k), f"gitee['{k}']")
    unknown = set(g) - set(GiteeOptions.__annotations__)
    if unknown:
        raise config_error(f"gitee 中有未知的键: {', '.join(sorted(unknown))}")
    branch, token = g.get("branch"), g.get("access_token")
    base = str(g.get("base_url") or "https://gitee.com/api/v5").rstrip("/")
    if _split_url(base) is None:
        raise config_error(f"gitee['base_url'] 只支持 http/https 的合法URL: {redact_url(base)}")
    return Gitee(owner=g["owner"], repo=g["repo"], path=str(g["path"]).lstrip("/"),
                 branch=str(branch) if branch else None,
                 access_token=str(token) if token else None, base_url=base)


def build_options(config: Mapping[str, Any] | None, *, api_url: str | Sequence[str] | None,
                  read_key: str | None, min_remaining_seconds: float | None,
                  gitee: GiteeOptions | None, cache_file: str | os.PathLike[str] | None,
                  name: str | None, field: str | None, timeout: float | None,
                  refresh_wait: float | None, logger: Logger | None,
                  share_key: str | Sequence[str] | None = None) -> Options:
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise config_error("config 必须是 dict (例如种子脚本里的 CONFIG)")

    given_name = name if name is not None else _pick(config, "TOKENDIST_TOKEN_NAME")
    name_ = DEFAULT_NAME if given_name is None else given_name
    if not isinstance(name_, str) or not NAME_RE.fullmatch(name_):
        raise config_error(f"token 名称 '{str(name_)[:80]}' 无效: 应为 {NAME_RULE}")

    if api_url is not None:
        urls = _urls(api_url, False)
    else:
        enabled = _pick(config, "TENCENT_CLOUD_ENABLED")
        on = True if enabled is None else _as_bool(enabled, "TENCENT_CLOUD_ENABLED")
        urls = _urls(_pick(config, "TOKENDIST_URLS", "TENCENT_CLOUD_API_URL"), True) if on else []
    endpoints = tuple(endpoint_urls(u, name_, name_given=given_name is not None) for u in urls)

    key = read_key if read_key is not None else _pick(config, "TOKENDIST_READ_KEY")
    if key is not None:
        if not isinstance(key, str):
            raise config_error("read_key 必须是字符串")
        if "\r" in key or "\n" in key:
            raise config_error("read_key 含有换行符")

    fld = field if field is not None else _pick(config, "TOKENDIST_FIELD")
    fld = "access_token" if fld is None else fld
    if fld not in FIELDS:
        raise config_error(f"field 只能是 {' 或 '.join(FIELDS)}")

    mins = min_remaining_seconds if min_remaining_seconds is not None \
        else _pick(config, "TOKENDIST_MIN_REMAINING")
    tmo = timeout if timeout is not None else _pick(config, "TOKENDIST_HTTP_TIMEOUT")

    g: Gitee | None = None
    if gitee is not None:
        if not isinstance(gitee, Mapping):
            raise config_error("gitee 必须是 dict: {'owner', 'repo', 'path', ...}")
        g = _gitee(gitee)
    elif _pick(config, "GITEE_OWNER") is not None:
        share = _pick(config, "ENABLE_GITEE_TOKEN_SHARE")
        if share is None or _as_bool(share, "ENABLE_GITEE_TOKEN_SHARE"):
            g = _gitee({"owner": config.get("GITEE_OWNER"), "repo": config.get("GITEE_REPO"),
                        "path": _pick(config, "GITEE_FILE_PATH") or "token.json",
                        "branch": _pick(config, "GITEE_BRANCH"),
                        "access_token": _pick(config, "GITEE_ACCESS_TOKEN"),
                        "base_url": _pick(config, "GITEE_BASE_URL")})

    sk = share_key if share_key is not None else _pick(config, "TOKENDIST_SHARE_KEY")
    keys = parse_keys(sk) if sk is not None else ()

    cache = cache_file if cache_file is not None else _pick(config, "TOKENDIST_CACHE_FILE")
    if cache is not None:
        cache = os.path.abspath(os.path.expanduser(os.fspath(cache)))

    if not endpoints and g is None and cache is None:
        raise config_error("没有任何token来源: 请配置 api_url / TENCENT_CLOUD_API_URL "
                           "(且 TENCENT_CLOUD_ENABLED 不为 False)、gitee / GITEE_OWNER 或 cache_file")

    return Options(
        endpoints=endpoints,
        read_key=key or None,
        name=name_,
        field=fld,
        min_remaining_seconds=_min_remaining(mins),
        timeout=5.0 if tmo is None else _as_number(tmo, "timeout", positive=True),
        refresh_wait=5.0 if refresh_wait is None else _as_number(
            refresh_wait, "refresh_wait", positive=False),
        gitee=g,
        cache_file=cache,
        logger=logger if logger is not None else logging.getLogger("tokendist_client"),
        share_keys=keys,
    )
