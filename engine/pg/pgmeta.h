/*
 * pgmeta.h -- a uniqdb database's own state on a PostgreSQL server (meta.c):
 * the schema JSON, its generation and the sequences, in tables of the
 * database's PostgreSQL schema beside the record tables; and applying a
 * schema there.
 *
 *   "$meta"  one row: format, gen (bumped by every schema change), schema
 *            (the canonical schema JSON, as the LMDB engine stores it)
 *   "$unit"  udb_exec's unit ids (pgstore.h): a unit's row commits with it
 *   "$seq"   name -> value (the current value; gapless: a row updated in
 *            the writing transaction, rolled back with it)
 * The '$' keeps them apart from type tables: type names are letters,
 * digits and _.
 */
#ifndef UDB_PGMETA_H
#define UDB_PGMETA_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "pgconn.h"
#include "schema.h"

#define UDB_PG_FORMAT 1          /* the layout of these tables */

/* The stored schema and generation: *out NULL (and *gen 0) when none was
 * applied yet (no "$meta" in the schema).  0, UDB_EFORMAT (another format),
 * UDB_ECORRUPT (the stored text does not parse), a connection error. */
int  udb__pg_meta_read(udb_schema **out, uint64_t *gen, PGconn *c, const char *pgschema,
                       udb_buf *msg);

/* Can a server of server_version_num v hold schema s?  0, or UDB_ESCHEMA
 * naming the feature, the index that needs it and the server's version
 * (NULLS NOT DISTINCT: PostgreSQL 15). */
int  udb__pg_features(const udb_schema *s, int v, udb_buf *msg);

/* udb_schema_apply on the server p connects to: in one server transaction
 * that holds an advisory lock on the database's schema (so concurrent
 * appliers, in any process, take turns and each sees the other's result),
 * the same rules as the LMDB engine (schemaplan.h: KEEP, DROP, refusals),
 * then tables, columns, CHECKs and indexes changed by ddl.c's text.  A new
 * unique index that rows break fails with UDB_ECONFLICT listing them as the
 * LMDB engine does.  *changes (may be NULL) as udb_schema_apply's, free().
 * Errors: UDB_EINVAL (flags), UDB_ESCHEMA (refused, or a feature the
 * server lacks), UDB_ECONFLICT, connection errors; on any error the server
 * is unchanged. */
int  udb__pg_schema_apply(char **changes, udb_pgpool *p, const char *json, size_t len,
                          unsigned flags, udb_buf *msg);

/* Whether pgschema holds the database's own tables ("$meta", "$seq",
 * "$unit"): a schema was applied, or a sequence advanced, there. */
int  udb__pg_meta_exists(bool *out, PGconn *c, const char *pgschema, udb_buf *msg);
/* Make those tables, inside the caller's transaction, if they are not
 * there (under the schema's advisory lock, as udb_schema_apply makes them:
 * two makers do not race).  Connection errors. */
int  udb__pg_meta_make(PGconn *c, const char *pgschema, udb_buf *msg);

/* The current value of sequence name (the backend's seq_peek; advancing is
 * core/sequence.c's, through seq_store): 0, UDB_ENOTFOUND (never taken). */
int  udb__pg_seq_get(uint64_t *out, PGconn *c, const char *pgschema, const char *name,
                     udb_buf *msg);

#endif
