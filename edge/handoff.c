/*
 * The hand-off between the broker thread and the service threads (see handoff.h): messages,
 * requests, history cancel flags, the two queues' push-and-wake, and what one thread reads of
 * the other. Calls into neither thread's files (only hb_queue, libevent's event_active() and
 * lws_cancel_service(), which are safe from any thread).
 */
#include "handoff.h"

#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include <event2/event.h>
#include <libwebsockets.h>

#include "broker.h"
#include "hb_err.h"
#include "hb_mem.h"
#include "service.h"

hb_msg_t *hb_msg_new(hb_msg_type_t type, const char *topic, size_t topic_len)
{
    hb_msg_t *m = hb_xcalloc(1, sizeof(*m));
    m->type = type;
    atomic_init(&m->refs, 1);
    if (topic_len > HB_TOPIC_MAX)
        topic_len = HB_TOPIC_MAX;
    memcpy(m->topic, topic, topic_len);
    m->topic_len = topic_len;
    return m;
}

hb_msg_t *hb_msg_ref(hb_msg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void hb_msg_unref(hb_msg_t *m)
{
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    hb_ev_release(&m->ev);
    for (size_t i = 0; i < m->n; i++)
        hb_ev_release(&m->evs[i]);
    free(m->evs);
    free(m->blob);
    free(m);
}

void hb_req_free(hb_req_t *q)
{
    if (!q)
        return;
    free(q->payload);
    hb_hflag_unref(q->cancel);
    free(q);
}

/* A history read's cancel flag (edge.h): two references, one per thread. */
struct hb_hflag {
    atomic_int refs, cancelled;
};

hb_hflag_t *hb_hflag_new(void)
{
    hb_hflag_t *f = hb_xmalloc(sizeof(*f));
    atomic_init(&f->refs, 2);
    atomic_init(&f->cancelled, 0);
    return f;
}

void hb_hflag_cancel(hb_hflag_t *f)
{
    if (f)
        atomic_store_explicit(&f->cancelled, 1, memory_order_relaxed);
}

int hb_hflag_cancelled(const hb_hflag_t *f)
{
    return f && atomic_load_explicit(&f->cancelled, memory_order_relaxed);
}

void hb_hflag_unref(hb_hflag_t *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

/* ---- the queues ---- */

/* Queues m for s (the answers' reserve too when `reserved`), waking s when its queue was
 * empty. 0, or HB_ELIMIT (m is still the caller's). */
static int push_to(hb_svc_t *s, hb_msg_t *m, int reserved)
{
    int was_empty = 0;
    if ((reserved ? hb_queue_push_reserved(s->inq, m, &was_empty)
                  : hb_queue_push(s->inq, m, &was_empty)) != 0)
        return HB_ELIMIT;
    if (was_empty)
        lws_cancel_service(s->ctx);
    return 0;
}

int hb_svc_push(hb_svc_t *s, hb_msg_t *m)
{
    return push_to(s, m, 0);
}

void hb_svc_answer(hb_svc_t *s, hb_msg_t *m)
{
    if (push_to(s, m, 1) != 0) {
        atomic_fetch_add_explicit(&s->edge->stats.queue_drops, 1, memory_order_relaxed);
    }
}

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
    if (was_empty) /* else a wake-up is on its way and its pop takes this one too */
        hb_broker_wake(s->edge->broker);
    return 0;
}

void hb_broker_wake(hb_broker_t *b)
{
    uint64_t one = 1;
    if (b->wake_fd < 0)
        event_active(b->wake, EV_READ, 0);
    else if (write(b->wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is at its maximum, so the broker is woken anyway */
    }
}

/* ---- what one thread reads or asks of the other ---- */

void hb_svc_drain(hb_svc_t *s)
{
    atomic_store(&s->drain_req, 1);
    lws_cancel_service(s->ctx);
}

size_t hb_svc_clients(hb_svc_t *s)
{
    return atomic_load(&s->nclients);
}

void hb_broker_master(hb_broker_t *b, char *out, size_t cap, unsigned long long *switches)
{
    pthread_mutex_lock(&b->master_lock);
    if (b->master_port)
        snprintf(out, cap, "%s:%d", b->master_host, b->master_port);
    else if (cap)
        out[0] = '\0';
    if (switches)
        *switches = b->master_switches;
    pthread_mutex_unlock(&b->master_lock);
}
