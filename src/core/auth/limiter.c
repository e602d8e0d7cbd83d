/*
 * The failure limiter (csip/limiter.h): a set-associative table of
 * (hash, theoretical arrival time) pairs.
 */
#include "csip/limiter.h"

#include "base/base_int.h"

#include <openssl/rand.h>
#include <string.h>

#define LIM_WAYS 4u
#define LIM_DEFAULT_BURST 10u
#define LIM_DEFAULT_INTERVAL 3000u
#define LIM_DEFAULT_SLOTS 16384u
#define LIM_MAX_SLOTS (1u << 24)

typedef struct lim_slot {
    uint64_t hash; /* 0: empty */
    uint64_t tat;  /* when the key's debt is paid back, ms */
} lim_slot;

struct csip_limiter {
    const csip_mem *mem;
    uint64_t k0, k1;
    uint64_t interval, limit; /* limit = (burst - 1) * interval */
    size_t mask;              /* sets - 1 */
    uint64_t max_tat;         /* the latest debt ever recorded: none waits after it */
    lim_slot *slot;
};

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* A keyed 64-bit mix (multiply-rotate over 8-byte words, then a finaliser). */
static uint64_t lim_hash(const csip_limiter *l, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = l->k0 ^ (len * 0x9e3779b97f4a7c15u);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl(h ^ (w * 0xff51afd7ed558ccdu), 29) * 0xc4ceb9fe1a85ec53u + l->k1;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = rotl(h ^ (w * 0xff51afd7ed558ccdu), 29) * 0xc4ceb9fe1a85ec53u + l->k1;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h ? h : 1;
}

int csip_limiter_new(const csip_limiter_opts *opts, const csip_mem *mem, csip_limiter **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    csip_limiter_opts o = {0};
    if (opts)
        o = *opts;
    if (o.slots > LIM_MAX_SLOTS)
        return CSIP_ERR_INVALID_ARG;
    uint64_t burst = o.burst ? o.burst : LIM_DEFAULT_BURST;
    uint64_t interval = o.interval_ms ? o.interval_ms : LIM_DEFAULT_INTERVAL;
    size_t slots = LIM_WAYS;
    while (slots < (o.slots ? o.slots : LIM_DEFAULT_SLOTS))
        slots <<= 1;
    csip_limiter *l = csip__malloc(mem, sizeof *l);
    if (!l)
        return CSIP_ERR_NOMEM;
    l->slot = csip__malloc(mem, slots * sizeof *l->slot);
    if (!l->slot || RAND_bytes((unsigned char *)&l->k0, (int)sizeof l->k0) != 1 ||
        RAND_bytes((unsigned char *)&l->k1, (int)sizeof l->k1) != 1) {
        csip__free(mem, l->slot);
        csip__free(mem, l);
        return CSIP_ERR_NOMEM;
    }
    memset(l->slot, 0, slots * sizeof *l->slot);
    l->mem = mem;
    l->max_tat = 0;
    l->interval = interval;
    l->limit = (burst - 1) * interval; /* the burst-th failure at once still passes */
    l->mask = slots / LIM_WAYS - 1;
    *out = l;
    return 0;
}

void csip_limiter_free(csip_limiter *l)
{
    if (!l)
        return;
    csip__free(l->mem, l->slot);
    csip__free(l->mem, l);
}

static lim_slot *lim_set(const csip_limiter *l, uint64_t h)
{
    return &l->slot[((size_t)(h >> 20) & l->mask) * LIM_WAYS];
}

static const lim_slot *lim_find(const csip_limiter *l, uint64_t h)
{
    const lim_slot *set = lim_set(l, h);
    for (unsigned i = 0; i < LIM_WAYS; i++)
        if (set[i].hash == h)
            return &set[i];
    return NULL;
}

static uint32_t lim_wait(const csip_limiter *l, uint64_t tat, uint64_t now)
{
    if (tat <= now + l->limit)
        return 0;
    uint64_t ms = tat - now - l->limit;
    uint64_t s = (ms + 999) / 1000;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

uint32_t csip_limiter_wait(const csip_limiter *l, const void *key, size_t len, uint64_t now_ms)
{
    if (!l || (!key && len))
        return 0;
    /* Nobody failed lately (the usual case): no key can owe anything, and
     * the hash and the table's cache line are spared. */
    if (l->max_tat <= now_ms + l->limit)
        return 0;
    const lim_slot *s = lim_find(l, lim_hash(l, key, len));
    return s ? lim_wait(l, s->tat, now_ms) : 0;
}

uint32_t csip_limiter_fail(csip_limiter *l, const void *key, size_t len, uint64_t now_ms)
{
    if (!l || (!key && len))
        return 0;
    uint64_t h = lim_hash(l, key, len);
    lim_slot *set = lim_set(l, h), *s = NULL;
    for (unsigned i = 0; i < LIM_WAYS && !s; i++)
        if (set[i].hash == h)
            s = &set[i];
    if (!s) {
        /* A new key takes the set's least indebted slot (a paid-up one first). */
        s = &set[0];
        for (unsigned i = 1; i < LIM_WAYS; i++)
            if (set[i].tat < s->tat || set[i].hash == 0)
                s = &set[i];
        s->hash = h;
        s->tat = now_ms;
    }
    if (s->tat < now_ms)
        s->tat = now_ms;
    /* Debt beyond the limit is not added: a client that keeps hammering while
       it waits does not push its wait out without end. */
    if (s->tat + l->interval <= now_ms + l->limit + l->interval)
        s->tat += l->interval;
    if (s->tat > l->max_tat)
        l->max_tat = s->tat;
    return lim_wait(l, s->tat, now_ms);
}

void csip_limiter_forgive(csip_limiter *l, const void *key, size_t len)
{
    if (!l || (!key && len))
        return;
    lim_slot *s = (lim_slot *)lim_find(l, lim_hash(l, key, len));
    if (s)
        s->hash = 0, s->tat = 0;
}

size_t csip_limiter_count(const csip_limiter *l, uint64_t now_ms)
{
    size_t n = 0;
    if (!l)
        return 0;
    for (size_t i = 0; i < (l->mask + 1) * LIM_WAYS; i++)
        if (l->slot[i].hash && l->slot[i].tat > now_ms)
            n++;
    return n;
}
