#include "hb_num.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>

#include <cmocka.h>

static void test_parse_long(void **state)
{
    long x = 7;
    char v[32];
    (void)state;
    assert_int_equal(hb_parse_long("0", &x), 0);
    assert_int_equal(x, 0);
    assert_int_equal(hb_parse_long("-12", &x), 0);
    assert_int_equal(x, -12);
    /* the limits of a long, and one past each */
    snprintf(v, sizeof(v), "%ld", LONG_MAX);
    assert_int_equal(hb_parse_long(v, &x), 0);
    assert_true(x == LONG_MAX);
    assert_int_equal(hb_parse_long("9223372036854775808", &x), HB_EINVAL);
    snprintf(v, sizeof(v), "%ld", LONG_MIN);
    assert_int_equal(hb_parse_long(v, &x), 0);
    assert_true(x == LONG_MIN);
    assert_int_equal(hb_parse_long("-9223372036854775809", &x), HB_EINVAL);
    assert_true(x == LONG_MIN); /* untouched on failure */
    /* strictly decimal: no spaces, no '+', nothing after */
    assert_int_equal(hb_parse_long("", &x), HB_EINVAL);
    assert_int_equal(hb_parse_long(" 1", &x), HB_EINVAL);
    assert_int_equal(hb_parse_long("+1", &x), HB_EINVAL);
    assert_int_equal(hb_parse_long("1 ", &x), HB_EINVAL);
    assert_int_equal(hb_parse_long("1x", &x), HB_EINVAL);
    assert_int_equal(hb_parse_long("-", &x), HB_EINVAL);
    assert_int_equal(hb_parse_long("0x10", &x), HB_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_long)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
