/*
 * edge/usend.c: sends batched in one io_uring submission give each send what send(2) would
 * have: the bytes on the socket in order, a partial count, -EAGAIN for a full socket, the
 * peer's error, a bad socket's error without stopping the others; a full ring refuses more.
 * On a kernel that refuses io_uring (ENOSYS, EPERM: sysctl or seccomp) the tests are skipped
 * and say so; the edge then sends with send(2), which the integration tests cover
 * (--io-uring off).
 */
#define _DEFAULT_SOURCE /* usleep */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hb_err.h"
#include "usend.h"

#define MAXR 16

typedef struct {
    unsigned n;
    void *tag[MAXR];
    ssize_t res[MAXR];
    size_t len[MAXR];
    int aux[MAXR];
} results_t;

static void done(void *tag, const unsigned char *data, size_t len, int aux, ssize_t res,
                 void *arg)
{
    results_t *r = arg;
    (void)data;
    assert_true(r->n < MAXR);
    r->tag[r->n] = tag;
    r->res[r->n] = res;
    r->len[r->n] = len;
    r->aux[r->n] = aux;
    r->n++;
}

/* a connected loopback TCP pair: s[0] the sender (non-blocking use), s[1] the reader */
static void tcp_pair(int s[2], int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    s[1] = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        assert_int_equal(setsockopt(s[1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    assert_int_equal(connect(s[1], (struct sockaddr *)&a, sizeof(a)), 0);
    s[0] = accept(l, NULL, NULL);
    assert_true(s[0] >= 0);
    setsockopt(s[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    close(l);
}

static hb_usend_t *ring(unsigned entries)
{
    int err = 0;
    hb_usend_t *u = hb_usend_new(entries, &err);
    if (!u && (err == -ENOSYS || err == -EPERM)) {
        fprintf(stderr, "io_uring refused by this kernel (%s): skipped\n", strerror(-err));
        skip();
    }
    if (!u)
        fail_msg("hb_usend_new: %d (%s)", err, err < 0 ? strerror(-err) : "");
    return u;
}

static void read_exact(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

/* Every send of a batch arrives whole, on its own socket, in order; results in adding order. */
static void test_sends_arrive(void **state)
{
    (void)state;
    hb_usend_t *u = ring(8);
    int s[4][2], tags[4];
    unsigned char msg[4][300], got[300];
    results_t r = {0};
    for (int i = 0; i < 4; i++) {
        tcp_pair(s[i], 0);
        for (size_t k = 0; k < sizeof(msg[i]); k++)
            msg[i][k] = (unsigned char)(i * 31 + k * 7);
        assert_int_equal(hb_usend_add(u, s[i][0], msg[i], sizeof(msg[i]), &tags[i], 100 + i), 0);
    }
    assert_int_equal(hb_usend_submit(u, done, &r), 4);
    assert_int_equal(r.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(r.tag[i], &tags[i]);
        assert_int_equal(r.res[i], sizeof(msg[i]));
        assert_int_equal(r.aux[i], 100 + i);
        read_exact(s[i][1], got, sizeof(got));
        assert_memory_equal(got, msg[i], sizeof(got));
    }
    /* a second frame to socket 0 in a later batch follows the first */
    assert_int_equal(hb_usend_add(u, s[0][0], msg[1], 10, NULL, 0), 0);
    assert_int_equal(hb_usend_submit(u, done, &r), 1);
    assert_int_equal(r.res[4], 10);
    read_exact(s[0][1], got, 10);
    assert_memory_equal(got, msg[1], 10);
    assert_int_equal(hb_usend_submit(u, done, &r), 0); /* nothing added: nothing done */
    for (int i = 0; i < 4; i++) {
        close(s[i][0]);
        close(s[i][1]);
    }
    hb_usend_free(u);
}

/* A socket that takes part of a send says how much; a full one says -EAGAIN at once (no wait
 * for room: the submission returns), and what was taken is on the wire, the rest not. */
static void test_partial_and_full(void **state)
{
    (void)state;
    hb_usend_t *u = ring(4);
    static unsigned char big[1 << 20];
    int s[2], small = 4096;
    results_t r = {0};
    size_t total = 0;
    tcp_pair(s, 4096);
    assert_int_equal(setsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    for (size_t k = 0; k < sizeof(big); k++)
        big[k] = (unsigned char)(k * 13 + (k >> 8));
    /* the first send is taken in part; sending the rest again and again fills the socket
     * (loopback moves what fits in the reader's window on at once) until one is refused */
    for (int i = 0; i < 1000; i++) {
        r.n = 0;
        assert_int_equal(hb_usend_add(u, s[0], big + total, sizeof(big) - total, NULL, 0), 0);
        assert_int_equal(hb_usend_submit(u, done, &r), 1);
        if (r.res[0] == -EAGAIN)
            break;
        assert_true(r.res[0] > 0 && total + (size_t)r.res[0] < sizeof(big)); /* partial */
        total += (size_t)r.res[0];
    }
    assert_int_equal(r.res[0], -EAGAIN); /* full: at once, not a wait for room */
    assert_true(total > 0);
    /* the reader gets exactly the bytes counted, in order */
    {
        static unsigned char got[1 << 20];
        read_exact(s[1], got, total);
        assert_memory_equal(got, big, total);
    }
    close(s[0]);
    close(s[1]);
    hb_usend_free(u);
}

/* A peer that reset the connection, and a socket number that is not open: each its error;
 * the batch's other sends are made all the same. */
static void test_errors_do_not_stop_the_batch(void **state)
{
    (void)state;
    hb_usend_t *u = ring(4);
    int a[2], b[2], bad;
    struct linger lg = {1, 0};
    unsigned char msg[64] = "after the failures", got[64];
    results_t r = {0};
    tcp_pair(a, 0);
    tcp_pair(b, 0);
    /* a's reader closes with a reset */
    assert_int_equal(setsockopt(a[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(a[1]);
    usleep(20000);
    bad = dup(b[1]);
    close(bad); /* a number that is not open now */
    assert_int_equal(hb_usend_add(u, a[0], msg, sizeof(msg), NULL, 1), 0);
    assert_int_equal(hb_usend_add(u, bad, msg, sizeof(msg), NULL, 2), 0);
    assert_int_equal(hb_usend_add(u, b[0], msg, sizeof(msg), NULL, 3), 0);
    assert_int_equal(hb_usend_submit(u, done, &r), 3);
    assert_true(r.res[0] == -ECONNRESET || r.res[0] == -EPIPE);
    assert_int_equal(r.res[1], -EBADF);
    assert_int_equal(r.res[2], sizeof(msg));
    read_exact(b[1], got, sizeof(got));
    assert_memory_equal(got, msg, sizeof(msg));
    close(a[0]);
    close(b[0]);
    close(b[1]);
    hb_usend_free(u);
}

/* The ring holds what it was made for and refuses more until the next submission; sizes that
 * are not a power of two up to 4,096 are refused. */
static void test_bounds(void **state)
{
    (void)state;
    hb_usend_t *u = ring(2);
    int s[2], err = 0;
    unsigned char msg[8] = "1234567";
    results_t r = {0};
    tcp_pair(s, 0);
    assert_int_equal(hb_usend_add(u, s[0], msg, 4, NULL, 0), 0);
    assert_int_equal(hb_usend_add(u, s[0], msg + 4, 4, NULL, 0), 0);
    assert_int_equal(hb_usend_add(u, s[0], msg, 4, NULL, 0), HB_ELIMIT);
    assert_int_equal(hb_usend_add(u, s[0], msg, (size_t)INT32_MAX + 1, NULL, 0), HB_ELIMIT);
    assert_int_equal(hb_usend_submit(u, done, &r), 2);
    assert_int_equal(r.res[0] + r.res[1], 8);
    {
        unsigned char got[8];
        read_exact(s[1], got, 8);
        assert_memory_equal(got, msg, 8); /* two sends to one socket, in adding order */
    }
    assert_null(hb_usend_new(3, &err));
    assert_int_equal(err, -EINVAL);
    assert_null(hb_usend_new(8192, &err));
    assert_null(hb_usend_new(0, &err));
    close(s[0]);
    close(s[1]);
    hb_usend_free(u);
    hb_usend_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sends_arrive),
        cmocka_unit_test(test_partial_and_full),
        cmocka_unit_test(test_errors_do_not_stop_the_batch),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
