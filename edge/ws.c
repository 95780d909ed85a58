/*
 * WebSocket transport, subprotocol herald.v1: one JSON object per text frame (see PROTOCOL.md).
 * Service thread only.
 */
#include "ws.h"
#include "csend.h"
#include "reqcheck.h"
#include "topics.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_utf8.h"
#include "hb_wsmsg.h"
#include "ticket.h"

#define MOD "ws"

/* ---- replies ---- */

static void reply(hb_client_t *c, json_t *o, json_t *echo)
{
    char *s;
    hb_buf_t *b;
    if (!o)
        return;
    if (echo)
        json_object_set(o, "id", echo);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return;
    b = hb_ws_frame(s, strlen(s));
    free(s);
    if (b) {
        hb_client_push(c, b, NULL, 0, 1);
        hb_buf_unref(b);
    }
}

static void reply_error(hb_client_t *c, const char *code, const char *message, json_t *echo)
{
    reply(c, json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", message), echo);
}

/* ---- closing ---- */

/* Ends the connection with (code, why) from a receive callback; returns -1, what the callback
 * must return: lws runs the close handshake. */
static int ws_fail(hb_client_t *c, struct lws *wsi, uint16_t code, const char *why)
{
    (void)c;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
    return -1;
}

/* RFC 6455 7.4: the close codes a peer may send (1004-1006, 1015 and 1012-2999 are reserved or
 * not for the wire; 5000 and above do not exist). */
static int close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

int hb_ws_peer_close(hb_client_t *c, struct lws *wsi, const unsigned char *in, size_t len)
{
    static const char one_byte[] = "close payload of 1 byte", bad_code[] = "invalid close code",
                      bad_utf8[] = "close reason is not UTF-8";
    if (!c->close_why)
        c->close_why = "peer sent close";
    if (len == 1) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)one_byte,
                         sizeof(one_byte) - 1);
        return -1;
    }
    if (len < 2)
        return 0; /* no code: lws answers with an empty close */
    if (!close_code_ok((unsigned)in[0] << 8 | in[1])) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)bad_code,
                         sizeof(bad_code) - 1);
        return -1;
    }
    if (!hb_utf8_valid(in + 2, len - 2)) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, (unsigned char *)bad_utf8,
                         sizeof(bad_utf8) - 1);
        return -1;
    }
    return 0; /* lws echoes the code and reason */
}

/* ---- connection ---- */

int hb_ws_confirm_upgrade(hb_svc_t *s, struct lws *wsi, const char *upgrade)
{
    static const char body[] = "unsupported WebSocket version: send Sec-WebSocket-Version: 13\n";
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + sizeof(buf) - sizeof(body);
    const char *node = s->edge->cfg.node_id;
    char v[4];
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return 0; /* not ours to judge */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_VERSION) == 2 &&
        lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_VERSION) == 2 && strcmp(v, "13") == 0)
        return 0;
    /* RFC 6455 4.2.2 and 4.4: 426 naming the version we speak (lws would answer 101) */
    atomic_fetch_add_explicit(&s->edge->stats.bad_requests, 1, memory_order_relaxed);
    /* the status line by hand: lws 4.1 has no text for 426 and, before the upgrade is decided,
     * would answer as HTTP/1.0 */
    static const char status[] = "HTTP/1.1 426 Upgrade Required\r\n";
    memcpy(p, status, sizeof(status) - 1);
    p += sizeof(status) - 1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"sec-websocket-version:",
                                    (const unsigned char *)"13", 2, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-herald-node:",
                                    (const unsigned char *)node, (int)strlen(node), &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"text/plain; charset=utf-8", 25, &p,
                                     end) ||
        lws_add_http_header_content_length(wsi, sizeof(body) - 1, &p, end) ||
        lws_finalize_http_header(wsi, &p, end))
        return -1;
    memcpy(p, body, sizeof(body) - 1);
    p += sizeof(body) - 1;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) != (int)(p - start))
        return -1;
    return 1; /* answered: lws ends the transaction */
}

int hb_ws_filter(hb_svc_t *s, struct lws *wsi)
{
    char uri[16];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
    if (n <= 0 || n >= (int)sizeof(uri) ||
        lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/ws") != 0)
        return 1; /* WebSocket only on /ws (hb_req_confirm_upgrade answered 404 already) */
    {
        uint8_t cors; /* browsers send Origin with every WebSocket handshake */
        if (hb_auth_origin(s, wsi, &cors))
            return 1;
    }
    return hb_svc_admit(s, wsi) ? 0 : 1;
}

/* A token from the handshake or an auth message: the publish key, or a JWT whose claims the
 * connection keeps (replacing earlier ones). 0, or -1 with *reason (nothing changed). */
int hb_ws_take_token(hb_svc_t *s, hb_client_t *c, const char *tok, size_t len, const char **reason)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    hb_jwt_t *j = NULL;
    int rc;
    if (hb_auth_is_publish_key(cfg, tok, len)) {
        c->may_publish = 1;
        return 0;
    }
    if (!cfg->jwt_secret_len) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        *reason = "invalid token";
        return HB_EINVAL;
    }
    if ((rc = hb_auth_verify(s, tok, len, &j, reason)) != 0)
        return rc;
    hb_jwt_free(c->jwt);
    c->jwt = j;
    hb_auth_expire_at(c, hb_jwt_exp(j));
    return 0;
}

void hb_ws_established(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    char tok[HB_JWT_MAX + 8];
    const char *reason = NULL;
    int n = hb_auth_token(wsi, tok, sizeof(tok));
    if (n == 0)
        n = hb_auth_cookie(s, wsi, tok, sizeof(tok));
    hb_client_count(c, &hb_ws_ops);
    if (hb_ticket_ws(s, c, wsi))
        return; /* ?ticket=: signed in (or refused) once Redis gave the token back */
    if (n == 0 || (n < 0 && !cfg->jwt_secret_len))
        return;
    if (n < 0)
        reason = n == HB_ELIMIT ? "token longer than 8192 bytes"
                                : "Authorization must be: Bearer <token>";
    /* without a secret a wrong bearer only means "may not publish", as before tokens */
    if (reason || (hb_ws_take_token(s, c, tok, strlen(tok), &reason) && cfg->jwt_secret_len)) {
        hb_log_debug(MOD, "handshake token refused", "{s:s}", "err", reason);
        hb_client_close(c, reason, LWS_CLOSE_STATUS_POLICY_VIOLATION);
    }
}

static hb_sub_t *find_sub(hb_client_t *c, const char *topic, size_t len)
{
    for (uint16_t i = 0; i < c->nsubs; i++) {
        hb_sub_t *u = c->subs[i];
        if (u && u->t->len == len && !memcmp(u->t->name, topic, len))
            return u;
    }
    return NULL;
}

static size_t active_subs(hb_client_t *c)
{
    size_t n = 0;
    for (uint16_t i = 0; i < c->nsubs; i++)
        n += c->subs[i] != NULL;
    return n;
}

static void on_subscribe(hb_svc_t *s, hb_client_t *c, const hb_wsmsg_t *m)
{
    hb_ask_t ask;
    if (!hb_auth_may_subscribe(&s->edge->cfg, c->jwt, m->topic, m->topic_len)) {
        if (c->jwt) {
            atomic_fetch_add_explicit(&s->edge->stats.rejected_forbidden, 1, memory_order_relaxed);
            reply_error(c, "forbidden", "the token does not allow subscribing to this topic",
                        m->echo);
        } else {
            atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
            reply_error(c, "unauthorized", "a token is required: send auth first", m->echo);
        }
        return;
    }
    if (find_sub(c, m->topic, m->topic_len)) {
        reply_error(c, "already_subscribed", "already subscribed to this topic", m->echo);
        return;
    }
    if (active_subs(c) >= (size_t)s->edge->cfg.max_topics) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_topics, 1, memory_order_relaxed);
        reply_error(c, "too_many_topics", "topic limit of this connection reached", m->echo);
        return;
    }
    if (!hb_topics_take(s, &(const char *){m->topic}, &m->topic_len, 1)) {
        /* names the topic: a client that subscribes without ids knows what to send again */
        reply(c,
              json_pack("{s:s,s:s,s:s,s:s%}", "type", "error", "code", "busy", "message",
                        "too many new topics on this edge: retry later", "topic", m->topic,
                        m->topic_len),
              m->echo);
        return;
    }
    /* the reply goes first: history and live events follow it; the ask is before it */
    ask = hb_topics_ask(s);
    reply(c, json_pack("{s:s,s:s%}", "type", "subscribed", "topic", m->topic, m->topic_len),
          m->echo);
    hb_sub_add(c, m->topic, m->topic_len, m->has_since ? &m->since : NULL, 0, &ask);
}

static void on_unsubscribe(hb_client_t *c, const hb_wsmsg_t *m)
{
    hb_sub_t *u = find_sub(c, m->topic, m->topic_len);
    if (!u) {
        reply_error(c, "not_subscribed", "not subscribed to this topic", m->echo);
        return;
    }
    hb_sub_remove(c, u);
    reply(c, json_pack("{s:s,s:s%}", "type", "unsubscribed", "topic", m->topic, m->topic_len),
          m->echo);
}

/* Publishes one connection may have waiting for Redis: at the bound its input is not read
 * until an answer comes (a publisher that does not wait for answers is paced by Redis, and
 * what it sends waits in its socket, not in the edge's memory). */
#define WS_PUBS_IN_FLIGHT 16

static unsigned pubs_in_flight(const hb_client_t *c)
{
    unsigned n = 0;
    for (const hb_pending_t *p = c->pubs; p; p = p->cnext)
        n++;
    return n;
}

static void on_publish(hb_svc_t *s, hb_client_t *c, const hb_wsmsg_t *m)
{
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    hb_pending_t *p;
    q->type = HB_REQ_PUBLISH;
    memcpy(q->topic, m->topic, m->topic_len);
    q->topic_len = m->topic_len;
    if (m->event_len)
        memcpy(q->event, m->event, m->event_len);
    if (m->idem_len) /* <= HB_IDEM_KEY_MAX (hb_wsmsg) */
        memcpy(q->idem, m->idem, m->idem_len);
    q->payload_len = m->data_len;
    q->payload = hb_xmemdup(m->data, m->data_len);
    p = hb_pending_add(s, c, NULL);
    p->echo = m->echo ? json_incref(m->echo) : NULL;
    q->client_id = p->token;
    if (hb_svc_request(s, q) != 0) {
        hb_pending_del(s, p);
        reply_error(c, "unavailable", "server busy, try again", m->echo);
    } else if (pubs_in_flight(c) >= WS_PUBS_IN_FLIGHT) {
        hb_req_pause(c);
    }
}

static void ws_on_published(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m)
{
    hb_client_t *c = p->c;
    json_t *echo = p->echo ? json_incref(p->echo) : NULL;
    hb_hist_observe(&s->pub_hist, hb_wall_us() - p->t0_us, 1);
    hb_pending_del(s, p);
    if (c->rx_paused && !c->drain_pubs && pubs_in_flight(c) < WS_PUBS_IN_FLIGHT)
        hb_req_resume(c);
    if (m->error) {
        static const char *const code[] = {[HB_PUB_NOT_STORED] = "unavailable",
                                           [HB_PUB_REFUSED] = "bad_request",
                                           [HB_PUB_UNKNOWN] = "outcome_unknown"};
        reply_error(c, code[m->outcome], m->result, echo);
    } else {
        json_t *o = json_pack("{s:s,s:s%,s:s}", "type", "published", "topic", m->topic,
                              m->topic_len, "event_id", m->result);
        if (o && m->duplicate)
            json_object_set_new(o, "duplicate", json_true());
        reply(c, o, echo);
    }
    json_decref(echo);
    if (c->drain_pubs == 1 && !c->pubs) { /* the last answer: 1001 once it is written */
        c->drain_pubs = 2;
        lws_callback_on_writable(c->wsi);
    }
}

/* One client message: parsed and validated by hb_wsmsg (common/, fuzzed), acted on here. */
static void on_message(hb_svc_t *s, hb_client_t *c, const char *msg, size_t len)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    const char *code = NULL, *reason = NULL;
    hb_wsmsg_t m;
    int rc = hb_wsmsg_parse(msg, len, (size_t)cfg->max_message_bytes, &m, &code, &reason);

    if (m.type == HB_WSMSG_PUBLISH && !c->may_publish &&
        !(c->jwt && (rc || hb_jwt_can_publish(c->jwt, m.topic, m.topic_len)))) {
        if (c->jwt)
            atomic_fetch_add_explicit(&s->edge->stats.rejected_forbidden, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        reply_error(c, "forbidden",
                    c->jwt ? "the token does not allow publishing to this topic"
                           : "this connection may not publish",
                    m.echo);
    } else if (rc) {
        if (rc == HB_ELIMIT)
            atomic_fetch_add_explicit(&s->edge->stats.rejected_too_large, 1, memory_order_relaxed);
        reply_error(c, code, reason, m.echo);
    } else {
        switch (m.type) {
        case HB_WSMSG_SUBSCRIBE:
            on_subscribe(s, c, &m);
            break;
        case HB_WSMSG_UNSUBSCRIBE:
            on_unsubscribe(c, &m);
            break;
        case HB_WSMSG_PUBLISH:
            on_publish(s, c, &m);
            break;
        case HB_WSMSG_PING:
            /* the node id tells a browser, which cannot read the 101's X-Herald-Node, which
             * edge serves it */
            reply(c, json_pack("{s:s,s:s}", "type", "pong", "node", s->edge->cfg.node_id), m.echo);
            break;
        case HB_WSMSG_AUTH:
            if (!m.token) {
                atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
                reply_error(c, "unauthorized", "token must be a string", m.echo);
            } else if (hb_ws_take_token(s, c, m.token, m.token_len, &reason) == 0) {
                json_t *o = json_pack("{s:s}", "type", "authed");
                if (o && c->jwt && !hb_auth_is_publish_key(cfg, m.token, m.token_len)) {
                    if (hb_jwt_sub(c->jwt)[0])
                        json_object_set_new(o, "sub", json_string(hb_jwt_sub(c->jwt)));
                    if (hb_jwt_exp(c->jwt))
                        json_object_set_new(o, "exp", json_integer(hb_jwt_exp(c->jwt)));
                }
                reply(c, o, m.echo);
            } else {
                reply_error(c, "unauthorized", reason, m.echo);
            }
            break;
        }
    }
    hb_wsmsg_cleanup(&m);
}

int hb_ws_receive(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *in, size_t len)
{
    if (c->closing)
        return 0;
    if (lws_frame_is_binary(wsi))
        return ws_fail(c, wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                       "binary frames are not supported");
    if (lws_is_first_fragment(wsi))
        c->rxlen = 0;
    /* a message may take --max-message-bytes and its JSON envelope; rxlen <= that always */
    if (len > (size_t)s->edge->cfg.max_message_bytes + 4096 - c->rxlen) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_too_large, 1, memory_order_relaxed);
        return ws_fail(c, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
    }
    if (c->rxlen + len > c->rxcap) {
        size_t ncap = c->rxcap ? c->rxcap : 1024;
        char *nrx;
        while (ncap < c->rxlen + len)
            ncap *= 2;
        nrx = realloc(c->rx, ncap);
        if (!nrx)
            return -1;
        c->rx = nrx;
        c->rxcap = (uint32_t)ncap; /* < 2 (--max-message-bytes + 4 KiB): 32 MiB at most */
    }
    if (len)
        memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += (uint32_t)len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        /* RFC 6455 8.1: a text message is UTF-8, judged whole (a character may span frames) */
        if (!hb_utf8_valid(c->rx, c->rxlen)) {
            atomic_fetch_add_explicit(&s->edge->stats.bad_requests, 1, memory_order_relaxed);
            return ws_fail(c, wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
                           "invalid UTF-8 in a text message");
        }
        on_message(s, c, c->rx, c->rxlen);
        c->rxlen = 0;
        /* no buffer kept for an idle connection (1 KiB each): client messages are rare (a
         * subscribe, the odd publish), and the next one allocates again */
        free(c->rx);
        c->rx = NULL;
        c->rxcap = 0;
    }
    return 0;
}

/*
 * No extension is negotiated (edge/service.c): the queued frames are already the bytes on the wire,
 * so as many as fit in the thread's write buffer go out in one write (lws_write raw: no framing,
 * and lws keeps what the socket did not take and sends it before anything else). A frame bigger
 * than the buffer is written on its own straight from the shared buffer.
 */
static int write_coalesced(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    unsigned char *start = s->wbuf + LWS_PRE;
    size_t n = 0;
    long long now_us = hb_wall_us();
    qent_t *e = &c->q[c->qhead];
    if (c->qlen == 1) {
        /* one frame (an evenly paced topic): straight from the shared buffer when lws allows
         * it (hb_client_send_frame()) */
        int rc = hb_client_send_frame(c, hb_buf_data(e->b), hb_buf_len(e->b), LWS_WRITE_RAW);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            hb_client_pop(s, c, now_us);
            return 0;
        }
    }
    if (hb_buf_len(e->b) > HB_SVC_WBUF) {
        n = hb_buf_len(e->b);
        if (lws_write(wsi, hb_buf_data(e->b), n, LWS_WRITE_RAW) < (int)n)
            return HB_EIO;
        hb_client_pop(s, c, now_us);
    } else {
        while (c->qlen && n + hb_buf_len(c->q[c->qhead].b) <= HB_SVC_WBUF) {
            e = &c->q[c->qhead];
            memcpy(start + n, hb_buf_data(e->b), hb_buf_len(e->b));
            n += hb_buf_len(e->b);
            hb_client_pop(s, c, now_us);
        }
        if (lws_write(wsi, start, n, LWS_WRITE_RAW) < (int)n)
            return HB_EIO;
    }
    hb_svc_count(&s->bytes_out, n);
    return 0;
}

/* transport send_now() (transport.h): the frame is the bytes on the wire */
static int ws_send_now(hb_svc_t *s, hb_client_t *c, hb_buf_t *b)
{
    (void)s;
    return hb_client_send_event(c, b, LWS_WRITE_RAW);
}

/* transport write(): one write of what is queued. 0, or HB_EIO when the connection failed. */
static int ws_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (!c->qlen)
        return 0;
    return write_coalesced(s, c, wsi);
}

/* The writable callback once no ping is due: the close frame of a client being closed (-1
 * then), else one write of what is queued, another callback while frames remain, and a paced
 * resume goes on. 0, or -1 to close. */
static int ws_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (c->close_code) {
        const char *why = c->close_why ? c->close_why : "closing";
        size_t wl = strlen(why);
        lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)why,
                         wl > 120 ? 120 : wl);
        return -1;
    }
    if (ws_write(s, c, wsi))
        return -1;
    if (!c->qlen && c->drain_pubs == 2) {
        hb_client_close(c, "draining", 1001); /* the close frame: the next callback */
        return 0;
    }
    if (c->qlen)
        lws_callback_on_writable(wsi);
    hb_client_drained(c); /* a paced resume continues once most of its page was taken */
    return 0;
}

/* The writable callback of a WebSocket: the keepalive ping first (one write per callback). */
int hb_ws_on_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    if (c->ping_due && !c->close_code && !c->closing) {
        c->ping_due = 0;
        /* a payload: lws 4.1 does not report an empty pong (LWS_CALLBACK_RECEIVE_PONG) */
        s->wbuf[LWS_PRE] = 'h';
        if (lws_write(wsi, s->wbuf + LWS_PRE, 1, LWS_WRITE_PING) < 0)
            return -1;
        if (c->qlen && !hb_wdelay_held(c)) /* held (--write-delay-ms): its timer writes it */
            lws_callback_on_writable(wsi);
        return 0;
    }
    return ws_writeable(s, c, wsi);
}

/* Closed with a code: the close frame goes out from the writable callback (5 s at most). */
static int ws_close(hb_client_t *c, uint16_t code)
{
    c->close_code = code;
    lws_callback_on_writable(c->wsi);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
    return 1;
}

/* Draining: 1001 at once, or, with publishes waiting for Redis, once their answers are
 * written (a publisher told nothing would not know whether they were stored); reading stops
 * meanwhile, and --drain-timeout bounds the wait. */
static void ws_drain(hb_client_t *c, unsigned i)
{
    (void)i;
    if (c->drain_pubs)
        return; /* once (a client on several topics is reached through each) */
    if (c->pubs) {
        c->drain_pubs = 1;
        hb_req_pause(c);
        return;
    }
    hb_client_close(c, "draining", 1001);
}

const hb_transport_t hb_ws_ops = {
    .name = "ws",
    .gauge = offsetof(hb_stats_t, conn_ws),
    .frame = offsetof(hb_ev_t, ws),
    .write = ws_write,
    .send_now = ws_send_now,
    .start = hb_ctimer_ws_start,
    .timer = hb_ctimer_ws_fire,
    .drain = ws_drain,
    .close = ws_close,
    .published = ws_on_published,
};
