#ifndef HERALD_COMMON_HB_WHEEL_H
#define HERALD_COMMON_HB_WHEEL_H

#include <stddef.h>
#include <stdint.h>

/*
 * A hashed timing wheel of intrusive timers: per-connection deadlines (SSE heartbeats and peer
 * checks) that cost nothing while nothing is due. Arming and cancelling are O(1); advancing
 * visits only the slots whose ticks passed, and in them only the timers hashed there (a timer
 * more than HB_WHEEL_SLOTS ticks away is looked at once per turn of the wheel and left).
 * lws 4.1's own lws_sul keeps one list sorted by deadline per thread, so arming one of N
 * connections' timers walks up to N nodes; that is why connections do not get an lws_sul each.
 * No allocation, no clock: the caller counts ticks. One wheel is owned by one thread.
 */
#define HB_WHEEL_SLOTS 256 /* a power of two */

typedef struct hb_wheel_node {
    struct hb_wheel_node *prev, *next; /* NULL when not armed */
    uint64_t due;                      /* tick at or after which it fires */
} hb_wheel_node_t;

typedef struct hb_wheel {
    hb_wheel_node_t slot[HB_WHEEL_SLOTS]; /* list heads (circular, sentinel) */
    uint64_t now;                         /* last tick advanced to */
    size_t count;                         /* armed timers */
} hb_wheel_t;

/** hb_wheel_init() - an empty wheel whose clock reads `now` (ticks). */
void hb_wheel_init(hb_wheel_t *w, uint64_t now);

/** hb_wheel_node_init() - a node that is not armed (a zeroed node is one too). */
static inline void hb_wheel_node_init(hb_wheel_node_t *n)
{
    n->prev = n->next = NULL;
    n->due = 0;
}

/** hb_wheel_armed() - 1 when n is armed (waiting in a wheel), else 0. */
static inline int hb_wheel_armed(const hb_wheel_node_t *n)
{
    return n->next != NULL;
}

/**
 * hb_wheel_arm() - (re)arms n to fire at tick `due`; a due at or before w->now fires at the next
 * hb_wheel_advance(). An armed n is moved. O(1).
 */
void hb_wheel_arm(hb_wheel_t *w, hb_wheel_node_t *n, uint64_t due);

/** hb_wheel_cancel() - disarms n; nothing when it is not armed. O(1). Safe from a fire callback,
 * on any node. */
void hb_wheel_cancel(hb_wheel_t *w, hb_wheel_node_t *n);

/** The callback of hb_wheel_advance(): n is disarmed when it is called; it may re-arm n, arm or
 * cancel any other node, but must not free the wheel. */
typedef void (*hb_wheel_fire_fn)(hb_wheel_node_t *n, void *arg);

/**
 * hb_wheel_advance() - moves the clock to `now` (ticks; a value at or before w->now only fires
 * what is already due) and calls fire for each timer with due <= now, in no particular order
 * within a tick. A timer armed by a callback for a tick <= now fires at the next call, not in
 * this one (a callback that re-arms for "now" cannot loop). Returns the number fired.
 */
size_t hb_wheel_advance(hb_wheel_t *w, uint64_t now, hb_wheel_fire_fn fire, void *arg);

#endif
