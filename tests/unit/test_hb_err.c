#include "hb_err.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

static void test_every_code_named(void **state)
{
    (void)state;
    assert_string_equal(hb_strerror(HB_OK), "ok");
    assert_string_equal(hb_strerror(HB_ENOMEM), "out of memory");
    assert_string_equal(hb_strerror(HB_EPROTO), "malformed input");
    assert_string_equal(hb_strerror(HB_ELIMIT), "limit exceeded");
    assert_string_equal(hb_strerror(HB_EAGAIN), "try again");
    assert_string_equal(hb_strerror(HB_EINVAL), "invalid argument");
    assert_string_equal(hb_strerror(HB_ENOTFOUND), "not found");
    assert_string_equal(hb_strerror(HB_EIO), "i/o error");
}

static void test_names_distinct_and_unknown(void **state)
{
    (void)state;
    const int codes[] = {HB_OK,     HB_ENOMEM, HB_EPROTO,    HB_ELIMIT,
                         HB_EAGAIN, HB_EINVAL, HB_ENOTFOUND, HB_EIO};
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(hb_strerror(codes[i]), hb_strerror(codes[j]));
    assert_string_equal(hb_strerror(-1000), "unknown error");
    assert_string_equal(hb_strerror(1), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_named),
        cmocka_unit_test(test_names_distinct_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
