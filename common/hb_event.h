#ifndef HERALD_COMMON_HB_EVENT_H
#define HERALD_COMMON_HB_EVENT_H

/*
 * The encoding of one event, or gap notice, for every transport at once: each buffer is made
 * once per event and shared (referenced) by all its recipients, so fan-out copies nothing per
 * client. Pure: no loop, no global state; any thread (the buffers' reference counts are
 * atomic, hb_buf.h).
 */
#include <stddef.h>

#include "hb_buf.h"
#include "hb_id.h"

typedef enum {
    HB_GAP_NONE = 0,
    HB_GAP_TRIMMED = 1, /* events after the cursor were trimmed or expired */
    HB_GAP_RESET = 2,   /* the stream was recreated (epoch changed): old cursors are void */
} hb_gap_t;

/*
 * One event, encoded once per transport; every buffer is shared by all its recipients.
 *   sse  - the whole SSE frame with "id: <cursor>" (single-topic SSE);
 *   json - the event object {"type":"event","topic",...} (WebSocket, long-poll);
 *   msse - "event: ...\ndata: <json>\n" without id and blank line (multi-topic SSE, whose
 *          composite id line is written per client at write time);
 *   cur  - the cursor "<id>_<epoch>";
 *   ws   - json as one whole unmasked WebSocket text frame (header + payload): without
 *          permessage-deflate the bytes on the wire are the same for every recipient.
 * A control event (gap notice) has id 0-0, cur NULL, and msse is a whole frame.
 */
typedef struct hb_ev {
    hb_id_t id;
    hb_gap_t gap; /* control events: the reason */
    hb_buf_t *sse, *json, *msse, *cur, *ws;
} hb_ev_t;

/**
 * hb_ev_encode() - encode the event (topic[0..tlen), its stream ID and epoch, optional event
 * name event[0..evlen) and data[0..dlen)) for every transport into ev, which the caller owns
 * (one reference to each buffer; hb_ev_release()). Data that is not valid UTF-8 is carried
 * base64 in JSON ("encoding":"base64") and as is in SSE (hb_sse_encode()). The buffers are
 * stamped with the ID's time (hb_ev_stamp()). 0, or HB_ENOMEM with ev zeroed. The inputs are
 * not validated here (the caller bounds topic, name and epoch); any thread.
 */
int hb_ev_encode(hb_ev_t *ev, const char *topic, size_t tlen, const hb_id_t *id, const char *epoch,
                 const char *event, size_t evlen, const char *data, size_t dlen);
/** hb_ev_stamp() - set the publish time the delivery-latency metric measures from (0: do not
 * measure, e.g. history read for a resuming client). Before the buffers are shared. */
void hb_ev_stamp(hb_ev_t *ev, long long ms);
/**
 * hb_ev_encode_gap() - encode a gap notice (gap HB_GAP_TRIMMED or HB_GAP_RESET) of topic for
 * every transport into ev: SSE `event: herald.gap` with data {"topic","reason"} (msse the same
 * frame), JSON {"type":"gap","topic","reason"} and its WebSocket frame; no cursor. 0, or
 * HB_ENOMEM with ev zeroed. Any thread.
 */
int hb_ev_encode_gap(hb_ev_t *ev, const char *topic, size_t tlen, hb_gap_t gap);
/**
 * hb_ws_frame() - a new shared buffer holding (p, len) as one final, unmasked WebSocket text
 * frame (server to client), with one reference owned by the caller; NULL on OOM.
 */
hb_buf_t *hb_ws_frame(const void *p, size_t len);
/** hb_ws_frame_hdrlen() - the header length of a frame made by hb_ws_frame() (2, 4 or 10). */
size_t hb_ws_frame_hdrlen(const hb_buf_t *frame);
/** hb_ev_release() - drop ev's buffer references (NULL ones skipped) and zero it. */
void hb_ev_release(hb_ev_t *ev);

#endif
