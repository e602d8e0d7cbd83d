/*
 * csip — RFC 3263 server location ("Locating SIP Servers") over c-ares, on a
 * libuv loop. Part of the runtime (csip_runtime), not of the sans-I/O core.
 *
 * Given a SIP or SIPS URI, the resolver returns the ordered list of targets
 * (transport, address, port) to try, as RFC 3263 §4 says: the transport from
 * the URI's transport parameter, or from NAPTR records (SIP+D2U, SIP+D2T,
 * SIPS+D2T, in their order and preference), or from the SRV records that
 * exist (_sips._tcp, _sip._tcp, _sip._udp), or the default (UDP for sip,
 * TLS for sips); the port from the URI, or from SRV, or 5060/5061; addresses
 * from A and AAAA. SRV targets are ordered by priority, and by a weighted
 * random choice within a priority (RFC 2782). A numeric host or an explicit
 * port skips NAPTR and SRV. The caller fails over to the next target on a
 * transport error, a timeout or a 503 (§4.3).
 *
 * Threading: a resolver is confined to the thread of its loop.
 */
#ifndef CSIP_DNS_H
#define CSIP_DNS_H

#include <uv.h>

#include "csip/addr.h"
#include "csip/uri.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csip_resolver csip_resolver;

/** Resolver options; zeroed fields mean the defaults. */
typedef struct csip_resolver_opts {
    /** Comma-separated servers ("127.0.0.1:5353,[::1]:53"); NULL = the system's (resolv.conf). */
    const char *servers;
    uint32_t timeout_ms; /**< per try, default 2000 */
    uint32_t tries;      /**< default 2 */
    bool prefer_ipv6;    /**< order AAAA before A for the same target (default: A first) */
} csip_resolver_opts;

/** One target to try, in order. host is the name it came from (for TLS verification). */
typedef struct csip_target {
    csip_addr addr;  /**< transport, family, ip, port (conn 0) */
    char host[256];  /**< NUL-terminated host name (or the IP literal) */
} csip_target;

/**
 * Called once per csip_resolve(): status 0 with n >= 1 targets (borrowed for
 * the call), or a negative csip_err with n == 0: CSIP_ERR_NOT_FOUND when the
 * name has no usable record, CSIP_ERR_DNS when the servers failed (timeout,
 * refused, SERVFAIL), CSIP_ERR_NOMEM; CSIP_ERR_CANCELLED for queries still
 * pending when the resolver is freed.
 */
typedef void (*csip_resolve_cb)(void *user_data, int status, const csip_target *targets,
                                size_t n);

/** @return 0, CSIP_ERR_INVALID_ARG (bad servers string), CSIP_ERR_NOMEM. */
CSIP_EXTERN int csip_resolver_new(uv_loop_t *loop, const csip_resolver_opts *opts,
                                  csip_resolver **out);
/**
 * Stops pending queries (their callbacks run with CSIP_ERR_CANCELLED) and
 * frees the resolver. As with any libuv handle, the last memory is released
 * when the loop runs the close callbacks: run the loop once more before
 * uv_loop_close().
 */
CSIP_EXTERN void csip_resolver_free(csip_resolver *r);

/**
 * Starts resolving uri (sip or sips; copied). The callback runs later, from
 * the loop, never from inside this call.
 * @return 0; CSIP_ERR_INVALID_ARG (not sip/sips, no host, an unknown
 *         transport parameter, sips with transport=udp or sctp); CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_resolve(csip_resolver *r, const csip_uri *uri, csip_resolve_cb cb,
                             void *user_data);

#ifdef __cplusplus
}
#endif
#endif
