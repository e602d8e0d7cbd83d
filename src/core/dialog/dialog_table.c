/*
 * The dialog table: a chained hash table of dialogs keyed by Call-ID and local
 * tag under a random SipHash key (the transaction layer's hash), with a list
 * in creation order. Dialog ids, tags and Call-IDs.
 */
#include "dialog/dialog_int.h"
#include "txn/txn_int.h"

#include <openssl/rand.h>

#define INITIAL_BUCKETS 64u

/* ------------------------------------------------------------------------- */
/* Identifiers                                                                */

/* n random octets as base64url: 6 bits per character, nchars characters
 * (nchars * 6 <= n * 8). */
static int random_chars(char *out, size_t nchars)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[18];
    size_t n = (nchars * 6 + 7) / 8 + 1; /* +1: the two-octet window reads one past */
    if (n > sizeof r)
        return CSIP_ERR_INVALID_ARG;
    if (RAND_bytes(r, (int)n) != 1)
        return CSIP_ERR_FATAL;
    for (size_t i = 0; i < nchars; i++) {
        size_t bit = i * 6, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)r[byte] << 8 | r[byte + 1];
        out[i] = b64[(v >> (10 - shift)) & 0x3f];
    }
    return 0;
}

#define TAG_CHARS 16u     /* 96 bits */
#define CALL_ID_CHARS 22u /* 132 bits */

int csip_dialog_new_tag(char *out, size_t cap)
{
    if (!out || cap < TAG_CHARS + 1)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    char tmp[TAG_CHARS];
    int rc = random_chars(tmp, TAG_CHARS);
    if (rc < 0)
        return rc;
    memcpy(out, tmp, TAG_CHARS);
    out[TAG_CHARS] = 0;
    return (int)TAG_CHARS;
}

int csip_dialog_new_call_id(csip_str host, char *out, size_t cap)
{
    for (size_t i = 0; i < host.len; i++)
        if (!csip__is((unsigned char)host.p[i], CSIP_C_WORD))
            return CSIP_ERR_INVALID_ARG;
    size_t need = CALL_ID_CHARS + (host.len ? 1 + host.len : 0);
    if (!out || need > (size_t)INT32_MAX || cap < need + 1)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    char tmp[CALL_ID_CHARS];
    int rc = random_chars(tmp, CALL_ID_CHARS);
    if (rc < 0)
        return rc;
    memcpy(out, tmp, CALL_ID_CHARS);
    if (host.len) {
        out[CALL_ID_CHARS] = '@';
        memcpy(out + CALL_ID_CHARS + 1, host.p, host.len);
    }
    out[need] = 0;
    return (int)need;
}

int csip_dialog_id_of(const csip_msg *msg, csip_dialog_id *id)
{
    if (!msg || !id)
        return CSIP_ERR_INVALID_ARG;
    const csip_nameaddr *from, *to;
    csip_str cid;
    int rc = csip_msg_call_id(msg, &cid);
    if (rc < 0)
        return rc;
    if ((rc = csip_msg_from(msg, &from)) < 0 || (rc = csip_msg_to(msg, &to)) < 0)
        return rc;
    id->call_id = cid;
    if (csip_msg_is_request(msg)) {
        id->local_tag = to->tag;
        id->remote_tag = from->tag;
    } else {
        id->local_tag = from->tag;
        id->remote_tag = to->tag;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* The table                                                                    */

uint64_t csip__dialog_hash(const csip_dialog_table *tab, csip_str call_id, csip_str local_tag)
{
    /* Chained: the Call-ID's hash keys the tag's, so both are under the secret
     * key. An absent view hashes as an empty one (never NULL + 0). */
    uint64_t h = csip__txn_hash(tab->key, call_id.p ? call_id.p : "", call_id.len, false);
    const uint64_t k2[2] = {tab->key[0] ^ h, tab->key[1]};
    return csip__txn_hash(k2, local_tag.p ? local_tag.p : "", local_tag.len, false);
}

int csip_dialog_table_new(const csip_dialog_opts *opts, csip_dialog_table **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    const csip_mem *mem = opts ? opts->mem : NULL;
    csip_dialog_table *s = csip__malloc(mem, sizeof *s);
    if (!s)
        return CSIP_ERR_NOMEM;
    memset(s, 0, sizeof *s);
    s->mem = mem;
    s->max_dialogs =
        opts && opts->max_dialogs ? opts->max_dialogs : CSIP_DIALOG_DEFAULT_MAX_DIALOGS;
    s->max_forks = opts && opts->max_forks ? opts->max_forks : CSIP_DIALOG_DEFAULT_MAX_FORKS;
    s->max_routes = opts && opts->max_routes ? opts->max_routes : CSIP_DIALOG_DEFAULT_MAX_ROUTES;
    s->max_bytes = opts && opts->max_bytes ? opts->max_bytes : CSIP_DIALOG_DEFAULT_MAX_BYTES;
    s->nbuckets = INITIAL_BUCKETS;
    s->buckets = csip__malloc(mem, s->nbuckets * sizeof *s->buckets);
    if (!s->buckets || RAND_bytes((unsigned char *)s->key, (int)sizeof s->key) != 1) {
        csip__free(mem, s->buckets);
        csip__free(mem, s);
        return CSIP_ERR_NOMEM;
    }
    memset(s->buckets, 0, s->nbuckets * sizeof *s->buckets);
    *out = s;
    return 0;
}

void csip_dialog_table_free(csip_dialog_table *s)
{
    if (!s)
        return;
    csip_dialog *d = s->head;
    while (d) {
        csip_dialog *n = d->next;
        csip__dialog_destroy(d);
        d = n;
    }
    csip__free(s->mem, s->buckets);
    csip__free(s->mem, s);
}

size_t csip_dialog_table_count(const csip_dialog_table *s)
{
    return s ? s->count : 0;
}

static bool same_id(const csip_dialog *d, const csip_dialog_id *id)
{
    return csip__dialog_str_eq(d->call_id, id->call_id) &&
           csip__dialog_str_eq(d->local_tag, id->local_tag) &&
           csip__dialog_str_eq(d->remote_tag, id->remote_tag);
}

csip_dialog *csip_dialog_table_find(const csip_dialog_table *s, const csip_dialog_id *id)
{
    if (!s || !id)
        return NULL;
    uint64_t h = csip__dialog_hash(s, id->call_id, id->local_tag);
    for (csip_dialog *d = s->buckets[h & (s->nbuckets - 1)]; d; d = d->hnext)
        if (d->hash == h && same_id(d, id))
            return d;
    return NULL;
}

int csip_dialog_table_match(const csip_dialog_table *s, const csip_msg *msg, csip_dialog **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!s || !msg)
        return CSIP_ERR_INVALID_ARG;
    csip_dialog_id id;
    int rc = csip_dialog_id_of(msg, &id);
    if (rc < 0)
        return rc;
    /* RFC 3261 §12.2.2: only a request with a To tag is inside a dialog. */
    if (csip_msg_is_request(msg) && !id.local_tag.len)
        return CSIP_ERR_NOT_FOUND;
    *out = csip_dialog_table_find(s, &id);
    return *out ? 0 : CSIP_ERR_NOT_FOUND;
}

csip_dialog *csip_dialog_table_next(const csip_dialog_table *s, const csip_dialog *prev)
{
    if (!s)
        return NULL;
    return prev ? prev->next : s->head;
}

csip_dialog *csip_dialog_table_next_fork(const csip_dialog_table *s, csip_str call_id,
                                         csip_str local_tag, const csip_dialog *prev)
{
    if (!s)
        return NULL;
    /* The chain is in no particular order: take the fork with the smallest
     * creation number above prev's. Forks share one chain, so this is a walk
     * of one chain. */
    uint64_t h = csip__dialog_hash(s, call_id, local_tag);
    const csip_dialog *best = NULL;
    for (const csip_dialog *d = s->buckets[h & (s->nbuckets - 1)]; d; d = d->hnext) {
        if (d->hash != h || !csip__dialog_str_eq(d->call_id, call_id) ||
            !csip__dialog_str_eq(d->local_tag, local_tag))
            continue;
        if (prev && d->seq <= prev->seq)
            continue;
        if (!best || d->seq < best->seq)
            best = d;
    }
    return (csip_dialog *)best;
}

size_t csip__dialog_table_forks(const csip_dialog_table *s, uint64_t h, csip_str call_id,
                                csip_str local_tag)
{
    size_t n = 0;
    for (const csip_dialog *d = s->buckets[h & (s->nbuckets - 1)]; d; d = d->hnext)
        n += d->hash == h && csip__dialog_str_eq(d->call_id, call_id) &&
             csip__dialog_str_eq(d->local_tag, local_tag);
    return n;
}

static void set_grow(csip_dialog_table *s)
{
    size_t nb = s->nbuckets * 2;
    if (nb > SIZE_MAX / sizeof(csip_dialog *))
        return;
    csip_dialog **b = csip__malloc(s->mem, nb * sizeof *b);
    if (!b)
        return; /* the old table still works, with longer chains */
    memset(b, 0, nb * sizeof *b);
    for (size_t i = 0; i < s->nbuckets; i++) {
        csip_dialog *d = s->buckets[i];
        while (d) {
            csip_dialog *n = d->hnext;
            size_t j = d->hash & (nb - 1);
            d->hnext = b[j];
            b[j] = d;
            d = n;
        }
    }
    csip__free(s->mem, s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

void csip__dialog_table_insert(csip_dialog_table *s, csip_dialog *d)
{
    if (s->count >= s->nbuckets)
        set_grow(s);
    size_t j = d->hash & (s->nbuckets - 1);
    d->hnext = s->buckets[j];
    s->buckets[j] = d;
    d->prev = s->tail;
    d->next = NULL;
    if (s->tail)
        s->tail->next = d;
    else
        s->head = d;
    s->tail = d;
    d->table = s;
    d->seq = s->next_seq++;
    s->count++;
}

void csip_dialog_free(csip_dialog *d)
{
    if (!d)
        return;
    csip_dialog_table *s = d->table;
    if (s) {
        csip_dialog **pp = &s->buckets[d->hash & (s->nbuckets - 1)];
        while (*pp && *pp != d)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = d->hnext;
        if (d->prev)
            d->prev->next = d->next;
        else
            s->head = d->next;
        if (d->next)
            d->next->prev = d->prev;
        else
            s->tail = d->prev;
        s->count--;
    }
    csip__dialog_destroy(d);
}
