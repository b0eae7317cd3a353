/*
 * main -- the tokendist binary: one program, one subcommand per job.
 *
 * The command line's face lives here: the commands with what each does and
 * what its exit codes mean (for --help), the settings every command loads
 * first (td_cmd_config), and the answers to a misspelt command.  Options
 * themselves are declared in config.c's table.
 */
#include "clock.h"
#include "cmd.h"
#include "log.h"
#include "tokens.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    unsigned bit;               /* TD_CMD_*: the settings it reads */
    const char *args;           /* after "tokendist NAME" in the usage line */
    const char *summary;        /* one line, for tokendist --help */
    const char *what;           /* what it does, for its own --help */
    const char *exits;          /* "  N  meaning" lines */
} command;

#define EXIT_USAGE_LINE "  2  选项或设置有误 (消息会指出是哪一个、来自哪里、应该怎么写)；此时什么都没有启动\n"
#define EXIT_CLIENT_LINES                                                       \
    "  3  没有任何来源有足够有效期的 token\n"                                   \
    "  4  读取密钥或 Gitee 令牌被拒绝，或共享密钥打不开 Gitee 上的加密副本\n" \
    "  5  来源连不上，或答了 HTTP 错误\n"

static const command commands[] = {
    {"serve", td_cmd_serve, TD_CMD_SERVE, "[选项]",
     "运行分发服务 (配置了飞书应用凭证时，同时在进程内刷新 token)",
     "运行分发服务: 在 --listen 上提供 GET/POST /release/get-token (以及 /v1/tokens/NAME、/status、/metrics)，"
     "token 存在 --store 里。\n配置了飞书应用凭证 (--app-id、--app-secret) 时，刷新器在进程内运行，"
     "在飞书的续期窗口内取新 token，写入本地存储并推送到其他分发目标。",
     "  0  收到 SIGTERM 或 SIGINT 后正常停止\n"
     "  1  无法启动 (存储打不开、端口被占用…) 或运行中出错\n" EXIT_USAGE_LINE},
    {"get", td_cmd_get, TD_CMD_GET, "[选项]",
     "打印当前的 token (TOKEN=$(tokendist get))；--json 打印整条记录",
     "打印当前的 token，供脚本使用 (TOKEN=$(tokendist get))；--json 打印整条记录。\n"
     "依次尝试每个 --url，然后是 Gitee 上的文件，最后是 --cache 文件；stdout 只有 token，消息都在 stderr。",
     "  0  已打印 token\n"
     "  1  其他错误\n" EXIT_USAGE_LINE EXIT_CLIENT_LINES},
    {"files", td_cmd_files, TD_CMD_FILES, "list|download --chat oc_… [选项]",
     "列出或下载飞书群里的文件 (用分发的 tenant token)",
     "列出 (list) 或下载 (download) 飞书群里的文件；tenant token 从分发地址获取，与 get 相同。\n"
     "list 每行打印: 时间、文件名、message_id、file_key。download 下载到 --out，按 file_key "
     "跳过下载过的文件，可以放心地由 cron 反复运行。",
     "  0  完成 (download: 没有文件下载失败)\n"
     "  1  有文件下载失败或无法写入 --out，或其他错误\n" EXIT_USAGE_LINE EXIT_CLIENT_LINES
     "  6  token 已取到，但飞书开放平台连不上、拒绝了 tenant token、限流或返回了错误\n"},
    {"refresh", td_cmd_refresh, TD_CMD_REFRESH, "[--once] [选项]",
     "从飞书获取 token 并推送到每个分发目标 (--once: 只运行一轮)",
     "从飞书获取 token 并推送到每个分发目标 (--api-url 指向的分发服务、Gitee 上的文件)，再通知群里。\n"
     "一直运行到 SIGTERM 或 SIGINT，在飞书的续期窗口内刷新；--once 只运行一轮就退出。",
     "  0  正常停止；--once: 每个 token 都至少送到了一个分发目标\n"
     "  1  --once: 有 token 没有送到任何分发目标；或无法启动\n" EXIT_USAGE_LINE},
    {"scf-runtime", td_cmd_scf, TD_CMD_SCF, "[选项]",
     "作为腾讯云 SCF 事件函数 (自定义运行时) 处理请求",
     "作为腾讯云 SCF 事件函数 (自定义运行时的 bootstrap) 运行: 从 SCF_RUNTIME_API 取事件，"
     "用与 serve 相同的处理逻辑回答。\n配置了飞书应用凭证时刷新器也在这里运行 (由读请求和定时触发器驱动)，"
     "并推送到下面的分发目标。",
     "  0  只在 --help、--print-config 时\n"
     "  1  无法启动，或 SCF 运行时 API 不再可用\n"
     "  2  选项或设置有误，或不在 SCF 中运行 (SCF_RUNTIME_API 未设置)\n"},
    {"check", td_cmd_check, TD_CMD_CHECK, "[选项]",
     "按原来脚本的方式测试分发地址 (连接、上传)",
     "按原来脚本的「测试方法」测试分发地址 (TENCENT_CLOUD_API_URL): 先 GET 测试连接，"
     "再从飞书取一个真实的 token 上传 (POST)，逐行打印原来的测试报告。",
     "  0  所有测试通过\n"
     "  1  有测试未通过 (报告里有原因)\n" EXIT_USAGE_LINE},
    {"keygen", td_cmd_keygen, TD_CMD_KEYGEN, "",
     "生成一个共享密钥 (TOKENDIST_SHARE_KEY)，用于加密 Gitee 副本",
     "生成一个新的共享密钥: 32 字节随机数的 base64，只打印在 stdout 上 (TOKENDIST_SHARE_KEY=$(tokendist keygen))。\n"
     "刷新器和客户端都设置它后，Gitee 上的 token 副本以 AES-256-GCM 加密；轮换时把新密钥写在前面、"
     "旧的写在后面 (TOKENDIST_SHARE_KEY=新,旧)。",
     "  0  已打印新密钥\n"
     "  1  无法取得随机数，或无法写出\n" EXIT_USAGE_LINE},
};

#define NCOMMANDS (sizeof commands / sizeof *commands)

void td_cmd_usage(unsigned cmd, FILE *f)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const command *c = &commands[i];
        if (c->bit != cmd) continue;
        fprintf(f, "用法: tokendist %s%s%s\n\n%s\n\n", c->name, *c->args ? " " : "", c->args, c->what);
        td_config_usage(cmd, f);
        fprintf(f, "\n退出码:\n%s", c->exits);
        return;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "tokendist %s — 飞书 app_access_token 的获取、分发与使用\n\n"
               "用法: tokendist 命令 [选项]\n\n命令:\n", TD_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'tokendist 命令 --help' 列出一个命令的选项和环境变量；tokendist -V 打印版本。\n\n"
               "退出码:\n  0  成功\n  1  命令运行了，但失败了\n" EXIT_USAGE_LINE
               "  3、4、5  (get、files)、6 (files) 见它们的 --help\n");
}

int td_cmd_config(td_config *c, unsigned cmd, int argc, char **argv)
{
    char err[1024];
    int rc = td_config_load(c, cmd, argc, argv, err, sizeof err);

    if (rc == 1) {
        td_cmd_usage(cmd, stdout);
        return TD_EXIT_OK;
    }
    if (rc != TD_OK) {
        fprintf(stderr, "tokendist %s: %s\n", argv[0], err);
        return TD_EXIT_USAGE;
    }
    if (td_clock_set_zone(c->tz, err, sizeof err) != TD_OK) {
        fprintf(stderr, "tokendist %s: 时区设置 (--tz / TOKENDIST_TZ) 无效: %s\n", argv[0], err);
        return TD_EXIT_USAGE;
    }
    /* After the zone is set: the log has one clock from its first line. */
    for (size_t i = 0; i < c->warnings.n; i++) td_log("⚠️ %s", c->warnings.v[i]);
    if (c->print_config) {
        td_config_print(c, cmd, stdout);
        if (cmd & (TD_CMD_SERVE | TD_CMD_REFRESH | TD_CMD_SCF)) td_tokens_print(c, stdout);
        return TD_EXIT_OK;
    }
    return -1;
}

/* The command word was probably meant as: one it begins (serv), or the
 * nearest within the distance taken for a typo (sevre). */
static const char *near_command(const char *word)
{
    const char *best = NULL;
    size_t wl = strlen(word);
    int bd = TD_CONFIG_NEAR + 1, d;

    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *n = commands[i].name;
        if (wl >= 3 && !strncmp(word, n, wl)) return n;
        if ((d = td_config_distance(word, wl, n, strlen(n))) < bd) bd = d, best = n;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *near;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TD_EXIT_USAGE : TD_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")) {
        printf("tokendist %s\n", TD_VERSION);
        return TD_EXIT_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    if ((near = near_command(argv[1])))
        fprintf(stderr, "tokendist: 未知命令 '%s'，你是不是想写 %s？(见 tokendist --help)\n", argv[1], near);
    else
        fprintf(stderr, "tokendist: 未知命令 '%s' (见 tokendist --help)\n", argv[1]);
    return TD_EXIT_USAGE;
}
