#include "hb_rawq.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

/* Pushes topic "t" with payload s, seq = its number. */
static int push(hb_rawq_t *q, const char *s, unsigned long long seq)
{
    return hb_rawq_push(q, "t", 1, s, strlen(s), (double)seq, seq);
}

/* Asserts the queue holds exactly the payloads of want (comma separated, "" = empty), in
 * order, and that count, bytes (topic "t" each) and tail agree with them. */
static void expect(const hb_rawq_t *q, const char *want)
{
    char got[512] = "";
    size_t n = 0, bytes = 0, off = 0;
    const hb_rawmsg_t *last = NULL;
    for (const hb_rawmsg_t *m = q->head; m; m = m->next) {
        off += (size_t)snprintf(got + off, sizeof(got) - off, "%s%.*s", n ? "," : "", (int)m->plen,
                                hb_rawmsg_payload(m));
        n++;
        bytes += m->tlen + m->plen;
        last = m;
    }
    assert_string_equal(got, want);
    assert_int_equal(q->count, n);
    assert_int_equal(q->bytes, bytes);
    assert_ptr_equal(q->tail, last);
}

static void test_empty(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 4, 100);
    expect(&q, "");
    assert_null(hb_rawq_unlink_head(&q));
    hb_rawq_drop_head(&q); /* no-op */
    assert_int_equal(hb_rawq_take(&q, "t", 1, "a", 1), 0);
    assert_int_equal(hb_rawq_drop_upto(&q, 100), 0);
    hb_rawq_clear(&q);
    expect(&q, "");
    assert_null(q.mark);
    hb_rawmsg_free(NULL);
}

static void test_fifo_and_message(void **state)
{
    hb_rawq_t q;
    hb_rawmsg_t *m;
    (void)state;
    hb_rawq_init(&q, 0, 0);
    assert_int_equal(hb_rawq_push(&q, "topic", 5, "payload", 7, 1.5, 9), 0);
    assert_int_equal(push(&q, "b", 10), 0);
    expect(&q, "payload,b");
    m = hb_rawq_unlink_head(&q);
    assert_non_null(m);
    assert_null(m->next);
    assert_int_equal(m->tlen, 5);
    assert_int_equal(m->plen, 7);
    assert_memory_equal(hb_rawmsg_topic(m), "topic", 5);
    assert_memory_equal(hb_rawmsg_payload(m), "payload", 7);
    assert_true(m->ts == 1.5);
    assert_int_equal(m->seq, 9);
    expect(&q, "b");
    hb_rawq_append(&q, m); /* the unbounded append of a batch */
    expect(&q, "b,payload");
    hb_rawq_clear(&q);
    expect(&q, "");
    /* empty topic and payload */
    assert_int_equal(hb_rawq_push(&q, "", 0, "", 0, 0, 1), 0);
    assert_int_equal(q.count, 1);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(hb_rawq_take(&q, "", 0, "", 0), 1);
    expect(&q, "");
    /* sizes that overflow are refused, not allocated */
    assert_null(hb_rawmsg_new("t", SIZE_MAX, "p", 1, 0, 0));
    assert_null(hb_rawmsg_new("t", 1, "p", SIZE_MAX - 2, 0, 0));
}

static void test_count_bound(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 3, 0);
    assert_int_equal(push(&q, "a", 1), 0);
    assert_int_equal(push(&q, "b", 2), 0);
    assert_int_equal(push(&q, "c", 3), 0); /* exactly the bound */
    expect(&q, "a,b,c");
    assert_int_equal(push(&q, "d", 4), HB_ELIMIT); /* bound + 1: the oldest goes */
    expect(&q, "b,c,d");
    assert_int_equal(push(&q, "e", 5), HB_ELIMIT);
    expect(&q, "c,d,e");
    hb_rawq_clear(&q);
}

static void test_byte_bound(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 0, 10); /* topic "t" + payload: "xxxx" is 5 bytes */
    assert_int_equal(push(&q, "aaaa", 1), 0);
    assert_int_equal(push(&q, "bbbb", 2), 0); /* exactly 10 bytes */
    expect(&q, "aaaa,bbbb");
    assert_int_equal(q.bytes, 10);
    assert_int_equal(push(&q, "c", 3), HB_ELIMIT); /* 11: the oldest goes */
    expect(&q, "bbbb,c");
    assert_int_equal(push(&q, "dd", 4), 0); /* 5 + 2 + 3 = 10: at the bound */
    expect(&q, "bbbb,c,dd");
    assert_int_equal(q.bytes, 10);
    assert_int_equal(push(&q, "e", 5), HB_ELIMIT); /* 12 would go over: bbbb goes, 7 */
    expect(&q, "c,dd,e");
    assert_int_equal(q.bytes, 7);
    hb_rawq_clear(&q);
}

static void test_byte_bound_exact(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 0, 10);
    assert_int_equal(push(&q, "aaaa", 1), 0);
    assert_int_equal(push(&q, "bbb", 2), 0); /* 9 bytes */
    assert_int_equal(push(&q, "", 3), 0);    /* 10: at the bound, nothing forgotten */
    expect(&q, "aaaa,bbb,");
    assert_int_equal(push(&q, "", 4), HB_ELIMIT); /* 11 */
    expect(&q, "bbb,,");
    /* one entry larger than the whole bound: everything older goes, it stays */
    assert_int_equal(push(&q, "0123456789", 5), HB_ELIMIT);
    expect(&q, "0123456789");
    assert_int_equal(push(&q, "z", 6), HB_ELIMIT);
    expect(&q, "z");
    hb_rawq_clear(&q);
}

static void test_take_oldest_equal(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 0, 0);
    push(&q, "x", 1);
    push(&q, "y", 2);
    push(&q, "x", 3);
    push(&q, "z", 4);
    assert_int_equal(hb_rawq_take(&q, "t", 1, "x", 1), 1);
    expect(&q, "y,x,z");
    assert_int_equal(q.head->seq, 2);
    assert_int_equal(q.head->next->seq, 3);                 /* the younger duplicate stayed */
    assert_int_equal(hb_rawq_take(&q, "u", 1, "y", 1), 0);  /* other topic */
    assert_int_equal(hb_rawq_take(&q, "t", 1, "yy", 2), 0); /* other length */
    assert_int_equal(hb_rawq_take(&q, "t", 1, "z", 1), 1);  /* the tail */
    expect(&q, "y,x");
    push(&q, "w", 5); /* appends after the new tail */
    expect(&q, "y,x,w");
    assert_int_equal(hb_rawq_take(&q, "t", 1, "y", 1), 1);
    assert_int_equal(hb_rawq_take(&q, "t", 1, "x", 1), 1);
    assert_int_equal(hb_rawq_take(&q, "t", 1, "w", 1), 1);
    expect(&q, "");
    assert_null(q.head);
}

/* Marking: the oldest equal entry not marked yet, which stays in the queue; the next mark of
 * the same message goes to the younger one. */
static void test_mark_heard_oldest_unmarked(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 0, 0);
    push(&q, "x", 1);
    push(&q, "y", 2);
    push(&q, "x", 3);
    assert_int_equal(q.head->heard, 0);
    assert_int_equal(hb_rawq_mark_heard(&q, "t", 1, "x", 1), 1);
    expect(&q, "x,y,x");
    assert_int_equal(q.head->heard, 1);
    assert_int_equal(q.head->next->next->heard, 0);
    assert_int_equal(hb_rawq_mark_heard(&q, "t", 1, "x", 1), 1);
    assert_int_equal(q.head->next->next->heard, 1);
    assert_int_equal(hb_rawq_mark_heard(&q, "t", 1, "x", 1), 0); /* both marked */
    assert_int_equal(hb_rawq_mark_heard(&q, "u", 1, "y", 1), 0); /* other topic */
    assert_int_equal(q.head->next->heard, 0);
    assert_int_equal(q.count, 3);
    hb_rawq_clear(&q);
}

static void test_take_scan_limit(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 0, 0);
    for (int i = 0; i < HB_RAWQ_MATCH_SCAN_MAX - 1; i++)
        push(&q, "f", 1);
    push(&q, "at", 2);   /* the last entry scanned */
    push(&q, "past", 3); /* the first one not scanned */
    assert_int_equal(hb_rawq_take(&q, "t", 1, "past", 4), 0);
    assert_int_equal(hb_rawq_take(&q, "t", 1, "at", 2), 1);
    assert_int_equal(q.count, HB_RAWQ_MATCH_SCAN_MAX);
    /* now "past" is the HB_RAWQ_MATCH_SCAN_MAX-th entry */
    assert_int_equal(hb_rawq_take(&q, "t", 1, "past", 4), 1);
    hb_rawq_clear(&q);
}

static void test_put_back_order(void **state)
{
    hb_rawq_t q, batch;
    (void)state;
    hb_rawq_init(&q, 0, 0);
    hb_rawq_init(&batch, 0, 0);
    push(&q, "k1", 10); /* kept meanwhile */
    push(&q, "k2", 11);
    push(&batch, "r1", 1); /* a refused batch, older */
    push(&batch, "r2", 2);
    push(&batch, "r3", 3);
    while (batch.head)
        assert_int_equal(hb_rawq_put_back(&q, hb_rawq_unlink_head(&batch)), 0);
    expect(&q, "r1,r2,r3,k1,k2");
    assert_int_equal(q.mark->seq, 3);
    /* taking the mark moves it to its predecessor; the next put-back goes after that */
    assert_int_equal(hb_rawq_take(&q, "t", 1, "r3", 2), 1);
    assert_int_equal(q.mark->seq, 2);
    assert_int_equal(hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "r4", 2, 0, 4)), 0);
    expect(&q, "r1,r2,r4,k1,k2");
    /* unlinking the head entries up to the mark clears it */
    hb_rawq_drop_head(&q);
    hb_rawq_drop_head(&q);
    assert_non_null(q.mark);
    hb_rawq_drop_head(&q);
    assert_null(q.mark);
    assert_int_equal(hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "r5", 2, 0, 5)), 0);
    expect(&q, "r5,k1,k2");
    hb_rawq_clear(&q);
    /* into an empty queue: head and tail */
    assert_int_equal(hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "a", 1, 0, 1)), 0);
    assert_int_equal(hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "b", 1, 0, 2)), 0);
    expect(&q, "a,b");
    push(&q, "c", 3);
    expect(&q, "a,b,c");
    hb_rawq_clear(&q);
    assert_null(q.mark);
}

static void test_put_back_bound(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 2, 0);
    push(&q, "k1", 10);
    assert_int_equal(hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "r1", 2, 0, 1)), 0); /* bound */
    expect(&q, "r1,k1");
    /* bound + 1: the oldest (the mark, r1) is forgotten, r2 goes to the head */
    assert_int_equal(hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "r2", 2, 0, 2)), HB_ELIMIT);
    expect(&q, "r2,k1");
    assert_int_equal(q.mark->seq, 2);
    hb_rawq_clear(&q);
}

static void test_drop_upto(void **state)
{
    hb_rawq_t q;
    (void)state;
    hb_rawq_init(&q, 0, 0);
    hb_rawq_put_back(&q, hb_rawmsg_new("t", 1, "p5", 2, 0, 5)); /* put back: seq out of order */
    push(&q, "a", 1);
    push(&q, "b", 2);
    push(&q, "c", 3);
    push(&q, "d", 6);
    assert_int_equal(hb_rawq_drop_upto(&q, 0), 0);
    assert_int_equal(hb_rawq_drop_upto(&q, 2), 2); /* the limit itself goes */
    expect(&q, "p5,c,d");
    assert_int_equal(q.mark->seq, 5);
    assert_int_equal(hb_rawq_drop_upto(&q, 5), 2); /* c and the mark p5 */
    expect(&q, "d");
    assert_null(q.mark);
    assert_int_equal(hb_rawq_drop_upto(&q, 6), 1); /* the tail */
    expect(&q, "");
    push(&q, "e", 7);
    expect(&q, "e");
    hb_rawq_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_fifo_and_message),
        cmocka_unit_test(test_count_bound),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_byte_bound_exact),
        cmocka_unit_test(test_take_oldest_equal),
        cmocka_unit_test(test_take_scan_limit),
        cmocka_unit_test(test_mark_heard_oldest_unmarked),
        cmocka_unit_test(test_put_back_order),
        cmocka_unit_test(test_put_back_bound),
        cmocka_unit_test(test_drop_upto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
