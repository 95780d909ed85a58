#include "hb_bucket.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

static void test_burst_then_rate(void **state)
{
    hb_bucket_t b;
    (void)state;
    hb_bucket_init(&b, 8, 64, 100.0);           /* times below are exact in binary */
    assert_true(hb_bucket_take(&b, 64, 100.0)); /* a full bucket: one whole burst */
    assert_false(hb_bucket_take(&b, 1, 100.0));
    assert_false(hb_bucket_take(&b, 2, 100.125)); /* 1 token back after 1/8 s */
    assert_true(hb_bucket_take(&b, 1, 100.125));  /* the refused take took nothing */
    assert_false(hb_bucket_take(&b, 1, 100.125));
    assert_true(hb_bucket_take(&b, 10, 101.375));
    assert_false(hb_bucket_take(&b, 1, 101.375));
    assert_true(hb_bucket_take(&b, 64, 1e9)); /* a long quiet spell fills it, no more */
    assert_false(hb_bucket_take(&b, 1, 1e9));
}

static void test_all_or_nothing_and_edges(void **state)
{
    hb_bucket_t b;
    (void)state;
    hb_bucket_init(&b, 5, 4, 0.0);
    assert_false(hb_bucket_take(&b, 5, 0.0)); /* over the burst: never */
    assert_true(hb_bucket_take(&b, 4, 0.0));
    assert_true(hb_bucket_take(&b, 0, 0.0));    /* nothing asked: always */
    assert_false(hb_bucket_take(&b, 1, -50.0)); /* the clock went back: nothing added */
    assert_true(hb_bucket_take(&b, 1, 0.25));
    hb_bucket_init(&b, 0, 0, 0.0); /* rate 0: no limit */
    for (int i = 0; i < 1000; i++)
        assert_true(hb_bucket_take(&b, 4096, 0.0));
    hb_bucket_init(&b, 1, 0, 0.0); /* burst below 1 holds one */
    assert_true(hb_bucket_take(&b, 1, 0.0));
    assert_false(hb_bucket_take(&b, 1, 0.5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_all_or_nothing_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
