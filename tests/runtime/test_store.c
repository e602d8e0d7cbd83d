/*
 * Location stores: the memory store, and the SQLite store across close and
 * reopen, expiry sweeps, a registrar on top, and a process killed with
 * SIGKILL while it writes (every binding whose put returned is on disk).
 */
#define _DEFAULT_SOURCE
#include "check.h"
#include "csip/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/csip-store-XXXXXX";
static char dbpath[256];

static void fresh_db(const char *name)
{
    snprintf(dbpath, sizeof dbpath, "%s/%s.db", dir, name);
    char p[300];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
}

static csip_binding mk(const char *aor, const char *contact, int64_t exp, uint32_t cseq)
{
    csip_binding b = {
        .aor = csip_str_c(aor),
        .contact = csip_str_c(contact),
        .params = CSIP_STR("q=0.5;+sip.instance=\"<urn:uuid:1>\""),
        .path = CSIP_STR("<sip:p1.example.com;lr>"),
        .call_id = CSIP_STR("call@h"),
        .cseq = cseq,
        .has_q = true,
        .q = 500,
        .expires_at = exp,
    };
    return b;
}

static const csip_binding *find(const csip_location_store *ls, const char *aor, const char *contact)
{
    const csip_binding *b;
    size_t n;
    if (ls->get(ls->user_data, csip_str_c(aor), &b, &n) != 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (csip_str_eq_c(b[i].contact, contact))
            return &b[i];
    return NULL;
}

/* The store on dbpath with its operations in *ls, or NULL. */
static csip_store_sqlite *open_db(csip_location_store *ls)
{
    csip_store_sqlite *s = NULL;
    if (csip_store_sqlite_open(dbpath, 0, NULL, &s) != 0)
        return NULL;
    csip_store_sqlite_location(s, ls);
    return s;
}

static void test_mem(void)
{
    csip_store_mem *m;
    ASSERT_OK(csip_store_mem_new(NULL, &m));
    csip_location_store ls;
    csip_store_mem_location(m, &ls);
    char aor[64], ct[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(aor, sizeof aor, "sip:u%d@example.com", i / 2);
        snprintf(ct, sizeof ct, "sip:c%d@h", i);
        csip_binding b = mk(aor, ct, 100 + i % 2 * 100, 1);
        ASSERT_OK(ls.put(ls.user_data, &b));
    }
    EXPECT_EQ(csip_store_mem_count(m), 1000);
    /* replace keeps the count */
    csip_binding b = mk("sip:u7@example.com", "sip:c14@h", 500, 2);
    ASSERT_OK(ls.put(ls.user_data, &b));
    EXPECT_EQ(csip_store_mem_count(m), 1000);
    const csip_binding *f = find(&ls, "sip:u7@example.com", "sip:c14@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->cseq, 2);
    EXPECT_STR(f->path, "<sip:p1.example.com;lr>");
    ASSERT_OK(ls.remove(ls.user_data, csip_str_c("sip:u7@example.com"), csip_str_c("sip:c14@h")));
    EXPECT_TRUE(find(&ls, "sip:u7@example.com", "sip:c14@h") == NULL);
    EXPECT_TRUE(find(&ls, "sip:u7@example.com", "sip:c15@h") != NULL);
    ASSERT_OK(ls.remove_all(ls.user_data, csip_str_c("sip:u8@example.com")));
    EXPECT_EQ(csip_store_mem_count(m), 997);
    /* the even ones expire at 100 (c14 and u8's c16 are gone already) */
    EXPECT_EQ(csip_store_mem_sweep(m, 100), 498);
    EXPECT_EQ(csip_store_mem_count(m), 499);
    EXPECT_EQ(csip_store_mem_sweep(m, 1000), 499);
    EXPECT_EQ(csip_store_mem_count(m), 0);
    csip_store_mem_free(m);
}

/* The memory store under a failing allocator: a failed put leaves the store
 * as it was, and nothing leaks. */
static void test_mem_nomem(void)
{
    for (int k = 1; k < 120; k++) {
        check_failmem f;
        check_failmem_init(&f, k);
        csip_mem mem = f.mem;
        csip_store_mem *m;
        if (csip_store_mem_new(&mem, &m) != 0) {
            EXPECT_EQ(f.live, 0);
            continue;
        }
        csip_location_store ls;
        csip_store_mem_location(m, &ls);
        size_t ok = 0;
        char aor[64], ct[64];
        for (int i = 0; i < 100; i++) {
            snprintf(aor, sizeof aor, "sip:u%d@example.com", i / 3);
            snprintf(ct, sizeof ct, "sip:c%d@h", i);
            csip_binding b = mk(aor, ct, 100, 1);
            int rc = ls.put(ls.user_data, &b);
            if (rc == 0)
                ok++;
            else
                EXPECT_EQ(rc, CSIP_ERR_NOMEM);
            EXPECT_EQ(csip_store_mem_count(m), ok);
        }
        csip_store_mem_free(m);
        EXPECT_EQ(f.live, 0);
    }
}

static void test_sqlite_reopen(void)
{
    fresh_db("reopen");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    char aor[64], ct[64];
    for (int i = 0; i < 200; i++) {
        snprintf(aor, sizeof aor, "sip:u%d@example.com", i % 50);
        snprintf(ct, sizeof ct, "sip:c%d@h", i);
        csip_binding b = mk(aor, ct, 1000 + i, (uint32_t)i);
        if (i == 3)
            b.params = CSIP_STR_NULL, b.path = CSIP_STR(""), b.has_q = false, b.q = 1000;
        ASSERT_OK(ls.put(ls.user_data, &b));
    }
    /* an AOR with a NUL octet (RFC 4475 escnull) stays whole */
    csip_binding z = mk("sip:a", "sip:z@h", 5000, 1);
    z.aor = (csip_str){"sip:a\0b@example.com", 19};
    ASSERT_OK(ls.put(ls.user_data, &z));
    ASSERT_OK(ls.remove(ls.user_data, csip_str_c("sip:u1@example.com"), csip_str_c("sip:c1@h")));
    ASSERT_OK(ls.remove_all(ls.user_data, csip_str_c("sip:u2@example.com")));
    EXPECT_EQ(csip_store_sqlite_count(s), 201 - 1 - 4);
    csip_store_sqlite_close(s);

    ASSERT_OK(csip_store_sqlite_open(dbpath, CSIP_STORE_SQLITE_SYNC_FULL, NULL, &s));
    csip_store_sqlite_location(s, &ls);
    EXPECT_EQ(csip_store_sqlite_count(s), 196);
    const csip_binding *f = find(&ls, "sip:u3@example.com", "sip:c3@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_TRUE(f->params.p == NULL);
    EXPECT_STR(f->path, "");
    EXPECT_FALSE(f->has_q);
    EXPECT_EQ(f->expires_at, 1003);
    f = find(&ls, "sip:u4@example.com", "sip:c104@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_STR(f->params, "q=0.5;+sip.instance=\"<urn:uuid:1>\"");
    EXPECT_STR(f->call_id, "call@h");
    EXPECT_EQ(f->cseq, 104);
    EXPECT_EQ(f->q, 500);
    EXPECT_TRUE(find(&ls, "sip:u1@example.com", "sip:c1@h") == NULL);
    EXPECT_TRUE(find(&ls, "sip:u1@example.com", "sip:c51@h") != NULL);
    EXPECT_TRUE(find(&ls, "sip:u2@example.com", "sip:c52@h") == NULL);
    const csip_binding *zb;
    size_t n;
    ASSERT_OK(ls.get(ls.user_data, (csip_str){"sip:a\0b@example.com", 19}, &zb, &n));
    EXPECT_EQ(n, 1);
    ASSERT_OK(ls.get(ls.user_data, csip_str_c("sip:a"), &zb, &n));
    EXPECT_EQ(n, 0);

    /* sweep: expires_at 1000..1099 go at 1100 */
    size_t removed = 0;
    ASSERT_OK(csip_store_sqlite_sweep(s, 1100, &removed));
    EXPECT_EQ(removed, 98); /* c1 and c2 were gone already */
    EXPECT_EQ(csip_store_sqlite_count(s), 98);
    csip_store_sqlite_close(s);
    ASSERT_OK(csip_store_sqlite_open(dbpath, 0, NULL, &s));
    EXPECT_EQ(csip_store_sqlite_count(s), 98);
    ASSERT_OK(csip_store_sqlite_sweep(s, 6000, &removed));
    EXPECT_EQ(removed, 98);
    csip_store_sqlite_close(s);
}

/* A database written before the location table lost its index on
 * expires_at: it opens, loses the index, keeps its bindings, and sweeps. */
static void test_sqlite_old_schema(void)
{
    fresh_db("old");
    sqlite3 *db;
    ASSERT_TRUE(sqlite3_open(dbpath, &db) == SQLITE_OK);
    const char *old =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE location (aor BLOB NOT NULL, contact BLOB NOT NULL, params BLOB,"
        " path BLOB, call_id BLOB NOT NULL, cseq INTEGER NOT NULL, q INTEGER NOT NULL,"
        " expires_at INTEGER NOT NULL, PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
        "CREATE INDEX location_expires ON location (expires_at);"
        "INSERT INTO location VALUES (x'7369703a61406578616d706c652e636f6d', x'7369703a6131406b',"
        " NULL, NULL, x'6331', 7, -1, 100);"
        "INSERT INTO location VALUES (x'7369703a61406578616d706c652e636f6d', x'7369703a6132406b',"
        " NULL, NULL, x'6331', 7, 500, 900);";
    ASSERT_TRUE(sqlite3_exec(db, old, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);

    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    EXPECT_EQ(csip_store_sqlite_count(s), 2);
    const csip_binding *b = find(&ls, "sip:a@example.com", "sip:a2@k");
    ASSERT_TRUE(b != NULL);
    EXPECT_EQ(b->q, 500);
    EXPECT_EQ(b->expires_at, 900);
    size_t removed = 0;
    ASSERT_OK(csip_store_sqlite_sweep(s, 500, &removed));
    EXPECT_EQ(removed, 1);
    csip_store_sqlite_close(s);

    ASSERT_TRUE(sqlite3_open(dbpath, &db) == SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_TRUE(sqlite3_prepare_v2(db,
                                   "SELECT (SELECT count(*) FROM sqlite_master WHERE"
                                   " name = 'location_expires'), (SELECT count(*) FROM location)",
                                   -1, &st, NULL) == SQLITE_OK);
    ASSERT_TRUE(sqlite3_step(st) == SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(st, 0), 0); /* the index is gone */
    EXPECT_EQ(sqlite3_column_int(st, 1), 1); /* the swept row too, on disk */
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_sqlite_rollback(void)
{
    fresh_db("rollback");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    csip_binding a = mk("sip:u@example.com", "sip:a@h", 1000, 1);
    ASSERT_OK(ls.put(ls.user_data, &a));
    ASSERT_OK(ls.begin(ls.user_data, a.aor));
    csip_binding b = mk("sip:u@example.com", "sip:b@h", 1000, 1);
    ASSERT_OK(ls.put(ls.user_data, &b));
    ASSERT_OK(ls.remove(ls.user_data, a.aor, a.contact));
    ls.rollback(ls.user_data);
    EXPECT_TRUE(find(&ls, "sip:u@example.com", "sip:a@h") != NULL);
    EXPECT_TRUE(find(&ls, "sip:u@example.com", "sip:b@h") == NULL);
    ASSERT_OK(ls.begin(ls.user_data, a.aor));
    ASSERT_OK(ls.put(ls.user_data, &b));
    ASSERT_OK(ls.commit(ls.user_data));
    csip_store_sqlite_close(s);
    ASSERT_OK(csip_store_sqlite_open(dbpath, 0, NULL, &s));
    EXPECT_EQ(csip_store_sqlite_count(s), 2);
    csip_store_sqlite_close(s);
    /* not a database */
    EXPECT_EQ(csip_store_sqlite_open("/nonexistent-dir/x.db", 0, NULL, &s), CSIP_ERR_STORE);
}

/* A registrar over the SQLite store: the 200 OK's bindings are on disk. */
static void test_registrar_sqlite(void)
{
    fresh_db("registrar");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    csip_registrar *r;
    ASSERT_OK(csip_registrar_new(NULL, &ls, NULL, &r));
    static const char reg[] = "REGISTER sip:example.com SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK77\r\n"
                              "From: <sip:bob@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
                              "Call-ID: r1\r\nCSeq: 1 REGISTER\r\n"
                              "Contact: <sip:bob@192.0.2.1>;expires=600, <sip:bob@192.0.2.2>\r\n"
                              "Content-Length: 0\r\n\r\n";
    csip_msg *req, *resp;
    csip_parse_error perr;
    ASSERT_OK(csip_msg_parse(reg, sizeof reg - 1, NULL, &req, &perr));
    ASSERT_OK(csip_registrar_handle(r, req, 1000, &resp));
    EXPECT_EQ(csip_msg_status(resp), 200);
    csip_msg_free(resp);
    csip_msg_free(req);
    csip_registrar_free(r);
    csip_store_sqlite_close(s);
    ASSERT_TRUE((s = open_db(&ls)) != NULL);
    const csip_binding *f = find(&ls, "sip:bob@example.com", "sip:bob@192.0.2.1");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->expires_at, 1600);
    f = find(&ls, "sip:bob@example.com", "sip:bob@192.0.2.2");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->expires_at, 4600);
    csip_store_sqlite_close(s);
}

/* A child writes bindings and reports each one whose put returned; it is
 * killed with SIGKILL mid-way. Every reported binding must be on disk. */
static void test_sqlite_crash(void)
{
    fresh_db("crash");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        csip_store_sqlite *s;
        if (csip_store_sqlite_open(dbpath, 0, NULL, &s) != 0)
            _exit(2);
        csip_location_store ls;
        csip_store_sqlite_location(s, &ls);
        char aor[64], ct[64];
        for (uint32_t i = 0;; i++) {
            snprintf(aor, sizeof aor, "sip:u%u@example.com", i % 1000);
            snprintf(ct, sizeof ct, "sip:c%u@h", i);
            csip_binding b = mk(aor, ct, 1000000, i);
            if (ls.put(ls.user_data, &b) != 0)
                _exit(3);
            if (write(fds[1], &i, sizeof i) != (ssize_t)sizeof i)
                _exit(4);
        }
    }
    close(fds[1]);
    uint32_t last = 0, v;
    size_t got = 0;
    while (got < 3000 && read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        last = v;
        got++;
    }
    kill(pid, SIGKILL);
    /* drain what the child reported before it died */
    while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        last = v;
        got++;
    }
    close(fds[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ASSERT_GE(got, 3000);

    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    EXPECT_GE(csip_store_sqlite_count(s), (size_t)last + 1);
    char aor[64], ct[64];
    size_t missing = 0;
    for (uint32_t i = 0; i <= last; i++) {
        snprintf(aor, sizeof aor, "sip:u%u@example.com", i % 1000);
        snprintf(ct, sizeof ct, "sip:c%u@h", i);
        const csip_binding *f = find(&ls, aor, ct);
        if (!f || f->cseq != i)
            missing++;
    }
    EXPECT_EQ(missing, 0);
    csip_store_sqlite_close(s);
}

static void test_sqlite_group(void)
{
    fresh_db("group");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    csip_binding b1 = mk("sip:a@example.com", "sip:a1@h", 9000, 1);
    csip_binding b2 = mk("sip:b@example.com", "sip:b1@h", 9000, 1);
    csip_binding b3 = mk("sip:c@example.com", "sip:c1@h", 9000, 1);
    EXPECT_FALSE(csip_store_sqlite_in_group(s));
    EXPECT_EQ(csip_store_sqlite_group_commit(s), CSIP_ERR_INVALID_ARG);
    ASSERT_OK(csip_store_sqlite_group_begin(s));
    EXPECT_TRUE(csip_store_sqlite_in_group(s));
    EXPECT_EQ(csip_store_sqlite_group_begin(s), CSIP_ERR_INVALID_ARG);
    /* two AOR updates commit with the group */
    ASSERT_OK(ls.begin(ls.user_data, b1.aor));
    ASSERT_OK(ls.put(ls.user_data, &b1));
    ASSERT_OK(ls.commit(ls.user_data));
    ASSERT_OK(ls.begin(ls.user_data, b3.aor));
    ASSERT_OK(ls.put(ls.user_data, &b3));
    ASSERT_OK(ls.commit(ls.user_data));
    /* before the group's commit, another connection sees none of it */
    csip_store_sqlite *other;
    ASSERT_OK(csip_store_sqlite_open(dbpath, 0, NULL, &other));
    EXPECT_EQ(csip_store_sqlite_count(other), 0);
    csip_store_sqlite_close(other);
    ASSERT_OK(csip_store_sqlite_group_commit(s));
    EXPECT_FALSE(csip_store_sqlite_in_group(s));
    EXPECT_EQ(csip_store_sqlite_count(s), 2);
    /* a rollback inside a group fails the whole group: what it wrote is
     * undone on disk and in memory (b1 as it was, a2 gone), later updates are
     * refused and its commit reports the failure */
    csip_binding a2 = mk("sip:a@example.com", "sip:a2@h", 9000, 1);
    ASSERT_OK(csip_store_sqlite_group_begin(s));
    ASSERT_OK(ls.begin(ls.user_data, a2.aor));
    ASSERT_OK(ls.put(ls.user_data, &a2));
    ASSERT_OK(ls.commit(ls.user_data));
    EXPECT_TRUE(find(&ls, "sip:a@example.com", "sip:a2@h") != NULL);
    ASSERT_OK(ls.begin(ls.user_data, b2.aor));
    ASSERT_OK(ls.put(ls.user_data, &b2));
    ls.rollback(ls.user_data);
    EXPECT_TRUE(find(&ls, "sip:b@example.com", "sip:b1@h") == NULL);
    EXPECT_TRUE(find(&ls, "sip:a@example.com", "sip:a2@h") == NULL);
    EXPECT_TRUE(find(&ls, "sip:a@example.com", "sip:a1@h") != NULL);
    EXPECT_EQ(ls.begin(ls.user_data, b2.aor), CSIP_ERR_STORE);
    EXPECT_TRUE(csip_store_sqlite_in_group(s));
    EXPECT_EQ(csip_store_sqlite_group_commit(s), CSIP_ERR_STORE);
    EXPECT_FALSE(csip_store_sqlite_in_group(s));
    EXPECT_EQ(csip_store_sqlite_count(s), 2);
    /* an update outside a group commits by itself, as before */
    csip_binding b4 = mk("sip:d@example.com", "sip:d1@h", 9000, 1);
    ASSERT_OK(ls.begin(ls.user_data, b4.aor));
    ASSERT_OK(ls.put(ls.user_data, &b4));
    ASSERT_OK(ls.commit(ls.user_data));
    csip_store_sqlite_close(s);
    ASSERT_TRUE((s = open_db(&ls)) != NULL);
    EXPECT_EQ(csip_store_sqlite_count(s), 3);
    EXPECT_TRUE(find(&ls, "sip:a@example.com", "sip:a1@h") != NULL);
    EXPECT_TRUE(find(&ls, "sip:b@example.com", "sip:b1@h") == NULL);
    EXPECT_TRUE(find(&ls, "sip:c@example.com", "sip:c1@h") != NULL);
    /* a group left open at close is committed, not lost */
    ASSERT_OK(csip_store_sqlite_group_begin(s));
    csip_binding b5 = mk("sip:e@example.com", "sip:e1@h", 9000, 1);
    ASSERT_OK(ls.begin(ls.user_data, b5.aor));
    ASSERT_OK(ls.put(ls.user_data, &b5));
    ASSERT_OK(ls.commit(ls.user_data));
    csip_store_sqlite_close(s);
    ASSERT_OK(csip_store_sqlite_open(dbpath, 0, NULL, &s));
    EXPECT_EQ(csip_store_sqlite_count(s), 4);
    csip_store_sqlite_close(s);
}

/* One AOR update that puts one binding: begin, put, commit. */
static int put_one(const csip_location_store *ls, const csip_binding *b)
{
    int rc = ls->begin(ls->user_data, b->aor);
    if (rc == 0 && (rc = ls->put(ls->user_data, b)) == 0)
        rc = ls->commit(ls->user_data);
    return rc;
}

/* A group's writes reach the database at its commit: a write the database
 * refuses then (here a trigger another connection installed refuses one
 * AOR) fails the whole group. Nothing of it is on disk, memory agrees with
 * the disk again (a refreshed binding has its old values back, new ones are
 * gone), and the next group commits normally. Removals are queued in order
 * with the puts. */
static void test_sqlite_group_commit_fails(void)
{
    fresh_db("groupfail");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    csip_binding a1 = mk("sip:a@example.com", "sip:a1@h", 9000, 1);
    csip_binding x1 = mk("sip:x@example.com", "sip:x1@h", 9000, 1);
    ASSERT_OK(csip_store_sqlite_group_begin(s));
    ASSERT_OK(put_one(&ls, &a1));
    ASSERT_OK(put_one(&ls, &x1));
    ASSERT_OK(csip_store_sqlite_group_commit(s));

    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(dbpath, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TRIGGER refuse BEFORE INSERT ON location"
                           " WHEN NEW.aor = CAST('sip:bad@example.com' AS BLOB)"
                           " BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    /* a group: a1 refreshed, x1 removed, b1 new, then the refused one */
    csip_binding a1b = mk("sip:a@example.com", "sip:a1@h", 9500, 2);
    csip_binding b1 = mk("sip:b@example.com", "sip:b1@h", 9000, 1);
    b1.params = CSIP_STR_NULL; /* NULL and empty strings keep their difference */
    b1.path = CSIP_STR("");
    csip_binding bad = mk("sip:bad@example.com", "sip:z@h", 9000, 1);
    ASSERT_OK(csip_store_sqlite_group_begin(s));
    ASSERT_OK(put_one(&ls, &a1b));
    ASSERT_OK(ls.begin(ls.user_data, x1.aor));
    ASSERT_OK(ls.remove(ls.user_data, x1.aor, x1.contact));
    ASSERT_OK(ls.commit(ls.user_data));
    ASSERT_OK(put_one(&ls, &b1));
    ASSERT_OK(put_one(&ls, &bad));
    /* memory has the group's changes until its commit */
    const csip_binding *f = find(&ls, "sip:a@example.com", "sip:a1@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->cseq, 2);
    EXPECT_TRUE(find(&ls, "sip:x@example.com", "sip:x1@h") == NULL);
    EXPECT_EQ(csip_store_sqlite_group_commit(s), CSIP_ERR_STORE);
    EXPECT_FALSE(csip_store_sqlite_in_group(s));
    f = find(&ls, "sip:a@example.com", "sip:a1@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->cseq, 1);
    EXPECT_EQ(f->expires_at, 9000);
    EXPECT_TRUE(find(&ls, "sip:x@example.com", "sip:x1@h") != NULL);
    EXPECT_TRUE(find(&ls, "sip:b@example.com", "sip:b1@h") == NULL);
    EXPECT_TRUE(find(&ls, "sip:bad@example.com", "sip:z@h") == NULL);
    EXPECT_EQ(csip_store_sqlite_count(s), 2);

    /* the next group, without the refused AOR, commits: removal and puts in order */
    ASSERT_EQ(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_OK(csip_store_sqlite_group_begin(s));
    ASSERT_OK(put_one(&ls, &a1b));
    ASSERT_OK(ls.begin(ls.user_data, x1.aor));
    ASSERT_OK(ls.remove(ls.user_data, x1.aor, x1.contact));
    ASSERT_OK(ls.put(ls.user_data, &x1)); /* removed, then written again */
    ASSERT_OK(ls.remove_all(ls.user_data, x1.aor));
    ASSERT_OK(ls.commit(ls.user_data));
    ASSERT_OK(put_one(&ls, &b1));
    ASSERT_OK(csip_store_sqlite_group_commit(s));
    csip_store_sqlite_close(s);
    ASSERT_TRUE((s = open_db(&ls)) != NULL);
    EXPECT_EQ(csip_store_sqlite_count(s), 2);
    f = find(&ls, "sip:a@example.com", "sip:a1@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->cseq, 2);
    EXPECT_EQ(f->expires_at, 9500);
    EXPECT_TRUE(find(&ls, "sip:x@example.com", "sip:x1@h") == NULL);
    f = find(&ls, "sip:b@example.com", "sip:b1@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_TRUE(f->params.p == NULL);
    EXPECT_TRUE(f->path.p != NULL && f->path.len == 0);
    EXPECT_TRUE(csip_str_eq_c(f->call_id, "call@h"));
    csip_store_sqlite_close(s);
}

static int list_cb(void *ud, csip_str user, csip_str realm)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%.*s@%.*s;", (int)user.len, user.p, (int)realm.len, realm.p);
    return 0;
}

static void test_userdb(void)
{
    fresh_db("users");
    csip_userdb *u = NULL;
    ASSERT_OK(csip_userdb_open(dbpath, NULL, &u));
    ASSERT_OK(csip_userdb_put(u, CSIP_STR("bob"), CSIP_STR("b.example"), CSIP_STR("pw1")));
    ASSERT_OK(csip_userdb_put(u, CSIP_STR("alice"), CSIP_STR("b.example"), CSIP_STR("x")));
    ASSERT_OK(csip_userdb_put(u, CSIP_STR("zed"), CSIP_STR("a.example"), CSIP_STR("y")));
    /* a second put changes the password */
    ASSERT_OK(csip_userdb_put(u, CSIP_STR("alice"), CSIP_STR("b.example"), CSIP_STR("secret")));
    /* the stored HA1 of each algorithm, by name and by userhash */
    static const csip_auth_alg algs[] = {CSIP_AUTH_ALG_MD5, CSIP_AUTH_ALG_SHA256_SESS,
                                         CSIP_AUTH_ALG_SHA512_256};
    for (size_t i = 0; i < 3; i++) {
        char want[CSIP_AUTH_HEX_MAX], got[CSIP_AUTH_HEX_MAX], uh[CSIP_AUTH_HEX_MAX];
        ASSERT_OK(csip_auth_ha1(csip_auth_alg_base(algs[i]), CSIP_STR("alice"),
                                CSIP_STR("b.example"), CSIP_STR("secret"), want));
        ASSERT_OK(csip_userdb_lookup(u, CSIP_STR("alice"), false, CSIP_STR("b.example"), algs[i],
                                     got, sizeof got));
        EXPECT_TRUE(strcmp(want, got) == 0);
        ASSERT_OK(csip_auth_userhash(csip_auth_alg_base(algs[i]), CSIP_STR("alice"),
                                     CSIP_STR("b.example"), uh));
        memset(got, 0, sizeof got);
        ASSERT_OK(csip_userdb_lookup(u, csip_str_c(uh), true, CSIP_STR("b.example"), algs[i], got,
                                     sizeof got));
        EXPECT_TRUE(strcmp(want, got) == 0);
    }
    char ha1[CSIP_AUTH_HEX_MAX];
    /* another realm, an unknown user, a small buffer */
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("alice"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, ha1, sizeof ha1),
              CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("carol"), false, CSIP_STR("b.example"),
                                 CSIP_AUTH_ALG_MD5, ha1, sizeof ha1),
              CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("alice"), false, CSIP_STR("b.example"),
                                 CSIP_AUTH_ALG_MD5, ha1, 10),
              CSIP_ERR_INVALID_ARG);
    /* bad names are refused */
    EXPECT_EQ(csip_userdb_put(u, CSIP_STR(""), CSIP_STR("b.example"), CSIP_STR("x")),
              CSIP_ERR_INVALID_ARG);
    EXPECT_EQ(csip_userdb_put(u, (csip_str){"a\0b", 3}, CSIP_STR("b.example"), CSIP_STR("x")),
              CSIP_ERR_INVALID_ARG);
    /* the list, ordered by realm then user */
    char list[256] = "";
    ASSERT_OK(csip_userdb_list(u, list_cb, list));
    EXPECT_TRUE(strcmp(list, "zed@a.example;alice@b.example;bob@b.example;") == 0);
    /* removal */
    ASSERT_OK(csip_userdb_remove(u, CSIP_STR("bob"), CSIP_STR("b.example")));
    EXPECT_EQ(csip_userdb_remove(u, CSIP_STR("bob"), CSIP_STR("b.example")), CSIP_ERR_NOT_FOUND);
    /* a grouped import */
    ASSERT_OK(csip_userdb_begin(u));
    char name[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(name, sizeof name, "u%d", i);
        ASSERT_OK(
            csip_userdb_put(u, (csip_str){name, (size_t)n}, CSIP_STR("c.example"), CSIP_STR("p")));
    }
    ASSERT_OK(csip_userdb_commit(u));
    EXPECT_OK(csip_userdb_lookup(u, CSIP_STR("u99"), false, CSIP_STR("c.example"),
                                 CSIP_AUTH_ALG_SHA256, ha1, sizeof ha1));
    /* many users in memory (csip_userdb_warm loads them now): each found by
     * name with its own HA1, every fifth by userhash; near misses are not */
    ASSERT_OK(csip_userdb_begin(u));
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(name, sizeof name, "m%d", i);
        ASSERT_OK(csip_userdb_put(u, (csip_str){name, (size_t)n}, CSIP_STR("d.example"),
                                  (csip_str){name, (size_t)n}));
    }
    ASSERT_OK(csip_userdb_commit(u));
    ASSERT_OK(csip_userdb_warm(u));
    EXPECT_EQ(csip_userdb_warm(NULL), CSIP_ERR_INVALID_ARG);
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(name, sizeof name, "m%d", i);
        csip_str nm = {name, (size_t)n};
        csip_auth_alg alg = i % 2 ? CSIP_AUTH_ALG_MD5 : CSIP_AUTH_ALG_SHA256;
        char want[CSIP_AUTH_HEX_MAX], uh[CSIP_AUTH_HEX_MAX];
        ASSERT_OK(csip_auth_ha1(alg, nm, CSIP_STR("d.example"), nm, want));
        memset(ha1, 0, sizeof ha1);
        ASSERT_OK(csip_userdb_lookup(u, nm, false, CSIP_STR("d.example"), alg, ha1, sizeof ha1));
        ASSERT_TRUE(strcmp(ha1, want) == 0);
        if (i % 5 == 0) {
            ASSERT_OK(csip_auth_userhash(alg, nm, CSIP_STR("d.example"), uh));
            memset(ha1, 0, sizeof ha1);
            ASSERT_OK(csip_userdb_lookup(u, csip_str_c(uh), true, CSIP_STR("d.example"), alg,
                                         ha1, sizeof ha1));
            ASSERT_TRUE(strcmp(ha1, want) == 0);
            /* a userhash is not a name, nor another algorithm's userhash */
            EXPECT_EQ(csip_userdb_lookup(u, csip_str_c(uh), false, CSIP_STR("d.example"), alg,
                                         ha1, sizeof ha1),
                      CSIP_ERR_NOT_FOUND);
            EXPECT_EQ(csip_userdb_lookup(u, csip_str_c(uh), true, CSIP_STR("d.example"),
                                         alg == CSIP_AUTH_ALG_MD5 ? CSIP_AUTH_ALG_SHA512_256
                                                                  : CSIP_AUTH_ALG_MD5,
                                         ha1, sizeof ha1),
                      CSIP_ERR_NOT_FOUND);
        }
    }
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("m3000"), false, CSIP_STR("d.example"),
                                 CSIP_AUTH_ALG_MD5, ha1, sizeof ha1),
              CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("m1"), false, CSIP_STR("d.exampl"), CSIP_AUTH_ALG_MD5,
                                 ha1, sizeof ha1),
              CSIP_ERR_NOT_FOUND);
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("m"), false, CSIP_STR("1d.example"),
                                 CSIP_AUTH_ALG_MD5, ha1, sizeof ha1),
              CSIP_ERR_NOT_FOUND);
    /* the secret: drawn once, the same after a reopen */
    uint8_t k1[32], k2[32], k3[32];
    ASSERT_OK(csip_userdb_secret(u, "nonce", k1, sizeof k1));
    ASSERT_OK(csip_userdb_secret(u, "other", k3, sizeof k3));
    csip_userdb_close(u);
    ASSERT_OK(csip_userdb_open(dbpath, NULL, &u));
    ASSERT_OK(csip_userdb_secret(u, "nonce", k2, sizeof k2));
    EXPECT_TRUE(memcmp(k1, k2, sizeof k1) == 0);
    EXPECT_TRUE(memcmp(k1, k3, sizeof k1) != 0);
    EXPECT_EQ(csip_userdb_secret(u, "nonce", k2, 16), CSIP_ERR_STORE); /* another length */
    EXPECT_EQ(csip_userdb_secret(u, "nonce", k2, 0), CSIP_ERR_INVALID_ARG);
    /* another connection's change (another process's `csipd user add`) is
     * seen within a second: lookups are cached, the table's version is
     * checked at most once a second */
    csip_userdb *other = NULL;
    ASSERT_OK(csip_userdb_open(dbpath, NULL, &other));
    char before[CSIP_AUTH_HEX_MAX], after[CSIP_AUTH_HEX_MAX], want2[CSIP_AUTH_HEX_MAX];
    ASSERT_OK(csip_userdb_lookup(u, CSIP_STR("zed"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, before, sizeof before));
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("newbie"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, after, sizeof after),
              CSIP_ERR_NOT_FOUND);
    ASSERT_OK(csip_userdb_put(other, CSIP_STR("zed"), CSIP_STR("a.example"), CSIP_STR("new")));
    ASSERT_OK(csip_userdb_put(other, CSIP_STR("newbie"), CSIP_STR("a.example"), CSIP_STR("n")));
    usleep(1100 * 1000);
    ASSERT_OK(csip_userdb_lookup(u, CSIP_STR("zed"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, after, sizeof after));
    ASSERT_OK(csip_auth_ha1(CSIP_AUTH_ALG_MD5, CSIP_STR("zed"), CSIP_STR("a.example"),
                            CSIP_STR("new"), want2));
    EXPECT_TRUE(strcmp(after, want2) == 0);
    EXPECT_TRUE(strcmp(after, before) != 0);
    EXPECT_OK(csip_userdb_lookup(u, CSIP_STR("newbie"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, after, sizeof after));
    /* and one's own change at once */
    ASSERT_OK(csip_userdb_remove(u, CSIP_STR("newbie"), CSIP_STR("a.example")));
    EXPECT_EQ(csip_userdb_lookup(u, CSIP_STR("newbie"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, after, sizeof after),
              CSIP_ERR_NOT_FOUND);
    csip_userdb_close(other);
    /* the users survived the reopen */
    EXPECT_OK(csip_userdb_lookup(u, CSIP_STR("zed"), false, CSIP_STR("a.example"),
                                 CSIP_AUTH_ALG_MD5, ha1, sizeof ha1));
    csip_userdb_close(u);
    csip_userdb_close(NULL);
}

/* The first column of the first row of sql, with ?1 bound to blob (when
 * given): -1 when there is no row, -2 when it cannot run. */
static int64_t query_i64(sqlite3 *db, const char *sql, const char *blob)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -2;
    if (blob)
        sqlite3_bind_blob(st, 1, blob, (int)strlen(blob), SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t row_expiry(sqlite3 *db, const char *contact)
{
    return query_i64(db, "SELECT expires_at FROM location WHERE contact = ?1", contact);
}

/* When the table disagrees with memory (rows changed behind the store's
 * back), a put still leaves the table holding the binding, with its new
 * values. */
static void test_sqlite_put_disagreeing(void)
{
    fresh_db("disagree");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    csip_binding a = mk("sip:u@example.com", "sip:a@h", 1000, 1);
    csip_binding b = mk("sip:u@example.com", "sip:b@h", 1000, 1);
    ASSERT_OK(ls.put(ls.user_data, &a));
    ASSERT_OK(ls.put(ls.user_data, &b));
    a.expires_at = 1100; /* a refresh */
    ASSERT_OK(ls.put(ls.user_data, &a));
    sqlite3 *db;
    ASSERT_TRUE(sqlite3_open(dbpath, &db) == SQLITE_OK);
    EXPECT_EQ(row_expiry(db, "sip:a@h"), 1100);
    /* behind the store's back: a's row deleted, c's row added */
    ASSERT_TRUE(sqlite3_exec(db,
                             "DELETE FROM location WHERE contact = CAST('sip:a@h' AS BLOB);"
                             "INSERT INTO location(aor, contact, params, path, call_id, cseq,"
                             " q, expires_at) VALUES (CAST('sip:u@example.com' AS BLOB),"
                             " CAST('sip:c@h' AS BLOB), NULL, NULL, CAST('x' AS BLOB), 1, -1, 5)",
                             NULL, NULL, NULL) == SQLITE_OK);
    EXPECT_EQ(row_expiry(db, "sip:a@h"), -1);
    EXPECT_EQ(row_expiry(db, "sip:c@h"), 5);
    a.expires_at = 1200; /* memory says refresh, the table has no row */
    ASSERT_OK(ls.put(ls.user_data, &a));
    csip_binding c = mk("sip:u@example.com", "sip:c@h", 1300, 1); /* memory says new */
    ASSERT_OK(ls.put(ls.user_data, &c));
    EXPECT_EQ(row_expiry(db, "sip:a@h"), 1200);
    EXPECT_EQ(row_expiry(db, "sip:c@h"), 1300);
    EXPECT_EQ(row_expiry(db, "sip:b@h"), 1000);
    sqlite3_close(db);
    const csip_binding *got = find(&ls, "sip:u@example.com", "sip:c@h");
    ASSERT_TRUE(got != NULL);
    EXPECT_EQ(got->expires_at, 1300);
    csip_store_sqlite_close(s);
}

static int64_t count_rows(const char *where)
{
    sqlite3 *db;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM location WHERE %s", where);
    if (sqlite3_open(dbpath, &db) != SQLITE_OK)
        return -2;
    int64_t v = query_i64(db, sql, NULL);
    sqlite3_close(db);
    return v;
}

/* Rows are numbered: a new binding takes the next number, a refresh keeps
 * its row, a removal deletes it, and numbers go on after a reopen. A table
 * holding two rows of one binding (written behind the store's back) opens
 * with the later row, and the earlier one is deleted. */
static void test_sqlite_rows(void)
{
    fresh_db("rows");
    csip_location_store ls;
    csip_store_sqlite *s = open_db(&ls);
    ASSERT_TRUE(s != NULL);
    csip_binding a = mk("sip:u@example.com", "sip:a@h", 1000, 1);
    csip_binding b = mk("sip:u@example.com", "sip:b@h", 1000, 1);
    a.store_id = 77; /* what a put is given is ignored */
    ASSERT_OK(put_one(&ls, &a));
    ASSERT_OK(put_one(&ls, &b));
    const csip_binding *f = find(&ls, "sip:u@example.com", "sip:a@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->store_id, 1);
    a.expires_at = 1100;
    ASSERT_OK(put_one(&ls, &a));
    f = find(&ls, "sip:u@example.com", "sip:a@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->store_id, 1); /* a refresh keeps its row */
    EXPECT_EQ(count_rows("id = 1 AND expires_at = 1100"), 1);
    ASSERT_OK(ls.begin(ls.user_data, a.aor));
    ASSERT_OK(ls.remove(ls.user_data, a.aor, a.contact));
    ASSERT_OK(ls.commit(ls.user_data));
    EXPECT_EQ(count_rows("id = 1"), 0);
    csip_store_sqlite_close(s);

    ASSERT_TRUE((s = open_db(&ls)) != NULL);
    csip_binding c = mk("sip:u@example.com", "sip:c@h", 1000, 1);
    ASSERT_OK(put_one(&ls, &c));
    f = find(&ls, "sip:u@example.com", "sip:c@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->store_id, 3); /* after b's 2, across the reopen */
    csip_store_sqlite_close(s);

    /* two rows of b: the later (id 9) wins at open, the earlier goes */
    sqlite3 *db;
    ASSERT_TRUE(sqlite3_open(dbpath, &db) == SQLITE_OK);
    ASSERT_TRUE(sqlite3_exec(db,
                             "INSERT INTO location VALUES (9, CAST('sip:u@example.com' AS BLOB),"
                             " CAST('sip:b@h' AS BLOB), NULL, NULL, CAST('y' AS BLOB), 5, -1,"
                             " 4000)",
                             NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    EXPECT_EQ(count_rows("contact = CAST('sip:b@h' AS BLOB)"), 2);
    ASSERT_TRUE((s = open_db(&ls)) != NULL);
    EXPECT_EQ(csip_store_sqlite_count(s), 2);
    f = find(&ls, "sip:u@example.com", "sip:b@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->store_id, 9);
    EXPECT_EQ(f->expires_at, 4000);
    EXPECT_EQ(f->cseq, 5);
    EXPECT_EQ(count_rows("contact = CAST('sip:b@h' AS BLOB)"), 1);
    /* the next new binding comes after the highest row */
    csip_binding d = mk("sip:u@example.com", "sip:d@h", 1000, 1);
    ASSERT_OK(put_one(&ls, &d));
    f = find(&ls, "sip:u@example.com", "sip:d@h");
    ASSERT_TRUE(f != NULL);
    EXPECT_EQ(f->store_id, 10);
    csip_store_sqlite_close(s);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const check_test tests[] = {
        CHECK_TEST(test_mem),
        CHECK_TEST(test_sqlite_rows),
        CHECK_TEST(test_mem_nomem),
        CHECK_TEST(test_sqlite_reopen),
        CHECK_TEST(test_sqlite_rollback),
        CHECK_TEST(test_registrar_sqlite),
        CHECK_TEST(test_sqlite_crash),
        CHECK_TEST(test_userdb),
        CHECK_TEST(test_sqlite_group),
        CHECK_TEST(test_sqlite_group_commit_fails),
        CHECK_TEST(test_sqlite_old_schema),
        CHECK_TEST(test_sqlite_put_disagreeing),
    };
    int rc = check_run(tests, sizeof tests / sizeof tests[0], argc, argv);
    const char *names[] = {"reopen", "rollback", "registrar", "crash",
                           "users",  "group",    "groupfail", "old"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        fresh_db(names[i]);
    rmdir(dir);
    return rc;
}
