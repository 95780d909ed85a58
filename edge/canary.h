#ifndef HERALD_EDGE_CANARY_H
#define HERALD_EDGE_CANARY_H

/*
 * The delivery canary: "connected" does not prove that pub/sub still delivers (a failover or a
 * half-dead connection can stop it in silence). Every CANARY_INTERVAL the edge publishes a small
 * heartbeat through the function library (<lib>_canary, PUBLISH like an event's) on its own
 * channel <prefix>{canary:<node-id>:<random>}:live, subscribed on the subscriber connection, and
 * expects it back. Unheard for CANARY_STALE: /readyz 503 "canary stale", a log line, and the
 * subscriber connection is replaced (after as long again); heard again: every topic is refilled
 * from history as after a reconnection. herald_canary_age_seconds says how long it has been.
 * Single Redis and Sentinel (the master the edge uses): this file. Redis Cluster: one canary per
 * primary the edge subscribes on (cluster_canary.c, NULL hb_canary_t). Both run the one
 * heartbeat state machine below (hb_canary_beat_t).
 */

#include <stdio.h>

#include <hiredis/hiredis.h>

struct hb_broker;
/* A heartbeat a second: cheap (one FCALL, one message per edge), and fine enough that a stop
 * shows within CANARY_STALE. */
#define CANARY_INTERVAL 1.0
/* Unheard this long: stale. Three intervals, so that one heartbeat lost or late (a slow Redis,
 * a loaded edge) does not flap readiness, and still "within a few seconds". */
#define CANARY_STALE 3.0
/* Stale this much longer: the subscriber connection is replaced (a half-dead connection never
 * comes back by itself; a new one is subscribed and refilled like after any reconnection). */
#define CANARY_RECONNECT 3.0

/*
 * The heartbeat state machine shared by both canaries (this file's, one per subscriber
 * connection, and cluster_canary.c's, one per primary): publish every CANARY_INTERVAL, stale
 * when unheard for CANARY_STALE, replace the subscriber connection when stale for
 * CANARY_RECONNECT more, refill every topic when heard again after being stale. It only keeps
 * the times and says what is due; the caller publishes, logs, replaces and refills. Embedded by
 * its owner; pure (no I/O, no loop); {broker thread} like its owner.
 */
typedef struct hb_canary_beat {
    double expect;          /* heard last, or began to expect it (hb_now() time) */
    double last_pub;        /* last heartbeat sent; 0: none since hb_canary_beat_restart() */
    unsigned long long seq; /* heartbeats sent */
    int heard;              /* heard since hb_canary_beat_restart() */
    int stale;              /* went stale (hb_canary_beat_check()), not heard since */
} hb_canary_beat_t;

/* What hb_canary_beat_check() found due; a bit set. */
#define HB_CANARY_WENT_STALE 1 /* unheard for CANARY_STALE: stale from now on (log, not ready) */
#define HB_CANARY_REPLACE 2    /* stale for CANARY_RECONNECT more: replace the connection */

/**
 * hb_canary_beat_restart() - a (new) subscription of the heartbeat channel: expect a heartbeat
 * from now, none sent or heard on it yet. stale is kept: a stale canary stays so until heard.
 */
void hb_canary_beat_restart(hb_canary_beat_t *h, double now);
/** hb_canary_beat_due() - 1 when a heartbeat should be sent now (CANARY_INTERVAL since the
 * last, or none sent since the restart). */
int hb_canary_beat_due(const hb_canary_beat_t *h, double now);
/** hb_canary_beat_sent() - a heartbeat is sent now; returns its sequence number (from 1). */
unsigned long long hb_canary_beat_sent(hb_canary_beat_t *h, double now);
/**
 * hb_canary_beat_heard() - a heartbeat came back now: no longer stale. Returns 1 when it was
 * stale (the caller logs it and refills every topic), else 0.
 */
int hb_canary_beat_heard(hb_canary_beat_t *h, double now);
/**
 * hb_canary_beat_check() - what is due at now: HB_CANARY_WENT_STALE (set once, when it goes
 * stale; h->stale is set), HB_CANARY_REPLACE (on every check while stale for CANARY_STALE +
 * CANARY_RECONNECT: a replacement connection restarts the clock), both, or 0. *age gets the
 * seconds since it was last heard or expected.
 */
int hb_canary_beat_check(hb_canary_beat_t *h, double now, double *age);

typedef struct hb_canary hb_canary_t;

/** hb_canary_new() - the canary of broker b (not started); aborts on OOM. {broker thread} */
hb_canary_t *hb_canary_new(struct hb_broker *b);
/** hb_canary_free() - accepts NULL. {broker thread} */
void hb_canary_free(hb_canary_t *c);
/** hb_canary_sub_up() - the subscriber connection (re)connected: subscribe the canary channel
 * and wait for a heartbeat again. {broker thread} */
void hb_canary_sub_up(hb_canary_t *c);
/** hb_canary_on_reply() - a reply on the subscriber connection: 1 when it was the canary's
 * (consumed), else 0. {broker thread} */
int hb_canary_on_reply(hb_canary_t *c, const redisReply *r);
/** hb_canary_tick() - publish when due, and notice staleness; from the broker tick. A publish
 * that cannot be sent waits for the next tick. {broker thread} */
void hb_canary_tick(hb_canary_t *c);
/** hb_canary_ok() - 1 when a heartbeat came back on this subscriber connection within
 * CANARY_STALE, else 0. {broker thread} */
int hb_canary_ok(const hb_canary_t *c);
/**
 * hb_canary_report() - cluster mode (cluster_canary.c): expect is the monotonic time (hb_now())
 * the oldest watched node was last heard or began to be expected, -1 for no canary (a value,
 * not an error); stale is 1
 * while any node's canary is stale. Published in stats.canary_expect_us / canary_stale, which
 * /readyz and /metrics read. {broker thread}
 */
void hb_canary_report(struct hb_broker *b, double expect, int stale);

#endif
