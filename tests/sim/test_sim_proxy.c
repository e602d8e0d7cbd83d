/*
 * The proxy core (RFC 3261 §16) on the simulated network: a csip_proxy on the
 * transaction layer of one endpoint, scripted user agents around it (requests
 * written as raw text), and a fake host: our names and domain, a location
 * service with q-values and Path, authorization, RFC 3263 answers given at
 * once, later, or never.
 *
 * Endpoints, 10 ms apart: the proxy P at 10.0.0.1:5060 (UDP and TCP), the
 * caller A at 10.0.1.1:5060 (UDP and TCP), user agents U1..U4 at
 * 10.0.2.1-4:5060 (U4 over TCP), and X at 10.0.3.1:5060, which plays another
 * proxy, a strict router or the element that sends a request back to P.
 * Addresses 10.0.9.x have no endpoint: what is sent there is lost.
 *
 * Every scenario runs until the network and every timer are quiet and then
 * checks that nothing is left: no response context, no transaction, no Timer
 * C, and (the asan build) no leak. Scenarios also run with the proxy's
 * allocations failing one after the other (check_failmem).
 *
 * The loss test runs, for each seed, one to four calls (INVITE, some with a
 * CANCEL and a BYE, or MESSAGE) to users with one to three bindings over
 * random q groups, user agents that answer, refuse, decline, challenge or
 * ring until cancelled, over links with up to 30 % loss, duplication,
 * reordering and jitter, UDP and TCP. It checks that every request of the
 * caller ends with one final response, that what P sent up is right (a 2xx
 * only when a user agent sent one and always then, one non-2xx final at
 * most, a 6xx when one reached P, no status nobody sent but 408, 487 and
 * 500), that no branch rings on once the call was decided, and that nothing
 * is left.
 *
 * Usage: test_sim_proxy [TEST...]     test_sim_proxy --loss SEEDS [FIRST]
 * TEST_PROXY_TRACE=1 prints the messages of each scenario (2: in full).
 */
#include "check.h"
#include "csip/dialog.h"
#include "csip/proxy.h"
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P = 0, A, U1, U2, U3, U4, X, NPEERS };

#define MAX_WIRE 8192
#define MAX_CALLS 8
#define MAX_SRX 128
#define MAX_BIND 16
#define MAX_RESOLVE 16
#define MAX_CODES 64

static const char *const peer_name[NPEERS] = {"P", "A", "U1", "U2", "U3", "U4", "X"};

/* ------------------------------------------------------------------------- */
/* The world of one scenario */

/* How a user agent answers a request (per peer and call). */
typedef struct script {
    int prov;               /* provisional status sent (0: none) */
    uint32_t prov_at;       /* ms after the request arrived */
    int final;              /* final status (0: never) */
    uint32_t final_at;      /* ms after the request arrived */
    const char *final_hdrs; /* header lines added to the final ("Name: v\r\n" …) */
    /* X only: send the request back to P (its own Via on top), with this
     * Request-URI when set, and relay P's final response */
    bool bounce;
    const char *bounce_ruri;
} script;

/* A request a peer's TU took (a server transaction). */
typedef struct srx {
    int peer, call;
    csip_txn *st;
    bool invite, final_sent;
    int final;
    uint64_t at;
    csip_msg *ok; /* a 2xx the TU retransmits until the ACK (§13.3.1.4) */
    uint32_t ok_iv;
    uint64_t ok_until;
    bool acked;
    csip_txn *fwd; /* X: the request sent back to P */
} srx;

/* One side of a call at the caller: its transaction and what came back. */
typedef struct cside {
    struct call *c;
    int kind; /* 0 request, 1 CANCEL, 2 BYE */
    csip_txn *ct;
    int codes[MAX_CODES];
    uint64_t at[MAX_CODES];
    bool null[MAX_CODES];
    int n;
    int final; /* first final status (0: none) */
    uint64_t final_at;
    bool final_null;
    int terms;
} cside;

typedef struct call {
    int idx;
    char cid[16];
    char method[16];
    char ruri[160];
    char extra[1400];
    uint32_t max_forwards; /* UINT32_MAX: no Max-Forwards header */
    csip_transport tp;
    cside req, cancel, bye;
    int n2xx;
    bool no_ack;    /* do not ACK 2xx */
    bool bye_after; /* send a BYE after the 2xx */
    uint64_t start_at;
    uint64_t cancel_at; /* 0: never; CANCEL once a provisional came */
} call;

typedef struct wire {
    uint64_t t;
    int from, to; /* peer index; -1 for a black hole */
    sim_fate fate;
    char *text;
    size_t len;
} wire;

typedef struct binding {
    const char *user, *uri, *path;
    uint16_t q;
} binding;

typedef struct name_answer {
    const char *name;
    const char *ip;
    uint16_t port;
    csip_transport tp;
    int mode; /* 0 at once, 1 later (resolve_delay), 2 error at once, 3 later with none */
} name_answer;

typedef struct pending_resolve {
    bool used;
    uint64_t token;
    csip_addr addr;
    size_t n;
} pending_resolve;

typedef struct world {
    sim *s;
    sim_ep *ep[NPEERS];
    csip_proxy *proxy;
    csip_proxy_opts popts;
    check_failmem fm;
    bool failmem;
    uint64_t timer_at; /* the Timer C wake-up scheduled */
    script sc[MAX_CALLS][NPEERS];
    srx srx[MAX_SRX];
    int nsrx;
    call calls[MAX_CALLS];
    int ncalls;
    wire wire[MAX_WIRE];
    int nwire;
    binding bind[MAX_BIND];
    int nbind;
    int auth_foreign, auth_local; /* authorize's answers; -1 = no authorize callback */
    int auth_calls;
    name_answer names[8];
    int nnames;
    uint32_t resolve_delay;
    pending_resolve pend[MAX_RESOLVE];
    int resolves;
    int done[MAX_CODES];         /* on_done statuses */
    uint64_t done_at[MAX_CODES]; /* and when */
    int ndone;
    int a_stray; /* stray responses at the caller */
    int peer_acks[NPEERS];
    uint64_t seed;
} world;

static world W;

static uint64_t now(void)
{
    return sim_now(W.s);
}

static int peer_of(const sim_ep *ep)
{
    for (int i = 0; i < NPEERS; i++)
        if (W.ep[i] == ep)
            return i;
    return -1;
}

static int call_of(csip_str cid)
{
    for (int i = 0; i < W.ncalls; i++)
        if (csip_str_eq_c(cid, W.calls[i].cid))
            return i;
    return -1;
}

/* A message from text (aborts on a parse error: the tests write valid messages). */
static csip_msg *parse_text(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        abort();
    csip_msg *m = NULL;
    csip_parse_error err;
    if (csip_msg_parse(buf, (size_t)n, NULL, &m, &err) != 0) {
        fprintf(stderr, "test message does not parse: %s\n%s\n", err.reason, buf);
        abort();
    }
    return m;
}

/* A copy of a message with its edits (print, parse). */
static csip_msg *copy_of(const csip_msg *m)
{
    int n = csip_msg_print(m, NULL, 0);
    if (n < 0)
        abort();
    char *buf = malloc((size_t)n + 1);
    if (!buf || csip_msg_print(m, buf, (size_t)n + 1) != n)
        abort();
    csip_msg *c = NULL;
    if (csip_msg_parse(buf, (size_t)n, NULL, &c, NULL) != 0)
        abort();
    free(buf);
    return c;
}

/* ------------------------------------------------------------------------- */
/* The wire: every message sent, lost or delivered */

static void on_wire(sim *s, const sim_event *ev, void *ud)
{
    (void)s;
    (void)ud;
    if (W.nwire == MAX_WIRE)
        return;
    wire *w = &W.wire[W.nwire++];
    w->t = ev->t;
    w->from = peer_of(ev->from);
    w->to = ev->to ? peer_of(ev->to) : -1;
    w->fate = ev->fate;
    w->text = malloc(ev->len + 1);
    if (!w->text)
        abort();
    memcpy(w->text, ev->data, ev->len);
    w->text[ev->len] = 0;
    w->len = ev->len;
}

static bool starts(const wire *w, const char *prefix)
{
    return strncmp(w->text, prefix, strlen(prefix)) == 0;
}

/* The nth message (0-based) from `from` (-2: anyone) to `to` whose first line starts with
 * prefix, among those with the given fate. */
static const wire *find_fate(int from, int to, const char *prefix, int nth, sim_fate fate)
{
    for (int i = 0; i < W.nwire; i++) {
        const wire *w = &W.wire[i];
        if (w->fate == fate && (from == -2 || w->from == from) && w->to == to &&
            starts(w, prefix) && nth-- == 0)
            return w;
    }
    return NULL;
}

/* Delivered messages. */
static const wire *got(int from, int to, const char *prefix, int nth)
{
    return find_fate(from, to, prefix, nth, SIM_DELIVERED);
}

/* When a message was delivered (0: never). */
static uint64_t at_of(const wire *w)
{
    return w ? w->t : 0;
}

static int count_got(int from, int to, const char *prefix)
{
    int n = 0;
    while (got(from, to, prefix, n))
        n++;
    return n;
}

/* Messages sent (whatever became of them). */
static int count_sent(int from, int to, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < W.nwire; i++) {
        const wire *w = &W.wire[i];
        if (w->fate != SIM_DELIVERED && w->from == from && w->to == to && starts(w, prefix))
            n++;
    }
    return n;
}

/* The value of the nth header line called name (exact name, as the tests and
 * the proxy write them) in a message on the wire; "" when absent. */
static const char *hdr(const wire *w, const char *name, int nth)
{
    static char out[4][1024];
    static int slot;
    char *o = out[slot++ & 3];
    o[0] = 0;
    if (!w)
        return o;
    size_t nl = strlen(name);
    const char *p = w->text;
    const char *end = strstr(p, "\r\n\r\n");
    if (!end)
        end = p + w->len;
    while ((p = strstr(p, "\r\n")) != NULL && p < end) {
        p += 2;
        if (strncmp(p, name, nl) == 0 && p[nl] == ':' && nth-- == 0) {
            p += nl + 1;
            while (*p == ' ')
                p++;
            const char *e = strstr(p, "\r\n");
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n >= sizeof out[0])
                n = sizeof out[0] - 1;
            memcpy(o, p, n);
            o[n] = 0;
            return o;
        }
    }
    return o;
}

static int hdr_count(const wire *w, const char *name)
{
    int n = 0;
    while (*hdr(w, name, n))
        n++;
    return n;
}

/* The first line, as a C string. */
static const char *line1(const wire *w)
{
    static char out[4][256];
    static int slot;
    char *o = out[slot++ & 3];
    o[0] = 0;
    if (!w)
        return o;
    size_t n = 0;
    while (n < w->len && n < sizeof out[0] - 1 && w->text[n] != '\r')
        n++;
    memcpy(o, w->text, n);
    o[n] = 0;
    return o;
}

/* ------------------------------------------------------------------------- */
/* The proxy's host */

static void kick(void);

static bool h_is_me(void *ud, csip_str host, uint16_t port)
{
    (void)ud;
    return csip_str_eq_c(host, "10.0.0.1") && (port == 0 || port == 5060);
}

static bool h_is_my_domain(void *ud, csip_str host)
{
    (void)ud;
    return csip_str_ieq_c(host, "example.com") || csip_str_eq_c(host, "10.0.0.1");
}

static int h_locate(void *ud, const csip_msg *req, const csip_uri *ruri, csip_proxy_target *out,
                    size_t cap, size_t *n)
{
    (void)ud;
    (void)req;
    *n = 0;
    if (csip_str_eq_c(ruri->user, "nobody"))
        return CSIP_ERR_NOT_FOUND;
    if (csip_str_eq_c(ruri->user, "broken"))
        return CSIP_ERR_STORE;
    for (int i = 0; i < W.nbind && *n < cap; i++)
        if (csip_str_eq_c(ruri->user, W.bind[i].user))
            out[(*n)++] = (csip_proxy_target){
                csip_str_c(W.bind[i].uri),
                W.bind[i].path ? csip_str_c(W.bind[i].path) : CSIP_STR_NULL, W.bind[i].q};
    return 0;
}

static int h_authorize(void *ud, const csip_msg *req, const csip_addr *src, bool foreign)
{
    (void)ud;
    (void)req;
    (void)src;
    W.auth_calls++;
    return foreign ? W.auth_foreign : W.auth_local;
}

static void h_decorate(void *ud, const csip_msg *req, csip_msg *resp)
{
    (void)ud;
    (void)req;
    if (csip_msg_status(resp) == 407)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_PROXY_AUTHENTICATE,
                               CSIP_STR("Digest realm=\"example.com\", nonce=\"n1\""), false);
}

static void answer_resolve(sim *s, void *arg)
{
    (void)s;
    pending_resolve *r = arg;
    r->used = false;
    csip_proxy_resolved(W.proxy, r->token, r->n ? &r->addr : NULL, r->n, now());
    kick();
}

static int h_resolve(void *ud, const csip_uri *uri, uint64_t token, csip_addr *out)
{
    (void)ud;
    W.resolves++;
    for (int i = 0; i < W.nnames; i++) {
        const name_answer *a = &W.names[i];
        if (!csip_str_ieq_c(uri->host, a->name))
            continue;
        csip_addr ad;
        memset(&ad, 0, sizeof ad);
        if (csip_addr_set_ip(&ad, csip_str_c(a->ip)) != 0)
            abort();
        ad.port = a->port;
        ad.transport = (uint8_t)a->tp;
        if (a->mode == 0) {
            *out = ad;
            return 0;
        }
        if (a->mode == 2)
            return CSIP_ERR_NOT_FOUND;
        for (int k = 0; k < MAX_RESOLVE; k++) {
            pending_resolve *r = &W.pend[k];
            if (r->used)
                continue;
            r->used = true;
            r->token = token;
            r->addr = ad;
            r->n = a->mode == 1 ? 1 : 0;
            sim_at(W.s, now() + W.resolve_delay, answer_resolve, r);
            return CSIP_ERR_PAUSE;
        }
        abort();
    }
    return CSIP_ERR_NOT_FOUND;
}

static int h_local(void *ud, const csip_addr *dst, char *out, size_t cap)
{
    (void)ud;
    (void)dst;
    int n = snprintf(out, cap, "10.0.0.1:5060");
    return n < 0 || (size_t)n >= cap ? CSIP_ERR_BUFFER_TOO_SMALL : n;
}

static void h_done(void *ud, const csip_msg *req, const csip_addr *src, int status, size_t branches)
{
    (void)ud;
    (void)req;
    (void)src;
    (void)branches;
    if (W.ndone < MAX_CODES) {
        W.done_at[W.ndone] = sim_now(W.s);
        W.done[W.ndone++] = status;
    }
}

/* Timer C: the proxy's own deadline, scheduled on the sim's clock. */
static void proxy_timer(sim *s, void *arg)
{
    (void)s;
    (void)arg;
    if (W.timer_at <= now())
        W.timer_at = UINT64_MAX;
    csip_proxy_handle_expiry(W.proxy, now());
    kick();
}

static void kick(void)
{
    uint64_t t = csip_proxy_next_expiry(W.proxy);
    if (t == UINT64_MAX || t >= W.timer_at)
        return;
    W.timer_at = t;
    sim_at(W.s, t, proxy_timer, NULL);
}

/* The proxy endpoint's layer callbacks: everything goes to the proxy. */
static void p_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                      void *ud)
{
    (void)l;
    (void)ud;
    csip_proxy_on_request(W.proxy, st, req, src, now());
    kick();
}

static void p_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status, void *ud)
{
    (void)l;
    (void)ud;
    csip_proxy_on_response(W.proxy, ct, resp, status, now());
    kick();
}

static void p_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    (void)l;
    (void)ud;
    csip_proxy_on_stray_response(W.proxy, resp, src, now());
    kick();
}

static void p_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)why;
    (void)ud;
    if (W.proxy)
        csip_proxy_on_terminated(W.proxy, t, now());
    kick();
}

/* ------------------------------------------------------------------------- */
/* User agents U1..U4 and X */

static void uas_send(srx *r, int code, const char *hdrs)
{
    if (!r->st || r->final_sent)
        return;
    const csip_msg *req = csip_txn_request(r->st);
    char tag[16];
    snprintf(tag, sizeof tag, "t%s-%d", peer_name[r->peer], r->call);
    csip_msg *resp = NULL;
    if (csip_response_for(req, code, NULL, csip_str_c(tag), NULL, &resp) != 0)
        abort();
    if (code >= 200 && code < 300 && r->invite) {
        char contact[64];
        snprintf(contact, sizeof contact, "<sip:%s@10.0.2.%d:5060%s>", peer_name[r->peer],
                 r->peer - U1 + 1, r->peer == U4 ? ";transport=tcp" : "");
        if (csip_msg_hdr_add(resp, CSIP_HDR_CONTACT, csip_str_c(contact), false) != 0)
            abort();
        /* a UAS copies Record-Route into its 2xx (§12.1.1) */
        for (const csip_hdr *h = csip_msg_hdr_find(req, CSIP_HDR_RECORD_ROUTE); h;
             h = csip_msg_hdr_next(req, h))
            if (csip_msg_hdr_add(resp, CSIP_HDR_RECORD_ROUTE, h->value, false) != 0)
                abort();
    }
    for (const char *p = hdrs; p && *p;) {
        const char *colon = strchr(p, ':'), *e = strstr(p, "\r\n");
        if (!colon || !e)
            abort();
        csip_hdr_id id = csip_hdr_lookup(p, (size_t)(colon - p));
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (csip_msg_hdr_add(resp, id, (csip_str){v, (size_t)(e - v)}, false) != 0)
            abort();
        p = e + 2;
    }
    if (code >= 200) {
        r->final_sent = true;
        r->final = code;
    }
    /* the UAS core retransmits a 2xx whatever the transport (§13.3.1.4) */
    if (code >= 200 && code < 300 && r->invite)
        r->ok = copy_of(resp);
    if (csip_txn_respond(r->st, resp, now()) != 0)
        abort();
}

static void uas_resend_ok(sim *s, void *arg)
{
    (void)s;
    srx *r = arg;
    if (!r->ok)
        return;
    if (r->acked || !r->st || now() >= r->ok_until) {
        csip_msg_free(r->ok);
        r->ok = NULL;
        return;
    }
    (void)csip_txn_respond(r->st, copy_of(r->ok), now());
    r->ok_iv = r->ok_iv * 2 > 4000 ? 4000 : r->ok_iv * 2;
    sim_at(W.s, now() + r->ok_iv, uas_resend_ok, r);
}

static void act_prov(sim *s, void *arg)
{
    (void)s;
    srx *r = arg;
    uas_send(r, W.sc[r->call][r->peer].prov, NULL);
}

static void act_final(sim *s, void *arg)
{
    (void)s;
    srx *r = arg;
    const script *sc = &W.sc[r->call][r->peer];
    if (r->final_sent)
        return;
    uas_send(r, sc->final, sc->final_hdrs);
    if (r->ok) {
        r->ok_iv = 500;
        r->ok_until = now() + 32000;
        sim_at(W.s, now() + 500, uas_resend_ok, r);
    }
}

/* X sends the request back to P: its own Via on top, maybe a new Request-URI. */
static void bounce(srx *r, const script *sc)
{
    csip_msg *m = copy_of(csip_txn_request(r->st));
    char via[96];
    snprintf(via, sizeof via, "SIP/2.0/UDP 10.0.3.1:5060;branch=z9hG4bKx%d", W.nsrx);
    if (csip_msg_hdr_insert(m, 0, CSIP_HDR_VIA, CSIP_STR("Via"), csip_str_c(via)) != 0)
        abort();
    if (sc->bounce_ruri && csip_msg_set_ruri(m, csip_str_c(sc->bounce_ruri)) != 0)
        abort();
    uint32_t mf = 70;
    (void)csip_msg_max_forwards(m, &mf);
    if (csip_msg_set_max_forwards(m, mf ? mf - 1 : 0) != 0)
        abort();
    if (csip_txn_client_new(sim_layer(W.ep[X]), m, sim_addr(W.ep[P]), r, now(), &r->fwd) != 0)
        abort();
}

static srx *new_srx(int peer, csip_txn *st, const csip_msg *req)
{
    if (W.nsrx == MAX_SRX)
        abort();
    srx *r = &W.srx[W.nsrx++];
    memset(r, 0, sizeof *r);
    r->peer = peer;
    r->st = st;
    r->at = now();
    r->invite = csip_msg_method(req) == CSIP_METHOD_INVITE;
    csip_str cid;
    r->call = csip_msg_call_id(req, &cid) == 0 ? call_of(cid) : -1;
    if (r->call < 0)
        r->call = 0;
    csip_txn_set_user_data(st, r);
    return r;
}

static void ua_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                       void *ud)
{
    (void)l;
    (void)src;
    int peer = (int)(intptr_t)ud;
    csip_method m = csip_msg_method(req);
    if (!st) {
        /* the ACK of a 2xx: stops the 2xx retransmissions of that call */
        W.peer_acks[peer]++;
        csip_str cid;
        if (csip_msg_call_id(req, &cid) == 0)
            for (int i = 0; i < W.nsrx; i++)
                if (W.srx[i].peer == peer && W.srx[i].ok && W.srx[i].call == call_of(cid))
                    W.srx[i].acked = true;
        return;
    }
    srx *r = new_srx(peer, st, req);
    if (m == CSIP_METHOD_CANCEL) {
        csip_txn *inv = csip_txn_layer_find_invite(l, req);
        srx *ir = inv ? csip_txn_user_data(inv) : NULL;
        uas_send(r, ir ? 200 : 481, NULL);
        if (ir && !ir->final_sent)
            uas_send(ir, 487, NULL);
        return;
    }
    if (m != CSIP_METHOD_INVITE && m != CSIP_METHOD_MESSAGE && m != CSIP_METHOD_OPTIONS) {
        uas_send(r, 200, NULL); /* BYE and the like */
        return;
    }
    const script *sc = &W.sc[r->call][peer];
    if (sc->bounce) {
        bounce(r, sc);
        return;
    }
    if (sc->prov)
        sim_at(W.s, now() + sc->prov_at, act_prov, r);
    if (sc->final)
        sim_at(W.s, now() + sc->final_at, act_final, r);
}

/* X's request sent back to P: its final response goes upstream. */
static void ua_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status, void *ud)
{
    (void)l;
    (void)ud;
    srx *r = csip_txn_user_data(ct);
    if (!r || status < 200 || !resp || !r->st || r->final_sent)
        return;
    csip_msg *up = copy_of(resp);
    if (csip_msg_via_pop(up) != 0)
        abort();
    r->final_sent = true;
    r->final = status;
    (void)csip_txn_respond(r->st, up, now());
}

static void ua_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)why;
    (void)ud;
    srx *r = csip_txn_user_data(t);
    if (!r)
        return;
    if (t == r->st)
        r->st = NULL;
    if (t == r->fwd)
        r->fwd = NULL;
}

/* ------------------------------------------------------------------------- */
/* The caller A */

static cside *side_of(csip_txn *t)
{
    return csip_txn_user_data(t);
}

/* The ACK (or BYE) of a 2xx (§13.2.2.4): Request-URI from its Contact, Route
 * from its Record-Route reversed, sent to P (A's outbound proxy). */
static csip_msg *in_dialog(call *c, const csip_msg *resp, const char *method, uint32_t cseq, int n)
{
    const csip_nameaddr *to, *rr = NULL, *ct = NULL;
    size_t nrr = 0, nct = 0;
    if (csip_msg_to(resp, &to) != 0 || csip_msg_nameaddrs(resp, CSIP_HDR_RECORD_ROUTE, &rr, &nrr) ||
        csip_msg_nameaddrs(resp, CSIP_HDR_CONTACT, &ct, &nct))
        abort();
    char routes[1024] = "";
    size_t rl = 0;
    for (size_t i = nrr; i-- > 0;) {
        int k = snprintf(routes + rl, sizeof routes - rl, "Route: %.*s\r\n", (int)rr[i].raw.len,
                         rr[i].raw.p);
        if (k < 0 || (size_t)k >= sizeof routes - rl)
            abort();
        rl += (size_t)k;
    }
    csip_str target = nct ? ct[0].uri.raw : csip_str_c(c->ruri);
    return parse_text("%s %.*s SIP/2.0\r\n"
                      "Via: SIP/2.0/%s 10.0.1.1:5060;branch=z9hG4bKa%s%s%d;rport\r\n"
                      "Max-Forwards: 70\r\n"
                      "%s"
                      "From: <sip:alice@example.com>;tag=fa%d\r\n"
                      "To: %.*s\r\n"
                      "Call-ID: %s\r\n"
                      "CSeq: %u %s\r\n"
                      "Content-Length: 0\r\n\r\n",
                      method, (int)target.len, target.p, csip_transport_name(c->tp), c->cid, method,
                      n, routes, c->idx, (int)to->raw.len, to->raw.p, c->cid, cseq, method);
}

static void a_send_bye(call *c, const csip_msg *resp)
{
    csip_msg *bye = in_dialog(c, resp, "BYE", 2, 0);
    if (csip_txn_client_new(sim_layer(W.ep[A]), bye, sim_addr_tp(W.ep[P], c->tp), &c->bye, now(),
                            &c->bye.ct) != 0)
        abort();
}

static void a_response(csip_txn_layer *l, csip_txn *t, const csip_msg *resp, int status, void *ud)
{
    (void)ud;
    cside *sd = side_of(t);
    call *c = sd->c;
    if (sd->n < MAX_CODES) {
        sd->codes[sd->n] = status;
        sd->at[sd->n] = now();
        sd->null[sd->n] = resp == NULL;
        sd->n++;
    }
    if (status >= 200 && !sd->final) {
        sd->final = status;
        sd->final_at = now();
        sd->final_null = resp == NULL;
    }
    if (sd->kind != 0 || !resp || status < 200 || status >= 300 ||
        csip_msg_method(resp) != CSIP_METHOD_INVITE)
        return;
    c->n2xx++;
    if (!c->no_ack) {
        csip_msg *ack = in_dialog(c, resp, "ACK", 1, c->n2xx);
        (void)csip_txn_layer_send_stateless(l, ack, sim_addr_tp(W.ep[P], c->tp), now());
        csip_msg_free(ack);
    }
    if (c->bye_after && c->n2xx == 1)
        a_send_bye(c, resp);
}

static void a_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    (void)src;
    (void)ud;
    W.a_stray++;
    csip_str cid;
    int k;
    if (csip_msg_status(resp) >= 200 && csip_msg_status(resp) < 300 &&
        csip_msg_method(resp) == CSIP_METHOD_INVITE && csip_msg_call_id(resp, &cid) == 0 &&
        (k = call_of(cid)) >= 0 && !W.calls[k].no_ack) {
        call *c = &W.calls[k];
        csip_msg *ack = in_dialog(c, resp, "ACK", 1, 99);
        (void)csip_txn_layer_send_stateless(l, ack, sim_addr_tp(W.ep[P], c->tp), now());
        csip_msg_free(ack);
    }
}

static void a_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)why;
    (void)ud;
    cside *sd = side_of(t);
    if (!sd)
        return;
    sd->terms++;
    sd->ct = NULL;
}

static void act_call(sim *s, void *arg)
{
    (void)s;
    call *c = arg;
    char mf[32] = "";
    if (c->max_forwards != UINT32_MAX)
        snprintf(mf, sizeof mf, "Max-Forwards: %u\r\n", c->max_forwards);
    csip_msg *req = parse_text("%s %s SIP/2.0\r\n"
                               "Via: SIP/2.0/%s 10.0.1.1:5060;branch=z9hG4bKa%s;rport\r\n"
                               "%s"
                               "From: <sip:alice@example.com>;tag=fa%d\r\n"
                               "To: <%s>\r\n"
                               "Call-ID: %s\r\n"
                               "CSeq: 1 %s\r\n"
                               "Contact: <sip:alice@10.0.1.1:5060>\r\n"
                               "%s"
                               "Content-Length: 0\r\n\r\n",
                               c->method, c->ruri, csip_transport_name(c->tp), c->cid, mf, c->idx,
                               c->ruri, c->cid, c->method, c->extra);
    if (csip_txn_client_new(sim_layer(W.ep[A]), req, sim_addr_tp(W.ep[P], c->tp), &c->req, now(),
                            &c->req.ct) != 0)
        abort();
}

/* The caller gives up: a CANCEL once a provisional response came (§9.1). */
static void act_cancel(sim *s, void *arg)
{
    call *c = arg;
    if (!c->req.ct || c->req.final)
        return;
    if (csip_txn_state_of(c->req.ct) != CSIP_TXN_PROCEEDING) {
        sim_at(s, now() + 100, act_cancel, c);
        return;
    }
    csip_msg *cancel = NULL;
    if (csip_dialog_cancel_for(csip_txn_request(c->req.ct), NULL, &cancel) != 0)
        abort();
    if (csip_txn_client_new(sim_layer(W.ep[A]), cancel, sim_addr_tp(W.ep[P], c->tp), &c->cancel,
                            now(), &c->cancel.ct) != 0)
        abort();
}

/* A call (or another request) from A, starting at `at` ms. */
static call *add_call(const char *method, const char *ruri, uint64_t at)
{
    if (W.ncalls == MAX_CALLS)
        abort();
    call *c = &W.calls[W.ncalls];
    memset(c, 0, sizeof *c);
    c->idx = W.ncalls++;
    snprintf(c->cid, sizeof c->cid, "c%d-%llu", c->idx, (unsigned long long)W.seed);
    snprintf(c->method, sizeof c->method, "%s", method);
    snprintf(c->ruri, sizeof c->ruri, "%s", ruri);
    c->max_forwards = 70;
    c->tp = CSIP_TP_UDP;
    c->req.c = c->cancel.c = c->bye.c = c;
    c->req.kind = 0;
    c->cancel.kind = 1;
    c->bye.kind = 2;
    c->start_at = at;
    sim_at(W.s, at, act_call, c);
    return c;
}

static void cancel_at(call *c, uint64_t at)
{
    c->cancel_at = at;
    sim_at(W.s, at, act_cancel, c);
}

/* ------------------------------------------------------------------------- */
/* Set-up and tear-down */

static void set_script(int peer, script sc)
{
    for (int i = 0; i < MAX_CALLS; i++)
        W.sc[i][peer] = sc;
}

static void bind_user(const char *user, const char *uri, uint16_t q, const char *path)
{
    if (W.nbind == MAX_BIND)
        abort();
    W.bind[W.nbind++] = (binding){user, uri, path, q};
}

static void add_name(const char *name, const char *ip, int mode)
{
    W.names[W.nnames++] = (name_answer){name, ip, 5060, CSIP_TP_UDP, mode};
}

/* A new world; opts may be NULL. fail_at > 0: the proxy's allocator fails then. */
static void setup_opts(uint64_t seed, const csip_proxy_opts *opts, int fail_at)
{
    memset(&W, 0, sizeof W);
    W.seed = seed;
    W.s = sim_new(seed);
    W.timer_at = UINT64_MAX;
    static const char *const ips[NPEERS] = {"10.0.0.1", "10.0.1.1", "10.0.2.1", "10.0.2.2",
                                            "10.0.2.3", "10.0.2.4", "10.0.3.1"};
    csip_txn_callbacks pcb = {NULL, p_request, p_response, p_stray, p_terminated};
    csip_txn_callbacks acb = {NULL, NULL, a_response, a_stray, a_terminated};
    csip_txn_callbacks ucb = {NULL, ua_request, ua_response, NULL, ua_terminated};
    for (int i = 0; i < NPEERS; i++) {
        csip_txn_callbacks *cb = i == P ? &pcb : i == A ? &acb : &ucb;
        csip_txn_opts to;
        memset(&to, 0, sizeof to);
        if (i >= U1)
            to.timers.trying_ms = 100000; /* no 100 Trying of their own: a provisional only when
                                             the script says so */
        W.ep[i] = sim_endpoint(W.s, ips[i], 5060, i == U4 ? CSIP_TP_TCP : CSIP_TP_UDP, &to, cb,
                               (void *)(intptr_t)i);
        if (i == P || i == A)
            sim_endpoint_alias(W.ep[i], ips[i], 5060, CSIP_TP_TCP);
    }
    if (opts)
        W.popts = *opts;
    if (fail_at > 0) {
        check_failmem_init(&W.fm, 0);
        W.failmem = true;
        W.popts.mem = &W.fm.mem;
    }
    csip_proxy_callbacks cb = {.is_me = h_is_me,
                               .is_my_domain = h_is_my_domain,
                               .locate = h_locate,
                               .authorize = h_authorize,
                               .decorate = h_decorate,
                               .resolve = h_resolve,
                               .local = h_local,
                               .on_done = h_done};
    if (csip_proxy_new(sim_layer(W.ep[P]), &W.popts, &cb, NULL, &W.proxy) != 0)
        abort();
    if (fail_at > 0)
        W.fm.fail_at = W.fm.count + fail_at; /* the allocations after csip_proxy_new() */
    sim_trace(W.s, on_wire, NULL);
}

static void setup(void)
{
    setup_opts(1, NULL, 0);
}

/* Runs until quiet, checks nothing is left, frees everything. With a failing
 * allocator only the absence of leaks is checked: a request whose final
 * response could not even be allocated keeps its server transaction (and its
 * caller waits) until the layer is freed. */
static void finish(void)
{
    sim_run(W.s, UINT64_MAX);
    EXPECT_TRUE(sim_idle(W.s));
    EXPECT_EQ(csip_proxy_next_expiry(W.proxy), UINT64_MAX);
    if (!W.failmem)
        EXPECT_EQ(csip_proxy_count(W.proxy), 0);
    for (int i = 0; i < NPEERS && !W.failmem; i++)
        if (csip_txn_layer_count(sim_layer(W.ep[i])) != 0) {
            EXPECT_EQ(csip_txn_layer_count(sim_layer(W.ep[i])), 0);
            fprintf(stderr, "  (live transactions at %s)\n", peer_name[i]);
        }
    sim_free(W.s);
    csip_proxy_free(W.proxy);
    W.proxy = NULL;
    for (int i = 0; i < W.nsrx; i++)
        csip_msg_free(W.srx[i].ok);
    for (int i = 0; i < W.nwire; i++)
        free(W.wire[i].text);
    if (W.failmem)
        EXPECT_EQ(W.fm.live, 0);
}

/* Prints the wire (debugging: TEST_PROXY_TRACE=1). */
static void dump(void)
{
    if (!getenv("TEST_PROXY_TRACE"))
        return;
    static const char *const fate[] = {"sent", "LOST", "cut", "nowhere", "got"};
    for (int i = 0; i < W.nwire; i++) {
        const wire *w = &W.wire[i];
        if (w->fate == SIM_DELIVERED)
            continue;
        const char *cid = strstr(w->text, "Call-ID: ");
        fprintf(stderr, "%6llu %-2s -> %-2s %-7s %-40s %.12s\n", (unsigned long long)w->t,
                w->from >= 0 ? peer_name[w->from] : "?", w->to >= 0 ? peer_name[w->to] : "-",
                fate[w->fate], line1(w), cid ? cid + 9 : "");
        if (getenv("TEST_PROXY_TRACE")[0] == '2')
            fprintf(stderr, "%s\n", w->text);
    }
}

static void run(void)
{
    sim_run(W.s, UINT64_MAX);
    dump();
}

/* The caller's final responses to its request, in order (retransmissions of a 2xx
 * included); the first one. */
static int final_of(const call *c)
{
    return c->req.final;
}

/* ------------------------------------------------------------------------- */
/* §16.3: request validation */

static void t_max_forwards(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 200});
    call *c0 = add_call("MESSAGE", "sip:bob@example.com", 0);
    c0->max_forwards = 0;
    call *c1 = add_call("MESSAGE", "sip:bob@example.com", 100);
    c1->max_forwards = 1;
    call *c2 = add_call("OPTIONS", "sip:bob@example.com", 200);
    c2->max_forwards = 0;
    call *c3 = add_call("MESSAGE", "sip:bob@example.com", 300);
    c3->max_forwards = UINT32_MAX;
    run();
    /* §16.3 step 3: 483 for Max-Forwards 0, and nothing forwarded */
    EXPECT_EQ(final_of(c0), 483);
    /* 1: forwarded with 0 (§16.6 step 3) */
    EXPECT_EQ(final_of(c1), 200);
    const wire *w = got(P, U1, "MESSAGE ", 0);
    EXPECT_CSTR(hdr(w, "Max-Forwards", 0), "0");
    EXPECT_EQ(count_got(P, U1, "MESSAGE "), 2);
    EXPECT_EQ(count_got(P, U1, "OPTIONS "), 0);
    EXPECT_EQ(final_of(c2), 483);
    /* absent: the forwarded copy gets one, 70 */
    EXPECT_EQ(final_of(c3), 200);
    EXPECT_CSTR(hdr(got(P, U1, "MESSAGE ", 1), "Max-Forwards", 0), "70");
    finish();
}

static void t_proxy_require(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 200});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    snprintf(c->extra, sizeof c->extra, "Proxy-Require: foo, bar\r\nRequire: baz\r\n");
    run();
    /* §16.3 step 5: 420 with the unsupported tags; Require is the UAS's business */
    EXPECT_EQ(final_of(c), 420);
    const wire *w = got(P, A, "SIP/2.0 420", 0);
    EXPECT_EQ(hdr_count(w, "Unsupported"), 2);
    EXPECT_CSTR(hdr(w, "Unsupported", 0), "foo");
    EXPECT_CSTR(hdr(w, "Unsupported", 1), "bar");
    EXPECT_EQ(count_got(P, U1, "INVITE "), 0);
    finish();
}

/* ------------------------------------------------------------------------- */
/* A call through the proxy: 100, Record-Route, ACK and BYE along the route */

static void t_invite_basic(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 50, .final = 200, .final_at = 300});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    c->bye_after = true;
    run();
    EXPECT_EQ(final_of(c), 200);
    /* §16.2: 100 Trying at once (A's INVITE arrives at 10, the 100 at 20) and only one */
    const wire *t100 = got(P, A, "SIP/2.0 100", 0);
    ASSERT_TRUE(t100 != NULL);
    EXPECT_EQ(t100->t, 20);
    EXPECT_EQ(count_sent(P, A, "SIP/2.0 100"), 1);
    /* the forwarded INVITE (§16.6) */
    const wire *inv = got(P, U1, "INVITE ", 0);
    ASSERT_TRUE(inv != NULL);
    EXPECT_CSTR(line1(inv), "INVITE sip:bob@10.0.2.1:5060 SIP/2.0");
    EXPECT_CSTR(hdr(inv, "Max-Forwards", 0), "69");
    EXPECT_EQ(strncmp(hdr(inv, "Via", 0), "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKcsp", 43), 0);
    EXPECT_EQ(hdr_count(inv, "Via"), 2);
    EXPECT_EQ(hdr_count(inv, "Record-Route"), 1);
    EXPECT_CSTR(hdr(inv, "Record-Route", 0), "<sip:10.0.0.1:5060;lr>");
    EXPECT_EQ(hdr_count(inv, "Route"), 0);
    /* on_done comes when the final response goes upstream, not 32 s later
     * when the server transaction ends (Timer L) */
    ASSERT_TRUE(W.ndone >= 1);
    EXPECT_EQ(W.done[0], 200);
    EXPECT_TRUE(W.done_at[0] < 1000);
    /* 180 and 200 reach A with P's Via gone */
    const wire *r180 = got(P, A, "SIP/2.0 180", 0);
    EXPECT_EQ(hdr_count(r180, "Via"), 1);
    const wire *ok = got(P, A, "SIP/2.0 200", 0);
    EXPECT_EQ(hdr_count(ok, "Via"), 1);
    EXPECT_CSTR(hdr(ok, "Record-Route", 0), "<sip:10.0.0.1:5060;lr>");
    /* the ACK of the 2xx went through P along the route, statelessly, to U1 */
    const wire *ack = got(P, U1, "ACK ", 0);
    ASSERT_TRUE(ack != NULL);
    EXPECT_CSTR(line1(ack), "ACK sip:U1@10.0.2.1:5060 SIP/2.0");
    EXPECT_EQ(hdr_count(ack, "Route"), 0);
    EXPECT_EQ(hdr_count(ack, "Via"), 2);
    EXPECT_CSTR(hdr(ack, "Max-Forwards", 0), "69");
    EXPECT_EQ(W.peer_acks[U1], 1);
    /* the BYE too, in a transaction, and its 200 came back */
    EXPECT_EQ(c->bye.final, 200);
    const wire *bye = got(P, U1, "BYE ", 0);
    EXPECT_CSTR(line1(bye), "BYE sip:U1@10.0.2.1:5060 SIP/2.0");
    EXPECT_EQ(hdr_count(bye, "Route"), 0);
    /* authorize was asked for the INVITE only (the ACK and BYE follow our Route) */
    EXPECT_EQ(W.auth_calls, 1);
    finish();
}

/* A non-INVITE gets no Record-Route, no 100 from the proxy, and a 180 to it is
 * not forwarded (RFC 4320 §4.1: no provisional but 100 to a non-INVITE). */
static void t_non_invite(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 10, .final = 202, .final_at = 100});
    call *c = add_call("MESSAGE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 202);
    const wire *m = got(P, U1, "MESSAGE ", 0);
    EXPECT_EQ(hdr_count(m, "Record-Route"), 0);
    EXPECT_EQ(count_sent(P, A, "SIP/2.0 100"), 0);
    EXPECT_EQ(count_sent(P, A, "SIP/2.0 180"), 0);
    EXPECT_EQ(W.ndone, 1);
    EXPECT_EQ(W.done[0], 202);
    finish();
}

/* ------------------------------------------------------------------------- */
/* §16.3 step 4: loops and spirals */

static void t_loop(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.3.1:5060", 1000, NULL);
    W.auth_foreign = 0; /* the host lets the request leave for 10.0.3.1 */
    /* X sends the request back to P unchanged: P sends it to bob's binding
     * again (the Request-URI changed: a spiral), then it comes back with the
     * same Request-URI, Route and all: a loop */
    set_script(X, (script){.bounce = true});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(count_got(P, X, "INVITE "), 2);
    const wire *loop = got(P, X, "SIP/2.0 482", 0);
    ASSERT_TRUE(loop != NULL);
    /* X relays the 482 to P's second branch, which relays it to X's first
     * request, and so on up to A */
    EXPECT_EQ(final_of(c), 482);
    finish();
}

static void t_spiral(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.3.1:5060", 1000, NULL);
    bind_user("carol", "sip:carol@10.0.2.2:5060", 1000, NULL);
    set_script(X, (script){.bounce = true, .bounce_ruri = "sip:carol@example.com"});
    set_script(U2, (script){.prov = 180, .final = 486, .final_at = 100});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    /* the request came back with our Via but another Request-URI: a spiral, forwarded */
    EXPECT_EQ(count_got(P, U2, "INVITE "), 1);
    const wire *inv = got(P, U2, "INVITE ", 0);
    EXPECT_EQ(hdr_count(inv, "Via"), 4);
    EXPECT_CSTR(hdr(inv, "Max-Forwards", 0), "67");
    EXPECT_EQ(final_of(c), 486);
    finish();
}

/* Bindings that point back at the proxy itself: every pass after the first is
 * the same request, found as a loop at the third arrival. */
static void t_loop_self(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.0.1:5060", 1000, NULL);
    call *c = add_call("MESSAGE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 482);
    EXPECT_EQ(count_sent(P, P, "MESSAGE "), 2);
    finish();
}

/* A Request-URI on our own address but another port names another server on
 * our host (a user agent's Contact): forwarded, not looked up. */
static void t_same_host(void)
{
    setup();
    sim_endpoint_alias(W.ep[X], "10.0.0.1", 5070, CSIP_TP_UDP);
    set_script(X, (script){.final = 200});
    call *c = add_call("MESSAGE", "sip:svc@10.0.0.1:5070", 0);
    call *c2 = add_call("MESSAGE", "sip:svc@10.0.0.1:5060", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    EXPECT_CSTR(line1(got(P, X, "MESSAGE ", 0)), "MESSAGE sip:svc@10.0.0.1:5070 SIP/2.0");
    /* our own port: the location service (no binding: 480) */
    EXPECT_EQ(final_of(c2), 480);
    finish();
}

/* ------------------------------------------------------------------------- */
/* §16.4 and §16.6: Route processing */

static void t_loose_route(void)
{
    setup();
    set_script(X, (script){.final = 200});
    call *c = add_call("MESSAGE", "sip:bob@far.example.net", 0);
    snprintf(c->extra, sizeof c->extra,
             "Route: <sip:10.0.0.1;lr>\r\nRoute: <sip:10.0.3.1:5060;lr>, <sip:10.0.9.9;lr>\r\n");
    run();
    /* our Route popped; the next hop is the next Route; the Request-URI stays */
    const wire *m = got(P, X, "MESSAGE ", 0);
    ASSERT_TRUE(m != NULL);
    EXPECT_CSTR(line1(m), "MESSAGE sip:bob@far.example.net SIP/2.0");
    EXPECT_EQ(hdr_count(m, "Route"), 2);
    EXPECT_CSTR(hdr(m, "Route", 0), "<sip:10.0.3.1:5060;lr>");
    EXPECT_CSTR(hdr(m, "Route", 1), "<sip:10.0.9.9;lr>");
    EXPECT_EQ(final_of(c), 200);
    /* out of dialog: the host was asked, as for a request leaving for another domain */
    EXPECT_EQ(W.auth_calls, 1);
    finish();
}

/* A Route naming the proxy does not make an out-of-dialog request "ours": the
 * host still decides whether it may leave for another domain. */
static void t_preloaded_route_relay(void)
{
    setup();
    W.auth_foreign = 403;
    set_script(X, (script){.final = 200});
    call *c = add_call("MESSAGE", "sip:victim@far.example.net", 0);
    snprintf(c->extra, sizeof c->extra, "Route: <sip:10.0.0.1;lr>, <sip:10.0.3.1:5060;lr>\r\n");
    run();
    EXPECT_EQ(final_of(c), 403);
    EXPECT_EQ(count_got(P, X, "MESSAGE "), 0);
    finish();
}

/* §16.4: a strict router upstream put our Record-Route URI in the Request-URI
 * and the original Request-URI last in Route. */
static void t_strict_router_in(void)
{
    setup();
    set_script(U1, (script){.final = 200});
    set_script(X, (script){.final = 200});
    /* in dialog (To tag) */
    call *c = add_call("MESSAGE", "sip:10.0.0.1:5060", 0);
    snprintf(c->extra, sizeof c->extra, "Route: <sip:U1@10.0.2.1:5060>\r\n");
    call *c2 = add_call("MESSAGE", "sip:10.0.0.1", 100);
    snprintf(c2->extra, sizeof c2->extra,
             "Route: <sip:10.0.3.1:5060;lr>\r\nRoute: <sip:U1@10.0.2.1:5060>\r\n");
    run();
    const wire *m = got(P, U1, "MESSAGE ", 0);
    ASSERT_TRUE(m != NULL);
    EXPECT_CSTR(line1(m), "MESSAGE sip:U1@10.0.2.1:5060 SIP/2.0");
    EXPECT_EQ(hdr_count(m, "Route"), 0);
    EXPECT_EQ(final_of(c), 200);
    /* with a Route left after the restored one: the next hop is that Route */
    const wire *m2 = got(P, X, "MESSAGE ", 0);
    ASSERT_TRUE(m2 != NULL);
    EXPECT_CSTR(line1(m2), "MESSAGE sip:U1@10.0.2.1:5060 SIP/2.0");
    EXPECT_EQ(hdr_count(m2, "Route"), 1);
    EXPECT_CSTR(hdr(m2, "Route", 0), "<sip:10.0.3.1:5060;lr>");
    EXPECT_EQ(final_of(c2), 200);
    finish();
}

/* §16.6 step 6: the next hop is a strict router (no lr). */
static void t_strict_router_out(void)
{
    setup();
    set_script(X, (script){.final = 200});
    call *c = add_call("MESSAGE", "sip:bob@far.example.net", 0);
    snprintf(c->extra, sizeof c->extra,
             "Route: <sip:10.0.0.1;lr>, <sip:10.0.3.1:5060>, <sip:10.0.9.9;lr>\r\n");
    run();
    const wire *m = got(P, X, "MESSAGE ", 0);
    ASSERT_TRUE(m != NULL);
    EXPECT_CSTR(line1(m), "MESSAGE sip:10.0.3.1:5060 SIP/2.0");
    EXPECT_EQ(hdr_count(m, "Route"), 2);
    EXPECT_CSTR(hdr(m, "Route", 0), "<sip:10.0.9.9;lr>");
    EXPECT_CSTR(hdr(m, "Route", 1), "<sip:bob@far.example.net>");
    EXPECT_EQ(final_of(c), 200);
    finish();
}

/* §16.6 step 4: two Record-Route values when the two sides use different
 * transports (RFC 5658); the callee's BYE then comes back along both. */
static void t_record_route_two(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.4:5060;transport=tcp", 1000, NULL);
    set_script(U4, (script){.prov = 180, .final = 200, .final_at = 50});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    const wire *inv = got(P, U4, "INVITE ", 0);
    ASSERT_TRUE(inv != NULL);
    EXPECT_EQ(strncmp(hdr(inv, "Via", 0), "SIP/2.0/TCP 10.0.0.1:5060;branch=", 33), 0);
    EXPECT_EQ(hdr_count(inv, "Record-Route"), 2);
    EXPECT_CSTR(hdr(inv, "Record-Route", 0), "<sip:10.0.0.1:5060;lr;transport=tcp>");
    EXPECT_CSTR(hdr(inv, "Record-Route", 1), "<sip:10.0.0.1:5060;lr>");
    /* the ACK, over TCP, with both of our Routes gone */
    const wire *ack = got(P, U4, "ACK ", 0);
    ASSERT_TRUE(ack != NULL);
    EXPECT_EQ(hdr_count(ack, "Route"), 0);
    finish();
}

/* RFC 3327: the Path of a binding goes first in the Route set. */
static void t_path(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, "<sip:10.0.3.1:5060;lr>, <sip:10.0.9.8;lr>");
    set_script(X, (script){.final = 200});
    call *c = add_call("MESSAGE", "sip:bob@example.com", 0);
    run();
    const wire *m = got(P, X, "MESSAGE ", 0);
    ASSERT_TRUE(m != NULL);
    EXPECT_CSTR(line1(m), "MESSAGE sip:bob@10.0.2.1:5060 SIP/2.0");
    EXPECT_EQ(hdr_count(m, "Route"), 2);
    EXPECT_CSTR(hdr(m, "Route", 0), "<sip:10.0.3.1:5060;lr>");
    EXPECT_CSTR(hdr(m, "Route", 1), "<sip:10.0.9.8;lr>");
    EXPECT_EQ(final_of(c), 200);
    finish();
}

/* ------------------------------------------------------------------------- */
/* §16.5: targets */

static void t_locate_404_480(void)
{
    setup();
    call *c1 = add_call("INVITE", "sip:nobody@example.com", 0);
    call *c2 = add_call("INVITE", "sip:bob@example.com", 0);
    call *c3 = add_call("MESSAGE", "sip:broken@example.com", 0);
    run();
    EXPECT_EQ(final_of(c1), 404);
    EXPECT_EQ(final_of(c2), 480);
    EXPECT_EQ(final_of(c3), 500);
    finish();
}

static void t_authorize(void)
{
    setup();
    W.auth_foreign = 403;
    W.auth_local = 407;
    call *c1 = add_call("INVITE", "sip:bob@far.example.net", 0);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    call *c2 = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c1), 403);
    EXPECT_EQ(final_of(c2), 407);
    /* decorate added the challenge to the proxy's own 407 */
    const wire *w = got(P, A, "SIP/2.0 407", 0);
    EXPECT_CSTR(hdr(w, "Proxy-Authenticate", 0), "Digest realm=\"example.com\", nonce=\"n1\"");
    EXPECT_EQ(count_got(P, U1, "INVITE "), 0);
    /* the proxy's To tag: 8 random hex digits, then a sequence (RFC 3261 §19.3) */
    const char *to = hdr(w, "To", 0);
    const char *tag = to ? strstr(to, ";tag=") : NULL;
    ASSERT_TRUE(tag != NULL);
    EXPECT_TRUE(strlen(tag + 5) >= 9);
    finish();

    /* credentials for our realm are consumed here (RFC 3261 §22.3), others go on */
    setup();
    W.auth_local = 0;
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 200});
    c2 = add_call("MESSAGE", "sip:bob@example.com", 0);
    snprintf(c2->extra, sizeof c2->extra,
             "Proxy-Authorization: Digest username=\"a\", realm=\"example.com\", nonce=\"n1\","
             " uri=\"sip:bob@example.com\", response=\"0\"\r\n"
             "Proxy-Authorization: Digest username=\"a\", realm=\"far.example.net\","
             " nonce=\"n2\", uri=\"sip:bob@example.com\", response=\"0\"\r\n");
    run();
    EXPECT_EQ(final_of(c2), 200);
    const wire *fw = got(P, U1, "MESSAGE ", 0);
    ASSERT_TRUE(fw != NULL);
    EXPECT_EQ(hdr_count(fw, "Proxy-Authorization"), 1);
    EXPECT_TRUE(strstr(hdr(fw, "Proxy-Authorization", 0), "far.example.net") != NULL);
    finish();

    /* without an authorize callback: foreign requests are refused (no open relay) */
    setup();
    csip_proxy_free(W.proxy);
    csip_proxy_callbacks cb = {.is_me = h_is_me,
                               .is_my_domain = h_is_my_domain,
                               .locate = h_locate,
                               .resolve = h_resolve,
                               .local = h_local};
    ASSERT_OK(csip_proxy_new(sim_layer(W.ep[P]), NULL, &cb, NULL, &W.proxy));
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 200});
    c1 = add_call("MESSAGE", "sip:bob@far.example.net", 0);
    c2 = add_call("MESSAGE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c1), 403);
    EXPECT_EQ(final_of(c2), 200);
    finish();
}

/* ------------------------------------------------------------------------- */
/* §16.6, §16.7: forking and the best response */

/* Three targets of equal q in parallel: the first 2xx goes to A, the others
 * are cancelled, each only after it sent a provisional (§16.10, §9.1). */
static void t_parallel_fork(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 500, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 500, NULL);
    bind_user("bob", "sip:bob@10.0.2.3:5060", 500, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 50, .final = 200, .final_at = 300});
    set_script(U2, (script){.prov = 183, .prov_at = 100, .final = 480, .final_at = 60000});
    set_script(U3, (script){.prov = 180, .prov_at = 2000, .final = 480, .final_at = 60000});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    c->bye_after = true;
    run();
    EXPECT_EQ(final_of(c), 200);
    for (int i = 0; i < c->req.n; i++)
        EXPECT_TRUE(c->req.codes[i] < 300);
    EXPECT_EQ(count_got(P, U1, "INVITE "), 1);
    EXPECT_EQ(count_got(P, U2, "INVITE "), 1);
    EXPECT_EQ(count_got(P, U3, "INVITE "), 2); /* and the retransmission (Timer A) */
    /* U2 rang: cancelled right after the 2xx (U1's 200 reaches P at 330) */
    const wire *c2 = got(P, U2, "CANCEL ", 0);
    ASSERT_TRUE(c2 != NULL);
    EXPECT_EQ(c2->t, 340);
    /* U3 had sent nothing: its CANCEL waits for a provisional, the 100 its layer
     * sends for P's retransmission of the INVITE (Timer A: sent at 510, at U3 at
     * 520, the 100 at P at 530) */
    const wire *c3 = got(P, U3, "CANCEL ", 0);
    ASSERT_TRUE(c3 != NULL);
    EXPECT_EQ(c3->t, 540);
    EXPECT_TRUE(got(U3, P, "SIP/2.0 100", 0) != NULL);
    EXPECT_EQ(count_got(U3, P, "SIP/2.0 180"), 0);
    EXPECT_EQ(count_got(P, U1, "CANCEL "), 0);
    /* their 487s stay at P */
    EXPECT_EQ(count_got(U2, P, "SIP/2.0 487"), 1);
    EXPECT_EQ(count_got(U3, P, "SIP/2.0 487"), 1);
    EXPECT_EQ(count_got(P, A, "SIP/2.0 487"), 0);
    /* provisionals of all branches reached A before the 2xx */
    EXPECT_EQ(count_got(P, A, "SIP/2.0 183"), 1);
    EXPECT_EQ(c->bye.final, 200);
    EXPECT_EQ(W.peer_acks[U1], 1);
    finish();
}

/* Two 2xx from two branches: both go to A (§16.7 step 5), A ACKs both. */
static void t_two_2xx(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .final = 200, .final_at = 100});
    set_script(U2, (script){.final = 200, .final_at = 100});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    EXPECT_EQ(c->n2xx, 2);
    EXPECT_EQ(W.peer_acks[U1], 1);
    EXPECT_EQ(W.peer_acks[U2], 1);
    finish();

    /* a non-INVITE has one final response: the second 2xx stays at P */
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    set_script(U1, (script){.final = 200, .final_at = 100});
    set_script(U2, (script){.final = 202, .final_at = 200});
    c = add_call("MESSAGE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    EXPECT_EQ(count_sent(P, A, "SIP/2.0 2"), 1);
    EXPECT_EQ(count_got(U2, P, "SIP/2.0 202"), 1);
    finish();
}

/* Serial forking: q 1.0 first; the 0.5 group only after it failed. */
static void t_serial_fork(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.2:5060", 500, NULL);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.3:5060", 500, NULL);
    set_script(U1, (script){.prov = 180, .final = 486, .final_at = 1000});
    set_script(U2, (script){.final = 404, .final_at = 100});
    set_script(U3, (script){.prov = 180, .final = 200, .final_at = 300});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    const wire *i1 = got(P, U1, "INVITE ", 0), *i2 = got(P, U2, "INVITE ", 0),
               *i3 = got(P, U3, "INVITE ", 0);
    ASSERT_TRUE(i1 && i2 && i3);
    EXPECT_EQ(i1->t, 20);
    /* U1's 486 reaches P at 1030: then U2 and U3 together */
    EXPECT_EQ(i2->t, 1040);
    EXPECT_EQ(i3->t, 1040);
    finish();

    /* a 6xx ends the search: the lower q group is never tried */
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 100, NULL);
    set_script(U1, (script){.final = 603, .final_at = 100});
    set_script(U2, (script){.final = 200});
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 603);
    EXPECT_EQ(count_got(P, U2, "INVITE "), 0);
    finish();
}

/* §16.7 step 6. */
static void t_best_response(void)
{
    /* lowest class; within 4xx the ones that help a retry (407) first */
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.3:5060", 1000, NULL);
    set_script(U1, (script){.final = 503, .final_at = 10});
    set_script(U2, (script){.final = 486, .final_at = 20});
    set_script(U3, (script){.final = 407,
                            .final_at = 30,
                            .final_hdrs = "Proxy-Authenticate: Digest realm=\"u3\"\r\n"});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 407);
    finish();

    /* 503 becomes 500; the lowest class wins over 5xx */
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    set_script(U1, (script){.final = 503, .final_at = 10});
    set_script(U2, (script){.final = 503, .final_at = 20});
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 500);
    finish();

    /* 3xx is the lowest class */
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    set_script(U1, (script){.final = 404, .final_at = 10});
    set_script(
        U2,
        (script){.final = 302, .final_at = 20, .final_hdrs = "Contact: <sip:bob@10.0.9.1>\r\n"});
    c = add_call("MESSAGE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 302);
    EXPECT_CSTR(hdr(got(P, A, "SIP/2.0 302", 0), "Contact", 0), "<sip:bob@10.0.9.1>");
    finish();

    /* a 6xx wins and cancels the branches still ringing */
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 10, .final = 480, .final_at = 60000});
    set_script(U2, (script){.final = 603, .final_at = 200});
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 603);
    EXPECT_EQ(count_got(P, U1, "CANCEL "), 1);
    EXPECT_EQ(count_got(P, A, "SIP/2.0 487"), 0);
    finish();

    /* nobody answered: 408 (both targets are black holes) */
    setup();
    bind_user("bob", "sip:bob@10.0.9.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.9.2:5060", 1000, NULL);
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 408);
    EXPECT_FALSE(c->req.final_null);
    finish();

    /* a timeout (408) on one branch and a 500 on another: the 4xx class wins */
    setup();
    bind_user("bob", "sip:bob@10.0.9.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 500, .final_at = 10});
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 408);
    finish();
}

/* §16.7 step 7: the challenges of every 401 and 407 in the one response. */
static void t_merge_auth(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.3:5060", 1000, NULL);
    set_script(U1, (script){.final = 401,
                            .final_at = 10,
                            .final_hdrs = "WWW-Authenticate: Digest realm=\"u1\", nonce=\"a\"\r\n"
                                          "WWW-Authenticate: Digest realm=\"u1\", nonce=\"b\", "
                                          "algorithm=SHA-256\r\n"});
    set_script(U2, (script){.final = 486, .final_at = 20});
    set_script(U3,
               (script){.final = 407,
                        .final_at = 30,
                        .final_hdrs = "Proxy-Authenticate: Digest realm=\"u3\", nonce=\"c\"\r\n"});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_TRUE(final_of(c) == 401 || final_of(c) == 407);
    const wire *w = got(P, A, final_of(c) == 401 ? "SIP/2.0 401" : "SIP/2.0 407", 0);
    EXPECT_EQ(hdr_count(w, "WWW-Authenticate"), 2);
    EXPECT_EQ(hdr_count(w, "Proxy-Authenticate"), 1);
    EXPECT_CSTR(hdr(w, "WWW-Authenticate", 0), "Digest realm=\"u1\", nonce=\"a\"");
    EXPECT_CSTR(hdr(w, "WWW-Authenticate", 1),
                "Digest realm=\"u1\", nonce=\"b\", algorithm=SHA-256");
    EXPECT_CSTR(hdr(w, "Proxy-Authenticate", 0), "Digest realm=\"u3\", nonce=\"c\"");
    finish();
}

/* ------------------------------------------------------------------------- */
/* §16.10: CANCEL */

static void t_cancel(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 10, .final = 480, .final_at = 60000});
    set_script(U2, (script){.prov = 183, .prov_at = 20, .final = 480, .final_at = 60000});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    cancel_at(c, 1000);
    run();
    /* 200 to the CANCEL at once, a CANCEL to each ringing branch, the 487 up */
    EXPECT_EQ(c->cancel.final, 200);
    const wire *ok = got(P, A, "SIP/2.0 200", 0);
    ASSERT_TRUE(ok != NULL);
    EXPECT_EQ(ok->t, 1020);
    const wire *k1 = got(P, U1, "CANCEL ", 0), *k2 = got(P, U2, "CANCEL ", 0);
    ASSERT_TRUE(k1 && k2);
    EXPECT_EQ(k1->t, 1020);
    EXPECT_EQ(k2->t, 1020);
    EXPECT_EQ(final_of(c), 487);
    EXPECT_EQ(c->req.final_at, 1040);
    /* the CANCELs are the forwarded INVITEs' (§9.1): same branch, Request-URI */
    const wire *i1 = got(P, U1, "INVITE ", 0);
    EXPECT_CSTR(hdr(k1, "Via", 0), hdr(i1, "Via", 0));
    EXPECT_EQ(strcmp(line1(k1) + 7, line1(i1) + 7), 0);
    finish();
}

/* A CANCEL before any branch rang: the CANCELs wait for the provisionals. */
static void t_cancel_early(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 3000, .final = 480, .final_at = 60000});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    cancel_at(c, 100); /* A has P's 100: it may cancel */
    run();
    EXPECT_EQ(c->cancel.final, 200);
    /* U1's first provisional is the 100 its layer sends for P's retransmission
     * of the INVITE (sent at 510, at U1 at 520, at P at 530) */
    const wire *k = got(P, U1, "CANCEL ", 0);
    ASSERT_TRUE(k != NULL);
    EXPECT_EQ(k->t, 540);
    EXPECT_EQ(final_of(c), 487);
    finish();
}

static void t_cancel_481(void)
{
    setup();
    call *c = add_call("CANCEL", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 481);
    finish();
}

/* ------------------------------------------------------------------------- */
/* §16.8: Timer C */

static void t_timer_c(void)
{
    csip_proxy_opts o = {.timer_c_ms = 5000};
    /* a branch that rang and then went quiet: cancelled when Timer C fires,
     * counted from its last provisional */
    setup_opts(1, &o, 0);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .prov_at = 1000, .final = 480, .final_at = 600000});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    const wire *k = got(P, U1, "CANCEL ", 0);
    ASSERT_TRUE(k != NULL);
    EXPECT_EQ(k->t, 1030 + 5000 + 10);
    EXPECT_EQ(final_of(c), 487);
    finish();

    /* a 100 Trying does not reset Timer C (§16.7 step 2: only 101-199) */
    setup_opts(1, &o, 0);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 100, .prov_at = 2000, .final = 480, .final_at = 600000});
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    k = got(P, U1, "CANCEL ", 0);
    ASSERT_TRUE(k != NULL);
    EXPECT_EQ(k->t, 10 + 5000 + 10);
    EXPECT_EQ(final_of(c), 487);
    finish();

    /* a branch without any response: as if it got a 408, when Timer C fires */
    setup_opts(1, &o, 0);
    bind_user("bob", "sip:bob@10.0.9.1:5060", 1000, NULL);
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 408);
    EXPECT_FALSE(c->req.final_null);
    EXPECT_EQ(c->req.final_at, 10 + 5000 + 10);
    finish();
}

/* Timer C stood in for a branch (408 upstream), which answers later: a 2xx
 * still goes upstream (by the Via: the server transaction has its final
 * response), and a provisional gets the branch cancelled. */
static void t_timer_c_late(void)
{
    csip_proxy_opts o = {.timer_c_ms = 5000};
    setup_opts(1, &o, 0);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 200});
    sim_partition(W.s, W.ep[P], W.ep[U1], 0, 6000);
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    c->no_ack = true;
    run();
    EXPECT_EQ(final_of(c), 408);
    EXPECT_EQ(c->req.final_at, 5020);
    /* the INVITE retransmitted at 7510 reaches U1, whose 200 comes back */
    const wire *ok = got(P, A, "SIP/2.0 200", 0);
    ASSERT_TRUE(ok != NULL);
    EXPECT_EQ(ok->t, 7540);
    EXPECT_EQ(hdr_count(ok, "Via"), 1);
    finish();

    setup_opts(1, &o, 0);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .final = 480, .final_at = 60000});
    sim_partition(W.s, W.ep[P], W.ep[U1], 0, 6000);
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 408);
    const wire *k = got(P, U1, "CANCEL ", 0);
    ASSERT_TRUE(k != NULL);
    EXPECT_EQ(k->t, 7540);
    EXPECT_EQ(count_got(P, A, "SIP/2.0 180"), 0);
    finish();
}

/* ------------------------------------------------------------------------- */
/* Stateless parts: ACK of a 2xx, stray 2xx */

/* Without Record-Route the caller's ACK has no Route: it names the user, and
 * goes where the user is registered. */
static void t_ack_located(void)
{
    csip_proxy_opts o = {.no_record_route = true};
    setup_opts(1, &o, 0);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, "<sip:10.0.3.1:5060;lr>");
    set_script(X, (script){.final = 200});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    c->no_ack = true;
    run();
    EXPECT_EQ(final_of(c), 200);
    const wire *inv = got(P, X, "INVITE ", 0);
    EXPECT_EQ(hdr_count(inv, "Record-Route"), 0);
    /* A's own ACK to the AOR, through P */
    csip_msg *ack = parse_text("ACK sip:bob@example.com SIP/2.0\r\n"
                               "Via: SIP/2.0/UDP 10.0.1.1:5060;branch=z9hG4bKack1\r\n"
                               "Max-Forwards: 70\r\n"
                               "From: <sip:alice@example.com>;tag=fa0\r\n"
                               "To: <sip:bob@example.com>;tag=tX-0\r\n"
                               "Call-ID: %s\r\n"
                               "CSeq: 1 ACK\r\n"
                               "Content-Length: 0\r\n\r\n",
                               c->cid);
    EXPECT_OK(csip_txn_layer_send_stateless(sim_layer(W.ep[A]), ack, sim_addr(W.ep[P]), now()));
    csip_msg_free(ack);
    run();
    const wire *a = got(P, X, "ACK ", 0);
    ASSERT_TRUE(a != NULL);
    EXPECT_CSTR(line1(a), "ACK sip:bob@10.0.2.1:5060 SIP/2.0");
    /* the binding's Path applies to it as to the INVITE */
    EXPECT_CSTR(hdr(a, "Route", 0), "<sip:10.0.3.1:5060;lr>");
    EXPECT_CSTR(hdr(a, "Max-Forwards", 0), "69");
    finish();
}

/* The callee retransmits its 2xx after the proxy's client transaction ended
 * (Timer M): forwarded by the Via, statelessly. */
static void t_stray_2xx(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.prov = 180, .final = 200, .final_at = 100});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    int before = count_got(P, A, "SIP/2.0 200");
    /* U1's 2xx again, long after every transaction ended */
    srx *r = NULL;
    for (int i = 0; i < W.nsrx; i++)
        if (W.srx[i].peer == U1 && W.srx[i].invite)
            r = &W.srx[i];
    ASSERT_TRUE(r != NULL);
    const wire *ok = got(U1, P, "SIP/2.0 200", 0);
    ASSERT_TRUE(ok != NULL);
    csip_msg *again = parse_text("%s", ok->text);
    EXPECT_OK(csip_txn_layer_send_stateless(sim_layer(W.ep[U1]), again, NULL, now()));
    csip_msg_free(again);
    run();
    EXPECT_EQ(count_got(P, A, "SIP/2.0 200"), before + 1);
    EXPECT_EQ(W.a_stray, 1);
    const wire *fw = got(P, A, "SIP/2.0 200", before);
    EXPECT_EQ(hdr_count(fw, "Via"), 1);
    finish();
}

/* ------------------------------------------------------------------------- */
/* Next hops by name (RFC 3263 through the host) */

static void t_resolve(void)
{
    /* at once, later, failing */
    setup();
    W.resolve_delay = 300;
    add_name("b1.example.net", "10.0.2.1", 0);
    add_name("b2.example.net", "10.0.2.2", 1);
    add_name("nx.example.net", "10.0.2.3", 2);
    add_name("empty.example.net", "10.0.2.3", 3);
    set_script(U1, (script){.final = 200});
    set_script(U2, (script){.final = 202});
    call *c1 = add_call("MESSAGE", "sip:bob@b1.example.net", 0);
    call *c2 = add_call("MESSAGE", "sip:bob@b2.example.net", 0);
    call *c3 = add_call("MESSAGE", "sip:bob@nx.example.net", 0);
    call *c4 = add_call("MESSAGE", "sip:bob@empty.example.net", 0);
    run();
    EXPECT_EQ(final_of(c1), 200);
    EXPECT_EQ(final_of(c2), 202);
    EXPECT_EQ(at_of(got(P, U2, "MESSAGE ", 0)), 10 + 300 + 10);
    /* unreachable: as a 503, which the proxy turns into 500 */
    EXPECT_EQ(final_of(c3), 500);
    EXPECT_EQ(final_of(c4), 500);
    finish();

    /* parallel targets, one resolved later: the other's 2xx, then the late one is not sent */
    setup();
    W.resolve_delay = 1000;
    add_name("b2.example.net", "10.0.2.2", 1);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    bind_user("bob", "sip:bob@b2.example.net", 1000, NULL);
    set_script(U1, (script){.prov = 180, .final = 200, .final_at = 100});
    set_script(U2, (script){.final = 200});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 200);
    EXPECT_EQ(count_got(P, U2, "INVITE "), 0);
    finish();

    /* the server transaction ends before the answer (a TCP caller whose
     * connection broke when P sent its 100 Trying) */
    setup();
    W.resolve_delay = 1000;
    add_name("b2.example.net", "10.0.2.2", 1);
    set_script(U2, (script){.final = 200});
    c = add_call("INVITE", "sip:bob@b2.example.net", 0);
    c->tp = CSIP_TP_TCP;
    sim_partition(W.s, W.ep[A], W.ep[P], 5, 100000);
    run();
    EXPECT_EQ(count_got(P, U2, "INVITE "), 0);
    EXPECT_EQ(W.resolves, 1);
    finish();

    /* a CANCEL while the next hop is being resolved: 487 at once */
    setup();
    W.resolve_delay = 5000;
    add_name("b2.example.net", "10.0.2.2", 1);
    set_script(U2, (script){.final = 200});
    c = add_call("INVITE", "sip:bob@b2.example.net", 0);
    cancel_at(c, 100);
    run();
    EXPECT_EQ(final_of(c), 487);
    EXPECT_LT(c->req.final_at, 200);
    EXPECT_EQ(count_got(P, U2, "INVITE "), 0);
    finish();
}

/* A TCP target that cannot be reached: the send fails inside the forwarding. */
static void t_transport_error(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.9.1:5060;transport=tcp", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.9.2:5060;transport=tcp", 500, NULL);
    bind_user("bob", "sip:bob@10.0.2.1:5060", 100, NULL);
    set_script(U1, (script){.prov = 180, .final = 486, .final_at = 100});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    /* both TCP targets failed at once (503 each): the third group answered */
    EXPECT_EQ(final_of(c), 486);
    EXPECT_EQ(at_of(got(P, U1, "INVITE ", 0)), 20);
    finish();

    setup();
    bind_user("bob", "sip:bob@10.0.9.1:5060;transport=tcp", 1000, NULL);
    c = add_call("INVITE", "sip:bob@example.com", 0);
    run();
    EXPECT_EQ(final_of(c), 500);
    finish();
}

/* A request with as many header lines as the parse limits allow cannot take
 * our Via: 500, nothing sent (the proxy never builds what a parser refuses). */
static void t_header_limit(void)
{
    setup();
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, NULL);
    set_script(U1, (script){.final = 200});
    call *c = add_call("MESSAGE", "sip:bob@example.com", 0);
    size_t n = 0;
    /* 8 lines of ours (Via … Content-Length) and these: the limit */
    for (unsigned i = 0; i < CSIP_DEFAULT_MAX_HEADERS - 8; i++)
        n += (size_t)snprintf(c->extra + n, sizeof c->extra - n, "X-%u: 1\r\n", i % 10);
    ASSERT_LT(n, sizeof c->extra - 1);
    call *c2 = add_call("MESSAGE", "sip:bob@example.com", 100);
    for (unsigned i = 0, k = 0; i < CSIP_DEFAULT_MAX_HEADERS - 9; i++)
        k += (unsigned)snprintf(c2->extra + k, sizeof c2->extra - k, "X-%u: 1\r\n", i % 10);
    run();
    EXPECT_EQ(final_of(c), 500);
    EXPECT_EQ(count_sent(P, U1, "MESSAGE "), 1); /* c2's: one line fewer fits */
    EXPECT_EQ(final_of(c2), 200);
    finish();
}

/* ------------------------------------------------------------------------- */
/* The API itself */

static void t_api(void)
{
    /* the loop hash: the top Via does not count (a returning request has
     * another one), the Request-URI, a Route or Proxy-Authorization do */
    static const char base[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                               "Via: SIP/2.0/UDP %s;branch=z9hG4bK1\r\n"
                               "From: <sip:a@example.com>;tag=1\r\n"
                               "To: <sip:bob@example.com>\r\n"
                               "Call-ID: h1\r\n"
                               "CSeq: 1 INVITE\r\n"
                               "%s"
                               "Content-Length: 0\r\n\r\n";
    char h1[9], h2[9], h3[9], h4[9];
    csip_msg *m1 = parse_text(base, "10.0.0.9", "");
    csip_msg *m2 = parse_text(base, "10.0.0.8:5070", "");
    csip_msg *m3 = parse_text(base, "10.0.0.9", "Route: <sip:10.0.0.1;lr>\r\n");
    csip_msg *m4 = parse_text(base, "10.0.0.9", "Proxy-Authorization: Digest username=\"a\"\r\n");
    EXPECT_OK(csip_proxy_loop_hash(m1, h1));
    EXPECT_OK(csip_proxy_loop_hash(m2, h2));
    EXPECT_OK(csip_proxy_loop_hash(m3, h3));
    EXPECT_OK(csip_proxy_loop_hash(m4, h4));
    EXPECT_EQ(strlen(h1), 8);
    EXPECT_CSTR(h1, h2);
    EXPECT_TRUE(strcmp(h1, h3) != 0);
    EXPECT_TRUE(strcmp(h1, h4) != 0);
    EXPECT_EQ(csip_proxy_loop_hash(NULL, h1), CSIP_ERR_INVALID_ARG);
    csip_msg_free(m1);
    csip_msg_free(m2);
    csip_msg_free(m3);
    csip_msg_free(m4);

    /* csip_proxy_new */
    setup();
    csip_proxy *p = NULL;
    csip_proxy_callbacks cb = {.is_me = h_is_me, .local = h_local};
    csip_proxy_callbacks no_local = {.is_me = h_is_me};
    EXPECT_EQ(csip_proxy_new(NULL, NULL, &cb, NULL, &p), CSIP_ERR_INVALID_ARG);
    EXPECT_TRUE(p == NULL);
    EXPECT_EQ(csip_proxy_new(sim_layer(W.ep[P]), NULL, &no_local, NULL, &p), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_proxy_new(sim_layer(W.ep[P]), NULL, NULL, NULL, &p), CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_proxy_new(sim_layer(W.ep[P]), NULL, &cb, NULL, NULL), CSIP_ERR_INVALID_ARG);
    check_failmem fm;
    check_failmem_init(&fm, 1);
    csip_proxy_opts o = {.mem = &fm.mem};
    EXPECT_EQ(csip_proxy_new(sim_layer(W.ep[P]), &o, &cb, NULL, &p), CSIP_ERR_NOMEM);
    EXPECT_EQ(fm.live, 0);
    /* NULL is a no-op everywhere */
    csip_proxy_free(NULL);
    csip_proxy_on_request(NULL, NULL, NULL, NULL, 0);
    csip_proxy_on_response(NULL, NULL, NULL, 200, 0);
    csip_proxy_on_stray_response(NULL, NULL, NULL, 0);
    csip_proxy_on_terminated(NULL, NULL, 0);
    csip_proxy_resolved(NULL, 1, NULL, 0, 0);
    csip_proxy_handle_expiry(NULL, 0);
    EXPECT_EQ(csip_proxy_next_expiry(NULL), UINT64_MAX);
    EXPECT_EQ(csip_proxy_count(NULL), 0);
    /* an answer nobody waits for */
    csip_proxy_resolved(W.proxy, 12345, NULL, 0, 0);
    finish();
}

/* ------------------------------------------------------------------------- */
/* A failing allocator: every allocation of the proxy fails in turn */

typedef void (*scenario_fn)(void);

static void sc_fork_cancel(void)
{
    bind_user("bob", "sip:bob@10.0.2.1:5060", 1000, "<sip:10.0.3.1:5060;lr>");
    bind_user("bob", "sip:bob@10.0.2.2:5060", 1000, NULL);
    bind_user("bob", "sip:bob@10.0.2.3:5060", 500, NULL);
    set_script(X, (script){.prov = 180, .prov_at = 10, .final = 480, .final_at = 20000});
    set_script(U2, (script){.prov = 180, .prov_at = 10, .final = 486, .final_at = 100});
    set_script(U3, (script){.prov = 180, .final = 200, .final_at = 100});
    call *c = add_call("INVITE", "sip:bob@example.com", 0);
    c->bye_after = true;
    call *c2 = add_call("INVITE", "sip:bob@example.com", 10);
    cancel_at(c2, 50);
}

static void sc_routes(void)
{
    W.resolve_delay = 100;
    add_name("b2.example.net", "10.0.2.2", 1);
    set_script(U2, (script){.prov = 180,
                            .final = 401,
                            .final_hdrs = "WWW-Authenticate: Digest realm=\"x\"\r\n"});
    set_script(X, (script){.final = 200});
    call *c = add_call("INVITE", "sip:bob@b2.example.net", 0);
    (void)c;
    call *c2 = add_call("MESSAGE", "sip:bob@far.example.net", 0);
    snprintf(c2->extra, sizeof c2->extra,
             "Route: <sip:10.0.0.1;lr>, <sip:10.0.3.1:5060>, <sip:10.0.9.9;lr>\r\n");
    call *c3 = add_call("MESSAGE", "sip:10.0.0.1", 0);
    snprintf(c3->extra, sizeof c3->extra, "Route: <sip:10.0.3.1:5060;lr>, <sip:U1@10.0.2.1>\r\n");
    call *c4 = add_call("CANCEL", "sip:bob@example.com", 0);
    (void)c4;
}

static void failmem_pass(const char *name, scenario_fn fn, const csip_proxy_opts *opts)
{
    int n;
    for (n = 1; n < 5000; n++) {
        setup_opts(7, opts, n);
        fn();
        run();
        int before = check_failures;
        /* every request got a final response (an own 500 at worst), except when
         * even that could not be allocated */
        finish();
        if (check_failures != before) {
            fprintf(stderr, "  (%s, allocation %d failing)\n", name, n);
            return;
        }
        if (W.fm.count < W.fm.fail_at)
            break; /* the allocation to fail was never made: done */
    }
    printf("%s: %d allocations failed in turn\n", name, n - 1);
    EXPECT_LT(n, 5000);
}

static void t_failmem(void)
{
    failmem_pass("fork and cancel", sc_fork_cancel, NULL);
    failmem_pass("routes", sc_routes, NULL);
}

/* ------------------------------------------------------------------------- */
/* Loss: calls over lossy links, many seeds */

static int loss_violations;
static struct {
    uint64_t calls, ok, cancelled, other, synthesized, branches, cancels, seeds;
} LS;

#define LOSS(...)                                                                                  \
    do {                                                                                           \
        if (loss_violations++ < 10) {                                                              \
            fprintf(stderr, "seed %llu: ", (unsigned long long)W.seed);                            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* Did `from` send (delivered: receive) a message starting with prefix for call c to `to`? */
static bool wire_for(int from, int to, const char *prefix, const call *c, bool delivered)
{
    for (int i = 0; i < W.nwire; i++) {
        const wire *w = &W.wire[i];
        if ((w->fate == SIM_DELIVERED) == delivered && w->from == from && w->to == to &&
            starts(w, prefix) && strstr(w->text, c->cid))
            return true;
    }
    return false;
}

/* The final responses P sent to A for call c: whether any 2xx, the distinct
 * other statuses, and when the first of those went. */
typedef struct pfin {
    bool ok2xx;
    int other[8];
    int nother;
    uint64_t other_at;
} pfin;

static void p_finals(const call *c, pfin *f)
{
    memset(f, 0, sizeof *f);
    f->other_at = UINT64_MAX;
    for (int i = 0; i < W.nwire; i++) {
        const wire *w = &W.wire[i];
        if (w->fate == SIM_DELIVERED || w->from != P || w->to != A || !starts(w, "SIP/2.0 ") ||
            w->text[8] == '1' || !strstr(w->text, c->cid))
            continue;
        const char *cs = strstr(w->text, "\r\nCSeq: ");
        if (!cs || strncmp(cs + 10, c->method, strlen(c->method)) != 0)
            continue;
        int code = atoi(w->text + 8);
        if (code < 300) {
            f->ok2xx = true;
            continue;
        }
        if (w->t < f->other_at)
            f->other_at = w->t;
        bool seen = false;
        for (int k = 0; k < f->nother; k++)
            seen |= f->other[k] == code;
        if (!seen && f->nother < 8)
            f->other[f->nother++] = code;
    }
}

/* Did a response with this status to call c's request reach P from a user agent (until `until`)?
 */
static bool reached_p(const call *c, int lo, int hi, uint64_t until)
{
    for (int i = 0; i < W.nwire; i++) {
        const wire *w = &W.wire[i];
        if (w->fate != SIM_DELIVERED || w->to != P || w->from < U1 || !starts(w, "SIP/2.0 ") ||
            w->t > until || !strstr(w->text, c->cid))
            continue;
        const char *cs = strstr(w->text, "\r\nCSeq: ");
        if (!cs || strncmp(cs + 10, c->method, strlen(c->method)) != 0)
            continue;
        int code = atoi(w->text + 8);
        if (code >= lo && code <= hi)
            return true;
    }
    return false;
}

static void loss_seed(uint64_t seed)
{
    setup_opts(seed, NULL, 0);
    sim *s = W.s;
    for (int i = A; i < NPEERS; i++)
        for (int dir = 0; dir < 2; dir++) {
            sim_link l;
            memset(&l, 0, sizeof l);
            l.delay_ms = sim_range(s, 1, 60);
            l.jitter_ms = sim_range(s, 0, 30);
            l.loss = 0.3 * sim_uniform(s);
            l.dup = 0.1 * sim_uniform(s);
            l.reorder = 0.2 * sim_uniform(s);
            l.reorder_ms = sim_range(s, 0, 300);
            sim_set_link(s, dir ? W.ep[P] : W.ep[i], dir ? W.ep[i] : W.ep[P], &l);
        }
    static const char *const uris[] = {
        "sip:bob@10.0.2.1:5060", "sip:bob@10.0.2.2:5060", "sip:bob@10.0.2.3:5060",
        "sip:bob@10.0.2.4:5060;transport=tcp", "sip:bob@10.0.9.1:5060"};
    static const char *const users[] = {"u0", "u1", "u2", "u3"};
    for (int u = 0; u < 4; u++) {
        int nb = (int)sim_range(s, 1, 3);
        for (int k = 0; k < nb; k++)
            bind_user(users[u], uris[sim_range(s, 0, 4)], (uint16_t)(sim_range(s, 1, 2) * 500),
                      NULL);
    }
    int ncalls = (int)sim_range(s, 1, 4);
    for (int k = 0; k < ncalls; k++) {
        for (int p = U1; p <= U4; p++) {
            script sc;
            memset(&sc, 0, sizeof sc);
            switch (sim_range(s, 0, 5)) {
            case 0: /* answers */
                sc = (script){.prov = 180,
                              .prov_at = sim_range(s, 0, 500),
                              .final = 200,
                              .final_at = sim_range(s, 500, 3000)};
                break;
            case 1: /* busy */
                sc = (script){.final = 486, .final_at = sim_range(s, 0, 2000)};
                break;
            case 2: /* rings until cancelled, or 480 after a minute */
                sc = (script){
                    .prov = 180, .prov_at = sim_range(s, 0, 500), .final = 480, .final_at = 60000};
                break;
            case 3: /* declines */
                sc = (script){
                    .prov = 183, .prov_at = 50, .final = 603, .final_at = sim_range(s, 100, 4000)};
                break;
            case 4: /* asks for credentials */
                sc = (script){.final = 401,
                              .final_at = sim_range(s, 0, 1000),
                              .final_hdrs = "WWW-Authenticate: Digest realm=\"r\"\r\n"};
                break;
            default: /* slow 200 */
                sc = (script){.final = 200, .final_at = sim_range(s, 1000, 8000)};
                break;
            }
            W.sc[k][p] = sc;
        }
        bool invite = sim_range(s, 0, 4) != 0;
        char ruri[64];
        snprintf(ruri, sizeof ruri, "sip:%s@example.com", users[sim_range(s, 0, 3)]);
        call *c = add_call(invite ? "INVITE" : "MESSAGE", ruri, sim_range(s, 0, 3000));
        if (sim_range(s, 0, 3) == 0)
            c->tp = CSIP_TP_TCP;
        c->bye_after = invite && sim_range(s, 0, 1);
        if (invite && sim_range(s, 0, 2) == 0)
            cancel_at(c, c->start_at + sim_range(s, 100, 6000));
    }
    sim_run(s, UINT64_MAX);
    dump();
    LS.seeds++;
    LS.branches += (uint64_t)count_sent(P, U1, "INVITE ") + (uint64_t)count_sent(P, U2, "INVITE ") +
                   (uint64_t)count_sent(P, U3, "INVITE ") + (uint64_t)count_sent(P, U4, "INVITE ");
    LS.cancels += (uint64_t)count_sent(P, U1, "CANCEL ") + (uint64_t)count_sent(P, U2, "CANCEL ") +
                  (uint64_t)count_sent(P, U3, "CANCEL ") + (uint64_t)count_sent(P, U4, "CANCEL ");
    for (int k = 0; k < W.ncalls; k++) {
        call *c = &W.calls[k];
        LS.calls++;
        if (c->req.final_null && getenv("TEST_PROXY_TRACE"))
            fprintf(stderr, "seed %llu call %d %s: %d synthesized at %llu\n",
                    (unsigned long long)W.seed, k, c->method, c->req.final,
                    (unsigned long long)c->req.final_at);
        if (c->req.final_null)
            LS.synthesized++;
        else if (c->req.final >= 200 && c->req.final < 300)
            LS.ok++;
        else if (c->req.final == 487)
            LS.cancelled++;
        else
            LS.other++;
        if (c->req.final == 0 || c->req.terms != 1)
            LOSS("call %d: final %d, %d terminations", k, c->req.final, c->req.terms);
        pfin f;
        p_finals(c, &f);
        int other = f.nother ? f.other[0] : 0;
        if (f.nother > 1)
            LOSS("call %d: P sent %d different final responses (%d, %d)", k, f.nother, other,
                 f.other[1]);
        if (f.ok2xx && !reached_p(c, 200, 299, UINT64_MAX))
            LOSS("call %d: a 2xx nobody sent", k);
        if (!f.ok2xx && reached_p(c, 200, 299, UINT64_MAX))
            LOSS("call %d: a 2xx reached P but not A (P sent %d)", k, other);
        /* a 2xx may follow a final response that stood for a branch (its
         * timeout), not come before one */
        if (other && reached_p(c, 200, 299, f.other_at - 1))
            LOSS("call %d: P sent %d after a 2xx had reached it", k, other);
        if (other && other < 600 && reached_p(c, 600, 699, f.other_at))
            LOSS("call %d: a 6xx reached P, A got %d", k, other);
        if (other && other != 408 && other != 500 && other != 487 &&
            !reached_p(c, other, other, f.other_at))
            LOSS("call %d: P sent %d, which no user agent did", k, other);
        /* a real final response at A is one P sent */
        if (c->req.final && !c->req.final_null &&
            !(c->req.final < 300 ? f.ok2xx : c->req.final == other))
            LOSS("call %d: A got %d, P sent something else", k, c->req.final);
        if (c->cancel.ct || (c->cancel_at && c->cancel.terms > 1))
            LOSS("call %d: CANCEL transaction left", k);
        /* once the call was decided (a 2xx or 6xx sent to A, or the caller's
         * CANCEL at P), no branch ringing then may ring on until its own
         * 60 s timeout: it gets a CANCEL (§16.10) once P has had a
         * provisional response from it (§9.1) */
        uint64_t decided = UINT64_MAX;
        for (int i = 0; i < W.nwire; i++) {
            const wire *w = &W.wire[i];
            if (!strstr(w->text, c->cid) || strcmp(c->method, "INVITE") != 0)
                continue;
            bool d =
                (w->fate != SIM_DELIVERED && w->from == P && w->to == A &&
                 (starts(w, "SIP/2.0 2") || starts(w, "SIP/2.0 6"))) ||
                (w->fate == SIM_DELIVERED && w->from == A && w->to == P && starts(w, "CANCEL "));
            if (d && w->t < decided)
                decided = w->t;
        }
        for (int i = 0; i < W.nsrx; i++) {
            const srx *r = &W.srx[i];
            if (r->call == k && r->invite && r->peer >= U1 && r->final == 480 && r->at < decided &&
                r->at + 60000 > decided && wire_for(r->peer, P, "SIP/2.0 1", c, true) &&
                !wire_for(P, r->peer, "CANCEL ", c, false))
                LOSS("call %d: %s left ringing (decided at %llu)", k, peer_name[r->peer],
                     (unsigned long long)decided);
        }
    }
    if (csip_proxy_count(W.proxy) != 0)
        LOSS("%zu response contexts left", csip_proxy_count(W.proxy));
    for (int i = 0; i < NPEERS; i++)
        if (csip_txn_layer_count(sim_layer(W.ep[i])) != 0)
            LOSS("%zu transactions left at %s", csip_txn_layer_count(sim_layer(W.ep[i])),
                 peer_name[i]);
    if (!sim_idle(s) || csip_proxy_next_expiry(W.proxy) != UINT64_MAX)
        LOSS("timers left");
    sim_free(W.s);
    csip_proxy_free(W.proxy);
    W.proxy = NULL;
    for (int i = 0; i < W.nsrx; i++)
        csip_msg_free(W.srx[i].ok);
    for (int i = 0; i < W.nwire; i++)
        free(W.wire[i].text);
}

static uint64_t loss_seeds = 3000, loss_first = 0;

static void t_loss(void)
{
    int bad = 0;
    for (uint64_t seed = loss_first; seed < loss_first + loss_seeds; seed++) {
        int before = loss_violations;
        loss_seed(seed);
        if (loss_violations != before)
            bad++;
    }
    printf("loss: %llu seeds, %llu requests: %llu 2xx, %llu 487, %llu other finals, %llu "
           "timed out at the caller; %llu INVITEs sent to user agents, %llu CANCELs\n",
           (unsigned long long)LS.seeds, (unsigned long long)LS.calls, (unsigned long long)LS.ok,
           (unsigned long long)LS.cancelled, (unsigned long long)LS.other,
           (unsigned long long)LS.synthesized, (unsigned long long)LS.branches,
           (unsigned long long)LS.cancels);
    if (bad)
        fprintf(stderr, "%d of %llu seeds failed\n", bad, (unsigned long long)loss_seeds);
    EXPECT_EQ(bad, 0);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        CHECK_TEST(t_max_forwards),
        CHECK_TEST(t_proxy_require),
        CHECK_TEST(t_invite_basic),
        CHECK_TEST(t_non_invite),
        CHECK_TEST(t_loop),
        CHECK_TEST(t_spiral),
        CHECK_TEST(t_loop_self),
        CHECK_TEST(t_same_host),
        CHECK_TEST(t_loose_route),
        CHECK_TEST(t_preloaded_route_relay),
        CHECK_TEST(t_strict_router_in),
        CHECK_TEST(t_strict_router_out),
        CHECK_TEST(t_record_route_two),
        CHECK_TEST(t_path),
        CHECK_TEST(t_locate_404_480),
        CHECK_TEST(t_authorize),
        CHECK_TEST(t_parallel_fork),
        CHECK_TEST(t_two_2xx),
        CHECK_TEST(t_serial_fork),
        CHECK_TEST(t_best_response),
        CHECK_TEST(t_merge_auth),
        CHECK_TEST(t_cancel),
        CHECK_TEST(t_cancel_early),
        CHECK_TEST(t_cancel_481),
        CHECK_TEST(t_timer_c),
        CHECK_TEST(t_timer_c_late),
        CHECK_TEST(t_ack_located),
        CHECK_TEST(t_stray_2xx),
        CHECK_TEST(t_resolve),
        CHECK_TEST(t_transport_error),
        CHECK_TEST(t_header_limit),
        CHECK_TEST(t_api),
        CHECK_TEST(t_failmem),
        CHECK_TEST(t_loss),
    };
    if (argc > 1 && strcmp(argv[1], "--loss") == 0) {
        if (argc > 2)
            loss_seeds = strtoull(argv[2], NULL, 10);
        if (argc > 3)
            loss_first = strtoull(argv[3], NULL, 10);
        static const check_test only[] = {CHECK_TEST(t_loss)};
        return check_run(only, 1, 1, argv);
    }
    return check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
