/*
 * csip — the message layer: status codes, methods, header names, the parsed
 * message, typed header values, validation and role checks, editing, printing
 * and builders.
 *
 * Threading: a csip_msg is confined to one thread at a time. Its typed
 * accessors cache their result inside the message, so even "const" reads
 * must not run concurrently on the same message. The tables (status codes,
 * methods, header names) are static and may be read from any thread.
 */
#ifndef CSIP_MSG_H
#define CSIP_MSG_H

#include "csip/base.h"
#include "csip/limits.h"
#include "csip/uri.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Status codes                                                               */

/**
 * One entry of the IANA SIP response-code registry.
 * @since 0.1
 */
typedef struct csip_status_info {
    uint16_t code;
    const char *reason;  /**< the reason phrase of the defining RFC */
    const char *rfc;     /**< e.g. "RFC 3261" */
    const char *meaning; /**< one sentence */
} csip_status_info;

/** The registry entry for code, or NULL when the code is not registered. */
CSIP_EXTERN const csip_status_info *csip_status_lookup(int code);
/** The whole registry in code order; *count receives the number of entries. */
CSIP_EXTERN const csip_status_info *csip_status_table(size_t *count);
/** The class of a code: 1..6, or 0 outside 100..699. */
CSIP_EXTERN int csip_status_class(int code);
/**
 * The code to act on (RFC 3261 §8.1.3.2): the code itself when registered;
 * for an unregistered final code, x00 of its class (499 → 400); for an
 * unregistered provisional code, 183 (RFC 3261 §8.1.3.2); 0 outside 100..699.
 */
CSIP_EXTERN int csip_status_effective(int code);
/** The reason phrase of code, of x00 of its class when unregistered, "" outside 100..699. */
CSIP_EXTERN const char *csip_status_reason(int code);
/** The name of a class, "Provisional" … "Global Failure", or "" outside 1..6. */
CSIP_EXTERN const char *csip_status_class_name(int cls);

/* ------------------------------------------------------------------------- */
/* Methods                                                                    */

/** The 14 methods of the IANA registry. Method names compare case-sensitively. */
typedef enum csip_method {
    CSIP_METHOD_OTHER = 0, /**< an extension method (any token) */
    CSIP_METHOD_ACK,
    CSIP_METHOD_BYE,
    CSIP_METHOD_CANCEL,
    CSIP_METHOD_INFO,
    CSIP_METHOD_INVITE,
    CSIP_METHOD_MESSAGE,
    CSIP_METHOD_NOTIFY,
    CSIP_METHOD_OPTIONS,
    CSIP_METHOD_PRACK,
    CSIP_METHOD_PUBLISH,
    CSIP_METHOD_REFER,
    CSIP_METHOD_REGISTER,
    CSIP_METHOD_SUBSCRIBE,
    CSIP_METHOD_UPDATE,
    CSIP_METHOD__COUNT
} csip_method;

/** The method for a name (case-sensitive); CSIP_METHOD_OTHER when not registered. */
CSIP_EXTERN csip_method csip_method_lookup(csip_str name);
/** The name of a registered method, "" for CSIP_METHOD_OTHER. Static. */
CSIP_EXTERN const char *csip_method_name(csip_method m);
/** True when s is a non-empty token (RFC 3261 §25.1), i.e. a valid method name. */
CSIP_EXTERN bool csip_is_token(csip_str s);

/* ------------------------------------------------------------------------- */
/* Header names                                                               */

/**
 * Known header names. Lookup is case-insensitive and knows compact forms.
 * The numeric values are part of the ABI: new names are added at the end.
 */
#define CSIP_HDR_MAP(XX)                                                                         \
    XX(VIA, "Via", 'v')                                                                          \
    XX(FROM, "From", 'f')                                                                        \
    XX(TO, "To", 't')                                                                            \
    XX(CALL_ID, "Call-ID", 'i')                                                                  \
    XX(CSEQ, "CSeq", 0)                                                                          \
    XX(MAX_FORWARDS, "Max-Forwards", 0)                                                          \
    XX(CONTACT, "Contact", 'm')                                                                  \
    XX(CONTENT_LENGTH, "Content-Length", 'l')                                                    \
    XX(CONTENT_TYPE, "Content-Type", 'c')                                                        \
    XX(CONTENT_ENCODING, "Content-Encoding", 'e')                                                \
    XX(CONTENT_DISPOSITION, "Content-Disposition", 0)                                            \
    XX(CONTENT_LANGUAGE, "Content-Language", 0)                                                  \
    XX(EXPIRES, "Expires", 0)                                                                    \
    XX(MIN_EXPIRES, "Min-Expires", 0)                                                            \
    XX(ROUTE, "Route", 0)                                                                        \
    XX(RECORD_ROUTE, "Record-Route", 0)                                                          \
    XX(REQUIRE, "Require", 0)                                                                    \
    XX(SUPPORTED, "Supported", 'k')                                                              \
    XX(PROXY_REQUIRE, "Proxy-Require", 0)                                                        \
    XX(UNSUPPORTED, "Unsupported", 0)                                                            \
    XX(ALLOW, "Allow", 0)                                                                        \
    XX(ACCEPT, "Accept", 0)                                                                      \
    XX(ACCEPT_ENCODING, "Accept-Encoding", 0)                                                    \
    XX(ACCEPT_LANGUAGE, "Accept-Language", 0)                                                    \
    XX(ALERT_INFO, "Alert-Info", 0)                                                              \
    XX(AUTHENTICATION_INFO, "Authentication-Info", 0)                                            \
    XX(AUTHORIZATION, "Authorization", 0)                                                        \
    XX(CALL_INFO, "Call-Info", 0)                                                                \
    XX(DATE, "Date", 0)                                                                          \
    XX(ERROR_INFO, "Error-Info", 0)                                                              \
    XX(IN_REPLY_TO, "In-Reply-To", 0)                                                            \
    XX(MIME_VERSION, "MIME-Version", 0)                                                          \
    XX(ORGANIZATION, "Organization", 0)                                                          \
    XX(PRIORITY, "Priority", 0)                                                                  \
    XX(PROXY_AUTHENTICATE, "Proxy-Authenticate", 0)                                              \
    XX(PROXY_AUTHORIZATION, "Proxy-Authorization", 0)                                            \
    XX(REPLY_TO, "Reply-To", 0)                                                                  \
    XX(RETRY_AFTER, "Retry-After", 0)                                                            \
    XX(SERVER, "Server", 0)                                                                      \
    XX(SUBJECT, "Subject", 's')                                                                  \
    XX(TIMESTAMP, "Timestamp", 0)                                                                \
    XX(USER_AGENT, "User-Agent", 0)                                                              \
    XX(WARNING, "Warning", 0)                                                                    \
    XX(WWW_AUTHENTICATE, "WWW-Authenticate", 0)                                                  \
    XX(RACK, "RAck", 0)                                                                          \
    XX(RSEQ, "RSeq", 0)                                                                          \
    XX(EVENT, "Event", 'o')                                                                      \
    XX(ALLOW_EVENTS, "Allow-Events", 'u')                                                        \
    XX(SUBSCRIPTION_STATE, "Subscription-State", 0)                                              \
    XX(REFER_TO, "Refer-To", 'r')                                                                \
    XX(REFERRED_BY, "Referred-By", 'b')                                                          \
    XX(REPLACES, "Replaces", 0)                                                                  \
    XX(SESSION_EXPIRES, "Session-Expires", 'x')                                                  \
    XX(MIN_SE, "Min-SE", 0)                                                                      \
    XX(PATH, "Path", 0)                                                                          \
    XX(SERVICE_ROUTE, "Service-Route", 0)                                                        \
    XX(P_ASSERTED_IDENTITY, "P-Asserted-Identity", 0)                                            \
    XX(P_PREFERRED_IDENTITY, "P-Preferred-Identity", 0)                                          \
    XX(PRIVACY, "Privacy", 0)                                                                    \
    XX(REASON, "Reason", 0)                                                                      \
    XX(IDENTITY, "Identity", 'y')                                                                \
    XX(IDENTITY_INFO, "Identity-Info", 0)                                                        \
    XX(SIP_ETAG, "SIP-ETag", 0)                                                                  \
    XX(SIP_IF_MATCH, "SIP-If-Match", 0)                                                          \
    XX(HISTORY_INFO, "History-Info", 0)                                                          \
    XX(DIVERSION, "Diversion", 0)                                                                \
    XX(SECURITY_CLIENT, "Security-Client", 0)                                                    \
    XX(SECURITY_SERVER, "Security-Server", 0)                                                    \
    XX(SECURITY_VERIFY, "Security-Verify", 0)                                                    \
    XX(ACCEPT_CONTACT, "Accept-Contact", 'a')                                                    \
    XX(REJECT_CONTACT, "Reject-Contact", 'j')                                                    \
    XX(REQUEST_DISPOSITION, "Request-Disposition", 'd')                                          \
    XX(TARGET_DIALOG, "Target-Dialog", 0)                                                        \
    XX(REFER_SUB, "Refer-Sub", 0)                                                                \
    XX(FLOW_TIMER, "Flow-Timer", 0)

typedef enum csip_hdr_id {
    CSIP_HDR_OTHER = 0, /**< any header not listed in CSIP_HDR_MAP */
#define CSIP__HDR_ENUM(id, name, compact) CSIP_HDR_##id,
    CSIP_HDR_MAP(CSIP__HDR_ENUM)
#undef CSIP__HDR_ENUM
        CSIP_HDR__COUNT
} csip_hdr_id;

/** The id of a header name (case-insensitive, compact forms too); CSIP_HDR_OTHER if unknown. */
CSIP_EXTERN csip_hdr_id csip_hdr_lookup(const char *name, size_t len);
/** The canonical (long) name of a header id, "" for CSIP_HDR_OTHER. Static. */
CSIP_EXTERN const char *csip_hdr_name(csip_hdr_id id);
/** The compact form of a header id, or 0 when it has none. */
CSIP_EXTERN char csip_hdr_compact(csip_hdr_id id);

/* ------------------------------------------------------------------------- */
/* Parse errors                                                               */

/**
 * What went wrong in a parse, where, and how a server should answer.
 * @since 0.1
 */
typedef struct csip_parse_error {
    int code;           /**< a csip_err value */
    size_t offset;      /**< byte offset into the input */
    uint32_t line;      /**< 1-based line of the fault */
    uint32_t column;    /**< 1-based column (byte) */
    csip_str header;    /**< name of the header at fault, as written (absent if none);
                             borrowed: it points into the message while it lives, or into
                             the caller's input (stream framing), never into freed memory */
    int status;         /**< the response a server should send: 400, 505, 513, …; 0 = none */
    const char *reason; /**< reason phrase for that response, naming the fault. Static. */
} csip_parse_error;

/* ------------------------------------------------------------------------- */
/* The message                                                                */

/** A parsed SIP message (opaque). Free with csip_msg_free(). */
typedef struct csip_msg csip_msg;

/**
 * One header line. name and value are views into the message buffer; value
 * has leading and trailing whitespace removed and may span folded lines
 * (CRLF followed by whitespace), which typed parsers read as whitespace.
 * Pointers to csip_hdr are borrowed, valid until the message is edited or freed.
 */
typedef struct csip_hdr {
    csip_str name;
    csip_str value;
    csip_str raw; /**< the whole line from name to the end of its line break */
    uint16_t id;  /**< csip_hdr_id */
    uint16_t flags;
} csip_hdr;

/** Parse options. A NULL pointer means all defaults. */
typedef struct csip_parse_opts {
    csip_limits limits;
    const csip_mem *mem;
} csip_parse_opts;

/**
 * Parses one message received as a datagram (RFC 3261 §18.3): octets after the
 * body that Content-Length announces are ignored; with no Content-Length the
 * body is the rest of the datagram. The input is copied into the message, so
 * the caller's buffer may be reused at once.
 *
 * Parsing splits the start line and every header (with its known-name id) in
 * one pass and frames the body. Header values are parsed on first access.
 *
 * @param out set to the new message (owned: free with csip_msg_free()). On an
 *        error it is still set when the message could be split into a start
 *        line and headers, so that a server can answer err->status; it is
 *        NULL when nothing usable was found.
 * @return 0; CSIP_ERR_NOMEM; a CSIP_ERR_PARSE_* or CSIP_ERR_LIMIT_* code with *err filled.
 */
CSIP_EXTERN int csip_msg_parse(const void *data, size_t len, const csip_parse_opts *opts,
                               csip_msg **out, csip_parse_error *err);

/**
 * Like csip_msg_parse(), but takes ownership of `data`, which must have been
 * allocated with the same csip_mem (opts->mem, or libc malloc), and does not
 * copy it: the message frees it. On every return the buffer belongs to the
 * library.
 */
CSIP_EXTERN int csip_msg_parse_take(void *data, size_t len, const csip_parse_opts *opts,
                                    csip_msg **out, csip_parse_error *err);

/** Frees a message and everything parsed from it. NULL is a no-op. */
CSIP_EXTERN void csip_msg_free(csip_msg *msg);

/**
 * Stream framing state (TCP, TLS, WebSocket-less streams): caller-owned, zero
 * it with csip_stream_init() before the first call and after each message.
 */
typedef struct csip_stream {
    size_t scanned;      /**< bytes already searched for the end of the header section */
    size_t hdr_end;      /**< offset just past the empty line, 0 while not found */
    size_t line_start;   /**< start of the header line being scanned */
    size_t content_length;
    uint32_t headers;    /**< header lines counted so far */
    uint8_t cl_seen;     /**< Content-Length headers seen */
    uint8_t state;
} csip_stream;

/** Resets stream framing state. */
CSIP_EXTERN void csip_stream_init(csip_stream *st);

/**
 * Frames the next message in a byte stream. buf holds the unconsumed bytes,
 * starting where the previous message ended; call again with the same bytes
 * plus new ones: scanning resumes where it stopped. RFC 5626 keep-alives
 * (CRLF) before a message are skipped.
 *
 * @param skip set to the number of leading keep-alive octets to discard
 *        (also on CSIP_ERR_INCOMPLETE; discard them and adjust buf).
 * @param msg_len set to the length of the message that follows the skipped octets.
 * @return 0 when a whole message is at buf + *skip; CSIP_ERR_INCOMPLETE when
 *         more bytes are needed; otherwise a framing error (missing or invalid
 *         Content-Length, a limit, a malformed header line) after which the
 *         stream must be closed; *err says why.
 */
CSIP_EXTERN int csip_stream_frame(csip_stream *st, const void *buf, size_t len,
                                  const csip_limits *limits, size_t *skip, size_t *msg_len,
                                  csip_parse_error *err);

/**
 * Parses a message framed by csip_stream_frame(): like csip_msg_parse() but
 * Content-Length is mandatory and must equal the body length.
 */
CSIP_EXTERN int csip_msg_parse_stream(const void *data, size_t len, const csip_parse_opts *opts,
                                      csip_msg **out, csip_parse_error *err);

/* Start line. */
CSIP_EXTERN bool csip_msg_is_request(const csip_msg *msg);
/** Request method id (CSIP_METHOD_OTHER for extensions); responses: the CSeq method id. */
CSIP_EXTERN csip_method csip_msg_method(const csip_msg *msg);
/** Request method as written (absent for responses). */
CSIP_EXTERN csip_str csip_msg_method_name(const csip_msg *msg);
/** The Request-URI text (absent for responses). */
CSIP_EXTERN csip_str csip_msg_ruri_raw(const csip_msg *msg);
/**
 * The parsed Request-URI (cached).
 * @return 0; CSIP_ERR_NOT_FOUND for a response; CSIP_ERR_PARSE_URI / CSIP_ERR_LIMIT_URI.
 */
CSIP_EXTERN int csip_msg_ruri(const csip_msg *msg, const csip_uri **out);
/** The SIP-Version as written ("SIP/2.0"). */
CSIP_EXTERN csip_str csip_msg_version(const csip_msg *msg);
/** Response status code (0 for requests). */
CSIP_EXTERN int csip_msg_status(const csip_msg *msg);
/** Response reason phrase as written (may be empty). */
CSIP_EXTERN csip_str csip_msg_reason(const csip_msg *msg);
/** The body (empty view when none). */
CSIP_EXTERN csip_str csip_msg_body(const csip_msg *msg);
/** The bytes the message was parsed from, body included, trailing datagram octets excluded. */
CSIP_EXTERN csip_str csip_msg_raw(const csip_msg *msg);

/* Header lines. */
CSIP_EXTERN size_t csip_msg_hdr_count(const csip_msg *msg);
/** The i-th header line in message order, or NULL past the end. Borrowed. */
CSIP_EXTERN const csip_hdr *csip_msg_hdr_at(const csip_msg *msg, size_t i);
/** The first header line with this id (CSIP_HDR_OTHER is not searchable), or NULL. */
CSIP_EXTERN const csip_hdr *csip_msg_hdr_find(const csip_msg *msg, csip_hdr_id id);
/** The next line with the same id as prev, or NULL. */
CSIP_EXTERN const csip_hdr *csip_msg_hdr_next(const csip_msg *msg, const csip_hdr *prev);
/** The first line whose name matches (case-insensitive; compact forms of known names too). */
CSIP_EXTERN const csip_hdr *csip_msg_hdr_find_name(const csip_msg *msg, csip_str name);
/** Number of lines with this id. */
CSIP_EXTERN size_t csip_msg_hdr_count_id(const csip_msg *msg, csip_hdr_id id);

/* ------------------------------------------------------------------------- */
/* Typed header values. All views point into the message; the structs live in
 * the message's arena (borrowed, valid until the message is edited or freed).
 * Each accessor parses on first use and caches the result, an error included.
 * Accessors return 0, CSIP_ERR_NOT_FOUND when the header is absent, or a parse
 * error (CSIP_ERR_PARSE_HEADER_VALUE, CSIP_ERR_PARSE_URI, CSIP_ERR_PARSE_NUMBER_RANGE …). */

/** One Via value (RFC 3261 §20.42, RFC 3581). */
typedef struct csip_via {
    csip_str raw;
    csip_str protocol;  /**< "SIP" */
    csip_str version;   /**< "2.0" */
    csip_str transport; /**< "UDP", "TCP", "TLS", "SCTP", "WS", or any token */
    csip_str host;      /**< IPv6 with brackets */
    csip_host_type host_type;
    bool has_port;
    uint16_t port;
    csip_str params;    /**< raw, after the first ';' */
    csip_str branch;    /**< absent if no branch */
    csip_str received;
    csip_str maddr;
    csip_str ttl;
    bool has_rport;     /**< rport present, with or without a value */
    bool rport_has_value;
    uint16_t rport;
} csip_via;

/**
 * A name-addr or addr-spec with header parameters: From, To, Contact, Route,
 * Record-Route, Path, Service-Route, Refer-To, Referred-By, Reply-To,
 * P-Asserted-Identity and similar.
 */
typedef struct csip_nameaddr {
    csip_str raw;
    csip_str display; /**< as written, quotes included; absent if none */
    csip_uri uri;
    bool angle;       /**< the URI was in <> (name-addr) */
    bool star;        /**< Contact: '*' */
    csip_str params;  /**< header parameters, raw, after the first ';' */
    csip_str tag;     /**< From/To tag (absent when none) */
    bool has_expires; /**< Contact expires parameter */
    uint32_t expires;
    bool has_q;       /**< Contact q parameter, as thousandths (q=0.5 → 500) */
    uint16_t q;
} csip_nameaddr;

/** CSeq (RFC 3261 §20.16). */
typedef struct csip_cseq {
    uint32_t number;
    csip_str method;
    csip_method method_id;
} csip_cseq;

/** Content-Type (media type, RFC 3261 §20.15). */
typedef struct csip_media_type {
    csip_str type;
    csip_str subtype;
    csip_str params; /**< raw, after the first ';' */
} csip_media_type;

/** A credentials or challenge header (WWW-/Proxy-Authenticate, (Proxy-)Authorization, Authentication-Info). */
typedef struct csip_auth {
    csip_str scheme;  /**< "Digest", or any token (empty for Authentication-Info) */
    csip_str params;  /**< raw comma-separated auth-params */
    /* Well-known parameters; quoted values are given without their quotes
     * (quoted-pairs still escaped). */
    csip_str realm, nonce, opaque, algorithm, qop, stale, domain;
    csip_str username, uri, response, cnonce, nc, userhash;
    csip_str nextnonce, rspauth;
} csip_auth;

/** Event (RFC 6665). */
typedef struct csip_event {
    csip_str package; /**< event-type, e.g. "presence" or "dialog.winfo" */
    csip_str id;
    csip_str params;
} csip_event;

/** Subscription-State (RFC 6665). */
typedef struct csip_substate {
    csip_str state;  /**< active / pending / terminated / extension */
    csip_str reason;
    bool has_expires;
    uint32_t expires;
    bool has_retry_after;
    uint32_t retry_after;
    csip_str params;
} csip_substate;

/** RAck (RFC 3262). */
typedef struct csip_rack {
    uint32_t rseq;
    uint32_t cseq;
    csip_str method;
} csip_rack;

/** Retry-After (RFC 3261 §20.33). */
typedef struct csip_retry_after {
    uint32_t seconds;
    csip_str comment; /**< without parentheses, absent if none */
    bool has_duration;
    uint32_t duration;
    csip_str params;
} csip_retry_after;

/** Date: an RFC 1123 date, GMT only (RFC 3261 §20.17). */
typedef struct csip_date {
    uint16_t year;
    uint8_t month; /**< 1..12 */
    uint8_t day;
    uint8_t hour, minute, second;
    uint8_t wkday; /**< 0 = Mon … 6 = Sun */
    int64_t epoch; /**< seconds since 1970-01-01T00:00:00Z */
} csip_date;

/** Timestamp (RFC 3261 §20.38). */
typedef struct csip_timestamp {
    csip_str value; /**< the time, as written */
    csip_str delay; /**< absent if none */
} csip_timestamp;

/**
 * The i-th Via value, counting every value of every Via line (0 = top).
 * @return 0; CSIP_ERR_NOT_FOUND past the last; a parse error; CSIP_ERR_LIMIT_VIA.
 */
CSIP_EXTERN int csip_msg_via(const csip_msg *msg, size_t i, const csip_via **out);
/** The number of Via values (parses every Via line). */
CSIP_EXTERN int csip_msg_via_count(const csip_msg *msg, size_t *n);
CSIP_EXTERN int csip_msg_from(const csip_msg *msg, const csip_nameaddr **out);
CSIP_EXTERN int csip_msg_to(const csip_msg *msg, const csip_nameaddr **out);
CSIP_EXTERN int csip_msg_call_id(const csip_msg *msg, csip_str *out);
CSIP_EXTERN int csip_msg_cseq(const csip_msg *msg, const csip_cseq **out);
CSIP_EXTERN int csip_msg_max_forwards(const csip_msg *msg, uint32_t *out);
/** Content-Length value (0 when absent on a datagram is NOT assumed: NOT_FOUND). */
CSIP_EXTERN int csip_msg_content_length(const csip_msg *msg, uint32_t *out);
CSIP_EXTERN int csip_msg_content_type(const csip_msg *msg, const csip_media_type **out);
CSIP_EXTERN int csip_msg_expires(const csip_msg *msg, uint32_t *out);
CSIP_EXTERN int csip_msg_min_expires(const csip_msg *msg, uint32_t *out);
CSIP_EXTERN int csip_msg_rseq(const csip_msg *msg, uint32_t *out);
CSIP_EXTERN int csip_msg_rack(const csip_msg *msg, const csip_rack **out);
CSIP_EXTERN int csip_msg_event(const csip_msg *msg, const csip_event **out);
CSIP_EXTERN int csip_msg_subscription_state(const csip_msg *msg, const csip_substate **out);
CSIP_EXTERN int csip_msg_refer_to(const csip_msg *msg, const csip_nameaddr **out);
CSIP_EXTERN int csip_msg_retry_after(const csip_msg *msg, const csip_retry_after **out);
CSIP_EXTERN int csip_msg_date(const csip_msg *msg, const csip_date **out);
CSIP_EXTERN int csip_msg_timestamp(const csip_msg *msg, const csip_timestamp **out);

/**
 * Every value of a comma-separated name-addr list header (Contact, Route,
 * Record-Route, Path, Service-Route, P-Asserted-Identity, …) over all its lines,
 * in order. *out is an array of *n entries (borrowed).
 * @return 0 (with *n = 0 when absent); a parse error; CSIP_ERR_LIMIT_VALUES.
 */
CSIP_EXTERN int csip_msg_nameaddrs(const csip_msg *msg, csip_hdr_id id,
                                   const csip_nameaddr **out, size_t *n);
/**
 * Every token of a comma-separated token-list header (Require, Supported,
 * Proxy-Require, Unsupported, Allow, Allow-Events, Content-Encoding) over
 * all its lines, in order. *out is an array of *n views (borrowed).
 * @return 0 (with *n = 0 when absent); CSIP_ERR_PARSE_HEADER_VALUE;
 *         CSIP_ERR_INVALID_ARG for a header that is not a token list.
 */
CSIP_EXTERN int csip_msg_tokens(const csip_msg *msg, csip_hdr_id id, const csip_str **out,
                                size_t *n);
/**
 * The i-th value of an authentication header (CSIP_HDR_WWW_AUTHENTICATE,
 * CSIP_HDR_AUTHORIZATION, CSIP_HDR_PROXY_AUTHENTICATE, CSIP_HDR_PROXY_AUTHORIZATION,
 * CSIP_HDR_AUTHENTICATION_INFO): one per header line, never comma-split.
 */
CSIP_EXTERN int csip_msg_auth(const csip_msg *msg, csip_hdr_id id, size_t i,
                              const csip_auth **out);

/* Value parsers, for use outside a message. Each parses one value starting at
 * *s and advances *s past it and past a following comma (for lists), so that
 * repeated calls walk a comma-separated header value. On an error the output
 * struct is unspecified. */
CSIP_EXTERN int csip_via_parse(csip_str *s, csip_via *out);
/** flags: CSIP_NAMEADDR_* */
CSIP_EXTERN int csip_nameaddr_parse(csip_str *s, unsigned flags, csip_nameaddr *out);
#define CSIP_NAMEADDR_LIST 1u  /**< stop at a comma outside quotes/brackets (Contact, Route …) */
#define CSIP_NAMEADDR_STAR 2u  /**< accept Contact '*' */
#define CSIP_NAMEADDR_NEED_ANGLE 4u /**< the URI must be in <> (Route, Record-Route, Path) */
CSIP_EXTERN int csip_auth_parse(csip_str value, csip_auth *out);
/** Reads the next auth-param (name=value, value unquoted view) of an auth params list. */
CSIP_EXTERN int csip_auth_param_next(csip_str *rest, csip_param *out);
CSIP_EXTERN int csip_date_parse(csip_str value, csip_date *out);

/* ------------------------------------------------------------------------- */
/* Validation and role checks                                                 */

/**
 * Strict check of the whole message, for elements that must reject malformed
 * requests: start line, every known header value parsed, mandatory headers
 * present (Via, From, To, Call-ID, CSeq; requests and responses) and the
 * single-instance ones single, CSeq method equal to the request method, URIs
 * well formed, Via count within the limit.
 * @return 0, or an error with *err filled (status 400 and a reason naming the fault).
 */
CSIP_EXTERN int csip_msg_validate(const csip_msg *msg, csip_parse_error *err);

/** The role of the element checking a request. */
typedef enum csip_role {
    CSIP_ROLE_UAS = 0,
    CSIP_ROLE_PROXY,
    CSIP_ROLE_REGISTRAR,
} csip_role;

/**
 * What the element supports. NULL pointers mean the defaults: methods = the 14
 * IANA methods, extensions = none, content_types = application/sdp, schemes = sip, sips.
 */
typedef struct csip_check_opts {
    const char *const *methods;       /**< NULL-terminated; a UAS answers 501 for others */
    const char *const *extensions;    /**< NULL-terminated option tags understood */
    const char *const *content_types; /**< NULL-terminated "type/subtype" a UAS accepts */
    const char *const *schemes;       /**< NULL-terminated Request-URI schemes accepted */
    const char *const *allowed;       /**< NULL-terminated methods allowed here (405 otherwise), NULL = all supported */
    csip_limits limits;
} csip_check_opts;

/** Outcome of csip_check_request(). */
typedef struct csip_check_result {
    int status;          /**< 0 when the request may be processed, else the response to send */
    const char *reason;  /**< reason phrase naming the fault. Static. */
    csip_str header;     /**< the header at fault (name as written), when one is */
    /** For 420: the option tags to list in Unsupported (views into the message). */
    csip_str unsupported[16];
    size_t n_unsupported;
    int err;             /**< the csip_err behind a 400, else 0 */
} csip_check_result;

/**
 * The checks a UAS (RFC 3261 §8.2), a proxy (§16.3) or a registrar (§10.3)
 * makes before processing a request, as a pure function: 505 for an other
 * SIP version, 501/405 for methods (UAS, registrar), 400 from
 * csip_msg_validate() (but 501 for a CSeq mismatch on an unknown method),
 * 416 for an unsupported Request-URI scheme, 420 with the unsupported option
 * tags (Require at a UAS or registrar, Proxy-Require at a proxy), 483 for
 * Max-Forwards 0 at a proxy (and for OPTIONS … see docs), 415 for an unknown
 * Content-Type at a UAS, 400 for a REGISTER whose To is not a sip/sips URI.
 * @return res->status (0 when the request may go on).
 */
CSIP_EXTERN int csip_check_request(const csip_msg *msg, csip_role role,
                                   const csip_check_opts *opts, csip_check_result *res);
/* opts may be NULL (all defaults). A response is not checked (status 0). A CSeq
 * mismatch on an unknown method gets 501 in every role, proxies included, as
 * RFC 4475 §3.1.2.18 recommends. */

/* ------------------------------------------------------------------------- */
/* Editing (for proxies). Edits are recorded beside the original bytes; the
 * printer regenerates edited lines only. Editing invalidates csip_hdr
 * pointers and cached typed values of the message. Values are copied. */

/**
 * Inserts a header line before position `pos` (0 = first, count = last).
 * @return 0; CSIP_ERR_INVALID_ARG (bad position or name, CR/LF in the value);
 *         CSIP_ERR_LIMIT_HEADERS when the message already holds the most header
 *         lines its parse limits allow; CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_msg_hdr_insert(csip_msg *msg, size_t pos, csip_hdr_id id, csip_str name,
                                    csip_str value);
/** Adds a header line after the last line (or before the first when `first`). */
CSIP_EXTERN int csip_msg_hdr_add(csip_msg *msg, csip_hdr_id id, csip_str value, bool first);
/** Removes the header line at position pos. */
CSIP_EXTERN int csip_msg_hdr_remove(csip_msg *msg, size_t pos);
/** Replaces the value of the header line at position pos. */
CSIP_EXTERN int csip_msg_hdr_set(csip_msg *msg, size_t pos, csip_str value);
/**
 * Removes the top Via value: the first value of the first Via line (the rest
 * of a comma-separated line stays).
 */
CSIP_EXTERN int csip_msg_via_pop(csip_msg *msg);
/** Replaces the Request-URI. */
CSIP_EXTERN int csip_msg_set_ruri(csip_msg *msg, csip_str uri);
/** Sets Max-Forwards (adds the header when absent). */
CSIP_EXTERN int csip_msg_set_max_forwards(csip_msg *msg, uint32_t value);
/** Replaces the body (and Content-Type when given; content_type.p NULL keeps it). */
CSIP_EXTERN int csip_msg_set_body(csip_msg *msg, csip_str content_type, csip_str body);

/**
 * Prints the message: unchanged lines byte for byte as received, edited ones
 * regenerated, Content-Length made equal to the body length (added when absent).
 * @return the length written (or needed, when out is NULL), or
 *         CSIP_ERR_BUFFER_TOO_SMALL.
 */
CSIP_EXTERN int csip_msg_print(const csip_msg *msg, char *out, size_t cap);

/* ------------------------------------------------------------------------- */
/* Builders                                                                   */

/**
 * Builds a response to a request as RFC 3261 §8.2.6 says: every Via, From,
 * To, Call-ID and CSeq copied byte for byte, a To tag added when the request's
 * To has none and the code is above 100 (to_tag, or none when to_tag.p is NULL),
 * Timestamp copied into 100 Trying, Content-Length 0.
 * req may also be a response to the request, when the request itself is gone:
 * the same lines are copied from it (its To tag with them), for another
 * response to the same request (not a 100).
 * @param reason NULL for the registry's phrase.
 * @return 0, CSIP_ERR_INVALID_ARG (an ACK, code outside 100..699, a 100 from a
 *         response), CSIP_ERR_NOMEM.
 */
CSIP_EXTERN int csip_response_for(const csip_msg *req, int code, const char *reason,
                                  csip_str to_tag, const csip_mem *mem, csip_msg **out);

/** Fields of a request built from scratch. Absent views are left out. */
typedef struct csip_request_spec {
    csip_str method;
    csip_str ruri;
    csip_str via;      /**< full Via value, e.g. "SIP/2.0/UDP host:5060;branch=z9hG4bK…" */
    csip_str from;     /**< full From value, tag included */
    csip_str to;
    csip_str call_id;
    uint32_t cseq;
    uint32_t max_forwards; /**< 0 means 70 */
    csip_str contact;
    csip_str content_type;
    csip_str body;
    csip_str extra;    /**< extra header lines, each ending in CRLF */
} csip_request_spec;

/** Builds a request. @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_NOMEM. */
CSIP_EXTERN int csip_request_new(const csip_request_spec *spec, const csip_mem *mem,
                                 csip_msg **out);

#ifdef __cplusplus
}
#endif
#endif
