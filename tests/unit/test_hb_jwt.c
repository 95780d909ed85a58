#include "hb_jwt.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hb_err.h"
#include "hb_topic.h"

#define LIT(s) s, sizeof(s) - 1
#define NOW 1700000000LL
#define LEEWAY 30L
#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const unsigned char KEY[] = "test key: 32 bytes of HMAC key!!";
#define KEYLEN (sizeof(KEY) - 1)

/* Unpadded base64url of (p, n) into out (room for n * 4 / 3 + 3); returns the length. */
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
    out[o] = '\0';
    return o;
}

/* A token of header and claims (raw JSON text) signed with (key, keylen); static buffer. */
static char tok[3 * HB_JWT_MAX];
static const char *sign_key(const char *header, const char *claims, const unsigned char *key,
                            size_t keylen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n = b64url(header, strlen(header), tok);
    tok[n++] = '.';
    n += b64url(claims, strlen(claims), tok + n);
    assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)tok, n, md, &mdlen));
    assert_int_equal(mdlen, 32);
    tok[n++] = '.';
    b64url(md, mdlen, tok + n);
    return tok;
}

static const char *sign(const char *claims)
{
    return sign_key(HDR, claims, KEY, KEYLEN);
}

/* Verifies s at NOW with LEEWAY; must succeed. */
static hb_jwt_t *ok_len(const char *s, size_t n)
{
    hb_jwt_t *j = (hb_jwt_t *)1;
    const char *r = "unset";
    int rc = hb_jwt_verify(s, n, KEY, KEYLEN, NOW, LEEWAY, &j, &r);
    if (rc)
        fail_msg("refused (%d, %s): %.*s", rc, r, (int)n, s);
    assert_string_equal(r, "unset"); /* untouched on success */
    assert_non_null(j);
    return j;
}

static hb_jwt_t *ok(const char *s)
{
    return ok_len(s, strlen(s));
}

/* Verifies (s, n) at NOW with LEEWAY; must fail with rc and reason. */
static void bad_len(const char *s, size_t n, int rc, const char *reason)
{
    hb_jwt_t *j = (hb_jwt_t *)1;
    const char *r = NULL;
    int got = hb_jwt_verify(s, n, KEY, KEYLEN, NOW, LEEWAY, &j, &r);
    if (got != rc || !r || strcmp(r, reason) != 0)
        fail_msg("want (%d, %s), got (%d, %s): %.*s", rc, reason, got, r ? r : "(null)",
                 n > 300 ? 300 : (int)n, s);
    assert_null(j);
}

static void bad(const char *s, int rc, const char *reason)
{
    bad_len(s, strlen(s), rc, reason);
}

static void bad_claims(const char *claims, int rc, const char *reason)
{
    bad(sign(claims), rc, reason);
}

#define CAN_SUB(j, t) hb_jwt_can_subscribe(j, t, strlen(t))
#define CAN_PUB(j, t) hb_jwt_can_publish(j, t, strlen(t))

static void test_valid(void **state)
{
    (void)state;
    hb_jwt_t *j = ok(sign("{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":1699999000,"
                          "\"iat\":1699999000,\"iss\":\"x\",\"subscribe\":[\"news\",\"user/42/*\"],"
                          "\"publish\":[\"user/42/inbox\"]}"));
    assert_string_equal(hb_jwt_sub(j), "alice");
    assert_true(hb_jwt_exp(j) == 1700003600LL);
    assert_int_equal(CAN_SUB(j, "news"), 1);
    assert_int_equal(CAN_SUB(j, "user/42/x"), 1);
    assert_int_equal(CAN_SUB(j, "user/42/inbox"), 1);
    assert_int_equal(CAN_SUB(j, "news2"), 0);
    assert_int_equal(CAN_SUB(j, "new"), 0);
    assert_int_equal(CAN_SUB(j, "other"), 0);
    /* publish rights are exactly the publish array */
    assert_int_equal(CAN_PUB(j, "user/42/inbox"), 1);
    assert_int_equal(CAN_PUB(j, "news"), 0);
    assert_int_equal(CAN_PUB(j, "user/42/x"), 0);
    assert_int_equal(CAN_PUB(j, "user/42/inbox2"), 0);
    /* the length is honoured: "news" within a longer buffer */
    assert_int_equal(hb_jwt_can_subscribe(j, "newsroom", 4), 1);
    assert_int_equal(hb_jwt_can_subscribe(j, "newsroom", 5), 0);
    hb_jwt_free(j);

    /* no claims at all: valid, no rights, no exp, no sub; header without typ */
    j = ok(sign_key("{\"alg\":\"HS256\"}", "{}", KEY, KEYLEN));
    assert_string_equal(hb_jwt_sub(j), "");
    assert_true(hb_jwt_exp(j) == 0);
    assert_int_equal(CAN_SUB(j, "news"), 0);
    assert_int_equal(CAN_PUB(j, "news"), 0);
    hb_jwt_free(j);

    /* empty arrays grant nothing; unknown header members are ignored */
    j = ok(sign_key("{\"kid\":\"k1\",\"alg\":\"HS256\"}", "{\"subscribe\":[],\"publish\":[]}", KEY,
                    KEYLEN));
    assert_int_equal(CAN_SUB(j, "a"), 0);
    assert_int_equal(CAN_PUB(j, "a"), 0);
    hb_jwt_free(j);

    /* a sub of exactly 128 bytes is kept whole */
    char claims[256], sub[HB_JWT_SUB_MAX + 2];
    memset(sub, 's', sizeof(sub));
    sub[HB_JWT_SUB_MAX] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", sub);
    j = ok(sign(claims));
    assert_string_equal(hb_jwt_sub(j), sub);
    hb_jwt_free(j);
    sub[HB_JWT_SUB_MAX] = 's';
    sub[HB_JWT_SUB_MAX + 1] = '\0';
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", sub);
    bad_claims(claims, HB_ELIMIT, "sub longer than 128 bytes");

    /* NULL accessors and free */
    assert_string_equal(hb_jwt_sub(NULL), "");
    assert_true(hb_jwt_exp(NULL) == 0);
    assert_int_equal(CAN_SUB(NULL, "a"), 0);
    assert_int_equal(CAN_PUB(NULL, "a"), 0);
    hb_jwt_free(NULL);
}

static void test_forged(void **state)
{
    (void)state;
    const char *claims = "{\"subscribe\":[\"*\"],\"publish\":[\"*\"]}";
    char good[512], other[512];
    snprintf(good, sizeof(good), "%s", sign(claims));
    hb_jwt_free(ok(good));

    /* every single flipped bit of the signature's bytes is refused */
    char *sig = strrchr(good, '.') + 1;
    size_t slen = strlen(sig);
    assert_int_equal(slen, 43);
    for (size_t i = 0; i < slen; i++) {
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char saved = sig[i];
        int v = (int)(strchr(a, saved) - a);
        for (int bit = 0; bit < 6; bit++) {
            sig[i] = a[v ^ (1 << bit)];
            /* the last character carries 2 unused bits: setting them is non-canonical */
            if (i == slen - 1 && bit < 2)
                bad(good, HB_EPROTO, "signature is not base64url");
            else
                bad(good, HB_EINVAL, "bad signature");
        }
        sig[i] = saved;
    }
    /* a flipped bit in the payload: a different message */
    char *p = strchr(good, '.') + 1;
    p[3] = p[3] == 'A' ? 'B' : 'A';
    bad(good, HB_EINVAL, "bad signature");

    /* the wrong key, and a key that differs in length only */
    static const unsigned char wrong[] = "test key: 32 bytes of HMAC key!?";
    bad(sign_key(HDR, claims, wrong, KEYLEN), HB_EINVAL, "bad signature");
    bad(sign_key(HDR, claims, KEY, KEYLEN - 1), HB_EINVAL, "bad signature");

    /* the signature of another token, with this token's header.payload */
    snprintf(good, sizeof(good), "%s", sign(claims));
    snprintf(other, sizeof(other), "%s", sign("{\"subscribe\":[\"news\"]}"));
    strcpy(strrchr(good, '.') + 1, strrchr(other, '.') + 1);
    bad(good, HB_EINVAL, "bad signature");

    /* a signature that is short, long or empty */
    snprintf(good, sizeof(good), "%s", sign(claims));
    good[strlen(good) - 3] = '\0'; /* 40 characters: 30 bytes */
    bad(good, HB_EINVAL, "bad signature");
    snprintf(good, sizeof(good), "%sAAAA", sign(claims));
    bad(good, HB_EINVAL, "bad signature");
    snprintf(good, sizeof(good), "%s", sign(claims));
    *(strrchr(good, '.') + 1) = '\0';
    bad(good, HB_EINVAL, "bad signature");

    /* a different key is a different verifier */
    hb_jwt_t *j = (hb_jwt_t *)1;
    const char *r = NULL;
    snprintf(good, sizeof(good), "%s", sign(claims));
    assert_int_equal(hb_jwt_verify(good, strlen(good), wrong, KEYLEN, NOW, LEEWAY, &j, &r),
                     HB_EINVAL);
    assert_string_equal(r, "bad signature");
    assert_null(j);
}

static void test_alg(void **state)
{
    (void)state;
    const char *c = "{\"subscribe\":[\"*\"]}";
    const char *why = "alg must be HS256";
    bad(sign_key("{\"alg\":\"none\"}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"alg\":\"HS512\"}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"alg\":\"hs256\"}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"alg\":\"HS256 \"}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"alg\":\"RS256\"}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"typ\":\"JWT\"}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"alg\":null}", c, KEY, KEYLEN), HB_EINVAL, why);
    bad(sign_key("{\"alg\":[\"HS256\"]}", c, KEY, KEYLEN), HB_EINVAL, why);
    /* the classic alg=none token: header.payload. with an empty signature */
    char none[256];
    snprintf(none, sizeof(none), "%s", sign_key("{\"alg\":\"none\"}", c, KEY, KEYLEN));
    *(strrchr(none, '.') + 1) = '\0';
    bad(none, HB_EINVAL, why);
    /* a duplicate alg is malformed, whichever comes first */
    bad(sign_key("{\"alg\":\"HS256\",\"alg\":\"none\"}", c, KEY, KEYLEN), HB_EPROTO,
        "header is not valid JSON");

    bad(sign_key("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", c, KEY, KEYLEN), HB_EINVAL,
        "typ must be JWT");
    bad(sign_key("{\"alg\":\"HS256\",\"typ\":null}", c, KEY, KEYLEN), HB_EINVAL, "typ must be JWT");
    bad(sign_key("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", c, KEY, KEYLEN), HB_EINVAL,
        "crit is not supported");
    bad(sign_key("{\"alg\":\"HS256\",\"crit\":[]}", c, KEY, KEYLEN), HB_EINVAL,
        "crit is not supported");
}

static void test_time(void **state)
{
    (void)state;
    char c[128];
    hb_jwt_t *j;

    /* exp: now - leeway is still valid, one second earlier is expired */
    snprintf(c, sizeof(c), "{\"exp\":%lld}", NOW - LEEWAY);
    j = ok(sign(c));
    assert_true(hb_jwt_exp(j) == NOW - LEEWAY);
    hb_jwt_free(j);
    snprintf(c, sizeof(c), "{\"exp\":%lld}", NOW - LEEWAY - 1);
    bad_claims(c, HB_EINVAL, "token expired");
    /* fractional: just under a second late is still expired */
    snprintf(c, sizeof(c), "{\"exp\":%lld.5}", NOW - LEEWAY - 1);
    bad_claims(c, HB_EINVAL, "token expired");
    snprintf(c, sizeof(c), "{\"exp\":%lld.5}", NOW - LEEWAY);
    j = ok(sign(c));
    assert_true(hb_jwt_exp(j) == NOW - LEEWAY); /* rounded down */
    hb_jwt_free(j);

    /* nbf: now + leeway is already valid, one second later is not yet */
    snprintf(c, sizeof(c), "{\"nbf\":%lld}", NOW + LEEWAY);
    hb_jwt_free(ok(sign(c)));
    snprintf(c, sizeof(c), "{\"nbf\":%lld}", NOW + LEEWAY + 1);
    bad_claims(c, HB_EINVAL, "token not yet valid");
    snprintf(c, sizeof(c), "{\"nbf\":%lld.5}", NOW + LEEWAY);
    bad_claims(c, HB_EINVAL, "token not yet valid");

    /* leeway 0: the boundaries move to now */
    hb_jwt_t *jj = NULL;
    const char *r = NULL;
    snprintf(c, sizeof(c), "{\"exp\":%lld,\"nbf\":%lld}", NOW, NOW);
    sign(c);
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, NOW, 0, &jj, &r), HB_OK);
    hb_jwt_free(jj);
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, NOW + 1, 0, &jj, &r), HB_EINVAL);
    assert_string_equal(r, "token expired");
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, NOW - 1, 0, &jj, &r), HB_EINVAL);
    assert_string_equal(r, "token not yet valid");

    /* numbers at the limits: refused (not clamped) outside 0 .. HB_JWT_TIME_MAX, no overflow */
    static const char *const out_of_range[] = {
        "9223372036854775807",  /* INT64_MAX */
        "9223372036854775808",  /* 2^63: beyond long long, still a double */
        "18446744073709551621", /* 2^64 + 5 */
        "9007199254740992",     /* 2^53 */
        "10000000000000",       /* 1e13: milliseconds */
        "1e13",
        "1e300",
        "-1",
        "-0.5",
        "-9223372036854775808",
        "-1e300",
        "253402300800", /* HB_JWT_TIME_MAX + 1 */
        "253402300799.5",
    };
    for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
        snprintf(c, sizeof(c), "{\"exp\":%s}", out_of_range[i]);
        bad_claims(c, HB_EPROTO, "exp must be seconds from 0 to 253402300799 (not milliseconds)");
        snprintf(c, sizeof(c), "{\"nbf\":%s}", out_of_range[i]);
        bad_claims(c, HB_EPROTO, "nbf must be seconds from 0 to 253402300799 (not milliseconds)");
        snprintf(c, sizeof(c), "{\"iat\":%s}", out_of_range[i]);
        bad_claims(c, HB_EPROTO, "iat must be seconds from 0 to 253402300799 (not milliseconds)");
    }
    /* a number too big even for a double is not valid JSON to jansson */
    bad_claims("{\"exp\":1e400}", HB_EPROTO, "claims are not valid JSON");
    /* the last second allowed, and exponents and fractions in range */
    j = ok(sign("{\"exp\":253402300799,\"nbf\":0,\"iat\":0}"));
    assert_true(hb_jwt_exp(j) == HB_JWT_TIME_MAX);
    hb_jwt_free(j);
    j = ok(sign("{\"exp\":2.534023007985e11,\"iat\":1.5}"));
    assert_true(hb_jwt_exp(j) == 253402300798LL); /* rounded down */
    hb_jwt_free(j);
    j = ok(sign("{\"exp\":1.8e9,\"iat\":1700000000.25}"));
    assert_true(hb_jwt_exp(j) == 1800000000LL);
    hb_jwt_free(j);
    bad_claims("{\"exp\":0}", HB_EINVAL, "token expired");
    bad_claims("{\"exp\":-0}", HB_EINVAL, "token expired"); /* -0.0 is in range: 0 */
    /* the caller's clock and leeway at their own limits do not overflow either */
    r = NULL;
    sign("{\"exp\":253402300799}");
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, LLONG_MAX, LONG_MAX, &jj, &r),
                     HB_OK);
    hb_jwt_free(jj);
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, LLONG_MAX, 0, &jj, &r),
                     HB_EINVAL);
    assert_string_equal(r, "token expired");
    sign("{\"nbf\":253402300799}");
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, LLONG_MAX, 0, &jj, &r), HB_OK);
    hb_jwt_free(jj);
    /* 0 > LLONG_MIN + LONG_MAX (-1): not yet valid, computed without overflow */
    sign("{\"nbf\":0}");
    assert_int_equal(hb_jwt_verify(tok, strlen(tok), KEY, KEYLEN, LLONG_MIN, LONG_MAX, &jj, &r),
                     HB_EINVAL);
    assert_string_equal(r, "token not yet valid");

    /* types */
    bad_claims("{\"exp\":\"1700003600\"}", HB_EPROTO, "exp must be a number");
    bad_claims("{\"exp\":\"123\"}", HB_EPROTO, "exp must be a number");
    bad_claims("{\"exp\":null}", HB_EPROTO, "exp must be a number");
    bad_claims("{\"nbf\":true}", HB_EPROTO, "nbf must be a number");
    bad_claims("{\"iat\":\"now\"}", HB_EPROTO, "iat must be a number");
    bad_claims("{\"iat\":[1]}", HB_EPROTO, "iat must be a number");
    /* claim by claim: exp, then nbf, then iat */
    bad_claims("{\"iat\":-1,\"nbf\":-1}", HB_EPROTO,
               "nbf must be seconds from 0 to 253402300799 (not milliseconds)");
    snprintf(c, sizeof(c), "{\"iat\":-1,\"exp\":%lld}", NOW - LEEWAY - 1);
    bad_claims(c, HB_EINVAL, "token expired");
    /* exp is checked before nbf */
    snprintf(c, sizeof(c), "{\"nbf\":%lld,\"exp\":1}", NOW + LEEWAY + 1);
    bad_claims(c, HB_EINVAL, "token expired");
}

static void test_malformed(void **state)
{
    (void)state;
    char t[512];
    const char *parts = "token must have three dot-separated parts";
    snprintf(t, sizeof(t), "%s", sign("{}"));
    char *dot2 = strrchr(t, '.');

    bad("", HB_EPROTO, parts);
    bad("abc", HB_EPROTO, parts);
    bad("a.b", HB_EPROTO, parts);
    bad("a.b.c.d", HB_EPROTO, parts);
    bad("...", HB_EPROTO, parts);
    /* 2 parts: a valid token without its signature */
    *dot2 = '\0';
    bad(t, HB_EPROTO, parts);
    /* 4 parts: a valid token with one more */
    snprintf(t, sizeof(t), "%s.", sign("{}"));
    bad(t, HB_EPROTO, parts);
    snprintf(t, sizeof(t), "%s.AAAA", sign("{}"));
    bad(t, HB_EPROTO, parts);
    /* an embedded NUL is not a terminator */
    snprintf(t, sizeof(t), "%s", sign("{}"));
    size_t n = strlen(t);
    hb_jwt_free(ok_len(t, n));
    t[n] = '\0';
    bad_len(t, n + 1, HB_EPROTO, "signature is not base64url");

    /* bad base64url in each part: padding, the standard alphabet, spaces, 4k+1 length,
     * non-zero unused bits */
    const char *h64 = "eyJhbGciOiJIUzI1NiJ9"; /* {"alg":"HS256"} */
    snprintf(t, sizeof(t), "%s=.e30.AAAA", h64);
    bad(t, HB_EPROTO, "header is not base64url");
    snprintf(t, sizeof(t), "%s.e30=.AAAA", h64);
    bad(t, HB_EPROTO, "payload is not base64url");
    snprintf(t, sizeof(t), "%s.e30.AAAA==", h64);
    bad(t, HB_EPROTO, "signature is not base64url");
    snprintf(t, sizeof(t), "%s.e3+.AAAA", h64);
    bad(t, HB_EPROTO, "payload is not base64url");
    snprintf(t, sizeof(t), "%s.e3/.AAAA", h64);
    bad(t, HB_EPROTO, "payload is not base64url");
    snprintf(t, sizeof(t), "%s.e3 0.AAAA", h64);
    bad(t, HB_EPROTO, "payload is not base64url");
    snprintf(t, sizeof(t), "%s.e30AA.AAAA", h64);
    bad(t, HB_EPROTO, "payload is not base64url"); /* 5 characters */
    snprintf(t, sizeof(t), "%s.e31.AAAA", h64);    /* "{}" with a trailing bit set */
    bad(t, HB_EPROTO, "payload is not base64url");
    bad("e.e30.AAAA", HB_EPROTO, "header is not base64url");
    bad("eyJhbGciOiJIUzI1NiJ9A.e30.AAAA", HB_EPROTO, "header is not base64url");
    bad("eyJhbGciOiJIUzI1NiJ9AB.e30.AAAA", HB_EPROTO, "header is not base64url");
    /* every part is decoded before anything is parsed */
    bad("bm90IGpzb24.e30=.AAAA", HB_EPROTO, "payload is not base64url");

    /* header not JSON, not an object, empty, too deep */
    bad(sign_key("not json", "{}", KEY, KEYLEN), HB_EPROTO, "header is not valid JSON");
    bad(sign_key("", "{}", KEY, KEYLEN), HB_EPROTO, "header is not valid JSON");
    bad(sign_key("[\"alg\",\"HS256\"]", "{}", KEY, KEYLEN), HB_EPROTO,
        "header must be a JSON object");
    bad(sign_key("\"HS256\"", "{}", KEY, KEYLEN), HB_EPROTO, "header must be a JSON object");
    bad(sign_key("{\"alg\":\"HS256\",\"x\":\"\\u0000\"}", "{}", KEY, KEYLEN), HB_EPROTO,
        "header is not valid JSON");
    bad(sign_key("{\"alg\":\"HS256\",\"x\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}", "{}", KEY, KEYLEN),
        HB_EPROTO, "header nests deeper than 16 levels");
    hb_jwt_free(ok(
        sign_key("{\"alg\":\"HS256\",\"x\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}", "{}", KEY, KEYLEN)));

    /* claims not JSON, not an object, duplicate keys, too deep */
    bad_claims("not json", HB_EPROTO, "claims are not valid JSON");
    bad_claims("", HB_EPROTO, "claims are not valid JSON");
    bad_claims("{\"subscribe\":[\"a\"]", HB_EPROTO, "claims are not valid JSON");
    bad_claims("[]", HB_EPROTO, "claims must be a JSON object");
    bad_claims("42", HB_EPROTO, "claims must be a JSON object");
    bad_claims("{\"sub\":\"a\",\"sub\":\"b\"}", HB_EPROTO, "claims are not valid JSON");
    bad_claims("{\"sub\":\"a\\u0000b\"}", HB_EPROTO, "claims are not valid JSON");
    bad_claims("{\"x\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}", HB_EPROTO,
               "claims nest deeper than 16 levels");
    bad_claims("{\"sub\":1}", HB_EPROTO, "sub must be a string");
    bad_claims("{\"subscribe\":\"news\"}", HB_EPROTO, "subscribe must be an array");
    bad_claims("{\"publish\":{}}", HB_EPROTO, "publish must be an array");
    bad_claims("{\"subscribe\":null}", HB_EPROTO, "subscribe must be an array");
    /* the signature is checked before the claims are parsed */
    char forged[512];
    snprintf(forged, sizeof(forged), "%s", sign("not json"));
    char *s = strrchr(forged, '.') + 1;
    s[0] = s[0] == 'A' ? 'B' : 'A';
    bad(forged, HB_EINVAL, "bad signature");

    /* arguments */
    hb_jwt_t *j = (hb_jwt_t *)1;
    const char *r = NULL;
    snprintf(t, sizeof(t), "%s", sign("{}"));
    n = strlen(t);
    assert_int_equal(hb_jwt_verify(NULL, 0, KEY, KEYLEN, NOW, 0, &j, &r), HB_EINVAL);
    assert_null(j);
    assert_string_equal(r, "invalid argument");
    assert_int_equal(hb_jwt_verify(t, n, NULL, 0, NOW, 0, &j, &r), HB_EINVAL);
    assert_int_equal(hb_jwt_verify(t, n, KEY, 0, NOW, 0, &j, &r), HB_EINVAL);
    assert_int_equal(hb_jwt_verify(t, n, KEY, (size_t)INT_MAX + 1, NOW, 0, &j, &r), HB_EINVAL);
    assert_int_equal(hb_jwt_verify(t, n, KEY, KEYLEN, NOW, -1, &j, &r), HB_EINVAL);
    assert_int_equal(hb_jwt_verify(t, n, KEY, KEYLEN, NOW, 0, NULL, &r), HB_EINVAL);
    /* reason is optional */
    assert_int_equal(hb_jwt_verify(t, n, KEY, KEYLEN, NOW, 0, &j, NULL), HB_OK);
    hb_jwt_free(j);
    assert_int_equal(hb_jwt_verify("a", 1, KEY, KEYLEN, NOW, 0, &j, NULL), HB_EPROTO);
}

/*
 * Signs a token of exactly want bytes: HDR with 0..3 spaces and a "pad" claim sized to fit
 * (an unpadded encoding can be any length but 4k + 1, so some combination hits it).
 */
static const char *sign_exact(size_t want, const char *rights)
{
    static char claims[HB_JWT_MAX];
    for (int sp = 0; sp < 4; sp++) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\"%*s}", sp, "");
        for (size_t pad = 0; pad < HB_JWT_MAX / 4 * 3; pad++) {
            int m = snprintf(claims, sizeof(claims), "{%s\"pad\":\"%0*d\"}", rights, (int)pad, 0);
            assert_true(m > 0 && (size_t)m < sizeof(claims));
            sign_key(hdr, claims, KEY, KEYLEN);
            size_t n = strlen(tok);
            if (n == want)
                return tok;
            if (n > want)
                break;
        }
    }
    fail_msg("no token of %zu bytes", want);
    return NULL;
}

static void test_length_limit(void **state)
{
    (void)state;
    const char *t = sign_exact(HB_JWT_MAX, "\"subscribe\":[\"big\"],");
    assert_int_equal(strlen(t), HB_JWT_MAX);
    hb_jwt_t *j = ok(t);
    assert_int_equal(CAN_SUB(j, "big"), 1);
    hb_jwt_free(j);
    t = sign_exact(HB_JWT_MAX + 1, "\"subscribe\":[\"big\"],");
    assert_int_equal(strlen(t), HB_JWT_MAX + 1);
    bad(t, HB_ELIMIT, "token longer than 8192 bytes");
    /* the length is checked before anything else, garbage included */
    static char junk[HB_JWT_MAX + 2];
    memset(junk, '.', sizeof(junk) - 1);
    junk[sizeof(junk) - 1] = '\0';
    bad(junk, HB_ELIMIT, "token longer than 8192 bytes");
    bad_len(junk, HB_JWT_MAX, HB_EPROTO, "token must have three dot-separated parts");
    /* a token's length does not count bytes after len */
    t = sign("{}");
    size_t n = strlen(t);
    hb_jwt_free(ok_len(t, n));
}

/* Claims with an array of n patterns "t0", "t1", ... (or n copies of pat when pat is set). */
static const char *patterns(const char *name, int n, const char *pat)
{
    static char c[4096];
    size_t o = (size_t)snprintf(c, sizeof(c), "{\"%s\":[", name);
    for (int i = 0; i < n; i++) {
        if (pat)
            o += (size_t)snprintf(c + o, sizeof(c) - o, "%s\"%s\"", i ? "," : "", pat);
        else
            o += (size_t)snprintf(c + o, sizeof(c) - o, "%s\"t%d\"", i ? "," : "", i);
        assert_true(o < sizeof(c));
    }
    snprintf(c + o, sizeof(c) - o, "]}");
    return c;
}

static void test_pattern_limit(void **state)
{
    (void)state;
    hb_jwt_t *j = ok(sign(patterns("subscribe", HB_JWT_PATTERNS_MAX, NULL)));
    assert_int_equal(CAN_SUB(j, "t0"), 1);
    assert_int_equal(CAN_SUB(j, "t63"), 1);
    assert_int_equal(CAN_SUB(j, "t64"), 0);
    assert_int_equal(CAN_PUB(j, "t0"), 0);
    hb_jwt_free(j);
    bad_claims(patterns("subscribe", HB_JWT_PATTERNS_MAX + 1, NULL), HB_ELIMIT,
               "subscribe has more than 64 patterns");

    j = ok(sign(patterns("publish", HB_JWT_PATTERNS_MAX, NULL)));
    assert_int_equal(CAN_PUB(j, "t63"), 1);
    assert_int_equal(CAN_SUB(j, "t63"), 0);
    hb_jwt_free(j);
    bad_claims(patterns("publish", HB_JWT_PATTERNS_MAX + 1, NULL), HB_ELIMIT,
               "publish has more than 64 patterns");
    /* the count is what is limited, also for cheap repeated patterns */
    bad_claims(patterns("publish", HB_JWT_PATTERNS_MAX + 1, "*"), HB_ELIMIT,
               "publish has more than 64 patterns");

    /* both arrays full at once */
    char c[4096];
    size_t n =
        (size_t)snprintf(c, sizeof(c), "%s", patterns("subscribe", HB_JWT_PATTERNS_MAX, NULL));
    snprintf(c + n - 1, sizeof(c) - n + 1, ",\"publish\":%s",
             strchr(patterns("publish", HB_JWT_PATTERNS_MAX, "p/*"), '['));
    j = ok(sign(c));
    assert_int_equal(CAN_SUB(j, "t5"), 1);
    assert_int_equal(CAN_PUB(j, "p/5"), 1);
    assert_int_equal(CAN_PUB(j, "t5"), 0);
    assert_int_equal(CAN_SUB(j, "p/5"), 0);
    hb_jwt_free(j);
}

static void test_patterns(void **state)
{
    (void)state;
    hb_jwt_t *j = ok(sign("{\"subscribe\":[\"user/42/*\",\"exact\"],\"publish\":[\"*\"]}"));
    /* prefix: '*' matches zero or more bytes after the prefix */
    assert_int_equal(CAN_SUB(j, "user/42/x"), 1);
    assert_int_equal(CAN_SUB(j, "user/42/"), 1);
    assert_int_equal(CAN_SUB(j, "user/42/a/b/c"), 1);
    assert_int_equal(CAN_SUB(j, "user/42"), 0);
    assert_int_equal(CAN_SUB(j, "user/420"), 0);
    assert_int_equal(CAN_SUB(j, "user/4"), 0);
    assert_int_equal(CAN_SUB(j, "User/42/x"), 0);
    assert_int_equal(CAN_SUB(j, "xuser/42/x"), 0);
    /* exact */
    assert_int_equal(CAN_SUB(j, "exact"), 1);
    assert_int_equal(CAN_SUB(j, "exact/"), 0);
    assert_int_equal(CAN_SUB(j, "exac"), 0);
    /* never an invalid topic, even under a matching prefix or "*" */
    assert_int_equal(CAN_SUB(j, "user/42/a b"), 0);
    assert_int_equal(CAN_SUB(j, "user/42/*"), 0);
    assert_int_equal(hb_jwt_can_subscribe(j, NULL, 0), 0);
    /* "*" matches every valid topic */
    assert_int_equal(CAN_PUB(j, "a"), 1);
    assert_int_equal(CAN_PUB(j, "user/42/x"), 1);
    assert_int_equal(CAN_PUB(j, "~.@-_/"), 1);
    assert_int_equal(CAN_PUB(j, ""), 0);
    assert_int_equal(CAN_PUB(j, "a b"), 0);
    assert_int_equal(CAN_PUB(j, "*"), 0);
    char big[HB_TOPIC_MAX + 2];
    memset(big, 'a', sizeof(big));
    assert_int_equal(hb_jwt_can_publish(j, big, HB_TOPIC_MAX), 1);
    assert_int_equal(hb_jwt_can_publish(j, big, HB_TOPIC_MAX + 1), 0);
    hb_jwt_free(j);

    /* a prefix of HB_TOPIC_MAX bytes matches exactly that topic */
    char c[512];
    big[HB_TOPIC_MAX] = '\0';
    snprintf(c, sizeof(c), "{\"subscribe\":[\"%s*\"],\"publish\":[\"%s\"]}", big, big);
    j = ok(sign(c));
    assert_int_equal(CAN_SUB(j, big), 1);
    assert_int_equal(CAN_PUB(j, big), 1);
    assert_int_equal(hb_jwt_can_subscribe(j, big, HB_TOPIC_MAX - 1), 0);
    hb_jwt_free(j);
    big[HB_TOPIC_MAX] = 'a';
    big[HB_TOPIC_MAX + 1] = '\0';
    snprintf(c, sizeof(c), "{\"subscribe\":[\"%s*\"]}", big);
    bad_claims(c, HB_EPROTO, "subscribe pattern is neither a topic nor a prefix*");
    snprintf(c, sizeof(c), "{\"publish\":[\"%s\"]}", big);
    bad_claims(c, HB_EPROTO, "publish pattern is neither a topic nor a prefix*");

    /* invalid patterns refuse the whole token */
    static const char *const invalid[] = {
        "", "**", "a**", "*a", "a*b", "a b*", "a b", "user/*/x", "\\u00e9", "a\\n*",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        snprintf(c, sizeof(c), "{\"subscribe\":[\"ok\",\"%s\"]}", invalid[i]);
        bad_claims(c, HB_EPROTO, "subscribe pattern is neither a topic nor a prefix*");
        snprintf(c, sizeof(c), "{\"publish\":[\"%s\"]}", invalid[i]);
        bad_claims(c, HB_EPROTO, "publish pattern is neither a topic nor a prefix*");
    }
    bad_claims("{\"subscribe\":[1]}", HB_EPROTO,
               "subscribe pattern is neither a topic nor a prefix*");
    bad_claims("{\"publish\":[null]}", HB_EPROTO,
               "publish pattern is neither a topic nor a prefix*");
    /* subscribe is checked before publish */
    bad_claims("{\"publish\":[\"\"],\"subscribe\":[\"\"]}", HB_EPROTO,
               "subscribe pattern is neither a topic nor a prefix*");
}

/* The same pattern list gives the same answers whether it sits in subscribe or publish. */
static void test_subscribe_publish_symmetry(void **state)
{
    (void)state;
    static const char *const topics[] = {"news",     "news/x",   "user/42/",   "user/42/a",
                                         "user/42",  "user/420", "a",          "zz",
                                         "x.y~z@w-", "news2",    "user/42/a b"};
    const char *list = "[\"news\",\"user/42/*\",\"x.y~z@w-\"]";
    char c[256];
    snprintf(c, sizeof(c), "{\"subscribe\":%s}", list);
    hb_jwt_t *s = ok(sign(c));
    snprintf(c, sizeof(c), "{\"publish\":%s}", list);
    hb_jwt_t *p = ok(sign(c));
    int yes = 0;
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        int a = CAN_SUB(s, topics[i]);
        assert_int_equal(a, CAN_PUB(p, topics[i]));
        assert_int_equal(CAN_PUB(s, topics[i]), 0);
        assert_int_equal(CAN_SUB(p, topics[i]), 0);
        yes += a;
    }
    assert_int_equal(yes, 4); /* news, user/42/, user/42/a, x.y~z@w- */
    hb_jwt_free(s);
    hb_jwt_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_alg),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_pattern_limit),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_subscribe_publish_symmetry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
