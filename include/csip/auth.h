/*
 * csip — authentication layer: HTTP Digest for SIP (RFC 3261 §22.4, RFC 7616,
 * RFC 8760). Hashes MD5, SHA-256 and SHA-512/256 and their -sess variants;
 * qop=auth, qop=auth-int and the RFC 2069 form without qop.
 *
 * Server side: a csip_auth_server builds challenges carrying stateless nonces
 * (a keyed MAC over a timestamp, no per-challenge state) and verifies
 * credentials against a stored HA1 = H(username:realm:password) that the host
 * looks up; passwords are never needed in clear. Nonce counts are tracked per
 * nonce in a bounded table so a replayed request is refused.
 *
 * Client side: csip_auth_client_choose() picks the first challenge whose
 * algorithm is supported and csip_auth_client_answer() builds the
 * Authorization / Proxy-Authorization value.
 *
 * No function reads a clock: time comes in as now_ms (any monotonic or wall
 * clock in milliseconds; a restart keeps nonces valid only with a wall clock).
 *
 * Threading: a csip_auth_server is confined to one thread at a time. The other
 * functions are reentrant.
 */
#ifndef CSIP_AUTH_H
#define CSIP_AUTH_H

#include "csip/base.h"
#include "csip/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Digest algorithms (RFC 7616 §6.1, RFC 8760 §2). Never renumbered. @since 0.1 */
typedef enum csip_auth_alg {
    CSIP_AUTH_ALG_MD5 = 0,
    CSIP_AUTH_ALG_MD5_SESS = 1,
    CSIP_AUTH_ALG_SHA256 = 2,
    CSIP_AUTH_ALG_SHA256_SESS = 3,
    CSIP_AUTH_ALG_SHA512_256 = 4,
    CSIP_AUTH_ALG_SHA512_256_SESS = 5,
} csip_auth_alg;

/** Number of algorithms in csip_auth_alg. */
#define CSIP_AUTH_ALG_COUNT 6
/** Size of a buffer for a hash in lowercase hex with its NUL (64 + 1). */
#define CSIP_AUTH_HEX_MAX 65

/** The wire name ("MD5", "SHA-256-sess", "SHA-512-256"…), or NULL for a bad value. Static. */
CSIP_EXTERN const char *csip_auth_alg_name(csip_auth_alg alg);
/**
 * Reads an algorithm name (case-insensitive). An absent name (p == NULL) is
 * MD5 (RFC 7616 §3.3).
 * @return 0, or CSIP_ERR_NOT_FOUND for a name this library does not support.
 */
CSIP_EXTERN int csip_auth_alg_parse(csip_str name, csip_auth_alg *out);
/** The hash without -sess (MD5_SESS gives MD5): the key for stored HA1 values. */
CSIP_EXTERN csip_auth_alg csip_auth_alg_base(csip_auth_alg alg);
/** Length of the algorithm's hash in hex digits (32 or 64), 0 for a bad value. */
CSIP_EXTERN size_t csip_auth_alg_hex_len(csip_auth_alg alg);

/**
 * HA1 for storage: lowercase hex of H(username ":" realm ":" password) with the
 * algorithm's hash (the -sess variants store the same value as their base).
 * @param out CSIP_AUTH_HEX_MAX bytes; NUL-terminated on success.
 * @return 0, CSIP_ERR_INVALID_ARG (bad alg or NULL out), CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_auth_ha1(csip_auth_alg alg, csip_str username, csip_str realm,
                              csip_str password, char *out);
/**
 * userhash (RFC 7616 §3.4.4): lowercase hex of H(username ":" realm).
 * @return as csip_auth_ha1().
 */
CSIP_EXTERN int csip_auth_userhash(csip_auth_alg alg, csip_str username, csip_str realm, char *out);

/** The request a credential is bound to. @since 0.1 */
typedef struct csip_auth_request {
    csip_str method; /**< request method ("REGISTER"); for ACK/CANCEL the INVITE's rules apply */
    csip_str uri;    /**< the Request-URI as it appears on the request line */
    csip_str body;   /**< message body (used by qop=auth-int only) */
} csip_auth_request;

/**
 * The inputs of a digest response (RFC 7616 §3.4.1). Views are unescaped
 * values (no quotes, no quoted-pairs).
 * @since 0.1
 */
typedef struct csip_auth_digest {
    csip_auth_alg alg;
    csip_str ha1; /**< hex H(username:realm:password) of the base hash */
    csip_str nonce;
    csip_str cnonce; /**< with qop, or with a -sess algorithm */
    csip_str nc;     /**< 8 hex digits, with qop */
    csip_str qop;    /**< "auth", "auth-int", or absent for RFC 2069 */
} csip_auth_digest;

/**
 * The response value: KD(HA1', nonce:nc:cnonce:qop:HA2), or KD(HA1', nonce:HA2)
 * without qop, where HA1' = H(HA1:nonce:cnonce) for -sess and HA2 =
 * H(method:uri) or H(method:uri:H(body)) for auth-int.
 * @param out CSIP_AUTH_HEX_MAX bytes, lowercase hex, NUL-terminated.
 * @return 0, CSIP_ERR_INVALID_ARG (bad alg, ha1 of the wrong length, unknown
 *         qop, missing cnonce/nc), CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_auth_compute_response(const csip_auth_digest *d, const csip_auth_request *req,
                                           char *out);

/* ------------------------------------------------------------------------- */
/* Server side                                                                */

/** What the verifier concluded. The caller maps it to a response (csip_auth_result_status). */
typedef enum csip_auth_result {
    CSIP_AUTH_OK = 0,           /**< credentials valid, nc fresh */
    CSIP_AUTH_STALE = 1,        /**< valid response, expired nonce: challenge with stale=true */
    CSIP_AUTH_BAD_RESPONSE = 2, /**< wrong password (or altered request) */
    CSIP_AUTH_UNKNOWN_USER = 3, /**< the lookup did not find the user */
    CSIP_AUTH_REPLAY = 4,       /**< nc not above the highest seen for this nonce */
    CSIP_AUTH_MALFORMED = 5,    /**< missing or malformed parameter, uri mismatch */
    CSIP_AUTH_WRONG_REALM = 6,  /**< realm is not ours */
    CSIP_AUTH_UNSUPPORTED_ALGORITHM = 7, /**< algorithm not offered */
    CSIP_AUTH_BAD_NONCE = 8,             /**< nonce not issued by this key (forged, tampered) */
    CSIP_AUTH_UNSUPPORTED_QOP = 9,       /**< qop other than auth/auth-int */
    CSIP_AUTH_NOT_DIGEST = 10,           /**< another scheme than Digest */
    CSIP_AUTH_INTERNAL_ERROR = 11,       /**< out of memory or a libcrypto failure */
} csip_auth_result;

/** The enum name without prefix ("BAD_RESPONSE"), or "UNKNOWN". Static. */
CSIP_EXTERN const char *csip_auth_result_name(csip_auth_result r);
/**
 * The usual answer: 200 for OK; 401 (407 when proxy is true) for STALE,
 * BAD_RESPONSE, UNKNOWN_USER, REPLAY, WRONG_REALM, UNSUPPORTED_ALGORITHM,
 * BAD_NONCE, NOT_DIGEST (a fresh challenge); 400 for MALFORMED and
 * UNSUPPORTED_QOP; 500 for INTERNAL_ERROR.
 */
CSIP_EXTERN int csip_auth_result_status(csip_auth_result r, bool proxy);

/** Options of a verifier, filled in by setters. @since 0.1 */
typedef struct csip_auth_server_opts csip_auth_server_opts;

/** Default nonce lifetime, seconds. */
#define CSIP_AUTH_DEFAULT_NONCE_LIFETIME 300u
/** Default number of nonces whose highest nc is remembered. */
#define CSIP_AUTH_DEFAULT_REPLAY_SLOTS 65536u
/** Longest realm, username, URI… accepted (octets). */
#define CSIP_AUTH_MAX_FIELD 1024u

/**
 * New options: realm empty, lifetime 300 s, algorithms SHA-256 then MD5,
 * replay table of CSIP_AUTH_DEFAULT_REPLAY_SLOTS.
 * @param out owned, free with csip_auth_server_opts_free().
 * @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_auth_server_opts_new(const csip_mem *mem, csip_auth_server_opts **out);
CSIP_EXTERN void csip_auth_server_opts_free(csip_auth_server_opts *opts);
/** The realm (copied). @return 0, CSIP_ERR_INVALID_ARG (NUL, quote, backslash, too long),
 * CSIP_ERR_NOMEM. */
CSIP_EXTERN int csip_auth_server_opts_set_realm(csip_auth_server_opts *opts, csip_str realm);
/** Nonce lifetime in seconds (> 0). @return 0, CSIP_ERR_INVALID_ARG. */
CSIP_EXTERN int csip_auth_server_opts_set_nonce_lifetime(csip_auth_server_opts *opts,
                                                         uint32_t seconds);
/**
 * Algorithms offered, in order of preference, one challenge each (1 to
 * CSIP_AUTH_ALG_COUNT, no duplicates). @return 0, CSIP_ERR_INVALID_ARG.
 */
CSIP_EXTERN int csip_auth_server_opts_set_algorithms(csip_auth_server_opts *opts,
                                                     const csip_auth_alg *algs, size_t n);
/** Size of the replay table (>= 1, <= 2^24). @return 0, CSIP_ERR_INVALID_ARG. */
CSIP_EXTERN int csip_auth_server_opts_set_replay_slots(csip_auth_server_opts *opts, size_t n);
/** Also offer qop "auth-int" (qop="auth,auth-int"). Default off. */
CSIP_EXTERN int csip_auth_server_opts_set_auth_int(csip_auth_server_opts *opts, bool on);

/** A verifier: key, realm, replay table. Opaque. @since 0.1 */
typedef struct csip_auth_server csip_auth_server;

/**
 * Creates a verifier.
 * @param mem  allocation hooks (NULL: libc); must outlive the verifier.
 * @param key  secret for the nonce MAC (e.g. 32 random bytes), copied; the same
 *             key across restarts keeps outstanding nonces valid.
 * @param opts copied; NULL for the defaults (then the realm is empty).
 * @param out  owned, free with csip_auth_server_free().
 * @return 0, CSIP_ERR_INVALID_ARG (key shorter than 16 bytes or longer than 64),
 *         CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_auth_server_new(const csip_mem *mem, const uint8_t *key, size_t key_len,
                                     const csip_auth_server_opts *opts, csip_auth_server **out);
CSIP_EXTERN void csip_auth_server_free(csip_auth_server *srv);

/** Number of challenges (algorithms offered). */
CSIP_EXTERN size_t csip_auth_server_challenge_count(const csip_auth_server *srv);
/**
 * Writes the i-th challenge value (for WWW-Authenticate or Proxy-Authenticate):
 * Digest realm="…", nonce="…", opaque="…", algorithm=…, qop="auth"[, stale=true].
 * Every call makes a fresh nonce bound to now_ms, the realm and the algorithm.
 * @param buf output, NUL-terminated when it fits.
 * @return the length written (without NUL); CSIP_ERR_NOT_FOUND (i out of range),
 *         CSIP_ERR_BUFFER_TOO_SMALL, CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_auth_server_challenge(csip_auth_server *srv, size_t i, bool stale,
                                           uint64_t now_ms, char *buf, size_t cap);

/**
 * Finds a user's stored HA1 (hex of H(username:realm:password) with the hash
 * of alg, always a base algorithm). username is unescaped; when userhash is
 * true it is the hex userhash instead (RFC 7616 §3.4.4). Write the hex and its
 * NUL to ha1 (ha1_cap = CSIP_AUTH_HEX_MAX).
 * @return 0; CSIP_ERR_NOT_FOUND (unknown user); any other negative code is an
 *         internal failure.
 */
typedef int (*csip_auth_lookup_fn)(void *user_data, csip_str username, bool userhash,
                                   csip_str realm, csip_auth_alg alg, char *ha1, size_t ha1_cap);

/**
 * Verifies credentials (a parsed Authorization or Proxy-Authorization value)
 * for a request. Order: scheme, realm, algorithm, nonce MAC, parameters and
 * uri, user lookup, response, expiry (STALE only with a correct response),
 * then the nonce count: the highest nc seen per nonce is remembered in a
 * bounded table (oldest nonce evicted); a nonce without qop may be used once.
 * A nonce evicted before its expiry gives STALE, so eviction never reopens a
 * replay.
 */
CSIP_EXTERN csip_auth_result csip_auth_server_verify(csip_auth_server *srv, const csip_auth *cred,
                                                     const csip_auth_request *req, uint64_t now_ms,
                                                     csip_auth_lookup_fn lookup, void *user_data);

/** Number of nonces currently in the replay table (for tests and statistics). */
CSIP_EXTERN size_t csip_auth_server_replay_count(const csip_auth_server *srv);

/* ------------------------------------------------------------------------- */
/* Client side                                                                */

/**
 * Index of the first challenge that is Digest with an algorithm this library
 * supports, in the order given (the order of the header lines).
 * @return 0 with *index set, or CSIP_ERR_NOT_FOUND.
 */
CSIP_EXTERN int csip_auth_client_choose(const csip_auth *challenges, size_t n, size_t *index);
/**
 * The same over a message's WWW-Authenticate (or Proxy-Authenticate) lines.
 * @param out borrowed, valid as long as the message.
 * @return 0, CSIP_ERR_NOT_FOUND, or an error of csip_msg_auth().
 */
CSIP_EXTERN int csip_auth_client_choose_msg(const csip_msg *msg, csip_hdr_id id,
                                            const csip_auth **out);

/**
 * Builds a credentials value answering a challenge: qop=auth when offered
 * (auth-int when only it is offered, no qop when none is), userhash when the
 * challenge asks for it, opaque echoed.
 * @param cnonce the client nonce; absent (p == NULL): 16 random bytes (RAND_bytes) in hex.
 * @param nc     the nonce count, from 1, incremented for each request under the same nonce.
 * @return the length written (buf NUL-terminated); CSIP_ERR_NOT_FOUND (not Digest,
 *         unsupported algorithm or qop), CSIP_ERR_INVALID_ARG (missing realm or
 *         nonce, nc 0, field too long, a control character in username, uri or
 *         cnonce), CSIP_ERR_BUFFER_TOO_SMALL, CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_auth_client_answer(const csip_auth *challenge, csip_str username,
                                        csip_str password, const csip_auth_request *req,
                                        uint32_t nc, csip_str cnonce, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
