#ifndef HERALD_EDGE_CLIENT_H
#define HERALD_EDGE_CLIENT_H

/*
 * What service.c calls into a client's queue (cwrite.c) and life (client.c). The calls the
 * transports share (hb_client_push(), hb_client_close(), hb_client_count(),
 * hb_client_drained(), hb_pending_add(), ...) are declared in service.h. Service thread only:
 * every client and list here is its thread's.
 */

#include "service.h"

/* ---- cwrite.c ---- */

/**
 * hb_svc_flush() - write, once a broker batch is processed (s->batching back to 0), to every
 * client the batch queued to (s->flush): one coalesced write each when lws holds none of
 * its earlier output, else a writable callback. A client whose write fails is closed
 * (hb_client_close(), "write failed"); nothing is returned. Empties the flush list.
 */
void hb_svc_flush(hb_svc_t *s);

/**
 * hb_client_backlog_sample() - the frames queued for @s's clients that had a queue at the
 * last sample (s->backlog); those now empty leave the list and give their queue array back
 * (an idle client keeps none). For the queued gauge, from the housekeeping tick. Cannot fail.
 */
unsigned long long hb_client_backlog_sample(hb_svc_t *s);

/** hb_client_unlist() - the start of hb_client_cleanup(): @c leaves the flush list, the
 * --write-delay-ms held list and the backlog, and makes no direct send any more (its socket,
 * cached by hb_client_send_direct(), is lws' to close). O(1). */
void hb_client_unlist(hb_svc_t *s, hb_client_t *c);

/* ---- client.c ---- */

/** hb_client_release() - the end of hb_client_cleanup(): @c's queue (refs dropped), message
 * body, request state and token are freed, and a counted client is uncounted, with its
 * connection log line. Once per cleanup. Cannot fail. */
void hb_client_release(hb_svc_t *s, hb_client_t *c);

/* ---- service.c ---- */

/**
 * hb_client_cleanup() - @c's connection ends (lws' CLOSED, CLOSED_HTTP, HTTP_DROP_PROTOCOL,
 * or a new request on the connection): take it off the flush list, the backlog and the timer
 * wheel, remove its subscriptions, cancel its history reads and publishes, release its queue,
 * body and token, and uncount it (with its connection log line). Runs once per request
 * (c->cleaned); @c's memory is lws' and stays valid. Cannot fail.
 */
void hb_client_cleanup(hb_svc_t *s, hb_client_t *c);

#endif
