"""The command line as an operator meets it (issue #14): exit codes as
tokendist(1) says (2 for a bad option or setting, found before anything
starts), messages in Chinese that name the setting, where it came from (an
option, an environment variable, a line of the env-file) and what to write
instead; an empty variable counts as unset; env-files with a BOM and CRLF
lines; half-configured Feishu and misspelt variable names; `-V`; each
command's `--help` in Chinese, listing only the settings the command uses
and ending with its exit codes; a misspelt option answered with the option
it resembles."""
import os
import re
import socket
import time
import unittest

from harness import ROOT, TestCase, free_port, run_cli

SECRET = "app-secret-cli-test-9f3e1d"      # the value of a misspelt variable: never printed
ENGLISH = re.compile(r"\b(the|of|to|and|or|is|with|this|that|from|for|show|Usage|Options|Commands|default|"
                     r"token is|print|run|when|each|every|file|key|seconds)\b")


def commands():
    out = run_cli("--help").stdout
    block = out.split("命令:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines()]


def listening(port):
    s = socket.socket()
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


class CliTestCase(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets.append(SECRET)
        # The environment of the machine running the tests must not reach them.
        self.base = {"TOKENDIST_ENV_FILE": "", "FEISHU_APP_ID": "", "FEISHU_APP_SECRET": "", "APP_ID": "",
                     "APP_SECRET": "", "TOKENDIST_TOKENS": "", "TOKENDIST_LISTEN": "", "TOKENDIST_STORE": ""}

    def run_tokendist(self, *args, env=None):
        return self.cli(*args, env={**self.base, **(env or {})}, cwd=self.tmp)

    def env_file(self, text, name="t.env", mode="w"):
        path = os.path.join(self.tmp, name)
        with open(path, mode) as f:
            f.write(text)
        return path

    def config(self, cmd, *args, env=None):
        r = self.run_tokendist(cmd, "--print-config", *args, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


class BadSettingsExit2(CliTestCase):
    """Each bad setting: exit 2, a Chinese message naming the setting and
    its source and what to write, and nothing started (no port, no store)."""

    def assert_refused(self, args, env=None, needles=()):
        port = free_port()
        db = os.path.join(self.tmp, "var", "never.db")
        argv = ["serve"] + list(args)
        if "--listen" not in args and "TOKENDIST_LISTEN" not in (env or {}):
            argv += ["--listen", "127.0.0.1:%d" % port]
        if "--store" not in args and "TOKENDIST_STORE" not in (env or {}):
            argv += ["--store", "sqlite:" + db]
        r = self.run_tokendist(*argv, env=env)
        self.assertEqual(r.returncode, 2, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertNotIn("已启动", r.stderr)
        self.assertFalse(os.path.exists(db), "the store was opened before the settings were checked")
        self.assertFalse(listening(port))
        return r.stderr

    def test_listen_not_host_port(self):
        err = self.assert_refused(["--listen", "abc"], needles=["选项 --listen", "'abc'", "HOST:PORT",
                                                                "127.0.0.1:9000"])
        self.assertNotIn("listen address", err)       # no English

    def test_listen_port_out_of_range(self):
        self.assert_refused(["--listen", "127.0.0.1:99999"], needles=["--listen", "'127.0.0.1:99999'", "65535"])

    def test_listen_from_environment_is_named(self):
        self.assert_refused([], env={"TOKENDIST_LISTEN": "127.0.0.1"},
                            needles=["环境变量 TOKENDIST_LISTEN", "HOST:PORT"])

    def test_store_without_scheme_says_what_to_write(self):
        self.assert_refused(["--store", "/tmp/x.db"], needles=["选项 --store", "sqlite:/tmp/x.db"])

    def test_store_unknown_scheme_and_empty_sqlite_path(self):
        self.assert_refused(["--store", "mysql://h/db"], needles=["--store", "mysql"])
        self.assert_refused(["--store", "sqlite:"], needles=["--store", "sqlite:./var/tokendist.db"])

    def test_store_url_password_is_not_shown(self):
        err = self.assert_refused(["--store", "redis://:%s@127.0.0.1:port/0" % SECRET], needles=["--store"])
        self.assertNotIn(SECRET, err)

    def test_env_file_line_is_named(self):
        path = self.env_file("# tokendist\n\nTOKENDIST_STORE=/var/lib/x.db\n")
        self.assert_refused(["--env-file", path], env={"TOKENDIST_STORE": ""},
                            needles=["%s 第 3 行的 TOKENDIST_STORE" % path, "sqlite:/var/lib/x.db"])

    def test_number_and_bool(self):
        self.assert_refused(["--conn-limit", "0"], needles=["选项 --conn-limit", "16 到 1000000"])
        self.assert_refused([], env={"TOKENDIST_BODY_LIMIT": "12abc"},
                            needles=["环境变量 TOKENDIST_BODY_LIMIT", "'12abc'", "整数"])
        self.assert_refused([], env={"TENCENT_CLOUD_ENABLED": "perhaps"},
                            needles=["环境变量 TENCENT_CLOUD_ENABLED", "true 或 false"])

    def test_per_token_settings_stop_the_start(self):
        """TOKENDIST_TOKENS names a token it does not set up: refused before
        the store is opened or the port taken, not after."""
        self.assert_refused([], env={"TOKENDIST_TOKENS": "wx"}, needles=["TOKENDIST_WX_PROVIDER"])

    def test_gitee_sink_half_set(self):
        self.assert_refused([], env={"FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": SECRET,
                                     "ENABLE_GITEE_TOKEN_SHARE": "true", "GITEE_OWNER": "",
                                     "GITEE_REPO": "", "GITEE_ACCESS_TOKEN": ""},
                            needles=["ENABLE_GITEE_TOKEN_SHARE", "GITEE_OWNER"])

    def test_files_times_and_chat(self):
        r = self.run_tokendist("files", "list", "--chat", "oc_x", "--url", "http://127.0.0.1:1/x", "--since", "yesterday")
        self.assertEqual(r.returncode, 2)
        self.assertIn("选项 --since 的值无效: 'yesterday' 不是时间", r.stderr)
        r = self.run_tokendist("files", "list", "--url", "http://127.0.0.1:1/x", env={"FEISHU_CHAT_ID": ""})
        self.assertEqual(r.returncode, 2)
        self.assertIn("缺少 --chat", r.stderr)

    def test_redis_url_message_is_chinese(self):
        r = self.run_tokendist("serve", "--store", "redis://h:6379/0?db=1", "--print-config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("选项 --store 的值无效: Redis 存储 URL 只有一个参数: ?prefix=NAMESPACE", r.stderr)

    def test_get_field(self):
        r = self.run_tokendist("get", "--url", "http://127.0.0.1:1/release/get-token", "--field", "refresh_token")
        self.assertEqual(r.returncode, 2)
        self.assertIn("选项 --field 的值无效: 'refresh_token'", r.stderr)
        self.assertIn("access_token 或 tenant_access_token", r.stderr)


class Options(CliTestCase):
    def test_misspelt_option_is_answered_with_the_right_one(self):
        r = self.run_tokendist("serve", "--lisen", "127.0.0.1:1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("未知选项 --lisen，你是不是想写 --listen？", r.stderr)
        r = self.run_tokendist("get", "--min-remainig", "5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("你是不是想写 --min-remaining？", r.stderr)

    def test_option_of_another_command(self):
        r = self.run_tokendist("get", "--listen", "127.0.0.1:1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--listen 不是 get 的选项", r.stderr)
        self.assertIn("serve", r.stderr)

    def test_unknown_option_and_stray_word(self):
        r = self.run_tokendist("serve", "--frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("未知选项 --frobnicate", r.stderr)
        self.assertNotIn("你是不是想写", r.stderr)
        r = self.run_tokendist("get", "oops")
        self.assertEqual((r.returncode, "'oops'" in r.stderr), (2, True), r.stderr)
        r = self.run_tokendist("serve", "--store")
        self.assertEqual(r.returncode, 2)
        self.assertIn("选项 --store 缺少值", r.stderr)

    def test_version_short_and_long(self):
        long, short = run_cli("--version"), run_cli("-V")
        self.assertEqual((long.returncode, short.returncode), (0, 0), short.stderr)
        self.assertRegex(short.stdout, r"^tokendist \d+\.\d+\.\d+\n$")
        self.assertEqual(short.stdout, long.stdout)

    def test_unknown_command(self):
        r = run_cli("serv")
        self.assertEqual(r.returncode, 2)
        self.assertIn("未知命令 'serv'，你是不是想写 serve？", r.stderr)


class EmptyMeansUnset(CliTestCase):
    """One rule: an empty variable (or env-file value) is as if it were not
    there -- the next source down applies."""

    def test_empty_environment_variable(self):
        cfg = self.config("serve", env={"TOKENDIST_LISTEN": "", "TENCENT_CLOUD_ENABLED": "",
                                        "TOKENDIST_BODY_LIMIT": ""})
        self.assertEqual(cfg["TOKENDIST_LISTEN"], "127.0.0.1:9000")
        self.assertEqual(cfg["TENCENT_CLOUD_ENABLED"], "true")
        self.assertEqual(cfg["TOKENDIST_BODY_LIMIT"], "65536")

    def test_empty_variable_does_not_hide_the_env_file(self):
        path = self.env_file("TOKENDIST_LISTEN=127.0.0.1:7001\n")
        cfg = self.config("serve", "--env-file", path, env={"TOKENDIST_LISTEN": ""})
        self.assertEqual(cfg["TOKENDIST_LISTEN"], "127.0.0.1:7001")

    def test_empty_env_file_value(self):
        path = self.env_file("TOKENDIST_LISTEN=\nTOKENDIST_HISTORY=\n")
        cfg = self.config("serve", "--env-file", path)
        self.assertEqual((cfg["TOKENDIST_LISTEN"], cfg["TOKENDIST_HISTORY"]), ("127.0.0.1:9000", "20"))


class EnvFileEncodings(CliTestCase):
    def test_bom_and_crlf(self):
        path = self.env_file("\ufeffTOKENDIST_LISTEN=127.0.0.1:7003\r\n"
                             "TOKENDIST_CORS_ORIGIN=\"https://a.example\"\r\n"
                             "# note\r\nTOKENDIST_HISTORY=7\r\n", mode="w")
        with open(path, "rb") as f:
            self.assertTrue(f.read().startswith(b"\xef\xbb\xbfTOKENDIST_LISTEN="))
        cfg = self.config("serve", "--env-file", path)
        self.assertEqual(cfg["TOKENDIST_LISTEN"], "127.0.0.1:7003")
        self.assertEqual(cfg["TOKENDIST_CORS_ORIGIN"], "https://a.example")
        self.assertEqual(cfg["TOKENDIST_HISTORY"], "7")

    def test_syntax_error_names_file_and_line(self):
        path = self.env_file("TOKENDIST_LISTEN=127.0.0.1:1\nTOKENDIST LISTEN\n")
        r = self.run_tokendist("serve", "--env-file", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("env-file %s 第 2 行" % path, r.stderr)
        self.assertIn("KEY=VALUE", r.stderr)

    def test_missing_env_file(self):
        r = self.run_tokendist("get", "--env-file", "/no/such.env")
        self.assertEqual(r.returncode, 2)
        self.assertIn("无法读取 env-file /no/such.env", r.stderr)
        self.assertIn("文件不存在", r.stderr)


class MalformedUrlsExit2(CliTestCase):
    """A malformed address is a settings error (exit 2) naming the setting,
    its source and how to write it -- not a network error (exit 5) after a
    request was tried."""

    FEISHU = {"FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": SECRET,
              "TENCENT_CLOUD_API_URL": "http://127.0.0.1:9/release/get-token"}

    def refused(self, cmd, *args, env=None, needles=()):
        r = self.run_tokendist(cmd, *args, env={**self.FEISHU, **(env or {})})
        self.assertEqual(r.returncode, 2, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertNotIn("网络错误", r.stderr)
        self.assertNotIn("请求失败", r.stderr)
        return r.stderr

    def test_env_file_comment_after_the_url(self):
        path = self.env_file("TENCENT_CLOUD_API_URL=http://127.0.0.1:9/release/get-token  # 生产环境\n")
        for cmd in ("refresh", "get", "check"):
            self.refused(cmd, "--env-file", path, needles=["%s 第 1 行的 TENCENT_CLOUD_API_URL" % path,
                                                           "env-file 的值没有行尾注释", "单独一行"])

    def test_port_ipv6_and_missing_host(self):
        for url, what in (("http://127.0.0.1:99999", "1 到 65535"), ("http://127.0.0.1:0/x", "1 到 65535"),
                          ("http://[::1/release/get-token", "IPv6"), ("http:///release/get-token", "没有主机名")):
            self.refused("refresh", "--once", "--api-url", url, needles=["选项 --api-url", "'%s'" % url, what])
            self.refused("get", "--url", url, needles=["选项 --url", what])
        self.refused("get", env={"TENCENT_CLOUD_API_URL": "http://h:99999/"},
                     needles=["环境变量 TENCENT_CLOUD_API_URL", "1 到 65535"])
        self.refused("refresh", "--once", env={"FEISHU_BASE_URL": "https://open.feishu.cn:123456"},
                     needles=["环境变量 FEISHU_BASE_URL", "1 到 65535"])
        self.refused("files", "list", "--chat", "oc_x", env={"FEISHU_BASE_URL": "http:///x"},
                     needles=["FEISHU_BASE_URL", "没有主机名"])

    def test_webhook_address_is_never_shown(self):
        err = self.refused("refresh", "--once",
                           env={"FEISHU_WEBHOOK_URL": "https://h:99999/open-apis/bot/v2/hook/%s" % SECRET},
                           needles=["环境变量 FEISHU_WEBHOOK_URL", "1 到 65535"])
        self.assertNotIn("hook/", err)

    def test_per_token_url(self):
        self.refused("refresh", "--once", env={"TOKENDIST_TOKENS": "wx", "TOKENDIST_WX_PROVIDER": "wechat",
                                               "TOKENDIST_WX_APP_ID": "wx1", "TOKENDIST_WX_APP_SECRET": SECRET,
                                               "TOKENDIST_WX_API_URL": "http://[::1/x"},
                     needles=["TOKENDIST_WX_API_URL", "IPv6"])


class HalfConfiguredFeishu(CliTestCase):
    def test_serve_names_the_missing_half_and_the_typo_and_runs(self):
        srv = self.server(env={**self.base, "FEISHU_APP_ID": "cli_half", "FEISHU_APP_SECERT": SECRET}).start()
        self.assertEqual(srv.get("/healthz").status, 200)
        log = self.wait_log(srv, "你是不是想写 FEISHU_APP_SECRET？")
        self.assertIn("设置了 FEISHU_APP_ID，缺少 FEISHU_APP_SECRET", log)
        self.assertIn("环境变量 FEISHU_APP_SECERT", log)
        self.assertIn("不自行刷新", log)

    def test_serve_secret_without_id(self):
        srv = self.server(env={**self.base, "FEISHU_APP_SECRET": SECRET}).start()
        log = self.wait_log(srv, "缺少 FEISHU_APP_ID")
        self.assertIn("设置了 FEISHU_APP_SECRET", log)

    def test_refresh_exits_2_naming_the_missing_half(self):
        r = self.run_tokendist("refresh", "--once", env={"FEISHU_APP_ID": "cli_half", "FEISHU_APP_SECERT": SECRET})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("缺少 FEISHU_APP_SECRET", r.stderr)
        self.assertIn("你是不是想写 FEISHU_APP_SECRET？", r.stderr)
        r = self.run_tokendist("refresh", "--once", env={"FEISHU_APP_SECRET": SECRET})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("缺少 FEISHU_APP_ID", r.stderr)

    def test_typos_in_the_env_file_are_named_by_line(self):
        path = self.env_file("FEISHU_APP_ID=cli_half\nFEISHU_APP_SECERT=%s\nGITEE_OWNR=me\nUNRELATED_THING=1\n"
                             "TOKENDIST_LISEN=127.0.0.1:1\n" % SECRET)
        r = self.run_tokendist("refresh", "--once", "--env-file", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s 第 2 行的 FEISHU_APP_SECERT" % path, r.stderr)
        self.assertIn("你是不是想写 GITEE_OWNER？", r.stderr)
        self.assertIn("你是不是想写 TOKENDIST_LISTEN？", r.stderr)
        self.assertNotIn("UNRELATED_THING", r.stderr)

    def test_typo_warnings_use_the_log_clock(self):
        """The typo warnings come before the time zone is read, and must
        still be stamped in TOKENDIST_TZ like every later line."""
        before = time.gmtime().tm_hour
        r = self.run_tokendist("refresh", "--once", env={"TZ": "UTC", "TOKENDIST_TZ": "Asia/Shanghai",
                                                         "FEISHU_APP_ID": "cli_half", "FEISHU_APP_SECERT": SECRET})
        stamps = {}
        for line in r.stderr.splitlines():
            m = re.match(r"^\[\d{4}-\d\d-\d\d (\d\d):\d\d:\d\d\] ", line)
            if m:
                stamps[line] = int(m.group(1))
        warn = [h for l, h in stamps.items() if "你是不是想写 FEISHU_APP_SECRET" in l]
        self.assertEqual(len(warn), 1, r.stderr)
        # Asia/Shanghai is UTC+8 (the run may cross the hour).
        self.assertIn(warn[0], ((before + 8) % 24, (time.gmtime().tm_hour + 8) % 24), r.stderr)

    def test_per_token_typo(self):
        r = self.run_tokendist("serve", "--print-config",
                               env={"TOKENDIST_TOKENS": "wx", "TOKENDIST_WX_APP_SECERT": SECRET})
        self.assertIn("你是不是想写 TOKENDIST_WX_APP_SECRET？", r.stderr)

    def test_known_and_unrelated_variables_are_quiet(self):
        r = self.run_tokendist("serve", "--print-config",
                               env={"FEISHU_APP_ID": "cli_x", "FEISHU_APP_SECRET": SECRET, "GITEE_OWNER": "me",
                                    "TOKENDIST_TEST_CLOCK_FILE": "", "FEISHU_SOMETHING_ELSE_ENTIRELY": "1"})
        self.assertEqual(r.returncode, 0)
        self.assertNotIn("你是不是想写", r.stderr)


class Help(CliTestCase):
    def help(self, *cmd):
        r = self.run_tokendist(*cmd, "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout

    @staticmethod
    def options(text):
        return re.findall(r"(?m)^  (--[a-z][a-z0-9-]*)", text)

    def test_every_help_is_chinese_and_ends_with_exit_codes(self):
        top = self.help()
        self.assertIn("用法: tokendist 命令 [选项]", top)
        self.assertIsNone(ENGLISH.search(top), top)
        cmds = commands()
        self.assertIn("keygen", cmds)
        for cmd in cmds:
            text = self.help(cmd)
            self.assertTrue(text.startswith("用法: tokendist %s" % cmd), cmd)
            prose = re.sub(r"\[[A-Z0-9_]+\]|\(默认: [^)]*\)|--[a-z0-9-]+|[A-Z][A-Z0-9_]{2,}|env-file|\"[^\"]*\"", "", text)
            self.assertIsNone(ENGLISH.search(prose), "%s --help: %r" % (cmd, ENGLISH.search(prose)))
            blocks = text.rstrip("\n").split("\n\n")
            self.assertTrue(blocks[-1].startswith("退出码:\n"), cmd)
            self.assertRegex(blocks[-1], r"(?m)^  0 ", cmd)
            self.assertRegex(blocks[-1], r"(?m)^  2 ", cmd)
            self.assertGreater(len(blocks[1]), 20, "%s: says what it does" % cmd)

    def test_each_command_lists_only_what_it_uses(self):
        files = self.options(self.help("files"))
        for opt in ("--app-id", "--app-secret", "--chat-id", "--once", "--listen"):
            self.assertNotIn(opt, files)
        # --gitee: read Gitee although ENABLE_GITEE_TOKEN_SHARE=false says the producer does not share there
        for opt in ("--chat", "--url", "--key", "--feishu-base-url", "--gitee", "--gitee-owner", "--out"):
            self.assertIn(opt, files)
        get = self.options(self.help("get"))
        self.assertIn("--gitee", get)
        self.assertIn("--gitee-owner", get)
        check = self.options(self.help("check"))
        for opt in ("--chat-id", "--webhook-url", "--gitee", "--gitee-owner", "--tokens", "--retry-min"):
            self.assertNotIn(opt, check)
        for opt in ("--api-url", "--api-key", "--app-id", "--app-secret"):
            self.assertIn(opt, check)
        serve = self.options(self.help("serve"))
        for opt in ("--listen", "--store", "--app-id", "--api-url", "--gitee"):
            self.assertIn(opt, serve)
        self.assertEqual(self.options(self.help("keygen")), ["--help"])

    def test_get_help_lists_its_exit_codes(self):
        text = self.help("get")
        for code in ("3", "4", "5"):
            self.assertRegex(text.split("退出码:")[1], r"(?m)^  %s " % code)

    def test_help_wins_over_bad_settings(self):
        r = self.run_tokendist("serve", "--help", env={"TOKENDIST_LISTEN": "abc"})
        self.assertEqual(r.returncode, 0, r.stderr)


class ManPagesSayWhichCommandReadsWhat(unittest.TestCase):
    """The commands in brackets after each option of tokendist(1) and each
    variable of tokendist.env(5) are those whose --help lists the option
    (全部: every command that reads settings)."""
    ORDER = ["serve", "refresh", "get", "files", "check", "scf-runtime"]

    def expected(self, opt):
        cmds = [c for c in self.ORDER if opt in self.have[c]]
        return "全部" if len(cmds) == len(self.ORDER) else ", ".join(cmds)

    def setUp(self):
        self.have = {c: set(Help.options(run_cli(c, "--help").stdout)) for c in self.ORDER}

    def test_tokendist_1(self):
        with open(os.path.join(ROOT, "man", "tokendist.1"), encoding="utf-8") as f:
            text = f.read()
        text = text[text.index(".SH 选项"):text.index(".SH 退出状态")]
        pairs = re.findall(r"(?m)^\.TP\n\.BI? ((?:\\-|[a-z0-9])+)[^\n]*\n(?:(?!\.TP\n)[^\n]*\n)*?\[(全部|[a-z, -]+)\]$", text)
        self.assertGreater(len(pairs), 50)
        wrong = ["%s: [%s], --help: [%s]" % (o.replace("\\-", "-"), cmds, self.expected(o.replace("\\-", "-")))
                 for o, cmds in pairs if o != "\\-\\-help" and cmds != self.expected(o.replace("\\-", "-"))]
        self.assertEqual(wrong, [])

    def test_tokendist_env_5(self):
        with open(os.path.join(ROOT, "man", "tokendist.env.5"), encoding="utf-8") as f:
            text = f.read()
        pairs = re.findall(r"\[((?:\\-|[a-z0-9])+); (全部|[a-z, -]+)\]", text)
        self.assertGreater(len(pairs), 50)
        wrong = ["%s: [%s], --help: [%s]" % (o.replace("\\-", "-"), cmds, self.expected(o.replace("\\-", "-")))
                 for o, cmds in pairs if cmds != self.expected(o.replace("\\-", "-"))]
        self.assertEqual(wrong, [])


if __name__ == "__main__":
    unittest.main()
