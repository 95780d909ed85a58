/*
 * GET /events/<topic> and GET /events?topic=a&topic=b: Server-Sent Events streams, one topic
 * or several with a composite cursor (one per topic, in URL order). The request's checks, the
 * resume point from Last-Event-ID (or ?lastEventId=), the stream's headers, and the turn-away
 * (retry + close) when the edge is full or draining. Writing the stream is http_write.c's.
 * Service thread only.
 */
#include "http.h"
#include "topics.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hb_mem.h"

/* The edge drains: a jittered retry (the clients do not all come back at once), then close. */
static void sse_drain(hb_client_t *c, unsigned i)
{
    hb_client_push(c, c->svc->drain_frames[i % HB_DRAIN_VARIANTS], NULL, 0, 1);
    c->close_after_flush = 1;
    lws_callback_on_writable(c->wsi);
}

/* The token expired: the stream ends after what is queued; EventSource reconnects with its URL,
 * whose expired token is then refused with 401 (the page must get a new token). */
static void sse_expire(hb_client_t *c)
{
    hb_client_push(c, c->svc->expired_frame, NULL, 0, 1);
    c->close_after_flush = 1;
    lws_callback_on_writable(c->wsi);
}

const hb_transport_t hb_sse_ops = {
    .name = "sse",
    .gauge = offsetof(hb_stats_t, conn_sse),
    .frame = offsetof(hb_ev_t, sse),
    .write = hb_http_sse_write,
    .send_now = hb_http_sse_send_now,
    .http_writeable = hb_http_sse_writeable,
    .start = hb_ctimer_sse_start,
    .end = hb_ctimer_peer_end,
    .timer = hb_ctimer_sse_fire,
    .drain = sse_drain,
    .expire = sse_expire,
};

/* Multi-topic SSE: each event with its cursor, written followed by the composite id line. */
const hb_transport_t hb_msse_ops = {
    .name = "sse-multi",
    .gauge = offsetof(hb_stats_t, conn_sse),
    .frame = offsetof(hb_ev_t, msse),
    .cursor = 1,
    .write = hb_http_msse_write,
    .http_writeable = hb_http_sse_writeable,
    .start = hb_ctimer_sse_start,
    .end = hb_ctimer_peer_end,
    .timer = hb_ctimer_sse_fire,
    .drain = sse_drain,
    .expire = sse_expire,
};

/* Reads the resume cursor text from Last-Event-ID or ?lastEventId=. 1, 0 none, HB_ELIMIT too
 * long. */
static int read_last_event_id(struct lws *wsi, char *out, size_t cap)
{
    int n = lws_hdr_custom_length(wsi, "last-event-id:", 14);
    if (n > 0) {
        if ((size_t)n >= cap)
            return HB_ELIMIT;
        if (lws_hdr_custom_copy(wsi, out, (int)cap, "last-event-id:", 14) < 0)
            return HB_ELIMIT;
        return out[0] != '\0';
    }
    n = hb_http_query_arg(wsi, "lastEventId", NULL, out, cap);
    return n > 0 ? out[0] != '\0' : n;
}

static int sse_headers(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const hb_transport_t *t)
{
    if (hb_http_write_headers(s, c, wsi, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN, 1))
        return -1;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    /* an endless response: without this lws keeps the socket in POLLOUT and spins. A peer
     * that goes away is found by the housekeeping sweep (service.c). */
    lws_http_mark_sse(wsi);
    c->last_write = lws_now_usecs();
    hb_client_count(c, t);
    return 0;
}

/* Overload and drain are 200 + retry + close: EventSource keeps retrying. */
static int sse_turn_away(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (sse_headers(s, c, wsi, &hb_sse_ops))
        return -1;
    hb_client_push(c, s->drain_frames[c->id % HB_DRAIN_VARIANTS], NULL, 0, 1);
    c->close_after_flush = 1;
    lws_http_headers_detach(wsi);
    return 0;
}

int hb_http_sse_single(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic, size_t tlen)
{
    char text[HB_CURSOR_MAX + 8], name[HB_TOPIC_MAX + 1];
    const char *reason = NULL;
    hb_cursor_t cur;
    hb_ask_t ask;
    long long exp;
    int has = hb_http_single_topic(s, c, wsi, topic, tlen, name, &exp);

    if (has != 1)
        return has; /* refused, answered */
    has = read_last_event_id(wsi, text, sizeof(text));
    if (has < 0)
        return hb_http_bad_request(c, "Last-Event-ID is too long", 0);
    if (has > 0 && hb_cursor_parse(text, strlen(text), &cur, &reason))
        return hb_http_bad_request(c, reason, 0);
    if (!hb_svc_admit(s, c->wsi) || !hb_topics_take(s, &(const char *){name}, &tlen, 1))
        return sse_turn_away(s, c, wsi);
    ask = hb_topics_ask(s); /* before the head, which confirms the subscription */
    if (sse_headers(s, c, wsi, &hb_sse_ops))
        return -1;
    hb_client_push(c, s->retry_frame, NULL, 0, 1);
    hb_sub_add(c, name, tlen, has > 0 ? &cur : NULL, 0, &ask);
    if (exp)
        hb_auth_expire_at(c, exp);
    lws_http_headers_detach(wsi); /* give the header buffer back to the pool */
    return 0;
}

/* A topic argument's value: one topic, or several joined by "," (not a topic byte). */
#define TOPIC_LIST_MAX 4096

/* GET /events?topic=a&topic=b (or topic=a,b): one stream, a composite cursor in URL order. A
 * list in one argument is how a client names many topics: libwebsockets 4.1 parses at most
 * about 90 header lines and query arguments together, and drops a request with more without
 * an answer. */
int hb_http_sse_multi(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    int max = s->edge->cfg.max_topics, n = 0, frag = 0, rc, has;
    char *list = hb_xmalloc(TOPIC_LIST_MAX);
    char(*names)[HB_TOPIC_MAX + 1] = NULL;
    char *text = NULL;
    hb_cursor_t *curs = NULL;
    int *hascur = NULL;
    const char *reason = NULL;
    const char **tops = NULL;
    size_t tcap = (size_t)max * (HB_CURSOR_MAX + 1) + 8;
    long long exp = 0;
    hb_ask_t ask;
    int ret;

    names = hb_xcalloc((size_t)max + 1, sizeof(*names));
    while ((rc = hb_http_query_arg(wsi, "topic", &frag, list, TOPIC_LIST_MAX)) != 0) {
        if (rc < 0) {
            ret = hb_http_bad_request(
                c, "topic argument too long: spread the list over several topic= arguments", 0);
            goto out;
        }
        for (char *t = list, *comma;; t = comma + 1) {
            size_t tl;
            comma = strchr(t, ',');
            tl = comma ? (size_t)(comma - t) : strlen(t);
            if (n == max) {
                atomic_fetch_add_explicit(&s->edge->stats.rejected_topics, 1, memory_order_relaxed);
                ret = hb_http_bad_request(c, "too many topics for one connection", 0);
                goto out;
            }
            if (hb_topic_validate(t, tl, &reason)) {
                ret = hb_http_bad_request(c, reason, 0);
                goto out;
            }
            for (int i = 0; i < n; i++)
                if (strlen(names[i]) == tl && !memcmp(names[i], t, tl)) {
                    ret = hb_http_bad_request(c, "topic listed twice", 0);
                    goto out;
                }
            memcpy(names[n], t, tl);
            names[n++][tl] = '\0';
            if (!comma)
                break;
        }
    }
    if (n == 0) {
        ret = hb_http_bad_request(c, "topic is empty", 0);
        goto out;
    }
    tops = hb_xcalloc((size_t)n, sizeof(*tops));
    for (int i = 0; i < n; i++)
        tops[i] = names[i];
    if (hb_http_subscribe_auth(s, c, wsi, tops, n, &exp)) {
        ret = 0;
        goto out;
    }
    text = hb_xmalloc(tcap);
    curs = hb_xcalloc((size_t)n, sizeof(*curs));
    hascur = hb_xcalloc((size_t)n, sizeof(*hascur));
    has = read_last_event_id(wsi, text, tcap);
    if (has < 0) {
        ret = hb_http_bad_request(c, "Last-Event-ID is too long", 0);
        goto out;
    }
    if (has > 0) {
        char *p = text;
        for (int i = 0; i < n; i++) {
            char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if ((i < n - 1 && !comma) || (i == n - 1 && comma)) {
                ret = hb_http_bad_request(c, "Last-Event-ID does not have one cursor per topic", 0);
                goto out;
            }
            if (len && hb_cursor_parse(p, len, &curs[i], &reason)) {
                ret = hb_http_bad_request(c, reason, 0);
                goto out;
            }
            hascur[i] = len > 0;
            p = comma ? comma + 1 : p + len;
        }
    }
    if (!hb_svc_admit(s, c->wsi) || !hb_topics_take(s, tops, NULL, n)) {
        ret = sse_turn_away(s, c, wsi);
        goto out;
    }
    ask = hb_topics_ask(s); /* before the head, which confirms the subscriptions */
    if (sse_headers(s, c, wsi, &hb_msse_ops)) {
        ret = -1;
        goto out;
    }
    hb_client_push(c, s->retry_frame, NULL, 0, 1);
    for (int i = 0; i < n; i++) {
        hb_sub_t *u =
            hb_sub_add(c, names[i], strlen(names[i]), hascur[i] ? &curs[i] : NULL, 0, &ask);
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
    free(list);
    free(tops);
    free(names);
    free(text);
    free(curs);
    free(hascur);
    return ret;
}
