/*
 * conflict.h -- the structured detail of a unique-constraint violation
 * (conflict.c), assembled the same way whatever stores the records: begin,
 * add once per violated index, finish.  A transaction holds one.
 */
#ifndef UDB_CONFLICT_H
#define UDB_CONFLICT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "schema.h"
#include "uniqdb.h"

typedef struct udb_conflicts {
    bool has;                  /* conflict is the last operation's */
    const udb_type *t;         /* the type begun with */
    udb_conflict conflict;
    udb_conflict_index *cidx;  /* conflict.indexes, grown as needed */
    size_t ccap;
    size_t (*coff)[2];         /* offsets of values / existing_key in cbuf */
    udb_buf cbuf;              /* owns conflict bytes */
} udb_conflicts;

void udb__conflicts_free(udb_conflicts *c);
/* Start the detail of an operation on a record of t (none added yet). */
void udb__conflicts_begin(udb_conflicts *c, const udb_type *t);
/* Add index ix of t: the record's values are vals (by field, NULL for a
 * missing one), the holder's primary key the tuple pk..pk+pklen.
 * UDB_ENOMEM, or UDB_ECORRUPT when pk is not a tuple. */
int  udb__conflicts_add(udb_conflicts *c, const udb_index *ix, const msgpack_object *const *vals,
                        const void *pk, size_t pklen);
/* Finish: 0 if nothing was added; else UDB_ECONFLICT, the detail in place
 * for udb_conflict_info() and PostgreSQL's kind of message appended to msg. */
int  udb__conflicts_finish(udb_conflicts *c, udb_buf *msg);

#endif
