/*
 * The broker's readiness (hb_broker_update_ready, broker.h): stats.ready and stats.redis_up
 * from the Redis command interface's state (rc.h: connected, the library loaded, the canary
 * healthy), the raw-ingest subscription and draining. Below the topic, refill and ingest files
 * that recompute it after their state changes, above rc.c which it asks; the connection files
 * reach it through b->ev->ready_changed. Broker thread only.
 */
#include "broker.h"

#include <stdatomic.h>

#include "hb_log.h"
#include "rc.h"

#define MOD "broker"

void hb_broker_update_ready(hb_broker_t *b)
{
    int up = hb_rc_ready(b) && (!b->edge->cfg.ingest || b->ing_ready);
    int ready = up && !atomic_load(&b->edge->stats.draining);
    atomic_store(&b->edge->stats.redis_up, up);
    if (!hb_rc_canary_ok(b))
        ready = 0; /* connected is not delivering: the heartbeat must come back */
    /* Not per topic: a topic being subscribed or refilled holds its own clients' events (they
     * wait, nothing is lost), and with per-user topics some topic is always new. */
    if (atomic_exchange(&b->edge->stats.ready, ready) != ready)
        hb_log_info(MOD, ready ? "ready" : "not ready", NULL);
}
