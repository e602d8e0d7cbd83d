/*
 * The simulated network (see sim.h).
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX_EPS 16
#define SIM_MAX_ADDRS 4
#define SIM_NEVER UINT64_MAX

struct sim_ep {
    sim *s;
    int idx;
    csip_addr addr[SIM_MAX_ADDRS]; /* addr[0] first */
    int naddr;
    csip_txn_layer *layer;
    csip_txn_callbacks tu;
    void *tu_ud;
};

typedef struct sim_item {
    uint64_t t, seq;
    sim_ep *from, *to; /* packet; from NULL for an action */
    csip_addr src;     /* the sender's address on the packet's transport */
    char *data;
    size_t len;
    sim_action_fn fn;
    void *arg;
} sim_item;

typedef struct sim_cut {
    int a, b;
    uint64_t from, until;
} sim_cut;

struct sim {
    uint64_t now, seq;
    uint64_t rng[4];
    sim_ep *eps[SIM_MAX_EPS];
    int neps;
    sim_link dflt;
    sim_link links[SIM_MAX_EPS][SIM_MAX_EPS];
    bool has_link[SIM_MAX_EPS][SIM_MAX_EPS];
    uint64_t last_at[SIM_MAX_EPS][SIM_MAX_EPS]; /* reliable links deliver in order */
    sim_cut *cuts;
    size_t ncuts, cuts_cap;
    sim_item *q; /* min-heap by (t, seq) */
    size_t qlen, qcap;
    sim_trace_fn trace;
    void *trace_ud;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

/* ------------------------------------------------------------------------- */
/* PRNG: xoshiro256** (Blackman and Vigna), seeded by splitmix64. */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rand(sim *s)
{
    uint64_t *r = s->rng;
    uint64_t out = rotl(r[1] * 5, 7) * 9;
    uint64_t t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return out;
}

double sim_uniform(sim *s)
{
    return (double)(sim_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t sim_range(sim *s, uint32_t lo, uint32_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + (uint32_t)(sim_rand(s) % ((uint64_t)hi - lo + 1));
}

/* ------------------------------------------------------------------------- */
/* Event queue */

static bool item_before(const sim_item *a, const sim_item *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void q_push(sim *s, sim_item it)
{
    if (s->qlen == s->qcap) {
        s->qcap = s->qcap ? s->qcap * 2 : 256;
        sim_item *nq = realloc(s->q, s->qcap * sizeof *nq);
        if (!nq)
            abort();
        s->q = nq;
    }
    it.seq = ++s->seq;
    size_t i = s->qlen++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_before(&it, &s->q[p]))
            break;
        s->q[i] = s->q[p];
        i = p;
    }
    s->q[i] = it;
}

static sim_item q_pop(sim *s)
{
    sim_item top = s->q[0];
    sim_item last = s->q[--s->qlen];
    size_t i = 0, n = s->qlen;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && item_before(&s->q[c + 1], &s->q[c]))
            c++;
        if (!item_before(&s->q[c], &last))
            break;
        s->q[i] = s->q[c];
        i = c;
    }
    if (n)
        s->q[i] = last;
    return top;
}

/* ------------------------------------------------------------------------- */
/* Network */

static void trace(sim *s, sim_fate fate, const sim_ep *from, const sim_ep *to, const void *data,
                  size_t len)
{
    if (!s->trace)
        return;
    sim_event ev = {s->now, ++s->seq, fate, from, to, data, len};
    s->trace(s, &ev, s->trace_ud);
}

static bool partitioned(const sim *s, int a, int b, uint64_t t)
{
    for (size_t i = 0; i < s->ncuts; i++) {
        const sim_cut *c = &s->cuts[i];
        if (((c->a == a && c->b == b) || (c->a == b && c->b == a)) && t >= c->from && t < c->until)
            return true;
    }
    return false;
}

static sim_ep *route(const sim *s, const csip_addr *dst)
{
    for (int i = 0; i < s->neps; i++)
        for (int k = 0; k < s->eps[i]->naddr; k++)
            if (csip_addr_equal(&s->eps[i]->addr[k], dst))
                return s->eps[i];
    return NULL;
}

/* The sender's address for a message over transport tp. */
static const csip_addr *source_for(const sim_ep *ep, uint8_t tp)
{
    for (int k = 0; k < ep->naddr; k++)
        if (ep->addr[k].transport == tp)
            return &ep->addr[k];
    return &ep->addr[0];
}

static void schedule(sim *s, sim_ep *from, sim_ep *to, uint8_t tp, const void *data, size_t len,
                     uint64_t at)
{
    sim_item it;
    memset(&it, 0, sizeof it);
    it.t = at;
    it.from = from;
    it.to = to;
    it.src = *source_for(from, tp);
    it.data = xmalloc(len);
    memcpy(it.data, data, len);
    it.len = len;
    q_push(s, it);
}

static int sim_send(csip_txn_layer *layer, const csip_addr *dst, const void *data, size_t len,
                    void *ud)
{
    (void)layer;
    sim_ep *from = ud;
    sim *s = from->s;
    sim_ep *to = route(s, dst);
    bool reliable = csip_transport_reliable((csip_transport)dst->transport);
    if (!to) {
        trace(s, SIM_NO_ROUTE, from, NULL, data, len);
        return reliable ? CSIP_ERR_TRANSPORT : 0;
    }
    if (partitioned(s, from->idx, to->idx, s->now)) {
        trace(s, SIM_PARTITIONED, from, to, data, len);
        return reliable ? CSIP_ERR_TRANSPORT : 0;
    }
    const sim_link *l = s->has_link[from->idx][to->idx] ? &s->links[from->idx][to->idx] : &s->dflt;
    uint64_t at = s->now + l->delay_ms + sim_range(s, 0, l->jitter_ms);
    if (reliable) {
        /* A stream: in order, nothing lost or repeated. */
        uint64_t *last = &s->last_at[from->idx][to->idx];
        if (at < *last)
            at = *last;
        *last = at;
        trace(s, SIM_SENT, from, to, data, len);
        schedule(s, from, to, dst->transport, data, len, at);
        return 0;
    }
    if (l->loss > 0 && sim_uniform(s) < l->loss) {
        trace(s, SIM_LOST, from, to, data, len);
        return 0;
    }
    trace(s, SIM_SENT, from, to, data, len);
    if (l->reorder > 0 && sim_uniform(s) < l->reorder)
        at += sim_range(s, 1, l->reorder_ms ? l->reorder_ms : 1);
    schedule(s, from, to, dst->transport, data, len, at);
    if (l->dup > 0 && sim_uniform(s) < l->dup)
        schedule(s, from, to, dst->transport, data, len,
                 s->now + l->delay_ms + sim_range(s, 0, l->jitter_ms + l->reorder_ms));
    return 0;
}

static void deliver(sim *s, sim_item *it)
{
    sim_ep *to = it->to;
    trace(s, SIM_DELIVERED, it->from, to, it->data, it->len);
    csip_addr src = it->src;
    if (csip_transport_reliable((csip_transport)src.transport))
        src.conn = (uint64_t)(it->from->idx + 1) << 16 | (uint64_t)(to->idx + 1);
    (void)csip_txn_layer_recv(to->layer, it->data, it->len, &src, s->now);
    free(it->data);
}

/* ------------------------------------------------------------------------- */
/* TU trampolines: the layer's user_data is the endpoint. */

static void tramp_request(csip_txn_layer *l, csip_txn *st, const csip_msg *req,
                          const csip_addr *src, void *ud)
{
    sim_ep *ep = ud;
    if (ep->tu.on_request)
        ep->tu.on_request(l, st, req, src, ep->tu_ud);
}

static void tramp_response(csip_txn_layer *l, csip_txn *ct, const csip_msg *resp, int status,
                           void *ud)
{
    sim_ep *ep = ud;
    if (ep->tu.on_response)
        ep->tu.on_response(l, ct, resp, status, ep->tu_ud);
}

static void tramp_stray(csip_txn_layer *l, const csip_msg *resp, const csip_addr *src, void *ud)
{
    sim_ep *ep = ud;
    if (ep->tu.on_stray_response)
        ep->tu.on_stray_response(l, resp, src, ep->tu_ud);
}

static void tramp_terminated(csip_txn_layer *l, csip_txn *t, csip_txn_end why, void *ud)
{
    sim_ep *ep = ud;
    if (ep->tu.on_terminated)
        ep->tu.on_terminated(l, t, why, ep->tu_ud);
}

/* ------------------------------------------------------------------------- */
/* API */

sim *sim_new(uint64_t seed)
{
    sim *s = xmalloc(sizeof *s);
    memset(s, 0, sizeof *s);
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    s->dflt.delay_ms = 10;
    return s;
}

void sim_free(sim *s)
{
    if (!s)
        return;
    /* Layers first: their on_terminated callbacks may still look at endpoints. */
    for (int i = 0; i < s->neps; i++)
        csip_txn_layer_free(s->eps[i]->layer);
    for (int i = 0; i < s->neps; i++)
        free(s->eps[i]);
    for (size_t i = 0; i < s->qlen; i++)
        free(s->q[i].data);
    free(s->q);
    free(s->cuts);
    free(s);
}

uint64_t sim_now(const sim *s)
{
    return s->now;
}

sim_ep *sim_endpoint(sim *s, const char *ip, uint16_t port, csip_transport tp,
                     const csip_txn_opts *opts, const csip_txn_callbacks *tu, void *tu_ud)
{
    if (s->neps == SIM_MAX_EPS)
        abort();
    sim_ep *ep = xmalloc(sizeof *ep);
    memset(ep, 0, sizeof *ep);
    ep->s = s;
    ep->idx = s->neps;
    if (csip_addr_set_ip(&ep->addr[0], csip_str_c(ip)) != 0)
        abort();
    ep->addr[0].port = port;
    ep->addr[0].transport = (uint8_t)tp;
    ep->naddr = 1;
    if (tu)
        ep->tu = *tu;
    ep->tu_ud = tu_ud;
    csip_txn_callbacks cb = {sim_send, tramp_request, tramp_response, tramp_stray,
                             tramp_terminated};
    if (csip_txn_layer_new(opts, &cb, ep, &ep->layer) != 0)
        abort();
    s->eps[s->neps++] = ep;
    return ep;
}

csip_txn_layer *sim_layer(const sim_ep *ep)
{
    return ep->layer;
}

void sim_endpoint_alias(sim_ep *ep, const char *ip, uint16_t port, csip_transport tp)
{
    if (ep->naddr == SIM_MAX_ADDRS)
        abort();
    csip_addr *a = &ep->addr[ep->naddr++];
    memset(a, 0, sizeof *a);
    if (csip_addr_set_ip(a, csip_str_c(ip)) != 0)
        abort();
    a->port = port;
    a->transport = (uint8_t)tp;
}

const csip_addr *sim_addr(const sim_ep *ep)
{
    return &ep->addr[0];
}

const csip_addr *sim_addr_tp(const sim_ep *ep, csip_transport tp)
{
    return source_for(ep, (uint8_t)tp);
}

sim_ep *sim_ep_of(const sim *s, const csip_txn_layer *l)
{
    for (int i = 0; i < s->neps; i++)
        if (s->eps[i]->layer == l)
            return s->eps[i];
    return NULL;
}

void sim_set_default_link(sim *s, const sim_link *l)
{
    s->dflt = *l;
}

void sim_set_link(sim *s, const sim_ep *from, const sim_ep *to, const sim_link *l)
{
    s->links[from->idx][to->idx] = *l;
    s->has_link[from->idx][to->idx] = true;
}

void sim_partition(sim *s, const sim_ep *a, const sim_ep *b, uint64_t from_ms, uint64_t until_ms)
{
    if (s->ncuts == s->cuts_cap) {
        s->cuts_cap = s->cuts_cap ? s->cuts_cap * 2 : 4;
        sim_cut *n = realloc(s->cuts, s->cuts_cap * sizeof *n);
        if (!n)
            abort();
        s->cuts = n;
    }
    s->cuts[s->ncuts++] = (sim_cut){a->idx, b->idx, from_ms, until_ms};
}

void sim_at(sim *s, uint64_t t, sim_action_fn fn, void *arg)
{
    sim_item it;
    memset(&it, 0, sizeof it);
    it.t = t < s->now ? s->now : t;
    it.fn = fn;
    it.arg = arg;
    q_push(s, it);
}

void sim_trace(sim *s, sim_trace_fn fn, void *ud)
{
    s->trace = fn;
    s->trace_ud = ud;
}

static uint64_t next_timer(const sim *s)
{
    uint64_t t = SIM_NEVER;
    for (int i = 0; i < s->neps; i++) {
        uint64_t e = csip_txn_layer_next_expiry(s->eps[i]->layer);
        if (e < t)
            t = e;
    }
    return t;
}

uint64_t sim_run(sim *s, uint64_t until_ms)
{
    uint64_t n = 0;
    for (;;) {
        uint64_t tq = s->qlen ? s->q[0].t : SIM_NEVER;
        uint64_t tt = next_timer(s);
        uint64_t t = tq < tt ? tq : tt;
        if (t == SIM_NEVER || t > until_ms)
            break;
        if (t > s->now)
            s->now = t;
        n++;
        if (tq <= tt) {
            sim_item it = q_pop(s);
            if (it.from)
                deliver(s, &it);
            else
                it.fn(s, it.arg);
            continue;
        }
        for (int i = 0; i < s->neps; i++)
            if (csip_txn_layer_next_expiry(s->eps[i]->layer) <= s->now)
                csip_txn_layer_handle_expiry(s->eps[i]->layer, s->now);
    }
    if (until_ms != SIM_NEVER && s->now < until_ms)
        s->now = until_ms;
    return n;
}

bool sim_idle(const sim *s)
{
    return s->qlen == 0 && next_timer(s) == SIM_NEVER;
}

/* ------------------------------------------------------------------------- */
/* Message helpers */

csip_msg *sim_request(const sim_ep *from, const csip_addr *to, const char *method, const char *user,
                      const char *branch, const char *call_id, uint32_t cseq, const char *to_tag,
                      const char *extra)
{
    char me[64], them[64], ruri[128], via[192], fromv[160], tov[160];
    const csip_addr *src = source_for(from, to->transport);
    if (csip_addr_format(src, me, sizeof me) < 0 || csip_addr_format(to, them, sizeof them) < 0)
        abort();
    snprintf(ruri, sizeof ruri, "sip:%s@%s", user, them);
    snprintf(via, sizeof via, "SIP/2.0/%s %s;branch=%s;rport",
             csip_transport_name((csip_transport)src->transport), me, branch);
    snprintf(fromv, sizeof fromv, "<sip:a@%s>;tag=ft", me);
    snprintf(tov, sizeof tov, "<%s>%s%s", ruri, to_tag ? ";tag=" : "", to_tag ? to_tag : "");
    csip_request_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.method = csip_str_c(method);
    spec.ruri = csip_str_c(ruri);
    spec.via = csip_str_c(via);
    spec.from = csip_str_c(fromv);
    spec.to = csip_str_c(tov);
    spec.call_id = csip_str_c(call_id);
    spec.cseq = cseq;
    spec.extra = csip_str_c(extra);
    csip_msg *m = NULL;
    if (csip_request_new(&spec, NULL, &m) != 0)
        abort();
    return m;
}

csip_msg *sim_response(const csip_msg *req, int code, const char *to_tag)
{
    csip_msg *m = NULL;
    if (csip_response_for(req, code, NULL, csip_str_c(to_tag), NULL, &m) != 0)
        abort();
    return m;
}
