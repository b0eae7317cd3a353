"""The sealed Gitee copy: a record the refresher encrypted and authenticated
with the share key (AES-256-GCM), in a versioned envelope::

    {"v": 1, "alg": "A256GCM", "kid": "…", "name": "default",
     "generated_timestamp": 1700000000, "nonce": "…", "ct": "…"}

The rules are docs/protocol.md's ("The sealed Gitee copy") and
tests/vectors/sealed-v1.json pins them down; the C library and the Node
client follow the same ones, with the same Chinese messages.

AES-GCM is not in the standard library: it comes from the ``cryptography``
package, an optional dependency needed only with a share key
(``pip install 'tokendist-client[sealed]'``; Debian: python3-cryptography).
It is imported only here and only when a key is set, so a client without
one stays standard-library only -- and imported by name (importlib), typed
by the Protocol below, so that a type checker of a program using this
package passes whether or not that program's environment has it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

from .errors import config_error
from .record import NAME_RE, is_number

KEYS_MAX = 8
KEY_RULE = "应为 32 字节随机数的 base64 (44 个字符，标准字母表，以 = 结尾)，请用 tokendist keygen 生成"
_PLAIN_MAX = 64 * 1024
_TS_MAX = 2**53 - 1


@dataclass(frozen=True)
class ShareKey:
    kid: str                                # first 8 bytes of SHA-256 of the key, hex
    key: bytes = field(repr=False)


class SealError(Exception):
    """Why a Gitee file was refused: ``code`` and a phrase for
    "❌ Gitee token获取失败: <phrase>"."""

    def __init__(self, code: Literal["ESHAREKEY", "EINVALID"], phrase: str) -> None:
        super().__init__(phrase)
        self.code: Literal["ESHAREKEY", "EINVALID"] = code
        self.phrase = phrase


def b64decode_strict(text: object) -> bytes | None:
    """Standard base64 with padding, and only the one spelling of the bytes:
    the text must be exactly what encoding them gives (no blanks, no URL-safe
    letters, no missing padding, no stray low bits).  None when it is not."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def kid_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def parse_keys(value: str | Sequence[str]) -> tuple[ShareKey, ...]:
    """The keys of ``share_key`` / ``TOKENDIST_SHARE_KEY``: one string,
    comma-separated, or a list of them; blanks around each ignored.  A bad one
    is an ECONFIG error naming its place, never showing it."""
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(i, str) for i in items):
        raise config_error("share_key 必须是字符串或字符串列表")
    texts = [t.strip(" \t") for i in items for t in i.split(",")]
    keys: list[ShareKey] = []
    for text in (t for t in texts if t):
        raw = b64decode_strict(text)
        if raw is None or len(raw) != 32:
            raise config_error(f"share_key / TOKENDIST_SHARE_KEY 的第 {len(keys) + 1} 个密钥无效: {KEY_RULE}")
        if len(keys) == KEYS_MAX:
            raise config_error(f"share_key / TOKENDIST_SHARE_KEY 最多 {KEYS_MAX} 个密钥")
        keys.append(ShareKey(kid_of(raw), raw))
    if keys:
        require_cipher()
    return tuple(keys)


class _AEAD(Protocol):
    """What is used of ``cryptography``'s AESGCM."""

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def _cipher(key: bytes) -> tuple[_AEAD, type[Exception]]:
    """AES-256-GCM with ``key``, and the exception a failed tag raises."""
    try:
        aead = importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")
        exceptions = importlib.import_module("cryptography.exceptions")
    except ImportError:
        raise config_error("share_key 需要 cryptography 包: pip install 'tokendist-client[sealed]' "
                           "(或 pip install cryptography；Debian: apt install python3-cryptography)") from None
    cipher: _AEAD = aead.AESGCM(key)
    invalid: type[Exception] = exceptions.InvalidTag
    return cipher, invalid


def require_cipher() -> None:
    """ECONFIG when the ``cryptography`` package cannot be imported."""
    _cipher(bytes(32))


def aad(kid: str, name: str, generated: int) -> bytes:
    """The associated data: every clear field, one per line."""
    return f"tokendist-sealed\n1\nA256GCM\n{kid}\n{name}\n{generated}".encode("ascii")


def is_envelope(doc: object) -> bool:
    return isinstance(doc, dict) and "v" in doc and "access_token" not in doc


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _open_envelope(keys: Sequence[ShareKey], name: str, env: dict[str, Any]) -> Any:
    v, alg = env.get("v"), env.get("alg")
    if v != 1 or not _int(v):
        raise SealError("EINVALID", f"加密记录的格式版本 v={v} 不受支持 (此版本只认识 v=1)，请升级客户端"
                        if _int(v) else "加密记录的字段 v 无效 (应为 1)")
    if alg != "A256GCM":
        shown = str(alg)[:40] if isinstance(alg, str) else "(无)"
        raise SealError("EINVALID", f"加密记录的算法 {shown} 不受支持 (只支持 A256GCM)")
    kid, ename, gen = env.get("kid"), env.get("name"), env.get("generated_timestamp")
    nonce64, ct64 = env.get("nonce"), env.get("ct")
    if not (isinstance(kid, str) and len(kid) == 16 and all(c in "0123456789abcdef" for c in kid)):
        raise SealError("EINVALID", "加密记录的字段 kid 无效")
    if not (isinstance(ename, str) and NAME_RE.fullmatch(ename)):
        raise SealError("EINVALID", "加密记录的字段 name 无效")
    if not (isinstance(gen, int) and not isinstance(gen, bool) and 0 <= gen <= _TS_MAX):
        raise SealError("EINVALID", "加密记录的字段 generated_timestamp 无效")
    if not (isinstance(nonce64, str) and len(nonce64) == 16):
        raise SealError("EINVALID", "加密记录的字段 nonce 无效")
    if not (isinstance(ct64, str) and len(ct64) <= (_PLAIN_MAX + 16 + 2) // 3 * 4):
        raise SealError("EINVALID", "加密记录的字段 ct 无效")
    if ename != name:
        raise SealError("EINVALID", f"加密记录属于 token '{ename}'，不是 '{name}'")
    if not keys:
        raise SealError("ESHAREKEY", f"记录已加密 (kid {kid})，但没有设置共享密钥: "
                        "请设置 TOKENDIST_SHARE_KEY (与刷新器的相同)")
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        raise SealError("ESHAREKEY", f"记录是用另一把共享密钥加密的 (kid {kid})，已设置的密钥是 kid "
                        f"{', '.join(k.kid for k in keys)}: 请检查 TOKENDIST_SHARE_KEY")
    nonce = b64decode_strict(nonce64)
    if nonce is None or len(nonce) != 12:
        raise SealError("EINVALID", "加密记录的字段 nonce 无效 (应为 12 字节的 base64)")
    ct = b64decode_strict(ct64)
    if ct is None or len(ct) < 16:
        raise SealError("EINVALID", "加密记录的字段 ct 无效 (应为密文和 16 字节标签的 base64)")

    cipher, invalid_tag = _cipher(key.key)
    try:
        plain = cipher.decrypt(nonce, ct, aad(kid, ename, gen))
    except invalid_tag:
        raise SealError("EINVALID", f"加密记录未通过校验 (kid {kid}): 内容被改动过或已损坏") from None
    try:
        record = json.loads(plain.decode("utf-8"))
    except ValueError:
        record = None
    inner = record.get("generated_timestamp") if isinstance(record, dict) else None
    if not (is_number(inner) and inner == gen):
        raise SealError("EINVALID", "加密记录的 generated_timestamp 与其中的记录不一致")
    return record


def open_file(data: bytes, keys: Sequence[ShareKey], name: str) -> Any:
    """The record (parsed JSON) inside a Gitee file's bytes, by the one rule of
    every client: an envelope is opened with the key its kid names, for this
    token name; a plaintext record is taken as is without a key, and refused
    with one (anyone with write access to the repository could have put it
    there).  Raises SealError."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except ValueError:
        raise SealError("EINVALID", "文件内容不是JSON") from None
    if is_envelope(doc):
        return _open_envelope(keys, name, doc)
    if keys:
        raise SealError("ESHAREKEY", "记录未加密，但设置了共享密钥 (TOKENDIST_SHARE_KEY): 不接受未加密的记录 "
                        "(刷新器也要设置同一密钥)")
    return doc
