/* hb_json: the same bytes as jansson's json_dumps() for every string, at the edges of each
 * escape class and for random valid UTF-8. */
#include "hb_json.h"
#include "hb_utf8.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

/* hb_json's output and jansson's for (s, n), compared. */
static void same_as_jansson(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    char *want, *got;
    size_t size, put;
    assert_non_null(v); /* the inputs here are valid UTF-8 */
    want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    assert_non_null(want);
    size = hb_json_str_size(s, n);
    got = malloc(size + 1);
    assert_non_null(got);
    put = hb_json_str_put(got, s, n);
    got[put] = '\0';
    assert_int_equal(put, size);
    assert_int_equal(put, strlen(want));
    assert_string_equal(got, want);
    free(got);
    free(want);
}

static void test_every_byte_below_0x80(void **state)
{
    (void)state;
    for (int c = 0; c < 0x80; c++) {
        char s[3] = {'a', (char)c, 'z'};
        same_as_jansson(s, 3);
        same_as_jansson(s + 1, 1);
    }
}

static void test_limits(void **state)
{
    (void)state;
    same_as_jansson("", 0);
    same_as_jansson("\x1f\x20\x7f", 3);                 /* last escaped, first plain; DEL plain */
    same_as_jansson("a/b\\c\"d", 7);                    /* '/' is not escaped */
    same_as_jansson("\xc2\x80\xdf\xbf", 4);             /* two-byte ends */
    same_as_jansson("\xe2\x80\xa8\xe2\x80\xa9", 6);     /* U+2028, U+2029 as they are */
    same_as_jansson("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7); /* U+FFFF, U+10FFFF */
    same_as_jansson("\x00\x00", 2);                     /* NUL inside a string */
    assert_int_equal(hb_json_str_size("\x01", 1), 8);
    assert_int_equal(hb_json_str_size("\n", 1), 4);
    assert_int_equal(hb_json_str_size("ab", 2), 4);
}

/* Random valid UTF-8 strings, control characters and quotes over-represented. */
static void test_random(void **state)
{
    static const unsigned cps[] = {0,     1,     8,      9,      10,     12,      13,
                                   31,    32,    34,     47,     92,     127,     128,
                                   0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0x10000, 0x10ffff};
    unsigned seed = 12345;
    (void)state;
    for (int round = 0; round < 5000; round++) {
        unsigned char s[256];
        size_t n = 0;
        int len = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
        for (int i = 0; i < len; i++) {
            unsigned r = (seed = seed * 1103515245u + 12345u) >> 16;
            unsigned cp = r % 3 ? cps[r % (sizeof(cps) / sizeof(cps[0]))] : r % 0x7f;
            if (cp < 0x80) {
                s[n++] = (unsigned char)cp;
            } else if (cp < 0x800) {
                s[n++] = (unsigned char)(0xc0 | cp >> 6);
                s[n++] = (unsigned char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                s[n++] = (unsigned char)(0xe0 | cp >> 12);
                s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3f));
            } else {
                s[n++] = (unsigned char)(0xf0 | cp >> 18);
                s[n++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
                s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3f));
            }
        }
        assert_true(hb_utf8_valid(s, n));
        same_as_jansson((const char *)s, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_below_0x80),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
