/*
 * The csip tool: one call's dialog, media and in-dialog requests (see call.h).
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "call.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T1_MS 500u
#define T2_MS 4000u
#define SDP_MAX 4096
/* Credentials answered for one request in the dialog before giving up. */
#define MAX_AUTH_RETRIES 2

/* G.711 µ-law and A-law (static, RFC 3551), then telephone-event (RFC 4733). */
static const csip_sdp_codec codecs[] = {
    {0, {NULL, 0}, 0, 0, {NULL, 0}},
    {8, {NULL, 0}, 0, 0, {NULL, 0}},
    {101, {"telephone-event", 15}, 8000, 0, {"0-16", 4}},
};

/* Prints text from the network on the current line: control characters
 * (line breaks included) as \n, \r, \t or \xNN, at most 2000 octets. */
static void print_text(csip_str t)
{
    size_t n = t.len > 2000 ? 2000 : t.len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t.p[i];
        if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\r')
            fputs("\\r", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
    if (n < t.len)
        printf("... (%zu octets)", t.len);
}

/* ------------------------------------------------------------------------- */
/* Set-up and teardown */

static void on_closed(uv_handle_t *h)
{
    ua_call *c = h->data;
    if (--c->closing == 0 && c->closed)
        c->closed(c);
}

int call_init(ua_call *c)
{
    uv_timer_init(c->u->loop, &c->ok_timer);
    c->ok_timer.data = c;
    /* the local address as SDP writes it: no brackets around IPv6 */
    const char *h = c->u->local_host;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[')
        snprintf(c->media_addr, sizeof c->media_addr, "%.*s", (int)(n - 2), h + 1);
    else
        snprintf(c->media_addr, sizeof c->media_addr, "%s", h);
    uint8_t rnd[6] = {0};
    (void)RAND_bytes(rnd, sizeof rnd);
    c->sess_id = 0;
    for (size_t i = 0; i < sizeof rnd; i++)
        c->sess_id = c->sess_id << 8 | rnd[i];
    c->sess_id %= 1000000000000u;
    csip_sdp_session_init(&c->sdp, 1);

    /* The RTP port offered is a socket of our own (no media flows on it). */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int rc = strchr(c->media_addr, ':') ? uv_ip6_addr(c->media_addr, 0, (struct sockaddr_in6 *)&ss)
                                        : uv_ip4_addr(c->media_addr, 0, (struct sockaddr_in *)&ss);
    if (rc == 0)
        rc = uv_udp_init(c->u->loop, &c->rtp);
    if (rc != 0) {
        fprintf(stderr, "%s: no RTP socket on %s: %s\n", c->u->cmd, c->media_addr, uv_strerror(rc));
        return -1;
    }
    c->rtp.data = c;
    c->rtp_open = true;
    rc = uv_udp_bind(&c->rtp, (const struct sockaddr *)&ss, 0);
    int len = (int)sizeof ss;
    if (rc == 0)
        rc = uv_udp_getsockname(&c->rtp, (struct sockaddr *)&ss, &len);
    if (rc != 0) {
        fprintf(stderr, "%s: no RTP socket on %s: %s\n", c->u->cmd, c->media_addr, uv_strerror(rc));
        return -1;
    }
    c->rtp_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void forget_txn(csip_txn *t)
{
    if (t)
        csip_txn_set_user_data(t, NULL);
}

void call_close(ua_call *c)
{
    forget_txn(c->ct);
    forget_txn(c->bye_ct);
    forget_txn(c->ok_st);
    c->ct = c->bye_ct = c->ok_st = NULL;
    if (c->dlg) {
        csip_dialog_set_user_data(c->dlg, NULL);
        csip_dialog_free(c->dlg);
        c->dlg = NULL;
    }
    csip_sdp_free(c->peer_sdp);
    csip_sdp_free(c->my_sdp);
    c->peer_sdp = c->my_sdp = NULL;
    free(c->peer_sdp_text);
    free(c->my_sdp_text);
    c->peer_sdp_text = c->my_sdp_text = NULL;
    free(c->ok_bytes);
    c->ok_bytes = NULL;
    csip_msg_free(c->ack);
    c->ack = NULL;
    c->closing = 1; /* held until both closes are queued */
    if (!uv_is_closing((uv_handle_t *)&c->ok_timer)) {
        c->closing++;
        uv_close((uv_handle_t *)&c->ok_timer, on_closed);
    }
    if (c->rtp_open && !uv_is_closing((uv_handle_t *)&c->rtp)) {
        c->closing++;
        uv_close((uv_handle_t *)&c->rtp, on_closed);
    }
    c->rtp_open = false;
    if (--c->closing == 0 && c->closed)
        c->closed(c);
}

ua_call *call_of(const csip_dialog *dlg)
{
    return dlg ? csip_dialog_user_data(dlg) : NULL;
}

void call_set_dialog(ua_call *c, csip_dialog *dlg)
{
    c->dlg = dlg;
    csip_dialog_set_user_data(dlg, c);
}

static void end_call(ua_call *c, call_end how)
{
    if (c->is_ended)
        return;
    c->is_ended = true;
    c->ok_waiting = false;
    uv_timer_stop(&c->ok_timer);
    if (c->dlg)
        csip_dialog_terminate(c->dlg);
    if (c->ended)
        c->ended(c, how);
}

/* ------------------------------------------------------------------------- */
/* SDP */

static void local_desc(const ua_call *c, csip_sdp_local *l)
{
    memset(l, 0, sizeof *l);
    l->username = csip_str_c(c->sdp_user && c->sdp_user[0] ? c->sdp_user : "-");
    l->sess_id = c->sess_id;
    l->session_name = CSIP_STR("csip");
    l->address = csip_str_c(c->media_addr);
    l->ports = &c->rtp_port;
    l->n_ports = 1;
    l->codecs = codecs;
    l->n_codecs = sizeof codecs / sizeof codecs[0];
    l->dir = CSIP_SDP_SENDRECV;
    l->ptime = 20;
}

/* A description as text (NUL-terminated copy) and parsed. */
static int sdp_copy(csip_str body, char **text, csip_sdp **sdp, const char *label)
{
    *text = malloc(body.len + 1);
    *sdp = NULL;
    if (!*text)
        return -1;
    if (body.len)
        memcpy(*text, body.p, body.len);
    (*text)[body.len] = 0;
    csip_sdp_error err;
    int rc = csip_sdp_parse(*text, body.len, NULL, sdp, &err);
    if (rc != 0) {
        printf("%s: the SDP does not parse: %s (line %u, column %u)\n", label,
               err.what ? err.what : csip_strerror(rc), (unsigned)err.line, (unsigned)err.column);
        free(*text);
        *text = NULL;
        return -1;
    }
    return 0;
}

static void keep(char **text, csip_sdp **sdp, char *new_text, csip_sdp *new_sdp)
{
    csip_sdp_free(*sdp);
    free(*text);
    *text = new_text;
    *sdp = new_sdp;
}

bool call_has_sdp(const csip_msg *m)
{
    const csip_media_type *mt;
    return csip_msg_body(m).len > 0 && csip_msg_content_type(m, &mt) == 0 &&
           csip_str_ieq_c(mt->type, "application") && csip_str_ieq_c(mt->subtype, "sdp");
}

int call_offer(ua_call *c, csip_str *out)
{
    char buf[SDP_MAX];
    csip_sdp_local l;
    local_desc(c, &l);
    const csip_sdp *prev = c->peer_sdp ? c->peer_sdp : c->my_sdp;
    int n = csip_sdp_offer(&c->sdp, &l, prev, buf, sizeof buf);
    char *text;
    csip_sdp *sdp;
    if (n < 0 || sdp_copy((csip_str){buf, (size_t)n}, &text, &sdp, c->label) != 0) {
        fprintf(stderr, "%s: cannot write an SDP offer: %s\n", c->u->cmd,
                csip_strerror(n < 0 ? n : CSIP_ERR_NOMEM));
        return -1;
    }
    keep(&c->my_sdp_text, &c->my_sdp, text, sdp);
    c->offer_out = true;
    *out = (csip_str){c->my_sdp_text, (size_t)n};
    return 0;
}

int call_answer(ua_call *c, csip_str offer, csip_str *out, size_t *accepted)
{
    char *otext, buf[SDP_MAX];
    csip_sdp *osdp;
    *accepted = 0;
    if (sdp_copy(offer, &otext, &osdp, c->label) != 0)
        return -1;
    csip_sdp_local l;
    local_desc(c, &l);
    /* a dry run first: an offer refused leaves the session (its version) as it was */
    int n = csip_sdp_answer(&c->sdp, &l, osdp, NULL, 0, accepted);
    if (n >= 0 && *accepted == 0) {
        printf("%s: nothing in the offer is acceptable (no common audio codec)\n", c->label);
        n = -1;
    }
    if (n >= 0)
        n = csip_sdp_answer(&c->sdp, &l, osdp, buf, sizeof buf, accepted);
    char *atext = NULL;
    csip_sdp *asdp = NULL;
    if (n < 0 || sdp_copy((csip_str){buf, (size_t)n}, &atext, &asdp, c->label) != 0) {
        csip_sdp_free(osdp);
        free(otext);
        return -1;
    }
    keep(&c->peer_sdp_text, &c->peer_sdp, otext, osdp);
    keep(&c->my_sdp_text, &c->my_sdp, atext, asdp);
    c->offer_out = false;
    *out = (csip_str){c->my_sdp_text, (size_t)n};
    return 0;
}

void call_take_answer(ua_call *c, csip_str answer)
{
    char *text;
    csip_sdp *sdp;
    c->offer_out = false;
    if (sdp_copy(answer, &text, &sdp, c->label) != 0)
        return;
    keep(&c->peer_sdp_text, &c->peer_sdp, text, sdp);
    call_print_media(c, true);
}

void call_print_media(ua_call *c, bool we_offered)
{
    const csip_sdp *offer = we_offered ? c->my_sdp : c->peer_sdp;
    const csip_sdp *answer = we_offered ? c->peer_sdp : c->my_sdp;
    if (!offer || !answer)
        return;
    for (size_t i = 0;; i++) {
        csip_sdp_stream s;
        int rc = csip_sdp_negotiated(offer, answer, we_offered, i, &s);
        if (rc == CSIP_ERR_NOT_FOUND)
            break;
        if (rc != 0) {
            printf("%s: media: the answer does not fit the offer (RFC 3264 §6): %s\n", c->label,
                   csip_strerror(rc));
            break;
        }
        if (!s.accepted) {
            printf("%s: media %zu: %.*s rejected\n", c->label, i + 1, (int)s.media.len, s.media.p);
            continue;
        }
        char dtmf[48] = "";
        if (s.dtmf_pt >= 0)
            snprintf(dtmf, sizeof dtmf, ", telephone-event %d", s.dtmf_pt);
        printf("%s: media: %.*s %.*s/%u with %.*s:%u %s%s, our RTP port %u (o= version: ours "
               "%llu, peer's %llu)\n",
               c->label, (int)s.media.len, s.media.p, (int)s.codec.name.len, s.codec.name.p,
               (unsigned)s.codec.clock, (int)s.address.len, s.address.p ? s.address.p : "",
               (unsigned)s.port, csip_sdp_dir_name(s.dir), dtmf, (unsigned)c->rtp_port,
               (unsigned long long)csip_sdp_get(c->my_sdp)->origin.version,
               (unsigned long long)csip_sdp_get(c->peer_sdp)->origin.version);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------- */
/* Requests we send in the dialog */

int call_next_hop(ua_call *c, csip_addr *out)
{
    csip_uri uri;
    int rc;
    if (csip_dialog_route_count(c->dlg) > 0) {
        csip_str r = csip_dialog_route(c->dlg, 0);
        csip_nameaddr na;
        rc = csip_nameaddr_parse(&r, CSIP_NAMEADDR_NEED_ANGLE, &na);
        uri = na.uri;
    } else {
        csip_str t = csip_dialog_remote_target(c->dlg);
        rc = csip_uri_parse(t.p, t.len, 0, &uri);
    }
    if (rc == 0)
        rc = ua_uri_addr(&uri, out);
    if (rc == CSIP_ERR_NOT_FOUND) {
        /* The tool resolves no names inside a dialog: the server it talks to
         * stands in (it routes by the Request-URI or the Route). */
        printf("note: %.*s is a name: sending to %s instead\n", (int)uri.host.len, uri.host.p,
               c->u->peer);
        *out = c->u->target.addr;
        return 0;
    }
    if (rc != 0) {
        printf("%s: cannot tell where requests in the dialog go: %s\n", c->label,
               csip_strerror(rc));
        return -1;
    }
    return 0;
}

/* Where a request in the dialog goes (dst) and its Via (in via), and spec
 * zeroed with that Via. @return 0 or -1. */
static int dialog_req_begin(ua_call *c, csip_addr *dst, char *via, size_t cap,
                            csip_dialog_req *spec)
{
    if (call_next_hop(c, dst) != 0 ||
        ua_via_nobranch(c->u, (csip_transport)dst->transport, via, cap) != 0)
        return -1;
    memset(spec, 0, sizeof *spec);
    spec->via = csip_str_c(via);
    return 0;
}

int call_ack(ua_call *c, const csip_msg *invite)
{
    csip_addr dst;
    char via[160];
    csip_dialog_req spec;
    if (dialog_req_begin(c, &dst, via, sizeof via, &spec) != 0)
        return -1;
    csip_msg *ack;
    int rc = csip_dialog_ack(c->dlg, invite, &spec, &ack);
    const csip_cseq *cs;
    if (rc == 0 && (rc = csip_msg_cseq(invite, &cs)) != 0)
        csip_msg_free(ack);
    if (rc != 0) {
        printf("%s: cannot build the ACK: %s\n", c->label, csip_strerror(rc));
        return -1;
    }
    (void)ua_send_stateless(c->u, ack, &dst, NULL);
    csip_msg_free(c->ack);
    c->ack = ack;
    c->ack_dst = dst;
    c->ack_cseq = cs->number;
    return 0;
}

void call_ack_again(ua_call *c, uint32_t cseq)
{
    if (c->ack && c->ack_cseq == cseq)
        (void)ua_send_stateless(c->u, c->ack, &c->ack_dst, "[again: the 2xx was retransmitted]");
}

int call_send(ua_call *c, const char *method)
{
    bool bye = strcmp(method, "BYE") == 0;
    if (!c->dlg || csip_dialog_state_of(c->dlg) == CSIP_DIALOG_TERMINATED)
        return -1;
    if (!bye && c->ct && !c->ct_final) {
        printf("%s: a re-INVITE or UPDATE is under way: no %s now\n", c->label, method);
        return -1;
    }
    if (bye && c->bye_ct)
        return -1;
    csip_addr dst;
    char via[160];
    csip_dialog_req spec;
    if (dialog_req_begin(c, &dst, via, sizeof via, &spec) != 0)
        return -1;
    spec.method = csip_str_c(method);
    char extra[64];
    snprintf(extra, sizeof extra, "User-Agent: csip/%s\r\n", csip_version());
    spec.extra = csip_str_c(extra);
    csip_str body = CSIP_STR_NULL;
    if (!bye) {
        if (call_offer(c, &body) != 0)
            return -1;
        spec.content_type = CSIP_STR("application/sdp");
        spec.body = body;
    }
    csip_msg *req;
    int rc = csip_dialog_request(c->dlg, &spec, &req);
    if (rc != 0) {
        printf("%s: cannot build the %s: %s\n", c->label, method, csip_strerror(rc));
        if (!bye)
            c->offer_out = false;
        return -1;
    }
    /* credentials only once a request in the dialog was challenged */
    char note[200] = "", cred[2 * 4096 + 64] = "";
    if (c->auth && c->auth_retries > 0) {
        csip_str ruri = csip_msg_ruri_raw(req);
        char uri[1024];
        snprintf(uri, sizeof uri, "%.*s", (int)ruri.len, ruri.p);
        if (ua_auth_add(c->auth, c->u->cmd, method, uri, cred, sizeof cred, note, sizeof note) !=
                0 ||
            ua_msg_add_lines(req, cred) != 0) {
            csip_msg_free(req);
            return -1;
        }
    }
    if (!bye) {
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len, "%s[SDP offer]", len ? " " : "");
    }
    csip_txn *t = NULL;
    if (ua_send_to(c->u, req, &dst, note[0] ? note : NULL, c, &t) != 0)
        return -1;
    if (bye) {
        c->bye_ct = t;
    } else {
        c->ct = t;
        c->ct_final = false;
    }
    return 0;
}

void call_hangup(ua_call *c)
{
    if (c->is_ended || c->bye_ct)
        return;
    if (c->ok_waiting && !c->confirmed_seen) {
        c->bye_wanted = true; /* RFC 3261 §15: not before the ACK of our 2xx */
        return;
    }
    c->auth_retries = 0;
    if (call_send(c, "BYE") != 0)
        end_call(c, CALL_END_LOST);
}

/* ------------------------------------------------------------------------- */
/* Our 2xx to an INVITE */

static void on_ok_timer(uv_timer_t *t)
{
    ua_call *c = t->data;
    if (!c->ok_waiting)
        return;
    if (!c->ok_reliable && c->ok_st) {
        c->ok_elapsed += c->ok_interval;
        if (c->ok_elapsed < 64u * T1_MS) {
            csip_msg *m = NULL;
            csip_parse_error err;
            if (csip_msg_parse(c->ok_bytes, c->ok_len, NULL, &m, &err) == 0)
                (void)ua_respond(c->u, c->ok_st, m, "[retransmission]");
            else
                csip_msg_free(m);
            c->ok_interval = c->ok_interval * 2 < T2_MS ? c->ok_interval * 2 : T2_MS;
            uint64_t next = c->ok_interval;
            if (c->ok_elapsed + next > 64u * T1_MS)
                next = 64u * T1_MS - c->ok_elapsed;
            uv_timer_start(&c->ok_timer, on_ok_timer, next, 0);
            return;
        }
    }
    /* RFC 3261 §13.3.1.4: no ACK within 64*T1: the session ends with a BYE. */
    printf("%s: no ACK for our 2xx within %u s: ending the call\n", c->label,
           (unsigned)(64u * T1_MS / 1000u));
    c->ok_waiting = false;
    c->confirmed_seen = true;
    c->bye_wanted = false;
    call_hangup(c);
}

void call_send_ok(ua_call *c, csip_txn *st, csip_msg *ok, const char *note)
{
    const csip_cseq *cs;
    int n = csip_msg_print(ok, NULL, 0);
    free(c->ok_bytes);
    c->ok_bytes = n > 0 ? malloc((size_t)n) : NULL;
    c->ok_len = 0;
    if (c->ok_bytes && csip_msg_print(ok, c->ok_bytes, (size_t)n) == n)
        c->ok_len = (size_t)n;
    c->ok_cseq = csip_msg_cseq(ok, &cs) == 0 ? cs->number : 0;
    c->ok_st = st;
    csip_txn_set_user_data(st, c);
    c->ok_waiting = true;
    c->ok_reliable = csip_transport_reliable((csip_transport)csip_txn_peer(st)->transport);
    c->ok_interval = T1_MS;
    c->ok_elapsed = 0;
    (void)ua_respond(c->u, st, ok, note);
    uv_timer_start(&c->ok_timer, on_ok_timer, c->ok_reliable || !c->ok_len ? 64u * T1_MS : T1_MS,
                   0);
}

/* ------------------------------------------------------------------------- */
/* Requests received in the dialog */

/* A response built by the dialog layer to req, with an SDP body when given. */
static void reply(ua_call *c, csip_txn *st, const csip_msg *req, int code, csip_str sdp,
                  const char *extra, const char *note)
{
    csip_msg *resp;
    int rc = csip_dialog_response(c->dlg, req, code, NULL, &resp);
    if (rc == 0 && sdp.len)
        rc = csip_msg_set_body(resp, CSIP_STR("application/sdp"), sdp);
    if (rc == 0 && extra)
        rc = ua_msg_add_lines(resp, extra);
    if (rc != 0) {
        printf("%s: cannot build the %d: %s\n", c->label, code, csip_strerror(rc));
        return;
    }
    if (code / 100 == 2 && csip_msg_method(req) == CSIP_METHOD_INVITE)
        call_send_ok(c, st, resp, note);
    else
        (void)ua_respond(c->u, st, resp, note);
}

/* A re-INVITE or an UPDATE (RFC 3311) that passed the dialog's checks. */
static void refresh(ua_call *c, csip_txn *st, const csip_msg *req)
{
    bool invite = csip_msg_method(req) == CSIP_METHOD_INVITE;
    if (invite && c->ok_waiting) {
        /* our 2xx to the last INVITE has no ACK yet: that exchange is not over */
        reply(c, st, req, 500, CSIP_STR_NULL, "Retry-After: 1\r\n", NULL);
        return;
    }
    if (!call_has_sdp(req)) {
        if (!invite) {
            reply(c, st, req, 200, CSIP_STR_NULL, NULL, NULL);
            return;
        }
        /* a re-INVITE without an offer: ours in the 2xx, the answer in the ACK */
        csip_str offer;
        if (call_offer(c, &offer) != 0) {
            reply(c, st, req, 500, CSIP_STR_NULL, NULL, NULL);
            return;
        }
        reply(c, st, req, 200, offer, NULL, "[SDP offer]");
        return;
    }
    if (c->offer_out) {
        /* RFC 3311 §5.2, RFC 3261 §14.2: an offer crossing ours */
        reply(c, st, req, 491, CSIP_STR_NULL, NULL, NULL);
        return;
    }
    csip_str answer;
    size_t accepted;
    if (call_answer(c, csip_msg_body(req), &answer, &accepted) != 0) {
        reply(c, st, req, 488, CSIP_STR_NULL, NULL, NULL);
        return;
    }
    reply(c, st, req, 200, answer, NULL, "[SDP answer]");
    call_print_media(c, false);
}

void call_on_request(ua_call *c, csip_txn *st, const csip_msg *req)
{
    csip_method m = csip_msg_method(req);
    const csip_cseq *cs;
    if (!st) {
        /* an ACK of a 2xx of ours (RFC 3261 §13.3.1.4) */
        if (m != CSIP_METHOD_ACK || csip_msg_cseq(req, &cs) != 0)
            return;
        if (!c->ok_waiting || cs->number != c->ok_cseq)
            return;
        c->ok_waiting = false;
        uv_timer_stop(&c->ok_timer);
        forget_txn(c->ok_st);
        c->ok_st = NULL;
        if (c->offer_out) {
            if (call_has_sdp(req))
                call_take_answer(c, csip_msg_body(req));
            else
                printf("%s: the ACK carries no answer to our offer\n", c->label);
            c->offer_out = false;
        }
        if (!c->confirmed_seen) {
            c->confirmed_seen = true;
            printf("%s: confirmed (ACK received)\n", c->label);
        }
        if (c->bye_wanted) {
            c->bye_wanted = false;
            call_hangup(c);
        }
        fflush(stdout);
        return;
    }
    if (m == CSIP_METHOD_CANCEL) {
        /* A CANCEL of a request of the dialog: we answer every INVITE at once,
         * so it comes too late (RFC 3261 §9.2: 200, no effect), or matches nothing. */
        csip_txn *inv = csip_txn_layer_find_invite(csip_txn_layer_of(st), req);
        (void)ua_respond_code(c->u, st, inv ? 200 : 481, NULL);
        return;
    }
    int status = 0;
    int rc = csip_dialog_recv_request(c->dlg, req, &status);
    if (rc != 0 && status == 0)
        status = rc == CSIP_ERR_NOMEM ? 500 : 400;
    if (status != 0) {
        reply(c, st, req, status, CSIP_STR_NULL,
              status == 500 && m == CSIP_METHOD_INVITE ? "Retry-After: 2\r\n" : NULL, NULL);
        return;
    }
    switch (m) {
    case CSIP_METHOD_BYE:
        reply(c, st, req, 200, CSIP_STR_NULL, NULL, NULL);
        end_call(c, CALL_END_PEER_BYE);
        return;
    case CSIP_METHOD_INVITE:
    case CSIP_METHOD_UPDATE:
        refresh(c, st, req);
        return;
    case CSIP_METHOD_MESSAGE: {
        printf("%s: message: ", c->label);
        print_text(csip_msg_body(req));
        printf("\n");
        reply(c, st, req, 200, CSIP_STR_NULL, NULL, NULL);
        return;
    }
    case CSIP_METHOD_OPTIONS:
    case CSIP_METHOD_INFO:
        reply(c, st, req, 200, CSIP_STR_NULL, NULL, NULL);
        return;
    default:
        reply(c, st, req, 501, CSIP_STR_NULL, NULL, NULL);
        return;
    }
}

/* ------------------------------------------------------------------------- */
/* Responses to our requests in the dialog */

bool call_on_response(ua_call *c, csip_txn *ct, const csip_msg *resp, int status)
{
    if (!ct || (ct != c->ct && ct != c->bye_ct))
        return false;
    bool bye = ct == c->bye_ct;
    const csip_msg *req = csip_txn_request(ct);
    csip_method m = csip_msg_method(req);
    bool invite = m == CSIP_METHOD_INVITE;
    const csip_cseq *cs;
    if (!bye && c->ct_final) {
        /* RFC 6026: a 2xx again while the INVITE client transaction is Accepted */
        ua_print_response_from(c->u, resp, status, csip_txn_peer(ct), NULL);
        if (resp && invite && status / 100 == 2 && csip_msg_cseq(resp, &cs) == 0)
            call_ack_again(c, cs->number);
        return true;
    }
    ua_print_response_from(c->u, resp, status, csip_txn_peer(ct),
                           resp && call_has_sdp(resp) ? "[SDP]" : NULL);
    if (c->dlg)
        (void)csip_dialog_recv_response(c->dlg, req, resp, status);
    if (status < 200)
        return true;
    if (invite && resp && status >= 300)
        ua_print_layer_ack(c->u, ct);
    if (!bye)
        c->ct_final = true;
    if ((status == 401 || status == 407) && resp && c->auth && c->auth_retries < MAX_AUTH_RETRIES) {
        c->auth_retries++;
        bool again = ua_auth_take(c->auth, resp, status);
        if (bye)
            c->bye_ct = NULL;
        if (again && call_send(c, bye ? "BYE" : invite ? "INVITE" : "UPDATE") == 0)
            return true;
        if (bye) {
            c->bye_status = status;
            end_call(c, CALL_END_OUR_BYE);
            return true;
        }
    }
    if (bye) {
        c->bye_status = status;
        end_call(c, CALL_END_OUR_BYE);
        return true;
    }
    c->auth_retries = 0;
    if (status / 100 == 2) {
        if (invite)
            (void)call_ack(c, req);
        if (c->offer_out) {
            if (resp && call_has_sdp(resp))
                call_take_answer(c, csip_msg_body(resp));
            else
                printf("%s: the %s's 2xx carries no answer to our offer\n", c->label,
                       invite ? "re-INVITE" : "UPDATE");
        }
        c->offer_out = false;
        fflush(stdout);
        return true;
    }
    c->offer_out = false;
    if (status == 481 || status == 408) {
        printf("%s: the dialog is gone (%d to our %s)\n", c->label, status,
               invite ? "re-INVITE" : "UPDATE");
        end_call(c, CALL_END_LOST);
        return true;
    }
    printf("%s: our %s was refused (%d): the session stays as it was\n", c->label,
           invite ? "re-INVITE" : "UPDATE", status);
    fflush(stdout);
    return true;
}

void call_on_terminated(ua_call *c, csip_txn *t)
{
    if (t == c->ct)
        c->ct = NULL;
    if (t == c->bye_ct)
        c->bye_ct = NULL;
    if (t == c->ok_st)
        c->ok_st = NULL;
}

/* ------------------------------------------------------------------------- */

void call_reply_outside(ua *u, csip_txn *st, const csip_msg *req)
{
    if (!st)
        return;
    csip_method m = csip_msg_method(req);
    const csip_nameaddr *to;
    bool tagged = csip_msg_to(req, &to) == 0 && to->tag.p != NULL;
    if (m == CSIP_METHOD_OPTIONS && !tagged) {
        (void)ua_respond_code(u, st, 200,
                              "Allow: INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS, MESSAGE, INFO\r\n"
                              "Accept: application/sdp, text/plain\r\n");
        return;
    }
    if (m == CSIP_METHOD_MESSAGE && !tagged) {
        /* RFC 3428: a page; text is printed as it came (cut at 2000 octets) */
        const csip_nameaddr *from;
        csip_str who = csip_msg_from(req, &from) == 0 ? from->uri.raw : CSIP_STR("?");
        printf("message from %.*s: ", (int)who.len, who.p);
        print_text(csip_msg_body(req));
        printf("\n");
        (void)ua_respond_code(u, st, 200, NULL);
        return;
    }
    if (tagged || m == CSIP_METHOD_CANCEL || m == CSIP_METHOD_BYE || m == CSIP_METHOD_UPDATE ||
        m == CSIP_METHOD_INFO || m == CSIP_METHOD_PRACK || m == CSIP_METHOD_NOTIFY) {
        (void)ua_respond_code(u, st, 481, NULL);
        return;
    }
    (void)ua_respond_code(u, st, 405,
                          "Allow: INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS, MESSAGE, INFO\r\n");
}
