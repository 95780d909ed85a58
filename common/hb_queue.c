#include "hb_queue.h"

#include <pthread.h>
#include <stdlib.h>

#include "hb_err.h"
#include "hb_mem.h"

/*
 * A ring of `cap` slots: items live at head, head + 1, ... (mod cap), `count` of them.
 * Owned by whoever created it; producers on any thread, one consumer.
 */
struct hb_queue {
    pthread_mutex_t lock;
    void **slots; /* {lock} */
    size_t head;  /* {lock} index of the oldest item */
    size_t count; /* {lock} */
    size_t cap;   /* immutable */
};

hb_queue_t *hb_queue_new(size_t cap)
{
    hb_queue_t *q = hb_xmalloc(sizeof(*q));
    /* A zero capacity is not useful, but it is safe: every push fails with HB_ELIMIT. */
    q->slots = hb_xcalloc(cap, sizeof(void *));
    q->head = 0;
    q->count = 0;
    q->cap = cap;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        abort();
    return q;
}

void hb_queue_free(hb_queue_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q);
}

int hb_queue_push(hb_queue_t *q, void *item, int *was_empty)
{
    int rc = HB_OK;
    pthread_mutex_lock(&q->lock);
    if (q->count >= q->cap) {
        rc = HB_ELIMIT;
        if (was_empty)
            *was_empty = 0;
    } else {
        size_t tail = q->head + q->count;
        if (tail >= q->cap)
            tail -= q->cap;
        q->slots[tail] = item;
        if (was_empty)
            *was_empty = q->count == 0;
        q->count++;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

size_t hb_queue_pop(hb_queue_t *q, void **items, size_t max)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count < max ? q->count : max;
    for (size_t i = 0; i < n; i++) {
        items[i] = q->slots[q->head];
        q->slots[q->head] = NULL;
        if (++q->head == q->cap)
            q->head = 0;
    }
    q->count -= n;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t hb_queue_len(hb_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t hb_queue_cap(const hb_queue_t *q)
{
    return q->cap;
}
