/* Unit tests for freeze: a stop of the whole process is seen by whichever
 * thread looks first after it, counts for an interval that it ended in,
 * and not for one that began after it.  A freeze is made here as the
 * black-box tests make one: a jump ahead of the test clock (clock.h), and
 * once for real, with SIGSTOP sent to ourselves from a child. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "clock.h"
#include "freeze.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/td-freeze-XXXXXX";
static char file[64];
static long offset_ms;

/* As the tests' harness moves the clock: a new file renamed over the old. */
static void advance(long ms)
{
    char tmp[80];
    FILE *f;

    offset_ms += ms;
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    assert_non_null(f = fopen(tmp, "w"));
    fprintf(f, "%ld\n", offset_ms);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, file), 0);
    usleep(5000); /* the file is looked at once a millisecond at most */
}

static void test_a_jump_ahead_is_a_freeze_for_what_it_ended_in(void **state)
{
    int64_t before;

    (void)state;
    before = td_freeze_mark();
    usleep(300 * 1000); /* the watcher looks: a quiet quarter second is no freeze */
    assert_int_equal(td_freeze_since(before), 0);
    advance(60 * 1000);
    /* Seen at once by the caller, without waiting for the watcher. */
    assert_int_equal(td_freeze_since(before), 1);
    /* A mark taken after the thaw is not inside the freeze, whoever
     * looked first -- here the watcher, a moment later. */
    {
        int64_t after = td_freeze_mark();
        usleep(300 * 1000);
        assert_int_equal(td_freeze_since(after), 0);
        assert_int_equal(td_freeze_since(before), 1);
    }
}

static void test_a_jump_back_is_none(void **state)
{
    int64_t mark;

    (void)state;
    mark = td_freeze_mark();
    advance(-30 * 1000);
    usleep(1000 * 1000); /* the watcher's look forgets the freeze that now lies ahead */
    assert_int_equal(td_freeze_since(mark - 30 * 1000), 0);
    assert_int_equal(td_freeze_since(td_freeze_mark()), 0);
}

static void test_a_real_stop_is_a_freeze(void **state)
{
    int64_t mark;
    pid_t child, me = getpid();

    (void)state;
    mark = td_freeze_mark();
    if ((child = fork()) == 0) {
        kill(me, SIGSTOP);
        usleep((TD_FREEZE_MIN_MS + 1000) * 1000);
        kill(me, SIGCONT);
        _exit(0);
    }
    assert_true(child > 0);
    assert_int_equal(waitpid(child, NULL, 0), child); /* we were stopped meanwhile */
    assert_int_equal(td_freeze_since(mark), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_jump_ahead_is_a_freeze_for_what_it_ended_in),
        cmocka_unit_test(test_a_jump_back_is_none),
        cmocka_unit_test(test_a_real_stop_is_a_freeze),
    };
    int rc;

    if (!mkdtemp(dir)) return 1;
    snprintf(file, sizeof file, "%s/clock", dir);
    setenv("TOKENDIST_TEST_CLOCK_FILE", file, 1);
    rc = cmocka_run_group_tests_name("freeze", tests, NULL, NULL);
    unlink(file);
    rmdir(dir);
    return rc;
}
