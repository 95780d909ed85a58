#include "hb_id.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

#define U64_MAX_STR "18446744073709551615"

static void expect_id(const char *s, uint64_t ms, uint64_t seq)
{
    hb_id_t id = {1234, 5678};
    const char *reason = "unset";
    assert_int_equal(hb_id_parse(s, strlen(s), &id, &reason), HB_OK);
    assert_true(id.ms == ms);
    assert_true(id.seq == seq);
    assert_string_equal(reason, "unset");
}

static void expect_bad_id(const char *s, size_t len, const char *want_reason)
{
    hb_id_t id = {1234, 5678};
    const char *reason = NULL;
    assert_int_equal(hb_id_parse(s, len, &id, &reason), HB_EPROTO);
    assert_non_null(reason);
    assert_string_equal(reason, want_reason);
    /* The output is untouched on failure. */
    assert_true(id.ms == 1234 && id.seq == 5678);
}

#define BAD(s, r) expect_bad_id(s, sizeof(s) - 1, r)

static void test_parse_valid(void **state)
{
    (void)state;
    expect_id("0-0", 0, 0);
    expect_id("1-2", 1, 2);
    expect_id("1732500000000-17", 1732500000000ULL, 17);
    expect_id("01-2", 1, 2); /* leading zeros accepted, as Redis does */
    expect_id("00000000000000000000-00000000000000000007", 0, 7); /* 20 digits each */
    expect_id(U64_MAX_STR "-" U64_MAX_STR, UINT64_MAX, UINT64_MAX);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    BAD("", "stream id is empty");
    BAD("-", "stream id part is empty");
    BAD("1-", "stream id part is empty");
    BAD("-1", "stream id part is empty");
    BAD("-1-2", "stream id part is empty");
    BAD("1", "stream id is not <ms>-<seq>");
    BAD("1732500000000", "stream id is not <ms>-<seq>");
    BAD("1_2", "stream id is not <ms>-<seq>");
    BAD(" 1-2", "stream id part is not a decimal number");
    BAD("1-2 ", "stream id part is not a decimal number");
    BAD("1 -2", "stream id part is not a decimal number");
    BAD("+1-2", "stream id part is not a decimal number");
    BAD("1-+2", "stream id part is not a decimal number");
    BAD("1--2", "stream id part is not a decimal number");
    BAD("1-2-3", "stream id part is not a decimal number");
    BAD("a-1", "stream id part is not a decimal number");
    BAD("0x1-1", "stream id part is not a decimal number");
    BAD("1-2\0", "stream id part is not a decimal number");
    BAD("1-*", "stream id part is not a decimal number");
}

static void test_parse_limits(void **state)
{
    (void)state;
    /* One past UINT64_MAX, in either part. */
    BAD("18446744073709551616-0", "stream id part out of range");
    BAD("0-18446744073709551616", "stream id part out of range");
    BAD("99999999999999999999-0", "stream id part out of range");
    /* 21 digits, even when the value would fit. */
    BAD("000000000000000000001-0", "stream id part longer than 20 digits");
    BAD("0-000000000000000000001", "stream id part longer than 20 digits");
    /* 41 bytes is the longest valid ID; 42 is rejected before looking at it. */
    expect_id(U64_MAX_STR "-" U64_MAX_STR, UINT64_MAX, UINT64_MAX);
    BAD(U64_MAX_STR "-0" U64_MAX_STR, "stream id longer than 41 bytes");
    BAD("0000000000000000000000000000000000000000000000000", "stream id longer than 41 bytes");
}

static void test_parse_null_reason(void **state)
{
    (void)state;
    hb_id_t id;
    assert_int_equal(hb_id_parse("x", 1, &id, NULL), HB_EPROTO);
    assert_int_equal(hb_id_parse("3-4", 3, &id, NULL), HB_OK);
    /* Only len bytes are read. */
    assert_int_equal(hb_id_parse("3-45", 3, &id, NULL), HB_OK);
    assert_true(id.ms == 3 && id.seq == 4);
}

static void test_cmp_and_zero(void **state)
{
    (void)state;
    hb_id_t ids[] = {{0, 0}, {0, 1}, {1, 0}, {1, UINT64_MAX}, {2, 0}, {UINT64_MAX, UINT64_MAX}};
    size_t n = sizeof(ids) / sizeof(ids[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = hb_id_cmp(&ids[i], &ids[j]);
            if (i < j)
                assert_true(c < 0);
            else if (i > j)
                assert_true(c > 0);
            else
                assert_int_equal(c, 0);
        }
    }
    assert_int_equal(hb_id_is_zero(&ids[0]), 1);
    assert_int_equal(hb_id_is_zero(&ids[1]), 0);
    assert_int_equal(hb_id_is_zero(&ids[2]), 0);
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    hb_id_t ids[] = {{0, 0}, {1, 2}, {1732500000000ULL, 17}, {UINT64_MAX, UINT64_MAX}};
    const char *want[] = {"0-0", "1-2", "1732500000000-17", U64_MAX_STR "-" U64_MAX_STR};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char out[HB_ID_STR_MAX];
        size_t n = hb_id_format(&ids[i], out);
        assert_int_equal(n, strlen(want[i]));
        assert_string_equal(out, want[i]);
        hb_id_t back;
        assert_int_equal(hb_id_parse(out, n, &back, NULL), HB_OK);
        assert_int_equal(hb_id_cmp(&back, &ids[i]), 0);
    }
}

static void expect_bad_cursor(const char *s, size_t len, const char *want_reason)
{
    hb_cursor_t c;
    memset(&c, 0x5a, sizeof(c));
    const char *reason = NULL;
    assert_int_equal(hb_cursor_parse(s, len, &c, &reason), HB_EPROTO);
    assert_non_null(reason);
    assert_string_equal(reason, want_reason);
    assert_true(c.id.ms == 0x5a5a5a5a5a5a5a5aULL);
}

#define BAD_CURSOR(s, r) expect_bad_cursor(s, sizeof(s) - 1, r)

static void test_cursor_parse(void **state)
{
    (void)state;
    hb_cursor_t c;
    assert_int_equal(hb_cursor_parse("1732500000000-0_lx3k9a", 22, &c, NULL), HB_OK);
    assert_true(c.id.ms == 1732500000000ULL && c.id.seq == 0);
    assert_string_equal(c.epoch, "lx3k9a");

    memset(&c, 0x5a, sizeof(c));
    assert_int_equal(hb_cursor_parse("5-6", 3, &c, NULL), HB_OK);
    assert_true(c.id.ms == 5 && c.id.seq == 6);
    assert_string_equal(c.epoch, "");

    BAD_CURSOR("", "cursor is empty");
    BAD_CURSOR("1-0_", "cursor epoch is empty");
    BAD_CURSOR("1-0_ABC", "cursor epoch has a byte outside [0-9a-z]");
    BAD_CURSOR("1-0_a-b", "cursor epoch has a byte outside [0-9a-z]");
    BAD_CURSOR("1-0_a_b", "cursor epoch has a byte outside [0-9a-z]");
    BAD_CURSOR("1-0_a b", "cursor epoch has a byte outside [0-9a-z]");
    BAD_CURSOR("1-0_ab\0", "cursor epoch has a byte outside [0-9a-z]");
    /* The ID part reports the ID's own reason. */
    BAD_CURSOR("_abc", "stream id is empty");
    BAD_CURSOR("1_abc", "stream id is not <ms>-<seq>");
    BAD_CURSOR("1-x_abc", "stream id part is not a decimal number");
    BAD_CURSOR("18446744073709551616-0_a", "stream id part out of range");
}

static void test_cursor_limits(void **state)
{
    (void)state;
    hb_cursor_t c;
    const char *reason = NULL;
    /* Epoch: 16 bytes accepted, 17 rejected. */
    assert_int_equal(hb_cursor_parse("1-0_0123456789abcdef", 20, &c, &reason), HB_OK);
    assert_string_equal(c.epoch, "0123456789abcdef");
    BAD_CURSOR("1-0_0123456789abcdefg", "cursor epoch longer than 16 bytes");
    /* Total: 58 bytes (41-byte ID, '_', 16-byte epoch) accepted, 59 rejected. */
    const char *max = U64_MAX_STR "-" U64_MAX_STR "_zzzzzzzzzzzzzzzz";
    assert_int_equal(strlen(max), HB_CURSOR_MAX - 1);
    assert_int_equal(hb_cursor_parse(max, strlen(max), &c, &reason), HB_OK);
    assert_true(c.id.ms == UINT64_MAX && c.id.seq == UINT64_MAX);
    assert_string_equal(c.epoch, "zzzzzzzzzzzzzzzz");
    BAD_CURSOR(U64_MAX_STR "-" U64_MAX_STR "_zzzzzzzzzzzzzzzzz", "cursor longer than 58 bytes");
    BAD_CURSOR(U64_MAX_STR "-0" U64_MAX_STR "_zzzzzzzzzzzzzzzz", "cursor longer than 58 bytes");
}

static void test_cursor_format(void **state)
{
    (void)state;
    char out[HB_CURSOR_MAX];
    hb_id_t id = {1732500000000ULL, 3};
    assert_int_equal(hb_cursor_format(&id, "lx3k9a", out), 22);
    assert_string_equal(out, "1732500000000-3_lx3k9a");
    assert_int_equal(hb_cursor_format(&id, "", out), 15);
    assert_string_equal(out, "1732500000000-3");
    assert_int_equal(hb_cursor_format(&id, NULL, out), 15);
    assert_string_equal(out, "1732500000000-3");

    /* The longest cursor fills the buffer exactly and parses back. */
    hb_id_t max = {UINT64_MAX, UINT64_MAX};
    assert_int_equal(hb_cursor_format(&max, "0123456789abcdef", out), HB_CURSOR_MAX - 1);
    hb_cursor_t c;
    assert_int_equal(hb_cursor_parse(out, HB_CURSOR_MAX - 1, &c, NULL), HB_OK);
    assert_int_equal(hb_id_cmp(&c.id, &max), 0);
    assert_string_equal(c.epoch, "0123456789abcdef");

    /* An over-long epoch is cut to HB_EPOCH_MAX rather than overrun out. */
    assert_int_equal(hb_cursor_format(&max, "0123456789abcdefXYZ", out), HB_CURSOR_MAX - 1);
    assert_string_equal(out, U64_MAX_STR "-" U64_MAX_STR "_0123456789abcdef");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),   cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_limits),  cmocka_unit_test(test_parse_null_reason),
        cmocka_unit_test(test_cmp_and_zero),  cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_cursor_parse),  cmocka_unit_test(test_cursor_limits),
        cmocka_unit_test(test_cursor_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
