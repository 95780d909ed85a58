#ifndef HERALD_COMMON_HB_URL_H
#define HERALD_COMMON_HB_URL_H

#include <stddef.h>

/*
 * Query-string parsing for request URLs we route ourselves. Input is the raw query (the bytes
 * after '?', without it). Pairs are separated by '&'; a pair without '=' has an empty value.
 */

/**
 * hb_url_decode() - percent-decode (and '+' -> ' ') (s, len) into out (cap bytes). Returns the
 * decoded length, HB_EPROTO for a malformed escape ("%zz", "%4") or HB_ELIMIT when it does not
 * fit. The output is not NUL-terminated unless there is room (it is when len < cap).
 */
int hb_url_decode(const char *s, size_t len, char *out, size_t cap);

/**
 * hb_url_query_next() - iterate over the pairs of a raw query: *pos starts at 0. Sets key/value
 * to point into q (still percent-encoded). Returns 1 while a pair was found, 0 at the end.
 * Empty pairs ("a=1&&b=2") are skipped.
 */
int hb_url_query_next(const char *q, size_t qlen, size_t *pos, const char **key, size_t *klen,
                      const char **val, size_t *vlen);

/**
 * hb_url_query_get() - decode the first value of `name` into out (cap bytes, NUL-terminated).
 * Returns the decoded length, HB_ENOTFOUND, HB_EPROTO (bad escape) or HB_ELIMIT (too long).
 */
int hb_url_query_get(const char *q, size_t qlen, const char *name, char *out, size_t cap);

#endif
