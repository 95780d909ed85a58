#ifndef HERALD_TESTS_UTF8_REF_H
#define HERALD_TESTS_UTF8_REF_H
/* The reference UTF-8 check that tests/unit/test_hb_utf8.c and tests/fuzz/fuzz_utf8.c compare
 * hb_utf8_valid() with. */
#include <stddef.h>

/*
 * Reference: decode by the bit patterns, then judge the code point (shortest form, not a
 * surrogate, at most U+10FFFF). Written differently from hb_utf8 on purpose.
 */
static inline int ref_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i], need, cp;
        if ((c & 0x80) == 0) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const unsigned min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

#endif
