#include "hb_hist.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *render(hb_hist_t *const *hs, int nh)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    hb_hist_write(f, "x_seconds", "help text.", hs, nh);
    fclose(f);
    return buf;
}

static void test_bounds_are_increasing(void **state)
{
    (void)state;
    for (int i = 1; i < HB_HIST_BUCKETS; i++)
        assert_true(hb_hist_bound_us(i) > hb_hist_bound_us(i - 1));
    assert_int_equal(hb_hist_bound_us(-1), -1);
    assert_int_equal(hb_hist_bound_us(HB_HIST_BUCKETS), -1);
}

/* A value equal to a bound falls in that bucket (le is inclusive); one above in the next. */
static void test_le_is_inclusive(void **state)
{
    (void)state;
    hb_hist_t h;
    memset(&h, 0, sizeof(h));
    hb_hist_observe(&h, 1000, 1);
    hb_hist_observe(&h, 1001, 1);
    assert_int_equal(h.counts[1], 1); /* le 0.001 */
    assert_int_equal(h.counts[2], 1); /* le 0.0025 */
    assert_int_equal(h.sum_us, 2001);
}

static void test_negative_counts_as_zero_and_huge_as_inf(void **state)
{
    (void)state;
    hb_hist_t h;
    memset(&h, 0, sizeof(h));
    hb_hist_observe(&h, -5000, 1); /* clocks apart: never a negative latency */
    hb_hist_observe(&h, 60LL * 1000000, 2);
    assert_int_equal(h.counts[0], 1);
    assert_int_equal(h.counts[HB_HIST_BUCKETS], 2);
    assert_int_equal(h.sum_us, 120000000ULL);
}

/* The text sums several per-thread histograms, cumulatively, with +Inf equal to _count. */
static void test_write_sums_threads_cumulatively(void **state)
{
    (void)state;
    hb_hist_t a, b;
    hb_hist_t *hs[2] = {&a, &b};
    char *t;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    hb_hist_observe(&a, 300, 3);     /* 0.0005 */
    hb_hist_observe(&b, 20000, 1);   /* 0.025 */
    hb_hist_observe(&b, 20000000, 1); /* +Inf */
    t = render(hs, 2);
    assert_non_null(strstr(t, "# TYPE x_seconds histogram\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{le=\"0.0005\"} 3\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{le=\"0.01\"} 3\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{le=\"0.025\"} 4\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{le=\"10\"} 4\n"));
    assert_non_null(strstr(t, "x_seconds_bucket{le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(t, "x_seconds_count 5\n"));
    assert_non_null(strstr(t, "x_seconds_sum 20.020900\n"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_are_increasing),
        cmocka_unit_test(test_le_is_inclusive),
        cmocka_unit_test(test_negative_counts_as_zero_and_huge_as_inf),
        cmocka_unit_test(test_write_sums_threads_cumulatively),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
