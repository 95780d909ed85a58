#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"
#include "hb_sentinel.h"

static int addr(const char *h, const char *p, char *host, int *port, const char **why)
{
    return hb_sentinel_parse_addr(h, strlen(h), p, strlen(p), host, HB_SENTINEL_HOST_MAX, port,
                                  why);
}

static void test_addr(void **state)
{
    char host[HB_SENTINEL_HOST_MAX] = "unchanged", big[HB_SENTINEL_HOST_MAX + 1];
    int port = -1;
    const char *why = NULL;
    (void)state;
    assert_int_equal(addr("10.0.0.7", "6380", host, &port, &why), 0);
    assert_string_equal(host, "10.0.0.7");
    assert_int_equal(port, 6380);
    assert_int_equal(addr("fe80::1", "1", host, &port, NULL), 0);
    assert_int_equal(port, 1);
    assert_int_equal(addr("redis-replica_2.local", "65535", host, &port, NULL), 0);
    assert_string_equal(host, "redis-replica_2.local");
    assert_int_equal(port, 65535);

    /* a host of HB_SENTINEL_HOST_MAX - 1 bytes is the longest accepted */
    memset(big, 'h', sizeof(big));
    big[HB_SENTINEL_HOST_MAX - 1] = '\0';
    assert_int_equal(addr(big, "7000", host, &port, NULL), 0);
    assert_int_equal(strlen(host), HB_SENTINEL_HOST_MAX - 1);
    big[HB_SENTINEL_HOST_MAX - 1] = 'h';
    big[HB_SENTINEL_HOST_MAX] = '\0';
    strcpy(host, "unchanged");
    port = -1;
    assert_int_equal(addr(big, "7000", host, &port, &why), HB_EPROTO);
    assert_string_equal(why, "sentinel: host is empty or too long");
    assert_string_equal(host, "unchanged");
    assert_int_equal(port, -1);

    assert_int_equal(addr("", "6379", host, &port, &why), HB_EPROTO);
    assert_int_equal(addr("a b", "6379", host, &port, &why), HB_EPROTO);
    assert_string_equal(why, "sentinel: host has a byte outside [A-Za-z0-9.:_-]");
    assert_int_equal(addr("a\"b", "6379", host, &port, NULL), HB_EPROTO);
    assert_int_equal(addr("a\nb", "6379", host, &port, NULL), HB_EPROTO);
    assert_int_equal(hb_sentinel_parse_addr("a\0b", 3, "1", 1, host, sizeof(host), &port, NULL),
                     HB_EPROTO);
    why = NULL;
    assert_int_equal(addr("h", "65536", host, &port, &why), HB_EPROTO);
    assert_string_equal(why, "sentinel: port is not a number from 1 to 65535");
    assert_int_equal(addr("h", "0", host, &port, NULL), HB_EPROTO);
    assert_int_equal(addr("h", "06379", host, &port, NULL), HB_EPROTO);
    assert_int_equal(addr("h", "", host, &port, NULL), HB_EPROTO);
    assert_int_equal(addr("h", "-1", host, &port, NULL), HB_EPROTO);
    assert_int_equal(addr("h", "6379x", host, &port, NULL), HB_EPROTO);
    assert_int_equal(addr("h", "999999", host, &port, NULL), HB_EPROTO);
    /* a destination smaller than the host */
    assert_int_equal(hb_sentinel_parse_addr("abcd", 4, "1", 1, host, 4, &port, NULL), HB_EPROTO);
}

static int sw(const char *msg, char *host, int *port, const char **why)
{
    return hb_sentinel_parse_switch(msg, strlen(msg), "mymaster", host, HB_SENTINEL_HOST_MAX, port,
                                    why);
}

static void test_switch(void **state)
{
    char host[HB_SENTINEL_HOST_MAX];
    int port = 0;
    const char *why = NULL;
    (void)state;
    assert_int_equal(sw("mymaster 10.0.0.1 6379 10.0.0.2 6380", host, &port, &why), 0);
    assert_string_equal(host, "10.0.0.2");
    assert_int_equal(port, 6380);

    assert_int_equal(sw("other 10.0.0.1 6379 10.0.0.2 6380", host, &port, &why), HB_ENOTFOUND);
    assert_int_equal(sw("mymaster2 10.0.0.1 6379 10.0.0.2 6380", host, &port, &why), HB_ENOTFOUND);
    assert_int_equal(sw("mymaste 10.0.0.1 6379 10.0.0.2 6380", host, &port, &why), HB_ENOTFOUND);

    assert_int_equal(sw("mymaster 10.0.0.1 6379 10.0.0.2", host, &port, &why), HB_EPROTO);
    assert_string_equal(why, "sentinel: +switch-master has fewer than five fields");
    assert_int_equal(sw("", host, &port, &why), HB_EPROTO);
    assert_int_equal(sw("mymaster 10.0.0.1 6379 10.0.0.2 6380 x", host, &port, &why), HB_EPROTO);
    assert_string_equal(why, "sentinel: +switch-master has more than five fields");
    assert_int_equal(sw("mymaster 10.0.0.1 6379 10.0.0.2 6380 ", host, &port, &why), HB_EPROTO);
    assert_int_equal(sw("mymaster 10.0.0.1 6379 10.0.0.2 99999", host, &port, &why), HB_EPROTO);
    assert_string_equal(why, "sentinel: port is not a number from 1 to 65535");
    assert_int_equal(sw("mymaster 10.0.0.1 6379  6380", host, &port, &why), HB_EPROTO);
    assert_int_equal(sw("mymaster a b c{} 6380", host, &port, &why), HB_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
