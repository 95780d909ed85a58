#ifndef HERALD_EDGE_EDGE_H
#define HERALD_EDGE_EDGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "handoff.h"
#include "hb_cfg.h"
#include "hb_queue.h"
#include "hb_time.h"

/* Counters shared by all threads: relaxed atomics, summed on scrape. */
typedef struct hb_stats {
    atomic_ullong events_in;      /* events received from Redis */
    atomic_ullong stored_skipped; /* stream entries Herald would not have stored, passed over */
    atomic_ullong live_ahead;     /* live messages with IDs ahead of the clock, not trusted */
    atomic_ullong live_too_large; /* live messages over --max-message-bytes, not trusted */
    atomic_ullong connections;    /* open SSE connections */
    atomic_ullong slow_disconnects;
    /* client writes held back by --write-delay-ms (edge/cwrite.c) */
    atomic_ullong writes_delayed;
    atomic_ullong queue_drops; /* broker->service messages dropped (queue full) */
    atomic_ullong req_drops;   /* service->broker requests refused (queue full) */
    /* Redis found with a new dataset marker: it lost its data (bconn.c) */
    atomic_ullong redis_data_lost;
    /* clients' history reads sent to Redis, and those answered from where live delivery of
     * their topic stands, without a read (edge/history.c) */
    atomic_ullong history_redis, history_live;
    atomic_ullong bad_requests;
    atomic_ullong rejected_max_conn;
    atomic_ullong rejected_per_ip;
    atomic_ullong rejected_too_large;
    atomic_ullong rejected_pub_backlog; /* publishes refused: --publish-backlog-bytes */
    atomic_ullong rejected_auth;        /* no, bad or expired token (or publish key) */
    atomic_ullong rejected_forbidden;   /* a valid token that does not cover the topic */
    atomic_ullong rejected_origin;      /* Origin not in --allowed-origins */
    atomic_ullong auth_expired;         /* connections ended when their token expired */
    atomic_ullong tickets_issued, tickets_redeemed, tickets_refused; /* edge/ticket.h */
    atomic_ullong topics; /* gauge: topics this edge is subscribed to in Redis */
    /* Redis Cluster mode */
    atomic_ullong cluster_moved, cluster_ask; /* redirections followed */
    atomic_ullong cluster_giveups;            /* commands not placed before their deadline */
    atomic_ullong cluster_map_updates;        /* slot maps fetched and installed */
    atomic_ullong cluster_primaries;          /* gauge: primaries in the current map */
    atomic_ullong rejected_incomplete;  /* closed before a whole request: timeouts, bad bytes */
    atomic_ullong rejected_topics;      /* --max-topics-per-connection */
    atomic_ullong rejected_topic_rate;  /* --topic-rate */
    atomic_ullong rejected_ticket_rate; /* --ticket-rate */
    atomic_ullong published;            /* HTTP/WS publishes stored */
    atomic_ullong publish_duplicates;   /* HTTP/WS publishes whose idempotency key was stored */
    /* HTTP/WS publishes failed: never sent (Redis down), sent and no answer (outcome
     * unknown), refused by Herald's function (bad input), refused by Redis (OOM, READONLY) */
    atomic_ullong publish_err_not_sent, publish_err_unknown, publish_err_refused, publish_err_redis;
    atomic_ullong conn_sse, conn_ws, conn_poll; /* open, by transport */
    atomic_ullong redis_reconnects;
    atomic_ullong redis_setup_timeouts;  /* connections made again past --redis-timeout-ms */
    atomic_ullong redis_answer_timeouts; /* ... owing answers, silent for --redis-timeout-ms */
    atomic_ullong ingested;              /* raw PUBLISHes stored by this edge as leader */
    atomic_ullong ingest_rejected;       /* raw PUBLISHes refused (bad topic, too large) */
    atomic_ullong ingest_standby_overflow;
    atomic_ullong ingest_unled;   /* kept raw messages the next leader never heard (ingest.c) */
    atomic_ullong ingest_unknown; /* raw stores in flight when the Redis connection went */
    /* admission (admit.c) */
    atomic_ullong sockets;             /* gauge: accepted sockets open */
    atomic_ullong rejected_sock_limit; /* closed at accept: socket limit, no head to evict */
    atomic_ullong evicted;             /* heads closed to make room for a new socket */
    atomic_ullong accept_pauses;       /* accept() out of descriptors: accepting paused */
    /* --io-uring (cwrite.c, usend.h): sends made in io_uring submissions, the submissions,
     * and the service threads with a ring (gauge) */
    atomic_ullong sends_batched, send_batches, io_uring_threads;
    /* fresh subscriptions read from the time they asked because their service thread joined
     * the topic after events went to the edge's other threads (topics.c) */
    atomic_ullong join_catchups;
    /* subscriptions that read on from their position because an event of their topic was
     * dropped on a full hand-off queue (topics.c topic_lost) */
    atomic_ullong lost_catchups;
    atomic_int ready;    /* 1 when Redis is up and every subscription is in place */
    atomic_int redis_up; /* 1 while every Redis connection of the edge is up */
    atomic_int leader;   /* 1 while this edge holds the ingest lease */
    atomic_int draining; /* 1 after SIGTERM */
    /* the delivery canary (canary.c, cluster_canary.c), for /readyz and /metrics: the monotonic
     * microseconds (hb_now()) it was last heard or began to be expected (the oldest node's in
     * cluster mode), 0 while none runs; and 1 while it is stale */
    atomic_llong canary_expect_us;
    atomic_int canary_stale;
    atomic_ullong library_lost;  /* the library found missing in a running Redis (library.c) */
    atomic_int library_mismatch; /* Redis holds another library than this edge's (library.c) */
} hb_stats_t;

/* Process-wide state, set up by main before the threads start; read-only after that but for
 * the atomics (stats, emit_gen). */
typedef struct hb_edge {
    hb_cfg_t cfg;
    hb_stats_t stats;
    hb_queue_t *to_broker; /* requests from every service thread */
    int nthreads;
    struct hb_svc **svcs; /* one per service thread */
    struct hb_broker *broker;
    long nofile;     /* RLIMIT_NOFILE (soft) in force after start-up */
    long sock_limit; /* accepted sockets at most, from RLIMIT_NOFILE (admit.h) */
    long conn_limit; /* clients at most: --max-connections or less (admit.h) */
    /* Written by the broker only, read by the service threads: messages the broker emitted to
     * the service threads (btopic.c), stored before each is pushed. A service thread reads it
     * before it confirms a subscription (hb_topics_ask()): every event emitted after that
     * reading may have been stored after the confirmation. */
    atomic_ullong emit_gen;
} hb_edge_t;

/* broker.c */
/** hb_broker_new() - the broker of edge (its loop, connections and timers, not started);
 * NULL on failure (logged). Main thread, before the threads start. */
struct hb_broker *hb_broker_new(hb_edge_t *edge);
/** hb_broker_run() - run the broker loop on the calling thread (it becomes the broker thread)
 * until drain completes. Returns 0; failures inside the loop are logged and retried, never
 * returned. */
int hb_broker_run(struct hb_broker *b);
/** hb_broker_free() - free the broker and everything it owns (connections, topics, timers)
 * after hb_broker_run() returned; accepts NULL. Main thread. */
void hb_broker_free(struct hb_broker *b);

/* service.c */
/** hb_svc_new() - create service thread `idx`'s lws context (listening), owned by the caller
 * (hb_svc_free()). NULL on failure (logged). Main thread, before the threads start. */
struct hb_svc *hb_svc_new(hb_edge_t *edge, int idx);
/** hb_svc_start() - start its thread, which owns the lws context from now on. 0, or HB_EIO
 * when the thread cannot be created. Main thread. */
int hb_svc_start(struct hb_svc *s);
/** hb_svc_tls_reload() - any thread: have the service thread load --tls-cert/--tls-key again
 * (checked by the caller) into its SSL_CTX; connections open keep their session. */
void hb_svc_tls_reload(struct hb_svc *s);
/** hb_svc_join() - stop the thread and wait for it; the context stays until hb_svc_free().
 * Main thread; a thread never started is a no-op. */
void hb_svc_join(struct hb_svc *s);
/** hb_svc_free() - (join and) free everything it owns: context, listener, clients, queues;
 * accepts NULL. Main thread. */
void hb_svc_free(struct hb_svc *s);

#endif
