/*
 * csip — the transaction layer (RFC 3261 §17 with RFC 6026), sans-I/O.
 *
 * A csip_txn_layer holds every client and server transaction of one
 * endpoint. It owns no socket and reads no clock:
 *   - bytes received by the host go in with csip_txn_layer_recv() (one
 *     datagram, or one message framed by csip_stream_frame()), with the
 *     current time;
 *   - the layer sends through the host's send callback;
 *   - csip_txn_layer_next_expiry() says when it must be woken, and
 *     csip_txn_layer_handle_expiry() fires the timers that are due.
 * Time is a monotonic count of milliseconds chosen by the host.
 *
 * Threading: a layer and its transactions are confined to one thread.
 * Callbacks run inside the call that caused them (recv, handle_expiry,
 * client_new, client_abandon, respond); they may call back into the layer,
 * except csip_txn_layer_free().
 *
 * Lifetime: a transaction that ends is freed only by the expiry run. It
 * enters Terminated, csip_txn_layer_next_expiry() then says "now", and the
 * next csip_txn_layer_handle_expiry() (the same one, when a timer ended it)
 * runs on_terminated and frees it (or csip_txn_layer_free(), with
 * CSIP_TXN_END_DESTROYED). So a transaction that recv, client_new,
 * client_abandon or respond ended is still there when the call returns. A
 * csip_txn pointer is valid until its on_terminated returns; on_terminated
 * comes exactly once.
 */
#ifndef CSIP_TXN_H
#define CSIP_TXN_H

#include "csip/addr.h"
#include "csip/base.h"
#include "csip/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csip_txn_layer csip_txn_layer;
typedef struct csip_txn csip_txn;

/** Transaction kinds. */
typedef enum csip_txn_kind {
    CSIP_TXN_INVITE_CLIENT = 0,
    CSIP_TXN_NON_INVITE_CLIENT,
    CSIP_TXN_INVITE_SERVER,
    CSIP_TXN_NON_INVITE_SERVER,
} csip_txn_kind;

/** States (RFC 3261 §17 figures 5–8, RFC 6026 §7 "Accepted"). */
typedef enum csip_txn_state {
    CSIP_TXN_CALLING = 0, /**< INVITE client: request sent */
    CSIP_TXN_TRYING,      /**< non-INVITE client and server */
    CSIP_TXN_PROCEEDING,
    CSIP_TXN_COMPLETED,
    CSIP_TXN_CONFIRMED, /**< INVITE server: ACK received */
    CSIP_TXN_ACCEPTED,  /**< INVITE client and server after a 2xx (RFC 6026) */
    CSIP_TXN_TERMINATED,
} csip_txn_state;

/**
 * Why a transaction ended (csip_txn_callbacks on_terminated; the state it
 * ended from is csip_txn_end_state()).
 */
typedef enum csip_txn_end {
    CSIP_TXN_END_NORMAL = 0, /**< ran its course */
    CSIP_TXN_END_TIMEOUT,    /**< Timer B, F or H fired, the §9.1 guard fired, or
                                  csip_txn_client_abandon() ended it (client: 408
                                  delivered) */
    CSIP_TXN_END_TRANSPORT,  /**< the host's send failed (client: 503 delivered, unless
                                  the final response had gone up already) */
    CSIP_TXN_END_DESTROYED,  /**< csip_txn_layer_free() with the transaction alive */
} csip_txn_end;

/**
 * Timer values in milliseconds. A zero field means the RFC default: T1 500,
 * T2 4000, T4 5000; trying_ms 200 (the delay before a server INVITE
 * transaction sends 100 Trying on its own, RFC 3261 §17.2.1).
 */
typedef struct csip_txn_timers {
    uint32_t t1_ms;
    uint32_t t2_ms;
    uint32_t t4_ms;
    uint32_t trying_ms;
} csip_txn_timers;

/**
 * Host callbacks. Every callback gets the layer and the user_data given to
 * csip_txn_layer_new(). Unset callbacks are no-ops (send must be set).
 */
typedef struct csip_txn_callbacks {
    /**
     * Send bytes to dst (for stream transports dst->conn names the
     * connection when known). Return 0, or a negative csip_err when the
     * transport failed at once (RFC 3261 §17.1.4); the bytes are borrowed.
     */
    int (*send)(csip_txn_layer *layer, const csip_addr *dst, const void *data, size_t len,
                void *user_data);
    /**
     * A new request: st is its new server transaction (NULL for an ACK that
     * matched none: the ACK of a 2xx, which belongs to the TU). req and src are
     * borrowed: req lives as long as st (csip_txn_request()), or for the call
     * when st is NULL. A retransmission of a known request never comes here.
     */
    void (*on_request)(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data);
    /**
     * A response for a client transaction: every provisional response, the
     * final one exactly once, and (RFC 6026) every 2xx retransmission while
     * the INVITE client transaction is Accepted. resp is borrowed for the call.
     * On a timeout, a transport error or csip_txn_client_abandon() the final
     * "response" is synthesized: resp is NULL and status is 408 or 503. After
     * a final response nothing but further 2xx (INVITE, Accepted) comes.
     */
    void (*on_response)(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data);
    /** A response that matched no client transaction (a stateless proxy forwards it). */
    void (*on_stray_response)(csip_txn_layer *layer, const csip_msg *resp, const csip_addr *src,
                              void *user_data);
    /**
     * The transaction ends and is freed after this call returns. Always from
     * csip_txn_layer_handle_expiry() or csip_txn_layer_free(), exactly once.
     * csip_txn_end_state(t) tells the state it ended from (a client's
     * CSIP_TXN_END_TRANSPORT in Calling, Trying or Proceeding came with a
     * 503; in Completed it was the ACK that could not be sent).
     */
    void (*on_terminated)(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data);
} csip_txn_callbacks;

/** Layer options. Zeroed fields mean the defaults. */
typedef struct csip_txn_opts {
    csip_txn_timers timers;
    csip_limits limits; /**< parse limits for received messages */
    uint32_t max_txns;  /**< 0 = 65536; beyond it new requests get 503 statelessly */
    const csip_mem *mem;
    /**
     * Non-INVITE server transactions (RFC 3261 branches) free their request
     * once their final response is sent, keeping only what matching and
     * retransmission need (a few hundred bytes instead of the parsed
     * request's kilobytes, for the 32 s of Timer J over UDP).
     * csip_txn_request() of such a transaction then returns NULL. Default off.
     */
    bool drop_completed_requests;
} csip_txn_opts;

/**
 * Creates a layer. cb is copied. The hash key is drawn from OpenSSL's
 * RAND_bytes.
 * @return 0; CSIP_ERR_INVALID_ARG (out NULL, cb NULL, no send callback);
 *         CSIP_ERR_NOMEM (out of memory, and also when RAND_bytes fails).
 *         *out is NULL on error.
 */
CSIP_EXTERN int csip_txn_layer_new(const csip_txn_opts *opts, const csip_txn_callbacks *cb,
                                   void *user_data, csip_txn_layer **out);
/** Frees the layer; live transactions end with CSIP_TXN_END_DESTROYED (on_terminated runs). */
CSIP_EXTERN void csip_txn_layer_free(csip_txn_layer *layer);

/**
 * Feeds one received message (a datagram, or one message framed from a stream
 * with csip_stream_frame(): src->transport tells which) at time now_ms. The
 * bytes are copied. A request's top Via gets `received` (when its sent-by is
 * not the source address, or it has rport) and the source port as the value
 * of an empty `rport` (RFC 3261 §18.2.1, RFC 3581 §4) before the TU sees it. A request that fails
 * validation is answered statelessly with the response the parser names (400, 505, 513 …) when its
 * Via, From, To, Call-ID and CSeq allow an answer; anything else malformed is dropped and counted.
 * Retransmissions are absorbed or answered from the last response.
 * @return 0 (also for anything dropped or answered statelessly);
 *         CSIP_ERR_INVALID_ARG (layer or src NULL, data NULL with len > 0);
 *         CSIP_ERR_NOMEM (the message was dropped).
 */
CSIP_EXTERN int csip_txn_layer_recv(csip_txn_layer *layer, const void *data, size_t len,
                                    const csip_addr *src, uint64_t now_ms);

/** The time at which csip_txn_layer_handle_expiry() must next be called; UINT64_MAX if never. */
CSIP_EXTERN uint64_t csip_txn_layer_next_expiry(const csip_txn_layer *layer);
/**
 * Fires every timer due at now_ms (retransmissions, timeouts, terminations:
 * on_terminated runs from here). Does nothing when called from inside a
 * callback of the same layer; next_expiry still tells when it is due.
 */
CSIP_EXTERN void csip_txn_layer_handle_expiry(csip_txn_layer *layer, uint64_t now_ms);

/** Number of live transactions. */
CSIP_EXTERN size_t csip_txn_layer_count(const csip_txn_layer *layer);

/** Counters kept by a layer. */
typedef struct csip_txn_stats {
    uint64_t received, sent, retransmitted, absorbed, malformed_dropped, malformed_answered;
    uint64_t stray_responses, timeouts, transport_errors, overload_rejected;
} csip_txn_stats;
CSIP_EXTERN void csip_txn_layer_stats(const csip_txn_layer *layer, csip_txn_stats *out);

/**
 * Writes a new RFC 3261 branch ("z9hG4bK" and 22 random base64url
 * characters, from OpenSSL's RAND_bytes) into out (cap >= 30), NUL-terminated.
 * @return the length (29); CSIP_ERR_BUFFER_TOO_SMALL (out NULL or cap < 30);
 *         CSIP_ERR_FATAL (RAND_bytes failed: out is left untouched).
 */
CSIP_EXTERN int csip_txn_new_branch(char *out, size_t cap);

/**
 * Starts a client transaction for req (transferred: the layer frees it),
 * sending it to dst now. The request's top Via must carry an RFC 3261 branch
 * unique to this transaction. For an INVITE the kind is INVITE_CLIENT,
 * otherwise NON_INVITE_CLIENT (an ACK is never a transaction: send it with
 * csip_txn_layer_send_stateless()). A CANCEL whose branch is that of an
 * INVITE client transaction in Calling or Proceeding arms that
 * transaction's §9.1 guard (see csip_txn_client_abandon()).
 *
 * When the first send fails (the send callback returned an error, RFC 3261
 * §17.1.4), the call still returns 0 with *out set: on_response has run
 * inside this call with resp NULL and status 503, the transaction is
 * Terminated, and on_terminated (CSIP_TXN_END_TRANSPORT) follows from the
 * next csip_txn_layer_handle_expiry(), which next_expiry says is due now.
 *
 * @return 0; CSIP_ERR_INVALID_ARG (layer, req or dst NULL, the layer being
 *         freed, not a request, an ACK, no top Via or CSeq, a branch without
 *         the magic cookie, a branch and method already in use);
 *         CSIP_ERR_NOMEM. On error req is freed and *out is NULL.
 */
CSIP_EXTERN int csip_txn_client_new(csip_txn_layer *layer, csip_msg *req, const csip_addr *dst,
                                    void *txn_user_data, uint64_t now_ms, csip_txn **out);

/**
 * Sends a response on a server transaction (resp transferred). Provisional
 * responses keep it in Proceeding; a 2xx to an INVITE moves it to Accepted
 * (RFC 6026); another final response to Completed, where the layer
 * retransmits it (Timer G) until the ACK or Timer H.
 *
 * While an INVITE server transaction is Accepted (until Timer L, 64*T1 after
 * the first 2xx) the TU retransmits its 2xx itself (RFC 3261 §13.3.1.4) by
 * passing it here again: every further 2xx is sent where the first went and
 * changes nothing (RFC 6026 §7.1). The To tag is not checked, so a stateful
 * proxy can forward the 2xx of other branches the same way.
 * csip_txn_layer_send_stateless() still works for this too.
 *
 * Responses go where RFC 3261 §18.2.2 and RFC 3581 say (the request's
 * connection, else received/rport, else sent-by: csip_txn_response_dest()).
 * A send that fails (the send callback's error) ends the transaction with
 * CSIP_TXN_END_TRANSPORT, except in Accepted, which RFC 6026 keeps; either
 * way the call returns 0 and stats.transport_errors counts it.
 *
 * @return 0; CSIP_ERR_INVALID_ARG (st or resp NULL, a client transaction, a
 *         request, a status outside 100..699, a response the state does not
 *         take: anything after the final except a 2xx on an Accepted INVITE
 *         transaction; a Via branch or CSeq that is not the request's; the
 *         layer being freed); CSIP_ERR_NOMEM (nothing sent, the state
 *         unchanged). resp is freed in every case.
 */
CSIP_EXTERN int csip_txn_respond(csip_txn *st, csip_msg *resp, uint64_t now_ms);

/**
 * Sends a final response to a non-INVITE request and ends the server
 * transaction at once, without the Completed state (Timer J): the element
 * answers as a stateless one would (RFC 3261 §8.2.7). For answers that cost
 * nothing to compute again and must not cost memory, such as a challenge
 * with a stateless nonce or a 503 under overload: a retransmission of the
 * request starts a new transaction and gets a new answer. resp is taken as
 * by csip_txn_respond(). A send that fails ends the transaction with
 * CSIP_TXN_END_TRANSPORT and the call returns 0, as csip_txn_respond() does.
 * @return 0; CSIP_ERR_INVALID_ARG (not a non-INVITE server transaction, not
 *         a final response, or what csip_txn_respond() refuses);
 *         CSIP_ERR_NOMEM (nothing sent, the state unchanged).
 */
CSIP_EXTERN int csip_txn_respond_stateless(csip_txn *st, csip_msg *resp, uint64_t now_ms);

/**
 * Prints a final response to a non-INVITE request now and keeps it in the
 * server transaction, to be sent by csip_txn_send_prepared(): for a TU that
 * knows its answer but may not give it yet (a registrar whose bindings are
 * not on disk yet). The transaction stays in Trying meanwhile (a
 * retransmission of the request is absorbed); the printed bytes are those
 * the Completed state keeps for retransmissions anyway, and resp's memory is
 * released at once instead of while the TU waits. With
 * drop_completed_requests the request is let go here, as on completion
 * (csip_txn_request() is NULL from now on). A response passed later by
 * csip_txn_respond() or csip_txn_respond_stateless() takes the prepared
 * one's place (it must carry the request's top Via and CSeq); a second
 * csip_txn_prepare() replaces it. resp is taken as by csip_txn_respond().
 * @return 0; CSIP_ERR_INVALID_ARG (not a non-INVITE server transaction in
 *         Trying, not a final response, or what csip_txn_respond() refuses);
 *         CSIP_ERR_NOMEM (nothing kept; a response prepared before stays).
 */
CSIP_EXTERN int csip_txn_prepare(csip_txn *st, csip_msg *resp);

/**
 * Sends the response csip_txn_prepare() kept, exactly as csip_txn_respond()
 * would have sent it then: the transaction is Completed (Timer J) and a
 * failed send ends it with CSIP_TXN_END_TRANSPORT (the call returns 0).
 * With code (200..699), sends in its place a response with that status and
 * reason (NULL: the registry's phrase) built from the prepared one's Via,
 * From, To (with its tag), Call-ID and CSeq and nothing else: for a TU whose
 * answer fell through while it waited (a failed write: 500), after the
 * request was let go.
 * @return 0; CSIP_ERR_INVALID_ARG (nothing prepared, the layer is being
 *         freed, code not 0 or 200..699); CSIP_ERR_NOMEM (nothing sent, the
 *         prepared response kept).
 */
CSIP_EXTERN int csip_txn_send_prepared(csip_txn *st, int code, const char *reason, uint64_t now_ms);

/**
 * The TU gives up on a client transaction (the user hung up, a CANCEL was
 * sent, a deadline of its own passed). What happens depends on where the
 * transaction is:
 *  - INVITE client, Calling or Proceeding: the RFC 3261 §9.1 guard is armed:
 *    if no final response has come 64*T1 from now, a 408 (resp NULL) goes up
 *    and the transaction ends with CSIP_TXN_END_TIMEOUT. Until then nothing
 *    changes: requests are retransmitted (Calling), Timer B still runs, and
 *    responses go up as usual (a 487 after a CANCEL, or a 2xx, which the TU
 *    must ACK and may end with a BYE). This is the guard that starting a
 *    CANCEL arms on its own; the earliest guard holds. To send a CANCEL in
 *    Calling the TU waits for a provisional response (§9.1).
 *  - non-INVITE client, Trying or Proceeding: a 408 (resp NULL) goes up
 *    inside this call, the transaction is Terminated (later responses are
 *    absorbed), and on_terminated (CSIP_TXN_END_TIMEOUT) follows from the
 *    next expiry run.
 *  - the final response went up already (Completed, Accepted) or the
 *    transaction is Terminated: nothing changes (Timers D, K and M end it;
 *    while Accepted, further 2xx still go up: they make dialogs the TU must
 *    ACK and end).
 * So on_response never delivers a second final response, whatever the
 * order of events, and on_terminated still comes exactly once.
 * @return 0; CSIP_ERR_INVALID_ARG (ct NULL, a server transaction, the layer
 *         being freed).
 */
CSIP_EXTERN int csip_txn_client_abandon(csip_txn *ct, uint64_t now_ms);

/**
 * Sends a message outside any transaction: an ACK for a 2xx, a 2xx
 * retransmission by a UAS core, a response forwarded by a stateless proxy.
 * msg is borrowed. dst NULL for a response means "where §18.2.2 says",
 * computed by csip_txn_response_dest() with no request source.
 * @return 0; CSIP_ERR_INVALID_ARG (layer or msg NULL, a request without dst,
 *         a response whose top Via gives no destination);
 *         CSIP_ERR_NOMEM; the send callback's error (e.g. CSIP_ERR_TRANSPORT).
 */
CSIP_EXTERN int csip_txn_layer_send_stateless(csip_txn_layer *layer, const csip_msg *msg,
                                              const csip_addr *dst, uint64_t now_ms);

/**
 * Where a response goes (RFC 3261 §18.2.2, RFC 3581), from the top Via of msg
 * (the response, or the request it answers: their top Via is the same) and,
 * when known, the address the request came from:
 *  - request_src on a reliable transport: *request_src with its connection
 *    (conn), the port being the sent-by port (or 5060, 5061 for TLS), where
 *    to open a new connection if that one has closed;
 *  - maddr holding an IP literal: that address, sent-by port;
 *  - rport: the received address (else request_src's) and the rport value
 *    (else request_src's port);
 *  - received: that address, sent-by port;
 *  - otherwise the sent-by host when it is an IP literal, else request_src's
 *    address, with the sent-by port.
 * With request_src NULL (a stateless proxy forwarding a response) the
 * transport comes from the Via, conn is 0, rport counts only with a value,
 * and an address must come from maddr, received or the sent-by host as an
 * IP literal: the core does no DNS.
 * csip_txn_respond() and csip_txn_layer_send_stateless() route with it.
 * @return 0; CSIP_ERR_INVALID_ARG (msg or out NULL, no usable top Via, an
 *         unknown Via transport or no destination without request_src).
 */
CSIP_EXTERN int csip_txn_response_dest(const csip_msg *msg, const csip_addr *request_src,
                                       csip_addr *out);

/**
 * The INVITE server transaction that a received CANCEL targets (RFC 3261
 * §9.2: same branch and sent-by, method INVITE), or NULL.
 */
CSIP_EXTERN csip_txn *csip_txn_layer_find_invite(csip_txn_layer *layer, const csip_msg *cancel);

CSIP_EXTERN csip_txn_kind csip_txn_kind_of(const csip_txn *t);
CSIP_EXTERN csip_txn_state csip_txn_state_of(const csip_txn *t);
/**
 * The state a Terminated transaction was in when it ended (during
 * on_terminated, or between the call that ended it and the expiry run); the
 * current state of a live one.
 */
CSIP_EXTERN csip_txn_state csip_txn_end_state(const csip_txn *t);
/** The request of the transaction (borrowed, lives as long as the transaction;
 *  NULL for a completed non-INVITE server transaction of a layer created with
 *  drop_completed_requests). */
CSIP_EXTERN const csip_msg *csip_txn_request(const csip_txn *t);
/** The address the request came from (server) or goes to (client). */
CSIP_EXTERN const csip_addr *csip_txn_peer(const csip_txn *t);
CSIP_EXTERN void *csip_txn_user_data(const csip_txn *t);
CSIP_EXTERN void csip_txn_set_user_data(csip_txn *t, void *user_data);
CSIP_EXTERN csip_txn_layer *csip_txn_layer_of(const csip_txn *t);

#ifdef __cplusplus
}
#endif
#endif
