/*
 * csip parse: reads a SIP message (a datagram, or a TCP byte stream with
 * --stream), checks it as a server would, and prints it as JSON.
 *
 * Datagram mode follows RFC 3261 §18.3: octets after the body announced by
 * Content-Length are ignored. Stream mode frames messages by Content-Length
 * (mandatory on streams) and skips RFC 5626 CRLF keep-alives between them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "csip/csip.h"
#include "json.h"

/* Largest input read (a stream file may hold many messages). */
#define PARSE_MAX_INPUT (16u * 1024u * 1024u)

typedef struct parse_args {
    const char *path; /* NULL or "-" for standard input */
    bool stream;
    bool pretty;
    bool has_role;
    csip_role role;
} parse_args;

static void parse_usage(FILE *f)
{
    fprintf(f, "usage: csip parse [--role uas|proxy|registrar] [--stream] [--pretty] [FILE|-]\n"
               "\n"
               "Parses FILE (standard input when absent or '-') and prints it as JSON.\n"
               "\n"
               "  --role ROLE  also make the checks a UAS, proxy or registrar makes before\n"
               "               processing a request (RFC 3261 sections 8.2, 16.3, 10.3)\n"
               "  --stream     the input is a TCP byte stream: frame each message by its\n"
               "               Content-Length and print a JSON array, one object per message\n"
               "  --pretty     indent the JSON\n"
               "\n"
               "Exit status: 0 when every message is accepted, 1 when one is rejected (the\n"
               "JSON then holds an error object), 2 for a usage or I/O error.\n");
}

/* ------------------------------------------------------------------------- */
/* Arguments and input                                                        */

static int parse_role(const char *s, csip_role *out)
{
    if (strcmp(s, "uas") == 0) {
        *out = CSIP_ROLE_UAS;
    } else if (strcmp(s, "proxy") == 0) {
        *out = CSIP_ROLE_PROXY;
    } else if (strcmp(s, "registrar") == 0) {
        *out = CSIP_ROLE_REGISTRAR;
    } else {
        return -1;
    }
    return 0;
}

static const char *role_name(csip_role role)
{
    switch (role) {
    case CSIP_ROLE_UAS:
        return "uas";
    case CSIP_ROLE_PROXY:
        return "proxy";
    case CSIP_ROLE_REGISTRAR:
        return "registrar";
    }
    return "";
}

/* @return -1 after printing why (usage error), 1 for --help, 0 to go on. */
static int parse_argv(int argc, char **argv, parse_args *a)
{
    bool options = true;

    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
        } else if (options && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            return 1;
        } else if (options && strcmp(arg, "--stream") == 0) {
            a->stream = true;
        } else if (options && strcmp(arg, "--pretty") == 0) {
            a->pretty = true;
        } else if (options && (strcmp(arg, "--role") == 0 || strncmp(arg, "--role=", 7) == 0)) {
            const char *v = arg[6] == '=' ? arg + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (v == NULL || parse_role(v, &a->role) != 0) {
                fprintf(stderr, "csip parse: --role takes uas, proxy or registrar\n");
                return -1;
            }
            a->has_role = true;
        } else if (options && arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "csip parse: unknown option '%s'\n", arg);
            return -1;
        } else if (a->path != NULL) {
            fprintf(stderr, "csip parse: only one input file may be given\n");
            return -1;
        } else {
            a->path = arg;
        }
    }
    return 0;
}

/* Reads the whole input. @return 0, or -1 after printing why. */
static int read_input(const char *path, char **out, size_t *out_len)
{
    bool use_stdin = path == NULL || strcmp(path, "-") == 0;
    const char *shown = use_stdin ? "standard input" : path;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > PARSE_MAX_INPUT + 1) {
                ncap = PARSE_MAX_INPUT + 1;
            }
            if (ncap - len == 0) {
                fprintf(stderr, "csip parse: %s: input larger than %u bytes\n", shown,
                        PARSE_MAX_INPUT);
                rc = -1;
                break;
            }
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                fprintf(stderr, "csip parse: out of memory\n");
                rc = -1;
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "csip parse: error reading %s\n", shown);
                rc = -1;
            }
            break;
        }
    }
    if (!use_stdin) {
        fclose(f);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* JSON for parsed values                                                     */

static void emit_error_code(json_out *j, const char *key, int err)
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
    case CSIP_HDR_P_ASSERTED_IDENTITY:
    case CSIP_HDR_P_PREFERRED_IDENTITY:
        return HK_ADDR_LIST;
    case CSIP_HDR_REQUIRE:
    case CSIP_HDR_SUPPORTED:
    case CSIP_HDR_PROXY_REQUIRE:
    case CSIP_HDR_UNSUPPORTED:
    case CSIP_HDR_ALLOW:
    case CSIP_HDR_ALLOW_EVENTS:
    case CSIP_HDR_ACCEPT_ENCODING:
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
        emit_error_code(j, "parse_error", rc);
    }
    json_obj_end(j);
}

/* ------------------------------------------------------------------------- */
/* Messages and errors                                                        */

static void emit_message(json_out *j, const csip_msg *msg)
{
    json_obj_begin(j);
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
            emit_error_code(j, "parse_error", rc);
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

/* Computes the 1-based line and column of offset off in buf. */
static void line_column(const char *buf, size_t len, size_t off, uint64_t *line, uint64_t *col)
{
    const char *p = buf;
    const char *end = buf + (off < len ? off : len);
    const char *start = buf;

    *line = 1;
    while (p < end) {
        if (*p++ == '\n') {
            (*line)++;
            start = p;
        }
    }
    *col = (uint64_t)(end - start) + 1;
}

/* The error object of a parse or validation failure (fields from csip_parse_error). */
static void emit_parse_error(json_out *j, const csip_parse_error *e, int code)
{
    int err = e->code != 0 ? e->code : code;

    json_obj_begin(j);
    json_kcstr(j, "error", csip_err_name(err));
    json_kcstr(j, "message", csip_strerror(err));
    json_kuint(j, "offset", e->offset);
    json_kuint(j, "line", e->line);
    json_kuint(j, "column", e->column);
    json_kview(j, "header", e->header);
    json_key(j, "status");
    if (e->status != 0) {
        json_int(j, e->status);
    } else {
        json_null(j);
    }
    json_kcstr(j, "reason",
               e->reason != NULL ? e->reason
                                 : (e->status != 0 ? csip_status_reason(e->status) : NULL));
}

static void emit_role_refusal(json_out *j, const csip_check_result *r, csip_role role)
{
    size_t nu = r->n_unsupported;

    if (nu > sizeof(r->unsupported) / sizeof(r->unsupported[0])) {
        nu = sizeof(r->unsupported) / sizeof(r->unsupported[0]);
    }
    json_obj_begin(j);
    json_kcstr(j, "error", "ROLE_CHECK");
    json_kcstr(j, "role", role_name(role));
    json_kint(j, "status", r->status);
    json_kcstr(j, "reason", r->reason != NULL ? r->reason : csip_status_reason(r->status));
    json_key(j, "header");
    if (r->header.p != NULL && r->header.len > 0) {
        json_view(j, r->header);
    } else {
        json_null(j);
    }
    json_key(j, "unsupported");
    json_arr_begin(j);
    for (size_t i = 0; i < nu; i++) {
        json_view(j, r->unsupported[i]);
    }
    json_arr_end(j);
    json_kcstr(j, "cause", r->err != 0 ? csip_err_name(r->err) : NULL);
}

/*
 * Validates a parsed message (and makes the role checks) and writes its JSON
 * object, or the error object when it is refused. The object is left open so
 * that the caller may add members.
 * @return true when the message is accepted.
 */
static bool check_and_emit(json_out *j, const csip_msg *msg, const parse_args *a)
{
    csip_parse_error verr;
    memset(&verr, 0, sizeof(verr));
    int vrc = csip_msg_validate(msg, &verr);

    if (a->has_role && csip_msg_is_request(msg)) {
        csip_check_opts opts;
        csip_check_result res;
        memset(&opts, 0, sizeof(opts));
        memset(&res, 0, sizeof(res));
        int status = csip_check_request(msg, a->role, &opts, &res);
        /*
         * A 400 caused by validation is shown with csip_msg_validate()'s
         * details (position, header); every other refusal, including the
         * role-specific answers to an invalid request (505, 501), as is.
         */
        bool validation_400 = status == 400 && res.err != 0 && vrc != 0;
        if (status != 0 && !validation_400) {
            emit_role_refusal(j, &res, a->role);
            return false;
        }
    }
    if (vrc != 0) {
        emit_parse_error(j, &verr, vrc);
        return false;
    }
    emit_message(j, msg);
    return true;
}

/* ------------------------------------------------------------------------- */
/* Modes                                                                      */

static bool run_datagram(json_out *j, const char *buf, size_t len, const parse_args *a)
{
    csip_msg *msg = NULL;
    csip_parse_error perr;
    bool ok;

    memset(&perr, 0, sizeof(perr));
    int rc = csip_msg_parse(buf, len, NULL, &msg, &perr);
    if (rc != 0) {
        emit_parse_error(j, &perr, rc);
        json_obj_end(j);
        csip_msg_free(msg);
        return false;
    }
    ok = check_and_emit(j, msg, a);
    if (ok) {
        /* RFC 3261 §18.3: octets after the announced body are discarded. */
        size_t used = csip_msg_raw(msg).len;
        json_kuint(j, "ignored_octets", used < len ? len - used : 0);
    }
    json_obj_end(j);
    csip_msg_free(msg);
    return ok;
}

/* The error object for a stream that ends inside a message. */
static void emit_incomplete(json_out *j, const char *msg_start, size_t avail, size_t at)
{
    uint64_t line, col;

    line_column(msg_start, avail, avail, &line, &col);
    json_obj_begin(j);
    json_kcstr(j, "error", csip_err_name(CSIP_ERR_INCOMPLETE));
    json_kcstr(j, "message", csip_strerror(CSIP_ERR_INCOMPLETE));
    json_kuint(j, "offset", avail);
    json_kuint(j, "line", line);
    json_kuint(j, "column", col);
    json_knull(j, "header");
    json_knull(j, "status");
    json_knull(j, "reason");
    json_kuint(j, "message_offset", at);
    json_obj_end(j);
}

static bool run_stream(json_out *j, const char *buf, size_t len, const parse_args *a)
{
    csip_limits limits;
    csip_stream st;
    size_t pos = 0;
    bool ok = true;

    memset(&limits, 0, sizeof(limits));
    json_arr_begin(j);
    while (pos < len && ok) {
        size_t skip = 0, mlen = 0;
        csip_parse_error perr;
        csip_msg *msg = NULL;

        memset(&perr, 0, sizeof(perr));
        csip_stream_init(&st);
        int rc = csip_stream_frame(&st, buf + pos, len - pos, &limits, &skip, &mlen, &perr);
        if (skip > len - pos) {
            skip = len - pos;
        }
        pos += skip;
        if (rc == CSIP_ERR_INCOMPLETE) {
            if (pos < len) {
                /* The input ends inside a message: a stream must wait for more. */
                emit_incomplete(j, buf + pos, len - pos, pos);
                ok = false;
            }
            break;
        }
        if (rc == 0 && (mlen == 0 || mlen > len - pos)) {
            rc = CSIP_ERR_FATAL; /* cannot happen with a correct framer */
        }
        if (rc == 0) {
            rc = csip_msg_parse_stream(buf + pos, mlen, NULL, &msg, &perr);
        }
        if (rc != 0) {
            emit_parse_error(j, &perr, rc);
            json_kuint(j, "message_offset", pos);
            json_obj_end(j);
            csip_msg_free(msg);
            ok = false;
            break;
        }
        ok = check_and_emit(j, msg, a);
        json_kuint(j, "message_offset", pos);
        json_obj_end(j);
        csip_msg_free(msg);
        pos += mlen;
    }
    json_arr_end(j);
    return ok;
}

int cmd_parse(int argc, char **argv)
{
    parse_args args;
    char *buf = NULL;
    size_t len = 0;
    json_out j;

    int rc = parse_argv(argc, argv, &args);
    if (rc != 0) {
        parse_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (read_input(args.path, &buf, &len) != 0) {
        return CLI_EXIT_USAGE;
    }
    json_init(&j, args.pretty);
    bool ok = args.stream ? run_stream(&j, buf, len, &args) : run_datagram(&j, buf, len, &args);
    free(buf);
    if (json_flush(&j, stdout) != 0) {
        fprintf(stderr, "csip parse: %s\n",
                json_failed(&j) ? "out of memory or output too large" : "write error");
        json_free(&j);
        return CLI_EXIT_USAGE;
    }
    json_free(&j);
    return ok ? CLI_EXIT_OK : CLI_EXIT_REJECT;
}
