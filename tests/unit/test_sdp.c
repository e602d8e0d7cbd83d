#include "check.h"
#include "csip/sdp.h"

/* ---- RFC 3264 §10 examples, typed in as data ---- */

/* §10.1: Alice's offer, audio and video. */
static const char rfc_10_1_offer[] =
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 8 97\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:97 iLBC/8000\r\n"
    "m=video 51372 RTP/AVP 31 32\r\n"
    "a=rtpmap:31 H261/90000\r\n"
    "a=rtpmap:32 MPV/90000\r\n";

/* §10.1: Bob's answer. */
static const char rfc_10_1_answer[] =
    "v=0\r\n"
    "o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.biloxi.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 49174 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 49170 RTP/AVP 32\r\n"
    "a=rtpmap:32 MPV/90000\r\n";

/* §10.1: Bob's second offer: video dropped, a receive-only stream of events added. */
static const char rfc_10_1_reoffer[] =
    "v=0\r\n"
    "o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.biloxi.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 65422 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 0 RTP/AVP 32\r\n"
    "a=rtpmap:32 MPV/90000\r\n"
    "m=audio 51434 RTP/AVP 110\r\n"
    "a=rtpmap:110 telephone-events/8000\r\n"
    "a=recvonly\r\n";

/* §10.1: Alice's answer to it. */
static const char rfc_10_1_reanswer[] =
    "v=0\r\n"
    "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 0 RTP/AVP 32\r\n"
    "a=rtpmap:32 MPV/90000\r\n"
    "m=audio 53122 RTP/AVP 110\r\n"
    "a=rtpmap:110 telephone-events/8000\r\n"
    "a=sendonly\r\n";

/* §10.2: one of N codecs; the offer starts inactive. */
static const char rfc_10_2_offer[] =
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 62986 RTP/AVP 0 4 18\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:4 G723/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=inactive\r\n";

/* §10.2: the offerer picks one codec and activates the stream. */
static const char rfc_10_2_reoffer[] =
    "v=0\r\n"
    "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 62986 RTP/AVP 4\r\n"
    "a=rtpmap:4 G723/8000\r\n"
    "a=sendrecv\r\n";

static csip_sdp *parse_ok(const char *text)
{
    csip_sdp *s = NULL;
    csip_sdp_error err;
    int rc = csip_sdp_parse(text, strlen(text), NULL, &s, &err);
    if (rc != 0)
        fprintf(stderr, "parse failed: %s at %u:%u: %s\n", csip_err_name(rc), err.line, err.column,
                err.what ? err.what : "");
    return s;
}

/* Compares a written description with the expected text, showing both on a difference. */
#define EXPECT_TEXT(buf, n, expect)                                                                \
    do {                                                                                           \
        const char *e_ = (expect);                                                                 \
        if ((n) < 0 || (size_t)(n) != strlen(e_) || memcmp((buf), e_, strlen(e_)) != 0)            \
            CHECK_FAIL_("text differs (%d bytes):\n%.*s---- expected:\n%s", (int)(n),              \
                        (n) > 0 ? (int)(n) : 0, (buf), e_);                                        \
    } while (0)

static void test_rfc3264_parse(void)
{
    csip_sdp *s = parse_ok(rfc_10_1_offer);
    ASSERT_TRUE(s != NULL);
    const csip_sdp_desc *d = csip_sdp_get(s);
    EXPECT_STR(d->origin.username, "alice");
    EXPECT_STR(d->origin.sess_id, "2890844526");
    EXPECT_EQ(d->origin.version, 2890844526u);
    EXPECT_STR(d->origin.nettype, "IN");
    EXPECT_STR(d->origin.addrtype, "IP4");
    EXPECT_STR(d->origin.address, "host.atlanta.example.com");
    EXPECT_STR(d->name, "");
    ASSERT_TRUE(d->conn != NULL);
    EXPECT_STR(d->conn->address, "host.atlanta.example.com");
    EXPECT_TRUE(d->conn->suffix.p == NULL);
    ASSERT_EQ(d->n_times, 1);
    EXPECT_EQ(d->times[0].start_num, 0);
    EXPECT_EQ(d->times[0].stop_num, 0);
    ASSERT_EQ(d->n_media, 2);
    const csip_sdp_media *a = csip_sdp_media_at(s, 0), *v = csip_sdp_media_at(s, 1);
    EXPECT_TRUE(csip_sdp_media_at(s, 2) == NULL);
    EXPECT_STR(a->media, "audio");
    EXPECT_EQ(a->port, 49170);
    EXPECT_EQ(a->port_count, 1);
    EXPECT_STR(a->proto, "RTP/AVP");
    ASSERT_EQ(a->n_fmts, 3);
    EXPECT_STR(a->fmts[2], "97");
    EXPECT_EQ(a->dir, CSIP_SDP_SENDRECV);
    EXPECT_FALSE(a->has_dir);
    EXPECT_EQ(a->line, 6);
    csip_sdp_rtpmap r;
    ASSERT_OK(csip_sdp_media_rtpmap(a, CSIP_STR("97"), &r));
    EXPECT_EQ(r.pt, 97);
    EXPECT_STR(r.name, "iLBC");
    EXPECT_EQ(r.clock, 8000);
    EXPECT_EQ(r.channels, 1);
    EXPECT_FALSE(r.from_table);
    EXPECT_STR(v->media, "video");
    EXPECT_EQ(v->n_attrs, 2);
    EXPECT_TRUE(csip_sdp_media_conn(s, 1) == d->conn);
    csip_sdp_free(s);

    /* the other five parse too */
    const char *all[] = {rfc_10_1_answer, rfc_10_1_reoffer, rfc_10_1_reanswer, rfc_10_2_offer,
                         rfc_10_2_reoffer};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        s = parse_ok(all[i]);
        EXPECT_TRUE(s != NULL);
        csip_sdp_free(s);
    }
    s = parse_ok(rfc_10_1_reoffer);
    ASSERT_TRUE(s != NULL);
    EXPECT_EQ(csip_sdp_get(s)->origin.version, 2808844565u);
    EXPECT_EQ(csip_sdp_media_at(s, 1)->port, 0);
    EXPECT_EQ(csip_sdp_media_at(s, 2)->dir, CSIP_SDP_RECVONLY);
    EXPECT_TRUE(csip_sdp_media_at(s, 2)->has_dir);
    csip_sdp_free(s);
}

static const uint16_t bob_port[] = {49174};
static const csip_sdp_codec pcmu_only[] = {{0, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL}};

/* Bob answers Alice's §10.1 offer: audio in PCMU; video rejected (this library does audio). */
static void test_rfc3264_10_1_answer(void)
{
    csip_sdp *offer = parse_ok(rfc_10_1_offer);
    ASSERT_TRUE(offer != NULL);
    csip_sdp_local bob = {CSIP_STR("bob"),   2808844564u,
                          CSIP_STR_NULL,     CSIP_STR("host.biloxi.example.com"),
                          bob_port,          1,
                          pcmu_only,         1,
                          CSIP_SDP_SENDRECV, 0};
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 2808844564u);
    char buf[1024];
    size_t acc = 99;
    int n = csip_sdp_answer(&sess, &bob, offer, buf, sizeof buf, &acc);
    EXPECT_TEXT(buf, n,
                "v=0\r\n"
                "o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\r\n"
                "s=-\r\n"
                "c=IN IP4 host.biloxi.example.com\r\n"
                "t=0 0\r\n"
                "m=audio 49174 RTP/AVP 0\r\n"
                "a=rtpmap:0 PCMU/8000\r\n"
                "m=video 0 RTP/AVP 31 32\r\n");
    EXPECT_EQ(acc, 1);
    ASSERT_GT(n, 0);
    csip_sdp *ans = NULL;
    ASSERT_OK(csip_sdp_parse(buf, (size_t)n, NULL, &ans, NULL));

    /* Alice reads the answer */
    csip_sdp_stream st;
    ASSERT_OK(csip_sdp_negotiated(offer, ans, true, 0, &st));
    EXPECT_TRUE(st.accepted);
    EXPECT_STR(st.media, "audio");
    EXPECT_STR(st.address, "host.biloxi.example.com");
    EXPECT_EQ(st.port, 49174);
    EXPECT_STR(st.codec.name, "PCMU");
    EXPECT_EQ(st.codec.pt, 0);
    EXPECT_EQ(st.dtmf_pt, -1);
    EXPECT_EQ(st.dir, CSIP_SDP_SENDRECV);
    ASSERT_OK(csip_sdp_negotiated(offer, ans, true, 1, &st));
    EXPECT_FALSE(st.accepted);
    EXPECT_EQ(st.port, 0);
    EXPECT_EQ(st.dir, CSIP_SDP_INACTIVE);
    EXPECT_EQ(csip_sdp_negotiated(offer, ans, true, 2, &st), CSIP_ERR_NOT_FOUND);
    /* Bob's own view: the remote is Alice */
    ASSERT_OK(csip_sdp_negotiated(offer, ans, false, 0, &st));
    EXPECT_STR(st.address, "host.atlanta.example.com");
    EXPECT_EQ(st.port, 49170);
    csip_sdp_free(ans);

    /* Alice reads the RFC's own answer, where Bob took the video too */
    ans = parse_ok(rfc_10_1_answer);
    ASSERT_TRUE(ans != NULL);
    ASSERT_OK(csip_sdp_negotiated(offer, ans, true, 1, &st));
    EXPECT_TRUE(st.accepted);
    EXPECT_STR(st.codec.name, "MPV");
    EXPECT_EQ(st.port, 49170);
    csip_sdp_free(ans);
    csip_sdp_free(offer);
}

/* Alice answers Bob's §10.1 re-offer: the RFC's answer, but s=- and no rtpmap on the
 * rejected video. Alice's codecs spell the events as the RFC's example does. */
static void test_rfc3264_10_1_reanswer(void)
{
    csip_sdp *offer = parse_ok(rfc_10_1_reoffer);
    ASSERT_TRUE(offer != NULL);
    static const uint16_t ports[] = {49170, 53122};
    static const csip_sdp_codec codecs[] = {
        {0, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL},
        {101, CSIP_STR("telephone-events"), 8000, 0, CSIP_STR_NULL},
    };
    csip_sdp_local alice = {CSIP_STR("alice"),
                            2890844526u,
                            CSIP_STR_NULL,
                            CSIP_STR("host.atlanta.example.com"),
                            ports,
                            2,
                            codecs,
                            2,
                            CSIP_SDP_SENDRECV,
                            0};
    /* Alice's session: her first offer (the RFC's, typed above) carried 2890844526. */
    csip_sdp_session sess = {2890844526u, 0, true};
    char buf[1024];
    size_t acc = 0;
    int n = csip_sdp_answer(&sess, &alice, offer, buf, sizeof buf, &acc);
    EXPECT_TEXT(buf, n,
                "v=0\r\n"
                "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com\r\n"
                "s=-\r\n"
                "c=IN IP4 host.atlanta.example.com\r\n"
                "t=0 0\r\n"
                "m=audio 49170 RTP/AVP 0\r\n"
                "a=rtpmap:0 PCMU/8000\r\n"
                "m=video 0 RTP/AVP 32\r\n"
                "m=audio 53122 RTP/AVP 110\r\n"
                "a=rtpmap:110 telephone-events/8000\r\n"
                "a=sendonly\r\n");
    EXPECT_EQ(acc, 2);
    EXPECT_EQ(sess.version, 2890844527u);

    /* Bob reads the RFC's answer: he receives only on the third stream */
    csip_sdp *ans = parse_ok(rfc_10_1_reanswer);
    ASSERT_TRUE(ans != NULL);
    csip_sdp_stream st;
    ASSERT_OK(csip_sdp_negotiated(offer, ans, true, 2, &st));
    EXPECT_TRUE(st.accepted);
    EXPECT_EQ(st.dir, CSIP_SDP_RECVONLY);
    EXPECT_EQ(st.port, 53122);
    EXPECT_STR(st.codec.name, "telephone-events");
    ASSERT_OK(csip_sdp_negotiated(offer, ans, false, 2, &st));
    EXPECT_EQ(st.dir, CSIP_SDP_SENDONLY);
    EXPECT_EQ(st.port, 51434);
    csip_sdp_free(ans);
    csip_sdp_free(offer);
}

/* §10.2: Bob answers the inactive offer with all three codecs, then the re-offer with one;
 * his o= version goes up by one because the answer changed. These are the RFC's answers
 * but for s=- and the second one's a=sendrecv, which this library leaves out (the default). */
static void test_rfc3264_10_2(void)
{
    static const uint16_t port[] = {54520};
    static const csip_sdp_codec codecs[] = {{0, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL},
                                            {4, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL},
                                            {18, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL}};
    csip_sdp_local bob = {CSIP_STR("bob"),
                          2808844564u,
                          CSIP_STR_NULL,
                          CSIP_STR("host.biloxi.example.com"),
                          port,
                          1,
                          codecs,
                          3,
                          CSIP_SDP_SENDRECV,
                          0};
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 2808844564u);
    char buf[1024];
    csip_sdp *offer = parse_ok(rfc_10_2_offer);
    ASSERT_TRUE(offer != NULL);
    int n = csip_sdp_answer(&sess, &bob, offer, buf, sizeof buf, NULL);
    EXPECT_TEXT(buf, n,
                "v=0\r\n"
                "o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\r\n"
                "s=-\r\n"
                "c=IN IP4 host.biloxi.example.com\r\n"
                "t=0 0\r\n"
                "m=audio 54520 RTP/AVP 0 4 18\r\n"
                "a=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:4 G723/8000\r\n"
                "a=rtpmap:18 G729/8000\r\n"
                "a=inactive\r\n");
    csip_sdp_free(offer);

    offer = parse_ok(rfc_10_2_reoffer);
    ASSERT_TRUE(offer != NULL);
    n = csip_sdp_answer(&sess, &bob, offer, buf, sizeof buf, NULL);
    EXPECT_TEXT(buf, n,
                "v=0\r\n"
                "o=bob 2808844564 2808844565 IN IP4 host.biloxi.example.com\r\n"
                "s=-\r\n"
                "c=IN IP4 host.biloxi.example.com\r\n"
                "t=0 0\r\n"
                "m=audio 54520 RTP/AVP 4\r\n"
                "a=rtpmap:4 G723/8000\r\n");
    ASSERT_GT(n, 0);
    csip_sdp *ans = NULL;
    ASSERT_OK(csip_sdp_parse(buf, (size_t)n, NULL, &ans, NULL));
    csip_sdp_stream st;
    ASSERT_OK(csip_sdp_negotiated(offer, ans, true, 0, &st));
    EXPECT_TRUE(st.accepted);
    EXPECT_STR(st.codec.name, "G723");
    EXPECT_TRUE(st.codec.from_table == false);
    EXPECT_EQ(st.dir, CSIP_SDP_SENDRECV);
    csip_sdp_free(ans);
    csip_sdp_free(offer);
}

/* ---- Offers and versions ---- */

static const uint16_t one_port[] = {4000};
static const csip_sdp_codec usual[] = {
    {0, CSIP_STR("PCMU"), 8000, 0, CSIP_STR_NULL},
    {8, CSIP_STR("PCMA"), 8000, 0, CSIP_STR_NULL},
    {101, CSIP_STR("telephone-event"), 8000, 0, CSIP_STR("0-16")},
};

static csip_sdp_local usual_local(void)
{
    csip_sdp_local l = {
        CSIP_STR("-"),     42, CSIP_STR("call"), CSIP_STR("192.0.2.10"), one_port, 1, usual, 3,
        CSIP_SDP_SENDRECV, 20};
    return l;
}

static void test_offer(void)
{
    csip_sdp_local l = usual_local();
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 7);
    char buf[1024];
    int need = csip_sdp_offer(&sess, &l, NULL, NULL, 0);
    EXPECT_FALSE(sess.sent); /* measuring does not send */
    int n = csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf);
    EXPECT_EQ(need, n);
    EXPECT_TEXT(buf, n,
                "v=0\r\n"
                "o=- 42 7 IN IP4 192.0.2.10\r\n"
                "s=call\r\n"
                "c=IN IP4 192.0.2.10\r\n"
                "t=0 0\r\n"
                "m=audio 4000 RTP/AVP 0 8 101\r\n"
                "a=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:8 PCMA/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\n"
                "a=fmtp:101 0-16\r\n"
                "a=ptime:20\r\n");
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, (size_t)n - 1), CSIP_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(sess.version, 7);

    /* an IPv6 address gives IP6 */
    l.address = CSIP_STR("2001:db8::1");
    csip_sdp_session s6;
    csip_sdp_session_init(&s6, 1);
    n = csip_sdp_offer(&s6, &l, NULL, buf, sizeof buf);
    ASSERT_GT(n, 0);
    EXPECT_TRUE(check_memmem(buf, (size_t)n, "o=- 42 1 IN IP6 2001:db8::1\r\n", 29) != NULL);
    EXPECT_TRUE(check_memmem(buf, (size_t)n, "c=IN IP6 2001:db8::1\r\n", 22) != NULL);
    csip_sdp *s = NULL;
    ASSERT_OK(csip_sdp_parse(buf, (size_t)n, NULL, &s, NULL));
    csip_sdp_free(s);
}

static void test_reoffer_version(void)
{
    csip_sdp_local l = usual_local();
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 100);
    char buf[1024];
    ASSERT_GT(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), 0);
    EXPECT_EQ(sess.version, 100);
    /* unchanged: same version (RFC 3264 §8) */
    int n = csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf);
    ASSERT_GT(n, 0);
    EXPECT_EQ(sess.version, 100);
    EXPECT_TRUE(check_memmem(buf, (size_t)n, "o=- 42 100 ", 11) != NULL);
    /* hold: sendonly, version + 1 */
    l.dir = CSIP_SDP_SENDONLY;
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, NULL, 0), n + 12); /* "a=sendonly\r\n" */
    EXPECT_EQ(sess.version, 100);
    n = csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf);
    ASSERT_GT(n, 0);
    EXPECT_EQ(sess.version, 101);
    EXPECT_TRUE(check_memmem(buf, (size_t)n, "o=- 42 101 ", 11) != NULL);
    EXPECT_TRUE(check_memmem(buf, (size_t)n, "a=sendonly\r\n", 12) != NULL);
    csip_sdp *s = NULL;
    ASSERT_OK(csip_sdp_parse(buf, (size_t)n, NULL, &s, NULL));
    EXPECT_EQ(csip_sdp_media_at(s, 0)->dir, CSIP_SDP_SENDONLY);
    csip_sdp_free(s);
    /* the same hold again: unchanged */
    ASSERT_GT(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), 0);
    EXPECT_EQ(sess.version, 101);
    /* a new port changes it */
    static const uint16_t other[] = {4002};
    l.ports = other;
    ASSERT_GT(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), 0);
    EXPECT_EQ(sess.version, 102);
    /* the version cannot wrap */
    csip_sdp_session top = {UINT64_MAX, 1, true};
    EXPECT_EQ(csip_sdp_offer(&top, &l, NULL, buf, sizeof buf), CSIP_ERR_RANGE);
}

/* A re-offer keeps the sections of the last exchange: video stays, with port 0. */
static void test_reoffer_keeps_sections(void)
{
    csip_sdp *prev = parse_ok(rfc_10_1_offer);
    ASSERT_TRUE(prev != NULL);
    csip_sdp_local l = usual_local();
    l.ptime = 0;
    static const uint16_t two[] = {4000, 4002};
    l.ports = two;
    l.n_ports = 2;
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 1);
    char buf[2048];
    int n = csip_sdp_offer(&sess, &l, prev, buf, sizeof buf);
    ASSERT_GT(n, 0);
    csip_sdp *s = NULL;
    ASSERT_OK(csip_sdp_parse(buf, (size_t)n, NULL, &s, NULL));
    const csip_sdp_desc *d = csip_sdp_get(s);
    ASSERT_EQ(d->n_media, 3);
    EXPECT_STR(d->media[0].media, "audio");
    EXPECT_EQ(d->media[0].port, 4000);
    EXPECT_STR(d->media[1].media, "video");
    EXPECT_EQ(d->media[1].port, 0);
    ASSERT_EQ(d->media[1].n_fmts, 2);
    EXPECT_STR(d->media[1].fmts[1], "32");
    EXPECT_STR(d->media[2].media, "audio");
    EXPECT_EQ(d->media[2].port, 4002);
    csip_sdp_free(s);
    csip_sdp_free(prev);
}

/* ---- Answers: directions and rejected streams ---- */

static int answer_to(const char *offer_text, const csip_sdp_local *l, char *buf, size_t cap,
                     csip_sdp **ans, csip_sdp **offer)
{
    *offer = parse_ok(offer_text);
    if (!*offer)
        return -1;
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 1);
    int n = csip_sdp_answer(&sess, l, *offer, buf, cap, NULL);
    if (n < 0)
        return n;
    return csip_sdp_parse(buf, (size_t)n, NULL, ans, NULL);
}

static void test_direction_matrix(void)
{
    static const csip_sdp_dir dirs[4] = {CSIP_SDP_SENDRECV, CSIP_SDP_SENDONLY, CSIP_SDP_RECVONLY,
                                         CSIP_SDP_INACTIVE};
    /* expect[offer][local]: RFC 3264 §6.1, narrowed by what the answerer wants */
    static const csip_sdp_dir expect[4][4] = {
        /* offer sendrecv */ {CSIP_SDP_SENDRECV, CSIP_SDP_SENDONLY, CSIP_SDP_RECVONLY,
                              CSIP_SDP_INACTIVE},
        /* offer sendonly */
        {CSIP_SDP_RECVONLY, CSIP_SDP_INACTIVE, CSIP_SDP_RECVONLY, CSIP_SDP_INACTIVE},
        /* offer recvonly */
        {CSIP_SDP_SENDONLY, CSIP_SDP_SENDONLY, CSIP_SDP_INACTIVE, CSIP_SDP_INACTIVE},
        /* offer inactive */
        {CSIP_SDP_INACTIVE, CSIP_SDP_INACTIVE, CSIP_SDP_INACTIVE, CSIP_SDP_INACTIVE},
    };
    for (int o = 0; o < 4; o++) {
        for (int loc = 0; loc < 4; loc++) {
            char offer[512], buf[1024];
            /* the offer's direction at session level half the time: media inherit it */
            if (o % 2)
                snprintf(offer, sizeof offer,
                         "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
                         "t=0 0\r\na=%s\r\nm=audio 5000 RTP/AVP 0\r\n",
                         csip_sdp_dir_name(dirs[o]));
            else
                snprintf(offer, sizeof offer,
                         "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
                         "t=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=%s\r\n",
                         csip_sdp_dir_name(dirs[o]));
            csip_sdp_local l = usual_local();
            l.dir = dirs[loc];
            csip_sdp *off = NULL, *ans = NULL;
            int rc = answer_to(offer, &l, buf, sizeof buf, &ans, &off);
            EXPECT_EQ(rc, 0);
            if (rc == 0) {
                const csip_sdp_media *m = csip_sdp_media_at(ans, 0);
                if (m->dir != expect[o][loc])
                    CHECK_FAIL_("offer %s, local %s: answer %s, expected %s",
                                csip_sdp_dir_name(dirs[o]), csip_sdp_dir_name(dirs[loc]),
                                csip_sdp_dir_name(m->dir), csip_sdp_dir_name(expect[o][loc]));
                EXPECT_EQ(m->has_dir, expect[o][loc] != CSIP_SDP_SENDRECV);
                csip_sdp_stream st;
                EXPECT_OK(csip_sdp_negotiated(off, ans, false, 0, &st));
                EXPECT_EQ(st.dir, expect[o][loc]);
                EXPECT_OK(csip_sdp_negotiated(off, ans, true, 0, &st));
                /* the offerer's view is the mirror */
                static const csip_sdp_dir mirror[4] = {CSIP_SDP_SENDRECV, CSIP_SDP_RECVONLY,
                                                       CSIP_SDP_SENDONLY, CSIP_SDP_INACTIVE};
                EXPECT_EQ(st.dir, mirror[expect[o][loc]]);
            }
            csip_sdp_free(ans);
            csip_sdp_free(off);
        }
    }
}

static void test_rejected_streams(void)
{
    static const char offer[] =
        "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=video 5002 RTP/AVP 31\r\n"                               /* not audio */
        "m=audio 5004 RTP/AVP 3 97\r\na=rtpmap:97 opus/48000/2\r\n" /* nothing in common */
        "m=audio 5006 RTP/SAVP 0\r\n"                               /* another proto */
        "m=audio 0 RTP/AVP 0\r\n"                                   /* disabled by the offerer */
        "m=application 5008 udp wb\r\n"                             /* not RTP at all */
        "m=audio 5010 RTP/AVP 98 8 0\r\na=rtpmap:98 PCMA/8000\r\n"  /* taken */
        "m=audio 5012 RTP/AVP 0\r\n";                               /* no port left */
    csip_sdp_local l = usual_local();
    char buf[2048];
    csip_sdp *off = NULL, *ans = NULL;
    ASSERT_OK(answer_to(offer, &l, buf, sizeof buf, &ans, &off));
    const csip_sdp_desc *d = csip_sdp_get(ans);
    ASSERT_EQ(d->n_media, 7);
    static const char *const fmts[7] = {"31", "3 97", "0", "0", "wb", "98 8 0", "0"};
    for (size_t i = 0; i < 7; i++) {
        const csip_sdp_media *m = &d->media[i], *o = csip_sdp_media_at(off, i);
        EXPECT_TRUE(csip_str_eq(m->media, o->media));
        EXPECT_TRUE(csip_str_eq(m->proto, o->proto));
        csip_sdp_stream st;
        EXPECT_OK(csip_sdp_negotiated(off, ans, true, i, &st));
        if (i == 5) {
            EXPECT_EQ(m->port, 4000);
            EXPECT_TRUE(st.accepted);
            EXPECT_EQ(st.codec.pt, 98); /* the offer's number, the offer's order */
            EXPECT_STR(st.codec.name, "PCMA");
            EXPECT_EQ(st.dtmf_pt, -1);
            continue;
        }
        EXPECT_EQ(m->port, 0);
        EXPECT_EQ(m->n_attrs, 0);
        EXPECT_FALSE(st.accepted);
        char got[64] = "";
        size_t g = 0;
        for (size_t k = 0; k < m->n_fmts && g + m->fmts[k].len + 2 < sizeof got; k++) {
            if (k)
                got[g++] = ' ';
            memcpy(got + g, m->fmts[k].p, m->fmts[k].len);
            g += m->fmts[k].len;
        }
        got[g] = 0;
        EXPECT_CSTR(got, fmts[i]);
    }
    /* the accepted section lists 98 8 0 in the offer's order, all three known locally */
    EXPECT_EQ(d->media[5].n_fmts, 3);
    csip_sdp_free(ans);
    csip_sdp_free(off);

    /* no common codec anywhere: every section rejected, accepted = 0 */
    static const char none[] = "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
                               "t=0 0\r\nm=audio 5000 RTP/AVP 18\r\n";
    off = parse_ok(none);
    ASSERT_TRUE(off != NULL);
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 1);
    size_t acc = 9;
    int n = csip_sdp_answer(&sess, &l, off, buf, sizeof buf, &acc);
    EXPECT_GT(n, 0);
    EXPECT_EQ(acc, 0);
    EXPECT_TRUE(check_memmem(buf, (size_t)n, "m=audio 0 RTP/AVP 18\r\n", 22) != NULL);
    csip_sdp_free(off);
}

/* Dynamic types by name (any case), clock and channels; telephone-event reported apart. */
static void test_dynamic_matching(void)
{
    static const char offer[] =
        "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 96 97 100 0 99\r\n"
        "a=rtpmap:96 telephone-event/16000\r\n" /* wrong clock */
        "a=rtpmap:97 PCMA/8000/2\r\n"           /* wrong channels */
        "a=rtpmap:100 TELEPHONE-EVENT/8000\r\n"
        "a=fmtp:100 0-15\r\n"; /* 99: no rtpmap, meaningless */
    csip_sdp_local l = usual_local();
    char buf[2048];
    csip_sdp *off = NULL, *ans = NULL;
    ASSERT_OK(answer_to(offer, &l, buf, sizeof buf, &ans, &off));
    const csip_sdp_media *m = csip_sdp_media_at(ans, 0);
    ASSERT_EQ(m->n_fmts, 2);
    EXPECT_STR(m->fmts[0], "100");
    EXPECT_STR(m->fmts[1], "0");
    csip_str fp;
    ASSERT_OK(csip_sdp_media_fmtp(m, CSIP_STR("100"), &fp));
    EXPECT_STR(fp, "0-16"); /* the events this side receives */
    csip_sdp_rtpmap r;
    ASSERT_OK(csip_sdp_media_rtpmap(m, CSIP_STR("100"), &r));
    EXPECT_STR(r.name, "TELEPHONE-EVENT"); /* the offer's spelling */
    csip_sdp_stream st;
    ASSERT_OK(csip_sdp_negotiated(off, ans, true, 0, &st));
    EXPECT_TRUE(st.accepted);
    EXPECT_EQ(st.codec.pt, 0);
    EXPECT_STR(st.codec.name, "PCMU");
    EXPECT_EQ(st.dtmf_pt, 100);
    uint32_t ms;
    ASSERT_OK(csip_sdp_media_ptime(m, &ms));
    EXPECT_EQ(ms, 20);
    csip_sdp_free(ans);
    csip_sdp_free(off);
}

static void test_answer_mismatch(void)
{
    static const char offer[] = "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
                                "t=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=sendonly\r\n"
                                "m=audio 0 RTP/AVP 0\r\n";
    static const struct {
        const char *answer;
        int rc;
    } cases[] = {
        /* the right answer */
        {"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=recvonly\r\nm=audio 0 RTP/AVP 0\r\n", 0},
        {"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=inactive\r\nm=audio 0 RTP/AVP 0\r\n", 0},
        /* sendrecv to a sendonly offer */
        {"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\n", CSIP_ERR_SDP_MISMATCH},
        /* one section short */
        {"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=recvonly\r\n", CSIP_ERR_SDP_MISMATCH},
        /* a port for the disabled section */
        {"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=recvonly\r\nm=audio 6002 RTP/AVP 0\r\n",
         CSIP_ERR_SDP_MISMATCH},
        /* another media type */
        {"t=0 0\r\nm=video 6000 RTP/AVP 0\r\na=recvonly\r\nm=audio 0 RTP/AVP 0\r\n",
         CSIP_ERR_SDP_MISMATCH},
    };
    csip_sdp *off = parse_ok(offer);
    ASSERT_TRUE(off != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "v=0\r\no=y 2 2 IN IP4 192.0.2.2\r\ns=-\r\n"
                 "c=IN IP4 192.0.2.2\r\n%s",
                 cases[i].answer);
        csip_sdp *ans = parse_ok(text);
        EXPECT_TRUE(ans != NULL);
        if (!ans)
            continue;
        csip_sdp_stream st;
        int rc = csip_sdp_negotiated(off, ans, true, 0, &st);
        if (rc != cases[i].rc)
            CHECK_FAIL_("case %zu: %s, expected %s", i, csip_err_name(rc),
                        csip_err_name(cases[i].rc));
        if (i == 0 && rc == 0) {
            EXPECT_TRUE(st.accepted);
            EXPECT_EQ(st.dir, CSIP_SDP_SENDONLY);
            EXPECT_STR(st.address, "192.0.2.2");
            EXPECT_EQ(st.port, 6000);
        }
        csip_sdp_free(ans);
    }
    csip_sdp_free(off);
}

static void test_local_invalid(void)
{
    char buf[1024];
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 1);
    csip_sdp_local l = usual_local();
    EXPECT_EQ(csip_sdp_offer(NULL, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_sdp_offer(&sess, NULL, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_sdp_answer(&sess, &l, NULL, buf, sizeof buf, NULL), CSIP_ERR_INVALID_ARG);

    static const csip_sdp_codec dyn_no_name[] = {{96, CSIP_STR_NULL, 8000, 0, CSIP_STR_NULL}};
    static const csip_sdp_codec dyn_no_clock[] = {{96, CSIP_STR("opus"), 0, 0, CSIP_STR_NULL}};
    static const csip_sdp_codec big_pt[] = {{128, CSIP_STR("x"), 8000, 0, CSIP_STR_NULL}};
    static const csip_sdp_codec space[] = {{96, CSIP_STR("a b"), 8000, 0, CSIP_STR_NULL}};
    static const csip_sdp_codec crlf_fmtp[] = {{96, CSIP_STR("x"), 8000, 0, CSIP_STR("a\r\nb")}};
    static const csip_sdp_codec dup[] = {{0, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL},
                                         {0, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL}};
    static const csip_sdp_codec unassigned[] = {{20, CSIP_STR_NULL, 0, 0, CSIP_STR_NULL}};
    static const uint16_t zero[] = {0};
    const csip_sdp_codec *bad_codecs[] = {dyn_no_name, dyn_no_clock, big_pt,    space,
                                          crlf_fmtp,   dup,          unassigned};
    const size_t bad_n[] = {1, 1, 1, 1, 1, 2, 1};
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        l = usual_local();
        l.codecs = bad_codecs[i];
        l.n_codecs = bad_n[i];
        int rc = csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf);
        if (rc != CSIP_ERR_INVALID_ARG)
            CHECK_FAIL_("codec case %zu: %d", i, rc);
    }
    l = usual_local();
    l.n_codecs = 0;
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    l = usual_local();
    l.n_ports = 0;
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    l.ports = zero;
    l.n_ports = 1;
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    const char *bad_addr[] = {"", "a b", "999.1.1.1", "host\r\n", "[::1]"};
    for (size_t i = 0; i < sizeof bad_addr / sizeof bad_addr[0]; i++) {
        l = usual_local();
        l.address = csip_str_c(bad_addr[i]);
        EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    }
    l = usual_local();
    l.username = CSIP_STR("a b");
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    l = usual_local();
    l.session_name = CSIP_STR("x\ny");
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    l = usual_local();
    l.dir = (csip_sdp_dir)7;
    EXPECT_EQ(csip_sdp_offer(&sess, &l, NULL, buf, sizeof buf), CSIP_ERR_INVALID_ARG);
    EXPECT_FALSE(sess.sent);
}

/* ---- Parser: a full description, accessors, round trip ---- */

static const char full[] = "v=0\n"
                           "o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\n"
                           "s=Call to John Smith\n"
                           "i=SDP Offer #1\n"
                           "u=http://www.jdoe.example.com/home.html\n"
                           "e=Jane Doe <jane@jdoe.example.com>\n"
                           "e=j@example.org\n"
                           "p=+1 617 555-6011\n"
                           "c=IN IP4 233.252.0.1/127/2\n"
                           "b=CT:1000\n"
                           "t=3724394400 3724398000\n"
                           "r=7d 1h 0 25h\n"
                           "t=0 0\n"
                           "z=2882844526 -1h 2898848070 0\n"
                           "k=prompt\n"
                           "a=recvonly\n"
                           "a=tool:x y\n"
                           "m=audio 49170/2 RTP/AVP 0 101\n"
                           "i=voice\n"
                           "c=IN IP6 2001:db8::1\n"
                           "c=IN IP6 ff15::101/3\n"
                           "b=AS:64\n"
                           "k=clear:secret\n"
                           "a=rtpmap:101 telephone-event/8000\n"
                           "a=fmtp:101 0-16\n"
                           "a=ptime:20.5\n"
                           "a=sendrecv\n"
                           "m=video 51372 RTP/AVP 99\n"
                           "a=rtpmap:99 h263-1998/90000\n"
                           "m=application 0 TCP/MSRP *\n";

static void test_full_parse(void)
{
    csip_sdp *s = parse_ok(full);
    ASSERT_TRUE(s != NULL);
    const csip_sdp_desc *d = csip_sdp_get(s);
    EXPECT_STR(d->name, "Call to John Smith");
    EXPECT_STR(d->info, "SDP Offer #1");
    EXPECT_STR(d->uri, "http://www.jdoe.example.com/home.html");
    ASSERT_EQ(d->n_emails, 2);
    EXPECT_STR(d->emails[1], "j@example.org");
    ASSERT_EQ(d->n_phones, 1);
    EXPECT_STR(d->conn->address, "233.252.0.1");
    EXPECT_STR(d->conn->suffix, "/127/2");
    ASSERT_EQ(d->n_bws, 1);
    EXPECT_STR(d->bws[0].type, "CT");
    EXPECT_EQ(d->bws[0].kbps, 1000);
    ASSERT_EQ(d->n_times, 2);
    EXPECT_EQ(d->times[0].stop_num, 3724398000u);
    ASSERT_EQ(d->times[0].n_repeats, 1);
    EXPECT_STR(d->times[0].repeats[0], "7d 1h 0 25h");
    EXPECT_EQ(d->times[1].n_repeats, 0);
    EXPECT_STR(d->zone, "2882844526 -1h 2898848070 0");
    EXPECT_STR(d->key, "prompt");
    EXPECT_EQ(d->dir, CSIP_SDP_RECVONLY);
    ASSERT_EQ(d->n_attrs, 2);
    EXPECT_STR(d->attrs[1].value, "x y");
    EXPECT_TRUE(d->attrs[0].value.p == NULL);
    ASSERT_EQ(d->n_media, 3);
    const csip_sdp_media *a = &d->media[0];
    EXPECT_EQ(a->port_count, 2);
    EXPECT_STR(a->info, "voice");
    ASSERT_EQ(a->n_conns, 2);
    EXPECT_STR(a->conns[1].suffix, "/3");
    EXPECT_TRUE(csip_sdp_media_conn(s, 0) == &a->conns[0]);
    EXPECT_STR(a->key, "clear:secret");
    EXPECT_EQ(a->dir, CSIP_SDP_SENDRECV);          /* overrides the session's recvonly */
    EXPECT_EQ(d->media[1].dir, CSIP_SDP_RECVONLY); /* inherits it */
    EXPECT_FALSE(d->media[1].has_dir);
    uint32_t ms = 0;
    ASSERT_OK(csip_sdp_media_ptime(a, &ms));
    EXPECT_EQ(ms, 20);
    EXPECT_EQ(csip_sdp_media_ptime(&d->media[1], &ms), CSIP_ERR_NOT_FOUND);
    csip_sdp_rtpmap r;
    ASSERT_OK(csip_sdp_media_rtpmap(a, CSIP_STR("0"), &r));
    EXPECT_TRUE(r.from_table);
    EXPECT_STR(r.name, "PCMU");
    EXPECT_EQ(csip_sdp_media_rtpmap(a, CSIP_STR("102"), &r), CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_sdp_media_rtpmap(&d->media[2], CSIP_STR("*"), &r), CSIP_ERR_NOT_FOUND);
    csip_str fp;
    EXPECT_EQ(csip_sdp_media_fmtp(a, CSIP_STR("0"), &fp), CSIP_ERR_NOT_FOUND);
    ASSERT_OK(csip_sdp_media_fmtp(a, CSIP_STR("101"), &fp));
    EXPECT_STR(fp, "0-16");
    const csip_sdp_attr *at = csip_sdp_attr_next(a->attrs, a->n_attrs, "rtpmap", NULL);
    ASSERT_TRUE(at != NULL);
    EXPECT_TRUE(csip_sdp_attr_next(a->attrs, a->n_attrs, "rtpmap", at) == NULL);
    EXPECT_TRUE(csip_sdp_media_conn(s, 2) == d->conn); /* port 0 without c=: the session's */
    EXPECT_EQ(d->media[2].port, 0);
    EXPECT_STR(d->media[2].fmts[0], "*");
    csip_sdp_free(s);

    /* RFC 3551 table */
    EXPECT_EQ(csip_sdp_static_pt(2, &r), CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_sdp_static_pt(96, &r), CSIP_ERR_NOT_FOUND);
    ASSERT_OK(csip_sdp_static_pt(10, &r));
    EXPECT_STR(r.name, "L16");
    EXPECT_EQ(r.clock, 44100);
    EXPECT_EQ(r.channels, 2);
    ASSERT_OK(csip_sdp_static_pt(18, &r));
    EXPECT_STR(r.name, "G729");
}

/* Prints, re-parses, and checks that every field is the same. */
static void round_trip(const char *text)
{
    csip_sdp *a = parse_ok(text);
    ASSERT_TRUE(a != NULL);
    int need = csip_sdp_print(a, NULL, 0);
    ASSERT_GT(need, 0);
    char *buf = malloc((size_t)need);
    ASSERT_TRUE(buf != NULL);
    EXPECT_EQ(csip_sdp_print(a, buf, (size_t)need - 1), CSIP_ERR_BUFFER_TOO_SMALL);
    int n = csip_sdp_print(a, buf, (size_t)need);
    EXPECT_EQ(n, need);
    csip_sdp *b = NULL;
    csip_sdp_error err;
    int rc = csip_sdp_parse(buf, (size_t)n, NULL, &b, &err);
    if (rc != 0) {
        CHECK_FAIL_("reparse: %s at %u:%u (%s)", csip_err_name(rc), err.line, err.column, err.what);
        free(buf);
        csip_sdp_free(a);
        return;
    }
    /* the printed text has CRLF everywhere and no LF alone */
    for (int i = 0; i < n; i++)
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            CHECK_FAIL_("LF without CR at %d", i);
    const csip_sdp_desc *x = csip_sdp_get(a), *y = csip_sdp_get(b);
    EXPECT_TRUE(csip_str_eq(x->origin.username, y->origin.username));
    EXPECT_EQ(x->origin.version, y->origin.version);
    EXPECT_TRUE(csip_str_eq(x->origin.address, y->origin.address));
    EXPECT_TRUE(csip_str_eq(x->name, y->name));
    EXPECT_TRUE(csip_str_eq(x->info, y->info) && (x->info.p == NULL) == (y->info.p == NULL));
    EXPECT_EQ(x->n_emails, y->n_emails);
    EXPECT_EQ(x->n_times, y->n_times);
    EXPECT_EQ(x->n_attrs, y->n_attrs);
    EXPECT_EQ(x->dir, y->dir);
    EXPECT_TRUE(csip_str_eq(x->zone, y->zone));
    ASSERT_EQ(x->n_media, y->n_media);
    for (size_t i = 0; i < x->n_media; i++) {
        const csip_sdp_media *p = &x->media[i], *q = &y->media[i];
        EXPECT_TRUE(csip_str_eq(p->media, q->media));
        EXPECT_EQ(p->port, q->port);
        EXPECT_EQ(p->port_count, q->port_count);
        EXPECT_EQ(p->n_fmts, q->n_fmts);
        EXPECT_EQ(p->n_conns, q->n_conns);
        EXPECT_EQ(p->n_attrs, q->n_attrs);
        EXPECT_EQ(p->dir, q->dir);
        for (size_t k = 0; k < p->n_attrs && k < q->n_attrs; k++) {
            EXPECT_TRUE(csip_str_eq(p->attrs[k].name, q->attrs[k].name));
            EXPECT_TRUE(csip_str_eq(p->attrs[k].value, q->attrs[k].value));
        }
    }
    /* printing the re-parse gives the same bytes */
    char *buf2 = malloc((size_t)n);
    ASSERT_TRUE(buf2 != NULL);
    EXPECT_EQ(csip_sdp_print(b, buf2, (size_t)n), n);
    EXPECT_TRUE(memcmp(buf, buf2, (size_t)n) == 0);
    free(buf2);
    free(buf);
    csip_sdp_free(b);
    csip_sdp_free(a);
}

static void test_round_trip(void)
{
    round_trip(full);
    round_trip(rfc_10_1_offer);
    round_trip(rfc_10_1_reoffer);
    round_trip(rfc_10_2_offer);
    /* LF alone, a missing final line end and trailing empty lines are accepted */
    round_trip("v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nt=0 0");
    round_trip("v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n\r\n\n");
}

/* ---- Malformed input: each refused with the line and column at fault ---- */

#define HEAD "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"

static void test_malformed(void)
{
    static const struct {
        const char *text;
        int code;
        uint32_t line, column;
    } cases[] = {
        {"", CSIP_ERR_PARSE_SDP, 1, 1},
        {"\r\n", CSIP_ERR_PARSE_SDP, 1, 1},
        {"v=1\r\n", CSIP_ERR_PARSE_SDP, 1, 3},
        {"o=- 1 1 IN IP4 192.0.2.1\r\n", CSIP_ERR_PARSE_SDP, 1, 1},
        {"v=0\r\ns=-\r\n", CSIP_ERR_PARSE_SDP, 2, 1},
        {"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 3, 1},
        {HEAD, CSIP_ERR_PARSE_SDP, 3, 1},                           /* no t= */
        {HEAD "m=audio 1 RTP/AVP 0\r\n", CSIP_ERR_PARSE_SDP, 4, 1}, /* no t= */
        {HEAD "t=0 0\r\nx=1\r\n", CSIP_ERR_PARSE_SDP, 5, 1},        /* unknown type */
        {HEAD "t=0 0\r\nA=1\r\n", CSIP_ERR_PARSE_SDP, 5, 1},
        {HEAD "t=0 0\r\na\r\n", CSIP_ERR_PARSE_SDP, 5, 2},
        {HEAD "t=0 0\r\na =x\r\n", CSIP_ERR_PARSE_SDP, 5, 2},
        {HEAD "t=0 0\r\nc=IN IP4 192.0.2.1\r\n", CSIP_ERR_PARSE_SDP, 5, 1}, /* c after t */
        {HEAD "i=a\r\ni=b\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 5, 1},         /* i twice */
        {HEAD "t=0 0\r\nr=1 1 1\r\nr=1d 1h 0\r\nz=1 1 \r\n", CSIP_ERR_PARSE_SDP, 7, 6},
        {HEAD "t=0 0\r\nr=1 1\r\n", CSIP_ERR_PARSE_SDP, 5, 6},
        {HEAD "t=0 0\r\nr=1x 1 1\r\n", CSIP_ERR_PARSE_SDP, 5, 3},
        {HEAD "t=0 0\r\nz=1\r\n", CSIP_ERR_PARSE_SDP, 5, 4},
        {HEAD "t=0 0\r\nz=1 1h\r\nz=2 0\r\n", CSIP_ERR_PARSE_SDP, 6, 1},
        {HEAD "t=0 0\r\nk=prompt\r\nr=1 1 1\r\n", CSIP_ERR_PARSE_SDP, 6, 1},
        {HEAD "t=0\r\n", CSIP_ERR_PARSE_SDP, 4, 4},
        {HEAD "t=0  0\r\n", CSIP_ERR_PARSE_SDP, 4, 5},
        {HEAD "t=0 0 \r\n", CSIP_ERR_PARSE_SDP, 4, 6},
        {HEAD "t=0 x\r\n", CSIP_ERR_PARSE_SDP, 4, 5},
        {HEAD "t=0 0 0\r\n", CSIP_ERR_PARSE_SDP, 4, 7},
        {HEAD "t=0 99999999999999999999\r\n", CSIP_ERR_PARSE_SDP, 4, 5},
        {"v=0\r\no=- 1 x IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2, 7},
        {"v=0\r\no=- 1 18446744073709551616 IN IP4 h\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2,
         7},
        {"v=0\r\no=- 1 1 IN IP4 999.1.1.1\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2, 16},
        {"v=0\r\no=- 1 1 IN IP6 192.0.2.1\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2, 16},
        {"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2, 15},
        {"v=0\r\no=- 1 1 IN IP4 h x\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2, 18},
        {"v=0\r\no=- 1 1 I(N IP4 h\r\ns=-\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 2, 9},
        {HEAD "c=IN IP4 192.0.2.1/x\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 4, 19},
        {HEAD "c=IN IP6 ff15::1/3/4\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 4, 19},
        {HEAD "b=CT\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 4, 3},
        {HEAD "b=CT:x\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 4, 6},
        {HEAD "e=\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 4, 3},
        {HEAD "t=0 0\r\nk=\r\n", CSIP_ERR_PARSE_SDP, 5, 3},
        {HEAD "t=0 0\r\nk=base64:\r\n", CSIP_ERR_PARSE_SDP, 5, 9},
        {HEAD "t=0 0\r\na=:x\r\n", CSIP_ERR_PARSE_SDP, 5, 3},
        {HEAD "t=0 0\r\na=x:\r\n", CSIP_ERR_PARSE_SDP, 5, 4},
        {HEAD "t=0 0\r\na=sendonly:1\r\n", CSIP_ERR_PARSE_SDP, 5, 12},
        {HEAD "t=0 0\r\na=sendonly\r\na=recvonly\r\n", CSIP_ERR_PARSE_SDP, 6, 3},
        {HEAD "t=0 0\r\na=x\rb\r\n", CSIP_ERR_PARSE_SDP, 5, 4},
        {HEAD "t=0 0\r\n\r\na=x\r\n", CSIP_ERR_PARSE_SDP, 5, 1},
        {HEAD "t=0 0\r\nm=audio\r\n", CSIP_ERR_PARSE_SDP, 5, 8},
        {HEAD "t=0 0\r\nm=audio 70000 RTP/AVP 0\r\n", CSIP_ERR_PARSE_SDP, 5, 9},
        {HEAD "t=0 0\r\nm=audio 1/0 RTP/AVP 0\r\n", CSIP_ERR_PARSE_SDP, 5, 11},
        {HEAD "t=0 0\r\nm=audio 1 RTP//AVP 0\r\n", CSIP_ERR_PARSE_SDP, 5, 15},
        {HEAD "t=0 0\r\nm=audio 1 RTP/AVP\r\n", CSIP_ERR_PARSE_SDP, 5, 18},
        {HEAD "t=0 0\r\nm=audio 1 RTP/AVP 128\r\n", CSIP_ERR_PARSE_SDP, 5, 19},
        {HEAD "t=0 0\r\nm=audio 1 RTP/AVP 08\r\n", CSIP_ERR_PARSE_SDP, 5, 19},
        /* no c= anywhere for a section with a port */
        {HEAD "t=0 0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\n", CSIP_ERR_PARSE_SDP, 5, 1},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", CSIP_ERR_PARSE_SDP, 7, 1},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=x\r\nc=IN IP4 h\r\n",
         CSIP_ERR_PARSE_SDP, 8, 1},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
         CSIP_ERR_PARSE_SDP, 7, 12},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/0\r\n",
         CSIP_ERR_PARSE_SDP, 7, 17},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
         CSIP_ERR_PARSE_SDP, 7, 10},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
              "a=rtpmap:0 PCMA/8000\r\n",
         CSIP_ERR_PARSE_SDP, 8, 10},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=fmtp:0\r\n", CSIP_ERR_PARSE_SDP, 7,
         8},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=ptime:x\r\n", CSIP_ERR_PARSE_SDP, 7,
         9},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=ptime:20\r\na=ptime:30\r\n",
         CSIP_ERR_PARSE_SDP, 8, 3},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nv=0\r\n", CSIP_ERR_PARSE_SDP, 7, 1},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\ni=a\r\ni=b\r\n", CSIP_ERR_PARSE_SDP, 8,
         1},
        {HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\na=x\r", CSIP_ERR_PARSE_SDP, 7, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].text);
        char *buf = check_tail_copy(cases[i].text, len);
        ASSERT_TRUE(buf != NULL);
        csip_sdp *s = (csip_sdp *)1;
        csip_sdp_error err;
        int rc = csip_sdp_parse(buf, len, NULL, &s, &err);
        if (rc != cases[i].code || err.code != rc || err.line != cases[i].line ||
            err.column != cases[i].column || s != NULL || !err.what)
            CHECK_FAIL_("case %zu: %s at %u:%u (%s), expected %s at %u:%u", i, csip_err_name(rc),
                        err.line, err.column, err.what ? err.what : "-",
                        csip_err_name(cases[i].code), cases[i].line, cases[i].column);
        else if (err.offset > len)
            CHECK_FAIL_("case %zu: offset %zu past %zu", i, err.offset, len);
        free(buf);
    }

    /* a NUL octet inside a value */
    static const char nul[] = HEAD "t=0 0\r\na=x\0b\r\n";
    char *buf = check_tail_copy(nul, sizeof nul - 1);
    ASSERT_TRUE(buf != NULL);
    csip_sdp *s = NULL;
    csip_sdp_error err;
    EXPECT_EQ(csip_sdp_parse(buf, sizeof nul - 1, NULL, &s, &err), CSIP_ERR_PARSE_SDP);
    EXPECT_EQ(err.line, 5);
    EXPECT_EQ(err.column, 4);
    EXPECT_EQ(err.type, 'a');
    free(buf);
}

static void test_limits(void)
{
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, HEAD "c=IN IP4 h\r\nt=0 0\r\n");
    for (int i = 0; i < 5; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "m=audio %d RTP/AVP 0 8\r\na=x\r\n",
                              1000 + i);
    csip_sdp *s = NULL;
    csip_sdp_error err;
    ASSERT_OK(csip_sdp_parse(big, n, NULL, &s, &err));
    csip_sdp_free(s);

    csip_sdp_limits lim = {0};
    lim.max_media = 4;
    EXPECT_EQ(csip_sdp_parse_limited(big, n, NULL, &lim, &s, &err), CSIP_ERR_LIMIT_SDP);
    EXPECT_EQ(err.line, 14);
    EXPECT_EQ(err.type, 'm');
    lim = (csip_sdp_limits){0};
    lim.max_attrs = 2;
    EXPECT_EQ(csip_sdp_parse_limited(big, n, NULL, &lim, &s, &err), CSIP_ERR_LIMIT_SDP);
    EXPECT_EQ(err.line, 11);
    lim = (csip_sdp_limits){0};
    lim.max_lines = 6;
    EXPECT_EQ(csip_sdp_parse_limited(big, n, NULL, &lim, &s, &err), CSIP_ERR_LIMIT_SDP);
    EXPECT_EQ(err.line, 7);
    lim = (csip_sdp_limits){0};
    lim.max_formats = 1;
    EXPECT_EQ(csip_sdp_parse_limited(big, n, NULL, &lim, &s, &err), CSIP_ERR_LIMIT_SDP);
    EXPECT_EQ(err.line, 6);
    lim = (csip_sdp_limits){0};
    lim.max_len = 20;
    EXPECT_EQ(csip_sdp_parse_limited(big, n, NULL, &lim, &s, &err), CSIP_ERR_LIMIT_SDP);
    EXPECT_EQ(err.offset, 20);
    EXPECT_EQ(err.line, 2);
    EXPECT_EQ(err.column, 16);
    EXPECT_EQ(err.type, 'o');
    EXPECT_TRUE(s == NULL);

    /* the defaults: 33 media sections are one too many */
    n = (size_t)snprintf(big, sizeof big, HEAD "c=IN IP4 h\r\nt=0 0\r\n");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "m=audio 0 RTP/AVP 0\r\n");
    EXPECT_EQ(csip_sdp_parse(big, n, NULL, &s, &err), CSIP_ERR_LIMIT_SDP);
    /* and 129 formats on one line */
    n = (size_t)snprintf(big, sizeof big, HEAD "c=IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP");
    for (int i = 0; i < 129; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, " %d", i % 128);
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    EXPECT_EQ(csip_sdp_parse(big, n, NULL, &s, &err), CSIP_ERR_LIMIT_SDP);
    EXPECT_EQ(csip_sdp_parse(big, n - 6, NULL, &s, &err), 0); /* 128: fine */
    csip_sdp_free(s);
    s = NULL;

    EXPECT_EQ(csip_sdp_parse(NULL, 3, NULL, &s, &err), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(err.code, CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_sdp_parse(big, n, NULL, NULL, &err), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_sdp_parse(NULL, 0, NULL, &s, &err), CSIP_ERR_PARSE_SDP);
}

/* Every prefix of valid descriptions parses or fails cleanly (ASan checks the reads). */
static void test_truncations(void)
{
    const char *texts[] = {full, rfc_10_1_offer, rfc_10_1_reanswer};
    for (size_t t = 0; t < 3; t++) {
        size_t len = strlen(texts[t]);
        size_t ok = 0;
        for (size_t n = 0; n <= len; n++) {
            char *buf = check_tail_copy(texts[t], n);
            ASSERT_TRUE(buf != NULL);
            csip_sdp *s = NULL;
            csip_sdp_error err;
            int rc = csip_sdp_parse(buf, n, NULL, &s, &err);
            if (rc == 0) {
                ok++;
                EXPECT_GT(csip_sdp_print(s, NULL, 0), 0);
            } else {
                EXPECT_TRUE(rc == CSIP_ERR_PARSE_SDP);
                EXPECT_LE(err.offset, n);
            }
            csip_sdp_free(s);
            free(buf);
        }
        EXPECT_GT(ok, 1);
    }
}

static void test_failing_allocator(void)
{
    check_failmem fm;
    check_failmem_init(&fm, 1);
    csip_sdp *s = NULL;
    csip_sdp_error err;
    EXPECT_EQ(csip_sdp_parse(full, strlen(full), &fm.mem, &s, &err), CSIP_ERR_NOMEM);
    EXPECT_EQ(err.code, CSIP_ERR_NOMEM);
    EXPECT_TRUE(s == NULL);
    EXPECT_EQ(fm.live, 0);
    check_failmem_init(&fm, 2);
    ASSERT_OK(csip_sdp_parse(full, strlen(full), &fm.mem, &s, &err));
    EXPECT_EQ(fm.count, 1); /* one allocation per description */
    csip_sdp_free(s);
    EXPECT_EQ(fm.live, 0);
}

static void test_names(void)
{
    EXPECT_CSTR(csip_sdp_dir_name(CSIP_SDP_SENDRECV), "sendrecv");
    EXPECT_CSTR(csip_sdp_dir_name(CSIP_SDP_INACTIVE), "inactive");
    EXPECT_CSTR(csip_sdp_dir_name((csip_sdp_dir)9), "");
    EXPECT_CSTR(csip_err_name(CSIP_ERR_SDP_MISMATCH), "SDP_MISMATCH");
    EXPECT_TRUE(csip_sdp_get(NULL) == NULL);
    EXPECT_TRUE(csip_sdp_media_at(NULL, 0) == NULL);
    EXPECT_TRUE(csip_sdp_media_conn(NULL, 0) == NULL);
    EXPECT_EQ(csip_sdp_print(NULL, NULL, 0), CSIP_ERR_INVALID_ARG);
    csip_sdp_free(NULL);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_rfc3264_parse),
        CHECK_TEST(test_rfc3264_10_1_answer),
        CHECK_TEST(test_rfc3264_10_1_reanswer),
        CHECK_TEST(test_rfc3264_10_2),
        CHECK_TEST(test_offer),
        CHECK_TEST(test_reoffer_version),
        CHECK_TEST(test_reoffer_keeps_sections),
        CHECK_TEST(test_direction_matrix),
        CHECK_TEST(test_rejected_streams),
        CHECK_TEST(test_dynamic_matching),
        CHECK_TEST(test_answer_mismatch),
        CHECK_TEST(test_local_invalid),
        CHECK_TEST(test_full_parse),
        CHECK_TEST(test_round_trip),
        CHECK_TEST(test_malformed),
        CHECK_TEST(test_limits),
        CHECK_TEST(test_truncations),
        CHECK_TEST(test_failing_allocator),
        CHECK_TEST(test_names),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
