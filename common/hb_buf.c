#include "hb_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"

hb_buf_t *hb_buf_new(size_t cap, size_t headroom)
{
    /* One allocation: header, headroom, then cap data bytes. cap may come from input. */
    if (headroom > SIZE_MAX - cap)
        return NULL;
    size_t room = headroom + cap;
    if (room > SIZE_MAX - sizeof(hb_buf_t))
        return NULL;
    hb_buf_t *b = malloc(sizeof(hb_buf_t) + room);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = 0;
    b->cap = cap;
    b->headroom = headroom;
    b->stamp_ms = 0;
    return b;
}

hb_buf_t *hb_buf_from(const void *p, size_t len)
{
    hb_buf_t *b = hb_buf_new(len, 0);
    if (b == NULL)
        return NULL;
    if (len)
        memcpy(b->mem, p, len);
    b->len = len;
    return b;
}

hb_buf_t *hb_buf_ref(hb_buf_t *b)
{
    /* Taking a ref needs no ordering: the caller already holds one. */
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void hb_buf_unref(hb_buf_t *b)
{
    if (b == NULL)
        return;
    /*
     * Release makes this thread's reads of the buffer happen before the free; the acquire
     * on the last drop makes every other thread's reads happen before it too.
     */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

int hb_buf_append(hb_buf_t *b, const void *p, size_t len)
{
    if (len > b->cap - b->len)
        return HB_ELIMIT;
    if (len) {
        memcpy(hb_buf_data(b) + b->len, p, len);
        b->len += len;
    }
    return HB_OK;
}
