/*
 * Message layer: parser cases, typed values, errors and their location,
 * limits, editing and printing, builders, and a failing allocator.
 */
#include "check.h"

static csip_msg *parse_ok(const char *s)
{
    csip_msg *m = NULL;
    csip_parse_error err;
    char *b = check_tail_copy(s, strlen(s));
    int rc = csip_msg_parse(b, strlen(s), NULL, &m, &err);
    free(b);
    if (rc != 0) {
        fprintf(stderr, "parse: %s at %u:%u (%s)\n", csip_err_name(rc), err.line, err.column,
                err.reason ? err.reason : "");
        csip_msg_free(m);
        return NULL;
    }
    return m;
}

#define BASE_REQ                                                                                 \
    "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"                                         \
    "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"                             \
    "Call-ID: c1@h\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"

static void test_lists_split_right(void)
{
    csip_msg *m = parse_ok("OPTIONS sip:b@example.com SIP/2.0\r\n" BASE_REQ
                           "Contact: \"Doe, John\" <sip:a,b@h1;x=1>;q=0.5, <sip:c@h2>;expires=60"
                           "\r\nm: sip:d@h3;expires=10\r\n"
                           "Route: <sip:p1;lr>,<sip:p2;lr> , <sip:p3;lr>\r\n"
                           "Allow: INVITE,ACK , BYE\r\nAllow: OPTIONS\r\n"
                           "WWW-Authenticate: Digest realm=\"a, b\", nonce=\"n,1\", qop=\"auth,auth-int\"\r\n"
                           "Content-Length: 0\r\n\r\n");
    ASSERT_TRUE(m);
    const csip_nameaddr *c;
    size_t n;
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &n));
    ASSERT_EQ(n, 3);
    EXPECT_STR(c[0].display, "\"Doe, John\"");
    EXPECT_STR(c[0].uri.user, "a,b");
    EXPECT_STR(c[0].uri.params, "x=1");
    EXPECT_EQ(c[0].q, 500);
    EXPECT_STR(c[1].uri.host, "h2");
    EXPECT_EQ(c[1].expires, 60);
    EXPECT_STR(c[2].uri.host, "h3");
    EXPECT_FALSE(c[2].angle);
    EXPECT_EQ(c[2].expires, 10); /* addr-spec: ;expires is a header parameter */
    ASSERT_OK(csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &c, &n));
    ASSERT_EQ(n, 3);
    EXPECT_STR(c[2].uri.host, "p3");
    const csip_str *t;
    ASSERT_OK(csip_msg_tokens(m, CSIP_HDR_ALLOW, &t, &n));
    ASSERT_EQ(n, 4);
    EXPECT_STR(t[1], "ACK");
    EXPECT_STR(t[3], "OPTIONS");
    const csip_auth *a;
    ASSERT_OK(csip_msg_auth(m, CSIP_HDR_WWW_AUTHENTICATE, 0, &a));
    EXPECT_STR(a->scheme, "Digest");
    EXPECT_STR(a->realm, "a, b");
    EXPECT_STR(a->nonce, "n,1");
    EXPECT_STR(a->qop, "auth,auth-int");
    EXPECT_EQ(csip_msg_auth(m, CSIP_HDR_WWW_AUTHENTICATE, 1, &a), CSIP_ERR_NOT_FOUND);
    EXPECT_OK(csip_msg_validate(m, NULL));
    csip_msg_free(m);
}

static void test_typed_values(void)
{
    csip_msg *m = parse_ok(
        "SUBSCRIBE sip:b@example.com SIP/2.0\r\n"
        "v: SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKx;rport;received=192.0.2.1;maddr=m.example;ttl=3\r\n"
        "f: \"A\" <sips:a@example.com>;tag=9\r\nt: b <sip:b@example.com>\r\ni: x@y\r\n"
        "CSeq: 4294967295 SUBSCRIBE\r\nMax-Forwards: 0\r\no: dialog.winfo;id=7;x=y\r\n"
        "Subscription-State: terminated;reason=timeout;retry-after=20\r\n"
        "Expires: 99999999999999\r\nMin-Expires: 60\r\nRSeq: 5\r\nRAck: 5 4 INVITE\r\n"
        "Retry-After: 120 (I'm in a (long) meeting) ;duration=60\r\n"
        "Date: Thu, 21 Feb 2002 13:02:03 GMT\r\nTimestamp: 1.5 0.25\r\n"
        "Refer-To: <sip:c@example.com?Replaces=x>\r\n"
        "Content-Type: application/sdp ; charset=\"utf-8\"\r\nl: 0\r\n\r\n");
    ASSERT_TRUE(m);
    const csip_via *v;
    ASSERT_OK(csip_msg_via(m, 0, &v));
    EXPECT_STR(v->transport, "TLS");
    EXPECT_EQ(v->host_type, CSIP_HOST_IPV6);
    EXPECT_STR(v->host, "[2001:db8::1]");
    EXPECT_EQ(v->port, 5061);
    EXPECT_TRUE(v->has_rport);
    EXPECT_FALSE(v->rport_has_value);
    EXPECT_STR(v->received, "192.0.2.1");
    EXPECT_STR(v->maddr, "m.example");
    EXPECT_STR(v->ttl, "3");
    const csip_nameaddr *na;
    ASSERT_OK(csip_msg_from(m, &na));
    EXPECT_EQ(na->uri.kind, CSIP_URI_SIPS);
    EXPECT_STR(na->tag, "9");
    ASSERT_OK(csip_msg_to(m, &na));
    EXPECT_STR(na->display, "b");
    const csip_cseq *cs;
    ASSERT_OK(csip_msg_cseq(m, &cs));
    EXPECT_EQ(cs->number, 4294967295u);
    uint32_t u;
    ASSERT_OK(csip_msg_max_forwards(m, &u));
    EXPECT_EQ(u, 0);
    ASSERT_OK(csip_msg_expires(m, &u));
    EXPECT_EQ(u, 3600); /* overlarge: read as 3600 */
    ASSERT_OK(csip_msg_min_expires(m, &u));
    EXPECT_EQ(u, 60);
    ASSERT_OK(csip_msg_rseq(m, &u));
    EXPECT_EQ(u, 5);
    const csip_rack *ra;
    ASSERT_OK(csip_msg_rack(m, &ra));
    EXPECT_EQ(ra->rseq, 5);
    EXPECT_EQ(ra->cseq, 4);
    EXPECT_STR(ra->method, "INVITE");
    const csip_event *ev;
    ASSERT_OK(csip_msg_event(m, &ev));
    EXPECT_STR(ev->package, "dialog.winfo");
    EXPECT_STR(ev->id, "7");
    const csip_substate *ss;
    ASSERT_OK(csip_msg_subscription_state(m, &ss));
    EXPECT_STR(ss->state, "terminated");
    EXPECT_STR(ss->reason, "timeout");
    EXPECT_EQ(ss->retry_after, 20);
    const csip_retry_after *rta;
    ASSERT_OK(csip_msg_retry_after(m, &rta));
    EXPECT_EQ(rta->seconds, 120);
    EXPECT_STR(rta->comment, "I'm in a (long) meeting");
    EXPECT_EQ(rta->duration, 60);
    const csip_date *d;
    ASSERT_OK(csip_msg_date(m, &d));
    EXPECT_EQ(d->year, 2002);
    EXPECT_EQ(d->epoch, 1014296523);
    const csip_timestamp *ts;
    ASSERT_OK(csip_msg_timestamp(m, &ts));
    EXPECT_STR(ts->value, "1.5");
    EXPECT_STR(ts->delay, "0.25");
    ASSERT_OK(csip_msg_refer_to(m, &na));
    EXPECT_STR(na->uri.headers, "Replaces=x");
    const csip_media_type *mt;
    ASSERT_OK(csip_msg_content_type(m, &mt));
    EXPECT_STR(mt->subtype, "sdp");
    EXPECT_STR(mt->params, "charset=\"utf-8\"");
    /* accessors are cached: the same pointer comes back */
    const csip_via *v2;
    ASSERT_OK(csip_msg_via(m, 0, &v2));
    EXPECT_TRUE(v == v2);
    EXPECT_OK(csip_msg_validate(m, NULL));
    csip_msg_free(m);
}

typedef struct bad {
    const char *name;
    const char *msg;
    int code;       /* from validate (or parse) */
    const char *hdr;
    uint32_t line;
} bad;

static void test_errors(void)
{
    static const bad cases[] = {
        {"via no lws", "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDPh;branch=z9hG4bK1\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Via", 2},
        {"via bad port", "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h:70000\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Via", 2},
        {"via rport word", "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;rport=x\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Via", 2},
        {"via empty param", "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;;a\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Via", 2},
        {"via bad ipv4", "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.999\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Via", 2},
        {"cseq letters", "OPTIONS sip:b@x SIP/2.0\r\nCSeq: 1a OPTIONS\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "CSeq", 2},
        {"cseq range", "OPTIONS sip:b@x SIP/2.0\r\nCSeq: 4294967296 OPTIONS\r\n", CSIP_ERR_PARSE_NUMBER_RANGE, "CSeq", 2},
        {"mf range", "OPTIONS sip:b@x SIP/2.0\r\nMax-Forwards: 99999999999\r\n", CSIP_ERR_PARSE_NUMBER_RANGE, "Max-Forwards", 2},
        {"callid space", "OPTIONS sip:b@x SIP/2.0\r\nCall-ID: a b\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Call-ID", 2},
        {"to two values", "OPTIONS sip:b@x SIP/2.0\r\nTo: <sip:a@b>, <sip:c@d>\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "To", 2},
        {"route no angle", "OPTIONS sip:b@x SIP/2.0\r\nRoute: sip:p;lr\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Route", 2},
        {"contact q", "OPTIONS sip:b@x SIP/2.0\r\nContact: <sip:a@b>;q=1.5\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Contact", 2},
        {"contact star+", "OPTIONS sip:b@x SIP/2.0\r\nContact: * <sip:a@b>\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Contact", 2},
        {"unterminated quote", "OPTIONS sip:b@x SIP/2.0\r\nFrom: \"abc <sip:a@b>\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "From", 2},
        {"bad uri", "OPTIONS sip:b@x SIP/2.0\r\nFrom: <sip:a@>\r\n", CSIP_ERR_PARSE_URI, "From", 2},
        {"ctype", "OPTIONS sip:b@x SIP/2.0\r\nContent-Type: text\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Content-Type", 2},
        {"digest junk", "OPTIONS sip:b@x SIP/2.0\r\nAuthorization: Digest realm\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Authorization", 2},
        {"empty via", "OPTIONS sip:b@x SIP/2.0\r\nVia:\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Via", 2},
        {"allow empty item", "OPTIONS sip:b@x SIP/2.0\r\nAllow: A,,B\r\n", CSIP_ERR_PARSE_HEADER_VALUE, "Allow", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_current = cases[i].name;
        /* the base headers, less the one under test (it would be a duplicate) */
        static const char *const base[] = {"Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1",
                                           "From: <sip:a@example.com>;tag=1",
                                           "To: <sip:b@example.com>", "Call-ID: c1@h",
                                           "CSeq: 1 OPTIONS", "Max-Forwards: 70"};
        char buf[1024];
        size_t n = (size_t)snprintf(buf, sizeof buf, "%s", cases[i].msg);
        size_t hl = strlen(cases[i].hdr);
        for (size_t k = 0; k < sizeof base / sizeof base[0]; k++)
            if (strncmp(base[k], cases[i].hdr, hl) != 0 || base[k][hl] != ':')
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\r\n", base[k]);
        snprintf(buf + n, sizeof buf - n, "Content-Length: 0\r\n\r\n");
        csip_msg *m = NULL;
        csip_parse_error err;
        int rc = csip_msg_parse(buf, strlen(buf), NULL, &m, &err);
        if (!m) {
            CHECK_FAIL_("parse failed: %s", csip_err_name(rc));
            continue;
        }
        if (rc == 0)
            rc = csip_msg_validate(m, &err);
        EXPECT_EQ(rc, cases[i].code);
        EXPECT_STR(err.header, cases[i].hdr);
        EXPECT_EQ(err.line, cases[i].line);
        EXPECT_EQ(err.status, 400);
        EXPECT_TRUE(err.reason && strstr(err.reason, cases[i].hdr));
        csip_msg_free(m);
    }
    check_current = "test_errors";
}

static void test_start_line_errors(void)
{
    static const struct {
        const char *in;
        int rc, status;
        bool have_msg;
    } cases[] = {
        {"", CSIP_ERR_PARSE_EMPTY, 0, false},
        {"\r\n\r\n", CSIP_ERR_PARSE_EMPTY, 0, false},
        {"INVITE sip:a@b SIP/2.0", CSIP_ERR_PARSE_START_LINE, 0, false}, /* no line end */
        {"INVITE sip:a@b SIP/2.0\r\n\r\n", 0, 0, true},
        {"INVITE sip:a@b SIP/3.0\r\n\r\n", CSIP_ERR_PARSE_VERSION, 505, true},
        {"INVITE sip:a@b HTTP/1.1\r\n\r\n", CSIP_ERR_PARSE_START_LINE, 400, true},
        {"INV\"TE sip:a@b SIP/2.0\r\n\r\n", CSIP_ERR_PARSE_METHOD, 400, true},
        {"INVITE sip:a@b\r\n\r\n", CSIP_ERR_PARSE_START_LINE, 400, true},
        {"SIP/2.0 99 Low\r\n\r\n", CSIP_ERR_PARSE_STATUS_CODE, 0, true},
        {"SIP/2.0 700 High\r\n\r\n", CSIP_ERR_PARSE_STATUS_CODE, 0, true},
        {"SIP/2.0 2000 Big\r\n\r\n", CSIP_ERR_PARSE_STATUS_CODE, 0, true},
        {"SIP/2.0 499 Odd\r\n\r\n", 0, 0, true},
        {"SIP/2.0 200\r\n\r\n", 0, 0, true},
        {"SIP/2.0 200 O\x01K\r\n\r\n", CSIP_ERR_PARSE_REASON, 0, true},
        {"OPTIONS sip:a@b SIP/2.0\r\nNoColonHere\r\n\r\n", CSIP_ERR_PARSE_HEADER_LINE, 400, true},
        {"OPTIONS sip:a@b SIP/2.0\r\n folded-first: x\r\n\r\n", CSIP_ERR_PARSE_HEADER_LINE, 400, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_current = cases[i].in;
        csip_msg *m = NULL;
        csip_parse_error err;
        char *b = check_tail_copy(cases[i].in, strlen(cases[i].in));
        int rc = csip_msg_parse(b, strlen(cases[i].in), NULL, &m, &err);
        free(b);
        EXPECT_EQ(rc, cases[i].rc);
        EXPECT_EQ(m != NULL, cases[i].have_msg);
        if (rc)
            EXPECT_EQ(err.status, cases[i].status);
        csip_msg_free(m);
    }
    check_current = "test_start_line_errors";
    csip_msg *m = parse_ok("SIP/2.0 499 Odd\r\n\r\n");
    ASSERT_TRUE(m);
    EXPECT_EQ(csip_status_effective(csip_msg_status(m)), 400);
    csip_msg_free(m);
}

static void test_liberal_framing(void)
{
    /* leading CRLF, bare LF line ends, header name case, spaces before ':' */
    csip_msg *m = parse_ok("\r\n\r\nOPTIONS sip:b@example.com SIP/2.0\n"
                           "vIa   : SIP/2.0/UDP h;branch=z9hG4bK1\nfrom: <sip:a@b>;tag=1\n"
                           "TO: <sip:b@c>\ncall-id: x\ncseq: 2 OPTIONS\nCONTENT-LENGTH: 3\n\nabcdef");
    ASSERT_TRUE(m);
    EXPECT_OK(csip_msg_validate(m, NULL));
    EXPECT_STR(csip_msg_body(m), "abc");
    const csip_hdr *h = csip_msg_hdr_at(m, 0);
    EXPECT_STR(h->name, "vIa");
    EXPECT_EQ(h->id, CSIP_HDR_VIA);
    csip_msg_free(m);
}

static void test_limits(void)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "OPTIONS sip:b@x SIP/2.0\r\n" BASE_REQ);
    for (int i = 0; i < 10; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "X-H%d: v\r\n", i);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "Content-Length: 0\r\n\r\n");
    csip_parse_opts o = {.limits = {.max_headers = 12}};
    csip_msg *m;
    csip_parse_error err;
    EXPECT_EQ(csip_msg_parse(buf, (size_t)n, &o, &m, &err), CSIP_ERR_LIMIT_HEADERS);
    EXPECT_TRUE(m == NULL);
    o.limits.max_headers = 0;
    o.limits.max_datagram = 100;
    EXPECT_EQ(csip_msg_parse(buf, (size_t)n, &o, &m, &err), CSIP_ERR_LIMIT_MESSAGE_SIZE);
    EXPECT_EQ(err.status, 513);
    o.limits.max_datagram = 0;
    o.limits.max_line = 20;
    EXPECT_EQ(csip_msg_parse(buf, (size_t)n, &o, &m, &err), CSIP_ERR_LIMIT_LINE);
    /* Via values over the limit */
    o.limits.max_line = 0;
    o.limits.max_via = 2;
    n = snprintf(buf, sizeof buf,
                 "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a, SIP/2.0/UDP b\r\nVia: SIP/2.0/UDP c\r\n"
                 BASE_REQ "l: 0\r\n\r\n");
    ASSERT_OK(csip_msg_parse(buf, (size_t)n, &o, &m, &err));
    EXPECT_EQ(csip_msg_validate(m, &err), CSIP_ERR_LIMIT_VIA);
    csip_msg_free(m);
    /* Request-URI length */
    o.limits.max_via = 0;
    o.limits.max_uri = 10;
    n = snprintf(buf, sizeof buf, "OPTIONS sip:bbbbbbbbbbbbbbbb@x SIP/2.0\r\n" BASE_REQ "l: 0\r\n\r\n");
    EXPECT_EQ(csip_msg_parse(buf, (size_t)n, &o, &m, &err), CSIP_ERR_LIMIT_URI);
    csip_msg_free(m);
    /* many values in one list header */
    o.limits.max_uri = 0;
    o.limits.max_values = 3;
    n = snprintf(buf, sizeof buf, "OPTIONS sip:b@x SIP/2.0\r\n" BASE_REQ
                 "Route: <sip:a;lr>,<sip:b;lr>,<sip:c;lr>,<sip:d;lr>\r\nl: 0\r\n\r\n");
    ASSERT_OK(csip_msg_parse(buf, (size_t)n, &o, &m, &err));
    const csip_nameaddr *r;
    size_t nr;
    EXPECT_EQ(csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &r, &nr), CSIP_ERR_LIMIT_VALUES);
    csip_msg_free(m);
}

static void test_edit_within_limits(void)
{
    /* an edit never makes a message that the same limits would refuse to parse */
    static const char s[] = "OPTIONS sip:b@x SIP/2.0\r\n" BASE_REQ "l: 0\r\n\r\n"; /* 7 lines */
    csip_parse_opts o = {.limits = {.max_headers = 7}};
    csip_msg *m;
    csip_parse_error err;
    ASSERT_OK(csip_msg_parse(s, sizeof s - 1, &o, &m, &err));
    EXPECT_EQ(csip_msg_hdr_add(m, CSIP_HDR_SUBJECT, CSIP_STR("x"), false), CSIP_ERR_LIMIT_HEADERS);
    ASSERT_OK(csip_msg_hdr_remove(m, 5));
    EXPECT_OK(csip_msg_hdr_add(m, CSIP_HDR_SUBJECT, CSIP_STR("x"), false));
    char out[1024];
    int n = csip_msg_print(m, out, sizeof out);
    ASSERT_GT(n, 0);
    csip_msg *m2;
    EXPECT_OK(csip_msg_parse(out, (size_t)n, &o, &m2, &err));
    csip_msg_free(m2);
    csip_msg_free(m);
}

static void test_edit_and_print(void)
{
    csip_msg *m = parse_ok("INVITE sip:b@example.com SIP/2.0\r\n"
                           "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n"
                           "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
                           "Call-ID: c1@h\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                           "X-Keep:  odd   spacing\r\nContent-Length: 4\r\n\r\nbody");
    ASSERT_TRUE(m);
    /* a proxy: pop its Via (first value of a two-value line), decrement
     * Max-Forwards, add a Record-Route and a Via, retarget */
    ASSERT_OK(csip_msg_via_pop(m));
    const csip_via *v;
    ASSERT_OK(csip_msg_via(m, 0, &v));
    EXPECT_STR(v->host, "c.example.com");
    ASSERT_OK(csip_msg_set_max_forwards(m, 69));
    ASSERT_OK(csip_msg_hdr_add(m, CSIP_HDR_RECORD_ROUTE, CSIP_STR("<sip:proxy.example.com;lr>"), true));
    ASSERT_OK(csip_msg_hdr_add(m, CSIP_HDR_VIA, CSIP_STR("SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnew"), true));
    ASSERT_OK(csip_msg_set_ruri(m, CSIP_STR("sip:b@192.0.2.9:5070")));
    /* no empty Request-URI, no white space in one */
    EXPECT_EQ(csip_msg_set_ruri(m, CSIP_STR("")), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_msg_set_ruri(m, CSIP_STR_NULL), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_msg_set_ruri(m, CSIP_STR("sip:a b@c")), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_msg_hdr_add(m, CSIP_HDR_SUBJECT, CSIP_STR("a\r\nX-Injected: 1"), false),
              CSIP_ERR_INVALID_ARG);
    char out[2048];
    int n = csip_msg_print(m, out, sizeof out);
    ASSERT_GT(n, 0);
    static const char want[] = "INVITE sip:b@192.0.2.9:5070 SIP/2.0\r\n"
                               "Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnew\r\n"
                               "Record-Route: <sip:proxy.example.com;lr>\r\n"
                               "Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n"
                               "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
                               "Call-ID: c1@h\r\nCSeq: 1 INVITE\r\nMax-Forwards: 69\r\n"
                               "X-Keep:  odd   spacing\r\nContent-Length: 4\r\n\r\nbody";
    EXPECT_EQ((size_t)n, sizeof want - 1);
    if ((size_t)n != sizeof want - 1 || memcmp(out, want, (size_t)n))
        CHECK_FAIL_("printed:\n%.*s", n, out);
    /* the edited message reads back with the new values */
    csip_msg *m2 = parse_ok(out);
    ASSERT_TRUE(m2);
    ASSERT_OK(csip_msg_via(m2, 0, &v));
    EXPECT_STR(v->branch, "z9hG4bKnew");
    uint32_t mf;
    ASSERT_OK(csip_msg_max_forwards(m2, &mf));
    EXPECT_EQ(mf, 69);
    EXPECT_OK(csip_msg_validate(m2, NULL));
    csip_msg_free(m2);
    /* remove a header and replace the body */
    ASSERT_OK(csip_msg_hdr_remove(m, 0));
    ASSERT_OK(csip_msg_set_body(m, CSIP_STR("text/plain"), CSIP_STR("longer body")));
    n = csip_msg_print(m, out, sizeof out);
    ASSERT_GT(n, 0);
    EXPECT_TRUE(check_memmem(out, (size_t)n, "Content-Length: 11\r\n", 20) != NULL);
    EXPECT_TRUE(check_memmem(out, (size_t)n, "z9hG4bKnew", 10) == NULL);
    EXPECT_TRUE(check_memmem(out, (size_t)n, "Content-Type: text/plain\r\n", 26) != NULL);
    csip_msg_free(m);
}

static void test_response_for(void)
{
    csip_msg *req = parse_ok("INVITE sip:b@example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1\r\n"
                             "v: SIP/2.0/UDP c.example.com;branch=z9hG4bKc;rport=5060\r\n"
                             "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
                             "Call-ID: c1@h\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\n"
                             "Timestamp: 54\r\nContact: <sip:a@c.example.com>\r\nl: 0\r\n\r\n");
    ASSERT_TRUE(req);
    csip_msg *r;
    ASSERT_OK(csip_response_for(req, 180, NULL, CSIP_STR("totag"), NULL, &r));
    EXPECT_EQ(csip_msg_status(r), 180);
    EXPECT_STR(csip_msg_reason(r), "Ringing");
    const csip_nameaddr *to;
    ASSERT_OK(csip_msg_to(r, &to));
    EXPECT_STR(to->tag, "totag");
    size_t nv;
    ASSERT_OK(csip_msg_via_count(r, &nv));
    EXPECT_EQ(nv, 2);
    const csip_via *v;
    ASSERT_OK(csip_msg_via(r, 1, &v));
    EXPECT_EQ(v->rport, 5060);
    const csip_cseq *cs;
    ASSERT_OK(csip_msg_cseq(r, &cs));
    EXPECT_EQ(cs->number, 7);
    EXPECT_TRUE(csip_msg_hdr_find(r, CSIP_HDR_TIMESTAMP) == NULL);
    EXPECT_TRUE(csip_msg_hdr_find(r, CSIP_HDR_CONTACT) == NULL);
    EXPECT_OK(csip_msg_validate(r, NULL));
    csip_msg_free(r);
    /* 100 Trying: no tag, Timestamp copied */
    ASSERT_OK(csip_response_for(req, 100, NULL, CSIP_STR("totag"), NULL, &r));
    ASSERT_OK(csip_msg_to(r, &to));
    EXPECT_TRUE(to->tag.p == NULL);
    EXPECT_TRUE(csip_msg_hdr_find(r, CSIP_HDR_TIMESTAMP) != NULL);
    csip_msg_free(r);
    /* a custom reason; invalid arguments */
    ASSERT_OK(csip_response_for(req, 400, "Malformed CSeq header", CSIP_STR_NULL, NULL, &r));
    EXPECT_STR(csip_msg_reason(r), "Malformed CSeq header");
    csip_msg_free(r);
    EXPECT_EQ(csip_response_for(req, 99, NULL, CSIP_STR_NULL, NULL, &r), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_response_for(req, 200, "a\r\nb", CSIP_STR_NULL, NULL, &r), CSIP_ERR_INVALID_ARG);
    /* from a response to the request (the request gone): another response
     * with the same Vias, From, To (its tag kept, no second), Call-ID and
     * CSeq, nothing else; no 100 from it */
    ASSERT_OK(csip_response_for(req, 200, NULL, CSIP_STR("first"), NULL, &r));
    ASSERT_OK(csip_msg_hdr_add(r, CSIP_HDR_CONTACT, CSIP_STR("<sip:a@c.example.com>"), false));
    char printed[1024];
    int pn = csip_msg_print(r, printed, sizeof printed);
    ASSERT_GE(pn, 0);
    csip_msg_free(r);
    csip_msg *ok = NULL, *r2 = NULL;
    ASSERT_OK(csip_msg_parse(printed, (size_t)pn, NULL, &ok, NULL));
    ASSERT_OK(csip_response_for(ok, 503, "Try Later", CSIP_STR("second"), NULL, &r2));
    EXPECT_EQ(csip_msg_status(r2), 503);
    EXPECT_STR(csip_msg_reason(r2), "Try Later");
    ASSERT_OK(csip_msg_to(r2, &to));
    EXPECT_STR(to->tag, "first");
    EXPECT_EQ(csip_msg_hdr_count_id(r2, CSIP_HDR_TO), 1);
    ASSERT_OK(csip_msg_via_count(r2, &nv));
    EXPECT_EQ(nv, 2);
    ASSERT_OK(csip_msg_cseq(r2, &cs));
    EXPECT_EQ(cs->number, 7);
    EXPECT_TRUE(csip_msg_hdr_find(r2, CSIP_HDR_CONTACT) == NULL);
    EXPECT_TRUE(csip_msg_hdr_find(r2, CSIP_HDR_CALL_ID) != NULL);
    EXPECT_TRUE(csip_msg_hdr_find(r2, CSIP_HDR_FROM) != NULL);
    EXPECT_OK(csip_msg_validate(r2, NULL));
    csip_msg_free(r2);
    EXPECT_EQ(csip_response_for(ok, 100, NULL, CSIP_STR_NULL, NULL, &r2), CSIP_ERR_INVALID_ARG);
    csip_msg_free(ok);
    csip_msg_free(req);

    /* a response longer than the builder's stack buffer (40 Vias of ~70
     * octets): written in a second pass, every Via there, in order */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "OPTIONS sip:b@example.com SIP/2.0\r\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(big + n, sizeof big - n,
                              "Via: SIP/2.0/UDP proxy%02d.example.com:5060;branch=z9hG4bK%08d\r\n",
                              i, i);
    n += (size_t)snprintf(big + n, sizeof big - n,
                          "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
                          "Call-ID: big@h\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                          "Content-Length: 0\r\n\r\n");
    ASSERT_TRUE(n < sizeof big);
    csip_msg *breq = NULL;
    ASSERT_OK(csip_msg_parse(big, n, NULL, &breq, NULL));
    ASSERT_OK(csip_response_for(breq, 200, NULL, CSIP_STR("t"), NULL, &r));
    ASSERT_OK(csip_msg_via_count(r, &nv));
    EXPECT_EQ(nv, 40);
    ASSERT_OK(csip_msg_via(r, 39, &v));
    EXPECT_STR(v->host, "proxy39.example.com");
    EXPECT_TRUE(csip_msg_raw(r).len > 2048);
    EXPECT_OK(csip_msg_validate(r, NULL));
    csip_msg_free(r);
    csip_msg_free(breq);
}

/*
 * csip_response_for() builds its response in place, without printing and
 * parsing it: the message must be what parsing its own bytes gives, line for
 * line (name, value, raw line, id), typed values included, and edits of it
 * print as they would on a parsed response. Compact names, a folded value,
 * an empty reason and a To that has a tag already are copied as they are.
 */
static void test_response_for_as_parsed(void)
{
    csip_msg *req = parse_ok("REGISTER sip:example.com SIP/2.0\r\n"
                             "v: SIP/2.0/UDP c.example.com;branch=z9hG4bKc1;rport\r\n"
                             "Via: SIP/2.0/TCP p.example.com;branch=z9hG4bKp1,\r\n"
                             "   SIP/2.0/UDP q.example.com;branch=z9hG4bKq1\r\n"
                             "f: \"A\" <sip:a@example.com>;tag=9\r\nt: <sip:a@example.com>\r\n"
                             "i: r1@h\r\nCSeq: 12 REGISTER\r\nMax-Forwards: 70\r\n"
                             "Timestamp: 3\r\nContact: <sip:a@192.0.2.1>\r\nl: 0\r\n\r\n");
    ASSERT_TRUE(req);
    const struct {
        int code;
        const char *reason;
        const char *tag;
    } cases[] = {{100, NULL, "x"}, {200, NULL, "abc"}, {401, "", NULL}, {486, "Busy", "t-1.x"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        csip_msg *r;
        ASSERT_OK(csip_response_for(req, cases[c].code, cases[c].reason,
                                    cases[c].tag ? csip_str_c(cases[c].tag) : CSIP_STR_NULL, NULL,
                                    &r));
        csip_str raw = csip_msg_raw(r);
        csip_msg *p;
        ASSERT_OK(csip_msg_parse(raw.p, raw.len, NULL, &p, NULL));
        EXPECT_EQ(csip_msg_status(r), csip_msg_status(p));
        EXPECT_TRUE(csip_str_eq(csip_msg_reason(r), csip_msg_reason(p)));
        EXPECT_FALSE(csip_msg_is_request(r));
        EXPECT_EQ(csip_msg_hdr_count(r), csip_msg_hdr_count(p));
        for (size_t i = 0; i < csip_msg_hdr_count(r) && i < csip_msg_hdr_count(p); i++) {
            const csip_hdr *a = csip_msg_hdr_at(r, i), *b = csip_msg_hdr_at(p, i);
            EXPECT_EQ(a->id, b->id);
            EXPECT_TRUE(csip_str_eq(a->name, b->name));
            EXPECT_TRUE(csip_str_eq(a->value, b->value));
            EXPECT_TRUE(csip_str_eq(a->raw, b->raw));
        }
        EXPECT_EQ(csip_msg_body(r).len, 0);
        EXPECT_OK(csip_msg_validate(r, NULL));
        size_t nv, npv;
        ASSERT_OK(csip_msg_via_count(r, &nv));
        ASSERT_OK(csip_msg_via_count(p, &npv));
        EXPECT_EQ(nv, 3);
        EXPECT_EQ(nv, npv);
        const csip_nameaddr *to;
        ASSERT_OK(csip_msg_to(r, &to));
        if (cases[c].tag && cases[c].code > 100)
            EXPECT_STR(to->tag, cases[c].tag);
        else
            EXPECT_TRUE(to->tag.p == NULL);
        EXPECT_EQ(csip_msg_hdr_find(r, CSIP_HDR_TIMESTAMP) != NULL, cases[c].code == 100);
        /* an edit prints as on the parsed copy */
        ASSERT_OK(
            csip_msg_hdr_add(r, CSIP_HDR_WWW_AUTHENTICATE, CSIP_STR("Digest realm=\"x\""), false));
        ASSERT_OK(
            csip_msg_hdr_add(p, CSIP_HDR_WWW_AUTHENTICATE, CSIP_STR("Digest realm=\"x\""), false));
        char b1[2048], b2[2048];
        int n1 = csip_msg_print(r, b1, sizeof b1), n2 = csip_msg_print(p, b2, sizeof b2);
        EXPECT_TRUE(n1 > 0 && n1 == n2 && memcmp(b1, b2, (size_t)n1) == 0);
        csip_msg_free(p);
        csip_msg_free(r);
    }
    /* a To with a tag keeps it, and gets no second one */
    csip_msg *dlg =
        parse_ok("BYE sip:a@192.0.2.1 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK2\r\n"
                 "From: <sip:b@example.com>;tag=2\r\nTo: <sip:a@example.com>;tag=old\r\n"
                 "Call-ID: d1@h\r\nCSeq: 5 BYE\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n");
    ASSERT_TRUE(dlg);
    csip_msg *r;
    ASSERT_OK(csip_response_for(dlg, 200, NULL, CSIP_STR("new"), NULL, &r));
    const csip_nameaddr *to;
    ASSERT_OK(csip_msg_to(r, &to));
    EXPECT_STR(to->tag, "old");
    EXPECT_TRUE(check_memmem(csip_msg_raw(r).p, csip_msg_raw(r).len, "new", 3) == NULL);
    csip_msg_free(r);
    csip_msg_free(dlg);
    csip_msg_free(req);
}

static void test_request_new(void)
{
    csip_request_spec s = {
        .method = CSIP_STR("MESSAGE"),
        .ruri = CSIP_STR("sip:bob@example.com"),
        .via = CSIP_STR("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport"),
        .from = CSIP_STR("<sip:alice@example.com>;tag=x1"),
        .to = CSIP_STR("<sip:bob@example.com>"),
        .call_id = CSIP_STR("id1@127.0.0.1"),
        .cseq = 3,
        .content_type = CSIP_STR("text/plain"),
        .body = CSIP_STR("hi"),
        .extra = CSIP_STR("Subject: test\r\n"),
    };
    csip_msg *m;
    ASSERT_OK(csip_request_new(&s, NULL, &m));
    EXPECT_EQ(csip_msg_method(m), CSIP_METHOD_MESSAGE);
    EXPECT_OK(csip_msg_validate(m, NULL));
    uint32_t mf;
    ASSERT_OK(csip_msg_max_forwards(m, &mf));
    EXPECT_EQ(mf, 70);
    EXPECT_STR(csip_msg_body(m), "hi");
    EXPECT_TRUE(csip_msg_hdr_find(m, CSIP_HDR_SUBJECT) != NULL);
    csip_msg_free(m);
    /* Out of memory is CSIP_ERR_NOMEM at every allocation, not a bad spec. */
    bool built = false;
    for (int n = 1; n < 50 && !built; n++) {
        check_failmem f;
        check_failmem_init(&f, n);
        int rc = csip_request_new(&s, &f.mem, &m);
        if (rc == 0)
            built = true;
        else
            EXPECT_EQ(rc, CSIP_ERR_NOMEM);
        csip_msg_free(m);
        EXPECT_EQ(f.live, 0);
    }
    EXPECT_TRUE(built);
    s.to = CSIP_STR("<sip:bob@example.com>\r\nX: injected");
    EXPECT_EQ(csip_request_new(&s, NULL, &m), CSIP_ERR_INVALID_ARG);
}


static void test_failing_allocator(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rfc4475/longreq.dat", CSIP_TEST_DATA);
    size_t len;
    char *buf = check_read_file(path, &len);
    ASSERT_TRUE(buf);
    bool succeeded = false;
    for (int n = 1; n < 200 && !succeeded; n++) {
        check_failmem f;
        check_failmem_init(&f, n);
        csip_mem mem = f.mem;
        csip_parse_opts o = {.mem = &mem};
        csip_msg *m = NULL;
        csip_parse_error err;
        int rc = csip_msg_parse(buf, len, &o, &m, &err);
        if (rc == 0) {
            rc = csip_msg_validate(m, &err);
            if (rc == 0) {
                const csip_nameaddr *c;
                size_t nc;
                rc = csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &c, &nc);
                if (rc == 0)
                    succeeded = true;
            }
            if (rc != 0 && rc != CSIP_ERR_NOMEM && err.code != CSIP_ERR_NOMEM)
                CHECK_FAIL_("allocation %d failed: %s", n, csip_err_name(rc));
        } else {
            EXPECT_EQ(rc, CSIP_ERR_NOMEM);
        }
        csip_msg_free(m);
        EXPECT_EQ(f.live, 0);
    }
    EXPECT_TRUE(succeeded);
    free(buf);
}

static void test_parse_take(void)
{
    static const char s[] = "OPTIONS sip:b@x SIP/2.0\r\n" BASE_REQ "l: 0\r\n\r\n";
    char *b = malloc(sizeof s - 1);
    memcpy(b, s, sizeof s - 1);
    csip_msg *m;
    ASSERT_OK(csip_msg_parse_take(b, sizeof s - 1, NULL, &m, NULL));
    EXPECT_TRUE(csip_msg_raw(m).p == b); /* zero-copy: views into the given buffer */
    csip_msg_free(m);                     /* frees b too (LeakSanitizer checks) */
}

/* A message that passed validation is validated again after an edit: each
 * kind of edit can make it invalid, and validation must see it. */
static void test_validate_after_edit(void)
{
    csip_parse_error err;
    csip_msg *m = parse_ok("OPTIONS sip:b@example.com SIP/2.0\r\n" BASE_REQ "\r\n");
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_validate(m, &err));
    EXPECT_OK(csip_msg_validate(m, &err)); /* again, unchanged */
    EXPECT_EQ(err.code, 0);
    /* a second CSeq line */
    ASSERT_OK(csip_msg_hdr_add(m, CSIP_HDR_CSEQ, CSIP_STR("2 OPTIONS"), false));
    EXPECT_EQ(csip_msg_validate(m, &err), CSIP_ERR_PARSE_DUPLICATE_HEADER);
    EXPECT_EQ(err.status, 400);
    csip_msg_free(m);

    /* a To value replaced by one that does not parse */
    m = parse_ok("OPTIONS sip:b@example.com SIP/2.0\r\n" BASE_REQ "\r\n");
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_validate(m, NULL));
    const csip_hdr *to = csip_msg_hdr_find(m, CSIP_HDR_TO);
    ASSERT_TRUE(to);
    size_t pos = 0;
    for (const csip_hdr *h = csip_msg_hdr_at(m, 0); h && h != to; h = csip_msg_hdr_at(m, ++pos))
        ;
    ASSERT_OK(csip_msg_hdr_set(m, pos, CSIP_STR("<sip:b@example.com")));
    EXPECT_LT(csip_msg_validate(m, &err), 0);
    EXPECT_EQ(err.status, 400);
    csip_msg_free(m);

    /* a mandatory header removed */
    m = parse_ok("OPTIONS sip:b@example.com SIP/2.0\r\n" BASE_REQ "\r\n");
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_validate(m, NULL));
    ASSERT_OK(csip_msg_hdr_remove(m, pos));
    EXPECT_EQ(csip_msg_validate(m, &err), CSIP_ERR_PARSE_MISSING_HEADER);
    csip_msg_free(m);

    /* a Request-URI with headers (RFC 3261 §19.1.1) */
    m = parse_ok("OPTIONS sip:b@example.com SIP/2.0\r\n" BASE_REQ "\r\n");
    ASSERT_TRUE(m);
    ASSERT_OK(csip_msg_validate(m, NULL));
    ASSERT_OK(csip_msg_set_ruri(m, CSIP_STR("sip:b@example.com?Subject=x")));
    EXPECT_EQ(csip_msg_validate(m, &err), CSIP_ERR_PARSE_REQUEST_URI);
    csip_msg_free(m);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_lists_split_right),
        CHECK_TEST(test_typed_values),
        CHECK_TEST(test_errors),
        CHECK_TEST(test_start_line_errors),
        CHECK_TEST(test_liberal_framing),
        CHECK_TEST(test_limits),
        CHECK_TEST(test_edit_within_limits),
        CHECK_TEST(test_edit_and_print),
        CHECK_TEST(test_response_for),
        CHECK_TEST(test_response_for_as_parsed),
        CHECK_TEST(test_request_new),
        CHECK_TEST(test_failing_allocator),
        CHECK_TEST(test_parse_take),
        CHECK_TEST(test_validate_after_edit),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
