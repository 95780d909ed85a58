#ifndef HERALD_COMMON_HB_RAWQ_H
#define HERALD_COMMON_HB_RAWQ_H

#include <stddef.h>

/*
 * A FIFO of raw messages (topic, payload), the buffer behind raw PUBLISH ingest (edge/ingest.c):
 * a standby keeps each raw message until it sees the leader's stored copy, and a leader's
 * refused stores are put back. Put-back messages go to the front, after `mark` (the last one
 * put back; NULL: none), so that they stay in their order and ahead of what was kept meanwhile.
 * Bounded in entries and bytes by hb_rawq_push() and hb_rawq_put_back(), which forget the
 * oldest entries to make room; hb_rawq_append() is not bounded (a batch the caller bounds).
 * The queue owns its messages. Loop-free, not thread-safe: one thread owns a queue (the broker
 * thread in Herald).
 */

/** The most entries hb_rawq_take() compares before giving up (the oldest ones). */
#define HB_RAWQ_MATCH_SCAN_MAX 1024

/** One raw message: topic then payload in data[]. Heap, owned by the queue holding it. */
typedef struct hb_rawmsg {
    struct hb_rawmsg *next;
    double ts;              /* when it arrived (the caller's clock) */
    unsigned long long seq; /* arrival order (the caller's counter) */
    size_t tlen, plen;
    int heard; /* its stored copy was heard (hb_rawq_mark_heard); 0 when made */
    char data[];
} hb_rawmsg_t;

/**
 * A queue, embedded by its owner. A zeroed one is empty and unbounded; hb_rawq_init() sets
 * the bounds. Fields are read by the owner (head for the oldest entry, count, bytes) and
 * written only through these functions.
 */
typedef struct hb_rawq {
    hb_rawmsg_t *head, *tail;
    hb_rawmsg_t *mark; /* last put-back entry; NULL: none */
    size_t count, bytes;
    size_t max_count, max_bytes; /* 0: no bound */
} hb_rawq_t;

/** hb_rawmsg_topic() - the topic bytes of m (m->tlen of them, not NUL-terminated). */
static inline const char *hb_rawmsg_topic(const hb_rawmsg_t *m)
{
    return m->data;
}

/** hb_rawmsg_payload() - the payload bytes of m (m->plen of them, not NUL-terminated). */
static inline const char *hb_rawmsg_payload(const hb_rawmsg_t *m)
{
    return m->data + m->tlen;
}

/**
 * hb_rawmsg_new() - a heap copy of (topic, payload) stamped with ts and seq, not in any queue.
 * The caller owns it (hb_rawmsg_free() or a queue). NULL when memory runs out or the sizes
 * overflow.
 */
hb_rawmsg_t *hb_rawmsg_new(const char *topic, size_t tlen, const char *payload, size_t plen,
                           double ts, unsigned long long seq);
/** hb_rawmsg_free() - frees a message that is in no queue; accepts NULL. */
void hb_rawmsg_free(hb_rawmsg_t *m);

/**
 * hb_rawq_init() - an empty queue holding at most max_count entries and max_bytes bytes of
 * topic + payload in hb_rawq_push() / hb_rawq_put_back() (0: no bound). Cannot fail.
 */
void hb_rawq_init(hb_rawq_t *q, size_t max_count, size_t max_bytes);
/** hb_rawq_clear() - frees every entry; the queue is empty (bounds kept). */
void hb_rawq_clear(hb_rawq_t *q);

/** hb_rawq_append() - appends m (ownership moves to q) at the tail, without bounds. */
void hb_rawq_append(hb_rawq_t *q, hb_rawmsg_t *m);
/**
 * hb_rawq_push() - appends a copy of (topic, payload) stamped with ts and seq, first forgetting
 * the oldest entries as long as the queue holds max_count entries or the new one would take it
 * over max_bytes. Returns 0; HB_ELIMIT when an oldest entry was forgotten (the copy is in);
 * HB_ENOMEM when memory ran out (nothing added; entries may have been forgotten).
 */
int hb_rawq_push(hb_rawq_t *q, const char *topic, size_t tlen, const char *payload, size_t plen,
                 double ts, unsigned long long seq);
/**
 * hb_rawq_put_back() - puts m (ownership moves to q) after the entries put back before it, at
 * the head when none, and makes it the mark; forgets the oldest entries first like
 * hb_rawq_push(). Returns 0, or HB_ELIMIT when an entry was forgotten (m is in).
 */
int hb_rawq_put_back(hb_rawq_t *q, hb_rawmsg_t *m);
/**
 * hb_rawq_unlink_head() - removes the oldest entry and returns it (the caller owns it); NULL
 * when the queue is empty.
 */
hb_rawmsg_t *hb_rawq_unlink_head(hb_rawq_t *q);
/** hb_rawq_drop_head() - frees the oldest entry; no-op when empty. */
void hb_rawq_drop_head(hb_rawq_t *q);
/**
 * hb_rawq_take() - frees the oldest entry equal to (topic, payload) among the first
 * HB_RAWQ_MATCH_SCAN_MAX. Returns 1 when one was found, 0 when not.
 */
int hb_rawq_take(hb_rawq_t *q, const char *topic, size_t tlen, const char *payload, size_t plen);
/**
 * hb_rawq_mark_heard() - marks the oldest entry equal to (topic, payload) and not marked yet,
 * among the first HB_RAWQ_MATCH_SCAN_MAX: its heard becomes 1, and it stays in q. Returns 1
 * when one was marked, 0 when none.
 */
int hb_rawq_mark_heard(hb_rawq_t *q, const char *topic, size_t tlen, const char *payload,
                       size_t plen);
/** hb_rawq_drop_upto() - frees every entry whose seq is <= seq; returns how many. */
size_t hb_rawq_drop_upto(hb_rawq_t *q, unsigned long long seq);

#endif
