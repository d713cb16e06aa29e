/*
 * schemaplan.h -- the rules of a schema change, apart from any storage
 * (implemented in migrate.c, where the LMDB engine applies them; the
 * PostgreSQL backend, engine/pg/meta.c, applies the same ones): what a new
 * schema adds and removes against the stored one, what UDB_SCHEMA_KEEP
 * merges, what UDB_SCHEMA_DROP allows, and the refusals that hold whatever
 * the flags.  The store answers the two questions that need the records.
 */
#ifndef UDB_SCHEMAPLAN_H
#define UDB_SCHEMAPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "schema.h"

typedef struct udb_plan_store {
    /* *out: how many records type t (of the stored schema) holds. */
    int (*count)(uint64_t *out, const udb_type *t, void *payload);
    /* An "extra" type o gains declared fields in n while holding records:
     * does every stored record fit n?  0, or UDB_ESCHEMA with msg. */
    int (*fits)(udb_buf *msg, const udb_type *o, const udb_type *n, void *payload);
    void *payload;
} udb_plan_store;

/* Decide what applying *s (flags UDB_SCHEMA_KEEP/DROP) means against the
 * stored schema old (NULL: none yet): 0 with the change described in report
 * (one item per line, as udb_schema_apply's *changes), or UDB_ESCHEMA with
 * msg.  With UDB_SCHEMA_KEEP *s is replaced by the merged schema. */
int  udb__schema_plan(udb_schema **s, const udb_schema *old, unsigned flags,
                      const udb_plan_store *st, udb_buf *msg, udb_buf *report);
/* a and b are the same index definition (name, kind, fields, where, nulls). */
bool udb__same_index(const udb_index *a, const udb_index *b);

#endif
