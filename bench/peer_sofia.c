/*
 * Sofia-SIP (libsofia-sip-ua) through its public API.
 *   Sofia parses eagerly: msg_make() copies the bytes and runs every header
 *   it knows (all of RFC 3261 and most extensions) through its typed parser,
 *   Authorization included; unknown headers are kept as sip_unknown.
 *   parse+read:     msg_make with sip_default_mclass(), the message must have
 *                   no error and no erroneous header, then the sip_t fields.
 *   parse+validate: the same parse, then sip_sanity_check() (start line, the
 *                   mandatory headers, CSeq method equal to the request's).
 */
#include "peer.h"

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_util.h>

static int sofia_init(void)
{
    return 0;
}

static msg_t *sofia_parse(const char *data, size_t len, sip_t **sipp)
{
    msg_t *msg = msg_make(sip_default_mclass(), 0, data, (ssize_t)len);
    if (msg == NULL)
        return NULL;
    sip_t *sip = sip_object(msg);
    if (sip == NULL || msg_has_error(msg) || !msg_is_complete(msg) || sip->sip_error != NULL ||
        (sip->sip_request == NULL && sip->sip_status == NULL)) {
        msg_destroy(msg);
        return NULL;
    }
    *sipp = sip;
    return msg;
}

static void *sofia_parse_read(const char *data, size_t len, bench_fields *f)
{
    sip_t *sip;
    msg_t *msg = sofia_parse(data, len, &sip);
    if (msg == NULL)
        return NULL;
    if (sip->sip_via == NULL || sip->sip_from == NULL || sip->sip_to == NULL ||
        sip->sip_call_id == NULL || sip->sip_cseq == NULL) {
        msg_destroy(msg);
        return NULL;
    }
    f->branch = bench_view_c(sip->sip_via->v_branch);
    f->from_tag = bench_view_c(sip->sip_from->a_tag);
    f->to_tag = bench_view_c(sip->sip_to->a_tag);
    f->call_id = bench_view_c(sip->sip_call_id->i_id);
    f->call_id_host = (bench_view){NULL, 0};
    f->cseq = sip->sip_cseq->cs_seq;
    f->cseq_method = bench_view_c(sip->sip_cseq->cs_method_name);
    f->contact_host =
        sip->sip_contact ? bench_view_c(sip->sip_contact->m_url->url_host) : (bench_view){NULL, 0};
    return msg;
}

static void *sofia_parse_validate(const char *data, size_t len)
{
    sip_t *sip;
    msg_t *msg = sofia_parse(data, len, &sip);
    if (msg != NULL && sip_sanity_check(sip) < 0) {
        msg_destroy(msg);
        return NULL;
    }
    return msg;
}

static void sofia_release(void *h)
{
    msg_destroy(h);
}

const bench_peer bench_peer_sofia = {
    "sofia-sip",
    "msg_make (every known header parsed eagerly) + sip_sanity_check",
    sofia_init,
    sofia_parse_read,
    sofia_parse_validate,
    sofia_release,
};
