#ifndef HERALD_COMMON_HB_SENTINEL_H
#define HERALD_COMMON_HB_SENTINEL_H

#include <stddef.h>

/*
 * What the edge reads from Redis Sentinel: the master's address from
 * SENTINEL get-master-addr-by-name, and +switch-master announcements. Both come from the
 * network, so both are checked before use: a host is 1..HB_SENTINEL_HOST_MAX-1 bytes of
 * [A-Za-z0-9.:_-] (it ends up in logs and a metrics label), a port is 1..65535 in plain
 * decimal. Loop-free; any thread.
 */

#define HB_SENTINEL_HOST_MAX 256 /* bytes of a host Sentinel reports, with the NUL */

/**
 * hb_sentinel_parse_addr() - validate a host and a port string (the two elements of a
 * get-master-addr-by-name reply). On success copies the host, NUL-terminated, into `host`
 * (cap >= HB_SENTINEL_HOST_MAX), sets *port and returns 0. Otherwise returns HB_EPROTO and,
 * when `reason` is not NULL, sets it to a constant one-line reason; host and port are then
 * untouched.
 */
int hb_sentinel_parse_addr(const char *h, size_t hlen, const char *p, size_t plen, char *host,
                           size_t cap, int *port, const char **reason);

/**
 * hb_sentinel_parse_switch() - a +switch-master message,
 * "<master> <old-host> <old-port> <new-host> <new-port>". Returns 0 with the new master in
 * host/port (as hb_sentinel_parse_addr()) when it is about `master`, HB_ENOTFOUND when it is
 * about another master, or HB_EPROTO (with a reason) when it is malformed.
 */
int hb_sentinel_parse_switch(const char *msg, size_t len, const char *master, char *host,
                             size_t cap, int *port, const char **reason);

#endif
