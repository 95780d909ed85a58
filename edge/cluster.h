#ifndef HERALD_EDGE_CLUSTER_H
#define HERALD_EDGE_CLUSTER_H

/*
 * Redis Cluster mode of the broker (--redis cluster://...): the slot map, one command
 * connection per primary (the function library is loaded on each), one sharded-pub/sub
 * connection per primary opened on first use, and routing with MOVED/ASK/TRYAGAIN handling.
 * Broker thread only. Private to the broker: called through the Redis command interface
 * (rc_cluster.c, rc.h) and by the cluster's own files.
 */
#include <stddef.h>

#include <hiredis/async.h>

#include "hb_slot.h"

typedef struct hb_broker hb_broker_t;
typedef struct btopic btopic_t;
typedef struct hb_cluster hb_cluster_t;

/** hb_cluster_new() - cluster state for b (cfg.redis_cluster set). Aborts on OOM. */
hb_cluster_t *hb_cluster_new(hb_broker_t *b);
/** hb_cluster_start() - connects to the seed nodes and fetches the slot map. */
void hb_cluster_start(hb_cluster_t *cl);
/** hb_cluster_free() - closes every connection; pending commands get a NULL reply. */
void hb_cluster_free(hb_cluster_t *cl);
/** hb_cluster_tick() - periodic work: map refresh, resubscriptions, parked command deadlines. */
void hb_cluster_tick(hb_cluster_t *cl);
/**
 * hb_cluster_canary_ok() - 0 while the delivery canary of a primary this edge subscribes on is
 * stale (cluster_canary.c), else 1. {broker thread}
 */
int hb_cluster_canary_ok(const hb_cluster_t *cl);
/** hb_cluster_ready() - 1 when the map covers every slot and every primary is connected. */
int hb_cluster_ready(const hb_cluster_t *cl);

/**
 * hb_cluster_fcall() - FCALL <fn> 2 <prefix>{<topic>}:log <prefix>{<topic>}:epoch argv...
 * (3 keys with key3, which must be in the topic's slot),
 * sent to the primary of the topic's slot, following MOVED/ASK redirections and retrying
 * TRYAGAIN/CLUSTERDOWN for a bounded time. Returns REDIS_OK, after which `cb` is called exactly
 * once (reply NULL when the outcome is unknown or no node could take it), or REDIS_ERR (no
 * call; the map is not known yet).
 */
int hb_cluster_fcall(hb_cluster_t *cl, const char *fn, const char *topic, size_t tlen,
                     const char *key3, int argc, const char **argv, const size_t *argvlen,
                     redisCallbackFn *cb, void *priv);
/**
 * hb_cluster_key_command() - a command whose routing key is argv[key_index] (argv[0] is the
 * command name), with the same redirection handling and contract as hb_cluster_fcall().
 */
int hb_cluster_key_command(hb_cluster_t *cl, int key_index, int argc, const char **argv,
                           const size_t *argvlen, redisCallbackFn *cb, void *priv);

/**
 * hb_cluster_fence_and_barrier() - on every primary: FCALL herald_fence 0 <term> with the fence
 * key "<prefix>fence:{<tag>}" of every slot it serves (hb_cluster_slot_tag(); cb gets each
 * reply), then PUBLISH "<barrier>:<n>" on the same connection, n = 0.. Returns how many
 * primaries were sent to, or 0 (nothing sent) when the map is not whole or a primary is not
 * connected.
 */
int hb_cluster_fence_and_barrier(hb_cluster_t *cl, const char *term, const char *barrier,
                                 redisCallbackFn *cb, void *priv);
/**
 * hb_cluster_slot_tag() - a hash tag (NUL-terminated, < HB_SLOT_TAG_MAX) whose keys live in
 * slot (taken modulo HB_SLOT_COUNT): the tag of that slot's ingest fence key. Points into cl,
 * valid until hb_cluster_free(). Cannot fail.
 */
const char *hb_cluster_slot_tag(const hb_cluster_t *cl, unsigned slot);

/** hb_cluster_subscribe() - SSUBSCRIBE the topic's live channel on its slot's primary. */
void hb_cluster_subscribe(hb_cluster_t *cl, btopic_t *t);
/** hb_cluster_unsubscribe() - SUNSUBSCRIBE it (or forget it at once when not connected). */
void hb_cluster_unsubscribe(hb_cluster_t *cl, btopic_t *t);

/** hb_cluster_ingest_addr() - the next node to try for the raw-ingest PSUBSCRIBE connection. */
void hb_cluster_ingest_addr(hb_cluster_t *cl, const char **host, int *port);

#endif
