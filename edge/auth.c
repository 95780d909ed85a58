/*
 * Who may subscribe and publish, and from which browser origins: bearer tokens (the static
 * publish key, or HS256 JWTs verified by common/hb_jwt) and the --allowed-origins list.
 * Service thread only; nothing here blocks.
 */
#include "service.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hb_cookie.h"
#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"

#define MOD "auth"

/* 1 when (a, alen) and (b, blen) are equal, compared in a time that does not depend on where
 * they differ (secrets). */
static int const_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int hb_auth_token(struct lws *wsi, char *out, size_t cap)
{
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0) {
        char *hdr = out;
        if ((size_t)n >= cap)
            return HB_ELIMIT;
        if (lws_hdr_copy(wsi, hdr, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
            return HB_ELIMIT;
        if (strncasecmp(hdr, "Bearer ", 7) != 0)
            return HB_EPROTO;
        memmove(out, hdr + 7, strlen(hdr + 7) + 1);
        return out[0] != '\0' ? 1 : HB_EPROTO;
    }
    /* EventSource cannot set headers: ?token=. Another argument longer than cap (a long
     * topic list) is read into the heap to see its name: it is not a long token. */
    for (int i = 0;; i++) {
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i), rc = 0, found = 0;
        char *arg = out;
        if (len <= 0)
            return 0;
        if (len < 6)
            continue;
        if ((size_t)len >= cap)
            arg = hb_xmalloc((size_t)len + 1);
        if (lws_hdr_copy_fragment(wsi, arg, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0 &&
            !strncmp(arg, "token=", 6)) {
            found = 1;
            if (arg != out)
                rc = HB_ELIMIT; /* the token itself is too long */
            else {
                memmove(out, out + 6, strlen(out + 6) + 1);
                rc = out[0] != '\0' ? 1 : HB_EPROTO;
            }
        }
        if (arg != out)
            free(arg);
        if (found)
            return rc;
    }
}

/*
 * A browser attaches cookies to requests that other sites' pages make (a cross-site WebSocket
 * handshake above all), so a cookie speaks for its user only on a request from the edge's own
 * origin (no Origin header, or one equal to the Host) or from an origin listed by name in
 * --allowed-origins; `*` never lets a cookie through.
 */
static int cookie_origin_ok(const hb_cfg_t *cfg, struct lws *wsi)
{
    char origin[512], host[256];
    const char *o;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN), idx;
    if (n <= 0)
        return 1;
    if ((size_t)n >= sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
        return 0;
    idx = hb_cfg_origin_index(cfg->allowed_origins, origin, strlen(origin));
    if (idx > 0)
        return 1;
    o = strstr(origin, "://");
    n = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    if (!o || n <= 0 || (size_t)n >= sizeof(host) ||
        lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) < 0)
        return 0;
    return !strcasecmp(o + 3, host);
}

int hb_auth_cookie(hb_svc_t *s, struct lws *wsi, char *out, size_t cap)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    size_t max = cap;
    if (!cfg->auth_cookie[0] || lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) <= 0)
        return 0;
    if (!cookie_origin_ok(cfg, wsi)) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_origin, 1, memory_order_relaxed);
        hb_log_ratelimited("cookie-origin", 1000, HB_LOG_INFO, MOD,
                           "token cookie ignored: request from a foreign origin", NULL);
        return 0;
    }
    /* by its exact name (hb_cookie_find): lws 4.1's lws_http_cookie_get() matches a name
     * that ends with it, or one inside another cookie's value (`mytok=`, `pref=tok=`), so a
     * cookie the site sets for something else could carry a token past this one */
    /* each Cookie header on its own (lws_hdr_copy() joins them with nothing between) */
    for (int i = 0;; i++) {
        int n = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_COOKIE, i), rc = 0, found = 0;
        char *hdr;
        const char *v;
        size_t vlen;
        if (n <= 0)
            return 0;
        hdr = hb_xmalloc((size_t)n + 1);
        if (lws_hdr_copy_fragment(wsi, hdr, n + 1, WSI_TOKEN_HTTP_COOKIE, i) >= 0 &&
            hb_cookie_find(hdr, strlen(hdr), cfg->auth_cookie, &v, &vlen)) {
            found = 1;
            rc = vlen >= max ? HB_ELIMIT : vlen ? 1 : 0;
            if (rc == 1) {
                memcpy(out, v, vlen);
                out[vlen] = '\0';
            }
        }
        free(hdr);
        if (found)
            return rc;
    }
}

int hb_auth_is_publish_key(const hb_cfg_t *cfg, const char *tok, size_t len)
{
    return cfg->publish_key[0] && const_eq(tok, len, cfg->publish_key, strlen(cfg->publish_key));
}

int hb_auth_verify(hb_svc_t *s, const char *tok, size_t len, hb_jwt_t **out, const char **reason)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    int rc;
    *out = NULL;
    if (!cfg->jwt_secret_len) {
        *reason = "token auth is not configured on this edge";
        return HB_EINVAL;
    }
    rc = hb_jwt_verify(tok, len, (const unsigned char *)cfg->jwt_secret, cfg->jwt_secret_len,
                       (long long)time(NULL), cfg->jwt_leeway, out, reason);
    if (rc) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        hb_log_ratelimited("bad-token", 1000, HB_LOG_INFO, MOD, "token refused", "{s:s}", "err",
                           *reason);
    }
    return rc;
}

int hb_auth_may_subscribe(const hb_cfg_t *cfg, const hb_jwt_t *j, const char *topic, size_t len)
{
    if (j)
        return hb_jwt_can_subscribe(j, topic, len);
    return !cfg->jwt_secret_len || cfg->allow_anonymous;
}

int hb_auth_http(hb_svc_t *s, struct lws *wsi, hb_jwt_t **jwt, const char **reason)
{
    char tok[HB_JWT_MAX + 8];
    int has, rc;
    *jwt = NULL;
    if (!s->edge->cfg.jwt_secret_len)
        return 0; /* no token checks on this edge: a token is ignored */
    {
        hb_client_t *c = lws_wsi_user(wsi);
        const char *t = c && c->x ? c->x->ticket_jwt : NULL;
        if (t) /* a redeemed ticket's token (ticket.h): verified again */
            return (rc = hb_auth_verify(s, t, strlen(t), jwt, reason)) ? rc : 1;
    }
    has = hb_auth_token(wsi, tok, sizeof(tok));
    if (has == 0)
        has = hb_auth_cookie(s, wsi, tok, sizeof(tok));
    if (has == 0)
        return 0;
    if (has == HB_ELIMIT) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        *reason = "token longer than 8192 bytes";
        return HB_ELIMIT;
    }
    if (has < 0) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_auth, 1, memory_order_relaxed);
        *reason = "Authorization must be: Bearer <token>";
        return HB_EPROTO;
    }
    return (rc = hb_auth_verify(s, tok, strlen(tok), jwt, reason)) ? rc : 1;
}

/*
 * The expiry timer waits at most this long and then re-arms itself (hb_auth_on_timer's early
 * wake-up), so its microseconds never approach the lws_usec_t range whatever exp says. An exp
 * of 10^13 (milliseconds) once made (exp - now) * 10^6 overflow to a time in the past: the
 * timer fired, found the token still valid, re-armed in the past again, and the service
 * thread spun in lws's timer loop for good. hb_jwt bounds exp too; this does not rely on it.
 */
#define AUTH_TIMER_MAX_S 3600

/* 1 when a token with this exp is no longer accepted at now: exp + leeway < now, no overflow. */
static int auth_expired(const hb_client_t *c, long long exp, long long now)
{
    long long leeway = c->svc->edge->cfg.jwt_leeway;
    return exp < LLONG_MAX - leeway && exp + leeway < now;
}

void hb_auth_expire_at(hb_client_t *c, long long exp)
{
    long long now = (long long)time(NULL), wait;
    c->auth_exp = exp;
    if (!exp) {
        lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
        return;
    }
    /* hb_jwt_verify() still accepts exp + leeway == now: end the second after. Compared, not
     * added, so that no exp overflows. */
    if (auth_expired(c, exp, now))
        wait = 0;
    else if (exp - now >= AUTH_TIMER_MAX_S - 1 - c->svc->edge->cfg.jwt_leeway)
        wait = AUTH_TIMER_MAX_S;
    else
        wait = exp + c->svc->edge->cfg.jwt_leeway + 1 - now; /* 1 .. AUTH_TIMER_MAX_S */
    lws_set_timer_usecs(c->wsi, wait > 0 ? (lws_usec_t)wait * LWS_USEC_PER_SEC : 1);
}

int hb_auth_on_timer(hb_client_t *c)
{
    long long now = (long long)time(NULL);
    if (!c->auth_exp || c->closing)
        return 0;
    if (!auth_expired(c, c->auth_exp, now)) {
        hb_auth_expire_at(c, c->auth_exp); /* early (or capped) wake-up: at least 1 s later */
        return 0;
    }
    atomic_fetch_add_explicit(&c->svc->edge->stats.auth_expired, 1, memory_order_relaxed);
    hb_log_debug(MOD, "token expired", "{s:I}", "client", (long long)c->id);
    if (c->ops && c->ops->expire) {
        c->ops->expire(c); /* SSE: the stream ends after what is queued */
        return 0;
    }
    hb_client_close(c, "token expired", LWS_CLOSE_STATUS_POLICY_VIOLATION);
    return 0;
}

int hb_auth_origin(hb_svc_t *s, struct lws *wsi, uint8_t *cors)
{
    char origin[512];
    const char *list = s->edge->cfg.allowed_origins;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN), idx;
    *cors = 0;
    if (n <= 0)
        return 0; /* not a cross-origin browser request: nothing to allow or refuse */
    if ((size_t)n >= sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
        idx = -1;
    else
        idx = hb_cfg_origin_index(list, origin, strlen(origin));
    if (idx < 0 || idx > 250) {
        int too_long = (size_t)n >= sizeof(origin);
        atomic_fetch_add_explicit(&s->edge->stats.rejected_origin, 1, memory_order_relaxed);
        hb_log_ratelimited("origin", 1000, HB_LOG_INFO, MOD, "origin not allowed", "{s:s}",
                           "origin", too_long ? "(too long)" : origin);
        return too_long ? HB_ELIMIT : HB_EINVAL;
    }
    *cors = (uint8_t)(idx + 1);
    return 0;
}
