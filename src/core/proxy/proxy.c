/*
 * The proxy core (csip/proxy.h, RFC 3261 §16).
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

#include <stdio.h>
#include <string.h>

#define TIMER_C_DEFAULT 180000u
#define SENT_BY_MAX 128
#define MAX_ROUTES 32
#define MAX_CHALLENGES 16
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
    uint64_t timer_c;  /* deadline, 0 when not running */
    bool provisional;  /* a 1xx came */
    bool done;         /* a final response (or its synthesized stand-in) came */
    bool cancel;       /* CANCEL wanted: sent when a provisional comes */
    bool cancelled;    /* the CANCEL went out */
} pbranch;

struct pctx {
    csip_proxy *p;
    csip_txn *st;
    csip_msg *req_copy; /* the request after Route processing, for further branches */
    csip_addr src;
    bool invite;
    bool final_sent;
    bool six_xx;      /* a 6xx came: no more branches */
    bool cancelling;  /* the caller cancelled, or a 2xx/6xx came */
    int final_status; /* what was sent, for on_done */
    csip_msg *best;   /* best final response so far (a copy) */
    int best_code;
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

static bool uri_is_me(csip_proxy *p, const csip_uri *u)
{
    if (u->kind != CSIP_URI_SIP && u->kind != CSIP_URI_SIPS)
        return false;
    return p->cb.is_me(p->ud, u->host, u->has_port ? u->port : 0);
}

/* Rewrites the Route set: every Route line removed, then n values added in order. */
static int set_routes(csip_msg *m, const csip_str *v, size_t n)
{
    for (size_t i = csip_msg_hdr_count(m); i-- > 0;) {
        const csip_hdr *h = csip_msg_hdr_at(m, i);
        if (h && h->id == CSIP_HDR_ROUTE) {
            int rc = csip_msg_hdr_remove(m, i);
            if (rc)
                return rc;
        }
    }
    /* Route goes right after the last Via-ish header: simply first after the
     * start line is fine for every element, but keep it readable: before
     * the first header that is not Via or Max-Forwards. */
    size_t pos = 0, cnt = csip_msg_hdr_count(m);
    while (pos < cnt) {
        const csip_hdr *h = csip_msg_hdr_at(m, pos);
        if (!h || (h->id != CSIP_HDR_VIA && h->id != CSIP_HDR_RECORD_ROUTE))
            break;
        pos++;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = csip_msg_hdr_insert(m, pos + i, CSIP_HDR_ROUTE, CSIP_STR("Route"), v[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* The Route values of a message (raw name-addr text), at most MAX_ROUTES. */
static int get_routes(const csip_msg *m, csip_str *v, size_t *n)
{
    const csip_nameaddr *na;
    size_t k;
    int rc = csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &na, &k);
    if (rc)
        return rc;
    if (k > MAX_ROUTES)
        return CSIP_ERR_LIMIT_VALUES;
    for (size_t i = 0; i < k; i++)
        v[i] = na[i].raw;
    *n = k;
    return 0;
}

/* Where a URI says to send to: IP literal, port, transport. Host names need resolve. */
static int uri_addr(const csip_uri *u, csip_addr *a)
{
    memset(a, 0, sizeof *a);
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
        return CSIP_ERR_PAUSE; /* a name: resolve */
    int rc = csip_addr_set_ip(a, u->host);
    if (rc)
        return rc;
    a->port = u->has_port ? u->port : (tp == CSIP_TP_TLS ? 5061 : 5060);
    a->transport = (uint8_t)tp;
    return 0;
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

int csip_proxy_loop_hash(const csip_msg *req, char out[9])
{
    uint64_t h = 0xcbf29ce484222325u;
    const csip_nameaddr *from, *to;
    const csip_cseq *cseq;
    const csip_via *via;
    csip_str cid;
    int rc;
    if ((rc = csip_msg_from(req, &from)) || (rc = csip_msg_to(req, &to)) ||
        (rc = csip_msg_call_id(req, &cid)) || (rc = csip_msg_cseq(req, &cseq)) ||
        (rc = csip_msg_via(req, 0, &via)))
        return rc;
    h = fnv(h, csip_msg_ruri_raw(req));
    h = fnv(h, from->tag);
    h = fnv(h, to->tag);
    h = fnv(h, cid);
    char num[16];
    int n = snprintf(num, sizeof num, "%u", cseq->number);
    h = fnv(h, (csip_str){num, (size_t)n});
    h = fnv(h, via->host);
    h = fnv(h, via->branch);
    for (const csip_hdr *r = csip_msg_hdr_find(req, CSIP_HDR_ROUTE); r;
         r = csip_msg_hdr_next(req, r))
        h = fnv(h, r->value);
    for (const csip_hdr *r = csip_msg_hdr_find(req, CSIP_HDR_PROXY_REQUIRE); r;
         r = csip_msg_hdr_next(req, r))
        h = fnv(h, r->value);
    snprintf(out, 9, "%08x", (unsigned)(h ^ (h >> 32)));
    return 0;
}

/* True when a Via of ours carries the branch we would compute now: a loop
 * (a spiral changes the Request-URI or the Route, and so the hash). */
static bool looped(csip_proxy *p, const csip_msg *req)
{
    char hash[9];
    if (csip_proxy_loop_hash(req, hash) != 0)
        return false;
    const csip_via *v;
    for (size_t i = 1; csip_msg_via(req, i, &v) == 0; i++) {
        if (!p->cb.is_me(p->ud, v->host, v->has_port ? v->port : 0))
            continue;
        if (v->branch.len >= BRANCH_PREFIX_LEN + 8 &&
            memcmp(v->branch.p, BRANCH_PREFIX, BRANCH_PREFIX_LEN) == 0 &&
            memcmp(v->branch.p + BRANCH_PREFIX_LEN, hash, 8) == 0)
            return true;
    }
    return false;
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
    /* a To tag from the Call-ID-independent sequence: unique per response */
    int n = snprintf(tag, sizeof tag, "p%llx", (unsigned long long)++p->seq);
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

/* Unlinks and frees a branch (the context stays: callers free it when it is
 * left without a server transaction and without branches). */
static void branch_free(csip_proxy *p, pbranch *b)
{
    pctx *c = b->ctx;
    timer_c_stop(p, b);
    if (b->pending) {
        waiting_remove(p, b);
        csip_msg_free(b->pending);
    }
    for (pbranch **pp = &c->branches; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    csip__free(p->mem, b);
}

/* Frees the branches that ended without a transaction (failed before being
 * sent, or cancelled while their next hop was being resolved). */
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

/* Sends the CANCEL of a branch (§16.10: only after a provisional response). */
static void branch_cancel(csip_proxy *p, pbranch *b, uint64_t now)
{
    if (b->done || b->cancelled)
        return;
    b->cancel = true;
    if (b->pending) { /* never sent: just drop it */
        waiting_remove(p, b);
        csip_msg_free(b->pending);
        b->pending = NULL;
        b->done = true;
        return;
    }
    if (!b->ct || !b->provisional || !b->ctx->invite)
        return; /* sent when a provisional comes; Timer C ends a silent one */
    csip_msg *cancel;
    if (csip_dialog_cancel_for(csip_txn_request(b->ct), p->mem, &cancel) != 0)
        return;
    csip_txn *cct = NULL;
    if (csip_txn_client_new(p->layer, cancel, csip_txn_peer(b->ct), NULL, now, &cct) == 0)
        b->cancelled = true;
}

static void cancel_all(csip_proxy *p, pctx *c, pbranch *except, uint64_t now)
{
    c->cancelling = true;
    for (pbranch *b = c->branches; b; b = b->next)
        if (b != except)
            branch_cancel(p, b, now);
    reap(p, c);
}

/* §16.7 step 6: 6xx first; else the lowest class, 4xx before 5xx before 3xx
 * is NOT what the RFC says: it says lowest class, so 3xx < 4xx < 5xx. Within
 * a class the first one kept. */
static int rank(int code)
{
    if (code >= 600)
        return 0;
    return code / 100; /* 3, 4, 5 */
}

static void keep_challenges(csip_proxy *p, pctx *c, const csip_msg *resp)
{
    for (size_t i = 0; i < csip_msg_hdr_count(resp) && c->n_challenges < MAX_CHALLENGES; i++) {
        const csip_hdr *h = csip_msg_hdr_at(resp, i);
        if (h->id != CSIP_HDR_WWW_AUTHENTICATE && h->id != CSIP_HDR_PROXY_AUTHENTICATE)
            continue;
        char *v = pstrdup(p, h->value);
        if (!v)
            return;
        c->challenge_id[c->n_challenges] = h->id;
        c->challenges[c->n_challenges++] = v;
    }
}

static void send_final(csip_proxy *p, pctx *c, uint64_t now);
static void start_group(csip_proxy *p, pctx *c, uint64_t now);

/* After a branch ended: the next group, or the best response, when all are done. */
static void check_done(csip_proxy *p, pctx *c, uint64_t now)
{
    reap(p, c);
    if (c->final_sent || !c->st)
        return;
    for (pbranch *b = c->branches; b; b = b->next)
        if (!b->done)
            return;
    while (!c->six_xx && !c->cancelling && c->next_target < c->n_targets) {
        start_group(p, c, now);
        reap(p, c);
        for (pbranch *b = c->branches; b; b = b->next)
            if (!b->done)
                return;
    }
    send_final(p, c, now);
}

static void send_final(csip_proxy *p, pctx *c, uint64_t now)
{
    if (c->final_sent || !c->st)
        return;
    c->final_sent = true;
    const csip_msg *req = csip_txn_request(c->st);
    if (!c->best) {
        /* no branch answered: every one timed out or failed to send */
        c->final_status = c->best_code ? c->best_code : 408;
        if (c->final_status == 503)
            c->final_status = 500; /* §16.7 step 6 */
        respond_own(p, c->st, req, c->final_status, NULL, now);
        return;
    }
    csip_msg *resp = c->best;
    c->best = NULL;
    if (csip_msg_status(resp) == 401 || csip_msg_status(resp) == 407) {
        /* §16.7 step 7: every challenge of every 401/407, in one response */
        for (size_t i = csip_msg_hdr_count(resp); i-- > 0;) {
            const csip_hdr *h = csip_msg_hdr_at(resp, i);
            if (h->id == CSIP_HDR_WWW_AUTHENTICATE || h->id == CSIP_HDR_PROXY_AUTHENTICATE)
                (void)csip_msg_hdr_remove(resp, i);
        }
        for (size_t i = 0; i < c->n_challenges; i++)
            (void)csip_msg_hdr_add(resp, (csip_hdr_id)c->challenge_id[i],
                                   csip_str_c(c->challenges[i]), false);
    }
    c->final_status = csip_msg_status(resp);
    if (c->final_status == 503) {
        /* §16.7 step 6: a 503 becomes 500 (the proxy is not unavailable) */
        csip_msg_free(resp);
        c->final_status = 500;
        respond_own(p, c->st, req, 500, NULL, now);
        return;
    }
    (void)csip_txn_respond(c->st, resp, now);
}

/* Sends a branch's request now that its destination is known. */
static void branch_send(csip_proxy *p, pbranch *b, csip_msg *req, const csip_addr *dst,
                        uint64_t now)
{
    pctx *c = b->ctx;
    char sent_by[SENT_BY_MAX];
    int n = p->cb.local(p->ud, dst, sent_by, sizeof sent_by);
    char hash[9], via[SENT_BY_MAX + 96];
    int rc = n < 0 ? n : csip_proxy_loop_hash(csip_txn_request(c->st), hash);
    if (rc == 0) {
        int vn = snprintf(via, sizeof via, "SIP/2.0/%s %.*s;branch=" BRANCH_PREFIX "%s.%llx",
                          csip_transport_name((csip_transport)dst->transport), n, sent_by, hash,
                          (unsigned long long)++p->seq);
        rc =
            csip_msg_hdr_insert(req, 0, CSIP_HDR_VIA, CSIP_STR("Via"), (csip_str){via, (size_t)vn});
    }
    if (rc == 0 && p->record_route && c->invite) {
        /* Record-Route (§16.6 step 4) with the address facing the callee; a
         * second one facing the caller when they differ (transport, family). */
        char rr[SENT_BY_MAX + 64], in[SENT_BY_MAX];
        int rn = snprintf(rr, sizeof rr, "<sip:%.*s;lr%s>", n, sent_by, tp_param(dst->transport));
        int in_n = p->cb.local(p->ud, &c->src, in, sizeof in);
        bool two = in_n >= 0 && (c->src.transport != dst->transport || in_n != n ||
                                 memcmp(in, sent_by, (size_t)n) != 0);
        if (two) {
            char rr2[SENT_BY_MAX + 64];
            int r2 =
                snprintf(rr2, sizeof rr2, "<sip:%.*s;lr%s>", in_n, in, tp_param(c->src.transport));
            rc = csip_msg_hdr_add(req, CSIP_HDR_RECORD_ROUTE, (csip_str){rr2, (size_t)r2}, true);
        }
        if (rc == 0)
            rc = csip_msg_hdr_add(req, CSIP_HDR_RECORD_ROUTE, (csip_str){rr, (size_t)rn}, true);
    }
    if (rc != 0) {
        csip_msg_free(req);
        b->done = true;
        if (!c->best_code)
            c->best_code = 500;
        return;
    }
    csip_txn *ct = NULL;
    rc = csip_txn_client_new(p->layer, req, dst, b, now, &ct);
    if (rc != 0) {
        b->done = true;
        if (!c->best_code)
            c->best_code = 500;
        return;
    }
    b->ct = ct;
    if (c->invite && !b->done)
        timer_c_start(p, b, now);
}

/* Builds the request of one target and sends it (or waits for its resolve). */
static void fork_target(csip_proxy *p, pctx *c, const csip_proxy_target *t, uint64_t now)
{
    pbranch *b = pzalloc(p, sizeof *b);
    if (!b)
        return;
    b->ctx = c;
    b->next = c->branches;
    c->branches = b;
    c->n_branches++;
    csip_msg *req = NULL;
    int rc = copy_msg(p, c->req_copy, &req);
    /* §16.6 step 2: the Request-URI; step 3: Max-Forwards */
    if (rc == 0 && t->uri.p)
        rc = csip_msg_set_ruri(req, t->uri);
    uint32_t mf = 70;
    if (rc == 0 && csip_msg_max_forwards(req, &mf) == 0)
        mf = mf > 0 ? mf - 1 : 0;
    if (rc == 0)
        rc = csip_msg_set_max_forwards(req, mf);
    /* Path (RFC 3327) of the binding goes first in the Route set */
    csip_str routes[MAX_ROUTES + 1];
    size_t nr = 0;
    if (rc == 0 && t->path.p && t->path.len) {
        csip_str rest = t->path;
        while (rc == 0 && rest.len && nr < MAX_ROUTES) {
            csip_nameaddr na;
            rc = csip_nameaddr_parse(&rest, CSIP_NAMEADDR_LIST | CSIP_NAMEADDR_NEED_ANGLE, &na);
            if (rc == 0)
                routes[nr++] = na.raw;
        }
        size_t old = 0;
        csip_str orig[MAX_ROUTES];
        if (rc == 0)
            rc = get_routes(req, orig, &old);
        for (size_t i = 0; rc == 0 && i < old && nr < MAX_ROUTES; i++)
            routes[nr++] = orig[i];
        if (rc == 0)
            rc = set_routes(req, routes, nr);
    }
    /* §16.6 step 6/7: the next hop is the first Route, else the Request-URI;
     * a strict router (no lr) gets the Request-URI moved to the end. */
    csip_uri next;
    const csip_uri *ruri = NULL;
    if (rc == 0)
        rc = csip_msg_ruri(req, &ruri);
    if (rc == 0) {
        next = *ruri;
        const csip_nameaddr *na;
        size_t k = 0;
        rc = csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &k);
        if (rc == 0 && k > 0) {
            next = na[0].uri;
            if (!next.lr && k <= MAX_ROUTES) {
                char rbuf[1024];
                int rl = snprintf(rbuf, sizeof rbuf, "<%.*s>", (int)ruri->raw.len, ruri->raw.p);
                csip_str nv[MAX_ROUTES + 1];
                for (size_t i = 1; i < k; i++)
                    nv[i - 1] = na[i].raw;
                nv[k - 1] = (csip_str){rbuf, (size_t)rl};
                char first[1024];
                int fl =
                    snprintf(first, sizeof first, "%.*s", (int)na[0].uri.raw.len, na[0].uri.raw.p);
                if (rl >= (int)sizeof rbuf || fl >= (int)sizeof first)
                    rc = CSIP_ERR_LIMIT_URI;
                if (rc == 0)
                    rc = set_routes(req, nv, k);
                if (rc == 0)
                    rc = csip_msg_set_ruri(req, (csip_str){first, (size_t)fl});
                if (rc == 0)
                    rc = csip_msg_ruri(req, &ruri);
                if (rc == 0)
                    next = *ruri;
            }
        }
    }
    if (rc != 0) {
        csip_msg_free(req);
        b->done = true;
        if (!c->best_code)
            c->best_code = rc == CSIP_ERR_NOMEM ? 500 : 400;
        return;
    }
    csip_addr dst;
    rc = uri_addr(&next, &dst);
    if (rc == CSIP_ERR_PAUSE) {
        if (!p->cb.resolve) {
            rc = CSIP_ERR_NOT_FOUND;
        } else {
            if (p->n_waiting == p->cap_waiting) {
                size_t cap = p->cap_waiting ? p->cap_waiting * 2 : 16;
                pbranch **w = csip__realloc(p->mem, p->waiting, cap * sizeof *w);
                if (!w) {
                    csip_msg_free(req);
                    b->done = true;
                    c->best_code = c->best_code ? c->best_code : 500;
                    return;
                }
                p->waiting = w;
                p->cap_waiting = cap;
            }
            b->token = ++p->next_token;
            b->pending = req;
            p->waiting[p->n_waiting++] = b;
            rc = p->cb.resolve(p->ud, &next, b->token, &dst);
            if (rc == CSIP_ERR_PAUSE)
                return; /* csip_proxy_resolved() goes on */
            waiting_remove(p, b);
            b->pending = NULL;
        }
    }
    if (rc != 0) {
        csip_msg_free(req);
        b->done = true;
        if (!c->best_code || c->best_code == 408)
            c->best_code = 503; /* unreachable: becomes 500 if nothing better */
        return;
    }
    branch_send(p, b, req, &dst, now);
}

/* The targets of the highest q not yet tried, in parallel (§16.6, serial by q groups). */
static void start_group(csip_proxy *p, pctx *c, uint64_t now)
{
    if (c->next_target >= c->n_targets)
        return;
    uint16_t q = c->targets[c->next_target].q;
    while (c->next_target < c->n_targets && c->targets[c->next_target].q == q) {
        const csip_proxy_target *t = &c->targets[c->next_target++];
        fork_target(p, c, t, now);
    }
}

/* ------------------------------------------------------------------------- */
/* Requests */

/* §16.4: a strict router's request (our Record-Route as Request-URI) gets its
 * Request-URI back from the last Route; then every Route naming us goes. */
static int preprocess_routes(csip_proxy *p, csip_msg *req)
{
    const csip_uri *ruri;
    int rc = csip_msg_ruri(req, &ruri);
    if (rc)
        return rc;
    csip_str v[MAX_ROUTES];
    size_t n = 0;
    if ((rc = get_routes(req, v, &n)) != 0)
        return rc;
    if (n > 0 && !ruri->user.p && uri_is_me(p, ruri)) {
        const csip_nameaddr *na;
        size_t k;
        if ((rc = csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &k)) != 0)
            return rc;
        char last[1024];
        int l =
            snprintf(last, sizeof last, "%.*s", (int)na[k - 1].uri.raw.len, na[k - 1].uri.raw.p);
        if (l >= (int)sizeof last)
            return CSIP_ERR_LIMIT_URI;
        n--;
        if ((rc = set_routes(req, v, n)) != 0 ||
            (rc = csip_msg_set_ruri(req, (csip_str){last, (size_t)l})) != 0)
            return rc;
        if ((rc = get_routes(req, v, &n)) != 0)
            return rc;
    }
    const csip_nameaddr *na;
    size_t k;
    if ((rc = csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &na, &k)) != 0)
        return rc;
    size_t skip = 0;
    while (skip < k && uri_is_me(p, &na[skip].uri))
        skip++;
    if (skip) {
        csip_str keep[MAX_ROUTES];
        for (size_t i = skip; i < k; i++)
            keep[i - skip] = na[i].raw;
        rc = set_routes(req, keep, k - skip);
    }
    return rc;
}

static int target_cmp_q(const void *a, const void *b)
{
    const csip_proxy_target *x = a, *y = b;
    return (int)y->q - (int)x->q;
}

/* Copies the targets' strings into one allocation owned by the context. */
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
        memcpy(w, t[i].uri.p, t[i].uri.len);
        c->targets[i].uri = (csip_str){w, t[i].uri.len};
        w += t[i].uri.len + 1;
        if (t[i].path.p) {
            if (t[i].path.len)
                memcpy(w, t[i].path.p, t[i].path.len);
            c->targets[i].path = (csip_str){w, t[i].path.len};
            w += t[i].path.len + 1;
        }
    }
    c->target_buf = buf;
    c->n_targets = n;
    /* stable order by q, highest first: insertion sort keeps equal q in order */
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

/* The ACK of a 2xx (no transaction): forwarded statelessly along its Route. */
static void forward_ack(csip_proxy *p, const csip_msg *req, uint64_t now)
{
    csip_msg *m;
    if (copy_msg(p, req, &m) != 0)
        return;
    const csip_uri *ruri;
    const csip_nameaddr *na;
    size_t k = 0;
    uint32_t mf = 70;
    char hash[9];
    if (preprocess_routes(p, m) != 0 || csip_msg_ruri(m, &ruri) != 0 ||
        csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &na, &k) != 0 ||
        csip_proxy_loop_hash(req, hash) != 0) {
        csip_msg_free(m);
        return;
    }
    if (csip_msg_max_forwards(m, &mf) == 0 && mf == 0) {
        csip_msg_free(m);
        return;
    }
    csip_proxy_target t[CSIP_PROXY_MAX_TARGETS];
    size_t nt = 0;
    if (k == 0 && (ruri->kind == CSIP_URI_SIP || ruri->kind == CSIP_URI_SIPS) && ruri->user.p &&
        p->cb.is_my_domain && p->cb.is_my_domain(p->ud, ruri->host)) {
        /* an ACK to one of our users without a Route (the caller ignored our
         * Record-Route): where the INVITE went, the user's first binding */
        if (!p->cb.locate || p->cb.locate(p->ud, m, ruri, t, CSIP_PROXY_MAX_TARGETS, &nt) != 0 ||
            nt == 0 || csip_msg_set_ruri(m, t[0].uri) != 0 || csip_msg_ruri(m, &ruri) != 0) {
            csip_msg_free(m);
            return;
        }
    }
    const csip_uri *next = k ? &na[0].uri : ruri;
    csip_addr dst;
    char sent_by[SENT_BY_MAX], via[SENT_BY_MAX + 96];
    int n;
    /* an ACK is not retransmitted by us: a name that needs resolving is
     * dropped (the callee retransmits its 2xx, the caller its ACK); one
     * that would come back here is dropped too */
    if (uri_is_me(p, next) || uri_addr(next, &dst) != 0 ||
        (n = p->cb.local(p->ud, &dst, sent_by, sizeof sent_by)) < 0 ||
        csip_msg_set_max_forwards(m, mf ? mf - 1 : 69) != 0) {
        csip_msg_free(m);
        return;
    }
    /* deterministic branch: the same ACK again gets the same branch */
    int vn = snprintf(via, sizeof via, "SIP/2.0/%s %.*s;branch=" BRANCH_PREFIX "%s.a",
                      csip_transport_name((csip_transport)dst.transport), n, sent_by, hash);
    if (csip_msg_hdr_insert(m, 0, CSIP_HDR_VIA, CSIP_STR("Via"), (csip_str){via, (size_t)vn}) == 0)
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
    /* §16.10: 200 to the CANCEL, then cancel every pending branch; their 487s
     * make the best response */
    respond_own(p, st, req, 200, NULL, now);
    if (!c->final_sent) {
        c->cancelling = true;
        cancel_all(p, c, NULL, now);
        c->next_target = c->n_targets; /* no further group */
        check_done(p, c, now);
    }
}

void csip_proxy_on_request(csip_proxy *p, csip_txn *st, const csip_msg *req, const csip_addr *src,
                           uint64_t now)
{
    if (!p || !req)
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
            (void)csip_txn_respond(st, resp, now);
        }
        if (p->cb.on_done)
            p->cb.on_done(p->ud, req, src, res.status, 0);
        return;
    }
    if (m == CSIP_METHOD_CANCEL) {
        on_cancel(p, st, req, now);
        return;
    }
    if (looped(p, req)) {
        respond_own(p, st, req, 482, NULL, now);
        if (p->cb.on_done)
            p->cb.on_done(p->ud, req, src, 482, 0);
        return;
    }
    pctx *c = pzalloc(p, sizeof *c);
    if (!c) {
        respond_own(p, st, req, 500, NULL, now);
        return;
    }
    p->n_ctx++;
    c->p = p;
    c->st = st;
    c->src = *src;
    c->invite = m == CSIP_METHOD_INVITE;
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
        const csip_nameaddr *na;
        size_t nroutes = 0;
        (void)csip_msg_nameaddrs(c->req_copy, CSIP_HDR_ROUTE, &na, &nroutes);
        bool sip = ruri->kind == CSIP_URI_SIP || ruri->kind == CSIP_URI_SIPS;
        /* Out of dialog unless Route processing popped a Route of ours (or a
         * strict router's Request-URI was ours). */
        const csip_nameaddr *orig;
        size_t norig = 0;
        (void)csip_msg_nameaddrs(req, CSIP_HDR_ROUTE, &orig, &norig);
        bool routed_by_us = norig > nroutes || !csip_str_eq(csip_msg_ruri_raw(req), ruri->raw);
        bool local = nroutes == 0 && sip && ruri->user.p && p->cb.is_my_domain &&
                     p->cb.is_my_domain(p->ud, ruri->host);
        bool to_me = nroutes == 0 && sip && !ruri->user.p && uri_is_me(p, ruri);
        if (!routed_by_us && !to_me) {
            if (p->cb.authorize)
                code = p->cb.authorize(p->ud, req, src, !local);
            else if (!local)
                code = 403;
            if (code == 403 && !local)
                reason = "Forbidden (no relay for other domains)";
        }
        if (code) {
            /* refused */
        } else if (local) {
            /* §16.5: one of our users: the location service */
            csip_proxy_target t[CSIP_PROXY_MAX_TARGETS];
            size_t n = 0;
            rc = p->cb.locate
                     ? p->cb.locate(p->ud, c->req_copy, ruri, t, CSIP_PROXY_MAX_TARGETS, &n)
                     : CSIP_ERR_NOT_FOUND;
            if (rc == CSIP_ERR_NOT_FOUND)
                code = 404;
            else if (rc)
                code = 500;
            else if (n == 0)
                code = 480;
            else if (keep_targets(p, c, t, n) != 0)
                code = 500;
        } else if (to_me) {
            /* addressed to this proxy itself, and not a REGISTER or OPTIONS the
             * host answered: nothing here to give it to */
            code = 404;
        } else {
            /* another domain, or the Route set to follow */
            csip_proxy_target t = {.uri = CSIP_STR_NULL, .q = 1000};
            if (keep_targets(p, c, &t, 1) != 0)
                code = 500;
        }
    }
    if (code) {
        c->final_sent = true;
        c->final_status = code;
        respond_own(p, st, req, code, reason, now);
        if (p->cb.on_done)
            p->cb.on_done(p->ud, req, src, code, 0);
        return;
    }
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
        return; /* a CANCEL of ours: its 200 means nothing here */
    pctx *c = b->ctx;
    if (status < 200) {
        b->provisional = true;
        if (c->invite && b->timer_c)
            timer_c_start(p, b, now); /* §16.7 step 2: reset Timer C */
        if (b->cancel) {
            branch_cancel(p, b, now);
            return;
        }
        if (status == 100 || c->final_sent || !c->st || !resp)
            return;
        csip_msg *fwd;
        if (copy_msg(p, resp, &fwd) == 0) {
            if (csip_msg_via_pop(fwd) == 0)
                (void)csip_txn_respond(c->st, fwd, now);
            else
                csip_msg_free(fwd);
        }
        return;
    }
    if (status < 300) {
        /* 2xx: forwarded at once, every one of them (§16.7 step 5) */
        bool first = !b->done;
        b->done = true;
        timer_c_stop(p, b);
        if (resp && c->st) {
            csip_msg *fwd;
            if (copy_msg(p, resp, &fwd) == 0) {
                if (csip_msg_via_pop(fwd) == 0)
                    (void)csip_txn_respond(c->st, fwd, now);
                else
                    csip_msg_free(fwd);
            }
        }
        if (!c->final_sent) {
            c->final_sent = true;
            c->final_status = status;
        }
        if (first && c->invite)
            cancel_all(p, c, b, now);
        return;
    }
    if (b->done)
        return;
    b->done = true;
    timer_c_stop(p, b);
    if (resp && (status == 401 || status == 407))
        keep_challenges(p, c, resp);
    int r = rank(status);
    if (resp && (!c->best || r < rank(c->best_code))) {
        csip_msg *copy;
        if (copy_msg(p, resp, &copy) == 0 && csip_msg_via_pop(copy) == 0) {
            csip_msg_free(c->best);
            c->best = copy;
            c->best_code = status;
        } else {
            csip_msg_free(copy);
        }
    } else if (!resp && !c->best && (!c->best_code || status != 408)) {
        c->best_code = status; /* synthesized 408/503: kept when nothing better */
    }
    if (status >= 600 && !c->six_xx) {
        c->six_xx = true;
        cancel_all(p, c, b, now);
    }
    check_done(p, c, now);
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
    if (copy_msg(p, resp, &fwd) != 0)
        return;
    csip_addr dst;
    if (csip_msg_via_pop(fwd) == 0 && csip_txn_response_dest(fwd, NULL, &dst) == 0)
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
        if (!c->final_sent && c->branches) {
            /* the server transaction died first (a transport error): stop the branches */
            cancel_all(p, c, NULL, now);
        }
        if (p->cb.on_done && c->n_branches)
            p->cb.on_done(p->ud, csip_txn_request(t), &c->src, c->final_status, c->n_branches);
        c->st = NULL;
        ctx_maybe_free(p, c);
        return;
    }
    pbranch *b = ud;
    pctx *c = b->ctx;
    b->ct = NULL;
    branch_free(p, b);
    check_done(p, c, now);
    ctx_maybe_free(p, c);
}

void csip_proxy_resolved(csip_proxy *p, uint64_t token, const csip_addr *addrs, size_t n,
                         uint64_t now)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_waiting; i++) {
        pbranch *b = p->waiting[i];
        if (b->token != token)
            continue;
        waiting_remove(p, b);
        csip_msg *req = b->pending;
        b->pending = NULL;
        pctx *c = b->ctx;
        if (n == 0 || !addrs) {
            csip_msg_free(req);
            b->done = true;
            if (!c->best_code || c->best_code == 408)
                c->best_code = 503;
        } else {
            branch_send(p, b, req, &addrs[0], now);
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
         * that gave none is treated as a 408 (the client transaction is
         * abandoned, which reports 408) */
        if (b->provisional)
            branch_cancel(p, b, now);
        else if (b->ct)
            (void)csip_txn_client_abandon(b->ct, now);
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
