/*
 * Redis Cluster mode: the delivery canary per node (canary.h says why a canary). Every primary
 * this edge holds a sharded-pub/sub connection to (cluster_sub.c) gets its own heartbeat
 * channel <prefix>{canary:<node-id>:<random>:<k>}:live, with k chosen so that the channel's slot
 * is served by that primary: SSUBSCRIBE on the node's sharded connection, and every
 * CANARY_INTERVAL the library's <lib>_canary function (SPUBLISH, the way events are published)
 * is called on the node's command connection. A node unheard for CANARY_STALE: /readyz 503
 * "canary stale", one log line, herald_canary_age_seconds (the oldest node's); after
 * CANARY_RECONNECT more, its sharded connection is replaced (its topics resubscribe and refill
 * as after any reconnection). Heard again after being stale: every topic is refilled.
 * A node without a sharded connection (no topic of its slots wanted yet) has no canary.
 * This file: the per-node state, fed by cluster_sub.c's sharded connection (sub up/down,
 * replies); the tick that drives it, and replaces a stale node's connection, is
 * cluster__canary_tick in cluster_life.c, above cluster_sub.c.
 * Broker thread only; nothing here blocks.
 */
#include "cluster.h"
#include "cluster_priv.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "broker.h"
#include "rc.h" /* b->ev: the events going up */
#include "canary.h"
#include "library.h"
#include "hb_err.h"
#include "hb_log.h"

#define MOD "canary"

/* The slot of <prefix>{<tag>}:live is the slot of <tag>. Tries k = 0.. until the tag's slot is
 * served by n in the current map; with N primaries about N tries. 0, or HB_ELIMIT (the tag or
 * channel does not fit), HB_ENOTFOUND (none found). */
static int pick_channel(cnode_t *n)
{
    hb_cluster_t *cl = n->cl;
    const hb_cfg_t *cfg = &cl->b->edge->cfg;
    ccanary_t *c = &n->canary;
    char tag[HB_CFG_STR_MAX + 64];
    for (unsigned k = 0; k < 1u << 16; k++) {
        int tl = snprintf(tag, sizeof(tag), "canary:%s:%08lx:%u", cfg->node_id, c->rnd, k);
        int cn;
        if (tl < 0 || (size_t)tl >= sizeof(tag))
            return HB_ELIMIT;
        c->slot = hb_slot_of(tag, (size_t)tl);
        if (cluster__owner(cl, c->slot) != n)
            continue;
        cn = snprintf(c->chan, sizeof(c->chan), "%s{%s}:live", cfg->prefix, tag);
        if (cn < 0 || (size_t)cn >= sizeof(c->chan))
            return HB_ELIMIT;
        c->clen = (size_t)cn;
        return 0;
    }
    return HB_ENOTFOUND;
}

void cluster__canary_subscribe(cnode_t *n, double now)
{
    ccanary_t *c = &n->canary;
    if (pick_channel(n) < 0 || hb_ps_command(n->sub, "SSUBSCRIBE %b", c->chan, c->clen) != 0)
        return;
    c->subscribed = 1;
    c->confirmed = 0;
    /* the clock starts now: a new connection has CANARY_STALE to be heard */
    hb_canary_beat_restart(&c->beat, now);
}

/* The heartbeat's FCALL answered: an error saying the library is gone makes the node's
 * connection reconnect, and its set-up load the library again. */
static void on_beat_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    hb_library_recover(ac->data, ac, reply);
}

void cluster__canary_publish(cnode_t *n, double now)
{
    ccanary_t *c = &n->canary;
    char seq[24];
    if (!n->rc.ac || !n->ready)
        return;
    snprintf(seq, sizeof(seq), "%llu", hb_canary_beat_sent(&c->beat, now));
    redisAsyncCommand(n->rc.ac, on_beat_reply, NULL, "FCALL %s 0 %b %s", n->cl->b->fn.canary, c->chan,
                      c->clen, seq);
}

void cluster__canary_sub_up(cnode_t *n)
{
    if (!n->canary.rnd)
        n->canary.rnd = ((unsigned long)random() & 0xffffffffUL) | 1;
    cluster__canary_subscribe(n, hb_now());
}

void cluster__canary_sub_down(cnode_t *n)
{
    ccanary_t *c = &n->canary;
    c->subscribed = c->confirmed = 0;
    /* beat.stale is kept: the replacement connection must be heard before the node is fine */
    hb_canary_beat_restart(&c->beat, hb_now());
}

int cluster__canary_reply(cnode_t *n, const redisReply *r)
{
    ccanary_t *c = &n->canary;
    const redisReply *ch;
    if (!c->subscribed || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    ch = r->element[1];
    if (ch->len != c->clen || memcmp(ch->str, c->chan, c->clen) != 0)
        return 0;
    if (!strcmp(r->element[0]->str, "ssubscribe")) {
        c->confirmed = 1;
        cluster__canary_publish(n, hb_now()); /* the first heartbeat right away */
    } else if (!strcmp(r->element[0]->str, "smessage")) {
        if (hb_canary_beat_heard(&c->beat, hb_now())) {
            hb_log_info(MOD, "canary back: refilling every topic", "{s:s,s:i,s:s}", "host", n->host,
                        "port", n->port, "channel", c->chan);
            n->cl->b->ev->refill_all(n->cl->b);
        }
        cluster__canary_report(n->cl);
        n->cl->b->ev->ready_changed(n->cl->b);
    } else if (!strcmp(r->element[0]->str, "sunsubscribe")) {
        c->subscribed = c->confirmed = 0; /* the slot moved: the next tick picks another */
    }
    return 1;
}

int cluster__canary_watched(const cnode_t *n)
{
    return n->primary && n->sub && hb_ps_is_up(n->sub);
}

void cluster__canary_report(hb_cluster_t *cl)
{
    double oldest = 0;
    int any = 0, stale = 0;
    for (cnode_t *n = cl->nodes; n; n = n->next) {
        if (!cluster__canary_watched(n) && !n->canary.beat.stale)
            continue;
        if (!any || n->canary.beat.expect < oldest)
            oldest = n->canary.beat.expect;
        any = 1;
        stale |= n->canary.beat.stale;
    }
    hb_canary_report(cl->b, any ? oldest : -1.0, stale);
}

int hb_cluster_canary_ok(const hb_cluster_t *cl)
{
    for (const cnode_t *n = cl->nodes; n; n = n->next)
        if (n->primary && n->canary.beat.stale)
            return 0;
    return 1;
}
