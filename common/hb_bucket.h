#ifndef HERALD_COMMON_HB_BUCKET_H
#define HERALD_COMMON_HB_BUCKET_H

/*
 * A token bucket: `rate` tokens a second, at most `burst` held (a full bucket at the start).
 * What a caller takes is all or nothing. Pure: the caller passes the monotonic time
 * (hb_now()). Owned by one thread; no allocation, no failure.
 */

typedef struct hb_bucket {
    double rate;   /* tokens per second; 0: no limit (every take succeeds) */
    double burst;  /* most tokens held */
    double tokens; /* held at `at` */
    double at;     /* seconds, the time tokens was brought up to */
} hb_bucket_t;

/** hb_bucket_init() - a full bucket of `burst` (at least 1) filling at `rate` (0: no limit). */
void hb_bucket_init(hb_bucket_t *b, double rate, double burst, double now);

/**
 * hb_bucket_take() - takes n tokens at `now`: 1 when the bucket held them (taken), 0 when not
 * (nothing taken). n 0 always succeeds; n above the burst never does. A clock that goes back
 * adds nothing.
 */
int hb_bucket_take(hb_bucket_t *b, unsigned n, double now);

#endif
