/*
 * User accounts for digest authentication, in SQLite (csip/store.h).
 */
#include "base/base_int.h"
#include "csip/store.h"

#include <openssl/rand.h>
#include <sqlite3.h>
#include <string.h>

static const char users_schema[] =
    "CREATE TABLE IF NOT EXISTS users ("
    " username TEXT NOT NULL, realm TEXT NOT NULL,"
    " ha1_md5 TEXT NOT NULL, ha1_sha256 TEXT NOT NULL, ha1_sha512_256 TEXT NOT NULL,"
    " uh_md5 TEXT NOT NULL, uh_sha256 TEXT NOT NULL, uh_sha512_256 TEXT NOT NULL,"
    " PRIMARY KEY (username, realm));"
    "CREATE INDEX IF NOT EXISTS users_uh_md5 ON users (uh_md5);"
    "CREATE INDEX IF NOT EXISTS users_uh_sha256 ON users (uh_sha256);"
    "CREATE INDEX IF NOT EXISTS users_uh_sha512_256 ON users (uh_sha512_256);"
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);";

enum {
    UST_PUT,
    UST_DEL,
    UST_LIST,
    UST_HA1,              /* three statements, one per base algorithm */
    UST_UH = UST_HA1 + 3, /* the same by userhash */
    UST_SECRET_GET = UST_UH + 3,
    UST_SECRET_PUT,
    UST__COUNT
};

static const char *const ust_sql[UST__COUNT] = {
    [UST_PUT] = "INSERT OR REPLACE INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [UST_DEL] = "DELETE FROM users WHERE username = ?1 AND realm = ?2",
    [UST_LIST] = "SELECT username, realm FROM users ORDER BY realm, username",
    [UST_HA1] = "SELECT ha1_md5 FROM users WHERE username = ?1 AND realm = ?2",
    [UST_HA1 + 1] = "SELECT ha1_sha256 FROM users WHERE username = ?1 AND realm = ?2",
    [UST_HA1 + 2] = "SELECT ha1_sha512_256 FROM users WHERE username = ?1 AND realm = ?2",
    [UST_UH] = "SELECT ha1_md5 FROM users WHERE uh_md5 = ?1 AND realm = ?2",
    [UST_UH + 1] = "SELECT ha1_sha256 FROM users WHERE uh_sha256 = ?1 AND realm = ?2",
    [UST_UH + 2] = "SELECT ha1_sha512_256 FROM users WHERE uh_sha512_256 = ?1 AND realm = ?2",
    [UST_SECRET_GET] = "SELECT value FROM secrets WHERE name = ?1",
    [UST_SECRET_PUT] = "INSERT OR IGNORE INTO secrets VALUES (?1, ?2)",
};

/* The base algorithms, in the column order of the table. */
static const csip_auth_alg base_algs[3] = {CSIP_AUTH_ALG_MD5, CSIP_AUTH_ALG_SHA256,
                                           CSIP_AUTH_ALG_SHA512_256};

struct csip_userdb {
    const csip_mem *mem;
    sqlite3 *db;
    sqlite3_stmt *st[UST__COUNT];
};

void csip_userdb_close(csip_userdb *u)
{
    if (!u)
        return;
    for (int i = 0; i < UST__COUNT; i++)
        sqlite3_finalize(u->st[i]);
    sqlite3_close(u->db);
    csip__free(u->mem, u);
}

int csip_userdb_open(const char *path, const csip_mem *mem, csip_userdb **out)
{
    if (!path || !out)
        return CSIP_ERR_INVALID_ARG;
    *out = NULL;
    csip_userdb *u = csip__malloc(mem, sizeof *u);
    if (!u)
        return CSIP_ERR_NOMEM;
    memset(u, 0, sizeof *u);
    u->mem = mem;
    if (sqlite3_open_v2(path, &u->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(u->db, "PRAGMA busy_timeout=5000", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(u->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
        /* Read through a memory map: another connection's writes (the location
           store's) would otherwise cost this one a pread per page it reads. */
        sqlite3_exec(u->db, "PRAGMA mmap_size=268435456", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(u->db, users_schema, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    for (int i = 0; i < UST__COUNT; i++)
        if (sqlite3_prepare_v3(u->db, ust_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &u->st[i], NULL) !=
            SQLITE_OK)
            goto fail;
    *out = u;
    return 0;
fail:
    csip_userdb_close(u);
    return CSIP_ERR_STORE;
}

static bool text_ok(csip_str s)
{
    return s.p && s.len > 0 && s.len < 1024 && memchr(s.p, 0, s.len) == NULL;
}

static void bind_str(sqlite3_stmt *st, int i, csip_str s)
{
    sqlite3_bind_text(st, i, s.p, (int)s.len, SQLITE_STATIC);
}

/* Steps a statement that returns no row, then resets it. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : CSIP_ERR_STORE;
}

int csip_userdb_put(csip_userdb *u, csip_str username, csip_str realm, csip_str password)
{
    if (!u || !text_ok(username) || !text_ok(realm) || !password.p)
        return CSIP_ERR_INVALID_ARG;
    char h[6][CSIP_AUTH_HEX_MAX];
    for (int i = 0; i < 3; i++)
        if (csip_auth_ha1(base_algs[i], username, realm, password, h[i]) != 0 ||
            csip_auth_userhash(base_algs[i], username, realm, h[3 + i]) != 0)
            return CSIP_ERR_NOMEM;
    sqlite3_stmt *st = u->st[UST_PUT];
    bind_str(st, 1, username);
    bind_str(st, 2, realm);
    for (int i = 0; i < 6; i++)
        sqlite3_bind_text(st, 3 + i, h[i], -1, SQLITE_TRANSIENT);
    int rc = run(st);
    OPENSSL_cleanse(h, sizeof h);
    return rc;
}

int csip_userdb_remove(csip_userdb *u, csip_str username, csip_str realm)
{
    if (!u || !text_ok(username) || !text_ok(realm))
        return CSIP_ERR_INVALID_ARG;
    sqlite3_stmt *st = u->st[UST_DEL];
    bind_str(st, 1, username);
    bind_str(st, 2, realm);
    int rc = run(st);
    if (rc == 0 && sqlite3_changes(u->db) == 0)
        return CSIP_ERR_NOT_FOUND;
    return rc;
}

static csip_str col_str(sqlite3_stmt *st, int i)
{
    const char *p = (const char *)sqlite3_column_text(st, i);
    return p ? (csip_str){p, (size_t)sqlite3_column_bytes(st, i)} : CSIP_STR_NULL;
}

int csip_userdb_list(csip_userdb *u, int (*fn)(void *, csip_str, csip_str), void *user_data)
{
    if (!u || !fn)
        return CSIP_ERR_INVALID_ARG;
    sqlite3_stmt *st = u->st[UST_LIST];
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ret = fn(user_data, col_str(st, 0), col_str(st, 1));
        if (ret)
            break;
    }
    if (!ret && rc != SQLITE_DONE)
        ret = CSIP_ERR_STORE;
    sqlite3_reset(st);
    return ret;
}

int csip_userdb_begin(csip_userdb *u)
{
    return u && sqlite3_exec(u->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : CSIP_ERR_STORE;
}

int csip_userdb_commit(csip_userdb *u)
{
    return u && sqlite3_exec(u->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : CSIP_ERR_STORE;
}

int csip_userdb_lookup(void *user_data, csip_str username, bool userhash, csip_str realm,
                       csip_auth_alg alg, char *ha1, size_t ha1_cap)
{
    csip_userdb *u = user_data;
    if (!u || !ha1 || ha1_cap < CSIP_AUTH_HEX_MAX)
        return CSIP_ERR_INVALID_ARG;
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (csip_auth_alg_base(alg) == base_algs[i])
            which = (userhash ? UST_UH : UST_HA1) + i;
    if (which < 0)
        return CSIP_ERR_NOT_FOUND;
    sqlite3_stmt *st = u->st[which];
    bind_str(st, 1, username);
    bind_str(st, 2, realm);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW) {
        csip_str h = col_str(st, 0);
        if (h.len + 1 > ha1_cap) {
            ret = CSIP_ERR_STORE;
        } else {
            memcpy(ha1, h.p, h.len);
            ha1[h.len] = '\0';
            ret = 0;
        }
    } else {
        ret = rc == SQLITE_DONE ? CSIP_ERR_NOT_FOUND : CSIP_ERR_STORE;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

int csip_userdb_secret(csip_userdb *u, const char *name, uint8_t *key, size_t len)
{
    if (!u || !name || !key || len == 0 || len > 64)
        return CSIP_ERR_INVALID_ARG;
    uint8_t fresh[64];
    if (RAND_bytes(fresh, (int)len) != 1)
        return CSIP_ERR_NOMEM;
    /* Insert-or-ignore then read: two processes racing agree on one value. */
    sqlite3_stmt *put = u->st[UST_SECRET_PUT], *get = u->st[UST_SECRET_GET];
    sqlite3_bind_text(put, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(put, 2, fresh, (int)len, SQLITE_STATIC);
    int rc = run(put);
    OPENSSL_cleanse(fresh, sizeof fresh);
    if (rc)
        return rc;
    sqlite3_bind_text(get, 1, name, -1, SQLITE_STATIC);
    rc = CSIP_ERR_STORE;
    if (sqlite3_step(get) == SQLITE_ROW && (size_t)sqlite3_column_bytes(get, 0) == len) {
        memcpy(key, sqlite3_column_blob(get, 0), len);
        rc = 0;
    }
    sqlite3_reset(get);
    sqlite3_clear_bindings(get);
    return rc;
}
