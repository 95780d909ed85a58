#ifndef HERALD_EDGE_INGEST_H
#define HERALD_EDGE_INGEST_H

/*
 * Raw PUBLISH ingest (ingest.c: the raw subscription and the store path; ingest_lease.c: the
 * leader lease, barriers and cluster fences). broker.h includes this header, so that every
 * broker file sees these calls with their contracts. Broker thread only: every function
 * here runs on the broker's event loop and never blocks.
 */
typedef struct hb_broker hb_broker_t;

/**
 * hb_ingest_init() - creates b->ingest (standby, nothing kept) with its lease token and keys
 * from b->edge->cfg; b->base must exist. Aborts on OOM (start-up only).
 */
void hb_ingest_init(hb_broker_t *b);
/**
 * hb_ingest_cleanup() - frees b->ingest and every raw message it holds (kept, orphans, the
 * batch being filled); b->ingest becomes NULL. Stores still in flight must have been answered
 * or their connection freed first (their replies point into b). Accepts b->ingest NULL.
 */
void hb_ingest_cleanup(hb_broker_t *b);
/** hb_ingest_on_cmd_ready() - the command side is usable again: lease commands may go now. */
void hb_ingest_on_cmd_ready(hb_broker_t *b);
/** hb_ingest_on_cmd_down() - the command connection went: leadership ends (standby). */
void hb_ingest_on_cmd_down(hb_broker_t *b);
/**
 * hb_ingest_on_ing_up() - the raw-ingest connection b->ing.ac is connected: sends PSUBSCRIBE *;
 * its messages and confirmation arrive through the reply callback (b->ing_ready set on
 * confirmation). No failure return: a lost connection is the broker's reconnect path.
 */
void hb_ingest_on_ing_up(hb_broker_t *b);
/**
 * hb_ingest_tick() - periodic work (every broker tick): forgets kept raw messages and orphan
 * copies past their age, ends a leadership that lost its lease, subscription or barrier, and
 * sends the next lease acquire or renew. No-op when ingest is disabled.
 */
void hb_ingest_tick(hb_broker_t *b);
/** hb_ingest_release() - draining: gives the lease back (when held) and becomes a standby. */
void hb_ingest_release(hb_broker_t *b);
/** hb_ingest_idle() - 1 when no store is in flight and no batch is waiting to be sent, else 0. */
int hb_ingest_idle(hb_broker_t *b);

#endif
