#ifndef HERALD_COMMON_HB_REDISURL_H
#define HERALD_COMMON_HB_REDISURL_H

/*
 * Redis addresses of --redis: redis://HOST[:PORT][/DB], sentinel://H1[:P1],H2[:P2]/<master>[/DB]
 * and cluster://H1:P1[,H2:P2...], and the HOST:PORT form of --listen. Pure parsers that fill
 * the derived fields of an hb_cfg_t; main thread, at start-up (hb_cfg_load()).
 */
#include <stddef.h>

#include "hb_cfg.h"

/**
 * hb_hostport_parse() - "host:port" or "[v6]:port" (port 1..65535, required) into host (at most
 * hcap - 1 bytes, brackets removed) and *port. 0, or HB_EINVAL (host may be written).
 */
int hb_hostport_parse(const char *v, char *host, size_t hcap, int *port);
/**
 * hb_redisurl_parse() - v (shorter than HB_CFG_STR_MAX) into cfg->redis_url and the fields it
 * decides: redis_host/port/db for redis://; sentinel_host/port, nsentinels (at most
 * HB_SENTINEL_MAX, default port 26379), sentinel_master (1..HB_SENTINEL_NAME_MAX - 1 bytes of
 * [A-Za-z0-9._-]) and redis_db for sentinel://; redis_seed_host/port, redis_nseeds (1..
 * HB_CFG_SEEDS_MAX, port required, no database) and redis_cluster for cluster://. DB is
 * 0..10000. 0, or HB_EINVAL with cfg partly written (the caller reports the bad value).
 */
int hb_redisurl_parse(hb_cfg_t *cfg, const char *v);

#endif
