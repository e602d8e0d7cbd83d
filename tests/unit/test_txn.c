/*
 * The transaction layer driven directly: a capturing send callback and a fake
 * clock, no network. Matching (RFC 3261 §17.1.3, §17.2.3, the RFC 2543
 * fallback, CANCEL §9.2), the ACK of a non-2xx (§17.1.1.3), stray responses,
 * stateless answers to malformed requests and overload, where responses go
 * (§18.2.2, RFC 3581), the API's error paths and ownership, failing
 * allocations, and many transactions at once.
 */
#include "check.h"
#include "txn/txn_int.h"

#define MAX_CAP 64

typedef struct sent {
    csip_addr dst;
    char *data;
    size_t len;
} sent;

typedef struct cap {
    sent out[MAX_CAP];
    int nout;
    int fail_send;              /* send returns an error while set */
    csip_txn *st[MAX_CAP];      /* on_request (NULL for a transaction-less request) */
    char req_via[MAX_CAP][160]; /* the top Via line as the TU saw it */
    char req_method[MAX_CAP][16];
    int nreq;
    int resp_status[MAX_CAP];
    bool resp_null[MAX_CAP];
    csip_txn *resp_txn[MAX_CAP];
    int nresp;
    int nstray;
    csip_txn *term[MAX_CAP];
    csip_txn_end term_why[MAX_CAP];
    csip_txn_state term_state[MAX_CAP]; /* csip_txn_end_state() during on_terminated */
    int nterm;
    /* behaviours */
    int answer;   /* on_request: respond with this status at once (0 = no) */
    bool reenter; /* callbacks call csip_txn_layer_handle_expiry */
    csip_txn_layer *layer;
} cap;

static cap C;
static long g_budget; /* test_failing_alloc: allocations left */

static int cap_send(csip_txn_layer *l, const csip_addr *dst, const void *data, size_t len, void *ud)
{
    (void)l;
    (void)ud;
    if (C.fail_send)
        return CSIP_ERR_TRANSPORT;
    if (C.nout < MAX_CAP) {
        sent *s = &C.out[C.nout++];
        s->dst = *dst;
        s->data = malloc(len + 1);
        memcpy(s->data, data, len);
        s->data[len] = 0;
        s->len = len;
    }
    return 0;
}

static void cap_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                        void *ud)
{
    (void)src;
    (void)ud;
    if (C.nreq < MAX_CAP) {
        C.st[C.nreq] = st;
        csip_str m = csip_msg_method_name(req);
        snprintf(C.req_method[C.nreq], sizeof C.req_method[0], "%.*s", (int)m.len, m.p);
        const csip_hdr *via = csip_msg_hdr_find(req, CSIP_HDR_VIA);
        snprintf(C.req_via[C.nreq], sizeof C.req_via[0], "%.*s", via ? (int)via->value.len : 0,
                 via ? via->value.p : "");
        C.nreq++;
    }
    if (C.reenter)
        csip_txn_layer_handle_expiry(l, UINT64_MAX - 1); /* ignored: a callback is running */
    if (st && C.answer) {
        csip_msg *resp = NULL;
        if (csip_response_for(req, C.answer, NULL, CSIP_STR("srv"), NULL, &resp) == 0) {
            int rc = csip_txn_respond(st, resp, 0);
            EXPECT_TRUE(rc == 0 || (rc == CSIP_ERR_NOMEM && g_budget <= 0));
        }
    }
}

static void cap_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status,
                         void *ud)
{
    (void)ud;
    if (C.nresp < MAX_CAP) {
        C.resp_status[C.nresp] = status;
        C.resp_null[C.nresp] = resp == NULL;
        C.resp_txn[C.nresp] = ct;
        C.nresp++;
    }
    if (C.reenter)
        csip_txn_layer_handle_expiry(l, UINT64_MAX - 1);
}

static void cap_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    (void)l;
    (void)resp;
    (void)src;
    (void)ud;
    C.nstray++;
}

static void cap_term(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)ud;
    if (C.nterm < MAX_CAP) {
        C.term[C.nterm] = t;
        C.term_why[C.nterm] = why;
        C.term_state[C.nterm] = csip_txn_end_state(t);
        C.nterm++;
    }
    EXPECT_EQ(csip_txn_state_of(t), CSIP_TXN_TERMINATED);
}

static const csip_txn_callbacks CB = {cap_send, cap_request, cap_response, cap_stray, cap_term};

static void reset_out(void)
{
    for (int i = 0; i < C.nout; i++)
        free(C.out[i].data);
    C.nout = 0;
}

static csip_txn_layer *setup(const csip_txn_opts *opts)
{
    reset_out();
    memset(&C, 0, sizeof C);
    csip_txn_layer *l = NULL;
    if (csip_txn_layer_new(opts, &CB, NULL, &l) != 0)
        abort();
    C.layer = l;
    return l;
}

static void teardown(csip_txn_layer *l)
{
    csip_txn_layer_free(l);
    reset_out();
}

static csip_addr addr(const char *ip, uint16_t port, csip_transport tp)
{
    csip_addr a;
    memset(&a, 0, sizeof a);
    if (csip_addr_set_ip(&a, csip_str_c(ip)) != 0)
        abort();
    a.port = port;
    a.transport = (uint8_t)tp;
    return a;
}

static char *addr_str(const csip_addr *a)
{
    static char buf[64];
    if (csip_addr_format(a, buf, sizeof buf) < 0)
        snprintf(buf, sizeof buf, "?");
    return buf;
}

static csip_msg *parse(const char *text)
{
    csip_msg *m = NULL;
    if (csip_msg_parse(text, strlen(text), NULL, &m, NULL) != 0)
        abort();
    return m;
}

static int feed(csip_txn_layer *l, const char *text, const csip_addr *src, uint64_t now)
{
    return csip_txn_layer_recv(l, text, strlen(text), src, now);
}

/* A request with one Via; method, branch param string (";branch=..." or ""),
 * From tag, To tag ("" for none), CSeq number. */
static char *req_text(const char *method, const char *via, const char *ftag, const char *ttag,
                      unsigned cseq, const char *cseq_method)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "%s sip:bob@example.com SIP/2.0\r\n"
             "Via: %s\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:alice@example.com>;tag=%s\r\n"
             "To: <sip:bob@example.com>%s%s\r\n"
             "Call-ID: c1@example.com\r\n"
             "CSeq: %u %s\r\n"
             "Content-Length: 0\r\n\r\n",
             method, via, ftag, ttag[0] ? ";tag=" : "", ttag, cseq,
             cseq_method ? cseq_method : method);
    return buf;
}

#define VIA1 "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKaaa"

static int respond(csip_txn *st, int code, uint64_t now);

/* ------------------------------------------------------------------------- */

static void test_branch(void)
{
    char a[30], b[30];
    ASSERT_EQ(csip_txn_new_branch(a, sizeof a), 29);
    ASSERT_EQ(csip_txn_new_branch(b, sizeof b), 29);
    EXPECT_EQ(strncmp(a, "z9hG4bK", 7), 0);
    EXPECT_EQ(strlen(a), 29);
    EXPECT_NE(strcmp(a, b), 0);
    for (int i = 7; i < 29; i++) {
        char ch = a[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        EXPECT_TRUE(ok);
    }
    EXPECT_EQ(csip_txn_new_branch(a, 29), CSIP_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(csip_txn_new_branch(NULL, 64), CSIP_ERR_BUFFER_TOO_SMALL);
}

/* The keyed hash folds case eight bytes at a time: it must agree with
 * hashing the csip__lower()ed bytes, for every byte value and length. */
static void test_hash_fold(void)
{
    const uint64_t key[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    char a[64], b[64];
    int bad = 0;
    for (int v = 0; v < 256; v++) {
        for (size_t n = 0; n <= 24; n++) {
            for (size_t i = 0; i < n; i++) {
                a[i] = (char)(i % 3 == 1 ? v : 'A' + (int)i);
                b[i] = csip__lower(a[i]);
            }
            bad += csip__txn_hash(key, a, n, true) != csip__txn_hash(key, b, n, false);
        }
    }
    uint64_t x = 42;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            a[i] = (char)(x >> 56);
            b[i] = csip__lower(a[i]);
        }
        bad += csip__txn_hash(key, a, n, true) != csip__txn_hash(key, b, n, false);
    }
    EXPECT_EQ(bad, 0);
    /* without folding, case matters; the key matters */
    EXPECT_NE(csip__txn_hash(key, "z9hG4bKabc", 10, false),
              csip__txn_hash(key, "Z9HG4BKABC", 10, false));
    EXPECT_EQ(csip__txn_hash(key, "z9hG4bKabc", 10, true),
              csip__txn_hash(key, "Z9HG4BKABC", 10, true));
    const uint64_t key2[2] = {1, 2};
    EXPECT_NE(csip__txn_hash(key, "z9hG4bKabc", 10, true),
              csip__txn_hash(key2, "z9hG4bKabc", 10, true));
}

static void test_layer_api(void)
{
    csip_txn_layer *l = NULL;
    csip_txn_callbacks none;
    memset(&none, 0, sizeof none);
    EXPECT_EQ(csip_txn_layer_new(NULL, &none, NULL, &l), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(l == NULL);
    EXPECT_EQ(csip_txn_layer_new(NULL, NULL, NULL, &l), CSIP_ERR_INVALID_ARG);
    l = setup(NULL);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX);
    EXPECT_EQ(csip_txn_layer_count(l), 0);
    csip_txn_layer_handle_expiry(l, 1000); /* nothing due: nothing happens */
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_EQ(csip_txn_layer_recv(l, NULL, 5, &src, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_layer_recv(l, "x", 1, NULL, 0), CSIP_ERR_INVALID_ARG);
    csip_txn_layer_free(NULL);
    EXPECT_EQ(csip_txn_layer_count(NULL), 0);
    teardown(l);
}

static void test_client_errors(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_txn *ct = (csip_txn *)&ct;
    /* every refused request is freed (LeakSanitizer checks) */
    EXPECT_EQ(
        csip_txn_client_new(l, parse(req_text("ACK", VIA1, "f", "", 1, NULL)), &dst, NULL, 0, &ct),
        CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(ct == NULL);
    EXPECT_EQ(csip_txn_client_new(l,
                                  parse("SIP/2.0 200 OK\r\nVia: " VIA1 "\r\nFrom: <sip:a@b>;tag=1"
                                        "\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
                                        "Content-Length: 0\r\n\r\n"),
                                  &dst, NULL, 0, &ct),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(
        csip_txn_client_new(l, parse(req_text("OPTIONS", "SIP/2.0/UDP h:5060", "f", "", 1, NULL)),
                            &dst, NULL, 0, &ct),
        CSIP_ERR_INVALID_ARG); /* no branch */
    EXPECT_EQ(csip_txn_client_new(
                  l, parse(req_text("OPTIONS", "SIP/2.0/UDP h:5060;branch=1234", "f", "", 1, NULL)),
                  &dst, NULL, 0, &ct),
              CSIP_ERR_INVALID_ARG); /* no magic cookie */
    EXPECT_EQ(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL)), NULL, NULL,
                                  0, &ct),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_client_new(NULL, parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL)), &dst,
                                  NULL, 0, &ct),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_client_new(l, NULL, &dst, NULL, 0, &ct), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL)), &dst,
                                  (void *)&dst, 0, &ct));
    ASSERT_TRUE(ct != NULL);
    EXPECT_EQ(csip_txn_kind_of(ct), CSIP_TXN_NON_INVITE_CLIENT);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_TRYING);
    EXPECT_TRUE(csip_txn_user_data(ct) == (void *)&dst);
    csip_txn_set_user_data(ct, NULL);
    EXPECT_TRUE(csip_txn_user_data(ct) == NULL);
    EXPECT_TRUE(csip_txn_layer_of(ct) == l);
    EXPECT_TRUE(csip_addr_equal(csip_txn_peer(ct), &dst));
    EXPECT_EQ(csip_msg_method(csip_txn_request(ct)), CSIP_METHOD_OPTIONS);
    /* the same branch and method again: refused; the same branch with CANCEL: fine
     * (a CANCEL carries the branch of the request it cancels) */
    csip_txn *dup = NULL;
    EXPECT_EQ(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL)), &dst, NULL,
                                  0, &dup),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_client_new(
                  l,
                  parse(req_text("OPTIONS", "SIP/2.0/UDP h;branch=Z9HG4BKAAA", "f", "", 1, NULL)),
                  &dst, NULL, 0, &dup),
              CSIP_ERR_INVALID_ARG); /* branches compare without case (RFC 3261 §7.3.1) */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("CANCEL", VIA1, "f", "", 1, NULL)), &dst, NULL,
                                  0, &dup));
    EXPECT_EQ(csip_txn_layer_count(l), 2);
    EXPECT_EQ(C.nout, 2);
    /* a response to the OPTIONS is not one to the CANCEL */
    csip_addr from = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    EXPECT_OK(feed(l,
                   "SIP/2.0 200 OK\r\nVia: " VIA1 "\r\nFrom: <sip:alice@example.com>;tag=f\r\n"
                   "To: <sip:bob@example.com>;tag=t\r\nCall-ID: c1@example.com\r\n"
                   "CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
                   &from, 10));
    ASSERT_EQ(C.nresp, 1);
    EXPECT_TRUE(C.resp_txn[0] == dup);
    EXPECT_EQ(csip_txn_state_of(dup), CSIP_TXN_COMPLETED);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_TRYING);
    teardown(l);
    EXPECT_EQ(C.nterm, 2);
    EXPECT_EQ(C.term_why[0], CSIP_TXN_END_DESTROYED);
    EXPECT_EQ(C.term_why[1], CSIP_TXN_END_DESTROYED);
}

static void test_ack_for_non2xx(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    /* a proxy's request: its own Via on top of the UAC's, a route set, a body */
    const char *inv = "INVITE sip:bob@example.com;transport=udp SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKpx1\r\n"
                      "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKuac;received=192.0.2.9\r\n"
                      "Max-Forwards: 69\r\n"
                      "Route: <sip:p1.example.com;lr>\r\n"
                      "From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n"
                      "To: <sip:bob@example.com>\r\n"
                      "Call-ID: c1@example.com\r\n"
                      "CSeq: 4711 INVITE\r\n"
                      "Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n"
                      "Contact: <sip:alice@192.0.2.9:5080>\r\n"
                      "Content-Type: application/sdp\r\n"
                      "Content-Length: 4\r\n\r\nv=0\n";
    csip_txn *ct = NULL;
    ASSERT_OK(csip_txn_client_new(l, parse(inv), &dst, NULL, 0, &ct));
    ASSERT_EQ(C.nout, 1);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_CALLING);
    const char *busy = "SIP/2.0 486 Busy Here\r\n"
                       "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKpx1\r\n"
                       "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKuac;received=192.0.2.9\r\n"
                       "From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n"
                       "To: <sip:bob@example.com>;tag=b7\r\n"
                       "Call-ID: c1@example.com\r\n"
                       "CSeq: 4711 INVITE\r\n"
                       "Content-Length: 0\r\n\r\n";
    csip_addr from = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    EXPECT_OK(feed(l, busy, &from, 300));
    ASSERT_EQ(C.nresp, 1);
    EXPECT_EQ(C.resp_status[0], 486);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_COMPLETED);
    ASSERT_EQ(C.nout, 2);
    EXPECT_TRUE(csip_addr_equal(&C.out[1].dst, &dst));
    csip_msg *ack = NULL;
    ASSERT_OK(csip_msg_parse(C.out[1].data, C.out[1].len, NULL, &ack, NULL));
    EXPECT_OK(csip_msg_validate(ack, NULL));
    EXPECT_EQ(csip_msg_method(ack), CSIP_METHOD_ACK);
    EXPECT_STR(csip_msg_ruri_raw(ack), "sip:bob@example.com;transport=udp");
    size_t nvia = 0;
    EXPECT_OK(csip_msg_via_count(ack, &nvia));
    EXPECT_EQ(nvia, 1); /* the top Via of the request only */
    const csip_via *v;
    ASSERT_OK(csip_msg_via(ack, 0, &v));
    EXPECT_STR(v->raw, "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKpx1");
    EXPECT_STR(csip_msg_hdr_find(ack, CSIP_HDR_FROM)->value,
               "\"Alice\" <sip:alice@example.com>;tag=f1");
    EXPECT_STR(csip_msg_hdr_find(ack, CSIP_HDR_TO)->value, "<sip:bob@example.com>;tag=b7");
    csip_str cid;
    EXPECT_OK(csip_msg_call_id(ack, &cid));
    EXPECT_STR(cid, "c1@example.com");
    const csip_cseq *cs;
    ASSERT_OK(csip_msg_cseq(ack, &cs));
    EXPECT_EQ(cs->number, 4711);
    EXPECT_STR(cs->method, "ACK");
    const csip_nameaddr *routes;
    size_t nr = 0;
    ASSERT_OK(csip_msg_nameaddrs(ack, CSIP_HDR_ROUTE, &routes, &nr));
    ASSERT_EQ(nr, 3);
    EXPECT_STR(routes[0].uri.host, "p1.example.com");
    EXPECT_STR(routes[2].uri.host, "p3.example.com");
    EXPECT_TRUE(csip_msg_hdr_find(ack, CSIP_HDR_CONTACT) == NULL);
    EXPECT_EQ(csip_msg_body(ack).len, 0);
    uint32_t mf = 0;
    EXPECT_OK(csip_msg_max_forwards(ack, &mf));
    EXPECT_EQ(mf, 70);
    csip_msg_free(ack);

    /* a retransmission of the 486: the same ACK again, nothing to the TU */
    EXPECT_OK(feed(l, busy, &from, 800));
    EXPECT_EQ(C.nresp, 1);
    ASSERT_EQ(C.nout, 3);
    EXPECT_EQ(C.out[2].len, C.out[1].len);
    EXPECT_EQ(memcmp(C.out[2].data, C.out[1].data, C.out[1].len), 0);
    /* Timer D: 32 s */
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 300 + 32000);
    csip_txn_layer_handle_expiry(l, 32299);
    EXPECT_EQ(C.nterm, 0);
    csip_txn_layer_handle_expiry(l, 32300);
    ASSERT_EQ(C.nterm, 1);
    EXPECT_EQ(C.term_why[0], CSIP_TXN_END_NORMAL);
    EXPECT_EQ(csip_txn_layer_count(l), 0);
    csip_txn_stats st;
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.absorbed, 1);
    EXPECT_EQ(st.retransmitted, 1);
    EXPECT_EQ(st.sent, 3);
    EXPECT_EQ(st.received, 2);
    teardown(l);
}

static void test_stray_and_client_matching(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_txn *inv = NULL;
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("INVITE", VIA1, "f", "", 1, NULL)), &dst, NULL,
                                  0, &inv));
#define fmt                                                                                        \
    "SIP/2.0 %d X\r\nVia: %s\r\nFrom: <sip:alice@example.com>;tag=f\r\n"                           \
    "To: <sip:bob@example.com>;tag=t\r\nCall-ID: c1@example.com\r\n"                               \
    "CSeq: 1 %s\r\nContent-Length: 0\r\n\r\n"
    char buf[1024];
    /* another branch; the same branch with another CSeq method: stray */
    snprintf(buf, sizeof buf, fmt, 200, "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKbbb", "INVITE");
    EXPECT_OK(feed(l, buf, &dst, 1));
    snprintf(buf, sizeof buf, fmt, 200, VIA1, "OPTIONS");
    EXPECT_OK(feed(l, buf, &dst, 2));
    snprintf(buf, sizeof buf, fmt, 200, "SIP/2.0/UDP 192.0.2.9:5080", "INVITE");
    EXPECT_OK(feed(l, buf, &dst, 3));
    EXPECT_EQ(C.nstray, 3);
    EXPECT_EQ(C.nresp, 0);
    /* the branch compares without case */
    snprintf(buf, sizeof buf, fmt, 180, "SIP/2.0/UDP 192.0.2.9:5080;branch=Z9HG4BKAAA", "INVITE");
    EXPECT_OK(feed(l, buf, &dst, 4));
    ASSERT_EQ(C.nresp, 1);
    EXPECT_EQ(C.resp_status[0], 180);
    EXPECT_EQ(csip_txn_state_of(inv), CSIP_TXN_PROCEEDING);
    /* Timers A and B are gone in Proceeding */
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX);
    /* 2xx: Accepted; every 2xx goes up, other responses are absorbed */
    snprintf(buf, sizeof buf, fmt, 200, VIA1, "INVITE");
    EXPECT_OK(feed(l, buf, &dst, 5));
    EXPECT_EQ(csip_txn_state_of(inv), CSIP_TXN_ACCEPTED);
    EXPECT_OK(feed(l, buf, &dst, 6));
    snprintf(buf, sizeof buf, fmt, 486, VIA1, "INVITE");
    EXPECT_OK(feed(l, buf, &dst, 7));
    snprintf(buf, sizeof buf, fmt, 183, VIA1, "INVITE");
    EXPECT_OK(feed(l, buf, &dst, 8));
    ASSERT_EQ(C.nresp, 3);
    EXPECT_EQ(C.resp_status[1], 200);
    EXPECT_EQ(C.resp_status[2], 200);
    EXPECT_EQ(C.nout, 1); /* the transaction never ACKs a 2xx */
    /* a malformed response is dropped */
    EXPECT_OK(feed(l,
                   "SIP/2.0 200 OK\r\nVia: " VIA1 "\r\nCall-ID: c1@example.com\r\n"
                   "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                   &dst, 9));
    csip_txn_stats st;
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.stray_responses, 3);
    EXPECT_EQ(st.malformed_dropped, 1);
    EXPECT_EQ(st.malformed_answered, 0);
    EXPECT_EQ(st.absorbed, 2);
    EXPECT_EQ(C.nresp, 3);
    /* Timer M: 64*T1 after the first 2xx */
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 5 + 32000);
    csip_txn_layer_handle_expiry(l, 5 + 32000);
    EXPECT_EQ(C.nterm, 1);
    teardown(l);
#undef fmt
}

static void test_server_matching(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    char inv[2048];
    snprintf(inv, sizeof inv, "%s", req_text("INVITE", VIA1, "f", "", 1, NULL));
    EXPECT_OK(feed(l, inv, &src, 0));
    ASSERT_EQ(C.nreq, 1);
    csip_txn *st = C.st[0];
    ASSERT_TRUE(st != NULL);
    EXPECT_EQ(csip_txn_kind_of(st), CSIP_TXN_INVITE_SERVER);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_PROCEEDING);
    EXPECT_TRUE(csip_addr_equal(csip_txn_peer(st), &src));
    /* a retransmission: absorbed, and 100 Trying at once since the TU has not answered */
    EXPECT_OK(feed(l, inv, &src, 50));
    EXPECT_EQ(C.nreq, 1);
    ASSERT_EQ(C.nout, 1);
    EXPECT_EQ(strncmp(C.out[0].data, "SIP/2.0 100 ", 12), 0);
    EXPECT_TRUE(strstr(C.out[0].data, ";tag=") == NULL ||
                strstr(C.out[0].data, "tag=f") != NULL); /* no To tag on 100 */
    /* another sent-by with the same branch: another transaction */
    EXPECT_OK(feed(
        l, req_text("INVITE", "SIP/2.0/UDP 192.0.2.10:5080;branch=z9hG4bKaaa", "f", "", 1, NULL),
        &src, 60));
    EXPECT_EQ(C.nreq, 2);
    /* the same branch and sent-by, another method: another transaction (CANCEL) */
    EXPECT_OK(feed(l, req_text("CANCEL", VIA1, "f", "", 1, NULL), &src, 70));
    ASSERT_EQ(C.nreq, 3);
    EXPECT_CSTR(C.req_method[2], "CANCEL");
    csip_txn *cst = C.st[2];
    EXPECT_EQ(csip_txn_kind_of(cst), CSIP_TXN_NON_INVITE_SERVER);
    EXPECT_TRUE(csip_txn_layer_find_invite(l, csip_txn_request(cst)) == st);
    /* a CANCEL from another sent-by, or a request that is not a CANCEL, finds nothing */
    csip_msg *other = parse(
        req_text("CANCEL", "SIP/2.0/UDP 192.0.2.11:5080;branch=z9hG4bKaaa", "f", "", 1, NULL));
    EXPECT_TRUE(csip_txn_layer_find_invite(l, other) == NULL);
    csip_msg_free(other);
    EXPECT_TRUE(csip_txn_layer_find_invite(l, csip_txn_request(st)) == NULL);
    EXPECT_TRUE(csip_txn_layer_find_invite(l, NULL) == NULL);
    /* the TU answers the CANCEL 200 and the INVITE 487 (§9.2) */
    EXPECT_OK(respond(cst, 200, 80));
    EXPECT_OK(respond(st, 487, 80));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_COMPLETED);
    int n = C.nout;
    /* an INVITE retransmission in Completed: the 487 again */
    EXPECT_OK(feed(l, inv, &src, 90));
    ASSERT_EQ(C.nout, n + 1);
    EXPECT_EQ(strncmp(C.out[n].data, "SIP/2.0 487", 11), 0);
    /* the ACK (same branch): Confirmed, not passed up; then absorbed */
    EXPECT_OK(feed(l, req_text("ACK", VIA1, "f", "srv", 1, NULL), &src, 100));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_CONFIRMED);
    EXPECT_OK(feed(l, req_text("ACK", VIA1, "f", "srv", 1, NULL), &src, 110));
    EXPECT_OK(feed(l, inv, &src, 120));
    EXPECT_EQ(C.nreq, 3);
    EXPECT_EQ(C.nout, n + 1);
    /* an ACK with another branch (the ACK of a 2xx): to the TU without a transaction */
    EXPECT_OK(feed(
        l, req_text("ACK", "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKack2", "f", "srv", 1, NULL),
        &src, 130));
    ASSERT_EQ(C.nreq, 4);
    EXPECT_TRUE(C.st[3] == NULL);
    EXPECT_CSTR(C.req_method[3], "ACK");
    /* Timer I: T4 after the ACK */
    csip_txn_layer_handle_expiry(l, 100 + 4999);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_CONFIRMED);
    csip_txn_layer_handle_expiry(l, 100 + 5000);
    bool ended = false;
    for (int i = 0; i < C.nterm; i++)
        ended |= C.term[i] == st;
    EXPECT_TRUE(ended);
    csip_txn_stats stats;
    csip_txn_layer_stats(l, &stats);
    EXPECT_EQ(stats.absorbed, 4);
    teardown(l);
}

static int respond(csip_txn *st, int code, uint64_t now)
{
    csip_msg *resp = NULL;
    if (csip_response_for(csip_txn_request(st), code, NULL, CSIP_STR("srv"), NULL, &resp) != 0)
        abort();
    return csip_txn_respond(st, resp, now);
}

static void test_non_invite_server(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    char req[2048];
    snprintf(req, sizeof req, "%s", req_text("OPTIONS", VIA1, "f", "", 1, NULL));
    EXPECT_OK(feed(l, req, &src, 0));
    ASSERT_EQ(C.nreq, 1);
    csip_txn *st = C.st[0];
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_TRYING);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX); /* no 100 Trying for non-INVITE */
    EXPECT_OK(feed(l, req, &src, 10));                    /* Trying: absorbed, nothing sent */
    EXPECT_EQ(C.nout, 0);
    EXPECT_OK(respond(st, 100, 20));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_PROCEEDING);
    EXPECT_OK(feed(l, req, &src, 30)); /* Proceeding: the last provisional again */
    ASSERT_EQ(C.nout, 2);
    EXPECT_EQ(strncmp(C.out[1].data, "SIP/2.0 100", 11), 0);
    EXPECT_OK(respond(st, 200, 40));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_COMPLETED);
    EXPECT_OK(feed(l, req, &src, 50)); /* Completed: the final again */
    ASSERT_EQ(C.nout, 4);
    EXPECT_EQ(strncmp(C.out[3].data, "SIP/2.0 200", 11), 0);
    EXPECT_TRUE(strstr(C.out[3].data, "tag=srv") != NULL);
    /* no second final, no provisional after the final */
    EXPECT_EQ(respond(st, 200, 60), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(respond(st, 180, 60), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(C.nreq, 1);
    /* Timer J: 64*T1 */
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 40 + 32000);
    csip_txn_layer_handle_expiry(l, 40 + 32000);
    ASSERT_EQ(C.nterm, 1);
    EXPECT_EQ(C.term_why[0], CSIP_TXN_END_NORMAL);
    /* now the same request is new again */
    EXPECT_OK(feed(l, req, &src, 40000));
    EXPECT_EQ(C.nreq, 2);
    /* a stateless answer: sent, and the transaction ends at once (no Timer J) */
    st = C.st[1];
    csip_msg *r401;
    ASSERT_OK(csip_response_for(csip_txn_request(st), 401, NULL, CSIP_STR("sl"), NULL, &r401));
    int before = C.nout;
    EXPECT_OK(csip_txn_respond_stateless(st, r401, 40010));
    EXPECT_EQ(C.nout, before + 1);
    EXPECT_EQ(strncmp(C.out[before].data, "SIP/2.0 401", 11), 0);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_TERMINATED);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 40010);
    csip_txn_layer_handle_expiry(l, 40010);
    EXPECT_EQ(C.nterm, 2);
    EXPECT_EQ(C.term_why[1], CSIP_TXN_END_NORMAL);
    EXPECT_EQ(C.term_state[1], CSIP_TXN_COMPLETED); /* it ended answered */
    EXPECT_EQ(csip_txn_layer_count(l), 0);
    /* its retransmission is a new request, answered again by the TU; a
     * stateless answer longer than the stack buffer it is printed in is sent
     * whole */
    EXPECT_OK(feed(l, req, &src, 40020));
    EXPECT_EQ(C.nreq, 3);
    static char longval[3001];
    memset(longval, 'a', sizeof longval - 1);
    ASSERT_OK(csip_response_for(csip_txn_request(C.st[2]), 401, NULL, CSIP_STR("sl"), NULL, &r401));
    ASSERT_OK(csip_msg_hdr_add(r401, CSIP_HDR_WWW_AUTHENTICATE, csip_str_c(longval), false));
    before = C.nout;
    EXPECT_OK(csip_txn_respond_stateless(C.st[2], r401, 40025));
    ASSERT_EQ(C.nout, before + 1);
    EXPECT_TRUE(C.out[before].len > 3000);
    EXPECT_TRUE(memcmp(C.out[before].data + C.out[before].len - 3004, longval, 3000) == 0);
    EXPECT_TRUE(memcmp(C.out[before].data + C.out[before].len - 4, "\r\n\r\n", 4) == 0);
    csip_txn_layer_handle_expiry(l, 40025);
    EXPECT_OK(feed(l, req, &src, 40026));
    EXPECT_EQ(C.nreq, 4);
    /* provisional, or an INVITE transaction: refused */
    ASSERT_OK(csip_response_for(csip_txn_request(C.st[3]), 100, NULL, CSIP_STR_NULL, NULL, &r401));
    EXPECT_EQ(csip_txn_respond_stateless(C.st[3], r401, 40030), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_respond_stateless(NULL, NULL, 40030), CSIP_ERR_INVALID_ARG);
    teardown(l);
}

/* drop_completed_requests: a completed non-INVITE server transaction keeps
 * only what matching and retransmission need. */
static void test_drop_completed(void)
{
    csip_txn_opts o = {.drop_completed_requests = true};
    csip_txn_layer *l = setup(&o);
    csip_addr src = addr("192.0.2.9", 33333, CSIP_TP_UDP);
    char req[2048];
    snprintf(req, sizeof req, "%s",
             req_text("OPTIONS", "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bKdc1;rport", "f",
                      "", 1, NULL));
    EXPECT_OK(feed(l, req, &src, 0));
    ASSERT_EQ(C.nreq, 1);
    csip_txn *st = C.st[0];
    EXPECT_TRUE(csip_txn_request(st) != NULL);
    EXPECT_OK(respond(st, 200, 10));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_COMPLETED);
    EXPECT_TRUE(csip_txn_request(st) == NULL);
    ASSERT_EQ(C.nout, 1);
    /* a retransmission still matches (branch, sent-by, method) and gets the
     * final again, where the first went (the source port, for rport) */
    EXPECT_OK(feed(l, req, &src, 100));
    EXPECT_EQ(C.nreq, 1);
    ASSERT_EQ(C.nout, 2);
    EXPECT_EQ(C.out[1].len, C.out[0].len);
    EXPECT_STR(csip_str_c(addr_str(&C.out[1].dst)), "192.0.2.9:33333");
    /* another method with the same branch is another transaction */
    char req2[2048];
    snprintf(req2, sizeof req2, "%s",
             req_text("MESSAGE", "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bKdc1;rport", "f",
                      "", 1, NULL));
    EXPECT_OK(feed(l, req2, &src, 200));
    EXPECT_EQ(C.nreq, 2);
    /* Timer J still ends it */
    csip_txn_layer_handle_expiry(l, 10 + 32000);
    EXPECT_GE(C.nterm, 1);
    /* an INVITE server transaction keeps its request */
    snprintf(req, sizeof req, "%s", req_text("INVITE", VIA1, "f", "", 1, NULL));
    EXPECT_OK(feed(l, req, &src, 40000));
    ASSERT_EQ(C.nreq, 3);
    EXPECT_OK(respond(C.st[2], 486, 40010));
    EXPECT_TRUE(csip_txn_request(C.st[2]) != NULL);
    teardown(l);
}

/* A REGISTER with branch z9hG4bK<br> and CSeq number cseq, received at now
 * (its text left in req, 2048 octets): its server transaction. */
static csip_txn *register_in(csip_txn_layer *l, char *req, const char *br, unsigned cseq,
                             uint64_t now)
{
    static const csip_addr src = {
        .family = 4, .ip = {192, 0, 2, 9}, .port = 33333, .transport = CSIP_TP_UDP};
    char via[128];
    snprintf(via, sizeof via, "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bK%s;rport", br);
    snprintf(req, 2048, "%s", req_text("REGISTER", via, "f", "", cseq, NULL));
    int n = C.nreq;
    if (feed(l, req, &src, now) != 0 || C.nreq != n + 1)
        abort();
    return C.st[n];
}

/* A response prepared while the TU waits (csip_txn_prepare): nothing leaves
 * until csip_txn_send_prepared(), the request is let go at once
 * (drop_completed_requests), and the response can still be replaced by one
 * with another status built from it. */
static void test_prepared(void)
{
    csip_txn_opts o = {.drop_completed_requests = true};
    csip_txn_layer *l = setup(&o);
    csip_addr src = addr("192.0.2.9", 33333, CSIP_TP_UDP);
    char req[2048];
    csip_txn *st = register_in(l, req, "pr1", 7, 0);
    csip_msg *ok;
    ASSERT_OK(csip_response_for(csip_txn_request(st), 200, NULL, CSIP_STR("srv"), NULL, &ok));
    ASSERT_OK(csip_msg_hdr_add(ok, CSIP_HDR_CONTACT, CSIP_STR("<sip:a@192.0.2.9>"), false));
    char expect[2048];
    int n = csip_msg_print(ok, expect, sizeof expect);
    ASSERT_GE(n, 0);
    EXPECT_EQ(csip_txn_send_prepared(st, 0, NULL, 5), CSIP_ERR_INVALID_ARG); /* nothing yet */
    EXPECT_OK(csip_txn_prepare(st, ok));
    /* kept, not sent; the request let go; still Trying: a retransmission of
     * the request is absorbed, nothing goes out */
    EXPECT_EQ(C.nout, 0);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_TRYING);
    EXPECT_TRUE(csip_txn_request(st) == NULL);
    EXPECT_OK(feed(l, req, &src, 10));
    EXPECT_EQ(C.nreq, 1);
    EXPECT_EQ(C.nout, 0);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX);
    /* sent as csip_txn_respond() would have: Completed, Timer J, the same
     * bytes again for a retransmission, where the request came from */
    EXPECT_OK(csip_txn_send_prepared(st, 0, NULL, 20));
    ASSERT_EQ(C.nout, 1);
    EXPECT_EQ(C.out[0].len, (size_t)n);
    EXPECT_TRUE(memcmp(C.out[0].data, expect, (size_t)n) == 0);
    EXPECT_STR(csip_str_c(addr_str(&C.out[0].dst)), "192.0.2.9:33333");
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_COMPLETED);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 20 + 32000);
    EXPECT_OK(feed(l, req, &src, 30));
    ASSERT_EQ(C.nout, 2);
    EXPECT_TRUE(memcmp(C.out[1].data, expect, (size_t)n) == 0);
    EXPECT_EQ(csip_txn_send_prepared(st, 0, NULL, 40), CSIP_ERR_INVALID_ARG); /* sent already */

    /* the TU's answer falls through while it waits: a 500 in its place, with
     * the prepared response's Via, From, To (its tag), Call-ID and CSeq, and
     * nothing else */
    st = register_in(l, req, "pr2", 8, 100);
    ASSERT_OK(csip_response_for(csip_txn_request(st), 200, NULL, CSIP_STR("t2"), NULL, &ok));
    ASSERT_OK(csip_msg_hdr_add(ok, CSIP_HDR_CONTACT, CSIP_STR("<sip:a@192.0.2.9>"), false));
    EXPECT_OK(csip_txn_prepare(st, ok));
    EXPECT_EQ(csip_txn_send_prepared(st, 100, NULL, 110), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_send_prepared(st, 700, NULL, 110), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(C.nout, 2);
    EXPECT_OK(csip_txn_send_prepared(st, 500, "Location Database Failure", 110));
    ASSERT_EQ(C.nout, 3);
    csip_msg *m = parse(C.out[2].data);
    EXPECT_EQ(csip_msg_status(m), 500);
    EXPECT_STR(csip_msg_reason(m), "Location Database Failure");
    const csip_nameaddr *to;
    ASSERT_OK(csip_msg_to(m, &to));
    EXPECT_STR(to->tag, "t2");
    const csip_cseq *q;
    ASSERT_OK(csip_msg_cseq(m, &q));
    EXPECT_EQ(q->number, 8u);
    const csip_via *v;
    ASSERT_OK(csip_msg_via(m, 0, &v));
    EXPECT_STR(v->branch, "z9hG4bKpr2");
    csip_str cid;
    ASSERT_OK(csip_msg_call_id(m, &cid));
    EXPECT_STR(cid, "c1@example.com");
    EXPECT_TRUE(csip_msg_hdr_find(m, CSIP_HDR_CONTACT) == NULL);
    EXPECT_TRUE(csip_msg_hdr_find(m, CSIP_HDR_FROM) != NULL);
    csip_msg_free(m);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_COMPLETED);
    EXPECT_OK(feed(l, req, &src, 120)); /* the 500 again */
    ASSERT_EQ(C.nout, 4);
    EXPECT_EQ(strncmp(C.out[3].data, "SIP/2.0 500", 11), 0);

    /* a response passed instead takes the prepared one's place; with the
     * request gone, it must still carry the request's Via and CSeq */
    st = register_in(l, req, "pr3", 9, 200);
    csip_msg *keep = parse(req); /* the TU's own copy of the request */
    ASSERT_OK(csip_response_for(csip_txn_request(st), 200, NULL, CSIP_STR("t3"), NULL, &ok));
    EXPECT_OK(csip_txn_prepare(st, ok));
    char other[2048];
    snprintf(other, sizeof other, "%s",
             req_text("REGISTER", "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bKpr3;rport",
                      "f", "", 10, NULL));
    csip_msg *wrong_req = parse(other), *wrong;
    ASSERT_OK(csip_response_for(wrong_req, 403, NULL, CSIP_STR("t3"), NULL, &wrong));
    EXPECT_EQ(csip_txn_respond(st, wrong, 210), CSIP_ERR_INVALID_ARG); /* CSeq 10, not 9 */
    csip_msg_free(wrong_req);
    snprintf(other, sizeof other, "%s",
             req_text("OPTIONS", "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bKpr3", "f", "",
                      9, NULL));
    wrong_req = parse(other);
    ASSERT_OK(csip_response_for(wrong_req, 403, NULL, CSIP_STR("t3"), NULL, &wrong));
    EXPECT_EQ(csip_txn_respond(st, wrong, 210), CSIP_ERR_INVALID_ARG); /* another method */
    csip_msg_free(wrong_req);
    EXPECT_EQ(C.nout, 4);
    csip_msg *r403;
    ASSERT_OK(csip_response_for(keep, 403, NULL, CSIP_STR("t3"), NULL, &r403));
    EXPECT_OK(csip_txn_respond(st, r403, 220));
    ASSERT_EQ(C.nout, 5);
    EXPECT_EQ(strncmp(C.out[4].data, "SIP/2.0 403", 11), 0);
    EXPECT_EQ(csip_txn_send_prepared(st, 0, NULL, 230), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(C.nout, 5);
    csip_msg_free(keep);

    /* refused: a provisional, an INVITE transaction, one that answered; the
     * response is freed in every case (the leak checker sees it) */
    st = register_in(l, req, "pr4", 1, 300);
    csip_msg *r;
    ASSERT_OK(csip_response_for(csip_txn_request(st), 180, NULL, CSIP_STR_NULL, NULL, &r));
    EXPECT_EQ(csip_txn_prepare(st, r), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(csip_txn_request(st) != NULL); /* nothing let go */
    EXPECT_OK(respond(st, 100, 310));          /* Proceeding */
    ASSERT_OK(csip_response_for(csip_txn_request(st), 200, NULL, CSIP_STR_NULL, NULL, &r));
    EXPECT_EQ(csip_txn_prepare(st, r), CSIP_ERR_INVALID_ARG);
    snprintf(req, sizeof req, "%s", req_text("INVITE", VIA1, "f", "", 1, NULL));
    EXPECT_OK(feed(l, req, &src, 400));
    ASSERT_EQ(C.nreq, 5);
    ASSERT_OK(csip_response_for(csip_txn_request(C.st[4]), 486, NULL, CSIP_STR_NULL, NULL, &r));
    EXPECT_EQ(csip_txn_prepare(C.st[4], r), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_prepare(NULL, NULL), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_send_prepared(NULL, 0, NULL, 0), CSIP_ERR_INVALID_ARG);
    teardown(l);
}

static void test_rfc2543(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    const char *via = "SIP/2.0/UDP 192.0.2.9:5080";
    char inv[2048];
    snprintf(inv, sizeof inv, "%s", req_text("INVITE", via, "f", "", 1, NULL));
    EXPECT_OK(feed(l, inv, &src, 0));
    ASSERT_EQ(C.nreq, 1);
    csip_txn *st = C.st[0];
    EXPECT_OK(feed(l, inv, &src, 10)); /* Request-URI, tags, Call-ID, CSeq, top Via equal */
    EXPECT_EQ(C.nreq, 1);
    /* any of them different: another transaction */
    EXPECT_OK(feed(l, req_text("INVITE", via, "g", "", 1, NULL), &src, 20));
    EXPECT_EQ(C.nreq, 2);
    EXPECT_OK(feed(l, req_text("INVITE", via, "f", "", 2, NULL), &src, 20));
    EXPECT_EQ(C.nreq, 3);
    EXPECT_OK(feed(l, req_text("INVITE", via, "f", "x", 1, NULL), &src, 20));
    EXPECT_EQ(C.nreq, 4);
    EXPECT_OK(
        feed(l, req_text("INVITE", "SIP/2.0/UDP 192.0.2.9:5081", "f", "", 1, NULL), &src, 20));
    EXPECT_EQ(C.nreq, 5);
    char other_uri[2048];
    snprintf(other_uri, sizeof other_uri, "%s", inv);
    memcpy(other_uri + 7, "sip:bOb", 7); /* user parts compare with case */
    EXPECT_OK(feed(l, other_uri, &src, 20));
    EXPECT_EQ(C.nreq, 6);
    memcpy(other_uri + 7, "sip:bob@EXAMPLE.com", 19);
    EXPECT_OK(feed(l, other_uri, &src, 20)); /* host compares without: a retransmission */
    EXPECT_EQ(C.nreq, 6);
    /* a non-INVITE with the same Call-ID and number: the method is compared too */
    EXPECT_OK(feed(l, req_text("OPTIONS", via, "f", "", 1, NULL), &src, 30));
    EXPECT_EQ(C.nreq, 7);
    EXPECT_OK(feed(l, req_text("OPTIONS", via, "f", "", 1, NULL), &src, 31));
    EXPECT_EQ(C.nreq, 7);
    /* CANCEL: its own transaction, and it finds the INVITE */
    EXPECT_OK(feed(l, req_text("CANCEL", via, "f", "", 1, NULL), &src, 40));
    ASSERT_EQ(C.nreq, 8);
    EXPECT_TRUE(csip_txn_layer_find_invite(l, csip_txn_request(C.st[7])) == st);
    /* the ACK matches with the To tag of the response sent */
    EXPECT_OK(respond(st, 486, 50));
    EXPECT_OK(feed(l, req_text("ACK", via, "f", "wrong", 1, NULL), &src, 60));
    ASSERT_EQ(C.nreq, 9); /* matches nothing: to the TU */
    EXPECT_TRUE(C.st[8] == NULL);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_COMPLETED);
    EXPECT_OK(feed(l, req_text("ACK", via, "f", "srv", 1, NULL), &src, 70));
    EXPECT_EQ(C.nreq, 9);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_CONFIRMED);
    /* a branch without the magic cookie is matched the same way */
    const char *via2 = "SIP/2.0/UDP 192.0.2.9:5080;branch=1234";
    EXPECT_OK(feed(l, req_text("BYE", via2, "f", "t", 9, NULL), &src, 80));
    EXPECT_OK(feed(l, req_text("BYE", via2, "f", "t", 9, NULL), &src, 81));
    EXPECT_EQ(C.nreq, 10);
    /* a 2xx ACK of an RFC 2543 peer in Accepted goes to the TU (RFC 6026) */
    csip_txn *st2 = C.st[2]; /* the INVITE with CSeq 2 */
    EXPECT_OK(respond(st2, 200, 90));
    EXPECT_EQ(csip_txn_state_of(st2), CSIP_TXN_ACCEPTED);
    EXPECT_OK(feed(l, req_text("ACK", via, "f", "srv", 2, NULL), &src, 95));
    ASSERT_EQ(C.nreq, 11);
    EXPECT_TRUE(C.st[10] == NULL);
    teardown(l);
}

static void test_malformed(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    /* a To without its '>': 400, statelessly, with a To tag */
    const char *bad_to = "INVITE sip:bob@example.com SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKm1;rport\r\n"
                         "Max-Forwards: 70\r\n"
                         "From: <sip:alice@example.com>;tag=f\r\n"
                         "To: <sip:bob@example.com\r\n"
                         "Call-ID: m1\r\n"
                         "CSeq: 1 INVITE\r\n"
                         "Content-Length: 0\r\n\r\n";
    EXPECT_OK(feed(l, bad_to, &src, 0));
    EXPECT_EQ(C.nreq, 0);
    ASSERT_EQ(C.nout, 1);
    EXPECT_EQ(strncmp(C.out[0].data, "SIP/2.0 400 ", 12), 0);
    EXPECT_STR(csip_str_c(addr_str(&C.out[0].dst)), "192.0.2.9:5080");
    csip_msg *r = parse(C.out[0].data);
    const csip_cseq *cs;
    EXPECT_OK(csip_msg_cseq(r, &cs));
    /* the same bytes for a retransmission */
    EXPECT_OK(feed(l, bad_to, &src, 500));
    ASSERT_EQ(C.nout, 2);
    EXPECT_EQ(C.out[1].len, C.out[0].len);
    EXPECT_EQ(memcmp(C.out[1].data, C.out[0].data, C.out[0].len), 0);
    csip_msg_free(r);
    EXPECT_EQ(csip_txn_layer_count(l), 0);

    /* another version: 505 */
    EXPECT_OK(feed(l,
                   "OPTIONS sip:bob@example.com SIP/3.0\r\n"
                   "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKm2\r\n"
                   "From: <sip:alice@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\n"
                   "Call-ID: m2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                   &src, 0));
    ASSERT_EQ(C.nout, 3);
    EXPECT_EQ(strncmp(C.out[2].data, "SIP/2.0 505 ", 12), 0);
    /* a To tag, the same for every retransmission of the request (§8.2.7) */
    r = parse(C.out[2].data);
    const csip_nameaddr *to;
    ASSERT_OK(csip_msg_to(r, &to));
    EXPECT_EQ(to->tag.len, 16);
    csip_msg_free(r);

    /* RFC 4475 §3.1.2 (insuf, scalar02, badinv01): a request missing Call-ID,
     * one whose CSeq does not parse, one whose Via does not parse still get
     * their 400, with what they have copied, to their source */
    static const char *const answer[] = {
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKm3\r\n"
        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKm4\r\n"
        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: m4\r\nCSeq: x OPTIONS\r\n\r\n",
        "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1;;,;,,\r\n"
        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: m9\r\nCSeq: 1 OPTIONS\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof answer / sizeof answer[0]; i++) {
        EXPECT_OK(feed(l, answer[i], &src, 0));
        ASSERT_EQ(C.nout, 4 + (int)i);
        EXPECT_EQ(strncmp(C.out[3 + i].data, "SIP/2.0 400 ", 12), 0);
        EXPECT_STR(csip_str_c(addr_str(&C.out[3 + i].dst)),
                   i == 2 ? "192.0.2.9:5080" : "192.0.2.9:5060");
    }
    int answered = 6;

    /* not answerable: no Via, an ACK, garbage, a malformed response */
    static const char *const drop[] = {
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: m5\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "ACK sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKm6\r\n"
        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c\r\nCall-ID: m6\r\nCSeq: 1 ACK\r\n\r\n",
        "hello",
        "",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKm7\r\n"
        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: m7\r\nCSeq: 1 INVITE INVITE\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        EXPECT_OK(feed(l, drop[i], &src, 0));
    EXPECT_EQ(C.nout, answered);
    EXPECT_EQ(C.nreq, 0);

    /* over TCP a message without Content-Length is malformed: 400 on the connection */
    csip_addr tcp = addr("192.0.2.9", 40123, CSIP_TP_TCP);
    tcp.conn = 77;
    EXPECT_OK(feed(l,
                   "OPTIONS sip:bob@example.com SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP 192.0.2.9:5080;branch=z9hG4bKm8\r\n"
                   "From: <sip:alice@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\n"
                   "Call-ID: m8\r\nCSeq: 1 OPTIONS\r\n\r\n",
                   &tcp, 0));
    ASSERT_EQ(C.nout, answered + 1);
    EXPECT_EQ(strncmp(C.out[answered].data, "SIP/2.0 400 ", 12), 0);
    EXPECT_EQ(C.out[answered].dst.conn, 77);
    EXPECT_EQ(C.out[answered].dst.transport, CSIP_TP_TCP);

    csip_txn_stats st;
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.malformed_answered, 7);
    EXPECT_EQ(st.malformed_dropped, 5);
    EXPECT_EQ(st.received, 12);
    EXPECT_EQ(csip_txn_layer_count(l), 0);
    teardown(l);
}

static void test_overload(void)
{
    csip_txn_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.max_txns = 2;
    csip_txn_layer *l = setup(&opts);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_OK(
        feed(l, req_text("OPTIONS", "SIP/2.0/UDP h;branch=z9hG4bK1", "f", "", 1, NULL), &src, 0));
    EXPECT_OK(
        feed(l, req_text("OPTIONS", "SIP/2.0/UDP h;branch=z9hG4bK2", "f", "", 1, NULL), &src, 0));
    EXPECT_OK(
        feed(l, req_text("OPTIONS", "SIP/2.0/UDP h;branch=z9hG4bK3", "f", "", 1, NULL), &src, 0));
    EXPECT_EQ(C.nreq, 2);
    ASSERT_EQ(C.nout, 1);
    EXPECT_EQ(strncmp(C.out[0].data, "SIP/2.0 503 ", 12), 0);
    EXPECT_TRUE(strstr(C.out[0].data, ";tag=") != NULL);
    EXPECT_STR(csip_str_c(addr_str(&C.out[0].dst)), "192.0.2.9:5060"); /* sent-by "h": source */
    /* a retransmission of a known request is still absorbed */
    EXPECT_OK(
        feed(l, req_text("OPTIONS", "SIP/2.0/UDP h;branch=z9hG4bK1", "f", "", 1, NULL), &src, 0));
    EXPECT_EQ(C.nout, 1);
    csip_txn_stats st;
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.overload_rejected, 1);
    EXPECT_EQ(st.absorbed, 1);
    teardown(l);
}

/* Where the answer to a request with this top Via, from src, goes. */
static csip_addr route_of(csip_txn_layer *l, const char *via, const csip_addr *src)
{
    static unsigned n;
    char v[256];
    snprintf(v, sizeof v, "%s;branch=z9hG4bKr%u", via, ++n);
    C.answer = 200;
    int before = C.nout;
    EXPECT_OK(feed(l, req_text("OPTIONS", v, "f", "", 1, NULL), src, 0));
    csip_addr none;
    memset(&none, 0, sizeof none);
    if (C.nout != before + 1) {
        CHECK_FAIL_("no response for Via %s", via);
        return none;
    }
    /* csip_txn_response_dest() says the same, from the request or the response
     * (from the request only when the server's own received does not replace
     * one the client wrote, RFC 3261 §18.2.1) */
    csip_msg *m = parse(req_text("OPTIONS", v, "f", "", 1, NULL));
    csip_msg *r = parse(C.out[before].data);
    csip_addr d1, d2;
    EXPECT_OK(csip_txn_response_dest(m, src, &d1));
    EXPECT_OK(csip_txn_response_dest(r, src, &d2));
    if (!strstr(via, "received="))
        EXPECT_TRUE(csip_addr_equal(&d1, &C.out[before].dst) && d1.conn == C.out[before].dst.conn);
    EXPECT_TRUE(csip_addr_equal(&d2, &C.out[before].dst) && d2.conn == C.out[before].dst.conn);
    csip_msg_free(m);
    csip_msg_free(r);
    return C.out[before].dst;
}

#define EXPECT_ROUTE(via, src, want)                                                               \
    do {                                                                                           \
        csip_addr got_ = route_of(l, via, src);                                                    \
        EXPECT_CSTR(addr_str(&got_), want);                                                        \
    } while (0)

/* RFC 3261 §18.2.1, RFC 3581 §4: received and rport noted in the top Via the TU sees. */
static void test_via_stamped(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 33333, CSIP_TP_UDP);
    C.answer = 0;
    /* a name and rport: received and the source port; other values and lines kept */
    EXPECT_OK(feed(l,
                   req_text("OPTIONS",
                            "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bKs1;rport;x=1, "
                            "SIP/2.0/UDP p.example.com;branch=z9hG4bKp",
                            "f", "", 1, NULL),
                   &src, 0));
    ASSERT_EQ(C.nreq, 1);
    EXPECT_CSTR(C.req_via[0], "SIP/2.0/UDP client.example.com:5090;branch=z9hG4bKs1;x=1"
                              ";received=192.0.2.9;rport=33333, "
                              "SIP/2.0/UDP p.example.com;branch=z9hG4bKp");
    /* the address itself and no rport: nothing to note, the line is untouched */
    EXPECT_OK(feed(
        l, req_text("OPTIONS", "SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKs2", "f", "", 1, NULL),
        &src, 0));
    ASSERT_EQ(C.nreq, 2);
    EXPECT_CSTR(C.req_via[1], "SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKs2");
    /* IPv6: received without brackets */
    csip_addr src6 = addr("2001:db8::9", 40000, CSIP_TP_UDP);
    EXPECT_OK(
        feed(l, req_text("OPTIONS", "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKs3", "f", "", 1, NULL),
             &src6, 0));
    ASSERT_EQ(C.nreq, 3);
    EXPECT_CSTR(C.req_via[2], "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKs3;received=2001:db8::9");
    /* a folded Via (RFC 4475 wsinv): stamped too, written back unfolded */
    EXPECT_OK(feed(l,
                   "OPTIONS sip:bob@example.com SIP/2.0\r\n"
                   "Via  : SIP/2.0/UDP\r\n    198.51.100.2;branch=z9hG4bKs4\r\n"
                   "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>\r\nCall-ID: s4\r\n"
                   "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                   &src, 0));
    ASSERT_EQ(C.nreq, 4);
    EXPECT_CSTR(C.req_via[3], "SIP/2.0/UDP      198.51.100.2;branch=z9hG4bKs4;received=192.0.2.9");
    teardown(l);
}

static void test_response_routing(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 33333, CSIP_TP_UDP);
    /* §18.2.2: sent-by */
    EXPECT_ROUTE("SIP/2.0/UDP 192.0.2.9:5080", &src, "192.0.2.9:5080");
    EXPECT_ROUTE("SIP/2.0/UDP 192.0.2.9", &src, "192.0.2.9:5060");
    /* received, with the sent-by port */
    EXPECT_ROUTE("SIP/2.0/UDP 10.1.1.1:5080;received=192.0.2.9", &src, "192.0.2.9:5080");
    /* a received the client wrote itself is replaced by the real source (§18.2.1) */
    EXPECT_ROUTE("SIP/2.0/UDP 10.1.1.1;received=198.51.100.7", &src, "192.0.2.9:5060");
    /* RFC 3581: rport, valued or not, answers the source port */
    EXPECT_ROUTE("SIP/2.0/UDP 10.1.1.1:5080;rport", &src, "192.0.2.9:33333");
    /* a value the client wrote itself is replaced by the source port (§4) */
    EXPECT_ROUTE("SIP/2.0/UDP 10.1.1.1:5080;rport=40000;received=198.51.100.7", &src,
                 "192.0.2.9:33333");
    /* a host name in sent-by and no received: the source address, sent-by port */
    EXPECT_ROUTE("SIP/2.0/UDP client.example.com:5090", &src, "192.0.2.9:5090");
    /* maddr is not followed by a server: only the source gets responses, so a
     * forged request cannot aim them at a third party */
    EXPECT_ROUTE("SIP/2.0/UDP 192.0.2.9:5080;maddr=224.0.1.75;ttl=1", &src, "192.0.2.9:5080");
    /* nor a sent-by naming another host */
    EXPECT_ROUTE("SIP/2.0/UDP 198.51.100.7:5080", &src, "192.0.2.9:5080");
    EXPECT_ROUTE("SIP/2.0/UDP 192.0.2.9:5080;maddr=mcast.example.com", &src, "192.0.2.9:5080");
    /* IPv6 */
    csip_addr src6 = addr("2001:db8::9", 33333, CSIP_TP_UDP);
    EXPECT_ROUTE("SIP/2.0/UDP [2001:db8::9]:5080", &src6, "[2001:db8::9]:5080");
    EXPECT_ROUTE("SIP/2.0/UDP [2001:db8::1];received=2001:db8::9", &src6, "[2001:db8::9]:5060");
    /* reliable: the same connection; the address is where to reconnect to */
    csip_addr tcp = addr("192.0.2.9", 40000, CSIP_TP_TCP);
    tcp.conn = 42;
    csip_addr got = route_of(l, "SIP/2.0/TCP 192.0.2.9:5080", &tcp);
    EXPECT_EQ(got.conn, 42);
    EXPECT_EQ(got.transport, CSIP_TP_TCP);
    EXPECT_CSTR(addr_str(&got), "192.0.2.9:5080");
    csip_addr tls = addr("192.0.2.9", 40001, CSIP_TP_TLS);
    tls.conn = 43;
    got = route_of(l, "SIP/2.0/TLS client.example.com", &tls);
    EXPECT_EQ(got.conn, 43);
    EXPECT_CSTR(addr_str(&got), "192.0.2.9:5061");

    /* csip_txn_layer_send_stateless with no destination: from the Via alone */
    csip_msg *resp = parse("SIP/2.0 200 OK\r\n"
                           "Via: SIP/2.0/UDP 10.1.1.1:5080;received=198.51.100.7;rport=4000\r\n"
                           "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\nCall-ID: s1\r\n"
                           "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    int before = C.nout;
    EXPECT_OK(csip_txn_layer_send_stateless(l, resp, NULL, 0));
    ASSERT_EQ(C.nout, before + 1);
    EXPECT_CSTR(addr_str(&C.out[before].dst), "198.51.100.7:4000");
    EXPECT_EQ(C.out[before].dst.transport, CSIP_TP_UDP);
    csip_msg_free(resp);
    resp = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS client.example.com\r\n"
                 "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\nCall-ID: s1\r\n"
                 "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(csip_txn_layer_send_stateless(l, resp, NULL, 0), CSIP_ERR_INVALID_ARG);
    csip_msg_free(resp);
    resp = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1\r\n"
                 "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\nCall-ID: s1\r\n"
                 "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    before = C.nout;
    EXPECT_OK(csip_txn_layer_send_stateless(l, resp, NULL, 0));
    ASSERT_EQ(C.nout, before + 1);
    EXPECT_CSTR(addr_str(&C.out[before].dst), "192.0.2.1:5061");
    EXPECT_EQ(C.out[before].dst.transport, CSIP_TP_TLS);
    csip_msg_free(resp);
    /* a request needs a destination */
    csip_msg *req = parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL));
    EXPECT_EQ(csip_txn_layer_send_stateless(l, req, NULL, 0), CSIP_ERR_INVALID_ARG);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    EXPECT_OK(csip_txn_layer_send_stateless(l, req, &dst, 0));
    C.fail_send = 1;
    EXPECT_EQ(csip_txn_layer_send_stateless(l, req, &dst, 0), CSIP_ERR_TRANSPORT);
    C.fail_send = 0;
    csip_msg_free(req);
    teardown(l);
}

static void test_respond_errors(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_OK(feed(l, req_text("INVITE", VIA1, "f", "", 1, NULL), &src, 0));
    csip_txn *st = C.st[0];
    csip_msg *req = parse(req_text("INVITE", VIA1, "f", "", 1, NULL));
    csip_msg *other_branch =
        parse(req_text("INVITE", "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKzzz", "f", "", 1, NULL));
    csip_msg *other_cseq = parse(req_text("INVITE", VIA1, "f", "", 2, NULL));
    csip_msg *resp = NULL;
    /* every refused response is freed */
    EXPECT_EQ(csip_txn_respond(NULL, parse(req_text("INVITE", VIA1, "f", "", 1, NULL)), 0),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_respond(st, NULL, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_respond(st, parse(req_text("INVITE", VIA1, "f", "", 1, NULL)), 0),
              CSIP_ERR_INVALID_ARG); /* a request */
    ASSERT_OK(csip_response_for(other_branch, 180, NULL, CSIP_STR("t"), NULL, &resp));
    EXPECT_EQ(csip_txn_respond(st, resp, 0), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_response_for(other_cseq, 180, NULL, CSIP_STR("t"), NULL, &resp));
    EXPECT_EQ(csip_txn_respond(st, resp, 0), CSIP_ERR_INVALID_ARG);
    /* built for this very request, but its Via or CSeq edited since: refused
     * (a response built for the request is otherwise taken without
     * comparing them again) */
    const struct {
        csip_hdr_id id;
        const char *value;
    } edits[] = {{CSIP_HDR_VIA, "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKzzz"},
                 {CSIP_HDR_CSEQ, "2 INVITE"}};
    for (size_t e = 0; e < 2; e++) {
        ASSERT_OK(csip_response_for(csip_txn_request(st), 180, NULL, CSIP_STR("t"), NULL, &resp));
        size_t pos = 0;
        while (csip_msg_hdr_at(resp, pos)->id != edits[e].id)
            pos++;
        ASSERT_OK(csip_msg_hdr_set(resp, pos, csip_str_c(edits[e].value)));
        EXPECT_EQ(csip_txn_respond(st, resp, 0), CSIP_ERR_INVALID_ARG);
    }
    /* or the top Via removed and another put first */
    ASSERT_OK(csip_response_for(csip_txn_request(st), 180, NULL, CSIP_STR("t"), NULL, &resp));
    ASSERT_OK(csip_msg_via_pop(resp));
    ASSERT_OK(csip_msg_hdr_add(resp, CSIP_HDR_VIA,
                               CSIP_STR("SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKyyy"), true));
    EXPECT_EQ(csip_txn_respond(st, resp, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(C.nout, 0);
    ASSERT_OK(csip_response_for(req, 200, NULL, CSIP_STR("t"), NULL, &resp));
    EXPECT_OK(csip_txn_respond(st, resp, 0));
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_ACCEPTED);
    /* Accepted takes 2xx only (RFC 6026 §7.1), and only for its request */
    EXPECT_EQ(respond(st, 180, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(respond(st, 486, 0), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_response_for(other_cseq, 200, NULL, CSIP_STR("t"), NULL, &resp));
    EXPECT_EQ(csip_txn_respond(st, resp, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(C.nout, 1);
    EXPECT_OK(respond(st, 200, 0));
    EXPECT_EQ(C.nout, 2);
    EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_ACCEPTED);
    /* a retransmitted INVITE in Accepted is absorbed (RFC 6026) */
    EXPECT_OK(feed(l, req_text("INVITE", VIA1, "f", "", 1, NULL), &src, 10));
    EXPECT_EQ(C.nout, 2);
    /* client transactions take no responses */
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_txn *ct = NULL;
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL)), &dst, NULL,
                                  0, &ct));
    EXPECT_EQ(respond(ct, 200, 0), CSIP_ERR_INVALID_ARG);
    csip_msg_free(req);
    csip_msg_free(other_branch);
    csip_msg_free(other_cseq);
    teardown(l);
}

static void test_transport_errors(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_TCP);
    /* §17.1.4: the first send fails: 503 to the TU at once, on_terminated
     * from the next expiry run; the pointer stays valid until then */
    C.fail_send = 1;
    csip_txn *ct = NULL;
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA1, "f", "", 1, NULL)), &dst, NULL,
                                  5, &ct));
    ASSERT_TRUE(ct != NULL);
    ASSERT_EQ(C.nresp, 1);
    EXPECT_EQ(C.resp_status[0], 503);
    EXPECT_TRUE(C.resp_null[0]);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_TERMINATED);
    EXPECT_EQ(csip_txn_end_state(ct), CSIP_TXN_TRYING);
    EXPECT_EQ(C.nterm, 0);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 5);
    csip_txn_layer_handle_expiry(l, 5);
    ASSERT_EQ(C.nterm, 1);
    EXPECT_EQ(C.term_why[0], CSIP_TXN_END_TRANSPORT);
    EXPECT_EQ(C.term_state[0], CSIP_TXN_TRYING); /* the 503 came with it */
    C.fail_send = 0;

    /* a retransmission (Timer A) fails: 503 */
    csip_addr udp = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    ASSERT_OK(csip_txn_client_new(
        l,
        parse(req_text("INVITE", "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKa2", "f", "", 1, NULL)),
        &udp, NULL, 0, &ct));
    C.fail_send = 1;
    csip_txn_layer_handle_expiry(l, 500);
    ASSERT_EQ(C.nresp, 2);
    EXPECT_EQ(C.resp_status[1], 503);
    csip_txn_layer_handle_expiry(l, 500);
    ASSERT_EQ(C.nterm, 2);
    EXPECT_EQ(C.term_why[1], CSIP_TXN_END_TRANSPORT);
    EXPECT_EQ(C.term_state[1], CSIP_TXN_CALLING);

    /* server: a failing final response ends the transaction */
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    C.fail_send = 0;
    EXPECT_OK(feed(l, req_text("INVITE", "SIP/2.0/UDP h;branch=z9hG4bKs1", "f", "", 1, NULL), &src,
                   1000));
    EXPECT_OK(feed(l, req_text("INVITE", "SIP/2.0/UDP h;branch=z9hG4bKs2", "f", "", 1, NULL), &src,
                   1000));
    ASSERT_EQ(C.nreq, 2);
    C.fail_send = 1;
    EXPECT_OK(respond(C.st[0], 486, 1000));
    EXPECT_EQ(csip_txn_state_of(C.st[0]), CSIP_TXN_TERMINATED);
    /* a 2xx that cannot be sent leaves the transaction Accepted (RFC 6026 §7.1) */
    EXPECT_OK(respond(C.st[1], 200, 1000));
    EXPECT_EQ(csip_txn_state_of(C.st[1]), CSIP_TXN_ACCEPTED);
    csip_txn_layer_handle_expiry(l, 1000);
    ASSERT_EQ(C.nterm, 3);
    EXPECT_TRUE(C.term[2] == C.st[0]);
    EXPECT_EQ(C.term_why[2], CSIP_TXN_END_TRANSPORT);
    EXPECT_EQ(C.term_state[2], CSIP_TXN_COMPLETED); /* the final could not be sent */
    csip_txn_stats st;
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.transport_errors, 4);
    teardown(l);
}

/* RFC 6026 §7.1: the TU's 2xx retransmissions through the Accepted INVITE
 * server transaction go where the first 2xx went; nothing else changes. */
static void test_respond_2xx_again(void)
{
    for (int tcp = 0; tcp < 2; tcp++) {
        csip_txn_layer *l = setup(NULL);
        csip_addr src = addr("192.0.2.9", 33333, tcp ? CSIP_TP_TCP : CSIP_TP_UDP);
        src.conn = tcp ? 77 : 0;
        const char *via = tcp ? "SIP/2.0/TCP 10.1.1.1:5080;branch=z9hG4bKg1"
                              : "SIP/2.0/UDP 10.1.1.1:5080;branch=z9hG4bKg1;rport";
        EXPECT_OK(feed(l, req_text("INVITE", via, "f", "", 1, NULL), &src, 0));
        ASSERT_EQ(C.nreq, 1);
        csip_txn *st = C.st[0];
        EXPECT_OK(respond(st, 180, 0));
        EXPECT_OK(respond(st, 200, 10));
        ASSERT_EQ(C.nout, 2);
        const csip_addr first = C.out[1].dst;
        EXPECT_CSTR(addr_str(&first), tcp ? "192.0.2.9:5080" : "192.0.2.9:33333");
        EXPECT_EQ(first.conn, tcp ? 77 : 0);
        /* the TU retransmits at T1, 2*T1: each one sent, to the same place */
        EXPECT_OK(respond(st, 200, 510));
        EXPECT_OK(respond(st, 200, 1510));
        ASSERT_EQ(C.nout, 4);
        for (int i = 2; i < 4; i++) {
            EXPECT_TRUE(csip_addr_equal(&C.out[i].dst, &first));
            EXPECT_EQ(C.out[i].dst.conn, first.conn);
            EXPECT_EQ(C.out[i].len, C.out[1].len);
            EXPECT_EQ(memcmp(C.out[i].data, C.out[1].data, C.out[1].len), 0);
        }
        EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_ACCEPTED);
        /* the retransmissions change no timer: Timer L from the first 2xx */
        EXPECT_EQ(csip_txn_layer_next_expiry(l), 10 + 32000);
        csip_txn_stats stats;
        csip_txn_layer_stats(l, &stats);
        EXPECT_EQ(stats.retransmitted, 2);
        /* a 2xx with another To tag (a proxy forwarding another branch) goes too */
        csip_msg *resp = NULL;
        ASSERT_OK(
            csip_response_for(csip_txn_request(st), 200, NULL, CSIP_STR("other"), NULL, &resp));
        EXPECT_OK(csip_txn_respond(st, resp, 2000));
        ASSERT_EQ(C.nout, 5);
        EXPECT_TRUE(strstr(C.out[4].data, "tag=other") != NULL);
        /* a failing send: counted, returns 0, the state stays (RFC 6026 §7.1) */
        C.fail_send = 1;
        EXPECT_OK(respond(st, 200, 2500));
        C.fail_send = 0;
        EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_ACCEPTED);
        csip_txn_layer_stats(l, &stats);
        EXPECT_EQ(stats.transport_errors, 1);
        EXPECT_EQ(stats.retransmitted, 3);
        /* the ACK goes to the TU; the transaction ends at Timer L */
        EXPECT_OK(feed(l, req_text("ACK", via, "f", "srv", 1, NULL), &src, 3000));
        ASSERT_EQ(C.nreq, 2);
        EXPECT_TRUE(C.st[1] == NULL);
        csip_txn_layer_handle_expiry(l, 10 + 31999);
        EXPECT_EQ(C.nterm, 0);
        csip_txn_layer_handle_expiry(l, 10 + 32000);
        ASSERT_EQ(C.nterm, 1);
        EXPECT_EQ(C.term_why[0], CSIP_TXN_END_NORMAL);
        EXPECT_EQ(C.term_state[0], CSIP_TXN_ACCEPTED);
        teardown(l);
    }
}

/* csip_txn_response_dest() without the request's source, and its errors. */
static void test_response_dest_api(void)
{
    static const struct {
        const char *via, *want;
        csip_transport tp;
    } ok[] = {
        {"SIP/2.0/UDP 10.1.1.1:5080;received=198.51.100.7;rport=4000", "198.51.100.7:4000",
         CSIP_TP_UDP},
        /* rport without a value needs the source: received and the sent-by port */
        {"SIP/2.0/UDP 10.1.1.1:5080;received=198.51.100.7;rport", "198.51.100.7:5080", CSIP_TP_UDP},
        {"SIP/2.0/UDP 192.0.2.1;rport=4000", "192.0.2.1:4000", CSIP_TP_UDP},
        {"SIP/2.0/TCP 192.0.2.1:5070", "192.0.2.1:5070", CSIP_TP_TCP},
        {"SIP/2.0/TLS [2001:db8::1]", "[2001:db8::1]:5061", CSIP_TP_TLS},
        {"SIP/2.0/UDP host.example.com;maddr=224.0.1.75", "224.0.1.75:5060", CSIP_TP_UDP},
    };
    char text[1024];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(text, sizeof text,
                 "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\n"
                 "Call-ID: d1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                 ok[i].via);
        csip_msg *m = parse(text);
        csip_addr out;
        memset(&out, 0xaa, sizeof out);
        EXPECT_OK(csip_txn_response_dest(m, NULL, &out));
        EXPECT_CSTR(addr_str(&out), ok[i].want);
        EXPECT_EQ(out.transport, ok[i].tp);
        EXPECT_EQ(out.conn, 0);
        csip_msg_free(m);
    }
    static const char *const bad[] = {
        "SIP/2.0/UDP client.example.com:5080", /* a host name: the core does no DNS */
        "SIP/2.0/UDP client.example.com;rport=4000",
        "SIP/2.0/XYZ 192.0.2.1", /* unknown transport */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text,
                 "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\n"
                 "Call-ID: d1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                 bad[i]);
        csip_msg *m = parse(text);
        csip_addr out;
        EXPECT_EQ(csip_txn_response_dest(m, NULL, &out), CSIP_ERR_INVALID_ARG);
        csip_msg_free(m);
    }
    /* with the source: a host name is fine (the source address), TCP keeps the connection */
    csip_msg *m = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP client.example.com:5080\r\n"
                        "From: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\nCall-ID: d1\r\n"
                        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    csip_addr src = addr("192.0.2.9", 40000, CSIP_TP_TCP);
    src.conn = 9;
    csip_addr out;
    EXPECT_OK(csip_txn_response_dest(m, &src, &out));
    EXPECT_CSTR(addr_str(&out), "192.0.2.9:5080");
    EXPECT_EQ(out.conn, 9);
    EXPECT_EQ(csip_txn_response_dest(NULL, &src, &out), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_response_dest(m, &src, NULL), CSIP_ERR_INVALID_ARG);
    csip_msg_free(m);
    m = parse("SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\n"
              "Call-ID: d1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(csip_txn_response_dest(m, &src, &out), CSIP_ERR_INVALID_ARG); /* no Via */
    csip_msg_free(m);
}

#define RESP(code, via, method)                                                                    \
    "SIP/2.0 " code " X\r\nVia: " via "\r\nFrom: <sip:alice@example.com>;tag=f\r\n"                \
    "To: <sip:bob@example.com>;tag=t\r\nCall-ID: c1@example.com\r\n"                               \
    "CSeq: 1 " method "\r\nContent-Length: 0\r\n\r\n"
#define VIA_AB "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKab"

static int count_final(void)
{
    int n = 0;
    for (int i = 0; i < C.nresp; i++)
        n += C.resp_status[i] >= 200;
    return n;
}

static void test_abandon_non_invite(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_txn *ct = NULL;
    EXPECT_EQ(csip_txn_client_abandon(NULL, 0), CSIP_ERR_INVALID_ARG);
    /* Trying: a 408 at once, inside the call */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 0, &ct));
    csip_txn_layer_handle_expiry(l, 500); /* Timer E */
    EXPECT_EQ(C.nout, 2);
    EXPECT_OK(csip_txn_client_abandon(ct, 700));
    ASSERT_EQ(C.nresp, 1);
    EXPECT_EQ(C.resp_status[0], 408);
    EXPECT_TRUE(C.resp_null[0]);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_TERMINATED);
    EXPECT_EQ(csip_txn_end_state(ct), CSIP_TXN_TRYING);
    EXPECT_EQ(C.nterm, 0);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 700);
    /* again, and a late 200: nothing more goes up */
    EXPECT_OK(csip_txn_client_abandon(ct, 700));
    EXPECT_OK(feed(l, RESP("200", VIA_AB, "OPTIONS"), &dst, 700));
    EXPECT_EQ(C.nresp, 1);
    csip_txn_layer_handle_expiry(l, 700);
    ASSERT_EQ(C.nterm, 1);
    EXPECT_EQ(C.term_why[0], CSIP_TXN_END_TIMEOUT);
    EXPECT_EQ(C.term_state[0], CSIP_TXN_TRYING);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX);
    EXPECT_EQ(C.nout, 2); /* no retransmission after the abandon */

    /* Proceeding: the same */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 1000, &ct));
    EXPECT_OK(feed(l, RESP("100", VIA_AB, "OPTIONS"), &dst, 1010));
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_PROCEEDING);
    EXPECT_OK(csip_txn_client_abandon(ct, 1020));
    ASSERT_EQ(C.nresp, 3);
    EXPECT_EQ(C.resp_status[2], 408);
    csip_txn_layer_handle_expiry(l, 1020);
    ASSERT_EQ(C.nterm, 2);
    EXPECT_EQ(C.term_state[1], CSIP_TXN_PROCEEDING);

    /* Completed: the final went up, nothing changes (Timer K ends it) */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 2000, &ct));
    EXPECT_OK(feed(l, RESP("404", VIA_AB, "OPTIONS"), &dst, 2010));
    EXPECT_OK(csip_txn_client_abandon(ct, 2020));
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_COMPLETED);
    EXPECT_EQ(count_final(), 3);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 2010 + 5000);
    csip_txn_layer_handle_expiry(l, 2010 + 5000);
    ASSERT_EQ(C.nterm, 3);
    EXPECT_EQ(C.term_why[2], CSIP_TXN_END_NORMAL);
    EXPECT_EQ(C.term_state[2], CSIP_TXN_COMPLETED);

    /* server transactions cannot be abandoned */
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_OK(feed(l, req_text("OPTIONS", VIA1, "f", "", 1, NULL), &src, 8000));
    ASSERT_EQ(C.nreq, 1);
    EXPECT_EQ(csip_txn_client_abandon(C.st[0], 8000), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_txn_state_of(C.st[0]), CSIP_TXN_TRYING);
    teardown(l);
    ASSERT_EQ(C.nterm, 4);
    EXPECT_EQ(C.term_why[3], CSIP_TXN_END_DESTROYED);
    EXPECT_EQ(C.term_state[3], CSIP_TXN_TRYING);
}

static void test_abandon_invite(void)
{
    csip_txn_layer *l = setup(NULL);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_TCP);
    csip_txn *ct = NULL;
    /* Calling: the guard is 64*T1 from the abandon, Timer B from the start
     * comes first (TCP: no retransmissions) */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("INVITE", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 0, &ct));
    EXPECT_OK(csip_txn_client_abandon(ct, 1000));
    EXPECT_EQ(C.nresp, 0);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_CALLING);
    csip_txn_layer_handle_expiry(l, 31999);
    EXPECT_EQ(C.nresp, 0);
    csip_txn_layer_handle_expiry(l, 32000);
    ASSERT_EQ(C.nresp, 1);
    EXPECT_EQ(C.resp_status[0], 408);
    ASSERT_EQ(C.nterm, 1);
    EXPECT_EQ(C.term_why[0], CSIP_TXN_END_TIMEOUT);
    EXPECT_EQ(C.term_state[0], CSIP_TXN_CALLING);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX); /* no guard left behind */

    /* Proceeding: 408 64*T1 after the abandon; a later abandon or CANCEL
     * does not push it back */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("INVITE", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 40000, &ct));
    EXPECT_OK(feed(l, RESP("180", VIA_AB, "INVITE"), &dst, 40010));
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX);
    EXPECT_OK(csip_txn_client_abandon(ct, 41000));
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 41000 + 32000);
    EXPECT_OK(csip_txn_client_abandon(ct, 45000));
    csip_txn *cancel = NULL;
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("CANCEL", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 46000, &cancel));
    EXPECT_OK(feed(l, RESP("200", VIA_AB, "CANCEL"), &dst, 46010)); /* Timer K 0 on TCP */
    csip_txn_layer_handle_expiry(l, 46010);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 41000 + 32000);
    int nresp = C.nresp, nterm = C.nterm;
    /* the guard fires: 408, and the transaction ends in the same expiry run */
    csip_txn_layer_handle_expiry(l, 41000 + 32000);
    ASSERT_EQ(C.nresp, nresp + 1);
    EXPECT_EQ(C.resp_status[nresp], 408);
    EXPECT_TRUE(C.resp_null[nresp]);
    ASSERT_EQ(C.nterm, nterm + 1);
    EXPECT_TRUE(C.term[nterm] == ct);
    EXPECT_EQ(C.term_state[C.nterm - 1], CSIP_TXN_PROCEEDING);
    EXPECT_EQ(C.term_why[C.nterm - 1], CSIP_TXN_END_TIMEOUT);
    /* the 487 after the 408: absorbed */
    EXPECT_OK(feed(l, RESP("487", VIA_AB, "INVITE"), &dst, 73500));
    EXPECT_EQ(C.nresp, nresp + 1);
    EXPECT_EQ(csip_txn_layer_count(l), 0);

    /* Proceeding, and the 487 comes in time: it goes up, the guard is gone */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("INVITE", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 100000, &ct));
    EXPECT_OK(feed(l, RESP("180", VIA_AB, "INVITE"), &dst, 100010));
    EXPECT_OK(csip_txn_client_abandon(ct, 100020));
    nresp = C.nresp;
    EXPECT_OK(feed(l, RESP("487", VIA_AB, "INVITE"), &dst, 100030));
    ASSERT_EQ(C.nresp, nresp + 1);
    EXPECT_EQ(C.resp_status[nresp], 487);
    EXPECT_EQ(csip_txn_state_of(ct), CSIP_TXN_COMPLETED);
    csip_txn_layer_handle_expiry(l, 100030); /* Timer D: 0 on TCP */
    EXPECT_EQ(C.term_state[C.nterm - 1], CSIP_TXN_COMPLETED);
    EXPECT_EQ(C.term_why[C.nterm - 1], CSIP_TXN_END_NORMAL);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), UINT64_MAX);

    /* Accepted: nothing changes, further 2xx still go up, Timer M ends it */
    ASSERT_OK(csip_txn_client_new(l, parse(req_text("INVITE", VIA_AB, "f", "", 1, NULL)), &dst,
                                  NULL, 200000, &ct));
    EXPECT_OK(feed(l, RESP("200", VIA_AB, "INVITE"), &dst, 200010));
    EXPECT_OK(csip_txn_client_abandon(ct, 200020));
    nresp = C.nresp;
    EXPECT_OK(feed(l, RESP("200", VIA_AB, "INVITE"), &dst, 200030));
    ASSERT_EQ(C.nresp, nresp + 1);
    EXPECT_EQ(C.resp_status[nresp], 200);
    EXPECT_EQ(csip_txn_layer_next_expiry(l), 200010 + 32000);
    csip_txn_layer_handle_expiry(l, 200010 + 32000);
    EXPECT_EQ(C.term_state[C.nterm - 1], CSIP_TXN_ACCEPTED);
    /* every transaction had exactly one final response */
    int finals_408 = 0;
    for (int i = 0; i < C.nresp; i++)
        finals_408 += C.resp_status[i] == 408;
    EXPECT_EQ(finals_408, 2);
    teardown(l);
}

/* What a transaction holds while it lives: the printed request only while a
 * timer may resend it, the last response only while it may be resent. */
static size_t g_live;

static void *cnt_malloc(size_t n, void *ud)
{
    (void)ud;
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    *p = n;
    g_live += n;
    return (char *)p + 16;
}
static void cnt_free(void *ptr, void *ud)
{
    (void)ud;
    if (!ptr)
        return;
    size_t *p = (size_t *)(void *)((char *)ptr - 16);
    g_live -= *p;
    free(p);
}
static void *cnt_realloc(void *ptr, size_t n, void *ud)
{
    if (!ptr)
        return cnt_malloc(n, ud);
    size_t *p = (size_t *)(void *)((char *)ptr - 16);
    size_t old = *p;
    size_t *q = realloc(p, n + 16);
    if (!q)
        return NULL;
    *q = n;
    g_live = g_live - old + n;
    return (char *)q + 16;
}

static void test_memory_kept(void)
{
    csip_mem mem = {cnt_malloc, cnt_free, cnt_realloc, NULL};
    csip_txn_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.mem = &mem;
    csip_parse_opts po = {{0}, &mem};
    char inv[2048];
    snprintf(inv, sizeof inv, "%s", req_text("INVITE", VIA_AB, "f", "", 1, NULL));
    size_t inv_len = strlen(inv);
    csip_addr udp = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_addr tcp = addr("192.0.2.2", 5060, CSIP_TP_TCP);
    csip_msg *req = NULL;
    csip_txn *ct = NULL;
    size_t held[2][2]; /* [edited][tcp]: bytes a new client transaction adds */
    int edited_len = 0;
    for (int edited = 0; edited < 2; edited++) {
        for (int reliable = 0; reliable < 2; reliable++) {
            csip_txn_layer *l = setup(&opts);
            ASSERT_OK(csip_msg_parse(inv, inv_len, &po, &req, NULL));
            if (edited) {
                ASSERT_OK(csip_msg_set_max_forwards(req, 69));
                edited_len = csip_msg_print(req, NULL, 0);
            }
            size_t before = g_live;
            ASSERT_OK(csip_txn_client_new(l, req, reliable ? &tcp : &udp, NULL, 0, &ct));
            held[edited][reliable] = g_live - before;
            ASSERT_EQ(C.nout, 1);
            EXPECT_EQ(C.out[0].len, edited ? (size_t)edited_len : inv_len);
            EXPECT_EQ(strstr(C.out[0].data, "Max-Forwards: 69") != NULL, edited);
            if (!reliable) {
                /* Timer A resends the same bytes */
                csip_txn_layer_handle_expiry(l, 500);
                ASSERT_EQ(C.nout, 2);
                EXPECT_EQ(C.out[1].len, C.out[0].len);
                EXPECT_EQ(memcmp(C.out[1].data, C.out[0].data, C.out[0].len), 0);
                /* Calling ends: whatever was kept for Timer A goes */
                size_t calling = g_live;
                EXPECT_OK(feed(l, RESP("180", VIA_AB, "INVITE"), &udp, 600));
                EXPECT_EQ(calling - g_live, edited ? (size_t)edited_len : 0);
            }
            teardown(l);
            EXPECT_EQ(g_live, 0);
        }
    }
    /* an unedited request is sent from its own bytes: no copy, on any transport;
     * an edited one is copied for Timer A only */
    EXPECT_EQ(held[0][0], held[0][1]);
    EXPECT_EQ(held[1][0] - held[1][1], (size_t)edited_len);

    /* INVITE server: the final response goes once Confirmed */
    csip_txn_layer *l = setup(&opts);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_OK(feed(l, req_text("INVITE", VIA1, "f", "", 1, NULL), &src, 0));
    ASSERT_EQ(C.nreq, 1);
    EXPECT_OK(respond(C.st[0], 486, 0));
    size_t completed = g_live;
    EXPECT_OK(feed(l, req_text("ACK", VIA1, "f", "srv", 1, NULL), &src, 10));
    EXPECT_EQ(csip_txn_state_of(C.st[0]), CSIP_TXN_CONFIRMED);
    ASSERT_EQ(C.nout, 1);
    EXPECT_EQ(completed - g_live, C.out[0].len);
    teardown(l);
    EXPECT_EQ(g_live, 0);
}

static void test_reentrant_expiry(void)
{
    /* callbacks that call csip_txn_layer_handle_expiry change nothing */
    csip_txn_layer *l = setup(NULL);
    C.reenter = true;
    C.answer = 486;
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_OK(feed(l, req_text("INVITE", VIA1, "f", "", 1, NULL), &src, 0));
    EXPECT_EQ(csip_txn_layer_count(l), 1);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_txn *ct = NULL;
    ASSERT_OK(csip_txn_client_new(
        l,
        parse(req_text("OPTIONS", "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKr", "f", "", 1, NULL)),
        &dst, NULL, 0, &ct));
    csip_txn_layer_handle_expiry(l, 31999);
    EXPECT_EQ(C.nterm, 0);
    /* Timer F and Timer H: on_response re-enters, the run goes on */
    csip_txn_layer_handle_expiry(l, 32000);
    EXPECT_EQ(C.nresp, 1);
    EXPECT_EQ(C.nterm, 2);
    EXPECT_EQ(csip_txn_layer_count(l), 0);
    teardown(l);
}

/* Many transactions: the table grows, the heap keeps deadlines in order. */
static uint64_t g_now;
static int g_late;

static void many_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status,
                          void *ud)
{
    (void)l;
    (void)resp;
    (void)ud;
    uint64_t start = (uint64_t)(uintptr_t)csip_txn_user_data(ct);
    if (status != 408 || g_now != start + 32000)
        g_late++;
}

static int null_send(csip_txn_layer *l, const csip_addr *dst, const void *data, size_t len,
                     void *ud)
{
    (void)l;
    (void)dst;
    (void)data;
    (void)len;
    (void)ud;
    return 0;
}

static void test_many(void)
{
    csip_txn_callbacks cb = {null_send, NULL, many_response, NULL, NULL};
    csip_txn_layer *l = NULL;
    ASSERT_OK(csip_txn_layer_new(NULL, &cb, NULL, &l));
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    enum { N = 3000 };
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        char via[128];
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t start = (x >> 33) % 20000;
        snprintf(via, sizeof via, "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKc%d", i);
        csip_txn *ct;
        ASSERT_OK(csip_txn_client_new(l, parse(req_text("OPTIONS", via, "f", "", 1, NULL)), &dst,
                                      (void *)(uintptr_t)start, start, &ct));
        snprintf(via, sizeof via, "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKs%d", i);
        EXPECT_OK(feed(l, req_text("MESSAGE", via, "f", "", 1, NULL), &src, start));
        EXPECT_OK(feed(l, req_text("MESSAGE", via, "f", "", 1, NULL), &src, start));
    }
    EXPECT_EQ(csip_txn_layer_count(l), 2 * N);
    csip_txn_stats st;
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.absorbed, N);
    /* run the clock: every client times out exactly at its start + 64*T1 */
    uint64_t t;
    while ((t = csip_txn_layer_next_expiry(l)) != UINT64_MAX && t < 100000) {
        g_now = t;
        csip_txn_layer_handle_expiry(l, t);
    }
    EXPECT_EQ(g_late, 0);
    EXPECT_EQ(csip_txn_layer_count(l), N); /* the servers wait for their TU */
    csip_txn_layer_stats(l, &st);
    EXPECT_EQ(st.timeouts, N);
    csip_txn_layer_free(l);
}

/* An allocator that fails after a budget. */
static void *fa_malloc(size_t n, void *ud)
{
    (void)ud;
    if (g_budget-- <= 0)
        return NULL;
    return malloc(n);
}
static void fa_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}
static void *fa_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (g_budget-- <= 0)
        return NULL;
    return realloc(p, n);
}

/* A stateless answer that cannot be printed (no memory for one longer than
 * the stack buffer) is refused with CSIP_ERR_NOMEM: nothing sent, the
 * transaction as it was, so the TU can answer again. */
static void test_stateless_nomem(void)
{
    csip_mem mem = {fa_malloc, fa_free, fa_realloc, NULL};
    csip_txn_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.mem = &mem;
    g_budget = 1000;
    csip_txn_layer *l = setup(&opts);
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    EXPECT_OK(feed(l, req_text("OPTIONS", VIA1, "f", "", 1, NULL), &src, 0));
    ASSERT_EQ(C.nreq, 1);
    csip_txn *st = C.st[0];
    static char longval[3001];
    memset(longval, 'a', sizeof longval - 1);
    csip_msg *r;
    for (int attempt = 0; attempt < 2; attempt++) {
        ASSERT_OK(csip_response_for(csip_txn_request(st), 401, NULL, CSIP_STR("sl"), NULL, &r));
        ASSERT_OK(csip_msg_hdr_add(r, CSIP_HDR_WWW_AUTHENTICATE, csip_str_c(longval), false));
        g_budget = attempt == 0 ? 0 : 1000;
        int rc = csip_txn_respond_stateless(st, r, 1);
        if (attempt == 0) {
            EXPECT_EQ(rc, CSIP_ERR_NOMEM);
            EXPECT_EQ(C.nout, 0);
            EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_TRYING);
        } else {
            EXPECT_OK(rc);
            ASSERT_EQ(C.nout, 1);
            EXPECT_TRUE(C.out[0].len > 3000);
            EXPECT_EQ(csip_txn_state_of(st), CSIP_TXN_TERMINATED);
        }
    }
    g_budget = 1000;
    teardown(l);
}

static void test_failing_alloc(void)
{
    csip_mem mem = {fa_malloc, fa_free, fa_realloc, NULL};
    csip_txn_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.mem = &mem;
    csip_addr src = addr("192.0.2.9", 5080, CSIP_TP_UDP);
    csip_addr dst = addr("192.0.2.2", 5060, CSIP_TP_UDP);
    int completed = 0;
    for (long budget = 0; budget < 200; budget++) {
        reset_out();
        memset(&C, 0, sizeof C);
        C.answer = 486;
        g_budget = budget;
        csip_txn_layer *l = NULL;
        if (csip_txn_layer_new(&opts, &CB, NULL, &l) != 0)
            continue;
        (void)feed(l, req_text("INVITE", VIA1, "f", "", 1, NULL), &src, 0);
        (void)feed(l, req_text("INVITE", VIA1, "f", "", 1, NULL), &src, 1);
        (void)feed(l, req_text("ACK", VIA1, "f", "srv", 1, NULL), &src, 2);
        (void)feed(l, req_text("OPTIONS", "SIP/2.0/UDP h;branch=1", "f", "", 1, NULL), &src, 3);
        csip_msg *req = NULL;
        csip_parse_opts po = {{0}, &mem};
        const char *inv = req_text("INVITE", "SIP/2.0/UDP h;branch=z9hG4bKc", "f", "", 1, NULL);
        if (csip_msg_parse(inv, strlen(inv), &po, &req, NULL) == 0) {
            csip_txn *ct = NULL;
            int rc = csip_txn_client_new(l, req, &dst, NULL, 4, &ct);
            EXPECT_TRUE(rc == 0 || rc == CSIP_ERR_NOMEM);
            (void)feed(l,
                       "SIP/2.0 486 Busy\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKc\r\n"
                       "From: <sip:alice@example.com>;tag=f\r\nTo: <sip:bob@example.com>;tag=x\r\n"
                       "Call-ID: c1@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                       &dst, 5);
        } else {
            csip_msg_free(req);
        }
        uint64_t t;
        while ((t = csip_txn_layer_next_expiry(l)) != UINT64_MAX)
            csip_txn_layer_handle_expiry(l, t);
        if (C.nresp && C.nterm >= 2)
            completed++;
        /* server transactions whose TU could not answer wait; the rest ended */
        EXPECT_LE(csip_txn_layer_count(l), 2);
        csip_txn_layer_free(l);
    }
    EXPECT_GT(completed, 0);
    reset_out();
}

/* The table itself: runs that wrap around the end of the slot array, equal
 * hashes, growth, and removal in any order (the backward shift) keep every
 * remaining transaction findable, and only those. */
static bool table_has(const csip_txn_layer *l, const csip_txn *t)
{
    size_t pos = csip__txn_probe(l, t->hash);
    for (csip_txn *x; (x = csip__txn_next(l, t->hash, &pos)) != NULL;)
        if (x == t)
            return true;
    return false;
}

/* The timers: deadlines that come in order join the lane (constant time,
 * no sift), others the heap; re-armed, disarmed or taken from the middle of
 * the lane, every armed transaction comes out of csip__txn_earliest() once,
 * in deadline order. */
static void test_timer_order(void)
{
    enum { N = 500 };
    static csip_txn tx[N];
    csip_txn_layer l;
    memset(&l, 0, sizeof l);
    memset(tx, 0, sizeof tx);
    ASSERT_OK(csip__txn_table_init(&l));
    for (int i = 0; i < N; i++) {
        tx[i].hash = (uint64_t)i;
        tx[i].heap_idx = TXN_NO_HEAP;
        for (int k = 0; k < TM__COUNT; k++)
            tx[i].tm[k] = TXN_NEVER;
        tx[i].due = TXN_NEVER;
        ASSERT_OK(csip__txn_reserve(&l));
        csip__txn_table_insert(&l, &tx[i]);
    }
    /* one length armed one after another (Timer J): all in the lane */
    for (int i = 0; i < 200; i++) {
        tx[i].tm[TM_END] = 1000 + 10 * (uint64_t)i;
        csip__txn_heap_update(&l, &tx[i]);
        ASSERT_EQ(tx[i].heap_idx, TXN_IN_LANE);
    }
    EXPECT_EQ(l.heap_len, (size_t)0);
    /* then deadlines in any order, some equal to others */
    uint64_t rnd = 0x2545f4914f6cdd1du;
    size_t in_heap = 0;
    for (int i = 200; i < N; i++) {
        rnd = rnd * 6364136223846793005u + 1442695040888963407u;
        int slot = (int)((rnd >> 20) % TM__COUNT);
        uint64_t due = (rnd >> 33) % 4000;
        bool before_tail = due < l.lane_tail->due;
        tx[i].tm[slot] = due;
        csip__txn_heap_update(&l, &tx[i]);
        EXPECT_EQ(tx[i].heap_idx == TXN_IN_LANE, !before_tail);
        in_heap += before_tail;
    }
    EXPECT_EQ(l.heap_len, in_heap);
    EXPECT_TRUE(in_heap > 100 && in_heap < N - 200);
    /* re-armed earlier or later, a second slot armed, or disarmed: from the
     * heap and from anywhere in the lane (head, tail, middle) */
    bool armed[N];
    for (int i = 0; i < N; i++) {
        rnd = rnd * 6364136223846793005u + 1442695040888963407u;
        uint64_t r = rnd >> 33;
        csip_txn *t = &tx[i];
        if (i == 0 || i == 199 || r % 5 == 0) {
            for (int k = 0; k < TM__COUNT; k++)
                t->tm[k] = TXN_NEVER;
        } else if (r % 5 == 1) {
            t->tm[TM_AUX] = r % 3000;
        } else if (r % 5 == 2) {
            for (int k = 0; k < TM__COUNT; k++)
                if (t->tm[k] != TXN_NEVER)
                    t->tm[k] += r % 700;
        }
        csip__txn_heap_update(&l, t);
        armed[i] = t->due != TXN_NEVER;
        EXPECT_EQ(t->heap_idx == TXN_NO_HEAP, !armed[i]);
    }
    /* out in order, each armed one once, as the expiry run takes them */
    uint64_t last = 0;
    size_t out = 0, want = 0;
    for (int i = 0; i < N; i++)
        want += armed[i];
    for (csip_txn *t; (t = csip__txn_earliest(&l)) != NULL; out++) {
        ASSERT_TRUE(t >= tx && t < tx + N && armed[t - tx]);
        EXPECT_TRUE(t->due >= last);
        last = t->due;
        armed[t - tx] = false;
        for (int k = 0; k < TM__COUNT; k++)
            t->tm[k] = TXN_NEVER;
        csip__txn_heap_update(&l, t);
    }
    EXPECT_EQ(out, want);
    EXPECT_TRUE(l.lane_head == NULL && l.lane_tail == NULL && l.heap_len == 0);
    csip__txn_table_free(&l);
}

static void test_table_probing(void)
{
    enum { N = 600 };
    static csip_txn tx[N];
    static bool in[N];
    csip_txn_layer l;
    memset(&l, 0, sizeof l);
    ASSERT_OK(csip__txn_table_init(&l));
    uint64_t rnd = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 4; round++) {
        memset(tx, 0, sizeof tx);
        memset(in, 0, sizeof in);
        for (int i = 0; i < N; i++) {
            rnd = rnd * 6364136223846793005u + 1442695040888963407u;
            /* few distinct homes, many near the end of the array, some equal */
            uint64_t h = round % 2 ? (rnd >> 33) % 9 : (uint64_t)-1 - (rnd >> 33) % 7;
            if (i % 10 == 0)
                h = 5;
            tx[i].hash = h | (uint64_t)(i % 3) << 40;
            ASSERT_OK(csip__txn_reserve(&l));
            csip__txn_table_insert(&l, &tx[i]);
            in[i] = true;
        }
        ASSERT_EQ(l.count, (size_t)N);
        ASSERT_TRUE(l.count * 2 <= l.nslots);
        if (round == 3) {
            /* emptied as csip_txn_layer_free() does: any, remove, again */
            size_t n = 0;
            for (csip_txn *t; (t = csip__txn_table_any(&l)) != NULL; n++) {
                ASSERT_TRUE(t >= tx && t < tx + N && in[t - tx]);
                in[t - tx] = false;
                csip__txn_table_remove(&l, t);
            }
            EXPECT_EQ(n, (size_t)N);
        }
        for (int k = 0; k < N && l.count; k++) {
            rnd = rnd * 6364136223846793005u + 1442695040888963407u;
            int i = (int)((rnd >> 33) % N);
            while (!in[i])
                i = (i + 1) % N;
            csip__txn_table_remove(&l, &tx[i]);
            in[i] = false;
            csip__txn_table_remove(&l, &tx[i]); /* not there: a no-op */
            if (k % 37 == 0 || k > N - 40)
                for (int j = 0; j < N; j++)
                    ASSERT_EQ(table_has(&l, &tx[j]), in[j]);
        }
        ASSERT_EQ(l.count, (size_t)0);
        EXPECT_TRUE(csip__txn_table_any(&l) == NULL);
    }
    csip__txn_table_free(&l);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_branch),
        CHECK_TEST(test_hash_fold),
        CHECK_TEST(test_layer_api),
        CHECK_TEST(test_client_errors),
        CHECK_TEST(test_ack_for_non2xx),
        CHECK_TEST(test_stray_and_client_matching),
        CHECK_TEST(test_server_matching),
        CHECK_TEST(test_non_invite_server),
        CHECK_TEST(test_stateless_nomem),
        CHECK_TEST(test_drop_completed),
        CHECK_TEST(test_prepared),
        CHECK_TEST(test_rfc2543),
        CHECK_TEST(test_malformed),
        CHECK_TEST(test_overload),
        CHECK_TEST(test_via_stamped),
        CHECK_TEST(test_response_routing),
        CHECK_TEST(test_respond_errors),
        CHECK_TEST(test_respond_2xx_again),
        CHECK_TEST(test_response_dest_api),
        CHECK_TEST(test_abandon_non_invite),
        CHECK_TEST(test_abandon_invite),
        CHECK_TEST(test_memory_kept),
        CHECK_TEST(test_transport_errors),
        CHECK_TEST(test_reentrant_expiry),
        CHECK_TEST(test_many),
        CHECK_TEST(test_table_probing),
        CHECK_TEST(test_timer_order),
        CHECK_TEST(test_failing_alloc),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
