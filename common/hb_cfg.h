#ifndef HERALD_COMMON_HB_CFG_H
#define HERALD_COMMON_HB_CFG_H

#include <stddef.h>
#include <stdio.h>

#include "hb_origin.h" /* the --allow-origin list, read by the edge through the config */

/*
 * The edge's configuration: one table (hb_cfg.c) gives every option its flag, its HERALD_*
 * environment twin, default, bounds and help text, and generates both --help and the README
 * table. Precedence: flag, then environment, then the --config file, then default. Read-only
 * once threads start.
 */
#define HB_CFG_STR_MAX 256
#define HB_CFG_PATH_MAX 1024
#define HB_CFG_LIST_MAX 2048
#define HB_JWT_SECRET_FILE_MAX (HB_CFG_STR_MAX - 1) /* bytes of key read from a file */
#define HB_SENTINEL_MAX 8                           /* sentinels in one sentinel:// address */
#define HB_SENTINEL_NAME_MAX 64 /* bytes of a Sentinel master name, with the NUL */
#define HB_CFG_SEEDS_MAX 16     /* cluster:// seed nodes */

typedef struct hb_cfg {
    char listen_host[HB_CFG_STR_MAX];
    int listen_port;
    char redis_url[HB_CFG_STR_MAX];
    char redis_host[HB_CFG_STR_MAX]; /* derived from redis_url */
    int redis_port;                  /* derived */
    int redis_db;                    /* derived */
    /* sentinel://H1:P1,H2:P2/<master>[/DB]: the master is found through these (derived) */
    int nsentinels; /* 0: redis_host/redis_port is the server */
    char sentinel_host[HB_SENTINEL_MAX][HB_CFG_STR_MAX];
    int sentinel_port[HB_SENTINEL_MAX];
    char sentinel_master[HB_SENTINEL_NAME_MAX];
    int redis_cluster; /* derived: 1 for cluster://, Redis Cluster mode */
    int redis_nseeds;  /* derived: cluster seed nodes (the first is redis_host) */
    char redis_seed_host[HB_CFG_SEEDS_MAX][HB_CFG_STR_MAX];
    int redis_seed_port[HB_CFG_SEEDS_MAX];
    char node_id[64];
    char prefix[64];
    long history_max;
    long history_ttl; /* seconds; 0 = no age limit */
    int threads;
    int heartbeat; /* seconds */
    int retry_ms;
    int ingest; /* 1 = take part in raw-PUBLISH ingest */
    int lease_ms;
    int redis_timeout_ms;    /* a Redis connection's set-up deadline */
    int log_level;           /* hb_log_level_t */
    long client_queue_max;   /* events queued per client */
    long client_queue_bytes; /* bytes queued per client */
    long max_message_bytes;
    long publish_backlog_bytes;  /* publish payload bytes sent to Redis, not yet answered */
    int idempotency_window;      /* seconds a publish's idempotency key is remembered */
    long service_queue_max;      /* broker -> service thread hand-offs waiting, per thread */
    int topic_linger;            /* seconds before UNSUBSCRIBE after the last subscriber left */
    long history_batch;          /* entries per history read */
    long max_connections;        /* per edge */
    int drain_timeout;           /* seconds */
    long max_connections_per_ip; /* 0 = no limit */
    int handshake_timeout;       /* seconds */
    long max_header_bytes;
    char publish_key[HB_CFG_STR_MAX];
    int max_topics;       /* per connection */
    long topic_rate;      /* new topics per second per edge (0: no limit) */
    int poll_timeout_max; /* seconds */
    int ws_ping_interval; /* seconds */
    int idle_timeout;     /* seconds an idle keep-alive HTTP connection is kept */
    long send_buffer;     /* SO_SNDBUF of client sockets; 0 = kernel autotuning */
    int io_uring;         /* batch a fan-out's sends through io_uring (edge/usend.c) */
    int write_delay_ms;   /* per-client write coalescing delay (edge/cwrite.c); 0 = off */
    /* authorisation: HS256 key (from --jwt-secret or read from --jwt-secret-file) */
    char jwt_secret[HB_CFG_STR_MAX];
    size_t jwt_secret_len;
    char jwt_secret_file[HB_CFG_STR_MAX];
    int jwt_leeway;                        /* seconds of clock skew allowed on exp/nbf */
    int allow_anonymous;                   /* subscribe without a token although a secret is set */
    char allowed_origins[HB_CFG_LIST_MAX]; /* "*" or comma-separated scheme://host[:port] */
    char auth_cookie[HB_CFG_STR_MAX];      /* cookie holding the JWT; "" off */
    /* seconds a sign-in ticket (POST /tickets) may be redeemed */
    long ticket_rate; /* sign-in tickets issued per second per edge */
    int ticket_ttl;
    char config[HB_CFG_PATH_MAX];   /* the --config file read ("" = none) */
    int config_secret;              /* a secret (publish key, JWT key) came from that file */
    char tls_cert[HB_CFG_PATH_MAX]; /* PEM certificate chain ("" = plain HTTP) */
    char tls_key[HB_CFG_PATH_MAX];  /* PEM private key */
} hb_cfg_t;

/**
 * hb_cfg_load() - fill cfg from defaults, the --config file (or HERALD_CONFIG), the
 * environment and argv (in that order of increasing precedence). The file holds `name = value`
 * or `name value` lines with the flag names, `#` comment lines and blank lines. Returns 0 when
 * the edge should run, 1 when --help or --help-markdown was printed to `out` (exit 0), or
 * HB_EINVAL with a one-line message in err naming the flag, and the file and line or the
 * environment variable it came from (exit 2). Main thread, before any other thread starts.
 */
int hb_cfg_load(hb_cfg_t *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen);

/** hb_cfg_print_help() - the --help text. */
void hb_cfg_print_help(FILE *out);
/** hb_cfg_print_markdown() - the README settings table (markdown). */
void hb_cfg_print_markdown(FILE *out);

#endif
