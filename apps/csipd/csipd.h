/*
 * csipd internals: the configuration, the log, the server and the user
 * commands. See docs/csipd.md for the behaviour and every setting.
 */
#ifndef CSIPD_H
#define CSIPD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CSIPD_MAX_LIST 16

enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

typedef struct csipd_config {
    const char *listen[CSIPD_MAX_LIST + 1]; /* NULL-terminated */
    const char *domains[CSIPD_MAX_LIST + 1];
    const char *aliases[CSIPD_MAX_LIST + 1]; /* other names of this server */
    const char *db;
    const char *tls_cert, *tls_key, *tls_ca;
    const char *dns_servers; /* NULL: the system's */
    int log_level;
    bool auth;
    bool auth_user_mismatch; /* accept a username other than the AOR's user */
    int auth_algs[6];        /* csip_auth_alg, in order of preference */
    size_t n_auth_algs;
    uint32_t nonce_lifetime;
    uint32_t min_expires, max_expires, default_expires, max_bindings;
    uint32_t fail_burst, fail_interval_ms;
    uint32_t group_commit_ms; /* REGISTERs committed together within this window */
    uint32_t max_txns;
} csipd_config;

/* Reads the config file (if -c/--config is given) then the flags; the first
 * non-option argument and the rest are left in *rest. Exits with a message on
 * a usage error (status 2). */
void csipd_config_load(csipd_config *cfg, int argc, char **argv, int *rest);
void csipd_usage(FILE *f);

/* One log line: "2026-11-28T04:31:02.123Z info  <text>" on stderr. */
extern int csipd_log_level;
void csipd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs the server until SIGINT/SIGTERM. Returns the exit status. */
int csipd_serve(const csipd_config *cfg);
/* "user add|del|list|import ...": argv[0] is "user". Returns the exit status. */
int csipd_user_cmd(const csipd_config *cfg, int argc, char **argv);
/* Creates the parent directory of the database path when missing. */
int csipd_prepare_db_dir(const char *db);

#endif
