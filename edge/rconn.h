/*
 * A reconnecting Redis connection: one hiredis async context on a libevent base that connects
 * with a connect timeout, names itself (CLIENT SETNAME herald-<node id>-<suffix>), gives its
 * owner a set-up deadline (--redis-timeout-ms) that hb_rconn_set_up() lifts, then watches
 * that it answers (owing answers and silent for --redis-timeout-ms: closed), and after a
 * failure or a loss connects again after a jittered exponential backoff (common/hb_backoff.h).
 * It counts stats.redis_reconnects, stats.redis_setup_timeouts and stats.redis_answer_timeouts
 * and logs the connection's
 * failures; everything else goes up to the owner through hb_rconn_ops_t.
 *
 * Used by the broker's cmd, sub and ing connections (bconn.c), each cluster node's command
 * connection (cluster.c) and Sentinel's +switch-master watch (sentinel.c: addr() rotates over
 * the sentinels). Connecting on their own, by design:
 *   - Sentinel's query connection (sentinel.c op): one command per connection (SENTINEL
 *     get-master-addr-by-name on a sentinel, or ROLE on a candidate), then closed; a failure
 *     sends the query to the next address at once, not after a backoff, and one limit covers
 *     connect and answer. Its close after the answer is no loss: on rconn it would be counted
 *     in redis_reconnects and retried, and it would still need its own step timer;
 *   - the cluster's sharded pub/sub connections (psconn.c): a bufferevent and hiredis's reply
 *     reader, no redisAsyncContext (hiredis 0.14's async API aborts on SSUBSCRIBE's pushes),
 *     and everything here is bound to one (its adapter, its connect and disconnect callbacks,
 *     redisAsyncFree). It has no retry loop of its own to share the backoff with: the cluster
 *     opens it when a topic of the node is wanted and its tick opens it again (cluster_sub.c,
 *     cluster_life.c); its connect timeout is the bufferevent's; the backoff arithmetic is
 *     already shared (common/hb_backoff.h), and so is the name (hb_rconn_client_name(): it
 *     is herald-<node id>-ssub).
 *
 * ac->data is cfg.data, as the owner had it (every reply callback reads it). The rconn is
 * found from its context through its own libevent adapter: ac->ev.data is the rconn (hiredis
 * runs the adapter's cleanup before the disconnect callback; the cleanup frees only the two
 * events).
 * Broker thread only; an hb_rconn_t lives inside its owner and never moves once initialised.
 */
#ifndef HERALD_RCONN_H
#define HERALD_RCONN_H

#include <event2/event.h>
#include <hiredis/async.h>

#include "hb_backoff.h"

struct hb_edge;
struct hb_resolver;
typedef struct hb_rconn hb_rconn_t;

/* Why a connect that never came up failed (hb_rconn_ops_t.failed). */
typedef enum { HB_RCONN_REFUSED, HB_RCONN_TIMED_OUT } hb_rconn_fail_t;

/* The owner's callbacks, broker thread, never re-entering hiredis for this context's free. */
typedef struct hb_rconn_ops {
    /* The address to connect to now: 0 and *host (a name or a number, owned by the owner, valid
     * until the call returns) and *port, or HB_ENOTFOUND: none known (no retry is scheduled: the
     * owner starts it again). Required. */
    int (*addr)(hb_rconn_t *r, const char **host, int *port);
    /* Connected (after CLIENT SETNAME was sent and the set-up deadline armed): send the set-up
     * and call hb_rconn_set_up() once it is answered. Required. */
    void (*up)(hb_rconn_t *r);
    /* A connect failed or timed out before coming up; the retry is already scheduled. NULL: none.
     */
    void (*failed)(hb_rconn_t *r, hb_rconn_fail_t why);
    /* A connection that was up is gone (r->ac is NULL): called first, also while stopping.
     * Required. */
    void (*down)(hb_rconn_t *r);
    /* After down() when not stopping, once counted and logged and the retry scheduled. NULL: none.
     */
    void (*lost)(hb_rconn_t *r);
    /* Whether to connect again (after a loss, and when the backoff timer fires): NULL is yes. */
    int (*keep)(hb_rconn_t *r);
} hb_rconn_ops_t;

/*
 * Its log lines (warnings). The broker's connections name themselves ("conn": name), texts
 * "redis connect failed" (ratelimited per name), "redis connect timed out", "redis connection
 * set-up timed out: connecting again", "redis connection lost" (ratelimited, key "redis-down"):
 * HB_RCONN_LOG_CONN. A cluster node's lines name its address ("host", "port") and are its own
 * texts; its connect failures and timeouts share one ratelimit key.
 */
typedef struct hb_rconn_log {
    const char *connect_failed, *connect_timed_out, *setup_timed_out, *lost; /* the texts */
    const char *answer_timed_out; /* owed answers, read nothing for --redis-timeout-ms */
    const char *rl_connect;       /* NULL: failures ratelimited per name, timeouts not; else the key
                                   * of both, and a connect that fails at once is not logged */
    const char *rl_lost;          /* the ratelimit key of "lost" */
    const char *host; /* set: lines carry host and port, not conn (outlives the rconn) */
    int port;         /* a connection whose address changes (Sentinel's watch) sets both
                       * r->cfg.log.host and port in its addr(), to the address given */
} hb_rconn_log_t;

#define HB_RCONN_LOG_CONN                                                                          \
    ((hb_rconn_log_t){.connect_failed = "redis connect failed",                                    \
                      .connect_timed_out = "redis connect timed out",                              \
                      .setup_timed_out = "redis connection set-up timed out: connecting again",    \
                      .answer_timed_out =                                                          \
                          "redis answered nothing for --redis-timeout-ms: connecting again",       \
                      .lost = "redis connection lost",                                             \
                      .rl_lost = "redis-down"})

/* How it connects and logs; copied by hb_rconn_init(). */
typedef struct hb_rconn_cfg {
    const char *mod;        /* log module */
    const char *name;       /* the "conn" of its log lines and its SETNAME suffix */
    hb_rconn_log_t log;     /* its log lines */
    int connect_timeout_ms; /* connect, > 0 */
    long backoff_min_ms, backoff_max_ms;
    const int *stopping; /* the owner's flag: nonzero, nothing is started or scheduled */
    void *data;          /* ac->data of each context (what its reply callbacks read) */
} hb_rconn_cfg_t;

struct hb_rconn {
    const char *name;        /* cfg.name */
    redisAsyncContext *ac;   /* NULL while disconnected */
    int up;                  /* connected */
    int set_up;              /* its set-up answered (hb_rconn_set_up()): in use */
    hb_backoff_t backoff;    /* reconnect delays */
    struct event *timer;     /* reconnect */
    struct event *ctimer;    /* connect, then set-up deadline (--redis-timeout-ms) */
    struct event *rev, *wev; /* the adapter's, while ac is attached */
    struct event *fev;       /* the adapter's deferred write of queued commands */
    int in_write;            /* hiredis is writing: an addWrite waits for EPOLLOUT */
    /* the answer watch (on_ctimer), hb_now() times: the last read event on the socket, and
     * when it last began to owe answers (a command queued with none owed before) */
    double heard_at, owe_from;
    void *owner; /* the owner's, for its callbacks */
    const hb_rconn_ops_t *ops;
    hb_rconn_cfg_t cfg;
    struct hb_edge *edge; /* cfg (node id, redis_timeout_ms) and stats */
    struct hb_resolver *resolver;
    struct event_base *base;
};

/**
 * hb_rconn_init() - makes r ready to start (not connected): its two timers on base. ops and the
 * strings in cfg must outlive r; owner, edge and resolver too. Aborts on allocation failure.
 */
void hb_rconn_init(hb_rconn_t *r, struct event_base *base, struct hb_edge *edge,
                   struct hb_resolver *resolver, const hb_rconn_cfg_t *cfg,
                   const hb_rconn_ops_t *ops, void *owner);

/**
 * hb_rconn_start() - connects now unless connected or connecting, or stopping. An address not
 * resolved yet, or an immediate failure (logged, ratelimited), schedules a retry with backoff.
 */
void hb_rconn_start(hb_rconn_t *r);

/** hb_rconn_waiting() - whether a retry is scheduled (the backoff timer is pending). */
int hb_rconn_waiting(const hb_rconn_t *r);

/** hb_rconn_retry_now() - a connection waiting for its retry (no context) goes now. */
void hb_rconn_retry_now(hb_rconn_t *r);

/**
 * hb_rconn_set_up() - the owner's set-up was answered: the deadline is lifted and the backoff
 * reset. Cannot fail.
 */
void hb_rconn_set_up(hb_rconn_t *r);

/**
 * hb_rconn_move() - drops the context (connected: through down(), not counted as lost twice:
 * the backoff is reset; connecting: silently) and connects again now, to the address addr()
 * gives. Never from inside a callback of this context.
 */
void hb_rconn_move(hb_rconn_t *r);

/** hb_rconn_free_timers() - frees its timers and the deferred write; the context must be gone
 * (freed) first. */
void hb_rconn_free_timers(hb_rconn_t *r);

#define HB_RCONN_NAME_MAX 96 /* herald-<node id (< 64)>-<suffix>, NUL included */

/**
 * hb_rconn_client_name() - writes herald-<node id>-<suffix>, the name a connection gives itself
 * with CLIENT SETNAME, into out (cap bytes, NUL-terminated); also for the connections off rconn
 * (cluster_sub.c names psconn's). Any thread (reads only the config). Returns its length, or -1
 * when it does not fit in cap (out is then "").
 */
int hb_rconn_client_name(char *out, size_t cap, const struct hb_edge *edge, const char *suffix);

#endif
