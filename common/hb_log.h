#ifndef HERALD_COMMON_HB_LOG_H
#define HERALD_COMMON_HB_LOG_H

/*
 * One JSON object per line on stderr (or the fd given), written with a single write(2):
 *   {"ts":"2026-11-25T06:09:00.123Z","level":"info","node":"edge-1","mod":"broker",
 *    "msg":"redis connected", ...fields}
 * Built with jansson (JSON_COMPACT), so bytes from the network are always escaped.
 * Thread-safe. Levels below the configured one cost one comparison.
 */
typedef enum {
    HB_LOG_DEBUG = 0,
    HB_LOG_INFO = 1,
    HB_LOG_WARN = 2,
    HB_LOG_ERROR = 3,
} hb_log_level_t;

/** hb_log_init() - set the level, node id (copied) and output fd; call once before threads. */
void hb_log_init(hb_log_level_t level, const char *node, int fd);
/** hb_log_level_parse() - "debug"/"info"/"warn"/"error" -> level; -1 when unknown. */
int hb_log_level_parse(const char *s);
/** hb_log_enabled() - 1 when a line at `level` would be written. */
int hb_log_enabled(hb_log_level_t level);

/**
 * hb_log() - write one line. `fields` is a jansson json_pack() format for an object with the
 * extra fields (e.g. "{s:s, s:i}", "topic", t, "n", 3), or NULL for none. A pack error still
 * writes the line, with "log_error" set.
 */
void hb_log(hb_log_level_t level, const char *mod, const char *msg, const char *fields, ...);

/**
 * hb_log_ratelimited() - like hb_log(), but at most one line per `key` (a constant string
 * identifying the call site) per `interval_ms`; the next line written carries "suppressed":N.
 * Keeps a small fixed table of keys; keys beyond it are always rate-limited together.
 */
void hb_log_ratelimited(const char *key, unsigned interval_ms, hb_log_level_t level,
                        const char *mod, const char *msg, const char *fields, ...);

#define hb_log_debug(mod, msg, ...) hb_log(HB_LOG_DEBUG, mod, msg, __VA_ARGS__)
#define hb_log_info(mod, msg, ...) hb_log(HB_LOG_INFO, mod, msg, __VA_ARGS__)
#define hb_log_warn(mod, msg, ...) hb_log(HB_LOG_WARN, mod, msg, __VA_ARGS__)
#define hb_log_error(mod, msg, ...) hb_log(HB_LOG_ERROR, mod, msg, __VA_ARGS__)

#endif
