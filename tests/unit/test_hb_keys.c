#include "hb_keys.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"
#include "hb_slot.h"
#include "hb_topic.h"

static void test_topic_names(void **state)
{
    char out[HB_KEYS_TOPIC_MAX];
    (void)state;
    assert_int_equal(hb_keys_topic(out, sizeof(out), "herald:", "news", 4, HB_KEY_LOG), 17);
    assert_string_equal(out, "herald:{news}:log");
    assert_int_equal(hb_keys_topic(out, sizeof(out), "herald:", "news", 4, HB_KEY_EPOCH), 19);
    assert_string_equal(out, "herald:{news}:epoch");
    assert_int_equal(hb_keys_topic(out, sizeof(out), "herald:", "news", 4, HB_KEY_LIVE), 18);
    assert_string_equal(out, "herald:{news}:live");
    /* tlen bytes only, not up to a NUL */
    assert_int_equal(hb_keys_topic(out, sizeof(out), "p:", "a.b.c", 3, HB_KEY_LIVE), 12);
    assert_string_equal(out, "p:{a.b}:live");
    assert_int_equal(hb_keys_topic(out, sizeof(out), "p:", "x", 1, (hb_key_kind_t)3), HB_EINVAL);
    assert_string_equal(out, "");
    /* a keyed publish's record: in the topic's slot (its hash tag) */
    assert_int_equal(hb_keys_idem(out, sizeof(out), "herald:", "news.x", 4, "k-1"), 22);
    assert_string_equal(out, "herald:{news}:idem:k-1");
    assert_int_equal(hb_keys_idem(out, 10, "herald:", "news", 4, "k-1"), HB_ELIMIT);
    assert_string_equal(out, "");
}

static void test_topic_name_cap(void **state)
{
    char out[32];
    (void)state;
    /* "p:{abc}:epoch" is 13 bytes: cap 14 holds it with its NUL, cap 13 does not */
    memset(out, 'x', sizeof(out));
    assert_int_equal(hb_keys_topic(out, 14, "p:", "abc", 3, HB_KEY_EPOCH), 13);
    assert_string_equal(out, "p:{abc}:epoch");
    memset(out, 'x', sizeof(out));
    assert_int_equal(hb_keys_topic(out, 13, "p:", "abc", 3, HB_KEY_EPOCH), HB_ELIMIT);
    assert_string_equal(out, "");
    assert_int_equal(hb_keys_topic(out, 0, "p:", "abc", 3, HB_KEY_EPOCH), HB_ELIMIT);
}

static void test_topic_max_fits(void **state)
{
    char prefix[64], topic[HB_TOPIC_MAX], out[HB_KEYS_TOPIC_MAX];
    (void)state;
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    memset(topic, 't', sizeof(topic));
    /* the longest prefix and topic, the longest suffix: 63 + 2 + 128 + 6 */
    assert_int_equal(hb_keys_topic(out, sizeof(out), prefix, topic, sizeof(topic), HB_KEY_EPOCH),
                     63 + 2 + HB_TOPIC_MAX + 6);
}

static void test_fence(void **state)
{
    char out[64], tag[HB_SLOT_TAG_MAX];
    (void)state;
    assert_int_equal(hb_keys_fence(out, sizeof(out), "herald:", "abc"), 18);
    assert_string_equal(out, "herald:fence:{abc}");
    /* a tag of the largest size fits in strlen(prefix) + 16, the size cluster_route.c uses */
    memset(tag, 'z', sizeof(tag) - 1);
    tag[sizeof(tag) - 1] = '\0';
    assert_int_equal(hb_keys_fence(out, 7 + 16, "herald:", tag), 7 + 15);
    assert_int_equal(hb_keys_fence(out, 7 + 15, "herald:", tag), HB_ELIMIT);
    assert_string_equal(out, "");
}

static void test_barrier(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(hb_keys_barrier(out, sizeof(out), "h:", "n1:00ff", 42), 20);
    assert_string_equal(out, "h:barrier:n1:00ff:42");
    assert_int_equal(hb_keys_barrier(out, 21, "h:", "n1:00ff", 42), 20);
    assert_int_equal(hb_keys_barrier(out, 20, "h:", "n1:00ff", 42), HB_ELIMIT);
    assert_string_equal(out, "");
}

static void test_dataset(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(hb_keys_dataset(out, sizeof(out), "herald:"), 14);
    assert_string_equal(out, "herald:dataset");
    assert_int_equal(hb_keys_dataset(out, 15, "herald:"), 14); /* limit: with its NUL */
    assert_int_equal(hb_keys_dataset(out, 14, "herald:"), HB_ELIMIT);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_names),    cmocka_unit_test(test_topic_name_cap),
        cmocka_unit_test(test_topic_max_fits), cmocka_unit_test(test_fence),
        cmocka_unit_test(test_barrier),        cmocka_unit_test(test_dataset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
