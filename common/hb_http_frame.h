#ifndef HERALD_COMMON_HB_HTTP_FRAME_H
#define HERALD_COMMON_HB_HTTP_FRAME_H

/*
 * HTTP/1.1 request framing (RFC 9112 section 6): decides from the framing header fields of a
 * request head, before anything is acted on, whether the request has no body, a body of a
 * known length, or a chunked body, and refuses every head whose body length is ambiguous.
 * Loop-free; the caller (edge/http.c) collects the fields from libwebsockets.
 */

#include <stddef.h>
#include <stdint.h>

/* Largest Content-Length taken as a number (15 digits); a longer value is refused as malformed
 * rather than compared, so no arithmetic on it can overflow. */
#define HB_HTTP_LENGTH_MAX 999999999999999ULL

typedef enum {
    HB_HTTP_BODY_NONE = 0, /* no Content-Length, no Transfer-Encoding */
    HB_HTTP_BODY_LENGTH,   /* Content-Length: *len bytes (may be 0) */
    HB_HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked (and nothing else) */
} hb_http_body_t;

/* The framing fields of one request head, as the parser saw them. Borrowed pointers. */
typedef struct hb_http_head {
    int body_method;   /* 1: POST, PUT or PATCH (a body is expected); 0: GET, HEAD, OPTIONS... */
    unsigned cl_count; /* Content-Length field lines (0: absent) */
    const char *cl;    /* value of the first one (cl_len bytes, may be 0); NULL if absent */
    size_t cl_len;
    unsigned te_count; /* Transfer-Encoding field lines (0: absent) */
    const char *te;    /* value of the first one; NULL if absent */
    size_t te_len;
    int odd_framing; /* a field the parser did not recognise that names Content-Length or
                        Transfer-Encoding (whitespace before the colon, ...) */
    int h2;          /* an HTTP/2 cleartext attempt: HTTP2-Settings, or an Upgrade to other
                        than websocket */
} hb_http_head_t;

/**
 * hb_http_frame_check() - decide the body framing of a request head.
 * @h: the head's framing fields (borrowed, not kept).
 * @body: out, the framing (HB_HTTP_BODY_NONE on error).
 * @len: out, the Content-Length for HB_HTTP_BODY_LENGTH, else 0.
 * @reason: out (may be NULL), a constant one-line reason on error.
 *
 * Refused (HB_EPROTO; the caller answers 400 and closes the connection, RFC 9112 section
 * 6.3): odd_framing, h2, Content-Length together with Transfer-Encoding, more than one
 * Content-Length (even equal ones), a Content-Length that is not 1..15 decimal digits
 * (optional surrounding blanks), more than one Transfer-Encoding line, a Transfer-Encoding
 * other than exactly "chunked", and a body (Content-Length > 0 or chunked) on a method that
 * has none. Pure function, any thread. Returns 0 or HB_EPROTO.
 */
int hb_http_frame_check(const hb_http_head_t *h, hb_http_body_t *body, uint64_t *len,
                        const char **reason);

/**
 * hb_http_parse_length() - strict Content-Length value: optional blanks (SP, HTAB) around
 * 1..15 ASCII digits. Returns 0 with *out set, or HB_EPROTO (empty, sign, hex, list, junk,
 * too long). Pure function, any thread.
 */
int hb_http_parse_length(const char *s, size_t n, uint64_t *out);

#endif
