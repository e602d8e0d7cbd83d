/*
 * csip register AOR [--user U] [--password P] [--expires N] [--registrar URI]
 *                   [--once] [--contact-host HOST] [--transport udp|tcp|tls]
 *                   [--timeout S] [--ca-file FILE] [--insecure] [-v]
 *
 * Registers a Contact for the address-of-record AOR (RFC 3261 §10.2): the
 * Contact is the address of our own socket, sip:USER@IP:PORT;transport=T.
 * Digest challenges (401 WWW-Authenticate, 407 Proxy-Authenticate) are
 * answered with the first algorithm offered that the library supports
 * (SHA-256, MD5 …); a 423 is retried with the Min-Expires asked for. The
 * binding is refreshed before it expires, with the expiry the 200 OK grants to
 * our Contact, until SIGINT or SIGTERM, which removes it (Expires: 0) and
 * ends the run. With --once the tool registers, prints the bindings and exits.
 *
 * Every REGISTER of a run has the same Call-ID and the next CSeq (RFC 3261
 * §10.2.4). A nonce is reused for the refreshes that follow (nc 2, 3 …); a
 * new challenge starts over from nc 1; each answer has a fresh cnonce.
 *
 * Credentials are taken as refused (exit 1) when the challenge that answers
 * them is not stale=true and either keeps the same nonce or follows an answer
 * to a challenge just received: a server with stateless nonces (csipd) sends
 * a new nonce with every challenge, so "same nonce" alone would loop.
 *
 * Exit status: 0 registered (and, after a signal, unregistered); 1 a failure
 * (a final non-2xx, refused credentials, a timeout, a second signal); 2 usage
 * error, or no socket.
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "cli.h"
#include "csip/csip.h"
#include "reg.h"
#include "ua.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "csip register"

typedef struct reg_app {
    uv_loop_t loop;
    ua_opts opts;
    ua u;
    ua_locate loc;
    ua_reg reg;
    ua_run run;

    const char *aor_text;
    const char *registrar_text;
    char target_text[600]; /* the registrar URI, or sip:AOR-host */
    csip_uri target;

    bool stopping;         /* a signal came */
    uint64_t signalled_at; /* uv_hrtime of that signal */
    uv_signal_t sigint, sigterm;
} reg_app;

static void register_usage(FILE *f)
{
    fprintf(f,
            "usage: csip register AOR [--user U] [--password P] [--expires N] [--registrar URI]\n"
            "                         [--once] [--contact-host HOST] [--transport udp|tcp|tls]\n"
            "                         [--timeout S] [--ca-file FILE] [--insecure] [-v]\n"
            "\n"
            "Registers a Contact for AOR (sip: or sips:), answering digest challenges, refreshes\n"
            "it before it expires, and removes it on Ctrl-C or SIGTERM. Each message sent and\n"
            "received is printed on one line (-v: in full).\n"
            "  --user U         username for digest authentication (default: the AOR's user)\n"
            "  --password P     password, for when the registrar challenges\n"
            "  --expires N      expiry to ask for, seconds (default 3600)\n"
            "  --registrar URI  where to send the REGISTER (default: the AOR's domain, located\n"
            "                   with RFC 3263; \"localhost\" is loopback)\n"
            "  --once           register, print the bindings and exit without unregistering\n"
            "  --contact-host H host in our Contact instead of the local address\n"
            "  --transport      udp, tcp or tls (default: the registrar URI's transport, TLS\n"
            "                   for sips:, else what RFC 3263 finds, else UDP)\n"
            "  --timeout S      give up on an exchange after S seconds (default 32)\n"
            "  --ca-file, --insecure  TLS trust anchors, or no verification\n"
            "\n"
            "exit status: 0 registered (and unregistered after a signal), 1 failure (a final\n"
            "non-2xx, refused credentials, a timeout), 2 usage error\n");
}

/* ------------------------------------------------------------------------- */
/* Teardown */

static void teardown(void *user_data)
{
    reg_app *a = user_data;
    ua_reg_close(&a->reg);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void reg_done(ua_reg *r, int code)
{
    reg_app *a = r->user_data;
    ua_run_finish(&a->run, code);
}

/* 408/503 before registering: the next target, if any, from the loop. */
static bool reg_failover(ua_reg *r)
{
    reg_app *a = r->user_data;
    return ua_run_failover(&a->run);
}

/* ------------------------------------------------------------------------- */
/* The layer's callbacks */

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    reg_app *a = user_data;
    if (a->run.done)
        return;
    (void)ua_reg_on_response(&a->reg, ct, resp, status);
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    reg_app *a = user_data;
    ua_answer_request(&a->u, st, req, src);
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    reg_app *a = user_data;
    ua_reg_on_terminated(&a->reg, t);
}

static void on_signal(uv_signal_t *h, int signum)
{
    reg_app *a = h->data;
    if (!ua_run_signal(&a->run, signum, a->stopping, &a->signalled_at,
                       "ending without unregistering", CLI_EXIT_REJECT))
        return;
    a->stopping = true;
    char why[32];
    snprintf(why, sizeof why, "signal %d", signum);
    ua_reg_stop(&a->reg, why);
}

/* ------------------------------------------------------------------------- */
/* Targets */

/* The endpoint is open on the next target: the first REGISTER. */
static void on_opened(void *user_data)
{
    reg_app *a = user_data;
    ua_reg_begin(&a->reg);
}

/* ------------------------------------------------------------------------- */

static int run(void *app, int argc, char **argv);

int cmd_register(int argc, char **argv)
{
    return ua_main(sizeof(reg_app), run, argc, argv);
}

/* The arguments besides the common ones, --user and --password. */
static int parse_arg(void *ctx, int argc, char **argv, int *i)
{
    reg_app *a = ctx;
    ua_reg *r = &a->reg;
    const char *s = argv[*i];
    bool has_value = *i + 1 < argc;
    int k = ua_reg_parse_arg(r, CMD, argc, argv, i, &a->registrar_text);
    if (k != 0)
        return k;
    if (strcmp(s, "--contact-host") == 0 && has_value) {
        r->contact_host = argv[++*i];
    } else if (strcmp(s, "--once") == 0) {
        r->once = true;
    } else {
        return 0;
    }
    return 1;
}

static int run(void *app, int argc, char **argv)
{
    reg_app *a = app;
    const char **const pos[] = {&a->aor_text};
    ua_reg *r = &a->reg;
    ua_reg_setup(r, CMD, &a->u, reg_done, reg_failover, a);
    int rc = ua_parse_args(&a->opts, CMD, argc, argv, register_usage, &r->user, &r->password,
                           parse_arg, a, pos, 1, false);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = ua_reg_prepare(r, a->aor_text, false, a->registrar_text, a->target_text,
                        sizeof a->target_text, &a->target, &a->loc, a->opts.transport);
    if (rc != 0)
        return rc;

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = true;
    ua_reg_attach(r);
    static const ua_run_ops ops = {
        on_opened, teardown, {NULL, on_request, on_response, NULL, on_terminated}};
    ua_run_init(&a->run, &a->u, &a->loc, &ops, a);
    a->run.located = &a->target;
    a->run.what = a->target_text;
    a->run.txn = &r->txn;
    a->run.locate_timeout = true;
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    ua_run_start(&a->run);
    return ua_run_wait(&a->run);
}
