/*
 * csip options URI [--transport udp|tcp|tls] [--timeout S] [--ca-file FILE]
 *                  [--insecure] [-v]
 *
 * Sends an OPTIONS request to URI through the transaction layer and the
 * network runtime (so it is retransmitted over UDP as RFC 3261 §17.1.2 says),
 * prints one line per message sent and received, and the final response.
 *
 * Transport: --transport, else the URI's transport parameter, else TLS for
 * sips, else what RFC 3263 server location finds for a host name, else UDP.
 * Host: an IP literal, "localhost" (loopback, RFC 6761 §6.3), or a name
 * located with the runtime's RFC 3263 resolver (targets tried in order on a
 * timeout, a transport error or a 503, §4.3).
 *
 * Exit status: 0 for a 2xx, 1 for any other outcome, 2 for a usage error or
 * when the tool cannot run (no socket).
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "cli.h"
#include "csip/csip.h"
#include "csip/dns.h"
#include "csip/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TARGETS 16
#define DEFAULT_TIMEOUT_MS 32000u

typedef struct opt_app {
    uv_loop_t loop;
    const char *uri_text;
    csip_uri uri;
    int forced_tp; /* -1: none */
    uint64_t timeout_ms;
    const char *ca_file;
    bool insecure;
    bool verbose;

    csip_target targets[MAX_TARGETS];
    size_t n_targets, next_target;
    csip_resolver *resolver;

    csip_endpoint *ep;
    csip_txn *txn;
    char call_id[64];
    char *sent; /* the request as printed, for -v of retransmissions */
    size_t sent_len;
    char peer_text[80]; /* "UDP 127.0.0.1:5060" */
    uint64_t seen_retrans, seen_received;

    uv_timer_t deadline; /* --timeout */
    uv_check_t check;    /* prints retransmissions and absorbed messages */
    uv_timer_t step;     /* next target or teardown, outside the layer's callbacks */
    char short_cid[9];
    uint64_t started;
    int status; /* final status, 0 while none */
    const char *failure;
    bool done;
} opt_app;

static void options_usage(FILE *f)
{
    fprintf(f, "usage: csip options URI [--transport udp|tcp|tls] [--timeout S] [--ca-file FILE]\n"
               "                        [--insecure] [-v]\n"
               "\n"
               "Sends OPTIONS to URI (sip: or sips:) and prints each message sent and received\n"
               "on one line (-v: in full), then the final response.\n"
               "  --transport  udp, tcp or tls (default: the URI's transport parameter, TLS for\n"
               "               sips:, else what RFC 3263 location finds, else UDP)\n"
               "  --timeout S  give up after S seconds (default 32, Timer F)\n"
               "  --ca-file    trust anchors (PEM) for TLS instead of the system's\n"
               "  --insecure   do not verify the TLS server certificate or its name\n"
               "\n"
               "exit status: 0 for a 2xx response, 1 for any other outcome, 2 usage error\n");
}

/* "0.5", "3", "10.25" seconds to milliseconds. */
static bool parse_seconds(const char *s, uint64_t *ms)
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

static const char *short_id(opt_app *a)
{
    snprintf(a->short_cid, sizeof a->short_cid, "%.8s", a->call_id);
    return a->short_cid;
}

static void print_raw(const char *p, size_t n)
{
    fwrite(p, 1, n, stdout);
    if (n < 2 || p[n - 1] != '\n')
        fputc('\n', stdout);
    fputc('\n', stdout);
}

/* ------------------------------------------------------------------------- */
/* Teardown */

static void on_step(uv_timer_t *t);

/* Ends the run from the loop (never from inside a callback of the layer). */
static void start_finish(opt_app *a)
{
    a->done = true;
    uv_timer_start(&a->step, on_step, 0, 0);
}

static void free_attempt(opt_app *a)
{
    if (a->ep)
        csip_endpoint_free(a->ep); /* ends a live transaction (DESTROYED) */
    a->ep = NULL;
    a->txn = NULL;
    free(a->sent);
    a->sent = NULL;
}

static void try_next(opt_app *a);

static void on_step(uv_timer_t *t)
{
    opt_app *a = t->data;
    if (!a->done) {
        try_next(a);
        return;
    }
    free_attempt(a);
    if (a->resolver)
        csip_resolver_free(a->resolver);
    a->resolver = NULL;
    uv_close((uv_handle_t *)&a->deadline, NULL);
    uv_close((uv_handle_t *)&a->check, NULL);
    uv_close((uv_handle_t *)&a->step, NULL);
}

/* ------------------------------------------------------------------------- */
/* Printing what the layer did on its own */

static void sync_stats(opt_app *a)
{
    if (!a->ep)
        return;
    csip_txn_stats st;
    csip_txn_layer_stats(csip_endpoint_txn(a->ep), &st);
    for (; a->seen_retrans < st.retransmitted; a->seen_retrans++) {
        printf("--> OPTIONS %s (%s) Call-ID %s [retransmission]\n", a->uri_text, a->peer_text,
               short_id(a));
        if (a->verbose && a->sent)
            print_raw(a->sent, a->sent_len);
    }
    for (; a->seen_received < st.received; a->seen_received++)
        printf("<-- (a retransmitted response, absorbed by the transaction) (%s)\n", a->peer_text);
}

static void on_check(uv_check_t *c)
{
    sync_stats(c->data);
    fflush(stdout);
}

/* ------------------------------------------------------------------------- */
/* The transaction */

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    opt_app *a = user_data;
    if (ct != a->txn || a->done)
        return;
    if (resp)
        a->seen_received++;
    sync_stats(a);
    if (resp) {
        csip_str reason = csip_msg_reason(resp);
        csip_str cid = CSIP_STR_NULL;
        (void)csip_msg_call_id(resp, &cid);
        printf("<-- %d %.*s (%s) Call-ID %.*s\n", status, (int)reason.len, reason.p, a->peer_text,
               (int)(cid.len < 8 ? cid.len : 8), cid.p);
        if (a->verbose) {
            csip_str raw = csip_msg_raw(resp);
            print_raw(raw.p, raw.len);
        }
    } else {
        printf("<-- %d %s (no response: %s) (%s)\n", status, csip_status_reason(status),
               status == 408 ? "timeout" : "transport error", a->peer_text);
    }
    fflush(stdout);
    if (status < 200)
        return;
    /* RFC 3263 §4.3: a timeout, a transport error or a 503 moves on to the
     * next target. */
    if ((status == 408 && !resp) || status == 503) {
        if (a->next_target < a->n_targets) {
            a->status = status;
            a->txn = NULL;
            uv_timer_start(&a->step, on_step, 0, 0);
            return;
        }
    }
    a->status = status;
    if (resp) {
        csip_str reason = csip_msg_reason(resp);
        printf("final: %d %.*s (%llu ms)\n", status, (int)reason.len, reason.p,
               (unsigned long long)(uv_now(&a->loop) - a->started));
    } else {
        printf("final: %d %s (%llu ms)\n", status, csip_status_reason(status),
               (unsigned long long)(uv_now(&a->loop) - a->started));
    }
    start_finish(a);
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    opt_app *a = user_data;
    if (t == a->txn)
        a->txn = NULL;
}

static void on_deadline(uv_timer_t *t)
{
    opt_app *a = t->data;
    if (a->done)
        return;
    sync_stats(a);
    printf("final: no final response within %llu ms\n", (unsigned long long)a->timeout_ms);
    a->status = 0;
    start_finish(a);
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
    uv_udp_t *u = malloc(sizeof *u);
    if (!u || uv_udp_init(loop, u) != 0) {
        free(u);
        return false;
    }
    if (uv_udp_connect(u, (const struct sockaddr *)&ss) == 0) {
        struct sockaddr_storage me;
        int len = (int)sizeof me;
        if (uv_udp_getsockname(u, (struct sockaddr *)&me, &len) == 0) {
            if (me.ss_family == AF_INET)
                memcpy(out->ip, &((struct sockaddr_in *)&me)->sin_addr, 4);
            else
                memcpy(out->ip, &((struct sockaddr_in6 *)&me)->sin6_addr, 16);
            ok = true;
        }
    }
    uv_close((uv_handle_t *)u, free_handle);
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

static void random_token(char *out, size_t n)
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

/* One attempt: a fresh endpoint bound to the right local address, and the
 * OPTIONS transaction to target t. @return 0, or 1/2 as exit codes. */
static int attempt(opt_app *a, const csip_target *t)
{
    csip_addr local;
    if (!local_ip_for(&a->loop, &t->addr, &local)) {
        a->failure = "no local address reaches the target";
        return 1;
    }
    char lhost[64], spec_udp[96], spec_tcp[96];
    host_text(&local, lhost, sizeof lhost);
    snprintf(spec_udp, sizeof spec_udp, "udp:%s:0", lhost);
    snprintf(spec_tcp, sizeof spec_tcp, "tcp:%s:0", lhost);
    const char *listen[] = {spec_udp, spec_tcp, NULL};
    csip_endpoint_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.listen = listen;
    eo.tls_ca_file = a->ca_file;
    eo.tls_no_verify = a->insecure;
    csip_txn_callbacks cb = {NULL, NULL, on_response, NULL, on_terminated};
    int rc = csip_endpoint_new(&a->loop, &eo, &cb, a, &a->ep);
    if (rc != 0) {
        fprintf(stderr, "csip options: cannot open sockets on %s: %s\n", lhost, csip_strerror(rc));
        return 2;
    }
    const csip_addr *lu = csip_endpoint_local(a->ep, 0), *lt = csip_endpoint_local(a->ep, 1);
    csip_transport tp = (csip_transport)t->addr.transport;
    /* sent-by: where we listen for this transport (TLS: our TCP port; the
     * response comes back on the connection anyway). */
    uint16_t port = tp == CSIP_TP_UDP ? lu->port : lt->port;

    char branch[32], tag[12], cid[40], via[160], from[128], to[600], contact[128], extra[128];
    if (csip_txn_new_branch(branch, sizeof branch) < 0)
        return 2;
    random_token(tag, 10);
    random_token(cid, 24);
    snprintf(a->call_id, sizeof a->call_id, "%s", cid);
    snprintf(via, sizeof via, "SIP/2.0/%s %s:%u;branch=%s;rport", csip_transport_name(tp), lhost,
             (unsigned)port, branch);
    snprintf(from, sizeof from, "<sip:csip@%s>;tag=%s", lhost, tag);
    snprintf(to, sizeof to, "<%.*s>", (int)a->uri.raw.len, a->uri.raw.p);
    snprintf(contact, sizeof contact, "<sip:csip@%s:%u%s>", lhost, (unsigned)port,
             tp == CSIP_TP_UDP ? "" : ";transport=tcp");
    snprintf(extra, sizeof extra, "Accept: application/sdp\r\nUser-Agent: csip/%s\r\n",
             csip_version());
    csip_request_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.method = CSIP_STR("OPTIONS");
    spec.ruri = a->uri.raw;
    spec.via = csip_str_c(via);
    spec.from = csip_str_c(from);
    spec.to = csip_str_c(to);
    spec.call_id = csip_str_c(cid);
    spec.cseq = 1;
    spec.contact = csip_str_c(contact);
    spec.extra = csip_str_c(extra);
    csip_msg *req;
    rc = csip_request_new(&spec, NULL, &req);
    if (rc != 0) {
        fprintf(stderr, "csip options: cannot build the request: %s\n", csip_strerror(rc));
        return 2;
    }
    int n = csip_msg_print(req, NULL, 0);
    if (n > 0 && (a->sent = malloc((size_t)n)) != NULL &&
        csip_msg_print(req, a->sent, (size_t)n) == n)
        a->sent_len = (size_t)n;

    char hp[64];
    (void)csip_addr_format(&t->addr, hp, sizeof hp);
    snprintf(a->peer_text, sizeof a->peer_text, "%s %s", csip_transport_name(tp), hp);
    printf("--> OPTIONS %s (%s) Call-ID %s\n", a->uri_text, a->peer_text, short_id(a));
    if (a->verbose && a->sent)
        print_raw(a->sent, a->sent_len);
    fflush(stdout);
    a->seen_retrans = a->seen_received = 0;
    rc = csip_txn_client_new(csip_endpoint_txn(a->ep), req, &t->addr, NULL,
                             csip_endpoint_now(a->ep), &a->txn);
    if (rc != 0) {
        fprintf(stderr, "csip options: cannot start the transaction: %s\n", csip_strerror(rc));
        return 2;
    }
    return 0;
}

static void try_next(opt_app *a)
{
    free_attempt(a);
    while (a->next_target < a->n_targets) {
        const csip_target *t = &a->targets[a->next_target++];
        int rc = attempt(a, t);
        if (rc == 0)
            return;
        free_attempt(a);
        if (rc == 2) {
            a->status = -1;
            break;
        }
    }
    if (a->status > 0)
        printf("final: %d %s\n", a->status, csip_status_reason(a->status));
    else if (a->failure)
        printf("final: %s\n", a->failure);
    start_finish(a);
}

static void on_resolved(void *user_data, int status, const csip_target *targets, size_t n)
{
    opt_app *a = user_data;
    if (a->done)
        return;
    if (status != 0 || n == 0) {
        printf("final: cannot locate %.*s: %s\n", (int)a->uri.host.len, a->uri.host.p,
               csip_strerror(status));
        start_finish(a);
        return;
    }
    for (size_t i = 0; i < n && a->n_targets < MAX_TARGETS; i++) {
        a->targets[a->n_targets] = targets[i];
        if (a->forced_tp >= 0)
            a->targets[a->n_targets].addr.transport = (uint8_t)a->forced_tp;
        a->n_targets++;
    }
    try_next(a);
}

/* ------------------------------------------------------------------------- */

static int run(opt_app *a, int argc, char **argv);

int cmd_options(int argc, char **argv)
{
    opt_app *a = calloc(1, sizeof *a);
    if (!a)
        return CLI_EXIT_USAGE;
    int rc = run(a, argc, argv);
    free(a);
    return rc;
}

static int run(opt_app *a, int argc, char **argv)
{
    a->forced_tp = -1;
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            options_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(s, "-v") == 0) {
            a->verbose = true;
        } else if (strcmp(s, "--insecure") == 0) {
            a->insecure = true;
        } else if (strcmp(s, "--transport") == 0 && i + 1 < argc) {
            a->forced_tp = csip_transport_lookup(csip_str_c(argv[++i]));
            if (a->forced_tp != CSIP_TP_UDP && a->forced_tp != CSIP_TP_TCP &&
                a->forced_tp != CSIP_TP_TLS) {
                fprintf(stderr, "csip options: --transport must be udp, tcp or tls\n");
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(s, "--timeout") == 0 && i + 1 < argc) {
            if (!parse_seconds(argv[++i], &a->timeout_ms)) {
                fprintf(stderr, "csip options: --timeout needs a positive number of seconds\n");
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(s, "--ca-file") == 0 && i + 1 < argc) {
            a->ca_file = argv[++i];
        } else if (s[0] == '-' || a->uri_text) {
            options_usage(stderr);
            return CLI_EXIT_USAGE;
        } else {
            a->uri_text = s;
        }
    }
    if (!a->uri_text) {
        options_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (csip_uri_parse(a->uri_text, strlen(a->uri_text), 0, &a->uri) != 0 ||
        (a->uri.kind != CSIP_URI_SIP && a->uri.kind != CSIP_URI_SIPS)) {
        fprintf(stderr, "csip options: '%s' is not a sip: or sips: URI\n", a->uri_text);
        return CLI_EXIT_USAGE;
    }
    bool sips = a->uri.kind == CSIP_URI_SIPS;
    int tp = a->forced_tp;
    if (tp < 0 && a->uri.transport.p) {
        tp = csip_transport_lookup(a->uri.transport);
        if (tp != CSIP_TP_UDP && tp != CSIP_TP_TCP && tp != CSIP_TP_TLS) {
            fprintf(stderr, "csip options: transport '%.*s' is not supported\n",
                    (int)a->uri.transport.len, a->uri.transport.p);
            return CLI_EXIT_USAGE;
        }
    }
    if (tp < 0 && sips)
        tp = CSIP_TP_TLS;
    if (sips && tp != CSIP_TP_TLS) {
        fprintf(stderr, "csip options: a sips: URI needs TLS (RFC 3261 §26.2.2)\n");
        return CLI_EXIT_USAGE;
    }

    /* Numeric hosts and localhost need no DNS. */
    csip_target t;
    memset(&t, 0, sizeof t);
    bool located = true;
    if (a->uri.host_type == CSIP_HOST_IPV4 || a->uri.host_type == CSIP_HOST_IPV6) {
        (void)csip_addr_set_ip(&t.addr, a->uri.host);
    } else if (csip_str_ieq_c(a->uri.host, "localhost")) {
        (void)csip_addr_set_ip(&t.addr, CSIP_STR("127.0.0.1"));
    } else {
        located = false;
    }
    if (located) {
        if (tp < 0)
            tp = CSIP_TP_UDP;
        t.addr.transport = (uint8_t)tp;
        t.addr.port = a->uri.has_port ? a->uri.port : tp == CSIP_TP_TLS ? 5061 : 5060;
        a->targets[0] = t;
        a->n_targets = 1;
    }
    a->forced_tp = tp;

    uv_loop_init(&a->loop);
    uv_timer_init(&a->loop, &a->deadline);
    uv_timer_init(&a->loop, &a->step);
    uv_check_init(&a->loop, &a->check);
    a->deadline.data = a->step.data = a->check.data = a;
    uv_check_start(&a->check, on_check);
    uv_unref((uv_handle_t *)&a->check);
    a->started = uv_now(&a->loop);
    uv_timer_start(&a->deadline, on_deadline, a->timeout_ms, 0);

    if (located) {
        try_next(a);
    } else {
        int rc = csip_resolver_new(&a->loop, NULL, &a->resolver);
        if (rc == 0)
            rc = csip_resolve(a->resolver, &a->uri, on_resolved, a);
        if (rc != 0) {
            printf("final: cannot locate %.*s: %s\n", (int)a->uri.host.len, a->uri.host.p,
                   csip_strerror(rc));
            start_finish(a);
        }
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_run(&a->loop, UV_RUN_DEFAULT); /* close callbacks queued by the last teardown */
    if (uv_loop_close(&a->loop) != 0)
        fprintf(stderr, "csip options: handles left open\n");
    fflush(stdout);
    if (a->status < 0)
        return CLI_EXIT_USAGE;
    return a->status >= 200 && a->status < 300 ? CLI_EXIT_OK : CLI_EXIT_REJECT;
}
