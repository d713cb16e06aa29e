/*
 * pgstore.h -- the PostgreSQL backend's record operations and transactions
 * (pgstore.c): backend.h's table over one pooled libpq connection.  Internal:
 * udb_open does not reach it yet; the tests drive it beside the LMDB engine.
 *
 * A transaction is a server transaction on a connection taken from the pool
 * for its whole life: writers BEGIN ISOLATION LEVEL SERIALIZABLE, readers
 * BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY (ARCHITECTURE.md, engine/pg,
 * says why).  The schema is read from "$meta" at begin and pinned.
 */
#ifndef UDB_PGSTORE_H
#define UDB_PGSTORE_H

#include <stdbool.h>

#include "backend.h"
#include "pgconn.h"

extern const udb_backend udb__pg_backend;

/* udb__pg_begin's flag: commit with synchronous_commit off (UDB_NOSYNC). */
#define UDB__PG_NOSYNC 0x40000000u

/* Begin a transaction on a connection of p: flags 0 (write) or UDB_RDONLY,
 * and UDB__PG_NOSYNC.
 * 0, UDB_EINVAL (flags), UDB_ENOMEM, connection errors; message in msg. */
int  udb__pg_begin(udb_txn **out, udb_pgpool *p, unsigned flags, udb_buf *msg);
/* COMMIT and end txn (always freed).  0, UDB_ERETRY (a serialization
 * failure: nothing was written, run it again), UDB_EINDOUBT (the connection
 * was lost during COMMIT), UDB_ESERVER (an earlier statement failed outside
 * a savepoint: PostgreSQL rolled it back), connection errors; message in
 * msg. */
int  udb__pg_commit(udb_txn *txn, udb_buf *msg);
/* ROLLBACK and end txn.  NULL is fine. */
void udb__pg_abort(udb_txn *txn);

/* Does the calling thread hold a transaction begun on pool (and not ended)? */
bool udb__pg_thread_holds(const udb_pgpool *pool);
/* The pool txn's connection came from. */
udb_pgpool *udb__pg_txn_pool(const udb_txn *txn);
/* udb_check_type on a PostgreSQL environment (pgcheck.c). */
int  udb__pg_check(size_t *problems, udb_env *env, const char *type, udb_report_fn report,
                   udb_progress_fn progress, void *ctx);

/* Did a statement of txn meet a concurrent transaction (UDB_ERETRY)?  Then
 * the transaction must be run again, whatever its caller made of the code. */
bool udb__pg_txn_retry(const udb_txn *txn);

/* udb_exec's units: an id written in the unit's own transaction ("$unit",
 * meta.c), so that a COMMIT whose answer was lost can be told from one that
 * never happened.  mark: in txn; seen: on a connection of its own, after;
 * sweep: ids older than a day go (no unit waits that long for its answer). */
#define UDB_PG_UNIT_ID 16
int  udb__pg_unit_mark(udb_txn *txn, const unsigned char id[UDB_PG_UNIT_ID]);
int  udb__pg_unit_seen(bool *seen, udb_pgpool *pool, const unsigned char id[UDB_PG_UNIT_ID],
                       udb_buf *msg);
int  udb__pg_unit_sweep(udb_pgpool *pool, udb_buf *msg);

/* Tests only: the next n COMMITs that succeed report UDB_EINDOUBT, as if
 * the connection had been lost before their answer came; units are run
 * without their id (the negative control: udb_exec cannot find out). */
void udb__pg_test_lose_commits(int n);
void udb__pg_test_no_unit_mark(bool on);

/* What pgscan.c reads through: the transaction's connection and
 * PostgreSQL schema; the SELECT list of t's records and the canonical record
 * of row `row` of a result selected with it (0, UDB_ECORRUPT: a "$raw" that
 * is not a msgpack map, UDB_ENOMEM). */
PGconn     *udb__pg_txn_conn(udb_txn *txn);
const char *udb__pg_txn_pgschema(udb_txn *txn);
void udb__pg_select_list(udb_buf *q, const udb_type *t);
int  udb__pg_row_record(udb_buf *out, const udb_type *t, const PGresult *r, int row);
/* A failed statement's code rc and message msg on txn, as the record calls
 * set them (UDB_ERETRY marks the transaction to be run again). */
int  udb__pg_txn_err(udb_txn *txn, int rc, const udb_buf *msg);

/* The backend's scans (pgscan.c): backend.h's "scans" members. */
size_t udb__pg_scan_size(void);
int  udb__pg_scan_open(udb_cursor *c);
int  udb__pg_scan_next(udb_val *rec, udb_cursor *c);
int  udb__pg_scan_skip(uint64_t *skipped, udb_cursor *c, uint64_t n);
void udb__pg_scan_close(udb_cursor *c);
/* Tests only: scans ask the server for NULLs last (mode 1: and do not check
 * the order it returns, the negative control of the scan comparison, which
 * must then differ; 2: and check it, which must refuse the rows; 0: off). */
void udb__pg_test_scan_misorder(int mode);

/* Tests only: a new record's INSERT goes without its savepoint also where it
 * may fail in a way the transaction goes on from (the negative control of
 * tests/postgres/pg_trips.c's index row over the server's limit). */
void udb__pg_test_unguarded(bool on);

/* Tests only: store writes "$raw" as NULL (the negative control of the
 * byte-identity test: records with `any` or extra fields must then differ). */
void udb__pg_test_drop_raw(bool on);

#endif
