/*
 * Digest computation (RFC 7616 §3.4, RFC 8760) and the client side: choosing
 * a challenge and building the credentials.
 */
#include "auth/auth_int.h"
#include "csip/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <string.h>

static const char *const alg_names[CSIP_AUTH_ALG_COUNT] = {
    "MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess",
};

const char *csip_auth_alg_name(csip_auth_alg alg)
{
    if ((unsigned)alg >= CSIP_AUTH_ALG_COUNT)
        return NULL;
    return alg_names[alg];
}

int csip_auth_alg_parse(csip_str name, csip_auth_alg *out)
{
    if (name.p == NULL) {
        *out = CSIP_AUTH_ALG_MD5; /* RFC 7616 §3.3: absent means MD5 */
        return 0;
    }
    for (unsigned i = 0; i < CSIP_AUTH_ALG_COUNT; i++)
        if (csip_str_ieq_c(name, alg_names[i])) {
            *out = (csip_auth_alg)i;
            return 0;
        }
    return CSIP_ERR_NOT_FOUND;
}

csip_auth_alg csip_auth_alg_base(csip_auth_alg alg)
{
    return (csip_auth_alg)((unsigned)alg & ~1u);
}

static bool alg_is_sess(csip_auth_alg alg)
{
    return ((unsigned)alg & 1u) != 0;
}

size_t csip_auth_alg_hex_len(csip_auth_alg alg)
{
    if ((unsigned)alg >= CSIP_AUTH_ALG_COUNT)
        return 0;
    return csip_auth_alg_base(alg) == CSIP_AUTH_ALG_MD5 ? 32 : 64;
}

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/* OpenSSL 3 looks a digest up in its providers at every EVP_DigestInit_ex()
 * given a built-in EVP_md5()/EVP_sha256() (about 2,300 instructions, locks
 * included); a digest fetched once is used as it is. Fetched on first use,
 * kept for the life of the process. */
static const EVP_MD *fetched(_Atomic(EVP_MD *) *slot, const char *name, const EVP_MD *builtin)
{
    EVP_MD *md = atomic_load_explicit(slot, memory_order_acquire);
    if (md)
        return md;
    md = EVP_MD_fetch(NULL, name, NULL);
    if (!md)
        return builtin;
    EVP_MD *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(slot, &expected, md, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        EVP_MD_free(md); /* another thread was first */
        return expected;
    }
    return md;
}
#endif

const EVP_MD *csip__auth_md(csip_auth_alg alg)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    static _Atomic(EVP_MD *) md5, sha256, sha512_256;
    switch (csip_auth_alg_base(alg)) {
    case CSIP_AUTH_ALG_MD5:
        return fetched(&md5, "MD5", EVP_md5());
    case CSIP_AUTH_ALG_SHA256:
        return fetched(&sha256, "SHA2-256", EVP_sha256());
    case CSIP_AUTH_ALG_SHA512_256:
        return fetched(&sha512_256, "SHA2-512/256", EVP_sha512_256());
    default:
        return NULL;
    }
#else
    switch (csip_auth_alg_base(alg)) {
    case CSIP_AUTH_ALG_MD5:
        return EVP_md5();
    case CSIP_AUTH_ALG_SHA256:
        return EVP_sha256();
    case CSIP_AUTH_ALG_SHA512_256:
        return EVP_sha512_256();
    default:
        return NULL;
    }
#endif
}

void csip__auth_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* H(parts[0] ":" parts[1] ":" ...) in lowercase hex. */
static int hash_parts(EVP_MD_CTX *ctx, const EVP_MD *md, const csip_str *parts, size_t n, char *out)
{
    uint8_t dig[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
        return CSIP_ERR_NOMEM;
    /* joined first when short: one EVP_DigestUpdate costs about 200
     * instructions besides the hashing, and a response has 11 pieces */
    char joined[512];
    size_t total = n ? n - 1 : 0;
    for (size_t i = 0; i < n && total <= sizeof joined; i++)
        total += parts[i].len;
    if (total <= sizeof joined) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                joined[o++] = ':';
            if (parts[i].len)
                memcpy(joined + o, parts[i].p, parts[i].len);
            o += parts[i].len;
        }
        n = 0; /* hashed here as one piece */
        int ok = o == 0 || EVP_DigestUpdate(ctx, joined, o) == 1;
        OPENSSL_cleanse(joined, o); /* a password, for HA1 */
        if (!ok)
            return CSIP_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && EVP_DigestUpdate(ctx, ":", 1) != 1)
            return CSIP_ERR_NOMEM;
        if (parts[i].len && EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) != 1)
            return CSIP_ERR_NOMEM;
    }
    if (EVP_DigestFinal_ex(ctx, dig, &dlen) != 1 || dlen > 32)
        return CSIP_ERR_NOMEM;
    csip__auth_hex(dig, dlen, out);
    return 0;
}

static int hash_with_new_ctx(csip_auth_alg alg, const csip_str *parts, size_t n, char *out)
{
    const EVP_MD *md = csip__auth_md(alg);
    if (!md || !out)
        return CSIP_ERR_INVALID_ARG;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return CSIP_ERR_NOMEM;
    int rc = hash_parts(ctx, md, parts, n, out);
    EVP_MD_CTX_free(ctx);
    return rc;
}

int csip_auth_ha1(csip_auth_alg alg, csip_str username, csip_str realm, csip_str password,
                  char *out)
{
    const csip_str parts[3] = {username, realm, password};
    return hash_with_new_ctx(alg, parts, 3, out);
}

int csip_auth_userhash(csip_auth_alg alg, csip_str username, csip_str realm, char *out)
{
    const csip_str parts[2] = {username, realm};
    return hash_with_new_ctx(alg, parts, 2, out);
}

int csip__auth_response(EVP_MD_CTX *ctx, const csip_auth_digest *d, const csip_auth_request *req,
                        char *out, csip__auth_ha2_cache *cache)
{
    const EVP_MD *md = csip__auth_md(d->alg);
    size_t hl = csip_auth_alg_hex_len(d->alg);
    if (!md || d->ha1.len != hl || !out)
        return CSIP_ERR_INVALID_ARG;
    bool has_qop = d->qop.p != NULL, auth_int = false;
    if (has_qop) {
        if (csip_str_ieq_c(d->qop, "auth-int"))
            auth_int = true;
        else if (!csip_str_ieq_c(d->qop, "auth"))
            return CSIP_ERR_INVALID_ARG;
        if (d->nc.len == 0 || d->cnonce.p == NULL)
            return CSIP_ERR_INVALID_ARG;
    }
    if (alg_is_sess(d->alg) && d->cnonce.p == NULL)
        return CSIP_ERR_INVALID_ARG;

    /* Stored HA1 values may be in either case; hashes are of lowercase hex. */
    char ha1[CSIP_AUTH_HEX_MAX], ha2[CSIP_AUTH_HEX_MAX], bh[CSIP_AUTH_HEX_MAX];
    for (size_t i = 0; i < hl; i++) {
        if (csip__hexval((unsigned char)d->ha1.p[i]) < 0)
            return CSIP_ERR_INVALID_ARG;
        ha1[i] = csip__lower(d->ha1.p[i]);
    }
    ha1[hl] = '\0';
    int rc;
    if (alg_is_sess(d->alg)) {
        /* RFC 7616 §3.4.2: HA1 = H(H(user:realm:pass):nonce:cnonce) */
        const csip_str p[3] = {{ha1, hl}, d->nonce, d->cnonce};
        if ((rc = hash_parts(ctx, md, p, 3, ha1)) != 0)
            return rc;
    }
    if (auth_int) {
        const csip_str b[1] = {req->body};
        if ((rc = hash_parts(ctx, md, b, 1, bh)) != 0)
            return rc;
        const csip_str p[3] = {req->method, req->uri, {bh, hl}};
        rc = hash_parts(ctx, md, p, 3, ha2);
    } else {
        uint8_t base = (uint8_t)csip_auth_alg_base(d->alg);
        if (cache && cache->valid && cache->alg == base &&
            csip_str_eq((csip_str){cache->method, cache->method_len}, req->method) &&
            csip_str_eq((csip_str){cache->uri, cache->uri_len}, req->uri)) {
            memcpy(ha2, cache->ha2, hl + 1);
            rc = 0;
        } else {
            const csip_str p[2] = {req->method, req->uri};
            rc = hash_parts(ctx, md, p, 2, ha2);
            if (rc == 0 && cache && req->method.len <= sizeof cache->method &&
                req->uri.len <= sizeof cache->uri) {
                cache->valid = true;
                cache->alg = base;
                cache->method_len = (uint16_t)req->method.len;
                cache->uri_len = (uint16_t)req->uri.len;
                if (req->method.len)
                    memcpy(cache->method, req->method.p, req->method.len);
                if (req->uri.len)
                    memcpy(cache->uri, req->uri.p, req->uri.len);
                memcpy(cache->ha2, ha2, hl + 1);
            }
        }
    }
    if (rc != 0)
        return rc;
    if (has_qop) {
        const csip_str p[6] = {{ha1, hl}, d->nonce, d->nc, d->cnonce, d->qop, {ha2, hl}};
        return hash_parts(ctx, md, p, 6, out);
    }
    /* RFC 2069 compatibility: no qop, no cnonce, no nc */
    const csip_str p[3] = {{ha1, hl}, d->nonce, {ha2, hl}};
    return hash_parts(ctx, md, p, 3, out);
}

int csip_auth_compute_response(const csip_auth_digest *d, const csip_auth_request *req, char *out)
{
    if (!d || !req || !out)
        return CSIP_ERR_INVALID_ARG;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return CSIP_ERR_NOMEM;
    int rc = csip__auth_response(ctx, d, req, out, NULL);
    EVP_MD_CTX_free(ctx);
    return rc;
}

bool csip__auth_unq(csip_str in, char *buf, size_t cap, csip_str *out)
{
    if (in.p == NULL) {
        *out = in;
        return true;
    }
    if (!memchr(in.p, '\\', in.len)) {
        *out = in;
        return in.len <= cap;
    }
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        if (in.p[i] == '\\' && i + 1 < in.len)
            i++;
        if (n >= cap)
            return false;
        buf[n++] = in.p[i];
    }
    *out = (csip_str){buf, n};
    return true;
}

bool csip__auth_list_has(csip_str list, const char *tok)
{
    const char *p = list.p, *end = list.p + list.len;
    if (!p)
        return false;
    while (p < end) {
        while (p < end && (*p == ',' || csip__is((unsigned char)*p, CSIP_C_LWS)))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && !csip__is((unsigned char)*p, CSIP_C_LWS))
            p++;
        if (p > s && csip_str_ieq_c((csip_str){s, (size_t)(p - s)}, tok))
            return true;
    }
    return false;
}

void csip__auth_put(csip__auth_out *o, const char *p, size_t n)
{
    if (o->over || o->cap - o->len < n + 1) {
        o->over = true;
        return;
    }
    if (n)
        memcpy(o->p + o->len, p, n);
    o->len += n;
}

void csip__auth_puts(csip__auth_out *o, const char *s)
{
    csip__auth_put(o, s, strlen(s));
}

void csip__auth_put_quoted(csip__auth_out *o, csip_str s, bool escape)
{
    csip__auth_put(o, "\"", 1);
    if (!escape) {
        csip__auth_put(o, s.p, s.len);
    } else {
        for (size_t i = 0; i < s.len; i++) {
            if (s.p[i] == '"' || s.p[i] == '\\')
                csip__auth_put(o, "\\", 1);
            csip__auth_put(o, s.p + i, 1);
        }
    }
    csip__auth_put(o, "\"", 1);
}

int csip__auth_out_end(csip__auth_out *o)
{
    if (o->over || o->len >= o->cap || o->len > INT32_MAX)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    o->p[o->len] = '\0';
    return (int)o->len;
}

/* ---- client ---- */

/* A value that can go inside a quoted-string once '"' and '\\' are escaped:
 * no control characters, so nothing can end the header line (RFC 3261 §25.1). */
static bool quotable(csip_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool challenge_usable(const csip_auth *c)
{
    csip_auth_alg alg;
    return csip_str_ieq_c(c->scheme, "Digest") && csip_auth_alg_parse(c->algorithm, &alg) == 0;
}

int csip_auth_client_choose(const csip_auth *challenges, size_t n, size_t *index)
{
    for (size_t i = 0; i < n; i++)
        if (challenge_usable(&challenges[i])) {
            *index = i;
            return 0;
        }
    return CSIP_ERR_NOT_FOUND;
}

int csip_auth_client_choose_msg(const csip_msg *msg, csip_hdr_id id, const csip_auth **out)
{
    for (size_t i = 0;; i++) {
        const csip_auth *a;
        int rc = csip_msg_auth(msg, id, i, &a);
        if (rc == CSIP_ERR_NOT_FOUND)
            return rc;
        if (rc < 0)
            continue; /* a malformed line does not hide the next ones */
        if (challenge_usable(a)) {
            *out = a;
            return 0;
        }
    }
}

int csip_auth_client_answer(const csip_auth *ch, csip_str username, csip_str password,
                            const csip_auth_request *req, uint32_t nc, csip_str cnonce, char *buf,
                            size_t cap)
{
    if (!ch || !req || !buf)
        return CSIP_ERR_INVALID_ARG;
    csip_auth_alg alg;
    if (!csip_str_ieq_c(ch->scheme, "Digest") || csip_auth_alg_parse(ch->algorithm, &alg) != 0)
        return CSIP_ERR_NOT_FOUND;
    if (ch->realm.p == NULL || ch->nonce.p == NULL || nc == 0 ||
        username.len > CSIP_AUTH_MAX_FIELD || req->uri.len > CSIP_AUTH_MAX_FIELD ||
        !quotable(username) || !quotable(req->uri))
        return CSIP_ERR_INVALID_ARG;

    csip_str qop = CSIP_STR_NULL;
    if (ch->qop.p != NULL) {
        if (csip__auth_list_has(ch->qop, "auth"))
            qop = CSIP_STR("auth");
        else if (csip__auth_list_has(ch->qop, "auth-int"))
            qop = CSIP_STR("auth-int");
        else
            return CSIP_ERR_NOT_FOUND;
    }

    char realm_b[CSIP_AUTH_MAX_FIELD], nonce_b[CSIP_AUTH_MAX_FIELD];
    csip_str realm, nonce;
    if (!csip__auth_unq(ch->realm, realm_b, sizeof realm_b, &realm) ||
        !csip__auth_unq(ch->nonce, nonce_b, sizeof nonce_b, &nonce))
        return CSIP_ERR_INVALID_ARG;

    char cn_b[33], ncs[9], ha1[CSIP_AUTH_HEX_MAX], resp[CSIP_AUTH_HEX_MAX], uh[CSIP_AUTH_HEX_MAX];
    if (cnonce.p == NULL) {
        uint8_t rnd[16];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            return CSIP_ERR_NOMEM;
        csip__auth_hex(rnd, sizeof rnd, cn_b);
        cnonce = (csip_str){cn_b, 32};
    } else if (cnonce.len > CSIP_AUTH_MAX_FIELD || !quotable(cnonce) ||
               memchr(cnonce.p, '"', cnonce.len) || memchr(cnonce.p, '\\', cnonce.len)) {
        return CSIP_ERR_INVALID_ARG;
    }
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        ncs[i] = hx[(nc >> (28 - 4 * i)) & 15];
    ncs[8] = '\0';

    int rc = csip_auth_ha1(alg, username, realm, password, ha1);
    if (rc != 0)
        return rc;
    bool use_cnonce = qop.p != NULL || alg_is_sess(alg);
    csip_auth_digest d = {
        .alg = alg,
        .ha1 = {ha1, csip_auth_alg_hex_len(alg)},
        .nonce = nonce,
        .cnonce = use_cnonce ? cnonce : CSIP_STR_NULL,
        .nc = qop.p ? (csip_str){ncs, 8} : CSIP_STR_NULL,
        .qop = qop,
    };
    if ((rc = csip_auth_compute_response(&d, req, resp)) != 0)
        return rc;

    bool userhash = ch->userhash.p && csip_str_ieq_c(ch->userhash, "true");
    if (userhash && (rc = csip_auth_userhash(alg, username, realm, uh)) != 0)
        return rc;

    csip__auth_out o = {buf, 0, cap, false};
    csip__auth_puts(&o, "Digest username=");
    if (userhash)
        csip__auth_put_quoted(&o, csip_str_c(uh), false);
    else
        csip__auth_put_quoted(&o, username, true);
    csip__auth_puts(&o, ", realm=");
    csip__auth_put_quoted(&o, ch->realm, false); /* still escaped as received */
    csip__auth_puts(&o, ", nonce=");
    csip__auth_put_quoted(&o, ch->nonce, false);
    csip__auth_puts(&o, ", uri=");
    csip__auth_put_quoted(&o, req->uri, true);
    csip__auth_puts(&o, ", response=");
    csip__auth_put_quoted(&o, csip_str_c(resp), false);
    if (ch->algorithm.p) {
        csip__auth_puts(&o, ", algorithm=");
        csip__auth_puts(&o, alg_names[alg]);
    }
    if (use_cnonce) {
        csip__auth_puts(&o, ", cnonce=");
        csip__auth_put_quoted(&o, cnonce, false);
    }
    if (ch->opaque.p) {
        csip__auth_puts(&o, ", opaque=");
        csip__auth_put_quoted(&o, ch->opaque, false);
    }
    if (qop.p) {
        csip__auth_puts(&o, ", qop=");
        csip__auth_put(&o, qop.p, qop.len);
        csip__auth_puts(&o, ", nc=");
        csip__auth_put(&o, ncs, 8);
    }
    if (userhash)
        csip__auth_puts(&o, ", userhash=true");
    return csip__auth_out_end(&o);
}
