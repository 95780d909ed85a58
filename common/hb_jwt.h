#ifndef HERALD_COMMON_HB_JWT_H
#define HERALD_COMMON_HB_JWT_H

#include <stddef.h>

/*
 * Verification of HS256 JSON Web Tokens (RFC 7519, compact JWS) that grant topic rights.
 *
 * A token is header.payload.signature, each part base64url without padding. The header must be
 * {"alg":"HS256"} (optionally "typ":"JWT"; "crit" is refused). The claims (payload) may hold:
 *   "exp", "nbf"  NumericDate, checked against the caller's clock and leeway;
 *   "iat"         NumericDate, only checked to be one (its value is not compared with the clock);
 *   "sub"         a string of at most HB_JWT_SUB_MAX bytes;
 *   "subscribe", "publish"  arrays of at most HB_JWT_PATTERNS_MAX topic patterns.
 * A NumericDate is a JSON number of seconds from 0 to HB_JWT_TIME_MAX (9999-12-31T23:59:59Z);
 * a fraction is allowed and rounded towards refusal (exp down, nbf up). Anything else (a string,
 * a negative number, milliseconds such as 10^13, 2^63) refuses the token rather than being
 * clamped: an issuer writing milliseconds would otherwise hand out tokens that never expire.
 * Unknown header members and claims are ignored ("iss", "aud" are not checked).
 *
 * A pattern is either an exact topic (hb_topic_validate()) or a prefix ending in '*': the bytes
 * before the '*' are 0..HB_TOPIC_MAX bytes of [A-Za-z0-9._~@/-] (empty only in "*" itself),
 * and '*' matches zero or more bytes. So "user/42/" + '*' matches "user/42/" and "user/42/x/y"
 * but neither "user/42" nor "user/420"; "*" alone matches every valid topic. A '*' anywhere
 * else makes the pattern (and so the token) invalid.
 *
 * The HMAC is libcrypto's, compared in constant time (CRYPTO_memcmp); the claims are only
 * parsed once the signature is known to be good. Loop-free and I/O-free, never reads the
 * clock; any thread. A verified hb_jwt_t is immutable and may be read from several threads.
 */

#define HB_JWT_MAX 8192        /* bytes of token */
#define HB_JWT_PATTERNS_MAX 64 /* patterns per "subscribe" or "publish" array */
#define HB_JWT_SUB_MAX 128     /* bytes of "sub" */
#define HB_JWT_DEPTH_MAX 16    /* nesting of the header or the claims; the object is level 1 */
#define HB_JWT_TIME_MAX 253402300799 /* last NumericDate: 9999-12-31T23:59:59Z, in seconds */

/* Verified claims: the rights, exp and sub. Owned by whoever hb_jwt_verify() gave it to. */
typedef struct hb_jwt hb_jwt_t;

/**
 * hb_jwt_verify() - verify the token (token, len) with the HMAC key (key, keylen) at time now
 * (unix seconds, from the caller's clock) allowing leeway seconds of clock skew.
 *
 * Returns 0 and sets *out to the verified claims, which the caller frees with hb_jwt_free().
 * Otherwise sets *out to NULL, sets *reason (when reason is not NULL; untouched on success) to
 * a constant one-line reason and returns, checking in this order:
 *  - HB_EINVAL: token, key or out is NULL, keylen is 0 or above INT_MAX, or leeway < 0
 *    ("invalid argument");
 *  - HB_ELIMIT: len > HB_JWT_MAX ("token longer than 8192 bytes"), before anything is read;
 *  - HB_EPROTO: not three '.'-separated parts; a part that is not canonical unpadded
 *    base64url; a header that is not JSON (duplicate keys included), not an object or nested
 *    deeper than HB_JWT_DEPTH_MAX;
 *  - HB_EINVAL: "alg" missing or not exactly "HS256" ("alg must be HS256"), "typ" present
 *    and not exactly "JWT", "crit" present; then a signature that is not the HMAC-SHA256 of
 *    header.payload under the key ("bad signature");
 *  - HB_EPROTO: claims that are not JSON, not an object or too deep;
 *  - then claim by claim: "exp" (HB_EPROTO "exp must be a number" if not a number, "exp must
 *    be seconds from 0 to 253402300799 (not milliseconds)" if out of that range; HB_EINVAL
 *    "token expired" when exp < now - leeway), "nbf" (the same two HB_EPROTO; HB_EINVAL "token
 *    not yet valid" when nbf > now + leeway), "iat" (the same two HB_EPROTO), "sub" (HB_EPROTO if
 * not a string, HB_ELIMIT if longer than HB_JWT_SUB_MAX), "subscribe" then "publish" (HB_EPROTO if
 * not an array or a pattern is invalid, HB_ELIMIT for more than HB_JWT_PATTERNS_MAX patterns);
 *  - HB_ENOMEM when an allocation (or libcrypto) failed ("out of memory").
 * So exp = now - leeway and nbf = now + leeway are still accepted. A missing array grants
 * nothing of that kind; a missing exp or nbf is not checked.
 */
int hb_jwt_verify(const char *token, size_t len, const unsigned char *key, size_t keylen,
                  long long now, long leeway, hb_jwt_t **out, const char **reason);

/** hb_jwt_free() - free claims from hb_jwt_verify(). Accepts NULL. */
void hb_jwt_free(hb_jwt_t *j);

/**
 * hb_jwt_can_subscribe() - 1 when (topic, len) is a valid topic that a "subscribe" pattern
 * of j matches, else 0 (also for a NULL j or an invalid topic).
 */
int hb_jwt_can_subscribe(const hb_jwt_t *j, const char *topic, size_t len);

/** hb_jwt_can_publish() - as hb_jwt_can_subscribe(), for the "publish" patterns. */
int hb_jwt_can_publish(const hb_jwt_t *j, const char *topic, size_t len);

/**
 * hb_jwt_exp() - the "exp" claim rounded down to whole seconds, so 0..HB_JWT_TIME_MAX, for
 * closing a connection at expiry; 0 when absent (or for a NULL j).
 */
long long hb_jwt_exp(const hb_jwt_t *j);

/** hb_jwt_sub() - the "sub" claim, NUL-terminated, owned by j; "" when absent or j is NULL. */
const char *hb_jwt_sub(const hb_jwt_t *j);

#endif
