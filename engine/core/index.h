/*
 * index.h -- what a record contributes to each index (index.c): one
 * function decides whether a record is in an index and under which key, so
 * writes, checks and schema changes cannot disagree.
 */
#ifndef UDB_INDEX_H
#define UDB_INDEX_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "schema.h"

/* Encode the key of index ix for the field values vals (missing ones as
 * nil).  Returns 0 and sets *applies (false: the record is not in this
 * index: a partial index whose predicate is not true). */
int udb__idx_key(udb_buf *key, bool *applies, const udb_type *t, const udb_index *ix,
                 const msgpack_object *const *vals);
/* A record whose vals hold a NULL in a unique index with NULLs distinct:
 * it conflicts with nobody there. */
bool udb__idx_exempt(const udb_index *ix, const msgpack_object *const *vals);
/* The full key of ix's entry for a record: udb__idx_key, plus the record's
 * encoded primary key appended for non-unique indexes and exempt entries
 * (udb__idx_exempt) of unique ones.  A unique index's entries hold the
 * primary key as their value either way. */
int udb__idx_entry(udb_buf *key, bool *applies, const udb_type *t, const udb_index *ix,
                   const msgpack_object *const *vals, const void *pk, size_t pklen);
/* Encode a msgpack value (given by the caller, untrusted) as a tuple element
 * for field f.  UDB_EBADRECORD with message if its type does not fit. */
int udb__field_key(udb_buf *key, const udb_type *t, const udb_field *f,
                   const msgpack_object *o, udb_buf *msg);

#endif
