/*
 * csip through its public API (include/csip/msg.h).
 *   parse+read:     csip_msg_parse, then the typed accessors (each parses only
 *                   the header it is asked for).
 *   parse+validate: csip_msg_parse then csip_msg_validate (every known header
 *                   value parsed, mandatory headers, CSeq method, URIs).
 */
#include "peer.h"

#include "csip/msg.h"

static bench_view view(csip_str s)
{
    return (bench_view){s.p, s.len};
}

static int csip_init(void)
{
    return 0;
}

static void *csip_parse_read(const char *data, size_t len, bench_fields *f)
{
    csip_msg *msg = NULL;
    csip_parse_error err;
    if (csip_msg_parse(data, len, NULL, &msg, &err) != 0)
        goto fail;

    const csip_via *via;
    const csip_nameaddr *from, *to, *contacts;
    const csip_cseq *cseq;
    csip_str call_id;
    size_t n_contacts;
    if (csip_msg_via(msg, 0, &via) != 0 || csip_msg_from(msg, &from) != 0 ||
        csip_msg_to(msg, &to) != 0 || csip_msg_call_id(msg, &call_id) != 0 ||
        csip_msg_cseq(msg, &cseq) != 0 ||
        csip_msg_nameaddrs(msg, CSIP_HDR_CONTACT, &contacts, &n_contacts) != 0)
        goto fail;
    f->branch = view(via->branch);
    f->from_tag = view(from->tag);
    f->to_tag = view(to->tag);
    f->call_id = view(call_id);
    f->call_id_host = (bench_view){NULL, 0};
    f->cseq = cseq->number;
    f->cseq_method = view(cseq->method);
    f->contact_host = n_contacts ? view(contacts[0].uri.host) : (bench_view){NULL, 0};
    return msg;
fail:
    csip_msg_free(msg);
    return NULL;
}

static void *csip_parse_validate(const char *data, size_t len)
{
    csip_msg *msg = NULL;
    csip_parse_error err;
    if (csip_msg_parse(data, len, NULL, &msg, &err) != 0 || csip_msg_validate(msg, &err) != 0) {
        csip_msg_free(msg);
        return NULL;
    }
    return msg;
}

static void csip_release(void *h)
{
    csip_msg_free(h);
}

const bench_peer bench_peer_csip = {
    "csip",
    "csip_msg_parse + csip_msg_validate: every known header value parsed, mandatory headers",
    csip_init,
    csip_parse_read,
    csip_parse_validate,
    csip_release,
};
