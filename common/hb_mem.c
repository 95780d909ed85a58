#include "hb_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Out of memory for a small fixed-size object: there is no sensible way to go on. */
static void oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void *hb_xmalloc(size_t n)
{
    /* malloc(0) may return NULL; ask for one byte so NULL always means OOM. */
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *hb_xcalloc(size_t n, size_t sz)
{
    if (sz != 0 && n > SIZE_MAX / sz)
        oom(SIZE_MAX);
    if (n == 0 || sz == 0)
        n = sz = 1;
    void *p = calloc(n, sz);
    if (p == NULL)
        oom(n * sz);
    return p;
}

void *hb_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *hb_xstrdup(const char *s)
{
    return hb_xmemdup(s, strlen(s));
}

char *hb_xmemdup(const void *p, size_t len)
{
    if (len == SIZE_MAX)
        oom(len);
    char *s = hb_xmalloc(len + 1);
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}
