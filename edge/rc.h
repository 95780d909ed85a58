#ifndef HERALD_EDGE_RC_H
#define HERALD_EDGE_RC_H

/*
 * The broker's Redis command interface: every command the broker thread sends, every
 * subscription it makes and every readiness question it asks about Redis goes through here,
 * whatever the deployment. Two implementations behind one operations table, chosen once by
 * hb_rc_init() from --redis:
 *   rc_single.c  - a single Redis or the master Sentinel names: the reconnecting cmd and sub
 *                  connections of bconn.c, FCALL with the topic name as the one key, the
 *                  delivery canary of canary.c;
 *   rc_cluster.c - Redis Cluster (cluster.h): routed per slot, FCALL with the topic's
 *                  <prefix>{<topic>}:log and :epoch keys, sharded subscribers, one canary per
 *                  primary.
 * Where the two differ in meaning rather than in routing (the raw-ingest protocol: one bus in
 * publish order against several, token-fenced batches against term fences), that difference is
 * a named operation below with its contract, so that no caller branches on the mode.
 *
 * Every function here runs on the broker thread only and never blocks. A function that takes a
 * reply callback returns REDIS_OK, after which the callback runs exactly once (with a NULL
 * reply when the connection went or no node could take the command), or REDIS_ERR, after which
 * it never runs. Arguments are copied before the call returns (the caller keeps ownership).
 */
#include <stddef.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

typedef struct hb_broker hb_broker_t;
typedef struct btopic btopic_t;

/* ---- events going up ----
 *
 * The connection layer (bconn.c, canary.c, cluster*.c, sentinel.c, rc*.c) sits below the topic,
 * refill and ingest files and never calls them by name: what happens on a connection reaches
 * them through this one set of callbacks, which broker.c installs in b->ev before hb_rc_init()
 * (the way hiredis and libuv hand events to their user). Each is called in exactly the place
 * and order a direct call stood before; each runs on the broker thread, inside a hiredis or
 * libevent callback, and must not free the context it came from. b is never NULL. */

/** The broker's reactions to connection events (broker.c's table; all members set). */
typedef struct hb_broker_events {
    /* commands can be sent again (library loaded; cluster routable): hb_broker_on_cmd_ready */
    void (*cmd_ready)(hb_broker_t *b);
    /* the cmd connection went: hb_ingest_on_cmd_down */
    void (*cmd_down)(hb_broker_t *b);
    /* the sub connection is up: every wanted topic is subscribed again (before the canary's
     * own SUBSCRIBE, which bconn.c sends after) */
    void (*sub_up)(hb_broker_t *b);
    /* the sub connection went: every topic back to idle, the unwanted ones freed */
    void (*sub_down)(hb_broker_t *b);
    /* the raw-ingest connection is up: hb_ingest_on_ing_up */
    void (*ing_up)(hb_broker_t *b);
    /* Redis lost its data (dataset marker changed): brefill__on_data_lost */
    void (*data_lost)(hb_broker_t *b);
    /* a Redis connection failed, was lost, or found a replica: with Sentinel, ask the
     * sentinels again now (hb_sentinel_recheck; no-op without Sentinel) */
    void (*master_suspect)(hb_broker_t *b, const char *reason);
    /* a state readiness depends on changed: hb_broker_update_ready */
    void (*ready_changed)(hb_broker_t *b);
    /* a delivery canary came back: every subscribed topic refills (hb_broker_refill_all) */
    void (*refill_all)(hb_broker_t *b);
    /* a reply on a sharded subscriber: hb_broker_pubsub (a live message is delivered there,
     * with no allocation of its own) */
    const char *(*pubsub)(hb_broker_t *b, const redisReply *r, const char *message_kind,
                          btopic_t **t);
    /* t's SSUBSCRIBE is confirmed: hb_broker_topic_subscribed */
    void (*topic_subscribed)(hb_broker_t *b, btopic_t *t);
    /* t's SUNSUBSCRIBE is done (may free t): hb_broker_topic_unsubscribed */
    void (*topic_unsubscribed)(hb_broker_t *b, btopic_t *t);
    /* t is wanted by nobody and idle: hb_broker_topic_free (t is invalid after) */
    void (*topic_free)(hb_broker_t *b, btopic_t *t);
} hb_broker_events_t;

/* ---- lifecycle ---- */

/**
 * hb_rc_init() - chooses b's implementation from cfg.redis_cluster and creates its state (the
 * cluster's, or the single node's canary), not connected. Call once from hb_broker_new(),
 * before hb_ingest_init(). Aborts on OOM.
 */
void hb_rc_init(hb_broker_t *b);
/**
 * hb_rc_start() - connects: the cmd and sub connections (single node, once the master is
 * known), or the seed nodes and the slot map (cluster). Failures retry with backoff.
 */
void hb_rc_start(hb_broker_t *b);
/** hb_rc_tick() - periodic work from the broker tick (canary, map refresh, resubscriptions). */
void hb_rc_tick(hb_broker_t *b);
/**
 * hb_rc_cleanup() - frees what hb_rc_init() made; pending commands of the cluster get a NULL
 * reply. The single node's cmd and sub contexts are freed by hb_broker_free(). Idempotent.
 */
void hb_rc_cleanup(hb_broker_t *b);

/* ---- readiness ---- */

/**
 * hb_rc_ready() - 1 when commands can be sent (b->cmd_ready: the function library is loaded)
 * and live messages can arrive: the sub connection is up (single node), or the slot map covers
 * every slot and every primary is connected (cluster). Else 0.
 */
int hb_rc_ready(const hb_broker_t *b);
/**
 * hb_rc_canary_ok() - 0 while a delivery canary is stale (single node: the sub connection's;
 * cluster: that of any primary this edge subscribes on), else 1 (also before any canary runs).
 */
int hb_rc_canary_ok(const hb_broker_t *b);
/* The address a broker connection goes to is the operations table's conn_addr (rc_priv.h),
 * which bconn.c, below both implementations, calls through b->rc. */

/* ---- commands ---- */

/**
 * hb_rc_fcall() - FCALL <fn> with the keys of topic[0..tlen) and argv[0..argc) (argc <= 8):
 * "FCALL fn 1 <topic> argv..." on the cmd connection (single node; REDIS_ERR while it is
 * disconnected), or "FCALL fn 2 <prefix>{<topic>}:log <prefix>{<topic>}:epoch argv..." sent to
 * the primary of the topic's slot with MOVED/ASK/TRYAGAIN handling (hb_cluster_fcall(); REDIS_ERR
 * while the slot map is not known).
 */
int hb_rc_fcall(hb_broker_t *b, const char *fn, const char *topic, size_t tlen, int argc,
                const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv);
/**
 * hb_rc_fcall_key3() - hb_rc_fcall() whose call touches one more key of the topic's slot,
 * key3 (NUL-terminated; NULL: none): in a cluster it is declared as KEYS[3], so that a slot
 * migration redirects the call as a whole before it runs (an undeclared key is refused mid-call
 * on the migrating node, or missed on the importing one); one node: not passed (the function
 * names it from the topic). Same results as hb_rc_fcall().
 */
int hb_rc_fcall_key3(hb_broker_t *b, const char *fn, const char *topic, size_t tlen,
                     const char *key3, int argc, const char **argv, const size_t *argvlen,
                     redisCallbackFn *cb, void *priv);
/**
 * hb_rc_key_command() - the command argv[0..argc) (argv[0] its name) whose routing key is
 * argv[key_index]: on the cmd connection (single node; REDIS_ERR unless b->cmd_ready), or on
 * the primary of that key's slot (cluster, hb_cluster_key_command()).
 */
int hb_rc_key_command(hb_broker_t *b, int key_index, int argc, const char **argv,
                      const size_t *argvlen, redisCallbackFn *cb, void *priv);
/**
 * hb_rc_eval() - runs the Lua script lua (sha: its SHA1 in hex, "" when unknown) with
 * argv[0..nkeys) as its keys and argv[nkeys..argc) as its arguments (argc <= 8, nkeys >= 1):
 * "EVALSHA sha nkeys argv..." on the cmd connection, or "EVAL lua nkeys argv..." when by_text
 * or sha is "" (single node; a NOSCRIPT reply is the caller's to retry by_text); always
 * "EVAL lua ..." on the primary of argv[0]'s slot in cluster mode (one script cache per node).
 */
int hb_rc_eval(hb_broker_t *b, const char *lua, const char *sha, int by_text, int nkeys, int argc,
               const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv);
/**
 * hb_rc_command() - the keyless command argv[0..argc) on the cmd connection (single node).
 * REDIS_ERR in cluster mode (a keyless command has no node: only the single-bus ingest
 * protocol, hb_rc_ingest_one_bus(), uses this) and while the cmd connection is down. cb may be
 * NULL (fire and forget).
 */
int hb_rc_command(hb_broker_t *b, int argc, const char **argv, const size_t *argvlen,
                  redisCallbackFn *cb, void *priv);

/* ---- live subscriptions ---- */

/**
 * hb_rc_subscribe() - subscribes t's live channel <prefix>{<topic>}:live: SUBSCRIBE on the sub
 * connection (t->state T_SUBSCRIBING; no-op while it is down: its connect subscribes every
 * wanted topic), or SSUBSCRIBE on the sharded subscriber of its slot's primary (cluster). The
 * confirmation comes through hb_broker_topic_subscribed().
 */
void hb_rc_subscribe(hb_broker_t *b, btopic_t *t);
/**
 * hb_rc_unsubscribe() - UNSUBSCRIBE (T_UNSUBSCRIBING) or SUNSUBSCRIBE t's live channel (the
 * cluster forgets it at once when its subscriber is not connected); the confirmation comes
 * through hb_broker_topic_unsubscribed().
 */
void hb_rc_unsubscribe(hb_broker_t *b, btopic_t *t);

/* ---- raw ingest: the lease (ingest_lease.c) ---- */

/**
 * hb_rc_lease_keys() - the ingest lease key, and the leader-term counter key, into lease[lcap]
 * and term[tcap]: "<prefix>ingest:lease" and "" (single node: the lease token fences stores),
 * or "<prefix>{ingest}:lease" and "<prefix>{ingest}:term" (cluster: both in one slot, the term
 * fences stores slot by slot).
 */
void hb_rc_lease_keys(const hb_broker_t *b, char *lease, size_t lcap, char *term, size_t tcap);
/**
 * hb_rc_lease_acquire() - tries to take the lease for ms milliseconds (decimal string) under
 * token: "SET lease token NX PX ms" (single node), or "FCALL <lease_acquire> 2 lease term_key
 * token ms floor" drawing a new leader term above floor (cluster). Read the reply with
 * hb_rc_lease_won(). REDIS_OK (cb runs once) or REDIS_ERR (it never does), as hb_rc_fcall().
 */
int hb_rc_lease_acquire(hb_broker_t *b, const char *lease, const char *term_key, const char *token,
                        const char *ms, long long floor, redisCallbackFn *cb, void *priv);
/**
 * hb_rc_lease_won() - 1 when r (NULL accepted) answers hb_rc_lease_acquire() with the lease
 * won, with the leader term drawn in *term (cluster; 0 on a single node). Else 0: held by
 * another edge, an error, or no reply.
 */
int hb_rc_lease_won(const hb_broker_t *b, const redisReply *r, long long *term);
/**
 * hb_rc_lease_renew() - extends the lease held under token by ms: "FCALL <lease_renew> 0 token
 * ms" (single node) or "FCALL <lease_renew> 1 lease token ms" (cluster). The reply is 1 when
 * it was still ours.
 */
int hb_rc_lease_renew(hb_broker_t *b, const char *lease, const char *token, const char *ms,
                      redisCallbackFn *cb, void *priv);
/**
 * hb_rc_lease_release() - gives the lease held under token back, fire and forget: "FCALL
 * <lease_release> 0 token" (single node) or "FCALL <lease_release> 1 lease token" (cluster).
 * A release that cannot be sent is dropped: the lease then lapses.
 */
void hb_rc_lease_release(hb_broker_t *b, const char *lease, const char *token);

/* ---- raw ingest: storing and the new leader's barrier (ingest.c, ingest_lease.c) ---- */

/**
 * hb_rc_ingest_one_bus() - 1 when every raw message, every stored copy and every barrier
 * reaches this edge over one connection, in publish order (single node); 0 when stored copies
 * come over several bus links (cluster). With one bus: the leader stores in batches
 * (herald_ingest_many over hb_rc_command(), fenced by its token), a leader's "<barrier>:caught"
 * and a standby's cut are meaningful, kept messages are dropped when the raw subscription
 * comes back, and a young standby waits for the lease to lie free (FINDINGS F14). Without it:
 * one store per message fenced by the leader term (hb_rc_ingest_store()), a stored copy may
 * come before its raw message (kept as an orphan), one barrier per primary.
 */
int hb_rc_ingest_one_bus(const hb_broker_t *b);
/**
 * hb_rc_ingest_keep_s() - the least time, in seconds, a standby keeps a raw message: 0 (single
 * node: the lease period rules) or 60 (cluster: a failover, cluster-node-timeout plus the
 * election, can take the lease's shard away for longer).
 */
double hb_rc_ingest_keep_s(const hb_broker_t *b);
/**
 * hb_rc_ingest_barrier() - a new leader's barrier: "PUBLISH barrier 1" on the cmd connection
 * (single node: seeing it come back means every earlier message was seen), or, on every
 * primary, "FCALL <fence> 0 term" with the fence keys of the slots it serves (cb gets each
 * reply: 0 raised, else the higher term a fence holds) and then "PUBLISH <barrier>:<n> 1" on
 * the same connection, n = 0.. (cluster: hb_cluster_fence_and_barrier()). Returns how many
 * barriers (and, in cluster mode, fence replies) to wait for, or 0 when nothing could be sent
 * (single node: cb is never called).
 */
int hb_rc_ingest_barrier(hb_broker_t *b, const char *term, const char *barrier, size_t blen,
                         redisCallbackFn *cb, void *priv);
/**
 * hb_rc_ingest_store() - cluster: stores one raw message (topic, payload) fenced by the leader
 * term (decimal string): "FCALL <ingest> 3 log epoch <prefix>fence:{<tag of the topic's
 * slot>} payload term" on the topic's primary; a stale term is answered "HERALD_FENCED <term
 * held>". REDIS_ERR on a single node (stores go in batches: hb_rc_ingest_one_bus()) and while
 * the slot map is not known.
 */
int hb_rc_ingest_store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                       size_t plen, const char *term, redisCallbackFn *cb, void *priv);

#endif
