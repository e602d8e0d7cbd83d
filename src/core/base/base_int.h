/*
 * Internal base helpers shared by the core layers: allocation through
 * csip_mem, the per-message arena, and character classes for wire data
 * (locale-free; never use <ctype.h> on wire bytes).
 */
#ifndef CSIP_BASE_INT_H
#define CSIP_BASE_INT_H

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "csip/base.h"

#if defined(__GNUC__)
#define csip_likely(x) __builtin_expect(!!(x), 1)
#define csip_unlikely(x) __builtin_expect(!!(x), 0)
/* Asks for the cache line of p ahead of its use (no effect on meaning). */
#define csip_prefetch(p) __builtin_prefetch(p)
#else
#define csip_likely(x) (x)
#define csip_unlikely(x) (x)
#define csip_prefetch(p) ((void)(p))
#endif

/* Allocation through a csip_mem (NULL = libc). */
void *csip__malloc(const csip_mem *mem, size_t n);
void *csip__realloc(const csip_mem *mem, void *p, size_t n);
void csip__free(const csip_mem *mem, void *p);

/*
 * Arena: bump allocation in blocks; everything is released at once by
 * csip__arena_reset(). The first block may be caller-provided (it is never
 * freed by the arena). Allocations are 8-byte aligned.
 */
typedef struct csip__arena_block {
    struct csip__arena_block *next;
} csip__arena_block;

typedef struct csip__arena {
    char *cur;
    char *end;
    csip__arena_block *blocks; /* blocks allocated by the arena, freed on reset */
    const csip_mem *mem;
} csip__arena;

/* Starts an arena over [initial, initial + len) (may be NULL/0). */
void csip__arena_init(csip__arena *a, const csip_mem *mem, void *initial, size_t len);
/* Returns n bytes (8-aligned, uninitialised) or NULL when out of memory. */
void *csip__arena_alloc_slow(csip__arena *a, size_t n);
static inline void *csip__arena_alloc(csip__arena *a, size_t n)
{
    n = (n + 7u) & ~(size_t)7u;
    if (csip_likely((size_t)(a->end - a->cur) >= n)) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    return csip__arena_alloc_slow(a, n);
}
/* Zeroed allocation. */
void *csip__arena_calloc(csip__arena *a, size_t n);
/* Copies bytes into the arena (adds a NUL after them for convenience). */
char *csip__arena_memdup(csip__arena *a, const void *p, size_t n);
/* Frees every block the arena allocated. */
void csip__arena_reset(csip__arena *a);

/* Character classes. */
enum {
    CSIP_C_TOKEN = 1u << 0,   /* RFC 3261 token */
    CSIP_C_DIGIT = 1u << 1,
    CSIP_C_ALPHA = 1u << 2,
    CSIP_C_HEX = 1u << 3,
    CSIP_C_WS = 1u << 4,      /* SP HT */
    CSIP_C_LWS = 1u << 5,     /* SP HT CR LF (folded values) */
    CSIP_C_UNRESERVED = 1u << 6,
    CSIP_C_USER = 1u << 7,    /* unreserved / user-unreserved (escapes checked apart) */
    CSIP_C_PASSWORD = 1u << 8,
    CSIP_C_PARAM = 1u << 9,   /* paramchar: param-unreserved / unreserved */
    CSIP_C_HNV = 1u << 10,    /* hnv-unreserved / unreserved */
    CSIP_C_WORD = 1u << 11,   /* RFC 3261 word (Call-ID) */
    CSIP_C_HOST = 1u << 12,   /* alphanum - . */
    CSIP_C_URIC = 1u << 13,   /* RFC 2396 uric: reserved / unreserved (escapes apart) */
    CSIP_C_GENVAL = 1u << 14, /* gen-value without quotes: token / host (incl. IPv6 [:]) */
};
extern const uint16_t csip__ctab[256];

static inline bool csip__is(unsigned char c, unsigned cls)
{
    return (csip__ctab[c] & cls) != 0;
}
static inline char csip__lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}
static inline int csip__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * The end of the run of octets of class `cls` starting at p (p itself when
 * there is none): the hot loop of every value scanner. Unrolled by eight
 * against a bound computed once, so that an octet costs its load and test
 * (the end is not recomputed every step), then by four, then one by one.
 */
static inline const char *csip__span(const char *p, const char *end, unsigned cls)
{
    if (end - p >= 8) {
        const char *last8 = end - 8;
        do {
            if (!csip__is((unsigned char)p[0], cls))
                return p;
            if (!csip__is((unsigned char)p[1], cls))
                return p + 1;
            if (!csip__is((unsigned char)p[2], cls))
                return p + 2;
            if (!csip__is((unsigned char)p[3], cls))
                return p + 3;
            if (!csip__is((unsigned char)p[4], cls))
                return p + 4;
            if (!csip__is((unsigned char)p[5], cls))
                return p + 5;
            if (!csip__is((unsigned char)p[6], cls))
                return p + 6;
            if (!csip__is((unsigned char)p[7], cls))
                return p + 7;
            p += 8;
        } while (p <= last8);
    }
    if (end - p >= 4) {
        if (!csip__is((unsigned char)p[0], cls))
            return p;
        if (!csip__is((unsigned char)p[1], cls))
            return p + 1;
        if (!csip__is((unsigned char)p[2], cls))
            return p + 2;
        if (!csip__is((unsigned char)p[3], cls))
            return p + 3;
        p += 4;
    }
    while (p < end && csip__is((unsigned char)*p, cls))
        p++;
    return p;
}

/*
 * Zeroes n octets at p, n a constant: straight-line 16-octet stores (the last
 * one overlapping) where memset() of a mid-sized struct may become a
 * `rep stos` loop. Meant for structs of 16 to about 256 octets.
 */
static inline void csip__zero(void *p, size_t n)
{
#if defined(__SSE2__)
    if (n >= 16) {
        char *c = p;
        const __m128i z = _mm_setzero_si128();
        size_t i = 0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 32
#endif
        for (; i + 16 <= n; i += 16)
            _mm_storeu_si128((__m128i *)(void *)(c + i), z);
        if (i < n)
            _mm_storeu_si128((__m128i *)(void *)(c + n - 16), z);
        return;
    }
#endif
    memset(p, 0, n);
}

#if defined(__SSE2__)
/*
 * The host octets (letters, digits, '-' and '.') among 16: bit i set when
 * c[i] is one. (c | 0x20) in 'a'..'z', c in '-'..'9' but not '/': unsigned
 * ranges as signed compares after moving each range's start to -128. Shared
 * by the 16-octet scanners of hosts (csip__host_run) and long values
 * (csip__span_long).
 */
static inline unsigned csip__host_mask16(__m128i c)
{
    const __m128i letter = _mm_cmplt_epi8(
        _mm_add_epi8(_mm_or_si128(c, _mm_set1_epi8(0x20)), _mm_set1_epi8((char)(0x80 - 'a'))),
        _mm_set1_epi8((char)(-128 + 26)));
    const __m128i dash_to_nine = _mm_cmplt_epi8(
        _mm_add_epi8(c, _mm_set1_epi8((char)(0x80 - '-'))), _mm_set1_epi8((char)(-128 + 13)));
    const __m128i ok = _mm_or_si128(
        letter, _mm_andnot_si128(_mm_cmpeq_epi8(c, _mm_set1_epi8('/')), dash_to_nine));
    return (unsigned)_mm_movemask_epi8(ok);
}
#endif

/* Whether [p, p+n) holds a CR or an LF: 16 octets a step (values that go
 * into an edited message may not hold a line break). */
static inline bool csip__has_crlf(const char *p, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    for (; i + 16 <= n; i += 16) {
        const __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(c, cr), _mm_cmpeq_epi8(c, lf))))
            return true;
    }
#endif
    for (; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n')
            return true;
    return false;
}

/* IP literals (addr.c), shared by addresses, URIs and Via: a dotted quad of
 * four dec-octets without leading zeros, and the RFC 4291 §2.2 text forms of
 * IPv6 (no brackets, no zone). Return true when [p, p+n) is exactly one. */
bool csip__ipv4_parse(const char *p, size_t n, uint8_t out[4]);
bool csip__ipv6_parse(const char *p, size_t n, uint8_t out[16]);

/* Trims SP/HT/CR/LF from both ends of a view. */
csip_str csip__trim(csip_str s);

/* Writes v in decimal at out, without a NUL (at most 20 octets), and returns
 * the number of octets written. Locale-free, unlike snprintf("%u"). */
static inline size_t csip__fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* One SipRound of SipHash (Aumasson and Bernstein) on the state words v0..v3
 * (uint64_t lvalues): shared by the MAC below and the transaction table's
 * SipHash-1-3. */
#define CSIP__ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define CSIP__SIPROUND(v0, v1, v2, v3)                                                             \
    do {                                                                                           \
        (v0) += (v1);                                                                              \
        (v1) = CSIP__ROTL64(v1, 13);                                                               \
        (v1) ^= (v0);                                                                              \
        (v0) = CSIP__ROTL64(v0, 32);                                                               \
        (v2) += (v3);                                                                              \
        (v3) = CSIP__ROTL64(v3, 16);                                                               \
        (v3) ^= (v2);                                                                              \
        (v0) += (v3);                                                                              \
        (v3) = CSIP__ROTL64(v3, 21);                                                               \
        (v3) ^= (v0);                                                                              \
        (v2) += (v1);                                                                              \
        (v1) = CSIP__ROTL64(v1, 17);                                                               \
        (v1) ^= (v2);                                                                              \
        (v2) = CSIP__ROTL64(v2, 32);                                                               \
    } while (0)

/* SipHash-2-4 with a 128-bit output (siphash.c): a keyed MAC of data under
 * a 16-octet key, written to out. */
void csip__siphash128(const uint8_t key[16], const void *data, size_t len, uint8_t out[16]);

#endif
