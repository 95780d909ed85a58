#ifndef HERALD_EDGE_SENTINEL_H
#define HERALD_EDGE_SENTINEL_H

/*
 * Redis Sentinel client of the broker thread (--redis sentinel://H1:P1,H2:P2/<master>).
 *
 * Finds the master with SENTINEL get-master-addr-by-name, asking the sentinels in turn, and
 * checks with ROLE that the node it names really is a master before the broker uses it. It
 * follows failovers by subscribing to +switch-master on one sentinel, and asks again every
 * HB_SENTINEL_CHECK_MS in case a message was missed (and at once when the broker loses a Redis
 * connection). A new master is handed to hb_broker_set_master(). Broker thread only; nothing
 * here blocks (hiredis async on the broker's event_base).
 */

#include <stddef.h>

struct hb_broker;
typedef struct hb_sentinel hb_sentinel_t;

#define HB_SENTINEL_CHECK_MS 2000 /* periodic re-check of the master's address */
#define HB_SENTINEL_STEP_MS 1000  /* connect + reply limit of one sentinel or ROLE query */

/** hb_sentinel_new() - the client for b's configured sentinels; aborts on OOM. */
hb_sentinel_t *hb_sentinel_new(struct hb_broker *b);
/** hb_sentinel_start() - start the discovery and the +switch-master watch. */
void hb_sentinel_start(hb_sentinel_t *s);
/** hb_sentinel_recheck() - ask the sentinels again now (no-op while a query runs). */
void hb_sentinel_recheck(hb_sentinel_t *s, const char *reason);
/** hb_sentinel_free() - close its connections and free it; accepts NULL. */
void hb_sentinel_free(hb_sentinel_t *s);

/* hb_broker_set_master() and hb_broker_master(): broker.h (bconn.c). */

#endif
