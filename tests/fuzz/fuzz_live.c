/*
 * hb_live_decode() on arbitrary bytes (a message on a live channel: anyone who can PUBLISH to
 * Redis can send one), and the encode/decode round trip.
 *
 * Properties:
 *  - decode accepts exactly "H1|<id>|<epoch>|<event or empty>|<letters>|<payload>", with each
 *    header field valid; its pointers lie inside the input; the payload is everything after
 *    the fifth '|';
 *  - re-encoding a decoded message and decoding that gives back the same fields;
 *  - encoding fields built from the input either fails with HB_EINVAL (fields that would not
 *    decode) or decodes to exactly those fields.
 */
#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_id.h"
#include "hb_live.h"
#include "hb_topic.h"

static int epoch_ok(const char *s, size_t n)
{
    if (n == 0 || n > HB_EPOCH_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

static int letters_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

/* Reference decoder written from the header comment. */
static int ref_decode(const char *s, size_t n, hb_live_t *m)
{
    const char *f[5];
    size_t fl[5];
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        const char *bar = pos < n ? memchr(s + pos, '|', n - pos) : NULL;
        if (!bar)
            return 0;
        f[i] = s + pos;
        fl[i] = (size_t)(bar - f[i]);
        pos += fl[i] + 1;
    }
    if (fl[0] != 2 || memcmp(f[0], "H1", 2) != 0)
        return 0;
    if (hb_id_parse(f[1], fl[1], &m->id, NULL) != HB_OK)
        return 0;
    if (!epoch_ok(f[2], fl[2]))
        return 0;
    if (fl[3] && hb_event_name_validate(f[3], fl[3], NULL) != HB_OK)
        return 0;
    if (!letters_ok(f[4], fl[4]))
        return 0;
    m->epoch = f[2];
    m->epoch_len = fl[2];
    m->event = fl[3] ? f[3] : NULL;
    m->ev_len = fl[3];
    m->flags = memchr(f[4], 'r', fl[4]) ? HB_LIVE_FLAG_RAW : 0;
    m->data = s + pos;
    m->data_len = n - pos;
    return 1;
}

static void same(const hb_live_t *a, const hb_live_t *b)
{
    FZ_CHECK(hb_id_cmp(&a->id, &b->id) == 0);
    FZ_CHECK(a->epoch_len == b->epoch_len && memcmp(a->epoch, b->epoch, a->epoch_len) == 0);
    FZ_CHECK(a->ev_len == b->ev_len);
    FZ_CHECK((a->event == NULL) == (a->ev_len == 0) && (b->event == NULL) == (b->ev_len == 0));
    FZ_CHECK(a->ev_len == 0 || memcmp(a->event, b->event, a->ev_len) == 0);
    FZ_CHECK(a->flags == b->flags);
    FZ_CHECK(a->data_len == b->data_len);
    FZ_CHECK(a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* encode(m) decodes back to m. */
static void roundtrip(const hb_live_t *m)
{
    char ep[HB_EPOCH_MAX + 1];
    memcpy(ep, m->epoch, m->epoch_len);
    ep[m->epoch_len] = '\0';
    char *enc = NULL;
    size_t enc_len = 0;
    int rc = hb_live_encode(&m->id, ep, m->event, m->ev_len, m->flags, m->data, m->data_len, &enc,
                            &enc_len);
    FZ_CHECK(rc == HB_OK);
    FZ_CHECK(enc[enc_len] == '\0');
    hb_live_t back;
    const char *reason = NULL;
    FZ_CHECK(hb_live_decode(enc, enc_len, &back, &reason) == HB_OK);
    FZ_CHECK(fz_within(back.data, back.data_len, enc, enc_len));
    same(m, &back);
    free(enc);
}

static void check_decode(const char *s, size_t n)
{
    hb_live_t got, want;
    const char *reason = NULL;
    int rc = hb_live_decode(s, n, &got, &reason);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO);
    FZ_CHECK((rc == HB_OK) == ref_decode(s, n, &want));
    if (rc != HB_OK) {
        FZ_CHECK(fz_reason_ok(reason));
        return;
    }
    FZ_CHECK(fz_within(got.epoch, got.epoch_len, s, n));
    FZ_CHECK(got.ev_len == 0 || fz_within(got.event, got.ev_len, s, n));
    FZ_CHECK(fz_within(got.data, got.data_len, s, n));
    same(&got, &want);
    FZ_CHECK(got.data == want.data); /* the payload is the rest of the input, in place */
    roundtrip(&got);
}

/* Fields from the input: [16 bytes id][epoch 0xff event 0xff flags-byte 0xff payload]. */
static void check_encode(const uint8_t *data, size_t size)
{
    if (size < 16)
        return;
    hb_id_t id;
    memcpy(&id.ms, data, 8);
    memcpy(&id.seq, data + 8, 8);
    const uint8_t *p[4];
    size_t n[4];
    fz_split(data + 16, size - 16, 4, p, n);
    char *epoch = fz_strdup(p[0], n[0]);
    char *event = fz_dup(p[1], n[1]);
    char *payload = fz_dup(p[3], n[3]);
    unsigned flags = n[2] ? p[2][0] & 3 : 0;

    char *enc = NULL;
    size_t enc_len = 0;
    int rc =
        hb_live_encode(&id, epoch, n[1] ? event : NULL, n[1], flags, payload, n[3], &enc, &enc_len);
    int valid = strlen(epoch) == n[0] && epoch_ok(epoch, n[0]) &&
                (n[1] == 0 || hb_event_name_validate(event, n[1], NULL) == HB_OK) &&
                (flags & ~(unsigned)HB_LIVE_FLAG_RAW) == 0;
    if (!valid) {
        /* A NUL inside the epoch shortens it (it is a C string): only then may encode accept. */
        FZ_CHECK(rc == HB_EINVAL || (rc == HB_OK && strlen(epoch) < n[0]));
    } else {
        FZ_CHECK(rc == HB_OK);
    }
    if (rc == HB_OK) {
        hb_live_t back;
        FZ_CHECK(hb_live_decode(enc, enc_len, &back, NULL) == HB_OK);
        FZ_CHECK(hb_id_cmp(&back.id, &id) == 0);
        FZ_CHECK(back.epoch_len == strlen(epoch) && memcmp(back.epoch, epoch, back.epoch_len) == 0);
        FZ_CHECK(back.ev_len == n[1] && (n[1] == 0 || memcmp(back.event, event, n[1]) == 0));
        FZ_CHECK(back.flags == flags);
        FZ_CHECK(back.data_len == n[3] && (n[3] == 0 || memcmp(back.data, payload, n[3]) == 0));
        free(enc);
    }
    free(epoch);
    free(event);
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_dup(data, size);
    check_decode(s, size);
    free(s);
    check_encode(data, size);
    return 0;
}
