#!/usr/bin/env python3
"""DingTalk (钉钉) double: the current internal-app access token and one API that
judges a token.

tokendist fetches an internal app's ``accessToken`` and hands it out; this
double speaks that part of https://api.dingtalk.com (the "new" server API,
v1.0) with the real path, shapes and codes.  docs/providers.md holds the same
facts in prose.

Sources ("assumed" marks what none of them states):
[S1] 获取企业内部应用的accessToken,
     https://open.dingtalk.com/document/orgapp/obtain-the-access_token-of-an-internal-app
     (also .../document/development/obtain-the-access-token-of-an-internal-app,
     updated 2026-01-23): request, answer, the 400 invalidClientIdOrSecret
     error and "有效期内重复获取会返回相同结果并自动续期，过期后获取会返回新的accessToken".
[S2] the official SDK aliyun/dingtalk-sdk,
     dingtalk/python/alibabacloud_dingtalk/oauth2_1_0/models.py:
     GetAccessTokenRequest {appKey, appSecret}, GetAccessTokenResponseBody
     {accessToken, expireIn}.
[S3] 附录B：如何处理钉钉服务端API限流,
     https://open.dingtalk.com/document/development/how-to-process-api-throttling-on-the-dingtalk-server:
     Forbidden.AccessDenied.QpsLimitForAppkeyAndApi (20/s per app and API),
     Forbidden.AccessDenied.QpsLimitForApi, Forbidden.AccessDenied.ApiCountLimitForOrg;
     token fetches do not count toward the monthly quota.
[S4] real answers: satorijs/satori issue #240 (HTTP 400
     ``{"code":"InvalidAuthentication","requestid":"...","message":"不合法的access_token"}``
     from ``GET /v1.0/microApp/allInnerApps``); aliyun/alibabacloud-php-sdk
     issue #36 (400 "Missingbody": the endpoint takes JSON only).

``POST /v1.0/oauth2/accessToken`` with JSON ``{"appKey", "appSecret"}`` answers
HTTP 200 ``{"accessToken", "expireIn": 7200}`` [S1][S2]; errors are HTTP 4xx
``{"code", "message", "requestid"}`` [S1][S4].  A fetch while the token is
valid returns the same token and extends its life to a full ``ttl`` from now
[S1] (``extend: false`` turns that off: the same token with the seconds
left).  There is no forced mode; after ``invalidate`` the token fails every
check and the next fetch mints a new one (assumed: the documented rule only
covers expiry).

Judging a token: ``GET /v1.0/microApp/allInnerApps`` with the token in the
``x-acs-dingtalk-access-token`` header answers ``{"appList": []}`` for a valid
token and HTTP 400 ``InvalidAuthentication`` "不合法的access_token" for anything
else [S4] (missing header: the same, assumed).

Control keys, besides the common ones (see common.py):
  {"apps": {"dingxxxx": "secret"}}   replace the known apps (default DEFAULT_APP_KEY)
  {"ttl": S, "extend": bool}
  {"invalidate": "all" | [tokens]}
Extra fault mode: "code" (HTTP ``status``, default 400, with ``code``/``msg``),
e.g. ``{"fail": "code", "status": 403, "code":
"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"}`` (the 403 status of the QPS
codes is what users report, not documented).

Assumed as well: a missing field gets 400 ``Missing<field>`` "<field> is
mandatory for this action." (the pattern of [S4]'s Missingbody); 5xx bodies are
``{"code": "ServiceUnavailable" | "InternalError", ...}``.
"""

import hmac
import secrets
import string
import uuid

from common import DoubleServer, json_response, main

DEFAULT_APP_KEY = "dingq1w2e3r4t5y6u7i8"
DEFAULT_APP_SECRET = "DingDoubleSecretNotForProduction-0123456789abcdefghijklmnopqrs"
TOKEN_CHARS = string.ascii_lowercase + string.digits


def requestid():
    return str(uuid.uuid4()).upper()


def ding_error(status, code, message):
    return json_response({"code": code, "requestid": requestid(), "message": message}, status)


def new_token():
    """32 lowercase hex-like characters, the shape of DingTalk's app tokens."""
    return "".join(secrets.choice(TOKEN_CHARS) for _ in range(32))


class DingTalkDouble(DoubleServer):
    """DingTalk double (v1.0 oauth2 accessToken, microApp/allInnerApps)."""

    name = "dingtalk"
    extra_faults = frozenset({"code"})

    def reset_state(self):
        super().reset_state()
        self.apps = {DEFAULT_APP_KEY: DEFAULT_APP_SECRET}
        self.ttl, self.extend = 7200, True
        self.tokens = {}           # token -> {"app_key", "expires_at", "revoked"}
        self.current = {}          # appKey -> newest token
        self.token_fetches = 0     # accessToken requests that named an appKey
        self.fetches_by_app = {}   # appKey -> those requests
        self.tokens_minted = 0

    # -- Python-side conveniences for tests --------------------------------
    def fetches(self, app_key=DEFAULT_APP_KEY):
        return self.fetches_by_app.get(app_key, 0)

    def current_token(self, app_key=DEFAULT_APP_KEY):
        return self.current.get(app_key)

    def token_valid(self, token):
        info = self.tokens.get(token)
        return info is not None and not info["revoked"] and self.now() < info["expires_at"]

    def state(self):
        now = self.now()
        return {**super().state(),
                "token_fetches": self.token_fetches, "fetches_by_app": self.fetches_by_app,
                "tokens_minted": self.tokens_minted,
                "tokens": [{"token": t, "app_key": i["app_key"],
                            "expires_in": int(i["expires_at"] - now),
                            "valid": self.token_valid(t)} for t, i in self.tokens.items()]}

    # -- control -----------------------------------------------------------
    def apply_control(self, cfg):
        if "apps" in cfg:
            self.apps = dict(cfg.pop("apps"))
        if "ttl" in cfg:
            self.ttl = int(cfg.pop("ttl"))
        if "extend" in cfg:
            self.extend = bool(cfg.pop("extend"))
        if "invalidate" in cfg:
            which = cfg.pop("invalidate")
            for token in (list(self.tokens) if which == "all" else which):
                if token in self.tokens:
                    self.tokens[token]["revoked"] = True
        return {}

    # -- faults --------------------------------------------------------------
    def error_json(self, status):
        code = "ServiceUnavailable" if status == 503 else "InternalError"
        return {"code": code, "requestid": requestid(), "message": "系统繁忙，请稍后重试"}

    def fault_response(self, fault, req):
        return ding_error(int(fault.get("status", 400)), fault.get("code", "InternalError"),
                          fault.get("msg", "error"))

    # -- routing -------------------------------------------------------------
    def route(self, req):
        if req.path == "/v1.0/oauth2/accessToken" and req.method == "POST":
            return self._access_token(req)
        if req.path == "/v1.0/microApp/allInnerApps" and req.method == "GET":
            with self.lock:
                if not self.token_valid(req.headers.get("x-acs-dingtalk-access-token", "")):
                    return ding_error(400, "InvalidAuthentication", "不合法的access_token")
            return json_response({"appList": []})
        return ding_error(404, "InvalidAction.NotFound",
                          "Specified api is not found, please check your url and method.")

    def _access_token(self, req):
        body = req.json
        if not isinstance(body, dict):
            return ding_error(400, "Missingbody", "body is mandatory for this action.")
        for field in ("appKey", "appSecret"):
            if not isinstance(body.get(field), str) or not body[field]:
                return ding_error(400, f"Missing{field}", f"{field} is mandatory for this action.")
        key = body["appKey"]
        with self.lock:
            self.token_fetches += 1
            self.fetches_by_app[key] = self.fetches_by_app.get(key, 0) + 1
            secret = self.apps.get(key)
            if secret is None or not hmac.compare_digest(secret.encode(),
                                                         body["appSecret"].encode()):
                return ding_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
            now = int(self.now())
            token = self.current.get(key)
            if not self.token_valid(token):
                token = new_token()
                self.tokens[token] = {"app_key": key, "expires_at": int(now) + self.ttl,
                                      "revoked": False}
                self.current[key] = token
                self.tokens_minted += 1
            elif self.extend:
                self.tokens[token]["expires_at"] = int(now) + self.ttl
            left = int(self.tokens[token]["expires_at"] - now)
            return json_response({"accessToken": token, "expireIn": left})


if __name__ == "__main__":
    raise SystemExit(main(DingTalkDouble))
