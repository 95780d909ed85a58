/*
 * The broker thread's side of single-use sign-in tickets (ticket.h): the Redis command of an
 * HB_REQ_TICKET_* request (SET <prefix>ticket:<id> <token> PX NX, or GETDEL) and its answer as
 * one HB_MSG_TICKET to the asking service thread. The ticket id is never logged. Broker thread
 * only.
 */
#include "bticket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_jwt.h"
#include "hb_mem.h"
#include "rc.h"

static void fail(hb_broker_t *b, hb_msg_t *m, const char *why)
{
    m->error = 1;
    snprintf(m->result, sizeof(m->result), "%s", why);
    hb_svc_answer(b->edge->svcs[m->thread], m);
}

static void on_issued(redisAsyncContext *ac, void *reply_, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply_;
    hb_msg_t *m = priv;
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail(b, m, r ? r->str : "redis unavailable");
    else if (r->type != REDIS_REPLY_STATUS)
        fail(b, m, "ticket id in use"); /* NX: 2^-192, or a broken CSPRNG */
    else
        hb_svc_answer(b->edge->svcs[m->thread], m);
}

static void on_redeemed(redisAsyncContext *ac, void *reply_, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply_;
    hb_msg_t *m = priv;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        fail(b, m, r ? r->str : "redis unavailable");
        return;
    }
    if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len <= HB_JWT_MAX) {
        m->blob = hb_xmalloc(r->len + 1);
        memcpy(m->blob, r->str, r->len);
        m->blob[r->len] = '\0';
    }
    hb_svc_answer(b->edge->svcs[m->thread],
                  m); /* nil (or a value that is no token): no such ticket */
}

void hb_ticket_broker(hb_broker_t *b, hb_req_t *q)
{
    const hb_cfg_t *cfg = &b->edge->cfg;
    hb_msg_t *m = hb_msg_new(HB_MSG_TICKET, "", 0);
    int issue = q->type == HB_REQ_TICKET_ISSUE, rc;
    char key[sizeof(cfg->prefix) + HB_TOPIC_MAX + 16], px[24];
    const char *av[6];
    size_t al[6];
    m->thread = q->thread;
    m->client_id = q->client_id;
    snprintf(key, sizeof(key), "%sticket:%.*s", cfg->prefix, (int)q->topic_len, q->topic);
    snprintf(px, sizeof(px), "%lld", (long long)cfg->ticket_ttl * 1000);
    av[0] = issue ? "SET" : "GETDEL";
    av[1] = key;
    av[2] = q->payload ? q->payload : "";
    av[3] = "PX";
    av[4] = px;
    av[5] = "NX";
    for (int i = 0; i < 6; i++)
        al[i] = i == 2 ? q->payload_len : strlen(av[i]);
    rc = hb_rc_key_command(b, 1, issue ? 6 : 2, av, al, issue ? on_issued : on_redeemed, m);
    if (rc != REDIS_OK)
        fail(b, m, "redis unavailable");
}
