#include "hb_log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define LOG_NODE_MAX 128
#define LOG_LINE_STACK 2048
/* Call sites tracked by hb_log_ratelimited(); the last slot is shared by any key beyond. */
#define LOG_RL_SLOTS 64

/*
 * Settings are written by hb_log_init() before threads start (or between tests) and read by
 * every thread. The level and fd are atomic so a late hb_log_init() is at worst a stale read.
 */
static atomic_int log_level = HB_LOG_INFO;
static atomic_int log_fd = 2;
static char log_node[LOG_NODE_MAX] = "";

typedef struct log_rl_slot {
    const char *key;     /* NULL = free */
    int written;         /* a line was written for this key */
    uint64_t last_ms;    /* monotonic time of that line */
    unsigned suppressed; /* lines dropped since */
} log_rl_slot_t;

static pthread_mutex_t log_rl_lock = PTHREAD_MUTEX_INITIALIZER;
static log_rl_slot_t log_rl[LOG_RL_SLOTS]; /* {log_rl_lock} */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hb_log_init(hb_log_level_t level, const char *node, int fd)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_fd, fd);
    snprintf(log_node, sizeof(log_node), "%s", node ? node : "");
    /* A new configuration starts with a clean rate-limit table. */
    pthread_mutex_lock(&log_rl_lock);
    memset(log_rl, 0, sizeof(log_rl));
    pthread_mutex_unlock(&log_rl_lock);
}

int hb_log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int hb_log_enabled(hb_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

static const char *level_name(hb_log_level_t level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "error";
}

/* "2026-11-25T06:09:00.123Z" into out (at least 32 bytes). */
static void format_ts(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * A JSON string for s. jansson refuses invalid UTF-8; such a string is logged with every
 * byte >= 0x80 replaced by '?', so the line is still written and still valid JSON.
 */
static json_t *log_string(const char *s)
{
    if (s == NULL)
        s = "";
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return json_string("?");
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Write all of (p, len): one write(2) unless interrupted or cut short. */
static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Build and write one line; suppressed > 0 adds "suppressed":N. */
static void log_vwrite(hb_log_level_t level, const char *mod, const char *msg, unsigned suppressed,
                       const char *fields, va_list ap)
{
    char ts[32];
    format_ts(ts, sizeof(ts));
    json_t *obj = json_object();
    if (obj == NULL)
        return;
    json_object_set_new(obj, "ts", json_string(ts));
    json_object_set_new(obj, "level", json_string(level_name(level)));
    json_object_set_new(obj, "node", log_string(log_node));
    json_object_set_new(obj, "mod", log_string(mod));
    json_object_set_new(obj, "msg", log_string(msg));
    if (fields != NULL) {
        json_error_t err;
        json_t *extra = json_vpack_ex(&err, 0, fields, ap);
        if (extra == NULL) {
            json_object_set_new(obj, "log_error", log_string(err.text));
        } else if (!json_is_object(extra)) {
            json_object_set_new(obj, "log_error", json_string("fields is not an object"));
        } else {
            /* The fixed fields win: context can never overwrite ts, level or msg. */
            json_object_update_missing(obj, extra);
        }
        json_decref(extra);
    }
    if (suppressed > 0)
        json_object_set_new(obj, "suppressed", json_integer((json_int_t)suppressed));

    char stack[LOG_LINE_STACK];
    char *line = stack;
    size_t n = json_dumpb(obj, stack, sizeof(stack) - 1, JSON_COMPACT);
    if (n > sizeof(stack) - 1) {
        line = malloc(n + 1);
        if (line != NULL)
            n = json_dumpb(obj, line, n, JSON_COMPACT);
    }
    json_decref(obj);
    if (line == NULL || n == 0)
        return;
    line[n] = '\n';
    write_all(atomic_load_explicit(&log_fd, memory_order_relaxed), line, n + 1);
    if (line != stack)
        free(line);
}

void hb_log(hb_log_level_t level, const char *mod, const char *msg, const char *fields, ...)
{
    if (!hb_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fields);
    log_vwrite(level, mod, msg, 0, fields, ap);
    va_end(ap);
}

/* The slot for key: its own, a free one, or the shared last one when the table is full. */
static log_rl_slot_t *rl_slot(const char *key)
{
    for (size_t i = 0; i < LOG_RL_SLOTS - 1; i++) {
        if (log_rl[i].key == NULL) {
            log_rl[i].key = key;
            return &log_rl[i];
        }
        if (log_rl[i].key == key || strcmp(log_rl[i].key, key) == 0)
            return &log_rl[i];
    }
    return &log_rl[LOG_RL_SLOTS - 1];
}

void hb_log_ratelimited(const char *key, unsigned interval_ms, hb_log_level_t level,
                        const char *mod, const char *msg, const char *fields, ...)
{
    if (!hb_log_enabled(level))
        return;
    uint64_t now = now_ms();
    unsigned suppressed;
    pthread_mutex_lock(&log_rl_lock);
    log_rl_slot_t *s = rl_slot(key ? key : "");
    if (s->written && now - s->last_ms < interval_ms) {
        if (s->suppressed < UINT_MAX)
            s->suppressed++;
        pthread_mutex_unlock(&log_rl_lock);
        return;
    }
    suppressed = s->suppressed;
    s->suppressed = 0;
    s->written = 1;
    s->last_ms = now;
    pthread_mutex_unlock(&log_rl_lock);

    va_list ap;
    va_start(ap, fields);
    log_vwrite(level, mod, msg, suppressed, fields, ap);
    va_end(ap);
}
