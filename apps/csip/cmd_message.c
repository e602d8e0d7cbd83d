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
    const char *target_text, *from_text, *proxy_text, *user, *password, *text;
    csip_uri target, from, next;
    char user_buf[256];
    char call_id[40], from_tag[24];
    uint32_t cseq;
    csip_txn *txn;
    uv_timer_t deadline, step;
    int exit_code;
    bool done;
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

static void on_step(uv_timer_t *t);
static void next_target(msg_app *a);

static void finish(msg_app *a, int code)
{
    if (a->done)
        return;
    a->done = true;
    a->exit_code = code;
    uv_timer_start(&a->step, on_step, 0, 0);
}

static void on_step(uv_timer_t *t)
{
    msg_app *a = t->data;
    if (!a->done) {
        next_target(a);
        return;
    }
    a->txn = NULL;
    ua_shutdown(&a->u);
    ua_locate_free(&a->loc);
    ua_auth_clear(&a->auth);
    uv_close((uv_handle_t *)&a->deadline, NULL);
    uv_close((uv_handle_t *)&a->step, NULL);
}

/* Sends the MESSAGE (again with credentials after a challenge). */
static void send_message(msg_app *a)
{
    char via[160], from[700], to[700], extra[2 * 4096 + 128], note[200] = "";
    if (ua_via(&a->u, via, sizeof via) < 0) {
        finish(a, CLI_EXIT_USAGE);
        return;
    }
    snprintf(from, sizeof from, "<%.*s>;tag=%s", (int)a->from.raw.len, a->from.raw.p, a->from_tag);
    snprintf(to, sizeof to, "<%.*s>", (int)a->target.raw.len, a->target.raw.p);
    snprintf(extra, sizeof extra, "User-Agent: csip/%s\r\n", csip_version());
    if (ua_auth_add(&a->auth, CMD, "MESSAGE", a->target_text, extra, sizeof extra, note,
                    sizeof note) != 0) {
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    csip_request_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.method = CSIP_STR("MESSAGE");
    spec.ruri = a->target.raw;
    spec.via = csip_str_c(via);
    spec.from = csip_str_c(from);
    spec.to = csip_str_c(to);
    spec.call_id = csip_str_c(a->call_id);
    spec.cseq = ++a->cseq;
    spec.content_type = CSIP_STR("text/plain;charset=UTF-8");
    spec.body = csip_str_c(a->text);
    spec.extra = csip_str_c(extra);
    csip_msg *req;
    int rc = csip_request_new(&spec, NULL, &req);
    if (rc != 0) {
        fprintf(stderr, CMD ": cannot build the request: %s\n", csip_strerror(rc));
        finish(a, CLI_EXIT_USAGE);
        return;
    }
    if (ua_send(&a->u, req, note[0] ? note : NULL, NULL, &a->txn) != 0) {
        a->txn = NULL;
        finish(a, CLI_EXIT_USAGE);
    }
}

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    msg_app *a = user_data;
    if (ct != a->txn || a->done)
        return;
    ua_print_response(&a->u, resp, status);
    if (status < 200)
        return;
    a->txn = NULL;
    if ((status == 401 || status == 407) && resp) {
        if (ua_auth_take(&a->auth, resp, status))
            send_message(a);
        else
            finish(a, CLI_EXIT_REJECT);
        return;
    }
    if (((status == 408 && !resp) || status == 503) && a->loc.next < a->loc.n) {
        uv_timer_start(&a->step, on_step, 0, 0);
        return;
    }
    csip_str reason = resp ? csip_msg_reason(resp) : csip_str_c(csip_status_reason(status));
    printf("final: %d %.*s\n", status, (int)reason.len, reason.p);
    finish(a, status / 100 == 2 ? CLI_EXIT_OK : CLI_EXIT_REJECT);
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
    if (a->done)
        return;
    ua_sync(&a->u);
    printf("final: no final response within %llu ms\n", (unsigned long long)a->opts.timeout_ms);
    finish(a, CLI_EXIT_REJECT);
}

static void next_target(msg_app *a)
{
    csip_txn_callbacks cb = {NULL, on_request, on_response, NULL, on_terminated};
    while (a->loc.next < a->loc.n) {
        const csip_target *t = &a->loc.targets[a->loc.next++];
        a->txn = NULL;
        int rc = ua_open(&a->u, t, &cb, a);
        if (rc == 2) {
            finish(a, CLI_EXIT_USAGE);
            return;
        }
        if (rc != 0)
            continue;
        ua_auth_clear(&a->auth);
        a->auth.challenges = 0;
        send_message(a);
        return;
    }
    printf("final: no target of %s could be reached\n",
           a->proxy_text ? a->proxy_text : a->target_text);
    finish(a, CLI_EXIT_REJECT);
}

static void on_located(void *user_data, int status)
{
    msg_app *a = user_data;
    if (a->done)
        return;
    if (status != 0) {
        printf("final: cannot locate %.*s: %s\n", (int)a->next.host.len, a->next.host.p,
               csip_strerror(status));
        finish(a, CLI_EXIT_REJECT);
        return;
    }
    next_target(a);
}

/* ------------------------------------------------------------------------- */

static int run(msg_app *a, int argc, char **argv);

int cmd_message(int argc, char **argv)
{
    msg_app *a = calloc(1, sizeof *a);
    if (!a)
        return CLI_EXIT_USAGE;
    int rc = run(a, argc, argv);
    free(a);
    return rc;
}

static bool is_sip_uri(const char *text, csip_uri *out)
{
    return csip_uri_parse(text, strlen(text), 0, out) == 0 &&
           (out->kind == CSIP_URI_SIP || out->kind == CSIP_URI_SIPS) && out->host.len > 0 &&
           !strpbrk(text, "<>\"\r\n ");
}

static int parse_args(msg_app *a, int argc, char **argv)
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
            message_usage(stdout);
            return -1;
        } else if (strcmp(s, "--from") == 0 && has_value) {
            a->from_text = argv[++i];
        } else if (strcmp(s, "--user") == 0 && has_value) {
            a->user = argv[++i];
        } else if (strcmp(s, "--password") == 0 && has_value) {
            a->password = argv[++i];
        } else if (strcmp(s, "--proxy") == 0 && has_value) {
            a->proxy_text = argv[++i];
        } else if ((s[0] == '-' && s[1] != '\0') || (a->target_text && a->text)) {
            message_usage(stderr);
            return CLI_EXIT_USAGE;
        } else if (!a->target_text) {
            a->target_text = s;
        } else {
            a->text = s;
        }
    }
    if (!a->target_text || !a->text) {
        message_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static int run(msg_app *a, int argc, char **argv)
{
    ua_opts_init(&a->opts);
    int rc = parse_args(a, argc, argv);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!is_sip_uri(a->target_text, &a->target)) {
        fprintf(stderr, CMD ": '%s' is not a sip: or sips: URI with a host\n", a->target_text);
        return CLI_EXIT_USAGE;
    }
    if (strlen(a->text) > MAX_TEXT) {
        fprintf(stderr, CMD ": the text is longer than %d octets (RFC 3428 section 5)\n", MAX_TEXT);
        return CLI_EXIT_USAGE;
    }
    if (!a->from_text)
        a->from_text = DEFAULT_FROM;
    if (!is_sip_uri(a->from_text, &a->from)) {
        fprintf(stderr, CMD ": --from '%s' is not a sip: or sips: URI with a host\n", a->from_text);
        return CLI_EXIT_USAGE;
    }
    if (!a->user && a->from.user.len) {
        int n = csip_unescape(a->from.user, a->user_buf, sizeof a->user_buf - 1);
        if (n < 0 || memchr(a->user_buf, 0, (size_t)n)) {
            fprintf(stderr, CMD ": the From user part is too long or holds %%00; give --user\n");
            return CLI_EXIT_USAGE;
        }
        a->user_buf[n] = 0;
        a->user = a->user_buf;
    }
    const char *where = a->proxy_text ? a->proxy_text : a->target_text;
    if (!is_sip_uri(where, &a->next)) {
        fprintf(stderr, CMD ": --proxy '%s' is not a sip: or sips: URI\n", where);
        return CLI_EXIT_USAGE;
    }
    rc = ua_locate_init(&a->loc, CMD, &a->next, a->opts.transport);
    if (rc != 0)
        return rc;
    ua_auth_init(&a->auth, a->user, a->password, "the server");
    ua_random_token(a->call_id, 24);
    ua_random_token(a->from_tag, 12);

    uv_loop_init(&a->loop);
    ua_init(&a->u, &a->loop, CMD, &a->opts);
    a->u.show_cseq = true;
    uv_timer_init(&a->loop, &a->deadline);
    uv_timer_init(&a->loop, &a->step);
    a->deadline.data = a->step.data = a;
    uv_timer_start(&a->deadline, on_deadline, a->opts.timeout_ms, 0);
    if (a->loc.n > 0) {
        next_target(a);
    } else {
        rc = ua_locate_start(&a->loc, &a->loop, on_located, a);
        if (rc != 0) {
            printf("final: cannot locate %.*s: %s\n", (int)a->next.host.len, a->next.host.p,
                   csip_strerror(rc));
            finish(a, CLI_EXIT_REJECT);
        }
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&a->loop) != 0)
        fprintf(stderr, CMD ": handles left open\n");
    fflush(stdout);
    return a->exit_code;
}
