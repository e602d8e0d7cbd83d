/*
 * URIs: sip, sips (RFC 3261 §19.1, grammar §25.1), tel (RFC 3966) and any
 * other absolute URI (RFC 3261 absoluteURI, RFC 2396). Parsing is zero-copy
 * and allocation-free; comparison (RFC 3261 §19.1.4, RFC 3966 §4) decodes
 * escapes on the fly. See docs/internals/uri.md for the grammar decisions.
 */
#include "csip/uri.h"

#include "base/base_int.h"
#include "csip/limits.h"
#include "uri/uri_int.h"

#include <limits.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Small helpers */

static inline bool esc_ok(const char *p, const char *end)
{
    return end - p >= 3 && csip__hexval((unsigned char)p[1]) >= 0 &&
           csip__hexval((unsigned char)p[2]) >= 0;
}

static inline unsigned esc_val(const char *p)
{
    return (unsigned)(csip__hexval((unsigned char)p[1]) * 16 + csip__hexval((unsigned char)p[2]));
}

static inline csip_str mkstr(const char *b, const char *e)
{
    csip_str s = {b, (size_t)(e - b)};
    return s;
}

static const char *skip_lws(const char *p, const char *end)
{
    while (p < end && csip__is((unsigned char)*p, CSIP_C_LWS))
        p++;
    return p;
}

/*
 * Scans 1*( class / escaped ) from p. Returns the end of the run, or NULL when
 * a '%' is not followed by two hex digits (always an error inside a sip URI).
 */
static inline const char *scan_esc(const char *p, const char *end, unsigned cls)
{
    while (p < end) {
        p = csip__span(p, end, cls);
        if (p >= end)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '%') {
            if (!esc_ok(p, end))
                return NULL;
            p += 3;
        } else {
            break;
        }
    }
    return p;
}

/* ------------------------------------------------------------------------- */
/* Hosts */

/* RFC 3261 hostname: *( domainlabel "." ) toplabel [ "." ]; toplabel starts with ALPHA. */
static bool hostname_check(const char *p, size_t n)
{
    if (n && p[n - 1] == '.')
        n--;
    if (n == 0)
        return false;
    size_t ls = 0, top = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            if (i == ls || p[ls] == '-' || p[i - 1] == '-')
                return false;
            top = ls;
            ls = i + 1;
        } else if (!csip__is((unsigned char)p[i], CSIP_C_HOST)) {
            return false;
        }
    }
    return csip__is((unsigned char)p[top], CSIP_C_ALPHA);
}

/*
 * One pass over a hostname or IPv4 address at p (the rules of
 * csip__host_check()): label bodies are spans of letters and digits, so only
 * '-' and '.' cost a branch. Returns the end of the host, or NULL.
 */
static const char *scan_hostname(const char *p, const char *end, csip_host_type *type)
{
    const char *s = p, *label = p, *top = p;
    if (p < end && (unsigned)((unsigned char)*p - '0') <= 9) {
        /* the usual IPv4 address in one pass (the scan below would read it twice) */
        const char *q = csip__scan_ipv4(p, end);
        if (q) {
            *type = CSIP_HOST_IPV4;
            return q;
        }
    }
#if defined(CSIP__HOST_RUN)
    size_t n;
    uint64_t dots, dashes;
    if (csip__host_run(p, end, &n, &dots, &dashes)) {
        /* the rules of the loop below on the masks: no label starts with '-'
         * or is empty, none ends with '-' (before a dot or at the end) */
        if (n == 0)
            return NULL;
        const uint64_t starts = (dots << 1) | 1, last = (uint64_t)1 << (n - 1);
        if ((dashes & starts) || (dots & starts) || (dots & (dashes << 1)) || (dashes & last))
            return NULL;
        /* the top label starts after the last dot (a trailing dot aside) */
        const uint64_t d = dots & ~last;
        const size_t t = d ? (size_t)(64 - __builtin_clzll(d)) : 0;
        if (csip__is((unsigned char)p[t], CSIP_C_ALPHA)) {
            *type = CSIP_HOST_NAME;
            return p + n;
        }
        uint8_t a[4];
        if (!csip__ipv4_parse(p, n, a))
            return NULL;
        *type = CSIP_HOST_IPV4;
        return p + n;
    }
#endif
    for (;;) {
        p = csip__span(p, end, CSIP_C_ALPHA | CSIP_C_DIGIT);
        if (p < end && *p == '-') {
            if (p == label)
                return NULL; /* a label starts with '-' */
            p++;
            continue;
        }
        if (p < end && *p == '.') {
            if (p == label || p[-1] == '-')
                return NULL; /* empty label, or one ending with '-' */
            top = label;
            label = ++p;
            continue;
        }
        break;
    }
    if (p == s)
        return NULL;
    if (label < p) {
        if (p[-1] == '-')
            return NULL;
        top = label;
    } /* else a trailing dot: the top label is the one before it */
    if (csip__is((unsigned char)*top, CSIP_C_ALPHA)) {
        *type = CSIP_HOST_NAME;
        return p;
    }
    uint8_t a[4]; /* a top label that starts with a digit: only IPv4 can match */
    if (!csip__ipv4_parse(s, (size_t)(p - s), a))
        return NULL;
    *type = CSIP_HOST_IPV4;
    return p;
}

bool csip__host_check(const char *p, size_t n, csip_host_type *type)
{
    if (n == 0)
        return false;
    if (p[0] == '[') {
        uint8_t a[16];
        if (n < 4 || p[n - 1] != ']' || !csip__ipv6_parse(p + 1, n - 2, a))
            return false;
        *type = CSIP_HOST_IPV6;
        return true;
    }
    bool numeric = true;
    for (size_t i = 0; i < n && numeric; i++)
        numeric = (p[i] >= '0' && p[i] <= '9') || p[i] == '.';
    if (numeric) {
        /* all digits and dots: only an IPv4 address can match (a toplabel starts with ALPHA) */
        uint8_t a[4];
        if (!csip__ipv4_parse(p, n, a))
            return false;
        *type = CSIP_HOST_IPV4;
        return true;
    }
    if (!hostname_check(p, n))
        return false;
    *type = CSIP_HOST_NAME;
    return true;
}

/* ------------------------------------------------------------------------- */
/* Parameter names with meaning (RFC 3261 §19.1.1), matched after unescaping */

enum {
    P_OTHER = 0,
    P_TRANSPORT = 1 << 0,
    P_USER = 1 << 1,
    P_METHOD = 1 << 2,
    P_MADDR = 1 << 3,
    P_TTL = 1 << 4,
    P_LR = 1 << 5,
};

/* The special parameter a name stands for, or P_OTHER. */
static unsigned param_kind(csip_str name)
{
    char buf[10];
    size_t n = 0;
    const char *p = name.p, *end = p + name.len;
    /* decode (escapes in names are legal: RFC 4475 esc01 writes lr as %6C%72) */
    while (p < end) {
        if (n == sizeof buf)
            return P_OTHER;
        if (*p == '%' && esc_ok(p, end)) {
            buf[n++] = csip__lower((char)esc_val(p));
            p += 3;
        } else {
            buf[n++] = csip__lower(*p++);
        }
    }
    switch (n) {
    case 2:
        return memcmp(buf, "lr", 2) == 0 ? P_LR : P_OTHER;
    case 3:
        return memcmp(buf, "ttl", 3) == 0 ? P_TTL : P_OTHER;
    case 4:
        return memcmp(buf, "user", 4) == 0 ? P_USER : P_OTHER;
    case 5:
        return memcmp(buf, "maddr", 5) == 0 ? P_MADDR : P_OTHER;
    case 6:
        return memcmp(buf, "method", 6) == 0 ? P_METHOD : P_OTHER;
    case 9:
        return memcmp(buf, "transport", 9) == 0 ? P_TRANSPORT : P_OTHER;
    default:
        return P_OTHER;
    }
}

static inline uint64_t load64u(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t load32u(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The n octets at p (no escapes) against the lowercase letters lit (n long),
 * letters compared without case: OR-ing 0x20 maps only 'A'-'Z' onto 'a'-'z'.
 * Overlapping words from both ends; 2 <= n <= 16. */
static inline bool letters_ieq(const char *p, size_t n, const char *lit)
{
    if (n >= 8)
        return ((load64u(p) | 0x2020202020202020u) ^ load64u(lit)) == 0 &&
               ((load64u(p + n - 8) | 0x2020202020202020u) ^ load64u(lit + n - 8)) == 0;
    if (n >= 4)
        return ((load32u(p) | 0x20202020u) ^ load32u(lit)) == 0 &&
               ((load32u(p + n - 4) | 0x20202020u) ^ load32u(lit + n - 4)) == 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != lit[i])
            return false;
    return true;
}

/* param_kind() for a name without escapes. */
static unsigned param_kind_plain(csip_str name)
{
    const char *p = name.p;
    switch (name.len) {
    case 2:
        return letters_ieq(p, 2, "lr") ? P_LR : P_OTHER;
    case 3:
        return letters_ieq(p, 3, "ttl") ? P_TTL : P_OTHER;
    case 4:
        return letters_ieq(p, 4, "user") ? P_USER : P_OTHER;
    case 5:
        return letters_ieq(p, 5, "maddr") ? P_MADDR : P_OTHER;
    case 6:
        return letters_ieq(p, 6, "method") ? P_METHOD : P_OTHER;
    case 9:
        return letters_ieq(p, 9, "transport") ? P_TRANSPORT : P_OTHER;
    default:
        return P_OTHER;
    }
}

/* Records a uri-parameter with meaning. Returns false when it is malformed. */
static bool note_param(csip_uri *u, unsigned *seen, csip_str name, bool name_esc, csip_str value)
{
    unsigned k;
    if (!name_esc) {
        /* fast path: compared in place, no decoding */
        k = param_kind_plain(name);
    } else {
        k = param_kind(name);
    }
    if (k == P_OTHER)
        return true;
    if (k == P_LR) {
        /* lr-param is "lr"; "lr=on" from RFC 2543-era proxies is accepted */
        u->lr = true;
        return true;
    }
    /* transport, user, method, maddr and ttl need a value and may appear once */
    if (!value.p || (*seen & k))
        return false;
    *seen |= k;
    switch (k) {
    case P_TRANSPORT:
        u->transport = value;
        break;
    case P_USER:
        u->user_param = value;
        break;
    case P_METHOD:
        u->method = value;
        break;
    case P_MADDR: {
        csip_host_type t;
        if (memchr(value.p, '%', value.len) == NULL && !csip__host_check(value.p, value.len, &t))
            return false;
        u->maddr = value;
        break;
    }
    case P_TTL:
        /* ttl = 1*3DIGIT (0 to 255) */
        if (value.len > 3)
            return false;
        {
            unsigned v = 0;
            for (size_t i = 0; i < value.len; i++) {
                if (value.p[i] < '0' || value.p[i] > '9')
                    return false;
                v = v * 10 + (unsigned)(value.p[i] - '0');
            }
            if (v > 255)
                return false;
        }
        u->ttl = value;
        break;
    default:
        break;
    }
    return true;
}

/* ------------------------------------------------------------------------- */
/* sip and sips */

/* uri-parameters from p (just after the first ';') up to '?', the octet
 * `stop` (-1: none) or the end. */
static const char *parse_uri_params(csip_uri *u, const char *p, const char *end, int stop)
{
    const char *start = p;
    unsigned seen = 0;
    for (;;) {
        const char *ns = p;
        bool name_esc = false;
        while (p < end) {
            unsigned char c = (unsigned char)*p;
            if (csip_likely(csip__is(c, CSIP_C_PARAM))) {
                p++;
            } else if (c == '%') {
                if (!esc_ok(p, end))
                    return NULL;
                name_esc = true;
                p += 3;
            } else {
                break;
            }
        }
        if (p == ns)
            return NULL; /* empty pname: ";;" or a trailing ';' */
        csip_str name = mkstr(ns, p);
        csip_str value = CSIP_STR_NULL;
        if (p < end && *p == '=') {
            const char *vs = ++p;
            p = scan_esc(p, end, CSIP_C_PARAM);
            if (!p || p == vs)
                return NULL; /* pvalue = 1*paramchar */
            value = mkstr(vs, p);
        }
        if (!note_param(u, &seen, name, name_esc, value))
            return NULL;
        if (p == end || *p == '?' || (unsigned char)*p == stop)
            break;
        if (*p != ';')
            return NULL;
        p++;
    }
    u->params = mkstr(start, p);
    return p;
}

/* headers after '?': hname "=" hvalue *( "&" hname "=" hvalue ); hvalue may be
 * empty. They end at the octet `stop` (-1: none) or the end. */
static const char *parse_uri_headers(csip_uri *u, const char *p, const char *end, int stop)
{
    const char *start = p;
    for (;;) {
        const char *ns = p;
        p = scan_esc(p, end, CSIP_C_HNV);
        if (!p || p == ns || p == end || *p != '=')
            return NULL;
        p = scan_esc(p + 1, end, CSIP_C_HNV);
        if (!p)
            return NULL;
        if (p == end || (unsigned char)*p == stop)
            break;
        if (*p != '&')
            return NULL;
        p++;
    }
    u->headers = mkstr(start, p);
    return p;
}

/* The sip/sips URI after "scheme:" at s. With stop < 0 it must fill [s, end);
 * otherwise it ends at the first octet that cannot continue it, which must be
 * `stop` (*uend is set to it). */
static int parse_sip(csip_uri *u, const char *s, const char *end, int stop, const char **uend)
{
    /*
     * userinfo: in a valid sip URI an unescaped '@' can only end the userinfo
     * (paramchar and hnv-unreserved exclude it), and user-unreserved includes
     * ';', '?' and '/'. So scan the longest run of user characters: if an '@'
     * (or ':' password '@') follows, that run is the user; otherwise there is
     * no userinfo and the host starts at s. RFC 4475 semiuri and intmeth rely
     * on this. The run is rescanned as host only when there is no userinfo.
     */
    const char *q = scan_esc(s, end, CSIP_C_USER);
    if (!q)
        return CSIP_ERR_PARSE_URI;
    const char *h = s;
    if (q < end && *q == '@') {
        u->user = mkstr(s, q);
        h = q + 1;
    } else if (q < end && *q == ':') {
        const char *pw = scan_esc(q + 1, end, CSIP_C_PASSWORD);
        if (!pw)
            return CSIP_ERR_PARSE_URI;
        if (pw < end && *pw == '@') {
            u->user = mkstr(s, q);
            u->password = mkstr(q + 1, pw);
            h = pw + 1;
        }
    }
    if (u->user.p && u->user.len == 0)
        return CSIP_ERR_PARSE_URI; /* "sip:@host", "sip::pw@host" */

    /* host */
    const char *p = h;
    if (p < end && *p == '[') {
        while (++p < end && (csip__hexval((unsigned char)*p) >= 0 || *p == ':' || *p == '.'))
            ;
        if (p == end || *p != ']')
            return CSIP_ERR_PARSE_URI;
        p++;
        if (!csip__host_check(h, (size_t)(p - h), &u->host_type))
            return CSIP_ERR_PARSE_URI;
    } else {
        p = scan_hostname(p, end, &u->host_type);
        if (!p)
            return CSIP_ERR_PARSE_URI;
    }
    u->host = mkstr(h, p);

    /* port = 1*DIGIT, 0 to 65535 */
    if (p < end && *p == ':') {
        const char *ds = ++p;
        uint32_t v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            v = v * 10 + (uint32_t)(*p++ - '0');
            if (v > 65535)
                return CSIP_ERR_PARSE_URI;
        }
        if (p == ds)
            return CSIP_ERR_PARSE_URI;
        u->has_port = true;
        u->port = (uint16_t)v;
    }
    if (p < end && *p == ';') {
        p = parse_uri_params(u, p + 1, end, stop);
        if (!p)
            return CSIP_ERR_PARSE_URI;
    }
    if (p < end && *p == '?') {
        p = parse_uri_headers(u, p + 1, end, stop);
        if (!p)
            return CSIP_ERR_PARSE_URI;
    }
    if (stop >= 0) {
        if (p == end || (unsigned char)*p != stop)
            return CSIP_ERR_PARSE_URI;
        *uend = p;
        return 0;
    }
    return p == end ? 0 : CSIP_ERR_PARSE_URI;
}

/* ------------------------------------------------------------------------- */
/* tel (RFC 3966 §3) */

static inline bool is_visual_sep(char c)
{
    return c == '-' || c == '.' || c == '(' || c == ')';
}

static int parse_tel(csip_uri *u, const char *s, const char *end)
{
    const char *p = s;
    bool digit = false;
    if (p < end && *p == '+') {
        /* global-number-digits = "+" *phonedigit DIGIT *phonedigit */
        p++;
        for (; p < end && *p != ';'; p++) {
            if (*p >= '0' && *p <= '9')
                digit = true;
            else if (!is_visual_sep(*p))
                return CSIP_ERR_PARSE_URI;
        }
    } else {
        /* local-number-digits: HEXDIG / "*" / "#" and separators; '#' may come as %23 */
        while (p < end && *p != ';') {
            if (csip__hexval((unsigned char)*p) >= 0 || *p == '*' || *p == '#') {
                digit = true;
                p++;
            } else if (is_visual_sep(*p)) {
                p++;
            } else if (*p == '%' && end - p >= 3 && p[1] == '2' && p[2] == '3') {
                digit = true;
                p += 3;
            } else {
                return CSIP_ERR_PARSE_URI;
            }
        }
    }
    if (!digit)
        return CSIP_ERR_PARSE_URI;
    u->user = mkstr(s, p);
    if (p == end)
        return 0;
    /* parameters: ";" pname [ "=" pvalue ], pname = 1*( alphanum / "-" ) */
    const char *ps = ++p;
    for (;;) {
        const char *ns = p;
        while (p < end && (csip__is((unsigned char)*p, CSIP_C_ALPHA | CSIP_C_DIGIT) || *p == '-'))
            p++;
        if (p == ns)
            return CSIP_ERR_PARSE_URI;
        if (p < end && *p == '=') {
            const char *vs = ++p;
            p = scan_esc(p, end, CSIP_C_PARAM);
            if (!p || p == vs)
                return CSIP_ERR_PARSE_URI;
        }
        if (p == end)
            break;
        if (*p != ';')
            return CSIP_ERR_PARSE_URI;
        p++;
    }
    u->params = mkstr(ps, end);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Other schemes: absoluteURI = scheme ":" ( hier-part / opaque-part ), uric chars */

static int parse_other(csip_uri *u, const char *s, const char *end)
{
    const char *p = s;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        /* uric, plus '[' and ']' for IPv6 literals (RFC 2732) */
        if (csip__is(c, CSIP_C_URIC) || c == '[' || c == ']') {
            p++;
        } else if (c == '%' && esc_ok(p, end)) {
            p += 3;
        } else {
            return CSIP_ERR_PARSE_URI;
        }
    }
    if (p == s)
        return CSIP_ERR_PARSE_URI;
    u->opaque = mkstr(s, end);
    return 0;
}

int csip_uri_parse(const char *p, size_t len, size_t max_len, csip_uri *out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    csip__zero(out, sizeof *out);
    if (max_len == 0)
        max_len = CSIP_DEFAULT_MAX_URI;
    if (len > max_len)
        return CSIP_ERR_LIMIT_URI;
    if (!p || len == 0)
        return CSIP_ERR_PARSE_URI;

    const char *end = p + len;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    const char *s = p;
    /* the common "sip:" in one compare */
    if (len > 4 && (load32u(p) | load32u("\x20\x20\x20\x00")) == load32u("sip:")) {
        out->raw = mkstr(p, end);
        out->scheme = mkstr(p, p + 3);
        out->kind = CSIP_URI_SIP;
        int rc = parse_sip(out, p + 4, end, -1, NULL);
        if (rc != 0)
            memset(out, 0, sizeof *out);
        return rc;
    }
    if (!csip__is((unsigned char)*s, CSIP_C_ALPHA))
        return CSIP_ERR_PARSE_URI;
    while (++s < end && (csip__is((unsigned char)*s, CSIP_C_ALPHA | CSIP_C_DIGIT) || *s == '+' ||
                         *s == '-' || *s == '.'))
        ;
    if (s == end || *s != ':')
        return CSIP_ERR_PARSE_URI;
    out->raw = mkstr(p, end);
    out->scheme = mkstr(p, s);
    size_t sl = (size_t)(s - p);
    char c0 = csip__lower(p[0]), c1 = sl > 1 ? csip__lower(p[1]) : 0,
         c2 = sl > 2 ? csip__lower(p[2]) : 0;
    if (sl >= 3 && c0 == 's' && c1 == 'i' && c2 == 'p' &&
        (sl == 3 || (sl == 4 && csip__lower(p[3]) == 's')))
        out->kind = sl == 3 ? CSIP_URI_SIP : CSIP_URI_SIPS;
    else if (sl == 3 && c0 == 't' && c1 == 'e' && c2 == 'l')
        out->kind = CSIP_URI_TEL;
    else
        out->kind = CSIP_URI_OTHER;

    int rc;
    switch (out->kind) {
    case CSIP_URI_SIP:
    case CSIP_URI_SIPS:
        rc = parse_sip(out, s + 1, end, -1, NULL);
        break;
    case CSIP_URI_TEL:
        rc = parse_tel(out, s + 1, end);
        break;
    default:
        rc = parse_other(out, s + 1, end);
        break;
    }
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int csip__uri_parse_until(const char *p, const char *end, char stop, csip_uri *out,
                          const char **uend)
{
    /* "sip:" and at least one octet, as csip_uri_parse() wants for its fast path */
    if (end - p <= 4 || (load32u(p) | load32u("\x20\x20\x20\x00")) != load32u("sip:"))
        return -1;
    csip__zero(out, sizeof *out);
    out->scheme = mkstr(p, p + 3);
    out->kind = CSIP_URI_SIP;
    const char *e = NULL;
    if (parse_sip(out, p + 4, end, (unsigned char)stop, &e) != 0 || e - p > CSIP_DEFAULT_MAX_URI)
        return -1;
    out->raw = mkstr(p, e);
    *uend = e;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Comparison */

/* RFC 2396 reserved: an escape of one of these is not equivalent to the character. */
static inline bool is_reserved(unsigned c)
{
    switch (c) {
    case ';':
    case '/':
    case '?':
    case ':':
    case '@':
    case '&':
    case '=':
    case '+':
    case '$':
    case ',':
        return true;
    default:
        return false;
    }
}

#define UNIT_ESCAPED 0x100u

/*
 * The next comparison unit of a URI component: an octet, decoded when it was
 * escaped, or UNIT_ESCAPED | octet for an escaped reserved character
 * (RFC 3261 §19.1.4: "Characters other than those in the reserved set are
 * equivalent to their "%" HEX HEX encoding").
 */
static inline unsigned next_unit(const char **pp, const char *end)
{
    const char *p = *pp;
    if (*p == '%' && esc_ok(p, end)) {
        unsigned v = esc_val(p);
        *pp = p + 3;
        return is_reserved(v) ? (UNIT_ESCAPED | v) : v;
    }
    *pp = p + 1;
    return (unsigned char)*p;
}

static inline unsigned unit_lower(unsigned u)
{
    return (u >= 'A' && u <= 'Z') ? u + 32 : u;
}

/* Component equality with escapes resolved; icase folds ASCII letters. */
static bool comp_eq(csip_str a, csip_str b, bool icase)
{
    if (a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0))
        return true;
    const char *pa = a.p, *ea = a.p + a.len, *pb = b.p, *eb = b.p + b.len;
    while (pa < ea && pb < eb) {
        unsigned ua = next_unit(&pa, ea), ub = next_unit(&pb, eb);
        if (icase) {
            ua = unit_lower(ua);
            ub = unit_lower(ub);
        }
        if (ua != ub)
            return false;
    }
    return pa == ea && pb == eb;
}

/* Both absent, or both present and equal. */
static bool opt_eq(csip_str a, csip_str b, bool icase)
{
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return comp_eq(a, b, icase);
}

static bool host_eq(const csip_uri *a, const csip_uri *b)
{
    if (a->host_type != b->host_type)
        return false;
    if (a->host_type == CSIP_HOST_IPV6) {
        /* same address whatever the text form (RFC 5954 §4.1) */
        uint8_t x[16], y[16];
        if (a->host.len < 2 || b->host.len < 2 ||
            !csip__ipv6_parse(a->host.p + 1, a->host.len - 2, x) ||
            !csip__ipv6_parse(b->host.p + 1, b->host.len - 2, y))
            return csip_str_ieq(a->host, b->host);
        return memcmp(x, y, 16) == 0;
    }
    return csip_str_ieq(a->host, b->host);
}

/* True for the parameters that never match when present in one URI only. */
static bool param_must_match(csip_str name)
{
    unsigned k = param_kind(name);
    return k != P_OTHER && k != P_LR;
}

/* tel numbers: equal after removing visual separators and decoding escapes (RFC 3966 §4). */
static bool tel_digits_eq(csip_str a, csip_str b)
{
    const char *pa = a.p, *ea = a.p + a.len, *pb = b.p, *eb = b.p + b.len;
    for (;;) {
        while (pa < ea && is_visual_sep(*pa))
            pa++;
        while (pb < eb && is_visual_sep(*pb))
            pb++;
        if (pa == ea || pb == eb)
            return pa == ea && pb == eb;
        unsigned ua = (unsigned char)*pa, ub = (unsigned char)*pb;
        if (ua == '%' && esc_ok(pa, ea)) {
            ua = esc_val(pa);
            pa += 3;
        } else {
            pa++;
        }
        if (ub == '%' && esc_ok(pb, eb)) {
            ub = esc_val(pb);
            pb += 3;
        } else {
            pb++;
        }
        if (unit_lower(ua) != unit_lower(ub))
            return false;
    }
}

static bool tel_param_value_eq(csip_str name, csip_str va, csip_str vb)
{
    if (!va.p || !vb.p)
        return !va.p && !vb.p;
    /* phone-context: a domain name (case-insensitive) or global digits (separators removed) */
    if (csip_str_ieq_c(name, "phone-context") && va.len && vb.len && va.p[0] == '+' &&
        vb.p[0] == '+')
        return tel_digits_eq(va, vb);
    return comp_eq(va, vb, true);
}

/*
 * Parameters and headers are compared through a small array of parsed items,
 * so that the pairing below costs O(n^2) cheap name comparisons and no
 * re-parsing. Lists longer than this are compared as whole lists (same items
 * in the same order, escapes resolved): no real URI carries that many, and it
 * keeps the cost of comparing hostile URIs bounded.
 */
#define CMP_MAX_ITEMS 64

typedef struct item_list {
    size_t n;
    csip_param v[CMP_MAX_ITEMS];
} item_list;

/* Loads a ';'-separated parameter list. False when it has too many items. */
static bool load_params(csip_str list, item_list *out)
{
    csip_param x;
    out->n = 0;
    while (csip_param_next(&list, &x) == 1) {
        if (out->n == CMP_MAX_ITEMS)
            return false;
        out->v[out->n++] = x;
    }
    return true;
}

/* Loads a headers component (hname=hvalue joined by '&'). False when it has too many. */
static bool load_headers(csip_str h, item_list *out)
{
    out->n = 0;
    if (!h.p)
        return true;
    const char *p = h.p, *end = h.p + h.len;
    for (;;) {
        if (out->n == CMP_MAX_ITEMS)
            return false;
        const char *e = p;
        while (e < end && *e != '&')
            e++;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        csip_param *x = &out->v[out->n++];
        x->name = mkstr(p, eq ? eq : e);
        x->value = eq ? mkstr(eq + 1, e) : mkstr(e, e);
        if (e == end)
            return true;
        p = e + 1;
    }
}

/* Rank of item i among the items of the same name before it. */
static size_t item_rank(const item_list *l, size_t i)
{
    size_t k = 0;
    for (size_t j = 0; j < i; j++)
        if (comp_eq(l->v[j].name, l->v[i].name, true))
            k++;
    return k;
}

/* The item of `l` with this name and rank, or NULL. */
static const csip_param *item_find(const item_list *l, csip_str name, size_t rank)
{
    for (size_t j = 0; j < l->n; j++)
        if (comp_eq(l->v[j].name, name, true) && rank-- == 0)
            return &l->v[j];
    return NULL;
}

/*
 * Checks each parameter of `from` against the parameter of the same name and
 * rank in `to` (the second "x" with the second "x": repeated names are rare,
 * but the relation must stay reflexive and symmetric). A parameter missing
 * from `to` is tolerated for sip/sips where RFC 3261 §19.1.4 lets it be
 * ignored, never for tel (RFC 3966 §4). Called both ways.
 */
static bool params_cover(const item_list *from, const item_list *to, bool tel)
{
    for (size_t i = 0; i < from->n; i++) {
        const csip_param *x = &from->v[i];
        size_t k = item_rank(from, i);
        const csip_param *y = item_find(to, x->name, k);
        if (y) {
            /* any parameter appearing in both URIs must match */
            if (tel ? !tel_param_value_eq(x->name, x->value, y->value)
                    : !opt_eq(x->value, y->value, true))
                return false;
        } else if (tel || k > 0 || param_must_match(x->name)) {
            /* user, ttl, method, maddr, transport: in one URI only never matches */
            return false;
        }
    }
    return true;
}

static bool params_eq(csip_str pa, csip_str pb, bool tel)
{
    item_list a, b;
    if (!load_params(pa, &a) || !load_params(pb, &b))
        return opt_eq(pa, pb, true);
    return params_cover(&a, &b, tel) && params_cover(&b, &a, tel);
}

/*
 * Header components (RFC 3261 §19.1.4: never ignored, each must be present in
 * both URIs and match). Order between different names is not significant;
 * the k-th header of a name is matched with the k-th header of that name in
 * the other URI (order among same-name header fields is significant in SIP).
 * Names compare case-insensitively, values exactly, both after unescaping.
 */
static bool headers_eq(csip_str ha, csip_str hb)
{
    item_list a, b;
    if (!ha.p || !hb.p)
        return !ha.p && !hb.p;
    if (!load_headers(ha, &a) || !load_headers(hb, &b))
        return comp_eq(ha, hb, false);
    if (a.n != b.n)
        return false;
    for (size_t i = 0; i < a.n; i++) {
        const csip_param *y = item_find(&b, a.v[i].name, item_rank(&a, i));
        if (!y || !comp_eq(a.v[i].value, y->value, false))
            return false;
    }
    return true;
}

static bool sip_eq(const csip_uri *a, const csip_uri *b)
{
    /* userinfo is case-sensitive; everything else is not unless stated */
    if (!opt_eq(a->user, b->user, false) || !opt_eq(a->password, b->password, false))
        return false;
    if (!host_eq(a, b))
        return false;
    /* an absent port does not match an explicit 5060 */
    if (a->has_port != b->has_port || (a->has_port && a->port != b->port))
        return false;
    return params_eq(a->params, b->params, false) && headers_eq(a->headers, b->headers);
}

static bool tel_eq(const csip_uri *a, const csip_uri *b)
{
    bool ga = a->user.len && a->user.p[0] == '+', gb = b->user.len && b->user.p[0] == '+';
    if (ga != gb || !tel_digits_eq(a->user, b->user))
        return false;
    /* every parameter must be in both URIs, in any order */
    return params_eq(a->params, b->params, true);
}

bool csip_uri_equal(const csip_uri *a, const csip_uri *b)
{
    if (!a || !b || a->kind != b->kind)
        return false;
    switch (a->kind) {
    case CSIP_URI_SIP:
    case CSIP_URI_SIPS:
        return sip_eq(a, b);
    case CSIP_URI_TEL:
        return tel_eq(a, b);
    default:
        return csip_str_ieq(a->scheme, b->scheme) && csip_str_eq(a->opaque, b->opaque);
    }
}

/* ------------------------------------------------------------------------- */
/* Parameter lists */

int csip_param_next(csip_str *rest, csip_param *out)
{
    if (!rest || !out)
        return CSIP_ERR_INVALID_ARG;
    if (!rest->p)
        return 0;
    const char *p = rest->p, *end = p + rest->len;
    p = skip_lws(p, end);
    if (p == end) {
        *rest = mkstr(end, end);
        return 0;
    }
    if (*p == ';') {
        p = skip_lws(p + 1, end);
        if (p == end)
            return CSIP_ERR_SYNTAX; /* empty parameter after ';' */
    }
    const unsigned cls = CSIP_C_TOKEN | CSIP_C_PARAM;
    const char *ns = p;
    while (p < end && csip__is((unsigned char)*p, cls))
        p++;
    if (p == ns)
        return CSIP_ERR_SYNTAX;
    csip_param prm = {mkstr(ns, p), CSIP_STR_NULL};
    p = skip_lws(p, end);
    if (p < end && *p == '=') {
        p = skip_lws(p + 1, end);
        const char *vs = p;
        if (p < end && *p == '"') {
            /* quoted-string: a ';' or LWS inside does not end it; quotes are kept */
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && ++p == end)
                    return CSIP_ERR_SYNTAX;
            if (p == end)
                return CSIP_ERR_SYNTAX;
            p++;
        } else {
            while (p < end && csip__is((unsigned char)*p, cls))
                p++;
            if (p == vs)
                return CSIP_ERR_SYNTAX;
        }
        prm.value = mkstr(vs, p);
        p = skip_lws(p, end);
    }
    if (p < end && *p != ';')
        return CSIP_ERR_SYNTAX;
    *rest = mkstr(p, end);
    *out = prm;
    return 1;
}

int csip_param_find(csip_str params, const char *name, csip_str *value)
{
    if (!name)
        return CSIP_ERR_INVALID_ARG;
    csip_str want = csip_str_c(name);
    csip_param x;
    int rc;
    while ((rc = csip_param_next(&params, &x)) == 1) {
        if (csip_str_ieq(x.name, want)) {
            if (value)
                *value = x.value;
            return 1;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Escaping (RFC 3261 §19.1.2) */

int csip_unescape(csip_str in, char *out, size_t cap)
{
    if (in.len > (size_t)INT_MAX || (in.len && !in.p))
        return CSIP_ERR_INVALID_ARG;
    const char *p = in.p, *end = in.p + in.len;
    size_t n = 0;
    while (p < end) {
        if (n == cap)
            return CSIP_ERR_BUFFER_TOO_SMALL;
        if (*p == '%' && esc_ok(p, end)) {
            out[n++] = (char)esc_val(p);
            p += 3;
        } else {
            out[n++] = *p++;
        }
    }
    return (int)n;
}

int csip_escape(csip_str in, csip_escape_set set, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned cls;
    switch (set) {
    case CSIP_ESCAPE_USER:
        cls = CSIP_C_USER;
        break;
    case CSIP_ESCAPE_PASSWORD:
        cls = CSIP_C_PASSWORD;
        break;
    case CSIP_ESCAPE_PARAM:
        cls = CSIP_C_PARAM;
        break;
    case CSIP_ESCAPE_HEADER:
        cls = CSIP_C_HNV;
        break;
    default:
        return CSIP_ERR_INVALID_ARG;
    }
    if (in.len > (size_t)INT_MAX / 3 || (in.len && !in.p))
        return CSIP_ERR_INVALID_ARG;
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (csip__is(c, cls)) {
            if (n + 1 > cap)
                return CSIP_ERR_BUFFER_TOO_SMALL;
            out[n++] = (char)c;
        } else {
            if (n + 3 > cap)
                return CSIP_ERR_BUFFER_TOO_SMALL;
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    return (int)n;
}
