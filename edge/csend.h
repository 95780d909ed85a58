#ifndef HERALD_EDGE_CSEND_H
#define HERALD_EDGE_CSEND_H

/*
 * Sends straight to a client's socket, without lws' write path (cwrite.c): one frame from its
 * shared buffer, the rest handed to lws, and the sends an event's fan-out makes at once,
 * batched in one io_uring submission (--io-uring, usend.h). Service thread only.
 */

#include "service.h"

/**
 * hb_client_send_direct() - sends @len bytes of @data (a shared frame, read only) on @c's
 * socket with one send(2), without lws: the writers' path for a queue of one frame, with no
 * copy into the write buffer and no trip through lws_write(). Only on a plain-TCP HTTP/1.1 or
 * WebSocket connection that lws holds no output for; TLS and HTTP/2 streams always go
 * through lws. Returns the bytes sent (0..@len: 0 also when it may not, or the socket is
 * full; the caller hands the rest to lws_write(), which keeps it for POLLOUT), or HB_EIO when
 * the connection failed (the caller closes it). Counts bytes_out. Service thread. cwrite.c.
 */
ssize_t hb_client_send_direct(hb_client_t *c, const void *data, size_t len);
/**
 * hb_client_send_frame() - a whole frame (@len bytes at @data: a WebSocket frame, or an SSE
 * frame on HTTP/1.1; LWS_PRE bytes of headroom before it) sent as hb_client_send_direct()
 * does, what the socket did not take handed to lws with write protocol @wp (LWS_WRITE_RAW,
 * LWS_WRITE_HTTP), which sends it before anything else. 1 sent or handed over, 0 nothing sent
 * (lws holds output or the socket is full: the caller writes it through lws), HB_EIO (the
 * caller closes). Counts bytes_out. Service thread. cwrite.c.
 */
int hb_client_send_frame(hb_client_t *c, unsigned char *data, size_t len, int wp);
/**
 * hb_client_send_event() - the transports' send_now(): event frame @b (the fan-out's shared
 * buffer, alive until the fan-out ends) for @c at once, as hb_client_send_frame() sends it.
 * With the thread's ring (--io-uring) the send joins the fan-out's batch, made by
 * hb_svc_send_batch() when the fan-out ends (or when the ring is full), and what the socket
 * does not take is handed to lws then, or c closed if it failed: 1 from here means "in the
 * batch". One per client per fan-out (a client subscribes to a topic once). Return values
 * as hb_client_send_frame(). Service thread. cwrite.c.
 */
int hb_client_send_event(hb_client_t *c, hb_buf_t *b, int wp);
/**
 * hb_client_send_keepalive() - an SSE heartbeat or a WebSocket ping (@b: the thread's shared
 * frame, LWS_PRE headroom, alive as long as the thread) for @c, sent as hb_client_send_event()
 * sends an event, in the batch of the housekeeping tick that found it due, when nothing of
 * @c's waits (no queue, no history read under way, not closing). 0 when it may not: the caller
 * queues it instead. Return values as hb_client_send_event(). Service thread. cwrite.c.
 */
int hb_client_send_keepalive(hb_client_t *c, hb_buf_t *b, int wp);
/**
 * hb_svc_send_batch() - makes the sends hb_client_send_event() added (one io_uring_enter),
 * each result taken as hb_client_send_frame() takes send(2)'s. Nothing without a ring or
 * sends. Called when an event's fan-out ends, and after the housekeeping tick's timers,
 * while the frames are alive. Service thread.
 * cwrite.c.
 */
void hb_svc_send_batch(hb_svc_t *s);

#endif
