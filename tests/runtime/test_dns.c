/*
 * RFC 3263 server location (src/runtime/dns) against a real DNS server:
 * dnsmasq, started by this test on 127.0.0.1 with the records below.
 */
#define _GNU_SOURCE

#include "check.h"
#include "csip/dns.h"
#include "dnsmasq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * The zone. Addresses are 127.0.0.x / fd00::x and are never contacted.
 *   naptr.test     NAPTR → SRV → A/AAAA, with records that must be ignored
 *   sipsonly.test  NAPTR with SIPS+D2T only
 *   srvonly.test   SRV for all three services, no NAPTR
 *   srvudp.test    SRV _sip._udp only
 *   aonly.test     A and AAAA only; v6only.test AAAA only
 *   prio.test      SRV priorities and weights
 *   dup.test       SRV targets sharing an address, one without address
 *   ghost.test     SRV whose target has no address
 */
static const char *const zone[] = {
    "--naptr-record=naptr.test,10,10,S,SIP+D2U,,_sip._udp.n1.naptr.test",
    "--naptr-record=naptr.test,10,20,s,SIP+D2T,,_sip._tcp.n2.naptr.test",
    "--naptr-record=naptr.test,5,99,S,SIPS+D2T,,_sips._tcp.n3.naptr.test",
    "--naptr-record=naptr.test,1,1,S,SIP+D2S,,_sip._sctp.naptr.test",     /* SCTP: not used */
    "--naptr-record=naptr.test,1,2,A,SIP+D2U,,bad.naptr.test",            /* flag A: not used */
    "--naptr-record=naptr.test,1,3,U,E2U+sip,!^.*$!sip:info@naptr.test!", /* ENUM */
    "--srv-host=_sip._udp.n1.naptr.test,udp.naptr.test,5070,0,0",
    "--srv-host=_sip._tcp.n2.naptr.test,tcp.naptr.test,5080,0,0",
    "--srv-host=_sips._tcp.n3.naptr.test,tls.naptr.test,5061,0,0",
    /* decoys: reached only when NAPTR is skipped (explicit transport) */
    "--srv-host=_sip._udp.naptr.test,decoy.naptr.test,5060,0,0",
    "--srv-host=_sip._sctp.naptr.test,decoy.naptr.test,5060,0,0",
    "--host-record=naptr.test,127.0.0.13",
    "--host-record=tls.naptr.test,127.0.0.10",
    "--host-record=udp.naptr.test,127.0.0.11,fd00::11",
    "--host-record=tcp.naptr.test,127.0.0.12",
    "--host-record=decoy.naptr.test,127.0.0.99",
    "--host-record=bad.naptr.test,127.0.0.98",

    "--naptr-record=sipsonly.test,10,10,S,SIPS+D2T,,_sips._tcp.sipsonly.test",
    "--srv-host=_sips._tcp.sipsonly.test,s.sipsonly.test,5061,0,0",
    "--srv-host=_sip._udp.sipsonly.test,decoy.naptr.test,5060,0,0",
    "--host-record=s.sipsonly.test,127.0.0.20",

    "--srv-host=_sips._tcp.srvonly.test,a.srvonly.test,5061,0,0",
    "--srv-host=_sip._tcp.srvonly.test,b.srvonly.test,5060,0,0",
    "--srv-host=_sip._udp.srvonly.test,c.srvonly.test,5060,0,0",
    "--host-record=a.srvonly.test,127.0.0.30",
    "--host-record=b.srvonly.test,127.0.0.31",
    "--host-record=c.srvonly.test,127.0.0.32",
    "--host-record=srvonly.test,127.0.0.33",

    "--srv-host=_sip._udp.srvudp.test,u.srvudp.test,5062,0,0",
    "--host-record=u.srvudp.test,127.0.0.34",
    "--host-record=srvudp.test,127.0.0.35",

    "--host-record=aonly.test,127.0.0.40,fd00::40",
    "--host-record=v6only.test,fd00::41",

    "--srv-host=_sip._udp.prio.test,p1.prio.test,5060,10,0",
    "--srv-host=_sip._udp.prio.test,p2.prio.test,5060,20,60",
    "--srv-host=_sip._udp.prio.test,p3.prio.test,5060,20,30",
    "--srv-host=_sip._udp.prio.test,p4.prio.test,5060,20,10",
    "--srv-host=_sip._udp.prio.test,p5.prio.test,5060,30,5",
    "--host-record=p1.prio.test,127.0.0.51",
    "--host-record=p2.prio.test,127.0.0.52",
    "--host-record=p3.prio.test,127.0.0.53",
    "--host-record=p4.prio.test,127.0.0.54",
    "--host-record=p5.prio.test,127.0.0.55",

    "--srv-host=_sip._udp.dup.test,d1.dup.test,5060,10,0",
    "--srv-host=_sip._udp.dup.test,d2.dup.test,5060,20,0",
    "--srv-host=_sip._udp.dup.test,nowhere.dup.test,5060,30,0",
    "--srv-host=_sip._udp.dup.test,d1.dup.test,5062,40,0",
    "--host-record=d1.dup.test,127.0.0.60",
    "--host-record=d2.dup.test,127.0.0.60",

    "--srv-host=_sip._udp.ghost.test,nowhere.ghost.test,5060,0,0",
    NULL,
};

static dnsmasq dns;

/* big.test: more SRV records than a 512-octet UDP answer holds, so that
 * c-ares retries over TCP (the truncation bit). Built in main(). */
enum { BIG_N = 30 };
static char big_opts[2 * BIG_N][96];

/* --- one resolution --- */

typedef struct res {
    int rc;    /* csip_resolve() */
    int sync;  /* callbacks seen before csip_resolve() returned: must be 0 */
    int calls; /* callbacks: must be 1 */
    int status;
    size_t n;
    char list[2048];        /* "TLS 127.0.0.10:5061,UDP [fd00::11]:5070" */
    char host[256];         /* every target's host, or "(differ)" */
    uint8_t last[64];       /* last octet of each target's address */
    csip_resolver *free_me; /* freed from the callback when set */
} res;

static void on_result(void *user_data, int status, const csip_target *t, size_t n)
{
    res *x = user_data;
    x->calls++;
    x->status = status;
    x->n = n;
    x->list[0] = '\0';
    x->host[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char a[64];
        if (csip_addr_format(&t[i].addr, a, sizeof a) < 0)
            snprintf(a, sizeof a, "(bad address)");
        int w = snprintf(x->list + len, sizeof x->list - len, "%s%s %s", i ? "," : "",
                         csip_transport_name((csip_transport)t[i].addr.transport), a);
        if (w > 0 && (size_t)w < sizeof x->list - len)
            len += (size_t)w;
        if (i < sizeof x->last)
            x->last[i] = t[i].addr.family == 4 ? t[i].addr.ip[3] : t[i].addr.ip[15];
        if (t[i].addr.conn != 0)
            snprintf(x->host, sizeof x->host, "(conn set)");
        else if (i == 0)
            snprintf(x->host, sizeof x->host, "%s", t[i].host);
        else if (strcmp(x->host, t[i].host) != 0)
            snprintf(x->host, sizeof x->host, "(differ)");
    }
    if (x->free_me) {
        csip_resolver *r = x->free_me;
        x->free_me = NULL;
        csip_resolver_free(r);
    }
}

/* Starts resolving uri; the caller runs the loop. */
static void start_uri(csip_resolver *r, const char *uri, csip_uri *u, res *x)
{
    memset(x, 0, sizeof *x);
    if (csip_uri_parse(uri, strlen(uri), 0, u) != 0) {
        x->rc = CSIP_ERR_PARSE_URI;
        return;
    }
    x->rc = csip_resolve(r, u, on_result, x);
    x->sync = x->calls;
}

static void resolve_uri(uv_loop_t *loop, csip_resolver *r, const char *uri, res *x)
{
    csip_uri u;
    start_uri(r, uri, &u, x);
    while (x->rc == 0 && x->calls == 0 && uv_run(loop, UV_RUN_ONCE) != 0) {
    }
}

#define EXPECT_TARGETS(loop, r, uri, want)                                                         \
    do {                                                                                           \
        res x_;                                                                                    \
        resolve_uri((loop), (r), (uri), &x_);                                                      \
        if (x_.rc != 0 || x_.sync != 0 || x_.calls != 1 || x_.status != 0 ||                       \
            strcmp(x_.list, (want)) != 0)                                                          \
            CHECK_FAIL_("%s: rc %d, early calls %d, calls %d, status %d, got \"%s\", want \"%s\"", \
                        (uri), x_.rc, x_.sync, x_.calls, x_.status, x_.list, (want));              \
    } while (0)

#define EXPECT_STATUS(loop, r, uri, want)                                                          \
    do {                                                                                           \
        res x_;                                                                                    \
        resolve_uri((loop), (r), (uri), &x_);                                                      \
        if (x_.rc != 0 || x_.sync != 0 || x_.calls != 1 || x_.status != (want) || x_.n != 0)       \
            CHECK_FAIL_("%s: rc %d, early calls %d, calls %d, status %d (want %d), got \"%s\"",    \
                        (uri), x_.rc, x_.sync, x_.calls, x_.status, (want), x_.list);              \
    } while (0)

#define EXPECT_HOST(loop, r, uri, want)                                                            \
    do {                                                                                           \
        res x_;                                                                                    \
        resolve_uri((loop), (r), (uri), &x_);                                                      \
        if (x_.calls != 1 || x_.n == 0 || strcmp(x_.host, (want)) != 0)                            \
            CHECK_FAIL_("%s: host \"%s\", want \"%s\" (status %d)", (uri), x_.host, (want),        \
                        x_.status);                                                                \
    } while (0)

/* --- fixtures --- */

typedef struct fixture {
    uv_loop_t loop;
    csip_resolver *r;
} fixture;

static int fx_open(fixture *f, const char *servers, uint32_t timeout_ms, uint32_t tries,
                   bool prefer_ipv6)
{
    if (uv_loop_init(&f->loop) != 0)
        return -1;
    csip_resolver_opts o;
    memset(&o, 0, sizeof o);
    o.servers = servers;
    o.timeout_ms = timeout_ms;
    o.tries = tries;
    o.prefer_ipv6 = prefer_ipv6;
    return csip_resolver_new(&f->loop, &o, &f->r);
}

/* Frees the resolver (if still there), lets its handles close, and checks
 * that nothing is left on the loop. */
static void fx_close(fixture *f)
{
    if (f->r)
        csip_resolver_free(f->r);
    f->r = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&f->loop), 0);
}

static int fx_dns(fixture *f, bool prefer_ipv6)
{
    return fx_open(f, dns.servers, 2000, 2, prefer_ipv6);
}

/* A UDP socket on loopback that never answers: queries sent to it time out. */
static int blackhole(char *servers, size_t cap, bool close_it)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    snprintf(servers, cap, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    if (close_it) {
        close(fd); /* nothing listens there any more: ICMP port unreachable */
        return 0;
    }
    return fd;
}

/* --- tests --- */

static void test_naptr_srv_a(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    /* order 5 SIPS+D2T, then order 10 by preference: D2U (10), D2T (20);
     * SCTP, flag "A" and ENUM records ignored; the decoy SRV never asked */
    EXPECT_TARGETS(&f.loop, f.r, "sip:naptr.test",
                   "TLS 127.0.0.10:5061,UDP 127.0.0.11:5070,UDP [fd00::11]:5070,"
                   "TCP 127.0.0.12:5080");
    EXPECT_TARGETS(&f.loop, f.r, "sip:alice@NAPTR.test;lr", /* case of the name, other params */
                   "TLS 127.0.0.10:5061,UDP 127.0.0.11:5070,UDP [fd00::11]:5070,"
                   "TCP 127.0.0.12:5080");
    /* a sips URI keeps SIPS+D2T only */
    EXPECT_TARGETS(&f.loop, f.r, "sips:naptr.test", "TLS 127.0.0.10:5061");
    /* host is the URI's domain (RFC 5922: the identity TLS checks), not the SRV target */
    EXPECT_HOST(&f.loop, f.r, "sip:naptr.test", "naptr.test");
    fx_close(&f);

    ASSERT_OK(fx_dns(&f, true));
    EXPECT_TARGETS(&f.loop, f.r, "sip:naptr.test",
                   "TLS 127.0.0.10:5061,UDP [fd00::11]:5070,UDP 127.0.0.11:5070,"
                   "TCP 127.0.0.12:5080");
    fx_close(&f);
}

static void test_naptr_sips_only(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    /* NAPTR exists: the SRV services are not tried (the _sip._udp decoy) */
    EXPECT_TARGETS(&f.loop, f.r, "sip:sipsonly.test", "TLS 127.0.0.20:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sips:sipsonly.test", "TLS 127.0.0.20:5061");
    fx_close(&f);
}

static void test_srv_only(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvonly.test",
                   "TLS 127.0.0.30:5061,TCP 127.0.0.31:5060,UDP 127.0.0.32:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sips:srvonly.test", "TLS 127.0.0.30:5061");
    EXPECT_HOST(&f.loop, f.r, "sip:srvonly.test", "srvonly.test");
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvudp.test", "UDP 127.0.0.34:5062");
    /* no _sips._tcp: A of the domain, TLS on 5061 */
    EXPECT_TARGETS(&f.loop, f.r, "sips:srvudp.test", "TLS 127.0.0.35:5061");
    fx_close(&f);
}

static void test_a_only(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    EXPECT_TARGETS(&f.loop, f.r, "sip:aonly.test", "UDP 127.0.0.40:5060,UDP [fd00::40]:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sips:aonly.test", "TLS 127.0.0.40:5061,TLS [fd00::40]:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sip:v6only.test", "UDP [fd00::41]:5060");
    EXPECT_HOST(&f.loop, f.r, "sip:aonly.test", "aonly.test");
    fx_close(&f);

    ASSERT_OK(fx_dns(&f, true));
    EXPECT_TARGETS(&f.loop, f.r, "sip:aonly.test", "UDP [fd00::40]:5060,UDP 127.0.0.40:5060");
    fx_close(&f);
}

static void test_priority_weight(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    enum { RUNS = 600 };
    int first[256] = {0}, second[256] = {0};
    int bad = 0;
    for (int i = 0; i < RUNS; i++) {
        res x;
        resolve_uri(&f.loop, f.r, "sip:prio.test", &x);
        /* priority 10 first, 30 last, the three of priority 20 between */
        if (x.status != 0 || x.n != 5 || x.last[0] != 51 || x.last[4] != 55 ||
            x.last[1] + x.last[2] + x.last[3] != 52 + 53 + 54 || x.last[1] == x.last[2] ||
            x.last[2] == x.last[3] || x.last[1] == x.last[3]) {
            if (bad++ == 0)
                CHECK_FAIL_("run %d: status %d, \"%s\"", i, x.status, x.list);
            continue;
        }
        first[x.last[1]]++;
        second[x.last[2]]++;
    }
    EXPECT_EQ(bad, 0);
    /* RFC 2782: a uniform pick in [0, 100] over the running sums of the
     * weights: about 60/101, 30/101 and 10/101 of the first places (the record
     * first in the answer also wins the draw of 0). Bounds at about 5 sigma. */
    EXPECT_GE(first[52], 362 - 60);
    EXPECT_LE(first[52], 362 + 60);
    EXPECT_GE(first[53], 178 - 56);
    EXPECT_LE(first[53], 178 + 56);
    EXPECT_GE(first[54], 59 - 37);
    EXPECT_LE(first[54], 59 + 37);
    EXPECT_GT(first[52], first[53]);
    EXPECT_GT(first[53], first[54]);
    /* the lightest one is most often last of its priority, so rarely second */
    EXPECT_GT(second[53], second[54]);
    fprintf(stderr, "weights 60/30/10 first: %d/%d/%d of %d\n", first[52], first[53], first[54],
            RUNS);
    fx_close(&f);
}

static void test_not_found(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    EXPECT_STATUS(&f.loop, f.r, "sip:nx.test", CSIP_ERR_NOT_FOUND);
    EXPECT_STATUS(&f.loop, f.r, "sips:nx.test", CSIP_ERR_NOT_FOUND);
    EXPECT_STATUS(&f.loop, f.r, "sip:nx.test:5060", CSIP_ERR_NOT_FOUND);
    EXPECT_STATUS(&f.loop, f.r, "sip:nx.test;transport=tcp", CSIP_ERR_NOT_FOUND);
    /* SRV whose only target has no address */
    EXPECT_STATUS(&f.loop, f.r, "sip:ghost.test", CSIP_ERR_NOT_FOUND);
    /* longer than any domain name */
    char uri[400];
    memcpy(uri, "sip:", 4);
    size_t n = 4;
    for (int i = 0; i < 5; i++) {
        memset(uri + n, 'a', 60);
        n += 60;
        uri[n++] = '.';
    }
    memcpy(uri + n, "test", 5);
    EXPECT_STATUS(&f.loop, f.r, uri, CSIP_ERR_NOT_FOUND);
    fx_close(&f);
}

static void test_numeric(void)
{
    /* A server that never answers, with a long timeout: a numeric TARGET
     * asks no DNS, so every answer comes at once. */
    char servers[32];
    int fd = blackhole(servers, sizeof servers, false);
    ASSERT_TRUE(fd >= 0);
    fixture f;
    ASSERT_OK(fx_open(&f, servers, 5000, 2, false));
    uint64_t t0 = uv_hrtime();
    EXPECT_TARGETS(&f.loop, f.r, "sip:127.0.0.1", "UDP 127.0.0.1:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sips:127.0.0.1", "TLS 127.0.0.1:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sip:[::1]:5070", "UDP [::1]:5070");
    EXPECT_HOST(&f.loop, f.r, "sip:[::1]:5070", "::1");
    EXPECT_HOST(&f.loop, f.r, "sip:127.0.0.1", "127.0.0.1");
    EXPECT_TARGETS(&f.loop, f.r, "sip:bob@127.0.0.1;transport=TCP", "TCP 127.0.0.1:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:192.0.2.1:5099;transport=tls", "TLS 192.0.2.1:5099");
    EXPECT_TARGETS(&f.loop, f.r, "sip:192.0.2.1;transport=tls", "TLS 192.0.2.1:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sips:[2001:db8::1];transport=tcp", "TLS [2001:db8::1]:5061");
    /* §4: maddr is the TARGET */
    EXPECT_TARGETS(&f.loop, f.r, "sip:nx.test;maddr=127.0.0.7", "UDP 127.0.0.7:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:nx.test:5080;maddr=127.0.0.7;transport=tcp",
                   "TCP 127.0.0.7:5080");
    EXPECT_LT((uv_hrtime() - t0) / 1000000u, 1000);
    fx_close(&f);
    close(fd);
}

static void test_explicit_port(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    /* a port: A/AAAA only, no NAPTR, no SRV */
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvonly.test:5090", "UDP 127.0.0.33:5090");
    EXPECT_TARGETS(&f.loop, f.r, "sips:srvonly.test:5091", "TLS 127.0.0.33:5091");
    EXPECT_TARGETS(&f.loop, f.r, "sip:naptr.test:5099", "UDP 127.0.0.13:5099");
    EXPECT_TARGETS(&f.loop, f.r, "sip:aonly.test:5070;transport=tcp",
                   "TCP 127.0.0.40:5070,TCP [fd00::40]:5070");
    EXPECT_TARGETS(&f.loop, f.r, "sip:x@srvonly.test:5060", "UDP 127.0.0.33:5060");
    fx_close(&f);
}

static void test_transport_param(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    /* that transport's SRV only, NAPTR skipped */
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvonly.test;transport=tcp", "TCP 127.0.0.31:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvonly.test;transport=udp", "UDP 127.0.0.32:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvonly.test;transport=tls", "TLS 127.0.0.30:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sips:srvonly.test;transport=tcp", "TLS 127.0.0.30:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sip:naptr.test;transport=udp", "UDP 127.0.0.99:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:naptr.test;transport=sctp", "SCTP 127.0.0.99:5060");
    /* no SRV for it: A/AAAA with that transport's default port */
    EXPECT_TARGETS(&f.loop, f.r, "sip:aonly.test;transport=tcp",
                   "TCP 127.0.0.40:5060,TCP [fd00::40]:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:aonly.test;transport=tls",
                   "TLS 127.0.0.40:5061,TLS [fd00::40]:5061");
    EXPECT_TARGETS(&f.loop, f.r, "sip:srvudp.test;transport=tcp", "TCP 127.0.0.35:5060");
    EXPECT_TARGETS(&f.loop, f.r, "sip:aonly.test;transport=ws",
                   "WS 127.0.0.40:5060,"
                   "WS [fd00::40]:5060");

    /* transports that cannot be used: refused at once */
    static const char *const bad[] = {
        "sip:aonly.test;transport=foo", "sips:aonly.test;transport=udp",
        "sips:127.0.0.1;transport=sctp", "tel:+15551234567", "http://aonly.test/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res x;
        csip_uri u;
        start_uri(f.r, bad[i], &u, &x);
        if (x.rc != CSIP_ERR_INVALID_ARG || x.calls != 0)
            CHECK_FAIL_("%s: rc %d, calls %d", bad[i], x.rc, x.calls);
    }
    fx_close(&f);
}

static void test_duplicates(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    /* d1 and d2 share 127.0.0.60: one target; nowhere has no address; d1
     * on another port is another target */
    EXPECT_TARGETS(&f.loop, f.r, "sip:dup.test", "UDP 127.0.0.60:5060,UDP 127.0.0.60:5062");
    fx_close(&f);
}

static void test_tcp_fallback(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    char want[2048];
    size_t n = 0;
    for (int i = 1; i <= BIG_N; i++) {
        int w = snprintf(want + n, sizeof want - n, "%sUDP 127.0.1.%d:%d", i > 1 ? "," : "", i,
                         5000 + i);
        ASSERT_TRUE(w > 0 && (size_t)w < sizeof want - n);
        n += (size_t)w;
    }
    /* every record, in priority order: the whole answer came over TCP */
    EXPECT_TARGETS(&f.loop, f.r, "sip:big.test;transport=udp", want);
    fx_close(&f);
}

static void test_many_at_once(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    static const struct {
        const char *uri, *want;
    } cases[] = {
        {"sip:naptr.test", "TLS 127.0.0.10:5061,UDP 127.0.0.11:5070,UDP [fd00::11]:5070,"
                           "TCP 127.0.0.12:5080"},
        {"sips:naptr.test", "TLS 127.0.0.10:5061"},
        {"sip:srvonly.test", "TLS 127.0.0.30:5061,TCP 127.0.0.31:5060,UDP 127.0.0.32:5060"},
        {"sip:aonly.test", "UDP 127.0.0.40:5060,UDP [fd00::40]:5060"},
        {"sip:127.0.0.1", "UDP 127.0.0.1:5060"},
        {"sip:srvonly.test:5090", "UDP 127.0.0.33:5090"},
        {"sip:nx.test", ""},
    };
    enum { ROUNDS = 6, NC = sizeof cases / sizeof cases[0] };
    static res x[ROUNDS * NC];
    csip_uri u[ROUNDS * NC];
    for (size_t i = 0; i < ROUNDS * NC; i++) {
        start_uri(f.r, cases[i % NC].uri, &u[i], &x[i]);
        EXPECT_EQ(x[i].rc, 0);
        EXPECT_EQ(x[i].calls, 0);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT); /* ends when every query is over */
    for (size_t i = 0; i < ROUNDS * NC; i++) {
        bool nx = cases[i % NC].want[0] == '\0';
        if (x[i].calls != 1 || strcmp(x[i].list, cases[i % NC].want) != 0 ||
            x[i].status != (nx ? CSIP_ERR_NOT_FOUND : 0))
            CHECK_FAIL_("%s: calls %d, status %d, \"%s\"", cases[i % NC].uri, x[i].calls,
                        x[i].status, x[i].list);
    }
    fx_close(&f);
}

static void test_server_failure(void)
{
    char servers[32];
    int fd = blackhole(servers, sizeof servers, false);
    ASSERT_TRUE(fd >= 0);
    fixture f;
    ASSERT_OK(fx_open(&f, servers, 100, 1, false));
    uint64_t t0 = uv_hrtime();
    res x;
    resolve_uri(&f.loop, f.r, "sip:aonly.test", &x);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    EXPECT_EQ(x.calls, 1);
    EXPECT_EQ(x.sync, 0);
    EXPECT_EQ(x.status, CSIP_ERR_DNS);
    EXPECT_NE(x.status, CSIP_ERR_NOMEM);
    EXPECT_EQ(x.n, 0);
    /* NAPTR, then SRV, then A/AAAA, each timing out after 100 ms */
    EXPECT_GE(ms, 250);
    EXPECT_LT(ms, 5000);
    fx_close(&f);
    close(fd);

    /* nothing listening: refused at once */
    ASSERT_EQ(blackhole(servers, sizeof servers, true), 0);
    ASSERT_OK(fx_open(&f, servers, 2000, 2, false));
    t0 = uv_hrtime();
    resolve_uri(&f.loop, f.r, "sip:aonly.test", &x);
    EXPECT_EQ(x.calls, 1);
    EXPECT_EQ(x.status, CSIP_ERR_DNS);
    EXPECT_EQ(x.n, 0);
    EXPECT_LT((uv_hrtime() - t0) / 1000000u, 2000);
    fx_close(&f);
}

static void test_free_pending(void)
{
    char servers[32];
    int fd = blackhole(servers, sizeof servers, false);
    ASSERT_TRUE(fd >= 0);
    fixture f;
    ASSERT_OK(fx_open(&f, servers, 5000, 2, false));
    res a, b, c;
    csip_uri ua, ub, uc;
    start_uri(f.r, "sip:aonly.test", &ua, &a);                  /* NAPTR outstanding */
    start_uri(f.r, "sip:127.0.0.1", &ub, &b);                   /* finished, not delivered */
    start_uri(f.r, "sips:srvonly.test;transport=tcp", &uc, &c); /* SRV outstanding */
    EXPECT_EQ(a.rc, 0);
    EXPECT_EQ(b.rc, 0);
    EXPECT_EQ(c.rc, 0);
    uv_run(&f.loop, UV_RUN_NOWAIT); /* the numeric one is delivered */
    EXPECT_EQ(b.calls, 1);
    EXPECT_EQ(b.status, 0);
    res d;
    csip_uri ud;
    start_uri(f.r, "sip:127.0.0.2", &ud, &d); /* finished, not delivered */
    EXPECT_EQ(a.calls + c.calls + d.calls, 0);
    csip_resolver_free(f.r);
    f.r = NULL;
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(c.calls, 1);
    EXPECT_EQ(d.calls, 1);
    EXPECT_EQ(a.status, CSIP_ERR_CANCELLED);
    EXPECT_EQ(c.status, CSIP_ERR_CANCELLED);
    EXPECT_EQ(d.status, CSIP_ERR_CANCELLED);
    fx_close(&f); /* runs the loop: no callback again, every handle closed */
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(b.calls, 1);
    EXPECT_EQ(c.calls, 1);
    EXPECT_EQ(d.calls, 1);
    close(fd);
}

static void test_free_midway(void)
{
    /* Free at every point of a resolution: after 1, 2, 3 … loop passes. */
    for (int passes = 0; passes < 12; passes++) {
        fixture f;
        ASSERT_OK(fx_dns(&f, false));
        res x;
        csip_uri u;
        start_uri(f.r, "sip:naptr.test", &u, &x);
        for (int i = 0; i < passes && x.calls == 0; i++)
            uv_run(&f.loop, UV_RUN_ONCE);
        bool done = x.calls == 1;
        csip_resolver_free(f.r);
        f.r = NULL;
        EXPECT_EQ(x.calls, 1);
        if (!done)
            EXPECT_LT(x.status, 0);
        fx_close(&f);
        EXPECT_EQ(x.calls, 1);
    }
}

static void test_free_in_callback(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    res a, b, c;
    csip_uri ua, ub, uc;
    start_uri(f.r, "sip:127.0.0.1", &ua, &a);
    start_uri(f.r, "sip:127.0.0.2", &ub, &b);
    start_uri(f.r, "sip:aonly.test", &uc, &c);
    a.free_me = f.r; /* the first callback frees the resolver */
    f.r = NULL;
    uv_run(&f.loop, UV_RUN_DEFAULT);
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(a.status, 0);
    EXPECT_EQ(b.calls, 1);
    EXPECT_LT(b.status, 0);
    EXPECT_EQ(c.calls, 1);
    EXPECT_LT(c.status, 0);
    fx_close(&f);
}

/* A callback that starts the next resolution. */
typedef struct chain {
    csip_resolver *r;
    csip_uri u;
    int left;
    int ok;
} chain;

static void on_chain(void *user_data, int status, const csip_target *t, size_t n)
{
    chain *c = user_data;
    if (status == 0 && n == 1 && t[0].addr.ip[3] == 33)
        c->ok++;
    if (--c->left > 0 && csip_resolve(c->r, &c->u, on_chain, c) != 0)
        c->left = 0;
}

static void test_resolve_in_callback(void)
{
    fixture f;
    ASSERT_OK(fx_dns(&f, false));
    chain c;
    memset(&c, 0, sizeof c);
    c.r = f.r;
    c.left = 5;
    const char *s = "sip:srvonly.test:5090";
    ASSERT_OK(csip_uri_parse(s, strlen(s), 0, &c.u));
    ASSERT_OK(csip_resolve(f.r, &c.u, on_chain, &c));
    uv_run(&f.loop, UV_RUN_DEFAULT);
    EXPECT_EQ(c.left, 0);
    EXPECT_EQ(c.ok, 5);
    fx_close(&f);
}

static void test_api_errors(void)
{
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    csip_resolver *r = NULL;
    csip_resolver_opts o;
    memset(&o, 0, sizeof o);
    o.servers = "not an address";
    EXPECT_EQ(csip_resolver_new(&loop, &o, &r), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(r == NULL);
    o.servers = "";
    EXPECT_EQ(csip_resolver_new(&loop, &o, &r), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_resolver_new(NULL, NULL, &r), CSIP_ERR_INVALID_ARG);
    /* the system's servers: created and freed without a query */
    EXPECT_OK(csip_resolver_new(&loop, NULL, &r));
    if (r) {
        csip_uri u;
        EXPECT_OK(csip_uri_parse("sip:a.test", 10, 0, &u));
        EXPECT_EQ(csip_resolve(r, NULL, on_result, NULL), CSIP_ERR_INVALID_ARG);
        EXPECT_EQ(csip_resolve(r, &u, NULL, NULL), CSIP_ERR_INVALID_ARG);
        csip_resolver_free(r);
    }
    csip_resolver_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop), 0);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_naptr_srv_a),
        CHECK_TEST(test_naptr_sips_only),
        CHECK_TEST(test_srv_only),
        CHECK_TEST(test_a_only),
        CHECK_TEST(test_priority_weight),
        CHECK_TEST(test_not_found),
        CHECK_TEST(test_numeric),
        CHECK_TEST(test_explicit_port),
        CHECK_TEST(test_transport_param),
        CHECK_TEST(test_duplicates),
        CHECK_TEST(test_tcp_fallback),
        CHECK_TEST(test_many_at_once),
        CHECK_TEST(test_server_failure),
        CHECK_TEST(test_free_pending),
        CHECK_TEST(test_free_midway),
        CHECK_TEST(test_free_in_callback),
        CHECK_TEST(test_resolve_in_callback),
        CHECK_TEST(test_api_errors),
    };
    enum { NZONE = sizeof zone / sizeof zone[0] - 1 };
    static const char *opts[NZONE + 2 * BIG_N + 1];
    size_t n = 0;
    for (size_t i = 0; i < NZONE; i++)
        opts[n++] = zone[i];
    for (int i = 1; i <= BIG_N; i++) {
        /* priorities in reverse of the record order: the answer order is not the result */
        snprintf(big_opts[2 * i - 2], sizeof big_opts[0],
                 "--srv-host=_sip._udp.big.test,target-number-%02d.big.test,%d,%d,0", i, 5000 + i,
                 i);
        snprintf(big_opts[2 * i - 1], sizeof big_opts[0],
                 "--host-record=target-number-%02d.big.test,127.0.1.%d", i, i);
    }
    for (int i = BIG_N; i >= 1; i--) {
        opts[n++] = big_opts[2 * i - 2];
        opts[n++] = big_opts[2 * i - 1];
    }
    opts[n] = NULL;
    if (dnsmasq_start(&dns, opts) != 0) {
        fprintf(stderr, "FAIL: cannot start the DNS server the tests need\n");
        printf("0 passed, %zu failed\n", sizeof tests / sizeof tests[0]);
        return 1;
    }
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    dnsmasq_stop(&dns);
    return rc;
}
