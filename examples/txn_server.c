/*
 * txn_server — a small SIP server on the csip transaction layer and network
 * runtime, used by the interoperability tests (SIPp as the client).
 *
 *   txn_server [--tls-cert FILE --tls-key FILE] [--ring-ms N] [-v] LISTEN...
 *
 * LISTEN is a listen spec: udp:127.0.0.1:5060, tcp:[::1]:0, tls:127.0.0.1:0.
 * Once listening it prints one line per socket, "listening udp 127.0.0.1:40321",
 * so that a caller can use port 0. It answers:
 *   OPTIONS  200 OK with Allow;
 *   INVITE   180 Ringing at once, 200 OK after --ring-ms (default 50), the 2xx
 *            retransmitted over UDP until the ACK comes (RFC 3261 §13.3.1.4 and
 *            RFC 6026: that is the transaction user's job, not the layer's);
 *   CANCEL   200 OK, and 487 to the INVITE while it rings;
 *   BYE      200 OK;
 *   others   501 Not Implemented.
 * SIGINT or SIGTERM stop it cleanly (exit status 0).
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "csip/csip.h"
#include "csip/net.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LISTEN 16
#define T1_MS 500u
#define T2_MS 4000u

typedef struct server server;

/* One INVITE: ringing, then its 2xx retransmitted until the ACK. */
typedef struct call {
    struct call *next;
    server *srv;
    csip_txn *st; /* the INVITE server transaction while it rings */
    csip_msg *ok; /* the 2xx (kept for retransmission) */
    char call_id[256];
    size_t call_id_len;
    uint32_t cseq;
    char tag[16];
    uv_timer_t timer; /* ring delay, then 2xx retransmission */
    bool ringing;
    bool udp;
    uint32_t interval;
    uint64_t give_up;
} call;

struct server {
    uv_loop_t loop;
    csip_endpoint *ep;
    uv_signal_t sigint, sigterm;
    call *calls;
    unsigned ring_ms;
    bool verbose;
};

/* ------------------------------------------------------------------------- */

static void call_closed(uv_handle_t *h)
{
    call *c = h->data;
    csip_msg_free(c->ok);
    free(c);
}

static void call_free(call *c)
{
    server *s = c->srv;
    for (call **pp = &s->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->st)
        csip_txn_set_user_data(c->st, NULL);
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

static call *call_find(server *s, csip_str call_id)
{
    for (call *c = s->calls; c; c = c->next)
        if (call_id.len == c->call_id_len && memcmp(call_id.p, c->call_id, c->call_id_len) == 0)
            return c;
    return NULL;
}

static void new_tag(char *out, size_t cap)
{
    char b[32];
    int n = csip_txn_new_branch(b, sizeof b);
    /* the random part of a branch makes a fine tag */
    snprintf(out, cap, "%.10s", n > 17 ? b + 7 : "csiptag");
}

/* Contact: a listening address of the transport the request came over. */
static void contact_for(server *s, const csip_addr *src, char *out, size_t cap)
{
    const csip_addr *a, *best = NULL;
    for (size_t i = 0; (a = csip_endpoint_local(s->ep, i)) != NULL; i++)
        if (a->transport == src->transport && a->family == src->family) {
            best = a;
            break;
        }
    char hp[64] = "127.0.0.1:5060";
    if (best)
        (void)csip_addr_format(best, hp, sizeof hp);
    const char *tp = src->transport == CSIP_TP_TCP   ? ";transport=tcp"
                     : src->transport == CSIP_TP_TLS ? ";transport=tls"
                                                     : "";
    snprintf(out, cap, "<sip:txn_server@%s%s>", hp, tp);
}

static int respond(server *s, csip_txn *st, int code, const char *tag, const char *contact)
{
    csip_msg *resp;
    int rc = csip_response_for(csip_txn_request(st), code, NULL, csip_str_c(tag), NULL, &resp);
    if (rc != 0)
        return rc;
    if (contact)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_CONTACT, csip_str_c(contact), false);
    if (code == 200 || code == 405 || code == 501)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ALLOW, CSIP_STR("INVITE, ACK, CANCEL, BYE, OPTIONS"),
                               false);
    return csip_txn_respond(st, resp, csip_endpoint_now(s->ep));
}

/* ------------------------------------------------------------------------- */
/* INVITE */

static void on_call_timer(uv_timer_t *t)
{
    call *c = t->data;
    server *s = c->srv;
    uint64_t now = csip_endpoint_now(s->ep);
    if (c->ringing) {
        c->ringing = false;
        if (!c->st) {
            call_free(c);
            return;
        }
        const csip_msg *req = csip_txn_request(c->st);
        const csip_addr *peer = csip_txn_peer(c->st);
        char contact[128];
        contact_for(s, peer, contact, sizeof contact);
        csip_msg *ok = NULL, *copy = NULL;
        if (csip_response_for(req, 200, NULL, csip_str_c(c->tag), NULL, &ok) != 0 ||
            csip_msg_hdr_add(ok, CSIP_HDR_CONTACT, csip_str_c(contact), false) != 0 ||
            csip_response_for(req, 200, NULL, csip_str_c(c->tag), NULL, &copy) != 0 ||
            csip_msg_hdr_add(copy, CSIP_HDR_CONTACT, csip_str_c(contact), false) != 0) {
            csip_msg_free(ok);
            csip_msg_free(copy);
            call_free(c);
            return;
        }
        c->udp = peer->transport == CSIP_TP_UDP;
        csip_txn *st = c->st;
        csip_txn_set_user_data(st, NULL);
        c->st = NULL;
        (void)csip_txn_respond(st, ok, now);
        if (!c->udp) {
            csip_msg_free(copy);
            call_free(c);
            return;
        }
        c->ok = copy;
        c->interval = T1_MS;
        c->give_up = now + 64u * T1_MS;
        uv_timer_start(&c->timer, on_call_timer, c->interval, 0);
        return;
    }
    /* §13.3.1.4: retransmit the 2xx at T1, 2T1 … capped at T2, for 64*T1. */
    if (now >= c->give_up) {
        call_free(c);
        return;
    }
    (void)csip_txn_layer_send_stateless(csip_endpoint_txn(s->ep), c->ok, NULL, now);
    c->interval = c->interval * 2 < T2_MS ? c->interval * 2 : T2_MS;
    uv_timer_start(&c->timer, on_call_timer, c->interval, 0);
}

static void on_invite(server *s, csip_txn *st, const csip_msg *req)
{
    call *c = calloc(1, sizeof *c);
    csip_str cid;
    const csip_cseq *cseq;
    if (!c || csip_msg_call_id(req, &cid) != 0 || cid.len > sizeof c->call_id ||
        csip_msg_cseq(req, &cseq) != 0) {
        free(c);
        (void)respond(s, st, 500, NULL, NULL);
        return;
    }
    c->srv = s;
    c->st = st;
    memcpy(c->call_id, cid.p, cid.len);
    c->call_id_len = cid.len;
    c->cseq = cseq->number;
    new_tag(c->tag, sizeof c->tag);
    uv_timer_init(&s->loop, &c->timer);
    c->timer.data = c;
    c->next = s->calls;
    s->calls = c;
    csip_txn_set_user_data(st, c);
    (void)respond(s, st, 180, c->tag, NULL);
    c->ringing = true;
    uv_timer_start(&c->timer, on_call_timer, s->ring_ms, 0);
}

/* ------------------------------------------------------------------------- */
/* Transaction layer callbacks */

static void log_request(server *s, const csip_msg *req, const csip_addr *src)
{
    if (!s->verbose)
        return;
    char a[64] = "?";
    (void)csip_addr_format(src, a, sizeof a);
    csip_str m = csip_msg_method_name(req);
    fprintf(stderr, "txn_server: %.*s from %s %s\n", (int)m.len, m.p,
            csip_transport_name((csip_transport)src->transport), a);
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    server *s = user_data;
    log_request(s, req, src);
    csip_str cid = CSIP_STR_NULL;
    (void)csip_msg_call_id(req, &cid);
    if (!st) {
        /* The ACK of a 2xx: the call is up; stop retransmitting. */
        call *c = call_find(s, cid);
        const csip_cseq *cseq;
        if (c && !c->ringing && csip_msg_cseq(req, &cseq) == 0 && cseq->number == c->cseq)
            call_free(c);
        return;
    }
    switch (csip_msg_method(req)) {
    case CSIP_METHOD_OPTIONS:
        (void)respond(s, st, 200, NULL, NULL);
        break;
    case CSIP_METHOD_INVITE:
        on_invite(s, st, req);
        break;
    case CSIP_METHOD_CANCEL: {
        csip_txn *inv = csip_txn_layer_find_invite(layer, req);
        call *c = inv ? csip_txn_user_data(inv) : NULL;
        (void)respond(s, st, inv ? 200 : 481, NULL, NULL);
        if (c && c->ringing) {
            (void)respond(s, inv, 487, c->tag, NULL);
            call_free(c);
        }
        break;
    }
    case CSIP_METHOD_BYE: {
        call *c = call_find(s, cid);
        if (c && !c->ringing)
            call_free(c);
        (void)respond(s, st, 200, NULL, NULL);
        break;
    }
    default:
        (void)respond(s, st, 501, NULL, NULL);
        break;
    }
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    (void)user_data;
    call *c = csip_txn_user_data(t);
    if (c && c->st == t)
        c->st = NULL; /* a ringing call whose transaction ended (shutdown) */
}

/* ------------------------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    server *s = h->data;
    while (s->calls)
        call_free(s->calls);
    csip_endpoint_free(s->ep);
    s->ep = NULL;
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
}

static int usage(void)
{
    fprintf(stderr, "usage: txn_server [--tls-cert FILE --tls-key FILE] [--ring-ms N] [-v] "
                    "LISTEN...\n"
                    "  LISTEN: udp:127.0.0.1:5060, tcp:[::1]:0, tls:127.0.0.1:0\n");
    return 2;
}

int main(int argc, char **argv)
{
    static server s;
    const char *listen[MAX_LISTEN + 1];
    size_t n = 0;
    csip_endpoint_opts opts;
    memset(&opts, 0, sizeof opts);
    s.ring_ms = 50;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tls-cert") == 0 && i + 1 < argc) {
            opts.tls_cert_file = argv[++i];
        } else if (strcmp(a, "--tls-key") == 0 && i + 1 < argc) {
            opts.tls_key_file = argv[++i];
        } else if (strcmp(a, "--ring-ms") == 0 && i + 1 < argc) {
            uint32_t v;
            if (csip_str_to_u32(csip_str_c(argv[++i]), &v) != 0 || v > 60000)
                return usage();
            s.ring_ms = v;
        } else if (strcmp(a, "-v") == 0) {
            s.verbose = true;
        } else if (a[0] == '-' || n == MAX_LISTEN) {
            return usage();
        } else {
            listen[n++] = a;
        }
    }
    if (n == 0)
        return usage();
    listen[n] = NULL;
    opts.listen = listen;

    uv_loop_init(&s.loop);
    csip_txn_callbacks cb = {NULL, on_request, NULL, NULL, on_terminated};
    int rc = csip_endpoint_new(&s.loop, &opts, &cb, &s, &s.ep);
    if (rc != 0) {
        fprintf(stderr, "txn_server: cannot listen: %s\n", csip_strerror(rc));
        uv_run(&s.loop, UV_RUN_DEFAULT); /* release what was opened */
        uv_loop_close(&s.loop);
        return 1;
    }
    const csip_addr *a;
    for (size_t i = 0; (a = csip_endpoint_local(s.ep, i)) != NULL; i++) {
        char hp[64];
        (void)csip_addr_format(a, hp, sizeof hp);
        printf("listening %s %s\n", csip_transport_name((csip_transport)a->transport), hp);
    }
    fflush(stdout);

    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    return uv_loop_close(&s.loop) == 0 ? 0 : 1;
}
