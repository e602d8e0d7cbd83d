/*
 * A small JSON writer for the csip tool: values are appended to a growable
 * buffer, commas and (optionally) indentation are handled by the writer.
 *
 * Strings are written as JSON strings whatever bytes they hold: '"', '\\' and
 * control characters are escaped, well-formed UTF-8 is copied as is, and every
 * byte that is not part of a well-formed UTF-8 sequence is written as \u00XX
 * (so a Latin-1 byte 0xE9 reads back as U+00E9).
 *
 * Errors are sticky: after an allocation failure, a buffer over its cap or
 * nesting too deep, every call does nothing and json_failed() is true.
 */
#ifndef CSIP_APP_JSON_H
#define CSIP_APP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "csip/base.h"

/* Deepest nesting of objects and arrays. */
#define JSON_MAX_DEPTH 32
/* Largest output kept in memory before json_flush(). */
#define JSON_MAX_OUTPUT (64u * 1024u * 1024u)

typedef struct json_out {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
    bool pretty;    /* one member per line, indented by two spaces */
    bool after_key; /* a key was written: the next value is its value */
    unsigned depth;
    bool empty[JSON_MAX_DEPTH]; /* nothing written yet at this level */
} json_out;

/* Starts an empty writer (no allocation until the first write). */
void json_init(json_out *j, bool pretty);
/* Frees the buffer. */
void json_free(json_out *j);
/* True after an allocation failure, an overflow of JSON_MAX_OUTPUT or JSON_MAX_DEPTH. */
bool json_failed(const json_out *j);
/*
 * Writes the buffered text and a newline to f and empties the buffer.
 * @return 0, or -1 when the writer failed or the write did.
 */
int json_flush(json_out *j, FILE *f);

void json_obj_begin(json_out *j);
void json_obj_end(json_out *j);
void json_arr_begin(json_out *j);
void json_arr_end(json_out *j);
/* The key of the next object member (a NUL-terminated ASCII name). */
void json_key(json_out *j, const char *key);

/* Values. */
void json_null(json_out *j);
void json_bool(json_out *j, bool v);
void json_uint(json_out *j, uint64_t v);
void json_int(json_out *j, int64_t v);
/* A number given as text that is already valid JSON (e.g. "0.33"). */
void json_number_text(json_out *j, const char *text);
/* A string of len bytes (any bytes). */
void json_str(json_out *j, const char *p, size_t len);
/* A NUL-terminated string, or null when s is NULL. */
void json_cstr(json_out *j, const char *s);
/* A view, or null when it is absent (s.p == NULL). */
void json_view(json_out *j, csip_str s);

/* Members: json_key() then the value. */
void json_kstr(json_out *j, const char *key, const char *p, size_t len);
void json_kcstr(json_out *j, const char *key, const char *s);
void json_kview(json_out *j, const char *key, csip_str s);
void json_kuint(json_out *j, const char *key, uint64_t v);
void json_kint(json_out *j, const char *key, int64_t v);
void json_kbool(json_out *j, const char *key, bool v);
void json_knull(json_out *j, const char *key);

/*
 * The length of the well-formed UTF-8 sequence at p (1..4), or 0 when the
 * bytes there are not one (overlong forms, surrogates and code points above
 * U+10FFFF are not well formed). n is the number of bytes available.
 */
size_t json_utf8_len(const unsigned char *p, size_t n);

#endif
