#ifndef HERALD_COMMON_HB_PAGE_H
#define HERALD_COMMON_HB_PAGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The arithmetic of a paced history read (edge/hread.c): how many bytes a page may hold, when a
 * client has room for the next one, and how many entries to ask Redis for. Pure functions, any
 * thread; no argument can make them overflow.
 */

/* Bytes of encoded events one history page may hold, at most (see README, Delivery limits). */
#define HB_PAGE_BYTES_MAX ((size_t)1 << 20)

/**
 * hb_page_budget() - bytes of encoded events one page may hold for clients whose queue is bound
 * to queue_bytes: HB_PAGE_BYTES_MAX, and at most a quarter of queue_bytes (at least 1).
 */
size_t hb_page_budget(size_t queue_bytes);

/**
 * hb_page_room() - 1 when a client with qbytes / qlen queued may take one more page of `budget`
 * bytes and stay within half of its bounds (queue_bytes, queue_max), else 0: it has not yet
 * written most of what it was given.
 */
int hb_page_room(size_t qbytes, size_t qlen, size_t budget, size_t queue_bytes, size_t queue_max);

/**
 * hb_page_count() - entries the next page asks for: what fits `budget` at the size seen on the
 * last page (`bytes` over `n` entries), within 1..batch; `prev` when nothing was seen (n or
 * bytes 0), itself kept within 1..batch. batch 0 counts as 1.
 */
uint32_t hb_page_count(size_t bytes, size_t n, size_t budget, uint32_t batch, uint32_t prev);

#endif
