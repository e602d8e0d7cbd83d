/*
 * csip — the dialog layer (RFC 3261 §12, with §13.2.2.4 and §14 for INVITE and
 * re-INVITE, RFC 3311 UPDATE as a target refresh, RFC 6026 for 2xx from other
 * forks), sans-I/O.
 *
 * A dialog holds what RFC 3261 §12 says it holds: the dialog id (Call-ID,
 * local tag, remote tag), the local and remote sequence numbers, the local
 * and remote URIs (the From and To name-addrs), the remote target (the peer's
 * Contact), the route set and the secure flag, plus the state (early,
 * confirmed, terminated), our own Contact (the local target, sent in target
 * refresh requests and their responses) and what is needed for INVITE glare
 * (§14). Everything is copied out of the messages it was made from: a dialog
 * never points into a csip_msg.
 *
 * Dialogs live in a csip_dialog_table: a bounded hash table keyed by Call-ID
 * and local tag under a random key (a peer cannot choose values that fall
 * into one chain). The table owns its dialogs and frees them with it.
 *
 * The layer reads no clock and opens no socket: it is told what was received
 * (csip_dialog_recv_request(), csip_dialog_recv_response()) and builds the
 * messages to send (csip_dialog_request(), csip_dialog_ack(),
 * csip_dialog_response()), which the caller hands to the transaction layer.
 * Building a message is also the moment the dialog counts it as sent (the
 * local CSeq goes up, a 2xx confirms a UAS dialog), so a message built here
 * must be sent or the dialog dropped.
 *
 * Threading: a table and its dialogs are confined to one thread at a time.
 */
#ifndef CSIP_DIALOG_H
#define CSIP_DIALOG_H

#include "csip/base.h"
#include "csip/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most dialogs in a table (csip_dialog_opts.max_dialogs). */
#define CSIP_DIALOG_DEFAULT_MAX_DIALOGS 65536u
/** Most dialogs sharing one Call-ID and local tag: early dialogs of one forked request. */
#define CSIP_DIALOG_DEFAULT_MAX_FORKS 16u
/** Most entries in a route set (Record-Route values). */
#define CSIP_DIALOG_DEFAULT_MAX_ROUTES 32u
/** Most octets a dialog keeps (Call-ID, tags, URIs, targets and route set together). */
#define CSIP_DIALOG_DEFAULT_MAX_BYTES 16384u

/**
 * Table options. A zero field means the default above.
 * @since 0.1
 */
typedef struct csip_dialog_opts {
    const csip_mem *mem; /**< for the table, its dialogs and the messages they build (NULL: libc) */
    uint32_t max_dialogs;
    uint32_t max_forks;
    uint32_t max_routes;
    uint32_t max_bytes;
} csip_dialog_opts;

/** A table of dialogs (opaque). */
typedef struct csip_dialog_table csip_dialog_table;
/** A dialog (opaque); it belongs to the table it was created in. */
typedef struct csip_dialog csip_dialog;

/** Dialog states (RFC 3261 §12). */
typedef enum csip_dialog_state {
    CSIP_DIALOG_EARLY = 0, /**< created by a 101-199 response */
    CSIP_DIALOG_CONFIRMED, /**< created by, or updated with, a 2xx */
    CSIP_DIALOG_TERMINATED,
} csip_dialog_state;

/**
 * A dialog id. Views: borrowed from the message (csip_dialog_id_of()) or the
 * dialog (csip_dialog_get_id()) they come from. An absent tag (RFC 2543 peer)
 * has p == NULL and compares equal to an empty one. Call-IDs and tags compare
 * byte for byte (RFC 3261 §20.8; tags are opaque tokens).
 * @since 0.1
 */
typedef struct csip_dialog_id {
    csip_str call_id;
    csip_str local_tag;
    csip_str remote_tag;
} csip_dialog_id;

/* ------------------------------------------------------------------------- */
/* Identifiers                                                                */

/**
 * Writes a new tag for a From or To header: 16 characters of base64url (96
 * bits from OpenSSL's RAND_bytes; RFC 3261 §19.3 asks for at least 32),
 * NUL-terminated. cap must be at least 17.
 * @return the length (16); CSIP_ERR_BUFFER_TOO_SMALL; CSIP_ERR_FATAL (RAND_bytes
 *         failed: out is left untouched).
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_new_tag(char *out, size_t cap);

/**
 * Writes a new Call-ID (RFC 3261 §8.1.1.4): 22 characters of base64url (128
 * random bits), then "@host" when host is given, NUL-terminated.
 * @param host absent (p NULL or len 0) for none; otherwise RFC 3261 word
 *        characters only (a host name or address).
 * @return the length; CSIP_ERR_INVALID_ARG (a host character outside word);
 *         CSIP_ERR_BUFFER_TOO_SMALL (cap below 23 + 1 + host.len, or out NULL);
 *         CSIP_ERR_FATAL (RAND_bytes failed).
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_new_call_id(csip_str host, char *out, size_t cap);

/**
 * The dialog id a received message belongs to (RFC 3261 §12): Call-ID, and
 * for a request local = To tag, remote = From tag; for a response local =
 * From tag, remote = To tag. Views into msg (borrowed).
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument); the error of the Call-ID,
 *         From or To accessor (CSIP_ERR_NOT_FOUND when one is absent, a parse error).
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_id_of(const csip_msg *msg, csip_dialog_id *id);

/* ------------------------------------------------------------------------- */
/* The table                                                                    */

/**
 * Creates an empty table. opts is copied (NULL: every default). The hash key is
 * drawn from OpenSSL's RAND_bytes.
 * @return 0; CSIP_ERR_INVALID_ARG (out NULL); CSIP_ERR_NOMEM (also when
 *         RAND_bytes fails). *out is NULL on error.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_table_new(const csip_dialog_opts *opts, csip_dialog_table **out);

/** Frees the table and every dialog in it (NULL is a no-op). */
CSIP_EXTERN void csip_dialog_table_free(csip_dialog_table *tab);

/** Number of dialogs in the table, terminated ones included until freed. */
CSIP_EXTERN size_t csip_dialog_table_count(const csip_dialog_table *tab);

/**
 * The dialog with this id, or NULL. Borrowed: valid until csip_dialog_free()
 * or csip_dialog_table_free().
 * @since 0.1
 */
CSIP_EXTERN csip_dialog *csip_dialog_table_find(const csip_dialog_table *tab,
                                                const csip_dialog_id *id);

/**
 * The dialog a received message belongs to (csip_dialog_id_of(), then
 * csip_dialog_table_find()). A request without a To tag is outside any dialog;
 * a response without a To tag matches a dialog only if one was created with
 * an empty remote tag (RFC 2543 peer). Terminated dialogs match too (the
 * caller answers 481 for them, or uses csip_dialog_recv_request(), which does).
 * @return 0 with *out set; CSIP_ERR_NOT_FOUND (no such dialog, or a request
 *         without a To tag); CSIP_ERR_INVALID_ARG (NULL argument); a parse
 *         error of Call-ID, From or To. *out is NULL unless 0 is returned.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_table_match(const csip_dialog_table *tab, const csip_msg *msg,
                                        csip_dialog **out);

/**
 * Walks the table in creation order: the dialog after prev, the first when
 * prev is NULL, NULL at the end. Freeing the dialog just returned is allowed
 * when its successor was taken first.
 * @since 0.1
 */
CSIP_EXTERN csip_dialog *csip_dialog_table_next(const csip_dialog_table *tab,
                                                const csip_dialog *prev);

/**
 * Walks the dialogs sharing a Call-ID and local tag (the forks of one request:
 * every early or confirmed dialog its responses created), in creation order:
 * the next one after prev (NULL: the first), NULL at the end. The UAC uses it
 * to end the other early dialogs when the INVITE gets its final response.
 * @since 0.1
 */
CSIP_EXTERN csip_dialog *csip_dialog_table_next_fork(const csip_dialog_table *tab, csip_str call_id,
                                                     csip_str local_tag, const csip_dialog *prev);

/* ------------------------------------------------------------------------- */
/* Creation                                                                   */

/** Flags of csip_dialog_uac_new() and csip_dialog_uas_new(). */
#define CSIP_DIALOG_TLS 1u /**< the request was sent (UAC) or received (UAS) over TLS */

/**
 * UAC side (RFC 3261 §12.1.2): a dialog from our request (as sent, e.g.
 * csip_txn_request() of the client transaction) and a response to it that
 * creates one: a 101-199 with a To tag (early) or a 2xx (confirmed; a 2xx
 * without a To tag gives an empty remote tag, RFC 2543). The request must be
 * an INVITE, SUBSCRIBE or REFER with a From tag; the response must carry its
 * Call-ID, From tag and CSeq.
 *
 * Route set: the response's Record-Route values in reverse order. Remote
 * target: the URI of the response's first Contact (the request's
 * Request-URI when the response has none, as provisional responses often do). Local CSeq: the
 * request's. Local URI: the request's From; remote URI: the response's To.
 * Local target: the request's first Contact value (absent when none).
 * Secure: CSIP_DIALOG_TLS given and a sips Request-URI.
 *
 * A response whose To tag matches a dialog already in the table does not
 * create another: match first (csip_dialog_table_match()) and update that one
 * with csip_dialog_recv_response().
 *
 * @param out set to the new dialog (owned by the table; borrowed by the caller
 *        until csip_dialog_free() or csip_dialog_table_free()).
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, a request or response that
 *         does not create a dialog, one that does not answer the other, a
 *         Contact '*', a dialog with this id already in the table);
 *         CSIP_ERR_LIMIT_DIALOGS (the table is full, or max_forks dialogs share
 *         this Call-ID and local tag); CSIP_ERR_LIMIT_VALUES (more Record-Route
 *         values than max_routes); CSIP_ERR_LIMIT_DIALOG_SIZE (more than
 *         max_bytes to keep); a parse error of a header read (Call-ID, From,
 *         To, CSeq, Contact, Record-Route, the Request-URI); CSIP_ERR_NOMEM.
 *         *out is NULL on error and the table is unchanged.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_uac_new(csip_dialog_table *tab, const csip_msg *req,
                                    const csip_msg *resp, unsigned flags, csip_dialog **out);

/**
 * UAS side (RFC 3261 §12.1.1): a dialog from a received request that creates
 * one (INVITE, SUBSCRIBE or REFER without a To tag) and the response we send
 * to it with our To tag: a 101-199 (early) or a 2xx (confirmed), typically
 * built with csip_dialog_uas_response().
 *
 * Route set: the request's Record-Route values in order. Remote target: the
 * URI of the request's first Contact (mandatory). Remote CSeq: the request's;
 * local CSeq empty (the first request we send in the dialog has CSeq 1).
 * Local URI: the response's To (with our tag); remote URI: the request's From
 * (remote tag: its tag, empty for an RFC 2543 peer). Local target: the
 * response's first Contact value (absent when none). Secure:
 * CSIP_DIALOG_TLS given and a sips Request-URI. An INVITE answered with a
 * provisional response stays in progress (§14.2: a second INVITE gets 500)
 * until csip_dialog_response() or csip_dialog_sent_response() sees its final.
 *
 * @return as csip_dialog_uac_new(); CSIP_ERR_PARSE_MISSING_HEADER when the
 *         request has no Contact (answer it 400 instead).
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_uas_new(csip_dialog_table *tab, const csip_msg *req,
                                    const csip_msg *resp, unsigned flags, csip_dialog **out);

/** Removes the dialog from its table and frees it (NULL is a no-op). */
CSIP_EXTERN void csip_dialog_free(csip_dialog *dlg);

/* ------------------------------------------------------------------------- */
/* Received messages                                                          */

/**
 * A request received in the dialog (it matched: csip_dialog_table_match()),
 * RFC 3261 §12.2.2 and §14.2. *status is set to the response the caller must
 * send instead of processing the request, or 0 when it may go on:
 *  - 481 when the dialog is terminated;
 *  - 500 when the remote CSeq is not empty and the request's is lower (out of
 *    order);
 *  - for an INVITE: 500 while an INVITE received earlier has had no final
 *    response (add a Retry-After of 0 to 10 s, §14.2), 491 while our own
 *    INVITE has had none (glare);
 *  - 400 for a target refresh whose Contact is '*' or unreadable.
 * When it goes on, the remote CSeq takes the request's number; a target
 * refresh request (INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER) with a Contact
 * replaces the remote target (at once: RFC 6141 §4 keeps it even if the
 * request then fails); an INVITE is in progress until its final response.
 * ACK and CANCEL are never checked nor counted (they carry the CSeq of their
 * INVITE). A BYE does not end the dialog by itself: csip_dialog_terminate()
 * once it is answered 200.
 * @return 0 (with *status); CSIP_ERR_INVALID_ARG (NULL argument, a response);
 *         the error of the CSeq accessor; CSIP_ERR_LIMIT_DIALOG_SIZE and
 *         CSIP_ERR_NOMEM (the new target could not be kept: *status is 500,
 *         the dialog is unchanged).
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_recv_request(csip_dialog *dlg, const csip_msg *req, int *status);

/**
 * A response to a request we sent in the dialog, or that created it (the UAC
 * side). req is that request (e.g. csip_txn_request() of the client
 * transaction), which says which request the response answers; resp is the
 * response, or NULL for one the transaction layer synthesized (timeout or
 * transport error), whose code is status (ignored when resp is given).
 *  - early dialog, the response to the INVITE that created it: a 101-199
 *    replaces the remote target with its Contact; a 2xx confirms the dialog,
 *    recomputes the route set from its Record-Route (reversed) and replaces
 *    the remote target (§13.2.2.4); a 300-699 terminates it (§12.3);
 *  - a 2xx, or a reliable 1xx (with RSeq), to a target refresh request
 *    (INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER) replaces the remote target
 *    with its Contact (the route set never changes once confirmed, §12.2);
 *  - a 481 or a 408 (received or synthesized) to any request in the dialog
 *    terminates it (§12.2.1.2);
 *  - a final response ends our INVITE in progress (§14.1).
 * A terminated dialog takes nothing. A response whose Contact is '*' or
 * unreadable leaves the target as it was.
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, req not a request, resp not
 *         a response or not answering req, status outside 100..699 for a
 *         synthesized one); the error of the CSeq or Record-Route accessor;
 *         CSIP_ERR_LIMIT_VALUES; CSIP_ERR_LIMIT_DIALOG_SIZE; CSIP_ERR_NOMEM.
 *         On error the dialog is unchanged.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_recv_response(csip_dialog *dlg, const csip_msg *req,
                                          const csip_msg *resp, int status);

/**
 * A response we sent in the dialog that was not built by
 * csip_dialog_response() (which does this itself): a final response to an
 * INVITE received ends it; a 2xx to the INVITE that created an early UAS
 * dialog confirms it, a 300-699 terminates it. Other responses change nothing.
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, not a response); the error of
 *         the CSeq accessor.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_sent_response(csip_dialog *dlg, const csip_msg *resp);

/** Moves the dialog to Terminated (after a BYE, a 481, a timeout …). */
CSIP_EXTERN void csip_dialog_terminate(csip_dialog *dlg);

/* ------------------------------------------------------------------------- */
/* Building messages                                                          */

/**
 * What the caller gives for a request in the dialog. Absent views are left out.
 * @since 0.1
 */
typedef struct csip_dialog_req {
    csip_str method; /**< e.g. "BYE", "INVITE", "UPDATE" (ignored by csip_dialog_ack()) */
    /** The Via value without branch, e.g. "SIP/2.0/UDP 192.0.2.1:5060;rport":
        ";branch=" and a new branch (csip_txn_new_branch()) are appended. */
    csip_str via;
    /** Contact value; absent means the dialog's local target for a target refresh
        request (INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER) and none for others. */
    csip_str contact;
    csip_str content_type;
    csip_str body;
    csip_str extra; /**< extra header lines, each ending in CRLF */
} csip_dialog_req;

/**
 * Builds a request in the dialog (RFC 3261 §12.2.1.1): the local CSeq plus one
 * (1 when it was empty), From the local URI and tag, To the remote URI and
 * tag, the Call-ID, Max-Forwards 70, a Via with a new branch, and
 * Request-URI and Route from the remote target and the route set:
 *  - no route set: the remote target, no Route;
 *  - the first route has lr (loose router): the remote target, and one Route
 *    line per route set entry, in order;
 *  - otherwise (strict router): the first route's URI (without the method
 *    parameter and headers, which a Request-URI cannot hold), and Route
 *    lines for the rest of the route set then the remote target.
 * The remote target in the Request-URI loses its headers and method
 * parameter the same way. An INVITE starts our INVITE in progress (§14.1).
 * ACK (csip_dialog_ack()) and CANCEL (csip_dialog_cancel_for()) are built
 * apart. The local CSeq is counted only when the request is built.
 * @param out the request (owned: hand it to csip_txn_client_new(), or free it
 *        with csip_msg_free()), allocated with the table's csip_mem.
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, method not a token, ACK or
 *         CANCEL, no via, CR or LF in a field, a terminated dialog, BYE from the
 *         UAS side of an early dialog (§15), INVITE while an INVITE is in
 *         progress either way (§14.1)); CSIP_ERR_RANGE (the local CSeq is
 *         2^32-1); CSIP_ERR_FATAL (RAND_bytes failed); CSIP_ERR_NOMEM.
 *         On error nothing changes.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_request(csip_dialog *dlg, const csip_dialog_req *spec, csip_msg **out);

/**
 * Builds the ACK for a 2xx to an INVITE of the dialog (RFC 3261 §13.2.2.4):
 * built like csip_dialog_request() (Request-URI, Route, From, To, Call-ID, a
 * new branch) but with the CSeq number of the INVITE and method ACK, its
 * Authorization and Proxy-Authorization lines, and no Contact unless
 * spec->contact is given. spec->method is ignored; spec->body (with
 * content_type) carries an answer when the INVITE had no offer. The local CSeq
 * does not change. Build it once per 2xx received (retransmissions included)
 * or keep it and send it again.
 * @param invite the INVITE being acknowledged (as sent).
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, invite not an INVITE, no via,
 *         CR or LF in a field); the error of invite's CSeq accessor;
 *         CSIP_ERR_FATAL (RAND_bytes); CSIP_ERR_NOMEM.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_ack(const csip_dialog *dlg, const csip_msg *invite,
                                const csip_dialog_req *spec, csip_msg **out);

/**
 * Builds the CANCEL of an INVITE we sent (RFC 3261 §9.1), initial or re-INVITE:
 * its Request-URI, Call-ID, From, To, CSeq number and Route lines, its top Via
 * only (so that it matches the INVITE's transaction), method CANCEL,
 * Max-Forwards 70. Needs no dialog.
 * @param mem NULL for libc.
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, not an INVITE); the error of a
 *         header read (Via, From, To, Call-ID, CSeq); CSIP_ERR_NOMEM.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_cancel_for(const csip_msg *invite, const csip_mem *mem, csip_msg **out);

/**
 * Builds a response to a request received in the dialog, or to the request
 * that created it (csip_response_for(), RFC 3261 §8.2.6): the To tag is the
 * dialog's local tag when the request's To has none; a 101-299 to a target
 * refresh request or a dialog-creating request gets the local target as
 * Contact (§12.1.1, §12.2.2), and a 101-299 to the request that created the
 * dialog gets its Record-Route lines, in order (§12.1.1). Then what
 * csip_dialog_sent_response() does: the response counts as sent.
 * @param reason NULL for the registry's phrase.
 * @param out allocated with the table's csip_mem (owned: hand it to
 *        csip_txn_respond() or free it).
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, not a request, an ACK, a code
 *         outside 100..699, CR or LF in reason); CSIP_ERR_LIMIT_HEADERS;
 *         CSIP_ERR_NOMEM. On error nothing changes.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_response(csip_dialog *dlg, const csip_msg *req, int code,
                                     const char *reason, csip_msg **out);

/**
 * Builds the response that creates a dialog at the UAS, before the dialog
 * exists (then csip_dialog_uas_new() from the request and this response):
 * csip_response_for() with local_tag as To tag, and for a 101-299 the
 * request's Record-Route lines, in order, and Contact: contact (when given).
 * @param local_tag a token (csip_dialog_new_tag()); required.
 * @param contact the Contact value to add, e.g. "<sip:bob@192.0.2.4:5060>"; absent for none.
 * @param mem NULL for libc.
 * @return 0; CSIP_ERR_INVALID_ARG (NULL argument, not a request, an ACK, a code
 *         outside 100..699, no tag or not a token, CR or LF in contact or reason);
 *         CSIP_ERR_LIMIT_HEADERS; CSIP_ERR_NOMEM.
 * @since 0.1
 */
CSIP_EXTERN int csip_dialog_uas_response(const csip_msg *req, int code, const char *reason,
                                         csip_str local_tag, csip_str contact, const csip_mem *mem,
                                         csip_msg **out);

/* ------------------------------------------------------------------------- */
/* Accessors (@since 0.1). dlg must not be NULL. Views are borrowed: valid
 * until the dialog changes that value (csip_dialog_recv_request() and
 * csip_dialog_recv_response() may replace the remote target and the route
 * set, csip_dialog_set_local_target() the local target) or is freed. */

CSIP_EXTERN csip_dialog_state csip_dialog_state_of(const csip_dialog *dlg);
/** The dialog id (views into the dialog). */
CSIP_EXTERN void csip_dialog_get_id(const csip_dialog *dlg, csip_dialog_id *out);
/** True when the dialog was created by csip_dialog_uac_new() (we sent the request). */
CSIP_EXTERN bool csip_dialog_is_uac(const csip_dialog *dlg);
CSIP_EXTERN bool csip_dialog_is_secure(const csip_dialog *dlg);
/** The local sequence number: 0 while empty (UAS, nothing sent yet). */
CSIP_EXTERN uint32_t csip_dialog_local_cseq(const csip_dialog *dlg);
/** The remote sequence number. @return 0; CSIP_ERR_NOT_FOUND while it is empty. */
CSIP_EXTERN int csip_dialog_remote_cseq(const csip_dialog *dlg, uint32_t *out);
/** The local URI as a From/To value with our tag (name-addr and parameters). */
CSIP_EXTERN csip_str csip_dialog_local_uri(const csip_dialog *dlg);
/** The remote URI as a From/To value with the peer's tag. */
CSIP_EXTERN csip_str csip_dialog_remote_uri(const csip_dialog *dlg);
/** The remote target URI (no angle brackets). */
CSIP_EXTERN csip_str csip_dialog_remote_target(const csip_dialog *dlg);
/** Our Contact value for target refreshes (absent when none). */
CSIP_EXTERN csip_str csip_dialog_local_target(const csip_dialog *dlg);
/** Number of route set entries. */
CSIP_EXTERN size_t csip_dialog_route_count(const csip_dialog *dlg);
/** The i-th route set entry, a name-addr as in Record-Route ("<sip:p1.example.com;lr>"),
    absent past the end. */
CSIP_EXTERN csip_str csip_dialog_route(const csip_dialog *dlg, size_t i);
/**
 * Replaces our Contact value (sent in later target refresh requests and their
 * responses); absent removes it.
 * @return 0; CSIP_ERR_INVALID_ARG (CR or LF); CSIP_ERR_LIMIT_DIALOG_SIZE;
 *         CSIP_ERR_NOMEM (unchanged).
 */
CSIP_EXTERN int csip_dialog_set_local_target(csip_dialog *dlg, csip_str contact);
CSIP_EXTERN void *csip_dialog_user_data(const csip_dialog *dlg);
CSIP_EXTERN void csip_dialog_set_user_data(csip_dialog *dlg, void *user_data);

#ifdef __cplusplus
}
#endif
#endif
