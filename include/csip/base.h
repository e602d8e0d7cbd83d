/*
 * csip — base layer: string views, errors, memory hooks, logging.
 *
 * Threading: every function here is reentrant; nothing in this header keeps
 * global mutable state.
 */
#ifndef CSIP_BASE_H
#define CSIP_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CSIP_STATICLIB)
#define CSIP_EXTERN
#elif defined(__GNUC__)
#define CSIP_EXTERN __attribute__((visibility("default")))
#else
#define CSIP_EXTERN
#endif

/**
 * A view of bytes: pointer and length, never assumed NUL-terminated.
 * Views returned by the library point into the buffer of the message they
 * come from and live as long as that message. An absent value has p == NULL.
 * @since 0.1
 */
typedef struct csip_str {
    const char *p;
    size_t len;
} csip_str;

/** A view of a string literal. */
#define CSIP_STR(lit) ((csip_str){(lit), sizeof(lit) - 1})
/** The absent view. */
#define CSIP_STR_NULL ((csip_str){NULL, 0})

/** A view of a NUL-terminated string (NULL gives the absent view). */
CSIP_EXTERN csip_str csip_str_c(const char *s);
/** True when both views hold the same bytes (case-sensitive). */
CSIP_EXTERN bool csip_str_eq(csip_str a, csip_str b);
/** True when both views hold the same bytes, ASCII letters compared without case. */
CSIP_EXTERN bool csip_str_ieq(csip_str a, csip_str b);
/** csip_str_ieq() against a NUL-terminated string. */
CSIP_EXTERN bool csip_str_ieq_c(csip_str a, const char *b);
/** csip_str_eq() against a NUL-terminated string. */
CSIP_EXTERN bool csip_str_eq_c(csip_str a, const char *b);

/**
 * Converts a string of decimal digits (leading zeros allowed, nothing else) to
 * an unsigned 32-bit integer.
 * @return 0, CSIP_ERR_SYNTAX (empty or a non-digit), CSIP_ERR_RANGE (> 2^32-1).
 */
CSIP_EXTERN int csip_str_to_u32(csip_str s, uint32_t *out);

/*
 * Errors. 0 is success; every error is negative and grouped by range:
 *   -1..-99     general          -100..-199 parse
 *   -200..-299  protocol         -300..-399 transport
 *   -500..-599  resource         below -900 fatal: destroy the endpoint
 * Codes are never renumbered; a retired code becomes CSIP_ERR_OBSOLETE_n.
 */
#define CSIP_ERR_MAP(XX)                                                                         \
    XX(INCOMPLETE, -1, "incomplete input: more bytes are needed")                                \
    XX(NOT_FOUND, -2, "not found")                                                               \
    XX(INVALID_ARG, -3, "invalid argument")                                                      \
    XX(BUFFER_TOO_SMALL, -4, "output buffer too small")                                          \
    XX(SYNTAX, -5, "syntax error")                                                               \
    XX(RANGE, -6, "number out of range")                                                         \
    XX(PAUSE, -7, "paused by a callback")                                                        \
    XX(CALLBACK_FAILURE, -8, "a callback failed")                                                \
    XX(CANCELLED, -9, "operation cancelled")                                                     \
    XX(PARSE_EMPTY, -100, "empty message")                                                       \
    XX(PARSE_START_LINE, -101, "malformed start line")                                           \
    XX(PARSE_VERSION, -102, "unsupported SIP version")                                           \
    XX(PARSE_METHOD, -103, "malformed method")                                                   \
    XX(PARSE_REQUEST_URI, -104, "malformed Request-URI")                                         \
    XX(PARSE_STATUS_CODE, -105, "invalid status code")                                           \
    XX(PARSE_REASON, -106, "malformed reason phrase")                                            \
    XX(PARSE_HEADER_LINE, -107, "malformed header line")                                         \
    XX(PARSE_HEADER_VALUE, -108, "malformed header value")                                       \
    XX(PARSE_URI, -109, "malformed URI")                                                         \
    XX(PARSE_CONTENT_LENGTH, -110, "invalid Content-Length")                                     \
    XX(PARSE_BODY_TRUNCATED, -111, "body shorter than Content-Length")                           \
    XX(PARSE_NO_CONTENT_LENGTH, -112, "Content-Length missing on a stream")                      \
    XX(PARSE_MISSING_HEADER, -113, "mandatory header missing")                                   \
    XX(PARSE_DUPLICATE_HEADER, -114, "header that must be single appears more than once")        \
    XX(PARSE_CSEQ_MISMATCH, -115, "CSeq method differs from the request method")                 \
    XX(PARSE_NUMBER_RANGE, -116, "number in a header out of range")                              \
    XX(PARSE_NO_END_OF_HEADERS, -117, "header section not terminated")                           \
    XX(PARSE_SDP, -118, "malformed session description (SDP)")                                   \
    XX(LIMIT_MESSAGE_SIZE, -150, "message larger than the size limit")                           \
    XX(LIMIT_HEADERS, -151, "more headers than the limit")                                       \
    XX(LIMIT_LINE, -152, "header line longer than the limit")                                    \
    XX(LIMIT_VIA, -153, "more Via values than the limit")                                        \
    XX(LIMIT_URI, -154, "URI longer than the limit")                                             \
    XX(LIMIT_VALUES, -155, "more values in a header than the limit")                             \
    XX(LIMIT_SDP, -156, "session description over a limit (size, lines, media, attributes)")     \
    XX(LIMIT_DIALOGS, -157, "more dialogs than the limit")                                       \
    XX(LIMIT_DIALOG_SIZE, -158, "dialog state larger than the limit")                            \
    XX(SDP_MISMATCH, -200, "SDP answer does not match its offer (RFC 3264)")                     \
    XX(TRANSPORT, -300, "transport error")                                                       \
    XX(DNS, -301, "DNS server failure (timeout, refused or SERVFAIL)")                           \
    XX(NOMEM, -500, "out of memory")                                                             \
    XX(STORE, -501, "location store failure (database error)")                                   \
    XX(FATAL, -900, "fatal error")

typedef enum csip_err {
    CSIP_OK = 0,
#define CSIP__ERR_ENUM(name, val, msg) CSIP_ERR_##name = (val),
    CSIP_ERR_MAP(CSIP__ERR_ENUM)
#undef CSIP__ERR_ENUM
} csip_err;

/** A sentence for an error code ("unknown error" for a value not in the enum). Static. */
CSIP_EXTERN const char *csip_strerror(int err);
/** The enum name of an error code without prefix ("PARSE_URI"), or "UNKNOWN". Static. */
CSIP_EXTERN const char *csip_err_name(int err);
/** True when the code means the endpoint is unusable and must be destroyed. */
CSIP_EXTERN bool csip_err_is_fatal(int err);

/**
 * Memory hooks: every allocation of the library goes through one of these.
 * A NULL csip_mem pointer anywhere means the C library's allocator.
 * @since 0.1
 */
typedef struct csip_mem {
    void *(*malloc)(size_t size, void *user_data);
    void (*free)(void *ptr, void *user_data);
    void *(*realloc)(void *ptr, size_t size, void *user_data);
    void *user_data;
} csip_mem;

/** The default hooks (libc). Static. */
CSIP_EXTERN const csip_mem *csip_mem_default(void);

/** Log levels, most severe first. */
typedef enum csip_log_level {
    CSIP_LOG_ERROR = 0,
    CSIP_LOG_WARN = 1,
    CSIP_LOG_INFO = 2,
    CSIP_LOG_DEBUG = 3,
} csip_log_level;

/** A log sink: one line, without trailing newline. */
typedef void (*csip_log_fn)(csip_log_level level, const char *line, size_t len, void *user_data);

/** Library version as "MAJOR.MINOR.PATCH". Static. */
CSIP_EXTERN const char *csip_version(void);

#ifdef __cplusplus
}
#endif
#endif
