#ifndef HERALD_COMMON_HB_TIME_H
#define HERALD_COMMON_HB_TIME_H

/*
 * The two clocks Herald reads: the monotonic one for timeouts and ages (never jumps), and the
 * wall clock for what Redis stream IDs are made of (ms since the epoch). Static inline; any
 * thread; they cannot fail (clock_gettime on these clocks does not).
 */
#include <time.h>

/** hb_now() - the monotonic clock in seconds. */
static inline double hb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/** hb_wall_us() - the wall clock in microseconds since the epoch. */
static inline long long hb_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
