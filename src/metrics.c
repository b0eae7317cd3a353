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
    {"store_errors_total", "失败的存储操作次数。"},
    {"auth_failures_total", "因缺少密钥或密钥错误而拒绝的请求数。"},
    {"auth_blocked_total", "认证反复失败后以 429 拒绝的请求数。"},
    {"store_reconnects_total", "存储连接重新建立的次数。"},
    {"refresh_success_total", "从平台 (飞书等) 获取到的 token 数。"},
    {"refresh_failures_total", "从平台 (飞书等) 获取 token 失败的次数。"},
    {"sink_push_success_total", "成功投递到下游 (sink) 的记录数。"},
    {"sink_push_failures_total", "投递到下游 (sink) 失败的次数。"},
    {"notice_failures_total", "未能发出的群通知数。"},
};

static const struct {
    const char *name, *help;
} gauge_info[TD_G__N] = {
    {"requests_waiting", "在工作线程上等待存储 (或其他线程) 的请求数。"},
    {"store_unreadable_records", "存储中无法读取、因而不分发的记录数 (见 /readyz)。"},
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
    td_strbuf_puts(b, "# HELP tokendist_requests_total 按路由和状态码统计的 HTTP 请求数。\n"
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
