/*
 * The csip tool: keeping a Contact registered (see reg.h).
 *
 * Every REGISTER of a run has the same Call-ID and the next CSeq (RFC 3261
 * §10.2.4). A nonce is reused for the refreshes that follow (nc 2, 3 …); a
 * new challenge starts over from nc 1; each answer has a fresh cnonce.
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "reg.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 423s obeyed within one exchange before giving up. */
#define MAX_TOO_BRIEF 3

static void on_deadline(uv_timer_t *t);
static void on_refresh(uv_timer_t *t);

/* The run is over (never twice). */
static void finish(ua_reg *r, int code)
{
    if (r->over)
        return;
    r->over = true;
    if (r->attached) {
        uv_timer_stop(&r->refresh);
        uv_timer_stop(&r->deadline);
    }
    r->done(r, code);
}

int ua_reg_init(ua_reg *r)
{
    if (!r->user && r->aor.user.len) {
        char *user_buf = r->user_buf;
        int n = csip_unescape(r->aor.user, user_buf, sizeof r->user_buf - 1);
        if (n < 0 || memchr(user_buf, 0, (size_t)n)) {
            fprintf(stderr, "%s: the AOR's user part is too long or holds %%00; give --user\n",
                    r->cmd);
            return CLI_EXIT_USAGE;
        }
        user_buf[n] = 0;
        r->user = user_buf;
    }
    if (!r->aor.user.len && !r->user) {
        fprintf(stderr, "%s: the AOR has no user part: give --user\n", r->cmd);
        return CLI_EXIT_USAGE;
    }
    if (r->contact_host && (!r->contact_host[0] || strpbrk(r->contact_host, " ;<>@\r\n\"") ||
                            strlen(r->contact_host) > 255)) {
        fprintf(stderr, "%s: --contact-host '%s' is not a host\n", r->cmd, r->contact_host);
        return CLI_EXIT_USAGE;
    }
    /* RFC 3261 §10.2: the Request-URI names the domain of the registrar, no user part. */
    bool sips = r->aor.kind == CSIP_URI_SIPS;
    int n = r->aor.has_port ? snprintf(r->ruri, sizeof r->ruri, "%s:%.*s:%u", sips ? "sips" : "sip",
                                       (int)r->aor.host.len, r->aor.host.p, (unsigned)r->aor.port)
                            : snprintf(r->ruri, sizeof r->ruri, "%s:%.*s", sips ? "sips" : "sip",
                                       (int)r->aor.host.len, r->aor.host.p);
    if (n < 0 || (size_t)n >= sizeof r->ruri) {
        fprintf(stderr, "%s: the AOR's host is too long\n", r->cmd);
        return CLI_EXIT_USAGE;
    }
    ua_random_token(r->call_id, 24);
    ua_random_token(r->from_tag, 10);
    ua_auth_init(&r->auth, r->user, r->password, "the registrar");
    return 0;
}

void ua_reg_attach(ua_reg *r)
{
    uv_timer_init(r->u->loop, &r->refresh);
    uv_timer_init(r->u->loop, &r->deadline);
    r->refresh.data = r->deadline.data = r;
    r->attached = true;
}

void ua_reg_close(ua_reg *r)
{
    r->txn = NULL;
    ua_auth_clear(&r->auth);
    if (r->attached) {
        uv_close((uv_handle_t *)&r->refresh, NULL);
        uv_close((uv_handle_t *)&r->deadline, NULL);
        r->attached = false;
    }
}

/* ------------------------------------------------------------------------- */
/* Building and sending a REGISTER */

/* Sends the next REGISTER of the exchange (a binding, or its removal).
 * @return 0, or -1 (the run is finished). */
static int send_register(ua_reg *r)
{
    char via[160], from[700], to[700], contact[420], extra[2 * 4096 + 512], note[200];
    if (ua_via(r->u, via, sizeof via) < 0) {
        finish(r, CLI_EXIT_USAGE);
        return -1;
    }
    snprintf(from, sizeof from, "<%.*s>;tag=%s", (int)r->aor.raw.len, r->aor.raw.p, r->from_tag);
    snprintf(to, sizeof to, "<%.*s>", (int)r->aor.raw.len, r->aor.raw.p);
    snprintf(contact, sizeof contact, "<%s>%s", r->contact, r->unregistering ? ";expires=0" : "");
    uint32_t expires = r->unregistering ? 0 : r->expires;
    snprintf(extra, sizeof extra, "Expires: %u\r\nUser-Agent: csip/%s\r\n", (unsigned)expires,
             csip_version());
    note[0] = 0;
    if (ua_auth_add(&r->auth, r->cmd, "REGISTER", r->ruri, extra, sizeof extra, note,
                    sizeof note) != 0) {
        finish(r, CLI_EXIT_REJECT);
        return -1;
    }
    if (r->unregistering) {
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len, "%sExpires: 0", len ? " " : "");
    }
    csip_request_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.method = CSIP_STR("REGISTER");
    spec.ruri = csip_str_c(r->ruri);
    spec.via = csip_str_c(via);
    spec.from = csip_str_c(from);
    spec.to = csip_str_c(to);
    spec.call_id = csip_str_c(r->call_id);
    spec.cseq = ++r->cseq; /* RFC 3261 §10.2.4: same Call-ID, increasing CSeq */
    spec.contact = csip_str_c(contact);
    spec.extra = csip_str_c(extra);
    csip_msg *req;
    int rc = csip_request_new(&spec, NULL, &req);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot build the request: %s\n", r->cmd, csip_strerror(rc));
        finish(r, CLI_EXIT_USAGE);
        return -1;
    }
    if (ua_send(r->u, req, note[0] ? note : NULL, NULL, &r->txn) != 0) {
        r->txn = NULL;
        finish(r, CLI_EXIT_USAGE);
        return -1;
    }
    return 0;
}

/* Starts an exchange: the first REGISTER, a refresh or the removal. */
static void start_exchange(ua_reg *r, bool unregister)
{
    r->unregistering = unregister;
    r->auth.challenges = r->too_brief = 0;
    uv_timer_stop(&r->refresh);
    uv_timer_start(&r->deadline, on_deadline, r->u->opts->timeout_ms, 0);
    (void)send_register(r);
}

void ua_reg_begin(ua_reg *r)
{
    const char *host = r->contact_host ? r->contact_host : r->u->local_host;
    const char *user = r->aor.user.len ? NULL : r->user;
    int n = snprintf(r->contact, sizeof r->contact, "sip:%.*s@%s:%u;transport=%s",
                     user ? (int)strlen(user) : (int)r->aor.user.len, user ? user : r->aor.user.p,
                     host, (unsigned)r->u->local_port, ua_transport_param(r->u));
    if (n < 0 || (size_t)n >= sizeof r->contact ||
        csip_uri_parse(r->contact, (size_t)n, 0, &r->contact_uri) != 0) {
        fprintf(stderr, "%s: '%s' is not a usable Contact\n", r->cmd, r->contact);
        finish(r, CLI_EXIT_USAGE);
        return;
    }
    ua_auth_clear(&r->auth); /* another server: its own challenges */
    start_exchange(r, false);
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
    ua_reg *r = t->data;
    if (!r->over && !r->txn)
        start_exchange(r, false);
}

/* The 200 OK to a REGISTER: find our binding, print them all. */
static void registered(ua_reg *r, const csip_msg *resp)
{
    const csip_nameaddr *c;
    size_t n = 0;
    uint32_t granted = 0, hdr_expires;
    bool found = false;
    if (csip_msg_nameaddrs(resp, CSIP_HDR_CONTACT, &c, &n) != 0)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        bool ours = !c[i].star && csip_uri_equal(&c[i].uri, &r->contact_uri);
        if (ours && !found) {
            found = true;
            granted = c[i].has_expires                            ? c[i].expires
                      : csip_msg_expires(resp, &hdr_expires) == 0 ? hdr_expires
                                                                  : r->expires;
        }
        printf("binding: %.*s%s\n", (int)c[i].raw.len, c[i].raw.p, ours ? " (this one)" : "");
    }
    if (!found) {
        granted = csip_msg_expires(resp, &hdr_expires) == 0 ? hdr_expires : r->expires;
        printf("note: the 200 OK does not list our Contact; taking %u s\n", (unsigned)granted);
    }
    if (granted == 0) {
        printf("final: the registrar kept our binding for 0 s\n");
        r->is_registered = false;
        finish(r, CLI_EXIT_REJECT);
        return;
    }
    r->is_registered = true;
    uv_timer_stop(&r->deadline);
    if (r->stopping) { /* a signal came meanwhile (with --once too): undo it */
        printf("registered: <%s> for %u s; removing it (signal)\n", r->contact, (unsigned)granted);
        start_exchange(r, true);
        return;
    }
    if (r->once) {
        printf("registered: <%s> for %u s\n", r->contact, (unsigned)granted);
        finish(r, CLI_EXIT_OK);
        return;
    }
    uint64_t d = refresh_delay_ms(granted);
    printf("registered: <%s> for %u s, refresh in %llu.%03u s\n", r->contact, (unsigned)granted,
           (unsigned long long)(d / 1000), (unsigned)(d % 1000));
    uv_timer_start(&r->refresh, on_refresh, d, 0);
    if (r->registered)
        r->registered(r, granted);
}

bool ua_reg_on_response(ua_reg *r, csip_txn *ct, const csip_msg *resp, int status)
{
    if (ct != r->txn || !ct)
        return false;
    if (r->over)
        return true;
    ua_print_response(r->u, resp, status);
    fflush(stdout);
    if (status < 200)
        return true;
    r->txn = NULL;
    int cls = status / 100;
    if (cls == 2) {
        if (r->unregistering) {
            r->is_registered = false;
            printf("unregistered: <%s>\n", r->contact);
            finish(r, CLI_EXIT_OK);
        } else {
            registered(r, resp);
        }
        return true;
    }
    /* A signal came during the first registration: nothing to remove. */
    bool interrupted = r->stopping && !r->is_registered && !r->unregistering;
    if (resp && (status == 401 || status == 407 || status == 423) && interrupted) {
        printf("final: interrupted before the registration completed\n");
        finish(r, CLI_EXIT_REJECT);
        return true;
    }
    /* A signal during a refresh: what follows removes the binding instead. */
    if (r->stopping && r->is_registered && !r->unregistering) {
        r->unregistering = true;
        if (resp && status == 423) {
            (void)send_register(r);
            return true;
        }
    }
    if (resp && (status == 401 || status == 407)) {
        if (!ua_auth_take(&r->auth, resp, status))
            finish(r, CLI_EXIT_REJECT);
        else
            (void)send_register(r);
        return true;
    }
    uint32_t min = 0;
    if (resp && status == 423 && !r->unregistering && csip_msg_min_expires(resp, &min) == 0 &&
        min > r->expires && ++r->too_brief <= MAX_TOO_BRIEF) {
        printf("note: the registrar wants at least %u s (Min-Expires)\n", (unsigned)min);
        r->expires = min;
        (void)send_register(r);
        return true;
    }
    /* RFC 3263 §4.3: a timeout, a transport error or a 503 moves on to the
     * next target, while nothing is registered. */
    if (((status == 408 && !resp) || status == 503) && !r->is_registered && r->failover &&
        r->failover(r))
        return true;
    if (resp) {
        csip_str reason = csip_msg_reason(resp);
        printf("final: %d %.*s\n", status, (int)reason.len, reason.p);
    } else {
        printf("final: %d %s\n", status, csip_status_reason(status));
    }
    finish(r, CLI_EXIT_REJECT);
    return true;
}

void ua_reg_on_terminated(ua_reg *r, csip_txn *t)
{
    if (t == r->txn)
        r->txn = NULL;
}

static void on_deadline(uv_timer_t *t)
{
    ua_reg *r = t->data;
    if (r->over)
        return;
    ua_sync(r->u);
    printf("final: no final response within %llu ms\n", (unsigned long long)r->u->opts->timeout_ms);
    finish(r, CLI_EXIT_REJECT);
}

void ua_reg_stop(ua_reg *r, const char *why)
{
    if (r->over)
        return;
    r->stopping = true;
    printf("%s: %s\n", why,
           r->is_registered ? "removing the binding" : "ending once the exchange under way ends");
    fflush(stdout);
    if (r->txn)
        return; /* ua_reg_on_response goes on from there */
    if (r->is_registered) {
        start_exchange(r, true);
    } else {
        printf("final: interrupted before the registration completed\n");
        finish(r, CLI_EXIT_REJECT);
    }
}

void ua_reg_setup(ua_reg *r, const char *cmd, ua *u, void (*done)(ua_reg *r, int code),
                  bool (*failover)(ua_reg *r), void *user_data)
{
    r->expires = UA_REG_DEFAULT_EXPIRES;
    r->cmd = cmd;
    r->u = u;
    r->done = done;
    r->failover = failover;
    r->user_data = user_data;
}

int ua_reg_parse_arg(ua_reg *r, const char *cmd, int argc, char **argv, int *i,
                     const char **registrar)
{
    const char *s = argv[*i];
    bool has_value = *i + 1 < argc;
    if (strcmp(s, "--expires") == 0 && has_value) {
        if (csip_str_to_u32(csip_str_c(argv[++*i]), &r->expires) != 0 || r->expires == 0 ||
            r->expires > 0x7fffffffu) {
            fprintf(stderr, "%s: --expires needs a number of seconds, 1 to 2147483647\n", cmd);
            return -1;
        }
    } else if (strcmp(s, "--registrar") == 0 && has_value) {
        *registrar = argv[++*i];
    } else {
        return 0;
    }
    return 1;
}

int ua_reg_prepare(ua_reg *r, const char *aor_text, bool header_safe, const char *registrar_text,
                   char *target_text, size_t cap, csip_uri *target, ua_locate *loc, int transport)
{
    if (!ua_is_sip_uri(aor_text, &r->aor, header_safe)) {
        fprintf(stderr, "%s: '%s' is not a sip: or sips: URI with a host\n", r->cmd, aor_text);
        return CLI_EXIT_USAGE;
    }
    int rc = ua_reg_init(r);
    if (rc != 0)
        return rc;
    snprintf(target_text, cap, "%s", registrar_text ? registrar_text : r->ruri);
    if (!ua_is_sip_uri(target_text, target, header_safe)) {
        fprintf(stderr, "%s: --registrar '%s' is not a sip: or sips: URI\n", r->cmd, target_text);
        return CLI_EXIT_USAGE;
    }
    return ua_locate_init(loc, r->cmd, target, transport);
}
