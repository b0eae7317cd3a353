#!/usr/bin/env python3
"""WeCom (企业微信) double: gettoken, the enterprise and app jsapi tickets, and a
cheap call that judges a token.

tokendist fetches one ``access_token`` per (corpid, app secret) and hands it
out; this double speaks those parts of https://qyapi.weixin.qq.com with the
real paths, shapes and codes.  docs/providers.md holds the same facts in prose.

Sources ("assumed" marks what none of them states):
[S1] 获取access_token, https://developer.work.weixin.qq.com/document/path/91039
     (version of 2024/03/26), and its older text at
     https://work.weixin.qq.com/api/doc/90000/90135/91039 (© 2020).
[S2] 全局错误码, https://developer.work.weixin.qq.com/document/path/90455
[S3] JS-SDK 签名算法 (获取企业/应用 jsapi_ticket),
     https://developer.work.weixin.qq.com/document/path/96909 (2024/11/14);
     formerly .../document/path/90506.
[S4] WxJava (binarywang/WxJava): weixin-java-cp/.../constant/WxCpApiPathConsts.java
     (GET_TOKEN, GET_JSAPI_TICKET, GET_AGENT_CONFIG_TICKET, GET_API_DOMAIN_IP),
     weixin-java-common/.../error/WxCpErrorMsgEnum.java (40001, 40013, 40014,
     40091, 41001, 41002, 41004, 42001, 45009, 60020, -1).
[S5] real errmsg texts, e.g. https://blog.csdn.net/sgx1825192/article/details/135520290
     ("access_token expired, hint: [...], from ip: ..., more info at
     https://open.work.weixin.qq.com/devtool/query?e=42001") and
     https://blog.csdn.net/MacwinWin/article/details/122542421 (40001).

``GET /cgi-bin/gettoken?corpid=&corpsecret=`` answers ``{"errcode": 0,
"errmsg": "ok", "access_token", "expires_in": 7200}`` [S1]; errors are HTTP 200
``{"errcode", "errmsg"}`` [S1][S2].  Each app has its own secret and its own
token [S1].  Repeated fetches return the same token while it is valid and a
new one only after it expired ("有效期内重复获取返回相同结果，过期后获取会返回新的
access_token", the 2020 text of [S1]; the 2024 text dropped that sentence).
WeCom may invalidate a token early ("企业微信可能会出于运营需要，提前使access_token失效")
[S1]: after ``invalidate`` the token fails every check and gettoken mints a new
one.  There is no forced mode.

Whether ``expires_in`` counts down on a repeated fetch is not documented:
``expires_in_mode`` "remaining" (default) or "fixed" (always ``ttl``, a
literal reading of "返回相同结果").

Tickets [S3][S4]: ``GET /cgi-bin/get_jsapi_ticket?access_token=`` (enterprise,
for wx.config) and ``GET /cgi-bin/ticket/get?access_token=&type=agent_config``
(app, for wx.agentConfig) answer ``{"errcode": 0, "errmsg": "ok", "ticket",
"expires_in": 7200}``.  At most 400 fetches an hour per corp and 100 per app
[S3]; over that: 45009 (assumed code).  ``ticket_mode`` as in wechat.py,
default "same" (assumed: like the token).

Judging a token [S4][S2]: ``GET /cgi-bin/get_api_domain_ip?access_token=``
answers ``{"ip_list": [...], "errcode": 0, "errmsg": "ok"}``; 41001 for no
token, 40014 for an unknown or invalidated one, 42001 for an expired one.

gettoken errors [S2][S4]: 41002 corpid missing, 41004 corpsecret missing,
40013 invalid corpid, 40001 invalid secret, 45009 over the frequency limit,
-1 busy (retry at most 3 times [S2]).  60020 "not allow to access from your
ip" is WeCom's 企业可信IP check [S4]; ``ip_denied`` "api" applies it to every
call but gettoken (assumed: the documented case), "all" to gettoken too.

Control keys, besides the common ones (see common.py):
  {"apps": {"ww...": ["secret", ...]}}  replace the corps and their app secrets
  {"ttl": S, "ticket_ttl": S, "expires_in_mode": "remaining"|"fixed",
   "ticket_mode": "new"|"same"|"same_fixed"}
  {"ticket_hourly_corp": N, "ticket_hourly_app": N}
  {"invalidate": "all" | [tokens], "invalid_code": 40014|42001}   early invalidation
  {"ip_denied": false | "api" | "all"}
Extra fault mode: "errcode" (HTTP ``status``, default 200, with ``code``/``msg``).

Assumed as well: the order of checks (corpid, corpsecret, IP, secret);
``hint`` values are random; the ticket hour is a clock hour of the double's
clock; an app's ticket counter is keyed by its token's app.
"""

import hashlib
import hmac
import secrets
import string

from common import ControlError, DoubleServer, Response, json_response, main

DEFAULT_CORPID = "ww0a1b2c3d4e5f6a7b"
DEFAULT_SECRET = "Wc0mDoubleSecretNotForProduction0000000000a"
TOKEN_CHARS = string.ascii_letters + string.digits + "_-"
INVALID_CODES = {40014: "invalid access_token", 42001: "access_token expired"}
TICKET_MODES = ("new", "same", "same_fixed")
TICKET_PATHS = {"/cgi-bin/get_jsapi_ticket": "corp", "/cgi-bin/ticket/get": "agent_config"}
IP_LIST = ["182.254.11.176", "182.254.78.66"]


def app_key(corpid, secret):
    """How the double names an app in counters and state: never the secret itself."""
    return f"{corpid}/{hashlib.sha256(secret.encode('utf-8')).hexdigest()[:8]}"


def wecom_error(code, msg):
    hint = f"{secrets.randbelow(10**25):025d}"
    return json_response({"errcode": code, "errmsg":
                          f"{msg}, hint: [{hint}], from ip: 127.0.0.1, more info at "
                          f"https://open.work.weixin.qq.com/devtool/query?e={code}"})


def new_token():
    return "".join(secrets.choice(TOKEN_CHARS) for _ in range(214))


def new_ticket():
    return "".join(secrets.choice(TOKEN_CHARS) for _ in range(86))


class WeComDouble(DoubleServer):
    """WeCom double (gettoken, get_jsapi_ticket, ticket/get, get_api_domain_ip)."""

    name = "wecom"
    extra_faults = frozenset({"errcode"})

    def reset_state(self):
        super().reset_state()
        self.apps = {DEFAULT_CORPID: [DEFAULT_SECRET]}
        self.ttl, self.ticket_ttl = 7200, 7200
        self.expires_in_mode, self.ticket_mode = "remaining", "same"
        self.ticket_hourly_corp, self.ticket_hourly_app = 400, 100
        self.ip_denied = False
        self.tokens = {}           # token -> {"app", "corpid", "expires_at", "revoked"}
        self.current = {}          # app key -> newest token
        self.tickets = {}          # ticket -> {"app", "kind", "expires_at"}
        self.current_ticket = {}   # (app key, kind) -> newest ticket
        self.ticket_hours = {}     # ("corp", corpid) | ("app", key) -> {"hour", "count"}
        self.token_fetches = 0     # gettoken requests that named a corpid
        self.fetches_by_app = {}   # app key (or corpid alone when the secret is wrong)
        self.tokens_minted = 0
        self.ticket_fetches = {}   # app key -> ticket requests with a valid token

    # -- Python-side conveniences for tests --------------------------------
    def fetches(self, corpid=DEFAULT_CORPID, secret=DEFAULT_SECRET):
        return self.fetches_by_app.get(app_key(corpid, secret), 0)

    def current_token(self, corpid=DEFAULT_CORPID, secret=DEFAULT_SECRET):
        return self.current.get(app_key(corpid, secret))

    def token_problem(self, token):
        if not token:
            return 41001, "access_token missing"
        info = self.tokens.get(token)
        if info is None:
            return 40014, INVALID_CODES[40014]
        if info["revoked"]:
            return info["revoked"], INVALID_CODES[info["revoked"]]
        if self.now() >= info["expires_at"]:
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
                "tokens_minted": self.tokens_minted, "ticket_fetches": self.ticket_fetches,
                "tokens": [{"token": t, "app": i["app"], "expires_in": int(i["expires_at"] - now),
                            "valid": self.token_valid(t)} for t, i in self.tokens.items()],
                "tickets": [{"ticket": t, "app": i["app"], "kind": i["kind"],
                             "expires_in": int(i["expires_at"] - now)}
                            for t, i in self.tickets.items()]}

    # -- control -----------------------------------------------------------
    def apply_control(self, cfg):
        if "apps" in cfg:
            apps = dict(cfg.pop("apps"))
            self.apps = {c: [s] if isinstance(s, str) else list(s) for c, s in apps.items()}
        for key in ("ttl", "ticket_ttl", "ticket_hourly_corp", "ticket_hourly_app"):
            if key in cfg:
                setattr(self, key, int(cfg.pop(key)))
        for key, allowed in (("expires_in_mode", ("remaining", "fixed")),
                             ("ticket_mode", TICKET_MODES), ("ip_denied", (False, "api", "all"))):
            if key in cfg:
                value = cfg.pop(key)
                if value not in allowed:
                    raise ControlError(f"{key} must be one of {allowed}")
                setattr(self, key, value)
        if "invalidate" in cfg:
            code = int(cfg.pop("invalid_code", 40014))
            if code not in INVALID_CODES:
                raise ControlError(f"invalid_code must be one of {sorted(INVALID_CODES)}")
            which = cfg.pop("invalidate")
            for token in (list(self.tokens) if which == "all" else which):
                if token in self.tokens:
                    self.tokens[token]["revoked"] = code
        return {}

    # -- faults --------------------------------------------------------------
    def error_json(self, status):
        return {"errcode": -1, "errmsg": "system busy"}

    def fault_response(self, fault, req):
        resp = wecom_error(int(fault.get("code", -1)), fault.get("msg", "system busy"))
        resp.status = int(fault.get("status", 200))
        return resp

    # -- routing -------------------------------------------------------------
    def route(self, req):
        path = req.path
        if req.method == "GET" and path == "/cgi-bin/gettoken":
            return self._gettoken(req)
        if req.method == "GET" and path in TICKET_PATHS:
            return self._ticket(req, TICKET_PATHS[path])
        if req.method == "GET" and path == "/cgi-bin/get_api_domain_ip":
            with self.lock:
                problem = self._check(req)
            if problem:
                return problem
            return json_response({"ip_list": IP_LIST, "errcode": 0, "errmsg": "ok"})
        return Response(404, "404 page not found", "text/plain; charset=utf-8")

    def _check(self, req):
        """The error answer for a call that carries an access_token, or None."""
        if self.ip_denied:
            return wecom_error(60020, "not allow to access from your ip")
        problem = self.token_problem(req.query.get("access_token"))
        return wecom_error(*problem) if problem else None

    def _gettoken(self, req):
        corpid, secret = req.query.get("corpid"), req.query.get("corpsecret")
        if not corpid:
            return wecom_error(41002, "corpid missing")
        with self.lock:
            self.token_fetches += 1
            if not secret:
                return wecom_error(41004, "corpsecret missing")
            known = self.apps.get(corpid)
            key = app_key(corpid, secret)
            counted = key if known and any(
                hmac.compare_digest(s.encode(), secret.encode()) for s in known) else corpid
            self.fetches_by_app[counted] = self.fetches_by_app.get(counted, 0) + 1
            if known is None:
                return wecom_error(40013, "invalid corpid")
            if self.ip_denied == "all":
                return wecom_error(60020, "not allow to access from your ip")
            if counted != key:
                return wecom_error(40001, "invalid credential")
            now = int(self.now())
            token = self.current.get(key)
            info = self.tokens.get(token)
            if info is None or info["revoked"] or now >= info["expires_at"]:
                token = new_token()
                info = self.tokens[token] = {"app": key, "corpid": corpid,
                                             "expires_at": int(now) + self.ttl, "revoked": 0}
                self.current[key] = token
                self.tokens_minted += 1
            left = self.ttl if self.expires_in_mode == "fixed" else int(info["expires_at"] - now)
            return json_response({"errcode": 0, "errmsg": "ok", "access_token": token,
                                  "expires_in": left})

    def _over_hourly(self, scope, limit):
        hour = int(self.now() // 3600)
        slot = self.ticket_hours.get(scope)
        if slot is None or slot["hour"] != hour:
            slot = self.ticket_hours[scope] = {"hour": hour, "count": 0}
        if slot["count"] >= limit:
            return True
        slot["count"] += 1
        return False

    def _ticket(self, req, kind):
        with self.lock:
            problem = self._check(req)
            if problem:
                return problem
            if kind == "agent_config" and req.query.get("type") != "agent_config":
                return wecom_error(40004, "invalid type")   # assumed code and text
            info = self.tokens[req.query["access_token"]]
            app = info["app"]
            self.ticket_fetches[app] = self.ticket_fetches.get(app, 0) + 1
            if self._over_hourly(("corp", info["corpid"]), self.ticket_hourly_corp) or \
                    self._over_hourly(("app", app), self.ticket_hourly_app):
                return wecom_error(45009, "api freq out of limit")
            now = int(self.now())
            ticket = self.current_ticket.get((app, kind))
            tinfo = self.tickets.get(ticket)
            if self.ticket_mode == "new" or tinfo is None or now >= tinfo["expires_at"]:
                ticket = new_ticket()
                tinfo = self.tickets[ticket] = {"app": app, "kind": kind,
                                                "expires_at": int(now) + self.ticket_ttl}
                self.current_ticket[(app, kind)] = ticket
            left = self.ticket_ttl if self.ticket_mode != "same" else int(tinfo["expires_at"] - now)
            return json_response({"errcode": 0, "errmsg": "ok", "ticket": ticket,
                                  "expires_in": left})


if __name__ == "__main__":
    raise SystemExit(main(WeComDouble))
