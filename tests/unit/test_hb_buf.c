#include "hb_buf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

static void test_new_is_empty_with_one_ref(void **state)
{
    (void)state;
    hb_buf_t *b = hb_buf_new(10, 0);
    assert_non_null(b);
    assert_int_equal(hb_buf_len(b), 0);
    assert_int_equal(b->cap, 10);
    assert_int_equal(hb_buf_refs(b), 1);
    assert_ptr_equal(hb_buf_data(b), b->mem);
    hb_buf_unref(b);
}

static void test_headroom_offsets_data(void **state)
{
    (void)state;
    hb_buf_t *b = hb_buf_new(4, 16);
    assert_non_null(b);
    assert_ptr_equal(hb_buf_data(b), b->mem + 16);
    assert_int_equal(hb_buf_append(b, "abcd", 4), HB_OK);
    assert_memory_equal(b->mem + 16, "abcd", 4);
    /* The headroom is writable (lws writes its frame header there). */
    memset(b->mem, 0xaa, 16);
    assert_memory_equal(hb_buf_data(b), "abcd", 4);
    hb_buf_unref(b);
}

static void test_append_at_cap_and_cap_plus_one(void **state)
{
    (void)state;
    hb_buf_t *b = hb_buf_new(5, 0);
    assert_int_equal(hb_buf_append(b, "ab", 2), HB_OK);
    assert_int_equal(hb_buf_append(b, "cde", 3), HB_OK); /* exactly cap */
    assert_int_equal(hb_buf_len(b), 5);
    assert_memory_equal(hb_buf_data(b), "abcde", 5);
    assert_int_equal(hb_buf_append(b, "f", 1), HB_ELIMIT);
    assert_int_equal(hb_buf_len(b), 5);
    assert_int_equal(hb_buf_append(b, "", 0), HB_OK);
    assert_int_equal(hb_buf_len(b), 5);
    hb_buf_unref(b);

    /* A too-long append writes nothing at all. */
    b = hb_buf_new(4, 0);
    assert_int_equal(hb_buf_append(b, "xy", 2), HB_OK);
    assert_int_equal(hb_buf_append(b, "123", 3), HB_ELIMIT);
    assert_int_equal(hb_buf_len(b), 2);
    assert_int_equal(hb_buf_append(b, "12", 2), HB_OK);
    assert_memory_equal(hb_buf_data(b), "xy12", 4);
    hb_buf_unref(b);
}

static void test_zero_cap(void **state)
{
    (void)state;
    hb_buf_t *b = hb_buf_new(0, 0);
    assert_non_null(b);
    assert_int_equal(hb_buf_append(b, NULL, 0), HB_OK);
    assert_int_equal(hb_buf_append(b, "a", 1), HB_ELIMIT);
    hb_buf_unref(b);
}

static void test_from_copies(void **state)
{
    (void)state;
    char src[] = {'a', '\0', 'b'};
    hb_buf_t *b = hb_buf_from(src, sizeof(src));
    assert_non_null(b);
    src[0] = 'z';
    assert_int_equal(hb_buf_len(b), 3);
    assert_int_equal(b->headroom, 0);
    assert_memory_equal(hb_buf_data(b), "a\0b", 3);
    /* Built full: nothing more fits. */
    assert_int_equal(hb_buf_append(b, "c", 1), HB_ELIMIT);
    hb_buf_unref(b);

    b = hb_buf_from(NULL, 0);
    assert_non_null(b);
    assert_int_equal(hb_buf_len(b), 0);
    hb_buf_unref(b);
}

static void test_size_overflow_rejected(void **state)
{
    (void)state;
    assert_null(hb_buf_new(SIZE_MAX, 1));
    assert_null(hb_buf_new(1, SIZE_MAX));
    assert_null(hb_buf_new(SIZE_MAX - 8, 0));
    assert_null(hb_buf_new(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1));
}

static void test_ref_unref_counts(void **state)
{
    (void)state;
    hb_buf_t *b = hb_buf_from("x", 1);
    assert_ptr_equal(hb_buf_ref(b), b);
    assert_ptr_equal(hb_buf_ref(b), b);
    assert_int_equal(hb_buf_refs(b), 3);
    hb_buf_unref(b);
    assert_int_equal(hb_buf_refs(b), 2);
    hb_buf_unref(b);
    assert_int_equal(hb_buf_refs(b), 1);
    hb_buf_unref(b); /* freed: the leak checker would report it otherwise */
    hb_buf_unref(NULL);
}

#define REF_THREADS 4
#define REF_ROUNDS 100000

static void *ref_worker(void *arg)
{
    hb_buf_t *b = arg;
    for (int i = 0; i < REF_ROUNDS; i++) {
        hb_buf_ref(b);
        hb_buf_unref(b);
    }
    return NULL;
}

static void test_refcount_across_threads(void **state)
{
    (void)state;
    hb_buf_t *b = hb_buf_from("shared", 6);
    pthread_t t[REF_THREADS];
    for (int i = 0; i < REF_THREADS; i++) {
        hb_buf_ref(b); /* one ref handed to each thread, released by it below */
        assert_int_equal(pthread_create(&t[i], NULL, ref_worker, b), 0);
    }
    for (int i = 0; i < REF_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        hb_buf_unref(b);
    }
    assert_int_equal(hb_buf_refs(b), 1);
    hb_buf_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_is_empty_with_one_ref),
        cmocka_unit_test(test_headroom_offsets_data),
        cmocka_unit_test(test_append_at_cap_and_cap_plus_one),
        cmocka_unit_test(test_zero_cap),
        cmocka_unit_test(test_from_copies),
        cmocka_unit_test(test_size_overflow_rejected),
        cmocka_unit_test(test_ref_unref_counts),
        cmocka_unit_test(test_refcount_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
