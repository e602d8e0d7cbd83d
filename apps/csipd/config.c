/*
 * csipd configuration: defaults, then the config file, then the flags.
 * File syntax: "key = value" lines, '#' starts a comment; list keys
 * (listen, domain, alias) repeat. Every flag is the key with two dashes.
 */
#define _DEFAULT_SOURCE /* strdup */
#include "csip/auth.h"
#include "csipd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void csipd_usage(FILE *f)
{
    fprintf(f, "usage: csipd [options]                     run the registrar in the foreground\n"
               "       csipd [options] user add USER [PASSWORD]\n"
               "       csipd [options] user del USER\n"
               "       csipd [options] user list\n"
               "       csipd [options] user import FILE    (SIPp CSV: user;password per line)\n"
               "\n"
               "USER is name or name@domain (default: the first domain). Without PASSWORD,\n"
               "user add reads it from the first line of standard input.\n"
               "\n"
               "options (each also a config-file key, without the dashes):\n"
               "  -c, --config FILE       config file (see docs/csipd.md)\n"
               "  -l, --listen SPEC       udp:127.0.0.1:5060, tcp:[::1]:5060, tls:0.0.0.0:5061\n"
               "                          (repeat; default udp and tcp on 127.0.0.1:5060)\n"
               "  -d, --domain NAME       a domain served, also its digest realm (repeat;\n"
               "                          default localhost)\n"
               "      --alias NAME        another name of this server (repeat)\n"
               "      --db PATH           SQLite database (default ./var/csipd.db)\n"
               "      --tls-cert FILE     PEM certificate chain, --tls-key FILE its key,\n"
               "      --tls-ca FILE       trust anchors for TLS clients\n"
               "      --dns-servers LIST  DNS servers for RFC 3263 (127.0.0.1:53,[::1]:53;\n"
               "                          default: the system's)\n"
               "      --log-level LEVEL   error, warn, info (default: a line per transaction),\n"
               "                          debug\n"
               "      --auth on|off       digest authentication of REGISTER (default on)\n"
               "      --auth-algorithms L challenges offered, in order (default SHA-256,MD5)\n"
               "      --auth-user-mismatch allow|deny  a username other than the AOR's user\n"
               "                          (default deny: 403)\n"
               "      --nonce-lifetime S  default 300\n"
               "      --min-expires S     default 60; --max-expires S default 86400;\n"
               "      --default-expires S default 3600; --max-bindings N per AOR, default 16\n"
               "      --fail-burst N      failed authentications allowed at once per source and\n"
               "                          per user (default 10), then one per\n"
               "      --fail-interval MS  (default 3000); beyond: 503 with Retry-After\n"
               "      --group-commit MS   REGISTERs arriving within MS share one database commit\n"
               "                          (it ends with the first input after MS, at the latest\n"
               "                          after 2*MS); their responses wait for it (default 20;\n"
               "                          0 = those read in one loop iteration)\n"
               "      --max-txns N        live transactions (default 1048576)\n"
               "  -h, --help\n");
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "csipd: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(csipd --help for usage)\n");
    exit(2);
}

static uint32_t parse_u32(const char *key, const char *v, uint32_t min, uint32_t max)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
        die_usage("bad value for %s: '%s'", key, v);
    return (uint32_t)n;
}

static bool parse_bool(const char *key, const char *v, const char *yes, const char *no)
{
    if (strcmp(v, yes) == 0)
        return true;
    if (strcmp(v, no) == 0)
        return false;
    die_usage("bad value for %s: '%s'", key, v);
}

/* Lists: the first value from a new source (file, then flags) replaces the
 * list, the next ones append. */
typedef struct list_state {
    int source[3];
} list_state;

static void list_add(const char **list, const char *key, const char *v, int *owner, int source)
{
    size_t n = 0;
    if (*owner != source) {
        list[0] = NULL;
        *owner = source;
    }
    while (list[n])
        n++;
    if (n == CSIPD_MAX_LIST)
        die_usage("too many values for %s (at most 16): '%s'", key, v);
    list[n] = v;
    list[n + 1] = NULL;
}

static bool set_key(csipd_config *c, list_state *ls, const char *key, const char *v, int source)
{
    if (strcmp(key, "listen") == 0)
        list_add(c->listen, key, v, &ls->source[0], source);
    else if (strcmp(key, "domain") == 0)
        list_add(c->domains, key, v, &ls->source[1], source);
    else if (strcmp(key, "alias") == 0)
        list_add(c->aliases, key, v, &ls->source[2], source);
    else if (strcmp(key, "db") == 0)
        c->db = v;
    else if (strcmp(key, "tls-cert") == 0)
        c->tls_cert = v;
    else if (strcmp(key, "tls-key") == 0)
        c->tls_key = v;
    else if (strcmp(key, "dns-servers") == 0)
        c->dns_servers = v;
    else if (strcmp(key, "tls-ca") == 0)
        c->tls_ca = v;
    else if (strcmp(key, "log-level") == 0) {
        static const char *const lv[] = {"error", "warn", "info", "debug"};
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(v, lv[i]) == 0)
                found = i;
        if (found < 0)
            die_usage("bad value for %s: '%s' (error, warn, info, debug)", key, v);
        c->log_level = found;
    } else if (strcmp(key, "auth") == 0)
        c->auth = parse_bool(key, v, "on", "off");
    else if (strcmp(key, "auth-algorithms") == 0) {
        /* "SHA-256,MD5": one challenge each, in this order */
        c->n_auth_algs = 0;
        const char *p = v;
        while (*p) {
            size_t n = strcspn(p, ", ");
            csip_auth_alg alg;
            if (n == 0 || c->n_auth_algs == 6 || csip_auth_alg_parse((csip_str){p, n}, &alg) != 0)
                die_usage("bad value for %s: '%s' (e.g. SHA-256,MD5)", key, v);
            c->auth_algs[c->n_auth_algs++] = (int)alg;
            p += n;
            while (*p == ',' || *p == ' ')
                p++;
        }
        if (c->n_auth_algs == 0)
            die_usage("bad value for %s: '%s' (e.g. SHA-256,MD5)", key, v);
    } else if (strcmp(key, "auth-user-mismatch") == 0)
        c->auth_user_mismatch = parse_bool(key, v, "allow", "deny");
    else if (strcmp(key, "nonce-lifetime") == 0)
        c->nonce_lifetime = parse_u32(key, v, 1, 86400);
    else if (strcmp(key, "min-expires") == 0)
        c->min_expires = parse_u32(key, v, 1, 86400 * 365);
    else if (strcmp(key, "max-expires") == 0)
        c->max_expires = parse_u32(key, v, 1, 86400 * 365);
    else if (strcmp(key, "default-expires") == 0)
        c->default_expires = parse_u32(key, v, 1, 86400 * 365);
    else if (strcmp(key, "max-bindings") == 0)
        c->max_bindings = parse_u32(key, v, 1, 1024);
    else if (strcmp(key, "fail-burst") == 0)
        c->fail_burst = parse_u32(key, v, 1, 1000000);
    else if (strcmp(key, "fail-interval") == 0)
        c->fail_interval_ms = parse_u32(key, v, 1, 3600000);
    else if (strcmp(key, "group-commit") == 0)
        c->group_commit_ms = parse_u32(key, v, 0, 1000);
    else if (strcmp(key, "max-txns") == 0)
        c->max_txns = parse_u32(key, v, 1, 1u << 24);
    else
        return false;
    return true;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static void load_file(csipd_config *c, list_state *ls, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "csipd: cannot open config file %s: %s\n", path, strerror(errno));
        exit(2);
    }
    char line[1024];
    unsigned lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "csipd: %s:%u: expected 'key = value'\n", path, lineno);
            exit(2);
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        /* keys may be written with '_' as well as '-' */
        for (char *k = key; *k; k++)
            if (*k == '_')
                *k = '-';
        char *v = strdup(val);
        if (!v) {
            fprintf(stderr, "csipd: out of memory\n");
            exit(1);
        }
        if (!set_key(c, ls, key, v, 1)) {
            fprintf(stderr, "csipd: %s:%u: unknown setting '%s'\n", path, lineno, key);
            exit(2);
        }
    }
    fclose(f);
}

void csipd_config_load(csipd_config *c, int argc, char **argv, int *rest)
{
    static const char *const def_listen[] = {"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"};
    memset(c, 0, sizeof *c);
    c->listen[0] = def_listen[0];
    c->listen[1] = def_listen[1];
    c->domains[0] = "localhost";
    c->db = "var/csipd.db";
    c->log_level = LOG_INFO;
    c->auth = true;
    c->nonce_lifetime = 300;
    c->group_commit_ms = 20;
    /* A proxied call keeps four transactions for up to 32 s (RFC 6026 Timer L
     * and M, Timer J): a few thousand calls per second need this many. */
    c->max_txns = 1u << 20;
    c->auth_algs[0] = CSIP_AUTH_ALG_SHA256;
    c->auth_algs[1] = CSIP_AUTH_ALG_MD5;
    c->n_auth_algs = 2;
    list_state ls = {{0, 0, 0}};

    /* The config file first, so that flags override it. */
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            load_file(c, &ls, argv[i + 1]);
            break;
        }
        if (strncmp(argv[i], "--config=", 9) == 0) {
            load_file(c, &ls, argv[i] + 9);
            break;
        }
        if (argv[i][0] != '-')
            break;
    }
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            csipd_usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        char key[64];
        const char *val = NULL;
        if (strcmp(a, "-c") == 0 || strcmp(a, "-l") == 0 || strcmp(a, "-d") == 0) {
            snprintf(key, sizeof key, "%s",
                     a[1] == 'c'   ? "config"
                     : a[1] == 'l' ? "listen"
                                   : "domain");
        } else if (strncmp(a, "--", 2) == 0) {
            const char *eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (n >= sizeof key)
                die_usage("unknown option %s", a);
            memcpy(key, a + 2, n);
            key[n] = '\0';
            if (eq)
                val = eq + 1;
        } else {
            die_usage("unknown option %s", a);
        }
        if (!val) {
            if (i + 1 >= argc)
                die_usage("%s needs a value", a);
            val = argv[++i];
        }
        if (strcmp(key, "config") == 0)
            continue;
        if (!set_key(c, &ls, key, val, 2))
            die_usage("unknown option %s", a);
    }
    if (!c->domains[0])
        die_usage("at least one domain is needed");
    if (c->min_expires && c->max_expires && c->min_expires > c->max_expires)
        die_usage("min-expires is above max-expires");
    if ((c->tls_cert != NULL) != (c->tls_key != NULL))
        die_usage("tls-cert and tls-key go together");
    *rest = i;
}
