/*
 * Raw PUBLISH ingest: a plain `PUBLISH <topic> <payload>` is stored exactly once, in publish
 * order, by the one edge holding the ingest lease (ingest_lease.c), the leader. Every
 * ingest-enabled edge PSUBSCRIBEs "*" on its own connection (this file):
 *   - the leader stores raw messages in arrival order on the command connection: the messages
 *     of one read from Redis go out as one FCALL herald_ingest_many (fenced by its token, up to
 *     BATCH_MAX messages), several calls in flight; a store refused because the lease is no
 *     longer held puts the messages back among the kept ones (below), in their order;
 *   - a standby keeps each raw message until it sees the leader's stored copy (a live message
 *     flagged "r" on the same connection, so always after the raw one) and then forgets it.
 * In a cluster each raw message is stored on its own (the topics of a batch live on different
 * primaries), fenced by the leader's term. How a new leader takes over (barrier, "caught",
 * fences) is described at the top of ingest_lease.c. Broker thread only.
 *
 * This file, the bottom of the ingest files: keep and forget, the store path (batches, store
 * replies) and the leadership's steps it shares with the lease (state, go active, catch-up,
 * "caught", giving the lease back). The raw subscription that feeds it is ingest_sub.c.
 */
#include "ingest.h"
#include "ingest_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_live.h"
#include "hb_log.h"
#include "library.h"
#include "hb_mem.h"
#include "hb_rawchan.h"
#include "hb_rawq.h"
#include "rc.h"

#define MOD "ingest"
#define PENDING_MAX 100000
#define PENDING_BYTES_MAX (64u << 20)
#define INFLIGHT_MAX 100000
#define INFLIGHT_BYTES_MAX (64u << 20) /* a Redis slow to answer holds them in hiredis */

#define BATCH_MAX 512              /* raw messages per herald_ingest_many call */
#define BATCH_BYTES_MAX (1u << 20) /* and their bytes */
#define BATCHES_AHEAD 1            /* calls in flight before the next one waits to grow */

static hb_rawmsg_t *pend_new(ingest_t *in, const char *topic, size_t tlen, const char *payload,
                             size_t plen)
{
    return hb_rawmsg_new(topic, tlen, payload, plen, hb_now(), ++in->seq);
}

/* Appends a copy of (topic, payload) to a bounded list (kept, orphans); 0, or nonzero when an
 * oldest entry had to go (the caller counts it) or memory ran out. */
static int plist_push(ingest_t *in, hb_rawq_t *l, const char *topic, size_t tlen,
                      const char *payload, size_t plen)
{
    return hb_rawq_push(l, topic, tlen, payload, plen, hb_now(), ++in->seq);
}

static void batch_free(batch_t *bt)
{
    if (bt->answered) {
        bt->b->ingest->awaiting -= bt->msgs.count;
        bt->b->ingest->awaiting_bytes -= bt->msgs.bytes;
    }
    hb_list_unlink(&bt->link);
    hb_rawq_clear(&bt->msgs);
    free(bt);
}

static void store_msg(hb_broker_t *b, hb_rawmsg_t *p);

/* 1 when raw messages are stored as they come (else they are kept). */
int ingest__storing(const hb_broker_t *b)
{
    return b->ingest->state == I_ACTIVE && !b->ingest->settling && b->cmd_ready;
}

void ingest__store_kept(hb_broker_t *b)
{
    while (b->ingest->kept.head)
        store_msg(b, hb_rawq_unlink_head(&b->ingest->kept));
}

/* Frees the messages of bt whose stored copy was heard while its call was out: stored (by this
 * edge, or by the leader after it when the call was refused), never to be sent again. */
static void drop_heard(batch_t *bt)
{
    hb_rawq_t rest;
    hb_rawmsg_t *m;
    hb_rawq_init(&rest, 0, 0);
    while ((m = hb_rawq_unlink_head(&bt->msgs)))
        if (m->heard)
            hb_rawmsg_free(m);
        else
            hb_rawq_append(&rest, m);
    bt->msgs = rest;
}

/* Keeps a batch's messages again, before what was kept since. */
static void rekeep(hb_broker_t *b, batch_t *bt)
{
    drop_heard(bt);
    while (bt->msgs.head)
        if (hb_rawq_put_back(&b->ingest->kept, hb_rawq_unlink_head(&bt->msgs)))
            atomic_fetch_add_explicit(&b->edge->stats.ingest_standby_overflow, 1,
                                      memory_order_relaxed);
}

/* Stores refused for want of the lease: nobody stored them. Kept again (in their order, before
 * what arrived since) when this edge is no longer the leader, so that whoever leads next stores
 * them; sent again when this edge leads again meanwhile. */
static void put_back(hb_broker_t *b, batch_t *bt)
{
    if (!ingest__storing(b)) {
        rekeep(b, bt);
        return;
    }
    drop_heard(bt);
    while (bt->msgs.head)
        store_msg(b, hb_rawq_unlink_head(&bt->msgs));
}

static void count_stored(hb_broker_t *b, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-error", 1000, HB_LOG_WARN, MOD, "raw message not stored",
                           "{s:s}", "err", r->str);
    } else {
        atomic_fetch_add_explicit(&b->edge->stats.ingested, 1, memory_order_relaxed);
    }
}

/*
 * bt's store call answered r (stored: an ID per message, or an error for one refused). Each
 * stored message's copy comes on the raw subscription, maybe after this answer: the messages
 * whose copy is still to be heard stay in bt, which stays in `sent`, answered, for their copies
 * to find them (ingest__forget()). Matched by topic and payload only, an answered copy would
 * otherwise take a later message equal to it, still to be sent, which was then never stored.
 * 1 when bt stays; 0 when nothing is to be heard (bt is the caller's to free). At most
 * PENDING_MAX messages and PENDING_BYTES_MAX bytes wait so (the oldest answered batches go
 * first); none of a call sent on an earlier raw subscription (hb_ingest_on_ing_up(): its
 * copies may have gone with the old one).
 */
static int await_copies(hb_broker_t *b, batch_t *bt, const redisReply *r)
{
    ingest_t *in = b->ingest;
    hb_rawq_t wait;
    hb_rawmsg_t *m;
    size_t i = 0;
    hb_rawq_init(&wait, 0, 0);
    while ((m = hb_rawq_unlink_head(&bt->msgs))) {
        const redisReply *e = r->type != REDIS_REPLY_ARRAY ? r
                              : i < r->elements            ? r->element[i]
                                                           : NULL;
        i++;
        if (m->heard || !e || e->type == REDIS_REPLY_ERROR)
            hb_rawmsg_free(m);
        else
            hb_rawq_append(&wait, m);
    }
    bt->msgs = wait;
    if (!wait.count || bt->ing_gen != in->ing_gen)
        return 0;
    bt->answered = 1;
    in->awaiting += wait.count;
    in->awaiting_bytes += wait.bytes;
    {
        hb_list_t *n, *tmp;
        hb_list_foreach_safe(n, tmp, &in->sent)
        {
            batch_t *old = hb_list_container(n, batch_t, link);
            if (in->awaiting <= PENDING_MAX && in->awaiting_bytes <= PENDING_BYTES_MAX)
                break;
            if (!old->answered)
                continue;    /* a call still out (a cluster's, answered out of order) */
            batch_free(old); /* bt itself at worst, the last answered */
            if (old == bt)
                return 1;
        }
    }
    return 1;
}

void ingest__drop_awaited(hb_broker_t *b)
{
    hb_list_t *n, *tmp;
    hb_list_foreach_safe(n, tmp, &b->ingest->sent)
    {
        batch_t *bt = hb_list_container(n, batch_t, link);
        if (bt->answered)
            batch_free(bt);
    }
}

static void on_store_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    batch_t *bt = priv;
    hb_broker_t *b = bt->b;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    in->inflight -= (long)bt->msgs.count;
    in->inflight_bytes -= bt->msgs.bytes;
    if (hb_rc_ingest_one_bus(b))
        in->batches--;
    if (!r) {
        /* the connection went: stored or not, nobody knows (not sent again: a duplicate) */
        atomic_fetch_add_explicit(&b->edge->stats.ingest_unknown, bt->msgs.count,
                                  memory_order_relaxed);
    } else if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "HERALD_FENCED", 13)) {
        /* cluster: "HERALD_FENCED <term>", a slot's fence holds that term (ours was stale or
         * someone leads with a newer one): give the lease back and draw above it next time */
        long long seen = strtoll(r->str + 13, NULL, 10);
        if (seen > in->term_floor)
            in->term_floor = seen;
        if (bt->reign == in->reign && in->state != I_STANDBY) {
            ingest__give_back(b);
            ingest__set_state(b, I_STANDBY, "fenced");
        }
        put_back(b, bt);
    } else if (hb_library_missing(r)) {
        /* the function library was removed from Redis (FUNCTION FLUSH): the call did not run,
         * nothing of it was stored. Counted refused and dropped, these were stored late and
         * out of order by a standby that kept them, or lost (FINDINGS F25): this edge stands
         * by and keeps them again, in order, for whoever leads next (itself too, once its
         * connection has loaded the library again) */
        if (bt->reign == in->reign && in->state != I_STANDBY) {
            ingest__give_back(b);
            ingest__set_state(b, I_STANDBY, "function library missing");
        }
        put_back(b, bt);
        hb_library_recover(b, ac, r);
    } else {
        if (r->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < r->elements; i++)
                count_stored(b, r->element[i]);
        else
            for (size_t i = 0; i < bt->msgs.count; i++)
                count_stored(b, r);
        if (await_copies(b, bt, r))
            bt = NULL;
    }
    if (bt)
        batch_free(bt);
    if (in->settling && in->inflight <= 0 && in->state == I_ACTIVE) {
        in->settling = 0; /* every earlier store answered: refused ones are kept, in order */
        hb_log_info(MOD, "earlier stores answered: storing kept messages", "{s:i}", "kept",
                    (int)in->kept.count);
        ingest__catch_up(b);
    } else if (in->caught_pending && in->inflight <= 0) {
        ingest__publish_caught(b);
    }
    if (in->cur && hb_rc_ingest_one_bus(b))
        ingest__flush(b); /* what arrived while this call was out */
}

/* Sends the current batch: one herald_ingest_many for all its messages (single Redis). */
void ingest__flush(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    batch_t *bt = in->cur;
    int argc = 0, n;
    char nk[16];
    if (!bt)
        return;
    if (!ingest__storing(b)) {
        /* The leadership ended while the batch was filling: keep its messages, but only once
         * the calls sent before it have answered (refused ones are put back first, in order). */
        if (in->batches > 0)
            return;
        in->cur = NULL;
        rekeep(b, bt);
        batch_free(bt);
        return;
    }
    in->cur = NULL;
    n = (int)bt->msgs.count;
    snprintf(nk, sizeof(nk), "%d", n);
    in->av[argc] = "FCALL";
    in->al[argc++] = 5;
    in->av[argc] = b->fn.ingest_many;
    in->al[argc++] = strlen(b->fn.ingest_many);
    in->av[argc] = nk;
    in->al[argc++] = strlen(nk);
    for (hb_rawmsg_t *p = bt->msgs.head; p; p = p->next) {
        in->av[argc] = hb_rawmsg_topic(p);
        in->al[argc] = p->tlen;
        in->av[argc + n] = hb_rawmsg_payload(p);
        in->al[argc + n] = p->plen;
        argc++;
    }
    argc += n;
    in->av[argc] = in->token;
    in->al[argc++] = strlen(in->token);
    if (hb_rc_command(b, argc, in->av, in->al, on_store_reply, bt) != REDIS_OK) {
        rekeep(b, bt); /* the connection is going (or gone): stored by the next leader */
        batch_free(bt);
        return;
    }
    in->inflight += n;
    in->inflight_bytes += bt->msgs.bytes;
    in->batches++;
    bt->ing_gen = in->ing_gen;
    hb_list_push_tail(&in->sent, &bt->link);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    (void)fd;
    (void)what;
    b->ingest->flush_armed = 0;
    if (b->ingest->batches < BATCHES_AHEAD)
        ingest__flush(b); /* else it grows until a call answers */
}

/* The leader stores p (owned): in a cluster at once, one call per message (the topics of a
 * batch live on different primaries); on a single Redis with the other messages of this read. */
static void store_msg(hb_broker_t *b, hb_rawmsg_t *p)
{
    ingest_t *in = b->ingest;
    batch_t *bt;
    if (in->inflight >= INFLIGHT_MAX || in->inflight_bytes >= INFLIGHT_BYTES_MAX) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-inflight", 1000, HB_LOG_ERROR, MOD,
                           "too many raw messages in flight to Redis: dropped", NULL);
        hb_rawmsg_free(p);
        return;
    }
    if (!in->cur) {
        in->cur = hb_xcalloc(1, sizeof(*in->cur));
        hb_list_init(&in->cur->link);
        in->cur->b = b;
        in->cur->reign = in->reign;
    }
    bt = in->cur;
    hb_rawq_append(&bt->msgs, p);
    if (!hb_rc_ingest_one_bus(b)) {
        char term[24];
        in->cur = NULL;
        snprintf(term, sizeof(term), "%lld", in->term);
        if (hb_rc_ingest_store(b, hb_rawmsg_topic(p), p->tlen, hb_rawmsg_payload(p), p->plen, term,
                               on_store_reply, bt) == REDIS_OK) {
            in->inflight++;
            in->inflight_bytes += bt->msgs.bytes;
            bt->ing_gen = in->ing_gen;
            hb_list_push_tail(&in->sent, &bt->link);
        } else {
            atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
            hb_log_ratelimited("ingest-nomap", 1000, HB_LOG_ERROR, MOD,
                               "cluster slot map not known: raw message not stored", NULL);
            batch_free(bt);
        }
        return;
    }
    if (bt->msgs.count >= BATCH_MAX || bt->msgs.bytes >= BATCH_BYTES_MAX) {
        ingest__flush(b);
    } else if (!in->flush_armed && in->batches < BATCHES_AHEAD) {
        /* after the rest of this read: no timer, no delay; with BATCHES_AHEAD calls out, the
         * batch grows until one answers instead (Redis is the bottleneck then) */
        in->flush_armed = 1;
        event_active(in->flush_ev, EV_TIMEOUT, 1);
    }
}

void ingest__store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    hb_rawmsg_t *p = pend_new(b->ingest, topic, tlen, payload, plen);
    if (!p) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-oom", 1000, HB_LOG_ERROR, MOD,
                           "out of memory: raw message dropped", NULL);
        return;
    }
    store_msg(b, p);
}

void ingest__keep(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    ingest_t *in = b->ingest;
    /* cluster: the stored copy may have come first (another bus link) */
    if (in->orphans.count && hb_rawq_take(&in->orphans, topic, tlen, payload, plen))
        return;
    if (plist_push(in, &in->kept, topic, tlen, payload, plen)) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_standby_overflow, 1, memory_order_relaxed);
        hb_log_ratelimited("standby-full", 1000, HB_LOG_WARN, MOD,
                           "standby buffer full: oldest kept raw message forgotten", NULL);
    }
}

/* The leader stored a raw message: forget our copy (the oldest equal one); in a cluster a copy
 * that came before its raw message is remembered instead, to be matched when that arrives. */
void ingest__forget(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                    size_t plen)
{
    ingest_t *in = b->ingest;
    hb_list_t *n, *tmp;
    /*
     * A copy of ours may still be in a store call that is out (sent while this edge led; its
     * answer not back yet). The stored copy heard is this one: ours, or the next leader's, who
     * kept it because the lease lapsed before our call reached Redis (which then refuses it).
     * Either way it is stored: it is marked heard, so that a refusal answered later cannot
     * keep it again, to be stored twice by whoever leads next (FINDINGS F13). Or its call has
     * answered already: it waits in its answered batch (await_copies()). The leader hears its
     * own copies in the order it sent them: the match is at the head of the oldest batch.
     */
    hb_list_foreach_safe(n, tmp, &in->sent)
    {
        batch_t *bt = hb_list_container(n, batch_t, link);
        if (!bt->answered) {
            if (hb_rawq_mark_heard(&bt->msgs, topic, tlen, payload, plen))
                return;
        } else if (hb_rawq_take(&bt->msgs, topic, tlen, payload, plen)) {
            in->awaiting--;
            if (!bt->msgs.count)
                batch_free(bt);
            return;
        }
    }
    if (in->cur && hb_rawq_take(&in->cur->msgs, topic, tlen, payload, plen))
        return; /* waiting to be sent behind a call that is out: the same */
    if (hb_rawq_take(&in->kept, topic, tlen, payload, plen) || hb_rc_ingest_one_bus(b) ||
        in->state == I_ACTIVE)
        return;
    plist_push(in, &in->orphans, topic, tlen, payload, plen); /* bounded like kept */
}

void hb_ingest_init(hb_broker_t *b)
{
    ingest_t *in = hb_xcalloc(1, sizeof(*in));
    unsigned long r1 = (unsigned long)random(), r2 = (unsigned long)random();
    snprintf(in->token, sizeof(in->token), "%s:%08lx%08lx", b->edge->cfg.node_id, r1, r2);
    hb_rc_lease_keys(b, in->lease_key, sizeof(in->lease_key), in->term_key, sizeof(in->term_key));
    hb_list_init(&in->sent);
    hb_rawq_init(&in->kept, PENDING_MAX, PENDING_BYTES_MAX);
    hb_rawq_init(&in->orphans, PENDING_MAX, PENDING_BYTES_MAX);
    in->av = hb_xcalloc(2 * BATCH_MAX + 5, sizeof(*in->av));
    in->al = hb_xcalloc(2 * BATCH_MAX + 5, sizeof(*in->al));
    in->flush_ev = event_new(b->base, -1, 0, on_flush, b);
    if (!in->flush_ev)
        abort(); /* out of memory at start-up */
    b->ingest = in;
}

void hb_ingest_cleanup(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    if (!in)
        return;
    hb_rawq_clear(&in->kept);
    hb_rawq_clear(&in->orphans);
    ingest__drop_awaited(b);          /* answered: no reply will free them */
    while (!hb_list_empty(&in->sent)) /* their replies (if any) no longer look at the list */
        hb_list_unlink(in->sent.next);
    if (in->cur)
        batch_free(in->cur);
    if (in->flush_ev)
        event_free(in->flush_ev);
    free(in->av);
    free(in->al);
    free(in);
    b->ingest = NULL;
}

int hb_ingest_idle(hb_broker_t *b)
{
    return b->ingest->inflight <= 0 && !b->ingest->cur;
}

/* ---- the leadership's steps the store path and the lease share ---- */

void ingest__set_state(hb_broker_t *b, istate_t st, const char *why)
{
    ingest_t *in = b->ingest;
    if (in->state == st)
        return;
    in->state = st;
    in->settling = 0;
    atomic_store(&b->edge->stats.leader, st != I_STANDBY);
    hb_log_info(MOD,
                st == I_ACTIVE    ? "ingest leader"
                : st == I_BARRIER ? "lease won"
                                  : "standby",
                "{s:s,s:i}", "why", why, "kept", (int)in->kept.count);
}

/* Leader: tells the standbys that every kept message of this leadership's catch-up is stored
 * (their stored copies are published before this). Not when the leadership ended meanwhile. */
void ingest__publish_caught(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    char chan[sizeof(in->barrier) + 8];
    const char *av[] = {"PUBLISH", chan, "1"};
    size_t al[] = {7, 0, 1};
    int n;
    in->caught_pending = 0;
    if (in->state != I_ACTIVE || in->reign != in->caught_reign || !b->cmd_ready)
        return;
    n = snprintf(chan, sizeof(chan), "%.*s:caught", (int)in->barrier_len, in->barrier);
    al[1] = (size_t)n;
    /* fire and forget; refused when the command connection is gone */
    hb_rc_command(b, 3, av, al, NULL, NULL);
}

/* Leader: stores what is kept (the barrier passed, earlier stores answered), then "caught"
 * once those stores are answered. */
void ingest__catch_up(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    ingest__store_kept(b);
    if (!hb_rc_ingest_one_bus(b))
        return;       /* stored copies come over several links: no single "after" point */
    ingest__flush(b); /* now, so that every catch-up store is sent before the marker */
    in->caught_pending = 1;
    in->caught_reign = in->reign;
    if (in->inflight <= 0)
        ingest__publish_caught(b);
}

void ingest__go_active(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    ingest__set_state(b, I_ACTIVE, "barrier passed");
    hb_rawq_clear(&in->orphans);
    if (in->inflight > 0) {
        /* Stores sent under an earlier leadership of this edge are still out (a cluster
         * command waiting for a failover, say). They will be refused by the new term's fences
         * or stored; either way they come before what is kept, so wait for them. */
        in->settling = 1;
        in->settling_since = hb_now();
        return;
    }
    ingest__catch_up(b);
}

/* Gives the lease back (when held); the caller sets the state with its reason. */
void ingest__give_back(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    if (in->state == I_STANDBY || !b->cmd_ready)
        return;
    hb_rc_lease_release(b, in->lease_key, in->token);
}
