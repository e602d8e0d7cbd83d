/*
 * csip — default limits. Every limit is an option (csip_limits); these are the
 * defaults a zeroed csip_limits field stands for. Going over one is a clean
 * error (CSIP_ERR_LIMIT_*), answered 513 or 400 by a server.
 */
#ifndef CSIP_LIMITS_H
#define CSIP_LIMITS_H

#include <stdint.h>

/** Largest UDP datagram accepted (octets). */
#define CSIP_DEFAULT_MAX_DATAGRAM 65535u
/** Largest message framed on a stream (octets, headers and body). */
#define CSIP_DEFAULT_MAX_STREAM_MESSAGE 65536u
/** Most header lines in a message. */
#define CSIP_DEFAULT_MAX_HEADERS 128u
/** Longest header line, folded continuation lines included (octets). */
#define CSIP_DEFAULT_MAX_LINE 8192u
/** Most Via values in a message (70, the initial Max-Forwards: RFC 4475 longreq has 34). */
#define CSIP_DEFAULT_MAX_VIA 70u
/** Longest URI (octets). */
#define CSIP_DEFAULT_MAX_URI 2048u
/** Most values in one comma-separated header (Contact, Route, …), summed over its lines. */
#define CSIP_DEFAULT_MAX_VALUES 128u

/**
 * Parser limits. A zero field means the default above.
 * @since 0.1
 */
typedef struct csip_limits {
    uint32_t max_datagram;
    uint32_t max_stream_message;
    uint32_t max_headers;
    uint32_t max_line;
    uint32_t max_via;
    uint32_t max_uri;
    uint32_t max_values;
} csip_limits;

#endif
