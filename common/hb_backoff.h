#ifndef HERALD_COMMON_HB_BACKOFF_H
#define HERALD_COMMON_HB_BACKOFF_H

/*
 * Reconnection backoff: exponential (doubling from min_ms to max_ms) with "equal jitter" (the
 * delay is drawn from [step/2, step]), so that edges that lost Redis together do not come back
 * in step. Pure: the random source is passed in. Owned by one thread (its connection's).
 */

typedef struct hb_backoff {
    long min_ms, max_ms; /* 0 < min_ms <= max_ms */
    long step_ms;        /* the last step; 0 after hb_backoff_reset() */
} hb_backoff_t;

/**
 * hb_backoff_next() - the next delay in ms: the step doubles (min_ms first, at most max_ms) and
 * the delay is step/2 + rnd % (step/2 + 1). rnd is a non-negative random number (random()).
 */
long hb_backoff_next(hb_backoff_t *b, long rnd);
/** hb_backoff_reset() - connected: the next failure starts again from min_ms. */
static inline void hb_backoff_reset(hb_backoff_t *b)
{
    b->step_ms = 0;
}

#endif
