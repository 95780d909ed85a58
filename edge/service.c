/*
 * A service thread: one lws context listening on the shared port, serving SSE, health and
 * readiness. Everything in struct hb_svc and every client is ONLY read or written from this
 * thread, except `inq` (its own lock), `nclients` (atomic) and `drain_req` (atomic).
 *
 * Fan-out: the broker hands over one EVENT message per topic event; each subscribed client's
 * queue takes a reference to the message's shared SSE frame (no copy, no allocation per
 * recipient). On writable, a client's queued frames are coalesced into one lws_write().
 */
#define _GNU_SOURCE /* accept4 */
#include "service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_sse.h"

#define MOD "service"
#define MSGS_PER_WAKE 512
#define PATH_MAX_BYTES 2048
#define DRAIN_VARIANTS 8
#define ACCEPTS_PER_WAKE 64

static int client_enqueue(hb_client_t *c, hb_buf_t *b);
static void client_close(hb_client_t *c, const char *why);

/* ---- topics (per thread) ---- */

static void topic_tell_broker(hb_svc_t *s, ltopic_t *t, hb_req_type_t type)
{
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    int was_empty = 0;
    q->type = type;
    q->thread = s->idx;
    memcpy(q->topic, t->name, t->len);
    q->topic_len = t->len;
    if (hb_queue_push(s->edge->to_broker, q, &was_empty) != 0) {
        free(q);
        t->dirty = 1; /* retried from the housekeeping timer */
        atomic_fetch_add_explicit(&s->edge->stats.req_drops, 1, memory_order_relaxed);
        return;
    }
    t->dirty = 0;
    t->told = type == HB_REQ_SUB;
    hb_broker_wake(s->edge->broker);
}

static ltopic_t *topic_attach(hb_svc_t *s, hb_client_t *c, const char *name, size_t len)
{
    ltopic_t *t = hb_dict_get(s->topics, name, len);
    if (!t) {
        t = hb_xcalloc(1, sizeof(*t));
        memcpy(t->name, name, len);
        t->len = len;
        hb_dict_set(s->topics, name, len, t);
    }
    c->topic = t;
    c->next = t->head;
    if (t->head)
        t->head->prev = c;
    t->head = c;
    if (t->nclients++ == 0 && !t->told)
        topic_tell_broker(s, t, HB_REQ_SUB);
    return t;
}

static void topic_detach(hb_svc_t *s, hb_client_t *c)
{
    ltopic_t *t = c->topic;
    if (!t)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->topic = NULL;
    c->next = c->prev = NULL;
    if (--t->nclients == 0) {
        if (t->told)
            topic_tell_broker(s, t, HB_REQ_UNSUB);
        if (!t->told && !t->dirty) {
            hb_dict_del(s->topics, t->name, t->len);
            free(t);
        }
    }
}

/* ---- client queue ---- */

static void queue_release(hb_client_t *c)
{
    while (c->qlen) {
        hb_buf_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    free(c->q);
    c->q = NULL;
    c->qcap = c->qhead = 0;
    c->qbytes = 0;
    c->off = 0;
    for (uint32_t i = 0; i < c->npend; i++)
        hb_msg_unref(c->pend[i]);
    free(c->pend);
    c->pend = NULL;
    c->npend = c->cappend = 0;
}

/* Queues one shared frame for the client (taking a new ref). 0, or -1 when it was cut off. */
static int client_enqueue(hb_client_t *c, hb_buf_t *b)
{
    hb_svc_t *s = c->svc;
    if (c->state == C_CLOSING)
        return -1;
    if (c->qlen >= (uint32_t)s->edge->cfg.client_queue_max ||
        c->qbytes + hb_buf_len(b) > (size_t)s->edge->cfg.client_queue_bytes) {
        atomic_fetch_add_explicit(&s->edge->stats.slow_disconnects, 1, memory_order_relaxed);
        client_close(c, "slow consumer: queue limit reached");
        return -1;
    }
    if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 8;
        hb_buf_t **nq = hb_xmalloc(ncap * sizeof(*nq));
        for (uint32_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = hb_buf_ref(b);
    c->qlen++;
    c->qbytes += hb_buf_len(b);
    if (c->qlen == 1)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* Marks the client closed: frees its queue now and lets lws close the socket asynchronously. */
static void client_close(hb_client_t *c, const char *why)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    hb_log_debug(MOD, "closing client", "{s:s,s:I}", "why", why, "client", (long long)c->id);
    queue_release(c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void client_request_history(hb_client_t *c, const hb_cursor_t *cur)
{
    hb_svc_t *s = c->svc;
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    int was_empty = 0;
    q->type = HB_REQ_HISTORY;
    q->thread = s->idx;
    q->client_id = c->id;
    memcpy(q->topic, c->topic->name, c->topic->len);
    q->topic_len = c->topic->len;
    q->cursor = *cur;
    if (hb_queue_push(s->edge->to_broker, q, &was_empty) != 0) {
        free(q);
        atomic_fetch_add_explicit(&s->edge->stats.req_drops, 1, memory_order_relaxed);
        client_close(c, "broker queue full");
        return;
    }
    c->want_more = 0;
    hb_broker_wake(s->edge->broker);
}

static void client_deliver(hb_client_t *c, hb_msg_t *m)
{
    if (!m->control) {
        if (c->have_last && hb_id_cmp(&m->id, &c->last) <= 0)
            return;
        c->last = m->id;
        c->have_last = 1;
    }
    if (client_enqueue(c, m->sse) == 0)
        atomic_fetch_add_explicit(&c->svc->edge->stats.deliveries, 1, memory_order_relaxed);
}

/* ---- messages from the broker ---- */

static void on_event(hb_svc_t *s, hb_msg_t *m)
{
    ltopic_t *t = hb_dict_get(s->topics, m->topic, m->topic_len);
    hb_client_t *c, *next;
    if (!t)
        return;
    if (t->have_seq && m->seq != t->seq + 1) {
        /* An event for this topic was dropped on the way: its clients resume from history. */
        for (c = t->head; c; c = c->next)
            client_close(c, "event lost in hand-off");
    }
    t->seq = m->seq;
    t->have_seq = 1;
    for (c = t->head; c; c = next) {
        next = c->next;
        if (c->state == C_LIVE) {
            client_deliver(c, m);
        } else if (c->state == C_RESUMING) {
            if (c->npend >= (uint32_t)s->edge->cfg.client_queue_max) {
                atomic_fetch_add_explicit(&s->edge->stats.slow_disconnects, 1,
                                          memory_order_relaxed);
                client_close(c, "too many live events while resuming");
                continue;
            }
            if (c->npend == c->cappend) {
                c->cappend = c->cappend ? c->cappend * 2 : 8;
                c->pend = hb_xrealloc(c->pend, c->cappend * sizeof(*c->pend));
            }
            c->pend[c->npend++] = hb_msg_ref(m);
        }
    }
}

static void client_finish_resume(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    uint64_t id = c->id;
    hb_dict_del(s->resuming, &id, sizeof(id));
    c->state = C_LIVE;
    for (uint32_t i = 0; i < c->npend && c->state == C_LIVE; i++)
        client_deliver(c, c->pend[i]);
    for (uint32_t i = 0; i < c->npend; i++)
        hb_msg_unref(c->pend[i]);
    free(c->pend);
    c->pend = NULL;
    c->npend = c->cappend = 0;
}

static void on_history(hb_svc_t *s, hb_msg_t *m)
{
    uint64_t id = m->client_id;
    hb_client_t *c = hb_dict_get(s->resuming, &id, sizeof(id));
    if (!c || c->state != C_RESUMING)
        return;
    if (m->error) {
        client_close(c, "history read failed");
        return;
    }
    if (m->gap != HB_GAP_NONE && !c->history_started) {
        hb_buf_t *g = hb_gap_frame(c->topic->name, c->topic->len, m->gap);
        if (g) {
            client_enqueue(c, g);
            hb_buf_unref(g);
        }
        if (m->gap == HB_GAP_RESET)
            c->have_last = 0;
    }
    c->history_started = 1;
    for (size_t i = 0; i < m->n && c->state == C_RESUMING; i++) {
        if (c->have_last && hb_id_cmp(&m->ids[i], &c->last) <= 0)
            continue;
        c->last = m->ids[i];
        c->have_last = 1;
        if (client_enqueue(c, m->frames[i]) == 0)
            atomic_fetch_add_explicit(&s->edge->stats.deliveries, 1, memory_order_relaxed);
    }
    if (c->state != C_RESUMING)
        return;
    if (m->more) {
        c->want_more = 1;
        if (c->qlen < (uint32_t)s->edge->cfg.client_queue_max / 2) {
            hb_cursor_t cur = {.id = c->last, .epoch = ""};
            client_request_history(c, &cur);
        }
        return;
    }
    client_finish_resume(c);
}

static void drain_clients(hb_svc_t *s)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    int i = 0;
    while (hb_dict_next(s->topics, &it, &k, &klen, &v)) {
        for (hb_client_t *c = ((ltopic_t *)v)->head; c; c = c->next) {
            if (c->state == C_CLOSING)
                continue;
            /* a jittered retry so the clients do not all come back at the same moment */
            client_enqueue(c, s->drain_frames[i++ % DRAIN_VARIANTS]);
            c->close_after_flush = 1;
            lws_callback_on_writable(c->wsi);
        }
    }
}

static void svc_process_inbox(hb_svc_t *s)
{
    void *items[MSGS_PER_WAKE];
    size_t n = hb_queue_pop(s->inq, items, MSGS_PER_WAKE);
    for (size_t i = 0; i < n; i++) {
        hb_msg_t *m = items[i];
        if (m->type == HB_MSG_EVENT)
            on_event(s, m);
        else
            on_history(s, m);
        hb_msg_unref(m);
    }
    if (n == MSGS_PER_WAKE)
        lws_cancel_service(s->ctx); /* bounded work per wake-up: come back for the rest */
    if (atomic_load(&s->drain_req) && !s->draining) {
        s->draining = 1;
        drain_clients(s);
    }
}

/* ---- periodic: heartbeats, retry of refused broker requests ---- */

static void on_housekeeping(lws_sorted_usec_list_t *sul)
{
    hb_svc_t *s = lws_container_of(sul, hb_svc_t, sul_hb);
    lws_usec_t now = lws_now_usecs();
    lws_usec_t hb = (lws_usec_t)s->edge->cfg.heartbeat * LWS_USEC_PER_SEC;
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(s->topics, &it, &k, &klen, &v)) {
        ltopic_t *t = v;
        if (t->dirty)
            topic_tell_broker(s, t, t->nclients ? HB_REQ_SUB : HB_REQ_UNSUB);
        if (!t->nclients && !t->told && !t->dirty) {
            hb_dict_del(s->topics, t->name, t->len);
            free(t);
            continue;
        }
        for (hb_client_t *c = t->head; c; c = c->next)
            if (c->state != C_CLOSING && now - c->last_write >= hb - LWS_USEC_PER_SEC / 4 &&
                c->qlen == 0)
                client_enqueue(c, s->hb_frame);
    }
    lws_sul_schedule(s->ctx, 0, &s->sul_hb, on_housekeeping, LWS_USEC_PER_SEC / 4);
}

/* ---- HTTP ---- */

static int add_common_headers(hb_svc_t *s, struct lws *wsi, unsigned status, const char *ctype,
                              lws_filepos_t len, unsigned char **p, unsigned char *end)
{
    if (lws_add_http_common_headers(wsi, status, ctype, len, p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-herald-node:",
                                    (const unsigned char *)s->edge->cfg.node_id,
                                    (int)strlen(s->edge->cfg.node_id), p, end))
        return -1;
    return 0;
}

/* Answers with a short text/plain body (written from the writable callback). */
static int respond(hb_svc_t *s, hb_client_t *c, struct lws *wsi, unsigned status,
                   const char *body, int close_after)
{
    unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    size_t blen = strlen(body);
    c->kind = K_SIMPLE;
    c->wsi = wsi;
    c->close_after_flush = close_after;
    c->simple_len = blen < sizeof(c->simple) - 1 ? blen : sizeof(c->simple) - 1;
    memcpy(c->simple, body, c->simple_len);
    if (status >= 400)
        atomic_fetch_add_explicit(&s->edge->stats.bad_requests, 1, memory_order_relaxed);
    if (add_common_headers(s, wsi, status, "text/plain; charset=utf-8", c->simple_len, &p, end))
        return -1;
    if (status == 405 &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                    (const unsigned char *)"GET", 3, &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int respond_400(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *reason)
{
    char body[256];
    snprintf(body, sizeof(body), "%s\n", reason);
    hb_log_ratelimited("bad-request", 1000, HB_LOG_INFO, MOD, "bad request", "{s:s}", "err",
                       reason);
    return respond(s, c, wsi, 400, body, 0);
}

/* Reads the resume cursor from Last-Event-ID or ?lastEventId=. 1 found, 0 none, -1 bad. */
static int read_cursor(struct lws *wsi, hb_cursor_t *cur, const char **reason)
{
    char buf[HB_CURSOR_MAX + 16];
    int n = lws_hdr_custom_length(wsi, "last-event-id:", 14);
    if (n > 0) {
        if (n >= HB_CURSOR_MAX) {
            *reason = "Last-Event-ID is too long";
            return -1;
        }
        if (lws_hdr_custom_copy(wsi, buf, sizeof(buf), "last-event-id:", 14) < 0) {
            *reason = "Last-Event-ID could not be read";
            return -1;
        }
        return hb_cursor_parse(buf, strlen(buf), cur, reason) ? -1 : 1;
    }
    for (int i = 0;; i++) {
        char arg[HB_CURSOR_MAX + 32];
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len <= 0)
            return 0;
        if (len >= (int)sizeof(arg)) {
            if (len >= 12 && lws_hdr_copy_fragment(wsi, arg, 13, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
                continue;
            if (!strncmp(arg, "lastEventId=", 12)) {
                *reason = "lastEventId is too long";
                return -1;
            }
            continue;
        }
        if (lws_hdr_copy_fragment(wsi, arg, sizeof(arg), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            continue;
        if (!strncmp(arg, "lastEventId=", 12)) {
            if (!arg[12])
                return 0;
            return hb_cursor_parse(arg + 12, strlen(arg + 12), cur, reason) ? -1 : 1;
        }
    }
}

static int sse_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic, size_t tlen)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    const char *reason = NULL;
    hb_cursor_t cur;
    int has_cursor;
    size_t total = 0;

    if (hb_topic_validate(topic, tlen, &reason))
        return respond_400(s, c, wsi, reason);
    has_cursor = read_cursor(wsi, &cur, &reason);
    if (has_cursor < 0)
        return respond_400(s, c, wsi, reason);
    for (int i = 0; i < s->edge->nthreads; i++)
        total += hb_svc_clients(s->edge->svcs[i]);

    if (add_common_headers(s, wsi, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN, &p,
                           end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);

    c->kind = K_SSE;
    c->wsi = wsi;
    c->svc = s;
    c->id = ++s->next_id;
    c->last_write = lws_now_usecs();
    atomic_fetch_add(&s->nclients, 1);
    atomic_fetch_add_explicit(&s->edge->stats.connections, 1, memory_order_relaxed);

    if (s->draining || total >= (size_t)s->edge->cfg.max_connections) {
        /* Overload and drain are 200 + retry + close: EventSource keeps retrying. */
        c->state = C_LIVE;
        client_enqueue(c, s->drain_frames[c->id % DRAIN_VARIANTS]);
        c->close_after_flush = 1;
        lws_http_headers_detach(wsi);
        return 0;
    }
    topic_attach(s, c, topic, tlen);
    client_enqueue(c, s->retry_frame);
    if (has_cursor > 0) {
        uint64_t id = c->id;
        c->state = C_RESUMING;
        c->last = cur.id;
        c->have_last = 1;
        hb_dict_set(s->resuming, &id, sizeof(id), c);
        client_request_history(c, &cur);
    } else {
        c->state = C_LIVE;
    }
    /* `topic` points into the header buffer: only now give it back to the pool */
    lws_http_headers_detach(wsi);
    return 0;
}

static int on_http(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *path)
{
    size_t plen = strlen(path);
    int is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;

    c->svc = s;
    if (plen > PATH_MAX_BYTES)
        return respond_400(s, c, wsi, "path is too long");
    if (!strcmp(path, "/healthz"))
        return respond(s, c, wsi, 200, "ok\n", !is_get);
    if (!strcmp(path, "/readyz")) {
        if (atomic_load(&s->edge->stats.draining))
            return respond(s, c, wsi, 503, "draining\n", !is_get);
        return atomic_load(&s->edge->stats.ready) ? respond(s, c, wsi, 200, "ready\n", !is_get)
                                                  : respond(s, c, wsi, 503, "not ready\n", !is_get);
    }
    if (!strncmp(path, "/events/", 8)) {
        if (!is_get)
            return respond(s, c, wsi, 405, "method not allowed: use GET\n", 1);
        return sse_start(s, c, wsi, path + 8, plen - 8);
    }
    if (!strcmp(path, "/events"))
        return respond_400(s, c, wsi, "topic is empty");
    if (!strcmp(path, "/") || !strcmp(path, "/index.html")) {
        /* The demo page (edge/demo.html, embedded at build time), written at once: lws keeps
         * what the socket does not take and completes the transaction after it. */
        extern const unsigned char hb_demo_html[];
        extern const size_t hb_demo_html_len;
        unsigned char hdr[LWS_PRE + 512], *p = hdr + LWS_PRE, *end = hdr + sizeof(hdr), *body;
        int n;
        if (!is_get)
            return respond(s, c, wsi, 405, "method not allowed: use GET\n", 1);
        if (add_common_headers(s, wsi, 200, "text/html; charset=utf-8", hb_demo_html_len, &p,
                               end) ||
            lws_finalize_write_http_header(wsi, hdr + LWS_PRE, &p, end))
            return -1;
        body = malloc(LWS_PRE + hb_demo_html_len);
        if (!body)
            return -1;
        memcpy(body + LWS_PRE, hb_demo_html, hb_demo_html_len);
        n = lws_write(wsi, body + LWS_PRE, hb_demo_html_len, LWS_WRITE_HTTP_FINAL);
        free(body);
        if (n < 0)
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    return respond(s, c, wsi, 404, "not found\n", !is_get);
}

static int write_simple(hb_client_t *c, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + sizeof(c->simple)];
    memcpy(buf + LWS_PRE, c->simple, c->simple_len);
    if (lws_write(wsi, buf + LWS_PRE, c->simple_len, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    if (c->close_after_flush)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Coalesces the queued frames into one write of at most HB_SVC_WBUF bytes. */
static int write_sse(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    unsigned char *start = s->wbuf + LWS_PRE;
    size_t n = 0;
    if (c->state == C_CLOSING)
        return -1;
    while (c->qlen && n < HB_SVC_WBUF) {
        hb_buf_t *b = c->q[c->qhead];
        size_t avail = hb_buf_len(b) - c->off;
        size_t take = avail < HB_SVC_WBUF - n ? avail : HB_SVC_WBUF - n;
        memcpy(start + n, hb_buf_data(b) + c->off, take);
        n += take;
        c->off += take;
        if (c->off == hb_buf_len(b)) {
            c->qbytes -= hb_buf_len(b);
            hb_buf_unref(b);
            c->off = 0;
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qlen--;
        }
    }
    if (n) {
        if (lws_write(wsi, start, n, LWS_WRITE_HTTP) < 0)
            return -1;
        c->last_write = lws_now_usecs();
        atomic_fetch_add_explicit(&s->edge->stats.bytes_out, n, memory_order_relaxed);
    }
    if (c->qlen) {
        lws_callback_on_writable(wsi);
    } else {
        if (c->close_after_flush)
            return -1;
        if (c->qcap > 64) { /* give back a queue that grew during a burst */
            free(c->q);
            c->q = NULL;
            c->qcap = c->qhead = 0;
        }
    }
    if (c->want_more && c->state == C_RESUMING &&
        c->qlen < (uint32_t)s->edge->cfg.client_queue_max / 2) {
        hb_cursor_t cur = {.id = c->last, .epoch = ""};
        client_request_history(c, &cur);
    }
    return 0;
}

static void client_cleanup(hb_svc_t *s, hb_client_t *c)
{
    if (c->cleaned)
        return;
    c->cleaned = 1;
    if (c->kind != K_SSE)
        return;
    if (c->state == C_RESUMING) {
        uint64_t id = c->id;
        hb_dict_del(s->resuming, &id, sizeof(id));
    }
    topic_detach(s, c);
    queue_release(c);
    atomic_fetch_sub(&s->nclients, 1);
    atomic_fetch_sub_explicit(&s->edge->stats.connections, 1, memory_order_relaxed);
}

static void svc_accept(hb_svc_t *s)
{
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                hb_log_ratelimited("accept", 1000, HB_LOG_WARN, MOD, "accept failed", "{s:s}",
                                   "err", strerror(errno));
            return;
        }
        if (!lws_adopt_socket_vhost(s->vhost, fd))
            close(fd); /* lws could not take it (fd limit): refuse */
    }
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    hb_svc_t *s = ctx ? lws_context_user(ctx) : NULL;
    hb_client_t *c = user;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s)
            svc_process_inbox(s);
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        /* our listening socket is readable: accept a bounded batch and hand them to lws */
        if (s)
            svc_accept(s);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        return 0;
    case LWS_CALLBACK_HTTP:
        if (!c)
            return -1;
        memset(c, 0, sizeof(*c));
        return on_http(s, c, wsi, (const char *)in);
    case LWS_CALLBACK_HTTP_BODY:
        return 0; /* we never read bodies yet; the response closes the connection */
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c)
            return -1;
        if (c->kind == K_SIMPLE)
            return write_simple(c, wsi);
        if (c->kind == K_SSE)
            return write_sse(s, c, wsi);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c && s)
            client_cleanup(s, c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"http", on_lws, sizeof(hb_client_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- lifecycle ---- */

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    hb_log(level == LLL_ERR ? HB_LOG_ERROR : HB_LOG_WARN, "lws", "libwebsockets", "{s:s%}",
           "line", line, n);
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

hb_svc_t *hb_svc_new(hb_edge_t *edge, int idx)
{
    struct lws_context_creation_info info;
    hb_svc_t *s = hb_xcalloc(1, sizeof(*s));
    char retry[64];
    int n;

    s->edge = edge;
    s->idx = idx;
    s->listen_fd = -1;
    s->inq = hb_queue_new(65536);
    s->topics = hb_dict_new();
    s->resuming = hb_dict_new();
    n = hb_sse_format_retry(retry, sizeof(retry), (unsigned)edge->cfg.retry_ms);
    s->retry_frame = hb_buf_from(retry, (size_t)n);
    s->hb_frame = hb_buf_from(": hb\n\n", 6);
    for (int i = 0; i < DRAIN_VARIANTS; i++) {
        unsigned ms = (unsigned)edge->cfg.retry_ms / 2 +
                      (unsigned)(i * edge->cfg.retry_ms / DRAIN_VARIANTS);
        n = hb_sse_format_retry(retry, sizeof(retry), ms);
        s->drain_frames[i] = hb_buf_from(retry, (size_t)n);
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    memset(&info, 0, sizeof(info));
    /* lws 4.1 cannot share a port between contexts, so each thread owns a SO_REUSEPORT
     * listener and adopts what it accepts; the kernel spreads connections over the threads. */
    s->listen_fd = listen_socket(edge);
    if (s->listen_fd < 0) {
        hb_svc_join(s);
        return NULL;
    }
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    if (!strchr(edge->cfg.listen_host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.protocols = protocols;
    info.user = s;
    info.max_http_header_data = 4096;
    info.max_http_header_pool = 256;
    info.timeout_secs = 10;
    info.keepalive_timeout = 30;
    info.fd_limit_per_thread = (unsigned)(edge->cfg.max_connections + 128);
    info.vhost_name = "herald";
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        hb_svc_join(s);
        return NULL;
    }
    s->vhost = lws_get_vhost_by_name(s->ctx, "herald");
    {
        lws_sock_file_fd_type fd;
        fd.filefd = s->listen_fd;
        if (!s->vhost ||
            !lws_adopt_descriptor_vhost(s->vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "http", NULL)) {
            hb_svc_join(s);
            return NULL;
        }
    }
    lws_sul_schedule(s->ctx, 0, &s->sul_hb, on_housekeeping, LWS_USEC_PER_SEC / 4);
    return s;
}

static void *svc_main(void *arg)
{
    hb_svc_t *s = arg;
    while (!atomic_load(&s->stop))
        if (lws_service(s->ctx, 0) < 0)
            break;
    return NULL;
}

int hb_svc_start(hb_svc_t *s)
{
    if (pthread_create(&s->thread, NULL, svc_main, s) != 0)
        return HB_EIO;
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
    void *items[256];
    size_t n;
    if (!s)
        return;
    if (s->started) {
        atomic_store(&s->stop, 1);
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    if (s->ctx)
        lws_context_destroy(s->ctx);
    else if (s->listen_fd >= 0)
        close(s->listen_fd);
    while ((n = hb_queue_pop(s->inq, items, 256)) > 0)
        for (size_t i = 0; i < n; i++)
            hb_msg_unref(items[i]);
    hb_queue_free(s->inq);
    {
        size_t it = 0, klen;
        const void *k;
        void *v;
        while (hb_dict_next(s->topics, &it, &k, &klen, &v))
            free(v);
    }
    hb_dict_free(s->topics);
    hb_dict_free(s->resuming);
    hb_buf_unref(s->retry_frame);
    hb_buf_unref(s->hb_frame);
    for (int i = 0; i < DRAIN_VARIANTS; i++)
        hb_buf_unref(s->drain_frames[i]);
    free(s);
}
