/*
 * Plain HTTP responses of a service thread (status, type, body; the 400 and 401 answers) and
 * the request helpers the routes share: query arguments, the subscribe check of a request's
 * token, the one-topic prologue. Below the routes (http.c, sse.c, poll.c, publish.c,
 * metrics.c, ticket.c); the answers are written by http_write.c. Service thread only.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_log.h"
#include "hb_mem.h"

#define MOD "http"

/* ---- plain responses ---- */

int hb_http_respond(hb_client_t *c, unsigned status, const char *ctype, const char *body,
                    size_t len, int close_after)
{
    hb_creq_t *x = hb_creq(c);
    c->ops = &hb_simple_ops;
    x->status = (uint16_t)status;
    x->ctype = ctype;
    c->close_after_flush = (uint8_t)(close_after || c->close_after_flush);
    if (status == 400 || status == 404 || status == 405 || status == 411)
        atomic_fetch_add_explicit(&c->svc->edge->stats.bad_requests, 1, memory_order_relaxed);
    if (len) {
        hb_buf_t *b = hb_buf_from(body, len);
        if (!b)
            return HB_ENOMEM; /* nonzero: the lws callback closes the connection */
        hb_client_push(c, b, NULL, 0, 1);
        hb_buf_unref(b);
    }
    if (c->rx_paused)
        hb_http_answer_now(c);
    else
        lws_callback_on_writable(c->wsi);
    return 0;
}

int hb_http_respond_text(hb_client_t *c, unsigned status, const char *text, int close_after)
{
    return hb_http_respond(c, status, "text/plain; charset=utf-8", text, strlen(text), close_after);
}

int hb_http_bad_request(hb_client_t *c, const char *reason, int close_after)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    hb_log_ratelimited("bad-request", 1000, HB_LOG_INFO, MOD, "bad request", "{s:s}", "err",
                       reason);
    return hb_http_respond(c, 400, "text/plain; charset=utf-8", body, (size_t)n, close_after);
}

/* ---- request parsing helpers ---- */

/* Finds query argument `name` (lws has already decoded it); 1 found, 0 absent, HB_ELIMIT too
 * long for cap. Another argument's length does not matter (a long ?token= is not a long
 * ?since=): one longer than the stack buffer is read into the heap (the head's size bounds it,
 * --max-header-bytes). */
int hb_http_query_arg(struct lws *wsi, const char *name, int *frag, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (int i = frag ? *frag : 0;; i++) {
        char stack[HB_TOPIC_MAX + HB_CURSOR_MAX * 64 + 64], *arg = stack;
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i), rc = 0, found = 0;
        if (len <= 0)
            return 0;
        if ((size_t)len >= sizeof(stack))
            arg = hb_xmalloc((size_t)len + 1);
        if (lws_hdr_copy_fragment(wsi, arg, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0 &&
            !strncmp(arg, name, nl) && arg[nl] == '=') {
            found = 1;
            rc = HB_ELIMIT;
            if (strlen(arg + nl + 1) < cap) {
                strcpy(out, arg + nl + 1);
                if (frag)
                    *frag = i + 1;
                rc = 1;
            }
        }
        if (arg != stack)
            free(arg);
        if (found)
            return rc;
    }
}

/*
 * May this request subscribe to these topics? 0 yes (*exp: the token's exp, 0 none); else the
 * refusal is answered (401 no or bad token, 403 a topic the token does not cover) and 1 is
 * returned. An EventSource does not retry after a 401/403: the page must get a new token.
 */
int hb_http_subscribe_auth(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *const *topics,
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
        hb_creq(c)->auth_challenge = EXTRA_AUTH_INVALID;
        hb_http_respond(c, 401, "text/plain; charset=utf-8", body, strlen(body), 0);
        return 1;
    }
    if (!j && cfg->jwt_secret_len && !cfg->allow_anonymous) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        hb_creq(c)->auth_challenge = EXTRA_AUTH;
        hb_http_respond_text(
            c, 401, "unauthorized: a token is required (Authorization: Bearer or ?token=)\n", 0);
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

int hb_http_single_topic(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic,
                         size_t tlen, char *name, long long *exp)
{
    const char *reason = NULL, *topics[1];
    *exp = 0;
    if (hb_topic_validate(topic, tlen, &reason))
        return hb_http_bad_request(c, reason, 0);
    memcpy(name, topic, tlen);
    name[tlen] = '\0';
    topics[0] = name;
    return hb_http_subscribe_auth(s, c, wsi, topics, 1, exp) ? 0 : 1;
}

int hb_http_unauthorized(hb_client_t *c, const char *body)
{
    hb_creq(c)->auth_challenge = EXTRA_AUTH_INVALID;
    return hb_http_respond(c, 401, "text/plain; charset=utf-8", body, strlen(body), 0);
}
