/* Opt-in write coalescing of the service threads (--write-delay-ms; service.h: hb_wdelay_*).
 * {service thread} */

#include "service.h"

#include "client.h"

/*
 * Without a delay, a client's events are written as soon as the broker batch that queued them is
 * done (client.c: hb_svc_flush): on a hot topic that is one write (and one send(2), one wake-up
 * of the peer) per batch and client, often one per event. With --write-delay-ms D > 0, a client
 * whose queue starts in a batch less than D after its last release is held instead: it joins
 * this thread's held list, and the list's timer releases it to svc_flush() once D has passed
 * since that last release; everything queued meanwhile then goes out as one coalesced write
 * (HB_SVC_WBUF bytes; more when more is queued). So a client gets at most one write per D.
 *
 * The first event after a quiet spell (nothing released for D) is written at once: a topic
 * that is not hot pays no latency at all, only clients that already got something in the last
 * D ms wait, and for them the wait is what the flag trades. (Holding every first event for D
 * would add D to every event of a quiet topic and save nothing: there is nothing to coalesce.)
 *
 * Nothing changes what is queued: events stay in the client's one queue, in order, bounded by
 * --client-queue-max/-bytes as before (a client over its bound is cut off by hb_client_push());
 * holding only postpones the writer. A closing client, or one whose last frames go out from its
 * writable callback, is not held (flush_direct_ok()), and long-poll never is.
 *
 * One timer per thread, not one per client: arming an lws_sul walks lws' sorted list of the
 * thread's timers, so N held clients would cost N walks. The held list is in hold order; each
 * entry is due at its last release + D, which lies within D of the moment it was held. The
 * timer is set to the head's due time and releases entries from the head while they are due.
 * An entry is therefore never released early, and never later than the head's due time, which
 * is at most D after the head was held, before it: every event waits at most D (plus the
 * timer's own lateness). Removal (a client cleaned up) is O(1).
 */

static hb_client_t *held_first(hb_svc_t *s)
{
    hb_list_t *n = hb_list_first(&s->wd_held);
    return n ? hb_list_container(n, hb_client_t, wd_link) : NULL;
}

static void on_due(lws_sorted_usec_list_t *sul);

/* When a held client is due: its last release + the delay (wd_last does not change while it
 * is held). */
static lws_usec_t held_due(const hb_svc_t *s, const hb_client_t *c)
{
    return c->wd_last + (lws_usec_t)s->edge->cfg.write_delay_ms * 1000;
}

static void timer_arm(hb_svc_t *s, lws_usec_t now)
{
    lws_usec_t us = held_due(s, held_first(s)) - now;
    lws_sul_schedule(s->ctx, 0, &s->sul_wd, on_due, us > 0 ? us : 1);
}

/* The head is due: release every due client from the head to the writer, then write them. */
static void on_due(lws_sorted_usec_list_t *sul)
{
    hb_svc_t *s = lws_container_of(sul, hb_svc_t, sul_wd);
    lws_usec_t now = lws_now_usecs();
    unsigned long long n = 0;
    hb_client_t *c;
    while ((c = held_first(s)) && held_due(s, c) <= now) {
        hb_list_unlink(&c->wd_link);
        c->wd_last = now;
        /* written meanwhile from a writable callback (a choked client), or closed: nothing */
        if (c->qlen && !c->closing) {
            hb_svc_flush_add(c);
            n++;
        }
    }
    if (n)
        atomic_fetch_add_explicit(&s->edge->stats.writes_delayed, n, memory_order_relaxed);
    hb_svc_flush(s);
    if (!hb_list_empty(&s->wd_held))
        timer_arm(s, now);
}

int hb_wdelay_hold(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    lws_usec_t d = (lws_usec_t)s->edge->cfg.write_delay_ms * 1000, now;
    if (!d)
        return 0;
    if (hb_wdelay_held(c))
        return 1; /* held already (its queue was emptied by a writable callback meanwhile) */
    now = lws_now_usecs();
    if (!c->wd_last || now - c->wd_last >= d) {
        c->wd_last = now; /* first event after a quiet spell: at once */
        return 0;
    }
    hb_list_push_tail(&s->wd_held, &c->wd_link);
    if (s->wd_held.next == &c->wd_link) /* the first one held: the timer is for it */
        timer_arm(s, now);
    return 1;
}

void hb_wdelay_remove(hb_svc_t *s, hb_client_t *c)
{
    (void)s;
    if (hb_wdelay_held(c))
        hb_list_unlink(&c->wd_link);
}
