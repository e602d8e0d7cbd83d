/*
 * The transaction layer: RFC 3261 §17 with the RFC 6026 corrections, sans-I/O.
 * See txn_int.h for the data layout and docs/internals/txn.md for the design.
 *
 * Each of the four machines is one function per event (a response, a request
 * retransmission, an ACK, a timer), each a switch on the state.
 */
#include "msg/msg_int.h"
#include "txn/txn_int.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define COOKIE "z9hG4bK"
#define COOKIE_LEN 7u
#define DEFAULT_MAX_TXNS 65536u
/* Timer D on unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2). */
#define TIMER_D_MIN 32000u

static bool is_client(const csip_txn *t)
{
    return t->kind == CSIP_TXN_INVITE_CLIENT || t->kind == CSIP_TXN_NON_INVITE_CLIENT;
}

static bool has_cookie(csip_str branch)
{
    return branch.len > COOKIE_LEN && memcmp(branch.p, COOKIE, COOKIE_LEN) == 0;
}

static uint64_t t64(uint32_t t1)
{
    return 64u * (uint64_t)t1;
}

/* ------------------------------------------------------------------------- */
/* Callbacks. `busy` marks that the TU is running, so that a re-entrant
 * csip_txn_layer_handle_expiry() cannot free a transaction under our feet. */

static int tx_send(csip_txn_layer *l, const csip_addr *dst, const void *data, size_t len)
{
    l->busy++;
    int rc = l->cb.send(l, dst, data, len, l->user_data);
    l->busy--;
    if (rc < 0) {
        l->stats.transport_errors++;
        return rc;
    }
    l->stats.sent++;
    return 0;
}

static void deliver(csip_txn *t, const csip_msg *resp, int status)
{
    csip_txn_layer *l = t->layer;
    if (!l->cb.on_response)
        return;
    l->busy++;
    l->cb.on_response(l, t, resp, status, l->user_data);
    l->busy--;
}

static void up_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src)
{
    if (!l->cb.on_request)
        return;
    l->busy++;
    l->cb.on_request(l, st, req, src, l->user_data);
    l->busy--;
}

/* ------------------------------------------------------------------------- */
/* Lifetime and timers */

static void arm(csip_txn *t, int slot, uint64_t at)
{
    t->tm[slot] = at;
    csip__txn_heap_update(t->layer, t);
}

static void disarm(csip_txn *t, int slot)
{
    if (t->tm[slot] == TXN_NEVER)
        return;
    t->tm[slot] = TXN_NEVER;
    csip__txn_heap_update(t->layer, t);
}

/* Enters Terminated. on_terminated runs from the next expiry run (END at now). */
static void txn_end(csip_txn *t, csip_txn_end why, uint64_t now)
{
    if (t->state == CSIP_TXN_TERMINATED)
        return;
    t->end_state = t->state;
    t->state = CSIP_TXN_TERMINATED;
    t->end = (uint8_t)why;
    t->tm[TM_RETRANS] = t->tm[TM_AUX] = TXN_NEVER;
    arm(t, TM_END, now);
}

static csip_txn *txn_alloc(csip_txn_layer *l)
{
    if (csip__txn_reserve(l) != 0)
        return NULL;
    csip_txn *t = csip__malloc(l->mem, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->layer = l;
    t->heap_idx = TXN_NO_HEAP;
    for (int i = 0; i < TM__COUNT; i++)
        t->tm[i] = TXN_NEVER;
    t->due = TXN_NEVER;
    return t;
}

static void txn_release(csip_txn *t)
{
    const csip_mem *mem = t->layer->mem;
    if (!(t->flags & TXF_OUT_RAW))
        csip__free(mem, (char *)t->out);
    csip__free(mem, t->ack); /* or to_tag: they share their place */
    csip_msg_free(t->req);
    csip__free(mem, t);
}

/* Unlinks t, tells the TU, frees it. */
static void txn_finalize(csip_txn *t, csip_txn_end why)
{
    csip_txn_layer *l = t->layer;
    for (int i = 0; i < TM__COUNT; i++)
        t->tm[i] = TXN_NEVER;
    csip__txn_heap_update(l, t);
    csip__txn_table_remove(l, t);
    if (t->state != CSIP_TXN_TERMINATED)
        t->end_state = t->state;
    t->state = CSIP_TXN_TERMINATED;
    t->end = (uint8_t)why;
    if (l->cb.on_terminated) {
        l->busy++;
        l->cb.on_terminated(l, t, why, l->user_data);
        l->busy--;
    }
    txn_release(t);
}

/* ------------------------------------------------------------------------- */
/* Output helpers */

/*
 * Prints m into stack (cap octets) when it fits, in one pass (a response
 * nearly always does), else into a new block of the measured size. *out is
 * stack or that block (the caller frees it). @return the length, or an error.
 */
static int print_any(const csip_mem *mem, const csip_msg *m, char *stack, size_t cap, char **out)
{
    *out = stack;
    int n = csip_msg_print(m, stack, cap);
    if (n != CSIP_ERR_BUFFER_TOO_SMALL)
        return n;
    n = csip_msg_print(m, NULL, 0);
    if (n < 0)
        return n;
    char *b = csip__malloc(mem, n > 0 ? (size_t)n : 1u);
    if (!b)
        return CSIP_ERR_NOMEM;
    int r = csip_msg_print(m, b, (size_t)n);
    if (r != n) {
        csip__free(mem, b);
        return r < 0 ? r : CSIP_ERR_INVALID_ARG;
    }
    *out = b;
    return n;
}

/* Prints m into a new exact-size buffer. */
static int print_alloc(const csip_mem *mem, const csip_msg *m, char **out, uint32_t *len)
{
    char tmp[2048], *b;
    int n = print_any(mem, m, tmp, sizeof tmp, &b);
    if (n < 0)
        return n;
    if (b == tmp) {
        b = csip__malloc(mem, n > 0 ? (size_t)n : 1u);
        if (!b)
            return CSIP_ERR_NOMEM;
        memcpy(b, tmp, (size_t)n);
    }
    *out = b;
    *len = (uint32_t)n;
    return 0;
}

/* Replaces the bytes kept for sending again (buf: allocated, or NULL). */
static void set_out(csip_txn *t, char *buf, uint32_t len)
{
    if (!(t->flags & TXF_OUT_RAW))
        csip__free(t->layer->mem, (char *)t->out);
    t->flags &= (uint8_t)~TXF_OUT_RAW;
    t->out = buf;
    t->out_len = len;
}

/* Frees the printed bytes once nothing can send them again. */
static void drop_out(csip_txn *t)
{
    set_out(t, NULL, 0);
}

static bool ip_literal(csip_str s, csip_addr *a)
{
    return s.p && s.len && csip_addr_set_ip(a, s) == 0;
}

static void set_ip(csip_addr *out, const csip_addr *from)
{
    out->family = from->family;
    memcpy(out->ip, from->ip, sizeof out->ip);
}

/*
 * Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4), from the top Via of
 * the request and the address it came from (src; NULL for a stateless send
 * that has only the message).
 *  - Reliable transport: the connection the request came on (src->conn); the
 *    address is where to open a new one if it has closed: the source address
 *    (the "received" value) and the sent-by port.
 *  - Otherwise: maddr when it is an IP literal (with the sent-by port); with
 *    rport, the received address (the source) and the rport value (the
 *    source port); else received, else the sent-by host when it is an IP
 *    literal, else the source address (a host name in sent-by always differs
 *    from the source, so a runtime has added "received"), each with the
 *    sent-by port or the default port (5061 for TLS, else 5060).
 */
/*
 * Where a response goes (RFC 3261 §18.2.2, RFC 3581). With src (a server's
 * response to a request it received), never anywhere but the address the
 * request came from: over a stream its connection; over UDP the source IP
 * (which is what `received` says, and what sent-by says when received is
 * absent), with the source port for rport, else the sent-by port. maddr is
 * not followed there: it would let a forged request aim our responses at a
 * third party. Without src (a proxy forwarding a response by its Via): the
 * Via's received, rport, maddr and sent-by, as §18.2.2 lists them.
 */
static int response_dest(const csip_via *via, const csip_addr *src, csip_addr *out)
{
    memset(out, 0, sizeof *out);
    uint16_t port = via->has_port                           ? via->port
                    : csip_str_ieq_c(via->transport, "TLS") ? 5061u
                                                            : 5060u;
    if (src) {
        *out = *src;
        if (!csip_transport_reliable((csip_transport)src->transport) && via->has_rport)
            return 0; /* the source port */
        out->port = port;
        return 0;
    }
    int tp = csip_transport_lookup(via->transport);
    if (tp < 0)
        return CSIP_ERR_INVALID_ARG;
    out->transport = (uint8_t)tp;
    csip_addr a;
    memset(&a, 0, sizeof a);
    if (ip_literal(via->maddr, &a)) {
        set_ip(out, &a);
        out->port = port;
        return 0;
    }
    bool have_received = ip_literal(via->received, &a);
    if (via->has_rport && via->rport_has_value) {
        if (have_received)
            set_ip(out, &a);
        else if (ip_literal(via->host, &a))
            set_ip(out, &a);
        else
            return CSIP_ERR_INVALID_ARG;
        out->port = via->rport;
        return 0;
    }
    if (have_received)
        set_ip(out, &a);
    else if (ip_literal(via->host, &a))
        set_ip(out, &a);
    else
        return CSIP_ERR_INVALID_ARG;
    out->port = port;
    return 0;
}

/* Sends bytes of a server transaction (its response) per §18.2.2. */
static int server_send(csip_txn *t, const char *data, size_t len, bool retransmission)
{
    csip_addr dst;
    int rc = response_dest(t->via, &t->peer, &dst);
    if (rc == 0)
        rc = tx_send(t->layer, &dst, data, len);
    if (rc == 0 && retransmission)
        t->layer->stats.retransmitted++;
    return rc;
}

/* Prints and sends a message outside any transaction. */
static int send_printed(csip_txn_layer *l, const csip_msg *m, const csip_addr *dst)
{
    char stack[2048], *b;
    int n = print_any(l->mem, m, stack, sizeof stack, &b);
    if (n < 0)
        return n;
    int rc = tx_send(l, dst, b, (size_t)n);
    if (b != stack)
        csip__free(l->mem, b);
    return rc;
}

static int client_send(csip_txn *t, const char *data, size_t len, bool retransmission)
{
    int rc = tx_send(t->layer, &t->peer, data, len);
    if (rc == 0 && retransmission)
        t->layer->stats.retransmitted++;
    return rc;
}

/* A growable output for the ACK builder, measured first then written. */
typedef struct wbuf {
    char *p;
    size_t len, cap;
} wbuf;

static void put(wbuf *w, const char *s, size_t n)
{
    if (w->p && w->len + n <= w->cap)
        memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_s(wbuf *w, csip_str s)
{
    put(w, s.p, s.len);
}

/*
 * The ACK of a non-2xx final response (RFC 3261 §17.1.1.3): the Request-URI,
 * Call-ID and From of the request, the To of the response, the request's top
 * Via only, CSeq with the request's number and method ACK, the request's
 * Route header fields, no body.
 */
static int build_ack(csip_txn *t, const csip_msg *resp)
{
    const csip_msg *req = t->req;
    const csip_hdr *from = csip_msg_hdr_find(req, CSIP_HDR_FROM);
    const csip_hdr *cid = csip_msg_hdr_find(req, CSIP_HDR_CALL_ID);
    const csip_hdr *to = csip_msg_hdr_find(resp, CSIP_HDR_TO);
    const csip_cseq *cseq = NULL;
    if (!from || !cid || !to || csip_msg_cseq(req, &cseq) != 0)
        return CSIP_ERR_INVALID_ARG;
    char num[20];
    size_t nn = csip__fmt_u64(num, cseq->number);
    wbuf w = {NULL, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        w.len = 0;
        put(&w, "ACK ", 4);
        put_s(&w, csip_msg_ruri_raw(req));
        put(&w, " SIP/2.0\r\nVia: ", 15);
        put_s(&w, t->via->raw);
        put(&w, "\r\nMax-Forwards: 70\r\nFrom: ", 26);
        put_s(&w, from->value);
        put(&w, "\r\nTo: ", 6);
        put_s(&w, to->value);
        put(&w, "\r\nCall-ID: ", 11);
        put_s(&w, cid->value);
        put(&w, "\r\nCSeq: ", 8);
        put(&w, num, (size_t)nn);
        put(&w, " ACK\r\n", 6);
        for (const csip_hdr *r = csip_msg_hdr_find(req, CSIP_HDR_ROUTE); r;
             r = csip_msg_hdr_next(req, r)) {
            put(&w, "Route: ", 7);
            put_s(&w, r->value);
            put(&w, "\r\n", 2);
        }
        put(&w, "Content-Length: 0\r\n\r\n", 21);
        if (pass == 0) {
            w.cap = w.len;
            w.p = csip__malloc(t->layer->mem, w.cap);
            if (!w.p)
                return CSIP_ERR_NOMEM;
        }
    }
    csip__free(t->layer->mem, t->ack);
    t->ack = w.p;
    t->ack_len = (uint32_t)w.len;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Matching (RFC 3261 §17.1.3, §17.2.3) */

static uint64_t hash_branch(const csip_txn_layer *l, csip_str branch)
{
    return csip__txn_hash(l->hkey, branch.p, branch.len, true);
}

/* RFC 2543 transactions hash on Call-ID and CSeq number, which the INVITE,
 * its retransmissions, its ACK and its CANCEL share. */
static uint64_t hash_2543(const csip_txn_layer *l, csip_str call_id, uint32_t cseq)
{
    return csip__txn_hash(l->hkey, call_id.p, call_id.len, false) ^
           ((uint64_t)cseq * 0x9E3779B97F4A7C15ull);
}

/* The method of a transaction, as its request writes it. */
static csip_str method_of(const csip_txn *t)
{
    if (t->flags & TXF_COMPACT)
        return ((const txn_compact *)(const void *)t->ack)->method;
    return csip_msg_method_name(t->req);
}

/* A completed non-INVITE server transaction, or one whose final response
 * is prepared, lets its request go (layer option drop_completed_requests):
 * matching needs the branch, the sent-by and the method, retransmission the
 * transport, port and rport of the top Via, a response the TU passes later
 * the CSeq number; nothing else. Without memory it simply keeps the
 * request. */
static void compact(csip_txn *t)
{
    const csip_txn_layer *l = t->layer;
    if (!l->drop_completed || t->kind != CSIP_TXN_NON_INVITE_SERVER ||
        (t->flags & (TXF_2543 | TXF_COMPACT)) || !t->req)
        return;
    const csip_via *v = t->via;
    const csip_cseq *q;
    if (csip_msg_cseq(t->req, &q) != 0)
        return; /* never: the layer took the request with a valid CSeq */
    csip_str m = csip_msg_method_name(t->req);
    size_t n = v->branch.len + v->host.len + v->transport.len + m.len;
    txn_compact *k = csip__malloc(l->mem, sizeof *k + n);
    if (!k)
        return;
    csip__zero(&k->via, sizeof k->via);
    k->via.host_type = v->host_type;
    k->via.has_port = v->has_port;
    k->via.port = v->port;
    k->via.has_rport = v->has_rport;
    k->via.rport_has_value = v->rport_has_value;
    k->via.rport = v->rport;
    k->cseq = q->number;
    char *w = k->data;
#define KEEP(dst, src)                                                                             \
    do {                                                                                           \
        memcpy(w, (src).p, (src).len);                                                             \
        (dst) = (csip_str){w, (src).len};                                                          \
        w += (src).len;                                                                            \
    } while (0)
    KEEP(k->via.branch, v->branch);
    KEEP(k->via.host, v->host);
    KEEP(k->via.transport, v->transport);
    KEEP(k->method, m);
#undef KEEP
    t->ack = (char *)k;
    t->via = &k->via;
    csip_msg_free(t->req);
    t->req = NULL;
    t->flags |= TXF_COMPACT;
}

/* A client transaction by branch (hash h) and method. The stored hash is
 * compared first: a chain walk touches no message until the hashes agree. */
static csip_txn *find_client_h(const csip_txn_layer *l, uint64_t h, csip_str branch,
                               csip_str method)
{
    size_t pos = csip__txn_probe(l, h);
    for (csip_txn *t; (t = csip__txn_next(l, h, &pos)) != NULL;)
        if (is_client(t) && csip_str_ieq(t->via->branch, branch) &&
            csip_str_eq(method_of(t), method))
            return t;
    return NULL;
}

static csip_txn *find_client(const csip_txn_layer *l, csip_str branch, csip_str method)
{
    return find_client_h(l, hash_branch(l, branch), branch, method);
}

static bool sent_by_equal(const csip_via *a, const csip_via *b)
{
    return a->has_port == b->has_port && a->port == b->port && csip_str_ieq(a->host, b->host);
}

/* A server transaction by branch, sent-by and method; invite_of: the INVITE
 * transaction that an ACK or a CANCEL names. */
static csip_txn *find_server(const csip_txn_layer *l, const csip_via *via, csip_str method,
                             bool invite_of)
{
    uint64_t h = hash_branch(l, via->branch);
    size_t pos = csip__txn_probe(l, h);
    for (csip_txn *t; (t = csip__txn_next(l, h, &pos)) != NULL;) {
        if (is_client(t) || (t->flags & TXF_2543) ||
            !csip_str_ieq(t->via->branch, via->branch) || !sent_by_equal(t->via, via))
            continue;
        if (invite_of ? t->kind == CSIP_TXN_INVITE_SERVER : csip_str_eq(method_of(t), method))
            return t;
    }
    return NULL;
}

enum { M2543_REQUEST, M2543_ACK, M2543_CANCEL };

static csip_str to_tag_of(const csip_msg *m)
{
    const csip_nameaddr *na;
    return csip_msg_to(m, &na) == 0 ? na->tag : CSIP_STR_NULL;
}

static csip_str from_tag_of(const csip_msg *m)
{
    const csip_nameaddr *na;
    return csip_msg_from(m, &na) == 0 ? na->tag : CSIP_STR_NULL;
}

/*
 * RFC 3261 §17.2.3 for requests whose branch lacks the magic cookie: the
 * Request-URI, From tag, Call-ID, CSeq number and top Via of the request that
 * created the transaction; the To tag of that request (INVITE retransmission,
 * CANCEL, other methods) or of the final response sent (ACK); the CSeq method
 * too for other methods. ACK and CANCEL look for the INVITE transaction.
 */
static bool match_2543(const csip_txn *t, const csip_msg *r, int mode)
{
    const csip_msg *o = t->req;
    if (mode != M2543_REQUEST && t->kind != CSIP_TXN_INVITE_SERVER)
        return false;
    csip_str c1, c2;
    const csip_cseq *q1, *q2;
    if (csip_msg_call_id(o, &c1) != 0 || csip_msg_call_id(r, &c2) != 0 || !csip_str_eq(c1, c2))
        return false;
    if (csip_msg_cseq(o, &q1) != 0 || csip_msg_cseq(r, &q2) != 0 || q1->number != q2->number)
        return false;
    if (mode == M2543_REQUEST && !csip_str_eq(q1->method, q2->method))
        return false;
    if (!csip_str_eq(from_tag_of(o), from_tag_of(r)))
        return false;
    csip_str want_to = to_tag_of(o);
    if (mode == M2543_ACK && (t->flags & TXF_TO_TAG))
        want_to = (csip_str){t->to_tag, t->to_tag_len};
    if (!csip_str_eq(want_to, to_tag_of(r)))
        return false;
    const csip_via *v2;
    if (csip_msg_via(r, 0, &v2) != 0 || !csip_str_eq(t->via->raw, v2->raw))
        return false;
    const csip_uri *u1, *u2;
    return csip_msg_ruri(o, &u1) == 0 && csip_msg_ruri(r, &u2) == 0 && csip_uri_equal(u1, u2);
}

static csip_txn *find_2543(const csip_txn_layer *l, const csip_msg *r, int mode)
{
    csip_str cid;
    const csip_cseq *cseq;
    if (csip_msg_call_id(r, &cid) != 0 || csip_msg_cseq(r, &cseq) != 0)
        return NULL;
    uint64_t h = hash_2543(l, cid, cseq->number);
    size_t pos = csip__txn_probe(l, h);
    for (csip_txn *t; (t = csip__txn_next(l, h, &pos)) != NULL;)
        if (!is_client(t) && (t->flags & TXF_2543) && match_2543(t, r, mode))
            return t;
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Client transactions (RFC 3261 §17.1, RFC 6026 §7.2) */

/* A synthesized final response (timeout 408, transport error 503), then Terminated. */
static void client_fail(csip_txn *t, int status, csip_txn_end why, uint64_t now)
{
    txn_end(t, why, now);
    deliver(t, NULL, status);
}

/* INVITE client transaction, a response arrived (Figure 5, RFC 6026 Figure 5). */
static void ict_response(csip_txn *t, const csip_msg *resp, int code, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    switch ((csip_txn_state)t->state) {
    case CSIP_TXN_CALLING:
    case CSIP_TXN_PROCEEDING:
        /* Timer A only runs in Calling: the request is never sent again. */
        drop_out(t);
        if (code < 200) {
            /* Timers A and B only run in Calling (the §9.1 guard goes on). */
            t->state = CSIP_TXN_PROCEEDING;
            t->tm[TM_RETRANS] = t->tm[TM_END] = TXN_NEVER;
            csip__txn_heap_update(l, t);
            deliver(t, resp, code);
        } else if (code < 300) {
            /* RFC 6026 §7.2: Accepted, Timer M; 2xx go up, the TU sends the ACK. */
            t->state = CSIP_TXN_ACCEPTED;
            t->tm[TM_RETRANS] = t->tm[TM_AUX] = TXN_NEVER;
            arm(t, TM_END, now + t64(l->t1));
            deliver(t, resp, code);
        } else {
            /* §17.1.1.2: Completed, ACK, Timer D (at least 32 s unreliable, 0 reliable). */
            t->state = CSIP_TXN_COMPLETED;
            t->tm[TM_RETRANS] = t->tm[TM_AUX] = TXN_NEVER;
            uint64_t d = 0;
            if (!(t->flags & TXF_RELIABLE))
                d = t64(l->t1) > TIMER_D_MIN ? t64(l->t1) : TIMER_D_MIN;
            arm(t, TM_END, now + d);
            bool failed = build_ack(t, resp) != 0 || client_send(t, t->ack, t->ack_len, false) != 0;
            deliver(t, resp, code);
            if (failed)
                txn_end(t, CSIP_TXN_END_TRANSPORT, now);
        }
        return;
    case CSIP_TXN_COMPLETED:
        /* Retransmissions of the final response: the ACK again, nothing up. */
        l->stats.absorbed++;
        if (code >= 300 && t->ack && client_send(t, t->ack, t->ack_len, true) != 0)
            txn_end(t, CSIP_TXN_END_TRANSPORT, now);
        return;
    case CSIP_TXN_ACCEPTED:
        /* RFC 6026 §7.2: every 2xx goes up (retransmissions, other forks). */
        if (code >= 200 && code < 300)
            deliver(t, resp, code);
        else
            l->stats.absorbed++;
        return;
    case CSIP_TXN_TRYING:
    case CSIP_TXN_CONFIRMED:
    case CSIP_TXN_TERMINATED:
        l->stats.absorbed++;
        return;
    }
}

/* Non-INVITE client transaction, a response arrived (Figure 6). */
static void nict_response(csip_txn *t, const csip_msg *resp, int code, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    switch ((csip_txn_state)t->state) {
    case CSIP_TXN_TRYING:
    case CSIP_TXN_PROCEEDING:
        if (code < 200) {
            t->state = CSIP_TXN_PROCEEDING;
            deliver(t, resp, code);
        } else {
            /* Completed; Timer K: T4 unreliable, 0 reliable. */
            t->state = CSIP_TXN_COMPLETED;
            t->tm[TM_RETRANS] = TXN_NEVER;
            drop_out(t);
            arm(t, TM_END, now + ((t->flags & TXF_RELIABLE) ? 0u : l->t4));
            deliver(t, resp, code);
        }
        return;
    case CSIP_TXN_CALLING:
    case CSIP_TXN_COMPLETED:
    case CSIP_TXN_CONFIRMED:
    case CSIP_TXN_ACCEPTED:
    case CSIP_TXN_TERMINATED:
        l->stats.absorbed++;
        return;
    }
}

static void ict_timer(csip_txn *t, int slot, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    switch (slot) {
    case TM_RETRANS: /* Timer A: retransmit, double (no cap for INVITE) */
        if (t->state != CSIP_TXN_CALLING || !t->out)
            return;
        if (client_send(t, t->out, t->out_len, true) != 0) {
            client_fail(t, 503, CSIP_TXN_END_TRANSPORT, now);
            return;
        }
        if (t->interval < UINT32_MAX / 2)
            t->interval *= 2;
        arm(t, TM_RETRANS, now + t->interval);
        return;
    case TM_END:
        switch ((csip_txn_state)t->state) {
        case CSIP_TXN_CALLING: /* Timer B */
            l->stats.timeouts++;
            client_fail(t, 408, CSIP_TXN_END_TIMEOUT, now);
            return;
        case CSIP_TXN_COMPLETED: /* Timer D */
        case CSIP_TXN_ACCEPTED:  /* Timer M */
            txn_end(t, CSIP_TXN_END_NORMAL, now);
            return;
        case CSIP_TXN_TRYING:
        case CSIP_TXN_PROCEEDING:
        case CSIP_TXN_CONFIRMED:
        case CSIP_TXN_TERMINATED:
            return;
        }
        return;
    case TM_AUX:
        /* RFC 3261 §9.1: no final response 64*T1 after the CANCEL: the INVITE
         * transaction is considered cancelled and destroyed. */
        if (t->state == CSIP_TXN_CALLING || t->state == CSIP_TXN_PROCEEDING) {
            l->stats.timeouts++;
            client_fail(t, 408, CSIP_TXN_END_TIMEOUT, now);
        }
        return;
    default:
        return;
    }
}

static void nict_timer(csip_txn *t, int slot, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    switch (slot) {
    case TM_RETRANS: /* Timer E: doubling up to T2 in Trying, T2 in Proceeding */
        if ((t->state != CSIP_TXN_TRYING && t->state != CSIP_TXN_PROCEEDING) || !t->out)
            return;
        if (client_send(t, t->out, t->out_len, true) != 0) {
            client_fail(t, 503, CSIP_TXN_END_TRANSPORT, now);
            return;
        }
        if (t->state == CSIP_TXN_PROCEEDING)
            t->interval = l->t2;
        else
            t->interval = t->interval >= l->t2 / 2 ? l->t2 : 2 * t->interval;
        arm(t, TM_RETRANS, now + t->interval);
        return;
    case TM_END:
        switch ((csip_txn_state)t->state) {
        case CSIP_TXN_TRYING: /* Timer F */
        case CSIP_TXN_PROCEEDING:
            l->stats.timeouts++;
            client_fail(t, 408, CSIP_TXN_END_TIMEOUT, now);
            return;
        case CSIP_TXN_COMPLETED: /* Timer K */
            txn_end(t, CSIP_TXN_END_NORMAL, now);
            return;
        case CSIP_TXN_CALLING:
        case CSIP_TXN_CONFIRMED:
        case CSIP_TXN_ACCEPTED:
        case CSIP_TXN_TERMINATED:
            return;
        }
        return;
    default:
        return;
    }
}

/* ------------------------------------------------------------------------- */
/* Server transactions (RFC 3261 §17.2, RFC 6026 §7.1) */

/* 100 Trying built by the transaction (§17.2.1: no To tag added). */
static void ist_send_trying(csip_txn *t, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    csip_msg *resp = NULL;
    char *buf = NULL;
    uint32_t len = 0;
    t->flags |= TXF_PROVISIONAL;
    disarm(t, TM_AUX);
    if (csip_response_for(t->req, 100, NULL, CSIP_STR_NULL, l->mem, &resp) != 0 ||
        print_alloc(l->mem, resp, &buf, &len) != 0) {
        csip_msg_free(resp);
        return; /* best effort: the next retransmission tries again */
    }
    csip_msg_free(resp);
    set_out(t, buf, len);
    if (server_send(t, buf, len, false) != 0)
        txn_end(t, CSIP_TXN_END_TRANSPORT, now);
}

/* A retransmission of the request that created a server transaction. */
static void server_retransmission(csip_txn *t, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    l->stats.absorbed++;
    bool resend = false;
    switch ((csip_txn_state)t->state) {
    case CSIP_TXN_PROCEEDING:
        if (t->kind == CSIP_TXN_INVITE_SERVER && !(t->flags & TXF_PROVISIONAL)) {
            ist_send_trying(t, now);
            return;
        }
        resend = true;
        break;
    case CSIP_TXN_COMPLETED:
        resend = true;
        break;
    case CSIP_TXN_TRYING:    /* non-INVITE, nothing sent yet: absorbed */
    case CSIP_TXN_CONFIRMED: /* absorbed */
    case CSIP_TXN_ACCEPTED:  /* RFC 6026 §7.1: absorbed */
    case CSIP_TXN_CALLING:
    case CSIP_TXN_TERMINATED:
        break;
    }
    if (resend && t->out && server_send(t, t->out, t->out_len, true) != 0)
        txn_end(t, CSIP_TXN_END_TRANSPORT, now);
}

/* An ACK that matched an INVITE server transaction. */
static void ist_ack(csip_txn *t, const csip_msg *ack, const csip_addr *src, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    switch ((csip_txn_state)t->state) {
    case CSIP_TXN_COMPLETED:
        /* Confirmed; Timer I: T4 unreliable, 0 reliable. Nothing is sent
         * again from here: the final response goes. */
        t->state = CSIP_TXN_CONFIRMED;
        t->tm[TM_RETRANS] = TXN_NEVER;
        drop_out(t);
        arm(t, TM_END, now + ((t->flags & TXF_RELIABLE) ? 0u : l->t4));
        return;
    case CSIP_TXN_ACCEPTED:
        /* RFC 6026 §7.1: the ACK of the 2xx goes to the TU. */
        up_request(l, NULL, ack, src);
        return;
    case CSIP_TXN_CALLING:
    case CSIP_TXN_TRYING:
    case CSIP_TXN_PROCEEDING:
    case CSIP_TXN_CONFIRMED:
    case CSIP_TXN_TERMINATED:
        l->stats.absorbed++;
        return;
    }
}

static void ist_timer(csip_txn *t, int slot, uint64_t now)
{
    csip_txn_layer *l = t->layer;
    switch (slot) {
    case TM_RETRANS: /* Timer G: retransmit the final, doubling up to T2 */
        if (t->state != CSIP_TXN_COMPLETED)
            return;
        if (server_send(t, t->out, t->out_len, true) != 0) {
            txn_end(t, CSIP_TXN_END_TRANSPORT, now);
            return;
        }
        t->interval = t->interval >= l->t2 / 2 ? l->t2 : 2 * t->interval;
        arm(t, TM_RETRANS, now + t->interval);
        return;
    case TM_END:
        switch ((csip_txn_state)t->state) {
        case CSIP_TXN_COMPLETED: /* Timer H: the ACK never came */
            l->stats.timeouts++;
            txn_end(t, CSIP_TXN_END_TIMEOUT, now);
            return;
        case CSIP_TXN_CONFIRMED: /* Timer I */
        case CSIP_TXN_ACCEPTED:  /* Timer L */
            txn_end(t, CSIP_TXN_END_NORMAL, now);
            return;
        case CSIP_TXN_CALLING:
        case CSIP_TXN_TRYING:
        case CSIP_TXN_PROCEEDING:
        case CSIP_TXN_TERMINATED:
            return;
        }
        return;
    case TM_AUX: /* §17.2.1: 100 Trying when the TU has not answered in time */
        if (t->state == CSIP_TXN_PROCEEDING && !(t->flags & TXF_PROVISIONAL)) {
            ist_send_trying(t, now);
        }
        return;
    default:
        return;
    }
}

static void nist_timer(csip_txn *t, int slot, uint64_t now)
{
    if (slot == TM_END && t->state == CSIP_TXN_COMPLETED) /* Timer J */
        txn_end(t, CSIP_TXN_END_NORMAL, now);
}

/* ------------------------------------------------------------------------- */
/* Receiving */

/* A deterministic To tag for stateless responses (RFC 3261 §8.2.7 wants the
 * same tag for a retransmission of the same request). */
static csip_str stateless_tag(const csip_txn_layer *l, const csip_msg *req, char buf[17])
{
    static const char hex[] = "0123456789abcdef";
    const csip_via *via;
    csip_str cid = CSIP_STR_NULL;
    uint64_t h = 0;
    if (csip_msg_via(req, 0, &via) == 0)
        h = csip__txn_hash(l->hkey, via->raw.p, via->raw.len, false);
    if (csip_msg_call_id(req, &cid) == 0)
        h ^= csip__txn_hash(l->hkey, cid.p, cid.len, false) * 3u;
    for (int i = 0; i < 16; i++)
        buf[i] = hex[(h >> (4 * i)) & 0xf];
    buf[16] = 0;
    return (csip_str){buf, 16};
}

/*
 * Answers a request outside any transaction (malformed, overload), to the
 * address it came from. Whatever of Via, From, To, Call-ID and CSeq it has is
 * copied as received (RFC 4475 §3.1.2: a request missing some, or with one
 * that does not parse, still gets its 400). A request without any Via line
 * cannot carry a response back, and an ACK is never answered.
 */
static int answer_stateless(csip_txn_layer *l, const csip_msg *req, int code, const char *reason,
                            const csip_addr *src)
{
    if (csip_msg_method(req) == CSIP_METHOD_ACK || !csip_msg_hdr_find(req, CSIP_HDR_VIA) || !src ||
        src->family == 0)
        return CSIP_ERR_INVALID_ARG;
    char tag[17];
    csip_msg *resp = NULL;
    int rc = csip_response_for(req, code, reason, stateless_tag(l, req, tag), l->mem, &resp);
    if (rc != 0)
        return rc;
    csip_addr dst = *src; /* a top Via that does not parse: its source port */
    const csip_via *via;
    if (csip_msg_via(req, 0, &via) == 0)
        rc = response_dest(via, src, &dst);
    if (rc == 0)
        rc = send_printed(l, resp, &dst);
    csip_msg_free(resp);
    return rc;
}

static void reject_malformed(csip_txn_layer *l, const csip_msg *m, const csip_parse_error *err,
                             const csip_addr *src)
{
    if (m && csip_msg_is_request(m) && err->status >= 300 && err->status <= 699 &&
        answer_stateless(l, m, err->status, err->reason, src) == 0) {
        l->stats.malformed_answered++;
        return;
    }
    l->stats.malformed_dropped++;
}

static int server_new(csip_txn_layer *l, csip_msg *m, const csip_via *via, const csip_addr *src,
                      uint64_t now, csip_txn **out)
{
    *out = NULL;
    csip_txn *t = txn_alloc(l);
    if (!t)
        return CSIP_ERR_NOMEM;
    bool invite = csip_msg_method(m) == CSIP_METHOD_INVITE;
    t->kind = (uint8_t)(invite ? CSIP_TXN_INVITE_SERVER : CSIP_TXN_NON_INVITE_SERVER);
    t->state = (uint8_t)(invite ? CSIP_TXN_PROCEEDING : CSIP_TXN_TRYING);
    t->req = m;
    t->via = via;
    t->peer = *src;
    if (csip_transport_reliable((csip_transport)src->transport))
        t->flags |= TXF_RELIABLE;
    if (has_cookie(via->branch)) {
        t->hash = hash_branch(l, via->branch);
    } else {
        csip_str cid;
        const csip_cseq *cseq;
        (void)csip_msg_call_id(m, &cid); /* validated */
        (void)csip_msg_cseq(m, &cseq);
        t->flags |= TXF_2543;
        t->hash = hash_2543(l, cid, cseq->number);
    }
    csip__txn_table_insert(l, t);
    if (invite)
        arm(t, TM_AUX, now + l->trying);
    *out = t;
    return 0;
}

/*
 * RFC 3261 §18.2.1 and RFC 3581 §4: a server notes where a request came from
 * in its top Via: `received` when the sent-by host is not the source address
 * (always when the Via asks for rport), and the source port as the value of
 * an empty `rport`. The line is rewritten through the message's edit API, so
 * the other lines keep their bytes. Returns 0, or CSIP_ERR_NOMEM.
 */
static int stamp_via(csip_msg *m, const csip_addr *src)
{
    const csip_via *v;
    if (csip_msg_via(m, 0, &v) < 0 || src->family == 0)
        return 0;
    csip_addr host;
    bool same = false;
    csip_str h = v->host;
    if (v->host_type == CSIP_HOST_IPV6 && h.len >= 2) {
        h.p++;
        h.len -= 2;
    }
    if (v->host_type != CSIP_HOST_NAME && csip_addr_set_ip(&host, h) == 0)
        same =
            host.family == src->family && memcmp(host.ip, src->ip, src->family == 4 ? 4 : 16) == 0;
    bool need_received = !same || v->has_rport;
    bool need_rport = v->has_rport && !v->rport_has_value;
    if (!need_received && !need_rport)
        return 0;

    char ip[64], buf[1024];
    csip_addr a = *src;
    a.port = 0;
    int n = csip_addr_format(&a, ip, sizeof ip); /* "1.2.3.4:0" or "[v6]:0" */
    if (n < 0)
        return 0;
    size_t iplen = (size_t)n - 2; /* drop ":0" */
    const char *ipp = ip;
    if (ip[0] == '[') { /* received = IPv6address, without brackets */
        ipp++;
        iplen -= 2;
    }
    /* the first Via value up to its parameters, then the parameters less
     * received and rport, then the new ones, then the rest of the line */
    const csip_hdr *line = csip_msg_hdr_find(m, CSIP_HDR_VIA);
    size_t pos = 0;
    while (csip_msg_hdr_at(m, pos) != line)
        pos++;
    const char *vend = v->raw.p + v->raw.len;
    const char *pstart = vend;
    if (v->params.p) {
        /* the ';' before the parameters: params starts after the white space
         * that may follow it ("; branch=…") */
        pstart = v->params.p;
        while (pstart > line->value.p && pstart[-1] != ';')
            pstart--;
        pstart--;
    }
    size_t len = 0;
#define PUT(ptr, l)                                                                                \
    do {                                                                                           \
        if (len + (l) > sizeof buf)                                                                \
            return 0; /* an absurd Via: leave it as it is */                                       \
        memcpy(buf + len, (ptr), (l));                                                             \
        len += (l);                                                                                \
    } while (0)
    PUT(line->value.p, (size_t)(pstart - line->value.p));
    csip_str rest = v->params;
    csip_param prm;
    while (rest.len && csip_param_next(&rest, &prm) == 1) {
        if (csip_str_ieq_c(prm.name, "received") || csip_str_ieq_c(prm.name, "rport"))
            continue;
        PUT(";", 1);
        PUT(prm.name.p, prm.name.len);
        if (prm.value.p) {
            PUT("=", 1);
            PUT(prm.value.p, prm.value.len);
        }
    }
    PUT(";received=", 10);
    PUT(ipp, iplen);
    if (v->has_rport) {
        char port[16];
        int pl =
            snprintf(port, sizeof port, ";rport=%u", (unsigned)(need_rport ? src->port : v->rport));
        PUT(port, (size_t)pl);
    }
    PUT(vend, (size_t)(line->value.p + line->value.len - vend));
#undef PUT
    /* a folded line (CRLF and white space, RFC 3261 §7.3.1) is written back
     * unfolded: the folding is linear white space, a space says the same */
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    return csip_msg_hdr_set(m, pos, (csip_str){buf, len}) == CSIP_ERR_NOMEM ? CSIP_ERR_NOMEM : 0;
}

static int recv_request(csip_txn_layer *l, csip_msg *m, const csip_addr *src, uint64_t now)
{
    if (stamp_via(m, src) == CSIP_ERR_NOMEM) {
        l->stats.malformed_dropped++;
        csip_msg_free(m);
        return CSIP_ERR_NOMEM;
    }
    const csip_via *via;
    if (csip_msg_via(m, 0, &via) != 0) { /* validated, but check the stamped line again */
        l->stats.malformed_dropped++;
        csip_msg_free(m);
        return 0;
    }
    bool rfc3261 = has_cookie(via->branch);
    csip_method mid = csip_msg_method(m);
    csip_txn *t;

    if (mid == CSIP_METHOD_ACK) {
        t = rfc3261 ? find_server(l, via, CSIP_STR_NULL, true) : find_2543(l, m, M2543_ACK);
        if (t)
            ist_ack(t, m, src, now);
        else
            up_request(l, NULL, m, src); /* the ACK of a 2xx: the TU's */
        csip_msg_free(m);
        return 0;
    }
    t = rfc3261 ? find_server(l, via, csip_msg_method_name(m), false)
                : find_2543(l, m, M2543_REQUEST);
    if (t) {
        server_retransmission(t, now);
        csip_msg_free(m);
        return 0;
    }
    if (l->count >= l->max_txns) {
        l->stats.overload_rejected++;
        (void)answer_stateless(l, m, 503, NULL, src);
        csip_msg_free(m);
        return 0;
    }
    int rc = server_new(l, m, via, src, now, &t);
    if (rc != 0) {
        csip_msg_free(m);
        return rc;
    }
    up_request(l, t, m, src);
    return 0;
}

static void recv_response(csip_txn_layer *l, csip_msg *m, const csip_addr *src, uint64_t now)
{
    const csip_via *via;
    const csip_cseq *cseq;
    csip_txn *t = NULL;
    if (csip_msg_via(m, 0, &via) == 0 && csip_msg_cseq(m, &cseq) == 0 && via->branch.p)
        t = find_client(l, via->branch, cseq->method);
    if (!t) {
        l->stats.stray_responses++;
        if (l->cb.on_stray_response) {
            l->busy++;
            l->cb.on_stray_response(l, m, src, l->user_data);
            l->busy--;
        }
    } else if (t->kind == CSIP_TXN_INVITE_CLIENT) {
        ict_response(t, m, csip_msg_status(m), now);
    } else {
        nict_response(t, m, csip_msg_status(m), now);
    }
    csip_msg_free(m);
}

int csip_txn_layer_recv(csip_txn_layer *l, const void *data, size_t len, const csip_addr *src,
                        uint64_t now_ms)
{
    if (!l || !src || (!data && len))
        return CSIP_ERR_INVALID_ARG;
    l->stats.received++;
    csip_msg *m = NULL;
    csip_parse_error err;
    memset(&err, 0, sizeof err);
    bool stream = src->transport == CSIP_TP_TCP || src->transport == CSIP_TP_TLS;
    int rc = stream ? csip_msg_parse_stream(data, len, &l->popts, &m, &err)
                    : csip_msg_parse(data, len, &l->popts, &m, &err);
    if (rc == 0)
        rc = csip_msg_validate(m, &err);
    if (rc == CSIP_ERR_NOMEM) {
        l->stats.malformed_dropped++;
        csip_msg_free(m);
        return CSIP_ERR_NOMEM;
    }
    if (rc != 0) {
        reject_malformed(l, m, &err, src);
        csip_msg_free(m);
        return 0;
    }
    if (csip_msg_is_request(m))
        return recv_request(l, m, src, now_ms);
    recv_response(l, m, src, now_ms);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Timers */

uint64_t csip_txn_layer_next_expiry(const csip_txn_layer *l)
{
    const csip_txn *t = l ? csip__txn_earliest(l) : NULL;
    return t ? t->due : TXN_NEVER;
}

void csip_txn_layer_handle_expiry(csip_txn_layer *l, uint64_t now_ms)
{
    if (!l || l->busy || l->freeing)
        return;
    csip_txn *t;
    while ((t = csip__txn_earliest(l)) != NULL && t->due <= now_ms) {
        int slot = 0;
        for (int i = 1; i < TM__COUNT; i++)
            if (t->tm[i] < t->tm[slot])
                slot = i;
        t->tm[slot] = TXN_NEVER;
        csip__txn_heap_update(l, t);
        if (t->state == CSIP_TXN_TERMINATED) {
            if (slot == TM_END)
                txn_finalize(t, (csip_txn_end)t->end);
            continue;
        }
        switch ((csip_txn_kind)t->kind) {
        case CSIP_TXN_INVITE_CLIENT:
            ict_timer(t, slot, now_ms);
            break;
        case CSIP_TXN_NON_INVITE_CLIENT:
            nict_timer(t, slot, now_ms);
            break;
        case CSIP_TXN_INVITE_SERVER:
            ist_timer(t, slot, now_ms);
            break;
        case CSIP_TXN_NON_INVITE_SERVER:
            nist_timer(t, slot, now_ms);
            break;
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Public API */

int csip_txn_layer_new(const csip_txn_opts *opts, const csip_txn_callbacks *cb, void *user_data,
                       csip_txn_layer **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!cb || !cb->send)
        return CSIP_ERR_INVALID_ARG;
    const csip_mem *mem = opts ? opts->mem : NULL;
    csip_txn_layer *l = csip__malloc(mem, sizeof *l);
    if (!l)
        return CSIP_ERR_NOMEM;
    memset(l, 0, sizeof *l);
    l->mem = mem;
    l->cb = *cb;
    l->user_data = user_data;
    csip_txn_timers tm = {0, 0, 0, 0};
    if (opts) {
        tm = opts->timers;
        l->max_txns = opts->max_txns;
        l->popts.limits = opts->limits;
        l->drop_completed = opts->drop_completed_requests;
    }
    l->popts.mem = mem;
    l->t1 = tm.t1_ms ? tm.t1_ms : 500u;
    l->t2 = tm.t2_ms ? tm.t2_ms : 4000u;
    l->t4 = tm.t4_ms ? tm.t4_ms : 5000u;
    l->trying = tm.trying_ms ? tm.trying_ms : 200u;
    if (!l->max_txns)
        l->max_txns = DEFAULT_MAX_TXNS;
    /* A random hash key: a peer cannot choose branches that share a chain. */
    if (RAND_bytes((unsigned char *)l->hkey, (int)sizeof l->hkey) != 1 ||
        csip__txn_table_init(l) != 0) {
        csip__free(mem, l);
        return CSIP_ERR_NOMEM;
    }
    *out = l;
    return 0;
}

void csip_txn_layer_free(csip_txn_layer *l)
{
    if (!l)
        return;
    l->freeing = true;
    csip_txn *t;
    while ((t = csip__txn_table_any(l)) != NULL)
        txn_finalize(t, CSIP_TXN_END_DESTROYED);
    csip__txn_table_free(l);
    csip__free(l->mem, l);
}

size_t csip_txn_layer_count(const csip_txn_layer *l)
{
    return l ? l->count : 0;
}

void csip_txn_layer_stats(const csip_txn_layer *l, csip_txn_stats *out)
{
    if (l && out)
        *out = l->stats;
}

int csip_txn_new_branch(char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (!out || cap < COOKIE_LEN + 22u + 1u)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    unsigned char r[17]; /* 136 bits; 22 characters carry 132 of them */
    if (RAND_bytes(r, (int)sizeof r) != 1)
        return CSIP_ERR_FATAL;
    memcpy(out, COOKIE, COOKIE_LEN);
    for (size_t i = 0; i < 22; i++) {
        size_t bit = i * 6, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)r[byte] << 8 | r[byte + 1];
        out[COOKIE_LEN + i] = b64[(v >> (10 - shift)) & 0x3f];
    }
    out[COOKIE_LEN + 22] = 0;
    return (int)(COOKIE_LEN + 22);
}

/* RFC 3261 §9.1: the INVITE client transaction gets at most 64*T1 from now
 * to receive a final response; if none comes, a 408 goes up and it ends. The
 * earliest guard armed holds (a CANCEL, csip_txn_client_abandon()). */
static void arm_guard(csip_txn *inv, uint64_t now)
{
    uint64_t at = now + t64(inv->layer->t1);
    if (at < inv->tm[TM_AUX])
        arm(inv, TM_AUX, at);
}

int csip_txn_client_new(csip_txn_layer *l, csip_msg *req, const csip_addr *dst, void *txn_user_data,
                        uint64_t now_ms, csip_txn **out)
{
    if (out)
        *out = NULL;
    const csip_via *via;
    const csip_cseq *cseq;
    if (!l || !req || !dst || l->freeing || !csip_msg_is_request(req) ||
        csip_msg_method(req) == CSIP_METHOD_ACK || csip_msg_via(req, 0, &via) != 0 ||
        !has_cookie(via->branch) || csip_msg_cseq(req, &cseq) != 0) {
        csip_msg_free(req);
        return CSIP_ERR_INVALID_ARG;
    }
    uint64_t h = hash_branch(l, via->branch);
    if (find_client_h(l, h, via->branch, csip_msg_method_name(req))) {
        csip_msg_free(req);
        return CSIP_ERR_INVALID_ARG;
    }
    csip_txn *t = txn_alloc(l);
    if (!t) {
        csip_msg_free(req);
        return CSIP_ERR_NOMEM;
    }
    t->req = req;
    char *buf = NULL;
    uint32_t len = 0;
    int rc = print_alloc(l->mem, req, &buf, &len);
    if (rc != 0) {
        txn_release(t);
        return rc;
    }
    /* An unedited request prints as the bytes it was parsed from: send
     * those, and keep no copy. */
    csip_str raw = csip_msg_raw(req);
    if (raw.len == len && memcmp(raw.p, buf, len) == 0) {
        csip__free(l->mem, buf);
        t->out = raw.p;
        t->out_len = len;
        t->flags |= TXF_OUT_RAW;
    } else {
        set_out(t, buf, len);
    }
    bool invite = csip_msg_method(req) == CSIP_METHOD_INVITE;
    t->kind = (uint8_t)(invite ? CSIP_TXN_INVITE_CLIENT : CSIP_TXN_NON_INVITE_CLIENT);
    t->state = (uint8_t)(invite ? CSIP_TXN_CALLING : CSIP_TXN_TRYING);
    t->via = via;
    t->peer = *dst;
    t->user_data = txn_user_data;
    t->hash = h;
    bool reliable = csip_transport_reliable((csip_transport)dst->transport);
    if (reliable)
        t->flags |= TXF_RELIABLE;
    csip__txn_table_insert(l, t);
    /* Timers A/E (T1, unreliable only) and B/F (64*T1). */
    t->interval = l->t1;
    if (!reliable)
        t->tm[TM_RETRANS] = now_ms + l->t1;
    arm(t, TM_END, now_ms + t64(l->t1));

    if (csip_msg_method(req) == CSIP_METHOD_CANCEL) {
        /* §9.1: the CANCEL carries the INVITE's branch. Give the INVITE
         * transaction 64*T1 from now to end. */
        csip_txn *inv = find_client_h(l, h, via->branch, CSIP_STR("INVITE"));
        if (inv && (inv->state == CSIP_TXN_CALLING || inv->state == CSIP_TXN_PROCEEDING))
            arm_guard(inv, now_ms);
    }
    if (out)
        *out = t;
    bool failed = client_send(t, t->out, t->out_len, false) != 0;
    if (failed || reliable)
        drop_out(t); /* nothing will send it again */
    if (failed)
        client_fail(t, 503, CSIP_TXN_END_TRANSPORT, now_ms); /* §17.1.4 */
    return 0;
}

int csip_txn_client_abandon(csip_txn *ct, uint64_t now_ms)
{
    if (!ct || !is_client(ct) || ct->layer->freeing)
        return CSIP_ERR_INVALID_ARG;
    bool waiting = ct->state == CSIP_TXN_CALLING || ct->state == CSIP_TXN_TRYING ||
                   ct->state == CSIP_TXN_PROCEEDING;
    if (!waiting)
        return 0; /* the final response went up already, or it has ended */
    if (ct->kind == CSIP_TXN_INVITE_CLIENT)
        arm_guard(ct, now_ms);
    else
        client_fail(ct, 408, CSIP_TXN_END_TIMEOUT, now_ms);
    return 0;
}

/* The response belongs to the request: same top Via branch (or the same top
 * Via without one) and the same CSeq. */
static bool response_matches(const csip_txn *st, const csip_msg *resp)
{
    /* built from this request, Via and CSeq untouched: matches */
    if (csip__msg_answers(resp, st->req))
        return true;
    const csip_via *v;
    const csip_cseq *q2;
    if (csip_msg_via(resp, 0, &v) != 0 || csip_msg_cseq(resp, &q2) != 0)
        return false;
    if (st->via->branch.p ? !csip_str_ieq(st->via->branch, v->branch)
                          : !csip_str_eq(st->via->raw, v->raw))
        return false;
    if (st->flags & TXF_COMPACT) /* the request let go: what it kept */
        return ((const txn_compact *)(const void *)st->ack)->cseq == q2->number &&
               csip_str_eq(method_of(st), q2->method);
    const csip_cseq *q1;
    return csip_msg_cseq(st->req, &q1) == 0 && q1->number == q2->number &&
           csip_str_eq(q1->method, q2->method);
}

/*
 * RFC 6026 §7.1: a 2xx the TU passes to an Accepted INVITE server transaction
 * (a UAS core retransmitting its 2xx, a proxy forwarding another branch's)
 * goes to the transport, where the first 2xx went. Nothing is kept and the
 * state stays: a failed send is counted, as for the first 2xx.
 */
static int respond_again(csip_txn *st, csip_msg *resp)
{
    csip_txn_layer *l = st->layer;
    char *buf = NULL;
    uint32_t len = 0;
    int rc = print_alloc(l->mem, resp, &buf, &len);
    csip_msg_free(resp);
    if (rc != 0)
        return rc;
    (void)server_send(st, buf, len, true);
    csip__free(l->mem, buf);
    return 0;
}

int csip_txn_respond_stateless(csip_txn *st, csip_msg *resp, uint64_t now_ms)
{
    if (!st || !resp || st->kind != CSIP_TXN_NON_INVITE_SERVER || csip_msg_is_request(resp) ||
        csip_msg_status(resp) < 200) {
        csip_msg_free(resp);
        return CSIP_ERR_INVALID_ARG;
    }
    csip_txn_layer *l = st->layer;
    if (l->freeing || (st->state != CSIP_TXN_TRYING && st->state != CSIP_TXN_PROCEEDING) ||
        !response_matches(st, resp)) {
        csip_msg_free(resp);
        return CSIP_ERR_INVALID_ARG;
    }
    /* No Completed state: nothing is kept to answer a retransmission with,
     * so the response is printed on the stack, sent, and the transaction
     * ends (no copy, no Timer J, no compaction). */
    char stack[2048], *b;
    int n = print_any(l->mem, resp, stack, sizeof stack, &b);
    csip_msg_free(resp);
    if (n < 0)
        return n; /* nothing sent, the state unchanged (as csip_txn_respond) */
    int rc = server_send(st, b, (size_t)n, false);
    if (b != stack)
        csip__free(l->mem, b);
    if (rc == 0)
        st->state = CSIP_TXN_COMPLETED; /* answered: the state it ends from */
    txn_end(st, rc == 0 ? CSIP_TXN_END_NORMAL : CSIP_TXN_END_TRANSPORT, now_ms);
    return 0;
}

/* A non-INVITE server transaction sends the response in out (code): a
 * provisional leaves it Proceeding; a final completes it (Timer J: 64*T1
 * unreliable, 0 reliable) and lets its request go. */
static int nist_send(csip_txn *st, int code, uint64_t now_ms)
{
    csip_txn_layer *l = st->layer;
    st->flags &= (uint8_t)~TXF_PREPARED;
    if (code < 200) {
        st->state = CSIP_TXN_PROCEEDING;
    } else {
        st->state = CSIP_TXN_COMPLETED;
        arm(st, TM_END, now_ms + ((st->flags & TXF_RELIABLE) ? 0u : t64(l->t1)));
    }
    if (server_send(st, st->out, st->out_len, false) != 0)
        txn_end(st, CSIP_TXN_END_TRANSPORT, now_ms);
    if (code >= 200)
        compact(st);
    return 0;
}

int csip_txn_respond(csip_txn *st, csip_msg *resp, uint64_t now_ms)
{
    if (!st || !resp) {
        csip_msg_free(resp);
        return CSIP_ERR_INVALID_ARG;
    }
    csip_txn_layer *l = st->layer;
    int code = csip_msg_status(resp);
    bool ok =
        !l->freeing && !is_client(st) && !csip_msg_is_request(resp) && code >= 100 && code <= 699;
    bool again = false;
    if (ok && st->kind == CSIP_TXN_INVITE_SERVER) {
        again = st->state == CSIP_TXN_ACCEPTED;
        ok = again ? code >= 200 && code < 300 : st->state == CSIP_TXN_PROCEEDING;
    } else if (ok) {
        ok = st->state == CSIP_TXN_TRYING || st->state == CSIP_TXN_PROCEEDING;
    }
    if (!ok || !response_matches(st, resp)) {
        csip_msg_free(resp);
        return CSIP_ERR_INVALID_ARG;
    }
    if (again)
        return respond_again(st, resp);
    char *buf = NULL, *tag = NULL;
    uint32_t len = 0;
    int rc = print_alloc(l->mem, resp, &buf, &len);
    bool keep_tag =
        rc == 0 && code >= 200 && (st->flags & TXF_2543) && st->kind == CSIP_TXN_INVITE_SERVER;
    csip_str to_tag = keep_tag ? to_tag_of(resp) : CSIP_STR_NULL;
    if (keep_tag && to_tag.len) {
        tag = csip__malloc(l->mem, to_tag.len);
        if (!tag)
            rc = CSIP_ERR_NOMEM;
        else
            memcpy(tag, to_tag.p, to_tag.len);
    }
    csip_msg_free(resp);
    if (rc != 0) {
        csip__free(l->mem, buf);
        return rc;
    }
    if (keep_tag) {
        st->flags |= TXF_TO_TAG;
        st->to_tag = tag;
        st->to_tag_len = tag ? (uint32_t)to_tag.len : 0;
    }
    set_out(st, buf, len);
    bool reliable = (st->flags & TXF_RELIABLE) != 0;

    if (st->kind == CSIP_TXN_INVITE_SERVER) {
        st->tm[TM_AUX] = TXN_NEVER;
        if (code < 200) {
            st->flags |= TXF_PROVISIONAL;
            csip__txn_heap_update(l, st);
            if (server_send(st, buf, len, false) != 0)
                txn_end(st, CSIP_TXN_END_TRANSPORT, now_ms);
        } else if (code < 300) {
            /* RFC 6026 §7.1: Accepted, Timer L. A transport error leaves the
             * state as it is; the TU retransmits the 2xx itself. */
            st->state = CSIP_TXN_ACCEPTED;
            arm(st, TM_END, now_ms + t64(l->t1));
            (void)server_send(st, buf, len, false);
            drop_out(st);
        } else {
            /* Completed: Timer G (T1, unreliable) and Timer H (64*T1). */
            st->state = CSIP_TXN_COMPLETED;
            st->interval = l->t1;
            if (!reliable)
                st->tm[TM_RETRANS] = now_ms + l->t1;
            arm(st, TM_END, now_ms + t64(l->t1));
            if (server_send(st, buf, len, false) != 0)
                txn_end(st, CSIP_TXN_END_TRANSPORT, now_ms);
        }
        return 0;
    }
    return nist_send(st, code, now_ms);
}

int csip_txn_prepare(csip_txn *st, csip_msg *resp)
{
    if (!st || !resp || st->kind != CSIP_TXN_NON_INVITE_SERVER || st->state != CSIP_TXN_TRYING ||
        st->layer->freeing || csip_msg_is_request(resp) || csip_msg_status(resp) < 200 ||
        csip_msg_status(resp) > 699 || !response_matches(st, resp)) {
        csip_msg_free(resp);
        return CSIP_ERR_INVALID_ARG;
    }
    char *buf = NULL;
    uint32_t len = 0;
    int rc = print_alloc(st->layer->mem, resp, &buf, &len);
    csip_msg_free(resp);
    if (rc != 0)
        return rc; /* a response prepared before stays */
    set_out(st, buf, len);
    st->flags |= TXF_PREPARED;
    compact(st);
    return 0;
}

/* The status code of a response printed by csip_msg_print ("SIP/2.0 200 …"). */
static int printed_status(const char *p, uint32_t len)
{
    if (len < 12 || p[7] != ' ')
        return 0;
    int code = 0;
    for (int i = 8; i < 11; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        code = code * 10 + (p[i] - '0');
    }
    return code;
}

/* The prepared response with another status: the prepared one parsed, and
 * its Via, From, To, Call-ID and CSeq lines copied (csip_response_for). */
static int restate(csip_txn *st, int code, const char *reason)
{
    csip_txn_layer *l = st->layer;
    csip_msg *prep = NULL, *resp = NULL;
    int rc = csip_msg_parse(st->out, st->out_len, &l->popts, &prep, NULL);
    if (rc == 0)
        rc = csip_response_for(prep, code, reason, CSIP_STR_NULL, l->mem, &resp);
    csip_msg_free(prep);
    char *buf = NULL;
    uint32_t len = 0;
    if (rc == 0)
        rc = print_alloc(l->mem, resp, &buf, &len);
    csip_msg_free(resp);
    if (rc == 0)
        set_out(st, buf, len);
    return rc;
}

int csip_txn_send_prepared(csip_txn *st, int code, const char *reason, uint64_t now_ms)
{
    if (!st || !(st->flags & TXF_PREPARED) || st->state != CSIP_TXN_TRYING || st->layer->freeing ||
        (code && (code < 200 || code > 699)))
        return CSIP_ERR_INVALID_ARG;
    if (code) {
        int rc = restate(st, code, reason);
        if (rc != 0)
            return rc; /* nothing sent, the prepared response kept */
    } else {
        code = printed_status(st->out, st->out_len);
        if (code < 200)
            return CSIP_ERR_INVALID_ARG; /* never: csip_txn_prepare printed a final */
    }
    return nist_send(st, code, now_ms);
}

int csip_txn_layer_send_stateless(csip_txn_layer *l, const csip_msg *msg, const csip_addr *dst,
                                  uint64_t now_ms)
{
    (void)now_ms;
    if (!l || !msg)
        return CSIP_ERR_INVALID_ARG;
    csip_addr d;
    if (!dst) {
        if (csip_msg_is_request(msg))
            return CSIP_ERR_INVALID_ARG;
        int rc = csip_txn_response_dest(msg, NULL, &d);
        if (rc != 0)
            return rc;
        dst = &d;
    }
    return send_printed(l, msg, dst);
}

int csip_txn_response_dest(const csip_msg *msg, const csip_addr *request_src, csip_addr *out)
{
    const csip_via *via;
    if (!msg || !out || csip_msg_via(msg, 0, &via) != 0)
        return CSIP_ERR_INVALID_ARG;
    return response_dest(via, request_src, out);
}

csip_txn *csip_txn_layer_find_invite(csip_txn_layer *l, const csip_msg *cancel)
{
    const csip_via *via;
    if (!l || !cancel || !csip_msg_is_request(cancel) ||
        csip_msg_method(cancel) != CSIP_METHOD_CANCEL || csip_msg_via(cancel, 0, &via) != 0)
        return NULL;
    csip_txn *t = has_cookie(via->branch) ? find_server(l, via, CSIP_STR_NULL, true)
                                          : find_2543(l, cancel, M2543_CANCEL);
    return t && t->state != CSIP_TXN_TERMINATED ? t : NULL;
}

csip_txn_kind csip_txn_kind_of(const csip_txn *t)
{
    return (csip_txn_kind)t->kind;
}

csip_txn_state csip_txn_state_of(const csip_txn *t)
{
    return (csip_txn_state)t->state;
}

csip_txn_state csip_txn_end_state(const csip_txn *t)
{
    return (csip_txn_state)(t->state == CSIP_TXN_TERMINATED ? t->end_state : t->state);
}

const csip_msg *csip_txn_request(const csip_txn *t)
{
    return t->req;
}

const csip_addr *csip_txn_peer(const csip_txn *t)
{
    return &t->peer;
}

void *csip_txn_user_data(const csip_txn *t)
{
    return t->user_data;
}

void csip_txn_set_user_data(csip_txn *t, void *user_data)
{
    t->user_data = user_data;
}

csip_txn_layer *csip_txn_layer_of(const csip_txn *t)
{
    return t->layer;
}
