#ifndef HERALD_EDGE_HREAD_H
#define HERALD_EDGE_HREAD_H

/*
 * The paced history reader of a service thread: a resume the client asked for is read page by
 * page, each page bounded by entries and by bytes, and the next page is asked for only once
 * the client has taken most of the previous one. At most HB_HREAD_PER_CONN reads are in flight
 * per connection and HB_HREAD_PER_THREAD per service thread; the others wait their turn, and a
 * subscription that goes away cancels its read (its answer is dropped, no further page).
 * Service thread only; every function takes objects owned by the service thread.
 */

#include "service.h"

/* Reads in flight per connection: one, so a client churning subscribe/unsubscribe with a
 * cursor costs at most one read at a time (and one page of Redis' and the edge's memory). */
#define HB_HREAD_PER_CONN 1
/* Reads in flight per service thread: bounds Redis' and the broker's memory for history to
 * about this many pages, whatever the number of resuming clients. */
#define HB_HREAD_PER_THREAD 16
/* Bytes of encoded events one page may hold: HB_PAGE_BYTES_MAX (common/hb_page.h), at most a
 * quarter of --client-queue-bytes; large enough that a page is worth its round trip, small
 * enough that many are cheap. */
/* Entries the first page of a resume asks for, before the events' size is known; later pages
 * ask for what fits the byte budget at the sizes seen (at most --history-batch). */
#define HB_HREAD_FIRST_COUNT 32

/* Seconds a read may stay unanswered before its slots are taken back (hb_hread_expire()). */
#define HB_HREAD_TIMEOUT_S 60

enum {
    HB_HREAD_NONE = 0, /* no read wanted: live, or resumed */
    HB_HREAD_DRAIN,    /* a page was queued; the next waits for the client to take it */
    HB_HREAD_QUEUED,   /* waiting for a read slot (in c->hwait) */
    HB_HREAD_INFLIGHT, /* asked; the answer's token is u->token */
};

/**
 * hb_hread_begin() - start a resume of u from cur (copied), or only its tail cursor
 * (flags & HB_SUB_TAIL: long-poll without since); HB_SUB_FRESH: the broker reads Redis even
 * at its live position. The first page is asked for when a slot is free. Never fails; a
 * refused request closes the client (1011).
 */
void hb_hread_begin(hb_sub_t *u, const hb_cursor_t *cur, int flags);
/**
 * hb_hread_answered() - the broker answered read p: frees p and its slots. Returns the
 * subscription to deliver the page to, or NULL when the read was cancelled (drop the page).
 */
hb_sub_t *hb_hread_answered(hb_svc_t *s, hb_pending_t *p);
/**
 * hb_hread_next() - u's page was queued and history has more: the next page starts after
 * u->last and asks for what fits the byte budget at `bytes` over `n` events (n 0: unknown).
 * It is asked for at once when the client's queue allows, else once it drained.
 */
void hb_hread_next(hb_sub_t *u, size_t bytes, size_t n);
/** hb_hread_poll_room() - 1 when a long-poll answer being filled from history may take one
 * more page (fewer than --history-batch events, under half a page's bytes). */
int hb_hread_poll_room(const hb_client_t *c);
/** hb_hread_cancel() - u goes away: drop its waiting or in-flight read. */
void hb_hread_cancel(hb_sub_t *u);

/**
 * hb_hread_failed() - a history read of c failed (@why, a string literal): its transport's
 * read_failed(), or closed 1011. Service thread; not while a delivery to c is on the stack of
 * a transport that answers (the transport defers its answer to its writable callback).
 */
void hb_hread_failed(hb_client_t *c, const char *why);
/** hb_hread_client_gone() - c is being freed: its cancelled reads forget it. */
void hb_hread_client_gone(hb_client_t *c);
/** hb_hread_drained() - c wrote some of its queue: continue paced reads that waited for it.
 * Cheap when none waits (one test). */
void hb_hread_drained(hb_client_t *c);
/**
 * hb_hread_expire() - reads asked more than HB_HREAD_TIMEOUT_S ago (an answer lost on a full
 * hand-off queue, a Redis that never answers) give their slots back; their clients are closed
 * (1011) and resume. now_us from hb_wall_us().
 */
void hb_hread_expire(hb_svc_t *s, long long now_us);
/** hb_hread_pump() - hand free read slots to waiting clients, oldest first. */
void hb_hread_pump(hb_svc_t *s);

#endif
