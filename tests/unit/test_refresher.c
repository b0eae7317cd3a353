/* Unit tests for refresher: how a reader waits for a renewal
 * (td_refresher_freshen) and a reporter for a forced one
 * (td_refresher_force).  The platform is a fake provider whose second
 * fetch the test holds and releases, so a cycle runs exactly as long as
 * the test wants; the sink is the local one (a memory store behind an
 * api).  Elapsed times are read on the real monotonic clock: the test
 * clock (TD_TEST_HOOKS, clock.h) moves the refresher's. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "api.h"
#include "clock.h"
#include "record.h"
#include "refresher.h"
#include "store.h"
#include "tokendist.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 1800             /* s, Feishu's */
#define DEADLINE_MS 60000       /* what the test waits for at most */

static char dir[] = "/tmp/td-refresher-XXXXXX";
static char clock_file[64];

/* --- the fake platform ------------------------------------------------ */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fetches;                /* begun */
    int hold;                   /* the second fetch waits while set */
    long first_expire;          /* s the first token has left */
} fake = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 100};

/* The first token has fake.first_expire s left (100: inside the window,
 * so the refresher renews it at once); the second fetch (held while the
 * test says so) and every later one bring a two-hour token. */
static int fake_fetch(const td_provider *p, int forced, td_grant *out, char *err, size_t errlen)
{
    int n;

    (void)p, (void)forced, (void)err, (void)errlen;
    pthread_mutex_lock(&fake.lock);
    n = ++fake.fetches;
    pthread_cond_broadcast(&fake.cond);
    while (n == 2 && fake.hold) pthread_cond_wait(&fake.cond, &fake.lock);
    pthread_mutex_unlock(&fake.lock);
    memset(out, 0, sizeof *out);
    snprintf(out->token, sizeof out->token, "t-g1044fake%016d", n);
    out->expire = n == 1 ? fake.first_expire : 7200;
    out->retry_after = -1;
    return TD_OK;
}

static const td_provider_ops fake_ops = {
    .kind = "feishu", .label = "飞书", .renewal = TD_RENEW_IN_WINDOW, .renew_window = WINDOW,
    .id_name = "App ID", .fetch = fake_fetch,
};

static void release(void)
{
    pthread_mutex_lock(&fake.lock);
    fake.hold = 0;
    pthread_cond_broadcast(&fake.cond);
    pthread_mutex_unlock(&fake.lock);
}

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* As the tests' harness writes it: a new file renamed over the old. */
static void set_offset_ms(long ms)
{
    char tmp[80];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", clock_file);
    assert_non_null(f = fopen(tmp, "w"));
    fprintf(f, "%ld\n", ms);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, clock_file), 0);
    usleep(5000); /* the file is looked at once a millisecond at most */
}

/* --- a refresher of "default" into a memory store --------------------- */

typedef struct fixture {
    td_store *store;
    td_api *api;
    td_sinks sinks;
    td_refresher *r;
} fixture;

static int start(void **state, long window, long first_expire)
{
    fixture *fx = calloc(1, sizeof *fx);
    td_api_opts ao = {0};
    td_refresher_opts o = {0};
    char err[512];

    set_offset_ms(0);
    fake.fetches = 0, fake.hold = 1, fake.first_expire = first_expire;
    assert_non_null(fx);
    assert_int_equal(td_store_open(&fx->store, "memory:", 10, err, sizeof err), TD_OK);
    ao.store = fx->store;
    assert_int_equal(td_api_new(&fx->api, &ao, err, sizeof err), TD_OK);
    fx->sinks.n = 1;
    fx->sinks.v[0] = (td_sink){.kind = TD_SINK_LOCAL, .label = "本地存储", .api = fx->api, .name = "default"};
    o.provider = (td_provider){.ops = &fake_ops, .app_id = "cli_test", .app_secret = "not-a-secret"};
    o.sinks = &fx->sinks;
    o.name = "default", o.source = "test", o.usage = "test", o.platform = "test";
    o.renew_window = window, o.retry_min = 1, o.retry_max = 2;
    assert_int_equal(td_refresher_new(&fx->r, &o, err, sizeof err), TD_OK);
    assert_int_equal(td_refresher_start(fx->r, err, sizeof err), TD_OK);
    *state = fx;
    return 0;
}

static int setup(void **state) { return start(state, WINDOW, 100); }

/* A 40 s window and a first token 42 s long: the renewal starts on
 * schedule 2 to 4 s in, with most of the window left. */
static int setup_on_schedule(void **state) { return start(state, 40, 42); }

static int teardown(void **state)
{
    fixture *fx = *state;

    release(); /* the thread finishes its cycle before it stops */
    td_refresher_free(fx->r);
    td_api_free(fx->api);
    td_store_close(fx->store);
    free(fx);
    set_offset_ms(0);
    return 0;
}

/* Until the renewal's fetch (the second) is under way, and held. */
static void wait_for_renewal_fetch(void)
{
    int64_t until = real_ms() + DEADLINE_MS;

    pthread_mutex_lock(&fake.lock);
    while (fake.fetches < 2 && real_ms() < until) {
        pthread_mutex_unlock(&fake.lock);
        usleep(1000);
        pthread_mutex_lock(&fake.lock);
    }
    assert_true(fake.fetches >= 2);
    pthread_mutex_unlock(&fake.lock);
}

/* Until n cycles have ended and none runs: the loop then has counted
 * them (td_refresher_status reads under the loop's lock). */
static void wait_for_cycles(td_refresher *r, long n)
{
    int64_t until = real_ms() + DEADLINE_MS;
    td_refresher_state *st = malloc(sizeof *st);

    assert_non_null(st);
    do {
        td_refresher_status(r, st);
        if (st->cycles >= n && !st->cycling) break;
        usleep(1000);
    } while (real_ms() < until);
    assert_true(st->cycles >= n && !st->cycling);
    free(st);
}

/* A reader judged the renewal overdue while it ran (the HTTP thread, or
 * SCF's), and reaches freshen only after it ended: the next cycle is
 * an hour and a half away.  Before, it waited wait_ms for that one and
 * got "刷新进行中"; the renewal it wanted is done, and that is its answer. */
static void test_a_reader_late_for_the_renewal_it_saw_is_not_held(void **state)
{
    fixture *fx = *state;
    char why[300];
    int64_t t0;
    int rc;

    wait_for_renewal_fetch();
    assert_int_equal(td_refresher_overdue(fx->r, -1), 1);   /* the reader's judgment */
    release();
    wait_for_cycles(fx->r, 2);
    t0 = real_ms();
    rc = td_refresher_freshen(fx->r, 5000, why, sizeof why);
    assert_int_equal(rc, TD_OK);
    assert_string_equal(why, "已刷新");
    assert_true(real_ms() - t0 < 2500);
}

/* Releases the held fetch after ud ms, or once the test is done with it
 * (done set): the waits before must not end on the release. */
static int done;

static void *release_later(void *ud)
{
    int64_t at = real_ms() + (intptr_t)ud;

    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE) && real_ms() < at) usleep(1000);
    release();
    return NULL;
}

/* On the test clock, with time moved an hour ahead while a renewal runs:
 * a reporter and a reader wait their wait_ms on the real clock too, not
 * until the renewal happens to end (before: their deadline, on the moved
 * clock, was handed to the condition variable as if it were the real
 * one -- an hour away). */
static void test_waits_end_at_their_deadline_on_the_test_clock(void **state)
{
    fixture *fx = *state;
    char why[300], id[TD_TOKEN_ID_LEN], tok[64];
    pthread_t t;
    int64_t t0;

    wait_for_renewal_fetch();
    set_offset_ms(3600000L);
    done = 0;
    assert_int_equal(pthread_create(&t, NULL, release_later, (void *)(intptr_t)10000), 0);
    snprintf(tok, sizeof tok, "t-g1044fake%016d", 1);   /* the token in service */
    td_record_token_id(tok, id);
    t0 = real_ms();
    assert_int_equal(td_refresher_force(fx->r, "default", id, 300, why, sizeof why), TD_ETIMEOUT);
    assert_true(real_ms() - t0 < 5000);
    t0 = real_ms();
    assert_int_equal(td_refresher_freshen(fx->r, 300, why, sizeof why), TD_ETIMEOUT);
    assert_string_equal(why, "刷新进行中");
    assert_true(real_ms() - t0 < 5000);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
}

/* A renewal that began on schedule is the normal path at work, and
 * readers get the token in service at once -- until a freeze overlaps
 * it (SCF stopped the instance mid-cycle; here the test clock jumps,
 * which the freeze detector takes for one): its requests are then as old
 * as the freeze, and a reader of the token, inside its window, waits for
 * the renewal as for a late one.  Before, the reader got the token from
 * before the freeze at once -- a thawed server without the lease, whose
 * look at it was under way, served it without asking the holder. */
static void test_a_renewal_a_freeze_overlapped_is_waited_for(void **state)
{
    fixture *fx = *state;

    wait_for_renewal_fetch();
    assert_int_equal(td_refresher_overdue(fx->r, -1), 0);   /* on schedule, > half the window left */
    set_offset_ms(5000);                                    /* a 5 s freeze: still > half left */
    assert_int_equal(td_refresher_overdue(fx->r, -1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_reader_late_for_the_renewal_it_saw_is_not_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_end_at_their_deadline_on_the_test_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_renewal_a_freeze_overlapped_is_waited_for, setup_on_schedule, teardown),
    };
    int rc;

    if (!mkdtemp(dir)) return 1;
    snprintf(clock_file, sizeof clock_file, "%s/clock", dir);
    /* Before the first reading: the process reads the variable once. */
    setenv("TOKENDIST_TEST_CLOCK_FILE", clock_file, 1);
    rc = cmocka_run_group_tests_name("refresher", tests, NULL, NULL);
    unlink(clock_file);
    rmdir(dir);
    return rc;
}
