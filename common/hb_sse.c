#include "hb_sse.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hb_err.h"

#define SSE_ID_PREFIX "id: "
#define SSE_EVENT_PREFIX "event: "
#define SSE_DATA_PREFIX "data: "
#define SSE_DATA_EMPTY "data:\n"
#define LIT_LEN(s) (sizeof(s) - 1)

/* a + b, saturating at SIZE_MAX so an impossible size never wraps to a small one. */
static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/*
 * Length of the payload line starting at data[pos] (up to, not including, its line break) and
 * of the break that ends it (0 at the end of the payload, 2 for "\r\n", else 1).
 */
static size_t next_line(const char *data, size_t data_len, size_t pos, size_t *brk)
{
    size_t i = pos;
    while (i < data_len && data[i] != '\n' && data[i] != '\r')
        i++;
    if (i == data_len)
        *brk = 0;
    else if (data[i] == '\r' && i + 1 < data_len && data[i + 1] == '\n')
        *brk = 2;
    else
        *brk = 1;
    return i - pos;
}

static int has_crlf(const char *s, size_t len)
{
    return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL;
}

size_t hb_sse_encoded_len(size_t id_len, size_t ev_len, const char *data, size_t data_len)
{
    size_t n = 1; /* the blank line ending the event */
    if (id_len)
        n = add_sat(n, add_sat(LIT_LEN(SSE_ID_PREFIX) + 1, id_len));
    if (ev_len)
        n = add_sat(n, add_sat(LIT_LEN(SSE_EVENT_PREFIX) + 1, ev_len));
    size_t pos = 0;
    for (;;) {
        size_t brk;
        size_t line = next_line(data, data_len, pos, &brk);
        if (line == 0)
            n = add_sat(n, LIT_LEN(SSE_DATA_EMPTY));
        else
            n = add_sat(n, add_sat(LIT_LEN(SSE_DATA_PREFIX) + 1, line));
        if (brk == 0)
            break;
        pos += line + brk;
    }
    return n;
}

/* Append a literal or a field value; the buffer was sized exactly, so it always fits. */
static void put(hb_buf_t *b, const void *p, size_t len)
{
    (void)hb_buf_append(b, p, len);
}

hb_buf_t *hb_sse_encode(const char *id, size_t id_len, const char *event, size_t ev_len,
                        const char *data, size_t data_len, size_t headroom)
{
    if ((id_len && (id == NULL || has_crlf(id, id_len))) ||
        (ev_len && (event == NULL || has_crlf(event, ev_len))) || (data_len && data == NULL))
        return NULL;
    size_t total = hb_sse_encoded_len(id_len, ev_len, data, data_len);
    if (total == SIZE_MAX)
        return NULL;
    hb_buf_t *b = hb_buf_new(total, headroom);
    if (b == NULL)
        return NULL;
    if (id_len) {
        put(b, SSE_ID_PREFIX, LIT_LEN(SSE_ID_PREFIX));
        put(b, id, id_len);
        put(b, "\n", 1);
    }
    if (ev_len) {
        put(b, SSE_EVENT_PREFIX, LIT_LEN(SSE_EVENT_PREFIX));
        put(b, event, ev_len);
        put(b, "\n", 1);
    }
    size_t pos = 0;
    for (;;) {
        size_t brk;
        size_t line = next_line(data, data_len, pos, &brk);
        if (line == 0) {
            put(b, SSE_DATA_EMPTY, LIT_LEN(SSE_DATA_EMPTY));
        } else {
            put(b, SSE_DATA_PREFIX, LIT_LEN(SSE_DATA_PREFIX));
            put(b, data + pos, line);
            put(b, "\n", 1);
        }
        if (brk == 0)
            break;
        pos += line + brk;
    }
    put(b, "\n", 1);
    return b;
}

int hb_sse_format_retry(char *out, size_t cap, unsigned ms)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "retry: %u\n\n", ms);
    if (n < 0 || (size_t)n >= cap)
        return HB_ELIMIT;
    memcpy(out, tmp, (size_t)n + 1);
    return n;
}
