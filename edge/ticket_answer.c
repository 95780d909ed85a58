/*
 * Single-use sign-in tickets (see ticket.h), the answering side: the broker's answer to an
 * issue or a redeem (a WebSocket signed in with the ticket's token, an HTTP request routed
 * again as if the token had come with it), and a wait for Redis that ran out. Above the
 * router (http.c) and the WebSocket transport (ws.c), which it calls; the asking side is
 * ticket.c's. The ticket id is never logged. Service thread only.
 */
#include "ticket.h"
#include "ws.h"

#include <stdio.h>
#include <string.h>

#include "hb_log.h"
#include "reqcheck.h"

#define MOD "ticket"

static void count(atomic_ullong *n)
{
    atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
}

static int text(hb_client_t *c, unsigned status, const char *body)
{
    return hb_http_respond(c, status, "text/plain; charset=utf-8", body, strlen(body), 1);
}

/* ---- service thread: answers ---- */

static void ws_answer(hb_svc_t *s, hb_client_t *c, hb_msg_t *m)
{
    const char *reason = NULL;
    if (m->error) {
        hb_client_close(c, "ticket store unavailable: retry", 1013);
        return;
    }
    if (!m->blob) {
        count(&s->edge->stats.tickets_refused);
        count(&s->edge->stats.rejected_auth);
        hb_client_close(c, "ticket refused: unknown, already used or expired",
                        LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    count(&s->edge->stats.tickets_redeemed);
    if (hb_ws_take_token(s, c, m->blob, strlen(m->blob), &reason)) {
        hb_client_close(c, reason, LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    lws_rx_flow_control(c->wsi, 1);
}

void hb_ticket_on_reply(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m)
{
    hb_client_t *c = p->c;
    json_t *path = p->echo ? json_incref(p->echo) : NULL;
    int rc = 0;
    if (!c->x || c->x->ticket_tok != p->token) { /* not what c waits for (cannot happen): drop it */
        hb_pending_del(s, p);
        json_decref(path);
        return;
    }
    hb_pending_del(s, p);
    c->x->ticket_tok = 0;
    lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
    if (c->ops == &hb_ws_ops) {
        ws_answer(s, c, m);
    } else if (!path) { /* issued */
        char body[128];
        int n;
        c->ops = NULL;
        if (m->error) {
            hb_log_ratelimited("ticket-store", 1000, HB_LOG_WARN, MOD, "ticket not stored", "{s:s}",
                               "err", m->result);
            text(c, 503, "ticket store unavailable: retry\n");
        } else {
            count(&s->edge->stats.tickets_issued);
            n = snprintf(body, sizeof(body), "{\"ticket\":\"%s\",\"expires_in\":%d}", c->x->topic,
                         s->edge->cfg.ticket_ttl);
            hb_http_respond(c, 200, "application/json", body, (size_t)n, 1);
        }
    } else if (m->error) {
        c->ops = NULL;
        hb_log_ratelimited("ticket-redeem", 1000, HB_LOG_WARN, MOD, "ticket not redeemed", "{s:s}",
                           "err", m->result);
        text(c, 503, "ticket store unavailable: retry\n");
    } else if (!m->blob) {
        c->ops = NULL;
        hb_ticket_refuse_http(s, c, "unknown, used or expired ticket");
    } else { /* served as if its token had come with the request */
        count(&s->edge->stats.tickets_redeemed);
        c->ops = NULL;
        hb_req_resume(c);
        hb_creq(c)->ticket_jwt = m->blob;
        rc = hb_http_reroute(s, c, json_string_value(path));
        if (c->x)
            c->x->ticket_jwt = NULL;
        if (rc < 0)
            hb_client_close(c, "write failed", 0);
    }
    json_decref(path);
}

int hb_ticket_on_timer(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    hb_pending_t *p = hb_dict_get(s->pending, &c->x->ticket_tok, sizeof(c->x->ticket_tok));
    hb_log_ratelimited("ticket-timeout", 1000, HB_LOG_WARN, MOD,
                       "ticket store did not answer in time", NULL);
    c->x->ticket_tok = 0;
    hb_pending_del(s, p); /* a late answer finds nothing and is dropped */
    if (c->ops == &hb_ws_ops) {
        hb_client_close(c, "ticket store unavailable: retry", 1013);
        return 0;
    }
    c->ops = NULL;
    text(c, 503, "ticket store unavailable: retry\n");
    return 0;
}
