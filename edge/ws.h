#ifndef HERALD_EDGE_WS_H
#define HERALD_EDGE_WS_H

/*
 * The WebSocket transport (ws.c): what the lws callback (service.c) and the ticket answer
 * (ticket_answer.c) call. Its queue writers are the transport table's (hb_ws_ops,
 * transport.h). Service thread only.
 */

#include "service.h"

/** hb_ws_filter() - LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: 0 lets the handshake of @wsi go
 * on (path /ws, an allowed Origin, a client slot taken by hb_svc_admit()), 1 refuses it. */
int hb_ws_filter(hb_svc_t *s, struct lws *wsi);
/** hb_ws_established() - the handshake of @c is done: counts it as a WebSocket, signs it in
 * from its handshake token, cookie or ?ticket= (a bad token with --jwt-secret closes it 1008).
 * Cannot fail. */
void hb_ws_established(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
/** hb_ws_receive() - LWS_CALLBACK_RECEIVE: a fragment in[0..len) of a text message, gathered
 * in c->rx (bounded by --max-message-bytes plus its envelope: beyond, closed 1009; a binary
 * frame 1003) and handled when whole (subscribe, unsubscribe, publish, auth, ping). 0, or -1
 * when lws must close the connection now. */
int hb_ws_receive(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *in, size_t len);
/** hb_ws_on_writeable() - LWS_CALLBACK_SERVER_WRITEABLE: the keepalive ping ctimer.c made due
 * first (one write per callback), else what is queued (one write). 0, or -1 to close. */
int hb_ws_on_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
/** hb_ws_peer_close() - LWS_CALLBACK_WS_PEER_INITIATED_CLOSE with the peer's payload (in, len):
 * 0 lets lws echo it; -1 (close reason set: 1002 for a 1-byte payload or a code RFC 6455 does
 * not allow, 1007 for a reason that is not UTF-8) makes lws answer with that instead. */
int hb_ws_peer_close(hb_client_t *c, struct lws *wsi, const unsigned char *in, size_t len);
/** hb_ws_confirm_upgrade() - LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (upgrade: the Upgrade header):
 * 0 lets the upgrade go on; 1 when the request was answered here (426 with
 * Sec-WebSocket-Version: 13 for a version other than 13); -1 to hang up (the answer could not
 * be written). Service thread. */
int hb_ws_confirm_upgrade(hb_svc_t *s, struct lws *wsi, const char *upgrade);
/** hb_ws_take_token() - a token (@tok, @len; borrowed) from the handshake (or a ticket, or an
 * auth message): the publish key, or a JWT whose claims @c keeps (its expiry armed). 0; or,
 * with *reason (constant) and nothing changed, HB_EINVAL (no --jwt-secret: counted) or
 * hb_auth_verify()'s HB_E*. Service thread. */
int hb_ws_take_token(hb_svc_t *s, hb_client_t *c, const char *tok, size_t len, const char **reason);

#endif
