#ifndef HERALD_EDGE_BROKER_PRIV_H
#define HERALD_EDGE_BROKER_PRIV_H

/*
 * Internals shared by the files of the broker thread, top to bottom (each calls only files
 * below it; the connection files call up only through b->ev, rc.h):
 *   broker.c  - the loop, the request inbox, tick, drain, signals, lifecycle;
 *   bsub.c    - subscription state: position read before SUBSCRIBE, (un)subscribe, confirms;
 *   brefill.c - the refill (backfill) of a resubscribed topic, the position read after it;
 *   blost.c   - the check for events Redis lost in a failover;
 *   history.c - clients' history requests and the decoding of herald_history replies;
 *   bpos.c    - a topic's stream position and the context of reads made for it;
 *   btopic.c  - the topic registry, live delivery;
 *   bready.c  - readiness (broker.h);
 *   bconn.c   - the reconnecting cmd/sub/ing connections and following the master.
 * Every function here runs on the broker thread only and never blocks. The types they share
 * with the rest of the broker thread (hb_broker_t, btopic_t, hreq_t, hb_conn_t) are in
 * broker.h.
 */
#include <stddef.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_err.h"

/** broker__ms_tv() - ms as a struct timeval (for event_add()). ms >= 0. */
static inline struct timeval broker__ms_tv(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* ---- btopic.c: the topic registry and live delivery (the bottom of the topic files) ---- */

/**
 * btopic__get() - the topic named name[0..len) (len <= HB_TOPIC_MAX, validated by the caller),
 * or NULL when there is none and !create. With create, a missing topic is made (T_IDLE, nobody
 * wanting it, asked_at/asked_ms now) and counted in stats.topics. The registry b->topics owns
 * it. Aborts on OOM.
 */
btopic_t *btopic__get(hb_broker_t *b, const char *name, size_t len, int create);
/**
 * btopic__free() - removes t from the registry and frees it with its held live events and its
 * waiting history requests (dropped unanswered: their cancel flags are released). Replies
 * still out for t find no topic by name (or one with another sub_id) and are ignored.
 */
void btopic__free(hb_broker_t *b, btopic_t *t);
/**
 * btopic__emit() - stamps m with t's next sequence number and pushes a reference to every
 * service thread that wants t. Takes the caller's reference to m. A full service queue drops
 * the event for that thread (counted in stats.queue_drops, logged rate-limited): its clients
 * resume from history.
 */
void btopic__emit(hb_broker_t *b, btopic_t *t, hb_msg_t *m);
/**
 * btopic__join() - service thread i asked for t (HB_REQ_SUB) for a subscriber that asked at
 * @ask (read before it was told it is subscribed). Before t's first subscription is confirmed,
 * t counts as asked for at ask->ms when that is earlier than it was (asked_ms, asked_at): the
 * first refill starts from the earliest ask, however late the SUB reached this thread. Adds i
 * to t->want; when t had messages for other threads since (t->last_gen > ask->gen), they may
 * have been stored after that subscriber asked: the thread is pushed a join message
 * (hb_msg_t.join, at the topic's sequence), and its subscribers read what they missed
 * (topics.c). A full queue defers the join (t->join_wait: nothing is emitted to the thread
 * meanwhile) to the broker's tick (btopic__rejoin). Broker thread.
 */
void btopic__join(hb_broker_t *b, btopic_t *t, int i, const hb_ask_t *ask);
/** btopic__rejoin() - from the broker's tick, for t with join_wait bits: the deferred joins
 * go again (those of threads that left t are dropped). */
void btopic__rejoin(hb_broker_t *b, btopic_t *t);
/**
 * btopic__resync() - from the broker's tick, for a topic with t->unsynced bits: pushes each
 * such service thread a sync message (the topic's sequence as it stands) so that it notices an
 * event dropped on a full queue now, not at the topic's next event (which may be hours away),
 * and its clients resume from history. A queue still full is tried again at the next tick.
 */
void btopic__resync(hb_broker_t *b, btopic_t *t);
/**
 * btopic__emit_gap() - emits a gap notice (reset or trimmed) on t and logs it. Nothing is sent
 * when the notice cannot be encoded.
 */
void btopic__emit_gap(hb_broker_t *b, btopic_t *t, hb_gap_t gap);
/**
 * btopic__deliver() - emits one event of t in ID order: an event at or before t->last is
 * dropped (already delivered), an epoch other than t->epoch first emits a reset notice.
 * Updates t->last/epoch. The strings are copied (encoded); an epoch longer than HB_EPOCH_MAX
 * or an encoding failure drops the event.
 */
void btopic__deliver(hb_broker_t *b, btopic_t *t, const hb_id_t *id, const char *epoch,
                     size_t eplen, const char *ev, size_t evlen, const char *data, size_t dlen);
/**
 * btopic__want_refill() - marks subscribed topic t to be refilled from where its delivery
 * stands (its live events held meanwhile): 1 when marked, for the caller to start it
 * (brefill__kick) or leave it to the broker's tick (brefill__retry, within a second); 0 when
 * it has no position yet or a refill is under way. Broker thread.
 */
int btopic__want_refill(btopic_t *t);
/**
 * btopic__pass() - moves t's delivery position past the stream entry id of `epoch` that is not
 * delivered (history__parse_entry() refused it) as btopic__deliver() would for an event (a
 * reset notice on an epoch change), without emitting it: the refill's next page reads on
 * after it. Broker thread.
 */
void btopic__pass(hb_broker_t *b, btopic_t *t, const hb_id_t *id, const char *epoch, size_t eplen);

/* ---- bsub.c: subscription state (the top of the topic files) ---- */

/**
 * btopic__subscribe() - subscribes t's live channel (t->state T_SUBSCRIBING), after a position
 * read first for a topic never subscribed (brefill__prior_position_read: the reply subscribes),
 * through hb_rc_subscribe() (the cluster's sharded subscribers in cluster mode). No-op while
 * the sub connection is down (its connect subscribes every wanted topic).
 */
void btopic__subscribe(hb_broker_t *b, btopic_t *t);
/**
 * btopic__unsubscribe() - unsubscribes t's live channel (T_UNSUBSCRIBING); the confirmation
 * (hb_broker_topic_unsubscribed) resubscribes or frees t.
 */
void btopic__unsubscribe(hb_broker_t *b, btopic_t *t);
/**
 * btopic__on_sub() - hiredis reply callback of the sub connection (b->on_sub_cb): the canary's
 * replies, live messages (hb_broker_on_live) and (un)subscribe confirmations. ac->data is b;
 * reply is owned by hiredis (NULL on disconnect: ignored).
 */
void btopic__on_sub(redisAsyncContext *ac, void *reply, void *priv);
/**
 * btopic__on_sub_up() - the sub connection is up (b->ev->sub_up, from bconn.c): subscribes
 * every wanted topic again (btopic__subscribe), in registry order.
 */
void btopic__on_sub_up(hb_broker_t *b);
/**
 * btopic__on_sub_down() - the sub connection went (b->ev->sub_down, from bconn.c): every
 * topic goes back to T_IDLE with no refill read in flight; those nobody wants are freed.
 */
void btopic__on_sub_down(hb_broker_t *b);
/**
 * brefill__prior_position_read() - reads the stream position of a topic before its first
 * SUBSCRIBE (its reply subscribes or frees t). 1 when the read is out (sent now or before): the
 * reply subscribes; else the caller subscribes at once: 0 when t needs none (subscribed, or
 * its position known), HB_EIO when it cannot be sent (no cmd connection, or hb_rc_fcall()
 * refused it). Broker thread.
 */
int brefill__prior_position_read(hb_broker_t *b, btopic_t *t);

/* ---- brefill.c: the refill of a topic ---- */

/**
 * brefill__kick() - moves t on when it is subscribed and commands can be sent: reads its
 * position (once per subscription), runs the lost check and the refill when it needs one, and
 * sends the history requests waiting for the subscription (history__send). No-op otherwise; a
 * command that cannot be sent leaves the step to the next kick.
 */
void brefill__kick(hb_broker_t *b, btopic_t *t);
/**
 * brefill__retry() - from the broker's tick: kicks t when a step of its refill (the position
 * read, a history page) is due and nothing is out for it, so a read Redis answered with an
 * error is sent again instead of leaving t holding its live events for good.
 */
void brefill__retry(hb_broker_t *b, btopic_t *t);

/**
 * brefill__on_data_lost() - Redis lost its data since the last cmd connection (bconn.c's
 * dataset check, before the new connection's reads): every wanted topic whose stream's epoch
 * this edge does not know (nothing delivered, and no position read of an existing stream) is
 * sent a reset notice now; its subscribers may have missed events of the lost stream, and no
 * later read can tell. The others learn it from their refill's epoch check.
 */
void brefill__on_data_lost(hb_broker_t *b);

/* ---- blost.c: events lost by Redis in a failover ---- */

/**
 * blost__check() - sends the lost-events check of t (once per resubscription, before its
 * refill), by SHA1 unless by_text, with cb (brefill.c's) as its reply callback and a posreq_t
 * of t as its priv (cb frees it: brefill__reply_topic). 0 when sent (t->backfill_inflight
 * set), HB_EIO when hb_rc_eval() could not send it (cb is not called; t->lost_checked set: the
 * refill goes on without it). Broker thread.
 */
int blost__check(hb_broker_t *b, btopic_t *t, int by_text, redisCallbackFn *cb);
/**
 * blost__reply() - the check's reply r (not NULL) for t, the current subscription's: 1 when
 * Redis did not know the script and the check went again by text (blost__check with cb: wait
 * for that reply); else 0 with t->lost_checked set and, when this edge delivered events Redis
 * lost, a trimmed notice emitted on t (an error reply is logged, rate-limited): the caller
 * moves the refill on (brefill__kick).
 */
int blost__reply(hb_broker_t *b, btopic_t *t, redisReply *r, redisCallbackFn *cb);

/* ---- history.c: history requests and herald_history replies ---- */

/**
 * history__send() - sends a client's history request (taking q: it is freed once answered).
 * The answer always goes to the client's service thread (a full queue drops it, counted in
 * stats.queue_drops): empty when q was cancelled, an error when the read could not be sent or
 * failed.
 */
void history__send(hb_broker_t *b, hreq_t *q);
/**
 * history__reply_ok() - 1 when r (NULL: disconnected) has the shape of a herald_history reply,
 * {epoch (<= HB_EPOCH_MAX), gap, entries, last id}, else 0.
 */
int history__reply_ok(redisReply *r);
/** history__gap() - the gap a herald_history reply's gap string g names (none if unknown). */
hb_gap_t history__gap(redisReply *g);
/* One entry of a herald_history page (history__parse_entry()): pointers into the reply. */
typedef struct hist_ent {
    hb_id_t id;
    const char *d;  /* payload ("" when absent), dlen bytes */
    const char *ev; /* event name, NULL when absent */
    size_t dlen, evlen;
} hist_ent_t;
/**
 * history__parse_entry() - the parts of entry e ([id, [field, value, ...]]) of topic's history
 * page into *out. Broker thread. 0: an event to deliver. HB_ELIMIT: an entry Herald's store
 * would have refused (its payload over the library's --max-message-bytes, which herald_history
 * leaves out, field x; an event name hb_event_name_validate() refuses): out->id is
 * set and readers pass over it; counted (stats.stored_skipped) and logged here. HB_EPROTO: not
 * an entry (no ID to pass).
 */
int history__parse_entry(hb_broker_t *b, const char *topic, size_t tlen, redisReply *e,
                         hist_ent_t *out);
/**
 * history__more() - 1 when the herald_history reply r (history__reply_ok) may have entries
 * after its page: `count` of them were asked and came, or herald_history ended the page at its
 * byte bound (its last ID is before the stream's last), else 0. Broker thread.
 */
int history__more(redisReply *r, long count);
/**
 * history__page_bytes() - the payload bytes one herald_history page may hold, the bound Redis
 * applies before it answers: a client page's (hb_page_budget() of --client-queue-bytes).
 */
size_t history__page_bytes(const hb_broker_t *b);
/**
 * history__batch() - entries per history read: --history-batch, but never more than half a
 * client queue (at least 1).
 */
long history__batch(const hb_broker_t *b);

/* ---- bconn.c: the reconnecting connections and the master ---- */

/** bconn__init() - sets up c (named name, a constant) with its timers, disconnected. */
void bconn__init(hb_broker_t *b, hb_conn_t *c, const char *name);
/**
 * bconn__start() - connects c to the master (cluster mode: the ingest address) unless it is
 * connected, connecting or the broker is stopping; a failure, or a host name still being
 * resolved, schedules a retry with backoff. No-op before the master is known.
 */
void bconn__start(hb_broker_t *b, hb_conn_t *c);
/** bconn__on_resolved() - resolver callback (arg: b): connections waiting for a retry go now. */
void bconn__on_resolved(void *arg);
/**
 * bconn__on_switch() - b->switch_ev callback (arg: b): moves the connections to the current
 * master now. Runs from the loop, never inside a callback of the contexts it frees.
 */
void bconn__on_switch(evutil_socket_t fd, short what, void *arg);

/* ---- bpos.c: a topic's stream position, the context of reads made for it ---- */

/* A position read's or backfill-path request's context (the priv of its reply, owned by the
 * request until its callback frees it): the topic and the confirmation of its subscription it
 * was made for. */
typedef struct posreq {
    unsigned long long sub_id;
    char name[HB_TOPIC_MAX + 1];
} posreq_t;

/** brefill__posreq_new() - a request context for t's current subscription. Aborts on OOM. */
posreq_t *brefill__posreq_new(const btopic_t *t);
/**
 * brefill__reply_topic() - the topic a backfill-path reply is for (frees q), with its request
 * no longer in flight; NULL when the topic is gone or no longer on the subscription q was sent
 * for.
 */
btopic_t *brefill__reply_topic(hb_broker_t *b, posreq_t *q);
/**
 * brefill__set_pos() - records the position a herald_history reply saw (its last ID `last`,
 * "" when the stream does not exist, and epoch `ep`; both checked by history__reply_ok) as t's
 * subscription position, once per subscription and only while T_SUBSCRIBED.
 */
void brefill__set_pos(btopic_t *t, const redisReply *last, const redisReply *ep);
/**
 * brefill__record_pos() - records the position a herald_history reply saw (its last ID `last`,
 * "" when the stream does not exist, and epoch `ep`; both checked by history__reply_ok) as t's
 * position (have_pos), whatever its state. A last ID that does not parse records nothing.
 */
void brefill__record_pos(btopic_t *t, const redisReply *last, const redisReply *ep);
/**
 * brefill__position() - where delivery of t stands: the last event delivered (last, epoch), or
 * the subscription's position when that is later in the same stream or nothing was delivered.
 * 1 with *id and *epoch (t's, valid while t is unchanged) set, 0 when t has neither. What a
 * refill reads from; once t's refill is done (!need_backfill) on a confirmed subscription,
 * every event stored after it reaches the service threads live.
 */
int brefill__position(const btopic_t *t, hb_id_t *id, const char **epoch);
/** brefill__pos_av, brefill__pos_al - a position read's herald_history arguments (since "$",
 * tail only; count 1), for hb_rc_fcall(). Constant. */
extern const char *brefill__pos_av[3];
extern const size_t brefill__pos_al[3];

#endif
