/* metrics -- see metrics.h. */
#include "metrics.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Statuses the server answers with; anything else counts as "other". */
static const int statuses[] = {200, 202, 204, 400, 401, 403, 404, 405, 409, 413,
                               414, 415, 421, 429, 431, 500, 501, 502, 503};
#define NSTATUS (sizeof statuses / sizeof *statuses)

static const char *const route_names[TD_ROUTE__N] = {
    "token_get", "token_post", "invalid", "history", "options", "healthz", "readyz", "metrics", "status", "other",
};

static const struct {
    const char *name, *help;
} counter_info[TD_M__N] = {
    {"store_errors_total", "Store operations that failed."},
    {"auth_failures_total", "Requests refused for a missing or wrong key."},
    {"auth_blocked_total", "Requests refused with 429 after repeated auth failures."},
    {"store_reconnects_total", "Times the store connection was re-established."},
    {"refresh_success_total", "Tokens fetched from Feishu."},
    {"refresh_failures_total", "Failed attempts to fetch a token from Feishu."},
    {"sink_push_success_total", "Records delivered to a sink."},
    {"sink_push_failures_total", "Failed deliveries to a sink."},
    {"notice_failures_total", "Group notices that could not be sent."},
};

static const struct {
    const char *name, *help;
} gauge_info[TD_G__N] = {
    {"requests_waiting", "Requests waiting for the store (or another thread) on a worker."},
    {"store_unreadable_records", "Stored records that could not be read and are not served (see /readyz)."},
};

static uint64_t requests[TD_ROUTE__N][NSTATUS + 1];
static long gauges[TD_G__N];
static uint64_t counters[TD_M__N];

void td_metrics_request(td_route route, int status)
{
    size_t i = 0;
    if ((unsigned)route >= TD_ROUTE__N) route = TD_ROUTE_OTHER;
    while (i < NSTATUS && statuses[i] != status) i++;
    __atomic_fetch_add(&requests[route][i], 1, __ATOMIC_RELAXED);
}

void td_metrics_gauge_add(td_gauge g, long delta)
{
    if ((unsigned)g < TD_G__N) __atomic_fetch_add(&gauges[g], delta, __ATOMIC_RELAXED);
}

void td_metrics_gauge_set(td_gauge g, long value)
{
    if ((unsigned)g < TD_G__N) __atomic_store_n(&gauges[g], value, __ATOMIC_RELAXED);
}

void td_metrics_inc(td_counter c)
{
    if ((unsigned)c < TD_M__N) __atomic_fetch_add(&counters[c], 1, __ATOMIC_RELAXED);
}

void td_metrics_render(td_strbuf *b)
{
    td_strbuf_puts(b, "# HELP tokendist_requests_total HTTP requests by route and status.\n"
                      "# TYPE tokendist_requests_total counter\n");
    for (int r = 0; r < TD_ROUTE__N; r++)
        for (size_t s = 0; s <= NSTATUS; s++) {
            uint64_t v = __atomic_load_n(&requests[r][s], __ATOMIC_RELAXED);
            if (!v) continue;
            if (s < NSTATUS)
                td_strbuf_printf(b, "tokendist_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                 route_names[r], statuses[s], (unsigned long long)v);
            else
                td_strbuf_printf(b, "tokendist_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                                 route_names[r], (unsigned long long)v);
        }
    for (int c = 0; c < TD_M__N; c++)
        td_strbuf_printf(b, "# HELP tokendist_%s %s\n# TYPE tokendist_%s counter\ntokendist_%s %llu\n",
                         counter_info[c].name, counter_info[c].help, counter_info[c].name,
                         counter_info[c].name,
                         (unsigned long long)__atomic_load_n(&counters[c], __ATOMIC_RELAXED));
    for (int g = 0; g < TD_G__N; g++)
        td_strbuf_printf(b, "# HELP tokendist_%s %s\n# TYPE tokendist_%s gauge\ntokendist_%s %ld\n",
                         gauge_info[g].name, gauge_info[g].help, gauge_info[g].name, gauge_info[g].name,
                         __atomic_load_n(&gauges[g], __ATOMIC_RELAXED));
}
