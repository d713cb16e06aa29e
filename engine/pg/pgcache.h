/*
 * pgcache.h -- what a PostgreSQL connection remembers between transactions
 * (pgcache.c), so a transaction costs the round trips the same work written
 * by hand would: the statements it prepared, and the database's schema by
 * generation.  Kept on the PGconn itself with libpq's event interface
 * (libpq-events.h): it lives exactly as long as the connection, in the pool
 * or not, and is freed by PQfinish.  A connection is used by one thread at a
 * time (pgconn.h), so none of this is locked.
 */
#ifndef UDB_PGCACHE_H
#define UDB_PGCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "pgconn.h"
#include "schema.h"

/* BEGIN with begin_sql (e.g. "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL
 * ..."), and the schema stored in pgschema's "$meta" as seen by that
 * transaction: the one c read before when the stored generation is the same
 * (BEGIN and the generation in one round trip), else read and parsed anew
 * (and the statements c prepared are dropped: tables may have changed).
 * *out is c's (NULL: no schema applied yet): valid until the next call on c
 * or c is closed; do not free it.  On an error the transaction may be open:
 * the caller rolls back or closes c.  Errors as udb__pg_meta_read's. */
int udb__pg_begin_cached(const udb_schema **out, PGconn *c, const char *pgschema,
                         const char *begin_sql, udb_buf *msg);

/* Run sql with n parameters (values, lengths, formats as PQexecParams) as a
 * statement c prepares the first time it sees that text.  0 and *r (the
 * caller's to PQclear: a result with rows or a command's), or the code of
 * udb__pg_error with the message in msg. */
int udb__pg_run_prepared(PGresult **r, PGconn *c, const char *sql, int n,
                         const char *const *values, const int *lengths, const int *formats,
                         udb_buf *msg);

/* The same between SAVEPOINT savepoint and RELEASE SAVEPOINT, all three in one
 * round trip (libpq's pipeline mode).  When the statement fails, the
 * transaction is rolled back to the savepoint (a second round trip) and goes
 * on, as if it had not run; its code and message are returned. */
int udb__pg_run_guarded(PGresult **r, PGconn *c, const char *savepoint, const char *sql,
                        int n, const char *const *values, const int *lengths,
                        const int *formats, udb_buf *msg);

/* A statement text c keeps for (owner, kind) -- owner a part of the schema
 * c's transactions use (an index), kind the caller's -- so a caller need not
 * build it again: NULL when none was put.  Texts are dropped with the schema
 * (udb__pg_begin_cached reading another generation) and with c.  put copies
 * sql; out of memory, it keeps nothing. */
const char *udb__pg_cache_text(PGconn *c, const void *owner, unsigned kind);
void udb__pg_cache_text_put(PGconn *c, const void *owner, unsigned kind, const char *sql);

/* Tests: how many statements c has prepared, and how many times it read the
 * stored schema (0 for a connection never used through this file). */
uint64_t udb__pg_cache_prepares(PGconn *c);
uint64_t udb__pg_cache_schema_reads(PGconn *c);
/* Tests only: the cache ignores the stored generation, keeping a schema once
 * read (the negative control of tests/postgres/pg_trips.c). */
void udb__pg_cache_test_stale(bool on);

#endif
