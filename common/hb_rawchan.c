/* Channel classification for raw PUBLISH ingest (see hb_rawchan.h). */
#include "hb_rawchan.h"

#include <string.h>

#include "hb_topic.h"

#define BARRIER "barrier:"
#define BARRIER_LEN 8
#define LIVE_SUFFIX "}:live"
#define LIVE_SUFFIX_LEN 6
#define CAUGHT ":caught"
#define CAUGHT_LEN 7

/* "barrier:" anywhere in chan (a leader's barrier channel, <prefix>barrier:<token>:<n>). */
static int has_barrier(const char *chan, size_t clen)
{
    for (size_t i = 0; i + BARRIER_LEN <= clen; i++)
        if (!memcmp(chan + i, BARRIER, BARRIER_LEN))
            return 1;
    return 0;
}

hb_rawchan_kind_t hb_rawchan_classify(const char *prefix, size_t plen, const char *chan,
                                      size_t clen)
{
    if (clen >= plen && !memcmp(chan, prefix, plen)) {
        if (clen > plen + BARRIER_LEN && !memcmp(chan + plen, BARRIER, BARRIER_LEN))
            return HB_RAWCHAN_BARRIER;
        return HB_RAWCHAN_OURS;
    }
    if (clen >= 2 && chan[0] == '_' && chan[1] == '_')
        return HB_RAWCHAN_INTERNAL;
    if ((clen >= LIVE_SUFFIX_LEN &&
         !memcmp(chan + clen - LIVE_SUFFIX_LEN, LIVE_SUFFIX, LIVE_SUFFIX_LEN)) ||
        has_barrier(chan, clen))
        return HB_RAWCHAN_FOREIGN;
    if (hb_topic_validate(chan, clen, NULL))
        return HB_RAWCHAN_BAD_TOPIC;
    return HB_RAWCHAN_RAW;
}

int hb_rawchan_is_caught(const char *chan, size_t clen)
{
    return clen > CAUGHT_LEN && !memcmp(chan + clen - CAUGHT_LEN, CAUGHT, CAUGHT_LEN);
}
