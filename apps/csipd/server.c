/*
 * csipd's server: the network endpoint and transaction layer of the runtime,
 * the registrar core over the SQLite location store, digest authentication
 * with users from the same database, and the failure limiter.
 *
 * Everything runs on one libuv loop. A request is answered in the callback
 * that brings it: the registrar writes the bindings through to SQLite (one
 * transaction per REGISTER) before it builds the 200 OK.
 */
#define _DEFAULT_SOURCE /* uv.h needs POSIX types */

#include "csip/csip.h"
#include "csip/net.h"
#include "csip/store.h"
#include "csipd.h"

#include <openssl/rand.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ALIASES 48
#define CHALLENGE_MAX 512
#define SECRET_LEN 32
#define GROUP_MAX 512 /* REGISTERs per group commit at most */

typedef struct held {
    csip_txn *st;
    csip_msg *resp;
} held;

typedef struct server {
    const csipd_config *cfg;
    uv_loop_t loop;
    csip_endpoint *ep;
    csip_store_sqlite *store;
    csip_userdb *users;
    csip_registrar *reg;
    csip_auth_server *auth[CSIPD_MAX_LIST]; /* one per domain: the realm is the domain */
    csip_limiter *lim;
    uv_signal_t sigint, sigterm;
    uv_timer_t sweep;
    uv_timer_t group_timer; /* ends a group commit window */
    uv_check_t group_check; /* ends a group at the end of a loop iteration (window 0) */
    held group[GROUP_MAX];  /* responses waiting for the group's commit */
    size_t n_group;
    const char *aliases[MAX_ALIASES + 1];
    char alias_buf[MAX_ALIASES][256];
    size_t n_aliases;
    char tag_prefix[9];
    uint64_t tag_seq;
    uint64_t requests, stopping;
} server;

/* ------------------------------------------------------------------------- */
/* Helpers */

static int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A To tag: a random per-process prefix and a counter (RFC 3261 §19.3 asks for
 * global uniqueness and 32 random bits). */
static csip_str new_tag(server *s, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%llx", s->tag_prefix, (unsigned long long)++s->tag_seq);
    return (csip_str){buf, (size_t)n};
}

static bool domain_index(const server *s, csip_str host, size_t *out)
{
    for (size_t i = 0; s->cfg->domains[i]; i++)
        if (csip_str_ieq_c(host, s->cfg->domains[i])) {
            *out = i;
            return true;
        }
    return false;
}

/* Unescapes the quoted-pairs of a quoted-string view into buf. */
static csip_str unquote(csip_str in, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len && n < cap; i++) {
        if (in.p[i] == '\\' && i + 1 < in.len)
            i++;
        buf[n++] = in.p[i];
    }
    return (csip_str){buf, n};
}

/* The request summary of a log line: method, To URI, source, short Call-ID. */
static void describe(const csip_msg *req, const csip_addr *src, char *out, size_t cap)
{
    csip_str m = csip_msg_method_name(req);
    const csip_nameaddr *to = NULL;
    csip_str cid = CSIP_STR_NULL, uri = CSIP_STR_NULL;
    (void)csip_msg_call_id(req, &cid);
    if (csip_msg_to(req, &to) == 0)
        uri = to->uri.raw;
    char a[64] = "?";
    if (src)
        (void)csip_addr_format(src, a, sizeof a);
    snprintf(out, cap, "%.*s %.*s from %s:%s cid=%.8s", (int)m.len, m.p,
             (int)(uri.len > 120 ? 120 : uri.len), uri.p ? uri.p : "",
             src ? csip_transport_name((csip_transport)src->transport) : "?", a,
             cid.p ? cid.p : "-");
    (void)cid;
}

/* Sends a response and logs the transaction's line. */
static void respond(server *s, csip_txn *st, csip_msg *resp, const char *what)
{
    const csip_msg *req = csip_txn_request(st);
    int code = csip_msg_status(resp);
    csip_str r = csip_msg_reason(resp);
    char reason[128]; /* copied: the response goes to the layer */
    snprintf(reason, sizeof reason, "%.*s", (int)r.len, r.p ? r.p : "");
    int rc = csip_txn_respond(st, resp, csip_endpoint_now(s->ep));
    if (csipd_log_level >= LOG_INFO || rc != 0) {
        char d[320];
        describe(req, csip_txn_peer(st), d, sizeof d);
        if (rc != 0)
            csipd_log(LOG_WARN, "%s -> %d not sent: %s", d, code, csip_strerror(rc));
        else
            csipd_log(LOG_INFO, "%s -> %d %s%s%s", d, code, reason, what ? ": " : "",
                      what ? what : "");
    }
}

/* A response built here; NULL reason = the registry's phrase. */
static csip_msg *make(server *s, csip_txn *st, int code, const char *reason)
{
    char tb[32];
    csip_msg *resp = NULL;
    if (csip_response_for(csip_txn_request(st), code, reason, new_tag(s, tb, sizeof tb), NULL,
                          &resp) != 0)
        return NULL;
    return resp;
}

static void respond_simple(server *s, csip_txn *st, int code, const char *reason, const char *what)
{
    csip_msg *resp = make(s, st, code, reason);
    if (!resp) {
        csipd_log(LOG_ERROR, "out of memory building a %d", code);
        return;
    }
    respond(s, st, resp, what);
}

static const char allow_value[] = "REGISTER, OPTIONS, ACK, CANCEL";

/* ------------------------------------------------------------------------- */
/* REGISTER */

static void challenge(server *s, csip_txn *st, size_t dom, int code, bool stale, const char *what)
{
    csip_msg *resp = make(s, st, code, NULL);
    if (!resp)
        return;
    csip_auth_server *as = s->auth[dom];
    csip_hdr_id id = code == 407 ? CSIP_HDR_PROXY_AUTHENTICATE : CSIP_HDR_WWW_AUTHENTICATE;
    char buf[CHALLENGE_MAX];
    uint64_t now = wall_ms();
    for (size_t i = 0; i < csip_auth_server_challenge_count(as); i++) {
        int n = csip_auth_server_challenge(as, i, stale, now, buf, sizeof buf);
        if (n < 0 || csip_msg_hdr_add(resp, id, (csip_str){buf, (size_t)n}, false) != 0) {
            csip_msg_free(resp);
            csipd_log(LOG_ERROR, "cannot build a challenge");
            return;
        }
    }
    respond(s, st, resp, what);
}

static void retry_later(server *s, csip_txn *st, uint32_t wait, const char *what)
{
    csip_msg *resp = make(s, st, 503, "Too Many Failed Authentications");
    if (!resp)
        return;
    char v[16];
    int n = snprintf(v, sizeof v, "%u", wait);
    (void)csip_msg_hdr_add(resp, CSIP_HDR_RETRY_AFTER, (csip_str){v, (size_t)n}, false);
    respond(s, st, resp, what);
}

/* The source key of the limiter: transport family and address, no port. */
static size_t source_key(const csip_addr *src, uint8_t *key)
{
    key[0] = src->family;
    size_t n = src->family == 6 ? 16 : 4;
    memcpy(key + 1, src->ip, n);
    return n + 1;
}

/* Digest authentication (§22, RFC 7616): true when the request may go on to
 * the registrar; otherwise a response was sent. */
static bool authenticate(server *s, csip_txn *st, const csip_msg *req, const csip_addr *src,
                         const csip_nameaddr *to, size_t dom)
{
    uint8_t skey[17];
    size_t sklen = source_key(src, skey);
    uint64_t now_ms = wall_ms();
    uint32_t wait = csip_limiter_wait(s->lim, skey, sklen, now_ms);
    if (wait) {
        retry_later(s, st, wait, "source rate-limited after failed authentications");
        return false;
    }
    /* The credentials for our realm (§22.4: one per realm, others ignored). */
    const char *realm = s->cfg->domains[dom];
    const csip_auth *cred = NULL, *c;
    char rbuf[256];
    for (size_t i = 0; csip_msg_auth(req, CSIP_HDR_AUTHORIZATION, i, &c) == 0; i++)
        if (csip_str_ieq_c(c->scheme, "Digest") &&
            csip_str_eq_c(unquote(c->realm, rbuf, sizeof rbuf), realm)) {
            cred = c;
            break;
        }
    if (!cred) {
        challenge(s, st, dom, 401, false, "challenge");
        return false;
    }
    char ubuf[256], ukey[600];
    csip_str user = unquote(cred->username, ubuf, sizeof ubuf);
    int uklen = snprintf(ukey, sizeof ukey, "%.*s@%s", (int)user.len, user.p, realm);
    if (uklen > 0 && (wait = csip_limiter_wait(s->lim, ukey, (size_t)uklen, now_ms)) != 0) {
        retry_later(s, st, wait, "user rate-limited after failed authentications");
        return false;
    }
    csip_auth_request ar = {.method = csip_msg_method_name(req), .uri = csip_msg_ruri_raw(req)};
    csip_auth_result r =
        csip_auth_server_verify(s->auth[dom], cred, &ar, now_ms, csip_userdb_lookup, s->users);
    char what[160];
    switch (r) {
    case CSIP_AUTH_OK:
        break;
    case CSIP_AUTH_STALE:
        challenge(s, st, dom, 401, true, "stale nonce, new challenge");
        return false;
    case CSIP_AUTH_INTERNAL_ERROR:
        respond_simple(s, st, 500, NULL, "authentication failed internally");
        return false;
    default: {
        /* A failure: counted against the source and the user name. */
        (void)csip_limiter_fail(s->lim, skey, sklen, now_ms);
        if (uklen > 0 && !cred->userhash.p)
            (void)csip_limiter_fail(s->lim, ukey, (size_t)uklen, now_ms);
        snprintf(what, sizeof what, "authentication failed (%s) for user %.*s",
                 csip_auth_result_name(r), (int)(user.len > 64 ? 64 : user.len), user.p);
        int code = csip_auth_result_status(r, false);
        if (code == 401)
            challenge(s, st, dom, 401, false, what);
        else
            respond_simple(s, st, code, NULL, what);
        return false;
    }
    }
    /* The user name must be the AOR's user (§22: a user may only register her
     * own address), unless configured otherwise. With userhash the lookup has
     * already tied the hash to this realm; the name is then not compared. */
    if (!s->cfg->auth_user_mismatch && !cred->userhash.p) {
        char tu[256];
        int n = to->uri.user.p ? csip_unescape(to->uri.user, tu, sizeof tu) : 0;
        if (n < 0 || (size_t)n != user.len || memcmp(tu, user.p, user.len) != 0) {
            snprintf(what, sizeof what, "user %.*s may not register this address",
                     (int)(user.len > 64 ? 64 : user.len), user.p);
            respond_simple(s, st, 403, "Username Does Not Match the Address of Record", what);
            return false;
        }
    }
    return true;
}

/* Commits the open group, then sends the responses it held: the 200s only
 * once their bindings are on disk, 500s if the commit failed. */
static void group_flush(server *s)
{
    if (!csip_store_sqlite_in_group(s->store))
        return;
    uv_timer_stop(&s->group_timer);
    int rc = csip_store_sqlite_group_commit(s->store);
    if (rc)
        csipd_log(LOG_ERROR, "committing %zu registrations: %s", s->n_group, csip_strerror(rc));
    size_t n = s->n_group;
    s->n_group = 0;
    for (size_t i = 0; i < n; i++) {
        held *h = &s->group[i];
        if (rc == 0) {
            respond(s, h->st, h->resp, NULL);
        } else {
            csip_msg_free(h->resp);
            respond_simple(s, h->st, 500, "Location Database Failure", "group commit failed");
        }
    }
}

static void on_group_timer(uv_timer_t *t)
{
    group_flush(t->data);
}

static void on_group_check(uv_check_t *c)
{
    server *s = c->data;
    if (s->cfg->group_commit_ms == 0)
        group_flush(s);
}

static void on_register(server *s, csip_txn *st, const csip_msg *req, const csip_addr *src)
{
    const csip_nameaddr *to;
    size_t dom;
    /* A To the registrar refuses (not sip/sips, a domain not served) is
     * answered by it without authentication: nothing would be written. */
    if (s->cfg->auth && csip_msg_to(req, &to) == 0 &&
        (to->uri.kind == CSIP_URI_SIP || to->uri.kind == CSIP_URI_SIPS) &&
        domain_index(s, to->uri.host, &dom) && !authenticate(s, st, req, src, to, dom))
        return;
    /* The first REGISTER of a window opens a group commit. */
    if (!csip_store_sqlite_in_group(s->store) && csip_store_sqlite_group_begin(s->store) == 0 &&
        s->cfg->group_commit_ms)
        uv_timer_start(&s->group_timer, on_group_timer, s->cfg->group_commit_ms, 0);
    csip_msg *resp = NULL;
    int rc = csip_registrar_handle(s->reg, req, wall_s(), &resp);
    if (rc != 0) {
        csipd_log(LOG_ERROR, "registrar: %s", csip_strerror(rc));
        respond_simple(s, st, 500, NULL, "registrar failure");
        return;
    }
    if (!csip_store_sqlite_in_group(s->store)) {
        respond(s, st, resp, NULL);
        return;
    }
    s->group[s->n_group].st = st;
    s->group[s->n_group++].resp = resp;
    if (s->n_group == GROUP_MAX)
        group_flush(s);
}

/* ------------------------------------------------------------------------- */
/* Transaction layer callbacks */

static void answer_check(server *s, csip_txn *st, const csip_check_result *res)
{
    csip_msg *resp = make(s, st, res->status, res->reason);
    if (!resp)
        return;
    if (res->status == 405)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ALLOW, CSIP_STR(allow_value), false);
    for (size_t i = 0; res->status == 420 && i < res->n_unsupported && i < 16; i++)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_UNSUPPORTED, res->unsupported[i], false);
    respond(s, st, resp, "refused by the request checks");
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    server *s = user_data;
    s->requests++;
    if (!st) /* an ACK for a 2xx of nobody here: there is no dialog to give it */
        return;
    static const char *const allowed[] = {"REGISTER", "OPTIONS", "ACK", "CANCEL", NULL};
    csip_check_opts co = {.allowed = allowed};
    csip_method m = csip_msg_method(req);
    csip_check_result res;
    if (csip_check_request(req, m == CSIP_METHOD_REGISTER ? CSIP_ROLE_REGISTRAR : CSIP_ROLE_UAS,
                           &co, &res) != 0) {
        answer_check(s, st, &res);
        return;
    }
    switch (m) {
    case CSIP_METHOD_REGISTER:
        on_register(s, st, req, src);
        break;
    case CSIP_METHOD_OPTIONS: {
        csip_msg *resp = make(s, st, 200, NULL);
        if (!resp)
            return;
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ALLOW, CSIP_STR(allow_value), false);
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ACCEPT, CSIP_STR("application/sdp"), false);
        (void)csip_msg_hdr_add(resp, CSIP_HDR_SUPPORTED, CSIP_STR("path"), false);
        respond(s, st, resp, NULL);
        break;
    }
    case CSIP_METHOD_CANCEL:
        /* every INVITE is refused at once, so there is never one to cancel */
        respond_simple(s, st, 481, NULL, NULL);
        break;
    default:
        respond_simple(s, st, 405, NULL, NULL);
        break;
    }
}

/* ------------------------------------------------------------------------- */
/* Life cycle */

static void on_sweep(uv_timer_t *t)
{
    server *s = t->data;
    group_flush(s);
    size_t n = 0;
    int rc = csip_store_sqlite_sweep(s->store, wall_s(), &n);
    if (rc)
        csipd_log(LOG_ERROR, "sweeping expired bindings: %s", csip_strerror(rc));
    else if (n)
        csipd_log(LOG_INFO, "%zu expired binding%s removed, %zu left", n, n == 1 ? "" : "s",
                  csip_store_sqlite_count(s->store));
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *s = h->data;
    csipd_log(LOG_INFO, "%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    s->stopping = 1;
    uv_stop(&s->loop);
}

/* The server's own names for the registrar's Request-URI check: the
 * configured aliases, the listening addresses, and for a wildcard listener
 * the loopback addresses (its actual addresses are not enumerated). */
static void add_alias(server *s, const char *name)
{
    size_t len = strlen(name);
    if (s->n_aliases >= MAX_ALIASES || len >= sizeof s->alias_buf[0])
        return;
    for (size_t i = 0; i < s->n_aliases; i++)
        if (strcmp(s->aliases[i], name) == 0)
            return;
    memcpy(s->alias_buf[s->n_aliases], name, len + 1);
    s->aliases[s->n_aliases] = s->alias_buf[s->n_aliases];
    s->n_aliases++;
    s->aliases[s->n_aliases] = NULL;
}

static void collect_aliases(server *s)
{
    for (size_t i = 0; s->cfg->aliases[i]; i++)
        add_alias(s, s->cfg->aliases[i]);
    const csip_addr *a;
    for (size_t i = 0; (a = csip_endpoint_local(s->ep, i)) != NULL; i++) {
        char hp[64];
        if (csip_addr_format(a, hp, sizeof hp) < 0)
            continue;
        /* "1.2.3.4:5060" or "[::1]:5060": the host without the port */
        char *colon = strrchr(hp, ':');
        if (colon)
            *colon = '\0';
        bool any = strcmp(hp, "0.0.0.0") == 0 || strcmp(hp, "[::]") == 0;
        if (any) {
            add_alias(s, "127.0.0.1");
            add_alias(s, "[::1]");
        } else {
            add_alias(s, hp);
        }
    }
    char host[256];
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        add_alias(s, host);
    }
}

static void log_ready(server *s)
{
    char line[1024];
    size_t n = 0;
    const csip_addr *a;
    for (size_t i = 0; (a = csip_endpoint_local(s->ep, i)) != NULL && n < sizeof line - 80; i++) {
        char hp[64] = "?";
        (void)csip_addr_format(a, hp, sizeof hp);
        n += (size_t)snprintf(line + n, sizeof line - n, " %s:%s",
                              csip_transport_name((csip_transport)a->transport), hp);
    }
    for (size_t i = 0; n < sizeof line && line[i]; i++)
        if (line[i] >= 'A' && line[i] <= 'Z')
            line[i] = (char)(line[i] - 'A' + 'a');
    char doms[512];
    size_t d = 0;
    for (size_t i = 0; s->cfg->domains[i] && d < sizeof doms - 80; i++)
        d += (size_t)snprintf(doms + d, sizeof doms - d, "%s%s", i ? "," : "", s->cfg->domains[i]);
    csipd_log(LOG_WARN, "csipd: ready%s domains=%s db=%s auth=%s", line, doms, s->cfg->db,
              s->cfg->auth ? "on" : "off");
    fflush(stderr);
}

static int open_state(server *s)
{
    const csipd_config *c = s->cfg;
    int rc;
    if (csipd_prepare_db_dir(c->db) != 0)
        return -1;
    if ((rc = csip_store_sqlite_open(c->db, 0, NULL, &s->store)) != 0) {
        csipd_log(LOG_ERROR, "cannot open the location database %s: %s", c->db, csip_strerror(rc));
        return -1;
    }
    if ((rc = csip_userdb_open(c->db, NULL, &s->users)) != 0) {
        csipd_log(LOG_ERROR, "cannot open the users table of %s: %s", c->db, csip_strerror(rc));
        return -1;
    }
    csipd_log(LOG_INFO, "%zu binding%s loaded from %s", csip_store_sqlite_count(s->store),
              csip_store_sqlite_count(s->store) == 1 ? "" : "s", c->db);
    /* The nonce key lives in the database, so that a challenge given before a
     * restart can still be answered after it. */
    uint8_t key[SECRET_LEN];
    if ((rc = csip_userdb_secret(s->users, "nonce-key", key, sizeof key)) != 0) {
        csipd_log(LOG_ERROR, "cannot read the nonce key: %s", csip_strerror(rc));
        return -1;
    }
    csip_auth_alg algs[6];
    for (size_t i = 0; i < c->n_auth_algs; i++)
        algs[i] = (csip_auth_alg)c->auth_algs[i];
    for (size_t i = 0; c->domains[i]; i++) {
        csip_auth_server_opts *o = NULL;
        rc = csip_auth_server_opts_new(NULL, &o);
        if (!rc)
            rc = csip_auth_server_opts_set_realm(o, csip_str_c(c->domains[i]));
        if (!rc)
            rc = csip_auth_server_opts_set_nonce_lifetime(o, c->nonce_lifetime);
        if (!rc)
            rc = csip_auth_server_opts_set_algorithms(o, algs, c->n_auth_algs);
        if (!rc)
            rc = csip_auth_server_new(NULL, key, sizeof key, o, &s->auth[i]);
        csip_auth_server_opts_free(o);
        if (rc) {
            csipd_log(LOG_ERROR, "domain %s: %s", c->domains[i], csip_strerror(rc));
            return -1;
        }
    }
    OPENSSL_cleanse(key, sizeof key);
    csip_limiter_opts lo = {.burst = c->fail_burst, .interval_ms = c->fail_interval_ms};
    if ((rc = csip_limiter_new(&lo, NULL, &s->lim)) != 0)
        return -1;
    return 0;
}

int csipd_serve(const csipd_config *cfg)
{
    static server srv; /* static: reachable for the leak checker until exit */
    server *s = &srv;
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    uint8_t r[4];
    if (RAND_bytes(r, sizeof r) != 1)
        return 1;
    snprintf(s->tag_prefix, sizeof s->tag_prefix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    int status = 1;
    if (uv_loop_init(&s->loop) != 0)
        return 1;
    if (open_state(s) != 0)
        goto out;

    csip_endpoint_opts eo = {.listen = cfg->listen,
                             .tls_cert_file = cfg->tls_cert,
                             .tls_key_file = cfg->tls_key,
                             .tls_ca_file = cfg->tls_ca,
                             .txn = {.max_txns = cfg->max_txns}};
    csip_txn_callbacks cb = {.on_request = on_request};
    int rc = csip_endpoint_new(&s->loop, &eo, &cb, s, &s->ep);
    if (rc) {
        csipd_log(LOG_ERROR, "cannot listen: %s", csip_strerror(rc));
        goto out;
    }
    collect_aliases(s);
    csip_location_store ls;
    csip_store_sqlite_location(s->store, &ls);
    csip_registrar_opts ro = {.domains = cfg->domains,
                              .aliases = s->aliases,
                              .min_expires = cfg->min_expires,
                              .max_expires = cfg->max_expires,
                              .default_expires = cfg->default_expires,
                              .max_bindings = cfg->max_bindings};
    if ((rc = csip_registrar_new(&ro, &ls, NULL, &s->reg)) != 0) {
        csipd_log(LOG_ERROR, "registrar: %s", csip_strerror(rc));
        goto out;
    }
    /* Expired bindings are swept at start and then every 30 seconds. */
    uv_timer_init(&s->loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, 0, 30000);
    uv_timer_init(&s->loop, &s->group_timer);
    s->group_timer.data = s;
    uv_check_init(&s->loop, &s->group_check);
    s->group_check.data = s;
    uv_check_start(&s->group_check, on_group_check);
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    log_ready(s);

    uv_run(&s->loop, UV_RUN_DEFAULT);
    group_flush(s);
    status = s->stopping ? 0 : 1;
    csipd_log(LOG_INFO, "stopped after %llu requests; %zu bindings kept in %s",
              (unsigned long long)s->requests, csip_store_sqlite_count(s->store), cfg->db);

out:
    if (s->ep)
        csip_endpoint_free(s->ep);
    if (s->sweep.data) {
        uv_close((uv_handle_t *)&s->sweep, NULL);
        uv_close((uv_handle_t *)&s->group_timer, NULL);
        uv_close((uv_handle_t *)&s->group_check, NULL);
    }
    if (s->sigint.data) {
        uv_close((uv_handle_t *)&s->sigint, NULL);
        uv_close((uv_handle_t *)&s->sigterm, NULL);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT); /* the close callbacks */
    (void)uv_loop_close(&s->loop);
    csip_registrar_free(s->reg);
    for (size_t i = 0; i < CSIPD_MAX_LIST; i++)
        csip_auth_server_free(s->auth[i]);
    csip_limiter_free(s->lim);
    csip_userdb_close(s->users);
    csip_store_sqlite_close(s->store);
    return status;
}
