/*
 * Status codes: the IANA "Response Codes" registry of the SIP parameters
 * (RFC 3261 §27.4 and the RFCs that added codes since), with the reason
 * phrase each defining RFC gives and a one-sentence meaning.
 *
 * Lookup is O(1): a byte per code of 100..699 holds the index of its entry
 * (plus one; 0 = not registered). Both tables come from STATUS_MAP below, so
 * they cannot disagree; docs/status-codes.md is checked against this table
 * by tests/unit/test_status.c.
 */
#include "csip/msg.h"

/* XX(code, reason, rfc, meaning), in code order. */
/* clang-format off */
#define STATUS_MAP(XX)                                                                           \
    /* 1xx */                                                                                    \
    XX(100, "Trying", "RFC 3261",                                                                \
       "The next hop has received the request and is working on it; it stops the client's "      \
       "retransmissions but says nothing about the callee.")                                     \
    XX(180, "Ringing", "RFC 3261",                                                               \
       "The callee's user agent has found the user and is alerting them.")                       \
    XX(181, "Call Is Being Forwarded", "RFC 3261",                                               \
       "A server is redirecting the call to one or more other destinations.")                    \
    XX(182, "Queued", "RFC 3261",                                                                \
       "The callee cannot take the call now and has put it in a queue instead of rejecting it.") \
    XX(183, "Session Progress", "RFC 3261",                                                      \
       "Carries information about the progress of the call not otherwise classified, often "     \
       "with early media.")                                                                      \
    XX(199, "Early Dialog Terminated", "RFC 6228",                                               \
       "An early dialog created by a forked request has ended before any final response was "    \
       "sent.")                                                                                  \
    /* 2xx */                                                                                    \
    XX(200, "OK", "RFC 3261", "The request has succeeded.")                                      \
    XX(202, "Accepted", "RFC 3265/6665",                                                         \
       "The request was accepted for later processing; RFC 6665 deprecates it in favour of "     \
       "200.")                                                                                   \
    XX(204, "No Notification", "RFC 5839",                                                       \
       "The subscription succeeded but no NOTIFY will follow because the subscriber already "    \
       "holds the current state.")                                                               \
    /* 3xx */                                                                                    \
    XX(300, "Multiple Choices", "RFC 3261",                                                      \
       "The target resolves to several addresses, listed in Contact, and the caller may pick "   \
       "one.")                                                                                   \
    XX(301, "Moved Permanently", "RFC 3261",                                                     \
       "The user is no longer at this address; the caller should use the Contact address from "  \
       "now on.")                                                                                \
    XX(302, "Moved Temporarily", "RFC 3261",                                                     \
       "The user can be reached for now at the address given in Contact.")                       \
    XX(305, "Use Proxy", "RFC 3261",                                                             \
       "The resource must be reached through the proxy named in Contact.")                       \
    XX(380, "Alternative Service", "RFC 3261",                                                   \
       "The call failed, but other services described in the body may be tried.")               \
    /* 4xx */                                                                                    \
    XX(400, "Bad Request", "RFC 3261",                                                           \
       "The request could not be understood because of malformed syntax.")                       \
    XX(401, "Unauthorized", "RFC 3261",                                                          \
       "The request needs user authentication; a WWW-Authenticate challenge is included.")       \
    XX(402, "Payment Required", "RFC 3261", "Reserved for future use.")                          \
    XX(403, "Forbidden", "RFC 3261",                                                             \
       "The server understood the request but refuses it, and authenticating will not help.")    \
    XX(404, "Not Found", "RFC 3261",                                                             \
       "The user does not exist in the domain of the Request-URI.")                              \
    XX(405, "Method Not Allowed", "RFC 3261",                                                    \
       "The method is understood but not allowed for this address; Allow lists the ones that "   \
       "are.")                                                                                   \
    XX(406, "Not Acceptable", "RFC 3261",                                                        \
       "The resource can only produce content that the Accept headers of the request exclude.")  \
    XX(407, "Proxy Authentication Required", "RFC 3261",                                         \
       "A proxy requires the client to authenticate; a Proxy-Authenticate challenge is "         \
       "included.")                                                                              \
    XX(408, "Request Timeout", "RFC 3261",                                                       \
       "No final response could be produced in time, for instance because the user was not "     \
       "found soon enough.")                                                                     \
    XX(410, "Gone", "RFC 3261",                                                                  \
       "The user used to be reachable here but no longer is, and no forwarding address is "      \
       "known.")                                                                                 \
    XX(412, "Conditional Request Failed", "RFC 3903",                                            \
       "The entity-tag in SIP-If-Match of a PUBLISH does not match any event state the server "  \
       "holds.")                                                                                 \
    XX(413, "Request Entity Too Large", "RFC 3261",                                              \
       "The request body is larger than the server is willing to process.")                      \
    XX(414, "Request-URI Too Long", "RFC 3261",                                                  \
       "The Request-URI is longer than the server is willing to interpret.")                     \
    XX(415, "Unsupported Media Type", "RFC 3261",                                                \
       "The body's type, encoding or language is not supported; Accept and related headers "     \
       "say what is.")                                                                           \
    XX(416, "Unsupported URI Scheme", "RFC 3261",                                                \
       "The scheme of the Request-URI is not one the server knows.")                             \
    XX(417, "Unknown Resource-Priority", "RFC 4412",                                             \
       "The request required a Resource-Priority namespace or value that the server does not "   \
       "understand.")                                                                            \
    XX(420, "Bad Extension", "RFC 3261",                                                         \
       "An option tag in Require or Proxy-Require is not supported; Unsupported lists it.")      \
    XX(421, "Extension Required", "RFC 3261",                                                    \
       "The server needs an extension, listed in Require, that the request did not offer.")      \
    XX(422, "Session Interval Too Small", "RFC 4028",                                            \
       "The session refresh interval asked for is below the minimum given in Min-SE.")           \
    XX(423, "Interval Too Brief", "RFC 3261",                                                    \
       "The expiration time asked for is too short; Min-Expires gives the shortest accepted.")   \
    XX(424, "Bad Location Information", "RFC 6442",                                              \
       "The location information carried with the request was malformed or unsuitable.")        \
    XX(425, "Bad Alert Message", "RFC 8876",                                                     \
       "The alert message body of a non-interactive emergency call could not be processed.")     \
    XX(428, "Use Identity Header", "RFC 8224",                                                   \
       "The server will only accept the request with a valid Identity header field.")            \
    XX(429, "Provide Referrer Identity", "RFC 3892",                                             \
       "The REFER recipient wants a valid Referred-By token from the referrer.")                 \
    XX(430, "Flow Failed", "RFC 5626",                                                           \
       "An edge proxy could not use the flow to the user agent that the request was routed "     \
       "over.")                                                                                  \
    XX(433, "Anonymity Disallowed", "RFC 5079",                                                  \
       "The server refuses anonymous requests and the caller did not reveal an identity.")       \
    XX(436, "Bad Identity Info", "RFC 8224",                                                     \
       "The credential reference in the Identity header could not be used or dereferenced.")     \
    XX(437, "Unsupported Credential", "RFC 8224",                                                \
       "The verifier cannot validate the credential that signed the Identity header.")           \
    XX(438, "Invalid Identity Header", "RFC 8224",                                               \
       "The signature in the Identity header does not verify against the request.")             \
    XX(439, "First Hop Lacks Outbound Support", "RFC 5626",                                      \
       "The registrar supports outbound but the first-hop proxy on the path does not.")          \
    XX(440, "Max-Breadth Exceeded", "RFC 5393",                                                  \
       "Parallel forking would go beyond the limit that Max-Breadth allows.")                    \
    XX(469, "Bad Info Package", "RFC 6086",                                                      \
       "The INFO request carries an Info Package that the receiver did not agree to accept.")    \
    XX(470, "Consent Needed", "RFC 5360",                                                        \
       "A relay needs the target's permission before it will forward the request.")              \
    XX(480, "Temporarily Unavailable", "RFC 3261",                                               \
       "The callee was reached but cannot take requests right now, for instance because they "   \
       "are away.")                                                                              \
    XX(481, "Call/Transaction Does Not Exist", "RFC 3261",                                       \
       "The request matched no dialog or transaction that the server knows.")                    \
    XX(482, "Loop Detected", "RFC 3261", "The server saw the same request come back to it.")     \
    XX(483, "Too Many Hops", "RFC 3261",                                                         \
       "Max-Forwards reached zero before the request arrived at its target.")                    \
    XX(484, "Address Incomplete", "RFC 3261",                                                    \
       "The Request-URI is incomplete, like a number missing digits.")                           \
    XX(485, "Ambiguous", "RFC 3261",                                                             \
       "The Request-URI matches several users; Contact may list the candidates.")                \
    XX(486, "Busy Here", "RFC 3261",                                                             \
       "The callee is reachable but not willing to take more calls at this end system.")         \
    XX(487, "Request Terminated", "RFC 3261",                                                    \
       "The request was ended by a BYE or CANCEL before it completed.")                          \
    XX(488, "Not Acceptable Here", "RFC 3261",                                                   \
       "Some aspect of the session description, such as media or codecs, is not acceptable at "  \
       "this endpoint.")                                                                         \
    XX(489, "Bad Event", "RFC 3265/6665",                                                        \
       "The event package named in the SUBSCRIBE or NOTIFY is not understood.")                  \
    XX(491, "Request Pending", "RFC 3261",                                                       \
       "Another request of the same dialog is still pending, such as crossing re-INVITEs.")      \
    XX(493, "Undecipherable", "RFC 3261",                                                        \
       "The request has an encrypted body that the server has no suitable key to decrypt.")      \
    XX(494, "Security Agreement Required", "RFC 3329",                                           \
       "The server requires a security mechanism to be negotiated; Security-Server lists the "   \
       "choices.")                                                                               \
    /* 5xx */                                                                                    \
    XX(500, "Server Internal Error", "RFC 3261",                                                 \
       "An unexpected condition kept the server from completing the request.")                   \
    XX(501, "Not Implemented", "RFC 3261",                                                       \
       "The server does not support the method or function the request needs.")                 \
    XX(502, "Bad Gateway", "RFC 3261",                                                           \
       "A gateway or proxy got an invalid response from the server downstream.")                 \
    XX(503, "Service Unavailable", "RFC 3261",                                                   \
       "The server is overloaded or in maintenance for now; Retry-After may say when to come "   \
       "back.")                                                                                  \
    XX(504, "Server Time-out", "RFC 3261",                                                       \
       "The server got no timely answer from another server it contacted to handle the request.") \
    XX(505, "Version Not Supported", "RFC 3261",                                                 \
       "The server does not support the SIP version of the request.")                            \
    XX(513, "Message Too Large", "RFC 3261",                                                     \
       "The message is longer than the server can process.")                                     \
    XX(555, "Push Notification Service Not Supported", "RFC 8599",                               \
       "The proxy does not support the push notification service named in the REGISTER.")       \
    XX(580, "Precondition Failure", "RFC 3312",                                                  \
       "The session cannot be set up because its preconditions cannot be met.")                  \
    /* 6xx */                                                                                    \
    XX(600, "Busy Everywhere", "RFC 3261",                                                       \
       "The callee is busy and knows that no other endpoint of theirs would take the call.")     \
    XX(603, "Decline", "RFC 3261",                                                               \
       "The callee was reached but explicitly does not want to take part.")                      \
    XX(604, "Does Not Exist Anywhere", "RFC 3261",                                               \
       "The server knows with authority that the user of the Request-URI exists nowhere.")       \
    XX(606, "Not Acceptable", "RFC 3261",                                                        \
       "The callee was reached but no part of the proposed session is acceptable to them.")      \
    XX(607, "Unwanted", "RFC 8197",                                                              \
       "The called party did not want this call and marks it as unwanted, such as a nuisance "   \
       "call.")                                                                                  \
    XX(608, "Rejected", "RFC 8688",                                                              \
       "An intermediary, not the callee, rejected the call, typically from call analytics.")

/* clang-format on */

/* Index of each code in the table, in the same order. */
enum {
#define STATUS_INDEX(code, reason, rfc, meaning) STATUS_IDX_##code,
    STATUS_MAP(STATUS_INDEX)
#undef STATUS_INDEX
        STATUS_COUNT
};
_Static_assert(STATUS_COUNT == 75, "the IANA registry has 75 response codes");
_Static_assert(STATUS_COUNT < 256, "status_index holds indices in a byte");

static const csip_status_info status_table[STATUS_COUNT] = {
#define STATUS_ENTRY(code, reason, rfc, meaning) {code, reason, rfc, meaning},
    STATUS_MAP(STATUS_ENTRY)
#undef STATUS_ENTRY
};

/* code - 100 -> index + 1 in status_table; 0 = not registered. */
static const uint8_t status_index[600] = {
#define STATUS_SLOT(code, reason, rfc, meaning) [(code)-100] = STATUS_IDX_##code + 1,
    STATUS_MAP(STATUS_SLOT)
#undef STATUS_SLOT
};

static const char *const class_names[7] = {
    "",
    "Provisional",
    "Successful",
    "Redirection",
    "Request Failure",
    "Server Failure",
    "Global Failure",
};

const csip_status_info *csip_status_lookup(int code)
{
    if (code < 100 || code > 699)
        return NULL;
    unsigned i = status_index[code - 100];
    return i ? &status_table[i - 1] : NULL;
}

const csip_status_info *csip_status_table(size_t *count)
{
    if (count)
        *count = STATUS_COUNT;
    return status_table;
}

int csip_status_class(int code)
{
    if (code < 100 || code > 699)
        return 0;
    return code / 100;
}

int csip_status_effective(int code)
{
    if (code < 100 || code > 699)
        return 0;
    if (status_index[code - 100])
        return code;
    /* RFC 3261 §8.1.3.2: an unrecognized final response counts as x00 of its
     * class (every x00 is registered), an unrecognized provisional one as 183
     * Session Progress, not as 100: 100 is hop-by-hop and never creates an
     * early dialog, so acting on it would lose the response. */
    if (code < 200)
        return 183;
    return code / 100 * 100;
}

const char *csip_status_reason(int code)
{
    /* The x00 phrase of the class for an unregistered code, 1xx included:
     * a label for the class, not the code to act on. */
    if (code < 100 || code > 699)
        return "";
    unsigned i = status_index[code - 100];
    if (!i)
        i = status_index[code / 100 * 100 - 100];
    return status_table[i - 1].reason;
}

const char *csip_status_class_name(int cls)
{
    if (cls < 1 || cls > 6)
        return "";
    return class_names[cls];
}
