#ifndef HERALD_COMMON_HB_QUEUE_H
#define HERALD_COMMON_HB_QUEUE_H

#include <stddef.h>

/*
 * A bounded multi-producer, single-consumer queue of pointers guarded by one mutex: the only
 * way Herald's threads talk. A full queue never blocks its producer: hb_queue_push() fails
 * with HB_ELIMIT and the caller counts the drop. The queue does not own its items.
 */
typedef struct hb_queue hb_queue_t;

/** hb_queue_new() - a queue holding at most `cap` items (cap >= 1); aborts on OOM. */
hb_queue_t *hb_queue_new(size_t cap);
/**
 * hb_queue_new_reserved() - as hb_queue_new(), plus `reserve` slots beyond `cap` that only
 * hb_queue_push_reserved() takes: room for what the consumer is owed (answers to its own
 * requests, which it bounds) that a burst of ordinary items must not crowd out. Aborts on OOM.
 */
hb_queue_t *hb_queue_new_reserved(size_t cap, size_t reserve);
/** hb_queue_free() - free the queue (not the items still in it); accepts NULL. */
void hb_queue_free(hb_queue_t *q);
/**
 * hb_queue_push() - append one item. Returns 0, or HB_ELIMIT when full (item not taken).
 * Any thread. *was_empty (if not NULL) is set to 1 when the queue was empty before, so the
 * producer wakes the consumer only on that edge.
 */
int hb_queue_push(hb_queue_t *q, void *item, int *was_empty);
/**
 * hb_queue_push_reserved() - as hb_queue_push(), but fails (HB_ELIMIT) only when the queue
 * holds cap + reserve items: it may take the reserve. Same FIFO as hb_queue_push(). Any thread.
 */
int hb_queue_push_reserved(hb_queue_t *q, void *item, int *was_empty);
/** hb_queue_pop() - pop up to `max` items into items[] in FIFO order; returns the count. */
size_t hb_queue_pop(hb_queue_t *q, void **items, size_t max);
/** hb_queue_len() - items queued now (a snapshot). Any thread. */
size_t hb_queue_len(hb_queue_t *q);
/** hb_queue_cap() - the capacity given at creation (without the reserve). */
size_t hb_queue_cap(const hb_queue_t *q);

#endif
