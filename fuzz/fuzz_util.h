/* Helpers shared by the fuzz targets. */
#ifndef CSIP_FUZZ_UTIL_H
#define CSIP_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "csip/base.h"

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

#endif
