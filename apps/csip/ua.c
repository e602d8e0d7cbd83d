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
    if (u->show_cseq && csip_msg_cseq(m, &cseq) == 0)
        n = snprintf(out, cap, " CSeq %u", (unsigned)cseq->number);
    if (n < 0 || (size_t)n >= cap)
        return;
    (void)csip_msg_call_id(m, &cid);
    snprintf(out + n, cap - (size_t)n, " Call-ID %.*s", (int)(cid.len < 8 ? cid.len : 8),
             cid.p ? cid.p : "");
}

int ua_send(ua *u, csip_msg *req, const char *note, void *txn_user_data, csip_txn **out)
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
             method.p, (int)ruri.len, ruri.p, u->peer, ids, note ? " " : "", note ? note : "");
    printf("%s\n", u->sent_line);
    if (u->opts->verbose && u->sent)
        ua_print_raw(u->sent, u->sent_len);
    fflush(stdout);
    int rc = csip_txn_client_new(csip_endpoint_txn(u->ep), req, &u->target.addr, txn_user_data,
                                 csip_endpoint_now(u->ep), out);
    if (rc != 0)
        fprintf(stderr, "%s: cannot start the transaction: %s\n", u->cmd, csip_strerror(rc));
    return rc;
}

void ua_print_response(ua *u, const csip_msg *resp, int status)
{
    if (resp)
        u->seen_received++;
    ua_sync(u);
    if (resp) {
        char ids[80];
        ids_text(u, resp, ids, sizeof ids);
        csip_str reason = csip_msg_reason(resp);
        printf("<-- %d %.*s (%s)%s\n", status, (int)reason.len, reason.p, u->peer, ids);
        if (u->opts->verbose) {
            csip_str raw = csip_msg_raw(resp);
            ua_print_raw(raw.p, raw.len);
        }
    } else {
        printf("<-- %d %s (no response: %s) (%s)\n", status, csip_status_reason(status),
               status == 408 ? "timeout" : "transport error", u->peer);
    }
    fflush(stdout);
}

void ua_sync(ua *u)
{
    if (!u->ep)
        return;
    csip_txn_stats st;
    csip_txn_layer_stats(csip_endpoint_txn(u->ep), &st);
    for (; u->seen_retrans < st.retransmitted; u->seen_retrans++) {
        printf("%s [retransmission]\n", u->sent_line);
        if (u->opts->verbose && u->sent)
            ua_print_raw(u->sent, u->sent_len);
    }
    for (; u->seen_received < st.received; u->seen_received++)
        printf("<-- (a retransmitted response, absorbed by the transaction) (%s)\n", u->peer);
}

void ua_answer_request(ua *u, csip_txn *st, const csip_msg *req, const csip_addr *src)
{
    u->seen_received++;
    ua_sync(u);
    char from[64], ids[80];
    (void)csip_addr_format(src, from, sizeof from);
    ids_text(u, req, ids, sizeof ids);
    csip_str method = csip_msg_method_name(req), ruri = csip_msg_ruri_raw(req);
    printf("<-- %.*s %.*s (%s %s)%s\n", (int)method.len, method.p, (int)ruri.len, ruri.p,
           csip_transport_name((csip_transport)src->transport), from, ids);
    if (u->opts->verbose) {
        csip_str raw = csip_msg_raw(req);
        ua_print_raw(raw.p, raw.len);
    }
    if (st) {
        csip_method m = csip_msg_method(req);
        int code = m == CSIP_METHOD_OPTIONS ? 200 : m == CSIP_METHOD_CANCEL ? 481 : 480;
        char tag[12];
        ua_random_token(tag, 10);
        csip_msg *resp;
        if (csip_response_for(req, code, NULL, csip_str_c(tag), NULL, &resp) == 0) {
            printf("--> %d %s (%s %s)%s\n", code, csip_status_reason(code),
                   csip_transport_name((csip_transport)src->transport), from, ids);
            if (u->opts->verbose) {
                int n = csip_msg_print(resp, NULL, 0);
                char *b = n > 0 ? malloc((size_t)n) : NULL;
                if (b && csip_msg_print(resp, b, (size_t)n) == n)
                    ua_print_raw(b, (size_t)n);
                free(b);
            }
            (void)csip_txn_respond(st, resp, csip_endpoint_now(u->ep));
        }
    }
    fflush(stdout);
}
