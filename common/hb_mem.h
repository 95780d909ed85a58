#ifndef HERALD_COMMON_HB_MEM_H
#define HERALD_COMMON_HB_MEM_H

#include <stddef.h>

/**
 * hb_xmalloc() - malloc for small fixed-size allocations; aborts the process on OOM
 * (like zmalloc/h2o_mem_alloc). Never use it for sizes that come from input: check the
 * limit first and call malloc() directly.
 */
void *hb_xmalloc(size_t n);
/** hb_xcalloc() - calloc that aborts on OOM or on n * sz overflow. */
void *hb_xcalloc(size_t n, size_t sz);
/** hb_xrealloc() - realloc that aborts on OOM. */
void *hb_xrealloc(void *p, size_t n);
/** hb_xstrdup() - strdup that aborts on OOM. */
char *hb_xstrdup(const char *s);
/** hb_xmemdup() - copy of len bytes plus a terminating NUL; aborts on OOM. */
char *hb_xmemdup(const void *p, size_t len);

#endif
