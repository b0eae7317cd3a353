/* Unit tests for clock's test hook (TD_TEST_HOOKS: test builds only): the
 * offset in TOKENDIST_TEST_CLOCK_FILE moves wall and monotonic time
 * together from the first reading after the file is replaced, and a timed
 * wait on the monotonic clock wakes soon after a jump past its deadline. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLACK_MS 1000 /* readings a test compares are this close, even on a loaded machine */

static char dir[] = "/tmp/td-clock-XXXXXX";
static char file[64];

static int64_t real_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* As the tests' harness writes it: a new file renamed over the old. */
static void put(const char *text)
{
    char tmp[80];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    assert_non_null(f = fopen(tmp, "w"));
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, file), 0);
    usleep(5000); /* the file is looked at once a millisecond at most */
}

/* td_clock_mono_ms() and td_clock_now_ms() minus the real clocks. */
static void assert_offset(int64_t want_ms)
{
    int64_t mono = td_clock_mono_ms() - real_ms(CLOCK_MONOTONIC);
    int64_t wall = td_clock_now_ms() - real_ms(CLOCK_REALTIME);
    int64_t secs = td_clock_now() - (int64_t)time(NULL);

    assert_true(mono >= want_ms - SLACK_MS && mono <= want_ms + SLACK_MS);
    assert_true(wall >= want_ms - SLACK_MS && wall <= want_ms + SLACK_MS);
    assert_true(secs * 1000 >= want_ms - 2000 && secs * 1000 <= want_ms + 2000);
}

static void test_offset_moves_wall_and_monotonic(void **state)
{
    (void)state;
    assert_offset(0);                   /* no file yet */
    put("7200000\n");
    assert_offset(7200000);             /* the very next reading */
    put("-5000");
    assert_offset(-5000);
    put("0\n");
    assert_offset(0);
}

static void test_a_torn_file_keeps_the_offset(void **state)
{
    FILE *f;

    (void)state;
    put("3600000\n");
    assert_offset(3600000);
    /* Written in place, not renamed: half a number is not taken. */
    assert_non_null(f = fopen(file, "w"));
    fputs("12x", f);
    fclose(f);
    usleep(5000);
    assert_offset(3600000);
    put("60000\n");
    assert_offset(60000);
    unlink(file);
    usleep(5000);
    assert_offset(0);
}

static void test_deadline_is_sliced(void **state)
{
    struct timespec ts;
    int64_t due, at;

    (void)state;
    put("0\n");
    due = td_clock_mono_ms() + 3600000;
    td_clock_mono_deadline(due, &ts);
    at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true(at - real_ms(CLOCK_MONOTONIC) <= 20);   /* a slice, not an hour */
    put("3600000\n");                                   /* the hour has passed */
    assert_true(td_clock_mono_ms() >= due);
    td_clock_mono_deadline(due, &ts);
    at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true(at <= real_ms(CLOCK_MONOTONIC));        /* already due */
}

/* A sleeper shaped like the refresher's loop, due in an hour. */
struct sleeper {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t due;
    int woke;
};

static void *sleep_until_due(void *ud)
{
    struct sleeper *s = ud;

    pthread_mutex_lock(&s->lock);
    while (td_clock_mono_ms() < s->due) {
        struct timespec ts;
        td_clock_mono_deadline(s->due, &ts);
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    s->woke = 1;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void test_jump_wakes_a_sleeper(void **state)
{
    struct sleeper s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    pthread_condattr_t ca;
    struct timespec limit;
    pthread_t t;

    (void)state;
    put("0\n");
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s.cond, &ca);
    pthread_condattr_destroy(&ca);
    s.due = td_clock_mono_ms() + 3600000;
    assert_int_equal(pthread_create(&t, NULL, sleep_until_due, &s), 0);
    put("3600000\n");
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 60;                 /* generous: it takes a slice (20 ms) */
    assert_int_equal(pthread_timedjoin_np(t, NULL, &limit), 0);
    assert_int_equal(s.woke, 1);
    pthread_cond_destroy(&s.cond);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_moves_wall_and_monotonic),
        cmocka_unit_test(test_a_torn_file_keeps_the_offset),
        cmocka_unit_test(test_deadline_is_sliced),
        cmocka_unit_test(test_jump_wakes_a_sleeper),
    };
    int rc;

    if (!mkdtemp(dir)) return 1;
    snprintf(file, sizeof file, "%s/clock", dir);
    /* Before the first reading: the process reads the variable once. */
    setenv("TOKENDIST_TEST_CLOCK_FILE", file, 1);
    rc = cmocka_run_group_tests_name("clock", tests, NULL, NULL);
    unlink(file);
    rmdir(dir);
    return rc;
}
