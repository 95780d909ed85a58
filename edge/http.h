#ifndef HERALD_EDGE_HTTP_H
#define HERALD_EDGE_HTTP_H

/*
 * Private to the HTTP transport of the service threads: the calls between http.c (routing),
 * http_resp.c (plain responses, request helpers), http_write.c (writing a client's queue, the
 * response head), sse.c, poll.c, publish.c and metrics.c. What other files call
 * (hb_http_respond(), hb_http_on_request(), hb_poll_on_timer(), ...) stays in service.h, the
 * tables in transport.h. Service thread only: @c is a client of the calling thread, @wsi its
 * connection, and the request's headers are still attached unless said otherwise.
 */
#include <stdint.h>

#include <libwebsockets.h>

#include "reqcheck.h"
#include "service.h"

/* c->auth_challenge: the extra headers of a plain answer (hb_http_write_headers()). */
enum {
    EXTRA_NONE = 0,
    EXTRA_AUTH,         /* 401: WWW-Authenticate: Bearer */
    EXTRA_AUTH_INVALID, /* 401 for a token that was given but refused */
    EXTRA_ALLOW_GET,      /* 405 of a stream (/events, /poll): Allow: GET */
    EXTRA_ALLOW_GET_HEAD, /* 405 of a plain resource: Allow: GET, HEAD */
    EXTRA_ALLOW_POST,
    EXTRA_PREFLIGHT, /* 204 answer to a CORS preflight */
    EXTRA_ASSET,     /* /herald.js: ETag, revalidated, importable from any origin */
};

/* ---- http_resp.c ---- */

/**
 * hb_http_respond_text() - hb_http_respond() with a text/plain body (@text, NUL-terminated,
 * copied). 0, or HB_ENOMEM when the body could not be allocated (the caller returns it to
 * lws, which closes the connection).
 */
int hb_http_respond_text(hb_client_t *c, unsigned status, const char *text, int close_after);

/**
 * hb_http_bad_request() - answer 400 with "@reason\n" (counted as a bad request, logged
 * rate-limited with mod "http"); @close_after closes the connection after it. What
 * hb_http_respond() returns.
 */
int hb_http_bad_request(hb_client_t *c, const char *reason, int close_after);

/**
 * hb_http_query_arg() - query argument @name (lws decoded it) copied NUL-terminated into
 * @out (@cap bytes); with @frag, the search starts at fragment *frag and *frag moves past a
 * match (repeated arguments). 1 found, 0 absent, HB_ELIMIT when longer than @cap or than the
 * arguments buffer (nothing useful in @out).
 */
int hb_http_query_arg(struct lws *wsi, const char *name, int *frag, char *out, size_t cap);

/**
 * hb_http_subscribe_auth() - may this request subscribe to these @n @topics (borrowed)? 0 yes,
 * *exp the token's exp (0: none); else the refusal is answered (401 no or bad token, 403 a
 * topic the token does not cover, counted) and 1 is returned.
 */
int hb_http_subscribe_auth(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *const *topics,
                           int n, long long *exp);

/**
 * hb_http_single_topic() - the prologue of the one-topic routes (GET /events/<topic>, GET
 * /poll/<topic>): @topic (@tlen bytes in the request's header buffer, which an answer reuses)
 * is validated and copied NUL-terminated into @name (HB_TOPIC_MAX + 1 bytes, the caller's),
 * then the request's token must allow it (*exp: the token's exp, 0 none). 1 when the request
 * goes on; else the refusal (400, 401, 403) was answered and what the route returns: 0, or -1
 * to close.
 */
int hb_http_single_topic(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic,
                         size_t tlen, char *name, long long *exp);

/* ---- http_write.c ---- */

/**
 * hb_http_write_headers() - write the response head: @status, @ctype, Content-Length @len
 * (LWS_ILLEGAL_HTTP_CONTENT_LEN: none), the node, cache and CORS headers, and the extras
 * c->auth_challenge names; @sse adds X-Accel-Buffering and never Connection: close. Sets
 * c->headers_sent. 0, or HB_ELIMIT when the head does not fit its 1 KiB buffer, HB_EIO when it
 * cannot be written (either way: close).
 */
int hb_http_write_headers(hb_svc_t *s, hb_client_t *c, struct lws *wsi, unsigned status,
                          const char *ctype, lws_filepos_t len, int sse);

/* ---- sse.c ---- */

/**
 * hb_http_sse_single() - GET /events/<topic> (@topic, @tlen point into the request's header
 * buffer; copied before the answer reuses it): checks, then an SSE stream (or a 400/401/403
 * answer, or the retry-and-close turn-away when full or draining). 0, or -1 to close.
 */
int hb_http_sse_single(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic,
                       size_t tlen);

/**
 * hb_http_sse_multi() - GET /events?topic=a&topic=b (up to --max-topics): one multi-topic SSE stream
 * with a composite cursor, in URL order, or an answer as hb_http_sse_single(). 0, or -1 to
 * close.
 */
int hb_http_sse_multi(hb_svc_t *s, hb_client_t *c, struct lws *wsi);

/* ---- poll.c ---- */

/**
 * hb_poll_start() - GET /poll/<topic>?since=&timeout= (@topic in the header buffer, copied):
 * checks, then a long-poll request subscribed from ?since= (else from the stream's tail) and
 * answered by hb_poll_on_timer(); or a 400/401/403/503 answer. 0, or -1 to close.
 */
int hb_poll_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic, size_t tlen);

/* ---- publish.c ---- */

/**
 * hb_http_publish_start() - POST /publish/<topic> whose head's @framing and @length were
 * checked (hb_req_framing()): checks the method, key or token, topic, event name, framing and
 * size, then waits for the body (hb_publish_ops, c->req REQ_BODY; hb_http_on_body() takes it), or
 * answers 401/403/405/411/413/400 and closes. 0, or -1 to close.
 */
int hb_http_publish_start(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *topic,
                          size_t tlen, hb_http_body_t framing, uint64_t length);

/* ---- metrics.c ---- */

/**
 * hb_http_metrics() - answer GET /metrics with the Prometheus text of every thread's counters
 * (read without locks: relaxed atomics). 0, or -1 to close; out of memory answers 503.
 */
int hb_http_metrics(hb_svc_t *s, hb_client_t *c);

#endif
