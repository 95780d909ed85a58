#include "hb_id.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hb_err.h"

#define ID_PART_DIGITS_MAX 20 /* UINT64_MAX has 20 digits */
#define STR_(x) #x
#define STR(x) STR_(x)

/* The reasons below spell these limits out. */
_Static_assert(HB_ID_STR_MAX - 1 == 41, "stream id reason");
_Static_assert(HB_CURSOR_MAX - 1 == 58, "cursor reason");

static void set_reason(const char **reason, const char *r)
{
    if (reason)
        *reason = r;
}

/*
 * Parse 1..20 ASCII digits as an unsigned 64-bit number. Leading zeros are accepted, as Redis
 * does. Returns NULL or the reason it is not one.
 */
static const char *parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0)
        return "stream id part is empty";
    if (len > ID_PART_DIGITS_MAX)
        return "stream id part longer than 20 digits";
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9')
            return "stream id part is not a decimal number";
        unsigned d = c - '0';
        if (v > (UINT64_MAX - d) / 10)
            return "stream id part out of range";
        v = v * 10 + d;
    }
    *out = v;
    return NULL;
}

int hb_id_parse(const char *s, size_t len, hb_id_t *out, const char **reason)
{
    if (len == 0) {
        set_reason(reason, "stream id is empty");
        return HB_EPROTO;
    }
    if (len > HB_ID_STR_MAX - 1) {
        set_reason(reason, "stream id longer than 41 bytes");
        return HB_EPROTO;
    }
    const char *dash = memchr(s, '-', len);
    if (dash == NULL) {
        set_reason(reason, "stream id is not <ms>-<seq>");
        return HB_EPROTO;
    }
    hb_id_t id;
    size_t ms_len = (size_t)(dash - s);
    const char *r = parse_u64(s, ms_len, &id.ms);
    if (r == NULL)
        r = parse_u64(dash + 1, len - ms_len - 1, &id.seq);
    if (r != NULL) {
        set_reason(reason, r);
        return HB_EPROTO;
    }
    *out = id;
    return HB_OK;
}

int hb_id_cmp(const hb_id_t *a, const hb_id_t *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

/* v in decimal at out, at most 20 digits, no NUL; returns how many. Not snprintf(): a cursor
 * is formatted for every long-poll answer and multi-topic SSE delivery, and libc's formatter
 * took about 1,200 instructions for the two numbers (callgrind, tests/bench/poll_cost.py). */
static size_t u64_dec(uint64_t v, char *out)
{
    char t[20];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = t[n - 1 - i];
    return n;
}

size_t hb_id_format(const hb_id_t *id, char *out)
{
    size_t n = u64_dec(id->ms, out);
    out[n++] = '-';
    n += u64_dec(id->seq, out + n);
    out[n] = '\0';
    return n;
}

int hb_id_is_zero(const hb_id_t *id)
{
    return id->ms == 0 && id->seq == 0;
}

static int is_epoch_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

int hb_epoch_valid(const char *s, size_t len)
{
    if (len == 0 || len > HB_EPOCH_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_epoch_byte((unsigned char)s[i]))
            return 0;
    return 1;
}

int hb_cursor_parse(const char *s, size_t len, hb_cursor_t *out, const char **reason)
{
    if (len == 0) {
        set_reason(reason, "cursor is empty");
        return HB_EPROTO;
    }
    if (len > HB_CURSOR_MAX - 1) {
        set_reason(reason, "cursor longer than 58 bytes");
        return HB_EPROTO;
    }
    const char *us = memchr(s, '_', len);
    size_t id_len = us ? (size_t)(us - s) : len;
    size_t ep_len = us ? len - id_len - 1 : 0;
    hb_cursor_t c;
    if (hb_id_parse(s, id_len, &c.id, reason) != HB_OK)
        return HB_EPROTO;
    if (us != NULL) {
        if (ep_len == 0) {
            set_reason(reason, "cursor epoch is empty");
            return HB_EPROTO;
        }
        if (ep_len > HB_EPOCH_MAX) {
            set_reason(reason, "cursor epoch longer than " STR(HB_EPOCH_MAX) " bytes");
            return HB_EPROTO;
        }
        for (size_t i = 0; i < ep_len; i++) {
            if (!is_epoch_byte((unsigned char)us[1 + i])) {
                set_reason(reason, "cursor epoch has a byte outside [0-9a-z]");
                return HB_EPROTO;
            }
        }
        memcpy(c.epoch, us + 1, ep_len);
    }
    c.epoch[ep_len] = '\0';
    *out = c;
    return HB_OK;
}

size_t hb_cursor_format(const hb_id_t *id, const char *epoch, char *out)
{
    size_t n = hb_id_format(id, out);
    if (epoch != NULL && epoch[0] != '\0') {
        /* out holds HB_CURSOR_MAX bytes: never copy more than HB_EPOCH_MAX of the epoch. */
        size_t ep_len = strnlen(epoch, HB_EPOCH_MAX);
        out[n++] = '_';
        memcpy(out + n, epoch, ep_len);
        n += ep_len;
        out[n] = '\0';
    }
    return n;
}
