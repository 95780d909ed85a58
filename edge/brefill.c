/*
 * The refill of a topic: what was stored in its stream that its subscribers have not been
 * sent, read with herald_history from where delivery stood. A topic's position is read before
 * its first SUBSCRIBE (bsub.c) and once a subscription is confirmed (here; bpos.c records it);
 * after a resubscription (a lost sub connection, a moved slot, a stalled canary) the topic is
 * refilled from its last delivered event (after the lost check, blost.c) while its live events are
 * held (hb_broker_on_live), then the held ones are released in order. brefill__kick() drives each
 * topic's next step. Broker thread only.
 */
#include "broker_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "hb_dict.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "rc.h"

#define MOD "broker"

/* Topic backfill after a resubscription: deliver what was stored since the last delivered ID. */
static void on_backfill(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    btopic_t *t = brefill__reply_topic(b, priv);
    if (!t)
        return;
    if (!history__reply_ok(r)) {
        /* Redis went away again (r NULL: the next resubscription starts over), or answered
         * with an error while staying up (busy, a library deleted): the broker's tick sends
         * the read again (hb_broker_refill_retry), and live events stay held meanwhile. */
        if (r)
            hb_log_ratelimited("refill-error", 2000, HB_LOG_WARN, MOD,
                               "refill read failed: trying again", "{s:s%,s:s}", "topic", t->name,
                               t->len, "err",
                               r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    redisReply *ents = r->element[2];
    hb_gap_t gap = history__gap(r->element[1]);
    if (gap != HB_GAP_NONE) {
        if (gap == HB_GAP_RESET) /* the epoch the refill read from (refill_from) */
            memcpy(t->reset_ep, t->have_last ? t->epoch : t->pos_epoch, sizeof(t->reset_ep));
        btopic__emit_gap(b, t, gap);
        t->have_last = 0;
    }
    for (size_t i = 0; i < ents->elements; i++) {
        hist_ent_t e;
        int rc = history__parse_entry(b, t->name, t->len, ents->element[i], &e);
        if (!rc)
            btopic__deliver(b, t, &e.id, r->element[0]->str, r->element[0]->len, e.ev, e.evlen, e.d,
                            e.dlen);
        else if (rc == HB_ELIMIT) /* passed over: the next page reads on after it */
            btopic__pass(b, t, &e.id, r->element[0]->str, r->element[0]->len);
    }
    if (history__more(r, history__batch(b))) {
        brefill__kick(b, t); /* next page */
        return;
    }
    if (t->held_dropped) {
        /* Live events were dropped at the hold bound, maybe stored after this page was read:
         * the held ones go too (history has them all) and the refill reads on from the last
         * event delivered, holding what arrives meanwhile again. */
        t->held_dropped = 0;
        for (size_t i = 0; i < t->nheld; i++)
            hb_msg_unref(t->held[i]);
        t->nheld = 0;
        t->held_bytes = 0;
        brefill__kick(b, t);
        return;
    }
    /* Caught up: release the live events held meanwhile, in order, skipping duplicates and
     * those of another stream than the one just read (heard before Redis lost its data: its
     * `reset` notice went out above; after it they would read as events of the new stream
     * older than the client's cursor). */
    t->need_backfill = 0;
    for (size_t i = 0; i < t->nheld; i++) {
        hb_msg_t *m = t->held[i];
        const char *ep = r->element[0]->str;
        if ((ep[0] && strcmp(t->held_ep[i], ep) != 0) ||
            (t->reset_ep[0] && !strcmp(t->held_ep[i], t->reset_ep))) {
            hb_msg_unref(m); /* the new stream may not exist yet (ep ""): the reset says */
        } else if (!t->have_last || hb_id_cmp(&m->ev.id, &t->last) > 0) {
            t->last = m->ev.id;
            memcpy(t->epoch, t->held_ep[i], sizeof(t->epoch));
            t->have_last = 1;
            t->noticed = 0;
            btopic__emit(b, t, m);
        } else {
            hb_msg_unref(m);
        }
    }
    t->nheld = 0;
    t->held_bytes = 0;
    t->reset_ep[0] = '\0';
    hb_broker_update_ready(b);
}

/* Where a refill of t starts (brefill__position; kick only refills a topic that has one). */
static void refill_from(const btopic_t *t, char *since, const char **epoch)
{
    hb_id_t id = {0, 0};
    *epoch = "";
    (void)brefill__position(t, &id, epoch);
    hb_id_format(&id, since);
}

static void on_position(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    posreq_t *q = priv;
    btopic_t *t = btopic__get(b, q->name, strlen(q->name), 0);
    if (t && t->sub_id == q->sub_id) {
        t->pos_inflight = 0;
        /* an answer for an older subscription could be later than events its drop lost */
        if (history__reply_ok(r))
            brefill__set_pos(t, r->element[3], r->element[0]);
    }
    free(q);
}

/* Reads the stream position of a topic whose live subscription was just confirmed: events
 * after it arrive live (or by refill after a reconnection). */
static void position_read(hb_broker_t *b, btopic_t *t)
{
    posreq_t *q;
    int rc;
    if (t->have_pos || t->pos_inflight || t->state != T_SUBSCRIBED || !b->cmd_ready)
        return;
    q = brefill__posreq_new(t);
    t->pos_inflight = 1;
    rc = hb_rc_fcall(b, b->fn.history, t->name, t->len, 3, brefill__pos_av, brefill__pos_al,
                     on_position, q);
    if (rc != REDIS_OK) {
        free(q);
        t->pos_inflight = 0;
    }
}

/* The lost check's reply (blost.c: the gap notice, or the check sent again by text), then the
 * backfill from the last delivered ID. */
static void on_lost_checked(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    btopic_t *t = brefill__reply_topic(b, priv);
    if (!t)
        return;
    if (!r)
        return; /* Redis went away: the next resubscription checks again */
    if (blost__reply(b, t, r, on_lost_checked))
        return;
    brefill__kick(b, t); /* now the backfill from the last delivered ID */
}

void brefill__kick(hb_broker_t *b, btopic_t *t)
{
    if (t->state != T_SUBSCRIBED || !b->cmd_ready)
        return;
    position_read(b, t);
    if (t->need_backfill && !t->backfill_inflight && !t->lost_checked && t->have_last)
        blost__check(b, t, 0, on_lost_checked);
    if (t->need_backfill && !t->backfill_inflight) {
        char since[HB_ID_STR_MAX], count[24], bytes[24];
        const char *epoch;
        refill_from(t, since, &epoch);
        snprintf(count, sizeof(count), "%ld", history__batch(b));
        snprintf(bytes, sizeof(bytes), "%zu", history__page_bytes(b));
        t->backfill_inflight = 1;
        const char *av[] = {since, epoch, count, bytes};
        size_t al[] = {strlen(since), strlen(epoch), strlen(count), strlen(bytes)};
        posreq_t *q = brefill__posreq_new(t);
        if (hb_rc_fcall(b, b->fn.history, t->name, t->len, 4, av, al, on_backfill, q) != REDIS_OK) {
            free(q); /* no callback after an error */
            t->backfill_inflight = 0;
        }
    }
    for (hb_list_t *n; (n = hb_list_pop_head(&t->waiting));) {
        hreq_t *q = hb_list_container(n, hreq_t, link);
        q->sub_id = t->sub_id;
        history__send(b, q);
    }
}

void hb_broker_refill_all(hb_broker_t *b)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v))
        if (btopic__want_refill(v))
            brefill__kick(b, v);
    hb_broker_update_ready(b);
}

void brefill__on_data_lost(hb_broker_t *b)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        if (!t->want || t->have_last || (t->have_pos && t->pos_epoch[0]))
            continue;
        btopic__emit_gap(b, t, HB_GAP_RESET);
    }
}

void brefill__retry(hb_broker_t *b, btopic_t *t)
{
    if (t->state == T_SUBSCRIBED && (t->need_backfill || !t->have_pos) && !t->backfill_inflight &&
        !t->pos_inflight)
        brefill__kick(b, t);
}
