"""One language (issue #14): every message a person reads that comes from
the code is Chinese.  This lint reads the sources, finds the places where
a message leaves the code -- its *sinks* -- and fails on a piece of text
there that holds an English word and no Chinese character.

    C (src/):   td_log(), snprintf() into a message buffer (err, why, msg,
                ...), a td_strbuf builder over such a buffer, resp_msg()
                (an HTTP error body), opt_fail(), note_event() (the status
                page's events), fprintf()/fputs()/printf() (CLI output),
                helpers that take a message piece (sq_fail(), bad_reply(),
                ...); the "error"/"message" of a JSON body written out in a
                literal; a metric's HELP text;
    Node:       new TokendistError/SealError/TypeError/Error/RangeError(),
                configError(), cacheRefused(), log.*() and console.*();
    Python:     raise X(...), TokendistError/SealError/config_error(),
                logger.*(), print(), warnings.warn().

What is not prose is not judged: printf conversions, setting and header
names (FEISHU_APP_ID, HTTP, JSON), options (--push-key), identifiers with
'_' or digits (access_token, oc_...), paths and URLs (/release/get-token,
127.0.0.1:9000), and "tokendist CMD" as a prefix.  What stays English on
purpose is in ALLOW below, each entry with its reason; an entry that no
longer matches anything fails too, so the list cannot rot.
"""
import ast
import glob
import os
import re
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
CONV = re.compile(r"%[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcspn%]")
NOT_PROSE = [
    re.compile(r"\btokendist(?: [a-z][a-z0-9-]*)?"),       # the program, "tokendist get"
    re.compile(r"--[a-z0-9][a-z0-9-]*"),                    # options
    re.compile(r"\S*(?:/|://|\.\w)\S*"),                    # paths, URLs, hosts, file names
    re.compile(r"\b\w*[_0-9]\w*\b"),                        # identifiers: access_token, v1, TD_E*
    re.compile(r"\b[A-Z][A-Z0-9]+\b"),                      # names: HTTP, JSON, FEISHU, SIGINT
    re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b"),        # option and command names: app-id, scf-runtime
    re.compile(r"\b[a-z]+[A-Z]\w*\b"),                       # camelCase fields: accessToken, httpMethod
]
WORD = re.compile(r"[A-Za-z]{2,}")

# (file, text) -> why it stays English.  Text is the piece exactly as the
# lint shows it (adjacent literals joined, a JS/Python placeholder as %s).
ALLOW = {
    # The seed's protocol strings: clients match them byte for byte.
    ("src/api.c", "Token not found or expired"): "the seed's 404 body (GET, POST .../invalid)",
    ("src/api.c", "Token stored successfully"): "the seed's 200 body to a POST",
    ("src/api.c", "Failed to store token"): "the seed's 500 body to a POST",
    ("src/api.c", "Failed to store token: %s"):
        "the seed's 500 body to a POST, then the cause (which is Chinese): a client matching the "
        "seed's text by prefix still matches",
    ("src/api.c", "Method not allowed"): "the seed's 405 body",
    ("src/api.c", "Not found"):
        "the 404 body of an unknown path: released C clients (td_endpoint_wrong_path) match it byte "
        "for byte to say 'wrong path' rather than 'no token yet'; it is HTTP's own reason phrase too",
    ("src/client.c", "Token not found or expired"):
        "the seed's 404 text, shown when a server answered 404 without a body",
    # Wire formats, not messages.
    ("src/fleet.c", "result %s %d %.900s"):
        "a fleet message between servers (Redis pub/sub), parsed by fleet.c",
    ("src/fleet.c", "ack %s"):
        "a fleet message between servers (Redis pub/sub), parsed by fleet.c",
    ("src/cmd_serve.c", "https"): "a URL's scheme in the start line's address",
    ("src/cmd_serve.c", "http"): "a URL's scheme in the start line's address",
    ("src/config.c", "true"): "a value --print-config writes for the env-file to read back",
    ("src/config.c", "false"): "a value --print-config writes for the env-file to read back",
}


def rel(path):
    return os.path.relpath(path, ROOT)


def is_prose(text):
    """The English words of text once what is not prose is taken out."""
    t = CONV.sub(" ", text)
    for rx in NOT_PROSE:
        t = rx.sub(" ", t)
    return WORD.findall(t)


def judge(found):
    """found: [(file, line, text)] -> (violations, allow entries used)."""
    bad, used = [], set()
    for f, line, text in found:
        if CJK.search(text) or not is_prose(text):
            continue
        if (f, text) in ALLOW:
            used.add((f, text))
            continue
        bad.append(f"{f}:{line}: {text!r}")
    return bad, used


# --- C ----------------------------------------------------------------------

C_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<pp>^[ \t]*\#(?:[^\n\\]|\\.)*)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<chr>'(?:[^'\\\n]|\\.)*')
  | (?P<id>[A-Za-z_]\w*)
  | (?P<num>\d[\w.]*)
  | (?P<ws>\s+)
  | (?P<op>->|.)
""", re.S | re.M | re.X)


def c_unescape(body):
    """A C literal's text, close enough to judge: escapes become one char,
    \\x.. and octal bytes are decoded so UTF-8 Chinese written as bytes
    counts as Chinese."""
    out = bytearray()
    i = 0
    b = body.encode("utf-8")
    while i < len(b):
        c = b[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        n = chr(b[i + 1])
        if n == "x":
            m = re.match(rb"[0-9a-fA-F]+", b[i + 2:])
            out.append(int(m.group(), 16) & 0xFF)
            i += 2 + len(m.group())
        elif n in "01234567":
            m = re.match(rb"[0-7]{1,3}", b[i + 1:])
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        else:
            out += {"n": b"\n", "t": b"\t", "r": b"\r"}.get(n, n.encode())
            i += 2
    return out.decode("utf-8", "replace")


def c_tokens(src):
    toks = []
    line = 1
    for m in C_TOKEN.finditer(src):
        kind = m.lastgroup
        if kind not in ("comment", "pp", "ws"):
            toks.append((kind, m.group(), line))
        line += m.group().count("\n")
    return toks


def c_calls(toks, names):
    """(name, line, [arg tokens]) for each call of a function in names."""
    for i, (kind, val, line) in enumerate(toks):
        if kind != "id" or val not in names or i + 1 >= len(toks) or toks[i + 1][1] != "(":
            continue
        if i and toks[i - 1][0] == "id" and toks[i - 1][1] not in ("return", "else", "case"):
            continue  # a declaration or definition: "static int opt_fail(...)"
        depth, args, cur = 0, [], []
        for t in toks[i + 1:]:
            if t[1] in "([{":
                depth += 1
                if depth == 1:
                    continue
            elif t[1] in ")]}":
                depth -= 1
                if depth == 0:
                    args.append(cur)
                    break
            elif t[1] == "," and depth == 1:
                args.append(cur)
                cur = []
                continue
            cur.append(t)
        yield val, line, args


def c_pieces(arg):
    """Runs of adjacent string literals in an argument (a macro between
    literals, as in "..." TD_NAME_RULE, joins the run): each run is one
    piece of text, judged alone -- `a ? "x" : "y"` gives two.  Literals
    that are not text shown but operands -- of a call inside the argument
    (strcmp(kind, "feishu")) or of sizeof -- are left out."""
    pieces, cur, line = [], [], None
    calls, prev = [], None   # calls: per open paren, whether it is a call's
    for kind, val, ln in arg + [("op", ";", 0)]:
        if val == "(":
            calls.append(prev is not None and prev[0] == "id" and prev[1] != "sizeof")
        elif val == ")" and calls:
            calls.pop()
        skip = any(calls) or (prev is not None and prev[1] == "sizeof")
        prev = (kind, val)
        if kind == "str" and not skip:
            cur.append(c_unescape(val[1:-1]))
            line = line or ln
        elif kind == "id" and cur and re.fullmatch(r"[A-Z][A-Z0-9_]*", val):
            continue
        else:
            if cur:
                pieces.append((line, "".join(cur)))
            cur, line = [], None
    return pieces


def last_id(arg):
    ids = [v for k, v, _ in arg if k == "id"]
    return ids[-1] if ids else ""


# Buffers that hold a message for a person: the err convention's buffer
# and the names the code gives a reason on its way to one.
MESSAGE_BUFFERS = {"err", "errbuf", "why", "msg", "herr", "problem", "note", "fails", "same_why",
                   "last_err", "w", "text", "down_why"}
# Sink -> index of its first message argument (every argument from there
# on is judged: a literal passed as %s is read too).
C_SINKS = {"td_log": 0, "resp_msg": 4, "opt_fail": 2, "note_event": 2, "printf": 0, "puts": 0,
           # helpers that put their text argument into a message
           "mark_down": 1, "bad_reply": 1, "sq_fail_db": 3, "sq_fail": 2, "url_too_long": 1,
           "reply": 4, "land": 3, "force_done": 2, "notify": 3, "td_provider_take_token": 0}
# A JSON body written out in a literal ({"error": "..."}): the text of its
# "error" or "message" is what an HTTP client shows.
# A Prometheus HELP line's text (a metrics table's too, below): what a
# Grafana or Prometheus user reads beside the metric.
METRIC_HELP = re.compile(r"# HELP \S+ ([^\n]+)")
JSON_MESSAGE = re.compile(r'"(?:error|message)":\s*"((?:[^"\\]|\\.)*)"')


def c_found(path):
    with open(path, encoding="utf-8") as f:
        toks = c_tokens(f.read())
    builders = set()   # td_strbuf builders over a message buffer
    for _, _, args in c_calls(toks, {"td_strbuf_fixed"}):
        if len(args) >= 2 and last_id(args[1]) in MESSAGE_BUFFERS:
            builders.add(last_id(args[0]))
    for i, (kind, val, line) in enumerate(toks):
        if kind == "str":
            text = c_unescape(val[1:-1])
            for m in JSON_MESSAGE.finditer(text):
                yield rel(path), line, m.group(1)
            for m in METRIC_HELP.finditer(text):
                yield rel(path), line, m.group(1)
        # {"metric_name", "its HELP text"} in a metrics table
        if (val == "{" and i + 4 < len(toks) and toks[i + 1][0] == "str" and toks[i + 2][1] == ","
                and toks[i + 3][0] == "str" and toks[i + 4][1] == "}"
                and re.fullmatch(r'"[a-z][a-z0-9_]*_(?:total|seconds|held|row|records|waiting)"', toks[i + 1][1])):
            yield rel(path), toks[i + 3][2], c_unescape(toks[i + 3][1][1:-1])
    names = set(C_SINKS) | {"snprintf", "fprintf", "fputs", "td_strbuf_printf", "td_strbuf_puts"}
    for name, line, args in c_calls(toks, names):
        if name == "snprintf":
            if not args or last_id(args[0]) not in MESSAGE_BUFFERS:
                continue
            judged = args[2:]
        elif name in ("td_strbuf_printf", "td_strbuf_puts"):
            if not args or last_id(args[0]) not in builders:
                continue
            judged = args[1:]
        elif name == "fprintf":
            judged = args[1:]
        elif name == "fputs":
            judged = args[:1]
        else:
            judged = args[C_SINKS[name]:]
        for a in judged:
            for ln, text in c_pieces(a):
                yield rel(path), ln, text


# --- Node -------------------------------------------------------------------

JS_SINKS = re.compile(r"\b(?:new\s+(?:TokendistError|SealError|TypeError|RangeError|Error)|configError|cacheRefused"
                      r"|(?:log|console)\.(?:debug|info|warn|error|log))\s*\(")


def js_string(src, i):
    """(text, end) of the JS string or template literal at src[i]; a
    template's ${...} becomes %s."""
    q = src[i]
    out, j = [], i + 1
    while src[j] != q:
        if src[j] == "\\":
            nxt = src[j + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            j += 2
        elif q == "`" and src.startswith("${", j):
            depth, j = 1, j + 2
            while depth:
                if src[j] in "'\"`":
                    _, j = js_string(src, j)
                    continue
                depth += {"{": 1, "}": -1}.get(src[j], 0)
                j += 1
            out.append("%s")
        else:
            out.append(src[j])
            j += 1
    return "".join(out), j + 1


def js_blank_comments(src):
    """src with its comments blanked (newlines kept, so line numbers hold);
    strings and regular expression literals are stepped over whole."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c in "'\"`":
            _, j = js_string(src, i)
            out.append(src[i:j])
            i = j
        elif src.startswith("//", i) or src.startswith("/*", i):
            j = src.find("\n", i) if src[i + 1] == "/" else src.find("*/", i) + 2
            j = n if j < 0 else j
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "/" and re.search(r"(?:[(,=:\[!&|?{};]|\breturn)\s*$", src[:i][-40:]):
            j, cls = i + 1, False   # a regular expression literal
            while src[j] != "/" or cls:
                if src[j] == "\\":
                    j += 1
                elif src[j] == "[":
                    cls = True
                elif src[j] == "]":
                    cls = False
                j += 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def js_found(path):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    src = js_blank_comments(src)
    for m in JS_SINKS.finditer(src):
        # stack: the brackets open since the sink's "(": a string inside an
        # object literal ({source: 'cache'}) or a nested call's arguments
        # (s.replace('a', 'b')) is an operand, not text shown.
        i, stack, run, run_line = m.end(), ["("], [], None
        while stack:
            c = src[i]
            if c in "'\"`":
                text, i = js_string(src, i)
                if all(b in ("(", "[") for b in stack):
                    run.append(text)
                    run_line = run_line or src.count("\n", 0, i) + 1
                continue
            if c in "([{":
                before = src[:i].rstrip()
                stack.append(c if c != "(" or not re.search(r"[\w$]$", before) else "call")
            elif c in ")]}":
                stack.pop()
            if c not in " \t\n+":
                if run:
                    yield rel(path), run_line, "".join(run)
                run, run_line = [], None
            i += 1


# --- Python -----------------------------------------------------------------

PY_SINKS = {"TokendistError", "SealError", "config_error", "_cache_refused", "TypeError", "ValueError",
            "RuntimeError", "print", "warn", "debug", "info", "warning", "error", "exception", "fail"}


def py_text(node):
    """The text of a str constant or f-string (fields as %s), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "%s" for v in node.values)
    return None


def py_found(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
        if name not in PY_SINKS:
            continue
        for a in list(node.args) + [k.value for k in node.keywords if k.arg in (None, "msg", "message")]:
            for sub in ast.walk(a):
                text = py_text(sub)
                if text is not None and not isinstance(getattr(sub, "_parent", None), ast.JoinedStr):
                    yield rel(path), sub.lineno, text
                if isinstance(sub, ast.JoinedStr):
                    for v in sub.values:
                        v._parent = sub


# --- the tests ----------------------------------------------------------------

def c_sources():
    return sorted(glob.glob(os.path.join(ROOT, "src", "*.c")) + glob.glob(os.path.join(ROOT, "src", "*", "*.c")))


def node_sources():
    return [os.path.join(ROOT, "clients", "node", "index.cjs")]


def python_sources():
    return sorted(glob.glob(os.path.join(ROOT, "clients", "python", "tokendist_client", "*.py")))


class Messages(unittest.TestCase):
    def check(self, found, what):
        bad, used = judge(found)
        self.assertEqual(bad, [], f"{what}: messages with English words and no Chinese "
                                  f"(translate them, or add to ALLOW in {rel(__file__)} with a reason)")
        return used

    def test_c_sources(self):
        found = [x for p in c_sources() for x in c_found(p)]
        self.assertGreater(len(found), 300, "the lint found too few C messages: are the sinks still found?")
        used = self.check(found, "src/")
        stale = sorted(k for k in ALLOW if k[0].startswith("src/") and k not in used)
        self.assertEqual(stale, [], "ALLOW entries that match no message any more: remove them")

    def test_node_client(self):
        found = [x for p in node_sources() for x in js_found(p)]
        self.assertGreater(len(found), 60, "the lint found too few Node messages")
        used = self.check(found, "clients/node")
        stale = sorted(k for k in ALLOW if k[0].startswith("clients/node") and k not in used)
        self.assertEqual(stale, [])

    def test_python_client(self):
        found = [x for p in python_sources() for x in py_found(p)]
        self.assertGreater(len(found), 60, "the lint found too few Python messages")
        used = self.check(found, "clients/python")
        stale = sorted(k for k in ALLOW if k[0].startswith("clients/python") and k not in used)
        self.assertEqual(stale, [])

    def test_the_lint_can_fail(self):
        """The judge itself: English prose fails, Chinese, joins and names pass."""
        cases = [("listen address '%s' is not HOST:PORT", False), ("❌ 无法启动: %s", True),
                 ("%s: %s", True), ("HTTP %ld", True), ("tokendist get: %s\n", True),
                 ("(none)", False), ("--tls-cert (TOKENDIST_TLS_CERT)", True),
                 ("field 'access_token' is empty", False), ("…/release/get-token", True)]
        for text, ok in cases:
            self.assertEqual(not judge([("x.c", 1, text)])[0], ok, text)

    def test_the_scanners_find_the_sinks(self):
        """Each scanner, on a planted file: English at a sink is found,
        operands and Chinese are not."""
        planted = {
            "x.c": ('static int f(char *err, size_t errlen) {\n'
                    '    if (!strcmp(kind, "feishu")) td_log("cannot start: %s", "not connected");\n'
                    '    snprintf(err, errlen, "失败: %s", why);\n'
                    '    resp_msg(api, r, 400, "message", "empty body");\n'
                    '    static const char B[] = "{\\"error\\": \\"Not here\\"}";\n}\n', c_found),
            "x.cjs": ("// throw new Error('a comment')\n"
                      "throw new TokendistError('EX', `cannot read ${f('a b')} now`, { source: 'cache' });\n"
                      "log.warn('已跳过: ' + why);\n", js_found),
            "x.py": ('def f():\n    """Raises nothing in English."""\n'
                     '    raise TokendistError("EX", f"cannot read {x}", source="cache")\n'
                     '    logger.warning("已跳过")\n', py_found),
        }
        want = {"x.c": ["Not here", "cannot start: %s", "not connected", "empty body"],
                "x.cjs": ["cannot read %s now"], "x.py": ["cannot read %s"]}
        with tempfile.TemporaryDirectory() as d:
            for name, (text, scan) in planted.items():
                path = os.path.join(d, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                bad, _ = judge(list(scan(path)))
                self.assertEqual([b.split(": ", 1)[1] for b in bad], [repr(w) for w in want[name]], name)


if __name__ == "__main__":
    unittest.main()
