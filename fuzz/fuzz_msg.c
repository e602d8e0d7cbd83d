/*
 * Fuzz target: the datagram parser and everything a server does with a parsed
 * message. The input is one datagram, as received.
 *
 * For every input: parse; read every typed header value; validate; run the
 * request checks of a UAS, a proxy and a registrar; build a response to a
 * request. When the parse succeeded, print the message, parse the printed
 * bytes again and require that it succeeds with the same Call-ID, CSeq and top
 * Via branch and that printing it again gives the same bytes; then edit it as
 * a proxy would (pop the top Via, set Max-Forwards), print and re-parse again.
 * The same input is also parsed with tight limits and with an allocator that
 * fails, to reach the limit and out-of-memory paths.
 *
 * Any property that does not hold calls abort(), which libFuzzer reports as a
 * crash.
 */
#include "csip/msg.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int a, int b)
{
    fuzz_fail("fuzz_msg", what, (long)a, (long)b);
}

static void touch(csip_str s)
{
    fuzz_touch(s);
}

/* Walks a ';'-separated parameter list; each step must consume input. */
static void walk_params(csip_str params)
{
    csip_str rest = params;
    for (int i = 0; i < 1024; i++) {
        csip_param prm;
        size_t before = rest.len;
        int rc = csip_param_next(&rest, &prm);
        if (rc != 1)
            return;
        if (rest.len >= before)
            fail("csip_param_next did not advance", (int)before, (int)rest.len);
        touch(prm.name);
        touch(prm.value);
    }
}

static void walk_auth_params(csip_str params)
{
    csip_str rest = params;
    for (int i = 0; i < 1024; i++) {
        csip_param prm;
        size_t before = rest.len;
        int rc = csip_auth_param_next(&rest, &prm);
        if (rc != 1)
            return;
        if (rest.len >= before)
            fail("csip_auth_param_next did not advance", (int)before, (int)rest.len);
        touch(prm.name);
        touch(prm.value);
    }
}

static void check_uri(const csip_uri *u)
{
    touch(u->raw);
    touch(u->scheme);
    touch(u->user);
    touch(u->password);
    touch(u->host);
    touch(u->params);
    touch(u->headers);
    touch(u->opaque);
    touch(u->transport);
    touch(u->user_param);
    touch(u->method);
    touch(u->maddr);
    touch(u->ttl);
    walk_params(u->params);
    /* RFC 3261 §19.1.4 equality is reflexive. */
    if (!csip_uri_equal(u, u))
        fail("URI not equal to itself", (int)u->kind, 0);
    if (u->user.p != NULL && u->user.len > 0 && u->user.len <= 4096) {
        char dec[4096];
        int n = csip_unescape(u->user, dec, sizeof(dec));
        if (n < 0 || (size_t)n > u->user.len)
            fail("csip_unescape length", n, (int)u->user.len);
    }
}

static void check_nameaddr(const csip_nameaddr *na)
{
    touch(na->raw);
    touch(na->display);
    touch(na->params);
    touch(na->tag);
    walk_params(na->params);
    if (!na->star)
        check_uri(&na->uri);
}

static void check_via(const csip_via *v)
{
    touch(v->raw);
    touch(v->protocol);
    touch(v->version);
    touch(v->transport);
    touch(v->host);
    touch(v->params);
    touch(v->branch);
    touch(v->received);
    touch(v->maddr);
    touch(v->ttl);
    walk_params(v->params);
}

static void check_auth(const csip_auth *a)
{
    touch(a->scheme);
    touch(a->params);
    touch(a->realm);
    touch(a->nonce);
    touch(a->opaque);
    touch(a->algorithm);
    touch(a->qop);
    touch(a->stale);
    touch(a->domain);
    touch(a->username);
    touch(a->uri);
    touch(a->response);
    touch(a->cnonce);
    touch(a->nc);
    touch(a->userhash);
    touch(a->nextnonce);
    touch(a->rspauth);
    walk_auth_params(a->params);
}

static const csip_hdr_id nameaddr_lists[] = {
    CSIP_HDR_CONTACT,
    CSIP_HDR_ROUTE,
    CSIP_HDR_RECORD_ROUTE,
    CSIP_HDR_PATH,
    CSIP_HDR_SERVICE_ROUTE,
    CSIP_HDR_P_ASSERTED_IDENTITY,
    CSIP_HDR_P_PREFERRED_IDENTITY,
};

static const csip_hdr_id token_lists[] = {
    CSIP_HDR_REQUIRE,
    CSIP_HDR_SUPPORTED,
    CSIP_HDR_PROXY_REQUIRE,
    CSIP_HDR_UNSUPPORTED,
    CSIP_HDR_ALLOW,
    CSIP_HDR_ALLOW_EVENTS,
    CSIP_HDR_ACCEPT_ENCODING,
    CSIP_HDR_CONTENT_ENCODING,
    CSIP_HDR_CONTENT_LANGUAGE,
};

static const csip_hdr_id auth_headers[] = {
    CSIP_HDR_WWW_AUTHENTICATE,    CSIP_HDR_AUTHORIZATION,       CSIP_HDR_PROXY_AUTHENTICATE,
    CSIP_HDR_PROXY_AUTHORIZATION, CSIP_HDR_AUTHENTICATION_INFO,
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The value parsers of msg.h, run directly on a header line's value. */
static void parse_value(const csip_hdr *h)
{
    unsigned flags = 0;
    switch (h->id) {
    case CSIP_HDR_VIA: {
        csip_str rest = h->value;
        for (int i = 0; i < 256 && rest.len > 0; i++) {
            csip_via v;
            size_t before = rest.len;
            if (csip_via_parse(&rest, &v) != 0)
                break;
            if (rest.len >= before)
                fail("csip_via_parse did not advance", (int)before, (int)rest.len);
            check_via(&v);
        }
        return;
    }
    case CSIP_HDR_CONTACT:
        flags = CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_STAR;
        break;
    case CSIP_HDR_ROUTE:
    case CSIP_HDR_RECORD_ROUTE:
    case CSIP_HDR_PATH:
    case CSIP_HDR_SERVICE_ROUTE:
        flags = CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_NEED_ANGLE;
        break;
    case CSIP_HDR_P_ASSERTED_IDENTITY:
    case CSIP_HDR_P_PREFERRED_IDENTITY:
        flags = CSIP_NAMEADDR_LIST;
        break;
    case CSIP_HDR_FROM:
    case CSIP_HDR_TO:
    case CSIP_HDR_REFER_TO:
    case CSIP_HDR_REFERRED_BY:
    case CSIP_HDR_REPLY_TO:
        flags = 0;
        break;
    case CSIP_HDR_WWW_AUTHENTICATE:
    case CSIP_HDR_AUTHORIZATION:
    case CSIP_HDR_PROXY_AUTHENTICATE:
    case CSIP_HDR_PROXY_AUTHORIZATION:
    case CSIP_HDR_AUTHENTICATION_INFO: {
        csip_auth a;
        if (csip_auth_parse(h->value, &a) == 0)
            check_auth(&a);
        return;
    }
    case CSIP_HDR_DATE: {
        csip_date d;
        if (csip_date_parse(h->value, &d) == 0 && (d.month < 1 || d.month > 12 || d.wkday > 6))
            fail("csip_date_parse fields out of range", d.month, d.wkday);
        return;
    }
    default:
        return;
    }
    csip_str rest = h->value;
    for (int i = 0; i < 256 && rest.len > 0; i++) {
        csip_nameaddr na;
        size_t before = rest.len;
        if (csip_nameaddr_parse(&rest, flags, &na) != 0)
            break;
        if (rest.len >= before)
            fail("csip_nameaddr_parse did not advance", (int)before, (int)rest.len);
        check_nameaddr(&na);
        if (!(flags & CSIP_NAMEADDR_LIST))
            break;
    }
}

/* The start line and the raw header lines. */
static void read_lines(const csip_msg *m)
{
    bool req = csip_msg_is_request(m);
    (void)csip_msg_method(m);
    touch(csip_msg_method_name(m));
    touch(csip_msg_ruri_raw(m));
    touch(csip_msg_version(m));
    touch(csip_msg_reason(m));
    touch(csip_msg_body(m));
    touch(csip_msg_raw(m));
    int status = csip_msg_status(m);
    if (req && status != 0)
        fail("request with a status code", status, 0);
    if (!req) {
        (void)csip_status_lookup(status);
        (void)csip_status_class_name(csip_status_class(status));
        (void)csip_status_effective(status);
        (void)csip_status_reason(status);
    }
    size_t n = csip_msg_hdr_count(m);
    for (size_t i = 0; i < n; i++) {
        const csip_hdr *h = csip_msg_hdr_at(m, i);
        if (h == NULL)
            fail("csip_msg_hdr_at returned NULL below the count", (int)i, (int)n);
        touch(h->name);
        touch(h->value);
        touch(h->raw);
        if (h->id >= CSIP_HDR__COUNT)
            fail("header id out of range", h->id, 0);
        if (csip_msg_hdr_find_name(m, h->name) == NULL)
            fail("csip_msg_hdr_find_name misses a present header", (int)i, 0);
        parse_value(h);
    }
    if (csip_msg_hdr_at(m, n) != NULL)
        fail("csip_msg_hdr_at past the count", (int)n, 0);
    for (int id = 1; id < CSIP_HDR__COUNT; id++) {
        size_t count = csip_msg_hdr_count_id(m, (csip_hdr_id)id);
        size_t seen = 0;
        for (const csip_hdr *h = csip_msg_hdr_find(m, (csip_hdr_id)id); h != NULL && seen <= n;
             h = csip_msg_hdr_next(m, h))
            seen++;
        if (seen != count)
            fail("hdr_find/hdr_next walk differs from hdr_count_id", (int)seen, (int)count);
    }
}

/* Every typed accessor of msg.h. */
static void read_typed(const csip_msg *m)
{
    const csip_uri *ruri = NULL;
    if (csip_msg_ruri(m, &ruri) == 0 && ruri != NULL)
        check_uri(ruri);

    size_t nvia = 0;
    int vrc = csip_msg_via_count(m, &nvia);
    for (size_t i = 0; i < 64; i++) {
        const csip_via *v = NULL;
        int rc = csip_msg_via(m, i, &v);
        if (rc != 0)
            break;
        if (vrc == 0 && i >= nvia)
            fail("csip_msg_via beyond csip_msg_via_count", (int)i, (int)nvia);
        check_via(v);
    }

    const csip_nameaddr *na = NULL;
    if (csip_msg_from(m, &na) == 0)
        check_nameaddr(na);
    const csip_nameaddr *to = NULL;
    if (csip_msg_to(m, &to) == 0) {
        check_nameaddr(to);
        if (ruri != NULL && !to->star &&
            csip_uri_equal(ruri, &to->uri) != csip_uri_equal(&to->uri, ruri))
            fail("URI equality is not symmetric", 0, 0);
    }
    if (csip_msg_refer_to(m, &na) == 0)
        check_nameaddr(na);

    csip_str s;
    if (csip_msg_call_id(m, &s) == 0)
        touch(s);
    const csip_cseq *cseq = NULL;
    if (csip_msg_cseq(m, &cseq) == 0)
        touch(cseq->method);

    uint32_t u;
    (void)csip_msg_max_forwards(m, &u);
    (void)csip_msg_content_length(m, &u);
    (void)csip_msg_expires(m, &u);
    (void)csip_msg_min_expires(m, &u);
    (void)csip_msg_rseq(m, &u);

    const csip_media_type *ct = NULL;
    if (csip_msg_content_type(m, &ct) == 0) {
        touch(ct->type);
        touch(ct->subtype);
        touch(ct->params);
        walk_params(ct->params);
    }
    const csip_rack *rack = NULL;
    if (csip_msg_rack(m, &rack) == 0)
        touch(rack->method);
    const csip_event *ev = NULL;
    if (csip_msg_event(m, &ev) == 0) {
        touch(ev->package);
        touch(ev->id);
        touch(ev->params);
    }
    const csip_substate *ss = NULL;
    if (csip_msg_subscription_state(m, &ss) == 0) {
        touch(ss->state);
        touch(ss->reason);
        touch(ss->params);
    }
    const csip_retry_after *ra = NULL;
    if (csip_msg_retry_after(m, &ra) == 0) {
        touch(ra->comment);
        touch(ra->params);
    }
    const csip_date *date = NULL;
    if (csip_msg_date(m, &date) == 0) {
        if (date->month < 1 || date->month > 12 || date->wkday > 6)
            fail("Date fields out of range", date->month, date->wkday);
    }
    const csip_timestamp *ts = NULL;
    if (csip_msg_timestamp(m, &ts) == 0) {
        touch(ts->value);
        touch(ts->delay);
    }

    for (size_t k = 0; k < COUNT(nameaddr_lists); k++) {
        const csip_nameaddr *arr = NULL;
        size_t n = 0;
        if (csip_msg_nameaddrs(m, nameaddr_lists[k], &arr, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                check_nameaddr(&arr[i]);
        }
    }
    for (size_t k = 0; k < COUNT(token_lists); k++) {
        const csip_str *arr = NULL;
        size_t n = 0;
        if (csip_msg_tokens(m, token_lists[k], &arr, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                touch(arr[i]);
        }
    }
    for (size_t k = 0; k < COUNT(auth_headers); k++) {
        for (size_t i = 0; i < 64; i++) {
            const csip_auth *a = NULL;
            if (csip_msg_auth(m, auth_headers[k], i, &a) != 0)
                break;
            check_auth(a);
        }
    }
}

static void check_roles(const csip_msg *m)
{
    csip_parse_error verr;
    memset(&verr, 0, sizeof(verr));
    (void)csip_msg_validate(m, &verr);
    touch(verr.header);

    if (!csip_msg_is_request(m))
        return;
    static const csip_role roles[] = {CSIP_ROLE_UAS, CSIP_ROLE_PROXY, CSIP_ROLE_REGISTRAR};
    for (size_t i = 0; i < COUNT(roles); i++) {
        csip_check_result res;
        memset(&res, 0, sizeof(res));
        int st = csip_check_request(m, roles[i], NULL, &res);
        if (st != res.status)
            fail("csip_check_request return differs from res.status", st, res.status);
        if (st != 0 && (st < 400 || st > 699))
            fail("csip_check_request status out of range", st, 0);
        if (res.n_unsupported > COUNT(res.unsupported))
            fail("n_unsupported over the array", (int)res.n_unsupported, 0);
        touch(res.header);
        for (size_t k = 0; k < res.n_unsupported; k++)
            touch(res.unsupported[k]);
    }
}

/* Prints m into a fresh exact-size buffer; returns it (owned) and its length, or NULL. */
static char *print_msg(const csip_msg *m, size_t *len)
{
    int need = csip_msg_print(m, NULL, 0);
    if (need <= 0)
        fail("csip_msg_print(NULL) failed", need, 0);
    char *buf = malloc((size_t)need);
    if (buf == NULL)
        return NULL;
    int got = csip_msg_print(m, buf, (size_t)need);
    if (got != need)
        fail("csip_msg_print length differs from the size query", got, need);
    /* One byte short must fail cleanly (ASan checks it writes nothing past the end). */
    char *small = need > 1 ? malloc((size_t)need - 1) : NULL;
    if (small != NULL) {
        int rc = csip_msg_print(m, small, (size_t)need - 1);
        if (rc != CSIP_ERR_BUFFER_TOO_SMALL)
            fail("csip_msg_print into a short buffer", rc, need);
        free(small);
    }
    *len = (size_t)need;
    return buf;
}

static void build_responses(const csip_msg *m)
{
    csip_msg *resp = NULL;
    int rc = csip_response_for(m, 400, NULL, CSIP_STR_NULL, NULL, &resp);
    if (!csip_msg_is_request(m)) {
        /* from a response to the request: another final one, never a 100 */
        csip_msg *r100 = NULL;
        int rc100 = csip_response_for(m, 100, NULL, CSIP_STR_NULL, NULL, &r100);
        if (rc100 != CSIP_ERR_INVALID_ARG)
            fail("csip_response_for made a 100 from a response", rc100, 0);
        csip_msg_free(r100);
    }
    if (rc == 0) {
        if (resp == NULL)
            fail("csip_response_for returned 0 and no message", 0, 0);
        size_t len = 0;
        char *buf = print_msg(resp, &len);
        if (buf != NULL) {
            csip_msg *back = NULL;
            csip_parse_error err;
            int prc = csip_msg_parse(buf, len, NULL, &back, &err);
            if (prc != 0) {
                fprintf(stderr, "response:\n%.*s\n", (int)len, buf);
                fail("a built response does not parse", prc, (int)err.offset);
            }
            if (csip_msg_status(back) != 400)
                fail("built response status", csip_msg_status(back), 400);
            csip_msg_free(back);
            free(buf);
        }
    }
    csip_msg_free(resp);

    resp = NULL;
    if (csip_response_for(m, 180, "Ringing", CSIP_STR("fz1"), NULL, &resp) == 0) {
        const csip_nameaddr *to = NULL;
        if (csip_msg_to(resp, &to) == 0)
            touch(to->tag);
    }
    csip_msg_free(resp);
}

static int parse(const void *data, size_t size, const csip_parse_opts *opts, csip_msg **m,
                 csip_parse_error *err)
{
    memset(err, 0, sizeof(*err));
    *m = NULL;
    int rc = csip_msg_parse(data, size, opts, m, err);
    if (rc == 0 && *m == NULL)
        fail("parse returned 0 and no message", 0, 0);
    if (rc > 0)
        fail("parse returned a positive value", rc, 0);
    if (rc != 0 && rc != CSIP_ERR_NOMEM) {
        if (err->code != rc)
            fail("parse error code differs from the return value", err->code, rc);
        if (err->offset > size)
            fail("parse error offset past the input", (int)err->offset, (int)size);
    }
    /* err->header must stay readable after the call: it points into the message when
     * there is one, and is absent (or into the caller's input) when there is none. */
    touch(err->header);
    return rc;
}

/*
 * Re-parsing printed bytes: printing may add Content-Length and an edit may add
 * Max-Forwards, so a message at the header-count limit may legitimately go over it.
 */
static const csip_parse_opts reparse_opts = {.limits = {.max_headers = 1024}};

/* Printing a message that parsed cleanly must give bytes that parse the same way. */
static void round_trip(csip_msg *m)
{
    size_t len = 0;
    char *buf = print_msg(m, &len);
    if (buf == NULL)
        return;
    csip_msg *m2 = NULL;
    csip_parse_error err;
    int rc = parse(buf, len, &reparse_opts, &m2, &err);
    if (rc == CSIP_ERR_NOMEM) {
        free(buf);
        return;
    }
    if (rc != 0) {
        fprintf(stderr, "printed:\n%.*s\n", (int)len, buf);
        fail("printed message does not parse", rc, (int)err.offset);
    }

    if (csip_msg_is_request(m) != csip_msg_is_request(m2) ||
        csip_msg_status(m) != csip_msg_status(m2))
        fail("start line changed by printing", csip_msg_status(m), csip_msg_status(m2));
    if (!csip_str_eq(csip_msg_ruri_raw(m), csip_msg_ruri_raw(m2)) ||
        !csip_str_eq(csip_msg_method_name(m), csip_msg_method_name(m2)))
        fail("method or Request-URI changed by printing", 0, 0);
    if (!csip_str_eq(csip_msg_body(m), csip_msg_body(m2)))
        fail("body changed by printing", (int)csip_msg_body(m).len, (int)csip_msg_body(m2).len);

    csip_str c1, c2;
    int r1 = csip_msg_call_id(m, &c1), r2 = csip_msg_call_id(m2, &c2);
    if (r1 != r2 || (r1 == 0 && !csip_str_eq(c1, c2)))
        fail("Call-ID changed by printing", r1, r2);

    const csip_cseq *q1 = NULL, *q2 = NULL;
    r1 = csip_msg_cseq(m, &q1);
    r2 = csip_msg_cseq(m2, &q2);
    if (r1 != r2 || (r1 == 0 && (q1->number != q2->number || !csip_str_eq(q1->method, q2->method) ||
                                 q1->method_id != q2->method_id)))
        fail("CSeq changed by printing", r1, r2);

    const csip_via *v1 = NULL, *v2 = NULL;
    r1 = csip_msg_via(m, 0, &v1);
    r2 = csip_msg_via(m2, 0, &v2);
    if (r1 != r2 || (r1 == 0 && !csip_str_eq(v1->branch, v2->branch)))
        fail("top Via branch changed by printing", r1, r2);

    /* Printing is idempotent: the second print has nothing left to regenerate. */
    size_t len2 = 0;
    char *buf2 = print_msg(m2, &len2);
    if (buf2 != NULL) {
        if (len2 != len || memcmp(buf, buf2, len) != 0) {
            fprintf(stderr, "first print:\n%.*s\nsecond print:\n%.*s\n", (int)len, buf, (int)len2,
                    buf2);
            fail("printing a re-parsed message changed it", (int)len, (int)len2);
        }
        free(buf2);
    }
    csip_msg_free(m2);
    free(buf);
}

/* A proxy's edits: pop the top Via, set Max-Forwards; the result must print and parse. */
static void edit(csip_msg *m)
{
    size_t nvia = 0;
    int vrc = csip_msg_via_count(m, &nvia);
    size_t n_mf = csip_msg_hdr_count_id(m, CSIP_HDR_MAX_FORWARDS);

    int pop = csip_msg_via_pop(m);
    int setmf = csip_msg_set_max_forwards(m, 69);

    size_t len = 0;
    char *buf = print_msg(m, &len);
    if (buf == NULL)
        return;
    csip_msg *m2 = NULL;
    csip_parse_error err;
    int rc = parse(buf, len, &reparse_opts, &m2, &err);
    if (rc == CSIP_ERR_NOMEM) {
        free(buf);
        return;
    }
    if (rc != 0) {
        fprintf(stderr, "edited:\n%.*s\n", (int)len, buf);
        fail("edited message does not parse", rc, (int)err.offset);
    }
    if (vrc == 0 && nvia > 0 && pop == 0) {
        size_t nvia2 = 0;
        int rc2 = csip_msg_via_count(m2, &nvia2);
        if (rc2 != 0 || nvia2 != nvia - 1) {
            fprintf(stderr, "edited:\n%.*s\n", (int)len, buf);
            fail("Via count after csip_msg_via_pop", (int)nvia, (int)nvia2);
        }
    }
    if (setmf == 0 && n_mf <= 1) {
        uint32_t mf = 0;
        int rc2 = csip_msg_max_forwards(m2, &mf);
        if (rc2 != 0 || mf != 69) {
            fprintf(stderr, "edited:\n%.*s\n", (int)len, buf);
            fail("Max-Forwards after csip_msg_set_max_forwards", rc2, (int)mf);
        }
    }
    read_typed(m2);
    csip_msg_free(m2);
    free(buf);
}

static unsigned input_hash(const uint8_t *data, size_t size)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csip_msg *m = NULL;
    csip_parse_error err;
    int rc = parse(data, size, NULL, &m, &err);
    if (m != NULL) {
        read_lines(m);
        read_typed(m);
        check_roles(m);
        build_responses(m);
        if (rc == 0) {
            round_trip(m);
            edit(m);
        }
        csip_msg_free(m);
    }

    /* Tight limits: the limit errors of the parser and of the typed accessors. */
    csip_parse_opts tight;
    memset(&tight, 0, sizeof(tight));
    tight.limits.max_datagram = 1024;
    tight.limits.max_headers = 12;
    tight.limits.max_line = 128;
    tight.limits.max_via = 2;
    tight.limits.max_uri = 48;
    tight.limits.max_values = 3;
    if (parse(data, size, &tight, &m, &err) != CSIP_ERR_NOMEM && m != NULL) {
        read_typed(m);
        check_roles(m);
    }
    csip_msg_free(m);

    /* Out of memory after a few allocations: clean errors, nothing leaked. */
    /* (fails after a budget of 0 to 11 successful allocations, and then always) */
    fuzz_failmem fa;
    const csip_mem *memp = fuzz_failmem_init(&fa, (long)(input_hash(data, size) % 12u) + 1, 1);
    csip_parse_opts oom;
    memset(&oom, 0, sizeof(oom));
    oom.mem = memp;
    m = NULL;
    memset(&err, 0, sizeof(err));
    (void)csip_msg_parse(data, size, &oom, &m, &err);
    if (m != NULL) {
        read_typed(m);
        check_roles(m);
        if (csip_msg_is_request(m)) {
            csip_msg *resp = NULL;
            (void)csip_response_for(m, 486, NULL, CSIP_STR("t"), memp, &resp);
            csip_msg_free(resp);
        }
        int need = csip_msg_print(m, NULL, 0);
        if (need > 0) {
            char *buf = malloc((size_t)need);
            if (buf != NULL) {
                (void)csip_msg_print(m, buf, (size_t)need);
                free(buf);
            }
        }
        (void)csip_msg_via_pop(m);
        (void)csip_msg_set_max_forwards(m, 1);
        csip_msg_free(m);
    }
    return 0;
}
