/*
 * Typed header values: the value parsers (public, allocation-free, one value
 * at a time) and the message accessors that run them on first access and
 * cache the result per header line.
 *
 * Header values may contain folded line breaks (CRLF followed by SP/HT); the
 * splitter guarantees that, so every LWS skip here treats CR and LF as
 * whitespace.
 */
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "msg/msg_int.h"
#include "uri/uri_int.h"

#define IS(c, cls) csip__is((unsigned char)(c), (cls))

const char *csip__scan_quoted(const char *p, const char *end)
{
    p++; /* opening quote */
#if defined(__SSE2__)
    /* a short string without backslash closes within 16 octets: one compare */
    if (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned qm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
        unsigned bm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
        if (qm && !(bm & ((qm & (0u - qm)) - 1)))
            return p + __builtin_ctz(qm) + 1;
    }
#endif
    /* the next quote, and whether a backslash comes before it; every octet is
     * searched at most once for each */
    const char *q = memchr(p, '"', (size_t)(end - p));
    for (;;) {
        if (!q)
            return NULL;
        const char *b = memchr(p, '\\', (size_t)(q - p));
        if (!b)
            return q + 1;
        /* quoted-pair: any octet but CR and LF (RFC 3261 §25.1) */
        if (b + 1 >= end || b[1] == '\r' || b[1] == '\n')
            return NULL;
        p = b + 2;
        if (b + 1 == q) /* that quote was escaped */
            q = memchr(p, '"', (size_t)(end - p));
    }
}

static inline const char *scan_token(const char *p, const char *end)
{
    return csip__span(p, end, CSIP_C_TOKEN);
}

/* A parameter the caller wants extracted from a generic-param list: where its
 * value (a csip_str) and its presence flag (a bool, or none) go, as offsets
 * into the caller's capture struct, so that the tables are static. */
typedef struct pcap {
    char name[12]; /* lowercase, zero-padded: read as a word by scan_params */
    uint8_t len;
    uint16_t val;
    int16_t present;
} pcap;

#define PCAP(lit, type, vf) {lit, sizeof(lit) - 1, offsetof(type, vf), -1}
#define PCAP_P(lit, type, vf, pf) {lit, sizeof(lit) - 1, offsetof(type, vf), offsetof(type, pf)}

static inline uint64_t load64u(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A token (known to be one) against a lowercase name of the same length:
 * OR-ing 0x20 folds letters and leaves '-', digits and other token octets alone. */
static inline bool name_is(csip_str tok, const char *lower)
{
    for (size_t i = 0; i < tok.len; i++)
        if ((tok.p[i] | 0x20) != lower[i])
            return false;
    return true;
}

/*
 * Scans *( SEMI generic-param ) from *pp. generic-param = token [ EQUAL
 * gen-value ], gen-value = token / host / quoted-string. Stops at the end or,
 * for lists, at a comma (left unconsumed). Fills *raw with the parameters
 * (after the first ';') and the captured values (quoted ones keep quotes).
 */
static int scan_params(const char **pp, const char *end, bool list, csip_str *raw,
                       void *base, const pcap *caps, size_t ncaps)
{
    const char *p = *pp, *start = NULL, *last = NULL;
    for (;;) {
        p = csip__skip_lws(p, end);
        if (p >= end || (list && *p == ','))
            break;
        if (*p != ';')
            return CSIP_ERR_PARSE_HEADER_VALUE;
        p = csip__skip_lws(p + 1, end);
        if (!start)
            start = p;
        const char *ns = p;
        p = scan_token(p, end);
        if (p == ns)
            return CSIP_ERR_PARSE_HEADER_VALUE; /* ";;" or ";," (RFC 4475 badinv01) */
        csip_str name = {ns, (size_t)(p - ns)};
        csip_str val = {NULL, 0};
        const char *q = csip__skip_lws(p, end);
        if (q < end && *q == '=') {
            q = csip__skip_lws(q + 1, end);
            const char *vs = q;
            if (q < end && *q == '"') {
                q = csip__scan_quoted(q, end);
                if (!q)
                    return CSIP_ERR_PARSE_HEADER_VALUE;
            } else {
                q = csip__span(q, end, CSIP_C_GENVAL);
            }
            if (q == vs)
                return CSIP_ERR_PARSE_HEADER_VALUE;
            val = (csip_str){vs, (size_t)(q - vs)};
            p = q;
        }
        last = p;
        const pcap *hit = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (name.len <= 8 && end - name.p >= 8) {
            /* the name folded to lowercase in one word, compared with each padded name */
            uint64_t k = (load64u(name.p) | 0x2020202020202020u) &
                         (~(uint64_t)0 >> (64 - 8 * name.len));
            for (size_t i = 0; i < ncaps; i++)
                if (caps[i].len == name.len && load64u(caps[i].name) == k) {
                    hit = &caps[i];
                    break;
                }
        } else
#endif
        {
            for (size_t i = 0; i < ncaps; i++)
                if (name.len == caps[i].len && (name.p[0] | 0x20) == caps[i].name[0] &&
                    name_is(name, caps[i].name)) {
                    hit = &caps[i];
                    break;
                }
        }
        if (hit) {
            *(csip_str *)(void *)((char *)base + hit->val) = val;
            if (hit->present >= 0)
                *(bool *)(void *)((char *)base + hit->present) = true;
        }
    }
    *raw = start ? (csip_str){start, (size_t)(last - start)} : (csip_str){NULL, 0};
    *pp = p;
    return 0;
}

static inline uint32_t load32u(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The gen-value (token or host, unquoted) of the usual parameters taken by the
 * fast paths below: its end, or p when there is none (the general scan then
 * reads the parameter). Such values are usually long: 16 octets a step. */
static inline const char *fast_genval(const char *lo, const char *p, const char *end)
{
    return csip__span_long(lo, p, end, CSIP_C_GENVAL);
}

/* The raw parameters of a list whose first ones a fast path read, from fs
 * (NULL: none) to fl, and whose rest scan_params() read into rest. */
static inline csip_str params_join(const char *fs, const char *fl, csip_str rest)
{
    if (!fs)
        return rest;
    return (csip_str){fs, (size_t)((rest.p ? rest.p + rest.len : fl) - fs)};
}

/* After a list element: end of input, or a comma (consumed). */
static int list_next(const char *p, const char *end, csip_str *s)
{
    p = csip__skip_lws(p, end);
    if (p < end) {
        if (*p != ',')
            return CSIP_ERR_PARSE_HEADER_VALUE;
        p = csip__skip_lws(p + 1, end);
        if (p >= end)
            return CSIP_ERR_PARSE_HEADER_VALUE; /* trailing comma */
    }
    s->len = (size_t)(end - p);
    s->p = p;
    return 0;
}

static int u16_value(csip_str v, uint16_t *out, uint32_t max)
{
    uint32_t n;
    if (csip_str_to_u32(v, &n) < 0 || n > max)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    *out = (uint16_t)n;
    return 0;
}

/* host for Via sent-by: IPv6 reference, IPv4 address or host name. */
static const char *scan_host(const char *p, const char *end, csip_str *host, csip_host_type *type)
{
    const char *s = p;
    if (p < end && *p == '[') {
        while (p < end && *p != ']') {
            if (!IS(*p, CSIP_C_HEX) && *p != ':' && *p != '.' && *p != '[')
                return NULL;
            p++;
        }
        if (p >= end || p - s < 3)
            return NULL;
        p++;
        *type = CSIP_HOST_IPV6;
    } else {
        if (p < end && (unsigned)((unsigned char)*p - '0') <= 9) {
            /* the usual IPv4 address in one pass */
            const char *q = csip__scan_ipv4(p, end);
            if (q) {
                *type = CSIP_HOST_IPV4;
                *host = (csip_str){s, (size_t)(q - s)};
                return q;
            }
        }
        const char *top;
#if defined(CSIP__HOST_RUN)
        size_t n;
        uint64_t dots, dashes;
        if (csip__host_run(p, end, &n, &dots, &dashes)) {
            const uint64_t last = n ? (uint64_t)1 << (n - 1) : 0;
            if (n == 0 || ((dots | dashes) & 1) || (dashes & last))
                return NULL;
            /* the top label starts after the last dot (a trailing dot aside) */
            const uint64_t d = dots & ~last;
            p += n;
            top = s + (d ? (size_t)(64 - __builtin_clzll(d)) : 0);
        } else
#endif
        {
            p = csip__span(p, end, CSIP_C_HOST);
            if (p == s || *s == '.' || *s == '-' || p[-1] == '-')
                return NULL;
            const char *last = p[-1] == '.' ? p - 1 : p;
            top = last;
            while (top > s && top[-1] != '.')
                top--;
        }
        /* A host name's last label starts with a letter; otherwise it is an IPv4 address. */
        if (IS(*top, CSIP_C_ALPHA)) {
            *type = CSIP_HOST_NAME;
        } else {
            /* four decimal octets, each 0..255 */
            unsigned parts = 0, val = 0, nd = 0;
            for (const char *q = s; q <= p; q++) {
                if (q == p || *q == '.') {
                    if (!nd || val > 255)
                        return NULL;
                    parts++;
                    val = nd = 0;
                } else if (IS(*q, CSIP_C_DIGIT)) {
                    val = val * 10 + (unsigned)(*q - '0');
                    if (++nd > 3)
                        return NULL;
                } else {
                    return NULL;
                }
            }
            if (parts != 4)
                return NULL;
            *type = CSIP_HOST_IPV4;
        }
    }
    *host = (csip_str){s, (size_t)(p - s)};
    return p;
}

int csip_via_parse(csip_str *s, csip_via *v)
{
    const char *p = s->p, *end = s->p + s->len;
    csip__zero(v, sizeof *v);
    p = csip__skip_lws(p, end);
    const char *start = p, *q;
    /* sent-protocol = protocol-name SLASH protocol-version SLASH transport;
     * the common "SIP/2.0/" (any case of SIP) is taken in one compare. */
    if (end - p > 8 &&
        (load64u(p) | load64u("\x20\x20\x20\0\0\0\0\0")) == load64u("sip/2.0/")) {
        v->protocol = (csip_str){p, 3};
        v->version = (csip_str){p + 4, 3};
        p += 8;
        q = scan_token(p, end);
        if (q == p)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        v->transport = (csip_str){p, (size_t)(q - p)};
        p = q;
    } else {
        csip_str *parts[3] = {&v->protocol, &v->version, &v->transport};
        for (int i = 0; i < 3; i++) {
            if (i) {
                p = csip__skip_lws(p, end);
                if (p >= end || *p != '/')
                    return CSIP_ERR_PARSE_HEADER_VALUE;
                p = csip__skip_lws(p + 1, end);
            }
            q = scan_token(p, end);
            if (q == p)
                return CSIP_ERR_PARSE_HEADER_VALUE;
            *parts[i] = (csip_str){p, (size_t)(q - p)};
            p = q;
        }
    }
    q = csip__skip_lws(p, end);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE; /* LWS required before sent-by */
    p = scan_host(q, end, &v->host, &v->host_type);
    if (!p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    q = csip__skip_lws(p, end);
    if (q < end && *q == ':') {
        q = csip__skip_lws(q + 1, end);
        p = q;
        /* 1*DIGIT, 0 to 65535, read in the scan (saturated at 65536) */
        uint32_t port = 0;
        while (p < end && IS(*p, CSIP_C_DIGIT)) {
            port = port * 10 + (uint32_t)(*p - '0');
            if (port > 65535)
                port = 65536;
            p++;
        }
        if (p == q || port > 65535)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        v->port = (uint16_t)port;
        v->has_port = true;
    }
    struct via_caps {
        csip_str branch, received, maddr, ttl, rport;
        bool has_rport;
    } c;
    csip__zero(&c, sizeof c);
    static const pcap caps[] = {
        PCAP("branch", struct via_caps, branch), PCAP("received", struct via_caps, received),
        PCAP("maddr", struct via_caps, maddr),   PCAP("ttl", struct via_caps, ttl),
        PCAP_P("rport", struct via_caps, rport, has_rport),
    };
    /* The usual ";branch=", ";received=" and ";rport" each in a compare or
     * two, as long as they come without LWS and with an unquoted value; the
     * first other octet leaves the rest to scan_params(), which reads from
     * there exactly what it would have read. Letters compare without case. */
    const char *fs = NULL, *fl = NULL;
    while (p < end && *p == ';') {
        const char *vs, *ve;
        if (end - p > 8 &&
            (load64u(p) | load64u("\0\x20\x20\x20\x20\x20\x20\0")) == load64u(";branch=")) {
            vs = p + 8;
            ve = fast_genval(s->p, vs, end);
            if (ve == vs)
                break;
            c.branch = (csip_str){vs, (size_t)(ve - vs)};
        } else if (end - p > 10 &&
                   (load64u(p) | load64u("\0\x20\x20\x20\x20\x20\x20\x20")) ==
                       load64u(";receive") &&
                   (p[8] | 0x20) == 'd' && p[9] == '=') {
            vs = p + 10;
            ve = fast_genval(s->p, vs, end);
            if (ve == vs)
                break;
            c.received = (csip_str){vs, (size_t)(ve - vs)};
        } else if (end - p >= 6 && (load32u(p) | load32u("\0\x20\x20\x20")) == load32u(";rpo") &&
                   (p[4] | 0x20) == 'r' && (p[5] | 0x20) == 't' &&
                   (end - p == 6 || p[6] == ';' || p[6] == ',')) {
            ve = p + 6;
            c.has_rport = true;
            c.rport = (csip_str){NULL, 0};
        } else {
            break;
        }
        if (!fs)
            fs = p + 1;
        fl = ve;
        p = ve;
    }
    int rc = scan_params(&p, end, true, &v->params, &c, caps, sizeof caps / sizeof caps[0]);
    if (rc < 0)
        return rc;
    v->params = params_join(fs, fl, v->params);
    v->branch = c.branch;
    v->received = c.received;
    v->maddr = c.maddr;
    v->ttl = c.ttl;
    v->has_rport = c.has_rport;
    csip_str rport = c.rport;
    if (v->has_rport && rport.p) {
        if (u16_value(rport, &v->rport, 65535) < 0)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        v->rport_has_value = true;
    }
    uint16_t ttl;
    if (v->ttl.p && u16_value(v->ttl, &ttl, 255) < 0)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    if ((v->branch.p && v->branch.p[0] == '"') || (v->received.p && v->received.p[0] == '"'))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    v->raw = (csip_str){start, (size_t)(p - start)};
    while (v->raw.len && IS(v->raw.p[v->raw.len - 1], CSIP_C_LWS))
        v->raw.len--;
    return list_next(p, end, s);
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths */
static int qvalue(csip_str v, uint16_t *out)
{
    if (v.len == 0 || v.len > 5 || (v.p[0] != '0' && v.p[0] != '1'))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    unsigned q = (unsigned)(v.p[0] - '0') * 1000;
    if (v.len > 1) {
        if (v.p[1] != '.')
            return CSIP_ERR_PARSE_HEADER_VALUE;
        unsigned scale = 100;
        for (size_t i = 2; i < v.len; i++, scale /= 10) {
            if (!IS(v.p[i], CSIP_C_DIGIT))
                return CSIP_ERR_PARSE_HEADER_VALUE;
            q += (unsigned)(v.p[i] - '0') * scale;
        }
        if (q > 1000)
            return CSIP_ERR_PARSE_HEADER_VALUE;
    }
    *out = (uint16_t)q;
    return 0;
}

/* delta-seconds; an overlarge value is read as 3600, as RFC 4475 §3.1.2.4 suggests. */
static int delta_seconds(csip_str v, uint32_t *out)
{
    int rc = csip_str_to_u32(v, out);
    if (rc == CSIP_ERR_RANGE) {
        *out = 3600;
        return 0;
    }
    return rc < 0 ? CSIP_ERR_PARSE_HEADER_VALUE : 0;
}

int csip_nameaddr_parse(csip_str *s, unsigned flags, csip_nameaddr *na)
{
    const char *p = s->p, *end = s->p + s->len, *q;
    const bool list = flags & CSIP_NAMEADDR_LIST;
    /* csip_uri_parse() clears na->uri itself: clear the rest only */
    csip__zero(na, offsetof(csip_nameaddr, uri));
    csip__zero((char *)na + offsetof(csip_nameaddr, uri) + sizeof na->uri,
               sizeof *na - offsetof(csip_nameaddr, uri) - sizeof na->uri);
    p = csip__skip_lws(p, end);
    const char *start = p;
    if (p >= end)
        return CSIP_ERR_PARSE_HEADER_VALUE;

    if ((flags & CSIP_NAMEADDR_STAR) && *p == '*') {
        memset(&na->uri, 0, sizeof na->uri);
        q = csip__skip_lws(p + 1, end);
        if (q < end && *q != ';' && *q != ',')
            return CSIP_ERR_PARSE_HEADER_VALUE;
        na->star = true;
        p++;
    } else {
        const char *laquot = NULL;
        if (*p == '"') {
            q = csip__scan_quoted(p, end);
            if (!q)
                return CSIP_ERR_PARSE_HEADER_VALUE;
            na->display = (csip_str){p, (size_t)(q - p)};
            q = csip__skip_lws(q, end);
            if (q >= end || *q != '<')
                return CSIP_ERR_PARSE_HEADER_VALUE;
            laquot = q;
        } else if (*p == '<') {
            laquot = p;
        } else {
            /* display-name as *(token LWS), or an addr-spec */
            const char *t = p, *last = p;
            for (;;) {
                const char *te = scan_token(t, end);
                if (te == t)
                    break;
                last = te;
                t = csip__skip_lws(te, end);
                if (t == te)
                    break;
            }
            t = csip__skip_lws(last, end);
            if (last > p && t < end && *t == '<') {
                /* RFC 4475 lwsdisp: no LWS before '<' is accepted too */
                na->display = (csip_str){p, (size_t)(last - p)};
                laquot = t;
            }
        }
        if (laquot) {
            const char *u = laquot + 1, *ra;
            /* the usual sip URI finds its own end at the '>'; anything else
             * takes the search for '>' and the general parser (and its errors) */
            if (csip__uri_parse_until(u, end, '>', &na->uri, &ra) != 0) {
                ra = memchr(u, '>', (size_t)(end - u));
                if (!ra)
                    return CSIP_ERR_PARSE_HEADER_VALUE;
                int rc = csip_uri_parse(u, (size_t)(ra - u), 0, &na->uri);
                if (rc < 0)
                    return rc == CSIP_ERR_LIMIT_URI ? rc : CSIP_ERR_PARSE_URI;
            }
            na->angle = true;
            p = ra + 1;
        } else {
            if (flags & CSIP_NAMEADDR_NEED_ANGLE)
                return CSIP_ERR_PARSE_HEADER_VALUE;
            /* addr-spec: the URI ends at ';' (header params), ',' or LWS. A URI
             * with headers ('?') or parameters must be in <> (RFC 3261 §20). */
            q = p;
            while (q < end && *q != ';' && *q != ',' && !IS(*q, CSIP_C_LWS))
                q++;
            if (memchr(p, '?', (size_t)(q - p)))
                return CSIP_ERR_PARSE_URI; /* RFC 4475 regbadct */
            int rc = csip_uri_parse(p, (size_t)(q - p), 0, &na->uri);
            if (rc < 0)
                return rc == CSIP_ERR_LIMIT_URI ? rc : CSIP_ERR_PARSE_URI;
            p = q;
        }
    }

    struct na_caps {
        csip_str tag, exp, q;
        bool has_exp, has_q;
    } c = {{NULL, 0}, {NULL, 0}, {NULL, 0}, false, false};
    static const pcap caps[] = {
        PCAP("tag", struct na_caps, tag),
        PCAP_P("expires", struct na_caps, exp, has_exp),
        PCAP_P("q", struct na_caps, q, has_q),
    };
    /* The usual ";tag=" with an unquoted value and no LWS in one compare; the
     * general scan reads the rest (see csip_via_parse()). */
    const char *fs = NULL, *fl = NULL;
    if (end - p > 5 && *p == ';' &&
        (load32u(p + 1) | load32u("\x20\x20\x20\0")) == load32u("tag=")) {
        const char *vs = p + 5, *ve = fast_genval(s->p, vs, end);
        if (ve > vs) {
            c.tag = (csip_str){vs, (size_t)(ve - vs)};
            fs = p + 1;
            fl = p = ve;
        }
    }
    int rc = scan_params(&p, end, list, &na->params, &c, caps, sizeof caps / sizeof caps[0]);
    if (rc < 0)
        return rc;
    na->params = params_join(fs, fl, na->params);
    na->tag = c.tag;
    na->has_expires = c.has_exp;
    na->has_q = c.has_q;
    csip_str exp = c.exp, qv = c.q;
    if (na->tag.p && na->tag.p[0] == '"')
        return CSIP_ERR_PARSE_HEADER_VALUE;
    if (na->has_expires && (!exp.p || delta_seconds(exp, &na->expires) < 0))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    if (na->has_q && (!qv.p || qvalue(qv, &na->q) < 0))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    na->raw = (csip_str){start, (size_t)(p - start)};
    while (na->raw.len && IS(na->raw.p[na->raw.len - 1], CSIP_C_LWS))
        na->raw.len--;
    if (!list) {
        p = csip__skip_lws(p, end);
        if (p < end)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        s->p = end;
        s->len = 0;
        return 0;
    }
    return list_next(p, end, s);
}

int csip_auth_param_next(csip_str *rest, csip_param *out)
{
    const char *p = rest->p, *end = rest->p + rest->len;
    p = csip__skip_lws(p, end);
    if (p >= end)
        return 0;
    const char *ns = p;
    p = scan_token(p, end);
    if (p == ns)
        return CSIP_ERR_SYNTAX;
    out->name = (csip_str){ns, (size_t)(p - ns)};
    p = csip__skip_lws(p, end);
    if (p >= end || *p != '=')
        return CSIP_ERR_SYNTAX;
    p = csip__skip_lws(p + 1, end);
    const char *vs = p;
    if (p < end && *p == '"') {
        p = csip__scan_quoted(p, end);
        if (!p)
            return CSIP_ERR_SYNTAX;
        out->value = (csip_str){vs + 1, (size_t)(p - vs - 2)};
    } else {
        p = scan_token(p, end);
        if (p == vs)
            return CSIP_ERR_SYNTAX;
        out->value = (csip_str){vs, (size_t)(p - vs)};
    }
    p = csip__skip_lws(p, end);
    if (p < end) {
        if (*p != ',')
            return CSIP_ERR_SYNTAX;
        p++;
        if (csip__skip_lws(p, end) >= end)
            return CSIP_ERR_SYNTAX; /* trailing comma */
    }
    rest->p = p;
    rest->len = (size_t)(end - p);
    return 1;
}

/* The parameters csip_auth names, found by length and first letter (one
 * candidate at most), then compared whole. */
static int auth_param_field(csip_str n)
{
#define AP(name, field) {name, sizeof name - 1, offsetof(csip_auth, field)}
    static const struct {
        const char *n;
        uint8_t len;
        uint16_t off;
    } known[] = {
        AP("realm", realm),         AP("nonce", nonce),         AP("opaque", opaque),
        AP("algorithm", algorithm), AP("qop", qop),             AP("stale", stale),
        AP("domain", domain),       AP("username", username),   AP("uri", uri),
        AP("response", response),   AP("cnonce", cnonce),       AP("nc", nc),
        AP("userhash", userhash),   AP("nextnonce", nextnonce), AP("rspauth", rspauth),
    };
#undef AP
    enum {
        REALM,
        NONCE,
        OPAQUE,
        ALGORITHM,
        QOP,
        STALE,
        DOMAIN,
        USERNAME,
        URI,
        RESPONSE,
        CNONCE,
        NC,
        USERHASH,
        NEXTNONCE,
        RSPAUTH
    };
    if (n.len < 2 || n.len > 9)
        return -1;
    char c = csip__lower(n.p[0]);
    int i = -1;
    switch (n.len) {
    case 2:
        i = c == 'n' ? NC : -1;
        break;
    case 3:
        i = c == 'u' ? URI : c == 'q' ? QOP : -1;
        break;
    case 5:
        i = c == 'r' ? REALM : c == 'n' ? NONCE : c == 's' ? STALE : -1;
        break;
    case 6:
        i = c == 'o' ? OPAQUE : c == 'd' ? DOMAIN : c == 'c' ? CNONCE : -1;
        break;
    case 7:
        i = c == 'r' ? RSPAUTH : -1;
        break;
    case 8:
        i = c == 'r'   ? RESPONSE
            : c == 'u' ? (csip__lower(n.p[4]) == 'h' ? USERHASH : USERNAME)
                       : -1;
        break;
    case 9:
        i = c == 'a' ? ALGORITHM : c == 'n' ? NEXTNONCE : -1;
        break;
    default:
        break;
    }
    if (i < 0 || !csip_str_ieq(n, (csip_str){known[i].n, known[i].len}))
        return -1;
    return known[i].off;
}

static int auth_params(csip_str params, csip_auth *a)
{
    csip_param pr;
    int rc;
    csip_str rest = params;
    while ((rc = csip_auth_param_next(&rest, &pr)) == 1) {
        int off = auth_param_field(pr.name);
        if (off >= 0)
            *(csip_str *)(void *)((char *)a + off) = pr.value;
    }
    return rc < 0 ? CSIP_ERR_PARSE_HEADER_VALUE : 0;
}

/* with_scheme false: Authentication-Info (params only). */
static int auth_parse(csip_str value, bool with_scheme, csip_auth *a)
{
    const char *p = value.p, *end = value.p + value.len;
    memset(a, 0, sizeof *a);
    p = csip__skip_lws(p, end);
    if (with_scheme) {
        const char *q = scan_token(p, end);
        if (q == p)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        a->scheme = (csip_str){p, (size_t)(q - p)};
        p = q;
        if (p < end && !IS(*p, CSIP_C_LWS))
            return CSIP_ERR_PARSE_HEADER_VALUE;
        p = csip__skip_lws(p, end);
    }
    a->params = (csip_str){p, (size_t)(end - p)};
    int rc = auth_params(a->params, a);
    /* Unknown schemes may carry other syntaxes (token68): keep them raw. */
    if (rc < 0 && (!with_scheme || csip_str_ieq_c(a->scheme, "Digest")))
        return rc;
    return 0;
}

int csip_auth_parse(csip_str value, csip_auth *a)
{
    return auth_parse(value, true, a);
}

/* ---- Date (RFC 1123, GMT only) ---- */

static int two_digits(const char *p)
{
    if (!IS(p[0], CSIP_C_DIGIT) || !IS(p[1], CSIP_C_DIGIT))
        return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* proleptic Gregorian calendar, days since 1970-01-01 */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int csip_date_parse(csip_str v, csip_date *out)
{
    static const char wk[7][4] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char mo[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const uint8_t mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* "Sat, 13 Nov 2010 23:29:00 GMT" : exactly 29 octets */
    v = csip__trim(v);
    const char *p = v.p;
    if (v.len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
        p[16] != ' ' || p[19] != ':' || p[22] != ':' || p[25] != ' ' || memcmp(p + 26, "GMT", 3))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    memset(out, 0, sizeof *out);
    int w = -1, m = -1;
    for (int i = 0; i < 7; i++)
        if (!memcmp(p, wk[i], 3))
            w = i;
    for (int i = 0; i < 12; i++)
        if (!memcmp(p + 8, mo[i], 3))
            m = i;
    int d = two_digits(p + 5), y1 = two_digits(p + 12), y2 = two_digits(p + 14);
    int hh = two_digits(p + 17), mm = two_digits(p + 20), ss = two_digits(p + 23);
    if (w < 0 || m < 0 || d < 1 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
        ss < 0 || ss > 60 || d > mdays[m])
        return CSIP_ERR_PARSE_HEADER_VALUE;
    out->year = (uint16_t)(y1 * 100 + y2);
    out->month = (uint8_t)(m + 1);
    out->day = (uint8_t)d;
    out->hour = (uint8_t)hh;
    out->minute = (uint8_t)mm;
    out->second = (uint8_t)ss;
    out->wkday = (uint8_t)w;
    out->epoch = days_from_civil(out->year, out->month, out->day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

/* ---- simple values ---- */

/* 1*DIGIT at p into *out: returns the end of the digits, or NULL when there
 * are none; *range is set when the value exceeds 2^32-1 (digits still consumed). */
static inline const char *scan_u32(const char *p, const char *end, uint32_t *out, bool *range)
{
    const char *s = p;
    uint32_t v = 0;
    unsigned d;
    /* nine digits cannot overflow: no check on them */
    const char *nine = end - p > 9 ? p + 9 : end;
    while (p < nine && (d = (unsigned)((unsigned char)*p - '0')) <= 9) {
        v = v * 10 + d;
        p++;
    }
    if (csip_unlikely(p == nine && p < end)) {
        uint64_t w = v;
        while (p < end && (d = (unsigned)((unsigned char)*p - '0')) <= 9) {
            w = w * 10 + d;
            if (w > UINT32_MAX) {
                *range = true;
                w = UINT32_MAX; /* keep w bounded; the digits are still consumed */
            }
            p++;
        }
        v = (uint32_t)w;
    }
    *out = v;
    return p == s ? NULL : p;
}

/*
 * The id of a CSeq method. A request's CSeq names the request's own method,
 * whose id the start line gave: one word compare instead of the lookup, when
 * both names lie in the received bytes with 8 octets after their start.
 */
static inline csip_method cseq_method_id(const csip_msg *m, csip_str name)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const csip_str rm = m->method_name;
    if (m->is_request && m->method != CSIP_METHOD_OTHER && name.len == rm.len && name.len - 1 < 8) {
        /* offsets into the received bytes (an edited value may lie elsewhere) */
        const uintptr_t b = (uintptr_t)m->buf, n = (uintptr_t)name.p - b, r = (uintptr_t)rm.p - b;
        if (m->len >= 8 && n <= m->len - 8 && r <= m->len - 8 &&
            ((load64u(name.p) ^ load64u(rm.p)) & (~(uint64_t)0 >> (64 - 8 * name.len))) == 0)
            return m->method;
    }
#endif
    return csip_method_lookup(name);
}

/* m: the message the value belongs to (its request method helps). */
static int parse_cseq(csip_str v, csip_cseq *cs, const csip_msg *m)
{
    const char *p = v.p, *end = v.p + v.len, *q;
    bool range = false;
    q = scan_u32(p, end, &cs->number, &range);
    if (!q)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    p = csip__skip_lws(q, end);
    if (p == q)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    q = scan_token(p, end);
    if (q == p || q != end)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    cs->method = (csip_str){p, (size_t)(q - p)};
    cs->method_id = cseq_method_id(m, cs->method);
    return range ? CSIP_ERR_PARSE_NUMBER_RANGE : 0; /* RFC 4475 scalar02 */
}

/* callid = word [ "@" word ] */
static int parse_call_id(csip_str v)
{
    const char *p = v.p, *end = v.p + v.len;
    const char *q = csip__span_long(p, p, end, CSIP_C_WORD);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    if (q < end && *q == '@') {
        const char *r = csip__span_long(p, q + 1, end, CSIP_C_WORD);
        if (r == q + 1)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        q = r;
    }
    return q == end ? 0 : CSIP_ERR_PARSE_HEADER_VALUE;
}

static int parse_u32(csip_str v, uint32_t *out, bool seconds)
{
    bool range = false;
    const char *q = scan_u32(v.p, v.p + v.len, out, &range);
    if (!q || q != v.p + v.len)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    if (range) {
        if (!seconds)
            return CSIP_ERR_PARSE_NUMBER_RANGE;
        *out = 3600; /* an overlarge delta-seconds reads as 3600 (RFC 4475 §3.1.2.4) */
    }
    return 0;
}

static int parse_media_type(csip_str v, csip_media_type *mt)
{
    const char *p = v.p, *end = v.p + v.len, *q;
    memset(mt, 0, sizeof *mt);
    q = scan_token(p, end);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    mt->type = (csip_str){p, (size_t)(q - p)};
    p = csip__skip_lws(q, end);
    if (p >= end || *p != '/')
        return CSIP_ERR_PARSE_HEADER_VALUE;
    p = csip__skip_lws(p + 1, end);
    q = scan_token(p, end);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    mt->subtype = (csip_str){p, (size_t)(q - p)};
    p = q;
    return scan_params(&p, end, false, &mt->params, NULL, NULL, 0);
}

static int parse_event(csip_str v, csip_event *ev)
{
    const char *p = v.p, *end = v.p + v.len, *q;
    memset(ev, 0, sizeof *ev);
    q = scan_token(p, end);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    ev->package = (csip_str){p, (size_t)(q - p)};
    p = q;
    static const pcap caps[] = {PCAP("id", csip_event, id)};
    return scan_params(&p, end, false, &ev->params, ev, caps, 1);
}

static int parse_substate(csip_str v, csip_substate *ss)
{
    const char *p = v.p, *end = v.p + v.len, *q;
    memset(ss, 0, sizeof *ss);
    q = scan_token(p, end);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    ss->state = (csip_str){p, (size_t)(q - p)};
    p = q;
    struct ss_caps {
        csip_str reason, exp, ra;
        bool has_exp, has_ra;
    } c = {{NULL, 0}, {NULL, 0}, {NULL, 0}, false, false};
    static const pcap caps[] = {
        PCAP("reason", struct ss_caps, reason),
        PCAP_P("expires", struct ss_caps, exp, has_exp),
        PCAP_P("retry-after", struct ss_caps, ra, has_ra),
    };
    int rc = scan_params(&p, end, false, &ss->params, &c, caps, 3);
    if (rc < 0)
        return rc;
    ss->reason = c.reason;
    ss->has_expires = c.has_exp;
    ss->has_retry_after = c.has_ra;
    csip_str exp = c.exp, ra = c.ra;
    if (ss->has_expires && (!exp.p || delta_seconds(exp, &ss->expires) < 0))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    if (ss->has_retry_after && (!ra.p || delta_seconds(ra, &ss->retry_after) < 0))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    return 0;
}

static int parse_rack(csip_str v, csip_rack *r)
{
    const char *p = v.p, *end = v.p + v.len, *q;
    uint32_t *nums[2] = {&r->rseq, &r->cseq};
    for (int i = 0; i < 2; i++) {
        q = p;
        while (q < end && IS(*q, CSIP_C_DIGIT))
            q++;
        int rc = csip_str_to_u32((csip_str){p, (size_t)(q - p)}, nums[i]);
        if (rc < 0)
            return rc == CSIP_ERR_RANGE ? CSIP_ERR_PARSE_NUMBER_RANGE : CSIP_ERR_PARSE_HEADER_VALUE;
        p = csip__skip_lws(q, end);
        if (p == q)
            return CSIP_ERR_PARSE_HEADER_VALUE;
    }
    q = scan_token(p, end);
    if (q == p || q != end)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    r->method = (csip_str){p, (size_t)(q - p)};
    return 0;
}

static int parse_retry_after(csip_str v, csip_retry_after *ra)
{
    const char *p = v.p, *end = v.p + v.len, *q = p;
    memset(ra, 0, sizeof *ra);
    while (q < end && IS(*q, CSIP_C_DIGIT))
        q++;
    int rc = csip_str_to_u32((csip_str){p, (size_t)(q - p)}, &ra->seconds);
    if (rc < 0)
        return rc == CSIP_ERR_RANGE ? CSIP_ERR_PARSE_NUMBER_RANGE : CSIP_ERR_PARSE_HEADER_VALUE;
    p = csip__skip_lws(q, end);
    if (p < end && *p == '(') {
        /* comment, nested parentheses and quoted-pairs allowed */
        int depth = 0;
        const char *cs = p + 1;
        for (; p < end; p++) {
            if (*p == '\\' && p + 1 < end) {
                p++;
                continue;
            }
            if (*p == '(')
                depth++;
            else if (*p == ')' && --depth == 0)
                break;
        }
        if (p >= end)
            return CSIP_ERR_PARSE_HEADER_VALUE;
        ra->comment = (csip_str){cs, (size_t)(p - cs)};
        p++;
    }
    struct ra_caps {
        csip_str dur;
        bool has_dur;
    } c = {{NULL, 0}, false};
    static const pcap caps[] = {PCAP_P("duration", struct ra_caps, dur, has_dur)};
    rc = scan_params(&p, end, false, &ra->params, &c, caps, 1);
    if (rc < 0)
        return rc;
    ra->has_duration = c.has_dur;
    csip_str dur = c.dur;
    if (ra->has_duration && (!dur.p || csip_str_to_u32(dur, &ra->duration) < 0))
        return CSIP_ERR_PARSE_HEADER_VALUE;
    return 0;
}

static int parse_timestamp(csip_str v, csip_timestamp *ts)
{
    const char *p = v.p, *end = v.p + v.len, *q = p;
    memset(ts, 0, sizeof *ts);
    for (int part = 0; part < 2; part++) {
        const char *s = p;
        q = p;
        while (q < end && IS(*q, CSIP_C_DIGIT))
            q++;
        if (q < end && *q == '.') {
            q++;
            while (q < end && IS(*q, CSIP_C_DIGIT))
                q++;
        }
        if (q == s)
            return part ? CSIP_ERR_PARSE_HEADER_VALUE : CSIP_ERR_PARSE_HEADER_VALUE;
        if (part == 0)
            ts->value = (csip_str){s, (size_t)(q - s)};
        else
            ts->delay = (csip_str){s, (size_t)(q - s)};
        p = csip__skip_lws(q, end);
        if (p >= end)
            return 0;
        if (p == q)
            return CSIP_ERR_PARSE_HEADER_VALUE;
    }
    return CSIP_ERR_PARSE_HEADER_VALUE;
}

/* ------------------------------------------------------------------------- */
/* Per-line cache                                                             */

typedef enum vkind {
    VK_NONE = 0,
    VK_VIA,
    VK_NAMEADDR,      /* single */
    VK_NAMEADDR_LIST, /* CSIP_NAMEADDR_LIST */
    VK_ROUTE_LIST,    /* LIST | NEED_ANGLE */
    VK_CONTACT,       /* LIST | STAR */
    VK_CSEQ,
    VK_CALL_ID,
    VK_U32,
    VK_SECONDS,
    VK_TOKENS,
    VK_MEDIA,
    VK_AUTH,
    VK_AUTH_INFO,
    VK_EVENT,
    VK_SUBSTATE,
    VK_RACK,
    VK_RETRY_AFTER,
    VK_DATE,
    VK_TIMESTAMP,
} vkind;

static vkind kind_of(csip_hdr_id id)
{
    switch (id) {
    case CSIP_HDR_VIA:
        return VK_VIA;
    case CSIP_HDR_FROM:
    case CSIP_HDR_TO:
    case CSIP_HDR_REFER_TO:
    case CSIP_HDR_REFERRED_BY:
    case CSIP_HDR_REPLY_TO:
        return VK_NAMEADDR;
    case CSIP_HDR_CONTACT:
        return VK_CONTACT;
    case CSIP_HDR_ROUTE:
    case CSIP_HDR_RECORD_ROUTE:
    case CSIP_HDR_PATH:
    case CSIP_HDR_SERVICE_ROUTE:
        return VK_ROUTE_LIST;
    case CSIP_HDR_P_ASSERTED_IDENTITY:
    case CSIP_HDR_P_PREFERRED_IDENTITY:
        return VK_NAMEADDR_LIST;
    case CSIP_HDR_CSEQ:
        return VK_CSEQ;
    case CSIP_HDR_CALL_ID:
        return VK_CALL_ID;
    case CSIP_HDR_MAX_FORWARDS:
    case CSIP_HDR_CONTENT_LENGTH:
    case CSIP_HDR_RSEQ:
        return VK_U32;
    case CSIP_HDR_EXPIRES:
    case CSIP_HDR_MIN_EXPIRES:
        return VK_SECONDS;
    case CSIP_HDR_REQUIRE:
    case CSIP_HDR_SUPPORTED:
    case CSIP_HDR_PROXY_REQUIRE:
    case CSIP_HDR_UNSUPPORTED:
    case CSIP_HDR_ALLOW:
    case CSIP_HDR_ALLOW_EVENTS:
    case CSIP_HDR_CONTENT_ENCODING:
        return VK_TOKENS; /* Privacy (RFC 3323) is ';'-separated: kept raw */
    case CSIP_HDR_CONTENT_TYPE:
        return VK_MEDIA;
    case CSIP_HDR_WWW_AUTHENTICATE:
    case CSIP_HDR_AUTHORIZATION:
    case CSIP_HDR_PROXY_AUTHENTICATE:
    case CSIP_HDR_PROXY_AUTHORIZATION:
        return VK_AUTH;
    case CSIP_HDR_AUTHENTICATION_INFO:
        return VK_AUTH_INFO;
    case CSIP_HDR_EVENT:
        return VK_EVENT;
    case CSIP_HDR_SUBSCRIPTION_STATE:
        return VK_SUBSTATE;
    case CSIP_HDR_RACK:
        return VK_RACK;
    case CSIP_HDR_RETRY_AFTER:
        return VK_RETRY_AFTER;
    case CSIP_HDR_DATE:
        return VK_DATE;
    case CSIP_HDR_TIMESTAMP:
        return VK_TIMESTAMP;
    default:
        return VK_NONE;
    }
}

/* Parses a comma-separated list of values of `size` bytes each with `one`. */
typedef int (*one_fn)(csip_str *s, unsigned flags, void *out);

static int via_one(csip_str *s, unsigned flags, void *out)
{
    (void)flags;
    return csip_via_parse(s, out);
}

static int nameaddr_one(csip_str *s, unsigned flags, void *out)
{
    return csip_nameaddr_parse(s, flags, out);
}

static int token_one(csip_str *s, unsigned flags, void *out)
{
    (void)flags;
    const char *p = csip__skip_lws(s->p, s->p + s->len), *end = s->p + s->len;
    const char *q = scan_token(p, end);
    if (q == p)
        return CSIP_ERR_PARSE_HEADER_VALUE;
    *(csip_str *)out = (csip_str){p, (size_t)(q - p)};
    return list_next(q, end, s);
}

static int parse_list(csip_msg *m, csip_str v, one_fn one, unsigned flags, size_t size,
                      uint32_t max, void **arr, uint32_t *n)
{
    size_t cap = 0;
    char *a = NULL;
    *n = 0;
    while (v.len) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 1; /* most lines hold one value */
            if (ncap > max)
                ncap = max;
            if (*n >= max)
                return CSIP_ERR_LIMIT_VALUES;
            char *na = csip__arena_alloc(&m->arena, ncap * size);
            if (!na)
                return CSIP_ERR_NOMEM;
            if (*n)
                memcpy(na, a, *n * size);
            a = na;
            cap = ncap;
        }
        int rc = one(&v, flags, a + *n * size);
        if (rc < 0)
            return rc;
        (*n)++;
    }
    *arr = a;
    return 0;
}

static int parse_auth_value(csip_str v, void *out)
{
    return auth_parse(v, true, out);
}

static int parse_auth_info_value(csip_str v, void *out)
{
    return auth_parse(v, false, out); /* Authentication-Info has no scheme */
}

/* Adapters with one signature, so that the table below calls each parser
 * through a pointer of its own type. */
#define ANY(fn, type)                                                                            \
    static int fn##_any(csip_str v, void *out)                                                   \
    {                                                                                            \
        return fn(v, (type *)out);                                                               \
    }
ANY(parse_media_type, csip_media_type)
ANY(parse_event, csip_event)
ANY(parse_substate, csip_substate)
ANY(parse_rack, csip_rack)
ANY(parse_retry_after, csip_retry_after)
ANY(csip_date_parse, csip_date)
ANY(parse_timestamp, csip_timestamp)
#undef ANY

#define ONE(kind, type, fn) [kind] = {sizeof(type), fn}

/* Kinds parsed into a single struct of the arena. */
static const struct {
    size_t size;
    int (*parse)(csip_str v, void *out);
} one_kinds[] = {
    ONE(VK_MEDIA, csip_media_type, parse_media_type_any),
    ONE(VK_AUTH, csip_auth, parse_auth_value),
    ONE(VK_AUTH_INFO, csip_auth, parse_auth_info_value),
    ONE(VK_EVENT, csip_event, parse_event_any),
    ONE(VK_SUBSTATE, csip_substate, parse_substate_any),
    ONE(VK_RACK, csip_rack, parse_rack_any),
    ONE(VK_RETRY_AFTER, csip_retry_after, parse_retry_after_any),
    ONE(VK_DATE, csip_date, csip_date_parse_any),
    ONE(VK_TIMESTAMP, csip_timestamp, parse_timestamp_any),
};
#undef ONE

/* Stores a parse result in the line's cache; CSIP_ERR_NOMEM is not cached (a
 * later call may succeed). set_ptr: the value is an array in the arena. */
static inline int cache_put(msg_hdr *h, int rc, bool set_ptr, void *obj, uint32_t n)
{
    if (rc == CSIP_ERR_NOMEM)
        return rc;
    if (rc < 0) {
        h->cstate = CACHE_ERR;
        h->c.err = rc;
        return rc;
    }
    if (set_ptr)
        h->c.ptr = obj;
    h->cn = n;
    h->cstate = CACHE_OK;
    return 0;
}

/*
 * One parser per kind of value, each a function of its own: the dispatch in
 * csip__hdr_typed() then jumps to the one it needs, and each sets up only the
 * frame that its kind needs (inlined together, every call paid for the
 * largest).
 */
#if defined(__GNUC__)
#define TYPED_FN static __attribute__((noinline)) int
#else
#define TYPED_FN static int
#endif

TYPED_FN typed_via(csip_msg *m, msg_hdr *h)
{
    csip_str v = h->h.value;
    void *obj = NULL;
    uint32_t n = 1;
    int rc = v.len ? parse_list(m, v, via_one, 0, sizeof(csip_via), m->lim.max_via, &obj, &n)
                   : CSIP_ERR_PARSE_HEADER_VALUE;
    if (rc == CSIP_ERR_LIMIT_VALUES)
        rc = CSIP_ERR_LIMIT_VIA;
    return cache_put(h, rc, true, obj, n);
}

TYPED_FN typed_nameaddr(csip_msg *m, msg_hdr *h)
{
    /* one value (no list flag: the parser wants the end after it) */
    csip_str v = h->h.value;
    void *obj = NULL;
    int rc;
    if (!v.len) {
        rc = CSIP_ERR_PARSE_HEADER_VALUE;
    } else {
        obj = csip__arena_alloc(&m->arena, sizeof(csip_nameaddr));
        rc = obj ? csip_nameaddr_parse(&v, 0, obj) : CSIP_ERR_NOMEM;
    }
    return cache_put(h, rc, true, obj, 1);
}

TYPED_FN typed_nameaddr_list(csip_msg *m, msg_hdr *h, unsigned f)
{
    csip_str v = h->h.value;
    void *obj = NULL;
    uint32_t n = 1;
    int rc = v.len ? parse_list(m, v, nameaddr_one, f, sizeof(csip_nameaddr), m->lim.max_values,
                                &obj, &n)
                   : CSIP_ERR_PARSE_HEADER_VALUE;
    return cache_put(h, rc, true, obj, n);
}

TYPED_FN typed_tokens(csip_msg *m, msg_hdr *h)
{
    void *obj = NULL;
    uint32_t n = 1;
    int rc = parse_list(m, h->h.value, token_one, 0, sizeof(csip_str), m->lim.max_values, &obj, &n);
    return cache_put(h, rc, true, obj, n);
}

TYPED_FN typed_call_id(msg_hdr *h)
{
    int rc = parse_call_id(h->h.value);
    h->c.str = h->h.value;
    return cache_put(h, rc, false, NULL, 1);
}

TYPED_FN typed_u32(msg_hdr *h, bool seconds)
{
    int rc = parse_u32(h->h.value, &h->c.u32, seconds);
    return cache_put(h, rc, false, NULL, 1);
}

TYPED_FN typed_cseq(csip_msg *m, msg_hdr *h)
{
    csip_cseq *cs = csip__arena_alloc(&m->arena, sizeof *cs);
    int rc = cs ? parse_cseq(h->h.value, cs, m) : CSIP_ERR_NOMEM;
    return cache_put(h, rc, true, cs, 1);
}

TYPED_FN typed_one(csip_msg *m, msg_hdr *h, vkind k)
{
    /* one value in one struct: the table says how big and who parses it */
    void *obj = csip__arena_alloc(&m->arena, one_kinds[k].size);
    int rc = obj ? one_kinds[k].parse(h->h.value, obj) : CSIP_ERR_NOMEM;
    return cache_put(h, rc, true, obj, 1);
}

/* csip__hdr_typed() for a line whose kind k the caller knows: inlined with a
 * constant k, the dispatch is a direct call. */
static inline int typed_known(const csip_msg *cm, uint32_t i, vkind k)
{
    csip_msg *m = (csip_msg *)cm; /* the cache is invisible to callers */
    msg_hdr *h = &m->hdrs[i];
    if (h->cstate != CACHE_NONE)
        return h->cstate == CACHE_OK ? 0 : h->c.err;
    switch (k) {
    case VK_NONE:
        return 0; /* nothing typed: nothing to parse, nothing to cache */
    case VK_VIA:
        return typed_via(m, h);
    case VK_NAMEADDR:
        return typed_nameaddr(m, h);
    case VK_NAMEADDR_LIST:
        return typed_nameaddr_list(m, h, CSIP_NAMEADDR_LIST);
    case VK_ROUTE_LIST:
        return typed_nameaddr_list(m, h, CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_NEED_ANGLE);
    case VK_CONTACT:
        return typed_nameaddr_list(m, h, CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_STAR);
    case VK_TOKENS:
        return typed_tokens(m, h);
    case VK_CALL_ID:
        return typed_call_id(h);
    case VK_U32:
        return typed_u32(h, false);
    case VK_SECONDS:
        return typed_u32(h, true);
    case VK_CSEQ:
        return typed_cseq(m, h);
    default:
        return typed_one(m, h, k);
    }
}

int csip__hdr_typed(const csip_msg *m, uint32_t i)
{
    return typed_known(m, i, kind_of((csip_hdr_id)m->hdrs[i].h.id));
}

/* The first live line with this id, or MSG_NONE. */
static uint16_t first_line(const csip_msg *m, csip_hdr_id id)
{
    uint16_t i = m->first[id];
    while (i != MSG_NONE && (m->hdrs[i].h.flags & CSIP_HDRF_DELETED))
        i = m->hdrs[i].next;
    return i;
}

static uint16_t next_line(const csip_msg *m, uint16_t i)
{
    i = m->hdrs[i].next;
    while (i != MSG_NONE && (m->hdrs[i].h.flags & CSIP_HDRF_DELETED))
        i = m->hdrs[i].next;
    return i;
}

/* Typed value of the first line of a single-valued header. */
static inline int single(const csip_msg *m, csip_hdr_id id, const msg_hdr **out)
{
    uint16_t i = first_line(m, id);
    if (i == MSG_NONE)
        return CSIP_ERR_NOT_FOUND;
    int rc = typed_known(m, i, kind_of(id));
    if (rc < 0)
        return rc;
    *out = &m->hdrs[i];
    return 0;
}

int csip_msg_via(const csip_msg *m, size_t idx, const csip_via **out)
{
    size_t total = 0;
    for (uint16_t i = first_line(m, CSIP_HDR_VIA); i != MSG_NONE; i = next_line(m, i)) {
        int rc = typed_known(m, i, VK_VIA);
        if (rc < 0)
            return rc;
        const msg_hdr *h = &m->hdrs[i];
        if (idx < h->cn) {
            *out = (const csip_via *)h->c.ptr + idx;
            return 0;
        }
        idx -= h->cn;
        total += h->cn;
        if (total > m->lim.max_via)
            return CSIP_ERR_LIMIT_VIA;
    }
    return CSIP_ERR_NOT_FOUND;
}

int csip_msg_via_count(const csip_msg *m, size_t *n)
{
    size_t total = 0;
    for (uint16_t i = first_line(m, CSIP_HDR_VIA); i != MSG_NONE; i = next_line(m, i)) {
        int rc = csip__hdr_typed(m, i);
        if (rc < 0)
            return rc;
        total += m->hdrs[i].cn;
        if (total > m->lim.max_via)
            return CSIP_ERR_LIMIT_VIA;
    }
    *n = total;
    return 0;
}

#define SINGLE_PTR(fn, id, type)                                                                 \
    int fn(const csip_msg *m, const type **out)                                                  \
    {                                                                                            \
        const msg_hdr *h;                                                                        \
        int rc = single(m, id, &h);                                                              \
        if (rc == 0)                                                                             \
            *out = h->c.ptr;                                                                     \
        return rc;                                                                               \
    }
#define SINGLE_U32(fn, id)                                                                       \
    int fn(const csip_msg *m, uint32_t *out)                                                     \
    {                                                                                            \
        const msg_hdr *h;                                                                        \
        int rc = single(m, id, &h);                                                              \
        if (rc == 0)                                                                             \
            *out = h->c.u32;                                                                     \
        return rc;                                                                               \
    }

SINGLE_PTR(csip_msg_from, CSIP_HDR_FROM, csip_nameaddr)
SINGLE_PTR(csip_msg_to, CSIP_HDR_TO, csip_nameaddr)
SINGLE_PTR(csip_msg_refer_to, CSIP_HDR_REFER_TO, csip_nameaddr)
SINGLE_PTR(csip_msg_cseq, CSIP_HDR_CSEQ, csip_cseq)
SINGLE_PTR(csip_msg_content_type, CSIP_HDR_CONTENT_TYPE, csip_media_type)
SINGLE_PTR(csip_msg_rack, CSIP_HDR_RACK, csip_rack)
SINGLE_PTR(csip_msg_event, CSIP_HDR_EVENT, csip_event)
SINGLE_PTR(csip_msg_subscription_state, CSIP_HDR_SUBSCRIPTION_STATE, csip_substate)
SINGLE_PTR(csip_msg_retry_after, CSIP_HDR_RETRY_AFTER, csip_retry_after)
SINGLE_PTR(csip_msg_date, CSIP_HDR_DATE, csip_date)
SINGLE_PTR(csip_msg_timestamp, CSIP_HDR_TIMESTAMP, csip_timestamp)
SINGLE_U32(csip_msg_max_forwards, CSIP_HDR_MAX_FORWARDS)
SINGLE_U32(csip_msg_content_length, CSIP_HDR_CONTENT_LENGTH)
SINGLE_U32(csip_msg_expires, CSIP_HDR_EXPIRES)
SINGLE_U32(csip_msg_min_expires, CSIP_HDR_MIN_EXPIRES)
SINGLE_U32(csip_msg_rseq, CSIP_HDR_RSEQ)

int csip_msg_call_id(const csip_msg *m, csip_str *out)
{
    const msg_hdr *h;
    int rc = single(m, CSIP_HDR_CALL_ID, &h);
    if (rc == 0)
        *out = h->c.str;
    return rc;
}

/* Concatenates the cached arrays of every line of a list header. */
static int aggregate(const csip_msg *cm, csip_hdr_id id, size_t size, const void **out, size_t *n)
{
    csip_msg *m = (csip_msg *)cm;
    *n = 0;
    *out = NULL;
    uint16_t i0 = first_line(m, id);
    if (i0 == MSG_NONE)
        return 0;
    size_t total = 0, lines = 0;
    for (uint16_t i = i0; i != MSG_NONE; i = next_line(m, i)) {
        int rc = csip__hdr_typed(m, i);
        if (rc < 0)
            return rc;
        total += m->hdrs[i].cn;
        lines++;
    }
    if (total > m->lim.max_values)
        return CSIP_ERR_LIMIT_VALUES;
    if (lines == 1) {
        *out = m->hdrs[i0].c.ptr;
        *n = total;
        return 0;
    }
    for (msg_agg *a = m->aggs; a; a = a->next)
        if (a->id == id) {
            *out = a->arr;
            *n = a->n;
            return 0;
        }
    msg_agg *a = csip__arena_alloc(&m->arena, sizeof *a);
    char *arr = csip__arena_alloc(&m->arena, total ? total * size : 1);
    if (!a || !arr)
        return CSIP_ERR_NOMEM;
    size_t k = 0;
    for (uint16_t i = i0; i != MSG_NONE; i = next_line(m, i)) {
        if (m->hdrs[i].cn) /* an empty token list (e.g. "Supported:") has no array */
            memcpy(arr + k * size, m->hdrs[i].c.ptr, m->hdrs[i].cn * size);
        k += m->hdrs[i].cn;
    }
    a->id = (uint16_t)id;
    a->err = 0;
    a->n = total;
    a->arr = arr;
    a->next = m->aggs;
    m->aggs = a;
    *out = arr;
    *n = total;
    return 0;
}

int csip_msg_nameaddrs(const csip_msg *m, csip_hdr_id id, const csip_nameaddr **out, size_t *n)
{
    vkind k = (unsigned)id < CSIP_HDR__COUNT ? kind_of(id) : VK_NONE;
    if (k != VK_NAMEADDR && k != VK_NAMEADDR_LIST && k != VK_ROUTE_LIST && k != VK_CONTACT)
        return CSIP_ERR_INVALID_ARG;
    return aggregate(m, id, sizeof(csip_nameaddr), (const void **)out, n);
}

int csip_msg_tokens(const csip_msg *m, csip_hdr_id id, const csip_str **out, size_t *n)
{
    if ((unsigned)id >= CSIP_HDR__COUNT || kind_of(id) != VK_TOKENS)
        return CSIP_ERR_INVALID_ARG;
    return aggregate(m, id, sizeof(csip_str), (const void **)out, n);
}

int csip_msg_auth(const csip_msg *m, csip_hdr_id id, size_t idx, const csip_auth **out)
{
    vkind k = (unsigned)id < CSIP_HDR__COUNT ? kind_of(id) : VK_NONE;
    if (k != VK_AUTH && k != VK_AUTH_INFO)
        return CSIP_ERR_INVALID_ARG;
    for (uint16_t i = first_line(m, id); i != MSG_NONE; i = next_line(m, i)) {
        if (idx--)
            continue;
        int rc = csip__hdr_typed(m, i);
        if (rc < 0)
            return rc;
        *out = m->hdrs[i].c.ptr;
        return 0;
    }
    return CSIP_ERR_NOT_FOUND;
}
