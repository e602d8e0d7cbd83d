/*
 * The memory location store: a chained hash table of AORs, each holding its
 * bindings in an array (in the order they were first written, which is the
 * order a 200 OK lists them). Each binding's strings live in one allocation.
 */
#include "base/base_int.h"
#include "csip/store.h"

#include <string.h>

typedef struct mem_aor {
    struct mem_aor *next;
    uint64_t hash;
    csip_str aor;    /* owned (aor.p is the allocation) */
    csip_binding *b; /* views into blob[i] */
    char **blob;
    size_t n, cap;
} mem_aor;

struct csip_store_mem {
    const csip_mem *mem;
    mem_aor **buckets;
    size_t nbuckets; /* a power of two */
    size_t naors;
    size_t count; /* bindings */
};

#define MEM_MIN_BUCKETS 64u

static uint64_t mem_hash(csip_str s)
{
    /* FNV-1a, 64 bits. */
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

int csip_store_mem_new(const csip_mem *mem, csip_store_mem **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    csip_store_mem *s = csip__malloc(mem, sizeof *s);
    if (!s)
        return CSIP_ERR_NOMEM;
    s->mem = mem;
    s->nbuckets = MEM_MIN_BUCKETS;
    s->naors = s->count = 0;
    s->buckets = csip__malloc(mem, s->nbuckets * sizeof *s->buckets);
    if (!s->buckets) {
        csip__free(mem, s);
        return CSIP_ERR_NOMEM;
    }
    memset(s->buckets, 0, s->nbuckets * sizeof *s->buckets);
    *out = s;
    return 0;
}

static void aor_free(csip_store_mem *s, mem_aor *a)
{
    for (size_t i = 0; i < a->n; i++)
        csip__free(s->mem, a->blob[i]);
    csip__free(s->mem, a->b);
    csip__free(s->mem, a->blob);
    csip__free(s->mem, (void *)a->aor.p);
    csip__free(s->mem, a);
}

void csip_store_mem_free(csip_store_mem *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (mem_aor *a = s->buckets[i], *next; a; a = next) {
            next = a->next;
            aor_free(s, a);
        }
    }
    csip__free(s->mem, s->buckets);
    csip__free(s->mem, s);
}

static mem_aor **aor_slot(csip_store_mem *s, csip_str aor, uint64_t h)
{
    mem_aor **pp = &s->buckets[h & (s->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && csip_str_eq((*pp)->aor, aor)))
        pp = &(*pp)->next;
    return pp;
}

/* Doubles the table when it holds more AORs than buckets (a failure to grow
 * only makes chains longer). */
static void mem_grow(csip_store_mem *s)
{
    if (s->naors <= s->nbuckets)
        return;
    size_t nb = s->nbuckets * 2;
    mem_aor **b = csip__malloc(s->mem, nb * sizeof *b);
    if (!b)
        return;
    memset(b, 0, nb * sizeof *b);
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (mem_aor *a = s->buckets[i], *next; a; a = next) {
            next = a->next;
            a->next = b[a->hash & (nb - 1)];
            b[a->hash & (nb - 1)] = a;
        }
    }
    csip__free(s->mem, s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static void aor_unlink(csip_store_mem *s, mem_aor **slot)
{
    mem_aor *a = *slot;
    *slot = a->next;
    s->naors--;
    aor_free(s, a);
}

static int mem_get(void *ud, csip_str aor, const csip_binding **out, size_t *n)
{
    csip_store_mem *s = ud;
    mem_aor *a = *aor_slot(s, aor, mem_hash(aor));
    *out = a ? a->b : NULL;
    *n = a ? a->n : 0;
    return 0;
}

static csip_str blob_put(char **p, csip_str v)
{
    if (!v.p)
        return CSIP_STR_NULL;
    csip_str r = {*p, v.len};
    memcpy(*p, v.p, v.len);
    *p += v.len;
    return r;
}

static int mem_put(void *ud, const csip_binding *b)
{
    csip_store_mem *s = ud;
    uint64_t h = mem_hash(b->aor);
    mem_aor **slot = aor_slot(s, b->aor, h);
    mem_aor *a = *slot;
    if (!a) {
        a = csip__malloc(s->mem, sizeof *a);
        char *key = csip__malloc(s->mem, b->aor.len ? b->aor.len : 1);
        if (!a || !key) {
            csip__free(s->mem, a);
            csip__free(s->mem, key);
            return CSIP_ERR_NOMEM;
        }
        memcpy(key, b->aor.p, b->aor.len);
        *a = (mem_aor){.next = NULL, .hash = h, .aor = {key, b->aor.len}};
        *slot = a;
        s->naors++;
    }
    size_t i = 0;
    while (i < a->n && !csip_str_eq(a->b[i].contact, b->contact))
        i++;
    if (i == a->n && a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 2;
        csip_binding *nb = csip__realloc(s->mem, a->b, cap * sizeof *nb);
        if (nb)
            a->b = nb;
        char **nblob = nb ? csip__realloc(s->mem, a->blob, cap * sizeof *nblob) : NULL;
        if (nblob)
            a->blob = nblob;
        if (!nb || !nblob)
            goto nomem;
        a->cap = cap;
    }
    size_t len = a->aor.len + b->contact.len + b->params.len + b->path.len + b->call_id.len;
    char *blob = csip__malloc(s->mem, len ? len : 1);
    if (!blob)
        goto nomem;
    char *p = blob;
    csip_binding nbd = *b;
    nbd.aor = blob_put(&p, a->aor);
    nbd.contact = blob_put(&p, b->contact);
    nbd.params = blob_put(&p, b->params);
    nbd.path = blob_put(&p, b->path);
    nbd.call_id = blob_put(&p, b->call_id);
    if (i < a->n) {
        csip__free(s->mem, a->blob[i]);
    } else {
        a->n++;
        s->count++;
    }
    a->b[i] = nbd;
    a->blob[i] = blob;
    mem_grow(s);
    return 0;
nomem:
    if (!a->n)
        aor_unlink(s, aor_slot(s, b->aor, h));
    return CSIP_ERR_NOMEM;
}

static void aor_drop(csip_store_mem *s, mem_aor *a, size_t i)
{
    csip__free(s->mem, a->blob[i]);
    memmove(&a->b[i], &a->b[i + 1], (a->n - i - 1) * sizeof a->b[0]);
    memmove(&a->blob[i], &a->blob[i + 1], (a->n - i - 1) * sizeof a->blob[0]);
    a->n--;
    s->count--;
}

static int mem_remove(void *ud, csip_str aor, csip_str contact)
{
    csip_store_mem *s = ud;
    mem_aor **slot = aor_slot(s, aor, mem_hash(aor));
    mem_aor *a = *slot;
    if (!a)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        if (csip_str_eq(a->b[i].contact, contact)) {
            aor_drop(s, a, i);
            break;
        }
    }
    if (!a->n)
        aor_unlink(s, slot);
    return 0;
}

static int mem_remove_all(void *ud, csip_str aor)
{
    csip_store_mem *s = ud;
    mem_aor **slot = aor_slot(s, aor, mem_hash(aor));
    if (*slot) {
        s->count -= (*slot)->n;
        aor_unlink(s, slot);
    }
    return 0;
}

void csip_store_mem_location(csip_store_mem *s, csip_location_store *out)
{
    *out = (csip_location_store){
        .get = mem_get,
        .put = mem_put,
        .remove = mem_remove,
        .remove_all = mem_remove_all,
        .user_data = s,
    };
}

int csip_store_mem_each_expired(const csip_store_mem *s, int64_t now,
                                int (*cb)(void *ud, const csip_binding *b), void *ud)
{
    if (!s || !cb)
        return CSIP_ERR_INVALID_ARG;
    for (size_t k = 0; k < s->nbuckets; k++)
        for (const mem_aor *a = s->buckets[k]; a; a = a->next)
            for (size_t i = 0; i < a->n; i++)
                if (a->b[i].expires_at <= now) {
                    int rc = cb(ud, &a->b[i]);
                    if (rc)
                        return rc;
                }
    return 0;
}

size_t csip_store_mem_sweep(csip_store_mem *s, int64_t now)
{
    size_t removed = 0;
    for (size_t k = 0; k < s->nbuckets; k++) {
        mem_aor **slot = &s->buckets[k];
        while (*slot) {
            mem_aor *a = *slot;
            for (size_t i = a->n; i-- > 0;) {
                if (a->b[i].expires_at <= now) {
                    aor_drop(s, a, i);
                    removed++;
                }
            }
            if (!a->n)
                aor_unlink(s, slot);
            else
                slot = &a->next;
        }
    }
    return removed;
}

size_t csip_store_mem_count(const csip_store_mem *s)
{
    return s->count;
}
