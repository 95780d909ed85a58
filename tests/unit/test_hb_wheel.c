#include "hb_wheel.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

typedef struct {
    hb_wheel_node_t node; /* first: the fire callback casts back */
    int fired;
    uint64_t at;    /* the wheel's clock when it fired */
    uint64_t rearm; /* re-arm this many ticks later when fired (0: no) */
} tmr_t;

typedef struct {
    hb_wheel_t *w;
    tmr_t *cancel; /* cancelled by the first callback */
} ctx_t;

static void on_fire(hb_wheel_node_t *n, void *arg)
{
    ctx_t *x = arg;
    tmr_t *t = (tmr_t *)n;
    assert_false(hb_wheel_armed(n));
    t->fired++;
    t->at = x->w->now;
    if (x->cancel) {
        hb_wheel_cancel(x->w, &x->cancel->node);
        x->cancel = NULL;
    }
    if (t->rearm)
        hb_wheel_arm(x->w, n, x->w->now + t->rearm);
}

static hb_wheel_t wheel;

static void test_fires_when_due(void **state)
{
    (void)state;
    tmr_t a = {0}, b = {0};
    ctx_t x = {&wheel, NULL};
    hb_wheel_init(&wheel, 100);
    hb_wheel_arm(&wheel, &a.node, 103);
    hb_wheel_arm(&wheel, &b.node, 105);
    assert_int_equal(wheel.count, 2);
    assert_int_equal(hb_wheel_advance(&wheel, 102, on_fire, &x), 0);
    assert_int_equal(hb_wheel_advance(&wheel, 103, on_fire, &x), 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.at, 103);
    assert_int_equal(b.fired, 0);
    /* a jump over several ticks fires what passed */
    assert_int_equal(hb_wheel_advance(&wheel, 110, on_fire, &x), 1);
    assert_int_equal(b.fired, 1);
    assert_int_equal(wheel.count, 0);
    assert_int_equal(hb_wheel_advance(&wheel, 400, on_fire, &x), 0);
}

static void test_far_timer_waits_for_its_turn(void **state)
{
    (void)state;
    tmr_t a = {0};
    ctx_t x = {&wheel, NULL};
    hb_wheel_init(&wheel, 0);
    /* same slot as tick 10, three turns later */
    hb_wheel_arm(&wheel, &a.node, 10 + 3 * HB_WHEEL_SLOTS);
    for (uint64_t t = 1; t < 10 + 3 * HB_WHEEL_SLOTS; t++)
        assert_int_equal(hb_wheel_advance(&wheel, t, on_fire, &x), 0);
    assert_int_equal(hb_wheel_advance(&wheel, 10 + 3 * HB_WHEEL_SLOTS, on_fire, &x), 1);
    /* and over a gap longer than a turn */
    hb_wheel_arm(&wheel, &a.node, wheel.now + 5 * HB_WHEEL_SLOTS + 7);
    assert_int_equal(hb_wheel_advance(&wheel, wheel.now + 5 * HB_WHEEL_SLOTS, on_fire, &x), 0);
    assert_int_equal(hb_wheel_advance(&wheel, wheel.now + 10 * HB_WHEEL_SLOTS, on_fire, &x), 1);
    assert_int_equal(a.fired, 2);
}

static void test_past_due_and_rearm_for_now(void **state)
{
    (void)state;
    tmr_t a = {0}, b = {0};
    ctx_t x = {&wheel, NULL};
    hb_wheel_init(&wheel, 50);
    hb_wheel_arm(&wheel, &a.node, 10); /* in the past: the next advance, even without a tick */
    assert_int_equal(hb_wheel_advance(&wheel, 50, on_fire, &x), 1);
    assert_int_equal(a.fired, 1);
    /* a callback that re-arms for a tick already passed does not loop in this advance */
    b.rearm = 0;
    hb_wheel_arm(&wheel, &b.node, 51);
    b.rearm = (uint64_t)-51; /* now + rearm wraps to 0: "long ago" */
    assert_int_equal(hb_wheel_advance(&wheel, 51, on_fire, &x), 1);
    assert_true(hb_wheel_armed(&b.node));
    b.rearm = 0;
    assert_int_equal(hb_wheel_advance(&wheel, 52, on_fire, &x), 1);
    assert_int_equal(b.fired, 2);
    /* the clock does not go back */
    assert_int_equal(hb_wheel_advance(&wheel, 10, on_fire, &x), 0);
    assert_int_equal(wheel.now, 52);
}

static void test_cancel_and_move(void **state)
{
    (void)state;
    tmr_t a = {0}, b = {0}, c = {0};
    ctx_t x = {&wheel, NULL};
    hb_wheel_init(&wheel, 0);
    hb_wheel_cancel(&wheel, &a.node); /* not armed: nothing */
    hb_wheel_arm(&wheel, &a.node, 5);
    hb_wheel_arm(&wheel, &a.node, 9); /* moved, counted once */
    assert_int_equal(wheel.count, 1);
    hb_wheel_arm(&wheel, &b.node, 9);
    hb_wheel_arm(&wheel, &c.node, 9);
    hb_wheel_cancel(&wheel, &c.node);
    assert_false(hb_wheel_armed(&c.node));
    assert_int_equal(wheel.count, 2);
    assert_int_equal(hb_wheel_advance(&wheel, 8, on_fire, &x), 0);
    /* the first callback cancels the other one due in the same tick: it does not fire */
    x.cancel = &b;
    assert_int_equal(hb_wheel_advance(&wheel, 9, on_fire, &x), 1);
    assert_int_equal(a.fired + b.fired, 1);
    assert_int_equal(c.fired, 0);
    assert_int_equal(wheel.count, 0);
}

static void test_many_periodic(void **state)
{
    (void)state;
    enum { N = 1000 };
    static tmr_t t[N];
    ctx_t x = {&wheel, NULL};
    size_t total = 0;
    memset(t, 0, sizeof(t));
    hb_wheel_init(&wheel, 0);
    for (int i = 0; i < N; i++) {
        t[i].rearm = 4 + (uint64_t)(i % 7);
        hb_wheel_arm(&wheel, &t[i].node, 1 + (uint64_t)(i % 300));
    }
    for (uint64_t now = 1; now <= 2000; now++)
        total += hb_wheel_advance(&wheel, now, on_fire, &x);
    for (int i = 0; i < N; i++) {
        /* first at 1 + i % 300, then every rearm ticks, never late */
        uint64_t first = 1 + (uint64_t)(i % 300);
        assert_int_equal(t[i].fired, 1 + (2000 - first) / t[i].rearm);
    }
    assert_int_equal(wheel.count, N);
    (void)total;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_when_due),
        cmocka_unit_test(test_far_timer_waits_for_its_turn),
        cmocka_unit_test(test_past_due_and_rearm_for_now),
        cmocka_unit_test(test_cancel_and_move),
        cmocka_unit_test(test_many_periodic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
