#ifndef HERALD_COMMON_HB_ID_H
#define HERALD_COMMON_HB_ID_H

#include <stddef.h>
#include <stdint.h>

/*
 * Redis stream IDs ("<ms>-<seq>", both unsigned 64-bit decimal) and client cursors.
 *
 * A cursor is what a client sends back as Last-Event-ID / since: a stream ID, optionally
 * followed by "_" and the topic's epoch (1..HB_EPOCH_MAX bytes of [0-9a-z]), e.g.
 * "1732500000000-0_lx3k9a". The epoch is a token created with the stream; a cursor whose epoch
 * differs from the stream's current one refers to history that no longer exists.
 */
#define HB_ID_STR_MAX 42 /* 20 + 1 + 20 + NUL */
#define HB_EPOCH_MAX 16
#define HB_CURSOR_MAX (HB_ID_STR_MAX + 1 + HB_EPOCH_MAX) /* with NUL */

typedef struct hb_id {
    uint64_t ms;
    uint64_t seq;
} hb_id_t;

typedef struct hb_cursor {
    hb_id_t id;
    char epoch[HB_EPOCH_MAX + 1]; /* "" when the cursor carried no epoch */
} hb_cursor_t;

/**
 * hb_id_parse() - parse "<ms>-<seq>" (exactly; no sign, no spaces, no leading "+", at most 20
 * digits each, no overflow). "<ms>" alone is rejected. Returns 0 or HB_EPROTO with *reason.
 */
int hb_id_parse(const char *s, size_t len, hb_id_t *out, const char **reason);
/** hb_id_cmp() - <0, 0, >0 as a is before, equal to, after b. */
int hb_id_cmp(const hb_id_t *a, const hb_id_t *b);
/** hb_id_format() - write "<ms>-<seq>" into out (at least HB_ID_STR_MAX bytes); returns length. */
size_t hb_id_format(const hb_id_t *id, char *out);
/** hb_id_is_zero() - 1 for 0-0. */
int hb_id_is_zero(const hb_id_t *id);
/**
 * hb_epoch_valid() - 1 when s[0..len) is an epoch: 1..HB_EPOCH_MAX bytes of [0-9a-z] (what
 * Herald creates; one read from Redis is checked before it is put in a cursor). Any thread.
 */
int hb_epoch_valid(const char *s, size_t len);

/**
 * hb_cursor_parse() - parse "<ms>-<seq>" or "<ms>-<seq>_<epoch>" (total length at most
 * HB_CURSOR_MAX - 1). Returns 0 or HB_EPROTO with a constant one-line *reason.
 */
int hb_cursor_parse(const char *s, size_t len, hb_cursor_t *out, const char **reason);
/**
 * hb_cursor_format() - write "<ms>-<seq>[_<epoch>]" (epoch omitted when empty or NULL) into
 * out (at least HB_CURSOR_MAX bytes); returns the length.
 */
size_t hb_cursor_format(const hb_id_t *id, const char *epoch, char *out);

#endif
