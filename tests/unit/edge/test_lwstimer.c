/*
 * edge/lwstimer.c: the sorted insert that replaces lws 4.1's own (walks from the tail). Every
 * list it builds must be the list lws' head walk builds: ties, an empty list, a new head, a
 * new tail, a middle node, over random sequences. And it must be the one lws calls: lws
 * reaches it through its PLT, so the definition in this executable is the one that runs when
 * lws schedules its own timers (lws_sul_schedule() on a context).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libwebsockets.h>

typedef struct {
    lws_dll2_t list; /* first, as in lws_sorted_usec_list_t */
    int key, id;
} node_t;

static int by_key(const lws_dll2_t *a, const lws_dll2_t *b)
{
    const node_t *x = (const node_t *)a, *y = (const node_t *)b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* lws 4.1's rule, from its head: before the first node that does not sort before d. */
static void head_walk_insert(lws_dll2_t *d, lws_dll2_owner_t *own)
{
    for (lws_dll2_t *p = lws_dll2_get_head(own); p; p = p->next)
        if (by_key(p, d) >= 0) {
            lws_dll2_add_before(d, p);
            return;
        }
    lws_dll2_add_tail(d, own);
}

static void same_lists(const lws_dll2_owner_t *a, const lws_dll2_owner_t *b)
{
    const lws_dll2_t *p = a->head, *q = b->head;
    assert_int_equal(a->count, b->count);
    for (; p && q; p = p->next, q = q->next) {
        assert_int_equal(((const node_t *)p)->id, ((const node_t *)q)->id);
        assert_ptr_equal(p->owner, a);
        assert_ptr_equal(q->owner, b);
    }
    assert_null(p);
    assert_null(q);
    /* the back links agree with the forward ones */
    p = a->tail;
    for (uint32_t n = a->count; n; n--, p = p->prev)
        assert_non_null(p);
    assert_null(p);
}

static void build_both(const int *keys, size_t n)
{
    node_t *x = calloc(n, sizeof(*x)), *y = calloc(n, sizeof(*y));
    lws_dll2_owner_t ox, oy;
    memset(&ox, 0, sizeof(ox));
    memset(&oy, 0, sizeof(oy));
    assert_non_null(x);
    assert_non_null(y);
    for (size_t i = 0; i < n; i++) {
        x[i].key = y[i].key = keys[i];
        x[i].id = y[i].id = (int)i;
        lws_dll2_add_sorted(&x[i].list, &ox, by_key);
        head_walk_insert(&y[i].list, &oy);
        same_lists(&ox, &oy);
    }
    free(x);
    free(y);
}

static void test_edges_and_ties(void **state)
{
    (void)state;
    static const int later[] = {1, 2, 3, 4, 5};       /* each a new tail: the common case */
    static const int earlier[] = {5, 4, 3, 2, 1};     /* each a new head */
    static const int ties[] = {3, 3, 1, 3, 1, 5, 5, 3}; /* equal keys: after the earlier ones */
    static const int middle[] = {10, 30, 20, 25, 15, 30, 0};
    build_both(later, 5);
    build_both(earlier, 5);
    build_both(ties, 8);
    build_both(middle, 7);
}

static void test_random_sequences(void **state)
{
    (void)state;
    int keys[300];
    srand(17);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (size_t)(rand() % 300);
        int range = 1 + rand() % 50;
        for (size_t i = 0; i < n; i++)
            keys[i] = rand() % range;
        build_both(keys, n);
    }
}

extern unsigned long hb_lwstimer_calls; /* edge/lwstimer.c built with HB_LWSTIMER_COUNT */

static void on_sul(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

/* lws' own timer code (lws_sul_schedule() on a context) reaches this definition, not its copy
 * inside the library: every timer armed was inserted by it. */
static void test_lws_uses_it(void **state)
{
    (void)state;
    struct lws_context_creation_info info;
    struct lws_context *ctx;
    lws_sorted_usec_list_t sul[64];
    unsigned long before;
    memset(&info, 0, sizeof(info));
    memset(sul, 0, sizeof(sul));
    info.port = CONTEXT_PORT_NO_LISTEN;
    lws_set_log_level(LLL_ERR, NULL);
    ctx = lws_create_context(&info);
    assert_non_null(ctx);
    before = hb_lwstimer_calls;
    for (int i = 0; i < 64; i++)
        lws_sul_schedule(ctx, 0, &sul[i], on_sul, (lws_usec_t)(64 - i) * 1000000);
    assert_true(hb_lwstimer_calls - before >= 64);
    /* armed latest first: ours in deadline order, lws' own timers among them */
    int expect = 62;
    for (lws_dll2_t *p = sul[63].list.next; p; p = p->next)
        if (p >= &sul[0].list && p <= &sul[63].list)
            assert_ptr_equal(p, &sul[expect--].list);
    assert_int_equal(expect, -1);
    for (int i = 0; i < 64; i++)
        lws_sul_schedule(ctx, 0, &sul[i], on_sul, LWS_SET_TIMER_USEC_CANCEL);
    lws_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_and_ties),
        cmocka_unit_test(test_random_sequences),
        cmocka_unit_test(test_lws_uses_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
