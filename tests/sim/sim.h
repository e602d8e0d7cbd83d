/*
 * A deterministic simulated network and virtual clock for the sans-I/O core.
 *
 * A sim holds N endpoints, each with its own csip_txn_layer, in one process.
 * Messages the layers send are carried over directed links with a base delay,
 * jitter, loss, duplication and reordering (datagram links), or in order and
 * without loss (reliable links, when the destination's transport is
 * reliable); partitions cut both directions between two endpoints for a time
 * window (datagrams are dropped, a reliable send fails with CSIP_ERR_TRANSPORT
 * as a broken connection would). Everything random comes from the sim's own
 * PRNG (xoshiro256** seeded through splitmix64), so a seed replays the same
 * run exactly.
 *
 * The clock is virtual: sim_run() jumps from one event to the next (a packet
 * arriving, an action the test scheduled with sim_at(), a layer timer), so a
 * 64-second transaction takes microseconds. Within one millisecond, messages
 * and actions run in the order they were scheduled, before the layers' timers.
 */
#ifndef CSIP_TEST_SIM_H
#define CSIP_TEST_SIM_H

#include "csip/txn.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sim sim;
typedef struct sim_ep sim_ep;

/** Properties of one direction between two endpoints. */
typedef struct sim_link {
    uint32_t delay_ms;   /**< base one-way delay */
    uint32_t jitter_ms;  /**< uniform extra delay in [0, jitter_ms] */
    double loss;         /**< datagram links: probability a message is lost */
    double dup;          /**< datagram links: probability a message arrives twice */
    double reorder;      /**< datagram links: probability a message is held back */
    uint32_t reorder_ms; /**< how long at most a held-back message waits */
} sim_link;

/** What became of a message (trace). */
typedef enum sim_fate {
    SIM_SENT = 0,    /**< accepted by the network (one or two deliveries follow) */
    SIM_LOST,        /**< dropped by the loss draw */
    SIM_PARTITIONED, /**< dropped (datagram) or refused (reliable) by a partition */
    SIM_NO_ROUTE,    /**< no endpoint at that address (a black hole for datagrams) */
    SIM_DELIVERED,   /**< handed to the destination layer (traced just before) */
} sim_fate;

/** One trace record. data/len are borrowed for the call. */
typedef struct sim_event {
    uint64_t t;
    uint64_t seq; /**< increases with every event of the run */
    sim_fate fate;
    const sim_ep *from;
    const sim_ep *to; /**< NULL for SIM_NO_ROUTE */
    const char *data;
    size_t len;
} sim_event;

typedef void (*sim_trace_fn)(sim *s, const sim_event *ev, void *ud);
typedef void (*sim_action_fn)(sim *s, void *arg);

/** A new network with its clock at 0. Aborts when out of memory (tests only). */
sim *sim_new(uint64_t seed);
/** Frees the network, its endpoints (csip_txn_layer_free: live transactions
 *  end with CSIP_TXN_END_DESTROYED) and every message still in flight. */
void sim_free(sim *s);

uint64_t sim_now(const sim *s);
/** The sim's PRNG: 64 random bits; a double in [0, 1); an integer in [lo, hi]. */
uint64_t sim_rand(sim *s);
double sim_uniform(sim *s);
uint32_t sim_range(sim *s, uint32_t lo, uint32_t hi);

/**
 * Adds an endpoint at ip:port over transport tp with a new transaction layer
 * (opts may be NULL). tu holds the TU callbacks (its send is ignored: the sim
 * sends); they receive tu_ud as their user_data.
 */
sim_ep *sim_endpoint(sim *s, const char *ip, uint16_t port, csip_transport tp,
                     const csip_txn_opts *opts, const csip_txn_callbacks *tu, void *tu_ud);
/** Gives ep another address (e.g. the same IP and port over another transport). */
void sim_endpoint_alias(sim_ep *ep, const char *ip, uint16_t port, csip_transport tp);
csip_txn_layer *sim_layer(const sim_ep *ep);
/** The endpoint's first address; its address over transport tp (the first when none). */
const csip_addr *sim_addr(const sim_ep *ep);
const csip_addr *sim_addr_tp(const sim_ep *ep, csip_transport tp);
/** The endpoint whose layer is l. */
sim_ep *sim_ep_of(const sim *s, const csip_txn_layer *l);

/** The link used between endpoints with no link of their own (default: 10 ms, perfect). */
void sim_set_default_link(sim *s, const sim_link *l);
/** The link from one endpoint to another (one direction). */
void sim_set_link(sim *s, const sim_ep *from, const sim_ep *to, const sim_link *l);
/** Cuts both directions between a and b for [from_ms, until_ms). */
void sim_partition(sim *s, const sim_ep *a, const sim_ep *b, uint64_t from_ms, uint64_t until_ms);

/** Runs fn(s, arg) at time t (>= now). */
void sim_at(sim *s, uint64_t t, sim_action_fn fn, void *arg);
/** Calls fn for every message sent and delivered. */
void sim_trace(sim *s, sim_trace_fn fn, void *ud);

/**
 * Runs events in time order until none is left or the next one is after
 * until_ms; the clock then moves on to until_ms (unless it is UINT64_MAX).
 * @return events processed.
 */
uint64_t sim_run(sim *s, uint64_t until_ms);
/** True when no message is in flight, no action is pending and no layer has a timer. */
bool sim_idle(const sim *s);

/**
 * Builds a request from endpoint `from` to address `to`: Request-URI
 * sip:user@to, a Via with from's address over to's transport, the branch and
 * ";rport", From sip:a@from with tag "ft", To sip:user@to (to_tag appended
 * when not NULL), the Call-ID and CSeq given, and `extra` header lines (each
 * ending in CRLF, or NULL). Aborts on failure (tests only).
 */
csip_msg *sim_request(const sim_ep *from, const csip_addr *to, const char *method, const char *user,
                      const char *branch, const char *call_id, uint32_t cseq, const char *to_tag,
                      const char *extra);
/** csip_response_for() that aborts on failure; to_tag may be NULL. */
csip_msg *sim_response(const csip_msg *req, int code, const char *to_tag);

#endif
