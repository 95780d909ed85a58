#include "hb_wheel.h"

void hb_wheel_init(hb_wheel_t *w, uint64_t now)
{
    for (size_t i = 0; i < HB_WHEEL_SLOTS; i++)
        w->slot[i].prev = w->slot[i].next = &w->slot[i];
    w->now = now;
    w->count = 0;
}

static void link_before(hb_wheel_node_t *head, hb_wheel_node_t *n)
{
    n->next = head;
    n->prev = head->prev;
    head->prev->next = n;
    head->prev = n;
}

static void unlink_node(hb_wheel_node_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

void hb_wheel_arm(hb_wheel_t *w, hb_wheel_node_t *n, uint64_t due)
{
    if (hb_wheel_armed(n))
        unlink_node(n);
    else
        w->count++;
    /* due in the past: the next tick's slot, which the next advance visits first */
    n->due = due;
    link_before(&w->slot[(due > w->now ? due : w->now + 1) & (HB_WHEEL_SLOTS - 1)], n);
}

void hb_wheel_cancel(hb_wheel_t *w, hb_wheel_node_t *n)
{
    if (!hb_wheel_armed(n))
        return;
    unlink_node(n);
    w->count--;
}

size_t hb_wheel_advance(hb_wheel_t *w, uint64_t now, hb_wheel_fire_fn fire, void *arg)
{
    size_t fired = 0;
    uint64_t from = w->now + 1, to = now;
    hb_wheel_node_t due;
    if (now < w->now) /* the clock does not go back: only what is due already */
        now = w->now;
    if (to < from) /* no new tick: the slot of "the next tick" holds what is overdue */
        from = to = w->now + 1;
    if (to - from >= HB_WHEEL_SLOTS) /* a long gap: every slot once */
        from = to - (HB_WHEEL_SLOTS - 1);
    w->now = now;
    /* the ripe timers of the passed slots go to a private list first, so that what a callback
     * arms (possibly into one of these slots) waits for the next advance */
    due.prev = due.next = &due;
    for (uint64_t t = from; t <= to; t++) {
        hb_wheel_node_t *head = &w->slot[t & (HB_WHEEL_SLOTS - 1)];
        for (hb_wheel_node_t *n = head->next, *next; n != head; n = next) {
            next = n->next;
            if (n->due > now)
                continue; /* a later turn of the wheel */
            unlink_node(n);
            link_before(&due, n);
        }
    }
    while (due.next != &due) {
        hb_wheel_node_t *n = due.next;
        unlink_node(n);
        w->count--;
        fired++;
        fire(n, arg);
    }
    return fired;
}
