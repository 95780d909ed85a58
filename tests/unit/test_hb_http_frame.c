/* hb_http_frame: request framing decisions (RFC 9112 section 6.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"
#include "hb_http_frame.h"

static hb_http_head_t post_cl(const char *v)
{
    hb_http_head_t h = {.body_method = 1, .cl_count = 1, .cl = v, .cl_len = strlen(v)};
    return h;
}

static int check(const hb_http_head_t *h, hb_http_body_t *b, uint64_t *n)
{
    const char *reason = NULL;
    int rc = hb_http_frame_check(h, b, n, &reason);
    if (rc) {
        assert_int_equal(rc, HB_EPROTO);
        assert_non_null(reason);
        assert_null(strchr(reason, '\n'));
        assert_int_equal(*b, HB_HTTP_BODY_NONE);
    } else {
        assert_null(reason);
    }
    return rc;
}

static void test_lengths(void **state)
{
    static const struct {
        const char *v;
        int ok;
        uint64_t n;
    } cases[] = {
        {"0", 1, 0},
        {"5", 1, 5},
        {" 5 ", 1, 5},
        {"\t7", 1, 7},
        {"00", 1, 0},
        {"999999999999999", 1, HB_HTTP_LENGTH_MAX},
        {"", 0, 0},
        {" ", 0, 0},
        {"+5", 0, 0},
        {"-1", 0, 0},
        {"0x10", 0, 0},
        {"5,5", 0, 0},
        {"5 5", 0, 0},
        {"5x", 0, 0},
        {"1000000000000000", 0, 0},
        {"99999999999999999999999", 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_http_head_t h = post_cl(cases[i].v);
        hb_http_body_t b;
        uint64_t n = 42;
        int rc = check(&h, &b, &n);
        assert_int_equal(rc == 0, cases[i].ok);
        if (cases[i].ok) {
            assert_int_equal(b, HB_HTTP_BODY_LENGTH);
            assert_true(n == cases[i].n);
        }
    }
    assert_int_equal(hb_http_parse_length(NULL, 0, NULL), HB_EPROTO);
}

static void test_ambiguous(void **state)
{
    hb_http_body_t b;
    uint64_t n;
    hb_http_head_t h = post_cl("4");
    (void)state;
    h.te_count = 1, h.te = "chunked", h.te_len = 7;
    assert_int_equal(check(&h, &b, &n), HB_EPROTO); /* CL + TE */
    h = post_cl("3");
    h.cl_count = 2;
    assert_int_equal(check(&h, &b, &n), HB_EPROTO); /* duplicate CL, even equal */
    h = post_cl("3");
    h.odd_framing = 1;
    assert_int_equal(check(&h, &b, &n), HB_EPROTO);
    h = post_cl("0");
    h.h2 = 1;
    assert_int_equal(check(&h, &b, &n), HB_EPROTO);
}

static void test_transfer_encoding(void **state)
{
    static const struct {
        const char *v;
        int ok;
    } cases[] = {{"chunked", 1},       {"Chunked", 1},       {" chunked ", 1}, {"gzip", 0},
                 {"chunked, gzip", 0}, {"gzip, chunked", 0}, {"chunked,", 0},  {"", 0},
                 {"identity", 0},      {"chunkedx", 0}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_http_head_t h = {
            .body_method = 1, .te_count = 1, .te = cases[i].v, .te_len = strlen(cases[i].v)};
        hb_http_body_t b;
        uint64_t n;
        assert_int_equal(check(&h, &b, &n) == 0, cases[i].ok);
        if (cases[i].ok)
            assert_int_equal(b, HB_HTTP_BODY_CHUNKED);
    }
    {
        hb_http_head_t h = {.body_method = 1, .te_count = 2, .te = "chunked", .te_len = 7};
        hb_http_body_t b;
        uint64_t n;
        assert_int_equal(check(&h, &b, &n), HB_EPROTO);
    }
}

static void test_body_on_get(void **state)
{
    hb_http_body_t b;
    uint64_t n;
    hb_http_head_t h = post_cl("5");
    (void)state;
    h.body_method = 0;
    assert_int_equal(check(&h, &b, &n), HB_EPROTO);
    h = post_cl("0");
    h.body_method = 0;
    assert_int_equal(check(&h, &b, &n), 0); /* an explicit empty body is fine */
    assert_int_equal(b, HB_HTTP_BODY_LENGTH);
    h = (hb_http_head_t){.te_count = 1, .te = "chunked", .te_len = 7};
    assert_int_equal(check(&h, &b, &n), HB_EPROTO);
    h = (hb_http_head_t){0};
    assert_int_equal(check(&h, &b, &n), 0);
    assert_int_equal(b, HB_HTTP_BODY_NONE);
    h.body_method = 1; /* POST without either: no body (the caller may still want a length) */
    assert_int_equal(check(&h, &b, &n), 0);
    assert_int_equal(b, HB_HTTP_BODY_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_ambiguous),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_body_on_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
