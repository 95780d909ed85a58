#ifndef HERALD_COMMON_HB_SSE_H
#define HERALD_COMMON_HB_SSE_H

#include <stddef.h>

#include "hb_buf.h"

/*
 * Server-Sent Events framing (WHATWG HTML, "event stream" interpretation). Lines end in "\n".
 * The payload is split into one "data:" line per line of the payload; "\r\n", "\r" and "\n"
 * all end a payload line, so no byte of a payload can end a field or an event early. Other
 * bytes (NUL and invalid UTF-8 included) are copied as they are. An empty payload line is
 * encoded as "data:\n" (a field with an empty value), so "a\n\nb" is data "a", "", "b".
 * A trailing line break in the payload yields a final empty "data:" line, preserving it.
 */

/**
 * hb_sse_encode() - encode one event into a new buffer (one reference, owned by the caller):
 *
 *     id: <id>\n            (omitted when id_len == 0)
 *     event: <event>\n      (omitted when ev_len == 0)
 *     data: <line>\n        (one per payload line; "data:\n" for an empty line)
 *     \n
 *
 * `id` and `event` must not contain CR or LF (the caller validated them); HB_EPROTO-like misuse
 * returns NULL. `headroom` bytes are reserved in front. Returns NULL on OOM or bad id/event.
 * Any thread.
 */
hb_buf_t *hb_sse_encode(const char *id, size_t id_len, const char *event, size_t ev_len,
                        const char *data, size_t data_len, size_t headroom);

/** hb_sse_encoded_len() - exact byte length hb_sse_encode() would produce (without headroom). */
size_t hb_sse_encoded_len(size_t id_len, size_t ev_len, const char *data, size_t data_len);

/**
 * hb_sse_format_retry() - write "retry: <ms>\n\n" into out (cap bytes, NUL-terminated).
 * Returns the length written (without NUL), or HB_ELIMIT if it does not fit.
 */
int hb_sse_format_retry(char *out, size_t cap, unsigned ms);

#endif
