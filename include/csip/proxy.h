/*
 * csip — the proxy core (RFC 3261 §16): request validation, Max-Forwards,
 * loop detection, Route and Record-Route (loose routing, strict-router
 * compatibility), stateful forwarding with parallel and serial forking, the
 * best-response choice, CANCEL, Timer C; stateless forwarding of ACK for 2xx
 * and of stray responses.
 *
 * Sans-I/O. A csip_proxy works on a csip_txn_layer: the host passes the
 * layer's callbacks on (csip_proxy_on_request() and friends) and asks the
 * host back, through csip_proxy_callbacks, what only it knows: which names
 * are its own, where a user is registered, whether a request may leave for
 * another domain, and where a next hop is (RFC 3263, possibly
 * asynchronously). Timer C is the proxy's own timer: call
 * csip_proxy_handle_expiry() at csip_proxy_next_expiry().
 *
 * Threading: confined to the thread of its layer.
 */
#ifndef CSIP_PROXY_H
#define CSIP_PROXY_H
#include "csip/addr.h"
#include "csip/base.h"
#include "csip/msg.h"
#include "csip/txn.h"
#ifdef __cplusplus
extern "C" {
#endif

/** A place to forward a request to (a binding from the location service). @since 0.1 */
typedef struct csip_proxy_target {
    csip_str uri;  /**< the new Request-URI (a Contact) */
    csip_str path; /**< Path of the binding (RFC 3327), comma-separated, pushed as Route; absent if
                      none */
    uint16_t q;    /**< thousandths; targets of equal q are tried in parallel, higher q first */
} csip_proxy_target;

/** Most targets of one request. */
#define CSIP_PROXY_MAX_TARGETS 16

/** The host's side. Every function gets the user_data given to csip_proxy_new(). @since 0.1 */
typedef struct csip_proxy_callbacks {
    /**
     * Is host[:port] this proxy: one of its addresses or names (Route
     * processing, loop detection)? port is 0 when the URI has none.
     */
    bool (*is_me)(void *user_data, csip_str host, uint16_t port);
    /**
     * Is host a domain whose users this proxy locates (the location
     * service)? A Request-URI with a user in such a domain goes to locate(),
     * unless it has a port that is_me() does not claim: then it names
     * another server on our host (a Contact) and is forwarded as it is.
     */
    bool (*is_my_domain)(void *user_data, csip_str host);
    /**
     * The targets of a Request-URI in one of our domains. Write up to cap
     * targets (views must stay valid until the call returns: the proxy copies
     * them). @return 0 with *n set (0: the user has no binding, 480);
     * CSIP_ERR_NOT_FOUND: no such user (404); another error: 500. Also asked
     * for an ACK without Route to one of our users (its first target is used).
     */
    int (*locate)(void *user_data, const csip_msg *req, const csip_uri *ruri,
                  csip_proxy_target *out, size_t cap, size_t *n);
    /**
     * May req (from src) be forwarded? Asked for every request except ACK
     * and CANCEL, unless it is in a dialog (To tag) and follows a Route of
     * ours (a dialog we record-routed). An out-of-dialog request is asked
     * even when it carries a Route naming us (an outbound proxy's preloaded
     * route), so that a Route cannot turn the proxy into a relay. foreign is
     * true when the request leaves for a domain that is not ours. Return 0 to
     * go on, or the status to refuse it with (300..699: 403, or 407 after
     * which decorate adds the challenge; anything else gives 500). A host
     * typically asks a user of its own domains (in From) to authenticate, and
     * lets only such users reach other domains. NULL: foreign requests get
     * 403 (never an open relay), others go.
     */
    int (*authorize)(void *user_data, const csip_msg *req, const csip_addr *src, bool foreign);
    /**
     * Optional: called with each response the proxy itself builds (not the
     * forwarded ones) before it is sent, to add headers (Proxy-Authenticate
     * to a 407, Allow …). Return nothing; failures to add are the host's.
     */
    void (*decorate)(void *user_data, const csip_msg *req, csip_msg *resp);
    /**
     * Where to send a request whose next hop is uri (RFC 3263). Called only
     * for host names: IP literals are handled by the proxy. uri is borrowed
     * for the call. Return 0 with *out filled; CSIP_ERR_PAUSE when the answer
     * will come later through csip_proxy_resolved() with this token (never
     * from inside this call); any other error: the target is unreachable
     * (the branch counts as a 503, which becomes 500 when it is the best
     * response, §16.9). token 0 is for an ACK forwarded statelessly: only an
     * answer given at once is used (the caller's next ACK may find it in the
     * host's cache). NULL: host names are unreachable.
     */
    int (*resolve)(void *user_data, const csip_uri *uri, uint64_t token, csip_addr *out);
    /**
     * The sent-by of this proxy ("192.0.2.1:5060") for a message going to
     * dst over dst->transport: it goes into Via and Record-Route (and, for
     * the address the request came from, into the second Record-Route value
     * when the two differ). Return the length written (1..cap-1), or a
     * negative error (the branch fails with 500).
     */
    int (*local)(void *user_data, const csip_addr *dst, char *out, size_t cap);
    /**
     * Optional: a request ended with this final status (0: none sent) after
     * `branches` forwarded copies. For a request the proxy refused itself
     * (400, 403, 404, 420, 480, 482, 483 …) it comes at once with branches 0;
     * for a forwarded one, when its server transaction ends.
     */
    void (*on_done)(void *user_data, const csip_msg *req, const csip_addr *src, int status,
                    size_t branches);
} csip_proxy_callbacks;

/** Options; zero fields mean the defaults. @since 0.1 */
typedef struct csip_proxy_opts {
    uint32_t timer_c_ms;  /**< INVITE branch without a final response (default 200000: §16.8
                               wants more than 3 minutes) */
    bool no_record_route; /**< do not Record-Route (INVITE, SUBSCRIBE, REFER, NOTIFY) */
    const csip_mem *mem;  /**< the proxy's allocations and the messages it builds */
} csip_proxy_opts;

typedef struct csip_proxy csip_proxy;

/**
 * Creates a proxy on a layer. The host's txn callbacks must pass every
 * request it wants proxied to csip_proxy_on_request(), and every response,
 * stray response and termination to the proxy's functions below. The proxy
 * owns the user data of the transactions it handles: a client transaction
 * whose user data the host set itself must not reach it, and a host that
 * answers some INVITEs itself must answer their CANCELs too (the proxy takes
 * the user data of the INVITE server transaction a CANCEL matches for its
 * own).
 * @return 0, CSIP_ERR_INVALID_ARG (out NULL, no layer, no callbacks, no local
 *         or is_me callback), CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_proxy_new(csip_txn_layer *layer, const csip_proxy_opts *opts,
                               const csip_proxy_callbacks *cb, void *user_data, csip_proxy **out);
/** Frees the proxy. Free the layer first: its on_terminated calls, passed on
 *  to csip_proxy_on_terminated(), free the proxy's per-request state. NULL is a no-op. */
CSIP_EXTERN void csip_proxy_free(csip_proxy *p);

/**
 * A request to proxy: st its server transaction, NULL for an ACK that matched
 * none (the ACK of a 2xx, forwarded statelessly along its Route, or to the
 * first target of one of our users when it has no Route). Runs the §16.3
 * checks (answering 400, 420, 482, 483 …), Route processing (§16.4),
 * authorize, target determination (location service for our users, else
 * the Request-URI), 100 Trying for INVITE, and forwards (§16.6) to the
 * targets of the highest q in parallel, then to the next q group when every
 * branch failed without a 2xx or 6xx. Responses: provisional ones go up at
 * once (other than 100; none for a non-INVITE, RFC 4320), every 2xx at once,
 * the best final response when every branch has answered (§16.7). A CANCEL
 * is answered (200, or 481 when no INVITE matches) and cancels the INVITE's
 * pending branches, each once it has had a provisional response (§9.1).
 */
CSIP_EXTERN void csip_proxy_on_request(csip_proxy *p, csip_txn *st, const csip_msg *req,
                                       const csip_addr *src, uint64_t now_ms);
/** A response for one of the proxy's client transactions (the layer's on_response). */
CSIP_EXTERN void csip_proxy_on_response(csip_proxy *p, csip_txn *ct, const csip_msg *resp,
                                        int status, uint64_t now_ms);
/** A response that matched no transaction: forwarded statelessly when its top Via is ours. */
CSIP_EXTERN void csip_proxy_on_stray_response(csip_proxy *p, const csip_msg *resp,
                                              const csip_addr *src, uint64_t now_ms);
/** A transaction ended (the layer's on_terminated). */
CSIP_EXTERN void csip_proxy_on_terminated(csip_proxy *p, csip_txn *t, uint64_t now_ms);
/**
 * The answer to a resolve() that returned CSIP_ERR_PAUSE: n addresses to try
 * (the first is used; 0: unreachable). A token nobody waits for any more (the
 * request was cancelled or answered meanwhile) is ignored.
 */
CSIP_EXTERN void csip_proxy_resolved(csip_proxy *p, uint64_t token, const csip_addr *addrs,
                                     size_t n, uint64_t now_ms);
/** When csip_proxy_handle_expiry() must next run (Timer C); UINT64_MAX if never. */
CSIP_EXTERN uint64_t csip_proxy_next_expiry(const csip_proxy *p);
/**
 * Fires the Timer C deadlines due at now_ms (§16.8): a branch that had a
 * provisional response is cancelled; one without counts as a 408 at once
 * (its client transaction is abandoned, and cancelled should a provisional
 * still come).
 */
CSIP_EXTERN void csip_proxy_handle_expiry(csip_proxy *p, uint64_t now_ms);
/** Requests being proxied (response contexts alive). */
CSIP_EXTERN size_t csip_proxy_count(const csip_proxy *p);

/**
 * The loop-detection part of a branch this proxy would give req (RFC 3261
 * §16.6 step 8): 8 hex digits (and a NUL) over the Request-URI, From tag, To
 * tag, Call-ID, CSeq, Route, Proxy-Require and Proxy-Authorization as
 * received: the fields that affect how the request is processed. The top
 * Via, which the RFC's example hash includes, is left out: a request that
 * comes back has another one, so with it a loop would never be found.
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument); the error of a header
 *         that cannot be read (From, To, Call-ID, CSeq).
 */
CSIP_EXTERN int csip_proxy_loop_hash(const csip_msg *req, char out[9]);

#ifdef __cplusplus
}
#endif
#endif
