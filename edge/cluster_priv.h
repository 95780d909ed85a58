#ifndef HERALD_EDGE_CLUSTER_PRIV_H
#define HERALD_EDGE_CLUSTER_PRIV_H

/*
 * Internals of the Redis Cluster mode shared by its files, bottom to top, each calling only
 * downward: cluster.c (nodes, their command connections, the slot map, readiness),
 * cluster_route.c (routed commands with MOVED/ASK/TRYAGAIN handling and per-slot order),
 * cluster_canary.c (the canary per node), cluster_sub.c (sharded subscriptions) and
 * cluster_life.c (lifecycle, the tick).
 * Broker thread only; nothing here blocks.
 */
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "canary.h"
#include "cluster.h"
#include "hb_backoff.h"
#include "rconn.h"
#include "hb_cfg.h"
#include "hb_slot.h"
#include "psconn.h"

#define CONNECT_TIMEOUT_MS 3000 /* a node's command or sharded-pub/sub connect */

typedef struct cnode cnode_t;

/* A node's delivery canary (cluster_canary.c); zeroed with the node. */
typedef struct ccanary {
    char chan[HB_CFG_STR_MAX * 2 + 96]; /* <prefix>{canary:<node-id>:<rnd>:<k>}:live */
    size_t clen;
    unsigned slot;             /* of chan */
    unsigned long rnd;         /* this edge's random part, fixed once chosen (never 0) */
    int subscribed, confirmed; /* SSUBSCRIBE sent on the current sharded connection / answered */
    hb_canary_beat_t beat;     /* the heartbeat state machine (canary.h) */
} ccanary_t;

/* One routed command; owned by the cluster until its callback ran. */
typedef struct rcmd {
    struct rcmd *next;
    hb_cluster_t *cl;
    redisCallbackFn *fn;
    void *priv;
    char *cmd;
    size_t len;
    unsigned slot;
    int redirects;
    cnode_t *ask; /* ASK target: send ASKING + the command there */
    double deadline;
    int held; /* counted in slot_held: waited in the retry list, ordered with its slot */
} rcmd_t;

/* A cluster node we talk to. Lives until the cluster is freed. */
struct cnode {
    cnode_t *next;
    hb_cluster_t *cl;
    char host[HB_SLOT_HOST_MAX + 1];
    int port;
    hb_rconn_t rc; /* commands (rconn.h): rc.ac NULL while disconnected; backoff
                    * BACKOFF_MIN_MS..BACKOFF_MAX_MS */
    int ready;     /* function library loaded (rc set up) */
    int primary;   /* serves slots in the current map */
    int seed;
    int idx; /* its index in the current map while primary */
    hb_psconn_t *sub;
    ccanary_t canary;
};

struct hb_cluster {
    hb_broker_t *b;
    cnode_t *nodes;
    size_t nnodes;
    hb_slot_map_t *map;                   /* NULL until the first whole map */
    cnode_t *owner_of[HB_SLOT_NODES_MAX]; /* map node index -> node */
    int refresh_inflight, want_refresh;
    double last_refresh;
    int resub;
    /* Held commands: per slot, a FIFO of those waiting (qhead/qtail) and at most one in flight
     * (slot_sending); slot_held counts both. A new command of a slot with held ones queues
     * behind them, so a slot's commands reach Redis in order across a retry. Slots with
     * waiting commands are listed in `ready` (once each) for on_retry(). */
    size_t nretry; /* waiting, all slots */
    struct event *retry_ev;
    rcmd_t *qhead[HB_SLOT_COUNT], *qtail[HB_SLOT_COUNT];
    uint32_t slot_held[HB_SLOT_COUNT];
    uint8_t slot_sending[HB_SLOT_COUNT];
    uint8_t in_ready[HB_SLOT_COUNT];
    uint16_t ready[HB_SLOT_COUNT];
    size_t nready;
    redisAsyncContext fail_ac; /* handed to callbacks when no node answered: only ->data is set */
    size_t ing_next;
    char (*tags)[HB_SLOT_TAG_MAX]; /* slot -> hash tag of its fence key (hb_slot_tag_table) */
    int stopping;
};

/* ---- cluster.c ---- */

/**
 * cluster__node_get() - the node at host:port, created (not connected) on first use. NULL when
 * NODES_MAX addresses are already known (logged, rate-limited). Aborts on OOM.
 */
cnode_t *cluster__node_get(hb_cluster_t *cl, const char *host, int port);
/** cluster__node_by_ac() - the node whose command context is ac, or NULL (linear walk). */
cnode_t *cluster__node_by_ac(hb_cluster_t *cl, const redisAsyncContext *ac);
/** cluster__owner() - the node serving slot in the current map, or NULL (no map, not found). */
cnode_t *cluster__owner(hb_cluster_t *cl, unsigned slot);
/**
 * cluster__node_connect() - starts n's command connection unless it has one, a reconnect is
 * scheduled or the cluster is stopping; failures reschedule it with backoff.
 */
void cluster__node_connect(cnode_t *n);
/**
 * cluster__refresh() - asks a ready node for CLUSTER SLOTS (at most one in flight, rate-limited);
 * with no ready node, connects the primaries and seeds and leaves want_refresh set.
 */
void cluster__refresh(hb_cluster_t *cl);

/* ---- cluster_route.c ---- */

/**
 * cluster__rcmd_finish() - runs rc's callback once with (ac, or the fail context when NULL; r,
 * NULL for an unknown outcome), frees rc, and lets its slot's next held command go.
 */
void cluster__rcmd_finish(rcmd_t *rc, redisAsyncContext *ac, redisReply *r);
/** cluster__on_retry() - the retry event (arg: the cluster): sends each listed slot's next held
 * command. */
void cluster__on_retry(evutil_socket_t fd, short what, void *arg);

/* ---- cluster_sub.c ---- */

/**
 * cluster__resubscribe() - when marked (cl->resub) and the map is known: subscribes every wanted
 * idle topic on its owner and unsubscribes those left on a node that lost their slot.
 */
void cluster__resubscribe(hb_cluster_t *cl);
/**
 * cluster__sub_open() - starts n's sharded-pub/sub connection unless it has one; 0, or -1 when
 * it could not even start (no address, no socket): the caller tries again later.
 */
int cluster__sub_open(cnode_t *n);
/**
 * cluster__sub_drop() - closes n's sharded-pub/sub connection as if it had died (its topics go
 * back to idle, to be resubscribed and refilled) and opens a new one.
 */
void cluster__sub_drop(cnode_t *n);

/* ---- cluster_canary.c ---- */

/** cluster__canary_sub_up() - n's sharded connection is up: SSUBSCRIBE its canary channel. */
void cluster__canary_sub_up(cnode_t *n);
/** cluster__canary_sub_down() - n's sharded connection is gone (stale, if set, stays set). */
void cluster__canary_sub_down(cnode_t *n);
/** cluster__canary_reply() - a reply on n's sharded connection: 1 when it was the canary's
 * (consumed), else 0. r is not NULL. */
int cluster__canary_reply(cnode_t *n, const redisReply *r);
/**
 * cluster__canary_subscribe() - SSUBSCRIBE n's canary channel (picked on a slot n serves) on
 * its sharded connection and start the heartbeat clock at now; nothing when no channel can be
 * picked or the command cannot be sent (the next tick tries again).
 */
void cluster__canary_subscribe(cnode_t *n, double now);
/**
 * cluster__canary_publish() - sends n's next heartbeat (the library's canary function) on its
 * command connection; nothing while that connection is not ready.
 */
void cluster__canary_publish(cnode_t *n, double now);
/**
 * cluster__canary_watched() - 1 when n's canary counts: n serves slots and holds a live
 * sharded connection; else 0.
 */
int cluster__canary_watched(const cnode_t *n);
/** cluster__canary_report() - hands the oldest node's age and any staleness to canary.c (what
 * /readyz and /metrics read). */
void cluster__canary_report(hb_cluster_t *cl);

/* ---- cluster_life.c: lifecycle and the tick, the top of the cluster's files ---- */

/** cluster__canary_tick() - per node: subscribe, publish when due, notice staleness, replace a
 * stale node's sharded connection; from hb_cluster_tick(). */
void cluster__canary_tick(hb_cluster_t *cl);

#endif
