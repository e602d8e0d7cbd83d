#define _DEFAULT_SOURCE /* clock_gettime */
/*
 * User accounts for digest authentication, in SQLite (csip/store.h).
 */
#include "base/base_int.h"
#include "csip/store.h"

#include <openssl/rand.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

static const char users_schema[] =
    "CREATE TABLE IF NOT EXISTS users ("
    " username TEXT NOT NULL, realm TEXT NOT NULL,"
    " ha1_md5 TEXT NOT NULL, ha1_sha256 TEXT NOT NULL, ha1_sha512_256 TEXT NOT NULL,"
    " uh_md5 TEXT NOT NULL, uh_sha256 TEXT NOT NULL, uh_sha512_256 TEXT NOT NULL,"
    " PRIMARY KEY (username, realm));"
    "CREATE INDEX IF NOT EXISTS users_uh_md5 ON users (uh_md5);"
    "CREATE INDEX IF NOT EXISTS users_uh_sha256 ON users (uh_sha256);"
    "CREATE INDEX IF NOT EXISTS users_uh_sha512_256 ON users (uh_sha512_256);"
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);"
    /* a version of the users table, bumped by every change whoever makes it
     * (csipd user add in another process, the sqlite3 shell): readers keep a
     * cache and check this one row now and then */
    "CREATE TABLE IF NOT EXISTS users_version (v INTEGER NOT NULL);"
    "INSERT INTO users_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM users_version);"
    "CREATE TRIGGER IF NOT EXISTS users_ins AFTER INSERT ON users"
    " BEGIN UPDATE users_version SET v = v + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS users_upd AFTER UPDATE ON users"
    " BEGIN UPDATE users_version SET v = v + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS users_del AFTER DELETE ON users"
    " BEGIN UPDATE users_version SET v = v + 1; END;";

enum {
    UST_PUT,
    UST_DEL,
    UST_LIST,
    UST_HA1,              /* three statements, one per base algorithm */
    UST_UH = UST_HA1 + 3, /* the same by userhash */
    UST_SECRET_GET = UST_UH + 3,
    UST_SECRET_PUT,
    UST_VERSION,
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
    [UST_VERSION] = "SELECT v FROM users_version",
};

/* The base algorithms, in the column order of the table. */
static const csip_auth_alg base_algs[3] = {CSIP_AUTH_ALG_MD5, CSIP_AUTH_ALG_SHA256,
                                           CSIP_AUTH_ALG_SHA512_256};

/*
 * Lookups are served from memory: the whole users table, loaded on first
 * use (or csip_userdb_warm()) and again whenever its version has changed
 * (read at most once per CACHE_CHECK_MS, and after our own changes). A
 * REGISTER then costs no database read, and a miss is authoritative (the
 * user does not exist).
 *
 * Layout, for few cache misses per lookup at 100,000s of users: each user is
 * one record in a single arena (its lengths, name, realm, then the six hex
 * strings: the three HA1s first, the three userhashes after), and two
 * open-addressing tables of 8-octet slots (32 bits of the key's hash, the
 * record's offset) point into it: one by (name, realm), one by (userhash,
 * realm) with three slots per user. A lookup reads one slot, then one record
 * whose first lines hold what it compares and returns. About 350 octets of
 * record and 100 of slots per user.
 */
#define CACHE_CHECK_MS 1000u

static csip_str col_str(sqlite3_stmt *st, int i);

typedef struct user_rec {
    uint16_t name_len, realm_len;
    uint8_t hex_len[6]; /* ha1 x3, then userhash x3 (column order) */
    char data[];        /* name, realm, hex[0..5]: no NULs */
} user_rec;

#define REC_ALIGN 8u

struct csip_userdb {
    const csip_mem *mem;
    sqlite3 *db;
    sqlite3_stmt *st[UST__COUNT];
    char *arena; /* user_rec records, each REC_ALIGN-aligned */
    size_t arena_len, arena_cap, n_users;
    uint64_t *by_name, *by_uh; /* slots: hash >> 32 << 32 | (offset / REC_ALIGN + 1); 0 empty */
    size_t name_mask, uh_mask;
    bool loaded;
    int64_t version;     /* of the loaded rows */
    uint64_t checked_ms; /* when the version was last read */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* FNV-1a of (which, name, realm); which is 0 by name, 1..3 by userhash. */
static uint64_t key_hash(uint32_t which, csip_str name, csip_str realm)
{
    uint64_t h = 0xcbf29ce484222325u ^ which;
    for (size_t i = 0; i < name.len; i++) {
        h ^= (unsigned char)name.p[i];
        h *= 0x100000001b3u;
    }
    h ^= 0xff;
    h *= 0x100000001b3u;
    for (size_t i = 0; i < realm.len; i++) {
        h ^= (unsigned char)realm.p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static const user_rec *rec_at(const csip_userdb *u, uint64_t slot)
{
    return (const user_rec *)(const void *)(u->arena +
                                            ((slot & 0xffffffffu) - 1) * (size_t)REC_ALIGN);
}

/* The hex string i (0..5) of a record. */
static csip_str rec_hex(const user_rec *r, int i)
{
    size_t off = (size_t)r->name_len + r->realm_len;
    for (int k = 0; k < i; k++)
        off += r->hex_len[k];
    return (csip_str){r->data + off, r->hex_len[i]};
}

static void cache_drop(csip_userdb *u)
{
    csip__free(u->mem, u->arena);
    csip__free(u->mem, u->by_name);
    csip__free(u->mem, u->by_uh);
    u->arena = NULL;
    u->by_name = u->by_uh = NULL;
    u->arena_len = u->arena_cap = u->n_users = 0;
    u->loaded = false;
}

static int64_t read_version(csip_userdb *u)
{
    sqlite3_stmt *st = u->st[UST_VERSION];
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

/* Appends a user's record to the arena; false when out of memory or too big. */
static bool rec_append(csip_userdb *u, sqlite3_stmt *st)
{
    csip_str name = col_str(st, 0), realm = col_str(st, 1), hex[6];
    size_t n = sizeof(user_rec) + name.len + realm.len;
    for (int i = 0; i < 6; i++) {
        hex[i] = col_str(st, 2 + i);
        if (hex[i].len >= CSIP_AUTH_HEX_MAX)
            hex[i].len = CSIP_AUTH_HEX_MAX - 1;
        n += hex[i].len;
    }
    if (name.len > UINT16_MAX || realm.len > UINT16_MAX)
        return false;
    n = (n + REC_ALIGN - 1) & ~(size_t)(REC_ALIGN - 1);
    if ((u->arena_len + n) / REC_ALIGN >= UINT32_MAX)
        return false;
    if (u->arena_len + n > u->arena_cap) {
        size_t cap = u->arena_cap ? u->arena_cap * 2 : 64u * 1024u;
        while (cap < u->arena_len + n)
            cap *= 2;
        char *a = csip__realloc(u->mem, u->arena, cap);
        if (!a)
            return false;
        u->arena = a;
        u->arena_cap = cap;
    }
    user_rec *r = (user_rec *)(void *)(u->arena + u->arena_len);
    r->name_len = (uint16_t)name.len;
    r->realm_len = (uint16_t)realm.len;
    char *p = r->data;
    memcpy(p, name.p, name.len);
    p += name.len;
    memcpy(p, realm.p, realm.len);
    p += realm.len;
    for (int i = 0; i < 6; i++) {
        r->hex_len[i] = (uint8_t)hex[i].len;
        if (hex[i].len)
            memcpy(p, hex[i].p, hex[i].len);
        p += hex[i].len;
    }
    u->arena_len += n;
    u->n_users++;
    return true;
}

static uint64_t *table_new(csip_userdb *u, size_t entries, size_t *mask)
{
    size_t slots = 64;
    while (slots < entries * 2)
        slots <<= 1;
    uint64_t *t = csip__malloc(u->mem, slots * sizeof *t);
    if (t)
        memset(t, 0, slots * sizeof *t);
    *mask = slots - 1;
    return t;
}

static void table_put(uint64_t *t, size_t mask, uint64_t h, size_t off)
{
    size_t i = (size_t)h & mask;
    while (t[i])
        i = (i + 1) & mask;
    t[i] = (h >> 32 << 32) | (uint64_t)(off / REC_ALIGN + 1);
}

/* Loads every user into memory. On failure the cache stays unloaded (lookups
 * then read the database). */
static void cache_load(csip_userdb *u)
{
    cache_drop(u);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(u->db,
                           "SELECT username, realm, ha1_md5, ha1_sha256, ha1_sha512_256, uh_md5,"
                           " uh_sha256, uh_sha512_256 FROM users",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    bool ok = true;
    int rc;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ok = rec_append(u, st);
    if (ok && rc != SQLITE_DONE)
        ok = false;
    sqlite3_finalize(st);
    if (ok) {
        u->by_name = table_new(u, u->n_users, &u->name_mask);
        u->by_uh = table_new(u, u->n_users * 3, &u->uh_mask);
    }
    if (!ok || !u->by_name || !u->by_uh) {
        cache_drop(u);
        return;
    }
    for (size_t off = 0; off < u->arena_len;) {
        const user_rec *r = (const user_rec *)(const void *)(u->arena + off);
        csip_str name = {r->data, r->name_len}, realm = {r->data + r->name_len, r->realm_len};
        table_put(u->by_name, u->name_mask, key_hash(0, name, realm), off);
        size_t n = sizeof(user_rec) + r->name_len + r->realm_len;
        for (int w = 0; w < 6; w++) {
            if (w >= 3)
                table_put(u->by_uh, u->uh_mask, key_hash((uint32_t)w - 2, rec_hex(r, w), realm),
                          off);
            n += r->hex_len[w];
        }
        off += (n + REC_ALIGN - 1) & ~(size_t)(REC_ALIGN - 1);
    }
    u->loaded = true;
}

/* Reloads the users when the table changed since they were loaded. */
static void cache_check(csip_userdb *u)
{
    uint64_t now = mono_ms();
    if (u->loaded && now - u->checked_ms < CACHE_CHECK_MS)
        return;
    int64_t v = read_version(u);
    u->checked_ms = now;
    if (!u->loaded || v != u->version) {
        u->version = v;
        cache_load(u);
    }
}

/* The HA1 of a lookup from memory: 1 found, 0 not found, -1 not loaded.
 * which: the base algorithm's column (0..2), plus 3 for a userhash. */
static int cache_find(csip_userdb *u, uint32_t which, csip_str name, csip_str realm, char *ha1)
{
    if (!u->loaded)
        return -1;
    bool uh = which >= 3;
    const uint64_t *t = uh ? u->by_uh : u->by_name;
    size_t mask = uh ? u->uh_mask : u->name_mask;
    uint64_t h = key_hash(uh ? which - 2 : 0, name, realm);
    for (size_t i = (size_t)h & mask; t[i]; i = (i + 1) & mask) {
        if (t[i] >> 32 != h >> 32)
            continue;
        const user_rec *r = rec_at(u, t[i]);
        if (r->realm_len != realm.len)
            continue;
        csip_str rn = uh ? rec_hex(r, (int)which) : (csip_str){r->data, r->name_len};
        if (!csip_str_eq(rn, name) || memcmp(r->data + r->name_len, realm.p, realm.len) != 0)
            continue;
        csip_str x = rec_hex(r, (int)(which % 3));
        if (x.len)
            memcpy(ha1, x.p, x.len);
        ha1[x.len] = '\0';
        return 1;
    }
    return 0;
}

int csip_userdb_warm(csip_userdb *u)
{
    if (!u)
        return CSIP_ERR_INVALID_ARG;
    cache_check(u);
    return u->loaded ? 0 : CSIP_ERR_STORE;
}

void csip_userdb_close(csip_userdb *u)
{
    if (!u)
        return;
    for (int i = 0; i < UST__COUNT; i++)
        sqlite3_finalize(u->st[i]);
    sqlite3_close(u->db);
    cache_drop(u);
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
    u->loaded = false; /* our own change is seen at once */
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
    u->loaded = false;
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
    /* memory first: the whole table is there, so a miss is an unknown user */
    cache_check(u);
    int found =
        cache_find(u, (uint32_t)(which - (userhash ? UST_UH : UST_HA1)) + (userhash ? 3u : 0u),
                   username, realm, ha1);
    if (found >= 0)
        return found ? 0 : CSIP_ERR_NOT_FOUND;
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
