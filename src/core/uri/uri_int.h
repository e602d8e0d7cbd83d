/*
 * Internal URI helpers shared with the other core layers (the Via sent-by and
 * received parameters use the same host grammar as SIP URIs).
 */
#ifndef CSIP_URI_INT_H
#define CSIP_URI_INT_H

#include "base/base_int.h"
#include "csip/uri.h"

#include <stddef.h>

/*
 * Checks that [p, p+n) is a whole host (RFC 3261 §25.1 host, with the dec-octet
 * IPv4 of RFC 5954 §4.1): a hostname, a dotted-quad IPv4 address without leading
 * zeros, or an IPv6 reference in brackets. Stores the kind in *type.
 * Returns true when the host is well formed.
 */
bool csip__host_check(const char *p, size_t n, csip_host_type *type);

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#define CSIP__HOST_RUN 1
/*
 * The run of host octets (letters, digits, '-' and '.') at p, 16 octets a
 * step: *n its length, *dots and *dashes bit masks of its '.' and '-' (bit i
 * for p[i]). The end ends the run; the last step loads the 16 octets before
 * it. Returns false when it cannot tell: fewer than 16 octets from p to end,
 * or a run of 64 octets or longer. Host parsers check their label rules on
 * the masks instead of a branch per label.
 */
static inline bool csip__host_run(const char *p, const char *end, size_t *n, uint64_t *dots,
                                  uint64_t *dashes)
{
    if (end - p < 16)
        return false;
    uint64_t d = 0, h = 0;
    for (unsigned off = 0; off < 64; off += 16) {
        const char *q = p + off;
        const ptrdiff_t avail = end - q;
        unsigned lim = 16, shift = 0;
        if (avail < 16) {
            /* the 16 octets before end, shifted so that bit 0 is q */
            lim = avail > 0 ? (unsigned)avail : 0;
            shift = 16 - lim;
            q = end - 16;
        }
        const __m128i c = _mm_loadu_si128((const __m128i *)(const void *)q);
        unsigned other = ~(csip__host_mask16(c) >> shift) & ((1u << lim) - 1);
        if (lim < 16)
            other |= 1u << lim;
        d |= (uint64_t)((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(c, _mm_set1_epi8('.'))) >> shift)
             << off;
        h |= (uint64_t)((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(c, _mm_set1_epi8('-'))) >> shift)
             << off;
        if (other) {
            unsigned k = off + (unsigned)__builtin_ctz(other);
            uint64_t keep = ((uint64_t)1 << k) - 1;
            *n = k;
            *dots = d & keep;
            *dashes = h & keep;
            return true;
        }
    }
    return false;
}
#endif

/*
 * A dotted quad at p, as csip__ipv4_parse() reads one, that a scan of host
 * octets would end at the same octet (no letter, digit, '-' or '.' follows):
 * its end, or NULL when the caller's general host scan must decide. A fast
 * path for host parsers: it accepts nothing they would reject.
 */
static inline const char *csip__scan_ipv4(const char *p, const char *end)
{
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (p == end || *p != '.')
                return NULL;
            p++;
        }
        unsigned d, v;
        if (p == end || (v = (unsigned)((unsigned char)*p - '0')) > 9)
            return NULL;
        p++;
        if (v != 0 && p < end && (d = (unsigned)((unsigned char)*p - '0')) <= 9) {
            v = v * 10 + d;
            p++;
            if (p < end && (d = (unsigned)((unsigned char)*p - '0')) <= 9) {
                v = v * 10 + d;
                p++;
                if (v > 255)
                    return NULL;
            }
        }
    }
    if (p < end && csip__is((unsigned char)*p, CSIP_C_HOST))
        return NULL;
    return p;
}

/*
 * Parses a sip URI (scheme "sip", any case) at p that ends at the first octet
 * that cannot continue it, when that octet is `stop` (never an octet of a sip
 * URI, e.g. the '>' of a name-addr) and lies before end. On success fills
 * *out exactly as csip_uri_parse(p, *uend - p, 0, out) would, sets *uend to
 * the stop octet and returns 0. Otherwise returns -1 with *out unspecified:
 * the caller then finds the end itself and calls csip_uri_parse(), which
 * reports the error (this path saves that search for the usual URI).
 */
int csip__uri_parse_until(const char *p, const char *end, char stop, csip_uri *out,
                          const char **uend);

#endif
