/*
 * The verifier: stateless nonces (RFC 7616 §3.3 leaves the nonce format to
 * the server; §5.4 recommends binding it to a time stamp and a private key),
 * challenge values, credential checks and nonce-count replay protection.
 *
 * Nonce = base64url(ts[8] || salt[8] || SipHash-2-4-128(mk, ts || salt || alg)),
 * 43 characters, where the MAC key mk = HMAC-SHA256(key, "nonce" || realm),
 * first 16 octets, is derived once per verifier (the realm is bound through
 * the key). A nonce costs a few hundred instructions to make or check, where
 * HMAC-SHA256 through OpenSSL's EVP interface cost about 5,800. ts is the
 * issue time in seconds (big-endian); salt is a per-verifier counter started
 * at a random value, so two challenges issued in the same second differ and
 * their nonce counts are tracked apart.
 */
#include "auth/auth_int.h"
#include "csip/auth.h"
#include "csip/uri.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#define NONCE_RAW 32 /* ts 8, salt 8, mac 16 */
#define NONCE_B64 43
#define KEY_MAX 64
#define NIL UINT32_MAX
#define NC_NO_QOP UINT32_MAX /* the nonce was used without qop: once only */
#define MAX_SLOTS (1u << 24)

struct csip_auth_server_opts {
    const csip_mem *mem;
    char *realm;
    size_t realm_len;
    uint32_t lifetime;
    csip_auth_alg algs[CSIP_AUTH_ALG_COUNT];
    size_t nalgs;
    size_t slots;
    bool auth_int;
};

typedef struct replay_entry {
    uint8_t key[16]; /* ts || salt of the nonce */
    uint64_t ts;
    uint32_t nc;   /* highest nc accepted */
    uint32_t next; /* bucket chain */
} replay_entry;

struct csip_auth_server {
    const csip_mem *mem;
    char *realm;
    size_t realm_len;
    uint32_t lifetime;
    csip_auth_alg algs[CSIP_AUTH_ALG_COUNT];
    size_t nalgs;
    bool auth_int;
    EVP_MD_CTX *hmac_in, *hmac_out, *work, *hash;
    char opaque[23];
    uint8_t mac_key[16]; /* the nonce MAC's key (see above) */
    csip__auth_ha2_cache ha2;
    uint64_t salt;
    /* replay table: a ring of entries (oldest first) indexed by a chained hash */
    replay_entry *ents;
    uint32_t *buckets;
    size_t slots, nbuckets, head, count;
    bool evicted_live;   /* a nonce was evicted before its expiry */
    uint64_t evicted_ts; /* the latest issue time among those */
};

/* ---- options ---- */

int csip_auth_server_opts_new(const csip_mem *mem, csip_auth_server_opts **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    csip_auth_server_opts *o = csip__malloc(mem, sizeof *o);
    if (!o)
        return CSIP_ERR_NOMEM;
    memset(o, 0, sizeof *o);
    o->mem = mem;
    o->lifetime = CSIP_AUTH_DEFAULT_NONCE_LIFETIME;
    o->algs[0] = CSIP_AUTH_ALG_SHA256;
    o->algs[1] = CSIP_AUTH_ALG_MD5;
    o->nalgs = 2;
    o->slots = CSIP_AUTH_DEFAULT_REPLAY_SLOTS;
    *out = o;
    return 0;
}

void csip_auth_server_opts_free(csip_auth_server_opts *o)
{
    if (!o)
        return;
    csip__free(o->mem, o->realm);
    csip__free(o->mem, o);
}

static bool realm_ok(csip_str r)
{
    if (r.len > CSIP_AUTH_MAX_FIELD || (r.len && !r.p))
        return false;
    for (size_t i = 0; i < r.len; i++) {
        unsigned char c = (unsigned char)r.p[i];
        if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

int csip_auth_server_opts_set_realm(csip_auth_server_opts *o, csip_str realm)
{
    if (!o || !realm_ok(realm))
        return CSIP_ERR_INVALID_ARG;
    char *c = csip__malloc(o->mem, realm.len + 1);
    if (!c)
        return CSIP_ERR_NOMEM;
    if (realm.len)
        memcpy(c, realm.p, realm.len);
    c[realm.len] = '\0';
    csip__free(o->mem, o->realm);
    o->realm = c;
    o->realm_len = realm.len;
    return 0;
}

int csip_auth_server_opts_set_nonce_lifetime(csip_auth_server_opts *o, uint32_t seconds)
{
    if (!o || seconds == 0)
        return CSIP_ERR_INVALID_ARG;
    o->lifetime = seconds;
    return 0;
}

int csip_auth_server_opts_set_algorithms(csip_auth_server_opts *o, const csip_auth_alg *algs,
                                         size_t n)
{
    if (!o || !algs || n == 0 || n > CSIP_AUTH_ALG_COUNT)
        return CSIP_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)algs[i] >= CSIP_AUTH_ALG_COUNT)
            return CSIP_ERR_INVALID_ARG;
        for (size_t j = 0; j < i; j++)
            if (algs[j] == algs[i])
                return CSIP_ERR_INVALID_ARG;
    }
    memcpy(o->algs, algs, n * sizeof *algs);
    o->nalgs = n;
    return 0;
}

int csip_auth_server_opts_set_replay_slots(csip_auth_server_opts *o, size_t n)
{
    if (!o || n == 0 || n > MAX_SLOTS)
        return CSIP_ERR_INVALID_ARG;
    o->slots = n;
    return 0;
}

int csip_auth_server_opts_set_auth_int(csip_auth_server_opts *o, bool on)
{
    if (!o)
        return CSIP_ERR_INVALID_ARG;
    o->auth_int = on;
    return 0;
}

/* ---- base64url (RFC 4648 §5), no padding ---- */

/* Whether n octets are equal, in a time that does not depend on where they
 * differ (a MAC, an expected response): a word at a time. */
static bool ct_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    uint64_t d = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t u, v;
        memcpy(&u, x + i, 8);
        memcpy(&v, y + i, 8);
        d |= u ^ v;
    }
    for (; i < n; i++)
        d |= (uint64_t)(x[i] ^ y[i]);
    return d == 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
    }
    return o;
}

/* b64_val1[c]: the value of c in the alphabet above plus one, 0 for none
 * (octets above 127 are none too). */
/* clang-format off */
static const uint8_t b64_val1[128] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 63,  0,  0,
    53, 54, 55, 56, 57, 58, 59, 60, 61, 62,  0,  0,  0,  0,  0,  0,
     0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,  0,  0,  0,  0, 64,
     0, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
    42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,  0,  0,  0,  0,  0,
};
/* clang-format on */

/* The 6n bits of n alphabet characters; *bad set when one is not in it. */
static uint32_t b64_bits(const char *p, int n, uint32_t *bad)
{
    uint32_t acc = 0;
    for (int k = 0; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        uint32_t v = c < 128 ? b64_val1[c] : 0;
        *bad |= v == 0;
        acc = acc << 6 | ((v - 1) & 63);
    }
    return acc;
}

/* Decodes exactly NONCE_B64 characters into NONCE_RAW bytes. */
static bool nonce_decode(csip_str s, uint8_t *out)
{
    if (s.len != NONCE_B64)
        return false;
    uint32_t bad = 0;
    size_t o = 0, i = 0;
    for (; i + 4 <= NONCE_B64; i += 4) {
        uint32_t acc = b64_bits(s.p + i, 4, &bad);
        out[o++] = (uint8_t)(acc >> 16);
        out[o++] = (uint8_t)(acc >> 8);
        out[o++] = (uint8_t)acc;
    }
    /* 43 = 40 + 3 characters: 18 bits, two bytes and 2 spare bits that must
     * be zero (one spelling per nonce) */
    uint32_t acc = b64_bits(s.p + i, 3, &bad);
    out[o++] = (uint8_t)(acc >> 10);
    out[o++] = (uint8_t)(acc >> 2);
    return !bad && o == NONCE_RAW && (acc & 3u) == 0;
}

/* ---- MAC ---- */

static int hmac(csip_auth_server *s, const void *a, size_t alen, const void *b, size_t blen,
                uint8_t out[32])
{
    uint8_t inner[32];
    unsigned n = 0;
    if (EVP_MD_CTX_copy_ex(s->work, s->hmac_in) != 1 || EVP_DigestUpdate(s->work, a, alen) != 1 ||
        (blen && EVP_DigestUpdate(s->work, b, blen) != 1) ||
        EVP_DigestFinal_ex(s->work, inner, &n) != 1)
        return CSIP_ERR_NOMEM;
    if (EVP_MD_CTX_copy_ex(s->work, s->hmac_out) != 1 ||
        EVP_DigestUpdate(s->work, inner, sizeof inner) != 1 ||
        EVP_DigestFinal_ex(s->work, out, &n) != 1)
        return CSIP_ERR_NOMEM;
    return 0;
}

/* The MAC of a nonce: over ts || salt || alg, under the realm's MAC key. */
static int nonce_mac(csip_auth_server *s, const uint8_t *ts_salt, csip_auth_alg alg,
                     uint8_t out[16])
{
    uint8_t head[17];
    memcpy(head, ts_salt, 16);
    head[16] = (uint8_t)alg;
    csip__siphash128(s->mac_key, head, sizeof head, out);
    return 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- lifecycle ---- */

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

void csip_auth_server_free(csip_auth_server *s)
{
    if (!s)
        return;
    EVP_MD_CTX_free(s->hmac_in);
    EVP_MD_CTX_free(s->hmac_out);
    EVP_MD_CTX_free(s->work);
    EVP_MD_CTX_free(s->hash);
    csip__free(s->mem, s->ents);
    csip__free(s->mem, s->buckets);
    csip__free(s->mem, s->realm);
    const csip_mem *mem = s->mem;
    OPENSSL_cleanse(s, sizeof *s);
    csip__free(mem, s);
}

int csip_auth_server_new(const csip_mem *mem, const uint8_t *key, size_t key_len,
                         const csip_auth_server_opts *opts, csip_auth_server **out)
{
    if (!out || !key || key_len < 16 || key_len > KEY_MAX)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    csip_auth_server_opts defaults;
    if (!opts) {
        memset(&defaults, 0, sizeof defaults);
        defaults.lifetime = CSIP_AUTH_DEFAULT_NONCE_LIFETIME;
        defaults.algs[0] = CSIP_AUTH_ALG_SHA256;
        defaults.algs[1] = CSIP_AUTH_ALG_MD5;
        defaults.nalgs = 2;
        defaults.slots = CSIP_AUTH_DEFAULT_REPLAY_SLOTS;
        opts = &defaults;
    }
    csip_auth_server *s = csip__malloc(mem, sizeof *s);
    if (!s)
        return CSIP_ERR_NOMEM;
    memset(s, 0, sizeof *s);
    s->mem = mem;
    s->lifetime = opts->lifetime;
    memcpy(s->algs, opts->algs, sizeof s->algs);
    s->nalgs = opts->nalgs;
    s->auth_int = opts->auth_int;
    s->slots = opts->slots;
    s->nbuckets = pow2_at_least(s->slots * 2);
    s->realm = csip__malloc(mem, opts->realm_len + 1);
    s->ents = csip__malloc(mem, s->slots * sizeof *s->ents);
    s->buckets = csip__malloc(mem, s->nbuckets * sizeof *s->buckets);
    s->hmac_in = EVP_MD_CTX_new();
    s->hmac_out = EVP_MD_CTX_new();
    s->work = EVP_MD_CTX_new();
    s->hash = EVP_MD_CTX_new();
    if (!s->realm || !s->ents || !s->buckets || !s->hmac_in || !s->hmac_out || !s->work || !s->hash)
        goto nomem;
    if (opts->realm_len)
        memcpy(s->realm, opts->realm, opts->realm_len);
    s->realm[opts->realm_len] = '\0';
    s->realm_len = opts->realm_len;
    for (size_t i = 0; i < s->nbuckets; i++)
        s->buckets[i] = NIL;

    /* HMAC-SHA256 (RFC 2104) with the padded key absorbed once */
    uint8_t ipad[64], opad[64];
    memset(ipad, 0x36, sizeof ipad);
    memset(opad, 0x5c, sizeof opad);
    for (size_t i = 0; i < key_len; i++) {
        ipad[i] ^= key[i];
        opad[i] ^= key[i];
    }
    int ok = EVP_DigestInit_ex(s->hmac_in, csip__auth_md(CSIP_AUTH_ALG_SHA256), NULL) == 1 &&
             EVP_DigestUpdate(s->hmac_in, ipad, sizeof ipad) == 1 &&
             EVP_DigestInit_ex(s->hmac_out, csip__auth_md(CSIP_AUTH_ALG_SHA256), NULL) == 1 &&
             EVP_DigestUpdate(s->hmac_out, opad, sizeof opad) == 1;
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    if (!ok)
        goto nomem;

    /* opaque: constant per key and realm, checked when echoed */
    uint8_t mac[32];
    if (hmac(s, "opaque", 6, s->realm, s->realm_len, mac) != 0)
        goto nomem;
    s->opaque[b64_encode(mac, 16, s->opaque)] = '\0';
    if (hmac(s, "nonce", 5, s->realm, s->realm_len, mac) != 0)
        goto nomem;
    memcpy(s->mac_key, mac, sizeof s->mac_key);
    OPENSSL_cleanse(mac, sizeof mac);

    uint8_t rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        goto nomem;
    s->salt = get_u64(rnd);
    *out = s;
    return 0;
nomem:
    csip_auth_server_free(s);
    return CSIP_ERR_NOMEM;
}

size_t csip_auth_server_challenge_count(const csip_auth_server *s)
{
    return s ? s->nalgs : 0;
}

size_t csip_auth_server_replay_count(const csip_auth_server *s)
{
    return s ? s->count : 0;
}

int csip_auth_server_challenge(csip_auth_server *s, size_t i, bool stale, uint64_t now_ms,
                               char *buf, size_t cap)
{
    if (!s || !buf)
        return CSIP_ERR_INVALID_ARG;
    if (i >= s->nalgs)
        return CSIP_ERR_NOT_FOUND;
    csip_auth_alg alg = s->algs[i];
    uint8_t raw[NONCE_RAW], mac[32];
    put_u64(raw, now_ms / 1000);
    put_u64(raw + 8, s->salt++);
    int rc = nonce_mac(s, raw, alg, mac);
    if (rc != 0)
        return rc;
    memcpy(raw + 16, mac, 16);
    char nonce[NONCE_B64 + 1];
    b64_encode(raw, sizeof raw, nonce);

    csip__auth_out o = {buf, 0, cap, false};
    csip__auth_puts(&o, "Digest realm=");
    csip__auth_put_quoted(&o, (csip_str){s->realm, s->realm_len}, false);
    csip__auth_puts(&o, ", nonce=");
    csip__auth_put_quoted(&o, (csip_str){nonce, NONCE_B64}, false);
    csip__auth_puts(&o, ", opaque=");
    csip__auth_put_quoted(&o, csip_str_c(s->opaque), false);
    csip__auth_puts(&o, ", algorithm=");
    csip__auth_puts(&o, csip_auth_alg_name(alg));
    csip__auth_puts(&o, s->auth_int ? ", qop=\"auth,auth-int\"" : ", qop=\"auth\"");
    if (stale)
        csip__auth_puts(&o, ", stale=true");
    return csip__auth_out_end(&o);
}

/* ---- replay table ---- */

static size_t key_bucket(const csip_auth_server *s, const uint8_t *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32)) & (s->nbuckets - 1);
}

static replay_entry *replay_find(csip_auth_server *s, const uint8_t *key, size_t bucket)
{
    for (uint32_t i = s->buckets[bucket]; i != NIL; i = s->ents[i].next)
        if (memcmp(s->ents[i].key, key, 16) == 0)
            return &s->ents[i];
    return NULL;
}

static void replay_insert(csip_auth_server *s, const uint8_t *key, uint64_t ts, uint32_t nc,
                          uint64_t now_s, size_t b)
{
    size_t idx;
    if (s->count == s->slots) {
        /* evict the oldest: unlink it from its chain */
        idx = s->head;
        replay_entry *old = &s->ents[idx];
        uint32_t *pp = &s->buckets[key_bucket(s, old->key)];
        while (*pp != (uint32_t)idx)
            pp = &s->ents[*pp].next;
        *pp = old->next;
        if (old->ts + s->lifetime >= now_s) {
            /* still usable: from now on, nonces this old are refused as stale */
            if (!s->evicted_live || old->ts > s->evicted_ts)
                s->evicted_ts = old->ts;
            s->evicted_live = true;
        }
        s->head = (s->head + 1) % s->slots;
        s->count--;
    }
    idx = (s->head + s->count) % s->slots;
    s->count++;
    replay_entry *e = &s->ents[idx];
    memcpy(e->key, key, 16);
    e->ts = ts;
    e->nc = nc;
    e->next = s->buckets[b];
    s->buckets[b] = (uint32_t)idx;
}

/* ---- verification ---- */

static bool parse_nc(csip_str s, uint32_t *out)
{
    /* RFC 7616 §3.4: nc is exactly 8LHEX */
    if (s.len != 8)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        int h = csip__hexval((unsigned char)s.p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return v != 0;
}

static bool uri_matches(csip_str param, csip_str request_uri)
{
    if (csip_str_eq(param, request_uri))
        return true;
    /* RFC 3261 §19.1.4 equality, for clients that re-serialise the URI */
    csip_uri a, b;
    return param.len && request_uri.len && csip_uri_parse(param.p, param.len, 0, &a) == 0 &&
           csip_uri_parse(request_uri.p, request_uri.len, 0, &b) == 0 && csip_uri_equal(&a, &b);
}

csip_auth_result csip_auth_server_verify(csip_auth_server *s, const csip_auth *cred,
                                         const csip_auth_request *req, uint64_t now_ms,
                                         csip_auth_lookup_fn lookup, void *user_data)
{
    if (!s || !cred || !req || !lookup)
        return CSIP_AUTH_INTERNAL_ERROR;
    if (!csip_str_ieq_c(cred->scheme, "Digest"))
        return CSIP_AUTH_NOT_DIGEST;

    char realm_b[CSIP_AUTH_MAX_FIELD], user_b[CSIP_AUTH_MAX_FIELD], uri_b[CSIP_AUTH_MAX_FIELD];
    char nonce_b[CSIP_AUTH_MAX_FIELD], cnonce_b[CSIP_AUTH_MAX_FIELD];
    csip_str realm, user, uri, nonce, cnonce;
    if (!cred->realm.p || !csip__auth_unq(cred->realm, realm_b, sizeof realm_b, &realm))
        return CSIP_AUTH_MALFORMED;
    if (!csip_str_eq(realm, (csip_str){s->realm, s->realm_len}))
        return CSIP_AUTH_WRONG_REALM;

    csip_auth_alg alg;
    if (csip_auth_alg_parse(cred->algorithm, &alg) != 0)
        return CSIP_AUTH_UNSUPPORTED_ALGORITHM;
    bool offered = false;
    for (size_t i = 0; i < s->nalgs; i++)
        offered |= s->algs[i] == alg;
    if (!offered)
        return CSIP_AUTH_UNSUPPORTED_ALGORITHM;

    /* the nonce must be ours, for this realm and algorithm */
    uint8_t raw[NONCE_RAW], mac[32];
    if (!cred->nonce.p || !csip__auth_unq(cred->nonce, nonce_b, sizeof nonce_b, &nonce))
        return CSIP_AUTH_MALFORMED;
    if (!nonce_decode(nonce, raw))
        return CSIP_AUTH_BAD_NONCE;
    if (nonce_mac(s, raw, alg, mac) != 0)
        return CSIP_AUTH_INTERNAL_ERROR;
    if (!ct_equal(mac, raw + 16, 16))
        return CSIP_AUTH_BAD_NONCE;
    uint64_t ts = get_u64(raw), now_s = now_ms / 1000;
    /* The replay table is read at the end, after the user's lookup and the
     * digests: its bucket (and, when the ring is full, the bucket of the
     * entry an insert would evict) are fetched now, so that the cache misses
     * of a table of tens of thousands of nonces overlap that work. */
    size_t rb = key_bucket(s, raw);
    csip_prefetch(&s->buckets[rb]);
    if (s->count == s->slots)
        csip_prefetch(&s->buckets[key_bucket(s, s->ents[s->head].key)]);

    /* parameters */
    if (!cred->username.p || !cred->uri.p || !cred->response.p ||
        !csip__auth_unq(cred->username, user_b, sizeof user_b, &user) ||
        !csip__auth_unq(cred->uri, uri_b, sizeof uri_b, &uri) ||
        !csip__auth_unq(cred->cnonce, cnonce_b, sizeof cnonce_b, &cnonce))
        return CSIP_AUTH_MALFORMED;
    if (cred->opaque.p && !csip_str_eq_c(cred->opaque, s->opaque))
        return CSIP_AUTH_MALFORMED;
    uint32_t nc = NC_NO_QOP;
    csip_str qop = cred->qop;
    if (qop.p) {
        if (!(csip_str_ieq_c(qop, "auth") || (s->auth_int && csip_str_ieq_c(qop, "auth-int"))))
            return CSIP_AUTH_UNSUPPORTED_QOP;
        if (!cnonce.p || !cred->nc.p || !parse_nc(cred->nc, &nc))
            return CSIP_AUTH_MALFORMED;
    } else if (cred->nc.p) {
        return CSIP_AUTH_MALFORMED;
    }
    if ((alg & 1u) && !cnonce.p)
        return CSIP_AUTH_MALFORMED;
    size_t hl = csip_auth_alg_hex_len(alg);
    if (cred->response.len != hl)
        return CSIP_AUTH_MALFORMED;
    if (!uri_matches(uri, req->uri))
        return CSIP_AUTH_MALFORMED; /* RFC 7616 §3.4.6: 400 */
    bool userhash = cred->userhash.p && csip_str_ieq_c(cred->userhash, "true");

    /* the user's stored HA1 */
    char ha1[CSIP_AUTH_HEX_MAX], expect[CSIP_AUTH_HEX_MAX];
    memset(ha1, 0, sizeof ha1);
    int rc = lookup(user_data, user, userhash, (csip_str){s->realm, s->realm_len},
                    csip_auth_alg_base(alg), ha1, sizeof ha1);
    if (rc == CSIP_ERR_NOT_FOUND)
        return CSIP_AUTH_UNKNOWN_USER;
    if (rc != 0)
        return CSIP_AUTH_INTERNAL_ERROR;
    ha1[CSIP_AUTH_HEX_MAX - 1] = '\0';
    if (s->buckets[rb] != NIL) /* the first entry of the nonce's chain, likewise */
        csip_prefetch(&s->ents[s->buckets[rb]]);
    csip_auth_digest d = {alg, {ha1, strlen(ha1)}, nonce, cnonce, cred->nc, qop};
    if (!qop.p)
        d.nc = CSIP_STR_NULL;
    const csip_auth_request hreq = {req->method, uri, req->body};
    if (csip__auth_response(s->hash, &d, &hreq, expect, &s->ha2) != 0)
        return CSIP_AUTH_INTERNAL_ERROR;
    char got[CSIP_AUTH_HEX_MAX];
    for (size_t i = 0; i < hl; i++)
        got[i] = csip__lower(cred->response.p[i]);
    if (!ct_equal(got, expect, hl))
        return CSIP_AUTH_BAD_RESPONSE;

    /* RFC 7616 §3.3: stale only for a correct response under an old nonce */
    if (ts > now_s + 1 || (ts < now_s && now_s - ts >= s->lifetime))
        return CSIP_AUTH_STALE;

    replay_entry *e = replay_find(s, raw, rb);
    if (e) {
        if (nc == NC_NO_QOP || e->nc == NC_NO_QOP || nc <= e->nc)
            return CSIP_AUTH_REPLAY;
        e->nc = nc;
        return CSIP_AUTH_OK;
    }
    if (s->evicted_live && ts <= s->evicted_ts)
        return CSIP_AUTH_STALE; /* its history was evicted: make the client take a new nonce */
    replay_insert(s, raw, ts, nc, now_s, rb);
    return CSIP_AUTH_OK;
}

const char *csip_auth_result_name(csip_auth_result r)
{
    switch (r) {
    case CSIP_AUTH_OK:
        return "OK";
    case CSIP_AUTH_STALE:
        return "STALE";
    case CSIP_AUTH_BAD_RESPONSE:
        return "BAD_RESPONSE";
    case CSIP_AUTH_UNKNOWN_USER:
        return "UNKNOWN_USER";
    case CSIP_AUTH_REPLAY:
        return "REPLAY";
    case CSIP_AUTH_MALFORMED:
        return "MALFORMED";
    case CSIP_AUTH_WRONG_REALM:
        return "WRONG_REALM";
    case CSIP_AUTH_UNSUPPORTED_ALGORITHM:
        return "UNSUPPORTED_ALGORITHM";
    case CSIP_AUTH_BAD_NONCE:
        return "BAD_NONCE";
    case CSIP_AUTH_UNSUPPORTED_QOP:
        return "UNSUPPORTED_QOP";
    case CSIP_AUTH_NOT_DIGEST:
        return "NOT_DIGEST";
    case CSIP_AUTH_INTERNAL_ERROR:
        return "INTERNAL_ERROR";
    }
    return "UNKNOWN";
}

int csip_auth_result_status(csip_auth_result r, bool proxy)
{
    switch (r) {
    case CSIP_AUTH_OK:
        return 200;
    case CSIP_AUTH_MALFORMED:
    case CSIP_AUTH_UNSUPPORTED_QOP:
        return 400;
    case CSIP_AUTH_INTERNAL_ERROR:
        return 500;
    default:
        return proxy ? 407 : 401;
    }
}
