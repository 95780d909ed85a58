/*
 * The raw-message FIFO of raw PUBLISH ingest (see hb_rawq.h), a singly linked list with a tail
 * pointer and a put-back mark. Every removal keeps tail, mark, count and bytes in step.
 */
#include "hb_rawq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"

hb_rawmsg_t *hb_rawmsg_new(const char *topic, size_t tlen, const char *payload, size_t plen,
                           double ts, unsigned long long seq)
{
    hb_rawmsg_t *m;
    if (tlen > SIZE_MAX - sizeof(*m) || plen > SIZE_MAX - sizeof(*m) - tlen)
        return NULL;
    m = malloc(sizeof(*m) + tlen + plen);
    if (!m)
        return NULL;
    m->next = NULL;
    m->heard = 0;
    m->ts = ts;
    m->seq = seq;
    m->tlen = tlen;
    m->plen = plen;
    if (tlen)
        memcpy(m->data, topic, tlen);
    if (plen)
        memcpy(m->data + tlen, payload, plen);
    return m;
}

void hb_rawmsg_free(hb_rawmsg_t *m)
{
    free(m);
}

void hb_rawq_init(hb_rawq_t *q, size_t max_count, size_t max_bytes)
{
    memset(q, 0, sizeof(*q));
    q->max_count = max_count;
    q->max_bytes = max_bytes;
}

void hb_rawq_append(hb_rawq_t *q, hb_rawmsg_t *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->count++;
    q->bytes += m->tlen + m->plen;
}

hb_rawmsg_t *hb_rawq_unlink_head(hb_rawq_t *q)
{
    hb_rawmsg_t *m = q->head;
    if (!m)
        return NULL;
    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    if (q->mark == m)
        q->mark = NULL;
    q->count--;
    q->bytes -= m->tlen + m->plen;
    m->next = NULL;
    return m;
}

void hb_rawq_drop_head(hb_rawq_t *q)
{
    free(hb_rawq_unlink_head(q));
}

void hb_rawq_clear(hb_rawq_t *q)
{
    while (q->head)
        hb_rawq_drop_head(q);
}

/* Unlinks m, whose predecessor is prev (NULL: m is the head) and which *pp points to. */
static void unlink_at(hb_rawq_t *q, hb_rawmsg_t **pp, hb_rawmsg_t *prev, hb_rawmsg_t *m)
{
    *pp = m->next;
    if (q->tail == m)
        q->tail = prev;
    if (q->mark == m)
        q->mark = prev; /* put-back entries are a prefix: prev is one of them, or none */
    q->count--;
    q->bytes -= m->tlen + m->plen;
    m->next = NULL;
}

int hb_rawq_take(hb_rawq_t *q, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    hb_rawmsg_t **pp = &q->head, *prev = NULL;
    for (int n = 0; *pp && n < HB_RAWQ_MATCH_SCAN_MAX; n++, prev = *pp, pp = &(*pp)->next) {
        hb_rawmsg_t *m = *pp;
        if (m->tlen == tlen && m->plen == plen && !memcmp(hb_rawmsg_topic(m), topic, tlen) &&
            !memcmp(hb_rawmsg_payload(m), payload, plen)) {
            unlink_at(q, pp, prev, m);
            free(m);
            return 1;
        }
    }
    return 0;
}

int hb_rawq_mark_heard(hb_rawq_t *q, const char *topic, size_t tlen, const char *payload,
                       size_t plen)
{
    hb_rawmsg_t *m = q->head;
    for (int n = 0; m && n < HB_RAWQ_MATCH_SCAN_MAX; n++, m = m->next)
        if (!m->heard && m->tlen == tlen && m->plen == plen &&
            !memcmp(hb_rawmsg_topic(m), topic, tlen) &&
            !memcmp(hb_rawmsg_payload(m), payload, plen)) {
            m->heard = 1;
            return 1;
        }
    return 0;
}

/* Makes room for one more entry of n bytes by forgetting the oldest ones; 1 when one went. */
static int make_room(hb_rawq_t *q, size_t n)
{
    int dropped = 0;
    while (q->count &&
           ((q->max_count && q->count >= q->max_count) ||
            (q->max_bytes && (q->bytes > q->max_bytes || n > q->max_bytes - q->bytes)))) {
        hb_rawq_drop_head(q);
        dropped = 1;
    }
    return dropped;
}

int hb_rawq_push(hb_rawq_t *q, const char *topic, size_t tlen, const char *payload, size_t plen,
                 double ts, unsigned long long seq)
{
    int dropped = tlen > SIZE_MAX - plen ? 0 : make_room(q, tlen + plen);
    hb_rawmsg_t *m = hb_rawmsg_new(topic, tlen, payload, plen, ts, seq);
    if (!m)
        return HB_ENOMEM;
    hb_rawq_append(q, m);
    return dropped ? HB_ELIMIT : 0;
}

int hb_rawq_put_back(hb_rawq_t *q, hb_rawmsg_t *m)
{
    int dropped = make_room(q, m->tlen + m->plen);
    if (!q->mark) {
        m->next = q->head;
        q->head = m;
        if (!q->tail)
            q->tail = m;
    } else {
        m->next = q->mark->next;
        q->mark->next = m;
        if (q->tail == q->mark)
            q->tail = m;
    }
    q->mark = m;
    q->count++;
    q->bytes += m->tlen + m->plen;
    return dropped ? HB_ELIMIT : 0;
}

size_t hb_rawq_drop_upto(hb_rawq_t *q, unsigned long long seq)
{
    size_t n = 0;
    hb_rawmsg_t **pp = &q->head, *prev = NULL;
    while (*pp) {
        hb_rawmsg_t *m = *pp;
        if (m->seq > seq) {
            prev = m;
            pp = &m->next;
            continue;
        }
        unlink_at(q, pp, prev, m);
        free(m);
        n++;
    }
    return n;
}
