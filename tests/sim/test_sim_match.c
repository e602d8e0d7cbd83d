/*
 * Matching over the simulated network: CANCEL of a ringing INVITE (RFC 3261
 * §9.1, §9.2) with the ACK the client transaction builds for the 487
 * (§17.1.1.3), an RFC 2543 peer (no magic cookie, §17.2.3), malformed
 * requests answered 400, stray responses.
 *
 * The client A (10.0.0.1:5060) and the server B (10.0.0.2:5060) over UDP,
 * 10 ms apart.
 */
#include "check.h"
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOG 128

typedef struct wire {
    uint64_t t;
    bool from_a;
    sim_fate fate;
    char *data;
} wire;

static struct {
    sim *s;
    sim_ep *a, *b;
    wire w[MAX_LOG];
    size_t nw;
    int a_status[MAX_LOG];
    csip_txn *a_txn[MAX_LOG];
    size_t na;
    int stray[MAX_LOG];
    size_t nstray;
    csip_txn *b_st[MAX_LOG];
    char b_method[MAX_LOG][12];
    size_t nb;
    int b_end[MAX_LOG];
    size_t nbend;
    int ring; /* B rings (180) on INVITE */
} W;

static void on_wire(sim *s, const sim_event *ev, void *ud)
{
    (void)s;
    (void)ud;
    if (W.nw == MAX_LOG || ev->fate == SIM_DELIVERED)
        return;
    wire *w = &W.w[W.nw++];
    w->t = ev->t;
    w->from_a = ev->from == W.a;
    w->fate = ev->fate;
    w->data = malloc(ev->len + 1);
    memcpy(w->data, ev->data, ev->len);
    w->data[ev->len] = 0;
}

/* The i-th message B sent whose first line starts with prefix, or NULL. */
static const wire *sent_by(bool from_a, const char *prefix, int nth)
{
    for (size_t i = 0; i < W.nw; i++)
        if (W.w[i].from_a == from_a && strncmp(W.w[i].data, prefix, strlen(prefix)) == 0 &&
            nth-- == 0)
            return &W.w[i];
    return NULL;
}

static void a_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status, void *ud)
{
    (void)l;
    (void)resp;
    (void)ud;
    if (W.na < MAX_LOG) {
        W.a_txn[W.na] = ct;
        W.a_status[W.na++] = status;
    }
}

static void a_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    (void)src;
    (void)ud;
    int code = csip_msg_status(resp);
    if (W.nstray < MAX_LOG)
        W.stray[W.nstray++] = code;
    /* an RFC 2543 UAC ACKs the non-2xx final response itself */
    const csip_cseq *cs;
    if (code >= 300 && csip_msg_cseq(resp, &cs) == 0 && cs->method_id == CSIP_METHOD_INVITE) {
        const csip_nameaddr *to;
        char ack[512];
        ASSERT_OK(csip_msg_to(resp, &to));
        snprintf(ack, sizeof ack,
                 "ACK sip:b@10.0.0.2:5060 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
                 "From: <sip:a@10.0.0.1:5060>;tag=ft\r\n"
                 "To: <sip:b@10.0.0.2:5060>;tag=%.*s\r\n"
                 "Call-ID: old1\r\n"
                 "CSeq: 1 ACK\r\n"
                 "Content-Length: 0\r\n\r\n",
                 (int)to->tag.len, to->tag.p);
        csip_msg *m = NULL;
        ASSERT_OK(csip_msg_parse(ack, strlen(ack), NULL, &m, NULL));
        ASSERT_OK(csip_txn_layer_send_stateless(l, m, sim_addr(W.b), sim_now(W.s)));
        csip_msg_free(m);
    }
}

static void b_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                      void *ud)
{
    (void)src;
    (void)ud;
    if (W.nb < MAX_LOG) {
        W.b_st[W.nb] = st;
        csip_str m = csip_msg_method_name(req);
        snprintf(W.b_method[W.nb], sizeof W.b_method[0], "%.*s", (int)m.len, m.p);
        W.nb++;
    }
    if (!st)
        return;
    uint64_t now = sim_now(W.s);
    switch (csip_msg_method(req)) {
    case CSIP_METHOD_INVITE:
        if (W.ring)
            EXPECT_OK(csip_txn_respond(st, sim_response(req, 180, "bt"), now));
        break;
    case CSIP_METHOD_CANCEL: {
        /* §9.2: 200 to the CANCEL, 487 to the INVITE */
        csip_txn *inv = csip_txn_layer_find_invite(l, req);
        ASSERT_TRUE(inv != NULL);
        EXPECT_OK(csip_txn_respond(st, sim_response(req, 200, "bt"), now));
        EXPECT_OK(csip_txn_respond(inv, sim_response(csip_txn_request(inv), 487, "bt"), now));
        break;
    }
    default:
        break;
    }
}

static void b_end(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)t;
    (void)ud;
    if (W.nbend < MAX_LOG)
        W.b_end[W.nbend++] = (int)why;
}

static void setup(void)
{
    memset(&W, 0, sizeof W);
    W.s = sim_new(7);
    csip_txn_callbacks ca = {NULL, NULL, a_response, a_stray, NULL};
    csip_txn_callbacks cb = {NULL, b_request, NULL, NULL, b_end};
    W.a = sim_endpoint(W.s, "10.0.0.1", 5060, CSIP_TP_UDP, NULL, &ca, NULL);
    W.b = sim_endpoint(W.s, "10.0.0.2", 5060, CSIP_TP_UDP, NULL, &cb, NULL);
    sim_trace(W.s, on_wire, NULL);
}

static void teardown(void)
{
    EXPECT_TRUE(sim_idle(W.s));
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.a)), 0);
    EXPECT_EQ(csip_txn_layer_count(sim_layer(W.b)), 0);
    sim_free(W.s);
    for (size_t i = 0; i < W.nw; i++)
        free(W.w[i].data);
}

static void send_cancel(sim *s, void *arg)
{
    (void)arg;
    csip_msg *c =
        sim_request(W.a, sim_addr(W.b), "CANCEL", "b", "z9hG4bKinv1", "call1", 1, NULL, NULL);
    csip_txn *ct = NULL;
    EXPECT_OK(csip_txn_client_new(sim_layer(W.a), c, sim_addr(W.b), NULL, sim_now(s), &ct));
}

static void test_cancel(void)
{
    setup();
    W.ring = 1;
    csip_msg *inv = sim_request(W.a, sim_addr(W.b), "INVITE", "b", "z9hG4bKinv1", "call1", 1, NULL,
                                "Route: <sip:10.0.0.2;lr>\r\n");
    csip_txn *ict = NULL;
    ASSERT_OK(csip_txn_client_new(sim_layer(W.a), inv, sim_addr(W.b), NULL, 0, &ict));
    sim_at(W.s, 1000, send_cancel, NULL);
    sim_run(W.s, UINT64_MAX);
    /* A: 180, then 200 for the CANCEL and 487 for the INVITE (in either order) */
    ASSERT_EQ(W.na, 3);
    EXPECT_EQ(W.a_status[0], 180);
    EXPECT_TRUE(W.a_txn[0] == ict);
    int got487 = 0, got200 = 0;
    for (size_t i = 1; i < 3; i++) {
        got487 += W.a_status[i] == 487 && W.a_txn[i] == ict;
        got200 += W.a_status[i] == 200 && W.a_txn[i] != ict;
    }
    EXPECT_EQ(got487, 1);
    EXPECT_EQ(got200, 1);
    /* the ACK of the 487, built by A's transaction */
    const wire *ack = sent_by(true, "ACK ", 0);
    ASSERT_TRUE(ack != NULL);
    csip_msg *m = NULL;
    ASSERT_OK(csip_msg_parse(ack->data, strlen(ack->data), NULL, &m, NULL));
    const csip_via *v;
    ASSERT_OK(csip_msg_via(m, 0, &v));
    EXPECT_STR(v->branch, "z9hG4bKinv1");
    const csip_cseq *cs;
    ASSERT_OK(csip_msg_cseq(m, &cs));
    EXPECT_EQ(cs->number, 1);
    EXPECT_STR(cs->method, "ACK");
    const csip_nameaddr *to;
    ASSERT_OK(csip_msg_to(m, &to));
    EXPECT_STR(to->tag, "bt");
    EXPECT_TRUE(csip_msg_hdr_find(m, CSIP_HDR_ROUTE) != NULL);
    csip_msg_free(m);
    EXPECT_TRUE(sent_by(true, "ACK ", 1) == NULL);
    /* B: the INVITE and the CANCEL once each; the ACK matched the INVITE
     * transaction (Confirmed, Timer I) and never reached the TU */
    ASSERT_EQ(W.nb, 2);
    EXPECT_CSTR(W.b_method[0], "INVITE");
    EXPECT_CSTR(W.b_method[1], "CANCEL");
    ASSERT_EQ(W.nbend, 2);
    EXPECT_EQ(W.b_end[0], CSIP_TXN_END_NORMAL);
    EXPECT_EQ(W.b_end[1], CSIP_TXN_END_NORMAL);
    teardown();
}

static void send_raw(sim *s, void *arg)
{
    csip_msg *m = NULL;
    const char *text = arg;
    (void)csip_msg_parse(text, strlen(text), NULL, &m, NULL); /* malformed ones too */
    ASSERT_TRUE(m != NULL);
    EXPECT_OK(csip_txn_layer_send_stateless(sim_layer(W.a), m, sim_addr(W.b), sim_now(s)));
    csip_msg_free(m);
}

static const char old_invite[] = "INVITE sip:b@10.0.0.2:5060 SIP/2.0\r\n"
                                 "Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
                                 "From: <sip:a@10.0.0.1:5060>;tag=ft\r\n"
                                 "To: <sip:b@10.0.0.2:5060>\r\n"
                                 "Call-ID: old1\r\n"
                                 "CSeq: 1 INVITE\r\n"
                                 "Content-Length: 0\r\n\r\n";

static void answer_486(sim *s, void *arg)
{
    (void)arg;
    ASSERT_TRUE(W.nb > 0 && W.b_st[0]);
    EXPECT_OK(csip_txn_respond(W.b_st[0], sim_response(csip_txn_request(W.b_st[0]), 486, "bt"),
                               sim_now(s)));
}

static void test_rfc2543_peer(void)
{
    /* An RFC 2543 UA: no branch; it retransmits the INVITE itself and ACKs
     * the 486. B's transaction absorbs the retransmissions and is
     * confirmed by the ACK (matched by the 486's To tag). */
    setup();
    sim_at(W.s, 0, send_raw, (void *)old_invite);
    sim_at(W.s, 500, send_raw, (void *)old_invite);
    sim_at(W.s, 1500, send_raw, (void *)old_invite);
    sim_at(W.s, 2000, answer_486, NULL);
    sim_at(W.s, 2005, send_raw, (void *)old_invite); /* arrives before the ACK */
    sim_run(W.s, UINT64_MAX);
    ASSERT_EQ(W.nb, 1); /* the INVITE once; the ACK matched */
    /* the 100 Trying at 210, the 486 at 2000 and for the retransmission at 2015 */
    EXPECT_TRUE(sent_by(false, "SIP/2.0 100", 0) != NULL);
    EXPECT_EQ(sent_by(false, "SIP/2.0 100", 0)->t, 210);
    ASSERT_TRUE(sent_by(false, "SIP/2.0 486", 1) != NULL);
    EXPECT_EQ(sent_by(false, "SIP/2.0 486", 1)->t, 2015);
    EXPECT_TRUE(sent_by(false, "SIP/2.0 486", 2) == NULL); /* the ACK stopped Timer G */
    ASSERT_EQ(W.nbend, 1);
    EXPECT_EQ(W.b_end[0], CSIP_TXN_END_NORMAL);
    /* A got the 100 from the first send and both 486 as stray responses */
    EXPECT_GE(W.nstray, 3);
    teardown();
}

static void test_malformed(void)
{
    setup();
    static const char bad[] = "OPTIONS sip:b@10.0.0.2 SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKbad1\r\n"
                              "From: <sip:a@10.0.0.1>;tag=ft\r\n"
                              "To: sip:b@10.0.0.2>\r\n"
                              "Call-ID: bad1\r\n"
                              "CSeq: 1 OPTIONS\r\n"
                              "Content-Length: 0\r\n\r\n";
    /* no Call-ID: still a 400 (RFC 4475 §3.1.2.15 insuf) */
    static const char no_call_id[] = "OPTIONS sip:b@10.0.0.2 SIP/2.0\r\n"
                                       "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKbad2\r\n"
                                       "From: <sip:a@10.0.0.1>;tag=ft\r\n"
                                       "To: <sip:b@10.0.0.2>\r\n"
                                       "CSeq: 1 OPTIONS\r\n"
                                       "Content-Length: 0\r\n\r\n";
    sim_at(W.s, 0, send_raw, (void *)bad);
    sim_at(W.s, 100, send_raw, (void *)no_call_id);
    sim_run(W.s, UINT64_MAX);
    EXPECT_EQ(W.nb, 0);
    const wire *r = sent_by(false, "SIP/2.0 400 ", 0);
    ASSERT_TRUE(r != NULL);
    EXPECT_EQ(r->t, 10);
    r = sent_by(false, "SIP/2.0 400 ", 1);
    ASSERT_TRUE(r != NULL);
    EXPECT_TRUE(sent_by(false, "SIP/2.0", 2) == NULL);
    csip_txn_stats st;
    csip_txn_layer_stats(sim_layer(W.b), &st);
    EXPECT_EQ(st.malformed_answered, 2);
    EXPECT_EQ(st.malformed_dropped, 0);
    /* both 400s carry what was malformed back: A's layer drops them too */
    csip_txn_layer_stats(sim_layer(W.a), &st);
    EXPECT_EQ(st.malformed_dropped, 2);
    EXPECT_EQ(W.nstray, 0);
    teardown();
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_cancel),
        CHECK_TEST(test_rfc2543_peer),
        CHECK_TEST(test_malformed),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
