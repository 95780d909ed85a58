#ifndef HERALD_COMMON_HB_LIVE_H
#define HERALD_COMMON_HB_LIVE_H

#include <stddef.h>

#include "hb_id.h"

/*
 * The live-channel message: what herald_publish PUBLISHes on <prefix>{<topic>}:live after the
 * XADD. Binary-safe: the header fields never contain '|', the payload is everything after the
 * fifth '|' and may hold any byte.
 *
 *     H1|<stream id>|<epoch>|<event name or empty>|<flags>|<payload>
 *
 * flags: a (possibly empty) string of letters; "r" = stored by raw-PUBLISH ingest.
 */
#define HB_LIVE_FLAG_RAW 0x1

typedef struct hb_live {
    hb_id_t id;
    const char *epoch; /* points into the input; epoch_len bytes */
    size_t epoch_len;
    const char *event; /* points into the input; NULL when ev_len == 0 */
    size_t ev_len;
    unsigned flags;    /* HB_LIVE_FLAG_* */
    const char *data;  /* points into the input */
    size_t data_len;
} hb_live_t;

/**
 * hb_live_decode() - parse a live message; out's pointers point into (s, len), which must
 * outlive them. Validates the ID, the epoch ([0-9a-z], 1..HB_EPOCH_MAX), the event name
 * (hb_event_name_validate() when non-empty) and the flags (unknown letters are ignored).
 * Returns 0 or HB_EPROTO with a constant *reason.
 */
int hb_live_decode(const char *s, size_t len, hb_live_t *out, const char **reason);

/**
 * hb_live_encode() - the inverse, into a malloc'd buffer (*out, *out_len, caller frees).
 * Returns 0, HB_EINVAL for fields that would not decode, or HB_ENOMEM.
 */
int hb_live_encode(const hb_id_t *id, const char *epoch, const char *event, size_t ev_len,
                   unsigned flags, const char *data, size_t data_len, char **out,
                   size_t *out_len);

#endif
