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
#include "csip/dns.h"
#include "csip/net.h"
#include "csip/proxy.h"
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
#define CHALLENGES_HELD 64 /* challenges held for a group's end at most */
#define DESC_MAX 320       /* a transaction described for the log */

/* A response held for the end of a group commit: the registrar's answer (a
 * 200) until its bindings are on disk, printed and kept by its transaction
 * (csip_txn_prepare: the response's and the request's memory are reused at
 * once, while still in the cache, not after the commit; measured: 7 % less
 * CPU at 26,500 digest REGISTERs/s), or a challenge (what: its log line) that
 * rides along with them. */
typedef struct held {
    csip_txn *st;
    csip_msg *resp;   /* a challenge; NULL for the registrar's answer */
    const char *what; /* a challenge: sent as it is, whatever the commit's outcome */
    int code;         /* the registrar's answer: its status; 0 if it could not be kept */
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
    uv_check_t group_check; /* ends a group at the end of a loop iteration */
    uint64_t group_opened;  /* loop time (ms) the open group began */
    held group[GROUP_MAX + CHALLENGES_HELD]; /* responses waiting for the group's commit */
    /* their transactions described for the log (info level): the requests
     * of prepared answers are gone by the group's end */
    char group_desc[GROUP_MAX + CHALLENGES_HELD][DESC_MAX];
    size_t n_group;                          /* held responses */
    size_t n_challenges;                     /* of which challenges */
    const char *aliases[MAX_ALIASES + 1];
    char alias_buf[MAX_ALIASES][256];
    size_t n_aliases;
    char tag_prefix[9];
    uint64_t tag_seq;
    uint64_t requests, stopping;
    csip_proxy *proxy;
    csip_resolver *resolver;
    uv_timer_t proxy_timer; /* Timer C */
    uv_prepare_t proxy_prep;
    struct auth_outcome *pending_auth; /* the authorize() outcome decorate() completes */
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
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s->tag_prefix);
    uint64_t v = ++s->tag_seq;
    char t[16];
    size_t k = 0;
    do {
        t[k++] = hex[v & 15];
        v >>= 4;
    } while (v);
    if (n + k >= cap)
        return CSIP_STR_NULL;
    memcpy(buf, s->tag_prefix, n);
    while (k)
        buf[n++] = t[--k];
    buf[n] = 0;
    return (csip_str){buf, n};
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
    if (!req) {
        snprintf(out, cap, "(request already released)");
        return;
    }
    csip_str m = csip_msg_method_name(req);
    const csip_nameaddr *to = NULL;
    csip_str cid = CSIP_STR_NULL, uri = CSIP_STR_NULL;
    (void)csip_msg_call_id(req, &cid);
    if (csip_msg_to(req, &to) == 0)
        uri = to->uri.raw;
    char a[64] = "?";
    if (src)
        (void)csip_addr_format(src, a, sizeof a);
    if (!cid.p)
        cid = CSIP_STR("-");
    snprintf(out, cap, "%.*s %.*s from %s:%s cid=%.*s", (int)m.len, m.p,
             (int)(uri.len > 120 ? 120 : uri.len), uri.p ? uri.p : "",
             src ? csip_transport_name((csip_transport)src->transport) : "?", a,
             (int)(cid.len > 8 ? 8 : cid.len), cid.p);
}

/* Sends a response and logs the transaction's line; stateless: the
 * transaction ends at once (csip_txn_respond_stateless). */
static void respond_how(server *s, csip_txn *st, csip_msg *resp, const char *what, bool stateless)
{
    int code = csip_msg_status(resp);
    char reason[128] = ""; /* copied: the response goes to the layer */
    if (csipd_log_level >= LOG_INFO) {
        csip_str r = csip_msg_reason(resp);
        snprintf(reason, sizeof reason, "%.*s", (int)r.len, r.p ? r.p : "");
    }
    /* described first: a completed transaction lets its request go */
    char d[DESC_MAX] = "response";
    if (csipd_log_level >= LOG_INFO)
        describe(csip_txn_request(st), csip_txn_peer(st), d, sizeof d);
    int rc = stateless ? csip_txn_respond_stateless(st, resp, csip_endpoint_now(s->ep))
                       : csip_txn_respond(st, resp, csip_endpoint_now(s->ep));
    if (csipd_log_level >= LOG_INFO || rc != 0) {
        if (rc != 0)
            csipd_log(LOG_WARN, "%s -> %d not sent: %s", d, code, csip_strerror(rc));
        else
            csipd_log(LOG_INFO, "%s -> %d %s%s%s", d, code, reason, what ? ": " : "",
                      what ? what : "");
    }
}

/* Sends what csip_txn_prepare() kept (code: its status), or in its place a
 * response with status alt (and reason), and logs it (d: the transaction). */
static void send_prepared(server *s, csip_txn *st, int code, int alt, const char *reason,
                          const char *what, const char *d)
{
    int rc = csip_txn_send_prepared(st, alt, reason, csip_endpoint_now(s->ep));
    if (alt)
        code = alt;
    if (rc != 0)
        csipd_log(LOG_WARN, "%s -> %d not sent: %s", d, code, csip_strerror(rc));
    else
        csipd_log(LOG_INFO, "%s -> %d %s%s%s", d, code, reason ? reason : csip_status_reason(code),
                  what ? ": " : "", what ? what : "");
}

static void respond(server *s, csip_txn *st, csip_msg *resp, const char *what)
{
    respond_how(s, st, resp, what, false);
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

static const char allow_value[] =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, NOTIFY, SUBSCRIBE, "
    "REFER, PRACK";

/* ------------------------------------------------------------------------- */
/* REGISTER */

/* What an authentication check concluded, for the response that says it. */
typedef struct auth_outcome {
    int status;    /* 0: authenticated; else 401/407 (challenge), 503, 400, 403, 500 */
    size_t dom;    /* the realm's domain index (challenges) */
    bool stale;    /* challenge with stale=true */
    uint32_t wait; /* 503: Retry-After */
    const char *reason;
    char what[160]; /* for the log line */
} auth_outcome;

/* Adds what an outcome asks for to its response: challenges or Retry-After. */
static int decorate_auth(server *s, const auth_outcome *o, csip_msg *resp)
{
    if (o->status == 401 || o->status == 407) {
        csip_auth_server *as = s->auth[o->dom];
        csip_hdr_id id = o->status == 407 ? CSIP_HDR_PROXY_AUTHENTICATE : CSIP_HDR_WWW_AUTHENTICATE;
        char buf[CHALLENGE_MAX];
        uint64_t now = wall_ms();
        for (size_t i = 0; i < csip_auth_server_challenge_count(as); i++) {
            int n = csip_auth_server_challenge(as, i, o->stale, now, buf, sizeof buf);
            if (n < 0)
                return n;
            int rc = csip_msg_hdr_add(resp, id, (csip_str){buf, (size_t)n}, false);
            if (rc)
                return rc;
        }
    } else if (o->status == 503 && o->wait) {
        char v[16];
        int n = snprintf(v, sizeof v, "%u", o->wait);
        return csip_msg_hdr_add(resp, CSIP_HDR_RETRY_AFTER, (csip_str){v, (size_t)n}, false);
    }
    return 0;
}

/* The source key of the limiter: transport family and address, no port. */
static size_t source_key(const csip_addr *src, uint8_t *key)
{
    key[0] = src->family;
    size_t n = src->family == 6 ? 16 : 4;
    memcpy(key + 1, src->ip, n);
    return n + 1;
}

/*
 * Digest authentication (§22, RFC 7616) of a request for the realm of domain
 * dom, with Authorization (proxy false: REGISTER, 401) or
 * Proxy-Authorization (proxy true, 407). user_must_be, when given, is the
 * user part the credentials must name (the AOR's, or the From's). Failures
 * count against the source address and the user name in the limiter.
 */
static void auth_check(server *s, const csip_msg *req, const csip_addr *src, size_t dom, bool proxy,
                       const csip_uri *user_must_be, auth_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->dom = dom;
    uint8_t skey[17];
    size_t sklen = source_key(src, skey);
    uint64_t now_ms = wall_ms();
    uint32_t wait = csip_limiter_wait(s->lim, skey, sklen, now_ms);
    if (wait) {
        o->status = 503, o->wait = wait, o->reason = "Too Many Failed Authentications";
        snprintf(o->what, sizeof o->what, "source rate-limited after failed authentications");
        return;
    }
    int chal = proxy ? 407 : 401;
    /* The credentials for our realm (§22.4: one per realm, others ignored). */
    const char *realm = s->cfg->domains[dom];
    const csip_auth *cred = NULL, *c;
    char rbuf[256];
    csip_hdr_id hid = proxy ? CSIP_HDR_PROXY_AUTHORIZATION : CSIP_HDR_AUTHORIZATION;
    for (size_t i = 0; csip_msg_auth(req, hid, i, &c) == 0; i++)
        if (csip_str_ieq_c(c->scheme, "Digest") &&
            csip_str_eq_c(unquote(c->realm, rbuf, sizeof rbuf), realm)) {
            cred = c;
            break;
        }
    if (!cred) {
        o->status = chal;
        memcpy(o->what, "challenge", sizeof "challenge");
        return;
    }
    char ubuf[256], ukey[600];
    csip_str user = unquote(cred->username, ubuf, sizeof ubuf);
    /* the limiter's key of the user: "user@realm" (user < 256, realm < 300) */
    size_t rlen = strlen(realm);
    int uklen = -1;
    if (user.len + 1 + rlen <= sizeof ukey) {
        memcpy(ukey, user.p, user.len);
        ukey[user.len] = '@';
        memcpy(ukey + user.len + 1, realm, rlen);
        uklen = (int)(user.len + 1 + rlen);
    }
    if (uklen > 0 && (wait = csip_limiter_wait(s->lim, ukey, (size_t)uklen, now_ms)) != 0) {
        o->status = 503, o->wait = wait, o->reason = "Too Many Failed Authentications";
        snprintf(o->what, sizeof o->what, "user rate-limited after failed authentications");
        return;
    }
    csip_auth_request ar = {.method = csip_msg_method_name(req), .uri = csip_msg_ruri_raw(req)};
    csip_auth_result r =
        csip_auth_server_verify(s->auth[dom], cred, &ar, now_ms, csip_userdb_lookup, s->users);
    switch (r) {
    case CSIP_AUTH_OK:
        break;
    case CSIP_AUTH_STALE:
        o->status = chal, o->stale = true;
        snprintf(o->what, sizeof o->what, "stale nonce, new challenge");
        return;
    case CSIP_AUTH_INTERNAL_ERROR:
        o->status = 500;
        snprintf(o->what, sizeof o->what, "authentication failed internally");
        return;
    default:
        /* A failure: counted against the source and the user name. */
        (void)csip_limiter_fail(s->lim, skey, sklen, now_ms);
        if (uklen > 0 && !cred->userhash.p)
            (void)csip_limiter_fail(s->lim, ukey, (size_t)uklen, now_ms);
        snprintf(o->what, sizeof o->what, "authentication failed (%s) for user %.*s",
                 csip_auth_result_name(r), (int)(user.len > 64 ? 64 : user.len), user.p);
        o->status = csip_auth_result_status(r, proxy);
        return;
    }
    /* The user name must be the AOR's (From's) user (§22: a user may only
     * register, or call as, her own address), unless configured otherwise.
     * With userhash the lookup has tied the hash to this realm already. */
    if (user_must_be && !s->cfg->auth_user_mismatch && !cred->userhash.p) {
        char tu[256];
        int n = user_must_be->user.p ? csip_unescape(user_must_be->user, tu, sizeof tu) : 0;
        if (n < 0 || (size_t)n != user.len || memcmp(tu, user.p, user.len) != 0) {
            o->status = 403, o->reason = "Username Does Not Match the Address of Record";
            snprintf(o->what, sizeof o->what, "user %.*s may not use this address",
                     (int)(user.len > 64 ? 64 : user.len), user.p);
        }
    }
}

static void group_flush(server *s);

/* Holds a response for the end of the open group (what: a challenge's log
 * line, NULL for the registrar's answer); a group of GROUP_MAX REGISTERs
 * ends at once (the challenges riding along do not count). */
static void hold(server *s, csip_txn *st, csip_msg *resp, const char *what)
{
    held h = {st, resp, what, 0};
    if (!what) {
        if (csipd_log_level >= LOG_INFO)
            describe(csip_txn_request(st), csip_txn_peer(st), s->group_desc[s->n_group], DESC_MAX);
        h.code = csip_msg_status(resp);
        h.resp = NULL;
        int rc = csip_txn_prepare(st, resp);
        if (rc != 0) {
            csipd_log(LOG_ERROR, "cannot keep a %d for the group's end: %s", h.code,
                      csip_strerror(rc));
            h.code = 0; /* a 500 at the group's end (the request is still there) */
        }
    }
    s->group[s->n_group++] = h;
    s->n_challenges += what != NULL;
    if (s->n_group - s->n_challenges == GROUP_MAX)
        group_flush(s);
}

/* REGISTER: true when it may go on to the registrar; otherwise a response was sent. */
static bool authenticate(server *s, csip_txn *st, const csip_msg *req, const csip_addr *src,
                         const csip_nameaddr *to, size_t dom)
{
    auth_outcome o;
    auth_check(s, req, src, dom, false, &to->uri, &o);
    if (o.status == 0)
        return true;
    csip_msg *resp = make(s, st, o.status, o.reason);
    if (!resp)
        return false;
    if (decorate_auth(s, &o, resp) != 0) {
        csip_msg_free(resp);
        csipd_log(LOG_ERROR, "cannot build a %d", o.status);
        return false;
    }
    /* A challenge while a group commit is open leaves with the group's
     * responses, which are sent together at its end anyway: one send for
     * the window instead of one per wake-up (and one wake-up of the client
     * per window). It waits no longer than the 200s do, and only under
     * load: with no group open it goes at once. A few dozen held are enough
     * to batch the sends at moderate rates (twenty a window at 1,000/s);
     * at high rates each wake-up reads and answers many requests anyway,
     * and holding hundreds only keeps their memory from being reused while
     * it is still in the cache (measured: 4 % more CPU at 28,500/s). */
    if (o.status == 401 && csip_store_sqlite_in_group(s->store) &&
        s->n_challenges < CHALLENGES_HELD) {
        hold(s, st, resp, o.stale ? "stale nonce, new challenge" : "challenge");
        return false;
    }
    /* A challenge or a rate-limit answer costs nothing to compute again (the
     * nonce is stateless): answered statelessly, so that it holds no
     * transaction (and its memory) for Timer J's 32 s. */
    respond_how(s, st, resp, o.what, o.status == 401 || o.status == 503);
    return false;
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
        csipd_log(LOG_ERROR, "committing %zu registrations: %s", s->n_group - s->n_challenges,
                  csip_strerror(rc));
    size_t n = s->n_group;
    s->n_group = s->n_challenges = 0;
    for (size_t i = 0; i < n; i++) {
        held *h = &s->group[i];
        const char *d = csipd_log_level >= LOG_INFO ? s->group_desc[i] : "response";
        if (h->what)
            respond_how(s, h->st, h->resp, h->what, true);
        else if (!h->code)
            respond_simple(s, h->st, 500, NULL, "answer not kept");
        else if (rc == 0)
            send_prepared(s, h->st, h->code, 0, NULL, NULL, d);
        else /* in place of the prepared answer */
            send_prepared(s, h->st, h->code, 500, "Location Database Failure",
                          "group commit failed", d);
    }
}

static void on_group_timer(uv_timer_t *t)
{
    group_flush(t->data);
}

/* After the loop iteration's input: a group whose window has passed ends
 * here, in a wake-up that the input paid for already. The timer (twice the
 * window) ends it only when no input comes: at 1,000 REGISTERs/s, input
 * arrives every few milliseconds and the group's own wake-up is spared. */
static void on_group_check(uv_check_t *c)
{
    server *s = c->data;
    if (!csip_store_sqlite_in_group(s->store))
        return;
    if (s->cfg->group_commit_ms == 0 ||
        uv_now(&s->loop) - s->group_opened >= s->cfg->group_commit_ms)
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
        s->cfg->group_commit_ms) {
        s->group_opened = uv_now(&s->loop);
        uv_timer_start(&s->group_timer, on_group_timer, 2u * (uint64_t)s->cfg->group_commit_ms, 0);
    }
    csip_msg *resp = NULL;
    int rc = csip_registrar_handle(s->reg, req, wall_s(), &resp);
    if (rc != 0) {
        csipd_log(LOG_ERROR, "registrar: %s", csip_strerror(rc));
        respond_simple(s, st, 500, NULL, "registrar failure");
        /* a store failure inside a group fails the group (store.h): its held
         * responses become 500s now, and the next REGISTER opens a new one */
        group_flush(s);
        return;
    }
    if (!csip_store_sqlite_in_group(s->store)) {
        respond(s, st, resp, NULL);
        return;
    }
    hold(s, st, resp, NULL);
}

/* ------------------------------------------------------------------------- */
/* Transaction layer callbacks */

static void answer_check(server *s, csip_txn *st, const csip_check_result *res)
{
    csip_msg *resp = make(s, st, res->status, res->reason);
    if (!resp)
        return;
    if (res->status == 405 || res->status == 501)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ALLOW, CSIP_STR(allow_value), false);
    for (size_t i = 0; res->status == 420 && i < res->n_unsupported && i < 16; i++)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_UNSUPPORTED, res->unsupported[i], false);
    respond(s, st, resp, "refused by the request checks");
}

static bool host_is_ours(const server *s, csip_str host)
{
    size_t d;
    if (domain_index(s, host, &d))
        return true;
    for (size_t i = 0; i < s->n_aliases; i++)
        if (csip_str_ieq_c(host, s->aliases[i]))
            return true;
    return false;
}

static void on_request(csip_txn_layer *layer, csip_txn *st, const csip_msg *req,
                       const csip_addr *src, void *user_data)
{
    (void)layer;
    server *s = user_data;
    s->requests++;
    uint64_t now = csip_endpoint_now(s->ep);
    csip_method m = csip_msg_method(req);
    const csip_uri *ruri = NULL;
    bool to_us = csip_msg_ruri(req, &ruri) == 0 &&
                 (ruri->kind == CSIP_URI_SIP || ruri->kind == CSIP_URI_SIPS) && !ruri->user.p &&
                 host_is_ours(s, ruri->host) && !csip_msg_hdr_find(req, CSIP_HDR_ROUTE);
    if (st && (m == CSIP_METHOD_REGISTER || (m == CSIP_METHOD_OPTIONS && to_us))) {
        csip_check_result res;
        if (csip_check_request(req, m == CSIP_METHOD_REGISTER ? CSIP_ROLE_REGISTRAR : CSIP_ROLE_UAS,
                               NULL, &res) != 0) {
            answer_check(s, st, &res);
            return;
        }
        if (m == CSIP_METHOD_REGISTER) {
            on_register(s, st, req, src);
            return;
        }
        csip_msg *resp = make(s, st, 200, NULL);
        if (!resp)
            return;
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ALLOW, CSIP_STR(allow_value), false);
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ACCEPT, CSIP_STR("application/sdp"), false);
        (void)csip_msg_hdr_add(resp, CSIP_HDR_SUPPORTED, CSIP_STR("path"), false);
        respond(s, st, resp, NULL);
        return;
    }
    /* everything else is proxied (RFC 3261 §16) */
    csip_proxy_on_request(s->proxy, st, req, src, now);
}

static void on_response(csip_txn_layer *layer, csip_txn *ct, const csip_msg *resp, int status,
                        void *user_data)
{
    (void)layer;
    server *s = user_data;
    csip_proxy_on_response(s->proxy, ct, resp, status, csip_endpoint_now(s->ep));
}

static void on_stray_response(csip_txn_layer *layer, const csip_msg *resp, const csip_addr *src,
                              void *user_data)
{
    (void)layer;
    server *s = user_data;
    csip_proxy_on_stray_response(s->proxy, resp, src, csip_endpoint_now(s->ep));
}

static void on_terminated(csip_txn_layer *layer, csip_txn *t, csip_txn_end why, void *user_data)
{
    (void)layer;
    (void)why;
    server *s = user_data;
    if (s->proxy)
        csip_proxy_on_terminated(s->proxy, t, csip_endpoint_now(s->ep));
}

/* ------------------------------------------------------------------------- */
/* The proxy's questions */

static bool p_is_me(void *ud, csip_str host, uint16_t port)
{
    server *s = ud;
    if (!host_is_ours(s, host))
        return false;
    if (port == 0)
        return true;
    const csip_addr *a;
    for (size_t i = 0; (a = csip_endpoint_local(s->ep, i)) != NULL; i++)
        if (a->port == port)
            return true;
    return false;
}

static bool p_is_my_domain(void *ud, csip_str host)
{
    return host_is_ours(ud, host);
}

/* Bindings of the Request-URI's AOR (our own addresses stand for the first
 * domain); 404 when there is no such user and no binding. */
static int p_locate(void *ud, const csip_msg *req, const csip_uri *ruri, csip_proxy_target *out,
                    size_t cap, size_t *n)
{
    (void)req;
    server *s = ud;
    size_t dom;
    if (!domain_index(s, ruri->host, &dom))
        dom = 0;
    csip_uri u = *ruri;
    u.host = csip_str_c(s->cfg->domains[dom]);
    u.has_port = false;
    char aor[600];
    int al = csip_registrar_aor(&u, aor, sizeof aor);
    if (al < 0)
        return CSIP_ERR_NOT_FOUND;
    csip_location_store ls;
    csip_store_sqlite_location(s->store, &ls);
    const csip_binding *b;
    size_t nb = 0;
    int rc = ls.get(ls.user_data, (csip_str){aor, (size_t)al}, &b, &nb);
    if (rc)
        return rc;
    int64_t now = wall_s();
    *n = 0;
    for (size_t i = 0; i < nb && *n < cap; i++)
        if (b[i].expires_at > now)
            out[(*n)++] = (csip_proxy_target){b[i].contact, b[i].path, b[i].has_q ? b[i].q : 1000};
    if (*n)
        return 0;
    char user[256], ha1[CSIP_AUTH_HEX_MAX];
    int ul = ruri->user.p ? csip_unescape(ruri->user, user, sizeof user) : -1;
    if (ul <= 0 || csip_userdb_lookup(s->users, (csip_str){user, (size_t)ul}, false,
                                      csip_str_c(s->cfg->domains[dom]), CSIP_AUTH_ALG_MD5, ha1,
                                      sizeof ha1) != 0)
        return CSIP_ERR_NOT_FOUND;
    return 0; /* a user without a binding: 480 */
}

/* Out-of-dialog requests: a caller who claims to be one of our users (From
 * in our domain) must prove it (407), and only such a user may reach
 * another domain: csipd is never an open relay. */
static int p_authorize(void *ud, const csip_msg *req, const csip_addr *src, bool foreign)
{
    server *s = ud;
    static auth_outcome o;
    const csip_nameaddr *from;
    size_t dom;
    bool ours = csip_msg_from(req, &from) == 0 &&
                (from->uri.kind == CSIP_URI_SIP || from->uri.kind == CSIP_URI_SIPS) &&
                domain_index(s, from->uri.host, &dom);
    if (!ours)
        return foreign ? 403 : 0;
    if (!s->cfg->auth)
        return foreign ? 403 : 0;
    auth_check(s, req, src, dom, true, &from->uri, &o);
    if (o.status) {
        s->pending_auth = &o;
        if (csipd_log_level >= LOG_INFO) {
            char d[320];
            describe(req, src, d, sizeof d);
            csipd_log(LOG_INFO, "%s -> %d: %s", d, o.status, o.what);
        }
    }
    return o.status;
}

static void p_decorate(void *ud, const csip_msg *req, csip_msg *resp)
{
    (void)req;
    server *s = ud;
    int code = csip_msg_status(resp);
    if (s->pending_auth && s->pending_auth->status == code)
        (void)decorate_auth(s, s->pending_auth, resp);
    s->pending_auth = NULL;
    if (code == 405 || code == 501)
        (void)csip_msg_hdr_add(resp, CSIP_HDR_ALLOW, CSIP_STR(allow_value), false);
}

typedef struct resolve_req {
    server *s;
    uint64_t token;
} resolve_req;

static void on_resolved(void *ud, int status, const csip_target *t, size_t n)
{
    resolve_req *r = ud;
    server *s = r->s;
    uint64_t token = r->token;
    free(r);
    if (status == CSIP_ERR_CANCELLED || !s->proxy)
        return;
    csip_addr a[8];
    size_t k = 0;
    for (size_t i = 0; status == 0 && i < n && k < 8; i++)
        a[k++] = t[i].addr;
    csip_proxy_resolved(s->proxy, token, a, k, csip_endpoint_now(s->ep));
}

static int p_resolve(void *ud, const csip_uri *uri, uint64_t token, csip_addr *out)
{
    server *s = ud;
    if (csip_str_ieq_c(uri->host, "localhost")) {
        /* RFC 6761 §6.3: loopback, without asking DNS */
        memset(out, 0, sizeof *out);
        (void)csip_addr_set_ip(out, CSIP_STR("127.0.0.1"));
        int tp = uri->kind == CSIP_URI_SIPS ? CSIP_TP_TLS : CSIP_TP_UDP;
        if (uri->transport.p && csip_transport_lookup(uri->transport) >= 0)
            tp = csip_transport_lookup(uri->transport);
        out->transport = (uint8_t)tp;
        out->port = uri->has_port ? uri->port : (tp == CSIP_TP_TLS ? 5061 : 5060);
        return 0;
    }
    if (!s->resolver)
        return CSIP_ERR_NOT_FOUND;
    resolve_req *r = malloc(sizeof *r);
    if (!r)
        return CSIP_ERR_NOMEM;
    r->s = s;
    r->token = token;
    int rc = csip_resolve(s->resolver, uri, on_resolved, r);
    if (rc) {
        free(r);
        return rc;
    }
    return CSIP_ERR_PAUSE;
}

/* Our sent-by for a message to dst: the listening address of its transport
 * and family (loopback for a wildcard listener talking to loopback, else
 * the first alias). */
static int p_local(void *ud, const csip_addr *dst, char *out, size_t cap)
{
    server *s = ud;
    const csip_addr *a;
    for (size_t i = 0; (a = csip_endpoint_local(s->ep, i)) != NULL; i++) {
        if (a->transport != dst->transport || a->family != dst->family)
            continue;
        static const uint8_t zero[16];
        if (memcmp(a->ip, zero, a->family == 6 ? 16 : 4) != 0)
            return csip_addr_format(a, out, cap);
        csip_addr b = *a;
        bool loop = dst->family == 4 ? dst->ip[0] == 127 : memcmp(dst->ip, zero, 15) == 0;
        if (loop || s->n_aliases == 0) {
            if (dst->family == 4)
                b.ip[0] = 127, b.ip[3] = 1;
            else
                b.ip[15] = 1;
            return csip_addr_format(&b, out, cap);
        }
        int n = snprintf(out, cap, "%s:%u", s->aliases[0], a->port);
        return n < 0 || (size_t)n >= cap ? CSIP_ERR_BUFFER_TOO_SMALL : n;
    }
    return CSIP_ERR_NOT_FOUND;
}

static void p_done(void *ud, const csip_msg *req, const csip_addr *src, int status, size_t branches)
{
    (void)ud;
    if (csipd_log_level < LOG_INFO)
        return;
    char d[320];
    describe(req, src, d, sizeof d);
    csipd_log(LOG_INFO, "%s -> %d (proxied, %zu branch%s)", d, status, branches,
              branches == 1 ? "" : "es");
}

static void on_proxy_timer(uv_timer_t *t)
{
    server *s = t->data;
    csip_proxy_handle_expiry(s->proxy, csip_endpoint_now(s->ep));
}

/* Before each poll: the proxy's Timer C deadline onto a uv timer. */
static void on_proxy_prepare(uv_prepare_t *h)
{
    server *s = h->data;
    uint64_t next = csip_proxy_next_expiry(s->proxy);
    if (next == UINT64_MAX) {
        uv_timer_stop(&s->proxy_timer);
        return;
    }
    uint64_t now = csip_endpoint_now(s->ep);
    uv_timer_start(&s->proxy_timer, on_proxy_timer, next > now ? next - now : 0, 0);
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
    /* the users in memory before the first request, not during it */
    if (c->auth && (rc = csip_userdb_warm(s->users)) != 0)
        csipd_log(LOG_WARN, "users not loaded into memory (%s): lookups read the database",
                  csip_strerror(rc));
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
                             .txn = {.max_txns = cfg->max_txns, .drop_completed_requests = true}};
    csip_txn_callbacks cb = {.on_request = on_request,
                             .on_response = on_response,
                             .on_stray_response = on_stray_response,
                             .on_terminated = on_terminated};
    int rc = csip_endpoint_new(&s->loop, &eo, &cb, s, &s->ep);
    if (rc) {
        csipd_log(LOG_ERROR, "cannot listen: %s", csip_strerror(rc));
        goto out;
    }
    collect_aliases(s);
    csip_proxy_callbacks pcb = {.is_me = p_is_me,
                                .is_my_domain = p_is_my_domain,
                                .locate = p_locate,
                                .authorize = p_authorize,
                                .decorate = p_decorate,
                                .resolve = p_resolve,
                                .local = p_local,
                                .on_done = p_done};
    if ((rc = csip_proxy_new(csip_endpoint_txn(s->ep), NULL, &pcb, s, &s->proxy)) != 0) {
        csipd_log(LOG_ERROR, "proxy: %s", csip_strerror(rc));
        goto out;
    }
    csip_resolver_opts dro = {.servers = cfg->dns_servers};
    if ((rc = csip_resolver_new(&s->loop, &dro, &s->resolver)) != 0)
        csipd_log(LOG_WARN, "no DNS resolver (%s): only IP addresses and localhost are reachable",
                  csip_strerror(rc));
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
    uv_timer_init(&s->loop, &s->proxy_timer);
    s->proxy_timer.data = s;
    uv_prepare_init(&s->loop, &s->proxy_prep);
    s->proxy_prep.data = s;
    uv_prepare_start(&s->proxy_prep, on_proxy_prepare);
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
    size_t kept = csip_store_sqlite_count(s->store);
    csipd_log(LOG_INFO, "stopped after %llu request%s; %zu binding%s kept in %s",
              (unsigned long long)s->requests, s->requests == 1 ? "" : "s", kept,
              kept == 1 ? "" : "s", cfg->db);

out:
    if (s->ep)
        csip_endpoint_free(s->ep); /* the layer's transactions end: the proxy lets go */
    csip_proxy_free(s->proxy);
    s->proxy = NULL;
    if (s->resolver)
        csip_resolver_free(s->resolver);
    if (s->sweep.data) {
        uv_close((uv_handle_t *)&s->sweep, NULL);
        uv_close((uv_handle_t *)&s->group_timer, NULL);
        uv_close((uv_handle_t *)&s->group_check, NULL);
        uv_close((uv_handle_t *)&s->proxy_timer, NULL);
        uv_close((uv_handle_t *)&s->proxy_prep, NULL);
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
