#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hb_cfg.h"
#include "hb_err.h"

static int load(hb_cfg_t *cfg, char *err, size_t errlen, int argc, char **argv)
{
    FILE *out = fopen("/dev/null", "w");
    int rc = hb_cfg_load(cfg, argc, argv, out, err, errlen);
    fclose(out);
    return rc;
}

static void test_defaults(void **state)
{
    hb_cfg_t cfg;
    char err[256] = "";
    char *argv[] = {"herald"};
    (void)state;
    unsetenv("HERALD_LISTEN");
    unsetenv("HERALD_HISTORY_MAX");
    assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), 0);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_db, 0);
    assert_string_equal(cfg.prefix, "herald:");
    assert_int_equal(cfg.history_max, 1000);
    assert_int_equal(cfg.history_ttl, 86400);
    assert_int_equal(cfg.ingest, 1);
    assert_true(cfg.threads >= 1);
    assert_true(strlen(cfg.node_id) > 0);
}

static void test_flag_beats_env(void **state)
{
    hb_cfg_t cfg;
    char err[256] = "";
    char *argv[] = {"herald", "--history-max", "7", "--redis=redis://10.0.0.5:7000/3",
                    "--ingest", "off", "--listen", "[::1]:9000"};
    (void)state;
    setenv("HERALD_HISTORY_MAX", "9", 1);
    setenv("HERALD_NODE_ID", "edge-env", 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 8, argv), 0);
    assert_int_equal(cfg.history_max, 7);
    assert_string_equal(cfg.node_id, "edge-env");
    assert_string_equal(cfg.redis_host, "10.0.0.5");
    assert_int_equal(cfg.redis_port, 7000);
    assert_int_equal(cfg.redis_db, 3);
    assert_int_equal(cfg.ingest, 0);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9000);
    unsetenv("HERALD_HISTORY_MAX");
    unsetenv("HERALD_NODE_ID");
}

static void expect_bad(const char *flag, const char *value, const char *needle)
{
    hb_cfg_t cfg;
    char err[256] = "";
    char *argv[] = {"herald", (char *)flag, (char *)value};
    assert_int_equal(load(&cfg, err, sizeof(err), value ? 3 : 2, argv), HB_EINVAL);
    assert_non_null(strstr(err, needle));
}

static void test_invalid_values(void **state)
{
    (void)state;
    expect_bad("--history-max", "0", "--history-max");        /* below min */
    expect_bad("--history-max", "100000001", "--history-max"); /* above max */
    expect_bad("--history-max", "12abc", "--history-max");
    expect_bad("--listen", "8080", "--listen");               /* no host */
    expect_bad("--listen", "127.0.0.1:65536", "--listen");
    expect_bad("--redis", "http://x:1", "--redis");
    expect_bad("--redis", "redis://h:1/x", "--redis");
    expect_bad("--ingest", "maybe", "--ingest");
    expect_bad("--log-level", "loud", "--log-level");
    expect_bad("--prefix", "a b", "--prefix");
    expect_bad("--node-id", "x\ny", "--node-id");
    expect_bad("--nope", "1", "unknown option");
    expect_bad("--history-max", NULL, "needs a value");
}

static void test_limits_at_bounds(void **state)
{
    hb_cfg_t cfg;
    char err[256] = "";
    char *lo[] = {"herald", "--history-max", "1", "--heartbeat", "1"};
    char *hi[] = {"herald", "--history-max", "100000000", "--heartbeat", "3600"};
    (void)state;
    assert_int_equal(load(&cfg, err, sizeof(err), 5, lo), 0);
    assert_int_equal(cfg.history_max, 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 5, hi), 0);
    assert_int_equal(cfg.history_max, 100000000);
    assert_int_equal(cfg.heartbeat, 3600);
}

static void test_help_lists_every_env(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;
    hb_cfg_print_help(f);
    fclose(f);
    assert_non_null(strstr(buf, "--history-ttl"));
    assert_non_null(strstr(buf, "HERALD_HISTORY_TTL"));
    assert_non_null(strstr(buf, "HERALD_REDIS"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flag_beats_env),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_limits_at_bounds),
        cmocka_unit_test(test_help_lists_every_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
