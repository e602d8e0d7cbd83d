/*
 * Every transaction timer fires when RFC 3261 §17 and RFC 6026 say, asserted
 * on the virtual clock of the simulated network: A and B, E and F (capped at
 * T2, T2 in Proceeding), D (32 s unreliable, 0 reliable), G and H, I, J, K, L
 * and M, 100 Trying after 200 ms, custom T1/T2/T4, transport errors, the
 * §9.1 guard (CANCEL, csip_txn_client_abandon), a lost 2xx retransmitted by
 * the TU through its Accepted transaction.
 *
 * Two endpoints: the client A at 10.0.0.1:5060 and the server B at
 * 10.0.0.2:5060, 10 ms apart unless a test says otherwise.
 */
#include "check.h"
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOG 256

typedef struct rec {
    uint64_t t;
    int ep;        /* 0 = A, 1 = B */
    int fate;      /* sim_fate, for wire records */
    int status;    /* response status (wire, on_response) */
    int why;       /* on_terminated */
    int state;     /* on_terminated: csip_txn_end_state() */
    bool null;     /* on_response with resp NULL */
    char line[40]; /* wire: start of the first line */
} rec;

typedef struct world world;
typedef void (*server_fn)(world *w, csip_txn *st, const csip_msg *req);

struct world {
    sim *s;
    sim_ep *a, *b;
    rec wire[MAX_LOG];
    size_t nwire;
    rec resp[MAX_LOG]; /* client on_response */
    size_t nresp;
    rec term[MAX_LOG]; /* on_terminated, both sides */
    size_t nterm;
    rec reqs[MAX_LOG]; /* server on_request (line = method, status 1 when st NULL) */
    size_t nreqs;
    server_fn on_req;
    int code;     /* status the server answers with */
    csip_txn *st; /* last server transaction */
    csip_msg *last_ack;
    bool ack_2xx; /* the client TU ACKs 2xx */
    uint32_t ack_seq;
};

static world W;

static int ep_index(const sim_ep *ep)
{
    return ep == W.a ? 0 : ep == W.b ? 1 : 2;
}

static void on_wire(sim *s, const sim_event *ev, void *ud)
{
    (void)s;
    (void)ud;
    if (W.nwire == MAX_LOG || ev->fate == SIM_DELIVERED)
        return;
    rec *r = &W.wire[W.nwire++];
    memset(r, 0, sizeof *r);
    r->t = ev->t;
    r->ep = ep_index(ev->from);
    r->fate = (int)ev->fate;
    size_t n = 0;
    while (n < ev->len && n < sizeof r->line - 1 && ev->data[n] != '\r')
        n++;
    memcpy(r->line, ev->data, n);
    r->line[n] = 0;
    if (n > 12 && memcmp(r->line, "SIP/2.0 ", 8) == 0)
        r->status = (r->line[8] - '0') * 100 + (r->line[9] - '0') * 10 + (r->line[10] - '0');
}

/* Sent times of the messages from ep whose first line starts with prefix. */
static size_t sends(int ep, const char *prefix, uint64_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < W.nwire; i++)
        if (W.wire[i].ep == ep && strncmp(W.wire[i].line, prefix, strlen(prefix)) == 0 && n < cap)
            out[n++] = W.wire[i].t;
    return n;
}

static void a_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status, void *ud)
{
    (void)ct;
    (void)ud;
    if (W.nresp < MAX_LOG) {
        rec *r = &W.resp[W.nresp++];
        memset(r, 0, sizeof *r);
        r->t = sim_now(W.s);
        r->status = status;
        r->null = resp == NULL;
    }
    if (resp && status >= 200 && status < 300 && W.ack_2xx) {
        /* The TU's ACK of a 2xx (RFC 3261 §13.2.2.4): a new branch, To from the 2xx. */
        const csip_nameaddr *to;
        char branch[40], tag[64];
        snprintf(branch, sizeof branch, "z9hG4bKack%u", ++W.ack_seq);
        if (csip_msg_to(resp, &to) != 0 || to->tag.len >= sizeof tag)
            abort();
        memcpy(tag, to->tag.p, to->tag.len);
        tag[to->tag.len] = 0;
        csip_msg *ack = sim_request(W.a, sim_addr(W.b), "ACK", "b", branch, "call1", 1, tag, NULL);
        EXPECT_OK(csip_txn_layer_send_stateless(l, ack, sim_addr(W.b), sim_now(W.s)));
        csip_msg_free(ack);
    }
}

static void on_term(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)ud;
    if (W.nterm < MAX_LOG) {
        rec *r = &W.term[W.nterm++];
        memset(r, 0, sizeof *r);
        r->t = sim_now(W.s);
        r->ep = l == sim_layer(W.a) ? 0 : 1;
        r->why = (int)why;
        r->state = (int)csip_txn_end_state(t);
    }
    if (t == W.st)
        W.st = NULL;
}

static void b_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                      void *ud)
{
    (void)l;
    (void)src;
    (void)ud;
    if (W.nreqs < MAX_LOG) {
        rec *r = &W.reqs[W.nreqs++];
        memset(r, 0, sizeof *r);
        r->t = sim_now(W.s);
        r->status = st == NULL;
        csip_str m = csip_msg_method_name(req);
        size_t n = m.len < sizeof r->line - 1 ? m.len : sizeof r->line - 1;
        memcpy(r->line, m.p, n);
        r->line[n] = 0;
    }
    if (!st) {
        if (csip_msg_method(req) == CSIP_METHOD_ACK) {
            csip_msg_free(W.last_ack);
            W.last_ack = NULL;
            csip_str raw = csip_msg_raw(req);
            EXPECT_OK(csip_msg_parse(raw.p, raw.len, NULL, &W.last_ack, NULL));
        }
        return;
    }
    W.st = st;
    if (W.on_req)
        W.on_req(&W, st, req);
}

/* Server behaviours. */
static void answer_now(world *w, csip_txn *st, const csip_msg *req)
{
    EXPECT_OK(csip_txn_respond(st, sim_response(req, w->code, "bt"), sim_now(w->s)));
}

static void answer_100(world *w, csip_txn *st, const csip_msg *req)
{
    EXPECT_OK(csip_txn_respond(st, sim_response(req, 100, NULL), sim_now(w->s)));
}

static void answer_later(sim *s, void *arg)
{
    world *w = arg;
    if (w->st)
        EXPECT_OK(csip_txn_respond(w->st, sim_response(csip_txn_request(w->st), w->code, "bt"),
                                   sim_now(s)));
}

static void answer_at_1000(world *w, csip_txn *st, const csip_msg *req)
{
    (void)st;
    (void)req;
    sim_at(w->s, 1000, answer_later, w);
}

static void ring_at_100(sim *s, void *arg)
{
    world *w = arg;
    if (w->st)
        EXPECT_OK(
            csip_txn_respond(w->st, sim_response(csip_txn_request(w->st), 180, "bt"), sim_now(s)));
}

static void ring_then_answer(world *w, csip_txn *st, const csip_msg *req)
{
    (void)st;
    (void)req;
    sim_at(w->s, 100, ring_at_100, w);
    sim_at(w->s, 1000, answer_later, w);
}

static void setup(csip_transport tp, const csip_txn_timers *timers)
{
    csip_msg_free(W.last_ack);
    memset(&W, 0, sizeof W);
    W.s = sim_new(1);
    csip_txn_opts opts;
    memset(&opts, 0, sizeof opts);
    if (timers)
        opts.timers = *timers;
    csip_txn_callbacks ca = {NULL, NULL, a_response, NULL, on_term};
    csip_txn_callbacks cb = {NULL, b_request, NULL, NULL, on_term};
    W.a = sim_endpoint(W.s, "10.0.0.1", 5060, tp, &opts, &ca, NULL);
    W.b = sim_endpoint(W.s, "10.0.0.2", 5060, tp, &opts, &cb, NULL);
    sim_trace(W.s, on_wire, NULL);
}

static void teardown(void)
{
    EXPECT_TRUE(sim_idle(W.s));
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.a)), 0);
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.b)), 0);
    sim_free(W.s);
    W.s = NULL;
    csip_msg_free(W.last_ack);
    W.last_ack = NULL;
}

/* Starts a client transaction from A at now to dst (B unless given). */
static csip_txn *start(const char *method, const csip_addr *dst, const char *extra)
{
    csip_txn *ct = NULL;
    if (!dst)
        dst = sim_addr(W.b);
    csip_msg *req = sim_request(W.a, dst, method, "b", "z9hG4bKt1", "call1", 1, NULL, extra);
    EXPECT_OK(csip_txn_client_new(sim_layer(W.a), req, dst, NULL, sim_now(W.s), &ct));
    return ct;
}

static void expect_times(const uint64_t *got, size_t n, const uint64_t *want, size_t m)
{
    EXPECT_EQ(n, m);
    for (size_t i = 0; i < n && i < m; i++)
        if (got[i] != want[i]) {
            CHECK_FAIL_("retransmission %zu at %" PRIu64 " ms, want %" PRIu64, i, got[i], want[i]);
            return;
        }
}

/* A black hole at 10.0.0.9: nothing answers. */
static csip_addr hole(csip_transport tp)
{
    csip_addr a;
    memset(&a, 0, sizeof a);
    csip_addr_set_ip(&a, CSIP_STR("10.0.0.9"));
    a.port = 5060;
    a.transport = (uint8_t)tp;
    return a;
}

static void test_timer_a_b(void)
{
    setup(CSIP_TP_UDP, NULL);
    csip_addr h = hole(CSIP_TP_UDP);
    start("INVITE", &h, NULL);
    sim_run(W.s, UINT64_MAX);
    uint64_t t[32];
    size_t n = sends(0, "INVITE", t, 32);
    static const uint64_t want[] = {0, 500, 1500, 3500, 7500, 15500, 31500};
    expect_times(t, n, want, 7);
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].t, 32000); /* Timer B = 64*T1 */
    EXPECT_EQ(W.resp[0].status, 408);
    EXPECT_TRUE(W.resp[0].null);
    ASSERT_EQ(W.nterm, 1);
    EXPECT_EQ(W.term[0].t, 32000);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TIMEOUT);
    csip_txn_stats st;
    csip_txn_layer_stats(sim_layer(W.a), &st);
    EXPECT_EQ(st.retransmitted, 6);
    EXPECT_EQ(st.timeouts, 1);
    teardown();
}

static void test_timer_b_reliable(void)
{
    /* TCP: no Timer A, Timer B still 64*T1. A listening but mute server. */
    setup(CSIP_TP_TCP, NULL);
    W.on_req = NULL;
    start("INVITE", NULL, NULL);
    sim_run(W.s, 31000);
    /* the server's 100 Trying stops nothing on the client's side here: it arrives in Calling */
    uint64_t t[32];
    EXPECT_EQ(sends(0, "INVITE", t, 32), 1);
    EXPECT_EQ(sends(1, "SIP/2.0 100", t, 32), 1);
    EXPECT_EQ(t[0], 210); /* 100 Trying 200 ms after the INVITE arrived */
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].status, 100);
    /* Proceeding: the client waits for the TU; free the layers with live transactions. */
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.a)), 1);
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.b)), 1);
    sim_free(W.s);
    ASSERT_EQ(W.nterm, 2);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_DESTROYED);
    EXPECT_EQ(W.term[1].why, CSIP_TXN_END_DESTROYED);
    W.s = NULL;

    setup(CSIP_TP_TCP, NULL);
    csip_addr h = hole(CSIP_TP_TCP);
    h.port = 5070; /* routed to nobody: the send fails at once (§17.1.4) */
    start("INVITE", &h, NULL);
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].status, 503);
    EXPECT_TRUE(W.resp[0].null);
    EXPECT_EQ(W.nterm, 0); /* on_terminated comes from the expiry run */
    sim_run(W.s, UINT64_MAX);
    ASSERT_EQ(W.nterm, 1);
    EXPECT_EQ(W.term[0].t, 0);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TRANSPORT);
    teardown();
}

static void test_timer_e_f(void)
{
    setup(CSIP_TP_UDP, NULL);
    csip_addr h = hole(CSIP_TP_UDP);
    start("OPTIONS", &h, NULL);
    sim_run(W.s, UINT64_MAX);
    uint64_t t[32];
    size_t n = sends(0, "OPTIONS", t, 32);
    /* T1 doubling, capped at T2 = 4 s, until Timer F = 64*T1 */
    static const uint64_t want[] = {0,     500,   1500,  3500,  7500, 11500,
                                    15500, 19500, 23500, 27500, 31500};
    expect_times(t, n, want, 11);
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].t, 32000);
    EXPECT_EQ(W.resp[0].status, 408);
    ASSERT_EQ(W.nterm, 1);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TIMEOUT);
    teardown();
}

static void test_timer_e_proceeding(void)
{
    /* A provisional response moves the client to Proceeding: Timer E then
     * fires every T2. The server answers retransmissions with its 100. */
    setup(CSIP_TP_UDP, NULL);
    W.on_req = answer_100;
    start("OPTIONS", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    uint64_t t[32];
    size_t n = sends(0, "OPTIONS", t, 32);
    static const uint64_t want[] = {0, 500, 4500, 8500, 12500, 16500, 20500, 24500, 28500};
    expect_times(t, n, want, 9);
    n = sends(1, "SIP/2.0 100", t, 32);
    EXPECT_EQ(n, 9); /* once, then for each retransmission */
    ASSERT_GE(W.nresp, 2);
    EXPECT_EQ(W.resp[0].status, 100);
    EXPECT_EQ(W.resp[0].t, 20);
    EXPECT_EQ(W.resp[W.nresp - 1].status, 408);
    EXPECT_EQ(W.resp[W.nresp - 1].t, 32000);
    /* The server's TU answers at last: a stray response at the client. */
    ASSERT_TRUE(W.st != NULL);
    EXPECT_OK(
        csip_txn_respond(W.st, sim_response(csip_txn_request(W.st), 200, "bt"), sim_now(W.s)));
    sim_run(W.s, UINT64_MAX);
    csip_txn_stats st;
    csip_txn_layer_stats(sim_layer(W.a), &st);
    EXPECT_EQ(st.stray_responses, 1);
    teardown();
}

static void test_timer_d_i(void)
{
    static const char route[] =
        "Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\n";
    for (int tcp = 0; tcp < 2; tcp++) {
        setup(tcp ? CSIP_TP_TCP : CSIP_TP_UDP, NULL);
        W.on_req = answer_now;
        W.code = 486;
        start("INVITE", NULL, route);
        sim_run(W.s, UINT64_MAX);
        ASSERT_EQ(W.nresp, 1);
        EXPECT_EQ(W.resp[0].status, 486);
        EXPECT_EQ(W.resp[0].t, 20);
        uint64_t t[8];
        ASSERT_EQ(sends(0, "ACK", t, 8), 1);
        EXPECT_EQ(t[0], 20);
        EXPECT_EQ(sends(1, "SIP/2.0 486", t, 8), 1); /* the ACK arrived at 30: no Timer G */
        ASSERT_EQ(W.nterm, 2);
        int srv = W.term[0].ep == 1 ? 0 : 1;
        /* server: Timer I (T4 = 5 s on UDP, 0 on TCP) from the ACK at 30 */
        EXPECT_EQ(W.term[srv].ep, 1);
        EXPECT_EQ(W.term[srv].t, tcp ? 30 : 5030);
        EXPECT_EQ(W.term[srv].why, CSIP_TXN_END_NORMAL);
        /* client: Timer D (32 s on UDP, 0 on TCP) from the 486 at 20 */
        EXPECT_EQ(W.term[1 - srv].ep, 0);
        EXPECT_EQ(W.term[1 - srv].t, tcp ? 20 : 32020);
        EXPECT_EQ(W.term[1 - srv].why, CSIP_TXN_END_NORMAL);
        EXPECT_EQ(W.nreqs, 1); /* the ACK of a non-2xx never reaches the TU */
        teardown();
    }
}

static void test_timer_g_h(void)
{
    /* The 486 reaches the client; every ACK is lost (partition from 15 ms). */
    setup(CSIP_TP_UDP, NULL);
    W.on_req = answer_now;
    W.code = 486;
    sim_partition(W.s, W.a, W.b, 15, UINT64_MAX);
    start("INVITE", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    uint64_t t[32];
    size_t n = sends(1, "SIP/2.0 486", t, 32);
    /* sent at 10, Timer G from T1 doubling to T2, until Timer H at 10 + 64*T1 */
    static const uint64_t want[] = {10,    510,   1510,  3510,  7510, 11510,
                                    15510, 19510, 23510, 27510, 31510};
    expect_times(t, n, want, 11);
    ASSERT_EQ(W.nterm, 2);
    EXPECT_EQ(W.term[0].ep, 1);
    EXPECT_EQ(W.term[0].t, 32010);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TIMEOUT);
    EXPECT_EQ(W.term[1].ep, 0);
    EXPECT_EQ(W.term[1].t, 32020);

    /* On TCP there is no Timer G; H still runs 64*T1. */
    teardown();
    setup(CSIP_TP_TCP, NULL);
    W.on_req = answer_now;
    W.code = 486;
    /* the client's ACK never arrives: drop A -> B after the INVITE */
    sim_partition(W.s, W.a, W.b, 15, UINT64_MAX);
    start("INVITE", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    n = sends(1, "SIP/2.0 486", t, 32);
    EXPECT_EQ(n, 1);
    ASSERT_EQ(W.nterm, 2);
    /* the client's ACK send failed (partition): its transaction ends at once */
    EXPECT_EQ(W.term[0].ep, 0);
    EXPECT_EQ(W.term[0].t, 20);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TRANSPORT);
    EXPECT_EQ(W.term[1].ep, 1);
    EXPECT_EQ(W.term[1].t, 32010);
    EXPECT_EQ(W.term[1].why, CSIP_TXN_END_TIMEOUT);
    ASSERT_EQ(W.nresp, 1); /* the final response only: no 503 after it */
    EXPECT_EQ(W.resp[0].status, 486);
    teardown();
}

static void test_timer_j_k(void)
{
    for (int tcp = 0; tcp < 2; tcp++) {
        setup(tcp ? CSIP_TP_TCP : CSIP_TP_UDP, NULL);
        W.on_req = answer_now;
        W.code = 200;
        start("OPTIONS", NULL, NULL);
        sim_run(W.s, UINT64_MAX);
        ASSERT_EQ(W.nresp, 1);
        EXPECT_EQ(W.resp[0].status, 200);
        ASSERT_EQ(W.nterm, 2);
        /* client: Timer K (T4 on UDP, 0 on TCP) from the 200 at 20 */
        int c = W.term[0].ep == 0 ? 0 : 1;
        EXPECT_EQ(W.term[c].ep, 0);
        EXPECT_EQ(W.term[c].t, tcp ? 20 : 5020);
        /* server: Timer J (64*T1 on UDP, 0 on TCP) from the 200 at 10 */
        EXPECT_EQ(W.term[1 - c].ep, 1);
        EXPECT_EQ(W.term[1 - c].t, tcp ? 10 : 32010);
        teardown();
    }
}

static csip_msg *ok_2xx;

static void resend_ok(sim *s, void *arg)
{
    (void)arg;
    EXPECT_OK(csip_txn_layer_send_stateless(sim_layer(W.b), ok_2xx, NULL, sim_now(s)));
}

static void answer_200_keep(world *w, csip_txn *st, const csip_msg *req)
{
    ok_2xx = sim_response(req, 200, "bt");
    csip_msg *copy = sim_response(req, 200, "bt");
    EXPECT_OK(csip_txn_respond(st, copy, sim_now(w->s)));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_ACCEPTED);
    /* the transaction refuses anything but a 2xx now */
    EXPECT_EQ(csip_txn_respond(st, sim_response(req, 486, "bt"), sim_now(w->s)),
              CSIP_ERR_INVALID_ARG);
    /* this TU retransmits its 2xx outside the transaction (see
     * test_2xx_through_txn for the other way) */
    sim_at(w->s, sim_now(w->s) + 500, resend_ok, w);
    sim_at(w->s, sim_now(w->s) + 1500, resend_ok, w);
}

static void test_timer_l_m(void)
{
    for (int tcp = 0; tcp < 2; tcp++) {
        setup(tcp ? CSIP_TP_TCP : CSIP_TP_UDP, NULL);
        W.on_req = answer_200_keep;
        W.ack_2xx = true;
        start("INVITE", NULL, NULL);
        sim_run(W.s, UINT64_MAX);
        /* every 2xx goes up (RFC 6026 §7.2): the first and both retransmissions */
        ASSERT_EQ(W.nresp, 3);
        EXPECT_EQ(W.resp[0].t, 20);
        EXPECT_EQ(W.resp[1].t, 520);
        EXPECT_EQ(W.resp[2].t, 1520);
        for (int i = 0; i < 3; i++)
            EXPECT_EQ(W.resp[i].status, 200);
        /* the TU's ACKs reach B's TU with no transaction */
        size_t acks = 0;
        for (size_t i = 0; i < W.nreqs; i++)
            if (strcmp(W.reqs[i].line, "ACK") == 0) {
                EXPECT_EQ(W.reqs[i].status, 1);
                acks++;
            }
        EXPECT_EQ(acks, 3);
        ASSERT_EQ(W.nterm, 2);
        /* Timer L at the server (64*T1 from the 2xx at 10), Timer M at the
         * client (64*T1 from the 2xx at 20), on any transport */
        EXPECT_EQ(W.term[0].ep, 1);
        EXPECT_EQ(W.term[0].t, 32010);
        EXPECT_EQ(W.term[1].ep, 0);
        EXPECT_EQ(W.term[1].t, 32020);
        EXPECT_EQ(W.term[0].why, CSIP_TXN_END_NORMAL);
        EXPECT_EQ(W.term[1].why, CSIP_TXN_END_NORMAL);
        EXPECT_EQ(W.term[0].state, CSIP_TXN_ACCEPTED);
        EXPECT_EQ(W.term[1].state, CSIP_TXN_ACCEPTED);
        csip_msg_free(ok_2xx);
        ok_2xx = NULL;
        teardown();
    }
}

static void test_trying(void)
{
    /* No answer from the TU within 200 ms: the transaction sends 100 Trying,
     * which stops Timer A at the client. */
    setup(CSIP_TP_UDP, NULL);
    W.on_req = answer_at_1000;
    W.code = 486;
    start("INVITE", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    uint64_t t[8];
    ASSERT_EQ(sends(1, "SIP/2.0 100", t, 8), 1);
    EXPECT_EQ(t[0], 210);
    EXPECT_EQ(sends(0, "INVITE", t, 8), 1); /* the 100 arrived at 220, before Timer A */
    ASSERT_EQ(W.nresp, 2);
    EXPECT_EQ(W.resp[0].status, 100);
    EXPECT_EQ(W.resp[1].status, 486);
    EXPECT_EQ(W.resp[1].t, 1010);
    teardown();

    /* A provisional from the TU within 200 ms: no 100 Trying. */
    setup(CSIP_TP_UDP, NULL);
    W.on_req = ring_then_answer;
    W.code = 603;
    start("INVITE", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    EXPECT_EQ(sends(1, "SIP/2.0 100", t, 8), 0);
    ASSERT_EQ(sends(1, "SIP/2.0 180", t, 8), 1);
    EXPECT_EQ(t[0], 100);
    ASSERT_EQ(W.nresp, 2);
    EXPECT_EQ(W.resp[0].status, 180);
    EXPECT_EQ(W.resp[1].status, 603);
    teardown();

    /* Custom trying_ms; an INVITE retransmission before it gets 100 at once. */
    csip_txn_timers tm = {500, 4000, 5000, 2000};
    setup(CSIP_TP_UDP, &tm);
    W.on_req = answer_at_1000;
    W.code = 486;
    start("INVITE", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    ASSERT_EQ(sends(1, "SIP/2.0 100", t, 8), 1);
    EXPECT_EQ(t[0], 510); /* the retransmission sent at 500 arrived at 510 */
    teardown();
}

static void test_custom_timers(void)
{
    csip_txn_timers tm = {100, 400, 1000, 0};
    setup(CSIP_TP_UDP, &tm);
    csip_addr h = hole(CSIP_TP_UDP);
    start("INVITE", &h, NULL);
    sim_run(W.s, UINT64_MAX);
    uint64_t t[32];
    size_t n = sends(0, "INVITE", t, 32);
    static const uint64_t inv[] = {0, 100, 300, 700, 1500, 3100, 6300};
    expect_times(t, n, inv, 7);
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].t, 6400); /* Timer B = 64*T1 */
    teardown();

    setup(CSIP_TP_UDP, &tm);
    start("OPTIONS", &h, NULL);
    sim_run(W.s, UINT64_MAX);
    n = sends(0, "OPTIONS", t, 32);
    EXPECT_EQ(n, 18); /* 0, 100, 300, 700, then every T2 = 400 up to 6300 */
    if (n == 18) {
        EXPECT_EQ(t[3], 700);
        EXPECT_EQ(t[4], 1100);
        EXPECT_EQ(t[17], 6300);
    }
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].t, 6400); /* Timer F */
    teardown();

    /* K = T4; D stays at least 32 s; J and H 64*T1; I = T4. */
    setup(CSIP_TP_UDP, &tm);
    W.on_req = answer_now;
    W.code = 200;
    start("OPTIONS", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    ASSERT_EQ(W.nterm, 2);
    EXPECT_EQ(W.term[0].ep, 0);
    EXPECT_EQ(W.term[0].t, 1020); /* K */
    EXPECT_EQ(W.term[1].t, 6410); /* J */
    teardown();

    setup(CSIP_TP_UDP, &tm);
    W.on_req = answer_now;
    W.code = 404;
    start("INVITE", NULL, NULL);
    sim_run(W.s, UINT64_MAX);
    ASSERT_EQ(W.nterm, 2);
    EXPECT_EQ(W.term[0].ep, 1);
    EXPECT_EQ(W.term[0].t, 1030); /* I from the ACK at 30 */
    EXPECT_EQ(W.term[1].ep, 0);
    EXPECT_EQ(W.term[1].t, 32020); /* D: at least 32 s */
    teardown();
}

static void test_cancel_guard(void)
{
    /* §9.1: no final response 64*T1 after the CANCEL: the INVITE client
     * transaction ends with a 408 (the server here never answers the INVITE
     * and answers the CANCEL only). */
    setup(CSIP_TP_UDP, NULL);
    W.on_req = NULL;
    csip_txn *inv = start("INVITE", NULL, NULL);
    ASSERT_TRUE(inv != NULL);
    sim_run(W.s, 1000); /* 100 Trying from the server: Proceeding */
    EXPECT_EQ(csip_txn_state_of(inv), CSIP_TXN_PROCEEDING);
    csip_msg *cancel =
        sim_request(W.a, sim_addr(W.b), "CANCEL", "b", "z9hG4bKt1", "call1", 1, NULL, NULL);
    csip_txn *ct = NULL;
    ASSERT_OK(csip_txn_client_new(sim_layer(W.a), cancel, sim_addr(W.b), NULL, sim_now(W.s), &ct));
    sim_run(W.s, 1100);
    /* the server's TU got the CANCEL; it finds the INVITE and answers only the CANCEL */
    ASSERT_EQ(W.nreqs, 2);
    EXPECT_CSTR(W.reqs[1].line, "CANCEL");
    csip_txn *cst = W.st;
    ASSERT_TRUE(cst != NULL);
    csip_txn *ist = csip_txn_layer_find_invite(sim_layer(W.b), csip_txn_request(cst));
    ASSERT_TRUE(ist != NULL);
    EXPECT_EQ(csip_txn_kind_of(ist), CSIP_TXN_INVITE_SERVER);
    EXPECT_OK(csip_txn_respond(cst, sim_response(csip_txn_request(cst), 200, "bt"), sim_now(W.s)));
    sim_run(W.s, 40000);
    /* CANCEL: 200; INVITE: 408 at 1000 + 64*T1 */
    int got408 = 0;
    for (size_t i = 0; i < W.nresp; i++)
        if (W.resp[i].status == 408) {
            EXPECT_EQ(W.resp[i].t, 33000);
            EXPECT_TRUE(W.resp[i].null);
            got408++;
        }
    EXPECT_EQ(got408, 1);
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.a)), 0);
    /* the server's INVITE transaction is still the TU's to answer */
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.b)), 1);
    ASSERT_OK(csip_txn_respond(ist, sim_response(csip_txn_request(ist), 487, "bt"), sim_now(W.s)));
    sim_run(W.s, UINT64_MAX);
    teardown();
}

/* RFC 3261 §13.3.1.4 with RFC 6026 §7.1: the UAS core retransmits its 2xx
 * through the Accepted server transaction (T1, 2*T1, … up to T2) until the
 * ACK comes. */
static uint32_t g_2xx_interval;

static size_t acks_at_b(void)
{
    size_t n = 0;
    for (size_t i = 0; i < W.nreqs; i++)
        n += strcmp(W.reqs[i].line, "ACK") == 0 && W.reqs[i].status == 1;
    return n;
}

static void resend_2xx_through_txn(sim *s, void *arg)
{
    world *w = arg;
    if (!w->st || acks_at_b())
        return; /* the ACK came: stop */
    EXPECT_OK(
        csip_txn_respond(w->st, sim_response(csip_txn_request(w->st), 200, "bt"), sim_now(s)));
    EXPECT_EQ(csip_txn_state_of(w->st), CSIP_TXN_ACCEPTED);
    g_2xx_interval = g_2xx_interval * 2 < 4000 ? g_2xx_interval * 2 : 4000;
    sim_at(s, sim_now(s) + g_2xx_interval, resend_2xx_through_txn, w);
}

static void answer_200_resend(world *w, csip_txn *st, const csip_msg *req)
{
    EXPECT_OK(csip_txn_respond(st, sim_response(req, 200, "bt"), sim_now(w->s)));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_ACCEPTED); /* even when the send failed */
    g_2xx_interval = 500;
    sim_at(w->s, sim_now(w->s) + g_2xx_interval, resend_2xx_through_txn, w);
}

static void test_2xx_through_txn(void)
{
    for (int tcp = 0; tcp < 2; tcp++) {
        setup(tcp ? CSIP_TP_TCP : CSIP_TP_UDP, NULL);
        W.on_req = answer_200_resend;
        W.ack_2xx = true;
        /* the first 2xx (sent at 10) is lost: dropped on UDP, a failed send on TCP */
        sim_partition(W.s, W.a, W.b, 5, 400);
        start("INVITE", NULL, NULL);
        sim_run(W.s, UINT64_MAX);
        uint64_t t[16];
        size_t n = 0;
        for (size_t i = 0; i < W.nwire; i++)
            if (W.wire[i].ep == 1 && W.wire[i].status == 200 && n < 16)
                t[n++] = W.wire[i].t;
        /* the lost one at 10, the TU's retransmission at 510, then the ACK stops it */
        static const uint64_t want[] = {10, 510};
        expect_times(t, n, want, 2);
        ASSERT_GE(W.nwire, 2);
        size_t lost = 0;
        for (size_t i = 0; i < W.nwire; i++)
            if (W.wire[i].ep == 1 && W.wire[i].status == 200 && W.wire[i].t == 10)
                lost += W.wire[i].fate == SIM_PARTITIONED;
        EXPECT_EQ(lost, 1);
        ASSERT_EQ(W.nresp, 1);
        EXPECT_EQ(W.resp[0].status, 200);
        EXPECT_EQ(W.resp[0].t, 520);
        EXPECT_EQ(acks_at_b(), 1);
        /* the client's own INVITE retransmission (UDP, Timer A at 500) was absorbed */
        EXPECT_EQ(sends(0, "INVITE", t, 16), tcp ? 1 : 2);
        csip_txn_stats st;
        csip_txn_layer_stats(sim_layer(W.b), &st);
        EXPECT_EQ(st.retransmitted, 1);
        EXPECT_EQ(st.transport_errors, tcp ? 1 : 0);
        EXPECT_EQ(st.absorbed, tcp ? 0 : 1);
        /* Timer L from the first 2xx, Timer M from the 2xx the client got */
        ASSERT_EQ(W.nterm, 2);
        EXPECT_EQ(W.term[0].ep, 1);
        EXPECT_EQ(W.term[0].t, 10 + 32000);
        EXPECT_EQ(W.term[0].why, CSIP_TXN_END_NORMAL);
        EXPECT_EQ(W.term[0].state, CSIP_TXN_ACCEPTED);
        EXPECT_EQ(W.term[1].ep, 0);
        EXPECT_EQ(W.term[1].t, 520 + 32000);
        EXPECT_EQ(W.term[1].state, CSIP_TXN_ACCEPTED);
        teardown();
    }
}

/* csip_txn_client_abandon on the wire. */
static csip_txn *g_abandon;

static void abandon_now(sim *s, void *arg)
{
    (void)arg;
    EXPECT_OK(csip_txn_client_abandon(g_abandon, sim_now(s)));
}

static void ring_only(world *w, csip_txn *st, const csip_msg *req)
{
    (void)st;
    (void)req;
    sim_at(w->s, 100, ring_at_100, w);
}

static void test_abandon(void)
{
    /* A ringing INVITE the TU gives up on without a CANCEL: 408 64*T1 later. */
    setup(CSIP_TP_UDP, NULL);
    W.on_req = ring_only;
    g_abandon = start("INVITE", NULL, NULL);
    sim_at(W.s, 2000, abandon_now, NULL);
    sim_run(W.s, 40000);
    ASSERT_EQ(W.nresp, 2);
    EXPECT_EQ(W.resp[0].status, 180);
    EXPECT_EQ(W.resp[1].status, 408);
    EXPECT_TRUE(W.resp[1].null);
    EXPECT_EQ(W.resp[1].t, 2000 + 32000);
    ASSERT_EQ(W.nterm, 1);
    EXPECT_EQ(W.term[0].ep, 0);
    EXPECT_EQ(W.term[0].t, 2000 + 32000);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TIMEOUT);
    EXPECT_EQ(W.term[0].state, CSIP_TXN_PROCEEDING);
    uint64_t t[32];
    EXPECT_EQ(sends(0, "CANCEL", t, 32), 0);
    EXPECT_EQ(sends(0, "INVITE", t, 32), 1); /* the 180 came before Timer A */
    /* the server's TU ends its side: the 487 reaches nobody (a stray response
     * at A, never ACKed), Timer H ends the server transaction */
    ASSERT_TRUE(W.st != NULL);
    EXPECT_OK(
        csip_txn_respond(W.st, sim_response(csip_txn_request(W.st), 487, "bt"), sim_now(W.s)));
    sim_run(W.s, UINT64_MAX);
    csip_txn_stats st;
    csip_txn_layer_stats(sim_layer(W.a), &st);
    EXPECT_GE(st.stray_responses, 1);
    teardown();

    /* A non-INVITE to nobody: the 408 at once, and no retransmission after it. */
    setup(CSIP_TP_UDP, NULL);
    csip_addr h = hole(CSIP_TP_UDP);
    g_abandon = start("OPTIONS", &h, NULL);
    sim_at(W.s, 2000, abandon_now, NULL);
    sim_run(W.s, UINT64_MAX);
    size_t n = sends(0, "OPTIONS", t, 32);
    static const uint64_t want[] = {0, 500, 1500};
    expect_times(t, n, want, 3);
    ASSERT_EQ(W.nresp, 1);
    EXPECT_EQ(W.resp[0].status, 408);
    EXPECT_EQ(W.resp[0].t, 2000);
    ASSERT_EQ(W.nterm, 1);
    EXPECT_EQ(W.term[0].t, 2000);
    EXPECT_EQ(W.term[0].why, CSIP_TXN_END_TIMEOUT);
    EXPECT_EQ(W.term[0].state, CSIP_TXN_TRYING);
    teardown();
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_timer_a_b),    CHECK_TEST(test_timer_b_reliable),
        CHECK_TEST(test_timer_e_f),    CHECK_TEST(test_timer_e_proceeding),
        CHECK_TEST(test_timer_d_i),    CHECK_TEST(test_timer_g_h),
        CHECK_TEST(test_timer_j_k),    CHECK_TEST(test_timer_l_m),
        CHECK_TEST(test_trying),       CHECK_TEST(test_custom_timers),
        CHECK_TEST(test_cancel_guard), CHECK_TEST(test_2xx_through_txn),
        CHECK_TEST(test_abandon),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
