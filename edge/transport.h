#ifndef HERALD_EDGE_TRANSPORT_H
#define HERALD_EDGE_TRANSPORT_H

/*
 * What a client's transport does, as one const table per transport (hiredis' adapter hooks,
 * h2o's protocol callbacks): the client core (cwrite.c: queue, writes after a batch;
 * client.c: close, counts; ctimer.c; topics.c; hread.c; service.c's dispatch and cleanup)
 * calls these hooks and reads these properties instead of testing which transport a client
 * is. c->ops is the
 * client's transport now (NULL: none yet, or between a ticket's answer and its routing);
 * c->counted the one it is counted as (until its cleanup), which a long-poll keeps while its
 * answer goes out as a plain one.
 *
 * Every table is defined in its transport's file: hb_sse_ops, hb_msse_ops (sse.c), hb_ws_ops
 * (ws.c), hb_poll_ops (poll.c), hb_simple_ops (http_write.c), hb_publish_ops (publish.c),
 * hb_ticket_ops (ticket.c: an HTTP request waiting for its ticket, ticket.h). A NULL hook means:
 * nothing to do, unless it says otherwise. Service thread only, as every client.
 */
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "edge.h"

typedef struct hb_svc hb_svc_t;
typedef struct hb_client hb_client_t;
typedef struct hb_pending hb_pending_t;

typedef struct hb_transport {
    const char *name; /* the connection log's "transport" */
    size_t gauge;     /* offsetof(hb_stats_t, conn_*): its open-connections gauge, once counted */
    size_t frame;     /* offsetof(hb_ev_t, *): the event encoding it queues (a hb_buf_t *) */
    uint8_t cursor;   /* each event's cursor is queued with its frame (multi-topic SSE, poll) */
    uint8_t answer;   /* long-poll: the queue is one answer, history is read up to a batch */
    uint8_t transaction; /* one HTTP request and its answer (plain answer, publish): a request
                          * pipelined before it is done is refused (reqcheck.h) */

    /** write() - one coalesced write of the queue, without a writable callback, after a
     * broker batch (hb_svc_flush()); NULL: only the writable callback writes (long-poll, plain
     * answers). 0, or HB_EIO when the connection failed (the caller closes c). */
    int (*write)(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
    /** send_now() - frame @b (a shared buffer, read only) for c, whose queue is empty and for
     * whom lws holds nothing, sent straight to the socket instead of being queued
     * (hb_client_push(), the last live event of a broker batch): what the socket did not take
     * goes to lws, which sends it on POLLOUT. 1 sent (the caller keeps no ref), 0 not sent
     * (TLS, HTTP/2, a full socket, a frame the transport does not send so: queue it), HB_EIO
     * when the connection failed (the caller closes c). NULL: never (long-poll, multi-topic
     * SSE, plain answers). */
    int (*send_now)(hb_svc_t *s, hb_client_t *c, hb_buf_t *b);
    /** http_writeable() - LWS_CALLBACK_HTTP_WRITEABLE. 0, or -1 to close. NULL: 0. */
    int (*http_writeable)(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
    /** start() - c was counted (hb_client_count()): its timers start. */
    void (*start)(hb_client_t *c);
    /** end() - c, counted as this transport, is cleaned up: what start() set up beyond its
     * wheel timer (which the core cancels) goes. */
    void (*end)(hb_svc_t *s, hb_client_t *c);
    /** timer() - c's timer in the thread's wheel (c->tnode) fired at @now. */
    void (*timer)(hb_client_t *c, lws_usec_t now);
    /** gap() - a control event (a gap notice) for c: taken by the transport instead of being
     * queued (long-poll answers with it). NULL: its frame is queued as any event's. */
    void (*gap)(hb_client_t *c, const hb_ev_t *ev);
    /** history_tail() - a history page for c named the stream's @tail cursor (@reset: after a
     * reset gap): long-poll's `next` when no event comes. */
    void (*history_tail)(hb_client_t *c, const char *tail, int reset);
    /** history_passed() - a history page for c passed over stored entries it does not deliver
     * (hb_msg_t.passed), up to @cursor: long-poll's `next` when no event comes, when it is after
     * the one it has. */
    void (*history_passed)(hb_client_t *c, const hb_cursor_t *cursor);
    /** caught_up() - a subscription of c caught up with live events after its history. */
    void (*caught_up)(hb_client_t *c);
    /** drain() - the edge drains (svc_process_inbox): end c the transport's way; @i picks one
     * of the jittered retry frames. */
    void (*drain)(hb_client_t *c, unsigned i);
    /** expire() - c's token expired (auth.c). NULL: closed, 1008 "token expired". */
    void (*expire)(hb_client_t *c);
    /** read_failed() - a history read of c failed (Redis answered an error, the broker's queue
     * was full, no answer in time; hb_hread_failed()): the transport ends c its way, @why a
     * string literal. NULL: closed with 1011 (@why), to resume from its cursor. */
    void (*read_failed)(hb_client_t *c, const char *why);
    /** close() - hb_client_close() with a WebSocket close @code (not 0): 1 when the transport
     * closes c its own way (a close frame); NULL or 0: lws closes it at once. */
    int (*close)(hb_client_t *c, uint16_t code);
    /** published() - the broker's answer @m to c's publish @p. NULL: hb_http_on_published(). */
    void (*published)(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m);
    /** answer_now() - write c's queued answer at once (a connection lws does not read). */
    void (*answer_now)(hb_client_t *c);
} hb_transport_t;

/* the tables, in their transports' files */
extern const hb_transport_t hb_sse_ops, hb_msse_ops, hb_ws_ops, hb_poll_ops, hb_simple_ops,
    hb_publish_ops, hb_ticket_ops;

/** hb_transport_frame() - the buffer of event @ev that transport @t queues (borrowed). */
static inline hb_buf_t *hb_transport_frame(const hb_transport_t *t, const hb_ev_t *ev)
{
    return *(hb_buf_t *const *)(const void *)((const char *)ev + t->frame);
}

#endif
