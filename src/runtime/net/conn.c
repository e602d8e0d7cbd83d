/*
 * Stream connections (TCP, and TLS over OpenSSL memory BIOs): connect and
 * accept, framing with csip_stream_frame(), writes with a cap on what is
 * queued, reuse by remote address and transport, the idle timeout, and the
 * clean close after a framing error (RFC 3261 §18.3, RFC 4475 §3.1.2.3 and
 * §3.3.9: answer 400 when the request allows it, then close).
 */
#include "net/net_int.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* How long a connection closed after a framing error keeps reading (and
 * discarding) so that the peer reads our answer before any reset. */
#define LINGER_MS 2000u

typedef struct wreq {
    uv_write_t req;
    const csip_mem *mem;
    char data[];
} wreq;

static void conn_closed(uv_handle_t *h);
static void frame_all(net_conn *c);

static uv_stream_t *stream_of(net_conn *c)
{
    return (uv_stream_t *)&c->tcp;
}

/* ------------------------------------------------------------------------- */
/* Idle sweep */

static void on_idle(uv_timer_t *t)
{
    csip__net_idle_sweep(t->data);
}

/* Makes the idle timer fire within delay ms. */
static void idle_arm(csip_endpoint *ep, uint64_t delay)
{
    if (ep->freeing)
        return;
    if (uv_is_active((uv_handle_t *)&ep->idle) && uv_timer_get_due_in(&ep->idle) <= delay)
        return;
    uv_timer_start(&ep->idle, on_idle, delay, 0);
}

void csip__net_idle_sweep(csip_endpoint *ep)
{
    uint64_t now = uv_now(ep->loop), next = UINT64_MAX;
    for (net_conn *c = ep->conns; c; c = c->next) {
        uint64_t due;
        if (c->state == CONN_CLOSING) {
            if (!c->draining || uv_is_closing((uv_handle_t *)&c->tcp))
                continue;
            due = c->linger_until;
            if (due <= now) {
                uv_close((uv_handle_t *)&c->tcp, conn_closed);
                continue;
            }
        } else {
            due = c->last_active + ep->idle_ms;
            if (due <= now) {
                csip__net_conn_close(c, 0, "idle timeout");
                continue;
            }
        }
        if (due < next)
            next = due;
    }
    if (next != UINT64_MAX)
        uv_timer_start(&ep->idle, on_idle, next - now, 0);
}

/* ------------------------------------------------------------------------- */
/* Lifetime */

/* ------------------------------------------------------------------------- */
/* Lookup tables: by id (responses on the connection a request came on) and
 * by remote address and transport (reuse of an open connection), so that a
 * send costs the same with ten thousand connections as with one. */

static size_t hash_id(const csip_endpoint *ep, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15u) >> 32) & ep->hmask;
}

static size_t hash_addr(const csip_endpoint *ep, const csip_addr *a)
{
    uint64_t h = 0xcbf29ce484222325u;
    uint8_t k[20];
    size_t n = a->family == 6 ? 16 : 4;
    memcpy(k, a->ip, n);
    k[n] = (uint8_t)(a->port >> 8);
    k[n + 1] = (uint8_t)a->port;
    k[n + 2] = a->transport;
    k[n + 3] = a->family;
    for (size_t i = 0; i < n + 4; i++) {
        h ^= k[i];
        h *= 0x100000001b3u;
    }
    return (size_t)(h ^ (h >> 29)) & ep->hmask;
}

void csip__net_conn_addr_known(net_conn *c)
{
    csip_endpoint *ep = c->ep;
    if (c->in_haddr)
        return;
    size_t b = hash_addr(ep, &c->remote);
    c->haddr_next = ep->haddr[b];
    ep->haddr[b] = c;
    c->in_haddr = true;
}

static void conn_unhash(net_conn *c)
{
    csip_endpoint *ep = c->ep;
    for (net_conn **pp = &ep->hid[hash_id(ep, c->id)]; *pp; pp = &(*pp)->hid_next)
        if (*pp == c) {
            *pp = c->hid_next;
            break;
        }
    if (c->in_haddr)
        for (net_conn **pp = &ep->haddr[hash_addr(ep, &c->remote)]; *pp; pp = &(*pp)->haddr_next)
            if (*pp == c) {
                *pp = c->haddr_next;
                break;
            }
    c->in_haddr = false;
}

static net_conn *conn_new(csip_endpoint *ep, csip_transport tp)
{
    net_conn *c = csip__malloc(ep->mem, sizeof *c);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    if (uv_tcp_init(ep->loop, &c->tcp) != 0) {
        csip__free(ep->mem, c);
        return NULL;
    }
    c->ep = ep;
    c->tcp.data = c;
    c->id = ep->next_conn_id++;
    c->remote.transport = (uint8_t)tp;
    c->last_active = uv_now(ep->loop);
    csip_stream_init(&c->fr);
    ep->handles++;
    c->next = ep->conns;
    if (ep->conns)
        ep->conns->prev = c;
    ep->conns = c;
    ep->n_conns++;
    size_t b = hash_id(ep, c->id);
    c->hid_next = ep->hid[b];
    ep->hid[b] = c;
    idle_arm(ep, ep->idle_ms);
    return c;
}

static void free_outs(const csip_mem *mem, net_out *o)
{
    while (o) {
        net_out *n = o->next;
        csip__free(mem, o);
        o = n;
    }
}

static void conn_closed(uv_handle_t *h)
{
    net_conn *c = h->data;
    csip_endpoint *ep = c->ep;
    conn_unhash(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        ep->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ep->n_conns--;
    free_outs(ep->mem, c->pend);
    SSL_free(c->ssl);
    csip__free(ep->mem, c->rx);
    csip__free(ep->mem, c);
    csip__net_handle_closed(ep);
}

/* Messages still waiting for the connection are handed to the endpoint,
 * which answers them with a 503 (or sends them over UDP, §18.1.1). */
static void fail_pending(net_conn *c, int uv_err, const char *why)
{
    csip_endpoint *ep = c->ep;
    net_out *o = c->pend;
    c->pend = c->pend_tail = NULL;
    c->pend_bytes = 0;
    if (ep->freeing) {
        free_outs(ep->mem, o);
        return;
    }
    while (o) {
        net_out *n = o->next;
        o->uv_err = uv_err;
        snprintf(o->reason, sizeof o->reason, "%s", why ? why : "Connection closed");
        csip__net_fail_later(ep, o);
        o = n;
    }
}

void csip__net_conn_close(net_conn *c, int uv_err, const char *why)
{
    c->state = CONN_CLOSING;
    fail_pending(c, uv_err, why);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    net_conn *c = req->data;
    /* Our side is finished; keep reading (discarding) until the peer closes
     * or the linger time ends, so that unread input does not reset the
     * connection before the peer has read what we sent. */
    if (!uv_is_closing((uv_handle_t *)&c->tcp) && !c->ep->freeing) {
        c->linger_until = uv_now(c->ep->loop) + LINGER_MS;
        c->draining = true;
        idle_arm(c->ep, LINGER_MS);
    }
}

static int tls_flush(net_conn *c);

/* Closes after what is queued has been written. */
static void conn_shutdown(net_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    fail_pending(c, 0, "Connection closed");
    if (c->ssl) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
        (void)tls_flush(c);
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, stream_of(c), on_shutdown) != 0)
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* ------------------------------------------------------------------------- */
/* Writing */

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    net_conn *c = req->handle->data;
    csip__free(w->mem, w);
    if (status < 0 && c->state != CONN_CLOSING)
        csip__net_conn_close(c, status, "Connection failed");
}

/* Writes bytes to the socket, queueing what the kernel does not take at once,
 * within the per-connection cap. */
static int raw_write(net_conn *c, const char *data, size_t len)
{
    csip_endpoint *ep = c->ep;
    size_t queued = c->tcp.write_queue_size;
    if (queued + len > ep->max_conn_buffer) {
        /* The peer does not read: drop it rather than buffer without end. */
        csip__net_conn_close(c, UV_ENOBUFS, "Send buffer full");
        return CSIP_ERR_TRANSPORT;
    }
    c->last_active = uv_now(ep->loop);
    if (queued == 0) {
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
        int r = uv_try_write(stream_of(c), &b, 1);
        if (r >= 0) {
            data += r;
            len -= (size_t)r;
            if (len == 0)
                return 0;
        } else if (r != UV_EAGAIN) {
            csip__net_conn_close(c, r, "Connection failed");
            return CSIP_ERR_TRANSPORT;
        }
    }
    wreq *w = csip__malloc(ep->mem, sizeof *w + len);
    if (!w)
        return CSIP_ERR_NOMEM;
    w->mem = ep->mem;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int r = uv_write(&w->req, stream_of(c), &b, 1, on_written);
    if (r < 0) {
        csip__free(ep->mem, w);
        csip__net_conn_close(c, r, "Connection failed");
        return CSIP_ERR_TRANSPORT;
    }
    return 0;
}

/* Sends what OpenSSL wrote into the outgoing memory BIO. */
static int tls_flush(net_conn *c)
{
    size_t n;
    while ((n = BIO_ctrl_pending(c->wbio)) > 0) {
        char *tmp = csip__malloc(c->ep->mem, n);
        if (!tmp)
            return CSIP_ERR_NOMEM;
        int r = BIO_read(c->wbio, tmp, (int)n);
        int rc = r > 0 ? raw_write(c, tmp, (size_t)r) : CSIP_ERR_TRANSPORT;
        csip__free(c->ep->mem, tmp);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int conn_write_now(net_conn *c, const void *data, size_t len)
{
    if (!c->ssl)
        return raw_write(c, data, len);
    ERR_clear_error();
    if (SSL_write(c->ssl, data, (int)len) != (int)len) {
        csip__net_conn_close(c, 0, "TLS write failed");
        return CSIP_ERR_TRANSPORT;
    }
    return tls_flush(c);
}

/* The connection is open: what waited goes out, in order. */
static void flush_pending(net_conn *c)
{
    while (c->pend && c->state == CONN_OPEN) {
        net_out *o = c->pend;
        c->pend = o->next;
        if (!c->pend)
            c->pend_tail = NULL;
        c->pend_bytes -= o->len;
        (void)conn_write_now(c, o->data, o->len);
        csip__free(c->ep->mem, o);
    }
}

/* FNV-1a, to recognise a retransmission of a request moved to TCP. */
static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    return h;
}

static int conn_send(net_conn *c, const void *data, size_t len, bool switched)
{
    csip_endpoint *ep = c->ep;
    if (switched) {
        /* The UDP transaction retransmits; TCP already delivers. */
        uint64_t h = fnv1a(data, len);
        for (size_t i = 0; i < sizeof c->recent / sizeof c->recent[0]; i++)
            if (c->recent[i] == h)
                return 0;
        c->recent[c->recent_i++ % (sizeof c->recent / sizeof c->recent[0])] = h;
    }
    if (c->state == CONN_OPEN)
        return conn_write_now(c, data, len);
    if (c->pend_bytes + len > ep->max_conn_buffer)
        return CSIP_ERR_TRANSPORT;
    net_out *o = csip__malloc(ep->mem, sizeof *o + len);
    if (!o)
        return CSIP_ERR_NOMEM;
    memset(o, 0, sizeof *o);
    o->remote = c->remote;
    o->switched = switched;
    o->len = len;
    memcpy(o->data, data, len);
    if (c->pend_tail)
        c->pend_tail->next = o;
    else
        c->pend = o;
    c->pend_tail = o;
    c->pend_bytes += len;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* TLS handshake and input */

static void tls_handshake(net_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    if (tls_flush(c) != 0 || c->state == CONN_CLOSING)
        return;
    if (r == 1) {
        c->state = CONN_OPEN;
        flush_pending(c);
        return;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    char why[64], reason[96];
    csip__net_tls_error(c, why, sizeof why);
    snprintf(reason, sizeof reason, "TLS handshake failed: %s", why);
    csip__net_conn_close(c, 0, reason);
}

static void feed(net_conn *c, const char *data, size_t n);

static void tls_input(net_conn *c, const char *data, size_t n)
{
    csip_endpoint *ep = c->ep;
    if (BIO_write(c->rbio, data, (int)n) != (int)n) {
        csip__net_conn_close(c, UV_ENOMEM, "TLS input failed");
        return;
    }
    if (c->state == CONN_HANDSHAKE)
        tls_handshake(c);
    while (c->state == CONN_OPEN) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, ep->pbuf, (int)NET_RBUF);
        if (r > 0) {
            feed(c, ep->pbuf, (size_t)r);
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        csip__net_conn_close(c, UV_EOF,
                             e == SSL_ERROR_ZERO_RETURN ? "Connection closed" : "TLS read failed");
        return;
    }
    if (c->state != CONN_CLOSING)
        (void)tls_flush(c); /* post-handshake messages */
}

/* ------------------------------------------------------------------------- */
/* Reading and framing */

static void consume(net_conn *c, size_t n)
{
    memmove(c->rx, c->rx + n, c->rx_len - n);
    c->rx_len -= n;
}

static void put_hex(char *out, const unsigned char *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = 0;
}

/*
 * Answers a message that could not be framed when it is a request whose
 * header section gives enough to build a response (RFC 4475 ncl, mcl01:
 * "respond with an error"): the header section is parsed as a datagram, up
 * to the empty line, or up to the last complete line.
 */
static void answer_framing_error(net_conn *c, const char *p, size_t n, const csip_parse_error *err)
{
    csip_endpoint *ep = c->ep;
    size_t hl = 0;
    for (size_t i = 0; i + 3 < n && !hl; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            hl = i + 4;
    char *copy = NULL;
    if (!hl) {
        size_t last = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (p[i] == '\r' && p[i + 1] == '\n')
                last = i + 2;
        if (!last)
            return;
        copy = csip__malloc(ep->mem, last + 2);
        if (!copy)
            return;
        memcpy(copy, p, last);
        memcpy(copy + last, "\r\n", 2);
        p = copy;
        hl = last + 2;
    }
    csip_msg *req = NULL, *resp = NULL;
    csip_parse_error perr;
    (void)csip_msg_parse(p, hl, NULL, &req, &perr);
    const csip_via *via;
    const csip_cseq *cseq;
    unsigned char rnd[6];
    char tag[13];
    if (req && csip_msg_is_request(req) && csip_msg_method(req) != CSIP_METHOD_ACK &&
        csip_msg_via(req, 0, &via) == 0 && csip_msg_cseq(req, &cseq) == 0 &&
        csip_msg_hdr_find(req, CSIP_HDR_FROM) && csip_msg_hdr_find(req, CSIP_HDR_TO) &&
        csip_msg_hdr_find(req, CSIP_HDR_CALL_ID) && RAND_bytes(rnd, (int)sizeof rnd) == 1) {
        put_hex(tag, rnd, sizeof rnd);
        if (csip_response_for(req, err->status, err->reason, csip_str_c(tag), ep->mem, &resp) ==
            0) {
            int len = csip_msg_print(resp, NULL, 0);
            char *out = len > 0 ? csip__malloc(ep->mem, (size_t)len) : NULL;
            if (out && csip_msg_print(resp, out, (size_t)len) == len)
                (void)conn_write_now(c, out, (size_t)len);
            csip__free(ep->mem, out);
        }
    }
    csip_msg_free(resp);
    csip_msg_free(req);
    csip__free(ep->mem, copy);
}

static void frame_all(net_conn *c)
{
    csip_endpoint *ep = c->ep;
    while (c->state == CONN_OPEN) {
        size_t skip = 0, mlen = 0;
        csip_parse_error err;
        memset(&err, 0, sizeof err);
        int rc = csip_stream_frame(&c->fr, c->rx, c->rx_len, &ep->limits, &skip, &mlen, &err);
        if (rc != 0 && rc != CSIP_ERR_INCOMPLETE) {
            if (err.status >= 300 && err.status <= 699)
                answer_framing_error(c, c->rx + skip, c->rx_len - skip, &err);
            conn_shutdown(c);
            return;
        }
        if (skip) {
            /* RFC 5626 §3.5.1: a CRLFCRLF ping gets a CRLF pong. */
            for (size_t i = 0; i + 3 < skip; i++)
                if (memcmp(c->rx + i, "\r\n\r\n", 4) == 0) {
                    (void)conn_write_now(c, "\r\n", 2);
                    break;
                }
            consume(c, skip);
        }
        if (rc == CSIP_ERR_INCOMPLETE || c->state != CONN_OPEN)
            return;
        csip_addr src = c->remote;
        (void)csip_txn_layer_recv(ep->txn, c->rx, mlen, &src, uv_now(ep->loop));
        consume(c, mlen);
    }
}

/* Appends plaintext within the buffer cap and frames what it completes. */
static void feed(net_conn *c, const char *data, size_t n)
{
    csip_endpoint *ep = c->ep;
    while (n > 0 && c->state == CONN_OPEN) {
        size_t room = ep->max_conn_buffer - c->rx_len;
        if (room == 0) {
            csip__net_conn_close(c, UV_ENOBUFS, "Receive buffer full");
            return;
        }
        size_t take = n < room ? n : room;
        if (c->rx_len + take > c->rx_cap) {
            size_t cap = c->rx_cap ? c->rx_cap : 4096;
            while (cap < c->rx_len + take)
                cap *= 2;
            if (cap > ep->max_conn_buffer)
                cap = ep->max_conn_buffer;
            char *nb = csip__realloc(ep->mem, c->rx, cap);
            if (!nb) {
                csip__net_conn_close(c, UV_ENOMEM, "Out of memory");
                return;
            }
            c->rx = nb;
            c->rx_cap = cap;
        }
        memcpy(c->rx + c->rx_len, data, take);
        c->rx_len += take;
        data += take;
        n -= take;
        frame_all(c);
    }
    /* An idle connection does not keep a large buffer. */
    if (c->rx_len == 0 && c->rx_cap > 16384) {
        csip__free(ep->mem, c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    net_conn *c = h->data;
    buf->base = c->ep->rbuf;
    buf->len = NET_RBUF;
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    net_conn *c = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        csip__net_conn_close(c, (int)n, n == UV_EOF ? "Connection closed" : "Connection failed");
        return;
    }
    if (c->state == CONN_CLOSING)
        return; /* lingering after a framing error: discard */
    c->last_active = uv_now(c->ep->loop);
    if (c->ssl)
        tls_input(c, buf->base, (size_t)n);
    else
        feed(c, buf->base, (size_t)n);
}

/* ------------------------------------------------------------------------- */
/* Connecting and accepting */

static void on_connect(uv_connect_t *req, int status)
{
    net_conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        char reason[96];
        snprintf(reason, sizeof reason, "%s connect failed: %s", c->ssl ? "TLS" : "TCP",
                 uv_strerror(status));
        csip__net_conn_close(c, status, reason);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->last_active = uv_now(c->ep->loop);
    if (uv_read_start(stream_of(c), conn_alloc, conn_read) != 0) {
        csip__net_conn_close(c, UV_EIO, "Connection failed");
        return;
    }
    if (c->ssl) {
        c->state = CONN_HANDSHAKE;
        tls_handshake(c);
    } else {
        c->state = CONN_OPEN;
        flush_pending(c);
    }
}

static int conn_connect(csip_endpoint *ep, const csip_addr *dst, const void *data, size_t len,
                        net_conn **out)
{
    bool tls = dst->transport == CSIP_TP_TLS;
    if (ep->n_conns >= ep->max_conns)
        return CSIP_ERR_TRANSPORT;
    if (tls && !csip__net_tls_client_ctx(ep))
        return CSIP_ERR_TRANSPORT;
    net_conn *c = conn_new(ep, (csip_transport)dst->transport);
    if (!c)
        return CSIP_ERR_NOMEM;
    c->outbound = true;
    c->remote = *dst;
    c->remote.conn = c->id;
    csip__net_conn_addr_known(c);
    c->state = CONN_CONNECTING;
    if (tls) {
        csip__net_tls_name(data, len, c->host, sizeof c->host);
        if (!c->host[0]) {
            csip_addr ip = *dst;
            ip.port = 0;
            char tmp[64];
            if (csip_addr_format(&ip, tmp, sizeof tmp) > 0) {
                /* "[v6]:0" or "v4:0": keep the address only */
                char *colon = strrchr(tmp, ':');
                *colon = 0;
                size_t off = tmp[0] == '[' ? 1 : 0;
                if (off)
                    colon[-1] = 0;
                snprintf(c->host, sizeof c->host, "%s", tmp + off);
            }
        }
        if (csip__net_tls_start(c, false) != 0) {
            csip__net_conn_close(c, UV_ENOMEM, NULL);
            return CSIP_ERR_NOMEM;
        }
    }
    struct sockaddr_storage ss;
    csip__net_to_sockaddr(dst, &ss);
    c->connect_req.data = c;
    int r = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (r < 0) {
        csip__net_conn_close(c, r, NULL);
        return CSIP_ERR_TRANSPORT;
    }
    *out = c;
    return 0;
}

void csip__net_accept(net_listener *l)
{
    csip_endpoint *ep = l->ep;
    bool tls = l->kind == LS_TLS;
    net_conn *c = conn_new(ep, tls ? CSIP_TP_TLS : CSIP_TP_TCP);
    if (!c)
        return;
    c->state = CONN_OPEN;
    if (uv_accept((uv_stream_t *)&l->u.tcp, stream_of(c)) != 0) {
        csip__net_conn_close(c, 0, NULL);
        return;
    }
    struct sockaddr_storage ss;
    int namelen = (int)sizeof ss;
    /* Over the cap the connection is accepted and closed at once, so that it
     * leaves the backlog. */
    if (ep->n_conns > ep->max_conns ||
        uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &namelen) != 0) {
        csip__net_conn_close(c, 0, NULL);
        return;
    }
    csip__net_from_sockaddr((const struct sockaddr *)&ss, tls ? CSIP_TP_TLS : CSIP_TP_TCP,
                            &c->remote);
    c->remote.conn = c->id;
    csip__net_conn_addr_known(c);
    if (tls) {
        c->state = CONN_HANDSHAKE;
        if (csip__net_tls_start(c, true) != 0) {
            csip__net_conn_close(c, UV_ENOMEM, NULL);
            return;
        }
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start(stream_of(c), conn_alloc, conn_read) != 0)
        csip__net_conn_close(c, 0, NULL);
}

/* ------------------------------------------------------------------------- */
/* Sending */

int csip__net_stream_send(csip_endpoint *ep, const csip_addr *dst, const void *data, size_t len,
                          bool switched)
{
    if ((dst->family != 4 && dst->family != 6) || (!dst->port && !dst->conn))
        return CSIP_ERR_TRANSPORT;
    net_conn *c = NULL;
    /* §18.2.2: the connection the request came on, while it is open. */
    if (dst->conn)
        for (c = ep->hid[hash_id(ep, dst->conn)]; c; c = c->hid_next)
            if (c->id == dst->conn && c->state != CONN_CLOSING &&
                c->remote.transport == dst->transport)
                break;
    /* Else any open connection to that address and transport. */
    if (!c && dst->port) {
        csip_addr key = *dst;
        key.conn = 0;
        for (c = ep->haddr[hash_addr(ep, &key)]; c; c = c->haddr_next)
            if (c->state != CONN_CLOSING && csip_addr_equal(&c->remote, dst))
                break;
    }
    if (!c) {
        if (!dst->port)
            return CSIP_ERR_TRANSPORT;
        int rc = conn_connect(ep, dst, data, len, &c);
        if (rc != 0)
            return rc;
    }
    return conn_send(c, data, len, switched);
}
