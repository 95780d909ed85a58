#ifndef HERALD_EDGE_USEND_H
#define HERALD_EDGE_USEND_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Batched sends: the direct sends of one event's fan-out (cwrite.c, the recipients the frame
 * goes to at once) handed to the kernel in one io_uring submission instead of one send(2)
 * each. Each send is MSG_DONTWAIT: it completes inside the submission (sent, partly sent,
 * -EAGAIN, or the socket's error), exactly what send(2) would have said, and the caller gets
 * each result through its callback before hb_usend_submit() returns; nothing is left in the
 * kernel after it. One ring per service thread, used only by the thread that made it.
 * Knows nothing of clients or lws: a socket, bytes, and a caller's tag per send.
 */

typedef struct hb_usend hb_usend_t;

/* What one send came to: @tag and @aux as given to hb_usend_add(), @data/@len the bytes asked
 * for, @res what send(2) would have returned (bytes taken, or -errno: -EAGAIN for a full
 * socket). Called on the submitting thread, inside hb_usend_submit(). */
typedef void (*hb_usend_done_fn)(void *tag, const unsigned char *data, size_t len, int aux,
                                 ssize_t res, void *arg);

/**
 * hb_usend_new() - a ring for up to @entries sends per submission (a power of two, 1..4096),
 * for the calling thread only. NULL when the kernel will not give one (no io_uring, refused by
 * sysctl or a seccomp filter: *@err is the -errno of io_uring_setup) or when a send into a
 * full socket does not complete at once with -EAGAIN (checked here on a socket pair; *@err
 * -EOPNOTSUPP), HB_ENOMEM. Owned by the caller: hb_usend_free().
 */
hb_usend_t *hb_usend_new(unsigned entries, int *err);

/** hb_usend_free() - closes the ring (nothing is pending after a submission). NULL: nothing. */
void hb_usend_free(hb_usend_t *u);

/**
 * hb_usend_add() - adds a send of @len bytes at @data to socket @fd, for the next
 * hb_usend_submit(). @data is read by the kernel only inside it: it must stay valid until then.
 * 0, or HB_ELIMIT when the ring is full (submit first) or @len is over 2 GiB.
 */
int hb_usend_add(hb_usend_t *u, int fd, const unsigned char *data, size_t len, void *tag,
                 int aux);

/**
 * hb_usend_submit() - hands every added send to the kernel in one system call and calls
 * @done once for each, in the order they were added, before it returns. Should the ring fail
 * (an io_uring_enter error other than EINTR), the sends not submitted are made with send(2)
 * instead: every added send gets its one result. Returns how many were done.
 */
unsigned hb_usend_submit(hb_usend_t *u, hb_usend_done_fn done, void *arg);

#endif
