/*
 * hb_url_decode(), hb_url_query_next() and hb_url_query_get() on arbitrary query strings.
 *
 * Properties:
 *  - decode matches a reference percent-decoder for every output capacity: same length or
 *    error (HB_EPROTO for a bad escape found before the output fills up, else HB_ELIMIT),
 *    same bytes, never a write past cap, NUL-terminated when there is room;
 *  - query_next terminates, makes progress, returns pairs that lie inside the query, in order,
 *    and joining them with '&' gives back the query without its empty pairs;
 *  - query_get agrees with a reference lookup built on query_next + the reference decoder.
 *
 * Input: [1 byte capacity][name 0xff query].
 */
#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_url.h"

static int hexv(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reference: decodes all of s into out (at least n bytes). -1 on a bad escape, else length.
 * *bad_at is the output length reached when the bad escape was found. */
static long ref_decode(const uint8_t *s, size_t n, uint8_t *out, size_t *bad_at)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '%') {
            if (i + 2 >= n) { /* fewer than two bytes after '%' */
                *bad_at = o;
                return -1;
            }
            int hi = hexv(s[i + 1]), lo = hexv(s[i + 2]);
            if (hi < 0 || lo < 0) {
                *bad_at = o;
                return -1;
            }
            out[o++] = (uint8_t)(hi * 16 + lo);
            i += 3;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
            i++;
        }
    }
    return (long)o;
}

static void check_decode(const char *s, size_t n, size_t cap)
{
    uint8_t *want = malloc(n + 1);
    size_t bad_at = 0;
    long wl = ref_decode((const uint8_t *)s, n, want, &bad_at);
    /* exactly cap bytes, so that ASan catches any write past it */
    char *out = malloc(cap ? cap : 1);
    int rc = hb_url_decode(s, n, out, cap);
    if (wl < 0) {
        /* the first error met left to right: the output fills up (a byte is due at index
         * cap) before the bad escape, or the bad escape comes first */
        FZ_CHECK(rc == (bad_at > cap ? HB_ELIMIT : HB_EPROTO));
    } else if ((size_t)wl > cap) {
        FZ_CHECK(rc == HB_ELIMIT);
    } else {
        FZ_CHECK(rc == wl);
        FZ_CHECK(wl == 0 || memcmp(out, want, (size_t)wl) == 0);
        if ((size_t)wl < cap)
            FZ_CHECK(out[wl] == '\0');
    }
    free(out);
    free(want);
}

static void check_iter(const char *q, size_t n)
{
    size_t pos = 0, prev = 0, steps = 0;
    const char *k, *v;
    size_t kl, vl;
    char *joined = malloc(n + 1);
    size_t jl = 0;
    while (hb_url_query_next(q, n, &pos, &k, &kl, &v, &vl)) {
        FZ_CHECK(pos > prev && pos <= n);
        FZ_CHECK(++steps <= n);
        FZ_CHECK(fz_within(k, kl, q, n) && fz_within(v, vl, q, n));
        FZ_CHECK(k >= q + prev && (kl > 0 || vl > 0 || v > k)); /* a pair is never empty */
        FZ_CHECK(memchr(k, '&', kl) == NULL && memchr(k, '=', kl) == NULL);
        FZ_CHECK(memchr(v, '&', vl) == NULL);
        /* value right after "key=", or an empty value at the end of a key-only pair */
        FZ_CHECK((v == k + kl + 1 && k[kl] == '=') || (vl == 0 && v == k + kl));
        if (jl)
            joined[jl++] = '&';
        memcpy(joined + jl, k, (size_t)(v + vl - k));
        jl += (size_t)(v + vl - k);
        prev = pos;
    }
    FZ_CHECK(pos == n);
    FZ_CHECK(hb_url_query_next(q, n, &pos, &k, &kl, &v, &vl) == 0); /* stays at the end */
    /* the query with runs of '&' squeezed and leading/trailing ones removed */
    char *sq = malloc(n + 1);
    size_t sl = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '&' && (sl == 0 || sq[sl - 1] == '&'))
            continue;
        sq[sl++] = q[i];
    }
    if (sl && sq[sl - 1] == '&')
        sl--;
    FZ_CHECK(sl == jl && memcmp(sq, joined, jl) == 0);
    free(sq);
    free(joined);
}

/* Reference lookup: the first pair whose key decodes (without error) to exactly name. */
static void check_get(const char *q, size_t n, const char *name, size_t cap)
{
    long want_rc = HB_ENOTFOUND;
    uint8_t *want = malloc(n + 1);
    size_t pos = 0;
    const char *k, *v;
    size_t kl, vl;
    while (hb_url_query_next(q, n, &pos, &k, &kl, &v, &vl)) {
        uint8_t *kd = malloc(kl + 1);
        size_t bad;
        long l = ref_decode((const uint8_t *)k, kl, kd, &bad);
        int match = l >= 0 && (size_t)l == strlen(name) && memcmp(kd, name, (size_t)l) == 0;
        free(kd);
        if (!match)
            continue;
        long dl = ref_decode((const uint8_t *)v, vl, want, &bad);
        if (cap == 0)
            want_rc = HB_ELIMIT;
        else if (dl < 0)
            want_rc = bad <= cap - 1 ? HB_EPROTO : HB_ELIMIT;
        else if ((size_t)dl > cap - 1)
            want_rc = HB_ELIMIT;
        else
            want_rc = dl;
        break;
    }
    char *out = malloc(cap ? cap : 1);
    int rc = hb_url_query_get(q, n, name, out, cap);
    FZ_CHECK(rc == want_rc);
    if (rc >= 0) {
        FZ_CHECK((size_t)rc < cap && out[rc] == '\0');
        FZ_CHECK(rc == 0 || memcmp(out, want, (size_t)rc) == 0);
    }
    free(out);
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = data[0];
    const uint8_t *p[2];
    size_t n[2];
    fz_split(data + 1, size - 1, 2, p, n);
    char *name = fz_strdup(p[0], n[0]);
    char *q = fz_dup(p[1], n[1]);
    check_decode(q, n[1], cap);
    check_decode(q, n[1], n[1] + 1); /* always enough room */
    check_iter(q, n[1]);
    check_get(q, n[1], name, cap);
    check_get(q, n[1], "lastEventId", 64);
    free(q);
    free(name);
    return 0;
}
