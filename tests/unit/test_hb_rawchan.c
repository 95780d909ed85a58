#include "hb_rawchan.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_topic.h"

static hb_rawchan_kind_t kind(const char *prefix, const char *chan)
{
    return hb_rawchan_classify(prefix, strlen(prefix), chan, strlen(chan));
}

static void test_ours(void **state)
{
    (void)state;
    assert_int_equal(kind("herald:", "herald:{a}:live"), HB_RAWCHAN_OURS);
    assert_int_equal(kind("herald:", "herald:"), HB_RAWCHAN_OURS); /* the prefix alone */
    assert_int_equal(kind("herald:", "herald:canary"), HB_RAWCHAN_OURS);
    /* "barrier:" needs at least one byte after it */
    assert_int_equal(kind("herald:", "herald:barrier:"), HB_RAWCHAN_OURS);
    assert_int_equal(kind("herald:", "herald:barrier:x"), HB_RAWCHAN_BARRIER);
    assert_int_equal(kind("herald:", "herald:barrier:n1:ab:3:caught"), HB_RAWCHAN_BARRIER);
    assert_int_equal(kind("herald:", "herald:xbarrier:x"), HB_RAWCHAN_OURS);
    /* one byte short of the prefix is not ours */
    assert_int_equal(kind("herald:", "herald"), HB_RAWCHAN_RAW);
}

static void test_other(void **state)
{
    (void)state;
    assert_int_equal(kind("herald:", "__keyspace@0__:x"), HB_RAWCHAN_INTERNAL);
    assert_int_equal(kind("herald:", "__"), HB_RAWCHAN_INTERNAL);
    assert_int_equal(kind("herald:", "_a"), HB_RAWCHAN_RAW);
    assert_int_equal(kind("herald:", "other:{a}:live"), HB_RAWCHAN_FOREIGN);
    assert_int_equal(kind("herald:", "}:live"), HB_RAWCHAN_FOREIGN);
    assert_int_equal(kind("herald:", ":live"), HB_RAWCHAN_BAD_TOPIC);
    assert_int_equal(kind("herald:", "other:barrier:t:1"), HB_RAWCHAN_FOREIGN);
    assert_int_equal(kind("herald:", "barrier:"), HB_RAWCHAN_FOREIGN);
    assert_int_equal(kind("herald:", "barrier"), HB_RAWCHAN_RAW);
    assert_int_equal(kind("herald:", "news.sport"), HB_RAWCHAN_RAW);
    assert_int_equal(kind("herald:", "a b"), HB_RAWCHAN_BAD_TOPIC);
    assert_int_equal(hb_rawchan_classify("herald:", 7, "", 0), HB_RAWCHAN_BAD_TOPIC);
    /* an empty prefix: every channel is ours */
    assert_int_equal(kind("", "news"), HB_RAWCHAN_OURS);
    assert_int_equal(kind("", "barrier:1"), HB_RAWCHAN_BARRIER);
}

static void test_topic_length_limit(void **state)
{
    char chan[HB_TOPIC_MAX + 2];
    (void)state;
    memset(chan, 'a', sizeof(chan));
    assert_int_equal(hb_rawchan_classify("h:", 2, chan, HB_TOPIC_MAX), HB_RAWCHAN_RAW);
    assert_int_equal(hb_rawchan_classify("h:", 2, chan, HB_TOPIC_MAX + 1), HB_RAWCHAN_BAD_TOPIC);
}

static void test_embedded_nul(void **state)
{
    (void)state;
    assert_int_equal(hb_rawchan_classify("h:", 2, "h:\0x", 4), HB_RAWCHAN_OURS);
    assert_int_equal(hb_rawchan_classify("h:", 2, "a\0b", 3), HB_RAWCHAN_BAD_TOPIC);
    assert_int_equal(hb_rawchan_classify("h:", 2, "x\0barrier:", 10), HB_RAWCHAN_FOREIGN);
}

static void test_is_caught(void **state)
{
    (void)state;
    assert_int_equal(hb_rawchan_is_caught("h:barrier:t:1:caught", 20), 1);
    assert_int_equal(hb_rawchan_is_caught("x:caught", 8), 1);
    assert_int_equal(hb_rawchan_is_caught(":caught", 7), 0); /* nothing before it */
    assert_int_equal(hb_rawchan_is_caught("h:barrier:t:1:caugh", 19), 0);
    assert_int_equal(hb_rawchan_is_caught("h:barrier:t:1", 13), 0);
    assert_int_equal(hb_rawchan_is_caught("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ours),
        cmocka_unit_test(test_other),
        cmocka_unit_test(test_topic_length_limit),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
