/*
 * Strict validation of a parsed message and the request checks that a UAS
 * (RFC 3261 §8.2), a proxy (§16.3) or a registrar (§10.3) makes before any
 * processing. Both are pure functions of the message and the options.
 */
#include <string.h>

#include "msg/msg_int.h"

/* Reason phrases naming the fault, one per known header (static strings). */
static const char *const malformed_reason[CSIP_HDR__COUNT] = {
    [CSIP_HDR_OTHER] = "Malformed header",
#define XX(id, name, c) [CSIP_HDR_##id] = "Malformed " name " header",
    CSIP_HDR_MAP(XX)
#undef XX
};
static const char *const missing_reason[CSIP_HDR__COUNT] = {
#define XX(id, name, c) [CSIP_HDR_##id] = "Missing " name " header",
    CSIP_HDR_MAP(XX)
#undef XX
};
static const char *const multiple_reason[CSIP_HDR__COUNT] = {
#define XX(id, name, c) [CSIP_HDR_##id] = "Multiple " name " headers",
    CSIP_HDR_MAP(XX)
#undef XX
};

/* Headers every request and response carries (RFC 3261 §8.1.1, §20); Max-Forwards
 * is left out so that RFC 2543 requests (RFC 4475 inv2543) are still accepted. */
static const csip_hdr_id mandatory[] = {CSIP_HDR_VIA, CSIP_HDR_FROM, CSIP_HDR_TO, CSIP_HDR_CALL_ID,
                                        CSIP_HDR_CSEQ};
/* Headers that may appear at most once. */
static const csip_hdr_id single_hdrs[] = {
    CSIP_HDR_FROM,         CSIP_HDR_TO,         CSIP_HDR_CALL_ID,       CSIP_HDR_CSEQ,
    CSIP_HDR_MAX_FORWARDS, CSIP_HDR_CONTENT_TYPE, CSIP_HDR_EXPIRES,    CSIP_HDR_MIN_EXPIRES,
    CSIP_HDR_RSEQ,         CSIP_HDR_RACK,       CSIP_HDR_EVENT,         CSIP_HDR_SUBSCRIPTION_STATE,
    CSIP_HDR_REFER_TO,     CSIP_HDR_CONTENT_LENGTH,
};

static int fail_at(const csip_msg *m, csip_parse_error *err, int code, const csip_hdr *h,
                   int status, const char *reason)
{
    csip__msg_error(m, err, code, h ? h->value.p : m->start_line.p,
                    h ? h->name : (csip_str){NULL, 0}, status, reason);
    return code;
}

int csip_msg_validate(const csip_msg *m, csip_parse_error *err)
{
    csip_parse_error scratch;
    if (!err)
        err = &scratch;
    if (m->perr) {
        *err = m->perr_info;
        return m->perr;
    }
    /* Passed before and not edited since: the same answer without the work
     * (the transaction layer validates, then csip_check_request() again). */
    if (m->validated) {
        csip__msg_error(m, err, 0, NULL, (csip_str){NULL, 0}, 0, NULL);
        return 0;
    }
    if (m->is_request) {
        const csip_uri *u;
        int rc = csip_msg_ruri(m, &u);
        if (rc == CSIP_ERR_NOMEM)
            return fail_at(m, err, rc, NULL, 500, "Server Internal Error");
        if (rc < 0) {
            csip__msg_error(m, err, rc == CSIP_ERR_LIMIT_URI ? rc : CSIP_ERR_PARSE_REQUEST_URI,
                            m->ruri_raw.p, (csip_str){NULL, 0}, rc == CSIP_ERR_LIMIT_URI ? 414 : 400,
                            rc == CSIP_ERR_LIMIT_URI ? "Request-URI Too Long"
                                                     : "Malformed Request-URI");
            return err->code;
        }
        /* RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 escruri). */
        if (u->headers.p)
            return fail_at(m, err, CSIP_ERR_PARSE_REQUEST_URI, NULL, 400,
                           "Headers not allowed in Request-URI");
    }
    for (size_t i = 0; i < sizeof mandatory / sizeof mandatory[0]; i++)
        if (!csip_msg_hdr_find(m, mandatory[i]))
            return fail_at(m, err, CSIP_ERR_PARSE_MISSING_HEADER, NULL, 400,
                           missing_reason[mandatory[i]]);
    for (size_t i = 0; i < sizeof single_hdrs / sizeof single_hdrs[0]; i++) {
        const csip_hdr *h = csip_msg_hdr_find(m, single_hdrs[i]);
        if (h && csip_msg_hdr_next(m, h))
            return fail_at(m, err, CSIP_ERR_PARSE_DUPLICATE_HEADER, csip_msg_hdr_next(m, h), 400,
                           multiple_reason[single_hdrs[i]]);
    }
    /* Every header we give a meaning to must parse. Date is left out: RFC 4475
     * baddate says a malformed Date should be ignored unless it matters. */
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        const msg_hdr *h = &m->hdrs[i];
        if ((h->h.flags & CSIP_HDRF_DELETED) || h->h.id == CSIP_HDR_DATE)
            continue;
        int rc = csip__hdr_typed(m, i);
        if (rc == CSIP_ERR_NOMEM)
            return fail_at(m, err, rc, NULL, 500, "Server Internal Error");
        if (rc < 0)
            return fail_at(m, err, rc, &h->h, rc == CSIP_ERR_LIMIT_VIA ? 400 : 400,
                           rc == CSIP_ERR_LIMIT_VIA ? "Too many Via values"
                                                    : malformed_reason[h->h.id]);
    }
    size_t nvia;
    int rc = csip_msg_via_count(m, &nvia);
    if (rc < 0)
        return fail_at(m, err, rc, csip_msg_hdr_find(m, CSIP_HDR_VIA), 400, "Too many Via values");
    if (m->is_request) {
        const csip_cseq *cs;
        if (csip_msg_cseq(m, &cs) == 0 && !csip_str_eq(cs->method, m->method_name))
            return fail_at(m, err, CSIP_ERR_PARSE_CSEQ_MISMATCH, csip_msg_hdr_find(m, CSIP_HDR_CSEQ),
                           400, "CSeq method does not match the request method");
    }
    csip__msg_error(m, err, 0, NULL, (csip_str){NULL, 0}, 0, NULL);
    ((csip_msg *)m)->validated = true; /* a cache, as the typed values are */
    return 0;
}

/* ------------------------------------------------------------------------- */

static const char *const default_methods[] = {"ACK",    "BYE",     "CANCEL",   "INFO",  "INVITE",
                                              "MESSAGE", "NOTIFY", "OPTIONS",  "PRACK", "PUBLISH",
                                              "REFER",  "REGISTER", "SUBSCRIBE", "UPDATE", NULL};
static const char *const default_uas_allowed[] = {"ACK",    "BYE",   "CANCEL", "INFO",
                                                  "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
                                                  "PRACK",  "REFER", "SUBSCRIBE", "UPDATE", NULL};
static const char *const default_registrar_allowed[] = {"REGISTER", "OPTIONS", "ACK", "CANCEL",
                                                        NULL};
static const char *const default_types[] = {"application/sdp", NULL};
static const char *const default_schemes[] = {"sip", "sips", NULL};
static const char *const no_extensions[] = {NULL};

static bool in_list(const char *const *list, csip_str s, bool icase)
{
    if (!s.len)
        return false;
    char c0 = icase ? csip__lower(s.p[0]) : s.p[0];
    for (; *list; list++) {
        /* the first octet first: most entries end there, without a strlen */
        if ((icase ? csip__lower((*list)[0]) : (*list)[0]) != c0)
            continue;
        if (icase ? csip_str_ieq_c(s, *list) : csip_str_eq_c(s, *list))
            return true;
    }
    return false;
}

/* "type/subtype" of a media type against a list entry (case-insensitive). */
static bool media_match(const csip_media_type *mt, const char *entry)
{
    const char *slash = strchr(entry, '/');
    if (!slash)
        return false;
    csip_str t = {entry, (size_t)(slash - entry)}, st = csip_str_c(slash + 1);
    bool tw = csip_str_eq_c(mt->type, "*"), sw = csip_str_eq_c(mt->subtype, "*");
    return (tw || csip_str_ieq(mt->type, t)) && (sw || csip_str_ieq(mt->subtype, st));
}

static int refuse(csip_check_result *res, int status, const char *reason, const csip_hdr *h)
{
    res->status = status;
    res->reason = reason;
    if (h)
        res->header = h->name;
    return status;
}

/* 420: collects the option tags of hdr that are not in exts. */
static int check_required(const csip_msg *m, csip_hdr_id id, const char *const *exts,
                          csip_check_result *res)
{
    const csip_str *tags;
    size_t n;
    if (csip_msg_tokens(m, id, &tags, &n) < 0 || n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (in_list(exts, tags[i], true))
            continue;
        if (res->n_unsupported < sizeof res->unsupported / sizeof res->unsupported[0])
            res->unsupported[res->n_unsupported++] = tags[i];
    }
    if (!res->n_unsupported)
        return 0;
    return refuse(res, 420, "Bad Extension", csip_msg_hdr_find(m, id));
}

int csip_check_request(const csip_msg *m, csip_role role, const csip_check_opts *opts,
                       csip_check_result *res)
{
    static const csip_check_opts dflt;
    if (!opts)
        opts = &dflt;
    memset(res, 0, sizeof *res);
    if (!m->is_request)
        return 0;
    const char *const *methods = opts->methods ? opts->methods : default_methods;
    const char *const *exts = opts->extensions ? opts->extensions : no_extensions;
    const char *const *types = opts->content_types ? opts->content_types : default_types;
    const char *const *schemes = opts->schemes ? opts->schemes : default_schemes;
    const char *const *allowed = opts->allowed                 ? opts->allowed
                                 : role == CSIP_ROLE_REGISTRAR ? default_registrar_allowed
                                 : role == CSIP_ROLE_UAS       ? default_uas_allowed
                                                               : methods;

    /* 505 first: nothing else can be trusted in another protocol version. */
    if (m->perr == CSIP_ERR_PARSE_VERSION) {
        res->err = m->perr;
        return refuse(res, 505, "Version Not Supported", NULL);
    }
    bool method_known = in_list(methods, m->method_name, false);
    csip_parse_error perr;
    if (m->perr) {
        res->err = m->perr;
        res->header = m->perr_info.header;
        return refuse(res, m->perr_info.status ? m->perr_info.status : 400, m->perr_info.reason,
                      NULL);
    }
    /* RFC 3261 §8.2.1: a UAS inspects the method first. */
    if (role != CSIP_ROLE_PROXY) {
        if (!method_known)
            return refuse(res, 501, "Not Implemented", NULL);
        if (!in_list(allowed, m->method_name, false))
            return refuse(res, 405, "Method Not Allowed", NULL);
    }
    int rc = csip_msg_validate(m, &perr);
    if (rc < 0) {
        res->err = rc;
        res->header = perr.header;
        /* RFC 4475 mismatch02: an unknown method whose CSeq disagrees gets 501. */
        if (rc == CSIP_ERR_PARSE_CSEQ_MISMATCH && !method_known)
            return refuse(res, 501, "Not Implemented", NULL);
        return refuse(res, perr.status ? perr.status : 400, perr.reason, NULL);
    }
    const csip_uri *ruri;
    (void)csip_msg_ruri(m, &ruri); /* validated above */
    if (!in_list(schemes, ruri->scheme, true))
        return refuse(res, 416, "Unsupported URI Scheme", NULL);

    if (role == CSIP_ROLE_PROXY) {
        /* RFC 3261 §16.3 steps 3 and 5 */
        uint32_t mf;
        if (csip_msg_max_forwards(m, &mf) == 0 && mf == 0)
            return refuse(res, 483, "Too Many Hops", csip_msg_hdr_find(m, CSIP_HDR_MAX_FORWARDS));
        return check_required(m, CSIP_HDR_PROXY_REQUIRE, exts, res);
    }

    /* RFC 3261 §8.2.2.3: Require is not applied to CANCEL and ACK. */
    if (m->method != CSIP_METHOD_ACK && m->method != CSIP_METHOD_CANCEL &&
        check_required(m, CSIP_HDR_REQUIRE, exts, res))
        return res->status;

    if (role == CSIP_ROLE_REGISTRAR && m->method == CSIP_METHOD_REGISTER) {
        /* RFC 3261 §10.3 step 5: the AOR must be a SIP or SIPS URI (RFC 4475 unksm2). */
        const csip_nameaddr *to;
        if (csip_msg_to(m, &to) == 0 && to->uri.kind != CSIP_URI_SIP &&
            to->uri.kind != CSIP_URI_SIPS)
            return refuse(res, 400, "To header is not a SIP or SIPS URI",
                          csip_msg_hdr_find(m, CSIP_HDR_TO));
        return 0;
    }

    /* RFC 3261 §8.2.3: content processing. */
    if (m->body.len && m->method != CSIP_METHOD_ACK) {
        const csip_media_type *mt;
        if (csip_msg_content_type(m, &mt) == 0) {
            bool ok = false;
            for (const char *const *t = types; *t && !ok; t++)
                ok = media_match(mt, *t);
            if (!ok)
                return refuse(res, 415, "Unsupported Media Type",
                              csip_msg_hdr_find(m, CSIP_HDR_CONTENT_TYPE));
        }
        const csip_str *enc;
        size_t nenc;
        if (csip_msg_tokens(m, CSIP_HDR_CONTENT_ENCODING, &enc, &nenc) == 0)
            for (size_t i = 0; i < nenc; i++)
                if (!csip_str_ieq_c(enc[i], "identity"))
                    return refuse(res, 415, "Unsupported Media Type",
                                  csip_msg_hdr_find(m, CSIP_HDR_CONTENT_ENCODING));
    }
    /* RFC 3261 §21.4.7 / RFC 4475 sdp01: an INVITE whose Accept excludes every
     * type we can answer with gets 406. */
    if (m->method == CSIP_METHOD_INVITE) {
        const csip_hdr *acc = csip_msg_hdr_find(m, CSIP_HDR_ACCEPT);
        if (acc && acc->value.len) {
            bool ok = false;
            for (; acc && !ok; acc = csip_msg_hdr_next(m, acc)) {
                csip_str s = acc->value;
                while (s.len && !ok) {
                    const char *c = memchr(s.p, ',', s.len);
                    csip_str item = {s.p, c ? (size_t)(c - s.p) : s.len};
                    const char *semi = memchr(item.p, ';', item.len);
                    if (semi)
                        item.len = (size_t)(semi - item.p);
                    item = csip__trim(item);
                    const char *sl = memchr(item.p, '/', item.len);
                    if (sl) {
                        csip_media_type mt = {{item.p, (size_t)(sl - item.p)},
                                              {sl + 1, item.len - (size_t)(sl + 1 - item.p)},
                                              {NULL, 0}};
                        mt.type = csip__trim(mt.type);
                        mt.subtype = csip__trim(mt.subtype);
                        for (const char *const *t = types; *t && !ok; t++)
                            ok = media_match(&mt, *t);
                    }
                    if (!c)
                        break;
                    s.len -= (size_t)(c + 1 - s.p);
                    s.p = c + 1;
                }
            }
            if (!ok)
                return refuse(res, 406, "Not Acceptable", csip_msg_hdr_find(m, CSIP_HDR_ACCEPT));
        }
    }
    return 0;
}
