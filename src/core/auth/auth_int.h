/*
 * Internal helpers of the auth layer: hashing through an EVP context, views
 * of quoted values, an output writer.
 */
#ifndef CSIP_AUTH_INT_H
#define CSIP_AUTH_INT_H

#include "base/base_int.h"
#include "csip/auth.h"

#include <openssl/evp.h>

/* The EVP digest of an algorithm (its base hash), or NULL for a bad value. */
const EVP_MD *csip__auth_md(csip_auth_alg alg);

struct csip__auth_ha2_cache;

/*
 * The digest response of RFC 7616 §3.4.1 with a caller-provided context
 * (reused by the verifier to avoid an allocation per request). Same contract
 * as csip_auth_compute_response(). cache: NULL, or the verifier's HA2 cache.
 */
int csip__auth_response(EVP_MD_CTX *ctx, const csip_auth_digest *d, const csip_auth_request *req,
                        char *out, struct csip__auth_ha2_cache *cache);

/*
 * The last HA2 = H(method ":" uri) a verifier computed (qop auth or none):
 * every REGISTER to a registrar has the same method and digest-uri, so the
 * hash is made once, not per request.
 */
typedef struct csip__auth_ha2_cache {
    bool valid;
    uint8_t alg; /* base algorithm */
    uint16_t method_len, uri_len;
    char method[32], uri[224];
    char ha2[CSIP_AUTH_HEX_MAX];
} csip__auth_ha2_cache;

/*
 * The unescaped value of a view that may hold quoted-pairs ("\x" for x): the
 * view itself when it has none, else a copy into buf. Returns false when the
 * result would exceed cap.
 */
bool csip__auth_unq(csip_str in, char *buf, size_t cap, csip_str *out);

/* True when s is one of the comma-separated tokens of list (case-insensitive). */
bool csip__auth_list_has(csip_str list, const char *tok);

/* An output buffer that records overflow instead of failing each call. */
typedef struct csip__auth_out {
    char *p;
    size_t len, cap;
    bool over;
} csip__auth_out;

void csip__auth_put(csip__auth_out *o, const char *p, size_t n);
void csip__auth_puts(csip__auth_out *o, const char *s);
/* A quoted-string: the bytes between quotes, '"' and '\' escaped when escape is true. */
void csip__auth_put_quoted(csip__auth_out *o, csip_str s, bool escape);
/* NUL-terminates and returns the length, or CSIP_ERR_BUFFER_TOO_SMALL. */
int csip__auth_out_end(csip__auth_out *o);

/* Lowercase hex of n bytes into out (2n chars and a NUL). */
void csip__auth_hex(const uint8_t *p, size_t n, char *out);

#endif
