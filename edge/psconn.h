#ifndef HERALD_EDGE_PSCONN_H
#define HERALD_EDGE_PSCONN_H

/*
 * A Redis connection for sharded pub/sub (SSUBSCRIBE): libevent bufferevent + hiredis' reply
 * reader. hiredis 0.14's async API only knows SUBSCRIBE/PSUBSCRIBE and aborts on a push it did
 * not expect (an "smessage", or the "sunsubscribe" Redis sends by itself when a slot moves),
 * so these connections hand every reply, in order, to one callback. Not an rconn (rconn.h says
 * why): its owner (cluster_sub.c) opens it again; it names itself like one. Broker thread only.
 */
#include <event2/event.h>
#include <hiredis/hiredis.h>

typedef struct hb_psconn hb_psconn_t;

/**
 * Called for every reply in arrival order (owned by the connection: valid during the call),
 * and once with r == NULL when the connection fails or closes; after that call the connection
 * is dead and its owner must hb_ps_free() it (it may do so inside that call). The owner must
 * not free it from a call with a reply.
 */
typedef void (*hb_ps_reply_fn)(hb_psconn_t *c, redisReply *r, void *arg);
/** Called once when the TCP connection is established. */
typedef void (*hb_ps_up_fn)(hb_psconn_t *c, void *arg);

/**
 * hb_ps_connect() - starts connecting to host:port (a host name is resolved with a blocking
 * lookup, like hiredis does; cluster nodes announce addresses). Gives up after timeout_ms.
 * name non-NULL: CLIENT SETNAME name is the first command (copied), and its answer (OK, or a
 * refusal, which changes nothing) does not reach on_reply. Returns the connection, or NULL when
 * it could not even start (nothing is called then).
 */
hb_psconn_t *hb_ps_connect(struct event_base *base, const char *host, int port, int timeout_ms,
                           const char *name, hb_ps_up_fn on_up, hb_ps_reply_fn on_reply, void *arg);
/** hb_ps_command() - queues a command (hiredis format). Returns 0, or HB_EIO when closed. */
int hb_ps_command(hb_psconn_t *c, const char *fmt, ...);
/** hb_ps_is_up() - 1 once connected and until closed. */
int hb_ps_is_up(const hb_psconn_t *c);
/** hb_ps_free() - closes and frees the connection (no further callbacks); accepts NULL. */
void hb_ps_free(hb_psconn_t *c);

#endif
