/*
 * hb_id_parse() and hb_cursor_parse() against an independent reference parser written from
 * their contracts, plus format/parse round trips and hb_id_cmp() consistency.
 *
 * Input: the bytes given to the parsers (a Last-Event-ID header or a lastEventId value).
 */
#include <inttypes.h>

#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_id.h"

/* Reference: 1..20 decimal digits, value <= UINT64_MAX (leading zeros allowed). */
static int ref_u64(const uint8_t *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return 0;
    unsigned __int128 v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v > UINT64_MAX)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Reference: "<ms>-<seq>", at most 41 bytes; the first '-' separates. */
static int ref_id(const uint8_t *s, size_t n, hb_id_t *out)
{
    if (n == 0 || n > 41)
        return 0;
    const uint8_t *dash = memchr(s, '-', n);
    if (!dash)
        return 0;
    size_t a = (size_t)(dash - s);
    return ref_u64(s, a, &out->ms) && ref_u64(dash + 1, n - a - 1, &out->seq);
}

/* Reference: "<id>" or "<id>_<epoch>", epoch 1..16 of [0-9a-z], total at most 58 bytes. */
static int ref_cursor(const uint8_t *s, size_t n, hb_cursor_t *out)
{
    if (n == 0 || n > 58)
        return 0;
    const uint8_t *us = memchr(s, '_', n);
    size_t idn = us ? (size_t)(us - s) : n;
    if (!ref_id(s, idn, &out->id))
        return 0;
    memset(out->epoch, 0, sizeof(out->epoch));
    if (!us)
        return 1;
    size_t en = n - idn - 1;
    if (en == 0 || en > 16)
        return 0;
    for (size_t i = 0; i < en; i++) {
        uint8_t c = us[1 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    memcpy(out->epoch, us + 1, en);
    return 1;
}

static void check_id(const char *s, size_t n)
{
    hb_id_t got, want;
    const char *reason = NULL;
    memset(&got, 0xa5, sizeof(got));
    hb_id_t before = got;
    int rc = hb_id_parse(s, n, &got, &reason);
    int ok = ref_id((const uint8_t *)s, n, &want);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO);
    FZ_CHECK((rc == HB_OK) == ok);
    if (rc != HB_OK) {
        FZ_CHECK(fz_reason_ok(reason));
        FZ_CHECK(memcmp(&got, &before, sizeof(got)) == 0); /* out untouched on error */
        return;
    }
    FZ_CHECK(got.ms == want.ms && got.seq == want.seq);
    /* format -> parse is the identity, and the formatted form is canonical */
    char buf[HB_ID_STR_MAX];
    size_t len = hb_id_format(&got, buf);
    FZ_CHECK(len > 0 && len < HB_ID_STR_MAX && buf[len] == '\0' && strlen(buf) == len);
    hb_id_t again;
    FZ_CHECK(hb_id_parse(buf, len, &again, NULL) == HB_OK);
    FZ_CHECK(hb_id_cmp(&again, &got) == 0);
    char ref[64];
    snprintf(ref, sizeof(ref), "%" PRIu64 "-%" PRIu64, got.ms, got.seq);
    FZ_CHECK(strcmp(ref, buf) == 0);
    FZ_CHECK(hb_id_is_zero(&got) == (got.ms == 0 && got.seq == 0));
}

static void check_cursor(const char *s, size_t n)
{
    hb_cursor_t got, want;
    const char *reason = NULL;
    memset(&got, 0x5a, sizeof(got));
    hb_cursor_t before = got;
    int rc = hb_cursor_parse(s, n, &got, &reason);
    int ok = ref_cursor((const uint8_t *)s, n, &want);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO);
    FZ_CHECK((rc == HB_OK) == ok);
    if (rc != HB_OK) {
        FZ_CHECK(fz_reason_ok(reason));
        FZ_CHECK(memcmp(&got, &before, sizeof(got)) == 0);
        return;
    }
    FZ_CHECK(hb_id_cmp(&got.id, &want.id) == 0);
    FZ_CHECK(strlen(got.epoch) <= HB_EPOCH_MAX && strcmp(got.epoch, want.epoch) == 0);
    char buf[HB_CURSOR_MAX];
    size_t len = hb_cursor_format(&got.id, got.epoch, buf);
    FZ_CHECK(len < HB_CURSOR_MAX && buf[len] == '\0' && strlen(buf) == len);
    hb_cursor_t again;
    FZ_CHECK(hb_cursor_parse(buf, len, &again, NULL) == HB_OK);
    FZ_CHECK(hb_id_cmp(&again.id, &got.id) == 0 && strcmp(again.epoch, got.epoch) == 0);
    /* The formatted cursor differs from the input only when the input had leading zeros. */
    if (len != n || memcmp(buf, s, n) != 0) {
        const char *dash = memchr(s, '-', n);
        size_t ms_len = (size_t)(dash - s);
        FZ_CHECK((ms_len > 1 && s[0] == '0') ||
                 (dash[1] == '0' && n - ms_len > 2 && dash[2] >= '0' && dash[2] <= '9'));
    }
}

/* hb_id_cmp is a total order: antisymmetric, and agrees with the numeric order. */
static void check_cmp(const uint8_t *data, size_t size)
{
    if (size < 32)
        return;
    hb_id_t a, b;
    memcpy(&a.ms, data, 8);
    memcpy(&a.seq, data + 8, 8);
    memcpy(&b.ms, data + 16, 8);
    memcpy(&b.seq, data + 24, 8);
    if (data[0] & 1)
        b.ms = a.ms; /* exercise the seq tie-break often */
    int ab = hb_id_cmp(&a, &b), ba = hb_id_cmp(&b, &a);
    FZ_CHECK((ab > 0) - (ab < 0) == -((ba > 0) - (ba < 0)));
    int want =
        a.ms != b.ms ? (a.ms < b.ms ? -1 : 1) : (a.seq != b.seq ? (a.seq < b.seq ? -1 : 1) : 0);
    FZ_CHECK((ab > 0) - (ab < 0) == want);
    FZ_CHECK(hb_id_cmp(&a, &a) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_dup(data, size);
    check_id(s, size);
    check_cursor(s, size);
    check_cmp(data, size);
    free(s);
    return 0;
}
