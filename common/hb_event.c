/* Event encoding for every transport (see hb_event.h). */
#include "hb_event.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "hb_err.h"
#include "hb_json.h"
#include "hb_sse.h"
#include "hb_utf8.h"

void hb_ev_release(hb_ev_t *ev)
{
    hb_buf_unref(ev->sse);
    hb_buf_unref(ev->json);
    hb_buf_unref(ev->msse);
    hb_buf_unref(ev->cur);
    hb_buf_unref(ev->ws);
    memset(ev, 0, sizeof(*ev));
}

hb_buf_t *hb_ws_frame(const void *p, size_t len)
{
    unsigned char h[10];
    size_t hl;
    hb_buf_t *b;
    h[0] = 0x81; /* FIN, text */
    if (len < 126) {
        h[1] = (unsigned char)len;
        hl = 2;
    } else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    if (len > SIZE_MAX - hl)
        return NULL;
    b = hb_buf_new(hl + len, 0);
    if (!b)
        return NULL;
    hb_buf_append(b, h, hl);
    hb_buf_append(b, p, len);
    return b;
}

size_t hb_ws_frame_hdrlen(const hb_buf_t *frame)
{
    unsigned char l = hb_buf_data(frame)[1] & 0x7f;
    return l == 127 ? 10 : l == 126 ? 4 : 2;
}

/* Serialises a JSON value into a new shared buffer; NULL on OOM. Takes the value's ref. */
static hb_buf_t *json_buf(json_t *v)
{
    char *s;
    hb_buf_t *b;
    if (!v)
        return NULL;
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s)
        return NULL;
    b = hb_buf_from(s, strlen(s));
    free(s);
    return b;
}

/* Appends the literal (p, n) at *o. */
static void put_lit(char **o, const char *p, size_t n)
{
    memcpy(*o, p, n);
    *o += n;
}

#define LIT(o, s) put_lit(o, s, sizeof(s) - 1)

/*
 * The JSON form {"type":"event","topic":..,"id":..[,"event":..][,"encoding":"base64"],"data":..}
 * written in one pass (common/hb_json.h), the bytes jansson's json_dumps() wrote for the same
 * object: data that is not UTF-8 goes as base64 with "encoding"; a topic, id or event name that
 * is not UTF-8 (never, after the checks at the edges) leaves its key out, as jansson did.
 */
static hb_buf_t *event_json(const char *topic, size_t tlen, const char *cursor, size_t clen,
                            const char *event, size_t evlen, const char *data, size_t dlen)
{
    char *b64 = NULL, *out, *o;
    int has_topic = hb_utf8_valid(topic, tlen), has_id = hb_utf8_valid(cursor, clen);
    int has_event = evlen && hb_utf8_valid(event, evlen);
    size_t size;
    hb_buf_t *b;
    if (!hb_utf8_valid(data, dlen)) {
        /* not valid UTF-8: JSON cannot carry it as a string */
        b64 = malloc(4 * ((dlen + 2) / 3) + 1);
        if (!b64)
            return NULL;
        dlen =
            (size_t)EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)dlen);
        data = b64;
    }
    size = sizeof("{\"type\":\"event\"") + sizeof(",\"topic\":") + sizeof(",\"id\":") +
           sizeof(",\"event\":") + sizeof(",\"data\":") + sizeof(",\"encoding\":\"base64\"}") +
           (has_topic ? hb_json_str_size(topic, tlen) : 0) +
           (has_id ? hb_json_str_size(cursor, clen) : 0) +
           (has_event ? hb_json_str_size(event, evlen) : 0) + hb_json_str_size(data, dlen);
    out = o = malloc(size);
    if (!out) {
        free(b64);
        return NULL;
    }
    LIT(&o, "{\"type\":\"event\"");
    if (has_topic) {
        LIT(&o, ",\"topic\":");
        o += hb_json_str_put(o, topic, tlen);
    }
    if (has_id) {
        LIT(&o, ",\"id\":");
        o += hb_json_str_put(o, cursor, clen);
    }
    if (has_event) {
        LIT(&o, ",\"event\":");
        o += hb_json_str_put(o, event, evlen);
    }
    if (b64)
        LIT(&o, ",\"encoding\":\"base64\"");
    LIT(&o, ",\"data\":");
    o += hb_json_str_put(o, data, dlen);
    *o++ = '}';
    b = hb_buf_from(out, (size_t)(o - out));
    free(out);
    free(b64);
    return b;
}

int hb_ev_encode(hb_ev_t *ev, const char *topic, size_t tlen, const hb_id_t *id, const char *epoch,
                 const char *event, size_t evlen, const char *data, size_t dlen)
{
    char cursor[HB_CURSOR_MAX];
    size_t clen = hb_cursor_format(id, epoch, cursor);
    char *line;
    size_t jl, n;

    memset(ev, 0, sizeof(*ev));
    ev->id = *id;
    ev->json = event_json(topic, tlen, cursor, clen, event, evlen, data, dlen);
    ev->ws = ev->json ? hb_ws_frame(hb_buf_data(ev->json), hb_buf_len(ev->json)) : NULL;
    ev->sse = hb_sse_encode(cursor, clen, event, evlen, data, dlen, 0);
    ev->cur = hb_buf_from(cursor, clen);
    if (ev->json) {
        jl = hb_buf_len(ev->json);
        line = malloc(evlen + jl + 24);
        if (line) {
            n = 0;
            if (evlen) {
                memcpy(line, "event: ", 7);
                memcpy(line + 7, event, evlen);
                line[7 + evlen] = '\n';
                n = 8 + evlen;
            }
            memcpy(line + n, "data: ", 6);
            memcpy(line + n + 6, hb_buf_data(ev->json), jl);
            line[n + 6 + jl] = '\n';
            ev->msse = hb_buf_from(line, n + 7 + jl);
            free(line);
        }
    }
    if (!ev->sse || !ev->json || !ev->msse || !ev->cur || !ev->ws) {
        hb_ev_release(ev);
        return HB_ENOMEM;
    }
    hb_ev_stamp(ev, id->ms > (uint64_t)LLONG_MAX ? 0 : (long long)id->ms);
    return 0;
}

void hb_ev_stamp(hb_ev_t *ev, long long ms)
{
    hb_buf_t *bs[] = {ev->sse, ev->json, ev->msse, ev->ws};
    for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++)
        if (bs[i])
            bs[i]->stamp_ms = ms;
}

int hb_ev_encode_gap(hb_ev_t *ev, const char *topic, size_t tlen, hb_gap_t gap)
{
    const char *reason = gap == HB_GAP_RESET ? "reset" : "trimmed";
    json_t *d = json_pack("{s:s%,s:s}", "topic", topic, tlen, "reason", reason);
    hb_buf_t *db = json_buf(d);
    memset(ev, 0, sizeof(*ev));
    ev->gap = gap;
    if (!db)
        return HB_ENOMEM;
    ev->sse =
        hb_sse_encode(NULL, 0, "herald.gap", 10, (const char *)hb_buf_data(db), hb_buf_len(db), 0);
    ev->msse = ev->sse ? hb_buf_ref(ev->sse) : NULL;
    hb_buf_unref(db);
    ev->json = json_buf(
        json_pack("{s:s,s:s%,s:s}", "type", "gap", "topic", topic, tlen, "reason", reason));
    ev->ws = ev->json ? hb_ws_frame(hb_buf_data(ev->json), hb_buf_len(ev->json)) : NULL;
    if (!ev->sse || !ev->json || !ev->ws) {
        hb_ev_release(ev);
        return HB_ENOMEM;
    }
    return 0;
}
