/*
 * Internal structures of the transaction layer (see docs/internals/txn.md).
 *
 * A transaction is one heap allocation. Its request is kept as the parsed
 * csip_msg (received requests) or the csip_msg the TU transferred (client
 * requests); the matching keys (top Via branch and sent-by, method) are views
 * into that message, which is never edited, so nothing else is copied. The
 * bytes to retransmit (the client's request, the server's last response, the
 * ACK of a non-2xx) are printed once and kept while a timer or a
 * retransmission may still need them.
 *
 * Every transaction sits in one hash table (chained, keyed by a keyed hash of
 * the lower-cased branch, or of Call-ID and CSeq number for RFC 2543
 * transactions) and, while it has a timer armed, either in one binary
 * min-heap keyed by its earliest deadline or in the lane: a list in deadline
 * order that a transaction joins at the tail when its deadline is not
 * earlier than the tail's. Timers of one length armed one after another
 * (Timer J of every non-INVITE server transaction, 32 s over UDP, the most
 * numerous) arrive in deadline order, so they join and leave the lane in
 * constant time, touching only their neighbours, where the heap would sift
 * through cold transactions at each.
 *
 * A transaction has three timer slots; which RFC timer a slot stands for
 * depends on the kind and state:
 *
 *   slot       INVITE client  non-INVITE client  INVITE server   non-INVITE server
 *   RETRANS    A              E                  G               -
 *   END        B, D, M        F, K               H, I, L         J
 *   AUX        CANCEL guard   -                  100 Trying      -
 *
 * In the Terminated state the END slot is armed at "now": on_terminated runs
 * and the transaction is freed from csip_txn_layer_handle_expiry() (or
 * csip_txn_layer_free()), never from inside a call the TU made, so a
 * transaction pointer the TU holds stays valid until the next expiry run.
 */
#ifndef CSIP_TXN_INT_H
#define CSIP_TXN_INT_H

#include "base/base_int.h"
#include "csip/txn.h"

/* Timer slots. */
enum { TM_RETRANS = 0, TM_END, TM_AUX, TM__COUNT };

#define TXN_NEVER UINT64_MAX
#define TXN_NO_HEAP UINT32_MAX
#define TXN_IN_LANE (UINT32_MAX - 1) /* heap_idx of a transaction in the lane */

/* csip_txn.flags */
#define TXF_RELIABLE 0x01u    /* the request travels over a reliable transport */
#define TXF_2543 0x02u        /* RFC 2543 matching (branch without the magic cookie) */
#define TXF_PROVISIONAL 0x04u /* INVITE server: a provisional response has been sent */
#define TXF_TO_TAG 0x08u      /* RFC 2543 INVITE server: to_tag holds the final's To tag */
#define TXF_OUT_RAW 0x10u     /* client: out is the request's own bytes (not allocated) */
#define TXF_COMPACT 0x20u     /* non-INVITE server: req freed, ack holds a txn_compact */
#define TXF_PREPARED 0x40u    /* non-INVITE server, Trying: out is a final not sent yet */

/* What a completed non-INVITE server transaction keeps of its request. */
typedef struct txn_compact {
    csip_via via;    /* branch, host, transport: views into data; port, rport flags */
    csip_str method; /* view into data */
    uint32_t cseq;   /* the CSeq number (a response the TU passes must carry it) */
    char data[];
} txn_compact;

/*
 * Laid out to keep the struct small (160 bytes on LP64): pointers and 64-bit
 * times first, the address, then 32-bit and 8-bit fields. The method is not
 * kept (csip_msg_method_name() of req gives it); byte counts are 32-bit
 * (csip_msg_print() returns an int).
 */
struct csip_txn {
    csip_txn_layer *layer;
    uint64_t hash; /* of the matching key: branch, or Call-ID and CSeq (RFC 2543) */
    uint64_t tm[TM__COUNT];
    uint64_t due;                    /* earliest armed slot: the heap's (or the lane's) key */
    csip_txn *lane_prev, *lane_next; /* in the lane (heap_idx TXN_IN_LANE) */
    csip_msg *req;
    const csip_via *via; /* top Via of req (in req's arena) */
    /* What may still have to be sent again, printed: client, the request
     * (unreliable transports, until no timer can resend it), which is the
     * request's own bytes (csip_msg_raw) when they print the same, as they
     * do for a message nobody edited (TXF_OUT_RAW); server, the last
     * response (dropped after a 2xx and once Confirmed). NULL when nothing
     * is kept. */
    const char *out;
    union {
        char *ack;    /* INVITE client: the ACK of the non-2xx final response */
        char *to_tag; /* INVITE server: see TXF_TO_TAG */
    };
    void *user_data;
    csip_addr peer;    /* server: where the request came from; client: where it goes */
    uint32_t heap_idx; /* TXN_NO_HEAP when no timer is armed, TXN_IN_LANE */
    uint32_t interval; /* current retransmission interval (A, E, G) */
    uint32_t out_len;
    union {
        uint32_t ack_len;
        uint32_t to_tag_len;
    };
    uint8_t kind;      /* csip_txn_kind */
    uint8_t state;     /* csip_txn_state */
    uint8_t end;       /* csip_txn_end, meaningful once Terminated */
    uint8_t end_state; /* the state it was in when it entered Terminated */
    uint8_t flags;     /* TXF_* */
};

typedef struct txn_slot {
    uint64_t hash;
    csip_txn *t; /* NULL: empty */
} txn_slot;

struct csip_txn_layer {
    const csip_mem *mem;
    csip_txn_callbacks cb;
    void *user_data;
    uint32_t t1, t2, t4, trying;
    uint32_t max_txns;
    bool drop_completed;
    csip_parse_opts popts;

    txn_slot *slots; /* open addressing, linear probing; a power-of-two count */
    size_t nslots;
    size_t scan_pos;  /* where csip__txn_table_any() found one last */
    size_t count;     /* live transactions */
    uint64_t hkey[2]; /* hash key, from RAND_bytes */

    csip_txn **heap;
    size_t heap_len, heap_cap;
    csip_txn *lane_head, *lane_tail; /* deadlines in order, earliest first */

    csip_txn_stats stats;
    unsigned busy; /* callbacks running (re-entrant expiry runs are skipped) */
    bool freeing;
};

/* ---- txn_table.c ------------------------------------------------------- */

/* SipHash-1-3 of n bytes under key k; lower-cases ASCII letters first when `fold`. */
uint64_t csip__txn_hash(const uint64_t k[2], const char *p, size_t n, bool fold);

/* Allocates the initial table and heap. @return 0 or CSIP_ERR_NOMEM. */
int csip__txn_table_init(csip_txn_layer *l);
/* Frees the table and heap arrays (not the transactions). */
void csip__txn_table_free(csip_txn_layer *l);
/* Makes room for one more transaction in the heap (called before it exists).
 * @return 0 or CSIP_ERR_NOMEM. */
int csip__txn_reserve(csip_txn_layer *l);
/* Adds t (t->hash set); grows the table when half full (a failed growth
 * keeps the old table: csip__txn_reserve() left room). */
void csip__txn_table_insert(csip_txn_layer *l, csip_txn *t);
/* Takes t out of the table. */
void csip__txn_table_remove(csip_txn_layer *l, csip_txn *t);
/*
 * The transactions whose hash is h, one per call, from the probe position
 * *pos (start: csip__txn_probe(l, h)); NULL after the last. Slots keep the
 * hash beside the pointer: a lookup touches no transaction of another hash,
 * and a new branch costs one read of the slot array.
 */
static inline size_t csip__txn_probe(const csip_txn_layer *l, uint64_t h)
{
    return (size_t)h & (l->nslots - 1);
}
static inline csip_txn *csip__txn_next(const csip_txn_layer *l, uint64_t h, size_t *pos)
{
    for (;;) {
        const txn_slot *s = &l->slots[*pos];
        if (!s->t)
            return NULL; /* the table always has an empty slot */
        *pos = (*pos + 1) & (l->nslots - 1);
        if (s->hash == h)
            return s->t;
    }
}
/* Any live transaction, or NULL (used when freeing the layer). */
csip_txn *csip__txn_table_any(csip_txn_layer *l);

/* Re-places t in the heap or the lane after its tm[] changed (adds, moves
 * or removes it). Never allocates: csip__txn_reserve() made room when t was
 * created. */
void csip__txn_heap_update(csip_txn_layer *l, csip_txn *t);
/* The transaction with the earliest deadline (heap top or lane head), or NULL. */
static inline csip_txn *csip__txn_earliest(const csip_txn_layer *l)
{
    csip_txn *h = l->heap_len ? l->heap[0] : NULL, *q = l->lane_head;
    if (!h || (q && q->due <= h->due))
        return q;
    return h;
}

#endif
