#include "hb_prom.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

static void test_family_and_sample(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;
    assert_non_null(f);
    hb_prom_family(f, "herald_x_total", "counter", "Things; a \\ and\na newline.");
    hb_prom_sample(f, "herald_x_total", "", 42);
    hb_prom_sample(f, "herald_x_total", "{k=\"v\"}", 18446744073709551615ull);
    fclose(f);
    assert_string_equal(buf, "# HELP herald_x_total Things; a \\\\ and\\na newline.\n"
                             "# TYPE herald_x_total counter\n"
                             "herald_x_total 42\n"
                             "herald_x_total{k=\"v\"} 18446744073709551615\n");
    free(buf);
}

/* A value from outside cannot close the label, the line or the exposition. */
static void test_label_escapes(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(hb_prom_label(out, sizeof(out), "addr", "10.0.0.1:6379"), 22);
    assert_string_equal(out, "{addr=\"10.0.0.1:6379\"}");
    assert_int_equal(hb_prom_label(out, sizeof(out), "addr", "a\"} 1\nevil 2\\"), 25);
    assert_string_equal(out, "{addr=\"a\\\"} 1\\nevil 2\\\\\"}");
    assert_int_equal(hb_prom_label(out, sizeof(out), "addr", ""), 9);
    assert_string_equal(out, "{addr=\"\"}");
}

/* At the limit: {k="xyz"} is 9 bytes, so cap 10 holds it with its NUL and cap 9 does not; an
 * escape needs both its bytes. */
static void test_label_limits(void **state)
{
    char out[64], big[200];
    (void)state;
    assert_int_equal(hb_prom_label(out, 10, "k", "xyz"), 9);
    assert_int_equal(hb_prom_label(out, 9, "k", "xyz"), HB_ELIMIT);
    assert_string_equal(out, "");
    assert_int_equal(hb_prom_label(out, 10, "k", "x\"z"), HB_ELIMIT); /* 10 bytes + NUL */
    assert_int_equal(hb_prom_label(out, 11, "k", "x\"z"), 10);
    assert_int_equal(hb_prom_label(out, 3, "k", ""), HB_ELIMIT);
    /* the documented bound always fits, even all escapes */
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    {
        char *o = malloc(HB_PROM_LABEL_MAX(sizeof(big) - 1));
        assert_int_equal(hb_prom_label(o, HB_PROM_LABEL_MAX(sizeof(big) - 1), "addr", big),
                         (int)(9 + 2 * (sizeof(big) - 1)));
        free(o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_sample),
        cmocka_unit_test(test_label_escapes),
        cmocka_unit_test(test_label_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
