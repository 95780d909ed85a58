#ifndef HERALD_COMMON_HB_ORIGIN_H
#define HERALD_COMMON_HB_ORIGIN_H

/*
 * The --allow-origin allow-list: "*" or a comma-separated list of http(s)://host[:port]
 * origins, checked when the option is set (hb_cfg.c) and matched against a request's Origin
 * (edge auth and CORS). Pure functions of their arguments; any thread.
 */
#include <stddef.h>

/** hb_cfg_origins_valid() - 0 when v is "*" or a comma-separated list of http(s)://host[:port]
 * origins (no path, no spaces), else HB_EINVAL. */
int hb_cfg_origins_valid(const char *v);
/**
 * hb_cfg_origin_index() - where the request origin (origin, len) is in the allow-list: 0 when
 * the list is "*" (every origin), k >= 1 for its k-th entry (compared without regard to
 * case), -1 when it is not allowed.
 */
int hb_cfg_origin_index(const char *list, const char *origin, size_t len);
/** hb_cfg_origin_at() - entry idx (from hb_cfg_origin_index(); 0 is "*") of the list: sets *out
 * to its first byte (not NUL-terminated) and returns its length. */
size_t hb_cfg_origin_at(const char *list, int idx, const char **out);

#endif
