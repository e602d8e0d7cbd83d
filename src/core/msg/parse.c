/*
 * Message parser: splits the start line and every header line in one pass,
 * frames the body, and gives access to the parts. Typed header values are
 * parsed on demand (hdr.c).
 *
 * Datagram rules (RFC 3261 §18.3): octets beyond Content-Length are ignored;
 * without Content-Length the body runs to the end of the datagram. A datagram
 * whose header section is not closed by an empty line is accepted as if it
 * were (nothing can follow). Streams: Content-Length is mandatory (§18.3,
 * §20.14) and framing is done beforehand by csip_stream_frame().
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "msg/msg_int.h"

_Static_assert(offsetof(csip_hdr, flags) == offsetof(csip_hdr, id) + 2 &&
                   sizeof(((csip_hdr *)0)->id) == 2 && sizeof(((csip_hdr *)0)->flags) == 2,
               "csip_hdr: id and flags are stored as one 32-bit word");

/* Room for this many header entries in the first arena block; more grow it. */
#define INITIAL_HDRS 24u
#define INITIAL_ARENA (INITIAL_HDRS * sizeof(msg_hdr) + 2560u)

uint32_t csip__limit(uint32_t v, uint32_t dflt)
{
    return v ? v : dflt;
}

static void limits_fill(csip_limits *l, const csip_limits *in)
{
    csip_limits z = {0};
    if (!in)
        in = &z;
    l->max_datagram = csip__limit(in->max_datagram, CSIP_DEFAULT_MAX_DATAGRAM);
    l->max_stream_message = csip__limit(in->max_stream_message, CSIP_DEFAULT_MAX_STREAM_MESSAGE);
    l->max_headers = csip__limit(in->max_headers, CSIP_DEFAULT_MAX_HEADERS);
    l->max_line = csip__limit(in->max_line, CSIP_DEFAULT_MAX_LINE);
    l->max_via = csip__limit(in->max_via, CSIP_DEFAULT_MAX_VIA);
    l->max_uri = csip__limit(in->max_uri, CSIP_DEFAULT_MAX_URI);
    l->max_values = csip__limit(in->max_values, CSIP_DEFAULT_MAX_VALUES);
    if (l->max_headers > MSG_NONE - 1)
        l->max_headers = MSG_NONE - 1;
}

/* Computes line and column of `at` (only on the error path). */
static void locate(const char *base, const char *at, csip_parse_error *err)
{
    uint32_t line = 1;
    const char *ls = base;
    for (const char *p = base; p < at; p++)
        if (*p == '\n') {
            line++;
            ls = p + 1;
        }
    err->offset = (size_t)(at - base);
    err->line = line;
    err->column = (uint32_t)(at - ls) + 1;
}

static void error_fill(const char *base, csip_parse_error *err, int code, const char *at,
                       csip_str header, int status, const char *reason)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->code = code;
    err->header = header;
    err->status = status;
    err->reason = reason;
    if (base && at)
        locate(base, at, err);
    else
        err->line = err->column = 1;
}

void csip__msg_error(const csip_msg *m, csip_parse_error *err, int code, const char *at,
                     csip_str header, int status, const char *reason)
{
    /* Responses are never answered: a server drops a malformed one. */
    if (!m->is_request)
        status = 0;
    error_fill(m->buf, err, code, at, header, status, reason);
}

/* Records the first error found while splitting; later ones are ignored. */
static void soft_error(csip_msg *m, int code, const char *at, csip_str header, int status,
                       const char *reason)
{
    if (m->perr)
        return;
    m->perr = code;
    error_fill(m->buf, &m->perr_info, code, at, header, status, reason);
}

static inline uint32_t load32u(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* version_check() past its usual case. */
static int version_check_other(csip_str v)
{
    if (v.len < 7 || csip__lower(v.p[0]) != 's' || csip__lower(v.p[1]) != 'i' ||
        csip__lower(v.p[2]) != 'p' || v.p[3] != '/')
        return -1;
    size_t i = 4, d1 = 0, d2 = 0;
    while (i < v.len && csip__is((unsigned char)v.p[i], CSIP_C_DIGIT))
        i++, d1++;
    if (!d1 || i >= v.len || v.p[i] != '.')
        return -1;
    i++;
    while (i < v.len && csip__is((unsigned char)v.p[i], CSIP_C_DIGIT))
        i++, d2++;
    if (!d2 || i != v.len)
        return -1;
    return (v.len == 7 && v.p[4] == '2' && v.p[6] == '0') ? 1 : 0;
}

/* "SIP/" 1*DIGIT "." 1*DIGIT; returns 1 for SIP/2.0, 0 for another version, -1 if
 * malformed. The usual "SIP/2.0" (any case of SIP) in two word compares. */
static inline int version_check(csip_str v)
{
    if (csip_likely(v.len == 7 && (load32u(v.p) | load32u("\x20\x20\x20\0")) == load32u("sip/") &&
                    load32u(v.p + 3) == load32u("/2.0")))
        return 1;
    return version_check_other(v);
}

static void parse_start_line(csip_msg *m, const char *p, const char *e)
{
    static const csip_str none = {NULL, 0};
    m->start_line = (csip_str){p, (size_t)(e - p)};
    if (e - p >= 4 && csip__lower(p[0]) == 's' && csip__lower(p[1]) == 'i' &&
        csip__lower(p[2]) == 'p' && p[3] == '/') {
        /* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
        m->is_request = false;
        const char *sp = memchr(p, ' ', (size_t)(e - p));
        const char *ve = sp ? sp : e;
        m->version = (csip_str){p, (size_t)(ve - p)};
        int vc = version_check(m->version);
        if (vc < 0) {
            soft_error(m, CSIP_ERR_PARSE_START_LINE, p, none, 0, "Malformed Status-Line");
            return;
        }
        if (vc == 0)
            soft_error(m, CSIP_ERR_PARSE_VERSION, p, none, 0, "SIP Version Not Supported");
        const char *c = ve + 1;
        if (!sp || e - c < 3 || !csip__is((unsigned char)c[0], CSIP_C_DIGIT) ||
            !csip__is((unsigned char)c[1], CSIP_C_DIGIT) ||
            !csip__is((unsigned char)c[2], CSIP_C_DIGIT) || (c + 3 < e && c[3] != ' ')) {
            soft_error(m, CSIP_ERR_PARSE_STATUS_CODE, sp ? c : e, none, 0, "Invalid status code");
            return;
        }
        m->status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
        if (m->status < 100 || m->status > 699) {
            soft_error(m, CSIP_ERR_PARSE_STATUS_CODE, c, none, 0, "Status code out of range");
            return;
        }
        /* RFC 3261 requires the SP before an empty Reason-Phrase; we accept its absence. */
        const char *r = c + 3 < e ? c + 4 : e;
        m->reason = (csip_str){r, (size_t)(e - r)};
        for (const char *q = r; q < e; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                soft_error(m, CSIP_ERR_PARSE_REASON, q, none, 0, "Control character in reason phrase");
                return;
            }
        }
        return;
    }

    /* Request-Line = Method SP Request-URI SP SIP-Version */
    m->is_request = true;
    const char *q = p;
    q = csip__span(q, e, CSIP_C_TOKEN);
    m->method_name = (csip_str){p, (size_t)(q - p)};
    if (q == p || q >= e || *q != ' ') {
        soft_error(m, q == p || (q < e && *q != ' ') ? CSIP_ERR_PARSE_METHOD : CSIP_ERR_PARSE_START_LINE,
                   q, none, 400, q == p || (q < e && *q != ' ') ? "Malformed method" : "Malformed Request-Line");
        return;
    }
    m->method = csip_method_lookup(m->method_name);
    const char *u = q + 1;
    const char *sp = memchr(u, ' ', (size_t)(e - u));
    if (!sp) {
        soft_error(m, CSIP_ERR_PARSE_START_LINE, e, none, 400, "Malformed Request-Line: no SIP-Version");
        return;
    }
    if (sp == u) {
        /* RFC 4475 lwsstart: several SP between elements; we reject rather than guess. */
        soft_error(m, CSIP_ERR_PARSE_START_LINE, u, none, 400,
                   "Extra whitespace in Request-Line");
        return;
    }
    m->ruri_raw = (csip_str){u, (size_t)(sp - u)};
    m->version = (csip_str){sp + 1, (size_t)(e - sp - 1)};
    int vc = version_check(m->version);
    if (vc < 0) {
        /* lwsruri and trws land here: a space inside the URI or after the version. */
        soft_error(m, CSIP_ERR_PARSE_START_LINE, sp + 1, none, 400,
                   memchr(sp + 1, ' ', (size_t)(e - sp - 1)) || (e > sp + 1 && e[-1] == ' ')
                       ? "Whitespace in Request-Line"
                       : "Malformed SIP-Version in Request-Line");
        return;
    }
    if (vc == 0)
        soft_error(m, CSIP_ERR_PARSE_VERSION, sp + 1, none, 505, "SIP Version Not Supported");
    if (m->ruri_raw.len > m->lim.max_uri)
        soft_error(m, CSIP_ERR_LIMIT_URI, u, none, 414, "Request-URI Too Long");
}

static int hdrs_grow(csip_msg *m)
{
    uint32_t ncap = m->cap ? m->cap * 2 : INITIAL_HDRS;
    if (ncap > m->lim.max_headers)
        ncap = m->lim.max_headers; /* reaching cap then means the limit */
    msg_hdr *n = csip__arena_alloc(&m->arena, ncap * sizeof(msg_hdr));
    if (!n)
        return CSIP_ERR_NOMEM;
    if (m->nhdrs)
        memcpy(n, m->hdrs, m->nhdrs * sizeof(msg_hdr));
    m->hdrs = n;
    m->cap = ncap;
    return 0;
}

/* Splits start line, headers and body. Returns 0, or a hard error (message unusable). */
static int msg_split(csip_msg *m, csip_parse_error *err)
{
    static const csip_str none = {NULL, 0};
    const char *p = m->buf, *end = m->buf + m->len;
    uint16_t last[CSIP_HDR__COUNT];

    /* RFC 3261 §7.5: CRLF before the start line is ignored (keep-alives too). */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    if (p == end) {
        error_fill(m->buf, err, CSIP_ERR_PARSE_EMPTY, NULL, none, 0, "Empty message");
        return CSIP_ERR_PARSE_EMPTY;
    }
    const char *start = p;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) {
        error_fill(m->buf, err, CSIP_ERR_PARSE_START_LINE, end, none, 0,
                   "Start line not terminated");
        return CSIP_ERR_PARSE_START_LINE;
    }
    const char *le = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
    if ((size_t)(le - p) > m->lim.max_line) {
        error_fill(m->buf, err, CSIP_ERR_LIMIT_LINE, p, none, 0, "Start line too long");
        return CSIP_ERR_LIMIT_LINE;
    }
    parse_start_line(m, p, le);
    m->start_len = (size_t)(nl + 1 - p);
    p = nl + 1;

    const uint32_t max_line = m->lim.max_line, max_headers = m->lim.max_headers;
    /* The header array in locals: the stores into an entry then need no reload of them. */
    msg_hdr *hdrs = m->hdrs;
    uint32_t nh = m->nhdrs, cap = m->cap;
    /* Set when the line at p is known to start with an octet above SP (the
     * previous line's fold test read it): neither the end nor the empty line. */
    bool name_next = false;
    for (;;) {
        if (!name_next) {
            if (p >= end) {
                if (m->stream) {
                    error_fill(m->buf, err, CSIP_ERR_PARSE_NO_END_OF_HEADERS, end, none, 0,
                               "Header section not terminated");
                    return CSIP_ERR_PARSE_NO_END_OF_HEADERS;
                }
                break; /* datagram without the empty line: tolerated */
            }
            /* the empty line: one compare for the usual name octet (above CR) */
            if (csip_unlikely((unsigned char)*p <= '\r')) {
                if (*p == '\r' && p + 1 < end && p[1] == '\n') {
                    p += 2;
                    break;
                }
                if (*p == '\n') {
                    p++;
                    break;
                }
            }
        }
        const char *ns = p;
        /* The logical line: continuation lines start with SP or HT (folding). */
        const char *colon = NULL, *lend, *next;
#if defined(CSIP__HDR_LOOKUP16)
        /* The first 16 octets give the colon (below) and, with up to three more
         * loads, the line end of most lines without a call; memchr() does the
         * rest. The octets may run past the line (not past the message). */
        unsigned cmask = 0;
        __m128i v = _mm_setzero_si128();
        const char *q = ns;
        nl = NULL;
        if (csip_likely(end - ns >= 16)) {
            const __m128i lf = _mm_set1_epi8('\n');
            v = _mm_loadu_si128((const __m128i *)(const void *)ns);
            cmask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(':')));
            unsigned lmask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf));
            const char *blk = ns;
            if (!lmask && end - ns >= 32) {
                blk = ns + 16;
                lmask = (unsigned)_mm_movemask_epi8(
                    _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)blk), lf));
            }
            if (!lmask && end - ns >= 48) {
                blk = ns + 32;
                lmask = (unsigned)_mm_movemask_epi8(
                    _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)blk), lf));
            }
            if (!lmask && end - ns >= 64) {
                blk = ns + 48;
                lmask = (unsigned)_mm_movemask_epi8(
                    _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)blk), lf));
                /* a longer line: 32 octets a step up to 256 */
                while (!lmask && blk < ns + 224 && end - blk >= 48) {
                    const __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(blk + 16));
                    const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(blk + 32));
                    lmask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, lf)) |
                            (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, lf)) << 16;
                    blk += 16;
                    if (!lmask)
                        blk += 16;
                }
            }
            if (lmask)
                nl = blk + __builtin_ctz(lmask);
            else
                q = blk + 16;
        }
        if (!nl)
            nl = memchr(q, '\n', (size_t)(end - q));
#else
        nl = memchr(ns, '\n', (size_t)(end - ns));
#endif
        /* continuation lines start with SP or HT (folding); the usual next
         * line starts with a name octet, above SP, in one compare */
        if (csip_likely(nl != NULL && nl + 1 < end && (unsigned char)nl[1] > ' ')) {
            lend = nl;
            next = nl + 1;
            name_next = true;
        } else {
            while (nl && nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t'))
                nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1));
            if (nl != NULL) {
                lend = nl;
                next = nl + 1;
            } else {
                lend = next = end;
            }
            name_next = false;
        }
        if ((size_t)(lend - ns) > max_line) {
            error_fill(m->buf, err, CSIP_ERR_LIMIT_LINE, ns, (csip_str){NULL, 0}, 0,
                       "Header line too long");
            return CSIP_ERR_LIMIT_LINE;
        }
        /* The name ends at the first colon (a name holds none), less SP/HT before it.
         * A known name is checked octet by octet by the lookup; any other name
         * must be a token. */
        const char *ne;
        csip_hdr_id id = CSIP_HDR_OTHER;
#if defined(CSIP__HDR_LOOKUP16)
        /* A colon found past the line end is a later line's: this line has none. */
        if (csip_likely(cmask) && ns + __builtin_ctz(cmask) < lend) {
            colon = ns + __builtin_ctz(cmask);
            ne = colon;
            /* only an octet up to SP can be the SP or HT before a colon */
            if (csip_unlikely(ne == ns || (unsigned char)ne[-1] <= ' '))
                while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t'))
                    ne--;
            if (csip_likely(ne > ns))
                id = csip__hdr_lookup16(v, (size_t)(ne - ns));
        } else
#endif
        {
            colon = memchr(ns, ':', (size_t)(lend - ns));
            ne = colon ? colon : ns;
            if (csip_unlikely(ne > ns && (ne[-1] == ' ' || ne[-1] == '\t')))
                while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t'))
                    ne--;
            if (ne > ns)
                id = csip_hdr_lookup(ns, (size_t)(ne - ns));
        }
        /* a known name had its colon and is not empty */
        if (csip_unlikely(id == CSIP_HDR_OTHER)) {
            if (ne > ns && csip__span(ns, ne, CSIP_C_TOKEN) != ne)
                colon = NULL;
            if (!colon || ne == ns) {
                soft_error(m, CSIP_ERR_PARSE_HEADER_LINE, ns, (csip_str){ns, (size_t)(ne - ns)},
                           400,
                           !colon && ne == ns ? "Malformed header line: no colon"
                                              : "Malformed header name");
                p = next;
                continue;
            }
        }
        if (csip_unlikely(nh == cap)) {
            if (nh >= max_headers) {
                error_fill(m->buf, err, CSIP_ERR_LIMIT_HEADERS, ns, none, 0,
                           "Too many header lines");
                return CSIP_ERR_LIMIT_HEADERS;
            }
            m->nhdrs = nh;
            if (hdrs_grow(m) < 0) {
                error_fill(m->buf, err, CSIP_ERR_NOMEM, NULL, none, 0, "Out of memory");
                return CSIP_ERR_NOMEM;
            }
            hdrs = m->hdrs;
            cap = m->cap;
        }
        /* value: trimmed of LWS on both ends (the line break included); the
         * usual CR and single SP are taken without a loop, and only an octet
         * up to SP can be LWS */
        const char *vs = colon + 1, *ve = lend;
        if (csip_likely(ve - vs >= 3 && *vs == ' ' && (unsigned char)vs[1] > ' ' &&
                        ve[-1] == '\r' && (unsigned char)ve[-2] > ' ')) {
            /* ": value\r" with nothing else to trim */
            vs++;
            ve--;
        } else {
            /* the CR first: an empty value then starts where the old order put it */
            if (ve > vs && ve[-1] == '\r')
                ve--;
            if (vs < ve && *vs == ' ')
                vs++;
            if (vs < ve && (unsigned char)*vs <= ' ')
                while (vs < ve && csip__is((unsigned char)*vs, CSIP_C_LWS))
                    vs++;
            if (ve > vs && (unsigned char)ve[-1] <= ' ')
                while (ve > vs && csip__is((unsigned char)ve[-1], CSIP_C_LWS))
                    ve--;
        }
        const uint32_t idx = nh++;
        msg_hdr *h = &hdrs[idx];
        h->h.name = (csip_str){ns, (size_t)(ne - ns)};
        h->h.value = (csip_str){vs, (size_t)(ve - vs)};
        h->h.raw = (csip_str){ns, (size_t)(next - ns)};
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* id and flags (0) in one store */
        const uint32_t idf = (uint32_t)id;
        memcpy(&h->h.id, &idf, sizeof idf);
#else
        h->h.id = (uint16_t)id;
        h->h.flags = 0;
#endif
        h->next = MSG_NONE;
        h->cstate = CACHE_NONE;
        h->spare = 0;
        h->cn = 0;
        if (m->first[id] == MSG_NONE)
            m->first[id] = (uint16_t)idx;
        else
            hdrs[last[id]].next = (uint16_t)idx;
        last[id] = (uint16_t)idx;

        if (csip_unlikely(id == CSIP_HDR_CONTENT_LENGTH)) {
            uint32_t cl;
            int rc = csip_str_to_u32(h->h.value, &cl);
            if (m->has_cl) {
                /* RFC 4475 mcl01: two values leave the framing unknown */
                soft_error(m, CSIP_ERR_PARSE_CONTENT_LENGTH, ns, h->h.name, 400,
                           "Multiple Content-Length headers");
            } else if (rc < 0) {
                soft_error(m, CSIP_ERR_PARSE_CONTENT_LENGTH, vs, h->h.name, 400,
                           rc == CSIP_ERR_RANGE ? "Content-Length out of range"
                                                : "Invalid Content-Length");
            } else {
                m->cl = cl;
            }
            m->has_cl = true;
            h->cstate = rc < 0 ? CACHE_ERR : CACHE_OK;
            if (rc < 0)
                h->c.err = CSIP_ERR_PARSE_CONTENT_LENGTH;
            else
                h->c.u32 = cl;
        }
        p = next;
    }
    m->nhdrs = nh;

    /* Body framing. */
    size_t avail = (size_t)(end - p);
    const csip_hdr *clh = m->first[CSIP_HDR_CONTENT_LENGTH] != MSG_NONE
                              ? &m->hdrs[m->first[CSIP_HDR_CONTENT_LENGTH]].h
                              : NULL;
    if (m->has_cl && m->perr != CSIP_ERR_PARSE_CONTENT_LENGTH) {
        if (m->cl > avail) {
            soft_error(m, CSIP_ERR_PARSE_BODY_TRUNCATED, end, clh ? clh->name : none, 400,
                       "Body shorter than Content-Length");
            m->body = (csip_str){p, avail};
        } else {
            m->body = (csip_str){p, m->cl};
            if (m->stream && m->cl != avail)
                soft_error(m, CSIP_ERR_PARSE_CONTENT_LENGTH, p + m->cl, clh ? clh->name : none,
                           400, "Content-Length does not match the framed message");
        }
    } else {
        if (m->stream && !m->has_cl)
            soft_error(m, CSIP_ERR_PARSE_NO_CONTENT_LENGTH, p, none, 400,
                       "Content-Length required on stream transports");
        m->body = (csip_str){p, avail};
    }
    (void)start; /* the message proper starts at m->start_line.p */
    return 0;
}

/*
 * The blocks of the last messages freed on this thread, kept for the next
 * ones (libc allocator only): a server parses and frees messages all the
 * time, and glibc's malloc and free of a block this size cost about 280
 * instructions a message, more once the heap is fragmented (and the misses
 * of its bins at high rates). Up to MSG_CACHE_N blocks per thread of at most
 * MSG_CACHE_MAX octets each, a stack (the most recently freed, warm in the
 * cache, first), never freed. Not under AddressSanitizer, which should see
 * every message's memory freed and catch a use after it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define MSG_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSG_CACHE 0
#endif
#endif
#ifndef MSG_CACHE
#define MSG_CACHE 1
#endif
#define MSG_CACHE_MAX (16u * 1024u)
#define MSG_CACHE_N 32u
#define MSG_CACHE_LOOK 4u /* blocks looked at from the top for one big enough */
#if MSG_CACHE
static _Thread_local void *msg_cache[MSG_CACHE_N];
static _Thread_local size_t msg_cache_size[MSG_CACHE_N];
static _Thread_local unsigned msg_cache_n;
static _Thread_local bool msg_cache_armed; /* the exit destructor knows this thread */
static pthread_key_t msg_cache_key;
static pthread_once_t msg_cache_once = PTHREAD_ONCE_INIT;
static bool msg_cache_key_ok;

/* A thread that ends gives its blocks back. */
static void msg_cache_release(void *unused)
{
    (void)unused;
    while (msg_cache_n)
        csip__free(NULL, msg_cache[--msg_cache_n]);
}

static void msg_cache_key_init(void)
{
    msg_cache_key_ok = pthread_key_create(&msg_cache_key, msg_cache_release) == 0;
}

/* Whether this thread may keep blocks: only once its exit will free them. */
static bool msg_cache_arm(void)
{
    if (msg_cache_armed)
        return true;
    (void)pthread_once(&msg_cache_once, msg_cache_key_init);
    /* any non-NULL value: the destructor runs only for those */
    msg_cache_armed = msg_cache_key_ok && pthread_setspecific(msg_cache_key, &msg_cache_n) == 0;
    return msg_cache_armed;
}
#endif

/* Serial numbers of messages (csip__msg_answers): one counter for every
 * thread, so that no two messages share one. */
static _Atomic uint64_t msg_serial;

static csip_msg *msg_new(const csip_parse_opts *opts, size_t copy_len)
{
    const csip_mem *mem = opts ? opts->mem : NULL;
    size_t head = (sizeof(csip_msg) + 7u) & ~(size_t)7u;
    size_t buf_room = (copy_len + 8u) & ~(size_t)7u;
    size_t size = head + buf_room + INITIAL_ARENA;
    csip_msg *m = NULL;
#if MSG_CACHE
    for (unsigned k = 0; !mem && k < MSG_CACHE_LOOK && k < msg_cache_n; k++) {
        unsigned i = msg_cache_n - 1 - k;
        if (msg_cache_size[i] >= size) {
            m = msg_cache[i];
            size = msg_cache_size[i];
            unsigned top = --msg_cache_n; /* the top block takes its place */
            msg_cache[i] = msg_cache[top];
            msg_cache_size[i] = msg_cache_size[top];
            break;
        }
    }
#endif
    if (!m) {
        size = (size + 511u) & ~(size_t)511u; /* a size the next messages can reuse */
        m = csip__malloc(mem, size);
    }
    if (!m)
        return NULL;
    /* zeroed around first[], which starts all-MSG_NONE */
    csip__zero(m, offsetof(csip_msg, first));
    memset(m->first, 0xff, sizeof m->first);
    const size_t tail = offsetof(csip_msg, first) + sizeof m->first;
    csip__zero((char *)m + tail, sizeof *m - tail);
    m->mem = mem;
    m->block = size;
    m->serial = atomic_fetch_add_explicit(&msg_serial, 1, memory_order_relaxed) + 1;
    limits_fill(&m->lim, opts ? &opts->limits : NULL);
    csip__arena_init(&m->arena, mem, (char *)m + head + buf_room, size - head - buf_room);
    m->buf = (char *)m + head;
    return m;
}

csip_msg *csip__msg_alloc(const csip_mem *mem, size_t len)
{
    csip_parse_opts opts = {.mem = mem};
    csip_msg *m = msg_new(&opts, len);
    if (m) {
        ((char *)m->buf)[len] = 0;
        m->len = len;
    }
    return m;
}

static int msg_parse(csip_msg *m, csip_msg **out, csip_parse_error *err)
{
    static const csip_str none = {NULL, 0};
    int rc = msg_split(m, err);
    if (rc < 0) {
        csip_msg_free(m);
        *out = NULL;
        return rc;
    }
    *out = m;
    if (m->perr) {
        if (err)
            *err = m->perr_info;
        return m->perr;
    }
    if (err) {
        /* what error_fill(NULL, err, 0, NULL, none, 0, NULL) stores, in place */
        *err = (csip_parse_error){0, 0, 1, 1, none, 0, NULL};
    }
    return 0;
}

static int parse_common(const void *data, size_t len, const csip_parse_opts *opts, bool stream,
                        csip_msg **out, csip_parse_error *err)
{
    static const csip_str none = {NULL, 0};
    *out = NULL;
    uint32_t max = stream ? csip__limit(opts ? opts->limits.max_stream_message : 0,
                                        CSIP_DEFAULT_MAX_STREAM_MESSAGE)
                          : csip__limit(opts ? opts->limits.max_datagram : 0,
                                        CSIP_DEFAULT_MAX_DATAGRAM);
    if (len > max) {
        error_fill(NULL, err, CSIP_ERR_LIMIT_MESSAGE_SIZE, NULL, none, 513, "Message Too Large");
        return CSIP_ERR_LIMIT_MESSAGE_SIZE;
    }
    if (!data && len) {
        error_fill(NULL, err, CSIP_ERR_INVALID_ARG, NULL, none, 0, "No input");
        return CSIP_ERR_INVALID_ARG;
    }
    csip_msg *m = msg_new(opts, len);
    if (!m) {
        error_fill(NULL, err, CSIP_ERR_NOMEM, NULL, none, 0, "Out of memory");
        return CSIP_ERR_NOMEM;
    }
    if (len)
        memcpy((char *)m->buf, data, len);
    ((char *)m->buf)[len] = 0; /* never read by the parser; helps debuggers */
    m->len = len;
    m->stream = stream;
    return msg_parse(m, out, err);
}

int csip_msg_parse(const void *data, size_t len, const csip_parse_opts *opts, csip_msg **out,
                   csip_parse_error *err)
{
    return parse_common(data, len, opts, false, out, err);
}

int csip_msg_parse_stream(const void *data, size_t len, const csip_parse_opts *opts,
                          csip_msg **out, csip_parse_error *err)
{
    return parse_common(data, len, opts, true, out, err);
}

int csip_msg_parse_take(void *data, size_t len, const csip_parse_opts *opts, csip_msg **out,
                        csip_parse_error *err)
{
    static const csip_str none = {NULL, 0};
    const csip_mem *mem = opts ? opts->mem : NULL;
    *out = NULL;
    uint32_t max = csip__limit(opts ? opts->limits.max_datagram : 0, CSIP_DEFAULT_MAX_DATAGRAM);
    if (len > max) {
        csip__free(mem, data);
        error_fill(NULL, err, CSIP_ERR_LIMIT_MESSAGE_SIZE, NULL, none, 513, "Message Too Large");
        return CSIP_ERR_LIMIT_MESSAGE_SIZE;
    }
    csip_msg *m = msg_new(opts, 0);
    if (!m) {
        csip__free(mem, data);
        error_fill(NULL, err, CSIP_ERR_NOMEM, NULL, none, 0, "Out of memory");
        return CSIP_ERR_NOMEM;
    }
    m->owned = data;
    m->buf = data;
    m->len = len;
    return msg_parse(m, out, err);
}

void csip_msg_free(csip_msg *m)
{
    if (!m)
        return;
    const csip_mem *mem = m->mem;
    csip__arena_reset(&m->arena);
    csip__free(mem, m->owned);
#if MSG_CACHE
    if (!mem && m->block <= MSG_CACHE_MAX && msg_cache_n < MSG_CACHE_N && msg_cache_arm()) {
        msg_cache[msg_cache_n] = m;
        msg_cache_size[msg_cache_n++] = m->block;
        return;
    }
#endif
    csip__free(mem, m);
}

/* ------------------------------------------------------------------------- */
/* Stream framing                                                             */

enum { ST_IDLE = 0, ST_HEADERS, ST_BODY };

void csip_stream_init(csip_stream *st)
{
    memset(st, 0, sizeof *st);
}

/* Is [p, e) a Content-Length header line ("Content-Length" or "l", then WS* ':')?
 * Sets *v to the start of the value. */
static bool is_cl_line(const char *p, const char *e, const char **v)
{
    static const char name[] = "content-length";
    size_t n = 0;
    const char *q = p;
    while (q < e && csip__is((unsigned char)*q, CSIP_C_TOKEN))
        q++;
    n = (size_t)(q - p);
    if (!((n == 1 && (p[0] | 0x20) == 'l') ||
          (n == sizeof name - 1 && csip_str_ieq((csip_str){p, n}, (csip_str){name, n}))))
        return false;
    while (q < e && (*q == ' ' || *q == '\t'))
        q++;
    if (q >= e || *q != ':')
        return false;
    *v = q + 1;
    return true;
}

int csip_stream_frame(csip_stream *st, const void *data, size_t len, const csip_limits *limits,
                      size_t *skip, size_t *msg_len, csip_parse_error *err)
{
    static const csip_str none = {NULL, 0};
    const char *buf = data;
    uint32_t max_msg = csip__limit(limits ? limits->max_stream_message : 0,
                                   CSIP_DEFAULT_MAX_STREAM_MESSAGE);
    uint32_t max_line = csip__limit(limits ? limits->max_line : 0, CSIP_DEFAULT_MAX_LINE);
    uint32_t max_headers = csip__limit(limits ? limits->max_headers : 0, CSIP_DEFAULT_MAX_HEADERS);
    *skip = 0;
    *msg_len = 0;

    if (st->state == ST_IDLE) {
        /* RFC 5626 §3.5.1 keep-alives (CRLFCRLF ping, CRLF pong) and stray CRLF. */
        size_t i = 0;
        while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
            i++;
        *skip = i;
        if (i == len)
            return CSIP_ERR_INCOMPLETE;
        buf += i;
        len -= i;
        /* The start line is scanned like a header line below (it just is not a CL). */
        st->state = ST_HEADERS;
        st->scanned = st->line_start = 0;
        st->headers = 0;
        st->cl_seen = 0;
    }

    if (st->state == ST_HEADERS) {
        for (;;) {
            const char *from = buf + st->scanned;
            const char *nl = memchr(from, '\n', len - st->scanned);
            if (!nl) {
                st->scanned = len;
                if (len - st->line_start > max_line || len > max_msg)
                    goto too_long;
                return CSIP_ERR_INCOMPLETE;
            }
            size_t nlo = (size_t)(nl - buf);
            if (nlo >= max_msg)
                goto too_long; /* the header section alone exceeds the message limit */
            if (nlo - st->line_start > max_line)
                goto too_long; /* whether or not the line goes on (folding) */
            const char *ls = buf + st->line_start;
            bool empty = (nl == ls) || (nl == ls + 1 && *ls == '\r');
            if (!empty && st->line_start != 0) {
                /* Need the next octet to know whether the line is folded. */
                if (nlo + 1 >= len) {
                    st->scanned = nlo; /* re-examine this LF when more arrives */
                    return CSIP_ERR_INCOMPLETE;
                }
                if (buf[nlo + 1] == ' ' || buf[nlo + 1] == '\t') {
                    st->scanned = nlo + 1;
                    continue;
                }
            }
            if (empty && st->line_start != 0) {
                st->hdr_end = nlo + 1;
                st->state = ST_BODY;
                break;
            }
            if (st->line_start != 0) {
                if (++st->headers > max_headers) {
                    error_fill(NULL, err, CSIP_ERR_LIMIT_HEADERS, NULL, none, 0,
                               "Too many header lines");
                    st->state = ST_IDLE;
                    return CSIP_ERR_LIMIT_HEADERS;
                }
                const char *v;
                if (is_cl_line(ls, nl, &v)) {
                    csip_str val = csip__trim((csip_str){v, (size_t)(nl - v)});
                    uint32_t n;
                    int rc = csip_str_to_u32(val, &n);
                    if (st->cl_seen || rc < 0) {
                        error_fill(NULL, err, CSIP_ERR_PARSE_CONTENT_LENGTH, NULL,
                                   (csip_str){ls, (size_t)(v - ls - 1)}, 400,
                                   st->cl_seen ? "Multiple Content-Length headers"
                                               : "Invalid Content-Length");
                        err ? (void)(err->offset = (size_t)(v - buf)) : (void)0;
                        st->state = ST_IDLE;
                        return CSIP_ERR_PARSE_CONTENT_LENGTH;
                    }
                    st->cl_seen = 1;
                    st->content_length = n;
                }
            } else if (empty) {
                /* cannot happen: leading CRLF were skipped */
            }
            st->line_start = st->scanned = nlo + 1;
        }
    }

    /* ST_BODY */
    if (!st->cl_seen) {
        error_fill(NULL, err, CSIP_ERR_PARSE_NO_CONTENT_LENGTH, NULL, none, 400,
                   "Content-Length required on stream transports");
        st->state = ST_IDLE;
        return CSIP_ERR_PARSE_NO_CONTENT_LENGTH;
    }
    if (st->content_length > max_msg || st->hdr_end + st->content_length > max_msg) {
        error_fill(NULL, err, CSIP_ERR_LIMIT_MESSAGE_SIZE, NULL, none, 513, "Message Too Large");
        st->state = ST_IDLE;
        return CSIP_ERR_LIMIT_MESSAGE_SIZE;
    }
    size_t total = st->hdr_end + st->content_length;
    if (len < total)
        return CSIP_ERR_INCOMPLETE;
    *msg_len = total;
    csip_stream_init(st);
    return 0;

too_long:
    error_fill(NULL, err, len > max_msg ? CSIP_ERR_LIMIT_MESSAGE_SIZE : CSIP_ERR_LIMIT_LINE, NULL,
               none, len > max_msg ? 513 : 400,
               len > max_msg ? "Message Too Large" : "Header line too long");
    st->state = ST_IDLE;
    return len > max_msg ? CSIP_ERR_LIMIT_MESSAGE_SIZE : CSIP_ERR_LIMIT_LINE;
}

/* ------------------------------------------------------------------------- */
/* Accessors                                                                  */

bool csip_msg_is_request(const csip_msg *m)
{
    return m->is_request;
}

csip_str csip_msg_method_name(const csip_msg *m)
{
    return m->is_request ? m->method_name : (csip_str){NULL, 0};
}

csip_method csip_msg_method(const csip_msg *m)
{
    if (m->is_request)
        return m->method;
    const csip_cseq *cs;
    if (csip_msg_cseq(m, &cs) == 0)
        return cs->method_id;
    return CSIP_METHOD_OTHER;
}

csip_str csip_msg_ruri_raw(const csip_msg *m)
{
    return m->is_request ? m->ruri_raw : (csip_str){NULL, 0};
}

int csip_msg_ruri(const csip_msg *cm, const csip_uri **out)
{
    csip_msg *m = (csip_msg *)cm; /* cache: see the threading note in msg.h */
    if (!m->is_request || !m->ruri_raw.p)
        return CSIP_ERR_NOT_FOUND;
    if (m->ruri_state == CACHE_NONE) {
        if (!m->ruri && !(m->ruri = csip__arena_alloc(&m->arena, sizeof *m->ruri)))
            return CSIP_ERR_NOMEM;
        m->ruri_err = csip_uri_parse(m->ruri_raw.p, m->ruri_raw.len, m->lim.max_uri, m->ruri);
        m->ruri_state = m->ruri_err ? CACHE_ERR : CACHE_OK;
    }
    if (m->ruri_err)
        return m->ruri_err;
    *out = m->ruri;
    return 0;
}

csip_str csip_msg_version(const csip_msg *m)
{
    return m->version;
}

int csip_msg_status(const csip_msg *m)
{
    return m->is_request ? 0 : m->status;
}

csip_str csip_msg_reason(const csip_msg *m)
{
    return m->is_request ? (csip_str){NULL, 0} : m->reason;
}

csip_str csip_msg_body(const csip_msg *m)
{
    return m->body;
}

csip_str csip_msg_raw(const csip_msg *m)
{
    const char *s = m->start_line.p;
    return (csip_str){s, (size_t)(m->body.p + m->body.len - s)};
}

size_t csip_msg_hdr_count(const csip_msg *m)
{
    return m->nhdrs;
}

const csip_hdr *csip_msg_hdr_at(const csip_msg *m, size_t i)
{
    return i < m->nhdrs ? &m->hdrs[i].h : NULL;
}

const csip_hdr *csip_msg_hdr_find(const csip_msg *m, csip_hdr_id id)
{
    if ((unsigned)id >= CSIP_HDR__COUNT || id == CSIP_HDR_OTHER)
        return NULL;
    uint16_t i = m->first[id];
    while (i != MSG_NONE && (m->hdrs[i].h.flags & CSIP_HDRF_DELETED))
        i = m->hdrs[i].next;
    return i == MSG_NONE ? NULL : &m->hdrs[i].h;
}

const csip_hdr *csip_msg_hdr_next(const csip_msg *m, const csip_hdr *prev)
{
    const msg_hdr *h = (const msg_hdr *)prev;
    if (!h || h->h.id == CSIP_HDR_OTHER)
        return NULL;
    uint16_t i = h->next;
    while (i != MSG_NONE && (m->hdrs[i].h.flags & CSIP_HDRF_DELETED))
        i = m->hdrs[i].next;
    return i == MSG_NONE ? NULL : &m->hdrs[i].h;
}

const csip_hdr *csip_msg_hdr_find_name(const csip_msg *m, csip_str name)
{
    csip_hdr_id id = csip_hdr_lookup(name.p, name.len);
    if (id != CSIP_HDR_OTHER)
        return csip_msg_hdr_find(m, id);
    for (uint32_t i = 0; i < m->nhdrs; i++)
        if (!(m->hdrs[i].h.flags & CSIP_HDRF_DELETED) && csip_str_ieq(m->hdrs[i].h.name, name))
            return &m->hdrs[i].h;
    return NULL;
}

size_t csip_msg_hdr_count_id(const csip_msg *m, csip_hdr_id id)
{
    size_t n = 0;
    for (const csip_hdr *h = csip_msg_hdr_find(m, id); h; h = csip_msg_hdr_next(m, h))
        n++;
    return n;
}

void csip__msg_relink(csip_msg *m)
{
    uint16_t last[CSIP_HDR__COUNT];
    memset(m->first, 0xff, sizeof m->first);
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        msg_hdr *h = &m->hdrs[i];
        h->next = MSG_NONE;
        if (m->first[h->h.id] == MSG_NONE)
            m->first[h->h.id] = (uint16_t)i;
        else
            m->hdrs[last[h->h.id]].next = (uint16_t)i;
        last[h->h.id] = (uint16_t)i;
    }
}

void csip__msg_drop_aggs(csip_msg *m)
{
    m->aggs = NULL; /* arena memory: released with the message */
}
