#ifndef HERALD_COMMON_HB_BUF_H
#define HERALD_COMMON_HB_BUF_H

#include <stdatomic.h>
#include <stddef.h>

/*
 * An immutable, reference-counted byte buffer: one encoded event shared by every recipient.
 * It is built by one thread (hb_buf_wptr/hb_buf_set_len) and never written after the first
 * hb_buf_ref() hands it out. The refcount is atomic, so refs may be released on any thread.
 * A buffer may reserve `headroom` bytes in front of the data (LWS_PRE for WebSocket frames).
 */
typedef struct hb_buf hb_buf_t;
struct hb_buf {
    atomic_uint refs;
    size_t len;      /* bytes of data */
    size_t cap;      /* bytes available for data */
    size_t headroom; /* bytes reserved before data */
    long long stamp_ms; /* an event's publish time (ms since the epoch) for latency; 0: none */
    unsigned char mem[];
};

/**
 * hb_buf_new() - allocate a buffer for up to `cap` bytes of data after `headroom` spare bytes,
 * with one reference owned by the caller and len 0. Returns NULL on OOM or size overflow
 * (fallible: cap may come from input, after the caller's limit check).
 */
hb_buf_t *hb_buf_new(size_t cap, size_t headroom);
/** hb_buf_from() - new buffer holding a copy of (p, len), no headroom; NULL on OOM. */
hb_buf_t *hb_buf_from(const void *p, size_t len);
/** hb_buf_ref() - take another reference; returns b. Any thread. */
hb_buf_t *hb_buf_ref(hb_buf_t *b);
/** hb_buf_unref() - drop a reference, freeing on the last; accepts NULL. Any thread. */
void hb_buf_unref(hb_buf_t *b);

/** hb_buf_data() - first data byte (after the headroom). */
static inline unsigned char *hb_buf_data(const hb_buf_t *b)
{
    return (unsigned char *)b->mem + b->headroom;
}
/** hb_buf_len() - data length. */
static inline size_t hb_buf_len(const hb_buf_t *b)
{
    return b->len;
}
/** hb_buf_refs() - current refcount (for tests and metrics). */
static inline unsigned hb_buf_refs(const hb_buf_t *b)
{
    return atomic_load(&((hb_buf_t *)b)->refs);
}
/**
 * hb_buf_append() - append (p, len) while building (before sharing). Returns 0, or HB_ELIMIT
 * when it does not fit in cap (nothing is written then).
 */
int hb_buf_append(hb_buf_t *b, const void *p, size_t len);

#endif
