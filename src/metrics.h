/*
 * metrics -- process-wide counters, rendered in Prometheus text format
 * with names prefixed tokendist_.  Counters are lock-free (relaxed atomic
 * adds): several threads (HTTP, refresher, store watcher) bump them.
 */
#ifndef TD_METRICS_H
#define TD_METRICS_H

#include <stddef.h>

typedef enum {
    TD_ROUTE_TOKEN_GET,
    TD_ROUTE_TOKEN_POST,
    TD_ROUTE_INVALID,
    TD_ROUTE_HISTORY,
    TD_ROUTE_OPTIONS,
    TD_ROUTE_HEALTHZ,
    TD_ROUTE_READYZ,
    TD_ROUTE_METRICS,
    TD_ROUTE_STATUS,
    TD_ROUTE_OTHER,
    TD_ROUTE__N
} td_route;

typedef enum {
    TD_M_STORE_ERRORS,
    TD_M_AUTH_FAILURES,
    TD_M_AUTH_BLOCKED,
    TD_M_STORE_RECONNECTS,
    TD_M_REFRESH_OK,
    TD_M_REFRESH_FAILED,
    TD_M_SINK_OK,
    TD_M_SINK_FAILED,
    TD_M_NOTICE_FAILED,
    TD_M__N
} td_counter;

/* Gauges: values that go up and down. */
typedef enum {
    TD_G_REQUESTS_WAITING,      /* requests handed to a worker, not yet answered */
    TD_G_UNREADABLE_RECORDS,    /* stored records that could not be served */
    TD_G__N
} td_gauge;

void td_metrics_request(td_route route, int status);
void td_metrics_gauge_add(td_gauge g, long delta);
void td_metrics_gauge_set(td_gauge g, long value);
void td_metrics_inc(td_counter c);

/* Appends the counters to b in Prometheus text format. */
struct td_strbuf;
void td_metrics_render(struct td_strbuf *b);

#endif
