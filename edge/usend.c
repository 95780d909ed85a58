/*
 * Batched sends through io_uring (usend.h), without liburing: the kernel's ring ABI
 * (<linux/io_uring.h>), set up and driven with the two system calls.
 *
 * Why: a fan-out sends one frame to each of thousands of sockets, one send(2) each. Every
 * system call pays its entry and exit (on a virtual machine, about a microsecond), and a
 * threaded process pays libc's cancellation switch around each; one io_uring_enter() for a
 * batch of sends pays them once. The sends themselves are the same socket calls.
 *
 * What keeps it safe: every send is MSG_DONTWAIT, which makes io_uring complete it inside
 * the submission with send(2)'s own result (-EAGAIN for a full socket, never a wait for room);
 * hb_usend_new() checks that on a socket pair and gives no ring if the kernel does otherwise.
 * hb_usend_submit() waits for every completion before it returns, so no send outlives the
 * caller's buffers, and a send the ring could not take is made with send(2) instead.
 */
#define _GNU_SOURCE /* syscall(), MAP_POPULATE */
#include "usend.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hb_err.h"

typedef struct {
    void *tag;
    const unsigned char *data;
    uint32_t len;
    int aux, fd;
    int res;
} ent_t;

struct hb_usend {
    int fd;
    unsigned entries, n; /* n: added since the last submission */
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *rings;
    size_t rings_len, sqes_len;
    ent_t *ent;
};

static int ring_setup(unsigned entries, struct io_uring_params *p)
{
    /* SUBMIT_ALL: a send refused at submission (a bad socket) does not stop the rest;
     * COOP_TASKRUN, SINGLE_ISSUER: one thread submits, no interrupt to post completions.
     * Kernels before 6.0 refuse the flags: the ring without them does the same work. */
    unsigned flags[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                            IORING_SETUP_SINGLE_ISSUER,
                        0};
    int fd = -EINVAL;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && fd == -EINVAL; i++) {
        memset(p, 0, sizeof(*p));
        p->flags = flags[i];
        fd = (int)syscall(__NR_io_uring_setup, entries, p);
        if (fd < 0)
            fd = -errno;
    }
    return fd;
}

static int ring_map(hb_usend_t *u, const struct io_uring_params *p)
{
    size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    size_t cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    char *sq, *cq;
    if (!(p->features & IORING_FEAT_SINGLE_MMAP))
        return -EOPNOTSUPP; /* kernels before 5.4: not worth a second mapping */
    u->rings_len = sq_len > cq_len ? sq_len : cq_len;
    sq = mmap(NULL, u->rings_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
              IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        return -errno;
    u->rings = sq;
    cq = sq;
    u->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                   IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED) {
        u->sqes = NULL;
        return -errno;
    }
    u->sq_head = (unsigned *)(void *)(sq + p->sq_off.head);
    u->sq_tail = (unsigned *)(void *)(sq + p->sq_off.tail);
    u->sq_mask = (unsigned *)(void *)(sq + p->sq_off.ring_mask);
    u->sq_array = (unsigned *)(void *)(sq + p->sq_off.array);
    u->cq_head = (unsigned *)(void *)(cq + p->cq_off.head);
    u->cq_tail = (unsigned *)(void *)(cq + p->cq_off.tail);
    u->cq_mask = (unsigned *)(void *)(cq + p->cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(void *)(cq + p->cq_off.cqes);
    return 0;
}

void hb_usend_free(hb_usend_t *u)
{
    if (!u)
        return;
    if (u->sqes)
        munmap(u->sqes, u->sqes_len);
    if (u->rings)
        munmap(u->rings, u->rings_len);
    if (u->fd >= 0)
        close(u->fd);
    free(u->ent);
    free(u);
}

int hb_usend_add(hb_usend_t *u, int fd, const unsigned char *data, size_t len, void *tag,
                 int aux)
{
    unsigned tail = *u->sq_tail + u->n, idx = tail & *u->sq_mask;
    struct io_uring_sqe *q = &u->sqes[idx];
    if (u->n == u->entries || len > INT32_MAX)
        return HB_ELIMIT;
    memset(q, 0, sizeof(*q));
    q->opcode = IORING_OP_SEND;
    q->fd = fd;
    q->addr = (uintptr_t)data;
    q->len = (uint32_t)len;
    q->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    q->user_data = u->n;
    u->sq_array[idx] = idx;
    u->ent[u->n] = (ent_t){tag, data, (uint32_t)len, aux, fd, -EIO}; /* until its completion */
    u->n++;
    return 0;
}

static int enter(hb_usend_t *u, unsigned submit, unsigned wait)
{
    for (;;) {
        long r = syscall(__NR_io_uring_enter, u->fd, submit, wait,
                         wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
        if (r >= 0)
            return (int)r;
        if (errno != EINTR)
            return -errno;
    }
}

/* Reaps what completed; returns how many. */
static unsigned reap(hb_usend_t *u)
{
    unsigned head = *u->cq_head, got = 0;
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)u->cq_tail, memory_order_acquire);
    for (; head != tail; head++, got++) {
        const struct io_uring_cqe *e = &u->cqes[head & *u->cq_mask];
        if (e->user_data < u->n)
            u->ent[e->user_data].res = e->res;
    }
    atomic_store_explicit((_Atomic unsigned *)u->cq_head, head, memory_order_release);
    return got;
}

/* The probe's submission: the one added send, no wait; 0 when its completion is there at once
 * (its result in ent[0].res). */
static int enter_once(hb_usend_t *u)
{
    unsigned start = *u->sq_tail;
    int got;
    atomic_store_explicit((_Atomic unsigned *)u->sq_tail, start + u->n, memory_order_release);
    if (enter(u, u->n, 0) != (int)u->n) {
        u->n = 0;
        return -EIO;
    }
    got = (int)reap(u);
    u->n = 0;
    return got == 1 ? 0 : -EOPNOTSUPP;
}

unsigned hb_usend_submit(hb_usend_t *u, hb_usend_done_fn done, void *arg)
{
    unsigned n = u->n, start = *u->sq_tail, sent = 0, got = 0;
    if (!n)
        return 0;
    atomic_store_explicit((_Atomic unsigned *)u->sq_tail, start + n, memory_order_release);
    while (sent < n) {
        int r = enter(u, n - sent, n - sent);
        if (r <= 0)
            break;
        sent += (unsigned)r;
    }
    if (sent < n) {
        /* the ring failed: what it did not take is withdrawn (the kernel reads the tail only
         * in io_uring_enter(), and only this thread calls it) and sent with send(2) */
        unsigned head = atomic_load_explicit((_Atomic unsigned *)u->sq_head,
                                             memory_order_acquire);
        sent = head - start;
        atomic_store_explicit((_Atomic unsigned *)u->sq_tail, head, memory_order_release);
        for (unsigned i = sent; i < n; i++) {
            ssize_t w = send(u->ent[i].fd, u->ent[i].data, u->ent[i].len,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            u->ent[i].res = w < 0 ? -errno : (int)w;
        }
    }
    while ((got += reap(u)) < sent)
        if (enter(u, 0, sent - got) < 0)
            break; /* cannot happen after the check in hb_usend_new(): MSG_DONTWAIT sends
                    * complete inside the submission; one missing reads -EIO (its connection
                    * is closed: whether it was sent is not known) */
    u->n = 0;
    for (unsigned i = 0; i < n; i++)
        done(u->ent[i].tag, u->ent[i].data, u->ent[i].len, u->ent[i].aux, u->ent[i].res, arg);
    return n;
}

/* The check that a send into a full socket completes at once with -EAGAIN (and one into an
 * empty socket with its length): what hb_usend_submit()'s wait relies on. 0, or -errno. */
static int check_nowait(hb_usend_t *u)
{
    static const unsigned char fill[4096]; /* static: the kernel may read it after a failure */
    int sv[2], rc = -EOPNOTSUPP, small = 4096;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    /* an empty socket: taken whole */
    if (hb_usend_add(u, sv[0], fill, 1, NULL, 0) || enter_once(u) || u->ent[0].res != 1)
        goto out;
    while (send(sv[0], fill, sizeof(fill), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
        ;
    /* a full one: -EAGAIN at once, not a wait for room */
    if (hb_usend_add(u, sv[0], fill, sizeof(fill), NULL, 0) || enter_once(u) ||
        u->ent[0].res != -EAGAIN)
        goto out;
    rc = 0;
out:
    close(sv[0]);
    close(sv[1]);
    return rc;
}

hb_usend_t *hb_usend_new(unsigned entries, int *err)
{
    struct io_uring_params p;
    hb_usend_t *u;
    int rc;
    *err = HB_ENOMEM;
    if (!entries || entries > 4096 || (entries & (entries - 1))) {
        *err = -EINVAL;
        return NULL;
    }
    if (!(u = calloc(1, sizeof(*u))) || !(u->ent = calloc(entries, sizeof(*u->ent)))) {
        free(u);
        return NULL;
    }
    u->fd = ring_setup(entries, &p);
    rc = u->fd < 0 ? u->fd : ring_map(u, &p);
    if (!rc)
        u->entries = p.sq_entries < entries ? p.sq_entries : entries;
    if (!rc)
        rc = check_nowait(u);
    if (rc) {
        *err = rc;
        hb_usend_free(u);
        return NULL;
    }
    *err = 0;
    return u;
}
