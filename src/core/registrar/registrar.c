/*
 * The registrar: RFC 3261 §10.3 and RFC 3327 (Path).
 *
 * One request is handled in three phases. First everything that can refuse
 * the request is checked without touching the store (To, domain, Contact,
 * expiry, '*', Call-ID/CSeq ordering, binding count), on a working copy of the
 * AOR's bindings held in a per-request arena. Then the changes are written to
 * the store inside begin/commit, so that they are committed if and only if all
 * of them succeed (§10.3 step 7). Last, the 200 OK is built from the working
 * copy, which is what the store now holds.
 */
#include "csip/registrar.h"

#include "base/base_int.h"

#include <stdio.h>
#include <string.h>

#define REG_DEFAULT_MIN 60u
#define REG_DEFAULT_EXPIRES 3600u
#define REG_DEFAULT_MAX 86400u
#define REG_DEFAULT_BINDINGS 16u
#define REG_DEFAULT_RETRY 5u

struct csip_registrar {
    csip_registrar_opts opts;
    csip_location_store store;
    const csip_mem *mem;
    csip__arena arena; /* per request, reset at the start of each */
};

/* A binding of the working copy. */
typedef enum reg_op { REG_KEEP = 0, REG_PUT, REG_DEL } reg_op;

typedef struct reg_entry {
    csip_binding b; /* views into the arena */
    csip_uri uri;   /* b.contact parsed (valid when uri_ok) */
    bool uri_ok;
    csip_str stored; /* the contact text the store holds (absent: new binding) */
    reg_op op;
    bool touched; /* written by this request already */
} reg_entry;

int csip_registrar_new(const csip_registrar_opts *opts, const csip_location_store *store,
                       const csip_mem *mem, csip_registrar **out)
{
    if (!out || !store || !store->get || !store->put || !store->remove || !store->remove_all)
        return CSIP_ERR_INVALID_ARG;
    csip_registrar_opts o = {0};
    if (opts)
        o = *opts;
    if (!o.min_expires)
        o.min_expires = REG_DEFAULT_MIN;
    if (!o.default_expires)
        o.default_expires = REG_DEFAULT_EXPIRES;
    if (!o.max_expires)
        o.max_expires = REG_DEFAULT_MAX;
    if (!o.max_bindings)
        o.max_bindings = REG_DEFAULT_BINDINGS;
    if (!o.retry_after)
        o.retry_after = REG_DEFAULT_RETRY;
    if (o.min_expires > o.max_expires)
        return CSIP_ERR_INVALID_ARG;
    if (o.default_expires > o.max_expires)
        o.default_expires = o.max_expires;
    csip_registrar *r = csip__malloc(mem, sizeof *r);
    if (!r)
        return CSIP_ERR_NOMEM;
    r->opts = o;
    r->store = *store;
    r->mem = mem;
    csip__arena_init(&r->arena, mem, NULL, 0);
    *out = r;
    return 0;
}

void csip_registrar_free(csip_registrar *reg)
{
    if (!reg)
        return;
    csip__arena_reset(&reg->arena);
    csip__free(reg->mem, reg);
}

int csip_registrar_aor(const csip_uri *uri, char *out, size_t cap)
{
    if (!uri || (uri->kind != CSIP_URI_SIP && uri->kind != CSIP_URI_SIPS))
        return CSIP_ERR_INVALID_ARG;
    const char *scheme = uri->kind == CSIP_URI_SIP ? "sip:" : "sips:";
    size_t sl = strlen(scheme);
    /* The unescaped user is never longer than the escaped one. */
    size_t need = sl + uri->user.len + 1 + uri->host.len + (uri->has_port ? 6 : 0);
    if (cap < need)
        return out && cap ? CSIP_ERR_BUFFER_TOO_SMALL : (int)need;
    size_t n = 0;
    memcpy(out, scheme, sl);
    n += sl;
    if (uri->user.p && uri->user.len) {
        int u = csip_unescape(uri->user, out + n, cap - n);
        if (u < 0)
            return u;
        n += (size_t)u;
        out[n++] = '@';
    }
    for (size_t i = 0; i < uri->host.len; i++)
        out[n++] = csip__lower(uri->host.p[i]);
    if (uri->has_port) {
        char port[8];
        int pl = snprintf(port, sizeof port, ":%u", (unsigned)uri->port);
        memcpy(out + n, port, (size_t)pl);
        n += (size_t)pl;
    }
    return (int)n;
}

static bool domain_served(const csip_registrar *r, csip_str host)
{
    if (!r->opts.domains)
        return true;
    for (const char *const *d = r->opts.domains; *d; d++)
        if (csip_str_ieq_c(host, *d))
            return true;
    return false;
}

static bool alias_of(const csip_registrar *r, csip_str host)
{
    if (r->opts.aliases)
        for (const char *const *d = r->opts.aliases; *d; d++)
            if (csip_str_ieq_c(host, *d))
                return true;
    return false;
}

static csip_str dup_str(csip__arena *a, csip_str s)
{
    if (!s.p)
        return CSIP_STR_NULL;
    char *p = csip__arena_memdup(a, s.p, s.len);
    return p ? (csip_str){p, s.len} : (csip_str){NULL, 0};
}

/*
 * RFC 3261 §8.2.6.2: a response gets a To tag when the request had none. The
 * registrar has no randomness (sans-I/O), and needs none: the tag only has to
 * be stable for one request, so it is a hash of its Call-ID, CSeq and top Via
 * branch, the same for a retransmission.
 */
static csip_str to_tag(const csip_msg *req, char buf[17])
{
    uint64_t h = 0xcbf29ce484222325u;
    csip_str parts[3] = {CSIP_STR_NULL, csip_msg_ruri_raw(req), CSIP_STR_NULL};
    const csip_via *via;
    const csip_cseq *cseq;
    (void)csip_msg_call_id(req, &parts[0]);
    if (csip_msg_via(req, 0, &via) == 0)
        parts[2] = via->branch;
    /* eight octets a step (multiply, fold the high half down), then the tail */
    for (size_t k = 0; k < 3; k++) {
        size_t n = parts[k].p ? parts[k].len : 0, i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, parts[k].p + i, 8);
            h = (h ^ w) * 0x9e3779b97f4a7c15u;
            h ^= h >> 32;
        }
        uint64_t t = 0;
        if (i < n)
            memcpy(&t, parts[k].p + i, n - i);
        h = (h ^ t ^ ((uint64_t)(n - i) << 56)) * 0x9e3779b97f4a7c15u;
        h ^= h >> 29;
    }
    if (csip_msg_cseq(req, &cseq) == 0)
        h ^= cseq->number;
    h *= 0x100000001b3u;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        buf[i] = hex[(h >> (60 - 4 * i)) & 15u];
    buf[16] = 0;
    return (csip_str){buf, 16};
}

/* A failure response, optionally with one extra header. */
static int refuse(csip_registrar *r, const csip_msg *req, int code, const char *reason,
                  csip_hdr_id extra, const char *extra_value, csip_msg **out)
{
    csip_msg *resp;
    char tag[17];
    int rc = csip_response_for(req, code, reason, to_tag(req, tag), r->mem, &resp);
    if (rc)
        return rc;
    if (extra_value) {
        rc = csip_msg_hdr_add(resp, extra, csip_str_c(extra_value), false);
        if (rc) {
            csip_msg_free(resp);
            return rc;
        }
    }
    *out = resp;
    return 0;
}

/* §10.3 step 6: a REGISTER older than what wrote a binding is refused, and
 * the client told when to try again. */
static int out_of_order(csip_registrar *r, const csip_msg *req, csip_msg **out)
{
    char v[16];
    snprintf(v, sizeof v, "%u", (unsigned)r->opts.retry_after);
    return refuse(r, req, 500, "Out of order REGISTER", CSIP_HDR_RETRY_AFTER, v, out);
}

/* The Contact header parameters without expires, as written, without the leading ';'. */
static int params_without_expires(csip__arena *a, csip_str params, csip_str *out)
{
    *out = CSIP_STR_NULL;
    if (!params.p || !params.len)
        return 0;
    char *buf = csip__arena_alloc(a, params.len + 1);
    if (!buf)
        return CSIP_ERR_NOMEM;
    size_t n = 0;
    csip_str rest = params;
    csip_param pm;
    int rc;
    while ((rc = csip_param_next(&rest, &pm)) == 1) {
        if (csip_str_ieq_c(pm.name, "expires"))
            continue;
        const char *end = pm.value.p ? pm.value.p + pm.value.len : pm.name.p + pm.name.len;
        size_t len = (size_t)(end - pm.name.p);
        if (n)
            buf[n++] = ';';
        memcpy(buf + n, pm.name.p, len);
        n += len;
    }
    if (rc < 0)
        return CSIP_ERR_SYNTAX;
    if (n)
        *out = (csip_str){buf, n};
    return 0;
}

/* RFC 1123 date (RFC 3261 §20.17) of a time in seconds since 1970, GMT. */
static void format_date(int64_t t, char out[32])
{
    static const char wk[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (t < 0)
        t = 0;
    int64_t days = t / 86400, secs = t % 86400;
    int wd = (int)(days % 7);
    /* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    /* "Www, DD Mmm YYYY HH:MM:SS GMT" (RFC 1123 as RFC 3261 §20.17 wants) */
    int f[4] = {(int)d, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60)};
    char *o = out;
    memcpy(o, wk[wd], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    *o++ = (char)('0' + f[0] / 10);
    *o++ = (char)('0' + f[0] % 10);
    *o++ = ' ';
    memcpy(o, mon[m - 1], 3);
    o += 3;
    *o++ = ' ';
    if (y < 1000 || y > 9999)
        y = 9999; /* four digits, as the format asks (not reached before 10000) */
    o += csip__fmt_u64(o, (uint64_t)y);
    for (int i = 1; i < 4; i++) {
        *o++ = i == 1 ? ' ' : ':';
        *o++ = (char)('0' + f[i] / 10);
        *o++ = (char)('0' + f[i] % 10);
    }
    memcpy(o, " GMT", 5);
}

static bool has_supported_path(const csip_msg *req)
{
    const csip_str *tok;
    size_t n;
    if (csip_msg_tokens(req, CSIP_HDR_SUPPORTED, &tok, &n) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (csip_str_ieq_c(tok[i], "path"))
            return true;
    return false;
}

/* The Path values joined by ", " (RFC 3327 §5.3: stored with the binding). */
static int join_path(csip__arena *a, const csip_msg *req, csip_str *out)
{
    const csip_nameaddr *pv;
    size_t np;
    *out = CSIP_STR_NULL;
    int rc = csip_msg_nameaddrs(req, CSIP_HDR_PATH, &pv, &np);
    if (rc)
        return rc;
    if (!np)
        return 0;
    size_t len = 0;
    for (size_t i = 0; i < np; i++)
        len += pv[i].raw.len + 2;
    char *buf = csip__arena_alloc(a, len);
    if (!buf)
        return CSIP_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < np; i++) {
        if (i) {
            buf[n++] = ',';
            buf[n++] = ' ';
        }
        memcpy(buf + n, pv[i].raw.p, pv[i].raw.len);
        n += pv[i].raw.len;
    }
    *out = (csip_str){buf, n};
    return 0;
}

/* Writes the working copy's changes, all or none. */
static int apply(csip_registrar *r, csip_str aor, reg_entry *ws, size_t n)
{
    const csip_location_store *s = &r->store;
    int rc = 0;
    if (s->begin && (rc = s->begin(s->user_data, aor)) != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        reg_entry *e = &ws[i];
        if (e->op == REG_KEEP)
            continue;
        /* A binding whose URI is spelt otherwise than the stored one (equal by
         * §19.1.4) replaces it: the old key goes first. */
        if (e->stored.p && (e->op == REG_DEL || !csip_str_eq(e->stored, e->b.contact)))
            rc = s->remove(s->user_data, aor, e->stored);
        if (rc == 0 && e->op == REG_PUT)
            rc = s->put(s->user_data, &e->b);
    }
    if (rc == 0 && s->commit)
        rc = s->commit(s->user_data);
    if (rc != 0 && s->rollback)
        s->rollback(s->user_data);
    return rc;
}

/* The 200 OK: every live binding with its remaining time, Date, Path when supported. */
static int build_ok(csip_registrar *r, const csip_msg *req, const reg_entry *ws, size_t n,
                    int64_t now, csip_str path, csip_msg **out)
{
    csip_msg *resp;
    char tag[17];
    int rc = csip_response_for(req, 200, NULL, to_tag(req, tag), r->mem, &resp);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const csip_binding *b = &ws[i].b;
        if (ws[i].op == REG_DEL || b->expires_at <= now)
            continue;
        size_t cap = b->contact.len + b->params.len + 32;
        char *v = csip__arena_alloc(&r->arena, cap);
        if (!v) {
            rc = CSIP_ERR_NOMEM;
            break;
        }
        size_t k = 0;
        v[k++] = '<';
        memcpy(v + k, b->contact.p, b->contact.len);
        k += b->contact.len;
        v[k++] = '>';
        if (b->params.len) {
            v[k++] = ';';
            memcpy(v + k, b->params.p, b->params.len);
            k += b->params.len;
        }
        memcpy(v + k, ";expires=", 9);
        k += 9;
        k += csip__fmt_u64(v + k, (uint64_t)(b->expires_at - now));
        rc = csip_msg_hdr_add(resp, CSIP_HDR_CONTACT, (csip_str){v, k}, false);
    }
    if (rc == 0 && path.len && has_supported_path(req))
        rc = csip_msg_hdr_add(resp, CSIP_HDR_PATH, path, false);
    if (rc == 0) {
        char date[32];
        format_date(now, date);
        rc = csip_msg_hdr_add(resp, CSIP_HDR_DATE, csip_str_c(date), false);
    }
    if (rc) {
        csip_msg_free(resp);
        return rc;
    }
    *out = resp;
    return 0;
}

/* The expiry of one Contact (§10.3 step 6): expires parameter, else the
 * Expires header, else the default; never above the maximum. */
static uint32_t contact_expires(const csip_registrar *r, const csip_nameaddr *c, bool has_hdr,
                                uint32_t hdr)
{
    uint32_t e = c->has_expires ? c->expires : has_hdr ? hdr : r->opts.default_expires;
    return e > r->opts.max_expires ? r->opts.max_expires : e;
}

static int handle(csip_registrar *r, const csip_msg *req, int64_t now, csip_msg **out)
{
    csip__arena *a = &r->arena;
    const csip_location_store *s = &r->store;

    /* §10.3 step 5 (the AOR): a sip or sips URI, of a domain we serve (step 3). */
    const csip_nameaddr *to;
    if (csip_msg_to(req, &to) != 0)
        return refuse(r, req, 400, "Bad To header", 0, NULL, out);
    if (to->uri.kind != CSIP_URI_SIP && to->uri.kind != CSIP_URI_SIPS)
        return refuse(r, req, 400, "To header is not a SIP or SIPS URI", 0, NULL, out);
    const csip_uri *ruri;
    if (csip_msg_ruri(req, &ruri) == 0 &&
        (ruri->kind == CSIP_URI_SIP || ruri->kind == CSIP_URI_SIPS) &&
        !domain_served(r, ruri->host) && !alias_of(r, ruri->host))
        return refuse(r, req, 404, "Domain not served here", 0, NULL, out);
    if (!domain_served(r, to->uri.host))
        return refuse(r, req, 404, "Not Found (domain not served here)", 0, NULL, out);
    int alen = csip_registrar_aor(&to->uri, NULL, 0);
    if (alen < 0)
        return refuse(r, req, 400, "Bad To URI", 0, NULL, out);
    char *aorbuf = csip__arena_alloc(a, (size_t)alen);
    if (!aorbuf)
        return CSIP_ERR_NOMEM;
    alen = csip_registrar_aor(&to->uri, aorbuf, (size_t)alen);
    if (alen < 0)
        return refuse(r, req, 400, "Bad To URI", 0, NULL, out);
    csip_str aor = {aorbuf, (size_t)alen};

    csip_str call_id;
    const csip_cseq *cseq;
    if (csip_msg_call_id(req, &call_id) != 0 || !call_id.len)
        return refuse(r, req, 400, "Bad Call-ID header", 0, NULL, out);
    if (csip_msg_cseq(req, &cseq) != 0)
        return refuse(r, req, 400, "Bad CSeq header", 0, NULL, out);
    const csip_nameaddr *ct;
    size_t nct;
    if (csip_msg_nameaddrs(req, CSIP_HDR_CONTACT, &ct, &nct) != 0)
        return refuse(r, req, 400, "Bad Contact header", 0, NULL, out);
    uint32_t hdr_expires = 0;
    int erc = csip_msg_expires(req, &hdr_expires);
    if (erc != 0 && erc != CSIP_ERR_NOT_FOUND)
        return refuse(r, req, 400, "Bad Expires header", 0, NULL, out);
    bool has_hdr = erc == 0;
    csip_str path;
    int prc = join_path(a, req, &path);
    if (prc == CSIP_ERR_NOMEM)
        return prc;
    if (prc)
        return refuse(r, req, 400, "Bad Path header", 0, NULL, out);

    /* '*' (§10.3 step 6): alone, and with Expires: 0. */
    bool star = false;
    for (size_t i = 0; i < nct; i++)
        star |= ct[i].star;
    if (star && (nct != 1 || !has_hdr || hdr_expires != 0))
        return refuse(r, req, 400, "Contact * must be alone and with Expires: 0", 0, NULL, out);

    /* §10.3 step 6: 423 when a non-zero interval is shorter than both one hour
     * and our minimum. No binding is changed. */
    for (size_t i = 0; i < nct && !star; i++) {
        uint32_t e = contact_expires(r, &ct[i], has_hdr, hdr_expires);
        if (e > 0 && e < 3600 && e < r->opts.min_expires) {
            char v[16];
            snprintf(v, sizeof v, "%u", (unsigned)r->opts.min_expires);
            return refuse(r, req, 423, NULL, CSIP_HDR_MIN_EXPIRES, v, out);
        }
    }

    /* The working copy: the live bindings, copied out of the store. */
    const csip_binding *cur;
    size_t ncur;
    if (s->get(s->user_data, aor, &cur, &ncur) != 0)
        return refuse(r, req, 500, "Location service unavailable", 0, NULL, out);
    reg_entry *ws = csip__arena_calloc(a, (ncur + nct + 1) * sizeof *ws);
    if (!ws)
        return CSIP_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < ncur; i++) {
        if (cur[i].expires_at <= now)
            continue; /* expired: as if absent (§10.3 step 8 lists none of them) */
        reg_entry *e = &ws[n++];
        e->b = cur[i];
        e->b.aor = aor;
        e->b.contact = dup_str(a, cur[i].contact);
        e->b.params = dup_str(a, cur[i].params);
        e->b.path = dup_str(a, cur[i].path);
        e->b.call_id = dup_str(a, cur[i].call_id);
        if ((cur[i].contact.p && !e->b.contact.p) || (cur[i].params.p && !e->b.params.p) ||
            (cur[i].path.p && !e->b.path.p) || (cur[i].call_id.p && !e->b.call_id.p))
            return CSIP_ERR_NOMEM;
        e->stored = e->b.contact;
        e->uri_ok = csip_uri_parse(e->b.contact.p, e->b.contact.len, 0, &e->uri) == 0;
    }

    /* §10.3 step 6: for each binding, the same Call-ID must come with a higher
     * CSeq; a lower or equal one is out of order (500, nothing changed). */
    if (star) {
        for (size_t i = 0; i < n; i++) {
            if (csip_str_eq(ws[i].b.call_id, call_id) && cseq->number <= ws[i].b.cseq)
                return out_of_order(r, req, out);
            ws[i].op = REG_DEL;
        }
    }
    for (size_t i = 0; i < nct && !star; i++) {
        const csip_nameaddr *c = &ct[i];
        uint32_t e = contact_expires(r, c, has_hdr, hdr_expires);
        reg_entry *m = NULL;
        for (size_t j = 0; j < n && !m; j++)
            if (ws[j].uri_ok && csip_uri_equal(&ws[j].uri, &c->uri))
                m = &ws[j];
        if (m && !m->touched && csip_str_eq(m->b.call_id, call_id) && cseq->number <= m->b.cseq)
            return out_of_order(r, req, out);
        if (!m) {
            if (e == 0)
                continue; /* removing a binding that does not exist */
            m = &ws[n++];
        }
        m->touched = true;
        if (e == 0) {
            m->op = REG_DEL;
            continue;
        }
        m->op = REG_PUT;
        m->b.aor = aor;
        m->b.contact = dup_str(a, c->uri.raw);
        m->b.call_id = dup_str(a, call_id);
        m->b.path = path;
        if (!m->b.contact.p || !m->b.call_id.p)
            return CSIP_ERR_NOMEM;
        int rc = params_without_expires(a, c->params, &m->b.params);
        if (rc == CSIP_ERR_NOMEM)
            return rc;
        if (rc)
            return refuse(r, req, 400, "Bad Contact parameters", 0, NULL, out);
        m->b.cseq = cseq->number;
        m->b.has_q = c->has_q;
        m->b.q = c->has_q ? c->q : 1000;
        m->b.expires_at = now + (int64_t)e;
        m->uri = c->uri;
        m->uri_ok = true;
    }

    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        live += ws[i].op != REG_DEL;
    if (live > r->opts.max_bindings)
        return refuse(r, req, 403, "Too many bindings", 0, NULL, out);

    if (apply(r, aor, ws, n) != 0)
        return refuse(r, req, 500, "Location service unavailable", 0, NULL, out);
    return build_ok(r, req, ws, n, now, path, out);
}

int csip_registrar_handle(csip_registrar *reg, const csip_msg *req, int64_t now, csip_msg **out)
{
    if (!reg || !req || !out || !csip_msg_is_request(req) ||
        csip_msg_method(req) != CSIP_METHOD_REGISTER)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    csip__arena_reset(&reg->arena);
    int rc = handle(reg, req, now, out);
    csip__arena_reset(&reg->arena);
    if (rc && *out) {
        csip_msg_free(*out);
        *out = NULL;
    }
    return rc;
}
