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
#include "../unit/utf8_ref.h"

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
