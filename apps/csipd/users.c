/*
 * csipd user add|del|list|import: accounts in the users table of the
 * database (HA1 digests only, see csip_userdb in csip/store.h).
 */
#include "csip/csip.h"
#include "csip/store.h"
#include "csipd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int csipd_prepare_db_dir(const char *db)
{
    const char *slash = strrchr(db, '/');
    if (!slash || slash == db)
        return 0;
    char dir[1024];
    size_t n = (size_t)(slash - db);
    if (n >= sizeof dir)
        return -1;
    memcpy(dir, db, n);
    dir[n] = '\0';
    /* one level is enough for the default ./var; deeper paths must exist */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "csipd: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Splits "name@domain" (the last '@': a user name may hold one). */
static void split_user(const csipd_config *cfg, const char *arg, csip_str *user, csip_str *realm)
{
    const char *at = strrchr(arg, '@');
    if (at) {
        *user = (csip_str){arg, (size_t)(at - arg)};
        *realm = csip_str_c(at + 1);
    } else {
        *user = csip_str_c(arg);
        *realm = csip_str_c(cfg->domains[0]);
    }
}

static void warn_domain(const csipd_config *cfg, csip_str realm)
{
    for (size_t i = 0; cfg->domains[i]; i++)
        if (csip_str_ieq_c(realm, cfg->domains[i]))
            return;
    fprintf(stderr, "csipd: warning: %.*s is not a domain served by this configuration\n",
            (int)realm.len, realm.p);
}

static int print_user(void *ud, csip_str user, csip_str realm)
{
    (void)ud;
    printf("%.*s@%.*s\n", (int)user.len, user.p, (int)realm.len, realm.p);
    return 0;
}

static int import_csv(const csipd_config *cfg, csip_userdb *db, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "csipd: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[2048];
    unsigned lineno = 0, added = 0;
    int rc = csip_userdb_begin(db);
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        /* SIPp's first line says how to read the file */
        if (lineno == 1 && (strcmp(line, "SEQUENTIAL") == 0 || strcmp(line, "RANDOM") == 0 ||
                            strcmp(line, "USER") == 0 || strncmp(line, "PRINTF", 6) == 0))
            continue;
        char *sep = strchr(line, ';');
        if (!sep || sep == line) {
            fprintf(stderr, "csipd: %s:%u: expected user;password\n", path, lineno);
            rc = -1;
            break;
        }
        *sep = '\0';
        char *pw = sep + 1, *end = strchr(pw, ';');
        if (end)
            *end = '\0';
        csip_str user, realm;
        split_user(cfg, line, &user, &realm);
        rc = csip_userdb_put(db, user, realm, csip_str_c(pw));
        if (rc) {
            fprintf(stderr, "csipd: %s:%u: %s\n", path, lineno, csip_strerror(rc));
            break;
        }
        added++;
    }
    if (f != stdin)
        fclose(f);
    if (rc == 0)
        rc = csip_userdb_commit(db);
    if (rc) {
        fprintf(stderr, "csipd: import failed, nothing added\n");
        return 1;
    }
    printf("%u users imported\n", added);
    return 0;
}

int csipd_user_cmd(const csipd_config *cfg, int argc, char **argv)
{
    if (argc < 2) {
        csipd_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    bool ok_args = (strcmp(sub, "add") == 0 && (argc == 3 || argc == 4)) ||
                   (strcmp(sub, "del") == 0 && argc == 3) ||
                   (strcmp(sub, "list") == 0 && argc == 2) ||
                   (strcmp(sub, "import") == 0 && argc == 3);
    if (!ok_args) {
        csipd_usage(stderr);
        return 2;
    }
    if (csipd_prepare_db_dir(cfg->db) != 0)
        return 1;
    csip_userdb *db = NULL;
    int rc = csip_userdb_open(cfg->db, NULL, &db);
    if (rc) {
        fprintf(stderr, "csipd: cannot open the database %s: %s\n", cfg->db, csip_strerror(rc));
        return 1;
    }
    int status = 0;
    if (strcmp(sub, "list") == 0) {
        status = csip_userdb_list(db, print_user, NULL) == 0 ? 0 : 1;
    } else if (strcmp(sub, "import") == 0) {
        status = import_csv(cfg, db, argv[2]);
    } else {
        csip_str user, realm;
        split_user(cfg, argv[2], &user, &realm);
        if (strcmp(sub, "del") == 0) {
            rc = csip_userdb_remove(db, user, realm);
            if (rc == CSIP_ERR_NOT_FOUND) {
                fprintf(stderr, "csipd: no user %s\n", argv[2]);
                status = 1;
            } else if (rc) {
                fprintf(stderr, "csipd: %s\n", csip_strerror(rc));
                status = 1;
            } else {
                printf("deleted %.*s@%.*s\n", (int)user.len, user.p, (int)realm.len, realm.p);
            }
        } else {
            char pwbuf[1024];
            const char *pw = argc == 4 ? argv[3] : NULL;
            if (!pw) {
                if (!fgets(pwbuf, sizeof pwbuf, stdin)) {
                    fprintf(stderr, "csipd: no password given (argument or first line of stdin)\n");
                    csip_userdb_close(db);
                    return 2;
                }
                pwbuf[strcspn(pwbuf, "\r\n")] = '\0';
                pw = pwbuf;
            }
            warn_domain(cfg, realm);
            rc = csip_userdb_put(db, user, realm, csip_str_c(pw));
            if (rc) {
                fprintf(stderr, "csipd: cannot add %s: %s\n", argv[2],
                        rc == CSIP_ERR_INVALID_ARG ? "bad user name or domain" : csip_strerror(rc));
                status = 1;
            } else {
                printf("added %.*s@%.*s\n", (int)user.len, user.p, (int)realm.len, realm.p);
            }
        }
    }
    csip_userdb_close(db);
    return status;
}
