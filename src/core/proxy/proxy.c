/*
 * The proxy core (csip/proxy.h, RFC 3261 §16). docs/internals/proxy.md
 * describes the design; in short:
 *
 * One response context (pctx) per proxied request with a server transaction,
 * one branch (pbranch) per forwarded copy with its client transaction. The
 * client transaction's user data is its branch; a server transaction's user
 * data is its context. A context lives until its server transaction and all
 * its branches have terminated.
 *
 * Timer C runs per INVITE branch. Every branch waits the same timer_c_ms, so
 * a list kept in deadline order (append on start and on reset) gives the
 * next expiry in O(1).
 */
#include "csip/proxy.h"

#include "base/base_int.h"
#include "csip/dialog.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define TIMER_C_DEFAULT 200000u /* §16.8: "MUST be larger than 3 minutes" */
#define SENT_BY_MAX 128
#define MAX_ROUTES 32
#define MAX_CHALLENGES 16
#define URI_MAX 1024
#define BRANCH_PREFIX "z9hG4bKcsp"
#define BRANCH_PREFIX_LEN 10

typedef struct pctx pctx;

typedef struct pbranch {
    pctx *ctx;
    struct pbranch *next;          /* in ctx->branches */
    struct pbranch *tprev, *tnext; /* in the Timer C list */
    csip_txn *ct;
    csip_msg *pending; /* the request while its next hop is resolved */
    uint64_t token;    /* resolve token while pending */
    bool sips;         /* the pending request is sips (its Record-Route will be) */
    uint64_t timer_c;  /* deadline, 0 when not running */
    bool provisional;  /* a 1xx came */
    bool final;        /* the client transaction had its final response */
    bool done;         /* counted as answered in the response context (a final, or
                          what stands for one: a failure to send, Timer C) */
    bool cancel;       /* CANCEL wanted: sent once a provisional has come */
    bool cancelled;    /* the CANCEL went out */
} pbranch;

struct pctx {
    csip_proxy *p;
    csip_txn *st;
    csip_msg *req_copy; /* the request after Route processing, for every branch */
    csip_addr src;
    char hash[9]; /* the loop-detection part of our branches (§16.6 step 8) */
    bool invite;
    bool final_sent;
    bool six_xx;      /* a 6xx came: no more branches */
    bool cancelling;  /* the caller cancelled, a 2xx/6xx came, or the server transaction ended */
    int busy;         /* a group is being started: check_done() waits for it */
    int final_status; /* what was sent, for on_done */
    bool reported;    /* on_done has been called */
    csip_msg *best;   /* the best final response so far (a copy, top Via gone); NULL
                         when best_code stands for a response the proxy makes itself */
    int best_code;    /* 0: none yet */
    char *challenges[MAX_CHALLENGES]; /* WWW-/Proxy-Authenticate values of 401/407s */
    uint16_t challenge_id[MAX_CHALLENGES];
    size_t n_challenges;
    csip_proxy_target targets[CSIP_PROXY_MAX_TARGETS];
    char *target_buf; /* the targets' strings */
    size_t n_targets, next_target;
    pbranch *branches;
    size_t n_branches; /* ever started */
};

struct csip_proxy {
    csip_txn_layer *layer;
    csip_proxy_callbacks cb;
    void *ud;
    const csip_mem *mem;
    uint32_t timer_c_ms;
    bool record_route;
    uint64_t seq;
    char tag_prefix[9]; /* random, per proxy: the To tags of its own responses */
    uint64_t next_token;
    size_t n_ctx;
    pbranch *thead, *ttail;
    /* branches waiting for a resolve() answer: a short list */
    pbranch **waiting;
    size_t n_waiting, cap_waiting;
};

/* ------------------------------------------------------------------------- */
/* Small helpers */

static void *pzalloc(csip_proxy *p, size_t n)
{
    void *v = csip__malloc(p->mem, n);
    if (v)
        memset(v, 0, n);
    return v;
}

static char *pstrdup(csip_proxy *p, csip_str s)
{
    char *c = csip__malloc(p->mem, s.len + 1);
    if (c) {
        if (s.len)
            memcpy(c, s.p, s.len);
        c[s.len] = '\0';
    }
    return c;
}

/* A copy of a message, edits applied (printed then parsed again). */
static int copy_msg(csip_proxy *p, const csip_msg *m, csip_msg **out)
{
    *out = NULL;
    int n = csip_msg_print(m, NULL, 0);
    if (n < 0)
        return n;
    char *buf = csip__malloc(p->mem, (size_t)n + 1);
    if (!buf)
        return CSIP_ERR_NOMEM;
    n = csip_msg_print(m, buf, (size_t)n + 1);
    if (n < 0) {
        csip__free(p->mem, buf);
        return n;
    }
    csip_parse_opts po = {0};
    po.mem = p->mem;
    csip_parse_error err;
    int rc = csip_msg_parse_take(buf, (size_t)n, &po, out, &err);
    if (rc) {
        csip_msg_free(*out);
        *out = NULL;
    }
    return rc;
}

/* A copy of a received response without its top Via (ours): what goes upstream. */
static int upstream_copy(csip_proxy *p, const csip_msg *resp, csip_msg **out)
{
    int rc = copy_msg(p, resp, out);
    if (rc == 0 && (rc = csip_msg_via_pop(*out)) != 0) {
        csip_msg_free(*out);
        *out = NULL;
    }
    return rc;
}

static bool is_sip(const csip_uri *u)
{
    return u->kind == CSIP_URI_SIP || u->kind == CSIP_URI_SIPS;
}

static bool uri_is_me(csip_proxy *p, const csip_uri *u)
{
    return is_sip(u) && p->cb.is_me(p->ud, u->host, u->has_port ? u->port : 0);
}

/* A Request-URI for the location service (§16.5): a user in one of our
 * domains, without a port or with one of ours. With another port it names
 * another server on our host (a Contact), which gets the request as it is. */
static bool uri_is_local(csip_proxy *p, const csip_uri *u)
{
    return is_sip(u) && u->user.p && p->cb.is_my_domain && p->cb.is_my_domain(p->ud, u->host) &&
           (!u->has_port || p->cb.is_me(p->ud, u->host, u->port));
}

/* The position of a header line for the edit functions. */
static size_t hdr_pos(const csip_msg *m, const csip_hdr *h)
{
    size_t i = 0;
    while (csip_msg_hdr_at(m, i) != h)
        i++;
    return i;
}

/* Removes every line with this id (csip_msg_hdr_at also lists removed lines:
 * csip_msg_hdr_find does not). */
static int remove_all(csip_msg *m, csip_hdr_id id)
{
    const csip_hdr *h;
    while ((h = csip_msg_hdr_find(m, id)) != NULL) {
        int rc = csip_msg_hdr_remove(m, hdr_pos(m, h));
        if (rc)
            return rc;
    }
    return 0;
}

/* Rewrites the Route set: every Route line removed, then n values added in
 * order, one per line, after the Via and Record-Route lines at the top. */
static int set_routes(csip_msg *m, const csip_str *v, size_t n)
{
    int rc = remove_all(m, CSIP_HDR_ROUTE);
    if (rc)
        return rc;
    size_t pos = 0;
    const csip_hdr *h;
    while ((h = csip_msg_hdr_at(m, pos)) != NULL &&
           (h->id == CSIP_HDR_VIA || h->id == CSIP_HDR_RECORD_ROUTE))
        pos++;
    for (size_t i = 0; i < n; i++)
        if ((rc = csip_msg_hdr_insert(m, pos + i, CSIP_HDR_ROUTE, CSIP_STR("Route"), v[i])) != 0)
            return rc;
    return 0;
}

/* Where a URI says to send to: IP literal, port, transport. Host names:
 * CSIP_ERR_PAUSE (resolve them), with transport and port filled. */
static int uri_addr(const csip_uri *u, csip_addr *a)
{
    memset(a, 0, sizeof *a);
    if (!is_sip(u))
        return CSIP_ERR_NOT_FOUND;
    bool sips = u->kind == CSIP_URI_SIPS;
    int tp = sips ? CSIP_TP_TLS : CSIP_TP_UDP;
    if (u->transport.p) {
        int t = csip_transport_lookup(u->transport);
        if (t < 0)
            return CSIP_ERR_NOT_FOUND;
        tp = sips && t == CSIP_TP_TCP ? CSIP_TP_TLS : t;
    }
    a->transport = (uint8_t)tp;
    a->port = u->has_port ? u->port : (tp == CSIP_TP_TLS ? 5061 : 5060);
    if (u->host_type != CSIP_HOST_IPV4 && u->host_type != CSIP_HOST_IPV6)
        return CSIP_ERR_PAUSE;
    int rc = csip_addr_set_ip(a, u->host);
    a->port = u->has_port ? u->port : (tp == CSIP_TP_TLS ? 5061 : 5060);
    a->transport = (uint8_t)tp;
    return rc;
}

static const char *tp_param(uint8_t tp)
{
    switch (tp) {
    case CSIP_TP_TCP:
        return ";transport=tcp";
    case CSIP_TP_TLS:
        return ";transport=tls";
    case CSIP_TP_SCTP:
        return ";transport=sctp";
    case CSIP_TP_WS:
        return ";transport=ws";
    case CSIP_TP_WSS:
        return ";transport=wss";
    default:
        return "";
    }
}

/* Our sent-by for a message to dst (the host's local callback), checked. */
static int local_sent_by(csip_proxy *p, const csip_addr *dst, char out[SENT_BY_MAX])
{
    int n = p->cb.local(p->ud, dst, out, SENT_BY_MAX);
    if (n >= SENT_BY_MAX)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    if (n == 0)
        return CSIP_ERR_NOT_FOUND;
    return n;
}

/* Adds our Via on top: "SIP/2.0/<transport> <sent-by>;branch=z9hG4bKcsp<hash>.<suffix>". */
static int add_via(csip_msg *m, const csip_addr *dst, const char *sent_by, int n, const char *hash,
                   const char *suffix)
{
    char via[SENT_BY_MAX + 96];
    int vn =
        snprintf(via, sizeof via, "SIP/2.0/%s %.*s;branch=" BRANCH_PREFIX "%s.%s",
                 csip_transport_name((csip_transport)dst->transport), n, sent_by, hash, suffix);
    if (vn < 0 || (size_t)vn >= sizeof via)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    return csip_msg_hdr_insert(m, 0, CSIP_HDR_VIA, CSIP_STR("Via"), (csip_str){via, (size_t)vn});
}

/* §16.6 step 3: Max-Forwards one less, or 70 when absent. */
static int decrement_max_forwards(csip_msg *m)
{
    uint32_t mf = 70;
    if (csip_msg_max_forwards(m, &mf) == 0)
        mf = mf > 0 ? mf - 1 : 0;
    return csip_msg_set_max_forwards(m, mf);
}

/* ------------------------------------------------------------------------- */
/* Loop detection (§16.3 step 4, §16.6 step 8) */

static uint64_t fnv(uint64_t h, csip_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 0x100000001b3u;
    }
    return h ^ 0xff; /* separator */
}

static uint64_t fnv_lines(uint64_t h, const csip_msg *m, csip_hdr_id id)
{
    for (const csip_hdr *r = csip_msg_hdr_find(m, id); r; r = csip_msg_hdr_next(m, r))
        h = fnv(h, r->value);
    return h;
}

/*
 * §16.6 step 8: the value "SHOULD reflect all of those fields" that affect
 * the processing of the request, so that a request coming back with one of
 * them changed is a spiral, not a loop. The top Via is left out although the
 * RFC's example hash ("a common way") includes it: a request that comes back
 * has as top Via that of the element that sent it back, never the one it
 * had the first time, so with it the hash would never match and a loop would
 * run until Max-Forwards ran out.
 */
int csip_proxy_loop_hash(const csip_msg *req, char out[9])
{
    uint64_t h = 0xcbf29ce484222325u;
    const csip_nameaddr *from, *to;
    const csip_cseq *cseq;
    csip_str cid;
    int rc;
    if (!req || !out)
        return CSIP_ERR_INVALID_ARG;
    if ((rc = csip_msg_from(req, &from)) || (rc = csip_msg_to(req, &to)) ||
        (rc = csip_msg_call_id(req, &cid)) || (rc = csip_msg_cseq(req, &cseq)))
        return rc;
    h = fnv(h, csip_msg_ruri_raw(req));
    h = fnv(h, from->tag);
    h = fnv(h, to->tag);
    h = fnv(h, cid);
    char num[16];
    int n = snprintf(num, sizeof num, "%u", cseq->number);
    h = fnv(h, (csip_str){num, (size_t)n});
    h = fnv(h, cseq->method);
    h = fnv_lines(h, req, CSIP_HDR_ROUTE);
    h = fnv_lines(h, req, CSIP_HDR_PROXY_REQUIRE);
    h = fnv_lines(h, req, CSIP_HDR_PROXY_AUTHORIZATION);
    snprintf(out, 9, "%08x", (unsigned)(h ^ (h >> 32)));
    return 0;
}

/* True when a Via of ours carries the hash this request has now: it was here
 * before as it is (a loop). A spiral changed the Request-URI, a Route or
 * another hashed field. Every Via counts, the top one too (a request we sent
 * to ourselves). */
static bool looped(csip_proxy *p, const csip_msg *req, const char *hash)
{
    const csip_via *v;
    for (size_t i = 0; csip_msg_via(req, i, &v) == 0; i++) {
        if (v->branch.len < BRANCH_PREFIX_LEN + 9 ||
            memcmp(v->branch.p, BRANCH_PREFIX, BRANCH_PREFIX_LEN) != 0 ||
            memcmp(v->branch.p + BRANCH_PREFIX_LEN, hash, 8) != 0 ||
            v->branch.p[BRANCH_PREFIX_LEN + 8] != '.')
            continue;
        if (p->cb.is_me(p->ud, v->host, v->has_port ? v->port : 0))
            return true;
    }
    return false;
}

/* Credentials for a realm of ours were for us (RFC 3261 §22.3: a proxy takes
 * out the Proxy-Authorization it consumed): the next hop does not see them.
 * Those for other realms go on. */
static void strip_own_credentials(csip_proxy *p, csip_msg *m)
{
    if (!p->cb.is_my_domain)
        return;
    for (size_t i = csip_msg_hdr_count(m); i-- > 0;) {
        const csip_hdr *h = csip_msg_hdr_at(m, i);
        if (!h || h->id != CSIP_HDR_PROXY_AUTHORIZATION)
            continue;
        csip_auth a;
        if (csip_auth_parse(h->value, &a) == 0 && a.realm.p && p->cb.is_my_domain(p->ud, a.realm))
            (void)csip_msg_hdr_remove(m, i);
    }
}

/* ------------------------------------------------------------------------- */
/* Responses the proxy builds */

static void respond_own(csip_proxy *p, csip_txn *st, const csip_msg *req, int code,
                        const char *reason, uint64_t now)
{
    if (!st)
        return;
    csip_msg *resp;
    char tag[24];
    /* a To tag: 32 random bits drawn once and a sequence (RFC 3261 §19.3) */
    int n = snprintf(tag, sizeof tag, "%s%llx", p->tag_prefix, (unsigned long long)++p->seq);
    if (csip_response_for(req, code, reason, (csip_str){tag, (size_t)n}, p->mem, &resp) != 0)
        return;
    if (p->cb.decorate && code >= 200)
        p->cb.decorate(p->ud, req, resp);
    (void)csip_txn_respond(st, resp, now);
}

/* ------------------------------------------------------------------------- */
/* Timer C list */

static void timer_c_stop(csip_proxy *p, pbranch *b)
{
    if (!b->timer_c)
        return;
    if (b->tprev)
        b->tprev->tnext = b->tnext;
    else
        p->thead = b->tnext;
    if (b->tnext)
        b->tnext->tprev = b->tprev;
    else
        p->ttail = b->tprev;
    b->tprev = b->tnext = NULL;
    b->timer_c = 0;
}

static void timer_c_start(csip_proxy *p, pbranch *b, uint64_t now)
{
    timer_c_stop(p, b);
    b->timer_c = now + p->timer_c_ms;
    if (b->timer_c == 0)
        b->timer_c = 1;
    b->tprev = p->ttail;
    b->tnext = NULL;
    if (p->ttail)
        p->ttail->tnext = b;
    else
        p->thead = b;
    p->ttail = b;
}

/* ------------------------------------------------------------------------- */
/* Contexts and branches */

static void ctx_free(csip_proxy *p, pctx *c)
{
    csip_msg_free(c->req_copy);
    csip_msg_free(c->best);
    for (size_t i = 0; i < c->n_challenges; i++)
        csip__free(p->mem, c->challenges[i]);
    csip__free(p->mem, c->target_buf);
    csip__free(p->mem, c);
    p->n_ctx--;
}

/* The final response is going upstream: report it (before it is sent: a
 * layer that drops completed requests frees the request with it). */
static void report_final(csip_proxy *p, pctx *c)
{
    if (!c->reported && c->st && csip_txn_request(c->st)) {
        c->reported = true;
        if (p->cb.on_done)
            p->cb.on_done(p->ud, csip_txn_request(c->st), &c->src, c->final_status, c->n_branches);
    }
}

/* The final response went upstream: let go of what only more branches would
 * have needed (the request copy, the targets, the best response so far),
 * since a context lives as long as its server transaction (up to 32 s more,
 * RFC 6026 Timer L). */
static void final_out(csip_proxy *p, pctx *c)
{
    csip_msg_free(c->req_copy);
    c->req_copy = NULL;
    csip_msg_free(c->best);
    c->best = NULL;
    csip__free(p->mem, c->target_buf);
    c->target_buf = NULL;
    c->n_targets = c->next_target = 0;
}

static void ctx_maybe_free(csip_proxy *p, pctx *c)
{
    if (!c->st && !c->branches)
        ctx_free(p, c);
}

static void waiting_remove(csip_proxy *p, pbranch *b)
{
    for (size_t i = 0; i < p->n_waiting; i++)
        if (p->waiting[i] == b) {
            p->waiting[i] = p->waiting[--p->n_waiting];
            return;
        }
}

/* Drops the request of a branch whose next hop is being resolved. */
static void drop_pending(csip_proxy *p, pbranch *b)
{
    if (!b->pending)
        return;
    waiting_remove(p, b);
    csip_msg_free(b->pending);
    b->pending = NULL;
}

/* Unlinks and frees a branch (the context stays: callers free it when it is
 * left without a server transaction and without branches). */
static void branch_free(csip_proxy *p, pbranch *b)
{
    pctx *c = b->ctx;
    timer_c_stop(p, b);
    drop_pending(p, b);
    for (pbranch **pp = &c->branches; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    csip__free(p->mem, b);
}

/* Frees the branches that ended without a transaction (failed before being
 * sent, or dropped while their next hop was being resolved). */
static void reap(csip_proxy *p, pctx *c)
{
    for (pbranch **pp = &c->branches; *pp;) {
        pbranch *b = *pp;
        if (b->done && !b->ct && !b->pending) {
            *pp = b->next;
            timer_c_stop(p, b);
            csip__free(p->mem, b);
        } else {
            pp = &b->next;
        }
    }
}

/*
 * §16.7 step 6: a 6xx first; else the lowest class (3xx, then 4xx, then
 * 5xx); within 4xx the responses that help a retry (401, 407, 415, 420, 484)
 * before the others. Lower is better; within one rank the first one kept.
 */
static int rank(int code)
{
    int cls = code / 100;
    if (cls == 6)
        return 0;
    bool helps = code == 401 || code == 407 || code == 415 || code == 420 || code == 484;
    return cls * 10 + (cls == 4 && !helps);
}

/* A final response (resp NULL: one the proxy stands in for, such as the 408
 * of a timeout or the 503 of a failed send) enters the response context. */
static void consider(csip_proxy *p, pctx *c, int status, const csip_msg *resp)
{
    if (c->best_code && rank(status) >= rank(c->best_code))
        return;
    csip_msg *copy = NULL;
    if (resp && upstream_copy(p, resp, &copy) != 0)
        copy = NULL; /* out of memory: the proxy will build one with this status */
    csip_msg_free(c->best);
    c->best = copy;
    c->best_code = status;
}

static void keep_challenges(csip_proxy *p, pctx *c, const csip_msg *resp)
{
    static const csip_hdr_id ids[] = {CSIP_HDR_WWW_AUTHENTICATE, CSIP_HDR_PROXY_AUTHENTICATE};
    for (size_t k = 0; k < 2; k++)
        for (const csip_hdr *h = csip_msg_hdr_find(resp, ids[k]);
             h && c->n_challenges < MAX_CHALLENGES; h = csip_msg_hdr_next(resp, h)) {
            char *v = pstrdup(p, h->value);
            if (!v)
                return;
            c->challenge_id[c->n_challenges] = (uint16_t)ids[k];
            c->challenges[c->n_challenges++] = v;
        }
}

/* Sends the CANCEL of a branch (§16.10), or marks it wanted: a CANCEL goes
 * only after a provisional response (§9.1). A branch still waiting for its
 * next hop is dropped, as if it had answered 487. */
static void branch_cancel(csip_proxy *p, pbranch *b, uint64_t now)
{
    b->cancel = true;
    if (b->pending) {
        drop_pending(p, b);
        b->done = true;
        consider(p, b->ctx, 487, NULL);
        return;
    }
    if (!b->ct || b->final || b->cancelled || !b->provisional || !b->ctx->invite)
        return;
    csip_msg *cancel;
    if (csip_dialog_cancel_for(csip_txn_request(b->ct), p->mem, &cancel) != 0)
        return;
    csip_txn *cct = NULL;
    if (csip_txn_client_new(p->layer, cancel, csip_txn_peer(b->ct), NULL, now, &cct) == 0)
        b->cancelled = true;
}

/* No more branches for this context; every pending one is cancelled. */
static void cancel_all(csip_proxy *p, pctx *c, pbranch *except, uint64_t now)
{
    c->cancelling = true;
    for (pbranch *b = c->branches; b; b = b->next)
        if (b != except)
            branch_cancel(p, b, now);
    reap(p, c);
}

static void send_final(csip_proxy *p, pctx *c, uint64_t now);
static void start_group(csip_proxy *p, pctx *c, uint64_t now);

static bool all_done(const pctx *c)
{
    for (const pbranch *b = c->branches; b; b = b->next)
        if (!b->done)
            return false;
    return true;
}

/* After a branch ended: the next group (serial forking by q), or the best
 * response once every branch has answered. */
static void check_done(csip_proxy *p, pctx *c, uint64_t now)
{
    reap(p, c);
    if (c->busy || c->final_sent || !c->st || !all_done(c))
        return;
    while (!c->six_xx && !c->cancelling && c->next_target < c->n_targets) {
        start_group(p, c, now);
        reap(p, c);
        if (c->final_sent || !all_done(c))
            return;
    }
    send_final(p, c, now);
}

/* §16.7 steps 6-8: the best response goes upstream. */
static void send_final(csip_proxy *p, pctx *c, uint64_t now)
{
    if (c->final_sent || !c->st)
        return;
    c->final_sent = true;
    const csip_msg *req = csip_txn_request(c->st);
    int code = c->best_code ? c->best_code : 500;
    csip_msg *resp = c->best;
    c->best = NULL;
    if (code == 503) {
        /* §16.7 step 6: a 503 becomes 500 (this proxy is not unavailable) */
        code = 500;
        csip_msg_free(resp);
        resp = NULL;
    }
    c->final_status = code;
    report_final(p, c);
    if (!resp) {
        respond_own(p, c->st, req, code, NULL, now);
        final_out(p, c);
        return;
    }
    if (code == 401 || code == 407) {
        /* §16.7 step 7: every challenge of every 401/407, in the one response */
        if (remove_all(resp, CSIP_HDR_WWW_AUTHENTICATE) == 0 &&
            remove_all(resp, CSIP_HDR_PROXY_AUTHENTICATE) == 0)
            for (size_t i = 0; i < c->n_challenges; i++)
                (void)csip_msg_hdr_add(resp, (csip_hdr_id)c->challenge_id[i],
                                       csip_str_c(c->challenges[i]), false);
    }
    (void)csip_txn_respond(c->st, resp, now);
    final_out(p, c);
}

/* A branch's final response other than 2xx, or what stands for one (resp NULL). */
static void branch_final(csip_proxy *p, pbranch *b, int status, const csip_msg *resp, uint64_t now)
{
    pctx *c = b->ctx;
    if (b->done)
        return;
    b->done = true;
    timer_c_stop(p, b);
    if (resp && (status == 401 || status == 407))
        keep_challenges(p, c, resp);
    consider(p, c, status, resp);
    if (status >= 600 && !c->six_xx) {
        /* §16.7 step 5 (6xx): cancel the others, no new branch */
        c->six_xx = true;
        cancel_all(p, c, b, now);
    }
    check_done(p, c, now);
}

/* Sends a 2xx upstream (§16.7 step 5: every 2xx of an INVITE, at once). */
static void forward_2xx(csip_proxy *p, pctx *c, const csip_msg *resp, uint64_t now)
{
    if (c->final_sent && !c->invite)
        return; /* a non-INVITE has one final response */
    csip_msg *fwd;
    if (upstream_copy(p, resp, &fwd) != 0)
        return;
    if (c->st && (!c->final_sent || csip_txn_state_of(c->st) == CSIP_TXN_ACCEPTED)) {
        (void)csip_txn_respond(c->st, fwd, now);
        return;
    }
    /* the server transaction has ended, or has sent another final response
     * (Timer C stood for a branch that answers now): by the Via */
    csip_addr dst;
    if (csip_txn_response_dest(fwd, &c->src, &dst) == 0)
        (void)csip_txn_layer_send_stateless(p->layer, fwd, &dst, now);
    csip_msg_free(fwd);
}

/* Sends a branch's request now that its destination is known (§16.6 steps 4,
 * 8, 10, 11). req is transferred. */
static void branch_send(csip_proxy *p, pbranch *b, csip_msg *req, const csip_addr *dst, bool sips,
                        uint64_t now)
{
    pctx *c = b->ctx;
    char sent_by[SENT_BY_MAX], seq[24];
    int n = local_sent_by(p, dst, sent_by);
    int rc = n < 0 ? n : 0;
    snprintf(seq, sizeof seq, "%llx", (unsigned long long)++p->seq);
    if (rc == 0)
        rc = add_via(req, dst, sent_by, n, c->hash, seq);
    csip_method m = csip_msg_method(req);
    if (rc == 0 && p->record_route &&
        (m == CSIP_METHOD_INVITE || m == CSIP_METHOD_SUBSCRIBE || m == CSIP_METHOD_REFER ||
         m == CSIP_METHOD_NOTIFY)) {
        /* §16.6 step 4, for the requests that can make a dialog: the address
         * facing the callee on top, and the one facing the caller below it
         * when they differ (transport, address: RFC 5658 double
         * Record-Route); sips when the request is sips. */
        const char *scheme = sips ? "sips" : "sip";
        char rr[SENT_BY_MAX + 64], in[SENT_BY_MAX];
        int rn = snprintf(rr, sizeof rr, "<%s:%.*s;lr%s>", scheme, n, sent_by,
                          sips && dst->transport == CSIP_TP_TLS ? "" : tp_param(dst->transport));
        rc = csip_msg_hdr_insert(req, 1, CSIP_HDR_RECORD_ROUTE, CSIP_STR("Record-Route"),
                                 (csip_str){rr, (size_t)rn});
        int in_n = local_sent_by(p, &c->src, in);
        if (rc == 0 && in_n > 0 &&
            (c->src.transport != dst->transport || in_n != n || memcmp(in, sent_by, (size_t)n))) {
            char rr2[SENT_BY_MAX + 64];
            int r2 =
                snprintf(rr2, sizeof rr2, "<%s:%.*s;lr%s>", scheme, in_n, in,
                         sips && c->src.transport == CSIP_TP_TLS ? "" : tp_param(c->src.transport));
            rc = csip_msg_hdr_insert(req, 2, CSIP_HDR_RECORD_ROUTE, CSIP_STR("Record-Route"),
                                     (csip_str){rr2, (size_t)r2});
        }
    }
    if (rc != 0) {
        csip_msg_free(req);
        branch_final(p, b, 500, NULL, now);
        return;
    }
    /* A failed first send delivers a 503 from inside csip_txn_client_new:
     * csip_proxy_on_response() takes it (and notes ct) while c->busy holds
     * check_done() back. */
    csip_txn *ct = NULL;
    c->busy++;
    rc = csip_txn_client_new(p->layer, req, dst, b, now, &ct);
    c->busy--;
    if (rc != 0) {
        branch_final(p, b, 500, NULL, now);
        return;
    }
    b->ct = ct;
    if (c->invite && !b->final)
        timer_c_start(p, b, now);
}

/*
 * §16.6 steps 2, 6 and 7 on a copy of the request: the target's
 * Request-URI and Path (RFC 3327: pushed as Route, first), then the next
 * hop: the first Route, or the Request-URI. When that Route is a strict
 * router (no lr), the Request-URI goes to the end of the Route set and the
 * Route becomes the Request-URI. *next and *sips are set on success; next's
 * views point into req.
 */
static int route_request(csip_msg *req, const csip_proxy_target *t, csip_uri *next, bool *sips)
{
    int rc = 0;
    if (t && t->uri.p)
        rc = csip_msg_set_ruri(req, t->uri);
    const csip_uri *ruri = NULL;
    const csip_nameaddr *na = NULL;
    size_t k = 0;
    if (rc == 0)
        rc = csip_msg_ruri(req, &ruri);
    if (rc == 0)
        rc = csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &k);
    if (rc)
        return rc;
    csip_str routes[MAX_ROUTES + 1];
    size_t nr = 0;
    bool rewrite = false;
    if (t && t->path.p && t->path.len) {
        csip_str rest = t->path;
        while (rest.len && nr < MAX_ROUTES) {
            csip_nameaddr pa;
            if ((rc = csip_nameaddr_parse(&rest, CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_NEED_ANGLE,
                                          &pa)) != 0)
                return rc;
            routes[nr++] = pa.raw;
        }
        if (rest.len)
            return CSIP_ERR_LIMIT_VALUES;
        rewrite = nr > 0;
    }
    if (nr + k > MAX_ROUTES)
        return CSIP_ERR_LIMIT_VALUES;
    for (size_t i = 0; i < k; i++)
        routes[nr++] = na[i].raw;
    /* the first route as a URI (a Path value, or the request's first Route) */
    csip_uri first;
    memset(&first, 0, sizeof first);
    if (nr > 0) {
        if (rewrite) {
            csip_str s = routes[0];
            csip_nameaddr pa;
            if ((rc = csip_nameaddr_parse(&s, CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_NEED_ANGLE,
                                          &pa)) != 0)
                return rc;
            first = pa.uri;
        } else {
            first = na[0].uri;
        }
    }
    char rbuf[URI_MAX + 2], fbuf[URI_MAX];
    csip_str new_ruri = CSIP_STR_NULL;
    if (nr > 0 && !first.lr) {
        /* strict router: the Request-URI becomes the last Route */
        int rl = snprintf(rbuf, sizeof rbuf, "<%.*s>", (int)ruri->raw.len, ruri->raw.p);
        int fl = snprintf(fbuf, sizeof fbuf, "%.*s", (int)first.raw.len, first.raw.p);
        if (rl < 0 || (size_t)rl >= sizeof rbuf || fl < 0 || (size_t)fl >= sizeof fbuf)
            return CSIP_ERR_LIMIT_URI;
        memmove(routes, routes + 1, (nr - 1) * sizeof routes[0]);
        routes[nr - 1] = (csip_str){rbuf, (size_t)rl};
        new_ruri = (csip_str){fbuf, (size_t)fl};
        rewrite = true;
    }
    *sips = ruri->kind == CSIP_URI_SIPS || (nr > 0 && first.kind == CSIP_URI_SIPS);
    /* the values copied (set_routes and set_ruri copy into the message before
     * they invalidate what routes[] points to) */
    if (rewrite && (rc = set_routes(req, routes, nr)) != 0)
        return rc;
    if (new_ruri.p && (rc = csip_msg_set_ruri(req, new_ruri)) != 0)
        return rc;
    if (new_ruri.p || nr == 0) {
        if ((rc = csip_msg_ruri(req, &ruri)) != 0)
            return rc;
        *next = *ruri;
        return 0;
    }
    if ((rc = csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &k)) != 0)
        return rc;
    *next = na[0].uri;
    return 0;
}

/* Builds the request of one target and sends it (or waits for its resolve). */
static void fork_target(csip_proxy *p, pctx *c, const csip_proxy_target *t, uint64_t now)
{
    pbranch *b = pzalloc(p, sizeof *b);
    if (!b) {
        consider(p, c, 500, NULL);
        return;
    }
    b->ctx = c;
    b->next = c->branches;
    c->branches = b;
    c->n_branches++;
    csip_msg *req = NULL;
    csip_uri next;
    bool sips = false;
    int rc = copy_msg(p, c->req_copy, &req);
    if (rc == 0)
        rc = route_request(req, t, &next, &sips);
    if (rc == 0)
        rc = decrement_max_forwards(req);
    csip_addr dst;
    if (rc == 0)
        rc = uri_addr(&next, &dst);
    if (rc == CSIP_ERR_PAUSE) {
        /* a host name: RFC 3263 through the host */
        rc = CSIP_ERR_NOT_FOUND;
        if (p->cb.resolve && p->n_waiting == p->cap_waiting) {
            size_t cap = p->cap_waiting ? p->cap_waiting * 2 : 16;
            pbranch **w = csip__realloc(p->mem, p->waiting, cap * sizeof *w);
            if (w) {
                p->waiting = w;
                p->cap_waiting = cap;
            }
        }
        if (p->cb.resolve && p->n_waiting < p->cap_waiting) {
            b->token = ++p->next_token;
            b->pending = req;
            b->sips = sips;
            p->waiting[p->n_waiting++] = b;
            rc = p->cb.resolve(p->ud, &next, b->token, &dst);
            if (rc == CSIP_ERR_PAUSE)
                return; /* csip_proxy_resolved() goes on */
            waiting_remove(p, b);
            b->pending = NULL;
        } else if (p->cb.resolve) {
            rc = CSIP_ERR_NOMEM;
        }
        if (rc != 0 && rc != CSIP_ERR_NOMEM) {
            /* unreachable: as a 503 (§16.9), which becomes 500 if nothing better */
            csip_msg_free(req);
            branch_final(p, b, 503, NULL, now);
            return;
        }
    }
    if (rc != 0) {
        csip_msg_free(req);
        branch_final(p, b, 500, NULL, now);
        return;
    }
    branch_send(p, b, req, &dst, sips, now);
}

/* The targets of the highest q not yet tried, in parallel (§16.6, serial by q groups). */
static void start_group(csip_proxy *p, pctx *c, uint64_t now)
{
    if (c->next_target >= c->n_targets)
        return;
    c->busy++;
    uint16_t q = c->targets[c->next_target].q;
    while (c->next_target < c->n_targets && c->targets[c->next_target].q == q) {
        const csip_proxy_target *t = &c->targets[c->next_target++];
        fork_target(p, c, t, now);
    }
    c->busy--;
}

/* ------------------------------------------------------------------------- */
/* Requests */

/* §16.4: a strict router's request (our Record-Route as Request-URI) gets its
 * Request-URI back from the last Route; then every leading Route naming us
 * goes. The Route set is written once. */
static int preprocess_routes(csip_proxy *p, csip_msg *req)
{
    const csip_uri *ruri;
    const csip_nameaddr *na;
    size_t k;
    int rc;
    if ((rc = csip_msg_ruri(req, &ruri)) != 0 ||
        (rc = csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &k)) != 0)
        return rc;
    if (k > MAX_ROUTES)
        return CSIP_ERR_LIMIT_VALUES;
    size_t first = 0, last = k;
    char rbuf[URI_MAX];
    csip_str new_ruri = CSIP_STR_NULL;
    if (k > 0 && !ruri->user.p && uri_is_me(p, ruri)) {
        int l =
            snprintf(rbuf, sizeof rbuf, "%.*s", (int)na[k - 1].uri.raw.len, na[k - 1].uri.raw.p);
        if (l < 0 || (size_t)l >= sizeof rbuf)
            return CSIP_ERR_LIMIT_URI;
        new_ruri = (csip_str){rbuf, (size_t)l};
        last = k - 1;
    }
    while (first < last && uri_is_me(p, &na[first].uri))
        first++;
    if (first == 0 && last == k)
        return 0;
    csip_str keep[MAX_ROUTES];
    for (size_t i = first; i < last; i++)
        keep[i - first] = na[i].raw;
    if ((rc = set_routes(req, keep, last - first)) != 0)
        return rc;
    return new_ruri.p ? csip_msg_set_ruri(req, new_ruri) : 0;
}

static int target_cmp_q(const csip_proxy_target *x, const csip_proxy_target *y)
{
    return (int)y->q - (int)x->q;
}

/* Copies the targets' strings into one allocation owned by the context, and
 * orders them by q, highest first (stable: equal q keep their order). */
static int keep_targets(csip_proxy *p, pctx *c, const csip_proxy_target *t, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].uri.len + t[i].path.len + 2;
    char *buf = csip__malloc(p->mem, total ? total : 1);
    if (!buf)
        return CSIP_ERR_NOMEM;
    char *w = buf;
    for (size_t i = 0; i < n; i++) {
        c->targets[i] = t[i];
        if (t[i].uri.p) {
            if (t[i].uri.len)
                memcpy(w, t[i].uri.p, t[i].uri.len);
            c->targets[i].uri = (csip_str){w, t[i].uri.len};
            w += t[i].uri.len + 1;
        }
        if (t[i].path.p) {
            if (t[i].path.len)
                memcpy(w, t[i].path.p, t[i].path.len);
            c->targets[i].path = (csip_str){w, t[i].path.len};
            w += t[i].path.len + 1;
        }
    }
    c->target_buf = buf;
    c->n_targets = n;
    for (size_t i = 1; i < n; i++) {
        csip_proxy_target x = c->targets[i];
        size_t j = i;
        while (j > 0 && target_cmp_q(&c->targets[j - 1], &x) > 0) {
            c->targets[j] = c->targets[j - 1];
            j--;
        }
        c->targets[j] = x;
    }
    return 0;
}

/* The targets of a Request-URI in one of our domains (§16.5). */
static int locate(csip_proxy *p, const csip_msg *req, const csip_uri *ruri, csip_proxy_target *t,
                  size_t *n)
{
    *n = 0;
    if (!p->cb.locate)
        return CSIP_ERR_NOT_FOUND;
    int rc = p->cb.locate(p->ud, req, ruri, t, CSIP_PROXY_MAX_TARGETS, n);
    if (*n > CSIP_PROXY_MAX_TARGETS)
        *n = CSIP_PROXY_MAX_TARGETS;
    return rc;
}

/* The ACK of a 2xx (no transaction): forwarded statelessly along its Route,
 * or, without one, to the first binding of one of our users. An ACK is not
 * retransmitted by us: one that would need an answer from resolve() later,
 * or would come back here, is dropped (the caller sends it again for each
 * 2xx retransmission). */
static void forward_ack(csip_proxy *p, const csip_msg *req, uint64_t now)
{
    csip_msg *m;
    char hash[9];
    if (csip_proxy_loop_hash(req, hash) != 0 || copy_msg(p, req, &m) != 0)
        return;
    uint32_t mf = 70;
    const csip_uri *ruri;
    const csip_nameaddr *na;
    size_t k = 0;
    if ((csip_msg_max_forwards(m, &mf) == 0 && mf == 0) || preprocess_routes(p, m) != 0 ||
        csip_msg_ruri(m, &ruri) != 0 || csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &na, &k) != 0) {
        csip_msg_free(m);
        return;
    }
    csip_proxy_target t[CSIP_PROXY_MAX_TARGETS];
    size_t nt = 0;
    bool local = k == 0 && uri_is_local(p, ruri);
    /* an ACK to one of our users without a Route (the caller ignored our
     * Record-Route, or we did not add one): where the INVITE went, the
     * user's first binding (with its Path) */
    char tbuf[2 * URI_MAX];
    if (local) {
        /* the views are the host's until locate() returns: copied */
        int tl = 0;
        if (locate(p, m, ruri, t, &nt) != 0 || nt == 0 || !t[0].uri.p ||
            (tl = snprintf(tbuf, sizeof tbuf, "%.*s%c%.*s", (int)t[0].uri.len, t[0].uri.p, 0,
                           t[0].path.p ? (int)t[0].path.len : 0, t[0].path.p ? t[0].path.p : "")) <
                0 ||
            (size_t)tl >= sizeof tbuf) {
            csip_msg_free(m);
            return;
        }
        size_t ul = t[0].uri.len;
        t[0].uri = (csip_str){tbuf, ul};
        if (t[0].path.p)
            t[0].path = (csip_str){tbuf + ul + 1, t[0].path.len};
    }
    csip_uri next;
    bool sips;
    csip_addr dst;
    char sent_by[SENT_BY_MAX];
    int n = 0;
    int rc = route_request(m, local ? &t[0] : NULL, &next, &sips);
    if (rc == 0 && uri_is_me(p, &next))
        rc = CSIP_ERR_INVALID_ARG;
    if (rc == 0 && (rc = uri_addr(&next, &dst)) == CSIP_ERR_PAUSE)
        rc = p->cb.resolve ? p->cb.resolve(p->ud, &next, 0, &dst) : CSIP_ERR_NOT_FOUND;
    if (rc == 0)
        rc = decrement_max_forwards(m);
    if (rc == 0 && (n = local_sent_by(p, &dst, sent_by)) < 0)
        rc = n;
    /* a deterministic branch: the same ACK again gets the same one */
    if (rc == 0)
        rc = add_via(m, &dst, sent_by, n, hash, "a");
    if (rc == 0)
        (void)csip_txn_layer_send_stateless(p->layer, m, &dst, now);
    csip_msg_free(m);
}

static void on_cancel(csip_proxy *p, csip_txn *st, const csip_msg *req, uint64_t now)
{
    csip_txn *inv = csip_txn_layer_find_invite(p->layer, req);
    pctx *c = inv ? csip_txn_user_data(inv) : NULL;
    if (!c) {
        respond_own(p, st, req, 481, NULL, now);
        return;
    }
    /* §16.10: 200 to the CANCEL, then a CANCEL to every pending branch; their
     * 487s make the best response */
    respond_own(p, st, req, 200, NULL, now);
    if (!c->final_sent) {
        cancel_all(p, c, NULL, now);
        check_done(p, c, now);
    }
}

static void done(csip_proxy *p, const csip_msg *req, const csip_addr *src, int status,
                 size_t branches)
{
    if (p->cb.on_done)
        p->cb.on_done(p->ud, req, src, status, branches);
}

void csip_proxy_on_request(csip_proxy *p, csip_txn *st, const csip_msg *req, const csip_addr *src,
                           uint64_t now)
{
    if (!p || !req || !src)
        return;
    csip_method m = csip_msg_method(req);
    csip_check_result res;
    if (!st) {
        if (m == CSIP_METHOD_ACK && csip_check_request(req, CSIP_ROLE_PROXY, NULL, &res) == 0)
            forward_ack(p, req, now);
        return;
    }
    /* §16.3: the checks of a proxy (syntax, Max-Forwards 483, Proxy-Require 420) */
    if (csip_check_request(req, CSIP_ROLE_PROXY, NULL, &res) != 0) {
        csip_msg *resp;
        if (csip_response_for(req, res.status, res.reason, CSIP_STR("pchk"), p->mem, &resp) == 0) {
            for (size_t i = 0; res.status == 420 && i < res.n_unsupported && i < 16; i++)
                (void)csip_msg_hdr_add(resp, CSIP_HDR_UNSUPPORTED, res.unsupported[i], false);
            done(p, req, src, res.status, 0); /* before: the response may free req */
            (void)csip_txn_respond(st, resp, now);
        } else {
            done(p, req, src, res.status, 0);
        }
        return;
    }
    if (m == CSIP_METHOD_CANCEL) {
        on_cancel(p, st, req, now);
        return;
    }
    char hash[9];
    if (csip_proxy_loop_hash(req, hash) != 0) {
        done(p, req, src, 400, 0);
        respond_own(p, st, req, 400, NULL, now);
        return;
    }
    if (looped(p, req, hash)) {
        done(p, req, src, 482, 0);
        respond_own(p, st, req, 482, NULL, now);
        return;
    }
    pctx *c = pzalloc(p, sizeof *c);
    if (!c) {
        done(p, req, src, 500, 0);
        respond_own(p, st, req, 500, NULL, now);
        return;
    }
    p->n_ctx++;
    c->p = p;
    c->st = st;
    c->src = *src;
    c->invite = m == CSIP_METHOD_INVITE;
    memcpy(c->hash, hash, sizeof c->hash);
    csip_txn_set_user_data(st, c);
    int code = 0;
    const char *reason = NULL;
    int rc = copy_msg(p, req, &c->req_copy);
    if (rc == 0)
        rc = preprocess_routes(p, c->req_copy);
    const csip_uri *ruri = NULL;
    if (rc == 0)
        rc = csip_msg_ruri(c->req_copy, &ruri);
    if (rc != 0) {
        code = rc == CSIP_ERR_NOMEM ? 500 : 400;
        reason = rc == CSIP_ERR_NOMEM ? NULL : "Bad Route or Request-URI";
    }
    if (!code) {
        const csip_nameaddr *na, *to;
        size_t nroutes = 0, norig = 0;
        (void)csip_msg_nameaddrs(c->req_copy, CSIP_HDR_ROUTE, &na, &nroutes);
        (void)csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &norig);
        bool sip = is_sip(ruri);
        /* In a dialog (To tag) and following a Route of ours (popped, or the
         * Request-URI of a strict router): a request of a dialog we
         * record-routed, which the host already allowed when it began. */
        bool routed_by_us = norig > nroutes || !csip_str_eq(csip_msg_ruri_raw(req), ruri->raw);
        bool in_dialog = csip_msg_to(req, &to) == 0 && to->tag.p != NULL;
        bool local = nroutes == 0 && uri_is_local(p, ruri);
        bool to_me = nroutes == 0 && sip && !ruri->user.p && uri_is_me(p, ruri);
        if (!(routed_by_us && in_dialog) && !to_me) {
            if (p->cb.authorize)
                code = p->cb.authorize(p->ud, req, src, !local);
            else if (!local)
                code = 403;
            if (code == 403 && !local)
                reason = "Forbidden (no relay for other domains)";
            if (code && (code < 300 || code > 699))
                code = 500;
        }
        if (code) {
            /* refused */
        } else if (local) {
            /* §16.5: one of our users: the location service */
            csip_proxy_target t[CSIP_PROXY_MAX_TARGETS];
            size_t n = 0;
            rc = locate(p, c->req_copy, ruri, t, &n);
            if (rc == CSIP_ERR_NOT_FOUND)
                code = 404;
            else if (rc)
                code = 500;
            else if (n == 0)
                code = 480;
            else if (keep_targets(p, c, t, n) != 0)
                code = 500;
        } else if (to_me) {
            /* addressed to this proxy itself, and not a request the host
             * answered: nothing here to give it to */
            code = 404;
        } else {
            /* another domain, or the Route set to follow: one target, the
             * Request-URI as it is */
            csip_proxy_target t = {.uri = CSIP_STR_NULL, .path = CSIP_STR_NULL, .q = 1000};
            if (keep_targets(p, c, &t, 1) != 0)
                code = 500;
        }
    }
    if (code) {
        c->final_sent = true;
        c->final_status = code;
        c->reported = true;
        done(p, req, src, code, 0);
        respond_own(p, st, req, code, reason, now);
        final_out(p, c);
        return;
    }
    strip_own_credentials(p, c->req_copy);
    if (c->invite) {
        /* §16.2: 100 Trying at once, so that the caller stops retransmitting */
        csip_msg *trying;
        if (csip_response_for(req, 100, NULL, CSIP_STR_NULL, p->mem, &trying) == 0)
            (void)csip_txn_respond(st, trying, now);
    }
    start_group(p, c, now);
    check_done(p, c, now);
}

/* ------------------------------------------------------------------------- */
/* Responses */

void csip_proxy_on_response(csip_proxy *p, csip_txn *ct, const csip_msg *resp, int status,
                            uint64_t now)
{
    if (!p || !ct)
        return;
    pbranch *b = csip_txn_user_data(ct);
    if (!b)
        return; /* a CANCEL of ours: its response means nothing here */
    if (!b->ct)
        b->ct = ct; /* from inside csip_txn_client_new() (its first send failed) */
    pctx *c = b->ctx;
    if (status < 200) {
        b->provisional = true;
        /* §16.7 step 2: a provisional other than 100 resets Timer C */
        if (status > 100 && b->timer_c)
            timer_c_start(p, b, now);
        if (b->cancel) {
            branch_cancel(p, b, now);
            return;
        }
        /* no provisional but 100 upstream for a non-INVITE (RFC 4320 §4.1) */
        if (status == 100 || !c->invite || c->final_sent || !c->st || !resp)
            return;
        csip_msg *fwd;
        if (upstream_copy(p, resp, &fwd) == 0)
            (void)csip_txn_respond(c->st, fwd, now);
        return;
    }
    b->final = true;
    timer_c_stop(p, b);
    if (status >= 300 || !resp) {
        branch_final(p, b, status, resp, now);
        return;
    }
    /* 2xx: upstream at once, every one (§16.7 step 5), and the other branches
     * are cancelled (§16.10) */
    bool first = !b->done;
    b->done = true;
    bool final_now = !c->final_sent;
    if (final_now) {
        c->final_status = status;
        report_final(p, c);
    }
    forward_2xx(p, c, resp, now);
    if (final_now) {
        c->final_sent = true;
        final_out(p, c);
    }
    if (first && c->invite)
        cancel_all(p, c, b, now);
}

void csip_proxy_on_stray_response(csip_proxy *p, const csip_msg *resp, const csip_addr *src,
                                  uint64_t now)
{
    (void)src;
    if (!p || !resp)
        return;
    /* Only 2xx for INVITE are worth forwarding without a transaction (a
     * retransmission after the client transaction ended, §16.7 step 5). */
    int status = csip_msg_status(resp);
    if (status < 200 || status >= 300 || csip_msg_method(resp) != CSIP_METHOD_INVITE)
        return;
    const csip_via *v;
    if (csip_msg_via(resp, 0, &v) != 0 || !p->cb.is_me(p->ud, v->host, v->has_port ? v->port : 0))
        return;
    csip_msg *fwd;
    if (upstream_copy(p, resp, &fwd) != 0)
        return;
    csip_addr dst;
    if (csip_txn_response_dest(fwd, NULL, &dst) == 0)
        (void)csip_txn_layer_send_stateless(p->layer, fwd, &dst, now);
    csip_msg_free(fwd);
}

void csip_proxy_on_terminated(csip_proxy *p, csip_txn *t, uint64_t now)
{
    if (!p || !t)
        return;
    void *ud = csip_txn_user_data(t);
    if (!ud)
        return;
    csip_txn_kind k = csip_txn_kind_of(t);
    if (k == CSIP_TXN_INVITE_SERVER || k == CSIP_TXN_NON_INVITE_SERVER) {
        pctx *c = ud;
        csip_txn_set_user_data(t, NULL);
        if (!c->final_sent) /* the server transaction died first: stop the branches */
            cancel_all(p, c, NULL, now);
        if (c->n_branches && !c->reported && csip_txn_request(t)) {
            c->reported = true;
            done(p, csip_txn_request(t), &c->src, c->final_status, c->n_branches);
        }
        c->st = NULL;
        ctx_maybe_free(p, c);
        return;
    }
    pbranch *b = ud;
    pctx *c = b->ctx;
    csip_txn_set_user_data(t, NULL);
    if (!b->done) {
        /* ended without a final response: the layer is being freed */
        b->done = true;
        c->cancelling = true;
    }
    b->ct = NULL;
    branch_free(p, b);
    check_done(p, c, now);
    ctx_maybe_free(p, c);
}

void csip_proxy_resolved(csip_proxy *p, uint64_t token, const csip_addr *addrs, size_t n,
                         uint64_t now)
{
    if (!p || token == 0)
        return;
    for (size_t i = 0; i < p->n_waiting; i++) {
        pbranch *b = p->waiting[i];
        if (b->token != token)
            continue;
        waiting_remove(p, b);
        csip_msg *req = b->pending;
        b->pending = NULL;
        pctx *c = b->ctx;
        if (c->cancelling || !c->st) {
            csip_msg_free(req);
            branch_final(p, b, 487, NULL, now);
        } else if (n == 0 || !addrs) {
            csip_msg_free(req);
            branch_final(p, b, 503, NULL, now);
        } else {
            branch_send(p, b, req, &addrs[0], b->sips, now);
        }
        check_done(p, c, now);
        ctx_maybe_free(p, c);
        return;
    }
}

uint64_t csip_proxy_next_expiry(const csip_proxy *p)
{
    return p && p->thead ? p->thead->timer_c : UINT64_MAX;
}

void csip_proxy_handle_expiry(csip_proxy *p, uint64_t now)
{
    while (p && p->thead && p->thead->timer_c <= now) {
        pbranch *b = p->thead;
        timer_c_stop(p, b);
        /* §16.8: a branch that gave a provisional response is cancelled; one
         * that gave none is treated as if it had answered 408: its client
         * transaction is abandoned, and a CANCEL follows if a provisional
         * still comes */
        if (b->provisional) {
            branch_cancel(p, b, now);
            continue;
        }
        b->cancel = true;
        if (b->ct)
            (void)csip_txn_client_abandon(b->ct, now);
        branch_final(p, b, 408, NULL, now);
    }
}

size_t csip_proxy_count(const csip_proxy *p)
{
    return p ? p->n_ctx : 0;
}

/* ------------------------------------------------------------------------- */

int csip_proxy_new(csip_txn_layer *layer, const csip_proxy_opts *opts,
                   const csip_proxy_callbacks *cb, void *user_data, csip_proxy **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!layer || !cb || !cb->local || !cb->is_me)
        return CSIP_ERR_INVALID_ARG;
    const csip_mem *mem = opts ? opts->mem : NULL;
    csip_proxy *p = csip__malloc(mem, sizeof *p);
    if (!p)
        return CSIP_ERR_NOMEM;
    memset(p, 0, sizeof *p);
    p->layer = layer;
    p->cb = *cb;
    p->ud = user_data;
    p->mem = mem;
    p->timer_c_ms = opts && opts->timer_c_ms ? opts->timer_c_ms : TIMER_C_DEFAULT;
    p->record_route = !(opts && opts->no_record_route);
    uint8_t r[4];
    if (RAND_bytes(r, sizeof r) != 1) {
        csip__free(mem, p);
        return CSIP_ERR_NOMEM;
    }
    snprintf(p->tag_prefix, sizeof p->tag_prefix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    *out = p;
    return 0;
}

void csip_proxy_free(csip_proxy *p)
{
    if (!p)
        return;
    /* Contexts and branches are freed as their transactions terminate: the
     * host frees the layer (whose on_terminated calls come here) first. */
    csip__free(p->mem, p->waiting);
    csip__free(p->mem, p);
}
