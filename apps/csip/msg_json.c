/*
 * The JSON form of a parsed message for `csip parse`: start line, every
 * header line with its typed value, body length. The format is described in
 * docs/csip-tool.md.
 */
#include <stdio.h>
#include <string.h>

#include "csip/csip.h"
#include "msg_json.h"

/* ------------------------------------------------------------------------- */
/* JSON for parsed values                                                     */

static void error_code(json_out *j, const char *key, int err)
{
    json_key(j, key);
    json_obj_begin(j);
    json_kcstr(j, "error", csip_err_name(err));
    json_kcstr(j, "message", csip_strerror(err));
    json_obj_end(j);
}

/* A view, or null when absent or empty. */
static void kview_nonempty(json_out *j, const char *key, csip_str s)
{
    json_key(j, key);
    if (s.p == NULL || s.len == 0) {
        json_null(j);
    } else {
        json_view(j, s);
    }
}

/*
 * A ';'-separated parameter list as [{"name":…,"value":…|null}, …]; the raw
 * text as a string when it does not split into parameters.
 */
static void emit_params(json_out *j, const char *key, csip_str raw)
{
    csip_str rest = raw;
    csip_param prm;
    int rc = 0;

    /* First pass: only check that the list splits. */
    while (rest.p != NULL && (rc = csip_param_next(&rest, &prm)) > 0) {
    }
    json_key(j, key);
    if (rc < 0) {
        json_view(j, raw);
        return;
    }
    json_arr_begin(j);
    rest = raw;
    while (rest.p != NULL && csip_param_next(&rest, &prm) > 0) {
        json_obj_begin(j);
        json_kview(j, "name", prm.name);
        json_kview(j, "value", prm.value);
        json_obj_end(j);
    }
    json_arr_end(j);
}

/* URI headers (after '?'): hname=hvalue pairs separated by '&', left escaped. */
static void emit_uri_headers(json_out *j, csip_str raw)
{
    json_key(j, "headers");
    json_arr_begin(j);
    if (raw.p != NULL) {
        const char *p = raw.p, *end = raw.p + raw.len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *stop = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            json_obj_begin(j);
            json_kstr(j, "name", p, (size_t)((eq ? eq : stop) - p));
            json_key(j, "value");
            if (eq != NULL) {
                json_str(j, eq + 1, (size_t)(stop - eq - 1));
            } else {
                json_null(j);
            }
            json_obj_end(j);
            p = amp ? amp + 1 : end;
        }
    }
    json_arr_end(j);
}

static const char *host_type_name(csip_host_type t)
{
    switch (t) {
    case CSIP_HOST_NAME:
        return "name";
    case CSIP_HOST_IPV4:
        return "ipv4";
    case CSIP_HOST_IPV6:
        return "ipv6";
    case CSIP_HOST_NONE:
        break;
    }
    return NULL;
}

static void emit_uri(json_out *j, const csip_uri *u)
{
    json_obj_begin(j);
    json_kview(j, "raw", u->raw);
    json_kview(j, "scheme", u->scheme);
    switch (u->kind) {
    case CSIP_URI_SIP:
    case CSIP_URI_SIPS:
        json_kview(j, "user", u->user);
        json_kview(j, "password", u->password);
        json_kview(j, "host", u->host);
        json_kcstr(j, "host_type", host_type_name(u->host_type));
        json_key(j, "port");
        if (u->has_port) {
            json_uint(j, u->port);
        } else {
            json_null(j);
        }
        emit_params(j, "params", u->params);
        emit_uri_headers(j, u->headers);
        break;
    case CSIP_URI_TEL:
        json_kview(j, "number", u->user);
        emit_params(j, "params", u->params);
        break;
    case CSIP_URI_OTHER:
        json_kview(j, "opaque", u->opaque);
        break;
    }
    json_obj_end(j);
}

static void emit_via(json_out *j, const csip_via *v)
{
    json_obj_begin(j);
    json_kview(j, "protocol", v->protocol);
    json_kview(j, "version", v->version);
    json_kview(j, "transport", v->transport);
    json_kview(j, "host", v->host);
    json_key(j, "port");
    if (v->has_port) {
        json_uint(j, v->port);
    } else {
        json_null(j);
    }
    json_kview(j, "branch", v->branch);
    json_kview(j, "received", v->received);
    json_key(j, "rport");
    if (!v->has_rport) {
        json_null(j);
    } else if (v->rport_has_value) {
        json_uint(j, v->rport);
    } else {
        json_bool(j, true);
    }
    json_kview(j, "maddr", v->maddr);
    json_kview(j, "ttl", v->ttl);
    emit_params(j, "params", v->params);
    json_obj_end(j);
}

/* q is in thousandths: 330 → 0.33 (a JSON number). */
static void emit_q(json_out *j, uint16_t q)
{
    char tmp[16];
    unsigned frac = q % 1000u;
    int n;

    if (frac == 0) {
        n = snprintf(tmp, sizeof(tmp), "%u", (unsigned)(q / 1000u));
    } else {
        n = snprintf(tmp, sizeof(tmp), "%u.%03u", (unsigned)(q / 1000u), frac);
        /* Drop trailing zeros of the fraction: 0.500 → 0.5. */
        while (n > 0 && tmp[n - 1] == '0') {
            tmp[--n] = '\0';
        }
    }
    json_number_text(j, tmp);
}

static void emit_nameaddr(json_out *j, const csip_nameaddr *na)
{
    json_obj_begin(j);
    if (na->star) {
        json_kbool(j, "star", true);
        json_obj_end(j);
        return;
    }
    json_kview(j, "display", na->display);
    json_key(j, "uri");
    emit_uri(j, &na->uri);
    json_kview(j, "tag", na->tag);
    json_key(j, "expires");
    if (na->has_expires) {
        json_uint(j, na->expires);
    } else {
        json_null(j);
    }
    json_key(j, "q");
    if (na->has_q) {
        emit_q(j, na->q);
    } else {
        json_null(j);
    }
    emit_params(j, "params", na->params);
    json_obj_end(j);
}

static void emit_auth(json_out *j, const csip_auth *a)
{
    csip_str rest = a->params;
    csip_param prm;

    json_obj_begin(j);
    kview_nonempty(j, "scheme", a->scheme);
    json_key(j, "params");
    json_arr_begin(j);
    while (rest.p != NULL && csip_auth_param_next(&rest, &prm) > 0) {
        json_obj_begin(j);
        json_kview(j, "name", prm.name);
        json_kview(j, "value", prm.value);
        json_obj_end(j);
    }
    json_arr_end(j);
    json_obj_end(j);
}

static void emit_date(json_out *j, const csip_date *d)
{
    static const char *const wkdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    char iso[32];
    int n = snprintf(iso, sizeof(iso), "%04u-%02u-%02uT%02u:%02u:%02uZ", (unsigned)d->year,
                     (unsigned)d->month, (unsigned)d->day, (unsigned)d->hour, (unsigned)d->minute,
                     (unsigned)d->second);

    json_obj_begin(j);
    json_key(j, "iso8601");
    if (n > 0 && (size_t)n < sizeof(iso)) {
        json_str(j, iso, (size_t)n);
    } else {
        json_null(j);
    }
    json_kcstr(j, "weekday", d->wkday < 7 ? wkdays[d->wkday] : NULL);
    json_kint(j, "epoch", d->epoch);
    json_obj_end(j);
}

/* ------------------------------------------------------------------------- */
/* Header lines                                                               */

/* How the typed value of a header is found and shown. */
typedef enum hdr_kind {
    HK_NONE = 0,  /* raw value only */
    HK_VIA,       /* list, csip_via_parse per line */
    HK_ADDR_LIST, /* list, csip_nameaddr_parse per line */
    HK_ADDR_ONE,  /* single, accessor (From, To, Refer-To) */
    HK_ADDR_LINE, /* single, csip_nameaddr_parse per line (Reply-To, Referred-By) */
    HK_TOKENS,    /* list, csip_msg_tokens mapped back to the line */
    HK_AUTH,      /* one per line, csip_msg_auth */
    HK_CALL_ID,
    HK_CSEQ,
    HK_U32, /* single number: Max-Forwards, Content-Length, Expires, … */
    HK_CTYPE,
    HK_EVENT,
    HK_SUBSTATE,
    HK_RACK,
    HK_RSEQ,
    HK_RETRY_AFTER,
    HK_DATE,
    HK_TIMESTAMP,
} hdr_kind;

static hdr_kind header_kind(csip_hdr_id id, unsigned *flags)
{
    *flags = CSIP_NAMEADDR_LIST;
    switch (id) {
    case CSIP_HDR_VIA:
        return HK_VIA;
    case CSIP_HDR_FROM:
    case CSIP_HDR_TO:
    case CSIP_HDR_REFER_TO:
        return HK_ADDR_ONE;
    case CSIP_HDR_CONTACT:
        *flags |= CSIP_NAMEADDR_STAR;
        return HK_ADDR_LIST;
    case CSIP_HDR_ROUTE:
    case CSIP_HDR_RECORD_ROUTE:
    case CSIP_HDR_PATH:
    case CSIP_HDR_SERVICE_ROUTE:
        *flags |= CSIP_NAMEADDR_NEED_ANGLE;
        return HK_ADDR_LIST;
    case CSIP_HDR_REPLY_TO:
    case CSIP_HDR_REFERRED_BY:
        *flags = 0;
        return HK_ADDR_LINE;
    case CSIP_HDR_P_ASSERTED_IDENTITY:
    case CSIP_HDR_P_PREFERRED_IDENTITY:
        return HK_ADDR_LIST;
    case CSIP_HDR_REQUIRE:
    case CSIP_HDR_SUPPORTED:
    case CSIP_HDR_PROXY_REQUIRE:
    case CSIP_HDR_UNSUPPORTED:
    case CSIP_HDR_ALLOW:
    case CSIP_HDR_ALLOW_EVENTS:
    case CSIP_HDR_CONTENT_ENCODING:
    case CSIP_HDR_PRIVACY:
        return HK_TOKENS;
    case CSIP_HDR_WWW_AUTHENTICATE:
    case CSIP_HDR_AUTHORIZATION:
    case CSIP_HDR_PROXY_AUTHENTICATE:
    case CSIP_HDR_PROXY_AUTHORIZATION:
    case CSIP_HDR_AUTHENTICATION_INFO:
        return HK_AUTH;
    case CSIP_HDR_CALL_ID:
        return HK_CALL_ID;
    case CSIP_HDR_CSEQ:
        return HK_CSEQ;
    case CSIP_HDR_MAX_FORWARDS:
    case CSIP_HDR_CONTENT_LENGTH:
    case CSIP_HDR_EXPIRES:
    case CSIP_HDR_MIN_EXPIRES:
        return HK_U32;
    case CSIP_HDR_RSEQ:
        return HK_RSEQ;
    case CSIP_HDR_CONTENT_TYPE:
        return HK_CTYPE;
    case CSIP_HDR_EVENT:
        return HK_EVENT;
    case CSIP_HDR_SUBSCRIPTION_STATE:
        return HK_SUBSTATE;
    case CSIP_HDR_RACK:
        return HK_RACK;
    case CSIP_HDR_RETRY_AFTER:
        return HK_RETRY_AFTER;
    case CSIP_HDR_DATE:
        return HK_DATE;
    case CSIP_HDR_TIMESTAMP:
        return HK_TIMESTAMP;
    default:
        return HK_NONE;
    }
}

/* True when the view s starts inside the value of header line h. */
static bool in_line(const csip_hdr *h, csip_str s)
{
    const char *b = h->value.p;
    return b != NULL && s.p != NULL && s.p >= b && s.p < b + h->value.len;
}

/* Skips whitespace (folded line breaks included) at the front of *s. */
static void skip_lws(csip_str *s)
{
    while (s->len > 0 &&
           (s->p[0] == ' ' || s->p[0] == '\t' || s->p[0] == '\r' || s->p[0] == '\n')) {
        s->p++;
        s->len--;
    }
}

/* Every Via value of one line. @return 0 or the parse error. */
static int emit_via_line(json_out *j, const csip_hdr *h)
{
    csip_str s = h->value;
    int rc = 0;

    json_key(j, "parsed");
    json_arr_begin(j);
    skip_lws(&s);
    while (s.len > 0) {
        csip_via v;
        size_t before = s.len;
        rc = csip_via_parse(&s, &v);
        if (rc < 0) {
            break;
        }
        emit_via(j, &v);
        if (s.len >= before) {
            rc = CSIP_ERR_PARSE_HEADER_VALUE; /* no progress: never loop forever */
            break;
        }
        skip_lws(&s);
    }
    json_arr_end(j);
    return rc < 0 ? rc : 0;
}

/* Every name-addr value of one line. */
static int emit_addr_line(json_out *j, const csip_hdr *h, unsigned flags)
{
    csip_str s = h->value;
    int rc = 0;

    json_key(j, "parsed");
    json_arr_begin(j);
    skip_lws(&s);
    while (s.len > 0) {
        csip_nameaddr na;
        size_t before = s.len;
        rc = csip_nameaddr_parse(&s, flags, &na);
        if (rc < 0) {
            break;
        }
        emit_nameaddr(j, &na);
        if (s.len >= before) {
            rc = CSIP_ERR_PARSE_HEADER_VALUE;
            break;
        }
        skip_lws(&s);
    }
    json_arr_end(j);
    return rc < 0 ? rc : 0;
}

/* The single name-addr of a line (a header with no accessor of its own). */
static int emit_addr_single_line(json_out *j, const csip_hdr *h)
{
    csip_str s = h->value;
    csip_nameaddr na;

    skip_lws(&s);
    int rc = csip_nameaddr_parse(&s, 0, &na);
    if (rc < 0) {
        return rc;
    }
    skip_lws(&s);
    if (s.len > 0) {
        return CSIP_ERR_PARSE_HEADER_VALUE; /* more than one value */
    }
    json_key(j, "parsed");
    emit_nameaddr(j, &na);
    return 0;
}

/* The tokens of a list header that come from this line. */
static int emit_tokens_line(json_out *j, const csip_msg *msg, const csip_hdr *h)
{
    const csip_str *toks = NULL;
    size_t n = 0;
    int rc = csip_msg_tokens(msg, (csip_hdr_id)h->id, &toks, &n);

    if (rc < 0) {
        return rc;
    }
    json_key(j, "parsed");
    json_arr_begin(j);
    for (size_t k = 0; k < n; k++) {
        if (in_line(h, toks[k])) {
            json_view(j, toks[k]);
        }
    }
    json_arr_end(j);
    return 0;
}

/* The position of h among the lines with the same id (0 = first). */
static size_t same_id_index(const csip_msg *msg, const csip_hdr *h)
{
    size_t k = 0;
    for (const csip_hdr *x = csip_msg_hdr_find(msg, (csip_hdr_id)h->id); x != NULL && x != h;
         x = csip_msg_hdr_next(msg, x)) {
        k++;
    }
    return k;
}

static int u32_accessor(const csip_msg *msg, csip_hdr_id id, uint32_t *v)
{
    switch (id) {
    case CSIP_HDR_MAX_FORWARDS:
        return csip_msg_max_forwards(msg, v);
    case CSIP_HDR_CONTENT_LENGTH:
        return csip_msg_content_length(msg, v);
    case CSIP_HDR_EXPIRES:
        return csip_msg_expires(msg, v);
    case CSIP_HDR_MIN_EXPIRES:
        return csip_msg_min_expires(msg, v);
    default:
        return CSIP_ERR_NOT_FOUND;
    }
}

/*
 * The typed value of a single-valued header, from the library's accessor.
 * Only the first line of such a header carries it: that is the line the
 * library acts on (a duplicate is a validation error for most of them).
 */
static int emit_single(json_out *j, const csip_msg *msg, const csip_hdr *h, hdr_kind kind)
{
    csip_hdr_id id = (csip_hdr_id)h->id;
    int rc = 0;

    if (csip_msg_hdr_find(msg, id) != h) {
        return 0;
    }
    switch (kind) {
    case HK_ADDR_ONE: {
        const csip_nameaddr *na = NULL;
        rc = id == CSIP_HDR_FROM ? csip_msg_from(msg, &na)
             : id == CSIP_HDR_TO ? csip_msg_to(msg, &na)
                                 : csip_msg_refer_to(msg, &na);
        if (rc == 0) {
            json_key(j, "parsed");
            emit_nameaddr(j, na);
        }
        break;
    }
    case HK_CALL_ID: {
        csip_str cid;
        rc = csip_msg_call_id(msg, &cid);
        if (rc == 0) {
            json_kview(j, "parsed", cid);
        }
        break;
    }
    case HK_CSEQ: {
        const csip_cseq *c = NULL;
        rc = csip_msg_cseq(msg, &c);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kuint(j, "number", c->number);
            json_kview(j, "method", c->method);
            json_obj_end(j);
        }
        break;
    }
    case HK_U32:
    case HK_RSEQ: {
        uint32_t v = 0;
        rc = kind == HK_RSEQ ? csip_msg_rseq(msg, &v) : u32_accessor(msg, id, &v);
        if (rc == 0) {
            json_kuint(j, "parsed", v);
        }
        break;
    }
    case HK_CTYPE: {
        const csip_media_type *mt = NULL;
        rc = csip_msg_content_type(msg, &mt);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kview(j, "type", mt->type);
            json_kview(j, "subtype", mt->subtype);
            emit_params(j, "params", mt->params);
            json_obj_end(j);
        }
        break;
    }
    case HK_EVENT: {
        const csip_event *ev = NULL;
        rc = csip_msg_event(msg, &ev);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kview(j, "package", ev->package);
            json_kview(j, "id", ev->id);
            emit_params(j, "params", ev->params);
            json_obj_end(j);
        }
        break;
    }
    case HK_SUBSTATE: {
        const csip_substate *ss = NULL;
        rc = csip_msg_subscription_state(msg, &ss);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kview(j, "state", ss->state);
            json_kview(j, "reason", ss->reason);
            json_key(j, "expires");
            if (ss->has_expires) {
                json_uint(j, ss->expires);
            } else {
                json_null(j);
            }
            json_key(j, "retry_after");
            if (ss->has_retry_after) {
                json_uint(j, ss->retry_after);
            } else {
                json_null(j);
            }
            emit_params(j, "params", ss->params);
            json_obj_end(j);
        }
        break;
    }
    case HK_RACK: {
        const csip_rack *ra = NULL;
        rc = csip_msg_rack(msg, &ra);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kuint(j, "rseq", ra->rseq);
            json_kuint(j, "cseq", ra->cseq);
            json_kview(j, "method", ra->method);
            json_obj_end(j);
        }
        break;
    }
    case HK_RETRY_AFTER: {
        const csip_retry_after *ra = NULL;
        rc = csip_msg_retry_after(msg, &ra);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kuint(j, "seconds", ra->seconds);
            json_kview(j, "comment", ra->comment);
            json_key(j, "duration");
            if (ra->has_duration) {
                json_uint(j, ra->duration);
            } else {
                json_null(j);
            }
            emit_params(j, "params", ra->params);
            json_obj_end(j);
        }
        break;
    }
    case HK_DATE: {
        const csip_date *d = NULL;
        rc = csip_msg_date(msg, &d);
        if (rc == 0) {
            json_key(j, "parsed");
            emit_date(j, d);
        }
        break;
    }
    case HK_TIMESTAMP: {
        const csip_timestamp *ts = NULL;
        rc = csip_msg_timestamp(msg, &ts);
        if (rc == 0) {
            json_key(j, "parsed");
            json_obj_begin(j);
            json_kview(j, "value", ts->value);
            json_kview(j, "delay", ts->delay);
            json_obj_end(j);
        }
        break;
    }
    default:
        break;
    }
    return rc;
}

static void emit_header(json_out *j, const csip_msg *msg, const csip_hdr *h)
{
    csip_hdr_id id = (csip_hdr_id)h->id;
    unsigned flags;
    hdr_kind kind = header_kind(id, &flags);
    int rc = 0;

    json_obj_begin(j);
    json_kview(j, "name", h->name);
    json_kcstr(j, "id", id == CSIP_HDR_OTHER ? NULL : csip_hdr_name(id));
    json_kview(j, "value", h->value);
    switch (kind) {
    case HK_NONE:
        break;
    case HK_VIA:
        rc = emit_via_line(j, h);
        break;
    case HK_ADDR_LIST:
        rc = emit_addr_line(j, h, flags);
        break;
    case HK_ADDR_LINE:
        rc = emit_addr_single_line(j, h);
        break;
    case HK_TOKENS:
        rc = emit_tokens_line(j, msg, h);
        break;
    case HK_AUTH: {
        const csip_auth *a = NULL;
        rc = csip_msg_auth(msg, id, same_id_index(msg, h), &a);
        if (rc == 0) {
            json_key(j, "parsed");
            emit_auth(j, a);
        }
        break;
    }
    default:
        rc = emit_single(j, msg, h, kind);
        break;
    }
    if (rc < 0) {
        error_code(j, "parse_error", rc);
    }
    json_obj_end(j);
}

/* ------------------------------------------------------------------------- */
/* Messages                                                                   */

void msg_json_members(json_out *j, const csip_msg *msg)
{
    if (csip_msg_is_request(msg)) {
        const csip_uri *ruri = NULL;
        int rc = csip_msg_ruri(msg, &ruri);
        json_kcstr(j, "type", "request");
        json_kview(j, "method", csip_msg_method_name(msg));
        json_key(j, "request_uri");
        if (rc == 0) {
            emit_uri(j, ruri);
        } else {
            json_obj_begin(j);
            json_kview(j, "raw", csip_msg_ruri_raw(msg));
            error_code(j, "parse_error", rc);
            json_obj_end(j);
        }
        json_kview(j, "version", csip_msg_version(msg));
    } else {
        json_kcstr(j, "type", "response");
        json_kview(j, "version", csip_msg_version(msg));
        json_kint(j, "status", csip_msg_status(msg));
        json_kview(j, "reason", csip_msg_reason(msg));
    }
    json_key(j, "headers");
    json_arr_begin(j);
    size_t n = csip_msg_hdr_count(msg);
    for (size_t i = 0; i < n; i++) {
        const csip_hdr *h = csip_msg_hdr_at(msg, i);
        if (h != NULL) {
            emit_header(j, msg, h);
        }
    }
    json_arr_end(j);
    json_kuint(j, "body_length", csip_msg_body(msg).len);
}
