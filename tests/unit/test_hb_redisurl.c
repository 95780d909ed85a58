#include "hb_redisurl.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

static hb_cfg_t cfg; /* large: not on the stack */

static void test_hostport(void **state)
{
    char host[16];
    int port = 0;
    (void)state;
    assert_int_equal(hb_hostport_parse("a.b:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "a.b");
    assert_int_equal(port, 1);
    assert_int_equal(hb_hostport_parse("[::1]:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);
    /* port limits: 1..65535 */
    assert_int_equal(hb_hostport_parse("h:65536", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("h:0", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("h:-1", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("h: 1", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("h:1x", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("h", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse(":1", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("[::1:1", host, sizeof(host), &port), HB_EINVAL);
    assert_int_equal(hb_hostport_parse("[]:1", host, sizeof(host), &port), HB_EINVAL);
    /* host capacity: 15 bytes fit a 16-byte buffer, 16 do not */
    assert_int_equal(hb_hostport_parse("abcdefghijklmno:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "abcdefghijklmno");
    assert_int_equal(hb_hostport_parse("abcdefghijklmnop:1", host, sizeof(host), &port),
                     HB_EINVAL);
}

static void test_redis(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(hb_redisurl_parse(&cfg, "redis://r1"), 0);
    assert_string_equal(cfg.redis_host, "r1");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_db, 0);
    assert_string_equal(cfg.redis_url, "redis://r1");
    assert_int_equal(hb_redisurl_parse(&cfg, "redis://[::1]:7000/10000"), 0);
    assert_string_equal(cfg.redis_host, "::1");
    assert_int_equal(cfg.redis_port, 7000);
    assert_int_equal(cfg.redis_db, 10000);
    assert_int_equal(hb_redisurl_parse(&cfg, "redis://h/10001"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "redis://h/-1"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "rediss://h"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "http://h"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "redis://:1"), HB_EINVAL);
}

static void test_url_length(void **state)
{
    char v[HB_CFG_STR_MAX + 1];
    (void)state;
    /* HB_CFG_STR_MAX - 1 bytes fit redis_url (with its NUL); HB_CFG_STR_MAX do not */
    memset(v, 'a', sizeof(v));
    memcpy(v, "redis://", 8);
    v[HB_CFG_STR_MAX - 1 - 5] = '\0';
    strcat(v, ":6379");
    assert_int_equal(strlen(v), HB_CFG_STR_MAX - 1);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(hb_redisurl_parse(&cfg, v), 0);
    memset(v, 'a', sizeof(v));
    memcpy(v, "redis://", 8);
    v[HB_CFG_STR_MAX - 5] = '\0';
    strcat(v, ":6379");
    assert_int_equal(strlen(v), HB_CFG_STR_MAX);
    assert_int_equal(hb_redisurl_parse(&cfg, v), HB_EINVAL);
}

static void test_sentinel(void **state)
{
    char v[HB_CFG_STR_MAX];
    char name[HB_SENTINEL_NAME_MAX + 1];
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel://s1,[::1]:26380/m.a-b_c/3"), 0);
    assert_int_equal(cfg.nsentinels, 2);
    assert_string_equal(cfg.sentinel_host[0], "s1");
    assert_int_equal(cfg.sentinel_port[0], 26379);
    assert_string_equal(cfg.sentinel_host[1], "::1");
    assert_int_equal(cfg.sentinel_port[1], 26380);
    assert_string_equal(cfg.sentinel_master, "m.a-b_c");
    assert_int_equal(cfg.redis_db, 3);
    assert_string_equal(cfg.redis_host, "");
    /* HB_SENTINEL_MAX sentinels, then one more */
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel://a,b,c,d,e,f,g,h/m"), 0);
    assert_int_equal(cfg.nsentinels, HB_SENTINEL_MAX);
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel://a,b,c,d,e,f,g,h,i/m"), HB_EINVAL);
    /* a master name of HB_SENTINEL_NAME_MAX - 1 bytes, then one more */
    memset(name, 'n', sizeof(name));
    name[HB_SENTINEL_NAME_MAX - 1] = '\0';
    snprintf(v, sizeof(v), "sentinel://s/%s", name);
    assert_int_equal(hb_redisurl_parse(&cfg, v), 0);
    assert_int_equal(strlen(cfg.sentinel_master), HB_SENTINEL_NAME_MAX - 1);
    name[HB_SENTINEL_NAME_MAX - 1] = 'n';
    name[HB_SENTINEL_NAME_MAX] = '\0';
    snprintf(v, sizeof(v), "sentinel://s/%s", name);
    assert_int_equal(hb_redisurl_parse(&cfg, v), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel://s/m x"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel://s/"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel:///m"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "sentinel://a,,b/m"), HB_EINVAL);
}

static void test_cluster(void **state)
{
    char v[HB_CFG_STR_MAX];
    size_t n = (size_t)snprintf(v, sizeof(v), "cluster://");
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(hb_redisurl_parse(&cfg, "cluster://r1:7000,[::1]:7001"), 0);
    assert_int_equal(cfg.redis_cluster, 1);
    assert_int_equal(cfg.redis_nseeds, 2);
    assert_string_equal(cfg.redis_seed_host[1], "::1");
    assert_int_equal(cfg.redis_seed_port[1], 7001);
    assert_string_equal(cfg.redis_host, "r1"); /* the first seed */
    /* HB_CFG_SEEDS_MAX seeds, then one more */
    for (int i = 0; i < HB_CFG_SEEDS_MAX; i++)
        n += (size_t)snprintf(v + n, sizeof(v) - n, "%sh:%d", i ? "," : "", 7000 + i);
    assert_int_equal(hb_redisurl_parse(&cfg, v), 0);
    assert_int_equal(cfg.redis_nseeds, HB_CFG_SEEDS_MAX);
    snprintf(v + n, sizeof(v) - n, ",h:8000");
    assert_int_equal(hb_redisurl_parse(&cfg, v), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "cluster://h"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "cluster://h:1,"), HB_EINVAL);
    assert_int_equal(hb_redisurl_parse(&cfg, "cluster://"), HB_EINVAL);
    /* a later redis:// forgets the cluster */
    assert_int_equal(hb_redisurl_parse(&cfg, "redis://x"), 0);
    assert_int_equal(cfg.redis_cluster, 0);
    assert_int_equal(cfg.redis_nseeds, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport),   cmocka_unit_test(test_redis),
        cmocka_unit_test(test_url_length), cmocka_unit_test(test_sentinel),
        cmocka_unit_test(test_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
