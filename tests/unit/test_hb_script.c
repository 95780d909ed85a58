#include "hb_script.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

static void test_name_default_prefix(void **state)
{
    char out[HB_SCRIPT_NAME_MAX];
    (void)state;
    assert_int_equal(hb_script_name("herald:", out, sizeof(out)), HB_OK);
    assert_string_equal(out, "herald"); /* FCALL herald_publish stays the documented path */
}

static void test_name_other_prefixes(void **state)
{
    char out[HB_SCRIPT_NAME_MAX];
    (void)state;
    assert_int_equal(hb_script_name("a:", out, sizeof(out)), HB_OK);
    assert_string_equal(out, "herald_a_c");
    assert_int_equal(hb_script_name("herald.", out, sizeof(out)), HB_OK);
    assert_string_equal(out, "herald_herald_d");
    assert_int_equal(hb_script_name("x-y:z", out, sizeof(out)), HB_OK);
    assert_string_equal(out, "herald_x_hy_cz");
    assert_int_equal(hb_script_name("herald", out, sizeof(out)), HB_OK);
    assert_string_equal(out, "herald_herald"); /* not the default library */
}

static void test_name_one_to_one(void **state)
{
    /* prefixes that differ only in their punctuation get different names */
    const char *p[] = {"a:", "a.", "a-", "a::", "a:.", "a", "ac", "a_c"};
    char names[8][HB_SCRIPT_NAME_MAX];
    (void)state;
    for (int i = 0; i < 7; i++)
        assert_int_equal(hb_script_name(p[i], names[i], sizeof(names[i])), HB_OK);
    for (int i = 0; i < 7; i++)
        for (int j = i + 1; j < 7; j++)
            assert_string_not_equal(names[i], names[j]);
    /* '_' is not a prefix byte: refused rather than ambiguous */
    assert_int_equal(hb_script_name(p[7], names[7], sizeof(names[7])), HB_EINVAL);
}

/* Function names are global in Redis: no prefix's function is one of the default library's
 * (e.g. prefix "lease" must not give herald_lease_renew). */
static void test_fn_no_clash_with_default(void **state)
{
    const char *fns[] = {"publish",     "ingest",        "ingest_many", "fence", "lease_acquire",
                         "lease_renew", "lease_release", "history",     "info",  "canary"};
    const char *prefixes[] = {"lease", "ingest", "ingest:", "lease.", "a"};
    size_t nf = sizeof(fns) / sizeof(fns[0]);
    (void)state;
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        char lib[HB_SCRIPT_NAME_MAX];
        assert_int_equal(hb_script_name(prefixes[p], lib, sizeof(lib)), HB_OK);
        for (size_t i = 0; i < nf; i++) {
            char mine[HB_SCRIPT_FN_MAX];
            assert_int_equal(hb_script_fn(lib, fns[i], mine, sizeof(mine)), HB_OK);
            for (size_t j = 0; j < nf; j++) {
                char def[HB_SCRIPT_FN_MAX];
                assert_int_equal(hb_script_fn("herald", fns[j], def, sizeof(def)), HB_OK);
                assert_string_not_equal(mine, def);
            }
        }
    }
}

static void test_name_bounds(void **state)
{
    char prefix[64], out[HB_SCRIPT_NAME_MAX], small[8], fn[HB_SCRIPT_FN_MAX];
    (void)state;
    memset(prefix, ':', 63);
    prefix[63] = '\0';
    assert_int_equal(hb_script_name(prefix, out, sizeof(out)), HB_OK); /* the longest */
    assert_int_equal(strlen(out), 7 + 2 * 63);
    assert_int_equal(hb_script_fn(out, "lease_release", fn, sizeof(fn)), HB_OK);
    assert_int_equal(hb_script_name("abcdefgh:", small, sizeof(small)), HB_EINVAL);
    assert_int_equal(hb_script_fn("herald", "publish", small, sizeof(small)), HB_EINVAL);
    assert_int_equal(hb_script_fn("herald", "publish", fn, sizeof(fn)), HB_OK);
    assert_string_equal(fn, "herald_publish");
}

static void test_library_named_and_versioned(void **state)
{
    char *lib = hb_script_library("a:", 7, 60, 1024, 0);
    char *set = hb_script_settings("a:", 7, 60, 1024, 0);
    (void)state;
    assert_non_null(strstr(lib, "#!lua name=herald_a_c\n"));
    assert_non_null(strstr(lib, "local F = 'herald_a_c'\n"));
    assert_non_null(strstr(lib, "local P = 'a:'\n"));
    assert_non_null(strstr(lib, "F .. '_publish'"));
    assert_non_null(strstr(lib, "F .. '_info'"));
    assert_null(strstr(lib, "'herald_publish'")); /* no global name baked in */
    assert_string_equal(set, "prefix=a: history_max=7 history_ttl=60 max_message_bytes=1024 "
                             "cluster=0");
    assert_non_null(strstr(lib, set));
    free(lib);
    free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_default_prefix),
        cmocka_unit_test(test_name_other_prefixes),
        cmocka_unit_test(test_name_one_to_one),
        cmocka_unit_test(test_fn_no_clash_with_default),
        cmocka_unit_test(test_name_bounds),
        cmocka_unit_test(test_library_named_and_versioned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
