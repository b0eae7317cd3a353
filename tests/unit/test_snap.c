/* Unit tests for snap: the served table's name limit, decided by claims
 * before a record is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "snap.h"
#include "tokendist.h"

#include <stdio.h>
#include <string.h>

static td_snap *snap_of(const char *name, int64_t gen)
{
    char json[128];
    int n = snprintf(json, sizeof json, "{\"access_token\": \"t-%s\"}", name);
    td_snap *s = td_snap_new(name, json, (size_t)n, gen, gen + 7200);
    assert_non_null(s);
    return s;
}

static void fill(td_snaps *t, size_t n)
{
    char name[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "n%04zu", i);
        assert_int_equal(td_snaps_install(t, snap_of(name, 1)), TD_OK);
    }
}

/* The last place: one writer's claim holds it, every other new name is
 * refused before anything is written, and the claimed name fits. */
static void test_claim_holds_the_last_place(void **state)
{
    td_snaps t;
    (void)state;

    td_snaps_init(&t);
    fill(&t, TD_SNAP_NAMES_MAX - 1);
    assert_int_equal(td_snaps_claim(&t, "first"), TD_OK);
    assert_int_equal(td_snaps_claim(&t, "second"), TD_ETOOBIG);
    assert_int_equal(td_snaps_claim(&t, "first"), TD_OK);   /* a second writer of the same name */
    assert_int_equal(td_snaps_claim(&t, "n0000"), TD_OK);   /* a served name always may be written */
    td_snaps_unclaim(&t, "n0000");
    /* A reload meeting a name nobody claimed leaves the place to the claim. */
    assert_int_equal(td_snaps_install(&t, snap_of("reloaded", 1)), TD_ETOOBIG);
    assert_int_equal(td_snaps_install(&t, snap_of("first", 1)), TD_OK);
    assert_int_equal(t.n, TD_SNAP_NAMES_MAX);
    td_snaps_unclaim(&t, "first");
    td_snaps_unclaim(&t, "first");
    assert_int_equal(t.nclaims, 0);
    assert_int_equal(td_snaps_claim(&t, "second"), TD_ETOOBIG);
    td_snaps_free(&t);
}

/* A write that failed gives its place back. */
static void test_unclaim_frees_the_place(void **state)
{
    td_snaps t;
    td_snap *s;
    (void)state;

    td_snaps_init(&t);
    fill(&t, TD_SNAP_NAMES_MAX - 1);
    assert_int_equal(td_snaps_claim(&t, "failed"), TD_OK);
    td_snaps_unclaim(&t, "failed");
    assert_int_equal(td_snaps_claim(&t, "next"), TD_OK);
    assert_int_equal(td_snaps_install(&t, snap_of("next", 1)), TD_OK);
    td_snaps_unclaim(&t, "next");
    assert_non_null(s = td_snaps_get(&t, "next"));
    td_snap_release(s);
    assert_null(td_snaps_get(&t, "failed"));
    td_snaps_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_holds_the_last_place),
        cmocka_unit_test(test_unclaim_frees_the_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
