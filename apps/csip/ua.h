/*
 * The csip tool: what the network commands (options, register, and the ones
 * to come) share. A command owns a uv loop and a `ua`; the ua opens an
 * endpoint bound to the local address that reaches a target, sends requests
 * through client transactions and prints every message as one line (in full
 * with -v). `ua_locate` turns a URI into the targets to try (RFC 3263).
 *
 * Line format, for requests and responses:
 *   --> REGISTER sip:example.com (UDP 192.0.2.1:5060) Call-ID 1a2b3c4d
 *   <-- 200 OK (UDP 192.0.2.1:5060) Call-ID 1a2b3c4d
 * with " CSeq N" before "Call-ID" when the command asks for it.
 *
 * Define _DEFAULT_SOURCE before any include in a file that includes this one
 * (uv.h needs the POSIX types).
 */
#ifndef CSIP_APP_UA_H
#define CSIP_APP_UA_H

#include "csip/csip.h"
#include "csip/dns.h"
#include "csip/net.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define UA_MAX_TARGETS 16
#define UA_DEFAULT_TIMEOUT_MS 32000u

/* Options every network command takes. */
typedef struct ua_opts {
    int transport;       /* --transport: csip_transport, -1 when not given */
    uint64_t timeout_ms; /* --timeout */
    const char *ca_file; /* --ca-file */
    bool insecure;       /* --insecure */
    bool verbose;        /* -v */
} ua_opts;

/* Defaults: no transport, UA_DEFAULT_TIMEOUT_MS, system trust anchors. */
void ua_opts_init(ua_opts *o);

/*
 * Reads one common option at argv[*i] (advancing *i past its value).
 * @return 1 when it was one, 0 when it is not a common option, -1 for a bad
 *         value (the message, prefixed with cmd, is on stderr).
 */
int ua_opts_parse(ua_opts *o, const char *cmd, int argc, char **argv, int *i);

/*
 * Parses a command's arguments argv[1..] into o (after ua_opts_init()): the
 * common options, -h/--help (usage(stdout), returns -1), --user and
 * --password into *user and *password (when those are not NULL), the rest
 * through more(ctx, argc, argv, &i): it returns 1 for an argument it took
 * (advancing i past its value), 0 for one it does not know, -1 for a bad value
 * (its message on stderr). An argument more() does not know is the next of the
 * npos positional ones (*pos[0], *pos[1] …) unless it starts with '-' (a lone
 * "-" is one when dash is true); anything else is a usage error
 * (usage(stderr)), and so is a positional argument missing at the end.
 * @return 0, -1 after --help, or CLI_EXIT_USAGE.
 */
int ua_parse_args(ua_opts *o, const char *cmd, int argc, char **argv, void (*usage)(FILE *f),
                  const char **user, const char **password,
                  int (*more)(void *ctx, int argc, char **argv, int *i), void *ctx,
                  const char **const *pos, size_t npos, bool dash);

/* A command's entry: runs run(app, argc, argv) on a zeroed app of size bytes. */
int ua_main(size_t size, int (*run)(void *app, int argc, char **argv), int argc, char **argv);

/* Parses text as a sip: or sips: URI with a host into out; with header_safe,
 * also refuses text that cannot be written inside <> in a header. */
bool ua_is_sip_uri(const char *text, csip_uri *out, bool header_safe);

/* "0.5", "3", "10.25" seconds (below 100000) to milliseconds; false when
 * malformed or zero. */
bool ua_parse_seconds(const char *s, uint64_t *ms);

/* Writes n random characters of [0-9a-z] (from RAND_bytes) and a NUL. */
void ua_random_token(char *out, size_t n);

/* Writes the message bytes, then an empty line. */
void ua_print_raw(const char *p, size_t n);

/* ------------------------------------------------------------------------- */
/* Locating the server (RFC 3263) */

typedef struct ua_locate {
    csip_target targets[UA_MAX_TARGETS];
    size_t n, next; /* targets found, next to try */
    int transport;  /* the transport decided from the options and the URI, -1: DNS decides */
    csip_uri uri;   /* copied view: the text must outlive the locate */
    csip_resolver *resolver;
    void (*done)(void *user_data, int status);
    void *user_data;
} ua_locate;

/*
 * Decides the transport for uri (forced, else the URI's transport parameter,
 * else TLS for sips) and, for an IP literal or "localhost" (loopback, RFC
 * 6761 §6.3), the one target (n = 1). Other hosts need ua_locate_start().
 * @return 0, or CLI_EXIT_USAGE with the message on stderr.
 */
int ua_locate_init(ua_locate *l, const char *cmd, const csip_uri *uri, int forced_tp);

/*
 * Starts RFC 3263 location of the URI; done(user_data, status) runs later from
 * the loop, with l->targets filled when status is 0 (the forced transport,
 * if any, applied). @return 0, or a csip_err (done will not run).
 */
int ua_locate_start(ua_locate *l, uv_loop_t *loop, void (*done)(void *user_data, int status),
                    void *user_data);

/* Frees the resolver, if any (run the loop once more before closing it). */
void ua_locate_free(ua_locate *l);

/* ------------------------------------------------------------------------- */
/* The user agent: endpoint, requests, printing */

typedef struct ua {
    uv_loop_t *loop;
    const char *cmd; /* "csip options": prefix of error messages */
    const ua_opts *opts;
    bool show_cseq;   /* add " CSeq N" to each line */
    bool show_method; /* and the CSeq method to response lines (" CSeq 2 BYE") */
    /* Several transactions at once (call, answer): a retransmission is not
     * necessarily of the last request sent, so it is reported without it. */
    bool many_txns;

    csip_endpoint *ep;
    csip_target target;  /* where requests go */
    char local_host[64]; /* the local IP as in a URI ("192.0.2.1", "[2001:db8::1]") */
    uint16_t local_port; /* our listening port for the target's transport */
    char peer[80];       /* "UDP 192.0.2.1:5060" */

    char *sent; /* the last request sent, as printed (for -v of its retransmissions) */
    size_t sent_len;
    char sent_line[400]; /* its one-line form */
    uint64_t seen_retrans, seen_received;
    uv_check_t check; /* prints retransmissions and absorbed responses */
} ua;

/* Sets the ua up on loop (starts its check handle). */
void ua_init(ua *u, uv_loop_t *loop, const char *cmd, const ua_opts *opts);

/*
 * Opens an endpoint (UDP and TCP, any port) on the local address that reaches
 * t (loopback for loopback), with callbacks cb and user_data, and makes t the
 * target. Closes the previous endpoint, if any.
 * @return 0; 1 when no local address reaches t; 2 when the sockets cannot be
 *         opened (message on stderr).
 */
int ua_open(ua *u, const csip_target *t, const csip_txn_callbacks *cb, void *user_data);

/* Frees the endpoint (not from inside its callbacks) and the copy of the last request. */
void ua_close(ua *u);

/* Closes the endpoint and the check handle: the loop can then end. */
void ua_shutdown(ua *u);

/* The Via value for a new request to the target, with a fresh branch, into out. */
int ua_via(const ua *u, char *out, size_t cap);

/* The transport of the target, lowercase ("udp"), for URI parameters. */
const char *ua_transport_param(const ua *u);

/*
 * Prints req as one line (note appended when not NULL) and in full with -v,
 * then sends it in a new client transaction (req transferred) to the target.
 * @return 0, or a csip_err (the message is on stderr; req freed).
 */
int ua_send(ua *u, csip_msg *req, const char *note, void *txn_user_data, csip_txn **out);

/*
 * Prints a response line for on_response: resp (borrowed) or, when NULL, the
 * status the transaction layer made up (408 timeout, 503 transport error).
 */
void ua_print_response(ua *u, const csip_msg *resp, int status);

/* Prints the retransmissions and absorbed responses not printed yet. */
void ua_sync(ua *u);

/* For the on_request of commands that take no request: prints it and answers
 * 200 to OPTIONS, 481 to CANCEL (it matches nothing of ours), 480 to the rest
 * (nothing to an ACK, st NULL). */
void ua_answer_request(ua *u, csip_txn *st, const csip_msg *req, const csip_addr *src);

/* ------------------------------------------------------------------------- */
/* The sender of a request to a TARGET (call, message) */

/* Who sends and through where (call, message): TARGET, --from, --proxy, --user, --password. */
typedef struct ua_sender {
    const char *target_text, *from_text, *proxy_text, *user, *password;
    const char *where; /* the URI located: --proxy, else TARGET */
    csip_uri target, from, next;
    char user_buf[256];
    char call_id[40], from_tag[24]; /* random, set by ua_sender_prepare() */
    uint32_t cseq;                  /* of the last request */
} ua_sender;

/* The headers of a new request from the sender: Via (fresh branch), From, To. */
typedef struct ua_sender_hdrs {
    char via[160], from[700], to[700];
} ua_sender_hdrs;

/* Reads --from or --proxy at argv[*i], as a more() of ua_parse_args(): 1
 * taken, 0 neither. */
int ua_sender_parse_arg(ua_sender *s, int argc, char **argv, int *i);

/*
 * After TARGET is checked: --from (default_from when not given) into s->from,
 * the default user (From's user part), and where requests go (--proxy, else
 * TARGET; header_safe: see ua_is_sip_uri()) into s->next and its location
 * prepared in loc. @return 0, or CLI_EXIT_USAGE with the message on stderr.
 */
int ua_sender_prepare(ua_sender *s, const char *cmd, const char *default_from, bool header_safe,
                      ua_locate *loc, int transport);

/* Writes the headers of a new request to TARGET through u. @return 0 or -1. */
int ua_sender_headers(const ua_sender *s, const ua *u, ua_sender_hdrs *h);

/* Starts spec (zeroed) for method to TARGET: Request-URI, h, the Call-ID and
 * the next CSeq (RFC 3261 §22.2: the same Call-ID, the next CSeq). */
void ua_sender_spec(ua_sender *s, const ua_sender_hdrs *h, csip_str method,
                    csip_request_spec *spec);

/* ------------------------------------------------------------------------- */
/* A command's run over the targets of one URI (register, answer, call, message) */

/*
 * Locates the URI (when it is not an IP literal), opens the endpoint on the
 * next target that works and calls opened(); ends the run from the loop with
 * ua_run_finish(), which closes the command's handles (teardown()), the
 * endpoint, the location and the run's own timers.
 */
/* What a command does at each step of its run. */
typedef struct ua_run_ops {
    void (*opened)(void *user_data);   /* the endpoint is open on the next target: send */
    void (*teardown)(void *user_data); /* closes the command's handles (first of all) */
    csip_txn_callbacks cb;             /* the endpoint's, with user_data */
} ua_run_ops;

typedef struct ua_run {
    ua *u;
    ua_locate *loc;
    const ua_run_ops *ops;
    void *user_data;
    /* Set by the command after ua_run_init(). */
    const csip_uri *located; /* the URI located: its host names a failure to locate it */
    const char *what;        /* its text: "final: no target of WHAT could be reached" */
    csip_txn **txn; /* the command's transaction, forgotten before each endpoint opens (NULL) */
    bool locate_timeout; /* "final: no final response" after --timeout while locating */

    uv_timer_t step;     /* next target, or the teardown, outside the layer's callbacks */
    uv_timer_t locating; /* with locate_timeout */
    bool done, closing;
    int exit_code;
} ua_run;

/* Sets the run up and its timers on u's loop. */
void ua_run_init(ua_run *r, ua *u, ua_locate *loc, const ua_run_ops *ops, void *user_data);

/* The first target: at once for an IP literal, else after RFC 3263 location. */
void ua_run_start(ua_run *r);

/* Ends the run with exit status code, from the loop (not inside a callback of the layer). */
void ua_run_finish(ua_run *r, int code);

/* A 408/503 before anything came back: moves on to the next target from the
 * loop and returns true, or returns false when none is left. */
bool ua_run_failover(ua_run *r);

/*
 * A signal (again: one came before): false to ignore it, when the run is over
 * or it is the first one again within 0.5 s (a wrapper such as timeout(1)
 * sends it to the process and to its group); a second one from the user,
 * later, prints "signal N again: <note>", ends the run with again_code and
 * returns false. @return true for the first one (its time noted in *at).
 */
bool ua_run_signal(ua_run *r, int signum, bool again, uint64_t *at, const char *note,
                   int again_code);

/* Runs the loop until the teardown is over. @return the exit status. */
int ua_run_wait(ua_run *r);

/* ------------------------------------------------------------------------- */
/* Messages to and from anywhere (commands with dialogs) */

/* "UDP 192.0.2.1:5060" for a, into out. */
void ua_addr_text(const csip_addr *a, char *out, size_t cap);

/*
 * Where a request for uri goes without DNS: its maddr or host as an IP
 * literal, or "localhost" (127.0.0.1); its port, else 5060 (5061 for TLS); its
 * transport parameter, else TLS for sips:, else UDP.
 * @return 0; CSIP_ERR_NOT_FOUND when the host is a name that needs RFC 3263;
 *         CSIP_ERR_INVALID_ARG for a URI that is not sip:/sips: or a transport
 *         the tool does not have.
 */
int ua_uri_addr(const csip_uri *uri, csip_addr *out);

/* The Via value without a branch for a request going out over transport tp
 * ("SIP/2.0/TCP 192.0.2.1:40112;rport"), our listening port for it. */
int ua_via_nobranch(const ua *u, csip_transport tp, char *out, size_t cap);

/* Our listening port for transport tp (TCP's for TLS). */
uint16_t ua_local_port(const ua *u, csip_transport tp);

/* As ua_send, to dst instead of the target. */
int ua_send_to(ua *u, csip_msg *req, const csip_addr *dst, const char *note, void *txn_user_data,
               csip_txn **out);

/* Prints an ACK (or another message sent outside a transaction) and sends it
 * to dst. msg is borrowed. @return 0 or a csip_err (message on stderr). */
int ua_send_stateless(ua *u, const csip_msg *msg, const csip_addr *dst, const char *note);

/* For a non-2xx final response to an INVITE client transaction ct: prints the
 * line of the ACK the transaction layer sent for it (RFC 3261 §17.1.1.3). */
void ua_print_layer_ack(ua *u, const csip_txn *ct);

/* Prints a received request (src: where it came from) as one line, note
 * appended when not NULL, and in full with -v. */
void ua_print_request_in(ua *u, const csip_msg *req, const csip_addr *src, const char *note);

/* As ua_print_response, from peer (the client transaction's peer) instead of
 * the target; note appended when not NULL. */
void ua_print_response_from(ua *u, const csip_msg *resp, int status, const csip_addr *peer,
                            const char *note);

/*
 * Prints a response we send on st (one line, in full with -v) and sends it
 * (resp transferred). @return 0 or the csip_err of csip_txn_respond().
 */
int ua_respond(ua *u, csip_txn *st, csip_msg *resp, const char *note);

/* Adds header lines "Name: value\r\n…" to m. @return 0 or a csip_err. */
int ua_msg_add_lines(csip_msg *m, const char *lines);

/* Builds the response `code` to st's request (csip_response_for(), a fresh To
 * tag when it has none), adds the extra header lines (NULL: none, each ending
 * in CRLF) and sends it with ua_respond(). */
int ua_respond_code(ua *u, csip_txn *st, int code, const char *extra);

/* ------------------------------------------------------------------------- */
/* Digest authentication (RFC 3261 §22, RFC 7616) for the requests of a command */

typedef struct ua_auth_slot {
    csip_hdr_id challenge_hdr; /* WWW-Authenticate or Proxy-Authenticate */
    const char *cred_name;     /* Authorization or Proxy-Authorization */
    csip_msg *msg;             /* owned copy of the response that challenged */
    const csip_auth *ch;       /* the challenge answered, inside msg */
    uint32_t nc;               /* requests sent under ch's nonce */
} ua_auth_slot;

typedef struct ua_auth {
    ua_auth_slot slot[2]; /* 0: 401, 1: 407 */
    const char *user, *password;
    const char *who; /* "the registrar", "the server": in the messages printed */
    int challenges;  /* answered in a row: the caller resets it for each exchange */
} ua_auth;

/* Challenges answered in a row before giving up. */
#define UA_MAX_CHALLENGES 6

void ua_auth_init(ua_auth *a, const char *user, const char *password, const char *who);

/* Forgets every challenge (another server, the end of the run). */
void ua_auth_clear(ua_auth *a);

/*
 * Appends the credentials for a request (method, Request-URI uri) answering
 * each challenge kept, "Name: value\r\n" to extra, and notes them to note
 * ("[Authorization SHA-256 nc=1]"; note unchanged when there is none). Each
 * answer has the next nonce count and a fresh cnonce.
 * @return 0, or -1 (message on stderr: the run fails).
 */
int ua_auth_add(ua_auth *a, const char *cmd, const char *method, const char *uri, char *extra,
                size_t cap, char *note, size_t note_cap);

/*
 * A 401 or 407 to a request: keeps its challenge for the next request and
 * returns true, or prints "final: …" (no usable challenge, no --password, the
 * credentials refused, too many challenges) and returns false. Credentials
 * are taken as refused when the challenge is not stale=true and either keeps
 * the nonce just used or follows an answer to a challenge just received.
 */
bool ua_auth_take(ua_auth *a, const csip_msg *resp, int status);

#endif
