"""One language (issue #14): every message a person reads that comes from
the code is Chinese.  This lint reads the sources, finds the places where
a message leaves the code -- its *sinks* -- and fails on a piece of text
there that is English: it holds an English word and no Chinese character
(an ideograph: "：" or "。" after an English sentence does not count), or
it holds a run of three or more English words, whatever else it holds
("错误: the secret is wrong" is English).

    C (src/):   td_log(), snprintf()/vsnprintf() and td_strbuf builders
                into any buffer but the URL, header and key buffers named in
                NOT_MESSAGE_BUFFERS, resp_msg() (an HTTP error body),
                opt_fail(), note_event() (the status page's events),
                fprintf()/fputs()/printf()/dprintf()/perror() (CLI output),
                every function with a message parameter (why, what, msg,
                note, ...: sq_fail(), bad_reply(), ...); a #define or const
                holding text passed to any of them; the "error"/"message" of
                a JSON body written out in a literal; a metric's HELP text;
    Node:       new XxxError(), configError(), cacheRefused(), log.*(),
                console.*(), process.stderr/stdout.write(), {message: ...}
                and e.message = ..., text kept in a variable passed to them;
    Python:     any raise, a call of an XxxError/Exception/Warning class,
                TokendistError/SealError/config_error(), logger.*() and
                logger.log(level, ...), print(), warnings.warn(),
                sys.stderr/stdout.write(), text kept in a name passed to them.

What is not prose is not judged: printf conversions, setting and header
names (FEISHU_APP_ID, HTTP, JSON, Content-Type), options (--push-key),
identifiers with '_' or digits (access_token, oc_...), paths, URLs and
queries (/release/get-token, 127.0.0.1:9000, ?ref=), code (withToken(client,
fn)), a quoted name ('owner'), a command to type (pip install ...),
"tokendist CMD" as a prefix, and the library's own words quoted after ours
(LIBRARY_TEXT: "address already in use").  What stays English on purpose is
in ALLOW below, each entry with its reason; an entry that no longer matches
anything fails too, so the list cannot rot.
"""
import ast
import glob
import os
import re
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Chinese means ideographs: CJK punctuation and fullwidth forms (a "：" or
# a "。" at the end of an English sentence) do not make a message Chinese.
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CONV = re.compile(r"%[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcspn%]")
NOT_PROSE = [
    re.compile(r"[\w.]+\([^()]*\)"),                         # code: withToken(client, fn), createClient()
    re.compile(r"\btokendist(?: [a-z][a-z0-9-]*)?"),       # the program, "tokendist get"
    re.compile(r"--[a-z0-9][a-z0-9-]*"),                    # options
    re.compile(r"\S*(?:/|://|\.\w)\S*"),                    # paths, URLs, hosts, file names
    re.compile(r"[?&]\w+=\S*"),                              # a URL's query: ?ref=
    re.compile(r"\b\w*[_0-9]\w*\b"),                        # identifiers: access_token, v1, TD_E*
    re.compile(r"\b[A-Z][A-Z0-9]+\b"),                      # names: HTTP, JSON, FEISHU, SIGINT
    re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b"),        # option and command names: app-id, scf-runtime
    re.compile(r"\b[a-z]+[A-Z]\w*\b"),                       # camelCase fields: accessToken, httpMethod
    re.compile(r"\b[A-Z][a-z]+(?:-[A-Z][a-z]+)+\b"),        # header names: Content-Type, X-Api-Key
    re.compile(r"'[^'\s]*'"),                               # a quoted name or value: 'owner', '%s'
    re.compile(r"\b(?:pip3?|apt(?:-get)?|npm|ip|systemctl|journalctl) [a-z]+\b"),  # a command to type
]
# The library's or the system's own words, quoted after ours (they are what
# a search finds): taken out before judging.
LIBRARY_TEXT = re.compile("|".join(re.escape(t) for t in [
    "address already in use", "address not available", "database is locked",
]))
WORD = re.compile(r"[A-Za-z]{2,}")
# A run of ordinary English words: three or more in a row, with nothing but
# blanks and ASCII punctuation between them.  Shorter runs are the names a
# Chinese message quotes ("Gitee token", "access token 和 jsapi_ticket",
# "(HTTP 404 Not found)"); a run is a sentence, whatever else the text holds.
RUN = re.compile(r"[A-Za-z]{2,}(?:[ \t,;:'\"!?.()-]+[A-Za-z]{2,}){2,}")

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
    ("src/seal.c", "tokendist-sealed"): "the sealed Gitee copy's associated data (docs/protocol.md), bytes under a MAC",
    ("src/cmd_serve.c", "https"): "a URL's scheme in the start line's address",
    ("src/cmd_serve.c", "http"): "a URL's scheme in the start line's address",
    ("src/config.c", "true"): "a value --print-config writes for the env-file to read back",
    ("src/config.c", "false"): "a value --print-config writes for the env-file to read back",
    ("src/api.c", 'tokendist_token_expiry_seconds{name="%s"} %lld\n'):
        "a Prometheus exposition line (metric name and label), not a message",
    ("src/api.c", 'tokendist_token_renew_window_seconds{name="%s"} %ld\n'):
        "a Prometheus exposition line (metric name and label), not a message",
    ("src/notice.c", " (token %s)"):
        "appended to the notice's Chinese line to name the token; 'token' is that line's own word (token已刷新)",
}


def rel(path):
    return os.path.relpath(path, ROOT)


def prose(text):
    """text once what is not prose is taken out."""
    t = CONV.sub(" ", LIBRARY_TEXT.sub(" ", text))
    for rx in NOT_PROSE:
        t = rx.sub(" ", t)
    return t


def is_english(text):
    """A message is English when it holds an English word and no Chinese, or
    a run of English words whatever else it holds."""
    t = prose(text)
    return bool(WORD.search(t)) and (not CJK.search(text) or bool(RUN.search(t)))


def judge(found):
    """found: [(file, line, text)] -> (violations, allow entries used)."""
    bad, used = [], set()
    for f, line, text in found:
        if not is_english(text):
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


# Buffers that hold no message for a person: what is formatted into them is
# a URL, a header, a key, a path or a wire format.  Text formatted into any
# other buffer (snprintf, a td_strbuf builder) is judged: a new buffer is a
# message until it is named here.
NOT_MESSAGE_BUFFERS = {
    "url", "path", "auth", "auth_header", "csp", "key", "lease_key",   # URLs, headers, store keys
    "channel", "inbox", "ch", "sigv4", "scheme", "body",                # Redis channels, S3 signing, a probe
    "host", "name", "base",                                             # a host name; "files list" for the parser
}
# Sink -> index of its first message argument (every argument from there
# on is judged: a literal passed as %s is read too).
C_SINKS = {"td_log": 0, "resp_msg": 4, "opt_fail": 2, "note_event": 2, "printf": 0, "puts": 0,
           "perror": 0, "dprintf": 1, "fprintf": 1, "vfprintf": 1, "fputs": 0,
           # helpers that put their text argument into a message
           "mark_down": 1, "bad_reply": 1, "sq_fail_db": 3, "sq_fail": 2, "url_too_long": 1,
           "reply": 4, "land": 3, "force_done": 2, "notify": 3, "td_provider_take_token": 0}
# A JSON body written out in a literal ({"error": "..."}): the text of its
# "error" or "message" is what an HTTP client shows.
# A Prometheus HELP line's text (a metrics table's too, below): what a
# Grafana or Prometheus user reads beside the metric.
METRIC_HELP = re.compile(r"# HELP \S+ ([^\n]+)")
JSON_MESSAGE = re.compile(r'"(?:error|message)":\s*"((?:[^"\\]|\\.)*)"')
C_DEFINE = re.compile(r'#\s*define\s+(\w+)\s+((?:"(?:[^"\\\n]|\\.)*"\s*)+)$')


def c_constants(toks, src):
    """name -> [(line, text)] for the text a file keeps under a name: a
    #define of a literal, `NAME[] = "..."`, `*NAME = "..."` and the literals
    of an initializer list (`*const NAME[] = {"...", ...}`).  A sink that
    passes the name passes the text."""
    consts = {}
    for m in re.finditer(r"^[ \t]*" + C_DEFINE.pattern, src, re.M):
        line = src.count("\n", 0, m.start()) + 1
        consts[m.group(1)] = [(line, "".join(c_unescape(x) for x in re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(2))))]
    for i, (kind, val, line) in enumerate(toks):
        if kind != "id" or i + 1 >= len(toks):
            continue
        j = i + 1
        if toks[j][1] == "[":
            while j < len(toks) and toks[j][1] != "]":
                j += 1
            j += 1
        if j >= len(toks) or toks[j][1] != "=" or (j == i + 1 and not (i and toks[i - 1][1] == "*")):
            continue
        init = []
        if j + 1 < len(toks) and toks[j + 1][1] == "{":
            depth, k = 0, j + 1
            while k < len(toks):
                depth += {"{": 1, "}": -1}.get(toks[k][1], 0)
                init.append(toks[k])
                if depth == 0:
                    break
                k += 1
            pieces = [p for t in init if t[0] == "str" for p in c_pieces([t])]
        else:
            k = j + 1
            while k < len(toks) and toks[k][1] not in (";", ","):
                init.append(toks[k])
                k += 1
            pieces = c_pieces(init) if init and init[0][0] == "str" else []
        # One lowercase word ("serve", "https", "sqlite:PATH") is a name
        # the table holds -- a command, a kind, a scheme -- not a sentence.
        pieces = [p for p in pieces if not re.fullmatch(r"[a-z][a-z0-9]*(?::[A-Za-z]*)?", p[1])]
        if pieces:
            consts.setdefault(val, []).extend(pieces)
    return consts


# A function with a parameter of one of these names takes a message piece
# (why, what, a note...): a call of it is a sink for that argument, so a
# new helper is watched without being listed.  Except where the "message"
# is a wire format or a text only inspected.
MESSAGE_PARAMS = {"why", "msg", "reason", "what", "text", "hint", "message", "detail", "note", "problem"}
NOT_MESSAGE_FUNCS = {"on_message", "td_store_send", "rd_send", "transient_error", "csp_hash"}
C_PARAM = re.compile(r"\b(\w+)\s*\(([^()]*)\)\s*(?:\{|;|__attribute__)")


def c_helper_sinks():
    """function name -> positions of its message parameters, over src/."""
    sinks = {}
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.[ch]"), recursive=True):
        with open(path, encoding="utf-8") as f:
            src = f.read()
        for m in C_PARAM.finditer(src):
            if m.group(1) in NOT_MESSAGE_FUNCS or m.group(1) in ("if", "while", "for", "switch", "return"):
                continue
            params = [p.strip() for p in m.group(2).split(",")]
            pos = [i for i, p in enumerate(params)
                   if re.fullmatch(r"(?:const\s+)?char\s*\*\s*(?:const\s+)?(\w+)", p)
                   and re.search(r"(\w+)$", p).group(1) in MESSAGE_PARAMS]
            if pos:
                sinks.setdefault(m.group(1), set()).update(pos)
    return sinks


_HELPERS = None


def c_found(path):
    global _HELPERS
    if _HELPERS is None:
        _HELPERS = c_helper_sinks()
    with open(path, encoding="utf-8") as f:
        src = f.read()
    toks = c_tokens(src)
    consts = c_constants(toks, src)
    # td_strbuf builders: (line, builder) -> the buffer it was last set
    # over before that line ("b" is a URL in one function, a message in the next)
    fixed = sorted((line, last_id(args[0]), last_id(args[1]))
                   for _, line, args in c_calls(toks, {"td_strbuf_fixed"}) if len(args) >= 2)

    def over(builder, line):
        bufs = [buf for ln, b, buf in fixed if b == builder and ln <= line]
        return bufs[-1] if bufs else None
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
    names = set(C_SINKS) | set(_HELPERS) | {"snprintf", "vsnprintf", "td_strbuf_printf", "td_strbuf_puts",
                                            "td_strbuf_append_cut"}
    for name, line, args in c_calls(toks, names):
        if name in ("snprintf", "vsnprintf"):
            if not args or last_id(args[0]) in NOT_MESSAGE_BUFFERS:
                continue
            judged = args[2:]
        elif name in ("td_strbuf_printf", "td_strbuf_puts", "td_strbuf_append_cut"):
            if not args or over(last_id(args[0]), line) in (None, *NOT_MESSAGE_BUFFERS):
                continue
            judged = args[1:]
        elif name in C_SINKS:
            judged = args[C_SINKS[name]:]
        else:
            judged = [args[i] for i in sorted(_HELPERS[name]) if i < len(args)]
        for a in judged:
            for ln, text in c_pieces(a):
                yield rel(path), ln, text
            # a name that holds text, passed as is (not called: f(NAME) is an operand)
            for k, (kind, val, _) in enumerate(a):
                if kind == "id" and val in consts and not (k + 1 < len(a) and a[k + 1][1] == "(") \
                        and not (k and a[k - 1][1] in (".", "->")):
                    for ln, text in consts[val]:
                        yield rel(path), ln, text


# --- Node -------------------------------------------------------------------

# Where a Node message leaves the code: an error of any class, the client's
# error helpers, a logger, the console, the process's own streams, and the
# message of an error built some other way ({message: ...}, e.message = ...).
JS_SINKS = re.compile(r"\b(?:new\s+(?:[A-Z]\w*)?Error|configError|cacheRefused"
                      r"|(?:log|console)\.(?:debug|info|warn|error|log)|process\.(?:stderr|stdout)\.write)\s*\(")
JS_MESSAGE_SET = re.compile(r"(?:\bmessage\s*:|\.message\s*=(?!=))\s*")
JS_CONST = re.compile(r"\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=(?!=)\s*")


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


def js_scan(src, i, closing, consts):
    """(line, text) of the runs of string literals from src[i] to the first
    of closing outside brackets; a name in consts (text kept in a variable)
    gives its text.  A string inside an object literal ({source: 'cache'})
    or a nested call's arguments (s.replace('a', 'b')) is an operand, not
    text shown."""
    stack, run, run_line, n = [], [], None, len(src)
    while i < n:
        c = src[i]
        if not stack and c in closing:
            break
        if c in "'\"`":
            text, i = js_string(src, i)
            if all(b in ("(", "[") for b in stack):
                run.append(text)
                run_line = run_line or src.count("\n", 0, i) + 1
            continue
        m = re.compile(r"[A-Za-z_$][\w$]*").match(src, i)
        if m and (i == 0 or not re.match(r"[\w$.]", src[i - 1])):
            name, i = m.group(), m.end()
            nxt = src[i:].lstrip()[:1]
            if name in consts and nxt != "(" and all(b in ("(", "[") for b in stack):
                yield from consts[name]
            if nxt not in ("(", "["):
                if run:
                    yield run_line, "".join(run)
                run, run_line = [], None
            continue
        if c in "([{":
            before = src[:i].rstrip()
            stack.append(c if c != "(" or not re.search(r"[\w$]$", before) else "call")
        elif c in ")]}":
            if not stack:
                break
            stack.pop()
        if c not in " \t\n+":
            if run:
                yield run_line, "".join(run)
            run, run_line = [], None
        i += 1
    if run:
        yield run_line, "".join(run)


def js_found(path):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    src = js_blank_comments(src)
    consts = {}
    for m in JS_CONST.finditer(src):
        texts = list(js_scan(src, m.end(), ",;", {}))
        if texts:
            consts.setdefault(m.group(1), []).extend(texts)
    for m in JS_SINKS.finditer(src):
        for line, text in js_scan(src, m.end(), ")", consts):
            yield rel(path), line, text
    for m in JS_MESSAGE_SET.finditer(src):
        for line, text in js_scan(src, m.end(), ",;})", consts):
            yield rel(path), line, text


# --- Python -----------------------------------------------------------------

# Where a Python message leaves the code: any raise, a call of an error,
# exception or warning class (built to be raised later), the client's error
# helpers, print(), warnings.warn(), a logger's methods and sys.stderr/stdout.
PY_SINKS = {"TokendistError", "SealError", "config_error", "_cache_refused", "print", "warn", "debug", "info",
            "warning", "error", "exception", "critical", "fail", "log"}


def py_text(node):
    """The text of a str constant or f-string (fields as %s), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "%s" for v in node.values)
    return None


def py_texts(node, consts):
    """(line, text) of the strings in an argument, and of the names in it
    that hold text (consts); a nested call's arguments are operands."""
    if isinstance(node, ast.Call):
        return
    text = py_text(node)
    if text is not None:
        yield node.lineno, text
        return
    if isinstance(node, ast.Name) and node.id in consts:
        yield from consts[node.id]
        return
    for child in ast.iter_child_nodes(node):
        yield from py_texts(child, consts)


def py_sink_args(node):
    """The arguments of a call that are a message, or None if it is no sink."""
    fn = node.func
    name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
    args = list(node.args) + [k.value for k in node.keywords if k.arg in (None, "msg", "message")]
    if name == "write" and isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Attribute) \
            and fn.value.attr in ("stderr", "stdout"):
        return args
    if name == "log":                # logger.log(level, msg, ...)
        return args[1:]
    if name in PY_SINKS or re.search(r"(?:Error|Exception|Warning)$", name):
        return args
    return None


def py_found(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    consts = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            texts = list(py_texts(node.value, {}))
            for t in targets:
                if isinstance(t, ast.Name) and texts:
                    consts.setdefault(t.id, []).extend(texts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None and not isinstance(node.exc, ast.Call):
            for line, text in py_texts(node.exc, consts):
                yield rel(path), line, text
        if not isinstance(node, ast.Call):
            continue
        args = py_sink_args(node)
        for a in args or []:
            for line, text in py_texts(a, consts):
                yield rel(path), line, text


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

    def part(self, found, prefix, least, what):
        """One part of the tree: enough messages found (are the sinks still
        seen?), none English, and no ALLOW entry of it left unused."""
        self.assertGreater(len(found), least, f"the lint found too few {what} messages: are the sinks still found?")
        used = self.check(found, prefix)
        stale = sorted(k for k in ALLOW if k[0].startswith(prefix) and k not in used)
        self.assertEqual(stale, [], "ALLOW entries that match no message any more: remove them")

    def test_c_sources(self):
        self.part([x for p in c_sources() for x in c_found(p)], "src/", 300, "C")

    def test_node_client(self):
        self.part([x for p in node_sources() for x in js_found(p)], "clients/node", 60, "Node")

    def test_python_client(self):
        self.part([x for p in python_sources() for x in py_found(p)], "clients/python", 60, "Python")

    def test_the_lint_can_fail(self):
        """The judge itself: English prose fails, Chinese, joins and names pass."""
        cases = [("listen address '%s' is not HOST:PORT", False), ("❌ 无法启动: %s", True),
                 # punctuation is not Chinese; a run of English words is English whatever else is there
                 ("cannot open the store：%s", False), ("…please restart the server。", False),
                 ("错误: the refresher stopped because the app secret is wrong", False),
                 # names, quoted library text and short English inside Chinese are not
                 ("❌ Gitee token获取失败: %s", True), ("access token 和 jsapi_ticket 请用不同的缓存文件", True),
                 ("路径不对: 服务端没有 %s 这个地址 (HTTP 404 Not found)", True),
                 ("地址 %s 已被占用 (address already in use)：先停止它", True),
                 ("withToken(client, fn): fn 必须是函数", True), ("请运行 pip install 'tokendist-client[sealed]'", True),
                 ("%s: %s", True), ("HTTP %ld", True), ("tokendist get: %s\n", True),
                 ("(none)", False), ("--tls-cert (TOKENDIST_TLS_CERT)", True),
                 ("field 'access_token' is empty", False), ("…/release/get-token", True)]
        for text, ok in cases:
            self.assertEqual(not judge([("x.c", 1, text)])[0], ok, text)

    def test_the_adversary_plants_are_caught(self):
        """The 17 plants of issue #14's adversary (finding 2): English that
        an earlier lint let through, each at a sink the code really uses."""
        planted = {
            "x.c": ('#define GONE_WHY "the store has gone away"\n'
                    'static const char *const WHYS[] = {"the lease was lost", "无"};\n'
                    'static void f(char *err, size_t errlen, char *buf, size_t len, size_t n) {\n'
                    '    char reason[64];\n'
                    '    td_log("cannot open the store：%s", why);\n'
                    '    td_log("…please restart the server。");\n'
                    '    snprintf(err, errlen, "错误: the refresher stopped because the app secret is wrong");\n'
                    '    td_log("%s: %s", GONE_WHY, WHYS[1]);\n'
                    '    snprintf(reason, sizeof reason, "bad reply from the server");\n'
                    '    snprintf(buf, len, "(%zu chars)", n);\n'
                    '    dprintf(2, "cannot write the cache\\n");\n'
                    '    perror("open failed");\n}\n', c_found),
            "x.cjs": ("process.stderr.write('token fetch failed\\n');\n"
                      "throw new SyntaxError('the record is not JSON');\n"
                      "const msg = 'no usable source left';\nthrow new Error(msg);\n"
                      "throw Object.assign(new Error(), { message: 'the cache is corrupt', code: 'EX' });\n", js_found),
            "x.py": ('import logging, sys\n'
                     'def f():\n'
                     '    raise OSError("cannot read the cache file")\n'
                     '    raise Exception("unexpected answer from the server")\n'
                     '    raise KeyError("no such token name")\n'
                     '    sys.stderr.write("token fetch failed\\n")\n'
                     '    logger.log(logging.WARNING, "the server is slow")\n', py_found),
        }
        want = {"x.c": ["cannot open the store：%s", "…please restart the server。",
                        "错误: the refresher stopped because the app secret is wrong", "the store has gone away",
                        "the lease was lost", "bad reply from the server", "(%zu chars)",
                        "cannot write the cache\n", "open failed"],
                "x.cjs": ["token fetch failed\n", "the record is not JSON", "no usable source left",
                          "the cache is corrupt"],
                "x.py": ["cannot read the cache file", "unexpected answer from the server", "no such token name",
                         "token fetch failed\n", "the server is slow"]}
        self.assertEqual(sum(len(w) for w in want.values()) - 1, 17)   # WHYS is one plant: a constant's text
        for name, found in self.scan_planted(planted).items():
            self.assertEqual(sorted(found), sorted(repr(w) for w in want[name]), name)

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
        for name, found in self.scan_planted(planted).items():
            self.assertEqual(found, [repr(w) for w in want[name]], name)

    @staticmethod
    def scan_planted(planted):
        """{file name: (text, scanner)} -> {file name: the strings its
        scanner reports as English, in the order found}."""
        out = {}
        with tempfile.TemporaryDirectory() as d:
            for name, (text, scan) in planted.items():
                path = os.path.join(d, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                bad, _ = judge(list(scan(path)))
                out[name] = [b.split(": ", 1)[1] for b in bad]
        return out


if __name__ == "__main__":
    unittest.main()
