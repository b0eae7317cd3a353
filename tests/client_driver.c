/*
 * client_driver -- drives one libtokendist client for the black-box tests
 * (tests/e2e/test_client_lib.py): options on the command line, then one
 * command per stdin line, one JSON answer per stdout line.
 *
 *   get app|tenant             one td_client_get
 *   burst N app|tenant         N threads call td_client_get at the same moment
 *   report                     td_client_report_invalid(the last token got)
 *   report_burst N             N threads report the last token at once
 *   record app|tenant          td_client_get_record: the record's length, whether it
 *                              holds the token, and the token's hash
 *   version                    td_version() and TD_VERSION
 *   setters                    what each --raw-long setter returned
 *
 * Options map to TD_OPT_* one to one (--url repeatable); a setter's
 * failure is left to td_client_new to report, as the header allows.
 * Tokens are secrets: answers carry a hash of the token (FNV-1a 64, hex),
 * never the token.
 */
#define _GNU_SOURCE
#include <tokendist.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static td_client *client;
static char *last;          /* the last token got (malloc'd copy) */
static int raw_opt[8], raw_rc[8];   /* --raw-long: the option and its setter's code */
static int nraw;

static unsigned long long fnv(const char *s)
{
    unsigned long long h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* JSON string escaping for error messages (UTF-8 passes through). */
static void put_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch == '\n') fputs("\\n", stdout);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

typedef struct job {
    td_token_kind kind;
    int rc;
    td_token *tok;
    char err[4096];
    pthread_barrier_t *bar;
    int report;
} job;

static void *run_job(void *ud)
{
    job *j = ud;
    pthread_barrier_wait(j->bar);
    if (j->report) j->rc = td_client_report_invalid(client, last, j->err, sizeof j->err);
    else j->rc = td_client_get(client, j->kind, &j->tok, j->err, sizeof j->err);
    return NULL;
}

static void print_result(int rc, const td_token *t, const char *err)
{
    printf("{\"rc\": %d", rc);
    if (rc == 0 && t) {
        printf(", \"source\": \"%s\", \"origin\": \"%s\", \"remaining\": %lld, \"expires\": %lld, "
               "\"token_hash\": \"%016llx\", \"token_len\": %zu",
               td_source_name(t->source), td_source_name(t->origin), (long long)t->remaining,
               (long long)t->expires, fnv(t->token), t->token_len);
    } else if (rc != 0) {
        fputs(", \"err\": ", stdout);
        put_json_str(err);
    }
    puts("}");
}

static void burst(int n, td_token_kind kind, int report)
{
    pthread_t *th = calloc((size_t)n, sizeof *th);
    job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_barrier_t bar;

    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        jobs[i] = (job){.kind = kind, .bar = &bar, .report = report};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    printf("[");
    for (int i = 0; i < n; i++) {
        if (i) printf(", ");
        fflush(stdout);
        /* print_result ends with a newline; strip it by printing inline */
        printf("{\"rc\": %d", jobs[i].rc);
        if (jobs[i].rc == 0 && !report)
            printf(", \"source\": \"%s\", \"token_hash\": \"%016llx\"", td_source_name(jobs[i].tok->source),
                   fnv(jobs[i].tok->token));
        else if (jobs[i].rc != 0) {
            fputs(", \"err\": ", stdout);
            put_json_str(jobs[i].err);
        }
        printf("}");
    }
    puts("]");
    for (int i = 0; i < n; i++) td_free(jobs[i].tok);
    pthread_barrier_destroy(&bar);
    free(th);
    free(jobs);
}

static void keep_last(const td_token *t)
{
    free(last);
    last = strdup(t->token);
}

int main(int argc, char **argv)
{
    td_client_opts *o = td_client_opts_new();
    char line[256], err[4096];

    for (int i = 1; i + 1 < argc; i += 2) {
        static const struct { const char *flag; td_option opt; int is_long; } map[] = {
            {"--url", TD_OPT_URL, 0}, {"--key", TD_OPT_READ_KEY, 0}, {"--name", TD_OPT_NAME, 0},
            {"--cache", TD_OPT_CACHE_FILE, 0}, {"--min-remaining", TD_OPT_MIN_REMAINING, 1},
            {"--refresh-wait-ms", TD_OPT_REFRESH_WAIT_MS, 1}, {"--timeout-ms", TD_OPT_TIMEOUT_MS, 1},
            {"--connect-timeout-ms", TD_OPT_CONNECT_TIMEOUT_MS, 1},
            {"--gitee-base", TD_OPT_GITEE_BASE_URL, 0}, {"--gitee-owner", TD_OPT_GITEE_OWNER, 0},
            {"--gitee-repo", TD_OPT_GITEE_REPO, 0}, {"--gitee-path", TD_OPT_GITEE_PATH, 0},
            {"--gitee-branch", TD_OPT_GITEE_BRANCH, 0}, {"--gitee-token", TD_OPT_GITEE_ACCESS_TOKEN, 0},
            {"--share-key", TD_OPT_SHARE_KEY, 0},
        };
        const char *k = argv[i], *v = argv[i + 1];
        size_t m = 0;
        while (m < sizeof map / sizeof *map && strcmp(map[m].flag, k) != 0) m++;
        if (m == sizeof map / sizeof *map) {
            /* --raw-long N V: an option by its number, as a program built
             * against a later header would set one this library lacks. */
            if (!strcmp(k, "--raw-long") && i + 2 < argc) {
                int rc = td_client_opts_set_long(o, (td_option)atoi(v), atol(argv[i + 2]));
                if (nraw < 8) raw_opt[nraw] = atoi(v), raw_rc[nraw++] = rc;
                i++;
                continue;
            }
            fprintf(stderr, "client_driver: unknown option %s\n", k);
            return 2;
        }
        if (map[m].is_long) td_client_opts_set_long(o, map[m].opt, atol(v));
        else td_client_opts_set_str(o, map[m].opt, v);
    }
    {
        int rc = td_client_new(&client, o, err, sizeof err);
        td_client_opts_free(o);
        if (rc != TD_OK) {
            print_result(rc, NULL, err);
            return 0;
        }
    }
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", arg[32] = "";
        int n = 0;
        if (sscanf(line, "%31s %d %31s", cmd, &n, arg) < 1) continue;
        if (!strcmp(cmd, "get")) {
            td_token *t = NULL;
            td_token_kind kind = strstr(line, "tenant") ? TD_TOKEN_TENANT : TD_TOKEN_APP;
            int rc = td_client_get(client, kind, &t, err, sizeof err);
            if (rc == 0) keep_last(t);
            print_result(rc, t, err);
            td_free(t);
        } else if (!strcmp(cmd, "record")) {
            td_token *t = NULL;
            char *json = NULL;
            size_t len = 0;
            td_token_kind kind = strstr(line, "tenant") ? TD_TOKEN_TENANT : TD_TOKEN_APP;
            int rc = td_client_get_record(client, kind, &json, &len, &t, err, sizeof err);
            if (rc == 0) {
                printf("{\"rc\": 0, \"json_len\": %zu, \"strlen\": %zu, \"json_has_token\": %s, "
                       "\"json_starts\": \"%.1s\", \"token_hash\": \"%016llx\"}\n", len, strlen(json),
                       strstr(json, t->token) ? "true" : "false", json, fnv(t->token));
            } else {
                print_result(rc, NULL, err);
            }
            td_free(json);
            td_free(t);
        } else if (!strcmp(cmd, "version")) {
            printf("{\"rc\": 0, \"runtime\": \"%s\", \"header\": \"%s\"}\n", td_version(), TD_VERSION);
        } else if (!strcmp(cmd, "setters")) {
            printf("{\"rc\": 0, \"setters\": [");
            for (int i = 0; i < nraw; i++) printf("%s[%d, %d]", i ? ", " : "", raw_opt[i], raw_rc[i]);
            puts("]}");
        } else if (!strcmp(cmd, "burst")) {
            burst(n, !strcmp(arg, "tenant") ? TD_TOKEN_TENANT : TD_TOKEN_APP, 0);
        } else if (!strcmp(cmd, "report")) {
            print_result(td_client_report_invalid(client, last ? last : "", err, sizeof err), NULL, err);
        } else if (!strcmp(cmd, "report_burst")) {
            burst(n, TD_TOKEN_APP, 1);
        } else {
            printf("{\"rc\": -3, \"err\": \"unknown command\"}\n");
        }
        fflush(stdout);
    }
    td_client_free(client);
    free(last);
    return 0;
}
