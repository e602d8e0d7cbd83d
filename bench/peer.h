/*
 * The interface every parser in the parse benchmark implements: csip and each
 * peer stack live in their own file (peer_<name>.c) behind one bench_peer.
 */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include <stddef.h>
#include <stdint.h>

/** A view of bytes; p == NULL when absent. */
typedef struct bench_view {
    const char *p;
    size_t len;
} bench_view;

/**
 * What the "parse+read" mode reads from a message. The views point into the
 * parsed message and stay valid until the peer's release().
 */
typedef struct bench_fields {
    bench_view branch;       /**< branch parameter of the top Via */
    bench_view from_tag;
    bench_view to_tag;       /**< absent when the To has no tag */
    bench_view call_id;      /**< the whole Call-ID, or the part before '@' (call_id_host) */
    bench_view call_id_host; /**< for stacks that split the Call-ID at '@' (oSIP); else absent */
    uint32_t cseq;
    bench_view cseq_method;
    bench_view contact_host; /**< host of the first Contact URI; absent when no Contact */
} bench_fields;

typedef struct bench_peer {
    const char *name;
    /** One line: what "parse+validate" does for this stack. */
    const char *validate_note;
    /** Once, before anything else. @return 0, or -1 when the stack is unusable. */
    int (*init)(void);
    /**
     * Mode (a): parses len bytes at data (not NUL-terminated) and reads the
     * common headers into *f. @return a handle for release(), NULL on failure.
     */
    void *(*parse_read)(const char *data, size_t len, bench_fields *f);
    /** Mode (b): parses and validates the whole message. @return a handle, NULL on failure. */
    void *(*parse_validate)(const char *data, size_t len);
    /** Frees what parse_read() or parse_validate() returned. */
    void (*release)(void *handle);
} bench_peer;

/** A view of a NUL-terminated string (NULL gives the absent view). */
bench_view bench_view_c(const char *s);

#ifdef BENCH_WITH_CSIP
extern const bench_peer bench_peer_csip;
#endif
#ifdef BENCH_WITH_SOFIA
extern const bench_peer bench_peer_sofia;
#endif
#ifdef BENCH_WITH_OSIP
extern const bench_peer bench_peer_osip;
#endif
#ifdef BENCH_WITH_RE
extern const bench_peer bench_peer_re;
#endif
#ifdef BENCH_WITH_BELLE
extern const bench_peer bench_peer_belle;
#endif

#endif
