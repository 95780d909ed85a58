#ifndef HERALD_TESTS_FUZZ_UTIL_H
#define HERALD_TESTS_FUZZ_UTIL_H

/*
 * Helpers shared by the libFuzzer harnesses. A property violation prints what was violated and
 * calls abort(), which libFuzzer reports as a crash and saves the input. (assert() is not used:
 * release-type builds define NDEBUG.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A reason is a constant single line: non-NULL, non-empty, no CR/LF (it becomes a 400 body). */
static inline int fz_reason_ok(const char *r)
{
    return r != NULL && r[0] != '\0' && strpbrk(r, "\r\n") == NULL && strlen(r) < 200;
}

/* 1 when [p, p+n) lies within [base, base+len). */
static inline int fz_within(const void *p, size_t n, const void *base, size_t len)
{
    const unsigned char *a = p, *b = base;
    return a >= b && a <= b + len && n <= (size_t)(b + len - a);
}

/*
 * Splits (data, size) into parts at the first `parts - 1` 0xff bytes: a simple, mutation-friendly
 * way to get several fields out of one input. Missing parts are empty.
 */
static inline void fz_split(const uint8_t *data, size_t size, int parts, const uint8_t **p,
                            size_t *n)
{
    size_t pos = 0;
    for (int i = 0; i < parts; i++) {
        p[i] = data + pos;
        if (i == parts - 1) {
            n[i] = size - pos;
            break;
        }
        const uint8_t *sep = pos < size ? memchr(data + pos, 0xff, size - pos) : NULL;
        n[i] = sep ? (size_t)(sep - (data + pos)) : size - pos;
        pos += n[i] + (sep ? 1 : 0);
    }
}

/* A heap copy of (p, n) so that ASan sees reads past the end of exactly n bytes. */
static inline void *fz_dup(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d == NULL)
        abort();
    if (n)
        memcpy(d, p, n);
    return d;
}

/* A NUL-terminated heap copy of (p, n) (which may itself hold NULs). */
static inline char *fz_strdup(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        abort();
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

#endif
