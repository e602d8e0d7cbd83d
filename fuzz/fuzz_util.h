/* Helpers shared by the fuzz targets. */
#ifndef CSIP_FUZZ_UTIL_H
#define CSIP_FUZZ_UTIL_H

#include "csip/base.h"

#include <stdio.h>
#include <stdlib.h>

/* Reading every byte of every view lets AddressSanitizer check that it lies in live memory. */
static volatile unsigned char fuzz_sink;

/* A property that must hold did not: report it and crash, so libFuzzer keeps the input. */
static inline void fuzz_fail(const char *target, const char *what, long a, long b)
{
    fprintf(stderr, "%s: property violated: %s (%ld, %ld)\n", target, what, a, b);
    abort();
}

static inline void fuzz_touch(csip_str s)
{
    if (s.p == NULL)
        return;
    unsigned char acc = 0;
    for (size_t i = 0; i < s.len; i++)
        acc = (unsigned char)(acc ^ (unsigned char)s.p[i]);
    fuzz_sink = acc;
}

/*
 * An allocator that fails: the fail_at-th allocation or reallocation (1-based;
 * 0 = never), and with sticky every one after it too. It counts the calls
 * and the blocks still live, so that a target can check that an error path
 * freed everything (live back to 0).
 */
typedef struct fuzz_failmem {
    long count, fail_at, live;
    int sticky;
    csip_mem mem;
} fuzz_failmem;

static inline int fuzz_failmem_fails(fuzz_failmem *f)
{
    ++f->count;
    return f->fail_at && (f->count == f->fail_at || (f->sticky && f->count > f->fail_at));
}

static inline void *fuzz_failmem_malloc(size_t n, void *u)
{
    fuzz_failmem *f = u;
    if (fuzz_failmem_fails(f))
        return NULL;
    f->live++;
    return malloc(n);
}

static inline void fuzz_failmem_free(void *p, void *u)
{
    fuzz_failmem *f = u;
    if (p)
        f->live--;
    free(p);
}

static inline void *fuzz_failmem_realloc(void *p, size_t n, void *u)
{
    fuzz_failmem *f = u;
    if (fuzz_failmem_fails(f))
        return NULL;
    if (!p)
        f->live++;
    return realloc(p, n);
}

/* Sets f up and returns its csip_mem. */
static inline const csip_mem *fuzz_failmem_init(fuzz_failmem *f, long fail_at, int sticky)
{
    f->count = f->live = 0;
    f->fail_at = fail_at;
    f->sticky = sticky;
    f->mem.malloc = fuzz_failmem_malloc;
    f->mem.free = fuzz_failmem_free;
    f->mem.realloc = fuzz_failmem_realloc;
    f->mem.user_data = f;
    return &f->mem;
}

#endif
