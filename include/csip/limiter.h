/*
 * csip — a failure limiter: slows down a client that keeps failing (wrong
 * passwords, forged nonces) by source address and by user name, in bounded
 * memory, so that a flood of bad credentials costs little and does not stop
 * the server from serving good ones.
 *
 * Each key (any bytes: an IP address, "user@realm") has a debt in time, the
 * generic cell rate algorithm: every failure adds interval_ms, time pays it
 * back, and a key whose debt exceeds burst * interval_ms must wait. So a key
 * may fail burst times at once and then once per interval_ms. The table has
 * a fixed number of slots (4-way sets); a full set forgets its least indebted
 * key. Keys are hashed with a random key drawn at creation, so an attacker
 * cannot aim collisions at a victim's slot.
 *
 * Sans-I/O: the time is an argument. Threading: confined to one thread.
 */
#ifndef CSIP_LIMITER_H
#define CSIP_LIMITER_H
#include "csip/base.h"
#ifdef __cplusplus
extern "C" {
#endif

/** Options; zero fields mean the defaults. @since 0.1 */
typedef struct csip_limiter_opts {
    uint32_t burst;       /**< failures allowed at once (default 10) */
    uint32_t interval_ms; /**< then one failure per interval (default 3000) */
    uint32_t slots;       /**< keys remembered, rounded up to a power of two (default 16384) */
} csip_limiter_opts;

/** A limiter (opaque). @since 0.1 */
typedef struct csip_limiter csip_limiter;

/**
 * @return 0, CSIP_ERR_INVALID_ARG (out NULL, slots above 2^24),
 *         CSIP_ERR_NOMEM (also when the random hash key cannot be drawn).
 */
CSIP_EXTERN int csip_limiter_new(const csip_limiter_opts *opts, const csip_mem *mem,
                                 csip_limiter **out);
/** Frees a limiter (NULL is a no-op). */
CSIP_EXTERN void csip_limiter_free(csip_limiter *l);
/**
 * How long the key must wait before it may try again, in whole seconds
 * rounded up: 0 when it may try now.
 */
CSIP_EXTERN uint32_t csip_limiter_wait(const csip_limiter *l, const void *key, size_t len,
                                       uint64_t now_ms);
/** Records a failure of the key. @return the wait after it, as csip_limiter_wait(). */
CSIP_EXTERN uint32_t csip_limiter_fail(csip_limiter *l, const void *key, size_t len,
                                       uint64_t now_ms);
/** Forgets a key's failures (after a success, say). */
CSIP_EXTERN void csip_limiter_forgive(csip_limiter *l, const void *key, size_t len);
/** Keys currently in debt (for statistics and tests). */
CSIP_EXTERN size_t csip_limiter_count(const csip_limiter *l, uint64_t now_ms);

#ifdef __cplusplus
}
#endif
#endif
