/*
 * SDP parser (RFC 8866 §9 grammar). Two passes over the lines: the first
 * counts lines of each kind (and enforces the limits), so that one allocation
 * holds the struct and every array; the second checks each line and fills the
 * fields with views into the caller's buffer.
 */
#include "sdp/sdp_int.h"

#include <string.h>

/* ------------------------------------------------------------------------- */
/* Small helpers shared with print.c and offer.c                              */

bool csip__sdp_is_token(csip_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!csip__sdp_token((unsigned char)s.p[i]))
            return false;
    return true;
}

bool csip__sdp_is_bytes(csip_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!csip__sdp_byte((unsigned char)s.p[i]))
            return false;
    return true;
}

bool csip__sdp_u64(csip_str s, uint64_t *out)
{
    if (s.len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (!csip__sdp_digit(c))
            return false;
        unsigned d = (unsigned)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool csip__sdp_pt(csip_str s, unsigned *pt)
{
    uint64_t v;
    if (s.len == 0 || s.len > 3 || (s.len > 1 && s.p[0] == '0') || !csip__sdp_u64(s, &v) || v > 127)
        return false;
    *pt = (unsigned)v;
    return true;
}

bool csip__sdp_proto_rtp(csip_str proto)
{
    size_t i = 0;
    while (i < proto.len) {
        size_t j = i;
        while (j < proto.len && proto.p[j] != '/')
            j++;
        if (j - i == 3 && memcmp(proto.p + i, "RTP", 3) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

/* ------------------------------------------------------------------------- */
/* Parser state and errors                                                    */

typedef struct parser {
    const char *base;
    const char *end;
    csip_sdp_error *err;
    const char *ls;  /* start of the current line */
    uint32_t lineno; /* 1-based number of the current line */
    char type;       /* its type letter */
} parser;

static int fail(parser *ps, const char *at, int code, const char *what)
{
    if (ps->err) {
        csip_sdp_error *e = ps->err;
        memset(e, 0, sizeof *e);
        e->code = code;
        e->offset = (size_t)(at - ps->base);
        e->line = ps->lineno ? ps->lineno : 1;
        e->column = (uint32_t)(at - ps->ls) + 1;
        e->type = ps->type >= 'a' && ps->type <= 'z' ? ps->type : 0;
        e->what = what;
    }
    return code;
}

#define BAD(ps, at, what) fail((ps), (at), CSIP_ERR_PARSE_SDP, (what))

/* ------------------------------------------------------------------------- */
/* Pass 1: count                                                              */

typedef struct counts {
    size_t e, p, c, b, t, r, a, m, fmts;
} counts;

static int count_lines(parser *ps, const csip_sdp_limits *lim, counts *n)
{
    size_t lines = 0;
    const char *p = ps->base;
    while (p < ps->end) {
        const char *nl = memchr(p, '\n', (size_t)(ps->end - p));
        const char *le = nl ? nl : ps->end;
        ps->ls = p;
        ps->lineno++;
        ps->type = p < le ? p[0] : 0;
        if (le > p && !(le == p + 1 && p[0] == '\r')) {
            if (++lines > lim->max_lines)
                return fail(ps, p, CSIP_ERR_LIMIT_SDP, "more lines than the limit");
            switch (p[0]) {
            case 'e':
                n->e++;
                break;
            case 'p':
                n->p++;
                break;
            case 'c':
                n->c++;
                break;
            case 'b':
                n->b++;
                break;
            case 't':
                n->t++;
                break;
            case 'r':
                n->r++;
                break;
            case 'a':
                if (++n->a > lim->max_attrs)
                    return fail(ps, p, CSIP_ERR_LIMIT_SDP, "more attributes than the limit");
                break;
            case 'm': {
                if (++n->m > lim->max_media)
                    return fail(ps, p, CSIP_ERR_LIMIT_SDP, "more media sections than the limit");
                size_t sp = 0;
                for (const char *q = p; q < le; q++)
                    sp += *q == ' ';
                size_t f = sp > 2 ? sp - 2 : 1;
                if (f > lim->max_formats)
                    return fail(ps, p, CSIP_ERR_LIMIT_SDP, "more formats than the limit");
                n->fmts += f;
                break;
            }
            default:
                break;
            }
        }
        p = nl ? nl + 1 : ps->end;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Pass 2: fields                                                             */

/* The rest of a line, read field by field (fields are separated by one SP). */
typedef struct cur {
    const char *p;
    const char *e;
} cur;

static int field(parser *ps, cur *c, csip_str *out, const char *missing)
{
    if (c->p >= c->e)
        return BAD(ps, c->e, missing);
    const char *s = c->p;
    while (c->p < c->e && *c->p != ' ')
        c->p++;
    if (c->p == s)
        return BAD(ps, s, "empty field (a leading space or two spaces in a row)");
    *out = (csip_str){s, (size_t)(c->p - s)};
    if (c->p < c->e) {
        c->p++;
        if (c->p == c->e)
            return BAD(ps, c->p - 1, "space at the end of the line");
    }
    return 0;
}

static int no_more(parser *ps, const cur *c)
{
    if (c->p < c->e)
        return BAD(ps, c->p, "more fields than the line type has");
    return 0;
}

static bool all_nonws(csip_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!csip__sdp_nonws((unsigned char)s.p[i]))
            return false;
    return true;
}

/* FQDN of RFC 8866 §9 (alpha-numeric / "-" / "."), without its 4-octet minimum. */
static bool fqdn(csip_str s)
{
    if (s.len == 0)
        return false;
    bool only_digits_dots = true;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        bool alnum = csip__sdp_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!alnum && c != '-' && c != '.')
            return false;
        if (!csip__sdp_digit(c) && c != '.')
            only_digits_dots = false;
    }
    /* "999.1.1.1" fits the FQDN rule but is a bad IPv4 address: refused. */
    return !only_digits_dots;
}

/* unicast-address for an addrtype: IP4 and IP6 literals or host names, else non-ws. */
static bool address_ok(csip_str addrtype, csip_str a)
{
    uint8_t buf[16];
    if (csip_str_eq_c(addrtype, "IP4"))
        return csip__ipv4_parse(a.p, a.len, buf) || fqdn(a);
    if (csip_str_eq_c(addrtype, "IP6"))
        return csip__ipv6_parse(a.p, a.len, buf) || fqdn(a);
    return all_nonws(a);
}

static bool digits(const char *p, const char *e)
{
    if (p == e)
        return false;
    for (; p < e; p++)
        if (!csip__sdp_digit((unsigned char)*p))
            return false;
    return true;
}

/* typed-time = 1*DIGIT [fixed-len-time-unit] (RFC 8866 §9) */
static bool typed_time(csip_str s)
{
    if (s.len == 0)
        return false;
    size_t n = s.len;
    char u = s.p[n - 1];
    if (u == 'd' || u == 'h' || u == 'm' || u == 's')
        n--;
    return n > 0 && digits(s.p, s.p + n) && n <= 20;
}

static int parse_origin(parser *ps, cur *c, csip_sdp_origin *o)
{
    int rc;
    if ((rc = field(ps, c, &o->username, "o= has no username")) != 0)
        return rc;
    if (!all_nonws(o->username))
        return BAD(ps, o->username.p, "o= username has a control octet");
    if ((rc = field(ps, c, &o->sess_id, "o= has no sess-id")) != 0)
        return rc;
    if (!digits(o->sess_id.p, o->sess_id.p + o->sess_id.len))
        return BAD(ps, o->sess_id.p, "o= sess-id is not a number");
    if ((rc = field(ps, c, &o->sess_version, "o= has no sess-version")) != 0)
        return rc;
    if (!csip__sdp_u64(o->sess_version, &o->version))
        return BAD(ps, o->sess_version.p, "o= sess-version is not a number below 2^64");
    if ((rc = field(ps, c, &o->nettype, "o= has no nettype")) != 0)
        return rc;
    if (!csip__sdp_is_token(o->nettype))
        return BAD(ps, o->nettype.p, "o= nettype is not a token");
    if ((rc = field(ps, c, &o->addrtype, "o= has no addrtype")) != 0)
        return rc;
    if (!csip__sdp_is_token(o->addrtype))
        return BAD(ps, o->addrtype.p, "o= addrtype is not a token");
    if ((rc = field(ps, c, &o->address, "o= has no address")) != 0)
        return rc;
    if (!address_ok(o->addrtype, o->address))
        return BAD(ps, o->address.p, "o= address is not valid for its addrtype");
    return no_more(ps, c);
}

static int parse_conn(parser *ps, cur *c, csip_sdp_conn *cn)
{
    int rc;
    csip_str a;
    if ((rc = field(ps, c, &cn->nettype, "c= has no nettype")) != 0)
        return rc;
    if (!csip__sdp_is_token(cn->nettype))
        return BAD(ps, cn->nettype.p, "c= nettype is not a token");
    if ((rc = field(ps, c, &cn->addrtype, "c= has no addrtype")) != 0)
        return rc;
    if (!csip__sdp_is_token(cn->addrtype))
        return BAD(ps, cn->addrtype.p, "c= addrtype is not a token");
    if ((rc = field(ps, c, &a, "c= has no address")) != 0)
        return rc;
    cn->address = a;
    cn->suffix = CSIP_STR_NULL;
    bool ip4 = csip_str_eq_c(cn->addrtype, "IP4"), ip6 = csip_str_eq_c(cn->addrtype, "IP6");
    if (ip4 || ip6) {
        const char *sl = memchr(a.p, '/', a.len);
        if (sl) {
            cn->address.len = (size_t)(sl - a.p);
            cn->suffix = (csip_str){sl, a.len - cn->address.len};
            /* IP4: "/ttl" ["/count"]; IP6: "/count" (RFC 8866 §5.7) */
            const char *e = a.p + a.len, *s2 = memchr(sl + 1, '/', (size_t)(e - sl - 1));
            if (s2 && (ip6 || !digits(s2 + 1, e)))
                return BAD(ps, s2, "c= multicast suffix is not /ttl[/count] (IP4) or /count (IP6)");
            if (!digits(sl + 1, s2 ? s2 : e) || (s2 ? s2 : e) - (sl + 1) > 10)
                return BAD(ps, sl, "c= multicast suffix is not /ttl[/count] (IP4) or /count (IP6)");
        }
    }
    if (!address_ok(cn->addrtype, cn->address))
        return BAD(ps, cn->address.p, "c= address is not valid for its addrtype");
    return no_more(ps, c);
}

static int parse_bw(parser *ps, csip_str v, csip_sdp_bw *bw)
{
    const char *colon = memchr(v.p, ':', v.len);
    if (!colon)
        return BAD(ps, v.p, "b= is not <bwtype>:<bandwidth>");
    bw->type = (csip_str){v.p, (size_t)(colon - v.p)};
    bw->value = (csip_str){colon + 1, v.len - bw->type.len - 1};
    if (!csip__sdp_is_token(bw->type))
        return BAD(ps, v.p, "b= bwtype is not a token");
    uint64_t k;
    if (!csip__sdp_u64(bw->value, &k) || k > UINT32_MAX)
        return BAD(ps, colon + 1, "b= bandwidth is not a number below 2^32");
    bw->kbps = (uint32_t)k;
    return 0;
}

static int parse_time(parser *ps, cur *c, csip_sdp_time *t)
{
    int rc;
    if ((rc = field(ps, c, &t->start, "t= has no start time")) != 0)
        return rc;
    if (!csip__sdp_u64(t->start, &t->start_num))
        return BAD(ps, t->start.p, "t= start time is not a number");
    if ((rc = field(ps, c, &t->stop, "t= has no stop time")) != 0)
        return rc;
    if (!csip__sdp_u64(t->stop, &t->stop_num))
        return BAD(ps, t->stop.p, "t= stop time is not a number");
    return no_more(ps, c);
}

static int parse_repeat(parser *ps, cur *c)
{
    int rc;
    size_t n = 0;
    while (c->p < c->e) {
        csip_str f;
        if ((rc = field(ps, c, &f, "r= field missing")) != 0)
            return rc;
        if (!typed_time(f))
            return BAD(ps, f.p, "r= field is not a time (digits with an optional d, h, m or s)");
        n++;
    }
    if (n < 3)
        return BAD(ps, c->e, "r= needs an interval, a duration and at least one offset");
    return 0;
}

static int parse_zone(parser *ps, cur *c)
{
    int rc;
    size_t n = 0;
    while (c->p < c->e) {
        csip_str f;
        if ((rc = field(ps, c, &f, "z= field missing")) != 0)
            return rc;
        bool ok;
        if (n % 2 == 0) {
            ok = digits(f.p, f.p + f.len);
        } else {
            if (f.len && f.p[0] == '-') {
                f.p++;
                f.len--;
            }
            ok = typed_time(f);
        }
        if (!ok)
            return BAD(ps, f.p, "z= is not pairs of <adjustment time> <offset>");
        n++;
    }
    if (n == 0 || n % 2)
        return BAD(ps, c->e, "z= is not pairs of <adjustment time> <offset>");
    return 0;
}

/* k= (RFC 8866 §5.12): "prompt", or a method and its key after ':'. */
static int parse_key(parser *ps, csip_str v)
{
    const char *colon = memchr(v.p, ':', v.len);
    csip_str method = {v.p, colon ? (size_t)(colon - v.p) : v.len};
    if (!csip__sdp_is_token(method))
        return BAD(ps, v.p, "k= method is not a token");
    if (colon && colon + 1 == v.p + v.len && !csip_str_eq_c(method, "clear"))
        return BAD(ps, colon, "k= key is empty");
    return 0;
}

static bool is_dir(csip_str name, csip_sdp_dir *d)
{
    static const char *const names[] = {"sendrecv", "sendonly", "recvonly", "inactive"};
    for (unsigned i = 0; i < 4; i++)
        if (csip_str_eq_c(name, names[i])) {
            *d = (csip_sdp_dir)i;
            return true;
        }
    return false;
}

/* The first space-separated word of an attribute value, and what follows. */
static bool split_word(csip_str v, csip_str *w, csip_str *rest)
{
    const char *sp = memchr(v.p, ' ', v.len);
    if (!sp)
        return false;
    *w = (csip_str){v.p, (size_t)(sp - v.p)};
    *rest = (csip_str){sp + 1, v.len - w->len - 1};
    return true;
}

/* "<pt> <name>/<clock>[/<params>]" (RFC 8866 §6.6). Shared with the accessor. */
static int rtpmap_read(csip_str v, csip_sdp_rtpmap *out, const char **bad)
{
    csip_str w, rest;
    unsigned pt;
    *bad = v.p;
    if (!split_word(v, &w, &rest) || !csip__sdp_pt(w, &pt))
        return -1;
    *bad = rest.p;
    const char *e = rest.p + rest.len;
    const char *s1 = memchr(rest.p, '/', rest.len);
    if (!s1)
        return -1;
    csip_str name = {rest.p, (size_t)(s1 - rest.p)};
    if (!csip__sdp_is_token(name))
        return -1;
    const char *s2 = memchr(s1 + 1, '/', (size_t)(e - s1 - 1));
    uint64_t clock, ch = 1;
    *bad = s1 + 1;
    if (!csip__sdp_u64((csip_str){s1 + 1, (size_t)((s2 ? s2 : e) - s1 - 1)}, &clock) ||
        clock == 0 || clock > UINT32_MAX)
        return -1;
    if (s2) {
        *bad = s2 + 1;
        if (!csip__sdp_u64((csip_str){s2 + 1, (size_t)(e - s2 - 1)}, &ch) || ch == 0 ||
            ch > UINT32_MAX)
            return -1;
    }
    out->pt = (uint8_t)pt;
    out->name = name;
    out->clock = (uint32_t)clock;
    out->channels = (uint32_t)ch;
    out->from_table = false;
    return 0;
}

/* "1*DIGIT ["." 1*DIGIT]" in ms, cut to an integer. */
static int ptime_read(csip_str v, uint32_t *ms)
{
    const char *dot = memchr(v.p, '.', v.len);
    const char *ie = dot ? dot : v.p + v.len;
    uint64_t n;
    if (!csip__sdp_u64((csip_str){v.p, (size_t)(ie - v.p)}, &n) || n > UINT32_MAX)
        return -1;
    if (dot && !digits(dot + 1, v.p + v.len))
        return -1;
    *ms = (uint32_t)n;
    return 0;
}

/*
 * Checks the attributes whose meaning the library reads: direction (at both
 * levels, at most one per level), and rtpmap, fmtp and ptime in a media
 * section (well formed, at most one per payload type or section).
 * attrs[0..n) are the earlier attributes of the same level.
 */
static int check_attr(parser *ps, const csip_sdp_attr *a, const csip_sdp_attr *prev, size_t n,
                      bool media, bool *has_dir, csip_sdp_dir *dir)
{
    csip_sdp_dir d;
    if (is_dir(a->name, &d)) {
        if (a->value.p)
            return BAD(ps, a->value.p, "a direction attribute takes no value");
        if (*has_dir)
            return BAD(ps, a->name.p, "more than one direction attribute at one level");
        *has_dir = true;
        *dir = d;
        return 0;
    }
    if (!media)
        return 0;
    if (csip_str_eq_c(a->name, "rtpmap")) {
        csip_sdp_rtpmap r, o;
        const char *bad;
        if (!a->value.p || rtpmap_read(a->value, &r, &bad) != 0)
            return BAD(ps, a->value.p ? bad : a->name.p,
                       "a=rtpmap is not <payload type> <encoding name>/<clock rate>[/<channels>]");
        for (size_t i = 0; i < n; i++)
            if (csip_str_eq_c(prev[i].name, "rtpmap") &&
                rtpmap_read(prev[i].value, &o, &bad) == 0 && o.pt == r.pt)
                return BAD(ps, a->value.p, "a second a=rtpmap for one payload type");
        return 0;
    }
    if (csip_str_eq_c(a->name, "fmtp")) {
        csip_str f, rest, of, orest;
        if (!a->value.p || !split_word(a->value, &f, &rest) || !csip__sdp_is_token(f) ||
            rest.len == 0)
            return BAD(ps, a->value.p ? a->value.p : a->name.p,
                       "a=fmtp is not <format> <format specific parameters>");
        for (size_t i = 0; i < n; i++)
            if (csip_str_eq_c(prev[i].name, "fmtp") && split_word(prev[i].value, &of, &orest) &&
                csip_str_eq(of, f))
                return BAD(ps, a->value.p, "a second a=fmtp for one format");
        return 0;
    }
    if (csip_str_eq_c(a->name, "ptime")) {
        uint32_t ms;
        if (!a->value.p || ptime_read(a->value, &ms) != 0)
            return BAD(ps, a->value.p ? a->value.p : a->name.p,
                       "a=ptime is not a number of milliseconds");
        for (size_t i = 0; i < n; i++)
            if (csip_str_eq_c(prev[i].name, "ptime"))
                return BAD(ps, a->name.p, "a second a=ptime in one section");
        return 0;
    }
    return 0;
}

static int parse_attr(parser *ps, csip_str v, csip_sdp_attr *a)
{
    const char *colon = memchr(v.p, ':', v.len);
    a->name = (csip_str){v.p, colon ? (size_t)(colon - v.p) : v.len};
    a->value = CSIP_STR_NULL;
    if (!csip__sdp_is_token(a->name))
        return BAD(ps, v.p, "attribute name is not a token");
    if (colon) {
        a->value = (csip_str){colon + 1, v.len - a->name.len - 1};
        if (a->value.len == 0)
            return BAD(ps, colon, "attribute value after ':' is empty");
    }
    return 0;
}

static int parse_media(parser *ps, cur *c, csip_sdp_media *m, csip_str *fmts, size_t *nf,
                       size_t cap)
{
    int rc;
    csip_str port;
    if ((rc = field(ps, c, &m->media, "m= has no media type")) != 0)
        return rc;
    if (!csip__sdp_is_token(m->media))
        return BAD(ps, m->media.p, "m= media type is not a token");
    if ((rc = field(ps, c, &port, "m= has no port")) != 0)
        return rc;
    const char *sl = memchr(port.p, '/', port.len), *pe = port.p + port.len;
    uint64_t v;
    if (!csip__sdp_u64((csip_str){port.p, (size_t)((sl ? sl : pe) - port.p)}, &v) || v > 65535)
        return BAD(ps, port.p, "m= port is not a number 0..65535");
    m->port = (uint16_t)v;
    m->port_count = 1;
    if (sl) {
        if (!csip__sdp_u64((csip_str){sl + 1, (size_t)(pe - sl - 1)}, &v) || v == 0 ||
            v > UINT32_MAX)
            return BAD(ps, sl + 1, "m= number of ports is not a number 1..2^32-1");
        m->port_count = (uint32_t)v;
    }
    if ((rc = field(ps, c, &m->proto, "m= has no proto")) != 0)
        return rc;
    for (size_t i = 0, s = 0; i <= m->proto.len; i++) {
        if (i == m->proto.len || m->proto.p[i] == '/') {
            if (!csip__sdp_is_token((csip_str){m->proto.p + s, i - s}))
                return BAD(ps, m->proto.p + s, "m= proto is not tokens separated by '/'");
            s = i + 1;
        }
    }
    bool rtp = csip__sdp_proto_rtp(m->proto);
    m->fmts = fmts + *nf;
    m->n_fmts = 0;
    if (c->p >= c->e)
        return BAD(ps, c->e, "m= has no format");
    while (c->p < c->e) {
        csip_str f;
        unsigned pt;
        if ((rc = field(ps, c, &f, "m= format missing")) != 0)
            return rc;
        if (!csip__sdp_is_token(f))
            return BAD(ps, f.p, "m= format is not a token");
        if (rtp && !csip__sdp_pt(f, &pt))
            return BAD(ps, f.p, "m= format of an RTP proto is not a payload type 0..127");
        if (*nf >= cap) /* cannot happen: pass 1 counted the spaces */
            return BAD(ps, f.p, "m= has more formats than counted");
        fmts[(*nf)++] = f;
        m->n_fmts++;
    }
    return 0;
}

/* Ranks of the line types in the order of RFC 8866 §9. */
enum { R_V, R_O, R_S, R_I, R_U, R_E, R_P, R_C, R_B, R_T, R_K, R_A, R_M };
enum { M_M, M_I, M_C, M_B, M_K, M_A };

static int session_rank(char t)
{
    switch (t) {
    case 'v':
        return R_V;
    case 'o':
        return R_O;
    case 's':
        return R_S;
    case 'i':
        return R_I;
    case 'u':
        return R_U;
    case 'e':
        return R_E;
    case 'p':
        return R_P;
    case 'c':
        return R_C;
    case 'b':
        return R_B;
    case 't':
    case 'r':
    case 'z':
        return R_T;
    case 'k':
        return R_K;
    case 'a':
        return R_A;
    case 'm':
        return R_M;
    default:
        return -1;
    }
}

static int media_rank(char t)
{
    switch (t) {
    case 'm':
        return M_M;
    case 'i':
        return M_I;
    case 'c':
        return M_C;
    case 'b':
        return M_B;
    case 'k':
        return M_K;
    case 'a':
        return M_A;
    default:
        return -1;
    }
}

/* The arrays of one description, filled in order. */
typedef struct arrays {
    csip_str *emails, *phones, *repeats, *fmts;
    csip_sdp_conn *conns;
    csip_sdp_bw *bws;
    csip_sdp_time *times;
    csip_sdp_attr *attrs;
    csip_sdp_media *media;
    size_t ne, np, nr, nf, nc, nb, nt, na, nm;
    size_t cap_f;
} arrays;

typedef struct section {
    bool in_media;
    int rank;
    char prev;
    bool seen_t;
    size_t attr0; /* first attribute of the current level */
    const char *m_ls;
    uint32_t m_lineno;
} section;

/* A media section ends: a c= is required unless the session has one (RFC 8866
 * §5.7); a section with port 0 is let off (rejected streams often carry none). */
static int media_end(parser *ps, const csip_sdp_desc *d, const section *st, csip_sdp_media *m)
{
    if (!d->conn && m->n_conns == 0 && m->port != 0) {
        ps->ls = st->m_ls;
        ps->lineno = st->m_lineno;
        ps->type = 'm';
        return BAD(ps, st->m_ls, "no c= in this media section nor at session level");
    }
    return 0;
}

static int parse_line(parser *ps, csip_sdp_desc *d, arrays *ar, section *st, size_t idx,
                      const char *p, const char *le)
{
    int rc;
    char t = p[0];
    cur c = {p + 2, le};
    csip_str v = {p + 2, (size_t)(le - p - 2)};
    static const char order[] = "lines out of order (RFC 8866 §5: v o s i u e p c b t r z k a, "
                                "then m i c b k a in each media section)";

    if (idx == 0 && t != 'v')
        return BAD(ps, p, "a description starts with v=");
    if ((idx == 1 && t != 'o') || (idx != 1 && t == 'o'))
        return BAD(ps, p, "o= must be the second line");
    if ((idx == 2 && t != 's') || (idx != 2 && t == 's'))
        return BAD(ps, p, "s= must be the third line");
    if (idx != 0 && t == 'v')
        return BAD(ps, p, "v= appears twice");
    if (session_rank(t) < 0)
        return BAD(ps, p, "unknown line type (RFC 8866 §5: the description is refused)");

    if (t == 'm') {
        if (!st->seen_t)
            return BAD(ps, p, "no t= line before the media sections");
        if (st->in_media && (rc = media_end(ps, d, st, &ar->media[ar->nm - 1])) != 0)
            return rc;
        st->in_media = true;
        st->rank = M_M;
        st->m_ls = p;
        st->m_lineno = ps->lineno;
        st->attr0 = ar->na;
        csip_sdp_media *m = &ar->media[ar->nm++];
        memset(m, 0, sizeof *m);
        m->line = ps->lineno;
        m->conns = ar->conns + ar->nc;
        m->bws = ar->bws + ar->nb;
        m->attrs = ar->attrs + ar->na;
        if ((rc = parse_media(ps, &c, m, ar->fmts, &ar->nf, ar->cap_f)) != 0)
            return rc;
        st->prev = t;
        return 0;
    }

    if (st->in_media) {
        csip_sdp_media *m = &ar->media[ar->nm - 1];
        int r = media_rank(t);
        if (r < 0)
            return BAD(ps, p, "this line type is not allowed in a media section");
        if (r < st->rank)
            return BAD(ps, p, order);
        if (r == st->rank && (t == 'i' || t == 'k'))
            return BAD(ps, p, "i= or k= appears twice in one media section");
        st->rank = r;
        st->prev = t;
        switch (t) {
        case 'i':
            if (!csip__sdp_is_bytes(v))
                return BAD(ps, p + 2, "i= is empty");
            m->info = v;
            return 0;
        case 'c':
            if ((rc = parse_conn(ps, &c, &ar->conns[ar->nc])) != 0)
                return rc;
            ar->nc++;
            m->n_conns++;
            return 0;
        case 'b':
            if ((rc = parse_bw(ps, v, &ar->bws[ar->nb])) != 0)
                return rc;
            ar->nb++;
            m->n_bws++;
            return 0;
        case 'k':
            if ((rc = parse_key(ps, v)) != 0)
                return rc;
            m->key = v;
            return 0;
        default: /* 'a' */
            if ((rc = parse_attr(ps, v, &ar->attrs[ar->na])) != 0)
                return rc;
            if ((rc = check_attr(ps, &ar->attrs[ar->na], ar->attrs + st->attr0, ar->na - st->attr0,
                                 true, &m->has_dir, &m->dir)) != 0)
                return rc;
            ar->na++;
            m->n_attrs++;
            return 0;
        }
    }

    int r = session_rank(t);
    if (r < st->rank)
        return BAD(ps, p, order);
    if (r == st->rank && t != 'e' && t != 'p' && t != 'b' && t != 'a' && r != R_T)
        return BAD(ps, p, "this line type appears twice at session level");
    if ((t == 'r' || t == 'z') && st->prev != 't' && st->prev != 'r')
        return BAD(ps, p, "r= and z= must follow a t= or r= line");
    if (r > R_T && !st->seen_t)
        return BAD(ps, p, "no t= line (at least one is required)");
    st->rank = r;
    st->prev = t;
    switch (t) {
    case 'v':
        if (!csip_str_eq_c(v, "0"))
            return BAD(ps, p + 2, "v= is not 0");
        return 0;
    case 'o':
        return parse_origin(ps, &c, &d->origin);
    case 's':
        /* RFC 8866 wants text (one octet or more), but RFC 3264's own examples send "s=". */
        d->name = v;
        return 0;
    case 'i':
    case 'u':
    case 'e':
    case 'p':
        if (!csip__sdp_is_bytes(v))
            return BAD(ps, p + 2, "the value is empty");
        if (t == 'i')
            d->info = v;
        else if (t == 'u')
            d->uri = v;
        else if (t == 'e')
            ar->emails[ar->ne++] = v;
        else
            ar->phones[ar->np++] = v;
        return 0;
    case 'c':
        if ((rc = parse_conn(ps, &c, &ar->conns[ar->nc])) != 0)
            return rc;
        d->conn = &ar->conns[ar->nc++];
        return 0;
    case 'b':
        if ((rc = parse_bw(ps, v, &ar->bws[ar->nb])) != 0)
            return rc;
        ar->nb++;
        d->n_bws++;
        return 0;
    case 't': {
        csip_sdp_time *tm = &ar->times[ar->nt];
        memset(tm, 0, sizeof *tm);
        if ((rc = parse_time(ps, &c, tm)) != 0)
            return rc;
        tm->repeats = ar->repeats + ar->nr;
        ar->nt++;
        st->seen_t = true;
        return 0;
    }
    case 'r':
        if ((rc = parse_repeat(ps, &c)) != 0)
            return rc;
        ar->repeats[ar->nr++] = v;
        ar->times[ar->nt - 1].n_repeats++;
        return 0;
    case 'z':
        if (d->zone.p)
            return BAD(ps, p, "z= appears twice");
        if ((rc = parse_zone(ps, &c)) != 0)
            return rc;
        d->zone = v;
        return 0;
    case 'k':
        if ((rc = parse_key(ps, v)) != 0)
            return rc;
        d->key = v;
        return 0;
    default: /* 'a' */
        if ((rc = parse_attr(ps, v, &ar->attrs[ar->na])) != 0)
            return rc;
        if ((rc = check_attr(ps, &ar->attrs[ar->na], ar->attrs, ar->na, false, &d->has_dir,
                             &d->dir)) != 0)
            return rc;
        ar->na++;
        d->n_attrs++;
        return 0;
    }
}

static int parse_all(parser *ps, csip_sdp_desc *d, arrays *ar)
{
    section st = {0};
    st.rank = -1;
    size_t idx = 0;
    const char *empty = NULL; /* first empty line not yet followed by a non-empty one */
    uint32_t empty_line = 0;
    const char *p = ps->base;
    ps->lineno = 0;
    d->emails = ar->emails;
    d->phones = ar->phones;
    d->bws = ar->bws;
    d->times = ar->times;
    d->attrs = ar->attrs;
    d->media = ar->media;
    while (p < ps->end) {
        const char *nl = memchr(p, '\n', (size_t)(ps->end - p));
        const char *le = nl ? nl : ps->end;
        if (nl && le > p && le[-1] == '\r')
            le--;
        ps->ls = p;
        ps->lineno++;
        ps->type = p < le ? p[0] : 0;
        const char *next = nl ? nl + 1 : ps->end;
        if (le == p) {
            if (!empty) {
                empty = p;
                empty_line = ps->lineno;
            }
            p = next;
            continue;
        }
        if (empty) {
            ps->ls = empty;
            ps->lineno = empty_line;
            ps->type = 0;
            return BAD(ps, empty, "empty line inside the description");
        }
        for (const char *q = p; q < le; q++)
            if (*q == '\r' || *q == '\0')
                return BAD(ps, q, *q ? "CR without LF inside a line" : "NUL octet in a line");
        if (le - p < 2 || p[1] != '=')
            return BAD(ps, le - p < 2 ? le : p + 1, "a line is <type>=<value>");
        if (p[0] < 'a' || p[0] > 'z')
            return BAD(ps, p, "the line type is not a lowercase letter");
        int rc = parse_line(ps, d, ar, &st, idx, p, le);
        if (rc)
            return rc;
        idx++;
        p = next;
    }
    if (idx == 0) {
        ps->ls = ps->base;
        ps->lineno = 1;
        ps->type = 0;
        return BAD(ps, ps->base, "empty description");
    }
    if (!st.seen_t) {
        ps->ls = ps->end;
        ps->type = 0;
        return BAD(ps, ps->end,
                   idx < 3 ? "description ends before v=, o= and s="
                           : "no t= line (at least one "
                             "is required)");
    }
    if (st.in_media) {
        int rc = media_end(ps, d, &st, &ar->media[ar->nm - 1]);
        if (rc)
            return rc;
    }
    d->n_emails = ar->ne;
    d->n_phones = ar->np;
    d->n_times = ar->nt;
    d->n_media = ar->nm;
    for (size_t i = 0; i < ar->nm; i++)
        if (!ar->media[i].has_dir)
            ar->media[i].dir = d->dir;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Entry points                                                               */

static size_t al8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static uint32_t lim_or(uint32_t v, uint32_t dflt)
{
    return v ? v : dflt;
}

int csip_sdp_parse_limited(const char *buf, size_t len, const csip_mem *mem,
                           const csip_sdp_limits *limits, csip_sdp **out, csip_sdp_error *err)
{
    parser ps = {buf, buf ? buf + len : NULL, err, buf, 0, 0};
    if (err)
        memset(err, 0, sizeof *err);
    if (!out || (!buf && len)) {
        if (err) {
            err->code = CSIP_ERR_INVALID_ARG;
            err->line = err->column = 1;
            err->what = "no output pointer, or no buffer for a non-zero length";
        }
        return CSIP_ERR_INVALID_ARG;
    }
    *out = NULL;
    csip_sdp_limits z = {0}, lim;
    if (!limits)
        limits = &z;
    lim.max_len = lim_or(limits->max_len, CSIP_SDP_DEFAULT_MAX_LEN);
    if (lim.max_len > CSIP_SDP_MAX_LEN_CEILING)
        lim.max_len = CSIP_SDP_MAX_LEN_CEILING;
    lim.max_lines = lim_or(limits->max_lines, CSIP_SDP_DEFAULT_MAX_LINES);
    lim.max_media = lim_or(limits->max_media, CSIP_SDP_DEFAULT_MAX_MEDIA);
    lim.max_attrs = lim_or(limits->max_attrs, CSIP_SDP_DEFAULT_MAX_ATTRS);
    lim.max_formats = lim_or(limits->max_formats, CSIP_SDP_DEFAULT_MAX_FORMATS);
    if (!buf) {
        static const char nothing[1] = {0};
        ps.base = ps.end = ps.ls = nothing;
        ps.lineno = 1;
        return BAD(&ps, nothing, "empty description");
    }
    if (len > lim.max_len) {
        /* located at the first octet over the limit */
        const char *at = buf + lim.max_len;
        ps.lineno = 1;
        for (const char *q = buf; q < at; q++)
            if (*q == '\n') {
                ps.lineno++;
                ps.ls = q + 1;
            }
        ps.type = *ps.ls;
        return fail(&ps, buf + lim.max_len, CSIP_ERR_LIMIT_SDP,
                    "description longer than the size limit");
    }

    counts n = {0};
    int rc = count_lines(&ps, &lim, &n);
    if (rc)
        return rc;

    size_t size = al8(sizeof(csip_sdp));
    size_t o_em = size;
    size += al8(n.e * sizeof(csip_str));
    size_t o_ph = size;
    size += al8(n.p * sizeof(csip_str));
    size_t o_rp = size;
    size += al8(n.r * sizeof(csip_str));
    size_t o_fm = size;
    size += al8(n.fmts * sizeof(csip_str));
    size_t o_cn = size;
    size += al8(n.c * sizeof(csip_sdp_conn));
    size_t o_bw = size;
    size += al8(n.b * sizeof(csip_sdp_bw));
    size_t o_tm = size;
    size += al8(n.t * sizeof(csip_sdp_time));
    size_t o_at = size;
    size += al8(n.a * sizeof(csip_sdp_attr));
    size_t o_md = size;
    size += al8(n.m * sizeof(csip_sdp_media));

    char *blk = csip__malloc(mem, size);
    if (!blk) {
        if (err) {
            memset(err, 0, sizeof *err);
            err->code = CSIP_ERR_NOMEM;
            err->line = 1;
            err->column = 1;
            err->what = "out of memory";
        }
        return CSIP_ERR_NOMEM;
    }
    csip_sdp *s = (csip_sdp *)(void *)blk;
    memset(s, 0, sizeof *s);
    s->mem = mem;
    s->buf = buf;
    s->len = len;
    arrays ar = {0};
    ar.emails = (csip_str *)(void *)(blk + o_em);
    ar.phones = (csip_str *)(void *)(blk + o_ph);
    ar.repeats = (csip_str *)(void *)(blk + o_rp);
    ar.fmts = (csip_str *)(void *)(blk + o_fm);
    ar.cap_f = n.fmts;
    ar.conns = (csip_sdp_conn *)(void *)(blk + o_cn);
    ar.bws = (csip_sdp_bw *)(void *)(blk + o_bw);
    ar.times = (csip_sdp_time *)(void *)(blk + o_tm);
    ar.attrs = (csip_sdp_attr *)(void *)(blk + o_at);
    ar.media = (csip_sdp_media *)(void *)(blk + o_md);

    ps.ls = buf;
    rc = parse_all(&ps, &s->d, &ar);
    if (rc) {
        csip__free(mem, blk);
        return rc;
    }
    *out = s;
    return 0;
}

int csip_sdp_parse(const char *buf, size_t len, const csip_mem *mem, csip_sdp **out,
                   csip_sdp_error *err)
{
    return csip_sdp_parse_limited(buf, len, mem, NULL, out, err);
}

void csip_sdp_free(csip_sdp *sdp)
{
    if (sdp)
        csip__free(sdp->mem, sdp);
}

/* ------------------------------------------------------------------------- */
/* Accessors                                                                  */

const char *csip_sdp_dir_name(csip_sdp_dir dir)
{
    switch (dir) {
    case CSIP_SDP_SENDRECV:
        return "sendrecv";
    case CSIP_SDP_SENDONLY:
        return "sendonly";
    case CSIP_SDP_RECVONLY:
        return "recvonly";
    case CSIP_SDP_INACTIVE:
        return "inactive";
    }
    return "";
}

const csip_sdp_desc *csip_sdp_get(const csip_sdp *sdp)
{
    return sdp ? &sdp->d : NULL;
}

const csip_sdp_media *csip_sdp_media_at(const csip_sdp *sdp, size_t i)
{
    if (!sdp || i >= sdp->d.n_media)
        return NULL;
    return &sdp->d.media[i];
}

const csip_sdp_conn *csip_sdp_media_conn(const csip_sdp *sdp, size_t i)
{
    const csip_sdp_media *m = csip_sdp_media_at(sdp, i);
    if (!m)
        return NULL;
    return m->n_conns ? &m->conns[0] : sdp->d.conn;
}

const csip_sdp_attr *csip_sdp_attr_next(const csip_sdp_attr *attrs, size_t n, const char *name,
                                        const csip_sdp_attr *prev)
{
    if (!attrs || !name)
        return NULL;
    size_t i = prev ? (size_t)(prev - attrs) + 1 : 0;
    for (; i < n; i++)
        if (csip_str_eq_c(attrs[i].name, name))
            return &attrs[i];
    return NULL;
}

/* RFC 3551 §6, tables 4 (audio) and 5 (video). */
static const struct {
    const char *name;
    uint32_t clock;
    uint8_t channels;
} static_pts[35] = {
    [0] = {"PCMU", 8000, 1},   [3] = {"GSM", 8000, 1},    [4] = {"G723", 8000, 1},
    [5] = {"DVI4", 8000, 1},   [6] = {"DVI4", 16000, 1},  [7] = {"LPC", 8000, 1},
    [8] = {"PCMA", 8000, 1},   [9] = {"G722", 8000, 1},   [10] = {"L16", 44100, 2},
    [11] = {"L16", 44100, 1},  [12] = {"QCELP", 8000, 1}, [13] = {"CN", 8000, 1},
    [14] = {"MPA", 90000, 1},  [15] = {"G728", 8000, 1},  [16] = {"DVI4", 11025, 1},
    [17] = {"DVI4", 22050, 1}, [18] = {"G729", 8000, 1},  [25] = {"CelB", 90000, 1},
    [26] = {"JPEG", 90000, 1}, [28] = {"nv", 90000, 1},   [31] = {"H261", 90000, 1},
    [32] = {"MPV", 90000, 1},  [33] = {"MP2T", 90000, 1}, [34] = {"H263", 90000, 1},
};

int csip_sdp_static_pt(unsigned pt, csip_sdp_rtpmap *out)
{
    if (pt >= sizeof static_pts / sizeof static_pts[0] || !static_pts[pt].name || !out)
        return CSIP_ERR_NOT_FOUND;
    out->pt = (uint8_t)pt;
    out->name = csip_str_c(static_pts[pt].name);
    out->clock = static_pts[pt].clock;
    out->channels = static_pts[pt].channels;
    out->from_table = true;
    return 0;
}

int csip_sdp_media_rtpmap(const csip_sdp_media *m, csip_str fmt, csip_sdp_rtpmap *out)
{
    unsigned pt;
    if (!m || !out || !csip__sdp_pt(fmt, &pt))
        return CSIP_ERR_NOT_FOUND;
    for (const csip_sdp_attr *a = NULL;
         (a = csip_sdp_attr_next(m->attrs, m->n_attrs, "rtpmap", a)) != NULL;) {
        csip_sdp_rtpmap r;
        const char *bad;
        if (a->value.p && rtpmap_read(a->value, &r, &bad) == 0 && r.pt == pt) {
            *out = r;
            return 0;
        }
    }
    return csip_sdp_static_pt(pt, out);
}

int csip_sdp_media_fmtp(const csip_sdp_media *m, csip_str fmt, csip_str *out)
{
    if (!m || !out)
        return CSIP_ERR_NOT_FOUND;
    for (const csip_sdp_attr *a = NULL;
         (a = csip_sdp_attr_next(m->attrs, m->n_attrs, "fmtp", a)) != NULL;) {
        csip_str f, rest;
        if (a->value.p && split_word(a->value, &f, &rest) && csip_str_eq(f, fmt)) {
            *out = rest;
            return 0;
        }
    }
    return CSIP_ERR_NOT_FOUND;
}

int csip_sdp_media_ptime(const csip_sdp_media *m, uint32_t *ms)
{
    if (!m || !ms)
        return CSIP_ERR_NOT_FOUND;
    const csip_sdp_attr *a = csip_sdp_attr_next(m->attrs, m->n_attrs, "ptime", NULL);
    if (!a || !a->value.p || ptime_read(a->value, ms) != 0)
        return CSIP_ERR_NOT_FOUND;
    return 0;
}
