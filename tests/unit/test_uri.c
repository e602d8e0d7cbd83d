/*
 * URI layer: parsing (RFC 3261 §19.1/§25.1, RFC 3966, absolute URIs),
 * comparison (RFC 3261 §19.1.4, RFC 3966 §4), parameter lists and escaping.
 * Every input sits at the end of an exact-size heap buffer (check_tail_copy)
 * so that ASan reports any read past `len`.
 */
#include "check.h"
#include "uri/uri_int.h"

/* ------------------------------------------------------------------------- */
/* Parsing */

typedef struct uri_case {
    const char *in;
    int err;
    csip_uri_scheme kind;
    const char *scheme, *user, *password, *host;
    csip_host_type host_type;
    bool has_port;
    uint16_t port;
    const char *params, *headers, *opaque;
    const char *transport, *user_param, *method, *maddr, *ttl;
    bool lr;
} uri_case;

#define SIP CSIP_URI_SIP
#define SIPS CSIP_URI_SIPS
#define TEL CSIP_URI_TEL
#define OTHER CSIP_URI_OTHER
#define NAME CSIP_HOST_NAME
#define IPV4 CSIP_HOST_IPV4
#define IPV6 CSIP_HOST_IPV6
#define BAD CSIP_ERR_PARSE_URI

/* clang-format off */
static const uri_case valid_cases[] = {
    /* RFC 3261 §19.1.3 examples */
    {.in = "sip:alice@atlanta.com", .kind = SIP, .scheme = "sip", .user = "alice",
     .host = "atlanta.com", .host_type = NAME},
    {.in = "sip:alice:secretword@atlanta.com;transport=tcp", .kind = SIP, .scheme = "sip",
     .user = "alice", .password = "secretword", .host = "atlanta.com", .host_type = NAME,
     .params = "transport=tcp", .transport = "tcp"},
    {.in = "sips:alice@atlanta.com?subject=project%20x&priority=urgent", .kind = SIPS,
     .scheme = "sips", .user = "alice", .host = "atlanta.com", .host_type = NAME,
     .headers = "subject=project%20x&priority=urgent"},
    {.in = "sip:+1-212-555-1212:1234@gateway.com;user=phone", .kind = SIP, .scheme = "sip",
     .user = "+1-212-555-1212", .password = "1234", .host = "gateway.com", .host_type = NAME,
     .params = "user=phone", .user_param = "phone"},
    {.in = "sips:1212@gateway.com", .kind = SIPS, .scheme = "sips", .user = "1212",
     .host = "gateway.com", .host_type = NAME},
    {.in = "sip:alice@192.0.2.4", .kind = SIP, .scheme = "sip", .user = "alice",
     .host = "192.0.2.4", .host_type = IPV4},
    {.in = "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", .kind = SIP, .scheme = "sip",
     .host = "atlanta.com", .host_type = NAME, .params = "method=REGISTER",
     .headers = "to=alice%40atlanta.com", .method = "REGISTER"},
    {.in = "sip:alice;day=tuesday@atlanta.com", .kind = SIP, .scheme = "sip",
     .user = "alice;day=tuesday", .host = "atlanta.com", .host_type = NAME},
    /* RFC 4475 esc01: an escaped sips URI in the user part, escaped parameter names */
    {.in = "sip:sips%3Auser%40example.com@example.net", .kind = SIP, .scheme = "sip",
     .user = "sips%3Auser%40example.com", .host = "example.net", .host_type = NAME},
    {.in = "sip:%75se%72@example.com", .kind = SIP, .scheme = "sip", .user = "%75se%72",
     .host = "example.com", .host_type = NAME},
    {.in = "sip:I%20have%20spaces@example.net", .kind = SIP, .scheme = "sip",
     .user = "I%20have%20spaces", .host = "example.net", .host_type = NAME},
    {.in = "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31", .kind = SIP,
     .scheme = "sip", .user = "cal%6Cer", .host = "host5.example.net", .host_type = NAME,
     .params = "%6C%72;n%61me=v%61lue%25%34%31", .lr = true},
    /* RFC 4475 escnull */
    {.in = "sip:null-%00-null@example.com", .kind = SIP, .scheme = "sip", .user = "null-%00-null",
     .host = "example.com", .host_type = NAME},
    {.in = "sip:%00@host5.example.com", .kind = SIP, .scheme = "sip", .user = "%00",
     .host = "host5.example.com", .host_type = NAME},
    {.in = "sip:%00%00@host5.example.com", .kind = SIP, .scheme = "sip", .user = "%00%00",
     .host = "host5.example.com", .host_type = NAME},
    /* RFC 4475 semiuri: ';' and an escaped '@' in the user part */
    {.in = "sip:user;par=u%40example.net@example.com", .kind = SIP, .scheme = "sip",
     .user = "user;par=u%40example.net", .host = "example.com", .host_type = NAME},
    /* RFC 4475 intmeth: every legal user and password character */
    {.in = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
           "(doesn't-it)@example.com",
     .kind = SIP, .scheme = "sip", .user = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
     .password = "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)", .host = "example.com",
     .host_type = NAME},
    {.in = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com", .kind = SIP,
     .scheme = "sip", .user = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
     .host = "example.com", .host_type = NAME},
    /* RFC 4475 unkscm, novelsc, unksm2: other schemes */
    {.in = "nobodyKnowsThisScheme:totallyopaquecontent", .kind = OTHER,
     .scheme = "nobodyKnowsThisScheme", .opaque = "totallyopaquecontent"},
    {.in = "nobodyknowsthisscheme:totallyopaqueContent", .kind = OTHER,
     .scheme = "nobodyknowsthisscheme", .opaque = "totallyopaqueContent"},
    {.in = "soap.beep://192.0.2.103:3002", .kind = OTHER, .scheme = "soap.beep",
     .opaque = "//192.0.2.103:3002"},
    {.in = "isbn:2983792873", .kind = OTHER, .scheme = "isbn", .opaque = "2983792873"},
    {.in = "http://www.example.com", .kind = OTHER, .scheme = "http",
     .opaque = "//www.example.com"},
    {.in = "name:John_Smith", .kind = OTHER, .scheme = "name", .opaque = "John_Smith"},
    {.in = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", .kind = OTHER, .scheme = "urn",
     .opaque = "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
    {.in = "http://[2001:db8::1]:80/a%20b?q=1", .kind = OTHER, .scheme = "http",
     .opaque = "//[2001:db8::1]:80/a%20b?q=1"},
    /* RFC 4475 escruri, regescrt: escaped headers are well-formed URI syntax */
    {.in = "sip:user@example.com?Route=%3Csip:example.com%3E", .kind = SIP, .scheme = "sip",
     .user = "user", .host = "example.com", .host_type = NAME,
     .headers = "Route=%3Csip:example.com%3E"},
    {.in = "sip:user@example.com?Route=%3Csip:sip.example.com%3E", .kind = SIP, .scheme = "sip",
     .user = "user", .host = "example.com", .host_type = NAME,
     .headers = "Route=%3Csip:sip.example.com%3E"},
    /* RFC 4475 cparam01/02, wsinv */
    {.in = "sip:+19725552222@gw1.example.net;unknownparam", .kind = SIP, .scheme = "sip",
     .user = "+19725552222", .host = "gw1.example.net", .host_type = NAME,
     .params = "unknownparam"},
    {.in = "sip:vivekg@chair-dnrc.example.com;unknownparam", .kind = SIP, .scheme = "sip",
     .user = "vivekg", .host = "chair-dnrc.example.com", .host_type = NAME,
     .params = "unknownparam"},
    {.in = "sip:services.example.com;lr;unknownwith=value;unknown-no-value", .kind = SIP,
     .scheme = "sip", .host = "services.example.com", .host_type = NAME,
     .params = "lr;unknownwith=value;unknown-no-value", .lr = true},
    /* RFC 3261 §19.1.4 example with an upper-case scheme and parameter name */
    {.in = "SIP:ALICE@AtLanTa.CoM;Transport=udp", .kind = SIP, .scheme = "SIP", .user = "ALICE",
     .host = "AtLanTa.CoM", .host_type = NAME, .params = "Transport=udp", .transport = "udp"},
    {.in = "SiPs:h", .kind = SIPS, .scheme = "SiPs", .host = "h", .host_type = NAME},
    /* IPv6 references */
    {.in = "sip:[2001:db8::10]:5070", .kind = SIP, .scheme = "sip", .host = "[2001:db8::10]",
     .host_type = IPV6, .has_port = true, .port = 5070},
    {.in = "sip:alice@[::1]", .kind = SIP, .scheme = "sip", .user = "alice", .host = "[::1]",
     .host_type = IPV6},
    {.in = "sip:[::]", .kind = SIP, .scheme = "sip", .host = "[::]", .host_type = IPV6},
    {.in = "sip:[::ffff:192.0.2.1];maddr=[2001:db8::1]", .kind = SIP, .scheme = "sip",
     .host = "[::ffff:192.0.2.1]", .host_type = IPV6, .params = "maddr=[2001:db8::1]",
     .maddr = "[2001:db8::1]"},
    {.in = "sips:u@[1:2:3:4:5:6:7:8]:0", .kind = SIPS, .scheme = "sips", .user = "u",
     .host = "[1:2:3:4:5:6:7:8]", .host_type = IPV6, .has_port = true, .port = 0},
    {.in = "sip:[1:2:3:4:5:6:192.0.2.1]", .kind = SIP, .scheme = "sip",
     .host = "[1:2:3:4:5:6:192.0.2.1]", .host_type = IPV6},
    {.in = "sip:[1:2:3:4:5:6:7::]", .kind = SIP, .scheme = "sip", .host = "[1:2:3:4:5:6:7::]",
     .host_type = IPV6},
    {.in = "sip:[FE80::ABCD:0:0:1]", .kind = SIP, .scheme = "sip", .host = "[FE80::ABCD:0:0:1]",
     .host_type = IPV6},
    /* ports */
    {.in = "sip:h:65535", .kind = SIP, .scheme = "sip", .host = "h", .host_type = NAME,
     .has_port = true, .port = 65535},
    {.in = "sip:h:0005060", .kind = SIP, .scheme = "sip", .host = "h", .host_type = NAME,
     .has_port = true, .port = 5060},
    {.in = "sip:bob@biloxi.com:6000;transport=tcp", .kind = SIP, .scheme = "sip", .user = "bob",
     .host = "biloxi.com", .host_type = NAME, .has_port = true, .port = 6000,
     .params = "transport=tcp", .transport = "tcp"},
    /* parameters with meaning */
    {.in = "sip:h;maddr=239.255.255.1;ttl=15;transport=udp;lr;method=INVITE;user=ip", .kind = SIP,
     .scheme = "sip", .host = "h", .host_type = NAME,
     .params = "maddr=239.255.255.1;ttl=15;transport=udp;lr;method=INVITE;user=ip",
     .transport = "udp", .user_param = "ip", .method = "INVITE", .maddr = "239.255.255.1",
     .ttl = "15", .lr = true},
    {.in = "sip:h;lr=on", .kind = SIP, .scheme = "sip", .host = "h", .host_type = NAME,
     .params = "lr=on", .lr = true},
    {.in = "sip:h;x=[a]:b/c&d+e$f", .kind = SIP, .scheme = "sip", .host = "h", .host_type = NAME,
     .params = "x=[a]:b/c&d+e$f"},
    {.in = "sip:h;%74ransport=tcp", .kind = SIP, .scheme = "sip", .host = "h", .host_type = NAME,
     .params = "%74ransport=tcp", .transport = "tcp"},
    /* where the userinfo ends: an '@' can only close the userinfo */
    {.in = "sip:host;param=a@b", .kind = SIP, .scheme = "sip", .user = "host;param=a", .host = "b",
     .host_type = NAME},
    {.in = "sip:host?x=a@b", .kind = SIP, .scheme = "sip", .user = "host?x=a", .host = "b",
     .host_type = NAME},
    {.in = "sip:host:5060@b", .kind = SIP, .scheme = "sip", .user = "host", .password = "5060",
     .host = "b", .host_type = NAME},
    {.in = "sip:user:@host", .kind = SIP, .scheme = "sip", .user = "user", .password = "",
     .host = "host", .host_type = NAME},
    {.in = "sip:host;a=b?c=d", .kind = SIP, .scheme = "sip", .host = "host", .host_type = NAME,
     .params = "a=b", .headers = "c=d"},
    {.in = "sip:u@host?subject=&x=?/:[]+$", .kind = SIP, .scheme = "sip", .user = "u",
     .host = "host", .host_type = NAME, .headers = "subject=&x=?/:[]+$"},
    /* host names */
    {.in = "sip:example.com.", .kind = SIP, .scheme = "sip", .host = "example.com.",
     .host_type = NAME},
    {.in = "sip:1-2.3com.e1", .kind = SIP, .scheme = "sip", .host = "1-2.3com.e1",
     .host_type = NAME},
    {.in = "sip:0.0.0.0", .kind = SIP, .scheme = "sip", .host = "0.0.0.0", .host_type = IPV4},
    {.in = "sip:255.255.255.255", .kind = SIP, .scheme = "sip", .host = "255.255.255.255",
     .host_type = IPV4},
    /* tel (RFC 3966) */
    {.in = "tel:+1-201-555-0123", .kind = TEL, .scheme = "tel", .user = "+1-201-555-0123"},
    {.in = "tel:7042;phone-context=example.com", .kind = TEL, .scheme = "tel", .user = "7042",
     .params = "phone-context=example.com"},
    {.in = "tel:863-1234;phone-context=+1-914-555", .kind = TEL, .scheme = "tel",
     .user = "863-1234", .params = "phone-context=+1-914-555"},
    {.in = "TEL:+358-555-1234567;postd=pp22;isub=1411;ext=12", .kind = TEL, .scheme = "TEL",
     .user = "+358-555-1234567", .params = "postd=pp22;isub=1411;ext=12"},
    {.in = "tel:*86#;phone-context=x.example", .kind = TEL, .scheme = "tel", .user = "*86#",
     .params = "phone-context=x.example"},
    {.in = "tel:%2386(0)A;phone-context=x.example", .kind = TEL, .scheme = "tel",
     .user = "%2386(0)A", .params = "phone-context=x.example"},
};
/* clang-format on */

static const char *const invalid_cases[] = {
    "",
    "sip",
    "sip:",
    "sips:",
    "sip:@host",
    "sip::pw@host",
    "sip:user@",
    "sip:user:pw@",
    "sip:user@host ",
    " sip:user@host",
    "sip:user @host",
    "sip:user@ho st",
    "sip:user@host\r\n",
    "sip:user@host\t",
    "sip:us\x01r@host",
    "sip:user@host\x7f",
    "sip:us\xc3\xa9r@host",
    "sip:us\"er@host",
    "sip:us<er@host",
    "<sip:a@b>",
    "<sip:user@example.com>",
    "sip:user@example.com; lr",
    "sip:a@b@c",
    "sip:alice@atlanta.com@gateway.com",
    "sip:user:pa:ss@host",
    "sip:user%4@host",
    "sip:user%ZZ@host",
    "sip:user@host%41",
    "sip:user@host#frag",
    "sip:user@host|x",
    /* ports */
    "sip:host:99999",
    "sip:host:65536",
    "sip:host:4294967297",
    "sip:host:",
    "sip:host:5060x",
    "sip:host:-1",
    "sip:host:5060:5060",
    /* parameters and headers */
    "sip:user@host;",
    "sip:user@host;;lr",
    "sip:user@host;=x",
    "sip:user@host;x=",
    "sip:user@host;x==y",
    "sip:user@host;x=\"a\"",
    "sip:user@host;x=%zz",
    "sip:user@host;transport",
    "sip:user@host;transport=udp;TRANSPORT=tcp",
    "sip:user@host;maddr",
    "sip:user@host;maddr=bad_host",
    "sip:user@host;ttl=256",
    "sip:user@host;ttl=1x",
    "sip:user@host;ttl=0001",
    "sip:user@host;user",
    "sip:user@host;method",
    "sip:user@host?",
    "sip:user@host?a",
    "sip:user@host?=b",
    "sip:user@host?a=b&",
    "sip:user@host?a=b=c",
    "sip:user@host?a=b;c",
    "sip:user@host?a=%4",
    /* host names and IPv4 */
    "sip:user@ex_ample.com",
    "sip:user@-host.com",
    "sip:user@host-.com",
    "sip:user@a..b",
    "sip:user@.a",
    "sip:user@a.b..",
    "sip:user@example.123",
    "sip:user@1.2.3",
    "sip:user@1.2.3.4.5",
    "sip:user@1.2.3.256",
    "sip:user@01.2.3.4",
    "sip:user@1.2.3.4.",
    "sip:user@1234.1.1.1",
    /* IPv6 references */
    "sip:[2001:db8::10",
    "sip:2001:db8::10",
    "sip:[2001:db8:::10]",
    "sip:[1:2:3:4:5:6:7:8:9]",
    "sip:[1:2:3:4:5:6:7]",
    "sip:[1::2::3]",
    "sip:[12345::1]",
    "sip:[::1.2.3]",
    "sip:[::1.2.3.4.5]",
    "sip:[::1.2.3.256]",
    "sip:[1:2:3:4:5:6:7:1.2.3.4]",
    "sip:[1.2.3.4]",
    "sip:[]",
    "sip:[:]",
    "sip:[:1]",
    "sip:[1:]",
    "sip:[1::2:3:4:5:6:7:8]",
    "sip:[fe80::1%25eth0]",
    "sip:[::g]",
    "sip:[::1]x",
    "sip:[::1]:",
    "sip:[[::1]]",
    /* schemes */
    "1sip:host",
    ":host",
    "s_p:host",
    "foo:",
    "foo:bar baz",
    "foo:<x>",
    "foo:a\"b",
    "foo:%zz",
    "foo:a#b",
    /* tel */
    "tel:",
    "tel:+",
    "tel:+-()",
    "tel:+1a",
    "tel:12x4",
    "tel:;a=b",
    "tel:+1;",
    "tel:+1;;a",
    "tel:+1;a=",
    "tel:+1;a_b=c",
    "tel:+1?x=y",
    "tel:+1 2",
    "tel:%41",
};

/* Checks that a non-absent view lies inside [b, b+n). */
static bool view_inside(csip_str s, const char *b, size_t n)
{
    return !s.p || (s.p >= b && s.p + s.len <= b + n);
}

static void check_views_inside(const csip_uri *u, const char *b, size_t n)
{
    EXPECT_TRUE(view_inside(u->raw, b, n));
    EXPECT_TRUE(view_inside(u->scheme, b, n));
    EXPECT_TRUE(view_inside(u->user, b, n));
    EXPECT_TRUE(view_inside(u->password, b, n));
    EXPECT_TRUE(view_inside(u->host, b, n));
    EXPECT_TRUE(view_inside(u->params, b, n));
    EXPECT_TRUE(view_inside(u->headers, b, n));
    EXPECT_TRUE(view_inside(u->opaque, b, n));
    EXPECT_TRUE(view_inside(u->transport, b, n));
    EXPECT_TRUE(view_inside(u->user_param, b, n));
    EXPECT_TRUE(view_inside(u->method, b, n));
    EXPECT_TRUE(view_inside(u->maddr, b, n));
    EXPECT_TRUE(view_inside(u->ttl, b, n));
}

/* Parses every proper prefix of the input from its own exact-size buffer (ASan catches
 * an over-read); the result itself is not checked, a prefix may be a valid URI. */
static void parse_truncations(const char *in, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        char *b = check_tail_copy(in, n);
        csip_uri u;
        int rc = csip_uri_parse(b, n, 0, &u);
        EXPECT_TRUE(rc == 0 || rc == CSIP_ERR_PARSE_URI);
        if (rc == 0)
            check_views_inside(&u, b, n);
        free(b);
    }
}

static void test_parse_valid(void)
{
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const uri_case *c = &valid_cases[i];
        size_t len = strlen(c->in);
        char *b = check_tail_copy(c->in, len);
        csip_uri u;
        int rc = csip_uri_parse(b, len, 0, &u);
        if (rc != 0) {
            CHECK_FAIL_("\"%s\": %s", c->in, csip_err_name(rc));
            free(b);
            continue;
        }
        check_current = c->in;
        EXPECT_EQ(u.kind, c->kind);
        EXPECT_TRUE(u.raw.p == b && u.raw.len == len);
        EXPECT_STR(u.scheme, c->scheme);
        EXPECT_STR(u.user, c->user);
        EXPECT_STR(u.password, c->password);
        if (c->kind == SIP || c->kind == SIPS) {
            EXPECT_STR(u.host, c->host);
        } else {
            EXPECT_TRUE(u.host.p == NULL);
        }
        EXPECT_EQ(u.host_type, c->host_type);
        EXPECT_EQ(u.has_port, c->has_port);
        EXPECT_EQ(u.port, c->port);
        EXPECT_STR(u.params, c->params);
        EXPECT_STR(u.headers, c->headers);
        EXPECT_STR(u.opaque, c->opaque);
        EXPECT_STR(u.transport, c->transport);
        EXPECT_STR(u.user_param, c->user_param);
        EXPECT_STR(u.method, c->method);
        EXPECT_STR(u.maddr, c->maddr);
        EXPECT_STR(u.ttl, c->ttl);
        EXPECT_EQ(u.lr, c->lr);
        check_views_inside(&u, b, len);
        /* every parsed URI equals itself, and its parameter list reads to the end */
        EXPECT_TRUE(csip_uri_equal(&u, &u));
        csip_str r = u.params;
        csip_param prm;
        int n;
        while ((n = csip_param_next(&r, &prm)) == 1)
            ;
        EXPECT_EQ(n, 0);
        free(b);
        parse_truncations(c->in, len);
        check_current = "test_parse_valid";
    }
}

static void test_parse_invalid(void)
{
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        const char *in = invalid_cases[i];
        size_t len = strlen(in);
        char *b = check_tail_copy(in, len);
        csip_uri u;
        memset(&u, 0x5a, sizeof u);
        int rc = csip_uri_parse(b, len, 0, &u);
        if (rc != CSIP_ERR_PARSE_URI)
            CHECK_FAIL_("\"%s\": got %d (%s), want PARSE_URI", in, rc, csip_err_name(rc));
        /* a failed parse leaves a zeroed struct, no dangling views */
        EXPECT_TRUE(u.raw.p == NULL && u.host.p == NULL && u.kind == CSIP_URI_OTHER);
        free(b);
        parse_truncations(in, len);
    }
}

static void test_parse_limits(void)
{
    csip_uri u;
    EXPECT_EQ(csip_uri_parse("sip:a@b", 7, 6, &u), CSIP_ERR_LIMIT_URI);
    EXPECT_OK(csip_uri_parse("sip:a@b", 7, 7, &u));
    EXPECT_EQ(csip_uri_parse(NULL, 0, 0, &u), CSIP_ERR_PARSE_URI);
    EXPECT_EQ(csip_uri_parse("sip:a@b", 7, 0, NULL), CSIP_ERR_INVALID_ARG);

    /* the default limit (max_len 0) is CSIP_DEFAULT_MAX_URI */
    size_t n = CSIP_DEFAULT_MAX_URI + 1;
    char *big = malloc(n);
    ASSERT_TRUE(big != NULL);
    memcpy(big, "sip:h;x=", 8);
    memset(big + 8, 'a', n - 8);
    EXPECT_EQ(csip_uri_parse(big, n, 0, &u), CSIP_ERR_LIMIT_URI);
    EXPECT_OK(csip_uri_parse(big, n - 1, 0, &u));
    EXPECT_EQ(u.params.len, n - 1 - 6);
    EXPECT_OK(csip_uri_parse(big, n, n, &u));
    free(big);

    /* a NUL inside the length is data, and not a legal URI character */
    EXPECT_EQ(csip_uri_parse("sip:a\0b@h", 9, 0, &u), CSIP_ERR_PARSE_URI);
    /* length, not NUL, ends the input */
    EXPECT_OK(csip_uri_parse("sip:a@bc", 7, 0, &u));
    EXPECT_STR(u.host, "b");
}

/* The Request-URI of every RFC 4475 request. */
static void test_rfc4475_request_uris(void)
{
    static const struct {
        const char *name;
        int err;
        csip_uri_scheme kind;
    } files[] = {
        {"badaspec", 0, SIP},  {"badbranch", 0, SIP},  {"baddate", 0, SIP},
        {"baddn", 0, SIP},     {"badinv01", 0, SIP},   {"badvers", 0, SIP},
        {"bext01", 0, SIP},    {"clerr", 0, SIP},      {"cparam01", 0, SIP},
        {"cparam02", 0, SIP},  {"dblreq", 0, SIP},     {"esc01", 0, SIP},
        {"esc02", 0, SIP},     {"escnull", 0, SIP},    {"escruri", 0, SIP},
        {"insuf", 0, SIP},     {"intmeth", 0, SIP},    {"inv2543", 0, SIP},
        {"invut", 0, SIP},     {"longreq", 0, SIP},    {"ltgtruri", BAD, SIP},
        {"lwsdisp", 0, SIP},   {"lwsruri", BAD, SIP},  {"lwsstart", BAD, SIP},
        {"mcl01", 0, SIP},     {"mismatch01", 0, SIP}, {"mismatch02", 0, SIP},
        {"mpart01", 0, SIP},   {"multi01", 0, SIP},    {"ncl", 0, SIP},
        {"novelsc", 0, OTHER}, {"quotbal", 0, SIP},    {"regaut01", 0, SIP},
        {"regbadct", 0, SIP},  {"regescrt", 0, SIP},   {"scalar02", 0, SIP},
        {"sdp01", 0, SIP},     {"semiuri", 0, SIP},    {"transports", 0, SIP},
        {"trws", BAD, SIP},    {"unkscm", 0, OTHER},   {"unksm2", 0, SIP},
        {"wsinv", 0, SIP},     {"zeromf", 0, SIP},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/rfc4475/%s.dat", CSIP_TEST_DATA, files[i].name);
        size_t len;
        char *msg = check_read_file(path, &len);
        if (!msg) {
            CHECK_FAIL_("cannot read %s", path);
            continue;
        }
        /* Request-URI: between the first and the last SP of the request line */
        const char *eol = memchr(msg, '\r', len);
        ASSERT_TRUE(eol != NULL);
        const char *sp1 = memchr(msg, ' ', (size_t)(eol - msg));
        const char *sp2 = eol;
        while (sp2 > msg && sp2[-1] != ' ')
            sp2--;
        ASSERT_TRUE(sp1 != NULL && sp2 > sp1 + 1);
        size_t ulen = (size_t)(sp2 - 1 - (sp1 + 1));
        char *b = check_tail_copy(sp1 + 1, ulen);
        csip_uri u;
        int rc = csip_uri_parse(b, ulen, 0, &u);
        if (rc != files[i].err)
            CHECK_FAIL_("%s: \"%.*s\": got %s", files[i].name, (int)ulen, b, csip_err_name(rc));
        if (rc == 0)
            EXPECT_EQ(u.kind, files[i].kind);
        free(b);
        free(msg);
    }
}

/* ------------------------------------------------------------------------- */
/* Comparison */

typedef struct eq_case {
    const char *a, *b;
    bool equal;
} eq_case;

/* clang-format off */
static const eq_case eq_cases[] = {
    /* RFC 3261 §19.1.4: "The URIs within each of the following sets are equivalent" */
    {"sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp", true},
    {"sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5", true},
    {"sip:carol@chicago.com", "sip:carol@chicago.com;security=on", true},
    {"sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on", true},
    {"sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com", true},
    {"sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x", true},
    /* "The URIs within each of the following sets are not equivalent" */
    {"SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP", false},
    {"sip:bob@biloxi.com", "sip:bob@biloxi.com:5060", false},
    {"sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp", false},
    {"sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp", false},
    {"sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting", false},
    {"sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4", false},

    /* scheme */
    {"sip:alice@atlanta.com", "sips:alice@atlanta.com", false},
    {"SIPS:alice@atlanta.com", "sips:alice@atlanta.com", true},
    /* userinfo: case-sensitive, escapes of unreserved characters decoded */
    {"sip:alice@atlanta.com", "sip:ALICE@atlanta.com", false},
    {"sip:%61%6c%69%63%65@atlanta.com", "sip:alice@atlanta.com", true},
    {"sip:%41lice@atlanta.com", "sip:alice@atlanta.com", false},
    {"sip:%75se%72@example.com", "sip:user@example.com", true},
    {"sip:a%3Bb@h", "sip:a;b@h", false}, /* an escaped reserved character is not the character */
    {"sip:a%3bb@h", "sip:a%3Bb@h", true},
    {"sip:sips%3Auser%40example.com@example.net", "sip:sips%3auser%40example.com@example.net",
     true},
    {"sip:null-%00-null@example.com", "sip:null-@example.com", false},
    {"sip:%00@host5.example.com", "sip:%00%00@host5.example.com", false},
    {"sip:alice@h", "sip:alice:pw@h", false},
    {"sip:alice:pw@h", "sip:alice:PW@h", false},
    {"sip:alice:p%77@h", "sip:alice:pw@h", true},
    {"sip:alice:@h", "sip:alice@h", false},
    {"sip:h", "sip:alice@h", false},
    {"sip:user;par=u%40example.net@example.com", "sip:user;par=u%40example.net@EXAMPLE.com", true},
    {"sip:user;par=u%40example.net@example.com", "sip:user;par=u%40example.org@example.com",
     false},
    /* host */
    {"sip:[2001:db8::10]:5070", "sip:[2001:DB8:0:0:0:0:0:10]:5070", true},
    {"sip:[2001:db8::10]:5070", "sip:[2001:db8::11]:5070", false},
    {"sip:[::ffff:192.0.2.1]", "sip:[::FFFF:c000:201]", true},
    {"sip:[::1]", "sip:127.0.0.1", false},
    {"sip:192.0.2.4", "sip:192.0.2.4", true},
    {"sip:192.0.2.4", "sip:192.0.2.40", false},
    {"sip:example.com", "sip:example.com.", false},
    /* ports */
    {"sip:h:5060", "sip:h:5060", true},
    {"sip:h:5060", "sip:h:05060", true},
    {"sip:h:5060", "sip:h:5061", false},
    {"sips:h", "sips:h:5061", false},
    /* parameters */
    {"sip:h;user=phone", "sip:h", false},
    {"sip:h", "sip:h;user=phone", false},
    {"sip:h;user=phone", "sip:h;user=PHONE", true},
    {"sip:h;user=phone", "sip:h;user=ip", false},
    {"sip:h;ttl=15", "sip:h", false},
    {"sip:h;method=INVITE", "sip:h", false},
    {"sip:h;method=INVITE", "sip:h;method=%49NVITE", true},
    {"sip:h;maddr=x.example", "sip:h", false},
    {"sip:h;maddr=X.example", "sip:h;maddr=x.EXAMPLE", true},
    {"sip:h;transport=udp", "sip:h", false},
    {"sip:h;TRANSPORT=UDP", "sip:h;transport=udp", true},
    {"sip:h;%74ransport=udp", "sip:h;transport=udp", true},
    {"sip:h;lr", "sip:h", true},
    {"sip:h;%6C%72", "sip:h;lr", true},
    {"sip:h;lr", "sip:h;lr=on", false},
    {"sip:carol@chicago.com;security=off", "sip:carol@chicago.com;security=on", false},
    {"sip:h;a=1;b=2", "sip:h;b=2;a=1", true},
    {"sip:h;a=1;a=2", "sip:h;a=1", false},
    {"sip:h;a", "sip:h;a=1", false},
    /* RFC 4475 esc01: value%41 is not valueA (no recursive unescaping) */
    {"sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
     "sip:caller@host5.example.net;lr;name=value%2541", true},
    {"sip:caller@host5.example.net;name=value%2541", "sip:caller@host5.example.net;name=valueA",
     false},
    /* headers: never ignored; names without case, values exact */
    {"sip:h?a=1&b=2", "sip:h?B=2&A=1", true},
    {"sip:h?a=1&a=2", "sip:h?a=2&a=1", false},
    {"sip:h?a=1&a=2&b=3", "sip:h?b=3&a=1&a=2", true},
    {"sip:h?a=1", "sip:h?a=1&b=2", false},
    {"sip:h?a=1&a=1", "sip:h?a=1&b=1", false},
    {"sip:h?subject=X", "sip:h?subject=x", false},
    {"sip:h?subject=%58", "sip:h?subject=X", true},
    {"sip:h?to=sip:bob%40biloxi.com", "sip:h?to=sip%3Abob%40biloxi.com", false},
    {"sip:h?subject=", "sip:h?subject=", true},
    {"sip:h?subject=", "sip:h", false},
    /* tel (RFC 3966 §4) */
    {"tel:+1-201-555-0123", "tel:+12015550123", true},
    {"tel:+1-201-555-0123", "tel:+1(201)555.0123", true},
    {"tel:+12015550123", "tel:+12015550124", false},
    {"tel:+1201", "tel:1201;phone-context=+1", false},
    {"tel:7042;phone-context=example.com", "tel:7042;phone-context=EXAMPLE.com", true},
    {"tel:7042;phone-context=example.com", "tel:7042;phone-context=example.org", false},
    {"tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555", true},
    {"tel:+1234;ext=1", "tel:+1234", false},
    {"tel:+1234", "tel:+1234;ext=1", false},
    {"tel:+1234;a=1;b=2", "tel:+1234;B=2;A=1", true},
    {"tel:abc;phone-context=x.example", "tel:ABC;phone-context=x.example", true},
    {"tel:%2386;phone-context=x.example", "tel:#86;phone-context=x.example", true},
    {"tel:+1234", "sip:+1234@h", false},
    /* other schemes: scheme without case, the rest exact */
    {"urn:foo", "URN:foo", true},
    {"urn:foo", "urn:FOO", false},
    {"nobodyKnowsThisScheme:totallyopaquecontent", "nobodyknowsthisscheme:totallyopaquecontent",
     true},
    {"soap.beep://192.0.2.103:3002", "soap.beeps://192.0.2.103:3002", false},
    {"http://x", "sip:x", false},
};
/* clang-format on */

static bool parse_c(const char *s, csip_uri *u, char **buf)
{
    size_t len = strlen(s);
    *buf = check_tail_copy(s, len);
    int rc = csip_uri_parse(*buf, len, 0, u);
    if (rc != 0)
        CHECK_FAIL_("\"%s\": %s", s, csip_err_name(rc));
    return rc == 0;
}

static void test_equal(void)
{
    for (size_t i = 0; i < sizeof eq_cases / sizeof eq_cases[0]; i++) {
        const eq_case *c = &eq_cases[i];
        csip_uri a, b;
        char *ba, *bb;
        bool ok = parse_c(c->a, &a, &ba) & parse_c(c->b, &b, &bb);
        if (ok) {
            if (csip_uri_equal(&a, &b) != c->equal)
                CHECK_FAIL_("\"%s\" vs \"%s\": want %s", c->a, c->b, c->equal ? "equal" : "not");
            if (csip_uri_equal(&b, &a) != c->equal)
                CHECK_FAIL_("\"%s\" vs \"%s\": want %s", c->b, c->a, c->equal ? "equal" : "not");
            if (!csip_uri_equal(&a, &a))
                CHECK_FAIL_("\"%s\" not equal to itself", c->a);
            EXPECT_TRUE(csip_uri_equal(&b, &b));
        }
        free(ba);
        free(bb);
    }
    csip_uri u;
    ASSERT_OK(csip_uri_parse("sip:h", 5, 0, &u));
    EXPECT_FALSE(csip_uri_equal(NULL, &u));
    EXPECT_FALSE(csip_uri_equal(&u, NULL));
}

/* Builds "sip:h" + n parameters (or headers), in order or reversed. */
static size_t build_many(char *buf, size_t n, bool headers, bool reversed)
{
    size_t len = (size_t)snprintf(buf, 16, "sip:h");
    for (size_t i = 0; i < n; i++) {
        size_t k = reversed ? n - 1 - i : i;
        char sep = headers ? (i == 0 ? '?' : '&') : ';';
        len += (size_t)snprintf(buf + len, 32, "%cp%zu=%zu", sep, k, k);
    }
    return len;
}

/* Up to 64 parameters or headers are paired by name; longer lists compare as whole lists. */
static void test_equal_many(void)
{
    static const struct {
        size_t n;
        bool headers;
        bool equal_reversed;
    } cases[] = {{64, false, true}, {65, false, false}, {64, true, true}, {65, true, false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char x[1024], y[1024];
        size_t lx = build_many(x, cases[i].n, cases[i].headers, false);
        size_t ly = build_many(y, cases[i].n, cases[i].headers, true);
        char *bx = check_tail_copy(x, lx), *by = check_tail_copy(y, ly);
        csip_uri a, b;
        ASSERT_OK(csip_uri_parse(bx, lx, 0, &a));
        ASSERT_OK(csip_uri_parse(by, ly, 0, &b));
        EXPECT_TRUE(csip_uri_equal(&a, &a));
        EXPECT_TRUE(csip_uri_equal(&b, &b));
        EXPECT_EQ(csip_uri_equal(&a, &b), cases[i].equal_reversed);
        EXPECT_EQ(csip_uri_equal(&b, &a), cases[i].equal_reversed);
        free(bx);
        free(by);
    }
}

/* ------------------------------------------------------------------------- */
/* Hosts */

static void test_ipv6(void)
{
    static const struct {
        const char *in;
        const char *hex; /* expected 16 octets, or NULL when invalid */
    } cases[] = {
        {"::", "00000000000000000000000000000000"},
        {"::1", "00000000000000000000000000000001"},
        {"1::", "00010000000000000000000000000000"},
        {"2001:db8::10", "20010db8000000000000000000000010"},
        {"2001:DB8:0:0:0:0:0:10", "20010db8000000000000000000000010"},
        {"1:2:3:4:5:6:7:8", "00010002000300040005000600070008"},
        {"1:2:3:4:5:6:7::", "00010002000300040005000600070000"},
        {"::2:3:4:5:6:7:8", "00000002000300040005000600070008"},
        {"::ffff:192.0.2.1", "00000000000000000000ffffc0000201"},
        {"1:2:3:4:5:6:192.0.2.1", "000100020003000400050006c0000201"},
        {"::192.0.2.1", "000000000000000000000000c0000201"},
        {"1:2::7:8", "00010002000000000000000000070008"},
        {"", NULL},
        {":", NULL},
        {":::", NULL},
        {"1", NULL},
        {"1:2", NULL},
        {"1::2::3", NULL},
        {"1:2:3:4:5:6:7:8:9", NULL},
        {"1::2:3:4:5:6:7:8", NULL},
        {"12345::", NULL},
        {"::1.2.3", NULL},
        {"::01.2.3.4", NULL},
        {"1:2:3:4:5:6:7:1.2.3.4", NULL},
        {"1.2.3.4", NULL},
        {"1:", NULL},
        {":1", NULL},
        {"1:::2", NULL},
        {"::1:", NULL},
        {"g::", NULL},
        {"::1.2.3.4:5", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        char *b = check_tail_copy(cases[i].in, len);
        uint8_t a[16];
        bool ok = csip__ipv6_parse(b, len, a);
        if (ok != (cases[i].hex != NULL)) {
            CHECK_FAIL_("\"%s\": %s", cases[i].in, ok ? "accepted" : "rejected");
        } else if (ok) {
            char hex[33];
            for (int k = 0; k < 16; k++)
                snprintf(hex + 2 * k, 3, "%02x", a[k]);
            EXPECT_CSTR(hex, cases[i].hex);
        }
        free(b);
    }
    csip_host_type t = CSIP_HOST_NONE;
    EXPECT_TRUE(csip__host_check("[::1]", 5, &t) && t == CSIP_HOST_IPV6);
    EXPECT_TRUE(csip__host_check("10.0.0.1", 8, &t) && t == CSIP_HOST_IPV4);
    EXPECT_TRUE(csip__host_check("a.example", 9, &t) && t == CSIP_HOST_NAME);
    EXPECT_FALSE(csip__host_check("", 0, &t));
    EXPECT_FALSE(csip__host_check("[]", 2, &t));
    EXPECT_FALSE(csip__host_check(".", 1, &t));
}

/* ------------------------------------------------------------------------- */
/* Parameter lists */

static void test_param_next(void)
{
    /* URI parameters */
    csip_str r = CSIP_STR("transport=tcp;lr;maddr=[::1]");
    csip_param p;
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "transport");
    EXPECT_STR(p.value, "tcp");
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "lr");
    EXPECT_TRUE(p.value.p == NULL);
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "maddr");
    EXPECT_STR(p.value, "[::1]");
    EXPECT_EQ(csip_param_next(&r, &p), 0);
    EXPECT_EQ(csip_param_next(&r, &p), 0);

    /* header parameters: LWS around ';' and '=', folded lines, quoted values */
    static const char hp[] = " tag = 1918181833n ;\r\n x=\"a;b\\\"c\" ;y\t; z=\"\"";
    char *b = check_tail_copy(hp, sizeof hp - 1);
    r = (csip_str){b, sizeof hp - 1};
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "tag");
    EXPECT_STR(p.value, "1918181833n");
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "x");
    EXPECT_STR(p.value, "\"a;b\\\"c\"");
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "y");
    EXPECT_TRUE(p.value.p == NULL);
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "z");
    EXPECT_STR(p.value, "\"\"");
    EXPECT_EQ(csip_param_next(&r, &p), 0);
    free(b);

    /* a leading ';' is accepted (header parameters as they follow a value) */
    r = CSIP_STR(";branch=z9hG4bK776;rport");
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "branch");
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "rport");
    EXPECT_EQ(csip_param_next(&r, &p), 0);

    /* RFC 4475 intmeth From parameters: token characters, UTF-8 in a quoted value */
    static const char im[] = ";fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82"
                             "\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.";
    b = check_tail_copy(im, sizeof im - 1);
    r = (csip_str){b, sizeof im - 1};
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "fromParam''~+*_!.-%");
    EXPECT_EQ(p.value.len, 22);
    ASSERT_EQ(csip_param_next(&r, &p), 1);
    EXPECT_STR(p.name, "tag");
    EXPECT_STR(p.value, "_token~1'+`*%!-.");
    EXPECT_EQ(csip_param_next(&r, &p), 0);
    free(b);

    /* empty and absent lists */
    r = CSIP_STR("");
    EXPECT_EQ(csip_param_next(&r, &p), 0);
    r = CSIP_STR_NULL;
    EXPECT_EQ(csip_param_next(&r, &p), 0);
    r = CSIP_STR(" \r\n ");
    EXPECT_EQ(csip_param_next(&r, &p), 0);
    EXPECT_EQ(csip_param_next(NULL, &p), CSIP_ERR_INVALID_ARG);

    /* malformed lists: the error comes when the bad parameter is read */
    static const char *const bad[] = {";",        ";;",   "=a",      "a=",    "a= ;b", "a=\"x",
                                      "a=\"x\\",  "a b",  "a=1,b=2", "a=1 2", "a=<x>", "\"a\"=1",
                                      "a=\"x\"y", ";;;;", "a@b",     "a=b@c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]);
        b = check_tail_copy(bad[i], len);
        r = (csip_str){b, len};
        csip_str before = r;
        int rc = csip_param_next(&r, &p);
        if (rc != CSIP_ERR_SYNTAX)
            CHECK_FAIL_("\"%s\": got %d", bad[i], rc);
        EXPECT_TRUE(r.p == before.p && r.len == before.len); /* unchanged on error */
        free(b);
    }
    static const char *const bad_later[] = {"a;", "a;;b", "a; ;b", "a=1;", "a;=b"};
    for (size_t i = 0; i < sizeof bad_later / sizeof bad_later[0]; i++) {
        size_t len = strlen(bad_later[i]);
        b = check_tail_copy(bad_later[i], len);
        r = (csip_str){b, len};
        EXPECT_EQ(csip_param_next(&r, &p), 1);
        int rc = csip_param_next(&r, &p);
        if (rc != CSIP_ERR_SYNTAX)
            CHECK_FAIL_("\"%s\": second read got %d", bad_later[i], rc);
        free(b);
    }
}

static void test_param_find(void)
{
    csip_str v;
    csip_str list = CSIP_STR("a=1;B=2;c;x=\"q;r\"");
    EXPECT_EQ(csip_param_find(list, "b", &v), 1);
    EXPECT_STR(v, "2");
    EXPECT_EQ(csip_param_find(list, "C", &v), 1);
    EXPECT_TRUE(v.p == NULL);
    EXPECT_EQ(csip_param_find(list, "x", &v), 1);
    EXPECT_STR(v, "\"q;r\"");
    EXPECT_EQ(csip_param_find(list, "r\"", &v), 0);
    EXPECT_EQ(csip_param_find(list, "d", &v), 0);
    EXPECT_EQ(csip_param_find(list, "a", NULL), 1);
    EXPECT_EQ(csip_param_find(CSIP_STR("a;;b"), "b", &v), CSIP_ERR_SYNTAX);
    EXPECT_EQ(csip_param_find(CSIP_STR_NULL, "b", &v), 0);
    EXPECT_EQ(csip_param_find(list, NULL, &v), CSIP_ERR_INVALID_ARG);
    /* the first of repeated names wins */
    EXPECT_EQ(csip_param_find(CSIP_STR("q=1;q=2"), "q", &v), 1);
    EXPECT_STR(v, "1");
}

/* ------------------------------------------------------------------------- */
/* Escaping */

static void check_unescape(const char *in, size_t in_len, const char *want, size_t want_len)
{
    char *b = check_tail_copy(in, in_len);
    char out[64];
    int n = csip_unescape((csip_str){b, in_len}, out, sizeof out);
    if (n != (int)want_len || memcmp(out, want, want_len) != 0)
        CHECK_FAIL_("unescape \"%.*s\": got %d \"%.*s\"", (int)in_len, in, n, n > 0 ? n : 0, out);
    /* in.len always suffices, the exact decoded length too, one less does not */
    char *o = malloc(want_len ? want_len : 1);
    EXPECT_EQ(csip_unescape((csip_str){b, in_len}, o, want_len), (int)want_len);
    if (want_len)
        EXPECT_EQ(csip_unescape((csip_str){b, in_len}, o, want_len - 1), CSIP_ERR_BUFFER_TOO_SMALL);
    free(o);
    free(b);
}

#define UNESC(in, want) check_unescape(in, sizeof in - 1, want, sizeof want - 1)

static void test_unescape(void)
{
    UNESC("value%41", "valueA");
    UNESC("value%2541", "value%41"); /* never recursive (RFC 4475 esc01) */
    UNESC("v%61lue%25%34%31", "value%41");
    UNESC("%2525", "%25");
    UNESC("sips%3Auser%40example.com", "sips:user@example.com");
    UNESC("%75se%72", "user");
    UNESC("I%20have%20spaces", "I have spaces");
    UNESC("null-%00-null", "null-\0-null"); /* %00 kept as a NUL octet (RFC 4475 escnull) */
    UNESC("%00%00", "\0\0");
    UNESC("%4", "%4");
    UNESC("%", "%");
    UNESC("a%2", "a%2");
    UNESC("%zz%4g", "%zz%4g");
    UNESC("%%41", "%A");
    UNESC("%e2%82%AC", "\xe2\x82\xac");
    UNESC("", "");
    char c;
    EXPECT_EQ(csip_unescape(CSIP_STR_NULL, &c, 0), 0);
    EXPECT_EQ(csip_unescape(CSIP_STR("a"), &c, 0), CSIP_ERR_BUFFER_TOO_SMALL);
}

static void check_escape(const char *in, csip_escape_set set, const char *want)
{
    char out[128];
    int n = csip_escape(csip_str_c(in), set, out, sizeof out);
    if (n < 0 || (size_t)n != strlen(want) || memcmp(out, want, (size_t)n) != 0)
        CHECK_FAIL_("escape \"%s\" (%d): got %d \"%.*s\", want \"%s\"", in, (int)set, n,
                    n > 0 ? n : 0, out, want);
}

static void test_escape(void)
{
    check_escape("sips:user@example.com", CSIP_ESCAPE_USER, "sips%3Auser%40example.com");
    check_escape("I have spaces", CSIP_ESCAPE_USER, "I%20have%20spaces");
    check_escape("a;b?c/d&e=f+g$h,i", CSIP_ESCAPE_USER, "a;b?c/d&e=f+g$h,i");
    check_escape("a;b?c/d&e=f+g$h,i", CSIP_ESCAPE_PASSWORD, "a%3Bb%3Fc%2Fd&e=f+g$h,i");
    check_escape("a;b=c?d@e[f]g/h:i&j+k$l", CSIP_ESCAPE_PARAM, "a%3Bb%3Dc%3Fd%40e[f]g/h:i&j+k$l");
    check_escape("a;b=c?d@e[f]g/h:i&j+k$l", CSIP_ESCAPE_HEADER, "a%3Bb%3Dc?d%40e[f]g/h:i%26j+k$l");
    check_escape("100%", CSIP_ESCAPE_USER, "100%25");
    check_escape("-_.!~*'()", CSIP_ESCAPE_PARAM, "-_.!~*'()");
    check_escape("\xe2\x82\xac\"<>\\", CSIP_ESCAPE_HEADER, "%E2%82%AC%22%3C%3E%5C");
    check_escape("", CSIP_ESCAPE_USER, "");

    char out[8];
    EXPECT_EQ(csip_escape(CSIP_STR("@@"), CSIP_ESCAPE_USER, out, 6), 6);
    EXPECT_EQ(csip_escape(CSIP_STR("@@"), CSIP_ESCAPE_USER, out, 5), CSIP_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(csip_escape(CSIP_STR("ab"), CSIP_ESCAPE_USER, out, 1), CSIP_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(csip_escape(CSIP_STR("a"), (csip_escape_set)99, out, 8), CSIP_ERR_INVALID_ARG);

    /* round trips over every octet, for every set */
    char all[256], esc[3 * 256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    static const csip_escape_set sets[] = {CSIP_ESCAPE_USER, CSIP_ESCAPE_PASSWORD,
                                           CSIP_ESCAPE_PARAM, CSIP_ESCAPE_HEADER};
    for (size_t s = 0; s < 4; s++) {
        int n = csip_escape((csip_str){all, 256}, sets[s], esc, sizeof esc);
        ASSERT_GT(n, 256);
        EXPECT_EQ(csip_escape((csip_str){all, 256}, sets[s], esc, (size_t)n - 1),
                  CSIP_ERR_BUFFER_TOO_SMALL);
        int m = csip_unescape((csip_str){esc, (size_t)n}, back, sizeof back);
        EXPECT_EQ(m, 256);
        EXPECT_TRUE(memcmp(back, all, 256) == 0);
    }
}

/* An escaped user part always makes a URI that parses back to the same user. */
static void test_escape_user_in_uri(void)
{
    static const char *const users[] = {
        "alice smith", "a@b",   "sips:user@example.com", "x:y",         "%41",
        "<tag>",       "\"q\"", "semi;colon?x=1",        "caf\xc3\xa9", "#1",
        "[v6]"};
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
        char uri[128], dec[64];
        memcpy(uri, "sip:", 4);
        int n = csip_escape(csip_str_c(users[i]), CSIP_ESCAPE_USER, uri + 4, 64);
        ASSERT_GT(n, 0);
        size_t len = 4 + (size_t)n;
        memcpy(uri + len, "@example.com", 12);
        len += 12;
        char *b = check_tail_copy(uri, len);
        csip_uri u;
        int rc = csip_uri_parse(b, len, 0, &u);
        if (rc != 0) {
            CHECK_FAIL_("\"%.*s\": %s", (int)len, b, csip_err_name(rc));
        } else {
            EXPECT_STR(u.host, "example.com");
            EXPECT_TRUE(u.password.p == NULL);
            int m = csip_unescape(u.user, dec, sizeof dec);
            EXPECT_TRUE(m == (int)strlen(users[i]) && memcmp(dec, users[i], (size_t)m) == 0);
        }
        free(b);
    }
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_parse_valid),  CHECK_TEST(test_parse_invalid),
        CHECK_TEST(test_parse_limits), CHECK_TEST(test_rfc4475_request_uris),
        CHECK_TEST(test_equal),        CHECK_TEST(test_equal_many),
        CHECK_TEST(test_ipv6),         CHECK_TEST(test_param_next),
        CHECK_TEST(test_param_find),   CHECK_TEST(test_unescape),
        CHECK_TEST(test_escape),       CHECK_TEST(test_escape_user_in_uri),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
