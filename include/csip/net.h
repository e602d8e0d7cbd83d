/*
 * csip — the network runtime on libuv: UDP, TCP and TLS transports, IPv4 and
 * IPv6, wired to a transaction layer (RFC 3261 §18, RFC 3581). Part of
 * csip_runtime, not of the sans-I/O core.
 *
 * A csip_endpoint owns, on one uv loop: the listening sockets, the stream
 * connections (reused by remote address and transport, idle-timed out,
 * capped in number and in bytes buffered), a csip_txn_layer and the uv timer
 * that drives it. Received datagrams, and messages framed from streams with
 * csip_stream_frame(), go to csip_txn_layer_recv(); the layer's sends go out
 * on the right socket: a response on the connection its request came on if it
 * is still open (§18.2.2), a request over UDP that is larger than the MTU
 * threshold over TCP instead (§18.1.1).
 *
 * The transaction layer notes the source of each received request in its top
 * Via (`received`, and the value of an empty `rport`, RFC 3261 §18.2.1, RFC
 * 3581), and keeps it with the server transaction (csip_txn_peer()).
 *
 * The layer's timer is re-armed before each loop iteration (a uv_prepare
 * handle), so csip_txn_* calls made from any loop callback need no extra step.
 *
 * Threading: an endpoint is confined to the thread of its loop.
 */
#ifndef CSIP_NET_H
#define CSIP_NET_H

#include "csip/addr.h"
#include "csip/txn.h"

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csip_endpoint csip_endpoint;

/** Endpoint options; zeroed fields mean the defaults. */
typedef struct csip_endpoint_opts {
    /** NULL-terminated listen specs: "udp:127.0.0.1:5060", "tcp:[::1]:5060",
     *  "tls:0.0.0.0:5061" (port 0 = any free port; see csip_endpoint_local()).
     *  A UDP listener sets SO_REUSEPORT once bound (a port in use still fails
     *  the bind): a peer that takes much of the traffic gets a socket of the
     *  endpoint's own on the same port, connected to it. */
    const char *const *listen;
    const char *tls_cert_file; /**< PEM certificate chain (needed to listen on TLS) */
    const char *tls_key_file;
    const char *tls_ca_file;  /**< trust anchors; NULL = the system's */
    bool tls_no_verify;       /**< turn off certificate and host name checks (tests only) */
    uint32_t idle_timeout_ms; /**< close stream connections idle this long; default 300000 */
    uint32_t max_connections; /**< default 1024 */
    uint32_t max_conn_buffer; /**< bytes buffered per connection, default 2 * max stream message */
    uint32_t udp_mtu;         /**< default 1500: requests over mtu-200 go over TCP */
    uint32_t udp_buffer;      /**< UDP socket receive and send buffers asked for, bytes
                                   (default 4 MiB; the kernel caps it at net.core.rmem_max
                                   and wmem_max): a burst waits there instead of being dropped */
    csip_txn_opts txn;        /**< transaction layer options */
} csip_endpoint_opts;

/**
 * Creates an endpoint on loop, listening as opts->listen says. cb is the
 * transaction user's callbacks; its send member is ignored (the endpoint
 * sends). user_data is given to every callback.
 * @return 0; CSIP_ERR_INVALID_ARG (a bad listen spec, TLS without a
 *         certificate); a transport error (address in use …); CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_endpoint_new(uv_loop_t *loop, const csip_endpoint_opts *opts,
                                  const csip_txn_callbacks *cb, void *user_data,
                                  csip_endpoint **out);

/**
 * Closes every socket and frees the endpoint (transactions end DESTROYED).
 * As with any libuv handle, the memory goes when the loop runs the close
 * callbacks: run the loop once more before uv_loop_close(). The same holds
 * after csip_endpoint_new() failed once a socket was open. Not from inside a
 * callback of its transaction layer (as csip_txn_layer_free()).
 */
CSIP_EXTERN void csip_endpoint_free(csip_endpoint *ep);

/** The endpoint's transaction layer (borrowed). */
CSIP_EXTERN csip_txn_layer *csip_endpoint_txn(csip_endpoint *ep);

/** The i-th bound local address (after port 0 was resolved), or NULL. */
CSIP_EXTERN const csip_addr *csip_endpoint_local(const csip_endpoint *ep, size_t i);

/** The endpoint's notion of now (uv_now of its loop), to pass to csip_txn_* calls. */
CSIP_EXTERN uint64_t csip_endpoint_now(const csip_endpoint *ep);

#ifdef __cplusplus
}
#endif
#endif
