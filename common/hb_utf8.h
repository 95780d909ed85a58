#ifndef HERALD_COMMON_HB_UTF8_H
#define HERALD_COMMON_HB_UTF8_H

#include <stddef.h>

/*
 * UTF-8 validation as RFC 6455 demands of text messages and close reasons (RFC 3629 and
 * Unicode 3.9 Table 3-7): no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no truncated sequence at the end. U+0000 is valid. Pure, any thread.
 */

/** hb_utf8_valid() - 1 when (s, n) is well-formed UTF-8 (n == 0 included), else 0. s may be NULL
 * only when n is 0. Linear in n, no allocation. */
int hb_utf8_valid(const void *s, size_t n);

#endif
