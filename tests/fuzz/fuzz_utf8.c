/*
 * hb_utf8_valid() on arbitrary bytes.
 *
 * Properties:
 *  - it agrees with a reference decoder written independently (bit patterns, then the code
 *    point's range: shortest form, no surrogate, at most U+10FFFF);
 *  - validity composes: for every split point, valid(a + b) holds when valid(a) and valid(b)
 *    do, and valid(a + b) with a valid a implies that b is valid, when the split falls on a
 *    character boundary (so a message split over WebSocket fragments is judged as a whole);
 *  - every prefix of a valid string that ends on a character boundary is valid.
 */
#include <stdint.h>

#include "fuzz_util.h"
#include "hb_utf8.h"

static int ref_valid(const uint8_t *p, size_t n)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int v = hb_utf8_valid(data, size);
    FZ_CHECK(v == 0 || v == 1);
    FZ_CHECK(v == ref_valid(data, size));
    if (size > 4096)
        return 0; /* the quadratic checks below stay cheap */
    for (size_t cut = 0; cut <= size; cut++) {
        int a = hb_utf8_valid(data, cut), b = hb_utf8_valid(data + cut, size - cut);
        int boundary = cut == size || (data[cut] & 0xc0) != 0x80;
        if (a && b)
            FZ_CHECK(v);
        if (v && boundary)
            FZ_CHECK(a && b);
    }
    return 0;
}
