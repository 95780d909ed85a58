/*
 * A client's queue and when it is written: push (a ref of a shared frame, or a cut-off at the
 * client's bounds), the writes made once a broker batch is done (the flush list) instead of
 * one writable callback each, opt-in write coalescing (--write-delay-ms), the backlog sampled
 * for the queued gauge, and what follows a write (hb_client_drained(): a paced history read
 * goes on). Above hread.c and client.c, which it calls; below topics.c, ctimer.c and the
 * transports. Service thread only; every client belongs to one thread (c->svc).
 */
#include "client.h"
#include "csend.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "hb_mem.h"
#include "hread.h"
#include "usend.h"

/* ---- writing after a batch ---- */

/*
 * Writing without a writable callback. A broker batch (svc_process_inbox) queues events to
 * many clients; asking lws for a writable callback for each costs an epoll_ctl() to arm POLLOUT,
 * an epoll wake-up and a dispatch per client and event, more than the write itself. Instead the
 * clients the batch queued to are listed and written once the batch is done (hb_svc_flush), each
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
    return c->ops && c->ops->write && !c->close_code;
}

/*
 * Sending at once. When a batch's last live event is fanned out (svc->send_now), a recipient
 * with nothing queued and nothing held by lws is sent it straight from the shared frame by its
 * transport's send_now(), before the fan-out moves to the next recipient: no queue entry, no
 * flush list, no second pass over the recipients after the batch (whose structures the sends
 * in between have pushed out of the cache), one latency observation per event. The batch's
 * earlier events keep the flush, so that events arriving together still go out in one write.
 * Not with --write-delay-ms (its hold decides), nor for a client whose history read waits for
 * its queue to drain (the flush's hb_client_drained() moves it on). 1 sent, 0 not (queue it),
 * HB_EIO (c is closing).
 */
static void sent_now_observe(hb_svc_t *s)
{
    hb_hist_observe(&s->deliv_hist, hb_wall_us() - s->sn_stamp * 1000, s->sn_n);
    s->sn_n = 0;
}

/* Nothing of c's waits to be written before a frame sent now: no queue, no history read under
 * way (its pages go first), not closing. */
static int nothing_waits(const hb_client_t *c)
{
    return !c->qlen && flush_direct_ok(c) && !c->hpaced && !c->hwait_head;
}

static int push_now(hb_svc_t *s, hb_client_t *c, hb_buf_t *b)
{
    int rc;
    if (!c->ops->send_now || !nothing_waits(c) || s->edge->cfg.write_delay_ms)
        return 0;
    if ((rc = c->ops->send_now(s, c, b)) < 0) {
        hb_client_close(c, "write failed", 0);
        return HB_EIO;
    }
    if (rc && b->stamp_ms) {
        if (s->sn_n && s->sn_stamp != b->stamp_ms)
            sent_now_observe(s);
        s->sn_stamp = b->stamp_ms;
        s->sn_n++;
    }
    return rc;
}

static void flush_add(hb_svc_t *s, hb_client_t *c)
{
    if (c->flush_listed)
        return;
    c->flush_listed = 1;
    hb_list_push_tail(&s->flush, &c->flush_link);
}

/* Takes a client off the flush list (it is being cleaned up). */
static void flush_remove(hb_client_t *c)
{
    if (!c->flush_listed)
        return;
    hb_list_unlink(&c->flush_link);
    c->flush_listed = 0;
}

/* Writes to every listed client what the batch queued (see flush_direct_ok()). */
void hb_svc_flush(hb_svc_t *s)
{
    hb_list_t *n;
    if (s->sn_n) /* sent at once (push_now()): one latency observation for them all */
        sent_now_observe(s);
    while ((n = hb_list_pop_head(&s->flush))) {
        hb_client_t *c = hb_list_container(n, hb_client_t, flush_link);
        int rc;
        c->flush_listed = 0;
        if (!flush_direct_ok(c))
            continue;
        if (!c->qlen) {
            hb_client_drained(c); /* written early (write_early()) or by its writable callback */
            continue;
        }
        if (lws_partial_buffered(c->wsi)) {
            /* choked: lws sends its rest on POLLOUT, then calls the writable callback */
            lws_callback_on_writable(c->wsi);
            continue;
        }
        rc = c->ops->write(s, c, c->wsi);
        if (rc) {
            hb_client_close(c, "write failed", 0);
            continue;
        }
        if (c->qlen)
            lws_callback_on_writable(c->wsi); /* more than one write's worth */
        hb_client_drained(c);
    }
}

/* The queued gauge is a sample over the clients that had a queue (svc->backlog): a client
 * joins when its queue stops being empty and leaves at the next sample that finds it empty, so
 * idle clients are never visited. */
static void backlog_add(hb_svc_t *s, hb_client_t *c)
{
    if (c->bl_listed)
        return;
    c->bl_listed = 1;
    hb_list_push_head(&s->backlog, &c->bl_link);
}

static void backlog_remove(hb_client_t *c)
{
    if (!c->bl_listed)
        return;
    hb_list_unlink(&c->bl_link);
    c->bl_listed = 0;
}

/* Clients that had a queue: sum their queues, drop those now empty. */
unsigned long long hb_client_backlog_sample(hb_svc_t *s)
{
    unsigned long long queued = 0;
    hb_list_t *n, *next;
    hb_list_foreach_safe(n, next, &s->backlog)
    {
        hb_client_t *c = hb_list_container(n, hb_client_t, bl_link);
        queued += c->qlen;
        if (!c->qlen) {
            /* idle since at least the last tick: its queue array goes too (an idle client
             * keeps none; the next push makes one). Here rather than after each write, so a
             * busy client does not free and make it again for every event. */
            backlog_remove(c);
            free(c->q);
            c->q = NULL;
            c->qcap = c->qhead = 0;
        }
    }
    return queued;
}

/* ---- --write-delay-ms: opt-in write coalescing ---- */

/*
 * Without a delay, a client's events are written as soon as the broker batch that queued them is
 * done (hb_svc_flush() above): on a hot topic that is one write (and one send(2), one wake-up
 * of the peer) per batch and client, often one per event. With --write-delay-ms D > 0, a client
 * whose queue starts in a batch less than D after its last release is held instead: it joins
 * this thread's held list, and the list's timer releases it to hb_svc_flush() once D has passed
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
            flush_add(s, c);
            n++;
        }
    }
    if (n)
        atomic_fetch_add_explicit(&s->edge->stats.writes_delayed, n, memory_order_relaxed);
    hb_svc_flush(s);
    if (!hb_list_empty(&s->wd_held))
        timer_arm(s, now);
}

/* c's queue just stopped being empty in a broker batch and c may be written directly: 0 to
 * write it when the batch is done (--write-delay-ms 0, or nothing was released for c in the
 * last D ms), 1 when c is held and the timer releases it (at most D ms after its last
 * release, never before). O(1), no allocation. */
static int wdelay_hold(hb_client_t *c)
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

/* c (of thread s) is cleaned up: it leaves the held list. O(1). */
static void wdelay_remove(hb_client_t *c)
{
    if (hb_wdelay_held(c))
        hb_list_unlink(&c->wd_link);
}

/* ---- the queue ---- */

static int over_bound(const hb_svc_t *s, const hb_client_t *c, uint32_t charge)
{
    return c->qlen >= (uint32_t)s->edge->cfg.client_queue_max ||
           (size_t)c->qcharge + charge > (size_t)s->edge->cfg.client_queue_bytes;
}

/*
 * c's queue is at its bound. The bound is on what the client did not read: a client is cut
 * off as slow only when its socket did not take what it was given, never for events this
 * thread gathered before writing (a broker batch larger than the bound, a refill's held events
 * and its last page, a resume's held live events: all queued before the flush that follows the
 * batch, or held by --write-delay-ms). So unless lws still holds unsent output (the socket is
 * full), c is written now, from here, until it is within the bound for one more frame of
 * `charge` or the socket takes no more, and the caller checks the bound again. 0 when a write was
 * made; HB_EAGAIN when none could be (the caller cuts c off); HB_EIO when it failed (c is
 * closing). Not from
 * c's own writer (a write does not push to its client); hb_client_drained() is left to the
 * flush after the batch or to the writable callback, not called from inside a fan-out or a
 * history page.
 */
static int write_early(hb_svc_t *s, hb_client_t *c, uint32_t charge)
{
    if (!flush_direct_ok(c) || !c->wsi || lws_partial_buffered(c->wsi))
        return HB_EAGAIN;
    if (hb_wdelay_held(c)) {
        hb_list_unlink(&c->wd_link); /* coalescing never costs a client its connection */
        c->wd_last = lws_now_usecs();
    }
    do {
        uint32_t before = c->qlen;
        if (c->ops->write(s, c, c->wsi)) {
            hb_client_close(c, "write failed", 0);
            return HB_EIO;
        }
        if (c->qlen == before)
            break;
    } while (over_bound(s, c, charge) && !lws_partial_buffered(c->wsi));
    /* what follows a write: the flush after the batch, or the writable callback outside one */
    if (s->batching)
        flush_add(s, c);
    else
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* Queues one shared buffer (taking new refs). 0, or -1 when the client was cut off. */
int hb_client_push(hb_client_t *c, hb_buf_t *b, hb_buf_t *cur, uint16_t idx, int ctl)
{
    hb_svc_t *s = c->svc;
    uint32_t charge = hb_client_charge(hb_buf_len(b), s->edge->cfg.client_queue_bytes);
    if (c->closing)
        return HB_EIO;
    if (s->send_now && !cur && c->ops) {
        int rc = push_now(s, c, b);
        if (rc)
            return rc > 0 ? 0 : rc;
    }
    if (over_bound(s, c, charge) && (write_early(s, c, charge) || over_bound(s, c, charge))) {
        atomic_fetch_add_explicit(&s->edge->stats.slow_disconnects, 1, memory_order_relaxed);
        hb_client_close(c, "slow consumer: queue limit reached", 1008);
        return HB_ELIMIT;
    }
    if (!c->qcap) { /* the array stays while the client is busy (hb_client_backlog_sample) */
        c->q = hb_xmalloc(4 * sizeof(*c->q));
        c->qcap = 4;
        c->qhead = 0;
    } else if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap * 2;
        qent_t *nq = hb_xmalloc(ncap * sizeof(*nq));
        for (uint32_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    /* qcap is a power of two (4, doubled): a mask, not a division */
    c->q[(c->qhead + c->qlen) & (c->qcap - 1)] =
        (qent_t){hb_buf_ref(b), cur ? hb_buf_ref(cur) : NULL, idx, (uint16_t)ctl};
    c->qlen++;
    c->qbytes += hb_buf_len(b);
    c->qcharge += charge;
    if (c->qlen == 1) {
        backlog_add(s, c);
        if (s->batching && flush_direct_ok(c)) {
            if (!wdelay_hold(c)) /* --write-delay-ms: held, written by its timer */
                flush_add(s, c);
        } else
            lws_callback_on_writable(c->wsi);
    }
    return 0;
}

void hb_client_pop(hb_svc_t *s, hb_client_t *c, long long now_us)
{
    qent_t *e = &c->q[c->qhead];
    size_t blen = hb_buf_len(e->b);
    c->qbytes -= blen;
    c->qcharge -= hb_client_charge(blen, s->edge->cfg.client_queue_bytes);
    hb_svc_observe_write(s, e->b, now_us);
    hb_buf_unref(e->b);
    if (e->cur) /* multi-topic SSE and long-poll only: no call for the others */
        hb_buf_unref(e->cur);
    c->off = 0;
    c->qhead = (c->qhead + 1) & (c->qcap - 1); /* qcap: a power of two */
    c->qlen--;
}

/* c's socket for a direct send, as fd + 1; -1 never (TLS, an HTTP/2 stream, or c cleaned
 * up), 0 not known yet. Learnt once per request (c->direct): whether the connection is plain
 * TCP and c its own network connection does not change while it lasts, nor its socket, which
 * lws closes only after the callback that cleans c up (CLOSED, CLOSED_HTTP, DROP_PROTOCOL:
 * hb_client_unlist() sets -1 there), so a cached fd is never one lws has closed or reused.
 * One read of the client instead of three calls into lws per recipient. */
static int direct_sock(hb_client_t *c, struct lws *wsi)
{
    int fd;
    if (c->direct)
        return c->direct;
    if (c->svc->tls || lws_get_network_wsi(wsi) != wsi)
        return c->direct = -1;
    if ((fd = lws_get_socket_fd(wsi)) < 0)
        return 0; /* no socket yet: asked again at the next send */
    return c->direct = fd + 1;
}

/* c's socket (fd + 1) when a direct send may go to it now: a plain-TCP connection of its own
 * whose earlier output lws has all sent; 0 when not (lws' write path then). */
static int direct_ready(hb_client_t *c)
{
    int sock;
    if (!c->wsi || (sock = direct_sock(c, c->wsi)) <= 0 || lws_partial_buffered(c->wsi))
        return 0;
    return sock;
}

ssize_t hb_client_send_direct(hb_client_t *c, const void *data, size_t len)
{
    ssize_t n;
    int sock = direct_ready(c);
    if (!sock)
        return 0;
    n = send(sock - 1, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : HB_EIO;
    hb_svc_count(&c->svc->bytes_out, (size_t)n);
    return n;
}

/* What the socket did not take of a frame (@sent of @len, 0 for a full socket) handed to lws,
 * which sends it before anything else. 1, or HB_EIO. */
static int send_rest(hb_client_t *c, const unsigned char *data, size_t len, size_t sent, int wp)
{
    size_t rest = len - sent;
    if (rest && lws_write(c->wsi, (unsigned char *)data + sent, rest,
                          (enum lws_write_protocol)wp) < (int)rest)
        return HB_EIO;
    hb_svc_count(&c->svc->bytes_out, rest);
    return 1;
}

/* hb_usend_submit()'s callback: one batched send's result, as hb_client_send_frame() takes
 * send(2)'s (the client is alive: nothing is freed during a fan-out, closes are deferred) */
static void batch_done(void *tag, const unsigned char *data, size_t len, int wp, ssize_t res,
                       void *arg)
{
    hb_client_t *c = tag;
    (void)arg;
    if (res < 0 && res != -EAGAIN && res != -EWOULDBLOCK && res != -EINTR) {
        hb_client_close(c, "write failed", 0);
        return;
    }
    if (res < 0)
        res = 0;
    hb_svc_count(&c->svc->bytes_out, (size_t)res);
    if (!c->closing && send_rest(c, data, len, (size_t)res, wp) < 0)
        hb_client_close(c, "write failed", 0);
}

void hb_svc_send_batch(hb_svc_t *s)
{
    unsigned n;
    if (!s->usend || !(n = hb_usend_submit(s->usend, batch_done, NULL)))
        return;
    atomic_fetch_add_explicit(&s->edge->stats.sends_batched, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->edge->stats.send_batches, 1, memory_order_relaxed);
}

int hb_client_send_event(hb_client_t *c, hb_buf_t *b, int wp)
{
    hb_svc_t *s = c->svc;
    int sock;
    if (!s->usend)
        return hb_client_send_frame(c, hb_buf_data(b), hb_buf_len(b), wp);
    if (!(sock = direct_ready(c)))
        return 0;
    if (hb_usend_add(s->usend, sock - 1, hb_buf_data(b), hb_buf_len(b), c, wp)) {
        hb_svc_send_batch(s); /* the ring is full: its sends go now */
        if (hb_usend_add(s->usend, sock - 1, hb_buf_data(b), hb_buf_len(b), c, wp))
            return hb_client_send_frame(c, hb_buf_data(b), hb_buf_len(b), wp); /* > 2 GiB */
    }
    return 1;
}

int hb_client_send_keepalive(hb_client_t *c, hb_buf_t *b, int wp)
{
    return nothing_waits(c) ? hb_client_send_event(c, b, wp) : 0;
}

int hb_client_send_frame(hb_client_t *c, unsigned char *data, size_t len, int wp)
{
    ssize_t sent = hb_client_send_direct(c, data, len);
    if (sent <= 0)
        return (int)sent; /* 0: not sent, lws' turn; HB_EIO */
    return send_rest(c, data, len, (size_t)sent, wp);
}

/* Called by the writers after a write: continue paged history reads waiting for room. */
void hb_client_drained(hb_client_t *c)
{
    /* hb_hread_drained()'s own first test, here so that a client with no paced or queued
     * history read (nearly every write) makes no call */
    if (c->hpaced || c->hwait_head)
        hb_hread_drained(c);
}

/* The start of hb_client_cleanup() (service.c): off the flush list, the held list, the
 * backlog; no direct send any more (its socket is lws' to close). */
void hb_client_unlist(hb_svc_t *s, hb_client_t *c)
{
    (void)s;
    c->direct = -1;
    flush_remove(c);
    wdelay_remove(c);
    backlog_remove(c);
}
