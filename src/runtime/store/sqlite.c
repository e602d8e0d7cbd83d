/*
 * The SQLite location store: the memory store (mem.c) for reads, every change
 * written to a SQLite database in WAL mode first, so that a binding is on
 * disk before the registrar builds its 200 OK (docs/internals/registrar.md);
 * inside a group commit, the changes are written by the group's commit,
 * before any response of the group is sent.
 *
 * Durability: in WAL mode a commit appends the transaction to the -wal file
 * with write(2) before sqlite3_step() returns, so once put() has returned the
 * binding survives SIGKILL of this process with synchronous=NORMAL (the
 * kernel holds the pages). synchronous=FULL adds an fsync of the WAL per
 * commit, which is only needed to survive an operating-system crash or a
 * power loss; it is a flag because it costs a disk flush per REGISTER.
 */
#include "base/base_int.h"
#include "csip/store.h"

#include <sqlite3.h>
#include <string.h>

enum {
    ST_PUT,
    ST_DEL,
    ST_DEL_ALL,
    ST_SEL_AOR,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST__COUNT
};

static const char *const st_sql[ST__COUNT] = {
    "INSERT OR REPLACE INTO location(aor, contact, params, path, call_id, cseq, q, expires_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "DELETE FROM location WHERE aor = ?1 AND contact = ?2",
    "DELETE FROM location WHERE aor = ?1",
    "SELECT aor, contact, params, path, call_id, cseq, q, expires_at FROM location"
    " WHERE aor = ?1",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS location ("
    " aor BLOB NOT NULL, contact BLOB NOT NULL, params BLOB, path BLOB,"
    " call_id BLOB NOT NULL, cseq INTEGER NOT NULL, q INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
    /* no index on expires_at: the sweeper finds expired bindings in memory
     * and deletes them by key, and a REGISTER spares the index update */
    "DROP INDEX IF EXISTS location_expires;";

struct csip_store_sqlite {
    const csip_mem *mem;
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    csip_store_mem *m;
    csip_location_store mops;
    bool in_txn;
    char *txn_aor; /* the AOR of the open transaction, reloaded on rollback */
    size_t txn_aor_len;
    /* A group commit: one database transaction around many AOR updates. The
     * AORs touched are kept to reload them from the database if the group
     * fails (a rollback inside it, or its commit). */
    bool in_group;
    bool group_failed;
    char **group_aor;
    size_t *group_aor_len;
    size_t n_group, cap_group;
    /* The group's database writes, queued in order and run together at its
     * commit (memory changes at once): the statements of a whole group then
     * run back to back, SQLite's code and pages warm from one to the next,
     * and the write lock is held only while they run. */
    struct gop *ops;
    size_t n_ops, cap_ops;
    char *opbuf; /* the queued writes' strings */
    size_t opbuf_len, opbuf_cap;
};

enum { GOP_PUT, GOP_DEL, GOP_DEL_ALL };

/* A queued write; its strings are at off in opbuf, one after the other:
 * aor, contact, params, path, call_id (a NULL one has no octets and its
 * null bit set). */
typedef struct gop {
    uint8_t kind;
    uint8_t nulls; /* bit i: string i is NULL */
    uint32_t cseq;
    int64_t q;
    int64_t expires_at;
    size_t off;
    uint32_t len[5];
} gop;

#define DB_FAIL CSIP_ERR_STORE

static void bind_str(sqlite3_stmt *st, int i, csip_str s)
{
    if (!s.p)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_blob(st, i, s.len ? s.p : "", (int)s.len, SQLITE_STATIC);
}

static csip_str col_str(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return CSIP_STR_NULL;
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    return (csip_str){p ? p : "", (size_t)n};
}

/* Runs a statement that returns no row, then resets it. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : DB_FAIL;
}

/* Puts every row that a SELECT of the columns of location returns into memory. */
static int load_rows(csip_store_sqlite *s, sqlite3_stmt *st)
{
    int rc, err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !err) {
        int64_t q = sqlite3_column_int64(st, 6);
        csip_binding b = {
            .aor = col_str(st, 0),
            .contact = col_str(st, 1),
            .params = col_str(st, 2),
            .path = col_str(st, 3),
            .call_id = col_str(st, 4),
            .cseq = (uint32_t)sqlite3_column_int64(st, 5),
            .has_q = q >= 0,
            .q = (uint16_t)(q >= 0 ? q : 1000),
            .expires_at = sqlite3_column_int64(st, 7),
        };
        err = s->mops.put(s->mops.user_data, &b);
    }
    if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = DB_FAIL;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_get(void *ud, csip_str aor, const csip_binding **out, size_t *n)
{
    csip_store_sqlite *s = ud;
    return s->mops.get(s->mops.user_data, aor, out, n);
}

/* The strings of a change: aor, contact, params, path, call_id. */
static void op_strings(const csip_binding *b, csip_str aor, csip_str contact, csip_str str[5])
{
    str[0] = aor;
    str[1] = contact;
    str[2] = b ? b->params : CSIP_STR_NULL;
    str[3] = b ? b->path : CSIP_STR_NULL;
    str[4] = b ? b->call_id : CSIP_STR_NULL;
}

/* Writes one change to the database (inside the open transaction). */
static int exec_op(csip_store_sqlite *s, int kind, const csip_str str[5], uint32_t cseq, int64_t q,
                   int64_t expires_at)
{
    sqlite3_stmt *st;
    if (kind == GOP_PUT) {
        st = s->st[ST_PUT];
        for (int i = 0; i < 5; i++)
            bind_str(st, i + 1, str[i]);
        sqlite3_bind_int64(st, 6, cseq);
        sqlite3_bind_int64(st, 7, q);
        sqlite3_bind_int64(st, 8, expires_at);
    } else {
        st = s->st[kind == GOP_DEL ? ST_DEL : ST_DEL_ALL];
        bind_str(st, 1, str[0]);
        if (kind == GOP_DEL)
            bind_str(st, 2, str[1]);
    }
    return run(st);
}

/* Queues a change of the open group, its strings copied. */
static int queue_op(csip_store_sqlite *s, int kind, const csip_str str[5], uint32_t cseq, int64_t q,
                    int64_t expires_at)
{
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += str[i].len;
    if (s->n_ops == s->cap_ops) {
        size_t cap = s->cap_ops ? s->cap_ops * 2 : 64;
        gop *o = csip__realloc(s->mem, s->ops, cap * sizeof *o);
        if (!o)
            return CSIP_ERR_NOMEM;
        s->ops = o;
        s->cap_ops = cap;
    }
    if (s->opbuf_cap - s->opbuf_len < total) {
        size_t cap = s->opbuf_cap ? s->opbuf_cap : 16384;
        while (cap - s->opbuf_len < total)
            cap *= 2;
        char *nb = csip__realloc(s->mem, s->opbuf, cap);
        if (!nb)
            return CSIP_ERR_NOMEM;
        s->opbuf = nb;
        s->opbuf_cap = cap;
    }
    gop *o = &s->ops[s->n_ops++];
    o->kind = (uint8_t)kind;
    o->nulls = 0;
    o->off = s->opbuf_len;
    for (int i = 0; i < 5; i++) {
        if (!str[i].p)
            o->nulls |= (uint8_t)(1u << i);
        o->len[i] = (uint32_t)str[i].len;
        if (str[i].len)
            memcpy(s->opbuf + s->opbuf_len, str[i].p, str[i].len);
        s->opbuf_len += str[i].len;
    }
    o->cseq = cseq;
    o->q = q;
    o->expires_at = expires_at;
    return 0;
}

/* Runs the queued changes of the group, in order. */
static int run_ops(csip_store_sqlite *s)
{
    for (size_t k = 0; k < s->n_ops; k++) {
        const gop *o = &s->ops[k];
        csip_str str[5];
        size_t at = o->off;
        for (int i = 0; i < 5; i++) {
            str[i] = (o->nulls & (1u << i)) ? CSIP_STR_NULL : (csip_str){s->opbuf + at, o->len[i]};
            at += o->len[i];
        }
        if (exec_op(s, o->kind, str, o->cseq, o->q, o->expires_at) != 0)
            return DB_FAIL;
    }
    return 0;
}

/* One change to the database: queued inside a group, written at once outside one. */
static int write_op(csip_store_sqlite *s, int kind, const csip_binding *b, csip_str aor,
                    csip_str contact)
{
    csip_str str[5];
    op_strings(b, aor, contact, str);
    uint32_t cseq = b ? b->cseq : 0;
    int64_t q = b && b->has_q ? b->q : -1, exp = b ? b->expires_at : 0;
    return s->in_group ? queue_op(s, kind, str, cseq, q, exp) : exec_op(s, kind, str, cseq, q, exp);
}

static int sq_put(void *ud, const csip_binding *b)
{
    csip_store_sqlite *s = ud;
    int rc = write_op(s, GOP_PUT, b, b->aor, b->contact);
    return rc ? rc : s->mops.put(s->mops.user_data, b);
}

static int sq_remove(void *ud, csip_str aor, csip_str contact)
{
    csip_store_sqlite *s = ud;
    int rc = write_op(s, GOP_DEL, NULL, aor, contact);
    return rc ? rc : s->mops.remove(s->mops.user_data, aor, contact);
}

static int sq_remove_all(void *ud, csip_str aor)
{
    csip_store_sqlite *s = ud;
    int rc = write_op(s, GOP_DEL_ALL, NULL, aor, CSIP_STR_NULL);
    return rc ? rc : s->mops.remove_all(s->mops.user_data, aor);
}

/* Makes memory agree with the database for one AOR. */
static void reload_aor(csip_store_sqlite *s, csip_str aor)
{
    s->mops.remove_all(s->mops.user_data, aor);
    sqlite3_stmt *st = s->st[ST_SEL_AOR];
    bind_str(st, 1, aor);
    (void)load_rows(s, st);
}

static void group_clear(csip_store_sqlite *s)
{
    for (size_t i = 0; i < s->n_group; i++)
        csip__free(s->mem, s->group_aor[i]);
    s->n_group = 0;
    s->n_ops = 0;
    s->opbuf_len = 0;
    s->in_group = false;
    s->group_failed = false;
}

/* Rolls back the group's transaction and makes memory agree with the
 * database for every AOR the group touched; the group stays open, failed. */
static void group_fail(csip_store_sqlite *s)
{
    if (sqlite3_get_autocommit(s->db) == 0)
        (void)run(s->st[ST_ROLLBACK]);
    s->n_ops = 0; /* nothing queued goes to disk */
    s->opbuf_len = 0;
    for (size_t i = 0; i < s->n_group; i++) {
        reload_aor(s, (csip_str){s->group_aor[i], s->group_aor_len[i]});
        csip__free(s->mem, s->group_aor[i]);
    }
    s->n_group = 0;
    s->group_failed = true;
}

int csip_store_sqlite_group_begin(csip_store_sqlite *s)
{
    if (!s || s->in_group || s->in_txn)
        return CSIP_ERR_INVALID_ARG;
    /* the database transaction is opened by the commit, around the queued
     * writes (see struct csip_store_sqlite) */
    s->in_group = true;
    return 0;
}

int csip_store_sqlite_group_commit(csip_store_sqlite *s)
{
    if (!s || !s->in_group || s->in_txn)
        return CSIP_ERR_INVALID_ARG;
    if (!s->group_failed && (s->n_ops == 0 || (run(s->st[ST_BEGIN]) == 0 && run_ops(s) == 0 &&
                                               run(s->st[ST_COMMIT]) == 0))) {
        group_clear(s);
        return 0;
    }
    /* Nothing of the group is on disk: undo it in memory as well. */
    if (!s->group_failed)
        group_fail(s);
    group_clear(s);
    return DB_FAIL;
}

bool csip_store_sqlite_in_group(const csip_store_sqlite *s)
{
    return s && s->in_group;
}

static int sq_begin(void *ud, csip_str aor)
{
    csip_store_sqlite *s = ud;
    if (s->in_txn)
        return CSIP_ERR_INVALID_ARG;
    if (s->group_failed)
        return DB_FAIL;
    char *copy = csip__malloc(s->mem, aor.len ? aor.len : 1);
    if (!copy)
        return CSIP_ERR_NOMEM;
    memcpy(copy, aor.p, aor.len);
    /* inside a group, the group's transaction holds the update */
    if (!s->in_group && run(s->st[ST_BEGIN]) != 0) {
        csip__free(s->mem, copy);
        return DB_FAIL;
    }
    s->txn_aor = copy;
    s->txn_aor_len = aor.len;
    s->in_txn = true;
    return 0;
}

static void txn_end(csip_store_sqlite *s)
{
    csip__free(s->mem, s->txn_aor);
    s->txn_aor = NULL;
    s->in_txn = false;
}

static int sq_commit(void *ud)
{
    csip_store_sqlite *s = ud;
    if (!s->in_txn)
        return CSIP_ERR_INVALID_ARG;
    if (s->in_group) {
        /* the group keeps the AOR to reload it if the group's commit fails */
        if (s->n_group == s->cap_group) {
            size_t cap = s->cap_group ? s->cap_group * 2 : 64;
            char **a = csip__realloc(s->mem, s->group_aor, cap * sizeof *a);
            if (!a)
                return CSIP_ERR_NOMEM;
            s->group_aor = a;
            size_t *l = csip__realloc(s->mem, s->group_aor_len, cap * sizeof *l);
            if (!l)
                return CSIP_ERR_NOMEM;
            s->group_aor_len = l;
            s->cap_group = cap;
        }
        s->group_aor[s->n_group] = s->txn_aor;
        s->group_aor_len[s->n_group++] = s->txn_aor_len;
        s->txn_aor = NULL;
        s->in_txn = false;
        return 0;
    }
    if (run(s->st[ST_COMMIT]) != 0)
        return DB_FAIL; /* the caller rolls back */
    txn_end(s);
    return 0;
}

/* Undoes the transaction in the database, then makes memory agree with it by
 * reloading the AOR (memory was changed as the transaction went). */
static void sq_rollback(void *ud)
{
    csip_store_sqlite *s = ud;
    if (!s->in_txn)
        return;
    if (s->in_group) {
        /* no savepoint per AOR: the whole group goes (see store.h) */
        group_fail(s);
    } else if (sqlite3_get_autocommit(s->db) == 0) {
        (void)run(s->st[ST_ROLLBACK]);
    }
    reload_aor(s, (csip_str){s->txn_aor, s->txn_aor_len});
    txn_end(s);
}

void csip_store_sqlite_close(csip_store_sqlite *s)
{
    if (!s)
        return;
    if (s->in_txn)
        sq_rollback(s);
    if (s->in_group)
        (void)csip_store_sqlite_group_commit(s);
    csip__free(s->mem, s->group_aor);
    csip__free(s->mem, s->group_aor_len);
    csip__free(s->mem, s->ops);
    csip__free(s->mem, s->opbuf);
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    csip_store_mem_free(s->m);
    csip__free(s->mem, s);
}

int csip_store_sqlite_open(const char *path, unsigned flags, const csip_mem *mem,
                           csip_store_sqlite **out)
{
    if (!path || !out)
        return CSIP_ERR_INVALID_ARG;
    csip_store_sqlite *s = csip__malloc(mem, sizeof *s);
    if (!s)
        return CSIP_ERR_NOMEM;
    memset(s, 0, sizeof *s);
    s->mem = mem;
    int rc = csip_store_mem_new(mem, &s->m);
    if (rc) {
        csip__free(mem, s);
        return rc;
    }
    csip_store_mem_location(s->m, &s->mops);
    rc = DB_FAIL;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        goto fail;
    /* WAL: a commit is one append to the log, readers never block the writer. */
    sqlite3_stmt *jm = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &jm, NULL) != SQLITE_OK)
        goto fail;
    bool wal = sqlite3_step(jm) == SQLITE_ROW && sqlite3_column_text(jm, 0) != NULL &&
               strcmp((const char *)sqlite3_column_text(jm, 0), "wal") == 0;
    sqlite3_finalize(jm);
    if (!wal)
        goto fail;
    const char *sync = (flags & CSIP_STORE_SQLITE_SYNC_FULL) ? "PRAGMA synchronous=FULL"
                                                             : "PRAGMA synchronous=NORMAL";
    if (sqlite3_exec(s->db, sync, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "PRAGMA busy_timeout=5000", NULL, NULL, NULL) != SQLITE_OK ||
        /* 64 MiB of page cache: the b-trees of a few hundred thousand
         * bindings stay in memory, and a write reads no page back */
        sqlite3_exec(s->db, "PRAGMA cache_size=-65536", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    for (int i = 0; i < ST__COUNT; i++)
        if (sqlite3_prepare_v3(s->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK)
            goto fail;
    /* Load on open: every binding on disk, expired ones included (the next
     * sweep removes them; the registrar never lists them). */
    sqlite3_stmt *all = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT aor, contact, params, path, call_id, cseq, q, expires_at"
                           " FROM location",
                           -1, &all, NULL) != SQLITE_OK)
        goto fail;
    rc = load_rows(s, all);
    sqlite3_finalize(all);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    csip_store_sqlite_close(s);
    return rc;
}

void csip_store_sqlite_location(csip_store_sqlite *s, csip_location_store *out)
{
    *out = (csip_location_store){
        .get = sq_get,
        .put = sq_put,
        .remove = sq_remove,
        .remove_all = sq_remove_all,
        .begin = sq_begin,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .user_data = s,
    };
}

static int sweep_one(void *ud, const csip_binding *b)
{
    return write_op(ud, GOP_DEL, NULL, b->aor, b->contact); /* never in a group */
}

int csip_store_sqlite_sweep(csip_store_sqlite *s, int64_t now, size_t *removed)
{
    if (!s || s->in_group || s->in_txn)
        return CSIP_ERR_INVALID_ARG;
    /* The expired bindings are found in memory (which holds every row) and
     * deleted by key, all in one transaction; memory drops them once it is
     * committed. */
    if (run(s->st[ST_BEGIN]) != 0)
        return DB_FAIL;
    int rc = csip_store_mem_each_expired(s->m, now, sweep_one, s);
    if (rc == 0 && run(s->st[ST_COMMIT]) != 0)
        rc = DB_FAIL;
    if (rc) {
        if (sqlite3_get_autocommit(s->db) == 0)
            (void)run(s->st[ST_ROLLBACK]);
        return rc;
    }
    size_t n = csip_store_mem_sweep(s->m, now);
    if (removed)
        *removed = n;
    return 0;
}

size_t csip_store_sqlite_count(const csip_store_sqlite *s)
{
    return csip_store_mem_count(s->m);
}
