/*
 * A client's life on its service thread: its queue of shared frames (push, release), the
 * writes made for it once a broker batch is done (the flush list) instead of one writable
 * callback each, the backlog sampled for the queued gauge, the close path and the cleanup
 * when lws lets the connection go, the connection counts and the connection log.
 * Service thread only; every client belongs to one thread (c->svc).
 */
#include "client.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/tcp.h> /* struct tcp_info with the byte counters */

#include "hb_log.h"
#include "hb_mem.h"
#include "hread.h"

#define MOD "service" /* the log lines keep the module they had in service.c */

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
void hb_svc_flush_add(hb_client_t *c)
{
    flush_add(c->svc, c);
}

void hb_svc_flush(hb_svc_t *s)
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

/* Clients that had a queue: sum their queues, drop those now empty. */
unsigned long long hb_client_backlog_sample(hb_svc_t *s)
{
    unsigned long long queued = 0;
    for (hb_client_t *c = s->backlog, *next; c; c = next) {
        next = c->bl_next;
        queued += c->qlen;
        if (!c->qlen) {
            /* idle since at least the last tick: its queue array goes too (an idle client
             * keeps none; the next push makes one). Here rather than after each write, so a
             * busy client does not free and make it again for every event. */
            backlog_remove(s, c);
            free(c->q);
            c->q = NULL;
            c->qcap = c->qhead = 0;
        }
    }
    return queued;
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

void hb_client_init(hb_client_t *c, hb_svc_t *s, struct lws *wsi)
{
    memset(c, 0, sizeof(*c));
    c->svc = s;
    c->wsi = wsi;
    c->id = ++s->next_id;
    hb_list_init(&c->wd_link);
}

hb_creq_t *hb_creq(hb_client_t *c)
{
    if (!c->x)
        c->x = hb_xcalloc(1, sizeof(*c->x));
    return c->x;
}

/* Closes a client: frees its queue now; lws closes the socket (WS: after the close frame). */
void hb_client_close(hb_client_t *c, const char *why, uint16_t ws_code)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_why = why; /* logged when the connection ends (conn_log_close) */
    queue_release(c);
    if (!ws_code || !c->ops || !c->ops->close || !c->ops->close(c, ws_code))
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Called by the writers after a write: continue paged history reads waiting for room. */
void hb_client_drained(hb_client_t *c)
{
    hb_hread_drained(c);
}

/* ---- connection log: one debug line when a client opens, one when it ends ---- */

/* the connection gauge of transport t */
static atomic_ullong *conn_gauge(hb_stats_t *st, const hb_transport_t *t)
{
    return (atomic_ullong *)(void *)((char *)st + t->gauge);
}

static void conn_log_open(hb_client_t *c, const hb_transport_t *t)
{
    char peer[64] = "";
    c->opened = lws_now_usecs();
    if (!hb_log_enabled(HB_LOG_DEBUG))
        return;
    lws_get_peer_simple(c->wsi, peer, sizeof(peer));
    hb_log_debug(MOD, "connection open", "{s:s,s:s,s:i,s:I,s:b}", "transport", t->name, "peer",
                 peer, "thread", c->svc->idx, "conn", (json_int_t)c->id, "tls", c->svc->tls);
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
                 c->counted->name, "peer", peer, "thread", c->svc->idx, "conn", (json_int_t)c->id,
                 "tls", c->svc->tls, "reason", c->close_why ? c->close_why : "connection closed",
                 "duration_ms", (json_int_t)((lws_now_usecs() - c->opened) / 1000), "events",
                 (json_int_t)c->delivered, "bytes_out", (json_int_t)ti.tcpi_bytes_acked, "bytes_in",
                 (json_int_t)ti.tcpi_bytes_received);
}

void hb_client_count(hb_client_t *c, const hb_transport_t *t)
{
    hb_stats_t *st = &c->svc->edge->stats;
    c->ops = c->counted = t;
    conn_log_open(c, t);
    if (t->start)
        t->start(c);
    atomic_fetch_add(&c->svc->nclients, 1);
    atomic_fetch_add_explicit(&st->connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(conn_gauge(st, t), 1, memory_order_relaxed);
}

void hb_client_cleanup(hb_svc_t *s, hb_client_t *c)
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
    if (c->subs != &c->sub0)
        free(c->subs);
    c->subs = NULL;
    c->sub0 = NULL;
    c->nsubs = c->capsubs = 0;
    hb_hread_client_gone(c);
    while (c->pubs)
        hb_pending_del(s, c->pubs);
    queue_release(c);
    free(c->rx);
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
    free(c->x);
    c->x = NULL;
    hb_jwt_free(c->jwt);
    c->jwt = NULL;
    if (c->counted) {
        conn_log_close(c);
        atomic_fetch_sub(&s->nclients, 1);
        atomic_fetch_sub_explicit(&st->connections, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(conn_gauge(st, c->counted), 1, memory_order_relaxed);
    }
}
