/* Redis key and channel names (see hb_keys.h). */
#include "hb_keys.h"

#include <limits.h>
#include <stdio.h>

#include "hb_err.h"

/* n is what snprintf returned for out[cap]: the length, or HB_ELIMIT with out emptied. */
static int fit(char *out, size_t cap, int n)
{
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        return HB_ELIMIT;
    }
    return n;
}

int hb_keys_topic(char *out, size_t cap, const char *prefix, const char *topic, size_t tlen,
                  hb_key_kind_t kind)
{
    static const char *const suffix[] = {":log", ":epoch", ":live"};
    if ((unsigned)kind >= sizeof(suffix) / sizeof(suffix[0])) {
        if (cap)
            out[0] = '\0';
        return HB_EINVAL;
    }
    if (tlen > INT_MAX)
        return fit(out, cap, -1);
    return fit(out, cap, snprintf(out, cap, "%s{%.*s}%s", prefix, (int)tlen, topic, suffix[kind]));
}

int hb_keys_idem(char *out, size_t cap, const char *prefix, const char *topic, size_t tlen,
                 const char *key)
{
    if (tlen > INT_MAX)
        return fit(out, cap, -1);
    return fit(out, cap, snprintf(out, cap, "%s{%.*s}:idem:%s", prefix, (int)tlen, topic, key));
}

int hb_keys_fence(char *out, size_t cap, const char *prefix, const char *tag)
{
    return fit(out, cap, snprintf(out, cap, "%sfence:{%s}", prefix, tag));
}

int hb_keys_barrier(char *out, size_t cap, const char *prefix, const char *token, unsigned long n)
{
    return fit(out, cap, snprintf(out, cap, "%sbarrier:%s:%lu", prefix, token, n));
}

int hb_keys_dataset(char *out, size_t cap, const char *prefix)
{
    return fit(out, cap, snprintf(out, cap, "%sdataset", prefix));
}
