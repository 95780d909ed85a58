#include "hb_origin.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(hb_cfg_origins_valid("*"), 0);
    assert_int_equal(hb_cfg_origins_valid("https://a.example"), 0);
    assert_int_equal(hb_cfg_origins_valid("https://a.example,http://[::1]:8080"), 0);
    assert_int_equal(hb_cfg_origins_valid(""), HB_EINVAL);
    assert_int_equal(hb_cfg_origins_valid("a.example"), HB_EINVAL);
    assert_int_equal(hb_cfg_origins_valid("https://"), HB_EINVAL);
    assert_int_equal(hb_cfg_origins_valid("https://a.example/"), HB_EINVAL); /* a path */
    assert_int_equal(hb_cfg_origins_valid("https://a.example, https://b"), HB_EINVAL);
    assert_int_equal(hb_cfg_origins_valid("https://a.example,"), HB_EINVAL);
    assert_int_equal(hb_cfg_origins_valid("*,https://a"), HB_EINVAL);
}

static void test_index_and_at(void **state)
{
    const char *list = "https://a.example,http://b:81";
    const char *o;
    size_t n;
    (void)state;
    assert_int_equal(hb_cfg_origin_index("*", "https://x", 9), 0);
    assert_int_equal(hb_cfg_origin_index(list, "https://a.example", 17), 1);
    assert_int_equal(hb_cfg_origin_index(list, "HTTPS://A.EXAMPLE", 17), 1); /* any case */
    assert_int_equal(hb_cfg_origin_index(list, "http://b:81", 11), 2);
    /* whole entries only: a prefix or a longer origin is not allowed */
    assert_int_equal(hb_cfg_origin_index(list, "http://b:8", 10), -1);
    assert_int_equal(hb_cfg_origin_index(list, "http://b:811", 12), -1);
    assert_int_equal(hb_cfg_origin_index(list, "https://a.example.evil", 22), -1);
    /* len bytes of origin only */
    assert_int_equal(hb_cfg_origin_index(list, "http://b:81/x", 11), 2);
    n = hb_cfg_origin_at(list, 2, &o);
    assert_int_equal(n, 11);
    assert_memory_equal(o, "http://b:81", 11);
    n = hb_cfg_origin_at(list, 1, &o);
    assert_int_equal(n, 17);
    assert_memory_equal(o, "https://a.example", 17);
    assert_int_equal(hb_cfg_origin_at(list, 0, &o), 1);
    assert_string_equal(o, "*");
    assert_int_equal(hb_cfg_origin_at(list, 3, &o), 0); /* past the end */
    assert_string_equal(o, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_index_and_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
