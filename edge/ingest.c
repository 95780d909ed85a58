/*
 * Raw PUBLISH ingest: a plain `PUBLISH <topic> <payload>` is stored exactly once, in publish
 * order, by the one edge holding the ingest lease (SET <prefix>ingest:lease <token> NX PX), the
 * leader. Every ingest-enabled edge PSUBSCRIBEs "*" on its own connection:
 *   - the leader stores raw messages in arrival order on the command connection: the messages
 *     of one read from Redis go out as one FCALL herald_ingest_many (fenced by its token, up to
 *     BATCH_MAX messages), several calls in flight; a store refused because the lease is no
 *     longer held puts the messages back among the kept ones (below), in their order;
 *   - a standby keeps each raw message until it sees the leader's stored copy (a live message
 *     flagged "r" on the same connection, so always after the raw one) and then forgets it.
 * On winning the lease, a new leader publishes a barrier on its own channel and waits to receive
 * it: every message published before that point, including the old leader's last stores, has
 * then been seen, so what is still kept is exactly what nobody stored. It stores those, then
 * goes on live. Once those catch-up stores are answered (not refused), it publishes
 * "<barrier>:caught" (single Redis). A standby that kept a message before the barrier and has
 * not seen its stored copy by then holds one that the new leader never heard: it was published
 * before the leader (re)subscribed, e.g. after a Redis restart a standby subscribed again
 * first. Nobody can store it in publish order any more (the leader's later stores are already
 * out), so it is dropped and counted (ingest_unled) instead of being stored late by a future
 * leader behind later messages (FINDINGS F2, F3; README "Raw ingest").
 *
 * Redis Cluster: the lease is <prefix>{ingest}:lease, and winning it also draws the next leader
 * term (INCR <prefix>{ingest}:term, in the same function). herald_ingest cannot read the lease
 * (another slot), so each slot has a fence key <prefix>fence:{<tag>} holding the highest term
 * that stored into it: an older term is refused (HERALD_FENCED), a newer one raises it. A new
 * leader first raises the fence of every slot on every primary (FCALL herald_fence) and then
 * publishes one barrier per primary on the same connection; it goes live once it has seen every
 * barrier and every raise succeeded. What a stale leader sent to a primary before that raise is
 * published (herald_ingest re-PUBLISHes its stored copy classically for standbys) before that
 * primary's barrier, so it is forgotten by the new leader; anything later is fenced.
 * Broker thread only.
 */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "hb_live.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_rawchan.h"
#include "hb_rawq.h"
#include "hb_slot.h"

#define MOD "ingest"
#define PENDING_MAX 100000
#define PENDING_BYTES_MAX (64u << 20)
#define INFLIGHT_MAX 100000
#define CLUSTER_KEEP_S 60.0 /* seconds a standby keeps a raw message in cluster mode */
#define SETTLE_MAX_S 20.0   /* a new leadership waits this long at most for earlier stores */

#define BATCH_MAX 512              /* raw messages per herald_ingest_many call */
#define BATCH_BYTES_MAX (1u << 20) /* and their bytes */
#define BATCHES_AHEAD 1            /* calls in flight before the next one waits to grow */

/* Raw messages sent in one store call; the priv of its reply. */
typedef struct batch {
    hb_broker_t *b;
    hb_rawq_t msgs;
    unsigned reign; /* the leadership it was sent under */
} batch_t;

typedef enum { I_STANDBY = 0, I_BARRIER, I_ACTIVE } istate_t;

struct ingest {
    istate_t state;
    char token[128];
    char lease_key[96];
    char barrier[256];
    size_t barrier_len;
    unsigned long barrier_n;
    hb_rawq_t kept;    /* raw messages whose stored copy has not been seen */
    hb_rawq_t orphans; /* cluster: stored copies seen before their raw message */
    batch_t *cur;      /* leader: raw messages of the current read, not sent yet */
    struct event *flush_ev;
    int flush_armed;
    int batches;  /* herald_ingest_many calls in flight */
    int settling; /* leader waiting for stores sent under its earlier leadership */
    double settling_since;
    unsigned reign;  /* counts leaderships won */
    const char **av; /* herald_ingest_many arguments (2 * BATCH_MAX + 5) */
    size_t *al;
    double last_renew_ok;
    double barrier_at;
    double next_lease_at;
    int acquire_inflight, renew_inflight;
    long inflight;
    /* cluster mode */
    long long term;                 /* leader term drawn with the lease */
    long long term_floor;           /* a term a slot's fence already holds: draw above it */
    char term_key[96];              /* <prefix>{ingest}:term */
    char (*tags)[HB_SLOT_TAG_MAX];  /* slot -> hash tag of its fence key */
    int barrier_need, barrier_seen; /* barriers published / received */
    int fence_need, fence_ok;       /* fence raises sent / succeeded */
    /* single Redis: the "caught" step (see the top of this file) */
    int caught_pending;         /* leader: publish "<barrier>:caught" once inflight is 0 */
    unsigned caught_reign;      /* the leadership it is for */
    char cut[256];              /* standby: the last other leader's barrier channel seen */
    size_t cut_len;             /* 0: none */
    unsigned long long cut_seq; /* messages kept up to then (pend seq) */
};

static unsigned long long pend_seq; /* broker thread only */

static hb_rawmsg_t *pend_new(const char *topic, size_t tlen, const char *payload, size_t plen)
{
    return hb_rawmsg_new(topic, tlen, payload, plen, hb_now(), ++pend_seq);
}

/* Appends a copy of (topic, payload) to a bounded list (kept, orphans); 0, or nonzero when an
 * oldest entry had to go (the caller counts it) or memory ran out. */
static int plist_push(hb_rawq_t *l, const char *topic, size_t tlen, const char *payload,
                      size_t plen)
{
    return hb_rawq_push(l, topic, tlen, payload, plen, hb_now(), ++pend_seq);
}

static void set_state(hb_broker_t *b, istate_t st, const char *why)
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

static void batch_free(batch_t *bt)
{
    hb_rawq_clear(&bt->msgs);
    free(bt);
}

static void store_msg(hb_broker_t *b, hb_rawmsg_t *p);
static void give_back(hb_broker_t *b);

/* 1 when raw messages are stored as they come (else they are kept). */
static int storing(const hb_broker_t *b)
{
    return b->ingest->state == I_ACTIVE && !b->ingest->settling && b->cmd_ready;
}

static void store_kept(hb_broker_t *b)
{
    while (b->ingest->kept.head)
        store_msg(b, hb_rawq_unlink_head(&b->ingest->kept));
}
static void flush(hb_broker_t *b);

/* Leader: tells the standbys that every kept message of this leadership's catch-up is stored
 * (their stored copies are published before this). Not when the leadership ended meanwhile. */
static void publish_caught(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    char chan[sizeof(in->barrier) + 8];
    int n;
    in->caught_pending = 0;
    if (in->state != I_ACTIVE || in->reign != in->caught_reign || !b->cmd_ready || !b->cmd.ac)
        return;
    n = snprintf(chan, sizeof(chan), "%.*s:caught", (int)in->barrier_len, in->barrier);
    redisAsyncCommand(b->cmd.ac, NULL, NULL, "PUBLISH %b 1", chan, (size_t)n);
}

/* Leader: stores what is kept (the barrier passed, earlier stores answered), then "caught"
 * once those stores are answered. */
static void catch_up(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    store_kept(b);
    if (b->cluster)
        return; /* stored copies come over several links: no single "after" point */
    flush(b);   /* now, so that every catch-up store is sent before the marker */
    in->caught_pending = 1;
    in->caught_reign = in->reign;
    if (in->inflight <= 0)
        publish_caught(b);
}

/* Standby: another edge's barrier ("<prefix>barrier:<token>:<n>") or its "caught" marker. */
static void on_other_barrier(hb_broker_t *b, const char *chan, size_t clen)
{
    ingest_t *in = b->ingest;
    size_t n;
    if (hb_rawchan_is_caught(chan, clen)) {
        if (!in->cut_len || clen - 7 != in->cut_len || memcmp(chan, in->cut, in->cut_len))
            return;
        in->cut_len = 0;
        n = hb_rawq_drop_upto(&in->kept, in->cut_seq);
        if (!n)
            return;
        atomic_fetch_add_explicit(&b->edge->stats.ingest_unled, n, memory_order_relaxed);
        hb_log_warn(MOD, "raw messages the new ingest leader never heard: dropped (not stored)",
                    "{s:I}", "dropped", (long long)n);
        return;
    }
    if (clen >= sizeof(in->cut))
        return;
    memcpy(in->cut, chan, clen);
    in->cut_len = clen;
    in->cut_seq = pend_seq; /* what is kept now was published before this barrier */
}

/* Keeps a batch's messages again, before what was kept since. */
static void rekeep(hb_broker_t *b, batch_t *bt)
{
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
    if (!storing(b)) {
        rekeep(b, bt);
        return;
    }
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

static void on_store_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    batch_t *bt = priv;
    hb_broker_t *b = bt->b;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)ac;
    in->inflight -= (long)bt->msgs.count;
    if (!b->cluster)
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
            give_back(b);
            set_state(b, I_STANDBY, "fenced");
        }
        put_back(b, bt);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            count_stored(b, r->element[i]);
    } else {
        for (size_t i = 0; i < bt->msgs.count; i++)
            count_stored(b, r);
    }
    batch_free(bt);
    if (in->settling && in->inflight <= 0 && in->state == I_ACTIVE) {
        in->settling = 0; /* every earlier store answered: refused ones are kept, in order */
        hb_log_info(MOD, "earlier stores answered: storing kept messages", "{s:i}", "kept",
                    (int)in->kept.count);
        catch_up(b);
    } else if (in->caught_pending && in->inflight <= 0) {
        publish_caught(b);
    }
    if (in->cur && !b->cluster)
        flush(b); /* what arrived while this call was out */
}

/* Sends the current batch: one herald_ingest_many for all its messages (single Redis). */
static void flush(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    batch_t *bt = in->cur;
    int argc = 0, n;
    char nk[16];
    if (!bt)
        return;
    if (!storing(b) || !b->cmd.ac) {
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
    if (redisAsyncCommandArgv(b->cmd.ac, on_store_reply, bt, argc, in->av, in->al) != REDIS_OK) {
        rekeep(b, bt); /* the connection is going: stored by the next leader */
        batch_free(bt);
        return;
    }
    in->inflight += n;
    in->batches++;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    (void)fd;
    (void)what;
    b->ingest->flush_armed = 0;
    if (b->ingest->batches < BATCHES_AHEAD)
        flush(b); /* else it grows until a call answers */
}

/* The leader stores p (owned): in a cluster at once, one call per message (the topics of a
 * batch live on different primaries); on a single Redis with the other messages of this read. */
static void store_msg(hb_broker_t *b, hb_rawmsg_t *p)
{
    ingest_t *in = b->ingest;
    batch_t *bt;
    if (in->inflight >= INFLIGHT_MAX) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-inflight", 1000, HB_LOG_ERROR, MOD,
                           "too many raw messages in flight to Redis: dropped", NULL);
        hb_rawmsg_free(p);
        return;
    }
    if (!in->cur) {
        in->cur = hb_xcalloc(1, sizeof(*in->cur));
        in->cur->b = b;
        in->cur->reign = in->reign;
    }
    bt = in->cur;
    hb_rawq_append(&bt->msgs, p);
    if (b->cluster) {
        char fence[96], term[24];
        unsigned slot = hb_slot_of(hb_rawmsg_topic(p), p->tlen);
        const char *av[2] = {hb_rawmsg_payload(p), term};
        size_t al[2] = {p->plen, 0};
        in->cur = NULL;
        snprintf(fence, sizeof(fence), "%sfence:{%s}", b->edge->cfg.prefix, in->tags[slot]);
        al[1] = (size_t)snprintf(term, sizeof(term), "%lld", in->term);
        if (hb_cluster_fcall(b->cluster, b->fn.ingest, hb_rawmsg_topic(p), p->tlen, fence, 2, av,
                             al, on_store_reply, bt) == REDIS_OK) {
            in->inflight++;
        } else {
            atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
            hb_log_ratelimited("ingest-nomap", 1000, HB_LOG_ERROR, MOD,
                               "cluster slot map not known: raw message not stored", NULL);
            batch_free(bt);
        }
        return;
    }
    if (bt->msgs.count >= BATCH_MAX || bt->msgs.bytes >= BATCH_BYTES_MAX) {
        flush(b);
    } else if (!in->flush_armed && in->batches < BATCHES_AHEAD) {
        /* after the rest of this read: no timer, no delay; with BATCHES_AHEAD calls out, the
         * batch grows until one answers instead (Redis is the bottleneck then) */
        in->flush_armed = 1;
        event_active(in->flush_ev, EV_TIMEOUT, 1);
    }
}

static void store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    hb_rawmsg_t *p = pend_new(topic, tlen, payload, plen);
    if (!p) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-oom", 1000, HB_LOG_ERROR, MOD,
                           "out of memory: raw message dropped", NULL);
        return;
    }
    store_msg(b, p);
}

static void keep(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    ingest_t *in = b->ingest;
    /* cluster: the stored copy may have come first (another bus link) */
    if (in->orphans.count && hb_rawq_take(&in->orphans, topic, tlen, payload, plen))
        return;
    if (plist_push(&in->kept, topic, tlen, payload, plen)) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_standby_overflow, 1, memory_order_relaxed);
        hb_log_ratelimited("standby-full", 1000, HB_LOG_WARN, MOD,
                           "standby buffer full: oldest kept raw message forgotten", NULL);
    }
}

/* The leader stored a raw message: forget our copy (the oldest equal one); in a cluster a copy
 * that came before its raw message is remembered instead, to be matched when that arrives. */
static void forget(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    ingest_t *in = b->ingest;
    if (hb_rawq_take(&in->kept, topic, tlen, payload, plen) || !b->cluster || in->state == I_ACTIVE)
        return;
    plist_push(&in->orphans, topic, tlen, payload, plen); /* bounded like kept */
}

static void go_active(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    set_state(b, I_ACTIVE, "barrier passed");
    hb_rawq_clear(&in->orphans);
    if (in->inflight > 0) {
        /* Stores sent under an earlier leadership of this edge are still out (a cluster
         * command waiting for a failover, say). They will be refused by the new term's fences
         * or stored; either way they come before what is kept, so wait for them. */
        in->settling = 1;
        in->settling_since = hb_now();
        return;
    }
    catch_up(b);
}

static void on_pmessage(hb_broker_t *b, const char *chan, size_t clen, const char *msg, size_t mlen)
{
    ingest_t *in = b->ingest;
    const char *prefix = b->edge->cfg.prefix;
    size_t pl = strlen(prefix);
    hb_rawchan_kind_t kind = hb_rawchan_classify(prefix, pl, chan, clen);

    if (kind == HB_RAWCHAN_OURS || kind == HB_RAWCHAN_BARRIER) {
        const char *t;
        size_t tl;
        hb_live_t lv;
        if (in->state == I_BARRIER && clen == in->barrier_len && !memcmp(chan, in->barrier, clen)) {
            go_active(b);
            return;
        }
        if (b->cluster && in->state == I_BARRIER && clen > in->barrier_len &&
            !memcmp(chan, in->barrier, in->barrier_len) && chan[in->barrier_len] == ':') {
            in->barrier_seen++; /* one per primary: "<barrier>:<n>" */
            if (in->barrier_seen >= in->barrier_need && in->fence_ok >= in->fence_need)
                go_active(b);
            return;
        }
        if (!b->cluster && in->state == I_STANDBY && kind == HB_RAWCHAN_BARRIER) {
            on_other_barrier(b, chan, clen);
            return;
        }
        if ((in->kept.count || (b->cluster && in->state != I_ACTIVE)) &&
            !hb_broker_channel_topic(prefix, chan, clen, &t, &tl) &&
            !hb_live_decode(msg, mlen, &lv, NULL) && (lv.flags & HB_LIVE_FLAG_RAW))
            forget(b, t, tl, lv.data, lv.data_len);
        return;
    }
    if (kind == HB_RAWCHAN_INTERNAL || kind == HB_RAWCHAN_FOREIGN)
        return; /* keyspace notifications; another deployment's (--prefix) live, canary or
                 * barrier channel: not raw */
    if (kind == HB_RAWCHAN_BAD_TOPIC || mlen > (size_t)b->edge->cfg.max_message_bytes) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-reject", 1000, HB_LOG_WARN, MOD,
                           "raw message ignored: bad topic name or payload too large", "{s:s%,s:I}",
                           "channel", chan, clen > 128 ? (size_t)128 : clen, "bytes",
                           (long long)mlen);
        return;
    }
    if (storing(b))
        store(b, chan, clen, msg, mlen);
    else
        keep(b, chan, clen, msg, mlen);
}

/* The raw subscription is (re)confirmed: what was kept on the previous connection can no
 * longer be matched with its stored copy (those published while it was away were missed, and
 * so was any leadership's barrier and "caught" meanwhile). Storing it later could put it
 * behind what a leader stored meanwhile (FINDINGS F3, seed 5 ASan); it was heard before the
 * connection went, so it is the README's window of raw messages lost when Redis stops or
 * heard only by standbys: dropped and counted. Single Redis. */
static void drop_unmatched(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    size_t n = in->kept.count;
    in->cut_len = 0;
    if (!n)
        return;
    hb_rawq_clear(&in->kept);
    atomic_fetch_add_explicit(&b->edge->stats.ingest_unled, n, memory_order_relaxed);
    hb_log_warn(MOD, "raw subscription back: kept raw messages dropped (not stored)", "{s:I}",
                "dropped", (long long)n);
}

static void on_ing(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(r->element[0]->str, "pmessage") && r->elements == 4 &&
        r->element[2]->type == REDIS_REPLY_STRING && r->element[3]->type == REDIS_REPLY_STRING) {
        on_pmessage(b, r->element[2]->str, r->element[2]->len, r->element[3]->str,
                    r->element[3]->len);
    } else if (!strcmp(r->element[0]->str, "psubscribe")) {
        if (!b->cluster)
            drop_unmatched(b);
        b->ing_ready = 1;
        hb_log_info(MOD, "raw publish ingest listening", NULL);
        hb_broker_update_ready(b);
    }
}

static void on_acquire(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    in->acquire_inflight = 0;
    if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        return; /* someone else holds it */
    in->last_renew_ok = hb_now();
    in->reign++;
    set_state(b, I_BARRIER, "lease acquired");
    in->barrier_at = hb_now();
    in->barrier_len = (size_t)snprintf(in->barrier, sizeof(in->barrier), "%sbarrier:%s:%lu",
                                       b->edge->cfg.prefix, in->token, ++in->barrier_n);
    redisAsyncCommand(b->cmd.ac, NULL, NULL, "PUBLISH %b 1", in->barrier, in->barrier_len);
}

static void on_fence_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    if (in->state != I_BARRIER)
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        /* A primary did not raise its fences (stale slot map, node down): do not go live. */
        hb_log_warn(MOD, "ingest fence not raised on a primary: lease given back", "{s:s}", "err",
                    r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        give_back(b);
        set_state(b, I_STANDBY, "fence not raised");
        return;
    }
    if (r->integer != 0) {
        /* A slot's fence already holds a term as high as ours: the term counter went back
         * (a failover lost its last increments) or another edge drew the same term. Storing
         * now would be refused: give the lease back and draw above that term next time. */
        if (r->integer > in->term_floor)
            in->term_floor = r->integer;
        hb_log_warn(MOD, "ingest term behind a slot's fence: lease given back", "{s:I,s:I}", "term",
                    in->term, "fence", (long long)r->integer);
        give_back(b);
        set_state(b, I_STANDBY, "term behind a fence");
        return;
    }
    in->fence_ok++;
    if (in->barrier_seen >= in->barrier_need && in->fence_ok >= in->fence_need)
        go_active(b);
}

/* Cluster mode: the lease was won with a new leader term; fence every slot, then barriers. */
static void on_acquire_cluster(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    char term[24];
    int n;
    (void)priv;
    in->acquire_inflight = 0;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return; /* held by someone else (nil), or an error */
    in->term = r->integer;
    in->last_renew_ok = hb_now();
    in->reign++;
    set_state(b, I_BARRIER, "lease acquired");
    in->barrier_at = hb_now();
    in->barrier_len = (size_t)snprintf(in->barrier, sizeof(in->barrier), "%sbarrier:%s:%lu",
                                       b->edge->cfg.prefix, in->token, ++in->barrier_n);
    in->barrier_seen = in->fence_ok = 0;
    snprintf(term, sizeof(term), "%lld", in->term);
    n = hb_cluster_fence_and_barrier(b->cluster, term, in->barrier, in->tags, on_fence_reply, NULL);
    in->barrier_need = in->fence_need = n;
    if (n == 0) {
        give_back(b);
        set_state(b, I_STANDBY, "cluster not ready for the barrier");
    }
}

static int lease_command(hb_broker_t *b, redisCallbackFn *cb, const char *fn, int nkeys,
                         const char *arg2, const char *arg3)
{
    ingest_t *in = b->ingest;
    const char *av[8];
    size_t al[8];
    int argc = 0;
    av[argc++] = "FCALL";
    av[argc++] = fn;
    av[argc++] = nkeys == 2 ? "2" : "1";
    av[argc++] = in->lease_key;
    if (nkeys == 2)
        av[argc++] = in->term_key;
    av[argc++] = in->token;
    if (arg2)
        av[argc++] = arg2;
    if (arg2 && arg3)
        av[argc++] = arg3;
    for (int i = 0; i < argc; i++)
        al[i] = strlen(av[i]);
    return hb_cluster_key_command(b->cluster, 3, argc, av, al, cb, NULL);
}

static void on_renew(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    in->renew_inflight = 0;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        in->last_renew_ok = hb_now();
    else
        set_state(b, I_STANDBY, "lease lost");
}

void hb_ingest_tick(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    double now = hb_now(), lease = b->edge->cfg.lease_ms / 1000.0;
    double expiry = lease * 3 > 10 ? lease * 3 : 10;
    /* A cluster failover (cluster-node-timeout, 15 s by default, plus the election) can take
     * the lease's shard away for longer than that: keep raw messages through it. */
    if (b->cluster && expiry < CLUSTER_KEEP_S)
        expiry = CLUSTER_KEEP_S;
    char ms[24];
    snprintf(ms, sizeof(ms), "%d", b->edge->cfg.lease_ms);

    if (!b->edge->cfg.ingest)
        return;
    while (in->kept.head && now - in->kept.head->ts > expiry)
        hb_rawq_drop_head(&in->kept); /* the leader refused it or it was stored long ago */
    while (in->orphans.head && now - in->orphans.head->ts > expiry)
        hb_rawq_drop_head(&in->orphans); /* its raw message never came (or came to no one) */
    if (in->state != I_STANDBY && now - in->last_renew_ok > lease * 0.8)
        set_state(b, I_STANDBY, "lease not renewed in time");
    if (in->state != I_STANDBY && !b->ing_ready) {
        /* a leader that no longer sees raw messages must let a standby take over */
        give_back(b);
        set_state(b, I_STANDBY, "ingest subscription lost");
    }
    if (in->settling && in->state == I_ACTIVE && now - in->settling_since > SETTLE_MAX_S) {
        /* an earlier store neither answered nor failed (a stuck connection): store what is
         * kept rather than keep it forever; that store's message may end up out of order */
        hb_log_warn(MOD, "earlier stores unanswered: storing kept messages", "{s:I,s:i}",
                    "unanswered", (long long)in->inflight, "kept", (int)in->kept.count);
        in->settling = 0;
        catch_up(b);
    }
    if (in->state == I_BARRIER && now - in->barrier_at > lease) {
        give_back(b);
        set_state(b, I_STANDBY, "barrier not seen in time");
    }
    if (now < in->next_lease_at || !b->cmd_ready || atomic_load(&b->edge->stats.draining))
        return;
    in->next_lease_at = now + lease / 3;
    if (in->state == I_STANDBY) {
        if (!b->ing_ready || in->acquire_inflight)
            return;
        in->acquire_inflight = 1;
        if (b->cluster) {
            char floor[24];
            snprintf(floor, sizeof(floor), "%lld", in->term_floor);
            if (lease_command(b, on_acquire_cluster, b->fn.lease_acquire, 2, ms, floor) != REDIS_OK)
                in->acquire_inflight = 0;
            return;
        }
        redisAsyncCommand(b->cmd.ac, on_acquire, NULL, "SET %s %s NX PX %d", in->lease_key,
                          in->token, b->edge->cfg.lease_ms);
    } else if (!in->renew_inflight) {
        in->renew_inflight = 1;
        if (b->cluster) {
            if (lease_command(b, on_renew, b->fn.lease_renew, 1, ms, NULL) != REDIS_OK)
                in->renew_inflight = 0;
            return;
        }
        redisAsyncCommand(b->cmd.ac, on_renew, NULL, "FCALL %s 0 %s %d", b->fn.lease_renew,
                          in->token, b->edge->cfg.lease_ms);
    }
}

void hb_ingest_init(hb_broker_t *b)
{
    ingest_t *in = hb_xcalloc(1, sizeof(*in));
    unsigned long r1 = (unsigned long)random(), r2 = (unsigned long)random();
    snprintf(in->token, sizeof(in->token), "%s:%08lx%08lx", b->edge->cfg.node_id, r1, r2);
    snprintf(in->lease_key, sizeof(in->lease_key), "%singest:lease", b->edge->cfg.prefix);
    if (b->edge->cfg.redis_cluster) {
        snprintf(in->lease_key, sizeof(in->lease_key), "%s{ingest}:lease", b->edge->cfg.prefix);
        snprintf(in->term_key, sizeof(in->term_key), "%s{ingest}:term", b->edge->cfg.prefix);
        in->tags = hb_xcalloc(HB_SLOT_COUNT, sizeof(*in->tags));
        hb_slot_tag_table(in->tags);
    }
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
    if (in->cur)
        batch_free(in->cur);
    if (in->flush_ev)
        event_free(in->flush_ev);
    free(in->av);
    free(in->al);
    free(in->tags);
    free(in);
    b->ingest = NULL;
}

void hb_ingest_on_cmd_ready(hb_broker_t *b)
{
    b->ingest->next_lease_at = 0;
    b->ingest->acquire_inflight = 0;
    b->ingest->renew_inflight = 0;
}

void hb_ingest_on_cmd_down(hb_broker_t *b)
{
    set_state(b, I_STANDBY, "redis command connection lost");
}

void hb_ingest_on_ing_up(hb_broker_t *b)
{
    redisAsyncCommand(b->ing.ac, on_ing, NULL, "PSUBSCRIBE *");
}

static void on_released(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)reply;
    (void)priv;
}

/* Gives the lease back (when held); the caller sets the state with its reason. */
static void give_back(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    if (in->state == I_STANDBY || !b->cmd_ready)
        return;
    if (b->cluster)
        lease_command(b, on_released, b->fn.lease_release, 1, NULL, NULL);
    else
        redisAsyncCommand(b->cmd.ac, NULL, NULL, "FCALL %s 0 %s", b->fn.lease_release, in->token);
}

void hb_ingest_release(hb_broker_t *b)
{
    give_back(b);
    set_state(b, I_STANDBY, "draining");
}

int hb_ingest_idle(hb_broker_t *b)
{
    return b->ingest->inflight <= 0 && !b->ingest->cur;
}
