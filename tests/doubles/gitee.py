#!/usr/bin/env python3
"""Gitee API v5 "contents" double: read, create and update one file in a repository.

The seed's fallback distribution channel keeps the token record as a JSON file
in a Gitee repository (``GITEE_OWNER``/``GITEE_REPO``/``GITEE_FILE_PATH``):
tokendist reads it with ``GET``, creates it with ``POST`` and replaces it with
``PUT`` plus the blob ``sha`` it last read (optimistic concurrency).  This
double implements those three calls under ``/api/v5/repos/{owner}/{repo}/
contents/{path}`` with Gitee's shapes: base64 content wrapped every 60
characters (Ruby's ``Base64.encode64``), real git blob shas, ``{"message"}``
error bodies.

Authentication is the ``access_token`` query parameter (GET) or JSON body
field (POST/PUT); both places are accepted for every method, as Gitee merges
parameters.  ``Authorization: token|Bearer X`` is accepted only with
``header_auth: true`` because it is not confirmed that Gitee honours it.

Control keys, besides the common ones (see common.py):
  {"tokens": ["..."]}              the valid access tokens (default: [DEFAULT_TOKEN])
  {"repo": "owner/name", "branches": [...], "default_branch": "master",
   "public": bool, "branch": B, "files": {path: text}, "files_b64": {path: b64},
   "remove": [path, ...]}          create a repository and preset or delete files
  {"missing_file": "empty_list" | "404"}   how a missing file is answered
  {"forbidden": bool}              every call answers 403 {"message": "Forbidden"}
  {"forbidden": "writes_html"}     reads work, writes (POST/PUT) answer 403 with an
                                   HTML page instead of the API's JSON -- what
                                   Gitee is reported to answer when the token
                                   lacks the ``projects`` scope or the repository
                                   has 仓库在线编辑 (online editing) switched off
  {"stale_sha": N, "concurrent_content": text}   the next N PUTs first suffer a
                                   concurrent writer (the file changes, its sha
                                   moves), so the PUT's sha is stale
  {"sha_conflict_status": 400 | 409}   status of a stale-sha PUT (default 400)
  {"header_auth": bool}

Unconfirmed details of the real API, chosen here and documented for the client:
a stale ``sha`` on PUT -> 400 ``{"message": "<path> does not match <sha>"}``
(Gitee answers validation errors with 400 where GitHub uses 409/422; a client
must treat 400-with-that-message and 409 alike, so the status is switchable);
PUT without ``sha`` -> 400 ``{"message": "sha is missing"}``; PUT of a missing
file -> 404 ``{"message": "Not Found"}``; unknown branch -> 404
``{"message": "Not Found"}``.  Taken from the project's notes on Gitee, not
re-verified here: POST over an existing file -> 400 ``{"message": "文件名已存在"}``;
a missing file on GET -> 200 ``[]`` or 404, depending on the case.
"""

import base64
import binascii
import hashlib
import hmac
import posixpath
import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from common import ControlError, DoubleServer, Response, json_response, main

DEFAULT_TOKEN = "0123456789abcdef0123456789abcdef"
DEFAULT_REPO = "tokendist/tokens"
CONTENTS_RE = re.compile(r"/api/v5/repos/([^/]+)/([^/]+)/contents(?:/(.*))?")
AUTHOR = {"name": "tokendist", "email": "tokendist@example.invalid"}
FORBIDDEN_PAGE = ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head><meta charset=\"utf-8\">"
                  "<title>403 - Gitee.com</title></head>\n<body><div class=\"error-page\">"
                  "<h1>403</h1><p>禁止访问</p></div></body>\n</html>\n")


def blob_sha(data):
    """The git blob id of ``data``, as ``git hash-object`` prints it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def gitee_base64(data):
    """Base64 wrapped every 60 characters with a final newline, as Gitee sends it."""
    text = base64.b64encode(data).decode("ascii")
    return "".join(text[i:i + 60] + "\n" for i in range(0, len(text), 60))


def message(text, status):
    return json_response({"message": text}, status)


class GiteeDouble(DoubleServer):
    """Gitee API v5 contents double (GET/POST/PUT one file)."""

    name = "gitee"

    def reset_state(self):
        super().reset_state()
        self.tokens = {DEFAULT_TOKEN}
        self.repos = {}            # "owner/name" -> {"branches": {b: {path: bytes}}, ...}
        self.missing_file = "empty_list"
        self.forbidden = False
        self.stale_puts = 0
        self.concurrent_content = None
        self.sha_conflict_status = 400
        self.header_auth = False
        self.commits = []          # {"sha", "repo", "branch", "path", "method", "message", "size", "text"}
        self.add_repo(DEFAULT_REPO)

    # -- Python-side conveniences for tests --------------------------------
    def add_repo(self, full, branches=("master",), default_branch=None, public=False):
        with self.lock:
            repo = self.repos.setdefault(full, {"branches": {}, "public": public,
                                                "default_branch": default_branch or branches[0]})
            for b in branches:
                repo["branches"].setdefault(b, {})
            return repo

    def put_file(self, path, data, repo=DEFAULT_REPO, branch=None):
        """Preset (or overwrite) a file without going through the API."""
        data = data.encode("utf-8") if isinstance(data, str) else data
        with self.lock:
            r = self.add_repo(repo)
            r["branches"].setdefault(branch or r["default_branch"], {})[path] = data

    def file_bytes(self, path, repo=DEFAULT_REPO, branch=None):
        """The stored content of a file, or None when it does not exist."""
        with self.lock:
            r = self.repos.get(repo)
            if r is None:
                return None
            return r["branches"].get(branch or r["default_branch"], {}).get(path)

    def file_text(self, path, repo=DEFAULT_REPO, branch=None):
        data = self.file_bytes(path, repo, branch)
        return None if data is None else data.decode("utf-8")

    def state(self):
        files = {f"{full}@{b}:{p}": {"sha": blob_sha(d), "size": len(d),
                                     "text": d.decode("utf-8", "replace")}
                 for full, r in self.repos.items()
                 for b, tree in r["branches"].items() for p, d in tree.items()}
        return {**super().state(), "files": files, "commits": self.commits,
                "stale_puts": self.stale_puts}

    # -- control -----------------------------------------------------------
    def apply_control(self, cfg):
        if "tokens" in cfg:
            self.tokens = set(cfg.pop("tokens"))
        if cfg.get("forbidden") == "writes_html":
            self.forbidden = cfg.pop("forbidden")
        for key in ("forbidden", "header_auth"):
            if key in cfg:
                setattr(self, key, bool(cfg.pop(key)))
        if "missing_file" in cfg:
            mode = cfg.pop("missing_file")
            if mode not in ("empty_list", "404"):
                raise ControlError("missing_file must be 'empty_list' or '404'")
            self.missing_file = mode
        if "sha_conflict_status" in cfg:
            self.sha_conflict_status = int(cfg.pop("sha_conflict_status"))
        if "stale_sha" in cfg:
            self.stale_puts = int(cfg.pop("stale_sha"))
        if "concurrent_content" in cfg:
            self.concurrent_content = cfg.pop("concurrent_content")
        if "repo" in cfg:
            full = cfg.pop("repo")
            r = self.add_repo(full, tuple(cfg.pop("branches", ["master"])),
                              cfg.pop("default_branch", None), bool(cfg.pop("public", False)))
            branch = cfg.pop("branch", r["default_branch"])
            for path, text in cfg.pop("files", {}).items():
                self.put_file(path, text, full, branch)
            for path, b64 in cfg.pop("files_b64", {}).items():
                self.put_file(path, base64.b64decode(b64), full, branch)
            for path in cfg.pop("remove", []):
                r["branches"].get(branch, {}).pop(path, None)
        return {}

    # -- serving -------------------------------------------------------------
    def route(self, req):
        m = CONTENTS_RE.fullmatch(req.path)
        if not m or req.method not in ("GET", "POST", "PUT"):
            return message("Not Found", 404)
        full, path = f"{m.group(1)}/{m.group(2)}", (m.group(3) or "").strip("/")
        body = req.json if isinstance(req.json, dict) else {}
        with self.lock:
            repo = self.repos.get(full)
            token = self._token(req, body)
            if token is not None and not any(
                    hmac.compare_digest(token.encode(), t.encode()) for t in self.tokens):
                return message("401 Unauthorized: Access token does not exist", 401)
            if token is None and not (req.method == "GET" and repo and repo["public"]):
                return message("401 Unauthorized: Access token does not exist", 401)
            if self.forbidden == "writes_html":
                if req.method != "GET":
                    return Response(403, FORBIDDEN_PAGE, "text/html; charset=utf-8")
            elif self.forbidden:
                return message("Forbidden", 403)
            if repo is None:
                return message("Not Found Project", 404)
            branch = (req.query.get("ref") if req.method == "GET" else body.get("branch")) \
                or repo["default_branch"]
            tree = repo["branches"].get(branch)
            if tree is None:
                return message("Not Found", 404)
            if req.method == "GET":
                return self._get(full, branch, tree, path)
            return self._write(req.method, full, branch, tree, path, body)

    def _token(self, req, body):
        token = req.query.get("access_token", body.get("access_token"))
        if token is None and self.header_auth:
            scheme, _, value = req.headers.get("authorization", "").partition(" ")
            if scheme.lower() in ("token", "bearer") and value.strip():
                token = value.strip()
        return token if isinstance(token, str) else None

    def _get(self, full, branch, tree, path):
        if path in tree:
            return json_response(self._entry(full, branch, path, tree[path], True))
        prefix = path + "/" if path else ""
        names = {p[len(prefix):].split("/")[0] for p in tree if p.startswith(prefix)}
        if names:       # a directory: Gitee lists its entries
            entries = []
            for n in sorted(names):
                p = prefix + n
                if p in tree:
                    entries.append(self._entry(full, branch, p, tree[p], False))
                else:
                    entries.append({"type": "dir", "size": None, "name": n, "path": p,
                                    "sha": blob_sha(p.encode()), **self._urls(full, branch, p)})
            return json_response(entries)
        if self.missing_file == "404":
            return message("Not Found", 404)
        return json_response([])

    def _urls(self, full, branch, path):
        api = f"{self.url}/api/v5/repos/{full}/contents/{quote(path)}"
        html = f"https://gitee.com/{full}/blob/{branch}/{quote(path)}"
        return {"url": api, "html_url": html,
                "download_url": f"https://gitee.com/{full}/raw/{branch}/{quote(path)}",
                "_links": {"self": api, "html": html}}

    def _entry(self, full, branch, path, data, with_content):
        entry = {"type": "file", "encoding": "base64", "size": len(data),
                 "name": posixpath.basename(path), "path": path,
                 "content": gitee_base64(data), "sha": blob_sha(data),
                 **self._urls(full, branch, path)}
        if not with_content:
            del entry["encoding"], entry["content"]
        return entry

    def _write(self, method, full, branch, tree, path, body):
        for field in ("content", "message"):
            if not isinstance(body.get(field), str):
                return message(f"{field} is missing", 400)
        try:
            data = base64.b64decode(re.sub(r"\s+", "", body["content"]), validate=True)
        except (binascii.Error, ValueError):
            return message("content is invalid", 400)
        if not path:
            return message("path is missing", 400)
        if method == "POST":
            if path in tree:
                return message("文件名已存在", 400)
            return self._commit(201, "POST", full, branch, tree, path, data, body["message"])
        if not isinstance(body.get("sha"), str) or not body["sha"]:
            return message("sha is missing", 400)
        if path not in tree:
            return message("Not Found", 404)
        if self.stale_puts > 0:     # another writer commits between our GET and PUT
            self.stale_puts -= 1
            other = self.concurrent_content
            other = tree[path] + b"\n" if other is None else other.encode("utf-8")
            self._commit(200, "CONCURRENT", full, branch, tree, path, other, "concurrent writer")
        if body["sha"] != blob_sha(tree[path]):
            return message(f"{path} does not match {body['sha']}", self.sha_conflict_status)
        return self._commit(200, "PUT", full, branch, tree, path, data, body["message"])

    def _commit(self, status, method, full, branch, tree, path, data, text):
        parent = self.commits[-1]["sha"] if self.commits else None
        tree[path] = data
        sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
        # "text": what the commit wrote, so a test can search the whole history
        self.commits.append({"sha": sha, "repo": full, "branch": branch, "path": path,
                             "method": method, "message": text, "size": len(data),
                             "text": data.decode("utf-8", "replace")})
        stamp = {**AUTHOR, "date": _iso8601(self.now())}
        api = f"{self.url}/api/v5/repos/{full}"
        return json_response({
            "content": self._entry(full, branch, path, data, False),
            "commit": {"sha": sha, "author": stamp, "committer": stamp, "message": text,
                       "tree": {"sha": blob_sha(sha.encode()), "url": f"{api}/git/trees/{sha}"},
                       "parents": [{"sha": parent, "url": f"{api}/commits/{parent}"}]
                       if parent else []}}, status)


def _iso8601(ts):
    """Gitee's commit dates: ISO 8601 in Beijing time (+08:00)."""
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=8))).isoformat(timespec="seconds")


if __name__ == "__main__":
    raise SystemExit(main(GiteeDouble))
