/*
 * The csip tool: keeping a Contact registered (RFC 3261 §10.2), shared by
 * `csip register` and `csip answer`. The registration runs on a command's ua
 * (its endpoint and target): the REGISTERs of a run share a Call-ID and From
 * tag with CSeq going up (§10.2.4), digest challenges are answered (ua_auth),
 * a 423 is obeyed (Min-Expires), the binding is refreshed before it expires,
 * and removed (Expires: 0) when the command stops.
 *
 * The command feeds the ua's responses and terminated transactions in
 * (ua_reg_on_response(), ua_reg_on_terminated()) and learns the outcome
 * through the callbacks. Define _DEFAULT_SOURCE before including (uv.h).
 */
#ifndef CSIP_APP_REG_H
#define CSIP_APP_REG_H

#include "ua.h"

/* The expiry asked for without --expires, seconds. */
#define UA_REG_DEFAULT_EXPIRES 3600u

typedef struct ua_reg ua_reg;

struct ua_reg {
    /* Set by the command before ua_reg_begin() (views must outlive the run). */
    ua *u;
    const char *cmd;
    csip_uri aor;
    const char *user, *password, *contact_host;
    uint32_t expires; /* asked for */
    bool once;        /* registered: done(0) at once, the binding left in place */
    /* The run is over: exit status (0 registered with --once, or unregistered). */
    void (*done)(ua_reg *r, int code);
    /* A timeout, transport error or 503 before anything was registered: return
     * true when the command tries another target (it calls ua_reg_begin() again). */
    bool (*failover)(ua_reg *r);
    /* The binding stands for `granted` seconds (optional). */
    void (*registered)(ua_reg *r, uint32_t granted);
    void *user_data;

    /* State */
    char ruri[300];
    char call_id[32];
    char from_tag[16];
    uint32_t cseq;
    char contact[400]; /* our Contact URI */
    csip_uri contact_uri;
    ua_auth auth;
    csip_txn *txn;
    bool unregistering; /* the exchange under way removes the binding */
    int too_brief;
    bool is_registered; /* our binding stands */
    bool stopping;      /* remove the binding and end */
    bool over;          /* done() ran */
    bool attached;      /* timers initialized */
    char user_buf[256]; /* the AOR's user part unescaped, the default user */
    uv_timer_t refresh;
    uv_timer_t deadline; /* --timeout, per exchange */
};

/*
 * Checks the AOR and options and prepares the run: the Request-URI (the AOR's
 * domain), the default user (the AOR's user part), Call-ID and tag. r's input
 * fields must be set (u, cmd, aor, …); the loop is not touched.
 * @return 0, or CLI_EXIT_USAGE with the message on stderr.
 */
int ua_reg_init(ua_reg *r);

/* Sets r's inputs for cmd on u, with the default expiry and the callbacks. */
void ua_reg_setup(ua_reg *r, const char *cmd, ua *u, void (*done)(ua_reg *r, int code),
                  bool (*failover)(ua_reg *r), void *user_data);

/*
 * Reads --expires N into r or --registrar URI into *registrar at argv[*i], as
 * the more() of ua_parse_args(): 1 taken, 0 neither, -1 a bad value.
 */
int ua_reg_parse_arg(ua_reg *r, const char *cmd, int argc, char **argv, int *i,
                     const char **registrar);

/*
 * Checks aor_text (header_safe: see ua_is_sip_uri()) into r->aor, runs
 * ua_reg_init(), then takes the registrar (registrar_text, else the AOR's
 * domain) into target_text and target and prepares its location in loc.
 * @return 0, or CLI_EXIT_USAGE with the message on stderr.
 */
int ua_reg_prepare(ua_reg *r, const char *aor_text, bool header_safe, const char *registrar_text,
                   char *target_text, size_t cap, csip_uri *target, ua_locate *loc, int transport);

/* Sets the timers up on the ua's loop (ua_reg_close() closes them). */
void ua_reg_attach(ua_reg *r);

/* Once the ua is open on a target: our Contact (the ua's socket), challenges
 * forgotten, the first REGISTER sent. done() may run (usage error: 2). */
void ua_reg_begin(ua_reg *r);

/* A response (or a synthesized 408/503) of the ua's layer: true when it was
 * the registration's. */
bool ua_reg_on_response(ua_reg *r, csip_txn *ct, const csip_msg *resp, int status);

/* A transaction of the layer ended. */
void ua_reg_on_terminated(ua_reg *r, csip_txn *t);

/* The command stops (a signal: `why` is printed, "signal 2"): removes the
 * binding when it stands, once the exchange under way ends; otherwise ends
 * the run (done(1): interrupted). */
void ua_reg_stop(ua_reg *r, const char *why);

/* Closes the timers and forgets the challenges (the run is over). */
void ua_reg_close(ua_reg *r);

#endif
