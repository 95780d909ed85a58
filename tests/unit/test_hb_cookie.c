/* hb_cookie_find(): the --auth-cookie lookup. A cookie is found by its exact name only: a name
 * that ends or starts with it, or the name inside another cookie's value, must not give its
 * value (libwebsockets 4.1's lws_http_cookie_get() matched substrings, so `mytok=` or
 * `pref=tok=` carried the token cookie). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hb_cookie.h"

/* the value of `name` in hdr as a string ("<none>" when not found) */
static const char *find(const char *hdr, const char *name)
{
    static char out[256];
    const char *v;
    size_t n;
    if (!hb_cookie_find(hdr, strlen(hdr), name, &v, &n))
        return "<none>";
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

static void test_exact_name(void **state)
{
    (void)state;
    assert_string_equal(find("tok=abc", "tok"), "abc");
    assert_string_equal(find("a=1; tok=abc; b=2", "tok"), "abc");
    assert_string_equal(find("a=1;tok=abc", "tok"), "abc");
    assert_string_equal(find("  tok = abc  ;", "tok"), "abc");
    assert_string_equal(find("tok=\"abc\"", "tok"), "abc");
    assert_string_equal(find("tok=", "tok"), "");
    assert_string_equal(find("a=1, tok=abc", "tok"), "<none>"); /* "," is in a=1's value */
}

static void test_not_another_cookie(void **state)
{
    (void)state;
    assert_string_equal(find("mytok=abc", "tok"), "<none>");
    assert_string_equal(find("toke=abc", "tok"), "<none>");
    assert_string_equal(find("pref=tok=abc", "tok"), "<none>");
    assert_string_equal(find("TOK=abc", "tok"), "<none>");
    assert_string_equal(find("tok", "tok"), "<none>");
    assert_string_equal(find("", "tok"), "<none>");
    assert_string_equal(find(";;; ,", "tok"), "<none>");
    assert_string_equal(find("pref=x,tok=abc", "tok"), "<none>");
    /* the first exact one, not an earlier lookalike */
    assert_string_equal(find("mytok=evil; tok=good", "tok"), "good");
    assert_string_equal(find("tok=first; tok=second", "tok"), "first");
}

static void test_value_is_within_the_header(void **state)
{
    /* the header is not NUL-terminated: nothing past len is read */
    const char hdr[] = "tok=abcXYZ";
    const char *v;
    size_t n;
    (void)state;
    assert_int_equal(hb_cookie_find(hdr, 7, "tok", &v, &n), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "abc", 3);
    assert_int_equal(hb_cookie_find(hdr, 3, "tok", &v, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_name),
        cmocka_unit_test(test_not_another_cookie),
        cmocka_unit_test(test_value_is_within_the_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
