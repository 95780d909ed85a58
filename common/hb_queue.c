#include "hb_queue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "hb_err.h"
#include "hb_mem.h"

/*
 * A ring of `size` slots (cap + the reserve): items live at head, head + 1, ... (mod size),
 * `count` of them. Owned by whoever created it; producers on any thread, one consumer.
 */
struct hb_queue {
    pthread_mutex_t lock;
    void **slots; /* {lock} */
    size_t head;  /* {lock} index of the oldest item */
    size_t count; /* {lock} */
    size_t cap;   /* immutable: what hb_queue_push() fills */
    size_t size;  /* immutable: cap + reserve, what hb_queue_push_reserved() fills */
};

hb_queue_t *hb_queue_new_reserved(size_t cap, size_t reserve)
{
    hb_queue_t *q = hb_xmalloc(sizeof(*q));
    /* A zero capacity is not useful, but it is safe: every push fails with HB_ELIMIT. */
    if (reserve > SIZE_MAX - cap)
        abort(); /* a size no machine has; calloc refuses size * 8 past SIZE_MAX the same way */
    q->size = cap + reserve;
    q->slots = hb_xcalloc(q->size ? q->size : 1, sizeof(void *));
    q->head = 0;
    q->count = 0;
    q->cap = cap;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        abort();
    return q;
}

hb_queue_t *hb_queue_new(size_t cap)
{
    return hb_queue_new_reserved(cap, 0);
}

void hb_queue_free(hb_queue_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q);
}

/* Appends when fewer than `limit` items are queued. */
static int push_below(hb_queue_t *q, void *item, int *was_empty, size_t limit)
{
    int rc = HB_OK;
    pthread_mutex_lock(&q->lock);
    if (q->count >= limit) {
        rc = HB_ELIMIT;
        if (was_empty)
            *was_empty = 0;
    } else {
        size_t tail = q->head + q->count;
        if (tail >= q->size)
            tail -= q->size;
        q->slots[tail] = item;
        if (was_empty)
            *was_empty = q->count == 0;
        q->count++;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int hb_queue_push(hb_queue_t *q, void *item, int *was_empty)
{
    return push_below(q, item, was_empty, q->cap);
}

int hb_queue_push_reserved(hb_queue_t *q, void *item, int *was_empty)
{
    return push_below(q, item, was_empty, q->size);
}

size_t hb_queue_pop(hb_queue_t *q, void **items, size_t max)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->count < max ? q->count : max;
    for (size_t i = 0; i < n; i++) {
        items[i] = q->slots[q->head];
        q->slots[q->head] = NULL;
        if (++q->head == q->size)
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
