#ifndef HERALD_COMMON_HB_COOKIE_H
#define HERALD_COMMON_HB_COOKIE_H

/*
 * One cookie of a request's Cookie header (RFC 6265 5.4: "name=value" pairs separated by
 * "; "), found by its exact name: the token cookie of --auth-cookie. Pure function of its
 * arguments; any thread.
 */
#include <stddef.h>

/**
 * hb_cookie_find() - the value of the first cookie named exactly @name (case-sensitive, as
 * RFC 6265 compares names) in one Cookie header @hdr of @len bytes (not NUL-terminated; pairs
 * separated by ";" only, a "," being part of a value; blanks around a pair and around "="
 * ignored; one pair of double quotes around the value taken off). Sets *val (into
 * @hdr) and *vlen and returns 1; 0 when no cookie has that name. A name that only ends or
 * starts with @name, or @name inside another cookie's value, is not it.
 */
int hb_cookie_find(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen);

#endif
