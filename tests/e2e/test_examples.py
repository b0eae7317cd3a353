"""Every example in the docs runs as written.

Which: every fenced block whose language is sh/bash/shell, js/javascript or
python/py in README.md, README.en.md, docs/*.md and clients/*/README.md; and
every example block of the man pages (man/*.[1-9]: `.EX`/`.EE` or `.nf`/`.fi`),
which is sh -- as the reader sees it: the roff escapes it may use (\-, \e,
\(aq, \(dq, ...) are turned into their characters, any other one fails the
test, and test_man_blocks_are_what_the_reader_sees checks the result against
groff's rendering.

Markers, an HTML comment on the line right before the fence:
  <!-- no-run: WHY -->  the block is not run, and WHY says why (it needs
                        Tencent Cloud, systemd, root, installs packages, keeps
                        running in the foreground, ...).  WHY is required.
  <!-- prelude -->      the block runs, and is also put in front of every later
                        block of its language in the same file, as the reader
                        has it in their program already (the seed's CONFIG, the
                        one client they create).
In a man page, a roff comment on the line right before the block's `.EX`:
  .\" no-run: WHY      as above.
  .\" file: PATH       the block is not a script but the file PATH (an
                        env-file, say): it is not run, but written (0600)
                        before each later block of the same page runs --
                        each later one at the same PATH replaces it.  PATH
                        is relative to the clone, or under /etc/tokendist/,
                        which is a folder of the temp folder (SUBSTITUTIONS).
A block without a marker that fails fails this test, named by file and line.
TOKENDIST_EXAMPLES_VERBOSE=1 prints what every block printed;
TOKENDIST_EXAMPLES_ONLY=man/ runs only the files whose path starts so.

How a block runs: sh with `bash -e -o pipefail` (a failing command fails the
block, as in a script), js as a CommonJS file with `node`, python as a file
with `python3`; each in its own process group, killed when the block is done
(so `./scripts/run &` leaves nothing behind), within DEADLINE.

Where: in a fresh clone -- a temp folder whose top-level entries are links to
the repository's, except `build`, which links to the build under test, and
what a run writes (var/, tokendist.env, …), which is not there.  So what a
block writes lands in the temp folder and the tree is never touched.  HOME
is an empty temp folder; PATH starts with the build, so `tokendist` is the
built binary, as if installed; the clients are "installed" as their READMEs
say (`npm install ./clients/node`, `pip install ./clients/python`) by a link
node_modules/tokendist-client and PYTHONPATH, without a registry.  Nothing
else of this process's environment is passed on.

What it talks to (all on 127.0.0.1):
  * the Feishu double (FEISHU_BASE_URL) knowing the docs' placeholder app
    `cli_xxx` with secret `…`, and the group `oc_xxx` holding one file;
  * the Gitee double (GITEE_BASE_URL) knowing the seed's placeholders:
    token `your_gitee_token`, repository `your_username/your_repo_name`;
  * the WeChat double;
  * a tokendist server on PORT.  A block that starts one itself (it names
    `scripts/run` or `tokendist serve`) gets TOKENDIST_LISTEN=127.0.0.1:PORT
    and nothing else; for every other block the test starts `tokendist
    serve` on PORT, with the docs' placeholder push key `PUSH_KEY`, holding
    a token the Feishu double minted as `default` (generated a minute ago)
    and one the WeChat double minted as `wx`.

The only changes made to a block's text (SUBSTITUTIONS): the server's
address in the forms the docs use (`127.0.0.1:9000`, `0.0.0.0:9000`,
`https://host`, `https://…`, `https://tokendist.example.com`, the seed's
`https://your-api-gateway-url.tencentcloudapi.com`, SCF's
`https://xxxx.ap-guangzhou.tencentscf.com`) becomes http://127.0.0.1:PORT
(a listen address: 127.0.0.1:PORT), Feishu's, Gitee's and WeChat's API
addresses become their doubles', and /etc/tokendist/ (the system's settings
folder the man pages' examples use) becomes a folder of the temp folder.
"""
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import DEADLINE, ROOT
from feishu import DEFAULT_APP_ID, DEFAULT_APP_SECRET, FeishuDouble
from gitee import GiteeDouble
from wechat import DEFAULT_APPID as WX_APPID, DEFAULT_SECRET as WX_SECRET, WeChatDouble

DOCS = ["README.md", "README.en.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))) + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "clients", "*", "README.md")))
MAN_PAGES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "man", "*.[1-9]")))
LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "js": "js", "javascript": "js",
         "python": "python", "py": "python"}
FENCE = re.compile(r"^(\s*)```\s*([A-Za-z0-9_+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(no-run|prelude)\s*(?::\s*(.*?))?\s*-->\s*$")
STARTS_SERVER = re.compile(r"scripts/run\b|tokendist serve\b")
# A man page's example blocks, their end, the marker before one, and the
# roff escapes an example may use, as the reader sees them.
ROFF_BLOCK = re.compile(r"^\.(EX|nf)\s*$")
ROFF_END = {"EX": re.compile(r"^\.EE\s*$"), "nf": re.compile(r"^\.fi\s*$")}
ROFF_MARKER = re.compile(r'^\.\\"\s*(no-run|file)\s*:\s*(.*?)\s*$')
ROFF_ESCAPES = {"-": "-", "e": "\\", "(rs": "\\", "(aq": "'", "(dq": '"', "(ga": "`", "(ti": "~",
                "(ha": "^", "&": "", ":": "", " ": " ", "~": " ", "fB": "", "fI": "", "fR": "",
                "fP": ""}
ROFF_ESCAPE = re.compile(r"\\(\(..|f.|.)")
SYSTEM_DIR = "/etc/tokendist/"      # the settings folder of the installed system

# The docs' placeholders the doubles and the server know.
APP_ID, APP_SECRET, CHAT = "cli_xxx", "…", "oc_xxx"
PUSH_KEY = "PUSH_KEY"
GITEE_TOKEN, GITEE_REPO = "your_gitee_token", "your_username/your_repo_name"
# What a fresh clone has no copy of: build products and what a run writes.
NOT_IN_CLONE = {".git", "var", "tokendist.env", "tokendist-scf.zip", "node_modules"}


def substitutions(port, feishu, gitee, wechat, root):
    server = "http://127.0.0.1:%d" % port
    return [
        (re.compile(r"(?<![\w./-])" + re.escape(SYSTEM_DIR)), os.path.join(root, SYSTEM_DIR.lstrip("/"))),
        (re.compile(r"\b0\.0\.0\.0:9000\b"), "127.0.0.1:%d" % port),
        (re.compile(r"https://your-api-gateway-url\.tencentcloudapi\.com"), server),
        (re.compile(r"https://tokendist\.example\.com"), server),
        (re.compile(r"https://xxxx\.ap-guangzhou\.tencentscf\.com"), server),
        (re.compile(r"https://host(?=[/'\"])"), server),
        (re.compile(r"https://…(?=/)"), server),
        (re.compile(r"\b127\.0\.0\.1:9000\b"), "127.0.0.1:%d" % port),
        (re.compile(r"https://open\.feishu\.cn"), feishu),
        (re.compile(r"https://gitee\.com/api/v5"), gitee + "/api/v5"),
        (re.compile(r"https://api\.weixin\.qq\.com"), wechat),
    ]


class Block:
    def __init__(self, path, line, lang, text, marker, reason):
        self.path, self.line, self.lang, self.text = path, line, lang, text
        self.marker, self.reason = marker, reason
        self.preludes = []          # the prelude blocks before it, in order
        self.files = []             # a man page's `file:` blocks before it, one per path

    @property
    def where(self):
        return "%s:%d" % (self.path, self.line)

    def script(self):
        return "\n".join([p.text for p in self.preludes] + [self.text]) + "\n"


def blocks(path):
    """The runnable-language blocks of one file, with their markers."""
    if path.startswith("man/"):
        return roff_blocks(path)
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, preludes = [], {}
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j]]
        if lang in LANGS:
            mk = MARKER.match(lines[i - 1]) if i else None
            b = Block(path, i + 1, LANGS[lang], "\n".join(body),
                      mk and mk.group(1), mk and (mk.group(2) or ""))
            b.preludes = list(preludes.get(b.lang, []))
            if b.marker == "prelude":
                preludes.setdefault(b.lang, []).append(b)
            out.append(b)
        i = j + 1
    return out


def unroff(line, where):
    """An example line of a man page as the reader sees it."""
    def one(m):
        if m.group(1) not in ROFF_ESCAPES:
            raise ValueError("%s: the roff escape \\%s in an example: write it as one of %s"
                             % (where, m.group(1), " ".join("\\" + e for e in ROFF_ESCAPES)))
        return ROFF_ESCAPES[m.group(1)]
    if line[:1] in (".", "'") and not line.startswith('.\\"'):
        raise ValueError("%s: a roff request inside an example block: %s" % (where, line))
    return ROFF_ESCAPE.sub(one, line)


def roff_blocks(path):
    """The example blocks of a man page, with their markers: sh, each."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, files = [], []
    i = 0
    while i < len(lines):
        m = ROFF_BLOCK.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not ROFF_END[m.group(1)].match(lines[j]):
            j += 1
        body = [unroff(line, "%s:%d" % (path, k + 1)) for k, line in enumerate(lines[i + 1:j], i + 1)
                if not line.startswith('.\\"')]
        mk = ROFF_MARKER.match(lines[i - 1]) if i else None
        b = Block(path, i + 1, "sh", "\n".join(body), mk and mk.group(1), mk and mk.group(2))
        b.files = list(files)
        if b.marker == "file":
            files = [f for f in files if f.reason != b.reason] + [b]
        out.append(b)
        i = j + 1
    return out


def fresh_clone(where, build_dir):
    """A folder that looks like a fresh clone with the build done."""
    os.makedirs(where)
    for name in os.listdir(ROOT):
        if name in NOT_IN_CLONE or name.startswith("build"):
            continue
        os.symlink(os.path.join(ROOT, name), os.path.join(where, name))
    os.symlink(build_dir, os.path.join(where, "build"))
    os.makedirs(os.path.join(where, "node_modules"))
    os.symlink(os.path.join(ROOT, "clients", "node"), os.path.join(where, "node_modules", "tokendist-client"))


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=DEADLINE) as r:
        return json.load(r)


class Examples(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.build_dir = os.path.dirname(os.path.abspath(harness.BIN))
        self.secrets.append(DEFAULT_APP_SECRET)     # the fixture's own app; the docs' is a placeholder

    def start_doubles(self):
        feishu = FeishuDouble().start()
        feishu.control({"apps": {APP_ID: APP_SECRET, DEFAULT_APP_ID: DEFAULT_APP_SECRET}, "chats": [CHAT]})
        feishu.control({"chat": CHAT, "files": [{"name": "财联社电报.txt", "data": "示例文件\n"}]})
        gitee = GiteeDouble().start()
        gitee.control({"tokens": [GITEE_TOKEN], "repo": GITEE_REPO})
        return feishu, gitee, WeChatDouble().start()

    def start_server(self, workdir, port, feishu, wechat):
        """`tokendist serve` on port taking PUSH_KEY, holding a token the
        Feishu double minted a minute ago (so a producer's record made now
        is newer) and, as `wx`, one of the WeChat double."""
        s = harness.Server(workdir, env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}, port=port,
                           store="sqlite:" + os.path.join(workdir, "server.db"))
        self.servers.append(s)
        s.start()
        got = post_json(feishu.url + "/open-apis/auth/v3/app_access_token/internal",
                        {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET})
        now = int(time.time()) - 60
        rec = harness.make_record(got["app_access_token"], generated=now, ttl=got["expire"] + 60,
                                  tenant_access_token=got["tenant_access_token"])
        r = s.post("/release/get-token", rec, key=PUSH_KEY)
        self.assertEqual(r.status, 200, r.body)
        got = post_json(wechat.url + "/cgi-bin/stable_token", {"grant_type": "client_credential", "appid": WX_APPID,
                                                               "secret": WX_SECRET, "force_refresh": False})
        rec = harness.make_record(got["access_token"], generated=now, ttl=got["expires_in"] + 60, provider="wechat")
        r = s.post("/v1/tokens/wx", rec, key=PUSH_KEY)
        self.assertEqual(r.status, 200, r.body)
        return s

    def run_block(self, b):
        """Runs b in a fresh clone with fresh doubles and server; returns
        (exit code or None on timeout, the script as run, its output)."""
        doubles = self.start_doubles()
        try:
            return self._run_block(b, *doubles)
        finally:
            for s in self.servers:
                s.stop()
            for d in doubles:
                d.stop()

    def _run_block(self, b, feishu, gitee, wechat):
        work = tempfile.mkdtemp(prefix="example-", dir=self.tmp)
        clone, home = os.path.join(work, "tokendist"), os.path.join(work, "home")
        fresh_clone(clone, self.build_dir)
        os.makedirs(home)
        port = harness.free_port()
        subs = substitutions(port, feishu.url, gitee.url, wechat.url, os.path.join(work, "root"))

        def substituted(text):
            for pat, repl in subs:
                text = pat.sub(repl, text)
            return text
        script = substituted(b.script())
        for fb in b.files:          # a man page's files before it, as the reader wrote them
            where = os.path.join(clone, substituted(fb.reason))
            os.makedirs(os.path.dirname(where), exist_ok=True)
            with open(os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
                f.write(substituted(fb.text) + "\n")
        env = {"PATH": self.build_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": work,
               "FEISHU_BASE_URL": feishu.url, "GITEE_BASE_URL": gitee.url + "/api/v5",
               "PYTHONPATH": os.path.join(ROOT, "clients", "python"), "PYTHONDONTWRITEBYTECODE": "1"}
        if STARTS_SERVER.search(script):
            env["TOKENDIST_LISTEN"] = "127.0.0.1:%d" % port
        else:
            self.start_server(work, port, feishu, wechat)
        name = {"sh": "example.sh", "js": "example.js", "python": "example.py"}[b.lang]
        with open(os.path.join(clone, name), "w", encoding="utf-8") as f:
            f.write(script)
        cmd = {"sh": ["bash", "-e", "-o", "pipefail", name], "js": ["node", name],
               "python": ["python3", name]}[b.lang]
        log = os.path.join(work, "output")
        with open(log, "wb") as out:
            p = subprocess.Popen(cmd, cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = p.wait(DEADLINE * 2)
            except subprocess.TimeoutExpired:
                rc = None
            finally:
                self.stop_group(p.pid)
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.outputs.append(text)
        return rc, script, text

    @staticmethod
    def stop_group(pgid):
        """Ends what the block left running (a server started with `&`)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)

    def test_markers_say_why(self):
        for path in DOCS + MAN_PAGES:
            for b in blocks(path):
                if b.marker == "no-run":
                    self.assertTrue(b.reason.strip(), "%s: a no-run marker says why" % b.where)

    def test_man_file_blocks_are_used(self):
        """A man page's `file:` block is a file some later block of the page
        runs with (else nothing would check it), where the test can put it."""
        files = 0
        for path in MAN_PAGES:
            bs = blocks(path)
            for i, b in enumerate(bs):
                if b.marker != "file":
                    continue
                files += 1
                self.assertTrue(b.reason.startswith(SYSTEM_DIR) or not os.path.isabs(b.reason), b.where)
                self.assertTrue(any(b in later.files and b.reason in later.text for later in bs[i + 1:]
                                    if later.marker is None), "%s: no later block uses %s" % (b.where, b.reason))
        self.assertGreaterEqual(files, 1)

    def test_man_blocks_are_what_the_reader_sees(self):
        """Each line of a man page's example, as this test runs it, is a line
        of the page as groff renders it (the escapes are read right)."""
        for path in MAN_PAGES:
            r = subprocess.run(["groff", "-k", "-man", "-Tutf8", "-rLL=4000n", "-P-c", os.path.join(ROOT, path)],
                               capture_output=True, text=True, check=True)
            shown = {line.strip() for line in re.sub(r".\x08", "", r.stdout).splitlines()}
            for b in blocks(path):
                missing = [line for line in b.text.splitlines() if line.strip() and line.strip() not in shown]
                self.assertEqual(missing, [], "%s: not what the page shows" % b.where)

    def test_every_example_runs(self):
        ran, failed, man = 0, [], 0
        only = os.environ.get("TOKENDIST_EXAMPLES_ONLY", "")
        for path in [p for p in DOCS + MAN_PAGES if p.startswith(only)]:
            for b in blocks(path):
                if b.marker in ("no-run", "file"):
                    continue
                with self.subTest(block=b.where):
                    rc, script, out = self.run_block(b)
                    ran += 1
                    man += path in MAN_PAGES
                    if os.environ.get("TOKENDIST_EXAMPLES_VERBOSE"):   # to read what each one did
                        print("\n=== %s (%s): exit %s\n%s" % (b.where, b.lang, rc, out), flush=True)
                    if rc != 0:
                        failed.append(b.where)
                        self.fail("%s (%s) %s:\n--- as run ---\n%s--- output ---\n%s" % (
                            b.where, b.lang, "timed out" if rc is None else "exited %d" % rc,
                            script, out[-4000:]))
        # The parser finds the examples (a test that runs none proves nothing).
        if not only:
            self.assertGreaterEqual(ran, 15)
            self.assertGreaterEqual(man, 6)


if __name__ == "__main__":
    unittest.main()
