/*
 * Fuzz target: the dialog layer fed received messages, as the UAC of a fixed
 * INVITE (whose responses create early and confirmed dialogs, forks
 * included) and as a UAS (requests without a To tag create dialogs, those
 * with one are matched and processed), with the builders run on every
 * dialog the messages reach.
 *
 * The input is one byte, then a sequence of records: one control byte, a
 * two-byte big-endian length, then that many bytes (cut at the end).
 *   byte 0          the table's allocator fails its n-th allocation (0: never)
 *   control & 0x01  a request creates a dialog with a 200 (else a 180)
 *   control & 0x02  CSIP_DIALOG_TLS at creation
 *   control >> 2 & 7 what to build on the dialog the message reached: BYE,
 *                   re-INVITE, UPDATE, INFO, the ACK of our INVITE, a CANCEL
 *                   of the message (an INVITE), a new local target, nothing
 *   control & 0x20  a response is taken as the answer to the last request
 *                   built in its dialog (else to our INVITE)
 *   control & 0x40  terminate the dialog and free it afterwards
 *   control & 0x80  the message is also answered through the dialog
 *
 * Properties (abort() when violated): every call returns 0 or one of the
 * errors its documentation lists; a dialog created is found again by its id;
 * a request built re-parses, passes csip_msg_validate(), and carries the
 * dialog's Call-ID, tags and CSeq; the local CSeq goes up by one per request
 * and never for an ACK; the table never holds more than its limits; after
 * freeing everything the allocator holds no block.
 */
#include "csip/dialog.h"
#include "csip/msg.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T "fuzz_dialog"

static const char OUR_INVITE[] =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    "Max-Forwards: 70\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@client.atlanta.example.com>\r\n"
    "Proxy-Authorization: Digest username=\"alice\", realm=\"atlanta.example.com\"\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static void check_rc(const char *what, int rc, const int *ok, size_t n)
{
    if (rc == 0 || rc == CSIP_ERR_NOMEM)
        return;
    for (size_t i = 0; i < n; i++)
        if (rc == ok[i])
            return;
    fuzz_fail(T, what, rc, 0);
}

/* Parse errors a header accessor may pass on. */
#define PARSE_ERRS                                                                                 \
    CSIP_ERR_NOT_FOUND, CSIP_ERR_PARSE_HEADER_VALUE, CSIP_ERR_PARSE_URI, CSIP_ERR_LIMIT_URI,       \
        CSIP_ERR_PARSE_NUMBER_RANGE, CSIP_ERR_LIMIT_VALUES, CSIP_ERR_PARSE_DUPLICATE_HEADER,       \
        CSIP_ERR_PARSE_REQUEST_URI, CSIP_ERR_PARSE_MISSING_HEADER

static void touch_dialog(const csip_dialog *d)
{
    csip_dialog_id id;
    csip_dialog_get_id(d, &id);
    fuzz_touch(id.call_id);
    fuzz_touch(id.local_tag);
    fuzz_touch(id.remote_tag);
    fuzz_touch(csip_dialog_local_uri(d));
    fuzz_touch(csip_dialog_remote_uri(d));
    fuzz_touch(csip_dialog_remote_target(d));
    fuzz_touch(csip_dialog_local_target(d));
    for (size_t i = 0; i < csip_dialog_route_count(d); i++)
        fuzz_touch(csip_dialog_route(d, i));
}

/* A request built in d: it must be well formed and carry the dialog's id. */
static void check_built(const csip_dialog *d, const csip_msg *m, uint32_t cseq, const char *method)
{
    csip_parse_error err;
    int rc = csip_msg_validate(m, &err);
    if (rc != 0)
        fuzz_fail(T, "a built request does not validate", rc, (long)err.offset);
    csip_dialog_id id, mid;
    csip_dialog_get_id(d, &id);
    if (csip_dialog_id_of(m, &mid) != 0)
        fuzz_fail(T, "no id in a built request", 0, 0);
    /* sent by us: its From tag is our local tag, its To tag the remote one */
    if (!csip_str_eq(mid.call_id, id.call_id) || !csip_str_eq(mid.remote_tag, id.local_tag) ||
        !csip_str_eq(mid.local_tag, id.remote_tag))
        fuzz_fail(T, "a built request carries another dialog id", 0, 0);
    const csip_cseq *cs;
    if (csip_msg_cseq(m, &cs) != 0 || cs->number != cseq || !csip_str_eq_c(cs->method, method))
        fuzz_fail(T, "a built request has the wrong CSeq", (long)cseq, 0);
    const csip_uri *u;
    if (csip_msg_ruri(m, &u) != 0)
        fuzz_fail(T, "a built request has no Request-URI", 0, 0);
    if (u->headers.p)
        fuzz_fail(T, "URI headers in a Request-URI", 0, 0);
}

typedef struct state {
    csip_dialog_table *tab;
    csip_msg *invite;
    csip_msg *last[8]; /* requests built, by slot: the last one answers responses */
    size_t nlast;
    uint32_t max_dialogs, max_routes;
} state;

static csip_msg *last_in(state *s, const csip_dialog *d)
{
    for (size_t i = s->nlast; i-- > 0;) {
        csip_dialog_id a, b;
        csip_dialog_get_id(d, &a);
        if (csip_dialog_id_of(s->last[i], &b) == 0 && csip_str_eq(a.call_id, b.call_id) &&
            csip_str_eq(a.local_tag, b.remote_tag) && csip_str_eq(a.remote_tag, b.local_tag))
            return s->last[i];
    }
    return NULL;
}

static void keep(state *s, csip_msg *m)
{
    if (s->nlast == sizeof s->last / sizeof s->last[0]) {
        csip_msg_free(s->last[0]);
        memmove(s->last, s->last + 1, (s->nlast - 1) * sizeof s->last[0]);
        s->nlast--;
    }
    s->last[s->nlast++] = m;
}

static void build(state *s, csip_dialog *d, unsigned what, const csip_msg *m)
{
    static const char *const methods[] = {"BYE", "INVITE", "UPDATE", "INFO"};
    csip_dialog_req spec = {.via = CSIP_STR("SIP/2.0/UDP 192.0.2.1:5060;rport")};
    csip_msg *out = NULL;
    int rc;
    if (what < 4) {
        spec.method = csip_str_c(methods[what]);
        if (what == 3) {
            spec.content_type = CSIP_STR("application/dtmf-relay");
            spec.body = CSIP_STR("Signal=5\r\nDuration=160\r\n");
        }
        uint32_t before = csip_dialog_local_cseq(d);
        rc = csip_dialog_request(d, &spec, &out);
        static const int ok[] = {CSIP_ERR_INVALID_ARG, CSIP_ERR_RANGE};
        check_rc("csip_dialog_request", rc, ok, 2);
        if (rc == 0) {
            if (csip_dialog_local_cseq(d) != before + 1)
                fuzz_fail(T, "local CSeq not counted once", (long)before, 0);
            check_built(d, out, before + 1, methods[what]);
            keep(s, out);
        } else if (csip_dialog_local_cseq(d) != before) {
            fuzz_fail(T, "a failed request changed the local CSeq", (long)before, 0);
        }
    } else if (what == 4) {
        uint32_t before = csip_dialog_local_cseq(d);
        rc = csip_dialog_ack(d, s->invite, &spec, &out);
        static const int ok[] = {CSIP_ERR_INVALID_ARG};
        check_rc("csip_dialog_ack", rc, ok, 1);
        if (csip_dialog_local_cseq(d) != before)
            fuzz_fail(T, "an ACK changed the local CSeq", (long)before, 0);
        if (rc == 0)
            check_built(d, out, 1, "ACK");
        csip_msg_free(out);
    } else if (what == 5) {
        if (!m || !csip_msg_is_request(m))
            return;
        rc = csip_dialog_cancel_for(m, NULL, &out);
        static const int ok[] = {CSIP_ERR_INVALID_ARG, PARSE_ERRS, CSIP_ERR_LIMIT_VIA};
        check_rc("csip_dialog_cancel_for", rc, ok, sizeof ok / sizeof ok[0]);
        csip_msg_free(out);
    } else if (what == 6) {
        rc = csip_dialog_set_local_target(d, CSIP_STR("<sip:alice@198.51.100.1;transport=tcp>"));
        static const int ok[] = {CSIP_ERR_LIMIT_DIALOG_SIZE};
        check_rc("csip_dialog_set_local_target", rc, ok, 1);
    }
}

static void check_found(state *s, csip_dialog *d)
{
    csip_dialog_id id;
    csip_dialog_get_id(d, &id);
    if (csip_dialog_table_find(s->tab, &id) != d)
        fuzz_fail(T, "a dialog is not found by its id", 0, 0);
    if (csip_dialog_table_count(s->tab) > s->max_dialogs)
        fuzz_fail(T, "more dialogs than max_dialogs", (long)csip_dialog_table_count(s->tab), 0);
    if (csip_dialog_route_count(d) > s->max_routes)
        fuzz_fail(T, "more routes than max_routes", (long)csip_dialog_route_count(d), 0);
    touch_dialog(d);
}

static void one(state *s, uint8_t c, const uint8_t *bytes, size_t len)
{
    csip_msg *m = NULL;
    if (csip_msg_parse(bytes, len, NULL, &m, NULL) != 0 || !m) {
        csip_msg_free(m);
        return;
    }
    csip_dialog_id mid;
    if (csip_dialog_id_of(m, &mid) == 0) {
        fuzz_touch(mid.call_id);
        fuzz_touch(mid.local_tag);
        fuzz_touch(mid.remote_tag);
    }
    unsigned flags = (c & 0x02) ? CSIP_DIALOG_TLS : 0;
    csip_dialog *d = NULL;
    int rc = csip_dialog_table_match(s->tab, m, &d);
    {
        static const int ok[] = {PARSE_ERRS, CSIP_ERR_INVALID_ARG};
        check_rc("csip_dialog_table_match", rc, ok, sizeof ok / sizeof ok[0]);
    }
    static const int create_ok[] = {CSIP_ERR_INVALID_ARG,       CSIP_ERR_LIMIT_DIALOGS,
                                    CSIP_ERR_LIMIT_DIALOG_SIZE, CSIP_ERR_LIMIT_HEADERS,
                                    CSIP_ERR_LIMIT_VIA,         PARSE_ERRS};
    if (csip_msg_is_request(m)) {
        if (d) {
            int status = -1;
            rc = csip_dialog_recv_request(d, m, &status);
            static const int ok[] = {PARSE_ERRS, CSIP_ERR_LIMIT_DIALOG_SIZE};
            check_rc("csip_dialog_recv_request", rc, ok, sizeof ok / sizeof ok[0]);
            if (status != 0 && status != 400 && status != 481 && status != 491 && status != 500)
                fuzz_fail(T, "csip_dialog_recv_request status", status, 0);
            if ((c & 0x80) && csip_msg_method(m) != CSIP_METHOD_ACK) {
                csip_msg *resp = NULL;
                rc = csip_dialog_response(d, m, status ? status : 200, NULL, &resp);
                static const int rok[] = {CSIP_ERR_INVALID_ARG, CSIP_ERR_LIMIT_HEADERS};
                check_rc("csip_dialog_response", rc, rok, 2);
                csip_msg_free(resp);
            }
        } else if (rc == CSIP_ERR_NOT_FOUND && csip_msg_method(m) != CSIP_METHOD_ACK) {
            /* A new request: answered with our tag, which creates a dialog. */
            csip_msg *resp = NULL;
            int code = (c & 0x01) ? 200 : 180;
            rc = csip_dialog_uas_response(m, code, NULL, CSIP_STR("fztag"),
                                          CSIP_STR("<sip:bob@192.0.2.4>"), NULL, &resp);
            static const int ok[] = {CSIP_ERR_INVALID_ARG, CSIP_ERR_LIMIT_HEADERS};
            check_rc("csip_dialog_uas_response", rc, ok, 2);
            if (rc == 0) {
                rc = csip_dialog_uas_new(s->tab, m, resp, flags, &d);
                check_rc("csip_dialog_uas_new", rc, create_ok,
                         sizeof create_ok / sizeof create_ok[0]);
                if (rc == 0)
                    check_found(s, d);
                else if (d)
                    fuzz_fail(T, "*out set on error", rc, 0);
            }
            csip_msg_free(resp);
        }
    } else {
        csip_msg *req = (c & 0x20) && d ? last_in(s, d) : NULL;
        if (!req)
            req = s->invite;
        if (d) {
            csip_dialog_state before = csip_dialog_state_of(d);
            rc = csip_dialog_recv_response(d, req, m, 0);
            static const int ok[] = {CSIP_ERR_INVALID_ARG, CSIP_ERR_LIMIT_DIALOG_SIZE, PARSE_ERRS};
            check_rc("csip_dialog_recv_response", rc, ok, sizeof ok / sizeof ok[0]);
            if (before == CSIP_DIALOG_TERMINATED &&
                csip_dialog_state_of(d) != CSIP_DIALOG_TERMINATED)
                fuzz_fail(T, "a terminated dialog came back", 0, 0);
            if (rc != 0 && csip_dialog_state_of(d) != before)
                fuzz_fail(T, "a failed update changed the state", rc, 0);
        } else if (rc == CSIP_ERR_NOT_FOUND) {
            rc = csip_dialog_uac_new(s->tab, s->invite, m, flags, &d);
            check_rc("csip_dialog_uac_new", rc, create_ok, sizeof create_ok / sizeof create_ok[0]);
            if (rc == 0)
                check_found(s, d);
        }
    }
    if (d) {
        build(s, d, (c >> 2) & 7, m);
        touch_dialog(d);
        if (c & 0x40) {
            csip_dialog_terminate(d);
            for (size_t i = 0; i < s->nlast;) {
                csip_dialog_id a, b;
                csip_dialog_get_id(d, &a);
                /* drop the requests built in it (they match by id only) */
                if (csip_dialog_id_of(s->last[i], &b) == 0 && csip_str_eq(a.call_id, b.call_id) &&
                    csip_str_eq(a.local_tag, b.remote_tag) &&
                    csip_str_eq(a.remote_tag, b.local_tag)) {
                    csip_msg_free(s->last[i]);
                    memmove(s->last + i, s->last + i + 1, (s->nlast - i - 1) * sizeof s->last[0]);
                    s->nlast--;
                } else {
                    i++;
                }
            }
            csip_dialog_free(d);
        }
    }
    csip_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fuzz_failmem fm;
    const csip_mem *memp = fuzz_failmem_init(&fm, data[0], 0);
    state s;
    memset(&s, 0, sizeof s);
    s.max_dialogs = 8;
    s.max_routes = 8;
    csip_dialog_opts opts = {
        .mem = memp, .max_dialogs = 8, .max_forks = 4, .max_routes = 8, .max_bytes = 4096};
    if (csip_msg_parse(OUR_INVITE, sizeof OUR_INVITE - 1, NULL, &s.invite, NULL) != 0)
        fuzz_fail(T, "the fixed INVITE does not parse", 0, 0);
    int rc = csip_dialog_table_new(&opts, &s.tab);
    if (rc == 0) {
        size_t pos = 1;
        for (int rec = 0; rec < 32 && pos + 3 <= size; rec++) {
            uint8_t c = data[pos];
            size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
            pos += 3;
            if (len > size - pos)
                len = size - pos;
            one(&s, c, data + pos, len);
            pos += len;
        }
        /* Every dialog still answers its accessors, then everything goes. */
        for (csip_dialog *d = csip_dialog_table_next(s.tab, NULL); d;
             d = csip_dialog_table_next(s.tab, d))
            check_found(&s, d);
        csip_dialog_table_free(s.tab);
    } else if (rc != CSIP_ERR_NOMEM) {
        fuzz_fail(T, "csip_dialog_table_new", rc, 0);
    }
    for (size_t i = 0; i < s.nlast; i++)
        csip_msg_free(s.last[i]);
    csip_msg_free(s.invite);
    if (fm.live != 0)
        fuzz_fail(T, "blocks left after freeing everything", fm.live, 0);
    return 0;
}
