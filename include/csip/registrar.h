/*
 * csip — the registrar (RFC 3261 §10.3, RFC 3327 Path) and the location-store
 * interface it works through.
 *
 * The registrar is sans-I/O: it reads no clock (the time is an argument) and
 * keeps no binding itself. Bindings live in a location store that the host
 * provides as a csip_location_store (a table of functions and user_data);
 * src/runtime/store implements it in memory and on SQLite (csip/store.h).
 *
 * Threading: a csip_registrar is confined to one thread at a time, and so is
 * the store it calls.
 */
#ifndef CSIP_REGISTRAR_H
#define CSIP_REGISTRAR_H

#include "csip/base.h"
#include "csip/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * One binding of an address-of-record to a contact address. Every view is
 * owned by whoever hands the struct out (see each function).
 * @since 0.1
 */
typedef struct csip_binding {
    csip_str aor;       /**< canonical AOR: "sip:" or "sips:", user unescaped, '@', host
                             lowercased, ":port" when given; no parameters */
    csip_str contact;   /**< the Contact URI as received (without <>) */
    csip_str params;    /**< the Contact header parameters as received, without the
                             leading ';' and without expires (absent when none) */
    csip_str path;      /**< the Path values of the REGISTER, as received, joined by ", "
                             (RFC 3327; absent when none) */
    csip_str call_id;   /**< Call-ID of the REGISTER that last wrote the binding */
    uint32_t cseq;      /**< its CSeq number */
    bool has_q;         /**< a q parameter was given */
    uint16_t q;         /**< q as thousandths (q=0.5 gives 500); 1000 when absent */
    int64_t expires_at; /**< absolute expiry, in the host's seconds (the `now` clock) */
    uint64_t store_id;  /**< the store's own key of the binding (the SQLite row); set by
                             the store, ignored in what a put is given */
} csip_binding;

/**
 * The location-store operations the registrar uses. Every function returns 0
 * or a negative csip_err; any error makes the registrar answer 500 and leave
 * the AOR as it was (after rollback). Bindings are keyed by (aor, contact),
 * byte for byte; the registrar does the RFC 3261 §19.1.4 URI comparison
 * itself and removes a binding before writing a same-URI one spelt otherwise.
 * @since 0.1
 */
typedef struct csip_location_store {
    /**
     * The bindings of an AOR, expired ones possibly included (the registrar
     * skips them). *out is borrowed: valid until the next call into the store.
     * An AOR without bindings gives *n = 0 and returns 0.
     */
    int (*get)(void *user_data, csip_str aor, const csip_binding **out, size_t *n);
    /** Inserts the binding, or replaces the one with the same aor and contact. Copies it. */
    int (*put)(void *user_data, const csip_binding *b);
    /** Removes one binding (absent is not an error). */
    int (*remove)(void *user_data, csip_str aor, csip_str contact);
    /** Removes every binding of an AOR. */
    int (*remove_all)(void *user_data, csip_str aor);
    /**
     * Optional (NULL): starts an atomic update of one AOR. The puts and
     * removes that follow become visible and durable on commit, all or none
     * (RFC 3261 §10.3 step 7); rollback undoes them.
     */
    int (*begin)(void *user_data, csip_str aor);
    int (*commit)(void *user_data);
    void (*rollback)(void *user_data);
    void *user_data;
} csip_location_store;

/**
 * Registrar options. A zero field means the default given.
 * @since 0.1
 */
typedef struct csip_registrar_opts {
    /** NULL-terminated domains served (host part of the AOR, case-insensitive);
        NULL serves every domain. The strings must outlive the registrar. */
    const char *const *domains;
    /** NULL-terminated other names of this server (its IP addresses, host names),
        accepted in the Request-URI (§10.3 step 1) but never as an AOR domain;
        NULL for none. Borrowed like domains. */
    const char *const *aliases;
    uint32_t min_expires;     /**< 423 below this (default 60) */
    uint32_t default_expires; /**< when neither expires nor Expires is given (default 3600) */
    uint32_t max_expires;     /**< longer requests are shortened to this (default 86400) */
    uint32_t max_bindings;    /**< per AOR (default 16); more gives 403 */
    uint32_t retry_after;     /**< Retry-After of an out-of-order 500, seconds (default 5) */
} csip_registrar_opts;

/** A registrar (opaque). */
typedef struct csip_registrar csip_registrar;

/**
 * Creates a registrar.
 * @param opts copied (NULL: every default; the domains array is borrowed).
 * @param store copied; its user_data must outlive the registrar.
 * @param mem NULL for libc.
 * @param out set to the registrar (owned: free with csip_registrar_free()).
 * @return 0, CSIP_ERR_INVALID_ARG (store without get/put/remove/remove_all, or
 *         min_expires above max_expires), CSIP_ERR_NOMEM.
 * @since 0.1
 */
CSIP_EXTERN int csip_registrar_new(const csip_registrar_opts *opts,
                                   const csip_location_store *store, const csip_mem *mem,
                                   csip_registrar **out);

/** Frees a registrar (NULL is a no-op). The store is not touched. */
CSIP_EXTERN void csip_registrar_free(csip_registrar *reg);

/**
 * Processes a REGISTER as RFC 3261 §10.3 steps 3 to 8 say (authentication,
 * step 4, is the caller's, before this call) and builds the response:
 *  - 400 when the To URI is not sip/sips, when Contact, Expires, To, Call-ID
 *    or CSeq cannot be read, or for '*' not alone or without Expires: 0;
 *  - 404 when the AOR's domain (or the Request-URI's) is not served;
 *  - 423 with Min-Expires when a non-zero expiry is below min_expires (and
 *    below one hour);
 *  - 500 with Retry-After when a binding was written by the same Call-ID with
 *    a CSeq not lower (out of order), and 500 when the store fails;
 *  - 403 when the AOR would hold more than max_bindings;
 *  - 200 listing every current binding with ;expires=<remaining seconds>,
 *    a Date header, and the Path of the request when it says Supported: path.
 * A REGISTER without Contact only fetches the bindings. Every change is
 * written to the store (inside begin/commit when the store has them) before
 * the 200 OK is built.
 *
 * @param now the current time in seconds, on the clock of csip_binding.expires_at
 *        (the Date header reads it as seconds since 1970).
 * @param out set to the response (owned: free with csip_msg_free()).
 * @return 0 (a response is in *out, whatever its code); CSIP_ERR_INVALID_ARG
 *         when req is not a REGISTER request; CSIP_ERR_NOMEM.
 * @since 0.1
 */
CSIP_EXTERN int csip_registrar_handle(csip_registrar *reg, const csip_msg *req, int64_t now,
                                      csip_msg **out);

/**
 * The canonical AOR of a sip/sips URI: lowercase scheme, ':', the user
 * unescaped (octets as decoded, %00 included), '@' when there is a user, the
 * host lowercased, ":port" when given. Parameters and headers are dropped.
 * @return the length written or needed (out may be NULL when cap is 0),
 *         CSIP_ERR_INVALID_ARG (not sip/sips), CSIP_ERR_BUFFER_TOO_SMALL.
 * @since 0.1
 */
CSIP_EXTERN int csip_registrar_aor(const csip_uri *uri, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
