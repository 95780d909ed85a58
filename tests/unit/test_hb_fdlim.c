#include "hb_fdlim.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

static void test_this_machine(void **state)
{
    hb_fdlim_t l;
    (void)state;
    hb_fdlim_compute(20000, 2, 100000, &l);
    assert_int_equal(l.nofile, 20000);
    assert_int_equal(l.reserve, 96 + 2 * 16);
    assert_int_equal(l.sockets, 20000 - 128);
    /* the head room's cap: 18,000 clients fit in 20,000 descriptors */
    assert_int_equal(l.connections, l.sockets - HB_FDLIM_HEAD_MAX);
    assert_true(l.connections >= 18000);
}

static void test_head_room_is_an_eighth_up_to_its_cap(void **state)
{
    hb_fdlim_t l;
    (void)state;
    hb_fdlim_compute(8000, 1, 100000, &l); /* below the cap: an eighth */
    assert_int_equal(l.connections, l.sockets - l.sockets / 8);
    hb_fdlim_compute(1 << 20, 1, 10000000, &l);
    assert_int_equal(l.connections, l.sockets - HB_FDLIM_HEAD_MAX);
}

static void test_max_connections_below_the_limit(void **state)
{
    hb_fdlim_t l;
    (void)state;
    hb_fdlim_compute(1 << 20, 4, 5000, &l);
    assert_int_equal(l.connections, 5000);
    assert_int_equal(l.sockets, (1 << 20) - 96 - 64);
}

static void test_small_limits(void **state)
{
    hb_fdlim_t l;
    (void)state;
    hb_fdlim_compute(256, 1, 100000, &l);
    assert_int_equal(l.sockets, 256 - 112);
    assert_int_equal(l.connections, l.sockets - l.sockets / 8);
    hb_fdlim_compute(64, 8, 100000, &l); /* fewer descriptors than the reserve */
    assert_int_equal(l.sockets, 32);
    assert_int_equal(l.reserve, 32);
    assert_int_equal(l.connections, 24);
    hb_fdlim_compute(0, 1, 100000, &l);
    assert_int_equal(l.sockets, HB_FDLIM_MIN_SOCKETS);
    assert_int_equal(l.reserve, 0);
    assert_int_equal(l.connections, 8);
    hb_fdlim_compute(-5, 0, 0, &l);
    assert_int_equal(l.nofile, 0);
    assert_int_equal(l.connections, 1);
}

static void test_huge_limits_are_capped(void **state)
{
    hb_fdlim_t l;
    (void)state;
    hb_fdlim_compute(LONG_MAX, INT_MAX, LONG_MAX, &l);
    assert_int_equal(l.nofile, HB_FDLIM_NOFILE_MAX);
    assert_true(l.sockets >= HB_FDLIM_MIN_SOCKETS);
    assert_true(l.connections >= 1 && l.connections < l.sockets);
    assert_int_equal(hb_fdlim_wanted(64, LONG_MAX), HB_FDLIM_NOFILE_MAX);
    assert_int_equal(hb_fdlim_wanted(64, 10000000), 10000000 + HB_FDLIM_HEAD_MAX + 96 + 64 * 16);
    assert_int_equal(hb_fdlim_wanted(1, 700), 700 + 700 / 7 + 8 + 96 + 16);
}

static void test_wanted_fits_max_connections(void **state)
{
    (void)state;
    const long conns[] = {1, 7, 8, 100, 1000, 7100, 7112, 7200, 12345, 100000, 10000000};
    for (int t = 1; t <= 64; t *= 4)
        for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
            hb_fdlim_t l;
            hb_fdlim_compute(hb_fdlim_wanted(t, conns[i]), t, conns[i], &l);
            assert_int_equal(l.connections, conns[i]);
            /* and not much more than needed */
            hb_fdlim_compute(hb_fdlim_wanted(t, conns[i]) - 32, t, conns[i], &l);
            if (conns[i] > 100)
                assert_true(l.connections < conns[i]);
        }
    assert_int_equal(hb_fdlim_wanted(0, 0), hb_fdlim_wanted(1, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_this_machine),
        cmocka_unit_test(test_head_room_is_an_eighth_up_to_its_cap),
        cmocka_unit_test(test_max_connections_below_the_limit),
        cmocka_unit_test(test_small_limits),
        cmocka_unit_test(test_huge_limits_are_capped),
        cmocka_unit_test(test_wanted_fits_max_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
