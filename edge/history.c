/*
 * History on the broker thread: clients' history requests (a resume, a poll, a page of a
 * long history) sent as herald_history calls and answered to the client's service thread,
 * and the decoding of herald_history replies, which the refill of a topic (brefill.c) reads
 * too. Broker thread only.
 */
#include "broker_priv.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_page.h"
#include "rc.h"

#define MOD "broker"

int history__parse_entry(hb_broker_t *b, const char *topic, size_t tlen, redisReply *e,
                         hist_ent_t *out)
{
    redisReply *f;
    const char *why = NULL;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return HB_EPROTO;
    if (hb_id_parse(e->element[0]->str, e->element[0]->len, &out->id, NULL))
        return HB_EPROTO;
    f = e->element[1];
    out->d = NULL;
    out->dlen = 0;
    out->ev = NULL;
    out->evlen = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            continue;
        if (k->str[0] == 'd') {
            out->d = v->str;
            out->dlen = v->len;
        } else if (k->str[0] == 'e' && v->len > 0) {
            out->ev = v->str;
            out->evlen = v->len;
        } else if (k->str[0] == 'x') {
            why = "payload larger than --max-message-bytes"; /* herald_history left it out */
        }
    }
    /* what Herald's store refuses (hb_script.c) was written around it: never delivered. The
     * payload bound is the library's (the deployment's setting, herald_history applies it),
     * not this edge's: during a rolling change of --max-message-bytes every edge delivers the
     * same events from history as live */
    if (!out->d) {
        out->d = "";
        if (!why)
            why = "no payload field"; /* Herald's store always writes `d` */
    }
    if (!why && out->ev && hb_event_name_validate(out->ev, out->evlen, NULL) != HB_OK)
        why = "event name Herald does not accept";
    if (!why)
        return 0;
    atomic_fetch_add_explicit(&b->edge->stats.stored_skipped, 1, memory_order_relaxed);
    hb_log_ratelimited("stored-skip", 1000, HB_LOG_WARN, MOD,
                       "stored entry skipped: Herald would not have stored it", "{s:s%,s:s%,s:s}",
                       "topic", topic, tlen, "id", e->element[0]->str, e->element[0]->len, "why",
                       why);
    return HB_ELIMIT;
}

/* Checks a herald_history reply's shape: {epoch, gap, entries, tail}. The epoch is the topic's
 * epoch key's value, which anything with access to Redis can SET: one that Herald would not
 * have made ("" or [0-9a-z]{1,16}) would go into every cursor, SSE `id:` line and JSON `next`
 * (a quote or a line break forging fields), and the client's cursor would be refused. */
int history__reply_ok(redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           (r->element[0]->len == 0 || hb_epoch_valid(r->element[0]->str, r->element[0]->len)) &&
           r->element[1]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_ARRAY &&
           r->element[3]->type == REDIS_REPLY_STRING;
}

hb_gap_t history__gap(redisReply *g)
{
    if (g->len == 5 && !memcmp(g->str, "reset", 5))
        return HB_GAP_RESET;
    if (g->len == 7 && !memcmp(g->str, "trimmed", 7))
        return HB_GAP_TRIMMED;
    return HB_GAP_NONE;
}

int history__more(redisReply *r, long count)
{
    redisReply *ents = r->element[2], *last;
    hb_id_t a, tail;
    if (ents->elements >= (size_t)count)
        return 1;
    if (!ents->elements)
        return 0;
    last = ents->element[ents->elements - 1];
    if (last->type != REDIS_REPLY_ARRAY || last->elements < 1 ||
        last->element[0]->type != REDIS_REPLY_STRING ||
        hb_id_parse(last->element[0]->str, last->element[0]->len, &a, NULL) ||
        hb_id_parse(r->element[3]->str, r->element[3]->len, &tail, NULL))
        return 0;
    return hb_id_cmp(&a, &tail) < 0;
}

size_t history__page_bytes(const hb_broker_t *b)
{
    return hb_page_budget((size_t)b->edge->cfg.client_queue_bytes);
}

/* Entries per history read: never more than half a client queue, or a resume could only ever
 * be cut off as a slow consumer before its first write. */
long history__batch(const hb_broker_t *b)
{
    long half = b->edge->cfg.client_queue_max / 2;
    return b->edge->cfg.history_batch < half ? b->edge->cfg.history_batch : half > 0 ? half : 1;
}

/* Entries a client's history request reads: what it asked for, within history__batch(). */
static long hreq_count(const hb_broker_t *b, const hreq_t *q)
{
    long max = history__batch(b);
    return q->count && (long)q->count < max ? (long)q->count : max;
}

/* The most bytes one encoding of ev takes in a client queue (the page budget's measure). */
static size_t ev_size(const hb_ev_t *ev)
{
    size_t n = hb_buf_len(ev->sse);
    if (hb_buf_len(ev->msse) > n)
        n = hb_buf_len(ev->msse);
    if (hb_buf_len(ev->ws) > n)
        n = hb_buf_len(ev->ws);
    if (hb_buf_len(ev->json) > n)
        n = hb_buf_len(ev->json);
    return n;
}

/* Sends the answer m to q's service thread (a full queue drops it, counted) and frees q. */
static void push_answer(hb_broker_t *b, hreq_t *q, hb_msg_t *m)
{
    hb_svc_answer(b->edge->svcs[q->thread], m);
    hb_hflag_unref(q->cancel);
    free(q);
}

/* Answers q (freed here) with the herald_history reply r (NULL: not asked, or no reply). */
static void answer(hb_broker_t *b, redisReply *r, hreq_t *q)
{
    hb_msg_t *m = hb_msg_new(HB_MSG_HISTORY, q->topic, q->topic_len);
    m->client_id = q->client_id;

    if (hb_hflag_cancelled(q->cancel)) {
        /* nobody takes it: an empty answer frees the asker's slots, nothing is encoded */
    } else if (!history__reply_ok(r)) {
        m->error = 1;
        if (r)
            hb_log_ratelimited("history-error", 1000, HB_LOG_WARN, MOD, "history read failed",
                               "{s:s%,s:s}", "topic", q->topic, q->topic_len, "err",
                               r->type == REDIS_REPLY_ERROR
                                   ? r->str
                                   : "not a herald_history reply (its shape, or an epoch "
                                     "Herald did not make)");
    } else {
        redisReply *ents = r->element[2];
        const char *epoch = r->element[0]->str;
        hb_id_t tail;
        m->gap = history__gap(r->element[1]);
        size_t bytes = 0;
        m->more = history__more(r, hreq_count(b, q));
        btopic_t *t = btopic__get(b, q->topic, q->topic_len, 0);
        if (!hb_id_parse(r->element[3]->str, r->element[3]->len, &tail, NULL)) {
            hb_cursor_format(&tail, epoch, m->tail);
            /* A cursor of this stream (its epoch, or none) with a later ID than the stream
             * ever generated (Redis restored from an older snapshot, a forged cursor): no
             * event would ever pass it. The client is told "reset" and continues from the
             * stream's tail (PROTOCOL.md, Gap notice). */
            if (!q->tail_only && m->gap == HB_GAP_NONE && hb_id_cmp(&q->cursor.id, &tail) > 0)
                m->gap = HB_GAP_RESET;
        }
        if (t && t->sub_id == q->sub_id) /* read on this subscription (brefill__kick) */
            brefill__set_pos(t, r->element[3], r->element[0]);
        m->evs = hb_xcalloc(ents->elements ? ents->elements : 1, sizeof(*m->evs));
        for (size_t i = 0; i < ents->elements; i++) {
            hist_ent_t e;
            int rc = history__parse_entry(b, q->topic, q->topic_len, ents->element[i], &e);
            if (rc == HB_ELIMIT) { /* the reader's position passes it (hb_msg_t.passed) */
                m->passed = e.id;
                m->has_passed = 1;
            }
            if (rc)
                continue;
            if (hb_ev_encode(&m->evs[m->n], q->topic, q->topic_len, &e.id, epoch, e.ev, e.evlen,
                             e.d, e.dlen)) {
                m->error = 1;
                break;
            }
            hb_ev_stamp(&m->evs[m->n], 0); /* a resume page, not a live delivery */
            /* the page ends before its byte budget (one entry at least): the rest is left
             * unencoded and read again from the last ID when the client has taken this */
            if (q->max_bytes && m->n && bytes + ev_size(&m->evs[m->n]) > q->max_bytes) {
                hb_ev_release(&m->evs[m->n]);
                memset(&m->evs[m->n], 0, sizeof(m->evs[m->n]));
                m->more = 1;
                break;
            }
            bytes += ev_size(&m->evs[m->n]);
            m->n++;
        }
    }
    push_answer(b, q, m);
}

static void on_client_history(redisAsyncContext *ac, void *reply, void *priv)
{
    answer(ac->data, reply, priv);
}

/*
 * 1 when q's cursor is where live delivery of its topic stands (brefill__position: the last
 * event delivered, or the subscription's position), on a confirmed subscription whose refill
 * is done and after which no gap notice went out, and q's thread gets the topic's live events.
 * Every event stored after the cursor then reaches that thread live, after this answer in its
 * queue (its subscription holds what comes before the answer and merges it in ID order), so a
 * read would find nothing: an idle long-poller asks again with the tail's cursor every timeout,
 * and that costs Redis a function call each time. A cursor that read would find reset or
 * trimmed is never at the position: the stream changed (a notice), or a reconnection brought a
 * refill, and with it a read again. The position of a first subscription may be a stream-ID
 * time, not an entry (hb_broker_topic_subscribed): a cursor equal to it is not one Herald gave
 * out, and events after it still reach it.
 */
static int at_live_position(hb_broker_t *b, const hreq_t *q, hb_id_t *id, const char **epoch)
{
    btopic_t *t = btopic__get(b, q->topic, q->topic_len, 0);
    if (q->tail_only || q->fresh || !q->cursor.epoch[0] || !t || t->state != T_SUBSCRIBED ||
        t->need_backfill || t->backfill_inflight || t->pos_inflight || t->noticed ||
        !(t->want & (1ull << q->thread)) || !brefill__position(t, id, epoch))
        return 0;
    return (*epoch)[0] && !strcmp(*epoch, q->cursor.epoch) && hb_id_cmp(id, &q->cursor.id) == 0;
}

void history__send(hb_broker_t *b, hreq_t *q)
{
    char since[HB_ID_STR_MAX], count[24], bytes[24];
    hb_id_t at;
    const char *epoch;
    if (hb_hflag_cancelled(q->cancel)) { /* cancelled while it waited: Redis is not asked */
        answer(b, NULL, q);
        return;
    }
    if (at_live_position(b, q, &at, &epoch)) {
        /* nothing stored after the cursor yet: an empty page, its tail the cursor */
        hb_msg_t *m = hb_msg_new(HB_MSG_HISTORY, q->topic, q->topic_len);
        m->client_id = q->client_id;
        hb_cursor_format(&at, epoch, m->tail);
        m->live_at = 1;
        atomic_fetch_add_explicit(&b->edge->stats.history_live, 1, memory_order_relaxed);
        push_answer(b, q, m);
        return;
    }
    atomic_fetch_add_explicit(&b->edge->stats.history_redis, 1, memory_order_relaxed);
    if (q->tail_only)
        strcpy(since, "$");
    else
        hb_id_format(&q->cursor.id, since);
    snprintf(count, sizeof(count), "%ld", hreq_count(b, q));
    snprintf(bytes, sizeof(bytes), "%zu", q->max_bytes ? q->max_bytes : history__page_bytes(b));
    const char *av[] = {since, q->cursor.epoch, count, bytes};
    size_t al[] = {strlen(since), strlen(q->cursor.epoch), strlen(count), strlen(bytes)};
    if (hb_rc_fcall(b, b->fn.history, q->topic, q->topic_len, 4, av, al, on_client_history, q) !=
        REDIS_OK)
        answer(b, NULL, q);
}
