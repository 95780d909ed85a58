#ifndef HERALD_EDGE_RC_PRIV_H
#define HERALD_EDGE_RC_PRIV_H

/*
 * The operations table behind rc.h, shared by rc.c (which dispatches every hb_rc_* call to
 * b->rc) and its two implementations, rc_single.c and rc_cluster.c. Each entry has the
 * contract of the hb_rc_* function of the same name (conn_addr: its own, below). Broker thread
 * only.
 */
#include <stddef.h>

#include <hiredis/async.h>

#include "hb_err.h"
#include "rc.h"

typedef struct hb_rc_ops {
    const char *name; /* "single" or "cluster", for logs */
    void (*init)(hb_broker_t *b);
    void (*start)(hb_broker_t *b);
    void (*tick)(hb_broker_t *b);
    void (*cleanup)(hb_broker_t *b);
    int (*ready)(const hb_broker_t *b);
    int (*canary_ok)(const hb_broker_t *b);
    /* The address bconn__start() connects a broker connection to: the master (single node),
     * or the next node to try for the raw-ingest listener (cluster: classic pub/sub is
     * cluster-wide, any node will do). *host points into b's state (valid until the next
     * master switch or map change). 0, or HB_ENOTFOUND when no master is known yet
     * (hb_broker_set_master() starts the connections then). Called only by bconn.c, through
     * b->rc: the implementations sit above bconn.c and start its connections. */
    int (*conn_addr)(hb_broker_t *b, const char **host, int *port);
    int (*fcall)(hb_broker_t *b, const char *fn, const char *topic, size_t tlen, const char *key3,
                 int argc, const char **argv, const size_t *argvlen, redisCallbackFn *cb,
                 void *priv);
    int (*key_command)(hb_broker_t *b, int key_index, int argc, const char **argv,
                       const size_t *argvlen, redisCallbackFn *cb, void *priv);
    int (*eval)(hb_broker_t *b, const char *lua, const char *sha, int by_text, int nkeys, int argc,
                const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv);
    int (*command)(hb_broker_t *b, int argc, const char **argv, const size_t *argvlen,
                   redisCallbackFn *cb, void *priv);
    void (*subscribe)(hb_broker_t *b, btopic_t *t);
    void (*unsubscribe)(hb_broker_t *b, btopic_t *t);
    void (*lease_keys)(const hb_broker_t *b, char *lease, size_t lcap, char *term, size_t tcap);
    int (*lease_acquire)(hb_broker_t *b, const char *lease, const char *term_key, const char *token,
                         const char *ms, long long floor, redisCallbackFn *cb, void *priv);
    int (*lease_won)(const hb_broker_t *b, const redisReply *r, long long *term);
    int (*lease_renew)(hb_broker_t *b, const char *lease, const char *token, const char *ms,
                       redisCallbackFn *cb, void *priv);
    void (*lease_release)(hb_broker_t *b, const char *lease, const char *token);
    int one_bus;   /* hb_rc_ingest_one_bus() */
    double keep_s; /* hb_rc_ingest_keep_s() */
    int (*ingest_barrier)(hb_broker_t *b, const char *term, const char *barrier, size_t blen,
                          redisCallbackFn *cb, void *priv);
    int (*ingest_store)(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                        size_t plen, const char *term, redisCallbackFn *cb, void *priv);
} hb_rc_ops_t;

/** The single-node implementation (rc_single.c). */
extern const hb_rc_ops_t hb_rc__single;
/** The Redis Cluster implementation (rc_cluster.c). */
extern const hb_rc_ops_t hb_rc__cluster;

/* Most arguments a caller passes to hb_rc_fcall(), hb_rc_eval() (after the command's own). */
#define HB_RC_ARGS_MAX 8

#endif
