#include "hb_live.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

#define LIT(s) s, sizeof(s) - 1

static void test_encode_exact_bytes(void **state)
{
    (void)state;
    hb_id_t id = {1732500000000ULL, 4};
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(hb_live_encode(&id, "lx3k9a", LIT("price"), 0, LIT("{\"v\":1}"), &out, &len),
                     HB_OK);
    const char want[] = "H1|1732500000000-4|lx3k9a|price||{\"v\":1}";
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(out, want, len);
    free(out);

    assert_int_equal(hb_live_encode(&id, "e", NULL, 0, HB_LIVE_FLAG_RAW, NULL, 0, &out, &len),
                     HB_OK);
    assert_int_equal(len, sizeof("H1|1732500000000-4|e||r|") - 1);
    assert_memory_equal(out, "H1|1732500000000-4|e||r|", len);
    free(out);
}

static void roundtrip(const char *ev, size_t ev_len, unsigned flags, const char *data,
                      size_t data_len)
{
    hb_id_t id = {UINT64_MAX, 7};
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(
        hb_live_encode(&id, "0123456789abcdef", ev, ev_len, flags, data, data_len, &out, &len),
        HB_OK);
    hb_live_t m;
    const char *reason = "unset";
    assert_int_equal(hb_live_decode(out, len, &m, &reason), HB_OK);
    assert_string_equal(reason, "unset");
    assert_int_equal(hb_id_cmp(&m.id, &id), 0);
    assert_int_equal(m.epoch_len, 16);
    assert_memory_equal(m.epoch, "0123456789abcdef", 16);
    assert_int_equal(m.ev_len, ev_len);
    if (ev_len) {
        assert_memory_equal(m.event, ev, ev_len);
    } else {
        assert_null(m.event);
    }
    assert_int_equal(m.flags, flags);
    assert_int_equal(m.data_len, data_len);
    assert_memory_equal(m.data, data, data_len);
    /* The pointers point into the input. */
    assert_true(m.data >= out && m.data + m.data_len == out + len);
    free(out);
}

static void test_roundtrip(void **state)
{
    (void)state;
    roundtrip(LIT("price"), 0, LIT("{\"v\":1}"));
    roundtrip(NULL, 0, 0, LIT("x"));
    roundtrip(LIT("a"), HB_LIVE_FLAG_RAW, LIT("raw"));
    roundtrip(LIT("e"), 0, "", 0);
    /* The payload may hold the separator, NUL, newlines and any other byte. */
    roundtrip(LIT("e"), 0, LIT("a|b||c|"));
    roundtrip(NULL, 0, 0, LIT("|||||"));
    roundtrip(LIT("e"), HB_LIVE_FLAG_RAW, LIT("x\0y\r\n\n\xff|"));
}

static void test_decode_fields(void **state)
{
    (void)state;
    hb_live_t m;
    const char msg[] = "H1|5-6|ep|ev:x|zr|a|b";
    assert_int_equal(hb_live_decode(msg, sizeof(msg) - 1, &m, NULL), HB_OK);
    assert_true(m.id.ms == 5 && m.id.seq == 6);
    assert_ptr_equal(m.epoch, msg + 7);
    assert_int_equal(m.epoch_len, 2);
    assert_ptr_equal(m.event, msg + 10);
    assert_int_equal(m.ev_len, 4);
    /* Unknown flag letters are ignored; "r" is still seen. */
    assert_int_equal(m.flags, HB_LIVE_FLAG_RAW);
    assert_int_equal(m.data_len, 3);
    assert_memory_equal(m.data, "a|b", 3);

    assert_int_equal(hb_live_decode(LIT("H1|5-6|ep|||"), &m, NULL), HB_OK);
    assert_null(m.event);
    assert_int_equal(m.ev_len, 0);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.data_len, 0);

    assert_int_equal(hb_live_decode(LIT("H1|5-6|ep||xyz|d"), &m, NULL), HB_OK);
    assert_int_equal(m.flags, 0);
}

static void expect_bad(const char *s, size_t len, const char *want_reason)
{
    hb_live_t m;
    memset(&m, 0x5a, sizeof(m));
    const char *reason = NULL;
    assert_int_equal(hb_live_decode(s, len, &m, &reason), HB_EPROTO);
    assert_non_null(reason);
    assert_string_equal(reason, want_reason);
    assert_int_equal(m.data_len, (size_t)0x5a5a5a5a5a5a5a5aULL);
}

#define BAD(s, r) expect_bad(s, sizeof(s) - 1, r)
#define FEWER "live message has fewer than 6 fields"

static void test_decode_malformed(void **state)
{
    (void)state;
    BAD("", FEWER);
    BAD("H1", FEWER);
    BAD("H1|1-0|e||", FEWER); /* four separators: no flags/payload boundary */
    BAD("H1|1-0|e|", FEWER);
    BAD("H1|1-0", FEWER);
    BAD("H2|1-0|e|||x", "live message version is not H1");
    BAD("h1|1-0|e|||x", "live message version is not H1");
    BAD("H10|1-0|e|||x", "live message version is not H1");
    BAD("|1-0|e|||x", "live message version is not H1");
    BAD("H1||e|||x", "live message id is not <ms>-<seq>");
    BAD("H1|1|e|||x", "live message id is not <ms>-<seq>");
    BAD("H1|1-x|e|||x", "live message id is not <ms>-<seq>");
    BAD("H1|18446744073709551616-0|e|||x", "live message id is not <ms>-<seq>");
    BAD("H1|1-0||||x", "live message epoch is not 1..16 bytes of [0-9a-z]");
    BAD("H1|1-0|E|||x", "live message epoch is not 1..16 bytes of [0-9a-z]");
    BAD("H1|1-0|a_b|||x", "live message epoch is not 1..16 bytes of [0-9a-z]");
    BAD("H1|1-0|0123456789abcdefg|||x", "live message epoch is not 1..16 bytes of [0-9a-z]");
    BAD("H1|1-0|e|a b||x", "event name has a byte outside [A-Za-z0-9._:-]");
    BAD("H1|1-0|e||r1|x", "live message flags are not letters");
    BAD("H1|1-0|e|| |x", "live message flags are not letters");
}

static void test_decode_at_limits(void **state)
{
    (void)state;
    hb_live_t m;
    /* 16-byte epoch and 64-byte event name are the longest accepted; 65 is rejected. */
    char msg[128];
    const char head[] = "H1|1-0|0123456789abcdef|";
    size_t n = sizeof(head) - 1;
    memcpy(msg, head, n);
    memset(msg + n, 'e', 64);
    memcpy(msg + n + 64, "||x", 3);
    assert_int_equal(hb_live_decode(msg, n + 64 + 3, &m, NULL), HB_OK);
    assert_int_equal(m.epoch_len, 16);
    assert_int_equal(m.ev_len, 64);
    assert_int_equal(m.data_len, 1);

    memset(msg + n, 'e', 65);
    memcpy(msg + n + 65, "||x", 3);
    expect_bad(msg, n + 65 + 3, "event name longer than 64 bytes");
}

static void test_encode_rejects_what_would_not_decode(void **state)
{
    (void)state;
    hb_id_t id = {1, 0};
    char *out = (char *)"untouched";
    size_t len = 99;
    assert_int_equal(hb_live_encode(&id, "", NULL, 0, 0, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "A", NULL, 0, 0, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "a|b", NULL, 0, 0, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "0123456789abcdefg", NULL, 0, 0, "x", 1, &out, &len),
                     HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, NULL, NULL, 0, 0, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "e", LIT("a|b"), 0, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "e", NULL, 3, 0, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "e", NULL, 0, 0x2, "x", 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(&id, "e", NULL, 0, 0, NULL, 1, &out, &len), HB_EINVAL);
    assert_int_equal(hb_live_encode(NULL, "e", NULL, 0, 0, "x", 1, &out, &len), HB_EINVAL);
    assert_string_equal(out, "untouched");
    assert_int_equal(len, 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_exact_bytes),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_decode_fields),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_decode_at_limits),
        cmocka_unit_test(test_encode_rejects_what_would_not_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
