#include "hb_cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hb_cfgfile.h"
#include "hb_err.h"
#include "hb_num.h"
#include "hb_log.h"
#include "hb_origin.h"
#include "hb_redisurl.h"

typedef enum {
    T_STR,
    T_SECRET,
    T_INT,
    T_LONG,
    T_BOOL,
    T_ADDR,
    T_REDIS,
    T_LEVEL,
    T_NODE,
    T_PREFIX,
    T_ORIGINS,
    T_PATH
} opt_type_t;

typedef struct opt {
    const char *name; /* flag without the leading "--" */
    opt_type_t type;
    const char *def;
    long min, max;
    size_t off;
    const char *help;
} opt_t;

#define O(f) offsetof(hb_cfg_t, f)

/* The one table of settings. Env twin: "HERALD_" + upper-cased name, '-' -> '_'. */
static const opt_t opts[] = {
    {"listen", T_ADDR, "0.0.0.0:8080", 0, 0, O(listen_host),
     "HOST:PORT the edge listens on (SSE, health, metrics)"},
    {"redis", T_REDIS, "redis://127.0.0.1:6379", 0, 0, O(redis_url),
     "Redis server, redis://HOST:PORT[/DB]; sentinel://H1:P1,H2:P2/MASTER[/DB] to follow the "
     "master that Redis Sentinel names; or cluster://HOST:PORT[,HOST:PORT...] (Redis Cluster "
     "seed nodes)"},
    {"node-id", T_NODE, "", 0, 0, O(node_id),
     "name of this edge in logs, X-Herald-Node and the ingest lease (default: hostname-pid)"},
    {"prefix", T_PREFIX, "herald:", 0, 0, O(prefix),
     "prefix of every Redis key and channel Herald owns"},
    {"history-max", T_LONG, "1000", 1, 100000000, O(history_max),
     "events kept per topic (XADD MAXLEN ~)"},
    {"history-ttl", T_LONG, "86400", 0, 31536000, O(history_ttl),
     "seconds of history kept per topic, and idle topic keys expire after it (0: no limit)"},
    {"threads", T_INT, "0", 0, 64, O(threads),
     "service threads, each with its own listener on the shared port (0: one per core)"},
    {"heartbeat", T_INT, "25", 1, 3600, O(heartbeat), "seconds between SSE comment heartbeats"},
    {"retry-ms", T_INT, "3000", 100, 600000, O(retry_ms),
     "SSE reconnection delay sent to clients (retry:)"},
    {"ingest", T_BOOL, "on", 0, 1, O(ingest),
     "take part in raw PUBLISH ingest (leader election and standby): on|off"},
    {"lease-ms", T_INT, "3000", 500, 60000, O(lease_ms),
     "ingest-leader lease; a dead leader is replaced after at most this long"},
    {"redis-timeout-ms", T_INT, "10000", 100, 600000, O(redis_timeout_ms),
     "a connected Redis connection whose set-up (function library and dataset checks, "
     "PSUBSCRIBE) is not answered within this, or that owes answers and reads nothing for this "
     "long (Redis stalled, answers lost), is closed and made again: what waited on it fails (a "
     "publish is answered 504, its outcome unknown)"},
    {"log-level", T_LEVEL, "info", 0, 0, O(log_level), "debug|info|warn|error"},
    {"client-queue-max", T_LONG, "4096", 16, 1000000, O(client_queue_max),
     "events queued for one client before it is disconnected as too slow"},
    {"client-queue-bytes", T_LONG, "4194304", 4096, 1073741824, O(client_queue_bytes),
     "bytes queued for one client before it is disconnected as too slow (an event counts at "
     "most half of it: one larger event still reaches a client that keeps up)"},
    {"max-message-bytes", T_LONG, "65536", 1, 16777216, O(max_message_bytes),
     "largest payload stored; larger raw PUBLISHes are refused and counted"},
    {"publish-backlog-bytes", T_LONG, "67108864", 65536, 17179869184, O(publish_backlog_bytes),
     "payload bytes of HTTP and WebSocket publishes sent to Redis and not yet answered; "
     "beyond, a publish is answered 503 / unavailable at once (Redis slow or stalled)"},
    {"idempotency-window", T_INT, "300", 1, 86400, O(idempotency_window),
     "seconds a publish's idempotency key is remembered: a publish with a key already stored "
     "for its topic within this is not stored again and is answered with the first one's ID "
     "(one small Redis key per keyed publish, for this long)"},
    {"service-queue-max", T_LONG, "65536", 64, 16777216, O(service_queue_max),
     "messages waiting from the Redis thread for one service thread; beyond, an event is "
     "dropped for that thread and its subscribers read on from history in place (answers to "
     "the thread's own requests have 65,536 slots more)"},
    {"topic-linger", T_INT, "5", 0, 3600, O(topic_linger),
     "seconds a topic stays subscribed in Redis after its last local subscriber left"},
    {"history-batch", T_LONG, "500", 1, 10000, O(history_batch),
     "history entries read from Redis per request while resuming"},
    {"max-connections", T_LONG, "100000", 1, 10000000, O(max_connections),
     "client connections per edge; past it new SSE clients get retry: and are closed "
     "(lowered to what RLIMIT_NOFILE allows: see the limits log line)"},
    {"drain-timeout", T_INT, "10", 0, 3600, O(drain_timeout),
     "seconds a SIGTERM drain may take before the edge exits"},
    {"max-connections-per-ip", T_LONG, "0", 0, 10000000, O(max_connections_per_ip),
     "client connections per source address (0: no limit; behind a load balancer every "
     "client has the balancer's address)"},
    {"handshake-timeout", T_INT, "10", 1, 600, O(handshake_timeout),
     "seconds from accept a client has to send a complete request head, and from the head "
     "the body (slow or idle sockets are cut off)"},
    {"max-header-bytes", T_LONG, "16384", 1024, 65535, O(max_header_bytes),
     "bytes of request line and headers accepted per request; a multi-topic SSE resume "
     "needs about 30 bytes a topic for its Last-Event-ID besides the topic list (over it the "
     "request is dropped without an answer)"},
    {"publish-key", T_SECRET, "", 0, 0, O(publish_key),
     "bearer key for POST /publish/<topic> and WebSocket publish (empty: HTTP publish off)"},
    {"max-topics-per-connection", T_INT, "64", 1, 4096, O(max_topics),
     "topics one WebSocket or multi-topic SSE connection may subscribe to"},
    {"topic-rate", T_LONG, "2000", 0, 10000000, O(topic_rate),
     "new topics per second the edge takes on (each costs Redis a subscription and two "
     "function calls): a request past it is turned away to retry (SSE: retry: and close; "
     "long-poll: 503; WebSocket: error busy); topics the client's service thread already "
     "serves never are (0: no limit)"},
    {"poll-timeout-max", T_INT, "60", 1, 3600, O(poll_timeout_max),
     "longest wait a long-poll request may ask for (seconds)"},
    {"idle-timeout", T_INT, "30", 1, 3600, O(idle_timeout),
     "seconds an idle keep-alive HTTP connection (between requests) is kept open"},
    {"ws-ping-interval", T_INT, "25", 0, 3600, O(ws_ping_interval),
     "seconds without a frame from a WebSocket client before it is pinged; one silent twice "
     "as long (no pong) is closed (0: off)"},
    {"write-delay-ms", T_INT, "0", 0, 1000, O(write_delay_ms),
     "milliseconds an SSE or WebSocket client's events may wait so that they go out in fewer "
     "writes: at most one write per client per this long, the first event after a quiet spell "
     "at once (0: each broker batch is written at once). Saves CPU on hot topics with many "
     "subscribers for up to this much latency"},
    {"io-uring", T_BOOL, "on", 0, 1, O(io_uring),
     "send an event to the subscribers it goes to at once in one io_uring submission per "
     "1,024 instead of one send(2) each, when the kernel allows it (else, or off: send(2)): "
     "on|off"},
    {"send-buffer", T_LONG, "0", 0, 16777216, O(send_buffer),
     "kernel send buffer per client socket, bytes (SO_SNDBUF; 0: the kernel's autotuning, "
     "up to net.ipv4.tcp_wmem): with a cap a stalled client holds at most this much in the "
     "kernel beyond its queue"},
    {"jwt-secret", T_SECRET, "", 0, 0, O(jwt_secret),
     "HS256 key that signs client tokens (JWT); set: subscribing needs a token unless "
     "--allow-anonymous, and tokens may publish (empty: no token checks, subscribing is open)"},
    {"jwt-secret-file", T_STR, "", 0, 0, O(jwt_secret_file),
     "file holding the HS256 key instead of --jwt-secret (trailing newline ignored)"},
    {"jwt-leeway", T_INT, "5", 0, 300, O(jwt_leeway),
     "seconds of clock skew allowed when checking a token's exp and nbf"},
    {"allow-anonymous", T_BOOL, "off", 0, 1, O(allow_anonymous),
     "with --jwt-secret set, still let clients without a token subscribe: on|off"},
    {"allowed-origins", T_ORIGINS, "*", 0, 0, O(allowed_origins),
     "browser origins allowed (CORS for SSE, long-poll and publish; Origin check of the "
     "WebSocket handshake): * or a comma-separated list of scheme://host[:port]"},
    {"auth-cookie", T_STR, "", 0, 0, O(auth_cookie),
     "name of a cookie that may carry the token (SSE, long-poll, WebSocket), read only from "
     "the edge's own origin or one listed in --allowed-origins, never through *; empty: off"},
    {"ticket-rate", T_LONG, "500", 1, 1000000, O(ticket_rate),
     "sign-in tickets per second an edge issues (each stores its token in Redis for "
     "--ticket-ttl); past it POST /tickets is answered 503 to retry"},
    {"ticket-ttl", T_INT, "30", 1, 3600, O(ticket_ttl),
     "seconds a single-use sign-in ticket (POST /tickets, then ?ticket= on SSE, long-poll or "
     "the WebSocket handshake) may be redeemed"},
    {"config", T_PATH, "", 0, 0, O(config),
     "file of `name = value` lines setting these options by flag name; a flag or an "
     "environment variable wins over the file"},
    {"tls-cert", T_PATH, "", 0, 0, O(tls_cert),
     "PEM certificate (chain) file: serve HTTPS and WSS on --listen (needs --tls-key)"},
    {"tls-key", T_PATH, "", 0, 0, O(tls_key), "PEM private key file of --tls-cert"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void env_name(const opt_t *o, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "HERALD_");
    for (const char *p = o->name; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

/* v as an error message may show it: at most 100 bytes, anything unprintable as '?'. */
static void show_value(const char *v, char *out, size_t cap)
{
    size_t n = 0;
    for (; *v && n + 4 < cap && n < 100; v++)
        out[n++] = ((unsigned char)*v < 0x20 || (unsigned char)*v >= 0x7f) ? '?' : *v;
    if (*v && n + 4 <= cap) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* The values an option accepts, for --help, the README table and error messages. Markdown
 * escapes the pipes that would end a table cell. */
static void opt_values(const opt_t *o, char *out, size_t cap, int md)
{
    const char *bar = md ? "\\|" : "|";
    switch (o->type) {
    case T_INT:
    case T_LONG:
        snprintf(out, cap, "%ld..%ld", o->min, o->max);
        return;
    case T_BOOL:
        snprintf(out, cap, "on%soff", bar);
        return;
    case T_LEVEL:
        snprintf(out, cap, "debug%sinfo%swarn%serror", bar, bar, bar);
        return;
    case T_ADDR:
        snprintf(out, cap, "IP:PORT");
        return;
    case T_REDIS:
        snprintf(out, cap, "redis://, sentinel:// or cluster:// address");
        return;
    case T_ORIGINS:
        snprintf(out, cap, "* or http(s)://HOST[:PORT],...");
        return;
    case T_NODE:
    case T_PREFIX:
        snprintf(out, cap, "%s[A-Za-z0-9._:-]", o->type == T_PREFIX ? "1-63 of " : "0-63 of ");
        return;
    case T_SECRET:
        snprintf(out, cap, "printable ASCII, no spaces");
        return;
    case T_PATH:
        snprintf(out, cap, "file path");
        return;
    case T_STR:
        break;
    }
    snprintf(out, cap, strstr(o->name, "-file") ? "file path" : "text");
}

static int set_opt(hb_cfg_t *cfg, const opt_t *o, const char *v, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    char shown[104], what[64];
    long x;

    show_value(v, shown, sizeof(shown));

    switch (o->type) {
    case T_STR:
    case T_SECRET:
    case T_NODE:
    case T_PREFIX: {
        size_t cap = (o->type == T_STR || o->type == T_SECRET) ? HB_CFG_STR_MAX : 64;
        size_t n = strlen(v);
        if (n >= cap)
            goto bad;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            /* node ids and prefixes end up in keys, headers and log lines */
            if (o->type == T_SECRET && (c < 0x21 || c > 0x7e))
                goto bad;
            if ((o->type == T_NODE || o->type == T_PREFIX) &&
                !(isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':'))
                goto bad;
        }
        if (o->type == T_PREFIX && n == 0)
            goto bad;
        memcpy(base + o->off, v, n + 1);
        return 0;
    }
    case T_PATH: {
        size_t n = strlen(v);
        if (n >= HB_CFG_PATH_MAX)
            goto bad;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
                goto bad;
        memcpy(base + o->off, v, n + 1);
        return 0;
    }
    case T_INT:
    case T_LONG:
        if (hb_parse_long(v, &x) || x < o->min || x > o->max) {
            snprintf(err, errlen, "invalid --%s '%s': expected an integer from %ld to %ld", o->name,
                     shown, o->min, o->max);
            return HB_EINVAL;
        }
        if (o->type == T_INT)
            *(int *)(base + o->off) = (int)x;
        else
            *(long *)(base + o->off) = x;
        return 0;
    case T_BOOL:
        if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
            *(int *)(base + o->off) = 1;
        else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
            *(int *)(base + o->off) = 0;
        else
            goto bad;
        return 0;
    case T_LEVEL:
        if ((x = hb_log_level_parse(v)) < 0)
            goto bad;
        *(int *)(base + o->off) = (int)x;
        return 0;
    case T_ADDR: {
        unsigned char ip[16];
        if (hb_hostport_parse(v, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port))
            goto bad;
        /* an address, not a name: resolving would make start-up depend on DNS */
        if (inet_pton(strchr(cfg->listen_host, ':') ? AF_INET6 : AF_INET, cfg->listen_host, ip) !=
            1)
            goto bad;
        return 0;
    }
    case T_ORIGINS:
        if (hb_cfg_origins_valid(v) != 0 || strlen(v) >= HB_CFG_LIST_MAX)
            goto bad;
        memcpy(base + o->off, v, strlen(v) + 1);
        return 0;
    case T_REDIS:
        if (hb_redisurl_parse(cfg, v) != 0)
            goto bad;
        return 0;
    }
bad:
    opt_values(o, what, sizeof(what), 0);
    if (o->type == T_SECRET) /* never echoed */
        snprintf(err, errlen, "invalid --%s: expected %s", o->name, what);
    else
        snprintf(err, errlen, "invalid --%s '%s': expected %s", o->name, shown, what);
    return HB_EINVAL;
}

static const opt_t *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !memcmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

void hb_cfg_print_help(FILE *out)
{
    char env[96], what[64];
    fprintf(out,
            "Usage: herald [OPTIONS]\n\n"
            "Herald edge: serves Server-Sent Events, WebSocket and long-poll clients from Redis\n"
            "pub/sub and streams. Every option can also be set with its environment variable\n"
            "or in the --config file; a flag wins over the environment, which wins over the "
            "file.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(&opts[i], env, sizeof(env));
        opt_values(&opts[i], what, sizeof(what), 0);
        fprintf(out, "  --%s=VALUE  (%s, default: %s, values: %s)\n      %s\n", opts[i].name, env,
                opts[i].def[0] ? opts[i].def : "\"\"", what, opts[i].help);
    }
    fprintf(out, "  --help             this text\n  --help-markdown    the settings as a "
                 "markdown table\n  --version          the version (and git revision) of "
                 "this binary\n");
}

void hb_cfg_print_markdown(FILE *out)
{
    char env[96], what[64];
    fprintf(out, "| flag | environment | default | values | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(&opts[i], env, sizeof(env));
        opt_values(&opts[i], what, sizeof(what), 1);
        fprintf(out, "| `--%s` | `%s` | `%s` | %s | %s |\n", opts[i].name, env, opts[i].def, what,
                opts[i].help);
    }
}

/* --jwt-secret-file: the key's bytes (a trailing newline is not part of it). */
static int load_jwt_secret(hb_cfg_t *cfg, char *err, size_t errlen)
{
    FILE *f;
    size_t n;
    char buf[HB_CFG_STR_MAX + 2];
    if (!cfg->jwt_secret_file[0]) {
        cfg->jwt_secret_len = strlen(cfg->jwt_secret);
        return 0;
    }
    if (cfg->jwt_secret[0]) {
        snprintf(err, errlen, "give --jwt-secret or --jwt-secret-file, not both");
        return HB_EINVAL;
    }
    f = fopen(cfg->jwt_secret_file, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read --jwt-secret-file '%.200s': %s", cfg->jwt_secret_file,
                 strerror(errno));
        return HB_EINVAL;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0 || n > HB_JWT_SECRET_FILE_MAX) {
        snprintf(err, errlen, "--jwt-secret-file '%.200s' must hold 1 to %d bytes of key",
                 cfg->jwt_secret_file, HB_JWT_SECRET_FILE_MAX);
        return HB_EINVAL;
    }
    memcpy(cfg->jwt_secret, buf, n);
    cfg->jwt_secret[n] = '\0';
    cfg->jwt_secret_len = n;
    return 0;
}

/* Where a value came from, for error messages. */
typedef struct opt_src {
    const char *val; /* NULL: not given here */
    unsigned line;   /* --config file line */
} opt_src_t;

/* One --config line (hb_cfgfile_parse()): a known flag name, not `config`, set only once. */
static int on_file_entry(void *arg, const char *name, const char *value, unsigned line, char *err,
                         size_t errlen)
{
    opt_src_t *file = arg;
    const opt_t *o = find_opt(name, strlen(name));
    if (!o) {
        char shown[104];
        show_value(name, shown, sizeof(shown));
        snprintf(err, errlen,
                 "unknown setting '%s' (names are the flags of --help, without the dashes)", shown);
        return -1;
    }
    if (!strcmp(o->name, "config")) {
        snprintf(err, errlen, "'config' cannot be set inside a --config file");
        return -1;
    }
    if (file[o - opts].val) {
        snprintf(err, errlen, "'%s' is already set on line %u", o->name, file[o - opts].line);
        return -1;
    }
    file[o - opts].val = value;
    file[o - opts].line = line;
    return 0;
}

/* Reads and parses the --config file: *text (owned by the caller) holds the values file[]
 * points at. Errors name the file, and the line where there is one. */
static int load_file(const char *path, opt_src_t *file, char **text, char *err, size_t errlen)
{
    char why[512];
    size_t len;
    int rc = hb_cfgfile_read(path, text, &len);
    if (rc) {
        snprintf(err, errlen, "cannot read --config file '%.200s': %s", path,
                 rc == HB_ELIMIT   ? "larger than 65536 bytes"
                 : rc == HB_ENOMEM ? "out of memory"
                                   : strerror(errno));
        return HB_EINVAL;
    }
    if (hb_cfgfile_parse(*text, len, on_file_entry, file, why, sizeof(why))) {
        snprintf(err, errlen, "%.200s:%s", path, why);
        return HB_EINVAL;
    }
    return 0;
}

int hb_cfg_load(hb_cfg_t *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    char env[96];
    const char *arg[NOPTS], *envv[NOPTS];
    opt_src_t file[NOPTS];
    const opt_t *cfg_opt = find_opt("config", 6);
    const char *path;
    char *text = NULL;
    int rc = 0;

    memset(cfg, 0, sizeof(*cfg));
    memset(arg, 0, sizeof(arg));
    memset(file, 0, sizeof(file));
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(&opts[i], env, sizeof(env));
        envv[i] = getenv(env);
    }
    for (int a = 1; a < argc; a++) {
        const char *s = argv[a];
        const char *eq, *val;
        const opt_t *o;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            hb_cfg_print_help(out);
            return 1;
        }
        if (!strcmp(s, "--help-markdown")) {
            hb_cfg_print_markdown(out);
            return 1;
        }
        if (strncmp(s, "--", 2) != 0) {
            char shown[104];
            show_value(s, shown, sizeof(shown));
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", shown);
            return HB_EINVAL;
        }
        eq = strchr(s + 2, '=');
        o = find_opt(s + 2, eq ? (size_t)(eq - s - 2) : strlen(s + 2));
        if (!o) {
            char shown[104];
            show_value(s, shown, sizeof(shown));
            snprintf(err, errlen, "unknown option '%s' (see --help)", shown);
            return HB_EINVAL;
        }
        if (eq)
            val = eq + 1;
        else if (a + 1 < argc)
            val = argv[++a];
        else {
            snprintf(err, errlen, "option --%s needs a value", o->name);
            return HB_EINVAL;
        }
        arg[o - opts] = val;
    }

    path = arg[cfg_opt - opts] ? arg[cfg_opt - opts] : envv[cfg_opt - opts];
    if (path && *path) {
        if ((rc = set_opt(cfg, cfg_opt, path, err, errlen)) != 0)
            return rc;
        if ((rc = load_file(cfg->config, file, &text, err, errlen)) != 0)
            goto out;
    }
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_t *o = &opts[i];
        char msg[512];
        if (o == cfg_opt)
            continue;
        if (arg[i]) {
            rc = set_opt(cfg, o, arg[i], err, errlen);
        } else if (envv[i]) {
            rc = set_opt(cfg, o, envv[i], msg, sizeof(msg));
            env_name(o, env, sizeof(env));
            if (rc)
                snprintf(err, errlen, "%s: %s", env, msg);
        } else if (file[i].val) {
            rc = set_opt(cfg, o, file[i].val, msg, sizeof(msg));
            if (rc)
                snprintf(err, errlen, "%.200s:%u: %s", cfg->config, file[i].line, msg);
            else if (o->type == T_SECRET && file[i].val[0])
                cfg->config_secret = 1;
        } else {
            rc = set_opt(cfg, o, o->def, err, errlen);
        }
        if (rc)
            goto out;
    }
    if (!cfg->node_id[0]) {
        char host[48] = "edge";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        for (char *p = host; *p; p++)
            if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
                *p = '-';
        snprintf(cfg->node_id, sizeof(cfg->node_id), "%.40s-%ld", host, (long)getpid());
    }
    if ((rc = load_jwt_secret(cfg, err, errlen)) != 0)
        goto out;
    if (cfg->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
    }
out:
    free(text); /* every value was copied into cfg */
    return rc;
}
