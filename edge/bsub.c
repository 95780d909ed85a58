/*
 * The subscription state of the broker's topics (btopic_t.state): the read of a topic's
 * position before its first SUBSCRIBE, SUBSCRIBE through rc.h, the confirmation (which starts
 * the topic's refill, brefill__kick), UNSUBSCRIBE after the linger, and what the sub
 * connection's coming and going does to every topic (b->ev->sub_up, sub_down). The top of the
 * topic files: calls the refill (brefill.c), the position (bpos.c) and the registry
 * (btopic.c). Broker thread only.
 */
#include "broker_priv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "canary.h"
#include "hb_dict.h"
#include "rc.h"

#define LATE_SUB_S 0.5
#define LATE_SUB_MARGIN_MS 500u

/* The reply to a first subscription's position read: record it, then subscribe. */
static void on_prior_position(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    posreq_t *q = priv;
    btopic_t *t = btopic__get(b, q->name, strlen(q->name), 0);
    free(q);
    if (!t || !t->pos_inflight || t->sub_id != 0)
        return; /* gone, or a newer topic of that name already subscribed */
    t->pos_inflight = 0;
    if (r && history__reply_ok(r) && !t->have_pos)
        brefill__record_pos(t, r->element[3], r->element[0]);
    if (t->state != T_IDLE)
        return;
    if (t->want || !hb_list_empty(&t->waiting))
        btopic__subscribe(b, t); /* without a position (Redis went away): see topic_subscribed */
    else
        btopic__free(b, t); /* nobody wants it any more (kept for this reply: handle_req) */
}

/* Reads the stream position of a topic before its first SUBSCRIBE; 1 when sent. A position
 * read after the confirmation could be later than events published to the new subscription
 * that never arrived (a silently stopped or dropped subscriber connection): a refill from it
 * would skip them. Read before, it is at or before the subscription's first event. */
int brefill__prior_position_read(hb_broker_t *b, btopic_t *t)
{
    posreq_t *q;
    int rc;
    if (t->sub_id != 0 || t->have_pos || t->have_last)
        return 0;
    if (!b->cmd_ready)
        return HB_EIO;
    if (t->pos_inflight)
        return 1;
    q = brefill__posreq_new(t);
    rc = hb_rc_fcall(b, b->fn.history, t->name, t->len, 3, brefill__pos_av, brefill__pos_al,
                     on_prior_position, q);
    if (rc != REDIS_OK) {
        free(q);
        return HB_EIO;
    }
    t->pos_inflight = 1;
    return 1;
}

void btopic__subscribe(hb_broker_t *b, btopic_t *t)
{
    if (brefill__prior_position_read(b, t) > 0)
        return; /* subscribes when the position is known */
    hb_rc_subscribe(b, t);
}

void btopic__unsubscribe(hb_broker_t *b, btopic_t *t)
{
    hb_rc_unsubscribe(b, t);
}

void btopic__on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    btopic_t *t = NULL;
    const char *kind;
    (void)priv;
    if (b->canary && hb_canary_on_reply(b->canary, reply))
        return;
    kind = hb_broker_pubsub(b, reply, "message", &t);
    if (!kind)
        return;
    if (!strcmp(kind, "subscribe") && t->state == T_SUBSCRIBING)
        hb_broker_topic_subscribed(b, t);
    else if (!strcmp(kind, "unsubscribe") && t->state == T_UNSUBSCRIBING)
        hb_broker_topic_unsubscribed(b, t);
    hb_broker_update_ready(b);
}

void hb_broker_topic_subscribed(hb_broker_t *b, btopic_t *t)
{
    int again = t->sub_id != 0;
    t->state = T_SUBSCRIBED;
    t->sub_id = ++b->sub_seq;
    t->pos_inflight = 0;
    t->backfill_inflight = 0; /* a request still out is for the old subscription: ignored */
    if (!again && !t->have_last) {
        /* First subscription: its clients were answered when they asked and expect what was
         * stored since. The position read before the SUBSCRIBE ran after the ask, possibly
         * long after (a slow or cut link: checker seed 47 --net-faults, 0.3 s). Stream IDs
         * are Redis's clock in ms: refill from the time of the ask when the read is later.
         * Asked for while Redis was away or confirmed long after the ask, less a clock
         * margin too (a fresh subscriber may then get an event up to that much older than
         * its request). */
        int late = t->asked_unready || hb_now() - t->asked_at > LATE_SUB_S;
        uint64_t ms = !late                              ? t->asked_ms
                      : t->asked_ms > LATE_SUB_MARGIN_MS ? t->asked_ms - LATE_SUB_MARGIN_MS
                                                         : 0;
        if (!t->have_pos || t->pos.ms > ms) {
            /* the epoch the read saw stays: if the stream is wiped before the refill, the
             * refill's epoch check sends `reset` (an empty epoch would check nothing) */
            if (!t->have_pos)
                t->pos_epoch[0] = '\0';
            t->pos.ms = ms;
            t->pos.seq = 0;
            t->have_pos = 1;
        }
    }
    if (t->have_last || t->have_pos) {
        /* a first subscription too: what was stored since its position read, before the
         * SUBSCRIBE took effect, came after its first client asked */
        t->need_backfill = 1;
        t->lost_checked = !t->have_last;
    } else if (again) {
        /* subscribed before, but its position was never read (Redis went away first): what
         * was stored meanwhile cannot be told apart from older events; say so */
        btopic__emit_gap(b, t, HB_GAP_TRIMMED);
    }
    brefill__kick(b, t);
    hb_broker_update_ready(b);
}

void hb_broker_topic_unsubscribed(hb_broker_t *b, btopic_t *t)
{
    t->state = T_IDLE;
    if (t->want)
        btopic__subscribe(b, t);
    else
        btopic__free(b, t);
    hb_broker_update_ready(b);
}

void hb_broker_topic_free(hb_broker_t *b, btopic_t *t)
{
    btopic__free(b, t);
}

void btopic__on_sub_up(hb_broker_t *b)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        if (t->want)
            btopic__subscribe(b, t);
    }
}

void btopic__on_sub_down(hb_broker_t *b)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        t->state = T_IDLE;
        t->backfill_inflight = 0;
        if (!t->want)
            btopic__free(b, t);
    }
}
