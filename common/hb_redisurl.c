/* Redis addresses (hb_redisurl.h). */
#include "hb_redisurl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_num.h"

int hb_hostport_parse(const char *v, char *host, size_t hcap, int *port)
{
    const char *colon = strrchr(v, ':');
    long p;
    if (!colon || colon == v || (size_t)(colon - v) >= hcap)
        return HB_EINVAL;
    if (hb_parse_long(colon + 1, &p) || p < 1 || p > 65535)
        return HB_EINVAL;
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = '\0';
    if (host[0] == '[') { /* [::1]:80 */
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            return HB_EINVAL;
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    *port = (int)p;
    return 0;
}

/*
 * sentinel://H1[:P1],H2[:P2]/<master>[/DB]: up to HB_SENTINEL_MAX sentinels (default port
 * 26379) and the master's name as configured in Sentinel (1-63 bytes of [A-Za-z0-9._-]).
 */
static int parse_sentinel(hb_cfg_t *cfg, const char *v)
{
    const char *p = v + 11, *slash = strchr(p, '/'), *name, *end;
    long db = 0;
    size_t nlen;

    if (!slash || slash == p)
        return HB_EINVAL;
    cfg->nsentinels = 0;
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *e = comma ? comma : slash;
        char hp[HB_CFG_STR_MAX];
        size_t n = (size_t)(e - p);
        if (n == 0 || n + 7 >= sizeof(hp) || cfg->nsentinels == HB_SENTINEL_MAX)
            return HB_EINVAL;
        memcpy(hp, p, n);
        hp[n] = '\0';
        /* no port: "host" or "[v6]" */
        if (!strchr(hp, ':') || (hp[0] == '[' && hp[n - 1] == ']'))
            strcat(hp, ":26379");
        if (hb_hostport_parse(hp, cfg->sentinel_host[cfg->nsentinels], HB_CFG_STR_MAX,
                           &cfg->sentinel_port[cfg->nsentinels]))
            return HB_EINVAL;
        cfg->nsentinels++;
        p = comma ? comma + 1 : slash;
    }
    name = slash + 1;
    end = strchr(name, '/');
    nlen = end ? (size_t)(end - name) : strlen(name);
    if (nlen == 0 || nlen >= HB_SENTINEL_NAME_MAX)
        return HB_EINVAL;
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
            return HB_EINVAL;
    }
    if (end && (hb_parse_long(end + 1, &db) || db < 0 || db > 10000))
        return HB_EINVAL;
    memcpy(cfg->sentinel_master, name, nlen);
    cfg->sentinel_master[nlen] = '\0';
    cfg->redis_host[0] = '\0';
    cfg->redis_port = 0;
    cfg->redis_db = (int)db;
    return 0;
}

/* "h1:7000,h2:7001": 1..HB_CFG_SEEDS_MAX seed nodes, each HOST:PORT (port required). */
static int parse_cluster(hb_cfg_t *cfg, const char *list)
{
    int n = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char hp[HB_CFG_STR_MAX];
        if (len == 0 || len >= sizeof(hp) || n >= HB_CFG_SEEDS_MAX)
            return HB_EINVAL;
        memcpy(hp, p, len);
        hp[len] = '\0';
        if (hb_hostport_parse(hp, cfg->redis_seed_host[n], sizeof(cfg->redis_seed_host[n]),
                           &cfg->redis_seed_port[n]))
            return HB_EINVAL;
        n++;
        if (!comma)
            break;
        p = comma + 1;
        if (!*p)
            return HB_EINVAL; /* trailing comma */
    }
    if (n == 0)
        return HB_EINVAL;
    cfg->redis_cluster = 1;
    cfg->redis_nseeds = n;
    cfg->redis_db = 0; /* a cluster has only database 0 */
    snprintf(cfg->redis_host, sizeof(cfg->redis_host), "%s", cfg->redis_seed_host[0]);
    cfg->redis_port = cfg->redis_seed_port[0];
    return 0;
}

int hb_redisurl_parse(hb_cfg_t *cfg, const char *v)
{
    const char *p = v;
    char hp[HB_CFG_STR_MAX];
    const char *slash;
    long db = 0;
    if (strlen(v) >= sizeof(cfg->redis_url))
        return HB_EINVAL;
    if (!strncmp(p, "cluster://", 10)) {
        if (parse_cluster(cfg, p + 10))
            return HB_EINVAL;
        memcpy(cfg->redis_url, v, strlen(v) + 1);
        return 0;
    }
    if (!strncmp(p, "sentinel://", 11)) {
        if (parse_sentinel(cfg, v))
            return HB_EINVAL;
        memcpy(cfg->redis_url, v, strlen(v) + 1);
        return 0;
    }
    if (strncmp(p, "redis://", 8) != 0)
        return HB_EINVAL;
    p += 8;
    slash = strchr(p, '/');
    if ((size_t)(slash ? slash - p : (long)strlen(p)) >= sizeof(hp))
        return HB_EINVAL;
    snprintf(hp, sizeof(hp), "%.*s", (int)(slash ? slash - p : (long)strlen(p)), p);
    if (!strchr(hp, ':')) { /* default port */
        if (strlen(hp) + 6 >= sizeof(hp))
            return HB_EINVAL;
        strcat(hp, ":6379");
    }
    if (hb_hostport_parse(hp, cfg->redis_host, sizeof(cfg->redis_host), &cfg->redis_port))
        return HB_EINVAL;
    if (slash && slash[1] && (hb_parse_long(slash + 1, &db) || db < 0 || db > 10000))
        return HB_EINVAL;
    cfg->redis_db = (int)db;
    cfg->redis_cluster = 0;
    cfg->redis_nseeds = 0;
    memcpy(cfg->redis_url, v, strlen(v) + 1);
    return 0;
}
