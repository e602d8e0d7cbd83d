/*
 * csip call TARGET [--from AOR] [--user U] [--password P] [--proxy URI]
 *                  [--duration S] [--reinvite S] [--update S] [--transport udp|tcp|tls]
 *                  [--timeout S] [--ca-file FILE] [--insecure] [-v]
 *
 * Calls TARGET: an INVITE with an SDP offer (RFC 3264: G.711 µ-law and A-law
 * and telephone-event, on an RTP port of a socket of our own; no media flows),
 * digest challenges answered (401/407, as register does), provisional
 * responses shown, the 2xx acknowledged through the dialog layer (the ACK
 * follows the Record-Route set), then BYE after --duration or on Ctrl-C, or
 * the peer's BYE answered. Ctrl-C while it rings sends CANCEL (RFC 3261 §9.1:
 * once a provisional response came). --reinvite S and --update S send a
 * re-INVITE or an UPDATE (RFC 3311) with a new offer S seconds after the
 * answer.
 *
 * The INVITE goes to --proxy when given (located like register's
 * --registrar), else to TARGET's host; requests in the dialog go where the
 * route set and the remote target say.
 *
 * Exit status: 0 answered and ended normally (a BYE either way answered 2xx);
 * 1 not answered: a final non-2xx (printed), no answer within --timeout, no
 * response, refused credentials; 2 usage error or no socket; 3 stopped
 * (Ctrl-C, SIGTERM) before an answer; 4 answered but ended otherwise (our BYE
 * refused or unanswered, the dialog lost to a 481 or 408, a second signal).
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "call.h"
#include "cli.h"
#include "csip/csip.h"
#include "ua.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "csip call"
#define DEFAULT_FROM "sip:anonymous@anonymous.invalid"

enum {
    CALL_EXIT_STOPPED = 3,  /* stopped before an answer */
    CALL_EXIT_ABNORMAL = 4, /* answered, ended otherwise than by a BYE answered 2xx */
};

typedef struct call_app {
    uv_loop_t loop;
    ua_opts opts;
    ua u;
    ua_locate loc;
    ua_auth auth;
    ua_run run;
    csip_dialog_table *tab;
    ua_call call;
    bool call_ready; /* call_init done */

    ua_sender snd;
    uint64_t duration_ms, reinvite_ms, update_ms;

    csip_txn *inv;    /* the INVITE under way (the last one sent) */
    csip_txn *cancel; /* our CANCEL */
    bool provisional; /* a 1xx came for inv */
    bool ringing;     /* a 180 or 183 was reported */
    bool answered;
    int cancel_why; /* 0, or why we cancel: 1 a signal, 2 --timeout */
    bool cancel_sent;
    int fork_marker; /* its address: the user data of BYEs to other forks */

    uv_timer_t noanswer, duration, reinvite, update;
    uv_signal_t sigint, sigterm;
    bool stopping;
    uint64_t signalled_at;
} call_app;

static void call_usage(FILE *f)
{
    fprintf(f,
            "usage: csip call TARGET [--from AOR] [--user U] [--password P] [--proxy URI]\n"
            "                        [--duration S] [--reinvite S] [--update S]\n"
            "                        [--transport udp|tcp|tls] [--timeout S] [--ca-file FILE]\n"
            "                        [--insecure] [-v]\n"
            "\n"
            "Calls TARGET (a sip: or sips: URI) with an SDP offer (PCMU, PCMA, telephone-event),\n"
            "answers digest challenges, acknowledges the answer, and hangs up (BYE) after\n"
            "--duration or on Ctrl-C; Ctrl-C while it rings cancels the call. Each message sent\n"
            "and received is printed on one line (-v: in full).\n"
            "  --from AOR       who calls (default " DEFAULT_FROM ")\n"
            "  --user U         username for digest authentication (default: From's user)\n"
            "  --password P     password, for when the server challenges\n"
            "  --proxy URI      where to send the INVITE (default: TARGET's host, located with\n"
            "                   RFC 3263; \"localhost\" is loopback)\n"
            "  --duration S     hang up S seconds after the answer (default: on Ctrl-C or the\n"
            "                   peer's BYE)\n"
            "  --reinvite S     send a re-INVITE with a new offer S seconds after the answer\n"
            "  --update S       send an UPDATE with a new offer S seconds after the answer\n"
            "  --transport      udp, tcp or tls (default: the URI's, TLS for sips:, else UDP)\n"
            "  --timeout S      cancel the call when it is not answered within S seconds\n"
            "                   (default 32)\n"
            "  --ca-file, --insecure  TLS trust anchors, or no verification\n"
            "\n"
            "exit status: 0 answered and ended normally, 1 not answered (the final response is\n"
            "printed), 2 usage error, 3 stopped before an answer, 4 answered but ended\n"
            "abnormally (BYE refused or unanswered, dialog lost)\n");
}

/* ------------------------------------------------------------------------- */
/* Teardown */

static void teardown(void *user_data)
{
    call_app *a = user_data;
    if (a->call_ready)
        call_close(&a->call); /* before the endpoint: it forgets its transactions */
    csip_dialog_table_free(a->tab);
    a->tab = NULL;
    ua_auth_clear(&a->auth);
    uv_close((uv_handle_t *)&a->noanswer, NULL);
    uv_close((uv_handle_t *)&a->duration, NULL);
    uv_close((uv_handle_t *)&a->reinvite, NULL);
    uv_close((uv_handle_t *)&a->update, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

/* ------------------------------------------------------------------------- */
/* The INVITE */

/* Sends the INVITE (again, with credentials, after a challenge). @return 0 or -1 (finished). */
static int send_invite(call_app *a)
{
    ua_sender_hdrs h;
    char contact[440], extra[2 * 4096 + 256], note[200];
    if (ua_sender_headers(&a->snd, &a->u, &h) < 0) {
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
        return -1;
    }
    snprintf(contact, sizeof contact, "%s", a->call.contact);
    snprintf(extra, sizeof extra,
             "Allow: INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS, MESSAGE, INFO\r\n"
             "User-Agent: csip/%s\r\n",
             csip_version());
    note[0] = 0;
    if (ua_auth_add(&a->auth, CMD, "INVITE", a->snd.target_text, extra, sizeof extra, note,
                    sizeof note) != 0) {
        ua_run_finish(&a->run, CLI_EXIT_REJECT);
        return -1;
    }
    size_t len = strlen(note);
    snprintf(note + len, sizeof note - len, "%s[SDP offer]", len ? " " : "");
    csip_str offer;
    if (a->call.my_sdp_text) {
        offer = csip_str_c(a->call.my_sdp_text); /* the same offer again */
    } else if (call_offer(&a->call, &offer) != 0) {
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
        return -1;
    }
    csip_request_spec spec;
    ua_sender_spec(&a->snd, &h, CSIP_STR("INVITE"), &spec);
    spec.contact = csip_str_c(contact);
    spec.content_type = CSIP_STR("application/sdp");
    spec.body = offer;
    spec.extra = csip_str_c(extra);
    csip_msg *req;
    int rc = csip_request_new(&spec, NULL, &req);
    if (rc != 0) {
        fprintf(stderr, CMD ": cannot build the INVITE: %s\n", csip_strerror(rc));
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
        return -1;
    }
    a->provisional = false;
    if (ua_send(&a->u, req, note, NULL, &a->inv) != 0) {
        a->inv = NULL;
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
        return -1;
    }
    return 0;
}

static void send_cancel(call_app *a)
{
    if (!a->inv || a->cancel_sent)
        return;
    csip_msg *cancel;
    int rc = csip_dialog_cancel_for(csip_txn_request(a->inv), NULL, &cancel);
    if (rc != 0) {
        printf("call: cannot build the CANCEL: %s\n", csip_strerror(rc));
        return;
    }
    a->cancel_sent = true;
    if (ua_send_to(&a->u, cancel, csip_txn_peer(a->inv), NULL, &a->fork_marker, &a->cancel) != 0)
        a->cancel = NULL;
}

/* Stops the call before it is answered (a signal, or no answer in time). */
static void cancel_call(call_app *a, int why)
{
    if (a->cancel_why)
        return;
    a->cancel_why = why;
    uv_timer_stop(&a->noanswer);
    if (!a->inv) {
        printf("final: stopped before the INVITE was sent\n");
        ua_run_finish(&a->run, why == 1 ? CALL_EXIT_STOPPED : CLI_EXIT_REJECT);
        return;
    }
    if (a->provisional) {
        send_cancel(a);
        return;
    }
    /* RFC 3261 §9.1: no CANCEL before a provisional response. Nothing came
     * back: the tool gives up at once rather than wait for one (up to Timer
     * B, 32 s); an answer that would come later is not acknowledged, and the
     * callee ends that call itself (§13.3.1.4). */
    printf("final: no response yet: giving up (no CANCEL before a provisional response)\n");
    ua_run_finish(&a->run, why == 1 ? CALL_EXIT_STOPPED : CLI_EXIT_REJECT);
}

static void on_noanswer(uv_timer_t *t)
{
    call_app *a = t->data;
    if (a->run.done || a->answered)
        return;
    printf("call: no answer within %llu ms: cancelling\n", (unsigned long long)a->opts.timeout_ms);
    cancel_call(a, 2);
}

static void on_duration(uv_timer_t *t)
{
    call_app *a = t->data;
    if (a->run.done)
        return;
    printf("call: %llu.%03u s: hanging up\n", (unsigned long long)(a->duration_ms / 1000),
           (unsigned)(a->duration_ms % 1000));
    call_hangup(&a->call);
}

static void on_reinvite(uv_timer_t *t)
{
    call_app *a = t->data;
    if (!a->run.done && !a->call.is_ended && !a->call.bye_ct)
        (void)call_send(&a->call, "INVITE");
}

static void on_update(uv_timer_t *t)
{
    call_app *a = t->data;
    if (!a->run.done && !a->call.is_ended && !a->call.bye_ct)
        (void)call_send(&a->call, "UPDATE");
}

/* A 2xx from a fork other than the one answered first: ACK it and end it. */
static void other_fork(call_app *a, const csip_msg *invite, const csip_msg *resp)
{
    csip_dialog *d;
    unsigned flags = a->u.target.addr.transport == CSIP_TP_TLS ? CSIP_DIALOG_TLS : 0;
    if (csip_dialog_uac_new(a->tab, invite, resp, flags, &d) != 0)
        return;
    printf("call: a 2xx from another fork: acknowledged and ended with BYE\n");
    ua_call tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.u = &a->u;
    tmp.dlg = d;
    snprintf(tmp.label, sizeof tmp.label, "fork");
    csip_addr dst;
    char via[160];
    csip_dialog_req spec;
    memset(&spec, 0, sizeof spec);
    csip_msg *m;
    if (call_next_hop(&tmp, &dst) == 0 &&
        ua_via_nobranch(&a->u, (csip_transport)dst.transport, via, sizeof via) == 0) {
        spec.via = csip_str_c(via);
        if (csip_dialog_ack(d, invite, &spec, &m) == 0) {
            (void)ua_send_stateless(&a->u, m, &dst, NULL);
            csip_msg_free(m);
        }
        spec.method = CSIP_STR("BYE");
        csip_txn *t;
        if (csip_dialog_request(d, &spec, &m) == 0)
            (void)ua_send_to(&a->u, m, &dst, NULL, &a->fork_marker, &t);
    }
    csip_dialog_free(d);
}

static void answered(call_app *a, csip_txn *ct, const csip_msg *resp)
{
    const csip_msg *invite = csip_txn_request(ct);
    csip_dialog *d;
    unsigned flags = a->u.target.addr.transport == CSIP_TP_TLS ? CSIP_DIALOG_TLS : 0;
    int rc = csip_dialog_uac_new(a->tab, invite, resp, flags, &d);
    if (rc != 0) {
        printf("call: the 2xx makes no dialog: %s\n", csip_strerror(rc));
        ua_run_finish(&a->run, CALL_EXIT_ABNORMAL);
        return;
    }
    call_set_dialog(&a->call, d);
    a->answered = true;
    uv_timer_stop(&a->noanswer);
    (void)call_ack(&a->call, invite);
    if (call_has_sdp(resp))
        call_take_answer(&a->call, csip_msg_body(resp));
    else
        printf("call: the 2xx carries no SDP answer\n");
    a->call.offer_out = false;
    if (a->cancel_why) {
        printf("call: answered while being cancelled: hanging up\n");
        call_hangup(&a->call);
        return;
    }
    if (a->duration_ms) {
        printf("call: answered; hanging up in %llu.%03u s\n",
               (unsigned long long)(a->duration_ms / 1000), (unsigned)(a->duration_ms % 1000));
        uv_timer_start(&a->duration, on_duration, a->duration_ms, 0);
    } else {
        printf("call: answered; Ctrl-C hangs up\n");
    }
    if (a->reinvite_ms)
        uv_timer_start(&a->reinvite, on_reinvite, a->reinvite_ms, 0);
    if (a->update_ms)
        uv_timer_start(&a->update, on_update, a->update_ms, 0);
    if (a->stopping)
        call_hangup(&a->call);
}

/* A response to the INVITE. */
static void invite_response(call_app *a, csip_txn *ct, const csip_msg *resp, int status)
{
    const csip_cseq *cs;
    if (a->answered && status / 100 == 2 && resp) {
        /* a 2xx again (RFC 6026): the same dialog's, or another fork's */
        ua_print_response(&a->u, resp, status);
        csip_dialog *d;
        if (csip_dialog_table_match(a->tab, resp, &d) == 0 && d == a->call.dlg) {
            if (csip_msg_cseq(resp, &cs) == 0)
                call_ack_again(&a->call, cs->number);
        } else {
            other_fork(a, csip_txn_request(ct), resp);
        }
        return;
    }
    if (a->answered)
        return;
    ua_print_response_from(&a->u, resp, status, csip_txn_peer(ct),
                           resp && call_has_sdp(resp) ? "[SDP]" : NULL);
    if (resp && status >= 300)
        ua_print_layer_ack(&a->u, ct);
    if (status < 200) {
        a->provisional = true;
        if ((status == 180 || status == 183) && !a->ringing) {
            a->ringing = true;
            printf("call: ringing\n");
        }
        if (a->cancel_why)
            send_cancel(a);
        return;
    }
    if (status / 100 == 2) {
        answered(a, ct, resp);
        return;
    }
    a->inv = NULL;
    if ((status == 401 || status == 407) && resp && !a->cancel_why) {
        if (ua_auth_take(&a->auth, resp, status)) {
            (void)send_invite(a);
            return;
        }
        ua_run_finish(&a->run, CLI_EXIT_REJECT);
        return;
    }
    /* RFC 3263 §4.3: a timeout, a transport error or a 503 moves on to the
     * next target, while nothing came back. */
    if (((status == 408 && !resp) || status == 503) && !a->cancel_why && !a->provisional &&
        ua_run_failover(&a->run))
        return;
    csip_str reason = resp ? csip_msg_reason(resp) : csip_str_c(csip_status_reason(status));
    printf("final: %d %.*s%s\n", status, (int)reason.len, reason.p,
           a->cancel_why == 1   ? " (cancelled: stopped)"
           : a->cancel_why == 2 ? " (cancelled: no answer in time)"
                                : "");
    ua_run_finish(&a->run, a->cancel_why == 1 ? CALL_EXIT_STOPPED : CLI_EXIT_REJECT);
}

/* ------------------------------------------------------------------------- */
/* The layer's callbacks */

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    call_app *a = user_data;
    if (a->run.done)
        return;
    if (a->call_ready && call_on_response(&a->call, ct, resp, status))
        return;
    if (csip_txn_user_data(ct) == &a->fork_marker) {
        /* our CANCEL, or a BYE to another fork */
        ua_print_response_from(&a->u, resp, status, csip_txn_peer(ct), NULL);
        return;
    }
    if (ct == a->inv || (a->answered && csip_txn_kind_of(ct) == CSIP_TXN_INVITE_CLIENT))
        invite_response(a, ct, resp, status);
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    call_app *a = user_data;
    ua_print_request_in(&a->u, req, src, call_has_sdp(req) ? "[SDP]" : NULL);
    if (a->run.done) {
        if (st)
            (void)ua_respond_code(&a->u, st, 480, NULL);
        return;
    }
    csip_dialog *d;
    if (a->tab && csip_dialog_table_match(a->tab, req, &d) == 0 && call_of(d)) {
        call_on_request(call_of(d), st, req);
        return;
    }
    const csip_nameaddr *to;
    if (st && csip_msg_method(req) == CSIP_METHOD_INVITE && csip_msg_to(req, &to) == 0 &&
        !to->tag.p) {
        (void)ua_respond_code(&a->u, st, 486, NULL); /* one call at a time */
        return;
    }
    call_reply_outside(&a->u, st, req);
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    call_app *a = user_data;
    if (t == a->inv)
        a->inv = NULL;
    if (t == a->cancel)
        a->cancel = NULL;
    if (a->call_ready && csip_txn_user_data(t) == &a->call)
        call_on_terminated(&a->call, t);
}

static void on_call_ended(ua_call *c, call_end how)
{
    call_app *a = c->user_data;
    uv_timer_stop(&a->duration);
    uv_timer_stop(&a->reinvite);
    uv_timer_stop(&a->update);
    switch (how) {
    case CALL_END_PEER_BYE:
        printf("call: ended by the peer (BYE)\n");
        ua_run_finish(&a->run, a->cancel_why == 1 ? CALL_EXIT_STOPPED : CLI_EXIT_OK);
        break;
    case CALL_END_OUR_BYE:
        if (c->bye_status / 100 == 2) {
            printf("call: ended (our BYE answered %d)\n", c->bye_status);
            ua_run_finish(&a->run, a->cancel_why == 1 ? CALL_EXIT_STOPPED : CLI_EXIT_OK);
        } else {
            printf("call: ended; our BYE got %d\n", c->bye_status);
            ua_run_finish(&a->run, CALL_EXIT_ABNORMAL);
        }
        break;
    case CALL_END_LOST:
        printf("call: ended: the dialog is lost\n");
        ua_run_finish(&a->run, CALL_EXIT_ABNORMAL);
        break;
    }
    fflush(stdout);
}

static void on_signal(uv_signal_t *h, int signum)
{
    call_app *a = h->data;
    if (!ua_run_signal(&a->run, signum, a->stopping, &a->signalled_at, "ending at once",
                       a->answered ? CALL_EXIT_ABNORMAL : CALL_EXIT_STOPPED))
        return;
    a->stopping = true;
    if (a->answered) {
        printf("signal %d: hanging up\n", signum);
        call_hangup(&a->call);
    } else {
        printf("signal %d: cancelling the call\n", signum);
        cancel_call(a, 1);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------- */
/* Targets */

/* The endpoint is open on the next target: the INVITE. */
static void on_opened(void *user_data)
{
    call_app *a = user_data;
    ua_call *c = &a->call;
    if (!a->call_ready) {
        /* once: on another target the RTP socket stays where it is */
        c->u = &a->u;
        c->tab = a->tab;
        c->auth = &a->auth;
        snprintf(c->label, sizeof c->label, "call");
        c->ended = on_call_ended;
        c->user_data = a;
        c->sdp_user = "-";
        a->call_ready = true;
        if (call_init(c) != 0) {
            ua_run_finish(&a->run, CLI_EXIT_USAGE);
            return;
        }
    }
    const char *user = a->snd.from.user.len ? NULL : "csip";
    snprintf(c->contact, sizeof c->contact, "<sip:%.*s@%s:%u;transport=%s>",
             user ? (int)strlen(user) : (int)a->snd.from.user.len, user ? user : a->snd.from.user.p,
             a->u.local_host, (unsigned)a->u.local_port, ua_transport_param(&a->u));
    ua_auth_clear(&a->auth); /* another server: its own challenges */
    if (!uv_is_active((uv_handle_t *)&a->noanswer))
        uv_timer_start(&a->noanswer, on_noanswer, a->opts.timeout_ms, 0);
    (void)send_invite(a);
}

/* ------------------------------------------------------------------------- */

static int run(void *app, int argc, char **argv);

int cmd_call(int argc, char **argv)
{
    return ua_main(sizeof(call_app), run, argc, argv);
}

static bool seconds_opt(const char *name, const char *v, uint64_t *ms)
{
    if (ua_parse_seconds(v, ms))
        return true;
    fprintf(stderr, CMD ": %s needs a positive number of seconds\n", name);
    return false;
}

/* The arguments besides the common ones, --user and --password. */
static int parse_arg(void *ctx, int argc, char **argv, int *i)
{
    call_app *a = ctx;
    const char *s = argv[*i];
    bool has_value = *i + 1 < argc;
    if (ua_sender_parse_arg(&a->snd, argc, argv, i))
        return 1;
    if (strcmp(s, "--duration") == 0 && has_value) {
        if (!seconds_opt(s, argv[++*i], &a->duration_ms))
            return -1;
    } else if (strcmp(s, "--reinvite") == 0 && has_value) {
        if (!seconds_opt(s, argv[++*i], &a->reinvite_ms))
            return -1;
    } else if (strcmp(s, "--update") == 0 && has_value) {
        if (!seconds_opt(s, argv[++*i], &a->update_ms))
            return -1;
    } else {
        return 0;
    }
    return 1;
}

static int run(void *app, int argc, char **argv)
{
    call_app *a = app;
    const char **const pos[] = {&a->snd.target_text};
    int rc = ua_parse_args(&a->opts, CMD, argc, argv, call_usage, &a->snd.user, &a->snd.password,
                           parse_arg, a, pos, 1, false);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!ua_is_sip_uri(a->snd.target_text, &a->snd.target, false)) {
        fprintf(stderr, CMD ": '%s' is not a sip: or sips: URI with a host\n", a->snd.target_text);
        return CLI_EXIT_USAGE;
    }
    if (strpbrk(a->snd.target_text, "<>\"\r\n ")) {
        fprintf(stderr, CMD ": '%s' cannot be written in a header\n", a->snd.target_text);
        return CLI_EXIT_USAGE;
    }
    rc = ua_sender_prepare(&a->snd, CMD, DEFAULT_FROM, false, &a->loc, a->opts.transport);
    if (rc != 0)
        return rc;
    if (csip_dialog_table_new(NULL, &a->tab) != 0) {
        fprintf(stderr, CMD ": out of memory\n");
        return CLI_EXIT_USAGE;
    }
    ua_auth_init(&a->auth, a->snd.user, a->snd.password, "the server");

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = a->u.show_method = a->u.many_txns = true;
    static const ua_run_ops ops = {
        on_opened, teardown, {NULL, on_request, on_response, NULL, on_terminated}};
    ua_run_init(&a->run, &a->u, &a->loc, &ops, a);
    a->run.located = &a->snd.next;
    a->run.what = a->snd.where;
    a->run.txn = &a->inv;
    uv_timer_t *timers[] = {&a->noanswer, &a->duration, &a->reinvite, &a->update};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(&a->loop, timers[i]);
        timers[i]->data = a;
    }
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    if (a->loc.n == 0)
        uv_timer_start(&a->noanswer, on_noanswer, a->opts.timeout_ms, 0);
    ua_run_start(&a->run);
    return ua_run_wait(&a->run);
}
