/*
 * SDP output: the bounded writer shared with offer/answer, and the printer of
 * a parsed description (RFC 8866 text, CRLF line ends, grammar order).
 */
#include "sdp/sdp_int.h"

#include <limits.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

void csip__sdp_w_init(csip__sdp_w *w, char *out, size_t cap)
{
    w->out = out;
    w->cap = out ? cap : 0;
    w->len = 0;
    w->hash = FNV_OFFSET;
    w->hashing = true;
}

void csip__sdp_put(csip__sdp_w *w, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (w->hashing)
        for (size_t i = 0; i < n; i++)
            w->hash = (w->hash ^ (unsigned char)p[i]) * FNV_PRIME;
    if (w->out && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->out + w->len, p, n);
    /* Lengths stay far below SIZE_MAX: every input is bounded by the limits. */
    w->len += n;
}

void csip__sdp_put_u64(csip__sdp_w *w, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    csip__sdp_put(w, tmp + i, sizeof tmp - i);
}

int csip__sdp_w_end(const csip__sdp_w *w)
{
    if (w->len > INT_MAX)
        return CSIP_ERR_RANGE;
    if (w->out && w->len > w->cap)
        return CSIP_ERR_BUFFER_TOO_SMALL;
    return (int)w->len;
}

static void line(csip__sdp_w *w, const char *type, csip_str v)
{
    csip__sdp_putc(w, type);
    csip__sdp_puts(w, v);
    csip__sdp_put(w, "\r\n", 2);
}

static void sp(csip__sdp_w *w, csip_str v)
{
    csip__sdp_put(w, " ", 1);
    csip__sdp_puts(w, v);
}

static void conn(csip__sdp_w *w, const csip_sdp_conn *c)
{
    csip__sdp_putc(w, "c=");
    csip__sdp_puts(w, c->nettype);
    sp(w, c->addrtype);
    sp(w, c->address);
    csip__sdp_puts(w, c->suffix);
    csip__sdp_put(w, "\r\n", 2);
}

static void bw(csip__sdp_w *w, const csip_sdp_bw *b)
{
    csip__sdp_putc(w, "b=");
    csip__sdp_puts(w, b->type);
    csip__sdp_put(w, ":", 1);
    csip__sdp_puts(w, b->value);
    csip__sdp_put(w, "\r\n", 2);
}

static void attr(csip__sdp_w *w, const csip_sdp_attr *a)
{
    csip__sdp_putc(w, "a=");
    csip__sdp_puts(w, a->name);
    if (a->value.p) {
        csip__sdp_put(w, ":", 1);
        csip__sdp_puts(w, a->value);
    }
    csip__sdp_put(w, "\r\n", 2);
}

int csip_sdp_print(const csip_sdp *sdp, char *out, size_t cap)
{
    if (!sdp)
        return CSIP_ERR_INVALID_ARG;
    const csip_sdp_desc *d = &sdp->d;
    csip__sdp_w w;
    csip__sdp_w_init(&w, out, cap);
    w.hashing = false;

    csip__sdp_putc(&w, "v=0\r\no=");
    csip__sdp_puts(&w, d->origin.username);
    sp(&w, d->origin.sess_id);
    sp(&w, d->origin.sess_version);
    sp(&w, d->origin.nettype);
    sp(&w, d->origin.addrtype);
    sp(&w, d->origin.address);
    csip__sdp_put(&w, "\r\n", 2);
    line(&w, "s=", d->name);
    if (d->info.p)
        line(&w, "i=", d->info);
    if (d->uri.p)
        line(&w, "u=", d->uri);
    for (size_t i = 0; i < d->n_emails; i++)
        line(&w, "e=", d->emails[i]);
    for (size_t i = 0; i < d->n_phones; i++)
        line(&w, "p=", d->phones[i]);
    if (d->conn)
        conn(&w, d->conn);
    for (size_t i = 0; i < d->n_bws; i++)
        bw(&w, &d->bws[i]);
    for (size_t i = 0; i < d->n_times; i++) {
        csip__sdp_putc(&w, "t=");
        csip__sdp_puts(&w, d->times[i].start);
        sp(&w, d->times[i].stop);
        csip__sdp_put(&w, "\r\n", 2);
        for (size_t j = 0; j < d->times[i].n_repeats; j++)
            line(&w, "r=", d->times[i].repeats[j]);
    }
    if (d->zone.p)
        line(&w, "z=", d->zone);
    if (d->key.p)
        line(&w, "k=", d->key);
    for (size_t i = 0; i < d->n_attrs; i++)
        attr(&w, &d->attrs[i]);

    for (size_t k = 0; k < d->n_media; k++) {
        const csip_sdp_media *m = &d->media[k];
        csip__sdp_putc(&w, "m=");
        csip__sdp_puts(&w, m->media);
        csip__sdp_put(&w, " ", 1);
        csip__sdp_put_u64(&w, m->port);
        if (m->port_count != 1) {
            csip__sdp_put(&w, "/", 1);
            csip__sdp_put_u64(&w, m->port_count);
        }
        sp(&w, m->proto);
        for (size_t i = 0; i < m->n_fmts; i++)
            sp(&w, m->fmts[i]);
        csip__sdp_put(&w, "\r\n", 2);
        if (m->info.p)
            line(&w, "i=", m->info);
        for (size_t i = 0; i < m->n_conns; i++)
            conn(&w, &m->conns[i]);
        for (size_t i = 0; i < m->n_bws; i++)
            bw(&w, &m->bws[i]);
        if (m->key.p)
            line(&w, "k=", m->key);
        for (size_t i = 0; i < m->n_attrs; i++)
            attr(&w, &m->attrs[i]);
    }
    return csip__sdp_w_end(&w);
}
