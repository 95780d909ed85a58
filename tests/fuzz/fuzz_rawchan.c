/*
 * hb_rawchan_classify() against a reference written from its documented order: our prefix
 * (BARRIER when "barrier:" and more follow it), "__", a "}:live" suffix or "barrier:" anywhere,
 * then the topic grammar.
 *
 * Input: a prefix length byte, then the bytes of a channel heard by PSUBSCRIBE "*" (the prefix
 * is taken from the start of those bytes when the length byte is odd, else "herald:").
 */
#include "fuzz_util.h"
#include "hb_rawchan.h"
#include "hb_topic.h"

static int contains(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, needle, k))
            return 1;
    return 0;
}

static hb_rawchan_kind_t ref(const char *p, size_t pl, const char *c, size_t cl)
{
    if (cl >= pl && !memcmp(c, p, pl))
        return cl > pl + 8 && !memcmp(c + pl, "barrier:", 8) ? HB_RAWCHAN_BARRIER : HB_RAWCHAN_OURS;
    if (cl >= 2 && c[0] == '_' && c[1] == '_')
        return HB_RAWCHAN_INTERNAL;
    if ((cl >= 6 && !memcmp(c + cl - 6, "}:live", 6)) || contains(c, cl, "barrier:"))
        return HB_RAWCHAN_FOREIGN;
    return hb_topic_validate(c, cl, NULL) ? HB_RAWCHAN_BAD_TOPIC : HB_RAWCHAN_RAW;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *prefix = "herald:";
    size_t pl = 7;
    char *s;
    if (size == 0)
        return 0;
    s = fz_dup(data + 1, size - 1);
    if (data[0] & 1) {
        prefix = s;
        pl = (size_t)(data[0] >> 1) < size - 1 ? (size_t)(data[0] >> 1) : size - 1;
    }
    FZ_CHECK(hb_rawchan_classify(prefix, pl, s, size - 1) == ref(prefix, pl, s, size - 1));
    FZ_CHECK(hb_rawchan_is_caught(s, size - 1) ==
             (size - 1 > 7 && !memcmp(s + size - 1 - 7, ":caught", 7)));
    free(s);
    return 0;
}
