#include "hb_slot.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

static void test_crc16_vector(void **state)
{
    (void)state;
    /* The check value of CRC16-CCITT (XMODEM), given in the Redis Cluster specification. */
    assert_int_equal(hb_slot_crc16("123456789", 9), 0x31C3);
    assert_int_equal(hb_slot_crc16("", 0), 0);
}

static void test_slot_known_keys(void **state)
{
    (void)state;
    /* Values of CLUSTER KEYSLOT on Redis 7. */
    assert_int_equal(hb_slot_of("foo", 3), 12182);
    assert_int_equal(hb_slot_of("bar", 3), 5061);
    assert_int_equal(hb_slot_of("hello", 5), 866);
}

static void test_slot_hash_tags(void **state)
{
    (void)state;
    unsigned user = hb_slot_of("user1000", 8);
    assert_int_equal(hb_slot_of("{user1000}.following", 20), user);
    assert_int_equal(hb_slot_of("{user1000}.followers", 20), user);
    /* The first {...} counts, and only when non-empty. */
    assert_int_equal(hb_slot_of("foo{bar}{zap}", 13), hb_slot_of("bar", 3));
    assert_int_equal(hb_slot_of("foo{}{bar}", 10), hb_slot_crc16("foo{}{bar}", 10) & 16383);
    assert_int_equal(hb_slot_of("foo{{bar}}zap", 13), hb_slot_of("{bar", 4));
    assert_int_equal(hb_slot_of("foo{bar", 7), hb_slot_crc16("foo{bar", 7) & 16383);
    assert_int_equal(hb_slot_of("{", 1), hb_slot_crc16("{", 1) & 16383);
    /* Herald's keys: every key of a topic is in the slot of the topic name itself. */
    const char *keys[] = {"herald:{news/eu}:log", "herald:{news/eu}:epoch", "herald:{news/eu}:live",
                          "x{news/eu}"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(hb_slot_of(keys[i], strlen(keys[i])), hb_slot_of("news/eu", 7));
}

static void test_slot_tag_every_slot(void **state)
{
    (void)state;
    char tag[HB_SLOT_TAG_MAX], key[32];
    /* A spread of slots (each search is a scan), the last one included. */
    for (unsigned s = 0; s < HB_SLOT_COUNT; s = s == HB_SLOT_COUNT - 1       ? HB_SLOT_COUNT
                                                : s + 61 > HB_SLOT_COUNT - 1 ? HB_SLOT_COUNT - 1
                                                                             : s + 61) {
        assert_int_equal(hb_slot_tag(s, tag), 0);
        assert_true(strlen(tag) >= 1 && strlen(tag) <= 4);
        assert_int_equal(hb_slot_of(tag, strlen(tag)), s);
        int n = snprintf(key, sizeof(key), "herald:fence:{%s}", tag);
        assert_int_equal(hb_slot_of(key, (size_t)n), s);
    }
    assert_int_equal(hb_slot_tag(HB_SLOT_COUNT, tag), HB_EINVAL);
}

static void test_slot_tag_table(void **state)
{
    (void)state;
    static char table[HB_SLOT_COUNT][HB_SLOT_TAG_MAX];
    char one[HB_SLOT_TAG_MAX];
    hb_slot_tag_table(table);
    for (unsigned s = 0; s < HB_SLOT_COUNT; s++) {
        assert_true(table[s][0] != '\0');
        assert_int_equal(hb_slot_of(table[s], strlen(table[s])), s);
    }
    /* the same tags as one at a time */
    for (unsigned s = 0; s < HB_SLOT_COUNT; s += 997) {
        assert_int_equal(hb_slot_tag(s, one), 0);
        assert_string_equal(table[s], one);
    }
}

static void redirect_ok(const char *s, int want_ask, unsigned want_slot, const char *want_host,
                        int want_port)
{
    int ask = -1, port = 0;
    unsigned slot = 99999;
    char host[HB_SLOT_HOST_MAX + 1];
    const char *reason = "unset";
    assert_int_equal(
        hb_slot_redirect_parse(s, strlen(s), &ask, &slot, host, sizeof(host), &port, &reason), 0);
    assert_int_equal(ask, want_ask);
    assert_int_equal(slot, want_slot);
    assert_string_equal(host, want_host);
    assert_int_equal(port, want_port);
    assert_string_equal(reason, "unset");
}

static void redirect_bad(const char *s, size_t len, const char *want_reason)
{
    int ask, port;
    unsigned slot;
    char host[16];
    const char *reason = NULL;
    assert_int_equal(
        hb_slot_redirect_parse(s, len, &ask, &slot, host, sizeof(host), &port, &reason), HB_EPROTO);
    assert_string_equal(reason, want_reason);
}

static void test_redirect_parse(void **state)
{
    (void)state;
    redirect_ok("MOVED 3999 127.0.0.1:6381", 0, 3999, "127.0.0.1", 6381);
    redirect_ok("ASK 0 10.0.0.2:7000", 1, 0, "10.0.0.2", 7000);
    redirect_ok("MOVED 16383 redis-3:7002", 0, 16383, "redis-3", 7002);
    redirect_ok("MOVED 12 [::1]:7000", 0, 12, "::1", 7000);
    redirect_ok("MOVED 12 ::1:7000", 0, 12, "::1", 7000);
    redirect_ok("MOVED 12 :7000", 0, 12, "", 7000); /* unknown endpoint: same host */
    redirect_ok("ASK 5 h:1 extra", 1, 5, "h", 1);

    redirect_bad("ERR unknown command", 19, "not a MOVED or ASK redirection");
    redirect_bad("MOVED", 5, "not a MOVED or ASK redirection");
    redirect_bad("moved 1 h:1", 11, "not a MOVED or ASK redirection");
    redirect_bad("MOVED 16384 h:1", 15, "redirection has a bad slot");
    redirect_bad("MOVED -1 h:1", 12, "redirection has a bad slot");
    redirect_bad("MOVED 123456 h:1", 16, "redirection has a bad slot");
    redirect_bad("MOVED 1h:1", 10, "redirection has a bad slot");
    redirect_bad("MOVED  h:1", 10, "redirection has a bad slot");
    redirect_bad("MOVED 1 h", 9, "redirection has a bad port");
    redirect_bad("MOVED 1 h:0", 11, "redirection has a bad port");
    redirect_bad("MOVED 1 h:65536", 15, "redirection has a bad port");
    redirect_bad("MOVED 1 h:", 10, "redirection has a bad port");
    redirect_bad("MOVED 1 h:12x", 13, "redirection has a bad port");
    redirect_bad("MOVED 1 h\r\nX:1", 14, "redirection has a bad host");
    redirect_bad("MOVED 1 a/b:1", 13, "redirection has a bad host");
    /* A host longer than the caller's buffer (16 bytes here). */
    redirect_bad("MOVED 1 0123456789abcdef:1", 26, "redirection host too long");
    {
        /* 15 bytes and the NUL fit exactly. */
        int ask, port;
        unsigned slot;
        char host[16];
        assert_int_equal(hb_slot_redirect_parse("MOVED 1 0123456789abcde:1", 25, &ask, &slot, host,
                                                sizeof(host), &port, NULL),
                         0);
        assert_string_equal(host, "0123456789abcde");
    }
    /* Embedded NUL bytes are not skipped over. */
    redirect_bad("MOVED 1 h\0x:1", 13, "redirection has a bad host");
}

static void test_map_assign_lookup(void **state)
{
    (void)state;
    hb_slot_map_t *m = hb_slot_map_new();
    assert_int_equal(hb_slot_map_covered(m), 0);
    assert_int_equal(hb_slot_map_owner(m, 0), HB_ENOTFOUND);
    assert_int_equal(hb_slot_map_assign(m, 0, 5460, "10.0.0.1", 8, 7000), 0);
    assert_int_equal(hb_slot_map_assign(m, 5461, 10922, "10.0.0.2", 8, 7001), 1);
    assert_int_equal(hb_slot_map_covered(m), 10923);
    assert_int_equal(hb_slot_map_assign(m, 10923, 16383, "10.0.0.3", 8, 7002), 2);
    assert_int_equal(hb_slot_map_covered(m), HB_SLOT_COUNT);
    assert_int_equal(hb_slot_map_owner(m, 0), 0);
    assert_int_equal(hb_slot_map_owner(m, 5460), 0);
    assert_int_equal(hb_slot_map_owner(m, 5461), 1);
    assert_int_equal(hb_slot_map_owner(m, 16383), 2);
    assert_int_equal(hb_slot_map_owner(m, 16384), HB_ENOTFOUND);
    assert_string_equal(hb_slot_map_host(m, 1), "10.0.0.2");
    assert_int_equal(hb_slot_map_port(m, 1), 7001);
    assert_null(hb_slot_map_host(m, 3));
    assert_int_equal(hb_slot_map_port(m, -1), 0);
    assert_int_equal(hb_slot_map_first_slot(m, 2), 10923);
    /* A MOVED for one slot: the same address keeps its index, the slot changes owner. */
    assert_int_equal(hb_slot_map_assign(m, 7, 7, "10.0.0.3", 8, 7002), 2);
    assert_int_equal(hb_slot_map_owner(m, 7), 2);
    assert_int_equal(hb_slot_map_first_slot(m, 2), 7);
    assert_int_equal(hb_slot_map_covered(m), HB_SLOT_COUNT);
    assert_int_equal(hb_slot_map_nodes(m), 3);
    /* A node that owns nothing (yet). */
    assert_int_equal(hb_slot_map_node(m, "10.0.0.4", 8, 7003), 3);
    assert_int_equal(hb_slot_map_first_slot(m, 3), HB_ENOTFOUND);
    hb_slot_map_free(m);
    hb_slot_map_free(NULL);
}

static void test_map_rejects(void **state)
{
    (void)state;
    hb_slot_map_t *m = hb_slot_map_new();
    assert_int_equal(hb_slot_map_assign(m, 5, 4, "h", 1, 1), HB_EINVAL);
    assert_int_equal(hb_slot_map_assign(m, -1, 4, "h", 1, 1), HB_EINVAL);
    assert_int_equal(hb_slot_map_assign(m, 0, HB_SLOT_COUNT, "h", 1, 1), HB_EINVAL);
    assert_int_equal(hb_slot_map_assign(m, 0, 1, "", 0, 1), HB_EPROTO);
    assert_int_equal(hb_slot_map_assign(m, 0, 1, "h", 1, 0), HB_EPROTO);
    assert_int_equal(hb_slot_map_assign(m, 0, 1, "h", 1, 65536), HB_EPROTO);
    assert_int_equal(hb_slot_map_assign(m, 0, 1, "h h", 3, 1), HB_EPROTO);
    char big[HB_SLOT_HOST_MAX + 1];
    memset(big, 'a', sizeof(big));
    assert_int_equal(hb_slot_map_node(m, big, HB_SLOT_HOST_MAX, 1), 0);
    assert_int_equal(hb_slot_map_node(m, big, HB_SLOT_HOST_MAX + 1, 1), HB_EPROTO);
    assert_int_equal(hb_slot_map_covered(m), 0);
    /* The address limit, and at the limit + 1. */
    char host[16];
    for (int i = 1; i < HB_SLOT_NODES_MAX; i++) {
        int n = snprintf(host, sizeof(host), "n%d", i);
        assert_int_equal(hb_slot_map_node(m, host, (size_t)n, 1), i);
    }
    assert_int_equal(hb_slot_map_node(m, "other", 5, 1), HB_ELIMIT);
    assert_int_equal(hb_slot_map_assign(m, 0, 0, "other", 5, 1), HB_ELIMIT);
    assert_int_equal(hb_slot_map_node(m, "n5", 2, 1), 5); /* known ones still resolve */
    hb_slot_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vector),      cmocka_unit_test(test_slot_known_keys),
        cmocka_unit_test(test_slot_hash_tags),    cmocka_unit_test(test_slot_tag_every_slot),
        cmocka_unit_test(test_slot_tag_table),    cmocka_unit_test(test_redirect_parse),
        cmocka_unit_test(test_map_assign_lookup), cmocka_unit_test(test_map_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
