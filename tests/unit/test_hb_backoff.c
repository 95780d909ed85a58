#include "hb_backoff.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

static void test_doubles_to_the_cap(void **state)
{
    hb_backoff_t b = {.min_ms = 100, .max_ms = 5000};
    long want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        /* rnd 0: the lower end of the jitter; a huge rnd still lands within [step/2, step] */
        long lo = hb_backoff_next(&b, 0);
        assert_int_equal(b.step_ms, want[i]);
        assert_int_equal(lo, want[i] / 2);
        b.step_ms = i ? want[i - 1] : 0;
        long hi = hb_backoff_next(&b, want[i] / 2); /* rnd % (step/2 + 1) == step/2 */
        assert_int_equal(hi, want[i]);
        b.step_ms = i ? want[i - 1] : 0;
        long any = hb_backoff_next(&b, LONG_MAX);
        assert_true(any >= want[i] / 2 && any <= want[i]);
    }
}

static void test_reset_and_limits(void **state)
{
    hb_backoff_t b = {.min_ms = 1, .max_ms = LONG_MAX};
    (void)state;
    assert_int_equal(hb_backoff_next(&b, 0), 0); /* a 1 ms step: 0 or 1 ms */
    assert_int_equal(hb_backoff_next(&b, 1), 1 + 1 % 2);
    b.step_ms = LONG_MAX / 2 + 1; /* doubling would overflow: stays at the cap */
    (void)hb_backoff_next(&b, 0);
    assert_true(b.step_ms == LONG_MAX);
    assert_true(hb_backoff_next(&b, -5) >= LONG_MAX / 2); /* a negative rnd is folded */
    hb_backoff_reset(&b);
    assert_int_equal(b.step_ms, 0);
    assert_int_equal(hb_backoff_next(&b, 0), 0);
    assert_int_equal(b.step_ms, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_to_the_cap),
        cmocka_unit_test(test_reset_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
