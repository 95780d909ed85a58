#ifndef HERALD_EDGE_INGEST_PRIV_H
#define HERALD_EDGE_INGEST_PRIV_H

/*
 * Internals shared by the ingest files, top to bottom, each calling only downward:
 * ingest_sub.c (the raw subscription), ingest_lease.c (lease, the other leaders' barriers,
 * cluster fences) and ingest.c (keep/forget, batching, store replies, and the leadership's
 * steps they share with the lease: state, catch-up, "caught", giving the lease back). Broker thread
 * only; nothing here blocks or fails except as stated.
 */
#include <stddef.h>

#include "broker.h"
#include "hb_list.h"
#include "hb_rawq.h"
#include "ingest.h"

/* Raw messages sent in one store call; the priv of its reply. */
typedef struct batch {
    hb_broker_t *b;
    hb_rawq_t msgs;
    unsigned reign; /* the leadership it was sent under */
    /* in ingest_t.sent while its store call is out, and after its answer while it holds
     * stored messages whose copy is still to be heard (answered: ingest.c await_copies) */
    hb_list_t link;
    int answered;
    unsigned ing_gen; /* ingest_t.ing_gen when its call was sent */
} batch_t;

typedef enum { I_STANDBY = 0, I_BARRIER, I_ACTIVE } istate_t;

struct ingest {
    istate_t state;
    char token[128];
    char lease_key[96];
    char barrier[256];
    size_t barrier_len;
    unsigned long barrier_n;
    hb_rawq_t kept;    /* raw messages whose stored copy has not been seen */
    hb_rawq_t orphans; /* cluster: stored copies seen before their raw message */
    batch_t *cur;      /* leader: raw messages of the current read, not sent yet */
    hb_list_t sent;    /* batches whose store call is out, or answered with copies to hear,
                        * in the order they were sent */
    size_t awaiting, awaiting_bytes; /* messages (and bytes) of the answered batches in sent */
    unsigned ing_gen; /* raw subscriptions made (hb_ingest_on_ing_up): copies of one before */
    struct event *flush_ev;
    int flush_armed;
    int batches;  /* herald_ingest_many calls in flight */
    int settling; /* leader waiting for stores sent under its earlier leadership */
    double settling_since;
    /* hb_now() when the raw subscription was last confirmed: a standby competes for the lease
     * only once it has listened for a lease period (hb_ingest_tick) */
    double ing_since;
    /* single Redis: a young standby (listening for less than YOUNG_LEASES lease periods) first
     * watches the lease key; free_since is when it first saw it absent (0: not seen so) */
    double free_since;
    unsigned reign;  /* counts leaderships won */
    const char **av; /* herald_ingest_many arguments (2 * BATCH_MAX + 5) */
    size_t *al;
    double last_renew_ok;
    double barrier_at;
    double next_lease_at;
    int acquire_inflight, renew_inflight;
    long inflight;
    size_t inflight_bytes; /* their bytes (hb_rawq_t.bytes of the batches sent) */
    /* cluster mode */
    long long term;                 /* leader term drawn with the lease */
    long long term_floor;           /* a term a slot's fence already holds: draw above it */
    char term_key[96];              /* <prefix>{ingest}:term */
    int barrier_need, barrier_seen; /* barriers published / received */
    int fence_need, fence_ok;       /* fence raises sent / succeeded */
    /* single Redis: the "caught" step (see the top of ingest_lease.c) */
    int caught_pending;         /* leader: publish "<barrier>:caught" once inflight is 0 */
    unsigned caught_reign;      /* the leadership it is for */
    char cut[256];              /* standby: the last other leader's barrier channel seen */
    size_t cut_len;             /* 0: none */
    unsigned long long cut_seq; /* messages kept up to then (seq) */
    unsigned long long seq;     /* arrival counter of raw messages (hb_rawmsg_t.seq) */
};

/* ---- ingest_lease.c: the lease; the raw subscription's barrier steps ---- */

/**
 * ingest__on_other_barrier() - standby, single Redis: another leader's barrier channel (chan,
 * clen bytes, starting with "<prefix>barrier:") or its ":caught" marker. Remembers the cut, or
 * drops (and counts as ingest_unled) what was kept before the matching cut.
 */
void ingest__on_other_barrier(hb_broker_t *b, const char *chan, size_t clen);
/**
 * ingest__drop_unmatched() - single Redis, raw subscription (re)confirmed: drops and counts what
 * is kept (it can no longer be matched with its stored copy) and forgets the cut.
 */
void ingest__drop_unmatched(hb_broker_t *b);

/* ---- ingest.c: the store path and the leadership's steps (the bottom of the ingest files) ---- */

/**
 * ingest__set_state() - enters st (no-op when already there), clears settling, updates the
 * leader gauge and logs why (a constant string).
 */
void ingest__set_state(hb_broker_t *b, istate_t st, const char *why);
/**
 * ingest__give_back() - releases the lease (fire and forget) when held and the command side is
 * ready; the caller then sets the state with its reason.
 */
void ingest__give_back(hb_broker_t *b);
/**
 * ingest__go_active() - the barrier(s) passed (and, in a cluster, every fence was raised): the
 * leader goes live, storing what is kept now or once earlier stores are answered (settling).
 */
void ingest__go_active(hb_broker_t *b);
/**
 * ingest__catch_up() - leader: stores every kept raw message, then (single Redis) publishes
 * "<barrier>:caught" once those stores are answered.
 */
void ingest__catch_up(hb_broker_t *b);
/**
 * ingest__publish_caught() - leader: PUBLISH "<barrier>:caught" now (fire and forget), unless
 * the leadership it was for ended or the command side is down. Clears caught_pending.
 */
void ingest__publish_caught(hb_broker_t *b);
/**
 * ingest__store() - leader: stores a copy of the raw message (topic, payload): batched on a
 * single Redis, one call each in a cluster. Out of memory or too many in flight: dropped and
 * counted (ingest_rejected), logged rate-limited.
 */
void ingest__store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                   size_t plen);
/**
 * ingest__keep() - standby: keeps a copy of the raw message until its stored copy is heard (in
 * a cluster, matches an orphan copy heard first instead). A full buffer forgets the oldest
 * (counted, logged rate-limited).
 */
void ingest__keep(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen);
/**
 * ingest__forget() - a stored copy of a raw message was heard: forgets the matching copy (in a
 * store call out, the batch being filled, or kept); in a cluster one heard before its raw
 * message is remembered as an orphan.
 */
void ingest__forget(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                    size_t plen);

/**
 * ingest__drop_awaited() - frees the answered batches still waiting for their stored copies
 * (the raw subscription was made again: copies published before it never come).
 */
void ingest__drop_awaited(hb_broker_t *b);

/** ingest__storing() - 1 when raw messages are stored as they come (else they are kept). */
int ingest__storing(const hb_broker_t *b);
/** ingest__store_kept() - leader: hands every kept raw message, oldest first, to the store path. */
void ingest__store_kept(hb_broker_t *b);
/**
 * ingest__flush() - sends the batch being filled as one herald_ingest_many (single Redis); when
 * the leadership ended meanwhile, keeps its messages again once earlier calls answered. A send
 * that fails keeps them again (the next leader stores them). No-op without a batch.
 */
void ingest__flush(hb_broker_t *b);

#endif
