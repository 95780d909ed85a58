/*
 * A service thread: one lws context fed by its own SO_REUSEPORT listener, serving every client
 * transport. Everything in struct hb_svc and every client is ONLY read or written from this
 * thread, except `inq` (its own lock), `nclients` (atomic) and `drain_req` (atomic).
 *
 * Fan-out: the broker hands over one EVENT message per topic event, already encoded for every
 * transport; each subscribed client's queue takes a reference to the shared buffer of its
 * transport (no copy, no allocation per recipient). On writable, a client's queued frames are
 * coalesced into one write (http.c, ws.c).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "service.h"
#include "admit.h"
#include "ticket.h"

#include <dlfcn.h>
#include <ev.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/tcp.h> /* struct tcp_info with the byte counters */

#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_sse.h"
#include "reqcheck.h"
#include "hread.h"

#define MOD "service"
#define MSGS_PER_WAKE 512

int hb_const_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/*
 * libev, for the service threads' loops, opened privately at run time (see CMakeLists.txt):
 * the four calls the threads make themselves; lws' libev plugin binds its own.
 */
static struct {
    struct ev_loop *(*loop_new)(unsigned int flags);
    int (*run)(struct ev_loop *loop, int flags);
    void (*brk)(struct ev_loop *loop, int how);
    void (*destroy)(struct ev_loop *loop);
} evf;

/* 0 when the calls are there; main thread, before the service threads start. */
static int evf_load(void)
{
    static int state; /* 0 not tried, 1 loaded, -1 failed */
    void *h;
    if (state)
        return state > 0 ? 0 : -1;
    state = -1;
    h = dlopen("libev.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return -1;
    *(void **)&evf.loop_new = dlsym(h, "ev_loop_new");
    *(void **)&evf.run = dlsym(h, "ev_run");
    *(void **)&evf.brk = dlsym(h, "ev_break");
    *(void **)&evf.destroy = dlsym(h, "ev_loop_destroy");
    if (!evf.loop_new || !evf.run || !evf.brk || !evf.destroy)
        return -1; /* the handle stays open: lws' plugin uses the same library */
    state = 1;
    return 0;
}

/* ---- requests to the broker ---- */

int hb_svc_request(hb_svc_t *s, hb_req_t *q)
{
    int was_empty = 0;
    q->thread = s->idx;
    if (!s->edge->broker) { /* shutting down: the broker is gone */
        hb_req_free(q);
        return HB_EIO;
    }
    if (hb_queue_push(s->edge->to_broker, q, &was_empty) != 0) {
        atomic_fetch_add_explicit(&s->edge->stats.req_drops, 1, memory_order_relaxed);
        hb_req_free(q);
        return HB_ELIMIT;
    }
    hb_broker_wake(s->edge->broker);
    return 0;
}

static void topic_tell_broker(hb_svc_t *s, ltopic_t *t, hb_req_type_t type)
{
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    q->type = type;
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

/* ---- pending requests ---- */

hb_pending_t *hb_pending_add(hb_svc_t *s, hb_client_t *c, hb_sub_t *u)
{
    hb_pending_t *p = hb_xcalloc(1, sizeof(*p));
    p->t0_us = u ? 0 : hb_now_us();
    p->c = c;
    p->u = u;
    p->token = ++s->next_id;
    hb_dict_set(s->pending, &p->token, sizeof(p->token), p);
    if (!u) {
        p->cnext = c->pubs;
        c->pubs = p;
    }
    return p;
}

void hb_pending_del(hb_svc_t *s, hb_pending_t *p)
{
    if (!p)
        return;
    hb_dict_del(s->pending, &p->token, sizeof(p->token));
    if (!p->u && !p->cancelled) {
        for (hb_pending_t **pp = &p->c->pubs; *pp; pp = &(*pp)->cnext)
            if (*pp == p) {
                *pp = p->cnext;
                break;
            }
    }
    json_decref(p->echo);
    hb_hflag_unref(p->cancel);
    free(p);
}

/* ---- subscriptions ---- */

hb_sub_t *hb_sub_add(hb_client_t *c, const char *name, size_t len, const hb_cursor_t *since,
                     int tail_only)
{
    hb_svc_t *s = c->svc;
    ltopic_t *t = hb_dict_get(s->topics, name, len);
    hb_sub_t *u = hb_xcalloc(1, sizeof(*u));
    if (!t) {
        t = hb_xcalloc(1, sizeof(*t));
        memcpy(t->name, name, len);
        t->len = len;
        hb_dict_set(s->topics, name, len, t);
    }
    u->c = c;
    u->t = t;
    u->tnext = t->head;
    if (t->head)
        t->head->tprev = u;
    t->head = u;
    if (t->nsubs++ == 0 && !t->told)
        topic_tell_broker(s, t, HB_REQ_SUB);
    hb_svc_count(&s->subscriptions, 1);
    u->idx = c->nsubs;
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (!c->subs[i]) { /* reuse the slot of an earlier unsubscribe */
            u->idx = i;
            break;
        }
    if (u->idx == c->nsubs) {
        if (c->nsubs == c->capsubs) {
            c->capsubs = c->capsubs ? c->capsubs * 2 : 1;
            c->subs = hb_xrealloc(c->subs, c->capsubs * sizeof(*c->subs));
        }
        c->nsubs++;
    }
    c->subs[u->idx] = u;
    if (since || tail_only) {
        if (since) {
            u->last = since->id;
            u->have_last = 1;
        }
        hb_hread_begin(u, since ? since : &(hb_cursor_t){{0, 0}, ""}, tail_only);
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
    if (u->tprev)
        u->tprev->tnext = u->tnext;
    else
        t->head = u->tnext;
    if (u->tnext)
        u->tnext->tprev = u->tprev;
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

/* ---- client queue ---- */

static void queue_release(hb_client_t *c)
{
    while (c->qlen) {
        hb_buf_unref(c->q[c->qhead].b);
        hb_buf_unref(c->q[c->qhead].cur);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    free(c->q);
    c->q = NULL;
    c->qcap = c->qhead = 0;
    c->qbytes = 0;
    c->off = 0;
}

/*
 * Writing without a writable callback. A broker batch (svc_process_inbox) queues events to
 * many clients; asking lws for a writable callback for each costs an epoll_ctl() to arm POLLOUT,
 * an epoll wake-up and a dispatch per client and event, more than the write itself. Instead the
 * clients the batch queued to are listed and written once the batch is done (svc_flush), each
 * with one coalesced write, when lws holds none of its earlier output. What the socket does not
 * take lws keeps (at most one write) and sends on POLLOUT, and until that is gone the client is
 * choked: later events wait in its queue, which --client-queue-max/-bytes bound as before.
 * SSE streams and WebSockets only; long-poll answers,
 * closing clients and last frames (close_after_flush) keep the writable callback.
 */
static int flush_direct_ok(const hb_client_t *c)
{
    /* close_why: closing, or a WebSocket peer sent its close (lws answers it; no data after) */
    if (c->close_after_flush || c->closing || c->close_why)
        return 0;
    return c->kind == K_SSE || c->kind == K_MSSE ||
           (c->kind == K_WS && !c->close_code);
}

static void flush_add(hb_svc_t *s, hb_client_t *c)
{
    if (c->flush_listed)
        return;
    c->flush_listed = 1;
    c->flush_next = NULL;
    if (s->flush_tail)
        s->flush_tail->flush_next = c;
    else
        s->flush_head = c;
    s->flush_tail = c;
}

/* Takes a client off the flush list (it is being cleaned up). */
static void flush_remove(hb_svc_t *s, hb_client_t *c)
{
    hb_client_t *prev = NULL;
    if (!c->flush_listed)
        return;
    for (hb_client_t *x = s->flush_head; x; prev = x, x = x->flush_next) {
        if (x != c)
            continue;
        if (prev)
            prev->flush_next = c->flush_next;
        else
            s->flush_head = c->flush_next;
        if (s->flush_tail == c)
            s->flush_tail = prev;
        break;
    }
    c->flush_listed = 0;
    c->flush_next = NULL;
}

/* Writes to every listed client what the batch queued (see flush_direct_ok()). */
static void svc_flush(hb_svc_t *s)
{
    hb_client_t *c;
    while ((c = s->flush_head)) {
        int rc;
        s->flush_head = c->flush_next;
        if (!s->flush_head)
            s->flush_tail = NULL;
        c->flush_next = NULL;
        c->flush_listed = 0;
        if (!c->qlen || !flush_direct_ok(c))
            continue;
        if (lws_partial_buffered(c->wsi)) {
            /* choked: lws sends its rest on POLLOUT, then calls the writable callback */
            lws_callback_on_writable(c->wsi);
            continue;
        }
        rc = c->kind == K_WS ? hb_ws_write(s, c, c->wsi) : hb_http_sse_write(s, c, c->wsi);
        if (rc) {
            hb_client_close(c, "write failed", 0);
            continue;
        }
        if (c->qlen)
            lws_callback_on_writable(c->wsi); /* more than one write's worth */
        hb_client_drained(c);
    }
}

void hb_svc_flush_add(hb_client_t *c)
{
    flush_add(c->svc, c);
}

void hb_svc_flush(hb_svc_t *s)
{
    svc_flush(s);
}

/* The queued gauge is a sample over the clients that had a queue (svc->backlog): a client
 * joins when its queue stops being empty and leaves at the next sample that finds it empty, so
 * idle clients are never visited. */
static void backlog_add(hb_svc_t *s, hb_client_t *c)
{
    if (c->bl_listed)
        return;
    c->bl_listed = 1;
    c->bl_prev = NULL;
    c->bl_next = s->backlog;
    if (s->backlog)
        s->backlog->bl_prev = c;
    s->backlog = c;
}

static void backlog_remove(hb_svc_t *s, hb_client_t *c)
{
    if (!c->bl_listed)
        return;
    if (c->bl_prev)
        c->bl_prev->bl_next = c->bl_next;
    else
        s->backlog = c->bl_next;
    if (c->bl_next)
        c->bl_next->bl_prev = c->bl_prev;
    c->bl_prev = c->bl_next = NULL;
    c->bl_listed = 0;
}

/* Queues one shared buffer (taking new refs). 0, or -1 when the client was cut off. */
int hb_client_push(hb_client_t *c, hb_buf_t *b, hb_buf_t *cur, uint16_t idx, int ctl)
{
    hb_svc_t *s = c->svc;
    if (c->closing)
        return -1;
    if (c->qlen >= (uint32_t)s->edge->cfg.client_queue_max ||
        c->qbytes + hb_buf_len(b) > (size_t)s->edge->cfg.client_queue_bytes) {
        atomic_fetch_add_explicit(&s->edge->stats.slow_disconnects, 1, memory_order_relaxed);
        hb_client_close(c, "slow consumer: queue limit reached", 1008);
        return -1;
    }
    if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 4;
        qent_t *nq = hb_xmalloc(ncap * sizeof(*nq));
        for (uint32_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] =
        (qent_t){hb_buf_ref(b), cur ? hb_buf_ref(cur) : NULL, idx, (uint16_t)ctl};
    c->qlen++;
    c->qbytes += hb_buf_len(b);
    if (c->qlen == 1) {
        backlog_add(s, c);
        if (s->batching && flush_direct_ok(c)) {
            if (!hb_wdelay_hold(c)) /* --write-delay-ms: held, written by its timer */
                flush_add(s, c);
        } else
            lws_callback_on_writable(c->wsi);
    }
    return 0;
}

/* Closes a client: frees its queue now; lws closes the socket (WS: after the close frame). */
void hb_client_close(hb_client_t *c, const char *why, uint16_t ws_code)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_why = why; /* logged when the connection ends (conn_log_close) */
    queue_release(c);
    if (c->kind == K_WS && ws_code) {
        c->close_code = ws_code;
        lws_callback_on_writable(c->wsi);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
    } else {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* One event for one subscription: in ID order, never twice. */
static void sub_deliver(hb_sub_t *u, const hb_ev_t *ev, int ctl)
{
    hb_client_t *c = u->c;
    hb_buf_t *b;
    if (!ctl) {
        if (u->have_last && hb_id_cmp(&ev->id, &u->last) <= 0)
            return;
        u->last = ev->id;
        u->have_last = 1;
    }
    switch (c->kind) {
    case K_SSE:
        b = ev->sse;
        break;
    case K_MSSE:
        b = ev->msse;
        break;
    case K_POLL:
        if (ctl) {
            c->poll_gap = ev->gap == HB_GAP_RESET ? "reset" : "trimmed";
            lws_callback_on_writable(c->wsi); /* answered from the writable callback */
            return;
        }
        b = ev->json;
        break;
    case K_WS:
        b = ev->ws;
        break;
    default:
        b = ev->json;
        break;
    }
    /* only multi-topic SSE and long-poll write the cursor apart: no second ref for others */
    if (hb_client_push(c, b, ctl || (c->kind != K_MSSE && c->kind != K_POLL) ? NULL : ev->cur,
                       u->idx, ctl) == 0) {
        hb_svc_count(&c->svc->deliveries, 1);
        c->delivered++;
    }
}

static void sub_pend(hb_sub_t *u, hb_msg_t *m)
{
    hb_svc_t *s = u->c->svc;
    if (u->poll_full)
        return; /* read from history by the next poll */
    if (u->npend >= (uint32_t)s->edge->cfg.client_queue_max) {
        atomic_fetch_add_explicit(&s->edge->stats.slow_disconnects, 1, memory_order_relaxed);
        hb_client_close(u->c, "too many live events while resuming", 1008);
        return;
    }
    if (u->npend == u->cappend) {
        u->cappend = u->cappend ? u->cappend * 2 : 8;
        u->pend = hb_xrealloc(u->pend, u->cappend * sizeof(*u->pend));
    }
    u->pend[u->npend++] = hb_msg_ref(m);
}

/* ---- messages from the broker ---- */

static void on_event(hb_svc_t *s, hb_msg_t *m)
{
    ltopic_t *t = hb_dict_get(s->topics, m->topic, m->topic_len);
    hb_sub_t *u, *next;
    if (!t)
        return;
    if (t->have_seq && m->seq != t->seq + 1) {
        /* An event for this topic was dropped on the way: its clients resume from history. */
        for (u = t->head; u; u = u->tnext)
            hb_client_close(u->c, "event lost in hand-off", 1011);
    }
    t->seq = m->seq;
    t->have_seq = 1;
    for (u = t->head; u; u = next) {
        next = u->tnext;
        if (u->c->closing)
            continue;
        if (u->resuming)
            sub_pend(u, m);
        else
            sub_deliver(u, &m->ev, m->control);
    }
}

static void sub_finish_resume(hb_sub_t *u)
{
    u->resuming = 0;
    for (uint32_t i = 0; i < u->npend && !u->c->closing; i++)
        sub_deliver(u, &u->pend[i]->ev, u->pend[i]->control);
    sub_release_pend(u);
    if (u->c->kind == K_POLL)
        lws_callback_on_writable(u->c->wsi); /* a long-poll may answer now */
}

/* A page of u's history: queued to the client; then the next page (paced), or live. */
static void on_history(hb_svc_t *s, hb_sub_t *u, hb_msg_t *m)
{
    hb_client_t *c = u->c;
    size_t q0 = c->qbytes;
    (void)s;
    if (m->error) {
        hb_client_close(c, "history read failed", 1011);
        return;
    }
    if (c->kind == K_POLL && m->tail[0] && !c->poll_next[0])
        memcpy(c->poll_next, m->tail, sizeof(c->poll_next));
    if (m->gap != HB_GAP_NONE && !u->history_started) {
        hb_ev_t g;
        if (hb_ev_encode_gap(&g, u->t->name, u->t->len, m->gap) == 0) {
            sub_deliver(u, &g, 1);
            hb_ev_release(&g);
        }
        if (m->gap == HB_GAP_RESET) {
            u->have_last = 0;
            /* a long-poll continues from the stream's tail unless this page has events */
            if (c->kind == K_POLL && m->tail[0])
                memcpy(c->poll_next, m->tail, sizeof(c->poll_next));
        }
    }
    u->history_started = 1;
    for (size_t i = 0; i < m->n && !c->closing; i++)
        sub_deliver(u, &m->evs[i], 0);
    if (c->closing)
        return;
    if (m->more) {
        if (c->kind != K_POLL || hb_hread_poll_room(c)) {
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
        lws_callback_on_writable(c->wsi); /* answers (hb_poll_maybe_answer) */
        return;
    }
    sub_finish_resume(u);
}

/* Called by the writers after a write: continue paged history reads waiting for room. */
void hb_client_drained(hb_client_t *c)
{
    hb_hread_drained(c);
}

static void svc_process_inbox(hb_svc_t *s)
{
    void *items[MSGS_PER_WAKE];
    size_t n = hb_queue_pop(s->inq, items, MSGS_PER_WAKE);
    s->batching = 1;
    for (size_t i = 0; i < n; i++) {
        hb_msg_t *m = items[i];
        if (m->type == HB_MSG_EVENT) {
            on_event(s, m);
        } else {
            uint64_t token = m->client_id;
            hb_pending_t *p = hb_dict_get(s->pending, &token, sizeof(token));
            if (p && m->type == HB_MSG_HISTORY && (p->u || p->cancelled)) {
                /* frees the read's slots (and p) even when nobody takes the page now */
                hb_sub_t *u = hb_hread_answered(s, p);
                if (u && !u->c->closing)
                    on_history(s, u, m);
            } else if (p && !p->c->closing) {
                if (m->type == HB_MSG_PUBLISHED && p->c->kind == K_WS)
                    hb_ws_on_published(s, p, m);
                else if (m->type == HB_MSG_PUBLISHED)
                    hb_http_on_published(s, p, m);
                else if (m->type == HB_MSG_TICKET)
                    hb_ticket_on_reply(s, p, m);
            }
        }
        hb_msg_unref(m);
    }
    s->batching = 0;
    svc_flush(s);
    hb_hread_pump(s);
    if (n == MSGS_PER_WAKE)
        lws_cancel_service(s->ctx); /* bounded work per wake-up: come back for the rest */
    if (atomic_load(&s->drain_req) && !s->draining) {
        size_t it = 0, klen;
        const void *k;
        void *v;
        int i = 0;
        s->draining = 1;
        while (hb_dict_next(s->topics, &it, &k, &klen, &v)) {
            for (hb_sub_t *u = ((ltopic_t *)v)->head; u; u = u->tnext) {
                hb_client_t *c = u->c;
                if (c->closing || c->close_after_flush)
                    continue;
                if (c->kind == K_WS) {
                    hb_client_close(c, "draining", 1001);
                } else if (c->kind == K_POLL) {
                    c->poll_ready = 2; /* answer with what it has, from its writable */
                    lws_callback_on_writable(c->wsi);
                } else {
                    /* a jittered retry so the clients do not all come back at once */
                    hb_client_push(c, s->drain_frames[i++ % HB_DRAIN_VARIANTS], NULL, 0, 1);
                    c->close_after_flush = 1;
                    lws_callback_on_writable(c->wsi);
                }
            }
        }
    }
}

/* ---- periodic: retry of refused broker requests, gauges; client timers are ctimer.c's ---- */

/* Clients that had a queue: sum their queues, drop those now empty. */
static unsigned long long backlog_sample(hb_svc_t *s)
{
    unsigned long long queued = 0;
    for (hb_client_t *c = s->backlog, *next; c; c = next) {
        next = c->bl_next;
        queued += c->qlen;
        if (!c->qlen)
            backlog_remove(s, c);
    }
    return queued;
}

/* A SUB/UNSUB could not be queued: ask again, free the topics nobody wants any more. */
static void topics_retry(hb_svc_t *s)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    s->topics_dirty = 0; /* set again by a request that fails again */
    while (hb_dict_next(s->topics, &it, &k, &klen, &v)) {
        ltopic_t *t = v;
        if (t->dirty)
            topic_tell_broker(s, t, t->nsubs ? HB_REQ_SUB : HB_REQ_UNSUB);
        topic_maybe_free(s, t);
    }
}

static void on_housekeeping(lws_sorted_usec_list_t *sul)
{
    hb_svc_t *s = lws_container_of(sul, hb_svc_t, sul_hb);
    lws_usec_t now = lws_now_usecs();
    unsigned slice = ++s->ticks % 4;
    if (s->topics_dirty)
        topics_retry(s);
    hb_ctimer_tick(s, now);
    atomic_store_explicit(&s->queued, backlog_sample(s), memory_order_relaxed);
    hb_admit_tick(s->admit);
    if (slice == 0)
        hb_hread_expire(s, hb_now_us());
    atomic_store_explicit(&s->hist_inflight, s->hreads, memory_order_relaxed);
    atomic_store_explicit(&s->hist_waiting, s->hwaiting, memory_order_relaxed);
    hb_hread_pump(s);
    lws_sul_schedule(s->ctx, 0, &s->sul_hb, on_housekeeping, HB_SVC_TICK_US);
}

/* ---- admission (admit.c) ---- */

int hb_svc_admit(hb_svc_t *s, struct lws *wsi)
{
    if (s->draining)
        return 0;
    if (hb_svc_total_clients(s) >= (size_t)s->edge->conn_limit) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_max_conn, 1, memory_order_relaxed);
        return 0;
    }
    if (hb_admit_ip_over(s->admit, wsi)) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_per_ip, 1, memory_order_relaxed);
        hb_log_ratelimited("per-ip", 1000, HB_LOG_WARN, MOD,
                           "connection refused: per-address limit", NULL);
        return 0;
    }
    return 1;
}

/* ---- lws glue ---- */

unsigned long long hb_svc_sum(hb_svc_t *s, int which)
{
    unsigned long long n = 0;
    for (int i = 0; i < s->edge->nthreads; i++) {
        hb_svc_t *t = s->edge->svcs[i];
        n += atomic_load_explicit(which ? &t->bytes_out : &t->deliveries, memory_order_relaxed);
    }
    return n;
}

size_t hb_svc_total_clients(hb_svc_t *s)
{
    size_t total = 0;
    for (int i = 0; i < s->edge->nthreads; i++)
        total += hb_svc_clients(s->edge->svcs[i]);
    return total;
}

/* ---- connection log: one debug line when a client opens, one when it ends ---- */

static const char *kind_name(kind_t k)
{
    switch (k) {
    case K_SSE:
        return "sse";
    case K_MSSE:
        return "sse-multi";
    case K_WS:
        return "ws";
    case K_POLL:
        return "poll";
    default:
        return "http";
    }
}

static void conn_log_open(hb_client_t *c, kind_t kind)
{
    char peer[64] = "";
    c->opened = lws_now_usecs();
    if (!hb_log_enabled(HB_LOG_DEBUG))
        return;
    lws_get_peer_simple(c->wsi, peer, sizeof(peer));
    hb_log_debug(MOD, "connection open", "{s:s,s:s,s:i,s:I,s:b}", "transport", kind_name(kind),
                 "peer", peer, "thread", c->svc->idx, "conn", (json_int_t)c->id, "tls",
                 c->svc->tls);
}

/* Bytes on the wire come from the kernel (TCP_INFO: acknowledged by the peer, received), so the
 * write path counts nothing per client; they include HTTP framing and TLS records. */
static void conn_log_close(hb_client_t *c)
{
    char peer[64] = "";
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    int fd = lws_get_socket_fd(c->wsi);
    if (!hb_log_enabled(HB_LOG_DEBUG))
        return;
    memset(&ti, 0, sizeof(ti));
    if (fd >= 0)
        getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl);
    lws_get_peer_simple(c->wsi, peer, sizeof(peer));
    hb_log_debug(MOD, "connection closed", "{s:s,s:s,s:i,s:I,s:b,s:s,s:I,s:I,s:I,s:I}", "transport",
                 kind_name((kind_t)c->counted), "peer", peer, "thread", c->svc->idx, "conn",
                 (json_int_t)c->id, "tls", c->svc->tls, "reason",
                 c->close_why ? c->close_why : "connection closed", "duration_ms",
                 (json_int_t)((lws_now_usecs() - c->opened) / 1000), "events",
                 (json_int_t)c->delivered, "bytes_out", (json_int_t)ti.tcpi_bytes_acked, "bytes_in",
                 (json_int_t)ti.tcpi_bytes_received);
}

void hb_client_count(hb_client_t *c, kind_t kind)
{
    hb_stats_t *st = &c->svc->edge->stats;
    c->counted = (uint8_t)kind;
    conn_log_open(c, kind);
    hb_ctimer_start(c, kind);
    atomic_fetch_add(&c->svc->nclients, 1);
    atomic_fetch_add_explicit(&st->connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(kind == K_WS     ? &st->conn_ws
                              : kind == K_POLL ? &st->conn_poll
                                               : &st->conn_sse,
                              1, memory_order_relaxed);
}

static void client_cleanup(hb_svc_t *s, hb_client_t *c)
{
    hb_stats_t *st = &s->edge->stats;
    if (c->cleaned)
        return;
    c->cleaned = 1;
    flush_remove(s, c);
    hb_wdelay_remove(s, c);
    backlog_remove(s, c);
    hb_ctimer_end(s, c);
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (c->subs[i])
            hb_sub_remove(c, c->subs[i]);
    free(c->subs);
    c->subs = NULL;
    hb_hread_client_gone(c);
    while (c->pubs)
        hb_pending_del(s, c->pubs);
    queue_release(c);
    free(c->rx);
    c->rx = NULL;
    hb_jwt_free(c->jwt);
    c->jwt = NULL;
    if (c->counted) {
        conn_log_close(c);
        atomic_fetch_sub(&s->nclients, 1);
        atomic_fetch_sub_explicit(&st->connections, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(c->counted == K_WS     ? &st->conn_ws
                                  : c->counted == K_POLL ? &st->conn_poll
                                                         : &st->conn_sse,
                                  1, memory_order_relaxed);
    }
}

/* SIGHUP (main.c checked the pair): swap it into this thread's SSL_CTX for new handshakes. */
static void svc_tls_reload(hb_svc_t *s)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    if (s->tls)
        lws_tls_cert_updated(s->ctx, cfg->tls_cert, cfg->tls_key, NULL, 0, NULL, 0);
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    hb_svc_t *s = ctx ? lws_context_user(ctx) : NULL;
    hb_client_t *c = user;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s && atomic_exchange(&s->tls_reload, 0))
            svc_tls_reload(s);
        if (s)
            svc_process_inbox(s);
        if (s && s->evloop && atomic_load(&s->stop))
            evf.brk(s->evloop, EVBREAK_ALL);
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        if (s)
            hb_admit_accept(s->admit);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s && s->admit)
            hb_admit_destroyed(s->admit, wsi);
        break;
    case LWS_CALLBACK_HTTP:
        if (!c)
            return -1;
        /* the previous request is not finished (its body, or its answer, is pending): lws
         * parsed a pipelined head (or acted again on the old one) before its time. It is
         * not served; the pending answer goes out and the connection closes (reqcheck.h). */
        if (c->req != REQ_IDLE && (c->kind == K_SIMPLE || c->kind == K_PUBLISH)) {
            c->close_after_flush = 1;
            if (!hb_req_lws_body(wsi))
                return 0;
            /* lws would take its body from its buffer and loop for ever (reqcheck.h):
             * what is answered goes out now, the pipelined request is refused, and lws
             * closes the connection before reading any body */
            if (c->kind == K_SIMPLE && !c->cleaned)
                hb_http_answer_now(c);
            return hb_req_refuse_pipelined(s, wsi);
        }
        /* a later request with a body, parsed from bytes lws kept: the same loop */
        if (hb_admit_was_served(s->admit, wsi) && hb_req_lws_body(wsi) && hb_req_buffered(wsi))
            return hb_req_refuse_pipelined(s, wsi);
        if (c->kind != K_NONE && !c->cleaned) {
            if (!c->close_why)
                c->close_why = "next request on the connection";
            client_cleanup(s, c);
        }
        memset(c, 0, sizeof(*c));
        c->svc = s;
        c->wsi = wsi;
        c->id = ++s->next_id;
        hb_admit_served(s->admit, wsi);
        return hb_http_on_request(s, c, wsi, (const char *)in);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* lws asks for websocket and h2c only (it answers other upgrades itself): anything but
         * websocket is refused (reqcheck.c), then the WebSocket version is checked (ws.c) */
        if (!s || hb_req_confirm_upgrade(s, wsi, in))
            return -1;
        return hb_ws_confirm_upgrade(s, wsi, in);
    case LWS_CALLBACK_RAW_ADOPT:
        /* only a CONNECT request gets here: lws 4.1 makes it a raw socket before any HTTP
         * callback (the listener is adopted as a raw file, accepted sockets as HTTP) */
        return hb_req_refuse_raw(s, wsi);
    case LWS_CALLBACK_RAW_RX:
    case LWS_CALLBACK_RAW_WRITEABLE:
        return -1; /* not reached: the raw socket is closed at adoption */
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_RAW_SKT_BIND_PROTOCOL:
    case LWS_CALLBACK_RAW_SKT_DROP_PROTOCOL:
        return 0; /* its user data is fresh (lws freed the HTTP one: HTTP_DROP_PROTOCOL) */
    case LWS_CALLBACK_HTTP_BODY:
        return c ? hb_http_on_body(s, c, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return c ? hb_http_on_body_done(s, c) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? hb_http_writeable(s, c, wsi) : -1;
    case LWS_CALLBACK_TIMER:
        if (c && c->kind == K_POLL)
            hb_poll_on_timer(c);
        else if (c && !c->cleaned)
            hb_auth_on_timer(c);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        /* closed before a whole request arrived: handshake timeout (slowloris), oversized
         * headers or bytes that are not HTTP; lws answers or closes them itself */
        if (s && s->admit && hb_admit_closed_head(s->admit, wsi))
            atomic_fetch_add_explicit(&s->edge->stats.rejected_incomplete, 1, memory_order_relaxed);
        if (c && s)
            client_cleanup(s, c);
        break;
    case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
        /* after a kept-alive transaction (and before each request): idle until the next */
        if (s && s->admit)
            hb_admit_idle(s->admit, wsi);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED:
        if (c && s)
            client_cleanup(s, c);
        break;
    case LWS_CALLBACK_ADD_HEADERS: {
        /* the WebSocket upgrade (101) names the node too */
        struct lws_process_html_args *args = in;
        unsigned char *p = (unsigned char *)args->p;
        if (s && !lws_add_http_header_by_name(wsi, (const unsigned char *)"x-herald-node:",
                                              (const unsigned char *)s->edge->cfg.node_id,
                                              (int)strlen(s->edge->cfg.node_id), &p,
                                              p + args->max_len)) {
            args->max_len -= lws_ptr_diff(p, args->p);
            args->p = (char *)p;
        }
        return 0;
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (s)
            hb_admit_served(s->admit, wsi);
        return s ? hb_ws_filter(s, wsi) : -1;
    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        memset(c, 0, sizeof(*c));
        c->svc = s;
        c->wsi = wsi;
        c->id = ++s->next_id;
        hb_ws_established(s, c, wsi);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return c ? hb_ws_peer_close(c, wsi, in, len) : 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c)
            return -1;
        hb_ctimer_ws_seen(c);
        return hb_ws_receive(s, c, wsi, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c)
            hb_ctimer_ws_seen(c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? hb_ctimer_ws_writeable(s, c, wsi) : -1;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    /* tx_packet_size: lws hands at most this much of one lws_write to send(2) and keeps the
     * rest for the next POLLOUT; 0 means the rx buffer size. HTTP keeps 4 KiB: what a stalled
     * SSE reader's socket absorbs past its queue stays small, so it is cut off in time
     * (test_fault_slow_consumer). WebSocket uses the whole write buffer: with its small rx
     * buffer one coalesced write would otherwise cost dozens of sends and a copy. */
    {"http", on_lws, sizeof(hb_client_t), 0, 0, NULL, 0},
    /* rx buffer: lws allocates it per WebSocket connection at the upgrade and keeps it for the
     * connection's life, so it is most of what an idle WebSocket costs. Client messages are
     * small and a larger one arrives in pieces that ws.c gathers (up to --max-message-bytes);
     * lws needs a whole control frame (at most 125 bytes of payload) in it. */
    {"herald.v1", on_lws, sizeof(hb_client_t), HB_SVC_WS_RX, 0, NULL, HB_SVC_WBUF},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* No WebSocket extension is offered. permessage-deflate (lws 4.1.6's) is off: a client that
 * sends a compressible message over --max-message-bytes drives its inflate path into an
 * assertion that aborts the process (extension-permessage-deflate.c:351) once the edge closes
 * the connection, or, closed the lws way, into a 5 s busy drain of the thread. Until the edge
 * can bound inflation itself, frames travel uncompressed; a client that offers the extension
 * gets a 101 without it (RFC 7692 lets a server decline). */

/* ---- lifecycle ---- */

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    if (strstr(line, "not h2 substream"))
        return; /* lws_http_mark_sse() on HTTP/1: expected, harmless */
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    hb_log_ratelimited("lws", 1000, level == LLL_ERR ? HB_LOG_ERROR : HB_LOG_WARN, "lws",
                       "libwebsockets", "{s:s%}", "line", line, n);
}

static int listen_socket(hb_edge_t *edge)
{
    const hb_cfg_t *cfg = &edge->cfg;
    int v6 = strchr(cfg->listen_host, ':') != NULL, one = 1;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    memset(&ss, 0, sizeof(ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cfg->listen_port);
        inet_pton(AF_INET6, cfg->listen_host, &a->sin6_addr);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cfg->listen_port);
        inet_pton(AF_INET, cfg->listen_host, &a->sin_addr);
        sl = sizeof(*a);
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4096) != 0) {
        hb_log_error(MOD, "cannot listen", "{s:s}", "err", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Mozilla's "intermediate" TLS 1.2 suites (all forward secret, AEAD); TLS 1.3 keeps
 * OpenSSL's defaults. */
#define HB_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/*
 * TLS on the edge's own vhost (--tls-cert/--tls-key, checked by main before listening):
 * TLS 1.2 or newer, no compression, no renegotiation, HTTP/1.1 only through ALPN (SSE,
 * long-poll and the WebSocket upgrade are served over HTTP/1.1). Each service thread's context
 * loads the pair into its own SSL_CTX.
 */
static void svc_tls_options(hb_svc_t *s, struct lws_context_creation_info *info)
{
    s->tls = 1;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = s->edge->cfg.tls_cert;
    info->ssl_private_key_filepath = s->edge->cfg.tls_key;
    info->ssl_cipher_list = HB_TLS12_CIPHERS;
    info->ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                            SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                            SSL_OP_CIPHER_SERVER_PREFERENCE;
    info->alpn = "http/1.1";
    /* The edge makes no TLS connections. Without a client context of ours, lws would build
     * one per context and load the system's CA store into it (and not free all of it). */
    s->tls_client_ctx = SSL_CTX_new(TLS_client_method());
    info->provided_client_ssl_ctx = s->tls_client_ctx;
}

hb_svc_t *hb_svc_new(hb_edge_t *edge, int idx)
{
    struct lws_context_creation_info info;
    void *loops[1];
    hb_svc_t *s = hb_xcalloc(1, sizeof(*s));
    char retry[64];
    int n;

    s->edge = edge;
    s->idx = idx;
    s->listen_fd = -1;
    s->peer_ep = -1;
    s->inq = hb_queue_new(65536);
    s->topics = hb_dict_new();
    s->pending = hb_dict_new();
    n = hb_sse_format_retry(retry, sizeof(retry), (unsigned)edge->cfg.retry_ms);
    s->retry_frame = hb_buf_from(retry, (size_t)n);
    s->hb_frame = hb_buf_from(": hb\n\n", 6);
    s->expired_frame = hb_buf_from(": token expired\n\n", 17);
    for (int i = 0; i < HB_DRAIN_VARIANTS; i++) {
        unsigned ms = (unsigned)edge->cfg.retry_ms / 2 +
                      (unsigned)(i * edge->cfg.retry_ms / HB_DRAIN_VARIANTS);
        n = hb_sse_format_retry(retry, sizeof(retry), ms);
        s->drain_frames[i] = hb_buf_from(retry, (size_t)n);
    }

    /* lws 4.1 cannot share a port between contexts, so each thread owns a SO_REUSEPORT
     * listener and adopts what it accepts; the kernel spreads connections over the threads. */
    s->listen_fd = listen_socket(edge);
    if (s->listen_fd < 0) {
        hb_svc_free(s);
        return NULL;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.extensions = NULL;
    info.user = s;
    info.max_http_header_data = (unsigned short)edge->cfg.max_header_bytes;
    /* a header table for every socket the edge may hold (lws allocates them as sockets need
     * them): with a fixed pool, idle sockets holding every table kept new clients waiting */
    info.max_http_header_pool = 0;
    info.max_http_header_pool2 = (unsigned)edge->sock_limit;
    info.timeout_secs = (unsigned)edge->cfg.handshake_timeout;
    info.timeout_secs_ah_idle = (unsigned)edge->cfg.handshake_timeout; /* slowloris */
    info.keepalive_timeout = edge->cfg.idle_timeout;
    /* WebSocket pings are the edge's own (ctimer.c): a policy of zeros, rather than
     * none (lws' default pings every 300 s), keeps lws from arming a validity timer per
     * connection */
    info.retry_and_idle_policy = &s->idle_policy;
    /* lws indexes its sockets by descriptor number: any number under RLIMIT_NOFILE */
    info.fd_limit_per_thread = (unsigned)edge->nofile;
    info.vhost_name = "herald";
    if (edge->cfg.tls_cert[0])
        svc_tls_options(s, &info);
    /* lws' built-in loop polls every descriptor on each turn (poll(2)): at 10,000 connections
     * a turn costs milliseconds. Its libev event-lib plugin (libwebsockets-evlib-ev) uses epoll.
     * The loop is ours ("foreign"), one per thread: an lws-made libev loop would claim SIGINT,
     * which libev lets only one loop of the process do. */
    s->evloop = evf_load() == 0 ? evf.loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK) : NULL;
    if (s->evloop) {
        loops[0] = s->evloop;
        info.foreign_loops = loops;
        info.options |= LWS_SERVER_OPTION_LIBEV;
        s->ctx = lws_create_context(&info);
    }
    if (!s->ctx) {
        if (s->evloop)
            evf.destroy(s->evloop);
        s->evloop = NULL;
        info.foreign_loops = NULL;
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        s->ctx = lws_create_context(&info);
        if (s->ctx && idx == 0)
            hb_log_warn(MOD,
                        "libwebsockets' libev plugin is missing (install libwebsockets-evlib-ev): "
                        "using poll(2), which slows down with many connections",
                        NULL);
    }
    if (!s->ctx) {
        hb_svc_free(s);
        return NULL;
    }
    s->vhost = lws_get_vhost_by_name(s->ctx, "herald");
    if (!s->vhost || !(s->admit = hb_admit_new(edge, s->vhost, s->listen_fd, s->tls))) {
        hb_svc_free(s);
        return NULL;
    }
    hb_ctimer_init(s);
    lws_sul_schedule(s->ctx, 0, &s->sul_hb, on_housekeeping, HB_SVC_TICK_US);
    return s;
}

static void *svc_main(void *arg)
{
    hb_svc_t *s = arg;
    while (!atomic_load(&s->stop)) {
        if (s->evloop)
            evf.run(s->evloop, 0); /* until hb_svc_join() breaks it */
        else if (lws_service(s->ctx, 0) < 0)
            break;
    }
    return NULL;
}

int hb_svc_start(hb_svc_t *s)
{
    char name[16];
    if (pthread_create(&s->thread, NULL, svc_main, s) != 0)
        return HB_EIO;
    snprintf(name, sizeof(name), "hb-svc-%d", s->idx); /* in top -H, /proc/<pid>/task */
    pthread_setname_np(s->thread, name);
    s->started = 1;
    return 0;
}

int hb_svc_push(hb_svc_t *s, hb_msg_t *m)
{
    int was_empty = 0;
    if (hb_queue_push(s->inq, m, &was_empty) != 0)
        return HB_ELIMIT;
    if (was_empty)
        lws_cancel_service(s->ctx);
    return 0;
}

void hb_svc_tls_reload(hb_svc_t *s)
{
    atomic_store(&s->tls_reload, 1);
    lws_cancel_service(s->ctx);
}

void hb_svc_drain(hb_svc_t *s)
{
    atomic_store(&s->drain_req, 1);
    lws_cancel_service(s->ctx);
}

size_t hb_svc_clients(hb_svc_t *s)
{
    return atomic_load(&s->nclients);
}

void hb_svc_join(hb_svc_t *s)
{
    if (!s || !s->started)
        return;
    atomic_store(&s->stop, 1);
    lws_cancel_service(s->ctx);
    pthread_join(s->thread, NULL);
    s->started = 0;
}

void hb_svc_free(hb_svc_t *s)
{
    void *items[256];
    size_t n, it = 0, klen;
    const void *k;
    void *v;
    if (!s)
        return;
    hb_svc_join(s);
    if (s->ctx)
        lws_context_destroy(s->ctx); /* closes every client: their cleanup runs here */
    else if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->evloop)
        evf.destroy(s->evloop);
    hb_admit_free(s->admit);         /* after lws_context_destroy(): its callbacks use it */
    hb_ctimer_free(s);
    SSL_CTX_free(s->tls_client_ctx); /* lws never frees a provided one */
    while ((n = hb_queue_pop(s->inq, items, 256)) > 0)
        for (size_t i = 0; i < n; i++)
            hb_msg_unref(items[i]);
    hb_queue_free(s->inq);
    while (hb_dict_next(s->topics, &it, &k, &klen, &v))
        free(v);
    it = 0;
    while (hb_dict_next(s->pending, &it, &k, &klen, &v)) {
        json_decref(((hb_pending_t *)v)->echo);
        hb_hflag_unref(((hb_pending_t *)v)->cancel);
        free(v);
    }
    hb_dict_free(s->topics);
    hb_dict_free(s->pending);
    hb_buf_unref(s->retry_frame);
    hb_buf_unref(s->hb_frame);
    hb_buf_unref(s->expired_frame);
    for (int i = 0; i < HB_DRAIN_VARIANTS; i++)
        hb_buf_unref(s->drain_frames[i]);
    free(s);
}
