/*
 * The csip tool: what `csip call` and `csip answer` share. A ua_call is one
 * call once it has a dialog (csip/dialog.h): its media (an RTP socket of its
 * own, so that the port offered is real, though no media flows) and SDP
 * offer/answer state (csip/sdp.h), and the requests inside the dialog both
 * ways: BYE, re-INVITE, UPDATE and their ACK, answered or sent, with the 2xx
 * of an INVITE retransmitted until its ACK (RFC 3261 §13.3.1.4).
 *
 * The commands keep the dialog-creating INVITE (sent or received) and hand
 * the rest here. Define _DEFAULT_SOURCE before including (uv.h).
 */
#ifndef CSIP_APP_CALL_H
#define CSIP_APP_CALL_H

#include "ua.h"

typedef struct ua_call ua_call;

/* How a call ended (ua_call.ended). */
typedef enum call_end {
    CALL_END_PEER_BYE = 0, /* the peer sent BYE, we answered 200 */
    CALL_END_OUR_BYE,      /* our BYE got a final response: status in ua_call.bye_status */
    CALL_END_LOST, /* a 481 or 408 to a request in the dialog ended it (RFC 3261 §12.2.1.2) */
} call_end;

struct ua_call {
    /* Set by the command */
    ua *u;
    csip_dialog_table *tab;
    ua_auth *auth;        /* credentials to add to our requests (NULL: none) */
    char label[24];       /* "call", "call 2": prefix of the lines printed */
    char contact[440];    /* our Contact value, "<sip:bob@192.0.2.1:5060;transport=udp>" */
    const char *sdp_user; /* o= username */
    void (*ended)(ua_call *c, call_end how);
    void (*closed)(ua_call *c); /* after call_close(): the handles are closed */
    void *user_data;

    csip_dialog *dlg; /* NULL until the dialog exists */

    /* Media */
    uv_udp_t rtp;
    uint16_t rtp_port;
    bool rtp_open;
    char media_addr[64]; /* our address in SDP (no brackets) */
    uint64_t sess_id;
    csip_sdp_session sdp;
    char *peer_sdp_text; /* the peer's last description, and it parsed */
    csip_sdp *peer_sdp;
    char *my_sdp_text; /* ours */
    csip_sdp *my_sdp;
    bool offer_out; /* we sent an offer not answered yet */

    /* UAS: the 2xx to an INVITE, retransmitted until its ACK */
    uv_timer_t ok_timer;
    csip_txn *ok_st;
    char *ok_bytes;
    size_t ok_len;
    uint32_t ok_cseq;
    uint64_t ok_interval, ok_elapsed;
    bool ok_reliable;
    bool ok_waiting;

    /* UAC: our requests in the dialog */
    csip_txn *ct;     /* our last re-INVITE or UPDATE, until its transaction ends */
    bool ct_final;    /* it had its final response */
    csip_txn *bye_ct; /* our BYE */
    int bye_status;
    int auth_retries;
    csip_msg *ack; /* the ACK of the last 2xx to our INVITE, for its retransmissions */
    csip_addr ack_dst;
    uint32_t ack_cseq;

    bool confirmed_seen; /* the ACK of our first 2xx came (UAS) */
    bool bye_wanted;     /* send BYE once the ACK comes (RFC 3261 §15) */
    bool is_ended;
    int closing; /* handles being closed */
};

/* Sets the call up: timers on the ua's loop, the RTP socket bound on the
 * ua's local address. @return 0, or -1 (message on stderr). */
int call_init(ua_call *c);

/* Closes the handles and frees what the call holds (the dialog too); closed()
 * runs once they are closed. */
void call_close(ua_call *c);

/* The ua_call of a dialog (its user data), or NULL. */
ua_call *call_of(const csip_dialog *dlg);

/* Attaches the dialog (csip_dialog_set_user_data). */
void call_set_dialog(ua_call *c, csip_dialog *dlg);

/* ------------------------------------------------------------------------- */
/* SDP */

/* Writes a new offer (a re-offer in the session when there was an exchange),
 * kept as ours; *out views it (valid until the next offer or answer).
 * @return 0 or -1 (message on stderr). */
int call_offer(ua_call *c, csip_str *out);

/* Answers the peer's offer body; *out views the answer (kept as ours);
 * *accepted: the sections accepted. When the offer does not parse or nothing
 * is accepted (answer 488), nothing is kept and the session is unchanged.
 * @return 0, or -1 (offer refused, note printed). */
int call_answer(ua_call *c, csip_str offer, csip_str *out, size_t *accepted);

/* The peer's answer to our offer: kept, and the media printed. */
void call_take_answer(ua_call *c, csip_str answer);

/* True when m carries an SDP body (Content-Type application/sdp). */
bool call_has_sdp(const csip_msg *m);

/* Prints "<label>: media …" for the last exchange. */
void call_print_media(ua_call *c, bool we_offered);

/* ------------------------------------------------------------------------- */
/* Inside the dialog */

/* Where requests in the dialog go: the first route, else the remote target
 * (RFC 3261 §12.2.1.1). A host name is not resolved: the ua's target stands
 * in (a note says so). @return 0 or -1. */
int call_next_hop(ua_call *c, csip_addr *out);

/*
 * Sends the ACK of a 2xx to our INVITE (initial or re-INVITE, `invite` as
 * sent) through the dialog's route set, and keeps it for the 2xx's
 * retransmissions. @return 0 or -1.
 */
int call_ack(ua_call *c, const csip_msg *invite);

/* A retransmitted 2xx to our INVITE with CSeq cseq: the kept ACK again. */
void call_ack_again(ua_call *c, uint32_t cseq);

/*
 * Sends a request in the dialog: "BYE", or "INVITE" / "UPDATE" with a new
 * offer. @return 0; -1 when it could not be sent (note printed), or another
 * INVITE/UPDATE is under way.
 */
int call_send(ua_call *c, const char *method);

/* Ends the call from our side: BYE (after the ACK of our 2xx, as RFC 3261 §15
 * wants). */
void call_hangup(ua_call *c);

/* Sends a 2xx (built by the dialog layer) to an INVITE on st, body set by the
 * caller, retransmitted until its ACK over UDP; without an ACK within 64*T1
 * the call is ended with a BYE (RFC 3261 §13.3.1.4). */
void call_send_ok(ua_call *c, csip_txn *st, csip_msg *ok, const char *note);

/* A request matched to this call's dialog (printed already). st NULL for an ACK. */
void call_on_request(ua_call *c, csip_txn *st, const csip_msg *req);

/* A response on a client transaction: true when it was one of this call's
 * (re-INVITE, UPDATE, BYE). */
bool call_on_response(ua_call *c, csip_txn *ct, const csip_msg *resp, int status);

/* A transaction ended. */
void call_on_terminated(ua_call *c, csip_txn *t);

/* Answers a request that matches no dialog of ours (printed already): 481 to
 * one with a To tag, to BYE, UPDATE, INFO, PRACK and NOTIFY, and to CANCEL;
 * 200 to OPTIONS; MESSAGE (RFC 3428) printed ("message from URI: text") and
 * answered 200; 405 to the rest. Nothing for an ACK (st NULL). */
void call_reply_outside(ua *u, csip_txn *st, const csip_msg *req);

#endif
