#ifndef HERALD_EDGE_TICKET_H
#define HERALD_EDGE_TICKET_H

/*
 * Single-use sign-in tickets. POST /tickets, signed in with a token (Authorization: Bearer,
 * ?token= or the --auth-cookie cookie), stores that verified token in Redis under
 * <prefix>ticket:<id> for --ticket-ttl seconds (SET ... PX NX) and answers the id. A request
 * that presents ?ticket=<id> (SSE, multi-topic SSE, long-poll, the WebSocket handshake) is
 * answered once Redis has given the token back (GETDEL: atomic, so any edge redeems a ticket
 * exactly once), and is then served as if that token had been presented: the token is verified
 * again, so its exp and signature still hold. The service thread never waits: the Redis command
 * goes through the broker (HB_REQ_TICKET_*), and the request waits, unread, for at most
 * HB_TICKET_WAIT_S before it is answered 503 (WebSocket: closed 1013).
 * Service threads only: ticket.c asks (below the router and ws.c), ticket_answer.c answers
 * (above them); the broker thread's side is bticket.c.
 */

#include <stdint.h>

#include "hb_http_frame.h"
#include "service.h"

/* Random bytes of a ticket id (192 bits from getrandom), and its base64url length. */
#define HB_TICKET_ID_BYTES 24
#define HB_TICKET_ID_LEN 32
/* Seconds a request waits for Redis to issue or redeem its ticket before 503 / 1013. */
#define HB_TICKET_WAIT_S 5

/**
 * hb_ticket_issue() - POST /tickets (the head's framing checked: @framing, @len). Answers at
 * once when refused (401 no or bad token, 403 the publish key or no --jwt-secret, 411/413 a
 * Content-Length missing (411) or over 1 KiB (413)); otherwise asks the broker and answers from
 * hb_ticket_on_reply(). Returns what the HTTP callback returns (0, or -1 to hang up).
 */
int hb_ticket_issue(hb_svc_t *s, hb_client_t *c, struct lws *wsi, hb_http_body_t framing,
                    uint64_t len);

/**
 * hb_ticket_http() - a subscriber route (@path: /events..., /poll/...) with ?ticket=: 0 when
 * there is none (or it was redeemed and the request is being routed again: go on), 1 when
 * the request is taken (waiting for Redis, or answered 401 for a malformed ticket), -1 to hang
 * up. Without --jwt-secret a ticket is ignored like a token.
 */
int hb_ticket_http(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *path);

/**
 * hb_ticket_ws() - the WebSocket handshake of @c carried ?ticket=: 1 when it did (the
 * connection is not read until the ticket is redeemed or refused; a refusal closes it 1008),
 * 0 when it did not (use the other token sources).
 */
int hb_ticket_ws(hb_svc_t *s, hb_client_t *c, struct lws *wsi);

/** hb_ticket_refuse_http() - answer an HTTP request whose ticket was refused (@why: the log's
 * err, a string literal) 401, counted as a refused ticket and an auth refusal. What
 * hb_http_respond() returns. ticket.c. */
int hb_ticket_refuse_http(hb_svc_t *s, hb_client_t *c, const char *why);

/* ---- ticket_answer.c ---- */

/** hb_ticket_on_reply() - the broker's HB_MSG_TICKET for pending request @p (freed here). */
void hb_ticket_on_reply(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m);

/** hb_ticket_on_timer() - @c's wait for Redis ran out (its lws timer; service.c's TIMER dispatch
 * asks it before the token expiry): 503 / close 1013. Returns 0 (lws goes on; a close goes
 * through hb_client_close()). */
int hb_ticket_on_timer(hb_client_t *c);

/* hb_ticket_broker(), the broker thread's side: bticket.h. */

#endif
