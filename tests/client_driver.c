/*
 * client_driver -- drives one libtokendist client for the black-box tests
 * (tests/e2e/test_client_lib.py): options on the command line, then one
 * command per stdin line, one JSON answer per stdout line.
 *
 *   get app|tenant             one td_client_get
 *   burst N app|tenant         N threads call td_client_get at the same moment
 *   report                     td_client_report_invalid(the last token got)
 *   report_burst N             N threads report the last token at once
 *
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
static char last[TD_CLIENT_TOKEN_MAX + 1];

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
    td_token tok;
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
        printf(", \"source\": \"%s\", \"origin\": \"%s\", \"remaining\": %lld, \"expires\": %lld, \"token_hash\": \"%016llx\"",
               td_source_name(t->source), td_source_name(t->origin), (long long)t->remaining,
               (long long)t->expires, fnv(t->token));
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
            printf(", \"source\": \"%s\", \"token_hash\": \"%016llx\"", td_source_name(jobs[i].tok.source),
                   fnv(jobs[i].tok.token));
        else if (jobs[i].rc != 0) {
            fputs(", \"err\": ", stdout);
            put_json_str(jobs[i].err);
        }
        printf("}");
    }
    puts("]");
    pthread_barrier_destroy(&bar);
    free(th);
    free(jobs);
}

int main(int argc, char **argv)
{
    const char *urls[8];
    td_client_opts o = {.urls = urls};
    char line[256], err[4096];

    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--url") && o.nurls < 8) urls[o.nurls++] = v;
        else if (!strcmp(k, "--key")) o.read_key = v;
        else if (!strcmp(k, "--cache")) o.cache_file = v;
        else if (!strcmp(k, "--min-remaining")) o.min_remaining = atol(v);
        else if (!strcmp(k, "--refresh-wait-ms")) o.refresh_wait_ms = atol(v);
        else if (!strcmp(k, "--timeout-ms")) o.timeout_ms = atol(v);
        else if (!strcmp(k, "--gitee-base")) o.gitee.base_url = v;
        else if (!strcmp(k, "--gitee-owner")) o.gitee.owner = v;
        else if (!strcmp(k, "--gitee-repo")) o.gitee.repo = v;
        else if (!strcmp(k, "--gitee-path")) o.gitee.path = v;
        else if (!strcmp(k, "--gitee-branch")) o.gitee.branch = v;
        else if (!strcmp(k, "--gitee-token")) o.gitee.access_token = v;
        else {
            fprintf(stderr, "client_driver: unknown option %s\n", k);
            return 2;
        }
    }
    if (td_client_new(&client, &o, err, sizeof err) != TD_OK) {
        print_result(TD_EINVAL, NULL, err);
        return 0;
    }
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", arg[32] = "";
        int n = 0;
        if (sscanf(line, "%31s %d %31s", cmd, &n, arg) < 1) continue;
        if (!strcmp(cmd, "get")) {
            td_token t;
            td_token_kind kind = strstr(line, "tenant") ? TD_TOKEN_TENANT : TD_TOKEN_APP;
            int rc = td_client_get(client, kind, &t, err, sizeof err);
            if (rc == 0) memcpy(last, t.token, sizeof last);
            print_result(rc, &t, err);
        } else if (!strcmp(cmd, "burst")) {
            burst(n, !strcmp(arg, "tenant") ? TD_TOKEN_TENANT : TD_TOKEN_APP, 0);
        } else if (!strcmp(cmd, "report")) {
            print_result(td_client_report_invalid(client, last, err, sizeof err), NULL, err);
        } else if (!strcmp(cmd, "report_burst")) {
            burst(n, TD_TOKEN_APP, 1);
        } else {
            printf("{\"rc\": -3, \"err\": \"unknown command\"}\n");
        }
        fflush(stdout);
    }
    td_client_free(client);
    return 0;
}
