/*
 * HTTP requests of a service thread: routing (SSE, long-poll, publish, tickets, health,
 * readiness, metrics, the demo page and /herald.js) and routing again after a ticket was
 * redeemed. The routes live in sse.c, poll.c, publish.c, metrics.c and ticket.c; plain
 * responses and the request helpers the routes share in http_resp.c; writing the answers in
 * http_write.c. Service thread only.
 */
#include "http.h"

#include <string.h>

#include "admit.h"
#include "reqcheck.h"
#include "ticket.h"

#define PATH_MAX_BYTES 2048

/* The demo page, embedded at build time when edge/demo.html exists. */
extern const unsigned char hb_demo_html[] __attribute__((weak));
extern const size_t hb_demo_html_len __attribute__((weak));
/* The browser client edge/herald.js, embedded at build time (edge/embed.cmake). */
extern const unsigned char hb_herald_js[];
extern const size_t hb_herald_js_len;
extern const char hb_herald_js_etag[];

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
    int is_head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    int stream =
        !strcmp(path, "/events") || !strncmp(path, "/events/", 8) || !strncmp(path, "/poll/", 6);

    if (is_head) /* every answer to it without content: a plain resource's GET head, or 405 */
        hb_creq(c)->head_only = 1;
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
    if (!is_get && !(is_head && !stream)) {
        /* a stream has no HEAD: what it answers is its events */
        hb_creq(c)->auth_challenge = stream ? EXTRA_ALLOW_GET : EXTRA_ALLOW_GET_HEAD;
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
    if (stream) {
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
    if (body == HB_HTTP_BODY_LENGTH && blen && !c->close_after_flush)
        hb_admit_body(s->admit, wsi); /* read or ignored, it is due by the deadline */
    return rc;
}
