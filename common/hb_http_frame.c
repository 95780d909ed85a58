/*
 * HTTP/1.1 request framing checks (RFC 9112 sections 6.1-6.3): one decision per request head,
 * taken before the request is routed, so an ambiguous head is refused before anything is
 * stored or answered from it.
 */
#include "hb_http_frame.h"

#include <strings.h>

#include "hb_err.h"

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims SP/HTAB on both sides of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n && blank((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n && blank((*s)[*n - 1]))
        (*n)--;
}

int hb_http_parse_length(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (!s)
        return HB_EPROTO;
    trim(&s, &n);
    if (n == 0 || n > 15)
        return HB_EPROTO;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return HB_EPROTO;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* <= 15 digits: below 2^50 */
    }
    *out = v;
    return 0;
}

static int refuse(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return HB_EPROTO;
}

int hb_http_frame_check(const hb_http_head_t *h, hb_http_body_t *body, uint64_t *len,
                        const char **reason)
{
    uint64_t n = 0;
    *body = HB_HTTP_BODY_NONE;
    *len = 0;
    if (h->h2)
        return refuse(reason, "HTTP/2 is not served: use HTTP/1.1 (Upgrade only to websocket)");
    if (h->odd_framing)
        return refuse(reason, "malformed Content-Length or Transfer-Encoding header");
    if (h->cl_count && h->te_count)
        return refuse(reason, "Content-Length together with Transfer-Encoding");
    if (h->cl_count > 1)
        return refuse(reason, "more than one Content-Length");
    if (h->te_count > 1)
        return refuse(reason, "more than one Transfer-Encoding");
    if (h->cl_count) {
        if (hb_http_parse_length(h->cl, h->cl_len, &n))
            return refuse(reason, "bad Content-Length");
        if (n && !h->body_method)
            return refuse(reason, "a request body is not accepted with this method");
        *body = HB_HTTP_BODY_LENGTH;
        *len = n;
        return 0;
    }
    if (h->te_count) {
        const char *s = h->te;
        size_t tn = h->te_len;
        if (!s)
            return refuse(reason, "bad Transfer-Encoding");
        trim(&s, &tn);
        if (tn != 7 || strncasecmp(s, "chunked", 7) != 0)
            return refuse(reason, "unsupported Transfer-Encoding (only chunked)");
        if (!h->body_method)
            return refuse(reason, "a request body is not accepted with this method");
        *body = HB_HTTP_BODY_CHUNKED;
        return 0;
    }
    return 0;
}
