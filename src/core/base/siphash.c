/*
 * SipHash-2-4 with a 128-bit output (J.-P. Aumasson, D. J. Bernstein,
 * "SipHash: a fast short-input PRF", 2012): a keyed MAC for short inputs,
 * used for the digest nonces (src/core/auth/server.c), where HMAC-SHA256
 * through OpenSSL cost about 40 times as much per nonce.
 */
#include "base/base_int.h"

#include <string.h>

#define SIPROUND CSIP__SIPROUND(v0, v1, v2, v3)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

void csip__siphash128(const uint8_t key[16], const void *data, size_t len, uint8_t out[16])
{
    const uint8_t *in = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    v1 ^= 0xee; /* the 128-bit variant */
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint8_t last[8] = {0};
    if (len > whole)
        memcpy(last, in + whole, len - whole);
    uint64_t b = (uint64_t)len << 56 | le64(last);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    put_le64(out, v0 ^ v1 ^ v2 ^ v3);
    v1 ^= 0xdd;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    put_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}
