/* Per-connection timers of the service threads: SSE heartbeats and hung-up peers, WebSocket
 * keepalive, long-poll timeouts (service.h: hb_ctimer_*, hb_svc_poll_timer). {service thread} */

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "client.h"
#include "csend.h"
#include "service.h"

/*
 * Nothing here walks every client: an idle connection costs no work until something is due.
 * Each client's deadline (SSE heartbeat, WebSocket keepalive, long-poll timeout) is a timer in
 * the thread's timing wheel (common/hb_wheel.h); the 250 ms housekeeping tick advances the
 * wheel and touches only the timers that are due. Why a wheel of our own: lws 4.1 keeps its
 * timers (lws_sul, lws_set_timer_usecs(), the WebSocket validity policy) in one list per
 * thread sorted by deadline, so arming one of N connections' timers walks up to N nodes; and
 * lws_set_timer_usecs() (one per wsi) is the token expiry's (auth.c). SSE peers that hang up
 * are found by an epoll set (sse_peers_check()); topics are walked only after a SUB/UNSUB
 * could not be queued, and the queued gauge sums only clients that had a queue.
 */
#define PEER_CHECK_TICKS (LWS_USEC_PER_SEC / HB_SVC_TICK_US) /* once a second */

static uint64_t svc_tick_of(lws_usec_t us)
{
    return (uint64_t)us / HB_SVC_TICK_US;
}

/*
 * lws 4.1 never reads an h1 connection while its (endless) SSE response is open, so it does not
 * see the peer go away until a write fails; left to itself, it polls such a socket for input in
 * a loop: once the peer sent its FIN (readable for good, level-triggered) the thread spins
 * until the peer is found gone. (Turning lws' input off, lws_rx_flow_control(), would stop it,
 * but lws 4.1 then no longer services the socket's POLLOUT either.)
 * Each SSE socket (and each waiting long-poll's) is also in the thread's epoll set peer_ep
 * (edge-triggered, for input or a hang-up; a long-poll's for a hang-up only), which the
 * housekeeping tick asks without waiting: only sockets whose state changed come back, and end
 * of stream, an error or any bytes (an SSE client has nothing to send) close them. The set is
 * itself in the loop (a duplicate of its descriptor adopted by lws as a raw file, s->peer_wsi): a
 * peer that hangs up is closed in the loop's next turn, so lws' spin on its socket lasts a turn or
 * two; the tick asks too (the set could not be adopted, or more than a round's worth was ready).
 * Under a churn of hang-ups the spin had taken 94 % of a core until the tick came
 * (test_sse_hangup_spin). Nothing is done for the others. (Without the set, when epoll_create1()
 * failed, every SSE socket is peeked once a second from its timer.)
 */
static void sse_watch(hb_client_t *c, int add);

/*
 * A socket joins peer_ep once and stays in it until it closes (the kernel then takes it out):
 * a kept-alive long-poll connection costs no epoll change per poll. The set is edge-triggered,
 * each entry's data the connection's wsi, and what the edge knows of the connection is kept in
 * its lws opaque user data (no allocation; lws does not use it on an accepted socket): in the
 * set, with input watched (an SSE stream: any byte is unexpected), hung up. Whether a client
 * record wants the report is its peer_watched: between two requests nobody does, and lws reads
 * the socket itself then. A long-poll is watched for a hang-up only, so that its next request
 * arriving is no report (lws reads it after the answer).
 */
#define PEER_IN_SET 1u
#define PEER_INPUT 2u /* EPOLLIN too */
#define PEER_HUP 4u

static uintptr_t peer_bits(struct lws *wsi)
{
    return (uintptr_t)lws_get_opaque_user_data(wsi);
}

static void peer_bits_set(struct lws *wsi, uintptr_t bits)
{
    lws_set_opaque_user_data(wsi, (void *)bits);
}

/* Closes c, whose peer went away (or sent bytes an SSE client never sends), at once (c is
 * freed: lws would otherwise spin on the socket until its next timeout check, which an I/O
 * callback does not bring forward); only where no lws or wheel code is walking c. */
static void peer_close(hb_client_t *c, const char *why)
{
    struct lws *wsi = c->wsi;
    c->peer_watched = 0;
    hb_client_close(c, why, 0);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

/*
 * With TLS, bytes on the socket may be a record that carries nothing for HTTP: a TLS 1.3
 * KeyUpdate, which every peer must accept (RFC 8446 section 4.6.3), closed the client's stream
 * as "unexpected input". OpenSSL takes such records when asked for data. 1 when what came was
 * only that (taken: the socket is drained, nothing for the application), 0 when application
 * data came, or the end, or an error, or the connection is not TLS.
 */
static int tls_records_only(struct lws *wsi)
{
    SSL *ssl = lws_is_ssl(wsi) ? lws_get_ssl(wsi) : NULL;
    char b;
    int n, err;
    if (!ssl)
        return 0;
    ERR_clear_error();
    n = SSL_peek(ssl, &b, 1);
    if (n > 0)
        return 0;
    err = SSL_get_error(ssl, n);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

/* Without peer_ep: 1 when c's peer hung up or sent bytes (c is closed), from its own timer. */
static int sse_peer_gone(hb_client_t *c)
{
    char b;
    int fd = lws_get_socket_fd(c->wsi);
    ssize_t n = fd < 0 ? 0 : recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n > 0 && tls_records_only(c->wsi))
        return 0;
    hb_client_close(c, n > 0 ? "unexpected input on an SSE stream" : "peer closed", 0);
    return 1;
}

static void sse_watch(hb_client_t *c, int add)
{
    hb_svc_t *s = c->svc;
    struct lws *wsi = c->wsi;
    uintptr_t bits, want;
    int fd;
    if (!add || s->peer_ep < 0 || !wsi) {
        c->peer_watched = 0; /* the socket stays in the set */
        return;
    }
    if (c->peer_watched)
        return;
    bits = peer_bits(wsi);
    want = PEER_IN_SET | (c->ops && c->ops->answer ? 0 : PEER_INPUT);
    /* A hang-up the set reported between requests (before this one was served) is asked for
     * again: re-armed, the set reports it on the next loop turn, where c is closed at once
     * (here, inside lws' callback, only a close at lws' next timeout check could be asked for,
     * and lws would spin on the socket until then). */
    if ((bits & ~(uintptr_t)PEER_HUP) != want || (bits & PEER_HUP)) {
        struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = wsi};
        if (want & PEER_INPUT)
            ev.events |= EPOLLIN;
        fd = lws_get_socket_fd(wsi);
        if (fd < 0 ||
            epoll_ctl(s->peer_ep, bits & PEER_IN_SET ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev))
            return;
        peer_bits_set(wsi, want | (bits & PEER_HUP));
    }
    c->peer_watched = 1;
}

/* The sockets peer_ep reported (each once per change): at most 1024 a call. */
static void sse_peers_check(hb_svc_t *s)
{
    struct epoll_event ev[64];
    for (int round = 0; round < 16 && s->peer_ep >= 0; round++) {
        int n = epoll_wait(s->peer_ep, ev, 64, 0);
        for (int i = 0; i < n; i++) {
            struct lws *wsi = ev[i].data.ptr;
            hb_client_t *c = lws_wsi_user(wsi);
            int hup = (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
            if (hup)
                peer_bits_set(wsi, peer_bits(wsi) | PEER_HUP);
            if (!c || !c->peer_watched || c->closing)
                continue; /* between requests (lws reads the socket), or closing */
            if (!hup && tls_records_only(wsi))
                continue; /* a TLS record for TLS itself (KeyUpdate): nothing for HTTP */
            /* from the set's callback or the tick: nobody walks c */
            peer_close(c, hup ? "peer closed" : "unexpected input on an SSE stream");
        }
        if (n < 64)
            break;
    }
}

/* Arms c's heartbeat: due when nothing was written for --heartbeat seconds (less one tick, as
 * the sweep it replaces did), so a client that received an event meanwhile needs none; without
 * peer_ep, the next peer check when that comes first. */
static void sse_timer_arm(hb_client_t *c, lws_usec_t now)
{
    hb_svc_t *s = c->svc;
    lws_usec_t hb = (lws_usec_t)s->edge->cfg.heartbeat * LWS_USEC_PER_SEC;
    uint64_t due = svc_tick_of((c->qlen ? now : c->last_write) + hb - HB_SVC_TICK_US) + 1;
    if (s->peer_ep < 0 && svc_tick_of(now) + PEER_CHECK_TICKS < due)
        due = svc_tick_of(now) + PEER_CHECK_TICKS;
    hb_wheel_arm(&s->wheel, &c->tnode, due);
}

/* An SSE client's timer fired: heartbeat when one is due (peer check), next timer. */
void hb_ctimer_sse_fire(hb_client_t *c, lws_usec_t now)
{
    lws_usec_t hb = (lws_usec_t)c->svc->edge->cfg.heartbeat * LWS_USEC_PER_SEC;
    if (c->closing || c->close_after_flush)
        return; /* its last frames are on their way, or it is closed */
    if (c->svc->peer_ep < 0 && sse_peer_gone(c))
        return;
    if (c->qlen == 0 && now - c->last_write >= hb - HB_SVC_TICK_US) {
        /* straight to the socket, or through its queue (behind what lws still holds) */
        int rc = hb_client_send_keepalive(c, c->svc->hb_frame, LWS_WRITE_HTTP);
        if (rc > 0)
            c->last_write = now;
        else if (rc < 0)
            hb_client_close(c, "write failed", 0);
        else /* a writable callback, or the flush after the tick, writes it */
            hb_client_push(c, c->svc->hb_frame, NULL, 0, 1);
    }
    if (!c->closing)
        sse_timer_arm(c, now);
}

/*
 * WebSocket keepalive (--ws-ping-interval I): a ping after I seconds without a frame from the
 * peer, a hang-up after 2I. lws' validity policy had these thresholds, but it keeps each
 * connection's timer in lws' sorted list and re-arms it on every ping and pong: walks of the
 * list that were most of the CPU idle WebSockets cost. Here a frame from the peer only stamps
 * rx_tick (no timer operation; any frame shows the peer is there); the timer, when it fires,
 * re-arms from the stamp.
 */
static uint64_t ws_ping_ticks(const hb_svc_t *s)
{
    return (uint64_t)s->edge->cfg.ws_ping_interval * PEER_CHECK_TICKS;
}

static void ws_timer_arm(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    hb_wheel_arm(&s->wheel, &c->tnode, c->rx_tick + ws_ping_ticks(s) * (c->ping_out ? 2 : 1));
}

/* The thread's ping frame (sframes.c) straight to the socket, in the tick's batch, when nothing
 * of c's waits: no writable callback, two epoll changes fewer. 1 sent (or in the batch), 0 not
 * (the writable callback sends it, ws.c). */
static int ws_ping_now(hb_client_t *c)
{
    int rc = hb_client_send_keepalive(c, c->svc->ping_frame, LWS_WRITE_RAW);
    if (rc < 0)
        hb_client_close(c, "write failed", 0);
    return rc != 0;
}

void hb_ctimer_ws_fire(hb_client_t *c, lws_usec_t now)
{
    (void)now;
    hb_svc_t *s = c->svc;
    if (c->closing || c->close_code)
        return;
    if (c->rx_paused) {
        /* the edge stopped reading it (16 publishes wait for Redis): its pongs wait unread in
         * the socket, so its silence is the edge's own; the clock starts again after it */
        hb_ctimer_ws_seen(c);
        ws_timer_arm(c);
        return;
    }
    if (s->wheel.now >= c->rx_tick + 2 * ws_ping_ticks(s)) {
        hb_client_close(c, "no answer to ping", 0); /* what lws did: no close frame */
        return;
    }
    if (s->wheel.now >= c->rx_tick + ws_ping_ticks(s) && !c->ping_out) {
        c->ping_out = 1;
        if (!ws_ping_now(c)) {
            c->ping_due = 1; /* from the writable callback */
            lws_callback_on_writable(c->wsi);
        }
    }
    ws_timer_arm(c);
}

/* A frame (message, fragment, pong) came from the peer. */
void hb_ctimer_ws_seen(hb_client_t *c)
{
    c->rx_tick = c->svc->wheel.now;
    c->ping_out = 0;
}

void hb_svc_poll_timer(hb_client_t *c, lws_usec_t us)
{
    hb_svc_t *s = c->svc;
    if (!us) {
        hb_wheel_cancel(&s->wheel, &c->tnode);
        return;
    }
    /* the first tick that starts at or after the deadline: never early */
    hb_wheel_arm(&s->wheel, &c->tnode, svc_tick_of(lws_now_usecs() + us - 1) + 1);
}

/* One client timer in the wheel: what it means is its transport's (ops->timer). */
static void timer_fire(hb_wheel_node_t *n, void *arg)
{
    hb_client_t *c = lws_container_of(n, hb_client_t, tnode);
    if (c->ops && c->ops->timer)
        c->ops->timer(c, *(lws_usec_t *)arg);
}

void hb_ctimer_init(hb_svc_t *s)
{
    int fd;
    s->peer_ep = epoll_create1(EPOLL_CLOEXEC); /* -1: SSE peers are peeked once a second */
    s->peer_wsi = NULL;
    hb_wheel_init(&s->wheel, svc_tick_of(lws_now_usecs()));
    /* lws closes what it adopted: it gets a duplicate, peer_ep stays ours */
    if (s->peer_ep >= 0 && s->vhost && (fd = fcntl(s->peer_ep, F_DUPFD_CLOEXEC, 0)) >= 0) {
        lws_sock_file_fd_type f = {.filefd = fd};
        /* on failure lws may have closed fd already: left as it is (one descriptor at most) */
        s->peer_wsi =
            lws_adopt_descriptor_vhost(s->vhost, LWS_ADOPT_RAW_FILE_DESC, f, "http", NULL);
    }
}

void hb_ctimer_peers_ready(hb_svc_t *s)
{
    sse_peers_check(s);
}

void hb_ctimer_free(hb_svc_t *s)
{
    if (s->peer_ep >= 0)
        close(s->peer_ep);
    s->peer_ep = -1;
}

void hb_ctimer_tick(hb_svc_t *s, lws_usec_t now)
{
    /* The heartbeats and pings due now go straight to their sockets, all of them in one
     * io_uring submission after the timers (--io-uring; one send(2) each without it), as an
     * event's fan-out does; not each through a writable callback (two epoll changes and a
     * wake-up per idle stream and heartbeat). Those that must wait behind a queue are written
     * at once after the tick (hb_svc_flush), as after a broker batch. */
    s->batching = 1;
    hb_wheel_advance(&s->wheel, svc_tick_of(now), timer_fire, &now);
    s->batching = 0;
    hb_svc_send_batch(s);
    hb_svc_flush(s);
    sse_peers_check(s);
}

void hb_ctimer_sse_start(hb_client_t *c)
{
    sse_timer_arm(c, lws_now_usecs());
    sse_watch(c, 1);
}

void hb_ctimer_peer_end(hb_svc_t *s, hb_client_t *c)
{
    (void)s;
    sse_watch(c, 0);
}

void hb_ctimer_peer_watch(hb_client_t *c, int add)
{
    sse_watch(c, add);
}

void hb_ctimer_ws_start(hb_client_t *c)
{
    if (!c->svc->edge->cfg.ws_ping_interval)
        return;
    hb_ctimer_ws_seen(c);
    ws_timer_arm(c);
}

void hb_ctimer_end(hb_svc_t *s, hb_client_t *c)
{
    hb_wheel_cancel(&s->wheel, &c->tnode); /* c->svc is NULL when no request came */
    if (c->counted && c->counted->end)
        c->counted->end(s, c);
}
