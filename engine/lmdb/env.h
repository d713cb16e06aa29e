/*
 * env.h -- an open database as the layers above see it (env.c): the LMDB
 * environment, the cached schema, and the map-size protocol.  The body of
 * struct udb_env is in env_int.h, for env.c and group.c only.
 */
#ifndef UDB_ENV_H
#define UDB_ENV_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "schema.h"
#include "sync.h"
#include "uniqdb.h"

MDB_env *udb__env_mdb(const udb_env *env);
MDB_dbi  udb__env_meta_dbi(const udb_env *env);
MDB_dbi  udb__env_seq_dbi(const udb_env *env);
size_t   udb__env_keymax(const udb_env *env);   /* LMDB's largest key */
unsigned udb__env_maxdbs(const udb_env *env);   /* LMDB named databases it can open */
/* Opened with UDB_RDONLY_ENV: a write transaction is refused with this
 * message set (UDB_EREADONLY), else 0. */
int      udb__env_refuse_write(const udb_env *env);

/* Rewrite what an older on-disk format (found at open) stores differently,
 * in one write transaction, and record the current format (migrate.c).
 * Errors: LMDB codes, UDB_ENOMEM; the message is set. */
int  udb__upgrade_format(udb_env *env);
udb_sync *udb__env_sync(const udb_env *env);
/* The slots units are shipped through (ship.h); NULL for a read-only env. */
struct udb_ship *udb__env_ship(const udb_env *env);
/* The last committed txnid, read exactly (a read transaction's id: the meta
 * pages may be mid-rewrite by a commit of another process), through the idle
 * read-only handle (udb__env_reader_begin), adopting a map size another
 * process set.  The caller must have no transaction open. */
int      udb__env_last_txnid(uint64_t *out, udb_env *env);

/* Load the stored schema and open its handles if the generation moved. */
int  udb__env_reload_schema(udb_env *env);
/* Install s as the env's current schema (old one retired, freed at close). */
void udb__env_install_schema(udb_env *env, udb_schema *s, uint64_t gen);
/* The current schema and its generation (the schema stays allocated until
 * close, even once replaced). */
void udb__env_current(udb_env *env, udb_schema **schema, uint64_t *gen);
/* Schema changes open database handles: LMDB allows one transaction at a
 * time to do that, so they hold this lock around the whole change. */
void udb__env_dbi_lock(udb_env *env);
void udb__env_dbi_unlock(udb_env *env);

/* A top-level transaction of this process begins: wait out a resize, count
 * it active, and take the current schema and its generation. */
void udb__env_enter(udb_env *env, udb_schema **schema, uint64_t *gen, pthread_t owner);
/* ... and ends. */
void udb__env_leave(udb_env *env, pthread_t owner);
/* A read-only MDB_txn on a new snapshot: the idle one renewed (mdb_txn_renew
 * saves mdb_txn_begin's allocation of maxdbs records and, with MDB_NOTLS, the
 * reader-table lock), else a new one.  LMDB codes as mdb_txn_begin's. */
int  udb__env_reader_begin(udb_env *env, MDB_txn **out);
/* End a read-only MDB_txn: reset and kept as the idle one (which holds its
 * reader slot, as LMDB's default mode holds one per thread), or aborted when
 * one is kept already. */
void udb__env_reader_end(udb_env *env, MDB_txn *txn);
/* UDB_EINVAL (message naming the rule and call) if the calling thread has a
 * transaction open on env, else 0: a write begun then could wait for itself. */
int  udb__env_thread_holds(udb_env *env, const char *call);

size_t udb__mapsize(udb_env *env);
/* Grow the map to twice `from` (no-op if another thread already did);
 * waits until no transaction of this process is open. */
int  udb__grow(udb_env *env, size_t from);
/* Adopt a map size another process set (MDB_MAP_RESIZED). */
int  udb__adopt(udb_env *env);
/* A transaction that cannot grow the map itself (it is open) asks for it;
 * the next write transaction to begin grows it. */
void udb__env_want_grow(udb_env *env, size_t from);
int  udb__env_grow_if_wanted(udb_env *env);

/* For tests (a negative control): with UDB_ENV_TEST_NOSHARE, udb_open opens
 * an environment of its own even if this process has the database open -- the
 * second MDB_env that LMDB forbids -- and keeps it out of the table.
 * Process-wide; breaks the guarantee on purpose. */
enum { UDB_ENV_TEST_NOSHARE = 1 };
void udb__env_set_test_flags(unsigned flags);

/* One attempt at a write: returns its result, and sets *full_at to the map
 * size at which it ran out of room (left 0 if it did not). */
typedef int (*udb__attempt_fn)(size_t *full_at, void *ctx);
/* Run attempt until it stops running out of room, growing the map between
 * attempts.  Returns the last attempt's result, or udb__grow's error. */
int  udb__grow_retry(udb_env *env, udb__attempt_fn attempt, void *ctx);

/* udb_options.lock_wait_ms of env (0: no limit). */
unsigned udb__env_lock_wait_ms(const udb_env *env);
/* Before a commit: keep data.mdb allocated ahead of its pages in use, so
 * that a full disk refuses the commit here -- before LMDB writes or flushes
 * anything, so nothing is lost and the next commit may succeed once space
 * is back -- rather than inside LMDB's commit, where it may be a failed
 * flush.  0, or ENOSPC (another errno from posix_fallocate). */
int  udb__env_reserve(udb_env *env);
/* Is the file system of the database (nearly) full?  LMDB reports a short
 * write as EIO: udb__env_io_rc(env, rc) turns that into ENOSPC when it is. */
bool udb__env_disk_full(const udb_env *env);
int  udb__env_io_rc(const udb_env *env, int rc);

/* While on (this thread): a map resize that would wait for this process's
 * other transactions fails at once with UDB_EBUSY instead, and
 * udb__env_refused_waiting() says so (reset by each udb__env_no_waiting). */
void udb__env_no_waiting(bool on);
/* Whether the map is to grow, or a resize (or the adoption of another
 * process's) waits for this process's transactions to end. */
bool udb__env_grow_pending(udb_env *env);
bool udb__env_refused_waiting(void);

/* The LMDB backend's environment operations (backend.h, udb_env_ops; the
 * table is envops.c's), each the public call of the same name on an LMDB
 * environment, implemented in the file named. */
extern const udb_env_ops udb__lmdb_env_ops;                             /* envops.c */
void udb__lmdb_close(udb_env *env);                                    /* env.c */
int  udb__lmdb_usage(size_t *map_size, size_t *used, udb_env *env);    /* env.c */
int  udb__lmdb_schema_json(char **out, udb_env *env);                  /* env.c */
int  udb__lmdb_begin(udb_txn **out, udb_env *env, unsigned flags);     /* txn.c */
int  udb__lmdb_write(udb_env *env, udb_write_fn fn, void *ctx);        /* group.c */
/* write_unit: udb__write_unit (group.h); may_write: udb__env_thread_holds */
int  udb__lmdb_schema_apply(char **changes, udb_env *env, const char *json, size_t len,
                            unsigned flags, udb_locked_fn locked, void *payload); /* migrate.c */
int  udb__lmdb_check(size_t *problems, udb_env *env, const char *type, udb_report_fn report,
                     udb_progress_fn progress, void *ctx);             /* check.c */
int  udb__lmdb_space(udb_space *out, udb_env *env);                    /* backup.c */
int  udb__lmdb_backup(udb_env *env, const char *dest, unsigned flags); /* backup.c */

#endif
