/*
 * hb_http_frame_check() on request heads: the input is raw request bytes; a small reference
 * splitter (lines end at LF, a CR before it is dropped; a name ends at the first ':') collects
 * the framing fields the way edge/reqcheck.c gets them from libwebsockets, and the decision is
 * checked against the rules of RFC 9112 section 6.3 written out again here:
 *   - an accepted head has at most one framing field kind and at most one line of it;
 *   - an accepted length is exactly the digits of the one Content-Length (blanks trimmed);
 *   - an accepted chunked body is exactly "chunked" on a method with a body;
 *   - a body is never accepted on a method without one; odd or h2 heads are always refused;
 *   - a refusal is HB_EPROTO with a constant one-line reason.
 * hb_http_parse_length() is also checked against strtoull on its own.
 */
#include <ctype.h>
#include <errno.h>
#include <strings.h>

#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_http_frame.h"

static int name_is(const uint8_t *p, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n == l && strncasecmp((const char *)p, name, l) == 0;
}

static void trim(const uint8_t **p, size_t *n)
{
    while (*n && ((*p)[0] == ' ' || (*p)[0] == '\t'))
        (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

/* Reference: 1..15 digits after trimming; -1 otherwise. */
static long long ref_length(const uint8_t *p, size_t n)
{
    char buf[32];
    char *end;
    trim(&p, &n);
    if (n == 0 || n > 15)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit(p[i]))
            return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    FZ_CHECK(errno == 0 && *end == '\0');
    return (long long)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *d = fz_dup(data, size);
    hb_http_head_t h;
    const uint8_t *line = d, *end = d + size;
    const uint8_t *te_first = NULL;
    size_t te_first_len = 0;
    int first = 1;

    memset(&h, 0, sizeof(h));
    while (line < end) {
        const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)((nl ? nl : end) - line);
        if (n && line[n - 1] == '\r')
            n--;
        if (first) { /* request line: the method decides whether a body is expected */
            h.body_method = (n >= 5 && !memcmp(line, "POST ", 5)) ||
                            (n >= 4 && !memcmp(line, "PUT ", 4)) ||
                            (n >= 6 && !memcmp(line, "PATCH ", 6));
            first = 0;
        } else if (n == 0) {
            break; /* end of the head */
        } else {
            const uint8_t *colon = memchr(line, ':', n);
            if (colon) {
                size_t nl_ = (size_t)(colon - line);
                const uint8_t *v = colon + 1;
                size_t vn = n - nl_ - 1;
                if (name_is(line, nl_, "content-length")) {
                    if (!h.cl_count) {
                        trim(&v, &vn);
                        h.cl = (const char *)v;
                        h.cl_len = vn;
                    }
                    h.cl_count++;
                } else if (name_is(line, nl_, "transfer-encoding")) {
                    if (!h.te_count) {
                        te_first = v;
                        te_first_len = vn;
                    }
                    h.te_count++;
                } else if (name_is(line, nl_, "http2-settings")) {
                    h.h2 = 1;
                } else if (name_is(line, nl_, "upgrade")) {
                    const uint8_t *u = v;
                    size_t un = vn;
                    trim(&u, &un);
                    if (!name_is(u, un, "websocket"))
                        h.h2 = 1;
                } else if (nl_ && (line[nl_ - 1] == ' ' || line[nl_ - 1] == '\t')) {
                    const uint8_t *nm = line;
                    size_t nn = nl_;
                    trim(&nm, &nn);
                    if (name_is(nm, nn, "content-length") || name_is(nm, nn, "transfer-encoding"))
                        h.odd_framing = 1;
                }
            }
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    h.te = (const char *)te_first;
    h.te_len = te_first_len;

    hb_http_body_t body = HB_HTTP_BODY_LENGTH;
    uint64_t len = 7;
    const char *reason = NULL;
    int rc = hb_http_frame_check(&h, &body, &len, &reason);
    FZ_CHECK(rc == 0 || rc == HB_EPROTO);
    if (rc) {
        FZ_CHECK(fz_reason_ok(reason));
        FZ_CHECK(body == HB_HTTP_BODY_NONE && len == 0);
    } else {
        FZ_CHECK(!h.h2 && !h.odd_framing && h.cl_count + h.te_count <= 1);
        if (body == HB_HTTP_BODY_LENGTH) {
            long long ref = ref_length((const uint8_t *)h.cl, h.cl_len);
            FZ_CHECK(h.cl_count == 1 && ref >= 0 && (uint64_t)ref == len);
            FZ_CHECK(len == 0 || h.body_method);
        } else if (body == HB_HTTP_BODY_CHUNKED) {
            const uint8_t *t = te_first;
            size_t tn = te_first_len;
            trim(&t, &tn);
            FZ_CHECK(h.te_count == 1 && h.body_method && name_is(t, tn, "chunked"));
        } else {
            FZ_CHECK(body == HB_HTTP_BODY_NONE && !h.cl_count && !h.te_count && len == 0);
        }
    }
    /* the same head refused when it is both framed ways */
    if (h.cl_count && h.te_count)
        FZ_CHECK(rc == HB_EPROTO);

    /* the length parser alone, on the whole input */
    {
        uint64_t v = 0;
        long long ref = ref_length(d, size);
        int prc = hb_http_parse_length((const char *)d, size, &v);
        FZ_CHECK((prc == 0) == (ref >= 0));
        if (prc == 0)
            FZ_CHECK(v == (uint64_t)ref && v <= HB_HTTP_LENGTH_MAX);
    }
    free(d);
    return 0;
}
