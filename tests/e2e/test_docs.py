"""The man pages, the bash completion and the example env-file cannot
drift from the code: every command and option of every `--help`, and every
environment variable of the settings table (src/config.c), is in the
rendered man pages; both pages render without a groff warning, at every
terminal width, in Chinese without stray spaces, with a NAME line whatis
finds; the completion offers exactly the commands and options the binary
has; the example env-file names only real settings and parses."""
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import unittest

import harness
from harness import ROOT, TestCase, run_cli

MAN1 = os.path.join(ROOT, "man", "tokendist.1")
MAN5 = os.path.join(ROOT, "man", "tokendist.env.5")
COMPLETION = os.path.join(ROOT, "completions", "tokendist.bash")
EXAMPLE = os.path.join(ROOT, "examples", "tokendist.env")


def commands():
    out = run_cli("--help").stdout
    block = out.split("命令:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines()]


def options(cmd):
    """(option, takes_value) of `tokendist CMD --help`, in order."""
    out = run_cli(cmd, "--help").stdout
    return [(m.group(1), bool(m.group(2)))
            for m in re.finditer(r"(?m)^  (--[a-z][a-z0-9-]*)( VALUE| N)? ", out)]


def table_env_names():
    """Every environment name in the settings table, alternates included."""
    with open(os.path.join(ROOT, "src", "config.c"), encoding="utf-8") as f:
        src = f.read()
    names = []
    for m in re.finditer(r'\{"[a-z0-9-]+", \{("[A-Z0-9_]+")(?:, ("[A-Z0-9_]+"))?\}', src):
        names += [g.strip('"') for g in m.groups() if g]
    return names


def render(page, width="4000n"):
    """The page as a reader sees it, by default on one very long line per
    paragraph (so no option is split by a line break), with groff's
    warnings."""
    r = subprocess.run(["groff", "-k", "-man", "-Tutf8", "-ww", "-rLL=" + width, "-P-c", page],
                       capture_output=True, text=True)
    text = re.sub(r".\x08", "", r.stdout).replace("\u2010", "-").replace("\u2212", "-")
    return r.returncode, text, r.stderr


def section(text, name, upto):
    """The rendered section `name` (a header line of its own) of text, up to
    the section `upto`."""
    return re.split(r"(?m)^%s$" % upto, re.split(r"(?m)^%s$" % name, text, 1)[1], 1)[0]


# Chinese characters and full-width punctuation: no space belongs between
# two of them, nor after 、，。：； or an opening bracket, nor before a
# closing one -- roff makes a space of every line break in the source.
CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
STRAY_SPACE = re.compile(r"[%s] (?=[%s])|[、，。：；（「] (?=\S)|(?<=\S) [）」，。、：；]" % (CJK, CJK))


@unittest.skipUnless(shutil.which("groff"), "groff is not installed (apt-get install groff-base)")
class ManPages(TestCase):
    def test_render_without_warnings(self):
        for page in (MAN1, MAN5):
            rc, text, warnings = render(page)
            self.assertEqual((rc, warnings), (0, ""), page)
            self.assertIn("名称", text)
            if shutil.which("man"):
                # As a reader's terminal shows it: UTF-8, 80 columns (in the
                # C locale man would render the Chinese as unknown glyphs).
                r = subprocess.run(["man", "--warnings=w", "-l", page], capture_output=True, text=True,
                                   env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0",
                                            LANG="C.UTF-8", LC_ALL="C.UTF-8"))
                self.assertEqual((r.returncode, r.stderr), (0, ""), page)
                self.assertIn("名称", r.stdout)

    def test_renders_at_every_width(self):
        """groff 1.22.4 with zh.tmac loops forever on a line it cannot break
        after full-width punctuation (\\: in the source gives it a break
        point): `man` would hang in a narrow or wide terminal."""
        def finishes(job):
            page, width = job
            p = subprocess.Popen(["groff", "-k", "-man", "-Tutf8", "-rLL=%dn" % width, page],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                return p.wait(10) == 0
            except subprocess.TimeoutExpired:    # troff too, not only groff
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                return False
        jobs = [(page, width) for page in (MAN1, MAN5) for width in range(30, 161)]
        hang = []
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = {pool.submit(finishes, job): job for job in jobs}
            for f in concurrent.futures.as_completed(futures):
                if not f.result():
                    hang.append(futures[f])
                    pool.shutdown(cancel_futures=True)      # one is enough to know
                    break
        self.assertEqual(hang, [], "groff does not finish (page, line length)")

    def test_break_point_where_chinese_punctuation_meets_latin(self):
        """The rule that keeps groff from hanging (see the test above), in
        the source, by line: full-width punctuation right before Latin text
        is followed by \\: (an opening bracket: preceded by it)."""
        mid, opening = "，。、：；）」！？", "（「"
        latin = r"(?=[^%s%s\u4e00-\u9fff\s])" % (mid, opening)
        rule = re.compile(r"[%s](?!\\:)%s|(?<=\S)(?<!\\:)[%s]%s" % (mid, latin, opening, latin))
        for page in (MAN1, MAN5):
            with open(page, encoding="utf-8") as f:
                lines = f.read().split("\n")
            bare, filled = [], True         # .EX/.nf blocks are not filled: no line is broken there
            for n, line in enumerate(lines, 1):
                if re.match(r"\.(EX|nf|EE|fi)\b", line):
                    filled = bool(re.match(r"\.(EE|fi)\b", line))
                elif filled and not line.startswith((".", "'")) and rule.search(line):
                    bare.append("%s:%d" % (os.path.basename(page), n))
            self.assertEqual(bare, [], "add \\: after the full-width punctuation (before （ and 「)")

    def test_no_stray_space_in_chinese(self):
        for page in (MAN1, MAN5):
            _, text, _ = render(page)
            stray = [text[max(m.start() - 20, 0):m.end() + 10] for m in STRAY_SPACE.finditer(text)]
            self.assertEqual(stray, [], "%s: a space where the Chinese text has none" % page)

    @unittest.skipUnless(shutil.which("lexgrog"), "lexgrog is not installed (apt-get install man-db)")
    def test_whatis_finds_the_name_line(self):
        """mandb (and so whatis and apropos) reads the NAME section, here
        名称, in its `name \\- description` form."""
        for page, name in ((MAN1, "tokendist"), (MAN5, "tokendist.env")):
            r = subprocess.run(["lexgrog", page], capture_output=True, text=True,
                               env=dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8"))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, r'^%s: "%s - \S' % (re.escape(page), re.escape(name)))

    def test_every_command_and_option_in_tokendist_1(self):
        _, text, _ = render(MAN1)
        cmds = commands()
        self.assertGreaterEqual(len(cmds), 6)
        commands_section = section(text, "命令", "选项")
        missing = [c for c in cmds if not re.search(r"(?m)^\s+" + re.escape(c) + r"\b", commands_section)]
        self.assertEqual(missing, [], "commands not described in COMMANDS of tokendist.1")
        missing = []
        for cmd in cmds:
            for opt, _ in options(cmd):
                if not re.search(re.escape(opt) + r"(?![a-z-])", text):
                    missing.append("%s %s" % (cmd, opt))
        self.assertEqual(missing, [], "options of --help missing from tokendist.1")
        for opt in ("--version", "--help"):
            self.assertIn(opt, text)

    def test_every_environment_variable_in_tokendist_env_5(self):
        _, text, _ = render(MAN5)
        names = set(table_env_names())
        self.assertGreaterEqual(len(names), 45)
        for cmd in commands():
            out = run_cli(cmd, "--print-config").stdout
            names |= {line.split("=", 1)[0] for line in out.splitlines()}
        names |= {"SCF_RUNTIME_API", "SCF_RUNTIME_API_PORT", "NOTIFY_SOCKET", "WATCHDOG_USEC"}
        missing = sorted(n for n in names if not re.search(r"\b%s\b" % n, text))
        self.assertEqual(missing, [], "environment variables missing from tokendist.env.5")

    def entries(self, page):
        """{tag: body} of the rendered page's tagged paragraphs (an option
        or a variable, and what the page says of it)."""
        _, text, _ = render(page)
        out = {}
        for m in re.finditer(r"(?m)^ {7}(\S[^\n]*)\n((?: {14}[^\n]*\n|\n(?= {14}))+)", text):
            out[m.group(1).strip()] = m.group(2)
        return out

    def test_defaults_and_ranges_as_the_binary_has_them(self):
        """Each default a page states is the one --help prints, and each
        range (A 到 B) of a number the one the binary enforces."""
        man1, man5 = self.entries(MAN1), self.entries(MAN5)
        wrong, checked = [], 0
        for cmd in commands():
            for m in re.finditer(r"(?m)^  (--[a-z0-9-]+)( N| VALUE)? .*?(?:\[([A-Z0-9_]+)\])?(?: \(默认: (.*)\))?$",
                                 run_cli(cmd, "--help").stdout):
                opt, kind, env, default = m.groups()
                said = [(opt, body) for tag, body in man1.items() if tag.split()[0] == opt]
                said += [(env, body) for tag, body in man5.items() if env and env in tag.replace(",", " ").split()]
                for who, body in said:
                    if default is not None:
                        checked += 1
                        shown = "当前文件夹" if default == "." else default
                        if not re.search(r"默认：%s(?![\w.:/])|(?<![\w.:/])%s（默认）" % ((re.escape(shown),) * 2), body):
                            wrong.append("%s: 默认 %s" % (who, default))
                    span = re.search(r"(-?\d+) 到 (-?\d+)", body)
                    if kind == " N" and span:
                        checked += 1
                        r = run_cli(*([cmd] + (["list"] if cmd == "files" else []) +
                                      [opt, "99999999999", "--print-config"]))
                        enforced = re.search(r"不是 (-?\d+) 到 (-?\d+) 之间的整数", r.stderr)
                        if not enforced or enforced.groups() != span.groups():
                            wrong.append("%s: %s 到 %s, binary: %s" % (who, span.group(1), span.group(2),
                                                                      r.stderr.strip()[-60:]))
        self.assertEqual(sorted(set(wrong)), [])
        self.assertGreaterEqual(checked, 40)

    def test_version_matches_binary(self):
        version = run_cli("--version").stdout.split()[1]
        for page in (MAN1, MAN5):
            with open(page, encoding="utf-8") as f:
                th = next(line for line in f if line.startswith(".TH "))
            self.assertIn('"tokendist %s"' % version, th, page)


class Completion(TestCase):
    def complete(self, *words):
        """COMPREPLY for the command line `words`, the last one being
        completed, with the built binary first on PATH."""
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  '_tokendist; printf "%s\\n" "${COMPREPLY[@]}"')
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(harness.BIN)) + ":" + os.environ["PATH"])
        r = subprocess.run(["bash", "-c", script, "bash", COMPLETION, "tokendist"] + list(words),
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.stderr, "")
        return [w for w in r.stdout.splitlines() if w]

    def test_commands(self):
        self.assertEqual(sorted(self.complete("")), sorted(commands() + ["--help", "--version"]))
        self.assertEqual(self.complete("ref"), ["refresh"])

    def test_options_of_every_command(self):
        for cmd in commands():
            words = [cmd, "list", "--"] if cmd == "files" else [cmd, "--"]
            self.assertEqual(sorted(self.complete(*words)), sorted(o for o, _ in options(cmd)), cmd)

    def test_values(self):
        self.assertEqual(self.complete("files", ""), ["list", "download"])
        self.assertEqual(self.complete("get", "--field", "t"), ["tenant_access_token"])
        self.assertEqual(self.complete("serve", "--trusted-proxy", "127"), ["127.0.0.1/32"])
        self.assertEqual(self.complete("serve", "--listen", ""), [])     # a value, not an option
        self.assertEqual(self.complete("get", "--json", "--min-r"), ["--min-remaining"])
        self.assertIn(os.path.basename(EXAMPLE),
                      [os.path.basename(p) for p in self.complete("serve", "--env-file", EXAMPLE[:-3])])


class ExampleEnvFile(TestCase):
    def test_names_only_real_settings_and_parses(self):
        with open(EXAMPLE, encoding="utf-8") as f:
            text = f.read()
        keys = re.findall(r"(?m)^#?([A-Z][A-Z0-9_]+)=", text)
        self.assertGreaterEqual(len(keys), 20)
        self.assertEqual([k for k in keys if k not in table_env_names()], [])
        # Every line uncommented is a valid env-file for serve and refresh.
        path = os.path.join(self.tmp, "all.env")
        with open(path, "w", encoding="utf-8") as f:
            f.write(re.sub(r"(?m)^#([A-Z][A-Z0-9_]+=)", r"\1", text))
        for cmd in ("serve", "refresh"):
            r = self.cli(cmd, "--env-file", path, "--print-config", env={"TOKENDIST_STORE": ""})
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("GITEE_OWNER=your_username\n", r.stdout)


class Readmes(unittest.TestCase):
    def test_both_start_with_the_two_commands(self):
        for name in ("README.md", "README.en.md"):
            with open(os.path.join(ROOT, name), encoding="utf-8") as f:
                head = f.read().split("\n```sh\n", 1)[1].split("```", 1)[0].splitlines()
            self.assertTrue(head[0].startswith("./scripts/run "), name)
            self.assertTrue(head[1].startswith("./scripts/test "), name)


if __name__ == "__main__":
    unittest.main()
