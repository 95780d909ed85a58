#include "hb_event.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hb_err.h"

#define LIT(s) s, sizeof(s) - 1

static void assert_buf(const hb_buf_t *b, const char *want, size_t want_len)
{
    assert_non_null(b);
    assert_int_equal(hb_buf_len(b), want_len);
    assert_memory_equal(hb_buf_data(b), want, want_len);
}

/* Every transport's bytes of one event, byte for byte. */
static void test_event_every_transport(void **state)
{
    hb_ev_t ev;
    hb_id_t id = {1732500000000ull, 7};
    (void)state;
    assert_int_equal(hb_ev_encode(&ev, LIT("news"), &id, "ep1", LIT("price"), LIT("{\"v\":1}")), 0);
    assert_buf(ev.sse, LIT("id: 1732500000000-7_ep1\nevent: price\ndata: {\"v\":1}\n\n"));
    assert_buf(ev.cur, LIT("1732500000000-7_ep1"));
    static const char json[] =
        "{\"type\":\"event\",\"topic\":\"news\",\"id\":\"1732500000000-7_ep1\","
        "\"event\":\"price\",\"data\":\"{\\\"v\\\":1}\"}";
    assert_buf(ev.json, LIT(json));
    /* msse: the event line and the JSON as data, without id and blank line */
    char msse[256];
    size_t n = (size_t)snprintf(msse, sizeof(msse), "event: price\ndata: %s\n", json);
    assert_buf(ev.msse, msse, n);
    /* ws: one final text frame of the JSON, 2-byte header (< 126) */
    assert_int_equal(hb_buf_len(ev.ws), 2 + sizeof(json) - 1);
    assert_int_equal(hb_buf_data(ev.ws)[0], 0x81);
    assert_int_equal(hb_buf_data(ev.ws)[1], sizeof(json) - 1);
    assert_memory_equal(hb_buf_data(ev.ws) + 2, json, sizeof(json) - 1);
    assert_int_equal(hb_ws_frame_hdrlen(ev.ws), 2);
    /* stamped with the ID's time, for the delivery-latency histogram */
    assert_true(ev.sse->stamp_ms == 1732500000000ll && ev.ws->stamp_ms == 1732500000000ll);
    assert_int_equal(ev.id.ms, id.ms);
    assert_int_equal(ev.gap, HB_GAP_NONE);
    hb_ev_stamp(&ev, 0); /* a resume page: not measured */
    assert_true(ev.sse->stamp_ms == 0 && ev.json->stamp_ms == 0 && ev.msse->stamp_ms == 0);
    hb_ev_release(&ev);
    assert_null(ev.sse);
}

/* No event name: no event line anywhere, no "event" member; an empty epoch: a bare ID. */
static void test_event_without_name_or_epoch(void **state)
{
    hb_ev_t ev;
    hb_id_t id = {5, 0};
    (void)state;
    assert_int_equal(hb_ev_encode(&ev, LIT("t"), &id, "", NULL, 0, LIT("x")), 0);
    assert_buf(ev.sse, LIT("id: 5-0\ndata: x\n\n"));
    assert_buf(ev.json, LIT("{\"type\":\"event\",\"topic\":\"t\",\"id\":\"5-0\",\"data\":\"x\"}"));
    assert_buf(ev.msse,
               LIT("data: {\"type\":\"event\",\"topic\":\"t\",\"id\":\"5-0\",\"data\":\"x\"}\n"));
    hb_ev_release(&ev);
}

/* Data that is not UTF-8 cannot be a JSON string: base64 with "encoding". */
static void test_binary_data_is_base64_in_json(void **state)
{
    hb_ev_t ev;
    hb_id_t id = {1, 1};
    (void)state;
    assert_int_equal(hb_ev_encode(&ev, LIT("b"), &id, "e", NULL, 0, LIT("\xff\xfe\x00")), 0);
    assert_buf(ev.json, LIT("{\"type\":\"event\",\"topic\":\"b\",\"id\":\"1-1_e\","
                            "\"encoding\":\"base64\",\"data\":\"//4A\"}"));
    hb_ev_release(&ev);
}

/* The JSON form, written by hand since jansson cost most of an event's encoding, is the bytes
 * jansson's json_dumps() writes for the same object: with and without an event name, escapes,
 * UTF-8, and invalid UTF-8 sent as base64. */
static void test_json_matches_jansson(void **state)
{
    static const struct {
        const char *ev, *data;
    } cases[] = {{"", "plain"},
                 {"tick", "{\"a\":[1,2]}"},
                 {"e\"v", "line\nbreak\ttab\\"},
                 {"", "\x01\x1f\x7f/"},
                 {"n", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
                 {"", "\xff\xfe"},
                 {"x", ""}};
    hb_id_t id = {1700000000000ULL, 7};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_ev_t ev;
        size_t dl = strlen(cases[i].data), el = strlen(cases[i].ev);
        json_t *o = json_object(), *d = json_stringn(cases[i].data, dl);
        char *want;
        json_object_set_new(o, "type", json_string("event"));
        json_object_set_new(o, "topic", json_string("t.x"));
        json_object_set_new(o, "id", json_string("1700000000000-7_ep"));
        if (el)
            json_object_set_new(o, "event", json_stringn(cases[i].ev, el));
        if (!d) {
            json_object_set_new(o, "encoding", json_string("base64"));
            d = json_string("//4=");
        }
        json_object_set_new(o, "data", d);
        want = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        assert_int_equal(
            hb_ev_encode(&ev, LIT("t.x"), &id, "ep", cases[i].ev, el, cases[i].data, dl), 0);
        assert_buf(ev.json, want, strlen(want));
        free(want);
        hb_ev_release(&ev);
    }
}

/* WebSocket frame headers at their limits: 125/126 bytes, 65535/65536 bytes. */
static void test_ws_frame_lengths(void **state)
{
    static const struct {
        size_t len, hl;
    } cases[] = {{0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}};
    char *p = calloc(1, 65536);
    (void)state;
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_buf_t *f = hb_ws_frame(p, cases[i].len);
        const unsigned char *d;
        assert_non_null(f);
        d = hb_buf_data(f);
        assert_int_equal(hb_buf_len(f), cases[i].hl + cases[i].len);
        assert_int_equal(hb_ws_frame_hdrlen(f), cases[i].hl);
        assert_int_equal(d[0], 0x81); /* FIN, text, from the server: unmasked */
        if (cases[i].hl == 2) {
            assert_int_equal(d[1], cases[i].len);
        } else if (cases[i].hl == 4) {
            assert_int_equal(d[1], 126);
            assert_int_equal((d[2] << 8) | d[3], cases[i].len);
        } else {
            uint64_t l = 0;
            assert_int_equal(d[1], 127);
            for (int k = 0; k < 8; k++)
                l = (l << 8) | d[2 + k];
            assert_int_equal(l, cases[i].len);
        }
        hb_buf_unref(f);
    }
    free(p);
}

static void test_gap_notices(void **state)
{
    hb_ev_t ev;
    (void)state;
    assert_int_equal(hb_ev_encode_gap(&ev, LIT("news"), HB_GAP_RESET), 0);
    assert_int_equal(ev.gap, HB_GAP_RESET);
    assert_buf(ev.sse,
               LIT("event: herald.gap\ndata: {\"topic\":\"news\",\"reason\":\"reset\"}\n\n"));
    assert_ptr_equal(ev.msse, ev.sse); /* the same whole frame: no composite id for a notice */
    assert_null(ev.cur);
    assert_buf(ev.json, LIT("{\"type\":\"gap\",\"topic\":\"news\",\"reason\":\"reset\"}"));
    assert_int_equal(hb_buf_len(ev.ws), 2 + hb_buf_len(ev.json));
    hb_ev_release(&ev);
    assert_int_equal(hb_ev_encode_gap(&ev, LIT("news"), HB_GAP_TRIMMED), 0);
    assert_buf(ev.json, LIT("{\"type\":\"gap\",\"topic\":\"news\",\"reason\":\"trimmed\"}"));
    hb_ev_release(&ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_every_transport),
        cmocka_unit_test(test_event_without_name_or_epoch),
        cmocka_unit_test(test_binary_data_is_base64_in_json),
        cmocka_unit_test(test_json_matches_jansson),
        cmocka_unit_test(test_ws_frame_lengths),
        cmocka_unit_test(test_gap_notices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
