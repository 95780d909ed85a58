/*
 * The paced history reader (see hread.h). A subscription that resumes moves through
 * QUEUED (waiting for a slot) -> INFLIGHT (asked) -> DRAIN (its page is queued to the client)
 * -> QUEUED ... until a page says there is no more. Slots: c->hreads per connection and
 * s->hreads per service thread, both held from the request until its answer arrives, also
 * when the subscription went away meanwhile (the read still costs Redis and the broker).
 */
#include "hread.h"
#include "topics.h"

#include <stdlib.h>
#include <string.h>

#include "hb_log.h"
#include "hb_mem.h"
#include "hb_page.h"

/* Bytes of encoded events one page may hold for this edge's clients. */
static size_t page_budget(const hb_cfg_t *cfg)
{
    return hb_page_budget((size_t)cfg->client_queue_bytes);
}

/* The client took most of what was queued: a page more stays within half its queue bound. */
static int queue_room(const hb_client_t *c)
{
    const hb_cfg_t *cfg = &c->svc->edge->cfg;
    return hb_page_room(c->qbytes, c->qlen, page_budget(cfg), (size_t)cfg->client_queue_bytes,
                        (size_t)cfg->client_queue_max);
}

static int client_may_read(const hb_client_t *c)
{
    return !c->closing && c->hreads < HB_HREAD_PER_CONN && c->hwait_head && queue_room(c);
}

/* Lists c for a slot when it may read now. */
static void client_offer(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    if (c->hlisted || !client_may_read(c))
        return;
    c->hlisted = 1;
    c->hq_next = NULL;
    if (s->hq_tail)
        s->hq_tail->hq_next = c;
    else
        s->hq_head = c;
    s->hq_tail = c;
}

/* u waits for a read slot. */
static void enqueue(hb_sub_t *u)
{
    hb_client_t *c = u->c;
    if (u->hstate == HB_HREAD_DRAIN)
        c->hpaced--;
    u->hstate = HB_HREAD_QUEUED;
    c->svc->hwaiting++;
    u->hnext = NULL;
    if (c->hwait_tail)
        c->hwait_tail->hnext = u;
    else
        c->hwait_head = u;
    c->hwait_tail = u;
    client_offer(c);
}

/* Asks the broker for u's next page; takes a slot of its client and of the thread. */
static void send_read(hb_sub_t *u)
{
    hb_client_t *c = u->c;
    hb_svc_t *s = c->svc;
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    hb_pending_t *p = hb_pending_add(s, c, u);
    u->token = p->token;
    q->type = HB_REQ_HISTORY;
    q->client_id = u->token;
    memcpy(q->topic, u->t->name, u->t->len);
    q->topic_len = u->t->len;
    if (u->history_started) {
        /* after the last event sent, in the stream the previous page was read from: a stream
         * wiped and recreated between two pages is answered `reset`, not read on as if it
         * were the same (hb_topics_on_history keeps hcur.epoch) */
        q->cursor = u->hcur;
        q->cursor.id = u->last;
    } else {
        q->cursor = u->hcur;
        q->tail_only = u->htail;
        q->fresh = u->hfresh;
    }
    q->count = u->hcount;
    q->max_bytes = page_budget(&s->edge->cfg);
    p->cancel = q->cancel = hb_hflag_new(); /* one reference each */
    p->t0_us = hb_wall_us();
    u->hstate = HB_HREAD_INFLIGHT;
    c->hreads++;
    s->hreads++;
    if (hb_svc_request(s, q) != 0) { /* q is freed; no answer will come */
        c->hreads--;
        s->hreads--;
        hb_pending_del(s, p);
        u->token = 0;
        u->hstate = HB_HREAD_NONE;
        hb_hread_failed(c, "broker queue full");
    }
}

void hb_hread_pump(hb_svc_t *s)
{
    hb_client_t *c;
    while (s->hreads < HB_HREAD_PER_THREAD && (c = s->hq_head)) {
        hb_sub_t *u;
        s->hq_head = c->hq_next;
        if (!s->hq_head)
            s->hq_tail = NULL;
        c->hq_next = NULL;
        c->hlisted = 0;
        if (!client_may_read(c))
            continue; /* listed again when it may */
        u = c->hwait_head;
        s->hwaiting--;
        c->hwait_head = u->hnext;
        if (!c->hwait_head)
            c->hwait_tail = NULL;
        u->hnext = NULL;
        send_read(u);
        client_offer(c);
    }
}

void hb_hread_begin(hb_sub_t *u, const hb_cursor_t *cur, int flags)
{
    long batch = u->c->svc->edge->cfg.history_batch;
    u->resuming = 1;
    u->hcur = *cur;
    u->htail = (flags & HB_SUB_TAIL) != 0;
    u->hfresh = (flags & HB_SUB_FRESH) != 0;
    u->hcount = batch < HB_HREAD_FIRST_COUNT ? (uint32_t)batch : HB_HREAD_FIRST_COUNT;
    enqueue(u);
    hb_hread_pump(u->c->svc);
}

hb_sub_t *hb_hread_answered(hb_svc_t *s, hb_pending_t *p)
{
    hb_client_t *c = p->c;
    hb_sub_t *u = p->u;
    s->hreads--;
    if (p->cancelled) {
        u = NULL;
        if (c) {
            c->hreads--;
            for (hb_pending_t **pp = &c->hcancel; *pp; pp = &(*pp)->cnext)
                if (*pp == p) {
                    *pp = p->cnext;
                    break;
                }
        }
    } else {
        c->hreads--;
        u->token = 0;
        u->hstate = HB_HREAD_NONE;
    }
    hb_pending_del(s, p);
    if (c)
        client_offer(c);
    return u;
}

void hb_hread_next(hb_sub_t *u, size_t bytes, size_t n)
{
    hb_client_t *c = u->c;
    const hb_cfg_t *cfg = &c->svc->edge->cfg;
    u->hcount = hb_page_count(bytes, n, page_budget(cfg), (uint32_t)cfg->history_batch, u->hcount);
    if (c->ops->answer && u->hcount > (uint32_t)cfg->history_batch - c->qlen)
        u->hcount = (uint32_t)cfg->history_batch - c->qlen; /* one answer: at most a batch */
    u->hstate = HB_HREAD_DRAIN;
    c->hpaced++;
    if (queue_room(c))
        enqueue(u);
}

int hb_hread_poll_room(const hb_client_t *c)
{
    const hb_cfg_t *cfg = &c->svc->edge->cfg;
    return c->qlen < (uint32_t)cfg->history_batch && c->qbytes < page_budget(cfg) / 2 &&
           queue_room(c);
}

void hb_hread_cancel(hb_sub_t *u)
{
    hb_client_t *c = u->c;
    hb_svc_t *s = c->svc;
    hb_pending_t *p;
    switch (u->hstate) {
    case HB_HREAD_QUEUED:
        s->hwaiting--;
        for (hb_sub_t **pp = &c->hwait_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->hnext)
            if (*pp == u) {
                *pp = u->hnext;
                if (c->hwait_tail == u)
                    c->hwait_tail = prev;
                break;
            }
        break;
    case HB_HREAD_INFLIGHT:
        p = hb_dict_get(s->pending, &u->token, sizeof(u->token));
        if (p) { /* its slots stay taken until the answer comes, then it is dropped */
            hb_hflag_cancel(p->cancel); /* the broker skips or drops the read */
            p->u = NULL;
            p->cancelled = 1;
            p->cnext = c->hcancel;
            c->hcancel = p;
        }
        break;
    case HB_HREAD_DRAIN:
        c->hpaced--;
        break;
    default:
        break;
    }
    u->hnext = NULL;
    u->token = 0;
    u->hstate = HB_HREAD_NONE;
}

void hb_hread_client_gone(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    while (c->hcancel) {
        hb_pending_t *p = c->hcancel;
        c->hcancel = p->cnext;
        p->cnext = NULL;
        p->c = NULL;
    }
    if (c->hlisted) {
        hb_client_t *prev = NULL;
        for (hb_client_t *x = s->hq_head; x; prev = x, x = x->hq_next) {
            if (x != c)
                continue;
            if (prev)
                prev->hq_next = c->hq_next;
            else
                s->hq_head = c->hq_next;
            if (s->hq_tail == c)
                s->hq_tail = prev;
            break;
        }
        c->hlisted = 0;
    }
}

void hb_hread_drained(hb_client_t *c)
{
    /* paced subscriptions wait for room (DRAIN); queued ones may have found none when they
     * asked (a busy connection subscribing with a cursor) and are offered a slot again */
    if ((!c->hpaced && !c->hwait_head) || c->closing || !queue_room(c))
        return;
    for (uint16_t i = 0; i < c->nsubs && c->hpaced; i++) {
        hb_sub_t *u = c->subs[i];
        if (u && u->hstate == HB_HREAD_DRAIN)
            enqueue(u);
    }
    client_offer(c);
    hb_hread_pump(c->svc);
}

void hb_hread_expire(hb_svc_t *s, long long now_us)
{
    hb_pending_t *late[64];
    size_t n = 0, it = 0, klen;
    const void *k;
    void *v;
    /* collected first: the dict is not changed while it is walked */
    while (n < sizeof(late) / sizeof(late[0]) && hb_dict_next(s->pending, &it, &k, &klen, &v)) {
        hb_pending_t *p = v;
        if (p->cancel && now_us - p->t0_us > (long long)HB_HREAD_TIMEOUT_S * 1000000)
            late[n++] = p;
    }
    for (size_t i = 0; i < n; i++) {
        hb_sub_t *u = hb_hread_answered(s, late[i]);
        if (u) { /* its resume cannot go on: the client resumes from its cursor */
            hb_log_ratelimited("history-timeout", 1000, HB_LOG_WARN, "service",
                               "history read unanswered: client closed", NULL);
            hb_hread_failed(u->c, "history read timed out");
        }
    }
}

void hb_hread_failed(hb_client_t *c, const char *why)
{
    if (c->closing)
        return;
    if (c->ops && c->ops->read_failed)
        c->ops->read_failed(c, why);
    else
        hb_client_close(c, why, 1011);
}
