/*
 * A topic's stream position (btopic_t.pos, pos_epoch, have_pos), as a herald_history reply
 * saw it, and the context of the reads made for it (posreq_t: the topic and the subscription
 * they were sent for). Used by the refill (brefill.c), the lost check (blost.c), history
 * requests (history.c) and the read before a first SUBSCRIBE (bsub.c); calls only the topic
 * registry below it (btopic.c). Broker thread only.
 */
#include "broker_priv.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "hb_mem.h"

/* A position read's herald_history arguments: since "$" (tail only: no entries, and the epoch
 * argument is not read), count 1. */
const char *brefill__pos_av[3] = {"$", "", "1"};
const size_t brefill__pos_al[3] = {1, 0, 1};

posreq_t *brefill__posreq_new(const btopic_t *t)
{
    posreq_t *q = hb_xcalloc(1, sizeof(*q));
    q->sub_id = t->sub_id;
    memcpy(q->name, t->name, t->len);
    return q;
}

/* The topic a backfill-path reply is for (priv, freed here), with its request no longer in
 * flight; NULL when the topic is gone or no longer on the subscription the request was sent
 * for. A reply read before the current subscription was confirmed must not end its refill:
 * what was stored between that read and the new SUBSCRIBE would be skipped (FINDINGS F6); the
 * refill sent after the confirmation (brefill__kick) does it. */
btopic_t *brefill__reply_topic(hb_broker_t *b, posreq_t *q)
{
    btopic_t *t = btopic__get(b, q->name, strlen(q->name), 0);
    int current = t && t->sub_id == q->sub_id && t->state == T_SUBSCRIBED;
    free(q);
    if (!current)
        return NULL;
    t->backfill_inflight = 0;
    return t;
}

/* Records the position tail/epoch (a herald_history reply's last ID, "" when the stream does
 * not exist). */
void brefill__record_pos(btopic_t *t, const redisReply *last, const redisReply *ep)
{
    hb_id_t id = {0, 0};
    if (last->len && hb_id_parse(last->str, last->len, &id, NULL))
        return;
    t->pos = id;
    if (last->len && ep->len <= HB_EPOCH_MAX) {
        memcpy(t->pos_epoch, ep->str, ep->len);
        t->pos_epoch[ep->len] = '\0';
    } else {
        t->pos_epoch[0] = '\0'; /* no stream: whatever it will hold is after the subscription */
    }
    t->have_pos = 1;
}

/* brefill__record_pos for t's current subscription, once. */
void brefill__set_pos(btopic_t *t, const redisReply *last, const redisReply *ep)
{
    if (!t->have_pos && t->state == T_SUBSCRIBED)
        brefill__record_pos(t, last, ep);
}

int brefill__position(const btopic_t *t, hb_id_t *id, const char **epoch)
{
    if (t->have_last &&
        !(t->have_pos && !strcmp(t->pos_epoch, t->epoch) && hb_id_cmp(&t->pos, &t->last) > 0)) {
        *id = t->last;
        *epoch = t->epoch;
        return 1;
    }
    if (!t->have_pos)
        return 0;
    *id = t->pos;
    *epoch = t->pos_epoch;
    return 1;
}
