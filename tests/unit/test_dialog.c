/*
 * Dialogs (RFC 3261 §12): UAC and UAS creation from realistic messages (the
 * RFC 3665 §3.2 call through two record-routing proxies), route sets, loose
 * and strict routing, CSeq ordering, target refresh, glare, forking,
 * matching, the builders, limits and a failing allocator.
 */
#include "check.h"
#include "csip/dialog.h"

/* ---- helpers ------------------------------------------------------------ */

/* Parses text written with "\n" line ends (sent as CRLF). */
static csip_msg *msg_nl(const char *text)
{
    size_t n = strlen(text), k = 0;
    char *buf = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n')
            buf[k++] = '\r';
        buf[k++] = text[i];
    }
    csip_msg *m = NULL;
    csip_parse_error err;
    int rc = csip_msg_parse(buf, k, NULL, &m, &err);
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "parse failed: %s at %zu\n", csip_err_name(rc), err.offset);
        csip_msg_free(m);
        return NULL;
    }
    return m;
}

static char printbuf[16384];

static const char *printed(const csip_msg *m)
{
    int n = csip_msg_print(m, printbuf, sizeof printbuf - 1);
    if (n < 0)
        n = 0;
    printbuf[n] = 0;
    return printbuf;
}

/* The start line of a printed message. */
static char startbuf[1024];
static const char *start_line(const char *p)
{
    const char *e = strstr(p, "\r\n");
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= sizeof startbuf)
        n = sizeof startbuf - 1;
    memcpy(startbuf, p, n);
    startbuf[n] = 0;
    return startbuf;
}

/* Every header line starting with "name:" in order, joined by '|'. */
static char linesbuf[4096];
static const char *lines_of(const char *p, const char *name)
{
    size_t nl = strlen(name), k = 0;
    linesbuf[0] = 0;
    const char *line = strstr(p, "\r\n");
    while (line && line[2] != '\r') {
        line += 2;
        const char *e = strstr(line, "\r\n");
        if (!e)
            break;
        if ((size_t)(e - line) > nl && memcmp(line, name, nl) == 0 && line[nl] == ':') {
            if (k)
                linesbuf[k++] = '|';
            size_t n = (size_t)(e - line);
            if (k + n + 1 >= sizeof linesbuf)
                break;
            memcpy(linesbuf + k, line, n);
            k += n;
            linesbuf[k] = 0;
        }
        line = e;
    }
    return linesbuf;
}

static csip_str S(const char *s)
{
    return csip_str_c(s);
}

/* ---- messages (RFC 3665 §3.2: Alice calls Bob through ss1 and ss2) ------ */

static const char ALICE_INVITE[] =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
    "Max-Forwards: 70\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\n"
    "Proxy-Authorization: Digest username=\"alice\", realm=\"atlanta.example.com\", "
    "nonce=\"wf84f1ceczx41ae6cbe5aea9c8e88d359\", uri=\"sip:bob@biloxi.example.com\", "
    "response=\"42ce3cef44b22f50c6a6071bc8\"\n"
    "Content-Length: 0\n"
    "\n";

/* What Alice receives: the proxies' Record-Route, Bob's tag and Contact. */
static const char BOB_180[] = "SIP/2.0 180 Ringing\n"
                              "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9"
                              ";received=192.0.2.101\n"
                              "Record-Route: <sip:ss2.biloxi.example.com;lr>\n"
                              "Record-Route: <sip:ss1.atlanta.example.com;lr>\n"
                              "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                              "To: Bob <sip:bob@biloxi.example.com>;tag=314159\n"
                              "Call-ID: 3848276298220188511@atlanta.example.com\n"
                              "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>\n"
                              "CSeq: 1 INVITE\n"
                              "Content-Length: 0\n"
                              "\n";

static const char BOB_200[] = "SIP/2.0 200 OK\n"
                              "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9"
                              ";received=192.0.2.101\n"
                              "Record-Route: <sip:ss2.biloxi.example.com;lr>, "
                              "<sip:ss1.atlanta.example.com;lr>\n"
                              "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                              "To: Bob <sip:bob@biloxi.example.com>;tag=314159\n"
                              "Call-ID: 3848276298220188511@atlanta.example.com\n"
                              "CSeq: 1 INVITE\n"
                              "Contact: <sip:bob@192.0.2.4;transport=tcp>\n"
                              "Content-Length: 0\n"
                              "\n";

/* What Bob receives. */
static const char BOB_INVITE[] =
    "INVITE sip:bob@client.biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1\n"
    "Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1"
    ";received=192.0.2.111\n"
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9"
    ";received=192.0.2.101\n"
    "Max-Forwards: 68\n"
    "Record-Route: <sip:ss2.biloxi.example.com;lr>\n"
    "Record-Route: <sip:ss1.atlanta.example.com;lr>\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\n"
    "Content-Length: 0\n"
    "\n";

static const csip_dialog_req BYE = {.method = {"BYE", 3},
                                    .via = {"SIP/2.0/TCP client.atlanta.example.com:5060", 43}};

/* An in-dialog request as Bob (UAS side) receives it from Alice. */
static csip_msg *alice_request(const char *method, uint32_t cseq, const char *contact)
{
    char buf[2048];
    char cline[256] = "";
    if (contact)
        snprintf(cline, sizeof cline, "Contact: %s\n", contact);
    snprintf(buf, sizeof buf,
             "%s sip:bob@client.biloxi.example.com SIP/2.0\n"
             "Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.%u\n"
             "Max-Forwards: 68\n"
             "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
             "To: Bob <sip:bob@biloxi.example.com>;tag=bobtag1\n"
             "Call-ID: 3848276298220188511@atlanta.example.com\n"
             "CSeq: %u %s\n"
             "%s"
             "Content-Length: 0\n"
             "\n",
             method, cseq, cseq, method, cline);
    return msg_nl(buf);
}

/* Bob's side of the RFC 3665 call: the INVITE, then a 180 and a 200 from
 * the dialog, confirmed. Returns the dialog; *inv is the INVITE (free it). */
static csip_dialog *bob_dialog(csip_dialog_table *tab, csip_msg **inv)
{
    *inv = msg_nl(BOB_INVITE);
    if (!*inv)
        return NULL;
    csip_msg *r180 = NULL;
    if (csip_dialog_uas_response(*inv, 180, NULL, S("bobtag1"),
                                 S("<sip:bob@client.biloxi.example.com;transport=tcp>"), NULL,
                                 &r180) != 0)
        return NULL;
    csip_dialog *d = NULL;
    int rc = csip_dialog_uas_new(tab, *inv, r180, 0, &d);
    csip_msg_free(r180);
    if (rc != 0)
        return NULL;
    csip_msg *r200 = NULL;
    if (csip_dialog_response(d, *inv, 200, NULL, &r200) != 0)
        return NULL;
    csip_msg_free(r200);
    return d;
}

/* ---- identifiers ---------------------------------------------------------- */

static void test_identifiers(void)
{
    char a[17], b[17];
    ASSERT_EQ(csip_dialog_new_tag(a, sizeof a), 16);
    ASSERT_EQ(csip_dialog_new_tag(b, sizeof b), 16);
    EXPECT_EQ(strlen(a), 16);
    EXPECT_TRUE(strcmp(a, b) != 0);
    EXPECT_TRUE(csip_is_token(S(a)));
    EXPECT_EQ(csip_dialog_new_tag(a, 16), CSIP_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(csip_dialog_new_tag(NULL, 17), CSIP_ERR_BUFFER_TOO_SMALL);

    char c[64], e[64];
    ASSERT_EQ(csip_dialog_new_call_id(CSIP_STR_NULL, c, sizeof c), 22);
    EXPECT_EQ(strlen(c), 22);
    ASSERT_EQ(csip_dialog_new_call_id(S("client.atlanta.example.com"), e, sizeof e), 49);
    EXPECT_TRUE(strcmp(e + 22, "@client.atlanta.example.com") == 0);
    EXPECT_TRUE(memcmp(c, e, 22) != 0);
    EXPECT_EQ(csip_dialog_new_call_id(S("a b"), e, sizeof e), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_new_call_id(S("host"), e, 22 + 5 + 1 - 1), CSIP_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(csip_dialog_new_call_id(S("host"), e, 22 + 5 + 1), 27);

    /* The id of a message: local = To tag for requests, From tag for responses. */
    csip_msg *r = msg_nl(BOB_180);
    ASSERT_TRUE(r != NULL);
    csip_dialog_id id;
    ASSERT_OK(csip_dialog_id_of(r, &id));
    EXPECT_STR(id.call_id, "3848276298220188511@atlanta.example.com");
    EXPECT_STR(id.local_tag, "9fxced76sl");
    EXPECT_STR(id.remote_tag, "314159");
    csip_msg_free(r);
    csip_msg *q = alice_request("BYE", 2, NULL);
    ASSERT_TRUE(q != NULL);
    ASSERT_OK(csip_dialog_id_of(q, &id));
    EXPECT_STR(id.local_tag, "bobtag1");
    EXPECT_STR(id.remote_tag, "9fxced76sl");
    csip_msg_free(q);
}

/* ---- UAC ---------------------------------------------------------------------- */

static void test_uac_early_then_confirmed(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl(ALICE_INVITE), *r180 = msg_nl(BOB_180), *r200 = msg_nl(BOB_200);
    ASSERT_TRUE(inv && r180 && r200);

    csip_dialog *d;
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r180, 0, &d));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_EARLY);
    EXPECT_TRUE(csip_dialog_is_uac(d));
    EXPECT_FALSE(csip_dialog_is_secure(d));
    csip_dialog_id id;
    csip_dialog_get_id(d, &id);
    EXPECT_STR(id.call_id, "3848276298220188511@atlanta.example.com");
    EXPECT_STR(id.local_tag, "9fxced76sl");
    EXPECT_STR(id.remote_tag, "314159");
    EXPECT_EQ(csip_dialog_local_cseq(d), 1);
    uint32_t rc_;
    EXPECT_EQ(csip_dialog_remote_cseq(d, &rc_), CSIP_ERR_NOT_FOUND);
    EXPECT_STR(csip_dialog_local_uri(d), "Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl");
    EXPECT_STR(csip_dialog_remote_uri(d), "Bob <sip:bob@biloxi.example.com>;tag=314159");
    EXPECT_STR(csip_dialog_remote_target(d), "sip:bob@client.biloxi.example.com;transport=tcp");
    EXPECT_STR(csip_dialog_local_target(d), "<sip:alice@client.atlanta.example.com;transport=tcp>");
    /* §12.1.2: the route set is the Record-Route reversed. */
    ASSERT_EQ(csip_dialog_route_count(d), 2);
    EXPECT_STR(csip_dialog_route(d, 0), "<sip:ss1.atlanta.example.com;lr>");
    EXPECT_STR(csip_dialog_route(d, 1), "<sip:ss2.biloxi.example.com;lr>");
    EXPECT_STR(csip_dialog_route(d, 2), NULL);

    /* The 180 matches the dialog; a second one with the same tag creates none. */
    csip_dialog *m;
    ASSERT_OK(csip_dialog_table_match(tab, r180, &m));
    EXPECT_TRUE(m == d);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, r180, 0, &m), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(m == NULL);

    /* No re-INVITE while the INVITE is in progress (§14.1). */
    csip_dialog_req reinv = BYE;
    reinv.method = S("INVITE");
    csip_msg *out;
    EXPECT_EQ(csip_dialog_request(d, &reinv, &out), CSIP_ERR_INVALID_ARG);

    /* The 200 confirms it, recomputes the route set and takes the new Contact. */
    ASSERT_OK(csip_dialog_table_match(tab, r200, &m));
    EXPECT_TRUE(m == d);
    ASSERT_OK(csip_dialog_recv_response(d, inv, r200, 0));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:bob@192.0.2.4;transport=tcp");
    ASSERT_EQ(csip_dialog_route_count(d), 2);
    EXPECT_STR(csip_dialog_route(d, 0), "<sip:ss1.atlanta.example.com;lr>");

    /* ACK: loose routing, the INVITE's CSeq number, its credentials, a new branch. */
    csip_msg *ack;
    ASSERT_OK(csip_dialog_ack(d, inv, &BYE, &ack));
    const char *p = printed(ack);
    EXPECT_CSTR(start_line(p), "ACK sip:bob@192.0.2.4;transport=tcp SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"),
                "Route: <sip:ss1.atlanta.example.com;lr>|Route: <sip:ss2.biloxi.example.com;lr>");
    EXPECT_CSTR(lines_of(p, "CSeq"), "CSeq: 1 ACK");
    EXPECT_CSTR(lines_of(p, "From"), "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl");
    EXPECT_CSTR(lines_of(p, "To"), "To: Bob <sip:bob@biloxi.example.com>;tag=314159");
    EXPECT_CSTR(lines_of(p, "Call-ID"), "Call-ID: 3848276298220188511@atlanta.example.com");
    EXPECT_CSTR(lines_of(p, "Max-Forwards"), "Max-Forwards: 70");
    EXPECT_CSTR(lines_of(p, "Contact"), "");
    EXPECT_TRUE(strstr(p, "Proxy-Authorization: Digest username=\"alice\"") != NULL);
    const csip_via *via;
    ASSERT_OK(csip_msg_via(ack, 0, &via));
    EXPECT_EQ(via->branch.len, 29);
    EXPECT_TRUE(memcmp(via->branch.p, "z9hG4bK", 7) == 0);
    EXPECT_STR(via->host, "client.atlanta.example.com");
    EXPECT_EQ(csip_dialog_local_cseq(d), 1); /* the ACK does not count */
    csip_msg *ack2;
    ASSERT_OK(csip_dialog_ack(d, inv, &BYE, &ack2));
    const csip_via *via2;
    ASSERT_OK(csip_msg_via(ack2, 0, &via2));
    EXPECT_FALSE(csip_str_eq(via->branch, via2->branch));
    csip_msg_free(ack2);
    csip_msg_free(ack);

    /* BYE: CSeq 2, same routing, no Contact. */
    csip_msg *bye;
    ASSERT_OK(csip_dialog_request(d, &BYE, &bye));
    p = printed(bye);
    EXPECT_CSTR(start_line(p), "BYE sip:bob@192.0.2.4;transport=tcp SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"),
                "Route: <sip:ss1.atlanta.example.com;lr>|Route: <sip:ss2.biloxi.example.com;lr>");
    EXPECT_CSTR(lines_of(p, "CSeq"), "CSeq: 2 BYE");
    EXPECT_CSTR(lines_of(p, "Contact"), "");
    EXPECT_CSTR(lines_of(p, "Proxy-Authorization"), "");
    EXPECT_EQ(csip_dialog_local_cseq(d), 2);
    csip_parse_error perr;
    EXPECT_OK(csip_msg_validate(bye, &perr));
    /* The BYE's response matches the dialog (UAC: local = From tag). */
    csip_msg *bye_ok;
    ASSERT_OK(csip_response_for(bye, 200, NULL, CSIP_STR_NULL, NULL, &bye_ok));
    ASSERT_OK(csip_dialog_table_match(tab, bye_ok, &m));
    EXPECT_TRUE(m == d);
    ASSERT_OK(csip_dialog_recv_response(d, bye, bye_ok, 0));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    csip_dialog_terminate(d);
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_TERMINATED);
    EXPECT_EQ(csip_dialog_request(d, &BYE, &out), CSIP_ERR_INVALID_ARG);
    csip_msg_free(bye_ok);
    csip_msg_free(bye);

    EXPECT_EQ(csip_dialog_table_count(tab), 1);
    csip_dialog_free(d);
    EXPECT_EQ(csip_dialog_table_count(tab), 0);
    EXPECT_EQ(csip_dialog_table_match(tab, r200, &m), CSIP_ERR_NOT_FOUND);
    csip_msg_free(inv);
    csip_msg_free(r180);
    csip_msg_free(r200);
    csip_dialog_table_free(tab);
}

/* A 2xx straight away gives a confirmed dialog; the re-INVITE and its 2xx
 * refresh the target, not the route set. */
static void test_uac_reinvite(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl(ALICE_INVITE), *r200 = msg_nl(BOB_200);
    ASSERT_TRUE(inv && r200);
    csip_dialog *d;
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, CSIP_DIALOG_TLS, &d));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    EXPECT_FALSE(csip_dialog_is_secure(d)); /* TLS, but not a sips Request-URI */

    csip_dialog_req reinv = BYE;
    reinv.method = S("INVITE");
    reinv.content_type = S("application/sdp");
    reinv.body = S("v=0\r\n");
    csip_msg *ri;
    ASSERT_OK(csip_dialog_request(d, &reinv, &ri));
    const char *p = printed(ri);
    EXPECT_CSTR(start_line(p), "INVITE sip:bob@192.0.2.4;transport=tcp SIP/2.0");
    EXPECT_CSTR(lines_of(p, "CSeq"), "CSeq: 2 INVITE");
    /* A target refresh carries our Contact (§12.2.1.1). */
    EXPECT_CSTR(lines_of(p, "Contact"),
                "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>");
    EXPECT_CSTR(lines_of(p, "Content-Type"), "Content-Type: application/sdp");
    EXPECT_CSTR(lines_of(p, "Content-Length"), "Content-Length: 5");
    csip_str body = csip_msg_body(ri);
    EXPECT_STR(body, "v=0\r\n");

    /* A second INVITE while this one is in progress is refused; an INVITE from
     * Bob meanwhile is glare: 491 (§14.1). */
    csip_msg *x;
    EXPECT_EQ(csip_dialog_request(d, &reinv, &x), CSIP_ERR_INVALID_ARG);
    csip_msg *bob_inv = msg_nl("INVITE sip:alice@client.atlanta.example.com;transport=tcp SIP/2.0\n"
                               "Via: SIP/2.0/TCP 192.0.2.4;branch=z9hG4bKnashds7\n"
                               "From: Bob <sip:bob@biloxi.example.com>;tag=314159\n"
                               "To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                               "Call-ID: 3848276298220188511@atlanta.example.com\n"
                               "CSeq: 7 INVITE\n"
                               "Contact: <sip:bob@192.0.2.4;transport=tcp>\n"
                               "Content-Length: 0\n\n");
    ASSERT_TRUE(bob_inv != NULL);
    csip_dialog *m;
    ASSERT_OK(csip_dialog_table_match(tab, bob_inv, &m));
    EXPECT_TRUE(m == d);
    int status = -1;
    ASSERT_OK(csip_dialog_recv_request(d, bob_inv, &status));
    EXPECT_EQ(status, 491);
    uint32_t rcs;
    EXPECT_EQ(csip_dialog_remote_cseq(d, &rcs), CSIP_ERR_NOT_FOUND); /* not taken */

    /* A provisional response without RSeq changes nothing; the 2xx with a new
     * Contact and another Record-Route changes the target only. */
    csip_msg *r180 = msg_nl("SIP/2.0 180 Ringing\n"
                            "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bKx\n"
                            "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                            "To: Bob <sip:bob@biloxi.example.com>;tag=314159\n"
                            "Call-ID: 3848276298220188511@atlanta.example.com\n"
                            "CSeq: 2 INVITE\n"
                            "Contact: <sip:bob@192.0.2.44>\n"
                            "Content-Length: 0\n\n");
    csip_msg *ok = msg_nl("SIP/2.0 200 OK\n"
                          "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bKx\n"
                          "Record-Route: <sip:elsewhere.example.com;lr>\n"
                          "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                          "To: Bob <sip:bob@biloxi.example.com>;tag=314159\n"
                          "Call-ID: 3848276298220188511@atlanta.example.com\n"
                          "CSeq: 2 INVITE\n"
                          "Contact: <sip:bob@192.0.2.5:5070;transport=tcp>\n"
                          "Content-Length: 0\n\n");
    ASSERT_TRUE(r180 && ok);
    ASSERT_OK(csip_dialog_recv_response(d, ri, r180, 0));
    EXPECT_STR(csip_dialog_remote_target(d), "sip:bob@192.0.2.4;transport=tcp");
    /* a response to another request is refused */
    EXPECT_EQ(csip_dialog_recv_response(d, inv, ok, 0), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_dialog_recv_response(d, ri, ok, 0));
    EXPECT_STR(csip_dialog_remote_target(d), "sip:bob@192.0.2.5:5070;transport=tcp");
    ASSERT_EQ(csip_dialog_route_count(d), 2);
    EXPECT_STR(csip_dialog_route(d, 0), "<sip:ss1.atlanta.example.com;lr>");
    /* The ACK of the re-INVITE's 2xx: CSeq 2 ACK, to the new target. */
    csip_msg *ack;
    ASSERT_OK(csip_dialog_ack(d, ri, &BYE, &ack));
    p = printed(ack);
    EXPECT_CSTR(start_line(p), "ACK sip:bob@192.0.2.5:5070;transport=tcp SIP/2.0");
    EXPECT_CSTR(lines_of(p, "CSeq"), "CSeq: 2 ACK");
    csip_msg_free(ack);
    /* The INVITE is done: Bob's INVITE now goes through, with its Contact. */
    ASSERT_OK(csip_dialog_recv_request(d, bob_inv, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:bob@192.0.2.4;transport=tcp");
    ASSERT_OK(csip_dialog_remote_cseq(d, &rcs));
    EXPECT_EQ(rcs, 7);
    /* While it is unanswered we may not send an INVITE. */
    EXPECT_EQ(csip_dialog_request(d, &reinv, &x), CSIP_ERR_INVALID_ARG);
    csip_msg *bob_ok;
    ASSERT_OK(csip_dialog_response(d, bob_inv, 200, NULL, &bob_ok));
    p = printed(bob_ok);
    EXPECT_CSTR(lines_of(p, "To"), "To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl");
    EXPECT_CSTR(lines_of(p, "Contact"),
                "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>");
    EXPECT_CSTR(lines_of(p, "Record-Route"), ""); /* not a dialog-creating request */
    csip_msg_free(bob_ok);
    ASSERT_OK(csip_dialog_request(d, &reinv, &x));
    EXPECT_CSTR(lines_of(printed(x), "CSeq"), "CSeq: 3 INVITE");
    csip_msg_free(x);

    csip_msg_free(bob_inv);
    csip_msg_free(r180);
    csip_msg_free(ok);
    csip_msg_free(ri);
    csip_msg_free(inv);
    csip_msg_free(r200);
    csip_dialog_table_free(tab);
}

/* ---- UAS ---------------------------------------------------------------------- */

static void test_uas(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl(BOB_INVITE);
    ASSERT_TRUE(inv != NULL);
    /* Outside any dialog: no To tag. */
    csip_dialog *m;
    EXPECT_EQ(csip_dialog_table_match(tab, inv, &m), CSIP_ERR_NOT_FOUND);

    /* The dialog-creating 180: our tag, the Record-Route lines in order, Contact. */
    csip_msg *r180;
    ASSERT_OK(csip_dialog_uas_response(inv, 180, NULL, S("bobtag1"),
                                       S("<sip:bob@client.biloxi.example.com;transport=tcp>"), NULL,
                                       &r180));
    const char *p = printed(r180);
    EXPECT_CSTR(start_line(p), "SIP/2.0 180 Ringing");
    EXPECT_CSTR(lines_of(p, "To"), "To: Bob <sip:bob@biloxi.example.com>;tag=bobtag1");
    EXPECT_CSTR(lines_of(p, "Record-Route"), "Record-Route: <sip:ss2.biloxi.example.com;lr>|"
                                             "Record-Route: <sip:ss1.atlanta.example.com;lr>");
    EXPECT_CSTR(lines_of(p, "Contact"),
                "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>");
    EXPECT_TRUE(strstr(p, "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>\r\n"
                          "Content-Length: 0\r\n\r\n") != NULL);

    csip_dialog *d;
    ASSERT_OK(csip_dialog_uas_new(tab, inv, r180, 0, &d));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_EARLY);
    EXPECT_FALSE(csip_dialog_is_uac(d));
    csip_dialog_id id;
    csip_dialog_get_id(d, &id);
    EXPECT_STR(id.local_tag, "bobtag1");
    EXPECT_STR(id.remote_tag, "9fxced76sl");
    EXPECT_EQ(csip_dialog_local_cseq(d), 0);
    uint32_t rcs;
    ASSERT_OK(csip_dialog_remote_cseq(d, &rcs));
    EXPECT_EQ(rcs, 1);
    EXPECT_STR(csip_dialog_local_uri(d), "Bob <sip:bob@biloxi.example.com>;tag=bobtag1");
    EXPECT_STR(csip_dialog_remote_uri(d), "Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl");
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@client.atlanta.example.com;transport=tcp");
    /* §12.1.1: the route set is the Record-Route as it is. */
    ASSERT_EQ(csip_dialog_route_count(d), 2);
    EXPECT_STR(csip_dialog_route(d, 0), "<sip:ss2.biloxi.example.com;lr>");
    EXPECT_STR(csip_dialog_route(d, 1), "<sip:ss1.atlanta.example.com;lr>");
    /* A second creation with the same response is refused. */
    EXPECT_EQ(csip_dialog_uas_new(tab, inv, r180, 0, &m), CSIP_ERR_INVALID_ARG);
    csip_msg_free(r180);

    /* The callee never sends BYE on an early dialog (§15). */
    csip_msg *out;
    EXPECT_EQ(csip_dialog_request(d, &BYE, &out), CSIP_ERR_INVALID_ARG);
    /* A re-INVITE before the final response: 500 (§14.2). */
    csip_msg *reinv = alice_request("INVITE", 2, "<sip:alice@192.0.2.101>");
    ASSERT_TRUE(reinv != NULL);
    int status = -1;
    ASSERT_OK(csip_dialog_recv_request(d, reinv, &status));
    EXPECT_EQ(status, 500);
    /* UPDATE in the early dialog is fine and refreshes the target (RFC 3311). */
    csip_msg *upd = alice_request("UPDATE", 2, "<sip:alice@192.0.2.101;transport=tcp>");
    ASSERT_TRUE(upd != NULL);
    ASSERT_OK(csip_dialog_table_match(tab, upd, &m));
    EXPECT_TRUE(m == d);
    ASSERT_OK(csip_dialog_recv_request(d, upd, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@192.0.2.101;transport=tcp");
    csip_msg *upd_ok;
    ASSERT_OK(csip_dialog_response(d, upd, 200, NULL, &upd_ok));
    p = printed(upd_ok);
    EXPECT_CSTR(lines_of(p, "Contact"),
                "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>");
    EXPECT_CSTR(lines_of(p, "Record-Route"), "");
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_EARLY);
    csip_msg_free(upd_ok);

    /* The 200 to the INVITE: our tag (the INVITE's To has none), Record-Route,
     * Contact; it confirms the dialog. */
    csip_msg *r200;
    ASSERT_OK(csip_dialog_response(d, inv, 200, NULL, &r200));
    p = printed(r200);
    EXPECT_CSTR(lines_of(p, "To"), "To: Bob <sip:bob@biloxi.example.com>;tag=bobtag1");
    EXPECT_CSTR(lines_of(p, "Record-Route"), "Record-Route: <sip:ss2.biloxi.example.com;lr>|"
                                             "Record-Route: <sip:ss1.atlanta.example.com;lr>");
    EXPECT_CSTR(lines_of(p, "Contact"),
                "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>");
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    csip_msg_free(r200);

    /* The ACK matches and is not counted. */
    csip_msg *ack = alice_request("ACK", 1, NULL);
    ASSERT_TRUE(ack != NULL);
    ASSERT_OK(csip_dialog_table_match(tab, ack, &m));
    EXPECT_TRUE(m == d);
    ASSERT_OK(csip_dialog_recv_request(d, ack, &status));
    EXPECT_EQ(status, 0);
    ASSERT_OK(csip_dialog_remote_cseq(d, &rcs));
    EXPECT_EQ(rcs, 2);

    /* Bob hangs up: CSeq 1 (the local CSeq was empty), the route set in
     * order, From/To swapped relative to the INVITE. */
    csip_dialog_req bye = BYE;
    bye.via = S("SIP/2.0/TCP client.biloxi.example.com:5060");
    ASSERT_OK(csip_dialog_request(d, &bye, &out));
    p = printed(out);
    EXPECT_CSTR(start_line(p), "BYE sip:alice@192.0.2.101;transport=tcp SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"),
                "Route: <sip:ss2.biloxi.example.com;lr>|Route: <sip:ss1.atlanta.example.com;lr>");
    EXPECT_CSTR(lines_of(p, "From"), "From: Bob <sip:bob@biloxi.example.com>;tag=bobtag1");
    EXPECT_CSTR(lines_of(p, "To"), "To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl");
    EXPECT_CSTR(lines_of(p, "CSeq"), "CSeq: 1 BYE");
    EXPECT_EQ(csip_dialog_local_cseq(d), 1);
    csip_msg_free(out);

    csip_msg_free(ack);
    csip_msg_free(upd);
    csip_msg_free(reinv);
    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

/* A final non-2xx response from the UAS ends its early dialog. */
static void test_uas_rejects(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl(BOB_INVITE), *r183;
    ASSERT_TRUE(inv != NULL);
    ASSERT_OK(csip_dialog_uas_response(inv, 183, NULL, S("t1"), CSIP_STR_NULL, NULL, &r183));
    EXPECT_CSTR(lines_of(printed(r183), "Contact"), "");
    csip_dialog *d;
    ASSERT_OK(csip_dialog_uas_new(tab, inv, r183, 0, &d));
    EXPECT_STR(csip_dialog_local_target(d), NULL);
    csip_msg *r486;
    ASSERT_OK(csip_dialog_response(d, inv, 486, NULL, &r486));
    EXPECT_CSTR(lines_of(printed(r486), "To"), "To: Bob <sip:bob@biloxi.example.com>;tag=t1");
    EXPECT_CSTR(lines_of(printed(r486), "Record-Route"), "");
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_TERMINATED);
    /* Anything later gets 481. */
    csip_msg *bye = msg_nl("BYE sip:bob@client.biloxi.example.com SIP/2.0\n"
                           "Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK1\n"
                           "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                           "To: Bob <sip:bob@biloxi.example.com>;tag=t1\n"
                           "Call-ID: 3848276298220188511@atlanta.example.com\n"
                           "CSeq: 2 BYE\n"
                           "Content-Length: 0\n\n");
    ASSERT_TRUE(bye != NULL);
    csip_dialog *m;
    ASSERT_OK(csip_dialog_table_match(tab, bye, &m));
    int status;
    ASSERT_OK(csip_dialog_recv_request(m, bye, &status));
    EXPECT_EQ(status, 481);
    csip_msg_free(bye);

    /* The same through csip_dialog_sent_response(), for a response built apart. */
    csip_msg *inv2 = msg_nl(BOB_INVITE);
    ASSERT_TRUE(inv2 != NULL);
    csip_msg *r180;
    ASSERT_OK(csip_dialog_uas_response(inv2, 180, NULL, S("t2"), S("<sip:b@h>"), NULL, &r180));
    ASSERT_OK(csip_dialog_uas_new(tab, inv2, r180, 0, &d));
    csip_msg *r200;
    ASSERT_OK(csip_response_for(inv2, 200, NULL, S("t2"), NULL, &r200));
    ASSERT_OK(csip_dialog_sent_response(d, r180));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_EARLY);
    ASSERT_OK(csip_dialog_sent_response(d, r200));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    EXPECT_EQ(csip_dialog_sent_response(d, inv2), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_table_count(tab), 2);
    csip_msg_free(r180);
    csip_msg_free(r200);
    csip_msg_free(inv2);
    csip_msg_free(r183);
    csip_msg_free(r486);
    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

/* ---- routing ----------------------------------------------------------------- */

/* A 200 whose Record-Route has a strict router nearest to us (no lr). */
static const char STRICT_200[] =
    "SIP/2.0 200 OK\n"
    "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
    "Record-Route: <sip:p3.example.com;lr>, <sip:p2.example.com;lr>\n"
    "Record-Route: <sip:p1.example.com;maddr=192.0.2.1;method=INVITE?subject=x>\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=314159\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:bob@192.0.2.4;method=INVITE?x=y>\n"
    "Content-Length: 0\n"
    "\n";

static void test_strict_routing(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl(ALICE_INVITE), *r200 = msg_nl(STRICT_200);
    ASSERT_TRUE(inv && r200);
    csip_dialog *d;
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    ASSERT_EQ(csip_dialog_route_count(d), 3);
    EXPECT_STR(csip_dialog_route(d, 0),
               "<sip:p1.example.com;maddr=192.0.2.1;method=INVITE?subject=x>");
    EXPECT_STR(csip_dialog_route(d, 2), "<sip:p3.example.com;lr>");
    EXPECT_STR(csip_dialog_remote_target(d), "sip:bob@192.0.2.4;method=INVITE?x=y");
    /* §12.2.1.1: the first route in the Request-URI, without the parameters a
     * Request-URI cannot hold; the rest as Route, then the remote target. */
    csip_msg *bye;
    ASSERT_OK(csip_dialog_request(d, &BYE, &bye));
    const char *p = printed(bye);
    EXPECT_CSTR(start_line(p), "BYE sip:p1.example.com;maddr=192.0.2.1 SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"), "Route: <sip:p2.example.com;lr>|"
                                      "Route: <sip:p3.example.com;lr>|"
                                      "Route: <sip:bob@192.0.2.4;method=INVITE?x=y>");
    csip_parse_error perr;
    EXPECT_OK(csip_msg_validate(bye, &perr));
    csip_msg_free(bye);
    csip_msg_free(r200);

    /* Loose routing with the same odd target: the Request-URI loses the
     * method parameter and the headers. */
    r200 = msg_nl("SIP/2.0 200 OK\n"
                  "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
                  "Record-Route: <sip:p1.example.com;lr;transport=udp>;foo=bar\n"
                  "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                  "To: Bob <sip:bob@biloxi.example.com>;tag=other\n"
                  "Call-ID: 3848276298220188511@atlanta.example.com\n"
                  "CSeq: 1 INVITE\n"
                  "Contact: \"Bob\" <sip:bob@192.0.2.4;method=INVITE;transport=udp?x=y>;"
                  "expires=30\n"
                  "Content-Length: 0\n\n");
    ASSERT_TRUE(r200 != NULL);
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    ASSERT_OK(csip_dialog_request(d, &BYE, &bye));
    p = printed(bye);
    EXPECT_CSTR(start_line(p), "BYE sip:bob@192.0.2.4;transport=udp SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"), "Route: <sip:p1.example.com;lr;transport=udp>;foo=bar");
    csip_msg_free(bye);

    /* No route set: the remote target alone. */
    csip_msg_free(r200);
    r200 = msg_nl("SIP/2.0 200 OK\n"
                  "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
                  "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                  "To: Bob <sip:bob@biloxi.example.com>;tag=third\n"
                  "Call-ID: 3848276298220188511@atlanta.example.com\n"
                  "CSeq: 1 INVITE\n"
                  "Contact: sip:bob@192.0.2.9\n"
                  "Content-Length: 0\n\n");
    ASSERT_TRUE(r200 != NULL);
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    EXPECT_EQ(csip_dialog_route_count(d), 0);
    ASSERT_OK(csip_dialog_request(d, &BYE, &bye));
    p = printed(bye);
    EXPECT_CSTR(start_line(p), "BYE sip:bob@192.0.2.9 SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"), "");
    csip_msg_free(bye);

    csip_msg_free(r200);
    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

/* A UAS with a strict router next to it. */
static void test_strict_routing_uas(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl("INVITE sip:bob@192.0.2.4 SIP/2.0\n"
                           "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\n"
                           "Record-Route: <sip:p1.example.com>\n"
                           "Record-Route: <sip:p2.example.com;lr>\n"
                           "From: <sip:alice@atlanta.example.com>;tag=a\n"
                           "To: <sip:bob@biloxi.example.com>\n"
                           "Call-ID: strict-uas\n"
                           "CSeq: 10 INVITE\n"
                           "Contact: <sip:alice@192.0.2.101>\n"
                           "Content-Length: 0\n\n");
    ASSERT_TRUE(inv != NULL);
    csip_msg *r200;
    ASSERT_OK(
        csip_dialog_uas_response(inv, 200, NULL, S("b"), S("<sip:bob@192.0.2.4>"), NULL, &r200));
    csip_dialog *d;
    ASSERT_OK(csip_dialog_uas_new(tab, inv, r200, 0, &d));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    csip_dialog_req bye = BYE;
    bye.via = S("SIP/2.0/UDP 192.0.2.4");
    csip_msg *out;
    ASSERT_OK(csip_dialog_request(d, &bye, &out));
    const char *p = printed(out);
    EXPECT_CSTR(start_line(p), "BYE sip:p1.example.com SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Route"),
                "Route: <sip:p2.example.com;lr>|Route: <sip:alice@192.0.2.101>");
    EXPECT_CSTR(lines_of(p, "To"), "To: <sip:alice@atlanta.example.com>;tag=a");
    EXPECT_CSTR(lines_of(p, "From"), "From: <sip:bob@biloxi.example.com>;tag=b");
    csip_msg_free(out);
    csip_msg_free(r200);
    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

/* ---- CSeq ordering and target refresh (UAS side) ------------------------------ */

static void test_cseq_ordering(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv;
    csip_dialog *d = bob_dialog(tab, &inv);
    ASSERT_TRUE(d != NULL);
    struct {
        const char *method;
        uint32_t cseq;
        int status;
        uint32_t remote_after;
    } steps[] = {
        {"INFO", 5, 0, 5},     {"INFO", 3, 500, 5},  /* lower: out of order */
        {"INFO", 5, 0, 5},     {"MESSAGE", 6, 0, 6}, /* equal is not lower */
        {"ACK", 1, 0, 6},      {"CANCEL", 1, 0, 6},  /* never checked */
        {"NOTIFY", 4, 500, 6}, {"BYE", 9, 0, 9},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        csip_msg *r = alice_request(steps[i].method, steps[i].cseq, NULL);
        ASSERT_TRUE(r != NULL);
        int status = -1;
        EXPECT_OK(csip_dialog_recv_request(d, r, &status));
        EXPECT_EQ(status, steps[i].status);
        uint32_t rcs;
        EXPECT_OK(csip_dialog_remote_cseq(d, &rcs));
        EXPECT_EQ(rcs, steps[i].remote_after);
        if (status == 500) {
            /* the caller answers it through the dialog: CSeq and tags as asked */
            csip_msg *resp;
            ASSERT_OK(csip_dialog_response(d, r, 500, NULL, &resp));
            EXPECT_EQ(csip_msg_status(resp), 500);
            EXPECT_CSTR(lines_of(printed(resp), "To"),
                        "To: Bob <sip:bob@biloxi.example.com>;tag=bobtag1");
            csip_msg_free(resp);
        }
        csip_msg_free(r);
    }
    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

static void test_target_refresh(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv;
    csip_dialog *d = bob_dialog(tab, &inv);
    ASSERT_TRUE(d != NULL);
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@client.atlanta.example.com;transport=tcp");
    int status;
    /* INFO is not a target refresh: its Contact is ignored. */
    csip_msg *r = alice_request("INFO", 2, "<sip:alice@198.51.100.1>");
    ASSERT_TRUE(r != NULL);
    ASSERT_OK(csip_dialog_recv_request(d, r, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@client.atlanta.example.com;transport=tcp");
    csip_msg_free(r);
    /* A re-INVITE is. */
    r = alice_request("INVITE", 3, "\"Alice\" <sip:alice@198.51.100.2:5080>;+sip.instance=x");
    ASSERT_TRUE(r != NULL);
    ASSERT_OK(csip_dialog_recv_request(d, r, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@198.51.100.2:5080");
    /* Its 200 carries our Contact and no Record-Route; then it is done. */
    csip_msg *ok;
    ASSERT_OK(csip_dialog_response(d, r, 200, NULL, &ok));
    EXPECT_CSTR(lines_of(printed(ok), "Contact"),
                "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>");
    EXPECT_CSTR(lines_of(printed(ok), "Record-Route"), "");
    csip_msg_free(ok);
    csip_msg_free(r);
    /* UPDATE too (RFC 3311). */
    r = alice_request("UPDATE", 4, "<sip:alice@198.51.100.3>");
    ASSERT_TRUE(r != NULL);
    ASSERT_OK(csip_dialog_recv_request(d, r, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@198.51.100.3");
    csip_msg_free(r);
    /* A re-INVITE without Contact keeps the target; one with '*' is a 400. */
    r = alice_request("INVITE", 5, NULL);
    ASSERT_TRUE(r != NULL);
    ASSERT_OK(csip_dialog_recv_request(d, r, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@198.51.100.3");
    /* It is unanswered: another INVITE gets 500 (§14.2). */
    csip_msg *r2 = alice_request("INVITE", 6, "<sip:alice@198.51.100.4>");
    ASSERT_TRUE(r2 != NULL);
    ASSERT_OK(csip_dialog_recv_request(d, r2, &status));
    EXPECT_EQ(status, 500);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@198.51.100.3");
    /* A 491 ends it. */
    ASSERT_OK(csip_dialog_response(d, r, 491, NULL, &ok));
    csip_msg_free(ok);
    ASSERT_OK(csip_dialog_recv_request(d, r2, &status));
    EXPECT_EQ(status, 0);
    EXPECT_STR(csip_dialog_remote_target(d), "sip:alice@198.51.100.4");
    csip_msg_free(r2);
    csip_msg_free(r);
    r = alice_request("UPDATE", 8, "*");
    ASSERT_TRUE(r != NULL);
    ASSERT_OK(csip_dialog_recv_request(d, r, &status));
    EXPECT_EQ(status, 400);
    uint32_t rcs;
    ASSERT_OK(csip_dialog_remote_cseq(d, &rcs));
    EXPECT_EQ(rcs, 6);
    csip_msg_free(r);

    /* Our own local target can change; later refreshes carry it. */
    ASSERT_OK(csip_dialog_set_local_target(d, S("<sip:bob@203.0.113.7>")));
    EXPECT_EQ(csip_dialog_set_local_target(d, S("<sip:x>\r\nX: y")), CSIP_ERR_INVALID_ARG);
    csip_dialog_req upd = BYE;
    upd.method = S("UPDATE");
    csip_msg *u;
    ASSERT_OK(csip_dialog_request(d, &upd, &u));
    EXPECT_CSTR(lines_of(printed(u), "Contact"), "Contact: <sip:bob@203.0.113.7>");
    EXPECT_CSTR(lines_of(printed(u), "CSeq"), "CSeq: 1 UPDATE");
    csip_msg_free(u);
    /* An explicit Contact wins, and goes on a non-refresh request too. */
    csip_dialog_req msgreq = BYE;
    msgreq.method = S("MESSAGE");
    ASSERT_OK(csip_dialog_request(d, &msgreq, &u));
    EXPECT_CSTR(lines_of(printed(u), "Contact"), "");
    csip_msg_free(u);
    msgreq.contact = S("<sip:other@203.0.113.8>");
    ASSERT_OK(csip_dialog_request(d, &msgreq, &u));
    EXPECT_CSTR(lines_of(printed(u), "Contact"), "Contact: <sip:other@203.0.113.8>");
    EXPECT_CSTR(lines_of(printed(u), "CSeq"), "CSeq: 3 MESSAGE");
    csip_msg_free(u);
    ASSERT_OK(csip_dialog_set_local_target(d, CSIP_STR_NULL));
    ASSERT_OK(csip_dialog_request(d, &upd, &u));
    EXPECT_CSTR(lines_of(printed(u), "Contact"), "");
    csip_msg_free(u);
    /* NOTIFY, INFO with extra headers and a body. */
    csip_dialog_req info = BYE;
    info.method = S("INFO");
    info.extra = S("Info-Package: dtmf\r\n");
    info.content_type = S("application/dtmf");
    info.body = S("5");
    ASSERT_OK(csip_dialog_request(d, &info, &u));
    EXPECT_CSTR(lines_of(printed(u), "Info-Package"), "Info-Package: dtmf");
    EXPECT_STR(csip_msg_body(u), "5");
    csip_msg_free(u);

    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

/* ---- responses that end dialogs (UAC side) ----------------------------------- */

static void test_uac_termination(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    csip_msg *inv = msg_nl(ALICE_INVITE), *r180 = msg_nl(BOB_180), *r200 = msg_nl(BOB_200);
    ASSERT_TRUE(inv && r180 && r200);
    csip_dialog *d;
    /* The early dialog ends with a non-2xx final response to the INVITE. */
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r180, 0, &d));
    csip_msg *r486;
    ASSERT_OK(csip_response_for(inv, 486, NULL, S("314159"), NULL, &r486));
    ASSERT_OK(csip_dialog_recv_response(d, inv, r486, 0));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_TERMINATED);
    /* nothing more changes it */
    ASSERT_OK(csip_dialog_recv_response(d, inv, r200, 0));
    EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_TERMINATED);
    csip_dialog_free(d);
    csip_msg_free(r486);

    /* Confirmed: a 481 to INFO ends it; a synthesized 408 (timeout) too. */
    csip_dialog_req info = BYE;
    info.method = S("INFO");
    for (int k = 0; k < 3; k++) {
        ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
        csip_msg *q;
        ASSERT_OK(csip_dialog_request(d, &info, &q));
        if (k == 0) {
            csip_msg *r481;
            ASSERT_OK(csip_response_for(q, 481, NULL, CSIP_STR_NULL, NULL, &r481));
            ASSERT_OK(csip_dialog_recv_response(d, q, r481, 0));
            csip_msg_free(r481);
            EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_TERMINATED);
        } else if (k == 1) {
            ASSERT_OK(csip_dialog_recv_response(d, q, NULL, 408));
            EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_TERMINATED);
        } else {
            /* a 503 (transport error) or a 4xx does not */
            ASSERT_OK(csip_dialog_recv_response(d, q, NULL, 503));
            EXPECT_EQ(csip_dialog_recv_response(d, q, NULL, 99), CSIP_ERR_INVALID_ARG);
            EXPECT_EQ(csip_dialog_state_of(d), CSIP_DIALOG_CONFIRMED);
        }
        csip_msg_free(q);
        csip_dialog_free(d);
    }
    /* A re-INVITE that times out no longer blocks the next one. */
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    csip_dialog_req reinv = BYE;
    reinv.method = S("INVITE");
    csip_msg *q, *q2;
    ASSERT_OK(csip_dialog_request(d, &reinv, &q));
    ASSERT_OK(csip_dialog_recv_response(d, q, NULL, 503));
    ASSERT_OK(csip_dialog_request(d, &reinv, &q2));
    csip_msg_free(q);
    csip_msg_free(q2);
    csip_msg_free(inv);
    csip_msg_free(r180);
    csip_msg_free(r200);
    csip_dialog_table_free(tab);
}

/* ---- forking ------------------------------------------------------------------ */

static csip_msg *fork_resp(int code, const char *tag, const char *contact)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "SIP/2.0 %d %s\n"
             "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
             "Record-Route: <sip:ss1.atlanta.example.com;lr>\n"
             "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
             "To: Bob <sip:bob@biloxi.example.com>;tag=%s\n"
             "Call-ID: 3848276298220188511@atlanta.example.com\n"
             "CSeq: 1 INVITE\n"
             "Contact: <%s>\n"
             "Content-Length: 0\n\n",
             code, code < 200 ? "Ringing" : "OK", tag, contact);
    return msg_nl(buf);
}

static void test_forking(void)
{
    csip_dialog_opts opts = {.max_forks = 3};
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(&opts, &tab));
    csip_msg *inv = msg_nl(ALICE_INVITE);
    ASSERT_TRUE(inv != NULL);
    csip_msg *a180 = fork_resp(180, "A", "sip:bob@desk.example.com");
    csip_msg *b180 = fork_resp(180, "B", "sip:bob@mobile.example.com");
    csip_msg *b200 = fork_resp(200, "B", "sip:bob@192.0.2.22");
    csip_msg *c200 = fork_resp(200, "C", "sip:bob@192.0.2.33");
    csip_msg *d180 = fork_resp(180, "D", "sip:bob@192.0.2.44");
    ASSERT_TRUE(a180 && b180 && b200 && c200 && d180);

    /* Each new To tag is a new early dialog; the responses find their own. */
    csip_dialog *da, *db, *dc, *m;
    EXPECT_EQ(csip_dialog_table_match(tab, a180, &m), CSIP_ERR_NOT_FOUND);
    ASSERT_OK(csip_dialog_uac_new(tab, inv, a180, 0, &da));
    EXPECT_EQ(csip_dialog_table_match(tab, b180, &m), CSIP_ERR_NOT_FOUND);
    ASSERT_OK(csip_dialog_uac_new(tab, inv, b180, 0, &db));
    EXPECT_TRUE(da != db);
    ASSERT_OK(csip_dialog_table_match(tab, a180, &m));
    EXPECT_TRUE(m == da);
    ASSERT_OK(csip_dialog_table_match(tab, b200, &m));
    EXPECT_TRUE(m == db);
    EXPECT_STR(csip_dialog_remote_target(da), "sip:bob@desk.example.com");
    EXPECT_STR(csip_dialog_remote_target(db), "sip:bob@mobile.example.com");

    /* B answers: confirmed; A stays early. */
    ASSERT_OK(csip_dialog_recv_response(db, inv, b200, 0));
    EXPECT_EQ(csip_dialog_state_of(db), CSIP_DIALOG_CONFIRMED);
    EXPECT_EQ(csip_dialog_state_of(da), CSIP_DIALOG_EARLY);
    EXPECT_STR(csip_dialog_remote_target(db), "sip:bob@192.0.2.22");
    /* C answers too (RFC 6026: its 2xx comes up; the UA ACKs and BYEs it). */
    ASSERT_OK(csip_dialog_uac_new(tab, inv, c200, 0, &dc));
    EXPECT_EQ(csip_dialog_state_of(dc), CSIP_DIALOG_CONFIRMED);
    /* max_forks: a fourth fork is refused. */
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, d180, 0, &m), CSIP_ERR_LIMIT_DIALOGS);
    EXPECT_EQ(csip_dialog_table_count(tab), 3);

    /* The forks in creation order; the UA ends those still early. */
    csip_str cid = S("3848276298220188511@atlanta.example.com");
    csip_str ltag = S("9fxced76sl");
    csip_dialog *seen[4] = {0};
    size_t n = 0;
    for (csip_dialog *f = csip_dialog_table_next_fork(tab, cid, ltag, NULL); f && n < 4;
         f = csip_dialog_table_next_fork(tab, cid, ltag, f))
        seen[n++] = f;
    ASSERT_EQ(n, 3);
    EXPECT_TRUE(seen[0] == da && seen[1] == db && seen[2] == dc);
    EXPECT_TRUE(csip_dialog_table_next_fork(tab, cid, S("other"), NULL) == NULL);
    EXPECT_TRUE(csip_dialog_table_next(tab, NULL) == da);
    EXPECT_TRUE(csip_dialog_table_next(tab, da) == db);
    EXPECT_TRUE(csip_dialog_table_next(tab, dc) == NULL);
    for (csip_dialog *f = csip_dialog_table_next_fork(tab, cid, ltag, NULL); f;) {
        csip_dialog *nx = csip_dialog_table_next_fork(tab, cid, ltag, f);
        if (csip_dialog_state_of(f) == CSIP_DIALOG_EARLY)
            csip_dialog_free(f);
        f = nx;
    }
    EXPECT_EQ(csip_dialog_table_count(tab), 2);
    EXPECT_EQ(csip_dialog_table_match(tab, a180, &m), CSIP_ERR_NOT_FOUND);
    /* The table has room for D now. */
    ASSERT_OK(csip_dialog_uac_new(tab, inv, d180, 0, &m));

    csip_msg_free(inv);
    csip_msg_free(a180);
    csip_msg_free(b180);
    csip_msg_free(b200);
    csip_msg_free(c200);
    csip_msg_free(d180);
    csip_dialog_table_free(tab);
}

/* Many dialogs: the table grows, every one is still found. */
static void test_many(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    enum { N = 600 };
    for (int i = 0; i < N; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "INVITE sip:bob@192.0.2.4 SIP/2.0\n"
                 "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%d\n"
                 "From: <sip:alice@a.example.com>;tag=f%d\n"
                 "To: <sip:bob@b.example.com>\n"
                 "Call-ID: call-%d\n"
                 "CSeq: 1 INVITE\n"
                 "Contact: <sip:alice@192.0.2.1>\n\n",
                 i, i, i);
        csip_msg *inv = msg_nl(buf);
        ASSERT_TRUE(inv != NULL);
        char tag[17];
        ASSERT_EQ(csip_dialog_new_tag(tag, sizeof tag), 16);
        csip_msg *ok;
        ASSERT_OK(
            csip_dialog_uas_response(inv, 200, NULL, S(tag), S("<sip:bob@192.0.2.4>"), NULL, &ok));
        csip_dialog *d;
        ASSERT_OK(csip_dialog_uas_new(tab, inv, ok, 0, &d));
        csip_dialog_set_user_data(d, (void *)(intptr_t)(i + 1));
        csip_msg_free(ok);
        csip_msg_free(inv);
    }
    EXPECT_EQ(csip_dialog_table_count(tab), N);
    int i = 0;
    for (csip_dialog *d = csip_dialog_table_next(tab, NULL); d;
         d = csip_dialog_table_next(tab, d)) {
        EXPECT_EQ((intptr_t)csip_dialog_user_data(d), i + 1);
        csip_dialog_id id;
        csip_dialog_get_id(d, &id);
        EXPECT_TRUE(csip_dialog_table_find(tab, &id) == d);
        i++;
    }
    EXPECT_EQ(i, N);
    /* Free every other one while walking. */
    for (csip_dialog *d = csip_dialog_table_next(tab, NULL); d;) {
        csip_dialog *nx = csip_dialog_table_next(tab, d);
        if ((intptr_t)csip_dialog_user_data(d) % 2)
            csip_dialog_free(d);
        d = nx;
    }
    EXPECT_EQ(csip_dialog_table_count(tab), N / 2);
    for (csip_dialog *d = csip_dialog_table_next(tab, NULL); d;
         d = csip_dialog_table_next(tab, d)) {
        csip_dialog_id id;
        csip_dialog_get_id(d, &id);
        EXPECT_TRUE(csip_dialog_table_find(tab, &id) == d);
    }
    csip_dialog_table_free(tab);
}

/* ---- RFC 2543 peers, secure flag, folded values ------------------------------- */

static void test_odd_peers(void)
{
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    /* A 2xx without To tag: the remote tag is empty and still matches. */
    csip_msg *inv = msg_nl(ALICE_INVITE);
    csip_msg *ok = msg_nl("SIP/2.0 200 OK\n"
                          "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
                          "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                          "To: Bob <sip:bob@biloxi.example.com>\n"
                          "Call-ID: 3848276298220188511@atlanta.example.com\n"
                          "CSeq: 1 INVITE\n"
                          "Contact: <sip:bob@192.0.2.4>\n\n");
    csip_msg *r180 = msg_nl("SIP/2.0 180 Ringing\n"
                            "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
                            "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                            "To: Bob <sip:bob@biloxi.example.com>\n"
                            "Call-ID: 3848276298220188511@atlanta.example.com\n"
                            "CSeq: 1 INVITE\n\n");
    ASSERT_TRUE(inv && ok && r180);
    csip_dialog *d, *m;
    /* a 1xx without To tag creates nothing */
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, r180, 0, &d), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_dialog_uac_new(tab, inv, ok, 0, &d));
    csip_dialog_id id;
    csip_dialog_get_id(d, &id);
    EXPECT_TRUE(id.remote_tag.p == NULL);
    ASSERT_OK(csip_dialog_table_match(tab, ok, &m));
    EXPECT_TRUE(m == d);
    csip_msg *bye;
    ASSERT_OK(csip_dialog_request(d, &BYE, &bye));
    EXPECT_CSTR(lines_of(printed(bye), "To"), "To: Bob <sip:bob@biloxi.example.com>");
    csip_msg_free(bye);
    csip_msg_free(ok);
    csip_msg_free(r180);
    csip_msg_free(inv);

    /* A 180 without Contact: the Request-URI is the target until one comes;
     * a sips Request-URI over TLS makes the dialog secure. */
    inv = msg_nl("INVITE sips:bob@biloxi.example.com SIP/2.0\n"
                 "Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9\n"
                 "From: Alice <sips:alice@atlanta.example.com>;tag=s1\n"
                 "To: Bob <sips:bob@biloxi.example.com>\n"
                 "Call-ID: secure-1\n"
                 "CSeq: 1 INVITE\n\n");
    r180 = msg_nl("SIP/2.0 180 Ringing\n"
                  "Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9\n"
                  "From: Alice <sips:alice@atlanta.example.com>;tag=s1\n"
                  "To: Bob <sips:bob@biloxi.example.com>;tag=s2\n"
                  "Call-ID: secure-1\n"
                  "CSeq: 1 INVITE\n\n");
    ASSERT_TRUE(inv && r180);
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r180, CSIP_DIALOG_TLS, &d));
    EXPECT_TRUE(csip_dialog_is_secure(d));
    EXPECT_STR(csip_dialog_remote_target(d), "sips:bob@biloxi.example.com");
    EXPECT_STR(csip_dialog_local_target(d), NULL);
    csip_dialog_req reinv = BYE;
    reinv.method = S("PRACK");
    csip_msg *q;
    ASSERT_OK(csip_dialog_request(d, &reinv, &q));
    EXPECT_CSTR(start_line(printed(q)), "PRACK sips:bob@biloxi.example.com SIP/2.0");
    EXPECT_CSTR(lines_of(printed(q), "CSeq"), "CSeq: 2 PRACK");
    csip_msg_free(q);
    csip_msg_free(inv);
    csip_msg_free(r180);

    /* Folded From and Record-Route values are kept on one line. */
    inv = msg_nl("INVITE sip:bob@192.0.2.4 SIP/2.0\n"
                 "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\n"
                 "Record-Route: <sip:p1.example.com;lr>,\n"
                 "  <sip:p0.example.com;lr>\n"
                 "From: \"Alice\"\n"
                 " <sip:alice@atlanta.example.com>;tag=fold\n"
                 "To: <sip:bob@biloxi.example.com>\n"
                 "Call-ID: folded\n"
                 "CSeq: 1 INVITE\n"
                 "Contact: <sip:alice@192.0.2.101>\n\n");
    ASSERT_TRUE(inv != NULL);
    ASSERT_OK(
        csip_dialog_uas_response(inv, 200, NULL, S("b"), S("<sip:bob@192.0.2.4>"), NULL, &ok));
    EXPECT_CSTR(lines_of(printed(ok), "Record-Route"),
                "Record-Route: <sip:p1.example.com;lr>,  <sip:p0.example.com;lr>");
    ASSERT_OK(csip_dialog_uas_new(tab, inv, ok, 0, &d));
    EXPECT_STR(csip_dialog_remote_uri(d), "\"Alice\" <sip:alice@atlanta.example.com>;tag=fold");
    csip_dialog_req bye2 = BYE;
    bye2.via = S("SIP/2.0/UDP 192.0.2.4");
    ASSERT_OK(csip_dialog_request(d, &bye2, &q));
    EXPECT_CSTR(lines_of(printed(q), "To"),
                "To: \"Alice\" <sip:alice@atlanta.example.com>;tag=fold");
    EXPECT_CSTR(lines_of(printed(q), "Route"),
                "Route: <sip:p1.example.com;lr>|Route: <sip:p0.example.com;lr>");
    csip_msg_free(q);
    csip_msg_free(ok);
    csip_msg_free(inv);
    csip_dialog_table_free(tab);
}

/* ---- CANCEL -------------------------------------------------------------------- */

static void test_cancel(void)
{
    csip_msg *inv = msg_nl("INVITE sip:bob@biloxi.example.com SIP/2.0\n"
                           "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bKc1\n"
                           "Via: SIP/2.0/UDP never.example.com;branch=z9hG4bKno\n"
                           "Max-Forwards: 70\n"
                           "Route: <sip:ss1.atlanta.example.com;lr>\n"
                           "Route: <sip:ss2.biloxi.example.com;lr>\n"
                           "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                           "To: Bob <sip:bob@biloxi.example.com>\n"
                           "Call-ID: cancel-1\n"
                           "CSeq: 42 INVITE\n"
                           "Contact: <sip:alice@client.atlanta.example.com>\n"
                           "Content-Type: application/sdp\n"
                           "Content-Length: 4\n\n"
                           "v=0\n");
    ASSERT_TRUE(inv != NULL);
    csip_msg *c;
    ASSERT_OK(csip_dialog_cancel_for(inv, NULL, &c));
    const char *p = printed(c);
    EXPECT_CSTR(start_line(p), "CANCEL sip:bob@biloxi.example.com SIP/2.0");
    EXPECT_CSTR(lines_of(p, "Via"),
                "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bKc1");
    EXPECT_CSTR(lines_of(p, "Route"),
                "Route: <sip:ss1.atlanta.example.com;lr>|Route: <sip:ss2.biloxi.example.com;lr>");
    EXPECT_CSTR(lines_of(p, "CSeq"), "CSeq: 42 CANCEL");
    EXPECT_CSTR(lines_of(p, "To"), "To: Bob <sip:bob@biloxi.example.com>");
    EXPECT_CSTR(lines_of(p, "From"), "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl");
    EXPECT_CSTR(lines_of(p, "Contact"), "");
    EXPECT_CSTR(lines_of(p, "Content-Length"), "Content-Length: 0");
    csip_msg_free(c);
    csip_msg *bye = alice_request("BYE", 2, NULL);
    ASSERT_TRUE(bye != NULL);
    EXPECT_EQ(csip_dialog_cancel_for(bye, NULL, &c), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(c == NULL);
    csip_msg_free(bye);
    csip_msg_free(inv);
}

/* ---- limits and bad input ------------------------------------------------------ */

static void test_limits(void)
{
    csip_msg *inv = msg_nl(ALICE_INVITE), *r200 = msg_nl(BOB_200), *strict = msg_nl(STRICT_200);
    ASSERT_TRUE(inv && r200 && strict);
    csip_dialog *d;
    /* max_routes */
    csip_dialog_opts o = {.max_routes = 2};
    csip_dialog_table *tab;
    ASSERT_OK(csip_dialog_table_new(&o, &tab));
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d)); /* two routes */
    csip_dialog_free(d);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, strict, 0, &d), CSIP_ERR_LIMIT_VALUES); /* three */
    EXPECT_TRUE(d == NULL);
    EXPECT_EQ(csip_dialog_table_count(tab), 0);
    csip_dialog_table_free(tab);
    /* max_bytes */
    o = (csip_dialog_opts){.max_bytes = 150};
    ASSERT_OK(csip_dialog_table_new(&o, &tab));
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, r200, 0, &d), CSIP_ERR_LIMIT_DIALOG_SIZE);
    csip_dialog_table_free(tab);
    o = (csip_dialog_opts){.max_bytes = 300}; /* this dialog keeps 296 octets */
    ASSERT_OK(csip_dialog_table_new(&o, &tab));
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    char big[300];
    memset(big, 'x', sizeof big);
    memcpy(big, "<sip:", 5);
    big[sizeof big - 1] = '>';
    EXPECT_EQ(csip_dialog_set_local_target(d, (csip_str){big, sizeof big}),
              CSIP_ERR_LIMIT_DIALOG_SIZE);
    EXPECT_STR(csip_dialog_local_target(d), "<sip:alice@client.atlanta.example.com;transport=tcp>");
    csip_dialog_table_free(tab);
    /* max_dialogs */
    o = (csip_dialog_opts){.max_dialogs = 1};
    ASSERT_OK(csip_dialog_table_new(&o, &tab));
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    csip_msg *other = fork_resp(200, "Z", "sip:z@192.0.2.1");
    ASSERT_TRUE(other != NULL);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, other, 0, &d), CSIP_ERR_LIMIT_DIALOGS);
    csip_msg_free(other);
    csip_dialog_table_free(tab);
    csip_msg_free(strict);

    /* Bad arguments and messages that create no dialog. */
    ASSERT_OK(csip_dialog_table_new(NULL, &tab));
    EXPECT_EQ(csip_dialog_table_new(NULL, NULL), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, r200, 0, NULL), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(NULL, inv, r200, 0, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(tab, r200, inv, 0, &d), CSIP_ERR_INVALID_ARG);
    csip_msg *r100 = msg_nl("SIP/2.0 100 Trying\n"
                            "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
                            "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                            "To: Bob <sip:bob@biloxi.example.com>;tag=x\n"
                            "Call-ID: 3848276298220188511@atlanta.example.com\n"
                            "CSeq: 1 INVITE\n\n");
    csip_msg *wrong_cid = msg_nl("SIP/2.0 200 OK\n"
                                 "Via: SIP/2.0/TCP c.example.com;branch=z9hG4bK74bf9\n"
                                 "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                                 "To: Bob <sip:bob@biloxi.example.com>;tag=x\n"
                                 "Call-ID: another\n"
                                 "CSeq: 1 INVITE\n"
                                 "Contact: <sip:b@h>\n\n");
    csip_msg *wrong_cseq = msg_nl("SIP/2.0 200 OK\n"
                                  "Via: SIP/2.0/TCP c.example.com;branch=z9hG4bK74bf9\n"
                                  "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                                  "To: Bob <sip:bob@biloxi.example.com>;tag=x\n"
                                  "Call-ID: 3848276298220188511@atlanta.example.com\n"
                                  "CSeq: 2 INVITE\n"
                                  "Contact: <sip:b@h>\n\n");
    csip_msg *star = msg_nl("SIP/2.0 200 OK\n"
                            "Via: SIP/2.0/TCP c.example.com;branch=z9hG4bK74bf9\n"
                            "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                            "To: Bob <sip:bob@biloxi.example.com>;tag=x\n"
                            "Call-ID: 3848276298220188511@atlanta.example.com\n"
                            "CSeq: 1 INVITE\n"
                            "Contact: *\n\n");
    csip_msg *badrr = msg_nl("SIP/2.0 200 OK\n"
                             "Via: SIP/2.0/TCP c.example.com;branch=z9hG4bK74bf9\n"
                             "Record-Route: sip:no-angle.example.com\n"
                             "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                             "To: Bob <sip:bob@biloxi.example.com>;tag=x\n"
                             "Call-ID: 3848276298220188511@atlanta.example.com\n"
                             "CSeq: 1 INVITE\n"
                             "Contact: <sip:b@h>\n\n");
    csip_msg *opt = msg_nl("OPTIONS sip:bob@biloxi.example.com SIP/2.0\n"
                           "Via: SIP/2.0/TCP c.example.com;branch=z9hG4bK74bf9\n"
                           "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
                           "To: Bob <sip:bob@biloxi.example.com>\n"
                           "Call-ID: 3848276298220188511@atlanta.example.com\n"
                           "CSeq: 1 OPTIONS\n\n");
    ASSERT_TRUE(r100 && wrong_cid && wrong_cseq && star && badrr && opt);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, r100, 0, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, wrong_cid, 0, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, wrong_cseq, 0, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, star, 0, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uac_new(tab, inv, badrr, 0, &d), CSIP_ERR_PARSE_HEADER_VALUE);
    EXPECT_EQ(csip_dialog_uac_new(tab, opt, r200, 0, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_table_count(tab), 0);
    /* UAS: no Contact in the request */
    csip_msg *nocontact = msg_nl("INVITE sip:bob@192.0.2.4 SIP/2.0\n"
                                 "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n"
                                 "From: <sip:alice@a.example.com>;tag=f\n"
                                 "To: <sip:bob@b.example.com>\n"
                                 "Call-ID: nc\n"
                                 "CSeq: 1 INVITE\n\n");
    ASSERT_TRUE(nocontact != NULL);
    csip_msg *ok;
    ASSERT_OK(csip_dialog_uas_response(nocontact, 200, NULL, S("t"), CSIP_STR_NULL, NULL, &ok));
    EXPECT_EQ(csip_dialog_uas_new(tab, nocontact, ok, 0, &d), CSIP_ERR_PARSE_MISSING_HEADER);
    csip_msg_free(ok);
    /* uas_response argument checks */
    EXPECT_EQ(
        csip_dialog_uas_response(nocontact, 200, NULL, CSIP_STR_NULL, CSIP_STR_NULL, NULL, &ok),
        CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_uas_response(nocontact, 200, NULL, S("a b"), CSIP_STR_NULL, NULL, &ok),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(
        csip_dialog_uas_response(nocontact, 200, NULL, S("t"), S("<sip:x>\r\nX: 1"), NULL, &ok),
        CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(ok == NULL);
    EXPECT_EQ(csip_dialog_uas_response(r200, 200, NULL, S("t"), CSIP_STR_NULL, NULL, &ok),
              CSIP_ERR_INVALID_ARG);
    csip_msg_free(nocontact);

    /* Builder argument checks. */
    ASSERT_OK(csip_dialog_uac_new(tab, inv, r200, 0, &d));
    csip_msg *out;
    csip_dialog_req bad = BYE;
    bad.method = S("ACK");
    EXPECT_EQ(csip_dialog_request(d, &bad, &out), CSIP_ERR_INVALID_ARG);
    bad.method = S("CANCEL");
    EXPECT_EQ(csip_dialog_request(d, &bad, &out), CSIP_ERR_INVALID_ARG);
    bad.method = S("B YE");
    EXPECT_EQ(csip_dialog_request(d, &bad, &out), CSIP_ERR_INVALID_ARG);
    bad = BYE;
    bad.via = CSIP_STR_NULL;
    EXPECT_EQ(csip_dialog_request(d, &bad, &out), CSIP_ERR_INVALID_ARG);
    bad = BYE;
    bad.contact = S("<sip:x>\r\nInjected: 1");
    EXPECT_EQ(csip_dialog_request(d, &bad, &out), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(out == NULL);
    EXPECT_EQ(csip_dialog_local_cseq(d), 1); /* nothing counted */
    EXPECT_EQ(csip_dialog_request(NULL, &BYE, &out), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_ack(d, r200, &BYE, &out), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_ack(d, opt, &BYE, &out), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_response(d, r200, 200, NULL, &out), CSIP_ERR_INVALID_ARG);
    int status = 7;
    EXPECT_EQ(csip_dialog_recv_request(d, r200, &status), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(csip_dialog_recv_request(d, inv, NULL), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_recv_response(d, r200, r200, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_recv_response(d, inv, inv, 0), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_table_match(tab, NULL, &d), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_dialog_table_match(tab, inv, NULL), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(csip_dialog_table_find(NULL, NULL) == NULL);
    EXPECT_TRUE(csip_dialog_table_next(NULL, NULL) == NULL);
    EXPECT_EQ(csip_dialog_table_count(NULL), 0);
    csip_dialog_free(NULL);
    csip_dialog_table_free(NULL);
    csip_dialog_terminate(NULL);

    csip_msg_free(r100);
    csip_msg_free(wrong_cid);
    csip_msg_free(wrong_cseq);
    csip_msg_free(star);
    csip_msg_free(badrr);
    csip_msg_free(opt);
    csip_msg_free(inv);
    csip_msg_free(r200);
    csip_dialog_table_free(tab);
}

/* ---- failing allocator ------------------------------------------------------- */

/* One UAC and one UAS life under an allocator that fails the n-th allocation
 * (once). A step that fails must return CSIP_ERR_NOMEM and change nothing:
 * it is retried at once (the allocator fails only once), and the checks
 * after the steps (state, route set, CSeq) would see a half-done change.
 * Returns 0, or a negative value naming what went wrong; *nomem counts the
 * failed steps. */
static int run_with(check_failmem *f, csip_msg *inv, csip_msg *r180, csip_msg *r200,
                    csip_msg *bob_inv, int *nomem)
{
    csip_dialog_opts o = {.mem = &f->mem};
    csip_dialog_table *tab = NULL;
    csip_dialog *d = NULL, *u = NULL;
    csip_msg *m[6] = {0};
    int rc;
    *nomem = 0;
#define STEP(x)                                                                                    \
    do {                                                                                           \
        if ((rc = (x)) == CSIP_ERR_NOMEM) {                                                        \
            (*nomem)++;                                                                            \
            rc = (x);                                                                              \
        }                                                                                          \
        if (rc != 0)                                                                               \
            goto out;                                                                              \
    } while (0)
    STEP(csip_dialog_table_new(&o, &tab));
    STEP(csip_dialog_uac_new(tab, inv, r180, 0, &d));
    STEP(csip_dialog_recv_response(d, inv, r200, 0));
    rc = -1000;
    if (csip_dialog_state_of(d) != CSIP_DIALOG_CONFIRMED || csip_dialog_route_count(d) != 2 ||
        !csip_str_eq_c(csip_dialog_remote_target(d), "sip:bob@192.0.2.4;transport=tcp"))
        goto out;
    STEP(csip_dialog_ack(d, inv, &BYE, &m[0]));
    STEP(csip_dialog_request(d, &BYE, &m[1]));
    rc = -1001;
    if (csip_dialog_local_cseq(d) != 2)
        goto out;
    STEP(csip_dialog_uas_response(bob_inv, 180, NULL, S("bobtag1"), S("<sip:bob@192.0.2.4>"),
                                  &f->mem, &m[2]));
    STEP(csip_dialog_uas_new(tab, bob_inv, m[2], 0, &u));
    STEP(csip_dialog_response(u, bob_inv, 200, NULL, &m[3]));
    rc = -1002;
    if (csip_dialog_state_of(u) != CSIP_DIALOG_CONFIRMED || csip_dialog_table_count(tab) != 2)
        goto out;
    STEP(csip_dialog_set_local_target(u, S("<sip:bob@198.51.100.9>")));
    STEP(csip_dialog_cancel_for(inv, &f->mem, &m[4]));
    csip_dialog_req upd = BYE;
    upd.method = S("UPDATE");
    STEP(csip_dialog_request(u, &upd, &m[5]));
    rc = -1003;
    if (csip_dialog_local_cseq(u) != 1 ||
        !csip_str_eq_c(csip_dialog_local_target(u), "<sip:bob@198.51.100.9>"))
        goto out;
    rc = 0;
#undef STEP
out:
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        csip_msg_free(m[i]);
    csip_dialog_table_free(tab);
    return rc;
}

static void test_failing_allocator(void)
{
    csip_msg *inv = msg_nl(ALICE_INVITE), *r180 = msg_nl(BOB_180), *r200 = msg_nl(BOB_200);
    csip_msg *bob_inv = msg_nl(BOB_INVITE);
    ASSERT_TRUE(inv && r180 && r200 && bob_inv);
    int failures = 0, n;
    for (n = 1; n < 1000; n++) {
        check_failmem f;
        check_failmem_init(&f, n);
        int nomem;
        int rc = run_with(&f, inv, r180, r200, bob_inv, &nomem);
        EXPECT_EQ(rc, 0);
        EXPECT_EQ(f.live, 0);
        if (rc != 0 || f.live != 0) {
            fprintf(stderr, "  failing allocation %d\n", n);
            break;
        }
        if (!nomem)
            break; /* the n-th allocation was never made: every one has failed once */
        failures++;
    }
    EXPECT_GT(failures, 20);
    EXPECT_LT(n, 1000);
    csip_msg_free(inv);
    csip_msg_free(r180);
    csip_msg_free(r200);
    csip_msg_free(bob_inv);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_identifiers),
        CHECK_TEST(test_uac_early_then_confirmed),
        CHECK_TEST(test_uac_reinvite),
        CHECK_TEST(test_uas),
        CHECK_TEST(test_uas_rejects),
        CHECK_TEST(test_strict_routing),
        CHECK_TEST(test_strict_routing_uas),
        CHECK_TEST(test_cseq_ordering),
        CHECK_TEST(test_target_refresh),
        CHECK_TEST(test_uac_termination),
        CHECK_TEST(test_forking),
        CHECK_TEST(test_many),
        CHECK_TEST(test_odd_peers),
        CHECK_TEST(test_cancel),
        CHECK_TEST(test_limits),
        CHECK_TEST(test_failing_allocator),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
