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
#include "ua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opt_app {
    uv_loop_t loop;
    const char *uri_text;
    csip_uri uri;
    ua_opts opts;
    ua_locate loc;
    ua u;
    csip_txn *txn;

    uv_timer_t deadline; /* --timeout */
    uv_timer_t step;     /* next target or teardown, outside the layer's callbacks */
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

/* ------------------------------------------------------------------------- */
/* Teardown */

static void on_step(uv_timer_t *t);

/* Ends the run from the loop (never from inside a callback of the layer). */
static void start_finish(opt_app *a)
{
    a->done = true;
    uv_timer_start(&a->step, on_step, 0, 0);
}

static void try_next(opt_app *a);

static void on_step(uv_timer_t *t)
{
    opt_app *a = t->data;
    if (!a->done) {
        try_next(a);
        return;
    }
    a->txn = NULL;
    ua_shutdown(&a->u);
    ua_locate_free(&a->loc);
    uv_close((uv_handle_t *)&a->deadline, NULL);
    uv_close((uv_handle_t *)&a->step, NULL);
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
    ua_print_response(&a->u, resp, status);
    if (status < 200)
        return;
    /* RFC 3263 §4.3: a timeout, a transport error or a 503 moves on to the
     * next target. */
    if ((status == 408 && !resp) || status == 503) {
        if (a->loc.next < a->loc.n) {
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

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    opt_app *a = user_data;
    ua_answer_request(&a->u, st, req, src);
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
    ua_sync(&a->u);
    printf("final: no final response within %llu ms\n", (unsigned long long)a->opts.timeout_ms);
    a->status = 0;
    start_finish(a);
}

/* One attempt: a fresh endpoint bound to the right local address, and the
 * OPTIONS transaction to target t. @return 0, or 1/2 as exit codes. */
static int attempt(opt_app *a, const csip_target *t)
{
    csip_txn_callbacks cb = {NULL, on_request, on_response, NULL, on_terminated};
    int rc = ua_open(&a->u, t, &cb, a);
    if (rc == 1)
        a->failure = "no local address reaches the target";
    if (rc != 0)
        return rc;
    const char *lhost = a->u.local_host;
    unsigned port = a->u.local_port;
    csip_transport tp = (csip_transport)t->addr.transport;

    char tag[12], cid[40], via[160], from[128], to[600], contact[128], extra[128];
    if (ua_via(&a->u, via, sizeof via) < 0)
        return 2;
    ua_random_token(tag, 10);
    ua_random_token(cid, 24);
    snprintf(from, sizeof from, "<sip:csip@%s>;tag=%s", lhost, tag);
    snprintf(to, sizeof to, "<%.*s>", (int)a->uri.raw.len, a->uri.raw.p);
    snprintf(contact, sizeof contact, "<sip:csip@%s:%u%s>", lhost, port,
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
    return ua_send(&a->u, req, NULL, NULL, &a->txn) == 0 ? 0 : 2;
}

static void try_next(opt_app *a)
{
    while (a->loc.next < a->loc.n) {
        const csip_target *t = &a->loc.targets[a->loc.next++];
        int rc = attempt(a, t);
        if (rc == 0)
            return;
        ua_close(&a->u);
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

static void on_located(void *user_data, int status)
{
    opt_app *a = user_data;
    if (a->done)
        return;
    if (status != 0) {
        printf("final: cannot locate %.*s: %s\n", (int)a->uri.host.len, a->uri.host.p,
               csip_strerror(status));
        start_finish(a);
        return;
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
    ua_opts_init(&a->opts);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int k = ua_opts_parse(&a->opts, "csip options", argc, argv, &i);
        if (k < 0)
            return CLI_EXIT_USAGE;
        if (k > 0)
            continue;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            options_usage(stdout);
            return CLI_EXIT_OK;
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
    int rc = ua_locate_init(&a->loc, "csip options", &a->uri, a->opts.transport);
    if (rc != 0)
        return rc;

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, "csip options", &a->opts);
    uv_timer_init(&a->loop, &a->deadline);
    uv_timer_init(&a->loop, &a->step);
    a->deadline.data = a->step.data = a;
    a->started = uv_now(&a->loop);
    uv_timer_start(&a->deadline, on_deadline, a->opts.timeout_ms, 0);

    if (a->loc.n > 0) {
        try_next(a);
    } else {
        rc = ua_locate_start(&a->loc, &a->loop, on_located, a);
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
