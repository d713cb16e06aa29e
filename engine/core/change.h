/*
 * change.h -- the rules of a schema change (change.c): whether applying a
 * schema over the stored one is allowed, and the words for what it does.
 * The backend does the change itself (the LMDB backend: migrate.c).
 */
#ifndef UDB_CHANGE_H
#define UDB_CHANGE_H

#include <stdbool.h>

#include "buf.h"
#include "schema.h"
#include "uniqdb.h"

/* Do a and b (of the same name, in two schemas) define the same index?  An
 * index that is not the same is rebuilt. */
bool udb__same_index(const udb_index *a, const udb_index *b);

/* Decide what applying *s over the stored schema old (NULL: none) means,
 * with flags UDB_SCHEMA_KEEP / UDB_SCHEMA_DROP: refuse (UDB_ESCHEMA, why in
 * msg) or describe the change, one item a line, into report (what
 * udb_schema_apply returns).  With UDB_SCHEMA_KEEP, *s is replaced by the
 * stored schema plus what *s adds.  txn: the write transaction old's
 * records are read in (the backend's count and each).  Other errors: the
 * backend's, UDB_ENOMEM. */
int udb__change_plan(udb_buf *msg, udb_buf *report, udb_schema **s, const udb_schema *old,
                     unsigned flags, udb_txn *txn);

/* The refusal in msg gets a preface saying how the stored schema moved
 * from seen (what the caller's handle knew) to stored: the caller's schema
 * was written against another one. */
void udb__change_explain_race(udb_buf *msg, const udb_schema *seen, const udb_schema *stored);

#endif
