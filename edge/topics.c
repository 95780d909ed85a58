/*
 * The topics a service thread's clients subscribe to: the local topic table (told to the
 * broker on the first subscriber and after the last), each client's subscriptions, and
 * delivery: a live event to every
 * subscription of its topic, a page of history to a resuming one, with the live events held
 * meanwhile merged after it in ID order. Service thread only.
 */
#include "topics.h"

#include <stdlib.h>
#include <string.h>

#include "hb_log.h"
#include "hb_mem.h"
#include "hb_time.h"
#include "hread.h"

#define MOD "service"

/* A fresh subscription (no cursor) whose thread joins its topic after events went to the
 * edge's other threads reads the stream from its ask less this (clock difference between the
 * edge and Redis, whose stream IDs are Redis's clock): it may get an event stored up to this
 * much before it asked, never lose one stored after (topics.c). */
#define HB_JOIN_CLOCK_MARGIN_MS 100u

/* ---- local topics ---- */

static void topic_tell_broker(hb_svc_t *s, ltopic_t *t, hb_req_type_t type)
{
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    q->type = type;
    q->ask = t->ask;
    memcpy(q->topic, t->name, t->len);
    q->topic_len = t->len;
    if (hb_svc_request(s, q) != 0) {
        t->dirty = 1; /* retried from the housekeeping timer */
        s->topics_dirty = 1;
        return;
    }
    t->dirty = 0;
    t->told = type == HB_REQ_SUB;
}

static void topic_maybe_free(hb_svc_t *s, ltopic_t *t)
{
    if (!t->nsubs && !t->told && !t->dirty) {
        hb_dict_del(s->topics, t->name, t->len);
        free(t);
    }
}

/* A SUB/UNSUB could not be queued: ask again, free the topics nobody wants any more. */
void hb_topics_retry(hb_svc_t *s)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    s->topics_dirty = 0; /* set again by a request that fails again */
    while (hb_dict_next(s->topics, &it, &k, &klen, &v)) {
        ltopic_t *t = v;
        if (t->dirty && (t->nsubs > 0) != t->told)
            topic_tell_broker(s, t, t->nsubs ? HB_REQ_SUB : HB_REQ_UNSUB);
        else
            t->dirty = 0; /* what failed to go is what the broker has again */
        topic_maybe_free(s, t);
    }
}

int hb_topics_take(hb_svc_t *s, const char *const *names, const size_t *lens, int n)
{
    unsigned fresh = 0;
    for (int i = 0; i < n; i++)
        fresh += !hb_dict_get(s->topics, names[i], lens ? lens[i] : strlen(names[i]));
    if (!fresh || hb_bucket_take(&s->topic_bucket, fresh, hb_now()))
        return 1;
    atomic_fetch_add_explicit(&s->edge->stats.rejected_topic_rate, 1, memory_order_relaxed);
    hb_log_ratelimited("topic-rate", 1000, HB_LOG_WARN, MOD,
                       "subscription turned away: new topics past --topic-rate", "{s:i}",
                       "new_topics", (int)fresh);
    return 0;
}

/* ---- where live delivery of a topic stands on this thread ---- */

/*
 * 1 when `since` is where this thread's live delivery of t stands (t->at): every event stored
 * after it reaches the thread live, so a subscription from it needs no history read. An idle
 * long-poller asks again with the tail's cursor every timeout: answered here, neither the
 * broker nor Redis hears of it. Why t->at can be trusted: it is set by the broker's answer
 * from its own live position (history.c, m->live_at), which the broker makes only while the
 * topic's subscription is confirmed, its refill done and no gap notice out since, and which
 * reaches this thread after every event up to that position and before any later one; then
 * it follows the events received. A gap notice or an event lost in hand-off clears it until
 * the next event, so a client at a position before a notice reads from Redis, which tells it.
 * Should the broker's subscription be lost meanwhile, its refill or a gap notice still
 * reaches every subscriber of the thread, and a subscription made here is one of them.
 */
static int topic_at(const ltopic_t *t, const hb_cursor_t *since)
{
    char cur[HB_CURSOR_MAX];
    if (!t->told || !t->synced || !t->at[0] || !since->epoch[0])
        return 0;
    hb_cursor_format(&since->id, since->epoch, cur);
    return !strcmp(cur, t->at);
}

/* The epoch part of ev's cursor ("<id>_<epoch>"), *len bytes; NULL when it has none. */
static const char *ev_epoch(const hb_ev_t *ev, size_t *len)
{
    const char *cur, *us;
    if (!ev->cur)
        return NULL;
    cur = (const char *)hb_buf_data(ev->cur);
    us = memchr(cur, '_', hb_buf_len(ev->cur));
    if (!us)
        return NULL;
    *len = (size_t)(cur + hb_buf_len(ev->cur) - us - 1);
    return us + 1;
}

/* t's live position after message m (lost: an event before it was lost in hand-off). */
static void topic_advance(ltopic_t *t, const hb_msg_t *m, int lost)
{
    const hb_buf_t *cur = m->ev.cur;
    if (!m->control && cur) { /* an event without an epoch is of a stream without one */
        size_t el = 0;
        const char *ep = ev_epoch(&m->ev, &el);
        if (el < sizeof(t->epoch)) {
            memcpy(t->epoch, ep ? ep : "", el);
            t->epoch[el] = '\0';
        }
    }
    if (lost || m->control || !cur || !t->synced || hb_buf_len(cur) >= sizeof(t->at)) {
        t->at[0] = '\0';
        return;
    }
    memcpy(t->at, hb_buf_data(cur), hb_buf_len(cur));
    t->at[hb_buf_len(cur)] = '\0';
}

/* ---- subscriptions ---- */

hb_ask_t hb_topics_ask(const hb_svc_t *s)
{
    hb_ask_t a;
    a.gen = atomic_load_explicit(&s->edge->emit_gen, memory_order_acquire);
    a.ms = (uint64_t)(hb_wall_us() / 1000);
    return a;
}

hb_sub_t *hb_sub_add(hb_client_t *c, const char *name, size_t len, const hb_cursor_t *since,
                     int flags, const hb_ask_t *ask)
{
    hb_svc_t *s = c->svc;
    ltopic_t *t = hb_dict_get(s->topics, name, len);
    hb_sub_t *u = hb_xcalloc(1, sizeof(*u));
    hb_ask_t now;
    if (!ask) {
        now = hb_topics_ask(s);
        ask = &now;
    }
    if (!t) {
        t = hb_xcalloc(1, sizeof(*t));
        memcpy(t->name, name, len);
        t->len = len;
        hb_list_init(&t->subs);
        hb_dict_set(s->topics, name, len, t);
    }
    u->c = c;
    u->t = t;
    hb_list_push_head(&t->subs, &u->tlink);
    if (!since) { /* a long-poll's tail read too: what it may miss is read from its ask */
        u->fresh = 1;
        u->last.ms = ask->ms > HB_JOIN_CLOCK_MARGIN_MS ? ask->ms - HB_JOIN_CLOCK_MARGIN_MS : 0;
    }
    if (t->nsubs++ == 0 && !t->told) {
        t->ask = *ask;
        topic_tell_broker(s, t, HB_REQ_SUB);
    }
    hb_svc_count(&s->subscriptions, 1);
    u->idx = c->nsubs;
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (!c->subs[i]) { /* reuse the slot of an earlier unsubscribe */
            u->idx = i;
            break;
        }
    if (u->idx == c->nsubs) {
        if (!c->capsubs) { /* one slot in the client itself: no allocation for most */
            c->subs = &c->sub0;
            c->capsubs = 1;
        } else if (c->nsubs == c->capsubs) {
            hb_sub_t **ns = hb_xmalloc((size_t)c->capsubs * 2 * sizeof(*ns));
            memcpy(ns, c->subs, c->capsubs * sizeof(*ns));
            if (c->subs != &c->sub0)
                free(c->subs);
            c->subs = ns;
            c->capsubs *= 2;
        }
        c->nsubs++;
    }
    c->subs[u->idx] = u;
    if (since || (flags & HB_SUB_TAIL)) {
        if (since) {
            u->last = since->id;
            u->have_last = 1;
        }
        if (since && !(flags & HB_SUB_FRESH) && topic_at(t, since)) {
            /* nothing stored after the cursor yet: live from here, no read */
            atomic_fetch_add_explicit(&s->edge->stats.history_live, 1, memory_order_relaxed);
            if (c->ops->caught_up)
                c->ops->caught_up(c);
        } else {
            hb_hread_begin(u, since ? since : &(hb_cursor_t){{0, 0}, ""}, flags);
        }
    }
    return u;
}

static void sub_release_pend(hb_sub_t *u)
{
    for (uint32_t i = 0; i < u->npend; i++)
        hb_msg_unref(u->pend[i]);
    free(u->pend);
    u->pend = NULL;
    u->npend = u->cappend = 0;
}

void hb_sub_remove(hb_client_t *c, hb_sub_t *u)
{
    hb_svc_t *s = c->svc;
    ltopic_t *t = u->t;
    hb_hread_cancel(u);
    hb_list_unlink(&u->tlink);
    if (--t->nsubs == 0) {
        if (t->told)
            topic_tell_broker(s, t, HB_REQ_UNSUB);
        topic_maybe_free(s, t);
    }
    c->subs[u->idx] = NULL;
    hb_svc_count(&s->subscriptions, (unsigned long long)-1); /* wraps: minus one */
    sub_release_pend(u);
    hb_buf_unref(u->wcur);
    free(u);
}

/* ---- delivery: messages from the broker ---- */

/* 1 when stream id a comes after b: hb_id_cmp(a, b) > 0, without a call per recipient. */
static inline int id_after(const hb_id_t *a, const hb_id_t *b)
{
    return a->ms != b->ms ? a->ms > b->ms : a->seq > b->seq;
}

/* One event for one subscription: in ID order, never twice. 1 when it was queued, for the
 * caller to count in svc->deliveries (a fan-out counts once per event); else 0. Inline: the
 * fan-out loop's body. */
static inline int sub_queue(hb_sub_t *u, const hb_ev_t *ev, int ctl)
{
    hb_client_t *c = u->c;
    const hb_transport_t *t = c->ops;
    if (!ctl) {
        if (u->have_last && !id_after(&ev->id, &u->last))
            return 0;
        u->last = ev->id;
        u->have_last = 1;
    }
    if (ctl && t->gap) { /* long-poll: answered with the gap */
        t->gap(c, ev);
        return 0;
    }
    /* only multi-topic SSE and long-poll write the cursor apart: no second ref for others */
    if (hb_client_push(c, hb_transport_frame(t, ev), ctl || !t->cursor ? NULL : ev->cur, u->idx,
                       ctl) != 0)
        return 0;
    c->delivered++;
    return 1;
}

/* sub_queue(), counted. */
static void sub_deliver(hb_sub_t *u, const hb_ev_t *ev, int ctl)
{
    if (sub_queue(u, ev, ctl))
        hb_svc_count(&u->c->svc->deliveries, 1);
}

/* A resuming u lets go of the live events it holds: they are stored (published after their
 * XADD) and read from history after the page last asked for (pend_over, hb_topics_on_history).
 * A long-poll answer that is full (poll_full) holds none: the next poll reads them. */
static void sub_let_go(hb_sub_t *u)
{
    if (u->poll_full)
        return;
    sub_release_pend(u);
    u->pend_over = 1;
}

static void sub_pend(hb_sub_t *u, hb_msg_t *m)
{
    hb_svc_t *s = u->c->svc;
    if (u->poll_full)
        return; /* read from history by the next poll */
    if (u->npend >= (uint32_t)s->edge->cfg.client_queue_max) {
        /* More live events arrived during the read than a client may have queued. They are
         * all stored (a live event is published after its XADD): dropped here and read from
         * history after the page that was last asked for (u->pend_over), as the broker's
         * refill does with its held events. The client is not cut off for them: it has not
         * been given them yet. */
        hb_log_ratelimited("pend-over", 1000, HB_LOG_INFO, MOD,
                           "live events beyond the queue bound while resuming: read from history",
                           "{s:s%}", "topic", u->t->name, u->t->len);
        sub_let_go(u);
    }
    if (u->npend == u->cappend) {
        u->cappend = u->cappend ? u->cappend * 2 : 8;
        u->pend = hb_xrealloc(u->pend, u->cappend * sizeof(*u->pend));
    }
    u->pend[u->npend++] = hb_msg_ref(m);
}

/*
 * Reads u's topic on from u's position, in place: its client keeps its connection, the live
 * events that arrive meanwhile are held and merged after (hread.c, as a resume). From the
 * stream its last read or event was of; a fresh subscription without an event yet reads from
 * its ask (`last`; a long-poll without `since` too). 0 when u has no position (not reached:
 * every subscription has a cursor or an ask).
 */
static int sub_read_on(hb_sub_t *u, const ltopic_t *t)
{
    hb_cursor_t from = {.id = u->last};
    if (!u->have_last && !u->fresh)
        return 0;
    if (u->have_last)
        memcpy(from.epoch, u->history_started && u->hcur.epoch[0] ? u->hcur.epoch : t->epoch,
               sizeof(from.epoch));
    hb_hread_begin(u, &from, HB_SUB_FRESH);
    return 1;
}

/*
 * An event of t for this thread was dropped on the way (this thread's queue was full; the
 * broker's sequence shows the hole). It is stored (a live event is published after its XADD),
 * so every subscription reads on from its position in place (sub_read_on()) instead of its
 * client being closed to resume: a burst that fills the queue does not send a hot topic's
 * subscribers reconnecting all at once. One already reading reads one page more after its
 * last (pend_over, as for live events over its bound: what it held may follow the hole); a
 * long-poll answer that is full leaves it to the next poll (poll_full). Only a subscription
 * with no position at all fails (hb_hread_failed(): a long-poll is answered 503, any other
 * client closed 1011 to resume).
 */
static void topic_lost(hb_svc_t *s, ltopic_t *t)
{
    hb_list_t *n, *next;
    t->at[0] = '\0';
    for (n = t->subs.next; n != &t->subs; n = next) {
        hb_sub_t *u = hb_list_container(n, hb_sub_t, tlink);
        next = n->next;
        if (u->c->closing)
            continue;
        if (u->resuming)
            sub_let_go(u);
        else if (sub_read_on(u, t))
            atomic_fetch_add_explicit(&s->edge->stats.lost_catchups, 1, memory_order_relaxed);
        else
            hb_hread_failed(u->c, "event lost in hand-off"); /* long-poll 503, else 1011 */
    }
}

/*
 * The broker's answer to a SUB of ours that came after the topic had messages for other
 * threads (btopic__join): the topic's messages reach this thread from here, after sequence
 * m->seq. Our SUB went after a subscription's head (or its acknowledgement), so what the
 * broker emitted to other threads in between may have been stored after it: every
 * subscription that started live reads the stream from its ask, with the live events held
 * meanwhile merged after (hread.c, as a resume). A subscription that resumes reads after the
 * join (its request follows the SUB). One with a position and no read (an event of our
 * previous SUB reached it: an unsubscribe and subscribe again within a hand-off's round trip;
 * or a read answered while the broker could not hand us the join) reads on from its position
 * the same way, as its client would resume from it (it was closed 1011 for that before).
 */
static void topic_join(hb_svc_t *s, ltopic_t *t, const hb_msg_t *m)
{
    hb_list_t *n, *next;
    t->seq = m->seq;
    t->have_seq = 1;
    t->at[0] = '\0';
    for (n = t->subs.next; n != &t->subs; n = next) {
        hb_sub_t *u = hb_list_container(n, hb_sub_t, tlink);
        next = n->next;
        if (u->c->closing || u->resuming)
            continue;
        if (sub_read_on(u, t))
            atomic_fetch_add_explicit(&s->edge->stats.join_catchups, 1, memory_order_relaxed);
        else
            hb_hread_failed(u->c, "event lost in hand-off"); /* long-poll 503, else 1011 */
    }
}

void hb_topics_on_event(hb_svc_t *s, hb_msg_t *m)
{
    ltopic_t *t = hb_dict_get(s->topics, m->topic, m->topic_len);
    hb_list_t *n, *next;
    hb_sub_t *u;
    unsigned long long queued = 0;
    int lost;
    if (!t)
        return;
    if (m->join) {
        topic_join(s, t, m);
        return;
    }
    if (m->sync) {
        /* the broker dropped an event of this topic for us (our queue was full; it sends a
         * sync only then, and nothing of the topic before it): unless our sequence shows we
         * resumed past it already, the subscriptions read on from history. With no sequence
         * yet the dropped one was the first we would have had. */
        if (!t->have_seq || m->seq != t->seq)
            topic_lost(s, t);
        t->seq = m->seq;
        t->have_seq = 1;
        return;
    }
    lost = t->have_seq && m->seq != t->seq + 1;
    if (lost) /* an event for this topic was dropped on the way: read on from history */
        topic_lost(s, t);
    t->seq = m->seq;
    t->have_seq = 1;
    topic_advance(t, m, lost);
    /* one pointer chase per subscription; next is taken first, so the body may remove u (not
     * hb_list_foreach_safe(), which would read the head's next after the last one) */
    for (n = t->subs.next; n != &t->subs; n = next) {
        next = n->next;
        u = hb_list_container(n, hb_sub_t, tlink);
        if (u->c->closing)
            continue;
        if (u->resuming)
            sub_pend(u, m);
        else
            queued += (unsigned long long)sub_queue(u, &m->ev, m->control);
    }
    if (queued) /* once per event, not per recipient */
        hb_svc_count(&s->deliveries, queued);
}

static void sub_finish_resume(hb_sub_t *u)
{
    u->resuming = 0;
    for (uint32_t i = 0; i < u->npend && !u->c->closing; i++)
        sub_deliver(u, &u->pend[i]->ev, u->pend[i]->control);
    sub_release_pend(u);
    if (u->c->ops->caught_up)
        u->c->ops->caught_up(u->c); /* a long-poll may answer now */
}

/* A `reset` page about the same stream, its cursor ahead of the stream's tail (Redis restored
 * an older dump, or a cursor from the future): nothing after the cursor, and the tail is of the
 * cursor's epoch. The client continues from the tail (PROTOCOL.md): its position becomes the
 * tail's, so events up to the tail (a refill's, held while this read ran: ones it had) are not
 * sent again, and what comes after the tail is. 1 with *tail set; 0 for a new stream (another
 * epoch), which starts over. */
static int page_rolled_back(const hb_sub_t *u, const hb_msg_t *m, hb_id_t *tail)
{
    hb_cursor_t t;
    if (!(u->have_last && m->n == 0 && m->tail[0] && u->hcur.epoch[0] &&
          !hb_cursor_parse(m->tail, strlen(m->tail), &t, NULL) && !strcmp(t.epoch, u->hcur.epoch)))
        return 0;
    *tail = t.id;
    return 1;
}

/* 1 when ev (not a notice) is of the stream with epoch `epoch` (its cursor's suffix). */
static int ev_of_epoch(const hb_ev_t *ev, const char *epoch)
{
    size_t len, n = strlen(epoch);
    const char *ep = ev_epoch(ev, &len);
    return ep && len == n && !memcmp(ep, epoch, n);
}

/* A `reset` page: the stream of epoch `gone`, which the resume read from, no longer exists.
 * The live events held meanwhile of that stream (they arrived before the edge learnt of the
 * loss) are of a stream that is gone: after the notice the client continues in the new stream
 * (PROTOCOL.md), so they are dropped, not sent after it (checker seed 3 --net-faults on
 * 7571713: reset, then an old event, made the old events before it look skipped). */
static void sub_drop_held_of(hb_sub_t *u, const char *gone)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < u->npend; i++) {
        if (!u->pend[i]->control && ev_of_epoch(&u->pend[i]->ev, gone))
            hb_msg_unref(u->pend[i]);
        else
            u->pend[keep++] = u->pend[i];
    }
    u->npend = keep;
}

/* A page of u's history: queued to the client; then the next page (paced), or live. */
void hb_topics_on_history(hb_svc_t *s, hb_sub_t *u, hb_msg_t *m)
{
    hb_client_t *c = u->c;
    size_t q0 = c->qbytes;
    (void)s;
    if (m->error) {
        hb_hread_failed(c, "history read failed");
        return;
    }
    if (m->live_at && m->gap == HB_GAP_NONE && m->tail[0]) {
        /* the broker's live position, after every event up to it: this thread's from now */
        memcpy(u->t->at, m->tail, sizeof(u->t->at));
        u->t->synced = 1;
    }
    if (c->ops->history_tail && m->tail[0])
        c->ops->history_tail(c, m->tail, 0);
    /* any page: a later one finds a gap when the stream was trimmed past the resume, or
     * wiped, while the client read the earlier ones */
    if (m->gap != HB_GAP_NONE) {
        hb_ev_t g;
        if (hb_ev_encode_gap(&g, u->t->name, u->t->len, m->gap) == 0) {
            sub_deliver(u, &g, 1);
            hb_ev_release(&g);
        }
        if (m->gap == HB_GAP_RESET) {
            hb_id_t tail;
            if (page_rolled_back(u, m, &tail)) {
                u->last = tail;
            } else {
                u->have_last = 0;
                if (u->hcur.epoch[0])
                    sub_drop_held_of(u, u->hcur.epoch);
            }
            /* a long-poll continues from the stream's tail unless this page has events */
            if (c->ops->history_tail && m->tail[0])
                c->ops->history_tail(c, m->tail, 1);
        }
    }
    u->history_started = 1;
    {
        /* the stream this page was read from: the next page is read against its epoch */
        hb_cursor_t tail;
        if (!m->tail[0])
            u->hcur.epoch[0] = '\0'; /* no stream: whatever comes is a new one */
        else if (!hb_cursor_parse(m->tail, strlen(m->tail), &tail, NULL))
            memcpy(u->hcur.epoch, tail.epoch, sizeof(u->hcur.epoch));
    }
    for (size_t i = 0; i < m->n && !c->closing; i++)
        sub_deliver(u, &m->evs[i], 0);
    if (c->closing)
        return;
    if (m->has_passed && (!u->have_last || id_after(&m->passed, &u->last))) {
        u->last = m->passed; /* the next page is read after it, not from before it again */
        u->have_last = 1;
        if (c->ops->history_passed) {
            hb_cursor_t at = {.id = m->passed};
            memcpy(at.epoch, u->hcur.epoch, sizeof(at.epoch));
            c->ops->history_passed(c, &at);
        }
    }
    if (m->more) {
        if (!c->ops->answer || hb_hread_poll_room(c)) {
            /* a long-poll answer takes more pages while it has room: up to --history-batch
             * events and about a page's bytes */
            hb_hread_next(u, c->qbytes > q0 ? c->qbytes - q0 : 0, m->n);
            return;
        }
        /* A long-poll answer is full before the history caught up: the live events held
         * meanwhile, and those that arrive before it is written, come after history not
         * read yet. Answered with it, its `next` would skip that history; the next poll
         * reads them from it. */
        sub_release_pend(u);
        u->poll_full = 1;
        lws_callback_on_writable(c->wsi); /* answers (poll.c, its writable hook) */
        return;
    }
    if (u->pend_over) {
        /* live events were dropped while this page was out: history has them (sub_pend(),
         * topic_lost()). One without an event yet (a tail read: a long-poll without since)
         * reads from its ask (fresh: `last`), not from the stream's first entry, nor from the
         * tail it learnt, which may be past events stored after it asked. */
        u->pend_over = 0;
        sub_release_pend(u);
        hb_hread_next(u, c->qbytes > q0 ? c->qbytes - q0 : 0, m->n);
        return;
    }
    sub_finish_resume(u);
}
