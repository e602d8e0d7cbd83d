/*
 * csip answer AOR [--user U] [--password P] [--expires N] [--registrar URI]
 *                 [--ring S] [--duration S] [--reject CODE] [--calls N]
 *                 [--transport udp|tcp|tls] [--timeout S] [--ca-file FILE] [--insecure] [-v]
 *
 * Registers AOR (as `csip register` does: reg.c) and answers the calls that
 * come to its Contact: 100 Trying, 180 Ringing for --ring seconds (default
 * 1), then 200 OK with an SDP answer to the offer (RFC 3264; no offer: ours
 * in the 200, the answer in the ACK), or --reject CODE. An offer with no
 * common codec gets 488. The call ends with the caller's BYE (answered 200)
 * or ours after --duration seconds. Inside a call, re-INVITE and UPDATE get a
 * new SDP answer (call.c). A CANCEL while it rings gets 200, and the INVITE
 * 487. A request that matches no dialog of ours gets 481, a MESSAGE (RFC
 * 3428) outside a dialog is printed and answered 200, OPTIONS 200.
 *
 * Runs until SIGINT or SIGTERM (calls ended: BYE, or 480 while ringing; then
 * the binding removed), or until --calls N calls have been handled.
 *
 * Exit status: 0 stopped and unregistered; 1 the registration failed (or its
 * removal), a second signal; 2 usage error or no socket.
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "call.h"
#include "cli.h"
#include "csip/csip.h"
#include "reg.h"
#include "ua.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "csip answer"
#define DEFAULT_RING_MS 1000u
/* Calls at once; more get 486 Busy Here. */
#define MAX_CALLS 16
/* After a signal, how long the calls may take to end before the run ends anyway. */
#define STOP_GUARD_MS 70000u

typedef struct ans_app ans_app;

typedef struct ans_call {
    ua_call c; /* first: a transaction's user data is both */
    ans_app *app;
    struct ans_call *next;
    unsigned id;
    csip_txn *inv_st; /* the INVITE's server transaction, until it ends */
    bool final_sent;
    bool answered;
    uv_timer_t ring, duration;
    int pending; /* close callbacks to come */
} ans_call;

struct ans_app {
    uv_loop_t loop;
    ua_opts opts;
    ua u;
    ua_locate loc;
    ua_reg reg;
    ua_run run;
    csip_dialog_table *tab;

    const char *aor_text, *registrar_text;
    char target_text[600];
    csip_uri target;
    uint64_t ring_ms, duration_ms;
    int reject;
    unsigned max_calls, handled, next_id;
    ans_call *calls;
    size_t n_calls;
    char contact[420]; /* <our Contact> */
    bool waiting;      /* "waiting for calls" printed */

    bool stopping;
    uint64_t signalled_at;
    char stop_why[40];
    uv_timer_t stop_guard;
    uv_signal_t sigint, sigterm;
};

static void answer_usage(FILE *f)
{
    fprintf(f,
            "usage: csip answer AOR [--user U] [--password P] [--expires N] [--registrar URI]\n"
            "                       [--ring S] [--duration S] [--reject CODE] [--calls N]\n"
            "                       [--transport udp|tcp|tls] [--timeout S] [--ca-file FILE]\n"
            "                       [--insecure] [-v]\n"
            "\n"
            "Registers AOR and answers the calls to it: 180 Ringing for --ring seconds, then\n"
            "200 OK with an SDP answer (or --reject CODE); hangs up after --duration, answers\n"
            "BYE, re-INVITE, UPDATE, CANCEL and MESSAGE. Ctrl-C ends the calls and removes the\n"
            "binding. Each message sent and received is printed on one line (-v: in full).\n"
            "  --user U         username for digest authentication (default: the AOR's user)\n"
            "  --password P     password, for when the registrar challenges\n"
            "  --expires N      registration expiry to ask for, seconds (default 3600)\n"
            "  --registrar URI  where to send the REGISTER (default: the AOR's domain)\n"
            "  --ring S         ring S seconds before answering (default 1; 0: at once)\n"
            "  --duration S     hang up S seconds after answering (default: the caller does)\n"
            "  --reject CODE    reject calls with CODE (400-699) after ringing\n"
            "  --calls N        stop (and unregister) after N calls\n"
            "  --transport      udp, tcp or tls (default: the registrar URI's, else UDP)\n"
            "  --timeout S      give up on a registration exchange after S seconds (default 32)\n"
            "  --ca-file, --insecure  TLS trust anchors, or no verification\n"
            "\n"
            "exit status: 0 stopped and unregistered, 1 the registration failed, 2 usage error\n");
}

/* ------------------------------------------------------------------------- */
/* Teardown */

static void close_call(ans_call *ac);

static void teardown(void *user_data)
{
    ans_app *a = user_data;
    while (a->calls)
        close_call(a->calls);
    csip_dialog_table_free(a->tab);
    a->tab = NULL;
    ua_reg_close(&a->reg);
    uv_close((uv_handle_t *)&a->stop_guard, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

/* ------------------------------------------------------------------------- */
/* Calls */

static void call_handle_closed(uv_handle_t *h)
{
    ans_call *ac = h->data;
    if (--ac->pending == 0)
        free(ac);
}

static void call_closed(ua_call *c)
{
    ans_call *ac = (ans_call *)c;
    if (--ac->pending == 0)
        free(ac);
}

/* Unlinks a call and frees it once its handles are closed. */
static void close_call(ans_call *ac)
{
    ans_app *a = ac->app;
    for (ans_call **p = &a->calls; *p; p = &(*p)->next) {
        if (*p == ac) {
            *p = ac->next;
            a->n_calls--;
            break;
        }
    }
    if (ac->inv_st)
        csip_txn_set_user_data(ac->inv_st, NULL);
    ac->inv_st = NULL;
    ac->pending = 3;
    uv_close((uv_handle_t *)&ac->ring, call_handle_closed);
    uv_close((uv_handle_t *)&ac->duration, call_handle_closed);
    call_close(&ac->c);
}

/* After a signal, or --calls N: the binding goes once no call is left. */
static void maybe_stop(ans_app *a)
{
    if (a->run.done || a->n_calls > 0)
        return;
    if (!a->stopping && a->max_calls && a->handled >= a->max_calls) {
        a->stopping = true;
        snprintf(a->stop_why, sizeof a->stop_why, "%u call%s handled", a->handled,
                 a->handled == 1 ? "" : "s");
    }
    if (a->stopping)
        ua_reg_stop(&a->reg, a->stop_why);
}

/* A call is over: counted, freed, and maybe the run ends. */
static void call_over(ans_call *ac)
{
    ans_app *a = ac->app;
    a->handled++;
    close_call(ac);
    fflush(stdout);
    maybe_stop(a);
}

static void on_call_ended(ua_call *c, call_end how)
{
    ans_call *ac = (ans_call *)c;
    switch (how) {
    case CALL_END_PEER_BYE:
        printf("%s: ended by the caller (BYE)\n", c->label);
        break;
    case CALL_END_OUR_BYE:
        printf("%s: ended (our BYE answered %d)\n", c->label, c->bye_status);
        break;
    case CALL_END_LOST:
        printf("%s: ended: the dialog is lost\n", c->label);
        break;
    }
    call_over(ac);
}

static void on_duration(uv_timer_t *t)
{
    ans_call *ac = t->data;
    printf("%s: %llu.%03u s: hanging up\n", ac->c.label,
           (unsigned long long)(ac->app->duration_ms / 1000),
           (unsigned)(ac->app->duration_ms % 1000));
    call_hangup(&ac->c);
}

/* A final response to the INVITE, built by the dialog layer. */
static int final_response(ans_call *ac, int code, csip_msg **out)
{
    int rc = csip_dialog_response(ac->c.dlg, csip_txn_request(ac->inv_st), code, NULL, out);
    if (rc != 0)
        printf("%s: cannot build the %d: %s\n", ac->c.label, code, csip_strerror(rc));
    return rc;
}

/* Rejects a ringing call (--reject, a signal): the dialog ends with it. */
static void reject_call(ans_call *ac, int code, const char *why)
{
    csip_msg *resp;
    ac->final_sent = true;
    uv_timer_stop(&ac->ring);
    if (ac->inv_st && final_response(ac, code, &resp) == 0)
        (void)ua_respond(ac->c.u, ac->inv_st, resp, NULL);
    printf("%s: %s (%d %s)\n", ac->c.label, why, code, csip_status_reason(code));
    call_over(ac);
}

static void on_ring(uv_timer_t *t)
{
    ans_call *ac = t->data;
    ans_app *a = ac->app;
    if (ac->final_sent || !ac->inv_st)
        return;
    if (a->reject) {
        reject_call(ac, a->reject, "rejected");
        return;
    }
    csip_msg *ok;
    if (final_response(ac, 200, &ok) != 0)
        return;
    const char *note = "[SDP answer]";
    csip_str body;
    if (ac->c.my_sdp_text) {
        body = csip_str_c(ac->c.my_sdp_text); /* the answer made when the INVITE came */
    } else if (call_offer(&ac->c, &body) == 0) {
        note = "[SDP offer]"; /* no offer in the INVITE: ours, the answer in the ACK */
    } else {
        csip_msg_free(ok);
        reject_call(ac, 500, "failed");
        return;
    }
    if (csip_msg_set_body(ok, CSIP_STR("application/sdp"), body) != 0) {
        csip_msg_free(ok);
        reject_call(ac, 500, "failed");
        return;
    }
    ac->final_sent = ac->answered = true;
    call_send_ok(&ac->c, ac->inv_st, ok, note);
    if (!ac->c.offer_out)
        call_print_media(&ac->c, false);
    if (a->duration_ms) {
        printf("%s: answered; hanging up in %llu.%03u s\n", ac->c.label,
               (unsigned long long)(a->duration_ms / 1000), (unsigned)(a->duration_ms % 1000));
        uv_timer_start(&ac->duration, on_duration, a->duration_ms, 0);
    } else {
        printf("%s: answered\n", ac->c.label);
    }
    fflush(stdout);
}

/* A new INVITE (no To tag). */
static void new_call(ans_app *a, csip_txn *st, const csip_msg *req)
{
    if (a->stopping || a->n_calls >= MAX_CALLS || !a->reg.is_registered) {
        (void)ua_respond_code(&a->u, st, a->stopping ? 480 : 486, NULL);
        return;
    }
    ans_call *ac = calloc(1, sizeof *ac);
    if (!ac) {
        (void)ua_respond_code(&a->u, st, 500, NULL);
        return;
    }
    ac->app = a;
    ac->id = ++a->next_id;
    ac->next = a->calls;
    a->calls = ac;
    a->n_calls++;
    ua_call *c = &ac->c;
    c->u = &a->u;
    c->tab = a->tab;
    snprintf(c->label, sizeof c->label, "call %u", ac->id);
    snprintf(c->contact, sizeof c->contact, "%s", a->contact);
    c->sdp_user = "-";
    c->ended = on_call_ended;
    c->closed = call_closed;
    c->user_data = ac;
    uv_timer_init(&a->loop, &ac->ring);
    uv_timer_init(&a->loop, &ac->duration);
    ac->ring.data = ac->duration.data = ac;
    ac->inv_st = st;
    csip_txn_set_user_data(st, ac);
    /* 100 at once rather than the transaction layer's after 200 ms, so that
     * it is printed like every other message */
    (void)ua_respond_code(&a->u, st, 100, NULL);
    if (call_init(c) != 0) {
        ac->final_sent = true;
        (void)ua_respond_code(&a->u, st, 500, NULL);
        call_over(ac);
        return;
    }
    csip_str answer;
    size_t accepted;
    if (call_has_sdp(req) && call_answer(c, csip_msg_body(req), &answer, &accepted) != 0) {
        ac->final_sent = true;
        (void)ua_respond_code(&a->u, st, 488, NULL);
        printf("%s: refused (488 Not Acceptable Here)\n", c->label);
        call_over(ac);
        return;
    }
    char tag[24];
    csip_msg *ringing;
    csip_dialog *dlg;
    unsigned flags = csip_txn_peer(st)->transport == CSIP_TP_TLS ? CSIP_DIALOG_TLS : 0;
    int rc = csip_dialog_new_tag(tag, sizeof tag);
    if (rc >= 0)
        rc = csip_dialog_uas_response(req, 180, NULL, csip_str_c(tag), csip_str_c(c->contact), NULL,
                                      &ringing);
    if (rc >= 0 && (rc = csip_dialog_uas_new(a->tab, req, ringing, flags, &dlg)) != 0)
        csip_msg_free(ringing);
    if (rc < 0) {
        ac->final_sent = true;
        int code = rc == CSIP_ERR_PARSE_MISSING_HEADER ? 400 : 500;
        (void)ua_respond_code(&a->u, st, code, NULL);
        printf("%s: refused (%d): %s\n", c->label, code, csip_strerror(rc));
        call_over(ac);
        return;
    }
    call_set_dialog(c, dlg);
    const csip_nameaddr *from;
    csip_str who = csip_msg_from(req, &from) == 0 ? from->uri.raw : CSIP_STR("?");
    printf("%s: from %.*s, ringing for %llu.%03u s\n", c->label, (int)who.len, who.p,
           (unsigned long long)(a->ring_ms / 1000), (unsigned)(a->ring_ms % 1000));
    (void)ua_respond(&a->u, st, ringing, NULL);
    uv_timer_start(&ac->ring, on_ring, a->ring_ms, 0);
}

/* A CANCEL: of a ringing call (200, then 487 to its INVITE), or of nothing we know. */
static void on_cancel(ans_app *a, csip_txn *st, const csip_msg *req)
{
    csip_txn *inv = csip_txn_layer_find_invite(csip_txn_layer_of(st), req);
    ans_call *ac = inv ? csip_txn_user_data(inv) : NULL;
    if (!inv) {
        (void)ua_respond_code(&a->u, st, 481, NULL);
        return;
    }
    (void)ua_respond_code(&a->u, st, 200, NULL); /* RFC 3261 §9.2 */
    if (!ac || ac->final_sent || ac->inv_st != inv)
        return; /* answered already: the CANCEL has no effect */
    reject_call(ac, 487, "cancelled by the caller");
}

/* ------------------------------------------------------------------------- */
/* The layer's callbacks */

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    ans_app *a = user_data;
    if (a->run.done)
        return;
    if (ua_reg_on_response(&a->reg, ct, resp, status))
        return;
    ua_call *c = csip_txn_user_data(ct);
    if (c)
        (void)call_on_response(c, ct, resp, status);
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    ans_app *a = user_data;
    ua_print_request_in(&a->u, req, src, call_has_sdp(req) ? "[SDP]" : NULL);
    if (a->run.done) {
        if (st)
            (void)ua_respond_code(&a->u, st, 480, NULL);
        return;
    }
    csip_method m = csip_msg_method(req);
    if (st && m == CSIP_METHOD_CANCEL) {
        on_cancel(a, st, req);
        return;
    }
    csip_dialog *d;
    if (csip_dialog_table_match(a->tab, req, &d) == 0 && call_of(d)) {
        call_on_request(call_of(d), st, req);
        return;
    }
    const csip_nameaddr *to;
    if (st && m == CSIP_METHOD_INVITE && csip_msg_to(req, &to) == 0 && !to->tag.p) {
        new_call(a, st, req);
        return;
    }
    call_reply_outside(&a->u, st, req);
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    ans_app *a = user_data;
    ua_reg_on_terminated(&a->reg, t);
    ans_call *ac = csip_txn_user_data(t);
    if (!ac)
        return;
    call_on_terminated(&ac->c, t);
    if (ac->inv_st == t)
        ac->inv_st = NULL;
}

/* ------------------------------------------------------------------------- */
/* The registration */

static void reg_done(ua_reg *r, int code)
{
    ans_app *a = r->user_data;
    if (!a->stopping && code == 0)
        code = CLI_EXIT_REJECT; /* the binding went without being asked to */
    ua_run_finish(&a->run, code);
}

static bool reg_failover(ua_reg *r)
{
    ans_app *a = r->user_data;
    return ua_run_failover(&a->run);
}

static void reg_registered(ua_reg *r, uint32_t granted)
{
    (void)granted;
    ans_app *a = r->user_data;
    snprintf(a->contact, sizeof a->contact, "<%s>", r->contact);
    if (!a->waiting) {
        a->waiting = true;
        printf("waiting for calls to %s%s\n", a->aor_text, a->reject ? " (rejecting them)" : "");
        fflush(stdout);
    }
}

static void on_stop_guard(uv_timer_t *t)
{
    ans_app *a = t->data;
    printf("final: the calls did not end within %u s\n", STOP_GUARD_MS / 1000u);
    ua_run_finish(&a->run, CLI_EXIT_REJECT);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ans_app *a = h->data;
    if (!ua_run_signal(&a->run, signum, a->stopping && a->signalled_at, &a->signalled_at,
                       "ending without unregistering", CLI_EXIT_REJECT))
        return;
    a->stopping = true;
    snprintf(a->stop_why, sizeof a->stop_why, "signal %d", signum);
    if (a->n_calls == 0) {
        maybe_stop(a);
        return;
    }
    printf("signal %d: ending %zu call%s\n", signum, a->n_calls, a->n_calls == 1 ? "" : "s");
    uv_timer_start(&a->stop_guard, on_stop_guard, STOP_GUARD_MS, 0);
    ans_call *next;
    for (ans_call *ac = a->calls; ac; ac = next) {
        next = ac->next;
        if (!ac->final_sent)
            reject_call(ac, 480, "not answered: stopping");
        else
            call_hangup(&ac->c);
    }
    fflush(stdout);
}

/* The endpoint is open on the next target: the first REGISTER. */
static void on_opened(void *user_data)
{
    ans_app *a = user_data;
    ua_reg_begin(&a->reg);
}

/* ------------------------------------------------------------------------- */

static int run(void *app, int argc, char **argv);

int cmd_answer(int argc, char **argv)
{
    return ua_main(sizeof(ans_app), run, argc, argv);
}

/* The arguments besides the common ones, --user and --password. */
static int parse_arg(void *ctx, int argc, char **argv, int *i)
{
    ans_app *a = ctx;
    const char *s = argv[*i];
    bool has_value = *i + 1 < argc;
    int k = ua_reg_parse_arg(&a->reg, CMD, argc, argv, i, &a->registrar_text);
    if (k != 0)
        return k;
    uint32_t n;
    if (strcmp(s, "--ring") == 0 && has_value) {
        const char *v = argv[++*i];
        if (strcmp(v, "0") != 0 && !ua_parse_seconds(v, &a->ring_ms)) {
            fprintf(stderr, CMD ": --ring needs a number of seconds\n");
            return -1;
        }
        if (strcmp(v, "0") == 0)
            a->ring_ms = 0;
    } else if (strcmp(s, "--duration") == 0 && has_value) {
        if (!ua_parse_seconds(argv[++*i], &a->duration_ms)) {
            fprintf(stderr, CMD ": --duration needs a positive number of seconds\n");
            return -1;
        }
    } else if (strcmp(s, "--reject") == 0 && has_value) {
        if (csip_str_to_u32(csip_str_c(argv[++*i]), &n) != 0 || n < 400 || n > 699) {
            fprintf(stderr, CMD ": --reject needs a status code 400-699\n");
            return -1;
        }
        a->reject = (int)n;
    } else if (strcmp(s, "--calls") == 0 && has_value) {
        if (csip_str_to_u32(csip_str_c(argv[++*i]), &n) != 0 || n == 0) {
            fprintf(stderr, CMD ": --calls needs a positive number\n");
            return -1;
        }
        a->max_calls = n;
    } else {
        return 0;
    }
    return 1;
}

static int run(void *app, int argc, char **argv)
{
    ans_app *a = app;
    const char **const pos[] = {&a->aor_text};
    ua_reg *r = &a->reg;
    ua_reg_setup(r, CMD, &a->u, reg_done, reg_failover, a);
    r->registered = reg_registered;
    a->ring_ms = DEFAULT_RING_MS;
    int rc = ua_parse_args(&a->opts, CMD, argc, argv, answer_usage, &r->user, &r->password,
                           parse_arg, a, pos, 1, false);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = ua_reg_prepare(r, a->aor_text, true, a->registrar_text, a->target_text,
                        sizeof a->target_text, &a->target, &a->loc, a->opts.transport);
    if (rc != 0)
        return rc;
    if (csip_dialog_table_new(NULL, &a->tab) != 0) {
        fprintf(stderr, CMD ": out of memory\n");
        return CLI_EXIT_USAGE;
    }

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = a->u.show_method = a->u.many_txns = true;
    ua_reg_attach(r);
    static const ua_run_ops ops = {
        on_opened, teardown, {NULL, on_request, on_response, NULL, on_terminated}};
    ua_run_init(&a->run, &a->u, &a->loc, &ops, a);
    a->run.located = &a->target;
    a->run.what = a->target_text;
    a->run.txn = &r->txn;
    a->run.locate_timeout = true;
    uv_timer_init(&a->loop, &a->stop_guard);
    a->stop_guard.data = a;
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    ua_run_start(&a->run);
    return ua_run_wait(&a->run);
}
