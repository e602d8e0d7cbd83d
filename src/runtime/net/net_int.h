/*
 * Internal structures of the network runtime (see docs/internals/net.md).
 *
 * An endpoint owns, on one uv loop: its listeners (UDP sockets, TCP and TLS
 * listening sockets), its stream connections (accepted and outbound, in one
 * list), the transaction layer, and four handles that drive them: the
 * transaction timer, the prepare handle that re-arms it before each loop
 * iteration, the idle-sweep timer of the connections, and nothing else.
 *
 * Lifetime follows libuv: closing a handle is asynchronous. A connection is
 * freed from its close callback; the endpoint is freed from the close
 * callback of its last handle, so csip_endpoint_free() must be followed by a
 * run of the loop (uv_run) before the memory is released.
 */
#ifndef CSIP_NET_INT_H
#define CSIP_NET_INT_H

/* uv.h needs POSIX types (pthread_rwlock_t …) that -std=c11 hides. Include
 * this header first. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include "base/base_int.h"
#include "csip/msg.h"
#include "csip/net.h"

#include <openssl/ssl.h>
#include <uv.h>

/* Defaults of csip_endpoint_opts. */
#define NET_DEFAULT_IDLE_MS 300000u
#define NET_DEFAULT_MAX_CONNS 1024u
#define NET_DEFAULT_MTU 1500u
/* RFC 3261 §18.1.1: within 200 bytes of the path MTU, go over TCP. */
#define NET_MTU_MARGIN 200u
/* Receive scratch buffer: the largest UDP datagram, and one read of a stream. */
#define NET_RBUF 65536u
/* UDP reads take up to this many datagrams in one recvmmsg() (a buffer of
 * NET_RBUF each), and at most NET_MMSG_ROUNDS such reads per wake-up (other
 * sockets get their turn). */
#define NET_MMSG 16u
#define NET_MMSG_ROUNDS 4u
/* UDP sends of one loop iteration wait in a batch and leave in one
 * sendmmsg() before the loop polls again: at most this many datagrams and
 * NET_BATCH_BYTES octets, a fuller batch leaves at once. */
#define NET_BATCH 64u
#define NET_BATCH_BYTES (256u * 1024u)
/* A peer that takes much of the UDP traffic (an edge proxy, an SBC, a load
 * generator) gets a socket of its own: bound to the listener's address and
 * port (SO_REUSEPORT, set on the listener only after its own bind, so that
 * binding a port in use still fails) and connected to the peer. Its sends
 * skip the kernel's route lookup per datagram, and a response still leaves
 * from where the request came in (RFC 3581 §4); the peer's datagrams arrive
 * on it (a connected socket wins the kernel's lookup) and are read as the
 * listener's are. A destination of NET_PEER_HOT datagrams in one batch gets
 * one, NET_PEERS at most; one unused for NET_PEER_IDLE_MS, or whose send
 * failed, is closed. A listener whose peer socket could not be set up
 * (bind, connect) gets no more of them. */
#define NET_PEERS 8u
#define NET_PEER_HOT 16u
#define NET_PEER_IDLE_MS 60000u

/* A message waiting for its connection (connect, TLS handshake), or one that
 * a failed connection could not send (then handled from the prepare callback:
 * a synthesized 503 for a request, or the UDP fallback of §18.1.1). */
typedef struct net_out {
    struct net_out *next;
    csip_addr remote; /* where it was going (transport of the connection) */
    bool switched;    /* a UDP request sent over TCP because of its size */
    int uv_err;       /* why it failed (0 while waiting) */
    char reason[96];  /* reason phrase of the synthesized 503 */
    size_t len;
    char data[];
} net_out;

typedef enum conn_state {
    CONN_CONNECTING = 0, /* outbound TCP connect in progress */
    CONN_HANDSHAKE,      /* TLS handshake in progress */
    CONN_OPEN,
    CONN_CLOSING, /* uv_shutdown or uv_close requested; invisible to lookups */
} conn_state;

typedef struct net_conn {
    csip_endpoint *ep;
    struct net_conn *prev, *next;
    struct net_conn *hid_next;   /* chain in ep->hid (by id) */
    struct net_conn *haddr_next; /* chain in ep->haddr (by remote address), once known */
    bool in_haddr;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    uint64_t id;
    csip_addr remote; /* transport TCP or TLS, conn = id */
    conn_state state;
    bool outbound;
    bool draining;         /* CLOSING after a framing error: reading and discarding */
    uint64_t linger_until; /* when a draining connection is closed anyway */
    uint64_t last_active;  /* uv_now of the last byte read or written */
    SSL *ssl;              /* TLS only; owns its two memory BIOs */
    BIO *rbio, *wbio;      /* network -> SSL, SSL -> network */
    char *rx;              /* plaintext received, not yet framed */
    size_t rx_len, rx_cap;
    csip_stream fr;
    net_out *pend, *pend_tail; /* messages waiting for CONN_OPEN */
    size_t pend_bytes;
    uint64_t recent[4]; /* hashes of the last requests switched from UDP (retransmissions) */
    unsigned recent_i;
    char host[256]; /* TLS client: the name (or address) the certificate must match */
} net_conn;

typedef enum listener_kind { LS_UDP = 0, LS_TCP, LS_TLS } listener_kind;

typedef struct net_listener {
    csip_endpoint *ep;
    union {
        uv_handle_t h;
        uv_udp_t udp;
        uv_tcp_t tcp;
    } u;
    listener_kind kind;
    bool init; /* the handle was initialised (must be closed) */
    /* UDP reads: a uv_poll_t on a dup() of the socket, drained by recvmmsg()
     * until a short read (libuv's own reader reads again until EAGAIN: one
     * system call more per wake-up). The uv_udp_t keeps the socket and its
     * queue of sends that would block. */
    uv_poll_t rpoll;
    int rfd;         /* the dup(), -1 when none */
    bool rpoll_init; /* rpoll was initialised (must be closed) */
    bool reuseport;  /* SO_REUSEPORT set after the bind: peers may share the port */
    csip_addr local;
} net_listener;

typedef struct udp_peer {
    csip_endpoint *ep;
    net_listener *l;
    uv_poll_t poll;
    int fd;
    socklen_t sslen;
    struct sockaddr_storage ss; /* the peer, as the batch writes it */
    uint64_t last_ms;           /* loop time of its last send */
} udp_peer;

struct csip_endpoint {
    uv_loop_t *loop;
    const csip_mem *mem;
    csip_txn_layer *txn;
    csip_txn_callbacks cb; /* the TU's callbacks (send unused) */
    void *user_data;

    uv_timer_t timer;     /* transaction timers (csip_txn_layer_next_expiry) */
    uv_prepare_t prepare; /* re-arms `timer`, handles failed sends */
    uv_timer_t idle;      /* idle sweep of the connections */
    uint64_t timer_due;   /* the expiry `timer` is armed for, UINT64_MAX when stopped */

    net_listener *ls;
    size_t n_ls;
    udp_peer *peers[NET_PEERS]; /* connected UDP sockets of busy peers */
    size_t n_peers;

    net_conn *conns; /* every connection, CLOSING ones included */
    size_t n_conns;
    net_conn **hid, **haddr; /* hash tables of conns by id and by remote address */
    size_t hmask;            /* buckets - 1 (a power of two, about max_conns) */
    uint64_t next_conn_id;
    net_out *failed, *failed_tail; /* see net_out */

    SSL_CTX *tls_server, *tls_client;

    uint32_t idle_ms, max_conns, max_conn_buffer, udp_mtu, udp_buffer;
    bool tls_no_verify;
    char *tls_ca_file, *tls_cert_file, *tls_key_file; /* copies, for the lazy client context */
    csip_limits limits;

    char *rbuf; /* NET_RBUF bytes: stream reads */
    char *mbuf; /* NET_MMSG * NET_RBUF bytes: UDP datagrams (recvmmsg) */
    struct udp_batch *batch; /* UDP sends waiting for the end of the loop iteration */
    char *pbuf; /* NET_RBUF bytes: TLS plaintext */

    unsigned handles; /* handles not yet closed; the endpoint is freed at 0 once freeing */
    bool freeing;
    bool synthesizing; /* feeding the layer a 503 of our own (see endpoint.c) */
};

/* ---- endpoint.c -------------------------------------------------------- */

/* sockaddr <-> csip_addr. */
void csip__net_to_sockaddr(const csip_addr *a, struct sockaddr_storage *ss);
void csip__net_from_sockaddr(const struct sockaddr *sa, csip_transport tp, csip_addr *a);
/* Called from every close callback of a handle of the endpoint. */
void csip__net_handle_closed(csip_endpoint *ep);
/* Queues a message that could not be sent (handled from the prepare callback). */
void csip__net_fail_later(csip_endpoint *ep, net_out *o);
/* Rewrites the transport of the top Via of a printed request in place
 * (same length: UDP <-> TCP). @return true when it was rewritten. */
bool csip__net_via_set_transport(char *data, size_t len, const char *tp3);

/* ---- conn.c ------------------------------------------------------------ */

/* Sends bytes on a stream transport: on dst->conn when it is open, else on an
 * open connection to the same address and transport, else on a new one.
 * switched: a UDP request sent over TCP (§18.1.1).
 * @return 0 (sent or queued), CSIP_ERR_NOMEM, or CSIP_ERR_TRANSPORT (no
 *         connection could be made: cap reached, connect refused at once;
 *         or the connection failed writing). */
int csip__net_stream_send(csip_endpoint *ep, const csip_addr *dst, const void *data, size_t len,
                          bool switched);
/* Accepts a connection from a TCP or TLS listener. */
void csip__net_accept(net_listener *l);
/* Starts closing a connection at once (pending writes cancelled). */
void csip__net_conn_close(net_conn *c, int uv_err, const char *why);
/* Closes the connections idle for idle_ms and re-arms the idle timer. */
void csip__net_idle_sweep(csip_endpoint *ep);

/* ---- tls.c ------------------------------------------------------------- */

/* Creates the server context from the certificate and key files.
 * @return 0 or CSIP_ERR_INVALID_ARG (unreadable files, key mismatch). */
int csip__net_tls_server_ctx(csip_endpoint *ep);
/* The client context, created on first use. NULL on failure. */
SSL_CTX *csip__net_tls_client_ctx(csip_endpoint *ep);
/* Sets up c->ssl (server or client side; the client checks c->host). @return 0 or NOMEM. */
int csip__net_tls_start(net_conn *c, bool server);
/* Why the handshake failed, as a short phrase ("hostname mismatch"). */
void csip__net_tls_error(net_conn *c, char *out, size_t cap);
/* The name a TLS server must prove for a message we send (RFC 5922 §4): the
 * host of the top Route URI, else of the Request-URI; for a response, the
 * top Via sent-by. Brackets of IPv6 references removed. */
void csip__net_tls_name(const char *data, size_t len, char *out, size_t cap);

/* ---- test introspection ------------------------------------------------ */

/* Connections not closing. */
size_t csip__endpoint_conn_count(const csip_endpoint *ep);

/* Adds a connection to the by-address table once its remote address is known. */
void csip__net_conn_addr_known(net_conn *c);

#endif
