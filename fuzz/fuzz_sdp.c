/*
 * Fuzz target: the SDP parser, its accessors and printer, and offer/answer.
 * The input is one session description.
 *
 * For every input:
 *   - the parse gives 0, CSIP_ERR_PARSE_SDP or CSIP_ERR_LIMIT_SDP; an error is
 *     located inside the input (offset, line and column from 1, a sentence);
 *   - with tight limits the result is the same or CSIP_ERR_LIMIT_SDP;
 *   - with an allocator that fails, CSIP_ERR_NOMEM and nothing allocated.
 * When the parse succeeded:
 *   - every view lies inside the input, and every accessor runs on every
 *     media section and format (rtpmap, fmtp, ptime, connection, attributes);
 *   - the printed description parses again to the same fields, and prints to
 *     the same bytes;
 *   - an answer to it (two audio ports, PCMU, PCMA, opus, telephone-event)
 *     parses, has as many sections, and csip_sdp_negotiated() accepts it from
 *     both sides with as many accepted sections as the answer reported; the
 *     same answer again keeps the o= version;
 *   - a re-offer with it as the previous exchange parses and keeps at least
 *     its sections, in order and of the same media types.
 * Any property that does not hold calls abort().
 */
#include "csip/sdp.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(what, a, b) fuzz_fail("fuzz_sdp", (what), (long)(a), (long)(b))

/* Generous limits for re-parsing what the library wrote (CRLF adds octets). */
static const csip_sdp_limits roomy = {1u << 20, 8192, 64, 4096, 256};

static const char *in_base;
static size_t in_size;

static void inside(csip_str s, const char *what)
{
    if (s.p == NULL)
        return;
    if (s.p < in_base || s.len > in_size || (size_t)(s.p - in_base) > in_size - s.len)
        FAIL(what, s.p - in_base, s.len);
    fuzz_touch(s);
}

static bool same(csip_str a, csip_str b)
{
    return (a.p == NULL) == (b.p == NULL) && csip_str_eq(a, b);
}

static void check_views(const csip_sdp *s)
{
    const csip_sdp_desc *d = csip_sdp_get(s);
    const csip_sdp_origin *o = &d->origin;
    inside(o->username, "origin");
    inside(o->sess_id, "origin");
    inside(o->sess_version, "origin");
    inside(o->nettype, "origin");
    inside(o->addrtype, "origin");
    inside(o->address, "origin");
    inside(d->name, "name");
    inside(d->info, "info");
    inside(d->uri, "uri");
    for (size_t i = 0; i < d->n_emails; i++)
        inside(d->emails[i], "email");
    for (size_t i = 0; i < d->n_phones; i++)
        inside(d->phones[i], "phone");
    if (d->conn) {
        inside(d->conn->address, "conn");
        inside(d->conn->suffix, "conn");
    }
    for (size_t i = 0; i < d->n_bws; i++)
        inside(d->bws[i].value, "bw");
    if (d->n_times == 0)
        FAIL("no t=", 0, 0);
    for (size_t i = 0; i < d->n_times; i++) {
        inside(d->times[i].start, "time");
        for (size_t j = 0; j < d->times[i].n_repeats; j++)
            inside(d->times[i].repeats[j], "repeat");
    }
    inside(d->zone, "zone");
    inside(d->key, "key");
    for (size_t i = 0; i < d->n_attrs; i++) {
        inside(d->attrs[i].name, "attr");
        inside(d->attrs[i].value, "attr");
    }
    for (size_t k = 0; k < d->n_media; k++) {
        const csip_sdp_media *m = csip_sdp_media_at(s, k);
        if (m != &d->media[k])
            FAIL("media_at", k, 0);
        inside(m->media, "media");
        inside(m->proto, "proto");
        inside(m->info, "media info");
        inside(m->key, "media key");
        if (m->n_fmts == 0)
            FAIL("no format", k, 0);
        if ((unsigned)m->dir > 3 || (!m->has_dir && m->dir != d->dir))
            FAIL("media direction", k, m->dir);
        for (size_t i = 0; i < m->n_conns; i++)
            inside(m->conns[i].address, "media conn");
        for (size_t i = 0; i < m->n_bws; i++)
            inside(m->bws[i].type, "media bw");
        for (size_t i = 0; i < m->n_attrs; i++) {
            inside(m->attrs[i].name, "media attr");
            inside(m->attrs[i].value, "media attr");
        }
        const csip_sdp_conn *c = csip_sdp_media_conn(s, k);
        if (!c && m->port != 0)
            FAIL("a section with a port and no connection", k, m->port);
        for (size_t i = 0; i < m->n_fmts; i++) {
            inside(m->fmts[i], "fmt");
            csip_sdp_rtpmap r;
            if (csip_sdp_media_rtpmap(m, m->fmts[i], &r) == 0) {
                if (r.name.len == 0 || r.clock == 0 || r.channels == 0 || r.pt > 127)
                    FAIL("rtpmap fields", r.pt, r.clock);
                if (!r.from_table)
                    inside(r.name, "rtpmap name");
            }
            csip_str fp;
            if (csip_sdp_media_fmtp(m, m->fmts[i], &fp) == 0) {
                inside(fp, "fmtp");
                if (fp.len == 0)
                    FAIL("empty fmtp", k, i);
            }
        }
        uint32_t ms;
        (void)csip_sdp_media_ptime(m, &ms);
        size_t n = 0;
        for (const csip_sdp_attr *a = NULL;
             (a = csip_sdp_attr_next(m->attrs, m->n_attrs, "rtpmap", a)) != NULL;)
            if (++n > m->n_attrs)
                FAIL("attr_next does not end", n, m->n_attrs);
    }
    if (csip_sdp_media_at(s, d->n_media) != NULL || csip_sdp_media_conn(s, d->n_media) != NULL)
        FAIL("past the last section", d->n_media, 0);
}

static void same_conn(const csip_sdp_conn *a, const csip_sdp_conn *b)
{
    if (!same(a->nettype, b->nettype) || !same(a->addrtype, b->addrtype) ||
        !same(a->address, b->address) || !same(a->suffix, b->suffix))
        FAIL("reparse: connection", a->address.len, b->address.len);
}

static void same_attrs(const csip_sdp_attr *a, size_t na, const csip_sdp_attr *b, size_t nb)
{
    if (na != nb)
        FAIL("reparse: attribute count", na, nb);
    for (size_t i = 0; i < na; i++)
        if (!same(a[i].name, b[i].name) || !same(a[i].value, b[i].value))
            FAIL("reparse: attribute", i, 0);
}

static void same_bws(const csip_sdp_bw *a, size_t na, const csip_sdp_bw *b, size_t nb)
{
    if (na != nb)
        FAIL("reparse: bandwidth count", na, nb);
    for (size_t i = 0; i < na; i++)
        if (!same(a[i].type, b[i].type) || a[i].kbps != b[i].kbps)
            FAIL("reparse: bandwidth", i, 0);
}

static void same_desc(const csip_sdp *x, const csip_sdp *y)
{
    const csip_sdp_desc *a = csip_sdp_get(x), *b = csip_sdp_get(y);
    const csip_sdp_origin *p = &a->origin, *q = &b->origin;
    if (!same(p->username, q->username) || !same(p->sess_id, q->sess_id) ||
        p->version != q->version || !same(p->nettype, q->nettype) ||
        !same(p->addrtype, q->addrtype) || !same(p->address, q->address))
        FAIL("reparse: origin", 0, 0);
    if (!same(a->name, b->name) || !same(a->info, b->info) || !same(a->uri, b->uri) ||
        !same(a->zone, b->zone) || !same(a->key, b->key))
        FAIL("reparse: session text fields", 0, 0);
    if (a->n_emails != b->n_emails || a->n_phones != b->n_phones)
        FAIL("reparse: e= p= counts", a->n_emails, b->n_emails);
    for (size_t i = 0; i < a->n_emails; i++)
        if (!same(a->emails[i], b->emails[i]))
            FAIL("reparse: e=", i, 0);
    for (size_t i = 0; i < a->n_phones; i++)
        if (!same(a->phones[i], b->phones[i]))
            FAIL("reparse: p=", i, 0);
    if ((a->conn == NULL) != (b->conn == NULL))
        FAIL("reparse: session c=", 0, 0);
    if (a->conn)
        same_conn(a->conn, b->conn);
    same_bws(a->bws, a->n_bws, b->bws, b->n_bws);
    if (a->n_times != b->n_times)
        FAIL("reparse: t= count", a->n_times, b->n_times);
    for (size_t i = 0; i < a->n_times; i++) {
        const csip_sdp_time *s = &a->times[i], *t = &b->times[i];
        if (s->start_num != t->start_num || s->stop_num != t->stop_num ||
            s->n_repeats != t->n_repeats)
            FAIL("reparse: t=", i, 0);
        for (size_t j = 0; j < s->n_repeats; j++)
            if (!same(s->repeats[j], t->repeats[j]))
                FAIL("reparse: r=", i, j);
    }
    same_attrs(a->attrs, a->n_attrs, b->attrs, b->n_attrs);
    if (a->dir != b->dir || a->has_dir != b->has_dir)
        FAIL("reparse: session direction", a->dir, b->dir);
    if (a->n_media != b->n_media)
        FAIL("reparse: media count", a->n_media, b->n_media);
    for (size_t k = 0; k < a->n_media; k++) {
        const csip_sdp_media *m = &a->media[k], *n = &b->media[k];
        if (!same(m->media, n->media) || m->port != n->port || m->port_count != n->port_count ||
            !same(m->proto, n->proto) || m->n_fmts != n->n_fmts || !same(m->info, n->info) ||
            !same(m->key, n->key) || m->dir != n->dir || m->has_dir != n->has_dir ||
            m->n_conns != n->n_conns)
            FAIL("reparse: media section", k, 0);
        for (size_t i = 0; i < m->n_fmts; i++)
            if (!same(m->fmts[i], n->fmts[i]))
                FAIL("reparse: format", k, i);
        for (size_t i = 0; i < m->n_conns; i++)
            same_conn(&m->conns[i], &n->conns[i]);
        same_bws(m->bws, m->n_bws, n->bws, n->n_bws);
        same_attrs(m->attrs, m->n_attrs, n->attrs, n->n_attrs);
    }
}

/* Writes with f into a fresh buffer of the size it asks for, and parses the result. */
static char *print_copy(const csip_sdp *s, int *len)
{
    int need = csip_sdp_print(s, NULL, 0);
    if (need <= 0)
        FAIL("print length", need, 0);
    char *buf = malloc((size_t)need);
    if (!buf)
        abort();
    if (csip_sdp_print(s, buf, (size_t)need - 1) != CSIP_ERR_BUFFER_TOO_SMALL)
        FAIL("print into a short buffer", need, 0);
    int n = csip_sdp_print(s, buf, (size_t)need);
    if (n != need)
        FAIL("print length differs", n, need);
    *len = n;
    return buf;
}

static void check_print(const csip_sdp *s)
{
    int n;
    char *buf = print_copy(s, &n);
    csip_sdp *t = NULL;
    csip_sdp_error err;
    int rc = csip_sdp_parse_limited(buf, (size_t)n, NULL, &roomy, &t, &err);
    if (rc != 0) {
        fprintf(stderr, "reparse: %s at %u:%u: %s\n%.*s", csip_err_name(rc), err.line, err.column,
                err.what ? err.what : "", n, buf);
        FAIL("printed description does not parse", rc, err.offset);
    }
    same_desc(s, t);
    int n2;
    char *buf2 = print_copy(t, &n2);
    if (n2 != n || memcmp(buf, buf2, (size_t)n) != 0)
        FAIL("second print differs", n, n2);
    free(buf2);
    csip_sdp_free(t);
    free(buf);
}

static const uint16_t ports[] = {4000, 4002};
static const csip_sdp_codec codecs[] = {
    {0, {NULL, 0}, 0, 0, {NULL, 0}},
    {8, {"PCMA", 4}, 8000, 0, {NULL, 0}},
    {111, {"opus", 4}, 48000, 2, {"useinbandfec=1", 14}},
    {101, {"telephone-event", 15}, 8000, 0, {"0-16", 4}},
};
static const csip_sdp_local local = {{"-", 1}, 1234,   {"fuzz", 4}, {"192.0.2.7", 9},  ports,
                                     2,        codecs, 4,           CSIP_SDP_SENDRECV, 20};

static csip_sdp *parse_own(const char *buf, int n, const char *what)
{
    csip_sdp *s = NULL;
    csip_sdp_error err;
    int rc = csip_sdp_parse_limited(buf, (size_t)n, NULL, &roomy, &s, &err);
    if (rc != 0) {
        fprintf(stderr, "%s: %s at %u:%u: %s\n%.*s", what, csip_err_name(rc), err.line, err.column,
                err.what ? err.what : "", n, buf);
        FAIL("a description the library wrote does not parse", rc, err.offset);
    }
    return s;
}

static void check_answer(const csip_sdp *offer)
{
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 5);
    size_t acc = 0;
    int need = csip_sdp_answer(&sess, &local, offer, NULL, 0, &acc);
    if (need <= 0)
        FAIL("answer length", need, 0);
    char *buf = malloc((size_t)need);
    if (!buf)
        abort();
    int n = csip_sdp_answer(&sess, &local, offer, buf, (size_t)need, &acc);
    if (n != need)
        FAIL("answer length differs", n, need);
    csip_sdp *ans = parse_own(buf, n, "answer");
    const csip_sdp_desc *od = csip_sdp_get(offer), *ad = csip_sdp_get(ans);
    if (ad->n_media != od->n_media)
        FAIL("answer section count", ad->n_media, od->n_media);
    if (ad->origin.version != 5 || sess.version != 5)
        FAIL("first answer version", ad->origin.version, sess.version);
    size_t accepted = 0;
    for (size_t i = 0; i < od->n_media; i++) {
        csip_sdp_stream st, mirror;
        int rc = csip_sdp_negotiated(offer, ans, false, i, &st);
        if (rc != 0)
            FAIL("answerer's negotiation", rc, i);
        rc = csip_sdp_negotiated(offer, ans, true, i, &mirror);
        if (rc != 0)
            FAIL("offerer's negotiation", rc, i);
        if (st.accepted != mirror.accepted || (ad->media[i].port != 0) != st.accepted)
            FAIL("accepted differs", st.accepted, mirror.accepted);
        if (st.accepted) {
            accepted++;
            if (st.codec.name.len == 0 || mirror.codec.pt != st.codec.pt)
                FAIL("accepted section without a codec", i, st.codec.pt);
            inside(st.address, "negotiated address");
            if (st.port != od->media[i].port || mirror.port != ad->media[i].port)
                FAIL("negotiated ports", st.port, mirror.port);
        }
    }
    if (accepted != acc)
        FAIL("accepted count", accepted, acc);
    if (csip_sdp_negotiated(offer, ans, true, od->n_media, &(csip_sdp_stream){0}) !=
        CSIP_ERR_NOT_FOUND)
        FAIL("negotiated past the last section", od->n_media, 0);
    /* the same answer again: unchanged, same version */
    int n2 = csip_sdp_answer(&sess, &local, offer, buf, (size_t)need, NULL);
    if (n2 != n || sess.version != 5)
        FAIL("unchanged answer changed the version", n2, (long)sess.version);
    csip_sdp_free(ans);
    free(buf);
}

static void check_reoffer(const csip_sdp *prev)
{
    csip_sdp_session sess;
    csip_sdp_session_init(&sess, 9);
    int need = csip_sdp_offer(&sess, &local, prev, NULL, 0);
    if (need <= 0)
        FAIL("offer length", need, 0);
    char *buf = malloc((size_t)need);
    if (!buf)
        abort();
    if (csip_sdp_offer(&sess, &local, prev, buf, (size_t)need) != need)
        FAIL("offer length differs", need, 0);
    csip_sdp *o = parse_own(buf, need, "re-offer");
    const csip_sdp_desc *pd = csip_sdp_get(prev), *d = csip_sdp_get(o);
    if (d->n_media < pd->n_media)
        FAIL("re-offer lost sections", d->n_media, pd->n_media);
    for (size_t i = 0; i < pd->n_media; i++)
        if (!csip_str_eq(d->media[i].media, pd->media[i].media))
            FAIL("re-offer changed a media type", i, 0);
    csip_sdp_free(o);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    in_base = buf;
    in_size = size;
    csip_sdp *s = NULL;
    csip_sdp_error err;
    int rc = csip_sdp_parse(size ? buf : "", size, NULL, &s, &err);
    if (rc != 0) {
        if (rc != CSIP_ERR_PARSE_SDP && rc != CSIP_ERR_LIMIT_SDP)
            FAIL("parse error code", rc, 0);
        if (s != NULL || err.code != rc || err.offset > size || err.line == 0 || err.column == 0 ||
            err.what == NULL)
            FAIL("error location", (long)err.offset, (long)err.line);
    }

    static const csip_sdp_limits tight = {512, 12, 2, 4, 4};
    csip_sdp *t = NULL;
    csip_sdp_error terr;
    int trc = csip_sdp_parse_limited(size ? buf : "", size, NULL, &tight, &t, &terr);
    if (trc != rc && trc != CSIP_ERR_LIMIT_SDP)
        FAIL("tight limits changed the result", trc, rc);
    csip_sdp_free(t);

    if (rc == 0) {
        fuzz_failmem fm; /* every allocation fails */
        csip_sdp *f = NULL;
        if (csip_sdp_parse(buf, size, fuzz_failmem_init(&fm, 1, 1), &f, &err) != CSIP_ERR_NOMEM ||
            f != NULL || fm.count != 1 || fm.live != 0)
            FAIL("failing allocator", fm.count, fm.live);

        check_views(s);
        check_print(s);
        check_answer(s);
        check_reoffer(s);
    }
    csip_sdp_free(s);
    return 0;
}
