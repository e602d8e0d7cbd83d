/*
 * belle-sip through its public API.
 *   belle_sip_message_parse_raw() runs the ANTLR grammar over the start line
 *   and every header: each header it knows becomes a typed object (URIs and
 *   parameters parsed), the others are kept as name/value headers. It stops
 *   at the end of the header section and says where; the body is attached
 *   with belle_sip_message_set_body(), as belle-sip's own channels do.
 *   parse+read:     that parse, then the typed header objects.
 *   parse+validate: the same parse, then belle_sip_message_check_headers()
 *                   (the mandatory headers are present) and, for requests,
 *                   belle_sip_request_check_uris_components() and the check
 *                   belle-sip leaves to its user: the CSeq method equals the
 *                   request method.
 */
#include "peer.h"

#include <string.h>

#include <belle-sip/belle-sip.h>

static int belle_init(void)
{
    belle_sip_set_log_level(BELLE_SIP_LOG_FATAL);
    return 0;
}

static belle_sip_message_t *belle_parse(const char *data, size_t len)
{
    size_t used = 0;
    belle_sip_message_t *msg = belle_sip_message_parse_raw(data, len, &used);
    if (msg == NULL)
        return NULL;
    belle_sip_object_ref(msg);
    if (used < len)
        belle_sip_message_set_body(msg, data + used, len - used);
    return msg;
}

static void *belle_parse_read(const char *data, size_t len, bench_fields *f)
{
    belle_sip_message_t *msg = belle_parse(data, len);
    if (msg == NULL)
        return NULL;
    belle_sip_header_via_t *via = belle_sip_message_get_header_by_type(msg, belle_sip_header_via_t);
    belle_sip_header_from_t *from =
        belle_sip_message_get_header_by_type(msg, belle_sip_header_from_t);
    belle_sip_header_to_t *to = belle_sip_message_get_header_by_type(msg, belle_sip_header_to_t);
    belle_sip_header_call_id_t *call_id =
        belle_sip_message_get_header_by_type(msg, belle_sip_header_call_id_t);
    belle_sip_header_cseq_t *cseq =
        belle_sip_message_get_header_by_type(msg, belle_sip_header_cseq_t);
    belle_sip_header_contact_t *contact =
        belle_sip_message_get_header_by_type(msg, belle_sip_header_contact_t);
    if (via == NULL || from == NULL || to == NULL || call_id == NULL || cseq == NULL) {
        belle_sip_object_unref(msg);
        return NULL;
    }
    f->branch = bench_view_c(belle_sip_header_via_get_branch(via));
    f->from_tag = bench_view_c(belle_sip_header_from_get_tag(from));
    f->to_tag = bench_view_c(belle_sip_header_to_get_tag(to));
    f->call_id = bench_view_c(belle_sip_header_call_id_get_call_id(call_id));
    f->call_id_host = (bench_view){NULL, 0};
    f->cseq = belle_sip_header_cseq_get_seq_number(cseq);
    f->cseq_method = bench_view_c(belle_sip_header_cseq_get_method(cseq));
    f->contact_host = (bench_view){NULL, 0};
    if (contact != NULL) {
        belle_sip_uri_t *uri = belle_sip_header_address_get_uri(BELLE_SIP_HEADER_ADDRESS(contact));
        if (uri == NULL) {
            belle_sip_object_unref(msg);
            return NULL;
        }
        f->contact_host = bench_view_c(belle_sip_uri_get_host(uri));
    }
    return msg;
}

static void *belle_parse_validate(const char *data, size_t len)
{
    belle_sip_message_t *msg = belle_parse(data, len);
    if (msg == NULL)
        return NULL;
    int ok = belle_sip_message_check_headers(msg);
    if (ok && belle_sip_message_is_request(msg)) {
        belle_sip_request_t *req = BELLE_SIP_REQUEST(msg);
        belle_sip_header_cseq_t *cseq =
            belle_sip_message_get_header_by_type(msg, belle_sip_header_cseq_t);
        const char *method = belle_sip_request_get_method(req);
        const char *cseq_method = cseq ? belle_sip_header_cseq_get_method(cseq) : NULL;
        ok = belle_sip_request_check_uris_components(req) && method && cseq_method &&
             strcmp(method, cseq_method) == 0;
    }
    if (!ok) {
        belle_sip_object_unref(msg);
        return NULL;
    }
    return msg;
}

static void belle_release(void *h)
{
    belle_sip_object_unref(h);
}

const bench_peer bench_peer_belle = {
    "belle-sip",
    "belle_sip_message_parse_raw (every known header parsed to an object) + "
    "belle_sip_message_check_headers + belle_sip_request_check_uris_components + CSeq check",
    belle_init,
    belle_parse_read,
    belle_parse_validate,
    belle_release,
};
