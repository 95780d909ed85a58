/*
 * Redis Cluster mode of the broker. Each topic's keys and live channel share the slot of the
 * topic name (the {<topic>} hash tag), so every command for a topic goes to the primary serving
 * that slot:
 *   - one hiredis async command connection per primary, an rconn (rconn.c: connect timeout,
 *     set-up deadline, backoff, CLIENT SETNAME herald-<node id>-node); the function library is
 *     loaded on each as soon as it connects (so also on a replica promoted by a failover);
 *   - one sharded-pub/sub connection per primary (psconn.c), opened when a topic of that node
 *     is first wanted; SSUBSCRIBE <prefix>{<topic>}:live there;
 *   - the slot map (common/hb_slot) from CLUSTER SLOTS: at start, every few seconds, and at once
 *     after a MOVED, a lost connection or a slot that Redis unsubscribed us from.
 * Redirections: MOVED updates the map and resends; ASK sends ASKING then the command to the
 * target, once per redirection; TRYAGAIN / CLUSTERDOWN / a script touching a key that is not
 * local (the map was stale) are retried on a short timer until a deadline. A command that
 * cannot be placed waits in a bounded retry list. Replies reach the caller exactly once.
 * A slot that moves (migration or failover) drops our subscription (Redis sends sunsubscribe,
 * or the connection dies): the topic is resubscribed on the new owner and backfilled from the
 * last delivered ID by the broker's usual resubscribe path. Broker thread only.
 *
 * This file, the bottom of the cluster's files: nodes and their command connections (what
 * happens on them: rconn.c calls node_ops), the slot map, readiness. Above it, each calling only
 * downward: cluster_route.c (routed commands), cluster_canary.c (the canary per node),
 * cluster_sub.c (sharded subscriptions) and, on top, cluster_life.c (lifecycle and the tick that
 * drives the others).
 */
#include "cluster.h"
#include "cluster_priv.h"
#include "library.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "rc.h" /* b->ev: the events going up */
#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_slot.h"
#include "psconn.h"
#include "rconn.h"
#include "resolve.h"

#define MOD "cluster"
#define REFRESH_MIN_GAP_S 0.2
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define NODES_MAX (HB_SLOT_NODES_MAX + HB_CFG_SEEDS_MAX) /* node addresses ever known */

static void check_ready(hb_cluster_t *cl);

/* ---- nodes ---- */

static cnode_t *node_find(hb_cluster_t *cl, const char *host, int port)
{
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->port == port && !strcmp(n->host, host))
            return n;
    return NULL;
}

static const hb_rconn_ops_t node_ops;

cnode_t *cluster__node_get(hb_cluster_t *cl, const char *host, int port)
{
    cnode_t *n = node_find(cl, host, port);
    if (n)
        return n;
    if (cl->nnodes >= NODES_MAX) { /* addresses come from Redis replies: bounded */
        hb_log_ratelimited("cluster-nodes", 5000, HB_LOG_ERROR, MOD,
                           "too many redis cluster node addresses: ignoring a new one", "{s:s,s:i}",
                           "host", host, "port", port);
        return NULL;
    }
    cl->nnodes++;
    n = hb_xcalloc(1, sizeof(*n));
    n->cl = cl;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    {
        hb_rconn_cfg_t cfg = {
            .mod = MOD,
            .name = "node",
            .log = {.connect_failed = "redis cluster node connect failed",
                    .connect_timed_out = "redis cluster node connect timed out",
                    .setup_timed_out = "redis cluster node set-up timed out: connecting again",
                    .answer_timed_out = "redis cluster node answered nothing for "
                                        "--redis-timeout-ms: connecting again",
                    .lost = "redis cluster node connection lost",
                    .rl_connect = "cluster-connect",
                    .rl_lost = "cluster-down",
                    .host = n->host,
                    .port = port},
            .connect_timeout_ms = CONNECT_TIMEOUT_MS,
            .backoff_min_ms = BACKOFF_MIN_MS,
            .backoff_max_ms = BACKOFF_MAX_MS,
            .stopping = &cl->stopping,
            .data = cl->b};
        hb_rconn_init(&n->rc, cl->b->base, cl->b->edge, cl->b->resolver, &cfg, &node_ops, n);
    }
    n->next = cl->nodes;
    cl->nodes = n;
    return n;
}

cnode_t *cluster__node_by_ac(hb_cluster_t *cl, const redisAsyncContext *ac)
{
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->rc.ac == ac)
            return n;
    return NULL;
}

cnode_t *cluster__owner(hb_cluster_t *cl, unsigned slot)
{
    int idx;
    if (!cl->map || (idx = hb_slot_map_owner(cl->map, slot)) < 0)
        return NULL;
    if (!cl->owner_of[idx])
        cl->owner_of[idx] =
            cluster__node_get(cl, hb_slot_map_host(cl->map, idx), hb_slot_map_port(cl->map, idx));
    return cl->owner_of[idx];
}

static void on_lib_loaded(redisAsyncContext *ac, int ok, void *priv)
{
    hb_cluster_t *cl = ((hb_broker_t *)ac->data)->cluster;
    cnode_t *n = priv;
    if (!ok) {
        hb_log_error(MOD, "function library not usable on a cluster node", "{s:s,s:i}", "host",
                     n->host, "port", n->port);
        redisAsyncDisconnect(ac); /* retried with backoff */
        return;
    }
    n->ready = 1;
    hb_rconn_set_up(&n->rc);
    hb_log_info(MOD, "redis cluster node ready", "{s:s,s:i,s:b}", "host", n->host, "port", n->port,
                "primary", n->primary);
    if (!cl->map || cl->want_refresh)
        cluster__refresh(cl);
    check_ready(cl);
    if (cl->nretry)
        event_active(cl->retry_ev, EV_TIMEOUT, 0);
}

/* The node's own address, resolved by rconn.c at each attempt. */
static int node_addr(hb_rconn_t *r, const char **host, int *port)
{
    cnode_t *n = r->owner;
    *host = n->host;
    *port = n->port;
    return 0;
}

/* Connected: CLIENT SETNAME herald-<node id>-node was sent and the set-up deadline armed (its
 * set-up is the library check, FINDINGS F23). */
static void on_node_up(hb_rconn_t *r)
{
    cnode_t *n = r->owner;
    hb_library_ensure(n->cl->b, r->ac, on_lib_loaded, n);
}

static void on_node_failed(hb_rconn_t *r, hb_rconn_fail_t why)
{
    cnode_t *n = r->owner;
    (void)why;
    n->cl->want_refresh = 1;
}

static void on_node_down(hb_rconn_t *r)
{
    cnode_t *n = r->owner;
    n->ready = 0;
}

static void on_node_lost(hb_rconn_t *r)
{
    cnode_t *n = r->owner;
    n->cl->want_refresh = 1;
    check_ready(n->cl);
}

/* Connect again (after a loss, at the backoff timer) only while in use. */
static int node_keep(hb_rconn_t *r)
{
    cnode_t *n = r->owner;
    return n->primary || n->seed;
}

static const hb_rconn_ops_t node_ops = {.addr = node_addr,
                                        .up = on_node_up,
                                        .failed = on_node_failed,
                                        .down = on_node_down,
                                        .lost = on_node_lost,
                                        .keep = node_keep};

void cluster__node_connect(cnode_t *n)
{
    if (!hb_rconn_waiting(&n->rc)) /* else its retry is due: the backoff holds */
        hb_rconn_start(&n->rc);
}

/* ---- the slot map ---- */

static void map_install(hb_cluster_t *cl, hb_slot_map_t *m)
{
    size_t before = 0, after = hb_slot_map_nodes(m);
    atomic_fetch_add_explicit(&cl->b->edge->stats.cluster_map_updates, 1, memory_order_relaxed);
    atomic_store_explicit(&cl->b->edge->stats.cluster_primaries, after, memory_order_relaxed);
    for (cnode_t *n = cl->nodes; n; n = n->next) {
        before += n->primary;
        n->primary = 0;
    }
    hb_slot_map_free(cl->map);
    cl->map = m;
    memset(cl->owner_of, 0, sizeof(cl->owner_of));
    for (size_t i = 0; i < after; i++) {
        cnode_t *n =
            cluster__node_get(cl, hb_slot_map_host(m, (int)i), hb_slot_map_port(m, (int)i));
        cl->owner_of[i] = n;
        if (!n)
            continue;
        n->primary = 1;
        n->idx = (int)i;
        cluster__node_connect(n);
    }
    if (before != after)
        hb_log_info(MOD, "cluster slot map", "{s:i}", "primaries", (int)after);
    cl->resub = 1;
    check_ready(cl);
}

static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_cluster_t *cl = ((hb_broker_t *)ac->data)->cluster;
    cnode_t *asked = priv;
    redisReply *r = reply;
    hb_slot_map_t *m;
    cl->refresh_inflight = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements > HB_SLOT_COUNT) {
        cl->want_refresh = 1;
        return;
    }
    m = hb_slot_map_new();
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i], *nd;
        const char *host;
        size_t hlen;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY)
            continue;
        nd = e->element[2];
        if (nd->elements < 2 || nd->element[0]->type != REDIS_REPLY_STRING ||
            nd->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        host = nd->element[0]->str;
        hlen = nd->element[0]->len;
        if (hlen == 0 || (hlen == 1 && host[0] == '?')) { /* unknown endpoint: the node asked */
            host = asked->host;
            hlen = strlen(host);
        }
        if (nd->element[1]->integer < 1 || nd->element[1]->integer > 65535 ||
            e->element[0]->integer < 0 || e->element[1]->integer >= HB_SLOT_COUNT)
            continue;
        hb_slot_map_assign(m, (long)e->element[0]->integer, (long)e->element[1]->integer, host,
                           hlen, (int)nd->element[1]->integer);
    }
    if (hb_slot_map_covered(m) != HB_SLOT_COUNT) {
        hb_log_ratelimited("cluster-map", 2000, HB_LOG_WARN, MOD,
                           "cluster slot map incomplete: slots not served", "{s:i}", "covered",
                           (int)hb_slot_map_covered(m));
        hb_slot_map_free(m);
        cl->want_refresh = 1;
        return;
    }
    cl->want_refresh = 0;
    map_install(cl, m);
    if (cl->nretry)
        event_active(cl->retry_ev, EV_TIMEOUT, 0);
}

void cluster__refresh(hb_cluster_t *cl)
{
    cnode_t *pick = NULL;
    double now = hb_now();
    if (cl->refresh_inflight || cl->stopping || now - cl->last_refresh < REFRESH_MIN_GAP_S)
        return;
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->ready && (!pick || (n->primary && !pick->primary)))
            pick = n;
    if (!pick) {
        for (cnode_t *n = cl->nodes; n; n = n->next)
            if (n->primary || n->seed)
                cluster__node_connect(n);
        cl->want_refresh = 1;
        return;
    }
    cl->last_refresh = now;
    if (redisAsyncCommand(pick->rc.ac, on_slots, pick, "CLUSTER SLOTS") == REDIS_OK)
        cl->refresh_inflight = 1;
}

static void check_ready(hb_cluster_t *cl)
{
    hb_broker_t *b = cl->b;
    int routable = cl->map != NULL;
    if (routable != b->cmd_ready) {
        b->cmd_ready = routable;
        if (routable)
            b->ev->cmd_ready(b);
    }
    b->ev->ready_changed(b);
}

int hb_cluster_ready(const hb_cluster_t *cl)
{
    if (!cl->map)
        return 0;
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->primary && !n->ready)
            return 0;
    return 1;
}

void hb_cluster_ingest_addr(hb_cluster_t *cl, const char **host, int *port)
{
    const hb_cfg_t *cfg = &cl->b->edge->cfg;
    size_t n = cl->map ? hb_slot_map_nodes(cl->map) : 0;
    size_t i = cl->ing_next++;
    if (n && i % 2) { /* alternate between the map's primaries and the seeds */
        *host = hb_slot_map_host(cl->map, (int)((i / 2) % n));
        *port = hb_slot_map_port(cl->map, (int)((i / 2) % n));
        return;
    }
    *host = cfg->redis_seed_host[(i / 2) % (size_t)cfg->redis_nseeds];
    *port = cfg->redis_seed_port[(i / 2) % (size_t)cfg->redis_nseeds];
}

const char *hb_cluster_slot_tag(const hb_cluster_t *cl, unsigned slot)
{
    return cl->tags[slot % HB_SLOT_COUNT];
}
