#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"

static void *libc_malloc(size_t n, void *u)
{
    (void)u;
    return malloc(n);
}
static void libc_free(void *p, void *u)
{
    (void)u;
    free(p);
}
static void *libc_realloc(void *p, size_t n, void *u)
{
    (void)u;
    return realloc(p, n);
}

static const csip_mem libc_mem = {libc_malloc, libc_free, libc_realloc, NULL};

const csip_mem *csip_mem_default(void)
{
    return &libc_mem;
}

void *csip__malloc(const csip_mem *mem, size_t n)
{
    if (!mem)
        return malloc(n);
    return mem->malloc(n, mem->user_data);
}

void *csip__realloc(const csip_mem *mem, void *p, size_t n)
{
    if (!mem)
        return realloc(p, n);
    return mem->realloc(p, n, mem->user_data);
}

void csip__free(const csip_mem *mem, void *p)
{
    if (!p)
        return;
    if (!mem)
        free(p);
    else
        mem->free(p, mem->user_data);
}

/* Arena blocks grow geometrically from 1 KiB; a big request gets its own block. */
#define ARENA_MIN_BLOCK 1024u

void csip__arena_init(csip__arena *a, const csip_mem *mem, void *initial, size_t len)
{
    a->mem = mem;
    a->blocks = NULL;
    if (initial) {
        /* align the start */
        uintptr_t p = ((uintptr_t)initial + 7u) & ~(uintptr_t)7u;
        size_t skip = (size_t)(p - (uintptr_t)initial);
        a->cur = (char *)p;
        a->end = skip <= len ? (char *)initial + len : a->cur;
    } else {
        a->cur = a->end = NULL;
    }
}

void *csip__arena_alloc_slow(csip__arena *a, size_t n)
{
    size_t hdr = (sizeof(csip__arena_block) + 7u) & ~(size_t)7u;
    size_t size = ARENA_MIN_BLOCK;
    size_t prev = (size_t)(a->end - a->cur);
    (void)prev;
    for (csip__arena_block *b = a->blocks; b && size < 64u * 1024u; b = b->next)
        size *= 2;
    if (size < n + hdr)
        size = n + hdr;
    csip__arena_block *b = csip__malloc(a->mem, size);
    if (!b)
        return NULL;
    b->next = a->blocks;
    a->blocks = b;
    char *p = (char *)b + hdr;
    a->cur = p + n;
    a->end = (char *)b + size;
    return p;
}

void *csip__arena_calloc(csip__arena *a, size_t n)
{
    void *p = csip__arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *csip__arena_memdup(csip__arena *a, const void *src, size_t n)
{
    char *p = csip__arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, src, n);
    p[n] = 0;
    return p;
}

void csip__arena_reset(csip__arena *a)
{
    csip__arena_block *b = a->blocks;
    while (b) {
        csip__arena_block *next = b->next;
        csip__free(a->mem, b);
        b = next;
    }
    a->blocks = NULL;
    a->cur = a->end = NULL;
}
