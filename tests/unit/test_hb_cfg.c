#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char *argv[] = {"herald",   "--history-max", "7",        "--redis=redis://10.0.0.5:7000/3",
                    "--ingest", "off",           "--listen", "[::1]:9000"};
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
    expect_bad("--history-max", "0", "--history-max");         /* below min */
    expect_bad("--history-max", "100000001", "--history-max"); /* above max */
    expect_bad("--history-max", "12abc", "--history-max");
    expect_bad("--history-max", " 12", "--history-max");
    expect_bad("--history-max", "+12", "--history-max");
    expect_bad("--listen", "8080", "--listen"); /* no host */
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

static void test_sentinel_url(void **state)
{
    hb_cfg_t cfg;
    char err[256] = "";
    char *argv[] = {"herald", "--redis", "sentinel://10.0.0.1:26380,s2,[::1]:26381/my-master.1/2"};
    char *plain[] = {"herald", "--redis", "redis://r:6380"};
    (void)state;
    assert_int_equal(load(&cfg, err, sizeof(err), 3, argv), 0);
    assert_int_equal(cfg.nsentinels, 3);
    assert_string_equal(cfg.sentinel_host[0], "10.0.0.1");
    assert_int_equal(cfg.sentinel_port[0], 26380);
    assert_string_equal(cfg.sentinel_host[1], "s2");
    assert_int_equal(cfg.sentinel_port[1], 26379); /* the default Sentinel port */
    assert_string_equal(cfg.sentinel_host[2], "::1");
    assert_int_equal(cfg.sentinel_port[2], 26381);
    assert_string_equal(cfg.sentinel_master, "my-master.1");
    assert_int_equal(cfg.redis_db, 2);
    assert_string_equal(cfg.redis_url, argv[2]);

    /* the environment twin, and one sentinel at the HB_SENTINEL_MAX limit */
    setenv("HERALD_REDIS", "sentinel://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8/m", 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), 0);
    assert_int_equal(cfg.nsentinels, HB_SENTINEL_MAX);
    assert_string_equal(cfg.sentinel_host[7], "h");
    assert_int_equal(cfg.sentinel_port[7], 8);
    assert_string_equal(cfg.sentinel_master, "m");
    assert_int_equal(cfg.redis_db, 0);
    unsetenv("HERALD_REDIS");

    /* a plain address after a sentinel one leaves no sentinel behind */
    assert_int_equal(load(&cfg, err, sizeof(err), 3, plain), 0);
    assert_int_equal(cfg.nsentinels, 0);
    assert_string_equal(cfg.redis_host, "r");
    assert_int_equal(cfg.redis_port, 6380);
}

static void test_sentinel_url_invalid(void **state)
{
    (void)state;
    expect_bad("--redis", "sentinel://h:26379", "--redis");   /* no master name */
    expect_bad("--redis", "sentinel://h:26379/", "--redis");  /* empty name */
    expect_bad("--redis", "sentinel:///m", "--redis");        /* no sentinel */
    expect_bad("--redis", "sentinel://a,,b/m", "--redis");    /* empty host */
    expect_bad("--redis", "sentinel://h:0/m", "--redis");     /* bad port */
    expect_bad("--redis", "sentinel://h:70000/m", "--redis"); /* bad port */
    expect_bad("--redis", "sentinel://h/m x", "--redis");     /* bad name byte */
    expect_bad("--redis", "sentinel://h/m/x", "--redis");     /* bad db */
    expect_bad("--redis", "sentinel://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9/m", "--redis"); /* 9 */
    expect_bad("--redis",
               "sentinel://h/"
               "m123456789012345678901234567890123456789012345678901234567890123",
               "--redis"); /* a 64-byte name */
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

static void test_redis_cluster_seeds(void **state)
{
    hb_cfg_t cfg;
    char err[256] = "";
    char *one[] = {"herald", "--redis", "cluster://10.0.0.1:7000"};
    char *three[] = {"herald", "--redis", "cluster://r1:7000,[::1]:7001,r3:7002"};
    (void)state;
    assert_int_equal(load(&cfg, err, sizeof(err), 3, one), 0);
    assert_int_equal(cfg.redis_cluster, 1);
    assert_int_equal(cfg.redis_nseeds, 1);
    assert_string_equal(cfg.redis_seed_host[0], "10.0.0.1");
    assert_int_equal(cfg.redis_seed_port[0], 7000);
    assert_string_equal(cfg.redis_host, "10.0.0.1");
    assert_int_equal(cfg.redis_port, 7000);
    assert_int_equal(load(&cfg, err, sizeof(err), 3, three), 0);
    assert_int_equal(cfg.redis_nseeds, 3);
    assert_string_equal(cfg.redis_seed_host[1], "::1");
    assert_int_equal(cfg.redis_seed_port[1], 7001);
    assert_string_equal(cfg.redis_seed_host[2], "r3");
    assert_int_equal(cfg.redis_seed_port[2], 7002);
    assert_string_equal(cfg.redis_url, "cluster://r1:7000,[::1]:7001,r3:7002");
    /* single-Redis mode stays single */
    char *single[] = {"herald", "--redis", "redis://h:1"};
    assert_int_equal(load(&cfg, err, sizeof(err), 3, single), 0);
    assert_int_equal(cfg.redis_cluster, 0);
    /* 16 seeds is the limit; 17 is refused */
    char list[512] = "cluster://";
    for (int i = 0; i < 16; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%sh%d:1", i ? "," : "", i);
    char *sixteen[] = {"herald", "--redis", list};
    assert_int_equal(load(&cfg, err, sizeof(err), 3, sixteen), 0);
    assert_int_equal(cfg.redis_nseeds, 16);
    strcat(list, ",h16:1");
    expect_bad("--redis", list, "--redis");
    expect_bad("--redis", "cluster://", "--redis");
    expect_bad("--redis", "cluster://h", "--redis");        /* port required */
    expect_bad("--redis", "cluster://h:1,", "--redis");     /* trailing comma */
    expect_bad("--redis", "cluster://h:1,,h:2", "--redis"); /* empty seed */
    expect_bad("--redis", "cluster://h:0", "--redis");
    expect_bad("--redis", "cluster://h:1/2", "--redis");    /* no database in a cluster */
}

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *conf_file(const char *text)
{
    static char path[64];
    int fd;
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/herald-cfg-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config_file_precedence(void **state)
{
    hb_cfg_t cfg;
    char err[512] = "";
    const char *path = conf_file("# an edge\n"
                                 "\n"
                                 "history-max = 11\n"
                                 "  heartbeat 22  \n"
                                 "retry-ms=333\n"
                                 "publish-key = \"s3cr#t\"\n"
                                 "node-id = from-file\r\n");
    char *argv[] = {"herald", "--config", (char *)path, "--history-max", "44"};
    (void)state;
    unsetenv("HERALD_HISTORY_MAX");
    setenv("HERALD_HEARTBEAT", "55", 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 5, argv), 0);
    assert_int_equal(cfg.history_max, 44);          /* flag beats file */
    assert_int_equal(cfg.heartbeat, 55);            /* environment beats file */
    assert_int_equal(cfg.retry_ms, 333);            /* file beats default */
    assert_string_equal(cfg.publish_key, "s3cr#t"); /* quotes kept the '#' */
    assert_string_equal(cfg.node_id, "from-file");  /* CRLF line */
    assert_int_equal(cfg.history_ttl, 86400);       /* default */
    assert_string_equal(cfg.config, path);
    unsetenv("HERALD_HEARTBEAT");

    /* HERALD_CONFIG names the file when no flag does */
    setenv("HERALD_CONFIG", path, 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), 0);
    assert_int_equal(cfg.history_max, 11);
    unsetenv("HERALD_CONFIG");
    unlink(path);
}

static void expect_file_bad(const char *text, const char *needle)
{
    hb_cfg_t cfg;
    char err[512] = "";
    const char *path = conf_file(text);
    char *argv[] = {"herald", "--config", (char *)path};
    char where[80];
    assert_int_equal(load(&cfg, err, sizeof(err), 3, argv), HB_EINVAL);
    snprintf(where, sizeof(where), "%s:", path);
    if (!strstr(err, needle) || !strstr(err, where))
        fail_msg("error '%s' lacks '%s' or '%s'", err, needle, where);
    unlink(path);
}

static void test_config_file_errors(void **state)
{
    hb_cfg_t cfg;
    char err[512] = "";
    char *argv[] = {"herald", "--config", "/nonexistent/herald.conf"};
    (void)state;
    expect_file_bad("history-max = 5\nno-such = 1\n", ":2: unknown setting 'no-such'");
    expect_file_bad("\n\nhistory-max = abc\n", ":3: invalid --history-max 'abc'");
    expect_file_bad("history-max = 0\n", ":1: invalid --history-max");
    expect_file_bad("history-max\n", ":1: 'history-max' has no value");
    expect_file_bad("retry-ms = 500\nretry-ms = 600\n", ":2: 'retry-ms' is already set on line 1");
    expect_file_bad("config = /etc/other\n", ":1: 'config' cannot be set");
    expect_file_bad("listen = nohost\n", ":1: invalid --listen");
    expect_file_bad("publish-key = has space\n", ":1: invalid --publish-key");
    assert_int_equal(load(&cfg, err, sizeof(err), 3, argv), HB_EINVAL);
    assert_non_null(strstr(err, "cannot read --config file '/nonexistent/herald.conf'"));
}

static void test_errors_name_the_env_var(void **state)
{
    hb_cfg_t cfg;
    char err[512] = "";
    char *argv[] = {"herald"};
    (void)state;
    setenv("HERALD_RETRY_MS", "fast", 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), HB_EINVAL);
    assert_non_null(strstr(err, "HERALD_RETRY_MS: invalid --retry-ms 'fast'"));
    unsetenv("HERALD_RETRY_MS");
    /* a secret is never echoed */
    setenv("HERALD_PUBLISH_KEY", "top secret", 1);
    assert_int_equal(load(&cfg, err, sizeof(err), 1, argv), HB_EINVAL);
    assert_null(strstr(err, "top secret"));
    assert_non_null(strstr(err, "--publish-key"));
    unsetenv("HERALD_PUBLISH_KEY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flag_beats_env),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_sentinel_url),
        cmocka_unit_test(test_sentinel_url_invalid),
        cmocka_unit_test(test_redis_cluster_seeds),
        cmocka_unit_test(test_limits_at_bounds),
        cmocka_unit_test(test_help_lists_every_env),
        cmocka_unit_test(test_config_file_precedence),
        cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_errors_name_the_env_var),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
