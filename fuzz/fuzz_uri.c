/*
 * Fuzz target: the URI parser, comparison, parameter lists and escaping.
 * The input is one URI, as it would appear in a Request-URI or inside <>.
 *
 * For every input: parse with the default limit (more than
 * CSIP_DEFAULT_MAX_URI octets must give CSIP_ERR_LIMIT_URI) and with a limit
 * equal to the size; the only errors allowed are CSIP_ERR_PARSE_URI and the
 * limit. When the parse succeeded:
 *   - every view lies inside the input and raw is the whole input;
 *   - the URI equals itself, and equals the parse of a copy of the input;
 *   - parsing the same bytes again gives the same fields;
 *   - the parameter list (sip, sips, tel) reads to its end without error and
 *     each step consumes input; the headers of a sip URI are hname=hvalue;
 *   - the extracted parameters (transport, maddr, ...) point into params;
 *   - the user part decodes, re-escapes (CSIP_ESCAPE_USER) and decodes to the
 *     same octets, and "sip:<re-escaped user>@h" parses with that user.
 * The input is also read as a header parameter list (csip_param_next), which
 * must always advance or stop. Any property that does not hold calls abort().
 */
#include "csip/limits.h"
#include "csip/uri.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_uri: property violated: %s (%ld, %ld)\n", what, a, b);
    abort();
}

static void check_inside(csip_str s, const char *b, size_t n, const char *what)
{
    if (s.p == NULL)
        return;
    if (s.p < b || s.len > n || (size_t)(s.p - b) > n - s.len)
        fail(what, (long)(s.p - b), (long)s.len);
}

static bool same_view(csip_str a, csip_str b)
{
    return a.p == b.p && a.len == b.len;
}

static void check_same_fields(const csip_uri *a, const csip_uri *b)
{
    if (!same_view(a->raw, b->raw) || !same_view(a->scheme, b->scheme) || a->kind != b->kind ||
        !same_view(a->user, b->user) || !same_view(a->password, b->password) ||
        !same_view(a->host, b->host) || a->host_type != b->host_type ||
        a->has_port != b->has_port || a->port != b->port || !same_view(a->params, b->params) ||
        !same_view(a->headers, b->headers) || !same_view(a->opaque, b->opaque) ||
        !same_view(a->transport, b->transport) || !same_view(a->user_param, b->user_param) ||
        !same_view(a->method, b->method) || !same_view(a->maddr, b->maddr) ||
        !same_view(a->ttl, b->ttl) || a->lr != b->lr)
        fail("second parse differs", 0, 0);
}

/* Walks a ';'-separated parameter list; returns the final csip_param_next() result. */
static int walk_params(csip_str rest)
{
    for (;;) {
        csip_param prm;
        size_t before = rest.len;
        int rc = csip_param_next(&rest, &prm);
        if (rc != 1)
            return rc;
        if (rest.len >= before)
            fail("csip_param_next did not advance", (long)before, (long)rest.len);
        if (prm.name.len == 0)
            fail("empty parameter name", 0, 0);
    }
}

static void check_user_round_trip(const csip_uri *u)
{
    if (u->user.p == NULL)
        return;
    size_t n = u->user.len;
    char *dec = malloc(n ? n : 1), *enc = malloc(3 * n + 1), *dec2 = malloc(n ? n : 1);
    char *uri = malloc(3 * n + 16);
    if (!dec || !enc || !dec2 || !uri)
        abort();
    int d = csip_unescape(u->user, dec, n);
    if (d < 0 || (size_t)d > n)
        fail("unescape of the user part", d, (long)n);
    int e = csip_escape((csip_str){dec, (size_t)d}, CSIP_ESCAPE_USER, enc, 3 * (size_t)d);
    if (e < 0)
        fail("escape of the user part", e, d);
    int d2 = csip_unescape((csip_str){enc, (size_t)e}, dec2, n);
    if (d2 != d || (d && memcmp(dec, dec2, (size_t)d) != 0))
        fail("escape/unescape round trip", d, d2);
    if (u->kind == CSIP_URI_SIP && d > 0) {
        memcpy(uri, "sip:", 4);
        memcpy(uri + 4, enc, (size_t)e);
        memcpy(uri + 4 + e, "@h", 2);
        size_t len = 4 + (size_t)e + 2;
        csip_uri v;
        int rc = csip_uri_parse(uri, len, len, &v);
        if (rc != 0)
            fail("re-escaped user does not parse", rc, e);
        int d3 = csip_unescape(v.user, dec2, n);
        if (d3 != d || memcmp(dec, dec2, (size_t)d) != 0 || v.password.p != NULL)
            fail("re-escaped user differs", d, d3);
    }
    free(dec);
    free(enc);
    free(dec2);
    free(uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    csip_uri u, v, w;

    /* any byte string is a parameter list that reads to an end or an error */
    int pr = walk_params((csip_str){p, size});
    if (pr != 0 && pr != CSIP_ERR_SYNTAX)
        fail("csip_param_next result", pr, 0);

    int rc = csip_uri_parse(p, size, 0, &u);
    if (size > CSIP_DEFAULT_MAX_URI) {
        if (rc != CSIP_ERR_LIMIT_URI)
            fail("default limit not applied", rc, (long)size);
    }
    rc = csip_uri_parse(p, size, size ? size : 1, &u);
    if (rc != 0 && rc != CSIP_ERR_PARSE_URI)
        fail("unexpected parse result", rc, 0);
    if (rc != 0)
        return 0;

    if (!same_view(u.raw, ((csip_str){p, size})))
        fail("raw is not the input", (long)u.raw.len, (long)size);
    if (u.scheme.len == 0)
        fail("empty scheme", 0, 0);
    const csip_str views[] = {u.scheme, u.user,      u.password, u.host,  u.params, u.headers,
                              u.opaque, u.transport, u.method,   u.maddr, u.ttl,    u.user_param};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        check_inside(views[i], p, size, "view outside the input");
    const csip_str pviews[] = {u.transport, u.user_param, u.method, u.maddr, u.ttl};
    for (size_t i = 0; i < sizeof pviews / sizeof pviews[0]; i++)
        if (pviews[i].p && !u.params.p)
            fail("extracted parameter without params", (long)i, 0);
        else
            check_inside(pviews[i], u.params.p, u.params.len, "parameter outside params");

    switch (u.kind) {
    case CSIP_URI_SIP:
    case CSIP_URI_SIPS:
        if (u.host.len == 0 || u.host_type == CSIP_HOST_NONE)
            fail("sip URI without host", 0, 0);
        if (u.user.p && u.user.len == 0)
            fail("empty user", 0, 0);
        break;
    case CSIP_URI_TEL:
        if (u.user.len == 0 || u.host.p)
            fail("tel URI shape", (long)u.user.len, 0);
        break;
    default:
        if (u.opaque.len == 0 || u.host.p || u.user.p || u.params.p)
            fail("absolute URI shape", (long)u.opaque.len, 0);
        break;
    }
    if (u.params.p) {
        int wr = walk_params(u.params);
        if (wr != 0)
            fail("parsed params do not read to the end", wr, 0);
    }

    if (!csip_uri_equal(&u, &u))
        fail("URI not equal to itself", u.kind, 0);

    if (csip_uri_parse(p, size, size, &v) != 0)
        fail("second parse failed", 0, 0);
    check_same_fields(&u, &v);

    char *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, p, size);
    if (csip_uri_parse(copy, size, size, &w) != 0)
        fail("parse of a copy failed", 0, 0);
    if (!csip_uri_equal(&u, &w) || !csip_uri_equal(&w, &u))
        fail("URI not equal to a copy of itself", u.kind, 0);
    free(copy);

    check_user_round_trip(&u);
    return 0;
}
