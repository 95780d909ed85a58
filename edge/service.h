#ifndef HERALD_EDGE_SERVICE_H
#define HERALD_EDGE_SERVICE_H

/*
 * Private to the service threads: their types and the calls the files of the service side
 * share (service.c, listener.c, client.c, cwrite.c, topics.c, the HTTP files, ws.c, ctimer.c,
 * hread.c, auth.c, ticket.c, ticket_answer.c). The calls service.c alone makes into a module
 * are in client.h, topics.h and listener.h; those between the HTTP files in http.h.
 *
 * Returns (docs/architecture.md, "Contracts and error returns"): 0 or a negative HB_E*
 * (common/hb_err.h), except lws callback plumbing. A call documented "0, or -1 to close" (or
 * "what the HTTP callback returns") has its result returned to an lws callback, which closes
 * the connection on any nonzero value: 0 goes on; a negative value closes, either -1 or the
 * HB_E* of a failing helper passed on (hb_http_respond()'s HB_ENOMEM). Callers test < 0 or
 * return it as it is; none compares it with -1.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "edge.h"
#include "hb_bucket.h"
#include "hb_dict.h"
#include "hb_err.h"
#include "hb_hist.h"
#include "hb_list.h"
#include "hb_jwt.h"
#include "hb_wheel.h"
#include "transport.h"

#define HB_SVC_WBUF 65536 /* bytes coalesced into one write */
#define HB_SVC_WS_RX 128  /* lws' per-WebSocket rx buffer: a whole control frame (service.c) */
#define HB_DRAIN_VARIANTS 8
#define HB_SVC_TICK_US 250000 /* housekeeping tick: the timer wheel's resolution */

typedef struct hb_svc hb_svc_t;
typedef struct hb_client hb_client_t;
typedef struct hb_sub hb_sub_t;

/* A topic with local subscribers. {service thread} */
typedef struct ltopic {
    char name[HB_TOPIC_MAX + 1];
    size_t len;
    hb_list_t subs; /* subscriptions (hb_sub_t.tlink), newest first */
    size_t nsubs;
    uint64_t seq; /* last EVENT sequence seen, to detect a dropped hand-off */
    int have_seq;
    int told;     /* the broker has us: our last SUB, not an UNSUB after it, was queued */
    int dirty;    /* a SUB/UNSUB could not be queued; retried by housekeeping */
    hb_ask_t ask; /* of the subscription that made us send our last SUB */
    /* Where this thread's live delivery of the topic stands (topics.c, topic_at()): the cursor
     * of the last event received, "" when unknown. Kept only once the broker answered a
     * history request of this topic from its live position (synced: events received after
     * that answer were emitted for this subscription, not before it) and cleared by a gap
     * notice or an event lost in hand-off until the next event. */
    char at[HB_CURSOR_MAX];
    int synced;
    /* the epoch of the last event received ("" before one): where a client's position from
     * such an event lies (topic_join) */
    char epoch[HB_EPOCH_MAX + 1];
} ltopic_t;

/* One client's subscription to one topic. {service thread} Its fields are ordered and
 * packed to fit a 144-byte malloc chunk: every connection has one or more. What a live
 * delivery reads (topics.c: c, tlink, last, idx, the flags) comes first, in 48 bytes. */
struct hb_sub {
    hb_client_t *c;
    hb_list_t tlink; /* in t->subs */
    hb_id_t last;    /* last event id queued */
    uint16_t idx;    /* position in the client's topic list */
    uint16_t hcount; /* entries the next page asks for (at most --history-batch, 10,000) */
    uint8_t hstate;  /* history read (hread.c): HB_HREAD_* */
    unsigned resuming : 1, history_started : 1, have_last : 1;
    /* long-poll: the answer is full before history caught up; live events are dropped (the
     * next poll reads them from history) and the answer goes out though resuming is set */
    unsigned poll_full : 1;
    unsigned htail : 1;  /* the first read wants only the tail cursor */
    unsigned hfresh : 1; /* the first read goes to Redis, even at the live position */
    /* more live events than --client-queue-max arrived while history was read: they were
     * dropped (history has them) and the read goes on past the page that was out */
    unsigned pend_over : 1;
    /* started live, with no cursor: until an event (have_last) `last` is its ask (ms, 0) less
     * HB_JOIN_CLOCK_MARGIN_MS, where a read for what its thread missed starts */
    unsigned fresh : 1;
    ltopic_t *t;
    uint32_t npend, cappend;
    uint64_t token;   /* key in svc->pending while history is read */
    hb_sub_t *hnext;  /* in c->hwait while HB_HREAD_QUEUED */
    hb_cursor_t hcur; /* where the first page starts (later pages: after `last`) */
    hb_buf_t *wcur;   /* multi-topic SSE: cursor of the last event written */
    hb_msg_t **pend;  /* live events received while history is read */
};

/* One queued frame: a ref to a shared buffer (and, for multi-topic SSE, to its cursor).
 * WebSocket clients queue whole frames (hb_ws_frame()). */
typedef struct qent {
    hb_buf_t *b;
    hb_buf_t *cur;
    uint16_t idx;
    uint16_t ctl;
} qent_t;

/* Life cycle of the connection's current HTTP request (edge/reqcheck.h): every HTTP callback
 * checks it, so a body is taken and completed once per request. */
typedef enum { REQ_IDLE = 0, REQ_HEAD, REQ_BODY, REQ_DONE } req_state_t;

/* An in-flight request (history page or publish) waiting for the broker's answer. */
typedef struct hb_pending {
    hb_client_t *c;
    hb_sub_t *u;              /* history: the subscription */
    json_t *echo;             /* WS publish: the request id to echo */
    struct hb_pending *cnext; /* in c->pubs */
    uint64_t token;
    long long t0_us;    /* when it was asked (publish latency; history: the read timeout) */
    uint8_t cancelled;  /* history read whose subscription went away: the answer is dropped;
                         * u is NULL, c (NULL once it is gone) keeps it in c->hcancel */
    hb_hflag_t *cancel; /* history read: the flag shared with the broker (one reference) */
} hb_pending_t;

/*
 * What a plain answer, a publish, a ticket or a long-poll needs while its request lasts, kept
 * apart so that a streaming connection (SSE, WebSocket) does not carry it: made on first use
 * (hb_creq()), freed with the client's other state by hb_client_cleanup(). {service thread}
 */
typedef struct hb_creq {
    const char *ctype;      /* plain answer: its Content-Type (a string literal) */
    uint16_t status;        /* plain answer: its status */
    uint8_t auth_challenge; /* plain answer: its extra headers, EXTRA_* (http.h) */
    uint8_t poll_ready;     /* long-poll: 2 answers now (timeout 0, draining) */
    uint8_t head_only;      /* a HEAD request: its plain answer is written without content */
    const char *poll_gap;   /* long-poll: the gap its answer reports (a string literal) */
    const char *poll_fail;  /* long-poll: its history read failed: answered 503 (a literal) */
    size_t rxmax;           /* publish: the body's Content-Length */
    size_t topic_len;
    char topic[HB_TOPIC_MAX + 1];      /* publish: its topic; ticket issue: the ticket id */
    char event[HB_EVENT_NAME_MAX + 1]; /* publish: ?event= */
    char idem[HB_IDEM_KEY_MAX + 1];    /* publish: its Idempotency-Key ("": none) */
    char poll_next[HB_CURSOR_MAX];     /* long-poll: the cursor its answer names as next */
    /* tickets (ticket.h): the pending token of the Redis request waited for (0: none; an HTTP
     * request's or a WebSocket's), and the redeemed token while the request is routed again
     * (the answer's, borrowed; NULL right after) */
    uint64_t ticket_tok;
    const char *ticket_jwt;
} hb_creq_t;

/* One connection's state: lws' per-session data, zeroed by lws and by hb_client_init(); an
 * idle stream costs this, its subscriptions and what lws keeps (docs/architecture.md).
 * {service thread} */
struct hb_client {
    /* what the fan-out path reads and writes for each recipient (topics.c, cwrite.c, ws.c,
     * http_write.c: push, flush, write) comes first, in 144 bytes; the rest after */
    struct lws *wsi;
    hb_svc_t *svc;
    const hb_transport_t *ops; /* its transport now (transport.h); NULL: none yet */
    /* outgoing queue, a ring of qcap (a power of two) entries (cwrite.c); NULL while empty,
     * for an idle client */
    qent_t *q;
    uint32_t qcap, qhead, qlen;
    uint32_t off; /* bytes of the head entry written (frames are under 4 GiB) */
    /* what the queue counts against --client-queue-bytes: each entry at most half of it
     * (hb_client_charge()), so one large event reaches a client that keeps up */
    uint32_t qcharge;
    uint8_t closing, close_after_flush;
    uint8_t bl_listed, flush_listed;
    uint16_t close_code; /* WS: close code to send */
    uint16_t hpaced;
    /* direct sends (cwrite.c): its socket's fd + 1 (plain TCP, its own connection), -1 never
     * (TLS, an HTTP/2 stream, cleaned up), 0 not known yet; learnt once per request */
    int direct;
    size_t qbytes;         /* bytes queued (the long-poll answer's length) */
    const char *close_why; /* why it was closed (a string literal): WS close reason, log */
    uint64_t delivered;    /* events queued to it (connection log) */
    /* written right after the broker batch that queued to it (svc->flush, flush_listed) */
    hb_list_t flush_link;
    union {
        lws_usec_t last_write; /* SSE: when it last wrote (heartbeat) */
        uint64_t rx_tick;      /* WS: wheel tick of the peer's last frame (keepalive) */
    };
    /* history reads (hread.c): subscriptions waiting for a read, reads in flight (and the
     * cancelled ones still counted: hreads), subscriptions waiting for the queue to drain
     * (hpaced); hlisted: in svc->hq_head */
    hb_sub_t *hwait_head, *hwait_tail;
    const hb_transport_t *counted; /* counted as (hb_client_count()) until the cleanup */
    uint64_t id;
    hb_creq_t *x; /* plain answer, publish, ticket, long-poll state (owned; NULL: none) */
    uint8_t cleaned, headers_sent, may_publish;
    uint8_t req;       /* req_state_t of the current HTTP request */
    uint8_t rx_paused; /* input not read until this request is answered (reqcheck.h) */
    uint8_t cors;      /* 0 no CORS headers, 1 "*", k + 1 the k-th --allowed-origins entry */
    uint8_t ping_out;  /* WS: a ping was sent since that frame */
    uint8_t ping_due;  /* WS: send a ping at the next writable callback */
    /* WS drain with publishes waiting for Redis: 1 their answers go first (input paused), 2
     * the last was queued: close 1001 once the queue is written */
    uint8_t drain_pubs;
    uint8_t hreads, hlisted;
    uint16_t nsubs, capsubs;
    /* an open answer's pipelining check (reqcheck.h): 0 not made, 1 made, 2 made and found
     * kept input (answered and closed from the writable callback), 3 waiting in
     * svc->pipe_q for the end of the loop turn */
    uint8_t pipe_checked;
    uint8_t peer_watched; /* svc->peer_ep's reports of its socket close it (ctimer.c) */
    hb_sub_t **subs;      /* by idx; NULL slots after a WS unsubscribe; &sub0 for one */
    hb_sub_t *sub0;       /* the storage of subs while it has one slot (most clients) */
    /* SSE: next peer check / heartbeat; WS: next keepalive check; long-poll: its timeout. In
     * svc->wheel (service.c) */
    hb_wheel_node_t tnode;
    hb_list_t bl_link; /* in svc->backlog while its queue is not empty (bl_listed) */
    /* a publish body (its length in x) or a WebSocket message being gathered; none kept
     * between messages */
    char *rx;
    uint32_t rxlen, rxcap; /* at most --max-message-bytes + 4 KiB */
    hb_pending_t *pubs;    /* publishes in flight */
    /* authorisation: WS keeps its verified claims for later subscribes/publishes; SSE and WS
     * are ended at auth_exp (+ leeway) */
    hb_jwt_t *jwt;
    long long auth_exp;
    lws_usec_t opened; /* when it became an SSE/WS/long-poll client (connection log) */
    hb_pending_t *hcancel;
    hb_client_t *hq_next; /* in svc->hq_head */
    /* --write-delay-ms (cwrite.c): in svc->wd_held until wd_last + the delay; wd_last is when
     * its queue was last released to the writer (0: never). The node is initialised by
     * hb_client_init(); a client lws zeroed and no request reached has next == NULL (not held
     * either) */
    hb_list_t wd_link;
    lws_usec_t wd_last;
};

struct hb_svc {
    hb_edge_t *edge;
    int idx;
    struct lws_context *ctx;
    struct ev_loop *evloop; /* the thread's libev loop lws runs on; NULL: lws' poll(2) loop */
    struct lws_vhost *vhost;
    int listen_fd;           /* our SO_REUSEPORT listener, adopted into ctx as a raw file */
    int tls;                 /* --tls-cert: accepted sockets start with a TLS handshake */
    SSL_CTX *tls_client_ctx; /* unused by us; given to lws so it makes none (owned) */
    atomic_int tls_reload;   /* set by the SIGHUP thread: load --tls-cert/--tls-key again */
    pthread_t thread;
    int started;
    atomic_int stop;
    hb_queue_t *inq;        /* from the broker {inq lock} */
    hb_dict_t *topics;      /* name -> ltopic_t */
    hb_dict_t *pending;     /* token -> hb_pending_t */
    struct hb_admit *admit; /* accepting and counting sockets (admit.h) */
    uint64_t next_id;
    atomic_size_t nclients;
    /* per-delivery counters: written only by this thread (no shared cache line on the
     * fan-out path), summed by /metrics */
    atomic_ullong deliveries, bytes_out;
    atomic_ullong subscriptions; /* gauge: subscriptions of this thread's clients */
    atomic_ullong queued;        /* gauge: frames queued for its clients, every 250 ms */
    hb_hist_t deliv_hist;        /* publish (stream id time) to write, per delivery */
    hb_hist_t pub_hist;          /* HTTP/WS publish request to Redis' answer */
    atomic_int drain_req;
    int draining;
    /* while a batch of broker messages is processed: clients it queued to, written once the
     * batch is done instead of through one writable callback each (hb_svc_flush, cwrite.c) */
    int batching;
    hb_list_t flush; /* of hb_client_t.flush_link, in the order they were queued to */
    /* the batch's last live event is being fanned out: a recipient with nothing queued is
     * sent it at once (hb_client_push(), the transport's send_now), not listed for the flush;
     * those deliveries' latency is observed once per event (sn_n of the event stamped
     * sn_stamp, by hb_svc_flush()), not once per recipient */
    int send_now;
    unsigned long long sn_n;
    long long sn_stamp;
    lws_usec_t sn_mono; /* lws_now_usecs() as that event's fan-out began (SSE's last write) */
    /* --io-uring: the sends at once of one fan-out, made in one system call
     * (hb_svc_send_batch(), usend.h); NULL: one send(2) each. Made by the thread itself. */
    struct hb_usend *usend;
    /* --write-delay-ms (cwrite.c): clients whose write waits (hb_client_t.wd_link), in the
     * order they were held, and the timer of the first one */
    hb_list_t wd_held;
    lws_sorted_usec_list_t sul_wd;
    unsigned ticks;
    hb_wheel_t wheel; /* SSE clients' timers, in HB_SVC_TICK_US ticks */
    /* clients that had a queue at the last sample (queued gauge), of hb_client_t.bl_link,
     * newest first */
    hb_list_t backlog;
    int topics_dirty; /* a topic's SUB/UNSUB waits for a retry */
    /* --topic-rate over the threads: topics this thread takes on (hb_topics_take()) */
    hb_bucket_t topic_bucket;
    hb_bucket_t ticket_bucket; /* this thread's share of --ticket-rate (ticket.c) */
    /* long-polls whose pipelining check is made when this loop turn's events are done
     * (hb_req_check_later(), from a libev prepare watcher: prep); NULL slots were cleaned
     * up meanwhile. An array, not a node in each client: every connection would pay for it */
    hb_client_t **pipe_q;
    uint32_t pipe_n, pipe_cap;
    struct ev_prepare *prep; /* owned; NULL on lws' poll(2) loop */
    int peer_ep;             /* epoll set of the SSE sockets, readable when a peer hangs up */
    struct lws *peer_wsi;    /* a duplicate of peer_ep in the loop (ctimer.c); NULL: not adopted */
    /* history reads in flight (hread.c), subscriptions waiting for one, and clients waiting
     * for one of these slots; the two counts are published every 250 ms for /metrics */
    unsigned hreads, hwaiting;
    hb_client_t *hq_head, *hq_tail;
    atomic_ullong hist_inflight, hist_waiting;
    lws_sorted_usec_list_t sul_hb;
    lws_retry_bo_t idle_policy; /* all zero: no lws validity timers (service.c ws keepalive) */
    hb_buf_t *retry_frame, *hb_frame, *ping_frame, *expired_frame; /* LWS_PRE headroom */
    hb_buf_t *drain_frames[HB_DRAIN_VARIANTS];
    unsigned char wbuf[LWS_PRE + HB_SVC_WBUF];
};

/* ---- service.c ---- */

/* hb_svc_request(), hb_svc_push(): handoff.h. */

/** hb_svc_count() - add to a counter only its own thread writes: a plain load and store, no
 * locked read-modify-write on the fan-out path. */
static inline void hb_svc_count(atomic_ullong *c, unsigned long long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
/** hb_svc_observe_write() - a queued buffer was written: observe its publish-to-write latency
 * (live events only; now_us from hb_wall_us(), read once per write). */
static inline void hb_svc_observe_write(hb_svc_t *s, const hb_buf_t *b, long long now_us)
{
    if (b->stamp_ms)
        hb_hist_observe(&s->deliv_hist, now_us - b->stamp_ms * 1000, 1);
}

/* ---- sframes.c: the frames a thread sends as they are ---- */

/**
 * hb_svc_frames_new() - makes @s's retry, heartbeat, ping, token-expired and drain frames
 * (LWS_PRE headroom, one reference each, held until hb_svc_frames_free()). 0, or HB_ENOMEM
 * (none is left then). The creating thread, before the service thread starts.
 */
int hb_svc_frames_new(hb_svc_t *s);
/** hb_svc_frames_free() - drops them (NULL ones too); after the service thread ended. */
void hb_svc_frames_free(hb_svc_t *s);

/* ---- cwrite.c (push, drained) and client.c: a client's queue and life ---- */

/**
 * hb_client_charge() - what one queued frame of @len bytes counts against a client's
 * --client-queue-bytes @bound (c->qcharge): its length, but at most half the bound, so an
 * event larger than the bound still reaches a client that keeps up, live and on resume (a
 * client that does not is cut off once its queue passes the bound or --client-queue-max).
 * Pure; any thread.
 */
static inline uint32_t hb_client_charge(size_t len, long bound)
{
    size_t half = (size_t)bound / 2;
    return (uint32_t)(len < half ? len : half);
}

/**
 * hb_client_push() - queue one shared buffer @b (and, for multi-topic SSE and long-poll, its
 * cursor @cur) to @c, taking new refs (the caller keeps its own); @idx is the subscription's
 * index, @ctl marks a control frame (no cursor, no ID order). The first frame lists @c for a
 * write after the broker batch, or asks lws for a writable callback. 0; nothing queued: HB_EIO
 * when @c is closing, HB_ELIMIT when it was cut off now (over --client-queue-max, or its
 * charge over --client-queue-bytes: "slow consumer", 1008, counted). Service thread of @c.
 */
int hb_client_push(hb_client_t *c, hb_buf_t *b, hb_buf_t *cur, uint16_t idx, int ctl);
/**
 * hb_client_pop() - @c's head entry was written whole (SSE or WebSocket writer): it leaves the
 * queue (its refs dropped, the byte and charge counts lowered, its publish-to-write latency
 * observed at @now_us). @c->qlen > 0. Service thread. cwrite.c.
 */
void hb_client_pop(hb_svc_t *s, hb_client_t *c, long long now_us);
/**
 * hb_client_init() - @c (lws' per-session data) starts a new request or WebSocket of @s on
 * @wsi: zeroed, its lists' nodes initialised, a new connection id. The previous request's
 * state must be cleaned up (hb_client_cleanup()) first. Cannot fail.
 */
void hb_client_init(hb_client_t *c, hb_svc_t *s, struct lws *wsi);
/**
 * hb_client_close() - close @c once: its queue is released now (refs dropped), @why (a string
 * literal) is kept for the close log; a WebSocket with @ws_code sends a close frame with it
 * first (5 s at most), anything else is closed by lws at once. The memory stays lws' until
 * hb_client_cleanup(). Safe while a delivery to @c is on the stack; a second call is a no-op.
 */
void hb_client_close(hb_client_t *c, const char *why, uint16_t ws_code);
/**
 * hb_client_count() - @c became a client of transport @t (SSE, multi-topic SSE, WebSocket,
 * long-poll): c->ops and c->counted set, counted in t's connection gauge until
 * hb_client_cleanup(), its timers started (t->start), its open logged at debug level. Once
 * per client.
 */
void hb_client_count(hb_client_t *c, const hb_transport_t *t);
/** hb_creq() - @c's request state (c->x), made zeroed on first use (aborts on allocation
 * failure); freed by hb_client_cleanup(). Service thread. */
hb_creq_t *hb_creq(hb_client_t *c);
/** hb_client_drained() - the client wrote (part of) its queue: continue a paced history read
 * that waited for room (hread.c). Service thread; cheap when none waits. */
void hb_client_drained(hb_client_t *c);

/* ---- client.c: requests waiting for the broker ---- */

/**
 * hb_pending_add() - a request of @c waiting for the broker's answer, keyed by a new token
 * in s->pending: a history read of @u, or (@u NULL) a publish or ticket request, also listed
 * in c->pubs. Owned by s->pending until hb_pending_del() (or hb_hread_answered()); never NULL.
 */
hb_pending_t *hb_pending_add(hb_svc_t *s, hb_client_t *c, hb_sub_t *u);
/** hb_pending_del() - forget @p (NULL: nothing) and free it with its echo and cancel flag. */
void hb_pending_del(hb_svc_t *s, hb_pending_t *p);

/* ---- listener.c ---- */

/**
 * hb_svc_admit() - 1 when a new subscriber connection may be served; 0 when the edge drains,
 * is at --max-connections or the address is past --max-connections-per-ip (each refusal is
 * counted under its own reason; draining is not a refusal). Service thread.
 */
int hb_svc_admit(hb_svc_t *s, struct lws *wsi);

/* ---- ctimer.c ---- */

/**
 * hb_svc_poll_timer() - a long-poll's timeout: hb_poll_on_timer(c) runs once `us` microseconds
 * passed (at most one housekeeping tick, 250 ms, later); us 0 cancels it. A timer in the
 * thread's wheel, not lws_set_timer_usecs(): arming an lws timer walks a list of every other
 * one. Service thread; c is a long-poll.
 */
void hb_svc_poll_timer(hb_client_t *c, lws_usec_t us);

/* per-connection timers (see the comment at the top of ctimer.c) */
/** hb_ctimer_init() - the thread's wheel and SSE peer set (hb_svc_new()); without an epoll set
 * (epoll_create1() failed) SSE sockets are peeked once a second instead. */
void hb_ctimer_init(hb_svc_t *s);
/** hb_ctimer_peers_ready() - LWS_CALLBACK_RAW_RX_FILE of s->peer_wsi: closes the SSE streams
 * whose peers hung up or sent bytes (at most 1024 a call; the rest make it readable again). */
void hb_ctimer_peers_ready(hb_svc_t *s);
/** hb_ctimer_free() - closes the peer set; after lws_context_destroy() (cleanups use it). */
void hb_ctimer_free(hb_svc_t *s);
/**
 * hb_svc_drain_clients() - SIGTERM drain of s's clients, once (sdrain.c): each subscriber
 * through its topics the transport's way (SSE a jittered retry, long-poll answered), and every
 * WebSocket 1001, one with publishes waiting for Redis after their answers. Service thread.
 */
void hb_svc_drain_clients(hb_svc_t *s);

/** hb_ctimer_tick() - the housekeeping tick: fires the due timers, closes SSE streams whose
 * peer hung up or sent bytes. */
void hb_ctimer_tick(hb_svc_t *s, lws_usec_t now);
/** hb_ctimer_end() - c (of thread s; c->svc may be unset) is cleaned up: its timer goes, and
 * what its counted transport's start() set up (t->end). */
void hb_ctimer_end(hb_svc_t *s, hb_client_t *c);
/* the timer hooks of the transports' tables (transport.h), here with the wheel they use */
/** hb_ctimer_sse_start() - SSE start(): heartbeat timer, peer watch. */
void hb_ctimer_sse_start(hb_client_t *c);
/** hb_ctimer_peer_end() - SSE and long-poll end(): out of the peer watch. */
void hb_ctimer_peer_end(hb_svc_t *s, hb_client_t *c);
/** hb_ctimer_peer_watch() - @c's socket joins (add 1) or leaves the thread's peer set: a
 * connection lws does not read while its answer is open (a waiting long-poll), whose hang-up
 * must still be seen. Errors are ignored (without the set, only SSE is peeked). */
void hb_ctimer_peer_watch(hb_client_t *c, int add);
/** hb_ctimer_sse_fire() - SSE timer(): a heartbeat when one is due (a peer check without the
 * peer set), then the next timer. */
void hb_ctimer_sse_fire(hb_client_t *c, lws_usec_t now);
/** hb_ctimer_ws_start() - WebSocket start(): the keepalive timer (--ws-ping-interval; 0: none). */
void hb_ctimer_ws_start(hb_client_t *c);
/** hb_ctimer_ws_fire() - WebSocket timer(): a ping when one is due, a hang-up after two. */
void hb_ctimer_ws_fire(hb_client_t *c, lws_usec_t now);
/** hb_ctimer_ws_seen() - a frame (message, fragment, pong) came from WebSocket c: no ping is
 * due before --ws-ping-interval from now. O(1), no timer operation. */
void hb_ctimer_ws_seen(hb_client_t *c);

/* cwrite.c: --write-delay-ms, opt-in write coalescing (see the comment in cwrite.c) */
/** hb_wdelay_held() - 1 while @c is in its thread's held list. */
static inline int hb_wdelay_held(const hb_client_t *c)
{
    return c->wd_link.next && hb_list_linked(&c->wd_link);
}

/* auth.c */
/** hb_auth_token() - the bearer token of the request on @wsi: Authorization: Bearer, else
 * ?token=, copied into @out (@cap bytes, the caller's). 1 found (NUL-terminated in @out), 0
 * none; HB_ELIMIT when it (or a query argument) does not fit @cap, HB_EPROTO when the
 * Authorization is not "Bearer <token>" or the token is empty. Service thread. */
int hb_auth_token(struct lws *wsi, char *out, size_t cap);
/** hb_auth_is_publish_key() - 1 when (tok, len) (borrowed) is the configured --publish-key,
 * compared in constant time; else 0. Pure; any thread. */
int hb_auth_is_publish_key(const hb_cfg_t *cfg, const char *tok, size_t len);
/** hb_auth_verify() - verify the JWT (tok, len) (borrowed) with --jwt-secret: 0 and *out the
 * claims (owned by the caller: hb_jwt_free()); else *out NULL, *reason a constant one-line
 * reason and an HB_E* (HB_EINVAL without --jwt-secret, else hb_jwt_verify()'s), counted and
 * logged. Service thread. */
int hb_auth_verify(hb_svc_t *s, const char *tok, size_t len, hb_jwt_t **out, const char **reason);
/** hb_auth_may_subscribe() - 1 when @j's subscribe patterns allow (topic, len) (both
 * borrowed); with no token (@j NULL) when no secret is configured or --allow-anonymous; else
 * 0. Pure; any thread. */
int hb_auth_may_subscribe(const hb_cfg_t *cfg, const hb_jwt_t *j, const char *topic, size_t len);
/** hb_auth_cookie() - the token in the cookie named exactly --auth-cookie: 1 and out set, 0
 * none (the option is off, no such cookie or an empty one, or a request from an origin that may
 * not use cookies: neither the edge's own nor one listed by name in --allowed-origins),
 * HB_ELIMIT for a value of cap bytes or more. Service thread. */
int hb_auth_cookie(hb_svc_t *s, struct lws *wsi, char *out, size_t cap);

/** hb_auth_http() - the request's token (a redeemed ticket's, a bearer or the cookie),
 * verified: 1 and *jwt set (owned by the caller: hb_jwt_free()), 0 no token (or no secret
 * configured); refused: *reason (constant) and HB_ELIMIT (too long), HB_EPROTO (not a bearer)
 * or hb_auth_verify()'s HB_E*, counted. Service thread. */
int hb_auth_http(hb_svc_t *s, struct lws *wsi, hb_jwt_t **jwt, const char **reason);
/** hb_auth_expire_at() - end @c when exp (unix seconds; 0: never) + leeway passes (its lws
 * timer, re-armed at most an hour ahead). Service thread; cannot fail. */
void hb_auth_expire_at(hb_client_t *c, long long exp);
/** hb_auth_on_timer() - the connection's lws timer fired (SSE, WS) and it waits for no ticket
 * (service.c asks hb_ticket_on_timer() first): the token expiry, or its early wake-up. 0. */
int hb_auth_on_timer(hb_client_t *c);
/** hb_auth_origin() - check the Origin header of @wsi against --allowed-origins: 0 allowed
 * (sets *cors for the response headers; 0 when there is no Origin); refused (counted, logged
 * rate-limited): HB_ELIMIT for an Origin of 512 bytes or more, HB_EINVAL for one not allowed.
 * Service thread. */
int hb_auth_origin(hb_svc_t *s, struct lws *wsi, uint8_t *cors);

/* ---- HTTP: http.c (routing), http_resp.c (responses), http_write.c, publish.c, poll.c; the
 * calls between them are in http.h ---- */

/**
 * hb_http_on_request() - LWS_CALLBACK_HTTP: a new request's head on @c (reset by the caller):
 * its framing is checked (an ambiguous head is answered 400 and closed), then it is routed.
 * 0 (answered, streaming, or waiting for a body or for Redis), or -1 to close. http.c.
 */
int hb_http_on_request(hb_svc_t *s, hb_client_t *c, struct lws *wsi, const char *path);
/**
 * hb_http_respond() - queue a plain answer (c->ops becomes hb_simple_ops): @status, @ctype (a
 * string literal), @body (@len bytes, copied; 0: none); @close_after closes the connection after
 * it. 400/404/405/411 are counted as bad requests. Written from the writable callback (or at once
 * for a paused connection). 0, or HB_ENOMEM when the body could not be allocated (nothing
 * queued; returned to lws, it closes the connection). http_resp.c.
 */
int hb_http_respond(hb_client_t *c, unsigned status, const char *ctype, const char *body,
                    size_t len, int close_after);
/** hb_http_reroute() - route @c's GET request @path again (its headers are still attached),
 * after its ticket was redeemed (ticket.h). What the HTTP callback would return. http.c. */
int hb_http_reroute(hb_svc_t *s, hb_client_t *c, const char *path);
/** hb_http_unauthorized() - answer 401 with WWW-Authenticate: Bearer error="invalid_token"
 * and the text @body (a string, copied; counted as an auth refusal by the caller). What
 * hb_http_respond() returns. http_resp.c. */
int hb_http_unauthorized(hb_client_t *c, const char *body);
/** hb_http_sse_write() - SSE write(): one coalesced write of what is queued (lws keeps what
 * the socket does not take). 0, or HB_EIO when the connection failed. http_write.c. */
int hb_http_sse_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
/** hb_http_msse_write() - multi-topic SSE write(): hb_http_sse_write() with the client's
 * composite id line after each event; returns as it does. http_write.c. */
int hb_http_msse_write(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
/** hb_http_sse_send_now() - single-topic SSE send_now() (transport.h): frames up to 4 KiB,
 * as the writer's own direct send; the rest of a partial send through lws_write(). Stamps the
 * heartbeat's last write (s->sn_mono: only while s->send_now). http_write.c. */
int hb_http_sse_send_now(hb_svc_t *s, hb_client_t *c, hb_buf_t *b);
/** hb_http_sse_writeable() - SSE http_writeable(): what is queued is written; a stream whose
 * last frames went out (close_after_flush) closes. 0, or -1 to close. http_write.c. */
int hb_http_sse_writeable(hb_svc_t *s, hb_client_t *c, struct lws *wsi);
/**
 * hb_http_answer_now() - write @c's queued plain answer at once and have lws close the
 * connection (LWS_TO_KILL_ASYNC). For a connection lws does not read (hb_req_pause()), whose
 * POLLOUT lws 4.1 does not service. Service thread. http_write.c.
 */
void hb_http_answer_now(hb_client_t *c);
/**
 * hb_http_on_body() - LWS_CALLBACK_HTTP_BODY: a piece (@in, @len; copied) of a publish body,
 * gathered up to its Content-Length. 0; or an answer (413, 503 out of memory) and what
 * hb_http_respond() returns. Ignored for a request answered before its body. publish.c.
 */
int hb_http_on_body(hb_svc_t *s, hb_client_t *c, const char *in, size_t len);
/**
 * hb_http_on_body_done() - LWS_CALLBACK_HTTP_BODY_COMPLETION: the publish body is handed to
 * the broker (the answer comes to hb_http_on_published(); 503 when its queue is full); called
 * again with a pipelined request waiting, it stops reading and answers now. 0, or -1 to close.
 * publish.c.
 */
int hb_http_on_body_done(hb_svc_t *s, hb_client_t *c);
/** hb_http_on_published() - the broker's answer to an HTTP publish (@m borrowed): @p is freed,
 * the latency observed, and 200 {"id":...}, 400 (herald: errors) or 503 answered. publish.c. */
void hb_http_on_published(hb_svc_t *s, hb_pending_t *p, hb_msg_t *m);
/** hb_poll_on_timer() - answer the long-poll @c with what it has queued (its subscription
 * ends first), its timer cancelled; out of memory closes it. No-op unless a long-poll not
 * answered yet and not closing. poll.c. */
void hb_poll_on_timer(hb_client_t *c);

/* ws.c: ws.h */

#endif
