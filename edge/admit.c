/*
 * Admission (see admit.h). Everything here but ip_count and the edge's counters is ONLY read or
 * written from the owning service thread.
 *
 * Why heads are counted and cut by us and not only by lws: lws 4.1 gives a socket a header
 * table ("ah") from a per-context pool and parks it on a wait list when the pool is empty, with
 * a timeout that restarts when it gets one; idle sockets holding every table made new clients
 * wait a whole --handshake-timeout or longer. The pool is now as large as the socket limit, and
 * the deadline runs from accept, whatever the socket sends in between.
 */
#define _GNU_SOURCE /* accept4 */
#include "admit.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "hb_dict.h"
#include "hb_list.h"
#include "hb_log.h"
#include "hb_mem.h"

#define MOD "admit"
#define ACCEPTS_PER_WAKE 64
#define IP_BUCKETS 65536
/* A head younger than this is not evicted: its request may be in the socket unread yet. */
#define EVICT_MIN_AGE_US (50 * 1000)
/* Past --max-connections-per-ip a socket gets this long for its request (it is refused then
 * with its transport's signal; a browser's request comes at once). */
#define OVER_IP_DEADLINE_S 1
/* accept() out of descriptors (EMFILE, ENFILE...): listen again after this long. */
#define ACCEPT_PAUSE_US (100 * 1000)

/* Connections per source address, hashed into buckets shared by all threads. */
static atomic_uint ip_count[IP_BUCKETS];

/* One accepted socket. {service thread} */
typedef struct hb_conn {
    struct lws *wsi;
    lws_usec_t deadline;
    uint32_t bucket;  /* per-address bucket + 1; 0: not counted */
    uint8_t over_ip;  /* came past --max-connections-per-ip */
    lws_usec_t since; /* since when it waits: HEAD accepted, IDLE answered, BODY its head */
    uint8_t state;    /* C_HEAD, C_BUSY, C_IDLE, C_BODY */
    uint8_t served;   /* sent a whole request (or its close was counted) */
    uint8_t no_count; /* TLS: its end was counted as incomplete already */
    hb_list_t link;   /* in the head, idle or body list (self-linked while BUSY) */
} hb_conn_t;

/* HEAD: no whole request yet (on the head list); BUSY: a request or stream under way;
 * IDLE: kept alive between requests (on the idle list; lws cuts it after --idle-timeout);
 * BODY: a whole head whose body is still coming (on the body list: lws' own body timeout
 * starts again at every byte, so a body sent a byte now and then held the socket for hours). */
enum { C_HEAD = 0, C_BUSY, C_IDLE, C_BODY };

struct hb_admit {
    hb_edge_t *edge;
    struct lws_vhost *vhost;
    struct lws *listener;
    int listen_fd; /* until lws adopted it */
    int tls;
    int paused;
    hb_dict_t *conns; /* struct lws * -> hb_conn_t */
    /* of hb_conn_t.link, oldest first */
    hb_list_t heads;  /* in accept order, so in deadline order */
    hb_list_t idle;   /* in the order they became idle */
    hb_list_t bodies; /* in the order their heads were whole, so in deadline order */
    lws_sorted_usec_list_t sul_resume;
};

static uint32_t ip_hash(const struct sockaddr_storage *ss)
{
    const unsigned char *p;
    size_t n;
    uint32_t h = 2166136261u;
    if (ss->ss_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        n = 16;
    } else {
        p = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
        n = 4;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % IP_BUCKETS;
}

/* A TLS connection ended before any HTTP request: counted with the incomplete requests. */
static void tls_no_request(hb_admit_t *a)
{
    atomic_fetch_add_explicit(&a->edge->stats.rejected_incomplete, 1, memory_order_relaxed);
    hb_log_ratelimited("tls-no-request", 10000, HB_LOG_INFO, MOD,
                       "TLS connection closed before a request (failed handshake, plain HTTP on "
                       "the TLS port, or idle)",
                       NULL);
}

/* The oldest connection of list l, or NULL when it is empty. */
static hb_conn_t *conn_first(const hb_list_t *l)
{
    hb_list_t *n = hb_list_first(l);
    return n ? hb_list_container(n, hb_conn_t, link) : NULL;
}

/* Takes `c` off its list (HEAD or IDLE); it is BUSY then. */
static void conn_unlink(hb_conn_t *c)
{
    hb_list_unlink(&c->link);
    c->state = C_BUSY;
}

/* Appends a BUSY `c` to the list of `state` (C_HEAD or C_IDLE). */
static void conn_append(hb_admit_t *a, hb_conn_t *c, int state)
{
    c->state = (uint8_t)state;
    hb_list_push_tail(state == C_HEAD   ? &a->heads
                      : state == C_IDLE ? &a->idle
                                        : &a->bodies,
                      &c->link);
}

/* Closes a head or idle socket now (lws runs its close and WSI_DESTROY callbacks before
 * returning). */
static void conn_kill(hb_conn_t *c)
{
    conn_unlink(c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HOLDING_AH, LWS_TO_KILL_SYNC);
}

/* Closes this thread's socket that waited longest for a request (a head since accept, an idle
 * one since its last answer, one sending a body since its head) to make room; 0 when there is
 * none old enough. */
static int evict_oldest(hb_admit_t *a, lws_usec_t now)
{
    const hb_list_t *lists[] = {&a->heads, &a->idle, &a->bodies};
    hb_conn_t *c = NULL;
    for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
        hb_conn_t *f = conn_first(lists[k]); /* each list is in `since` order */
        if (f && now - f->since >= EVICT_MIN_AGE_US && (!c || f->since < c->since))
            c = f;
    }
    if (!c)
        return 0;
    atomic_fetch_add_explicit(&a->edge->stats.evicted, 1, memory_order_relaxed);
    hb_log_ratelimited("evict", 5000, HB_LOG_WARN, MOD,
                       "socket limit reached: closing the socket that waited longest for a "
                       "request",
                       "{s:I,s:s}", "limit", (json_int_t)a->edge->sock_limit, "state",
                       c->state == C_HEAD   ? "no request yet"
                       : c->state == C_IDLE ? "idle keep-alive"
                                            : "request body under way");
    conn_kill(c);
    return 1;
}

static void on_resume(lws_sorted_usec_list_t *sul)
{
    hb_admit_t *a = lws_container_of(sul, hb_admit_t, sul_resume);
    a->paused = 0;
    lws_rx_flow_control(a->listener, 1);
}

/* accept() found no descriptor: stop listening for a moment (the pending connections wait in
 * the backlog) and free one by evicting the oldest head, instead of failing again at once. */
static void accept_pause(hb_admit_t *a, int err)
{
    atomic_fetch_add_explicit(&a->edge->stats.accept_pauses, 1, memory_order_relaxed);
    hb_log_ratelimited("accept", 1000, HB_LOG_WARN, MOD,
                       "accept failed: out of descriptors, pausing accept", "{s:s,s:i}", "err",
                       strerror(err), "pause_ms", ACCEPT_PAUSE_US / 1000);
    evict_oldest(a, lws_now_usecs());
    if (a->paused)
        return;
    a->paused = 1;
    lws_rx_flow_control(a->listener, 0);
    lws_sul_schedule(lws_get_context(a->listener), 0, &a->sul_resume, on_resume, ACCEPT_PAUSE_US);
}

/* Room for one more socket: under the limit, or its oldest head evicted. */
static int room_for_one(hb_admit_t *a, lws_usec_t now)
{
    if (atomic_load_explicit(&a->edge->stats.sockets, memory_order_relaxed) <
        (unsigned long long)a->edge->sock_limit)
        return 1;
    return evict_oldest(a, now);
}

static void adopt(hb_admit_t *a, int fd, const struct sockaddr_storage *ss, lws_usec_t now)
{
    const hb_cfg_t *cfg = &a->edge->cfg;
    hb_conn_t *c;
    struct lws *w;
    int one = 1;
    /* lws sets TCP_NODELAY only on what it accepts itself. Without it an answer or event
     * written while an earlier write is unacknowledged waits for the peer's delayed ACK
     * (~40 ms on Linux): a publish on a kept-alive connection took 44 ms instead of 1. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->send_buffer) {
        int sb = (int)cfg->send_buffer;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    }
    c = hb_xcalloc(1, sizeof(*c));
    hb_list_init(&c->link);
    c->since = now;
    c->deadline = now + (lws_usec_t)cfg->handshake_timeout * LWS_USEC_PER_SEC;
    if (cfg->max_connections_per_ip) {
        /* counted now, refused at its first request with the transport's own signal
         * (200 + retry for SSE), so a browser keeps retrying; until then it has a second */
        uint32_t b = ip_hash(ss);
        c->bucket = b + 1;
        if (atomic_fetch_add(&ip_count[b], 1) >= (unsigned)cfg->max_connections_per_ip)
            c->over_ip = 1;
    }
    /* with --tls-cert the vhost has an SSL_CTX and lws runs the handshake first */
    w = lws_adopt_descriptor_vhost(
        a->vhost, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | (a->tls ? LWS_ADOPT_ALLOW_SSL : 0),
        (lws_sock_file_fd_type){.sockfd = fd}, NULL, NULL);
    if (!w) {
        if (c->bucket) /* lws refused it (fd limit) and closed it */
            atomic_fetch_sub(&ip_count[c->bucket - 1], 1);
        if (a->tls) /* or its first bytes were already there and were not TLS */
            tls_no_request(a);
        free(c);
        return;
    }
    c->wsi = w;
    atomic_fetch_add_explicit(&a->edge->stats.sockets, 1, memory_order_relaxed);
    hb_dict_set(a->conns, &w, sizeof(w), c);
    conn_append(a, c, C_HEAD);
    if (c->over_ip)
        lws_set_timeout(w, PENDING_TIMEOUT_HOLDING_AH, OVER_IP_DEADLINE_S);
}

void hb_admit_accept(hb_admit_t *a)
{
    lws_usec_t now = lws_now_usecs();
    if (a->paused)
        return;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(a->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                accept_pause(a, err);
            else if (err == ECONNABORTED || err == EPROTO || err == EPERM)
                continue; /* that connection is gone; the next may be fine */
            else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
                hb_log_ratelimited("accept", 1000, HB_LOG_WARN, MOD, "accept failed", "{s:s}",
                                   "err", strerror(err));
            return;
        }
        if (!room_for_one(a, now)) {
            /* at the socket limit with no head to evict: refuse it at once, so the
             * descriptors kept in reserve are never taken by clients */
            atomic_fetch_add_explicit(&a->edge->stats.rejected_sock_limit, 1, memory_order_relaxed);
            hb_log_ratelimited("socket-limit", 5000, HB_LOG_WARN, MOD,
                               "connection refused: socket limit (from RLIMIT_NOFILE)", "{s:I}",
                               "limit", (json_int_t)a->edge->sock_limit);
            close(fd);
            continue;
        }
        adopt(a, fd, &ss, now);
    }
}

void hb_admit_served(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    if (!c)
        return;
    c->served = 1;
    conn_unlink(c);
}

void hb_admit_body(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    if (!c || c->state != C_BUSY)
        return;
    c->since = lws_now_usecs();
    c->deadline = c->since + (lws_usec_t)a->edge->cfg.handshake_timeout * LWS_USEC_PER_SEC;
    conn_append(a, c, C_BODY);
}

void hb_admit_body_done(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    if (c && c->state == C_BODY)
        conn_unlink(c);
}

int hb_admit_was_served(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    return c && c->served;
}

void hb_admit_idle(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    /* lws binds the protocol before each request too: only a BUSY socket becomes idle (or one
     * whose body lws discarded after an early answer) */
    if (!c || (c->state != C_BUSY && c->state != C_BODY))
        return;
    conn_unlink(c);
    c->since = lws_now_usecs();
    conn_append(a, c, C_IDLE);
}

int hb_admit_closed_head(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    if (!c || c->served)
        return 0;
    c->served = 1;
    c->no_count = 1;
    conn_unlink(c);
    return 1;
}

int hb_admit_ip_over(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c = hb_dict_get(a->conns, &wsi, sizeof(wsi));
    return c && c->over_ip;
}

void hb_admit_destroyed(hb_admit_t *a, struct lws *wsi)
{
    hb_conn_t *c;
    if (wsi == a->listener) {
        a->listener = NULL;
        lws_sul_cancel(&a->sul_resume);
        return;
    }
    c = hb_dict_del(a->conns, &wsi, sizeof(wsi));
    if (!c)
        return;
    conn_unlink(c);
    if (c->bucket)
        atomic_fetch_sub(&ip_count[c->bucket - 1], 1);
    atomic_fetch_sub_explicit(&a->edge->stats.sockets, 1, memory_order_relaxed);
    /* With TLS, a connection that never got to HTTP (failed handshake, plain HTTP on the TLS
     * port) gets no CLOSED_HTTP: count it here like a plain one that sent no whole request. */
    if (a->tls && !c->served && !c->no_count)
        tls_no_request(a);
    free(c);
}

void hb_admit_each(hb_admit_t *a, void (*fn)(struct lws *wsi, void *arg), void *arg)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(a->conns, &it, &k, &klen, &v))
        fn(((hb_conn_t *)v)->wsi, arg);
}

void hb_admit_tick(hb_admit_t *a)
{
    lws_usec_t now = lws_now_usecs();
    hb_conn_t *c;
    /* the list is in accept order and every head has the same budget: stop at the first
     * one still within it */
    while ((c = conn_first(&a->heads)) && c->deadline <= now)
        conn_kill(c);
    /* likewise the bodies: every one has --handshake-timeout from its head */
    while ((c = conn_first(&a->bodies)) && c->deadline <= now) {
        atomic_fetch_add_explicit(&a->edge->stats.rejected_incomplete, 1, memory_order_relaxed);
        hb_log_ratelimited("body-deadline", 5000, HB_LOG_INFO, MOD,
                           "request body not whole within --handshake-timeout of its head: closed",
                           NULL);
        conn_kill(c);
    }
}

hb_admit_t *hb_admit_new(hb_edge_t *edge, struct lws_vhost *vhost, int listen_fd, int tls)
{
    hb_admit_t *a = hb_xcalloc(1, sizeof(*a));
    lws_sock_file_fd_type fd = {.filefd = listen_fd};
    a->edge = edge;
    a->vhost = vhost;
    a->listen_fd = listen_fd;
    a->tls = tls;
    a->conns = hb_dict_new();
    hb_list_init(&a->heads);
    hb_list_init(&a->idle);
    hb_list_init(&a->bodies);
    a->listener = lws_adopt_descriptor_vhost(vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "http", NULL);
    if (!a->listener) {
        hb_dict_free(a->conns);
        free(a);
        return NULL;
    }
    return a;
}

void hb_admit_free(hb_admit_t *a)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    if (!a)
        return;
    while (hb_dict_next(a->conns, &it, &k, &klen, &v))
        free(v);
    hb_dict_free(a->conns);
    free(a);
}
