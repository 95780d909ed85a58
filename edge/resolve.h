#ifndef HERALD_EDGE_RESOLVE_H
#define HERALD_EDGE_RESOLVE_H

#include <event2/event.h>

/*
 * Host names of Redis nodes and sentinels resolved without blocking the broker's loop
 * (libevent's evdns, with /etc/resolv.conf and /etc/hosts). Connect paths ask for a numeric
 * address; while a lookup runs they get none and try again on their own retry timer, and
 * on_done is called when a lookup ends. Answers are kept RESOLVE_TTL_S and looked up again
 * after that, the old answer serving meanwhile (a container that restarted under the same
 * name gets its new address on the next lookup). Broker thread only.
 */
typedef struct hb_resolver hb_resolver_t;

/** hb_resolver_new() - a resolver on base, owned by the caller (hb_resolver_free());
 * on_done(arg) after each lookup. NULL when evdns cannot be set up. */
hb_resolver_t *hb_resolver_new(struct event_base *base, void (*on_done)(void *arg), void *arg);

/**
 * hb_resolver_addr() - a numeric address for host: host itself when it is numeric, else the
 * kept answer, else NULL (a lookup is running, or the last one failed: the reason is logged).
 * The string stays valid until the next call for the same host.
 */
const char *hb_resolver_addr(hb_resolver_t *r, const char *host);

/** hb_resolver_free() - cancels running lookups (on_done is not called) and frees r; accepts
 * NULL. */
void hb_resolver_free(hb_resolver_t *r);

#endif
