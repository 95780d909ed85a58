#include "hb_mem.h"

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void test_memdup_terminates(void **state)
{
    (void)state;
    char *s = hb_xmemdup("a\0bc", 4);
    assert_memory_equal(s, "a\0bc", 4);
    assert_int_equal(s[4], '\0');
    free(s);
    s = hb_xmemdup(NULL, 0);
    assert_non_null(s);
    assert_int_equal(s[0], '\0');
    free(s);
}

static void test_strdup_calloc_realloc(void **state)
{
    (void)state;
    char *s = hb_xstrdup("herald");
    assert_string_equal(s, "herald");
    s = hb_xrealloc(s, 64);
    assert_string_equal(s, "herald"); /* contents kept */
    free(s);

    unsigned char *z = hb_xcalloc(16, 4);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    free(z);
    /* Zero sizes still give a pointer that free() accepts. */
    free(hb_xmalloc(0));
    free(hb_xcalloc(0, 8));
    free(hb_xrealloc(NULL, 0));
}

static void test_calloc_overflow_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* n * sz wraps around: must abort rather than return a short block. */
        void *p = hb_xcalloc(SIZE_MAX / 2 + 2, 2);
        (void)p;
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memdup_terminates),
        cmocka_unit_test(test_strdup_calloc_realloc),
        cmocka_unit_test(test_calloc_overflow_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
