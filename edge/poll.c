/*
 * GET /poll/<topic>: long-poll. One subscription per request, answered once with a JSON array
 * of the events queued (history from ?since=, then live), the cursor to ask from next and any
 * gap, when an event arrives, the timeout passes or the edge drains. Service thread only.
 */
#include "http.h"
#include "reqcheck.h"
#include "topics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The answer is made: stop receiving (drop the subscription and what it queued) and the
 * timers; then the answer is queued alone. */
static void poll_stop(hb_client_t *c)
{
    hb_svc_poll_timer(c, 0);
    hb_ctimer_peer_watch(c, 0); /* answered: lws reads the connection again */
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
    c->qcharge = 0;
}

/* Something to answer with: events, a gap, or a zero timeout (or draining). */
static int poll_answer_due(const hb_client_t *c)
{
    return c->qlen || c->x->poll_gap || c->x->poll_ready == 2;
}

/* From the writable callback: answer unless a subscription still reads history (events, a gap
 * or a zero timeout answer now). Answering removes the subscription: only ever done from
 * here or the timer, never while a delivery to it is on the stack. */
static int poll_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    (void)s;
    (void)wsi;
    if (c->closing)
        return 0;
    if (hb_req_pipelined_behind(c)) {
        /* a request pipelined behind the poll: lws would spin on it until the answer
         * (hb_req_pipelined_behind()); answered now, with Connection: close, and not served */
        c->close_after_flush = 1;
        c->x->poll_ready = 2;
    }
    if (c->x->poll_fail) {
        hb_poll_on_timer(c);
        return 0;
    }
    for (uint16_t i = 0; i < c->nsubs; i++)
        if (c->subs[i] && c->subs[i]->resuming && !c->subs[i]->poll_full)
            return 0; /* history first */
    if (poll_answer_due(c))
        hb_poll_on_timer(c);
    return 0;
}

static void poll_timer(hb_client_t *c, lws_usec_t now)
{
    (void)now;
    hb_poll_on_timer(c);
}

/* A history read failed (hb_hread_failed): answered 503 from the writable callback. */
static void poll_read_failed(hb_client_t *c, const char *why)
{
    c->x->poll_fail = why;
    lws_callback_on_writable(c->wsi);
}

/* A gap notice: the answer says so (from the writable callback). */
static void poll_gap(hb_client_t *c, const hb_ev_t *ev)
{
    c->x->poll_gap = ev->gap == HB_GAP_RESET ? "reset" : "trimmed";
    lws_callback_on_writable(c->wsi);
}

/* `next` when no event comes: the stream's tail (after a reset gap, even over a `since`). */
static void poll_history_tail(hb_client_t *c, const char *tail, int reset)
{
    if (reset || !c->x->poll_next[0])
        memcpy(c->x->poll_next, tail, sizeof(c->x->poll_next));
}

/* Skipped stored entries: `next` moves past them, or the next poll reads them again. */
static void poll_history_passed(hb_client_t *c, const hb_cursor_t *at)
{
    hb_cursor_t now;
    char *next = c->x->poll_next;
    if (next[0] && !hb_cursor_parse(next, strlen(next), &now, NULL) &&
        !strcmp(now.epoch, at->epoch) && hb_id_cmp(&now.id, &at->id) >= 0)
        return;
    next[hb_cursor_format(&at->id, at->epoch, next)] = '\0';
}

/* History read: answered now if it has something; an empty wait needs no writable callback
 * (two epoll changes a poll): its pipelining check is made at the end of the loop turn. */
static void poll_caught_up(hb_client_t *c)
{
    if (poll_answer_due(c))
        lws_callback_on_writable(c->wsi);
}

/* Draining: answered with what it has, from its writable callback. */
static void poll_drain(hb_client_t *c, unsigned i)
{
    (void)i;
    c->x->poll_ready = 2;
    lws_callback_on_writable(c->wsi);
}

const hb_transport_t hb_poll_ops = {
    .name = "poll",
    .gauge = offsetof(hb_stats_t, conn_poll),
    .frame = offsetof(hb_ev_t, json),
    .cursor = 1,
    .answer = 1,
    .http_writeable = poll_writeable,
    .timer = poll_timer,
    .gap = poll_gap,
    .history_tail = poll_history_tail,
    .history_passed = poll_history_passed,
    .read_failed = poll_read_failed,
    .caught_up = poll_caught_up,
    .drain = poll_drain,
    .end = hb_ctimer_peer_end,
};

/* Appends string @s at @body + @n (the caller sized @body for it); returns the new length. */
static size_t put(char *body, size_t n, const char *s)
{
    size_t l = strlen(s);
    memcpy(body + n, s, l);
    return n + l;
}

void hb_poll_on_timer(hb_client_t *c)
{
    char *body;
    size_t cap = c->qbytes + HB_CURSOR_MAX + 64, n;
    const char *next;
    if (c->ops != &hb_poll_ops || c->closing)
        return;
    if (c->x->poll_fail) {
        /* its history read failed: an answer with the events so far would name a `next`
         * past what it could not read; 503, and the client asks again from its cursor */
        char text[96];
        poll_stop(c);
        snprintf(text, sizeof(text), "%s: retry\n", c->x->poll_fail);
        hb_http_respond_text(c, 503, text, 0);
        return;
    }
    next = c->x->poll_next;
    body = malloc(cap + c->qlen);
    if (!body) {
        hb_client_close(c, "out of memory", 0);
        return;
    }
    n = put(body, 0, "{\"events\":[");
    for (uint32_t i = 0; i < c->qlen; i++) {
        qent_t *e = &c->q[(c->qhead + i) % c->qcap];
        if (i)
            body[n++] = ',';
        memcpy(body + n, hb_buf_data(e->b), hb_buf_len(e->b));
        n += hb_buf_len(e->b);
        if (e->cur && hb_buf_len(e->cur) < HB_CURSOR_MAX) {
            memcpy(c->x->poll_next, hb_buf_data(e->cur), hb_buf_len(e->cur));
            c->x->poll_next[hb_buf_len(e->cur)] = '\0';
        }
    }
    n = put(body, n, "],\"next\":\"");
    /* Nothing was ever stored (no since, no stream, no event): every event to come is after
     * the first possible ID. An empty next would come back as an empty since, read as none:
     * from the tail then, past what was stored in between. */
    n = put(body, n, next[0] ? next : "0-0");
    if (c->x->poll_gap) {
        n = put(body, n, "\",\"gap\":\"");
        n = put(body, n, c->x->poll_gap);
    }
    n = put(body, n, "\"}");
    poll_stop(c);
    hb_http_respond(c, 200, "application/json", body, n, 0);
    free(body);
}

/* `timeout` as written: 1 to 9 digits and nothing else (no sign, no blank), at most max; -1
 * otherwise (strtol() alone takes "+1", " 1" and "-0"). */
static long whole_seconds(const char *t, long max)
{
    size_t n = strspn(t, "0123456789");
    long v;
    if (!n || t[n] || n > 9)
        return -1;
    v = strtol(t, NULL, 10);
    return v <= max ? v : -1;
}

int hb_poll_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic, size_t tlen)
{
    char arg[HB_CURSOR_MAX + 8], tbuf[16], name[HB_TOPIC_MAX + 1];
    const char *reason = NULL;
    hb_cursor_t cur;
    long timeout = 25;
    hb_creq_t *x;
    long long exp; /* a long-poll ends within its timeout: exp is checked per request */
    int has = hb_http_single_topic(s, c, wsi, topic, tlen, name, &exp);
    if (has != 1)
        return has; /* refused, answered */
    has = hb_http_query_arg(wsi, "since", NULL, arg, sizeof(arg));
    if (has < 0)
        return hb_http_bad_request(c, "since is too long", 0);
    if (has > 0 && arg[0] && hb_cursor_parse(arg, strlen(arg), &cur, &reason))
        return hb_http_bad_request(c, reason, 0);
    has = has > 0 && arg[0];
    if (hb_http_query_arg(wsi, "timeout", NULL, tbuf, sizeof(tbuf)) != 0 &&
        (timeout = whole_seconds(tbuf, s->edge->cfg.poll_timeout_max)) < 0)
        return hb_http_bad_request(c, "timeout must be a number of seconds within the limit", 0);
    if (!hb_svc_admit(s, c->wsi))
        return hb_http_respond_text(c, 503, "over capacity or draining: retry later\n", 1);
    if (!hb_topics_take(s, &(const char *){name}, &tlen, 1))
        return hb_http_respond_text(c, 503, "too many new topics on this edge: retry later\n", 1);
    x = hb_creq(c);
    hb_client_count(c, &hb_poll_ops);
    if (has) {
        size_t l = hb_cursor_format(&cur.id, cur.epoch, x->poll_next);
        x->poll_next[l] = '\0';
    }
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (timeout == 0)
        x->poll_ready = 2;
    else
        hb_svc_poll_timer(c, (lws_usec_t)timeout * LWS_USEC_PER_SEC);
    /* answered at once (timeout 0): with what was stored before it, read from Redis */
    hb_sub_add(c, name, tlen, has ? &cur : NULL,
               (has ? 0 : HB_SUB_TAIL) | (timeout == 0 ? HB_SUB_FRESH : 0), NULL);
    lws_http_headers_detach(wsi);
    /* lws does not read the connection while the answer is open, yet polls it: a hang-up is
     * found (and the poll closed at once) by the peer set, not by a spin until the timeout */
    hb_ctimer_peer_watch(c, 1);
    hb_req_check_later(c); /* the pipelining check, when this loop turn is done */
    return 0;
}
