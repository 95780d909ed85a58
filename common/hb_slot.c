#include "hb_slot.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_mem.h"

#define NO_OWNER 0xffffu

typedef struct snode {
    char host[HB_SLOT_HOST_MAX + 1];
    int port;
} snode_t;

/* Owner: the thread that built it (the broker). */
struct hb_slot_map {
    uint16_t owner[HB_SLOT_COUNT]; /* node index or NO_OWNER */
    snode_t *nodes;
    size_t n, cap;
    size_t covered;
};

unsigned hb_slot_crc16(const char *s, size_t len)
{
    /* Bitwise CRC16-CCITT, polynomial 0x1021, initial 0: the one in Redis' cluster spec. */
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)s[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

unsigned hb_slot_of(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return hb_slot_crc16(open + 1, (size_t)(close - open - 1)) & (HB_SLOT_COUNT - 1);
    }
    return hb_slot_crc16(key, len) & (HB_SLOT_COUNT - 1);
}

int hb_slot_tag(unsigned slot, char out[HB_SLOT_TAG_MAX])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    if (slot >= HB_SLOT_COUNT)
        return HB_EINVAL;
    /* Shortest first: 36 + 36^2 + 36^3 + 36^4 candidates cover every slot (checked by a test). */
    for (int len = 1; len <= 4; len++) {
        unsigned long total = 1;
        for (int i = 0; i < len; i++)
            total *= 36;
        for (unsigned long v = 0; v < total; v++) {
            unsigned long x = v;
            for (int i = len - 1; i >= 0; i--) {
                out[i] = digits[x % 36];
                x /= 36;
            }
            out[len] = '\0';
            if ((hb_slot_crc16(out, (size_t)len) & (HB_SLOT_COUNT - 1)) == slot)
                return 0;
        }
    }
    out[0] = '\0';
    return HB_EINVAL; /* not reached: every slot has a tag of at most 4 characters */
}

void hb_slot_tag_table(char (*out)[HB_SLOT_TAG_MAX])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    size_t left = HB_SLOT_COUNT;
    char cand[HB_SLOT_TAG_MAX];
    for (size_t s = 0; s < HB_SLOT_COUNT; s++)
        out[s][0] = '\0';
    /* Same order as hb_slot_tag(): by length, then in base-36 order; the first hit wins. */
    for (int len = 1; len <= 4 && left; len++) {
        unsigned long total = 1;
        for (int i = 0; i < len; i++)
            total *= 36;
        for (unsigned long v = 0; v < total && left; v++) {
            unsigned long x = v;
            unsigned slot;
            for (int i = len - 1; i >= 0; i--) {
                cand[i] = digits[x % 36];
                x /= 36;
            }
            cand[len] = '\0';
            slot = hb_slot_crc16(cand, (size_t)len) & (HB_SLOT_COUNT - 1);
            if (!out[slot][0]) {
                memcpy(out[slot], cand, (size_t)len + 1);
                left--;
            }
        }
    }
}

int hb_slot_host_ok(const char *s, size_t len)
{
    if (!s || len == 0 || len > HB_SLOT_HOST_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == ':' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Parses a decimal number of at most `maxdig` digits in [s, s+len). */
static int parse_num(const char *s, size_t len, size_t maxdig, long *out)
{
    long v = 0;
    if (len == 0 || len > maxdig)
        return HB_EPROTO;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return HB_EPROTO;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

#define FAIL(r)                                                                                    \
    do {                                                                                           \
        if (reason)                                                                                \
            *reason = (r);                                                                         \
        return HB_EPROTO;                                                                          \
    } while (0)

int hb_slot_redirect_parse(const char *s, size_t len, int *ask, unsigned *slot, char *host,
                           size_t hcap, int *port, const char **reason)
{
    const char *p, *sp, *end = s + len, *colon;
    long v;
    size_t hl;

    if (len >= 6 && !memcmp(s, "MOVED ", 6)) {
        *ask = 0;
        p = s + 6;
    } else if (len >= 4 && !memcmp(s, "ASK ", 4)) {
        *ask = 1;
        p = s + 4;
    } else {
        FAIL("not a MOVED or ASK redirection");
    }
    sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || parse_num(p, (size_t)(sp - p), 5, &v) || v >= HB_SLOT_COUNT)
        FAIL("redirection has a bad slot");
    *slot = (unsigned)v;
    p = sp + 1;
    /* host:port up to the end (or the first space: later Redis versions may append fields) */
    sp = memchr(p, ' ', (size_t)(end - p));
    if (sp)
        end = sp;
    colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || parse_num(colon + 1, (size_t)(end - colon - 1), 5, &v) || v < 1 || v > 65535)
        FAIL("redirection has a bad port");
    *port = (int)v;
    if (colon - p >= 2 && p[0] == '[' && colon[-1] == ']') {
        p++;
        hl = (size_t)(colon - 1 - p);
    } else {
        hl = (size_t)(colon - p);
    }
    if (hl > 0 && !hb_slot_host_ok(p, hl))
        FAIL("redirection has a bad host");
    if (hl + 1 > hcap)
        FAIL("redirection host too long");
    memcpy(host, p, hl);
    host[hl] = '\0';
    return 0;
}

hb_slot_map_t *hb_slot_map_new(void)
{
    hb_slot_map_t *m = hb_xcalloc(1, sizeof(*m));
    memset(m->owner, 0xff, sizeof(m->owner));
    return m;
}

void hb_slot_map_free(hb_slot_map_t *m)
{
    if (!m)
        return;
    free(m->nodes);
    free(m);
}

int hb_slot_map_node(hb_slot_map_t *m, const char *host, size_t hlen, int port)
{
    if (!hb_slot_host_ok(host, hlen) || port < 1 || port > 65535)
        return HB_EPROTO;
    for (size_t i = 0; i < m->n; i++)
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == hlen &&
            !memcmp(m->nodes[i].host, host, hlen))
            return (int)i;
    if (m->n >= HB_SLOT_NODES_MAX)
        return HB_ELIMIT;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->nodes = hb_xrealloc(m->nodes, m->cap * sizeof(*m->nodes));
    }
    memcpy(m->nodes[m->n].host, host, hlen);
    m->nodes[m->n].host[hlen] = '\0';
    m->nodes[m->n].port = port;
    return (int)m->n++;
}

int hb_slot_map_assign(hb_slot_map_t *m, long lo, long hi, const char *host, size_t hlen, int port)
{
    int idx;
    if (lo < 0 || lo > hi || hi >= HB_SLOT_COUNT)
        return HB_EINVAL;
    idx = hb_slot_map_node(m, host, hlen, port);
    if (idx < 0)
        return idx;
    for (long s = lo; s <= hi; s++) {
        if (m->owner[s] == NO_OWNER)
            m->covered++;
        m->owner[s] = (uint16_t)idx;
    }
    return idx;
}

int hb_slot_map_owner(const hb_slot_map_t *m, unsigned slot)
{
    if (slot >= HB_SLOT_COUNT || m->owner[slot] == NO_OWNER)
        return HB_ENOTFOUND;
    return m->owner[slot];
}

size_t hb_slot_map_nodes(const hb_slot_map_t *m)
{
    return m->n;
}

const char *hb_slot_map_host(const hb_slot_map_t *m, int idx)
{
    return idx >= 0 && (size_t)idx < m->n ? m->nodes[idx].host : NULL;
}

int hb_slot_map_port(const hb_slot_map_t *m, int idx)
{
    return idx >= 0 && (size_t)idx < m->n ? m->nodes[idx].port : 0;
}

size_t hb_slot_map_covered(const hb_slot_map_t *m)
{
    return m->covered;
}

long hb_slot_map_first_slot(const hb_slot_map_t *m, int idx)
{
    for (long s = 0; s < HB_SLOT_COUNT; s++)
        if (m->owner[s] == (uint16_t)idx && idx >= 0)
            return s;
    return HB_ENOTFOUND;
}
