#ifndef HERALD_COMMON_HB_CFG_H
#define HERALD_COMMON_HB_CFG_H

#include <stddef.h>
#include <stdio.h>

/*
 * The edge's configuration: one table (hb_cfg.c) gives every option its flag, its HERALD_*
 * environment twin, default, bounds and help text, and generates both --help and the README
 * table. Precedence: flag, then environment, then default. Read-only once threads start.
 */
#define HB_CFG_STR_MAX 256

typedef struct hb_cfg {
    char listen_host[HB_CFG_STR_MAX];
    int listen_port;
    char redis_url[HB_CFG_STR_MAX];
    char redis_host[HB_CFG_STR_MAX]; /* derived from redis_url */
    int redis_port;                  /* derived */
    int redis_db;                    /* derived */
    char node_id[64];
    char prefix[64];
    long history_max;
    long history_ttl; /* seconds; 0 = no age limit */
    int threads;
    int heartbeat; /* seconds */
    int retry_ms;
    int ingest; /* 1 = take part in raw-PUBLISH ingest */
    int lease_ms;
    int log_level;           /* hb_log_level_t */
    long client_queue_max;   /* events queued per client */
    long client_queue_bytes; /* bytes queued per client */
    long max_message_bytes;
    int topic_linger;            /* seconds before UNSUBSCRIBE after the last subscriber left */
    long history_batch;          /* entries per history read */
    long max_connections;        /* per edge */
    int drain_timeout;           /* seconds */
    long max_connections_per_ip; /* 0 = no limit */
    int handshake_timeout;       /* seconds */
    long max_header_bytes;
    char publish_key[HB_CFG_STR_MAX];
    int max_topics;       /* per connection */
    int poll_timeout_max; /* seconds */
    int ws_ping_interval; /* seconds */
    int idle_timeout;     /* seconds an idle keep-alive HTTP connection is kept */
} hb_cfg_t;

/**
 * hb_cfg_load() - fill cfg from defaults, the environment and argv (in that order of
 * increasing precedence). Returns 0 when the edge should run, 1 when --help or --help-markdown
 * was printed to `out` (exit 0), or HB_EINVAL with a one-line message in err (exit 2).
 * Main thread, before any other thread starts.
 */
int hb_cfg_load(hb_cfg_t *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen);

/** hb_cfg_print_help() - the --help text. */
void hb_cfg_print_help(FILE *out);
/** hb_cfg_print_markdown() - the README settings table (markdown). */
void hb_cfg_print_markdown(FILE *out);

#endif
