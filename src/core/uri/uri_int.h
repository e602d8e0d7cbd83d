/*
 * Internal URI helpers shared with the other core layers (the Via sent-by and
 * received parameters use the same host grammar as SIP URIs).
 */
#ifndef CSIP_URI_INT_H
#define CSIP_URI_INT_H

#include "base/base_int.h"
#include "csip/uri.h"

/*
 * Checks that [p, p+n) is a whole host (RFC 3261 §25.1 host, with the dec-octet
 * IPv4 of RFC 5954 §4.1): a hostname, a dotted-quad IPv4 address without leading
 * zeros, or an IPv6 reference in brackets. Stores the kind in *type.
 * Returns true when the host is well formed.
 */
bool csip__host_check(const char *p, size_t n, csip_host_type *type);

#endif
