/*
 * HTTP requests of a service thread: routing (SSE, long-poll, publish, tickets, health,
 * readiness, metrics, the demo page and /herald.js), plain responses with their headers (CORS
 * included) and the request helpers the routes share. The routes live in sse.c, poll.c,
 * publish.c and metrics.c; writing the answers in http_write.c. Service thread only.
 */
#include "http.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "hb_log.h"
#include "reqcheck.h"
#include "ticket.h"

#define MOD "http"
#define PATH_MAX_BYTES 2048

/* The demo page, embedded at build time when edge/demo.html exists. */
extern const unsigned char hb_demo_html[] __attribute__((weak));
extern const size_t hb_demo_html_len __attribute__((weak));
/* The browser client edge/herald.js, embedded at build time (edge/embed.cmake). */
extern const unsigned char hb_herald_js[];
extern const size_t hb_herald_js_len;
extern const char hb_herald_js_etag[];

/* A request waiting for Redis to issue or redeem its ticket (ticket.h): nothing is written
 * until the answer makes it a plain answer or routes it again. */
const hb_transport_t hb_ticket_ops = {
    .name = "http",
    .gauge = offsetof(hb_stats_t, conn_sse), /* never counted */
    .frame = offsetof(hb_ev_t, json),
};

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

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

int hb_http_write_headers(hb_svc_t *s, hb_client_t *c, struct lws *wsi, unsigned status,
                          const char *ctype, lws_filepos_t len, int sse)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    uint8_t extra = c->x ? c->x->auth_challenge : EXTRA_NONE;
    if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
        add_header(wsi, "x-herald-node:", s->edge->cfg.node_id, &p, end) ||
        add_header(wsi, "cache-control:", sse || extra == EXTRA_ASSET ? "no-cache" : "no-store", &p,
                   end))
        return -1;
    if (extra == EXTRA_ASSET &&
        (add_header(wsi, "etag:", hb_herald_js_etag, &p, end) ||
         (!c->cors && add_header(wsi, "access-control-allow-origin:", "*", &p, end))))
        return -1;
    if (sse && add_header(wsi, "x-accel-buffering:", "no", &p, end))
        return -1;
    if (extra == EXTRA_AUTH && add_header(wsi, "www-authenticate:", "Bearer", &p, end))
        return -1;
    if (extra == EXTRA_AUTH_INVALID &&
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
    if (extra == EXTRA_PREFLIGHT &&
        (add_header(wsi, "allow:", "GET, POST, OPTIONS", &p, end) ||
         (c->cors &&
          (add_header(wsi, "access-control-allow-methods:", "GET, POST, OPTIONS", &p, end) ||
           add_header(wsi, "access-control-allow-headers:",
                      "Authorization, Content-Type, Last-Event-ID", &p, end) ||
           add_header(wsi, "access-control-max-age:", "600", &p, end)))))
        return -1;
    if (!sse && c->close_after_flush && add_header(wsi, "connection:", "close", &p, end))
        return -1;
    if (extra == EXTRA_ALLOW_GET && add_header(wsi, "allow:", "GET", &p, end))
        return -1;
    if (extra == EXTRA_ALLOW_POST && add_header(wsi, "allow:", "POST", &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    c->headers_sent = 1;
    return 0;
}

/* ---- request parsing helpers ---- */

/* Finds query argument `name` (lws has already decoded it); 1 found, 0 absent, -1 too long. */
int hb_http_query_arg(struct lws *wsi, const char *name, int *frag, char *out, size_t cap)
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

/* ---- routing ---- */

/* GET /herald.js: the embedded client, 304 when If-None-Match names its ETag. */
static int herald_js(hb_client_t *c, struct lws *wsi)
{
    char inm[64];
    hb_creq(c)->auth_challenge = EXTRA_ASSET;
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
        return hb_http_bad_request(c, "path is too long", 1);
    /* browsers: the Origin must be allowed for the client routes (CORS) */
    if ((!strncmp(path, "/publish/", 9) || !strncmp(path, "/events", 7) ||
         !strncmp(path, "/poll/", 6) || !strcmp(path, "/tickets")) &&
        hb_auth_origin(s, wsi, &c->cors))
        return hb_http_respond_text(c, 403, "forbidden: origin not allowed\n", 1);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0) {
        hb_creq(c)->auth_challenge = EXTRA_PREFLIGHT;
        return hb_http_respond(c, 204, "text/plain", NULL, 0, 0);
    }
    if (!strncmp(path, "/publish/", 9))
        return hb_http_publish_start(s, c, wsi, path + 9, plen - 9, body, blen);
    if (!strcmp(path, "/tickets")) {
        if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) <= 0) {
            hb_creq(c)->auth_challenge = EXTRA_ALLOW_POST;
            return hb_http_respond_text(c, 405, "method not allowed: use POST\n", 1);
        }
        return hb_ticket_issue(s, c, wsi, body, blen);
    }
    if (!is_get) {
        hb_creq(c)->auth_challenge = EXTRA_ALLOW_GET;
        return hb_http_respond_text(c, 405, "method not allowed: use GET\n", 1);
    }
    if (!strcmp(path, "/healthz"))
        return hb_http_respond_text(c, 200, "ok\n", 0);
    if (!strcmp(path, "/readyz")) {
        if (atomic_load(&s->edge->stats.draining))
            return hb_http_respond_text(c, 503, "draining\n", 0);
        if (atomic_load(&s->edge->stats.ready))
            return hb_http_respond_text(c, 200, "ready\n", 0);
        return hb_http_respond_text(
            c, 503, atomic_load(&s->edge->stats.canary_stale) ? "canary stale\n" : "not ready\n",
            0);
    }
    if (!strcmp(path, "/metrics"))
        return hb_http_metrics(s, c);
    if (!strcmp(path, "/events") || !strncmp(path, "/events/", 8) || !strncmp(path, "/poll/", 6)) {
        int t = hb_ticket_http(s, c, wsi, path); /* ?ticket=: redeemed first (ticket.h) */
        if (t)
            return t < 0 ? -1 : 0;
    }
    if (!strncmp(path, "/events/", 8))
        return hb_http_sse_single(s, c, wsi, path + 8, plen - 8);
    if (!strcmp(path, "/events"))
        return hb_http_sse_multi(s, c, wsi);
    if (!strncmp(path, "/poll/", 6))
        return hb_poll_start(s, c, wsi, path + 6, plen - 6);
    if (!strcmp(path, "/herald.js"))
        return herald_js(c, wsi);
    if (!strcmp(path, "/ws"))
        return hb_http_respond_text(c, 426, "WebSocket upgrade required (subprotocol herald.v1)\n",
                                    0);
    if ((!strcmp(path, "/") || !strcmp(path, "/index.html")) && hb_demo_html)
        return hb_http_respond(c, 200, "text/html; charset=utf-8", (const char *)hb_demo_html,
                               hb_demo_html_len, 0);
    return hb_http_respond_text(c, 404, "not found\n", 0);
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
    hb_creq(c)->auth_challenge = EXTRA_AUTH_INVALID;
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
        return hb_http_bad_request(c, reason, 1);
    }
    rc = route(s, c, wsi, path, body, blen);
    if (c->req == REQ_HEAD)
        c->req = REQ_DONE; /* no body taken: a body lws still reads is ignored */
    return rc;
}
