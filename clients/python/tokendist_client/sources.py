"""The three places a record comes from, and the cache file it goes to.

* the endpoints: ``GET`` the server (``/release/get-token`` or
  ``/v1/tokens/NAME``), with the read key;
* Gitee: ``GET`` the contents API for the file the refresher keeps there;
  base64 ``content``, ``[]`` or 404 for a missing file (both happen);
* the cache file this client wrote after its last good fetch: the record
  plus ``tokendist_name`` and ``tokendist_kind``, so that a client of
  another name sharing the path does not take it for its own (the rule of
  the C and Node clients; docs/protocol.md, "The client cache file").

Each loader returns the parsed JSON as it found it; judging it (fields,
freshness, the reported token) is the client's business, so that every
source is judged by the same rules.  Failures are TokendistError in the
seed's words.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

from .errors import LABEL, ErrorCode, SourceName, TokendistError
from .options import DEFAULT_NAME, Gitee, Options
from .record import NAME_RE
from .sealed import SealError, open_file
from .transport import Answer, exchange, redact_url

Seen = Callable[[Answer], None]


def wrong_path_why(url: str) -> str:
    """Why our server answered 404 ``Not found``: the URL's path is not one of its addresses."""
    try:
        path = urlsplit(url).path or "/"
    except ValueError:
        path = "/"
    return (f"路径不对: 服务端没有 {path} 这个地址 (HTTP 404 Not found)；tokendist 的地址以 /release/get-token 或 "
            "/v1/tokens/名称 结尾，也可以只写 http(s)://主机:端口")


def refuses_key(source: SourceName, answer: Answer) -> bool:
    """401, 403, or -- from our own server only -- the 429 it answers an
    address that failed too often (it carries WWW-Authenticate; a service's
    own rate limit, Gitee's included, does not count): the key is what to
    check in each case (the C client's rule, src/endpoint.c td_endpoint_refuses_key)."""
    return answer.status in (401, 403) or (source == "endpoint" and answer.status == 429 and answer.challenge)


def http_error(source: SourceName, url: str, answer: Answer, *,
               doing: str = "token获取失败") -> TokendistError:
    """The error for a non-200 answer: ``❌ 腾讯云函数 token获取失败: HTTP 500: Internal
    Server Error``, with the server's own ``error``/``message`` appended when it
    says more than the status line; the server's "Token not found or expired"
    on its own, as the seed printed it."""
    try:
        body = json.loads(answer.text)
    except ValueError:
        body = None
    detail = ""
    if isinstance(body, dict):
        for k in ("error", "message"):
            if isinstance(body.get(k), str) and body[k]:
                detail = body[k]
                break
    label, shown = LABEL[source], redact_url(url)
    if source == "endpoint" and answer.status == 404 and detail == "Token not found or expired":
        return TokendistError("ENOTFOUND_TOKEN", f"❌ {label} {doing}: {detail}",
                              source=source, url=shown, status=404)
    if source == "endpoint" and answer.status == 404 and detail == "Not found":
        # Our server's "no such path" is a wrong URL, not a missing token (the
        # C client's words, src/endpoint.c td_endpoint_wrong_path_why).
        return TokendistError("EHTTP", f"❌ {label} {doing}: {wrong_path_why(url)}",
                              source=source, url=shown, status=404)
    msg = f"HTTP {answer.status}: {answer.reason}"
    if detail and detail != answer.reason:
        msg += f" ({detail[:200]})"
    code: ErrorCode = "EAUTH" if refuses_key(source, answer) else "EHTTP"
    return TokendistError(code, f"❌ {label} {doing}: {msg}", source=source, url=shown,
                          status=answer.status)


def parse_json(source: SourceName, url: str | None, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise TokendistError("EINVALID", f"❌ {LABEL[source]} token获取失败: 响应不是JSON",
                             source=source, url=url and redact_url(url)) from None


def endpoint_headers(opts: Options, extra: dict[str, str] | None = None) -> dict[str, str]:
    h = {"Accept": "application/json", "User-Agent": "tokendist-client-python"}
    if extra:
        h.update(extra)
    if opts.read_key:
        h["Authorization"] = f"Bearer {opts.read_key}"
    return h


def from_endpoint(opts: Options, url: str, seen: Seen) -> Any:
    answer = exchange("endpoint", "GET", url, headers=endpoint_headers(opts), timeout=opts.timeout)
    seen(answer)
    if answer.status != 200:
        raise http_error("endpoint", url, answer)
    return parse_json("endpoint", url, answer.text)


def gitee_url(g: Gitee) -> str:
    query = {}
    if g.branch:
        query["ref"] = g.branch
    if g.access_token:
        query["access_token"] = g.access_token
    path = "/".join(quote(p, safe="") for p in (g.owner, g.repo)) + "/contents/" + \
        "/".join(quote(p, safe="") for p in g.path.split("/"))
    return f"{g.base_url}/repos/{path}" + (f"?{urlencode(query)}" if query else "")


def from_gitee(opts: Options, seen: Seen) -> Any:
    g = opts.gitee
    assert g is not None
    url = gitee_url(g)
    answer = exchange("gitee", "GET", url, headers={"Accept": "application/json"},
                      timeout=opts.timeout)
    seen(answer)
    shown = redact_url(url)
    missing = TokendistError("ENOTFOUND_TOKEN", f"❌ Gitee token获取失败: 文件不存在 ({g.path})",
                             source="gitee", url=shown, status=answer.status)
    if answer.status == 404:
        raise missing
    if answer.status != 200:
        raise http_error("gitee", url, answer)
    body = parse_json("gitee", url, answer.text)
    if isinstance(body, list):      # Gitee answers [] for a missing file (a listing for a folder)
        raise missing
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        raise TokendistError("EINVALID", "❌ Gitee token获取失败: 响应中没有文件内容 (content)",
                             source="gitee", url=shown, status=answer.status)
    try:
        data = base64.b64decode("".join(body["content"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise TokendistError("EINVALID", "❌ Gitee token获取失败: 文件内容不是有效的 base64",
                             source="gitee", url=shown, status=answer.status) from None
    # Sealed or plaintext, by the rule every client follows (sealed.py).
    try:
        return open_file(data, opts.share_keys, opts.name)
    except SealError as e:
        raise TokendistError(e.code, f"❌ Gitee token获取失败: {e.phrase}",
                             source="gitee", url=shown, status=answer.status) from None


#: The two members of the cache file naming what it holds, and the kinds.
CACHE_NAME, CACHE_KIND = "tokendist_name", "tokendist_kind"
KIND_TOKEN, KIND_TICKET = "token", "jsapi_ticket"
_KIND_LABEL = {KIND_TOKEN: "access token", KIND_TICKET: "jsapi_ticket"}


def _cache_refused(code: ErrorCode, why: str) -> TokendistError:
    return TokendistError(code, f"❌ 本地缓存 token获取失败: {why}", source="cache")


def open_cache(doc: Any, name: str, kind: str = KIND_TOKEN) -> dict[str, Any]:
    """The record in a parsed cache file, for a client of token ``name`` and
    ``kind`` (this client only knows ``"token"``; ``tokendist get --ticket``
    writes ``"jsapi_ticket"``), without the two members.  A file written for
    another name or kind holds no token for this client (ENOTFOUND_TOKEN); one
    without the members, from before them, counts as ``default``'s token."""
    if not isinstance(doc, dict):
        raise _cache_refused("EINVALID", "缓存文件不是JSON对象")
    has_n, has_k = CACHE_NAME in doc, CACHE_KIND in doc
    n, k = doc.get(CACHE_NAME), doc.get(CACHE_KIND)
    if (has_n and not (isinstance(n, str) and NAME_RE.fullmatch(n))) or \
            (has_k and not (isinstance(k, str) and k in _KIND_LABEL)):
        raise _cache_refused("EINVALID", f"缓存文件的 {CACHE_NAME} 或 {CACHE_KIND} 无效")
    written_name = str(n) if has_n else DEFAULT_NAME
    written_kind = str(k) if has_k else KIND_TOKEN
    if not has_n and not has_k and (written_name != name or written_kind != kind):
        raise _cache_refused(
            "ENOTFOUND_TOKEN", f"缓存文件没有标明属于哪个 token (旧格式)，只当作 token 'default' 的 access token，"
            f"不是 '{name}' 的 {_KIND_LABEL[kind]}: 请换一个缓存文件")
    if written_name != name:
        raise _cache_refused(
            "ENOTFOUND_TOKEN", f"缓存文件属于 token '{written_name}'，不是 '{name}': 每个 token 名称请用自己的缓存文件")
    if written_kind != kind:
        raise _cache_refused(
            "ENOTFOUND_TOKEN", f"缓存文件存的是 token '{written_name}' 的 {_KIND_LABEL[written_kind]}，"
            f"不是 {_KIND_LABEL[kind]}: access token 和 jsapi_ticket 请用不同的缓存文件")
    return {key: v for key, v in doc.items() if key not in (CACHE_NAME, CACHE_KIND)}


def from_cache(opts: Options) -> Any:
    path = opts.cache_file
    assert path is not None
    try:
        # utf-8-sig: a file an editor saved with a BOM reads as the same record
        with open(path, encoding="utf-8-sig") as f:
            text = f.read(1024 * 1024 + 1)
    except FileNotFoundError:
        raise TokendistError("ENOTFOUND_TOKEN", "❌ 本地缓存 token获取失败: 缓存文件不存在",
                             source="cache") from None
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or type(e).__name__
        raise TokendistError("ENOTFOUND_TOKEN", f"❌ 本地缓存 token获取失败: 无法读取缓存文件 ({why})",
                             source="cache") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise TokendistError("EINVALID", "❌ 本地缓存 token获取失败: 缓存文件不是JSON",
                             source="cache") from None
    return open_cache(doc, opts.name)


def write_cache(path: str, record: dict[str, Any], name: str) -> None:
    """Replace the cache file atomically: a temp file (mode 0600) in the same
    folder (created 0700), written, flushed to disk, renamed over the old one.
    A reader never sees half a record, and nobody else can read the token.
    The file names the token it holds (``open_cache``)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({**record, CACHE_NAME: name, CACHE_KIND: KIND_TOKEN}, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:                            # the rename itself survives a power loss
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
