#include "hb_queue.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>

#include <cmocka.h>

#include "hb_err.h"

/* Items are small integers disguised as pointers; the queue never dereferences them. */
#define ITEM(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((uintptr_t)(p))

static void test_fifo_and_limit(void **state)
{
    (void)state;
    hb_queue_t *q = hb_queue_new(3);
    assert_int_equal(hb_queue_cap(q), 3);
    assert_int_equal(hb_queue_len(q), 0);
    int was_empty = -1;
    assert_int_equal(hb_queue_push(q, ITEM(1), &was_empty), HB_OK);
    assert_int_equal(was_empty, 1);
    assert_int_equal(hb_queue_push(q, ITEM(2), &was_empty), HB_OK);
    assert_int_equal(was_empty, 0);
    assert_int_equal(hb_queue_push(q, ITEM(3), NULL), HB_OK); /* exactly cap */
    assert_int_equal(hb_queue_len(q), 3);
    was_empty = -1;
    assert_int_equal(hb_queue_push(q, ITEM(4), &was_empty), HB_ELIMIT); /* cap + 1 */
    assert_int_equal(was_empty, 0);
    assert_int_equal(hb_queue_len(q), 3);

    void *out[8];
    assert_int_equal(hb_queue_pop(q, out, 8), 3);
    assert_int_equal(NUM(out[0]), 1);
    assert_int_equal(NUM(out[1]), 2);
    assert_int_equal(NUM(out[2]), 3);
    assert_int_equal(hb_queue_len(q), 0);
    assert_int_equal(hb_queue_pop(q, out, 8), 0);
    hb_queue_free(q);
    hb_queue_free(NULL);
}

static void test_pop_max_and_wraparound(void **state)
{
    (void)state;
    hb_queue_t *q = hb_queue_new(4);
    void *out[4];
    uintptr_t next_in = 0;
    uintptr_t next_out = 0;
    /* Many rounds of partial fills walk the head all around the ring. */
    for (int round = 0; round < 20; round++) {
        while (hb_queue_push(q, ITEM(next_in), NULL) == HB_OK)
            next_in++;
        assert_int_equal(hb_queue_len(q), 4);
        size_t n = hb_queue_pop(q, out, (size_t)(round % 3) + 1);
        assert_int_equal(n, (size_t)(round % 3) + 1);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(NUM(out[i]), next_out++);
    }
    assert_int_equal(hb_queue_pop(q, out, 0), 0);
    /* Round 19 popped 2 of 4: fewer than max are left, and pop returns just those. */
    assert_int_equal(hb_queue_len(q), 2);
    size_t n = hb_queue_pop(q, out, 4);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(NUM(out[i]), next_out++);
    assert_int_equal(next_out, next_in);
    hb_queue_free(q);
}

static void test_was_empty_edge_after_drain(void **state)
{
    (void)state;
    hb_queue_t *q = hb_queue_new(1);
    void *out[1];
    int was_empty;
    assert_int_equal(hb_queue_push(q, ITEM(7), &was_empty), HB_OK);
    assert_int_equal(was_empty, 1);
    assert_int_equal(hb_queue_push(q, ITEM(8), &was_empty), HB_ELIMIT);
    assert_int_equal(hb_queue_pop(q, out, 1), 1);
    assert_int_equal(NUM(out[0]), 7);
    assert_int_equal(hb_queue_push(q, ITEM(9), &was_empty), HB_OK);
    assert_int_equal(was_empty, 1);
    hb_queue_free(q);
}

/* The reserve: ordinary pushes stop at cap, reserved ones go on to cap + reserve, in the same
 * FIFO, around the ring; a full ordinary part does not keep a reserved push out. */
static void test_reserve_only_for_reserved_pushes(void **state)
{
    (void)state;
    hb_queue_t *q = hb_queue_new_reserved(3, 2);
    void *out[8];
    uintptr_t next_out = 0;
    assert_int_equal(hb_queue_cap(q), 3);
    for (int round = 0; round < 7; round++) {
        uintptr_t in = next_out;
        for (int i = 0; i < 3; i++)
            assert_int_equal(hb_queue_push(q, ITEM(in++), NULL), HB_OK);
        assert_int_equal(hb_queue_push(q, ITEM(99), NULL), HB_ELIMIT);
        assert_int_equal(hb_queue_push_reserved(q, ITEM(in++), NULL), HB_OK);
        assert_int_equal(hb_queue_push_reserved(q, ITEM(in++), NULL), HB_OK);
        assert_int_equal(hb_queue_push_reserved(q, ITEM(99), NULL), HB_ELIMIT);
        assert_int_equal(hb_queue_push(q, ITEM(99), NULL), HB_ELIMIT);
        assert_int_equal(hb_queue_len(q), 5);
        /* pop a varying share first, so that the head walks the whole ring */
        size_t n = hb_queue_pop(q, out, (size_t)round % 5 + 1);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(NUM(out[i]), next_out++);
        n = hb_queue_pop(q, out, 8);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(NUM(out[i]), next_out++);
        assert_int_equal(next_out, in);
        /* the next round starts the head elsewhere: one ordinary item in and out */
        assert_int_equal(hb_queue_push(q, ITEM(next_out), NULL), HB_OK);
        assert_int_equal(hb_queue_pop(q, out, 8), 1);
        assert_int_equal(NUM(out[0]), next_out++);
    }
    hb_queue_free(q);
}

#define PRODUCERS 4
#define PER_PRODUCER 50000

typedef struct producer {
    hb_queue_t *q;
    uintptr_t id;
    unsigned long full;  /* pushes refused because the queue was full */
    unsigned long edges; /* pushes that found the queue empty */
} producer_t;

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    for (uintptr_t i = 0; i < PER_PRODUCER; i++) {
        int was_empty = 0;
        /* Item encodes (producer, sequence); + 1 keeps it non-NULL. */
        void *item = ITEM((p->id << 24 | i) + 1);
        while (hb_queue_push(p->q, item, &was_empty) == HB_ELIMIT) {
            p->full++;
            sched_yield();
        }
        p->edges += was_empty == 1;
    }
    return NULL;
}

static void test_multi_producer_exact_counts(void **state)
{
    (void)state;
    hb_queue_t *q = hb_queue_new(64);
    producer_t prod[PRODUCERS];
    pthread_t t[PRODUCERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer_t){.q = q, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, producer_main, &prod[i]), 0);
    }
    uintptr_t next_seq[PRODUCERS] = {0};
    size_t total = 0;
    void *out[16];
    while (total < (size_t)PRODUCERS * PER_PRODUCER) {
        size_t n = hb_queue_pop(q, out, 16);
        if (n == 0)
            sched_yield();
        for (size_t i = 0; i < n; i++) {
            uintptr_t v = NUM(out[i]) - 1;
            uintptr_t who = v >> 24;
            uintptr_t seq = v & 0xffffff;
            assert_true(who < PRODUCERS);
            /* Per-producer FIFO: every item exactly once, in push order. */
            assert_int_equal(seq, next_seq[who]);
            next_seq[who]++;
        }
        total += n;
    }
    unsigned long edges = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(next_seq[i], PER_PRODUCER);
        edges += prod[i].edges;
    }
    assert_int_equal(total, (size_t)PRODUCERS * PER_PRODUCER);
    assert_true(edges >= 1);
    assert_int_equal(hb_queue_len(q), 0);
    assert_int_equal(hb_queue_pop(q, out, 16), 0);
    hb_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_limit),
        cmocka_unit_test(test_pop_max_and_wraparound),
        cmocka_unit_test(test_was_empty_edge_after_drain),
        cmocka_unit_test(test_reserve_only_for_reserved_pushes),
        cmocka_unit_test(test_multi_producer_exact_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
