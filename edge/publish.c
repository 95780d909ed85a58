/*
 * POST /publish/<topic>: the request's checks (method, key or token, topic, event name,
 * framing and size), its body gathered up to --max-message-bytes, the publish request to the
 * broker, and the answer once Redis stored the event. Service thread only.
 */
#include "http.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csend.h"
#include "hb_mem.h"
#include "reqcheck.h"

/* A publish waiting for its body, then for Redis: its answer is a plain one (hb_simple_ops). */
const hb_transport_t hb_publish_ops = {
    .name = "http",
    .gauge = offsetof(hb_stats_t, conn_sse), /* never counted */
    .frame = offsetof(hb_ev_t, json),
    .transaction = 1,
    .published = hb_http_on_published,
};

/*
 * Expect: 100-continue (RFC 9110 10.1.1): the client sends its body only after an interim
 * 100, or after a wait of its own (curl: a second, and it asks for bodies over 1 KiB, as PHP's
 * and other libcurl publishers do). Everything about the request has been checked when this
 * is called, so the body is wanted; a refusal before it (401, 413...) is the final answer
 * instead, and the client sends no body. lws 4.1 does not answer it itself.
 */
static void continue_if_expected(hb_client_t *c, struct lws *wsi, uint64_t length)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char buf[LWS_PRE + sizeof(cont)];
    char v[16];
    int n;
    if (!length || lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_EXPECT) != 12 ||
        lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_EXPECT) != 12 ||
        strcasecmp(v, "100-continue") != 0)
        return;
    memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
    n = hb_client_send_frame(c, buf + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP_HEADERS);
    if (n == 0) /* no direct send (TLS): through lws */
        n = lws_write(wsi, buf + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP_HEADERS) ==
                    (int)sizeof(cont) - 1
                ? 1
                : HB_EIO;
    if (n < 0)
        hb_client_close(c, "write failed", 0);
}

/*
 * The Idempotency-Key header into out ("" when absent): a token or a quoted string (the IETF
 * draft's sf-string form), validated (hb_idem_key_validate). 0, or HB_EPROTO with *reason.
 */
static int idempotency_key(struct lws *wsi, char *out, size_t cap, const char **reason)
{
    char v[HB_IDEM_KEY_MAX + 8];
    int n = lws_hdr_custom_length(wsi, "idempotency-key:", 16);
    size_t len;
    const char *k = v;
    out[0] = '\0';
    /* a name lws does not take for this one but a proxy might (RFC 9112 section 5.1) */
    if (lws_hdr_custom_length(wsi, "idempotency-key :", 17) >= 0 ||
        lws_hdr_custom_length(wsi, "idempotency-key\t:", 17) >= 0) {
        *reason = "whitespace between Idempotency-Key and its colon";
        return HB_EPROTO;
    }
    if (n < 0)
        return 0;
    if ((size_t)n >= sizeof(v) ||
        lws_hdr_custom_copy(wsi, v, (int)sizeof(v), "idempotency-key:", 16) < 0) {
        *reason = "idempotency key must be 1-64 bytes";
        return HB_EPROTO;
    }
    len = strlen(v);
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        k++;
        len -= 2;
    }
    if (hb_idem_key_validate(k, len, reason) || len >= cap)
        return HB_EPROTO;
    memcpy(out, k, len);
    out[len] = '\0';
    return 0;
}

/* POST /publish/<topic>: the head's framing is already checked (hb_req_framing). */
int hb_http_publish_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic,
                          size_t tlen, hb_http_body_t framing, uint64_t length)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    char tok[HB_JWT_MAX + 8];
    const char *reason = NULL;
    hb_creq_t *x;
    int n;

    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0) {
        hb_creq(c)->auth_challenge = EXTRA_ALLOW_POST;
        return hb_http_respond_text(c, 405, "method not allowed: use POST\n", 1);
    }
    if (!cfg->publish_key[0] && !cfg->jwt_secret_len)
        return hb_http_respond_text(
            c, 403, "publish endpoint disabled: no --publish-key or --jwt-secret configured\n", 1);
    n = hb_auth_token(wsi, tok, sizeof(tok));
    if (n <= 0) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        hb_creq(c)->auth_challenge = EXTRA_AUTH;
        return hb_http_respond_text(
            c, 401,
            n == HB_ELIMIT ? "unauthorized: token longer than 8192 bytes\n"
                           : "unauthorized: Authorization: Bearer <publish key or token>\n",
            1);
    }
    if (hb_topic_validate(topic, tlen, &reason))
        return hb_http_bad_request(c, reason, 1);
    if (!hb_auth_is_publish_key(cfg, tok, strlen(tok))) {
        hb_jwt_t *j = NULL;
        char body[256];
        int ok;
        if (!cfg->jwt_secret_len || hb_auth_verify(s, tok, strlen(tok), &j, &reason)) {
            if (!cfg->jwt_secret_len)
                atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
            snprintf(body, sizeof(body), "unauthorized: %s\n",
                     cfg->jwt_secret_len ? reason : "wrong publish key");
            hb_creq(c)->auth_challenge = EXTRA_AUTH_INVALID;
            return hb_http_respond(c, 401, "text/plain; charset=utf-8", body, strlen(body), 1);
        }
        ok = hb_jwt_can_publish(j, topic, tlen);
        hb_jwt_free(j);
        if (!ok) {
            atomic_fetch_add_explicit(&s->edge->stats.rejected_forbidden, 1, memory_order_relaxed);
            return hb_http_respond_text(
                c, 403, "forbidden: the token does not allow publishing to this topic\n", 1);
        }
    }
    x = hb_creq(c);
    n = hb_http_query_arg(wsi, "event", NULL, x->event, sizeof(x->event));
    if (n < 0 ||
        (n > 0 && x->event[0] && hb_event_name_validate(x->event, strlen(x->event), &reason)))
        return hb_http_bad_request(c, reason ? reason : "event name longer than 64 bytes", 1);
    if (idempotency_key(wsi, x->idem, sizeof(x->idem), &reason))
        return hb_http_bad_request(c, reason, 1);
    if (framing == HB_HTTP_BODY_CHUNKED)
        /* libwebsockets 4.1 does not decode chunked request bodies: ask for a length */
        return hb_http_respond_text(
            c, 411, "Content-Length required (chunked bodies are not accepted)\n", 1);
    if (framing == HB_HTTP_BODY_NONE)
        /* lws would take the rest of the connection as the body of a POST without a length */
        return hb_http_respond_text(c, 411, "Content-Length required\n", 1);
    if (length > (uint64_t)cfg->max_message_bytes) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_too_large, 1, memory_order_relaxed);
        return hb_http_respond_text(c, 413, "payload larger than --max-message-bytes\n", 1);
    }
    memcpy(x->topic, topic, tlen);
    x->topic[tlen] = '\0';
    x->topic_len = tlen;
    c->ops = &hb_publish_ops;
    x->rxmax = (size_t)length;
    /* lws gives the body (an explicit 0 too) and then completes it, once: HTTP_BODY_COMPLETION */
    c->req = REQ_BODY;
    continue_if_expected(c, wsi, length);
    return 0;
}

int hb_http_on_body(hb_svc_t *s, hb_client_t *c, const char *in, size_t len)
{
    if (c->req != REQ_BODY || c->ops != &hb_publish_ops || !len)
        return 0; /* a body we answered early (or lws' empty call for Content-Length: 0) */
    if (len > c->x->rxmax - c->rxlen) { /* lws frames by the same Content-Length: cannot happen */
        atomic_fetch_add_explicit(&s->edge->stats.rejected_too_large, 1, memory_order_relaxed);
        free(c->rx);
        c->rx = NULL;
        c->rxlen = c->rxcap = 0;
        c->req = REQ_DONE;
        return hb_http_respond_text(c, 413, "payload larger than --max-message-bytes\n", 1);
    }
    if (c->rxlen + len > c->rxcap) {
        size_t ncap = c->rxcap ? (size_t)c->rxcap * 2 : 4096;
        char *nrx;
        while (ncap < c->rxlen + len)
            ncap *= 2;
        if (ncap > c->x->rxmax)
            ncap = c->x->rxmax;
        nrx = realloc(c->rx, ncap ? ncap : 1);
        if (!nrx)
            return hb_http_respond_text(c, 503, "out of memory\n", 1);
        c->rx = nrx;
        c->rxcap = (uint32_t)ncap; /* <= rxmax <= --max-message-bytes */
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    return 0;
}

int hb_http_on_body_done(hb_svc_t *s, hb_client_t *c)
{
    hb_req_t *q;
    hb_pending_t *p;
    if (c->req == REQ_DONE && c->ops && c->ops->transaction && !c->rx_paused) {
        /* lws 4.1 calls this again on every loop turn while a pipelined request waits in its
         * buffer (it stays in its body state until the answer is written), and the loop
         * starves. Herald does not pipeline after a publish: stop reading, answer, close. */
        c->close_after_flush = 1;
        hb_req_pause(c);
        if (c->ops->answer_now) /* an answer is queued, and lws will not write it now */
            c->ops->answer_now(c);
        return 0;
    }
    if (c->req != REQ_BODY || c->ops != &hb_publish_ops)
        return 0; /* completed already, or answered before its body */
    c->req = REQ_DONE;
    q = hb_xcalloc(1, sizeof(*q));
    q->type = HB_REQ_PUBLISH;
    memcpy(q->topic, c->x->topic, c->x->topic_len);
    q->topic_len = c->x->topic_len;
    memcpy(q->event, c->x->event, sizeof(q->event));
    memcpy(q->idem, c->x->idem, sizeof(q->idem));
    q->payload = c->rx;
    q->payload_len = c->rxlen;
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
    p = hb_pending_add(s, c, NULL);
    q->client_id = p->token;
    if (hb_svc_request(s, q) != 0) {
        hb_pending_del(s, p);
        return hb_http_respond_text(c, 503, "busy: try again\n", 1);
    }
    return 0;
}

void hb_http_on_published(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m)
{
    hb_client_t *c = p->c;
    char body[320];
    int n;
    hb_hist_observe(&s->pub_hist, hb_wall_us() - p->t0_us, 1);
    hb_pending_del(s, p);
    if (m->error) {
        /* 504: sent, and no answer came (stored or not: send it again with the same key) */
        static const unsigned status[] = {
            [HB_PUB_NOT_STORED] = 503, [HB_PUB_REFUSED] = 400, [HB_PUB_UNKNOWN] = 504};
        n = snprintf(body, sizeof(body), "%s\n", m->result);
        hb_http_respond(c, status[m->outcome], "text/plain; charset=utf-8", body, (size_t)n, 0);
        return;
    }
    n = snprintf(body, sizeof(body), "{\"id\":\"%s\"%s}", m->result,
                 m->duplicate ? ",\"duplicate\":true" : "");
    hb_http_respond(c, 200, "application/json", body, (size_t)n, 0);
}
