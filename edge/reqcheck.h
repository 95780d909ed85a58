#ifndef HERALD_EDGE_REQCHECK_H
#define HERALD_EDGE_REQCHECK_H

/*
 * One HTTP/1.1 request life cycle per connection, on top of libwebsockets 4.1: the request
 * head's framing is checked before the request is routed (common/hb_http_frame.h), a body is
 * completed once (hb_client_t.req: REQ_HEAD -> REQ_BODY -> REQ_DONE), and the connection is
 * not read while a request waits for its answer or is refused with a close, so no pipelined
 * byte is parsed before the request in front of it is finished. Upgrades other than
 * WebSocket (h2c) and CONNECT (which lws turns into a raw socket) are refused here.
 * Service thread only.
 */

#include <stdint.h>

#include "hb_http_frame.h"
#include "service.h"

/**
 * hb_req_framing() - collect the framing fields of the request head lws parsed on @wsi
 * (Content-Length and Transfer-Encoding lines, fields lws did not recognise that name them,
 * HTTP2-Settings, Upgrade) and decide with hb_http_frame_check(). Returns 0 with *body and
 * *len set, or HB_EPROTO with a constant one-line *reason (answer 400 and close).
 */
int hb_req_framing(struct lws *wsi, hb_http_body_t *body, uint64_t *len, const char **reason);

/**
 * hb_req_lws_body() - whether libwebsockets 4.1 itself will read a body after @wsi's request
 * head, by its own rule (lws_http_action): a POST, PUT or PATCH without a usable
 * Content-Length, or a Content-Length whose atoll() is positive, whatever the method. Returns
 * 1 or 0. Service thread, during LWS_CALLBACK_HTTP.
 */
int hb_req_lws_body(struct lws *wsi);

/**
 * hb_req_buffered() - during LWS_CALLBACK_HTTP of a request that is not the first on its
 * connection: 1 when the head may have been parsed from bytes lws had already read and kept
 * (a request pipelined behind an earlier one), 0 when it certainly came from a fresh read.
 * libwebsockets 4.1 has no accessor for that buffer; lws_service_adjust_timeout() reports
 * whether any connection of the thread has kept bytes to parse, so 1 may also mean "another
 * connection has" (the caller then refuses a keep-alive body it could have taken: safe side).
 * Service thread (one lws service thread per context, tsi 0).
 */
int hb_req_buffered(struct lws *wsi);

/**
 * hb_req_refuse_pipelined() - LWS_CALLBACK_HTTP of a request with a body that lws would take
 * from its own buffer: lws 4.1 (lws_http_action) then feeds the buffer again from its start,
 * the request's own head, as the body, and loops for ever on the finished body without
 * returning to the event loop. Writes 400 (Connection: close) and returns -1 so lws closes the
 * connection before reading any body. Nothing of the request is acted on. @s may be NULL.
 */
int hb_req_refuse_pipelined(hb_svc_t *s, struct lws *wsi);

/**
 * hb_req_pipelined_behind() - from the first writable callback of an answer that stays open
 * (an SSE stream, a waiting long-poll), once per connection: 1 when lws keeps input that it
 * services on every loop turn while that answer is open, 0 after the first call. lws 4.1 keeps
 * a request pipelined behind such an answer in the same packet in its own buffer and forces
 * POLLIN for it on every turn, calling nothing of ours: one connection held its thread at
 * 100 % of a core for the stream's life (test_hangup_spin). It has no per-connection accessor
 * for that buffer, so this asks hb_req_buffered() on the loop turn after the request: a
 * connection that is not the culprit is caught only when another connection of the thread is
 * in the same state at that moment, and then loses its stream or keep-alive, not an event (it
 * reconnects with its cursor). Service thread.
 */
int hb_req_pipelined_behind(hb_client_t *c);

/**
 * hb_req_check_later() - make @c's pipelining check (hb_req_pipelined_behind()) when the
 * events of this loop turn are done, without a writable callback (an EPOLLOUT round, two
 * epoll changes): a long-poll that waits. When kept input is found then, @c gets its writable
 * callback, where hb_req_pipelined_behind() returns 1 once. On lws' poll(2) loop (no
 * prepare watcher) the writable callback is asked for at once, as before. Idempotent until
 * the check is made; hb_req_check_cancel() takes @c off. Service thread.
 */
void hb_req_check_later(hb_client_t *c);

/**
 * hb_req_checks_run() - the checks hb_req_check_later() queued on @s, all at once (the state
 * asked about is the thread's, not a connection's): from the thread's libev prepare watcher,
 * after the turn's callbacks, before it waits. Service thread.
 */
void hb_req_checks_run(hb_svc_t *s);

/** hb_req_check_cancel() - take @c off its thread's queued checks (cleanup). Idempotent. */
void hb_req_check_cancel(hb_client_t *c);

/**
 * hb_req_pause() - stop reading @c's connection until hb_req_resume() (lws rx flow control):
 * bytes already read stay in lws' buffer, unparsed. Idempotent.
 */
void hb_req_pause(hb_client_t *c);

/**
 * hb_req_resume() - read @c's connection again; call before lws_http_transaction_completed()
 * so a pipelined request waiting in lws' buffer is parsed. Idempotent.
 */
void hb_req_resume(hb_client_t *c);

/**
 * hb_req_confirm_upgrade() - LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (lws asks for "websocket" and
 * "h2c"; it answers other upgrades 403 itself). @up: the Upgrade value. Returns 0 for a
 * websocket handshake to /ws whose framing, key and subprotocols (herald.v1 among them, or
 * none) are right; otherwise writes a 400, or a 404 for another path (Connection: close), on
 * @wsi and returns -1, which makes lws close the connection. @s may be NULL (no counting).
 */
int hb_req_confirm_upgrade(hb_svc_t *s, struct lws *wsi, const char *up);

/**
 * hb_req_refuse_raw() - LWS_CALLBACK_RAW_ADOPT: lws 4.1 turns a CONNECT request into a raw
 * socket before any HTTP callback. Writes 405 with Allow and Connection: close, counts it
 * as a bad request and returns -1 so lws closes the socket at once. @s may be NULL.
 */
int hb_req_refuse_raw(hb_svc_t *s, struct lws *wsi);

#endif
