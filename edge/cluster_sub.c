/*
 * Redis Cluster mode: sharded subscriptions. One sharded-pub/sub connection per primary
 * (psconn.c), opened when a topic of that node is first wanted; SSUBSCRIBE <prefix>{<topic>}:live
 * there. A slot that moves (migration or failover) drops our subscription (Redis sends
 * sunsubscribe, or the connection dies): the topic goes back to idle and is resubscribed on the
 * new owner and backfilled by the broker's usual resubscribe path. Broker thread only.
 */
#include "cluster.h"
#include "cluster_priv.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "broker.h"
#include "rc.h" /* b->ev: the events going up */
#include "hb_keys.h"
#include "hb_log.h"
#include "hb_slot.h"
#include "hb_topic.h"
#include "psconn.h"
#include "rconn.h" /* hb_rconn_client_name */
#include "resolve.h"

#define MOD "cluster"

static size_t live_chan(hb_cluster_t *cl, const btopic_t *t, char *out, size_t cap)
{
    int n = hb_keys_topic(out, cap, cl->b->edge->cfg.prefix, t->name, t->len, HB_KEY_LIVE);
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
            b->ev->topic_unsubscribed(b, t); /* may free t */
            continue;
        }
        t->state = T_IDLE;
        if (!t->want)
            b->ev->topic_free(b, t);
    }
    cl->resub = 1;
    cl->want_refresh = 1;
    b->ev->ready_changed(b);
}

static void on_sub_up(hb_psconn_t *c, void *arg)
{
    cnode_t *n = arg;
    hb_broker_t *b = n->cl->b;
    size_t it = 0, klen;
    const void *k;
    void *v;
    (void)c;
    cluster__canary_sub_up(n);
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
        cluster__canary_sub_down(n);
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
    if (cluster__canary_reply(n, r))
        return;
    kind = b->ev->pubsub(b, r, "smessage", &t);
    if (!kind || t->snode != n)
        return;
    if (!strcmp(kind, "ssubscribe") && t->state == T_SUBSCRIBING) {
        b->ev->topic_subscribed(b, t);
    } else if (!strcmp(kind, "sunsubscribe")) {
        t->snode = NULL;
        if (t->state == T_UNSUBSCRIBING) {
            b->ev->topic_unsubscribed(b, t);
            return;
        }
        /* Redis dropped us: the slot moved to another node. Resubscribe there and backfill. */
        hb_log_info(MOD, "topic slot moved: resubscribing", "{s:s%}", "topic", t->name, t->len);
        t->state = T_IDLE;
        cl->resub = 1;
        cl->want_refresh = 1;
        cluster__refresh(cl);
        b->ev->ready_changed(b);
    }
}

void hb_cluster_subscribe(hb_cluster_t *cl, btopic_t *t)
{
    cnode_t *n = cluster__owner(cl, hb_slot_of(t->name, t->len));
    if (!n || cl->stopping) {
        cl->resub = 1;
        return; /* stays idle; hb_cluster_tick() tries again once the map is known */
    }
    t->snode = n;
    t->state = T_SUBSCRIBING;
    if (!n->sub) {
        if (cluster__sub_open(n) < 0) {
            t->snode = NULL;
            t->state = T_IDLE;
            cl->resub = 1;
        }
        return; /* sent by on_sub_up */
    }
    if (hb_ps_is_up(n->sub))
        sub_send(n, t);
}

int cluster__sub_open(cnode_t *n)
{
    hb_cluster_t *cl = n->cl;
    const char *addr;
    char name[HB_RCONN_NAME_MAX]; /* herald-<node id>-ssub, for CLIENT LIST / CLIENT KILL */
    if (n->sub)
        return 0;
    addr = hb_resolver_addr(cl->b->resolver, n->host);
    n->sub = addr ? hb_ps_connect(cl->b->base, addr, n->port, CONNECT_TIMEOUT_MS,
                                  hb_rconn_client_name(name, sizeof(name), cl->b->edge, "ssub") > 0
                                      ? name
                                      : NULL,
                                  on_sub_up, on_sub_reply, n)
                  : NULL;
    return n->sub ? 0 : -1;
}

void cluster__sub_drop(cnode_t *n)
{
    hb_cluster_t *cl = n->cl;
    hb_ps_free(n->sub);
    n->sub = NULL;
    cluster__canary_sub_down(n);
    atomic_fetch_add_explicit(&cl->b->edge->stats.redis_reconnects, 1, memory_order_relaxed);
    topics_detach(cl, n, -1, 0);
    cluster__sub_open(n); /* failing, the canary tick tries again */
}

void hb_cluster_unsubscribe(hb_cluster_t *cl, btopic_t *t)
{
    cnode_t *n = t->snode;
    char chan[HB_TOPIC_MAX + 80];
    size_t len;
    t->state = T_UNSUBSCRIBING;
    if (!n || !n->sub || !hb_ps_is_up(n->sub)) {
        t->snode = NULL;
        cl->b->ev->topic_unsubscribed(cl->b, t);
        return;
    }
    len = live_chan(cl, t, chan, sizeof(chan));
    hb_ps_command(n->sub, "SUNSUBSCRIBE %b", chan, len);
}

void cluster__resubscribe(hb_cluster_t *cl)
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
                 t->snode != cluster__owner(cl, hb_slot_of(t->name, t->len)))
            /* The slot moved without Redis telling us (e.g. the old primary is cut off, not
             * dead): leave it there; the unsubscribe confirmation resubscribes on the owner. */
            hb_cluster_unsubscribe(cl, t);
    }
    b->ev->ready_changed(b);
}
