#ifndef HERALD_EDGE_TOPICS_H
#define HERALD_EDGE_TOPICS_H

/*
 * topics.c: the subscriptions the transports make and end (hb_sub_add(), hb_sub_remove()),
 * and what service.c calls for its local topics and their subscribers. Service thread only:
 * the topic table and the subscriptions are its thread's.
 */
#include "service.h"

/**
 * hb_topics_ask() - the ask of a subscription confirmed from now on (hb_ask_t). A transport
 * that confirms before it calls hb_sub_add() (SSE: the response head) takes it first and
 * passes it; @ask NULL there means now. Service thread.
 */
hb_ask_t hb_topics_ask(const hb_svc_t *s);

/**
 * hb_topics_take() - whether a request may subscribe to the @n topics (@names, @lens; @lens
 * NULL: the names are NUL-terminated) now, by
 * --topic-rate: each topic this thread has no subscriber of takes a token of the thread's
 * bucket (all or none). 1: go on (a request naming only topics the thread serves always
 * may); 0: turned away, nothing taken, counted (herald_rejected_total{reason="topic_rate"})
 * and logged (rate-limited): the caller answers it "retry later". Service thread.
 */
int hb_topics_take(hb_svc_t *s, const char *const *names, const size_t *lens, int n);

#define HB_SUB_TAIL 1  /* hb_sub_add(): only the tail cursor (a long-poll without since) */
#define HB_SUB_FRESH 2 /* hb_sub_add(): read Redis even at the live position */
/**
 * hb_sub_add() - subscribe @c to topic (@topic, @len; validated by the caller, copied): the
 * local topic is made (and the broker told) on its first subscriber. With @since (copied) or
 * @flags & HB_SUB_TAIL the subscription resumes: history is read (hread.c) and live events are
 * held until it caught up. A cursor at the topic's live position is answered without a read
 * (topic_at(), history.c), unless @flags has HB_SUB_FRESH: a long-poll answered at once must
 * hold what was stored before it, which the live delivery may not have brought yet. Without
 * either it starts live, and gets every event stored after @ask (NULL: now): should its
 * thread join the topic after events went to other threads, it reads them from the time of
 * @ask less a clock margin (hb_topics_ask).
 * The subscription (owned by @c, freed by hb_sub_remove() or the cleanup); never NULL (aborts
 * on allocation failure). A refused SUB request is retried by housekeeping.
 */
hb_sub_t *hb_sub_add(hb_client_t *c, const char *topic, size_t len, const hb_cursor_t *since,
                     int flags, const hb_ask_t *ask);
/**
 * hb_sub_remove() - end @u (of @c) and free it: its history read is cancelled, its held events
 * released, the broker told when it was the topic's last. Never while a delivery to @u is on
 * the stack. Cannot fail.
 */
void hb_sub_remove(hb_client_t *c, hb_sub_t *u);

/**
 * hb_topics_on_event() - a live EVENT from the broker (borrowed: the caller keeps its ref):
 * queued to every subscription of its topic that is not closing, in ID order and never twice;
 * a resuming subscription holds it (a ref) until its history caught up. A gap in the topic's
 * hand-off sequence closes every client of the topic ("event lost in hand-off", 1011: they
 * resume from history). A topic without local subscribers ignores it. Nothing is returned;
 * a client over its queue bounds is cut off (hb_client_push()).
 */
void hb_topics_on_event(hb_svc_t *s, hb_msg_t *m);

/**
 * hb_topics_on_history() - a page of @u's history (@m borrowed), after hb_hread_answered():
 * the gap notice first (trimmed/reset), then its events; then the next page (paced), or the
 * held live events merged after it and the subscription live. A long-poll whose answer is
 * full stops there (u->poll_full). A failed read closes the client ("history read failed",
 * 1011). @u's client is not closing.
 */
void hb_topics_on_history(hb_svc_t *s, hb_sub_t *u, hb_msg_t *m);

/**
 * hb_topics_retry() - from the housekeeping tick while s->topics_dirty: send again the
 * SUB/UNSUB requests the broker queue refused, and free the topics nobody wants any more.
 * A request refused again stays dirty for the next tick.
 */
void hb_topics_retry(hb_svc_t *s);

#endif
