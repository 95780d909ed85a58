#include "hb_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

/* The log goes into a pipe; lines are read back from its non-blocking read end. */
static int pipe_r = -1;
static int pipe_w = -1;
static char acc[1 << 20];
static size_t acc_len;

static void fill(void)
{
    while (acc_len < sizeof(acc)) {
        ssize_t n = read(pipe_r, acc + acc_len, sizeof(acc) - acc_len);
        if (n > 0) {
            acc_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n < 0 && errno == EAGAIN);
        return;
    }
}

/* The next complete line (malloc'd, without its "\n"), or NULL when none is there. */
static char *next_line(void)
{
    fill();
    char *nl = memchr(acc, '\n', acc_len);
    if (nl == NULL)
        return NULL;
    size_t n = (size_t)(nl - acc);
    char *line = malloc(n + 1);
    memcpy(line, acc, n);
    line[n] = '\0';
    memmove(acc, nl + 1, acc_len - n - 1);
    acc_len -= n + 1;
    return line;
}

/* Exactly one line must be waiting: parse it as a JSON object. */
static json_t *one_line(void)
{
    char *line = next_line();
    assert_non_null(line);
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    assert_non_null(j);
    assert_true(json_is_object(j));
    free(line);
    assert_null(next_line());
    return j;
}

static void no_line(void)
{
    char *line = next_line();
    if (line != NULL)
        fail_msg("unexpected log line: %s", line);
}

static const char *str_field(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static int setup(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pipe_r = fds[0];
    pipe_w = fds[1];
    assert_int_equal(fcntl(pipe_r, F_SETFL, O_NONBLOCK), 0);
    acc_len = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(pipe_r);
    close(pipe_w);
    return 0;
}

static void test_defaults_before_init(void **state)
{
    (void)state;
    assert_int_equal(hb_log_enabled(HB_LOG_DEBUG), 0);
    assert_int_equal(hb_log_enabled(HB_LOG_INFO), 1);
    /* Default output is fd 2: point it at the pipe for one line. */
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(pipe_w, 2), 2);
    hb_log(HB_LOG_INFO, "test", "to stderr", NULL);
    hb_log(HB_LOG_DEBUG, "test", "filtered", NULL);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    json_t *j = one_line();
    assert_string_equal(str_field(j, "node"), "");
    assert_string_equal(str_field(j, "msg"), "to stderr");
    json_decref(j);
}

static void test_fields_present(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "edge-1", pipe_w);
    hb_log(HB_LOG_WARN, "broker", "redis connected", "{s:s, s:i}", "topic", "news/eu", "n", 3);
    char *line = next_line();
    assert_non_null(line);
    /* Fixed field order: ts first. */
    assert_memory_equal(line, "{\"ts\":\"", 7);
    json_t *j = json_loads(line, 0, NULL);
    free(line);
    assert_non_null(j);
    const char *ts = str_field(j, "ts");
    /* 2026-11-25T06:09:00.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' &&
                ts[19] == '.' && ts[23] == 'Z');
    for (int i = 0; i < 23; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19)
            assert_true(ts[i] >= '0' && ts[i] <= '9');
    assert_string_equal(str_field(j, "level"), "warn");
    assert_string_equal(str_field(j, "node"), "edge-1");
    assert_string_equal(str_field(j, "mod"), "broker");
    assert_string_equal(str_field(j, "msg"), "redis connected");
    assert_string_equal(str_field(j, "topic"), "news/eu");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 3);
    assert_int_equal(json_object_size(j), 7);
    json_decref(j);
    no_line();

    hb_log(HB_LOG_ERROR, "m", "no fields", NULL);
    j = one_line();
    assert_int_equal(json_object_size(j), 5);
    assert_string_equal(str_field(j, "level"), "error");
    json_decref(j);
}

static void test_level_filtering(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_WARN, "n", pipe_w);
    assert_int_equal(hb_log_enabled(HB_LOG_DEBUG), 0);
    assert_int_equal(hb_log_enabled(HB_LOG_INFO), 0);
    assert_int_equal(hb_log_enabled(HB_LOG_WARN), 1);
    assert_int_equal(hb_log_enabled(HB_LOG_ERROR), 1);
    hb_log_debug("m", "d", NULL);
    hb_log_info("m", "i", NULL);
    no_line();
    hb_log_warn("m", "w", NULL);
    json_t *j = one_line();
    assert_string_equal(str_field(j, "msg"), "w");
    json_decref(j);
    hb_log_error("m", "e", "{s:s}", "err", "boom");
    j = one_line();
    assert_string_equal(str_field(j, "level"), "error");
    assert_string_equal(str_field(j, "err"), "boom");
    json_decref(j);

    hb_log_init(HB_LOG_DEBUG, "n", pipe_w);
    hb_log_debug("m", "d", NULL);
    j = one_line();
    assert_string_equal(str_field(j, "level"), "debug");
    json_decref(j);

    assert_int_equal(hb_log_level_parse("debug"), HB_LOG_DEBUG);
    assert_int_equal(hb_log_level_parse("info"), HB_LOG_INFO);
    assert_int_equal(hb_log_level_parse("warn"), HB_LOG_WARN);
    assert_int_equal(hb_log_level_parse("error"), HB_LOG_ERROR);
    assert_int_equal(hb_log_level_parse("warning"), -1);
    assert_int_equal(hb_log_level_parse("INFO"), -1);
    assert_int_equal(hb_log_level_parse(""), -1);
    assert_int_equal(hb_log_level_parse(NULL), -1);
}

static void test_escaping(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n\"1", pipe_w);
    const char *nasty = "say \"hi\"\n\r\t\x01\x1f\\ end";
    hb_log(HB_LOG_INFO, "m", nasty, "{s:s}", "topic", "\x7f\"}{\n");
    fill();
    /* The only control byte on the wire is the final newline. */
    char *nl = memchr(acc, '\n', acc_len);
    assert_non_null(nl);
    for (char *p = acc; p < nl; p++)
        assert_true((unsigned char)*p >= 0x20);
    json_t *j = one_line();
    assert_string_equal(str_field(j, "msg"), nasty);
    assert_string_equal(str_field(j, "topic"), "\x7f\"}{\n");
    assert_string_equal(str_field(j, "node"), "n\"1");
    json_decref(j);

    /* Invalid UTF-8 still gives a valid line, with the bad bytes replaced. */
    hb_log(HB_LOG_INFO, "m", "bad \xff\xfe utf8", NULL);
    j = one_line();
    assert_string_equal(str_field(j, "msg"), "bad ?? utf8");
    json_decref(j);
}

static void test_pack_error_and_reserved_fields(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    hb_log(HB_LOG_INFO, "m", "still written", "{s:q}", "k");
    json_t *j = one_line();
    assert_string_equal(str_field(j, "msg"), "still written");
    assert_true(strlen(str_field(j, "log_error")) > 0);
    assert_null(json_object_get(j, "k"));
    json_decref(j);

    hb_log(HB_LOG_INFO, "m", "array", "[i]", 1);
    j = one_line();
    assert_string_equal(str_field(j, "log_error"), "fields is not an object");
    json_decref(j);

    /* Context fields never overwrite the fixed ones. */
    hb_log(HB_LOG_INFO, "m", "real", "{s:s, s:s, s:s}", "msg", "fake", "level", "error", "x", "y");
    j = one_line();
    assert_string_equal(str_field(j, "msg"), "real");
    assert_string_equal(str_field(j, "level"), "info");
    assert_string_equal(str_field(j, "x"), "y");
    json_decref(j);
}

static void test_long_line(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    char *msg = malloc(10001);
    memset(msg, 'x', 10000);
    msg[10000] = '\0';
    hb_log(HB_LOG_INFO, "m", msg, NULL);
    json_t *j = one_line();
    assert_string_equal(str_field(j, "msg"), msg);
    json_decref(j);
    free(msg);
}

static void test_ratelimit_suppresses(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    hb_log_ratelimited("site-a", 600000, HB_LOG_WARN, "m", "first", "{s:i}", "n", 1);
    json_t *j = one_line();
    assert_string_equal(str_field(j, "msg"), "first");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 1);
    assert_null(json_object_get(j, "suppressed"));
    json_decref(j);
    for (int i = 0; i < 5; i++)
        hb_log_ratelimited("site-a", 600000, HB_LOG_WARN, "m", "again", NULL);
    no_line();
    /* Another key has its own budget; a filtered level does nothing. */
    hb_log_ratelimited("site-b", 600000, HB_LOG_WARN, "m", "other", NULL);
    j = one_line();
    assert_string_equal(str_field(j, "msg"), "other");
    json_decref(j);
    hb_log_ratelimited("site-c", 600000, HB_LOG_DEBUG, "m", "filtered", NULL);
    no_line();
    hb_log_ratelimited("site-c", 600000, HB_LOG_WARN, "m", "c", NULL);
    j = one_line();
    assert_null(json_object_get(j, "suppressed"));
    json_decref(j);
    /* Re-initialising starts with a clean table. */
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    hb_log_ratelimited("site-a", 600000, HB_LOG_WARN, "m", "after init", NULL);
    j = one_line();
    assert_null(json_object_get(j, "suppressed"));
    json_decref(j);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_ratelimit_reports_suppressed(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    /*
     * Every call either writes a line or is counted; each line written must carry exactly the
     * number of calls dropped since the previous one. That holds however the calls fall in
     * time; the loop only runs until a line with a count has been seen.
     */
    unsigned dropped = 0;
    int lines = 0;
    int reported = 0;
    int64_t deadline = mono_ms() + 20000;
    while (!reported) {
        assert_true(mono_ms() < deadline);
        hb_log_ratelimited("burst", 20, HB_LOG_ERROR, "m", "burst", NULL);
        char *line = next_line();
        if (line == NULL) {
            dropped++;
            continue;
        }
        json_t *j = json_loads(line, 0, NULL);
        free(line);
        assert_non_null(j);
        json_t *s = json_object_get(j, "suppressed");
        if (lines == 0 || dropped == 0) {
            assert_null(s);
        } else {
            assert_non_null(s);
            assert_int_equal(json_integer_value(s), dropped);
            reported = 1;
        }
        json_decref(j);
        lines++;
        dropped = 0;
    }
    assert_true(lines >= 2);
}

static void sleep_until(int64_t t)
{
    int64_t now;
    while ((now = mono_ms()) < t)
        poll(NULL, 0, (int)(t - now));
}

/* One written line is expected: return its "suppressed" count (0 when absent). */
static json_int_t written_suppressed(void)
{
    json_t *j = one_line();
    json_t *s = json_object_get(j, "suppressed");
    json_int_t n = 0;
    if (s != NULL) {
        assert_true(json_is_integer(s));
        n = json_integer_value(s);
        assert_true(n > 0); /* never "suppressed":0 */
    }
    json_decref(j);
    return n;
}

static const char *const exact_keys[] = {"exact-0", "exact-1", "exact-2", "exact-3", "exact-4",
                                         "exact-5", "exact-6", "exact-7", "exact-8", "exact-9"};

/*
 * Drop exactly 1, then exactly 3 lines, and check each count. A batch is known to be dropped
 * when it ran within the interval of the line before it (measured from before that call);
 * otherwise the attempt is inconclusive and is redone with a fresh key.
 */
static void test_ratelimit_exact_counts(void **state)
{
    (void)state;
    const unsigned interval = 200;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    for (size_t a = 0; a < sizeof(exact_keys) / sizeof(exact_keys[0]); a++) {
        const char *key = exact_keys[a];
        int64_t tw = mono_ms();
        hb_log_ratelimited(key, interval, HB_LOG_INFO, "m", "x", NULL);
        assert_int_equal(written_suppressed(), 0);
        int conclusive = 1;
        const int batches[] = {1, 3};
        for (int b = 0; b < 2 && conclusive; b++) {
            for (int i = 0; i < batches[b]; i++)
                hb_log_ratelimited(key, interval, HB_LOG_INFO, "m", "x", NULL);
            int64_t td = mono_ms();
            if (td - tw >= interval) {
                conclusive = 0;
                break;
            }
            no_line();
            sleep_until(td + interval + 1);
            tw = mono_ms();
            hb_log_ratelimited(key, interval, HB_LOG_INFO, "m", "x", NULL);
            /* The count restarts after each report: 1, then 3 (not 4). */
            assert_int_equal(written_suppressed(), batches[b]);
        }
        while (!conclusive) {
            char *line = next_line(); /* drain whatever an inconclusive attempt wrote */
            if (line == NULL)
                break;
            free(line);
        }
        if (conclusive)
            return;
    }
    fail_msg("no conclusive attempt: the machine is too slow for a 200 ms interval");
}

static char many_keys[1000][16];

static void test_ratelimit_table_full(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    /* Distinct keys each get a line until the table is full; the rest share one budget. */
    int written[1000];
    for (int i = 0; i < 1000; i++) {
        snprintf(many_keys[i], sizeof(many_keys[i]), "key-%d", i);
        hb_log_ratelimited(many_keys[i], 600000, HB_LOG_INFO, "m", "k", NULL);
        char *line = next_line();
        written[i] = line != NULL;
        free(line);
    }
    int prefix = 0;
    while (prefix < 1000 && written[prefix])
        prefix++;
    assert_true(prefix >= 2 && prefix < 1000);
    for (int i = prefix; i < 1000; i++)
        assert_int_equal(written[i], 0);
    /* Keys in the table are still limited on their own. */
    hb_log_ratelimited(many_keys[0], 600000, HB_LOG_INFO, "m", "k", NULL);
    no_line();
}

#define LOG_THREADS 4
#define LOG_PER_THREAD 500

static void *log_worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    for (int i = 0; i < LOG_PER_THREAD; i++)
        hb_log(HB_LOG_INFO, "thr", "line", "{s:i, s:i}", "t", (int)id, "i", i);
    return NULL;
}

static void test_threads_whole_lines(void **state)
{
    (void)state;
    hb_log_init(HB_LOG_INFO, "n", pipe_w);
    pthread_t t[LOG_THREADS];
    for (intptr_t i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)i), 0);
    int next[LOG_THREADS] = {0};
    int total = 0;
    int64_t deadline = mono_ms() + 30000;
    while (total < LOG_THREADS * LOG_PER_THREAD) {
        assert_true(mono_ms() < deadline);
        char *line = next_line();
        if (line == NULL) {
            struct pollfd p = {.fd = pipe_r, .events = POLLIN};
            poll(&p, 1, 100);
            continue;
        }
        json_t *j = json_loads(line, 0, NULL);
        free(line);
        assert_non_null(j); /* never interleaved */
        int who = (int)json_integer_value(json_object_get(j, "t"));
        assert_true(who >= 0 && who < LOG_THREADS);
        assert_int_equal(json_integer_value(json_object_get(j, "i")), next[who]);
        next[who]++;
        total++;
        json_decref(j);
    }
    for (int i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    no_line();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_before_init), /* must run first */
        cmocka_unit_test(test_fields_present),
        cmocka_unit_test(test_level_filtering),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_pack_error_and_reserved_fields),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_ratelimit_suppresses),
        cmocka_unit_test(test_ratelimit_reports_suppressed),
        cmocka_unit_test(test_ratelimit_exact_counts),
        cmocka_unit_test(test_ratelimit_table_full),
        cmocka_unit_test(test_threads_whole_lines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
