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
#include "ua.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "csip register"
#define DEFAULT_EXPIRES 3600u
/* Challenges answered, and 423s obeyed, within one exchange before giving up. */
#define MAX_CHALLENGES 6
#define MAX_TOO_BRIEF 3
#define CRED_MAX 4096

/* What a challenge of one kind (401 or 407) asked for. */
typedef struct reg_auth {
    csip_hdr_id challenge_hdr; /* WWW-Authenticate or Proxy-Authenticate */
    const char *cred_name;     /* Authorization or Proxy-Authorization */
    csip_msg *msg;             /* owned copy of the response that challenged */
    const csip_auth *ch;       /* the challenge answered, inside msg */
    uint32_t nc;               /* requests sent under ch's nonce */
} reg_auth;

typedef struct reg_app {
    uv_loop_t loop;
    ua_opts opts;
    ua u;
    ua_locate loc;

    const char *aor_text;
    csip_uri aor;
    const char *registrar_text;
    char target_text[600]; /* the registrar URI, or sip:AOR-host */
    csip_uri target;
    const char *user, *password, *contact_host;
    char user_buf[256]; /* the AOR's user part unescaped, the default --user */
    uint32_t expires;   /* asked for */
    bool once;

    char ruri[300];
    char call_id[32];
    char from_tag[16];
    uint32_t cseq;
    char contact[400]; /* our Contact URI */
    csip_uri contact_uri;
    reg_auth auth[2]; /* 0: 401, 1: 407 */

    csip_txn *txn;
    bool unregistering; /* the exchange under way removes the binding */
    int challenges, too_brief;
    bool registered;       /* our binding stands */
    bool stopping;         /* a signal came: unregister and end */
    uint64_t signalled_at; /* uv_hrtime of that signal */

    uv_timer_t refresh;
    uv_timer_t deadline; /* --timeout, per exchange */
    uv_timer_t step;     /* failover and teardown, outside the layer's callbacks */
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
static void on_deadline(uv_timer_t *t);
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

static void clear_auth(reg_app *a)
{
    for (size_t i = 0; i < 2; i++) {
        csip_msg_free(a->auth[i].msg);
        a->auth[i].msg = NULL;
        a->auth[i].ch = NULL;
        a->auth[i].nc = 0;
    }
}

static void on_step(uv_timer_t *t)
{
    reg_app *a = t->data;
    if (!a->done) {
        next_target(a);
        return;
    }
    a->txn = NULL;
    ua_shutdown(&a->u);
    ua_locate_free(&a->loc);
    clear_auth(a);
    uv_close((uv_handle_t *)&a->refresh, NULL);
    uv_close((uv_handle_t *)&a->deadline, NULL);
    uv_close((uv_handle_t *)&a->step, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

/* ------------------------------------------------------------------------- */
/* Building and sending a REGISTER */

/* Appends "Name: value\r\n" answering slot s to extra. @return 0 or -1. */
static int add_credentials(reg_app *a, reg_auth *s, char *extra, size_t cap, char *note,
                           size_t note_cap)
{
    char cred[CRED_MAX];
    csip_auth_request req = {CSIP_STR("REGISTER"), csip_str_c(a->ruri), CSIP_STR_NULL};
    const char *user = a->user ? a->user : "";
    uint32_t nc = s->nc + 1;
    int n = csip_auth_client_answer(s->ch, csip_str_c(user), csip_str_c(a->password), &req, nc,
                                    CSIP_STR_NULL, cred, sizeof cred);
    if (n < 0) {
        fprintf(stderr, CMD ": cannot answer the challenge: %s\n", csip_strerror(n));
        return -1;
    }
    s->nc = nc;
    size_t len = strlen(extra);
    int k = snprintf(extra + len, cap - len, "%s: %s\r\n", s->cred_name, cred);
    if (k < 0 || (size_t)k >= cap - len)
        return -1;
    csip_auth_alg alg = CSIP_AUTH_ALG_MD5;
    (void)csip_auth_alg_parse(s->ch->algorithm, &alg);
    len = strlen(note);
    snprintf(note + len, note_cap - len, "%s%s %s nc=%u", len ? ", " : "[", s->cred_name,
             csip_auth_alg_name(alg), (unsigned)nc);
    return 0;
}

/* Sends the next REGISTER of the exchange (a binding, or its removal).
 * @return 0, or -1 (the run is finished with status 2). */
static int send_register(reg_app *a)
{
    char via[160], from[700], to[700], contact[420], extra[2 * CRED_MAX + 256], note[200];
    if (ua_via(&a->u, via, sizeof via) < 0) {
        finish(a, CLI_EXIT_USAGE);
        return -1;
    }
    snprintf(from, sizeof from, "<%.*s>;tag=%s", (int)a->aor.raw.len, a->aor.raw.p, a->from_tag);
    snprintf(to, sizeof to, "<%.*s>", (int)a->aor.raw.len, a->aor.raw.p);
    snprintf(contact, sizeof contact, "<%s>%s", a->contact, a->unregistering ? ";expires=0" : "");
    uint32_t expires = a->unregistering ? 0 : a->expires;
    snprintf(extra, sizeof extra, "Expires: %u\r\nUser-Agent: csip/%s\r\n", (unsigned)expires,
             csip_version());
    note[0] = 0;
    for (size_t i = 0; i < 2; i++) {
        if (a->auth[i].ch &&
            add_credentials(a, &a->auth[i], extra, sizeof extra, note, sizeof note) != 0) {
            finish(a, CLI_EXIT_REJECT);
            return -1;
        }
    }
    if (note[0]) {
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len, "]");
    }
    if (a->unregistering) {
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len, "%sExpires: 0", len ? " " : "");
    }
    csip_request_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.method = CSIP_STR("REGISTER");
    spec.ruri = csip_str_c(a->ruri);
    spec.via = csip_str_c(via);
    spec.from = csip_str_c(from);
    spec.to = csip_str_c(to);
    spec.call_id = csip_str_c(a->call_id);
    spec.cseq = ++a->cseq; /* RFC 3261 §10.2.4: same Call-ID, increasing CSeq */
    spec.contact = csip_str_c(contact);
    spec.extra = csip_str_c(extra);
    csip_msg *req;
    int rc = csip_request_new(&spec, NULL, &req);
    if (rc != 0) {
        fprintf(stderr, CMD ": cannot build the request: %s\n", csip_strerror(rc));
        finish(a, CLI_EXIT_USAGE);
        return -1;
    }
    if (ua_send(&a->u, req, note[0] ? note : NULL, NULL, &a->txn) != 0) {
        a->txn = NULL;
        finish(a, CLI_EXIT_USAGE);
        return -1;
    }
    return 0;
}

/* Starts an exchange: the first REGISTER, a refresh or the removal. */
static void start_exchange(reg_app *a, bool unregister)
{
    a->unregistering = unregister;
    a->challenges = a->too_brief = 0;
    uv_timer_stop(&a->refresh);
    uv_timer_start(&a->deadline, on_deadline, a->opts.timeout_ms, 0);
    (void)send_register(a);
}

/* ------------------------------------------------------------------------- */
/* Responses */

/* When to refresh a binding granted for `granted` seconds: at half its life,
 * or 5 s before it ends when that is earlier (short expiries). */
static uint64_t refresh_delay_ms(uint32_t granted)
{
    uint64_t g = granted, d = g * 500;
    if (g > 5 && (g - 5) * 1000 < d)
        d = (g - 5) * 1000;
    return d ? d : 500;
}

static void on_refresh(uv_timer_t *t)
{
    reg_app *a = t->data;
    if (!a->done && !a->txn)
        start_exchange(a, false);
}

/* A 401 or 407: answer it, or give up. @return true when a request went out. */
static bool answer_challenge(reg_app *a, const csip_msg *resp, int status)
{
    reg_auth *s = &a->auth[status == 401 ? 0 : 1];
    const csip_auth *ch;
    if (csip_auth_client_choose_msg(resp, s->challenge_hdr, &ch) != 0) {
        printf("final: %d %s: no Digest challenge with an algorithm csip supports\n", status,
               csip_status_reason(status));
        return false;
    }
    if (!a->password) {
        printf("final: %d %s: the registrar wants credentials (give --password)\n", status,
               csip_status_reason(status));
        return false;
    }
    bool stale = csip_str_ieq_c(ch->stale, "true");
    bool same_nonce = s->ch && csip_str_eq(ch->nonce, s->ch->nonce);
    if (!stale && s->ch && (same_nonce || s->nc == 1)) {
        printf("final: %d %s: the credentials of '%s' were refused\n", status,
               csip_status_reason(status), a->user ? a->user : "");
        return false;
    }
    if (++a->challenges > MAX_CHALLENGES) {
        printf("final: %d %s: still challenged after %d answers\n", status,
               csip_status_reason(status), MAX_CHALLENGES);
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
    return send_register(a) == 0;
}

/* The 200 OK to a REGISTER: find our binding, print them all. */
static void registered(reg_app *a, const csip_msg *resp)
{
    const csip_nameaddr *c;
    size_t n = 0;
    uint32_t granted = 0, hdr_expires;
    bool found = false;
    if (csip_msg_nameaddrs(resp, CSIP_HDR_CONTACT, &c, &n) != 0)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        bool ours = !c[i].star && csip_uri_equal(&c[i].uri, &a->contact_uri);
        if (ours && !found) {
            found = true;
            granted = c[i].has_expires                            ? c[i].expires
                      : csip_msg_expires(resp, &hdr_expires) == 0 ? hdr_expires
                                                                  : a->expires;
        }
        printf("binding: %.*s%s\n", (int)c[i].raw.len, c[i].raw.p, ours ? " (this one)" : "");
    }
    if (!found) {
        granted = csip_msg_expires(resp, &hdr_expires) == 0 ? hdr_expires : a->expires;
        printf("note: the 200 OK does not list our Contact; taking %u s\n", (unsigned)granted);
    }
    if (granted == 0) {
        printf("final: the registrar kept our binding for 0 s\n");
        a->registered = false;
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    a->registered = true;
    uv_timer_stop(&a->deadline);
    if (a->stopping) { /* a signal came meanwhile (with --once too): undo it */
        printf("registered: <%s> for %u s; removing it (signal)\n", a->contact, (unsigned)granted);
        start_exchange(a, true);
        return;
    }
    if (a->once) {
        printf("registered: <%s> for %u s\n", a->contact, (unsigned)granted);
        finish(a, CLI_EXIT_OK);
        return;
    }
    uint64_t d = refresh_delay_ms(granted);
    printf("registered: <%s> for %u s, refresh in %llu.%03u s\n", a->contact, (unsigned)granted,
           (unsigned long long)(d / 1000), (unsigned)(d % 1000));
    uv_timer_start(&a->refresh, on_refresh, d, 0);
}

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    reg_app *a = user_data;
    if (ct != a->txn || a->done)
        return;
    ua_print_response(&a->u, resp, status);
    fflush(stdout);
    if (status < 200)
        return;
    a->txn = NULL;
    int cls = status / 100;
    if (cls == 2) {
        if (a->unregistering) {
            a->registered = false;
            printf("unregistered: <%s>\n", a->contact);
            finish(a, CLI_EXIT_OK);
        } else {
            registered(a, resp);
        }
        return;
    }
    /* A signal came during the first registration: nothing to remove. */
    bool interrupted = a->stopping && !a->registered && !a->unregistering;
    if (resp && (status == 401 || status == 407 || status == 423) && interrupted) {
        printf("final: interrupted before the registration completed\n");
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    /* A signal during a refresh: what follows removes the binding instead. */
    if (a->stopping && a->registered && !a->unregistering) {
        a->unregistering = true;
        if (resp && status == 423) {
            (void)send_register(a);
            return;
        }
    }
    if (resp && (status == 401 || status == 407)) {
        if (!answer_challenge(a, resp, status))
            finish(a, CLI_EXIT_REJECT);
        return;
    }
    uint32_t min = 0;
    if (resp && status == 423 && !a->unregistering && csip_msg_min_expires(resp, &min) == 0 &&
        min > a->expires && ++a->too_brief <= MAX_TOO_BRIEF) {
        printf("note: the registrar wants at least %u s (Min-Expires)\n", (unsigned)min);
        a->expires = min;
        (void)send_register(a);
        return;
    }
    /* RFC 3263 §4.3: a timeout, a transport error or a 503 moves on to the
     * next target, while nothing is registered. */
    if (((status == 408 && !resp) || status == 503) && !a->registered && a->loc.next < a->loc.n) {
        uv_timer_start(&a->step, on_step, 0, 0);
        return;
    }
    if (resp) {
        csip_str reason = csip_msg_reason(resp);
        printf("final: %d %.*s\n", status, (int)reason.len, reason.p);
    } else {
        printf("final: %d %s\n", status, csip_status_reason(status));
    }
    finish(a, CLI_EXIT_REJECT);
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
    if (t == a->txn)
        a->txn = NULL;
}

static void on_deadline(uv_timer_t *t)
{
    reg_app *a = t->data;
    if (a->done)
        return;
    ua_sync(&a->u);
    printf("final: no final response within %llu ms\n", (unsigned long long)a->opts.timeout_ms);
    finish(a, CLI_EXIT_REJECT);
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
    printf("signal %d: %s\n", signum,
           a->registered ? "removing the binding" : "ending once the exchange under way ends");
    fflush(stdout);
    if (a->txn)
        return; /* on_response goes on from there */
    if (a->registered) {
        start_exchange(a, true);
    } else {
        printf("final: interrupted before the registration completed\n");
        finish(a, CLI_EXIT_REJECT);
    }
}

/* ------------------------------------------------------------------------- */
/* Targets */

/* Opens the endpoint for the next target and sends the first REGISTER. */
static void next_target(reg_app *a)
{
    csip_txn_callbacks cb = {NULL, on_request, on_response, NULL, on_terminated};
    while (a->loc.next < a->loc.n) {
        const csip_target *t = &a->loc.targets[a->loc.next++];
        int rc = ua_open(&a->u, t, &cb, a);
        if (rc == 2) {
            finish(a, CLI_EXIT_USAGE);
            return;
        }
        if (rc != 0)
            continue;
        const char *host = a->contact_host ? a->contact_host : a->u.local_host;
        const char *user = a->aor.user.len ? NULL : a->user;
        int n =
            snprintf(a->contact, sizeof a->contact, "sip:%.*s@%s:%u;transport=%s",
                     user ? (int)strlen(user) : (int)a->aor.user.len, user ? user : a->aor.user.p,
                     host, (unsigned)a->u.local_port, ua_transport_param(&a->u));
        if (n < 0 || (size_t)n >= sizeof a->contact ||
            csip_uri_parse(a->contact, (size_t)n, 0, &a->contact_uri) != 0) {
            fprintf(stderr, CMD ": '%s' is not a usable Contact\n", a->contact);
            finish(a, CLI_EXIT_USAGE);
            return;
        }
        clear_auth(a); /* another server: its own challenges */
        start_exchange(a, false);
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
    if (status != 0) {
        printf("final: cannot locate %.*s: %s\n", (int)a->target.host.len, a->target.host.p,
               csip_strerror(status));
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    next_target(a);
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
            a->user = argv[++i];
        } else if (strcmp(s, "--password") == 0 && has_value) {
            a->password = argv[++i];
        } else if (strcmp(s, "--expires") == 0 && has_value) {
            const char *v = argv[++i];
            if (csip_str_to_u32(csip_str_c(v), &a->expires) != 0 || a->expires == 0 ||
                a->expires > 0x7fffffffu) {
                fprintf(stderr, CMD ": --expires needs a number of seconds, 1 to 2147483647\n");
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(s, "--registrar") == 0 && has_value) {
            a->registrar_text = argv[++i];
        } else if (strcmp(s, "--contact-host") == 0 && has_value) {
            a->contact_host = argv[++i];
        } else if (strcmp(s, "--once") == 0) {
            a->once = true;
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
    ua_opts_init(&a->opts);
    a->expires = DEFAULT_EXPIRES;
    int rc = parse_args(a, argc, argv);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!is_sip_uri(a->aor_text, &a->aor)) {
        fprintf(stderr, CMD ": '%s' is not a sip: or sips: URI with a host\n", a->aor_text);
        return CLI_EXIT_USAGE;
    }
    if (!a->user && a->aor.user.len) {
        /* The AOR's user part, unescaped, is the default username. */
        int n = csip_unescape(a->aor.user, a->user_buf, sizeof a->user_buf - 1);
        if (n < 0 || memchr(a->user_buf, 0, (size_t)n)) {
            fprintf(stderr, CMD ": the AOR's user part is too long or holds %%00; give --user\n");
            return CLI_EXIT_USAGE;
        }
        a->user_buf[n] = 0;
        a->user = a->user_buf;
    }
    if (!a->aor.user.len && !a->user) {
        fprintf(stderr, CMD ": the AOR has no user part: give --user\n");
        return CLI_EXIT_USAGE;
    }
    if (a->contact_host && (!a->contact_host[0] || strpbrk(a->contact_host, " ;<>@\r\n\"") ||
                            strlen(a->contact_host) > 255)) {
        fprintf(stderr, CMD ": --contact-host '%s' is not a host\n", a->contact_host);
        return CLI_EXIT_USAGE;
    }
    /* RFC 3261 §10.2: the Request-URI names the domain of the registrar, no user part. */
    bool sips = a->aor.kind == CSIP_URI_SIPS;
    int n = a->aor.has_port ? snprintf(a->ruri, sizeof a->ruri, "%s:%.*s:%u", sips ? "sips" : "sip",
                                       (int)a->aor.host.len, a->aor.host.p, (unsigned)a->aor.port)
                            : snprintf(a->ruri, sizeof a->ruri, "%s:%.*s", sips ? "sips" : "sip",
                                       (int)a->aor.host.len, a->aor.host.p);
    if (n < 0 || (size_t)n >= sizeof a->ruri) {
        fprintf(stderr, CMD ": the AOR's host is too long\n");
        return CLI_EXIT_USAGE;
    }
    snprintf(a->target_text, sizeof a->target_text, "%s",
             a->registrar_text ? a->registrar_text : a->ruri);
    if (!is_sip_uri(a->target_text, &a->target)) {
        fprintf(stderr, CMD ": --registrar '%s' is not a sip: or sips: URI\n", a->target_text);
        return CLI_EXIT_USAGE;
    }
    rc = ua_locate_init(&a->loc, CMD, &a->target, a->opts.transport);
    if (rc != 0)
        return rc;

    ua_random_token(a->call_id, 24);
    ua_random_token(a->from_tag, 10);
    a->auth[0].challenge_hdr = CSIP_HDR_WWW_AUTHENTICATE;
    a->auth[0].cred_name = "Authorization";
    a->auth[1].challenge_hdr = CSIP_HDR_PROXY_AUTHENTICATE;
    a->auth[1].cred_name = "Proxy-Authorization";

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = true;
    uv_timer_init(&a->loop, &a->refresh);
    uv_timer_init(&a->loop, &a->deadline);
    uv_timer_init(&a->loop, &a->step);
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->refresh.data = a->deadline.data = a->step.data = a;
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);

    if (a->loc.n > 0) {
        next_target(a);
    } else {
        uv_timer_start(&a->deadline, on_deadline, a->opts.timeout_ms, 0);
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
