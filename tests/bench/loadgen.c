/*
 * loadgen: a load generator for push servers (Herald, nchan) on loopback.
 *
 * One process, one libevent loop: N subscribers (SSE or WebSocket) spread over many source
 * addresses, a paced publisher (raw Redis PUBLISH or HTTP POST), latency from a timestamp
 * carried in every payload, per-connection sequence checks, and CPU/RSS of the watched server
 * processes sampled from /proc around each phase. Prints one JSON object and a human line.
 *
 * Payload format (ASCII, padded with 'x' to --size bytes):  @s<seq>.<t_us>.<topic index>.
 * <seq> counts per topic from 1; <t_us> is CLOCK_MONOTONIC in microseconds at the moment the
 * publish is written to the socket. The marker survives every framing used here (SSE data line,
 * Herald's WebSocket JSON object, nchan's raw WebSocket text frame).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define LG_RBUF (256 * 1024)       /* one read buffer shared by every connection */
#define LG_CARRY_MAX (1024 * 1024) /* largest partial line/frame kept between reads */
#define LG_HDR_MAX 16384           /* largest response header block */
#define LG_MAX_WATCH 8
#define LG_MAX_STEPS 32
#define LG_HIST_SUB 16
#define LG_HIST_N (64 * LG_HIST_SUB)

/* ---------- small helpers ---------- */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* ---------- log-linear latency histogram (microseconds, ~6% buckets) ---------- */

typedef struct {
    uint64_t b[LG_HIST_N];
    uint64_t n, max, sum;
} hist_t;

static unsigned hist_idx(uint64_t v)
{
    if (v < LG_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 4;
    unsigned idx = (shift + 1) * LG_HIST_SUB + (unsigned)((v >> shift) & (LG_HIST_SUB - 1));
    return idx < LG_HIST_N ? idx : LG_HIST_N - 1;
}

/* Upper bound of a bucket: a reported percentile is never below the true one. */
static uint64_t hist_upper(unsigned idx)
{
    if (idx < LG_HIST_SUB)
        return idx;
    unsigned shift = idx / LG_HIST_SUB - 1, sub = idx % LG_HIST_SUB;
    return ((uint64_t)(LG_HIST_SUB + sub + 1) << shift) - 1;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->b[hist_idx(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static double hist_pct_ms(const hist_t *h, double p)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)ceil(p * (double)h->n), acc = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < LG_HIST_N; i++) {
        acc += h->b[i];
        if (acc >= want) {
            uint64_t u = hist_upper(i);
            return (double)(u < h->max ? u : h->max) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

/* ---------- configuration ---------- */

enum { MODE_SSE, MODE_WS };
enum { SRV_HERALD, SRV_NCHAN };
enum { PUB_NONE, PUB_REDIS, PUB_HTTP };

typedef struct {
    const char *name;
    int pid;
} watch_t;

static struct {
    struct sockaddr_in target, pub_target, redis;
    int have_pub_target, have_redis;
    int mode, server, pub;
    long conns, topics, src_addrs, pub_conns, pub_pipeline, size, connect_par, steps, window;
    double rate, warmup, duration, drain, connect_timeout, settle, ramp, step_duration;
    double hold;
    const char *sub_path, *pub_path, *pub_key, *topic_prefix, *label, *json_path, *ready_file;
    watch_t watch[LG_MAX_WATCH];
    int nwatch;
    int quiet;
    int external; /* --pub none: another generator publishes; measure what arrives */
} cfg = {
    .mode = MODE_SSE,
    .server = SRV_HERALD,
    .pub = PUB_REDIS,
    .conns = 100,
    .topics = 1,
    .src_addrs = 1,
    .pub_conns = 8,
    .pub_pipeline = 1,
    .size = 200,
    .connect_par = 256,
    .rate = 100,
    .warmup = 1,
    .duration = 5,
    .drain = 10,
    .connect_timeout = 60,
    .settle = 1,
    .steps = 1,
    .step_duration = 3,
    .topic_prefix = "bench",
    .label = "",
};

/* ---------- per-process CPU / RSS from /proc ---------- */

#define LG_MAX_TASKS 64

typedef struct {
    double cpu_s; /* utime + stime */
    long rss_kb;
    int ntask;
    int tid[LG_MAX_TASKS];
    char tname[LG_MAX_TASKS][20];
    double tcpu[LG_MAX_TASKS];
} psample_t;

static int read_stat_cpu(const char *path, double *cpu, char *comm, size_t commsz)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
    if (!lp || !rp)
        return -1;
    if (comm) {
        size_t cl = (size_t)(rp - lp - 1);
        if (cl >= commsz)
            cl = commsz - 1;
        memcpy(comm, lp + 1, cl);
        comm[cl] = 0;
    }
    /* Fields after ')': state(3) ... utime(14) stime(15). */
    char *p = rp + 2;
    unsigned long ut = 0, st = 0;
    int field = 3;
    while (*p && field < 14) {
        if (*p == ' ')
            field++;
        p++;
    }
    if (sscanf(p, "%lu %lu", &ut, &st) != 2)
        return -1;
    *cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

static void psample(int pid, psample_t *s)
{
    char path[128];
    memset(s, 0, sizeof(*s));
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_stat_cpu(path, &s->cpu_s, NULL, 0) < 0) {
        s->cpu_s = -1;
        return;
    }
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        long sz, res;
        if (fscanf(f, "%ld %ld", &sz, &res) == 2)
            s->rss_kb = res * (sysconf(_SC_PAGESIZE) / 1024);
        fclose(f);
    }
}

static void psample_tasks(int pid, psample_t *s)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && s->ntask < LG_MAX_TASKS) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        int tid = atoi(e->d_name);
        char p2[160];
        snprintf(p2, sizeof(p2), "/proc/%d/task/%d/stat", pid, tid);
        if (read_stat_cpu(p2, &s->tcpu[s->ntask], s->tname[s->ntask], sizeof(s->tname[0])) == 0)
            s->tid[s->ntask++] = tid;
    }
    closedir(d);
}

static void psample_full(int pid, psample_t *s)
{
    psample(pid, s);
    psample_tasks(pid, s);
}

/* ---------- state ---------- */

enum { C_IDLE, C_CONNECTING, C_HEADERS, C_BODY, C_CLOSED };

typedef struct conn {
    int fd;
    struct event *ev;
    uint8_t state, ready, chunked, ch_state, ch_crlf;
    uint32_t topic;
    uint64_t ch_left;
    uint64_t last_seq; /* 0: nothing received yet */
    uint64_t window;   /* bit i set: last_seq - 1 - i was received */
    char *carry;
    uint32_t carry_len, carry_cap;
} conn_t;

typedef struct {
    uint64_t deliveries, gaps, dups, ooo, bad;
    hist_t lat;
} stats_t;

typedef struct {
    double rate_target, t_s, pub_rate, deliv_rate, self_cpu_s;
    uint64_t published, deliveries, gaps, dups, ooo;
    double cpu[LG_MAX_WATCH];
    double p50, p90, p99, max;
} step_t;

typedef struct pubconn {
    struct bufferevent *bev;
    int inflight; /* HTTP: requests sent, response not complete yet */
    int hdr_done; /* HTTP response parsing */
    long body_left;
    int chunked;
} pubconn_t;

static struct event_base *base;
static conn_t *conns;
static long next_to_connect, connecting, n_ready, n_failed, n_closed_after_ready;
static long n_upgrade_fail;
static char rbuf[LG_RBUF + LG_CARRY_MAX];
static stats_t st;
static uint64_t *topic_seq;  /* per topic: last seq published */
static uint64_t *topic_subs; /* per topic: subscribers ready */
static uint64_t owed;        /* deliveries the published events owe the subscribers */
static uint64_t published, pub_replies, pub_errors, pub_sent_bytes, pub_reconnects;
static uint64_t pub_index;       /* global event counter (round robin over topics) */
static uint64_t measure_from_us; /* events published at or after this count in the histogram */
static pubconn_t *pubs;
static int npubs;
static double cur_rate;
static uint64_t rate_t0_us, rate_sent0;
static int publishing;
static char first_err[256];

static void conn_close(conn_t *c, int counted);

static void note_err(const char *fmt, ...)
{
    if (first_err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_err, sizeof(first_err), fmt, ap);
    va_end(ap);
}

/* ---------- payload handling ---------- */

static void on_payload(conn_t *c, const char *p, size_t n)
{
    const char *m = memmem(p, n, "@s", 2);
    if (!m) {
        if (cfg.mode == MODE_WS && cfg.server == SRV_HERALD && !c->ready &&
            memmem(p, n, "\"subscribed\"", 12)) {
            c->ready = 1;
            n_ready++;
            topic_subs[c->topic]++;
        }
        return;
    }
    const char *e = p + n;
    m += 2;
    uint64_t seq = 0, ts = 0;
    int ok = 0;
    while (m < e && isdigit((unsigned char)*m))
        seq = seq * 10 + (uint64_t)(*m++ - '0'), ok = 1;
    if (!ok || m >= e || *m++ != '.') {
        st.bad++;
        return;
    }
    ok = 0;
    while (m < e && isdigit((unsigned char)*m))
        ts = ts * 10 + (uint64_t)(*m++ - '0'), ok = 1;
    if (!ok) {
        st.bad++;
        return;
    }
    uint64_t t = now_us();
    st.deliveries++;
    if (ts >= measure_from_us && measure_from_us)
        hist_add(&st.lat, t > ts ? t - ts : 0);
    if (c->last_seq == 0) {
        c->last_seq = seq;
        c->window = 0;
        return;
    }
    if (seq == c->last_seq + 1) {
        c->window = (c->window << 1) | 1;
        c->last_seq = seq;
    } else if (seq > c->last_seq + 1) {
        uint64_t skip = seq - c->last_seq - 1;
        st.gaps += skip;
        c->window = skip >= 63 ? 0 : ((c->window << 1) | 1) << skip;
        c->last_seq = seq;
    } else if (seq == c->last_seq) {
        st.dups++;
    } else {
        uint64_t back = c->last_seq - 1 - seq; /* bit index */
        if (back < 64 && (c->window >> back) & 1) {
            st.dups++;
        } else {
            st.ooo++;
            if (back < 64) {
                c->window |= 1ull << back;
                if (st.gaps)
                    st.gaps--; /* it was counted as missing; it came late */
            }
        }
    }
}

/* Process complete SSE lines in buf; returns bytes consumed. */
static size_t sse_process(conn_t *c, char *buf, size_t len)
{
    size_t off = 0;
    for (;;) {
        char *nl = memchr(buf + off, '\n', len - off);
        if (!nl)
            return off;
        size_t ll = (size_t)(nl - (buf + off));
        if (ll >= 5 && memcmp(buf + off, "data:", 5) == 0)
            on_payload(c, buf + off + 5, ll - 5);
        off += ll + 1;
    }
}

static void ws_send(conn_t *c, int opcode, const char *p, size_t n)
{
    unsigned char f[256 + 14];
    size_t h = 0;
    if (n > 256)
        n = 256;
    f[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (unsigned char)(0x80 | n);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(n >> 8);
        f[h++] = (unsigned char)n;
    }
    uint32_t r = (uint32_t)random();
    unsigned char mask[4] = {(unsigned char)r, (unsigned char)(r >> 8), (unsigned char)(r >> 16),
                             (unsigned char)(r >> 24)};
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        f[h + i] = (unsigned char)p[i] ^ mask[i & 3];
    if (write(c->fd, f, h + n) < 0)
        note_err("ws write: %s", strerror(errno));
}

/* Process complete WebSocket frames; returns bytes consumed, or (size_t)-1 to close. */
static size_t ws_process(conn_t *c, char *buf, size_t len)
{
    size_t off = 0;
    while (len - off >= 2) {
        unsigned char *f = (unsigned char *)buf + off;
        int op = f[0] & 0x0f;
        uint64_t pl = f[1] & 0x7f;
        size_t h = 2;
        if (pl == 126) {
            if (len - off < 4)
                break;
            pl = ((uint64_t)f[2] << 8) | f[3];
            h = 4;
        } else if (pl == 127) {
            if (len - off < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = (pl << 8) | f[2 + i];
            h = 10;
        }
        if (f[1] & 0x80)
            h += 4; /* a server must not mask; skip the key if it does */
        if (pl > LG_CARRY_MAX / 2) {
            note_err("ws frame of %" PRIu64 " bytes", pl);
            return (size_t)-1;
        }
        if (len - off < h + pl)
            break;
        char *p = buf + off + h;
        if (op == 1 || op == 0)
            on_payload(c, p, (size_t)pl);
        else if (op == 9)
            ws_send(c, 10, p, (size_t)pl);
        else if (op == 8)
            return (size_t)-1;
        off += h + (size_t)pl;
    }
    return off;
}

/* Decode chunked transfer coding in place; returns the decoded length. */
enum { CH_SIZE, CH_EXT, CH_DATA, CH_CRLF };
static size_t dechunk(conn_t *c, char *buf, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        switch (c->ch_state) {
        case CH_SIZE: {
            char ch = buf[in++];
            if (isxdigit((unsigned char)ch)) {
                int v = isdigit((unsigned char)ch) ? ch - '0' : (tolower(ch) - 'a' + 10);
                c->ch_left = c->ch_left * 16 + (uint64_t)v;
            } else if (ch == '\n') {
                c->ch_state = c->ch_left ? CH_DATA : CH_CRLF;
                c->ch_crlf = 0;
            } else if (ch != '\r') {
                c->ch_state = CH_EXT;
            }
            break;
        }
        case CH_EXT:
            if (buf[in++] == '\n')
                c->ch_state = c->ch_left ? CH_DATA : CH_CRLF;
            break;
        case CH_DATA: {
            size_t n = len - in;
            if (n > c->ch_left)
                n = (size_t)c->ch_left;
            memmove(buf + out, buf + in, n);
            in += n;
            out += n;
            c->ch_left -= n;
            if (!c->ch_left) {
                c->ch_state = CH_CRLF;
                c->ch_crlf = 0;
            }
            break;
        }
        case CH_CRLF:
            if (buf[in++] == '\n') {
                c->ch_state = CH_SIZE;
                c->ch_left = 0;
            }
            break;
        }
    }
    return out;
}

static int keep_carry(conn_t *c, const char *p, size_t n)
{
    if (n > LG_CARRY_MAX)
        return -1;
    if (n > c->carry_cap) {
        size_t cap = n < 256 ? 256 : n;
        char *nc = realloc(c->carry, cap);
        if (!nc)
            return -1;
        c->carry = nc;
        c->carry_cap = (uint32_t)cap;
    }
    if (n)
        memmove(c->carry, p, n);
    c->carry_len = (uint32_t)n;
    if (n == 0 && c->carry_cap > 4096) {
        free(c->carry);
        c->carry = NULL;
        c->carry_cap = 0;
    }
    return 0;
}

static const char b64tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void topic_name(char *out, size_t sz, uint32_t t)
{
    snprintf(out, sz, "%s.%u", cfg.topic_prefix, t);
}

static void path_for(char *out, size_t sz, const char *tmpl, uint32_t t)
{
    char topic[96];
    topic_name(topic, sizeof(topic), t);
    const char *s = strstr(tmpl, "%s");
    if (!s) {
        snprintf(out, sz, "%s", tmpl);
        return;
    }
    snprintf(out, sz, "%.*s%s%s", (int)(s - tmpl), tmpl, topic, s + 2);
}

static int handle_headers(conn_t *c, char *buf, size_t len, size_t *body_off)
{
    char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > LG_HDR_MAX ? -1 : 0;
    *end = 0;
    int code = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
        return -1;
    int want = cfg.mode == MODE_WS ? 101 : 200;
    if (code != want) {
        note_err("subscriber got status %d", code);
        if (cfg.mode == MODE_WS)
            n_upgrade_fail++;
        return -1;
    }
    for (char *p = buf; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    c->chunked = strstr(buf, "transfer-encoding: chunked") != NULL;
    c->ch_state = CH_SIZE;
    c->ch_left = 0;
    *body_off = (size_t)(end - buf) + 4;
    c->state = C_BODY;
    if (cfg.mode == MODE_WS && cfg.server == SRV_HERALD) {
        char msg[200], topic[96];
        topic_name(topic, sizeof(topic), c->topic);
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"topic\":\"%s\"}", topic);
        ws_send(c, 1, msg, (size_t)n);
    } else {
        c->ready = 1;
        n_ready++;
        topic_subs[c->topic]++;
    }
    return 1;
}

static void start_more(void);

static void on_conn_read(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    (void)what;
    for (int iter = 0; iter < 4; iter++) {
        size_t cl = c->carry_len;
        if (cl)
            memcpy(rbuf, c->carry, cl);
        ssize_t n = read(fd, rbuf + cl, LG_RBUF);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c, 1);
            return;
        }
        if (n < 0)
            return;
        size_t len = cl + (size_t)n;
        size_t off = 0;
        if (c->state == C_HEADERS) {
            int r = handle_headers(c, rbuf, len, &off);
            if (r < 0) {
                conn_close(c, 1);
                return;
            }
            if (r == 0) {
                if (keep_carry(c, rbuf, len) < 0)
                    conn_close(c, 1);
                return;
            }
            connecting--;
            start_more();
            /* Body bytes after the headers: dechunk them in place. */
            if (c->chunked) {
                size_t m = dechunk(c, rbuf + off, len - off);
                len = off + m;
            }
        } else if (c->chunked) {
            size_t m = dechunk(c, rbuf + cl, (size_t)n);
            len = cl + m;
        }
        size_t used = cfg.mode == MODE_WS ? ws_process(c, rbuf + off, len - off)
                                          : sse_process(c, rbuf + off, len - off);
        if (used == (size_t)-1 || keep_carry(c, rbuf + off + used, len - off - used) < 0) {
            conn_close(c, 1);
            return;
        }
        if ((size_t)n < LG_RBUF)
            return;
    }
}

static void on_conn_connected(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    (void)what;
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        note_err("connect: %s", strerror(err));
        conn_close(c, 0);
        return;
    }
    char path[512], req[1024];
    path_for(path, sizeof(path), cfg.sub_path, c->topic);
    int n;
    if (cfg.mode == MODE_WS) {
        unsigned char key[16];
        char k64[32];
        for (int i = 0; i < 16; i++)
            key[i] = (unsigned char)random();
        int j = 0;
        for (int i = 0; i < 16; i += 3) {
            uint32_t v = (uint32_t)key[i] << 16;
            if (i + 1 < 16)
                v |= (uint32_t)key[i + 1] << 8;
            if (i + 2 < 16)
                v |= key[i + 2];
            k64[j++] = b64tab[(v >> 18) & 63];
            k64[j++] = b64tab[(v >> 12) & 63];
            k64[j++] = i + 1 < 16 ? b64tab[(v >> 6) & 63] : '=';
            k64[j++] = i + 2 < 16 ? b64tab[v & 63] : '=';
        }
        k64[j] = 0;
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, k64,
                     cfg.server == SRV_HERALD ? "Sec-WebSocket-Protocol: herald.v1\r\n" : "");
    } else {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n\r\n",
                     path);
    }
    if (write(fd, req, (size_t)n) != n) {
        note_err("request write: %s", strerror(errno));
        conn_close(c, 0);
        return;
    }
    c->state = C_HEADERS;
    event_free(c->ev);
    c->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_conn_read, c);
    event_add(c->ev, NULL);
}

static void conn_close(conn_t *c, int counted)
{
    if (c->state == C_CLOSED)
        return;
    if (c->state == C_CONNECTING || c->state == C_HEADERS) {
        connecting--;
        n_failed++;
    } else if (c->ready) {
        n_closed_after_ready++;
        n_ready--;
        topic_subs[c->topic]--;
    } else if (counted) {
        n_failed++;
    }
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->carry);
    c->carry = NULL;
    c->carry_len = c->carry_cap = 0;
    c->state = C_CLOSED;
    start_more();
}

static void start_one(long i)
{
    conn_t *c = &conns[i];
    c->topic = (uint32_t)(i % cfg.topics);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_err("socket: %s", strerror(errno));
        c->state = C_CLOSED;
        n_failed++;
        return;
    }
    if (cfg.src_addrs > 1) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % cfg.src_addrs));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            note_err("bind: %s", strerror(errno));
            close(c->fd);
            c->fd = -1;
            c->state = C_CLOSED;
            n_failed++;
            return;
        }
    }
    int r = connect(c->fd, (struct sockaddr *)&cfg.target, sizeof(cfg.target));
    if (r < 0 && errno != EINPROGRESS) {
        note_err("connect: %s", strerror(errno));
        close(c->fd);
        c->fd = -1;
        c->state = C_CLOSED;
        n_failed++;
        return;
    }
    c->state = C_CONNECTING;
    connecting++;
    c->ev = event_new(base, c->fd, EV_WRITE, on_conn_connected, c);
    event_add(c->ev, NULL);
}

static void start_more(void)
{
    while (next_to_connect < cfg.conns && connecting < cfg.connect_par)
        start_one(next_to_connect++);
}

/* ---------- publishers ---------- */

static size_t make_payload(char *out, uint32_t topic, uint64_t seq, uint64_t ts)
{
    int n = snprintf(out, (size_t)cfg.size + 64, "@s%" PRIu64 ".%" PRIu64 ".%u.", seq, ts, topic);
    size_t len = (size_t)n;
    if ((long)len < cfg.size) {
        memset(out + len, 'x', (size_t)cfg.size - len);
        len = (size_t)cfg.size;
    }
    return len;
}

static void pub_one_redis(pubconn_t *p)
{
    char payload[70000], topic[96];
    uint32_t t = (uint32_t)(pub_index++ % (uint64_t)cfg.topics);
    uint64_t seq = ++topic_seq[t];
    size_t pl = make_payload(payload, t, seq, now_us());
    topic_name(topic, sizeof(topic), t);
    struct evbuffer *out = bufferevent_get_output(p->bev);
    evbuffer_add_printf(out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(topic), topic,
                        pl);
    evbuffer_add(out, payload, pl);
    evbuffer_add(out, "\r\n", 2);
    published++;
    owed += topic_subs[t];
    pub_sent_bytes += pl;
}

static void pub_one_http(pubconn_t *p)
{
    char payload[70000], path[512];
    uint32_t t = (uint32_t)(pub_index++ % (uint64_t)cfg.topics);
    uint64_t seq = ++topic_seq[t];
    size_t pl = make_payload(payload, t, seq, now_us());
    path_for(path, sizeof(path), cfg.pub_path, t);
    struct evbuffer *out = bufferevent_get_output(p->bev);
    evbuffer_add_printf(out,
                        "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n"
                        "Content-Type: text/plain\r\n",
                        path, pl);
    if (cfg.pub_key)
        evbuffer_add_printf(out, "Authorization: Bearer %s\r\n", cfg.pub_key);
    evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, payload, pl);
    p->inflight++;
    published++;
    owed += topic_subs[t];
    pub_sent_bytes += pl;
}

static void pub_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!publishing || cur_rate <= 0)
        return;
    double el = (double)(now_us() - rate_t0_us) / 1e6;
    uint64_t due = rate_sent0 + (uint64_t)(el * cur_rate);
    int budget = 5000;
    /* --window: never more than W undelivered events per subscriber, so that an overloaded
     * server is measured at its capacity rather than drowned in a growing backlog. */
    uint64_t cap = cfg.window > 0 ? (uint64_t)cfg.window * (uint64_t)n_ready : UINT64_MAX / 2;
    while (published < due && budget-- > 0) {
        if (owed > st.deliveries + cap)
            break;
        if (cfg.pub == PUB_REDIS) {
            pub_one_redis(&pubs[0]);
        } else {
            /* A topic always goes through the same connection, one request at a time, so
             * the server sees each topic's events in sequence order. */
            pubconn_t *p = &pubs[(pub_index % (uint64_t)cfg.topics) % (uint64_t)npubs];
            if (p->inflight >= cfg.pub_pipeline || !p->bev)
                break; /* that connection is full: the publisher is behind */
            pub_one_http(p);
        }
    }
}

static void on_pub_redis_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line)
            return;
        if (line[0] == '-') {
            pub_errors++;
            note_err("redis: %s", line);
        }
        pub_replies++;
        free(line);
    }
}

static void on_pub_http_read(struct bufferevent *bev, void *arg)
{
    pubconn_t *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        if (!p->hdr_done) {
            struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (e.pos < 0)
                return;
            size_t hl = (size_t)e.pos + 4;
            char *h = malloc(hl + 1);
            evbuffer_remove(in, h, hl);
            h[hl] = 0;
            int code = 0;
            sscanf(h, "HTTP/1.%*d %d", &code);
            for (char *q = h; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            char *cl = strstr(h, "content-length:");
            p->body_left = cl ? atol(cl + 15) : 0;
            p->chunked = strstr(h, "transfer-encoding: chunked") != NULL;
            if (code < 200 || code >= 300) {
                pub_errors++;
                note_err("publish answered %d", code);
            }
            free(h);
            p->hdr_done = 1;
        }
        if (p->chunked) {
            struct evbuffer_ptr e = evbuffer_search(in, "0\r\n\r\n", 5, NULL);
            if (e.pos < 0)
                return;
            evbuffer_drain(in, (size_t)e.pos + 5);
        } else {
            size_t have = evbuffer_get_length(in);
            size_t take = have < (size_t)p->body_left ? have : (size_t)p->body_left;
            evbuffer_drain(in, take);
            p->body_left -= (long)take;
            if (p->body_left > 0)
                return;
        }
        p->inflight--;
        p->hdr_done = 0;
        pub_replies++;
        if (evbuffer_get_length(in) == 0)
            break;
    }
    pub_tick(-1, 0, NULL);
}

static void on_pub_event(struct bufferevent *bev, short what, void *arg);

static void pub_connect(pubconn_t *p)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev || bufferevent_socket_connect(bev, (struct sockaddr *)&cfg.pub_target,
                                           sizeof(cfg.pub_target)) < 0)
        die("publisher connect failed");
    bufferevent_setcb(bev, cfg.pub == PUB_REDIS ? on_pub_redis_read : on_pub_http_read, NULL,
                      on_pub_event, p);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    int one = 1;
    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->bev = bev;
    p->inflight = 0;
    p->hdr_done = 0;
}

/* A publisher connection closed by the server (e.g. nginx keepalive_requests): the requests
 * still in flight are lost and counted; the connection is opened again. */
static void on_pub_event(struct bufferevent *bev, short what, void *arg)
{
    pubconn_t *p = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        note_err("publisher connection closed with %d requests in flight", p->inflight);
        pub_errors += (uint64_t)p->inflight;
        pub_reconnects++;
        bufferevent_free(bev);
        p->bev = NULL;
        pub_connect(p);
    }
}

static void pubs_open(void)
{
    if (cfg.pub == PUB_NONE)
        return;
    /* Topic t uses connection t % N: more connections than topics would sit idle. */
    npubs = cfg.pub == PUB_REDIS         ? 1
            : cfg.pub_conns < cfg.topics ? (int)cfg.pub_conns
                                         : (int)cfg.topics;
    pubs = calloc((size_t)npubs, sizeof(*pubs));
    for (int i = 0; i < npubs; i++)
        pub_connect(&pubs[i]);
}

static void set_rate(double r)
{
    cur_rate = r;
    rate_t0_us = now_us();
    rate_sent0 = published;
}

/* ---------- blocking Redis query (only outside the measured phases) ---------- */

static long redis_info_field(const char *section, const char *field)
{
    if (!cfg.have_redis)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&cfg.redis, sizeof(cfg.redis)) < 0) {
        close(fd);
        return -1;
    }
    char req[128];
    int n =
        snprintf(req, sizeof(req), "*2\r\n$4\r\nINFO\r\n$%zu\r\n%s\r\n", strlen(section), section);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char buf[65536];
    size_t have = 0;
    long want = -1;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = 0;
        if (want < 0 && buf[0] == '$' && strstr(buf, "\r\n"))
            want = atol(buf + 1) + (long)(strstr(buf, "\r\n") - buf) + 4;
        if (want >= 0 && (long)have >= want)
            break;
    }
    close(fd);
    buf[have] = 0;
    char key[96];
    snprintf(key, sizeof(key), "\n%s:", field);
    char *p = strstr(buf, key);
    return p ? atol(p + strlen(key)) : -1;
}

/* ---------- main flow ---------- */

static int phase_done;
static long watch_rss_max[LG_MAX_WATCH];

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (int i = 0; i < cfg.nwatch; i++) {
        psample_t s;
        psample(cfg.watch[i].pid, &s);
        if (s.rss_kb > watch_rss_max[i])
            watch_rss_max[i] = s.rss_kb;
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    phase_done = 1;
    event_base_loopbreak(base);
}

/* Run the loop until pred() is true or the timeout passes; returns 1 when pred() held. */
static int run_until(int (*pred)(void), double timeout_s)
{
    uint64_t end = now_us() + (uint64_t)(timeout_s * 1e6);
    struct timeval tick = {0, 50000};
    struct event *t = event_new(base, -1, 0, on_stop, NULL);
    while (!(pred && pred())) {
        uint64_t n = now_us();
        if (n >= end)
            break;
        uint64_t left = end - n;
        if (pred && left > 50000)
            left = 50000;
        tick.tv_sec = (long)(left / 1000000u);
        tick.tv_usec = (long)(left % 1000000u);
        evtimer_add(t, &tick);
        event_base_loop(base, EVLOOP_ONCE);
        if (!pred && now_us() >= end)
            break;
    }
    event_free(t);
    return pred ? pred() : 1;
}

static int all_settled(void)
{
    return next_to_connect >= cfg.conns && connecting == 0 &&
           n_ready + n_failed + n_closed_after_ready >= cfg.conns;
}

static int all_caught_up(void)
{
    if (cfg.pub != PUB_NONE && pub_replies < published)
        return 0;
    for (long i = 0; i < cfg.conns; i++) {
        conn_t *c = &conns[i];
        if (c->state == C_BODY && c->ready && c->last_seq < topic_seq[c->topic])
            return 0;
    }
    return 1;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sample_all(psample_t *out)
{
    for (int i = 0; i < cfg.nwatch; i++)
        psample_full(cfg.watch[i].pid, &out[i]);
}

static void usage(FILE *f)
{
    fputs(
        "usage: loadgen --target HOST:PORT [options]\n"
        "Subscribers, a paced publisher, latency and sequence checks against one push server.\n"
        "\n"
        "subscribers\n"
        "  --target HOST:PORT      server the subscribers connect to (required)\n"
        "  --server herald|nchan   protocol dialect (default herald)\n"
        "  --mode sse|ws           subscriber transport (default sse)\n"
        "  --conns N               subscribers (default 100)\n"
        "  --topics T              topics; subscriber i takes topic i %% T (default 1)\n"
        "  --topic-prefix P        topic names are P.0 .. P.<T-1> (default bench)\n"
        "  --sub-path TMPL         request path, %s = topic (default herald sse /events/%s,\n"
        "                          herald ws /ws, nchan /sub/%s)\n"
        "  --src-addrs K           bind subscribers to 127.0.0.2 .. 127.0.0.<K+1> (default 1:\n"
        "                          no bind); RLIMIT_NOFILE is raised to fit --conns\n"
        "  --connect-par N         connections being set up at once (default 256)\n"
        "  --connect-timeout S     seconds for every subscriber to be ready (default 60)\n"
        "publisher\n"
        "  --pub redis|http|none   raw PUBLISH <topic> <payload> to Redis, or HTTP POST\n"
        "                          (default redis)\n"
        "  --pub-target HOST:PORT  Redis (pub redis) or HTTP server (pub http; default --target)\n"
        "  --pub-path TMPL         HTTP publish path, %s = topic (default herald /publish/%s,\n"
        "                          nchan /pub/%s)\n"
        "  --pub-key KEY           HTTP publish: Authorization: Bearer KEY\n"
        "  --pub-conns N           HTTP publish keep-alive connections (see --pub-pipeline);\n"
        "                          topic t always uses connection t %% N (default 8)\n"
        "  --pub-pipeline K        HTTP publish requests in flight per connection (HTTP/1.1\n"
        "                          pipelining, answered in order; default 1)\n"
        "  --rate R                events per second over all topics (default 100; 0: no\n"
        "                          publishing, idle connections)\n"
        "  --size B                payload bytes (default 200)\n"
        "  --window W              publish only while fewer than W events per subscriber are\n"
        "                          undelivered (default 0: no limit); with --ramp the rate\n"
        "                          then levels off at what the server delivers\n"
        "phases\n"
        "  --settle S              seconds after every subscriber is ready (default 1)\n"
        "  --warmup S              seconds of publishing not measured (default 1)\n"
        "  --duration S            measured seconds (default 5); with --rate 0: idle hold\n"
        "  --ramp F --steps N      saturation: N measured steps, the first at --rate for\n"
        "  --step-duration S       --duration seconds, each next one --step-duration seconds\n"
        "                          at F times the rate before; stops early when the\n"
        "                          subscribers get less than 75%% of what was published, or\n"
        "                          the delivery rate grows less than 5%% over the step before\n"
        "  --drain S               after publishing, seconds to wait for every subscriber to\n"
        "                          receive the last event of its topic (default 10)\n"
        "measurement\n"
        "  --watch NAME=PID        sample CPU (utime+stime, per thread too) and RSS of PID from\n"
        "                          /proc (repeatable, up to 8)\n"
        "  --redis HOST:PORT       Redis to read INFO (pubsub_channels) from once subscribed\n"
        "  --label TEXT            copied into the JSON\n"
        "  --json FILE             write the JSON object to FILE (default stdout)\n"
        "  --ready-file FILE       create FILE when the measured phase starts (to start a\n"
        "                          profiler then)\n"
        "  --quiet                 no human summary on stderr\n"
        "  --external              with --pub none: another loadgen publishes (to spread the\n"
        "                          subscribers over several generator processes and cores);\n"
        "                          measure the latency of what arrives over --duration\n"
        "\n"
        "Payloads carry '@s<seq>.<t_us>.<topic>.'; each subscriber checks that the sequence of\n"
        "its topic has no gap, duplicate or reordering after its first event, and that it got\n"
        "the last one. Latency (publish write -> subscriber read) counts measured events only.\n",
        f);
}

static void raise_nofile(long need)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = (rlim_t)need + 256;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want <= rl.rlim_max ? want : rl.rlim_max;
        if (rl.rlim_max < want) {
            rl.rlim_max = want;
            rl.rlim_cur = want;
        }
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)need + 16)
        die("RLIMIT_NOFILE %lu is too low for %ld connections", (unsigned long)rl.rlim_cur, need);
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", 1, 0, 't'},        {"server", 1, 0, 'S'},
        {"mode", 1, 0, 'm'},          {"conns", 1, 0, 'c'},
        {"topics", 1, 0, 'T'},        {"topic-prefix", 1, 0, 'P'},
        {"sub-path", 1, 0, 'p'},      {"src-addrs", 1, 0, 'a'},
        {"connect-par", 1, 0, 'C'},   {"connect-timeout", 1, 0, 'O'},
        {"pub", 1, 0, 'u'},           {"pub-target", 1, 0, 'U'},
        {"pub-path", 1, 0, 'q'},      {"pub-key", 1, 0, 'k'},
        {"pub-conns", 1, 0, 'n'},     {"pub-pipeline", 1, 0, 'I'},
        {"window", 1, 0, 'X'},        {"rate", 1, 0, 'r'},
        {"size", 1, 0, 'z'},          {"settle", 1, 0, 's'},
        {"warmup", 1, 0, 'w'},        {"duration", 1, 0, 'd'},
        {"ramp", 1, 0, 'R'},          {"steps", 1, 0, 'N'},
        {"step-duration", 1, 0, 'D'}, {"drain", 1, 0, 'e'},
        {"watch", 1, 0, 'W'},         {"redis", 1, 0, 'x'},
        {"label", 1, 0, 'l'},         {"json", 1, 0, 'j'},
        {"ready-file", 1, 0, 'F'},    {"quiet", 0, 0, 'Q'},
        {"external", 0, 0, 'E'},      {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int o, have_target = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            if (parse_hostport(optarg, &cfg.target) < 0)
                die("--target: want IPv4:PORT, got '%s'", optarg);
            have_target = 1;
            break;
        case 'S':
            if (!strcmp(optarg, "herald"))
                cfg.server = SRV_HERALD;
            else if (!strcmp(optarg, "nchan"))
                cfg.server = SRV_NCHAN;
            else
                die("--server: herald or nchan");
            break;
        case 'm':
            if (!strcmp(optarg, "sse"))
                cfg.mode = MODE_SSE;
            else if (!strcmp(optarg, "ws"))
                cfg.mode = MODE_WS;
            else
                die("--mode: sse or ws");
            break;
        case 'c':
            cfg.conns = atol(optarg);
            break;
        case 'T':
            cfg.topics = atol(optarg);
            break;
        case 'P':
            cfg.topic_prefix = optarg;
            break;
        case 'p':
            cfg.sub_path = optarg;
            break;
        case 'a':
            cfg.src_addrs = atol(optarg);
            break;
        case 'C':
            cfg.connect_par = atol(optarg);
            break;
        case 'O':
            cfg.connect_timeout = atof(optarg);
            break;
        case 'u':
            if (!strcmp(optarg, "redis"))
                cfg.pub = PUB_REDIS;
            else if (!strcmp(optarg, "http"))
                cfg.pub = PUB_HTTP;
            else if (!strcmp(optarg, "none"))
                cfg.pub = PUB_NONE;
            else
                die("--pub: redis, http or none");
            break;
        case 'U':
            if (parse_hostport(optarg, &cfg.pub_target) < 0)
                die("--pub-target: want IPv4:PORT");
            cfg.have_pub_target = 1;
            break;
        case 'q':
            cfg.pub_path = optarg;
            break;
        case 'k':
            cfg.pub_key = optarg;
            break;
        case 'n':
            cfg.pub_conns = atol(optarg);
            break;
        case 'I':
            cfg.pub_pipeline = atol(optarg);
            break;
        case 'X':
            cfg.window = atol(optarg);
            break;
        case 'r':
            cfg.rate = atof(optarg);
            break;
        case 'z':
            cfg.size = atol(optarg);
            break;
        case 's':
            cfg.settle = atof(optarg);
            break;
        case 'w':
            cfg.warmup = atof(optarg);
            break;
        case 'd':
            cfg.duration = atof(optarg);
            break;
        case 'R':
            cfg.ramp = atof(optarg);
            break;
        case 'N':
            cfg.steps = atol(optarg);
            break;
        case 'D':
            cfg.step_duration = atof(optarg);
            break;
        case 'e':
            cfg.drain = atof(optarg);
            break;
        case 'W': {
            char *eq = strchr(optarg, '=');
            if (!eq || cfg.nwatch >= LG_MAX_WATCH)
                die("--watch NAME=PID (at most %d)", LG_MAX_WATCH);
            *eq = 0;
            cfg.watch[cfg.nwatch].name = optarg;
            cfg.watch[cfg.nwatch].pid = atoi(eq + 1);
            cfg.nwatch++;
            break;
        }
        case 'x':
            if (parse_hostport(optarg, &cfg.redis) < 0)
                die("--redis: want IPv4:PORT");
            cfg.have_redis = 1;
            break;
        case 'l':
            cfg.label = optarg;
            break;
        case 'j':
            cfg.json_path = optarg;
            break;
        case 'F':
            cfg.ready_file = optarg;
            break;
        case 'Q':
            cfg.quiet = 1;
            break;
        case 'E':
            cfg.external = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!have_target)
        die("--target HOST:PORT is required (--help)");
    if (cfg.conns < 0 || cfg.conns > 1000000 || cfg.topics < 1 || cfg.topics > 1000000)
        die("--conns 0..1000000, --topics 1..1000000");
    if (cfg.src_addrs < 1 || cfg.src_addrs > 250)
        die("--src-addrs 1..250");
    if (cfg.size < 48 || cfg.size > 65536)
        die("--size 48..65536");
    if (cfg.steps < 1 || cfg.steps > LG_MAX_STEPS)
        die("--steps 1..%d", LG_MAX_STEPS);
    if (cfg.pub_conns < 1 || cfg.pub_conns > 256)
        die("--pub-conns 1..256");
    if (cfg.pub_pipeline < 1 || cfg.pub_pipeline > 1024)
        die("--pub-pipeline 1..1024");
    if (cfg.connect_par < 1)
        cfg.connect_par = 1;
    if (!cfg.sub_path)
        cfg.sub_path = cfg.server == SRV_NCHAN ? "/sub/%s"
                       : cfg.mode == MODE_WS   ? "/ws"
                                               : "/events/%s";
    if (!cfg.pub_path)
        cfg.pub_path = cfg.server == SRV_NCHAN ? "/pub/%s" : "/publish/%s";
    if (!cfg.have_pub_target)
        cfg.pub_target = cfg.target;
    if (cfg.rate <= 0)
        cfg.pub = PUB_NONE;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void print_procs(FILE *f, const psample_t *a, const psample_t *b, const psample_t *base0,
                        const psample_t *conn)
{
    fputs("{", f);
    for (int i = 0; i < cfg.nwatch; i++) {
        fprintf(f, "%s", i ? "," : "");
        json_str(f, cfg.watch[i].name);
        fprintf(f,
                ":{\"pid\":%d,\"cpu_s\":%.3f,\"rss_before_kb\":%ld,\"rss_connected_kb\":%ld,"
                "\"rss_end_kb\":%ld,\"rss_max_kb\":%ld,\"threads\":[",
                cfg.watch[i].pid, b[i].cpu_s >= 0 && a[i].cpu_s >= 0 ? b[i].cpu_s - a[i].cpu_s : -1,
                base0[i].rss_kb, conn[i].rss_kb, b[i].rss_kb, watch_rss_max[i]);
        int first = 1;
        for (int k = 0; k < b[i].ntask; k++) {
            double c0 = 0;
            for (int m = 0; m < a[i].ntask; m++)
                if (a[i].tid[m] == b[i].tid[k])
                    c0 = a[i].tcpu[m];
            fprintf(f, "%s{\"tid\":%d,\"name\":", first ? "" : ",", b[i].tid[k]);
            json_str(f, b[i].tname[k]);
            fprintf(f, ",\"cpu_s\":%.3f}", b[i].tcpu[k] - c0);
            first = 0;
        }
        fputs("]}", f);
    }
    fputs("}", f);
}

static void on_sigint(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fprintf(stderr, "loadgen: interrupted\n");
    exit(130);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid() ^ (unsigned)now_us());
    raise_nofile(cfg.conns + cfg.pub_conns + 64);
    base = event_base_new();
    if (!base)
        die("event_base_new failed");
    struct event *sigev = evsignal_new(base, SIGINT, on_sigint, NULL);
    event_add(sigev, NULL);
    struct event *sigev2 = evsignal_new(base, SIGTERM, on_sigint, NULL);
    event_add(sigev2, NULL);
    conns = calloc((size_t)(cfg.conns ? cfg.conns : 1), sizeof(*conns));
    topic_seq = calloc((size_t)cfg.topics, sizeof(*topic_seq));
    topic_subs = calloc((size_t)cfg.topics, sizeof(*topic_subs));
    if (!conns || !topic_seq || !topic_subs)
        die("out of memory");
    for (long i = 0; i < cfg.conns; i++)
        conns[i].fd = -1;

    struct event *sampler = event_new(base, -1, EV_PERSIST, on_sample, NULL);
    struct timeval sp = {0, 250000};
    event_add(sampler, &sp);

    psample_t p_before[LG_MAX_WATCH], p_conn[LG_MAX_WATCH], p_m0[LG_MAX_WATCH], p_m1[LG_MAX_WATCH];
    memset(p_conn, 0, sizeof(p_conn));
    sample_all(p_before);
    on_sample(-1, 0, NULL);

    /* 1. connect every subscriber */
    uint64_t t_conn0 = now_us();
    double cpu_c0 = self_cpu();
    start_more();
    run_until(all_settled, cfg.connect_timeout);
    double connect_s = (double)(now_us() - t_conn0) / 1e6;
    double connect_cpu = self_cpu() - cpu_c0;
    long ready_after_connect = n_ready;
    run_until(NULL, cfg.settle);
    sample_all(p_conn);
    long pubsub_channels = redis_info_field("stats", "pubsub_channels");
    long pubsub_patterns = redis_info_field("stats", "pubsub_patterns");
    if (!cfg.quiet)
        fprintf(stderr, "loadgen: %ld/%ld subscribers ready in %.1f s (%ld failed)\n", n_ready,
                cfg.conns, connect_s, n_failed);

    /* 2. publish: warm-up, then measured steps */
    pubs_open();
    step_t steps[LG_MAX_STEPS];
    int nsteps = 0, best = 0;
    double pub_cpu0 = 0, measured_s = 0;
    uint64_t deliv_m0 = 0, pub_m0 = 0;
    stats_t st_m0;
    psample_t p_s0[LG_MAX_WATCH], p_s1[LG_MAX_WATCH];
    int drained = 1;
    double drain_s = 0;
    if (cfg.pub != PUB_NONE) {
        struct event *tick = event_new(base, -1, EV_PERSIST, pub_tick, NULL);
        struct timeval tv = {0, 1000};
        event_add(tick, &tv);
        publishing = 1;
        set_rate(cfg.rate);
        run_until(NULL, cfg.warmup);
        measure_from_us = now_us();
        if (cfg.ready_file) {
            FILE *rf = fopen(cfg.ready_file, "w");
            if (rf)
                fclose(rf);
        }
        sample_all(p_m0);
        pub_cpu0 = self_cpu();
        deliv_m0 = st.deliveries;
        pub_m0 = published;
        st_m0 = st;
        uint64_t t0 = now_us();
        double rate = cfg.rate;
        int nst = cfg.ramp > 1 ? (int)cfg.steps : 1;
        double sdur = cfg.ramp > 1 ? cfg.step_duration : cfg.duration;
        for (int s = 0; s < nst; s++) {
            step_t *sp2 = &steps[nsteps++];
            memset(sp2, 0, sizeof(*sp2));
            if (s)
                set_rate(rate);
            sample_all(p_s0);
            hist_t save = st.lat;
            memset(&st.lat, 0, sizeof(st.lat));
            uint64_t d0 = st.deliveries, q0 = published, ts0 = now_us();
            uint64_t g0 = st.gaps, u0 = st.dups, o0 = st.ooo;
            double c0 = self_cpu();
            measure_from_us = ts0;
            run_until(NULL, s == 0 ? cfg.duration : sdur);
            double el = (double)(now_us() - ts0) / 1e6;
            sample_all(p_s1);
            sp2->rate_target = rate;
            sp2->t_s = el;
            sp2->published = published - q0;
            sp2->deliveries = st.deliveries - d0;
            sp2->gaps = st.gaps - g0;
            sp2->dups = st.dups - u0;
            sp2->ooo = st.ooo - o0;
            sp2->pub_rate = (double)sp2->published / el;
            sp2->deliv_rate = (double)sp2->deliveries / el;
            sp2->self_cpu_s = self_cpu() - c0;
            for (int i = 0; i < cfg.nwatch; i++)
                sp2->cpu[i] = p_s1[i].cpu_s - p_s0[i].cpu_s;
            sp2->p50 = hist_pct_ms(&st.lat, 0.50);
            sp2->p90 = hist_pct_ms(&st.lat, 0.90);
            sp2->p99 = hist_pct_ms(&st.lat, 0.99);
            sp2->max = (double)st.lat.max / 1000.0;
            /* merge the step's histogram into the whole run's */
            for (unsigned i = 0; i < LG_HIST_N; i++)
                save.b[i] += st.lat.b[i];
            save.n += st.lat.n;
            save.sum += st.lat.sum;
            if (st.lat.max > save.max)
                save.max = st.lat.max;
            st.lat = save;
            if (!cfg.quiet && cfg.ramp > 1)
                fprintf(stderr, "loadgen: step %d rate %.0f/s -> %.0f deliveries/s p99 %.1f ms\n",
                        s, rate, sp2->deliv_rate, sp2->p99);
            if (sp2->deliv_rate > steps[best].deliv_rate)
                best = nsteps - 1;
            /* Saturated: the server delivers less than 75% of what was published to the
             * subscribers it has, or delivers hardly more than at the step before. */
            double expect = sp2->pub_rate * ((double)n_ready / (double)cfg.topics);
            if (cfg.ramp > 1 && s >= 1 &&
                (sp2->deliv_rate < 0.75 * expect ||
                 sp2->deliv_rate < 1.05 * steps[nsteps - 2].deliv_rate))
                break;
            rate *= cfg.ramp > 1 ? cfg.ramp : 1;
        }
        measured_s = (double)(now_us() - t0) / 1e6;
        sample_all(p_m1);
        publishing = 0;
        event_free(tick);
        uint64_t td = now_us();
        drained = run_until(all_caught_up, cfg.drain);
        drain_s = (double)(now_us() - td) / 1e6;
    } else {
        measure_from_us = cfg.external ? now_us() : 0;
        if (cfg.external && cfg.ready_file) {
            FILE *rf = fopen(cfg.ready_file, "w");
            if (rf)
                fclose(rf);
        }
        sample_all(p_m0);
        pub_cpu0 = self_cpu();
        st_m0 = st;
        uint64_t t0 = now_us();
        run_until(NULL, cfg.duration);
        measured_s = (double)(now_us() - t0) / 1e6;
        sample_all(p_m1);
    }
    double measure_cpu = self_cpu() - pub_cpu0;
    (void)st_m0;

    /* Missing tails: the events after a subscriber's last one that never came. */
    uint64_t tail_missing = 0, never_received = 0;
    long open_ready = 0;
    for (long i = 0; i < cfg.conns; i++) {
        conn_t *c = &conns[i];
        if (c->state != C_BODY || !c->ready)
            continue;
        open_ready++;
        if (cfg.pub == PUB_NONE)
            continue;
        if (c->last_seq == 0)
            never_received++;
        else if (c->last_seq < topic_seq[c->topic])
            tail_missing += topic_seq[c->topic] - c->last_seq;
    }

    /* 3. report */
    FILE *f = stdout;
    if (cfg.json_path && !(f = fopen(cfg.json_path, "w")))
        die("cannot write %s", cfg.json_path);
    uint64_t meas_deliv = st.deliveries - deliv_m0, meas_pub = published - pub_m0;
    fprintf(f, "{\"label\":");
    json_str(f, cfg.label);
    fprintf(f,
            ",\"server\":\"%s\",\"mode\":\"%s\",\"pub\":\"%s\",\"conns\":%ld,\"topics\":%ld,"
            "\"size\":%ld,\"rate\":%.1f,\"src_addrs\":%ld,\"window\":%ld,",
            cfg.server == SRV_HERALD ? "herald" : "nchan", cfg.mode == MODE_WS ? "ws" : "sse",
            cfg.pub == PUB_REDIS  ? "redis"
            : cfg.pub == PUB_HTTP ? "http"
                                  : "none",
            cfg.conns, cfg.topics, cfg.size, cfg.rate, cfg.src_addrs, cfg.window);
    fprintf(f,
            "\"ready\":%ld,\"failed\":%ld,\"closed_by_server\":%ld,\"connect_s\":%.3f,"
            "\"connect_self_cpu_s\":%.3f,\"pubsub_channels\":%ld,\"pubsub_patterns\":%ld,",
            ready_after_connect, n_failed, n_closed_after_ready, connect_s, connect_cpu,
            pubsub_channels, pubsub_patterns);
    fprintf(f,
            "\"measured_s\":%.3f,\"published\":%" PRIu64 ",\"published_total\":%" PRIu64
            ",\"pub_errors\":%" PRIu64 ",\"pub_reconnects\":%" PRIu64 ",\"deliveries\":%" PRIu64
            ",\"deliveries_total\":%" PRIu64 ",\"deliveries_per_s\":%.1f,\"publish_per_s\":%.1f,",
            measured_s, meas_pub, published, pub_errors, pub_reconnects, meas_deliv, st.deliveries,
            measured_s > 0 ? (double)meas_deliv / measured_s : 0,
            measured_s > 0 ? (double)meas_pub / measured_s : 0);
    fprintf(f,
            "\"gaps\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64
            ",\"malformed\":%" PRIu64 ",\"tail_missing\":%" PRIu64 ",\"never_received\":%" PRIu64
            ",\"open_at_end\":%ld,\"drained\":%s,\"drain_s\":%.3f,",
            st.gaps, st.dups, st.ooo, st.bad, tail_missing, never_received, open_ready,
            drained ? "true" : "false", drain_s);
    fprintf(f,
            "\"latency_ms\":{\"n\":%" PRIu64 ",\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
            "\"max\":%.3f,\"mean\":%.3f},",
            st.lat.n, hist_pct_ms(&st.lat, 0.5), hist_pct_ms(&st.lat, 0.9),
            hist_pct_ms(&st.lat, 0.99), (double)st.lat.max / 1000.0,
            st.lat.n ? (double)st.lat.sum / (double)st.lat.n / 1000.0 : 0);
    fprintf(f, "\"self_cpu_s\":%.3f,\"self_cpu_frac\":%.3f,\"procs\":", measure_cpu,
            measured_s > 0 ? measure_cpu / measured_s : 0);
    print_procs(f, p_m0, p_m1, p_before, p_conn);
    fprintf(f, ",\"steps\":[");
    for (int s = 0; s < nsteps; s++) {
        step_t *x = &steps[s];
        fprintf(f,
                "%s{\"rate_target\":%.1f,\"t_s\":%.3f,\"published\":%" PRIu64
                ",\"deliveries\":%" PRIu64 ",\"publish_per_s\":%.1f,\"deliveries_per_s\":%.1f,"
                "\"self_cpu_s\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,"
                "\"gaps\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ","
                "\"cpu\":{",
                s ? "," : "", x->rate_target, x->t_s, x->published, x->deliveries, x->pub_rate,
                x->deliv_rate, x->self_cpu_s, x->p50, x->p90, x->p99, x->max, x->gaps, x->dups,
                x->ooo);
        for (int i = 0; i < cfg.nwatch; i++) {
            fprintf(f, "%s", i ? "," : "");
            json_str(f, cfg.watch[i].name);
            fprintf(f, ":%.3f", x->cpu[i]);
        }
        fputs("}}", f);
    }
    fprintf(f, "],\"best_step\":%d,\"first_error\":", nsteps ? best : -1);
    json_str(f, first_err);
    fputs("}\n", f);
    if (f != stdout)
        fclose(f);
    if (!cfg.quiet)
        fprintf(stderr,
                "loadgen: %s %s %ld conns: %" PRIu64 " deliveries in %.1f s (%.0f/s), p50 %.2f "
                "p99 %.2f max %.2f ms, gaps %" PRIu64 " dups %" PRIu64 " ooo %" PRIu64
                " tail %" PRIu64 ", closed %ld, self CPU %.0f%%\n",
                cfg.server == SRV_HERALD ? "herald" : "nchan", cfg.mode == MODE_WS ? "ws" : "sse",
                cfg.conns, meas_deliv, measured_s,
                measured_s > 0 ? (double)meas_deliv / measured_s : 0, hist_pct_ms(&st.lat, 0.5),
                hist_pct_ms(&st.lat, 0.99), (double)st.lat.max / 1000.0, st.gaps, st.dups, st.ooo,
                tail_missing, n_closed_after_ready,
                measured_s > 0 ? 100.0 * measure_cpu / measured_s : 0);
    /* Exit without tearing down 10k sockets one by one: the kernel closes them. */
    fflush(NULL);
    _exit(0);
}
