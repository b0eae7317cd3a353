/*
 * main -- the tokendist binary: one program, one subcommand per job.
 */
#include "cmd.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"serve", td_cmd_serve, "run the distribution server (and the refresher when Feishu credentials are set)"},
    {"get", td_cmd_get, "print the current token (TOKEN=$(tokendist get)); --json for the whole record"},
    {"files", td_cmd_files, "list or download the files of a Feishu group chat with the tenant token"},
    {"refresh", td_cmd_refresh, "fetch the Feishu token and push it to every sink (--once: one cycle)"},
    {"scf-runtime", td_cmd_scf, "serve events as a Tencent SCF event function (custom runtime bootstrap)"},
    {"check", td_cmd_check, "test the distribution endpoint the seed's way (connection, upload)"},
    {"keygen", td_cmd_keygen, "print a new share key (TOKENDIST_SHARE_KEY) that seals the Gitee copy"},
};

static void usage(FILE *f)
{
    fprintf(f, "tokendist %s — 飞书 app_access_token 的获取、分发与使用\n\n"
               "Usage: tokendist COMMAND [OPTIONS]\n\nCommands:\n", TD_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'tokendist COMMAND --help' lists a command's options and environment variables.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TD_EXIT_USAGE : TD_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("tokendist %s\n", TD_VERSION);
        return TD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tokendist: unknown command '%s' (see tokendist --help)\n", argv[1]);
    return TD_EXIT_USAGE;
}
