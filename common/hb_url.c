#include "hb_url.h"

#include <limits.h>
#include <string.h>

#include "hb_err.h"

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decode the byte at s[*i] (one byte, or a "%XX" escape, or '+'), advancing *i. Returns the
 * byte, or -1 for a malformed escape.
 */
static int decode_byte(const char *s, size_t len, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c != '%') {
        (*i)++;
        return c;
    }
    if (len - *i < 3)
        return -1;
    int hi = hex_value((unsigned char)s[*i + 1]);
    int lo = hex_value((unsigned char)s[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi << 4 | lo;
}

int hb_url_decode(const char *s, size_t len, char *out, size_t cap)
{
    /* Errors are reported for the first offending byte, scanning left to right. */
    size_t o = 0;
    size_t i = 0;
    if (cap > INT_MAX)
        cap = INT_MAX; /* the length must fit the int result */
    while (i < len) {
        int c = decode_byte(s, len, &i);
        if (c < 0)
            return HB_EPROTO;
        if (o >= cap)
            return HB_ELIMIT;
        out[o++] = (char)c;
    }
    if (o < cap)
        out[o] = '\0';
    return (int)o;
}

int hb_url_query_next(const char *q, size_t qlen, size_t *pos, const char **key, size_t *klen,
                      const char **val, size_t *vlen)
{
    size_t i = *pos;
    while (i < qlen && q[i] == '&')
        i++; /* empty pairs */
    if (i >= qlen) {
        *pos = qlen;
        return 0;
    }
    const char *pair = q + i;
    const char *amp = memchr(pair, '&', qlen - i);
    size_t plen = amp ? (size_t)(amp - pair) : qlen - i;
    const char *eq = memchr(pair, '=', plen);
    *key = pair;
    if (eq) {
        *klen = (size_t)(eq - pair);
        *val = eq + 1;
        *vlen = plen - *klen - 1;
    } else {
        *klen = plen;
        *val = pair + plen;
        *vlen = 0;
    }
    *pos = i + plen + (amp ? 1 : 0);
    return 1;
}

/* 1 when the still-encoded key decodes to exactly name; a malformed key matches nothing. */
static int key_matches(const char *k, size_t klen, const char *name)
{
    size_t i = 0;
    size_t j = 0;
    while (i < klen) {
        int c = decode_byte(k, klen, &i);
        if (c < 0 || name[j] == '\0' || (unsigned char)name[j] != c)
            return 0;
        j++;
    }
    return name[j] == '\0';
}

int hb_url_query_get(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
    size_t pos = 0;
    const char *k;
    const char *v;
    size_t klen;
    size_t vlen;
    while (hb_url_query_next(q, qlen, &pos, &k, &klen, &v, &vlen)) {
        if (!key_matches(k, klen, name))
            continue;
        if (cap == 0)
            return HB_ELIMIT;
        /* Keep one byte for the NUL. */
        int n = hb_url_decode(v, vlen, out, cap - 1);
        if (n < 0)
            return n;
        out[n] = '\0';
        return n;
    }
    return HB_ENOTFOUND;
}
