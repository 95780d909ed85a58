#include "hb_dict.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NKEYS 10000
/* Values are small integers disguised as pointers; + 1 keeps them non-NULL. */
#define VAL(n) ((void *)((uintptr_t)(n) + 1))
#define NUM(p) ((uintptr_t)(p)-1)

static size_t key_of(size_t i, char *buf)
{
    return (size_t)snprintf(buf, 32, "topic/%zu", i);
}

static void test_basic(void **state)
{
    (void)state;
    hb_dict_t *d = hb_dict_new();
    assert_int_equal(hb_dict_size(d), 0);
    assert_null(hb_dict_get(d, "a", 1));
    assert_null(hb_dict_set(d, "a", 1, VAL(1)));
    assert_int_equal(hb_dict_size(d), 1);
    assert_ptr_equal(hb_dict_get(d, "a", 1), VAL(1));
    /* Replace returns the previous value and keeps the size. */
    assert_ptr_equal(hb_dict_set(d, "a", 1, VAL(2)), VAL(1));
    assert_int_equal(hb_dict_size(d), 1);
    assert_ptr_equal(hb_dict_get(d, "a", 1), VAL(2));
    assert_null(hb_dict_del(d, "b", 1));
    assert_ptr_equal(hb_dict_del(d, "a", 1), VAL(2));
    assert_null(hb_dict_del(d, "a", 1));
    assert_int_equal(hb_dict_size(d), 0);
    assert_null(hb_dict_get(d, "a", 1));
    hb_dict_free(d);
    hb_dict_free(NULL);
}

static void test_key_is_copied(void **state)
{
    (void)state;
    hb_dict_t *d = hb_dict_new();
    char k[8] = "abc";
    hb_dict_set(d, k, 3, VAL(1));
    memcpy(k, "xyz", 3);
    assert_ptr_equal(hb_dict_get(d, "abc", 3), VAL(1));
    assert_null(hb_dict_get(d, "xyz", 3));
    hb_dict_free(d);
}

static void test_binary_keys(void **state)
{
    (void)state;
    hb_dict_t *d = hb_dict_new();
    /* Keys differing only after a NUL, prefixes of each other, and the empty key. */
    assert_null(hb_dict_set(d, "a\0b", 3, VAL(1)));
    assert_null(hb_dict_set(d, "a\0c", 3, VAL(2)));
    assert_null(hb_dict_set(d, "a", 1, VAL(3)));
    assert_null(hb_dict_set(d, "a\0", 2, VAL(4)));
    assert_null(hb_dict_set(d, "", 0, VAL(5)));
    assert_null(hb_dict_set(d, "\0\0\0", 3, VAL(6)));
    assert_int_equal(hb_dict_size(d), 6);
    assert_ptr_equal(hb_dict_get(d, "a\0b", 3), VAL(1));
    assert_ptr_equal(hb_dict_get(d, "a\0c", 3), VAL(2));
    assert_ptr_equal(hb_dict_get(d, "a", 1), VAL(3));
    assert_ptr_equal(hb_dict_get(d, "a\0", 2), VAL(4));
    assert_ptr_equal(hb_dict_get(d, NULL, 0), VAL(5));
    assert_ptr_equal(hb_dict_get(d, "\0\0\0", 3), VAL(6));
    assert_null(hb_dict_get(d, "\0\0", 2));
    assert_null(hb_dict_get(d, "a\0d", 3));

    /* Iteration hands back the exact bytes. */
    size_t it = 0, n = 0;
    const void *k;
    size_t klen;
    void *v;
    while (hb_dict_next(d, &it, &k, &klen, &v)) {
        assert_ptr_equal(hb_dict_get(d, k, klen), v);
        if (v == VAL(1))
            assert_memory_equal(k, "a\0b", 3);
        n++;
    }
    assert_int_equal(n, 6);
    assert_ptr_equal(hb_dict_del(d, "a\0", 2), VAL(4));
    assert_ptr_equal(hb_dict_get(d, "a", 1), VAL(3));
    assert_ptr_equal(hb_dict_get(d, "a\0b", 3), VAL(1));
    hb_dict_free(d);
}

static void test_many_keys(void **state)
{
    (void)state;
    hb_dict_t *d = hb_dict_new();
    char k[32];
    for (size_t i = 0; i < NKEYS; i++)
        assert_null(hb_dict_set(d, k, key_of(i, k), VAL(i)));
    assert_int_equal(hb_dict_size(d), NKEYS);
    for (size_t i = 0; i < NKEYS; i++)
        assert_int_equal(NUM(hb_dict_get(d, k, key_of(i, k))), i);
    assert_null(hb_dict_get(d, k, key_of(NKEYS, k)));

    /* Replace every value. */
    for (size_t i = 0; i < NKEYS; i++)
        assert_int_equal(NUM(hb_dict_set(d, k, key_of(i, k), VAL(i + NKEYS))), i);
    assert_int_equal(hb_dict_size(d), NKEYS);

    /* Iteration sees each entry exactly once. */
    unsigned char *seen = calloc(NKEYS, 1);
    size_t it = 0, n = 0;
    void *v;
    while (hb_dict_next(d, &it, NULL, NULL, &v)) {
        size_t i = NUM(v) - NKEYS;
        assert_true(i < NKEYS);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        n++;
    }
    assert_int_equal(n, NKEYS);
    free(seen);

    /* Delete the even keys; the odd ones stay reachable past the tombstones. */
    for (size_t i = 0; i < NKEYS; i += 2)
        assert_int_equal(NUM(hb_dict_del(d, k, key_of(i, k))), i + NKEYS);
    assert_int_equal(hb_dict_size(d), NKEYS / 2);
    for (size_t i = 0; i < NKEYS; i++) {
        void *got = hb_dict_get(d, k, key_of(i, k));
        if (i % 2)
            assert_int_equal(NUM(got), i + NKEYS);
        else
            assert_null(got);
    }
    /* Re-insert and delete repeatedly: tombstones must not pile up into a full table. */
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < NKEYS; i += 2)
            assert_null(hb_dict_set(d, k, key_of(i, k), VAL(i)));
        assert_int_equal(hb_dict_size(d), NKEYS);
        for (size_t i = 0; i < NKEYS; i += 2)
            assert_int_equal(NUM(hb_dict_del(d, k, key_of(i, k))), i);
    }
    for (size_t i = 1; i < NKEYS; i += 2)
        assert_int_equal(NUM(hb_dict_del(d, k, key_of(i, k))), i + NKEYS);
    assert_int_equal(hb_dict_size(d), 0);
    it = 0;
    assert_int_equal(hb_dict_next(d, &it, NULL, NULL, NULL), 0);
    hb_dict_free(d);
}

static void test_delete_current_during_iteration(void **state)
{
    (void)state;
    hb_dict_t *d = hb_dict_new();
    char k[32];
    for (size_t i = 0; i < NKEYS; i++)
        hb_dict_set(d, k, key_of(i, k), VAL(i));
    /* Delete every third entry as it is returned; every entry must still be visited once. */
    unsigned char *seen = calloc(NKEYS, 1);
    size_t it = 0, visited = 0, deleted = 0;
    const void *key;
    size_t klen;
    void *v;
    while (hb_dict_next(d, &it, &key, &klen, &v)) {
        size_t i = NUM(v);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        visited++;
        if (i % 3 == 0) {
            assert_ptr_equal(hb_dict_del(d, key, klen), v);
            deleted++;
        }
    }
    assert_int_equal(visited, NKEYS);
    assert_int_equal(hb_dict_size(d), NKEYS - deleted);
    for (size_t i = 0; i < NKEYS; i++) {
        void *got = hb_dict_get(d, k, key_of(i, k));
        if (i % 3 == 0)
            assert_null(got);
        else
            assert_int_equal(NUM(got), i);
    }
    /* Deleting everything while iterating empties the dict. */
    it = 0;
    while (hb_dict_next(d, &it, &key, &klen, &v))
        assert_ptr_equal(hb_dict_del(d, key, klen), v);
    assert_int_equal(hb_dict_size(d), 0);
    free(seen);
    hb_dict_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_key_is_copied),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_delete_current_during_iteration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
