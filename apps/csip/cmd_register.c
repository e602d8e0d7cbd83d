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
#define DEFAULT_EXPIRES 3600u

typedef struct reg_app {
    uv_loop_t loop;
    ua_opts opts;
    ua u;
    ua_locate loc;
    ua_reg reg;

    const char *aor_text;
    const char *registrar_text;
    char target_text[600]; /* the registrar URI, or sip:AOR-host */
    csip_uri target;

    bool stopping;         /* a signal came */
    uint64_t signalled_at; /* uv_hrtime of that signal */
    uv_timer_t step;       /* failover and teardown, outside the layer's callbacks */
    uv_timer_t locating;   /* --timeout while the registrar is located */
    uv_signal_t sigint, sigterm;
    int exit_code;
    bool done;
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

static void on_step(uv_timer_t *t);
static void next_target(reg_app *a);

/* Ends the run from the loop (never from inside a callback of the layer). */
static void finish(reg_app *a, int code)
{
    if (a->done)
        return;
    a->done = true;
    a->exit_code = code;
    uv_timer_start(&a->step, on_step, 0, 0);
}

static void on_step(uv_timer_t *t)
{
    reg_app *a = t->data;
    if (!a->done) {
        next_target(a);
        return;
    }
    ua_reg_close(&a->reg);
    ua_shutdown(&a->u);
    ua_locate_free(&a->loc);
    uv_close((uv_handle_t *)&a->step, NULL);
    uv_close((uv_handle_t *)&a->locating, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void reg_done(ua_reg *r, int code)
{
    finish(r->user_data, code);
}

/* 408/503 before registering: the next target, if any, from the loop. */
static bool reg_failover(ua_reg *r)
{
    reg_app *a = r->user_data;
    if (a->loc.next >= a->loc.n)
        return false;
    uv_timer_start(&a->step, on_step, 0, 0);
    return true;
}

/* ------------------------------------------------------------------------- */
/* The layer's callbacks */

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    reg_app *a = user_data;
    if (a->done)
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
    if (a->done)
        return;
    uint64_t now = uv_hrtime();
    if (a->stopping) {
        /* The same signal sent to the process and to its group (a wrapper
         * such as timeout(1) does) comes twice at once: only a second one
         * from the user, later, ends the run at once. */
        if (now - a->signalled_at < 500u * 1000u * 1000u)
            return;
        printf("signal %d again: ending without unregistering\n", signum);
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    a->stopping = true;
    a->signalled_at = now;
    char why[32];
    snprintf(why, sizeof why, "signal %d", signum);
    ua_reg_stop(&a->reg, why);
}

/* ------------------------------------------------------------------------- */
/* Targets */

/* Opens the endpoint for the next target and sends the first REGISTER. */
static void next_target(reg_app *a)
{
    csip_txn_callbacks cb = {NULL, on_request, on_response, NULL, on_terminated};
    while (a->loc.next < a->loc.n) {
        const csip_target *t = &a->loc.targets[a->loc.next++];
        a->reg.txn = NULL;
        int rc = ua_open(&a->u, t, &cb, a);
        if (rc == 2) {
            finish(a, CLI_EXIT_USAGE);
            return;
        }
        if (rc != 0)
            continue;
        ua_reg_begin(&a->reg);
        return;
    }
    printf("final: no target of %s could be reached\n", a->target_text);
    finish(a, CLI_EXIT_REJECT);
}

static void on_located(void *user_data, int status)
{
    reg_app *a = user_data;
    if (a->done)
        return;
    uv_timer_stop(&a->locating);
    if (status != 0) {
        printf("final: cannot locate %.*s: %s\n", (int)a->target.host.len, a->target.host.p,
               csip_strerror(status));
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    next_target(a);
}

static void on_locate_deadline(uv_timer_t *t)
{
    reg_app *a = t->data;
    if (a->done)
        return;
    printf("final: no final response within %llu ms\n", (unsigned long long)a->opts.timeout_ms);
    finish(a, CLI_EXIT_REJECT);
}

/* ------------------------------------------------------------------------- */

static int run(reg_app *a, int argc, char **argv);

int cmd_register(int argc, char **argv)
{
    reg_app *a = calloc(1, sizeof *a);
    if (!a)
        return CLI_EXIT_USAGE;
    int rc = run(a, argc, argv);
    free(a);
    return rc;
}

static bool is_sip_uri(const char *text, csip_uri *out)
{
    return csip_uri_parse(text, strlen(text), 0, out) == 0 &&
           (out->kind == CSIP_URI_SIP || out->kind == CSIP_URI_SIPS) && out->host.len > 0;
}

static int parse_args(reg_app *a, int argc, char **argv)
{
    ua_reg *r = &a->reg;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has_value = i + 1 < argc;
        int k = ua_opts_parse(&a->opts, CMD, argc, argv, &i);
        if (k < 0)
            return CLI_EXIT_USAGE;
        if (k > 0)
            continue;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            register_usage(stdout);
            return -1;
        } else if (strcmp(s, "--user") == 0 && has_value) {
            r->user = argv[++i];
        } else if (strcmp(s, "--password") == 0 && has_value) {
            r->password = argv[++i];
        } else if (strcmp(s, "--expires") == 0 && has_value) {
            const char *v = argv[++i];
            if (csip_str_to_u32(csip_str_c(v), &r->expires) != 0 || r->expires == 0 ||
                r->expires > 0x7fffffffu) {
                fprintf(stderr, CMD ": --expires needs a number of seconds, 1 to 2147483647\n");
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(s, "--registrar") == 0 && has_value) {
            a->registrar_text = argv[++i];
        } else if (strcmp(s, "--contact-host") == 0 && has_value) {
            r->contact_host = argv[++i];
        } else if (strcmp(s, "--once") == 0) {
            r->once = true;
        } else if (s[0] == '-' || a->aor_text) {
            register_usage(stderr);
            return CLI_EXIT_USAGE;
        } else {
            a->aor_text = s;
        }
    }
    if (!a->aor_text) {
        register_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static int run(reg_app *a, int argc, char **argv)
{
    ua_reg *r = &a->reg;
    ua_opts_init(&a->opts);
    r->expires = DEFAULT_EXPIRES;
    r->cmd = CMD;
    r->u = &a->u;
    r->done = reg_done;
    r->failover = reg_failover;
    r->user_data = a;
    int rc = parse_args(a, argc, argv);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!is_sip_uri(a->aor_text, &r->aor)) {
        fprintf(stderr, CMD ": '%s' is not a sip: or sips: URI with a host\n", a->aor_text);
        return CLI_EXIT_USAGE;
    }
    if ((rc = ua_reg_init(r)) != 0)
        return rc;
    snprintf(a->target_text, sizeof a->target_text, "%s",
             a->registrar_text ? a->registrar_text : r->ruri);
    if (!is_sip_uri(a->target_text, &a->target)) {
        fprintf(stderr, CMD ": --registrar '%s' is not a sip: or sips: URI\n", a->target_text);
        return CLI_EXIT_USAGE;
    }
    rc = ua_locate_init(&a->loc, CMD, &a->target, a->opts.transport);
    if (rc != 0)
        return rc;

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = true;
    ua_reg_attach(r);
    uv_timer_init(&a->loop, &a->step);
    uv_timer_init(&a->loop, &a->locating);
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->step.data = a->locating.data = a;
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);

    if (a->loc.n > 0) {
        next_target(a);
    } else {
        uv_timer_start(&a->locating, on_locate_deadline, a->opts.timeout_ms, 0);
        rc = ua_locate_start(&a->loc, &a->loop, on_located, a);
        if (rc != 0) {
            printf("final: cannot locate %.*s: %s\n", (int)a->target.host.len, a->target.host.p,
                   csip_strerror(rc));
            finish(a, CLI_EXIT_REJECT);
        }
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_run(&a->loop, UV_RUN_DEFAULT); /* close callbacks queued by the last teardown */
    if (uv_loop_close(&a->loop) != 0)
        fprintf(stderr, CMD ": handles left open\n");
    fflush(stdout);
    return a->exit_code;
}
