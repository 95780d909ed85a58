/*
 * hb_jwt_verify() on arbitrary tokens, and on correctly signed tokens with arbitrary claims.
 *
 * Input: the first byte picks the mode, the rest is the data.
 *  - even: the data is the token, verified with a fixed key;
 *  - odd: the data is the claims JSON text (or, with bit 1 set, header 0xff claims), encoded
 *    and signed with the key, so that the claims parser is reached on every run.
 *
 * Properties:
 *  - the result is 0, HB_EPROTO, HB_EINVAL, HB_ELIMIT or HB_ENOMEM with a constant one-line
 *    reason; *out is set exactly on success; HB_ELIMIT for every token over HB_JWT_MAX;
 *  - on success the token really was valid: re-signing header.payload with the key gives the
 *    signature part byte for byte, the header is {"alg":"HS256"} (typ JWT or absent, no crit),
 *    exp/nbf hold at the fixed time, sub and exp match the claims, and another key refuses it
 *    with "bad signature";
 *  - signed tokens never get "bad signature", and get exactly the reference's answer on the
 *    claims (a plain jansson parse plus the contract);
 *  - rights: can_subscribe/can_publish on a topic imply that the topic validates, and agree
 *    with a reference matcher over the claims' arrays, for topics taken from the patterns and
 *    the input; deterministic; nothing leaks (LeakSanitizer).
 */
#include <limits.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_jwt.h"
#include "hb_topic.h"

#define NOW 1700000000LL
#define LEEWAY 60L

static const unsigned char KEY[] = "fuzz key";
static const unsigned char OTHER[] = "fuzz kez";
#define KEYLEN (sizeof(KEY) - 1)

static size_t b64url(const void *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = p;
    size_t o = 0, i;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned long v = (unsigned long)s[i] << 16 | (unsigned long)s[i + 1] << 8 | s[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        out[o++] = a[s[i] >> 2];
        out[o++] = a[(s[i] & 3) << 4];
    } else if (n - i == 2) {
        unsigned long v = (unsigned long)s[i] << 8 | s[i + 1];
        out[o++] = a[v >> 10];
        out[o++] = a[(v >> 4) & 63];
        out[o++] = a[(v & 15) << 2];
    }
    return o;
}

/* Decodes with the reference's own rule (canonical unpadded base64url): re-encode and compare.
 * flags: added to the jansson flags (the claims are read with JSON_DECODE_INT_AS_REAL, so that
 * an integer beyond long long is a number to check, as the contract says, not invalid JSON). */
static json_t *decode_json(const char *s, size_t n, size_t flags)
{
    unsigned char *buf = malloc(n + 1);
    char *re = malloc(n + 4);
    size_t o = 0;
    unsigned long acc = 0;
    int bits = 0;
    json_t *v = NULL;
    FZ_CHECK(buf && re);
    for (size_t i = 0; i < n; i++) {
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *p = s[i] ? strchr(a, s[i]) : NULL;
        if (!p)
            goto done;
        acc = (acc << 6 | (unsigned long)(p - a)) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (b64url(buf, o, re) != n || memcmp(re, s, n) != 0)
        goto done;
    v = json_loadb((const char *)buf, o, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | flags, NULL);
done:
    free(buf);
    free(re);
    return v;
}

static int str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, strlen(s)) == 0;
}

/* Reference matcher: does a pattern string of array a match the topic (t, n)? */
static int ref_match(json_t *a, const char *t, size_t n)
{
    size_t i;
    json_t *v;
    if (hb_topic_validate(t, n, NULL) != HB_OK)
        return 0;
    json_array_foreach(a, i, v)
    {
        const char *p = json_string_value(v);
        size_t m = json_string_length(v);
        if (m && p[m - 1] == '*') {
            if (n >= m - 1 && memcmp(t, p, m - 1) == 0)
                return 1;
        } else if (n == m && memcmp(t, p, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static void check_topic(const hb_jwt_t *j, json_t *claims, const char *t, size_t n)
{
    char *c = fz_dup(t, n);
    int s = hb_jwt_can_subscribe(j, c, n), p = hb_jwt_can_publish(j, c, n);
    FZ_CHECK(s == 0 || s == 1);
    FZ_CHECK(p == 0 || p == 1);
    if (s || p)
        FZ_CHECK(hb_topic_validate(c, n, NULL) == HB_OK);
    FZ_CHECK(s == ref_match(json_object_get(claims, "subscribe"), c, n));
    FZ_CHECK(p == ref_match(json_object_get(claims, "publish"), c, n));
    free(c);
}

/* Topics derived from each pattern of a: itself, without '*', with "x" or "/x" in its place. */
static void check_rights(const hb_jwt_t *j, json_t *claims, json_t *a)
{
    size_t i;
    json_t *v;
    char t[HB_TOPIC_MAX + 8];
    json_array_foreach(a, i, v)
    {
        const char *p = json_string_value(v);
        size_t m = json_string_length(v);
        FZ_CHECK(p != NULL && m <= HB_TOPIC_MAX + 1);
        check_topic(j, claims, p, m);
        if (m && p[m - 1] == '*') {
            memcpy(t, p, m - 1);
            check_topic(j, claims, t, m - 1);
            memcpy(t + m - 1, "/x", 2);
            check_topic(j, claims, t, m);
            check_topic(j, claims, t, m + 1);
            if (m > 1)
                check_topic(j, claims, t, m - 2);
            FZ_CHECK(m - 1 == HB_TOPIC_MAX || hb_jwt_can_subscribe(j, t, m) ||
                     hb_jwt_can_publish(j, t, m));
        } else {
            FZ_CHECK(hb_jwt_can_subscribe(j, p, m) || hb_jwt_can_publish(j, p, m));
        }
    }
}

/* Nesting depth of a parsed value (a scalar is 0). */
static size_t depth_of(json_t *v)
{
    size_t d = 0, i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            size_t e = depth_of(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            size_t e = depth_of(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

static int ref_pattern(json_t *v)
{
    const char *p = json_string_value(v);
    size_t m = json_string_length(v);
    if (!p || m == 0)
        return 0;
    if (p[m - 1] == '*')
        return m == 1 || hb_topic_validate(p, m - 1, NULL) == HB_OK;
    return hb_topic_validate(p, m, NULL) == HB_OK;
}

/* A NumericDate in the contract's range: 0 .. HB_JWT_TIME_MAX seconds, fractions allowed. */
static int ref_time_ok(json_t *v)
{
    double d = json_number_value(v);
    return d >= 0 && d <= 253402300799.0;
}

/* The reason the contract gives for the claims of a genuine token, NULL when it is accepted. */
static const char *ref_claims(json_t *c)
{
    static const char *const names[2] = {"subscribe", "publish"};
    static const char *const not_array[2] = {"subscribe must be an array",
                                             "publish must be an array"};
    static const char *const too_many[2] = {"subscribe has more than 64 patterns",
                                            "publish has more than 64 patterns"};
    static const char *const invalid[2] = {"subscribe pattern is neither a topic nor a prefix*",
                                           "publish pattern is neither a topic nor a prefix*"};
    if (!c)
        return "claims are not valid JSON";
    if (depth_of(c) > HB_JWT_DEPTH_MAX)
        return "claims nest deeper than 16 levels";
    if (!json_is_object(c))
        return "claims must be a JSON object";
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    json_t *iat = json_object_get(c, "iat"), *sub = json_object_get(c, "sub");
    if (exp && !json_is_number(exp))
        return "exp must be a number";
    if (exp && !ref_time_ok(exp))
        return "exp must be seconds from 0 to 253402300799 (not milliseconds)";
    if (exp && json_number_value(exp) < (double)(NOW - LEEWAY))
        return "token expired";
    if (nbf && !json_is_number(nbf))
        return "nbf must be a number";
    if (nbf && !ref_time_ok(nbf))
        return "nbf must be seconds from 0 to 253402300799 (not milliseconds)";
    if (nbf && json_number_value(nbf) > (double)(NOW + LEEWAY))
        return "token not yet valid";
    if (iat && !json_is_number(iat))
        return "iat must be a number";
    if (iat && !ref_time_ok(iat))
        return "iat must be seconds from 0 to 253402300799 (not milliseconds)";
    if (sub && !json_is_string(sub))
        return "sub must be a string";
    if (sub && json_string_length(sub) > HB_JWT_SUB_MAX)
        return "sub longer than 128 bytes";
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(c, names[k]), *v;
        size_t i;
        if (!a)
            continue;
        if (!json_is_array(a))
            return not_array[k];
        if (json_array_size(a) > HB_JWT_PATTERNS_MAX)
            return too_many[k];
        json_array_foreach(a, i, v) if (!ref_pattern(v)) return invalid[k];
    }
    return NULL;
}

/* Verifies (s, n) and checks every property; signed: built here with KEY. */
static void check(const char *s, size_t n, int signed_here, const uint8_t *extra, size_t extra_n)
{
    hb_jwt_t *j = (hb_jwt_t *)1, *j2 = (hb_jwt_t *)1;
    const char *r = NULL, *r2 = NULL;
    int rc = hb_jwt_verify(s, n, KEY, KEYLEN, NOW, LEEWAY, &j, &r);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO || rc == HB_EINVAL || rc == HB_ELIMIT ||
             rc == HB_ENOMEM);
    FZ_CHECK((rc == HB_OK) == (j != NULL));
    FZ_CHECK(rc == HB_OK ? r == NULL : fz_reason_ok(r));
    if (n > HB_JWT_MAX)
        FZ_CHECK(rc == HB_ELIMIT && strcmp(r, "token longer than 8192 bytes") == 0);
    if (signed_here && rc != HB_OK)
        FZ_CHECK(strcmp(r, "bad signature") != 0);

    /* deterministic */
    int rc2 = hb_jwt_verify(s, n, KEY, KEYLEN, NOW, LEEWAY, &j2, &r2);
    FZ_CHECK(rc2 == rc && (rc == HB_OK || r2 == r));
    hb_jwt_free(j2);

    /* reference: three parts, canonical base64url, the header's rules */
    const char *d1 = memchr(s, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s)) : NULL;
    int three = n <= HB_JWT_MAX && d2 && !memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - s));
    if (!three) {
        FZ_CHECK(rc != HB_OK);
        return;
    }
    json_t *hdr = decode_json(s, (size_t)(d1 - s), 0);
    json_t *claims = decode_json(d1 + 1, (size_t)(d2 - d1 - 1), JSON_DECODE_INT_AS_REAL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char sig[64];
    FZ_CHECK(HMAC(EVP_sha256(), KEY, (int)KEYLEN, (const unsigned char *)s, (size_t)(d2 - s), md,
                  &mdlen) != NULL);
    size_t slen = b64url(md, mdlen, sig);
    int sig_ok = (size_t)(s + n - d2 - 1) == slen && memcmp(d2 + 1, sig, slen) == 0;
    int hdr_ok = json_is_object(hdr) && str_is(json_object_get(hdr, "alg"), "HS256") &&
                 (!json_object_get(hdr, "typ") || str_is(json_object_get(hdr, "typ"), "JWT")) &&
                 !json_object_get(hdr, "crit");
    if (signed_here)
        FZ_CHECK(sig_ok);

    if (rc == HB_OK) {
        FZ_CHECK(sig_ok && hdr_ok && json_is_object(claims));
        json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
        json_t *sub = json_object_get(claims, "sub");
        json_t *iat = json_object_get(claims, "iat");
        FZ_CHECK(!exp || (json_is_number(exp) && json_number_value(exp) >= (double)(NOW - LEEWAY)));
        FZ_CHECK(!nbf || (json_is_number(nbf) && json_number_value(nbf) <= (double)(NOW + LEEWAY)));
        FZ_CHECK(!exp || ref_time_ok(exp));
        FZ_CHECK(!nbf || ref_time_ok(nbf));
        FZ_CHECK(!iat || (json_is_number(iat) && ref_time_ok(iat)));
        FZ_CHECK(hb_jwt_exp(j) >= 0 && hb_jwt_exp(j) <= HB_JWT_TIME_MAX);
        if (exp) /* rounded down: every value in range is exact in a double */
            FZ_CHECK((double)hb_jwt_exp(j) <= json_number_value(exp) &&
                     (double)hb_jwt_exp(j) + 1 > json_number_value(exp));
        else
            FZ_CHECK(hb_jwt_exp(j) == 0);
        FZ_CHECK(sub ? str_is(sub, hb_jwt_sub(j)) : strcmp(hb_jwt_sub(j), "") == 0);
        json_t *subs = json_object_get(claims, "subscribe"),
               *pubs = json_object_get(claims, "publish");
        FZ_CHECK(!subs || (json_is_array(subs) && json_array_size(subs) <= HB_JWT_PATTERNS_MAX));
        FZ_CHECK(!pubs || (json_is_array(pubs) && json_array_size(pubs) <= HB_JWT_PATTERNS_MAX));
        check_rights(j, claims, subs);
        check_rights(j, claims, pubs);
        check_topic(j, claims, (const char *)extra, extra_n);
        check_topic(j, claims, "x", 1);
        /* another key: the same token is forged */
        hb_jwt_t *k = (hb_jwt_t *)1;
        const char *rk = NULL;
        FZ_CHECK(hb_jwt_verify(s, n, OTHER, sizeof(OTHER) - 1, NOW, LEEWAY, &k, &rk) == HB_EINVAL);
        FZ_CHECK(k == NULL && strcmp(rk, "bad signature") == 0);
        hb_jwt_free(j);
    } else if (signed_here && hdr_ok && rc != HB_ENOMEM) {
        /* a genuine token was refused: for exactly the reason the contract gives */
        const char *want = ref_claims(claims);
        /* the bracket count runs before jansson, so invalid JSON may be either */
        if (!claims && strcmp(r, "claims nest deeper than 16 levels") == 0)
            want = r;
        if (!want || strcmp(want, r) != 0) {
            fprintf(stderr, "want %s, got %s\n", want ? want : "success", r);
            FZ_CHECK(0);
        }
    }
    if (signed_here && hdr_ok && rc == HB_OK)
        FZ_CHECK(ref_claims(claims) == NULL);
    json_decref(hdr);
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (!(mode & 1)) {
        char *s = fz_dup(data, size);
        check(s, size, 0, data, size > HB_TOPIC_MAX ? HB_TOPIC_MAX : size);
        free(s);
        return 0;
    }
    /* Signed mode: [header 0xff] claims; the default header is {"alg":"HS256"}. */
    const uint8_t *p[2];
    size_t n[2];
    const char *hdr = "{\"alg\":\"HS256\"}";
    size_t hn = strlen(hdr);
    const uint8_t *c = data;
    size_t cn = size;
    if (mode & 2) {
        fz_split(data, size, 2, p, n);
        hdr = (const char *)p[0];
        hn = n[0];
        c = p[1];
        cn = n[1];
    }
    if (hn + cn > HB_JWT_MAX) /* the encoding would be over the limit anyway */
        return 0;
    char *tok = malloc(2 * HB_JWT_MAX);
    FZ_CHECK(tok != NULL);
    size_t t = b64url(hdr, hn, tok);
    tok[t++] = '.';
    t += b64url(c, cn, tok + t);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    FZ_CHECK(HMAC(EVP_sha256(), KEY, (int)KEYLEN, (unsigned char *)tok, t, md, &mdlen) != NULL);
    tok[t++] = '.';
    t += b64url(md, mdlen, tok + t);
    char *s = fz_dup(tok, t);
    free(tok);
    check(s, t, 1, c, cn > HB_TOPIC_MAX ? HB_TOPIC_MAX : cn);
    free(s);
    return 0;
}
