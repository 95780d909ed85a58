/*
 * hb_sse_encode(): whatever the payload bytes, the frame is read back by an event-stream
 * parser written here from the WHATWG HTML spec ("Interpreting an event stream") as exactly
 * one event, with the id and event type that were given and the payload with its line breaks
 * ("\r\n", "\r", "\n") normalised to "\n"; nothing else is dispatched, no field leaks out of
 * the payload. The length matches hb_sse_encoded_len(), the headroom is kept, and an id or
 * event name holding CR or LF is refused.
 *
 * The parser works on bytes: UTF-8 decoding (with U+FFFD replacement) never turns a non-ASCII
 * byte into CR, LF or ':' and never swallows an ASCII byte, so line and field boundaries are
 * the same as on decoded text.
 *
 * Input: [1 byte headroom][id 0xff event 0xff payload].
 */
#include "fuzz_util.h"
#include "hb_buf.h"
#include "hb_sse.h"

typedef struct {
    int events;    /* dispatched events */
    uint8_t *data; /* data buffer of the (single) dispatched event */
    size_t data_len;
    uint8_t *type; /* event type buffer at dispatch; NULL: "message" */
    size_t type_len;
    uint8_t *last_id; /* last event ID buffer at dispatch */
    size_t last_id_len;
    int saw_retry;
    int saw_comment;
} sse_result_t;

typedef struct {
    uint8_t *data, *type, *id;
    size_t data_len, type_len, id_len;
    int has_type;
} sse_state_t;

static void set_buf(uint8_t **dst, size_t *dlen, const uint8_t *v, size_t n)
{
    free(*dst);
    *dst = fz_dup(v, n);
    *dlen = n;
}

static void dispatch(sse_state_t *st, sse_result_t *r)
{
    /* The spec: if the data buffer is empty, reset and return (no event). */
    if (st->data_len == 0) {
        st->has_type = 0;
        st->type_len = 0;
        return;
    }
    if (st->data[st->data_len - 1] == '\n')
        st->data_len--;
    r->events++;
    free(r->data);
    free(r->type);
    free(r->last_id);
    r->data = fz_dup(st->data, st->data_len);
    r->data_len = st->data_len;
    r->type = st->has_type && st->type_len ? fz_dup(st->type, st->type_len) : NULL;
    r->type_len = st->has_type ? st->type_len : 0;
    r->last_id = fz_dup(st->id, st->id_len);
    r->last_id_len = st->id_len;
    st->data_len = 0;
    st->has_type = 0;
    st->type_len = 0;
}

static void field(sse_state_t *st, sse_result_t *r, const uint8_t *line, size_t n)
{
    if (n == 0) {
        dispatch(st, r);
        return;
    }
    if (line[0] == ':') {
        r->saw_comment = 1;
        return;
    }
    const uint8_t *colon = memchr(line, ':', n);
    size_t nl = colon ? (size_t)(colon - line) : n;
    const uint8_t *v = colon ? colon + 1 : line + n;
    size_t vl = colon ? n - nl - 1 : 0;
    if (vl && v[0] == ' ') {
        v++;
        vl--;
    }
    if (nl == 5 && memcmp(line, "event", 5) == 0) {
        set_buf(&st->type, &st->type_len, v, vl);
        st->has_type = 1;
    } else if (nl == 4 && memcmp(line, "data", 4) == 0) {
        st->data = realloc(st->data, st->data_len + vl + 1);
        FZ_CHECK(st->data != NULL);
        if (vl)
            memcpy(st->data + st->data_len, v, vl);
        st->data_len += vl;
        st->data[st->data_len++] = '\n';
    } else if (nl == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(v, '\0', vl) == NULL)
            set_buf(&st->id, &st->id_len, v, vl);
    } else if (nl == 5 && memcmp(line, "retry", 5) == 0) {
        r->saw_retry = 1;
    }
    /* other fields are ignored */
}

/* Parses a whole stream; an incomplete last line is discarded, as at end of stream. */
static void parse(const uint8_t *s, size_t n, sse_result_t *r)
{
    sse_state_t st = {0};
    st.id = fz_dup("", 0);
    size_t pos = 0;
    if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < n) {
        size_t j = pos;
        while (j < n && s[j] != '\r' && s[j] != '\n')
            j++;
        if (j == n)
            break;
        field(&st, r, s + pos, j - pos);
        pos = j + 1 + (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n');
    }
    free(st.data);
    free(st.type);
    free(st.id);
}

static int has_crlf(const uint8_t *s, size_t n)
{
    return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t headroom = data[0];
    const uint8_t *p[3];
    size_t n[3];
    fz_split(data + 1, size - 1, 3, p, n);
    char *id = fz_dup(p[0], n[0]);
    char *ev = fz_dup(p[1], n[1]);
    char *pl = fz_dup(p[2], n[2]);

    hb_buf_t *b = hb_sse_encode(id, n[0], ev, n[1], pl, n[2], headroom);
    if (has_crlf(p[0], n[0]) || has_crlf(p[1], n[1])) {
        FZ_CHECK(b == NULL);
        goto out;
    }
    FZ_CHECK(b != NULL);
    FZ_CHECK(hb_buf_refs(b) == 1 && b->headroom == headroom);
    size_t len = hb_buf_len(b);
    const uint8_t *f = hb_buf_data(b);
    FZ_CHECK(len == hb_sse_encoded_len(n[0], n[1], pl, n[2]));
    FZ_CHECK(len >= 2 && f[len - 1] == '\n' && f[len - 2] == '\n'); /* ends with a blank line */
    FZ_CHECK(memchr(f, '\r', len) == NULL);                         /* lines end in LF only */

    /* The payload with every line break normalised to "\n". */
    uint8_t *want = malloc(n[2] + 1);
    size_t wl = 0;
    for (size_t i = 0; i < n[2]; i++) {
        if (pl[i] == '\r') {
            want[wl++] = '\n';
            if (i + 1 < n[2] && pl[i + 1] == '\n')
                i++;
        } else {
            want[wl++] = (uint8_t)pl[i];
        }
    }

    sse_result_t r = {0};
    parse(f, len, &r);
    FZ_CHECK(r.events == 1);
    FZ_CHECK(!r.saw_retry && !r.saw_comment);
    FZ_CHECK(r.data_len == wl && (wl == 0 || memcmp(r.data, want, wl) == 0));
    /* event type: the name given, or "message" when none (a leading space of the name is
     * eaten by the one-space rule only if the encoder forgot its own space) */
    if (n[1] == 0)
        FZ_CHECK(r.type == NULL && r.type_len == 0);
    else
        FZ_CHECK(r.type_len == n[1] && memcmp(r.type, ev, n[1]) == 0);
    /* id: set when given (an id holding NUL is ignored by the spec: then it stays empty) */
    if (n[0] && memchr(id, '\0', n[0]) == NULL)
        FZ_CHECK(r.last_id_len == n[0] && memcmp(r.last_id, id, n[0]) == 0);
    else
        FZ_CHECK(r.last_id_len == 0);

    /* Two frames back to back are two events: nothing of the first leaks into the second. */
    uint8_t *two = malloc(2 * len);
    memcpy(two, f, len);
    memcpy(two + len, f, len);
    sse_result_t r2 = {0};
    parse(two, 2 * len, &r2);
    FZ_CHECK(r2.events == 2);
    FZ_CHECK(r2.data_len == wl && (wl == 0 || memcmp(r2.data, want, wl) == 0));
    free(two);
    free(r2.data);
    free(r2.type);
    free(r2.last_id);
    free(r.data);
    free(r.type);
    free(r.last_id);
    free(want);
out:
    hb_buf_unref(b);
    free(id);
    free(ev);
    free(pl);
    return 0;
}
