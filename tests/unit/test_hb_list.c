#include "hb_list.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

#include <cmocka.h>

typedef struct item {
    int v;
    hb_list_t node;
} item_t;

static int order(hb_list_t *h, int *out, int cap)
{
    hb_list_t *n, *tmp;
    int k = 0;
    hb_list_foreach_safe(n, tmp, h)
    {
        if (k < cap)
            out[k] = hb_list_container(n, item_t, node)->v;
        k++;
    }
    return k;
}

static void test_push_unlink_pop(void **state)
{
    hb_list_t h;
    item_t it[4];
    int got[4];
    (void)state;
    hb_list_init(&h);
    assert_true(hb_list_empty(&h));
    assert_null(hb_list_first(&h));
    assert_null(hb_list_pop_head(&h));
    for (int i = 0; i < 4; i++) {
        it[i].v = i;
        hb_list_init(&it[i].node);
        assert_false(hb_list_linked(&it[i].node));
    }
    hb_list_push_tail(&h, &it[1].node);
    hb_list_push_tail(&h, &it[2].node);
    hb_list_push_head(&h, &it[0].node);
    hb_list_push_tail(&h, &it[3].node);
    assert_int_equal(order(&h, got, 4), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(got[i], i);
    /* unlink from the middle, the head and the tail; twice is harmless */
    hb_list_unlink(&it[2].node);
    hb_list_unlink(&it[2].node);
    assert_false(hb_list_linked(&it[2].node));
    assert_int_equal(order(&h, got, 4), 3);
    assert_int_equal(got[2], 3);
    assert_ptr_equal(hb_list_pop_head(&h), &it[0].node);
    hb_list_unlink(&it[3].node);
    assert_int_equal(order(&h, got, 4), 1);
    assert_int_equal(got[0], 1);
    assert_ptr_equal(hb_list_pop_head(&h), &it[1].node);
    assert_true(hb_list_empty(&h));
}

static void test_unlink_while_walking(void **state)
{
    hb_list_t h, *n, *tmp;
    item_t it[5];
    int got[5];
    (void)state;
    hb_list_init(&h);
    for (int i = 0; i < 5; i++) {
        it[i].v = i;
        hb_list_push_tail(&h, &it[i].node);
    }
    hb_list_foreach_safe(n, tmp, &h)
    {
        if (hb_list_container(n, item_t, node)->v % 2 == 0)
            hb_list_unlink(n);
    }
    assert_int_equal(order(&h, got, 5), 2);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_unlink_pop),
        cmocka_unit_test(test_unlink_while_walking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
