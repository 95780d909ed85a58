#ifndef HERALD_EDGE_TOPICS_H
#define HERALD_EDGE_TOPICS_H

/*
 * topics.c: what service.c calls for its local topics and their subscribers. The calls the
 * transports share (hb_sub_add(), hb_sub_remove(), hb_pending_add(), hb_pending_del()) are
 * declared in service.h. Service thread only: the topic table, subscriptions and pending
 * requests are its thread's.
 */
#include "service.h"

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
