/*
 * libre (re) through its public API.
 *   sip_msg_decode() splits the header section into name/value views (comma
 *   lists split into one entry per value, indexed in a hash table) and
 *   decodes what a SIP stack needs on every message: the start line and
 *   Request-URI, the top Via, From, To (with their tags), CSeq, Content-Type;
 *   Call-ID, Max-Forwards, Expires and Content-Length are kept as views.
 *   Any other header is decoded on demand with sip_addr_decode(),
 *   sip_via_decode()… The message is decoded from a new mbuf holding a copy of
 *   the bytes, as a receiving transport would have it.
 *   parse+read:     sip_msg_decode, the decoded fields, then sip_addr_decode
 *                   on the first Contact value.
 *   parse+validate: libre has no validator; the closest is sip_msg_decode
 *                   followed by its decoders on every header it has one for
 *                   (sip_via_decode on every Via value, sip_addr_decode on
 *                   every Contact, Route and Record-Route value) and the
 *                   checks left to its user: the mandatory headers are
 *                   present and the CSeq method equals the request method.
 */
#include "peer.h"

#include <string.h>

#include <re.h>

static int re_init(void)
{
    return libre_init() == 0 ? 0 : -1;
}

static struct sip_msg *re_decode(const char *data, size_t len)
{
    struct mbuf *mb = mbuf_alloc(len);
    if (mb == NULL)
        return NULL;
    struct sip_msg *msg = NULL;
    if (mbuf_write_mem(mb, (const uint8_t *)data, len) != 0) {
        mem_deref(mb);
        return NULL;
    }
    mb->pos = 0;
    int err = sip_msg_decode(&msg, mb);
    mem_deref(mb); /* the message holds its own reference */
    return err ? NULL : msg;
}

static bench_view view(const struct pl *pl)
{
    return pl_isset(pl) ? (bench_view){pl->p, pl->l} : (bench_view){NULL, 0};
}

static void *re_parse_read(const char *data, size_t len, bench_fields *f)
{
    struct sip_msg *msg = re_decode(data, len);
    if (msg == NULL)
        return NULL;
    const struct sip_hdr *contact = sip_msg_hdr(msg, SIP_HDR_CONTACT);
    struct sip_addr addr;
    if (!pl_isset(&msg->via.branch) || !pl_isset(&msg->from.auri) || !pl_isset(&msg->to.auri) ||
        !pl_isset(&msg->callid) || !pl_isset(&msg->cseq.met) ||
        (contact != NULL && sip_addr_decode(&addr, &contact->val) != 0)) {
        mem_deref(msg);
        return NULL;
    }
    f->branch = view(&msg->via.branch);
    f->from_tag = view(&msg->from.tag);
    f->to_tag = view(&msg->to.tag);
    f->call_id = view(&msg->callid);
    f->call_id_host = (bench_view){NULL, 0};
    f->cseq = msg->cseq.num;
    f->cseq_method = view(&msg->cseq.met);
    f->contact_host = contact ? view(&addr.uri.host) : (bench_view){NULL, 0};
    return msg;
}

static bool via_check(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg)
{
    (void)msg;
    struct sip_via via;
    if (sip_via_decode(&via, &hdr->val) != 0) {
        *(int *)arg = -1;
        return true;
    }
    return false;
}

static bool addr_check(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg)
{
    (void)msg;
    struct sip_addr addr;
    if (sip_addr_decode(&addr, &hdr->val) != 0) {
        *(int *)arg = -1;
        return true;
    }
    return false;
}

static void *re_parse_validate(const char *data, size_t len)
{
    struct sip_msg *msg = re_decode(data, len);
    if (msg == NULL)
        return NULL;
    int bad = 0;
    sip_msg_hdr_apply(msg, true, SIP_HDR_VIA, via_check, &bad);
    sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT, addr_check, &bad);
    sip_msg_hdr_apply(msg, true, SIP_HDR_ROUTE, addr_check, &bad);
    sip_msg_hdr_apply(msg, true, SIP_HDR_RECORD_ROUTE, addr_check, &bad);
    if (bad || !pl_isset(&msg->via.sentby) || !pl_isset(&msg->from.auri) ||
        !pl_isset(&msg->to.auri) || !pl_isset(&msg->callid) || !pl_isset(&msg->cseq.met) ||
        (msg->req && pl_cmp(&msg->met, &msg->cseq.met) != 0)) {
        mem_deref(msg);
        return NULL;
    }
    return msg;
}

static void re_release(void *h)
{
    mem_deref(h);
}

const bench_peer bench_peer_re = {
    "libre",
    "sip_msg_decode + sip_via_decode/sip_addr_decode on every Via, Contact, Route, "
    "Record-Route value + mandatory-header and CSeq checks",
    re_init,
    re_parse_read,
    re_parse_validate,
    re_release,
};
