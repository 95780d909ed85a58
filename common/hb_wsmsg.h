#ifndef HERALD_COMMON_HB_WSMSG_H
#define HERALD_COMMON_HB_WSMSG_H

#include <stddef.h>

#include <jansson.h>

#include "hb_id.h"

/*
 * One client message of the herald.v1 WebSocket subprotocol (PROTOCOL.md section 5): a text
 * frame holding one JSON object. hb_wsmsg_parse() turns the bytes into a typed request and
 * checks every field the request needs; what needs connection state (publish permission, the
 * key of "auth", already/not subscribed, the topic count) is left to the caller.
 *
 * Loop-free and I/O-free; any thread, as long as one hb_wsmsg_t is used by one thread.
 */

/* Deepest accepted nesting of arrays and objects; the message object itself is level 1. */
#define HB_WSMSG_DEPTH_MAX 32

typedef enum {
    HB_WSMSG_SUBSCRIBE = 1,
    HB_WSMSG_UNSUBSCRIBE,
    HB_WSMSG_PUBLISH,
    HB_WSMSG_PING,
    HB_WSMSG_AUTH
} hb_wsmsg_type_t;

/* A parsed message. Embedded by the caller; every pointer is valid until hb_wsmsg_cleanup(). */
typedef struct hb_wsmsg {
    hb_wsmsg_type_t type; /* 0 until "type" names a known request (set even if a field fails) */
    json_t *root;         /* owned; freed by hb_wsmsg_cleanup */
    json_t *echo;         /* borrowed from root: the "id" member (any JSON value) or NULL */
    const char *topic;    /* subscribe/unsubscribe/publish: valid topic, NUL-terminated */
    size_t topic_len;
    int has_since;     /* subscribe: 1 when "since" was given (and not null) */
    hb_cursor_t since; /* subscribe, when has_since */
    const char *data;  /* publish: NUL-terminated, data_len <= max_data */
    size_t data_len;
    const char *event; /* publish, optional: a valid event name, or NULL with event_len 0 */
    size_t event_len;
    const char *idem; /* publish, optional: a valid idempotency key, or NULL with idem_len 0 */
    size_t idem_len;
    const char *token; /* auth: NULL when "token" is missing or not a string */
    size_t token_len;
} hb_wsmsg_t;

/**
 * hb_wsmsg_parse() - parse one text message (s, len) into m, which need not be initialised.
 *
 * Returns 0, or a negative HB_E* with *code set to the PROTOCOL.md error code and *reason to a
 * constant one-line message (code and reason may be NULL when not wanted):
 *  - "bad_json" (HB_EPROTO): not JSON, nested deeper than HB_WSMSG_DEPTH_MAX, a duplicate key,
 *    or not a JSON object (HB_ENOMEM when jansson ran out of memory, same code);
 *  - "bad_request" (HB_EPROTO): "type" missing or not a string; "topic" missing or not a
 *    string; publish "data" not a string; publish "event" not a string or not a valid name;
 *    publish "idempotency_key" not a string or not a valid key (hb_idem_key_validate());
 *  - "unknown_type" (HB_EPROTO): "type" is none of the requests;
 *  - "bad_topic" (HB_EPROTO): hb_topic_validate() refused the topic;
 *  - "bad_cursor" (HB_EPROTO): subscribe "since" neither null nor a cursor string;
 *  - "too_large" (HB_ELIMIT): publish data longer than max_data bytes.
 * Checks run in this order: JSON, "type", then topic and since (subscribe), topic
 * (unsubscribe), or topic, data, event, idempotency key and data size (publish); the first
 * failure is returned. A null "since", "event" or "idempotency_key" counts as absent. "auth" never
 * fails here: a missing or non-string token leaves m->token NULL for the caller to refuse. Strings
 * are parsed without JSON_ALLOW_NUL, so "\u0000" in any string is bad_json, as it always was on the
 * edge.
 *
 * m->echo is set whenever the message was a JSON object, also on error, so the caller can echo
 * it. m->type is set as soon as "type" is known, also when a later field fails, so the caller
 * can refuse a publish with "forbidden" before any field error, as the edge always did. On
 * error every other field except root is zero.
 *
 * Always call hb_wsmsg_cleanup(m) afterwards, whatever the result. Returns HB_EINVAL (and
 * touches nothing) when m is NULL.
 */
int hb_wsmsg_parse(const char *s, size_t len, size_t max_data, hb_wsmsg_t *m, const char **code,
                   const char **reason);

/**
 * hb_wsmsg_cleanup() - release m->root and zero m. Idempotent; accepts NULL and a zeroed m.
 */
void hb_wsmsg_cleanup(hb_wsmsg_t *m);

#endif
