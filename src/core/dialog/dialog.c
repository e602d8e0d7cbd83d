/*
 * Dialogs (RFC 3261 §12): creation on both sides, what received requests and
 * responses change, and the messages built in a dialog (requests, the ACK of
 * a 2xx, CANCEL, responses).
 */
#include "csip/txn.h"
#include "dialog/dialog_int.h"

/* ------------------------------------------------------------------------- */
/* Copies and a small growable buffer                                         */

/* Octets of s without CR and LF: a folded header value on one line. */
static size_t clean_len(csip_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++)
        n += s.p[i] != '\r' && s.p[i] != '\n';
    return n;
}

static char *clean_put(char *dst, csip_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] != '\r' && s.p[i] != '\n')
            *dst++ = s.p[i];
    return dst;
}

/* An owned copy of s without CR and LF in a block of its own (NULL view for
 * an empty s). */
static int dup_clean(const csip_mem *mem, csip_str s, char **blk, csip_str *view)
{
    *blk = NULL;
    *view = CSIP_STR_NULL;
    size_t n = clean_len(s);
    if (!n)
        return 0;
    char *p = csip__malloc(mem, n);
    if (!p)
        return CSIP_ERR_NOMEM;
    clean_put(p, s);
    *blk = p;
    *view = (csip_str){p, n};
    return 0;
}

/* A buffer that grows; the first failure sticks in err. Sizes are bounded
 * by the dialog's own limits (max_bytes) and the caller's fields. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    const csip_mem *mem;
    int err;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->err || !n)
        return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->err = CSIP_ERR_NOMEM;
        return;
    }
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n)
            nc *= 2;
        char *np = csip__realloc(b->mem, b->p, nc);
        if (!np) {
            b->err = CSIP_ERR_NOMEM;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sbuf *b, csip_str s)
{
    sb_put(b, s.p, s.len);
}

static void sb_c(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* s without CR and LF. */
static void sb_clean(sbuf *b, csip_str s)
{
    size_t i = 0;
    while (i < s.len) {
        size_t j = i;
        while (j < s.len && s.p[j] != '\r' && s.p[j] != '\n')
            j++;
        sb_put(b, s.p + i, j - i);
        while (j < s.len && (s.p[j] == '\r' || s.p[j] == '\n'))
            j++;
        i = j;
    }
}

static csip_str sb_view(const sbuf *b)
{
    return (csip_str){b->p, b->len};
}

static void sb_free(sbuf *b)
{
    csip__free(b->mem, b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------- */
/* Methods                                                                    */

/* Requests whose Contact replaces the remote target: RFC 3261 §12.2 (INVITE),
 * RFC 3311 (UPDATE), RFC 6665 §4.1.1 (SUBSCRIBE, NOTIFY), RFC 3515 (REFER). */
static bool is_target_refresh(csip_method m)
{
    return m == CSIP_METHOD_INVITE || m == CSIP_METHOD_UPDATE || m == CSIP_METHOD_SUBSCRIBE ||
           m == CSIP_METHOD_NOTIFY || m == CSIP_METHOD_REFER;
}

/* Requests whose responses create dialogs: INVITE (RFC 3261 §12.1),
 * SUBSCRIBE (RFC 6665) and REFER (RFC 3515, its implicit subscription). */
static bool creates_dialog(csip_method m)
{
    return m == CSIP_METHOD_INVITE || m == CSIP_METHOD_SUBSCRIBE || m == CSIP_METHOD_REFER;
}

/* The first Contact value of m: 0 with *na; 1 when there is none;
 * CSIP_ERR_INVALID_ARG for '*'; a parse error. */
static int first_contact(const csip_msg *m, const csip_nameaddr **na)
{
    const csip_nameaddr *arr;
    size_t n;
    int rc = csip_msg_nameaddrs(m, CSIP_HDR_CONTACT, &arr, &n);
    if (rc < 0)
        return rc;
    if (!n)
        return 1;
    if (arr[0].star)
        return CSIP_ERR_INVALID_ARG;
    *na = &arr[0];
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Creation                                                                   */

/* The route set from m's Record-Route values (reversed for the UAC):
 * one block, views first, then their bytes. */
static int make_routes(const csip_dialog_table *s, const csip_msg *m, bool reverse, csip_str **out,
                       uint32_t *nout, size_t *bytes)
{
    *out = NULL;
    *nout = 0;
    *bytes = 0;
    const csip_nameaddr *rr;
    size_t n;
    int rc = csip_msg_nameaddrs(m, CSIP_HDR_RECORD_ROUTE, &rr, &n);
    if (rc < 0)
        return rc;
    if (n > s->max_routes)
        return CSIP_ERR_LIMIT_VALUES;
    if (!n)
        return 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += clean_len(rr[i].raw);
    if (total > s->max_bytes)
        return CSIP_ERR_LIMIT_DIALOG_SIZE;
    csip_str *v = csip__malloc(s->mem, n * sizeof *v + total);
    if (!v)
        return CSIP_ERR_NOMEM;
    char *p = (char *)(v + n);
    for (size_t i = 0; i < n; i++) {
        csip_str src = rr[reverse ? n - 1 - i : i].raw;
        char *start = p;
        p = clean_put(p, src);
        v[i] = (csip_str){start, (size_t)(p - start)};
    }
    *out = v;
    *nout = (uint32_t)n;
    *bytes = total;
    return 0;
}

void csip__dialog_destroy(csip_dialog *d)
{
    const csip_mem *mem = d->table ? d->table->mem : NULL;
    csip__free(mem, d->fixed);
    csip__free(mem, d->target);
    csip__free(mem, d->ltarget);
    csip__free(mem, d->routes);
    csip__free(mem, d);
}

/* What a new dialog is made of, as views into the messages. */
typedef struct dlg_parts {
    csip_str call_id, local_tag, remote_tag, local_uri, remote_uri;
    csip_str remote_target, local_target;
    const csip_msg *rr_msg; /* Record-Route source */
    bool rr_reverse;
} dlg_parts;

/* Checks the limits, copies everything and links the new dialog into the
 * table. The caller fills in the state fields of *out after success, before
 * anything else can see the dialog. */
static int dialog_make(csip_dialog_table *s, const dlg_parts *p, csip_dialog **out)
{
    csip_dialog_id id = {p->call_id, p->local_tag, p->remote_tag};
    if (csip_dialog_table_find(s, &id))
        return CSIP_ERR_INVALID_ARG;
    if (s->count >= s->max_dialogs)
        return CSIP_ERR_LIMIT_DIALOGS;
    uint64_t h = csip__dialog_hash(s, p->call_id, p->local_tag);
    if (csip__dialog_table_forks(s, h, p->call_id, p->local_tag) >= s->max_forks)
        return CSIP_ERR_LIMIT_DIALOGS;

    const csip_str parts[5] = {p->call_id, p->local_tag, p->remote_tag, p->local_uri,
                               p->remote_uri};
    size_t fixed_len = 0;
    for (size_t i = 0; i < 5; i++)
        fixed_len += clean_len(parts[i]);
    size_t tlen = clean_len(p->remote_target), llen = clean_len(p->local_target);
    if (fixed_len + tlen + llen > s->max_bytes)
        return CSIP_ERR_LIMIT_DIALOG_SIZE;

    csip_dialog *d = csip__malloc(s->mem, sizeof *d);
    if (!d)
        return CSIP_ERR_NOMEM;
    memset(d, 0, sizeof *d);
    d->table = s; /* for csip__dialog_destroy(); linked below */
    int rc = make_routes(s, p->rr_msg, p->rr_reverse, &d->routes, &d->nroutes, &d->routes_len);
    if (rc < 0)
        goto fail;
    if (fixed_len + tlen + llen + d->routes_len > s->max_bytes) {
        rc = CSIP_ERR_LIMIT_DIALOG_SIZE;
        goto fail;
    }
    d->fixed = csip__malloc(s->mem, fixed_len ? fixed_len : 1);
    if (!d->fixed) {
        rc = CSIP_ERR_NOMEM;
        goto fail;
    }
    csip_str *views[5] = {&d->call_id, &d->local_tag, &d->remote_tag, &d->local_uri,
                          &d->remote_uri};
    char *w = d->fixed;
    for (size_t i = 0; i < 5; i++) {
        char *start = w;
        w = clean_put(w, parts[i]);
        *views[i] = (csip_str){start, (size_t)(w - start)};
    }
    d->fixed_len = fixed_len;
    if ((rc = dup_clean(s->mem, p->remote_target, &d->target, &d->remote_target)) < 0 ||
        (rc = dup_clean(s->mem, p->local_target, &d->ltarget, &d->local_target)) < 0)
        goto fail;
    d->hash = h;
    d->table = NULL;
    csip__dialog_table_insert(s, d);
    *out = d;
    return 0;
fail:
    csip__dialog_destroy(d);
    return rc;
}

/* The CSeq, Call-ID and From tag of a response are those of the request it answers. */
static int check_answers(const csip_msg *req, const csip_msg *resp, const csip_cseq **rq_cseq,
                         const csip_nameaddr **rq_from, csip_str *call_id)
{
    const csip_cseq *rs_cseq;
    const csip_nameaddr *rs_from;
    csip_str rs_cid;
    int rc;
    if ((rc = csip_msg_cseq(req, rq_cseq)) < 0 || (rc = csip_msg_cseq(resp, &rs_cseq)) < 0 ||
        (rc = csip_msg_from(req, rq_from)) < 0 || (rc = csip_msg_from(resp, &rs_from)) < 0 ||
        (rc = csip_msg_call_id(req, call_id)) < 0 || (rc = csip_msg_call_id(resp, &rs_cid)) < 0)
        return rc;
    if ((*rq_cseq)->number != rs_cseq->number ||
        !csip_str_eq((*rq_cseq)->method, rs_cseq->method) || !csip_str_eq(*call_id, rs_cid) ||
        !csip__dialog_str_eq((*rq_from)->tag, rs_from->tag))
        return CSIP_ERR_INVALID_ARG;
    return 0;
}

/* RFC 3261 §12.1.1, §12.1.2: secure when the request went over TLS and its
 * Request-URI is sips. */
static int secure_flag(const csip_msg *req, unsigned flags, bool *secure)
{
    *secure = false;
    if (!(flags & CSIP_DIALOG_TLS))
        return 0;
    const csip_uri *u;
    int rc = csip_msg_ruri(req, &u);
    if (rc < 0)
        return rc;
    *secure = u->kind == CSIP_URI_SIPS;
    return 0;
}

/* The arguments of csip_dialog_uac_new()/uas_new(): a request that creates
 * dialogs (§12.1) and a 101..299 response to it. Clears *out. */
static bool new_args_ok(const csip_dialog_table *s, const csip_msg *req, const csip_msg *resp,
                        csip_dialog **out)
{
    if (!out)
        return false;
    *out = NULL;
    if (!s || !req || !resp || !csip_msg_is_request(req) || csip_msg_is_request(resp))
        return false;
    int code = csip_msg_status(resp);
    return creates_dialog(csip_msg_method(req)) && code >= 101 && code <= 299;
}

int csip_dialog_uac_new(csip_dialog_table *s, const csip_msg *req, const csip_msg *resp,
                        unsigned flags, csip_dialog **out)
{
    if (!new_args_ok(s, req, resp, out))
        return CSIP_ERR_INVALID_ARG;
    csip_method m = csip_msg_method(req);
    int code = csip_msg_status(resp);
    const csip_cseq *cseq;
    const csip_nameaddr *from, *to, *contact = NULL, *lcontact = NULL;
    csip_str call_id;
    int rc = check_answers(req, resp, &cseq, &from, &call_id);
    if (rc < 0)
        return rc;
    if ((rc = csip_msg_to(resp, &to)) < 0)
        return rc;
    /* §12.1.2: only a 2xx may come without a To tag (an RFC 2543 peer). */
    if (!from->tag.len || (code < 200 && !to->tag.len))
        return CSIP_ERR_INVALID_ARG;
    int crc = first_contact(resp, &contact);
    if (crc < 0)
        return crc;
    int lrc = first_contact(req, &lcontact);
    if (lrc < 0)
        return lrc;
    bool secure;
    if ((rc = secure_flag(req, flags, &secure)) < 0)
        return rc;

    dlg_parts p = {
        .call_id = call_id,
        .local_tag = from->tag,
        .remote_tag = to->tag,
        .local_uri = from->raw,
        .remote_uri = to->raw,
        /* No Contact (a 180 often has none): the Request-URI until one comes. */
        .remote_target = crc == 0 ? contact->uri.raw : csip_msg_ruri_raw(req),
        .local_target = lrc == 0 ? lcontact->raw : CSIP_STR_NULL,
        .rr_msg = resp,
        .rr_reverse = true,
    };
    csip_dialog *d;
    if ((rc = dialog_make(s, &p, &d)) < 0)
        return rc;
    d->uac = true;
    d->secure = secure;
    d->local_cseq = cseq->number;
    d->create_cseq = cseq->number;
    d->create_method = (uint8_t)m;
    if (code < 200) {
        d->state = CSIP_DIALOG_EARLY;
        d->has_inv_out = m == CSIP_METHOD_INVITE;
        d->inv_out = cseq->number;
    } else {
        d->state = CSIP_DIALOG_CONFIRMED;
    }
    *out = d;
    return 0;
}

int csip_dialog_uas_new(csip_dialog_table *s, const csip_msg *req, const csip_msg *resp,
                        unsigned flags, csip_dialog **out)
{
    if (!new_args_ok(s, req, resp, out))
        return CSIP_ERR_INVALID_ARG;
    csip_method m = csip_msg_method(req);
    int code = csip_msg_status(resp);
    const csip_cseq *cseq;
    const csip_nameaddr *from, *rq_to, *rs_to, *contact = NULL, *lcontact = NULL;
    csip_str call_id;
    int rc = check_answers(req, resp, &cseq, &from, &call_id);
    if (rc < 0)
        return rc;
    if ((rc = csip_msg_to(req, &rq_to)) < 0 || (rc = csip_msg_to(resp, &rs_to)) < 0)
        return rc;
    /* A request with a To tag is inside a dialog already; ours must carry our tag. */
    if (rq_to->tag.p || !rs_to->tag.len)
        return CSIP_ERR_INVALID_ARG;
    int crc = first_contact(req, &contact);
    if (crc < 0)
        return crc;
    if (crc == 1)
        return CSIP_ERR_PARSE_MISSING_HEADER; /* §8.1.1.8: a dialog needs the peer's Contact */
    int lrc = first_contact(resp, &lcontact);
    if (lrc < 0)
        return lrc;
    bool secure;
    if ((rc = secure_flag(req, flags, &secure)) < 0)
        return rc;

    dlg_parts p = {
        .call_id = call_id,
        .local_tag = rs_to->tag,
        .remote_tag = from->tag,
        .local_uri = rs_to->raw,
        .remote_uri = from->raw,
        .remote_target = contact->uri.raw,
        .local_target = lrc == 0 ? lcontact->raw : CSIP_STR_NULL,
        .rr_msg = req,
        .rr_reverse = false,
    };
    csip_dialog *d;
    if ((rc = dialog_make(s, &p, &d)) < 0)
        return rc;
    d->uac = false;
    d->secure = secure;
    d->remote_cseq = cseq->number;
    d->has_remote_cseq = true;
    d->create_cseq = cseq->number;
    d->create_method = (uint8_t)m;
    if (code < 200) {
        d->state = CSIP_DIALOG_EARLY;
        d->has_inv_in = m == CSIP_METHOD_INVITE;
        d->inv_in = cseq->number;
    } else {
        d->state = CSIP_DIALOG_CONFIRMED;
    }
    *out = d;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Received and sent messages                                                 */

static size_t dialog_bytes(const csip_dialog *d)
{
    return d->fixed_len + d->routes_len + d->remote_target.len + d->local_target.len;
}

/* A new remote target from a Contact, checked against max_bytes. */
static int new_target(const csip_dialog *d, const csip_nameaddr *contact, char **blk,
                      csip_str *view)
{
    size_t n = clean_len(contact->uri.raw);
    if (dialog_bytes(d) - d->remote_target.len + n > d->table->max_bytes) {
        *blk = NULL;
        return CSIP_ERR_LIMIT_DIALOG_SIZE;
    }
    return dup_clean(d->table->mem, contact->uri.raw, blk, view);
}

static void swap_target(csip_dialog *d, char *blk, csip_str view)
{
    csip__free(d->table->mem, d->target);
    d->target = blk;
    d->remote_target = view;
}

int csip_dialog_recv_request(csip_dialog *d, const csip_msg *req, int *status)
{
    if (!status)
        return CSIP_ERR_INVALID_ARG;
    *status = 0;
    if (!d || !req || !csip_msg_is_request(req))
        return CSIP_ERR_INVALID_ARG;
    csip_method m = csip_msg_method(req);
    /* An ACK and a CANCEL carry their INVITE's CSeq: not in the ordering. */
    if (m == CSIP_METHOD_ACK || m == CSIP_METHOD_CANCEL)
        return 0;
    if (d->state == CSIP_DIALOG_TERMINATED) {
        *status = 481;
        return 0;
    }
    const csip_cseq *cs;
    int rc = csip_msg_cseq(req, &cs);
    if (rc < 0) {
        *status = 400;
        return rc;
    }
    /* §12.2.2: a lower CSeq than the last one is out of order. */
    if (d->has_remote_cseq && cs->number < d->remote_cseq) {
        *status = 500;
        return 0;
    }
    if (m == CSIP_METHOD_INVITE) {
        /* §14.2: an INVITE while one we received is unanswered gets 500
         * (with Retry-After), while ours is unanswered 491 (glare). */
        if (d->has_inv_in) {
            *status = 500;
            return 0;
        }
        if (d->has_inv_out) {
            *status = 491;
            return 0;
        }
    }
    char *blk = NULL;
    csip_str view = CSIP_STR_NULL;
    bool refresh = false;
    if (is_target_refresh(m)) {
        const csip_nameaddr *c;
        int crc = first_contact(req, &c);
        if (crc < 0) {
            *status = 400;
            return 0;
        }
        if (crc == 0) {
            if ((rc = new_target(d, c, &blk, &view)) < 0) {
                *status = 500;
                return rc;
            }
            refresh = true;
        }
    }
    d->remote_cseq = cs->number;
    d->has_remote_cseq = true;
    if (refresh)
        swap_target(d, blk, view);
    if (m == CSIP_METHOD_INVITE) {
        d->has_inv_in = true;
        d->inv_in = cs->number;
    }
    return 0;
}

int csip_dialog_recv_response(csip_dialog *d, const csip_msg *req, const csip_msg *resp, int status)
{
    if (!d || !req || !csip_msg_is_request(req) || (resp && csip_msg_is_request(resp)))
        return CSIP_ERR_INVALID_ARG;
    const csip_cseq *cs;
    int rc = csip_msg_cseq(req, &cs);
    if (rc < 0)
        return rc;
    if (resp) {
        const csip_cseq *rcs;
        if ((rc = csip_msg_cseq(resp, &rcs)) < 0)
            return rc;
        if (rcs->number != cs->number || !csip_str_eq(rcs->method, cs->method))
            return CSIP_ERR_INVALID_ARG;
        status = csip_msg_status(resp);
    }
    if (status < 100 || status > 699)
        return CSIP_ERR_INVALID_ARG;
    if (d->state == CSIP_DIALOG_TERMINATED)
        return 0;

    csip_method m = csip_msg_method(req);
    bool creating = d->uac && d->state == CSIP_DIALOG_EARLY && m == d->create_method &&
                    cs->number == d->create_cseq;
    uint8_t state = d->state;
    bool take_target = false, take_routes = false;
    if (creating) {
        if (status >= 300) {
            state = CSIP_DIALOG_TERMINATED; /* §12.3 */
        } else if (status >= 200) {
            state = CSIP_DIALOG_CONFIRMED; /* §13.2.2.4 */
            take_routes = take_target = true;
        } else if (status > 100) {
            take_target = true;
        }
    } else if (is_target_refresh(m) && resp &&
               ((status >= 200 && status < 300) ||
                (status > 100 && status < 200 && csip_msg_hdr_find(resp, CSIP_HDR_RSEQ)))) {
        take_target = true; /* §12.2.1.2; a reliable 1xx, RFC 6141 §4 */
    }
    if (status == 481 || status == 408)
        state = CSIP_DIALOG_TERMINATED; /* §12.2.1.2 */

    csip_str *routes = NULL;
    uint32_t nroutes = 0;
    size_t routes_len = d->routes_len;
    if (take_routes && (rc = make_routes(d->table, resp, true, &routes, &nroutes, &routes_len)) < 0)
        return rc;
    char *blk = NULL;
    csip_str view = d->remote_target;
    bool new_t = false;
    if (take_target && resp) {
        const csip_nameaddr *c;
        /* A Contact that is '*' or unreadable leaves the target as it was. */
        if (first_contact(resp, &c) == 0) {
            if ((rc = dup_clean(d->table->mem, c->uri.raw, &blk, &view)) < 0) {
                csip__free(d->table->mem, routes);
                return rc;
            }
            new_t = true;
        }
    }
    if (d->fixed_len + routes_len + view.len + d->local_target.len > d->table->max_bytes) {
        csip__free(d->table->mem, routes);
        csip__free(d->table->mem, blk);
        return CSIP_ERR_LIMIT_DIALOG_SIZE;
    }
    if (take_routes) {
        csip__free(d->table->mem, d->routes);
        d->routes = routes;
        d->nroutes = nroutes;
        d->routes_len = routes_len;
    }
    if (new_t)
        swap_target(d, blk, view);
    d->state = state;
    if (m == CSIP_METHOD_INVITE && d->has_inv_out && cs->number == d->inv_out && status >= 200)
        d->has_inv_out = false; /* §14.1 */
    return 0;
}

static void note_sent(csip_dialog *d, csip_method m, uint32_t cseq, int code)
{
    if (m == CSIP_METHOD_INVITE && d->has_inv_in && cseq == d->inv_in && code >= 200)
        d->has_inv_in = false;
    if (!d->uac && d->state == CSIP_DIALOG_EARLY && m == d->create_method &&
        cseq == d->create_cseq) {
        if (code >= 200 && code < 300)
            d->state = CSIP_DIALOG_CONFIRMED;
        else if (code >= 300)
            d->state = CSIP_DIALOG_TERMINATED;
    }
}

int csip_dialog_sent_response(csip_dialog *d, const csip_msg *resp)
{
    if (!d || !resp || csip_msg_is_request(resp))
        return CSIP_ERR_INVALID_ARG;
    const csip_cseq *cs;
    int rc = csip_msg_cseq(resp, &cs);
    if (rc < 0)
        return rc;
    note_sent(d, cs->method_id, cs->number, csip_msg_status(resp));
    return 0;
}

void csip_dialog_terminate(csip_dialog *d)
{
    if (d)
        d->state = CSIP_DIALOG_TERMINATED;
}

/* ------------------------------------------------------------------------- */
/* Building requests                                                          */

/* A URI as a Request-URI: without headers and without the method parameter,
 * which RFC 3261 §19.1.1 (table 1) does not allow there. Other URIs as they are. */
static void put_ruri(sbuf *b, csip_str uri)
{
    csip_uri u;
    if (csip_uri_parse(uri.p, uri.len, 0, &u) < 0 ||
        (u.kind != CSIP_URI_SIP && u.kind != CSIP_URI_SIPS) || (!u.headers.p && !u.method.p)) {
        sb_str(b, uri);
        return;
    }
    const char *end = u.params.p ? u.params.p - 1 : u.headers.p - 1;
    sb_put(b, uri.p, (size_t)(end - uri.p));
    csip_str rest = u.params;
    csip_param prm;
    while (csip_param_next(&rest, &prm) == 1) {
        if (csip_str_ieq_c(prm.name, "method"))
            continue;
        const char *pe = prm.value.p ? prm.value.p + prm.value.len : prm.name.p + prm.name.len;
        sb_put(b, ";", 1);
        sb_put(b, prm.name.p, (size_t)(pe - prm.name.p));
    }
}

static void put_route_line(sbuf *b, csip_str value, bool angle)
{
    sb_c(b, "Route: ");
    if (angle)
        sb_put(b, "<", 1);
    sb_str(b, value);
    if (angle)
        sb_put(b, ">", 1);
    sb_put(b, "\r\n", 2);
}

/* Copies every line of header id from m as "Name: value" lines. */
static void put_lines(sbuf *b, const csip_msg *m, csip_hdr_id id)
{
    for (const csip_hdr *h = csip_msg_hdr_find(m, id); h; h = csip_msg_hdr_next(m, h)) {
        sb_c(b, csip_hdr_name(id));
        sb_put(b, ": ", 2);
        sb_clean(b, h->value);
        sb_put(b, "\r\n", 2);
    }
}

/*
 * RFC 3261 §12.2.1.1: Request-URI and Route from the remote target and the
 * route set, then the rest of the request. cred: the INVITE whose
 * credentials an ACK repeats (§13.2.2.4), or NULL.
 */
static int build_request(const csip_dialog *d, csip_str method, uint32_t cseq,
                         const csip_dialog_req *spec, csip_str contact, const csip_msg *cred,
                         csip_msg **out)
{
    const csip_mem *mem = d->table->mem;
    sbuf ruri = {.mem = mem}, extra = {.mem = mem}, via = {.mem = mem};
    int rc = 0;
    if (!d->nroutes) {
        put_ruri(&ruri, d->remote_target);
    } else {
        csip_nameaddr first;
        csip_str s = d->routes[0];
        bool loose = csip_nameaddr_parse(&s, 0, &first) < 0 || first.uri.lr;
        if (loose) {
            /* Loose router: the remote target, every route as a Route. */
            put_ruri(&ruri, d->remote_target);
            for (uint32_t i = 0; i < d->nroutes; i++)
                put_route_line(&extra, d->routes[i], false);
        } else {
            /* Strict router: it gets the request, the remote target goes last. */
            put_ruri(&ruri, first.uri.raw);
            for (uint32_t i = 1; i < d->nroutes; i++)
                put_route_line(&extra, d->routes[i], false);
            put_route_line(&extra, d->remote_target, true);
        }
    }
    if (cred) {
        put_lines(&extra, cred, CSIP_HDR_AUTHORIZATION);
        put_lines(&extra, cred, CSIP_HDR_PROXY_AUTHORIZATION);
    }
    sb_str(&extra, spec->extra);
    char branch[32];
    rc = csip_txn_new_branch(branch, sizeof branch);
    if (rc < 0)
        goto done;
    sb_str(&via, spec->via);
    sb_c(&via, ";branch=");
    sb_put(&via, branch, (size_t)rc);
    rc = ruri.err ? ruri.err : extra.err ? extra.err : via.err;
    if (rc < 0)
        goto done;
    csip_request_spec rs = {
        .method = method,
        .ruri = sb_view(&ruri),
        .via = sb_view(&via),
        .from = d->local_uri,
        .to = d->remote_uri,
        .call_id = d->call_id,
        .cseq = cseq,
        .max_forwards = 70,
        .contact = contact,
        .content_type = spec->content_type,
        .body = spec->body,
        .extra = sb_view(&extra),
    };
    rc = csip_request_new(&rs, mem, out);
done:
    sb_free(&ruri);
    sb_free(&extra);
    sb_free(&via);
    return rc;
}

int csip_dialog_request(csip_dialog *d, const csip_dialog_req *spec, csip_msg **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!d || !spec || !csip_is_token(spec->method) || !spec->via.len)
        return CSIP_ERR_INVALID_ARG;
    csip_method m = csip_method_lookup(spec->method);
    if (m == CSIP_METHOD_ACK || m == CSIP_METHOD_CANCEL || d->state == CSIP_DIALOG_TERMINATED)
        return CSIP_ERR_INVALID_ARG;
    /* §15: the callee never sends BYE on an early dialog. */
    if (m == CSIP_METHOD_BYE && !d->uac && d->state == CSIP_DIALOG_EARLY)
        return CSIP_ERR_INVALID_ARG;
    /* §14.1: one INVITE transaction at a time, either way. */
    if (m == CSIP_METHOD_INVITE && (d->has_inv_in || d->has_inv_out))
        return CSIP_ERR_INVALID_ARG;
    if (d->local_cseq == UINT32_MAX)
        return CSIP_ERR_RANGE;
    csip_str contact = spec->contact.p        ? spec->contact
                       : is_target_refresh(m) ? d->local_target
                                              : CSIP_STR_NULL;
    uint32_t cseq = d->local_cseq + 1;
    int rc = build_request(d, spec->method, cseq, spec, contact, NULL, out);
    if (rc < 0)
        return rc;
    d->local_cseq = cseq;
    if (m == CSIP_METHOD_INVITE) {
        d->has_inv_out = true;
        d->inv_out = cseq;
    }
    return 0;
}

int csip_dialog_ack(const csip_dialog *d, const csip_msg *invite, const csip_dialog_req *spec,
                    csip_msg **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!d || !invite || !spec || !spec->via.len || !csip_msg_is_request(invite) ||
        csip_msg_method(invite) != CSIP_METHOD_INVITE)
        return CSIP_ERR_INVALID_ARG;
    const csip_cseq *cs;
    int rc = csip_msg_cseq(invite, &cs);
    if (rc < 0)
        return rc;
    return build_request(d, CSIP_STR("ACK"), cs->number, spec, spec->contact, invite, out);
}

int csip_dialog_cancel_for(const csip_msg *invite, const csip_mem *mem, csip_msg **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!invite || !csip_msg_is_request(invite) || csip_msg_method(invite) != CSIP_METHOD_INVITE)
        return CSIP_ERR_INVALID_ARG;
    const csip_via *via;
    const csip_cseq *cs;
    csip_str call_id;
    int rc;
    if ((rc = csip_msg_via(invite, 0, &via)) < 0 || (rc = csip_msg_cseq(invite, &cs)) < 0 ||
        (rc = csip_msg_call_id(invite, &call_id)) < 0)
        return rc;
    const csip_hdr *from = csip_msg_hdr_find(invite, CSIP_HDR_FROM);
    const csip_hdr *to = csip_msg_hdr_find(invite, CSIP_HDR_TO);
    if (!from || !to)
        return CSIP_ERR_NOT_FOUND;
    /* §9.1: the same Request-URI, Call-ID, To, From, CSeq number and Route
     * as the INVITE, and its top Via only. */
    sbuf v = {.mem = mem}, f = {.mem = mem}, t = {.mem = mem}, extra = {.mem = mem};
    sb_clean(&v, via->raw);
    sb_clean(&f, from->value);
    sb_clean(&t, to->value);
    put_lines(&extra, invite, CSIP_HDR_ROUTE);
    rc = v.err ? v.err : f.err ? f.err : t.err ? t.err : extra.err;
    if (rc == 0) {
        csip_request_spec rs = {
            .method = CSIP_STR("CANCEL"),
            .ruri = csip_msg_ruri_raw(invite),
            .via = sb_view(&v),
            .from = sb_view(&f),
            .to = sb_view(&t),
            .call_id = call_id,
            .cseq = cs->number,
            .max_forwards = 70,
            .extra = sb_view(&extra),
        };
        rc = csip_request_new(&rs, mem, out);
    }
    sb_free(&v);
    sb_free(&f);
    sb_free(&t);
    sb_free(&extra);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Building responses                                                         */

/* csip_response_for(), then Record-Route lines of the request (copy_rr) and
 * Contact, before the Content-Length line the builder ends with. */
static int build_response(const csip_msg *req, int code, const char *reason, csip_str tag,
                          csip_str contact, bool copy_rr, const csip_mem *mem, csip_msg **out)
{
    int rc = csip_response_for(req, code, reason, tag, mem, out);
    if (rc < 0)
        return rc;
    if (!copy_rr && !contact.len)
        return 0;
    csip_msg *r = *out;
    size_t pos = csip_msg_hdr_count(r);
    const csip_hdr *last = pos ? csip_msg_hdr_at(r, pos - 1) : NULL;
    if (last && last->id == CSIP_HDR_CONTENT_LENGTH)
        pos--;
    sbuf b = {.mem = mem};
    if (copy_rr) {
        /* §12.1.1: every Record-Route value, in order, parameters included. */
        for (const csip_hdr *h = csip_msg_hdr_find(req, CSIP_HDR_RECORD_ROUTE); h;
             h = csip_msg_hdr_next(req, h)) {
            b.len = 0;
            sb_clean(&b, h->value);
            if (b.err) {
                rc = b.err;
                goto fail;
            }
            rc = csip_msg_hdr_insert(r, pos++, CSIP_HDR_RECORD_ROUTE, CSIP_STR_NULL, sb_view(&b));
            if (rc < 0)
                goto fail;
        }
    }
    if (contact.len &&
        (rc = csip_msg_hdr_insert(r, pos, CSIP_HDR_CONTACT, CSIP_STR_NULL, contact)) < 0)
        goto fail;
    sb_free(&b);
    return 0;
fail:
    sb_free(&b);
    csip_msg_free(r);
    *out = NULL;
    return rc;
}

int csip_dialog_uas_response(const csip_msg *req, int code, const char *reason, csip_str local_tag,
                             csip_str contact, const csip_mem *mem, csip_msg **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!req || !csip_msg_is_request(req) || !csip_is_token(local_tag))
        return CSIP_ERR_INVALID_ARG;
    bool ok = code >= 101 && code <= 299;
    return build_response(req, code, reason, local_tag, ok ? contact : CSIP_STR_NULL, ok, mem, out);
}

int csip_dialog_response(csip_dialog *d, const csip_msg *req, int code, const char *reason,
                         csip_msg **out)
{
    if (!out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    if (!d || !req || !csip_msg_is_request(req))
        return CSIP_ERR_INVALID_ARG;
    const csip_nameaddr *to;
    bool creating = csip_msg_to(req, &to) == 0 && !to->tag.p;
    csip_method m = csip_msg_method(req);
    bool ok = code >= 101 && code <= 299;
    csip_str contact = ok && (is_target_refresh(m) || creating) ? d->local_target : CSIP_STR_NULL;
    int rc = build_response(req, code, reason, d->local_tag, contact, ok && creating, d->table->mem,
                            out);
    if (rc < 0)
        return rc;
    const csip_cseq *cs;
    if (csip_msg_cseq(req, &cs) == 0)
        note_sent(d, m, cs->number, code);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Accessors                                                                  */

csip_dialog_state csip_dialog_state_of(const csip_dialog *d)
{
    return (csip_dialog_state)d->state;
}

void csip_dialog_get_id(const csip_dialog *d, csip_dialog_id *out)
{
    out->call_id = d->call_id;
    out->local_tag = d->local_tag;
    out->remote_tag = d->remote_tag.len ? d->remote_tag : CSIP_STR_NULL;
}

bool csip_dialog_is_uac(const csip_dialog *d)
{
    return d->uac;
}

bool csip_dialog_is_secure(const csip_dialog *d)
{
    return d->secure;
}

uint32_t csip_dialog_local_cseq(const csip_dialog *d)
{
    return d->local_cseq;
}

int csip_dialog_remote_cseq(const csip_dialog *d, uint32_t *out)
{
    if (!d->has_remote_cseq)
        return CSIP_ERR_NOT_FOUND;
    *out = d->remote_cseq;
    return 0;
}

csip_str csip_dialog_local_uri(const csip_dialog *d)
{
    return d->local_uri;
}

csip_str csip_dialog_remote_uri(const csip_dialog *d)
{
    return d->remote_uri;
}

csip_str csip_dialog_remote_target(const csip_dialog *d)
{
    return d->remote_target;
}

csip_str csip_dialog_local_target(const csip_dialog *d)
{
    return d->local_target;
}

size_t csip_dialog_route_count(const csip_dialog *d)
{
    return d->nroutes;
}

csip_str csip_dialog_route(const csip_dialog *d, size_t i)
{
    return i < d->nroutes ? d->routes[i] : CSIP_STR_NULL;
}

int csip_dialog_set_local_target(csip_dialog *d, csip_str contact)
{
    for (size_t i = 0; i < contact.len; i++)
        if (contact.p[i] == '\r' || contact.p[i] == '\n')
            return CSIP_ERR_INVALID_ARG;
    if (dialog_bytes(d) - d->local_target.len + contact.len > d->table->max_bytes)
        return CSIP_ERR_LIMIT_DIALOG_SIZE;
    char *blk;
    csip_str view;
    int rc = dup_clean(d->table->mem, contact, &blk, &view);
    if (rc < 0)
        return rc;
    csip__free(d->table->mem, d->ltarget);
    d->ltarget = blk;
    d->local_target = view;
    return 0;
}

void *csip_dialog_user_data(const csip_dialog *d)
{
    return d->user_data;
}

void csip_dialog_set_user_data(csip_dialog *d, void *user_data)
{
    d->user_data = user_data;
}
