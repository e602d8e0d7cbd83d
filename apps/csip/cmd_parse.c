/*
 * csip parse: reads a SIP message (a datagram, or a TCP byte stream with
 * --stream), checks it as a server would, and prints it as JSON.
 *
 * Datagram mode follows RFC 3261 §18.3: octets after the body announced by
 * Content-Length are ignored. Stream mode frames messages by Content-Length
 * (mandatory on streams) and skips RFC 5626 CRLF keep-alives between them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "csip/csip.h"
#include "json.h"
#include "msg_json.h"

/* Largest input read (a stream file may hold many messages). */
#define PARSE_MAX_INPUT (16u * 1024u * 1024u)

typedef struct parse_args {
    const char *path; /* NULL or "-" for standard input */
    bool stream;
    bool pretty;
    bool has_role;
    csip_role role;
} parse_args;

static void parse_usage(FILE *f)
{
    fprintf(f, "usage: csip parse [--role uas|proxy|registrar] [--stream] [--pretty] [FILE|-]\n"
               "\n"
               "Parses FILE (standard input when absent or '-') and prints it as JSON.\n"
               "\n"
               "  --role ROLE  also make the checks a UAS, proxy or registrar makes before\n"
               "               processing a request (RFC 3261 sections 8.2, 16.3, 10.3)\n"
               "  --stream     the input is a TCP byte stream: frame each message by its\n"
               "               Content-Length and print a JSON array, one object per message\n"
               "  --pretty     indent the JSON\n"
               "\n"
               "Exit status: 0 when every message is accepted, 1 when one is rejected (the\n"
               "JSON then holds an error object), 2 for a usage or I/O error.\n");
}

/* ------------------------------------------------------------------------- */
/* Arguments and input                                                        */

static int parse_role(const char *s, csip_role *out)
{
    if (strcmp(s, "uas") == 0) {
        *out = CSIP_ROLE_UAS;
    } else if (strcmp(s, "proxy") == 0) {
        *out = CSIP_ROLE_PROXY;
    } else if (strcmp(s, "registrar") == 0) {
        *out = CSIP_ROLE_REGISTRAR;
    } else {
        return -1;
    }
    return 0;
}

static const char *role_name(csip_role role)
{
    switch (role) {
    case CSIP_ROLE_UAS:
        return "uas";
    case CSIP_ROLE_PROXY:
        return "proxy";
    case CSIP_ROLE_REGISTRAR:
        return "registrar";
    }
    return "";
}

/* @return -1 after printing why (usage error), 1 for --help, 0 to go on. */
static int parse_argv(int argc, char **argv, parse_args *a)
{
    bool options = true;

    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
        } else if (options && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            return 1;
        } else if (options && strcmp(arg, "--stream") == 0) {
            a->stream = true;
        } else if (options && strcmp(arg, "--pretty") == 0) {
            a->pretty = true;
        } else if (options && (strcmp(arg, "--role") == 0 || strncmp(arg, "--role=", 7) == 0)) {
            const char *v = arg[6] == '=' ? arg + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (v == NULL || parse_role(v, &a->role) != 0) {
                fprintf(stderr, "csip parse: --role takes uas, proxy or registrar\n");
                return -1;
            }
            a->has_role = true;
        } else if (options && arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "csip parse: unknown option '%s'\n", arg);
            return -1;
        } else if (a->path != NULL) {
            fprintf(stderr, "csip parse: only one input file may be given\n");
            return -1;
        } else {
            a->path = arg;
        }
    }
    return 0;
}

/* Reads the whole input. @return 0, or -1 after printing why. */
static int read_input(const char *path, char **out, size_t *out_len)
{
    bool use_stdin = path == NULL || strcmp(path, "-") == 0;
    const char *shown = use_stdin ? "standard input" : path;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "csip parse: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > PARSE_MAX_INPUT + 1) {
                ncap = PARSE_MAX_INPUT + 1;
            }
            if (ncap - len == 0) {
                fprintf(stderr, "csip parse: %s: input larger than %u bytes\n", shown,
                        PARSE_MAX_INPUT);
                rc = -1;
                break;
            }
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                fprintf(stderr, "csip parse: out of memory\n");
                rc = -1;
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "csip parse: error reading %s\n", shown);
                rc = -1;
            }
            break;
        }
    }
    if (!use_stdin) {
        fclose(f);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Errors                                                                     */

/* Computes the 1-based line and column of offset off in buf. */
static void line_column(const char *buf, size_t len, size_t off, uint64_t *line, uint64_t *col)
{
    const char *p = buf;
    const char *end = buf + (off < len ? off : len);
    const char *start = buf;

    *line = 1;
    while (p < end) {
        if (*p++ == '\n') {
            (*line)++;
            start = p;
        }
    }
    *col = (uint64_t)(end - start) + 1;
}

/* The members of the error object of a parse or validation failure. */
static void emit_parse_error(json_out *j, const csip_parse_error *e, int code)
{
    int err = e->code != 0 ? e->code : code;

    json_kcstr(j, "error", csip_err_name(err));
    json_kcstr(j, "message", csip_strerror(err));
    json_kuint(j, "offset", e->offset);
    json_kuint(j, "line", e->line);
    json_kuint(j, "column", e->column);
    json_kview(j, "header", e->header);
    json_key(j, "status");
    if (e->status != 0) {
        json_int(j, e->status);
    } else {
        json_null(j);
    }
    json_kcstr(j, "reason",
               e->reason != NULL ? e->reason
                                 : (e->status != 0 ? csip_status_reason(e->status) : NULL));
}

/* The members of the error object of a role check refusal. */
static void emit_role_refusal(json_out *j, const csip_check_result *r, csip_role role)
{
    size_t nu = r->n_unsupported;

    if (nu > sizeof(r->unsupported) / sizeof(r->unsupported[0])) {
        nu = sizeof(r->unsupported) / sizeof(r->unsupported[0]);
    }
    json_kcstr(j, "error", "ROLE_CHECK");
    json_kcstr(j, "role", role_name(role));
    json_kint(j, "status", r->status);
    json_kcstr(j, "reason", r->reason != NULL ? r->reason : csip_status_reason(r->status));
    json_key(j, "header");
    if (r->header.p != NULL && r->header.len > 0) {
        json_view(j, r->header);
    } else {
        json_null(j);
    }
    json_key(j, "unsupported");
    json_arr_begin(j);
    for (size_t i = 0; i < nu; i++) {
        json_view(j, r->unsupported[i]);
    }
    json_arr_end(j);
    json_kcstr(j, "cause", r->err != 0 ? csip_err_name(r->err) : NULL);
}

/*
 * Validates a parsed message (and makes the role checks), then writes the
 * members of its JSON object, or those of the error object when it is
 * refused, into the object the caller has opened.
 * @return true when the message is accepted.
 */
static bool check_and_emit(json_out *j, const csip_msg *msg, const parse_args *a)
{
    csip_parse_error verr;
    memset(&verr, 0, sizeof(verr));
    int vrc = csip_msg_validate(msg, &verr);

    if (a->has_role && csip_msg_is_request(msg)) {
        csip_check_opts opts;
        csip_check_result res;
        memset(&opts, 0, sizeof(opts));
        memset(&res, 0, sizeof(res));
        int status = csip_check_request(msg, a->role, &opts, &res);
        /*
         * A 400 caused by validation is shown with csip_msg_validate()'s
         * details (position, header); every other refusal, including the
         * role-specific answers to an invalid request (505, 501), as is.
         */
        bool validation_400 = status == 400 && res.err != 0 && vrc != 0;
        if (status != 0 && !validation_400) {
            emit_role_refusal(j, &res, a->role);
            return false;
        }
    }
    if (vrc != 0) {
        emit_parse_error(j, &verr, vrc);
        return false;
    }
    msg_json_members(j, msg);
    return true;
}

/* ------------------------------------------------------------------------- */
/* Modes                                                                      */

static bool run_datagram(json_out *j, const char *buf, size_t len, const parse_args *a)
{
    csip_msg *msg = NULL;
    csip_parse_error perr;
    bool ok;

    memset(&perr, 0, sizeof(perr));
    json_obj_begin(j);
    int rc = csip_msg_parse(buf, len, NULL, &msg, &perr);
    if (rc != 0) {
        emit_parse_error(j, &perr, rc);
        json_obj_end(j);
        csip_msg_free(msg);
        return false;
    }
    ok = check_and_emit(j, msg, a);
    if (ok) {
        /* RFC 3261 §18.3: octets after the announced body are discarded. */
        size_t used = csip_msg_raw(msg).len;
        json_kuint(j, "ignored_octets", used < len ? len - used : 0);
    }
    json_obj_end(j);
    csip_msg_free(msg);
    return ok;
}

/* The error object for a stream that ends inside a message. */
static void emit_incomplete(json_out *j, const char *msg_start, size_t avail, size_t at)
{
    uint64_t line, col;

    line_column(msg_start, avail, avail, &line, &col);
    json_obj_begin(j);
    json_kcstr(j, "error", csip_err_name(CSIP_ERR_INCOMPLETE));
    json_kcstr(j, "message", csip_strerror(CSIP_ERR_INCOMPLETE));
    json_kuint(j, "offset", avail);
    json_kuint(j, "line", line);
    json_kuint(j, "column", col);
    json_knull(j, "header");
    json_knull(j, "status");
    json_knull(j, "reason");
    json_kuint(j, "message_offset", at);
    json_obj_end(j);
}

static bool run_stream(json_out *j, const char *buf, size_t len, const parse_args *a)
{
    csip_limits limits;
    csip_stream st;
    size_t pos = 0;
    bool ok = true;

    memset(&limits, 0, sizeof(limits));
    json_arr_begin(j);
    while (pos < len && ok) {
        size_t skip = 0, mlen = 0;
        csip_parse_error perr;
        csip_msg *msg = NULL;

        memset(&perr, 0, sizeof(perr));
        csip_stream_init(&st);
        int rc = csip_stream_frame(&st, buf + pos, len - pos, &limits, &skip, &mlen, &perr);
        if (skip > len - pos) {
            skip = len - pos;
        }
        pos += skip;
        if (rc == CSIP_ERR_INCOMPLETE) {
            if (pos < len) {
                /* The input ends inside a message: a stream must wait for more. */
                emit_incomplete(j, buf + pos, len - pos, pos);
                ok = false;
            }
            break;
        }
        if (rc == 0 && (mlen == 0 || mlen > len - pos)) {
            rc = CSIP_ERR_FATAL; /* cannot happen with a correct framer */
        }
        if (rc == 0) {
            rc = csip_msg_parse_stream(buf + pos, mlen, NULL, &msg, &perr);
        }
        json_obj_begin(j);
        if (rc != 0) {
            emit_parse_error(j, &perr, rc);
            json_kuint(j, "message_offset", pos);
            json_obj_end(j);
            csip_msg_free(msg);
            ok = false;
            break;
        }
        ok = check_and_emit(j, msg, a);
        json_kuint(j, "message_offset", pos);
        json_obj_end(j);
        csip_msg_free(msg);
        pos += mlen;
    }
    json_arr_end(j);
    return ok;
}

int cmd_parse(int argc, char **argv)
{
    parse_args args;
    char *buf = NULL;
    size_t len = 0;
    json_out j;

    int rc = parse_argv(argc, argv, &args);
    if (rc != 0) {
        parse_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (read_input(args.path, &buf, &len) != 0) {
        return CLI_EXIT_USAGE;
    }
    json_init(&j, args.pretty);
    bool ok = args.stream ? run_stream(&j, buf, len, &args) : run_datagram(&j, buf, len, &args);
    free(buf);
    if (json_flush(&j, stdout) != 0) {
        fprintf(stderr, "csip parse: %s\n",
                json_failed(&j) ? "out of memory or output too large" : "write error");
        json_free(&j);
        return CLI_EXIT_USAGE;
    }
    json_free(&j);
    return ok ? CLI_EXIT_OK : CLI_EXIT_REJECT;
}
