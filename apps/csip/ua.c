/*
 * The csip tool: what the network commands share (see ua.h).
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "ua.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ua_opts_init(ua_opts *o)
{
    memset(o, 0, sizeof *o);
    o->transport = -1;
    o->timeout_ms = UA_DEFAULT_TIMEOUT_MS;
}

int ua_opts_parse(ua_opts *o, const char *cmd, int argc, char **argv, int *i)
{
    const char *s = argv[*i];
    bool has_value = *i + 1 < argc;
    if (strcmp(s, "-v") == 0) {
        o->verbose = true;
    } else if (strcmp(s, "--insecure") == 0) {
        o->insecure = true;
    } else if (strcmp(s, "--transport") == 0 && has_value) {
        o->transport = csip_transport_lookup(csip_str_c(argv[++*i]));
        if (o->transport != CSIP_TP_UDP && o->transport != CSIP_TP_TCP &&
            o->transport != CSIP_TP_TLS) {
            fprintf(stderr, "%s: --transport must be udp, tcp or tls\n", cmd);
            return -1;
        }
    } else if (strcmp(s, "--timeout") == 0 && has_value) {
        if (!ua_parse_seconds(argv[++*i], &o->timeout_ms)) {
            fprintf(stderr, "%s: --timeout needs a positive number of seconds\n", cmd);
            return -1;
        }
    } else if (strcmp(s, "--ca-file") == 0 && has_value) {
        o->ca_file = argv[++*i];
    } else {
        return 0;
    }
    return 1;
}

int ua_parse_args(ua_opts *o, const char *cmd, int argc, char **argv, void (*usage)(FILE *f),
                  const char **user, const char **password,
                  int (*more)(void *ctx, int argc, char **argv, int *i), void *ctx,
                  const char **const *pos, size_t npos, bool dash)
{
    ua_opts_init(o);
    size_t given = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has_value = i + 1 < argc;
        int k = ua_opts_parse(o, cmd, argc, argv, &i);
        if (k < 0)
            return CLI_EXIT_USAGE;
        if (k > 0)
            continue;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (user && strcmp(s, "--user") == 0 && has_value) {
            *user = argv[++i];
        } else if (password && strcmp(s, "--password") == 0 && has_value) {
            *password = argv[++i];
        } else if ((k = more(ctx, argc, argv, &i)) < 0) {
            return CLI_EXIT_USAGE;
        } else if (k == 0) {
            if ((s[0] == '-' && (s[1] != '\0' || !dash)) || given == npos) {
                usage(stderr);
                return CLI_EXIT_USAGE;
            }
            *pos[given++] = s;
        }
    }
    if (given < npos) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int ua_main(size_t size, int (*run)(void *app, int argc, char **argv), int argc, char **argv)
{
    void *app = calloc(1, size);
    if (!app)
        return CLI_EXIT_USAGE;
    int rc = run(app, argc, argv);
    free(app);
    return rc;
}

bool ua_is_sip_uri(const char *text, csip_uri *out, bool header_safe)
{
    return csip_uri_parse(text, strlen(text), 0, out) == 0 &&
           (out->kind == CSIP_URI_SIP || out->kind == CSIP_URI_SIPS) && out->host.len > 0 &&
           !(header_safe && strpbrk(text, "<>\"\r\n "));
}

int ua_sender_parse_arg(ua_sender *s, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    bool has_value = *i + 1 < argc;
    if (strcmp(a, "--from") == 0 && has_value)
        s->from_text = argv[++*i];
    else if (strcmp(a, "--proxy") == 0 && has_value)
        s->proxy_text = argv[++*i];
    else
        return 0;
    return 1;
}

int ua_sender_prepare(ua_sender *s, const char *cmd, const char *default_from, bool header_safe,
                      ua_locate *loc, int transport)
{
    if (!s->from_text)
        s->from_text = default_from;
    if (!ua_is_sip_uri(s->from_text, &s->from, true)) {
        fprintf(stderr, "%s: --from '%s' is not a sip: or sips: URI with a host\n", cmd,
                s->from_text);
        return CLI_EXIT_USAGE;
    }
    if (!s->user && s->from.user.len) {
        int n = csip_unescape(s->from.user, s->user_buf, sizeof s->user_buf - 1);
        if (n < 0 || memchr(s->user_buf, 0, (size_t)n)) {
            fprintf(stderr, "%s: the From user part is too long or holds %%00; give --user\n", cmd);
            return CLI_EXIT_USAGE;
        }
        s->user_buf[n] = 0;
        s->user = s->user_buf;
    }
    s->where = s->proxy_text ? s->proxy_text : s->target_text;
    if (!ua_is_sip_uri(s->where, &s->next, header_safe)) {
        fprintf(stderr, "%s: --proxy '%s' is not a sip: or sips: URI\n", cmd, s->where);
        return CLI_EXIT_USAGE;
    }
    int rc = ua_locate_init(loc, cmd, &s->next, transport);
    if (rc != 0)
        return rc;
    ua_random_token(s->call_id, 24);
    ua_random_token(s->from_tag, 12);
    return 0;
}

int ua_sender_headers(const ua_sender *s, const ua *u, ua_sender_hdrs *h)
{
    if (ua_via(u, h->via, sizeof h->via) < 0)
        return -1;
    snprintf(h->from, sizeof h->from, "<%.*s>;tag=%s", (int)s->from.raw.len, s->from.raw.p,
             s->from_tag);
    snprintf(h->to, sizeof h->to, "<%.*s>", (int)s->target.raw.len, s->target.raw.p);
    return 0;
}

void ua_sender_spec(ua_sender *s, const ua_sender_hdrs *h, csip_str method, csip_request_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->method = method;
    spec->ruri = s->target.raw;
    spec->via = csip_str_c(h->via);
    spec->from = csip_str_c(h->from);
    spec->to = csip_str_c(h->to);
    spec->call_id = csip_str_c(s->call_id);
    spec->cseq = ++s->cseq;
}

bool ua_parse_seconds(const char *s, uint64_t *ms)
{
    uint64_t whole = 0, frac = 0, scale = 1000;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9' && whole < 100000)
        whole = whole * 10 + (uint64_t)(*p++ - '0');
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(*p - '0') * scale;
            }
            p++;
        }
    }
    if (*p != '\0' || whole >= 100000)
        return false;
    *ms = whole * 1000 + frac;
    return *ms > 0;
}

void ua_random_token(char *out, size_t n)
{
    char b[32];
    size_t k = 0;
    while (k < n) {
        if (csip_txn_new_branch(b, sizeof b) < 0)
            break;
        for (size_t i = 7; i < 29 && k < n; i++)
            if ((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'z'))
                out[k++] = b[i];
    }
    out[k] = 0;
}

void ua_print_raw(const char *p, size_t n)
{
    fwrite(p, 1, n, stdout);
    if (n < 2 || p[n - 1] != '\n')
        fputc('\n', stdout);
    fputc('\n', stdout);
}

/* ------------------------------------------------------------------------- */
/* Locating the server */

int ua_locate_init(ua_locate *l, const char *cmd, const csip_uri *uri, int forced_tp)
{
    memset(l, 0, sizeof *l);
    l->uri = *uri;
    bool sips = uri->kind == CSIP_URI_SIPS;
    int tp = forced_tp;
    if (tp < 0 && uri->transport.p) {
        tp = csip_transport_lookup(uri->transport);
        if (tp != CSIP_TP_UDP && tp != CSIP_TP_TCP && tp != CSIP_TP_TLS) {
            fprintf(stderr, "%s: transport '%.*s' is not supported\n", cmd, (int)uri->transport.len,
                    uri->transport.p);
            return CLI_EXIT_USAGE;
        }
    }
    if (tp < 0 && sips)
        tp = CSIP_TP_TLS;
    if (sips && tp != CSIP_TP_TLS) {
        fprintf(stderr, "%s: a sips: URI needs TLS (RFC 3261 §26.2.2)\n", cmd);
        return CLI_EXIT_USAGE;
    }

    /* Numeric hosts and localhost need no DNS. */
    csip_target t;
    memset(&t, 0, sizeof t);
    bool located = true;
    if (uri->host_type == CSIP_HOST_IPV4 || uri->host_type == CSIP_HOST_IPV6) {
        (void)csip_addr_set_ip(&t.addr, uri->host);
    } else if (csip_str_ieq_c(uri->host, "localhost")) {
        (void)csip_addr_set_ip(&t.addr, CSIP_STR("127.0.0.1"));
    } else {
        located = false;
    }
    if (located) {
        if (tp < 0)
            tp = CSIP_TP_UDP;
        t.addr.transport = (uint8_t)tp;
        t.addr.port = uri->has_port ? uri->port : tp == CSIP_TP_TLS ? 5061 : 5060;
        snprintf(t.host, sizeof t.host, "%.*s", (int)uri->host.len, uri->host.p);
        l->targets[0] = t;
        l->n = 1;
    }
    l->transport = tp;
    return 0;
}

static void on_resolved(void *user_data, int status, const csip_target *targets, size_t n)
{
    ua_locate *l = user_data;
    if (status == 0 && n == 0)
        status = CSIP_ERR_NOT_FOUND;
    for (size_t i = 0; status == 0 && i < n && l->n < UA_MAX_TARGETS; i++) {
        l->targets[l->n] = targets[i];
        if (l->transport >= 0)
            l->targets[l->n].addr.transport = (uint8_t)l->transport;
        l->n++;
    }
    if (status != CSIP_ERR_CANCELLED && l->done)
        l->done(l->user_data, status);
}

int ua_locate_start(ua_locate *l, uv_loop_t *loop, void (*done)(void *user_data, int status),
                    void *user_data)
{
    l->done = done;
    l->user_data = user_data;
    int rc = l->resolver ? 0 : csip_resolver_new(loop, NULL, &l->resolver);
    if (rc == 0)
        rc = csip_resolve(l->resolver, &l->uri, on_resolved, l);
    return rc;
}

void ua_locate_free(ua_locate *l)
{
    l->done = NULL;
    if (l->resolver)
        csip_resolver_free(l->resolver);
    l->resolver = NULL;
}

/* ------------------------------------------------------------------------- */
/* The user agent */

static void on_check(uv_check_t *c)
{
    ua_sync(c->data);
    fflush(stdout);
}

void ua_init(ua *u, uv_loop_t *loop, const char *cmd, const ua_opts *opts)
{
    memset(u, 0, sizeof *u);
    u->loop = loop;
    u->cmd = cmd;
    u->opts = opts;
    uv_check_init(loop, &u->check);
    u->check.data = u;
    uv_check_start(&u->check, on_check);
    uv_unref((uv_handle_t *)&u->check);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* The local address that reaches dst: loopback for loopback, else the
 * address the kernel picks for a UDP socket connected to dst. */
static bool local_ip_for(uv_loop_t *loop, const csip_addr *dst, csip_addr *out)
{
    memset(out, 0, sizeof *out);
    out->family = dst->family;
    if (dst->family == 4 && dst->ip[0] == 127) {
        out->ip[0] = 127;
        out->ip[3] = 1;
        return true;
    }
    static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (dst->family == 6 && memcmp(dst->ip, lo6, 16) == 0) {
        out->ip[15] = 1;
        return true;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (dst->family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(dst->port ? dst->port : 5060);
        memcpy(&s4->sin_addr, dst->ip, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(dst->port ? dst->port : 5060);
        memcpy(&s6->sin6_addr, dst->ip, 16);
    }
    bool ok = false;
    uv_udp_t *h = malloc(sizeof *h);
    if (!h || uv_udp_init(loop, h) != 0) {
        free(h);
        return false;
    }
    if (uv_udp_connect(h, (const struct sockaddr *)&ss) == 0) {
        struct sockaddr_storage me;
        int len = (int)sizeof me;
        if (uv_udp_getsockname(h, (struct sockaddr *)&me, &len) == 0) {
            if (me.ss_family == AF_INET)
                memcpy(out->ip, &((struct sockaddr_in *)&me)->sin_addr, 4);
            else
                memcpy(out->ip, &((struct sockaddr_in6 *)&me)->sin6_addr, 16);
            ok = true;
        }
    }
    uv_close((uv_handle_t *)h, free_handle);
    return ok;
}

/* "192.0.2.1" or "[2001:db8::1]" */
static void host_text(const csip_addr *a, char *out, size_t cap)
{
    csip_addr t = *a;
    t.port = 1;
    char tmp[64];
    if (csip_addr_format(&t, tmp, sizeof tmp) < 0) {
        snprintf(out, cap, "invalid");
        return;
    }
    *strrchr(tmp, ':') = 0;
    snprintf(out, cap, "%s", tmp);
}

void ua_close(ua *u)
{
    if (u->ep)
        csip_endpoint_free(u->ep); /* ends a live transaction (DESTROYED) */
    u->ep = NULL;
    free(u->sent);
    u->sent = NULL;
    u->sent_len = 0;
}

void ua_shutdown(ua *u)
{
    ua_close(u);
    if (!uv_is_closing((uv_handle_t *)&u->check))
        uv_close((uv_handle_t *)&u->check, NULL);
}

int ua_open(ua *u, const csip_target *t, const csip_txn_callbacks *cb, void *user_data)
{
    ua_close(u);
    csip_addr local;
    if (!local_ip_for(u->loop, &t->addr, &local))
        return 1;
    char spec_udp[96], spec_tcp[96];
    host_text(&local, u->local_host, sizeof u->local_host);
    snprintf(spec_udp, sizeof spec_udp, "udp:%s:0", u->local_host);
    snprintf(spec_tcp, sizeof spec_tcp, "tcp:%s:0", u->local_host);
    const char *listen[] = {spec_udp, spec_tcp, NULL};
    csip_endpoint_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.listen = listen;
    eo.tls_ca_file = u->opts->ca_file;
    eo.tls_no_verify = u->opts->insecure;
    int rc = csip_endpoint_new(u->loop, &eo, cb, user_data, &u->ep);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot open sockets on %s: %s\n", u->cmd, u->local_host,
                csip_strerror(rc));
        u->ep = NULL;
        return 2;
    }
    u->target = *t;
    csip_transport tp = (csip_transport)t->addr.transport;
    /* Where we listen for this transport (TLS: our TCP port; responses come
     * back on the connection anyway). */
    const csip_addr *lu = csip_endpoint_local(u->ep, 0), *lt = csip_endpoint_local(u->ep, 1);
    u->local_port = tp == CSIP_TP_UDP ? lu->port : lt->port;
    char hp[64];
    (void)csip_addr_format(&t->addr, hp, sizeof hp);
    snprintf(u->peer, sizeof u->peer, "%s %s", csip_transport_name(tp), hp);
    u->seen_retrans = u->seen_received = 0;
    return 0;
}

int ua_via(const ua *u, char *out, size_t cap)
{
    char branch[32];
    int rc = csip_txn_new_branch(branch, sizeof branch);
    if (rc < 0)
        return rc;
    int n = snprintf(out, cap, "SIP/2.0/%s %s:%u;branch=%s;rport",
                     csip_transport_name((csip_transport)u->target.addr.transport), u->local_host,
                     (unsigned)u->local_port, branch);
    return n > 0 && (size_t)n < cap ? 0 : CSIP_ERR_BUFFER_TOO_SMALL;
}

const char *ua_transport_param(const ua *u)
{
    switch ((csip_transport)u->target.addr.transport) {
    case CSIP_TP_TCP:
        return "tcp";
    case CSIP_TP_TLS:
        return "tls";
    default:
        return "udp";
    }
}

/* " CSeq N Call-ID 1a2b3c4d" of a message. */
static void ids_text(const ua *u, const csip_msg *m, char *out, size_t cap)
{
    csip_str cid = CSIP_STR_NULL;
    const csip_cseq *cseq;
    int n = 0;
    out[0] = 0;
    if (u->show_cseq && csip_msg_cseq(m, &cseq) == 0) {
        if (u->show_method && !csip_msg_is_request(m))
            n = snprintf(out, cap, " CSeq %u %.*s", (unsigned)cseq->number,
                         (int)(cseq->method.len < 20 ? cseq->method.len : 20), cseq->method.p);
        else
            n = snprintf(out, cap, " CSeq %u", (unsigned)cseq->number);
    }
    if (n < 0 || (size_t)n >= cap)
        return;
    (void)csip_msg_call_id(m, &cid);
    snprintf(out + n, cap - (size_t)n, " Call-ID %.*s", (int)(cid.len < 8 ? cid.len : 8),
             cid.p ? cid.p : "");
}

int ua_send(ua *u, csip_msg *req, const char *note, void *txn_user_data, csip_txn **out)
{
    return ua_send_to(u, req, &u->target.addr, note, txn_user_data, out);
}

/* Keeps a copy of a request sent and its line (for -v of its retransmissions). */
static void keep_sent(ua *u, const csip_msg *req, const char *peer, const char *note)
{
    ua_sync(u);
    free(u->sent);
    u->sent = NULL;
    u->sent_len = 0;
    int n = csip_msg_print(req, NULL, 0);
    if (n > 0 && (u->sent = malloc((size_t)n)) != NULL &&
        csip_msg_print(req, u->sent, (size_t)n) == n)
        u->sent_len = (size_t)n;
    char ids[80];
    ids_text(u, req, ids, sizeof ids);
    csip_str method = csip_msg_method_name(req), ruri = csip_msg_ruri_raw(req);
    snprintf(u->sent_line, sizeof u->sent_line, "--> %.*s %.*s (%s)%s%s%s", (int)method.len,
             method.p, (int)ruri.len, ruri.p, peer, ids, note ? " " : "", note ? note : "");
    printf("%s\n", u->sent_line);
    if (u->opts->verbose && u->sent)
        ua_print_raw(u->sent, u->sent_len);
    fflush(stdout);
}

int ua_send_to(ua *u, csip_msg *req, const csip_addr *dst, const char *note, void *txn_user_data,
               csip_txn **out)
{
    char peer[80];
    if (dst == &u->target.addr)
        snprintf(peer, sizeof peer, "%s", u->peer);
    else
        ua_addr_text(dst, peer, sizeof peer);
    keep_sent(u, req, peer, note);
    int rc = csip_txn_client_new(csip_endpoint_txn(u->ep), req, dst, txn_user_data,
                                 csip_endpoint_now(u->ep), out);
    if (rc != 0)
        fprintf(stderr, "%s: cannot start the transaction: %s\n", u->cmd, csip_strerror(rc));
    return rc;
}

static void print_response(ua *u, const csip_msg *resp, int status, const char *peer,
                           const char *note)
{
    if (resp)
        u->seen_received++;
    ua_sync(u);
    if (resp) {
        char ids[80];
        ids_text(u, resp, ids, sizeof ids);
        csip_str reason = csip_msg_reason(resp);
        printf("<-- %d %.*s (%s)%s%s%s\n", status, (int)reason.len, reason.p, peer, ids,
               note ? " " : "", note ? note : "");
        if (u->opts->verbose) {
            csip_str raw = csip_msg_raw(resp);
            ua_print_raw(raw.p, raw.len);
        }
    } else {
        printf("<-- %d %s (no response: %s) (%s)\n", status, csip_status_reason(status),
               status == 408 ? "timeout" : "transport error", peer);
    }
    fflush(stdout);
}

void ua_print_response(ua *u, const csip_msg *resp, int status)
{
    print_response(u, resp, status, u->peer, NULL);
}

void ua_print_response_from(ua *u, const csip_msg *resp, int status, const csip_addr *peer,
                            const char *note)
{
    char text[80];
    ua_addr_text(peer, text, sizeof text);
    print_response(u, resp, status, text, note);
}

void ua_sync(ua *u)
{
    if (!u->ep)
        return;
    csip_txn_stats st;
    csip_txn_layer_stats(csip_endpoint_txn(u->ep), &st);
    for (; u->seen_retrans < st.retransmitted; u->seen_retrans++) {
        if (u->many_txns) {
            printf("--> (a retransmission by the transaction layer)\n");
            continue;
        }
        printf("%s [retransmission]\n", u->sent_line);
        if (u->opts->verbose && u->sent)
            ua_print_raw(u->sent, u->sent_len);
    }
    for (; u->seen_received < st.received; u->seen_received++) {
        if (u->many_txns)
            printf("<-- (absorbed by the transaction layer: a retransmission, or the ACK of a "
                   "non-2xx final response)\n");
        else
            printf("<-- (a retransmitted response, absorbed by the transaction) (%s)\n", u->peer);
    }
}

void ua_answer_request(ua *u, csip_txn *st, const csip_msg *req, const csip_addr *src)
{
    ua_print_request_in(u, req, src, NULL);
    if (st) {
        csip_method m = csip_msg_method(req);
        int code = m == CSIP_METHOD_OPTIONS ? 200 : m == CSIP_METHOD_CANCEL ? 481 : 480;
        (void)ua_respond_code(u, st, code, NULL);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------- */
/* Messages to and from anywhere */

void ua_addr_text(const csip_addr *a, char *out, size_t cap)
{
    char hp[64];
    if (csip_addr_format(a, hp, sizeof hp) < 0)
        snprintf(hp, sizeof hp, "?");
    snprintf(out, cap, "%s %s", csip_transport_name((csip_transport)a->transport), hp);
}

int ua_uri_addr(const csip_uri *uri, csip_addr *out)
{
    memset(out, 0, sizeof *out);
    if (uri->kind != CSIP_URI_SIP && uri->kind != CSIP_URI_SIPS)
        return CSIP_ERR_INVALID_ARG;
    int tp = uri->kind == CSIP_URI_SIPS ? CSIP_TP_TLS : CSIP_TP_UDP;
    if (uri->transport.p) {
        tp = csip_transport_lookup(uri->transport);
        if (tp != CSIP_TP_UDP && tp != CSIP_TP_TCP && tp != CSIP_TP_TLS)
            return CSIP_ERR_INVALID_ARG;
    }
    csip_str host = uri->maddr.p ? uri->maddr : uri->host;
    if (csip_str_ieq_c(host, "localhost"))
        host = CSIP_STR("127.0.0.1");
    if (csip_addr_set_ip(out, host) != 0)
        return CSIP_ERR_NOT_FOUND;
    out->transport = (uint8_t)tp;
    out->port = uri->has_port ? uri->port : tp == CSIP_TP_TLS ? 5061 : 5060;
    return 0;
}

uint16_t ua_local_port(const ua *u, csip_transport tp)
{
    const csip_addr *a = u->ep ? csip_endpoint_local(u->ep, tp == CSIP_TP_UDP ? 0 : 1) : NULL;
    return a ? a->port : 0;
}

int ua_via_nobranch(const ua *u, csip_transport tp, char *out, size_t cap)
{
    int n = snprintf(out, cap, "SIP/2.0/%s %s:%u;rport", csip_transport_name(tp), u->local_host,
                     (unsigned)ua_local_port(u, tp));
    return n > 0 && (size_t)n < cap ? 0 : CSIP_ERR_BUFFER_TOO_SMALL;
}

/* Prints a message we send (not a request in a transaction) in full with -v. */
static void print_out_raw(const ua *u, const csip_msg *m)
{
    if (!u->opts->verbose)
        return;
    int n = csip_msg_print(m, NULL, 0);
    char *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && csip_msg_print(m, b, (size_t)n) == n)
        ua_print_raw(b, (size_t)n);
    free(b);
}

/* "--> METHOD URI (UDP 192.0.2.1:5060) Call-ID … note" for a request sent to
 * or received from a (dir "-->" or "<--"). */
static void print_request_line(const ua *u, const char *dir, const csip_msg *m, const csip_addr *a,
                               const char *note)
{
    char peer[80], ids[80];
    ua_addr_text(a, peer, sizeof peer);
    ids_text(u, m, ids, sizeof ids);
    csip_str method = csip_msg_method_name(m), ruri = csip_msg_ruri_raw(m);
    printf("%s %.*s %.*s (%s)%s%s%s\n", dir, (int)method.len, method.p, (int)ruri.len, ruri.p, peer,
           ids, note ? " " : "", note ? note : "");
}

int ua_send_stateless(ua *u, const csip_msg *msg, const csip_addr *dst, const char *note)
{
    ua_sync(u);
    print_request_line(u, "-->", msg, dst, note);
    csip_str method = csip_msg_method_name(msg);
    print_out_raw(u, msg);
    fflush(stdout);
    int rc =
        csip_txn_layer_send_stateless(csip_endpoint_txn(u->ep), msg, dst, csip_endpoint_now(u->ep));
    if (rc != 0)
        printf("note: the %.*s could not be sent: %s\n", (int)method.len, method.p,
               csip_strerror(rc));
    return rc;
}

void ua_print_layer_ack(ua *u, const csip_txn *ct)
{
    const csip_msg *inv = csip_txn_request(ct);
    char peer[80], ids[80];
    ua_addr_text(csip_txn_peer(ct), peer, sizeof peer);
    ids_text(u, inv, ids, sizeof ids);
    csip_str ruri = csip_msg_ruri_raw(inv);
    printf("--> ACK %.*s (%s)%s [sent by the transaction layer]\n", (int)ruri.len, ruri.p, peer,
           ids);
    fflush(stdout);
}

void ua_print_request_in(ua *u, const csip_msg *req, const csip_addr *src, const char *note)
{
    u->seen_received++;
    ua_sync(u);
    print_request_line(u, "<--", req, src, note);
    if (u->opts->verbose) {
        csip_str raw = csip_msg_raw(req);
        ua_print_raw(raw.p, raw.len);
    }
    fflush(stdout);
}

int ua_respond(ua *u, csip_txn *st, csip_msg *resp, const char *note)
{
    ua_sync(u);
    char peer[80], ids[80];
    ua_addr_text(csip_txn_peer(st), peer, sizeof peer);
    ids_text(u, resp, ids, sizeof ids);
    int code = csip_msg_status(resp);
    csip_str reason = csip_msg_reason(resp);
    printf("--> %d %.*s (%s)%s%s%s\n", code, (int)reason.len, reason.p, peer, ids, note ? " " : "",
           note ? note : "");
    print_out_raw(u, resp);
    fflush(stdout);
    int rc = csip_txn_respond(st, resp, csip_endpoint_now(u->ep));
    if (rc != 0)
        printf("note: the %d could not be sent: %s\n", code, csip_strerror(rc));
    return rc;
}

int ua_msg_add_lines(csip_msg *m, const char *lines)
{
    const char *p = lines;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n"), *colon = strchr(p, ':');
        if (!eol || !colon || colon > eol)
            return CSIP_ERR_INVALID_ARG;
        csip_str name = {p, (size_t)(colon - p)}, value = {colon + 1, (size_t)(eol - colon - 1)};
        while (value.len && value.p[0] == ' ') {
            value.p++;
            value.len--;
        }
        int rc = csip_msg_hdr_insert(m, csip_msg_hdr_count(m), csip_hdr_lookup(name.p, name.len),
                                     name, value);
        if (rc != 0)
            return rc;
        p = eol + 2;
    }
    return 0;
}

int ua_respond_code(ua *u, csip_txn *st, int code, const char *extra)
{
    char tag[12];
    ua_random_token(tag, 10);
    csip_msg *resp;
    int rc = csip_response_for(csip_txn_request(st), code, NULL, csip_str_c(tag), NULL, &resp);
    if (rc == 0 && (rc = ua_msg_add_lines(resp, extra)) != 0)
        csip_msg_free(resp);
    if (rc != 0)
        return rc;
    return ua_respond(u, st, resp, NULL);
}

/* ------------------------------------------------------------------------- */
/* Digest authentication */

void ua_auth_init(ua_auth *a, const char *user, const char *password, const char *who)
{
    memset(a, 0, sizeof *a);
    a->user = user;
    a->password = password;
    a->who = who;
    a->slot[0].challenge_hdr = CSIP_HDR_WWW_AUTHENTICATE;
    a->slot[0].cred_name = "Authorization";
    a->slot[1].challenge_hdr = CSIP_HDR_PROXY_AUTHENTICATE;
    a->slot[1].cred_name = "Proxy-Authorization";
}

void ua_auth_clear(ua_auth *a)
{
    for (size_t i = 0; i < 2; i++) {
        csip_msg_free(a->slot[i].msg);
        a->slot[i].msg = NULL;
        a->slot[i].ch = NULL;
        a->slot[i].nc = 0;
    }
}

#define UA_CRED_MAX 4096

int ua_auth_add(ua_auth *a, const char *cmd, const char *method, const char *uri, char *extra,
                size_t cap, char *note, size_t note_cap)
{
    size_t note0 = strlen(note), nlen = note0;
    bool any = false;
    for (size_t i = 0; i < 2; i++) {
        ua_auth_slot *s = &a->slot[i];
        if (!s->ch)
            continue;
        char cred[UA_CRED_MAX];
        csip_auth_request req = {csip_str_c(method), csip_str_c(uri), CSIP_STR_NULL};
        uint32_t nc = s->nc + 1;
        int n = csip_auth_client_answer(s->ch, csip_str_c(a->user ? a->user : ""),
                                        csip_str_c(a->password ? a->password : ""), &req, nc,
                                        CSIP_STR_NULL, cred, sizeof cred);
        if (n < 0) {
            fprintf(stderr, "%s: cannot answer the challenge: %s\n", cmd, csip_strerror(n));
            return -1;
        }
        s->nc = nc;
        size_t len = strlen(extra);
        int k = snprintf(extra + len, cap - len, "%s: %s\r\n", s->cred_name, cred);
        if (k < 0 || (size_t)k >= cap - len) {
            fprintf(stderr, "%s: the credentials do not fit in the request\n", cmd);
            return -1;
        }
        csip_auth_alg alg = CSIP_AUTH_ALG_MD5;
        (void)csip_auth_alg_parse(s->ch->algorithm, &alg);
        nlen = strlen(note);
        snprintf(note + nlen, note_cap - nlen, "%s%s %s nc=%u", any ? ", " : "[", s->cred_name,
                 csip_auth_alg_name(alg), (unsigned)nc);
        any = true;
    }
    if (any) {
        nlen = strlen(note);
        snprintf(note + nlen, note_cap - nlen, "]");
    } else {
        note[note0] = 0;
    }
    return 0;
}

bool ua_auth_take(ua_auth *a, const csip_msg *resp, int status)
{
    ua_auth_slot *s = &a->slot[status == 401 ? 0 : 1];
    const csip_auth *ch;
    if (csip_auth_client_choose_msg(resp, s->challenge_hdr, &ch) != 0) {
        printf("final: %d %s: no Digest challenge with an algorithm csip supports\n", status,
               csip_status_reason(status));
        return false;
    }
    if (!a->password) {
        printf("final: %d %s: %s wants credentials (give --password)\n", status,
               csip_status_reason(status), a->who);
        return false;
    }
    bool stale = csip_str_ieq_c(ch->stale, "true");
    bool same_nonce = s->ch && csip_str_eq(ch->nonce, s->ch->nonce);
    if (!stale && s->ch && (same_nonce || s->nc == 1)) {
        printf("final: %d %s: the credentials of '%s' were refused\n", status,
               csip_status_reason(status), a->user ? a->user : "");
        return false;
    }
    if (++a->challenges > UA_MAX_CHALLENGES) {
        printf("final: %d %s: still challenged after %d answers\n", status,
               csip_status_reason(status), UA_MAX_CHALLENGES);
        return false;
    }
    /* Keep the challenge for the requests to come: a copy of the response
     * (the layer's is borrowed for the call). */
    csip_str raw = csip_msg_raw(resp);
    csip_msg *copy = NULL;
    csip_parse_error err;
    const csip_auth *kept;
    if (csip_msg_parse(raw.p, raw.len, NULL, &copy, &err) != 0 ||
        csip_auth_client_choose_msg(copy, s->challenge_hdr, &kept) != 0) {
        csip_msg_free(copy);
        printf("final: cannot keep the challenge (out of memory)\n");
        return false;
    }
    uint32_t nc = same_nonce ? s->nc : 0; /* the count goes on under the same nonce */
    csip_msg_free(s->msg);
    s->msg = copy;
    s->ch = kept;
    s->nc = nc;
    return true;
}

/* ------------------------------------------------------------------------- */
/* A command's run over the targets of one URI */

static void run_on_step(uv_timer_t *t);

void ua_run_init(ua_run *r, ua *u, ua_locate *loc, const ua_run_ops *ops, void *user_data)
{
    r->u = u;
    r->loc = loc;
    r->ops = ops;
    r->user_data = user_data;
    uv_timer_init(r->u->loop, &r->step);
    uv_timer_init(r->u->loop, &r->locating);
    r->step.data = r->locating.data = r;
}

void ua_run_finish(ua_run *r, int code)
{
    if (r->done)
        return;
    r->done = true;
    r->exit_code = code;
    uv_timer_start(&r->step, run_on_step, 0, 0);
}

bool ua_run_failover(ua_run *r)
{
    if (r->loc->next >= r->loc->n)
        return false;
    uv_timer_start(&r->step, run_on_step, 0, 0);
    return true;
}

/* Opens the endpoint for the next target that works and calls opened(). */
static void run_next_target(ua_run *r)
{
    while (r->loc->next < r->loc->n) {
        const csip_target *t = &r->loc->targets[r->loc->next++];
        if (r->txn)
            *r->txn = NULL;
        int rc = ua_open(r->u, t, &r->ops->cb, r->user_data);
        if (rc == 2) {
            ua_run_finish(r, CLI_EXIT_USAGE);
            return;
        }
        if (rc != 0)
            continue;
        r->ops->opened(r->user_data);
        return;
    }
    printf("final: no target of %s could be reached\n", r->what);
    ua_run_finish(r, CLI_EXIT_REJECT);
}

static void run_on_step(uv_timer_t *t)
{
    ua_run *r = t->data;
    if (!r->done) {
        run_next_target(r);
        return;
    }
    if (r->closing)
        return;
    r->closing = true;
    r->ops->teardown(r->user_data);
    ua_shutdown(r->u);
    ua_locate_free(r->loc);
    uv_close((uv_handle_t *)&r->step, NULL);
    uv_close((uv_handle_t *)&r->locating, NULL);
}

static void run_locate_failed(ua_run *r, int status)
{
    printf("final: cannot locate %.*s: %s\n", (int)r->located->host.len, r->located->host.p,
           csip_strerror(status));
    ua_run_finish(r, CLI_EXIT_REJECT);
}

static void run_on_located(void *user_data, int status)
{
    ua_run *r = user_data;
    if (r->done)
        return;
    uv_timer_stop(&r->locating);
    if (status != 0) {
        run_locate_failed(r, status);
        return;
    }
    run_next_target(r);
}

static void run_on_locate_deadline(uv_timer_t *t)
{
    ua_run *r = t->data;
    if (r->done)
        return;
    printf("final: no final response within %llu ms\n", (unsigned long long)r->u->opts->timeout_ms);
    ua_run_finish(r, CLI_EXIT_REJECT);
}

void ua_run_start(ua_run *r)
{
    if (r->loc->n > 0) {
        run_next_target(r);
        return;
    }
    if (r->locate_timeout)
        uv_timer_start(&r->locating, run_on_locate_deadline, r->u->opts->timeout_ms, 0);
    int rc = ua_locate_start(r->loc, r->u->loop, run_on_located, r);
    if (rc != 0)
        run_locate_failed(r, rc);
}

bool ua_run_signal(ua_run *r, int signum, bool again, uint64_t *at, const char *note,
                   int again_code)
{
    if (r->done)
        return false;
    uint64_t now = uv_hrtime();
    if (!again) {
        *at = now;
        return true;
    }
    if (now - *at >= 500u * 1000u * 1000u) {
        printf("signal %d again: %s\n", signum, note);
        ua_run_finish(r, again_code);
    }
    return false;
}

int ua_run_wait(ua_run *r)
{
    uv_run(r->u->loop, UV_RUN_DEFAULT);
    uv_run(r->u->loop, UV_RUN_DEFAULT); /* close callbacks queued by the last teardown */
    if (uv_loop_close(r->u->loop) != 0)
        fprintf(stderr, "%s: handles left open\n", r->u->cmd);
    fflush(stdout);
    return r->exit_code;
}
