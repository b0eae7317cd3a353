#!/usr/bin/env python3
"""Feishu Open Platform double: access tokens, IM messages, file resources, bot webhooks.

tokendist fetches Feishu's ``app_access_token`` and hands it out, the seed's
client lists a group chat's file messages and downloads them, and status
messages go to a chat or a custom-bot webhook.  This double speaks those parts
of https://open.feishu.cn/open-apis with the real paths, shapes and codes.

Tokens (``POST /open-apis/auth/v3/{app,tenant}_access_token/internal``): a
token lives ``ttl`` seconds (default 7200).  Asking again while the current
token has at least ``renew_window`` seconds left (default 1800, Feishu's "30
minutes") returns the same token with the seconds remaining in ``expire``;
inside the window a new token is minted and the old one stays valid until its
own expiry, so two tokens are valid at once, as on Feishu.  For internal apps
Feishu returns the same string as app and tenant token; ``same_tokens: false``
mints distinct ones and then only tenant tokens open the other endpoints.

Control keys, besides the common ones (see common.py):
  {"apps": {"cli_x": "secret"}}  replace the known apps (default: DEFAULT_APP_ID)
  {"ttl": S, "renew_window": S, "same_tokens": bool}
  {"invalidate": "all" | [tokens], "invalid_code": 99991663|99991664|99991668|99991671}
  {"chat": "oc_x", "files": [{"name", "data_b64"|"data", "create_time": ms}],
   "texts": ["hi" | {"text", "create_time"}], "sender": "user"|"app"}
        -> answers {"seeded": [{"message_id", "file_key", "name", "create_time"}]}
     a file's "content": {...} (or a string) replaces the message's
     {"file_key", "file_name"} as sent: a file message a client cannot read
  {"chats": ["oc_x", ...]}       create empty chats the bot is a member of
  {"hooks": {"hook_id": "secret" | null}}   webhook ids (default "test-hook", unsigned)
  {"ratelimit_limit": N}, {"range": bool}    429 header value; honour Range on downloads
Extra fault modes: "429" (``reset_after`` seconds, default 1) and "code"
(HTTP ``status``, default 200, with ``code``/``msg``).

Time: tokens expire and renew on the double's clock, ``now()`` (common.py).
A test that moves tokendist's clock (``TOKENDIST_TEST_CLOCK_FILE``, src/clock.h)
hands the double the same file, ``{"clock_file": PATH}``, so that both agree
on which token is current and when it expires: with ``ttl`` 7200 and
``renew_window`` 1800 as on Feishu, moving time 5,431 s ahead puts the next
fetch inside the window without sleeping (tests/e2e/test_refresh.py).
``advance``/``clock_offset`` still move the double alone (Feishu's clock
running ahead of ours).

Where the real protocol was unclear, this double assumes (and tests rely on):
missing Authorization -> 400 code 99991661; an unknown or foreign message or
file_key on download -> 400 code 234003; page_token is omitted when has_more is
false; start_time/end_time are inclusive whole seconds; downloads ignore Range
unless ``range`` is set; an unknown webhook id -> 200 code 19001.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import uuid
from urllib.parse import quote

from common import ControlError, DoubleServer, Response, json_response, main

DEFAULT_APP_ID = "cli_a1b2c3d4e5f6a7b8"
DEFAULT_APP_SECRET = "DoubleSecretNotForProduction0001"
DEFAULT_HOOK = "test-hook"
TOKEN_PATHS = {"/open-apis/auth/v3/app_access_token/internal": "app",
               "/open-apis/auth/v3/tenant_access_token/internal": "tenant"}
AUTH_ERRORS = {
    99991661: "Missing access token for authorization. Please make a request with token attached.",
    99991663: "Invalid access token for authorization. Please make a request with token attached.",
    99991664: "Invalid app access token. Please make a request with app_access_token attached.",
    # What the gateway answers (HTTP 400) for a token it cannot use at all,
    # observed for JWT-shaped ("eyJ...") tokens; the same words as 99991663.
    99991668: "Invalid access token for authorization. Please make a request with token attached.",
    99991671: "Invalid token format. Please check the access token.",
}
RESOURCE_RE = re.compile(r"/open-apis/im/v1/messages/([^/]+)/resources/([^/]+)")
ALNUM = string.ascii_letters + string.digits


def new_token():
    """``t-`` and 40 random alphanumerics: the shape of Feishu's opaque tokens."""
    return "t-" + "".join(secrets.choice(ALNUM) for _ in range(40))


def feishu_error(code, msg, status=200):
    return json_response({"code": code, "msg": msg}, status)


def webhook_sign(timestamp, secret):
    """Feishu's custom-bot signature: HMAC-SHA256 keyed by "ts\\nsecret" over nothing."""
    key = f"{timestamp}\n{secret}".encode("utf-8")
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def content_disposition(name):
    """``attachment`` with an ASCII fallback and RFC 5987 ``filename*`` when needed."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in name)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += "; filename*=UTF-8''" + quote(name, safe="")
    return header


class FeishuDouble(DoubleServer):
    """Feishu Open Platform double (tokens, im/v1 messages and resources, bot webhooks)."""

    name = "feishu"
    extra_faults = frozenset({"429", "code"})

    def reset_state(self):
        super().reset_state()
        self.apps = {DEFAULT_APP_ID: DEFAULT_APP_SECRET}
        self.ttl, self.renew_window, self.same_tokens = 7200, 1800, True
        self.tokens = {}           # token -> {"app_id", "kind", "expires_at"}
        self.current = {}          # app_id -> the newest token record
        self.invalid = {}          # token -> the code Feishu answers for it
        self.chats = {}            # chat_id -> [message]
        self.messages = {}         # message_id -> message (files keep bytes in "_data")
        self.hooks = {DEFAULT_HOOK: None}
        self.ratelimit_limit, self.range = 50, False
        self.token_fetches = 0     # token requests that reached the token logic
        self.tokens_minted = 0
        self.sent = []             # {"chat_id", "msg_type", "text", "content", "message_id"}
        self.hook_messages = []    # {"hook_id", "msg_type", "text", "content"}
        self.downloads = {}        # file_key -> download requests served
        self._last_ms = 0

    # -- Python-side conveniences for tests --------------------------------
    @property
    def sent_texts(self):
        return [m["text"] for m in self.sent]

    @property
    def hook_texts(self):
        return [m["text"] for m in self.hook_messages]

    def current_token(self, app_id=DEFAULT_APP_ID):
        """The newest tenant token of ``app_id`` (None before the first fetch)."""
        cur = self.current.get(app_id)
        return cur and cur["tenant_access_token"]

    def token_valid(self, token):
        info = self.tokens.get(token)
        return (token not in self.invalid and info is not None
                and self.now() < info["expires_at"])

    def state(self):
        now = self.now()
        return {**super().state(),
                "token_fetches": self.token_fetches, "tokens_minted": self.tokens_minted,
                "tokens": [{"token": t, "kind": i["kind"], "app_id": i["app_id"],
                            "expires_in": int(i["expires_at"] - now),
                            "valid": self.token_valid(t)} for t, i in self.tokens.items()],
                "sent": self.sent, "hook_messages": self.hook_messages,
                "downloads": self.downloads,
                "chats": {c: len(m) for c, m in self.chats.items()}}

    # -- control -----------------------------------------------------------
    def apply_control(self, cfg):
        if "apps" in cfg:
            self.apps = dict(cfg.pop("apps"))
        for key in ("ttl", "renew_window", "ratelimit_limit"):
            if key in cfg:
                setattr(self, key, int(cfg.pop(key)))
        for key in ("same_tokens", "range"):
            if key in cfg:
                setattr(self, key, bool(cfg.pop(key)))
        if "invalidate" in cfg:
            code = int(cfg.pop("invalid_code", 99991663))
            if code not in AUTH_ERRORS:
                raise ControlError(f"invalid_code must be one of {sorted(AUTH_ERRORS)}")
            which = cfg.pop("invalidate")
            for token in (list(self.tokens) if which == "all" else which):
                self.invalid[token] = code
        for chat_id in cfg.pop("chats", []):
            self.chats.setdefault(chat_id, [])
        if "hooks" in cfg:
            self.hooks.update(cfg.pop("hooks"))
        if "chat" in cfg:
            return {"seeded": self._seed(cfg)}
        return {}

    def _seed(self, cfg):
        chat_id = cfg.pop("chat")
        sender = cfg.pop("sender", "user")
        self.chats.setdefault(chat_id, [])
        seeded = []
        for f in cfg.pop("files", []):
            data = (base64.b64decode(f["data_b64"]) if "data_b64" in f
                    else f.get("data", "").encode("utf-8"))
            key = f"file_v2_{uuid.uuid4()}"
            content = f.get("content", {"file_key": key, "file_name": f["name"]})
            msg = self._add_message(chat_id, "file", content, sender, f.get("create_time"))
            msg["_data"], msg["_name"], msg["_key"] = data, f["name"], key
            seeded.append({"message_id": msg["message_id"], "file_key": key,
                           "name": f["name"], "create_time": msg["create_time"]})
        for t in cfg.pop("texts", []):
            t = {"text": t} if isinstance(t, str) else t
            msg = self._add_message(chat_id, "text", {"text": t["text"]}, sender,
                                    t.get("create_time"))
            seeded.append({"message_id": msg["message_id"], "text": t["text"],
                           "create_time": msg["create_time"]})
        return seeded

    def _add_message(self, chat_id, msg_type, content, sender, create_ms=None):
        if create_ms is None:   # distinct, increasing times keep listings deterministic
            create_ms = self._last_ms = max(int(self.now() * 1000), self._last_ms + 1)
        if sender == "app":
            who = {"id": DEFAULT_APP_ID, "id_type": "app_id", "sender_type": "app"}
        else:
            who = {"id": "ou_" + uuid.uuid4().hex, "id_type": "open_id", "sender_type": "user"}
        who["tenant_key"] = "736588c9260f175d"
        msg = {"message_id": "om_" + uuid.uuid4().hex, "root_id": "", "parent_id": "",
               "msg_type": msg_type, "create_time": str(int(create_ms)),
               "update_time": str(int(create_ms)), "deleted": False, "updated": False,
               "chat_id": chat_id, "sender": who,
               "body": {"content": content if isinstance(content, str) else
                        json.dumps(content, ensure_ascii=False, separators=(",", ":"))},
               "upper_message_id": ""}
        self.chats[chat_id].append(msg)
        self.messages[msg["message_id"]] = msg
        return msg

    # -- faults --------------------------------------------------------------
    def error_json(self, status):
        return {"code": 1500, "msg": "internal error"}

    def fault_response(self, fault, req):
        if fault["fail"] == "429":
            return json_response(
                {"code": 99991400, "msg": "request trigger frequency limit"}, 429,
                [("x-ogw-ratelimit-limit", str(fault.get("limit", self.ratelimit_limit))),
                 ("x-ogw-ratelimit-reset", str(fault.get("reset_after", 1)))])
        return feishu_error(int(fault.get("code", 1500)), fault.get("msg", "internal error"),
                            int(fault.get("status", 200)))

    # -- routing -------------------------------------------------------------
    def route(self, req):
        path = req.path
        if req.method == "POST" and path in TOKEN_PATHS:
            return self._token(req, TOKEN_PATHS[path])
        if req.method == "POST" and path.startswith("/open-apis/bot/v2/hook/"):
            return self._hook(req, path.rsplit("/", 1)[1])
        if path.startswith("/open-apis/"):
            with self.lock:
                denied = self._check_auth(req)
                if denied:
                    return denied
                if path == "/open-apis/im/v1/messages" and req.method == "POST":
                    return self._send_message(req)
                if path == "/open-apis/im/v1/messages" and req.method == "GET":
                    return self._list_messages(req)
                m = RESOURCE_RE.fullmatch(path)
                if m and req.method == "GET":
                    return self._download(req, m.group(1), m.group(2))
        return Response(404, "404 page not found", "text/plain; charset=utf-8")

    def _token(self, req, kind):
        body = req.json
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) and body.get(k) for k in ("app_id", "app_secret")):
            return feishu_error(10003, "invalid param")
        with self.lock:
            self.token_fetches += 1
            secret = self.apps.get(body["app_id"])
            if secret is None or not hmac.compare_digest(secret.encode(),
                                                         body["app_secret"].encode()):
                return feishu_error(10014, "app secret invalid")
            now = int(self.now())
            cur = self.current.get(body["app_id"])
            if cur is None or cur["expires_at"] - now < self.renew_window:
                cur = self._mint(body["app_id"], now)
            answer = {"code": 0, "msg": "ok", "expire": cur["expires_at"] - now,
                      "tenant_access_token": cur["tenant_access_token"]}
            if kind == "app":
                answer["app_access_token"] = cur["app_access_token"]
            return json_response(answer)

    def _mint(self, app_id, now):
        app_tok = new_token()
        tenant_tok = app_tok if self.same_tokens else new_token()
        cur = {"app_access_token": app_tok, "tenant_access_token": tenant_tok,
               "expires_at": now + self.ttl}
        for tok, kind in ((app_tok, "app"), (tenant_tok, "tenant")):
            kind = "both" if app_tok == tenant_tok else kind
            self.tokens[tok] = {"app_id": app_id, "kind": kind, "expires_at": cur["expires_at"]}
        self.current[app_id] = cur
        self.tokens_minted += 1
        return cur

    def _check_auth(self, req):
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            code = 99991661
        else:
            code = self.invalid.get(token)
            info = self.tokens.get(token)
            if code is None and (info is None or self.now() >= info["expires_at"]
                                 or info["kind"] == "app"):
                code = 99991663
        return feishu_error(code, AUTH_ERRORS[code], 400) if code else None

    def _send_message(self, req):
        body = req.json
        if req.query.get("receive_id_type") is None or not isinstance(body, dict) or \
                not all(isinstance(body.get(k), str)
                        for k in ("receive_id", "msg_type", "content")):
            return feishu_error(99992402, "field validation failed", 400)
        chat_id = body["receive_id"]
        if req.query["receive_id_type"] != "chat_id" or chat_id not in self.chats:
            return feishu_error(230002, "Bot/User can NOT be out of the chat.", 400)
        try:       # content is a JSON *string* holding an object
            content = json.loads(body["content"])
        except ValueError:
            content = None
        if not isinstance(content, dict) or (
                body["msg_type"] == "text" and not isinstance(content.get("text"), str)):
            return feishu_error(230001, "Your request contains an invalid request "
                                "parameter, ext=invalid message content", 400)
        msg = self._add_message(chat_id, body["msg_type"], content, "app")
        self.sent.append({"chat_id": chat_id, "msg_type": body["msg_type"],
                          "text": content.get("text"), "content": content,
                          "message_id": msg["message_id"]})
        return json_response({"code": 0, "msg": "success", "data": _public(msg)})

    def _list_messages(self, req):
        q = req.query
        try:
            if q.get("container_id_type") != "chat" or not q.get("container_id"):
                raise ValueError
            size = int(q.get("page_size", 20))
            start = int(q["start_time"]) if q.get("start_time") else None
            end = int(q["end_time"]) if q.get("end_time") else None
            offset = int(base64.urlsafe_b64decode(q["page_token"]).decode()[3:]) \
                if q.get("page_token") else 0
            sort = q.get("sort_type", "ByCreateTimeAsc")
            if not 1 <= size <= 50 or offset < 0 or \
                    sort not in ("ByCreateTimeAsc", "ByCreateTimeDesc"):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return feishu_error(99992402, "field validation failed", 400)
        chat = self.chats.get(q["container_id"])
        if chat is None:
            return feishu_error(230002, "Bot/User can NOT be out of the chat.", 400)
        items = [m for m in sorted(chat, key=lambda m: int(m["create_time"]),
                                   reverse=sort == "ByCreateTimeDesc")
                 if (start is None or int(m["create_time"]) >= start * 1000)
                 and (end is None or int(m["create_time"]) < (end + 1) * 1000)]
        page = items[offset:offset + size]
        data = {"has_more": offset + size < len(items), "items": [_public(m) for m in page]}
        if data["has_more"]:
            data["page_token"] = base64.urlsafe_b64encode(
                f"pt_{offset + size}".encode()).decode()
        return json_response({"code": 0, "msg": "success", "data": data})

    def _download(self, req, message_id, file_key):
        if req.query.get("type") not in ("file", "image", "media"):
            return feishu_error(234001, "Invalid request param.", 400)
        msg = self.messages.get(message_id)
        if msg is None or msg.get("_key") != file_key:
            return feishu_error(234003, "File not in msg.", 400)
        self.downloads[file_key] = self.downloads.get(file_key, 0) + 1
        data, headers = msg["_data"], [("Content-Disposition", content_disposition(msg["_name"]))]
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", req.headers.get("range", ""))
        if self.range and m and int(m.group(1)) < len(data):
            first = int(m.group(1))
            last = min(int(m.group(2) or len(data) - 1), len(data) - 1)
            headers.append(("Content-Range", f"bytes {first}-{last}/{len(data)}"))
            return Response(206, data[first:last + 1], "application/octet-stream", headers)
        return Response(200, data, "application/octet-stream", headers)

    def _hook(self, req, hook_id):
        body = req.json
        if not isinstance(body, dict):
            return json_response({"code": 9499, "msg": "Bad Request", "data": {}}, 400)
        with self.lock:
            if hook_id not in self.hooks:
                return feishu_error(19001, "param invalid: incoming webhook access token invalid")
            secret = self.hooks[hook_id]
            if secret is not None and not self._sign_ok(body, secret):
                return feishu_error(19021, "sign match fail or timestamp is not within one "
                                    "hour from current time")
            content = body.get("content")
            if not isinstance(body.get("msg_type"), str) or not isinstance(content, dict) or (
                    body["msg_type"] == "text" and not isinstance(content.get("text"), str)):
                return feishu_error(9499, "Bad Request")
            self.hook_messages.append({"hook_id": hook_id, "msg_type": body["msg_type"],
                                       "text": content.get("text"), "content": content})
        return json_response({"StatusCode": 0, "StatusMessage": "success", "code": 0,
                              "data": {}, "msg": "success"})

    def _sign_ok(self, body, secret):
        ts, sign = body.get("timestamp"), body.get("sign")
        try:
            fresh = abs(self.now() - int(ts)) <= 3600
        except (TypeError, ValueError):
            return False
        return fresh and isinstance(sign, str) and hmac.compare_digest(
            webhook_sign(ts, secret).encode(), sign.encode())


def _public(msg):
    """A message as Feishu serialises it (without the double's private fields)."""
    return {k: v for k, v in msg.items() if not k.startswith("_")}


if __name__ == "__main__":
    raise SystemExit(main(FeishuDouble))
