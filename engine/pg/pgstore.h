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

/* Begin a transaction on a connection of p: flags 0 (write) or UDB_RDONLY.
 * 0, UDB_EINVAL (flags), UDB_ENOMEM, connection errors; message in msg. */
int  udb__pg_begin(udb_txn **out, udb_pgpool *p, unsigned flags, udb_buf *msg);
/* COMMIT and end txn (always freed).  0, UDB_EBUSY (a serialization failure:
 * nothing was written, retry), connection errors; message in msg. */
int  udb__pg_commit(udb_txn *txn, udb_buf *msg);
/* ROLLBACK and end txn.  NULL is fine. */
void udb__pg_abort(udb_txn *txn);

/* Tests only: store writes "$raw" as NULL (the negative control of the
 * byte-identity test: records with `any` or extra fields must then differ). */
void udb__pg_test_drop_raw(bool on);

#endif
