/*
 * Writing an HTTP client's queue: a queue of one frame sent straight from its shared buffer
 * (sse_send_direct()), else its frames coalesced into the thread's write buffer (for
 * multi-topic SSE each event followed by the client's own composite id line, made on the fly),
 * the SSE write (from the writable callback or hb_svc_flush() after a broker batch), plain
 * answers with their headers, and the HTTP writable callback. Service thread only.
 */
#include "http.h"
#include "csend.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hb_log.h"
#include "reqcheck.h"

#define MOD "service"

/* The ETag of the embedded browser client edge/herald.js (edge/embed.cmake). */
extern const char hb_herald_js_etag[];

/* A window onto a byte sequence that is produced piece by piece: put() skips the first
 * `skip` bytes of the sequence, then copies into out[n..cap). */
typedef struct span {
    unsigned char *out;
    size_t cap, n, skip;
} span_t;

static void span_put(span_t *sp, const void *p, size_t len)
{
    size_t take;
    if (sp->skip >= len) {
        sp->skip -= len;
        return;
    }
    p = (const unsigned char *)p + sp->skip;
    len -= sp->skip;
    sp->skip = 0;
    take = len < sp->cap - sp->n ? len : sp->cap - sp->n;
    memcpy(sp->out + sp->n, p, take);
    sp->n += take;
}

/* Multi-topic SSE: the composite id line "id: <c0>,<c1>,...\n\n" of the cursors written so
 * far (u->wcur), emitted through sp (NULL: only measured). Its length. */
static size_t msse_idline(const hb_client_t *c, span_t *sp)
{
    size_t len = 6 + (c->nsubs ? c->nsubs - 1u : 0);
    if (sp)
        span_put(sp, "id: ", 4);
    for (uint16_t i = 0; i < c->nsubs; i++) {
        hb_buf_t *cur = c->subs[i] ? c->subs[i]->wcur : NULL;
        if (sp && i)
            span_put(sp, ",", 1);
        if (cur) {
            len += hb_buf_len(cur);
            if (sp)
                span_put(sp, hb_buf_data(cur), hb_buf_len(cur));
        }
    }
    if (sp)
        span_put(sp, "\n\n", 2);
    return len;
}

/*
 * Copies queued bytes into the thread's write buffer after the @n bytes already there (a
 * response head), up to HB_SVC_WBUF in all; returns the buffer's new length.
 * A frame of any size goes out over as many writes as it takes: c->off is the position in
 * the head entry, which for a multi-topic SSE event is its frame followed by the client's own
 * composite id line (produced on the fly, so it is never bigger than what is left to copy).
 */
static size_t coalesce(hb_svc_t *s, hb_client_t *c, int msse, size_t n)
{
    unsigned char *start = s->wbuf + LWS_PRE;
    long long now_us = c->qlen ? hb_wall_us() : 0;
    while (c->qlen && n < HB_SVC_WBUF) {
        qent_t *e = &c->q[c->qhead];
        size_t blen = hb_buf_len(e->b);
        int idline = msse && !e->ctl;
        if (c->off < blen) {
            size_t avail = blen - c->off;
            size_t take = avail < HB_SVC_WBUF - n ? avail : HB_SVC_WBUF - n;
            memcpy(start + n, hb_buf_data(e->b) + c->off, take);
            n += take;
            c->off += take;
            if (c->off < blen)
                break;
            if (idline) { /* the frame is out: its cursor joins the composite */
                hb_sub_t *u = e->idx < c->nsubs ? c->subs[e->idx] : NULL;
                if (u && e->cur) {
                    hb_buf_unref(u->wcur);
                    u->wcur = hb_buf_ref(e->cur);
                }
            }
        }
        if (idline) {
            span_t sp = {start + n, HB_SVC_WBUF - n, 0, c->off - blen};
            size_t total = msse_idline(c, &sp);
            n += sp.n;
            c->off += sp.n;
            if (c->off < blen + total)
                break;
        }
        hb_client_pop(s, c, now_us);
    }
    return n;
}

/* Frames up to this size may be sent straight from their shared buffer (sse_send_direct()):
 * lws' own pace for HTTP (tx_packet_size: its rx buffer, 4 KiB), so a stalled reader's socket
 * absorbs no more past its queue than before (test_fault_slow_consumer). */
#define SSE_DIRECT_MAX 4096

/*
 * One frame queued on a plain-TCP HTTP/1.1 connection that lws holds nothing for (the callers
 * check lws_partial_buffered(), or lws calls the writable callback only once it sent its
 * rest): sent straight from the shared buffer every subscriber's queue points to, with no copy
 * into the write buffer and no trip through lws_write(). That is the common case: a topic
 * whose events are evenly paced puts one frame in each queue per batch. What the socket does
 * not take stays queued (c->off) and goes through lws (sse_write()), which keeps it for
 * POLLOUT. TLS and HTTP/2 streams always go through lws. 0, or HB_EIO when the connection
 * failed.
 */
static int sse_send_direct(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    qent_t *e;
    size_t blen;
    ssize_t n;
    (void)wsi;
    if (c->qlen != 1 || c->off)
        return 0;
    e = &c->q[c->qhead];
    blen = hb_buf_len(e->b);
    if (blen > SSE_DIRECT_MAX || (n = hb_client_send_direct(c, hb_buf_data(e->b), blen)) == 0)
        return 0;
    if (n < 0)
        return (int)n;
    c->last_write = lws_now_usecs();
    if ((size_t)n < blen)
        c->off = (size_t)n; /* the rest through lws */
    else
        hb_client_pop(s, c, hb_wall_us());
    return 0;
}

int hb_http_sse_send_now(hb_svc_t *s, hb_client_t *c, hb_buf_t *b)
{
    int rc;
    if (hb_buf_len(b) > SSE_DIRECT_MAX)
        return 0;
    rc = hb_client_send_event(c, b, LWS_WRITE_HTTP);
    if (rc > 0)
        c->last_write = s->sn_mono; /* one clock read per event, not per recipient */
    return rc;
}

static int sse_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi, int msse)
{
    size_t n;
    if (!msse && sse_send_direct(s, c, wsi))
        return HB_EIO;
    n = coalesce(s, c, msse, 0);
    if (!n)
        return 0;
    if (lws_write(wsi, s->wbuf + LWS_PRE, n, LWS_WRITE_HTTP) < 0)
        return HB_EIO;
    c->last_write = lws_now_usecs();
    hb_svc_count(&s->bytes_out, n);
    return 0;
}

int hb_http_sse_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    return sse_write(s, c, wsi, 0);
}

int hb_http_msse_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    return sse_write(s, c, wsi, 1);
}

/* ---- the response head ---- */

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* The room a response head may take (hb_http_write_headers()). */
#define HEAD_MAX 1024

/* Builds the response head at *pp (up to end), the blank line included; 0 or HB_ELIMIT (it
 * does not fit). */
static int head_build(hb_svc_t *s, hb_client_t *c, struct lws *wsi, unsigned status,
                      const char *ctype, lws_filepos_t len, int sse, unsigned char **pp,
                      unsigned char *end)
{
    unsigned char *p = *pp;
    uint8_t extra = c->x ? c->x->auth_challenge : EXTRA_NONE;
    if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
        add_header(wsi, "x-herald-node:", s->edge->cfg.node_id, &p, end) ||
        add_header(wsi, "cache-control:", sse || extra == EXTRA_ASSET ? "no-cache" : "no-store", &p,
                   end))
        return HB_ELIMIT;
    if (extra == EXTRA_ASSET &&
        (add_header(wsi, "etag:", hb_herald_js_etag, &p, end) ||
         (!c->cors && add_header(wsi, "access-control-allow-origin:", "*", &p, end))))
        return HB_ELIMIT;
    if (sse && add_header(wsi, "x-accel-buffering:", "no", &p, end))
        return HB_ELIMIT;
    if (extra == EXTRA_AUTH && add_header(wsi, "www-authenticate:", "Bearer", &p, end))
        return HB_ELIMIT;
    if (extra == EXTRA_AUTH_INVALID &&
        add_header(wsi, "www-authenticate:", "Bearer error=\"invalid_token\"", &p, end))
        return HB_ELIMIT;
    if (c->cors) {
        const char *o;
        char ob[HB_CFG_LIST_MAX];
        size_t ol = hb_cfg_origin_at(s->edge->cfg.allowed_origins, c->cors - 1, &o);
        snprintf(ob, sizeof(ob), "%.*s", (int)ol, o);
        if (add_header(wsi, "access-control-allow-origin:", ob, &p, end) ||
            (c->cors > 1 && add_header(wsi, "vary:", "Origin", &p, end)))
            return HB_ELIMIT;
        /* a listed origin may send the token cookie (EventSource withCredentials) */
        if (c->cors > 1 && s->edge->cfg.auth_cookie[0] &&
            add_header(wsi, "access-control-allow-credentials:", "true", &p, end))
            return HB_ELIMIT;
    }
    if (extra == EXTRA_PREFLIGHT &&
        (add_header(wsi, "allow:", "GET, POST, OPTIONS", &p, end) ||
         (c->cors &&
          (add_header(wsi, "access-control-allow-methods:", "GET, POST, OPTIONS", &p, end) ||
           add_header(wsi, "access-control-allow-headers:",
                      "Authorization, Content-Type, Last-Event-ID", &p, end) ||
           add_header(wsi, "access-control-max-age:", "600", &p, end)))))
        return HB_ELIMIT;
    if (!sse && c->close_after_flush && add_header(wsi, "connection:", "close", &p, end))
        return HB_ELIMIT;
    if (extra == EXTRA_ALLOW_GET_HEAD && add_header(wsi, "allow:", "GET, HEAD", &p, end))
        return HB_ELIMIT;
    if (extra == EXTRA_ALLOW_GET && add_header(wsi, "allow:", "GET", &p, end))
        return HB_ELIMIT;
    if (extra == EXTRA_ALLOW_POST && add_header(wsi, "allow:", "POST", &p, end))
        return HB_ELIMIT;
    if (lws_finalize_http_header(wsi, &p, end))
        return HB_ELIMIT;
    *pp = p;
    return 0;
}

int hb_http_write_headers(hb_svc_t *s, hb_client_t *c, struct lws *wsi, unsigned status,
                          const char *ctype, lws_filepos_t len, int sse)
{
    unsigned char buf[LWS_PRE + HEAD_MAX], *start = buf + LWS_PRE, *p = start;
    int rc = head_build(s, c, wsi, status, ctype, len, sse, &p, buf + sizeof(buf));
    if (rc)
        return rc;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
        return HB_EIO;
    hb_svc_count(&s->bytes_out, (size_t)(p - start));
    c->headers_sent = 1;
    return 0;
}

/* ---- plain answers ---- */

/* Writes what a plain answer has queued (headers first); 0, or hb_http_write_headers()'s
 * HB_E*, or HB_EIO on a write error. */
static int simple_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    size_t n = 0;
    lws_filepos_t len = c->qbytes; /* the whole answer is queued before its first write */
    int head_only = !c->headers_sent && c->x->head_only, rc;
    /* the answer to HEAD: GET's head, its content-length too, and no content (RFC 9110
     * section 9.3.2; content would read as the start of the next answer) */
    while (head_only && c->qlen)
        hb_client_pop(s, c, 0);
    if (!c->headers_sent && lws_get_network_wsi(wsi) != wsi &&
        (rc = hb_http_write_headers(s, c, wsi, c->x->status, c->x->ctype, len, 0)) != 0)
        return rc; /* an HTTP/2 stream: the head is a frame of its own */
    if (!c->headers_sent) {
        /* HTTP/1.1 (lws writes it raw): the head goes out with the body's first bytes, one
         * send(2) for an answer that fits */
        unsigned char *p = s->wbuf + LWS_PRE;
        rc = head_build(s, c, wsi, c->x->status, c->x->ctype, len, 0, &p, p + HEAD_MAX);
        if (rc)
            return rc;
        n = (size_t)(p - (s->wbuf + LWS_PRE));
        c->headers_sent = 1;
    }
    n = coalesce(s, c, 0, n);
    if ((n || head_only) &&
        lws_write(wsi, s->wbuf + LWS_PRE, n, c->qlen ? LWS_WRITE_HTTP : LWS_WRITE_HTTP_FINAL) < 0)
        return HB_EIO;
    hb_svc_count(&s->bytes_out, n); /* long-poll answers too, not only streams */
    return 0;
}

void hb_http_answer_now(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    c->close_after_flush = 1;
    int fd;
    char sink[4096];
    while (c->qlen || !c->headers_sent)
        if (simple_write(s, c, c->wsi))
            break;
    /* What the peer sent that lws will not read (a pipelined request) is discarded, at most
     * 64 KiB: closing a socket with unread input sends a reset, which can destroy the answer
     * still on its way to the peer (RFC 9112 section 9.6); with the input read, it is a FIN. */
    fd = lws_get_socket_fd(c->wsi);
    for (int i = 0; fd >= 0 && i < 16; i++)
        if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
            break;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int simple_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (simple_write(s, c, wsi))
        return -1;
    if (c->qlen) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->close_after_flush)
        return -1;
    c->req = REQ_IDLE;
    hb_req_resume(c); /* a pipelined request waits in lws' buffer */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* A plain answer (status, type, body): written from the writable callback, headers first. */
const hb_transport_t hb_simple_ops = {
    .name = "http",
    .gauge = offsetof(hb_stats_t, conn_sse), /* never counted */
    .frame = offsetof(hb_ev_t, json),
    .transaction = 1,
    .http_writeable = simple_writeable,
    .answer_now = hb_http_answer_now,
};

int hb_http_sse_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (c->closing)
        return -1;
    if (hb_req_pipelined_behind(c)) {
        /* a request pipelined behind the endless stream: never served, and lws would spin on
         * it for the stream's life (hb_req_pipelined_behind()) */
        atomic_fetch_add_explicit(&s->edge->stats.bad_requests, 1, memory_order_relaxed);
        hb_log_ratelimited("sse-pipelined", 1000, HB_LOG_INFO, MOD,
                           "request pipelined behind an SSE stream: closed", NULL);
        c->close_why = "request pipelined behind an SSE stream";
        return -1;
    }
    if (c->ops->write(s, c, wsi))
        return -1;
    if (c->qlen) {
        lws_callback_on_writable(wsi);
        hb_client_drained(c); /* a paced resume may continue before the queue is empty */
        return 0;
    }
    if (c->close_after_flush)
        return -1;
    hb_client_drained(c);
    return 0;
}
