/*
 * The network runtime on loopback: endpoints talking to each other and to raw
 * sockets, in one process on one uv loop. Covers listen specs, UDP/TCP/TLS
 * round trips, connection reuse, the idle timeout, the caps on connections
 * and buffered bytes, the answer-and-close on framing errors, §18.2.2
 * response routing, the §18.1.1 switch to TCP (and its UDP fallback), and the
 * transaction timer driven by the loop.
 */
#define _DEFAULT_SOURCE /* uv.h, usleep, mkdtemp */

#include "check.h"
#include "csip/net.h"
#include "net/net_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t loop;

/* ------------------------------------------------------------------------- */
/* A transaction user for the tests */

typedef struct peer {
    csip_endpoint *ep;
    /* server side */
    int n_req;
    csip_addr src;
    char via_tp[8];
    size_t req_body;
    bool hold; /* keep the next request's transaction unanswered */
    csip_txn *held;
    /* client side */
    int n_final;
    int n_ok; /* finals with a 2xx */
    int status;
    char reason[128];
    bool synthesized; /* the final response came with no message */
    int n_stray;
} peer;

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    peer *p = user_data;
    p->n_req++;
    p->src = *src;
    const csip_via *via;
    if (csip_msg_via(req, 0, &via) == 0)
        snprintf(p->via_tp, sizeof p->via_tp, "%.*s", (int)via->transport.len, via->transport.p);
    p->req_body = csip_msg_body(req).len;
    if (!st)
        return;
    if (p->hold) {
        p->hold = false;
        p->held = st;
        return;
    }
    csip_msg *resp;
    if (csip_response_for(req, 200, NULL, CSIP_STR("srv"), NULL, &resp) == 0)
        (void)csip_txn_respond(st, resp, csip_endpoint_now(p->ep));
}

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    (void)ct;
    peer *p = user_data;
    if (status < 200)
        return;
    p->n_final++;
    p->n_ok += status >= 200 && status < 300;
    p->status = status;
    p->synthesized = resp == NULL;
    p->reason[0] = 0;
    if (resp) {
        csip_str r = csip_msg_reason(resp);
        snprintf(p->reason, sizeof p->reason, "%.*s", (int)r.len, r.p);
    }
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    peer *p = user_data;
    if (t == p->held)
        p->held = NULL;
}

static void on_stray(csip_txn_layer *layer, const csip_msg *resp, const csip_addr *src,
                     void *user_data)
{
    (void)layer;
    (void)resp;
    (void)src;
    ((peer *)user_data)->n_stray++;
}

static const csip_txn_callbacks callbacks = {NULL, on_request, on_response, on_stray,
                                             on_terminated};

static int peer_new(peer *p, const char *const *listen, csip_endpoint_opts *opts)
{
    memset(p, 0, sizeof *p);
    csip_endpoint_opts o;
    if (!opts) {
        memset(&o, 0, sizeof o);
        opts = &o;
    }
    opts->listen = listen;
    return csip_endpoint_new(&loop, opts, &callbacks, p, &p->ep);
}

/* Sends OPTIONS ruri to dst from p's first listener of the transport of dst
 * (or its first listener), with a body of body_len octets. */
static int send_options(peer *p, const csip_addr *dst, const char *ruri, size_t body_len)
{
    const csip_addr *l = csip_endpoint_local(p->ep, 0), *a;
    for (size_t i = 0; (a = csip_endpoint_local(p->ep, i)) != NULL; i++)
        if (a->transport == dst->transport) {
            l = a;
            break;
        }
    char hp[64], branch[32], via[160];
    csip_addr_format(l, hp, sizeof hp);
    csip_txn_new_branch(branch, sizeof branch);
    snprintf(via, sizeof via, "SIP/2.0/%s %s;branch=%s;rport",
             csip_transport_name((csip_transport)dst->transport), hp, branch);
    char *body = NULL;
    if (body_len) {
        body = malloc(body_len);
        memset(body, 'x', body_len);
    }
    csip_request_spec s;
    memset(&s, 0, sizeof s);
    s.method = CSIP_STR("OPTIONS");
    s.ruri = csip_str_c(ruri);
    s.via = csip_str_c(via);
    s.from = CSIP_STR("<sip:test@127.0.0.1>;tag=t1");
    s.to = CSIP_STR("<sip:peer@127.0.0.1>");
    s.call_id = csip_str_c(branch + 7);
    s.cseq = 1;
    if (body) {
        s.content_type = CSIP_STR("text/plain");
        s.body = (csip_str){body, body_len};
    }
    csip_msg *req;
    int rc = csip_request_new(&s, NULL, &req);
    free(body);
    if (rc != 0)
        return rc;
    return csip_txn_client_new(csip_endpoint_txn(p->ep), req, dst, NULL, csip_endpoint_now(p->ep),
                               NULL);
}

/* ------------------------------------------------------------------------- */
/* Loop helpers */

static uint64_t ms_now(void)
{
    uv_update_time(&loop);
    return uv_now(&loop);
}

/* Runs the loop until cond holds or ms pass, then expects cond (evaluated
 * again: cond must be idempotent). */
#define EXPECT_WAIT(cond, ms)                                                                      \
    do {                                                                                           \
        uint64_t t0_ = ms_now();                                                                   \
        while (!(cond) && ms_now() - t0_ < (uint64_t)(ms)) {                                       \
            uv_run(&loop, UV_RUN_NOWAIT);                                                          \
            usleep(500);                                                                           \
        }                                                                                          \
        EXPECT_TRUE(cond);                                                                         \
    } while (0)

static void pump(unsigned ms)
{
    uint64_t t0 = ms_now();
    while (ms_now() - t0 < ms) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

static void loop_begin(void)
{
    uv_loop_init(&loop);
}

/* Frees the endpoints and checks that every handle was closed. */
static void loop_end(peer *a, peer *b)
{
    if (a && a->ep)
        csip_endpoint_free(a->ep);
    if (b && b->ep)
        csip_endpoint_free(b->ep);
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop), 0);
}

static csip_addr addr_of(csip_transport tp, uint16_t port)
{
    csip_addr a;
    memset(&a, 0, sizeof a);
    csip_addr_set_ip(&a, CSIP_STR("127.0.0.1"));
    a.transport = (uint8_t)tp;
    a.port = port;
    return a;
}

/* ------------------------------------------------------------------------- */
/* Raw sockets (POSIX, non-blocking) */

static int raw_socket(int type, uint16_t bind_port, uint16_t *bound)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(bind_port);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    if (bound)
        *bound = ntohs(sa.sin_port);
    return fd;
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void raw_sendto(int fd, uint16_t port, const char *data, size_t len)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    ssize_t n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
    (void)n;
}

/* Reads what is there into buf; returns -1 once the peer closed. */
typedef struct rawbuf {
    char data[8192];
    size_t len;
    bool eof;
} rawbuf;

static bool raw_poll(int fd, rawbuf *b)
{
    for (;;) {
        if (b->len + 1 >= sizeof b->data)
            return true;
        ssize_t n = recv(fd, b->data + b->len, sizeof b->data - 1 - b->len, MSG_DONTWAIT);
        if (n > 0) {
            b->len += (size_t)n;
            b->data[b->len] = 0;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            b->eof = true;
        return b->len > 0 || b->eof;
    }
}

static bool accept_once(int lfd, int *afd)
{
    if (*afd < 0)
        *afd = accept(lfd, NULL, NULL);
    return *afd >= 0;
}

/* A free TCP port (bound then released). */
static uint16_t free_port(void)
{
    uint16_t p = 0;
    int fd = raw_socket(SOCK_STREAM, 0, &p);
    if (fd >= 0)
        close(fd);
    return p;
}

static const char *raw_request(const char *method, const char *via, char *out, size_t cap)
{
    snprintf(out, cap,
             "%s sip:srv@127.0.0.1 SIP/2.0\r\n"
             "Via: %s\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:raw@127.0.0.1>;tag=r1\r\n"
             "To: <sip:srv@127.0.0.1>\r\n"
             "Call-ID: raw-%s-%u\r\n"
             "CSeq: 1 %s\r\n"
             "Content-Length: 0\r\n\r\n",
             method, via, method, (unsigned)rand(), method);
    return out;
}

/* ------------------------------------------------------------------------- */
/* Tests */

static void test_listen_specs(void)
{
    loop_begin();
    static const char *bad[] = {
        "udp127.0.0.1:5060",   "sctp:127.0.0.1:5060", "udp:::1:5060",    "udp:[::1:5060",
        "tcp:127.0.0.1:65536", "tcp:localhost:5060",  "udp:127.0.0.1:x", NULL};
    for (size_t i = 0; bad[i]; i++) {
        const char *l[] = {bad[i], NULL};
        peer p;
        EXPECT_EQ(peer_new(&p, l, NULL), CSIP_ERR_INVALID_ARG);
        EXPECT_TRUE(p.ep == NULL);
    }
    /* TLS needs a certificate. */
    const char *tls[] = {"tls:127.0.0.1:0", NULL};
    peer p;
    EXPECT_EQ(peer_new(&p, tls, NULL), CSIP_ERR_INVALID_ARG);

    const char *ok[] = {"udp:127.0.0.1:0", "TCP:127.0.0.1:0", "udp:[::1]:0", NULL};
    peer a;
    int rc = peer_new(&a, ok, NULL);
    if (rc == CSIP_ERR_TRANSPORT) { /* no IPv6 loopback here */
        ok[2] = NULL;
        rc = peer_new(&a, ok, NULL);
    }
    ASSERT_OK(rc);
    const csip_addr *l0 = csip_endpoint_local(a.ep, 0), *l1 = csip_endpoint_local(a.ep, 1);
    ASSERT_TRUE(l0 && l1);
    EXPECT_EQ(l0->transport, CSIP_TP_UDP);
    EXPECT_EQ(l1->transport, CSIP_TP_TCP);
    EXPECT_NE(l0->port, 0);
    EXPECT_NE(l1->port, 0);
    if (ok[2]) {
        const csip_addr *l2 = csip_endpoint_local(a.ep, 2);
        ASSERT_TRUE(l2 != NULL);
        EXPECT_EQ(l2->family, 6);
    }
    EXPECT_TRUE(csip_endpoint_local(a.ep, 5) == NULL);

    /* The same TCP port again: address in use. */
    char spec[64];
    snprintf(spec, sizeof spec, "tcp:127.0.0.1:%u", (unsigned)l1->port);
    const char *dup[] = {spec, NULL};
    peer b;
    EXPECT_EQ(peer_new(&b, dup, NULL), CSIP_ERR_TRANSPORT);
    loop_end(&a, NULL);
}

static void round_trip(csip_transport tp)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", "tcp:127.0.0.1:0", NULL};
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    ASSERT_OK(peer_new(&cli, ls, NULL));
    csip_addr dst = addr_of(tp, csip_endpoint_local(srv.ep, tp == CSIP_TP_UDP ? 0 : 1)->port);
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(cli.status, 200);
    EXPECT_FALSE(cli.synthesized);
    EXPECT_EQ(srv.n_req, 1);
    EXPECT_EQ(srv.src.transport, tp);
    if (tp == CSIP_TP_UDP) {
        EXPECT_EQ(srv.src.port, csip_endpoint_local(cli.ep, 0)->port);
        EXPECT_EQ(srv.src.conn, 0);
    } else {
        EXPECT_NE(srv.src.conn, 0);
        EXPECT_EQ(csip__endpoint_conn_count(cli.ep), 1);
        EXPECT_EQ(csip__endpoint_conn_count(srv.ep), 1);
    }
    loop_end(&srv, &cli);
}

static void test_udp_round_trip(void)
{
    round_trip(CSIP_TP_UDP);
}

static void test_tcp_round_trip(void)
{
    round_trip(CSIP_TP_TCP);
}

/* IPv6 over UDP and TCP (skipped where the host has no ::1). */
static void test_ipv6_round_trip(void)
{
    loop_begin();
    const char *ls[] = {"udp:[::1]:0", "tcp:[::1]:0", NULL};
    peer srv, cli;
    int rc = peer_new(&srv, ls, NULL);
    if (rc == CSIP_ERR_TRANSPORT) {
        printf("test_ipv6_round_trip: no IPv6 loopback, skipped\n");
        loop_end(NULL, NULL);
        return;
    }
    ASSERT_OK(rc);
    ASSERT_OK(peer_new(&cli, ls, NULL));
    for (int i = 0; i < 2; i++) {
        csip_addr dst = *csip_endpoint_local(srv.ep, (size_t)i);
        dst.conn = 0;
        ASSERT_OK(send_options(&cli, &dst, "sip:srv@[::1]", 0));
        EXPECT_WAIT(cli.n_final == i + 1, 3000);
        EXPECT_EQ(cli.status, 200);
        EXPECT_EQ(srv.src.family, 6);
        EXPECT_EQ(srv.src.transport, dst.transport);
    }
    loop_end(&srv, &cli);
}

/* Two transactions to the same address share one connection. */
static void test_tcp_reuse(void)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    ASSERT_OK(peer_new(&cli, ls, NULL));
    csip_addr dst = addr_of(CSIP_TP_TCP, csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0));
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0)); /* while connecting */
    EXPECT_WAIT(cli.n_final == 2, 3000);
    uint64_t first = srv.src.conn;
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0)); /* once open */
    EXPECT_WAIT(cli.n_final == 3, 3000);
    EXPECT_EQ(srv.n_req, 3);
    EXPECT_EQ(srv.src.conn, first);
    EXPECT_EQ(csip__endpoint_conn_count(cli.ep), 1);
    EXPECT_EQ(csip__endpoint_conn_count(srv.ep), 1);
    loop_end(&srv, &cli);
}

static void test_idle_timeout(void)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    csip_endpoint_opts o1, o2;
    memset(&o1, 0, sizeof o1);
    memset(&o2, 0, sizeof o2);
    o1.idle_timeout_ms = 150;
    o2.idle_timeout_ms = 60000;
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, &o1));
    ASSERT_OK(peer_new(&cli, ls, &o2));
    csip_addr dst = addr_of(CSIP_TP_TCP, csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(csip__endpoint_conn_count(srv.ep), 1);
    uint64_t t0 = ms_now();
    /* The server closes; the client sees the close. */
    EXPECT_WAIT(csip__endpoint_conn_count(srv.ep) == 0 && csip__endpoint_conn_count(cli.ep) == 0,
                3000);
    uint64_t took = ms_now() - t0;
    EXPECT_GE(took, 100);
    EXPECT_LE(took, 1000);
    /* A new request opens a new connection. */
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0));
    EXPECT_WAIT(cli.n_final == 2, 3000);
    EXPECT_EQ(cli.status, 200);
    loop_end(&srv, &cli);
}

/* More bytes than max_conn_buffer without a complete message: closed. */
static void test_buffer_cap(void)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    csip_endpoint_opts o;
    memset(&o, 0, sizeof o);
    o.max_conn_buffer = 2048;
    peer srv;
    ASSERT_OK(peer_new(&srv, ls, &o));
    int fd = raw_connect(csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_TRUE(fd >= 0);
    char big[4096];
    memcpy(big, "OPTIONS sip:a@b SIP/2.0\r\nX-Long: ", 33);
    memset(big + 33, 'a', sizeof big - 33);
    ssize_t n = send(fd, big, sizeof big, 0);
    EXPECT_EQ(n, (ssize_t)sizeof big);
    rawbuf rb;
    memset(&rb, 0, sizeof rb);
    EXPECT_WAIT(raw_poll(fd, &rb) && rb.eof, 3000);
    EXPECT_EQ(rb.len, 0);
    EXPECT_WAIT(csip__endpoint_conn_count(srv.ep) == 0, 1000);
    EXPECT_EQ(srv.n_req, 0);
    close(fd);
    loop_end(&srv, NULL);
}

static void test_connection_cap(void)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    csip_endpoint_opts o;
    memset(&o, 0, sizeof o);
    o.max_connections = 1;
    peer srv;
    ASSERT_OK(peer_new(&srv, ls, &o));
    uint16_t port = csip_endpoint_local(srv.ep, 0)->port;
    int a = raw_connect(port);
    ASSERT_TRUE(a >= 0);
    EXPECT_WAIT(csip__endpoint_conn_count(srv.ep) == 1, 1000);
    int b = raw_connect(port);
    ASSERT_TRUE(b >= 0);
    rawbuf rb;
    memset(&rb, 0, sizeof rb);
    EXPECT_WAIT(raw_poll(b, &rb) && rb.eof, 2000);
    EXPECT_EQ(csip__endpoint_conn_count(srv.ep), 1);
    /* The first still works. */
    char req[512];
    raw_request("OPTIONS", "SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKcap1", req, sizeof req);
    EXPECT_EQ(send(a, req, strlen(req), 0), (ssize_t)strlen(req));
    rawbuf ra;
    memset(&ra, 0, sizeof ra);
    EXPECT_WAIT(raw_poll(a, &ra) && strstr(ra.data, "\r\n\r\n"), 2000);
    EXPECT_TRUE(strncmp(ra.data, "SIP/2.0 200", 11) == 0);
    close(a);
    close(b);
    loop_end(&srv, NULL);
}

/* RFC 4475 ncl and mcl01 over TCP: a 400, then the connection closes. */
static void framing_case(const char *file, const char *reason)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    peer srv;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    char path[512];
    snprintf(path, sizeof path, "%s/rfc4475/%s", CSIP_TEST_DATA, file);
    size_t len;
    char *data = check_read_file(path, &len);
    ASSERT_TRUE(data != NULL);
    int fd = raw_connect(csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_TRUE(fd >= 0);
    EXPECT_EQ(send(fd, data, len, 0), (ssize_t)len);
    free(data);
    rawbuf rb;
    memset(&rb, 0, sizeof rb);
    EXPECT_WAIT(raw_poll(fd, &rb) && rb.eof, 3000);
    EXPECT_TRUE(strncmp(rb.data, "SIP/2.0 400 ", 12) == 0);
    EXPECT_TRUE(strstr(rb.data, reason) != NULL);
    EXPECT_EQ(srv.n_req, 0);
    close(fd);
    EXPECT_WAIT(csip__endpoint_conn_count(srv.ep) == 0 && srv.ep->n_conns == 0, 3000);
    loop_end(&srv, NULL);
}

static void test_framing_ncl(void)
{
    framing_case("ncl.dat", "Invalid Content-Length");
}

static void test_framing_mcl01(void)
{
    framing_case("mcl01.dat", "Multiple Content-Length");
}

/* §18.2.2 over TCP: the response goes back on the request's connection,
 * whatever the Via says. */
static void test_route_tcp_same_connection(void)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    peer srv;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    int fd = raw_connect(csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_TRUE(fd >= 0);
    char req[512];
    raw_request("OPTIONS", "SIP/2.0/TCP 192.0.2.1:9;branch=z9hG4bKsame1", req, sizeof req);
    EXPECT_EQ(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    rawbuf rb;
    memset(&rb, 0, sizeof rb);
    EXPECT_WAIT(raw_poll(fd, &rb) && strstr(rb.data, "\r\n\r\n"), 2000);
    EXPECT_TRUE(strncmp(rb.data, "SIP/2.0 200", 11) == 0);
    EXPECT_TRUE(strstr(rb.data, "branch=z9hG4bKsame1") != NULL);
    close(fd);
    loop_end(&srv, NULL);
}

/* §18.2.2 over TCP when the connection has closed: a new connection to the
 * source address and the sent-by port. */
static void test_route_tcp_reconnect(void)
{
    loop_begin();
    const char *ls[] = {"tcp:127.0.0.1:0", NULL};
    peer srv;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    uint16_t lport;
    int lfd = raw_socket(SOCK_STREAM, 0, &lport);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_EQ(listen(lfd, 4), 0);
    fcntl(lfd, F_SETFL, O_NONBLOCK);

    int fd = raw_connect(csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_TRUE(fd >= 0);
    char via[128], req[512];
    snprintf(via, sizeof via, "SIP/2.0/TCP 127.0.0.1:%u;branch=z9hG4bKreconn1", (unsigned)lport);
    raw_request("OPTIONS", via, req, sizeof req);
    srv.hold = true;
    EXPECT_EQ(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    EXPECT_WAIT(srv.held != NULL, 2000);
    close(fd);
    EXPECT_WAIT(csip__endpoint_conn_count(srv.ep) == 0, 2000);
    csip_msg *resp;
    ASSERT_OK(csip_response_for(csip_txn_request(srv.held), 200, NULL, CSIP_STR("x"), NULL, &resp));
    ASSERT_OK(csip_txn_respond(srv.held, resp, csip_endpoint_now(srv.ep)));
    int afd = -1;
    EXPECT_WAIT(accept_once(lfd, &afd), 2000);
    if (afd >= 0) {
        fcntl(afd, F_SETFL, O_NONBLOCK);
        rawbuf rb;
        memset(&rb, 0, sizeof rb);
        EXPECT_WAIT(raw_poll(afd, &rb) && strstr(rb.data, "\r\n\r\n"), 2000);
        EXPECT_TRUE(strncmp(rb.data, "SIP/2.0 200", 11) == 0);
        EXPECT_TRUE(strstr(rb.data, "branch=z9hG4bKreconn1") != NULL);
        close(afd);
    }
    close(lfd);
    loop_end(&srv, NULL);
}

/* §18.2.2 and RFC 3581 over UDP: with rport, to the source port; without,
 * to the sent-by port. */
static void test_route_udp(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    peer srv;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    uint16_t sport = csip_endpoint_local(srv.ep, 0)->port;
    uint16_t p1, p2;
    int s1 = raw_socket(SOCK_DGRAM, 0, &p1), s2 = raw_socket(SOCK_DGRAM, 0, &p2);
    ASSERT_TRUE(s1 >= 0 && s2 >= 0);
    char via[128], req[512];
    rawbuf rb;

    /* rport: back to s1 although the Via names s2's port */
    snprintf(via, sizeof via, "SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKudp1;rport", (unsigned)p2);
    raw_request("OPTIONS", via, req, sizeof req);
    raw_sendto(s1, sport, req, strlen(req));
    memset(&rb, 0, sizeof rb);
    EXPECT_WAIT(raw_poll(s1, &rb), 2000);
    EXPECT_TRUE(strncmp(rb.data, "SIP/2.0 200", 11) == 0);
    EXPECT_TRUE(strstr(rb.data, "branch=z9hG4bKudp1") != NULL);

    /* no rport: to the sent-by port, s2 */
    snprintf(via, sizeof via, "SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKudp2", (unsigned)p2);
    raw_request("OPTIONS", via, req, sizeof req);
    raw_sendto(s1, sport, req, strlen(req));
    memset(&rb, 0, sizeof rb);
    EXPECT_WAIT(raw_poll(s2, &rb), 2000);
    EXPECT_TRUE(strstr(rb.data, "branch=z9hG4bKudp2") != NULL);
    memset(&rb, 0, sizeof rb);
    pump(50);
    EXPECT_FALSE(raw_poll(s1, &rb));
    EXPECT_EQ(srv.n_req, 2);
    close(s1);
    close(s2);
    loop_end(&srv, NULL);
}

/* §18.1.1: a request over UDP larger than mtu - 200 goes over TCP, its top
 * Via saying TCP; the UDP transaction's retransmissions are not repeated on
 * the connection. */
static void test_udp_to_tcp_switch(void)
{
    loop_begin();
    peer srv, cli;
    int rc = CSIP_ERR_TRANSPORT;
    for (int tries = 0; tries < 10 && rc == CSIP_ERR_TRANSPORT; tries++) {
        char u[64], t[64];
        uint16_t port = free_port();
        snprintf(u, sizeof u, "udp:127.0.0.1:%u", (unsigned)port);
        snprintf(t, sizeof t, "tcp:127.0.0.1:%u", (unsigned)port);
        const char *ls[] = {u, t, NULL};
        rc = peer_new(&srv, ls, NULL);
    }
    ASSERT_OK(rc);
    csip_endpoint_opts o;
    memset(&o, 0, sizeof o);
    o.txn.timers.t1_ms = 20; /* retransmissions while the server holds the request */
    const char *cls[] = {"udp:127.0.0.1:0", NULL};
    ASSERT_OK(peer_new(&cli, cls, &o));
    csip_addr dst = addr_of(CSIP_TP_UDP, csip_endpoint_local(srv.ep, 0)->port);

    /* small: UDP */
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 100));
    EXPECT_WAIT(cli.n_final == 1, 2000);
    EXPECT_EQ(srv.src.transport, CSIP_TP_UDP);
    EXPECT_CSTR(srv.via_tp, "UDP");

    /* large: TCP */
    srv.hold = true;
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 1400));
    EXPECT_WAIT(srv.held != NULL, 2000);
    EXPECT_EQ(srv.src.transport, CSIP_TP_TCP);
    EXPECT_CSTR(srv.via_tp, "TCP");
    EXPECT_EQ(srv.req_body, 1400);
    pump(150); /* several Timer E periods */
    csip_txn_stats st;
    csip_txn_layer_stats(csip_endpoint_txn(cli.ep), &st);
    EXPECT_GE(st.retransmitted, 2);
    csip_txn_layer_stats(csip_endpoint_txn(srv.ep), &st);
    EXPECT_EQ(st.received, 2); /* one small, one large: no repeats over TCP */
    csip_msg *resp;
    ASSERT_TRUE(srv.held != NULL);
    ASSERT_OK(csip_response_for(csip_txn_request(srv.held), 200, NULL, CSIP_STR("x"), NULL, &resp));
    ASSERT_OK(csip_txn_respond(srv.held, resp, csip_endpoint_now(srv.ep)));
    EXPECT_WAIT(cli.n_final == 2, 2000);
    EXPECT_EQ(cli.status, 200);
    EXPECT_EQ(csip__endpoint_conn_count(cli.ep), 1);
    loop_end(&srv, &cli);
}

/* ... and back to UDP when the TCP connection is refused. */
static void test_udp_to_tcp_fallback(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    ASSERT_OK(peer_new(&cli, ls, NULL));
    csip_addr dst = addr_of(CSIP_TP_UDP, csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 1400));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(cli.status, 200);
    EXPECT_EQ(srv.src.transport, CSIP_TP_UDP);
    EXPECT_CSTR(srv.via_tp, "UDP");
    EXPECT_EQ(srv.req_body, 1400);
    loop_end(&srv, &cli);
}

static void test_tcp_refused(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    peer cli;
    ASSERT_OK(peer_new(&cli, ls, NULL));
    csip_addr dst = addr_of(CSIP_TP_TCP, free_port());
    ASSERT_OK(send_options(&cli, &dst, "sip:nobody@127.0.0.1", 0));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(cli.status, 503);
    EXPECT_TRUE(strstr(cli.reason, "TCP connect failed") != NULL);
    loop_end(&cli, NULL);
}

/* UDP datagrams of one loop iteration leave together (sendmmsg): a burst of
 * more requests than one batch holds, and their responses, all arrive. */
static void test_udp_burst(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    ASSERT_OK(peer_new(&cli, ls, NULL));
    csip_addr dst = addr_of(CSIP_TP_UDP, csip_endpoint_local(srv.ep, 0)->port);
    enum { N = 300 }; /* several batches, sent from one callback */
    for (int i = 0; i < N; i++)
        ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", i % 3 ? 0 : 600));
    EXPECT_WAIT(cli.n_final == N, 5000);
    EXPECT_EQ(cli.n_ok, N);
    EXPECT_EQ(srv.n_req, N);
    csip_txn_stats st;
    csip_txn_layer_stats(csip_endpoint_txn(cli.ep), &st);
    EXPECT_EQ(st.retransmitted, 0); /* none lost on the way: no Timer E retransmission */
    loop_end(&srv, &cli);
}

/* A datagram the kernel refuses when the batch leaves (port 0: EINVAL) ends
 * its client transaction with a 503 of our own, as a failed connection does. */
static void test_udp_refused(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    peer cli;
    ASSERT_OK(peer_new(&cli, ls, NULL));
    csip_addr dst = addr_of(CSIP_TP_UDP, 0);
    ASSERT_OK(send_options(&cli, &dst, "sip:nobody@127.0.0.1", 0));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(cli.status, 503);
    EXPECT_TRUE(strstr(cli.reason, "UDP send failed") != NULL);
    loop_end(&cli, NULL);
}

/* The uv timer drives Timer E and F: 408 after 64*T1. */
static void test_timer_f(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    csip_endpoint_opts o;
    memset(&o, 0, sizeof o);
    o.txn.timers.t1_ms = 10;
    peer cli;
    ASSERT_OK(peer_new(&cli, ls, &o));
    uint16_t port;
    int sink = raw_socket(SOCK_DGRAM, 0, &port);
    ASSERT_TRUE(sink >= 0);
    csip_addr dst = addr_of(CSIP_TP_UDP, port);
    uint64_t t0 = ms_now();
    ASSERT_OK(send_options(&cli, &dst, "sip:nobody@127.0.0.1", 0));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    uint64_t took = ms_now() - t0;
    EXPECT_EQ(cli.status, 408);
    EXPECT_TRUE(cli.synthesized);
    EXPECT_GE(took, 630);
    EXPECT_LE(took, 1500);
    /* E: 10, 20, 40, 80, then T2-capped… at least 5 copies arrived */
    int copies = 0;
    char buf[2048];
    while (recv(sink, buf, sizeof buf, MSG_DONTWAIT) > 0)
        copies++;
    EXPECT_GE(copies, 5);
    EXPECT_WAIT(csip_txn_layer_count(csip_endpoint_txn(cli.ep)) == 0, 1000);
    close(sink);
    loop_end(&cli, NULL);
}

/* A TLS handshake that never completes: the transaction times out (408);
 * when the connection then closes, the 503 made for its queued request finds
 * no transaction and is not passed up as a stray response. */
static void test_late_failure_not_stray(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", NULL};
    csip_endpoint_opts o;
    memset(&o, 0, sizeof o);
    o.txn.timers.t1_ms = 5;
    o.tls_no_verify = true;
    peer cli;
    ASSERT_OK(peer_new(&cli, ls, &o));
    uint16_t lport;
    int lfd = raw_socket(SOCK_STREAM, 0, &lport);
    ASSERT_TRUE(lfd >= 0);
    ASSERT_EQ(listen(lfd, 4), 0);
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    csip_addr dst = addr_of(CSIP_TP_TLS, lport);
    ASSERT_OK(send_options(&cli, &dst, "sips:srv@127.0.0.1", 0));
    int afd = -1;
    EXPECT_WAIT(accept_once(lfd, &afd), 2000);
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(cli.status, 408);
    EXPECT_EQ(csip__endpoint_conn_count(cli.ep), 1); /* still in its handshake */
    if (afd >= 0)
        close(afd);
    EXPECT_WAIT(csip__endpoint_conn_count(cli.ep) == 0, 2000);
    pump(50);
    EXPECT_EQ(cli.n_final, 1);
    EXPECT_EQ(cli.n_stray, 0);
    close(lfd);
    loop_end(&cli, NULL);
}

/* Freeing an endpoint with live connections, queued messages and
 * transactions releases everything (ASan checks). */
static void test_free_busy(void)
{
    loop_begin();
    const char *ls[] = {"udp:127.0.0.1:0", "tcp:127.0.0.1:0", NULL};
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, NULL));
    ASSERT_OK(peer_new(&cli, ls, NULL));
    srv.hold = true;
    csip_addr dst = addr_of(CSIP_TP_TCP, csip_endpoint_local(srv.ep, 1)->port);
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0));
    EXPECT_WAIT(srv.held != NULL, 2000);
    ASSERT_OK(send_options(&cli, &dst, "sip:srv@127.0.0.1", 0));
    csip_addr nowhere = addr_of(CSIP_TP_TCP, free_port());
    ASSERT_OK(send_options(&cli, &nowhere, "sip:srv@127.0.0.1", 0)); /* still connecting */
    loop_end(&srv, &cli);
}

/* ------------------------------------------------------------------------- */
/* TLS, with a self-signed certificate made here */

static char tls_dir[64];
static char tls_cert[128], tls_key[128];

static bool make_cert(const char *san)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool ok = false;
    if (!k || !x)
        goto out;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"csip test", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    if (!ext)
        goto out;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!X509_sign(x, k, EVP_sha256()))
        goto out;
    FILE *f = fopen(tls_cert, "w");
    if (!f)
        goto out;
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(tls_key, "w");
    if (!f)
        goto out;
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    ok = true;
out:
    X509_free(x);
    EVP_PKEY_free(k);
    return ok;
}

/* ruri_host: the host of the Request-URI, which the certificate must match. */
static void tls_case(const char *san, const char *ruri_host, bool no_verify, int want,
                     const char *want_reason)
{
    loop_begin();
    snprintf(tls_dir, sizeof tls_dir, "/tmp/csip-net-XXXXXX");
    ASSERT_TRUE(mkdtemp(tls_dir) != NULL);
    snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
    snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
    ASSERT_TRUE(make_cert(san));
    const char *ls[] = {"tls:127.0.0.1:0", NULL};
    csip_endpoint_opts so, co;
    memset(&so, 0, sizeof so);
    memset(&co, 0, sizeof co);
    so.tls_cert_file = tls_cert;
    so.tls_key_file = tls_key;
    co.tls_ca_file = tls_cert;
    co.tls_no_verify = no_verify;
    peer srv, cli;
    ASSERT_OK(peer_new(&srv, ls, &so));
    const char *cls[] = {"udp:127.0.0.1:0", NULL};
    ASSERT_OK(peer_new(&cli, cls, &co));
    char uri[128];
    snprintf(uri, sizeof uri, "sips:srv@%s:%u", ruri_host,
             (unsigned)csip_endpoint_local(srv.ep, 0)->port);
    csip_addr dst = addr_of(CSIP_TP_TLS, csip_endpoint_local(srv.ep, 0)->port);
    ASSERT_OK(send_options(&cli, &dst, uri, 0));
    EXPECT_WAIT(cli.n_final == 1, 3000);
    EXPECT_EQ(cli.status, want);
    if (want_reason)
        EXPECT_TRUE(strstr(cli.reason, want_reason) != NULL);
    if (want == 200) {
        EXPECT_EQ(srv.src.transport, CSIP_TP_TLS);
        EXPECT_CSTR(srv.via_tp, "TLS");
        /* the connection is reused */
        ASSERT_OK(send_options(&cli, &dst, uri, 0));
        EXPECT_WAIT(cli.n_final == 2, 3000);
        EXPECT_EQ(cli.status, 200);
        EXPECT_EQ(csip__endpoint_conn_count(cli.ep), 1);
    } else {
        EXPECT_EQ(srv.n_req, 0);
    }
    loop_end(&srv, &cli);
    remove(tls_cert);
    remove(tls_key);
    rmdir(tls_dir);
}

static void test_tls_name_ok(void)
{
    tls_case("DNS:localhost,IP:127.0.0.1", "localhost", false, 200, NULL);
}

static void test_tls_ip_ok(void)
{
    tls_case("DNS:localhost,IP:127.0.0.1", "127.0.0.1", false, 200, NULL);
}

static void test_tls_name_mismatch(void)
{
    tls_case("DNS:other.example", "localhost", false, 503, "hostname mismatch");
}

static void test_tls_ip_mismatch(void)
{
    tls_case("DNS:localhost", "127.0.0.1", false, 503, "IP address mismatch");
}

static void test_tls_no_verify(void)
{
    tls_case("DNS:other.example", "localhost", true, 200, NULL);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(test_listen_specs),
        CHECK_TEST(test_udp_round_trip),
        CHECK_TEST(test_tcp_round_trip),
        CHECK_TEST(test_ipv6_round_trip),
        CHECK_TEST(test_tcp_reuse),
        CHECK_TEST(test_idle_timeout),
        CHECK_TEST(test_buffer_cap),
        CHECK_TEST(test_connection_cap),
        CHECK_TEST(test_framing_ncl),
        CHECK_TEST(test_framing_mcl01),
        CHECK_TEST(test_route_tcp_same_connection),
        CHECK_TEST(test_route_tcp_reconnect),
        CHECK_TEST(test_route_udp),
        CHECK_TEST(test_udp_to_tcp_switch),
        CHECK_TEST(test_udp_to_tcp_fallback),
        CHECK_TEST(test_tcp_refused),
        CHECK_TEST(test_timer_f),
        CHECK_TEST(test_late_failure_not_stray),
        CHECK_TEST(test_udp_burst),
        CHECK_TEST(test_udp_refused),
        CHECK_TEST(test_free_busy),
        CHECK_TEST(test_tls_name_ok),
        CHECK_TEST(test_tls_ip_ok),
        CHECK_TEST(test_tls_name_mismatch),
        CHECK_TEST(test_tls_ip_mismatch),
        CHECK_TEST(test_tls_no_verify),
    };
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
