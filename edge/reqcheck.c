/*
 * Request life cycle checks for the HTTP routes (see reqcheck.h). Service thread only.
 */
#include "reqcheck.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"

#define MOD "http"
#define FRAG_MAX 16 /* field lines of one name looked at; more are refused anyway */

/*
 * Field lines of known header @t: lws keeps a repeated line as another fragment (it starts
 * with a space). The first value goes to @first (NUL-terminated, *flen bytes); a value that
 * does not fit is replaced by "?" so it is refused as malformed, never truncated into a number.
 */
static unsigned field_lines(struct lws *wsi, enum lws_token_indexes t, char *first, size_t cap,
                            size_t *flen)
{
    unsigned n = 0;
    char tmp[8];
    *flen = 0;
    first[0] = '\0';
    for (int i = 0; i < FRAG_MAX; i++) {
        char *dst = i ? tmp : first;
        int dcap = i ? (int)sizeof(tmp) : (int)cap;
        int fl = lws_hdr_fragment_length(wsi, t, i);
        int r = lws_hdr_copy_fragment(wsi, dst, dcap, t, i);
        if (r < 0 && fl < dcap)
            break; /* no such line (copy_fragment also fails for one too long) */
        if (!i) {
            if (r < 0)
                snprintf(first, cap, "?");
            *flen = strlen(first);
        }
        n++;
    }
    return n;
}

/* Names lws does not recognise as Content-Length / Transfer-Encoding but a proxy might:
 * whitespace between the name and the colon (RFC 9112 section 5.1: must be refused). */
static int odd_framing(struct lws *wsi)
{
    static const char *const names[] = {
        "content-length :", "content-length\t:", "transfer-encoding :", "transfer-encoding\t:"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (lws_hdr_custom_length(wsi, names[i], (int)strlen(names[i])) >= 0)
            return 1;
    return 0;
}

int hb_req_framing(struct lws *wsi, hb_http_body_t *body, uint64_t *len, const char **reason)
{
    char cl[32], te[64], up[32], set[8];
    size_t upl, setl;
    hb_http_head_t h;
    memset(&h, 0, sizeof(h));
    h.body_method = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
                    lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
                    lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
    h.cl_count = field_lines(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof(cl), &h.cl_len);
    h.cl = h.cl_count ? cl : NULL;
    h.te_count = field_lines(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, te, sizeof(te), &h.te_len);
    h.te = h.te_count ? te : NULL;
    h.odd_framing = odd_framing(wsi);
    /* a WebSocket upgrade that reaches the HTTP routes (no "Connection: upgrade") is
     * answered there (426); any other Upgrade, and HTTP2-Settings, is HTTP/2 cleartext */
    if (field_lines(wsi, WSI_TOKEN_UPGRADE, up, sizeof(up), &upl) && strcasecmp(up, "websocket"))
        h.h2 = 1;
    if (field_lines(wsi, WSI_TOKEN_HTTP2_SETTINGS, set, sizeof(set), &setl))
        h.h2 = 1;
    return hb_http_frame_check(&h, body, len, reason);
}

/* atoll(s) > 0, without its overflow: leading white space, one sign, then digits */
static int atoll_positive(const char *s)
{
    int neg = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    for (; *s >= '0' && *s <= '9'; s++)
        if (*s != '0')
            return !neg;
    return 0;
}

int hb_req_lws_body(struct lws *wsi)
{
    char cl[32];
    int body = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
               lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
               lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
    /* the same copy as lws' (a 31-byte buffer): a value it cannot copy is ignored by it too */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) &&
        lws_hdr_copy(wsi, cl, sizeof(cl) - 1, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        body = atoll_positive(cl);
    return body;
}

int hb_req_buffered(struct lws *wsi)
{
    /* 0 when a connection of this thread needs service without network input: one whose
     * kept bytes wait to be parsed (or TLS-buffered input, or WebSocket rx to drain) */
    return lws_service_adjust_timeout(lws_get_context(wsi), 1, 0) == 0;
}

int hb_req_pipelined_behind(hb_client_t *c)
{
    if (c->pipe_checked == 2) {
        c->pipe_checked = 1; /* found by hb_req_checks_run(): said once */
        return 1;
    }
    if (c->pipe_checked == 1 || !c->wsi)
        return 0;
    hb_req_check_cancel(c); /* made now, not at the end of the turn */
    c->pipe_checked = 1;
    return hb_req_buffered(c->wsi);
}

void hb_req_check_later(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    if (c->pipe_checked)
        return;
    if (!s->prep) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (s->pipe_n == s->pipe_cap) {
        s->pipe_cap = s->pipe_cap ? s->pipe_cap * 2 : 64;
        s->pipe_q = hb_xrealloc(s->pipe_q, s->pipe_cap * sizeof(*s->pipe_q));
    }
    s->pipe_q[s->pipe_n++] = c;
    c->pipe_checked = 3;
}

void hb_req_checks_run(hb_svc_t *s)
{
    int kept;
    if (!s->pipe_n)
        return;
    /* one answer for the thread (hb_req_buffered()): a connection of it keeps input */
    kept = lws_service_adjust_timeout(s->ctx, 1, 0) == 0;
    for (uint32_t i = 0; i < s->pipe_n; i++) {
        hb_client_t *c = s->pipe_q[i];
        if (!c)
            continue; /* cleaned up, or checked from its writable callback */
        c->pipe_checked = kept ? 2 : 1;
        if (kept && c->wsi)
            lws_callback_on_writable(c->wsi);
    }
    s->pipe_n = 0;
}

void hb_req_check_cancel(hb_client_t *c)
{
    hb_svc_t *s = c->svc;
    if (c->pipe_checked != 3 || !s)
        return;
    c->pipe_checked = 0;
    /* only a client cleaned up (or answered) in the loop turn of its request is still here */
    for (uint32_t i = 0; i < s->pipe_n; i++)
        if (s->pipe_q[i] == c)
            s->pipe_q[i] = NULL;
}

void hb_req_pause(hb_client_t *c)
{
    if (c->rx_paused || !c->wsi)
        return;
    c->rx_paused = 1;
    lws_rx_flow_control(c->wsi, 0);
}

void hb_req_resume(hb_client_t *c)
{
    if (!c->rx_paused)
        return;
    c->rx_paused = 0;
    lws_rx_flow_control(c->wsi, 1);
}

/* Writes a whole short response (status line, headers, body) in one lws_write. The socket is
 * fresh or idle, so it goes out at once; the caller then has lws close the connection. */
static void write_refusal(hb_svc_t *s, struct lws *wsi, const char *status, const char *extra,
                          const char *text, enum lws_write_protocol wp)
{
    unsigned char buf[LWS_PRE + 512];
    char *p = (char *)buf + LWS_PRE;
    int n = snprintf(p, sizeof(buf) - LWS_PRE,
                     "HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     "content-length: %zu\r\nconnection: close\r\nx-herald-node: %s\r\n%s\r\n%s",
                     status, strlen(text), s ? s->edge->cfg.node_id : "", extra, text);
    if (s)
        atomic_fetch_add_explicit(&s->edge->stats.bad_requests, 1, memory_order_relaxed);
    hb_log_ratelimited("bad-request", 1000, HB_LOG_INFO, MOD, "bad request", "{s:s}", "err",
                       status);
    if (n > 0 && (size_t)n < sizeof(buf) - LWS_PRE)
        lws_write(wsi, (unsigned char *)p, (size_t)n, wp);
}

/* RFC 6455 4.2.1: the key is 16 bytes in base64 (24 characters, the last two "="). */
static int ws_key_valid(struct lws *wsi)
{
    char k[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_KEY) != 24 ||
        lws_hdr_copy(wsi, k, sizeof(k), WSI_TOKEN_KEY) != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (int i = 0; i < 22; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '+' && k[i] != '/')
            return 0;
    return 1;
}

/* The handshake's path is /ws (its query aside). */
static int ws_path_ok(struct lws *wsi)
{
    char uri[4];
    return lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) == 3 &&
           lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) == 3 && !strcmp(uri, "/ws");
}

/* The handshake offers herald.v1 among its subprotocols, and not "http" (or none: taken as
 * herald.v1). lws binds the first name it knows in the client's list, its "http" protocol
 * too, and closes without an answer when it knows none. */
static int ws_subprotocol_ok(struct lws *wsi)
{
    char v[1024];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL), ours = 0;
    if (n <= 0)
        return 1;
    if (n >= (int)sizeof(v) || lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_PROTOCOL) < 0)
        return 0;
    for (const char *p = v; *p;) {
        size_t len;
        p += strspn(p, " \t,");
        len = strcspn(p, " \t,");
        if (len == 4 && !memcmp(p, "http", 4))
            return 0;
        if (len == 9 && !memcmp(p, "herald.v1", 9))
            ours = 1; /* the rest must not name "http" either */
        p += len;
    }
    return ours;
}

int hb_req_confirm_upgrade(hb_svc_t *s, struct lws *wsi, const char *up)
{
    hb_http_body_t body;
    uint64_t blen;
    const char *reason = NULL;
    char text[160];
    if (!up || strcasecmp(up, "websocket")) {
        write_refusal(s, wsi, "400 Bad Request", "",
                      "HTTP/2 is not served: use HTTP/1.1 (Upgrade only to websocket)\n",
                      LWS_WRITE_HTTP_HEADERS);
        return -1;
    }
    /* The head's framing is checked as on every route: an ambiguous one (two Content-Length
     * values, Content-Length with Transfer-Encoding, HTTP2-Settings...) is refused, and so is
     * any body, which the handshake does not have: its bytes would be read as WebSocket
     * frames here while a proxy in front framed them otherwise (request smuggling). */
    if (hb_req_framing(wsi, &body, &blen, &reason))
        ; /* reason says why */
    else if (body != HB_HTTP_BODY_NONE && !(body == HB_HTTP_BODY_LENGTH && blen == 0))
        reason = "a WebSocket handshake has no body";
    else if (!ws_key_valid(wsi))
        reason = "Sec-WebSocket-Key must be 16 bytes in base64";
    else if (!ws_subprotocol_ok(wsi))
        reason = "unsupported WebSocket subprotocol: offer herald.v1";
    else if (!ws_path_ok(wsi)) {
        write_refusal(s, wsi, "404 Not Found", "", "WebSocket is served on /ws\n",
                      LWS_WRITE_HTTP_HEADERS);
        return -1;
    } else
        return 0;
    snprintf(text, sizeof(text), "%s\n", reason ? reason : "bad request framing");
    write_refusal(s, wsi, "400 Bad Request", "", text, LWS_WRITE_HTTP_HEADERS);
    return -1;
}

int hb_req_refuse_pipelined(hb_svc_t *s, struct lws *wsi)
{
    write_refusal(s, wsi, "400 Bad Request", "",
                  "a request with a body must not be pipelined: send it after the answer to the "
                  "previous request, or on a new connection\n",
                  LWS_WRITE_HTTP_HEADERS);
    return -1;
}

int hb_req_refuse_raw(hb_svc_t *s, struct lws *wsi)
{
    write_refusal(s, wsi, "405 Method Not Allowed", "allow: GET, HEAD, POST, OPTIONS\r\n",
                  "method not allowed: use GET, HEAD, POST or OPTIONS\n", LWS_WRITE_RAW);
    return -1;
}
