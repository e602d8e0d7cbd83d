/*
 * Internal representation of a parsed message (see docs/internals/msg.md).
 *
 * One allocation holds the csip_msg, a copy of the received bytes and the
 * first arena block; header entries and typed values come from the arena.
 * Views everywhere point into `buf`, or into the arena for edited values.
 */
#ifndef CSIP_MSG_INT_H
#define CSIP_MSG_INT_H

#include "base/base_int.h"
#include "csip/msg.h"

#define MSG_NONE 0xFFFFu

/* csip_hdr.flags */
#define CSIP_HDRF_DELETED 1u /* removed by an edit: not printed, not found */
#define CSIP_HDRF_EDITED 2u  /* value replaced or line added: regenerated on print */

/* Cache state of a typed value. */
enum { CACHE_NONE = 0, CACHE_OK, CACHE_ERR };

typedef struct msg_hdr {
    csip_hdr h;        /* public part: must stay first */
    uint16_t next;     /* index of the next line with the same id, MSG_NONE at the end */
    uint8_t cstate;    /* CACHE_* */
    uint8_t spare;     /* zero: next, cstate, spare and cn are set by one store */
    uint32_t cn;       /* number of cached values */
    union {
        void *ptr; /* array of cn typed values */
        uint32_t u32;
        csip_str str;
        int err; /* cached error when cstate == CACHE_ERR */
    } c;
} msg_hdr;

/* Aggregate of a list header over all its lines (csip_msg_nameaddrs, csip_msg_tokens). */
typedef struct msg_agg {
    struct msg_agg *next;
    uint16_t id;
    int err;
    size_t n;
    const void *arr;
} msg_agg;

struct csip_msg {
    csip__arena arena;
    const csip_mem *mem;
    size_t block; /* octets of the block holding the message (see msg_new) */
    void *owned;         /* caller buffer taken over by csip_msg_parse_take, or NULL */
    const char *buf;     /* message bytes (start line to end of body) */
    size_t len;
    csip_limits lim;

    bool is_request;
    bool stream;         /* parsed as a stream message (Content-Length mandatory) */
    bool ruri_edited;
    bool body_edited;
    bool validated;      /* csip_msg_validate() passed, no edit since */
    csip_method method;  /* requests: method; responses: CSIP_METHOD_OTHER until CSeq is read */
    csip_str method_name;
    csip_str ruri_raw;
    csip_str version;
    int status;
    csip_str reason;
    csip_str start_line; /* without its line break */
    size_t start_len;    /* start line including its line break */

    msg_hdr *hdrs;
    uint32_t nhdrs, cap;
    uint16_t first[CSIP_HDR__COUNT];

    csip_str body;
    bool has_cl;
    uint32_t cl;

    /* First error found while splitting (0 if none) and its details. */
    int perr;
    csip_parse_error perr_info;

    /* Caches */
    uint8_t ruri_state;
    int ruri_err;
    csip_uri *ruri; /* in the arena, parsed on first use */
    msg_agg *aggs;

    /* A number no other message has had in this process (from 1). */
    uint64_t serial;
    /* A response csip_response_for() built: the serial of the request whose
     * Via and CSeq lines it copied, until an edit of a Via or CSeq line (0). */
    uint64_t answers;
};

/* A message block for len octets of message (m->buf, m->len set, NUL after
 * them; no header entries yet), or NULL. */
csip_msg *csip__msg_alloc(const csip_mem *mem, size_t len);

/* Whether resp is a response csip_response_for() built for req and whose Via
 * and CSeq lines nobody edited since: it then matches req's transaction. */
static inline bool csip__msg_answers(const csip_msg *resp, const csip_msg *req)
{
    return req && resp->answers && resp->answers == req->serial;
}

/* Fills a parse error. `at` points into the message (or NULL). */
void csip__msg_error(const csip_msg *m, csip_parse_error *err, int code, const char *at,
                     csip_str header, int status, const char *reason);

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#define CSIP__HDR_LOOKUP16 1
/*
 * csip_hdr_lookup() for the splitter: the name is the first len bytes of v
 * (1 <= len <= 15; the rest of v is ignored). One hash of the whole vector
 * and one vector compare (tools/gen_hdr_lookup.py generates the table).
 */
csip_hdr_id csip__hdr_lookup16(__m128i v, size_t len);
#endif

/* Rebuilds first[]/next links after an edit. */
void csip__msg_relink(csip_msg *m);
/* Drops cached aggregates (after an edit). */
void csip__msg_drop_aggs(csip_msg *m);

/* Parses the line at index i into its typed cache (by its id). */
int csip__hdr_typed(const csip_msg *m, uint32_t i);

/* The limit value with defaults applied. */
uint32_t csip__limit(uint32_t v, uint32_t dflt);

/* Lexing helpers shared by the value parsers (hdr.c, check.c). */
static inline const char *csip__skip_lws(const char *p, const char *end)
{
    while (p < end && csip__is((unsigned char)*p, CSIP_C_LWS))
        p++;
    return p;
}
/*
 * csip__span() for a class that holds every letter, digit, '-' and '.', for
 * values whose runs are usually long (Call-ID, branch and other parameter
 * values): 16 octets a step over letters, digits, '-' and '.' (a step with
 * fewer than 16 octets left loads the 16 before end), the table for any other
 * octet. [lo, end) must be readable, lo <= p: a run that ends a value is then
 * read by vector compares as long as the value has 16 octets.
 */
static inline const char *csip__span_long(const char *lo, const char *p, const char *end,
                                          unsigned cls)
{
#if defined(__SSE2__) && defined(__x86_64__)
    if (end - lo < 16)
        return csip__span(p, end, cls);
    for (;;) {
        const char *q = p;
        unsigned lim = 16, shift = 0;
        if (end - p < 16) {
            if (p >= end)
                return p;
            lim = (unsigned)(end - p);
            shift = 16 - lim;
            q = end - 16;
        }
        const __m128i c = _mm_loadu_si128((const __m128i *)(const void *)q);
        unsigned other = ~(csip__host_mask16(c) >> shift) & ((1u << lim) - 1);
        if (!other) {
            p += lim;
            if (lim < 16)
                return p;
            continue;
        }
        p += __builtin_ctz(other);
        if (!csip__is((unsigned char)*p, cls))
            return p;
        p++;
    }
#else
    (void)lo;
    return csip__span(p, end, cls);
#endif
}

/* Scans a quoted-string starting at the opening quote; returns a pointer past
 * the closing quote, or NULL when unterminated or holding a bare CR/LF. */
const char *csip__scan_quoted(const char *p, const char *end);

#endif
