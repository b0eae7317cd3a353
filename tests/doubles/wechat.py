#!/usr/bin/env python3
"""WeChat (公众号 / 小程序) double: the stable access token, jsapi_ticket, and the
cheap calls that judge a token.

tokendist is the 中控服务器 WeChat's documentation asks for: one fetcher of the
``access_token`` that every other server reads.  It uses the *stable* token
API, whose normal mode never invalidates a token another fetcher holds.  This
double speaks those parts of https://api.weixin.qq.com with the real paths,
shapes and codes.  docs/providers.md holds the same facts in prose.

Sources (every detail below is taken from one of these; "assumed" marks what
none of them states):
[S1] getStableAccessToken, https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken
     (also .../miniprogram/dev/OpenApiDoc/mp-access-token/getStableAccessToken.html);
     the full text with its 其他说明 and error table is quoted in the public
     PHP SDK handsomegyr/wechat, lib/Weixin/Token/Server.php.
[S2] access_token 使用说明, https://developers.weixin.qq.com/doc/oplatform/developers/dev/AccessToken.html
[S3] getApiDomainIp / getCallbackIp,
     https://developers.weixin.qq.com/doc/service/api/base/api_getapidomainip and .../api_getcallbackip
[S4] getTicket, https://developers.weixin.qq.com/doc/service/api/invoice/auth/api_getticket.html
     (English: .../doc/service/en/api/webdev/jssdk/api_getticket.html) and the
     JS-SDK 附录1 https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/JS-SDK.html
[S5] WxJava (binarywang/WxJava): weixin-java-common/.../api/WxConsts.java
     ACCESS_TOKEN_ERROR_CODES = 40001, 40014, 42001; .../error/WxMpErrorMsgEnum.java;
     weixin-java-mp/.../api/impl/BaseWxMpServiceImpl.java (-1 is retried).
[S6] real answers quoted in developers.weixin.qq.com community threads, e.g.
     /community/develop/doc/000aecf711cf80b01e53be0e161400 (40164 errmsg),
     /community/personal/oCJUswyz7bF69lK12dPCBN1PnAK8/question (HTTP 200,
     ``Content-Type: application/json; encoding=utf-8``).

Stable token, ``POST /cgi-bin/stable_token`` with JSON
``{"grant_type": "client_credential", "appid", "secret", "force_refresh": false}``
answers ``{"access_token", "expires_in"}`` (no errcode on success) [S1]; every
error is HTTP 200 ``{"errcode": N, "errmsg": "... rid: x-y-z"}`` [S1][S6].
* Normal mode returns the current token while it has ``renew_window`` (300)
  seconds or more left; in its last 5 minutes a call mints a new token and
  the old one stays valid until its own expiry (新旧 access_token 5 分钟内都可用),
  so ``expires_in`` is never below 300 [S1][S2].
* Forced mode (``force_refresh: true``) mints a new token and invalidates the
  ones handed out before [S1].  It is limited to ``forced_daily_limit`` (20)
  calls a day, and a forced call within ``forced_interval`` (30) seconds of
  the last forced refresh "不会刷新": it answers like normal mode [S1].
* 10 000 calls a minute, ``daily_quota`` (500 000) a day per app [S1];
  over the day's quota: errcode 45009.
* Errors [S1]: 40002 invalid grant_type, 40013 invalid appid, 40125 invalid
  appsecret, 40164 caller IP not in the whitelist, 41002 appid missing,
  41004 appsecret missing, 43002 require POST method, 45009 daily quota,
  45011 minute quota, -1 system busy (retry [S5]).

Judging a token [S3][S5][S2]: ``GET /cgi-bin/get_api_domain_ip?access_token=``
and ``GET /cgi-bin/getcallbackip?access_token=`` answer ``{"ip_list": [...]}``
for a valid token; 41001 for none, 40001 for an unknown or replaced token
("invalid credential, access_token is invalid or not latest"), 42001 for an
expired one.

``GET /cgi-bin/ticket/getticket?access_token=&type=jsapi|wx_card`` answers
``{"errcode": 0, "errmsg": "ok", "ticket", "expires_in": 7200}`` [S4].  Whether
a second call returns the same ticket is not documented; ``ticket_mode``
chooses: "new" (default: every call mints a ticket valid ``ticket_ttl``, older
ones stay valid until their own expiry), "same" (the current ticket while
valid, ``expires_in`` counting down), "same_fixed" ("same" but ``expires_in``
always 7200, as one community report describes).

Control keys, besides the common ones (see common.py):
  {"apps": {"wx...": "secret"}}         replace the known apps (default DEFAULT_APPID)
  {"ttl": S, "renew_window": S, "ticket_ttl": S, "ticket_mode": M}
  {"forced_interval": S, "forced_daily_limit": N, "forced_limit_code": C,
   "forced_grace": S}                   forced-mode rules (see below)
  {"daily_quota": N}                    stable_token calls per app per day
  {"ip_denied": bool}                   stable_token answers 40164
  {"invalidate": "all" | [tokens], "invalid_code": 40001|40014|42001}
        the tokens fail every check from now on, but normal mode keeps handing
        the current one out (only forced mode replaces it)
  {"external_force": appid}             someone else forces a refresh: a new
        current token, the old ones invalid (not counted as a fetch)
Extra fault mode: "errcode" (HTTP ``status``, default 200, with ``code``/``msg``).

Assumed where the sources are silent (tests rely on these): the error a forced
call past the daily limit gets (``forced_limit_code``, default 45009); every
forced call counts toward the daily 20, refreshed or not; the day is the
Beijing calendar day; a replaced token is invalid at once (``forced_grace``
0; [S1]'s 泄漏 advice "以间隔30s发起两次调用" hints that one forced call may
leave the old token valid a while, which ``forced_grace: 300`` models); the
order of checks (grant_type, appid, secret, IP, quota); a body that is not a
JSON object gets 47001; an unknown ticket type gets 40097.
"""

import hmac
import secrets
import string

from common import ControlError, DoubleServer, Response, json_response, main

DEFAULT_APPID = "wx8a1b2c3d4e5f6a7b"
DEFAULT_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
WX_JSON = "application/json; encoding=utf-8"   # WeChat's own spelling [S6]
TOKEN_CHARS = string.ascii_letters + string.digits + "_-"
INVALID_CODES = {40001: "invalid credential, access_token is invalid or not latest",
                 40014: "invalid access_token",
                 42001: "access_token expired"}
TICKET_MODES = ("new", "same", "same_fixed")
IP_LIST = ["101.89.47.18", "101.91.34.103"]    # the example in [S3]


def rid():
    """The request id WeChat appends to every errmsg, e.g. ``68231586-663e56da-1e04e5eb``."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def wx_answer(obj):
    body = json_response(obj).body
    return Response(200, body, WX_JSON)


def wx_error(code, msg):
    return wx_answer({"errcode": code, "errmsg": f"{msg} rid: {rid()}"})


def new_token(serial):
    """``<n>_`` and 136 characters, the shape of WeChat's tokens (at most 512)."""
    return f"{serial}_" + "".join(secrets.choice(TOKEN_CHARS) for _ in range(136))


def new_ticket():
    return "".join(secrets.choice(TOKEN_CHARS) for _ in range(86))


class WeChatDouble(DoubleServer):
    """WeChat double (stable_token, getticket, get_api_domain_ip/getcallbackip)."""

    name = "wechat"
    extra_faults = frozenset({"errcode"})

    def reset_state(self):
        super().reset_state()
        self.apps = {DEFAULT_APPID: DEFAULT_SECRET}
        self.ttl, self.renew_window = 7200, 300
        self.forced_interval, self.forced_daily_limit = 30, 20
        self.forced_limit_code, self.forced_grace = 45009, 0
        self.daily_quota, self.ip_denied = 500000, False
        self.ticket_ttl, self.ticket_mode = 7200, "new"
        self.tokens = {}           # token -> {"appid", "expires_at", "revoked_at", "code"}
        self.current = {}          # appid -> newest token
        self.forced = {}           # appid -> {"day", "count", "last"}
        self.calls = {}            # appid -> {"day", "count"} (stable_token calls)
        self.tickets = {}          # ticket -> {"appid", "type", "expires_at"}
        self.current_ticket = {}   # (appid, type) -> newest ticket
        self.token_fetches = 0     # stable_token requests that named an appid
        self.fetches_by_app = {}   # appid -> those requests
        self.forced_by_app = {}    # appid -> forced requests among them
        self.tokens_minted = 0
        self.ticket_fetches = {}   # appid -> getticket requests with a valid token
        self._serial = 60

    # -- Python-side conveniences for tests --------------------------------
    def fetches(self, appid=DEFAULT_APPID):
        return self.fetches_by_app.get(appid, 0)

    def forced_fetches(self, appid=DEFAULT_APPID):
        return self.forced_by_app.get(appid, 0)

    def current_token(self, appid=DEFAULT_APPID):
        return self.current.get(appid)

    def token_problem(self, token):
        """The (errcode, errmsg) a WeChat API answers for ``token``, or None if valid."""
        if not token:
            return 41001, "access_token missing"
        info = self.tokens.get(token)
        if info is None:
            return 40001, INVALID_CODES[40001]
        now = self.now()
        if info["revoked_at"] is not None and now >= info["revoked_at"]:
            return info["code"], INVALID_CODES[info["code"]]
        if now >= info["expires_at"]:
            return 42001, INVALID_CODES[42001]
        return None

    def token_valid(self, token):
        return self.token_problem(token) is None

    def ticket_valid(self, ticket):
        info = self.tickets.get(ticket)
        return info is not None and self.now() < info["expires_at"]

    def state(self):
        now = self.now()
        return {**super().state(),
                "token_fetches": self.token_fetches, "fetches_by_app": self.fetches_by_app,
                "forced_by_app": self.forced_by_app, "tokens_minted": self.tokens_minted,
                "ticket_fetches": self.ticket_fetches,
                "forced_today": {a: f["count"] for a, f in self.forced.items()
                                 if f["day"] == self._day()},
                "tokens": [{"token": t, "appid": i["appid"],
                            "expires_in": int(i["expires_at"] - now),
                            "valid": self.token_valid(t)} for t, i in self.tokens.items()],
                "tickets": [{"ticket": t, "appid": i["appid"], "type": i["type"],
                             "expires_in": int(i["expires_at"] - now)}
                            for t, i in self.tickets.items()]}

    # -- control -----------------------------------------------------------
    def apply_control(self, cfg):
        if "apps" in cfg:
            self.apps = dict(cfg.pop("apps"))
        for key in ("ttl", "renew_window", "ticket_ttl", "forced_interval",
                    "forced_daily_limit", "forced_limit_code", "forced_grace", "daily_quota"):
            if key in cfg:
                setattr(self, key, int(cfg.pop(key)))
        if "ip_denied" in cfg:
            self.ip_denied = bool(cfg.pop("ip_denied"))
        if "ticket_mode" in cfg:
            mode = cfg.pop("ticket_mode")
            if mode not in TICKET_MODES:
                raise ControlError(f"ticket_mode must be one of {TICKET_MODES}")
            self.ticket_mode = mode
        if "invalidate" in cfg:
            code = int(cfg.pop("invalid_code", 40001))
            if code not in INVALID_CODES:
                raise ControlError(f"invalid_code must be one of {sorted(INVALID_CODES)}")
            which = cfg.pop("invalidate")
            for token in (list(self.tokens) if which == "all" else which):
                if token in self.tokens:
                    self._revoke(token, self.now(), code)
        if "external_force" in cfg:
            appid = cfg.pop("external_force")
            if appid not in self.apps:
                raise ControlError(f"unknown appid {appid!r}")
            self._force(appid, self.now())
        return {}

    # -- faults --------------------------------------------------------------
    def error_json(self, status):
        return {"errcode": -1, "errmsg": f"system error rid: {rid()}"}

    def fault_response(self, fault, req):
        resp = wx_error(int(fault.get("code", -1)), fault.get("msg", "system error"))
        resp.status = int(fault.get("status", 200))
        return resp

    # -- routing -------------------------------------------------------------
    def route(self, req):
        path = req.path
        if path == "/cgi-bin/stable_token":
            if req.method != "POST":
                return wx_error(43002, "require POST method")
            return self._stable_token(req)
        if req.method == "GET" and path in ("/cgi-bin/get_api_domain_ip",
                                            "/cgi-bin/getcallbackip"):
            with self.lock:
                problem = self.token_problem(req.query.get("access_token"))
            return wx_error(*problem) if problem else wx_answer({"ip_list": IP_LIST})
        if req.method == "GET" and path == "/cgi-bin/ticket/getticket":
            return self._getticket(req)
        return Response(404, "404 page not found", "text/plain; charset=utf-8")

    def _day(self):
        return int((self.now() + 8 * 3600) // 86400)   # Beijing calendar day

    def _stable_token(self, req):
        body = req.json
        if not isinstance(body, dict):
            return wx_error(47001, "data format error")
        if body.get("grant_type") != "client_credential":
            return wx_error(40002, "invalid grant_type")
        appid, secret = body.get("appid"), body.get("secret")
        if not isinstance(appid, str) or not appid:
            return wx_error(41002, "appid missing")
        with self.lock:
            self.token_fetches += 1
            self.fetches_by_app[appid] = self.fetches_by_app.get(appid, 0) + 1
            force = body.get("force_refresh") is True
            if force:
                self.forced_by_app[appid] = self.forced_by_app.get(appid, 0) + 1
            if not isinstance(secret, str) or not secret:
                return wx_error(41004, "appsecret missing")
            known = self.apps.get(appid)
            if known is None:
                return wx_error(40013, "invalid appid")
            if not hmac.compare_digest(known.encode(), secret.encode()):
                return wx_error(40125, "invalid appsecret")
            if self.ip_denied:
                return wx_error(40164, "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, "
                                       "not in whitelist")
            day, now = self._day(), int(self.now())
            calls = self.calls.get(appid)
            if calls is None or calls["day"] != day:
                calls = self.calls[appid] = {"day": day, "count": 0}
            if calls["count"] >= self.daily_quota:
                return wx_error(45009, "reach max api daily quota limit")
            calls["count"] += 1
            if force:
                f = self.forced.get(appid)
                if f is None or f["day"] != day:
                    f = self.forced[appid] = {"day": day, "count": 0,
                                              "last": f["last"] if f else None}
                if f["count"] >= self.forced_daily_limit:
                    return wx_error(self.forced_limit_code, "reach max api daily quota limit")
                f["count"] += 1
                if f["last"] is None or now - f["last"] >= self.forced_interval:
                    f["last"] = now
                    token = self._force(appid, now)
                    return wx_answer({"access_token": token, "expires_in": self.ttl})
            token = self.current.get(appid)
            info = self.tokens.get(token)
            if info is None or info["expires_at"] - now < self.renew_window:
                token = self._mint(appid, now)
                info = self.tokens[token]
            return wx_answer({"access_token": token,
                              "expires_in": int(info["expires_at"] - now)})

    def _mint(self, appid, now):
        self._serial += 1
        token = new_token(self._serial)
        self.tokens[token] = {"appid": appid, "expires_at": int(now) + self.ttl,
                              "revoked_at": None, "code": 40001}
        self.current[appid] = token
        self.tokens_minted += 1
        return token

    def _revoke(self, token, when, code=40001):
        info = self.tokens[token]
        if info["revoked_at"] is None or info["revoked_at"] > when:
            info["revoked_at"], info["code"] = when, code

    def _force(self, appid, now):
        for token, info in self.tokens.items():
            if info["appid"] == appid:
                self._revoke(token, now + self.forced_grace)
        return self._mint(appid, now)

    def _getticket(self, req):
        with self.lock:
            token = req.query.get("access_token")
            problem = self.token_problem(token)
            if problem:
                return wx_error(*problem)
            kind = req.query.get("type")
            if kind not in ("jsapi", "wx_card"):
                return wx_error(40097, "invalid args")
            appid = self.tokens[token]["appid"]
            self.ticket_fetches[appid] = self.ticket_fetches.get(appid, 0) + 1
            now = int(self.now())
            ticket = self.current_ticket.get((appid, kind))
            info = self.tickets.get(ticket)
            if self.ticket_mode == "new" or info is None or now >= info["expires_at"]:
                ticket = new_ticket()
                info = self.tickets[ticket] = {"appid": appid, "type": kind,
                                               "expires_at": int(now) + self.ticket_ttl}
                self.current_ticket[(appid, kind)] = ticket
            left = self.ticket_ttl if self.ticket_mode != "same" else int(info["expires_at"] - now)
            return wx_answer({"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": left})


if __name__ == "__main__":
    raise SystemExit(main(WeChatDouble))
