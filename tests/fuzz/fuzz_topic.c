/*
 * hb_topic_validate() and hb_event_name_validate() against reference predicates written from
 * the documented grammars: topic 1..128 bytes of [A-Za-z0-9._~@/-], event name 1..64 bytes of
 * [A-Za-z0-9._:-] not starting with "herald.". A rejection carries a constant one-line
 * reason.
 *
 * Input: the bytes of a topic (from a URL path or a raw PUBLISH channel) or an event name.
 */
#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_topic.h"

static int in_set(uint8_t c, const char *extra)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr(extra, c) != NULL;
}

static int ref_valid(const uint8_t *s, size_t n, size_t max, const char *extra)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!in_set(s[i], extra))
            return 0;
    return 1;
}

static void check(const char *s, size_t n)
{
    const char *reason = NULL;
    int rc = hb_topic_validate(s, n, &reason);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO);
    FZ_CHECK((rc == HB_OK) == ref_valid((const uint8_t *)s, n, HB_TOPIC_MAX, "._~@/-"));
    if (rc != HB_OK)
        FZ_CHECK(fz_reason_ok(reason));
    FZ_CHECK(hb_topic_validate(s, n, NULL) == rc); /* reason is optional */

    reason = NULL;
    rc = hb_event_name_validate(s, n, &reason);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO);
    FZ_CHECK((rc == HB_OK) == (ref_valid((const uint8_t *)s, n, HB_EVENT_NAME_MAX, "._:-") &&
                               !(n >= 7 && !memcmp(s, "herald.", 7))));
    if (rc != HB_OK)
        FZ_CHECK(fz_reason_ok(reason));
    FZ_CHECK(hb_event_name_validate(s, n, NULL) == rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_dup(data, size);
    check(s, size);
    /* every prefix, so the length limits are crossed by mutations of a valid name */
    if (size <= HB_TOPIC_MAX + 2)
        for (size_t i = 0; i < size; i++)
            check(s, i);
    free(s);
    return 0;
}
