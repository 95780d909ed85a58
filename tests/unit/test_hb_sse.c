#include "hb_sse.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

#define LIT(s) s, sizeof(s) - 1

/* Encode and compare the whole frame, byte for byte, and the predicted length. */
static void check_frame(const char *id, const char *ev, const char *data, size_t data_len,
                        const char *want, size_t want_len)
{
    size_t id_len = id ? strlen(id) : 0;
    size_t ev_len = ev ? strlen(ev) : 0;
    hb_buf_t *b = hb_sse_encode(id, id_len, ev, ev_len, data, data_len, 0);
    assert_non_null(b);
    assert_int_equal(hb_buf_len(b), want_len);
    assert_memory_equal(hb_buf_data(b), want, want_len);
    assert_int_equal(hb_sse_encoded_len(id_len, ev_len, data, data_len), want_len);
    assert_int_equal(hb_buf_refs(b), 1);
    hb_buf_unref(b);
}

static void test_single_line(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("hello"), LIT("data: hello\n\n"));
}

static void test_id_event_data(void **state)
{
    (void)state;
    check_frame("1732500000000-0_lx3k9a", "price", LIT("{\"v\":1}"),
                LIT("id: 1732500000000-0_lx3k9a\nevent: price\ndata: {\"v\":1}\n\n"));
}

static void test_event_without_id(void **state)
{
    (void)state;
    check_frame(NULL, "tick", LIT("x"), LIT("event: tick\ndata: x\n\n"));
    check_frame("5-1", NULL, LIT("x"), LIT("id: 5-1\ndata: x\n\n"));
}

static void test_lf_lines(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("a\nb\nc"), LIT("data: a\ndata: b\ndata: c\n\n"));
}

static void test_crlf_is_one_break(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("a\r\nb"), LIT("data: a\ndata: b\n\n"));
}

static void test_lone_cr_is_a_break(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("a\rb"), LIT("data: a\ndata: b\n\n"));
    /* "\n\r" is two breaks, "\r\r\n" is two breaks. */
    check_frame(NULL, NULL, LIT("a\n\rb"), LIT("data: a\ndata:\ndata: b\n\n"));
    check_frame(NULL, NULL, LIT("\r\r\n"), LIT("data:\ndata:\ndata:\n\n"));
}

static void test_empty_lines_inside(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("a\n\nb"), LIT("data: a\ndata:\ndata: b\n\n"));
}

static void test_trailing_newline_kept(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("a\n"), LIT("data: a\ndata:\n\n"));
    check_frame(NULL, NULL, LIT("a\r\n"), LIT("data: a\ndata:\n\n"));
    check_frame(NULL, NULL, LIT("\n"), LIT("data:\ndata:\n\n"));
}

static void test_empty_payload(void **state)
{
    (void)state;
    check_frame(NULL, NULL, NULL, 0, LIT("data:\n\n"));
    check_frame("1-0", "e", "", 0, LIT("id: 1-0\nevent: e\ndata:\n\n"));
}

static void test_nul_and_spaces_copied(void **state)
{
    (void)state;
    check_frame(NULL, NULL, LIT("a\0b"), LIT("data: a\0b\n\n"));
    check_frame(NULL, NULL, LIT("\0"), LIT("data: \0\n\n"));
    /* A leading space survives: the reader strips only the one after the colon. */
    check_frame(NULL, NULL, LIT(" x "), LIT("data:  x \n\n"));
    check_frame(NULL, NULL, LIT("\xff\xfe"), LIT("data: \xff\xfe\n\n"));
}

static void test_headroom(void **state)
{
    (void)state;
    hb_buf_t *b = hb_sse_encode(LIT("9-9"), NULL, 0, LIT("p"), 16);
    assert_non_null(b);
    assert_int_equal(b->headroom, 16);
    assert_ptr_equal(hb_buf_data(b), b->mem + 16);
    assert_int_equal(hb_buf_len(b), sizeof("id: 9-9\ndata: p\n\n") - 1);
    assert_memory_equal(hb_buf_data(b), "id: 9-9\ndata: p\n\n", hb_buf_len(b));
    hb_buf_unref(b);
}

static void test_bad_id_or_event_rejected(void **state)
{
    (void)state;
    assert_null(hb_sse_encode(LIT("1\n"), NULL, 0, LIT("x"), 0));
    assert_null(hb_sse_encode(LIT("1\r"), NULL, 0, LIT("x"), 0));
    assert_null(hb_sse_encode(NULL, 0, LIT("a\nb"), LIT("x"), 0));
    assert_null(hb_sse_encode(NULL, 0, LIT("a\rb"), LIT("x"), 0));
    assert_null(hb_sse_encode(NULL, 3, NULL, 0, LIT("x"), 0));
    assert_null(hb_sse_encode(NULL, 0, NULL, 0, NULL, 1, 0));
}

static void test_retry(void **state)
{
    (void)state;
    char out[32];
    memset(out, 'z', sizeof(out));
    assert_int_equal(hb_sse_format_retry(out, sizeof(out), 3000), 13);
    assert_string_equal(out, "retry: 3000\n\n");
    /* 13 bytes plus the NUL fit in 14; 13 does not. */
    assert_int_equal(hb_sse_format_retry(out, 14, 0), 10);
    assert_string_equal(out, "retry: 0\n\n");
    assert_int_equal(hb_sse_format_retry(out, 14, 3000), 13);
    assert_int_equal(hb_sse_format_retry(out, 13, 3000), HB_ELIMIT);
    assert_int_equal(hb_sse_format_retry(out, 0, 1), HB_ELIMIT);
    assert_int_equal(hb_sse_format_retry(out, sizeof(out), 4294967295u), 19);
    assert_string_equal(out, "retry: 4294967295\n\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_id_event_data),
        cmocka_unit_test(test_event_without_id),
        cmocka_unit_test(test_lf_lines),
        cmocka_unit_test(test_crlf_is_one_break),
        cmocka_unit_test(test_lone_cr_is_a_break),
        cmocka_unit_test(test_empty_lines_inside),
        cmocka_unit_test(test_trailing_newline_kept),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_nul_and_spaces_copied),
        cmocka_unit_test(test_headroom),
        cmocka_unit_test(test_bad_id_or_event_rejected),
        cmocka_unit_test(test_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
