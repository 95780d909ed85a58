#ifndef HERALD_EDGE_EDGE_H
#define HERALD_EDGE_EDGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hb_buf.h"
#include "hb_cfg.h"
#include "hb_event.h"
#include "hb_id.h"
#include "hb_queue.h"
#include "hb_topic.h"

/*
 * Messages between the broker thread (Redis) and the service threads (clients). Each travels
 * through a bounded hb_queue: requests from every service thread share one queue to the broker;
 * each service thread has its own queue from the broker.
 */

typedef enum {
    HB_MSG_EVENT = 1, /* a topic's next event (live or backfilled), or a topic-wide gap notice */
    HB_MSG_HISTORY,   /* one page of history for one resuming subscription */
    HB_MSG_PUBLISHED, /* the outcome of one HTTP/WS publish request */
    HB_MSG_TICKET,    /* the outcome of one ticket issue or redemption (edge/ticket.h) */
} hb_msg_type_t;


/*
 * One message from the broker. HB_MSG_EVENT messages are shared by all service threads
 * (refs = number of queues it was pushed to); the last hb_msg_unref() frees it.
 * Owner: whoever holds a reference; immutable once pushed.
 */
typedef struct hb_msg {
    hb_msg_type_t type;
    atomic_uint refs;
    char topic[HB_TOPIC_MAX + 1];
    size_t topic_len;
    /* HB_MSG_EVENT */
    uint64_t seq; /* per-topic sequence of EVENT messages, to detect a dropped one */
    int control;  /* 1: a gap notice (no id; does not move cursors) */
    hb_ev_t ev;
    /* HB_MSG_HISTORY, HB_MSG_PUBLISHED */
    int thread;         /* the service thread that asked */
    uint64_t client_id; /* the subscription (history) or client (publish) it answers */
    int error;          /* 1: Redis failed; history: the client should reconnect */
    hb_gap_t gap;
    int more; /* 1: the page was full; ask again from the last id */
    size_t n;
    hb_ev_t *evs;             /* n events */
    char tail[HB_CURSOR_MAX]; /* the topic's newest cursor ("" when the stream is empty) */
    char result[256];         /* HB_MSG_PUBLISHED: the stream id, or the error text */
    char *blob;               /* HB_MSG_TICKET redeemed: the token (malloc'd, NUL-terminated) */
} hb_msg_t;

/** hb_msg_new() - a zeroed message of `type` with one reference; aborts on OOM. */
hb_msg_t *hb_msg_new(hb_msg_type_t type, const char *topic, size_t topic_len);
/** hb_msg_ref() - add a reference. */
hb_msg_t *hb_msg_ref(hb_msg_t *m);
/** hb_msg_unref() - drop a reference; the last frees the buffers it holds. Accepts NULL. */
void hb_msg_unref(hb_msg_t *m);

typedef enum {
    HB_REQ_SUB = 1, /* this service thread now has subscribers for topic */
    HB_REQ_UNSUB,   /* ... and now has none */
    HB_REQ_HISTORY, /* read history after cursor for client_id, reply with HB_MSG_HISTORY */
    HB_REQ_PUBLISH, /* run herald_publish, reply with HB_MSG_PUBLISHED */
    /* tickets (edge/ticket.h): store ticket `topic` -> payload (a token), or take it (GETDEL);
     * each is answered with one HB_MSG_TICKET */
    HB_REQ_TICKET_ISSUE,
    HB_REQ_TICKET_REDEEM,
} hb_req_type_t;

/* A request from a service thread to the broker; the broker frees it. */
/*
 * A history read's cancel flag (edge/hread.c), shared by the service thread that asked and the
 * broker: the service sets it when the subscription goes away; the broker then skips the Redis
 * read if it has not started, or drops the reply unencoded. Either thread drops its reference.
 */
typedef struct hb_hflag hb_hflag_t;
/** hb_hflag_new() - a clear flag with two references (asker and broker); aborts on OOM. */
hb_hflag_t *hb_hflag_new(void);
/** hb_hflag_cancel() - set the flag. Any thread; accepts NULL. */
void hb_hflag_cancel(hb_hflag_t *f);
/** hb_hflag_cancelled() - 1 once set, 0 otherwise (and for NULL). Any thread. */
int hb_hflag_cancelled(const hb_hflag_t *f);
/** hb_hflag_unref() - drop one reference; the last frees it. Any thread; accepts NULL. */
void hb_hflag_unref(hb_hflag_t *f);

typedef struct hb_req {
    hb_req_type_t type;
    int thread;
    char topic[HB_TOPIC_MAX + 1];
    size_t topic_len;
    uint64_t client_id;
    hb_cursor_t cursor; /* HISTORY; id ULLONG_MAX-ULLONG_MAX with tail_only: only the tail */
    int tail_only;
    /* HISTORY paging (edge/hread.c): entries to read (0: --history-batch; never more), and
     * bytes of encoded events after which the page ends early with `more` (0: no limit) */
    uint32_t count;
    size_t max_bytes;
    hb_hflag_t *cancel; /* HISTORY: one reference, owned by the request (NULL: none) */
    char event[HB_EVENT_NAME_MAX + 1]; /* PUBLISH */
    char *payload;                     /* PUBLISH, malloc'd, owned by the request */
    size_t payload_len;
} hb_req_t;

/** hb_req_free() - free a request and its payload; accepts NULL. */
void hb_req_free(hb_req_t *q);

/* Counters shared by all threads: relaxed atomics, summed on scrape. */
typedef struct hb_stats {
    atomic_ullong events_in;   /* events received from Redis */
    atomic_ullong connections; /* open SSE connections */
    atomic_ullong slow_disconnects;
    /* client writes held back by --write-delay-ms (edge/wdelay.c) */
    atomic_ullong writes_delayed;
    atomic_ullong queue_drops; /* broker->service messages dropped (queue full) */
    atomic_ullong req_drops;   /* service->broker requests refused (queue full) */
    /* Redis found with a new dataset marker: it lost its data (bconn.c) */
    atomic_ullong redis_data_lost;
    atomic_ullong bad_requests;
    atomic_ullong rejected_max_conn;
    atomic_ullong rejected_per_ip;
    atomic_ullong rejected_too_large;
    atomic_ullong rejected_auth;      /* no, bad or expired token (or publish key) */
    atomic_ullong rejected_forbidden; /* a valid token that does not cover the topic */
    atomic_ullong rejected_origin;    /* Origin not in --allowed-origins */
    atomic_ullong auth_expired;       /* connections ended when their token expired */
    atomic_ullong tickets_issued, tickets_redeemed, tickets_refused; /* edge/ticket.h */
    atomic_ullong topics;             /* gauge: topics this edge is subscribed to in Redis */
    /* Redis Cluster mode */
    atomic_ullong cluster_moved, cluster_ask; /* redirections followed */
    atomic_ullong cluster_giveups;            /* commands not placed before their deadline */
    atomic_ullong cluster_map_updates;        /* slot maps fetched and installed */
    atomic_ullong cluster_primaries;          /* gauge: primaries in the current map */
    atomic_ullong rejected_incomplete; /* closed before a whole request: timeouts, bad bytes */
    atomic_ullong rejected_topics;     /* --max-topics-per-connection */
    atomic_ullong published;           /* HTTP/WS publishes stored */
    atomic_ullong conn_sse, conn_ws, conn_poll; /* open, by transport */
    atomic_ullong redis_reconnects;
    atomic_ullong ingested;        /* raw PUBLISHes stored by this edge as leader */
    atomic_ullong ingest_rejected; /* raw PUBLISHes refused (bad topic, too large) */
    atomic_ullong ingest_standby_overflow;
    atomic_ullong ingest_unled; /* kept raw messages the next leader never heard (ingest.c) */
    atomic_ullong ingest_unknown; /* raw stores in flight when the Redis connection went */
    /* admission (admit.c) */
    atomic_ullong sockets;             /* gauge: accepted sockets open */
    atomic_ullong rejected_sock_limit; /* closed at accept: socket limit, no head to evict */
    atomic_ullong evicted;             /* heads closed to make room for a new socket */
    atomic_ullong accept_pauses;       /* accept() out of descriptors: accepting paused */
    atomic_int ready;    /* 1 when Redis is up and every subscription is in place */
    atomic_int redis_up; /* 1 while every Redis connection of the edge is up */
    atomic_int leader;   /* 1 while this edge holds the ingest lease */
    atomic_int draining; /* 1 after SIGTERM */
} hb_stats_t;

/* Process-wide state, set up by main before the threads start; read-only after that. */
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
} hb_edge_t;

extern hb_edge_t *hb_edge; /* the one edge of this process; set once in main before threads */

/* broker.c */
struct hb_broker *hb_broker_new(hb_edge_t *edge);
/** hb_broker_run() - run the broker loop on the calling thread until drain completes. */
int hb_broker_run(struct hb_broker *b);
/** hb_broker_wake() - wake the broker after pushing to edge->to_broker; any thread. */
void hb_broker_wake(struct hb_broker *b);
void hb_broker_free(struct hb_broker *b);

/* service.c */
/** hb_svc_new() - create service thread `idx`'s lws context (listening). NULL on failure. */
struct hb_svc *hb_svc_new(hb_edge_t *edge, int idx);
/** hb_svc_start() - start its thread. */
int hb_svc_start(struct hb_svc *s);
/** hb_svc_push() - broker thread: hand a message (taking one ref) to service thread s. */
int hb_svc_push(struct hb_svc *s, hb_msg_t *m);
/** hb_svc_tls_reload() - any thread: have the service thread load --tls-cert/--tls-key again
 * (checked by the caller) into its SSL_CTX; connections open keep their session. */
void hb_svc_tls_reload(struct hb_svc *s);
/** hb_svc_drain() - any thread: ask the service thread to drain and stop. */
void hb_svc_drain(struct hb_svc *s);
/** hb_svc_join() - stop the thread and wait for it; the context stays until hb_svc_free(). */
void hb_svc_join(struct hb_svc *s);
/** hb_svc_free() - (join and) free everything; accepts NULL. */
void hb_svc_free(struct hb_svc *s);
/** hb_svc_clients() - current client count of service thread s (any thread, approximate). */
size_t hb_svc_clients(struct hb_svc *s);

#endif
