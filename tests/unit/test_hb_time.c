#include "hb_time.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

/* The monotonic clock never goes back and moves with time. */
static void test_monotonic(void **state)
{
    double a = hb_now(), b;
    struct timespec d = {0, 20 * 1000 * 1000};
    (void)state;
    nanosleep(&d, NULL);
    b = hb_now();
    assert_true(b >= a + 0.015);
    assert_true(b < a + 5.0);
}

/* The wall clock is time(2)'s, in microseconds (what stream IDs count in ms). */
static void test_wall(void **state)
{
    long long us = hb_wall_us();
    time_t t = time(NULL);
    (void)state;
    assert_true(us / 1000000 >= (long long)t - 1 && us / 1000000 <= (long long)t + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_wall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
