/*
 * Fuzz target: stream framing (csip_stream_frame) and the stream parser
 * (csip_msg_parse_stream), as a TCP or TLS receiver drives them.
 *
 * Input layout: two control bytes, then the bytes received on the connection.
 *   byte 0, bit 7   tight limits (small message, header and line limits)
 *   bytes 0-1       seed of the chunk sizes: chunks are 1..max bytes long, with
 *                   max = 1 + (((byte0 & 0x7f) << 8 | byte1) % 1500)
 *
 * The stream is framed twice: once with every byte available at the first
 * call, once fed chunk by chunk into a receive buffer (keep-alive octets
 * discarded as the framer says, the next chunk appended on
 * CSIP_ERR_INCOMPLETE, a framed message parsed and removed). Both must find the
 * same messages at the same offsets and end the same way (incomplete, or a
 * framing error). Each framed message must parse without a Content-Length
 * disagreement with the framer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csip/msg.h"

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_HAVE_ASAN 1
#endif
#endif
#ifdef FUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, long a, long b)
{
    fuzz_fail("fuzz_stream", what, (long)a, (long)b);
}

static void touch(csip_str s)
{
    fuzz_touch(s);
}

/* What framing found: every message as (offset in the stream, length), and how it ended. */
typedef struct outcome {
    size_t *off;
    size_t *len;
    size_t n, cap;
    int end; /* CSIP_ERR_INCOMPLETE, or the framing error */
} outcome;

static void record(outcome *o, size_t off, size_t len)
{
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 16;
        size_t *noff = realloc(o->off, ncap * sizeof(*noff));
        if (noff == NULL)
            abort();
        o->off = noff;
        size_t *nlen = realloc(o->len, ncap * sizeof(*nlen));
        if (nlen == NULL)
            abort();
        o->len = nlen;
        o->cap = ncap;
    }
    o->off[o->n] = off;
    o->len[o->n] = len;
    o->n++;
}

/* Parses one framed message from an exact-size copy, so that reading past it is caught. */
static void parse_framed(const uint8_t *p, size_t len, const csip_parse_opts *opts)
{
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return;
    memcpy(copy, p, len);
    csip_msg *m = NULL;
    csip_parse_error err;
    memset(&err, 0, sizeof(err));
    int rc = csip_msg_parse_stream(copy, len, opts, &m, &err);
    free(copy);
    if (rc == CSIP_ERR_PARSE_NO_CONTENT_LENGTH || rc == CSIP_ERR_PARSE_BODY_TRUNCATED ||
        rc == CSIP_ERR_PARSE_CONTENT_LENGTH || rc == CSIP_ERR_PARSE_NO_END_OF_HEADERS) {
        fprintf(stderr, "framed message:\n%.*s\n", (int)len, (const char *)p);
        fail("the parser disagrees with the framer", rc, (long)len);
    }
    if (rc == 0 && m == NULL)
        fail("parse returned 0 and no message", 0, 0);
    if (m != NULL) {
        if (rc == 0) {
            csip_str raw = csip_msg_raw(m);
            if (raw.len != len)
                fail("parsed length differs from the framed length", (long)raw.len, (long)len);
            uint32_t cl = 0;
            if (csip_msg_content_length(m, &cl) == 0 && cl != csip_msg_body(m).len)
                fail("Content-Length differs from the body length", (long)cl,
                     (long)csip_msg_body(m).len);
        }
        csip_str s;
        if (csip_msg_call_id(m, &s) == 0)
            touch(s);
        const csip_cseq *cseq = NULL;
        if (csip_msg_cseq(m, &cseq) == 0)
            touch(cseq->method);
        const csip_via *v = NULL;
        if (csip_msg_via(m, 0, &v) == 0)
            touch(v->branch);
        touch(csip_msg_body(m));
        csip_msg_free(m);
    }
}

static void check_frame_result(int rc, size_t skip, size_t mlen, size_t avail,
                               const csip_parse_error *err)
{
    if (rc == 0) {
        if (mlen == 0 || skip > avail || mlen > avail - skip)
            fail("framed message outside the buffer", (long)(skip + mlen), (long)avail);
    } else if (rc == CSIP_ERR_INCOMPLETE) {
        if (skip > avail)
            fail("keep-alive skip outside the buffer", (long)skip, (long)avail);
    } else if (rc > 0) {
        fail("csip_stream_frame returned a positive value", rc, 0);
    } else {
        if (err->code != rc)
            fail("framing error code differs from the return value", err->code, rc);
        touch(err->header);
    }
}

/* Every byte available at once. */
static void frame_whole(const uint8_t *data, size_t n, const csip_limits *lim,
                        const csip_parse_opts *opts, outcome *o)
{
    csip_stream st;
    csip_stream_init(&st);
    size_t pos = 0;
    for (;;) {
        size_t skip = 0, mlen = 0;
        csip_parse_error err;
        memset(&err, 0, sizeof(err));
        int rc = csip_stream_frame(&st, data + pos, n - pos, lim, &skip, &mlen, &err);
        check_frame_result(rc, skip, mlen, n - pos, &err);
        if (rc == 0) {
            record(o, pos + skip, mlen);
            parse_framed(data + pos + skip, mlen, opts);
            pos += skip + mlen;
            csip_stream_init(&st);
            continue;
        }
        o->end = rc;
        return;
    }
}

typedef struct rng {
    uint32_t s;
} rng;

static uint32_t rng_next(rng *r)
{
    uint32_t x = r->s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->s = x;
    return x;
}

/* Chunk by chunk into a receive buffer whose unused tail is poisoned under ASan. */
static void frame_chunked(const uint8_t *data, size_t n, const csip_limits *lim, uint32_t seed,
                          size_t max_chunk, outcome *o)
{
    uint8_t *rbuf = malloc(n ? n : 1);
    if (rbuf == NULL)
        abort();
    size_t cap = n ? n : 1;
    POISON(rbuf, cap);
    size_t blen = 0; /* bytes in rbuf */
    size_t base = 0; /* stream offset of rbuf[0] */
    size_t fed = 0;  /* stream bytes appended so far */
    rng r = {seed * 2654435761u + 0x9e3779b9u};
    if (r.s == 0)
        r.s = 1;
    csip_stream st;
    csip_stream_init(&st);

    for (;;) {
        if (blen == 0 && fed < n) {
            size_t c = 1 + rng_next(&r) % max_chunk;
            if (c > n - fed)
                c = n - fed;
            UNPOISON(rbuf + blen, c);
            memcpy(rbuf + blen, data + fed, c);
            blen += c;
            fed += c;
        }
        size_t skip = 0, mlen = 0;
        csip_parse_error err;
        memset(&err, 0, sizeof(err));
        int rc = csip_stream_frame(&st, rbuf, blen, lim, &skip, &mlen, &err);
        check_frame_result(rc, skip, mlen, blen, &err);
        size_t consumed;
        if (rc == 0) {
            record(o, base + skip, mlen);
            consumed = skip + mlen;
            csip_stream_init(&st);
        } else if (rc == CSIP_ERR_INCOMPLETE) {
            consumed = skip;
        } else {
            o->end = rc;
            break;
        }
        if (consumed > 0) {
            memmove(rbuf, rbuf + consumed, blen - consumed);
            blen -= consumed;
            base += consumed;
            POISON(rbuf + blen, cap - blen);
        }
        if (rc == CSIP_ERR_INCOMPLETE) {
            if (fed == n) {
                o->end = rc;
                break;
            }
            size_t c = 1 + rng_next(&r) % max_chunk;
            if (c > n - fed)
                c = n - fed;
            UNPOISON(rbuf + blen, c);
            memcpy(rbuf + blen, data + fed, c);
            blen += c;
            fed += c;
        }
    }
    UNPOISON(rbuf, cap);
    free(rbuf);
}

static void outcome_free(outcome *o)
{
    free(o->off);
    free(o->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t b0 = data[0], b1 = data[1];
    data += 2;
    size -= 2;

    csip_parse_opts opts;
    memset(&opts, 0, sizeof(opts));
    if (b0 & 0x80) {
        opts.limits.max_stream_message = 600;
        opts.limits.max_headers = 12;
        opts.limits.max_line = 160;
        opts.limits.max_via = 2;
        opts.limits.max_uri = 64;
        opts.limits.max_values = 3;
    }
    uint32_t seed = (uint32_t)((b0 & 0x7fu) << 8 | b1);
    size_t max_chunk = 1 + seed % 1500u;

    outcome whole, chunked;
    memset(&whole, 0, sizeof(whole));
    memset(&chunked, 0, sizeof(chunked));
    frame_whole(data, size, &opts.limits, &opts, &whole);
    frame_chunked(data, size, &opts.limits, seed, max_chunk, &chunked);

    bool whole_err = whole.end != CSIP_ERR_INCOMPLETE;
    bool chunked_err = chunked.end != CSIP_ERR_INCOMPLETE;
    if (whole.n != chunked.n || whole_err != chunked_err) {
        fprintf(stderr, "whole: %zu messages, end %s; chunked (max chunk %zu): %zu, end %s\n",
                whole.n, csip_err_name(whole.end), max_chunk, chunked.n,
                csip_err_name(chunked.end));
        fail("chunked framing differs from whole-buffer framing", (long)whole.n, (long)chunked.n);
    }
    for (size_t i = 0; i < whole.n; i++) {
        if (whole.off[i] != chunked.off[i] || whole.len[i] != chunked.len[i]) {
            fprintf(stderr, "message %zu: whole at %zu+%zu, chunked at %zu+%zu\n", i,
                    whole.off[i], whole.len[i], chunked.off[i], chunked.len[i]);
            fail("chunked framing boundary differs", (long)whole.off[i], (long)chunked.off[i]);
        }
    }
    outcome_free(&whole);
    outcome_free(&chunked);
    return 0;
}
