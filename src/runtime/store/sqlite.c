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

enum { ST_PUT, ST_DEL, ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST__COUNT };

static const char *const st_sql[ST__COUNT] = {
    "INSERT OR REPLACE INTO location(id, aor, contact, params, path, call_id, cseq, q,"
    " expires_at) VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "DELETE FROM location WHERE id = ?1",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
};

/* A row per binding, keyed by a number the store gives it (csip_binding
 * store_id): a new binding is appended at the end of the table's b-tree, a
 * change or a removal finds its row by that number. Memory holds every row
 * and keeps (aor, contact) unique, so the table needs no index at all: no
 * key compared on a write, no index updated. (Keyed by (aor, contact)
 * instead, a new binding cost a third more: the key compared down the tree,
 * pages split where names fall.) The sweeper finds expired bindings in
 * memory too. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS location ("
    " id INTEGER PRIMARY KEY, aor BLOB NOT NULL, contact BLOB NOT NULL, params BLOB,"
    " path BLOB, call_id BLOB NOT NULL, cseq INTEGER NOT NULL, q INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL);";

/* A table of an earlier version (keyed by (aor, contact), without id, maybe
 * with an index on expires_at) is moved into the current one, in one
 * transaction, at open. */
static const char migrate[] =
    "BEGIN IMMEDIATE;"
    "DROP INDEX IF EXISTS location_expires;"
    "ALTER TABLE location RENAME TO location_before_id;"
    "CREATE TABLE location ("
    " id INTEGER PRIMARY KEY, aor BLOB NOT NULL, contact BLOB NOT NULL, params BLOB,"
    " path BLOB, call_id BLOB NOT NULL, cseq INTEGER NOT NULL, q INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL);"
    "INSERT INTO location(aor, contact, params, path, call_id, cseq, q, expires_at)"
    " SELECT aor, contact, params, path, call_id, cseq, q, expires_at FROM location_before_id;"
    "DROP TABLE location_before_id;"
    "COMMIT;";

struct csip_store_sqlite {
    const csip_mem *mem;
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    csip_store_mem *m;
    csip_location_store mops;
    bool in_txn;
    uint64_t last_id; /* the highest row number given (new bindings take the next) */
    uint64_t *stale;  /* rows found at load to repeat a binding, deleted after it */
    size_t n_stale, cap_stale;
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

enum { GOP_PUT, GOP_DEL };

/* A queued write; its strings are at off in opbuf, one after the other:
 * aor, contact, params, path, call_id (a NULL one has no octets and its
 * null bit set). */
typedef struct gop {
    uint8_t kind;
    uint8_t nulls; /* bit i: string i is NULL */
    uint32_t cseq;
    uint64_t id; /* the row */
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

static const char select_all[] =
    "SELECT aor, contact, params, path, call_id, cseq, q, expires_at, id FROM location"
    " ORDER BY id";

static uint64_t row_of(csip_store_sqlite *s, csip_str aor, csip_str contact);

/* An array of cap elements of size sz grown to twice that (first when
 * empty), its new capacity in *next; NULL when memory runs out, the array
 * then unchanged (the caller stores *next once every array it grows has). */
static void *grow(const csip_mem *mem, void *arr, size_t cap, size_t first, size_t sz, size_t *next)
{
    *next = cap ? cap * 2 : first;
    return csip__realloc(mem, arr, *next * sz);
}

/* Notes a row to delete once the load is done. */
static int queue_stale(csip_store_sqlite *s, uint64_t id)
{
    if (s->n_stale == s->cap_stale) {
        size_t cap;
        uint64_t *n = grow(s->mem, s->stale, s->cap_stale, 16, sizeof *n, &cap);
        if (!n)
            return CSIP_ERR_NOMEM;
        s->stale = n;
        s->cap_stale = cap;
    }
    s->stale[s->n_stale++] = id;
    return 0;
}

/* Whether aor is one of the n sorted AORs in set (NULL set: every AOR). */
static bool aor_in(csip_str aor, char *const *set, const size_t *len, size_t n)
{
    if (!set)
        return true;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t l = len[mid] < aor.len ? len[mid] : aor.len;
        int c = l ? memcmp(set[mid], aor.p, l) : 0;
        if (c == 0)
            c = len[mid] < aor.len ? -1 : len[mid] > aor.len;
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Puts into memory every row of a SELECT of location's columns (id last)
 * whose AOR is in the sorted set (NULL: all). Two rows of one binding (only
 * a table changed behind the store's back has them): the later row wins,
 * and the earlier one is deleted (*stale counts what could not be). */
static int load_rows(csip_store_sqlite *s, sqlite3_stmt *st, char *const *set, const size_t *len,
                     size_t n)
{
    int rc, err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !err) {
        csip_str aor = col_str(st, 0);
        if (!aor_in(aor, set, len, n))
            continue;
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 8);
        if (id > s->last_id)
            s->last_id = id;
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
            .store_id = id,
        };
        /* rows come in id order: an earlier row of the same binding is replaced */
        uint64_t old = row_of(s, b.aor, b.contact);
        if (old && old != id)
            err = queue_stale(s, old);
        if (!err)
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

/* The row of a binding memory holds, 0 when memory has none. */
static uint64_t row_of(csip_store_sqlite *s, csip_str aor, csip_str contact)
{
    const csip_binding *b;
    size_t n;
    if (s->mops.get(s->mops.user_data, aor, &b, &n) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (csip_str_eq(b[i].contact, contact))
            return b[i].store_id;
    return 0;
}

/* The strings of a change: aor, contact, params, path, call_id. */
static void op_strings(const csip_binding *b, csip_str str[5])
{
    str[0] = b->aor;
    str[1] = b->contact;
    str[2] = b->params;
    str[3] = b->path;
    str[4] = b->call_id;
}

/* Writes one change to the database (inside the open transaction). */
static int exec_op(csip_store_sqlite *s, int kind, uint64_t id, const csip_str str[5],
                   uint32_t cseq, int64_t q, int64_t expires_at)
{
    sqlite3_stmt *st;
    if (kind == GOP_PUT) {
        st = s->st[ST_PUT];
        for (int i = 0; i < 5; i++)
            bind_str(st, i + 1, str[i]);
        sqlite3_bind_int64(st, 6, cseq);
        sqlite3_bind_int64(st, 7, q);
        sqlite3_bind_int64(st, 8, expires_at);
        sqlite3_bind_int64(st, 9, (int64_t)id);
    } else {
        st = s->st[ST_DEL];
        sqlite3_bind_int64(st, 1, (int64_t)id);
    }
    return run(st);
}

/* Queues a change of the open group, its strings copied (str NULL: a removal). */
static int queue_op(csip_store_sqlite *s, int kind, uint64_t id, const csip_str *str, uint32_t cseq,
                    int64_t q, int64_t expires_at)
{
    size_t total = 0;
    for (int i = 0; str && i < 5; i++)
        total += str[i].len;
    if (s->n_ops == s->cap_ops) {
        size_t cap;
        gop *o = grow(s->mem, s->ops, s->cap_ops, 64, sizeof *o, &cap);
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
    o->id = id;
    o->nulls = 0;
    o->off = s->opbuf_len;
    for (int i = 0; i < 5; i++) {
        csip_str v = str ? str[i] : CSIP_STR_NULL;
        if (!v.p)
            o->nulls |= (uint8_t)(1u << i);
        o->len[i] = (uint32_t)v.len;
        if (v.len)
            memcpy(s->opbuf + s->opbuf_len, v.p, v.len);
        s->opbuf_len += v.len;
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
        if (exec_op(s, o->kind, o->id, str, o->cseq, o->q, o->expires_at) != 0)
            return DB_FAIL;
    }
    return 0;
}

/* Writes a binding's row: queued inside a group, at once outside one. */
static int write_put(csip_store_sqlite *s, const csip_binding *b)
{
    csip_str str[5];
    op_strings(b, str);
    int64_t q = b->has_q ? b->q : -1;
    return s->in_group ? queue_op(s, GOP_PUT, b->store_id, str, b->cseq, q, b->expires_at)
                       : exec_op(s, GOP_PUT, b->store_id, str, b->cseq, q, b->expires_at);
}

/* Deletes a row: queued inside a group, at once outside one. */
static int write_del(csip_store_sqlite *s, uint64_t id)
{
    return s->in_group ? queue_op(s, GOP_DEL, id, NULL, 0, 0, 0)
                       : exec_op(s, GOP_DEL, id, NULL, 0, 0, 0);
}

static int sq_put(void *ud, const csip_binding *b)
{
    csip_store_sqlite *s = ud;
    /* a binding memory holds keeps its row; a new one takes the next */
    csip_binding w = *b;
    w.store_id = row_of(s, b->aor, b->contact);
    if (!w.store_id)
        w.store_id = s->last_id + 1;
    int rc = write_put(s, &w);
    if (rc)
        return rc;
    if (w.store_id > s->last_id)
        s->last_id = w.store_id;
    return s->mops.put(s->mops.user_data, &w);
}

static int sq_remove(void *ud, csip_str aor, csip_str contact)
{
    csip_store_sqlite *s = ud;
    uint64_t id = row_of(s, aor, contact);
    int rc = id ? write_del(s, id) : 0;
    return rc ? rc : s->mops.remove(s->mops.user_data, aor, contact);
}

static int sq_remove_all(void *ud, csip_str aor)
{
    csip_store_sqlite *s = ud;
    const csip_binding *b;
    size_t n;
    if (s->mops.get(s->mops.user_data, aor, &b, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            int rc = write_del(s, b[i].store_id);
            if (rc)
                return rc;
        }
    return s->mops.remove_all(s->mops.user_data, aor);
}

/* Makes memory agree with the database for n AORs, sorted by
 * csip_store_sqlite's order (aor_in): they are dropped from memory, then
 * loaded again in one pass over the table (it has no index on aor). */
static void reload_aors(csip_store_sqlite *s, char *const *set, const size_t *len, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s->mops.remove_all(s->mops.user_data, (csip_str){set[i], len[i]});
    sqlite3_stmt *all = NULL;
    if (sqlite3_prepare_v2(s->db, select_all, -1, &all, NULL) == SQLITE_OK)
        (void)load_rows(s, all, set, len, n);
    sqlite3_finalize(all);
    s->n_stale = 0; /* duplicates are cleaned at the next open */
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

/* Sorts the group's AORs (insertion sort on (aor, len): a group is at most a
 * few hundred, and this runs only when one fails). */
static void sort_group(csip_store_sqlite *s)
{
    for (size_t i = 1; i < s->n_group; i++) {
        char *a = s->group_aor[i];
        size_t al = s->group_aor_len[i], j = i;
        while (j > 0) {
            size_t bl = s->group_aor_len[j - 1];
            size_t l = bl < al ? bl : al;
            int c = l ? memcmp(s->group_aor[j - 1], a, l) : 0;
            if (c < 0 || (c == 0 && bl <= al))
                break;
            s->group_aor[j] = s->group_aor[j - 1];
            s->group_aor_len[j] = bl;
            j--;
        }
        s->group_aor[j] = a;
        s->group_aor_len[j] = al;
    }
}

/* Rolls back the group's transaction and makes memory agree with the
 * database for every AOR the group touched; the group stays open, failed. */
static void group_fail(csip_store_sqlite *s)
{
    if (sqlite3_get_autocommit(s->db) == 0)
        (void)run(s->st[ST_ROLLBACK]);
    s->n_ops = 0; /* nothing queued goes to disk */
    s->opbuf_len = 0;
    sort_group(s);
    reload_aors(s, s->group_aor, s->group_aor_len, s->n_group);
    for (size_t i = 0; i < s->n_group; i++)
        csip__free(s->mem, s->group_aor[i]);
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
            size_t cap;
            char **a = grow(s->mem, s->group_aor, s->cap_group, 64, sizeof *a, &cap);
            if (!a)
                return CSIP_ERR_NOMEM;
            s->group_aor = a;
            size_t *l = grow(s->mem, s->group_aor_len, s->cap_group, 64, sizeof *l, &cap);
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
    reload_aors(s, &s->txn_aor, &s->txn_aor_len, 1);
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
    csip__free(s->mem, s->stale);
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
        sqlite3_exec(s->db, "PRAGMA cache_size=-65536", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    /* the table of an earlier version (no id column) is moved over first */
    sqlite3_stmt *probe = NULL;
    bool old = sqlite3_prepare_v2(s->db,
                                  "SELECT name FROM pragma_table_info('location')"
                                  " WHERE name = 'id'",
                                  -1, &probe, NULL) == SQLITE_OK &&
               sqlite3_step(probe) == SQLITE_DONE;
    sqlite3_finalize(probe);
    if (old) {
        sqlite3_stmt *t = NULL;
        bool exists = sqlite3_prepare_v2(s->db,
                                         "SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                         " AND name = 'location'",
                                         -1, &t, NULL) == SQLITE_OK &&
                      sqlite3_step(t) == SQLITE_ROW;
        sqlite3_finalize(t);
        if (exists && sqlite3_exec(s->db, migrate, NULL, NULL, NULL) != SQLITE_OK) {
            (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
    }
    if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    for (int i = 0; i < ST__COUNT; i++)
        if (sqlite3_prepare_v3(s->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK)
            goto fail;
    /* Load on open: every binding on disk, expired ones included (the next
     * sweep removes them; the registrar never lists them). */
    sqlite3_stmt *all = NULL;
    if (sqlite3_prepare_v2(s->db, select_all, -1, &all, NULL) != SQLITE_OK)
        goto fail;
    rc = load_rows(s, all, NULL, NULL, 0);
    sqlite3_finalize(all);
    if (rc)
        goto fail;
    /* rows that repeated a binding (a table changed behind the store's
     * back): the later one was kept, the earlier ones go */
    if (s->n_stale) {
        rc = DB_FAIL;
        if (run(s->st[ST_BEGIN]) != 0)
            goto fail;
        for (size_t i = 0; i < s->n_stale; i++)
            if (exec_op(s, GOP_DEL, s->stale[i], NULL, 0, 0, 0) != 0) {
                (void)run(s->st[ST_ROLLBACK]);
                goto fail;
            }
        if (run(s->st[ST_COMMIT]) != 0)
            goto fail;
        s->n_stale = 0;
        rc = 0;
    }
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
    return write_del(ud, b->store_id); /* never in a group */
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
