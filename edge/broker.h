#ifndef HERALD_EDGE_BROKER_H
#define HERALD_EDGE_BROKER_H

/*
 * The broker thread's shared header: its state (hb_broker_t, one per process, created by
 * hb_broker_new() in edge.h) and the calls its files make into the broker core. Included by
 * the broker's own files (broker.c, btopic.c, brefill.c, blost.c, history.c, bconn.c: their
 * calls among themselves are in broker_priv.h) and by the other modules of the broker thread
 * (rc*.c, ingest*.c, cluster*.c, canary.c, sentinel.c, library.c, ticket.c, resolve.c). Every
 * command they send to Redis goes through the Redis command interface (rc.h). Everything
 * here belongs to the broker thread, unless a comment says otherwise.
 */

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "edge.h"
#include "hb_backoff.h"
#include "hb_dict.h"
#include "hb_list.h"
#include "hb_time.h"
#include "hb_script.h"
#include "rconn.h"
#include "ingest.h" /* raw PUBLISH ingest: hb_ingest_* (ingest.c, ingest_lease.c) */

typedef struct hb_broker hb_broker_t;

/* The names of the deployment's function library and its functions (hb_script.h), set once in
 * hb_broker_new(); read-only after. */
typedef struct hb_fnames {
    char lib[HB_SCRIPT_NAME_MAX];
    char publish[HB_SCRIPT_FN_MAX], ingest[HB_SCRIPT_FN_MAX], ingest_many[HB_SCRIPT_FN_MAX];
    char fence[HB_SCRIPT_FN_MAX], lease_acquire[HB_SCRIPT_FN_MAX], lease_renew[HB_SCRIPT_FN_MAX];
    char lease_release[HB_SCRIPT_FN_MAX], history[HB_SCRIPT_FN_MAX], info[HB_SCRIPT_FN_MAX];
    char canary[HB_SCRIPT_FN_MAX];
} hb_fnames_t;

/* One Redis connection with its reconnect state: an rconn (rconn.h: ac, up, set_up, name, its
 * timers and backoff), owned by bconn.c. {broker thread} */
typedef hb_rconn_t hb_conn_t;

/* A client's history request, parked until its topic is subscribed. */
typedef struct hreq {
    hb_list_t link; /* in btopic_t.waiting */
    int thread;
    uint64_t client_id;
    char topic[HB_TOPIC_MAX + 1];
    size_t topic_len;
    hb_cursor_t cursor;
    int tail_only;             /* only the topic's newest cursor */
    int fresh;                 /* read Redis even at the live position (history.c) */
    unsigned long long sub_id; /* the topic's subscription it was sent on */
    uint32_t count;            /* entries to read (0: history__batch()) */
    size_t max_bytes;          /* the page ends once its encoded events reach this (0: no limit) */
    hb_hflag_t *cancel;        /* set: the subscription went away, answer empty (one reference) */
} hreq_t;

typedef enum { T_IDLE = 0, T_SUBSCRIBING, T_SUBSCRIBED, T_UNSUBSCRIBING } tstate_t;

/* A topic some service thread wants. {broker thread} */
typedef struct btopic {
    char name[HB_TOPIC_MAX + 1];
    size_t len;
    uint64_t want;     /* bit i: service thread i has subscribers */
    uint64_t unsynced; /* bit i: an event for thread i was dropped (queue full), not yet told */
    tstate_t state;
    double idle_since;
    int have_last; /* last/epoch valid: the last event delivered to the service threads */
    hb_id_t last;
    char epoch[HB_EPOCH_MAX + 1];
    uint64_t seq;
    uint64_t last_gen; /* the emit generation of the topic's last message (0: none yet) */
    /* bit i: thread i wants the topic but its join message (btopic__join) found its queue
     * full: nothing is emitted to it until the broker's tick hands it over */
    uint64_t join_wait;
    /* The stream position at subscribe time: the topic's last-generated-id (0-0 and epoch ""
     * when the stream did not exist) read before the first SUBSCRIBE was sent (so it is at or
     * before the subscription's first event; the first confirmation refills from it), else
     * once the subscription was confirmed, or the tail a client's history read on the
     * subscribed topic saw. A refill starts from `last` or from it, whichever is later, so
     * that a topic nobody got an event of yet loses nothing either. pos_inflight: a read is
     * out (before the first SUBSCRIBE: the topic stays T_IDLE until its reply). */
    int have_pos, pos_inflight;
    hb_id_t pos;
    char pos_epoch[HB_EPOCH_MAX + 1];
    unsigned long long sub_id; /* which confirmation of the subscription (hb_broker_t.sub_seq) */
    int need_backfill;         /* resubscribed after a disconnect: read history from `last` first */
    int backfill_inflight;
    int lost_checked; /* this resubscription's check for events lost by Redis was done */
    /* a gap notice went out since the topic's position (brefill__position) was last reached
     * by a delivered event: a client at that position may not have had it, so its history
     * request is read from Redis, which tells it (history.c) */
    int noticed;
    hb_msg_t **held;                   /* live events received during the backfill */
    char (*held_ep)[HB_EPOCH_MAX + 1]; /* the stream epoch of each */
    char reset_ep[HB_EPOCH_MAX + 1];   /* the refill found this stream gone (reset): "" none */
    size_t nheld, cap_held;
    size_t held_bytes;   /* their payload bytes, bounded by --client-queue-bytes */
    int held_dropped;    /* a live event was dropped at the hold bound: the refill reads on */
    hb_list_t waiting;   /* history requests waiting for the subscription (hreq_t.link), FIFO */
    double asked_at;     /* hb_now() when the topic was created (a client asked for it) */
    uint64_t asked_ms;   /* and the wall clock then, ms (Redis stream IDs are its clock) */
    int asked_unready;   /* Redis was not fully connected then (its subscription must wait) */
    struct cnode *snode; /* cluster mode: the node whose sharded subscriber has it */
} btopic_t;

typedef struct ingest ingest_t;
struct hb_sentinel;
typedef struct hb_cluster hb_cluster_t;
typedef struct hb_resolver hb_resolver_t;

/* The dataset marker's value: 32 hex digits (bconn.c); longer values read are not ours. */
#define HB_DATASET_MAX 32

struct hb_broker {
    hb_edge_t *edge;
    struct event_base *base;
    hb_conn_t cmd, sub, ing;
    int cmd_ready; /* connected and the function library loaded */
    int ing_ready; /* PSUBSCRIBE confirmed */
    int stopping;
    unsigned ticks;             /* housekeeping ticks so far (broker.c on_tick, every 250 ms) */
    hb_dict_t *topics;          /* name -> btopic_t */
    unsigned long long sub_seq; /* subscription confirmations, for btopic_t.sub_id */
    uint64_t gen;               /* messages emitted to the service threads (edge->emit_gen) */
    size_t pub_backlog;         /* payload bytes of publishes sent, not yet answered */
    char *library;
    char *settings; /* hb_script_settings() of this edge, what <lib>_info must answer */
    hb_fnames_t fn;
    void (*on_sub_cb)(redisAsyncContext *, void *, void *);
    struct event *wake, *tick, *sigterm, *sigint, *drain_timer, *drain_poll;
    /* wake's eventfd: service threads write it (hb_broker_wake) with no lock of libevent's
     * held; -1 when there is none (wake is then activated with event_active()) */
    int wake_fd;
    ingest_t *ingest;
    /* The Redis master: --redis, or what Sentinel names (sentinel.c). master_* are written on
     * the broker thread under master_lock, and read by /metrics. */
    pthread_mutex_t master_lock;
    char master_host[HB_CFG_STR_MAX]; /* "" until Sentinel named one */
    int master_port;
    unsigned long long master_switches;
    struct hb_sentinel *sentinel; /* NULL without sentinel:// */
    struct event *switch_ev;      /* moves the connections to a new master */
    /* The Redis command interface's implementation (rc.h), chosen once by hb_rc_init();
     * nothing outside rc*.c looks at which one it is. */
    const struct hb_rc_ops *rc;
    /* The broker's reactions to connection events (rc.h hb_broker_events_t), set by
     * hb_broker_new() before hb_rc_init(); the connection files call up only through it. */
    const struct hb_broker_events *ev;
    /* cluster mode (cfg.redis_cluster) only; cmd and sub stay unused. Owned by rc_cluster.c:
     * read only there and in cluster*.c */
    hb_cluster_t *cluster;
    hb_resolver_t *resolver; /* host names of Redis nodes and sentinels, without blocking */
    /* delivery heartbeat (canary.h) of the sub connection, created, ticked and freed by
     * rc_single.c (bconn.c and btopic.c feed it the sub connection's events); NULL in cluster
     * mode */
    struct hb_canary *canary;
    /* The dataset marker (hb_keys_dataset) as last read on cmd, "" before the first read:
     * another value read after a reconnection means Redis lost its data (bconn.c). */
    char dataset[HB_DATASET_MAX + 1];
};

/* ---- broker.c ---- */

/* hb_now(): common/hb_time.h */
/**
 * hb_broker_conn_set_up() - {broker thread} c's set-up was answered (cmd: library and dataset
 * checks; ing: PSUBSCRIBE confirmed; sub: connected): its set-up deadline is lifted and its
 * backoff reset. Until then, a connection still setting up --redis-timeout-ms after it
 * connected is closed and made again (FINDINGS F23: an answer held up on a lossy link may be
 * retransmitted a minute later, long after the link healed). bconn.c.
 */
void hb_broker_conn_set_up(hb_conn_t *c);
/**
 * hb_broker_update_ready() - recomputes readiness (stats.ready: connected, the library
 * loaded, ingest subscribed, the canary healthy, not draining) and stats.redis_up after a state
 * change, and logs a change of readiness. bready.c.
 */
void hb_broker_update_ready(hb_broker_t *b);
/**
 * hb_broker_on_cmd_ready() - commands can be sent again (bconn.c: the library is loaded;
 * cluster.c: the cluster is ready): kicks every topic (brefill.c), the ingest lease, and
 * readiness.
 */
void hb_broker_on_cmd_ready(hb_broker_t *b);

/* ---- btopic.c: the topic registry; its subscription state is shared with cluster_sub.c,
 * which owns the sharded subscribers in cluster mode ---- */

/**
 * hb_broker_on_live() - a message on a live channel (from the sub connection or a sharded
 * subscriber). Both come from Redis and are not trusted: a channel that is not one of ours, a
 * topic not subscribed or a malformed message is dropped (the latter logged, rate-limited).
 * During a refill the event is held, at most --client-queue-max of them (beyond: dropped,
 * history keeps them); else it is delivered (btopic__deliver). chan and msg are copied.
 */
void hb_broker_on_live(hb_broker_t *b, const char *chan, size_t clen, const char *msg, size_t mlen);
/**
 * hb_broker_pubsub() - a reply on a (sharded) subscriber connection: a live message (of kind
 * message_kind, "message" or "smessage") goes to hb_broker_on_live() and NULL is returned;
 * otherwise the kind of the subscription event, with the topic it names in *t, or NULL when the
 * reply is not one or names no topic of ours. r (NULL accepted) stays hiredis's; the kind
 * points into it.
 */
const char *hb_broker_pubsub(hb_broker_t *b, const redisReply *r, const char *message_kind,
                             btopic_t **t);
/**
 * hb_broker_channel_topic() - the topic of "<prefix>{<topic>}:live" (*topic points into chan),
 * or HB_EPROTO when chan has another shape or the topic is not valid (hb_topic_validate).
 * Pure: any thread.
 */
int hb_broker_channel_topic(const char *prefix, const char *chan, size_t len, const char **topic,
                            size_t *tlen);
/**
 * hb_broker_topic_subscribed() - t's live channel is subscribed (confirmed): t gets a new
 * sub_id, a first subscription its refill position from the time of the ask, a resubscription
 * a refill from its last delivered event; then brefill__kick and readiness.
 */
void hb_broker_topic_subscribed(hb_broker_t *b, btopic_t *t);
/**
 * hb_broker_topic_unsubscribed() - t's UNSUBSCRIBE is done: resubscribes t if it is wanted
 * again, else frees it (t is then invalid).
 */
void hb_broker_topic_unsubscribed(hb_broker_t *b, btopic_t *t);
/** hb_broker_topic_free() - forgets t (no subscriber wants it): t is invalid after. */
void hb_broker_topic_free(hb_broker_t *b, btopic_t *t);

/* ---- bconn.c: the master the connections use (Sentinel hands a new one here) ---- */

/**
 * hb_broker_set_master() - use host:port as the Redis master from now on. When it
 * differs from the current address, logs the switch (from, to, reason), counts it, and moves
 * every Redis connection to it; the usual reconnect path then reloads the function library,
 * resubscribes and backfills. Broker thread.
 */
void hb_broker_set_master(struct hb_broker *b, const char *host, int port, const char *reason);

/* hb_broker_master(): handoff.h (read by the service threads). */

/* ---- brefill.c ---- */

/**
 * hb_broker_refill_all() - every subscribed topic reads history from its refill position (as
 * after a resubscription): delivery may have stopped unnoticed (canary.c). Topics already
 * refilling, or with no position yet, are left as they are.
 */
void hb_broker_refill_all(hb_broker_t *b);

#endif
