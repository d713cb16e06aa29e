/*
 * schema.h -- the parsed schema: types, their fields and indexes
 * (schema.c).  Parsed once from JSON; the canonical text printed back from
 * these structs is what the database stores.
 */
#ifndef UDB_SCHEMA_H
#define UDB_SCHEMA_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "predicate.h"

#define UDB_MAX_IDX_FIELDS 8

typedef struct udb_index {
    char *name;
    bool unique, nulls_not_distinct, is_pk;
    size_t nfields;
    size_t fields[UDB_MAX_IDX_FIELDS];     /* indexes into type->fields */
    const char *fnames[UDB_MAX_IDX_FIELDS];/* borrowed from the fields */
    char *where;                           /* original text, NULL if none */
    udb_pred pred;
    MDB_dbi dbi;
} udb_index;

typedef struct udb_type {
    char *name;
    size_t key;                /* index into fields */
    bool extra;
    size_t nfields;
    udb_field *fields;
    size_t nunique, nplain;    /* unique indexes come first in idx[] */
    udb_index *idx;            /* idx[0] is the primary key pseudo-index */
    size_t nidx;
    char *seqname;             /* "<type>.<key>" when the key is auto */
    MDB_dbi dbi;
} udb_type;

typedef struct udb_schema {
    size_t ntypes;
    udb_type *types;
    char *json;                /* canonical text */
    size_t json_len;
    const char **type_names;
} udb_schema;

/* Parse schema JSON into *out (caller frees with udb__schema_free).  On error
 * returns UDB_ESCHEMA with a message in msg. */
int  udb__schema_parse(udb_schema **out, const char *json, size_t len, udb_buf *msg);
void udb__schema_free(udb_schema *s);
udb_type  *udb__schema_type(const udb_schema *s, const char *name);
/* An index of t by name: "email", or qualified as messages print it,
 * "client.email" (names hold no '.', so the two never clash).  NULL name: the
 * primary key. */
udb_index *udb__type_index(const udb_type *t, const char *name);
/* name without a leading "<type>." */
const char *udb__index_name(const udb_type *t, const char *name);

#endif
