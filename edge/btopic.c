/*
 * The broker's topic registry (b->topics: name -> btopic_t): the topics some service thread
 * wants and the delivery of their live events to the service threads, in ID order and without
 * duplicates, with gap notices. During a refill (brefill.c) live events are held here. Their
 * subscription state is bsub.c's. The bottom of the topic files: calls none of them.
 * Broker thread only.
 */
#include "broker_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "canary.h"
#include "hb_dict.h"
#include "hb_err.h"
#include "hb_time.h"
#include "hb_live.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "rc.h"

#define MOD "broker"
/* How far ahead of this edge's wall clock a live message's ID may be (ms): Redis makes IDs
 * from its own clock, which NTP keeps within milliseconds of ours */
#define LIVE_AHEAD_MS 2000u

/* ---- topics ---- */

btopic_t *btopic__get(hb_broker_t *b, const char *name, size_t len, int create)
{
    btopic_t *t = hb_dict_get(b->topics, name, len);
    if (t || !create)
        return t;
    t = hb_xcalloc(1, sizeof(*t));
    memcpy(t->name, name, len);
    t->len = len;
    hb_list_init(&t->waiting);
    t->asked_at = hb_now();
    t->asked_unready = !hb_rc_ready(b);
    t->asked_ms = (uint64_t)(hb_wall_us() / 1000);
    hb_dict_set(b->topics, name, len, t);
    atomic_fetch_add_explicit(&b->edge->stats.topics, 1, memory_order_relaxed);
    return t;
}

int btopic__want_refill(btopic_t *t)
{
    if (t->state != T_SUBSCRIBED || !(t->have_last || t->have_pos) || t->need_backfill)
        return 0;
    t->need_backfill = 1;
    t->lost_checked = !t->have_last;
    return 1;
}

void btopic__free(hb_broker_t *b, btopic_t *t)
{
    hb_dict_del(b->topics, t->name, t->len);
    atomic_fetch_sub_explicit(&b->edge->stats.topics, 1, memory_order_relaxed);
    for (size_t i = 0; i < t->nheld; i++)
        hb_msg_unref(t->held[i]);
    free(t->held);
    free(t->held_ep);
    for (hb_list_t *n; (n = hb_list_pop_head(&t->waiting));) {
        hreq_t *r = hb_list_container(n, hreq_t, link);
        hb_hflag_unref(r->cancel);
        free(r);
    }
    free(t);
}

/* Pushes an EVENT message to every service thread that wants the topic. Takes m's reference. */
void btopic__emit(hb_broker_t *b, btopic_t *t, hb_msg_t *m)
{
    m->seq = ++t->seq;
    /* published before the push: a service thread that reads this generation or a later one
     * confirms its subscription after the event was stored (hb_edge_t.emit_gen) */
    uint64_t to = t->want & ~t->join_wait; /* a thread whose join waits gets nothing yet */
    t->last_gen = ++b->gen;
    atomic_store_explicit(&b->edge->emit_gen, b->gen, memory_order_release);
    for (int i = 0; i < b->edge->nthreads; i++) {
        if (!(to & (1ull << i)))
            continue;
        if (t->unsynced & (1ull << i)) {
            /* an earlier event was dropped for this thread and it has not been told yet: this
             * one goes the same way, so that the thread learns of the hole (the sync) before
             * it takes a later event, which a thread with no sequence of the topic yet would
             * take without seeing the hole */
            atomic_fetch_add_explicit(&b->edge->stats.queue_drops, 1, memory_order_relaxed);
            continue;
        }
        if (hb_svc_push(b->edge->svcs[i], hb_msg_ref(m)) != 0) {
            hb_msg_unref(m);
            t->unsynced |= 1ull << i; /* btopic__resync tells it (the broker's tick) */
            atomic_fetch_add_explicit(&b->edge->stats.queue_drops, 1, memory_order_relaxed);
            hb_log_ratelimited("svc-queue-full", 1000, HB_LOG_WARN, MOD,
                               "service queue full: event dropped, topic clients will resume",
                               "{s:i}", "thread", i);
        }
    }
    hb_msg_unref(m);
}

void btopic__resync(hb_broker_t *b, btopic_t *t)
{
    for (int i = 0; i < b->edge->nthreads; i++) {
        hb_msg_t *m;
        if (!(t->unsynced & (1ull << i)))
            continue;
        if (!(t->want & (1ull << i))) {
            t->unsynced &= ~(1ull << i); /* nobody there any more */
            continue;
        }
        m = hb_msg_new(HB_MSG_EVENT, t->name, t->len);
        m->sync = 1;
        m->seq = t->seq;
        if (hb_svc_push(b->edge->svcs[i], m) != 0) {
            hb_msg_unref(m); /* still full: the next tick tries again */
            continue;
        }
        t->unsynced &= ~(1ull << i);
    }
}

/* Pushes thread i the join message of t (the topic's sequence as it stands); a full queue
 * leaves it waiting in t->join_wait for the broker's tick (btopic__rejoin). */
static void join_push(hb_broker_t *b, btopic_t *t, int i)
{
    uint64_t bit = 1ull << i;
    hb_msg_t *m = hb_msg_new(HB_MSG_EVENT, t->name, t->len);
    m->join = 1;
    m->seq = t->seq;
    if (hb_svc_push(b->edge->svcs[i], m) == 0) {
        t->join_wait &= ~bit;
        return;
    }
    /* nothing goes to the thread until the join does, and the join then covers what went
     * elsewhere meanwhile */
    hb_msg_unref(m);
    t->join_wait |= bit;
    atomic_fetch_add_explicit(&b->edge->stats.queue_drops, 1, memory_order_relaxed);
    hb_log_ratelimited("join-deferred", 1000, HB_LOG_WARN, MOD,
                       "service queue full: topic join deferred to the next tick", "{s:i,s:s%}",
                       "thread", i, "topic", t->name, t->len);
}

void btopic__join(hb_broker_t *b, btopic_t *t, int i, const hb_ask_t *ask)
{
    uint64_t bit = 1ull << i;
    if (!t->sub_id && !t->have_last && ask->ms && ask->ms < t->asked_ms) {
        t->asked_at -= (double)(t->asked_ms - ask->ms) / 1000.0; /* asked earlier than taken */
        t->asked_ms = ask->ms;
    }
    if (t->want & bit)
        return; /* it has the topic (or its join waits) */
    t->want |= bit;
    if (t->last_gen > ask->gen) /* the topic went to other threads since its clients asked */
        join_push(b, t, i);
}

void btopic__rejoin(hb_broker_t *b, btopic_t *t)
{
    for (int i = 0; i < b->edge->nthreads && t->join_wait; i++) {
        uint64_t bit = 1ull << i;
        if (!(t->join_wait & bit))
            continue;
        if (t->want & bit)
            join_push(b, t, i);
        else
            t->join_wait &= ~bit; /* its subscribers left meanwhile */
    }
}

void btopic__emit_gap(hb_broker_t *b, btopic_t *t, hb_gap_t gap)
{
    hb_msg_t *m = hb_msg_new(HB_MSG_EVENT, t->name, t->len);
    m->control = 1;
    if (hb_ev_encode_gap(&m->ev, t->name, t->len, gap)) {
        hb_msg_unref(m);
        return;
    }
    hb_log_warn(MOD, "history gap on topic", "{s:s%,s:s}", "topic", t->name, t->len, "reason",
                gap == HB_GAP_RESET ? "reset" : "trimmed");
    t->noticed = 1;
    btopic__emit(b, t, m);
}

/*
 * Moves t's delivery position to entry id of stream `epoch`, in ID order: 1 when id comes after
 * what was delivered (t->last/epoch updated; an epoch change, the stream recreated e.g. when
 * Redis lost its data, emits a reset notice first), 0 when it was delivered already or the
 * epoch is not one.
 */
static int advance(hb_broker_t *b, btopic_t *t, const hb_id_t *id, const char *epoch, size_t eplen)
{
    char ep[HB_EPOCH_MAX + 1];
    const char *cur;

    if (eplen > HB_EPOCH_MAX)
        return 0;
    memcpy(ep, epoch, eplen);
    ep[eplen] = '\0';
    /* the stream delivery stands in: the last event's, or, before the first, the one the
     * subscription's position was read in ("" none: what comes is the stream's start). A wipe
     * between that read and the first live event (FLUSHALL with the connections up) is a new
     * stream too. Not after a notice (a refill's reset) that nothing was delivered since. */
    cur = t->have_last ? t->epoch : t->have_pos && !t->noticed ? t->pos_epoch : "";
    if (cur[0] && strcmp(ep, cur) != 0) {
        btopic__emit_gap(b, t, HB_GAP_RESET);
        t->have_last = 0;
    }
    if (t->have_last && hb_id_cmp(id, &t->last) <= 0)
        return 0; /* already delivered */
    t->last = *id;
    memcpy(t->epoch, ep, eplen + 1);
    t->have_last = 1;
    t->noticed = 0; /* after any notice: a client at this event had the notice too */
    return 1;
}

void btopic__pass(hb_broker_t *b, btopic_t *t, const hb_id_t *id, const char *epoch, size_t eplen)
{
    (void)advance(b, t, id, epoch, eplen);
}

void btopic__deliver(hb_broker_t *b, btopic_t *t, const hb_id_t *id, const char *epoch,
                     size_t eplen, const char *ev, size_t evlen, const char *data, size_t dlen)
{
    hb_msg_t *m;
    if (!advance(b, t, id, epoch, eplen))
        return;
    m = hb_msg_new(HB_MSG_EVENT, t->name, t->len);
    if (hb_ev_encode(&m->ev, t->name, t->len, id, t->epoch, ev, evlen, data, dlen)) {
        hb_msg_unref(m);
        hb_log_error(MOD, "out of memory encoding an event", NULL);
        return;
    }
    atomic_fetch_add_explicit(&b->edge->stats.events_in, 1, memory_order_relaxed);
    btopic__emit(b, t, m);
}

/* ---- the subscriber connection ---- */

/* Extracts <topic> from "<prefix>{<topic>}:live"; returns 0 or HB_EPROTO. */
int hb_broker_channel_topic(const char *prefix, const char *chan, size_t len, const char **topic,
                            size_t *tlen)
{
    size_t pl = strlen(prefix);
    if (len < pl + 8 || memcmp(chan, prefix, pl) != 0 || chan[pl] != '{' ||
        memcmp(chan + len - 6, "}:live", 6) != 0)
        return HB_EPROTO;
    *topic = chan + pl + 1;
    *tlen = len - pl - 7;
    return hb_topic_validate(*topic, *tlen, NULL);
}

void hb_broker_on_live(hb_broker_t *b, const char *chan, size_t clen, const char *msg, size_t mlen)
{
    const char *tname, *reason;
    size_t tlen;
    hb_live_t lv;
    btopic_t *t;
    int too_large;

    if (hb_broker_channel_topic(b->edge->cfg.prefix, chan, clen, &tname, &tlen))
        return;
    t = btopic__get(b, tname, tlen, 0);
    if (!t || t->state != T_SUBSCRIBED)
        return;
    if (hb_live_decode(msg, mlen, &lv, &reason)) {
        hb_log_ratelimited("live-decode", 1000, HB_LOG_WARN, MOD, "malformed live message",
                           "{s:s%,s:s}", "topic", tname, tlen, "err", reason);
        return;
    }
    too_large = lv.data_len > (size_t)b->edge->cfg.max_message_bytes;
    if (too_large || lv.id.ms > (uint64_t)(hb_wall_us() / 1000) + LIVE_AHEAD_MS) {
        /* Not a message Herald's library published now: one PUBLISHed to the channel around
         * Herald (anyone who may PUBLISH on Redis can), or a Redis clock far ahead of this
         * edge's. Trusted, an ID ahead would move the topic's position past every event stored
         * before that time (they would be dropped as delivered already), and a payload of any
         * size would go to every subscriber (history passes such an entry over). The stream
         * is read instead: it has what was stored, and only that, as every reader sees it. */
        atomic_fetch_add_explicit(too_large ? &b->edge->stats.live_too_large
                                            : &b->edge->stats.live_ahead,
                                  1, memory_order_relaxed);
        hb_log_ratelimited("live-untrusted", 1000, HB_LOG_WARN, MOD,
                           too_large ? "live message over --max-message-bytes: not trusted, the "
                                       "topic is read from its stream (a PUBLISH around Herald, "
                                       "or edges with different --max-message-bytes)"
                                     : "live message ahead of this edge's clock: not trusted, "
                                       "the topic is read from its stream (a PUBLISH around "
                                       "Herald, or clocks apart)",
                           "{s:s%,s:I}", "topic", tname, tlen, "bytes", (long long)lv.data_len);
        (void)btopic__want_refill(t); /* the broker's tick starts it */
        return;
    }
    if (t->need_backfill) {
        /* Hold until the backfill caught up; bounded like a client queue (count and bytes). */
        hb_msg_t *m;
        char ep[HB_EPOCH_MAX + 1];
        if (lv.epoch_len > HB_EPOCH_MAX)
            return;
        size_t qb = (size_t)b->edge->cfg.client_queue_bytes; /* one event at least */
        if (t->nheld >= (size_t)b->edge->cfg.client_queue_max ||
            (t->nheld && (t->held_bytes >= qb || lv.data_len > qb - t->held_bytes))) {
            hb_log_ratelimited("held-full", 1000, HB_LOG_WARN, MOD,
                               "too many live events held during backfill; dropping (history "
                               "keeps them)",
                               "{s:s%}", "topic", tname, tlen);
            t->held_dropped = 1; /* the refill must not end before history gave it */
            return;
        }
        memcpy(ep, lv.epoch, lv.epoch_len);
        ep[lv.epoch_len] = '\0';
        m = hb_msg_new(HB_MSG_EVENT, t->name, t->len);
        if (hb_ev_encode(&m->ev, t->name, t->len, &lv.id, ep, lv.event, lv.ev_len, lv.data,
                         lv.data_len)) {
            hb_msg_unref(m);
            t->held_dropped = 1; /* out of memory: history keeps it, the refill reads on */
            return;
        }
        if (t->nheld == t->cap_held) {
            t->cap_held = t->cap_held ? t->cap_held * 2 : 16;
            t->held = hb_xrealloc(t->held, t->cap_held * sizeof(*t->held));
            t->held_ep = hb_xrealloc(t->held_ep, t->cap_held * sizeof(*t->held_ep));
        }
        memcpy(t->held_ep[t->nheld], ep, sizeof(ep));
        t->held[t->nheld++] = m;
        t->held_bytes += lv.data_len;
        return;
    }
    btopic__deliver(b, t, &lv.id, lv.epoch, lv.epoch_len, lv.event, lv.ev_len, lv.data,
                    lv.data_len);
}

const char *hb_broker_pubsub(hb_broker_t *b, const redisReply *r, const char *message_kind,
                             btopic_t **t)
{
    const char *kind, *tname;
    size_t tlen;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return NULL;
    kind = r->element[0]->str;
    if (!strcmp(kind, message_kind)) {
        if (r->element[2]->type == REDIS_REPLY_STRING)
            hb_broker_on_live(b, r->element[1]->str, r->element[1]->len, r->element[2]->str,
                              r->element[2]->len);
        return NULL;
    }
    if (hb_broker_channel_topic(b->edge->cfg.prefix, r->element[1]->str, r->element[1]->len, &tname,
                                &tlen))
        return NULL;
    *t = btopic__get(b, tname, tlen, 0);
    return *t ? kind : NULL;
}
