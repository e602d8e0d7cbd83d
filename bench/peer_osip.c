/*
 * GNU oSIP2 (libosipparser2) through its public API.
 *   oSIP parses eagerly: osip_message_parse() copies the bytes and runs every
 *   header it knows (Via, From, To, Contact, Route, Record-Route, CSeq,
 *   Call-ID, Content-Type, the authentication headers…) through its typed
 *   parser; the others are kept as name/value pairs.
 *   parse+read:     osip_message_parse, then the typed structs. oSIP splits
 *                   the Call-ID at '@' and keeps the CSeq number as a string.
 *   parse+validate: the same parse, then the checks oSIP leaves to its user
 *                   (there is no validator in the library): the mandatory
 *                   headers are present and the CSeq method equals the
 *                   request method.
 */
#include "peer.h"

#include <stdlib.h>
#include <string.h>

#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>

static int osip_init(void)
{
    return parser_init() == 0 ? 0 : -1;
}

static osip_message_t *osip_parse(const char *data, size_t len)
{
    osip_message_t *sip;
    if (osip_message_init(&sip) != 0)
        return NULL;
    if (osip_message_parse(sip, data, len) != 0) {
        osip_message_free(sip);
        return NULL;
    }
    return sip;
}

static void *osip_parse_read(const char *data, size_t len, bench_fields *f)
{
    osip_message_t *sip = osip_parse(data, len);
    if (sip == NULL)
        return NULL;

    osip_via_t *via;
    osip_generic_param_t *branch, *from_tag, *to_tag = NULL;
    osip_contact_t *contact = NULL;
    osip_from_t *from = osip_message_get_from(sip);
    osip_to_t *to = osip_message_get_to(sip);
    osip_call_id_t *call_id = osip_message_get_call_id(sip);
    osip_cseq_t *cseq = osip_message_get_cseq(sip);
    if (osip_message_get_via(sip, 0, &via) < 0 ||
        osip_via_param_get_byname(via, "branch", &branch) != 0 || from == NULL ||
        osip_from_get_tag(from, &from_tag) != 0 || to == NULL || call_id == NULL || cseq == NULL ||
        cseq->number == NULL) {
        osip_message_free(sip);
        return NULL;
    }
    osip_to_get_tag(to, &to_tag);
    osip_message_get_contact(sip, 0, &contact);

    f->branch = bench_view_c(branch->gvalue);
    f->from_tag = bench_view_c(from_tag->gvalue);
    f->to_tag = to_tag ? bench_view_c(to_tag->gvalue) : (bench_view){NULL, 0};
    f->call_id = bench_view_c(osip_call_id_get_number(call_id));
    f->call_id_host = bench_view_c(osip_call_id_get_host(call_id));
    f->cseq = (uint32_t)strtoul(osip_cseq_get_number(cseq), NULL, 10);
    f->cseq_method = bench_view_c(osip_cseq_get_method(cseq));
    f->contact_host = contact && contact->url ? bench_view_c(contact->url->host)
                                              : (bench_view){NULL, 0};
    return sip;
}

static void *osip_parse_validate(const char *data, size_t len)
{
    osip_message_t *sip = osip_parse(data, len);
    if (sip == NULL)
        return NULL;
    osip_via_t *via;
    osip_cseq_t *cseq = osip_message_get_cseq(sip);
    if (osip_message_get_via(sip, 0, &via) < 0 || sip->from == NULL || sip->to == NULL ||
        sip->call_id == NULL || cseq == NULL || cseq->number == NULL || cseq->method == NULL ||
        (MSG_IS_REQUEST(sip) && (sip->sip_method == NULL || sip->req_uri == NULL ||
                                 strcmp(sip->sip_method, cseq->method) != 0))) {
        osip_message_free(sip);
        return NULL;
    }
    return sip;
}

static void osip_release(void *h)
{
    osip_message_free(h);
}

const bench_peer bench_peer_osip = {
    "osip2",
    "osip_message_parse (known headers parsed eagerly) + mandatory-header and CSeq checks",
    osip_init,
    osip_parse_read,
    osip_parse_validate,
    osip_release,
};
