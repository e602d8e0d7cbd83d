/*
 * csip — transport addresses as the sans-I/O core sees them: raw IP bytes,
 * port, transport, and the host's connection id for stream transports. No
 * socket header is involved; the runtime converts to and from sockaddr.
 */
#ifndef CSIP_ADDR_H
#define CSIP_ADDR_H

#include "csip/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Transports (RFC 3261 §18, RFC 7118). */
typedef enum csip_transport {
    CSIP_TP_UDP = 0,
    CSIP_TP_TCP,
    CSIP_TP_TLS,
    CSIP_TP_SCTP,
    CSIP_TP_WS,
    CSIP_TP_WSS,
} csip_transport;

/** True for transports that deliver reliably (no retransmission timers, RFC 3261 §17). */
CSIP_EXTERN bool csip_transport_reliable(csip_transport tp);
/** "UDP", "TCP", "TLS", "SCTP", "WS", "WSS". Static. */
CSIP_EXTERN const char *csip_transport_name(csip_transport tp);
/** The transport for a Via transport token (case-insensitive); -1 when unknown. */
CSIP_EXTERN int csip_transport_lookup(csip_str name);

/**
 * A transport address. family is 4 or 6; ip holds 4 or 16 octets in network
 * order. conn identifies the stream connection a message came on (0 = none,
 * or "any connection to this address"); only the host gives it meaning.
 * @since 0.1
 */
typedef struct csip_addr {
    uint8_t family;
    uint8_t transport; /**< csip_transport */
    uint16_t port;
    uint8_t ip[16];
    uint64_t conn;
} csip_addr;

/** Parses an IPv4 or IPv6 literal ("192.0.2.1", "2001:db8::1", "[2001:db8::1]"). */
CSIP_EXTERN int csip_addr_set_ip(csip_addr *a, csip_str ip);
/** Equal family, ip, port and transport (conn ignored). */
CSIP_EXTERN bool csip_addr_equal(const csip_addr *a, const csip_addr *b);
/** Writes "192.0.2.1:5060" or "[2001:db8::1]:5060" (no transport). @return length or error. */
CSIP_EXTERN int csip_addr_format(const csip_addr *a, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
