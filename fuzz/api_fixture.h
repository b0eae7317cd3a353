/*
 * api_fixture.h -- the request handler the fuzzers drive: a real td_api
 * over an in-memory SQLite store, with one push key ("fuzz-push-key"), one
 * read key ("fuzz-read-key") and 10.0.0.0/8 as trusted proxy, logging
 * off.  Made once per process.
 */
#ifndef TD_FUZZ_API_FIXTURE_H
#define TD_FUZZ_API_FIXTURE_H

#include "api.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "tokendist.h"

#include <stdlib.h>

static td_api *fixture_api(void)
{
    static char push[] = "fuzz-push-key", read[] = "fuzz-read-key";
    static char *pv[] = {push}, *rv[] = {read};
    static char proxy[] = "10.0.0.0/8";
    static char *tv[] = {proxy};
    static td_strlist pk = {pv, 1}, rk = {rv, 1}, tp = {tv, 1};
    static td_api *api;
    td_store *store = NULL;
    char err[256];
    td_api_opts o = {0};

    if (api) return api;
    td_log_set_quiet(1);
    td_clock_set_zone("Asia/Shanghai", err, sizeof err);
    if (td_store_open(&store, "sqlite::memory:", 5, err, sizeof err) != TD_OK) abort();
    o.store = store;
    o.push_keys = &pk;
    o.read_keys = &rk;
    o.body_limit = 65536;
    o.trusted_proxies = &tp; /* SCF events from 10.x: their X-Forwarded-For is walked */
    o.max_clock_skew = 300;
    if (td_api_new(&api, &o, err, sizeof err) != TD_OK) abort();
    return api;
}

#endif
