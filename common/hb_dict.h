#ifndef HERALD_COMMON_HB_DICT_H
#define HERALD_COMMON_HB_DICT_H

#include <stddef.h>

/*
 * A hash map from byte-string keys to void * values (open addressing, grows by doubling, keys
 * copied and owned by the dict). Single-threaded: each instance belongs to one thread.
 */
typedef struct hb_dict hb_dict_t;

/** hb_dict_new() - an empty dict; aborts on OOM. */
hb_dict_t *hb_dict_new(void);
/** hb_dict_free() - free the dict and its key copies (not the values); accepts NULL. */
void hb_dict_free(hb_dict_t *d);
/** hb_dict_get() - the value for key, or NULL when absent. */
void *hb_dict_get(const hb_dict_t *d, const void *key, size_t klen);
/** hb_dict_set() - insert or replace; returns the previous value (or NULL). Aborts on OOM. */
void *hb_dict_set(hb_dict_t *d, const void *key, size_t klen, void *value);
/** hb_dict_del() - remove key; returns the removed value, or NULL when absent. */
void *hb_dict_del(hb_dict_t *d, const void *key, size_t klen);
/** hb_dict_size() - number of entries. */
size_t hb_dict_size(const hb_dict_t *d);

/*
 * Iteration: `size_t it = 0; while (hb_dict_next(d, &it, &k, &klen, &v)) { ... }`.
 * The dict must not be modified during iteration, except hb_dict_del() of the entry just
 * returned.
 */
int hb_dict_next(const hb_dict_t *d, size_t *it, const void **key, size_t *klen, void **value);

#endif
