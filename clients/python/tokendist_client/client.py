"""The client: a record in memory, the sources in order, invalid tokens.

A record is served from memory while it has more than
``min_remaining_seconds`` left by the server's clock (the offset learnt from
the last ``Date`` header).  Otherwise one thread fetches (single flight:
32 threads asking at once make one request and share its outcome, success
or failure; a failure is not kept) by trying the endpoints in order, then
Gitee, then the cache file, and taking the first record that is valid, fresh
enough and not the token last reported invalid.

After :meth:`TokendistClient.report_invalid` the reported token is refused
for ``refresh_wait`` seconds while the sources catch up (the next fetch
retries with a pause that doubles from 0.25 s up to 2 s); if nothing else
turns up it is served again with a warning.

Gitee is asked at most once a minute per client (it publishes no rate limit,
and one token repository serves many clients): within the minute its last
answer, a record or a failure, is judged again by the clock of now.  These
are the C library's rules (src/client.c).  A server that answers 409 (the platform still issues this very
token) ends the wait at once: there is no other token to wait for.

The behaviour is the Node client's (clients/node/index.cjs); names follow
Python's conventions.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar

from . import sources
from .errors import LABEL, SourceName, TokendistError
from .feishu import is_invalid_token_error
from .options import Options, need_of
from .record import expiry_of, fingerprint, holds_token, token_of, validate_record
from .transport import Answer, exchange, redact_url

T = TypeVar("T")
RecordSource = Literal["endpoint", "gitee", "cache", "memory"]

#: |Date header − local clock| below this is the header's 1 s precision plus latency: ignored.
SKEW_IGNORE_SECONDS = 2.0
#: The first pause while waiting for a token other than the reported one; it doubles up to 2 s.
WAIT_FIRST, WAIT_MAX = 0.25, 2.0
#: Gitee is asked at most this often (seconds) per client; meanwhile its last answer stands.
GITEE_INTERVAL = 60.0


@dataclass(frozen=True)
class RecordInfo:
    record: dict[str, Any]          # a copy: change it freely
    source: RecordSource            # where this call got it ("memory": no request)
    origin: SourceName              # where the record first came from
    url: str | None                 # the endpoint, when origin is "endpoint" (credentials redacted)
    remaining_seconds: int          # by the server's clock


@dataclass(frozen=True)
class ReportResult:
    reported: bool                  # an endpoint took the report (200, 202 or 409)
    status: int | None              # the last HTTP status seen
    refreshing: bool                # 202: a refresh runs; the next get waits for another token
    replaced: bool                  # 200: a different, usable record is now in memory
    url: str | None                 # the report URL used (credentials redacted)
    error: TokendistError | None = None


@dataclass(frozen=True)
class _Memory:
    record: dict[str, Any]
    origin: SourceName
    url: str | None


@dataclass(frozen=True)
class _Got:
    record: dict[str, Any]
    source: SourceName
    url: str | None


@dataclass(frozen=True)
class _Failure:
    err: TokendistError
    where: str
    candidate: _Got | None = None   # ESTALE: usable but for being the reported token


@dataclass(frozen=True)
class _Rejected:
    token: str
    until: float                    # time.monotonic() deadline of the wait


class TokendistClient:
    """Made by :func:`tokendist_client.create_client`; safe to share between threads."""

    def __init__(self, options: Options) -> None:
        self._o = options
        self._lock = threading.Lock()
        self._memory: _Memory | None = None
        self._offset = 0.0                  # server clock − local clock, seconds
        self._flight: Future[_Memory] | None = None
        self._rejected: _Rejected | None = None
        self._epoch = 0                     # bumped by every report
        self._reports: dict[str, Future[ReportResult]] = {}
        self._cache_key: tuple[str, Any] | None = None
        self._gitee_at: float | None = None        # time.monotonic() of the last Gitee request
        self._gitee_answer: Any = None              # its record, or the TokendistError it ended in

    def __repr__(self) -> str:
        return f"<TokendistClient name={self._o.name!r} field={self._o.field!r}>"

    # -- the public face ---------------------------------------------------
    def get_access_token(self) -> str:
        """The token of ``field`` (``access_token`` unless told otherwise)."""
        return token_of(self._current()[0].record, self._o.field)

    def get_record(self) -> dict[str, Any]:
        """A copy of the whole record (the seed's nine fields and any extras)."""
        return copy.deepcopy(self._current()[0].record)

    def get_record_info(self) -> RecordInfo:
        """The record, where it came from and how long it has left."""
        mem, source = self._current()
        return RecordInfo(copy.deepcopy(mem.record), source, mem.origin,
                          mem.url and redact_url(mem.url), int(self._remaining(mem.record) // 1))

    def _current(self) -> tuple[_Memory, RecordSource]:
        """The record to serve and where this call got it: from memory while it is
        fresh enough, else from the one fetch running for all threads."""
        with self._lock:
            mem = self._memory
            if mem is not None and self._remaining(mem.record) > need_of(self._o.min_remaining_seconds, mem.record):
                return mem, "memory"
            flight = self._flight
            lead = flight is None
            if flight is None:
                flight = self._flight = Future()
        if lead:
            try:
                flight.set_result(self._refresh())
            except BaseException as e:
                flight.set_exception(e)
            finally:
                with self._lock:
                    if self._flight is flight:
                        self._flight = None
        got = flight.result()
        return got, got.origin

    def clear(self) -> None:
        """Forget the record in memory: the next call fetches."""
        with self._lock:
            self._memory = None

    def report_invalid(self, token: str) -> ReportResult:
        """Feishu rejected ``token`` (99991663/99991664/99991671): drop it and tell
        the server.  Never raises for network or HTTP failures: they are in the
        result.  Threads reporting one token at once make one request."""
        if not isinstance(token, str) or token == "":
            raise TypeError("report_invalid(token): token 必须是非空字符串")
        with self._lock:
            flight = self._reports.get(token)
            lead = flight is None
            if flight is None:
                flight = self._reports[token] = Future()
        if lead:
            try:
                flight.set_result(self._report(token))
            except BaseException as e:
                flight.set_exception(e)
            finally:
                with self._lock:
                    self._reports.pop(token, None)
        return flight.result()

    def with_token(self, fn: Callable[[str], T]) -> T:
        """``fn(token)``; when its result or the exception it raises is an
        invalid-token answer (Feishu's, WeChat's, WeCom's or DingTalk's), report the token, get a fresh one and call ``fn``
        once more.  Without a different token the first outcome stands."""
        token = self.get_access_token()
        failed: Exception | None = None
        try:
            result = fn(token)
        except Exception as e:
            if not is_invalid_token_error(e):
                raise
            failed = e
        else:
            if not is_invalid_token_error(result):
                return result
        fresh = self._renewed(token)
        if fresh is not None:
            return fn(fresh)
        if failed is not None:
            raise failed
        return result

    def _renewed(self, token: str) -> str | None:
        """Report ``token``; a different token to try, or None."""
        self.report_invalid(token)
        try:
            fresh = self.get_access_token()
        except TokendistError:
            return None
        return None if fresh == token else fresh

    # -- clocks and bookkeeping ---------------------------------------------
    def _remaining(self, record: dict[str, Any]) -> float:
        """Seconds left for ``record`` by the server's clock (as last seen)."""
        return expiry_of(record, self._o.field) - (time.time() + self._offset)

    def _seen(self, answer: Answer) -> None:
        """Learn the server's clock from an answer's Date header."""
        if answer.server_time is None:
            return
        off = answer.server_time - time.time()
        nxt = 0.0 if abs(off) < SKEW_IGNORE_SECONDS else off
        with self._lock:
            changed = nxt != self._offset and (nxt != 0 or self._offset != 0)
            self._offset = nxt
        if changed:
            self._o.logger.debug(f"服务器时钟偏差: {round(nxt)} 秒")

    # -- fetching ------------------------------------------------------------
    def _refresh(self) -> _Memory:
        with self._lock:
            epoch, rejected = self._epoch, self._rejected
        if rejected is not None and time.monotonic() >= rejected.until:
            rejected = None                 # an old report: its wait is over
        stale: _Got | None = None           # usable, but only the reported token again
        pause = WAIT_FIRST
        while True:
            failures: list[_Failure] = []
            got = self._chain(rejected, failures)
            if got is not None:
                return self._accept(got, epoch)
            if stale is None:
                stale = next((f.candidate for f in failures if f.err.code == "ESTALE"), None)
            if rejected is None or stale is None:
                raise self._failure(failures)
            left = rejected.until - time.monotonic()
            if left <= 0:
                self._o.logger.warning(
                    f"⚠️ 等待 {self._o.refresh_wait:g} 秒后仍只拿到已报告无效的token "
                    f"{fingerprint(token_of(stale.record, self._o.field))}，暂时继续使用")
                return self._accept(stale, epoch, stale_ok=True)
            time.sleep(min(pause, left))
            pause = min(pause * 2, WAIT_MAX)
            with self._lock:                # a 409 meanwhile ends the wait (None)
                rejected = self._rejected

    def _accept(self, got: _Got, epoch: int, stale_ok: bool = False) -> _Memory:
        mem = _Memory(got.record, got.source, got.url)
        tok = token_of(got.record, self._o.field)
        with self._lock:
            # A report of this very token arrived while we were fetching: hand it
            # to the callers already waiting, but do not keep it.
            meanwhile = not stale_ok and epoch != self._epoch \
                and self._rejected is not None and self._rejected.token == tok
            if not meanwhile:
                self._memory = mem
                if epoch == self._epoch:
                    self._rejected = None
        left = int(self._remaining(got.record) // 1)
        self._o.logger.info(f"✅ 从{LABEL[got.source]}获取token成功 {fingerprint(tok)} (剩余 {left} 秒)")
        return mem

    def _failure(self, failures: list[_Failure]) -> TokendistError:
        if len(failures) == 1:
            return failures[0].err
        lines = [f"  - {f.err.message.removeprefix('❌ ')}" + (f" [{f.where}]" if f.where else "")
                 for f in failures]
        expired = bool(failures) and all(f.err.code == "EEXPIRED" for f in failures)
        head = ("❌ token获取失败: 所有来源的token均已过期或即将过期" if expired
                else "❌ token获取失败: 所有来源均失败")
        return TokendistError("EALLFAILED", "\n".join([head, *lines]),
                              errors=[f.err for f in failures],
                              reason="expired" if expired else "failed")

    def _chain(self, rejected: _Rejected | None, failures: list[_Failure]) -> _Got | None:
        """Endpoints → Gitee → cache file; the first record the client can use."""
        o = self._o

        def consider(source: SourceName, where: str, url: str | None,
                     load: Callable[[], Any]) -> _Got | None:
            try:
                record = load()
            except TokendistError as err:
                failures.append(_Failure(err, where))
                o.logger.warning(err.message)
                return None
            got = _Got(record, source, url)
            refused = self._judge(source, record, rejected, url)
            if refused is not None:
                failures.append(_Failure(refused, where, got if refused.code == "ESTALE" else None))
                o.logger.warning(refused.message)
                return None
            if source != "cache":
                self._write_cache(record)
            return got

        for ep in o.endpoints:
            got = consider("endpoint", redact_url(ep.url), ep.url,
                           functools.partial(sources.from_endpoint, o, ep.url, self._seen))
            if got is not None:
                return got
        if o.gitee is not None:
            got = consider("gitee", o.gitee.where(), None, self._from_gitee)
            if got is not None:
                return got
        if o.cache_file is not None:
            got = consider("cache", o.cache_file, None, lambda: sources.from_cache(o))
            if got is not None:
                return got
        return None

    def _from_gitee(self) -> Any:
        """Gitee's record, asked for unless it was asked less than GITEE_INTERVAL
        ago; then its last answer stands.  A failure counts as an answer too: a
        client that keeps failing must not turn into a stream of Gitee requests.
        Only the fetch holding the single flight calls this, so it needs no lock."""
        now = time.monotonic()
        if self._gitee_at is None or now - self._gitee_at >= GITEE_INTERVAL:
            self._gitee_at = now
            try:
                self._gitee_answer = sources.from_gitee(self._o, self._seen)
            except TokendistError as err:
                self._gitee_answer = err
        if isinstance(self._gitee_answer, TokendistError):
            raise self._gitee_answer.with_traceback(None)
        return self._gitee_answer

    def _judge(self, source: SourceName, record: Any, rejected: _Rejected | None,
               url: str | None) -> TokendistError | None:
        """Why ``record`` cannot be served (None when it can)."""
        o = self._o
        label = LABEL[source]
        shown = url and redact_url(url)
        problem = validate_record(record, o.field)
        if problem is not None:
            return TokendistError("EINVALID", f"❌ {label} token获取失败: token数据无效 ({problem})",
                                  source=source, url=shown)
        remaining = int(self._remaining(record) // 1)
        need = need_of(o.min_remaining_seconds, record)
        if remaining <= need:
            why = (f"token已过期 (已过期 {-remaining} 秒)" if remaining <= 0 else
                   f"token即将过期 (剩余 {remaining} 秒，要求至少 {need:g} 秒)")
            return TokendistError("EEXPIRED", f"❌ {label} token获取失败: {why}", source=source,
                                  url=shown, remaining_seconds=remaining)
        if rejected is not None and token_of(record, o.field) == rejected.token:
            return TokendistError(
                "ESTALE", f"❌ {label} token获取失败: 仍是已报告无效的token "
                f"{fingerprint(rejected.token)}，等待服务端刷新", source=source, url=shown)
        return None

    def _write_cache(self, record: dict[str, Any]) -> None:
        """Keep the record for the next run; a failure is a warning, never an error."""
        path = self._o.cache_file
        if path is None:
            return
        key = (token_of(record, self._o.field), record.get("generated_timestamp"))
        with self._lock:
            if self._cache_key == key:
                return
        try:
            sources.write_cache(path, record, self._o.name)
        except OSError as e:
            self._o.logger.warning(f"⚠️ 写入本地缓存失败: {e.strerror or type(e).__name__}")
            return
        with self._lock:
            self._cache_key = key

    # -- invalid tokens ----------------------------------------------------
    def _report(self, token: str) -> ReportResult:
        o = self._o
        with self._lock:
            if self._memory is not None and holds_token(self._memory.record, token):
                self._memory = None
            self._epoch += 1
            self._rejected = _Rejected(token, time.monotonic() + o.refresh_wait)
        o.logger.info(f"飞书判定token无效，已丢弃 {fingerprint(token)}")

        last_error: TokendistError | None = None
        last_status: int | None = None
        last_url: str | None = None
        for ep in o.endpoints:
            if ep.report_url is None:
                last_error = TokendistError(
                    "ECONFIG", f"❌ 腾讯云函数 无效token上报失败: 无法从 {redact_url(ep.url)} 推导上报地址",
                    source="endpoint", url=redact_url(ep.url))
                o.logger.warning(last_error.message)
                continue
            target = ep.report_url
            last_url = redact_url(target)
            body = json.dumps({"access_token": token}).encode("utf-8")
            try:
                answer = exchange("endpoint", "POST", target, body=body, timeout=o.timeout,
                                  headers=sources.endpoint_headers(
                                      o, {"Content-Type": "application/json"}))
            except TokendistError as err:
                last_error = _as_report_error(err)
                o.logger.warning(last_error.message)
                continue
            self._seen(answer)
            last_status = answer.status
            if answer.status == 409:
                # The platform still issues this token: there is no other to wait for.
                # Said neutrally: the server's message names the token's platform.
                with self._lock:
                    self._rejected = None
                msg = _message_of(answer.text)
                error = TokendistError(
                    "ESAME", f"❌ 腾讯云函数 无效token上报: 平台仍在发放此token {fingerprint(token)}，"
                    f"没有新的可换" + (f" ({msg})" if msg else ""), source="endpoint", url=last_url)
                o.logger.warning(error.message)
                return ReportResult(True, 409, False, False, last_url, error)
            if answer.status == 202:
                o.logger.info(f"已上报无效token {fingerprint(token)}，服务端正在刷新")
                return ReportResult(True, 202, True, False, last_url)
            if answer.status == 200:
                return self._replaced(token, ep.url, target, answer.text, last_url)
            last_error = sources.http_error("endpoint", target, answer, doing="无效token上报失败")
            o.logger.warning(last_error.message)
        return ReportResult(False, last_status, False, False, last_url, last_error)

    def _replaced(self, token: str, url: str, target: str, text: str,
                  shown: str) -> ReportResult:
        """A 200 answer to a report carries the server's current record: use it at
        once when neither of its tokens is the one reported."""
        o = self._o
        err: TokendistError | None
        try:
            record = sources.parse_json("endpoint", target, text)
        except TokendistError:
            record, err = None, TokendistError(
                "EINVALID", "❌ 腾讯云函数 无效token上报失败: 响应不是JSON", source="endpoint", url=shown)
        else:
            if isinstance(record, dict) and holds_token(record, token):
                err = TokendistError(
                    "EINVALID", f"❌ 腾讯云函数 无效token上报: 服务端仍返回已报告无效的token "
                    f"{fingerprint(token)}", source="endpoint", url=shown)
            else:
                err = self._judge("endpoint", record, _Rejected(token, 0.0), target)
        if err is not None:
            o.logger.warning(f"已上报无效token，但服务端返回的记录不可用: {err.message}")
            return ReportResult(True, 200, False, False, shown, err)
        self._write_cache(record)
        with self._lock:
            self._rejected = None
            self._memory = _Memory(record, "endpoint", url)
        o.logger.info(f"已上报无效token {fingerprint(token)}，服务端返回新token {fingerprint(token_of(record, o.field))}")
        return ReportResult(True, 200, False, True, shown)


def _message_of(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    msg = body.get("message") if isinstance(body, dict) else None
    return msg if isinstance(msg, str) else ""


def _as_report_error(err: TokendistError) -> TokendistError:
    return TokendistError(err.code, err.message.replace("token获取失败", "无效token上报失败"),
                          source=err.source, url=err.url, status=err.status)
