/*
 * Transport addresses of the core: IP literals, equality, formatting,
 * transport names.
 */
#include "check.h"

static void test_transports(void)
{
    EXPECT_FALSE(csip_transport_reliable(CSIP_TP_UDP));
    EXPECT_TRUE(csip_transport_reliable(CSIP_TP_TCP));
    EXPECT_TRUE(csip_transport_reliable(CSIP_TP_TLS));
    EXPECT_TRUE(csip_transport_reliable(CSIP_TP_SCTP));
    EXPECT_TRUE(csip_transport_reliable(CSIP_TP_WS));
    EXPECT_TRUE(csip_transport_reliable(CSIP_TP_WSS));
    EXPECT_CSTR(csip_transport_name(CSIP_TP_UDP), "UDP");
    EXPECT_CSTR(csip_transport_name(CSIP_TP_WSS), "WSS");
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("udp")), CSIP_TP_UDP);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("Tls")), CSIP_TP_TLS);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("SCTP")), CSIP_TP_SCTP);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("ws")), CSIP_TP_WS);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("WSS")), CSIP_TP_WSS);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("QUIC")), -1);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("")), -1);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("UD")), -1);
    EXPECT_EQ(csip_transport_lookup(CSIP_STR("UDPX")), -1);
}

static void check_ip(const char *in, int family, const char *formatted)
{
    csip_addr a;
    memset(&a, 0, sizeof a);
    a.port = 5060;
    int rc = csip_addr_set_ip(&a, csip_str_c(in));
    if (family == 0) {
        EXPECT_EQ(rc, CSIP_ERR_SYNTAX);
        if (rc != CSIP_ERR_SYNTAX)
            fprintf(stderr, "  accepted: %s\n", in);
        return;
    }
    EXPECT_OK(rc);
    EXPECT_EQ(a.family, family);
    char out[64];
    int n = csip_addr_format(&a, out, sizeof out);
    EXPECT_EQ(n, (int)strlen(formatted));
    EXPECT_CSTR(out, formatted);
}

static void test_set_ip(void)
{
    check_ip("192.0.2.1", 4, "192.0.2.1:5060");
    check_ip("0.0.0.0", 4, "0.0.0.0:5060");
    check_ip("255.255.255.255", 4, "255.255.255.255:5060");
    check_ip("2001:db8::1", 6, "[2001:db8::1]:5060");
    check_ip("[2001:DB8::1]", 6, "[2001:db8::1]:5060");
    check_ip("::", 6, "[::]:5060");
    check_ip("::1", 6, "[::1]:5060");
    check_ip("1::", 6, "[1::]:5060");
    check_ip("2001:db8:0:0:1:0:0:1", 6, "[2001:db8::1:0:0:1]:5060");    /* first longest run */
    check_ip("2001:db8:0:1:1:1:1:1", 6, "[2001:db8:0:1:1:1:1:1]:5060"); /* one zero group stays */
    check_ip("0:0:0:0:0:0:0:0", 6, "[::]:5060");
    check_ip("::ffff:192.0.2.1", 6, "[::ffff:c000:201]:5060");
    check_ip("1:2:3:4:5:6:7:8", 6, "[1:2:3:4:5:6:7:8]:5060");
    check_ip("0001:0db8::0001", 6, "[1:db8::1]:5060");
    /* rejected */
    check_ip("", 0, NULL);
    check_ip("192.0.2", 0, NULL);
    check_ip("192.0.2.1.5", 0, NULL);
    check_ip("192.0.2.256", 0, NULL);
    check_ip("192.0.02.1", 0, NULL);
    check_ip("192.0.2.1 ", 0, NULL);
    check_ip("example.com", 0, NULL);
    check_ip(":", 0, NULL);
    check_ip(":::", 0, NULL);
    check_ip("1:", 0, NULL);
    check_ip(":1", 0, NULL);
    check_ip("1::2::3", 0, NULL);
    check_ip("1:2:3:4:5:6:7:8:9", 0, NULL);
    check_ip("1:2:3:4:5:6:7", 0, NULL);
    check_ip("12345::", 0, NULL);
    check_ip("[::1", 0, NULL);
    check_ip("[]", 0, NULL);
    check_ip("fe80::1%eth0", 0, NULL);
    check_ip("1:2:3:4:5:6:7:1.2.3.4", 0, NULL);
    EXPECT_EQ(csip_addr_set_ip(NULL, CSIP_STR("1.2.3.4")), CSIP_ERR_INVALID_ARG);
}

static void test_equal_format(void)
{
    csip_addr a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    ASSERT_OK(csip_addr_set_ip(&a, CSIP_STR("192.0.2.1")));
    ASSERT_OK(csip_addr_set_ip(&b, CSIP_STR("192.0.2.1")));
    a.port = b.port = 5060;
    a.conn = 7;
    b.conn = 9;
    EXPECT_TRUE(csip_addr_equal(&a, &b)); /* conn ignored */
    b.transport = CSIP_TP_TCP;
    EXPECT_FALSE(csip_addr_equal(&a, &b));
    b.transport = CSIP_TP_UDP;
    b.port = 5061;
    EXPECT_FALSE(csip_addr_equal(&a, &b));
    b.port = 5060;
    ASSERT_OK(csip_addr_set_ip(&b, CSIP_STR("::ffff:192.0.2.1")));
    EXPECT_FALSE(csip_addr_equal(&a, &b));

    char out[64];
    EXPECT_EQ(csip_addr_format(&a, out, 14), CSIP_ERR_BUFFER_TOO_SMALL); /* 14 + NUL */
    EXPECT_EQ(csip_addr_format(&a, out, 15), 14);
    EXPECT_CSTR(out, "192.0.2.1:5060");
    EXPECT_EQ(csip_addr_format(&a, NULL, 0), CSIP_ERR_BUFFER_TOO_SMALL);
    a.family = 5;
    EXPECT_EQ(csip_addr_format(&a, out, sizeof out), CSIP_ERR_INVALID_ARG);
    memset(&b, 0, sizeof b);
    ASSERT_OK(csip_addr_set_ip(&b, CSIP_STR("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    b.port = 65535;
    EXPECT_EQ(csip_addr_format(&b, out, sizeof out), 47);
    EXPECT_CSTR(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_transports),
        CHECK_TEST(test_set_ip),
        CHECK_TEST(test_equal_format),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
