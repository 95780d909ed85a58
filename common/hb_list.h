#ifndef HERALD_COMMON_HB_LIST_H
#define HERALD_COMMON_HB_LIST_H

/*
 * Intrusive circular doubly linked list: a node (hb_list_t) lives inside the listed object; the
 * list head is a node of its own that points at itself when empty. O(1) insert and unlink, no
 * allocation. A node knows whether it is listed (hb_list_linked()), so unlinking twice is
 * harmless. Not thread-safe: a list and its nodes belong to one thread.
 */
#include <stddef.h>

typedef struct hb_list {
    struct hb_list *prev, *next;
} hb_list_t;

/** hb_list_container() - the object of type `type` whose member `member` is node n. */
#define hb_list_container(n, type, member) ((type *)(void *)((char *)(n) - offsetof(type, member)))

/** hb_list_init() - an empty list head, or an unlinked node. */
static inline void hb_list_init(hb_list_t *h)
{
    h->prev = h->next = h;
}

/** hb_list_empty() - 1 when head h lists nothing. */
static inline int hb_list_empty(const hb_list_t *h)
{
    return h->next == h;
}

/** hb_list_linked() - 1 when node n is in a list (it was initialised with hb_list_init()). */
static inline int hb_list_linked(const hb_list_t *n)
{
    return n->next != n;
}

/** hb_list_push_tail() - appends unlinked node n to list h. */
static inline void hb_list_push_tail(hb_list_t *h, hb_list_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

/** hb_list_push_head() - prepends unlinked node n to list h. */
static inline void hb_list_push_head(hb_list_t *h, hb_list_t *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

/** hb_list_unlink() - takes n out of its list (if it is in one); n is unlinked after. */
static inline void hb_list_unlink(hb_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    hb_list_init(n);
}

/** hb_list_first() - the first node of h, or NULL when it is empty. */
static inline hb_list_t *hb_list_first(const hb_list_t *h)
{
    return hb_list_empty(h) ? NULL : h->next;
}

/** hb_list_pop_head() - unlinks and returns the first node of h, or NULL when it is empty. */
static inline hb_list_t *hb_list_pop_head(hb_list_t *h)
{
    hb_list_t *n = hb_list_first(h);
    if (n)
        hb_list_unlink(n);
    return n;
}

/**
 * hb_list_foreach_safe() - for each node n of h, with tmp holding the next one: the body may
 * unlink (or free) n, not other nodes.
 */
#define hb_list_foreach_safe(n, tmp, h)                                                            \
    for ((n) = (h)->next, (tmp) = (n)->next; (n) != (h); (n) = (tmp), (tmp) = (n)->next)

#endif
