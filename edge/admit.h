#ifndef HERALD_EDGE_ADMIT_H
#define HERALD_EDGE_ADMIT_H

/*
 * Admission: what a service thread accepts, and what it may keep. Every socket is counted from
 * accept (process-wide, against a limit derived from RLIMIT_NOFILE), a socket that has not sent
 * a whole request yet (a "head") is on its thread's list, oldest first, and is closed
 * --handshake-timeout after accept whatever it sends; at the socket limit the oldest head makes
 * room for a new socket (or the one idle longest between kept-alive requests, if older), so
 * idle sockets cannot lock out /healthz or new subscribers. accept()
 * failing for want of descriptors pauses accepting for a moment instead of spinning.
 * Private to the service threads (service.c).
 */

#include <stddef.h>

#include <libwebsockets.h>

#include "edge.h"

typedef struct hb_admit hb_admit_t;

/**
 * hb_admit_new() - the admission state of one service thread, accepting on `listen_fd` (owned
 * from now on: closed by hb_admit_free() if it was never adopted, by lws otherwise) into
 * `vhost`. Adopts the listener into lws. Main thread, before the service thread starts.
 * Returns NULL (and has closed nothing but what it created) when lws refuses the listener.
 */
hb_admit_t *hb_admit_new(hb_edge_t *edge, struct lws_vhost *vhost, int listen_fd, int tls);

/**
 * hb_admit_free() - frees the state; accepts NULL. After lws_context_destroy() of the thread's
 * context (whose WSI_DESTROY callbacks still call hb_admit_destroyed()). Main thread.
 */
void hb_admit_free(hb_admit_t *a);

/** hb_admit_accept() - the listener is readable: accept what waits. Service thread. */
void hb_admit_accept(hb_admit_t *a);

/**
 * hb_admit_served() - `wsi` sent a whole request: it is no longer a head (no head deadline, not
 * evictable). Service thread; unknown wsis are ignored.
 */
void hb_admit_served(hb_admit_t *a, struct lws *wsi);

/**
 * hb_admit_body() - `wsi` (served: its head is whole) has a body coming: it must be whole within
 * --handshake-timeout from now (else closed, counted incomplete), and the socket may be evicted
 * at the socket limit like a head until hb_admit_body_done(). Service thread.
 */
void hb_admit_body(hb_admit_t *a, struct lws *wsi);

/** hb_admit_body_done() - `wsi`'s body is whole: no body deadline. Service thread; a wsi with no
 * body under way is ignored. */
void hb_admit_body_done(hb_admit_t *a, struct lws *wsi);

/** hb_admit_was_served() - 1 when `wsi` sent a whole request before (a kept-alive connection),
 * 0 otherwise. Service thread. */
int hb_admit_was_served(hb_admit_t *a, struct lws *wsi);

/**
 * hb_admit_idle() - lws bound `wsi` to its protocol again: after a kept-alive transaction it
 * waits for its next request, and may be evicted at the socket limit like a head (lws closes
 * it after --idle-timeout). Ignored unless a request was under way. Service thread.
 */
void hb_admit_idle(hb_admit_t *a, struct lws *wsi);

/**
 * hb_admit_closed_head() - `wsi` is closing in HTTP; returns 1 the first time for a socket that
 * never sent a whole request (the caller counts it as incomplete), 0 otherwise. Service thread.
 */
int hb_admit_closed_head(hb_admit_t *a, struct lws *wsi);

/** hb_admit_ip_over() - 1 when `wsi` came past --max-connections-per-ip. Service thread. */
int hb_admit_ip_over(hb_admit_t *a, struct lws *wsi);

/** hb_admit_destroyed() - lws frees `wsi`: forget it, give its counts back. Service thread. */
void hb_admit_destroyed(hb_admit_t *a, struct lws *wsi);

/**
 * hb_admit_each() - calls fn(wsi, arg) for each socket this thread holds (not the listener), in
 * no order; fn must not close or free sockets synchronously (closes asked for with
 * LWS_TO_KILL_ASYNC, a close code to send, are fine). Service thread.
 */
void hb_admit_each(hb_admit_t *a, void (*fn)(struct lws *wsi, void *arg), void *arg);

/** hb_admit_tick() - closes the heads past their deadline. Service thread (housekeeping). */
void hb_admit_tick(hb_admit_t *a);

#endif
