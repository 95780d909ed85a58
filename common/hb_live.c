#include "hb_live.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_topic.h"

#define LIVE_VERSION "H1"
#define LIVE_FIELDS 6 /* version, id, epoch, event, flags, payload */
#define LIVE_FLAG_RAW_CHAR 'r'

static void set_reason(const char **reason, const char *r)
{
    if (reason)
        *reason = r;
}

static int is_letter(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int hb_live_decode(const char *s, size_t len, hb_live_t *out, const char **reason)
{
    /* The five header fields end at the first five '|'; the payload is the rest. */
    const char *field[LIVE_FIELDS];
    size_t flen[LIVE_FIELDS - 1];
    const char *p = s;
    size_t left = len;
    for (int i = 0; i < LIVE_FIELDS - 1; i++) {
        const char *bar = left ? memchr(p, '|', left) : NULL;
        if (bar == NULL) {
            set_reason(reason, "live message has fewer than 6 fields");
            return HB_EPROTO;
        }
        field[i] = p;
        flen[i] = (size_t)(bar - p);
        left -= flen[i] + 1;
        p = bar + 1;
    }
    field[LIVE_FIELDS - 1] = p;

    if (flen[0] != strlen(LIVE_VERSION) || memcmp(field[0], LIVE_VERSION, flen[0]) != 0) {
        set_reason(reason, "live message version is not " LIVE_VERSION);
        return HB_EPROTO;
    }
    hb_live_t m;
    if (hb_id_parse(field[1], flen[1], &m.id, NULL) != HB_OK) {
        set_reason(reason, "live message id is not <ms>-<seq>");
        return HB_EPROTO;
    }
    if (!hb_epoch_valid(field[2], flen[2])) {
        set_reason(reason, "live message epoch is not 1..16 bytes of [0-9a-z]");
        return HB_EPROTO;
    }
    if (flen[3] != 0 && hb_event_name_validate(field[3], flen[3], reason) != HB_OK)
        return HB_EPROTO;
    m.flags = 0;
    for (size_t i = 0; i < flen[4]; i++) {
        unsigned char c = (unsigned char)field[4][i];
        if (!is_letter(c)) {
            set_reason(reason, "live message flags are not letters");
            return HB_EPROTO;
        }
        if (c == LIVE_FLAG_RAW_CHAR)
            m.flags |= HB_LIVE_FLAG_RAW;
        /* Other letters are flags of a newer writer: ignored. */
    }
    m.epoch = field[2];
    m.epoch_len = flen[2];
    m.event = flen[3] ? field[3] : NULL;
    m.ev_len = flen[3];
    m.data = field[5];
    m.data_len = left;
    *out = m;
    return HB_OK;
}

int hb_live_encode(const hb_id_t *id, const char *epoch, const char *event, size_t ev_len,
                   unsigned flags, const char *data, size_t data_len, char **out, size_t *out_len)
{
    if (id == NULL || epoch == NULL || out == NULL || out_len == NULL ||
        (ev_len && event == NULL) || (data_len && data == NULL))
        return HB_EINVAL;
    size_t ep_len = strnlen(epoch, HB_EPOCH_MAX + 1);
    if (!hb_epoch_valid(epoch, ep_len))
        return HB_EINVAL;
    if (ev_len && hb_event_name_validate(event, ev_len, NULL) != HB_OK)
        return HB_EINVAL;
    if (flags & ~(unsigned)HB_LIVE_FLAG_RAW)
        return HB_EINVAL;

    char idbuf[HB_ID_STR_MAX];
    size_t id_len = hb_id_format(id, idbuf);
    size_t fl_len = (flags & HB_LIVE_FLAG_RAW) ? 1 : 0;
    /* The header is bounded by the checks above; only the payload can overflow. */
    size_t head = strlen(LIVE_VERSION) + id_len + ep_len + ev_len + fl_len + LIVE_FIELDS - 1;
    if (data_len > SIZE_MAX - head - 1)
        return HB_ENOMEM;
    char *buf = malloc(head + data_len + 1);
    if (buf == NULL)
        return HB_ENOMEM;

    char *w = buf;
    memcpy(w, LIVE_VERSION "|", strlen(LIVE_VERSION) + 1);
    w += strlen(LIVE_VERSION) + 1;
    memcpy(w, idbuf, id_len);
    w += id_len;
    *w++ = '|';
    memcpy(w, epoch, ep_len);
    w += ep_len;
    *w++ = '|';
    if (ev_len) {
        memcpy(w, event, ev_len);
        w += ev_len;
    }
    *w++ = '|';
    if (fl_len)
        *w++ = LIVE_FLAG_RAW_CHAR;
    *w++ = '|';
    if (data_len) {
        memcpy(w, data, data_len);
        w += data_len;
    }
    *w = '\0'; /* not part of the message; convenient for callers that log it */
    *out = buf;
    *out_len = (size_t)(w - buf);
    return HB_OK;
}
