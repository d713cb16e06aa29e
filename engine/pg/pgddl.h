/*
 * pgddl.h -- a uniqdb schema as PostgreSQL tables and indexes (ddl.c): the
 * one mapping that `uniqdb export --postgres` (through udb_pg_ddl) and the
 * PostgreSQL backend both use.  Text only: no connection, no libpq.
 *
 * Mapping, per type T (a table "T" in the target schema):
 *   str text COLLATE "C" | enum text COLLATE "C" CHECK (f IN (...)) |
 *   int bigint | uint numeric(20,0) CHECK 0..2^64-1 |
 *   float double precision CHECK <> 'NaN' | bool boolean | bin bytea |
 *   any jsonb (a readable copy: JSON where it reads back as the same value,
 *   else {"$msgpack": "<base64>"});
 *   "$extra" jsonb: the undeclared fields of an "extra": true type (readable);
 *   "$raw" bytea: when T has an `any` field or "extra": a msgpack map of the
 *   record's `any` and undeclared fields exactly as stored (byte-identical).
 * COLLATE "C": text compares and sorts as bytes, as uniqdb's keys do.
 * Names: table "T", primary key "T_pkey", index "T.I" (shortened past 63
 * bytes: its first 54 bytes, "~" and 8 hex digits of a hash), auto-key
 * sequence "T.key" (only with sequences: export's choice).
 */
#ifndef UDB_PGDDL_H
#define UDB_PGDDL_H

#include <stdbool.h>

#include "buf.h"
#include "schema.h"

#define UDB_PG_NAMELEN 63   /* PostgreSQL's identifier limit (NAMEDATALEN - 1) */

typedef struct udb_pgddl {
    const char *pgschema;            /* the PostgreSQL schema holding the tables */
    bool sequences;                  /* auto keys as sequences + DEFAULT nextval (export) */
    const char *const *seqs;         /* named sequences to create (NULL-terminated; may be NULL) */
    const char *const *bytea_fields; /* "type.field": str fields as bytea (export --str-nul) */
} udb_pgddl;

/* "name" with " doubled. */
void udb__pg_ident(udb_buf *b, const char *name);
/* "schema"."name" */
void udb__pg_qualified(udb_buf *b, const char *schema, const char *name);
/* 'text' with ' doubled (standard_conforming_strings on). */
void udb__pg_literal(udb_buf *b, const char *s, size_t n);
/* The relation name of index ix of type t (see the top). */
void udb__pg_index_relname(char out[UDB_PG_NAMELEN + 1], const char *type, const char *index);
/* Does t have the "$raw" column (an `any` field, or "extra")? */
bool udb__pg_has_raw(const udb_type *t);
/* Is field f of t a bytea column by o->bytea_fields? */
bool udb__pg_is_bytea(const udb_pgddl *o, const udb_type *t, const udb_field *f);
/* Every name fits PostgreSQL and no two relations share one (tables, primary
 * keys, indexes, sequences); bytea fields have no backslash in a predicate.
 * 0, or UDB_ESCHEMA with a message naming the culprit. */
int  udb__pg_check_names(const udb_schema *s, const udb_pgddl *o, udb_buf *msg);
/* Column i of t: "name" type [NOT NULL] [DEFAULT ...] [CHECK (...)] */
void udb__pg_column(udb_buf *b, const udb_type *t, size_t i, const udb_pgddl *o);
/* The CHECK expression of field f, "" when it has none. */
void udb__pg_check_expr(udb_buf *b, const udb_field *f);
/* The "$extra" and "$raw" column definitions. */
extern const char udb__pg_extra_column[], udb__pg_raw_column[];
/* CREATE TABLE for t (with its auto-key sequence when o->sequences), one
 * statement per line-terminated ';'. */
void udb__pg_create_table(udb_buf *b, const udb_type *t, const udb_pgddl *o);
/* CREATE [UNIQUE] INDEX for ix of t. */
void udb__pg_create_index(udb_buf *b, const udb_type *t, const udb_index *ix,
                          const udb_pgddl *o);

#define UDB_PGDDL_TABLES  1u   /* tables and sequences */
#define UDB_PGDDL_INDEXES 2u   /* indexes (after the data, when loading) */
/* The script for s: the parts asked for, names checked first.  0,
 * UDB_ESCHEMA (message in msg), UDB_ENOMEM. */
int  udb__pg_ddl(udb_buf *b, const udb_schema *s, const udb_pgddl *o, unsigned parts,
                 udb_buf *msg);

#endif
