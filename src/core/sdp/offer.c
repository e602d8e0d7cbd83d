/*
 * Offer/answer (RFC 3264) for audio over RTP/AVP: offers and answers written
 * from a local description, session versioning (§8), and what an exchange
 * came to (§6, §7). Nothing here allocates.
 */
#include "sdp/sdp_int.h"

#include <string.h>

/* Directions as two bits: 1 = this side sends, 2 = it receives. */
static unsigned dir_bits(csip_sdp_dir d)
{
    switch (d) {
    case CSIP_SDP_SENDRECV:
        return 3;
    case CSIP_SDP_SENDONLY:
        return 1;
    case CSIP_SDP_RECVONLY:
        return 2;
    case CSIP_SDP_INACTIVE:
        return 0;
    }
    return 0;
}

static csip_sdp_dir bits_dir(unsigned b)
{
    static const csip_sdp_dir d[4] = {CSIP_SDP_INACTIVE, CSIP_SDP_SENDONLY, CSIP_SDP_RECVONLY,
                                      CSIP_SDP_SENDRECV};
    return d[b & 3];
}

/* The other side's view: what one sends the other receives. */
static unsigned reverse(unsigned b)
{
    return ((b & 1) << 1) | ((b & 2) >> 1);
}

/* A local codec with RFC 3551's defaults filled in. */
typedef struct lcodec {
    unsigned pt;
    csip_str name;
    uint32_t clock;
    uint32_t channels;
    csip_str fmtp;
} lcodec;

static int codec_eff(const csip_sdp_codec *c, lcodec *out)
{
    csip_sdp_rtpmap tab;
    bool has_tab = c->pt < 96 && csip_sdp_static_pt(c->pt, &tab) == 0;
    if (c->pt > 127)
        return CSIP_ERR_INVALID_ARG;
    out->pt = c->pt;
    if (c->name.p && c->name.len) {
        if (!csip__sdp_is_token(c->name))
            return CSIP_ERR_INVALID_ARG;
        out->name = c->name;
    } else if (has_tab) {
        out->name = tab.name;
    } else {
        return CSIP_ERR_INVALID_ARG;
    }
    if (c->clock)
        out->clock = c->clock;
    else if (has_tab)
        out->clock = tab.clock;
    else
        return CSIP_ERR_INVALID_ARG;
    out->channels = c->channels                              ? c->channels
                    : (c->name.p && c->name.len) || !has_tab ? 1
                                                             : tab.channels;
    out->fmtp = CSIP_STR_NULL;
    if (c->fmtp.p && c->fmtp.len) {
        if (!csip__sdp_is_bytes(c->fmtp))
            return CSIP_ERR_INVALID_ARG;
        out->fmtp = c->fmtp;
    }
    return 0;
}

static bool host_ok(csip_str a, bool *ip6)
{
    uint8_t buf[16];
    *ip6 = false;
    if (a.len == 0 || !a.p)
        return false;
    if (csip__ipv6_parse(a.p, a.len, buf)) {
        *ip6 = true;
        return true;
    }
    if (csip__ipv4_parse(a.p, a.len, buf))
        return true;
    bool letter = false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char c = (unsigned char)a.p[i];
        bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        if (!alpha && !csip__sdp_digit(c) && c != '-' && c != '.')
            return false;
        letter |= alpha || c == '-';
    }
    return letter; /* a host name; digits and dots only would be a bad IPv4 address */
}

static bool nonws(csip_str s)
{
    if (!s.p || !s.len)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!csip__sdp_nonws((unsigned char)s.p[i]))
            return false;
    return true;
}

static int local_check(const csip_sdp_local *l, bool *ip6)
{
    if (!l || !host_ok(l->address, ip6) || !l->ports || l->n_ports == 0 || !l->codecs ||
        l->n_codecs == 0 || (unsigned)l->dir > 3)
        return CSIP_ERR_INVALID_ARG;
    if (l->username.p && !nonws(l->username))
        return CSIP_ERR_INVALID_ARG;
    if (l->session_name.p && l->session_name.len && !csip__sdp_is_bytes(l->session_name))
        return CSIP_ERR_INVALID_ARG;
    for (size_t i = 0; i < l->n_ports; i++)
        if (l->ports[i] == 0)
            return CSIP_ERR_INVALID_ARG;
    for (size_t i = 0; i < l->n_codecs; i++) {
        lcodec c;
        int rc = codec_eff(&l->codecs[i], &c);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (l->codecs[j].pt == l->codecs[i].pt)
                return CSIP_ERR_INVALID_ARG;
    }
    return 0;
}

/* v=, o=, s=, c=. The version is left out of the hash. */
static void header(csip__sdp_w *w, const csip_sdp_local *l, bool ip6, uint64_t version)
{
    const char *at = ip6 ? " IN IP6 " : " IN IP4 ";
    csip__sdp_putc(w, "v=0\r\no=");
    if (l->username.p)
        csip__sdp_puts(w, l->username);
    else
        csip__sdp_put(w, "-", 1);
    csip__sdp_put(w, " ", 1);
    csip__sdp_put_u64(w, l->sess_id);
    csip__sdp_put(w, " ", 1);
    bool h = w->hashing;
    w->hashing = false;
    csip__sdp_put_u64(w, version);
    w->hashing = h;
    csip__sdp_putc(w, at);
    csip__sdp_puts(w, l->address);
    csip__sdp_putc(w, "\r\ns=");
    if (l->session_name.p && l->session_name.len)
        csip__sdp_puts(w, l->session_name);
    else
        csip__sdp_put(w, "-", 1);
    csip__sdp_putc(w, "\r\nc=");
    csip__sdp_putc(w, at + 1);
    csip__sdp_puts(w, l->address);
    csip__sdp_put(w, "\r\n", 2);
}

static void rtpmap(csip__sdp_w *w, unsigned pt, csip_str name, uint32_t clock, uint32_t ch)
{
    csip__sdp_putc(w, "a=rtpmap:");
    csip__sdp_put_u64(w, pt);
    csip__sdp_put(w, " ", 1);
    csip__sdp_puts(w, name);
    csip__sdp_put(w, "/", 1);
    csip__sdp_put_u64(w, clock);
    if (ch != 1) {
        csip__sdp_put(w, "/", 1);
        csip__sdp_put_u64(w, ch);
    }
    csip__sdp_put(w, "\r\n", 2);
}

static void fmtp(csip__sdp_w *w, unsigned pt, csip_str params)
{
    if (!params.p)
        return;
    csip__sdp_putc(w, "a=fmtp:");
    csip__sdp_put_u64(w, pt);
    csip__sdp_put(w, " ", 1);
    csip__sdp_puts(w, params);
    csip__sdp_put(w, "\r\n", 2);
}

/* a=ptime and the direction (left out when sendrecv, the default). */
static void media_tail(csip__sdp_w *w, uint32_t ptime, unsigned bits)
{
    if (ptime) {
        csip__sdp_putc(w, "a=ptime:");
        csip__sdp_put_u64(w, ptime);
        csip__sdp_put(w, "\r\n", 2);
    }
    if (bits != 3) {
        csip__sdp_putc(w, "a=");
        csip__sdp_putc(w, csip_sdp_dir_name(bits_dir(bits)));
        csip__sdp_put(w, "\r\n", 2);
    }
}

/* An audio section offering every local codec. */
static void offer_audio(csip__sdp_w *w, const csip_sdp_local *l, uint16_t port)
{
    csip__sdp_putc(w, "m=audio ");
    csip__sdp_put_u64(w, port);
    csip__sdp_putc(w, " RTP/AVP");
    for (size_t i = 0; i < l->n_codecs; i++) {
        csip__sdp_put(w, " ", 1);
        csip__sdp_put_u64(w, l->codecs[i].pt);
    }
    csip__sdp_put(w, "\r\n", 2);
    for (size_t i = 0; i < l->n_codecs; i++) {
        lcodec c;
        (void)codec_eff(&l->codecs[i], &c); /* checked by local_check() */
        rtpmap(w, c.pt, c.name, c.clock, c.channels);
        fmtp(w, c.pt, c.fmtp);
    }
    media_tail(w, l->ptime, dir_bits(l->dir));
}

/* A section kept with port 0: its media, proto and formats (RFC 3264 §6, §8.2). */
static void disabled(csip__sdp_w *w, const csip_sdp_media *m)
{
    csip__sdp_putc(w, "m=");
    csip__sdp_puts(w, m->media);
    csip__sdp_putc(w, " 0 ");
    csip__sdp_puts(w, m->proto);
    for (size_t i = 0; i < m->n_fmts; i++) {
        csip__sdp_put(w, " ", 1);
        csip__sdp_puts(w, m->fmts[i]);
    }
    csip__sdp_put(w, "\r\n", 2);
}

/* A section this library can take: audio over plain RTP/AVP (both as RFC 8866 spells them). */
static bool is_audio_avp(const csip_sdp_media *m)
{
    return csip_str_eq_c(m->media, "audio") && csip_str_eq_c(m->proto, "RTP/AVP");
}

/* Versioning (RFC 3264 §8): the same version when the description did not change. */
static int pick_version(const csip_sdp_session *s, uint64_t hash, uint64_t *ver)
{
    if (!s->sent || hash == s->last_hash) {
        *ver = s->version;
        return 0;
    }
    if (s->version == UINT64_MAX)
        return CSIP_ERR_RANGE;
    *ver = s->version + 1;
    return 0;
}

static void session_update(csip_sdp_session *s, uint64_t ver, uint64_t hash)
{
    s->version = ver;
    s->last_hash = hash;
    s->sent = true;
}

void csip_sdp_session_init(csip_sdp_session *s, uint64_t version)
{
    if (!s)
        return;
    s->version = version;
    s->last_hash = 0;
    s->sent = false;
}

static void write_offer(csip__sdp_w *w, const csip_sdp_local *l, bool ip6, uint64_t ver,
                        const csip_sdp *previous)
{
    header(w, l, ip6, ver);
    csip__sdp_putc(w, "t=0 0\r\n");
    size_t used = 0;
    if (previous) {
        for (size_t i = 0; i < previous->d.n_media; i++) {
            const csip_sdp_media *m = &previous->d.media[i];
            if (is_audio_avp(m) && used < l->n_ports)
                offer_audio(w, l, l->ports[used++]);
            else
                disabled(w, m);
        }
    }
    while (used < l->n_ports)
        offer_audio(w, l, l->ports[used++]);
}

int csip_sdp_offer(csip_sdp_session *s, const csip_sdp_local *local, const csip_sdp *previous,
                   char *out, size_t cap)
{
    bool ip6;
    if (!s)
        return CSIP_ERR_INVALID_ARG;
    int rc = local_check(local, &ip6);
    if (rc)
        return rc;
    csip__sdp_w w;
    csip__sdp_w_init(&w, NULL, 0);
    write_offer(&w, local, ip6, 0, previous);
    uint64_t hash = w.hash, ver;
    if ((rc = pick_version(s, hash, &ver)) != 0)
        return rc;
    csip__sdp_w_init(&w, out, cap);
    write_offer(&w, local, ip6, ver, previous);
    rc = csip__sdp_w_end(&w);
    if (rc >= 0 && out)
        session_update(s, ver, hash);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Answer                                                                     */

/* One common codec: the offer's payload type and mapping, the local fmtp. */
typedef struct pick {
    unsigned pt;
    csip_str name;
    uint32_t clock;
    uint32_t channels;
    csip_str fmtp;
} pick;

/*
 * The formats of offered section m that the local list shares, in the offer's
 * order (RFC 3264 §6.1): a static payload type by number, a dynamic one by
 * encoding name (case-insensitive), clock rate and channels. Fills picks
 * (at most 128: payload types are unique) and returns their number.
 */
static size_t intersect(const csip_sdp_media *m, const csip_sdp_local *l, pick picks[128])
{
    bool seen[128] = {false};
    size_t n = 0;
    for (size_t i = 0; i < m->n_fmts; i++) {
        unsigned pt;
        if (!csip__sdp_pt(m->fmts[i], &pt) || seen[pt])
            continue;
        seen[pt] = true;
        csip_sdp_rtpmap offered;
        bool has_map = csip_sdp_media_rtpmap(m, m->fmts[i], &offered) == 0;
        if (pt >= 96 && !has_map)
            continue; /* a dynamic type without a=rtpmap means nothing */
        for (size_t j = 0; j < l->n_codecs; j++) {
            lcodec c;
            if (codec_eff(&l->codecs[j], &c) != 0)
                continue;
            bool match;
            if (pt < 96)
                match = c.pt == pt;
            else
                match = csip_str_ieq(c.name, offered.name) && c.clock == offered.clock &&
                        c.channels == offered.channels;
            if (!match)
                continue;
            pick *p = &picks[n++];
            p->pt = pt;
            p->name = has_map ? offered.name : c.name;
            p->clock = has_map ? offered.clock : c.clock;
            p->channels = has_map ? offered.channels : c.channels;
            p->fmtp = c.fmtp;
            break;
        }
    }
    return n;
}

static size_t write_answer(csip__sdp_w *w, const csip_sdp_local *l, bool ip6, uint64_t ver,
                           const csip_sdp *offer)
{
    const csip_sdp_desc *d = &offer->d;
    header(w, l, ip6, ver);
    /* "The t= line in the answer MUST be equal to the one in the offer" (RFC 3264 §6). */
    for (size_t i = 0; i < d->n_times; i++) {
        csip__sdp_putc(w, "t=");
        csip__sdp_puts(w, d->times[i].start);
        csip__sdp_put(w, " ", 1);
        csip__sdp_puts(w, d->times[i].stop);
        csip__sdp_put(w, "\r\n", 2);
        for (size_t j = 0; j < d->times[i].n_repeats; j++) {
            csip__sdp_putc(w, "r=");
            csip__sdp_puts(w, d->times[i].repeats[j]);
            csip__sdp_put(w, "\r\n", 2);
        }
    }
    size_t used = 0;
    for (size_t k = 0; k < d->n_media; k++) {
        const csip_sdp_media *m = &d->media[k];
        pick picks[128];
        size_t n = 0;
        if (is_audio_avp(m) && m->port != 0 && used < l->n_ports)
            n = intersect(m, l, picks);
        if (n == 0) {
            disabled(w, m);
            continue;
        }
        csip__sdp_putc(w, "m=audio ");
        csip__sdp_put_u64(w, l->ports[used++]);
        csip__sdp_putc(w, " RTP/AVP");
        for (size_t i = 0; i < n; i++) {
            csip__sdp_put(w, " ", 1);
            csip__sdp_put_u64(w, picks[i].pt);
        }
        csip__sdp_put(w, "\r\n", 2);
        for (size_t i = 0; i < n; i++) {
            rtpmap(w, picks[i].pt, picks[i].name, picks[i].clock, picks[i].channels);
            fmtp(w, picks[i].pt, picks[i].fmtp);
        }
        /* §6.1: sendonly → recvonly, recvonly → sendonly, inactive → inactive,
         * sendrecv → any; narrowed by what this side wants. */
        media_tail(w, l->ptime, dir_bits(l->dir) & reverse(dir_bits(m->dir)));
    }
    return used;
}

int csip_sdp_answer(csip_sdp_session *s, const csip_sdp_local *local, const csip_sdp *offer,
                    char *out, size_t cap, size_t *accepted)
{
    bool ip6;
    if (!s || !offer)
        return CSIP_ERR_INVALID_ARG;
    int rc = local_check(local, &ip6);
    if (rc)
        return rc;
    csip__sdp_w w;
    csip__sdp_w_init(&w, NULL, 0);
    (void)write_answer(&w, local, ip6, 0, offer);
    uint64_t hash = w.hash, ver;
    if ((rc = pick_version(s, hash, &ver)) != 0)
        return rc;
    csip__sdp_w_init(&w, out, cap);
    size_t n = write_answer(&w, local, ip6, ver, offer);
    rc = csip__sdp_w_end(&w);
    if (rc >= 0 && out)
        session_update(s, ver, hash);
    if (rc >= 0 && accepted)
        *accepted = n;
    return rc;
}

/* ------------------------------------------------------------------------- */
/* What an exchange came to                                                   */

static bool has_fmt(const csip_sdp_media *m, csip_str f)
{
    for (size_t i = 0; i < m->n_fmts; i++)
        if (csip_str_eq(m->fmts[i], f))
            return true;
    return false;
}

/*
 * The whole exchange against RFC 3264 §6: as many sections, the same media
 * types, port 0 kept where the offer has it, and each accepted section's
 * direction one the offer's allows (§6.1).
 */
static int pair_check(const csip_sdp *offer, const csip_sdp *answer)
{
    if (offer->d.n_media != answer->d.n_media)
        return CSIP_ERR_SDP_MISMATCH;
    for (size_t i = 0; i < offer->d.n_media; i++) {
        const csip_sdp_media *om = &offer->d.media[i], *am = &answer->d.media[i];
        if (!csip_str_ieq(om->media, am->media))
            return CSIP_ERR_SDP_MISMATCH;
        if (om->port == 0 && am->port != 0)
            return CSIP_ERR_SDP_MISMATCH;
        if (am->port != 0 && (dir_bits(am->dir) & ~reverse(dir_bits(om->dir))) != 0)
            return CSIP_ERR_SDP_MISMATCH;
    }
    return 0;
}

int csip_sdp_negotiated(const csip_sdp *offer, const csip_sdp *answer, bool local_offered, size_t i,
                        csip_sdp_stream *out)
{
    if (!offer || !answer || !out)
        return CSIP_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    out->dtmf_pt = -1;
    out->dir = CSIP_SDP_INACTIVE;
    int rc = pair_check(offer, answer);
    if (rc)
        return rc;
    if (i >= offer->d.n_media)
        return CSIP_ERR_NOT_FOUND;
    const csip_sdp_media *om = &offer->d.media[i], *am = &answer->d.media[i];
    const csip_sdp *remote = local_offered ? answer : offer;
    const csip_sdp_conn *c = csip_sdp_media_conn(remote, i);
    out->media = om->media;
    out->address = c ? c->address : CSIP_STR_NULL;
    out->port = local_offered ? am->port : om->port;
    if (om->port == 0 || am->port == 0)
        return 0;
    unsigned ab = dir_bits(am->dir);

    bool common = false, regular = false;
    for (size_t k = 0; k < am->n_fmts; k++) {
        csip_str f = am->fmts[k];
        if (!has_fmt(om, f))
            continue;
        csip_sdp_rtpmap r;
        bool known = csip_sdp_media_rtpmap(am, f, &r) == 0 || csip_sdp_media_rtpmap(om, f, &r) == 0;
        if (known && csip_str_ieq_c(r.name, "telephone-event")) {
            if (out->dtmf_pt < 0)
                out->dtmf_pt = r.pt;
        } else if (known && !regular && !csip_str_ieq_c(r.name, "CN")) {
            out->codec = r;
            regular = true;
        }
        if (!common && known && !regular)
            out->codec = r; /* telephone-event or CN, until a regular codec comes */
        common = true;
    }
    out->accepted = common;
    if (common)
        out->dir = bits_dir(local_offered ? reverse(ab) : ab);
    return 0;
}
