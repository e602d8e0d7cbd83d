/*
 * The endpoint: listeners, UDP, the transaction layer's timer and send
 * callback, and the messages whose connection failed (include/csip/net.h,
 * docs/internals/net.md). Stream connections live in conn.c, TLS in tls.c.
 */
#define _GNU_SOURCE /* sendmmsg */
#include "net/net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Addresses */

void csip__net_to_sockaddr(const csip_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        memcpy(&s6->sin6_addr, a->ip, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
    }
}

void csip__net_from_sockaddr(const struct sockaddr *sa, csip_transport tp, csip_addr *a)
{
    memset(a, 0, sizeof *a);
    a->transport = (uint8_t)tp;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(&s6->sin6_addr, mapped, 12) == 0) {
            /* An IPv4-mapped peer is an IPv4 peer. */
            a->family = 4;
            memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
        } else {
            a->family = 6;
            memcpy(a->ip, &s6->sin6_addr, 16);
        }
        a->port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = 4;
        memcpy(a->ip, &s4->sin_addr, 4);
        a->port = ntohs(s4->sin_port);
    }
}

/*
 * A listen spec: "udp:127.0.0.1:5060", "tcp:[::1]:0", "tls:0.0.0.0:5061".
 * The transport is case-insensitive; IPv6 addresses need brackets; without a
 * port, 5060 (5061 for TLS).
 */
static int parse_spec(const char *spec, csip_addr *out)
{
    memset(out, 0, sizeof *out);
    if (!spec)
        return CSIP_ERR_INVALID_ARG;
    const char *colon = strchr(spec, ':');
    if (!colon)
        return CSIP_ERR_INVALID_ARG;
    int tp = csip_transport_lookup((csip_str){spec, (size_t)(colon - spec)});
    if (tp != CSIP_TP_UDP && tp != CSIP_TP_TCP && tp != CSIP_TP_TLS)
        return CSIP_ERR_INVALID_ARG;
    out->transport = (uint8_t)tp;
    const char *host = colon + 1, *end = host + strlen(host), *port = NULL;
    const char *host_end;
    if (*host == '[') {
        const char *rb = strchr(host, ']');
        if (!rb)
            return CSIP_ERR_INVALID_ARG;
        host_end = rb + 1;
        if (*host_end == ':')
            port = host_end + 1;
        else if (*host_end != '\0')
            return CSIP_ERR_INVALID_ARG;
    } else {
        const char *pc = strchr(host, ':');
        if (pc && strchr(pc + 1, ':'))
            return CSIP_ERR_INVALID_ARG; /* IPv6 without brackets */
        host_end = pc ? pc : end;
        port = pc ? pc + 1 : NULL;
    }
    if (csip_addr_set_ip(out, (csip_str){host, (size_t)(host_end - host)}) != 0)
        return CSIP_ERR_INVALID_ARG;
    if (port) {
        uint32_t v;
        if (csip_str_to_u32((csip_str){port, (size_t)(end - port)}, &v) != 0 || v > 65535)
            return CSIP_ERR_INVALID_ARG;
        out->port = (uint16_t)v;
    } else {
        out->port = tp == CSIP_TP_TLS ? 5061 : 5060;
    }
    return 0;
}

/* libuv errors at the API boundary: memory, or a transport error (address
 * in use, unreachable, …). */
static int uv_to_csip(int uv_err)
{
    return uv_err == UV_ENOMEM || uv_err == UV_ENOBUFS ? CSIP_ERR_NOMEM : CSIP_ERR_TRANSPORT;
}

/* ------------------------------------------------------------------------- */
/* Handles */

void csip__net_handle_closed(csip_endpoint *ep)
{
    if (--ep->handles > 0 || !ep->freeing)
        return;
    const csip_mem *mem = ep->mem;
    csip__free(mem, ep->ls);
    csip__free(mem, ep->hid);
    csip__free(mem, ep->haddr);
    csip__free(mem, ep->rbuf);
    csip__free(mem, ep->mbuf);
    csip__free(mem, ep->batch);
    csip__free(mem, ep->pbuf);
    csip__free(mem, ep->tls_ca_file);
    csip__free(mem, ep->tls_cert_file);
    csip__free(mem, ep->tls_key_file);
    csip__free(mem, ep);
}

static void on_handle_closed(uv_handle_t *h)
{
    csip__net_handle_closed(h->data);
}

static void close_handle(csip_endpoint *ep, uv_handle_t *h)
{
    h->data = ep;
    uv_close(h, on_handle_closed);
}

/* ------------------------------------------------------------------------- */
/* UDP */

/* The socket is readable: datagrams are read NET_MMSG at a time until a
 * read comes back short (the socket was drained a moment ago; what arrives
 * later makes it readable again), at most NET_MMSG_ROUNDS times. */
static void udp_drain(net_listener *l, int fd)
{
    csip_endpoint *ep = l->ep;
    struct mmsghdr mm[NET_MMSG];
    struct iovec iov[NET_MMSG];
    struct sockaddr_storage ss[NET_MMSG];
    for (unsigned round = 0; round < NET_MMSG_ROUNDS && !ep->freeing; round++) {
        for (unsigned i = 0; i < NET_MMSG; i++) {
            iov[i] = (struct iovec){ep->mbuf + (size_t)i * NET_RBUF, NET_RBUF};
            mm[i] = (struct mmsghdr){
                .msg_hdr = {.msg_name = &ss[i],
                            .msg_namelen = sizeof ss[i],
                            .msg_iov = &iov[i],
                            .msg_iovlen = 1},
            };
        }
        int n;
        do
            n = recvmmsg(fd, mm, NET_MMSG, MSG_DONTWAIT, NULL);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            return; /* EAGAIN: drained; other errors (ICMP) concern no datagram */
        uint64_t now = uv_now(ep->loop);
        for (int i = 0; i < n && !ep->freeing; i++) {
            if ((mm[i].msg_hdr.msg_flags & MSG_TRUNC) || mm[i].msg_len == 0)
                continue;
            csip_addr src;
            csip__net_from_sockaddr((const struct sockaddr *)&ss[i], CSIP_TP_UDP, &src);
            (void)csip_txn_layer_recv(ep->txn, iov[i].iov_base, mm[i].msg_len, &src, now);
        }
        if ((unsigned)n < NET_MMSG)
            return;
    }
}

static void udp_readable(uv_poll_t *h, int status, int events)
{
    net_listener *l = h->data;
    if (status < 0 || !(events & UV_READABLE))
        return;
    udp_drain(l, l->rfd);
}

/* ---- connected sockets of busy peers (net_int.h, NET_PEERS) ---- */

static void peer_close(csip_endpoint *ep, size_t k);

static void peer_readable(uv_poll_t *h, int status, int events)
{
    udp_peer *p = h->data;
    if (status < 0) {
        /* An error on the connected socket (the peer's port was unreachable
         * a moment: ICMP), for which libuv stopped polling it: cleared, and
         * polling goes on; the datagrams behind it are read as usual. */
        int err = 0;
        socklen_t len = sizeof err;
        (void)getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (uv_poll_start(&p->poll, UV_READABLE, peer_readable) != 0) {
            for (size_t k = 0; k < p->ep->n_peers; k++)
                if (p->ep->peers[k] == p) {
                    peer_close(p->ep, k);
                    return;
                }
        }
        events = UV_READABLE;
    }
    if (events & UV_READABLE)
        udp_drain(p->l, p->fd);
}

static void peer_closed(uv_handle_t *h)
{
    udp_peer *p = h->data;
    csip_endpoint *ep = p->ep;
    close(p->fd);
    csip__free(ep->mem, p);
    csip__net_handle_closed(ep);
}

/* Closes peer socket k: the peer's datagrams go to the listener again. */
static void peer_close(csip_endpoint *ep, size_t k)
{
    udp_peer *p = ep->peers[k];
    ep->peers[k] = ep->peers[--ep->n_peers];
    ep->peers[ep->n_peers] = NULL;
    uv_close((uv_handle_t *)&p->poll, peer_closed);
}

static bool same_dest(const struct mmsghdr *m, const struct sockaddr_storage *ss, socklen_t len)
{
    return m->msg_hdr.msg_namelen == len && memcmp(m->msg_hdr.msg_name, ss, len) == 0;
}

static udp_peer *peer_find(csip_endpoint *ep, const net_listener *l, const struct mmsghdr *m)
{
    for (size_t k = 0; k < ep->n_peers; k++)
        if (ep->peers[k]->l == l && same_dest(m, &ep->peers[k]->ss, ep->peers[k]->sslen))
            return ep->peers[k];
    return NULL;
}

/* A socket on l's address and port, connected to the destination of m. */
static udp_peer *peer_open(csip_endpoint *ep, net_listener *l, const struct mmsghdr *m)
{
    if (!l->reuseport || ep->n_peers == NET_PEERS)
        return NULL;
    udp_peer *p = csip__malloc(ep->mem, sizeof *p);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->ep = ep;
    p->l = l;
    p->sslen = m->msg_hdr.msg_namelen;
    memcpy(&p->ss, m->msg_hdr.msg_name, p->sslen);
    p->last_ms = uv_now(ep->loop);
    struct sockaddr_storage local;
    csip__net_to_sockaddr(&l->local, &local);
    int v6 = l->local.family == 6, one = 1, buf = (int)ep->udp_buffer;
    p->fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0 || setsockopt(p->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (v6 && setsockopt(p->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(p->fd, (const struct sockaddr *)&local,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0 ||
        connect(p->fd, (const struct sockaddr *)&p->ss, p->sslen) != 0 ||
        uv_poll_init_socket(ep->loop, &p->poll, p->fd) != 0) {
        if (p->fd >= 0)
            close(p->fd);
        csip__free(ep->mem, p);
        /* not tried again for this listener: a failure here would cost its
         * system calls at every busy batch, and the listener serves anyway */
        l->reuseport = false;
        return NULL;
    }
    /* best effort, as the listener's */
    (void)setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    (void)setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ep->handles++;
    p->poll.data = p;
    ep->peers[ep->n_peers++] = p;
    if (uv_poll_start(&p->poll, UV_READABLE, peer_readable) != 0) {
        peer_close(ep, ep->n_peers - 1);
        return NULL;
    }
    return p;
}

typedef struct udp_req {
    uv_udp_send_t req;
    const csip_mem *mem;
    char data[];
} udp_req;

static void udp_sent(uv_udp_send_t *req, int status)
{
    (void)status; /* datagrams are unreliable: the transaction layer retransmits */
    udp_req *r = (udp_req *)req;
    csip__free(r->mem, r);
}

/* Queues a copy of a datagram on the socket's libuv send queue (the socket
 * would block, or earlier datagrams wait there already). */
static int udp_queue(csip_endpoint *ep, net_listener *l, const struct sockaddr_storage *ss,
                     const void *data, size_t len)
{
    udp_req *q = csip__malloc(ep->mem, sizeof *q + len);
    if (!q)
        return CSIP_ERR_NOMEM;
    q->mem = ep->mem;
    memcpy(q->data, data, len);
    uv_buf_t b = uv_buf_init(q->data, (unsigned)len);
    int r = uv_udp_send(&q->req, &l->u.udp, &b, 1, (const struct sockaddr *)ss, udp_sent);
    if (r < 0) {
        csip__free(ep->mem, q);
        return uv_to_csip(r);
    }
    return 0;
}

/*
 * The batch: the datagrams sent during one loop iteration (the responses of a
 * group commit, those of a burst of requests read together) leave in one
 * sendmmsg() per socket from the prepare callback, before the loop polls
 * again. One system call instead of one each, and the receiver, woken by the
 * first, finds the others already queued. A datagram the kernel refuses is
 * handled as a failed send of a connection is (a 503 for a request).
 */
typedef struct udp_batch {
    size_t n, bytes;
    net_listener *ls[NET_BATCH];
    csip_addr dst[NET_BATCH];
    struct sockaddr_storage ss[NET_BATCH];
    struct iovec iov[NET_BATCH];
    struct mmsghdr mm[NET_BATCH];
    char data[NET_BATCH_BYTES];
} udp_batch;

/* A datagram the kernel refused: reported as a failed send (net_out). */
static void udp_failed(csip_endpoint *ep, const csip_addr *dst, const void *data, size_t len,
                       int err)
{
    net_out *o = csip__malloc(ep->mem, sizeof *o + len);
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->remote = *dst;
    o->uv_err = -err;
    snprintf(o->reason, sizeof o->reason, "UDP send failed: %s", strerror(err));
    o->len = len;
    memcpy(o->data, data, len);
    csip__net_fail_later(ep, o);
}

/* Sends datagrams idx[0..n) of the batch, in order, on fd: the listener l's
 * socket, or peer's (connected: no address given). What would block goes to
 * l's libuv queue. @return how many a failing peer socket left unsent (the
 * caller sends them through the listener). */
static size_t udp_send_some(csip_endpoint *ep, net_listener *l, int fd, const udp_peer *peer,
                            const uint16_t *idx, size_t n)
{
    udp_batch *b = ep->batch;
    struct mmsghdr mm[NET_BATCH];
    for (size_t k = 0; k < n; k++) {
        mm[k] = b->mm[idx[k]];
        if (peer) {
            mm[k].msg_hdr.msg_name = NULL;
            mm[k].msg_hdr.msg_namelen = 0;
        }
    }
    size_t i = 0;
    while (i < n) {
        int sent = -1;
        /* datagrams queued by libuv go first, in order, after them */
        if (fd >= 0 && uv_udp_get_send_queue_count(&l->u.udp) == 0) {
            do
                sent = sendmmsg(fd, mm + i, (unsigned)(n - i), MSG_DONTWAIT);
            while (sent < 0 && errno == EINTR);
        }
        if (sent > 0) {
            i += (size_t)sent;
            continue;
        }
        int err = sent < 0 ? errno : EAGAIN;
        bool would_block = err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
        if (peer && fd >= 0 && !would_block)
            return n - i; /* an ICMP error reported on the peer's socket, … */
        if (fd < 0 || would_block) {
            for (; i < n; i++) {
                size_t x = idx[i];
                if (udp_queue(ep, l, &b->ss[x], b->iov[x].iov_base, b->iov[x].iov_len) != 0)
                    udp_failed(ep, &b->dst[x], b->iov[x].iov_base, b->iov[x].iov_len, ENOMEM);
            }
        } else {
            /* the first datagram was refused (unreachable, too large …) */
            size_t x = idx[i++];
            udp_failed(ep, &b->dst[x], b->iov[x].iov_base, b->iov[x].iov_len, err);
        }
    }
    return 0;
}

/* Sends what the batch holds: per listener, the datagrams to each busy peer
 * on its connected socket, the others on the listener's, one sendmmsg() each
 * (a destination's datagrams stay in order); what would block goes to
 * libuv's queue. */
static void udp_flush(csip_endpoint *ep)
{
    udp_batch *b = ep->batch;
    if (!b || b->n == 0)
        return;
    uint64_t now = uv_now(ep->loop);
    size_t i = 0;
    while (i < b->n) {
        net_listener *l = b->ls[i];
        size_t j = i + 1;
        while (j < b->n && b->ls[j] == l)
            j++;
        int fd = -1;
        if (uv_fileno((uv_handle_t *)&l->u.udp, &fd) != 0)
            fd = -1;
        /* a destination that takes much of this batch gets a socket of its own */
        if (!ep->freeing && l->reuseport && !peer_find(ep, l, &b->mm[i])) {
            size_t same = 0;
            for (size_t k = i; k < j; k++)
                same +=
                    same_dest(&b->mm[k], b->mm[i].msg_hdr.msg_name, b->mm[i].msg_hdr.msg_namelen);
            if (same >= NET_PEER_HOT)
                (void)peer_open(ep, l, &b->mm[i]);
        }
        uint16_t rest[NET_BATCH], mine[NET_BATCH];
        size_t nr = 0;
        for (size_t k = i; k < j; k++)
            rest[nr++] = (uint16_t)k;
        for (size_t q = 0; q < ep->n_peers && nr;) {
            udp_peer *p = ep->peers[q];
            size_t nm = 0, keep = 0;
            for (size_t k = 0; k < nr; k++) {
                if (p->l == l && same_dest(&b->mm[rest[k]], &p->ss, p->sslen))
                    mine[nm++] = rest[k];
                else
                    rest[keep++] = rest[k];
            }
            nr = keep;
            if (!nm) {
                q++;
                continue;
            }
            p->last_ms = now;
            size_t left = udp_send_some(ep, l, p->fd, p, mine, nm);
            if (left) {
                peer_close(ep, q); /* q now holds another peer */
                (void)udp_send_some(ep, l, fd, NULL, mine + nm - left, left);
            } else {
                q++;
            }
        }
        if (nr)
            (void)udp_send_some(ep, l, fd, NULL, rest, nr);
        i = j;
    }
    for (size_t q = 0; q < ep->n_peers;) {
        if (now - ep->peers[q]->last_ms > NET_PEER_IDLE_MS)
            peer_close(ep, q);
        else
            q++;
    }
    b->n = 0;
    b->bytes = 0;
}

static int udp_send(csip_endpoint *ep, const csip_addr *dst, const void *data, size_t len)
{
    net_listener *l = NULL;
    for (size_t i = 0; i < ep->n_ls && !l; i++)
        if (ep->ls[i].kind == LS_UDP && ep->ls[i].local.family == dst->family)
            l = &ep->ls[i];
    if (!l)
        return CSIP_ERR_TRANSPORT; /* no UDP socket of that family */
    udp_batch *b = ep->batch;
    if (len > NET_BATCH_BYTES) {
        struct sockaddr_storage ss;
        csip__net_to_sockaddr(dst, &ss);
        uv_buf_t ub = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
        int r = uv_udp_try_send(&l->u.udp, &ub, 1, (const struct sockaddr *)&ss);
        if (r >= 0)
            return 0;
        if (r != UV_EAGAIN)
            return uv_to_csip(r);
        return udp_queue(ep, l, &ss, data, len);
    }
    if (b->n == NET_BATCH || b->bytes + len > NET_BATCH_BYTES)
        udp_flush(ep);
    size_t i = b->n++;
    char *p = b->data + b->bytes;
    memcpy(p, data, len);
    b->bytes += len;
    b->ls[i] = l;
    b->dst[i] = *dst;
    csip__net_to_sockaddr(dst, &b->ss[i]);
    b->iov[i] = (struct iovec){p, len};
    b->mm[i] = (struct mmsghdr){
        .msg_hdr = {.msg_name = &b->ss[i],
                    .msg_namelen = dst->family == 6 ? sizeof(struct sockaddr_in6)
                                                    : sizeof(struct sockaddr_in),
                    .msg_iov = &b->iov[i],
                    .msg_iovlen = 1},
    };
    return 0;
}

/* ------------------------------------------------------------------------- */
/* §18.1.1: requests too large for UDP */

/* The top Via transport of a printed message, as an offset and length. */
static bool via_transport_span(const char *data, size_t len, size_t *off, size_t *n)
{
    csip_msg *m = NULL;
    csip_parse_error err;
    bool ok = false;
    if (csip_msg_parse(data, len, NULL, &m, &err) == 0) {
        const csip_via *via;
        csip_str raw = csip_msg_raw(m);
        if (csip_msg_via(m, 0, &via) == 0 && via->transport.p >= raw.p &&
            via->transport.p + via->transport.len <= raw.p + raw.len) {
            *off = (size_t)(via->transport.p - raw.p);
            *n = via->transport.len;
            ok = true;
        }
    }
    csip_msg_free(m);
    return ok;
}

bool csip__net_via_set_transport(char *data, size_t len, const char *tp3)
{
    size_t off, n;
    if (!via_transport_span(data, len, &off, &n) || n != 3)
        return false;
    memcpy(data + off, tp3, 3);
    return true;
}

static bool is_request(const void *data, size_t len)
{
    return !(len >= 4 && memcmp(data, "SIP/", 4) == 0);
}

/* Sends a UDP request over TCP to the same address, its top Via saying TCP.
 * If no connection can be made at once, it goes over UDP after all. */
static int send_switched(csip_endpoint *ep, const csip_addr *dst, const void *data, size_t len)
{
    char *copy = csip__malloc(ep->mem, len);
    if (!copy)
        return CSIP_ERR_NOMEM;
    memcpy(copy, data, len);
    int rc = CSIP_ERR_TRANSPORT;
    if (csip__net_via_set_transport(copy, len, "TCP")) {
        csip_addr tcp = *dst;
        tcp.transport = CSIP_TP_TCP;
        tcp.conn = 0;
        rc = csip__net_stream_send(ep, &tcp, copy, len, true);
    }
    csip__free(ep->mem, copy);
    return rc == 0 ? 0 : udp_send(ep, dst, data, len);
}

/* ------------------------------------------------------------------------- */
/* The transaction layer's callbacks */

static int ep_send(csip_txn_layer *layer, const csip_addr *dst, const void *data, size_t len,
                   void *user_data)
{
    (void)layer;
    csip_endpoint *ep = user_data;
    if (ep->freeing)
        return CSIP_ERR_TRANSPORT;
    switch ((csip_transport)dst->transport) {
    case CSIP_TP_UDP:
        if (len > ep->udp_mtu - NET_MTU_MARGIN && is_request(data, len))
            return send_switched(ep, dst, data, len);
        return udp_send(ep, dst, data, len);
    case CSIP_TP_TCP:
    case CSIP_TP_TLS:
        return csip__net_stream_send(ep, dst, data, len, false);
    case CSIP_TP_SCTP:
    case CSIP_TP_WS:
    case CSIP_TP_WSS:
        break;
    }
    return CSIP_ERR_TRANSPORT; /* SCTP, WS, WSS: not carried by this runtime */
}

static void ep_on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                          const csip_addr *src, void *user_data)
{
    csip_endpoint *ep = user_data;
    if (ep->cb.on_request)
        ep->cb.on_request(layer, st, req, src, ep->user_data);
}

static void ep_on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                           void *user_data)
{
    csip_endpoint *ep = user_data;
    if (ep->cb.on_response)
        ep->cb.on_response(layer, ct, resp, status, ep->user_data);
}

static void ep_on_stray(csip_txn_layer *layer, const csip_msg *resp, const csip_addr *src,
                        void *user_data)
{
    csip_endpoint *ep = user_data;
    /* A 503 made for a transaction that has already ended is not news. */
    if (ep->cb.on_stray_response && !ep->synthesizing)
        ep->cb.on_stray_response(layer, resp, src, ep->user_data);
}

static void ep_on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    csip_endpoint *ep = user_data;
    if (ep->cb.on_terminated)
        ep->cb.on_terminated(layer, t, why, ep->user_data);
}

/* ------------------------------------------------------------------------- */
/* Messages whose connection failed */

void csip__net_fail_later(csip_endpoint *ep, net_out *o)
{
    o->next = NULL;
    if (ep->failed_tail)
        ep->failed_tail->next = o;
    else
        ep->failed = o;
    ep->failed_tail = o;
}

/*
 * A request that could not be sent on a connection: RFC 3261 §8.1.3.1 and
 * §17.1.4 treat a transport failure as a 503. The layer has no entry point for
 * a failure found after send() returned, so the endpoint feeds it a 503 built
 * for the request, as if the peer had sent it; its reason phrase says why.
 */
static void synthesize_503(csip_endpoint *ep, const net_out *o)
{
    csip_msg *req = NULL, *resp = NULL;
    csip_parse_error err;
    if (csip_msg_parse(o->data, o->len, NULL, &req, &err) != 0 || !csip_msg_is_request(req) ||
        csip_msg_method(req) == CSIP_METHOD_ACK) {
        csip_msg_free(req);
        return;
    }
    if (csip_response_for(req, 503, o->reason, CSIP_STR_NULL, ep->mem, &resp) == 0) {
        int n = csip_msg_print(resp, NULL, 0);
        char *buf = n > 0 ? csip__malloc(ep->mem, (size_t)n) : NULL;
        if (buf && csip_msg_print(resp, buf, (size_t)n) == n) {
            csip_addr src = o->remote;
            src.conn = 0;
            ep->synthesizing = true;
            (void)csip_txn_layer_recv(ep->txn, buf, (size_t)n, &src, uv_now(ep->loop));
            ep->synthesizing = false;
        }
        csip__free(ep->mem, buf);
    }
    csip_msg_free(resp);
    csip_msg_free(req);
}

static void handle_failed(csip_endpoint *ep)
{
    while (ep->failed) {
        net_out *o = ep->failed;
        ep->failed = o->next;
        if (!ep->failed)
            ep->failed_tail = NULL;
        /* §18.1.1: a request moved to TCP goes back to UDP when the
         * connection was refused or reset. */
        if (o->switched && (o->uv_err == UV_ECONNREFUSED || o->uv_err == UV_ECONNRESET) &&
            csip__net_via_set_transport(o->data, o->len, "UDP")) {
            csip_addr udp = o->remote;
            udp.transport = CSIP_TP_UDP;
            udp.conn = 0;
            (void)udp_send(ep, &udp, o->data, o->len);
        } else {
            synthesize_503(ep, o);
        }
        csip__free(ep->mem, o);
    }
}

/* ------------------------------------------------------------------------- */
/* Timers */

static void on_timer(uv_timer_t *t)
{
    csip_endpoint *ep = t->data;
    ep->timer_due = UINT64_MAX;
    csip_txn_layer_handle_expiry(ep->txn, uv_now(ep->loop));
}

/* Before each loop iteration: failed sends, then the layer's next expiry. */
static void on_prepare(uv_prepare_t *p)
{
    csip_endpoint *ep = p->data;
    if (ep->freeing)
        return;
    /* the iteration's datagrams leave; what failed is handled (which may send
     * again: a 503 reaches the TU, which may answer or retry) */
    for (int k = 0; k < 8 && (ep->batch->n || ep->failed); k++) {
        udp_flush(ep);
        handle_failed(ep);
    }
    udp_flush(ep); /* never poll with datagrams waiting (failures wait a round) */
    uint64_t due = csip_txn_layer_next_expiry(ep->txn);
    uint64_t now = uv_now(ep->loop);
    /* What is due already (above all transactions that ended in this
     * iteration: a stateless answer ends its transaction at once) runs here,
     * not from a timer of 0 ms: that would cost a loop iteration and a
     * polling system call more. Bounded: expiry may arm timers at now. */
    for (int k = 0; k < 4 && due <= now && !ep->freeing; k++) {
        csip_txn_layer_handle_expiry(ep->txn, now);
        udp_flush(ep);
        due = csip_txn_layer_next_expiry(ep->txn);
    }
    if (due == ep->timer_due)
        return;
    ep->timer_due = due;
    if (due == UINT64_MAX) {
        uv_timer_stop(&ep->timer);
        return;
    }
    uv_timer_start(&ep->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ------------------------------------------------------------------------- */
/* Listeners */

static void on_connection(uv_stream_t *server, int status)
{
    net_listener *l = server->data;
    if (status < 0 || l->ep->freeing)
        return;
    csip__net_accept(l);
}

static int open_listener(csip_endpoint *ep, net_listener *l, const csip_addr *a)
{
    struct sockaddr_storage ss;
    csip__net_to_sockaddr(a, &ss);
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    int namelen = (int)sizeof ss;
    int r;
    l->ep = ep;
    l->kind = a->transport == CSIP_TP_UDP ? LS_UDP : a->transport == CSIP_TP_TCP ? LS_TCP : LS_TLS;
    if (l->kind == LS_UDP) {
        r = uv_udp_init_ex(ep->loop, &l->u.udp, a->family == 6 ? AF_INET6 : AF_INET);
        if (r < 0)
            return uv_to_csip(r);
        l->init = true;
        ep->handles++;
        l->u.h.data = l;
        r = uv_udp_bind(&l->u.udp, sa, a->family == 6 ? UV_UDP_IPV6ONLY : 0);
        if (r == 0) {
            /* after the bind, which failed if the port was taken: from now on
             * our own connected sockets of busy peers may share it */
            uv_os_fd_t lfd;
            int one = 1;
            l->reuseport = uv_fileno(&l->u.h, &lfd) == 0 &&
                           setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0;
            /* best effort: the kernel caps the sizes at its maxima */
            int rb = (int)ep->udp_buffer, sb = (int)ep->udp_buffer;
            (void)uv_recv_buffer_size((uv_handle_t *)&l->u.udp, &rb);
            (void)uv_send_buffer_size((uv_handle_t *)&l->u.udp, &sb);
            r = uv_udp_getsockname(&l->u.udp, (struct sockaddr *)&ss, &namelen);
        }
        if (r == 0) {
            uv_os_fd_t fd;
            r = uv_fileno(&l->u.h, &fd);
            if (r == 0 && (l->rfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
                r = UV_EMFILE;
        }
        if (r == 0)
            r = uv_poll_init_socket(ep->loop, &l->rpoll, l->rfd);
        if (r == 0) {
            l->rpoll_init = true;
            ep->handles++;
            l->rpoll.data = l;
            r = uv_poll_start(&l->rpoll, UV_READABLE, udp_readable);
        }
    } else {
        r = uv_tcp_init(ep->loop, &l->u.tcp);
        if (r < 0)
            return uv_to_csip(r);
        l->init = true;
        ep->handles++;
        l->u.h.data = l;
        r = uv_tcp_bind(&l->u.tcp, sa, a->family == 6 ? UV_TCP_IPV6ONLY : 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&l->u.tcp, 128, on_connection);
        if (r == 0)
            r = uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &namelen);
    }
    if (r < 0)
        return uv_to_csip(r);
    csip__net_from_sockaddr((const struct sockaddr *)&ss, (csip_transport)a->transport, &l->local);
    return 0;
}

static char *dup_str(const csip_mem *mem, const char *s, bool *fail)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = csip__malloc(mem, n);
    if (!d)
        *fail = true;
    else
        memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------------------- */
/* Public API */

int csip_endpoint_new(uv_loop_t *loop, const csip_endpoint_opts *opts, const csip_txn_callbacks *cb,
                      void *user_data, csip_endpoint **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!loop || !opts)
        return CSIP_ERR_INVALID_ARG;
    size_t n_ls = 0;
    bool tls = false;
    for (const char *const *s = opts->listen; s && *s; s++) {
        csip_addr a;
        if (parse_spec(*s, &a) != 0)
            return CSIP_ERR_INVALID_ARG;
        tls |= a.transport == CSIP_TP_TLS;
        n_ls++;
    }
    if (tls && (!opts->tls_cert_file || !opts->tls_key_file))
        return CSIP_ERR_INVALID_ARG;

    const csip_mem *mem = opts->txn.mem;
    csip_endpoint *ep = csip__malloc(mem, sizeof *ep);
    if (!ep)
        return CSIP_ERR_NOMEM;
    memset(ep, 0, sizeof *ep);
    ep->loop = loop;
    ep->mem = mem;
    if (cb)
        ep->cb = *cb;
    ep->user_data = user_data;
    ep->timer_due = UINT64_MAX;
    ep->next_conn_id = 1;
    ep->idle_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms : NET_DEFAULT_IDLE_MS;
    ep->max_conns = opts->max_connections ? opts->max_connections : NET_DEFAULT_MAX_CONNS;
    ep->limits = opts->txn.limits;
    uint32_t max_msg = ep->limits.max_stream_message ? ep->limits.max_stream_message
                                                     : CSIP_DEFAULT_MAX_STREAM_MESSAGE;
    ep->max_conn_buffer = opts->max_conn_buffer ? opts->max_conn_buffer : 2u * max_msg;
    ep->udp_mtu = opts->udp_mtu > NET_MTU_MARGIN ? opts->udp_mtu : NET_DEFAULT_MTU;
    ep->udp_buffer = opts->udp_buffer ? opts->udp_buffer : 4u << 20;
    ep->tls_no_verify = opts->tls_no_verify;

    bool fail = false;
    ep->tls_ca_file = dup_str(mem, opts->tls_ca_file, &fail);
    ep->tls_cert_file = dup_str(mem, opts->tls_cert_file, &fail);
    ep->tls_key_file = dup_str(mem, opts->tls_key_file, &fail);
    ep->rbuf = csip__malloc(mem, NET_RBUF);
    ep->mbuf = csip__malloc(mem, (size_t)NET_MMSG * NET_RBUF);
    ep->batch = csip__malloc(mem, sizeof *ep->batch);
    if (ep->batch)
        ep->batch->n = ep->batch->bytes = 0;
    ep->pbuf = csip__malloc(mem, NET_RBUF);
    ep->ls = csip__malloc(mem, (n_ls ? n_ls : 1) * sizeof *ep->ls);
    size_t nb = 64;
    while (nb < ep->max_conns && nb < (1u << 20))
        nb <<= 1;
    ep->hmask = nb - 1;
    ep->hid = csip__malloc(mem, nb * sizeof *ep->hid);
    ep->haddr = csip__malloc(mem, nb * sizeof *ep->haddr);
    if (ep->hid)
        memset(ep->hid, 0, nb * sizeof *ep->hid);
    if (ep->haddr)
        memset(ep->haddr, 0, nb * sizeof *ep->haddr);
    if (fail || !ep->rbuf || !ep->mbuf || !ep->batch || !ep->pbuf || !ep->ls || !ep->hid ||
        !ep->haddr) {
        ep->freeing = true;
        ep->handles = 1;
        csip__net_handle_closed(ep);
        return CSIP_ERR_NOMEM;
    }
    memset(ep->ls, 0, (n_ls ? n_ls : 1) * sizeof *ep->ls);
    for (size_t i = 0; i < n_ls; i++)
        ep->ls[i].rfd = -1;

    /* From here on, csip_endpoint_free() undoes everything. */
    int rc = 0;
    csip_txn_callbacks tcb = {ep_send, ep_on_request, ep_on_response, ep_on_stray,
                              ep_on_terminated};
    uv_timer_init(loop, &ep->timer);
    uv_prepare_init(loop, &ep->prepare);
    uv_timer_init(loop, &ep->idle);
    ep->handles = 3;
    ep->timer.data = ep->prepare.data = ep->idle.data = ep;
    uv_prepare_start(&ep->prepare, on_prepare);
    uv_unref((uv_handle_t *)&ep->prepare);
    uv_unref((uv_handle_t *)&ep->idle);

    rc = csip_txn_layer_new(&opts->txn, &tcb, ep, &ep->txn);
    if (rc == 0 && tls)
        rc = csip__net_tls_server_ctx(ep);
    for (size_t i = 0; rc == 0 && i < n_ls; i++) {
        csip_addr a;
        (void)parse_spec(opts->listen[i], &a);
        ep->n_ls = i + 1;
        rc = open_listener(ep, &ep->ls[i], &a);
    }
    if (rc != 0) {
        csip_endpoint_free(ep);
        return rc;
    }
    *out = ep;
    return 0;
}

void csip_endpoint_free(csip_endpoint *ep)
{
    if (!ep || ep->freeing)
        return;
    /* Transactions end first (their callbacks may still look at the endpoint);
     * their sends fail from now on. */
    csip_txn_layer *txn = ep->txn;
    udp_flush(ep); /* what the last iteration sent still leaves */
    ep->freeing = true;
    csip_txn_layer_free(txn);
    ep->txn = NULL;
    while (ep->failed) {
        net_out *o = ep->failed;
        ep->failed = o->next;
        csip__free(ep->mem, o);
    }
    ep->failed_tail = NULL;
    for (net_conn *c = ep->conns; c; c = c->next)
        csip__net_conn_close(c, 0, NULL);
    while (ep->n_peers)
        peer_close(ep, ep->n_peers - 1);
    for (size_t i = 0; i < ep->n_ls; i++) {
        net_listener *l = &ep->ls[i];
        if (l->rpoll_init)
            close_handle(ep, (uv_handle_t *)&l->rpoll); /* stops polling the fd at once */
        if (l->rfd >= 0)
            close(l->rfd);
        l->rfd = -1;
        if (l->init)
            close_handle(ep, &l->u.h);
    }
    SSL_CTX_free(ep->tls_server);
    SSL_CTX_free(ep->tls_client);
    ep->tls_server = ep->tls_client = NULL;
    close_handle(ep, (uv_handle_t *)&ep->timer);
    close_handle(ep, (uv_handle_t *)&ep->prepare);
    close_handle(ep, (uv_handle_t *)&ep->idle);
}

csip_txn_layer *csip_endpoint_txn(csip_endpoint *ep)
{
    return ep ? ep->txn : NULL;
}

const csip_addr *csip_endpoint_local(const csip_endpoint *ep, size_t i)
{
    return ep && i < ep->n_ls ? &ep->ls[i].local : NULL;
}

uint64_t csip_endpoint_now(const csip_endpoint *ep)
{
    return uv_now(ep->loop);
}

size_t csip__endpoint_conn_count(const csip_endpoint *ep)
{
    size_t n = 0;
    for (const net_conn *c = ep->conns; c; c = c->next)
        n += c->state != CONN_CLOSING;
    return n;
}
