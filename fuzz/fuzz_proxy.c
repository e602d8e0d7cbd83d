/*
 * Fuzz target: the proxy core (csip_proxy) on a transaction layer whose send
 * only records, fed requests from callers, responses to the requests it
 * forwarded, CANCELs and ACKs built from what it sent, answers of its
 * resolver and clock steps.
 *
 * The host: the proxy is 192.0.2.1:5060 (and "proxy.test"), its domain
 * example.com. locate() gives each user a set of up to 8 fixed targets (IP
 * literals over UDP, TCP and IPv6, sips, host names resolved at once, later
 * or never, the proxy itself, Path with loose and strict routers, several q
 * values), chosen by a hash of the user name; "nobody" does not exist.
 * authorize() refuses when the record says so. Sends to port 5099 and some
 * message lengths fail (a transport error); what the proxy sends to its own
 * address comes back to it after the record (16 times at most).
 *
 * The input is one byte, then records: a control byte, a two-byte big-endian
 * length, then that many bytes (cut at the end of the input).
 *   byte 0 & 0x3f   the proxy's allocator fails its n-th allocation (0: never)
 *   byte 0 & 0x40   Timer C 4 s (else the default)
 *   byte 0 & 0x80   no Record-Route
 *   control & 7     0 the bytes are a datagram from a caller (UDP); 1 the
 *                   same over TCP (one framed message); 2 a response to the
 *                   k-th request the proxy sent (k = byte 0, status from
 *                   byte 1, the rest inserted as header lines); 3 a CANCEL of
 *                   the k-th request a caller sent; 4 the ACK of the k-th 2xx
 *                   the proxy sent to a caller; 5 the answer to the oldest
 *                   resolve waiting (byte 0 odd: no address); 6 nothing but
 *                   the clock step; 7 the bytes as sent from where the k-th
 *                   request went (k = byte 0)
 *   control >> 3 & 7 the clock advances by 0, 1, 10, 100, 500, 1000, 5000 or
 *                   40000 ms before the record, and the timers due fire
 *   control & 0x40  authorize() refuses out-of-dialog requests (403, 407
 *                   for our domain)
 * FUZZ_PROXY_TRACE=1 prints the first line of everything sent.
 * At the end every resolve still waiting gets "no address", the clock runs
 * until no timer is left, and everything is freed.
 *
 * Properties (abort() when violated): everything the proxy sends parses,
 * with a status in 100..699 for responses; recv returns 0 or NOMEM; after
 * handle_expiry(now) nothing is due at now; the timers run out; then (when
 * no allocation failed) no response context and no transaction is left;
 * after freeing everything the proxy's allocator holds no block.
 */
#include "csip/dialog.h"
#include "csip/proxy.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T "fuzz_proxy"
#define MAX_KEEP 32
#define MAX_WAIT 16

/* A message the proxy sent, or a request a caller sent, kept parsed. */
typedef struct kept {
    csip_msg *m;
    csip_addr dst; /* where it went (sent) */
} kept;

typedef struct fz {
    csip_txn_layer *layer;
    csip_proxy *proxy;
    uint64_t now;
    bool refuse;
    kept fwd[MAX_KEEP]; /* requests the proxy sent (not ACK) */
    size_t nfwd;
    kept up[MAX_KEEP]; /* 2xx the proxy sent upstream */
    size_t nup;
    kept in[MAX_KEEP]; /* requests callers sent */
    size_t nin;
    uint64_t wait[MAX_WAIT]; /* resolve tokens waiting */
    size_t nwait;
    bool trace; /* FUZZ_PROXY_TRACE set: print the first line of what is sent */
    /* what the proxy sent to its own address, delivered back after the record */
    char *loop[4];
    size_t loop_len[4];
    csip_addr loop_src[4];
    size_t nloop, looped;
} fz;

static fz F;

/* Keeps m (transferred); when full, the oldest goes. */
static void keep(kept *k, size_t *n, csip_msg *m, const csip_addr *dst)
{
    if (*n == MAX_KEEP) {
        csip_msg_free(k[0].m);
        memmove(k, k + 1, (MAX_KEEP - 1) * sizeof *k);
        (*n)--;
    }
    k[*n].m = m;
    k[*n].dst = *dst;
    (*n)++;
}

static void drop_all(kept *k, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        csip_msg_free(k[i].m);
    *n = 0;
}

/* ------------------------------------------------------------------------- */
/* The layer */

static int fz_send(csip_txn_layer *l, const csip_addr *dst, const void *data, size_t len, void *ud)
{
    (void)l;
    (void)ud;
    fuzz_touch((csip_str){data, len});
    if (F.trace) {
        size_t n = 0;
        while (n < len && ((const char *)data)[n] != '\r')
            n++;
        char a[64];
        (void)csip_addr_format(dst, a, sizeof a);
        fprintf(stderr, "%6llu -> %s %s: %.*s\n", (unsigned long long)F.now, a,
                csip_transport_name((csip_transport)dst->transport), (int)n, (const char *)data);
    }
    csip_msg *m = NULL;
    if (csip_msg_parse(data, len, NULL, &m, NULL) != 0) {
        fuzz_fail(T, "the proxy sent a message that does not parse", (long)len, 0);
    }
    if (csip_msg_is_request(m)) {
        if (csip_msg_method(m) != CSIP_METHOD_ACK)
            keep(F.fwd, &F.nfwd, m, dst);
        else
            csip_msg_free(m);
    } else {
        int st = csip_msg_status(m);
        if (st < 100 || st > 699)
            fuzz_fail(T, "status out of range", st, 0);
        if (st >= 200 && st < 300 && csip_msg_method(m) == CSIP_METHOD_INVITE)
            keep(F.up, &F.nup, m, dst);
        else
            csip_msg_free(m);
    }
    csip_addr self = *dst;
    (void)csip_addr_set_ip(&self, CSIP_STR("192.0.2.1"));
    self.port = 5060;
    if (csip_addr_equal(dst, &self) && F.nloop < 4 && F.looped < 16) {
        F.loop[F.nloop] = malloc(len ? len : 1);
        if (F.loop[F.nloop]) {
            memcpy(F.loop[F.nloop], data, len);
            F.loop_len[F.nloop] = len;
            F.loop_src[F.nloop] = self;
            F.loop_src[F.nloop].conn = 0;
            F.nloop++;
            F.looped++;
        }
    }
    return dst->port == 5099 || len % 89 == 7 ? CSIP_ERR_TRANSPORT : 0;
}

static void fz_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                       void *ud)
{
    (void)l;
    (void)ud;
    csip_proxy_on_request(F.proxy, st, req, src, F.now);
}

static void fz_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status, void *ud)
{
    (void)l;
    (void)ud;
    csip_proxy_on_response(F.proxy, ct, resp, status, F.now);
}

static void fz_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    (void)l;
    (void)ud;
    csip_proxy_on_stray_response(F.proxy, resp, src, F.now);
}

static void fz_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    (void)why;
    (void)ud;
    if (F.proxy)
        csip_proxy_on_terminated(F.proxy, t, F.now);
}

/* ------------------------------------------------------------------------- */
/* The host */

static bool h_is_me(void *ud, csip_str host, uint16_t port)
{
    (void)ud;
    return (csip_str_eq_c(host, "192.0.2.1") || csip_str_ieq_c(host, "proxy.test")) &&
           (port == 0 || port == 5060);
}

static bool h_is_my_domain(void *ud, csip_str host)
{
    (void)ud;
    return csip_str_ieq_c(host, "example.com") || csip_str_eq_c(host, "192.0.2.1");
}

static const csip_proxy_target targets[] = {
    {CSIP_STR("sip:a@192.0.2.10:5060"), {NULL, 0}, 1000},
    {CSIP_STR("sip:b@192.0.2.11:5060;transport=tcp"), {NULL, 0}, 1000},
    {CSIP_STR("sip:c@sync.test"), CSIP_STR("<sip:192.0.2.20;lr>"), 500},
    {CSIP_STR("sip:d@later.test"), {NULL, 0}, 500},
    {CSIP_STR("sip:e@never.test:5070"), {NULL, 0}, 100},
    {CSIP_STR("sip:f@192.0.2.1:5060"), {NULL, 0}, 100},
    {CSIP_STR("sips:g@192.0.2.12"), CSIP_STR("<sip:192.0.2.21>, <sip:192.0.2.22;lr>"), 1000},
    {CSIP_STR("sip:h@[2001:db8::1]:5099;transport=tcp"), {NULL, 0}, 300},
};

static int h_locate(void *ud, const csip_msg *req, const csip_uri *ruri, csip_proxy_target *out,
                    size_t cap, size_t *n)
{
    (void)ud;
    (void)req;
    *n = 0;
    if (csip_str_eq_c(ruri->user, "nobody"))
        return CSIP_ERR_NOT_FOUND;
    unsigned h = 0;
    for (size_t i = 0; i < ruri->user.len; i++)
        h = h * 31u + (unsigned char)ruri->user.p[i];
    for (size_t i = 0; i < 8 && *n < cap; i++)
        if (h >> i & 1u)
            out[(*n)++] = targets[i];
    return 0;
}

static int h_authorize(void *ud, const csip_msg *req, const csip_addr *src, bool foreign)
{
    (void)ud;
    (void)req;
    (void)src;
    return F.refuse ? (foreign ? 403 : 407) : 0;
}

static void h_decorate(void *ud, const csip_msg *req, csip_msg *resp)
{
    (void)ud;
    (void)req;
    if (csip_msg_status(resp) == 407)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_PROXY_AUTHENTICATE,
                               CSIP_STR("Digest realm=\"example.com\", nonce=\"n\""), false);
}

static int h_resolve(void *ud, const csip_uri *uri, uint64_t token, csip_addr *out)
{
    (void)ud;
    fuzz_touch(uri->raw);
    if (csip_str_ieq_c(uri->host, "sync.test")) {
        memset(out, 0, sizeof *out);
        (void)csip_addr_set_ip(out, CSIP_STR("192.0.2.30"));
        out->port = 5060;
        out->transport = CSIP_TP_UDP;
        return 0;
    }
    if (csip_str_ieq_c(uri->host, "never.test") || token == 0 || F.nwait == MAX_WAIT)
        return CSIP_ERR_NOT_FOUND;
    F.wait[F.nwait++] = token;
    return CSIP_ERR_PAUSE;
}

static int h_local(void *ud, const csip_addr *dst, char *out, size_t cap)
{
    (void)ud;
    int n = snprintf(out, cap, dst->family == 6 ? "[2001:db8::2]:5060" : "192.0.2.1:5060");
    return n < 0 || (size_t)n >= cap ? CSIP_ERR_BUFFER_TOO_SMALL : n;
}

static void h_done(void *ud, const csip_msg *req, const csip_addr *src, int status, size_t branches)
{
    (void)ud;
    (void)src;
    (void)branches;
    fuzz_touch(csip_msg_ruri_raw(req));
    if (status != 0 && (status < 100 || status > 699))
        fuzz_fail(T, "on_done status", status, 0);
}

/* ------------------------------------------------------------------------- */

/* Fires what is due: the layer's timers and Timer C, until neither is due
 * (Timer C can end a transaction, whose removal is then due at once). */
static void run_timers(void)
{
    for (int i = 0; i < 8; i++) {
        csip_txn_layer_handle_expiry(F.layer, F.now);
        csip_proxy_handle_expiry(F.proxy, F.now);
        if (csip_proxy_next_expiry(F.proxy) <= F.now)
            fuzz_fail(T, "Timer C still due", (long)csip_proxy_next_expiry(F.proxy), (long)F.now);
        if (csip_txn_layer_next_expiry(F.layer) > F.now)
            return;
    }
    fuzz_fail(T, "layer timer still due", (long)csip_txn_layer_next_expiry(F.layer), (long)F.now);
}

static void feed(const void *msg, size_t len, const csip_addr *from)
{
    int rc = csip_txn_layer_recv(F.layer, msg, len, from, F.now);
    if (rc != 0 && rc != CSIP_ERR_NOMEM)
        fuzz_fail(T, "csip_txn_layer_recv", rc, 0);
}

/* What the proxy sent to itself arrives (the queue may grow meanwhile). */
static void deliver_loop(void)
{
    for (int i = 0; i < 16 && F.nloop; i++) {
        char *b = F.loop[0];
        size_t len = F.loop_len[0];
        csip_addr src = F.loop_src[0];
        memmove(F.loop, F.loop + 1, --F.nloop * sizeof F.loop[0]);
        memmove(F.loop_len, F.loop_len + 1, F.nloop * sizeof F.loop_len[0]);
        memmove(F.loop_src, F.loop_src + 1, F.nloop * sizeof F.loop_src[0]);
        feed(b, len, &src);
        free(b);
    }
}

static void feed_msg(const csip_msg *m, const csip_addr *from)
{
    char buf[8192];
    int n = csip_msg_print(m, buf, sizeof buf);
    if (n > 0)
        feed(buf, (size_t)n, from);
}

/* A response to a request the proxy sent, with extra header lines inserted. */
static void respond_to(const kept *k, const uint8_t *d, size_t len)
{
    static const int codes[] = {100, 180, 183, 200, 202, 300, 302, 401, 404, 407, 408,
                                415, 420, 480, 484, 486, 487, 500, 503, 600, 603, 699};
    int code = codes[(len > 1 ? d[1] : 0) % (sizeof codes / sizeof codes[0])];
    csip_msg *r = NULL;
    char tag[16];
    snprintf(tag, sizeof tag, "t%u", len ? d[0] : 0);
    if (csip_response_for(k->m, code, NULL, csip_str_c(tag), NULL, &r) != 0)
        return;
    if (code >= 200 && code < 300)
        (void)csip_msg_hdr_add(r, CSIP_HDR_CONTACT, CSIP_STR("<sip:callee@192.0.2.10:5060>"),
                               false);
    for (const csip_hdr *h = csip_msg_hdr_find(k->m, CSIP_HDR_RECORD_ROUTE); h;
         h = csip_msg_hdr_next(k->m, h))
        (void)csip_msg_hdr_add(r, CSIP_HDR_RECORD_ROUTE, h->value, false);
    char buf[8192];
    int n = csip_msg_print(r, buf, sizeof buf - 2);
    csip_msg_free(r);
    if (n < 4)
        return;
    /* the fuzzer's bytes go just before the empty line */
    size_t extra = len > 2 ? len - 2 : 0;
    if ((size_t)n + extra >= sizeof buf)
        extra = sizeof buf - (size_t)n - 1;
    size_t at = (size_t)n - 2;
    memmove(buf + at + extra, buf + at, 2);
    if (extra)
        memcpy(buf + at, d + 2, extra);
    csip_addr from = k->dst;
    feed(buf, (size_t)n + extra, &from);
}

/* The ACK of a 2xx the proxy sent upstream (§13.2.2.4), through the proxy. */
static void ack_of(const kept *k, const csip_addr *caller)
{
    const csip_nameaddr *to, *rr = NULL, *ct = NULL;
    size_t nrr = 0, nct = 0;
    const csip_nameaddr *from;
    const csip_cseq *cseq;
    csip_str cid;
    if (csip_msg_to(k->m, &to) || csip_msg_from(k->m, &from) || csip_msg_call_id(k->m, &cid) ||
        csip_msg_cseq(k->m, &cseq) || csip_msg_nameaddrs(k->m, CSIP_HDR_RECORD_ROUTE, &rr, &nrr) ||
        csip_msg_nameaddrs(k->m, CSIP_HDR_CONTACT, &ct, &nct))
        return;
    char buf[8192];
    size_t n = 0;
    int w =
        snprintf(buf, sizeof buf,
                 "ACK %.*s SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKack%u\r\n"
                 "Max-Forwards: 70\r\n",
                 nct ? (int)ct[0].uri.raw.len : 25,
                 nct ? ct[0].uri.raw.p : "sip:callee@192.0.2.10:5060", cseq->number);
    if (w < 0 || (size_t)w >= sizeof buf)
        return;
    n = (size_t)w;
    for (size_t i = nrr; i-- > 0;) {
        w = snprintf(buf + n, sizeof buf - n, "Route: %.*s\r\n", (int)rr[i].raw.len, rr[i].raw.p);
        if (w < 0 || (size_t)w >= sizeof buf - n)
            return;
        n += (size_t)w;
    }
    w = snprintf(buf + n, sizeof buf - n,
                 "From: %.*s\r\nTo: %.*s\r\nCall-ID: %.*s\r\nCSeq: %u ACK\r\n"
                 "Content-Length: 0\r\n\r\n",
                 (int)from->raw.len, from->raw.p, (int)to->raw.len, to->raw.p, (int)cid.len, cid.p,
                 cseq->number);
    if (w < 0 || (size_t)w >= sizeof buf - n)
        return;
    feed(buf, n + (size_t)w, caller);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t steps[] = {0, 1, 10, 100, 500, 1000, 5000, 40000};
    if (size < 1)
        return 0;
    memset(&F, 0, sizeof F);
    F.now = 1000;
    F.trace = getenv("FUZZ_PROXY_TRACE") != NULL;
    fuzz_failmem fm;
    const csip_mem *memp = fuzz_failmem_init(&fm, 0, 0);
    csip_txn_opts to;
    memset(&to, 0, sizeof to);
    to.max_txns = 256;
    csip_txn_callbacks cb = {fz_send, fz_request, fz_response, fz_stray, fz_terminated};
    if (csip_txn_layer_new(&to, &cb, NULL, &F.layer) != 0)
        return 0;
    csip_proxy_opts po = {.timer_c_ms = (data[0] & 0x40) ? 4000 : 0,
                          .no_record_route = (data[0] & 0x80) != 0,
                          .mem = memp};
    csip_proxy_callbacks pcb = {.is_me = h_is_me,
                                .is_my_domain = h_is_my_domain,
                                .locate = h_locate,
                                .authorize = h_authorize,
                                .decorate = h_decorate,
                                .resolve = h_resolve,
                                .local = h_local,
                                .on_done = h_done};
    if (csip_proxy_new(F.layer, &po, &pcb, NULL, &F.proxy) != 0) {
        csip_txn_layer_free(F.layer);
        return 0;
    }
    fm.fail_at = (data[0] & 0x3f) ? fm.count + (data[0] & 0x3f) : 0;

    csip_addr caller;
    memset(&caller, 0, sizeof caller);
    (void)csip_addr_set_ip(&caller, CSIP_STR("198.51.100.7"));
    caller.port = 5060;
    caller.transport = CSIP_TP_UDP;

    size_t pos = 1;
    for (int rec = 0; rec < 64 && pos + 3 <= size; rec++) {
        uint8_t c = data[pos];
        size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        const uint8_t *d = data + pos;
        pos += len;
        F.now += steps[(c >> 3) & 7];
        run_timers();
        F.refuse = (c & 0x40) != 0;
        switch (c & 7) {
        case 0:
        case 1: {
            csip_addr from = caller;
            if (c & 1) {
                from.transport = CSIP_TP_TCP;
                from.conn = 1;
            }
            csip_msg *m = NULL;
            if (csip_msg_parse(d, len, NULL, &m, NULL) == 0 && csip_msg_is_request(m))
                keep(F.in, &F.nin, m, &from);
            else
                csip_msg_free(m);
            feed(d, len, &from);
            break;
        }
        case 2:
            if (F.nfwd)
                respond_to(&F.fwd[(len ? d[0] : 0) % F.nfwd], d, len);
            break;
        case 3:
            if (F.nin) {
                const kept *k = &F.in[(len ? d[0] : 0) % F.nin];
                csip_msg *cancel = NULL;
                if (csip_dialog_cancel_for(k->m, NULL, &cancel) == 0) {
                    feed_msg(cancel, &k->dst);
                    csip_msg_free(cancel);
                }
            }
            break;
        case 4:
            if (F.nup)
                ack_of(&F.up[(len ? d[0] : 0) % F.nup], &caller);
            break;
        case 5:
            if (F.nwait) {
                uint64_t token = F.wait[0];
                memmove(F.wait, F.wait + 1, --F.nwait * sizeof F.wait[0]);
                csip_addr a;
                memset(&a, 0, sizeof a);
                (void)csip_addr_set_ip(&a, CSIP_STR("192.0.2.31"));
                a.port = len > 1 ? (uint16_t)(5060 + d[1] % 40) : 5060;
                a.transport = len > 2 && (d[2] & 1) ? CSIP_TP_TCP : CSIP_TP_UDP;
                bool none = len && (d[0] & 1);
                csip_proxy_resolved(F.proxy, token, none ? NULL : &a, none ? 0 : 1, F.now);
            }
            break;
        case 6:
            break;
        case 7:
            if (F.nfwd) {
                csip_addr from = F.fwd[(len ? d[0] : 0) % F.nfwd].dst;
                feed(d, len, &from);
            }
            break;
        }
        deliver_loop();
        run_timers();
    }

    /* Every resolve answered (with no address), those asked for meanwhile
     * too, and the clock runs until no timer is left. */
    for (int i = 0; i < 100000; i++) {
        while (F.nwait) {
            uint64_t token = F.wait[--F.nwait];
            csip_proxy_resolved(F.proxy, token, NULL, 0, F.now);
        }
        deliver_loop();
        uint64_t a = csip_txn_layer_next_expiry(F.layer), b = csip_proxy_next_expiry(F.proxy);
        uint64_t t = a < b ? a : b;
        if (t == UINT64_MAX && !F.nwait)
            break;
        if (t < F.now)
            fuzz_fail(T, "next expiry in the past", (long)t, (long)F.now);
        if (t != UINT64_MAX)
            F.now = t;
        run_timers();
    }
    if (csip_txn_layer_next_expiry(F.layer) != UINT64_MAX ||
        csip_proxy_next_expiry(F.proxy) != UINT64_MAX)
        fuzz_fail(T, "timers never run out", 0, 0);
    bool failed = fm.fail_at && fm.count >= fm.fail_at;
    if (!failed && csip_proxy_count(F.proxy) != 0)
        fuzz_fail(T, "response contexts left", (long)csip_proxy_count(F.proxy), 0);
    if (!failed && csip_txn_layer_count(F.layer) != 0)
        fuzz_fail(T, "transactions left", (long)csip_txn_layer_count(F.layer), 0);
    csip_txn_layer_free(F.layer);
    csip_proxy_free(F.proxy);
    F.proxy = NULL;
    drop_all(F.fwd, &F.nfwd);
    drop_all(F.up, &F.nup);
    drop_all(F.in, &F.nin);
    for (size_t i = 0; i < F.nloop; i++)
        free(F.loop[i]);
    if (fm.live != 0)
        fuzz_fail(T, "blocks of the proxy's allocator left", fm.live, 0);
    return 0;
}
