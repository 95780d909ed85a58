#ifndef HERALD_EDGE_HANDOFF_H
#define HERALD_EDGE_HANDOFF_H

/*
 * The hand-off between the broker thread (Redis) and the service threads (clients): the only
 * place the two meet. The messages the broker sends (hb_msg_t) and the requests the service
 * threads send (hb_req_t), the history reads' cancel flags both hold, the two bounded queues'
 * push-and-wake functions, and the few figures one thread reads of the other (client counts,
 * the Redis master). handoff.c calls into neither thread's files: each side calls it. Every
 * function says which thread may call it.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hb_buf.h"
#include "hb_event.h"
#include "hb_id.h"
#include "hb_topic.h"

struct hb_svc;
struct hb_broker;

/*
 * Each message travels
 * through a bounded hb_queue: requests from every service thread share one queue to the broker;
 * each service thread has its own queue from the broker.
 */

typedef enum {
    HB_MSG_EVENT = 1, /* a topic's next event (live or backfilled), or a topic-wide gap notice */
    HB_MSG_HISTORY,   /* one page of history for one resuming subscription */
    HB_MSG_PUBLISHED, /* the outcome of one HTTP/WS publish request */
    HB_MSG_TICKET,    /* the outcome of one ticket issue or redemption (edge/ticket.h) */
} hb_msg_type_t;

/*
 * One message from the broker. HB_MSG_EVENT messages are shared by all service threads
 * (refs = number of queues it was pushed to); the last hb_msg_unref() frees it.
 * Owner: whoever holds a reference; immutable once pushed.
 */
typedef struct hb_msg {
    hb_msg_type_t type;
    atomic_uint refs;
    char topic[HB_TOPIC_MAX + 1];
    size_t topic_len;
    /* HB_MSG_EVENT */
    uint64_t seq; /* per-topic sequence of EVENT messages, to detect a dropped one */
    int control;  /* 1: a gap notice (no id; does not move cursors) */
    /* 1: no event, only the topic's sequence as it stands (seq not advanced): pushed to a
     * thread that was dropped an event of the topic (queue full), so that it learns of the
     * drop now rather than at the topic's next event (btopic__resync) */
    int sync;
    /* 1: no event: this thread's SUB of the topic took effect here, after the topic had
     * messages for other threads since the SUB's ask (btopic__join): its clients that asked
     * before read what they missed; what the broker emits for the topic from now on reaches
     * the thread, starting at seq + 1 */
    int join;
    hb_ev_t ev;
    /* HB_MSG_HISTORY, HB_MSG_PUBLISHED */
    int thread;         /* the service thread that asked */
    uint64_t client_id; /* the subscription (history) or client (publish) it answers */
    int error;          /* 1: Redis failed; history: the client should reconnect */
    /* publish, with error: why, decided once by the broker (each transport maps it to its
     * answer: HTTP 400 / 503 / 504, WebSocket bad_request / unavailable / outcome_unknown) */
    enum {
        HB_PUB_NOT_STORED = 0, /* Redis unavailable, or refused it before running */
        HB_PUB_REFUSED,        /* Herald's function refused the publisher's input */
        HB_PUB_UNKNOWN,        /* sent, and no answer (or none that says): may be stored */
    } outcome;
    hb_gap_t gap;
    int more; /* 1: the page was full; ask again from the last id */
    /* has_passed: an entry of the page was passed over (history__parse_entry), passed the
     * last such: the reader's position moves past it even when no event follows it */
    int has_passed;
    hb_id_t passed;
    /* 1: answered from where the broker's live delivery of the topic stands (history.c): tail
     * is that position, and every event after it reaches this thread after this message */
    int live_at;
    size_t n;
    hb_ev_t *evs;             /* n events */
    char tail[HB_CURSOR_MAX]; /* the topic's newest cursor ("" when the stream is empty) */
    char result[256];         /* HB_MSG_PUBLISHED: the stream id, or the error text */
    int duplicate;    /* HB_MSG_PUBLISHED: its idempotency key was stored already: result is the
                       * ID of the event stored then, and nothing was stored now */
    size_t pub_bytes; /* HB_MSG_PUBLISHED: its payload bytes in the broker's backlog */
    char *blob;       /* HB_MSG_TICKET redeemed: the token (malloc'd, NUL-terminated) */
} hb_msg_t;

/** hb_msg_new() - a zeroed message of `type` for (topic, topic_len) (copied) with one
 * reference, owned by the caller; aborts on OOM. Any thread (the broker makes them). */
hb_msg_t *hb_msg_new(hb_msg_type_t type, const char *topic, size_t topic_len);
/** hb_msg_ref() - add a reference; returns m. Any thread (atomic). */
hb_msg_t *hb_msg_ref(hb_msg_t *m);
/** hb_msg_unref() - drop a reference; the last frees the buffers it holds. Accepts NULL.
 * Any thread (atomic). */
void hb_msg_unref(hb_msg_t *m);

typedef enum {
    HB_REQ_SUB = 1, /* this service thread now has subscribers for topic */
    HB_REQ_UNSUB,   /* ... and now has none */
    HB_REQ_HISTORY, /* read history after cursor for client_id, reply with HB_MSG_HISTORY */
    HB_REQ_PUBLISH, /* run herald_publish, reply with HB_MSG_PUBLISHED */
    /* tickets (edge/ticket.h): store ticket `topic` -> payload (a token), or take it (GETDEL);
     * each is answered with one HB_MSG_TICKET */
    HB_REQ_TICKET_ISSUE,
    HB_REQ_TICKET_REDEEM,
} hb_req_type_t;

/* A request from a service thread to the broker; the broker frees it. */
/*
 * A history read's cancel flag (edge/hread.c), shared by the service thread that asked and the
 * broker: the service sets it when the subscription goes away; the broker then skips the Redis
 * read if it has not started, or drops the reply unencoded. Either thread drops its reference.
 */
typedef struct hb_hflag hb_hflag_t;
/** hb_hflag_new() - a clear flag with two references (asker and broker); aborts on OOM. */
hb_hflag_t *hb_hflag_new(void);
/** hb_hflag_cancel() - set the flag. Any thread; accepts NULL. */
void hb_hflag_cancel(hb_hflag_t *f);
/** hb_hflag_cancelled() - 1 once set, 0 otherwise (and for NULL). Any thread. */
int hb_hflag_cancelled(const hb_hflag_t *f);
/** hb_hflag_unref() - drop one reference; the last frees it. Any thread; accepts NULL. */
void hb_hflag_unref(hb_hflag_t *f);

/* When a client asked for a subscription: the broker's emit generation (hb_edge_t.emit_gen)
 * and the wall clock in ms, both read before the client was told it is subscribed
 * (hb_topics_ask(), topics.h). */
typedef struct hb_ask {
    uint64_t gen;
    uint64_t ms;
} hb_ask_t;

typedef struct hb_req {
    hb_req_type_t type;
    int thread;
    char topic[HB_TOPIC_MAX + 1];
    size_t topic_len;
    uint64_t client_id;
    /* SUB: the ask of the subscriber that made the thread send it (btopic__join): the broker
     * hands the thread a join when the topic had messages for other threads since its
     * generation, and a topic new to the broker is refilled from its time, not from when the
     * SUB arrived */
    hb_ask_t ask;
    hb_cursor_t cursor; /* HISTORY; id ULLONG_MAX-ULLONG_MAX with tail_only: only the tail */
    int tail_only;
    int fresh; /* HISTORY: read Redis even at the broker's live position (history.c) */
    /* HISTORY paging (edge/hread.c): entries to read (0: --history-batch; never more), and
     * bytes of encoded events after which the page ends early with `more` (0: no limit) */
    uint32_t count;
    size_t max_bytes;
    hb_hflag_t *cancel; /* HISTORY: one reference, owned by the request (NULL: none) */
    char event[HB_EVENT_NAME_MAX + 1]; /* PUBLISH */
    char idem[HB_IDEM_KEY_MAX + 1];    /* PUBLISH: its idempotency key ("": none) */
    char *payload;                     /* PUBLISH, malloc'd, owned by the request */
    size_t payload_len;
} hb_req_t;

/** hb_req_free() - free a request, its payload and its cancel flag reference; accepts NULL.
 * Any thread (the broker, or the asker when the push failed). */
void hb_req_free(hb_req_t *q);

/* ---- the queues ---- */

/**
 * hb_svc_push() - broker thread: hand m (taking one reference) to service thread s and wake it
 * when its queue was empty. 0, or HB_ELIMIT when the queue is full (the reference is still the
 * caller's, to drop; the caller counts the drop).
 */
int hb_svc_push(struct hb_svc *s, hb_msg_t *m);
/*
 * Slots of a service thread's queue beyond --service-queue-max that only answers take: the
 * answers a thread is owed are bounded by what it asked (16 history reads at a time, a
 * connection's publishes, tickets at --ticket-rate), while events come in bursts that fill the
 * queue, and an answer lost there left its asker waiting (a history read 60 s, then its client
 * closed).
 */
#define HB_SVC_ANSWER_RESERVE 65536

/**
 * hb_svc_answer() - broker thread: hand an answer m (a history page, a publish's or a ticket's
 * result), whose only reference is the caller's, to service thread s, in the same order as its
 * events, taking the queue's reserve (HB_SVC_ANSWER_RESERVE) when the events filled the rest.
 * Past the reserve it is dropped, counted in herald_queue_drops_total (the asker's own timeout
 * ends its wait).
 */
void hb_svc_answer(struct hb_svc *s, hb_msg_t *m);
/**
 * hb_svc_request() - service thread s: hand q (owned, always taken) to the broker thread and
 * wake it; q->thread is set to s's index. 0; HB_ELIMIT when the broker's queue is full
 * (counted as a request drop) or HB_EIO when the broker is gone (shutdown): q is freed and no
 * answer will come.
 */
int hb_svc_request(struct hb_svc *s, hb_req_t *q);
/** hb_broker_wake() - any thread: wake the broker (it pops edge->to_broker). */
void hb_broker_wake(struct hb_broker *b);

/* ---- what one thread reads or asks of the other ---- */

/** hb_svc_drain() - any thread: ask service thread s to drain its clients and stop. */
void hb_svc_drain(struct hb_svc *s);
/** hb_svc_clients() - any thread: service thread s's client count (approximate). */
size_t hb_svc_clients(struct hb_svc *s);
/**
 * hb_broker_master() - any thread: the Redis master in use as "host:port" into out[cap] (""
 * before the first; truncated to cap), and in *switches (NULL: not wanted) how often it
 * changed. Reads under the broker's master_lock (bconn.c writes it).
 */
void hb_broker_master(struct hb_broker *b, char *out, size_t cap, unsigned long long *switches);

#endif
