#include "hb_utf8.h"
#include "utf8_ref.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

static size_t encode(unsigned cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

#define V(s) hb_utf8_valid(s, sizeof(s) - 1)

static void test_examples(void **state)
{
    (void)state;
    assert_true(hb_utf8_valid(NULL, 0));
    assert_true(hb_utf8_valid("", 0));
    assert_true(V("plain ascii {\"a\":1}"));
    assert_true(V("\x00"));                             /* U+0000 is a character */
    assert_true(V("\xc2\x80\xdf\xbf"));                 /* U+0080, U+07FF */
    assert_true(V("\xe0\xa0\x80\xef\xbf\xbf"));         /* U+0800, U+FFFF */
    assert_true(V("\xed\x9f\xbf\xee\x80\x80"));         /* U+D7FF, U+E000 */
    assert_true(V("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf")); /* U+10000, U+10FFFF */
    assert_true(V("\xe2\x82\xac \xf0\x9f\x98\x80"));    /* euro, emoji */

    assert_false(V("\x80")); /* lone continuation */
    assert_false(V("\xbf"));
    assert_false(V("\xc0\xaf")); /* overlong '/' */
    assert_false(V("\xc1\xbf"));
    assert_false(V("\xe0\x80\xaf"));     /* overlong, 3 bytes */
    assert_false(V("\xe0\x9f\xbf"));     /* overlong U+07FF */
    assert_false(V("\xf0\x80\x80\xaf")); /* overlong, 4 bytes */
    assert_false(V("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
    assert_false(V("\xed\xa0\x80"));     /* U+D800 */
    assert_false(V("\xed\xbf\xbf"));     /* U+DFFF */
    assert_false(V("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(V("\xf5\x80\x80\x80"));
    assert_false(V("\xfe"));
    assert_false(V("\xff"));
    assert_false(V("\xc2")); /* truncated */
    assert_false(V("\xe2\x82"));
    assert_false(V("\xf0\x9f\x98"));
    assert_false(V("\xc2\x41")); /* continuation missing */
    assert_false(V("\xe2\x28\xa1"));
    assert_false(V("\xf0\x9f\x98\x41"));
    assert_false(V("ok\xe2\x82\xac\x80")); /* valid, then a stray continuation */
    /* the length is respected: a valid prefix of an invalid buffer is valid */
    assert_true(hb_utf8_valid("ab\xff", 2));
    assert_false(hb_utf8_valid("\xe2\x82\xac", 2));
}

/* Every scalar value encodes to valid UTF-8; every surrogate's encoding is invalid. */
static void test_every_code_point(void **state)
{
    (void)state;
    unsigned char b[8];
    for (unsigned cp = 0; cp <= 0x10ffff; cp++) {
        size_t n = encode(cp, b);
        int want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (hb_utf8_valid(b, n) != want)
            fail_msg("U+%04X: got %d", cp, !want);
        if (n > 1 && hb_utf8_valid(b, n - 1))
            fail_msg("U+%04X truncated accepted", cp);
    }
    /* beyond U+10FFFF with the 4-byte pattern */
    for (unsigned cp = 0x110000; cp < 0x200000; cp += 0x1011) {
        size_t n = encode(cp, b);
        assert_false(hb_utf8_valid(b, n));
    }
}

/* Every string of 1, 2 and 3 bytes (and 4-byte ones from a lead byte sample) agrees with the
 * reference decoder. */
static void test_exhaustive_short(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        assert_int_equal(hb_utf8_valid(b, 1), ref_valid(b, 1));
    }
    for (unsigned x = 0; x < 65536; x++) {
        b[0] = (unsigned char)(x >> 8), b[1] = (unsigned char)x;
        if (hb_utf8_valid(b, 2) != ref_valid(b, 2))
            fail_msg("%02x %02x", b[0], b[1]);
    }
    for (unsigned x = 0; x < (1u << 24); x++) {
        b[0] = (unsigned char)(x >> 16), b[1] = (unsigned char)(x >> 8), b[2] = (unsigned char)x;
        if (hb_utf8_valid(b, 3) != ref_valid(b, 3))
            fail_msg("%02x %02x %02x", b[0], b[1], b[2]);
    }
    static const unsigned char leads[] = {0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8};
    for (size_t l = 0; l < sizeof(leads); l++) {
        for (unsigned x = 0; x < (1u << 24); x += 7) {
            b[0] = leads[l];
            b[1] = (unsigned char)(x >> 16), b[2] = (unsigned char)(x >> 8);
            b[3] = (unsigned char)x;
            if (hb_utf8_valid(b, 4) != ref_valid(b, 4))
                fail_msg("%02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_every_code_point),
        cmocka_unit_test(test_exhaustive_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
