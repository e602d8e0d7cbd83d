/*
 * csip — the SDP layer: session descriptions (RFC 8866) parsed and printed,
 * and the offer/answer model (RFC 3264) for audio over RTP/AVP (RFC 3551).
 *
 * Parsing is zero-copy: every csip_str of a parsed description is a view into
 * the caller's buffer, which must outlive the csip_sdp (a message body, for
 * instance, lives as long as its csip_msg). One allocation holds the parsed
 * fields; csip_sdp_free() releases it.
 *
 * Offers and answers are written straight into a caller buffer; they allocate
 * nothing. A csip_sdp_session (caller-owned) remembers the o= version and what
 * was last sent, so that a new description in the same session gets version + 1
 * when it differs and keeps the version when it does not (RFC 3264 §8).
 *
 * Threading: a csip_sdp may be read from several threads at once (nothing is
 * cached on access); a csip_sdp_session is confined to one thread at a time.
 */
#ifndef CSIP_SDP_H
#define CSIP_SDP_H

#include "csip/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Limits                                                                     */

/** Longest description accepted (octets). */
#define CSIP_SDP_DEFAULT_MAX_LEN 65535u
/** Most lines in a description. */
#define CSIP_SDP_DEFAULT_MAX_LINES 512u
/** Most media sections (m= lines). */
#define CSIP_SDP_DEFAULT_MAX_MEDIA 32u
/** Most a= lines, session and media levels together. */
#define CSIP_SDP_DEFAULT_MAX_ATTRS 256u
/** Most formats on one m= line. */
#define CSIP_SDP_DEFAULT_MAX_FORMATS 128u
/** The largest value csip_sdp_limits.max_len may take (16 MiB). */
#define CSIP_SDP_MAX_LEN_CEILING (16u * 1024u * 1024u)

/**
 * Parse limits. A zero field means the default above; max_len is capped at
 * CSIP_SDP_MAX_LEN_CEILING. Going over one is CSIP_ERR_LIMIT_SDP.
 * @since 0.1
 */
typedef struct csip_sdp_limits {
    uint32_t max_len;
    uint32_t max_lines;
    uint32_t max_media;
    uint32_t max_attrs;
    uint32_t max_formats;
} csip_sdp_limits;

/* ------------------------------------------------------------------------- */
/* The parsed description                                                     */

/**
 * Media direction (RFC 8866 §6.7, RFC 3264 §5.1). A section without a
 * direction attribute takes the session's; without either it is sendrecv.
 * @since 0.1
 */
typedef enum csip_sdp_dir {
    CSIP_SDP_SENDRECV = 0,
    CSIP_SDP_SENDONLY = 1,
    CSIP_SDP_RECVONLY = 2,
    CSIP_SDP_INACTIVE = 3,
} csip_sdp_dir;

/** "sendrecv", "sendonly", "recvonly", "inactive", or "" for a bad value. Static. */
CSIP_EXTERN const char *csip_sdp_dir_name(csip_sdp_dir dir);

/** o= (RFC 8866 §5.2). */
typedef struct csip_sdp_origin {
    csip_str username;     /**< "-" when the host has no user name */
    csip_str sess_id;      /**< digits, as written */
    csip_str sess_version; /**< digits, as written */
    uint64_t version;      /**< sess_version as a number */
    csip_str nettype;      /**< "IN" */
    csip_str addrtype;     /**< "IP4", "IP6", or another token */
    csip_str address;      /**< unicast address or host name */
} csip_sdp_origin;

/** c= (RFC 8866 §5.7). */
typedef struct csip_sdp_conn {
    csip_str nettype;
    csip_str addrtype;
    csip_str address; /**< the host, without a multicast suffix */
    csip_str suffix;  /**< "/ttl[/count]" or "/count" as written (multicast), absent if none */
} csip_sdp_conn;

/** b= (RFC 8866 §5.8). */
typedef struct csip_sdp_bw {
    csip_str type;  /**< "CT", "AS", or another token */
    csip_str value; /**< digits, as written */
    uint32_t kbps;  /**< value as a number */
} csip_sdp_bw;

/** t= and the r= lines that follow it (RFC 8866 §5.9, §5.10). */
typedef struct csip_sdp_time {
    csip_str start, stop; /**< digits, as written */
    uint64_t start_num, stop_num;
    const csip_str *repeats; /**< each r= value, as written */
    size_t n_repeats;
} csip_sdp_time;

/** a= (RFC 8866 §5.13). */
typedef struct csip_sdp_attr {
    csip_str name;
    csip_str value; /**< after the ':'; absent (p NULL) for a property attribute */
} csip_sdp_attr;

/** One media section (RFC 8866 §5.14). */
typedef struct csip_sdp_media {
    csip_str media; /**< "audio", "video", "application", … */
    uint16_t port;
    uint32_t port_count; /**< "/n" after the port; 1 when absent */
    csip_str proto;      /**< "RTP/AVP", … */
    const csip_str *fmts;
    size_t n_fmts;
    csip_str info;              /**< i=, absent if none */
    const csip_sdp_conn *conns; /**< c= lines of this section (0 when the session's applies) */
    size_t n_conns;
    const csip_sdp_bw *bws;
    size_t n_bws;
    csip_str key; /**< k=, absent if none */
    const csip_sdp_attr *attrs;
    size_t n_attrs;
    csip_sdp_dir dir; /**< effective direction: its own attribute, else the session's */
    bool has_dir;     /**< a direction attribute in this section */
    uint32_t line;    /**< line number of the m= line (1-based) */
} csip_sdp_media;

/**
 * Every field of a parsed description. Views point into the parsed buffer;
 * arrays live in the csip_sdp (borrowed, valid until csip_sdp_free()).
 * @since 0.1
 */
typedef struct csip_sdp_desc {
    csip_sdp_origin origin;
    csip_str name; /**< s=; may be empty (RFC 3264's examples send "s=") */
    csip_str info; /**< i=, absent if none */
    csip_str uri;  /**< u=, absent if none */
    const csip_str *emails;
    size_t n_emails;
    const csip_str *phones;
    size_t n_phones;
    const csip_sdp_conn *conn; /**< session-level c=, NULL if none */
    const csip_sdp_bw *bws;
    size_t n_bws;
    const csip_sdp_time *times; /**< at least one */
    size_t n_times;
    csip_str zone; /**< z=, as written, absent if none */
    csip_str key;  /**< k=, absent if none */
    const csip_sdp_attr *attrs;
    size_t n_attrs;
    csip_sdp_dir dir; /**< session-level direction (sendrecv when none) */
    bool has_dir;
    const csip_sdp_media *media;
    size_t n_media;
} csip_sdp_desc;

/** A parsed session description (opaque). Free with csip_sdp_free(). */
typedef struct csip_sdp csip_sdp;

/**
 * What went wrong in a parse and where.
 * @since 0.1
 */
typedef struct csip_sdp_error {
    int code;         /**< CSIP_ERR_PARSE_SDP, CSIP_ERR_LIMIT_SDP, CSIP_ERR_NOMEM … */
    size_t offset;    /**< byte offset of the fault in the input */
    uint32_t line;    /**< 1-based line of the fault */
    uint32_t column;  /**< 1-based column (byte) */
    char type;        /**< the type letter of the line at fault ('m', 'a' …), 0 if none */
    const char *what; /**< what is wrong, one sentence. Static. */
} csip_sdp_error;

/**
 * Parses a session description with the default limits. The grammar is RFC
 * 8866 §9, strictly: lines in the order v o s i u e p c b t r z k a, then
 * media sections m i c b k a; single spaces between fields; a type letter the
 * parser does not know refuses the whole description (RFC 8866 §5). Lines may
 * end in CRLF or LF alone. docs/internals/sdp.md lists what else is accepted
 * and refused.
 *
 * Not copied: the views of the result point into buf, which must stay valid
 * and unchanged until csip_sdp_free().
 *
 * @param mem allocator, NULL for libc.
 * @param out set to the description (owned: free with csip_sdp_free()), NULL on error.
 * @param err filled on error (may be NULL).
 * @return 0; CSIP_ERR_PARSE_SDP; CSIP_ERR_LIMIT_SDP; CSIP_ERR_NOMEM;
 *         CSIP_ERR_INVALID_ARG (NULL buf with a length, NULL out).
 */
CSIP_EXTERN int csip_sdp_parse(const char *buf, size_t len, const csip_mem *mem, csip_sdp **out,
                               csip_sdp_error *err);

/** csip_sdp_parse() with limits (NULL = defaults). */
CSIP_EXTERN int csip_sdp_parse_limited(const char *buf, size_t len, const csip_mem *mem,
                                       const csip_sdp_limits *limits, csip_sdp **out,
                                       csip_sdp_error *err);

/** Frees a description. NULL is a no-op. */
CSIP_EXTERN void csip_sdp_free(csip_sdp *sdp);

/** The fields of a description (borrowed, valid until csip_sdp_free()). */
CSIP_EXTERN const csip_sdp_desc *csip_sdp_get(const csip_sdp *sdp);

/** The i-th media section, or NULL past the last. */
CSIP_EXTERN const csip_sdp_media *csip_sdp_media_at(const csip_sdp *sdp, size_t i);

/**
 * The connection of media section i: its first c= line, else the session's.
 * NULL when neither exists (allowed for a section with port 0) or i is past the last.
 */
CSIP_EXTERN const csip_sdp_conn *csip_sdp_media_conn(const csip_sdp *sdp, size_t i);

/**
 * The next attribute named `name` (case-sensitive, RFC 8866 §5.13) after
 * `prev` in attrs[0..n) (prev NULL: from the first), or NULL.
 */
CSIP_EXTERN const csip_sdp_attr *csip_sdp_attr_next(const csip_sdp_attr *attrs, size_t n,
                                                    const char *name, const csip_sdp_attr *prev);

/** An RTP payload type's mapping (a=rtpmap, RFC 8866 §6.6, or RFC 3551's static table). */
typedef struct csip_sdp_rtpmap {
    uint8_t pt;
    csip_str name;     /**< encoding name, as written ("PCMU", "telephone-event") */
    uint32_t clock;    /**< clock rate, Hz */
    uint32_t channels; /**< encoding parameters (audio channels); 1 when absent */
    bool from_table;   /**< no a=rtpmap: the static RFC 3551 assignment */
} csip_sdp_rtpmap;

/**
 * The mapping of format `fmt` of a media section: its a=rtpmap line, or for a
 * static payload type without one, RFC 3551's assignment (name then points to
 * a static string).
 * @return 0; CSIP_ERR_NOT_FOUND (no rtpmap and no static assignment, or fmt
 *         is not an RTP payload type number).
 */
CSIP_EXTERN int csip_sdp_media_rtpmap(const csip_sdp_media *m, csip_str fmt, csip_sdp_rtpmap *out);

/** The parameters of a=fmtp for `fmt` (after "fmt "). @return 0, CSIP_ERR_NOT_FOUND. */
CSIP_EXTERN int csip_sdp_media_fmtp(const csip_sdp_media *m, csip_str fmt, csip_str *out);

/**
 * a=ptime of a media section, in milliseconds (a decimal fraction is cut off).
 * @return 0, CSIP_ERR_NOT_FOUND.
 */
CSIP_EXTERN int csip_sdp_media_ptime(const csip_sdp_media *m, uint32_t *ms);

/**
 * RFC 3551's static payload types (§6, tables 4 and 5): name, clock rate and
 * channels of `pt` (name is a static string).
 * @return 0; CSIP_ERR_NOT_FOUND (dynamic, reserved or unassigned number).
 */
CSIP_EXTERN int csip_sdp_static_pt(unsigned pt, csip_sdp_rtpmap *out);

/**
 * Prints a description as RFC 8866 text with CRLF line ends, one line per
 * parsed field, in grammar order. Re-parsing the output gives the same fields.
 * @param out NULL to compute the length only.
 * @return the length written (or needed), or CSIP_ERR_BUFFER_TOO_SMALL,
 *         CSIP_ERR_INVALID_ARG. Nothing is NUL-terminated.
 */
CSIP_EXTERN int csip_sdp_print(const csip_sdp *sdp, char *out, size_t cap);

/* ------------------------------------------------------------------------- */
/* Offer/answer (RFC 3264) for audio                                          */

/**
 * A codec this side supports. Static payload types (0..95) may leave name and
 * clock unset (zero): RFC 3551's assignment is used.
 * @since 0.1
 */
typedef struct csip_sdp_codec {
    uint8_t pt;        /**< payload type, 0..127; 96..127 are dynamic */
    csip_str name;     /**< encoding name; required for a dynamic pt */
    uint32_t clock;    /**< clock rate; required for a dynamic pt */
    uint32_t channels; /**< 0 or 1 = mono (not written) */
    csip_str fmtp;     /**< a=fmtp parameters ("0-16"), absent if none */
} csip_sdp_codec;

/**
 * This side's description, from which offers and answers are built.
 * @since 0.1
 */
typedef struct csip_sdp_local {
    csip_str username;     /**< o= username; absent = "-" */
    uint64_t sess_id;      /**< o= sess-id */
    csip_str session_name; /**< s=; absent or empty = "-" */
    csip_str address;      /**< o= and c= address: IPv4, IPv6 (IP6) or a host name; required */
    const uint16_t *ports; /**< one RTP port per audio stream this side takes */
    size_t n_ports;        /**< at least 1 */
    const csip_sdp_codec *codecs; /**< in order of preference; at least 1 */
    size_t n_codecs;
    csip_sdp_dir dir; /**< what this side wants: sendrecv, or sendonly to hold, … */
    uint32_t ptime;   /**< a=ptime in ms, 0 for none */
} csip_sdp_local;

/**
 * The o= version of one session, and a hash of the last description sent in
 * it (everything but the version). Caller-owned; csip_sdp_session_init() it.
 * @since 0.1
 */
typedef struct csip_sdp_session {
    uint64_t version;   /**< the version of the last description sent */
    uint64_t last_hash; /**< FNV-1a 64 of that description without its version */
    bool sent;          /**< a description was sent */
} csip_sdp_session;

/** Starts a session: the first description sent will carry `version`. */
CSIP_EXTERN void csip_sdp_session_init(csip_sdp_session *s, uint64_t version);

/**
 * Writes an offer (RFC 3264 §5): v=0, o=, s=, c=IN IP4|IP6 address, t=0 0,
 * then one "m=audio port RTP/AVP …" per port with a=rtpmap for every codec,
 * a=fmtp where given, a=ptime when set, and the direction unless sendrecv.
 *
 * A re-offer (RFC 3264 §8) passes `previous`, an SDP of the last exchange in
 * this session (ours or the peer's): its media sections keep their number and
 * order; each audio RTP/AVP section gets a port while they last, every other
 * one is kept with port 0 (its media, proto and formats), and ports left over
 * add audio sections at the end.
 *
 * The o= version is the session's: the first description gets the initial
 * version, a later one version + 1 when it differs from the last one sent,
 * the same version when it does not. With out NULL nothing is written and
 * the session is not updated.
 *
 * @return the length written (or needed); CSIP_ERR_INVALID_ARG (a local field
 *         missing or invalid: address, ports, codecs, names with spaces or
 *         line breaks, a dynamic codec without name or clock);
 *         CSIP_ERR_BUFFER_TOO_SMALL; CSIP_ERR_RANGE (version at UINT64_MAX).
 */
CSIP_EXTERN int csip_sdp_offer(csip_sdp_session *s, const csip_sdp_local *local,
                               const csip_sdp *previous, char *out, size_t cap);

/**
 * Writes the answer to an offer (RFC 3264 §6): the same number and order of
 * media sections. An audio RTP/AVP section with a port is accepted, while
 * local ports last, when it shares a codec with the local list; its formats
 * are the common ones in the offer's order with the offer's payload type
 * numbers (static types matched by number, dynamic ones by encoding name,
 * case-insensitively, clock rate and channels). Its direction answers the
 * offer's (§6.1): sendonly → recvonly, recvonly → sendonly, inactive →
 * inactive, sendrecv → the local one, each narrowed by the local direction.
 * Any other section is rejected with port 0, keeping the offer's media, proto
 * and formats. The t= lines are the offer's. Versioning as csip_sdp_offer().
 *
 * @param accepted set (when not NULL) to the number of accepted sections; 0
 *        means a SIP UAS would rather answer 488.
 * @return the length written (or needed); the errors of csip_sdp_offer();
 *         CSIP_ERR_INVALID_ARG for a NULL offer.
 */
CSIP_EXTERN int csip_sdp_answer(csip_sdp_session *s, const csip_sdp_local *local,
                                const csip_sdp *offer, char *out, size_t cap, size_t *accepted);

/**
 * What one media section of an offer/answer exchange came to, seen from this
 * side. Views point into the descriptions (or to static strings).
 * @since 0.1
 */
typedef struct csip_sdp_stream {
    bool accepted;         /**< both ports non-zero and a common codec */
    csip_str media;        /**< "audio", … */
    csip_str address;      /**< the peer's connection address (absent if none) */
    uint16_t port;         /**< the peer's port (0: rejected) */
    csip_sdp_rtpmap codec; /**< the codec to send: the first of the answer's formats that the
                                offer lists too and is not telephone-event or CN */
    int dtmf_pt;           /**< telephone-event payload type in the answer, -1 if none */
    csip_sdp_dir dir;      /**< this side's direction */
} csip_sdp_stream;

/**
 * Reads media section i of an exchange. `local_offered` says which side this
 * is: the offerer (the peer is the answerer) or the answerer.
 * @return 0; CSIP_ERR_NOT_FOUND (i past the last section); CSIP_ERR_SDP_MISMATCH
 *         when the answer breaks RFC 3264 §6 for this exchange: another number
 *         of sections, another media type, a port for a section the offer
 *         disabled, a direction the offer's does not allow; CSIP_ERR_INVALID_ARG.
 */
CSIP_EXTERN int csip_sdp_negotiated(const csip_sdp *offer, const csip_sdp *answer,
                                    bool local_offered, size_t i, csip_sdp_stream *out);

#ifdef __cplusplus
}
#endif
#endif
