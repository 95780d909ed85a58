#ifndef HERALD_COMMON_HB_SLOT_H
#define HERALD_COMMON_HB_SLOT_H

#include <stddef.h>

/*
 * Redis Cluster key routing: the CRC16 key slot (with {hash tags}), MOVED/ASK redirection
 * parsing, and a slot map (slot -> primary address) built from CLUSTER SLOTS ranges. Loop-free
 * and socket-free; the broker (edge/cluster.c) feeds it what Redis says. Any thread, but one map
 * is owned by one thread.
 */
#define HB_SLOT_COUNT 16384
#define HB_SLOT_HOST_MAX 255   /* bytes of a node host name or address */
#define HB_SLOT_NODES_MAX 1024 /* addresses one map holds */
#define HB_SLOT_TAG_MAX 8      /* bytes of a tag from hb_slot_tag(), with the NUL */

typedef struct hb_slot_map hb_slot_map_t;

/** hb_slot_crc16() - CRC16-CCITT (XMODEM) as Redis Cluster uses it: crc16("123456789") = 0x31C3. */
unsigned hb_slot_crc16(const char *s, size_t len);

/**
 * hb_slot_of() - the cluster slot (0..16383) of a key: CRC16 of the whole key, or of the bytes
 * between the first '{' and the next '}' when that part is non-empty (a hash tag).
 */
unsigned hb_slot_of(const char *key, size_t len);

/**
 * hb_slot_tag() - writes into out the shortest lower-case base-36 string whose slot is `slot`
 * (at most 4 characters and a NUL), to name a key that must live in a given slot, e.g.
 * "<prefix>fence:{<tag>}". Returns 0, or HB_EINVAL for a slot >= HB_SLOT_COUNT.
 */
int hb_slot_tag(unsigned slot, char out[HB_SLOT_TAG_MAX]);

/**
 * hb_slot_tag_table() - fills out[s] with hb_slot_tag(s) for every slot at once (one pass over
 * the candidates: a few milliseconds, where 16384 separate hb_slot_tag() calls take seconds).
 */
void hb_slot_tag_table(char (*out)[HB_SLOT_TAG_MAX]);

/**
 * hb_slot_redirect_parse() - parses a Redis redirection error, "MOVED <slot> <host>:<port>" or
 * "ASK <slot> <host>:<port>" (the port after the last ':', so "[::1]" and bare IPv6 work; an
 * empty host means "the node that answered"). On success returns 0 and sets *ask (1 for ASK),
 * *slot, host (NUL-terminated, at most hcap - 1 bytes) and *port. Otherwise returns HB_EPROTO
 * with a constant one-line *reason (if reason is not NULL) and leaves the outputs unspecified.
 */
int hb_slot_redirect_parse(const char *s, size_t len, int *ask, unsigned *slot, char *host,
                           size_t hcap, int *port, const char **reason);

/**
 * hb_slot_host_ok() - 1 when (s, len) is an acceptable node address: 1..HB_SLOT_HOST_MAX bytes
 * of [A-Za-z0-9.:_-] (host names, IPv4 and IPv6 literals), else 0.
 */
int hb_slot_host_ok(const char *s, size_t len);

/** hb_slot_map_new() - an empty map (no slot has an owner). Aborts on OOM. */
hb_slot_map_t *hb_slot_map_new(void);
/** hb_slot_map_free() - frees the map; accepts NULL. */
void hb_slot_map_free(hb_slot_map_t *m);

/**
 * hb_slot_map_node() - the index of address host:port in the map, added if new. Returns the
 * index (>= 0), HB_EPROTO for a bad host (see hb_slot_host_ok) or a port outside 1..65535, or
 * HB_ELIMIT when the map already holds HB_SLOT_NODES_MAX addresses.
 */
int hb_slot_map_node(hb_slot_map_t *m, const char *host, size_t hlen, int port);

/**
 * hb_slot_map_assign() - slots lo..hi (inclusive) are served by host:port. A later range wins
 * over an earlier one (a MOVED redirection updates one slot this way). Returns the node index,
 * HB_EINVAL when lo > hi or hi >= HB_SLOT_COUNT, or an error of hb_slot_map_node().
 */
int hb_slot_map_assign(hb_slot_map_t *m, long lo, long hi, const char *host, size_t hlen, int port);

/** hb_slot_map_owner() - the node index serving `slot`, or HB_ENOTFOUND. */
int hb_slot_map_owner(const hb_slot_map_t *m, unsigned slot);
/** hb_slot_map_nodes() - how many addresses the map holds (indexes 0..n-1). */
size_t hb_slot_map_nodes(const hb_slot_map_t *m);
/** hb_slot_map_host() - the host of node `idx` (NUL-terminated, owned by the map), or NULL. */
const char *hb_slot_map_host(const hb_slot_map_t *m, int idx);
/** hb_slot_map_port() - the port of node `idx`, or 0. */
int hb_slot_map_port(const hb_slot_map_t *m, int idx);
/** hb_slot_map_covered() - how many of the 16384 slots have an owner (16384: the map is whole). */
size_t hb_slot_map_covered(const hb_slot_map_t *m);
/** hb_slot_map_first_slot() - the lowest slot node `idx` serves, or HB_ENOTFOUND. */
long hb_slot_map_first_slot(const hb_slot_map_t *m, int idx);

#endif
