#include "hb_page.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_budget(void **state)
{
    (void)state;
    assert_int_equal(hb_page_budget(4u << 20), HB_PAGE_BYTES_MAX); /* the default queue */
    assert_int_equal(hb_page_budget(1u << 20), 256u << 10);        /* a quarter */
    assert_int_equal(hb_page_budget(4096), 1024);                  /* the smallest queue */
    assert_int_equal(hb_page_budget(3), 1);
    assert_int_equal(hb_page_budget(0), 1);
    assert_int_equal(hb_page_budget(SIZE_MAX), HB_PAGE_BYTES_MAX);
}

static void test_room(void **state)
{
    (void)state;
    size_t qb = 1u << 20, budget = hb_page_budget(qb);
    assert_true(hb_page_room(0, 0, budget, qb, 4096));
    assert_true(hb_page_room(qb / 2 - budget, 0, budget, qb, 4096)); /* just fits */
    assert_false(hb_page_room(qb / 2 - budget + 1, 0, budget, qb, 4096));
    assert_false(hb_page_room(qb, 0, budget, qb, 4096)); /* still holds a page */
    assert_false(hb_page_room(0, 2049, budget, qb, 4096));
    assert_true(hb_page_room(0, 2048, budget, qb, 4096));
    /* no wrap-around for absurd inputs */
    assert_false(hb_page_room(SIZE_MAX, 0, budget, qb, 4096));
    assert_false(hb_page_room(0, 0, SIZE_MAX, qb, 4096));
    assert_false(hb_page_room(0, 0, 1, 1, 4096)); /* a page never fits half of 1 byte */
}

static void test_count(void **state)
{
    (void)state;
    /* 4 entries of 60 KB took 240 KB: a 256 KB budget asks for 4 */
    assert_int_equal(hb_page_count(4 * 61440, 4, 256u << 10, 500, 32), 4);
    /* small entries: limited by the batch */
    assert_int_equal(hb_page_count(32 * 100, 32, 1u << 20, 500, 32), 500);
    /* an entry larger than the budget: still one */
    assert_int_equal(hb_page_count(4u << 20, 1, 1u << 20, 500, 32), 1);
    /* nothing seen: the previous count, within the batch */
    assert_int_equal(hb_page_count(0, 0, 1u << 20, 500, 32), 32);
    assert_int_equal(hb_page_count(0, 3, 1u << 20, 10, 32), 10);
    assert_int_equal(hb_page_count(100, 0, 1u << 20, 10, 0), 1);
    /* bytes smaller than n: one byte each */
    assert_int_equal(hb_page_count(2, 8, 5, 500, 32), 5);
    /* batch 0 counts as 1; extremes do not overflow */
    assert_int_equal(hb_page_count(10, 1, 100, 0, 32), 1);
    assert_int_equal(hb_page_count(1, SIZE_MAX, SIZE_MAX, UINT32_MAX, 1), UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_room),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
