/*
 * Internal structures of the dialog layer (see docs/internals/dialog.md).
 *
 * A dialog is one struct plus up to four owned blocks:
 *   fixed    Call-ID, local tag, remote tag, local URI, remote URI: written
 *            once at creation, never changed;
 *   target   the remote target URI (replaced by target refreshes);
 *   ltarget  our Contact value (replaced by csip_dialog_set_local_target());
 *   routes   the route set: an array of csip_str followed by their bytes
 *            (replaced when a 2xx confirms an early UAC dialog).
 * A replacement is allocated before the old block is freed, so an
 * allocation failure leaves the dialog as it was. Copied values have their
 * CR and LF octets (header folding) dropped, so that they can be written back
 * on one header line.
 *
 * The table is a chained hash table keyed by a SipHash of Call-ID and local
 * tag under a random key: the forks of one request (same Call-ID and local
 * tag, different remote tags) share a chain, which csip_dialog_table_next_fork()
 * walks and max_forks bounds. A doubly linked list keeps creation order for
 * csip_dialog_table_next().
 */
#ifndef CSIP_DIALOG_INT_H
#define CSIP_DIALOG_INT_H

#include "base/base_int.h"
#include "csip/dialog.h"

struct csip_dialog {
    csip_dialog_table *table;
    csip_dialog *hnext;       /* hash chain */
    csip_dialog *prev, *next; /* creation order */
    uint64_t hash;
    uint64_t seq; /* creation number within the table */
    void *user_data;
    char *fixed;
    char *target;
    char *ltarget;
    csip_str *routes; /* one block: nroutes views, then the bytes they point to */
    csip_str call_id, local_tag, remote_tag, local_uri, remote_uri;
    csip_str remote_target, local_target;
    size_t fixed_len, routes_len; /* octets counted against max_bytes */
    uint32_t nroutes;
    uint32_t local_cseq;   /* 0 = empty */
    uint32_t remote_cseq;  /* valid when has_remote_cseq */
    uint32_t create_cseq;  /* CSeq number of the request that created the dialog */
    uint32_t inv_in;       /* CSeq of the INVITE received and not yet answered finally */
    uint32_t inv_out;      /* CSeq of our INVITE without a final response yet */
    uint8_t create_method; /* csip_method of that request */
    uint8_t state;         /* csip_dialog_state */
    bool has_remote_cseq;
    bool uac;
    bool secure;
    bool has_inv_in;
    bool has_inv_out;
};

struct csip_dialog_table {
    const csip_mem *mem;
    uint32_t max_dialogs, max_forks, max_routes, max_bytes;
    uint64_t key[2];
    csip_dialog **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    uint64_t next_seq;
    csip_dialog *head, *tail;
};

/* The hash of a (Call-ID, local tag) pair under the table's key. */
uint64_t csip__dialog_hash(const csip_dialog_table *tab, csip_str call_id, csip_str local_tag);

/* Byte-for-byte equality where an absent view equals an empty one. */
static inline bool csip__dialog_str_eq(csip_str a, csip_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Dialogs sharing this Call-ID and local tag (the hash must be theirs). */
size_t csip__dialog_table_forks(const csip_dialog_table *tab, uint64_t hash, csip_str call_id,
                                csip_str local_tag);

/* Links a dialog (its hash and id set) into the table: hash chain and list.
 * May grow the table; a failed growth keeps the old one. Never fails. */
void csip__dialog_table_insert(csip_dialog_table *tab, csip_dialog *d);

/* Frees the blocks of a dialog and the dialog itself (not linked, or unlinked). */
void csip__dialog_destroy(csip_dialog *d);

#endif
