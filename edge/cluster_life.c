/*
 * Redis Cluster mode (cluster.c says how it works): the top of its files, the cluster's
 * lifecycle (new, start, free) and its tick, which drives the files below it: the slot map's
 * refresh (cluster.c), resubscriptions (cluster_sub.c), and the canary per node
 * (cluster__canary_tick: subscribes, publishes, notices staleness and replaces a stale node's
 * sharded connection, using cluster_canary.c's per-node state and cluster_sub.c's
 * connections). Only rc_cluster.c calls in here. Broker thread only; nothing here blocks.
 */
#include "cluster.h"
#include "cluster_priv.h"

#include <stdlib.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "rc.h" /* b->ev: the events going up */
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_slot.h"
#include "hb_time.h"
#include "psconn.h"

#define MOD "canary" /* the canary tick's log lines keep cluster_canary.c's module */
#define REFRESH_EVERY_S 5.0

hb_cluster_t *hb_cluster_new(hb_broker_t *b)
{
    hb_cluster_t *cl = hb_xcalloc(1, sizeof(*cl));
    cl->b = b;
    cl->fail_ac.data = b;
    cl->ing_next = (size_t)random() % 64; /* edges spread their raw-ingest listeners */
    cl->retry_ev = evtimer_new(b->base, cluster__on_retry, cl);
    cl->tags = hb_xcalloc(HB_SLOT_COUNT, sizeof(*cl->tags));
    hb_slot_tag_table(cl->tags);
    return cl;
}

void hb_cluster_start(hb_cluster_t *cl)
{
    const hb_cfg_t *cfg = &cl->b->edge->cfg;
    for (int i = 0; i < cfg->redis_nseeds; i++) {
        cnode_t *n = cluster__node_get(cl, cfg->redis_seed_host[i], cfg->redis_seed_port[i]);
        if (!n)
            continue;
        n->seed = 1;
        cluster__node_connect(n);
    }
}

void cluster__canary_tick(hb_cluster_t *cl)
{
    double now = hb_now();
    int changed = 0;
    for (cnode_t *n = cl->nodes; n; n = n->next) {
        ccanary_t *c = &n->canary;
        double age;
        int due;
        if (!n->primary && c->beat.stale) { /* no longer serves slots: nothing to expect from it */
            c->beat.stale = 0;
            changed = 1;
        }
        if (n->primary && c->beat.stale && !n->sub && !cl->stopping)
            cluster__sub_open(n); /* a stale node is watched until heard, topics or not */
        if (!cluster__canary_watched(n) || cl->stopping)
            continue;
        if (c->subscribed && cluster__owner(cl, c->slot) != n) {
            /* the channel's slot moved: listen on one this node serves */
            hb_ps_command(n->sub, "SUNSUBSCRIBE %b", c->chan, c->clen);
            c->subscribed = 0;
        }
        if (!c->subscribed) {
            cluster__canary_subscribe(n, now);
            continue;
        }
        if (c->confirmed && hb_canary_beat_due(&c->beat, now))
            cluster__canary_publish(n, now);
        due = hb_canary_beat_check(&c->beat, now, &age);
        if (due & HB_CANARY_WENT_STALE) {
            changed = 1;
            hb_log_warn(MOD, "canary stale: pub/sub delivery stopped; not ready",
                        "{s:f,s:s,s:i,s:s}", "age_s", age, "host", n->host, "port", n->port,
                        "channel", c->chan);
        }
        if (due & HB_CANARY_REPLACE) {
            hb_log_warn(MOD, "canary stale: replacing the sharded subscriber connection",
                        "{s:f,s:s,s:i}", "age_s", age, "host", n->host, "port", n->port);
            cluster__sub_drop(n); /* topics resubscribe and refill; the clock starts again */
        }
    }
    cluster__canary_report(cl);
    if (changed)
        cl->b->ev->ready_changed(cl->b);
}

void hb_cluster_tick(hb_cluster_t *cl)
{
    if (cl->want_refresh || hb_now() - cl->last_refresh >= REFRESH_EVERY_S)
        cluster__refresh(cl);
    cluster__resubscribe(cl);
    cluster__canary_tick(cl);
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
            cluster__rcmd_finish(rc, NULL, NULL);
        }
    }
    while (cl->nodes) {
        cnode_t *n = cl->nodes;
        cl->nodes = n->next;
        if (n->rc.ac)
            redisAsyncFree(n->rc.ac);
        hb_ps_free(n->sub);
        hb_rconn_free_timers(&n->rc);
        free(n);
    }
    event_free(cl->retry_ev);
    hb_slot_map_free(cl->map);
    free(cl->tags);
    free(cl);
}
