/*
 * csip — location stores for the registrar (csip/registrar.h): one in memory,
 * and one in memory written through to SQLite (WAL) so that a restart or a
 * crash loses no binding. Part of the runtime library (libcsip-runtime).
 *
 * Threading: a store is confined to one thread at a time.
 */
#ifndef CSIP_STORE_H
#define CSIP_STORE_H

#include "csip/auth.h"
#include "csip/registrar.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An in-memory location store, hashed by AOR (opaque). */
typedef struct csip_store_mem csip_store_mem;

/**
 * Creates an empty memory store.
 * @param out set to the store (owned: free with csip_store_mem_free()).
 * @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_NOMEM.
 * @since 0.1
 */
CSIP_EXTERN int csip_store_mem_new(const csip_mem *mem, csip_store_mem **out);
/** Frees a memory store and its bindings (NULL is a no-op). */
CSIP_EXTERN void csip_store_mem_free(csip_store_mem *s);
/**
 * Fills *out with the store's operations (get, put, remove, remove_all;
 * no begin/commit: each change is applied at once) for csip_registrar_new().
 */
CSIP_EXTERN void csip_store_mem_location(csip_store_mem *s, csip_location_store *out);
/** Removes every binding with expires_at <= now. @return the number removed. */
CSIP_EXTERN size_t csip_store_mem_sweep(csip_store_mem *s, int64_t now);
/**
 * Calls cb for every binding with expires_at <= now, without removing it; a
 * non-zero return from cb stops the walk and is returned.
 * @return 0, CSIP_ERR_INVALID_ARG, or what cb returned.
 */
CSIP_EXTERN int csip_store_mem_each_expired(const csip_store_mem *s, int64_t now,
                                            int (*cb)(void *ud, const csip_binding *b),
                                            void *ud);
/** The number of bindings held, expired ones not yet swept included. */
CSIP_EXTERN size_t csip_store_mem_count(const csip_store_mem *s);

/** A location store in memory, written through to a SQLite database (opaque). */
typedef struct csip_store_sqlite csip_store_sqlite;

/** csip_store_sqlite_open() flags. */
#define CSIP_STORE_SQLITE_SYNC_FULL 1u /**< fsync the WAL at every commit (survives power loss) */

/**
 * Opens (creating it when absent) a SQLite location database in WAL mode and
 * loads every binding it holds into memory. Each put and remove (or each
 * begin/commit group) is committed to the database before it returns.
 * Durability: with the default synchronous=NORMAL a committed binding survives
 * the death of the process (SIGKILL, crash); with CSIP_STORE_SQLITE_SYNC_FULL
 * it also survives an operating-system crash or a power loss.
 *
 * @param path a file name (UTF-8); the -wal and -shm files sit beside it.
 * @param out set to the store (owned: close with csip_store_sqlite_close()).
 * @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_NOMEM, CSIP_ERR_STORE
 *         (the database could not be opened or read).
 * @since 0.1
 */
CSIP_EXTERN int csip_store_sqlite_open(const char *path, unsigned flags, const csip_mem *mem,
                                       csip_store_sqlite **out);
/** Closes the database and frees the store (NULL is a no-op). */
CSIP_EXTERN void csip_store_sqlite_close(csip_store_sqlite *s);
/**
 * Fills *out with the store's operations for csip_registrar_new(): get reads
 * memory; put, remove and remove_all write the database then memory;
 * begin/commit/rollback make one AOR's changes a single transaction.
 * Database errors are CSIP_ERR_STORE.
 */
CSIP_EXTERN void csip_store_sqlite_location(csip_store_sqlite *s, csip_location_store *out);
/**
 * Removes every binding with expires_at <= now, from the database and memory.
 * @param removed set to the number removed (may be NULL).
 * @return 0, CSIP_ERR_STORE.
 */
CSIP_EXTERN int csip_store_sqlite_sweep(csip_store_sqlite *s, int64_t now, size_t *removed);
/**
 * Group commit: the changes of every REGISTER handled until
 * csip_store_sqlite_group_commit() go into one database transaction. A server
 * holds the responses of the group and sends them once the group is
 * committed, so a binding is still on disk before its 200 OK, at one commit
 * per group instead of one per REGISTER. Inside a group memory changes at
 * once and the database writes are queued; the commit runs them in one
 * transaction (the write lock is held only then). A write the database
 * refuses fails the group at its commit; an AOR update that rolls back inside
 * a group fails it at once: memory is reloaded from the database for every
 * AOR the group touched, later updates are refused with CSIP_ERR_STORE and
 * the group's commit returns CSIP_ERR_STORE (answer 500 to every held
 * response, then open a new group). A failure is rare (a full or failing
 * disk) and usually hits every update alike, so the group spares the
 * savepoint each AOR would need.
 * @return 0, CSIP_ERR_INVALID_ARG (a group or an AOR update already open).
 */
CSIP_EXTERN int csip_store_sqlite_group_begin(csip_store_sqlite *s);
/**
 * Commits the group. On failure (or after a rollback inside the group)
 * nothing of the group is on disk, memory is
 * made to agree (every AOR it touched is reloaded from the database), and
 * CSIP_ERR_STORE is returned: the held responses must not be sent (answer
 * 500 instead).
 */
CSIP_EXTERN int csip_store_sqlite_group_commit(csip_store_sqlite *s);
/** True between csip_store_sqlite_group_begin() and the group's commit. */
CSIP_EXTERN bool csip_store_sqlite_in_group(const csip_store_sqlite *s);
/** The number of bindings held in memory. */
CSIP_EXTERN size_t csip_store_sqlite_count(const csip_store_sqlite *s);

/* ------------------------------------------------------------------------- */
/* User accounts for digest authentication                                    */

/**
 * A SQLite table of user accounts (opaque): per (username, realm) the HA1 of
 * each base algorithm (MD5, SHA-256, SHA-512-256) and the matching userhash (RFC 7616
 * §3.4.4). Passwords are never stored. It may share a database file with
 * the location store (WAL, one connection each).
 */
typedef struct csip_userdb csip_userdb;
/**
 * Opens (creating when absent) the users table of a database.
 * @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_NOMEM, CSIP_ERR_STORE.
 * @since 0.1
 */
CSIP_EXTERN int csip_userdb_open(const char *path, const csip_mem *mem, csip_userdb **out);
/** Closes the database (NULL is a no-op). */
CSIP_EXTERN void csip_userdb_close(csip_userdb *db);
/**
 * Adds a user or changes its password: stores H(user:realm:password) for MD5
 * SHA-256 and SHA-512-256. username and realm are as the client will send them (unescaped).
 * @return 0, CSIP_ERR_INVALID_ARG (empty or NUL-holding username or realm),
 *         CSIP_ERR_STORE.
 */
CSIP_EXTERN int csip_userdb_put(csip_userdb *db, csip_str username, csip_str realm,
                                csip_str password);
/** Removes a user. @return 0, CSIP_ERR_NOT_FOUND, CSIP_ERR_STORE. */
CSIP_EXTERN int csip_userdb_remove(csip_userdb *db, csip_str username, csip_str realm);
/**
 * Calls fn for each user, ordered by realm then username; a non-zero return
 * from fn stops the walk and is returned.
 */
CSIP_EXTERN int csip_userdb_list(csip_userdb *db,
                                 int (*fn)(void *user_data, csip_str username, csip_str realm),
                                 void *user_data);
/** Groups the puts and removes that follow into one transaction (imports). */
CSIP_EXTERN int csip_userdb_begin(csip_userdb *db);
CSIP_EXTERN int csip_userdb_commit(csip_userdb *db);
/**
 * The lookup for csip_auth_server_verify() (a csip_auth_lookup_fn; user_data
 * is the csip_userdb). Served from a copy of the users in memory, loaded
 * again when the table has changed (checked at most once a second, and at
 * once after this handle's own changes), so users added by another process
 * are seen within a second.
 */
CSIP_EXTERN int csip_userdb_lookup(void *user_data, csip_str username, bool userhash,
                                   csip_str realm, csip_auth_alg alg, char *ha1, size_t ha1_cap);
/**
 * Loads the users into memory now (lookups are served from there; without
 * this the first lookup loads them), so that a server does not pause at its
 * first authenticated request. @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_STORE
 * (lookups then read the database). @since 0.1
 */
CSIP_EXTERN int csip_userdb_warm(csip_userdb *db);
/**
 * A random secret of len bytes (1..64) kept in the database: drawn and stored
 * on first use, the same afterwards. A server keys its nonces with it, so
 * that nonces it gave out stay valid across a restart.
 * @return 0, CSIP_ERR_INVALID_ARG, CSIP_ERR_STORE, CSIP_ERR_NOMEM (no randomness).
 */
CSIP_EXTERN int csip_userdb_secret(csip_userdb *db, const char *name, uint8_t *key, size_t len);

#ifdef __cplusplus
}
#endif
#endif
