/*
 * edge/lwslog.c: lws' logging with the level tested first. What lws would print is still
 * printed (through lws' own _lws_logv() and the emit function set), what it would not is not,
 * a level set later is followed, and lws' own calls (inside the library) reach this definition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <libwebsockets.h>

extern unsigned long hb_lwslog_calls; /* edge/lwslog.c built with HB_LWSLOG_COUNT */

static char seen[16][256];
static int nseen;

static void emit(int level, const char *line)
{
    (void)level;
    if (nseen < 16)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", line);
}

static int seen_has(const char *s)
{
    for (int i = 0; i < nseen; i++)
        if (strstr(seen[i], s))
            return 1;
    return 0;
}

static void test_levels(void **state)
{
    (void)state;
    nseen = 0;
    lws_set_log_level(LLL_ERR | LLL_WARN, emit);
    _lws_log(LLL_ERR, "an error %d\n", 42);
    _lws_log(LLL_WARN, "a warning %s\n", "w");
    _lws_log(LLL_INFO, "not shown %d\n", 1);
    _lws_log(LLL_PARSER, "not shown either '%c'\n", 'x');
    assert_int_equal(nseen, 2);
    assert_true(seen_has("an error 42"));
    assert_true(seen_has("a warning w"));
    lws_set_log_level(LLL_ERR | LLL_INFO, emit); /* a later level is followed */
    _lws_log(LLL_INFO, "now shown %d\n", 7);
    _lws_log(LLL_WARN, "now hidden\n");
    assert_int_equal(nseen, 3);
    assert_true(seen_has("now shown 7"));
}

/* lws' own calls reach this definition: a context's creation logs (notices among them) */
static void test_lws_uses_it(void **state)
{
    (void)state;
    struct lws_context_creation_info info;
    struct lws_context *ctx;
    unsigned long before;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    nseen = 0;
    lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE, emit);
    before = hb_lwslog_calls;
    ctx = lws_create_context(&info);
    assert_non_null(ctx);
    lws_context_destroy(ctx);
    assert_true(hb_lwslog_calls > before);
    assert_true(nseen > 0); /* its notices still printed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_lws_uses_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
