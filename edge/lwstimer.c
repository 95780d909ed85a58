/*
 * libwebsockets 4.1 keeps every timer of a service thread (each connection's timeout, lws'
 * own timers, ours) in one list sorted by deadline, and lws_dll2_add_sorted() inserts by
 * walking it from the head over every timer due before the new one. After a burst of
 * long-poll answers, each kept-alive connection's idle timeout (lws_http_transaction_completed(),
 * the latest deadline in the list) walked the idle timeouts of all answered before it: O(n^2)
 * over the burst (17,400 idle connections: 3,500 inserts a second over lists of up to 1,000
 * nodes, 7 % of the edge's idle CPU; 5,000 polls answered at once took 290 ms).
 *
 * This definition replaces lws' own for the process (lws calls it through its PLT, and the
 * executable's definition comes first): it walks from both ends at once, which finds the same
 * place (before the first node that does not sort before it), so every list keeps the order
 * lws' would give it, in as many steps as the nearer end is away: a kept-alive connection's
 * idle timeout (the latest) goes in at the tail, a new request's header timeout (earlier than
 * every idle one) near the head. Only for the lws series it was written against: another series
 * keeps its own. Any thread, on a list the caller owns (as lws').
 */
#include <libwebsockets.h>

#if LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR == 1

#ifdef HB_LWSTIMER_COUNT
/* inserts made here: tests/unit/edge/test_lwstimer.c builds this file with it, to see that lws'
 * own calls arrive here */
unsigned long hb_lwstimer_calls;
#endif

void lws_dll2_add_sorted(lws_dll2_t *d, lws_dll2_owner_t *own,
                         int (*compare)(const lws_dll2_t *d, const lws_dll2_t *i))
{
    /* The nodes that sort before d are the list's head end, the others its tail end; d goes
     * between them. Both ends are walked at once, one node each per step: h (from the head)
     * stops at the first node not before d, t (from the tail) at the last node before it,
     * whichever is nearer. */
    lws_dll2_t *h = lws_dll2_get_head(own), *t = lws_dll2_get_tail(own);
#ifdef HB_LWSTIMER_COUNT
    hb_lwstimer_calls++;
#endif
    for (;;) {
        if (!h) { /* every node sorts before d */
            lws_dll2_add_tail(d, own);
            return;
        }
        if (compare(h, d) >= 0) {
            lws_dll2_add_before(d, h);
            return;
        }
        if (compare(t, d) < 0) {
            if (t->next)
                lws_dll2_add_before(d, t->next);
            else
                lws_dll2_add_tail(d, own);
            return;
        }
        h = h->next;
        t = t->prev;
        if (!t) { /* no node sorts before d */
            lws_dll2_add_head(d, own);
            return;
        }
    }
}

#else
typedef int hb_lwstimer_lws_own; /* lws' own insert is used */
#endif
