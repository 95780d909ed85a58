/*
 * HTTP routes of a service thread: SSE (one topic and multi-topic), long-poll, publish, health,
 * readiness, metrics and the demo page. Service thread only.
 */
#include "service.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "canary.h"
#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "reqcheck.h"
#include "sentinel.h"
#include "ticket.h"

#define MOD "http"
#define PATH_MAX_BYTES 2048

enum {
    EXTRA_NONE = 0,
    EXTRA_AUTH,         /* 401: WWW-Authenticate: Bearer */
    EXTRA_AUTH_INVALID, /* 401 for a token that was given but refused */
    EXTRA_ALLOW_GET,
    EXTRA_ALLOW_POST,
    EXTRA_PREFLIGHT, /* 204 answer to a CORS preflight */
    EXTRA_ASSET,     /* /herald.js: ETag, revalidated, importable from any origin */
};

/* The demo page, embedded at build time when edge/demo.html exists. */
extern const unsigned char hb_demo_html[] __attribute__((weak));
extern const size_t hb_demo_html_len __attribute__((weak));
/* The browser client edge/herald.js, embedded at build time (edge/embed.cmake). */
extern const unsigned char hb_herald_js[];
extern const size_t hb_herald_js_len;
extern const char hb_herald_js_etag[];

/* ---- plain responses ---- */

int hb_http_respond(hb_client_t *c, unsigned status, const char *ctype, const char *body,
                    size_t len, int close_after)
{
    c->kind = K_SIMPLE;
    c->status = (uint16_t)status;
    c->ctype = ctype;
    c->close_after_flush = (uint8_t)(close_after || c->close_after_flush);
    if (status == 400 || status == 404 || status == 405 || status == 411)
        atomic_fetch_add_explicit(&c->svc->edge->stats.bad_requests, 1, memory_order_relaxed);
    if (len) {
        hb_buf_t *b = hb_buf_from(body, len);
        if (!b)
            return -1;
        hb_client_push(c, b, NULL, 0, 1);
        hb_buf_unref(b);
    }
    if (c->rx_paused)
        hb_http_answer_now(c);
    else
        lws_callback_on_writable(c->wsi);
    return 0;
}

static int respond_text(hb_client_t *c, unsigned status, const char *text, int close_after)
{
    return hb_http_respond(c, status, "text/plain; charset=utf-8", text, strlen(text), close_after);
}

static int bad_request(hb_client_t *c, const char *reason, int close_after)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    hb_log_ratelimited("bad-request", 1000, HB_LOG_INFO, MOD, "bad request", "{s:s}", "err",
                       reason);
    return hb_http_respond(c, 400, "text/plain; charset=utf-8", body, (size_t)n, close_after);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int write_headers(hb_svc_t *s, hb_client_t *c, struct lws *wsi, unsigned status,
                         const char *ctype, lws_filepos_t len, int sse)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
        add_header(wsi, "x-herald-node:", s->edge->cfg.node_id, &p, end) ||
        add_header(wsi, "cache-control:",
                   sse || c->auth_challenge == EXTRA_ASSET ? "no-cache" : "no-store", &p, end))
        return -1;
    if (c->auth_challenge == EXTRA_ASSET &&
        (add_header(wsi, "etag:", hb_herald_js_etag, &p, end) ||
         (!c->cors && add_header(wsi, "access-control-allow-origin:", "*", &p, end))))
        return -1;
    if (sse && add_header(wsi, "x-accel-buffering:", "no", &p, end))
        return -1;
    if (c->auth_challenge == EXTRA_AUTH && add_header(wsi, "www-authenticate:", "Bearer", &p, end))
        return -1;
    if (c->auth_challenge == EXTRA_AUTH_INVALID &&
        add_header(wsi, "www-authenticate:", "Bearer error=\"invalid_token\"", &p, end))
        return -1;
    if (c->cors) {
        const char *o;
        char ob[HB_CFG_LIST_MAX];
        size_t ol = hb_cfg_origin_at(s->edge->cfg.allowed_origins, c->cors - 1, &o);
        snprintf(ob, sizeof(ob), "%.*s", (int)ol, o);
        if (add_header(wsi, "access-control-allow-origin:", ob, &p, end) ||
            (c->cors > 1 && add_header(wsi, "vary:", "Origin", &p, end)))
            return -1;
        /* a listed origin may send the token cookie (EventSource withCredentials) */
        if (c->cors > 1 && s->edge->cfg.auth_cookie[0] &&
            add_header(wsi, "access-control-allow-credentials:", "true", &p, end))
            return -1;
    }
    if (c->auth_challenge == EXTRA_PREFLIGHT &&
        (add_header(wsi, "allow:", "GET, POST, OPTIONS", &p, end) ||
         (c->cors &&
          (add_header(wsi, "access-control-allow-methods:", "GET, POST, OPTIONS", &p, end) ||
           add_header(wsi, "access-control-allow-headers:",
                      "Authorization, Content-Type, Last-Event-ID", &p, end) ||
           add_header(wsi, "access-control-max-age:", "600", &p, end)))))
        return -1;
    if (!sse && c->close_after_flush && add_header(wsi, "connection:", "close", &p, end))
        return -1;
    if (c->auth_challenge == EXTRA_ALLOW_GET && add_header(wsi, "allow:", "GET", &p, end))
        return -1;
    if (c->auth_challenge == EXTRA_ALLOW_POST && add_header(wsi, "allow:", "POST", &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    c->headers_sent = 1;
    return 0;
}

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
 * Copies up to HB_SVC_WBUF queued bytes into the thread's write buffer; returns the count.
 * A frame of any size goes out over as many writes as it takes: c->off is the position in
 * the head entry, which for a multi-topic SSE event is its frame followed by the client's own
 * composite id line (produced on the fly, so it is never bigger than what is left to copy).
 */
static size_t coalesce(hb_svc_t *s, hb_client_t *c)
{
    unsigned char *start = s->wbuf + LWS_PRE;
    size_t n = 0;
    long long now_us = c->qlen ? hb_now_us() : 0;
    while (c->qlen && n < HB_SVC_WBUF) {
        qent_t *e = &c->q[c->qhead];
        size_t blen = hb_buf_len(e->b);
        int idline = c->kind == K_MSSE && !e->ctl;
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
        c->qbytes -= blen;
        hb_svc_observe_write(s, e->b, now_us);
        hb_buf_unref(e->b);
        hb_buf_unref(e->cur);
        c->off = 0;
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    return n;
}

int hb_http_sse_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    size_t n = coalesce(s, c);
    if (!n)
        return 0;
    if (lws_write(wsi, s->wbuf + LWS_PRE, n, LWS_WRITE_HTTP) < 0)
        return -1;
    c->last_write = lws_now_usecs();
    hb_svc_count(&s->bytes_out, n);
    return 0;
}

/* Writes what a K_SIMPLE answer has queued (headers first); -1 on a write error. */
static int simple_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    size_t n;
    if (!c->headers_sent && write_headers(s, c, wsi, c->status, c->ctype, c->qbytes, 0) != 0)
        return -1;
    n = coalesce(s, c);
    if (n &&
        lws_write(wsi, s->wbuf + LWS_PRE, n, c->qlen ? LWS_WRITE_HTTP : LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return 0;
}

void hb_http_answer_now(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    c->close_after_flush = 1;
    while (c->qlen || !c->headers_sent)
        if (simple_write(s, c, c->wsi))
            break;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int hb_http_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (c->kind == K_SIMPLE) {
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
    if (c->kind == K_POLL) {
        /* answering removes the subscription: only ever done from here, never while a
         * delivery to it is on the stack */
        hb_poll_maybe_answer(c);
        return 0;
    }
    if (c->kind != K_SSE && c->kind != K_MSSE)
        return 0;
    if (c->closing)
        return -1;
    if (hb_http_sse_write(s, c, wsi))
        return -1;
    if (c->qlen) {
        lws_callback_on_writable(wsi);
        hb_client_drained(c); /* a paced resume may continue before the queue is empty */
        return 0;
    }
    if (c->close_after_flush)
        return -1;
    if (c->qcap > 64) { /* give back a queue that grew during a burst */
        free(c->q);
        c->q = NULL;
        c->qcap = c->qhead = 0;
    }
    hb_client_drained(c);
    return 0;
}

/* ---- request parsing helpers ---- */

/* Finds query argument `name` (lws has already decoded it); 1 found, 0 absent, -1 too long. */
static int query_arg(struct lws *wsi, const char *name, int *frag, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (int i = frag ? *frag : 0;; i++) {
        char arg[HB_TOPIC_MAX + HB_CURSOR_MAX * 64 + 64];
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len <= 0)
            return 0;
        if ((size_t)len >= sizeof(arg))
            return -1;
        if (lws_hdr_copy_fragment(wsi, arg, sizeof(arg), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            continue;
        if (strncmp(arg, name, nl) != 0 || arg[nl] != '=')
            continue;
        if (strlen(arg + nl + 1) >= cap)
            return -1;
        strcpy(out, arg + nl + 1);
        if (frag)
            *frag = i + 1;
        return 1;
    }
}

/* Reads the resume cursor text from Last-Event-ID or ?lastEventId=. 1, 0 none, -1 too long. */
static int read_last_event_id(struct lws *wsi, char *out, size_t cap)
{
    int n = lws_hdr_custom_length(wsi, "last-event-id:", 14);
    if (n > 0) {
        if ((size_t)n >= cap)
            return -1;
        if (lws_hdr_custom_copy(wsi, out, (int)cap, "last-event-id:", 14) < 0)
            return -1;
        return out[0] != '\0';
    }
    n = query_arg(wsi, "lastEventId", NULL, out, cap);
    return n > 0 ? out[0] != '\0' : n;
}

/*
 * May this request subscribe to these topics? 0 yes (*exp: the token's exp, 0 none); else the
 * refusal is answered (401 no or bad token, 403 a topic the token does not cover) and 1 is
 * returned. An EventSource does not retry after a 401/403: the page must get a new token.
 */
static int subscribe_auth(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *const *topics,
                          int n, long long *exp)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    const char *reason = NULL;
    hb_jwt_t *j = NULL;
    char body[256];
    int rc = hb_auth_http(s, wsi, &j, &reason), bad = -1;
    *exp = 0;
    if (rc < 0) {
        snprintf(body, sizeof(body), "unauthorized: %s\n", reason);
        c->auth_challenge = EXTRA_AUTH_INVALID;
        hb_http_respond(c, 401, "text/plain; charset=utf-8", body, strlen(body), 0);
        return 1;
    }
    if (!j && cfg->jwt_secret_len && !cfg->allow_anonymous) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        c->auth_challenge = EXTRA_AUTH;
        respond_text(c, 401,
                     "unauthorized: a token is required (Authorization: Bearer or ?token=)\n", 0);
        return 1;
    }
    for (int i = 0; i < n && bad < 0; i++)
        if (!hb_auth_may_subscribe(cfg, j, topics[i], strlen(topics[i])))
            bad = i;
    *exp = hb_jwt_exp(j);
    hb_jwt_free(j);
    if (bad >= 0) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_forbidden, 1, memory_order_relaxed);
        snprintf(body, sizeof(body), "forbidden: the token does not allow subscribing to '%s'\n",
                 topics[bad]);
        hb_http_respond(c, 403, "text/plain; charset=utf-8", body, strlen(body), 0);
        return 1;
    }
    return 0;
}

static int sse_headers(hb_svc_t *s, hb_client_t *c, struct lws *wsi, kind_t kind)
{
    if (write_headers(s, c, wsi, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN, 1))
        return -1;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    /* an endless response: without this lws keeps the socket in POLLOUT and spins. A peer
     * that goes away is found by the housekeeping sweep (service.c). */
    lws_http_mark_sse(wsi);
    c->kind = kind;
    c->last_write = lws_now_usecs();
    hb_client_count(c, kind);
    return 0;
}

/* Overload and drain are 200 + retry + close: EventSource keeps retrying. */
static int sse_turn_away(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (sse_headers(s, c, wsi, K_SSE))
        return -1;
    hb_client_push(c, s->drain_frames[c->id % HB_DRAIN_VARIANTS], NULL, 0, 1);
    c->close_after_flush = 1;
    lws_http_headers_detach(wsi);
    return 0;
}

static int sse_single(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic, size_t tlen)
{
    char text[HB_CURSOR_MAX + 8];
    const char *reason = NULL, *topics[1];
    hb_cursor_t cur;
    long long exp;
    int has;

    if (hb_topic_validate(topic, tlen, &reason))
        return bad_request(c, reason, 0);
    /* `topic` points into the request's header buffer, which writing the response reuses */
    memcpy(c->topic, topic, tlen);
    c->topic[tlen] = '\0';
    c->topic_len = tlen;
    topics[0] = c->topic;
    if (subscribe_auth(s, c, wsi, topics, 1, &exp))
        return 0;
    has = read_last_event_id(wsi, text, sizeof(text));
    if (has < 0)
        return bad_request(c, "Last-Event-ID is too long", 0);
    if (has > 0 && hb_cursor_parse(text, strlen(text), &cur, &reason))
        return bad_request(c, reason, 0);
    if (!hb_svc_admit(s, c->wsi))
        return sse_turn_away(s, c, wsi);
    if (sse_headers(s, c, wsi, K_SSE))
        return -1;
    hb_client_push(c, s->retry_frame, NULL, 0, 1);
    hb_sub_add(c, c->topic, c->topic_len, has > 0 ? &cur : NULL, 0);
    if (exp)
        hb_auth_expire_at(c, exp);
    lws_http_headers_detach(wsi); /* give the header buffer back to the pool */
    return 0;
}

/* GET /events?topic=a&topic=b: one stream, a composite cursor in URL order. */
static int sse_multi(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    int max = s->edge->cfg.max_topics, n = 0, frag = 0, rc, has;
    char(*names)[HB_TOPIC_MAX + 1] = NULL;
    char *text = NULL;
    hb_cursor_t *curs = NULL;
    int *hascur = NULL;
    const char *reason = NULL;
    const char **tops = NULL;
    size_t tcap = (size_t)max * (HB_CURSOR_MAX + 1) + 8;
    long long exp = 0;
    int ret;

    names = hb_xcalloc((size_t)max + 1, sizeof(*names));
    for (;;) {
        char t[HB_TOPIC_MAX + 2];
        rc = query_arg(wsi, "topic", &frag, t, sizeof(t));
        if (rc == 0)
            break;
        if (rc < 0) {
            ret = bad_request(c, "topic longer than 128 bytes", 0);
            goto out;
        }
        if (n == max) {
            atomic_fetch_add_explicit(&s->edge->stats.rejected_topics, 1, memory_order_relaxed);
            ret = bad_request(c, "too many topics for one connection", 0);
            goto out;
        }
        if (hb_topic_validate(t, strlen(t), &reason)) {
            ret = bad_request(c, reason, 0);
            goto out;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], t)) {
                ret = bad_request(c, "topic listed twice", 0);
                goto out;
            }
        strcpy(names[n++], t);
    }
    if (n == 0) {
        ret = bad_request(c, "topic is empty", 0);
        goto out;
    }
    tops = hb_xcalloc((size_t)n, sizeof(*tops));
    for (int i = 0; i < n; i++)
        tops[i] = names[i];
    if (subscribe_auth(s, c, wsi, tops, n, &exp)) {
        ret = 0;
        goto out;
    }
    text = hb_xmalloc(tcap);
    curs = hb_xcalloc((size_t)n, sizeof(*curs));
    hascur = hb_xcalloc((size_t)n, sizeof(*hascur));
    has = read_last_event_id(wsi, text, tcap);
    if (has < 0) {
        ret = bad_request(c, "Last-Event-ID is too long", 0);
        goto out;
    }
    if (has > 0) {
        char *p = text;
        for (int i = 0; i < n; i++) {
            char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if ((i < n - 1 && !comma) || (i == n - 1 && comma)) {
                ret = bad_request(c, "Last-Event-ID does not have one cursor per topic", 0);
                goto out;
            }
            if (len && hb_cursor_parse(p, len, &curs[i], &reason)) {
                ret = bad_request(c, reason, 0);
                goto out;
            }
            hascur[i] = len > 0;
            p = comma ? comma + 1 : p + len;
        }
    }
    if (!hb_svc_admit(s, c->wsi)) {
        ret = sse_turn_away(s, c, wsi);
        goto out;
    }
    if (sse_headers(s, c, wsi, K_MSSE)) {
        ret = -1;
        goto out;
    }
    hb_client_push(c, s->retry_frame, NULL, 0, 1);
    for (int i = 0; i < n; i++) {
        hb_sub_t *u = hb_sub_add(c, names[i], strlen(names[i]), hascur[i] ? &curs[i] : NULL, 0);
        if (hascur[i]) {
            char cb[HB_CURSOR_MAX];
            size_t cl = hb_cursor_format(&curs[i].id, curs[i].epoch, cb);
            u->wcur = hb_buf_from(cb, cl);
        }
    }
    if (exp)
        hb_auth_expire_at(c, exp);
    lws_http_headers_detach(wsi);
    ret = 0;
out:
    free(tops);
    free(names);
    free(text);
    free(curs);
    free(hascur);
    return ret;
}

/* ---- long-poll ---- */

void hb_poll_maybe_answer(hb_client_t *c)
{
    int timeout0 = c->poll_ready == 2;
    if (c->kind != K_POLL || c->closing)
        return;
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (c->subs[i] && c->subs[i]->resuming && !c->subs[i]->poll_full)
            return; /* history first */
    if (c->qlen || c->poll_gap || timeout0)
        hb_poll_on_timer(c);
}

void hb_poll_on_timer(hb_client_t *c)
{
    char *body;
    size_t cap = c->qbytes + HB_CURSOR_MAX + 64, n;
    const char *next = c->poll_next;
    if (c->kind != K_POLL || c->closing)
        return;
    hb_svc_poll_timer(c, 0);
    body = malloc(cap + c->qlen);
    if (!body) {
        hb_client_close(c, "out of memory", 0);
        return;
    }
    n = (size_t)sprintf(body, "{\"events\":[");
    for (uint32_t i = 0; i < c->qlen; i++) {
        qent_t *e = &c->q[(c->qhead + i) % c->qcap];
        if (i)
            body[n++] = ',';
        memcpy(body + n, hb_buf_data(e->b), hb_buf_len(e->b));
        n += hb_buf_len(e->b);
        if (e->cur && hb_buf_len(e->cur) < HB_CURSOR_MAX) {
            memcpy(c->poll_next, hb_buf_data(e->cur), hb_buf_len(e->cur));
            c->poll_next[hb_buf_len(e->cur)] = '\0';
        }
    }
    n += (size_t)sprintf(body + n, "],\"next\":\"%s\"", next);
    if (c->poll_gap)
        n += (size_t)sprintf(body + n, ",\"gap\":\"%s\"", c->poll_gap);
    body[n++] = '}';
    /* stop receiving: drop the subscription, then answer */
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (c->subs[i])
            hb_sub_remove(c, c->subs[i]);
    while (c->qlen) {
        hb_buf_unref(c->q[c->qhead].b);
        hb_buf_unref(c->q[c->qhead].cur);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    c->qbytes = 0;
    hb_http_respond(c, 200, "application/json", body, n, 0);
    free(body);
}

static int poll_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic, size_t tlen)
{
    char arg[HB_CURSOR_MAX + 8], tbuf[16];
    const char *reason = NULL, *topics[1];
    hb_cursor_t cur;
    long timeout = 25;
    long long exp;
    int has;
    if (hb_topic_validate(topic, tlen, &reason))
        return bad_request(c, reason, 0);
    memcpy(c->topic, topic, tlen);
    c->topic[tlen] = '\0';
    c->topic_len = tlen;
    topics[0] = c->topic;
    if (subscribe_auth(s, c, wsi, topics, 1, &exp))
        return 0; /* a long-poll ends within its timeout: exp is checked per request */
    has = query_arg(wsi, "since", NULL, arg, sizeof(arg));
    if (has < 0)
        return bad_request(c, "since is too long", 0);
    if (has > 0 && arg[0] && hb_cursor_parse(arg, strlen(arg), &cur, &reason))
        return bad_request(c, reason, 0);
    has = has > 0 && arg[0];
    if (query_arg(wsi, "timeout", NULL, tbuf, sizeof(tbuf)) != 0) {
        char *end;
        timeout = strtol(tbuf, &end, 10);
        if (!tbuf[0] || *end || timeout < 0 || timeout > s->edge->cfg.poll_timeout_max)
            return bad_request(c, "timeout must be a number of seconds within the limit", 0);
    }
    if (!hb_svc_admit(s, c->wsi))
        return respond_text(c, 503, "over capacity or draining: retry later\n", 1);
    c->kind = K_POLL;
    hb_client_count(c, K_POLL);
    if (has) {
        size_t l = hb_cursor_format(&cur.id, cur.epoch, c->poll_next);
        c->poll_next[l] = '\0';
    }
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (timeout == 0)
        c->poll_ready = 2;
    else
        hb_svc_poll_timer(c, (lws_usec_t)timeout * LWS_USEC_PER_SEC);
    hb_sub_add(c, c->topic, c->topic_len, has ? &cur : NULL, !has);
    lws_http_headers_detach(wsi);
    return 0;
}

/* ---- publish ---- */

/* POST /publish/<topic>: the head's framing is already checked (hb_req_framing). */
static int publish_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic,
                         size_t tlen, hb_http_body_t framing, uint64_t length)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    char tok[HB_JWT_MAX + 8];
    const char *reason = NULL;
    int n;

    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0) {
        c->auth_challenge = EXTRA_ALLOW_POST;
        return respond_text(c, 405, "method not allowed: use POST\n", 1);
    }
    if (!cfg->publish_key[0] && !cfg->jwt_secret_len)
        return respond_text(
            c, 403, "publish endpoint disabled: no --publish-key or --jwt-secret configured\n", 1);
    n = hb_auth_token(wsi, tok, sizeof(tok));
    if (n <= 0) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        c->auth_challenge = EXTRA_AUTH;
        return respond_text(c, 401,
                            n == -1
                                ? "unauthorized: token longer than 8192 bytes\n"
                                : "unauthorized: Authorization: Bearer <publish key or token>\n",
                            1);
    }
    if (hb_topic_validate(topic, tlen, &reason))
        return bad_request(c, reason, 1);
    if (!hb_auth_is_publish_key(cfg, tok, strlen(tok))) {
        hb_jwt_t *j = NULL;
        char body[256];
        int ok;
        if (!cfg->jwt_secret_len || hb_auth_verify(s, tok, strlen(tok), &j, &reason)) {
            if (!cfg->jwt_secret_len)
                atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
            snprintf(body, sizeof(body), "unauthorized: %s\n",
                     cfg->jwt_secret_len ? reason : "wrong publish key");
            c->auth_challenge = EXTRA_AUTH_INVALID;
            return hb_http_respond(c, 401, "text/plain; charset=utf-8", body, strlen(body), 1);
        }
        ok = hb_jwt_can_publish(j, topic, tlen);
        hb_jwt_free(j);
        if (!ok) {
            atomic_fetch_add_explicit(&s->edge->stats.rejected_forbidden, 1, memory_order_relaxed);
            return respond_text(
                c, 403, "forbidden: the token does not allow publishing to this topic\n", 1);
        }
    }
    n = query_arg(wsi, "event", NULL, c->event, sizeof(c->event));
    if (n < 0 ||
        (n > 0 && c->event[0] && hb_event_name_validate(c->event, strlen(c->event), &reason)))
        return bad_request(c, reason ? reason : "event name longer than 64 bytes", 1);
    if (framing == HB_HTTP_BODY_CHUNKED)
        /* libwebsockets 4.1 does not decode chunked request bodies: ask for a length */
        return respond_text(c, 411, "Content-Length required (chunked bodies are not accepted)\n",
                            1);
    if (framing == HB_HTTP_BODY_NONE)
        /* lws would take the rest of the connection as the body of a POST without a length */
        return respond_text(c, 411, "Content-Length required\n", 1);
    if (length > (uint64_t)cfg->max_message_bytes) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_too_large, 1, memory_order_relaxed);
        return respond_text(c, 413, "payload larger than --max-message-bytes\n", 1);
    }
    memcpy(c->topic, topic, tlen);
    c->topic[tlen] = '\0';
    c->topic_len = tlen;
    c->kind = K_PUBLISH;
    c->rxmax = (size_t)length;
    /* lws gives the body (an explicit 0 too) and then completes it, once: HTTP_BODY_COMPLETION */
    c->req = REQ_BODY;
    return 0;
}

int hb_http_on_body(hb_svc_t *s, hb_client_t *c, const char *in, size_t len)
{
    if (c->req != REQ_BODY || c->kind != K_PUBLISH || !len)
        return 0; /* a body we answered early (or lws' empty call for Content-Length: 0) */
    if (len > c->rxmax - c->rxlen) { /* lws frames by the same Content-Length: cannot happen */
        atomic_fetch_add_explicit(&s->edge->stats.rejected_too_large, 1, memory_order_relaxed);
        free(c->rx);
        c->rx = NULL;
        c->rxlen = c->rxcap = 0;
        c->req = REQ_DONE;
        return respond_text(c, 413, "payload larger than --max-message-bytes\n", 1);
    }
    if (c->rxlen + len > c->rxcap) {
        size_t ncap = c->rxcap ? c->rxcap * 2 : 4096;
        char *nrx;
        while (ncap < c->rxlen + len)
            ncap *= 2;
        if (ncap > c->rxmax)
            ncap = c->rxmax;
        nrx = realloc(c->rx, ncap ? ncap : 1);
        if (!nrx)
            return respond_text(c, 503, "out of memory\n", 1);
        c->rx = nrx;
        c->rxcap = ncap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    return 0;
}

int hb_http_on_body_done(hb_svc_t *s, hb_client_t *c)
{
    hb_req_t *q;
    hb_pending_t *p;
    if (c->req == REQ_DONE && (c->kind == K_PUBLISH || c->kind == K_SIMPLE) && !c->rx_paused) {
        /* lws 4.1 calls this again on every loop turn while a pipelined request waits in its
         * buffer (it stays in its body state until the answer is written), and the loop
         * starves. Herald does not pipeline after a publish: stop reading, answer, close. */
        c->close_after_flush = 1;
        hb_req_pause(c);
        if (c->kind == K_SIMPLE) /* the answer is queued, and lws will not write it now */
            hb_http_answer_now(c);
        return 0;
    }
    if (c->req != REQ_BODY || c->kind != K_PUBLISH)
        return 0; /* completed already, or answered before its body */
    c->req = REQ_DONE;
    q = hb_xcalloc(1, sizeof(*q));
    q->type = HB_REQ_PUBLISH;
    memcpy(q->topic, c->topic, c->topic_len);
    q->topic_len = c->topic_len;
    memcpy(q->event, c->event, sizeof(q->event));
    q->payload = c->rx;
    q->payload_len = c->rxlen;
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
    p = hb_pending_add(s, c, NULL);
    q->client_id = p->token;
    if (hb_svc_request(s, q) != 0) {
        hb_pending_del(s, p);
        return respond_text(c, 503, "busy: try again\n", 1);
    }
    return 0;
}

void hb_http_on_published(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m)
{
    hb_client_t *c = p->c;
    char body[320];
    int n;
    hb_hist_observe(&s->pub_hist, hb_now_us() - p->t0_us, 1);
    hb_pending_del(s, p);
    if (m->error) {
        int client_err = !strncmp(m->result, "ERR herald:", 11);
        n = snprintf(body, sizeof(body), "%s\n", m->result);
        hb_http_respond(c, client_err ? 400 : 503, "text/plain; charset=utf-8", body, (size_t)n, 0);
        return;
    }
    n = snprintf(body, sizeof(body), "{\"id\":\"%s\"}", m->result);
    hb_http_respond(c, 200, "application/json", body, (size_t)n, 0);
}

/* ---- metrics ---- */

enum { SUM_INQ, SUM_QUEUED, SUM_SUBS, SUM_HREADS, SUM_HWAIT };

/* A gauge summed over the service threads (each writes only its own). */
static unsigned long long svc_sum(hb_svc_t *s, int which)
{
    unsigned long long n = 0;
    for (int i = 0; i < s->edge->nthreads; i++) {
        hb_svc_t *t = s->edge->svcs[i];
        if (which == SUM_INQ)
            n += hb_queue_len(t->inq);
        else
            n += atomic_load_explicit(which == SUM_SUBS     ? &t->subscriptions
                                      : which == SUM_HREADS ? &t->hist_inflight
                                      : which == SUM_HWAIT  ? &t->hist_waiting
                                                            : &t->queued,
                                      memory_order_relaxed);
    }
    return n;
}

/* One metric family: name, type, help, then "value" lines (a label set and a number). */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(FILE *f, const char *name, const char *labels, unsigned long long v)
{
    fprintf(f, "%s%s %llu\n", name, labels, v);
}

/* Descriptors open now (the entries of /proc/self/fd, less the one reading it); -1 unknown.
 * A scrape-time walk: at 20,000 connections it reads 20,000 names, off the fan-out path. */
static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long long n = -1;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2; /* n counted every entry but one: less ".", ".." and the directory's own fd */
}

static int metrics(hb_svc_t *s, hb_client_t *c)
{
    hb_stats_t *st = &s->edge->stats;
    char *buf = NULL;
    size_t len = 0;
    long size_pages = 0, rss_pages = 0;
    FILE *f, *statm = fopen("/proc/self/statm", "r");
    int rc;
    char master[HB_CFG_STR_MAX + 8], master_lbl[HB_CFG_STR_MAX + 24];
    unsigned long long switches = 0;
    hb_broker_master(s->edge->broker, master, sizeof(master), &switches);
    snprintf(master_lbl, sizeof(master_lbl), "{addr=\"%s\"}", master);
#define LOAD(x) ((unsigned long long)atomic_load_explicit(&st->x, memory_order_relaxed))
    const struct {
        const char *name, *type, *help, *labels;
        unsigned long long v;
    } rows[] = {
        {"herald_connections", "gauge", "Open client connections by transport.",
         "{transport=\"sse\"}", LOAD(conn_sse)},
        {"herald_connections", NULL, NULL, "{transport=\"ws\"}", LOAD(conn_ws)},
        {"herald_connections", NULL, NULL, "{transport=\"poll\"}", LOAD(conn_poll)},
        {"herald_events_in_total", "counter", "Events received from Redis.", "", LOAD(events_in)},
        {"herald_deliveries_total", "counter", "Events queued to clients.", "", hb_svc_sum(s, 0)},
        {"herald_bytes_out_total", "counter", "Bytes written to clients.", "", hb_svc_sum(s, 1)},
        {"herald_slow_disconnects_total", "counter",
         "Clients cut off for exceeding their queue bound.", "", LOAD(slow_disconnects)},
        {"herald_writes_delayed_total", "counter",
         "Client writes held back by --write-delay-ms, each taking what queued meanwhile.", "",
         LOAD(writes_delayed)},
        {"herald_history_reads", "gauge",
         "Paced history reads: in flight to Redis (at most 16 per service thread), and resuming "
         "subscriptions waiting for one (sampled every 250 ms).",
         "{state=\"inflight\"}", svc_sum(s, SUM_HREADS)},
        {"herald_history_reads", NULL, NULL, "{state=\"waiting\"}", svc_sum(s, SUM_HWAIT)},
        {"herald_queue_drops_total", "counter",
         "Broker hand-offs dropped because a queue was full.", "",
         LOAD(queue_drops) + LOAD(req_drops)},
        {"herald_rejected_total", "counter", "Requests refused, by reason.",
         "{reason=\"bad_request\"}", LOAD(bad_requests)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"max_connections\"}",
         LOAD(rejected_max_conn)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"per_ip\"}", LOAD(rejected_per_ip)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"too_large\"}", LOAD(rejected_too_large)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"unauthorized\"}", LOAD(rejected_auth)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"forbidden\"}", LOAD(rejected_forbidden)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"origin\"}", LOAD(rejected_origin)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"incomplete_request\"}",
         LOAD(rejected_incomplete)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"too_many_topics\"}",
         LOAD(rejected_topics)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"socket_limit\"}",
         LOAD(rejected_sock_limit)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"evicted\"}", LOAD(evicted)},
        {"herald_sockets", "gauge", "Accepted sockets open (clients, requests, idle).", "",
         LOAD(sockets)},
        {"herald_socket_limit", "gauge", "Accepted sockets at most (from RLIMIT_NOFILE).", "",
         (unsigned long long)s->edge->sock_limit},
        {"herald_connection_limit", "gauge",
         "Clients at most: --max-connections, or less when RLIMIT_NOFILE is lower.", "",
         (unsigned long long)s->edge->conn_limit},
        {"herald_accept_pauses_total", "counter",
         "Times accept() ran out of descriptors and accepting paused for 100 ms.", "",
         LOAD(accept_pauses)},
        {"herald_redis_reconnects_total", "counter", "Redis connections lost.", "",
         LOAD(redis_reconnects)},
        {"herald_redis_master", "gauge", "The Redis master in use.", master_lbl, master[0] != 0},
        {"herald_redis_master_switches_total", "counter", "Redis master changes.", "", switches},
        {"herald_redis_cluster_primaries", "gauge",
         "Redis Cluster primaries in the slot map in use (0 outside cluster mode).", "",
         LOAD(cluster_primaries)},
        {"herald_redis_cluster_redirects_total", "counter",
         "Redis Cluster redirections followed, by kind.", "{kind=\"moved\"}", LOAD(cluster_moved)},
        {"herald_redis_cluster_redirects_total", NULL, NULL, "{kind=\"ask\"}", LOAD(cluster_ask)},
        {"herald_redis_cluster_map_refreshes_total", "counter",
         "Redis Cluster slot maps fetched (every 5 s, and after a redirection or a lost node).", "",
         LOAD(cluster_map_updates)},
        {"herald_redis_cluster_giveups_total", "counter",
         "Commands not placed on a Redis Cluster node before their deadline (failed).", "",
         LOAD(cluster_giveups)},
        {"herald_ready", "gauge", "1 when Redis is reachable and subscriptions are in place.", "",
         (unsigned long long)atomic_load(&st->ready)},
        {"herald_draining", "gauge", "1 after SIGTERM.", "",
         (unsigned long long)atomic_load(&st->draining)},
        {"herald_ingest_leader", "gauge", "1 while this edge holds the raw-ingest lease.", "",
         (unsigned long long)atomic_load(&st->leader)},
        {"herald_ingested_total", "counter", "Raw PUBLISHes stored by this edge.", "",
         LOAD(ingested)},
        {"herald_ingest_rejected_total", "counter", "Raw PUBLISHes refused (bad topic, too large).",
         "", LOAD(ingest_rejected)},
        {"herald_ingest_standby_overflow_total", "counter", "Raw messages a standby had to forget.",
         "", LOAD(ingest_standby_overflow)},
        {"herald_ingest_unled_total", "counter",
         "Raw messages a standby dropped unmatched: heard before the leader subscribed again, or "
         "kept across its own raw-subscription reconnection.",
         "", LOAD(ingest_unled)},
        {"herald_ingest_unknown_total", "counter",
         "Raw messages whose store was in flight when the Redis connection went (stored or not).",
         "", LOAD(ingest_unknown)},
        {"herald_published_total", "counter", "HTTP and WebSocket publishes stored.", "",
         LOAD(published)},
        {"herald_broker_queue_depth", "gauge", "Requests waiting for the broker thread.", "",
         hb_queue_len(s->edge->to_broker)},
        {"herald_service_queue_depth", "gauge", "Broker messages waiting for the service threads.",
         "", svc_sum(s, SUM_INQ)},
        {"herald_client_queue_frames", "gauge",
         "Frames queued for clients, all connections (sampled every 250 ms).", "",
         svc_sum(s, SUM_QUEUED)},
        {"herald_subscriptions", "gauge", "Client subscriptions (client x topic).", "",
         svc_sum(s, SUM_SUBS)},
        {"herald_topics", "gauge", "Topics this edge is subscribed to in Redis.", "", LOAD(topics)},
        {"herald_auth_expired_total", "counter", "Connections ended when their token expired.", "",
         LOAD(auth_expired)},
        {"herald_tickets_total", "counter",
         "Sign-in tickets: issued (POST /tickets), redeemed, refused (unknown, used, expired).",
         "{outcome=\"issued\"}", LOAD(tickets_issued)},
        {"herald_tickets_total", NULL, NULL, "{outcome=\"redeemed\"}", LOAD(tickets_redeemed)},
        {"herald_tickets_total", NULL, NULL, "{outcome=\"refused\"}", LOAD(tickets_refused)},
        {"herald_redis_up", "gauge",
         "1 while the edge's Redis connections are up (same as herald_ready, without the "
         "subscriptions condition).",
         "", (unsigned long long)atomic_load(&st->redis_up)},
    };
#undef LOAD
    if (statm) {
        if (fscanf(statm, "%ld %ld", &size_pages, &rss_pages) != 2)
            rss_pages = 0;
        fclose(statm);
    }
    f = open_memstream(&buf, &len);
    if (!f)
        return respond_text(c, 503, "out of memory\n", 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].type)
            family(f, rows[i].name, rows[i].type, rows[i].help);
        value(f, rows[i].name, rows[i].labels, rows[i].v);
    }
    {
        hb_hist_t *dh[64], *ph[64];
        int nt = s->edge->nthreads > 64 ? 64 : s->edge->nthreads;
        for (int i = 0; i < nt; i++) {
            dh[i] = &s->edge->svcs[i]->deliv_hist;
            ph[i] = &s->edge->svcs[i]->pub_hist;
        }
        hb_hist_write(f, "herald_delivery_latency_seconds",
                      "From publish (the event's stream id time) to the write to the client.", dh,
                      nt);
        hb_hist_write(f, "herald_publish_latency_seconds",
                      "HTTP and WebSocket publish: request to Redis' answer.", ph, nt);
    }
    hb_canary_metrics(f);
    {
        struct rlimit rl;
        long long fds = open_fds();
        if (fds >= 0) {
            family(f, "process_open_fds", "gauge", "Open file descriptors.");
            value(f, "process_open_fds", "", (unsigned long long)fds);
        }
        if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY) {
            family(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
            value(f, "process_max_fds", "", (unsigned long long)rl.rlim_cur);
        }
    }
    family(f, "process_resident_memory_bytes", "gauge", "Resident memory.");
    value(f, "process_resident_memory_bytes", "", (unsigned long long)rss_pages * 4096);
    fclose(f);
    rc = hb_http_respond(c, 200, "text/plain; version=0.0.4", buf, len, 0);
    free(buf);
    return rc;
}

/* ---- routing ---- */

/* GET /herald.js: the embedded client, 304 when If-None-Match names its ETag. */
static int herald_js(hb_client_t *c, struct lws *wsi)
{
    char inm[64];
    c->auth_challenge = EXTRA_ASSET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH) < (int)sizeof(inm) &&
        lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        strstr(inm, hb_herald_js_etag))
        return hb_http_respond(c, 304, "text/javascript; charset=utf-8", NULL, 0, 0);
    return hb_http_respond(c, 200, "text/javascript; charset=utf-8", (const char *)hb_herald_js,
                           hb_herald_js_len, 0);
}

static int route(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *path,
                 hb_http_body_t body, uint64_t blen)
{
    size_t plen = strlen(path);
    int is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;

    if (plen > PATH_MAX_BYTES)
        return bad_request(c, "path is too long", 1);
    /* browsers: the Origin must be allowed for the client routes (CORS) */
    if ((!strncmp(path, "/publish/", 9) || !strncmp(path, "/events", 7) ||
         !strncmp(path, "/poll/", 6) || !strcmp(path, "/tickets")) &&
        hb_auth_origin(s, wsi, &c->cors))
        return respond_text(c, 403, "forbidden: origin not allowed\n", 1);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0) {
        c->auth_challenge = EXTRA_PREFLIGHT;
        return hb_http_respond(c, 204, "text/plain", NULL, 0, 0);
    }
    if (!strncmp(path, "/publish/", 9))
        return publish_start(s, c, wsi, path + 9, plen - 9, body, blen);
    if (!strcmp(path, "/tickets")) {
        if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0) {
            c->auth_challenge = EXTRA_ALLOW_POST;
            return respond_text(c, 405, "method not allowed: use POST\n", 1);
        }
        return hb_ticket_issue(s, c, wsi, body, blen);
    }
    if (!is_get) {
        c->auth_challenge = EXTRA_ALLOW_GET;
        return respond_text(c, 405, "method not allowed: use GET\n", 1);
    }
    if (!strcmp(path, "/healthz"))
        return respond_text(c, 200, "ok\n", 0);
    if (!strcmp(path, "/readyz")) {
        if (atomic_load(&s->edge->stats.draining))
            return respond_text(c, 503, "draining\n", 0);
        if (atomic_load(&s->edge->stats.ready))
            return respond_text(c, 200, "ready\n", 0);
        return respond_text(c, 503, hb_canary_stale() ? "canary stale\n" : "not ready\n", 0);
    }
    if (!strcmp(path, "/metrics"))
        return metrics(s, c);
    if (!strcmp(path, "/events") || !strncmp(path, "/events/", 8) || !strncmp(path, "/poll/", 6)) {
        int t = hb_ticket_http(s, c, wsi, path); /* ?ticket=: redeemed first (ticket.h) */
        if (t)
            return t < 0 ? -1 : 0;
    }
    if (!strncmp(path, "/events/", 8))
        return sse_single(s, c, wsi, path + 8, plen - 8);
    if (!strcmp(path, "/events"))
        return sse_multi(s, c, wsi);
    if (!strncmp(path, "/poll/", 6))
        return poll_start(s, c, wsi, path + 6, plen - 6);
    if (!strcmp(path, "/herald.js"))
        return herald_js(c, wsi);
    if (!strcmp(path, "/ws"))
        return respond_text(c, 426, "WebSocket upgrade required (subprotocol herald.v1)\n", 0);
    if ((!strcmp(path, "/") || !strcmp(path, "/index.html")) && hb_demo_html)
        return hb_http_respond(c, 200, "text/html; charset=utf-8", (const char *)hb_demo_html,
                               hb_demo_html_len, 0);
    return respond_text(c, 404, "not found\n", 0);
}

int hb_http_reroute(hb_svc_t *s, hb_client_t *c, const char *path)
{
    int rc;
    c->req = REQ_HEAD;
    rc = route(s, c, c->wsi, path, HB_HTTP_BODY_NONE, 0);
    if (c->req == REQ_HEAD)
        c->req = REQ_DONE;
    return rc;
}

int hb_http_unauthorized(hb_client_t *c, const char *body)
{
    c->auth_challenge = EXTRA_AUTH_INVALID;
    return hb_http_respond(c, 401, "text/plain; charset=utf-8", body, strlen(body), 0);
}

int hb_http_on_request(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *path)
{
    const char *reason = NULL;
    hb_http_body_t body;
    uint64_t blen;
    int rc;

    /* framing first: an ambiguous head is refused (400 + close) before anything is acted on */
    c->req = REQ_HEAD;
    if (hb_req_framing(wsi, &body, &blen, &reason)) {
        c->req = REQ_DONE;
        return bad_request(c, reason, 1);
    }
    rc = route(s, c, wsi, path, body, blen);
    if (c->req == REQ_HEAD)
        c->req = REQ_DONE; /* no body taken: a body lws still reads is ignored */
    return rc;
}
