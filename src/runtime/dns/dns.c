/*
 * RFC 3263 server location over c-ares on a libuv loop (include/csip/dns.h).
 *
 * One csip_resolve() is a job that goes through up to three phases, each a
 * batch of c-ares queries run in parallel:
 *
 *   NAPTR  the TARGET domain, when neither a transport nor a port is given
 *          and the TARGET is a name (RFC 3263 §4.1);
 *   SRV    one query per NAPTR record kept, or per service name
 *          (_sips._tcp, _sip._tcp, _sip._udp) when there was no NAPTR, or the
 *          one service of an explicit transport (§4.1, §4.2);
 *   ADDR   A and AAAA of every SRV target, or of the TARGET itself when there
 *          is no SRV or the URI has a port (§4.2).
 *
 * The job then holds its targets and waits on the resolver's delivery timer,
 * so that the callback always runs from the loop, never from csip_resolve()
 * (c-ares may call back synchronously: literal addresses, /etc/hosts, local
 * errors).
 *
 * c-ares sockets are watched with one uv_poll_t each (ARES_OPT_SOCK_STATE_CB)
 * and its retransmission timeouts with one uv_timer_t re-armed from
 * ares_timeout() after every call into c-ares.
 */
#define _DEFAULT_SOURCE /* struct addrinfo and friends, pulled in by uv.h and ares.h */

#include "csip/dns.h"

#include "base/base_int.h"

#include <ares.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/socket.h>

/* DNS class and record types (RFC 1035, RFC 2782, RFC 3403). */
enum { DNS_CLASS_IN = 1, DNS_TYPE_SRV = 33, DNS_TYPE_NAPTR = 35 };

/* Caps: every list a DNS answer can grow is bounded. */
#define DNS_MAX_GROUPS 8   /* SRV queries per job (NAPTR records kept) */
#define DNS_MAX_SRV 32     /* SRV records used per SRV answer */
#define DNS_MAX_HOSTS 32   /* names looked up for addresses per job */
#define DNS_MAX_TARGETS 64 /* targets handed to the callback */
#define DNS_NAME_CAP 272   /* "_sips._tcp." + a 253-octet domain + NUL */

/*
 * No csip_err names a DNS server failure (timeout, SERVFAIL, REFUSED,
 * unreachable server) or a cancelled query yet: both are reported as
 * CSIP_ERR_NOT_FOUND ("no usable target") until the error map grows codes
 * for them. The distinction is kept here so that only these lines change.
 */
#define DNS_ERR_SERVER CSIP_ERR_DNS
#define DNS_ERR_CANCELLED CSIP_ERR_CANCELLED

enum job_phase { PHASE_NAPTR, PHASE_SRV, PHASE_ADDR, PHASE_DONE };

struct dns_job;

/* One SRV query and its answer. */
struct dns_group {
    struct dns_job *job;
    char name[DNS_NAME_CAP];
    uint8_t transport;
    struct ares_srv_reply *reply; /* owned (ares_free_data) until the hosts are built */
};

/* One name to look up for addresses, with the port and transport to use. */
struct dns_host {
    struct dns_job *job;
    char name[DNS_NAME_CAP];
    uint16_t port;
    uint8_t transport;
    csip_addr *addrs; /* owned, in the family order the resolver prefers */
    size_t naddrs;
};

struct dns_job {
    struct dns_job *next;
    csip_resolver *r;
    csip_resolve_cb cb;
    void *user_data;
    char target[256]; /* the TARGET (maddr or host), brackets removed, NUL-terminated */
    bool sips;
    uint8_t def_transport; /* the explicit transport, or UDP for sip / TLS for sips */
    uint16_t def_port;     /* the URI port, or the default port of def_transport */
    enum job_phase phase;
    int pending; /* queries outstanding in this phase, plus one while issuing */
    bool failed; /* a server failure was seen (timeout, SERVFAIL …) */
    bool nomem;  /* an allocation failed */
    int status;  /* final status, once PHASE_DONE */
    struct dns_group groups[DNS_MAX_GROUPS];
    size_t ngroups;
    struct dns_host hosts[DNS_MAX_HOSTS];
    size_t nhosts;
    csip_target *out; /* owned, the final list */
    size_t nout;
};

/* A socket c-ares asked us to watch. */
struct dns_sock {
    uv_poll_t poll;
    csip_resolver *r;
    ares_socket_t fd;
    struct dns_sock *next;
};

struct csip_resolver {
    uv_loop_t *loop;
    ares_channel ch;
    uv_timer_t timer;   /* c-ares timeouts */
    uv_timer_t deliver; /* runs the callbacks of finished jobs */
    struct dns_sock *socks;
    struct dns_job *running; /* jobs with queries outstanding */
    struct dns_job *done;    /* finished jobs waiting for delivery, oldest first */
    struct dns_job **done_tail;
    size_t open_handles; /* the memory is released when the last one has closed */
    bool prefer_ipv6;
    bool freed;
    uint64_t rng; /* splitmix64 state, seeded from RAND_bytes */
};

static void job_step(struct dns_job *j);
static void deliver_cb(uv_timer_t *t);

/* --- randomness (RFC 2782 weights) --- */

static uint64_t rng_next(csip_resolver *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(csip_resolver *r)
{
    unsigned char b[8];
    uint64_t s = 0;
    if (RAND_bytes(b, (int)sizeof b) == 1) {
        for (size_t i = 0; i < sizeof b; i++)
            s = s << 8 | b[i];
    } else {
        /* No entropy source: weights are a load-sharing hint, not a secret. */
        s = uv_hrtime() ^ (uint64_t)(uintptr_t)r;
    }
    r->rng = s;
}

/* --- loop plumbing --- */

static void handle_closed(csip_resolver *r)
{
    if (--r->open_handles == 0 && r->freed)
        csip__free(NULL, r);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void timer_cb(uv_timer_t *t);

/* Re-arms the timeout timer from c-ares' next deadline; called after every
 * call into c-ares, which is the only thing that moves that deadline. */
static void timer_rearm(csip_resolver *r)
{
    if (r->freed)
        return;
    struct timeval tv;
    struct timeval *tvp = ares_timeout(r->ch, NULL, &tv);
    if (!tvp) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000u + ((uint64_t)tvp->tv_usec + 999u) / 1000u;
    /* Never 0: a zero timer restarted from its own callback would run again
     * in the same pass, before the loop's clock moves. */
    uv_timer_start(&r->timer, timer_cb, ms ? ms : 1, 0);
}

static void timer_cb(uv_timer_t *t)
{
    csip_resolver *r = t->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_rearm(r);
}

static void sock_closed(uv_handle_t *h)
{
    struct dns_sock *s = h->data;
    csip_resolver *r = s->r;
    csip__free(NULL, s);
    handle_closed(r);
}

static void sock_io_cb(uv_poll_t *p, int status, int events)
{
    struct dns_sock *s = p->data;
    csip_resolver *r = s->r;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0) {
        /* Let c-ares read the error and close the socket. */
        rfd = wfd = s->fd;
    } else {
        if (events & UV_READABLE)
            rfd = s->fd;
        if (events & UV_WRITABLE)
            wfd = s->fd;
    }
    /* s may be closed from inside this call (sock_state_cb with 0, 0). */
    ares_process_fd(r->ch, rfd, wfd);
    timer_rearm(r);
}

/* c-ares tells which sockets to watch; (0, 0) comes before it closes one. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    csip_resolver *r = data;
    struct dns_sock **pp = &r->socks;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    struct dns_sock *s = *pp;
    if (!readable && !writable) {
        if (s) {
            *pp = s->next;
            uv_close((uv_handle_t *)&s->poll, sock_closed);
        }
        return;
    }
    if (!s) {
        s = csip__malloc(NULL, sizeof *s);
        if (!s)
            return; /* unwatched: its query ends by timeout */
        memset(s, 0, sizeof *s);
        if (uv_poll_init_socket(r->loop, &s->poll, fd) != 0) {
            csip__free(NULL, s);
            return;
        }
        s->r = r;
        s->fd = fd;
        s->poll.data = s;
        s->next = r->socks;
        r->socks = s;
        r->open_handles++;
    }
    int ev = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, ev, sock_io_cb);
}

/* --- jobs --- */

static void job_free(struct dns_job *j)
{
    for (size_t i = 0; i < j->ngroups; i++)
        if (j->groups[i].reply)
            ares_free_data(j->groups[i].reply);
    for (size_t i = 0; i < j->nhosts; i++)
        csip__free(NULL, j->hosts[i].addrs);
    csip__free(NULL, j->out);
    csip__free(NULL, j);
}

/* Records the outcome of one query for the final status. */
static void job_note(struct dns_job *j, int status)
{
    switch (status) {
    case ARES_SUCCESS:
    case ARES_ENODATA:   /* the name exists without this record */
    case ARES_ENOTFOUND: /* NXDOMAIN */
    case ARES_ENONAME:
    case ARES_EBADNAME: /* a name DNS cannot carry: no such record either */
        break;
    case ARES_ENOMEM:
        j->nomem = true;
        break;
    default: /* timeout, SERVFAIL, REFUSED, connection refused, bad answer … */
        j->failed = true;
        break;
    }
}

static bool name_copy(char *dst, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > cap)
        return false;
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return true;
}

static uint16_t default_port(uint8_t tp)
{
    return (tp == CSIP_TP_TLS || tp == CSIP_TP_WSS) ? 5061 : 5060;
}

/* The SRV service name of a transport (RFC 3263 §4.1, RFC 4168), or NULL. */
static const char *srv_prefix(uint8_t tp)
{
    switch (tp) {
    case CSIP_TP_UDP:
        return "_sip._udp.";
    case CSIP_TP_TCP:
        return "_sip._tcp.";
    case CSIP_TP_TLS:
        return "_sips._tcp.";
    case CSIP_TP_SCTP:
        return "_sip._sctp.";
    default: /* WebSocket transports have no SRV service */
        return NULL;
    }
}

static void add_group(struct dns_job *j, const char *prefix, const char *domain, uint8_t tp)
{
    if (j->ngroups == DNS_MAX_GROUPS)
        return;
    struct dns_group *g = &j->groups[j->ngroups];
    if (!name_copy(g->name, sizeof g->name, prefix, domain))
        return;
    for (size_t i = 0; i < j->ngroups; i++)
        if (j->groups[i].transport == tp && strcmp(j->groups[i].name, g->name) == 0)
            return; /* the same query twice gives nothing new */
    g->job = j;
    g->transport = tp;
    g->reply = NULL;
    j->ngroups++;
}

static void add_host(struct dns_job *j, const char *name, uint16_t port, uint8_t tp)
{
    if (j->nhosts == DNS_MAX_HOSTS)
        return;
    struct dns_host *h = &j->hosts[j->nhosts];
    if (!name_copy(h->name, sizeof h->name, name, ""))
        return;
    h->job = j;
    h->port = port;
    h->transport = tp;
    h->addrs = NULL;
    h->naddrs = 0;
    j->nhosts++;
}

/* Moves a job from the running list to the delivery queue. */
static void job_finish(struct dns_job *j, int status)
{
    csip_resolver *r = j->r;
    j->phase = PHASE_DONE;
    j->status = status;
    struct dns_job **pp = &r->running;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
    j->next = NULL;
    *r->done_tail = j;
    r->done_tail = &j->next;
    if (!r->freed)
        uv_timer_start(&r->deliver, deliver_cb, 0, 0);
}

/* Final list: the hosts in order, each with its addresses, duplicates
 * removed (§4.2: the same address reached by two SRV records is tried once). */
static void job_build(struct dns_job *j)
{
    size_t total = 0;
    for (size_t i = 0; i < j->nhosts; i++)
        total += j->hosts[i].naddrs;
    if (total > DNS_MAX_TARGETS)
        total = DNS_MAX_TARGETS;
    if (total == 0) {
        int st = j->nomem ? CSIP_ERR_NOMEM : j->failed ? DNS_ERR_SERVER : CSIP_ERR_NOT_FOUND;
        job_finish(j, st);
        return;
    }
    j->out = csip__malloc(NULL, total * sizeof *j->out);
    if (!j->out) {
        job_finish(j, CSIP_ERR_NOMEM);
        return;
    }
    size_t n = 0;
    size_t tlen = strlen(j->target);
    for (size_t i = 0; i < j->nhosts && n < total; i++) {
        for (size_t k = 0; k < j->hosts[i].naddrs && n < total; k++) {
            const csip_addr *a = &j->hosts[i].addrs[k];
            bool dup = false;
            for (size_t m = 0; m < n && !dup; m++)
                dup = csip_addr_equal(&j->out[m].addr, a);
            if (dup)
                continue;
            csip_target *t = &j->out[n++];
            memset(t, 0, sizeof *t);
            t->addr = *a;
            memcpy(t->host, j->target, tlen + 1);
        }
    }
    j->nout = n;
    job_finish(j, 0);
}

/* --- phase ADDR: A and AAAA --- */

static size_t addr_take(struct dns_host *h, const struct ares_addrinfo_node *nodes, int family,
                        size_t cap)
{
    size_t n = h->naddrs;
    for (const struct ares_addrinfo_node *nd = nodes; nd && n < cap; nd = nd->ai_next) {
        if (nd->ai_family != family || !nd->ai_addr)
            continue;
        csip_addr a;
        memset(&a, 0, sizeof a);
        if (family == AF_INET && nd->ai_addrlen >= sizeof(struct sockaddr_in)) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)nd->ai_addr;
            a.family = 4;
            memcpy(a.ip, &sin->sin_addr, 4);
        } else if (family == AF_INET6 && nd->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            const struct sockaddr_in6 *sin6 =
                (const struct sockaddr_in6 *)(const void *)nd->ai_addr;
            a.family = 6;
            memcpy(a.ip, &sin6->sin6_addr, 16);
        } else {
            continue;
        }
        a.port = h->port;
        a.transport = h->transport;
        bool dup = false;
        for (size_t m = 0; m < n && !dup; m++)
            dup = csip_addr_equal(&h->addrs[m], &a);
        if (!dup)
            h->addrs[n++] = a;
    }
    return n;
}

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct dns_host *h = arg;
    struct dns_job *j = h->job;
    if (j->r->freed || status == ARES_EDESTRUCTION) {
        if (res)
            ares_freeaddrinfo(res);
        return; /* csip_resolver_free() ends the job */
    }
    job_note(j, status);
    if (status == ARES_SUCCESS && res) {
        size_t cap = 0;
        for (const struct ares_addrinfo_node *nd = res->nodes; nd; nd = nd->ai_next)
            cap++;
        if (cap > DNS_MAX_TARGETS)
            cap = DNS_MAX_TARGETS;
        if (cap) {
            h->addrs = csip__malloc(NULL, cap * sizeof *h->addrs);
            if (!h->addrs) {
                j->nomem = true;
            } else {
                int first = j->r->prefer_ipv6 ? AF_INET6 : AF_INET;
                int second = j->r->prefer_ipv6 ? AF_INET : AF_INET6;
                h->naddrs = addr_take(h, res->nodes, first, cap);
                h->naddrs = addr_take(h, res->nodes, second, cap);
            }
        }
    }
    if (res)
        ares_freeaddrinfo(res);
    job_step(j);
}

static void job_start_addr(struct dns_job *j)
{
    j->phase = PHASE_ADDR;
    j->pending = 1; /* held while issuing: c-ares may answer from inside the call */
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT; /* our own family order, no RFC 6724 probing */
    size_t n = j->nhosts;
    for (size_t i = 0; i < n; i++) {
        j->pending++;
        ares_getaddrinfo(j->r->ch, j->hosts[i].name, NULL, &hints, addr_cb, &j->hosts[i]);
    }
    job_step(j);
}

/* --- phase SRV --- */

/*
 * RFC 2782 ordering of one answer: by priority, and within a priority by
 * repeated weighted random choice. The records not yet chosen keep the
 * weight-0 ones first, so that those get a small chance (the random number
 * is drawn from 0 to the sum of the weights, inclusive).
 */
static void srv_order(csip_resolver *r, struct ares_srv_reply **v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct ares_srv_reply *x = v[i];
        size_t k = i;
        while (k > 0 &&
               (v[k - 1]->priority > x->priority ||
                (v[k - 1]->priority == x->priority && v[k - 1]->weight != 0 && x->weight == 0))) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = x;
    }
    for (size_t lo = 0; lo < n;) {
        size_t hi = lo;
        while (hi < n && v[hi]->priority == v[lo]->priority)
            hi++;
        for (size_t k = lo; k + 1 < hi; k++) {
            uint64_t sum = 0;
            for (size_t m = k; m < hi; m++)
                sum += v[m]->weight;
            uint64_t pick = rng_next(r) % (sum + 1);
            uint64_t run = 0;
            size_t sel = hi - 1;
            for (size_t m = k; m < hi; m++) {
                run += v[m]->weight;
                if (run >= pick) {
                    sel = m;
                    break;
                }
            }
            struct ares_srv_reply *x = v[sel];
            memmove(&v[k + 1], &v[k], (sel - k) * sizeof *v);
            v[k] = x;
        }
        lo = hi;
    }
}

/* The SRV answers, group by group, become the hosts to look up. */
static void job_srv_done(struct dns_job *j)
{
    for (size_t i = 0; i < j->ngroups; i++) {
        struct dns_group *g = &j->groups[i];
        struct ares_srv_reply *v[DNS_MAX_SRV];
        size_t n = 0;
        for (struct ares_srv_reply *s = g->reply; s && n < DNS_MAX_SRV; s = s->next) {
            /* A target of "." means the service is not offered here (RFC 2782). */
            if (!s->host || s->host[0] == '\0' || strcmp(s->host, ".") == 0)
                continue;
            v[n++] = s;
        }
        srv_order(j->r, v, n);
        for (size_t k = 0; k < n; k++)
            add_host(j, v[k]->host, v[k]->port, g->transport);
        if (g->reply)
            ares_free_data(g->reply);
        g->reply = NULL;
    }
    /* No SRV record: A/AAAA of the TARGET with the default port (§4.2). */
    if (j->nhosts == 0)
        add_host(j, j->target, j->def_port, j->def_transport);
    job_start_addr(j);
}

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct dns_group *g = arg;
    struct dns_job *j = g->job;
    if (j->r->freed || status == ARES_EDESTRUCTION)
        return;
    if (status == ARES_SUCCESS)
        status = ares_parse_srv_reply(abuf, alen, &g->reply);
    job_note(j, status);
    job_step(j);
}

static void job_start_srv(struct dns_job *j)
{
    j->phase = PHASE_SRV;
    j->pending = 1;
    size_t n = j->ngroups;
    for (size_t i = 0; i < n; i++) {
        j->pending++;
        ares_query(j->r->ch, j->groups[i].name, DNS_CLASS_IN, DNS_TYPE_SRV, srv_cb, &j->groups[i]);
    }
    job_step(j);
}

/* --- phase NAPTR --- */

static bool ieq(const unsigned char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (csip__lower((char)*a) != csip__lower(*b))
            return false;
    return *a == '\0' && *b == '\0';
}

/* The transport of a NAPTR service field we use (§4.1), or -1. */
static int naptr_transport(const unsigned char *service, bool sips)
{
    if (!service)
        return -1;
    if (ieq(service, "SIPS+D2T"))
        return CSIP_TP_TLS;
    if (sips)
        return -1; /* a SIPS URI keeps only SIPS services */
    if (ieq(service, "SIP+D2U"))
        return CSIP_TP_UDP;
    if (ieq(service, "SIP+D2T"))
        return CSIP_TP_TCP;
    return -1;
}

static void naptr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct dns_job *j = arg;
    if (j->r->freed || status == ARES_EDESTRUCTION)
        return;
    struct ares_naptr_reply *rep = NULL;
    if (status == ARES_SUCCESS)
        status = ares_parse_naptr_reply(abuf, alen, &rep);
    job_note(j, status);
    /* Usable records, ordered by order then preference (stable). */
    struct ares_naptr_reply *v[DNS_MAX_GROUPS];
    size_t n = 0;
    for (struct ares_naptr_reply *p = rep; p && n < DNS_MAX_GROUPS; p = p->next) {
        if (naptr_transport(p->service, j->sips) < 0 || !p->flags || !ieq(p->flags, "s"))
            continue;
        if (!p->replacement || p->replacement[0] == '\0' || strcmp(p->replacement, ".") == 0)
            continue;
        size_t k = n++;
        while (k > 0 && (v[k - 1]->order > p->order ||
                         (v[k - 1]->order == p->order && v[k - 1]->preference > p->preference))) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = p;
    }
    for (size_t i = 0; i < n; i++)
        add_group(j, "", v[i]->replacement, (uint8_t)naptr_transport(v[i]->service, j->sips));
    if (rep)
        ares_free_data(rep);
    /* No usable NAPTR: the SRV services in the order of preference (§4.1). */
    if (j->ngroups == 0) {
        add_group(j, "_sips._tcp.", j->target, CSIP_TP_TLS);
        if (!j->sips) {
            add_group(j, "_sip._tcp.", j->target, CSIP_TP_TCP);
            add_group(j, "_sip._udp.", j->target, CSIP_TP_UDP);
        }
    }
    job_step(j);
}

static void job_start_naptr(struct dns_job *j)
{
    j->phase = PHASE_NAPTR;
    j->pending = 2;
    ares_query(j->r->ch, j->target, DNS_CLASS_IN, DNS_TYPE_NAPTR, naptr_cb, j);
    job_step(j);
}

/* One query of the current phase is over; the last one moves the job on. */
static void job_step(struct dns_job *j)
{
    if (--j->pending > 0)
        return;
    switch (j->phase) {
    case PHASE_NAPTR:
        job_start_srv(j);
        break;
    case PHASE_SRV:
        job_srv_done(j);
        break;
    case PHASE_ADDR:
        job_build(j);
        break;
    case PHASE_DONE:
        break;
    }
}

/* --- delivery --- */

static void deliver_cb(uv_timer_t *t)
{
    csip_resolver *r = t->data;
    /* Only the jobs finished so far: a callback that resolves again gets its
     * answer on a later pass. */
    size_t n = 0;
    for (struct dns_job *j = r->done; j; j = j->next)
        n++;
    while (n-- > 0 && r->done && !r->freed) {
        struct dns_job *j = r->done;
        r->done = j->next;
        if (!r->done)
            r->done_tail = &r->done;
        /* The callback may free the resolver: r stays allocated until its
         * handles have closed, which happens on a later loop phase. */
        j->cb(j->user_data, j->status, j->nout ? j->out : NULL, j->nout);
        job_free(j);
    }
}

/* --- public API --- */

int csip_resolver_new(uv_loop_t *loop, const csip_resolver_opts *opts, csip_resolver **out)
{
    if (!loop || !out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    csip_resolver_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    if (o.servers && o.servers[0] == '\0')
        return CSIP_ERR_INVALID_ARG;
    csip_resolver *r = csip__malloc(NULL, sizeof *r);
    if (!r)
        return CSIP_ERR_NOMEM;
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->prefer_ipv6 = o.prefer_ipv6;
    r->done_tail = &r->done;
    rng_seed(r);

    struct ares_options ao;
    memset(&ao, 0, sizeof ao);
    ao.sock_state_cb = sock_state_cb;
    ao.sock_state_cb_data = r;
    ao.timeout = (int)(o.timeout_ms ? (o.timeout_ms > 600000u ? 600000u : o.timeout_ms) : 2000u);
    ao.tries = (int)(o.tries ? (o.tries > 16u ? 16u : o.tries) : 2u);
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    int st = ares_init_options(&r->ch, &ao, mask);
    if (st != ARES_SUCCESS) {
        csip__free(NULL, r);
        return st == ARES_ENOMEM ? CSIP_ERR_NOMEM : CSIP_ERR_INVALID_ARG;
    }
    if (o.servers) {
        st = ares_set_servers_ports_csv(r->ch, o.servers);
        if (st != ARES_SUCCESS) {
            ares_destroy(r->ch);
            csip__free(NULL, r);
            return st == ARES_ENOMEM ? CSIP_ERR_NOMEM : CSIP_ERR_INVALID_ARG;
        }
    }
    uv_timer_init(loop, &r->timer);
    uv_timer_init(loop, &r->deliver);
    r->timer.data = r;
    r->deliver.data = r;
    r->open_handles = 2;
    *out = r;
    return 0;
}

void csip_resolver_free(csip_resolver *r)
{
    if (!r || r->freed)
        return;
    r->freed = true;
    /* Every outstanding c-ares callback runs now with ARES_EDESTRUCTION and
     * only returns; sock_state_cb closes the watched sockets. */
    ares_destroy(r->ch);
    r->ch = NULL;
    while (r->socks) {
        struct dns_sock *s = r->socks;
        r->socks = s->next;
        uv_close((uv_handle_t *)&s->poll, sock_closed);
    }
    uv_close((uv_handle_t *)&r->timer, timer_closed);
    uv_close((uv_handle_t *)&r->deliver, timer_closed);
    /* The jobs not yet delivered end with an error, finished ones first. A
     * callback that calls csip_resolve() now gets CSIP_ERR_INVALID_ARG. */
    for (;;) {
        struct dns_job *j = r->done;
        if (j) {
            r->done = j->next;
        } else if ((j = r->running) != NULL) {
            r->running = j->next;
        } else {
            break;
        }
        j->cb(j->user_data, DNS_ERR_CANCELLED, NULL, 0);
        job_free(j);
    }
    r->done_tail = &r->done;
}

int csip_resolve(csip_resolver *r, const csip_uri *uri, csip_resolve_cb cb, void *user_data)
{
    if (!r || !uri || !cb || r->freed)
        return CSIP_ERR_INVALID_ARG;
    if (uri->kind != CSIP_URI_SIP && uri->kind != CSIP_URI_SIPS)
        return CSIP_ERR_INVALID_ARG;
    bool sips = uri->kind == CSIP_URI_SIPS;
    int tp = -1;
    if (uri->transport.p) {
        tp = csip_transport_lookup(uri->transport);
        if (tp < 0)
            return CSIP_ERR_INVALID_ARG; /* a transport we cannot use */
        if (sips) {
            /* SIPS means TLS over a reliable transport (RFC 3261 §26.2.2). */
            if (tp == CSIP_TP_TCP || tp == CSIP_TP_TLS)
                tp = CSIP_TP_TLS;
            else if (tp == CSIP_TP_WS || tp == CSIP_TP_WSS)
                tp = CSIP_TP_WSS;
            else
                return CSIP_ERR_INVALID_ARG;
        }
    }
    /* §4: the TARGET is the maddr parameter if present, else the host. */
    csip_str target = (uri->maddr.p && uri->maddr.len) ? uri->maddr : uri->host;
    if (!target.p || target.len == 0)
        return CSIP_ERR_INVALID_ARG;

    struct dns_job *j = csip__malloc(NULL, sizeof *j);
    if (!j)
        return CSIP_ERR_NOMEM;
    memset(j, 0, sizeof *j);
    j->r = r;
    j->cb = cb;
    j->user_data = user_data;
    j->sips = sips;
    j->def_transport = (uint8_t)(tp >= 0 ? tp : sips ? CSIP_TP_TLS : CSIP_TP_UDP);
    j->def_port = uri->has_port ? uri->port : default_port(j->def_transport);
    j->next = r->running;
    r->running = j;

    csip_str name = target;
    if (name.len >= 2 && name.p[0] == '[' && name.p[name.len - 1] == ']') {
        name.p++;
        name.len -= 2;
    }
    if (name.len >= sizeof j->target || memchr(name.p, '\0', name.len)) {
        job_finish(j, CSIP_ERR_NOT_FOUND); /* longer than any domain name */
        return 0;
    }
    memcpy(j->target, name.p, name.len);
    j->target[name.len] = '\0';

    csip_addr a;
    memset(&a, 0, sizeof a);
    if (csip_addr_set_ip(&a, target) == 0) {
        /* A numeric TARGET: no DNS at all (§4.1, §4.2). */
        j->out = csip__malloc(NULL, sizeof *j->out);
        if (!j->out) {
            job_finish(j, CSIP_ERR_NOMEM);
            return 0;
        }
        memset(j->out, 0, sizeof *j->out);
        a.port = j->def_port;
        a.transport = j->def_transport;
        a.conn = 0;
        j->out->addr = a;
        memcpy(j->out->host, j->target, name.len + 1);
        j->nout = 1;
        job_finish(j, 0);
    } else if (uri->has_port) {
        /* A name with a port: A/AAAA only, no NAPTR or SRV (§4.2). */
        add_host(j, j->target, j->def_port, j->def_transport);
        job_start_addr(j);
    } else if (tp >= 0) {
        /* An explicit transport: that transport's SRV only (§4.2). */
        const char *prefix = srv_prefix((uint8_t)tp);
        if (prefix) {
            add_group(j, prefix, j->target, (uint8_t)tp);
            job_start_srv(j);
        } else {
            add_host(j, j->target, j->def_port, j->def_transport);
            job_start_addr(j);
        }
    } else {
        job_start_naptr(j);
    }
    timer_rearm(r);
    return 0;
}
