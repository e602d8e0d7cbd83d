/*
 * csip message TARGET TEXT [--from AOR] [--user U] [--password P] [--proxy URI]
 *                          [--transport udp|tcp|tls] [--timeout S] [--ca-file FILE]
 *                          [--insecure] [-v]
 *
 * Sends TEXT to TARGET in a MESSAGE request (RFC 3428, text/plain; charset=UTF-8,
 * no Contact: a page opens no dialog), answering digest challenges (401/407,
 * as register does: the same Call-ID, the next CSeq). The request goes to
 * --proxy when given, else to TARGET's host. Each message sent and received
 * is one line (-v: in full).
 *
 * Exit status: 0 for a 2xx, 1 for any other outcome (the final status printed),
 * 2 usage error or no socket.
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "cli.h"
#include "csip/csip.h"
#include "ua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "csip message"
#define DEFAULT_FROM "sip:anonymous@anonymous.invalid"
/* RFC 3428 §5: a page outside a session stays under 1300 octets. */
#define MAX_TEXT 1300

typedef struct msg_app {
    uv_loop_t loop;
    ua_opts opts;
    ua u;
    ua_locate loc;
    ua_auth auth;
    ua_run run;
    ua_sender snd;
    const char *text;
    csip_txn *txn;
    uv_timer_t deadline;
} msg_app;

static void message_usage(FILE *f)
{
    fprintf(f,
            "usage: csip message TARGET TEXT [--from AOR] [--user U] [--password P] [--proxy URI]\n"
            "                                [--transport udp|tcp|tls] [--timeout S]\n"
            "                                [--ca-file FILE] [--insecure] [-v]\n"
            "\n"
            "Sends TEXT (text/plain, at most 1300 octets) to TARGET in a MESSAGE (RFC 3428),\n"
            "answering digest challenges. Each message sent and received is printed on one line\n"
            "(-v: in full).\n"
            "  --from AOR       who sends (default " DEFAULT_FROM ")\n"
            "  --user U         username for digest authentication (default: From's user)\n"
            "  --password P     password, for when the server challenges\n"
            "  --proxy URI      where to send the MESSAGE (default: TARGET's host)\n"
            "  --transport      udp, tcp or tls\n"
            "  --timeout S      give up after S seconds (default 32)\n"
            "  --ca-file, --insecure  TLS trust anchors, or no verification\n"
            "\n"
            "exit status: 0 for a 2xx response, 1 for any other outcome, 2 usage error\n");
}

static void teardown(void *user_data)
{
    msg_app *a = user_data;
    a->txn = NULL;
    ua_auth_clear(&a->auth);
    uv_close((uv_handle_t *)&a->deadline, NULL);
}

/* Sends the MESSAGE (again with credentials after a challenge). */
static void send_message(msg_app *a)
{
    ua_sender_hdrs h;
    char extra[2 * 4096 + 128], note[200] = "";
    if (ua_sender_headers(&a->snd, &a->u, &h) < 0) {
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
        return;
    }
    snprintf(extra, sizeof extra, "User-Agent: csip/%s\r\n", csip_version());
    if (ua_auth_add(&a->auth, CMD, "MESSAGE", a->snd.target_text, extra, sizeof extra, note,
                    sizeof note) != 0) {
        ua_run_finish(&a->run, CLI_EXIT_REJECT);
        return;
    }
    csip_request_spec spec;
    ua_sender_spec(&a->snd, &h, CSIP_STR("MESSAGE"), &spec);
    spec.content_type = CSIP_STR("text/plain;charset=UTF-8");
    spec.body = csip_str_c(a->text);
    spec.extra = csip_str_c(extra);
    csip_msg *req;
    int rc = csip_request_new(&spec, NULL, &req);
    if (rc != 0) {
        fprintf(stderr, CMD ": cannot build the request: %s\n", csip_strerror(rc));
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
        return;
    }
    if (ua_send(&a->u, req, note[0] ? note : NULL, NULL, &a->txn) != 0) {
        a->txn = NULL;
        ua_run_finish(&a->run, CLI_EXIT_USAGE);
    }
}

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    msg_app *a = user_data;
    if (ct != a->txn || a->run.done)
        return;
    ua_print_response(&a->u, resp, status);
    if (status < 200)
        return;
    a->txn = NULL;
    if ((status == 401 || status == 407) && resp) {
        if (ua_auth_take(&a->auth, resp, status))
            send_message(a);
        else
            ua_run_finish(&a->run, CLI_EXIT_REJECT);
        return;
    }
    if (((status == 408 && !resp) || status == 503) && ua_run_failover(&a->run))
        return;
    csip_str reason = resp ? csip_msg_reason(resp) : csip_str_c(csip_status_reason(status));
    printf("final: %d %.*s\n", status, (int)reason.len, reason.p);
    ua_run_finish(&a->run, status / 100 == 2 ? CLI_EXIT_OK : CLI_EXIT_REJECT);
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    msg_app *a = user_data;
    ua_answer_request(&a->u, st, req, src);
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    msg_app *a = user_data;
    if (t == a->txn)
        a->txn = NULL;
}

static void on_deadline(uv_timer_t *t)
{
    msg_app *a = t->data;
    if (a->run.done)
        return;
    ua_sync(&a->u);
    printf("final: no final response within %llu ms\n", (unsigned long long)a->opts.timeout_ms);
    ua_run_finish(&a->run, CLI_EXIT_REJECT);
}

/* The endpoint is open on the next target: the MESSAGE. */
static void on_opened(void *user_data)
{
    msg_app *a = user_data;
    ua_auth_clear(&a->auth);
    a->auth.challenges = 0;
    send_message(a);
}

/* ------------------------------------------------------------------------- */

static int run(void *app, int argc, char **argv);

int cmd_message(int argc, char **argv)
{
    return ua_main(sizeof(msg_app), run, argc, argv);
}

/* The arguments besides the common ones, --user and --password. */
static int parse_arg(void *ctx, int argc, char **argv, int *i)
{
    msg_app *a = ctx;
    return ua_sender_parse_arg(&a->snd, argc, argv, i);
}

static int run(void *app, int argc, char **argv)
{
    msg_app *a = app;
    const char **const pos[] = {&a->snd.target_text, &a->text};
    int rc = ua_parse_args(&a->opts, CMD, argc, argv, message_usage, &a->snd.user, &a->snd.password,
                           parse_arg, a, pos, 2, true);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!ua_is_sip_uri(a->snd.target_text, &a->snd.target, true)) {
        fprintf(stderr, CMD ": '%s' is not a sip: or sips: URI with a host\n", a->snd.target_text);
        return CLI_EXIT_USAGE;
    }
    if (strlen(a->text) > MAX_TEXT) {
        fprintf(stderr, CMD ": the text is longer than %d octets (RFC 3428 section 5)\n", MAX_TEXT);
        return CLI_EXIT_USAGE;
    }
    rc = ua_sender_prepare(&a->snd, CMD, DEFAULT_FROM, true, &a->loc, a->opts.transport);
    if (rc != 0)
        return rc;
    ua_auth_init(&a->auth, a->snd.user, a->snd.password, "the server");

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = true;
    static const ua_run_ops ops = {
        on_opened, teardown, {NULL, on_request, on_response, NULL, on_terminated}};
    ua_run_init(&a->run, &a->u, &a->loc, &ops, a);
    a->run.located = &a->snd.next;
    a->run.what = a->snd.where;
    a->run.txn = &a->txn;
    uv_timer_init(&a->loop, &a->deadline);
    a->deadline.data = a;
    uv_timer_start(&a->deadline, on_deadline, a->opts.timeout_ms, 0);
    ua_run_start(&a->run);
    return ua_run_wait(&a->run);
}
