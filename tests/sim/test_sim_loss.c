/*
 * Transactions over a bad network, for many seeds: loss up to 30 % in both
 * directions, duplication, reordering, jitter and partitions, over datagram
 * and reliable (TCP-like) links, with INVITE and non-INVITE requests and
 * servers that answer at once, fail, ring until cancelled, or answer too late.
 *
 * For every seed, when the network and every timer have gone quiet:
 *  - every client transaction delivered exactly one final response to its TU:
 *    the one the server's TU sent, or a synthesized 408 (timeout) or 503
 *    (transport error, reliable links) only when no final response from the
 *    server had reached the client before; no provisional after the final;
 *    2xx retransmissions after the first 2xx only (RFC 6026);
 *  - every server TU saw each request once (never a retransmission);
 *  - every transaction ended with on_terminated exactly once, for a reason
 *    its history allows (Timer H only after a non-2xx, transport errors only
 *    on reliable links);
 *  - no transaction is alive and no timer is armed; nothing is leaked (the
 *    asan build runs this under LeakSanitizer).
 *
 * Usage: test_sim_loss [SEEDS [FIRST]]   (default 10000 seeds from 0)
 */
#include "check.h"
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CLIENTS 3
#define MAX_TX_PER_CLIENT 4
#define MAX_TX (MAX_CLIENTS * MAX_TX_PER_CLIENT)
#define BRANCH_PREFIX "z9hG4bKsim"

typedef enum scen {
    SC_NI_OK = 0, /* non-INVITE, 200 at once */
    SC_NI_FAIL,   /* non-INVITE, 404 after up to 2 s */
    SC_NI_PROV,   /* non-INVITE, 100 at once, 200 after 1 to 15 s */
    SC_NI_LATE,   /* non-INVITE, 200 after Timer F (the client times out) */
    SC_INV_OK,    /* INVITE, 180 then 200 (the TU retransmits it until the ACK) */
    SC_INV_FAIL,  /* INVITE, 486 after up to 3 s */
    SC_INV_SLOW,  /* INVITE, no provisional from the TU (100 Trying from the layer), 603 */
    SC_INV_RING,  /* INVITE, 180, then 487 when cancelled or 480 after 60 s */
    SC__COUNT
} scen;

/* One transaction pair (client and server) for one (branch, method). */
typedef struct side {
    bool started;
    uint64_t started_at;
    bool got_response; /* the client TU got any response */
    csip_txn *ct;
    int finals, terms, final_status, why;
    bool synthesized;
    bool final_delivered; /* a final response of the server reached the client */
    int retrans_2xx;
    /* server */
    csip_txn *st;
    int seen, st_terms, st_why;
    int server_final; /* final status the server's TU sent, 0 = none yet */
} side;

typedef struct txrec {
    int idx;
    scen sc;
    sim_ep *c; /* the client endpoint */
    bool reliable;
    side main, cancel;
    uint32_t delay1, delay2;
    int final_code;
    char branch[32], call_id[32];
    /* the server TU's 2xx retransmission (RFC 3261 §13.3.1.4) */
    csip_msg *ok;
    uint32_t ok_interval;
    uint64_t ok_until;
    bool acked;
    int acks_sent;
} txrec;

typedef struct world {
    sim *s;
    sim_ep *srv;
    sim_ep *clients[MAX_CLIENTS];
    int nclients;
    uint64_t seed;
    txrec tx[MAX_TX];
    int ntx;
    int violations;
} world;

static world W;

/* Totals over all seeds, printed at the end. */
static struct {
    uint64_t txns, finals_real, timeouts, transport, cancels, retrans_2xx, stray, events;
    uint64_t msgs_sent, msgs_retrans, absorbed;
} T;

static const char *const scen_name[] = {"NI_OK",  "NI_FAIL",  "NI_PROV",  "NI_LATE",
                                        "INV_OK", "INV_FAIL", "INV_SLOW", "INV_RING"};

#define VIOLATION(...)                                                                             \
    do {                                                                                           \
        if (W.violations++ < 5) {                                                                  \
            fprintf(stderr, "seed %" PRIu64 " t=%" PRIu64 ": ", W.seed, sim_now(W.s));             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static bool is_invite(const txrec *r)
{
    return r->sc >= SC_INV_OK;
}

/* The record a branch names ("z9hG4bKsim<two digits>"), or NULL. */
static txrec *rec_of_branch(csip_str b)
{
    size_t pl = sizeof BRANCH_PREFIX - 1;
    if (b.len != pl + 2 || memcmp(b.p, BRANCH_PREFIX, pl) != 0)
        return NULL;
    int i = (b.p[pl] - '0') * 10 + (b.p[pl + 1] - '0');
    return i >= 0 && i < W.ntx ? &W.tx[i] : NULL;
}

static txrec *rec_of_side(const side *sd)
{
    for (int i = 0; i < W.ntx; i++)
        if (sd == &W.tx[i].main || sd == &W.tx[i].cancel)
            return &W.tx[i];
    return NULL;
}

static bool is_client_ep(const sim_ep *ep)
{
    for (int i = 0; i < W.nclients; i++)
        if (ep == W.clients[i])
            return true;
    return false;
}

static txrec *rec_of_call_id(csip_str c)
{
    for (int i = 0; i < W.ntx; i++)
        if (csip_str_eq_c(c, W.tx[i].call_id))
            return &W.tx[i];
    return NULL;
}

/* The server's address over the transport of r's client. */
static const csip_addr *srv_addr(const txrec *r)
{
    return sim_addr_tp(W.srv, r->reliable ? CSIP_TP_TCP : CSIP_TP_UDP);
}

/*
 * A 408 comes from Timer F (64*T1 after the request), Timer B (64*T1 after
 * the INVITE, while no response has come), or 64*T1 after the CANCEL of an
 * INVITE (RFC 3261 §9.1): nothing else may time a transaction out.
 */
static bool timeout_on_time(const txrec *r, const side *sd)
{
    uint64_t now = sim_now(W.s);
    if (sd == &r->cancel || !is_invite(r))
        return now == sd->started_at + 32000;
    return (!sd->got_response && now == sd->started_at + 32000) ||
           (r->cancel.started && now == r->cancel.started_at + 32000);
}

/* ------------------------------------------------------------------------- */
/* Trace: which final responses reached a client endpoint. */

static const char *find(const char *p, size_t n, const char *needle)
{
    return check_memmem(p, n, needle, strlen(needle));
}

static void on_wire(sim *s, const sim_event *ev, void *ud)
{
    (void)s;
    (void)ud;
    if (ev->fate != SIM_DELIVERED || !is_client_ep(ev->to) || ev->len < 12 ||
        memcmp(ev->data, "SIP/2.0 ", 8) != 0 || ev->data[8] == '1')
        return;
    const char *b = find(ev->data, ev->len, "branch=" BRANCH_PREFIX);
    if (!b)
        return;
    const char *end = ev->data + ev->len;
    b += 7;
    size_t bl = 0;
    while (b + bl < end && b[bl] != ';' && b[bl] != '\r')
        bl++;
    txrec *r = rec_of_branch((csip_str){b, bl});
    const char *cs = find(ev->data, ev->len, "\r\nCSeq: ");
    if (!r || !cs)
        return;
    bool cancel = find(cs, (size_t)(end - cs), " CANCEL\r\n") == cs + 9;
    (cancel ? &r->cancel : &r->main)->final_delivered = true;
}

/* ------------------------------------------------------------------------- */
/* Server TU */

static void st_respond(txrec *r, side *sd, int code)
{
    if (!sd->st || sd->server_final)
        return;
    csip_msg *resp = NULL;
    char tag[8];
    snprintf(tag, sizeof tag, "s%d", r->idx);
    if (csip_response_for(csip_txn_request(sd->st), code, NULL, csip_str_c(tag), NULL, &resp) != 0)
        abort();
    if (code >= 200)
        sd->server_final = code;
    if (code >= 200 && code < 300 && !r->reliable && sd == &r->main && is_invite(r))
        r->ok = sim_response(csip_txn_request(sd->st), code, tag);
    int rc = csip_txn_respond(sd->st, resp, sim_now(W.s));
    if (rc != 0)
        VIOLATION("tx %d: csip_txn_respond %d: %s", r->idx, code, csip_err_name(rc));
}

static void resend_ok(sim *s, void *arg)
{
    txrec *r = arg;
    if (!r->ok)
        return;
    if (r->acked || sim_now(s) >= r->ok_until) {
        csip_msg_free(r->ok);
        r->ok = NULL;
        return;
    }
    int rc = csip_txn_layer_send_stateless(sim_layer(W.srv), r->ok, NULL, sim_now(s));
    if (rc != 0)
        VIOLATION("tx %d: 2xx retransmission: %s", r->idx, csip_err_name(rc));
    r->ok_interval = r->ok_interval * 2 > 4000 ? 4000 : r->ok_interval * 2;
    sim_at(s, sim_now(s) + r->ok_interval, resend_ok, r);
}

static void act_ring(sim *s, void *arg)
{
    (void)s;
    txrec *r = arg;
    st_respond(r, &r->main, 180);
}

static void act_final(sim *s, void *arg)
{
    txrec *r = arg;
    st_respond(r, &r->main, r->final_code);
    if (r->ok) {
        /* the UAS core retransmits the 2xx: T1 doubling up to T2, for 64*T1 */
        r->ok_interval = 500;
        r->ok_until = sim_now(s) + 32000;
        sim_at(s, sim_now(s) + 500, resend_ok, r);
    }
}

static void server_request(txrec *r, side *sd, csip_txn *st, const csip_msg *req)
{
    (void)req;
    uint64_t now = sim_now(W.s);
    sd->seen++;
    if (sd->seen > 1) {
        VIOLATION("tx %d (%s): the server TU saw the request %d times", r->idx, scen_name[r->sc],
                  sd->seen);
        return;
    }
    sd->st = st;
    csip_txn_set_user_data(st, sd);
    if (sd == &r->cancel) {
        /* RFC 3261 §9.2 */
        csip_txn *inv = csip_txn_layer_find_invite(sim_layer(W.srv), req);
        if (inv && csip_txn_user_data(inv) != &r->main)
            VIOLATION("tx %d: find_invite found another transaction", r->idx);
        if (!inv) {
            st_respond(r, sd, 481);
            return;
        }
        st_respond(r, sd, 200);
        if (!r->main.server_final) {
            r->final_code = 487;
            act_final(W.s, r);
        }
        return;
    }
    switch (r->sc) {
    case SC_NI_OK:
        st_respond(r, sd, 200);
        break;
    case SC_NI_FAIL:
    case SC_NI_LATE:
    case SC_INV_FAIL:
    case SC_INV_SLOW:
        sim_at(W.s, now + r->delay1, act_final, r);
        break;
    case SC_NI_PROV:
        st_respond(r, sd, 100);
        sim_at(W.s, now + r->delay1, act_final, r);
        break;
    case SC_INV_OK:
        sim_at(W.s, now + r->delay1, act_ring, r);
        sim_at(W.s, now + r->delay1 + r->delay2, act_final, r);
        break;
    case SC_INV_RING:
        sim_at(W.s, now + 100, act_ring, r);
        sim_at(W.s, now + 60000, act_final, r); /* 480 when nobody cancels */
        break;
    case SC__COUNT:
        break;
    }
}

static void srv_on_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req,
                           const csip_addr *src, void *ud)
{
    (void)l;
    (void)src;
    (void)ud;
    if (!st) {
        /* the ACK of a 2xx */
        csip_str cid;
        txrec *r = NULL;
        if (csip_msg_method(req) != CSIP_METHOD_ACK || csip_msg_call_id(req, &cid) != 0 ||
            !(r = rec_of_call_id(cid))) {
            VIOLATION("request without a transaction that is not a known ACK");
            return;
        }
        if (r->main.server_final < 200 || r->main.server_final >= 300)
            VIOLATION("tx %d: an ACK reached the TU without a 2xx", r->idx);
        r->acked = true;
        return;
    }
    const csip_via *via;
    txrec *r = NULL;
    if (csip_msg_via(req, 0, &via) != 0 || !(r = rec_of_branch(via->branch))) {
        VIOLATION("unknown request");
        return;
    }
    bool cancel = csip_msg_method(req) == CSIP_METHOD_CANCEL;
    server_request(r, cancel ? &r->cancel : &r->main, st, req);
}

static void srv_on_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)ud;
    side *sd = csip_txn_user_data(t);
    if (!sd) {
        VIOLATION("server transaction without a record ended");
        return;
    }
    sd->st = NULL;
    sd->st_terms++;
    sd->st_why = (int)why;
    txrec *r = rec_of_side(sd);
    bool ok = why == CSIP_TXN_END_NORMAL ||
              (why == CSIP_TXN_END_TIMEOUT && sd->server_final >= 300 &&
               csip_txn_kind_of(t) == CSIP_TXN_INVITE_SERVER) ||
              (why == CSIP_TXN_END_TRANSPORT && r && r->reliable);
    if (!ok)
        VIOLATION("server transaction ended with %d after final %d", (int)why, sd->server_final);
}

/* ------------------------------------------------------------------------- */
/* Client TU */

static void send_ack(txrec *r, const csip_msg *resp)
{
    const csip_nameaddr *to;
    char branch[40], tag[16];
    if (csip_msg_to(resp, &to) != 0 || to->tag.len == 0 || to->tag.len >= sizeof tag) {
        VIOLATION("tx %d: 2xx without a To tag", r->idx);
        return;
    }
    memcpy(tag, to->tag.p, to->tag.len);
    tag[to->tag.len] = 0;
    snprintf(branch, sizeof branch, "z9hG4bKack%d-%d", r->idx, ++r->acks_sent);
    const csip_addr *dst = srv_addr(r);
    csip_msg *ack = sim_request(r->c, dst, "ACK", "b", branch, r->call_id, 1, tag, NULL);
    int rc = csip_txn_layer_send_stateless(sim_layer(r->c), ack, dst, sim_now(W.s));
    if (rc != 0 && !r->reliable)
        VIOLATION("tx %d: ACK send: %s", r->idx, csip_err_name(rc));
    csip_msg_free(ack);
}

static void cli_on_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status,
                            void *ud)
{
    (void)l;
    (void)ud;
    side *sd = csip_txn_user_data(ct);
    txrec *r = rec_of_side(sd);
    if (!r) {
        VIOLATION("response for an unknown client transaction");
        return;
    }
    bool ok2xx = resp && status >= 200 && status < 300 && sd == &r->main && is_invite(r);
    if (resp)
        sd->got_response = true;
    if (status < 200) {
        if (sd->finals)
            VIOLATION("tx %d: provisional %d after the final response", r->idx, status);
        if (!resp)
            VIOLATION("tx %d: synthesized provisional", r->idx);
        return;
    }
    if (sd->finals) {
        if (ok2xx && sd->final_status >= 200 && sd->final_status < 300) {
            sd->retrans_2xx++;
            T.retrans_2xx++;
            send_ack(r, resp);
        } else {
            VIOLATION("tx %d (%s): second final response %d after %d", r->idx, scen_name[r->sc],
                      status, sd->final_status);
        }
        return;
    }
    sd->finals = 1;
    sd->final_status = status;
    sd->synthesized = resp == NULL;
    if (!resp) {
        if (status != 408 && !(status == 503 && r->reliable))
            VIOLATION("tx %d: synthesized %d", r->idx, status);
        if (status == 408 && !timeout_on_time(r, sd))
            VIOLATION("tx %d (%s%s): 408 at a time no timer allows", r->idx, scen_name[r->sc],
                      sd == &r->cancel ? " CANCEL" : "");
        if (sd->final_delivered)
            VIOLATION("tx %d (%s%s): synthesized %d although the server's final had arrived",
                      r->idx, scen_name[r->sc], sd == &r->cancel ? " CANCEL" : "", status);
        if (status == 408)
            T.timeouts++;
        else
            T.transport++;
    } else {
        T.finals_real++;
        if (status != sd->server_final)
            VIOLATION("tx %d (%s): final %d, the server sent %d", r->idx, scen_name[r->sc], status,
                      sd->server_final);
        if (ok2xx)
            send_ack(r, resp);
    }
}

static void cli_on_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    (void)l;
    (void)src;
    (void)ud;
    T.stray++;
    /* a 2xx retransmission after Timer M: the UAC core still ACKs it */
    const csip_via *via;
    txrec *r;
    int code = csip_msg_status(resp);
    if (code >= 200 && code < 300 && csip_msg_method(resp) == CSIP_METHOD_INVITE &&
        csip_msg_via(resp, 0, &via) == 0 && (r = rec_of_branch(via->branch)) != NULL)
        send_ack(r, resp);
}

static void cli_on_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)ud;
    side *sd = csip_txn_user_data(t);
    sd->ct = NULL;
    sd->terms++;
    sd->why = (int)why;
    txrec *r = rec_of_side(sd);
    if (!sd->finals)
        VIOLATION("client transaction ended (%d) without a final response", (int)why);
    if (why == CSIP_TXN_END_DESTROYED || (why == CSIP_TXN_END_TRANSPORT && r && !r->reliable))
        VIOLATION("client transaction ended with %d", (int)why);
}

static void act_start(sim *s, void *arg)
{
    txrec *r = arg;
    const char *method = is_invite(r) ? "INVITE" : (r->sc == SC_NI_FAIL ? "MESSAGE" : "OPTIONS");
    csip_msg *req =
        sim_request(r->c, srv_addr(r), method, "b", r->branch, r->call_id, 1, NULL, NULL);
    r->main.started = true;
    r->main.started_at = sim_now(s);
    int rc =
        csip_txn_client_new(sim_layer(r->c), req, srv_addr(r), &r->main, sim_now(s), &r->main.ct);
    if (rc != 0)
        VIOLATION("tx %d: client_new: %s", r->idx, csip_err_name(rc));
}

/* The client TU gives up on an INVITE in Proceeding (§9.1: CANCEL). */
static void act_cancel(sim *s, void *arg)
{
    txrec *r = arg;
    csip_txn *ct = r->main.ct;
    if (!ct || r->main.finals)
        return;
    if (csip_txn_state_of(ct) == CSIP_TXN_CALLING) {
        sim_at(s, sim_now(s) + 1000, act_cancel, r); /* no CANCEL before a provisional */
        return;
    }
    if (csip_txn_state_of(ct) != CSIP_TXN_PROCEEDING)
        return;
    csip_msg *req =
        sim_request(r->c, srv_addr(r), "CANCEL", "b", r->branch, r->call_id, 1, NULL, NULL);
    r->cancel.started = true;
    r->cancel.started_at = sim_now(s);
    T.cancels++;
    int rc = csip_txn_client_new(sim_layer(r->c), req, srv_addr(r), &r->cancel, sim_now(s),
                                 &r->cancel.ct);
    if (rc != 0)
        VIOLATION("tx %d: CANCEL client_new: %s", r->idx, csip_err_name(rc));
}

/* ------------------------------------------------------------------------- */
/* One seed */

static void check_side(const txrec *r, const side *sd, const char *what)
{
    if (!sd->started)
        return;
    if (sd->finals != 1 || sd->terms != 1)
        VIOLATION("tx %d (%s %s): %d final responses, %d terminations", r->idx, scen_name[r->sc],
                  what, sd->finals, sd->terms);
    if (sd->seen > 1)
        VIOLATION("tx %d %s: server TU saw it %d times", r->idx, what, sd->seen);
    if (sd->finals == 1 && !sd->synthesized && sd->seen != 1)
        VIOLATION("tx %d %s: a real final response but the server saw %d", r->idx, what, sd->seen);
    if (sd->seen == 1 && sd->st_terms != 1)
        VIOLATION("tx %d %s: server transaction ended %d times", r->idx, what, sd->st_terms);
}

static void run_seed(uint64_t seed)
{
    memset(&W, 0, sizeof W);
    W.seed = seed;
    W.s = sim_new(seed);
    sim *s = W.s;
    csip_txn_callbacks cc = {NULL, NULL, cli_on_response, cli_on_stray, cli_on_terminated};
    csip_txn_callbacks sc = {NULL, srv_on_request, NULL, NULL, srv_on_terminated};
    W.srv = sim_endpoint(s, "10.0.0.2", 5060, CSIP_TP_UDP, NULL, &sc, NULL);
    sim_endpoint_alias(W.srv, "10.0.0.2", 5060, CSIP_TP_TCP);
    W.nclients = (int)sim_range(s, 1, MAX_CLIENTS);
    bool reliable[MAX_CLIENTS];
    for (int k = 0; k < W.nclients; k++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.0.1.%d", k + 1);
        reliable[k] = sim_range(s, 0, 3) == 3; /* a quarter of the clients over TCP */
        W.clients[k] =
            sim_endpoint(s, ip, 5060, reliable[k] ? CSIP_TP_TCP : CSIP_TP_UDP, NULL, &cc, NULL);
        bool worst = sim_range(s, 0, 4) == 0; /* a fifth of them: 30 % loss both ways */
        for (int dir = 0; dir < 2; dir++) {
            sim_link l;
            memset(&l, 0, sizeof l);
            l.delay_ms = sim_range(s, 1, 150);
            l.jitter_ms = sim_range(s, 0, 50);
            l.loss = worst ? 0.30 : 0.30 * sim_uniform(s);
            l.dup = 0.10 * sim_uniform(s);
            l.reorder = 0.20 * sim_uniform(s);
            l.reorder_ms = sim_range(s, 0, 500);
            sim_set_link(s, dir ? W.srv : W.clients[k], dir ? W.clients[k] : W.srv, &l);
        }
        if (sim_range(s, 0, 99) < 15) {
            uint64_t from = sim_range(s, 0, 20000);
            sim_partition(s, W.clients[k], W.srv, from, from + sim_range(s, 500, 40000));
        }
        int n = (int)sim_range(s, 1, MAX_TX_PER_CLIENT);
        for (int j = 0; j < n; j++) {
            W.tx[W.ntx].c = W.clients[k];
            W.tx[W.ntx].reliable = reliable[k];
            W.ntx++;
        }
    }
    for (int i = 0; i < W.ntx; i++) {
        txrec *r = &W.tx[i];
        r->idx = i;
        r->sc = (scen)sim_range(s, 0, SC__COUNT - 1);
        snprintf(r->branch, sizeof r->branch, BRANCH_PREFIX "%02d", i);
        snprintf(r->call_id, sizeof r->call_id, "sim%02d", i);
        switch (r->sc) {
        case SC_NI_OK:
        case SC__COUNT:
            break;
        case SC_NI_FAIL:
            r->final_code = 404;
            r->delay1 = sim_range(s, 0, 2000);
            break;
        case SC_NI_PROV:
            r->final_code = 200;
            r->delay1 = sim_range(s, 1000, 15000);
            break;
        case SC_NI_LATE:
            r->final_code = 200;
            r->delay1 = sim_range(s, 33000, 45000);
            break;
        case SC_INV_OK:
            r->final_code = 200;
            r->delay1 = sim_range(s, 0, 1000);
            r->delay2 = sim_range(s, 0, 3000);
            break;
        case SC_INV_FAIL:
            r->final_code = 486;
            r->delay1 = sim_range(s, 0, 3000);
            break;
        case SC_INV_SLOW:
            r->final_code = 603;
            r->delay1 = sim_range(s, 300, 2000);
            break;
        case SC_INV_RING:
            r->final_code = 480;
            break;
        }
        uint64_t start = sim_range(s, 0, 5000);
        sim_at(s, start, act_start, r);
        if (is_invite(r)) /* the UAC gives up on a call nobody answers */
            sim_at(s, start + (r->sc == SC_INV_RING ? sim_range(s, 2000, 8000) : 45000), act_cancel,
                   r);
        T.txns++;
    }
    sim_trace(s, on_wire, NULL);
    T.events += sim_run(s, UINT64_MAX);

    if (!sim_idle(s))
        VIOLATION("not idle at the end");
    for (int k = 0; k <= W.nclients; k++) {
        csip_txn_layer *l = sim_layer(k < W.nclients ? W.clients[k] : W.srv);
        if (csip_txn_layer_count(l))
            VIOLATION("%zu live transactions at the end", csip_txn_layer_count(l));
        if (csip_txn_layer_next_expiry(l) != UINT64_MAX)
            VIOLATION("timers armed at the end");
        csip_txn_stats st;
        csip_txn_layer_stats(l, &st);
        T.msgs_sent += st.sent;
        T.msgs_retrans += st.retransmitted;
        T.absorbed += st.absorbed;
        if (st.malformed_dropped || st.malformed_answered)
            VIOLATION("malformed messages on the simulated network");
    }
    for (int i = 0; i < W.ntx; i++) {
        check_side(&W.tx[i], &W.tx[i].main, "request");
        check_side(&W.tx[i], &W.tx[i].cancel, "CANCEL");
        if (W.tx[i].ok)
            VIOLATION("tx %d: 2xx retransmission still pending", i);
    }
    sim_free(s);
}

int main(int argc, char **argv)
{
    uint64_t seeds = 10000, first = 0;
    if (argc > 1)
        seeds = strtoull(argv[1], NULL, 10);
    if (argc > 2)
        first = strtoull(argv[2], NULL, 10);
    clock_t t0 = clock();
    int bad_seeds = 0;
    for (uint64_t seed = first; seed < first + seeds; seed++) {
        run_seed(seed);
        if (W.violations) {
            bad_seeds++;
            fprintf(stderr, "seed %" PRIu64 ": %d violations\n", seed, W.violations);
        }
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64 " transactions (%" PRIu64 " CANCEL), %" PRIu64
           " real finals, %" PRIu64 " timeouts, %" PRIu64 " transport errors, %" PRIu64
           " 2xx retransmissions, %" PRIu64 " stray\n",
           first, first + seeds - 1, T.txns, T.cancels, T.finals_real, T.timeouts, T.transport,
           T.retrans_2xx, T.stray);
    printf("%" PRIu64 " events, %" PRIu64 " messages sent (%" PRIu64 " retransmissions), %" PRIu64
           " absorbed; %.2f s\n",
           T.events, T.msgs_sent, T.msgs_retrans, T.absorbed, secs);
    printf("%d passed, %d failed\n", bad_seeds ? 0 : 1, bad_seeds ? 1 : 0);
    return bad_seeds ? 1 : 0;
}
