/*
 * A client's life on its service thread: its start (a new request or WebSocket), its request
 * state, the close path, the connection counts and the connection log, what is released when
 * lws lets the connection go (the end of hb_client_cleanup(), service.c), and its requests
 * waiting for the broker's answer (pending). The bottom of the service thread's files: it
 * calls none of them. Queueing and writing are cwrite.c's. Service thread only; every client
 * belongs to one thread (c->svc).
 */
#include "client.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/tcp.h> /* struct tcp_info with the byte counters */

#include "hb_log.h"
#include "hb_mem.h"

#define MOD "service" /* the log lines keep the module they had in service.c */

/* ---- the client ---- */

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
    c->qcharge = 0;
    c->off = 0;
}

void hb_client_init(hb_client_t *c, hb_svc_t *s, struct lws *wsi)
{
    memset(c, 0, sizeof(*c));
    c->svc = s;
    c->wsi = wsi;
    c->id = ++s->next_id;
    hb_list_init(&c->wd_link);
    hb_list_init(&c->bl_link);
    hb_list_init(&c->flush_link);
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

/* The end of hb_client_cleanup() (service.c): what is left of the client after its lists,
 * timers, subscriptions and requests went. */
void hb_client_release(hb_svc_t *s, hb_client_t *c)
{
    hb_stats_t *st = &s->edge->stats;
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

/* ---- pending requests ---- */

hb_pending_t *hb_pending_add(hb_svc_t *s, hb_client_t *c, hb_sub_t *u)
{
    hb_pending_t *p = hb_xcalloc(1, sizeof(*p));
    p->t0_us = u ? 0 : hb_wall_us();
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
