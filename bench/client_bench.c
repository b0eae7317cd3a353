/*
 * client_bench -- what a td_client_get costs: from memory (the common
 * case; target ≤ 1 µs) and when it has to fetch over HTTP, on the
 * client's kept connection and on a new connection each time.
 *
 *   build/client_bench [--bin build/tokendist] [--url URL] [-n CACHED_CALLS] [-m FETCHES]
 *
 * The fetch figures force a fetch on every call: a client whose minimum
 * remaining time (TD_OPT_MIN_REMAINING 86400) is more than any record
 * has never keeps one in memory, so each td_client_get sends the GET,
 * parses and judges the record, and refuses it (TD_EEXPIRED) -- the whole
 * fetch path but the copy into memory.  "kept connection" makes all of
 * them on one client; "new connection" makes a new client (and so a new
 * TCP connection) for each, in the same run against the same server.
 *
 * Without --url it starts `tokendist serve` on a free loopback port with a
 * temporary store, stores a record, benchmarks against it and stops it.
 * Not a test: it prints numbers and fails only when it cannot run.
 */
#define _GNU_SOURCE
#include <tokendist.h>

#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PUSH_KEY "bench-push-key-0123456789abcdef"
#define THREADS 4

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static size_t discard(char *p, size_t s, size_t n, void *ud) { return s * n; }

/* One request with libcurl; returns the HTTP status or -1. */
static long http(const char *method, const char *url, const char *body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    long status = -1;

    if (!c) return -1;
    h = curl_slist_append(h, "Authorization: Bearer " PUSH_KEY);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    (void)method;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* Starts `bin serve` on port with a store in dir; returns its pid or -1. */
static pid_t start_server(const char *bin, int port, const char *dir)
{
    char listen[64], store[600], url[128];
    pid_t pid;

    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(store, sizeof store, "sqlite:%s/bench.db", dir);
    if ((pid = fork()) == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(127);
        execl(bin, bin, "serve", "--listen", listen, "--store", store, "--push-key", PUSH_KEY, (char *)NULL);
        _exit(127);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    for (int i = 0; i < 100; i++) {
        if (http("GET", url, NULL) == 200) return pid;
        usleep(50000);
    }
    kill(pid, SIGTERM);
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct worker {
    td_client *c;
    long n;
    int failures;
} worker;

static void *hammer(void *ud)
{
    worker *w = ud;
    td_token *tok;
    char err[256];
    for (long i = 0; i < w->n; i++) {
        if (td_client_get(w->c, TD_TOKEN_APP, &tok, err, sizeof err) != TD_OK) w->failures++;
        else td_free(tok);
    }
    return NULL;
}

/* A client of url with the given minimum remaining time (-1: default). */
static int new_client(td_client **c, const char *url, long min_remaining, char *err, size_t errlen)
{
    td_client_opts *o = td_client_opts_new();
    int rc;

    td_client_opts_set_str(o, TD_OPT_URL, url);
    if (min_remaining >= 0) td_client_opts_set_long(o, TD_OPT_MIN_REMAINING, min_remaining);
    rc = td_client_new(c, o, err, errlen);
    td_client_opts_free(o);
    return rc;
}

/* Sorts the m latencies (µs) and prints mean, p50 and p99. */
static void report(const char *what, double *lat, long m)
{
    double sum = 0;
    for (long i = 0; i < m; i++) sum += lat[i];
    qsort(lat, (size_t)m, sizeof *lat, cmp_double);
    printf("%s: %ld fetches, mean %.0f us, p50 %.0f us, p99 %.0f us\n", what, m, sum / (double)m, lat[m / 2],
           lat[m * 99 / 100]);
}

/* m forced fetches (see the top of the file): on one client when reuse,
 * else on a new client each; latencies in lat (µs). */
static int forced_fetches(const char *url, long m, int reuse, double *lat)
{
    td_client *c = NULL;
    td_token *tok = NULL;
    char err[2048];
    int rc = -1;

    if (reuse && new_client(&c, url, 86400, err, sizeof err) != TD_OK) goto fail;
    for (long i = 0; i < m; i++) {
        double t0 = now_ns();
        if (!reuse && new_client(&c, url, 86400, err, sizeof err) != TD_OK) goto fail;
        if (td_client_get(c, TD_TOKEN_APP, &tok, err, sizeof err) != TD_EEXPIRED) goto fail;
        if (!reuse) td_client_free(c), c = NULL;
        lat[i] = (now_ns() - t0) / 1000.0;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "forced fetch failed: %s\n", err);
out:
    td_free(tok);
    td_client_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    const char *bin = "build/tokendist", *url = NULL;
    long n = 2000000, m = 300;
    char dir[] = "/tmp/tdbench-XXXXXX", urlbuf[128], body[1024], err[2048];
    pid_t pid = -1;
    td_client *c = NULL;
    td_token *tok = NULL;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bin") && i + 1 < argc) bin = argv[++i];
        else if (!strcmp(argv[i], "--url") && i + 1 < argc) url = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atol(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) m = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--bin build/tokendist] [--url URL] [-n CACHED_CALLS] [-m FETCHES]\n", argv[0]);
            return 2;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!url) {
        int port = free_port();
        long now = (long)time(NULL);
        if (!mkdtemp(dir) || port < 0 || (pid = start_server(bin, port, dir)) < 0) {
            fprintf(stderr, "cannot start %s serve (give --bin or --url)\n", bin);
            return 1;
        }
        snprintf(urlbuf, sizeof urlbuf, "http://127.0.0.1:%d/release/get-token", port);
        url = urlbuf;
        snprintf(body, sizeof body,
                 "{\"access_token\": \"t-bench0123456789abcdefghijklmnopqrstuvw\", \"expire_time\": \"\","
                 " \"expire_timestamp\": %ld, \"valid_duration_seconds\": 7200, \"generated_time\": \"\","
                 " \"generated_timestamp\": %ld, \"source\": \"bench\", \"usage\": \"bench\", \"platform\": \"bench\"}",
                 now + 7200, now);
        if (http("POST", url, body) != 200) {
            fprintf(stderr, "cannot store the bench record\n");
            goto out;
        }
    }

    printf("libtokendist %s\n", td_version());
    {
        double t0, t1;
        if (new_client(&c, url, -1, err, sizeof err) != TD_OK ||
            td_client_get(c, TD_TOKEN_APP, &tok, err, sizeof err) != TD_OK) {
            fprintf(stderr, "first get failed: %s\n", err);
            goto out;
        }
        td_free(tok), tok = NULL;
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            if (td_client_get(c, TD_TOKEN_APP, &tok, err, sizeof err) != TD_OK || tok->source != TD_SOURCE_MEMORY) {
                fprintf(stderr, "cached get failed at call %ld: %s\n", i, err);
                goto out;
            }
            td_free(tok), tok = NULL;
        }
        t1 = now_ns();
        printf("cached td_client_get, 1 thread:   %ld calls, %.1f ns/call (target <= 1000 ns)\n", n,
               (t1 - t0) / (double)n);

        {
            pthread_t th[THREADS];
            worker w[THREADS];
            int fails = 0;
            t0 = now_ns();
            for (int i = 0; i < THREADS; i++) {
                w[i] = (worker){c, n / THREADS, 0};
                pthread_create(&th[i], NULL, hammer, &w[i]);
            }
            for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL), fails += w[i].failures;
            t1 = now_ns();
            printf("cached td_client_get, %d threads:  %ld calls, %.1f ns/call wall, %.1f ns/call per thread%s\n",
                   THREADS, n / THREADS * THREADS, (t1 - t0) / (double)(n / THREADS * THREADS),
                   (t1 - t0) / (double)(n / THREADS), fails ? " (FAILURES)" : "");
        }
        td_client_free(c);
        c = NULL;
    }

    {
        double *lat = calloc((size_t)m, sizeof *lat);
        if (!lat) goto out;
        /* Interleaved rounds, so both see the same server and machine load. */
        for (int round = 0; round < 2; round++) {
            if (forced_fetches(url, m, 1, lat) != 0) {
                free(lat);
                goto out;
            }
            if (round) report("fetch path, kept connection (1 client, GET + parse + judge)", lat, m);
            if (forced_fetches(url, m, 0, lat) != 0) {
                free(lat);
                goto out;
            }
            if (round) report("fetch path, new connection  (new client each, GET + parse + judge)", lat, m);
        }
        for (long i = 0; i < m; i++) {
            double t0 = now_ns();
            if (new_client(&c, url, -1, err, sizeof err) != TD_OK ||
                td_client_get(c, TD_TOKEN_APP, &tok, err, sizeof err) != TD_OK || tok->source != TD_SOURCE_ENDPOINT) {
                fprintf(stderr, "fetch %ld failed: %s\n", i, err);
                free(lat);
                goto out;
            }
            td_free(tok), tok = NULL;
            td_client_free(c);
            c = NULL;
            lat[i] = (now_ns() - t0) / 1000.0;
        }
        report("first get of a new client (new client + GET + parse + copy to memory)", lat, m);
        free(lat);
    }
    rc = 0;
out:
    td_free(tok);
    td_client_free(c);
    if (pid > 0) {
        char cmd[64];
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc;
}
