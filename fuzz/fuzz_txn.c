/*
 * Fuzz target: the transaction layer as a server (and a little as a client),
 * fed received messages and a fake clock advanced from the input.
 *
 * The input is a sequence of records: one control byte, a two-byte big-endian
 * length, then that many bytes (cut at the end of the input).
 *   control & 0x03  transport of the message: UDP, TCP, TLS, UDP
 *   control >> 2 & 7 advance the clock before it by 0, 1, 10, 100, 500,
 *                   1000, 5000 or 40000 ms and fire the timers due
 *   control & 0x20  the TU answers each new request at once (status taken
 *                   from the message length), else never
 *   control & 0x40  the bytes are a request for csip_txn_client_new() rather
 *                   than a received message
 *   control & 0x80  another source port
 * A non-INVITE final is prepared (csip_txn_prepare) rather than sent when
 * the message length has bit 2 set, and sent before the next record
 * (csip_txn_send_prepared: as prepared, or a 500 in its place when bit 3 is
 * set). The first byte's low bit turns on drop_completed_requests.
 * At the end the clock runs until no timer is left, and the layer is freed.
 *
 * Properties (abort() when violated): recv returns 0 or NOMEM; after
 * csip_txn_layer_handle_expiry(now) nothing is due at now; every transaction
 * created (on_request with a transaction, a successful client_new) ends with
 * exactly one on_terminated; no live transaction is left but the server
 * transactions whose TU never answered; a client transaction gets at most one
 * final response before its end.
 */
#include "csip/txn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_txn: property violated: %s (%ld, %ld)\n", what, a, b);
    abort();
}

typedef struct fz {
    long created, terminated, waiting;
    bool answer;
    size_t len;
    uint64_t now;
    long finals; /* final responses delivered to client transactions, minus their ends */
    csip_txn *prepared[64]; /* server transactions holding a prepared final */
    size_t n_prepared;
} fz;

#define ANSWERED 1u        /* server: a final response was taken */
#define PROVISIONAL 0x100u /* client: a provisional response came */
#define PREPARED 2u        /* server: a final response prepared, not sent yet */

static int fz_send(csip_txn_layer *l, const csip_addr *dst, const void *data, size_t len, void *ud)
{
    (void)l;
    (void)dst;
    (void)ud;
    /* Reading the bytes lets AddressSanitizer check them. */
    volatile unsigned char acc = 0;
    for (size_t i = 0; i < len; i++)
        acc = (unsigned char)(acc ^ ((const unsigned char *)data)[i]);
    (void)acc;
    return len % 97 == 13 ? CSIP_ERR_TRANSPORT : 0; /* now and then a transport error */
}

static void fz_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req, const csip_addr *src,
                       void *ud)
{
    (void)l;
    (void)src;
    fz *f = ud;
    if (!st)
        return;
    f->created++;
    csip_txn_set_user_data(st, NULL);
    if (!f->answer)
        return;
    /* user_data of a server transaction: ANSWERED once a final response was taken */
    static const int codes[] = {100, 180, 200, 202, 302, 404, 486, 487, 500, 603};
    int code = codes[f->len % (sizeof codes / sizeof codes[0])];
    csip_msg *resp = NULL;
    if (csip_response_for(req, code, NULL, CSIP_STR("fz"), NULL, &resp) != 0)
        return;
    if (code >= 200 && (f->len & 4) && csip_msg_method(req) != CSIP_METHOD_INVITE &&
        f->n_prepared < sizeof f->prepared / sizeof f->prepared[0]) {
        int rc = csip_txn_prepare(st, resp);
        if (rc == 0) {
            f->prepared[f->n_prepared++] = st;
            csip_txn_set_user_data(st, (void *)PREPARED);
            return;
        }
        if (rc != CSIP_ERR_NOMEM)
            fail("csip_txn_prepare", rc, code);
        return;
    }
    int rc = csip_txn_respond(st, resp, f->now);
    if (rc != 0 && rc != CSIP_ERR_NOMEM && rc != CSIP_ERR_INVALID_ARG)
        fail("csip_txn_respond", rc, code);
    if (rc == 0 && code >= 200)
        csip_txn_set_user_data(st, (void *)ANSWERED);
    if (code < 200 && csip_response_for(req, 486, NULL, CSIP_STR("fz"), NULL, &resp) == 0 &&
        csip_txn_respond(st, resp, f->now) == 0)
        csip_txn_set_user_data(st, (void *)ANSWERED);
}

static void fz_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status, void *ud)
{
    (void)l;
    (void)ud;
    if (status < 100 || status > 699)
        fail("response status out of range", status, 0);
    if (!resp && status != 408 && status != 503)
        fail("synthesized status", status, 0);
    /* user_data of a client transaction: finals delivered, and PROVISIONAL */
    uintptr_t u = (uintptr_t)csip_txn_user_data(ct);
    if (status < 200) {
        if (u & 0xff)
            fail("provisional after the final response", (long)u, status);
        csip_txn_set_user_data(ct, (void *)(u | PROVISIONAL));
        return;
    }
    if ((u & 0xff) && !(status >= 200 && status < 300 && resp))
        fail("second final response", (long)u, status);
    if ((u & 0xff) < 0xff)
        u++;
    csip_txn_set_user_data(ct, (void *)u);
}

static void fz_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    (void)l;
    fz *f = ud;
    f->terminated++;
    csip_txn_kind k = csip_txn_kind_of(t);
    bool client = k == CSIP_TXN_INVITE_CLIENT || k == CSIP_TXN_NON_INVITE_CLIENT;
    uintptr_t u = (uintptr_t)csip_txn_user_data(t);
    if (csip_txn_state_of(t) != CSIP_TXN_TERMINATED)
        fail("on_terminated outside Terminated", (long)csip_txn_state_of(t), 0);
    if (client && why != CSIP_TXN_END_DESTROYED && !(u & 0xff))
        fail("client transaction ended without a final response", (long)why, 0);
    if (why == CSIP_TXN_END_DESTROYED) {
        /* alive after every timer ran out: only a server transaction whose TU
         * never answered, or an INVITE client transaction in Proceeding */
        bool ok = client ? k == CSIP_TXN_INVITE_CLIENT && (u & PROVISIONAL) && !(u & 0xff)
                         : u != ANSWERED;
        if (!ok)
            fail("a transaction outlived its timers", (long)k, (long)u);
    }
}

static void run_timers(csip_txn_layer *l, uint64_t now)
{
    csip_txn_layer_handle_expiry(l, now);
    if (csip_txn_layer_next_expiry(l) <= now)
        fail("timer still due after handle_expiry", (long)csip_txn_layer_next_expiry(l), (long)now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t steps[] = {0, 1, 10, 100, 500, 1000, 5000, 40000};
    fz f;
    memset(&f, 0, sizeof f);
    f.now = 1000;
    csip_txn_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.max_txns = 64;
    opts.drop_completed_requests = size > 0 && (data[0] & 1);
    csip_txn_callbacks cb = {fz_send, fz_request, fz_response, NULL, fz_terminated};
    csip_txn_layer *l = NULL;
    if (csip_txn_layer_new(&opts, &cb, &f, &l) != 0)
        return 0;

    size_t pos = 0;
    for (int rec = 0; rec < 64 && pos + 3 <= size; rec++) {
        uint8_t c = data[pos];
        size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        const uint8_t *msg = data + pos;
        pos += len;

        /* what the TU prepared goes now: a prepared transaction is still in
         * Trying, whatever came (retransmissions are absorbed) */
        for (size_t i = 0; i < f.n_prepared; i++) {
            csip_txn *st = f.prepared[i];
            if (csip_txn_state_of(st) != CSIP_TXN_TRYING)
                fail("a prepared transaction left Trying", (long)csip_txn_state_of(st), 0);
            int code = (f.len & 8) ? 500 : 0;
            int rc = csip_txn_send_prepared(st, code, NULL, f.now);
            if (rc != 0 && !(rc == CSIP_ERR_NOMEM && code))
                fail("csip_txn_send_prepared", rc, code);
            if (rc == 0) {
                csip_txn_state s = csip_txn_state_of(st);
                if (s != CSIP_TXN_COMPLETED && s != CSIP_TXN_TERMINATED)
                    fail("state after csip_txn_send_prepared", (long)s, code);
                csip_txn_set_user_data(st, (void *)ANSWERED);
                if (csip_txn_send_prepared(st, 0, NULL, f.now) != CSIP_ERR_INVALID_ARG)
                    fail("a prepared response sent twice", 0, 0);
            }
        }
        f.n_prepared = 0;
        f.now += steps[(c >> 2) & 7];
        run_timers(l, f.now);
        f.answer = (c & 0x20) != 0;
        f.len = len;

        static const csip_transport tps[] = {CSIP_TP_UDP, CSIP_TP_TCP, CSIP_TP_TLS, CSIP_TP_UDP};
        csip_addr peer;
        memset(&peer, 0, sizeof peer);
        peer.family = 4;
        peer.ip[0] = 192;
        peer.ip[1] = 0;
        peer.ip[2] = 2;
        peer.ip[3] = 9;
        peer.port = (c & 0x80) ? 5070 : 5060;
        peer.transport = (uint8_t)tps[c & 3];
        peer.conn = (c & 3) ? 7u : 0u;

        if (c & 0x40) {
            csip_msg *req = NULL;
            if (csip_msg_parse(msg, len, NULL, &req, NULL) != 0) {
                csip_msg_free(req);
                continue;
            }
            csip_txn *ct = NULL;
            int rc = csip_txn_client_new(l, req, &peer, NULL, f.now, &ct);
            if (rc == 0)
                f.created++;
            else if (rc != CSIP_ERR_INVALID_ARG && rc != CSIP_ERR_NOMEM)
                fail("csip_txn_client_new", rc, 0);
            continue;
        }
        int rc = csip_txn_layer_recv(l, msg, len, &peer, f.now);
        if (rc != 0 && rc != CSIP_ERR_NOMEM)
            fail("csip_txn_layer_recv", rc, 0);
    }

    /* Let every timer run out. */
    for (int i = 0; i < 10000; i++) {
        uint64_t t = csip_txn_layer_next_expiry(l);
        if (t == UINT64_MAX)
            break;
        if (t < f.now)
            fail("next expiry in the past", (long)t, (long)f.now);
        f.now = t;
        run_timers(l, f.now);
    }
    if (csip_txn_layer_next_expiry(l) != UINT64_MAX)
        fail("timers never run out", 0, 0);
    csip_txn_layer_free(l);
    if (f.terminated != f.created)
        fail("transactions created and ended differ", f.created, f.terminated);
    return 0;
}
