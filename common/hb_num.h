#ifndef HERALD_COMMON_HB_NUM_H
#define HERALD_COMMON_HB_NUM_H

/* Strict decimal numbers from configuration text. Pure; any thread. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "hb_err.h"

/**
 * hb_parse_long() - v, a whole decimal integer ("-" allowed, no spaces, no "+", no trailing
 * bytes) that fits a long, into *out. 0, or HB_EINVAL (*out untouched).
 */
static inline int hb_parse_long(const char *v, long *out)
{
    char *end;
    long x;
    if (!isdigit((unsigned char)v[0]) && !(v[0] == '-' && isdigit((unsigned char)v[1])))
        return HB_EINVAL; /* strtol would skip spaces and take a sign */
    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || end == v || *end)
        return HB_EINVAL;
    *out = x;
    return 0;
}

#endif
