/*
 * JSON writer for the csip tool (see json.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void json_init(json_out *j, bool pretty)
{
    memset(j, 0, sizeof(*j));
    j->pretty = pretty;
    j->empty[0] = true;
}

void json_free(json_out *j)
{
    free(j->buf);
    j->buf = NULL;
    j->len = j->cap = 0;
}

bool json_failed(const json_out *j)
{
    return j->failed;
}

int json_flush(json_out *j, FILE *f)
{
    if (j->failed) {
        return -1;
    }
    if (j->len > 0 && fwrite(j->buf, 1, j->len, f) != j->len) {
        return -1;
    }
    j->len = 0;
    j->empty[0] = true;
    if (fputc('\n', f) == EOF) {
        return -1;
    }
    return 0;
}

static bool reserve(json_out *j, size_t more)
{
    if (j->failed) {
        return false;
    }
    if (more <= j->cap - j->len) {
        return true;
    }
    if (more > JSON_MAX_OUTPUT - j->len) {
        j->failed = true;
        return false;
    }
    size_t cap = j->cap ? j->cap : 4096;
    while (cap - j->len < more) {
        cap *= 2;
    }
    if (cap > JSON_MAX_OUTPUT) {
        cap = JSON_MAX_OUTPUT;
    }
    char *p = realloc(j->buf, cap);
    if (p == NULL) {
        j->failed = true;
        return false;
    }
    j->buf = p;
    j->cap = cap;
    return true;
}

static void put(json_out *j, const char *p, size_t n)
{
    if (reserve(j, n)) {
        memcpy(j->buf + j->len, p, n);
        j->len += n;
    }
}

static void putc1(json_out *j, char c)
{
    put(j, &c, 1);
}

static void newline(json_out *j)
{
    if (!j->pretty) {
        return;
    }
    putc1(j, '\n');
    for (unsigned i = 0; i < j->depth; i++) {
        put(j, "  ", 2);
    }
}

/* Called before every key, and before every value that does not follow a key. */
static void separate(json_out *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (!j->empty[j->depth]) {
        putc1(j, ',');
    }
    j->empty[j->depth] = false;
    if (j->depth > 0) {
        newline(j);
    }
}

static void nest_open(json_out *j, char c)
{
    separate(j);
    if (j->depth + 1 >= JSON_MAX_DEPTH) {
        j->failed = true;
        return;
    }
    putc1(j, c);
    j->depth++;
    j->empty[j->depth] = true;
}

static void nest_close(json_out *j, char c)
{
    if (j->depth == 0) {
        j->failed = true;
        return;
    }
    bool was_empty = j->empty[j->depth];
    j->depth--;
    if (!was_empty) {
        newline(j);
    }
    putc1(j, c);
}

void json_obj_begin(json_out *j)
{
    nest_open(j, '{');
}

void json_obj_end(json_out *j)
{
    nest_close(j, '}');
}

void json_arr_begin(json_out *j)
{
    nest_open(j, '[');
}

void json_arr_end(json_out *j)
{
    nest_close(j, ']');
}

size_t json_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0; /* no overlong forms */
        } else if (c == 0xED) {
            hi = 0x9F; /* no UTF-16 surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F; /* nothing above U+10FFFF */
        }
    } else {
        return 0;
    }
    if (n < need || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return need;
}

static void put_escaped(json_out *j, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    putc1(j, '"');
    while (i < len && !j->failed) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t run = i;
        while (run < len) {
            unsigned char c = p[run];
            if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
                run++;
                continue;
            }
            if (c >= 0x80) {
                size_t n = json_utf8_len(p + run, len - run);
                if (n > 0) {
                    run += n;
                    continue;
                }
            }
            break;
        }
        if (run > i) {
            put(j, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i++];
        switch (c) {
        case '"':
            put(j, "\\\"", 2);
            break;
        case '\\':
            put(j, "\\\\", 2);
            break;
        case '\n':
            put(j, "\\n", 2);
            break;
        case '\r':
            put(j, "\\r", 2);
            break;
        case '\t':
            put(j, "\\t", 2);
            break;
        case '\b':
            put(j, "\\b", 2);
            break;
        case '\f':
            put(j, "\\f", 2);
            break;
        default: {
            /* Other control characters, DEL, and bytes outside well-formed UTF-8. */
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(j, u, sizeof(u));
            break;
        }
        }
    }
    putc1(j, '"');
}

void json_key(json_out *j, const char *key)
{
    separate(j);
    put_escaped(j, key, strlen(key));
    if (j->pretty) {
        put(j, ": ", 2);
    } else {
        putc1(j, ':');
    }
    j->after_key = true;
}

void json_null(json_out *j)
{
    separate(j);
    put(j, "null", 4);
}

void json_bool(json_out *j, bool v)
{
    separate(j);
    if (v) {
        put(j, "true", 4);
    } else {
        put(j, "false", 5);
    }
}

void json_uint(json_out *j, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    separate(j);
    if (n > 0) {
        put(j, tmp, (size_t)n);
    }
}

void json_int(json_out *j, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    separate(j);
    if (n > 0) {
        put(j, tmp, (size_t)n);
    }
}

void json_number_text(json_out *j, const char *text)
{
    separate(j);
    put(j, text, strlen(text));
}

void json_str(json_out *j, const char *p, size_t len)
{
    separate(j);
    put_escaped(j, p, len);
}

void json_cstr(json_out *j, const char *s)
{
    if (s == NULL) {
        json_null(j);
    } else {
        json_str(j, s, strlen(s));
    }
}

void json_view(json_out *j, csip_str s)
{
    if (s.p == NULL) {
        json_null(j);
    } else {
        json_str(j, s.p, s.len);
    }
}

void json_kstr(json_out *j, const char *key, const char *p, size_t len)
{
    json_key(j, key);
    json_str(j, p, len);
}

void json_kcstr(json_out *j, const char *key, const char *s)
{
    json_key(j, key);
    json_cstr(j, s);
}

void json_kview(json_out *j, const char *key, csip_str s)
{
    json_key(j, key);
    json_view(j, s);
}

void json_kuint(json_out *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_uint(j, v);
}

void json_kint(json_out *j, const char *key, int64_t v)
{
    json_key(j, key);
    json_int(j, v);
}

void json_kbool(json_out *j, const char *key, bool v)
{
    json_key(j, key);
    json_bool(j, v);
}

void json_knull(json_out *j, const char *key)
{
    json_key(j, key);
    json_null(j);
}
