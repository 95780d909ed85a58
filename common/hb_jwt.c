#include "hb_jwt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hb_err.h"
#include "hb_topic.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define SIG_LEN 32 /* HMAC-SHA256 */
/* Decoded bytes of all three parts together: at most 3/4 of each part, rounded down. */
#define DECODED_MAX (HB_JWT_MAX / 4 * 3 + 3)

/* One pattern: (s, len) is the topic, or the prefix without its '*' when prefix is set. */
typedef struct hb_jwt_pat {
    const char *s; /* points into the owning hb_jwt's string pool */
    size_t len;
    int prefix;
} hb_jwt_pat_t;

/*
 * Owned by the caller of hb_jwt_verify(). One allocation: the struct, then nsub + npub patterns
 * (subscribe first), then the bytes of their strings. Immutable once returned.
 */
struct hb_jwt {
    long long exp;
    size_t nsub, npub;
    char sub[HB_JWT_SUB_MAX + 1];
    hb_jwt_pat_t pat[];
};

static int fail(int rc, const char *r, const char **reason)
{
    if (reason)
        *reason = r;
    return rc;
}

#define BAD(rc, r) fail(rc, r, reason)

/* The 6-bit value of a base64url byte, or -1. */
static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decodes unpadded base64url (s, n) into out, which has room for n * 3 / 4 bytes. Refuses
 * '=', bytes outside the alphabet, a length of 4k + 1 and non-zero unused trailing bits, so
 * each byte string has exactly one accepted encoding. Returns the decoded length or -1.
 */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    size_t o = 0, i;
    unsigned long acc = 0;
    int bits = 0;
    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* 2 or 4 bits left over (n % 4 == 3 or 2) must be zero. */
    if (bits && (acc & ((1UL << bits) - 1)))
        return -1;
    return (long)o;
}

/*
 * 1 when (s, len) nests arrays and objects deeper than HB_JWT_DEPTH_MAX, counting brackets
 * outside strings (as hb_wsmsg does). Exact for valid JSON, which is all that matters: jansson
 * refuses the rest. Bounds the stack jansson's recursive parser takes.
 */
static int too_deep(const unsigned char *s, size_t len)
{
    size_t depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > HB_JWT_DEPTH_MAX)
                return 1;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* Parses decoded JSON (s, n), the header or (claims set) the claims, into an object *root.
 * Numbers in the claims become doubles (JSON_DECODE_INT_AS_REAL): an integer beyond the long
 * long range then reaches the claim's own range check instead of failing the whole parse. */
static int load_object(const unsigned char *s, size_t n, int claims, json_t **root,
                       const char **reason)
{
    json_error_t err;
    *root = NULL;
    if (too_deep(s, n))
        return BAD(HB_EPROTO, claims ? "claims nest deeper than " STR(HB_JWT_DEPTH_MAX) " levels"
                                     : "header nests deeper than " STR(HB_JWT_DEPTH_MAX) " levels");
    *root = json_loadb(
        (const char *)s, n,
        JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | (claims ? JSON_DECODE_INT_AS_REAL : 0), &err);
    if (!*root)
        return json_error_code(&err) == json_error_out_of_memory
                   ? BAD(HB_ENOMEM, "out of memory")
                   : BAD(HB_EPROTO,
                         claims ? "claims are not valid JSON" : "header is not valid JSON");
    if (!json_is_object(*root))
        return BAD(HB_EPROTO,
                   claims ? "claims must be a JSON object" : "header must be a JSON object");
    return 0;
}

static int str_is(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

static int check_header(const json_t *h, const char **reason)
{
    json_t *typ = json_object_get(h, "typ");
    if (!str_is(json_object_get(h, "alg"), "HS256"))
        return BAD(HB_EINVAL, "alg must be HS256");
    if (typ && !str_is(typ, "JWT"))
        return BAD(HB_EINVAL, "typ must be JWT");
    if (json_object_get(h, "crit"))
        return BAD(HB_EINVAL, "crit is not supported");
    return 0;
}

/* The HMAC-SHA256 of (s, n) under the key, compared in constant time with sig. */
static int check_signature(const char *s, size_t n, const unsigned char *key, size_t keylen,
                           const unsigned char *sig, long siglen, const char **reason)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)s, n, md, &mdlen) ||
        mdlen != SIG_LEN)
        return BAD(HB_ENOMEM, "out of memory");
    /* The length is public (always 32); only the bytes are compared in constant time. */
    if (siglen != SIG_LEN || CRYPTO_memcmp(md, sig, SIG_LEN) != 0)
        return BAD(HB_EINVAL, "bad signature");
    return 0;
}

/*
 * A NumericDate claim (name is "exp", "nbf" or "iat") as whole seconds in *t: a JSON number (the
 * claims are parsed with JSON_DECODE_INT_AS_REAL, so every number is a double: exact for every
 * integer up to 2^53, far above HB_JWT_TIME_MAX) from 0 to HB_JWT_TIME_MAX, rounded down (up when
 * ceil is set). For an integer now, x < now - leeway holds exactly when floor(x) does, and
 * x > now + leeway exactly when ceil(x) does. The range check comes before any conversion, so no
 * value (1e300, 2^63, milliseconds) reaches an integer type out of range.
 */
static int numeric_date(const json_t *v, const char *name, int ceil, long long *t,
                        const char **reason)
{
    static const char *const not_num[3] = {"exp must be a number", "nbf must be a number",
                                           "iat must be a number"};
    static const char *const range[3] = {
        "exp must be seconds from 0 to " STR(HB_JWT_TIME_MAX) " (not milliseconds)",
        "nbf must be seconds from 0 to " STR(HB_JWT_TIME_MAX) " (not milliseconds)",
        "iat must be seconds from 0 to " STR(HB_JWT_TIME_MAX) " (not milliseconds)"};
    int k = name[0] == 'e' ? 0 : name[0] == 'n' ? 1 : 2;
    if (!json_is_real(v))
        return BAD(HB_EPROTO, not_num[k]);
    double d = json_real_value(v);
    if (!(d >= 0.0 && d <= (double)HB_JWT_TIME_MAX)) /* also false for a NaN */
        return BAD(HB_EPROTO, range[k]);
    long long x = (long long)d; /* toward zero, and d >= 0: rounded down */
    if (ceil && (double)x < d)
        x++;
    *t = x;
    return 0;
}

/* exp < now - leeway, without overflow (leeway >= 0). */
static int is_expired(long long exp, long long now, long leeway)
{
    if (exp > LLONG_MAX - leeway)
        return 0;
    return exp + leeway < now;
}

/* nbf > now + leeway, without overflow (leeway >= 0). */
static int is_early(long long nbf, long long now, long leeway)
{
    if (nbf < LLONG_MIN + leeway)
        return 0;
    return nbf - leeway > now;
}

/* 1 when (s, n) is a valid pattern; sets *prefix and the length of its topic part. */
static int pattern_ok(const char *s, size_t n, int *prefix, size_t *plen)
{
    if (n > 0 && s[n - 1] == '*') {
        *prefix = 1;
        *plen = n - 1;
        if (n == 1)
            return 1;
        /* A topic prefix: the same bytes and bound as a topic, so check it as one. */
        return hb_topic_validate(s, n - 1, NULL) == HB_OK;
    }
    *prefix = 0;
    *plen = n;
    return hb_topic_validate(s, n, NULL) == HB_OK;
}

/* Checks the "subscribe" or (publish set) "publish" array a; adds its count and string bytes to
 * *count, *bytes. */
static int check_patterns(const json_t *a, int publish, size_t *count, size_t *bytes,
                          const char **reason)
{
    size_t i, plen;
    int prefix;
    json_t *v;
    if (!a)
        return 0;
    if (!json_is_array(a))
        return BAD(HB_EPROTO, publish ? "publish must be an array" : "subscribe must be an array");
    if (json_array_size(a) > HB_JWT_PATTERNS_MAX)
        return BAD(HB_ELIMIT,
                   publish ? "publish has more than " STR(HB_JWT_PATTERNS_MAX) " patterns"
                           : "subscribe has more than " STR(HB_JWT_PATTERNS_MAX) " patterns");
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) ||
            !pattern_ok(json_string_value(v), json_string_length(v), &prefix, &plen))
            return BAD(HB_EPROTO, publish ? "publish pattern is neither a topic nor a prefix*"
                                          : "subscribe pattern is neither a topic nor a prefix*");
        *bytes += plen;
    }
    *count += json_array_size(a);
    return 0;
}

/* Copies the patterns of the checked array a to pat[] and their bytes to *pool. */
static void copy_patterns(const json_t *a, hb_jwt_pat_t *pat, char **pool)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        hb_jwt_pat_t *p = &pat[i];
        pattern_ok(json_string_value(v), json_string_length(v), &p->prefix, &p->len);
        memcpy(*pool, json_string_value(v), p->len);
        p->s = *pool;
        *pool += p->len;
    }
}

/* Checks the claims and builds *out from them. */
static int read_claims(const json_t *c, long long now, long leeway, hb_jwt_t **out,
                       const char **reason)
{
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    json_t *iat = json_object_get(c, "iat"), *sub = json_object_get(c, "sub");
    json_t *subs = json_object_get(c, "subscribe"), *pubs = json_object_get(c, "publish");
    long long exp_s = 0, t;
    size_t count = 0, bytes = 0;
    int rc;

    if (exp) {
        if ((rc = numeric_date(exp, "exp", 0, &exp_s, reason)))
            return rc;
        if (is_expired(exp_s, now, leeway))
            return BAD(HB_EINVAL, "token expired");
    }
    if (nbf) {
        if ((rc = numeric_date(nbf, "nbf", 1, &t, reason)))
            return rc;
        if (is_early(t, now, leeway))
            return BAD(HB_EINVAL, "token not yet valid");
    }
    if (iat && (rc = numeric_date(iat, "iat", 0, &t, reason)))
        return rc;
    if (sub) {
        if (!json_is_string(sub))
            return BAD(HB_EPROTO, "sub must be a string");
        if (json_string_length(sub) > HB_JWT_SUB_MAX)
            return BAD(HB_ELIMIT, "sub longer than " STR(HB_JWT_SUB_MAX) " bytes");
    }
    if ((rc = check_patterns(subs, 0, &count, &bytes, reason)) ||
        (rc = check_patterns(pubs, 1, &count, &bytes, reason)))
        return rc;

    /* count <= 2 * HB_JWT_PATTERNS_MAX and bytes < HB_JWT_MAX: no overflow. */
    hb_jwt_t *j = malloc(sizeof(*j) + count * sizeof(hb_jwt_pat_t) + bytes);
    if (!j)
        return BAD(HB_ENOMEM, "out of memory");
    j->exp = exp_s;
    j->nsub = subs ? json_array_size(subs) : 0;
    j->npub = pubs ? json_array_size(pubs) : 0;
    j->sub[0] = '\0';
    if (sub) {
        /* jansson refuses "\u0000" without JSON_ALLOW_NUL, so the string has no NUL inside. */
        memcpy(j->sub, json_string_value(sub), json_string_length(sub));
        j->sub[json_string_length(sub)] = '\0';
    }
    char *pool = (char *)(j->pat + count);
    if (subs)
        copy_patterns(subs, j->pat, &pool);
    if (pubs)
        copy_patterns(pubs, j->pat + j->nsub, &pool);
    *out = j;
    return 0;
}

int hb_jwt_verify(const char *token, size_t len, const unsigned char *key, size_t keylen,
                  long long now, long leeway, hb_jwt_t **out, const char **reason)
{
    /* Each part decodes to at most 3/4 of its length, so the three fit together. */
    unsigned char buf[DECODED_MAX];
    const char *dot1, *dot2, *payload, *sigpart;
    size_t hlen, plen, slen;
    long hn, pn, sn;
    json_t *root = NULL;
    int rc;

    if (out)
        *out = NULL;
    if (!token || !key || !out || keylen == 0 || keylen > INT_MAX || leeway < 0)
        return BAD(HB_EINVAL, "invalid argument");
    if (len > HB_JWT_MAX)
        return BAD(HB_ELIMIT, "token longer than " STR(HB_JWT_MAX) " bytes");

    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return BAD(HB_EPROTO, "token must have three dot-separated parts");
    hlen = (size_t)(dot1 - token);
    payload = dot1 + 1;
    plen = (size_t)(dot2 - payload);
    sigpart = dot2 + 1;
    slen = len - (size_t)(sigpart - token);

    if ((hn = b64url_decode(token, hlen, buf)) < 0)
        return BAD(HB_EPROTO, "header is not base64url");
    if ((pn = b64url_decode(payload, plen, buf + hn)) < 0)
        return BAD(HB_EPROTO, "payload is not base64url");
    if ((sn = b64url_decode(sigpart, slen, buf + hn + pn)) < 0)
        return BAD(HB_EPROTO, "signature is not base64url");

    /* The header says how to check the signature, so it is read first. */
    if ((rc = load_object(buf, (size_t)hn, 0, &root, reason)) || (rc = check_header(root, reason)))
        goto done;
    json_decref(root);
    root = NULL;

    /* Signature over the encoded header.payload; the claims are not read before it holds. */
    if ((rc = check_signature(token, (size_t)(dot2 - token), key, keylen, buf + hn + pn, sn,
                              reason)))
        return rc;

    if ((rc = load_object(buf + hn, (size_t)pn, 1, &root, reason)))
        goto done;
    rc = read_claims(root, now, leeway, out, reason);
done:
    json_decref(root);
    return rc;
}

void hb_jwt_free(hb_jwt_t *j)
{
    free(j);
}

/* 1 when a pattern of pat[0..n) matches the valid topic (s, len). */
static int match(const hb_jwt_pat_t *pat, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        const hb_jwt_pat_t *p = &pat[i];
        if (p->prefix ? len >= p->len && memcmp(s, p->s, p->len) == 0
                      : len == p->len && memcmp(s, p->s, len) == 0)
            return 1;
    }
    return 0;
}

int hb_jwt_can_subscribe(const hb_jwt_t *j, const char *topic, size_t len)
{
    if (!j || !topic || hb_topic_validate(topic, len, NULL) != HB_OK)
        return 0;
    return match(j->pat, j->nsub, topic, len);
}

int hb_jwt_can_publish(const hb_jwt_t *j, const char *topic, size_t len)
{
    if (!j || !topic || hb_topic_validate(topic, len, NULL) != HB_OK)
        return 0;
    return match(j->pat + j->nsub, j->npub, topic, len);
}

long long hb_jwt_exp(const hb_jwt_t *j)
{
    return j ? j->exp : 0;
}

const char *hb_jwt_sub(const hb_jwt_t *j)
{
    return j ? j->sub : "";
}
