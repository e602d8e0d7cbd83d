/*
 * csip — URIs: sip, sips and tel (RFC 3261 §19.1, RFC 3966), name-addr helpers,
 * escaping (§19.1.2) and comparison (§19.1.4). Other schemes are kept as
 * absolute URIs (scheme and opaque part).
 *
 * Parsing is zero-copy and allocation-free: every field is a view into the
 * input, which must outlive the csip_uri. Parameters are kept as one raw view
 * and read with csip_param_next(); the parameters that RFC 3261 gives meaning
 * to are also extracted.
 */
#ifndef CSIP_URI_H
#define CSIP_URI_H

#include "csip/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum csip_uri_scheme {
    CSIP_URI_OTHER = 0, /**< any other absolute URI: only scheme and opaque are set */
    CSIP_URI_SIP,
    CSIP_URI_SIPS,
    CSIP_URI_TEL,
} csip_uri_scheme;

typedef enum csip_host_type {
    CSIP_HOST_NONE = 0,
    CSIP_HOST_NAME,
    CSIP_HOST_IPV4,
    CSIP_HOST_IPV6, /**< host view includes the brackets */
} csip_host_type;

/**
 * A parsed URI. Views are escaped as on the wire (compare with
 * csip_uri_equal(), decode with csip_unescape()).
 * @since 0.1
 */
typedef struct csip_uri {
    csip_str raw;      /**< the whole URI */
    csip_str scheme;   /**< as written, e.g. "SIP" */
    csip_uri_scheme kind;
    csip_str user;     /**< sip/sips userinfo user part; tel: the telephone-subscriber number */
    csip_str password; /**< absent when there is no ':' in userinfo */
    csip_str host;     /**< sip/sips only; IPv6 references keep their brackets */
    csip_host_type host_type;
    bool has_port;
    uint16_t port;
    csip_str params;   /**< parameters after the first ';', without it (absent if none) */
    csip_str headers;  /**< after '?', without it (absent if none) */
    csip_str opaque;   /**< CSIP_URI_OTHER: everything after "scheme:" */
    /* Parameters with meaning in RFC 3261 (values, views into params). */
    csip_str transport;
    csip_str user_param; /**< the "user" parameter (e.g. "phone") */
    csip_str method;
    csip_str maddr;
    csip_str ttl;
    bool lr;
} csip_uri;

/**
 * A parameter: name and value. value.p == NULL when the parameter has no '='.
 * Both are views, escaped as written (URI params) or possibly quoted (header params).
 */
typedef struct csip_param {
    csip_str name;
    csip_str value;
} csip_param;

/**
 * Parses a whole URI from [p, p+len). Leading or trailing whitespace is an error.
 * @return 0; CSIP_ERR_PARSE_URI for malformed input (an unknown scheme with a
 *         well-formed absolute-URI is not an error); CSIP_ERR_LIMIT_URI when len > max_len
 *         (max_len 0 means CSIP_DEFAULT_MAX_URI).
 */
CSIP_EXTERN int csip_uri_parse(const char *p, size_t len, size_t max_len, csip_uri *out);

/**
 * URI equality as RFC 3261 §19.1.4 says (sip/sips; tel per RFC 3966 §4;
 * other schemes byte-compared case-insensitively on the scheme, exactly otherwise).
 */
CSIP_EXTERN bool csip_uri_equal(const csip_uri *a, const csip_uri *b);

/**
 * Reads the next parameter from *rest (a ';'-separated list such as
 * csip_uri.params) and advances *rest past it. Whitespace around ';' and '='
 * is skipped (header parameters allow LWS; URI parameters never contain any).
 * @return 1 when a parameter was read, 0 at the end, CSIP_ERR_SYNTAX for an
 *         empty or malformed parameter.
 */
CSIP_EXTERN int csip_param_next(csip_str *rest, csip_param *out);

/**
 * Finds a parameter by name (case-insensitive) in a ';'-separated list.
 * @return 1 and *value (value.p NULL when the parameter has no value), 0 when
 *         absent, CSIP_ERR_SYNTAX when the list is malformed.
 */
CSIP_EXTERN int csip_param_find(csip_str params, const char *name, csip_str *value);

/**
 * Decodes %HH escapes of `in` into out (never recursively: "%2541" gives
 * "%41"). A '%' not followed by two hex digits is copied as is. out may hold
 * NUL octets (%00).
 * @return the decoded length, or CSIP_ERR_BUFFER_TOO_SMALL when cap is too small
 *         (in.len always suffices).
 */
CSIP_EXTERN int csip_unescape(csip_str in, char *out, size_t cap);

/** Character sets for csip_escape(). */
typedef enum csip_escape_set {
    CSIP_ESCAPE_USER,   /**< userinfo user: unreserved / escaped / user-unreserved */
    CSIP_ESCAPE_PASSWORD,
    CSIP_ESCAPE_PARAM,  /**< uri-parameter name or value: unreserved / param-unreserved */
    CSIP_ESCAPE_HEADER, /**< ?header name or value: unreserved / hnv-unreserved */
} csip_escape_set;

/**
 * Escapes every octet of `in` not allowed unescaped in the given URI part.
 * @return the escaped length, or CSIP_ERR_BUFFER_TOO_SMALL (3 * in.len always suffices).
 */
CSIP_EXTERN int csip_escape(csip_str in, csip_escape_set set, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
