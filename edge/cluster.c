/*
 * Redis Cluster mode of the broker. Each topic's keys and live channel share the slot of the
 * topic name (the {<topic>} hash tag), so every command for a topic goes to the primary serving
 * that slot:
 *   - one hiredis async command connection per primary; the function library is loaded on each
 *     as soon as it connects (so also on a replica promoted by a failover);
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
 */
#include "cluster.h"
#include "library.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_slot.h"
#include "psconn.h"
#include "resolve.h"

#define MOD "cluster"
#define REDIRECTS_MAX 8
#define RETRY_MS 50
#define COMMAND_DEADLINE_S 15.0 /* a command may wait this long for the cluster to settle */
#define RETRY_LIST_MAX 100000
#define REFRESH_EVERY_S 5.0
#define REFRESH_MIN_GAP_S 0.2
#define CONNECT_TIMEOUT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define NODES_MAX (HB_SLOT_NODES_MAX + HB_CFG_SEEDS_MAX) /* node addresses ever known */

typedef struct cnode cnode_t;

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
    redisAsyncContext *ac; /* commands; NULL while disconnected */
    int up, ready;         /* connected / function library loaded */
    long backoff_ms;
    struct event *timer, *ctimer;
    int primary; /* serves slots in the current map */
    int seed;
    int idx; /* its index in the current map while primary */
    hb_psconn_t *sub;
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
    int stopping;
};

static void node_connect(cnode_t *n);
static void rcmd_send(hb_cluster_t *cl, rcmd_t *rc);
static void refresh(hb_cluster_t *cl);
static void check_ready(hb_cluster_t *cl);

/* ---- nodes ---- */

static cnode_t *node_find(hb_cluster_t *cl, const char *host, int port)
{
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->port == port && !strcmp(n->host, host))
            return n;
    return NULL;
}

static void on_node_timer(evutil_socket_t fd, short what, void *arg);
static void on_node_ctimeout(evutil_socket_t fd, short what, void *arg);

static cnode_t *node_get(hb_cluster_t *cl, const char *host, int port)
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
    n->timer = evtimer_new(cl->b->base, on_node_timer, n);
    n->ctimer = evtimer_new(cl->b->base, on_node_ctimeout, n);
    n->next = cl->nodes;
    cl->nodes = n;
    return n;
}

static cnode_t *node_by_ac(hb_cluster_t *cl, const redisAsyncContext *ac)
{
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->ac == ac)
            return n;
    return NULL;
}

static cnode_t *owner(hb_cluster_t *cl, unsigned slot)
{
    int idx;
    if (!cl->map || (idx = hb_slot_map_owner(cl->map, slot)) < 0)
        return NULL;
    if (!cl->owner_of[idx])
        cl->owner_of[idx] =
            node_get(cl, hb_slot_map_host(cl->map, idx), hb_slot_map_port(cl->map, idx));
    return cl->owner_of[idx];
}

static void node_schedule(cnode_t *n)
{
    long base = n->backoff_ms ? n->backoff_ms * 2 : BACKOFF_MIN_MS;
    struct timeval tv;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    n->backoff_ms = base;
    base = base / 2 + (long)(random() % (base / 2 + 1));
    tv.tv_sec = base / 1000;
    tv.tv_usec = (base % 1000) * 1000;
    evtimer_add(n->timer, &tv);
}

static void on_node_timer(evutil_socket_t fd, short what, void *arg)
{
    cnode_t *n = arg;
    (void)fd;
    (void)what;
    if (n->primary || n->seed)
        node_connect(n);
}

static void on_node_ctimeout(evutil_socket_t fd, short what, void *arg)
{
    cnode_t *n = arg;
    (void)fd;
    (void)what;
    if (n->ac && !n->up) {
        hb_log_ratelimited("cluster-connect", 2000, HB_LOG_WARN, MOD,
                           "redis cluster node connect timed out", "{s:s,s:i}", "host", n->host,
                           "port", n->port);
        redisAsyncFree(n->ac); /* not connected: no disconnect callback */
        n->ac = NULL;
        n->cl->want_refresh = 1;
        node_schedule(n);
    }
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
    n->backoff_ms = 0;
    hb_log_info(MOD, "redis cluster node ready", "{s:s,s:i,s:b}", "host", n->host, "port", n->port,
                "primary", n->primary);
    if (!cl->map || cl->want_refresh)
        refresh(cl);
    check_ready(cl);
    if (cl->nretry)
        event_active(cl->retry_ev, EV_TIMEOUT, 0);
}

static void on_node_connect(const redisAsyncContext *ac, int status)
{
    hb_broker_t *b = ac->data;
    hb_cluster_t *cl = b->cluster;
    cnode_t *n = node_by_ac(cl, ac);
    if (!n)
        return;
    evtimer_del(n->ctimer);
    if (status != REDIS_OK) {
        hb_log_ratelimited("cluster-connect", 2000, HB_LOG_WARN, MOD,
                           "redis cluster node connect failed", "{s:s,s:i,s:s}", "host", n->host,
                           "port", n->port, "err", ac->errstr);
        n->ac = NULL; /* hiredis frees it */
        cl->want_refresh = 1;
        node_schedule(n);
        return;
    }
    n->up = 1;
    hb_library_ensure(b, n->ac, on_lib_loaded, n);
}

static void on_node_disconnect(const redisAsyncContext *ac, int status)
{
    hb_broker_t *b = ac->data;
    hb_cluster_t *cl = b->cluster;
    cnode_t *n = node_by_ac(cl, ac);
    (void)status;
    if (!n)
        return;
    n->ac = NULL;
    n->up = n->ready = 0;
    if (cl->stopping)
        return;
    atomic_fetch_add_explicit(&b->edge->stats.redis_reconnects, 1, memory_order_relaxed);
    hb_log_ratelimited("cluster-down", 2000, HB_LOG_WARN, MOD, "redis cluster node connection lost",
                       "{s:s,s:i}", "host", n->host, "port", n->port);
    cl->want_refresh = 1;
    check_ready(cl);
    if (n->primary || n->seed)
        node_schedule(n);
}

static void node_connect(cnode_t *n)
{
    hb_cluster_t *cl = n->cl;
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    const char *addr;
    if (cl->stopping || n->ac || evtimer_pending(n->timer, NULL))
        return;
    addr = hb_resolver_addr(cl->b->resolver, n->host);
    if (!addr) { /* a host name being looked up (or not resolvable): try again later */
        node_schedule(n);
        return;
    }
    n->ac = redisAsyncConnect(addr, n->port);
    if (!n->ac || n->ac->err) {
        if (n->ac)
            redisAsyncFree(n->ac);
        n->ac = NULL;
        node_schedule(n);
        return;
    }
    n->ac->data = cl->b;
    redisLibeventAttach(n->ac, cl->b->base);
    redisAsyncSetConnectCallback(n->ac, on_node_connect);
    redisAsyncSetDisconnectCallback(n->ac, on_node_disconnect);
    evtimer_add(n->ctimer, &tv);
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
        cnode_t *n = node_get(cl, hb_slot_map_host(m, (int)i), hb_slot_map_port(m, (int)i));
        cl->owner_of[i] = n;
        if (!n)
            continue;
        n->primary = 1;
        n->idx = (int)i;
        node_connect(n);
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

static void refresh(hb_cluster_t *cl)
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
                node_connect(n);
        cl->want_refresh = 1;
        return;
    }
    cl->last_refresh = now;
    if (redisAsyncCommand(pick->ac, on_slots, pick, "CLUSTER SLOTS") == REDIS_OK)
        cl->refresh_inflight = 1;
}

static void check_ready(hb_cluster_t *cl)
{
    hb_broker_t *b = cl->b;
    int routable = cl->map != NULL;
    if (routable != b->cmd_ready) {
        b->cmd_ready = routable;
        if (routable)
            hb_broker_on_cmd_ready(b);
    }
    hb_broker_update_ready(b);
}

redisAsyncContext *hb_cluster_fail_ac(hb_cluster_t *cl)
{
    return &cl->fail_ac;
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

/* ---- routed commands ---- */

static void rcmd_finish(rcmd_t *rc, redisAsyncContext *ac, redisReply *r)
{
    hb_cluster_t *cl = rc->cl;
    if (rc->held) {
        cl->slot_held[rc->slot]--;
        cl->slot_sending[rc->slot] = 0;
        if (cl->qhead[rc->slot] && !cl->stopping) { /* the slot's next command may go now */
            if (!cl->in_ready[rc->slot]) {
                cl->in_ready[rc->slot] = 1;
                cl->ready[cl->nready++] = (uint16_t)rc->slot;
            }
            event_active(cl->retry_ev, EV_TIMEOUT, 0);
        }
    }
    rc->fn(ac ? ac : &cl->fail_ac, r, rc->priv);
    redisFreeCommand(rc->cmd);
    free(rc);
}

static void retry_later(hb_cluster_t *cl, rcmd_t *rc)
{
    struct timeval tv = {0, RETRY_MS * 1000};
    if (hb_now() > rc->deadline || cl->nretry >= RETRY_LIST_MAX || cl->stopping) {
        atomic_fetch_add_explicit(&cl->b->edge->stats.cluster_giveups, 1, memory_order_relaxed);
        hb_log_ratelimited("cluster-giveup", 1000, HB_LOG_WARN, MOD,
                           "redis cluster command not placed in time", "{s:i}", "slot",
                           (int)rc->slot);
        rcmd_finish(rc, NULL, NULL);
        return;
    }
    if (rc->held) {
        /* It was its slot's first held command (the one in flight): it stays first. */
        cl->slot_sending[rc->slot] = 0;
        rc->next = cl->qhead[rc->slot];
        cl->qhead[rc->slot] = rc;
        if (!cl->qtail[rc->slot])
            cl->qtail[rc->slot] = rc;
    } else {
        rc->held = 1;
        cl->slot_held[rc->slot]++;
        rc->next = NULL;
        if (cl->qtail[rc->slot])
            cl->qtail[rc->slot]->next = rc;
        else
            cl->qhead[rc->slot] = rc;
        cl->qtail[rc->slot] = rc;
    }
    if (!cl->in_ready[rc->slot]) {
        cl->in_ready[rc->slot] = 1;
        cl->ready[cl->nready++] = (uint16_t)rc->slot;
    }
    cl->nretry++;
    if (!evtimer_pending(cl->retry_ev, NULL))
        evtimer_add(cl->retry_ev, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    hb_cluster_t *cl = arg;
    uint16_t slots[HB_SLOT_COUNT];
    size_t n = cl->nready;
    (void)fd;
    (void)what;
    if (cl->want_refresh)
        refresh(cl);
    /* Send the first waiting command of each listed slot that has none in flight. A slot
     * with one in flight is listed again when that one finishes (rcmd_finish). */
    memcpy(slots, cl->ready, n * sizeof(*slots));
    cl->nready = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned slot = slots[i];
        rcmd_t *rc = cl->qhead[slot];
        cl->in_ready[slot] = 0;
        if (!rc)
            continue;
        if (cl->slot_sending[slot]) {
            cl->in_ready[slot] = 1; /* still waiting behind its slot's one in flight */
            cl->ready[cl->nready++] = (uint16_t)slot;
            continue;
        }
        cl->qhead[slot] = rc->next;
        if (!cl->qhead[slot])
            cl->qtail[slot] = NULL;
        rc->next = NULL;
        cl->nretry--;
        cl->slot_sending[slot] = 1;
        rcmd_send(cl, rc); /* may put it back first (retry_later) */
        if (cl->qhead[slot] && !cl->in_ready[slot] && !cl->slot_sending[slot]) {
            cl->in_ready[slot] = 1;
            cl->ready[cl->nready++] = (uint16_t)slot;
        }
    }
}

static int is_retryable(const char *err)
{
    return !strncmp(err, "TRYAGAIN", 8) || !strncmp(err, "CLUSTERDOWN", 11) ||
           !strncmp(err, "LOADING", 7) || !strncmp(err, "MASTERDOWN", 10) ||
           strstr(err, "cluster is down") != NULL;
}

static void on_rcmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rcmd_t *rc = priv;
    hb_cluster_t *cl = rc->cl;
    redisReply *r = reply;
    int ask, port;
    unsigned slot;
    char host[HB_SLOT_HOST_MAX + 1];

    if (r && r->type == REDIS_REPLY_ERROR && !cl->stopping) {
        if (!hb_slot_redirect_parse(r->str, r->len, &ask, &slot, host, sizeof(host), &port, NULL) &&
            rc->redirects < REDIRECTS_MAX) {
            cnode_t *from = node_by_ac(cl, ac);
            rc->redirects++;
            atomic_fetch_add_explicit(ask ? &cl->b->edge->stats.cluster_ask
                                          : &cl->b->edge->stats.cluster_moved,
                                      1, memory_order_relaxed);
            if (!host[0] && from)
                snprintf(host, sizeof(host), "%s", from->host);
            if (!host[0]) {
                rcmd_finish(rc, ac, r);
                return;
            }
            if (ask) {
                rc->ask = node_get(cl, host, port);
                if (rc->ask)
                    node_connect(rc->ask);
            } else {
                rc->ask = NULL;
                if (cl->map)
                    hb_slot_map_assign(cl->map, slot, slot, host, strlen(host), port);
                cl->want_refresh = 1;
            }
            /* An earlier command of the slot is held (it got TRYAGAIN while the slot's keys
             * were moving): this one must not overtake it on the new node. */
            if (!rc->held && cl->slot_held[rc->slot]) {
                retry_later(cl, rc);
                return;
            }
            /* The first of its slot to be redirected goes alone: the slot's later commands,
             * redirected or new, wait until it is answered. Two pipelined to the importing
             * node could otherwise be split by the end of the migration: the first refused
             * with TRYAGAIN (keys half moved), the second stored, out of order. */
            if (!rc->held) {
                rc->held = 1;
                cl->slot_held[rc->slot]++;
                cl->slot_sending[rc->slot] = 1;
            }
            rcmd_send(cl, rc);
            return;
        }
        if (is_retryable(r->str)) {
            if (strncmp(r->str, "TRYAGAIN", 8))
                cl->want_refresh = 1;
            rc->ask = NULL;
            retry_later(cl, rc);
            return;
        }
    }
    rcmd_finish(rc, ac, r);
}

static void rcmd_send(hb_cluster_t *cl, rcmd_t *rc)
{
    cnode_t *n = rc->ask ? rc->ask : owner(cl, rc->slot);
    if (!n || !n->ready) {
        if (n)
            node_connect(n);
        else
            cl->want_refresh = 1;
        retry_later(cl, rc);
        return;
    }
    if (rc->ask) {
        rc->ask = NULL; /* once */
        redisAsyncCommand(n->ac, NULL, NULL, "ASKING");
    }
    if (redisAsyncFormattedCommand(n->ac, on_rcmd_reply, rc, rc->cmd, rc->len) != REDIS_OK)
        retry_later(cl, rc);
}

static int rcmd_start(hb_cluster_t *cl, unsigned slot, int argc, const char **argv,
                      const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    rcmd_t *rc;
    char *cmd = NULL;
    int len;
    if (!cl->map || cl->stopping)
        return REDIS_ERR;
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return REDIS_ERR;
    rc = hb_xcalloc(1, sizeof(*rc));
    rc->cl = cl;
    rc->fn = cb;
    rc->priv = priv;
    rc->cmd = cmd;
    rc->len = (size_t)len;
    rc->slot = slot;
    rc->deadline = hb_now() + COMMAND_DEADLINE_S;
    /* Held commands of the slot go first: a new one must not overtake them (raw ingest stores
     * in publish order). */
    if (cl->slot_held[slot])
        retry_later(cl, rc);
    else
        rcmd_send(cl, rc);
    return REDIS_OK;
}

#define FCALL_ARGS_MAX 8

int hb_cluster_fcall(hb_cluster_t *cl, const char *fn, const char *topic, size_t tlen,
                     const char *key3, int argc, const char **argv, const size_t *argvlen,
                     redisCallbackFn *cb, void *priv)
{
    const char *prefix = cl->b->edge->cfg.prefix;
    char log[HB_TOPIC_MAX + 80], epoch[HB_TOPIC_MAX + 80];
    const char *av[FCALL_ARGS_MAX + 6];
    size_t al[FCALL_ARGS_MAX + 6];
    int k = key3 ? 6 : 5;
    int ll = snprintf(log, sizeof(log), "%s{%.*s}:log", prefix, (int)tlen, topic);
    int el = snprintf(epoch, sizeof(epoch), "%s{%.*s}:epoch", prefix, (int)tlen, topic);
    if (argc > FCALL_ARGS_MAX || ll < 0 || el < 0 || (size_t)ll >= sizeof(log) ||
        (size_t)el >= sizeof(epoch))
        return REDIS_ERR;
    av[0] = "FCALL";
    al[0] = 5;
    av[1] = fn;
    al[1] = strlen(fn);
    av[2] = key3 ? "3" : "2";
    al[2] = 1;
    av[3] = log;
    al[3] = (size_t)ll;
    av[4] = epoch;
    al[4] = (size_t)el;
    if (key3) {
        av[5] = key3;
        al[5] = strlen(key3);
    }
    for (int i = 0; i < argc; i++) {
        av[k + i] = argv[i];
        al[k + i] = argvlen[i];
    }
    return rcmd_start(cl, hb_slot_of(topic, tlen), argc + k, av, al, cb, priv);
}

int hb_cluster_key_command(hb_cluster_t *cl, int key_index, int argc, const char **argv,
                           const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    if (key_index < 1 || key_index >= argc)
        return REDIS_ERR;
    return rcmd_start(cl, hb_slot_of(argv[key_index], argvlen[key_index]), argc, argv, argvlen, cb,
                      priv);
}

int hb_cluster_fence_and_barrier(hb_cluster_t *cl, const char *term, const char *barrier,
                                 char (*tags)[HB_SLOT_TAG_MAX], redisCallbackFn *cb, void *priv)
{
    const char *prefix = cl->b->edge->cfg.prefix;
    size_t plen = strlen(prefix);
    int sent = 0;
    const char **av;
    size_t *al;
    char *keys;
    if (!cl->map)
        return 0;
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->primary && !n->ready)
            return 0;
    /* One FCALL per primary with the fence keys of all its slots (plen + "fence:{xxxx}"). */
    av = hb_xcalloc(HB_SLOT_COUNT + 4, sizeof(*av));
    al = hb_xcalloc(HB_SLOT_COUNT + 4, sizeof(*al));
    keys = hb_xcalloc(HB_SLOT_COUNT, plen + 16);
    for (cnode_t *n = cl->nodes; n; n = n->next) {
        char chan[300];
        int argc = 4;
        if (!n->primary)
            continue;
        av[0] = "FCALL";
        av[1] = cl->b->fn.fence;
        av[2] = "0";
        av[3] = term;
        for (unsigned s = 0; s < HB_SLOT_COUNT; s++) {
            char *k = keys + (size_t)s * (plen + 16);
            if (hb_slot_map_owner(cl->map, s) != n->idx)
                continue;
            snprintf(k, plen + 16, "%sfence:{%s}", prefix, tags[s]);
            av[argc++] = k;
        }
        for (int i = 0; i < argc; i++)
            al[i] = strlen(av[i]);
        snprintf(chan, sizeof(chan), "%s:%d", barrier, sent);
        redisAsyncCommandArgv(n->ac, cb, priv, argc, av, al);
        redisAsyncCommand(n->ac, NULL, NULL, "PUBLISH %s 1", chan);
        sent++;
    }
    free(av);
    free(al);
    free(keys);
    return sent;
}

/* ---- sharded subscriptions ---- */

static size_t live_chan(hb_cluster_t *cl, const btopic_t *t, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s{%.*s}:live", cl->b->edge->cfg.prefix, (int)t->len, t->name);
    return n < 0 ? 0 : (size_t)n;
}

static void sub_send(cnode_t *n, btopic_t *t)
{
    char chan[HB_TOPIC_MAX + 80];
    size_t len = live_chan(n->cl, t, chan, sizeof(chan));
    hb_ps_command(n->sub, "SSUBSCRIBE %b", chan, len);
}

/* Every topic of node n (or all of them with n NULL) goes back to idle, to be resubscribed. */
static void topics_detach(hb_cluster_t *cl, cnode_t *n, long only_slot, int only_subscribing)
{
    hb_broker_t *b = cl->b;
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        if (t->snode != n || (only_subscribing && t->state != T_SUBSCRIBING))
            continue;
        if (only_slot >= 0 && hb_slot_of(t->name, t->len) != (unsigned)only_slot)
            continue;
        t->snode = NULL;
        if (t->state == T_UNSUBSCRIBING) {
            hb_broker_topic_unsubscribed(b, t); /* may free t */
            continue;
        }
        t->state = T_IDLE;
        if (!t->want)
            hb_broker_topic_free(b, t);
    }
    cl->resub = 1;
    cl->want_refresh = 1;
    hb_broker_update_ready(b);
}

static void on_sub_up(hb_psconn_t *c, void *arg)
{
    cnode_t *n = arg;
    hb_broker_t *b = n->cl->b;
    size_t it = 0, klen;
    const void *k;
    void *v;
    (void)c;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        if (t->snode == n && t->state == T_SUBSCRIBING)
            sub_send(n, t);
    }
}

static void on_sub_reply(hb_psconn_t *c, redisReply *r, void *arg)
{
    cnode_t *n = arg;
    hb_cluster_t *cl = n->cl;
    hb_broker_t *b = cl->b;
    const char *kind;
    btopic_t *t = NULL;

    if (!r) {
        hb_ps_free(c);
        n->sub = NULL;
        if (cl->stopping)
            return;
        hb_log_ratelimited("cluster-sub-down", 2000, HB_LOG_WARN, MOD,
                           "sharded subscriber connection lost", "{s:s,s:i}", "host", n->host,
                           "port", n->port);
        atomic_fetch_add_explicit(&b->edge->stats.redis_reconnects, 1, memory_order_relaxed);
        topics_detach(cl, n, -1, 0);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int ask, port;
        unsigned slot;
        char host[HB_SLOT_HOST_MAX + 1];
        long only = -1;
        if (!hb_slot_redirect_parse(r->str, r->len, &ask, &slot, host, sizeof(host), &port, NULL)) {
            only = (long)slot;
            if (!ask && host[0] && cl->map)
                hb_slot_map_assign(cl->map, slot, slot, host, strlen(host), port);
        }
        hb_log_ratelimited("cluster-ssub", 1000, HB_LOG_INFO, MOD, "SSUBSCRIBE redirected", "{s:s}",
                           "err", r->str);
        topics_detach(cl, n, only, 1);
        return;
    }
    kind = hb_broker_pubsub(b, r, "smessage", &t);
    if (!kind || t->snode != n)
        return;
    if (!strcmp(kind, "ssubscribe") && t->state == T_SUBSCRIBING) {
        hb_broker_topic_subscribed(b, t);
    } else if (!strcmp(kind, "sunsubscribe")) {
        t->snode = NULL;
        if (t->state == T_UNSUBSCRIBING) {
            hb_broker_topic_unsubscribed(b, t);
            return;
        }
        /* Redis dropped us: the slot moved to another node. Resubscribe there and backfill. */
        hb_log_info(MOD, "topic slot moved: resubscribing", "{s:s%}", "topic", t->name, t->len);
        t->state = T_IDLE;
        cl->resub = 1;
        cl->want_refresh = 1;
        refresh(cl);
        hb_broker_update_ready(b);
    }
}

void hb_cluster_subscribe(hb_cluster_t *cl, btopic_t *t)
{
    cnode_t *n = owner(cl, hb_slot_of(t->name, t->len));
    if (!n || cl->stopping) {
        cl->resub = 1;
        return; /* stays idle; hb_cluster_tick() tries again once the map is known */
    }
    t->snode = n;
    t->state = T_SUBSCRIBING;
    if (!n->sub) {
        const char *addr = hb_resolver_addr(cl->b->resolver, n->host);
        n->sub = addr ? hb_ps_connect(cl->b->base, addr, n->port, CONNECT_TIMEOUT_MS, on_sub_up,
                                      on_sub_reply, n)
                      : NULL;
        if (!n->sub) {
            t->snode = NULL;
            t->state = T_IDLE;
            cl->resub = 1;
        }
        return; /* sent by on_sub_up */
    }
    if (hb_ps_is_up(n->sub))
        sub_send(n, t);
}

void hb_cluster_unsubscribe(hb_cluster_t *cl, btopic_t *t)
{
    cnode_t *n = t->snode;
    char chan[HB_TOPIC_MAX + 80];
    size_t len;
    t->state = T_UNSUBSCRIBING;
    if (!n || !n->sub || !hb_ps_is_up(n->sub)) {
        t->snode = NULL;
        hb_broker_topic_unsubscribed(cl->b, t);
        return;
    }
    len = live_chan(cl, t, chan, sizeof(chan));
    hb_ps_command(n->sub, "SUNSUBSCRIBE %b", chan, len);
}

static void resubscribe(hb_cluster_t *cl)
{
    hb_broker_t *b = cl->b;
    size_t it = 0, klen;
    const void *k;
    void *v;
    if (!cl->resub || !cl->map)
        return;
    cl->resub = 0;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        if (t->want && t->state == T_IDLE)
            hb_cluster_subscribe(cl, t);
        else if (t->want && t->state == T_SUBSCRIBED && t->snode &&
                 t->snode != owner(cl, hb_slot_of(t->name, t->len)))
            /* The slot moved without Redis telling us (e.g. the old primary is cut off, not
             * dead): leave it there; the unsubscribe confirmation resubscribes on the owner. */
            hb_cluster_unsubscribe(cl, t);
    }
    hb_broker_update_ready(b);
}

/* ---- lifecycle ---- */

void hb_cluster_tick(hb_cluster_t *cl)
{
    if (cl->want_refresh || hb_now() - cl->last_refresh >= REFRESH_EVERY_S)
        refresh(cl);
    resubscribe(cl);
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

hb_cluster_t *hb_cluster_new(hb_broker_t *b)
{
    hb_cluster_t *cl = hb_xcalloc(1, sizeof(*cl));
    cl->b = b;
    cl->fail_ac.data = b;
    cl->ing_next = (size_t)random() % 64; /* edges spread their raw-ingest listeners */
    cl->retry_ev = evtimer_new(b->base, on_retry, cl);
    return cl;
}

void hb_cluster_start(hb_cluster_t *cl)
{
    const hb_cfg_t *cfg = &cl->b->edge->cfg;
    for (int i = 0; i < cfg->redis_nseeds; i++) {
        cnode_t *n = node_get(cl, cfg->redis_seed_host[i], cfg->redis_seed_port[i]);
        if (!n)
            continue;
        n->seed = 1;
        node_connect(n);
    }
}

void hb_cluster_free(hb_cluster_t *cl)
{
    if (!cl)
        return;
    cl->stopping = 1;
    for (unsigned s = 0; s < HB_SLOT_COUNT; s++) {
        while (cl->qhead[s]) {
            rcmd_t *rc = cl->qhead[s];
            cl->qhead[s] = rc->next;
            rcmd_finish(rc, NULL, NULL);
        }
    }
    while (cl->nodes) {
        cnode_t *n = cl->nodes;
        cl->nodes = n->next;
        if (n->ac)
            redisAsyncFree(n->ac);
        hb_ps_free(n->sub);
        event_free(n->timer);
        event_free(n->ctimer);
        free(n);
    }
    event_free(cl->retry_ev);
    hb_slot_map_free(cl->map);
    free(cl);
}
