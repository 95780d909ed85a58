#include "hb_dict.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_mem.h"

/*
 * Open addressing with linear probing over a power-of-two table. A deleted slot becomes a
 * tombstone rather than shifting its neighbours back, so deleting the entry an iterator just
 * returned never moves an entry it has not visited yet. Tombstones count towards the load and
 * are dropped by the next rehash.
 */
#define DICT_MIN_CAP 8
/* Rehash when live + tombstone slots would exceed 3/4 of the table. */
#define DICT_LOAD_NUM 3
#define DICT_LOAD_DEN 4

typedef struct dict_slot {
    char *key; /* owned copy; NULL = empty, TOMBSTONE = deleted */
    size_t klen;
    uint64_t hash;
    void *value;
} dict_slot_t;

/* Owned by its creator; one thread. */
struct hb_dict {
    dict_slot_t *slots;
    size_t cap;  /* power of two */
    size_t size; /* live entries */
    size_t used; /* live entries + tombstones */
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static int slot_live(const dict_slot_t *s)
{
    return s->key != NULL && s->key != TOMBSTONE;
}

/* FNV-1a 64, then the murmur3 finaliser so that the low bits used as the index are mixed. */
static uint64_t dict_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

hb_dict_t *hb_dict_new(void)
{
    hb_dict_t *d = hb_xmalloc(sizeof(*d));
    d->cap = DICT_MIN_CAP;
    d->slots = hb_xcalloc(d->cap, sizeof(dict_slot_t));
    d->size = 0;
    d->used = 0;
    return d;
}

void hb_dict_free(hb_dict_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->cap; i++)
        if (slot_live(&d->slots[i]))
            free(d->slots[i].key);
    free(d->slots);
    free(d);
}

/* The slot holding key, or NULL. */
static dict_slot_t *dict_find(const hb_dict_t *d, const void *key, size_t klen, uint64_t h)
{
    size_t mask = d->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        dict_slot_t *s = &d->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->key != TOMBSTONE && s->hash == h && s->klen == klen &&
            (klen == 0 || memcmp(s->key, key, klen) == 0))
            return s;
    }
}

/* Move every live entry into a fresh table of new_cap slots, dropping tombstones. */
static void dict_rehash(hb_dict_t *d, size_t new_cap)
{
    dict_slot_t *old = d->slots;
    size_t old_cap = d->cap;
    d->slots = hb_xcalloc(new_cap, sizeof(dict_slot_t));
    d->cap = new_cap;
    d->used = d->size;
    size_t mask = new_cap - 1;
    for (size_t j = 0; j < old_cap; j++) {
        if (!slot_live(&old[j]))
            continue;
        size_t i = (size_t)old[j].hash & mask;
        while (d->slots[i].key != NULL)
            i = (i + 1) & mask;
        d->slots[i] = old[j];
    }
    free(old);
}

void *hb_dict_get(const hb_dict_t *d, const void *key, size_t klen)
{
    dict_slot_t *s = dict_find(d, key, klen, dict_hash(key, klen));
    return s ? s->value : NULL;
}

void *hb_dict_set(hb_dict_t *d, const void *key, size_t klen, void *value)
{
    uint64_t h = dict_hash(key, klen);
    dict_slot_t *s = dict_find(d, key, klen, h);
    if (s != NULL) {
        void *prev = s->value;
        s->value = value;
        return prev;
    }
    if ((d->used + 1) * DICT_LOAD_DEN > d->cap * DICT_LOAD_NUM) {
        /* Grow when live entries alone fill half the table; otherwise just drop tombstones. */
        size_t new_cap = d->cap;
        while ((d->size + 1) * 2 > new_cap) {
            if (new_cap > SIZE_MAX / 2 / sizeof(dict_slot_t))
                abort();
            new_cap *= 2;
        }
        dict_rehash(d, new_cap);
    }
    /* Reuse the first tombstone or empty slot on the probe path. */
    size_t mask = d->cap - 1;
    size_t i = (size_t)h & mask;
    while (slot_live(&d->slots[i]))
        i = (i + 1) & mask;
    s = &d->slots[i];
    if (s->key == NULL)
        d->used++;
    s->key = hb_xmemdup(key, klen);
    s->klen = klen;
    s->hash = h;
    s->value = value;
    d->size++;
    return NULL;
}

void *hb_dict_del(hb_dict_t *d, const void *key, size_t klen)
{
    dict_slot_t *s = dict_find(d, key, klen, dict_hash(key, klen));
    if (s == NULL)
        return NULL;
    void *value = s->value;
    free(s->key);
    s->key = TOMBSTONE;
    s->klen = 0;
    s->value = NULL;
    d->size--;
    return value;
}

size_t hb_dict_size(const hb_dict_t *d)
{
    return d->size;
}

int hb_dict_next(const hb_dict_t *d, size_t *it, const void **key, size_t *klen, void **value)
{
    for (size_t i = *it; i < d->cap; i++) {
        const dict_slot_t *s = &d->slots[i];
        if (!slot_live(s))
            continue;
        if (key)
            *key = s->key;
        if (klen)
            *klen = s->klen;
        if (value)
            *value = s->value;
        *it = i + 1;
        return 1;
    }
    *it = d->cap;
    return 0;
}
