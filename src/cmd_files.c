/*
 * cmd_files -- `tokendist files list|download`: the group chat's files,
 * with the tenant token from the distribution endpoint (the seed's
 * clients' flow: get the token, then call Feishu).
 *
 * `download` is made for cron: a file already downloaded is skipped --
 * known by Feishu's file_key in the folder's manifest (manifest.h), not by
 * its name, so a later file that reuses a name is still fetched, under a
 * name of its own -- a new one appears only complete (temporary file +
 * rename), and a run that failed half-way is finished by the next run.
 * stdout lists the paths of the files this run added; messages go to
 * stderr.  Every text from Feishu reaches the terminal escaped
 * (td_chatfile_printable), in messages always, on stdout when it is a
 * terminal (a script reading it gets the paths as they are).
 *
 * A file message that cannot be read is named (by message id) and
 * skipped, counted as failed: one bad message does not hide the files
 * after it, and the exit status says that something was left out.
 */
#define _GNU_SOURCE
#include "chatfiles.h"
#include "client.h"
#include "clock.h"
#include "cmd.h"
#include "feishu.h"
#include "log.h"
#include "manifest.h"
#include "strbuf.h"
#include "tokendist.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct run {
    td_chatfiles *cf;
    const char *out;
    int tty;
    int64_t last_progress_ms;
    td_manifest *manifest;      /* download: what the folder holds, by file_key */
    int downloaded, skipped, failed, listed;
    int unreadable;             /* file messages that could not be read (counted in failed too) */
    int stdout_tty;
    int fatal;                  /* the error that stopped the run */
} run;

/* s made safe for the terminal (td_chatfile_printable) in buf; a text
 * too long for buf (never a Feishu name: 4 bytes out per byte in) ends in
 * "…". */
static const char *printable(const char *s, char *buf, size_t len)
{
    td_strbuf b;

    td_strbuf_fixed(&b, buf, len);
    if (td_chatfile_printable(&b, s) != TD_OK && len > 4) {
        size_t o = b.len < len - 4 ? b.len : len - 4;
        while (o > 0 && ((unsigned char)buf[o] & 0xC0) == 0x80) o--;   /* not inside a character */
        memcpy(buf + o, "…", 4);
    }
    return buf;
}

#define PRINTABLE_MAX (TD_CHATFILE_NAME_MAX * 4 + 1)

static void on_progress(void *ud, const td_chatfile *f, uint64_t done)
{
    run *r = ud;
    int64_t now = td_clock_mono_ms();
    char name[64 * 4];

    if (!r->tty || now - r->last_progress_ms < 100) return;
    r->last_progress_ms = now;
    fprintf(stderr, "\r\033[K⬇️  %s  %.1f KB", printable(f->name, name, sizeof name), (double)done / 1024.0);
}

/* A file message that could not be read: named, counted, skipped. */
static int unreadable(run *r, const td_chatfile *f)
{
    char mid[TD_CHATFILE_ID_MAX * 4 + 1];

    td_log("⚠️ 跳过无法读取的文件消息 %s: %s", f->message_id[0] ? printable(f->message_id, mid, sizeof mid) : "?",
           f->problem);
    r->unreadable++;
    r->failed++;
    return TD_OK;
}

static int list_one(void *ud, const td_chatfile *f)
{
    run *r = ud;
    char when[TD_TIME_LEN], name[PRINTABLE_MAX], mid[TD_CHATFILE_ID_MAX * 4 + 1], key[TD_CHATFILE_ID_MAX * 4 + 1];

    if (f->problem[0]) return unreadable(r, f);
    printf("%s\t%s\t%s\t%s\n", td_clock_format(f->create_ms / 1000, when), printable(f->name, name, sizeof name),
           printable(f->message_id, mid, sizeof mid), printable(f->file_key, key, sizeof key));
    r->listed++;
    return TD_OK;
}

static int on_disk(const run *r, const char *name)
{
    char path[4096];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", r->out, name) < (int)sizeof path && lstat(path, &st) == 0;
}

/* The local name for a file the manifest does not know yet: its own name,
 * or, when another file has that (claimed in the manifest, or something
 * else sits there), the name with the message id's end (the same on every
 * run).  In a folder an older tokendist filled (no manifest), a file
 * already there under such a name is this one: *adopt says so.  "" when
 * both names are taken. */
static void choose_name(const run *r, const td_chatfile *f, char *name, size_t len, int *adopt)
{
    *adopt = 0;
    for (int with_id = 0; with_id < 2; with_id++) {
        td_chatfile_local_name(f, with_id, name, len);
        if (td_manifest_claimed(r->manifest, name)) continue;
        if (!on_disk(r, name)) return;
        if (!td_manifest_existed(r->manifest)) {
            *adopt = 1;
            return;
        }
    }
    name[0] = '\0';
}

/* Errors that are not about this one file: no point trying the next. */
static int stops_run(int rc)
{
    return rc == TD_ENOTFOUND || rc == TD_EEXPIRED || rc == TD_EAUTH || rc == TD_ERATELIMIT ||
           rc == TD_ENOMEM || rc == TD_EINVAL;
}

static int download_one(void *ud, const td_chatfile *f)
{
    run *r = ud;
    char name[TD_CHATFILE_LOCAL_MAX + 1], path[4096], err[2048], mid[TD_CHATFILE_ID_MAX * 4 + 1];
    char shown[PRINTABLE_MAX], eshown[sizeof err * 4];
    const char *known;
    struct stat st;
    int rc, adopt = 0;

    if (f->problem[0]) return unreadable(r, f);
    known = td_manifest_name_of(r->manifest, f->file_key);
    printable(f->message_id, mid, sizeof mid);
    if (known) {
        /* Claimed by an earlier run: there, or never finished (or removed
         * since) and fetched again under the same name. */
        snprintf(name, sizeof name, "%s", known);
    } else {
        choose_name(r, f, name, sizeof name, &adopt);
        if (!name[0]) {
            td_chatfile_local_name(f, 1, name, sizeof name);
            td_log("❌ 本地已有同名文件 %s，跳过 (%s)", printable(name, shown, sizeof shown), mid);
            r->failed++;
            return TD_OK;
        }
        if ((rc = td_manifest_add(r->manifest, f->file_key, name, err, sizeof err)) != TD_OK) {
            td_log("❌ %s", printable(err, eshown, sizeof eshown));
            r->failed++;
            r->fatal = rc;
            return rc;
        }
    }
    if (snprintf(path, sizeof path, "%s/%s", r->out, name) >= (int)sizeof path) {
        td_log("❌ 路径太长，跳过: %s", printable(name, shown, sizeof shown));
        r->failed++;
        return TD_OK;
    }
    if (adopt || (known && lstat(path, &st) == 0)) {
        r->skipped++;
        return TD_OK;
    }
    rc = td_chatfiles_download(r->cf, f, path, on_progress, r, err, sizeof err);
    if (r->tty) fputs("\r\033[K", stderr);
    if (rc != TD_OK) {
        /* err may quote the path and Feishu's message: escaped as a whole. */
        td_log("❌ 下载失败 %s (%s): %s", printable(name, shown, sizeof shown), mid,
               printable(err, eshown, sizeof eshown));
        r->failed++;
        if (stops_run(rc)) {
            r->fatal = rc;
            return rc;
        }
        return TD_OK;
    }
    if (stat(path, &st) == 0)
        td_log("✅ 已下载 %s (%lld 字节)", printable(name, shown, sizeof shown), (long long)st.st_size);
    printf("%s\n", r->stdout_tty ? printable(path, eshown, sizeof eshown) : path);
    fflush(stdout);
    r->downloaded++;
    return TD_OK;
}

/* The hint for a failed run, naming the side that failed: the token's
 * sources get the seed's advice (td__client_explain), Feishu's open
 * platform and this machine their own -- "检查API地址" for a Feishu that
 * cannot be reached would send the user to the one part that works. */
static void explain(const td_chatfiles *cf, int rc, FILE *f)
{
    const char *feishu = cf->base_url && *cf->base_url ? cf->base_url : TD_FEISHU_DEFAULT_BASE;

    switch (cf->failed_at) {
    case TD_CHATFILES_TOKEN:
        td__client_explain(rc, td__client_failed_source(cf->client), f);
        break;
    case TD_CHATFILES_FEISHU:
        if (rc == TD_EHTTP || rc == TD_ETIMEOUT)
            fprintf(f, "💡 连不上飞书开放平台 %s: token 已取到，问题不在API地址；检查本机网络、代理 (HTTPS_PROXY) "
                       "或 --feishu-base-url / FEISHU_BASE_URL\n", feishu);
        else if (rc == TD_EAUTH)
            fprintf(f, "💡 飞书开放平台 %s 拒绝了取到的 tenant_access_token (已报告并换新，仍被拒绝): 检查服务端的刷新是否在运行、"
                       "它用的飞书应用 (FEISHU_APP_ID) 是否就是群里的机器人\n", feishu);
        else if (rc == TD_ERATELIMIT)
            fprintf(f, "💡 飞书开放平台 %s 限流 (请求过于频繁): 稍后再试\n", feishu);
        else
            fprintf(f, "💡 飞书开放平台 %s 返回了错误: 检查机器人是否在群里 (--chat)、应用是否开通了 im:message 和 "
                       "im:resource 权限\n", feishu);
        break;
    case TD_CHATFILES_LOCAL:
        fputs("💡 检查 --out 文件夹是否可写、磁盘是否已满\n", f);
        break;
    default:
        break;
    }
}

/* `files`' own exit code: the token came, Feishu's open platform did not
 * serve the chat (unreachable, the tenant token refused, rate-limited, an
 * error).  Apart from get's 3/4/5, which speak of the token's sources --
 * a cron wrapper that branches on "wrong read key" or "token server down"
 * must not take Feishu's trouble for them. */
#define FILES_EXIT_FEISHU 6

/* The exit code of a failed run, by the side that failed (explain's). */
static int failed_exit(const td_chatfiles *cf, int rc)
{
    switch (cf->failed_at) {
    case TD_CHATFILES_FEISHU: return FILES_EXIT_FEISHU;
    case TD_CHATFILES_LOCAL: return TD_EXIT_FAIL;
    default: return td__client_exit_code(rc);
    }
}

static int parse_time(const char *flag, const char *s, int64_t *out)
{
    if (!s || !*s) return *out = 0, TD_OK;
    if (td_clock_parse(s, out) != TD_OK || *out <= 0) {
        fprintf(stderr, "tokendist files: %s 的值 '%s' 不是时间: 请写 YYYY-MM-DD、\"YYYY-MM-DD HH:MM:SS\" "
                        "或 Unix 秒数\n", flag, s);
        return TD_EINVAL;
    }
    return TD_OK;
}

int td_cmd_files(int argc, char **argv)
{
    td_config c;
    td_client *cl = NULL;
    td_chatfiles cf;
    run r = {0};
    char **nargv = NULL, name[32], err[4096], shown[sizeof err * 4];
    int64_t since = 0, until = 0;
    int ex = TD_EXIT_USAGE, rc, download;

    memset(&c, 0, sizeof c);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        td_cmd_usage(TD_CMD_FILES, argc < 2 ? stderr : stdout);
        return argc < 2 ? TD_EXIT_USAGE : TD_EXIT_OK;
    }
    if (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "download") != 0) {
        fprintf(stderr, "tokendist files: 未知的动作 '%s': 应为 list 或 download (见 tokendist files --help)\n",
                argv[1]);
        return TD_EXIT_USAGE;
    }
    download = !strcmp(argv[1], "download");
    /* The settings parser names the command in its messages: "files list". */
    snprintf(name, sizeof name, "files %s", argv[1]);
    if (!(nargv = calloc((size_t)argc, sizeof *nargv))) return TD_EXIT_FAIL;
    nargv[0] = name;
    for (int i = 2; i < argc; i++) nargv[i - 1] = argv[i];
    if ((ex = td_cmd_config(&c, TD_CMD_FILES, argc - 1, nargv)) >= 0) goto out;
    ex = TD_EXIT_USAGE;
    if (!c.chat || !*c.chat) {
        fprintf(stderr, "tokendist %s: 缺少 --chat: 写上群的 oc_… ID (或设置 FEISHU_CHAT_ID)\n", name);
        goto out;
    }
    if (parse_time("--since", c.since, &since) != TD_OK || parse_time("--until", c.until, &until) != TD_OK)
        goto out;
    if (since && until && until <= since) {
        fprintf(stderr, "tokendist %s: --until 应晚于 --since\n", name);
        goto out;
    }
    if ((rc = td__client_from_config(&c, &cl, err, sizeof err)) != TD_OK) {
        fprintf(stderr, "tokendist %s: %s\n", name, err);
        goto out;
    }
    if (download && mkdir(c.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "tokendist %s: 无法创建 --out 目录 %s: %s\n", name, c.out_dir, strerror(errno));
        goto out;
    }
    if (download && (rc = td_manifest_open(&r.manifest, c.out_dir, err, sizeof err)) != TD_OK) {
        fprintf(stderr, "❌ %s\n", err);
        ex = TD_EXIT_FAIL;
        goto out;
    }
    setlocale(LC_CTYPE, "C.UTF-8");   /* --match's ? and [] count characters, not bytes */
    cf = (td_chatfiles){.client = cl, .base_url = c.feishu_base_url, .timeout_ms = c.http_timeout * 1000};
    r.cf = &cf;
    r.out = c.out_dir;
    r.tty = isatty(STDERR_FILENO);
    r.stdout_tty = isatty(STDOUT_FILENO);
    rc = td_chatfiles_list(&cf, c.chat, since, until, c.match, download ? download_one : list_one, &r,
                           err, sizeof err);
    /* A fatal download error was logged where it happened. */
    if (rc != TD_OK && !r.fatal)
        fprintf(stderr, "❌ %s\n", printable(err, shown, sizeof shown));   /* may quote Feishu's msg */
    if (rc != TD_OK) explain(&cf, rc, stderr);
    td__client_tell(cl, stderr);
    if (download) {
        char more[64] = "";
        if (r.unreadable) snprintf(more, sizeof more, " (其中无法读取的文件消息 %d 个)", r.unreadable);
        /* A cron mail is read by its last line: a run that stopped must
         * not end in words that read as "nothing new, nothing failed". */
        if (rc == TD_OK)
            td_log("下载完成: 新文件 %d 个, 已存在 %d 个, 失败 %d 个%s", r.downloaded, r.skipped, r.failed, more);
        else if (!r.downloaded && !r.skipped && !r.failed)
            td_log("❌ 未能列出群消息，未下载任何文件");
        else
            td_log("❌ 下载中途停止 (群消息未能列完): 新文件 %d 个, 已存在 %d 个, 失败 %d 个%s", r.downloaded,
                   r.skipped, r.failed, more);
    } else if (r.unreadable) {
        td_log("❌ %d 个文件消息无法读取，已跳过 (列出 %d 个文件)", r.unreadable, r.listed);
    }
    ex = rc != TD_OK ? failed_exit(&cf, rc) : r.failed ? TD_EXIT_FAIL : TD_EXIT_OK;
out:
    td_manifest_close(r.manifest);
    free(nargv);
    td_client_free(cl);
    td_config_free(&c);
    return ex;
}
