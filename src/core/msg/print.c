/*
 * Editing, printing and building messages.
 *
 * Edits never touch the received bytes: an edited line gets a new value in
 * the arena and is flagged; the printer copies unchanged lines byte for byte
 * and regenerates only what was edited.
 */
#include <stdio.h>
#include <string.h>

#include "msg/msg_int.h"

/* After an edit of a line with this id: a response whose Via or CSeq
 * changed no longer answers the request it was built for. */
static void invalidate_id(csip_msg *m, uint16_t id)
{
    if (id == CSIP_HDR_VIA || id == CSIP_HDR_CSEQ)
        m->answers = 0;
}

static void invalidate(csip_msg *m)
{
    m->validated = false;
    csip__msg_relink(m);
    csip__msg_drop_aggs(m);
}

static int dup_value(csip_msg *m, csip_str v, csip_str *out)
{
    /* A value may not hold a line break that is not folding: refuse CR/LF. */
    if (csip__has_crlf(v.p, v.len))
        return CSIP_ERR_INVALID_ARG;
    char *c = csip__arena_memdup(&m->arena, v.p ? v.p : "", v.len);
    if (!c)
        return CSIP_ERR_NOMEM;
    *out = (csip_str){c, v.len};
    return 0;
}

int csip_msg_hdr_insert(csip_msg *m, size_t pos, csip_hdr_id id, csip_str name, csip_str value)
{
    if (pos > m->nhdrs || (unsigned)id >= CSIP_HDR__COUNT)
        return CSIP_ERR_INVALID_ARG;
    bool registry_name = !name.p || !name.len;
    if (registry_name)
        name = csip_str_c(csip_hdr_name(id)); /* static: lives as long as any message */
    if (!name.len || (!registry_name && !csip_is_token(name)))
        return CSIP_ERR_INVALID_ARG;
    if (id == CSIP_HDR_OTHER)
        id = csip_hdr_lookup(name.p, name.len);
    /* Never build a message that our own parser (same limits) would refuse. */
    uint32_t live = 0;
    for (uint32_t i = 0; i < m->nhdrs; i++)
        live += !(m->hdrs[i].h.flags & CSIP_HDRF_DELETED);
    if (live >= m->lim.max_headers || m->nhdrs + 1 >= MSG_NONE)
        return CSIP_ERR_LIMIT_HEADERS;
    csip_str nv, nn;
    int rc = dup_value(m, value, &nv);
    if (rc < 0)
        return rc;
    if (registry_name)
        nn = name;
    else if ((rc = dup_value(m, name, &nn)) < 0)
        return rc;
    if (m->nhdrs == m->cap) {
        uint32_t ncap = m->cap ? m->cap * 2 : 8;
        msg_hdr *n = csip__arena_alloc(&m->arena, ncap * sizeof(msg_hdr));
        if (!n)
            return CSIP_ERR_NOMEM;
        if (m->nhdrs)
            memcpy(n, m->hdrs, m->nhdrs * sizeof(msg_hdr));
        m->hdrs = n;
        m->cap = ncap;
    }
    memmove(&m->hdrs[pos + 1], &m->hdrs[pos], (m->nhdrs - pos) * sizeof(msg_hdr));
    msg_hdr *h = &m->hdrs[pos];
    memset(h, 0, sizeof *h);
    h->h.name = nn;
    h->h.value = nv;
    h->h.id = (uint16_t)id;
    h->h.flags = CSIP_HDRF_EDITED;
    m->nhdrs++;
    invalidate_id(m, (uint16_t)id);
    invalidate(m);
    return 0;
}

int csip_msg_hdr_add(csip_msg *m, csip_hdr_id id, csip_str value, bool first)
{
    if (id == CSIP_HDR_OTHER)
        return CSIP_ERR_INVALID_ARG;
    return csip_msg_hdr_insert(m, first ? 0 : m->nhdrs, id, (csip_str){NULL, 0}, value);
}

int csip_msg_hdr_remove(csip_msg *m, size_t pos)
{
    if (pos >= m->nhdrs || (m->hdrs[pos].h.flags & CSIP_HDRF_DELETED))
        return CSIP_ERR_INVALID_ARG;
    m->hdrs[pos].h.flags |= CSIP_HDRF_DELETED;
    invalidate_id(m, m->hdrs[pos].h.id);
    invalidate(m);
    return 0;
}

int csip_msg_hdr_set(csip_msg *m, size_t pos, csip_str value)
{
    if (pos >= m->nhdrs || (m->hdrs[pos].h.flags & CSIP_HDRF_DELETED))
        return CSIP_ERR_INVALID_ARG;
    csip_str nv;
    int rc = dup_value(m, value, &nv);
    if (rc < 0)
        return rc;
    msg_hdr *h = &m->hdrs[pos];
    h->h.value = nv;
    h->h.flags |= CSIP_HDRF_EDITED;
    invalidate_id(m, h->h.id);
    h->cstate = CACHE_NONE;
    h->cn = 0;
    if (h->h.id == CSIP_HDR_CONTENT_LENGTH) {
        uint32_t v;
        if (csip_str_to_u32(nv, &v) == 0)
            m->cl = v;
    }
    invalidate(m);
    return 0;
}

int csip_msg_via_pop(csip_msg *m)
{
    const csip_hdr *h = csip_msg_hdr_find(m, CSIP_HDR_VIA);
    if (!h)
        return CSIP_ERR_NOT_FOUND;
    size_t pos = (size_t)((const msg_hdr *)h - m->hdrs);
    csip_str rest = h->value;
    csip_via v;
    int rc = csip_via_parse(&rest, &v);
    if (rc < 0)
        return rc;
    if (!rest.len)
        return csip_msg_hdr_remove(m, pos);
    return csip_msg_hdr_set(m, pos, rest);
}

int csip_msg_set_ruri(csip_msg *m, csip_str uri)
{
    if (!m->is_request || !uri.p || uri.len == 0)
        return CSIP_ERR_INVALID_ARG; /* a request line needs a Request-URI */
    for (size_t i = 0; i < uri.len; i++)
        if ((unsigned char)uri.p[i] <= ' ')
            return CSIP_ERR_INVALID_ARG;
    char *c = csip__arena_memdup(&m->arena, uri.p, uri.len);
    if (!c)
        return CSIP_ERR_NOMEM;
    m->ruri_raw = (csip_str){c, uri.len};
    m->ruri_edited = true;
    m->ruri_state = CACHE_NONE;
    m->validated = false;
    return 0;
}

int csip_msg_set_max_forwards(csip_msg *m, uint32_t value)
{
    char buf[20];
    csip_str v = {buf, csip__fmt_u64(buf, value)};
    const csip_hdr *h = csip_msg_hdr_find(m, CSIP_HDR_MAX_FORWARDS);
    if (h)
        return csip_msg_hdr_set(m, (size_t)((const msg_hdr *)h - m->hdrs), v);
    /* RFC 3261 §16.6 step 3: add it; place it after the Via lines for readability */
    size_t pos = 0;
    for (size_t i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].h.id == CSIP_HDR_VIA)
            pos = i + 1;
    return csip_msg_hdr_insert(m, pos, CSIP_HDR_MAX_FORWARDS, (csip_str){NULL, 0}, v);
}

int csip_msg_set_body(csip_msg *m, csip_str content_type, csip_str body)
{
    char *b = csip__arena_memdup(&m->arena, body.p ? body.p : "", body.len);
    if (!b)
        return CSIP_ERR_NOMEM;
    if (content_type.p) {
        const csip_hdr *h = csip_msg_hdr_find(m, CSIP_HDR_CONTENT_TYPE);
        int rc = h ? csip_msg_hdr_set(m, (size_t)((const msg_hdr *)h - m->hdrs), content_type)
                   : csip_msg_hdr_add(m, CSIP_HDR_CONTENT_TYPE, content_type, false);
        if (rc < 0)
            return rc;
    }
    m->body = (csip_str){b, body.len};
    m->body_edited = true;
    m->validated = false;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Printing                                                                   */

typedef struct out {
    char *p;
    size_t cap, len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->p && o->len + n <= o->cap && n)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_s(out *o, csip_str s)
{
    put(o, s.p, s.len);
}

static void put_u32(out *o, uint32_t v)
{
    char b[20];
    put(o, b, csip__fmt_u64(b, v));
}

int csip_msg_print(const csip_msg *m, char *buf, size_t cap)
{
    out o = {buf, cap, 0};
    /* start line */
    if (m->is_request && m->ruri_edited) {
        put_s(&o, m->method_name);
        put(&o, " ", 1);
        put_s(&o, m->ruri_raw);
        put(&o, " ", 1);
        put_s(&o, m->version);
        put(&o, "\r\n", 2);
    } else {
        put(&o, m->start_line.p, m->start_len);
    }
    bool cl_done = false;
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        const msg_hdr *h = &m->hdrs[i];
        if (h->h.flags & CSIP_HDRF_DELETED)
            continue;
        if (h->h.id == CSIP_HDR_CONTENT_LENGTH) {
            /* Content-Length is made equal to the body actually printed; a
             * second one (RFC 4475 mcl01) is dropped. */
            if (cl_done)
                continue;
            cl_done = true;
            uint32_t v;
            if (!(h->h.flags & CSIP_HDRF_EDITED) && csip_str_to_u32(h->h.value, &v) == 0 &&
                v == m->body.len && h->h.raw.p && h->h.raw.p[h->h.raw.len - 1] == '\n') {
                put_s(&o, h->h.raw);
            } else {
                put_s(&o, h->h.name);
                put(&o, ": ", 2);
                put_u32(&o, (uint32_t)m->body.len);
                put(&o, "\r\n", 2);
            }
            continue;
        }
        if ((h->h.flags & CSIP_HDRF_EDITED) || !h->h.raw.len ||
            h->h.raw.p[h->h.raw.len - 1] != '\n') {
            put_s(&o, h->h.name);
            put(&o, ": ", 2);
            put_s(&o, h->h.value);
            put(&o, "\r\n", 2);
        } else {
            put_s(&o, h->h.raw);
        }
    }
    if (!cl_done) {
        put(&o, "Content-Length: ", 16);
        put_u32(&o, (uint32_t)m->body.len);
        put(&o, "\r\n", 2);
    }
    put(&o, "\r\n", 2);
    put_s(&o, m->body);
    if (o.len > (size_t)INT32_MAX)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    if (buf && o.len > cap)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    return (int)o.len;
}

/* ------------------------------------------------------------------------- */
/* Builders                                                                   */

int csip_response_for(const csip_msg *req, int code, const char *reason, csip_str to_tag,
                      const csip_mem *mem, csip_msg **outp)
{
    *outp = NULL;
    if (code < 100 || code > 699 || (req->is_request && req->method == CSIP_METHOD_ACK) ||
        (!req->is_request && code == 100))
        return CSIP_ERR_INVALID_ARG;
    if (!reason)
        reason = csip_status_reason(code);
    for (const char *r = reason; *r; r++)
        if (*r == '\r' || *r == '\n')
            return CSIP_ERR_INVALID_ARG;
    for (size_t i = 0; i < to_tag.len; i++)
        if (!csip__is((unsigned char)to_tag.p[i], CSIP_C_TOKEN))
            return CSIP_ERR_INVALID_ARG;

    /* RFC 3261 §8.2.6.2: a To tag when the request's To has none (not on 100). */
    bool add_tag = false;
    if (code > 100 && to_tag.p && to_tag.len) {
        const csip_nameaddr *to;
        int rc = csip_msg_to(req, &to);
        add_tag = rc == 0 && !to->tag.p;
    }
    /* Which request lines a response copies (RFC 3261 §8.2.6: Via, From, To,
     * Call-ID and CSeq; Timestamp into 100 Trying, §8.2.6.1). */
#define COPIED(h)                                                                                  \
    ((h)->h.id == CSIP_HDR_VIA || (h)->h.id == CSIP_HDR_FROM || (h)->h.id == CSIP_HDR_TO ||        \
     (h)->h.id == CSIP_HDR_CALL_ID || (h)->h.id == CSIP_HDR_CSEQ ||                                \
     ((h)->h.id == CSIP_HDR_TIMESTAMP && code == 100))
    /* Built in place, not printed and parsed again: the lines are the
     * request's, already split, so the response's header entries are known
     * as they are written. One pass measures, one writes. */
    char st[20];
    size_t stn = csip__fmt_u64(st, (uint64_t)code); /* 100..699, checked above */
    size_t rlen = strlen(reason);
    size_t len = 8 + stn + 1 + rlen + 2 + 21;
    uint32_t nh = 1; /* Content-Length */
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const msg_hdr *h = &req->hdrs[i];
        if ((h->h.flags & CSIP_HDRF_DELETED) || !COPIED(h))
            continue;
        len += h->h.name.len + 2 + h->h.value.len + 2;
        if (h->h.id == CSIP_HDR_TO && add_tag)
            len += 5 + to_tag.len;
        nh++;
    }
    csip_msg *m = csip__msg_alloc(mem, len);
    msg_hdr *hdrs = m ? csip__arena_alloc(&m->arena, nh * sizeof(msg_hdr)) : NULL;
    if (!hdrs) {
        csip_msg_free(m);
        return CSIP_ERR_NOMEM;
    }
    char *b = (char *)m->buf;
    out o = {b, len, 0};
    put(&o, "SIP/2.0 ", 8);
    put(&o, st, stn);
    put(&o, " ", 1);
    put(&o, reason, rlen);
    m->is_request = false;
    m->status = code;
    m->version = (csip_str){b, 7};
    m->reason = (csip_str){b + 9 + stn, rlen};
    m->start_line = (csip_str){b, o.len};
    put(&o, "\r\n", 2);
    m->start_len = o.len;
    uint32_t k = 0;
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const msg_hdr *h = &req->hdrs[i];
        if ((h->h.flags & CSIP_HDRF_DELETED) || !COPIED(h))
            continue;
        msg_hdr *d = &hdrs[k++];
        memset(d, 0, sizeof *d);
        const char *line = b + o.len;
        put_s(&o, h->h.name);
        put(&o, ": ", 2);
        const char *v = b + o.len;
        put_s(&o, h->h.value);
        if (h->h.id == CSIP_HDR_TO && add_tag) {
            put(&o, ";tag=", 5);
            put_s(&o, to_tag);
        }
        d->h.name = (csip_str){line, h->h.name.len};
        d->h.value = (csip_str){v, (size_t)(b + o.len - v)};
        put(&o, "\r\n", 2);
        d->h.raw = (csip_str){line, (size_t)(b + o.len - line)};
        d->h.id = h->h.id;
    }
    msg_hdr *d = &hdrs[k++];
    memset(d, 0, sizeof *d);
    const char *line = b + o.len;
    put(&o, "Content-Length: 0\r\n\r\n", 21);
    d->h.name = (csip_str){line, 14};
    d->h.value = (csip_str){line + 16, 1};
    d->h.raw = (csip_str){line, 19};
    d->h.id = CSIP_HDR_CONTENT_LENGTH;
    d->cstate = CACHE_OK;
    d->c.u32 = 0;
    m->has_cl = true;
    m->cl = 0;
    m->body = (csip_str){b + len, 0};
    m->hdrs = hdrs;
    m->nhdrs = m->cap = nh;
    csip__msg_relink(m);
    /* the Via and CSeq lines are the request's (or those of the response
     * to it they came from): csip__msg_answers() */
    m->answers = req->is_request ? req->serial : req->answers;
    *outp = m;
    return 0;
#undef COPIED
}

int csip_request_new(const csip_request_spec *s, const csip_mem *mem, csip_msg **outp)
{
    *outp = NULL;
    if (!s || !csip_is_token(s->method) || !s->ruri.len || !s->via.len || !s->from.len ||
        !s->to.len || !s->call_id.len)
        return CSIP_ERR_INVALID_ARG;
    const csip_str fields[] = {s->ruri, s->via, s->from, s->to, s->call_id, s->contact,
                               s->content_type};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (size_t j = 0; j < fields[i].len; j++)
            if (fields[i].p[j] == '\r' || fields[i].p[j] == '\n')
                return CSIP_ERR_INVALID_ARG;
    if (s->body.len && !s->content_type.len)
        return CSIP_ERR_INVALID_ARG;
    char *buf = NULL;
    size_t len = 0;
    for (int pass = 0; pass < 2; pass++) {
        out o = {buf, len, 0};
        put_s(&o, s->method);
        put(&o, " ", 1);
        put_s(&o, s->ruri);
        put(&o, " SIP/2.0\r\nVia: ", 15);
        put_s(&o, s->via);
        put(&o, "\r\nMax-Forwards: ", 16);
        put_u32(&o, s->max_forwards ? s->max_forwards : 70);
        put(&o, "\r\nFrom: ", 8);
        put_s(&o, s->from);
        put(&o, "\r\nTo: ", 6);
        put_s(&o, s->to);
        put(&o, "\r\nCall-ID: ", 11);
        put_s(&o, s->call_id);
        put(&o, "\r\nCSeq: ", 8);
        put_u32(&o, s->cseq);
        put(&o, " ", 1);
        put_s(&o, s->method);
        put(&o, "\r\n", 2);
        if (s->contact.len) {
            put(&o, "Contact: ", 9);
            put_s(&o, s->contact);
            put(&o, "\r\n", 2);
        }
        if (s->content_type.len) {
            put(&o, "Content-Type: ", 14);
            put_s(&o, s->content_type);
            put(&o, "\r\n", 2);
        }
        put_s(&o, s->extra);
        put(&o, "Content-Length: ", 16);
        put_u32(&o, (uint32_t)s->body.len);
        put(&o, "\r\n\r\n", 4);
        put_s(&o, s->body);
        if (pass == 0) {
            len = o.len;
            buf = csip__malloc(mem, len);
            if (!buf)
                return CSIP_ERR_NOMEM;
        }
    }
    csip_parse_opts opts = {.mem = mem};
    csip_parse_error err;
    int rc = csip_msg_parse_take(buf, len, &opts, outp, &err);
    if (rc < 0) {
        csip_msg_free(*outp);
        *outp = NULL;
        /* Out of memory while parsing is not a bad spec. */
        return rc == CSIP_ERR_NOMEM ? rc : CSIP_ERR_INVALID_ARG;
    }
    return 0;
}
