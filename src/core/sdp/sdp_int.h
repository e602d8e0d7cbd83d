/*
 * Internal SDP helpers shared by the parser (parse.c), the printer (print.c)
 * and offer/answer (offer.c).
 */
#ifndef CSIP_SDP_INT_H
#define CSIP_SDP_INT_H

#include "base/base_int.h"
#include "csip/sdp.h"

/* A parsed description: the public fields, then (in the same allocation) the
 * arrays they point to. */
struct csip_sdp {
    const csip_mem *mem;
    const char *buf;
    size_t len;
    csip_sdp_desc d;
};

/* Character classes of RFC 8866 §9 (locale-free). */
static inline bool csip__sdp_token(unsigned char c)
{
    /* token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E */
    return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2A || c == 0x2B || c == 0x2D ||
           c == 0x2E || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) ||
           (c >= 0x5E && c <= 0x7E);
}
static inline bool csip__sdp_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
/* byte-string: every octet but NUL, CR and LF. */
static inline bool csip__sdp_byte(unsigned char c)
{
    return c != 0 && c != '\r' && c != '\n';
}
/* non-ws-string: VCHAR / %x80-FF */
static inline bool csip__sdp_nonws(unsigned char c)
{
    return (c >= 0x21 && c <= 0x7E) || c >= 0x80;
}

/* True when every octet of s is a token-char and s is not empty. */
bool csip__sdp_is_token(csip_str s);
/* True when s is not empty and holds no NUL, CR or LF. */
bool csip__sdp_is_bytes(csip_str s);
/* 1*DIGIT to a uint64; false when empty, not digits or above UINT64_MAX. */
bool csip__sdp_u64(csip_str s, uint64_t *out);
/* An RTP payload type: "0".."127" without leading zeros; false otherwise. */
bool csip__sdp_pt(csip_str s, unsigned *pt);
/* True when a proto (RFC 8866 §5.14) carries RTP: one of its '/'-separated parts is "RTP". */
bool csip__sdp_proto_rtp(csip_str proto);

/*
 * Output writer: appends into [out, out + cap) while it fits and counts the
 * length either way (out NULL counts only). Everything written while `hashing`
 * is true also goes into an FNV-1a 64 hash (offer/answer versioning).
 */
typedef struct csip__sdp_w {
    char *out;
    size_t cap;
    size_t len;
    uint64_t hash;
    bool hashing;
} csip__sdp_w;

void csip__sdp_w_init(csip__sdp_w *w, char *out, size_t cap);
void csip__sdp_put(csip__sdp_w *w, const char *p, size_t n);
static inline void csip__sdp_puts(csip__sdp_w *w, csip_str s)
{
    csip__sdp_put(w, s.p, s.len);
}
static inline void csip__sdp_putc(csip__sdp_w *w, const char *s)
{
    csip__sdp_put(w, s, strlen(s));
}
void csip__sdp_put_u64(csip__sdp_w *w, uint64_t v);
/* The result of a write: the length, or CSIP_ERR_BUFFER_TOO_SMALL / CSIP_ERR_RANGE. */
int csip__sdp_w_end(const csip__sdp_w *w);

#endif
