/*
 * Single-use sign-in tickets (see ticket.h), the asking side: POST /tickets, a request or a
 * WebSocket handshake with ?ticket=, each sent to the broker with its wait armed. The answers
 * are ticket_answer.c's. The ticket id is never logged: log lines name the outcome only, and
 * the id travels in the request (service thread), the hb_req_t (its `topic` field) and the
 * Redis key.
 */
#include "ticket.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "reqcheck.h"

#define MOD "ticket"
/* POST /tickets takes no body; a small one (a client that always sends "{}") is ignored. */
#define TICKET_BODY_MAX 1024

/* A request waiting for Redis to issue or redeem its ticket (ticket.h): nothing is written
 * until the answer makes it a plain answer or routes it again. */
const hb_transport_t hb_ticket_ops = {
    .name = "http",
    .gauge = offsetof(hb_stats_t, conn_sse), /* never counted */
    .frame = offsetof(hb_ev_t, json),
};

static void count(atomic_ullong *n)
{
    atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
}

/* ---- ids ---- */

/* A new id: HB_TICKET_ID_BYTES from the kernel's CSPRNG, base64url without padding, into out
 * (HB_TICKET_ID_LEN + 1 bytes). 0, or HB_EIO when getrandom failed. */
static int ticket_id(char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[HB_TICKET_ID_BYTES];
    size_t got = 0, o = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n <= 0)
            return HB_EIO;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(r); i += 3) { /* 24 bytes: 8 groups of 3, 32 characters */
        uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    out[o] = '\0';
    return 0;
}

static int id_valid(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++)
        if (!((t[n] >= 'A' && t[n] <= 'Z') || (t[n] >= 'a' && t[n] <= 'z') ||
              (t[n] >= '0' && t[n] <= '9') || t[n] == '-' || t[n] == '_'))
            return 0;
    return n == HB_TICKET_ID_LEN;
}

/* ?ticket= of the request: 1 found (copied into out, cap HB_TICKET_ID_LEN + 2: a longer value
 * is cut and then fails id_valid(); "" when it was too long to copy), 0 none. lws has decoded
 * the arguments; their total is bounded by --max-header-bytes. */
static int ticket_arg(struct lws *wsi, char *out, size_t cap)
{
    char arg[HB_TICKET_ID_LEN + 16];
    for (int i = 0;; i++) {
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i), is;
        if (len <= 0)
            return 0;
        if (len < 7)
            continue;
        if ((size_t)len < sizeof(arg)) {
            if (lws_hdr_copy_fragment(wsi, arg, sizeof(arg), WSI_TOKEN_HTTP_URI_ARGS, i) < 0 ||
                strncmp(arg, "ticket=", 7) != 0)
                continue;
            snprintf(out, cap, "%.*s", (int)cap - 1, arg + 7); /* cut: refused */
            return 1;
        }
        { /* too long to be a ticket: refused when it is named one */
            char *big = hb_xmalloc((size_t)len + 1);
            is = lws_hdr_copy_fragment(wsi, big, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0 &&
                 !strncmp(big, "ticket=", 7);
            free(big);
        }
        if (is) {
            out[0] = '\0';
            return 1;
        }
    }
}

/* ---- service thread: asking ---- */

/* Sends request q (type, id) for c and arms the wait; path: the route to run again (NULL for
 * issue and WebSocket; its presence is what tells a redemption's answer from an issue's). 0,
 * or hb_svc_request()'s HB_E* when the broker's queue refused it (nothing pending), or
 * HB_EINVAL for a path that is not UTF-8 (q freed, nothing asked). */
static int ask(hb_svc_t *s, hb_client_t *c, hb_req_t *q, const char *path)
{
    hb_pending_t *p;
    json_t *echo = NULL;
    int rc;
    if (path && !(echo = json_string(path))) {
        hb_req_free(q);
        return HB_EINVAL;
    }
    p = hb_pending_add(s, c, NULL);
    q->client_id = p->token;
    p->echo = echo;
    if ((rc = hb_svc_request(s, q)) != 0) {
        hb_pending_del(s, p);
        return rc;
    }
    hb_creq(c)->ticket_tok = p->token;
    lws_set_timer_usecs(c->wsi, (lws_usec_t)HB_TICKET_WAIT_S * LWS_USEC_PER_SEC);
    return 0;
}

static hb_req_t *req_new(hb_req_type_t type, const char *id)
{
    hb_req_t *q = hb_xcalloc(1, sizeof(*q));
    q->type = type;
    memcpy(q->topic, id, HB_TICKET_ID_LEN);
    q->topic_len = HB_TICKET_ID_LEN;
    return q;
}

static int text(hb_client_t *c, unsigned status, const char *body)
{
    return hb_http_respond(c, status, "text/plain; charset=utf-8", body, strlen(body), 1);
}

int hb_ticket_refuse_http(hb_svc_t *s, hb_client_t *c, const char *why)
{
    count(&s->edge->stats.tickets_refused);
    count(&s->edge->stats.rejected_auth);
    hb_log_ratelimited("ticket-refused", 1000, HB_LOG_INFO, MOD, "ticket refused", "{s:s}", "err",
                       why);
    return hb_http_unauthorized(c, "unauthorized: ticket unknown, already used or expired\n");
}

int hb_ticket_issue(hb_svc_t *s, hb_client_t *c, struct lws *wsi, hb_http_body_t framing,
                    uint64_t len)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    char tok[HB_JWT_MAX + 8], id[HB_TICKET_ID_LEN + 1];
    const char *reason = NULL;
    hb_jwt_t *j = NULL;
    hb_req_t *q;
    int n;
    if (!cfg->jwt_secret_len)
        return text(c, 403, "tickets need --jwt-secret: a ticket carries a token's rights\n");
    if (framing != HB_HTTP_BODY_LENGTH) /* lws 4.1: no chunked bodies, none without length */
        return text(c, 411, "Content-Length required (0: POST /tickets takes no body)\n");
    if (len > TICKET_BODY_MAX)
        return text(c, 413, "POST /tickets takes no body\n");
    n = hb_auth_token(wsi, tok, sizeof(tok));
    if (n == 0)
        n = hb_auth_cookie(s, wsi, tok, sizeof(tok));
    if (n <= 0) {
        count(&s->edge->stats.rejected_auth);
        return hb_http_unauthorized(c, n == HB_ELIMIT
                                           ? "unauthorized: token longer than 8192 bytes\n"
                                           : "unauthorized: a token is required\n");
    }
    if (hb_auth_is_publish_key(cfg, tok, strlen(tok)))
        return text(c, 403,
                    "forbidden: a ticket is bound to a token's claims; the publish key "
                    "has none (sign a token with --jwt-secret)\n");
    if (hb_auth_verify(s, tok, strlen(tok), &j, &reason)) {
        char body[256];
        snprintf(body, sizeof(body), "unauthorized: %s\n", reason);
        return hb_http_unauthorized(c, body);
    }
    hb_jwt_free(j);
    if (!hb_bucket_take(&s->ticket_bucket, 1, hb_now())) {
        /* each ticket stores its token in Redis for --ticket-ttl: what any token holder could
         * make Redis hold is bounded by the rate, not by how fast it asks */
        count(&s->edge->stats.rejected_ticket_rate);
        hb_log_ratelimited("ticket-rate", 1000, HB_LOG_WARN, MOD,
                           "ticket refused: --ticket-rate reached", NULL);
        return text(c, 503, "busy: too many tickets asked for on this edge, retry later\n");
    }
    if (ticket_id(id))
        return text(c, 503, "no randomness for a ticket: retry later\n");
    q = req_new(HB_REQ_TICKET_ISSUE, id);
    q->payload_len = strlen(tok);
    q->payload = hb_xmemdup(tok, q->payload_len + 1);
    memcpy(hb_creq(c)->topic, id, sizeof(id)); /* answered from hb_ticket_on_reply() */
    c->x->topic_len = HB_TICKET_ID_LEN;
    c->ops = &hb_ticket_ops;
    hb_req_pause(c); /* nothing more is read: the answer closes the connection */
    if (ask(s, c, q, NULL)) {
        c->ops = NULL;
        return text(c, 503, "busy: try again\n");
    }
    return 0;
}

int hb_ticket_http(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *path)
{
    char id[HB_TICKET_ID_LEN + 2];
    if ((c->x && c->x->ticket_jwt) || !s->edge->cfg.jwt_secret_len ||
        !ticket_arg(wsi, id, sizeof(id)))
        return 0;
    if (!id_valid(id)) {
        hb_ticket_refuse_http(s, c, "malformed ticket");
        return 1;
    }
    c->ops = &hb_ticket_ops;
    hb_req_pause(c);
    switch (ask(s, c, req_new(HB_REQ_TICKET_REDEEM, id), path)) {
    case 0:
        break;
    case HB_EINVAL: /* the ticket is not used up: the request could not be served anyway */
        c->ops = NULL;
        text(c, 400, "the request path is not UTF-8\n");
        break;
    default:
        c->ops = NULL;
        text(c, 503, "busy: try again\n");
    }
    return 1;
}

int hb_ticket_ws(hb_svc_t *s, hb_client_t *c, struct lws *wsi)
{
    char id[HB_TICKET_ID_LEN + 2];
    if (!s->edge->cfg.jwt_secret_len || !ticket_arg(wsi, id, sizeof(id)))
        return 0;
    if (!id_valid(id)) {
        count(&s->edge->stats.tickets_refused);
        count(&s->edge->stats.rejected_auth);
        hb_client_close(c, "ticket refused: unknown, already used or expired",
                        LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return 1;
    }
    lws_rx_flow_control(wsi, 0); /* its messages wait until it is signed in */
    if (ask(s, c, req_new(HB_REQ_TICKET_REDEEM, id), NULL))
        hb_client_close(c, "busy: try again", 1013);
    return 1;
}
