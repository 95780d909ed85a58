/*
 * A service thread: one lws context fed by its own SO_REUSEPORT listener, serving every client
 * transport. Everything in struct hb_svc and every client is ONLY read or written from this
 * thread, except `inq` (its own lock), `nclients` (atomic) and `drain_req` (atomic).
 *
 * Fan-out: the broker hands over one EVENT message per topic event, already encoded for every
 * transport; each subscribed client's queue takes a reference to the shared buffer of its
 * transport (no copy, no allocation per recipient). On writable, a client's queued frames are
 * coalesced into one write (http.c, ws.c).
 *
 * This file: the thread's life (its lws context on a libev loop of its own, start, join, free),
 * the lws callback that dispatches to the transports, the inbox of broker messages and the
 * housekeeping tick, and the cleanup of a client when lws lets it go (hb_client_cleanup(),
 * which calls each file that holds a part of it). listener.c has the listening socket,
 * admission and TLS; cwrite.c a client's queue and writes after a batch; client.c its start,
 * close, counts and pending requests; topics.c the local topics, subscriptions and delivery.
 * docs/architecture.md, "Service threads", walks one event through.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "service.h"
#include "csend.h"
#include "admit.h"
#include "client.h"
#include "listener.h"
#include "topics.h"
#include "ticket.h"
#include "ws.h"

#include <dlfcn.h>
#include <ev.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hb_err.h"
#include "hb_time.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_sse.h"
#include "reqcheck.h"
#include "hread.h"
#include "usend.h"

#define MOD "service"
#define MSGS_PER_WAKE 512
/* sends per io_uring submission (--io-uring): a fan-out to more makes one per this many */
#define SVC_RING_ENTRIES 1024

/*
 * libev, for the service threads' loops, opened privately at run time (see CMakeLists.txt):
 * the five calls the threads make themselves; lws' libev plugin binds its own.
 */
static struct {
    struct ev_loop *(*loop_new)(unsigned int flags);
    int (*run)(struct ev_loop *loop, int flags);
    void (*brk)(struct ev_loop *loop, int how);
    void (*destroy)(struct ev_loop *loop);
    void (*prepare_start)(struct ev_loop *loop, ev_prepare *w);
} evf;

/* 0 when the calls are there, else HB_ENOTFOUND (no libev, or not these calls); main thread,
 * before the service threads start. */
static int evf_load(void)
{
    static int state; /* 0 not tried, 1 loaded, -1 failed */
    void *h;
    if (state)
        return state > 0 ? 0 : HB_ENOTFOUND;
    state = -1;
    h = dlopen("libev.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return HB_ENOTFOUND;
    *(void **)&evf.loop_new = dlsym(h, "ev_loop_new");
    *(void **)&evf.run = dlsym(h, "ev_run");
    *(void **)&evf.brk = dlsym(h, "ev_break");
    *(void **)&evf.destroy = dlsym(h, "ev_loop_destroy");
    *(void **)&evf.prepare_start = dlsym(h, "ev_prepare_start");
    if (!evf.loop_new || !evf.run || !evf.brk || !evf.destroy || !evf.prepare_start)
        return HB_ENOTFOUND; /* the handle stays open: lws' plugin uses the same library */
    state = 1;
    return 0;
}

/* ---- requests to the broker ---- */

/* ---- messages from the broker ---- */

static void svc_process_inbox(hb_svc_t *s)
{
    void *items[MSGS_PER_WAKE];
    size_t n = hb_queue_pop(s->inq, items, MSGS_PER_WAKE);
    s->batching = 1;
    for (size_t i = 0; i < n; i++) {
        hb_msg_t *m = items[i];
        if (m->type == HB_MSG_EVENT) {
            s->send_now = i + 1 == n; /* the batch's last: sent at once (cwrite.c) */
            if (s->send_now)
                s->sn_mono = lws_now_usecs();
            hb_topics_on_event(s, m);
            if (s->send_now)
                hb_svc_send_batch(s); /* while m holds the frames */
            s->send_now = 0;
        } else {
            uint64_t token = m->client_id;
            hb_pending_t *p = hb_dict_get(s->pending, &token, sizeof(token));
            if (p && m->type == HB_MSG_HISTORY && (p->u || p->cancelled)) {
                /* frees the read's slots (and p) even when nobody takes the page now */
                hb_sub_t *u = hb_hread_answered(s, p);
                if (u && !u->c->closing)
                    hb_topics_on_history(s, u, m);
            } else if (p && !p->c->closing) {
                if (m->type == HB_MSG_PUBLISHED && p->c->ops && p->c->ops->published)
                    p->c->ops->published(s, p, m);
                else if (m->type == HB_MSG_PUBLISHED)
                    hb_http_on_published(s, p, m);
                else if (m->type == HB_MSG_TICKET)
                    hb_ticket_on_reply(s, p, m);
            }
        }
        hb_msg_unref(m);
    }
    s->batching = 0;
    hb_svc_flush(s);
    hb_hread_pump(s);
    if (n == MSGS_PER_WAKE)
        lws_cancel_service(s->ctx); /* bounded work per wake-up: come back for the rest */
    if (atomic_load(&s->drain_req) && !s->draining) {
        s->draining = 1;
        hb_svc_drain_clients(s); /* sdrain.c */
    }
}

/* ---- periodic: retry of refused broker requests, gauges; client timers are ctimer.c's ---- */

static void on_housekeeping(lws_sorted_usec_list_t *sul)
{
    hb_svc_t *s = lws_container_of(sul, hb_svc_t, sul_hb);
    lws_usec_t now = lws_now_usecs();
    unsigned slice = ++s->ticks % 4;
    if (s->topics_dirty)
        hb_topics_retry(s);
    hb_ctimer_tick(s, now);
    atomic_store_explicit(&s->queued, hb_client_backlog_sample(s), memory_order_relaxed);
    hb_admit_tick(s->admit);
    if (slice == 0)
        hb_hread_expire(s, hb_wall_us());
    atomic_store_explicit(&s->hist_inflight, s->hreads, memory_order_relaxed);
    atomic_store_explicit(&s->hist_waiting, s->hwaiting, memory_order_relaxed);
    hb_hread_pump(s);
    lws_sul_schedule(s->ctx, 0, &s->sul_hb, on_housekeeping, HB_SVC_TICK_US);
}

/* ---- the end of a client ---- */

/* Its parts go from the top down: the write lists (cwrite.c), its timer (ctimer.c), its
 * subscriptions (topics.c), its history reads (hread.c) and requests, then what client.c
 * releases. */
void hb_client_cleanup(hb_svc_t *s, hb_client_t *c)
{
    if (c->cleaned)
        return;
    c->cleaned = 1;
    hb_client_unlist(s, c);
    hb_req_check_cancel(c);
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
    hb_client_release(s, c);
}

/* ---- the lws callback ---- */

/* Before the loop waits, after the turn's callbacks (libev prepare watcher). */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    hb_req_checks_run(w->data);
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
            hb_listener_tls_reload(s);
        if (s)
            svc_process_inbox(s);
        if (s && s->evloop && atomic_load(&s->stop))
            evf.brk(s->evloop, EVBREAK_ALL);
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        if (s && wsi == s->peer_wsi)
            hb_ctimer_peers_ready(s);
        else if (s)
            hb_admit_accept(s->admit);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (s && wsi == s->peer_wsi)
            s->peer_wsi = NULL;
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
        if (c->req != REQ_IDLE && c->ops && c->ops->transaction) {
            c->close_after_flush = 1;
            if (!hb_req_lws_body(wsi))
                return 0;
            /* lws would take its body from its buffer and loop for ever (reqcheck.h):
             * what is answered goes out now, the pipelined request is refused, and lws
             * closes the connection before reading any body */
            if (c->ops->answer_now && !c->cleaned)
                c->ops->answer_now(c);
            return hb_req_refuse_pipelined(s, wsi);
        }
        /* a later request with a body, parsed from bytes lws kept: the same loop */
        if (hb_admit_was_served(s->admit, wsi) && hb_req_lws_body(wsi) && hb_req_buffered(wsi))
            return hb_req_refuse_pipelined(s, wsi);
        if ((c->ops || c->x) && !c->cleaned) {
            if (!c->close_why)
                c->close_why = "next request on the connection";
            hb_client_cleanup(s, c);
        }
        hb_client_init(c, s, wsi);
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
        if (s)
            hb_admit_body_done(s->admit, wsi);
        return c ? hb_http_on_body_done(s, c) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c)
            return -1;
        return c->ops && c->ops->http_writeable ? c->ops->http_writeable(s, c, wsi) : 0;
    case LWS_CALLBACK_TIMER:
        /* lws' timer (lws_set_timer_usecs()) is only the token expiry's and a ticket's wait:
         * its ticket's wait first, before any token expiry */
        if (c && !c->cleaned) {
            if (c->x && c->x->ticket_tok && !c->closing)
                hb_ticket_on_timer(c);
            else
                hb_auth_on_timer(c);
        }
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        /* closed before a whole request arrived: handshake timeout (slowloris), oversized
         * headers or bytes that are not HTTP; lws answers or closes them itself */
        if (s && s->admit && hb_admit_closed_head(s->admit, wsi))
            atomic_fetch_add_explicit(&s->edge->stats.rejected_incomplete, 1, memory_order_relaxed);
        if (c && s)
            hb_client_cleanup(s, c);
        break;
    case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
        /* after a kept-alive transaction (and before each request): idle until the next */
        if (s && s->admit)
            hb_admit_idle(s->admit, wsi);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED:
        if (c && s)
            hb_client_cleanup(s, c);
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
        hb_client_init(c, s, wsi);
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
        return c ? hb_ws_on_writeable(s, c, wsi) : -1;
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
    /* rx buffer: lws allocates it per WebSocket connection at the upgrade (HB_SVC_WS_RX +
     * LWS_PRE + 4 bytes) and keeps it for the connection's life. Client messages are small
     * and a larger one arrives in pieces of this size that ws.c gathers (up to
     * --max-message-bytes); lws 4.1 (ops-ws.c) acts on a control frame only once its whole
     * payload, at most 125 bytes, is in it: 128 is the least that holds one. */
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

hb_svc_t *hb_svc_new(hb_edge_t *edge, int idx)
{
    struct lws_context_creation_info info;
    void *loops[1];
    hb_svc_t *s = hb_xcalloc(1, sizeof(*s));

    s->edge = edge;
    s->idx = idx;
    s->listen_fd = -1;
    s->peer_ep = -1;
    s->inq = hb_queue_new_reserved((size_t)edge->cfg.service_queue_max, HB_SVC_ANSWER_RESERVE);
    s->topics = hb_dict_new();
    s->pending = hb_dict_new();
    {
        /* a thread's share of --topic-rate; a burst of one second, one whole request at least */
        double rate = (double)edge->cfg.topic_rate / (edge->nthreads > 0 ? edge->nthreads : 1);
        double burst = rate > edge->cfg.max_topics ? rate : edge->cfg.max_topics;
        hb_bucket_init(&s->topic_bucket, rate, burst, hb_now());
        /* and of --ticket-rate, a burst of one second */
        rate = (double)edge->cfg.ticket_rate / (edge->nthreads > 0 ? edge->nthreads : 1);
        hb_bucket_init(&s->ticket_bucket, rate, rate, hb_now());
    }
    hb_list_init(&s->wd_held);
    hb_list_init(&s->flush);
    hb_list_init(&s->backlog);
    if (hb_svc_frames_new(s)) {
        hb_svc_free(s);
        return NULL;
    }

    /* lws 4.1 cannot share a port between contexts, so each thread owns a SO_REUSEPORT
     * listener and adopts what it accepts; the kernel spreads connections over the threads. */
    s->listen_fd = hb_listener_socket(edge);
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
        hb_listener_tls_options(s, &info);
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
    if (s->ctx && s->evloop) {
        s->prep = hb_xcalloc(1, sizeof(*s->prep));
        ev_prepare_init(s->prep, on_prepare);
        s->prep->data = s;
        evf.prepare_start(s->evloop, s->prep); /* before the thread runs the loop */
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

/* --io-uring: the thread's ring for its fan-outs' sends (usend.h), made here because only the
 * thread that makes it may submit to it. Without one (off, or the kernel refuses), each send
 * is its own send(2). */
static void svc_ring_open(hb_svc_t *s)
{
    int err;
    if (!s->edge->cfg.io_uring)
        return;
    if (!(s->usend = hb_usend_new(SVC_RING_ENTRIES, &err))) {
        if (s->idx == 0)
            hb_log_info(MOD, "io_uring not available: one send(2) per delivery", "{s:s}", "error",
                        err == HB_ENOMEM ? "out of memory" : strerror(-err));
        return;
    }
    if (s->idx == 0)
        hb_log_info(MOD, "a fan-out's sends go in one io_uring submission", NULL);
    atomic_fetch_add_explicit(&s->edge->stats.io_uring_threads, 1, memory_order_relaxed);
}

static void *svc_main(void *arg)
{
    hb_svc_t *s = arg;
    svc_ring_open(s);
    while (!atomic_load(&s->stop)) {
        if (s->evloop)
            evf.run(s->evloop, 0); /* until hb_svc_join() breaks it */
        else if (lws_service(s->ctx, 0) < 0)
            break;
    }
    if (s->usend) {
        hb_usend_free(s->usend);
        s->usend = NULL;
        atomic_fetch_sub_explicit(&s->edge->stats.io_uring_threads, 1, memory_order_relaxed);
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

void hb_svc_tls_reload(hb_svc_t *s)
{
    atomic_store(&s->tls_reload, 1);
    lws_cancel_service(s->ctx);
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
        evf.destroy(s->evloop); /* its watchers with it: prep is free after */
    free(s->prep);
    free(s->pipe_q);
    hb_admit_free(s->admit); /* after lws_context_destroy(): its callbacks use it */
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
    hb_svc_frames_free(s);
    free(s);
}
