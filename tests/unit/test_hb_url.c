#include "hb_url.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

#define LIT(s) s, sizeof(s) - 1

static void expect_decode(const char *s, size_t len, const char *want, size_t want_len)
{
    char out[64];
    memset(out, 'Z', sizeof(out));
    assert_int_equal(hb_url_decode(s, len, out, sizeof(out)), (int)want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[want_len], '\0');
}

static void test_decode_escapes(void **state)
{
    (void)state;
    expect_decode(LIT("plain"), LIT("plain"));
    expect_decode(LIT(""), LIT(""));
    expect_decode(LIT("a%20b"), LIT("a b"));
    expect_decode(LIT("a+b+"), LIT("a b "));
    expect_decode(LIT("%2B%2b"), LIT("++")); /* an escaped '+' stays '+' */
    expect_decode(LIT("%41%5a%5A%7e"), LIT("AZZ~"));
    expect_decode(LIT("%00x"), LIT("\0x"));
    expect_decode(LIT("%ff%FE"), LIT("\xff\xfe"));
    expect_decode(LIT("%25%32%30"), LIT("%20")); /* decoded once, not twice */
    expect_decode(LIT("news%2Feu"), LIT("news/eu"));
}

static void test_decode_bad_escapes(void **state)
{
    (void)state;
    char out[64];
    const char *bad[] = {"%", "%4", "%zz", "%4g", "%g4", "a%", "a%2", "%%20", "% 20", "%-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hb_url_decode(bad[i], strlen(bad[i]), out, sizeof(out)), HB_EPROTO);
    /* Only len bytes are read: a valid escape cut short is malformed. */
    assert_int_equal(hb_url_decode("%41", 2, out, sizeof(out)), HB_EPROTO);
}

static void test_decode_limits(void **state)
{
    (void)state;
    char out[8];
    /* The decoded length is what counts: 6 bytes decode to 2. */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(hb_url_decode(LIT("%41%42"), out, 2), 2);
    assert_memory_equal(out, "AB", 2);
    assert_int_equal(out[2], 'Z'); /* no room for the NUL: none written */
    assert_int_equal(hb_url_decode(LIT("%41%42"), out, 3), 2);
    assert_int_equal(out[2], '\0');
    assert_int_equal(hb_url_decode(LIT("%41%42%43"), out, 2), HB_ELIMIT);
    assert_int_equal(hb_url_decode(LIT("abcdefgh"), out, 8), 8);
    assert_int_equal(hb_url_decode(LIT("abcdefghi"), out, 8), HB_ELIMIT);
    assert_int_equal(hb_url_decode(LIT(""), out, 0), 0);
    assert_int_equal(hb_url_decode(LIT("a"), out, 0), HB_ELIMIT);
    /* The first problem from the left wins. */
    assert_int_equal(hb_url_decode(LIT("%zzabc"), out, 1), HB_EPROTO);
    assert_int_equal(hb_url_decode(LIT("abc%zz"), out, 1), HB_ELIMIT);
}

typedef struct pair {
    const char *k;
    const char *v;
} pair_t;

static void expect_pairs(const char *q, const pair_t *want, size_t n)
{
    size_t pos = 0;
    const char *k, *v;
    size_t klen, vlen;
    size_t i = 0;
    while (hb_url_query_next(q, strlen(q), &pos, &k, &klen, &v, &vlen)) {
        assert_true(i < n);
        assert_int_equal(klen, strlen(want[i].k));
        assert_memory_equal(k, want[i].k, klen);
        assert_int_equal(vlen, strlen(want[i].v));
        assert_memory_equal(v, want[i].v, vlen);
        /* Pointers point into the query. */
        assert_true(k >= q && v >= q && v + vlen <= q + strlen(q));
        i++;
    }
    assert_int_equal(i, n);
    /* At the end it stays at the end. */
    assert_int_equal(hb_url_query_next(q, strlen(q), &pos, &k, &klen, &v, &vlen), 0);
}

static void test_query_iteration(void **state)
{
    (void)state;
    expect_pairs("", NULL, 0);
    expect_pairs("&&&", NULL, 0);
    const pair_t a[] = {{"topic", "a"}, {"topic", "b"}, {"since", "1-0"}};
    expect_pairs("topic=a&topic=b&since=1-0", a, 3);
    const pair_t b[] = {{"a", "1"}, {"b", "2"}};
    expect_pairs("a=1&&b=2", b, 2);
    expect_pairs("&a=1&b=2&", b, 2);
    const pair_t c[] = {{"flag", ""}, {"x", ""}, {"", "v"}, {"k", "=x="}};
    expect_pairs("flag&x=&=v&k==x=", c, 4);
    const pair_t d[] = {{"t", "news%2Feu"}, {"e", "a+b"}}; /* still encoded */
    expect_pairs("t=news%2Feu&e=a+b", d, 2);
}

static void test_query_get(void **state)
{
    (void)state;
    char out[16];
    const char *q = "topic=news%2Feu&topic=second&empty=&flag&last%2Devent%2Did=5-0&bad=%zz&x=a+b";
    size_t qlen = strlen(q);
    assert_int_equal(hb_url_query_get(q, qlen, "topic", out, sizeof(out)), 7);
    assert_string_equal(out, "news/eu"); /* the first value */
    assert_int_equal(hb_url_query_get(q, qlen, "empty", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(hb_url_query_get(q, qlen, "flag", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(hb_url_query_get(q, qlen, "last-event-id", out, sizeof(out)), 3);
    assert_string_equal(out, "5-0");
    assert_int_equal(hb_url_query_get(q, qlen, "x", out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(hb_url_query_get(q, qlen, "bad", out, sizeof(out)), HB_EPROTO);
    assert_int_equal(hb_url_query_get(q, qlen, "missing", out, sizeof(out)), HB_ENOTFOUND);
    assert_int_equal(hb_url_query_get(q, qlen, "topi", out, sizeof(out)), HB_ENOTFOUND);
    assert_int_equal(hb_url_query_get(q, qlen, "topics", out, sizeof(out)), HB_ENOTFOUND);
    assert_int_equal(hb_url_query_get("", 0, "topic", out, sizeof(out)), HB_ENOTFOUND);
    /* A key with a bad escape matches nothing but does not stop the search. */
    assert_int_equal(hb_url_query_get(LIT("%zz=1&a=2"), "a", out, sizeof(out)), 1);
    assert_string_equal(out, "2");
}

static void test_query_get_limits(void **state)
{
    (void)state;
    char out[8];
    /* cap 8 holds 7 bytes and the NUL; 8 bytes do not fit. */
    assert_int_equal(hb_url_query_get(LIT("v=1234567"), "v", out, sizeof(out)), 7);
    assert_string_equal(out, "1234567");
    assert_int_equal(hb_url_query_get(LIT("v=12345678"), "v", out, sizeof(out)), HB_ELIMIT);
    assert_int_equal(hb_url_query_get(LIT("v=%31%32%33%34%35%36%37"), "v", out, sizeof(out)), 7);
    assert_int_equal(hb_url_query_get(LIT("v="), "v", out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(hb_url_query_get(LIT("v=1"), "v", out, 1), HB_ELIMIT);
    assert_int_equal(hb_url_query_get(LIT("v="), "v", out, 0), HB_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_escapes), cmocka_unit_test(test_decode_bad_escapes),
        cmocka_unit_test(test_decode_limits),  cmocka_unit_test(test_query_iteration),
        cmocka_unit_test(test_query_get),      cmocka_unit_test(test_query_get_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
