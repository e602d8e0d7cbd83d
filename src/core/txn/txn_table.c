/*
 * The transaction table (open addressing with linear probing, at most half
 * full, under a random SipHash key, so that a peer choosing branches cannot
 * make one run long; each slot keeps the hash beside the pointer) and the timer
 * heap (a binary min-heap of transactions by earliest deadline, each knowing
 * its index, so that re-arming a timer is one sift) with the lane beside it (a
 * list in deadline order for deadlines that come in order: txn_int.h).
 */
#include "txn/txn_int.h"

#include <string.h>

#define INITIAL_SLOTS 64u
#define INITIAL_HEAP 64u

/* ------------------------------------------------------------------------- */
/* SipHash-1-3 (Aumasson and Bernstein): one compression round, three
 * finalisation rounds, 64-bit output. Keyed, so collisions cannot be planned.
 * Words are loaded in native byte order (the value never leaves the
 * process), and folded to lower case eight bytes at a time. */

#define SIPROUND CSIP__SIPROUND(v0, v1, v2, v3)

/* ASCII upper-case letters to lower case in each byte of w, others kept: a
 * byte gets 0x20 added when it is below 0x80, at least 'A' and at most 'Z'
 * (no carry crosses bytes: each sum stays below 0x100). */
static inline uint64_t fold_word(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t low7 = w & ~high;
    uint64_t ge_a = low7 + ones * (0x80u - 'A');
    uint64_t gt_z = low7 + ones * (0x80u - 'Z' - 1u);
    return w | ((ge_a & ~gt_z & ~w & high) >> 2);
}

/* n (< 8) bytes, little-endian. */
static inline uint64_t load_tail(const char *p, size_t n)
{
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++)
        m |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return m;
}

/* 8 bytes in native order: the hash is only compared within the process. */
static inline uint64_t load8(const char *p)
{
    uint64_t m;
    memcpy(&m, p, sizeof m);
    return m;
}

uint64_t csip__txn_hash(const uint64_t k[2], const char *p, size_t n, bool fold)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0];
    uint64_t v3 = 0x7465646279746573ULL ^ k[1];
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = load8(p + i);
        if (fold)
            m = fold_word(m);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t t = load_tail(p + i, n - i);
    if (fold)
        t = fold_word(t);
    uint64_t b = ((uint64_t)n << 56) | t;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------------------- */
/* Table */

int csip__txn_table_init(csip_txn_layer *l)
{
    l->slots = csip__malloc(l->mem, INITIAL_SLOTS * sizeof *l->slots);
    l->heap = csip__malloc(l->mem, INITIAL_HEAP * sizeof *l->heap);
    if (!l->slots || !l->heap) {
        csip__txn_table_free(l);
        return CSIP_ERR_NOMEM;
    }
    memset(l->slots, 0, INITIAL_SLOTS * sizeof *l->slots);
    l->nslots = INITIAL_SLOTS;
    l->heap_cap = INITIAL_HEAP;
    l->heap_len = 0;
    return 0;
}

void csip__txn_table_free(csip_txn_layer *l)
{
    csip__free(l->mem, l->slots);
    csip__free(l->mem, l->heap);
    l->slots = NULL;
    l->heap = NULL;
    l->nslots = l->heap_cap = l->heap_len = 0;
}

static void slot_put(txn_slot *slots, size_t mask, uint64_t h, csip_txn *t)
{
    size_t i = (size_t)h & mask;
    while (slots[i].t)
        i = (i + 1) & mask;
    slots[i] = (txn_slot){h, t};
}

/* Doubles the slot array; false (the old one kept) when out of memory. */
static bool table_grow(csip_txn_layer *l)
{
    size_t n = l->nslots * 2;
    txn_slot *s = csip__malloc(l->mem, n * sizeof *s);
    if (!s)
        return false;
    memset(s, 0, n * sizeof *s);
    for (size_t i = 0; i < l->nslots; i++)
        if (l->slots[i].t)
            slot_put(s, n - 1, l->slots[i].hash, l->slots[i].t);
    csip__free(l->mem, l->slots);
    l->slots = s;
    l->nslots = n;
    l->scan_pos = 0;
    return true;
}

int csip__txn_reserve(csip_txn_layer *l)
{
    /* the table: half full at most when it can grow, three quarters when not */
    if ((l->count + 1) * 2 > l->nslots && !table_grow(l) && (l->count + 1) * 4 > l->nslots * 3)
        return CSIP_ERR_NOMEM;
    if (l->count + 1 <= l->heap_cap)
        return 0;
    size_t cap = l->heap_cap * 2;
    csip_txn **h = csip__realloc(l->mem, l->heap, cap * sizeof *h);
    if (!h)
        return CSIP_ERR_NOMEM;
    l->heap = h;
    l->heap_cap = cap;
    return 0;
}

void csip__txn_table_insert(csip_txn_layer *l, csip_txn *t)
{
    if ((l->count + 1) * 2 > l->nslots)
        (void)table_grow(l);
    slot_put(l->slots, l->nslots - 1, t->hash, t);
    l->count++;
}

void csip__txn_table_remove(csip_txn_layer *l, csip_txn *t)
{
    size_t mask = l->nslots - 1, i = (size_t)t->hash & mask;
    while (l->slots[i].t && l->slots[i].t != t)
        i = (i + 1) & mask;
    if (!l->slots[i].t)
        return; /* not in the table */
    /* backward shift: each later slot of the run whose home is not between
     * the hole and itself moves into the hole (no tombstones) */
    for (size_t j = (i + 1) & mask; l->slots[j].t; j = (j + 1) & mask) {
        size_t home = (size_t)l->slots[j].hash & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        l->slots[i] = l->slots[j];
        i = j;
    }
    l->slots[i] = (txn_slot){0, NULL};
    l->count--;
}

csip_txn *csip__txn_table_any(csip_txn_layer *l)
{
    /* the whole table, cyclically, from where the last call found one: a
     * table emptied this way (csip_txn_layer_free) is scanned about once, not
     * once per transaction from the start (quadratic: over ten seconds at
     * exit after 300,000 REGISTERs) */
    for (size_t k = 0; k < l->nslots; k++) {
        size_t i = (l->scan_pos + k) & (l->nslots - 1);
        if (l->slots[i].t) {
            l->scan_pos = i;
            return l->slots[i].t;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Heap */

static inline void heap_set(csip_txn_layer *l, size_t i, csip_txn *t)
{
    l->heap[i] = t;
    t->heap_idx = (uint32_t)i;
}

static void sift_up(csip_txn_layer *l, size_t i)
{
    csip_txn *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (l->heap[parent]->due <= t->due)
            break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void sift_down(csip_txn_layer *l, size_t i)
{
    csip_txn *t = l->heap[i];
    size_t n = l->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && l->heap[c + 1]->due < l->heap[c]->due)
            c++;
        if (t->due <= l->heap[c]->due)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

/* ------------------------------------------------------------------------- */
/* Lane */

static void lane_unlink(csip_txn_layer *l, csip_txn *t)
{
    if (t->lane_prev)
        t->lane_prev->lane_next = t->lane_next;
    else
        l->lane_head = t->lane_next;
    if (t->lane_next)
        t->lane_next->lane_prev = t->lane_prev;
    else
        l->lane_tail = t->lane_prev;
    t->lane_prev = t->lane_next = NULL;
    t->heap_idx = TXN_NO_HEAP;
}

static void lane_append(csip_txn_layer *l, csip_txn *t)
{
    t->lane_prev = l->lane_tail;
    t->lane_next = NULL;
    if (l->lane_tail)
        l->lane_tail->lane_next = t;
    else
        l->lane_head = t;
    l->lane_tail = t;
    t->heap_idx = TXN_IN_LANE;
}

void csip__txn_heap_update(csip_txn_layer *l, csip_txn *t)
{
    uint64_t due = TXN_NEVER;
    for (int i = 0; i < TM__COUNT; i++)
        if (t->tm[i] < due)
            due = t->tm[i];
    uint64_t old = t->due;
    t->due = due;
    if (t->heap_idx == TXN_IN_LANE) {
        if (due == old)
            return;
        lane_unlink(l, t); /* and placed again below, as a new one */
    }
    if (t->heap_idx == TXN_NO_HEAP) {
        if (due == TXN_NEVER)
            return;
        /* Not earlier than the lane's last: the lane keeps it, in order. */
        if (!l->lane_tail || due >= l->lane_tail->due) {
            lane_append(l, t);
            return;
        }
        size_t i = l->heap_len++;
        heap_set(l, i, t);
        sift_up(l, i);
        return;
    }
    size_t i = t->heap_idx;
    if (due == TXN_NEVER) {
        csip_txn *last = l->heap[--l->heap_len];
        t->heap_idx = TXN_NO_HEAP;
        if (last != t) {
            heap_set(l, i, last);
            sift_down(l, i);
            sift_up(l, last->heap_idx);
        }
        return;
    }
    if (due < old)
        sift_up(l, i);
    else if (due > old)
        sift_down(l, i);
}
